#!/usr/bin/env python3
"""Validates the bundled sample stream rules/sample/events.jsonl against rules/schema.vigil.

Vigil cannot run rules yet (issue 3), so this is the check that the sample is well-formed input
for the JSON decoder (adapters/decoder.h): every line is one JSON object whose first member is
the discriminator "type", naming an event type declared in schema.vigil; every declared field of
that type is present exactly once with the JSON kind the decoder accepts; the file is ordered by
event time except for a few events at most MAX_LATENESS late. It also checks that
rules/sample/expected.jsonl names existing rules and well-formed times.

The schema is read with a regular expression over the simple `event Name { field: type ... }`
declarations that schema.vigil uses (no nesting; comments stripped first). It is deliberately
not a Vigil parser: if schema.vigil outgrows the regex, this script fails loudly (unknown type).

Usage: python3 scripts/check_sample.py [events.jsonl]   (exit status 1 on any problem)
"""
import datetime
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA = os.path.join(ROOT, "rules", "schema.vigil")
EVENTS = os.path.join(ROOT, "rules", "sample", "events.jsonl")
EXPECTED = os.path.join(ROOT, "rules", "sample", "expected.jsonl")
MAX_LATENESS_MS = 5000
SCALARS = {"string", "int", "float", "bool", "timestamp", "duration"}

_EVENT_RE = re.compile(r"\bevent\s+([A-Za-z_]\w*)\s*\{([^{}]*)\}", re.S)
_FIELD_RE = re.compile(r"^\s*([A-Za-z_]\w*)\s*:\s*(list\s*<\s*\w+\s*>|\w+)\s*$")
_TIME_RE = re.compile(r"^\s*time\s+([A-Za-z_]\w*)\s*$")
_ISO_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_DURATION_RE = re.compile(r"^(\d+(ms|s|m|h|d|w))+$")


def strip_comments(text):
    """Removes `//` and `#` comments (schema.vigil has no string literals containing them)."""
    return re.sub(r"(//|#)[^\n]*", "", text)


def parse_schema(path=SCHEMA):
    """Returns {type: (ordered [(field, kind)], time_field)}; kind is 'string' or ('list', 'string')."""
    with open(path, encoding="utf-8") as f:
        text = strip_comments(f.read())
    types = {}
    for name, body in _EVENT_RE.findall(text):
        fields, time_field = [], None
        for line in body.splitlines():
            if not line.strip() or line.strip().startswith("key "):
                continue
            m = _TIME_RE.match(line)
            if m:
                time_field = m.group(1)
                continue
            m = _FIELD_RE.match(line)
            if not m:
                raise SystemExit(f"{path}: cannot read declaration in event {name}: {line.strip()!r}")
            kind = m.group(2).replace(" ", "")
            if kind.startswith("list<"):
                kind = ("list", kind[5:-1])
                if kind[1] not in SCALARS:
                    raise SystemExit(f"{path}: {name}.{m.group(1)}: unknown element type {kind[1]}")
            elif kind not in SCALARS:
                raise SystemExit(f"{path}: {name}.{m.group(1)}: unknown type {kind}")
            fields.append((m.group(1), kind))
        if time_field is None:
            raise SystemExit(f"{path}: event {name} has no `time` field")
        types[name] = (fields, time_field)
    if not types:
        raise SystemExit(f"{path}: no event declarations found")
    return types


def parse_iso_ms(text):
    """ISO-8601 timestamp -> ms since the epoch, or None (same forms as grammar/time_format.h)."""
    m = _ISO_RE.match(text)
    if not m:
        return None
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac = m.group(7) or ""
    zone = m.group(8)
    try:
        dt = datetime.datetime(y, mo, d, h, mi, s, tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    ms = int(dt.timestamp()) * 1000 + (int((frac[1:] + "000")[:3]) if frac else 0)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        ms -= sign * (int(zone[1:3]) * 60 + int(zone[4:6])) * 60000
    return ms


def kind_error(value, kind):
    """Returns None if `value` (decoded JSON) is acceptable for a field of `kind`, else a reason."""
    def got(v):
        if isinstance(v, bool):
            return "bool"
        if isinstance(v, int):
            return "int"
        return {float: "float", str: "string", list: "list", dict: "object",
                type(None): "null"}[type(v)]
    if isinstance(kind, tuple):
        if not isinstance(value, list):
            return f"expected list<{kind[1]}>, got {got(value)}"
        for i, element in enumerate(value):
            reason = kind_error(element, kind[1])
            if reason:
                return f"element {i}: {reason}"
        return None
    g = got(value)
    if kind == "string":
        return None if g == "string" else f"expected string, got {g}"
    if kind == "int":
        return None if g == "int" else f"expected int, got {g}"
    if kind == "float":
        return None if g in ("int", "float") else f"expected float, got {g}"
    if kind == "bool":
        return None if g == "bool" else f"expected bool, got {g}"
    if kind == "timestamp":
        if g == "int":
            return None
        if g == "string":
            return None if parse_iso_ms(value) is not None else f"invalid timestamp {value!r}"
        return f"expected timestamp, got {g}"
    if kind == "duration":
        if g == "int":
            return None
        if g == "string":
            return None if _DURATION_RE.match(value) else f"invalid duration {value!r}"
        return f"expected duration, got {g}"
    return f"unknown kind {kind}"


def time_ms(value):
    return value if isinstance(value, int) else parse_iso_ms(value)


def check_events(path, types):
    """Returns (problems, stats) for the event file."""
    problems, counts = [], {}
    max_seen, late, max_late, first_t, last_t = None, 0, 0, None, None
    size = os.path.getsize(path)
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            where = f"{os.path.relpath(path)}:{n}"
            if not line.strip():
                problems.append(f"{where}: empty line")
                continue
            duplicates = []

            def pairs_hook(pairs, duplicates=duplicates):
                seen = set()
                for k, _ in pairs:
                    if k in seen:
                        duplicates.append(k)
                    seen.add(k)
                return pairs
            try:
                pairs = json.loads(line, object_pairs_hook=pairs_hook)
            except json.JSONDecodeError as e:
                problems.append(f"{where}: invalid JSON: {e}")
                continue
            if not isinstance(pairs, list):
                problems.append(f"{where}: not a JSON object")
                continue
            if duplicates:
                problems.append(f"{where}: duplicate member(s) {duplicates}")
            obj = dict(pairs)
            if not pairs or pairs[0][0] != "type":
                problems.append(f"{where}: first member is not \"type\"")
            typ = obj.get("type")
            if not isinstance(typ, str):
                problems.append(f"{where}: missing or non-string discriminator 'type'")
                continue
            if typ not in types:
                problems.append(f"{where}: unknown event type {typ!r}")
                continue
            fields, time_field = types[typ]
            bad = False
            for name, kind in fields:
                if name not in obj:
                    problems.append(f"{where}: {typ}: missing field {name!r}")
                    bad = True
                    continue
                reason = kind_error(obj[name], kind)
                if reason:
                    problems.append(f"{where}: {typ}: field {name!r}: {reason}")
                    bad = True
            undeclared = set(obj) - {"type"} - {name for name, _ in fields}
            if undeclared:
                problems.append(f"{where}: {typ}: undeclared field(s) {sorted(undeclared)}")
            if bad:
                continue
            counts[typ] = counts.get(typ, 0) + 1
            t = time_ms(obj[time_field])
            first_t = t if first_t is None else min(first_t, t)
            last_t = t if last_t is None else max(last_t, t)
            if max_seen is not None and t < max_seen:
                late += 1
                max_late = max(max_late, max_seen - t)
                if max_seen - t > MAX_LATENESS_MS:
                    problems.append(f"{where}: {max_seen - t} ms behind an earlier line "
                                    f"(more than {MAX_LATENESS_MS} ms)")
            max_seen = t if max_seen is None else max(max_seen, t)
    stats = {"bytes": size, "events": sum(counts.values()), "per_type": counts,
             "out_of_order": late, "max_lateness_ms": max_late, "first": first_t, "last": last_t}
    return problems, stats


def rule_names():
    names = set()
    for fn in os.listdir(os.path.join(ROOT, "rules")):
        if fn.endswith(".vigil"):
            with open(os.path.join(ROOT, "rules", fn), encoding="utf-8") as f:
                names.update(re.findall(r"^\s*rule\s+([A-Za-z_]\w*)", strip_comments(f.read()), re.M))
    return names


def check_expected(path):
    problems, rules, n = [], rule_names(), 0
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            where = f"{os.path.relpath(path)}:{n}"
            try:
                e = json.loads(line)
            except json.JSONDecodeError as err:
                problems.append(f"{where}: invalid JSON: {err}")
                continue
            if e.get("rule") not in rules:
                problems.append(f"{where}: unknown rule {e.get('rule')!r}")
            if not isinstance(e.get("key"), str) or not e["key"]:
                problems.append(f"{where}: key must be a non-empty string")
            if not isinstance(e.get("at"), str) or parse_iso_ms(e["at"]) is None:
                problems.append(f"{where}: bad 'at' {e.get('at')!r}")
            if e.get("expect") not in ("alert", "none"):
                problems.append(f"{where}: expect must be \"alert\" or \"none\"")
    return problems, n


def fmt(ms):
    dt = (datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
          + datetime.timedelta(milliseconds=ms))
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def main(argv):
    path = argv[1] if len(argv) > 1 else EVENTS
    types = parse_schema()
    problems, stats = check_events(path, types)
    if os.path.exists(EXPECTED) and len(argv) <= 1:
        more, n_expected = check_expected(EXPECTED)
        problems += more
        stats["expected_lines"] = n_expected
    for p in problems[:50]:
        print(p, file=sys.stderr)
    if len(problems) > 50:
        print(f"... and {len(problems) - 50} more", file=sys.stderr)
    print(f"{os.path.relpath(path)}: {stats['events']} valid events, {stats['bytes']} bytes, "
          f"{fmt(stats['first'])} .. {fmt(stats['last'])}" if stats["events"] else "no events")
    for typ in sorted(stats["per_type"]):
        print(f"  {typ:16} {stats['per_type'][typ]}")
    print(f"  out of order: {stats['out_of_order']} line(s), at most {stats['max_lateness_ms']} ms late")
    if "expected_lines" in stats:
        print(f"  expected.jsonl: {stats['expected_lines']} scenario line(s)")
    print("OK" if not problems else f"FAILED: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
