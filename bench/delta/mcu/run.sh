#!/bin/sh
# bench/delta/mcu/run.sh - the MCU firmware corpus (build.sh) against
# bsdiff, xdelta3, zstd --patch-from and HDiffPatch in the same run.
# HDiffPatch is not a Debian package and is not part of this project: build
# it yourself outside the tree and give its hdiffz/hpatchz with HDIFFZ= and
# HPATCHZ= (the anchor: hdiffz -m-3 -block-0 -SD-2m -c-lzma2-9-16m).
# Prints the command, the machine, per pair and tool: delta bytes,
# generation wall/CPU seconds, apply seconds and peak RSS, round-trip check;
# then per pair and in total: deltagate / HDiffPatch.
# usage: HDIFFZ=/path/hdiffz HPATCHZ=/path/hpatchz bench/delta/mcu/run.sh CORPUS [BUILDDIR]
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
C=$(cd "$1" && pwd)
BUILD=${2:-$HERE/../../../build}
DG=$(cd "$BUILD" && pwd)/src/deltagate
HDIFFZ=${HDIFFZ:?set HDIFFZ to hdiffz (HDiffPatch 4.12)}
HPATCHZ=${HPATCHZ:-$(dirname "$HDIFFZ")/hpatchz}
W=${BENCH_WORK:-$(mktemp -d /tmp/dgmcu.XXXXXX)}
T=/usr/bin/time
PAIRS=${PAIRS:-"cm0p cm4 rv32 esp32c3 lx106"}
TOOLS=${TOOLS:-"deltagate deltagate-noarch hdiffpatch bsdiff xdelta3 zstd-19"}

echo "command: $0 $*"
echo "machine: $(nproc) CPUs, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg)"
echo "tools:   $($DG --version), $($HDIFFZ -v 2>&1 | head -1), bsdiff (Debian), $(xdelta3 -V 2>&1 | head -1), $(zstd -V)"

# measure PAIR TOOL GEN_CMD APPLY_CMD DELTA OUT
measure() {
	pair=$1; tool=$2; gen=$3; app=$4; delta=$5; out=$6
	rm -f "$delta" "$out"
	if ! $T -f "%e %U %M" -o "$W/gen.t" sh -c "$gen" >/dev/null 2>"$W/gen.err"; then
		printf "%-8s %-10s %s\n" "$pair" "$tool" "generation failed: $(tail -1 "$W/gen.err")"
		return 0
	fi
	$T -f "%e %U %M" -o "$W/app.t" sh -c "$app" >/dev/null 2>"$W/app.err" || true
	ok=FAIL; cmp -s "$out" "$C/$pair.v2.bin" && ok=ok
	# shellcheck disable=SC2046 # the fields are meant to split
	set -- $(cat "$W/gen.t") $(cat "$W/app.t")
	dsz=$(stat -c %s "$delta")
	printf "%-8s %-10s %9d %6.2f%% %7.2f %7.2f %7.2f %8d %s\n" "$pair" "$tool" "$dsz" \
		"$(echo "$dsz * 100 / $(stat -c %s "$C/$pair.v2.bin")" | bc -l)" "$1" "$2" "$4" "$6" "$ok"
	echo "$pair $tool $dsz" >>"$W/sizes"
}

: >"$W/sizes"
printf "%-8s %-10s %9s %7s %7s %7s %7s %8s %s\n" pair tool "delta B" "% tgt" "gen s" "gen cpu" "apply s" "apply KB" check
for p in $PAIRS; do
	s=$C/$p.v1.bin; t=$C/$p.v2.bin
	printf "# %s: source %d bytes, target %d bytes\n" "$p" "$(stat -c %s "$s")" "$(stat -c %s "$t")"
	for tool in $TOOLS; do
		case $tool in
		deltagate) measure "$p" $tool "$DG diff --force $s $t $W/d.dg" "$DG apply $s $W/d.dg $W/o.dg" "$W/d.dg" "$W/o.dg" ;;
		deltagate-noarch) measure "$p" $tool "$DG diff --force --arch none $s $t $W/d.dg" "$DG apply $s $W/d.dg $W/o.dg" "$W/d.dg" "$W/o.dg" ;;
		hdiffpatch) measure "$p" $tool "$HDIFFZ -f -m-3 -block-0 -SD-2m -c-lzma2-9-16m $s $t $W/d.hd" "$HPATCHZ -f $s $W/d.hd $W/o.hd" "$W/d.hd" "$W/o.hd" ;;
		bsdiff) measure "$p" $tool "bsdiff $s $t $W/d.bs" "bspatch $s $W/o.bs $W/d.bs" "$W/d.bs" "$W/o.bs" ;;
		xdelta3) measure "$p" $tool "xdelta3 -e -9 -S djw -f -s $s $t $W/d.xd" "xdelta3 -d -f -s $s $W/d.xd $W/o.xd" "$W/d.xd" "$W/o.xd" ;;
		zstd-19) measure "$p" $tool "zstd -q -f -19 --long=31 --patch-from=$s $t -o $W/d.zs" "zstd -q -f -d --long=31 --patch-from=$s $W/d.zs -o $W/o.zs" "$W/d.zs" "$W/o.zs" ;;
		esac
	done
done

echo "# deltagate / HDiffPatch (target: <= 0.90 in total, <= 1.02 on every pair)"
awk '{ b[$1" "$2] = $3; if (!($1 in seen)) { seen[$1] = 1; order[n++] = $1 } }
     END { for (i = 0; i < n; i++) { p = order[i]; if ((p" hdiffpatch") in b && (p" deltagate") in b) {
             printf "%-8s %.3f\n", p, b[p" deltagate"] / b[p" hdiffpatch"];
             th += b[p" hdiffpatch"]; td += b[p" deltagate"]; tb += b[p" bsdiff"] } }
           if (th) printf "total    %.3f x HDiffPatch (%d vs %d bytes)", td / th, td, th
           if (th && tb) printf ", %.3f x bsdiff", td / tb
           if (th) printf "\n" }' "$W/sizes"
