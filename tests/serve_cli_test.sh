#!/usr/bin/env bash
# `vigil serve` with file sources and sinks (no broker): the daemon against `vigil run`.
#   * The bundled sample stream through `vigil serve` with 1 and 2 shards gives exactly the alert
#     lines of `vigil run` on the same file (same match ids; compared sorted, as shards interleave).
#   * The same as a msgpack stream, from a file and from stdin.
#   * Dead letters and late events go to their sinks, with their reasons; with allowed lateness,
#     one late line per event (as vigil run) however many rules read it, and the same revisions.
#   * Crash test: a longer stream (the sample 8 times over, each copy shifted in time), the daemon
#     killed with SIGKILL at 20 random moments and restarted each time from its checkpoints: the
#     alerts file holds every alert of an uninterrupted run (none lost), nothing else (duplicates
#     re-delivered after a restart carry the same match id and line), and no partial line.
#   * Two file sources (the long stream dealt to both): vigil run's alerts, match ids aside, nothing
#     late; killed -9 at 8 moments, the lines of the uninterrupted two-source run.
#   * Holds that stay: restored without one of its sources and with a Kafka source that gets no
#     assignment, the daemon says after 30 s, once, that the Kafka source holds the watermark back
#     (and not the removed source).
#   * SIGTERM: a final checkpoint; the restart finishes the input with nothing lost.
#   * --check-config: "config OK" and the effective config; a bad config: file:line:col errors.
#   tests/serve_cli_test.sh PATH/TO/vigil REPO_ROOT   (registered as serve_cli_test)
set -uo pipefail

vigil=${1:?usage: serve_cli_test.sh PATH/TO/vigil REPO_ROOT}
root=${2:?usage: serve_cli_test.sh PATH/TO/vigil REPO_ROOT}
source "$root/tests/cli_testlib.sh"

sample="$root/rules/sample/events.jsonl"

# config NAME SHARDS INPUT INTERVAL: a config file $tmp/NAME/vigil.yaml writing under $tmp/NAME.
config() {
  local dir="$tmp/$1"
  mkdir -p "$dir"
  cat >"$dir/vigil.yaml" <<EOF
rules: $root/rules
shards: $2
watermark:
  out_of_orderness: 5s
checkpoints:
  directory: $dir/checkpoints
  interval: $4
metrics:
  listen: ""   # (the default port may be taken by a test running alongside)
sources:
  - name: events
    type: file
    path: $3
sinks:
  - name: alerts
    type: file
    path: $dir/alerts.jsonl
  - name: late
    type: file
    path: $dir/late.jsonl
  - name: dead
    type: file
    path: $dir/dead.jsonl
dead_letter: dead
late: late
EOF
}

# --- the sample stream: same alerts as vigil run, on 1 and 2 shards ---------------------------
"$vigil" run --rules "$root/rules" --input "$sample" --out-of-orderness 5s --quiet \
  --out "$tmp/run_alerts.jsonl" --late "$tmp/run_late.jsonl" --dead-letter "$tmp/run_dead.jsonl" \
  || fail "vigil run exited $?"
[ -s "$tmp/run_alerts.jsonl" ] || fail "vigil run gave no alert on the sample"
for shards in 1 2; do
  config "s$shards" "$shards" "$sample" 10s
  if ! "$vigil" serve --config "$tmp/s$shards/vigil.yaml" 2>"$tmp/s$shards/err"; then
    fail "vigil serve ($shards shards) exited $?"
    cat "$tmp/s$shards/err" >&2
  fi
  if ! diff <(sort "$tmp/run_alerts.jsonl") <(sort "$tmp/s$shards/alerts.jsonl") >"$tmp/diff"; then
    fail "serve with $shards shards: alerts differ from vigil run"
    head -20 "$tmp/diff" >&2
  fi
  [ "$(wc -l <"$tmp/s$shards/late.jsonl")" = "$(wc -l <"$tmp/run_late.jsonl")" ] ||
    fail "serve with $shards shards: late events differ from vigil run"
  # The input is done: a restart finds the final checkpoint and writes nothing more.
  before=$(wc -l <"$tmp/s$shards/alerts.jsonl")
  "$vigil" serve --config "$tmp/s$shards/vigil.yaml" 2>>"$tmp/s$shards/err" || fail "restart after the end exited $?"
  [ "$(wc -l <"$tmp/s$shards/alerts.jsonl")" = "$before" ] || fail "a restart after the end wrote alerts again"
done

# --- a msgpack stream from a file and from stdin: the same alerts as from JSON lines ------------
mkdir -p "$tmp/mp"
python3 "$root/tests/tools/jsonl_to_msgpack.py" "$sample" >"$tmp/mp/events.msgpack"
for kind in file stdin; do
  cat >"$tmp/mp/$kind.yaml" <<EOF
rules: $root/rules
shards: 2
watermark:
  out_of_orderness: 5s
metrics:
  listen: ""
sources:
  - name: events
    type: $kind
    format: msgpack
$([ "$kind" = file ] && echo "    path: $tmp/mp/events.msgpack")
sinks:
  - name: alerts
    type: file
    path: $tmp/mp/alerts_$kind.jsonl
EOF
  "$vigil" serve --config "$tmp/mp/$kind.yaml" <"$tmp/mp/events.msgpack" 2>"$tmp/mp/err_$kind" ||
    fail "serve over msgpack ($kind) exited $?"
  diff <(sort "$tmp/run_alerts.jsonl") <(sort "$tmp/mp/alerts_$kind.jsonl") >/dev/null ||
    fail "serve over msgpack ($kind): alerts differ from vigil run on JSON lines"
done

# --- dead letters and late events -------------------------------------------------------------
bad="$tmp/bad.jsonl"
{
  head -200 "$sample"
  echo '{"type":"Chrge","card_id":"c1"}'
  echo 'not json at all'
  echo '{"type":"AccountActivity","account_id":"X","kind":"login","channel":"web","at":1}'
  echo '{"type":"MfaPassed","user_id":"u1","at":"2024-03-01T00:00:12.001Z"}'
  python3 -c 'print("{\"type\":\"MfaPassed\",\"user_id\":\"" + "u" * 2000000 + "\",\"method\":\"sms\",\"at\":1}")'
  tail -200 "$sample"
} >"$bad"
config bad 2 "$bad" 10s
"$vigil" serve --config "$tmp/bad/vigil.yaml" 2>"$tmp/bad/err" || fail "serve over bad input exited $?"
grep -q "unknown event type 'Chrge'" "$tmp/bad/dead.jsonl" || fail "unknown type not dead-lettered"
grep -q "\"code\":\"not_an_object\"" "$tmp/bad/dead.jsonl" || fail "bad JSON not dead-lettered"
grep -q "MfaPassed: missing field 'method'" "$tmp/bad/dead.jsonl" || fail "missing field not dead-lettered"
grep -q "message too large" "$tmp/bad/dead.jsonl" || fail "a 2 MB message (limit 1 MiB) not dead-lettered"
[ "$(wc -l <"$tmp/bad/dead.jsonl")" = 4 ] || fail "expected 4 dead letters, got $(wc -l <"$tmp/bad/dead.jsonl")"
[ "$(wc -c <"$tmp/bad/dead.jsonl")" -lt 1500000 ] || fail "the huge message's dead letter holds all of it"
grep -q '"account_id":"X"' "$tmp/bad/late.jsonl" || fail "the late event is not in the late sink"
grep -q "input done: 405 messages, 401 events, 4 dead letters, 1 late" "$tmp/bad/err" ||
  fail "the summary after bad input is not as expected"

# Allowed lateness: events moved 2000 lines later in the sample (late, within the lateness) go
# into the windows and revise them; every rule that reads such an event reports it, and the
# late sink still gets one line per event (late_windowed when windows took it): as vigil run.
python3 - "$sample" "$tmp/delayed.jsonl" <<'EOF'
import sys
lines = open(sys.argv[1]).readlines()
out, held = [], {}
for i, l in enumerate(lines):
    if i % 400 == 7:
        held.setdefault(i + 2000, []).append(l)
    else:
        out.append(l)
    out.extend(held.pop(i, []))
for rest in held.values():
    out.extend(rest)
open(sys.argv[2], "w").writelines(out)
EOF
"$vigil" run --rules "$root/rules" --input "$tmp/delayed.jsonl" --out-of-orderness 5s --allowed-lateness 30d \
  --quiet --out "$tmp/delayed_alerts.jsonl" --late "$tmp/delayed_late.jsonl" --dead-letter /dev/null ||
  fail "vigil run (delayed) exited $?"
config lateness 2 "$tmp/delayed.jsonl" 10s
sed -i 's/^  out_of_orderness: 5s$/  out_of_orderness: 5s\n  allowed_lateness: 30d/' "$tmp/lateness/vigil.yaml"
"$vigil" serve --config "$tmp/lateness/vigil.yaml" 2>"$tmp/lateness/err" || fail "serve with allowed lateness exited $?"
grep -q '"reason":"late_windowed"' "$tmp/delayed_late.jsonl" || fail "no event was late within the lateness"
diff <(sort "$tmp/delayed_late.jsonl") <(sort "$tmp/lateness/late.jsonl") >/dev/null ||
  fail "allowed lateness: the late lines differ from vigil run's"
diff <(sort "$tmp/delayed_alerts.jsonl") <(sort "$tmp/lateness/alerts.jsonl") >/dev/null ||
  fail "allowed lateness: the alerts differ from vigil run's"

# A damaged newest checkpoint: reported by name, the one before is used, nothing is lost.
config ckpt 1 "$sample" 100ms
"$vigil" serve --config "$tmp/ckpt/vigil.yaml" 2>"$tmp/ckpt/err" &
pid=$!
for _ in $(seq 1 50); do [ "$(ls "$tmp/ckpt/checkpoints" 2>/dev/null | wc -l)" -ge 2 ] && break; sleep 0.05; done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
newest=$(ls "$tmp/ckpt/checkpoints" | sort | tail -1)
printf 'garbage' | dd of="$tmp/ckpt/checkpoints/$newest" bs=1 seek=40 conv=notrunc 2>/dev/null
"$vigil" serve --config "$tmp/ckpt/vigil.yaml" 2>>"$tmp/ckpt/err" || fail "restart over a damaged checkpoint exited $?"
grep -q "checkpoint .*$newest is damaged and skipped: $newest: checksum mismatch" "$tmp/ckpt/err" ||
  fail "the damaged checkpoint is not reported"
diff <(sort -u "$tmp/run_alerts.jsonl") <(sort -u "$tmp/ckpt/alerts.jsonl") >/dev/null ||
  fail "after a damaged checkpoint: alerts differ from vigil run"

# --- crash test: kill -9 at 20 random moments -------------------------------------------------
long="$tmp/long.jsonl"
python3 "$root/tests/tools/repeat_sample.py" "$sample" "$long" 8
"$vigil" run --rules "$root/rules" --input "$long" --out-of-orderness 5s --quiet \
  --out "$tmp/long_expected.jsonl" --late /dev/null --dead-letter /dev/null || fail "vigil run (long) exited $?"
config crash 2 "$long" 100ms
RANDOM=42
for i in $(seq 1 20); do
  "$vigil" serve --config "$tmp/crash/vigil.yaml" 2>>"$tmp/crash/err" &
  pid=$!
  sleep "0.$(printf '%02d' $((RANDOM % 60 + 5)))"
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
done
"$vigil" serve --config "$tmp/crash/vigil.yaml" 2>>"$tmp/crash/err" || fail "the last restart exited $?"
python3 - "$tmp/long_expected.jsonl" "$tmp/crash/alerts.jsonl" <<'EOF' || fail "crash test: alerts differ"
import json, sys
expected = [l for l in open(sys.argv[1]) if l.strip()]
got = open(sys.argv[2]).read()
if got and not got.endswith("\n"):
    sys.exit("the alerts file ends with a partial line")
got = [l + "\n" for l in got.split("\n") if l]
by_id = {}
for l in got:
    a = json.loads(l)   # every line whole JSON
    if by_id.setdefault(a["match_id"], l) != l:
        sys.exit("two different lines with match id " + a["match_id"])
want = {json.loads(l)["match_id"]: l for l in expected}
missing = [i for i in want if i not in by_id]
extra = [i for i in by_id if i not in want]
diff = [i for i in want if i in by_id and by_id[i] != want[i]]
print(f"crash test: {len(expected)} alerts expected, {len(got)} lines written "
      f"({len(got) - len(by_id)} re-delivered), {len(missing)} missing, {len(extra)} extra, {len(diff)} differ")
if missing or extra or diff:
    sys.exit(1)
EOF
restarts=$(grep -c "restored checkpoint" "$tmp/crash/err")
[ "$restarts" -ge 5 ] || fail "crash test: only $restarts restarts restored a checkpoint"

# --- two sources: each a watermark partition, nothing late, none lost across kill -9 -----------
# The long stream dealt to two files (odd and even lines). Both partitions hold the watermark back
# from the start: before, the first source polled moved W past the second's first events (1 in 20
# of the sample late). The alerts are vigil run's but for the match ids (seqs are per partition);
# killed at 8 moments and restarted, the daemon gives exactly the uninterrupted two-source lines.
awk 'NR % 2 == 1' "$long" >"$tmp/odd.jsonl"
awk 'NR % 2 == 0' "$long" >"$tmp/even.jsonl"
two_sources() {
  config "$1" 2 "$tmp/odd.jsonl" "$2"
  sed -i "s|^sources:$|sources:\n  - name: even\n    type: file\n    path: $tmp/even.jsonl|" "$tmp/$1/vigil.yaml"
}
strip_ids() { sed -E 's/"match_id":"[0-9a-f]*",//; s/,"seq":[0-9]+//g' "$1" | sort; }
two_sources two 10s
"$vigil" serve --config "$tmp/two/vigil.yaml" 2>"$tmp/two/err" || fail "serve with two sources exited $?"
grep -q "partition $tmp/even.jsonl assigned" "$tmp/two/err" || fail "two sources: the second source was not read"
diff <(strip_ids "$tmp/long_expected.jsonl") <(strip_ids "$tmp/two/alerts.jsonl") >"$tmp/diff" ||
  { fail "two sources: alerts differ from vigil run (match ids aside)"; head -5 "$tmp/diff" >&2; }
[ ! -s "$tmp/two/late.jsonl" ] || fail "two sources: $(wc -l <"$tmp/two/late.jsonl") events late (vigil run: none)"
two_sources twokill 100ms
RANDOM=7
for i in $(seq 1 8); do
  # Killed within 0.3 s after it wrote a checkpoint (so that every restart restores one).
  newest=$(ls "$tmp/twokill/checkpoints" 2>/dev/null | sort | tail -1)
  "$vigil" serve --config "$tmp/twokill/vigil.yaml" 2>>"$tmp/twokill/err" &
  pid=$!
  for _ in $(seq 1 100); do
    [ "$(ls "$tmp/twokill/checkpoints" 2>/dev/null | sort | tail -1)" != "$newest" ] && break
    sleep 0.05
  done
  sleep "0.$(printf '%02d' $((RANDOM % 30)))"
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
done
"$vigil" serve --config "$tmp/twokill/vigil.yaml" 2>>"$tmp/twokill/err" || fail "two sources: the last restart exited $?"
diff <(sort "$tmp/two/alerts.jsonl") <(sort -u "$tmp/twokill/alerts.jsonl") >"$tmp/diff" ||
  { fail "two sources killed -9: alerts differ from the uninterrupted run"; head -5 "$tmp/diff" >&2; }
[ ! -s "$tmp/twokill/late.jsonl" ] || fail "two sources killed -9: $(wc -l <"$tmp/twokill/late.jsonl") events late"
[ "$(grep -c "restored checkpoint" "$tmp/twokill/err")" = 8 ] || fail "two sources: not every restart restored a checkpoint"
echo "two sources killed -9: $(grep -c "restored checkpoint .*watermark [0-9]\{13\}," "$tmp/twokill/err") of 8 restores mid-stream"

# --- holds that stay: said in the log after 30 s (runs in the background until the end) --------
# A two-source checkpoint taken mid-stream, restored by a config without the "even" source and
# with a Kafka source whose broker does not answer: the Kafka source holds the watermark back
# (no assignment), the removed source's partition holds nothing; 30 s after the start the log
# names what holds it, once.
two_sources held 100ms
"$vigil" serve --config "$tmp/held/vigil.yaml" 2>"$tmp/held/err" &
pid=$!
for _ in $(seq 1 100); do [ -n "$(ls "$tmp/held/checkpoints" 2>/dev/null)" ] && break; sleep 0.05; done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
sed -i "/^  - name: even$/,+2d" "$tmp/held/vigil.yaml"
sed -i "s|^sources:$|sources:\n  - name: k\n    type: kafka\n    topics: [none]\n    properties:\n      bootstrap.servers: \"127.0.0.1:1\"\n      group.id: held|" "$tmp/held/vigil.yaml"
"$vigil" serve --config "$tmp/held/vigil.yaml" 2>>"$tmp/held/err" &
held_pid=$!

# --- backpressure: a sink that stalls for 30 s -------------------------------------------------
# The alerts go to a named pipe nobody reads for 30 s: the file sink's write blocks, the output
# queue (16 lines) fills, the shards block, their queues (512 events) fill, the router stops
# reading. Memory must not grow while it waits, and once a reader comes every alert arrives.
mkdir -p "$tmp/bp"
mkfifo "$tmp/bp/alerts.pipe"
cat >"$tmp/bp/vigil.yaml" <<EOF
rules: $root/rules
shards: 2
watermark:
  out_of_orderness: 5s
limits:
  queue_capacity: 512
  alert_queue_capacity: 16
metrics:
  listen: ""
sources:
  - name: events
    type: file
    path: $long
sinks:
  - name: alerts
    type: file
    path: $tmp/bp/alerts.pipe
EOF
"$vigil" serve --config "$tmp/bp/vigil.yaml" 2>"$tmp/bp/err" &
pid=$!
sleep 3
rss_early=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
sleep 27
rss_late=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
kill -0 "$pid" 2>/dev/null || fail "backpressure: the daemon ended while its sink was stalled"
echo "backpressure: RSS ${rss_early} kB after 3 s, ${rss_late} kB after 30 s of a stalled sink"
[ "$((rss_late - rss_early))" -lt 10240 ] || fail "backpressure: memory grew by more than 10 MB while stalled"
cat "$tmp/bp/alerts.pipe" >"$tmp/bp/alerts.jsonl" &
reader=$!
wait "$pid" || fail "backpressure: serve exited $?"
wait "$reader"
diff <(sort "$tmp/long_expected.jsonl") <(sort "$tmp/bp/alerts.jsonl") >/dev/null ||
  fail "backpressure: alerts after the stall differ from vigil run"

# --- SIGTERM: final checkpoint, then the restart finishes -------------------------------------
config term 2 "$long" 10s
"$vigil" serve --config "$tmp/term/vigil.yaml" 2>"$tmp/term/err" &
pid=$!
sleep 0.3
kill -TERM "$pid"
wait "$pid" || fail "serve exited $? on SIGTERM"
"$vigil" serve --config "$tmp/term/vigil.yaml" 2>>"$tmp/term/err" || fail "restart after SIGTERM exited $?"
diff <(sort -u "$tmp/long_expected.jsonl") <(sort -u "$tmp/term/alerts.jsonl") >/dev/null ||
  fail "SIGTERM and restart: alerts differ from an uninterrupted run"

# --- metrics, health and readiness while serving stdin ----------------------------------------
mkdir -p "$tmp/m"
cat >"$tmp/m/vigil.yaml" <<EOF
rules: $root/rules
shards: 2
watermark:
  out_of_orderness: 5s
metrics:
  listen: 127.0.0.1:0
  admin_token: {env: VIGIL_TEST_TOKEN}
sources:
  - name: events
    type: stdin
sinks:
  - name: alerts
    type: file
    path: $tmp/m/alerts.jsonl
EOF
mkfifo "$tmp/m/in"
VIGIL_TEST_TOKEN=t0ken "$vigil" serve --config "$tmp/m/vigil.yaml" <"$tmp/m/in" 2>"$tmp/m/err" &
pid=$!
exec 9>"$tmp/m/in"
cat "$sample" >&9
for _ in $(seq 1 100); do grep -q "metrics on" "$tmp/m/err" && break; sleep 0.1; done
port=$(sed -n 's|.*metrics on http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' "$tmp/m/err")
python3 - "$port" "$(wc -l <"$sample")" <<'EOF' || fail "metrics endpoint"
import sys, time, urllib.request, urllib.error
port, lines = sys.argv[1], int(sys.argv[2])
def get(path, method="GET", token=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    if token: req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=5) as r: return r.status, r.read().decode()
    except urllib.error.HTTPError as e: return e.code, e.read().decode()
deadline = time.time() + 30
while True:   # wait until every line of the sample is read (the fifo stays open)
    status, text = get("/metrics")
    got = [l for l in text.splitlines() if l.startswith('vigil_source_messages_total{')]
    if got and float(got[0].split()[-1]) >= lines: break
    if time.time() > deadline: sys.exit(f"metrics never reached {lines} messages: {got}")
    time.sleep(0.2)
assert status == 200, status
for needle in ['vigil_source_messages_total{partition="stdin",source="events"} ' + str(lines),
               'vigil_events_total ' + str(lines), 'vigil_alerts_total{rule="card_testing"}',
               'vigil_partial_matches{shard="1"}', 'vigil_watermark_lag_seconds{partition="stdin",source="events"}',
               'vigil_alert_latency_seconds_count', 'vigil_shard_queue_depth{shard="0"}']:
    assert needle in text, needle
assert get("/healthz")[0] == 200
assert get("/readyz")[0] == 200
assert get("/admin/reload", "POST")[0] == 401
assert get("/admin/reload", "POST", "wrong")[0] == 401
status, text = get("/admin/reload", "POST", "t0ken")
assert status == 200 and "reloaded" in text, (status, text)   # the same rules again: all kept
assert "t0ken" not in text
EOF
exec 9>&-
wait "$pid" || fail "serve over stdin exited $?"
grep -q "t0ken" "$tmp/m/err" && fail "the admin token appears in the log"
[ -s "$tmp/m/alerts.jsonl" ] || fail "serve over stdin wrote no alert"

# --- holds that stay (started above): the warning names the Kafka source, not the removed one --
for _ in $(seq 1 400); do grep -q "hold the watermark back" "$tmp/held/err" && break; sleep 0.1; done
kill -TERM "$held_pid" 2>/dev/null
wait "$held_pid" || fail "holds: serve exited $? on SIGTERM"
grep -q "restored checkpoint" "$tmp/held/err" || fail "holds: no checkpoint restored"
warning=$(grep "hold the watermark back" "$tmp/held/err")
[ "$(printf '%s\n' "$warning" | grep -c .)" = 1 ] || fail "holds: the warning is not there once: $warning"
case "$warning" in
  *"source 'k' (no partition yet)"*) ;;
  *) fail "holds: the warning does not name the unassigned Kafka source: $warning" ;;
esac
case "$warning" in
  *even*) fail "holds: a source no longer configured holds the watermark: $warning" ;;
esac

# --- --check-config -----------------------------------------------------------------------------
expect_exit 0 serve --check-config "$tmp/s2/vigil.yaml"
grep -q "^config OK" "$tmp/out" || fail "--check-config: no 'config OK'"
grep -q "shards: 2" "$tmp/out" || fail "--check-config: the effective config lacks 'shards: 2'"
printf 'rules: %s\nshards: two\nsources:\n  - name: a\n    type: fil\n' "$root/rules" >"$tmp/badconf.yaml"
expect_exit 1 serve --check-config "$tmp/badconf.yaml"
grep -q "badconf.yaml:2:9: error" "$tmp/err" || fail "--check-config: no error at badconf.yaml:2:9"
grep -q "badconf.yaml:5:11: error" "$tmp/err" || fail "--check-config: no error at badconf.yaml:5:11"

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "serve_cli_test: all passed"
