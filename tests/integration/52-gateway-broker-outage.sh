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
for i in $(seq 1 $N); do lines+=("o$i address=slow"); done
t_gw_conf "${lines[@]}"
export FLASH_SLOW=4
t_check "deltagated starts" t_gw_start
for i in $(seq 1 $N); do t_gw_command "o$i" jobO "$NGINX_URL/v2.bin" "$NGINX_WWW/v2.bin"; done
t_check "transfers started" t_wait_for 30 sh -c "[ \$(sqlite3 '$GW_DB' \"SELECT count(*) FROM job WHERE stage IN ('transferring','installing')\") -ge 1 ]"

t_stop_pid "$MQTT_PID"
down=$(date +%s)
t_check "all devices finish while the broker is down" \
	t_wait_for 40 sh -c "[ \$(ls '$T_DIR'/dev/o*.bin 2>/dev/null | wc -l) -eq $N ]"
pending=$(sqlite3 "$GW_DB" 'SELECT count(*) FROM outbox')
t_diag "reports waiting in the outbox: $pending"
t_check "their final reports wait in the outbox" test "$pending" -ge "$N"
while [ $(( $(date +%s) - down )) -lt 30 ]; do sleep 1; done
t_check "mosquitto is back after 30 s" t_start_mosquitto
for i in $(seq 1 $N); do
	t_check "o$i: SUCCEEDED arrives after the outage" t_gw_wait_status "o$i" jobO SUCCEEDED 60
done
t_check "the outbox drains" t_wait_for 30 sh -c "[ \$(sqlite3 '$GW_DB' 'SELECT count(*) FROM outbox') -eq 0 ]"
t_check "roll-up: 5 succeeded, none in progress" \
	t_wait_for 20 sh -c "'$DELTAGATE' shadow --broker '$MQTT_URL' get gw1 | jq -e '.state.reported.jobs.jobO.succeeded == $N and .state.reported.jobs.jobO.inProgress == 0'"
t_done
