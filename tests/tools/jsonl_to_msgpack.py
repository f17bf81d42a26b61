#!/usr/bin/env python3
"""JSON lines on stdin (or the file named) -> a stream of msgpack values on stdout, one per line.

A tiny encoder for the tests (python3-msgpack is not required): maps, arrays, strings (up to 255
bytes), ints, floats and booleans, as the sample stream needs.
"""
import json
import struct
import sys


def pack(v):
    if isinstance(v, bool):
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, int):
        return bytes([v]) if 0 <= v < 128 else b"\xd3" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        return (bytes([0xa0 | len(b)]) if len(b) < 32 else b"\xd9" + bytes([len(b)])) + b
    if isinstance(v, list):
        return bytes([0x90 | len(v)]) + b"".join(pack(x) for x in v)
    if isinstance(v, dict):
        return bytes([0x80 | len(v)]) + b"".join(pack(k) + pack(x) for k, x in v.items())
    raise TypeError(v)


source = open(sys.argv[1], encoding="utf-8") if len(sys.argv) > 1 else sys.stdin
out = sys.stdout.buffer
for line in source:
    if line.strip():
        out.write(pack(json.loads(line)))
