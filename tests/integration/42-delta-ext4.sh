#!/bin/sh
# deltagate diff / apply on ext4 images made with mke2fs -d from two
# versions of a file tree: the raw images, their zlib-gzip'd forms, and a
# .swu holding the gzip'd image. The images are larger than the applier's
# trim interval, and under --memory-limit 1M larger than its heap limit for
# scratch data, so the target and the expanded images stream through
# mappings whose pages are dropped as they go (dg_delta_apply.c,
# dg_delta_trim_maps):
# every output is compared byte for byte.
set -u
DL_NAME=dg42
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib-delta.sh"

# two versions of a tree: text and binary files, some edited in place,
# some deleted, some added; then an image of each
python3 - "$W/t1" "$W/t2" <<'PY'
import os, random, sys
r = random.Random(6)
words = [("w%d" % i) * r.randint(1, 3) for i in range(3000)]
for k in range(70):
    if k % 4 == 3:
        data = bytes(r.getrandbits(8) for _ in range(r.randint(2000, 40000)))
    else:
        data = "".join(" ".join(r.choice(words) for _ in range(12)) + "\n"
                       for _ in range(r.randint(50, 900))).encode()
    rel = "d%d/f%d" % (k % 7, k)
    for t in sys.argv[1:]:
        os.makedirs(os.path.join(t, "d%d" % (k % 7)), exist_ok=True)
    open(os.path.join(sys.argv[1], rel), "wb").write(data)
    x = r.random()
    if x < 0.03:
        continue
    if x < 0.15:
        b = bytearray(data)
        for _ in range(r.randint(1, 6)):
            at = r.randrange(len(b))
            b[at:at + r.randint(1, 30)] = bytes(r.getrandbits(8) for _ in range(r.randint(1, 40)))
        data = bytes(b)
    open(os.path.join(sys.argv[2], rel), "wb").write(data)
os.makedirs(os.path.join(sys.argv[2], "new"))
for k in range(5):
    open(os.path.join(sys.argv[2], "new", "n%d" % k), "w").write(
        "".join("new %d %f\n" % (k, r.random()) for _ in range(400)))
PY
mke2fs -q -F -t ext4 -b 4096 -E root_owner=0:0 -d "$W/t1" "$W/a.img" 4M >/dev/null 2>&1
mke2fs -q -F -t ext4 -b 4096 -E root_owner=0:0 -d "$W/t2" "$W/b.img" 4M >/dev/null 2>&1
if [ -s "$W/a.img" ] && [ -s "$W/b.img" ] && ! cmp -s "$W/a.img" "$W/b.img"; then
	ok "two ext4 images made with mke2fs -d"; else nok "mke2fs -d images"; fi

# raw images
check "ext4 diff exits 0" 0 "$DG" diff "$W/a.img" "$W/b.img" "$W/img.delta"
isz=$(wc -c <"$W/img.delta")
if [ "$isz" -lt 1048576 ]; then ok "ext4 delta is small ($isz bytes)"; else nok "ext4 delta $isz bytes"; fi
check "ext4 apply exits 0" 0 "$DG" apply "$W/a.img" "$W/img.delta" "$W/out.img"
same "ext4 image rebuilt bit for bit" "$W/out.img" "$W/b.img"
# the smallest memory limit the applier takes: still streams
check "ext4 apply with --memory-limit 1M exits 0" 0 "$DG" apply --memory-limit 1M "$W/a.img" "$W/img.delta" "$W/out2.img"
same "ext4 image rebuilt under a 1 MiB memory limit" "$W/out2.img" "$W/b.img"

# zlib-gzip'd images (as image build tools write them) and a .swu of them
python3 - "$W/a.img" "$W/b.img" "$W/a.img.gz" "$W/b.img.gz" <<'PY'
import sys, zlib
def gz(data):
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 8)
    body = c.compress(data) + c.flush()
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03" + body +
            (zlib.crc32(data) & 0xffffffff).to_bytes(4, "little") + (len(data) & 0xffffffff).to_bytes(4, "little"))
for i in (1, 2):
    open(sys.argv[i + 2], "wb").write(gz(open(sys.argv[i], "rb").read()))
PY
check "ext4.gz diff exits 0" 0 "$DG" diff "$W/a.img.gz" "$W/b.img.gz" "$W/gz.delta" --recompressed-target "$W/gz.rec"
gsz=$(wc -c <"$W/gz.delta")
# diffed decompressed: about the raw images' delta, not the gzip's size
if [ "$gsz" -lt $((isz + 1000)) ]; then ok "ext4.gz delta ($gsz) ~ raw ext4 delta ($isz)"; else nok "ext4.gz delta $gsz vs raw $isz"; fi
same "ext4.gz recompressed target is the target (zlib member)" "$W/gz.rec" "$W/b.img.gz"
check "ext4.gz apply exits 0" 0 "$DG" apply "$W/a.img.gz" "$W/gz.delta" "$W/out.gz"
same "ext4.gz rebuilt bit for bit" "$W/out.gz" "$W/b.img.gz"
if gzip -dc "$W/out.gz" | cmp -s - "$W/b.img"; then ok "rebuilt ext4.gz decompresses to the image"; else nok "rebuilt ext4.gz contents"; fi

for v in a b; do
	mkdir -p "$W/swu.$v"
	printf 'software = { version = "%s"; images: ( { filename = "rootfs.ext4.gz"; compressed = "zlib"; } ); };\n' \
		"$v" >"$W/swu.$v/sw-description"
	cp "$W/$v.img.gz" "$W/swu.$v/rootfs.ext4.gz"
	(cd "$W/swu.$v" && printf 'sw-description\nrootfs.ext4.gz\n' | cpio -o -H newc --quiet >"$W/$v.swu")
done
check "swu diff exits 0" 0 "$DG" diff "$W/a.swu" "$W/b.swu" "$W/swu.delta" --recompressed-target "$W/swu.rec"
ssz=$(wc -c <"$W/swu.delta")
if [ "$ssz" -lt $((isz + 1000)) ]; then ok "swu delta ($ssz) ~ raw ext4 delta ($isz)"; else nok "swu delta $ssz vs raw $isz"; fi
check "swu apply exits 0" 0 "$DG" apply "$W/a.swu" "$W/swu.delta" "$W/out.swu"
same "swu rebuilt bit for bit" "$W/out.swu" "$W/b.swu"
if [ "$(cpio -t --quiet <"$W/out.swu" | tr '\n' ' ')" = "sw-description rootfs.ext4.gz " ]; then
	ok "cpio -t lists the rebuilt swu, sw-description first"; else nok "cpio -t of rebuilt swu"; fi
check "swu apply with --memory-limit 1M exits 0" 0 "$DG" apply --memory-limit 1M "$W/a.swu" "$W/swu.delta" "$W/out2.swu"
same "swu rebuilt under a 1 MiB memory limit" "$W/out2.swu" "$W/b.swu"
# a wrong source (the raw image) is refused, nothing left behind
check "swu apply to the wrong source exits 3" 3 "$DG" apply "$W/a.img" "$W/swu.delta" "$W/out3.swu"
if [ ! -e "$W/out3.swu" ] && [ -z "$(ls "$W" | grep '\.tmp\.')" ]; then ok "no target left after wrong source"; else nok "target left after wrong source"; fi

# restart points (item kind 7): the gzip member inflated and deflated in
# chunks by threads, bit for bit, whatever the thread count
check "ext4.gz diff --split-every 256K exits 0" 0 "$DG" diff --split-every 256K "$W/a.img.gz" "$W/b.img.gz" "$W/gzc.delta"
"$DG" inspect "$W/gzc.delta" >"$W/gzc.inspect" 2>&1
if grep -q "0: archive-chunked" "$W/gzc.inspect"; then ok "inspect shows the chunked archive item"; else nok "chunked archive item"; sed 's/^/# /' "$W/gzc.inspect"; fi
csz=$(wc -c <"$W/gzc.delta")
if [ "$csz" -lt $((gsz + 2000)) ]; then ok "restart points cost little ($csz vs $gsz bytes)"; else nok "chunked delta $csz vs $gsz"; fi
for th in 1 2 5; do
	check "ext4.gz chunked apply --threads $th exits 0" 0 "$DG" apply --threads "$th" "$W/a.img.gz" "$W/gzc.delta" "$W/outc$th.gz"
	same "ext4.gz rebuilt by $th thread(s)" "$W/outc$th.gz" "$W/b.img.gz"
done
check "ext4.gz chunked apply --memory-limit 1M exits 0" 0 "$DG" apply --memory-limit 1M "$W/a.img.gz" "$W/gzc.delta" "$W/outcm.gz"
same "ext4.gz chunked, rebuilt under a 1 MiB memory limit" "$W/outcm.gz" "$W/b.img.gz"
check "swu diff --split-every 256K exits 0" 0 "$DG" diff --split-every 256K "$W/a.swu" "$W/b.swu" "$W/swuc.delta"
check "swu chunked apply exits 0" 0 "$DG" apply "$W/a.swu" "$W/swuc.delta" "$W/outc.swu"
same "swu rebuilt from chunks" "$W/outc.swu" "$W/b.swu"
check "swu chunked apply to the wrong source exits 3" 3 "$DG" apply --threads 3 "$W/b.swu" "$W/swuc.delta" "$W/outc3.swu"
check "diff --split-every 0 exits 0" 0 "$DG" diff --split-every 0 "$W/a.img.gz" "$W/b.img.gz" "$W/gz0.delta"
if "$DG" inspect "$W/gz0.delta" 2>&1 | grep -q "0: archive "; then ok "--split-every 0: plain archive item"; else nok "--split-every 0 item"; fi
check "--split-every below 64K is a usage error" 2 "$DG" diff --split-every 1000 "$W/a.img.gz" "$W/b.img.gz" "$W/x.delta"
check "apply --threads 0 is a usage error" 2 "$DG" apply --threads 0 "$W/a.img.gz" "$W/gzc.delta" "$W/x.gz"

# a pair above the size from which the source and output mappings are
# trimmed too (TRIM_MAP_MIN, 16 MiB): a bsdiff step or a zstd frame then
# spans many trims
python3 - "$W/big.a" "$W/big.b" <<'PY'
import random, sys
r = random.Random(3)
a = r.randbytes(17 << 20)
b = bytearray(a)
for _ in range(40):
    at = r.randrange(len(b))
    b[at:at + r.randint(1, 50)] = r.randbytes(r.randint(1, 60))
b[5 << 20:5 << 20] = r.randbytes(3000)
open(sys.argv[1], "wb").write(a)
open(sys.argv[2], "wb").write(bytes(b))
PY
check "17 MiB diff exits 0" 0 "$DG" diff --level 9 "$W/big.a" "$W/big.b" "$W/big.delta"
check "17 MiB apply exits 0" 0 "$DG" apply "$W/big.a" "$W/big.delta" "$W/big.out"
same "17 MiB target rebuilt bit for bit" "$W/big.out" "$W/big.b"

echo "1..$n"
[ "$fails" -eq 0 ]
