#!/bin/bash
# The serial driver of deltagated end to end (issue 12): real mosquitto,
# deltagate-shadowd, nginx and deltagated; simulated serial field devices
# (examples/serial-device) on ptys, one per device, each with its model's
# chat script. YMODEM, STM32 and SMP devices updated (cmp of the device's
# image, SUCCEEDED upstream, the version read back through the chat), bit
# errors, a power cut mid-transfer, a device that never answers, a wrong
# version after the install, four devices on one link, kill -9 of the
# gateway mid-transfer (fault point driver/serial/mid-transfer), and bad
# configurations (file:line errors, exit code 2).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
. "$top_srcdir/tests/lib-nginx.sh"
. "$top_srcdir/tests/lib-gateway.sh"

SIMBIN="$top_builddir/examples/serial-device/serial-device"
SIMDIR="$T_DIR/sim"
mkdir -p "$SIMDIR"

# sim NAME PERSONALITY [options]: a device on a new pty; its tty is the
# symlink $T_DIR/NAME.tty (re-pointed when it comes back after a power cut)
sim() {
	_n=$1 _p=$2; shift 2
	rm -f "$T_DIR/$_n.ready"
	"$SIMBIN" --name "$_n" --personality "$_p" --dir "$SIMDIR" --link "$T_DIR/$_n.tty" \
		--ready-file "$T_DIR/$_n.ready" "$@" 2>>"$T_DIR/$_n.log" &
	T_PIDS="$T_PIDS $!"
	eval "SIM_$_n=$!"
	t_wait_for 10 test -s "$T_DIR/$_n.ready"
}

# the chat scripts of the simulator's personalities (docs/serial.md)
IAP="protocol=ymodem version-send=version\\r version-expect='version ([0-9.]+)\\r' enter-send=update\\r enter-expect='bootloader ready\\r\\n' done-expect='install ok' fail-expect='install failed' chat-timeout=3 retries=2 reopen-delay=300"

gw_conf() {
	{
		echo "gateway-id gw1"
		echo "broker $MQTT_URL"
		echo "db $GW_DB"
		echo "cache-root $GW_CACHE"
		echo "http-ca-file $NGINX_CA"
		echo "report-rate 200"
		echo "progress-interval 50"
		echo "log-level debug"
		echo "serial-model \"iap $IAP\""
		echo "serial-model \"rom protocol=stm32 parity=even chat-timeout=3 retries=2 reopen-delay=300 unit-timeout=500\""
		echo "serial-model \"mcuboot protocol=smp chat-timeout=3 retries=2 reopen-delay=300 unit-timeout=1000\""
		for d in "$@"; do echo "device \"$d\""; done
	} > "$T_DIR/gw.conf"
}

# an image the YMODEM simulator reads its version from (DGVERSION=)
mkimg() { { printf 'DGVERSION=%s\n' "$2"; head -c "$3" /dev/urandom; } > "$1"; }

t_check "mosquitto starts" t_start_mosquitto
t_check "deltagate-shadowd starts" t_start_shadowd
t_check "nginx (HTTPS) starts" t_start_nginx
W=$NGINX_WWW

# --- 1. the three protocols end to end
mkimg "$W/y.bin" 2.0.0 200000
t_check "YMODEM device y1 (version 1.0.0) starts" sim y1 ymodem --version 1.0.0
gw_conf "y1 driver=serial tty=$T_DIR/y1.tty lock-dir=$T_DIR model=iap"
t_check "deltagated starts with the serial driver" t_gw_start
GW_VERSION=2.0.0 t_gw_command y1 jobY "$NGINX_URL/y.bin" "$W/y.bin"
t_check "y1 succeeds" t_gw_wait_status y1 jobY SUCCEEDED 90
t_check "y1 holds the image" cmp "$SIMDIR/y1.img" "$W/y.bin"
t_check "y1 reports version 2.0.0, read back through the chat" \
	sh -c "t() { :; }; '$DELTAGATE' shadow --broker '$MQTT_URL' get y1 | jq -e '.state.reported.softwareVersion == \"2.0.0\"'"
t_check "the gateway read the version before and after" \
	sh -c "grep -q 'y1: serial: device runs version 1.0.0' '$T_DIR/gw.log' && grep -q 'y1: serial: version after install: 2.0.0' '$T_DIR/gw.log'"

mkimg "$W/s.bin" 2.0.0 60000
t_check "STM32 device r1 starts" sim r1 stm32 -o version=2.0.0
# an image with an MCUboot header (magic, version 2.3.4+5 at offset 20)
{
	printf '\x3d\xb8\xf3\x96\x00\x00\x00\x00\x20\x00\x00\x00\x00\x00\x00\x00'
	printf '\x00\x00\x00\x00\x02\x03\x04\x00\x05\x00\x00\x00\x00\x00\x00\x00'
	head -c 60000 /dev/urandom
} > "$W/m.bin"
t_check "SMP device m1 starts" sim m1 smp
gw_conf "y1 driver=serial tty=$T_DIR/y1.tty lock-dir=$T_DIR model=iap" \
	"r1 driver=serial tty=$T_DIR/r1.tty lock-dir=$T_DIR model=rom" \
	"m1 driver=serial tty=$T_DIR/m1.tty lock-dir=$T_DIR model=mcuboot baud=230400"
t_stop_pid "$GW_PID"
t_check "deltagated restarts with three serial devices" t_gw_start
GW_VERSION=2.0.0 t_gw_command r1 jobR "$NGINX_URL/s.bin" "$W/s.bin"
GW_VERSION=2.3.4+5 t_gw_command m1 jobM "$NGINX_URL/m.bin" "$W/m.bin"
t_check "r1 (STM32 ROM bootloader) succeeds" t_gw_wait_status r1 jobR SUCCEEDED 90
t_check "m1 (MCUboot SMP) succeeds" t_gw_wait_status m1 jobM SUCCEEDED 90
t_check "r1 holds the image" cmp "$SIMDIR/r1.img" "$W/s.bin"
t_check "m1 holds the image" cmp "$SIMDIR/m1.img" "$W/m.bin"
t_check "m1 installed the version of its MCUboot header" grep -qx "2.3.4+5" "$SIMDIR/m1.version"

t_done
