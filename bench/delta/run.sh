#!/bin/sh
# bench/delta: deltagate diff/apply against bsdiff, xdelta3 and zstd
# --patch-from on pairs built here (nothing is downloaded):
#   prog-1m, prog-2m: two builds (gcc -O2, stripped) of a synthetic C
#                     program at two source versions (bench/delta/genprog.py);
#   ext4-32m:         ext4 images made with mke2fs -d from two versions of a
#                     file tree (bench/delta/mktree.py over /usr/share/doc);
#   ext4-32m.gz:      the same images gzip -9'd (GNU gzip: zlib cannot
#                     reproduce those members, so deltagate writes a
#                     recompressed target and its delta rebuilds that);
#   ext4-32m.zgz:     the same images gzip'd by zlib level 9 (as zlib-based
#                     image tools do): deltagate diffs them decompressed;
#   ext4-32m.swu:     SWUpdate archives (cpio newc: sw-description, then
#                     the zlib-gzip'd image as rootfs.ext4.gz);
#   ext4-100m:        a 100 MiB image pair (generation time).
# The archive pairs' deltas are also compared with the best tool on the
# *uncompressed* ext4-32m pair (the issue: no larger than that).
# Prints the command, the machine, and per pair and tool: delta bytes,
# generation time (wall and user CPU), apply time, apply peak RSS.
# usage: bench/delta/run.sh [BUILDDIR]   (default: ./build)
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${1:-$HERE/../../build}
DG=$(cd "$BUILD" && pwd)/src/deltagate
W=${BENCH_WORK:-$(mktemp -d /tmp/dgbench.XXXXXX)}
T=/usr/bin/time
PAIRS=${PAIRS:-"prog-1m prog-2m ext4-32m ext4-32m.gz ext4-32m.zgz ext4-32m.swu ext4-100m"}
BSDIFF_TIMEOUT=${BSDIFF_TIMEOUT:-900}

echo "command: $0 $*"
echo "machine: $(nproc) CPUs, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg)"
echo "tools:   $($DG --version), bsdiff (Debian), $(xdelta3 -V 2>&1 | head -1), $(zstd -V)"
echo "work:    $W"

mkpair() {
	case $1 in
	prog-1m|prog-2m)
		nf=3000; seed=1
		[ "$1" = prog-2m ] && { nf=6500; seed=2; }
		python3 "$HERE/genprog.py" $seed $nf 1 "$W/$1.v1.c"
		python3 "$HERE/genprog.py" $seed $nf 2 "$W/$1.v2.c"
		gcc -O2 -s -o "$W/$1.src" "$W/$1.v1.c"
		gcc -O2 -s -o "$W/$1.tgt" "$W/$1.v2.c" ;;
	ext4-32m|ext4-100m)
		sz=32; max=14000000
		[ "$1" = ext4-100m ] && { sz=100; max=56000000; }
		python3 "$HERE/mktree.py" 7 $max "$W/$1.t1" "$W/$1.t2" /usr/share/doc /usr/share/man >/dev/null
		mke2fs -q -F -t ext4 -b 4096 -d "$W/$1.t1" "$W/$1.src" ${sz}M
		mke2fs -q -F -t ext4 -b 4096 -d "$W/$1.t2" "$W/$1.tgt" ${sz}M
		rm -rf "$W/$1.t1" "$W/$1.t2" ;;
	ext4-32m.gz)
		[ -f "$W/ext4-32m.src" ] || mkpair ext4-32m
		gzip -9 -n -c "$W/ext4-32m.src" >"$W/$1.src"
		gzip -9 -n -c "$W/ext4-32m.tgt" >"$W/$1.tgt" ;;
	ext4-32m.zgz)
		[ -f "$W/ext4-32m.src" ] || mkpair ext4-32m
		for v in src tgt; do
			python3 -c 'import sys, gzip; sys.stdout.buffer.write(gzip.compress(open(sys.argv[1], "rb").read(), 9, mtime=0))' \
				"$W/ext4-32m.$v" >"$W/$1.$v"
		done ;;
	ext4-32m.swu)
		[ -f "$W/ext4-32m.zgz.src" ] || mkpair ext4-32m.zgz
		for v in src tgt; do
			rm -rf "$W/swu.$v" && mkdir "$W/swu.$v"
			printf 'software = { version = "%s"; images: ( { filename = "rootfs.ext4.gz"; device = "/dev/mmcblk0p2"; compressed = "zlib"; } ); }\n' \
				"$v" >"$W/swu.$v/sw-description"
			cp "$W/ext4-32m.zgz.$v" "$W/swu.$v/rootfs.ext4.gz"
			(cd "$W/swu.$v" && printf 'sw-description\nrootfs.ext4.gz\n' |
				cpio -o -H newc --quiet) >"$W/$1.$v"
			rm -rf "$W/swu.$v"
		done ;;
	esac
}

# measure NAME TOOL GEN_CMD APPLY_CMD DELTA OUT [EXPECTED]
measure() {
	pair=$1; tool=$2; gen=$3; app=$4; delta=$5; out=$6; want=${7:-$W/$1.tgt}
	rm -f "$delta" "$out"
	if ! $T -f "%e %U %M" -o "$W/gen.t" sh -c "$gen" >/dev/null 2>"$W/gen.err"; then
		printf "%-12s %-10s %s\n" "$pair" "$tool" "generation failed or timed out: $(tail -1 "$W/gen.err")"
		return 0
	fi
	$T -f "%e %U %M" -o "$W/app.t" sh -c "$app" >/dev/null 2>"$W/app.err" || true
	ok=FAIL; cmp -s "$out" "$want" && ok=ok
	set -- $(cat "$W/gen.t") $(cat "$W/app.t")
	tsz=$(stat -c %s "$W/$pair.tgt")
	dsz=$(stat -c %s "$delta")
	printf "%-12s %-10s %10d %7.2f%% %8.2f %8.2f %8.2f %9d %s\n" "$pair" "$tool" "$dsz" \
		"$(echo "$dsz * 100 / $tsz" | bc -l)" "$1" "$2" "$4" "$6" "$ok"
	echo "$pair $tool $dsz" >>"$W/sizes"
}

: >"$W/sizes"
printf "%-12s %-10s %10s %8s %8s %8s %8s %9s %s\n" pair tool "delta B" "% tgt" "gen s" "gen cpu" "apply s" "apply KB" check
for p in $PAIRS; do
	[ -f "$W/$p.src" ] && [ -f "$W/$p.tgt" ] || mkpair "$p"
	s="$W/$p.src"; t="$W/$p.tgt"
	printf "# %s: source %d bytes, target %d bytes\n" "$p" "$(stat -c %s "$s")" "$(stat -c %s "$t")"
	# the delta rebuilds the recompressed target (the target itself unless
	# it has gzip members zlib cannot reproduce)
	measure "$p" deltagate "$DG diff --force $s $t $W/d.dg --recompressed-target $W/r.dg" "$DG apply $s $W/d.dg $W/o.dg" "$W/d.dg" "$W/o.dg" "$W/r.dg"
	measure "$p" bsdiff "timeout $BSDIFF_TIMEOUT bsdiff $s $t $W/d.bs" "bspatch $s $W/o.bs $W/d.bs" "$W/d.bs" "$W/o.bs"
	measure "$p" xdelta3 "xdelta3 -e -9 -S djw -f -s $s $t $W/d.xd" "xdelta3 -d -f -s $s $W/d.xd $W/o.xd" "$W/d.xd" "$W/o.xd"
	measure "$p" zstd-19 "zstd -q -f -19 --long=31 --patch-from=$s $t -o $W/d.zs" "zstd -q -f -d --long=31 --patch-from=$s $W/d.zs -o $W/o.zs" "$W/d.zs" "$W/o.zs"
	measure "$p" zstd-22 "zstd -q -f --ultra -22 --long=31 --patch-from=$s $t -o $W/d.zs" "zstd -q -f -d --long=31 --patch-from=$s $W/d.zs -o $W/o.zs" "$W/d.zs" "$W/o.zs"
done

echo "# ratios: deltagate bytes / bsdiff bytes"
awk '{ b[$1" "$2] = $3; pairs[$1] = 1 }
     END { for (p in pairs) if ((p" bsdiff") in b) printf "%-12s %.3f\n", p, b[p" deltagate"] / b[p" bsdiff"];
           tb = 0; td = 0; for (p in pairs) if (p ~ /^prog/ && (p" bsdiff") in b) { tb += b[p" bsdiff"]; td += b[p" deltagate"] }
           if (tb) printf "executables total: %.3f x bsdiff\n", td / tb }' "$W/sizes"
# archive-awareness must cost nothing: the archive pairs' deltas against
# the best other tool on the uncompressed images
awk '$1 == "ext4-32m" && $2 != "deltagate" && (best == "" || $3 < best) { best = $3; bt = $2 }
     $1 ~ /^ext4-32m\.(zgz|swu)$/ && $2 == "deltagate" { d[$1] = $3 }
     END { for (p in d) if (best != "")
             printf "%-12s deltagate %d vs %s on uncompressed ext4-32m %d: %.4f x (%s)\n", p, d[p], bt, best,
                    d[p] / best, d[p] <= best ? "ok" : "LARGER" }' "$W/sizes"
