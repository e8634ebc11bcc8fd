#!/bin/bash
# The AWS IoT topic names: --topic-root aws ($aws/things/{id}/shadow).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"

t_check "mosquitto starts" t_start_mosquitto
"$SHADOWD" --broker "$MQTT_URL" --db "$T_DIR/aws.db" --topic-root aws >>"$T_DIR/shadowd.log" 2>&1 &
T_PIDS="$T_PIDS $!"
SH="$DELTAGATE shadow --broker $MQTT_URL --topic-root aws"
t_check "service answers on \$aws topics" t_wait_for 10 sh -c "$SH --timeout 1 get probe 2>&1 | grep -q 404"
SUB_ID=$(t_sub_id)
mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -i "$SUB_ID" -q 1 -v -t '$aws/things/thing1/shadow/update/delta' -C 1 -W 20 > "$T_DIR/delta" &
SUB=$!; T_PIDS="$T_PIDS $SUB"
t_check "a client subscribes to \$aws/things/thing1/shadow/update/delta" \
	t_wait_subscribed 10 "$SUB_ID" '$aws/things/thing1/shadow/update/delta'
t_check "update accepted" $SH --quiet update thing1 '{"state":{"desired":{"color":"red"}}}'
wait $SUB
t_check "delta on \$aws/things/thing1/shadow/update/delta" grep -q '^\$aws/things/thing1/shadow/update/delta {.*"color":"red"' "$T_DIR/delta"
t_check "the default root does not answer" sh -c "! $DELTAGATE shadow --broker $MQTT_URL --timeout 1 get thing1 2>/dev/null"

# configuration checks
printf 'broker %s\ndb %s/x.db\ntopic-root "state/{id}/x/{id}"\n' "$MQTT_URL" "$T_DIR" > "$T_DIR/bad.conf"
"$SHADOWD" -c "$T_DIR/bad.conf" --test-config > /dev/null 2>&1; rc=$?
t_check "--test-config rejects a template with two {id} (exit 2)" [ $rc -eq 2 ]
printf 'broker %s\ndb %s/x.db\nbogus 1\n' "$MQTT_URL" "$T_DIR" > "$T_DIR/bad2.conf"
"$SHADOWD" -c "$T_DIR/bad2.conf" --test-config 2> "$T_DIR/err" >/dev/null; rc=$?
t_check "--test-config names file:line of an unknown option" sh -c "[ $rc -eq 2 ] && grep -q 'bad2.conf:3' '$T_DIR/err'"
printf 'broker %s\ndb %s/x.db\npassword hunter2\n' "$MQTT_URL" "$T_DIR" > "$T_DIR/ok.conf"
"$SHADOWD" -c "$T_DIR/ok.conf" --test-config > "$T_DIR/dump" 2>&1; rc=$?
t_check "--test-config accepts a good file and redacts the password" sh -c "[ $rc -eq 0 ] && ! grep -q hunter2 '$T_DIR/dump' && grep -q redacted '$T_DIR/dump'"
t_done
