#!/bin/bash
# deltagated's configuration: --test-config (file:line errors, secrets
# redacted), SIGHUP adding a device without dropping jobs in flight, an
# invalid file on SIGHUP refused while the daemon keeps running, SIGTERM.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/lib-nginx.sh"
. "$top_srcdir/tests/lib-gateway.sh"

t_check "mosquitto starts" t_start_mosquitto
t_check "deltagate-shadowd starts" t_start_shadowd
t_check "nginx starts" t_start_nginx
t_gw_flasher

t_gw_conf "h1 address=hold"
cp "$T_DIR/gw.conf" "$T_DIR/secret.conf"
printf 'mqtt-username u\nmqtt-password s3cret-pw\n' >> "$T_DIR/secret.conf"
"$DELTAGATED" -c "$T_DIR/secret.conf" --test-config > "$T_DIR/dump" 2>&1; rc=$?
t_check "--test-config accepts the file (exit 0)" test $rc -eq 0
t_check "--test-config redacts the password" sh -c "! grep -q s3cret-pw '$T_DIR/dump' && grep -q redacted '$T_DIR/dump'"
printf 'db x\ncache-root y\ndevice "bad/id"\n' > "$T_DIR/bad.conf"
"$DELTAGATED" -c "$T_DIR/bad.conf" --test-config > /dev/null 2> "$T_DIR/err"; rc=$?
t_check "an invalid device line: exit 2 with file:line" sh -c "[ $rc -eq 2 ] && grep -q 'bad.conf:3' '$T_DIR/err'"
printf 'db x\ncache-root y\nmax-downloads 0\n' > "$T_DIR/bad2.conf"
"$DELTAGATED" -c "$T_DIR/bad2.conf" --test-config > /dev/null 2>&1; rc=$?
t_check "an out-of-range value: exit 2" test $rc -eq 2
"$DELTAGATED" --cache-root y > /dev/null 2>&1; rc=$?
t_check "missing --db: exit 2" test $rc -eq 2
"$DELTAGATED" -c "$T_DIR/gw.conf" --mqtt-password p > /dev/null 2> "$T_DIR/err" &
pid=$!; T_PIDS="$T_PIDS $pid"
t_check "a password without a user name is refused at start" \
	t_wait_for 10 sh -c "! kill -0 $pid 2>/dev/null && grep -q 'needs a user name' '$T_DIR/err'"

t_check "deltagated starts" t_gw_start
head -c 50000 /dev/urandom > "$NGINX_WWW/a.bin"
# h1's flashing tool starts and waits (address "hold") until the test
# lets it go: its job stays in flight as long as the test needs
: > "$T_DIR/dev/hold"
t_gw_command h1 jobH1 "$NGINX_URL/a.bin" "$NGINX_WWW/a.bin"
t_check "h1's flashing tool runs" t_wait_for 30 grep -q '^start h1 ' "$T_DIR/dev/flash.log"
t_check "h1 is transferring" t_wait_for 30 sh -c "[ \"\$(sqlite3 '$GW_DB' \"SELECT stage FROM job WHERE device = 'h1'\")\" = transferring ]"
H1_TOOL=$(awk '$1 == "start" && $2 == "h1" { print $4 }' "$T_DIR/dev/flash.log")
# SIGHUP with a new device while h1's job is in flight
echo 'device "h2"' >> "$T_DIR/gw.conf"
kill -HUP "$GW_PID"
t_check "SIGHUP reloads" t_wait_for 10 grep -q 'configuration reloaded' "$T_DIR/gw.log"
t_gw_command h2 jobH2 "$NGINX_URL/a.bin" "$NGINX_WWW/a.bin"
t_check "the new device h2 is updated" t_gw_wait_status h2 jobH2 SUCCEEDED 30
t_check "h1's tool ran on through the reload" kill -0 "$H1_TOOL"
rm -f "$T_DIR/dev/hold"
t_check "h1's job in flight was not dropped" t_gw_wait_status h1 jobH1 SUCCEEDED 30
t_check "h1 was flashed once" test "$(grep -c '^start h1 ' "$T_DIR/dev/flash.log")" -eq 1
# an invalid file on SIGHUP: refused, the daemon goes on
echo 'report-rate -5' >> "$T_DIR/gw.conf"
kill -HUP "$GW_PID"
t_check "an invalid file on SIGHUP is refused" t_wait_for 10 grep -q 'keeping the running one' "$T_DIR/gw.log"
t_check "deltagated still runs" kill -0 "$GW_PID"
kill -TERM "$GW_PID"
t_wait_gone 10 "$GW_PID"
wait "$GW_PID"; st=$?
t_check "SIGTERM stops it cleanly (exit $st)" test "$st" -eq 0
t_check "it logged a clean stop" grep -q 'stopping; unfinished jobs resume' "$T_DIR/gw.log"
t_done
