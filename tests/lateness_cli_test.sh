#!/usr/bin/env bash
# Shell-level test of `vigil run --allowed-lateness` (docs/language.md "Revisions"): a late event
# within the lateness goes to the late output with reason "late_windowed" and judges the closed
# `when` window it falls in again (an alert line with "revision":1 and the window's match id); one
# beyond it has reason "late" and changes nothing; a bad duration is a usage error (exit 2).
#   tests/lateness_cli_test.sh PATH/TO/vigil     (registered in tests/CMakeLists.txt)
set -uo pipefail

vigil=${1:?usage: lateness_cli_test.sh PATH/TO/vigil}
# shellcheck source=tests/cli_testlib.sh
. "$(dirname "$0")/cli_testlib.sh"

cat >"$tmp/rules.vigil" <<'VIGIL'
event Login {
  user: string
  at:   timestamp
  time at
  key user
}

rule busy_minute {
  key user
  when count(Login over tumbling 1m) >= 1
  emit { user: key, logins: count(Login over tumbling 1m) }
}
VIGIL

# 2024-01-01T00:00:00Z = 1704067200000. In order (no out-of-orderness): after the event at 120 s
# the watermark is 119.999 s, so [0, 60 s) has closed (an alert) and so has [60 s, 120 s) (no
# event: not judged). An event at 60 s (> W − 1m) then is late within the lateness: [60 s, 120 s)
# is judged again as revision 1 and alerts. One at 59.999 s (= W − 1m) is beyond it.
cat >"$tmp/events.jsonl" <<'JSON'
{"type":"Login","user":"u1","at":1704067210000}
{"type":"Login","user":"u1","at":1704067320000}
{"type":"Login","user":"u1","at":1704067260000}
{"type":"Login","user":"u1","at":1704067259999}
JSON

expect_exit 0 run --rules "$tmp/rules.vigil" --input "$tmp/events.jsonl" --allowed-lateness 1m \
  --late "$tmp/late.jsonl" --out "$tmp/alerts.jsonl"
python3 - "$tmp/alerts.jsonl" "$tmp/late.jsonl" <<'PY' || fail "alerts or late lines differ"
import json, sys
alerts = [json.loads(l) for l in open(sys.argv[1])]
late = [json.loads(l) for l in open(sys.argv[2])]
T0 = 1704067200000
got = [(a["window"]["start_ms"] - T0, a.get("revision"), a.get("retracted"), a["fields"]["logins"]) for a in alerts]
want = [(0, None, None, 1), (60000, 1, None, 1), (120000, None, None, 1)]
assert got == want, got
assert [(l["reason"], l["seq"], l["time_ms"] - T0, l["watermark_ms"] - T0) for l in late] == \
    [("late_windowed", 2, 60000, 119999), ("late", 3, 59999, 119999)], late
PY
grep -q '2 late' "$tmp/err" || fail "summary: $(cat "$tmp/err")"
grep -q '1 late events within --allowed-lateness added to windows, 1 window alerts revised' "$tmp/err" ||
  fail "summary counters: $(cat "$tmp/err")"

# Without the option both are late and nothing is revised.
expect_exit 0 run --rules "$tmp/rules.vigil" --input "$tmp/events.jsonl" --late "$tmp/late0.jsonl" \
  --out "$tmp/alerts0.jsonl"
[ "$(wc -l <"$tmp/alerts0.jsonl")" -eq 2 ] || fail "without --allowed-lateness: $(cat "$tmp/alerts0.jsonl")"
grep -q revision "$tmp/alerts0.jsonl" && fail "a revision without --allowed-lateness"
[ "$(grep -c '"reason":"late"' "$tmp/late0.jsonl")" -eq 2 ] || fail "late lines: $(cat "$tmp/late0.jsonl")"

expect_exit 2 run --rules "$tmp/rules.vigil" --input "$tmp/events.jsonl" --allowed-lateness soon
grep -q -- '--allowed-lateness: invalid duration' "$tmp/err" || fail "bad duration: $(cat "$tmp/err")"
expect_exit 2 run --rules "$tmp/rules.vigil" --input "$tmp/events.jsonl" --allowed-lateness none

[ "$failures" -eq 0 ] || exit 1
echo "lateness_cli_test: ok"
