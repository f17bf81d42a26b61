#!/usr/bin/env python3
"""The sample stream N times over, each copy shifted in event time by the sample's span plus a
day (so copies do not overlap), as JSON lines: repeat_sample.py SAMPLE OUT N."""
import datetime
import json
import sys


def ms(v):   # event times: integer ms or ISO-8601 text
    if isinstance(v, int):
        return v
    return int(datetime.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp() * 1000)


lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
times = [ms(e["at"]) for e in lines]
span = max(times) - min(times) + 86400000
with open(sys.argv[2], "w") as out:
    for copy in range(int(sys.argv[3])):
        for e, t in zip(lines, times):
            out.write(json.dumps(dict(e, at=t + copy * span), separators=(",", ":")) + "\n")
