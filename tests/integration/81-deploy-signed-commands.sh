#!/bin/bash
# Signed update commands: deltagated --trusted-key (two keys: rotation)
# accepts commands signed by either and refuses, with its 0x90E code and
# without touching the device, every other one: unsigned, unknown key,
# altered after signing, corrupted signature, expired, replayed or older
# (anti-rollback, kept across a restart), and forged commands a broker-side
# attacker publishes straight to the topics with mosquitto_pub.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/lib-nginx.sh"
. "$top_srcdir/tests/lib-gateway.sh"

t_check "mosquitto starts" t_start_mosquitto
t_check "deltagate-shadowd starts" t_start_shadowd
t_check "nginx (HTTPS) starts" t_start_nginx
t_gw_flasher
W=$NGINX_WWW
head -c 65536 /dev/urandom > "$T_DIR/v1.bin"
for v in 2 3 4; do head -c 65536 /dev/urandom > "$W/v$v.bin"; done
V1=$(t_sha "$T_DIR/v1.bin")

for k in A B C; do "$DELTAGATE" keygen "$T_DIR/key$k.pem" >/dev/null; done
t_check "three key pairs" test -s "$T_DIR/keyA.pub.pem" -a -s "$T_DIR/keyB.pub.pem" -a -s "$T_DIR/keyC.pub.pem"

DEVS="dA dB dU dK dT dS dE dR dX dY"
lines=""
for d in $DEVS; do lines="$lines|$d sha256=$V1 version=1"; done
IFS='|' read -r -a devlines <<< "${lines#|}"
t_gw_conf "${devlines[@]}"
echo "trusted-key $T_DIR/keyA.pub.pem" >> "$T_DIR/gw.conf"
echo "trusted-key $T_DIR/keyB.pub.pem" >> "$T_DIR/gw.conf"
t_check "deltagated starts with two trusted keys" t_gw_start
t_check "deltagated logs both key ids" test "$(grep -c 'trusted key' "$T_DIR/gw.log")" -eq 2

# cmd JOB IMAGE: an unsigned command document
cmd() {
	echo "{\"state\":{\"desired\":{\"softwareURL\":\"$(t_signed_url "$2" 600)\",\"softwareVersion\":\"$1\",\"softwareSha256\":\"$(t_sha "$W/$2")\",\"softwareSize\":$(stat -c %s "$W/$2"),\"jobId\":\"$1\"}}}"
}
# signed KEY DEVICE JOB IMAGE [sign options]
signed() {
	_k=$1 _d=$2 _j=$3 _i=$4; shift 4
	cmd "$_j" "$_i" | "$DELTAGATE" sign --key "$T_DIR/key$_k.pem" --device "$_d" "$@"
}
publish() { "$DELTAGATE" shadow --broker "$MQTT_URL" --quiet update "$1" "$2"; }
ext_is() { t_gw_reported "$1" | jq -e ".extendedResultCode == $(($2)) and .resultCode == 0" >/dev/null; }
untouched() { [ ! -e "$T_DIR/dev/$1.bin" ] && ! grep -q "^start $1 " "$T_DIR/dev/flash.log" 2>/dev/null; }

# --- accepted: key A, and key B (rotation)
publish dA "$(signed A dA jA v2.bin)"
publish dB "$(signed B dB jB v2.bin)"
t_check "signed by key A: succeeds" t_gw_wait_status dA jA SUCCEEDED 60
t_check "signed by key B (the second trusted key): succeeds" t_gw_wait_status dB jB SUCCEEDED 60
t_check "dA holds v2" cmp "$T_DIR/dev/dA.bin" "$W/v2.bin"

# --- refused
publish dU "$(cmd jU v2.bin)"
publish dK "$(signed C dK jK v2.bin)"
# altered: signed for v2, the URL then pointed at v3 (hash and size too)
publish dT "$(signed A dT jT v2.bin | jq -c --arg u "$(t_signed_url v3.bin 600)" --arg s "$(t_sha "$W/v3.bin")" \
	'.state.desired.softwareURL = $u | .state.desired.softwareSha256 = $s')"
# the signature's last characters changed
publish dS "$(signed A dS jS v2.bin | jq -c '.state.desired.signature |= (.[0:-4] + (if .[-4:] == "AAAA" then "BBBB" else "AAAA" end))')"
publish dE "$(signed A dE jE v2.bin --expires -10)"
# a command signed for another device
publish dR "$(signed A dA jR0 v2.bin)"
t_check "unsigned: FAILED" t_gw_wait_status dU jU FAILED 30
t_check "unsigned: extendedResultCode 0x90E00001" ext_is dU 0x90E00001
t_check "unknown key: FAILED" t_gw_wait_status dK jK FAILED 30
t_check "unknown key: extendedResultCode 0x90E00002" ext_is dK 0x90E00002
t_check "altered: FAILED" t_gw_wait_status dT jT FAILED 30
t_check "altered: extendedResultCode 0x90E00004" ext_is dT 0x90E00004
t_check "corrupted signature: FAILED" t_gw_wait_status dS jS FAILED 30
t_check "corrupted signature: extendedResultCode 0x90E00003" ext_is dS 0x90E00003
t_check "expired: FAILED" t_gw_wait_status dE jE FAILED 30
t_check "expired: extendedResultCode 0x90E00005" ext_is dE 0x90E00005
t_check "signed for another device: FAILED" t_gw_wait_status dR jR0 FAILED 30
t_check "signed for another device: extendedResultCode 0x90E00004" ext_is dR 0x90E00004
for d in dU dK dT dS dE dR; do
	t_check "$d: the device was never touched (no flash, no image)" untouched $d
done
t_check "each refusal is logged once" test "$(grep -c 'command refused' "$T_DIR/gw.log")" -eq 6

# --- anti-rollback
publish dR "$(signed A dR jR1 v2.bin --seq 1000)"
t_check "seq 1000: succeeds" t_gw_wait_status dR jR1 SUCCEEDED 60
publish dR "$(signed A dR jR2 v3.bin --seq 999)"
t_check "an older sequence number (999 < 1000): FAILED" t_gw_wait_status dR jR2 FAILED 30
t_check "older sequence: extendedResultCode 0x90E00006" ext_is dR 0x90E00006
publish dR "$(signed A dR jR3 v3.bin --seq 1000)"
t_check "the same sequence number again (replay): FAILED" t_gw_wait_status dR jR3 FAILED 30
t_check "replay: extendedResultCode 0x90E00006" ext_is dR 0x90E00006
t_check "dR still holds v2 (one flash only)" \
	sh -c "cmp -s '$T_DIR/dev/dR.bin' '$W/v2.bin' && [ \$(grep -c '^start dR ' '$T_DIR/dev/flash.log') -eq 1 ]"

t_stop_pid "$GW_PID"
t_check "deltagated restarts" t_gw_start
publish dR "$(signed A dR jR4 v3.bin --seq 500)"
t_check "after a restart an older sequence number is still refused" t_gw_wait_status dR jR4 FAILED 30
t_check "after a restart: 0x90E00006" ext_is dR 0x90E00006
publish dR "$(signed A dR jR5 v3.bin --seq 2000)"
t_check "a newer sequence number is accepted" t_gw_wait_status dR jR5 SUCCEEDED 60
t_check "dR holds v3" cmp "$T_DIR/dev/dR.bin" "$W/v3.bin"

# --- a broker-side attacker publishes straight to the topics
mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t state/dX/update -m "$(cmd jX v4.bin)"
t_check "forged desired state on state/dX/update: FAILED" t_gw_wait_status dX jX FAILED 30
t_check "forged desired state: 0x90E00001 (unsigned)" ext_is dX 0x90E00001
t_check "dX never touched" untouched dX
publish dY "$(signed A dY jY1 v2.bin)"
t_check "dY: signed command succeeds" t_gw_wait_status dY jY1 SUCCEEDED 60
# a forged delta, as if from the shadow service: the old signature stays in the mirror
mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t state/dY/update/delta -m \
	"{\"state\":{\"softwareURL\":\"$(t_signed_url v4.bin 600)\",\"softwareSha256\":\"$(t_sha "$W/v4.bin")\",\"jobId\":\"jY2\"},\"version\":99}"
t_check "forged delta on state/dY/update/delta: FAILED" t_gw_wait_status dY jY2 FAILED 30
t_check "forged delta: 0x90E00004 (altered)" ext_is dY 0x90E00004
t_check "dY still holds v2, flashed once" \
	sh -c "cmp -s '$T_DIR/dev/dY.bin' '$W/v2.bin' && [ \$(grep -c '^start dY ' '$T_DIR/dev/flash.log') -eq 1 ]"

t_done
