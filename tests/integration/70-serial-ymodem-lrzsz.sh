#!/bin/sh
# Our YMODEM sender (dg_ymodem engine over dg_serial_line, driven by
# tests/serial_send) against a real receiver we did not write: lrzsz's
# `rb --ymodem`, through a socat pty pair. Plus the sender's faults:
# a silent receiver, a receiver that cancels, bad line settings, locks.
set -u
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"
SEND="$top_builddir/tests/serial_send"
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
t_done
