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

# many shadows from one process, through the wildcard subscriptions:
# 5,000 devices, one update each, pipelined by the benchmark's driver,
# which exits 0 only when every update was answered with accepted
M=5000
t_check "$M devices each got update/accepted" \
	timeout 120 "$top_builddir/bench/shadow_bench" shadow "$MQTT_URL" $M $M 500
t_check "the database holds $M shadows" sh -c "[ \$(sqlite3 '$T_DIR/shadow.db' \"SELECT count(*) FROM shadow WHERE id LIKE 'bench%'\") -eq $M ]"
"$DELTAGATE" shadow --broker "$MQTT_URL" get bench4321 > "$T_DIR/one"
t_check "one of them holds its update" jq -e '.version == 1 and .state.reported.fw == "1.2.3"' "$T_DIR/one"
t_done
