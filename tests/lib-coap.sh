# tests/lib-coap.sh - deltagated's coap driver and the device simulator
# (sourced after lib.sh, lib-nginx.sh and lib-gateway.sh).
#
#   t_coap_conf DEVICE_LINES...   gw.conf (t_gw_conf) plus coap-listen on
#                                 COAP_PORT, coaps-listen on COAPS_PORT and
#                                 coap-secret $COAP_SECRET; extra options in
#                                 $COAP_EXTRA (one per line)
#   t_coap_sim ARGS...            start the simulator in the background
#                                 (output $T_DIR/sim.<n>.log); SIM_PID
#   t_coap_get PATH [ARGS]        coap-client GET, body on stdout, the
#                                 response code line on stderr
COAP_DEVICE="$top_builddir/examples/coap-device/coap-device"
COAP_CLIENT=${COAP_CLIENT:-coap-client-openssl}
COAP_PORT=$(t_free_port udp)
COAPS_PORT=$(t_free_port udp)
while [ "$COAPS_PORT" = "$COAP_PORT" ]; do COAPS_PORT=$(t_free_port udp); done
COAP_SECRET=${COAP_SECRET:-test-secret-$$}
COAP_URL="coap://127.0.0.1:$COAP_PORT"
COAPS_URL="coaps://127.0.0.1:$COAPS_PORT"
SIM_N=0

t_coap_conf() {
	t_gw_conf "$@"
	{
		echo "coap-listen 127.0.0.1:$COAP_PORT"
		echo "coaps-listen 127.0.0.1:$COAPS_PORT"
		echo "coap-secret $COAP_SECRET"
		if [ -n "${COAP_EXTRA:-}" ]; then printf '%s\n' "$COAP_EXTRA"; fi
	} >> "$T_DIR/gw.conf"
}

t_coap_sim() {
	SIM_N=$((SIM_N + 1))
	"$COAP_DEVICE" --gateway "$COAP_URL" --dir "$T_DIR/devices" "$@" \
		> "$T_DIR/sim.$SIM_N.out" 2> "$T_DIR/sim.$SIM_N.log" &
	SIM_PID=$!
	T_PIDS="$T_PIDS $SIM_PID"
}

# t_coap_wait_log SECONDS PATTERN: the gateway's log shows PATTERN
t_coap_wait_log() { t_wait_for "$1" grep -q -- "$2" "$T_DIR/gw.log"; }
