#!/usr/bin/env python3
"""Write a synthetic C program of N functions, version 1 or 2 of it.

Version 2 is a realistic maintenance release of version 1: a few percent of
the functions change (constants, an extra statement), a handful of new
functions are inserted in the middle (shifting every address after them),
some strings change. Deterministic for a given seed.
usage: genprog.py SEED NFUNCS VERSION OUT.c"""
import random
import sys

seed, nf, version, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
r = random.Random(seed)
ops = ["+", "-", "^", "|", "&", "*"]


def body(i, rr, changed):
    lines = []
    nstmt = rr.randint(3, 14)
    for k in range(nstmt):
        c = rr.randint(1, 1 << 16)
        if changed and k == 0:
            c += 7
        kind = rr.randint(0, 6)
        callee = rr.randrange(0, max(1, i))
        if kind == 0:
            lines.append(f"\tx = x {rr.choice(ops)} {c}u;")
        elif kind == 1 and i > 0:
            lines.append(f"\tx += f{callee}(x ^ {c}u, y);")
        elif kind == 2:
            lines.append(f"\tif (x > {c}u) y = y * {rr.randint(3, 99)}u + x; else y ^= {c}u;")
        elif kind == 3:
            lines.append(f"\tfor (unsigned k = 0; k < (x & 7u); k++) y += tab[(k + {c}u) & 255u];")
        elif kind == 4:
            lines.append(f"\tswitch (x & 3u) {{ case 0: y += {c}u; break; case 1: y -= x; break; "
                         f"case 2: y = y * 3u; break; default: y ^= {rr.randint(1, 999)}u; }}")
        elif kind == 5 and i > 0:
            lines.append(f"\tif (y & 1u) x = f{callee}(y, x + {c}u);")
        else:
            lines.append(f"\tlog_msg(\"f{i} step {k} value %u\", x + {c}u);")
    if changed:
        lines.append(f"\ty += {rr.randint(1, 1000)}u; /* fix */")
    return lines


funcs = []
for i in range(nf):
    rr = random.Random(seed * 1000003 + i)
    changed = version == 2 and random.Random(seed + i * 7919).random() < 0.03
    funcs.append((i, body(i, rr, changed)))

with open(out, "w") as f:
    f.write("#include <stdio.h>\n#include <stdarg.h>\n")
    f.write("static unsigned tab[256];\n")
    f.write("static void log_msg(const char *fmt, ...) { va_list ap; va_start(ap, fmt); "
            "if (tab[0] == 12345u) vprintf(fmt, ap); va_end(ap); }\n")
    for i in range(nf):
        f.write(f"unsigned f{i}(unsigned x, unsigned y);\n")
    for i, lines in funcs:
        if version == 2 and i == nf // 3:
            for j in range(8):  # new functions, mid-program
                f.write(f"unsigned g{j}(unsigned x, unsigned y);\n")
                f.write(f"unsigned g{j}(unsigned x, unsigned y) {{ x ^= {j * 31 + 5}u; "
                        f"y += f{j}(x, y); log_msg(\"new feature {j} %u\", x); return x + y; }}\n")
        f.write(f"__attribute__((noinline)) unsigned f{i}(unsigned x, unsigned y)\n{{\n")
        f.write("\n".join(lines) + "\n\treturn x ^ y;\n}\n")
    f.write("int main(int argc, char **argv) { unsigned s = (unsigned)argc; (void)argv;\n")
    for i in range(0, nf, max(1, nf // 64)):
        f.write(f"\ts += f{i}(s, {i}u);\n")
    if version == 2:
        f.write("\ts += g0(s, 1u) + g7(s, 2u);\n")
    f.write(f"\tprintf(\"version {version} %u\\n\", s); return 0; }}\n")
