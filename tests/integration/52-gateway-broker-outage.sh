#!/bin/bash
# The broker is stopped for 30 s while devices finish their updates: every
# acknowledgement waits in the durable outbox and arrives, in order, once
# the broker is back.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/lib-nginx.sh"
. "$top_srcdir/tests/lib-gateway.sh"

# the broker keeps sessions across its restart, as a production one does
MQTT_PERSIST=1
t_check "mosquitto starts" t_start_mosquitto
t_check "deltagate-shadowd starts" t_start_shadowd
t_check "nginx starts" t_start_nginx
t_gw_flasher
head -c 200000 /dev/urandom > "$NGINX_WWW/v2.bin"
N=5
lines=()
for i in $(seq 1 $N); do lines+=("o$i address=hold"); done
t_gw_conf "${lines[@]}"
t_check "deltagated starts" t_gw_start
# the flashing tools start and wait (address "hold") until the broker is
# down: no device can finish before the outage, and every command has
# reached the gateway (its job is in the database) before the broker goes
: > "$T_DIR/dev/hold"
for i in $(seq 1 $N); do t_gw_command "o$i" jobO "$NGINX_URL/v2.bin" "$NGINX_WWW/v2.bin"; done
t_check "the gateway has all $N jobs" \
	t_wait_for 30 sh -c "[ \$(sqlite3 '$GW_DB' \"SELECT count(*) FROM job WHERE job_id = 'jobO'\") -eq $N ]"
t_check "transfers started" t_wait_for 30 grep -q '^start o' "$T_DIR/dev/flash.log"

t_stop_pid "$MQTT_PID"
down=$(date +%s)
rm -f "$T_DIR/dev/hold"
t_check "all devices finish while the broker is down" \
	t_wait_for 40 sh -c "[ \$(ls '$T_DIR'/dev/o*.bin 2>/dev/null | wc -l) -eq $N ]"
# a job's stage 'succeeded' is committed with its final report
t_check "all $N jobs are recorded as succeeded" \
	t_wait_for 30 sh -c "[ \$(sqlite3 '$GW_DB' \"SELECT count(*) FROM job WHERE job_id = 'jobO' AND stage = 'succeeded'\") -eq $N ]"
pending=$(sqlite3 "$GW_DB" 'SELECT count(*) FROM outbox')
final=$(sqlite3 "$GW_DB" "SELECT count(DISTINCT key) FROM outbox WHERE payload LIKE '%\"status\":\"SUCCEEDED\"%'")
t_diag "reports waiting in the outbox: $pending, final ones for $final devices"
t_check "their final reports wait in the outbox" test "$pending" -ge "$N" -a "$final" -eq "$N"
while [ $(( $(date +%s) - down )) -lt 30 ]; do sleep 1; done
t_check "mosquitto is back after 30 s" t_start_mosquitto
for i in $(seq 1 $N); do
	t_check "o$i: SUCCEEDED arrives after the outage" t_gw_wait_status "o$i" jobO SUCCEEDED 60
done
t_check "the outbox drains" t_wait_for 30 sh -c "[ \$(sqlite3 '$GW_DB' 'SELECT count(*) FROM outbox') -eq 0 ]"
t_check "roll-up: 5 succeeded, none in progress" \
	t_wait_for 20 sh -c "'$DELTAGATE' shadow --broker '$MQTT_URL' get gw1 | jq -e '.state.reported.jobs.jobO.succeeded == $N and .state.reported.jobs.jobO.inProgress == 0'"
t_done
