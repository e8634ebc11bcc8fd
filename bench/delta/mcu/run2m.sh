#!/bin/sh
# bench/delta/mcu/run2m.sh - the 2 MB MCU pair (issue 15's generation-time
# target: under 2 s) against HDiffPatch in the same run. Not a release
# pair: the corpus's images concatenated, always in this order (the recipe
# of docs/benchmarks.md, so that figures compare):
#   v1 = cm4 + cm0p + rv32 + cm4 + cm0p + rv32 + cm4 (.v1.bin), v2 the same
#   with .v2.bin.
# Each generation and apply is timed RUNS times (default 3) with
# /usr/bin/time; the median wall time is printed with the peak RSS and CPU
# time of that run; every delta is applied and compared with the target.
# usage: HDIFFZ=/path/hdiffz [HPATCHZ=...] bench/delta/mcu/run2m.sh CORPUS [BUILDDIR] [PAIRDIR]
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
C=$(cd "$1" && pwd)
BUILD=${2:-$HERE/../../../build}
P=${3:-$C/../mcu2m}
DG=$(cd "$BUILD" && pwd)/src/deltagate
HDIFFZ=${HDIFFZ:?set HDIFFZ to hdiffz (HDiffPatch 4.12)}
HPATCHZ=${HPATCHZ:-$(dirname "$HDIFFZ")/hpatchz}
RUNS=${RUNS:-3}
W=${BENCH_WORK:-$(mktemp -d /tmp/dgmcu2m.XXXXXX)}
T=/usr/bin/time

mkdir -p "$P"
for v in v1 v2; do
	cat "$C/cm4.$v.bin" "$C/cm0p.$v.bin" "$C/rv32.$v.bin" "$C/cm4.$v.bin" \
	    "$C/cm0p.$v.bin" "$C/rv32.$v.bin" "$C/cm4.$v.bin" >"$P/mix.$v.bin"
done
S=$P/mix.v1.bin
G=$P/mix.v2.bin

echo "command: $0 $*"
echo "date:    $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine: $(nproc) CPUs, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (at the start)"
echo "tools:   $($DG --version), $($HDIFFZ -v 2>&1 | head -1)"
echo "pair:    $(stat -c %s "$S") / $(stat -c %s "$G") bytes ($P)"

# timed NAME CMD: RUNS runs; prints "median-wall cpu rss" of the median run
timed() {
	name=$1; cmd=$2
	: >"$W/$name.runs"
	for _ in $(seq "$RUNS"); do
		$T -f "%e %U %S %M" -o "$W/t" sh -c "$cmd" >/dev/null 2>"$W/$name.err" ||
			{ echo "$name failed: $(tail -1 "$W/$name.err")" >&2; exit 1; }
		cat "$W/t" >>"$W/$name.runs"
	done
	sort -n "$W/$name.runs" | sed -n "$(((RUNS + 1) / 2))p" |
		awk '{ printf "%.2f %.2f %d", $1, $2 + $3, $4 }'
	printf "  (walls: %s)" "$(cut -d' ' -f1 "$W/$name.runs" | tr '\n' ' ' | sed 's/ $//')" >"$W/$name.walls"
}

printf "%-10s %9s %7s %7s %9s %7s %9s %s\n" tool "delta B" "gen s" "gen cpu" "gen KB" "apply s" "apply KB" check
row() {
	tool=$1; gen=$2; app=$3; delta=$4; out=$5
	# shellcheck disable=SC2046 # the fields are meant to split
	set -- $(timed "$tool-gen" "$gen") $(timed "$tool-app" "$app")
	ok=FAIL; cmp -s "$out" "$G" && ok=ok
	printf "%-10s %9d %7.2f %7.2f %9d %7.2f %9d %s%s\n" "$tool" "$(stat -c %s "$delta")" \
		"$1" "$2" "$3" "$4" "$6" "$ok" "$(cat "$W/$tool-gen.walls")"
	echo "$tool $(stat -c %s "$delta")" >>"$W/sizes"
}
: >"$W/sizes"
row deltagate "$DG diff --force $S $G $W/d.dg" "$DG apply $S $W/d.dg $W/o.dg" "$W/d.dg" "$W/o.dg"
row hdiffpatch "$HDIFFZ -f -m-3 -block-0 -SD-2m -c-lzma2-9-16m $S $G $W/d.hd" \
	"$HPATCHZ -f $S $W/d.hd $W/o.hd" "$W/d.hd" "$W/o.hd"
"$DG" diff --force --verbose "$S" "$G" "$W/d2.dg" 2>&1 | grep -E 'final choice|^delta' | sed 's/^.*debug\]: /# /'
awk '{ b[$1] = $2 } END { printf "# deltagate / HDiffPatch: %.3f (target <= 1.02)\n", b["deltagate"] / b["hdiffpatch"] }' "$W/sizes"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (at the end)"
