#!/bin/bash
# One client floods the service with garbage; it keeps serving the others,
# and thousands of devices are served from one process.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"

t_check "mosquitto starts" t_start_mosquitto
t_check "deltagate-shadowd starts" t_start_shadowd

# 20,000 garbage requests on one device's topic, and on random ids
( head -c 2000000 /dev/urandom | base64 -w 100 | head -n 20000 | \
	mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 0 -t state/flooder/update -l ) &
FLOOD=$!; T_PIDS="$T_PIDS $FLOOD"
t_check "a well-behaved device is served during the flood" \
	"$DELTAGATE" shadow --broker "$MQTT_URL" --timeout 20 --quiet update good '{"state":{"reported":{"ok":true}}}'
wait "$FLOOD" 2>/dev/null
t_check "the service survived the flood" kill -0 "$SHADOWD_PID"

# many shadows from one process, through the wildcard subscription
M=5000
mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t 'state/+/update/accepted' -C $M -W 60 > "$T_DIR/acc" 2>/dev/null &
SUB=$!; T_PIDS="$T_PIDS $SUB"
sleep 0.3
for i in $(seq 1 $M); do
	echo "{\"state\":{\"desired\":{\"v\":$i}}}"
done > "$T_DIR/reqs"
# one publisher per topic is not needed: mosquitto_pub -l sends to one
# topic, so spread the devices over 50 publishers of 100 devices each
for j in $(seq 0 49); do
	(
		for k in $(seq 1 100); do
			i=$((j * 100 + k))
			mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t "state/dev$i/update" -m "{\"state\":{\"desired\":{\"v\":$i}}}" || true
		done
	) &
done
wait $SUB 2>/dev/null
t_check "$M devices each got update/accepted" sh -c "[ \$(sort -u '$T_DIR/acc' | wc -l) -eq $M ]"
t_check "the database holds $M+ shadows" sh -c "[ \$(sqlite3 '$T_DIR/shadow.db' 'SELECT count(*) FROM shadow') -ge $M ]"
t_done
