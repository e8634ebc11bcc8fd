#!/usr/bin/env python3
"""mcu-fw.py KIND 1|2|3 OUT - synthetic microcontroller firmware for the
tests (no cross compiler needed), deterministic for a given KIND/VERSION.

KIND cortex-m: a raw Cortex-M image linked at 0x08000000 (flash) with its
  RAM at 0x20000000: a vector table (initial SP in RAM, odd reset and
  handler vectors into the image), functions of Thumb-2 code (PUSH/POP,
  16-bit ALU and load/store, BL calls between functions, LDR literal
  loads) each followed by its literal pool (absolute pointers to functions
  with the Thumb bit, to strings, RAM and peripheral addresses), then
  .rodata (strings, pointer tables) and the .data initialisers.
KIND esp32c3: an ESP-IDF app image (magic 0xE9, chip id 5, RV32IMC): a DROM
  segment (strings and pointer tables) at 0x3C000020, an IROM segment of
  RV32 code (JAL calls, LUI+ADDI string addresses) at 0x42000020 and a DRAM
  segment; checksum and SHA-256 appended as esptool does.

VERSION 2 is VERSION 1 with the edits of a real release: a function
inserted near the start of the code (everything after it moves: BL/JAL
offsets across it and every absolute pointer change), two functions with
changed constants, a changed version string and a new string. VERSION 3 is
VERSION 2 with one more function changed and its own version string."""
import hashlib
import struct
import sys

MASK64 = (1 << 64) - 1


class Rng:
    """xorshift64: the same numbers on every Python"""

    def __init__(self, seed):
        self.s = (seed * 0x9E3779B97F4A7C15 + 0x2545F4914F6CDD1D) & MASK64 or 1

    def next(self):
        s = self.s
        s ^= (s << 13) & MASK64
        s ^= s >> 7
        s ^= (s << 17) & MASK64
        self.s = s
        return s >> 11

    def below(self, n):
        return self.next() % n


WORDS = ("sensor", "timer", "uart", "flash", "radio", "config", "error", "retry",
         "battery", "update", "boot", "watchdog", "adc", "spi", "i2c", "dma",
         "overflow", "ready", "calibrate", "sleep", "wake", "buffer", "crc")

NFUNC = 700
INSERT_BEFORE = 6        # v2: the new function goes before function 6
CHANGED = (150, 420)     # v2: functions whose constants change
CHANGED3 = 555           # v3: one more
NSTR = 160


def strings(version):
    r = Rng(7)
    out = [b"fw-demo %d.0.3 (deltagate test image)\0" % version]
    for i in range(1, NSTR):
        n = 2 + r.below(4)
        s = " ".join(WORDS[r.below(len(WORDS))] for _ in range(n))
        out.append(("%s %d: %%d\n" % (s, i)).encode() + b"\0")
    if version >= 2:
        out.append(b"new feature: delta updates over the gateway\0")
    return out


def order(version):
    fns = list(range(NFUNC))
    if version >= 2:
        fns.insert(INSERT_BEFORE, NFUNC)  # the new function, id NFUNC
    return fns


# ---------------------------------------------------------------- Thumb-2

def thumb_body(f, version, nfn):
    """items of function f: ('h', hw) | ('bl', fn) | ('ldr', reg, k);
    and its literal pool: ('fn', i) | ('str', i) | ('w', value)"""
    r = Rng(1000 + f)
    pool = []
    for _ in range(3 + r.below(6)):
        c = r.below(10)
        if c < 4:
            pool.append(("fn", r.below(NFUNC)))
        elif c < 7:
            pool.append(("str", r.below(NSTR)))
        elif c < 9:
            pool.append(("w", 0x20000000 + 4 * r.below(0x1800)))
        else:
            pool.append(("w", 0x40000000 + 0x400 * r.below(0x80)))
    if f == NFUNC:  # the inserted function calls existing ones, uses the new string
        pool.append(("str", NSTR))
    items = [("h", 0xB5F0)]  # push {r4-r7, lr}
    n = 20 + r.below(60) if f != NFUNC else 700
    changed = (version >= 2 and f in CHANGED) or (version == 3 and f == CHANGED3)
    for _ in range(n):
        c = r.below(100)
        rd, rn, imm = r.below(8), r.below(8), r.below(256)
        if changed and c < 30:
            imm = (imm + 17) & 0xFF
        if c < 14:
            items.append(("bl", r.below(NFUNC)))
        elif c < 24 and f != NFUNC:  # (the long new function: out of LDR's reach)
            items.append(("ldr", rd, r.below(len(pool))))
        elif c < 40:
            items.append(("h", 0x2000 | rd << 8 | imm))               # movs rd, #imm
        elif c < 52:
            items.append(("h", 0x6800 | (imm & 31) << 6 | rn << 3 | rd))  # ldr rd, [rn, #]
        elif c < 62:
            items.append(("h", 0x6000 | (imm & 31) << 6 | rn << 3 | rd))  # str rd, [rn, #]
        elif c < 72:
            items.append(("h", 0x1800 | r.below(8) << 6 | rn << 3 | rd))  # adds rd, rn, rm
        elif c < 80:
            items.append(("h", 0x2800 | rd << 8 | imm))               # cmp rd, #imm
        elif c < 86:
            items.append(("h", 0xD000 | r.below(14) << 8 | (imm & 0x0F)))  # b<cond> short fwd
        elif c < 92:
            items.append(("h", 0x4600 | (imm & 0x3F)))               # mov r, r
        else:
            items.append(("h", 0x3000 | rd << 8 | imm))               # adds rd, #imm
    if version >= 2 and f == 300:
        items.insert(5, ("bl", NFUNC))  # an existing function calls the new one
    items.append(("h", 0xBDF0))  # pop {r4-r7, pc}
    return items, pool


def put16(b, v):
    b += struct.pack("<H", v & 0xFFFF)


def thumb_bl(pc, dst):
    off = (dst - (pc + 4)) & 0xFFFFFFFF
    s, i1, i2 = (off >> 24) & 1, (off >> 23) & 1, (off >> 22) & 1
    j1, j2 = (~(i1 ^ s)) & 1, (~(i2 ^ s)) & 1
    return struct.pack("<HH", 0xF000 | s << 10 | ((off >> 12) & 0x3FF),
                       0xD000 | j1 << 13 | j2 << 11 | ((off >> 1) & 0x7FF))


def cortex_m(version):
    base, nvec = 0x08000000, 64
    fns = order(version)
    bodies = {f: thumb_body(f, version, len(fns)) for f in fns}
    strs = strings(version)
    # layout
    addr, fstart, pstart = base + 4 * nvec, {}, {}
    for f in fns:
        items, pool = bodies[f]
        fstart[f] = addr
        addr += sum(4 if it[0] == "bl" else 2 for it in items)
        addr = (addr + 3) & ~3
        pstart[f] = addr
        addr += 4 * len(pool)
    sstart = []
    for s in strs:
        sstart.append(addr)
        addr += len(s)
    addr = (addr + 3) & ~3
    tables = addr
    ntab = 96
    addr += 4 * 2 * ntab
    data = addr
    ndata = 64
    end = addr + 4 * ndata

    def ref(e):
        if e[0] == "fn":
            return fstart[e[1]] | 1
        if e[0] == "str":
            return sstart[e[1]]
        return e[1]

    b = bytearray()
    # vector table
    r = Rng(3)
    vec = [0x20008000, fstart[0] | 1]
    for i in range(2, nvec):
        if i in (7, 8, 9, 10, 13):
            vec.append(0)
        elif i < 16 or r.below(3) == 0:
            vec.append(fstart[1 + r.below(40)] | 1)
        else:
            vec.append(fstart[1] | 1)  # Default_Handler
    b += struct.pack("<%dI" % nvec, *vec)
    for f in fns:
        items, pool = bodies[f]
        assert base + len(b) == fstart[f]
        for it in items:
            pc = base + len(b)
            if it[0] == "h":
                put16(b, it[1])
            elif it[0] == "bl":
                b += thumb_bl(pc, fstart[it[1]])
            else:  # ldr rt, [pc, #imm8*4]
                lit = pstart[f] + 4 * it[2]
                off = lit - ((pc + 4) & ~3)
                assert 0 <= off < 1024 and off % 4 == 0
                put16(b, 0x4800 | it[1] << 8 | off >> 2)
        if len(b) % 4:
            put16(b, 0xBF00)  # nop
        for e in pool:
            b += struct.pack("<I", ref(e))
    for s in strs:
        b += s
    while len(b) % 4:
        b.append(0)
    r = Rng(5)
    for i in range(ntab):  # a handler table and a message table
        b += struct.pack("<I", fstart[r.below(NFUNC)] | 1)
    for i in range(ntab):
        b += struct.pack("<I", sstart[r.below(NSTR)])
    for i in range(ndata):  # .data: values and pointers
        v = r.below(1 << 32) if i % 3 else sstart[r.below(NSTR)]
        b += struct.pack("<I", v)
    assert base + len(b) == end
    return bytes(b)


# ---------------------------------------------------------------- RV32 (ESP32-C3)

def rv_i(op, rd, f3, rs1, imm):
    return (imm & 0xFFF) << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op


def rv_jal(pc, dst, rd=1):
    u = (dst - pc) & 0xFFFFFFFF
    return (0x6F | rd << 7 | ((u >> 20) & 1) << 31 | ((u >> 1) & 0x3FF) << 21 |
            ((u >> 11) & 1) << 20 | ((u >> 12) & 0xFF) << 12)


def rv_body(f, version):
    r = Rng(5000 + f)
    items = [("w", rv_i(0x13, 2, 0, 2, -16)), ("w", 0x00112623)]  # addi sp,-16; sw ra,12(sp)
    n = 15 + r.below(45) if f != NFUNC else 500
    changed = (version >= 2 and f in CHANGED) or (version == 3 and f == CHANGED3)
    for _ in range(n):
        c = r.below(100)
        rd, rs, imm = 8 + r.below(8), 8 + r.below(8), r.below(2048)
        if changed and c < 30:
            imm = (imm + 33) & 0x7FF
        if c < 15:
            items.append(("jal", r.below(NFUNC)))
        elif c < 22:
            items.append(("la", 10 + r.below(4), r.below(NSTR)))     # lui+addi a0..a3, string
        elif c < 45:
            items.append(("w", rv_i(0x13, rd, 0, rs, imm)))          # addi
        elif c < 62:
            items.append(("w", rv_i(0x03, rd, 2, rs, imm & 0x7FC)))  # lw
        elif c < 75:
            i = imm & 0x7FC                                           # sw
            items.append(("w", (i >> 5) << 25 | rd << 20 | rs << 15 | 2 << 12 | (i & 31) << 7 | 0x23))
        else:
            items.append(("w", 0x33 | rd << 7 | rs << 15 | (8 + r.below(8)) << 20))  # add
    if version >= 2 and f == 300:
        items.insert(3, ("jal", NFUNC))
    items += [("w", 0x00C12083), ("w", rv_i(0x13, 2, 0, 2, 16)), ("w", 0x00018082)]  # lw ra; addi sp; c.jr ra + c.nop
    return items


def esp32c3(version):
    drom, irom, dram = 0x3C000020, 0x42000020, 0x3FC88000
    fns = order(version)
    bodies = {f: rv_body(f, version) for f in fns}
    strs = strings(version)
    sstart, a = [], drom
    for s in strs:
        sstart.append(a)
        a += len(s)
    a = (a + 3) & ~3
    fstart, a = {}, irom
    for f in fns:
        fstart[f] = a
        a += sum(8 if it[0] == "la" else 4 for it in bodies[f])
    d = bytearray(b"".join(strs))
    while len(d) % 4:
        d.append(0)
    r = Rng(9)
    for i in range(128):  # pointer tables in flash rodata
        d += struct.pack("<I", fstart[r.below(NFUNC)] if i % 2 else sstart[r.below(NSTR)])
    c = bytearray()
    for f in fns:
        for it in bodies[f]:
            pc = irom + len(c)
            if it[0] == "w":
                w = it[1]
            elif it[0] == "jal":
                w = rv_jal(pc, fstart[it[1]])
            else:
                v = sstart[it[2]]
                hi = (v + 0x800) >> 12
                c += struct.pack("<I", 0x37 | it[1] << 7 | (hi & 0xFFFFF) << 12)
                w = rv_i(0x13, it[1], 0, it[1], v - (hi << 12))
            c += struct.pack("<I", w)
    ram = bytearray()
    for i in range(256):
        ram += struct.pack("<I", r.below(1 << 32) if i % 4 else fstart[r.below(NFUNC)])
    segs = [(drom, bytes(d)), (irom, bytes(c)), (dram, bytes(ram))]
    h = bytearray(struct.pack("<BBBBI", 0xE9, len(segs), 2, 0x1F, fstart[0]))
    # extended header: wp pin, spi drive, chip id 5 (ESP32-C3), revisions, hash appended
    h += struct.pack("<B3sHBHH4sB", 0xEE, b"\0\0\0", 5, 0, 0, 0xFFFF, b"\0" * 4, 1)
    assert len(h) == 24
    ck = 0xEF
    for addr, s in segs:
        h += struct.pack("<II", addr, len(s)) + s
        for x in s:
            ck ^= x
    while len(h) % 16 != 15:
        h.append(0)
    h.append(ck)
    return bytes(h) + hashlib.sha256(h).digest()


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("cortex-m", "esp32c3") or sys.argv[2] not in ("1", "2", "3"):
        sys.stderr.write("usage: mcu-fw.py cortex-m|esp32c3 1|2|3 OUT\n")
        return 2
    img = (cortex_m if sys.argv[1] == "cortex-m" else esp32c3)(int(sys.argv[2]))
    with open(sys.argv[3], "wb") as f:
        f.write(img)
    return 0


if __name__ == "__main__":
    sys.exit(main())
