#!/bin/bash
# Concurrent downstream transfers are limited per link (devices sharing a
# radio network or a serial bus) and per driver, and the limits change on
# SIGHUP without dropping jobs.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/lib-nginx.sh"
. "$top_srcdir/tests/lib-gateway.sh"

t_check "mosquitto starts" t_start_mosquitto
t_check "deltagate-shadowd starts" t_start_shadowd
t_check "nginx starts" t_start_nginx
t_gw_flasher
# every tool starts and then waits (address "hold") while $T_DIR/dev/hold
# exists: the transfers a limit lets run are all running at once, held,
# while the others wait for a slot; then the test lets them go
t_gw_conf "l1 address=hold link=bus1" "l2 address=hold link=bus1" "l3 address=hold link=bus1" \
	"l4 address=hold link=bus2" "l5 address=hold link=bus2" "l6 address=hold link=bus2"
printf 'max-deliveries 8\nmax-deliveries-per-link 1\n' >> "$T_DIR/gw.conf"
t_check "deltagated starts" t_gw_start
starts() { grep -c '^start ' "$T_DIR/dev/flash.log" 2>/dev/null || true; }
wait_starts() { t_wait_for 30 sh -c "[ \$(grep -c '^start ' '$T_DIR/dev/flash.log' 2>/dev/null) -ge $1 ]"; }
wait_stage() { t_wait_for 30 sh -c "[ \"\$(sqlite3 '$GW_DB' \"SELECT stage FROM job WHERE device = '$1' AND job_id = '$2'\")\" = $3 ]"; }
# held JOB RUNNING WAITING: RUNNING tools run (held) and WAITING jobs wait
# for a slot (staged), all at once; no more tool started
held() {
	wait_starts "$2" || return 1
	t_wait_for 30 sh -c "[ \$(sqlite3 '$GW_DB' \"SELECT count(*) FROM job WHERE job_id = '$1' AND stage = 'staged'\") -eq $3 ]" || return 1
	[ "$(starts)" -eq "$2" ]
}

head -c 30000 /dev/urandom > "$NGINX_WWW/a.bin"
: > "$T_DIR/dev/hold"
for i in 1 2 3; do t_gw_command "l$i" jobL1 "$NGINX_URL/a.bin" "$NGINX_WWW/a.bin"; done
t_check "one link, per-link limit 1: one tool runs, two wait" held jobL1 1 2
rm "$T_DIR/dev/hold"
for i in 1 2 3; do t_check "l$i succeeds" t_gw_wait_status "l$i" jobL1 SUCCEEDED 60; done
t_check "one link, per-link limit 1: the three flashed one after another" test "$(t_gw_max_concurrent)" -eq 1

# two links at once: one transfer on each
: > "$T_DIR/dev/flash.log"
head -c 30000 /dev/urandom > "$NGINX_WWW/b.bin"
: > "$T_DIR/dev/hold"
for i in 1 2 3 4 5 6; do t_gw_command "l$i" jobL2 "$NGINX_URL/b.bin" "$NGINX_WWW/b.bin"; done
t_check "two links: two tools run, four wait" held jobL2 2 4
rm "$T_DIR/dev/hold"
for i in 1 2 3 4 5 6; do t_check "l$i succeeds (second job)" t_gw_wait_status "l$i" jobL2 SUCCEEDED 60; done
t_check "two links: two transfers at a time" test "$(t_gw_max_concurrent)" -eq 2

# SIGHUP: three per link, but at most two through the exec driver
sed -i 's/^max-deliveries-per-link 1/max-deliveries-per-link 3/' "$T_DIR/gw.conf"
echo 'max-deliveries-per-driver 2' >> "$T_DIR/gw.conf"
kill -HUP "$GW_PID"
t_check "SIGHUP reloads" t_wait_for 10 grep -q 'configuration reloaded' "$T_DIR/gw.log"
: > "$T_DIR/dev/flash.log"
head -c 30000 /dev/urandom > "$NGINX_WWW/c.bin"
: > "$T_DIR/dev/hold"
for i in 1 2 3; do t_gw_command "l$i" jobL3 "$NGINX_URL/c.bin" "$NGINX_WWW/c.bin"; done
t_check "after SIGHUP: two tools run on the link, the third waits" held jobL3 2 1
rm "$T_DIR/dev/hold"
for i in 1 2 3; do t_check "l$i succeeds (third job)" t_gw_wait_status "l$i" jobL3 SUCCEEDED 60; done
t_check "after SIGHUP: the driver limit (2) holds on a link allowing 3" test "$(t_gw_max_concurrent)" -eq 2

# a newer command supersedes the job in flight: its flashing tool is
# stopped and the new job runs
: > "$T_DIR/dev/flash.log"
head -c 30000 /dev/urandom > "$NGINX_WWW/d.bin"
head -c 30000 /dev/urandom > "$NGINX_WWW/e.bin"
: > "$T_DIR/dev/hold"
t_gw_command l4 jobS1 "$NGINX_URL/d.bin" "$NGINX_WWW/d.bin"
t_check "jobS1's tool runs (held)" t_wait_for 30 grep -q '^start l4 ' "$T_DIR/dev/flash.log"
t_check "jobS1 is transferring" wait_stage l4 jobS1 transferring
S1_TOOL=$(awk '$1 == "start" && $2 == "l4" { print $4 }' "$T_DIR/dev/flash.log")
t_gw_command l4 jobS2 "$NGINX_URL/e.bin" "$NGINX_WWW/e.bin"
t_check "jobS1's tool is stopped" t_wait_gone 30 "$S1_TOOL"
t_check "jobS2's tool starts" t_wait_for 30 sh -c "[ \$(grep -c '^start l4 ' '$T_DIR/dev/flash.log') -eq 2 ]"
rm "$T_DIR/dev/hold"
t_check "jobS2 succeeds" t_gw_wait_status l4 jobS2 SUCCEEDED 30
t_check "jobS1 is recorded as superseded" test "$(sqlite3 "$GW_DB" "SELECT stage FROM job WHERE device = 'l4' AND job_id = 'jobS1'")" = superseded
t_check "the device holds jobS2's image" cmp "$T_DIR/dev/l4.bin" "$NGINX_WWW/e.bin"
t_check "jobS1 never completed on the device" sh -c "! grep -qx jobS1 '$T_DIR/dev/l4.jobs'"
t_done
