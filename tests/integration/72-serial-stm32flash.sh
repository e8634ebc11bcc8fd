#!/bin/bash
# The STM32 ROM bootloader (AN3155) with a real peer: stm32flash, the tool
# the field uses, writes and verifies an image into the simulator's
# bootloader through a pty (so the simulator is checked by a program we did
# not write), then our engine (tests/serial/sproto-run) flashes the same
# simulator; faults: write-protected pages, a flash that stores a byte
# wrong, a device that never answers.
# A Linux pty cannot carry parity (the pty driver forces 8N1), so
# stm32flash is told -m 8n1 and our engine's request for 8E1 is reported
# and ignored by the test host on a pty.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"

HARNESS="$top_builddir/tests/serial/sim-harness"
RUN="$top_builddir/tests/serial/sproto-run"
STM32FLASH=$(command -v stm32flash || echo stm32flash-missing)
t_check "stm32flash is installed (scripts/bootstrap)" test -x "$STM32FLASH"

# start_sim NAME [--opt k=v]...: the simulator's pty path in $TTY
# shellcheck disable=SC2317 # called through t_check
start_sim() {
	_n=$1; shift
	rm -f "$T_DIR/$_n.ready"   # a restart must not read the last run's path
	"$HARNESS" --personality stm32 --ready-file "$T_DIR/$_n.ready" \
		--image-file "$T_DIR/$_n.flash" "$@" 2>"$T_DIR/$_n.log" &
	SIM=$!
	T_PIDS="$T_PIDS $SIM"
	t_wait_for 10 test -s "$T_DIR/$_n.ready" || return 1
	TTY=$(cat "$T_DIR/$_n.ready")
	test -c "$TTY"
}

head -c 70000 /dev/urandom > "$T_DIR/a.bin"
head -c 33333 /dev/urandom > "$T_DIR/b.bin"

# --- stm32flash against the simulator
t_check "simulator (stm32) starts on a pty" start_sim s1
if timeout 120 "$STM32FLASH" -m 8n1 -b 115200 -w "$T_DIR/a.bin" -v "$TTY" \
	>"$T_DIR/stm32flash.out" 2>&1; then
	t_ok "stm32flash writes and verifies the image"
else
	t_fail "stm32flash writes and verifies the image"
	sed 's/^/# /' "$T_DIR/stm32flash.out" | tail -5
fi
t_check "stm32flash recognised the simulated part (0x410)" \
	grep -q "Device ID.*0x0410" "$T_DIR/stm32flash.out"
t_check "the simulator's flash holds stm32flash's image" cmp "$T_DIR/a.bin" "$T_DIR/s1.flash"

# --- our engine against the same simulator (erases only what it needs)
timeout 120 "$RUN" --engine stm32 --tty "$TTY" --image "$T_DIR/b.bin" \
	>"$T_DIR/run1.out" 2>"$T_DIR/run1.err"
t_check "our engine flashes the same simulator (exit 0)" test $? -eq 0
t_check "the engine reports verified and started" grep -q "ok=1.*verified, started" "$T_DIR/run1.out"
# the image ends inside page 32 (1 KiB pages); the rest of a.bin is untouched
head -c 33333 "$T_DIR/s1.flash" > "$T_DIR/s1.head"
t_check "the flash holds our image" cmp "$T_DIR/b.bin" "$T_DIR/s1.head"
t_check "pages past the image keep stm32flash's data" \
	cmp <(tail -c +34817 "$T_DIR/a.bin") <(tail -c +34817 "$T_DIR/s1.flash")
t_stop_pid "$SIM"

# --- stm32flash reads back what our engine wrote (second check of the model)
t_check "simulator restarts with the flashed image" start_sim s1
timeout 120 "$STM32FLASH" -m 8n1 -b 115200 -r "$T_DIR/readback.bin" -S 0x08000000:33333 "$TTY" \
	>"$T_DIR/stm32flash-r.out" 2>&1
t_check "stm32flash reads our image back from the simulator" cmp "$T_DIR/b.bin" "$T_DIR/readback.bin"
t_stop_pid "$SIM"

# --- faults
t_check "simulator with write-protected pages 10-11 starts" start_sim wp --opt wp=10-11
timeout 60 "$RUN" --engine stm32 --tty "$TTY" --image "$T_DIR/b.bin" >"$T_DIR/wp.out" 2>&1
t_check "write-protected page: REJECTED (exit 8)" test $? -eq 8
t_check "the detail says write-protected" grep -q "write-protected" "$T_DIR/wp.out"
t_check "nothing was written" test ! -e "$T_DIR/wp.flash"
t_stop_pid "$SIM"

t_check "simulator storing byte 20000 wrong starts" start_sim bad --opt corrupt=20000
timeout 60 "$RUN" --engine stm32 --tty "$TTY" --image "$T_DIR/b.bin" >"$T_DIR/bad.out" 2>&1
t_check "verify mismatch: VERIFY (exit 4)" test $? -eq 4
t_check "the detail names the address" grep -q "0x08004e20" "$T_DIR/bad.out"
t_stop_pid "$SIM"

t_check "simulator that never answers starts" start_sim mute --opt mute=yes
timeout 60 "$RUN" --engine stm32 --tty "$TTY" --image "$T_DIR/b.bin" \
	--timeout-ms 200 --retries 2 >"$T_DIR/mute.out" 2>&1
t_check "device never answering: TIMEOUT (exit 1)" test $? -eq 1
t_check "after the retries" grep -q "retransmits=2" "$T_DIR/mute.out"
t_stop_pid "$SIM"

t_check "simulator with a flaky flash (3 NACKed writes) starts" start_sim flaky --opt nack-writes=3
timeout 60 "$RUN" --engine stm32 --tty "$TTY" --image "$T_DIR/b.bin" >"$T_DIR/flaky.out" 2>&1
t_check "NACKed writes are retried: the job succeeds" test $? -eq 0
t_check "with (at least) the 3 retransmissions counted" grep -Eq "retransmits=([3-9]|[1-9][0-9])" "$T_DIR/flaky.out"
t_check "the flash holds the image" cmp -n 33333 "$T_DIR/b.bin" "$T_DIR/flaky.flash"
t_stop_pid "$SIM"

t_check "simulator of an old part (Erase 0x43 only) starts" start_sim old --opt legacy=yes
timeout 60 "$RUN" --engine stm32 --tty "$TTY" --image "$T_DIR/b.bin" >"$T_DIR/old.out" 2>&1
t_check "legacy Erase: the job succeeds" test $? -eq 0
t_check "the flash holds the image" cmp -n 33333 "$T_DIR/b.bin" "$T_DIR/old.flash"
# Write Memory takes multiples of 4 bytes: the engine pads the last chunk
t_check "the last chunk was padded with 0xFF to a word" \
	cmp <(printf '\377\377\377') <(tail -c +33334 "$T_DIR/old.flash")
t_stop_pid "$SIM"

t_done
