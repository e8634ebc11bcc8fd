#!/bin/bash
# deltagate status with the AWS topic preset ($aws/things/{id}/shadow):
# a deploy through one gateway (one device fails), then the per-gateway
# roll-up, the total and the per-device table (--job), text and --json.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/lib-nginx.sh"
. "$top_srcdir/tests/lib-gateway.sh"

t_check "mosquitto starts" t_start_mosquitto
"$SHADOWD" --broker "$MQTT_URL" --db "$T_DIR/aws.db" --topic-root aws >>"$T_DIR/shadowd.log" 2>&1 &
T_PIDS="$T_PIDS $!"
SH="$DELTAGATE shadow --broker $MQTT_URL --topic-root aws"
t_check "shadowd answers on \$aws topics" t_wait_for 10 sh -c "$SH --timeout 1 get probe 2>&1 | grep -q 404"
t_check "nginx (HTTPS) starts" t_start_nginx
t_gw_flasher
printf '%s\n' "$NGINX_SECRET" > "$T_DIR/secret"
head -c 100000 /dev/urandom > "$T_DIR/v1.bin"
head -c 100000 /dev/urandom > "$T_DIR/v2.bin"
V1=$(t_sha "$T_DIR/v1.bin")
t_gw_conf "s1 sha256=$V1 version=1" "s2 sha256=$V1 version=1" "s3 sha256=$V1 version=1 address=fail"
echo "topic-root aws" >> "$T_DIR/gw.conf"
t_check "deltagated starts (aws topics)" t_gw_start

"$DELTAGATE" deploy --broker "$MQTT_URL" --topic-root aws --state-dir "$T_DIR/state" \
	--storage "file://$NGINX_WWW/st" --base-url "$NGINX_URL/s/st" --secret-file "$T_DIR/secret" \
	--image "$T_DIR/v2.bin" --version 2 --job-id job-s --devices s1,s2,s3 --wave-timeout 60 \
	> "$T_DIR/deploy.out" 2>&1; rc=$?
t_check "deploy over \$aws topics: done (exit 0: one failure of three, no threshold)" test $rc -eq 0
# the roll-up reaches the gateway's shadow through its outbox: wait for it
t_check "the gateway's roll-up counts 2 succeeded, 1 failed" \
	t_wait_for 20 sh -c "'$DELTAGATE' status --broker '$MQTT_URL' --topic-root aws --gateway gw1 --json | jq -e '.gateways.gw1[\"job-s\"].succeeded == 2 and .gateways.gw1[\"job-s\"].failed == 1'"
"$DELTAGATE" status --broker "$MQTT_URL" --topic-root aws --gateway gw1 --job job-s --state-dir "$T_DIR/state" \
	--json > "$T_DIR/st.json"; rc=$?
t_diag "$(cat "$T_DIR/st.json")"
t_check "status --job: exit 0" test $rc -eq 0
t_check "status: total 2 succeeded, 1 failed" jq -e '.total["job-s"].succeeded == 2 and .total["job-s"].failed == 1 and .total["job-s"].inProgress == 0' "$T_DIR/st.json"
t_check "status --job: three devices from deploy's state" test "$(jq '.devices | length' "$T_DIR/st.json")" -eq 3
t_check "status --job: s1 succeeded on version 2 directly (resultCode 1, outcome direct)" \
	jq -e '.devices[] | select(.device == "s1") | .status == "SUCCEEDED" and .version == "2" and .resultCode == 1 and .outcome == "direct"' "$T_DIR/st.json"
t_check "status --job: s3 failed with the exec driver's code 0x90B00003" \
	jq -e ".devices[] | select(.device == \"s3\") | .status == \"FAILED\" and .extendedResultCode == $((0x90B00003))" "$T_DIR/st.json"
"$DELTAGATE" status --broker "$MQTT_URL" --topic-root aws --gateway gw1 --job job-s --devices s1,s2,s3,s9 > "$T_DIR/st.txt"; rc=$?
t_diag "$(cat "$T_DIR/st.txt")"
t_check "status text: a TOTAL row and a row per device" \
	sh -c "grep -qE '^TOTAL +job-s +0 +0 +2 +0 +1' '$T_DIR/st.txt' && grep -qE '^s3 +FAILED' '$T_DIR/st.txt'"
t_check "status text: s9 (no shadow) is not targeted" grep -qE '^s9 +NOT_TARGETED' "$T_DIR/st.txt"
"$DELTAGATE" status --broker "$MQTT_URL" >/dev/null 2>&1; rc=$?
t_check "status without --gateway or --job: exit 2" test $rc -eq 2

t_done
