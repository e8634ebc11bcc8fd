#!/usr/bin/env python3
"""Make two versions of a file tree for file-system image pairs.

usage: mktree.py SEED MAXBYTES OUT1 OUT2 SRCDIR...
Version 1 copies regular files from SRCDIR (sorted, up to MAXBYTES).
Version 2 is an update of it: ~5% of files edited in place (a few lines
changed), ~2% deleted, a few new files added, one directory renamed."""
import os
import random
import shutil
import sys

seed, maxbytes, out1, out2 = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
r = random.Random(seed)
files = []
total = 0
for top in sys.argv[5:]:
    for d, dirs, names in os.walk(top):
        dirs.sort()
        for n in sorted(names):
            p = os.path.join(d, n)
            if not os.path.isfile(p) or os.path.islink(p):
                continue
            sz = os.path.getsize(p)
            if sz > 4 << 20 or total + sz > maxbytes:
                continue
            files.append(p)
            total += sz
for out in (out1, out2):
    if os.path.exists(out):
        shutil.rmtree(out)
for i, p in enumerate(files):
    rel = p.lstrip("/").replace("/", "_", 1)
    data = open(p, "rb").read()
    dst1 = os.path.join(out1, rel)
    os.makedirs(os.path.dirname(dst1), exist_ok=True)
    open(dst1, "wb").write(data)
    x = r.random()
    if x < 0.02:
        continue  # deleted in version 2
    if x < 0.07 and len(data) > 64:
        b = bytearray(data)
        for _ in range(r.randint(1, 8)):
            at = r.randrange(0, len(b))
            b[at:at + r.randint(1, 40)] = bytes(r.getrandbits(8) for _ in range(r.randint(1, 60)))
        data = bytes(b)
    dst2 = os.path.join(out2, rel)
    os.makedirs(os.path.dirname(dst2), exist_ok=True)
    open(dst2, "wb").write(data)
for k in range(20):
    p = os.path.join(out2, "new", f"file{k}.txt")
    os.makedirs(os.path.dirname(p), exist_ok=True)
    open(p, "w").write("".join(f"new line {k} {r.random()}\n" for _ in range(r.randint(10, 2000))))
print(f"{len(files)} files, {total} bytes")
