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
export FLASH_SLOW=1
t_gw_conf "l1 address=slow link=bus1" "l2 address=slow link=bus1" "l3 address=slow link=bus1" \
	"l4 address=slow link=bus2" "l5 address=slow link=bus2" "l6 address=slow link=bus2"
printf 'max-deliveries 8\nmax-deliveries-per-link 1\n' >> "$T_DIR/gw.conf"
t_check "deltagated starts" t_gw_start
head -c 30000 /dev/urandom > "$NGINX_WWW/a.bin"
for i in 1 2 3; do t_gw_command "l$i" jobL1 "$NGINX_URL/a.bin" "$NGINX_WWW/a.bin"; done
for i in 1 2 3; do t_check "l$i succeeds" t_gw_wait_status "l$i" jobL1 SUCCEEDED 60; done
t_check "one link, per-link limit 1: the three flashed one after another" test "$(t_gw_max_concurrent)" -eq 1

# two links at once: one transfer on each
: > "$T_DIR/dev/flash.log"
head -c 30000 /dev/urandom > "$NGINX_WWW/b.bin"
for i in 1 2 3 4 5 6; do t_gw_command "l$i" jobL2 "$NGINX_URL/b.bin" "$NGINX_WWW/b.bin"; done
for i in 1 2 3 4 5 6; do t_check "l$i succeeds (second job)" t_gw_wait_status "l$i" jobL2 SUCCEEDED 60; done
t_check "two links: two transfers at a time" test "$(t_gw_max_concurrent)" -eq 2

# SIGHUP: three per link, but at most two through the exec driver
sed -i 's/^max-deliveries-per-link 1/max-deliveries-per-link 3/' "$T_DIR/gw.conf"
echo 'max-deliveries-per-driver 2' >> "$T_DIR/gw.conf"
kill -HUP "$GW_PID"
t_check "SIGHUP reloads" t_wait_for 10 grep -q 'configuration reloaded' "$T_DIR/gw.log"
: > "$T_DIR/dev/flash.log"
head -c 30000 /dev/urandom > "$NGINX_WWW/c.bin"
for i in 1 2 3; do t_gw_command "l$i" jobL3 "$NGINX_URL/c.bin" "$NGINX_WWW/c.bin"; done
for i in 1 2 3; do t_check "l$i succeeds (third job)" t_gw_wait_status "l$i" jobL3 SUCCEEDED 60; done
t_check "after SIGHUP: the driver limit (2) holds on a link allowing 3" test "$(t_gw_max_concurrent)" -eq 2

# a newer command supersedes the job in flight: its flashing tool is
# stopped and the new job runs
echo 20 > "$T_DIR/dev/l4.delay"
head -c 30000 /dev/urandom > "$NGINX_WWW/d.bin"
head -c 30000 /dev/urandom > "$NGINX_WWW/e.bin"
t_gw_command l4 jobS1 "$NGINX_URL/d.bin" "$NGINX_WWW/d.bin"
t_check "jobS1 is transferring" t_wait_for 30 sh -c "[ \"\$(sqlite3 '$GW_DB' \"SELECT stage FROM job WHERE device = 'l4' AND job_id = 'jobS1'\")\" = transferring ]"
rm "$T_DIR/dev/l4.delay"
t_gw_command l4 jobS2 "$NGINX_URL/e.bin" "$NGINX_WWW/e.bin"
t_check "jobS2 succeeds" t_gw_wait_status l4 jobS2 SUCCEEDED 30
t_check "jobS1 is recorded as superseded" test "$(sqlite3 "$GW_DB" "SELECT stage FROM job WHERE device = 'l4' AND job_id = 'jobS1'")" = superseded
t_check "the device holds jobS2's image" cmp "$T_DIR/dev/l4.bin" "$NGINX_WWW/e.bin"
t_check "jobS1 never completed on the device" sh -c "! grep -qx jobS1 '$T_DIR/dev/l4.jobs'"
t_done
