#!/bin/sh
# Which gzip files can zlib rebuild bit for bit? Makes a text file, a
# binary and an ext4 image (mke2fs -d), compresses each with GNU gzip
# -1..-9 and with zlib (python3) -1/-6/-9, runs dg_gzip_probe on each and
# times `gzip -dc` on the same file as the reference.
# usage: bench/swu/gzip-repro.sh [BUILDDIR]   (default: build)
set -eu
B=${1:-build}
P="$B/bench/swu/gzprobe"
[ -x "$P" ] || { echo "build $P first (make -C $B bench/swu/gzprobe)" >&2; exit 2; }
W=$(mktemp -d /tmp/dg_gzip_bench.XXXXXX)
trap 'rm -rf "$W"' EXIT

echo "command: $0 $*"
echo "machine: nproc=$(nproc) arch=$(uname -m) cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "gzip: $(gzip --version | head -1); zlib: $(python3 -c 'import zlib; print(zlib.ZLIB_RUNTIME_VERSION)')"

cat /usr/share/common-licenses/* 2>/dev/null | head -c 3000000 >"$W/text"
head -c 300000 /usr/bin/openssl >"$W/binary"
# a small root file system: headers, libraries, executables
mkdir -p "$W/tree/include" "$W/tree/bin"
cp -r /usr/include/openssl /usr/include/linux "$W/tree/include/"
for b in /usr/bin/gzip /usr/bin/cpio /usr/bin/openssl /usr/bin/xz /usr/bin/zstd; do
	[ -f "$b" ] && cp "$b" "$W/tree/bin/"
done
mke2fs -q -t ext4 -d "$W/tree" "$W/ext4" 24M
ls -l "$W/text" "$W/binary" "$W/ext4" | awk '{print "input:", $9, $5, "bytes"}'

for f in text binary ext4; do
	for l in 1 2 3 4 5 6 7 8 9; do
		gzip -n -$l -c "$W/$f" >"$W/$f.gzip$l.gz"
	done
	for l in 1 6 9; do
		python3 -c "import zlib,sys; c=zlib.compressobj($l, zlib.DEFLATED, 31); d=open(sys.argv[1],'rb').read(); sys.stdout.buffer.write(c.compress(d)+c.flush())" "$W/$f" >"$W/$f.zlib$l.gz"
	done
done
cd "$W"
for g in *.gz; do
	t0=$(date +%s%N)
	gzip -dc "$g" >/dev/null
	t1=$(date +%s%N)
	printf '%s  (gzip -dc %d ms)\n' "$("$OLDPWD/$P" "$g")" $(( (t1 - t0) / 1000000 ))
done
