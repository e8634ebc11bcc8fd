#!/bin/sh
# YMODEM-1K throughput at a paced line: our sender (tests/serial_send, the
# dg_ymodem engine) vs lrzsz's `sb -k --ymodem`, both into the simulator's
# YMODEM bootloader (examples/serial-device) paced at BAUD (10 bits a byte,
# both directions), in the same run. Usage: bench/serial/run.sh [BUILD] [BAUD] [BYTES]
set -eu
B=${1:-build}; BAUD=${2:-115200}; SIZE=${3:-262144}
W=$(mktemp -d)
trap 'kill $SIMPID 2>/dev/null; rm -rf "$W"' EXIT
head -c "$SIZE" /dev/urandom >"$W/img"
"$B/examples/serial-device/serial-device" --name b --dir "$W" --link "$W/tty" \
	--ready-file "$W/ready" --baud "$BAUD" 2>"$W/sim.log" &
SIMPID=$!
while [ ! -s "$W/ready" ]; do sleep 0.1; done   # bench only: not a test
now() { date +%s.%N; }
run() {
	printf 'update\r' >"$W/tty"
	t0=$(now); "$@" >/dev/null 2>&1; t1=$(now)
	cmp -s "$W/img" "$W/b.img" || { echo "image differs after: $*"; exit 1; }
	rm -f "$W/b.img"
	echo "$t0 $t1" | awk -v n="$SIZE" -v baud="$BAUD" \
		'{ t = $2 - $1; printf "%.2f s  %.0f B/s  %.1f%% of line rate\n", t, n / t, 100 * n / t / (baud / 10) }'
}
echo "machine: $(uname -m), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "image $SIZE bytes, line $BAUD baud ($((BAUD / 10)) B/s raw)"
printf 'dg_ymodem (serial_send):  '; run "$B/tests/serial_send" -b 115200 "$W/tty" "$W/img"
printf 'sb -k --ymodem (lrzsz):   '; run sh -c "sb -k --ymodem '$W/img' <'$W/tty' >'$W/tty'"
