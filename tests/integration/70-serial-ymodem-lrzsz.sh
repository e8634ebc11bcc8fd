#!/bin/sh
# Our YMODEM sender (dg_ymodem engine over dg_serial_line, driven by
# tests/serial_send) against a real receiver we did not write: lrzsz's
# `rb --ymodem`, through a socat pty pair; lrzsz's `sb --ymodem` into our
# simulator's YMODEM bootloader (examples/serial-device), so the simulator
# is checked by a real peer too; then our sender into the simulator with
# line faults. Plus: a silent receiver, a receiver that cancels, bad line
# settings, locks.
set -u
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
SEND="$top_builddir/tests/serial_send"
SIM="$top_builddir/examples/serial-device/serial-device"
W=$T_DIR
N=0

# pty_pair: a fresh socat pty pair; sets A and B to its two links
pty_pair() {
	N=$((N + 1))
	A=$W/ttyA$N
	B=$W/ttyB$N
	socat -d -d "pty,raw,echo=0,link=$A" "pty,raw,echo=0,link=$B" 2>"$W/socat$N.err" &
	T_PIDS="$T_PIDS $!"
	t_wait_for 10 test -e "$A" -a -e "$B"
}

# send_to_rb NAME SIZE: a random file through a pair, received by rb
send_to_rb() {
	pty_pair || return 1
	mkdir -p "$W/rx-$1"
	head -c "$2" /dev/urandom >"$W/$1"
	(cd "$W/rx-$1" && exec rb --ymodem <"$B" >"$B" 2>"$W/rb-$1.err") &
	_rb=$!
	T_PIDS="$T_PIDS $_rb"
	"$SEND" -t 3000 -r 10 "$A" "$W/$1" >"$W/send-$1.out" 2>"$W/send-$1.err"
	_rc=$?
	wait "$_rb"
	_rbrc=$?
	t_diag "$1: sender $_rc ($(cat "$W/send-$1.out")), rb $_rbrc"
	[ "$_rc" -eq 0 ] && [ "$_rbrc" -eq 0 ] && cmp "$W/$1" "$W/rx-$1/$1"
}

t_check "50000 bytes (1 KiB blocks, 128-byte tail) received intact by rb" send_to_rb img50k 50000
t_check "an exact multiple of 1 KiB received intact by rb" send_to_rb img3k 3072
t_check "a 1-byte image received intact by rb" send_to_rb img1 1
t_check "a 300 KiB image received intact by rb" send_to_rb img300k 307200

# a receiver that never answers: TIMEOUT (0x90D00001) after the retries
pty_pair
"$SEND" -t 100 -r 3 "$A" "$W/img1" >"$W/silent.out" 2>"$W/silent.err"
t_check "a silent receiver: the sender fails (exit 1)" [ $? -eq 1 ]
t_check "a silent receiver: result TIMEOUT 0x90D00001" grep -q "result 0x90D00001" "$W/silent.out"

# a receiver that asks for CRC mode and then cancels with CAN CAN: the
# bytes wait in the pty until the sender reads them
pty_pair
exec 7<>"$B"
printf 'C\030\030' >&7
"$SEND" -t 2000 -r 3 "$A" "$W/img50k" >"$W/can.out" 2>"$W/can.err"
t_check "a receiver that cancels: the sender fails (exit 1)" [ $? -eq 1 ]
t_check "a receiver that cancels: result CANCELED 0x90D00003" grep -q "result 0x90D00003" "$W/can.out"
exec 7>&-

# bad line settings are a clear error before anything is sent
pty_pair
"$SEND" -b 12345 "$A" "$W/img1" 2>"$W/baud.err"
t_check "unsupported baud 12345: set-up error (exit 2)" [ $? -eq 2 ]
t_check "unsupported baud: says so" grep -q "unsupported baud rate 12345" "$W/baud.err"
"$SEND" "$W/no-such-tty" "$W/img1" 2>"$W/notty.err"
t_check "a missing tty: set-up error (exit 2)" [ $? -eq 2 ]
t_check "a missing tty: names it" grep -q "no-such-tty" "$W/notty.err"

# the lock file: a live holder refuses a second opener; a stale one is taken over
mkdir -p "$W/lock"
lk="$W/lock/LCK..$(basename "$A")"
printf '%10d\n' $$ >"$lk"
"$SEND" -l "$W/lock" "$A" "$W/img1" 2>"$W/lock.err"
t_check "a tty locked by a live pid is refused (exit 2)" [ $? -eq 2 ]
t_check "the refusal names the holder" grep -q "locked by pid $$" "$W/lock.err"
printf '%10d\n' 999999999 >"$lk"
mkdir -p "$W/rx-lk"
(cd "$W/rx-lk" && exec rb --ymodem <"$B" >"$B" 2>/dev/null) &
T_PIDS="$T_PIDS $!"
"$SEND" -l "$W/lock" "$A" "$W/img1" >/dev/null 2>"$W/stale.err"
t_check "a stale lock (dead pid) is taken over and the transfer runs" [ $? -eq 0 ]
t_check "the stale lock was reported" grep -q "stale lock" "$W/stale.err"
t_check "the lock is released after the transfer" [ ! -e "$lk" ]
# --- the simulator's YMODEM bootloader, fed by lrzsz's sb
# sim_start NAME ARGS...: a simulated device; waits for its ready file
sim_start() {
	_n=$1; shift
	mkdir -p "$W/dev"
	rm -f "$W/dev/$_n.ready"
	"$SIM" --name "$_n" --dir "$W/dev" --link "$W/dev/$_n.tty" \
		--ready-file "$W/dev/$_n.ready" "$@" 2>"$W/dev/$_n.log" &
	SIMPID=$!
	T_PIDS="$T_PIDS $SIMPID"
	t_wait_for 10 test -s "$W/dev/$_n.ready"
}
# enter_bootloader NAME: the chat an operator would do
enter_bootloader() {
	printf 'update\r' >"$W/dev/$1.tty"
}

(printf 'DGVERSION=2.3.4\n'; head -c 60000 /dev/urandom) >"$W/fw234"
sim_start sb1
t_check "the simulator writes its ready file (name and pty)" grep -q "^sb1 /dev/pts/" "$W/dev/sb1.ready"
enter_bootloader sb1
sb --ymodem "$W/fw234" <"$W/dev/sb1.tty" >"$W/dev/sb1.tty" 2>"$W/sb1.err"
t_check "sb --ymodem (128-byte blocks) into the simulator succeeds" [ $? -eq 0 ]
t_check "the simulator installed the image sb sent" cmp "$W/fw234" "$W/dev/sb1.img"
t_check "the simulator keeps the image's version" grep -qx "2.3.4" "$W/dev/sb1.version"
enter_bootloader sb1
sb -k --ymodem "$W/img50k" <"$W/dev/sb1.tty" >"$W/dev/sb1.tty" 2>"$W/sb1k.err"
t_check "sb -k --ymodem (1 KiB blocks) into the simulator succeeds" [ $? -eq 0 ]
t_check "the 1 KiB-block image installed intact" cmp "$W/img50k" "$W/dev/sb1.img"
kill "$SIMPID"

# --- our sender into the simulator, with line faults (seeded: the same
# errors every run)
(printf 'DGVERSION=3.0.0\n'; head -c 100000 /dev/urandom) >"$W/fw300"
sim_start flip --flip-rate 1e-4 --seed 7
enter_bootloader flip
"$SEND" -t 1500 -r 20 "$W/dev/flip.tty" "$W/fw300" >"$W/flip.out" 2>"$W/flip.err"
t_check "bit errors 1e-4: the transfer succeeds" [ $? -eq 0 ]
t_diag "bit errors: $(cat "$W/flip.out")"
t_check "bit errors 1e-4: retransmissions counted (> 0)" \
	awk '{ exit !($4 > 0) }' "$W/flip.out"
t_check "bit errors 1e-4: the image arrived intact" cmp "$W/fw300" "$W/dev/flip.img"
kill "$SIMPID"

sim_start drop --drop-rate 2e-5 --seed 3
enter_bootloader drop
"$SEND" -t 1500 -r 10 "$W/dev/drop.tty" "$W/fw300" >"$W/drop.out" 2>"$W/drop.err"
t_check "dropped bytes: the transfer succeeds" [ $? -eq 0 ]
t_diag "dropped bytes: $(cat "$W/drop.out")"
t_check "dropped bytes: the image arrived intact" cmp "$W/fw300" "$W/dev/drop.img"
kill "$SIMPID"

sim_start cancel -o cancel-after=5
enter_bootloader cancel
"$SEND" -t 1500 -r 3 "$W/dev/cancel.tty" "$W/fw300" >"$W/cancel.out" 2>"$W/cancel.err"
t_check "the device cancels (CAN CAN): CANCELED 0x90D00003" grep -q "result 0x90D00003" "$W/cancel.out"
t_check "the device that canceled keeps no image" [ ! -e "$W/dev/cancel.img" ]
kill "$SIMPID"

# power cut at a byte count: the sender sees the line go; the device comes
# back on a new pty with its old version
printf '1.0.0' >"$W/dev/cut.version"
sim_start cut --cut-at 50000 --off-ms 200
enter_bootloader cut
"$SEND" -t 1500 -r 3 "$W/dev/cut.tty" "$W/fw300" >"$W/cut.out" 2>"$W/cut.err"
t_check "power cut mid-transfer: the sender fails" [ $? -eq 1 ]
t_check "power cut mid-transfer: LINE_GONE 0x90D00005" grep -q "result 0x90D00005" "$W/cut.out"
t_check "the device cut its power at the byte count" grep -q "power cut at byte 50000" "$W/dev/cut.log"
t_check "the device comes back (its bootloader starts again)" \
	t_wait_for 10 sh -c "[ \$(grep -c 'bootloader up' '$W/dev/cut.log') -ge 2 ]"
t_check "the device came back with its old version" grep -qx "1.0.0" "$W/dev/cut.version"
enter_bootloader cut
"$SEND" -t 1500 -r 3 "$W/dev/cut.tty" "$W/fw300" >"$W/cut2.out" 2>"$W/cut2.err"
t_check "after the power cut a new transfer succeeds" [ $? -eq 0 ]
t_check "and installs the image" cmp "$W/fw300" "$W/dev/cut.img"
kill "$SIMPID"

sim_start stall --stall-at 3000
enter_bootloader stall
"$SEND" -t 300 -r 3 "$W/dev/stall.tty" "$W/fw300" >"$W/stall.out" 2>"$W/stall.err"
t_check "a device that stops answering: RETRIES 0x90D00002" grep -q "result 0x90D00002" "$W/stall.out"
kill "$SIMPID"
t_done
