#!/bin/bash
# Push mode with the simulator (the gateway PUTs the image with Block1 to
# each device's /5/0/0, POSTs /5/0/2, the device verifies, installs and
# reports), and a pull over a lossy link: the simulator drops 5% of the
# datagrams in each direction and still installs the exact image.
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
t_coap_conf "u1 driver=coap" "u2 driver=coap" "l1 driver=coap"
t_check "deltagated starts with the coap driver" t_gw_start
PUSH_PORT=$(t_free_port udp)
while ss -Hlun "sport = :$((PUSH_PORT + 1))" | grep -q .; do PUSH_PORT=$(t_free_port udp); done

t_coap_sim --count 2 --id-prefix u --push --push-port "$PUSH_PORT" --once --timeout 120 --version 1
SIMP=$SIM_PID
t_coap_sim --count 1 --id-prefix l --loss 0.05 --once --timeout 120 --version 1
SIML=$SIM_PID
t_check "the devices register (two in push mode)" t_wait_for 10 sh -c \
	"[ \$(grep -c 'coap: registered (push' '$T_DIR/gw.log') -eq 2 ] && grep -q 'l1: coap: registered (pull' '$T_DIR/gw.log'"
URL=$(t_signed_url v2.bin 600)
for d in u1 u2 l1; do t_gw_command $d jobQ "$URL" "$W/v2.bin"; done
t_check "u1 succeeds (push)" t_gw_wait_status u1 jobQ SUCCEEDED 60
t_check "u2 succeeds (push)" t_gw_wait_status u2 jobQ SUCCEEDED 60
t_check "l1 succeeds over the lossy link" t_gw_wait_status l1 jobQ SUCCEEDED 90
wait "$SIMP"; rcp=$?
wait "$SIML"; rcl=$?
t_check "the simulators finished (exit 0)" test "$rcp" -eq 0 -a "$rcl" -eq 0
for d in u1 u2 l1; do t_check "$d holds the image" cmp "$T_DIR/devices/$d/image.bin" "$W/v2.bin"; done
t_check "the push went through the gateway's Block1 PUTs" grep -q 'u1: coap: delivering job jobQ (307200 bytes, push)' "$T_DIR/gw.log"
t_check "the lossy device retransmitted and dropped answers (the loss was real)" \
	awk '$1 == "l1" { for (i = 1; i <= NF; i++) { if ($(i+1) == "retransmitted,") r = $i; if ($(i+1) == "answers") d = $i } } END { exit !(r > 0 && d > 0) }' "$T_DIR/sim.2.out"
for f in "$T_DIR"/sim.*.out; do t_diag "$(cat "$f")"; done
t_check "deltagated is still running" kill -0 "$GW_PID"
t_done
