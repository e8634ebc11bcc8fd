#!/bin/bash
# Broker faults during an update: (1) a broker that keeps the connection
# but drops every PUBACK for a while (a proxy in between): the gateway
# makes a new connection after mqtt-ack-timeout and sends again what was
# not acknowledged; (2) the broker restarted with persistence false while
# the gateway is down: its session is gone and so is the delta published
# meanwhile - the gateway resubscribes and resyncs its mirrors (shadow get)
# and runs the job. The broker killed for 30 s during reports is test 52.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/lib-nginx.sh"
. "$top_srcdir/tests/lib-gateway.sh"
. "$top_srcdir/tests/lib-coap.sh"
C_SIZE=${C_SIZE:-1048576}
. "$top_srcdir/tests/reliability/lib-campaign.sh"

MQTT_PORT=$(t_free_port)
PROXY_PORT=$(t_free_port)
while [ "$PROXY_PORT" = "$MQTT_PORT" ]; do PROXY_PORT=$(t_free_port); done
DROP="$T_DIR/drop-pubacks"
python3 "$top_srcdir/tests/reliability/mqtt-drop-proxy.py" "$PROXY_PORT" "$MQTT_PORT" "$DROP" \
	"$T_DIR/proxy.log" > "$T_DIR/proxy.out" 2>&1 &
T_PIDS="$T_PIDS $!"
t_check "the PUBACK-dropping proxy listens" t_wait_for 20 grep -q listening "$T_DIR/proxy.out"
C_CONF_EXTRA="broker mqtt://127.0.0.1:$PROXY_PORT
mqtt-ack-timeout 3"
c_setup
c_round b1
t_check "b1 ends" c_wait_final b1 120
c_check b1

# 1. PUBACKs dropped until the gateway has given up on the connection once
: > "$DROP"
c_round b2
t_check "PUBACKs are dropped" t_wait_for 60 grep -q 'dropped PUBACK' "$T_DIR/proxy.log"
t_check "the gateway reconnects after 3 s without an acknowledgement" \
	t_wait_for 60 grep -q 'no acknowledgement for 3 s: reconnecting' "$T_DIR/gw.log"
rm -f "$DROP"
t_check "b2 ends once the broker acknowledges again" c_wait_final b2 120
t_diag "PUBACKs dropped: $(grep -c 'dropped PUBACK' "$T_DIR/proxy.log"), connections through the proxy: $(grep -c connection "$T_DIR/proxy.log")"
c_check b2

# 2. the broker comes back empty while the gateway is down
t_stop_pid "$GW_PID"
kill -9 "$MQTT_PID"; wait "$MQTT_PID" 2>/dev/null
# the trace's subscriber would reconnect by itself: one subscriber only
t_stop_pid "$C_SUB"
t_check "mosquitto restarts with persistence false" t_start_mosquitto
t_check "deltagate-shadowd reconnects" t_wait_for 60 sh -c "'$DELTAGATE' shadow --broker '$MQTT_URL' --timeout 1 get __probe__ 2>&1 | grep -q 404"
mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -v -t 'state/+/update' -t 'state/+/update/documents' >> "$T_DIR/trace" 2>&1 &
T_PIDS="$T_PIDS $!"
"$DELTAGATE" shadow --broker "$MQTT_URL" --quiet update probe '{"state":{"reported":{"probe":2}}}'
t_check "the new trace runs" t_wait_for 20 sh -c "grep -c '^state/probe/update ' '$T_DIR/trace' | grep -qv '^1$'"
c_round b3
t_check "the desired states are in the shadows before the gateway is back" \
	t_wait_for 30 sh -c "'$DELTAGATE' shadow --broker '$MQTT_URL' get c1 | jq -e '.state.desired.jobId == \"b3\"'"
c_gw_restart
t_check "b3 ends: the gateway resynced from the shadows" c_wait_final b3 120
c_check b3
c_check_end
t_done
