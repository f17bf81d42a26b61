#!/usr/bin/env bash
# Live rule reload under load (issue 5, "Live rule changes"): `vigil serve` reads a long stream
# (the sample 6 times over, each copy shifted in time) from a named pipe that a writer fills at a
# steady pace, while the rules change under it three times:
#   1. a rule file with an error is added and SIGHUP sent: refused, every error logged at
#      file:line:col with a caret, the old rules keep running;
#   2. the bad file removed, card_testing changed (its `within`) and brute_force_then_success
#      changed in its metadata only (version, description): picked up by the rules-path watcher
#      alone; card_testing starts empty, brute_force_then_success keeps its state;
#   3. impossible_travel removed and a new rule added, then POST /admin/reload (the watcher may
#      take the change first: either way the call answers 200 and the new rule runs).
# Every reload happens while events flow. Afterwards the alerts of every rule left unchanged
# (by name and fingerprint: the metadata-only change included) equal exactly those of `vigil run`
# with the final rules over the whole stream — nothing lost or doubled at the switches, partial
# matches and windows carried over — the new rule alerts, the removed one stops, and the
# metrics count one applied reload at least per valid change and the refused one.
#   tests/serve_reload_test.sh PATH/TO/vigil REPO_ROOT   (registered as serve_reload_test)
set -uo pipefail

vigil=${1:?usage: serve_reload_test.sh PATH/TO/vigil REPO_ROOT}
root=${2:?usage: serve_reload_test.sh PATH/TO/vigil REPO_ROOT}
source "$root/tests/cli_testlib.sh"

long="$tmp/long.jsonl"
python3 "$root/tests/tools/repeat_sample.py" "$root/rules/sample/events.jsonl" "$long" 6

# The rules the daemon starts with, and the final ones (for `vigil run`).
rules="$tmp/rules"
mkdir -p "$rules" "$tmp/final"
cp "$root"/rules/*.vigil "$rules/"
change_card_testing() { sed 's/^  within 10m$/  within 12m/' "$root/rules/card_testing.vigil" >"$1/card_testing.vigil"; }
change_brute_force_metadata() {
  sed -e 's/^  version 3$/  version 4/' -e 's/^  description "Five or more/  description "5+/' \
    "$root/rules/brute_force_then_success.vigil" >"$1/brute_force_then_success.vigil"
}
add_new_rule() {
  sed 's/^rule brute_force_then_success {/rule brute_force_copy {/' \
    "$root/rules/brute_force_then_success.vigil" >"$1/brute_force_copy.vigil"
}
cp "$root"/rules/*.vigil "$tmp/final/"
change_card_testing "$tmp/final"
change_brute_force_metadata "$tmp/final"
rm "$tmp/final/impossible_travel.vigil"
add_new_rule "$tmp/final"
grep -q "within 12m" "$tmp/final/card_testing.vigil" || fail "the card_testing change did not apply"
grep -q "version 4" "$tmp/final/brute_force_then_success.vigil" || fail "the metadata change did not apply"

"$vigil" run --rules "$tmp/final" --input "$long" --out-of-orderness 5s --quiet \
  --out "$tmp/expected.jsonl" --late /dev/null --dead-letter /dev/null || fail "vigil run (final rules) exited $?"
"$vigil" run --rules "$root/rules" --input "$long" --out-of-orderness 5s --quiet \
  --out "$tmp/expected_first.jsonl" --late /dev/null --dead-letter /dev/null || fail "vigil run (first rules) exited $?"

mkdir -p "$tmp/d"
cat >"$tmp/d/vigil.yaml" <<EOF
rules: $rules
shards: 2
watermark:
  out_of_orderness: 5s
checkpoints:
  directory: $tmp/d/checkpoints
  interval: 200ms
metrics:
  listen: 127.0.0.1:0
  admin_token: {env: VIGIL_TEST_TOKEN}
sources:
  - name: events
    type: stdin
sinks:
  - name: alerts
    type: file
    path: $tmp/d/alerts.jsonl
EOF
mkfifo "$tmp/d/in"
VIGIL_TEST_TOKEN=t0ken "$vigil" serve --config "$tmp/d/vigil.yaml" <"$tmp/d/in" 2>"$tmp/d/err" &
pid=$!
# The writer: three parts of the stream, each at ~20,000 lines/s; before part k+1 it waits for
# the file go<k> (the test's step k is done). So each reload happens while part k flows.
python3 - "$long" "$tmp/d/in" "$tmp/d" <<'EOF' &
import os, sys, time
lines = open(sys.argv[1]).readlines()
out = open(sys.argv[2], "w")
third = len(lines) // 3
for part in range(3):
    chunk = lines[part * third: (part + 1) * third if part < 2 else len(lines)]
    for at in range(0, len(chunk), 500):
        out.write("".join(chunk[at:at + 500]))
        out.flush()
        time.sleep(0.025)
    if part < 2:
        while not os.path.exists(os.path.join(sys.argv[3], f"go{part + 1}")):
            time.sleep(0.05)
out.close()
EOF
writer=$!

# wait_log TEXT [N]: until the daemon's log has TEXT (N times), at most 60 s.
wait_log() {
  local want=${2:-1}
  for _ in $(seq 1 600); do
    [ "$(grep -c -- "$1" "$tmp/d/err" 2>/dev/null)" -ge "$want" ] 2>/dev/null && return 0
    sleep 0.1
  done
  fail "the log never showed '$1' ($want times)"
  sed 's/^/  log: /' "$tmp/d/err" | tail -20 >&2
  return 1
}
wait_log "metrics on"
port=$(sed -n 's|.*metrics on http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' "$tmp/d/err")
sleep 0.5

# 1. A rule with errors, SIGHUP: refused with its diagnostics; the old rules keep running.
printf 'import "schema.vigil"\n\nrule broken {\n  key card_id\n  pattern a: Chrage\n  emit { card: a.card_id }\n}\n' \
  >"$rules/broken.vigil"
kill -HUP "$pid"
wait_log "the new rules were refused"
grep -q "broken.vigil:5:14: error" "$tmp/d/err" || fail "the refused reload does not name broken.vigil:5:14"
grep -q "Charge" "$tmp/d/err" || fail "the refused reload does not suggest Charge"
grep -qxF '             ^~~~~~' "$tmp/d/err" || fail "the refused reload shows no caret under 'Chrage'"
touch "$tmp/d/go1"

# 2. The bad file gone, two rules edited: the watcher reloads on its own.
sleep 0.5
rm "$rules/broken.vigil"
change_card_testing "$rules"
change_brute_force_metadata "$rules"
wait_log "changed, starting empty: card_testing"
sed -n 's/.*changed, starting empty: \([^;]*\).*/\1/p' "$tmp/d/err" | grep -q "brute_force_then_success" &&
  fail "a metadata-only change dropped brute_force_then_success's state"
touch "$tmp/d/go2"

# 3. A rule removed and one added, and the admin call.
sleep 0.5
rm "$rules/impossible_travel.vigil"
add_new_rule "$rules"
python3 - "$port" <<'EOF' || fail "POST /admin/reload"
import sys, time, urllib.request, urllib.error
port = sys.argv[1]
def call(path, method="GET", token=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    if token: req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=150) as r: return r.status, r.read().decode()
    except urllib.error.HTTPError as e: return e.code, e.read().decode()
status, text = call("/admin/reload", "POST", "t0ken")
assert status == 200, (status, text)
assert "reloaded" in text, text
assert call("/admin/reload", "POST", "wrong")[0] == 401
metrics = call("/metrics")[1]
def value(name):
    for line in metrics.splitlines():
        if line.startswith(name + " "): return float(line.split()[-1])
    return 0
assert value('vigil_rule_reloads_total{result="rejected"}') >= 1, metrics
assert value('vigil_rule_reloads_total{result="applied"}') >= 2, metrics
EOF
wait_log "new: brute_force_copy"
grep -q "removed, state dropped: impossible_travel" "$tmp/d/err" || fail "the removed rule is not reported"

wait "$writer" || fail "the writer exited $?"
wait "$pid" || fail "vigil serve exited $?"
grep -q "input done" "$tmp/d/err" || fail "the daemon did not read its input to the end"

python3 - "$tmp/expected.jsonl" "$tmp/expected_first.jsonl" "$tmp/d/alerts.jsonl" <<'EOF' || fail "alerts after the reloads"
import collections, json, sys
def load(path):
    return [l for l in open(path) if l.strip()]
expected, first, got = load(sys.argv[1]), load(sys.argv[2]), load(sys.argv[3])
rule = lambda l: json.loads(l)["rule"]
def same(l):   # the alert without the rule's version: metadata, which a reload may change
    a = json.loads(l)
    a.pop("version")
    return json.dumps(a, sort_keys=True)
changed = {"card_testing", "impossible_travel", "brute_force_copy"}
unchanged = {rule(l) for l in expected} - changed
assert "brute_force_then_success" in unchanged
want = sorted(same(l) for l in expected if rule(l) in unchanged)
have = sorted(same(l) for l in got if rule(l) in unchanged)
if have != want:
    missing = collections.Counter(want) - collections.Counter(have)
    extra = collections.Counter(have) - collections.Counter(want)
    sys.exit(f"unchanged rules: {len(have)} alerts, {len(want)} expected; missing {list(missing)[:3]}; extra {list(extra)[:3]}")
count = collections.Counter(rule(l) for l in got)
full = collections.Counter(rule(l) for l in first)
assert count["brute_force_copy"] > 0, "the new rule never alerted"
assert count["impossible_travel"] < full["impossible_travel"], "the removed rule kept alerting"
assert count["card_testing"] > 0, "the changed rule never alerted"
print(f"{len(want)} alerts of {len(unchanged)} unchanged rules equal; per rule {dict(count)}")
EOF

# --- a restart under changed rules: stopped (SIGTERM) mid-stream with the first rules, started
# again with the final ones; the checkpoint restores rule by rule -------------------------------
# (A longer stream, 20 copies: the stop comes after the first checkpoint, 100 ms in, well before
# the end.)
mkdir -p "$tmp/r"
longer="$tmp/longer.jsonl"
python3 "$root/tests/tools/repeat_sample.py" "$root/rules/sample/events.jsonl" "$longer" 20
"$vigil" run --rules "$tmp/final" --input "$longer" --out-of-orderness 5s --quiet \
  --out "$tmp/r/expected.jsonl" --late /dev/null --dead-letter /dev/null || fail "vigil run (longer) exited $?"
sed -e "s|^rules: .*|rules: $root/rules|" -e "s|$tmp/d/|$tmp/r/|g" -e 's|^  interval: 200ms|  interval: 100ms|' \
  -e 's|^  listen: 127.0.0.1:0|  listen: ""|' -e '/admin_token/d' \
  -e 's|type: stdin|type: file\n    path: '"$longer"'|' "$tmp/d/vigil.yaml" >"$tmp/r/vigil.yaml"
"$vigil" serve --config "$tmp/r/vigil.yaml" 2>"$tmp/r/err1" &
pid=$!
for _ in $(seq 1 500); do
  compgen -G "$tmp/r/checkpoints/checkpoint-*" >/dev/null && break
  sleep 0.01
done
kill -TERM "$pid"
wait "$pid" || fail "serve exited $? on SIGTERM"
grep -q "input done" "$tmp/r/err1" && fail "the first run read all its input before the stop: nothing to restore"
sed -i "s|^rules: .*|rules: $tmp/final|" "$tmp/r/vigil.yaml"
if ! "$vigil" serve --config "$tmp/r/vigil.yaml" 2>"$tmp/r/err2"; then
  fail "restart under changed rules exited $?"
  tail -5 "$tmp/r/err2" >&2
fi
grep -q "the rules changed since the checkpoint: state kept for 9 rule(s); dropped for changed rule(s) card_testing (they start empty); dropped for removed rule(s) impossible_travel; new rule(s) brute_force_copy start empty" \
  "$tmp/r/err2" || fail "the restart does not report the changed rules"
python3 - "$tmp/r/expected.jsonl" "$tmp/r/alerts.jsonl" <<'EOF' || fail "alerts after a restart under changed rules"
import json, sys
rule = lambda l: json.loads(l)["rule"]
def same(l):
    a = json.loads(l)
    a.pop("version")
    return json.dumps(a, sort_keys=True)
unchanged = {rule(l) for l in open(sys.argv[1])} - {"card_testing", "impossible_travel", "brute_force_copy"}
want = sorted(same(l) for l in open(sys.argv[1]) if rule(l) in unchanged)
have = sorted(same(l) for l in open(sys.argv[2]) if rule(l) in unchanged)
if have != want:
    sys.exit(f"unchanged rules: {len(have)} alerts, {len(want)} expected")
print(f"restart under changed rules: {len(want)} alerts of unchanged rules equal")
EOF

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "serve_reload_test: all passed"
