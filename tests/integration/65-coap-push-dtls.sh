#!/bin/bash
# Push over DTLS: a device with a PSK gets its image over coaps:// (the
# gateway is the DTLS client, identity = device id, the device's key); a
# device whose key differs from the gateway's gets no byte and its job fails
# with a DTLS error; a push address that never answers fails the job once
# coap-max-transmit-span has passed; configurations that would push a
# DTLS-only device over plain UDP, or use coaps:// without a key, are refused.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/lib-nginx.sh"
. "$top_srcdir/tests/lib-gateway.sh"
. "$top_srcdir/tests/lib-coap.sh"

t_check "mosquitto starts" t_start_mosquitto
t_check "deltagate-shadowd starts" t_start_shadowd
t_check "nginx (HTTPS) starts" t_start_nginx
t_gw_flasher

W=$NGINX_WWW
head -c 100000 /dev/urandom > "$W/v4.bin"
used="$COAP_PORT $COAPS_PORT"
port() {
	_p=$(t_free_port udp)
	while case " $used " in *" $_p "*) true ;; *) false ;; esac; do _p=$(t_free_port udp); done
	used="$used $_p"; echo "$_p"
}
P_OK=$(port); P_WK=$(port); P_DEAD=$(port)

# refused configurations
t_coap_conf "bad1 driver=coap mode=push address=coaps://127.0.0.1:$P_OK/5/0/0"
"$DELTAGATED" -c "$T_DIR/gw.conf" --test-config > "$T_DIR/bad1.out" 2>&1; rc1=$?
t_check "a coaps:// push address without psk= is refused, saying why" sh -c \
	"[ $rc1 -ne 0 ] && grep -q 'coaps:// push address needs psk=' '$T_DIR/bad1.out'"
t_coap_conf "bad2 driver=coap psk=text:k mode=push address=coap://127.0.0.1:$P_OK/5/0/0"
"$DELTAGATED" -c "$T_DIR/gw.conf" --test-config > "$T_DIR/bad2.out" 2>&1; rc2=$?
t_check "a dtls-required device with a coap:// push address is refused" sh -c \
	"[ $rc2 -ne 0 ] && grep -q 'requires DTLS' '$T_DIR/bad2.out'"

COAP_EXTRA="coap-max-transmit-span 3" t_coap_conf \
	"dp1 driver=coap psk=text:key-dp1 mode=push" \
	"wk1 driver=coap psk=text:key-gateway dtls=optional mode=push address=coaps://127.0.0.1:$P_WK/5/0/0" \
	"dd1 driver=coap mode=push address=coap://127.0.0.1:$P_DEAD/5/0/0"
t_check "deltagated starts" t_gw_start

# dp1 registers over DTLS, its push listener is DTLS with the same key
t_coap_sim --gateway "$COAPS_URL" --psk key-dp1 --count 1 --id-prefix dp --push --push-port "$P_OK" --once --timeout 60 --version 1
SIM_DP=$SIM_PID
# wk1's push listener has another key than the gateway's
t_coap_sim --count 1 --id-prefix wk --push --push-port "$P_WK" --push-psk key-other --timeout 60 --version 1 --verbose
SIM_WK=$SIM_PID
t_check "dp1 registers over DTLS with a coaps:// firmware address" t_coap_wait_log 10 'dp1: coap: registered (push'
t_check "wk1 registers (plain UDP, dtls=optional)" t_coap_wait_log 10 'wk1: coap: registered (push'
URL=$(t_signed_url v4.bin 600)
for d in dp1 wk1 dd1; do t_gw_command $d jobD "$URL" "$W/v4.bin"; done

t_check "the push over DTLS succeeds" t_gw_wait_status dp1 jobD SUCCEEDED 30
wait "$SIM_DP"; rc=$?
t_check "dp1's simulator finished (exit 0)" test "$rc" -eq 0
t_check "dp1 holds the exact image" cmp "$T_DIR/devices/dp1/image.bin" "$W/v4.bin"
t_check "the gateway opened a DTLS session for the push" grep -q 'dp1: coap: DTLS session for the push established' "$T_DIR/gw.log"

t_check "the push with a wrong key fails the job" t_gw_wait_status wk1 jobD FAILED 30
ext_is() { t_gw_reported "$1" | jq -e ".extendedResultCode == $2"; }
t_check "... with the DTLS result code (0x90B00304)" ext_is wk1 2427454212
t_check "... and a clear error in the log" grep -q 'wk1: coap: job jobD failed: DTLS handshake with the device' "$T_DIR/gw.log"
t_check "the handshake reached the device (its listener looked up the key of wk1)" \
	grep -q 'wk1: push DTLS handshake from identity wk1' "$T_DIR/sim.2.log"
t_check "the device with the other key received no byte" sh -c \
	"[ ! -e '$T_DIR/devices/wk1/partial' ] && [ ! -e '$T_DIR/devices/wk1/image.bin' ]"

t_check "a push address that never answers fails the job" t_gw_wait_status dd1 jobD FAILED 30
t_check "... as unreachable (0x90B00301)" ext_is dd1 2427454209
t_check "... after the transmit span, with a clear error" grep -q 'dd1: coap: job jobD failed: the device did not answer the image upload in 3 s' "$T_DIR/gw.log"
t_check "deltagated is still running" kill -0 "$GW_PID"
t_done
