#!/bin/bash
# Every rejection code of the shadow service, through the real broker.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"

t_check "mosquitto starts" t_start_mosquitto
t_check "deltagate-shadowd starts" t_start_shadowd

SH="$DELTAGATE shadow --broker $MQTT_URL"
# expect_reject NAME CODE PAYLOAD: update rejected with CODE, exit status 1
expect_reject() {
	$SH update r1 "$3" > "$T_DIR/out" 2> "$T_DIR/err"
	rc=$?
	if [ $rc -eq 1 ] && grep -q "\"code\":$2" "$T_DIR/err"; then
		t_ok "$1: rejected with $2"
	else
		t_fail "$1: rejected with $2 (exit $rc: $(cat "$T_DIR/err" "$T_DIR/out"))"
	fi
}

$SH update r1 '{"state":{"reported":{"a":1}}}' > /dev/null
expect_reject "missing state" 400 '{"stat":{}}'
expect_reject "state not an object" 400 '{"state":5}'
expect_reject "desired not an object" 400 '{"state":{"desired":[1,2]}}'
expect_reject "nesting deeper than 6" 400 '{"state":{"desired":{"a":{"b":{"c":{"d":{"e":{"f":{"g":1}}}}}}}}}'
expect_reject "version conflict" 409 '{"state":{"desired":{"a":2}},"version":99}'
big=$(head -c 9000 /dev/zero | tr '\0' 'x')
expect_reject "document over 8 KiB" 413 "{\"state\":{\"desired\":{\"big\":\"$big\"}}}"
expect_reject "text that is neither JSON nor an ack" 400 'hello world'
expect_reject "malformed ack" 400 'jobID: SUCCESS'

# raw payloads the CLI cannot match or produce: a token over 64 bytes (the
# answer cannot echo it), invalid UTF-8, duplicate keys
t_check "a client subscribes to r1's update/rejected" t_sub 'state/r1/update/rejected' "$T_DIR/rej" 3
printf '{"state":{"desired":{"a":"\xc3\x28"}}}' | mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t state/r1/update -s
mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t state/r1/update -m '{"state":{"desired":{"a":1,"a":2}}}'
mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t state/r1/update \
	-m "{\"state\":{\"desired\":{\"a\":1}},\"clientToken\":\"$(printf 'x%.0s' $(seq 65))\"}"
t_wait_for 10 sh -c "[ \$(grep -c 'update/rejected' '$T_DIR/rej') -ge 3 ]"
t_check "invalid UTF-8, duplicate keys, token over 64 bytes: three 400s" sh -c "[ \$(grep -c '\"code\":400' '$T_DIR/rej') -eq 3 ]"

# a rejected request changes nothing
$SH get r1 > "$T_DIR/get"
t_check "rejections left the shadow at version 1" jq -e '.version == 1 and .state.reported.a == 1 and (.state | has("desired") | not)' "$T_DIR/get"

# version given and equal: accepted
t_check "matching version accepted" $SH --quiet update r1 '{"state":{"desired":{"a":2}},"version":1}'

# get and delete of an unknown shadow: 404
$SH get nosuch 2> "$T_DIR/err"; rc=$?
t_check "get of unknown shadow: 404, exit 1" sh -c "[ $rc -eq 1 ] && grep -q '\"code\":404' '$T_DIR/err'"
$SH delete nosuch 2> "$T_DIR/err"; rc=$?
t_check "delete of unknown shadow: 404, exit 1" sh -c "[ $rc -eq 1 ] && grep -q '\"code\":404' '$T_DIR/err'"

# the CLI's own errors
$DELTAGATE shadow --broker "$MQTT_URL" update 'bad/id' '{}' 2>/dev/null; rc=$?
t_check "CLI refuses an invalid id (exit 2)" [ $rc -eq 2 ]
$DELTAGATE shadow --broker "mqtt://127.0.0.1:1" --timeout 1 get r1 2>/dev/null; rc=$?
t_check "CLI without a broker: exit 3 after the timeout" [ $rc -eq 3 ]

t_check "deltagate-shadowd is still running" kill -0 "$SHADOWD_PID"
t_done
