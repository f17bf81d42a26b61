#!/usr/bin/env bash
# The README demo as a test: `vigil run` over the bundled sample stream (rules/sample/, planted
# scenarios, see rules/sample/README.md) must produce what rules/sample/expected.jsonl says, for
# every rule the engine runs:
#   * each `alert` line: exactly one alert of that rule for that key, at that detection time
#     (after `suppress`);
#   * each `none` line: no alert of that rule for that key at all;
#   * and no other alert (the background traffic produces none).
# Lines of rules the engine does not run yet (the summary's "not run" rules: windowed
# aggregates, `when` rules, constructs the compiler rejects) are listed, not checked. With 5 s
# of out-of-orderness (the bound the sample needs) nothing may be late or dead-lettered. The same
# stream as msgpack (2.6 MB: many read chunks, messages cut at chunk ends) gives the same lines.
#   tests/sample_run_test.sh PATH/TO/vigil REPO_ROOT   (registered as sample_run_test)
set -uo pipefail

vigil=${1:?usage: sample_run_test.sh PATH/TO/vigil REPO_ROOT}
root=${2:?usage: sample_run_test.sh PATH/TO/vigil REPO_ROOT}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$vigil" run --rules "$root/rules" --input "$root/rules/sample/events.jsonl" \
  --out-of-orderness 5s --out "$tmp/alerts.jsonl" --late "$tmp/late.jsonl" \
  --dead-letter "$tmp/dead.jsonl" 2>"$tmp/err"
status=$?
if [ "$status" -ne 0 ]; then
  echo "FAIL: vigil run exited $status" >&2
  cat "$tmp/err" >&2
  exit 1
fi

# The sample as a msgpack stream (a tiny encoder: python3-msgpack is not required), piped in.
python3 "$root/tests/tools/jsonl_to_msgpack.py" "$root/rules/sample/events.jsonl" |
  "$vigil" run --rules "$root/rules" --input - --format msgpack --out-of-orderness 5s --quiet \
    >"$tmp/alerts_msgpack.jsonl"
if ! cmp -s "$tmp/alerts.jsonl" "$tmp/alerts_msgpack.jsonl"; then
  echo "FAIL: the sample as msgpack gives other alerts than as JSON lines" >&2
  diff "$tmp/alerts.jsonl" "$tmp/alerts_msgpack.jsonl" | head -20 >&2
  exit 1
fi

python3 - "$root/rules/sample/expected.jsonl" "$tmp/alerts.jsonl" "$tmp/err" \
  "$tmp/late.jsonl" "$tmp/dead.jsonl" <<'PY'
import collections, datetime, json, re, sys

expected_path, alerts_path, err_path, late_path, dead_path = sys.argv[1:6]

def millis(text):
    d = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return round(d.timestamp() * 1000)

summary = open(err_path, encoding="utf-8").read()
not_run = dict(re.findall(r"^  (\w+) +not run: (.*)$", summary, re.M))
expected = [json.loads(l) for l in open(expected_path, encoding="utf-8")]
alerts = [json.loads(l) for l in open(alerts_path, encoding="utf-8")]
by_rule_key = collections.defaultdict(list)
for a in alerts:
    by_rule_key[(a["rule"], a["key"])].append(a)

problems, checked, explained = [], 0, set()
for e in expected:
    rule, key = e["rule"], e["key"]
    if rule in not_run:
        continue
    checked += 1
    got = by_rule_key.get((rule, key), [])
    if e["expect"] == "alert":
        at = millis(e["at"])
        hits = [a for a in got if a["detection_ms"] == at]
        explained.update(id(a) for a in hits)
        if len(hits) != 1:
            problems.append("%s %s %s: expected one alert at %s, got %s" % (
                e["scenario"], rule, key, e["at"],
                [a["detection_time"] for a in got] or "none"))
    elif got:
        problems.append("%s %s %s: expected no alert, got %s" % (
            e["scenario"], rule, key, [a["detection_time"] for a in got]))
for a in alerts:
    if id(a) not in explained and not any(
            (e["rule"], e["key"]) == (a["rule"], a["key"]) for e in expected):
        problems.append("unexpected alert: %s %s at %s" % (a["rule"], a["key"], a["detection_time"]))
for path, what in ((late_path, "late events"), (dead_path, "dead letters")):
    n = sum(1 for _ in open(path, encoding="utf-8"))
    if n:
        problems.append("%d %s with 5 s of out-of-orderness" % (n, what))

skipped = collections.Counter(e["rule"] for e in expected if e["rule"] in not_run)
print("sample: %d expectation lines checked (%d alerts in the output); not run: %s" % (
    checked, len(alerts),
    ", ".join("%s (%d lines: %s)" % (r, skipped[r], not_run[r]) for r in sorted(skipped)) or "none"))
for p in problems:
    print("FAIL: " + p)
sys.exit(1 if problems or checked == 0 else 0)
PY
