#!/bin/sh
# deltagate diff / diffgen / apply / inspect: round trips and exit codes.
set -u
DL_NAME=dg40
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib-delta.sh"

# a source with structure, and a target with edits, an insertion and a move
awk 'BEGIN { srand(7); for (i = 0; i < 40000; i++) printf "line %d value %d\n", i, int(rand()*1000) }' >"$W/src"
{ head -c 300000 "$W/src"; head -c 20000 /dev/urandom; tail -c +300001 "$W/src" | sed 's/value 1/value 9/'; } >"$W/tgt"

check "diff exits 0" 0 "$DG" diff "$W/src" "$W/tgt" "$W/delta" --level 9 --recompressed-target "$W/recomp"
if cmp -s "$W/recomp" "$W/tgt"; then ok "plain target: recompressed target is the target"; else nok "recompressed target"; fi
dsz=$(wc -c <"$W/delta"); tsz=$(wc -c <"$W/tgt")
if [ "$dsz" -lt $((tsz / 10)) ]; then ok "delta is small ($dsz of $tsz bytes)"; else nok "delta is small ($dsz of $tsz)"; fi
check "apply exits 0" 0 "$DG" apply "$W/src" "$W/delta" "$W/out"
if cmp -s "$W/out" "$W/tgt"; then ok "apply rebuilds the target"; else nok "apply rebuilds the target"; fi
check "inspect exits 0" 0 "$DG" inspect "$W/delta"
if grep -q "^target size: $tsz\$" "$W/cmd.out"; then ok "inspect shows the target size"; else nok "inspect shows the target size"; fi
check "inspect --json exits 0" 0 "$DG" inspect --json "$W/delta"
if grep -q "\"targetSize\": *$tsz" "$W/cmd.out" && grep -q '"formatVersion": *1' "$W/cmd.out"; then ok "inspect --json"; else nok "inspect --json"; fi

# wrong source: exit 3, result code, nothing left behind
rm -f "$W/out"
check "wrong source exits 3" 3 "$DG" apply "$W/tgt" "$W/delta" "$W/out"
if grep -q "0x90A000CD" "$W/err"; then ok "wrong source reports 0x90A000CD"; else nok "wrong source result code"; fi
if [ ! -e "$W/out" ] && [ -z "$(ls "$W" | grep '\.tmp\.')" ]; then ok "no target left after wrong source"; else nok "no target left after wrong source"; fi

# truncated and corrupt deltas: exit 4
head -c $((dsz - 10)) "$W/delta" >"$W/trunc"
check "truncated delta exits 4" 4 "$DG" apply "$W/src" "$W/trunc" "$W/out"
if grep -q "0x90A000CC" "$W/err"; then ok "truncated delta reports 0x90A000CC"; else nok "truncated result code"; fi
printf 'not a delta at all, just text' >"$W/junk"
check "not a delta exits 4" 4 "$DG" apply "$W/src" "$W/junk" "$W/out"
check "inspect of junk exits 4" 4 "$DG" inspect "$W/junk"
if [ ! -e "$W/out" ]; then ok "no target left after corrupt delta"; else nok "no target left after corrupt delta"; fi

# unknown format version: exit 6
{ head -c 8 "$W/delta"; printf '\011'; tail -c +10 "$W/delta"; } >"$W/v9"
check "unknown version exits 6" 6 "$DG" apply "$W/src" "$W/v9" "$W/out"

# target hash mismatch: exit 5 (flip the target hash, repair the header CRC)
python3 - "$W/delta" "$W/badtgt" <<'PY' && check "target mismatch exits 5" 5 "$DG" apply "$W/src" "$W/badtgt" "$W/out"
import sys, zlib, struct
d = bytearray(open(sys.argv[1], 'rb').read())
d[64] ^= 0xFF
d[108:112] = struct.pack('<I', zlib.crc32(bytes(d[:108])) & 0xffffffff)
open(sys.argv[2], 'wb').write(d)
PY
if [ ! -e "$W/out" ]; then ok "no target left after target mismatch"; else nok "no target left after target mismatch"; fi

# memory limit too small for the delta's streams: exit 8 (or 0 if it fits)
check "tiny --memory-limit is a usage error" 2 "$DG" apply --memory-limit 1K "$W/src" "$W/delta" "$W/out"

# not smaller than the compressed target: exit 7; --force writes it
head -c 50000 /dev/urandom >"$W/r1"; head -c 50000 /dev/urandom >"$W/r2"
check "no-gain diff exits 7" 7 "$DG" diff "$W/r1" "$W/r2" "$W/rd"
if [ ! -e "$W/rd" ]; then ok "no delta written on no-gain"; else nok "no delta written on no-gain"; fi
check "--force writes it" 0 "$DG" diff --force "$W/r1" "$W/r2" "$W/rd"
check "forced delta applies" 0 "$DG" apply "$W/r1" "$W/rd" "$W/rout"
if cmp -s "$W/rout" "$W/r2"; then ok "forced delta rebuilds the target"; else nok "forced delta rebuilds"; fi

# empty files
: >"$W/e1"; : >"$W/e2"
check "diff of empty files (forced)" 0 "$DG" diff --force "$W/e1" "$W/e2" "$W/ed"
check "apply to an empty target" 0 "$DG" apply "$W/e1" "$W/ed" "$W/eout"
if [ -f "$W/eout" ] && [ ! -s "$W/eout" ]; then ok "empty target rebuilt"; else nok "empty target rebuilt"; fi

# diffgen: DiffGen's argument order, creates its directories and its log
check "diffgen exits 0" 0 "$DG" diffgen "$W/src" "$W/tgt" "$W/dg.delta" "$W/logs/a" "$W/work/b" "$W/dg.recomp"
if [ -d "$W/work/b" ] && grep -q "ok," "$W/logs/a/deltagate-diffgen.log"; then ok "diffgen made its directories and log"; else nok "diffgen log"; fi
check "diffgen delta applies" 0 "$DG" apply "$W/src" "$W/dg.delta" "$W/dgout"
if cmp -s "$W/dgout" "$W/tgt" && cmp -s "$W/dg.recomp" "$W/tgt"; then ok "diffgen output rebuilds the target"; else nok "diffgen output"; fi
check "diffgen with a missing source exits 1" 1 "$DG" diffgen "$W/nope" "$W/tgt" "$W/x" "$W/logs/a" "$W/work/b" "$W/y"
if grep -q "failed" "$W/logs/a/deltagate-diffgen.log"; then ok "diffgen logs the failure"; else nok "diffgen logs the failure"; fi

# .swu with a gzip'd image: diffed decompressed, rebuilt bit for bit
mkdir -p "$W/s1" "$W/s2"
printf 'software = { version = "1.0"; };\n' >"$W/s1/sw-description"
printf 'software = { version = "2.0"; };\n' >"$W/s2/sw-description"
python3 - "$W/src" "$W/tgt" "$W/s1/rootfs.gz" "$W/s2/rootfs.gz" <<'PY'
import sys, zlib
def gz(data):  # gzip member made by zlib, as image build tools do
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 8)
    body = c.compress(data) + c.flush()
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03" + body +
            (zlib.crc32(data) & 0xffffffff).to_bytes(4, "little") + (len(data) & 0xffffffff).to_bytes(4, "little"))
open(sys.argv[3], "wb").write(gz(open(sys.argv[1], "rb").read()))
open(sys.argv[4], "wb").write(gz(open(sys.argv[2], "rb").read()))
PY
(cd "$W/s1" && printf 'sw-description\nrootfs.gz\n' | cpio -o -H newc --quiet >"$W/a.swu")
(cd "$W/s2" && printf 'sw-description\nrootfs.gz\n' | cpio -o -H newc --quiet >"$W/b.swu")
check "swu diff exits 0" 0 "$DG" diff "$W/a.swu" "$W/b.swu" "$W/swu.delta" --recompressed-target "$W/rec.swu"
ssz=$(wc -c <"$W/swu.delta"); bsz=$(wc -c <"$W/b.swu")
# archive-awareness costs (almost) nothing: about the plain images' delta
if [ "$ssz" -lt $((dsz + 2000)) ]; then ok "swu delta ($ssz of $bsz bytes) ~ plain delta ($dsz)"; else nok "swu delta $ssz vs plain $dsz"; fi
check "swu apply exits 0" 0 "$DG" apply "$W/a.swu" "$W/swu.delta" "$W/out.swu"
if cmp -s "$W/out.swu" "$W/b.swu" && cmp -s "$W/rec.swu" "$W/b.swu"; then ok "swu rebuilt bit for bit"; else nok "swu rebuilt bit for bit"; fi
if [ "$(cpio -t --quiet <"$W/out.swu" | tr '\n' ' ')" = "sw-description rootfs.gz " ]; then ok "cpio -t lists the rebuilt swu, sw-description first"; else nok "cpio -t of rebuilt swu"; fi
check "inspect shows the archive item" 0 "$DG" inspect "$W/swu.delta"
if grep -q "archive" "$W/cmd.out"; then ok "inspect names the archive item"; else nok "inspect names the archive item"; fi

# usage errors
check "diff without arguments" 2 "$DG" diff
check "apply with 2 arguments" 2 "$DG" apply "$W/src" "$W/delta"
check "bad --level" 2 "$DG" diff --level 99 "$W/src" "$W/tgt" "$W/d2"
check "diffgen with 3 arguments" 2 "$DG" diffgen a b c
check "missing source" 1 "$DG" apply "$W/missing" "$W/delta" "$W/out"

echo "1..$n"
[ "$fails" -eq 0 ]
