#!/bin/bash
# bench/delta/apply-speed.sh SOURCE TARGET [RUNS] - apply time of the delta
# processor as the gateway calls it (bench/delta/apply_bench: the library,
# in one process, durable write) and as the `deltagate apply` command,
# against bspatch, on the same pair, in the same run.
#   env: BUILD_DIR (./build)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$top/build}
[ $# -ge 2 ] || { echo "usage: $0 SOURCE TARGET [RUNS]" >&2; exit 2; }
src=$1 tgt=$2 runs=${3:-20}
dg=$build/src/deltagate ab=$build/bench/delta/apply_bench
[ -x "$dg" ] && [ -x "$ab" ] || { echo "build first ($build)" >&2; exit 1; }
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
echo "command: bench/delta/apply-speed.sh $src $tgt $runs"
echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
"$dg" diff "$src" "$tgt" "$w/d.dg" > /dev/null
bsdiff "$src" "$tgt" "$w/d.bs"
echo "deltas: deltagate $(stat -c %s "$w/d.dg") bytes, bsdiff $(stat -c %s "$w/d.bs") bytes"
# The commands are run in turn, RUNS rounds (on a shared machine a slow
# spell then hits every command alike); per command: fastest / median ms.
ms() { # ms FILE: fastest and median of the numbers in FILE (microseconds)
	sort -n "$1" | awk '{a[NR] = $1} END {printf "fastest %.2f ms, median %.2f ms\n", a[1] / 1000, a[int((NR + 1) / 2)] / 1000}'
}
timed() { # timed FILE COMMAND...: append its run time in microseconds
	local f=$1 t0 t1
	shift
	t0=$(date +%s%N); "$@" > /dev/null 2>&1; t1=$(date +%s%N)
	echo $(( (t1 - t0) / 1000 )) >> "$f"
}
"$ab" "$src" "$w/d.dg" "$w/lib.out" "$runs"
cmp "$w/lib.out" "$tgt"
for i in $(seq "$runs"); do
	timed "$w/t.dg" "$dg" apply "$src" "$w/d.dg" "$w/cmd.out"
	timed "$w/t.bs" bspatch "$src" "$w/bs.out" "$w/d.bs"
	timed "$w/t.bss" sh -c "bspatch '$src' '$w/bs.out' '$w/d.bs' && sync '$w/bs.out'"
done
cmp "$w/cmd.out" "$tgt"
cmp "$w/bs.out" "$tgt"
echo "deltagate apply (command, fsync of target and directory): $(ms "$w/t.dg")"
echo "bspatch (command, no fsync): $(ms "$w/t.bs")"
echo "bspatch + sync FILE (command, fsync of the target): $(ms "$w/t.bss")"
