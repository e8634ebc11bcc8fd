#!/bin/sh
# Serial throughput as a fraction of the line's raw byte rate, for our three
# engines and the reference tools, in the same run, into the simulator
# (examples/serial-device) on a pty paced at BAUD: a byte takes 10 bit
# times (8N1; YMODEM, SMP) or 11 (8E1, the STM32 ROM bootloader), in both
# directions, and an idle line banks no time. Every tool goes through the
# same simulator pacing; the image the device stored is compared after
# each run.
#   ymodem: tests/serial_send (dg_ymodem) vs lrzsz `sb -k --ymodem`
#   stm32:  tests/serial/sproto-run (dg_stm32; it reads every chunk back
#           unless verify=no) vs `stm32flash -w -v` and `stm32flash -w`
#   smp:    tests/serial/sproto-run (dg_smp, default 256-byte chunks, and
#           chunk=1024); no SMP reference tool is installed
# Usage: bench/serial/run.sh [BUILD] [BAUDS] [BYTES]
#   (defaults: build, "115200 921600", 131072)
set -eu
B=${1:-build}; BAUDS=${2:-115200 921600}; SIZE=${3:-131072}
SIMPID=
W=$(mktemp -d)
trap 'if [ -n "$SIMPID" ]; then kill "$SIMPID" 2>/dev/null || true; fi; rm -rf "$W"' EXIT
head -c "$SIZE" /dev/urandom >"$W/img"
SIM="$B/examples/serial-device/serial-device"
RUN="$B/tests/serial/sproto-run"

# sim PERSONALITY BAUD BITS [opts]: a fresh device "d" on $W/tty
sim() {
	_p=$1; _b=$2; _bits=$3; shift 3
	if [ -n "$SIMPID" ]; then kill "$SIMPID"; wait "$SIMPID" 2>/dev/null || true; fi
	rm -f "$W/ready" "$W/d.img" "$W/d.version"
	"$SIM" --name d --personality "$_p" --dir "$W" --link "$W/tty" \
		--ready-file "$W/ready" --baud "$_b" --bits "$_bits" "$@" 2>"$W/sim.log" &
	SIMPID=$!
	while [ ! -s "$W/ready" ]; do sleep 0.1; done   # bench only: not a test
}
now() { date +%s.%N; }
# run PROTO BAUD BITS TOOL cmd...: one row of the table
run() {
	_proto=$1; _baud=$2; _bits=$3; _tool=$4; shift 4
	t0=$(now)
	if ! "$@" >"$W/out" 2>&1; then
		echo "FAILED: $*"; tail -5 "$W/out"; exit 1
	fi
	t1=$(now)
	# the STM32 flash image is the flash up to the highest byte written
	cmp -s -n "$SIZE" "$W/img" "$W/d.img" || { echo "image differs after: $*"; exit 1; }
	echo "$t0 $t1" | awk -v n="$SIZE" -v baud="$_baud" -v bits="$_bits" \
		-v p="$_proto" -v tool="$_tool" '{ t = $2 - $1; r = baud / bits
		printf "| %s | %d | %s | %d | %.2f | %.0f | %.0f | %.1f %% |\n",
			p, baud, tool, n, t, n / t, r, 100 * n / t / r }'
}
echo "machine: $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "image $SIZE bytes of /dev/urandom; $(sb --version 2>&1 | head -1); $(stm32flash -h 2>&1 | head -1)"
echo "| protocol | baud | sender | bytes | s | B/s | line B/s | of line rate |"
echo "|---|---|---|---|---|---|---|---|"
for baud in $BAUDS; do
	sim ymodem "$baud" 10
	printf 'update\r' >"$W/tty"
	run ymodem "$baud" 10 "dg_ymodem (serial_send)" "$B/tests/serial_send" -b "$baud" "$W/tty" "$W/img"
	printf 'update\r' >"$W/tty"
	run ymodem "$baud" 10 "lrzsz sb -k --ymodem" sh -c "sb -k --ymodem '$W/img' <'$W/tty' >'$W/tty'"

	# a pty cannot carry parity: the host side stays 8N1 (as in test 72),
	# the simulator paces 11 bits a byte as the 8E1 line would
	sim stm32 "$baud" 11 -o flash-size=4194304
	run stm32 "$baud" 11 "dg_stm32 (sproto-run)" "$RUN" --engine stm32 --tty "$(readlink "$W/tty")" --image "$W/img" --baud "$baud"
	sim stm32 "$baud" 11 -o flash-size=4194304
	run stm32 "$baud" 11 "dg_stm32 verify=no" "$RUN" --engine stm32 --tty "$(readlink "$W/tty")" --image "$W/img" --baud "$baud" --opt verify=no
	sim stm32 "$baud" 11 -o flash-size=4194304
	run stm32 "$baud" 11 "stm32flash -w -v" stm32flash -m 8n1 -b "$baud" -w "$W/img" -v "$(readlink "$W/tty")"
	sim stm32 "$baud" 11 -o flash-size=4194304
	run stm32 "$baud" 11 "stm32flash -w" stm32flash -m 8n1 -b "$baud" -w "$W/img" "$(readlink "$W/tty")"

	sim smp "$baud" 10
	run smp "$baud" 10 "dg_smp (sproto-run)" "$RUN" --engine smp --tty "$(readlink "$W/tty")" --image "$W/img" --baud "$baud"
	sim smp "$baud" 10
	run smp "$baud" 10 "dg_smp chunk=1024" "$RUN" --engine smp --tty "$(readlink "$W/tty")" --image "$W/img" --baud "$baud" --opt chunk=1024
done
