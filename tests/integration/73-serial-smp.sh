#!/bin/bash
# MCUboot serial recovery / SMP: our engine (tests/serial/sproto-run)
# against the simulator's SMP target through a pty; cmp of the installed
# image; a wrong hash (the target stores a byte wrong: VERIFY; the target
# checks the upload's sha: REJECTED), a lost answer (resume from the
# device's offset), a device that never answers.
# No SMP client is packaged in Debian 12 or npm (only a React Native
# wrapper), so the framing is checked against the published capture in
# tests/unit/test_smp.c instead of a real peer here.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"

HARNESS="$top_builddir/tests/serial/sim-harness"
RUN="$top_builddir/tests/serial/sproto-run"

# shellcheck disable=SC2317 # called through t_check
start_sim() {
	_n=$1; shift
	rm -f "$T_DIR/$_n.ready"   # a restart must not read the last run's path
	"$HARNESS" --personality smp --ready-file "$T_DIR/$_n.ready" \
		--image-file "$T_DIR/$_n.img" --version 1.0.0 "$@" 2>"$T_DIR/$_n.log" &
	SIM=$!
	T_PIDS="$T_PIDS $SIM"
	t_wait_for 10 test -s "$T_DIR/$_n.ready" || return 1
	TTY=$(cat "$T_DIR/$_n.ready")
	test -c "$TTY"
}

# an image with an MCUboot header (magic, version 2.3.4+5 at offset 20)
{
	printf '\x3d\xb8\xf3\x96\x00\x00\x00\x00\x20\x00\x00\x00\x00\x00\x00\x00'
	printf '\x00\x00\x00\x00\x02\x03\x04\x00\x05\x00\x00\x00\x00\x00\x00\x00'
	head -c 60000 /dev/urandom
} > "$T_DIR/app.bin"

t_check "simulator (smp) starts on a pty" start_sim s1
timeout 120 "$RUN" --engine smp --tty "$TTY" --image "$T_DIR/app.bin" >"$T_DIR/run1.out" 2>&1
t_check "our engine uploads, verifies and resets (exit 0)" test $? -eq 0
t_check "the engine reports the hash verified" grep -q "ok=1.*hash verified, device reset" "$T_DIR/run1.out"
t_check "the device installed the image" cmp "$T_DIR/app.bin" "$T_DIR/s1.img"
t_check "with the version of its MCUboot header" grep -qx "2.3.4+5" "$T_DIR/s1.img.version"
t_stop_pid "$SIM"

t_check "simulator storing byte 30000 wrong starts" start_sim bad --opt corrupt=30000
timeout 60 "$RUN" --engine smp --tty "$TTY" --image "$T_DIR/app.bin" >"$T_DIR/bad.out" 2>&1
t_check "bad sha in image state: VERIFY (exit 4)" test $? -eq 4
t_check "the device did not install it" test ! -e "$T_DIR/bad.img"
t_stop_pid "$SIM"

t_check "simulator checking the upload's sha starts" start_sim chk --opt corrupt=30000 --opt check-sha=yes
timeout 60 "$RUN" --engine smp --tty "$TTY" --image "$T_DIR/app.bin" >"$T_DIR/chk.out" 2>&1
t_check "bad sha refused by the device: REJECTED (exit 8)" test $? -eq 8
t_check "the detail carries the device's rc" grep -q "rc 9" "$T_DIR/chk.out"
t_stop_pid "$SIM"

t_check "simulator losing its 10th answer starts" start_sim lost --opt lose-answer=10
timeout 60 "$RUN" --engine smp --tty "$TTY" --image "$T_DIR/app.bin" --timeout-ms 1000 \
	>"$T_DIR/lost.out" 2>&1
t_check "a lost answer: the upload resumes and succeeds" test $? -eq 0
t_check "with the lost answer's chunk retransmitted" grep -Eq "retransmits=[1-9]" "$T_DIR/lost.out"
t_check "the device lost its 10th answer" grep -q "answer 10 lost" "$T_DIR/lost.log"
t_check "the device saw the repeated offset and answered its own" \
	grep -q "device is at" "$T_DIR/lost.log"
t_check "the device installed the image" cmp "$T_DIR/app.bin" "$T_DIR/lost.img"
t_stop_pid "$SIM"

t_check "simulator that never answers starts" start_sim mute --opt mute=yes
timeout 60 "$RUN" --engine smp --tty "$TTY" --image "$T_DIR/app.bin" --timeout-ms 200 \
	--retries 2 >"$T_DIR/mute.out" 2>&1
t_check "device never answering: TIMEOUT (exit 1)" test $? -eq 1
t_stop_pid "$SIM"

t_done
