#!/bin/bash
# Push over a lossy link: the gateway PUTs a 300 KiB image with Block1 to a
# simulated device through bench/udp_relay, which drops 5% of the datagrams
# each way (seeded). The device must receive the exact bytes, install them
# and report; the job succeeds. The gateway estimates the link's RTT and
# retransmits from it (timings are measured by bench/coap, not here).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/lib-nginx.sh"
. "$top_srcdir/tests/lib-gateway.sh"
. "$top_srcdir/tests/lib-coap.sh"
RELAY="$top_builddir/bench/udp_relay"

t_check "mosquitto starts" t_start_mosquitto
t_check "deltagate-shadowd starts" t_start_shadowd
t_check "nginx (HTTPS) starts" t_start_nginx
t_gw_flasher

W=$NGINX_WWW
head -c 307200 /dev/urandom > "$W/v3.bin"
R_PUSH=$(t_free_port udp)
while [ "$R_PUSH" = "$COAP_PORT" ] || [ "$R_PUSH" = "$COAPS_PORT" ]; do R_PUSH=$(t_free_port udp); done
PUSH_PORT=$(t_free_port udp)
while [ "$PUSH_PORT" = "$COAP_PORT" ] || [ "$PUSH_PORT" = "$COAPS_PORT" ] || [ "$PUSH_PORT" = "$R_PUSH" ]; do PUSH_PORT=$(t_free_port udp); done
t_coap_conf "lp1 driver=coap mode=push address=coap://127.0.0.1:$R_PUSH/5/0/0"
t_check "deltagated starts with the coap driver" t_gw_start
"$RELAY" -l 0.05 -s 5 "$R_PUSH" "$PUSH_PORT" > "$T_DIR/relay.out" 2> "$T_DIR/relay.err" &
RELAY_PID=$!
T_PIDS="$T_PIDS $RELAY_PID"
t_check "the lossy relay listens" t_wait_for 5 sh -c "ss -Hlun 'sport = :$R_PUSH' | grep -q ."

t_coap_sim --count 1 --id-prefix lp --push --push-port "$PUSH_PORT" --once --timeout 120 --version 1
SIM=$SIM_PID
t_check "the device registers in push mode" t_coap_wait_log 10 'lp1: coap: registered (push'
URL=$(t_signed_url v3.bin 600)
t_gw_command lp1 jobR "$URL" "$W/v3.bin"
t_check "the push over the lossy link succeeds" t_gw_wait_status lp1 jobR SUCCEEDED 100
wait "$SIM"; rc=$?
t_check "the simulator finished (exit 0)" test "$rc" -eq 0
t_check "the device holds the exact image" cmp "$T_DIR/devices/lp1/image.bin" "$W/v3.bin"
kill "$RELAY_PID"; wait "$RELAY_PID"
t_diag "$(cat "$T_DIR/relay.out")"
t_check "the relay dropped datagrams both ways (the loss was real)" \
	awk '{ split($5, u, "/"); split($7, d, "/"); exit !(u[2] > 0 && d[2] > 0) }' "$T_DIR/relay.out"
t_check "deltagated is still running" kill -0 "$GW_PID"
t_done
