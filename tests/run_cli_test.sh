#!/usr/bin/env bash
# Shell-level test of `vigil run` and `vigil test` on small hand-written inputs:
#   * exactly the expected alert lines, in detection order, with the match ids of
#     docs/matching.md §8 recomputed here in Python (FNV-1a 64), kinds match and timeout;
#   * an undecodable line and an event with a missing field go to the dead letters with their
#     reasons (line numbers) and processing goes on;
#   * with --out-of-orderness 0 an out-of-order event goes to the late output (with its seq and
#     the watermark); with 1m it is matched and its alert comes out first (detection order);
#   * the same events as a msgpack stream (bytes written by a tiny encoder below: python3-msgpack
#     is not required) give the same alerts; a bad message is dead-lettered, a truncated tail too;
#   * stdin input, --out FILE, the summary counts, exit codes;
#   * --max-buffered-events-per-key: forced watermarks counted; with --on-key-buffer-limit reject
#     the rejected events go to the dead letters with their seq and reason;
#   * --distinct-exact-limit: an alert whose distinct came from the sketch says "approximate";
#   * punctuation: a `$watermark` line (and msgpack message) moves the watermark, so an absence
#     alert fires that the same input without it does not give; a bad one is a dead letter;
#   * rules with errors: exit 1 and file:line:col; a rule the compiler cannot run yet: a W502
#     warning at its location and the other rules still run;
#   * `vigil test`: PASS / FAIL lines, the failing expectation's file:line:col, exit codes.
#   tests/run_cli_test.sh PATH/TO/vigil     (registered in tests/CMakeLists.txt as run_cli_test)
set -uo pipefail

vigil=${1:?usage: run_cli_test.sh PATH/TO/vigil}
# shellcheck source=tests/cli_testlib.sh
. "$(dirname "$0")/cli_testlib.sh"

mkdir -p "$tmp/rules"
cat >"$tmp/rules/card.vigil" <<'VIGIL'
event Charge {
  card_id:  string
  amount:   float
  merchant: string
  at:       timestamp
  time at
  key card_id
}

rule small_then_big {
  severity high
  version 2
  within 10m
  pattern
    s: Charge where amount < 5
    -> b: Charge where amount > 500
  emit { card: b.card_id, total: s.amount + b.amount, shop: b.merchant }
  message "Card {card}: {total} at {shop}"
  on timeout emit { card: s.card_id, small: s.amount }
}
VIGIL

# Seq (arrival order of decoded events): 0 c1 small, 1 c2 small, 2 c1 big, 3 c2 big (19.5 s
# behind the latest event: late when no out-of-orderness is allowed), 4 c4 small.
cat >"$tmp/events.jsonl" <<'JSONL'
{"type":"Charge","card_id":"c1","amount":1.5,"merchant":"m1","at":"2024-03-01T00:00:00Z"}
{"type":"Charge","card_id":"c2","amount":2,"merchant":"m1","at":"2024-03-01T00:00:30Z"}
{"type":"Charge", this line is not JSON}
{"type":"Charge","card_id":"c1","amount":900,"merchant":"shop \"two\"","at":"2024-03-01T00:01:00Z"}

{"type":"Charge","card_id":"c3","merchant":"m2","at":"2024-03-01T00:01:10Z"}
{"type":"Charge","card_id":"c2","amount":800,"merchant":"m3","at":"2024-03-01T00:00:40.5Z"}
{"type":"Charge","card_id":"c4","amount":1,"merchant":"m3","at":"2024-03-01T00:02:00Z"}
JSONL

# check.py MODE ALERTS [LATE DEAD]: the exact alerts (parsed JSON, in order) for MODE strict
# (--out-of-orderness 0) or relaxed (1m); the late and dead-letter lines when given.
cat >"$tmp/check.py" <<'PY'
import json, sys

T0 = 1709251200000  # 2024-03-01T00:00:00Z

def match_id(head, events):  # matching.md §8
    h = 0xcbf29ce484222325
    for b in head.encode():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    for _, t, s in events:
        for word in (t, s):
            p = (h ^ (word & 0xFFFFFFFFFFFFFFFF)) * 0x9E3779B97F4A7C15
            h = (p >> 64) ^ (p & 0xFFFFFFFFFFFFFFFF)
    return "%016x" % h

def iso(ms):
    import datetime
    d = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)

def alert(kind, card, detect, events, fields, message=None):
    parts = ["small_then_big", '"%s"' % card, "m" if kind == "match" else "t%d" % detect]
    a = {"rule": "small_then_big", "version": 2, "severity": "high", "kind": kind, "key": card,
         "detection_time": iso(detect), "detection_ms": detect,
         "match_id": match_id("\x1f".join(parts), events)}
    if message is not None:
        a["message"] = message
    a["fields"] = fields
    a["events"] = [{"var": v, "time_ms": t, "seq": s} for v, t, s in events]
    return a

mode, alerts_path = sys.argv[1], sys.argv[2]
c1 = alert("match", "c1", T0 + 60000, [("s", T0, 0), ("b", T0 + 60000, 2)],
           {"card": "c1", "total": 901.5, "shop": 'shop "two"'}, 'Card c1: 901.5 at shop "two"')
c4 = alert("timeout", "c4", T0 + 120000 + 600000, [("s", T0 + 120000, 4)],
           {"card": "c4", "small": 1.0})
if mode == "strict":
    c2 = alert("timeout", "c2", T0 + 30000 + 600000, [("s", T0 + 30000, 1)],
               {"card": "c2", "small": 2.0})
    want = [c1, c2, c4]
else:
    # The out-of-order c2 is matched, and its alert comes first: detection order is event time.
    c2 = alert("match", "c2", T0 + 40500, [("s", T0 + 30000, 1), ("b", T0 + 40500, 3)],
               {"card": "c2", "total": 802.0, "shop": "m3"}, "Card c2: 802 at m3")
    want = [c2, c1, c4]
lines = open(alerts_path, encoding="utf-8").read().splitlines()
got = [json.loads(l) for l in lines]
ok = True
if got != want:
    ok = False
    print("alerts differ:\n  got:\n    " + "\n    ".join(lines) + "\n  want:\n    " +
          "\n    ".join(json.dumps(w, separators=(",", ":")) for w in want))
# Key order is part of the format.
if got and list(got[0].keys()) != list(want[0].keys()):
    ok = False
    print("key order", list(got[0].keys()))
if len(sys.argv) > 3:
    late = [json.loads(l) for l in open(sys.argv[3], encoding="utf-8").read().splitlines()]
    want_late = [] if mode != "strict" else [{
        "reason": "late", "seq": 3, "time": iso(T0 + 40500), "time_ms": T0 + 40500,
        "watermark_ms": T0 + 60000 - 1,
        "event": {"type": "Charge", "card_id": "c2", "amount": 800, "merchant": "m3",
                  "at": iso(T0 + 40500)}}]
    if late != want_late:
        ok = False
        print("late differs:", late, "want", want_late)
if len(sys.argv) > 4:
    dead = [json.loads(l) for l in open(sys.argv[4], encoding="utf-8").read().splitlines()]
    if [(d["line"], d["code"], d["raw"]) for d in dead] != [
            (3, "malformed", '{"type":"Charge", this line is not JSON}'),
            (6, "missing_field", '{"type":"Charge","card_id":"c3","merchant":"m2","at":"2024-03-01T00:01:10Z"}')]:
        ok = False
        print("dead letters differ:", dead)
    elif not dead[0]["reason"].startswith("invalid JSON") or \
            dead[1]["reason"] != "Charge: missing field 'amount'":
        ok = False
        print("dead-letter reasons:", [d["reason"] for d in dead])
sys.exit(0 if ok else 1)
PY

# --- JSON lines, no out-of-orderness: c2's big charge is late.
expect_exit 0 run --rules "$tmp/rules" --input "$tmp/events.jsonl" --out-of-orderness 0 \
  --late "$tmp/late.jsonl" --dead-letter "$tmp/dead.jsonl"
python3 "$tmp/check.py" strict "$tmp/out" "$tmp/late.jsonl" "$tmp/dead.jsonl" ||
  fail "run (json, strict): alerts, late or dead letters differ"
grep -q '7 events read, 5 decoded, 0 watermarks, 1 late, 2 dead letters; 3 alerts' "$tmp/err" ||
  fail "summary: $(cat "$tmp/err")"
grep -Eq 'small_then_big +3 alerts' "$tmp/err" || fail "per-rule summary: $(cat "$tmp/err")"

# --- 1m of out-of-orderness: nothing is late; stdin input; alerts to a file; dead letters on stderr.
expect_exit 0 run --rules "$tmp/rules/card.vigil" --input - --out-of-orderness 1m \
  --out "$tmp/alerts.jsonl" --late "$tmp/late2.jsonl" <"$tmp/events.jsonl"
[ -s "$tmp/out" ] && fail "alerts on stdout with --out: $(cat "$tmp/out")"
python3 "$tmp/check.py" relaxed "$tmp/alerts.jsonl" "$tmp/late2.jsonl" ||
  fail "run (json, 1m, stdin): alerts or late differ"
[ "$(grep -c '"reason":' "$tmp/err")" -eq 2 ] ||
  fail "dead letters not on stderr by default: $(cat "$tmp/err")"

# --- The late line goes to stderr by default, never nowhere.
expect_exit 0 run --rules "$tmp/rules" --input "$tmp/events.jsonl" --quiet --dead-letter "$tmp/d.jsonl"
grep -q '"reason":"late","seq":3' "$tmp/err" || fail "late event not on stderr: $(cat "$tmp/err")"
grep -q 'events read' "$tmp/err" && fail "--quiet printed the summary"

# --- At most one event waiting per key (1m of out-of-orderness). force-watermark (the default):
# c1's big charge and c2's out-of-order one each force the watermark up to their key's small
# charge; nothing becomes late and the alerts are those of the relaxed run. reject: both are not
# taken and go to the dead letters (seq, reason "key buffer full") among the undecodable lines.
expect_exit 0 run --rules "$tmp/rules" --input "$tmp/events.jsonl" --out-of-orderness 1m \
  --max-buffered-events-per-key 1 --late "$tmp/late4.jsonl" --dead-letter "$tmp/dead4.jsonl"
python3 "$tmp/check.py" relaxed "$tmp/out" "$tmp/late4.jsonl" "$tmp/dead4.jsonl" ||
  fail "run --max-buffered-events-per-key 1: alerts, late or dead letters differ"
grep -q ', 2 watermark advances forced by a key.s buffer' "$tmp/err" ||
  fail "summary (force-watermark): $(cat "$tmp/err")"
expect_exit 0 run --rules "$tmp/rules" --input "$tmp/events.jsonl" --out-of-orderness 1m \
  --max-buffered-events-per-key 1 --on-key-buffer-limit reject --late "$tmp/late5.jsonl" \
  --dead-letter "$tmp/dead5.jsonl"
[ -s "$tmp/late5.jsonl" ] && fail "late events with reject: $(cat "$tmp/late5.jsonl")"
python3 - "$tmp/dead5.jsonl" <<'PY' || fail "rejected events in the dead letters: $(cat "$tmp/dead5.jsonl")"
import json, sys
dead = [json.loads(l) for l in open(sys.argv[1])]
assert [d.get("line") for d in dead] == [3, None, 6, None], dead   # in input order
T0 = 1709251200000
assert [(d["reason"], d["seq"], d["time_ms"], d["watermark_ms"], d["event"]["card_id"])
        for d in dead if "line" not in d] == [
    ("key buffer full", 2, T0 + 60000, T0 + 30000 - 60000 - 1, "c1"),
    ("key buffer full", 3, T0 + 40500, T0 + 60000 - 60000 - 1, "c2")], dead
PY
grep -q ', 2 events rejected (key buffer full; in the dead letters)' "$tmp/err" ||
  fail "summary (reject): $(cat "$tmp/err")"
expect_exit 2 run --rules "$tmp/rules" --input "$tmp/events.jsonl" --on-key-buffer-limit drop

# --- msgpack: the same events (a tiny encoder; python3-msgpack is not needed), a map with a
# missing field in the middle, and a truncated message at the end.
python3 - "$tmp/events.jsonl" "$tmp/events.msgpack" <<'PY'
import json, struct, sys

def pack(v):
    if isinstance(v, bool):
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, int):
        assert 0 <= v < 65536
        return bytes([v]) if v < 128 else b"\xcd" + struct.pack(">H", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        return (bytes([0xa0 | len(b)]) if len(b) < 32 else b"\xd9" + bytes([len(b)])) + b
    if isinstance(v, dict):
        assert len(v) < 16
        return bytes([0x80 | len(v)]) + b"".join(pack(k) + pack(x) for k, x in v.items())
    raise TypeError(v)

out = b""
for line in open(sys.argv[1]):
    try:
        out += pack(json.loads(line))
    except ValueError:
        pass   # the blank and the malformed line
out += pack({"type": "Charge", "card_id": "c9"})[:-1]  # truncated: the input ends inside it
open(sys.argv[2], "wb").write(out)
PY
expect_exit 0 run --rules "$tmp/rules" --input "$tmp/events.msgpack" --format msgpack \
  --out-of-orderness 0s --late "$tmp/late3.jsonl" --dead-letter "$tmp/dead3.jsonl"
python3 "$tmp/check.py" strict "$tmp/out" "$tmp/late3.jsonl" ||
  fail "run (msgpack): alerts or late differ"
python3 - "$tmp/dead3.jsonl" <<'PY' || fail "msgpack dead letters: $(cat "$tmp/dead3.jsonl")"
import base64, json, sys
dead = [json.loads(l) for l in open(sys.argv[1])]
assert [d["code"] for d in dead] == ["missing_field", "malformed"], dead
assert dead[0]["reason"] == "Charge: missing field 'amount'", dead[0]
assert b"c3" in base64.b64decode(dead[0]["raw_base64"]), dead[0]
assert dead[1]["reason"].startswith("invalid msgpack: truncated message"), dead[1]
assert dead[0]["offset"] < dead[1]["offset"], dead
PY
grep -q '7 events read, 5 decoded, 0 watermarks, 1 late, 2 dead letters' "$tmp/err" ||
  fail "msgpack summary: $(cat "$tmp/err")"

# --- Punctuation. d1's Open at 00:00 starts a 10-minute absence; the punctuation at 00:10 passes
# its deadline, so the alert fires, and the Close at 00:05 that arrives after it is late. Without
# the punctuation lines the Close is in time and kills the absence: no alert. A punctuation below
# the watermark changes nothing; one without its field is a dead letter.
mkdir -p "$tmp/absence"
cat >"$tmp/absence/absence.vigil" <<'VIGIL'
event Open { id: string  at: timestamp  time at  key id }
event Close { id: string  at: timestamp  time at  key id }
rule never_closed {
  key id
  pattern o: Open -> no c: Close within 10m
  emit { id: o.id }
}
VIGIL
cat >"$tmp/punct.jsonl" <<'JSONL'
{"type":"Open","id":"d1","at":"2024-03-01T00:00:00Z"}
{"type":"$watermark","watermark":"2024-03-01T00:10:00Z","source":"ignored"}
{"type":"Close","id":"d1","at":"2024-03-01T00:05:00Z"}
{"type":"$watermark","watermark":1709251260000}
{"type":"$watermark","at":"2024-03-01T00:20:00Z"}
JSONL
cat >"$tmp/punct_check.py" <<'PY'
import json, sys
alerts = [json.loads(l) for l in open(sys.argv[1])]
late = [json.loads(l) for l in open(sys.argv[2])]
dead = [json.loads(l) for l in open(sys.argv[3])]
assert [(a["rule"], a["key"], a["detection_ms"]) for a in alerts] == \
    [("never_closed", "d1", 1709251200000 + 600000)], alerts
assert [(l["seq"], l["event"]["type"], l["watermark_ms"]) for l in late] == \
    [(1, "Close", 1709251200000 + 600000)], late
where = "line" if len(sys.argv) < 5 else "offset"
assert [(d["reason"], d["code"]) for d in dead] == \
    [("$watermark: missing field 'watermark'", "missing_field")], dead
assert where in dead[0], dead
PY
for ooo in 0 none; do
  expect_exit 0 run --rules "$tmp/absence" --input "$tmp/punct.jsonl" --out-of-orderness "$ooo" \
    --late "$tmp/plate.jsonl" --dead-letter "$tmp/pdead.jsonl"
  python3 "$tmp/punct_check.py" "$tmp/out" "$tmp/plate.jsonl" "$tmp/pdead.jsonl" ||
    fail "punctuation (json, --out-of-orderness $ooo): alerts, late or dead letters differ"
  grep -q '5 events read, 2 decoded, 2 watermarks, 1 late, 1 dead letters; 1 alerts' "$tmp/err" ||
    fail "punctuation summary (--out-of-orderness $ooo): $(cat "$tmp/err")"
done
grep -v '\$watermark' "$tmp/punct.jsonl" >"$tmp/nopunct.jsonl"
expect_exit 0 run --rules "$tmp/absence" --input "$tmp/nopunct.jsonl" --late "$tmp/plate.jsonl"
[ -s "$tmp/out" ] && fail "absence alert without punctuation: $(cat "$tmp/out")"
[ -s "$tmp/plate.jsonl" ] && fail "late event without punctuation: $(cat "$tmp/plate.jsonl")"
grep -q '2 events read, 2 decoded, 0 watermarks, 0 late, 0 dead letters; 0 alerts' "$tmp/err" ||
  fail "summary without punctuation: $(cat "$tmp/err")"
# The same as msgpack (integer times as int64; a tiny encoder again).
python3 - "$tmp/punct.jsonl" "$tmp/punct.msgpack" <<'PY'
import json, struct, sys
def pack(v):
    if isinstance(v, int):
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, str):
        b = v.encode()
        return (bytes([0xa0 | len(b)]) if len(b) < 32 else b"\xd9" + bytes([len(b)])) + b
    if isinstance(v, dict):
        return bytes([0x80 | len(v)]) + b"".join(pack(k) + pack(x) for k, x in v.items())
    raise TypeError(v)
open(sys.argv[2], "wb").write(b"".join(pack(json.loads(l)) for l in open(sys.argv[1])))
PY
expect_exit 0 run --rules "$tmp/absence" --input "$tmp/punct.msgpack" --format msgpack \
  --late "$tmp/plate.jsonl" --dead-letter "$tmp/pdead.jsonl"
python3 "$tmp/punct_check.py" "$tmp/out" "$tmp/plate.jsonl" "$tmp/pdead.jsonl" msgpack ||
  fail "punctuation (msgpack): alerts, late or dead letters differ"
grep -q '5 events read, 2 decoded, 2 watermarks, 1 late, 1 dead letters; 1 alerts' "$tmp/err" ||
  fail "punctuation summary (msgpack): $(cat "$tmp/err")"

# --- Rules with an error: exit 1, file:line:col on stderr, nothing on stdout.
sed 's/where amount < 5/where ammount < 5/' "$tmp/rules/card.vigil" >"$tmp/bad.vigil"
bad_line=$(grep -n 'ammount' "$tmp/bad.vigil" | cut -d: -f1)
expect_exit 1 run --rules "$tmp/bad.vigil" --input "$tmp/events.jsonl"
grep -q "^$tmp/bad.vigil:$bad_line:[0-9]*: error E201: " "$tmp/err" ||
  fail "no file:line:col E201 for the bad rule: $(cat "$tmp/err")"
[ -s "$tmp/out" ] && fail "alerts written despite rule errors"

# --- A rule the compiler cannot run yet (a quantified group): W502 at its location, the others run.
mkdir -p "$tmp/mixed"
cp "$tmp/rules/card.vigil" "$tmp/mixed/"
cat >"$tmp/mixed/both.vigil" <<'VIGIL'
import "card.vigil"
rule both_orders {
  within 10m
  pattern
    (a: Charge where amount < 5 -> b: Charge where amount > 500){1,2}
  emit { card: first(a).card_id }
}
VIGIL
all_line=$(grep -n '(a: Charge' "$tmp/mixed/both.vigil" | cut -d: -f1)
expect_exit 0 run --rules "$tmp/mixed" --input "$tmp/events.jsonl" --out-of-orderness 0 \
  --late /dev/null --dead-letter /dev/null
grep -q "^$tmp/mixed/both.vigil:$all_line:[0-9]*: warning W502: rule 'both_orders' is not run" "$tmp/err" ||
  fail "no W502 at the quantified group of the unsupported rule: $(cat "$tmp/err")"
python3 "$tmp/check.py" strict "$tmp/out" || fail "the supported rule did not run next to the unsupported one"
grep -Eq 'both_orders +not run: ' "$tmp/err" || fail "summary does not say both_orders is not run"

# --- Usage errors: exit 2.
expect_exit 2 run --rules "$tmp/rules"
expect_exit 2 run --rules "$tmp/rules" --input "$tmp/events.jsonl" --out-of-orderness 5x
expect_exit 1 run --rules "$tmp/rules" --input "$tmp/missing.jsonl"

# --- --distinct-exact-limit: past it a key's distinct count is a HyperLogLog, and the alert says
# so (docs/language.md "Aggregates"); with the default limit (10,000) the same count is exact.
mkdir -p "$tmp/distinct"
cat >"$tmp/distinct/logins.vigil" <<'VIGIL'
event Login { user: string  ip: string  at: timestamp  time at  key ip }
rule spray {
  key ip
  when distinct(Login.user over tumbling 1m) > 5
  emit { users: distinct(Login.user over tumbling 1m), logins: count(Login over tumbling 1m) }
}
VIGIL
python3 - "$tmp/distinct/logins.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for j in range(8):
        f.write(json.dumps({"type": "Login", "user": f"u{j}", "ip": "10.0.0.1",
                            "at": 1709251200000 + 1000 * j}) + "\n")
PY
expect_exit 0 run --rules "$tmp/distinct/logins.vigil" --input "$tmp/distinct/logins.jsonl" --distinct-exact-limit 3
grep -q '"approximate":{"distinct_rse":0.01625,"fields":\["users"\]}' "$tmp/out" ||
  fail "--distinct-exact-limit 3: no approximate mark: $(cat "$tmp/out")"
grep -q '"users":8,"logins":8' "$tmp/out" || fail "--distinct-exact-limit 3: 8 users (estimated) expected: $(cat "$tmp/out")"
grep -q ", 1 keys' distinct counts turned approximate" "$tmp/err" || fail "summary (sketches): $(cat "$tmp/err")"
expect_exit 0 run --rules "$tmp/distinct/logins.vigil" --input "$tmp/distinct/logins.jsonl"
grep -q 'approximate' "$tmp/out" && fail "default limit: marked approximate: $(cat "$tmp/out")"
grep -q '"users":8,"logins":8' "$tmp/out" || fail "default limit: $(cat "$tmp/out")"

# --- vigil test: a passing test file, then the same with a wrong expectation.
cat >>"$tmp/rules/card.vigil" <<'VIGIL'
rule pairs {
  key card_id
  within 10m
  pattern s: Charge where amount < 5 -> b: Charge where amount > 500
  emit { card: b.card_id, total: s.amount + b.amount }
  test "small then big" {
    given {
      0s Charge { card_id: "c1", amount: 1.5, merchant: "m" }
      1m Charge { card_id: "c1", amount: 900.0, merchant: "m" }
    }
    expect alert { card: "c1", total: 901.5 }
  }
  test "big alone" {
    given { 0s Charge { card_id: "c1", amount: 900.0, merchant: "m" } }
    expect none
  }
}
VIGIL
expect_exit 0 test "$tmp/rules"
grep -q '^PASS .*card.vigil:[0-9]*:[0-9]*: pairs: "small then big"$' "$tmp/out" ||
  fail "no PASS line: $(cat "$tmp/out")"
grep -q '^vigil test: 2 passed, 0 failed, 0 skipped' "$tmp/out" || fail "test summary: $(cat "$tmp/out")"
sed -i 's/expect alert { card: "c1", total: 901.5 }/expect alert { card: "c1", total: 902.5 }/' "$tmp/rules/card.vigil"
want_line=$(grep -n 'total: 902.5' "$tmp/rules/card.vigil" | cut -d: -f1)
expect_exit 1 test "$tmp/rules/card.vigil"
grep -q '^FAIL .*: pairs: "small then big"$' "$tmp/out" || fail "no FAIL line: $(cat "$tmp/out")"
grep -q "^  $tmp/rules/card.vigil:$want_line:5: alert 1: total is 901.5, expected 902.5$" "$tmp/out" ||
  fail "no file:line:col of the failing expectation: $(cat "$tmp/out")"
grep -q '^    got       match at +1m { card: "c1", total: 901.5 }$' "$tmp/out" ||
  fail "no 'got' line in the diff: $(cat "$tmp/out")"
expect_exit 1 test "$tmp/rules" --rule nosuchrule

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "run_cli_test: all checks passed"
