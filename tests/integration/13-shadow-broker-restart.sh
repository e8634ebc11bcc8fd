#!/bin/bash
# The service reconnects and resubscribes by itself when the broker restarts.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"

t_check "mosquitto starts" t_start_mosquitto
t_check "deltagate-shadowd starts" t_start_shadowd
t_check "update before the restart" "$DELTAGATE" shadow --broker "$MQTT_URL" --quiet update b1 '{"state":{"desired":{"x":1}}}'

t_stop_pid "$MQTT_PID"
# it has seen the connection go (its log says so), and runs on
t_check "deltagate-shadowd notices the broker is gone" \
	t_wait_for 20 grep -q "mqtt: $MQTT_URL: " "$T_DIR/shadowd.log"
t_check "deltagate-shadowd survives the broker's absence" kill -0 "$SHADOWD_PID"
t_check "mosquitto restarts on the same port" t_start_mosquitto
# it answers again once it has reconnected and resubscribed
t_check "service answers again after the restart" \
	t_wait_for 40 sh -c "'$DELTAGATE' shadow --broker '$MQTT_URL' --timeout 1 get b1 | grep -q '\"x\":1'"
t_check "updates work again" "$DELTAGATE" shadow --broker "$MQTT_URL" --quiet update b1 '{"state":{"desired":{"x":2}}}'
"$DELTAGATE" shadow --broker "$MQTT_URL" get b1 > "$T_DIR/get"
t_check "state kept across the broker restart (version 2)" jq -e '.version == 2 and .state.desired.x == 2' "$T_DIR/get"
t_check "the service logged the reconnection" test "$(grep -c 'connected to' "$T_DIR/shadowd.log")" -ge 2
t_done
