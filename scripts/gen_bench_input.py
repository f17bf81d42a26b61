#!/usr/bin/env python3
"""Writes the benchmark workload of issue 3 ("Speed", part 2) for timing `vigil run`.

The stream: N events (default 1M), K keys (default 1,000), types A/B/C uniform, price uniform in
[0, 100), one event per ms of event time from 2024-01-01T00:00:00Z; the same shape as
perf/engine_bench.cc's UniformWorkload (same distributions, a different random generator, so not
the same events). Output, in OUTDIR:

  bench.msgpack     the events as concatenated msgpack maps {"type", "id", "price", "at"}
                    (or bench.jsonl, one JSON object per line, with --format json)
  bench_any.vigil   the schema and SEQ(A a, B b, C c) with b.price > a.price, c.price > b.price,
                    same key, within 10s, skip-till-any-match
  bench_next.vigil  the same rule, skip-till-next-match

msgpack is written by hand (fixmap, fixstr, float 64, int 64) so that the script needs nothing
beyond the Python standard library. Deterministic for a given --seed.

Usage: scripts/gen_bench_input.py OUTDIR [--events N] [--keys K] [--seed S] [--format msgpack|json]
See perf/README.md for the timing recipe.
"""
import argparse
import json
import os
import random
import struct

START_MS = 1704067200000  # 2024-01-01T00:00:00Z

SCHEMA = """event A { id: string  price: float  at: timestamp  time at  key id }
event B { id: string  price: float  at: timestamp  time at  key id }
event C { id: string  price: float  at: timestamp  time at  key id }
"""

RULE = """rule seq_{name} {{
  key id  within 10s
  pattern a: A -> {arrow}b: B where price > a.price -> {arrow}c: C where price > b.price
  emit {{ id: key, a: a.price, b: b.price, c: c.price }}
}}
"""


def fixstr(text):
    data = text.encode()
    assert len(data) < 32
    return bytes([0xA0 | len(data)]) + data


KEY_TYPE, KEY_ID, KEY_PRICE, KEY_AT = (fixstr(k) for k in ("type", "id", "price", "at"))
TYPE_NAMES = [fixstr(t) for t in ("A", "B", "C")]


def msgpack_event(type_index, key, price, at):
    return b"".join((
        b"\x84",
        KEY_TYPE, TYPE_NAMES[type_index],
        KEY_ID, key,
        KEY_PRICE, b"\xcb", struct.pack(">d", price),
        KEY_AT, b"\xd3", struct.pack(">q", at),
    ))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--format", choices=("msgpack", "json"), default="msgpack")
    args = parser.parse_args()

    os.makedirs(args.outdir, exist_ok=True)
    for name, arrow in (("any", "any "), ("next", "")):
        with open(os.path.join(args.outdir, f"bench_{name}.vigil"), "w") as f:
            f.write(SCHEMA + RULE.format(name=name, arrow=arrow))

    rng = random.Random(args.seed)
    key_names = [f"key-{k:07d}" for k in range(args.keys)]
    if args.format == "msgpack":
        keys = [fixstr(k) for k in key_names]
        path = os.path.join(args.outdir, "bench.msgpack")
        with open(path, "wb") as f:
            chunk = []
            for i in range(args.events):
                chunk.append(msgpack_event(rng.randrange(3), keys[rng.randrange(args.keys)],
                                           rng.uniform(0, 100), START_MS + i))
                if len(chunk) == 65536:
                    f.write(b"".join(chunk))
                    chunk.clear()
            f.write(b"".join(chunk))
    else:
        path = os.path.join(args.outdir, "bench.jsonl")
        with open(path, "w") as f:
            for i in range(args.events):
                event = {"type": "ABC"[rng.randrange(3)], "id": key_names[rng.randrange(args.keys)],
                         "price": rng.uniform(0, 100), "at": START_MS + i}
                f.write(json.dumps(event, separators=(",", ":")) + "\n")
    print(f"wrote {args.events} events ({os.path.getsize(path)} bytes) to {path}")


if __name__ == "__main__":
    main()
