#!/bin/bash
# bench/reliability/run.sh - the long form of the crash-and-fault campaign
# (tests/reliability/ is the short form that make check runs).
#
#   bench/reliability/run.sh [BUILD_DIR]     every case, 200 random kills
#                                            across a 20-device update
#   KILLS=N SEED=S ...                       fewer/more kills, a replay
#   VALGRIND=1 ...                           deltagated under valgrind
#                                            memcheck (cases that stop it
#                                            cleanly: 50, 60)
# Prints the machine, each case's TAP summary and figures; exit 0 when
# every case passed. A build configured with --enable-fault-injection is
# needed (scripts/check makes one in ./build).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
export top_srcdir=$top top_builddir=$build
grep -q '^#define DG_FAULT_INJECTION 1' "$build/config.h" || {
	echo "bench/reliability: $build is not built with --enable-fault-injection" >&2; exit 2; }
echo "# machine: $(uname -srm), $(nproc) cores, $(free -g | awk '/Mem:/ { print $2 }') GiB; $(date -u +%FT%TZ)"
echo "# commit: $(git -C "$top" rev-parse --short HEAD 2>/dev/null)"
out=$(mktemp -d)
status=0
run() { # name cmd...
	_n=$1; shift
	_t0=$(date +%s)
	"$@" > "$out/$_n.tap" 2>&1
	_st=$?
	_ok=$(grep -c '^ok ' "$out/$_n.tap"); _nok=$(grep -c '^not ok ' "$out/$_n.tap")
	echo "== $_n: $_ok ok, $_nok not ok, $(( $(date +%s) - _t0 )) s (exit $_st)"
	grep -E '^not ok|^# ' "$out/$_n.tap" | grep -v '^# kept' | sed 's/^/   /'
	[ "$_st" -eq 0 ] && [ "$_nok" -eq 0 ] || status=1
}
if [ -n "${VALGRIND:-}" ]; then
	export DG_DELTAGATED="$top/bench/reliability/valgrind-deltagated"
	export DG_REAL_DELTAGATED="$build/proxy/deltagated" VG_LOGDIR="$out/valgrind"
	mkdir -p "$VG_LOGDIR"
	run broker-faults bash "$top/tests/reliability/50-broker-faults.sh"
	run storage-faults bash "$top/tests/reliability/60-storage-faults.sh"
	errs=0 lost=0 n=0
	for f in "$VG_LOGDIR"/vg.*; do
		[ -f "$f" ] || continue
		n=$((n + 1))
		e=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$f" | tail -1)
		l=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$f" | tail -1 | tr -d ,)
		errs=$((errs + ${e:-0})); lost=$((lost + ${l:-0}))
	done
	echo "# valgrind memcheck: $n deltagated runs, $errs errors, $lost bytes definitely lost"
	[ "$errs" -eq 0 ] && [ "$lost" -eq 0 ] && [ "$n" -gt 0 ] || status=1
else
	run crash-points bash "$top/tests/reliability/10-crash-points.sh"
	KILLS=${KILLS:-200} C_EXTRA=${C_EXTRA:-16} run random-kills bash "$top/tests/reliability/20-random-kills.sh"
	run disk-full bash "$top/tests/reliability/30-disk-full.sh"
	N=1000 run shadowd-kill bash "$top/tests/reliability/40-shadowd-kill.sh"
	run broker-faults bash "$top/tests/reliability/50-broker-faults.sh"
	run storage-faults bash "$top/tests/reliability/60-storage-faults.sh"
fi
rm -rf "$out"
exit $status
