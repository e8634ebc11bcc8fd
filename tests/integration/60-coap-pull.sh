#!/bin/bash
# The coap driver end to end: real mosquitto, deltagate-shadowd, nginx
# (HTTPS, secure_link) and deltagated; simulated CoAP devices register,
# observe their state, pull the image block-wise from /fw/<token>, verify,
# install and acknowledge. One device fails its install, one crashes in the
# middle of the download and resumes from the block it had.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/lib-nginx.sh"
. "$top_srcdir/tests/lib-gateway.sh"
. "$top_srcdir/tests/lib-coap.sh"

t_check "mosquitto starts" t_start_mosquitto
t_check "deltagate-shadowd starts" t_start_shadowd
t_check "nginx (HTTPS) starts" t_start_nginx
t_gw_flasher

W=$NGINX_WWW
head -c 307200 /dev/urandom > "$W/v2.bin"
t_coap_conf "c1 driver=coap" "c2 driver=coap" "c3 driver=coap" "k1 driver=coap"
t_check "deltagated starts with the coap driver" t_gw_start
t_check "the gateway listens for CoAP" t_coap_wait_log 5 "coap: listening on 127.0.0.1:$COAP_PORT"

t_coap_sim --count 3 --id-prefix c --fail-install c3 --once --timeout 120 --version 1
SIMA=$SIM_PID
t_coap_sim --count 1 --id-prefix k --crash-after-blocks 40 --once --timeout 120 --version 1
SIMB=$SIM_PID
t_check "the simulated devices register" t_wait_for 10 sh -c \
	"[ \$(grep -c 'coap: registered' '$T_DIR/gw.log') -ge 4 ]"

URL=$(t_signed_url v2.bin 600)
for d in c1 c2 c3 k1; do t_gw_command $d jobP "$URL" "$W/v2.bin"; done

wait "$SIMB"; rcb=$?
t_check "k1 crashes mid-download (exit 3)" test "$rcb" -eq 3
part=$(stat -c %s "$T_DIR/devices/k1/partial" 2>/dev/null || echo 0)
t_diag "k1 had $part bytes when it crashed"
t_check "k1 kept 40 blocks (40960 bytes)" test "$part" -eq 40960
t_coap_sim --count 1 --id-prefix k --once --timeout 120 --version 1
SIMB=$SIM_PID

t_check "c1 succeeds" t_gw_wait_status c1 jobP SUCCEEDED 60
t_check "c2 succeeds" t_gw_wait_status c2 jobP SUCCEEDED 60
t_check "c3 fails its install" t_gw_wait_status c3 jobP FAILED 60
t_check "k1 succeeds after its restart" t_gw_wait_status k1 jobP SUCCEEDED 60
wait "$SIMA"; rca=$?
wait "$SIMB"; rcb=$?
t_check "the simulators finished (exit 0)" test "$rca" -eq 0 -a "$rcb" -eq 0
t_check "k1 resumed at block 40" grep -q "resuming at block 40" "$T_DIR/sim.3.log"
for d in c1 c2 k1; do
	t_check "$d holds the image" cmp "$T_DIR/devices/$d/image.bin" "$W/v2.bin"
done
t_check "c3 installed nothing" test ! -e "$T_DIR/devices/c3/image.bin"
t_gw_reported c1 > "$T_DIR/rep.c1"
t_gw_reported c3 > "$T_DIR/rep.c3"
t_diag "c1: $(cat "$T_DIR/rep.c1")"
t_diag "c3: $(cat "$T_DIR/rep.c3")"
t_check "c1: outcome 1 with the new hash" \
	jq -e ".resultCode == 1 and .extendedResultCode == 0 and .softwareSha256 == \"$(t_sha "$W/v2.bin")\"" "$T_DIR/rep.c1"
t_check "c3: outcome 3 with the coap driver's 'device reported FAILURE' code 0x90B00300" \
	jq -e ".resultCode == 0 and .extendedResultCode == $(( 0x90B00300 ))" "$T_DIR/rep.c3"
t_check "the image was fetched from nginx once for the four devices" test "$(t_nginx_requests '/s/v2.bin')" -eq 1
t_check "the gateway's log never shows a /fw token" sh -c "! grep -q '/fw/' '$T_DIR/gw.log'"
t_check "deltagated is still running" kill -0 "$GW_PID"
for f in "$T_DIR"/sim.*.out; do t_diag "$(cat "$f")"; done
t_done
