#!/bin/bash
# Push over a lossy link: the gateway PUTs a 300 KiB image with Block1 to a
# simulated device through bench/udp_relay, which drops 5% of the datagrams
# each way (seeded) - over plain UDP, and over DTLS to a second device. The
# devices must receive the exact bytes, install them and report; the jobs
# succeed. The gateway retransmits from its RTT estimate (timings are
# measured by bench/coap, not here).
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
used="$COAP_PORT $COAPS_PORT"
port() {
	_p=$(t_free_port udp)
	while case " $used " in *" $_p "*) true ;; *) false ;; esac; do _p=$(t_free_port udp); done
	used="$used $_p"; echo "$_p"
}
R_UDP=$(port); P_UDP=$(port); R_DTLS=$(port); P_DTLS=$(port)
t_coap_conf "lp1 driver=coap mode=push address=coap://127.0.0.1:$R_UDP/5/0/0" \
	"lq1 driver=coap psk=text:key-lq1 dtls=optional mode=push address=coaps://127.0.0.1:$R_DTLS/5/0/0"
t_check "deltagated starts with the coap driver" t_gw_start
# relay LISTEN TARGET SEED NAME
relay() {
	"$RELAY" -l 0.05 -s "$3" "$1" "$2" > "$T_DIR/relay.$4.out" 2> "$T_DIR/relay.$4.err" &
	eval "RELAY_$4=\$!"
	T_PIDS="$T_PIDS $!"
	t_wait_for 5 sh -c "ss -Hlun 'sport = :$1' | grep -q ."
}
relay "$R_UDP" "$P_UDP" 5 udp; ok1=$?
relay "$R_DTLS" "$P_DTLS" 6 dtls; ok2=$?
t_check "the lossy relays listen" test "$ok1" -eq 0 -a "$ok2" -eq 0

t_coap_sim --count 1 --id-prefix lp --push --push-port "$P_UDP" --once --timeout 120 --version 1
SIM1=$SIM_PID
t_coap_sim --count 1 --id-prefix lq --push --push-port "$P_DTLS" --push-psk key-lq1 --once --timeout 120 --version 1
SIM2=$SIM_PID
t_check "the devices register in push mode" t_wait_for 10 sh -c \
	"grep -q 'lp1: coap: registered (push' '$T_DIR/gw.log' && grep -q 'lq1: coap: registered (push' '$T_DIR/gw.log'"
URL=$(t_signed_url v3.bin 600)
t_gw_command lp1 jobR "$URL" "$W/v3.bin"
t_gw_command lq1 jobR "$URL" "$W/v3.bin"
t_check "the push over the lossy link succeeds" t_gw_wait_status lp1 jobR SUCCEEDED 100
t_check "the push over DTLS over the lossy link succeeds" t_gw_wait_status lq1 jobR SUCCEEDED 100
wait "$SIM1"; rc1=$?
wait "$SIM2"; rc2=$?
t_check "the simulators finished (exit 0)" test "$rc1" -eq 0 -a "$rc2" -eq 0
t_check "the UDP device holds the exact image" cmp "$T_DIR/devices/lp1/image.bin" "$W/v3.bin"
t_check "the DTLS device holds the exact image" cmp "$T_DIR/devices/lq1/image.bin" "$W/v3.bin"
t_check "the DTLS push went over a DTLS session" grep -q 'lq1: coap: DTLS session for the push established' "$T_DIR/gw.log"
kill "$RELAY_udp" "$RELAY_dtls"; wait "$RELAY_udp" "$RELAY_dtls"
for r in udp dtls; do
	t_diag "relay $r: $(cat "$T_DIR/relay.$r.out")"
	t_check "the $r relay dropped datagrams both ways (the loss was real)" \
		awk '{ split($5, u, "/"); split($7, d, "/"); exit !(u[2] > 0 && d[2] > 0) }' "$T_DIR/relay.$r.out"
done
t_check "the gateway retransmitted the lost blocks" grep -Eq 'lp1: coap: pushed 307200 bytes, [1-9][0-9]* retransmissions' "$T_DIR/gw.log"
grep -o '[a-z0-9]*: coap: pushed .*' "$T_DIR/gw.log" | while read -r l; do t_diag "$l"; done
t_check "deltagated is still running" kill -0 "$GW_PID"
t_done
