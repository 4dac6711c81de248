#!/usr/bin/env python3
"""Independent oracle for the adopt tests: replay a binary IMA measurement
list (little-endian, classic 20-byte template digest column) into PCR values,
as a kernel with a TPM extends them: each bank gets its own hash of the
template data (for the legacy "ima" template: d || name zero-padded to 256
bytes); a violation (all-zero listed digest) extends 0xff over the bank size.

usage: replay.py LIST BANK [BANK...]     prints "<bank> <pcr> <hex>" per PCR
       replay.py --prefixes LIST BANK PCR  prints "<k> <hex>" after each entry
"""
import hashlib
import struct
import sys


def records(data):
    off = 0
    while off < len(data):
        pcr, = struct.unpack_from("<I", data, off)
        digest = data[off + 4:off + 24]
        nlen, = struct.unpack_from("<I", data, off + 24)
        name = data[off + 28:off + 28 + nlen]
        off += 28 + nlen
        if name == b"ima":
            d = data[off:off + 20]
            n, = struct.unpack_from("<I", data, off + 20)
            fname = data[off + 24:off + 24 + n]
            off += 24 + n
            hashed = d + fname + b"\0" * (256 - len(fname))
        else:
            dlen, = struct.unpack_from("<I", data, off)
            hashed = data[off + 4:off + 4 + dlen]
            off += 4 + dlen
        if off > len(data):
            raise SystemExit("list cut short")
        yield pcr, digest, hashed


def main():
    args = sys.argv[1:]
    prefixes = args and args[0] == "--prefixes"
    if prefixes:
        args = args[1:]
    data = open(args[0], "rb").read()
    banks = args[1:2] if prefixes else args[1:]
    want_pcr = int(args[2]) if prefixes else None
    vals = {}
    for k, (pcr, digest, hashed) in enumerate(records(data), 1):
        for b in banks:
            size = hashlib.new(b).digest_size
            if digest == b"\0" * 20:
                d = b"\xff" * size
            else:
                d = hashlib.new(b, hashed).digest()
            old = vals.get((b, pcr), b"\0" * size)
            vals[(b, pcr)] = hashlib.new(b, old + d).digest()
        if prefixes and pcr == want_pcr:
            print(k, vals[(banks[0], pcr)].hex())
    if not prefixes:
        for (b, pcr), v in sorted(vals.items()):
            print(b, pcr, v.hex())


main()
