#!/usr/bin/env python3
"""Wrap an ELF's loadable segments into an ESP app image.
usage: mkespimg.py esp32c3|esp8266 IN.elf OUT.bin

esp32c3: the ESP-IDF format: 8-byte header (magic 0xE9, segment count, SPI
mode, SPI speed/size, entry), 16-byte extended header (chip id 5, hash
appended), segments (load address, length, data), the XOR checksum (seeded
0xEF) in the last byte of a 16-byte-aligned block, then the SHA-256 of all
that. esp8266: the ESP8266 v1 format: the same 8-byte header and segments
and checksum, no extended header and no SHA-256."""
import hashlib
import struct
import sys

kind, src, dst = sys.argv[1:4]
elf = open(src, "rb").read()
assert elf[:4] == b"\x7fELF" and elf[4] == 1, "need a 32-bit ELF"
entry, phoff = struct.unpack_from("<II", elf, 24)
phentsize, phnum = struct.unpack_from("<HH", elf, 42)
segs = []
for i in range(phnum):
    ptype, off, vaddr, paddr, filesz, memsz, flags, align = struct.unpack_from("<8I", elf, phoff + i * phentsize)
    if ptype == 1 and filesz:
        data = elf[off:off + filesz]
        data += b"\0" * (-len(data) % 4)
        segs.append((vaddr, data))
out = bytearray(struct.pack("<BBBBI", 0xE9, len(segs), 2, 0x20 if kind == "esp32c3" else 0x40, entry))
if kind == "esp32c3":
    # wp pin, SPI pin drive x3, chip id 5 (ESP32-C3), min rev, min/max rev full, reserved, hash appended
    out += struct.pack("<B3sHBHH4sB", 0xEE, b"\0\0\0", 5, 0, 0, 99, b"\0" * 4, 1)
ck = 0xEF
for addr, data in segs:
    out += struct.pack("<II", addr, len(data)) + data
    for b in data:
        ck ^= b
out += b"\0" * (15 - len(out) % 16)
out.append(ck)
if kind == "esp32c3":
    out += hashlib.sha256(out).digest()
open(dst, "wb").write(out)
