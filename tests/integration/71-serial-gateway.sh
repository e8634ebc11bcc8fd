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
# shellcheck disable=SC2317 # called through t_check
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
# (CAN CAN first: a receiver left in a YMODEM session by a gateway that
# died goes back to its menu, as sb -k does)
IAP="protocol=ymodem version-send=\\x18\\x18\\x18\\x18\\x18\\rversion\\r version-expect='version ([0-9.]+)\\r' enter-send=update\\r enter-expect='bootloader ready\\r\\n' done-expect='install ok' fail-expect='install failed' chat-timeout=3 retries=4 reopen-delay=300"
# the simulator's application console (--console) in front of the STM32
# and SMP bootloaders
APP="version-send=version\\r version-expect='version ([0-9.+]+)\\r' enter-send=bootloader\\r enter-expect='entering bootloader\\r\\n'"

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
		echo "serial-model \"iapq $IAP retries=1 chat-timeout=2\""
		echo "serial-model \"iapf $IAP unit-timeout=1500 unit-retries=20\""
		echo "serial-model \"rom protocol=stm32 parity=even $APP chat-timeout=3 retries=2 reopen-delay=300 unit-timeout=1000\""
		echo "serial-model \"mcuboot protocol=smp $APP chat-timeout=3 retries=2 reopen-delay=300 unit-timeout=1000\""
		for d in "$@"; do echo "device \"$d\""; done
	} > "$T_DIR/gw.conf"
}

# an image the YMODEM simulator reads its version from (DGVERSION=)
# shellcheck disable=SC2317
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
t_check "STM32 device r1 starts" sim r1 stm32 --console -o version=2.0.0
# an image with an MCUboot header (magic, version 2.3.4+5 at offset 20)
{
	printf '\x3d\xb8\xf3\x96\x00\x00\x00\x00\x20\x00\x00\x00\x00\x00\x00\x00'
	printf '\x00\x00\x00\x00\x02\x03\x04\x00\x05\x00\x00\x00\x00\x00\x00\x00'
	head -c 60000 /dev/urandom
} > "$W/m.bin"
t_check "SMP device m1 starts" sim m1 smp --console
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
t_check "r1: versions read through the console chat before and after" \
	sh -c "grep -q 'r1: serial: device runs version 1.0.0' '$T_DIR/gw.log' && grep -q 'r1: serial: version after install: 2.0.0' '$T_DIR/gw.log'"
t_check "m1: versions read through the console chat before and after" \
	sh -c "grep -q 'm1: serial: device runs version 1.0.0' '$T_DIR/gw.log' && grep -q 'm1: serial: version after install: 2.3.4+5' '$T_DIR/gw.log'"
t_check "r1 and m1 report their new versions upstream" sh -c \
	"'$DELTAGATE' shadow --broker '$MQTT_URL' get r1 | jq -e '.state.reported.softwareVersion == \"2.0.0\"' && '$DELTAGATE' shadow --broker '$MQTT_URL' get m1 | jq -e '.state.reported.softwareVersion == \"2.3.4+5\"'"

# --- 2. faults
mkimg "$W/p.bin" 2.0.0 200000
mkimg "$W/bad.bin" 9.9.9 20000
t_check "device p1 that loses power at byte 100000 starts" sim p1 ymodem --cut-at 100000 --off-ms 1000
t_check "device q1 that never answers starts" sim q1 ymodem --stall-at 1
t_check "device v1 starts" sim v1 ymodem
t_check "device f1 with bit errors 1e-4 on its line starts" sim f1 ymodem --flip-rate 1e-4 --seed 7
DEVS="p1 model=iap|q1 model=iapq|v1 model=iap|f1 model=iapf"
IFS='|' read -r -a DL <<< "$DEVS"
lines=()
for x in "${DL[@]}"; do n=${x%% *}; lines+=("$n driver=serial tty=$T_DIR/$n.tty lock-dir=$T_DIR ${x#* }"); done
t_stop_pid "$GW_PID"
gw_conf "${lines[@]}"
t_check "deltagated restarts with the fault devices" t_gw_start
GW_VERSION=2.0.0 t_gw_command p1 jobP "$NGINX_URL/p.bin" "$W/p.bin"
GW_VERSION=2.0.0 t_gw_command q1 jobQ "$NGINX_URL/p.bin" "$W/p.bin"
GW_VERSION=2.0.0 t_gw_command v1 jobV "$NGINX_URL/bad.bin" "$W/bad.bin"
GW_VERSION=2.0.0 t_gw_command f1 jobF "$NGINX_URL/p.bin" "$W/p.bin"
t_check "p1 (power cut mid-transfer) succeeds" t_gw_wait_status p1 jobP SUCCEEDED 120
t_check "p1 lost power at byte 100000" grep -q "power cut at byte 100000" "$T_DIR/p1.log"
t_check "p1: the line was found gone and the attempt run again" \
	grep -Eq "p1: serial: attempt 1/5 failed \(0x90D00005\) in transfer" "$T_DIR/gw.log"
t_check "p1 holds the image" cmp "$SIMDIR/p1.img" "$W/p.bin"
t_check "q1 (never answers) fails" t_gw_wait_status q1 jobQ FAILED 120
t_check "q1: with the timeout code 0x90D00001" \
	sh -c "'$DELTAGATE' shadow --broker '$MQTT_URL' get q1 | jq -e '.state.reported.extendedResultCode == $(( 0x90D00001 ))'"
t_check "q1: after its retry limit (2 attempts), no more" \
	sh -c "grep -q 'q1: serial: attempt 2/2 failed (0x90D00001)' '$T_DIR/gw.log' && ! grep -q 'q1: serial: attempt 3' '$T_DIR/gw.log'"
t_check "v1 (wrong version after the install) fails" t_gw_wait_status v1 jobV FAILED 120
t_check "v1: with the version code 0x90D00011" \
	sh -c "'$DELTAGATE' shadow --broker '$MQTT_URL' get v1 | jq -e '.state.reported.extendedResultCode == $(( 0x90D00011 ))'"
t_check "v1: the gateway says which version it read" grep -q "v1: .*reports version 9.9.9 after the install, not 2.0.0" "$T_DIR/gw.log"
t_check "f1 (bit errors) succeeds" t_gw_wait_status f1 jobF SUCCEEDED 180
t_check "f1 holds the image" cmp "$SIMDIR/f1.img" "$W/p.bin"
rtx=$(sed -n 's/.*f1: serial: transfer end (ok=1, \([0-9]*\) retransmissions).*/\1/p' "$T_DIR/gw.log" | tail -1)
t_diag "f1: ${rtx:-?} blocks retransmitted"
t_check "f1: the retransmissions are logged (more than 0)" test "${rtx:-0}" -gt 0

# --- 3. four devices on one RS-485 link: one transfer at a time
mkimg "$W/b.bin" 2.0.0 100000
lines=()
for n in b1 b2 b3 b4; do
	t_check "bus device $n starts" sim "$n" ymodem
	lines+=("$n driver=serial tty=$T_DIR/$n.tty lock-dir=$T_DIR model=iap link=bus1")
done
t_stop_pid "$GW_PID"
gw_conf "${lines[@]}"
t_check "deltagated restarts with four devices on link bus1" t_gw_start
for n in b1 b2 b3 b4; do GW_VERSION=2.0.0 t_gw_command "$n" jobB "$NGINX_URL/b.bin" "$W/b.bin"; done
for n in b1 b2 b3 b4; do
	t_check "$n succeeds" t_gw_wait_status "$n" jobB SUCCEEDED 120
	t_check "$n holds the image" cmp "$SIMDIR/$n.img" "$W/b.bin"
done
# from the gateway's log (one thread writes it in order): a delivery on
# the link starts only after the one before it ended
maxc=$(grep -E 'b[1-4]: serial: (delivery of job|delivery (done|failed))' "$T_DIR/gw.log" |
	awk '/delivery of job/ { n++; s++; if (n > m) m = n } /delivery (done|failed)/ { n-- } END { print m + 0, s + 0 }')
t_diag "bus1: most deliveries at once, deliveries: $maxc"
t_check "never two transfers at once on bus1 (4 deliveries, at most 1 at a time)" test "$maxc" = "1 4"

# --- 4. kill -9 of the gateway mid-transfer (paused at the fault point)
mkimg "$W/k.bin" 3.0.0 200000
t_check "device k1 starts" sim k1 ymodem
t_stop_pid "$GW_PID"
gw_conf "k1 driver=serial tty=$T_DIR/k1.tty lock-dir=$T_DIR model=iap"
t_check "deltagated restarts" t_gw_start
t_check "pause at driver/serial/mid-transfer" t_fault_on "$GW_PID" driver/serial/mid-transfer pause onetime
GW_VERSION=3.0.0 t_gw_command k1 jobK "$NGINX_URL/k.bin" "$W/k.bin"
t_check "the gateway stops half way through k1's transfer" t_wait_stopped 60 "$GW_PID"
kill -9 "$GW_PID"; wait "$GW_PID" 2>/dev/null
t_check "k1 does not hold the image yet" sh -c "! cmp -s '$SIMDIR/k1.img' '$W/k.bin'"
t_check "deltagated restarts after kill -9" t_gw_start
t_check "k1's job completes after the restart" t_gw_wait_status k1 jobK SUCCEEDED 120
t_check "k1 holds the image" cmp "$SIMDIR/k1.img" "$W/k.bin"
t_check "k1 reports version 3.0.0" grep -q "k1: serial: version after install: 3.0.0" "$T_DIR/gw.log"

# --- 4b. eight independent lines at once
mkimg "$W/e.bin" 2.0.0 100000
lines=()
for i in 1 2 3 4 5 6 7 8; do
	t_check "line device e$i (paced at 115200 baud) starts" sim "e$i" ymodem --baud 115200
	lines+=("e$i driver=serial tty=$T_DIR/e$i.tty lock-dir=$T_DIR model=iap")
done
t_stop_pid "$GW_PID"
gw_conf "${lines[@]}"
t_check "deltagated restarts with eight serial lines" t_gw_start --max-deliveries 8
for i in 1 2 3 4 5 6 7 8; do GW_VERSION=2.0.0 t_gw_command "e$i" jobE "$NGINX_URL/e.bin" "$W/e.bin"; done
ok8=0
for i in 1 2 3 4 5 6 7 8; do
	t_gw_wait_status "e$i" jobE SUCCEEDED 120 && cmp -s "$SIMDIR/e$i.img" "$W/e.bin" && ok8=$((ok8 + 1))
done
t_check "all eight lines updated (cmp of each image)" test "$ok8" -eq 8
t_diag "eight lines: most deliveries at once: $(grep -E 'e[1-8]: serial: (delivery of job|delivery (done|failed))' "$T_DIR/gw.log" |
	awk '/delivery of job/ { n++; if (n > m) m = n } /delivery (done|failed)/ { n-- } END { print m + 0 }')"

# --- 5. bad configurations: file:line, exit code 2
# shellcheck disable=SC2317 # called through t_check
badconf() {
	{ echo "db $T_DIR/x.db"; echo "cache-root $T_DIR/xc"; echo "serial-model \"ok protocol=ymodem\""; echo "$1"; } > "$T_DIR/bad.conf"
	"$DELTAGATED" -c "$T_DIR/bad.conf" --test-config > /dev/null 2> "$T_DIR/bad.err"; echo $? > "$T_DIR/bad.rc"
	t_diag "$(cat "$T_DIR/bad.err")"
	[ "$(cat "$T_DIR/bad.rc")" -eq 2 ] && grep -q "bad.conf:4: .*$2" "$T_DIR/bad.err"
}
t_check "a missing tty: bad.conf:4, exit 2" badconf "device \"d1 driver=serial tty=$T_DIR/nonexistent model=ok\"" "nonexistent: No such file"
t_check "an unsupported baud rate: bad.conf:4, exit 2" badconf "serial-model \"m2 protocol=ymodem baud=12345\"" "unsupported baud rate '12345'"
t_check "a device's unsupported baud rate: bad.conf:4, exit 2" badconf "device \"d1 driver=serial tty=/dev/null model=ok baud=7\"" "unsupported baud rate '7'"
t_check "a chat regex that does not parse: bad.conf:4, exit 2" badconf "serial-model \"m2 protocol=ymodem version-expect='version ([0-9.]+'\"" "version-expect: the regular expression .* does not parse"
t_check "a version regex without its capture group: bad.conf:4, exit 2" badconf "serial-model \"m2 protocol=ymodem version-expect='version'\"" "needs exactly one capture group"
t_check "an option the engine refuses: bad.conf:4, exit 2" badconf "serial-model \"m2 protocol=stm32 opt.nosuch=1\"" "stm32 engine"
t_check "an unknown protocol: bad.conf:4, exit 2" badconf "serial-model \"m2 protocol=xmodem\"" "protocol: 'xmodem'"
{ echo "db $T_DIR/x.db"; echo "cache-root $T_DIR/xc"; echo "serial-model \"ok protocol=ymodem\""
  echo "device \"d1 driver=serial tty=$T_DIR/nonexistent model=ok hotplug=yes\""; } > "$T_DIR/hp.conf"
t_check "a missing tty with hotplug=yes is accepted" "$DELTAGATED" -c "$T_DIR/hp.conf" --test-config
{ echo "db $T_DIR/x.db"; echo "cache-root $T_DIR/xc"; echo "serial-model \"ok protocol=ymodem\""
  echo "device \"d1 driver=serial tty=/dev/null model=nosuch\""; } > "$T_DIR/um.conf"
timeout 20 "$DELTAGATED" -c "$T_DIR/um.conf" --broker "$MQTT_URL" > /dev/null 2> "$T_DIR/um.err"; rc=$?
t_check "an undefined model stops the start-up (exit $rc) with a clear message" \
	sh -c "[ $rc -ne 0 ] && grep -q 'model=nosuch is not defined by a serial-model line' '$T_DIR/um.err'"

t_check "deltagated is still running" kill -0 "$GW_PID"
t_done
