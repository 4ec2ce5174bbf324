#!/usr/bin/env python3
"""deps.py BINARY: the dependency list cargo auditable embedded in BINARY, one `name version` a
line (build-time dependencies left out). Reads the ELF section `.dep-v0` (zlib-compressed JSON),
as Trivy and Syft do, with nothing but the standard library, for any ELF class and byte order."""
import json
import struct
import sys
import zlib


def section(path, wanted):
    b = open(path, "rb").read()
    if b[:4] != b"\x7fELF":
        sys.exit(f"{path}: not an ELF file")
    wide, order = b[4] == 2, "<" if b[5] == 1 else ">"
    if wide:
        (shoff,) = struct.unpack_from(order + "Q", b, 0x28)
        entsize, count, names = struct.unpack_from(order + "HHH", b, 0x3A)
        fields = order + "IIQQQQ"
    else:
        (shoff,) = struct.unpack_from(order + "I", b, 0x20)
        entsize, count, names = struct.unpack_from(order + "HHH", b, 0x2E)
        fields = order + "IIIIII"
    heads = [struct.unpack_from(fields, b, shoff + i * entsize) for i in range(count)]
    strtab = heads[names][4]
    for name, _type, _flags, _addr, off, size in heads:
        end = b.index(b"\0", strtab + name)
        if b[strtab + name : end].decode() == wanted:
            return b[off : off + size]
    sys.exit(f"{path}: no {wanted} section")


deps = json.loads(zlib.decompress(section(sys.argv[1], ".dep-v0")))
for p in deps["packages"]:
    if p.get("kind", "runtime") == "runtime":
        print(p["name"], p["version"])
