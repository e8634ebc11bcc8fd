#!/bin/bash
# The coap driver against programs we did not write: libcoap's coap-client
# as a device (observes /state/<id>, pulls /fw/<token> block-wise, reports
# in the text form) and coap-server -d as a push target (the gateway PUTs
# the image with Block1; no install trigger: coap-server has none).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/lib-nginx.sh"
. "$top_srcdir/tests/lib-gateway.sh"
. "$top_srcdir/tests/lib-coap.sh"

t_check "mosquitto starts" t_start_mosquitto
t_check "deltagate-shadowd starts" t_start_shadowd
t_check "nginx (HTTPS) starts" t_start_nginx
t_gw_flasher

W=$NGINX_WWW
head -c 100000 /dev/urandom > "$W/v2.bin"
head -c 70000 /dev/urandom > "$W/v3.bin"
SRV_PORT=$(t_free_port udp)
while [ "$SRV_PORT" = "$COAP_PORT" ] || [ "$SRV_PORT" = "$COAPS_PORT" ]; do SRV_PORT=$(t_free_port udp); done
COAP_EXTRA='coap-install-path ""' t_coap_conf "cc1 driver=coap" \
	"p1 driver=coap mode=push address=coap://127.0.0.1:$SRV_PORT/5/0/0"
t_check "deltagated starts with the coap driver" t_gw_start
t_check "the gateway listens for CoAP" t_coap_wait_log 5 "coap: listening on"

# coap-client observes cc1's state before the job exists
"$COAP_CLIENT" -s 60 -w -o - "$COAP_URL/state/cc1" > "$T_DIR/obs.txt" 2>"$T_DIR/obs.err" &
OBS=$!
T_PIDS="$T_PIDS $OBS"
t_check "coap-client gets cc1's state (no job yet)" t_wait_for 10 grep -q '"version"' "$T_DIR/obs.txt"
t_gw_command cc1 jobC "$(t_signed_url v2.bin 600)" "$W/v2.bin"
t_check "the observer is notified of the job with a local softwareURL" \
	t_wait_for 30 grep -q "\"jobId\":\"jobC\".*\"softwareURL\":\"coap://127.0.0.1:$COAP_PORT/fw/" "$T_DIR/obs.txt"
kill "$OBS" 2>/dev/null

"$COAP_CLIENT" -o "$T_DIR/state.json" "$COAP_URL/state/cc1" 2>/dev/null
t_check "GET /state/cc1 is JSON with jobId, size and sha256" \
	jq -e ".jobId == \"jobC\" and .size == 100000 and .sha256 == \"$(t_sha "$W/v2.bin")\"" "$T_DIR/state.json"
URL=$(jq -r .softwareURL "$T_DIR/state.json")
"$COAP_CLIENT" -b 1024 -o "$T_DIR/fw.bin" "$URL" 2>"$T_DIR/fw.err"
t_check "coap-client pulls the image block-wise: same bytes" cmp "$T_DIR/fw.bin" "$W/v2.bin"
"$COAP_CLIENT" -b 64 -o "$T_DIR/fw64.bin" "$URL" 2>/dev/null
t_check "... and with 64-byte blocks" cmp "$T_DIR/fw64.bin" "$W/v2.bin"
"$COAP_CLIENT" -o "$T_DIR/fw0.bin" "$URL" 2>/dev/null
t_check "... and with no Block2 option (gateway's block size)" cmp "$T_DIR/fw0.bin" "$W/v2.bin"
t_check "a report for another job is refused (4.09)" sh -c \
	"'$COAP_CLIENT' -m post -e 'jobID:nope SUCCESS' '$COAP_URL/state/cc1' 2>&1 | grep -q '4.09'"
"$COAP_CLIENT" -m post -e 'jobID:jobC SUCCESS' "$COAP_URL/state/cc1" > "$T_DIR/rep.out" 2>&1
t_check "cc1's text report completes the job: shadow SUCCEEDED" t_gw_wait_status cc1 jobC SUCCEEDED 30
t_check "the same report again is answered (idempotent), not refused" sh -c \
	"! '$COAP_CLIENT' -m post -e 'jobID:jobC SUCCESS' '$COAP_URL/state/cc1' 2>&1 | grep -q '4\.'"
"$COAP_CLIENT" -o - "$URL" > "$T_DIR/after.out" 2>&1
t_check "the token of a finished delivery is gone (4.04)" grep -q "4.04" "$T_DIR/after.out"

# push to coap-server -d (stores what is PUT; GET returns it)
coap-server-openssl -A 127.0.0.1 -p "$SRV_PORT" -d 4 -v 0 >"$T_DIR/srv.log" 2>&1 &
SRV=$!
T_PIDS="$T_PIDS $SRV"
t_wait_for 5 sh -c "ss -Hlun 'sport = :$SRV_PORT' | grep -q ."
t_gw_command p1 jobS "$(t_signed_url v3.bin 600)" "$W/v3.bin"
t_check "the gateway pushes the image into coap-server's /5/0/0 (same bytes)" t_wait_for 30 sh -c \
	"'$COAP_CLIENT' -o '$T_DIR/pushed.bin' coap://127.0.0.1:$SRV_PORT/5/0/0 2>/dev/null; cmp -s '$T_DIR/pushed.bin' '$W/v3.bin'"
t_check "after the upload p1 stays IN_PROGRESS until its report" t_gw_wait_status p1 jobS IN_PROGRESS 10
"$COAP_CLIENT" -m put -e '{"jobId":"jobS","status":"SUCCEEDED","version":"3.0"}' "$COAP_URL/state/p1" >/dev/null 2>&1
t_check "p1's JSON report completes the push: shadow SUCCEEDED" t_gw_wait_status p1 jobS SUCCEEDED 30
t_check "deltagated is still running" kill -0 "$GW_PID"
t_done
