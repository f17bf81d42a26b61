#!/usr/bin/env bash
# The README demo of the daemon, scripts/serve-demo.sh, run with the binaries of this build
# (SERVE_DEMO_VIGIL, SERVE_DEMO_TOOLS: nothing installed or built) against a real private
# RabbitMQ and the Kafka mock cluster (CTest name rabbitmq_serve_demo: `ctest -E rabbit` skips it):
#   1. it exits 0, and the RabbitMQ queue `alerts` got exactly the alert lines `vigil run` prints
#      on the same sample (--out-of-orderness 5s): as many, the same match ids, each message's
#      message_id its alert's match id; the stdout sink got the same lines; the saved /metrics
#      page has every metric and label docs/grafana-vigil.json queries;
#   2. stopped by Ctrl-C (SIGINT to its process group, as a terminal sends it) while it keeps
#      serving (DEMO_KEEP=1), it exits 130 after the daemon's final checkpoint and leaves no
#      daemon, broker or mock cluster listening.
#
#   serve_demo_test.sh VIGIL TOOLS_DIR SOURCE_DIR
set -euo pipefail
VIGIL=$(realpath "$1")
TOOLS=$(realpath "$2")
ROOT=$(realpath "$3")
TMP=$(mktemp -d /tmp/vigil-serve-demo-test-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
failures=0

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# accepts PORT: something listens on 127.0.0.1:PORT.
accepts() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Nothing of a demo run in DIR is left listening: the daemon's metrics port, the broker's AMQP
# port, the mock cluster's bootstrap port.
check_all_stopped() {
  local dir=$1 port
  if scripts/rabbitmq-local.sh status "$dir/rabbitmq" >/dev/null 2>&1; then
    fail "the demo's RabbitMQ still runs"
  fi
  for port in $(sed -n 's/^amqp_port=//p' "$dir/rabbitmq.out") \
    $(sed -n 's/^bootstrap=127.0.0.1://p' "$dir/kafka.out") \
    $(grep -o 'http://127.0.0.1:[0-9]*' "$dir/serve.log" | head -n 1 | sed 's/.*://'); do
    if accepts "$port"; then fail "port $port still accepts connections after the demo"; fi
  done
}

cd "$ROOT"
"$VIGIL" run --rules rules --input rules/sample/events.jsonl --out-of-orderness 5s --quiet \
  --out "$TMP/expected.jsonl" --late /dev/null --dead-letter /dev/null
expected=$(wc -l <"$TMP/expected.jsonl")
messages=$(($(grep -c . rules/sample/events.jsonl) + 1))   # the sample and the end of time
[[ $expected -gt 10 ]] || fail "vigil run found only $expected alerts"

# 1. A whole run.
started=$SECONDS
if ! SERVE_DEMO_VIGIL=$VIGIL SERVE_DEMO_TOOLS=$TOOLS SERVE_DEMO_DIR=$TMP/run DEMO_ALERTS=3 \
  scripts/serve-demo.sh >"$TMP/run.out" 2>&1; then
  cat "$TMP/run.out"
  echo "FAIL: scripts/serve-demo.sh exited non-zero"
  exit 1
fi
echo "the demo ran in $((SECONDS - started)) s"
python3 - "$TMP/expected.jsonl" "$TMP/run/rabbitmq.tsv" "$TMP/run/stdout.jsonl" <<'EOF' || failures=$((failures + 1))
import collections, json, sys
expected = [l.rstrip("\n") for l in open(sys.argv[1]) if l.strip()]
queue = [l.rstrip("\n").split("\t", 1) for l in open(sys.argv[2]) if l.strip()]
stdout = [l.rstrip("\n") for l in open(sys.argv[3]) if l.strip()]
problems = []
if len(queue) != len(expected):
    problems.append(f"the queue got {len(queue)} alerts, vigil run printed {len(expected)}")
ids = lambda lines: sorted(json.loads(l)["match_id"] for l in lines)
if ids(b for _, b in queue) != ids(expected):
    problems.append("the queue's match ids differ from vigil run's")
if collections.Counter(b for _, b in queue) != collections.Counter(expected):
    problems.append("the queue's alert lines differ from vigil run's")
problems += [f"message_id {m} is not its alert's match id" for m, b in queue if json.loads(b)["match_id"] != m]
if collections.Counter(stdout) != collections.Counter(expected):
    problems.append(f"the stdout sink's {len(stdout)} lines differ from vigil run's")
for p in problems[:10]:
    print("FAIL:", p)
print(f"queue: {len(queue)} alerts, stdout: {len(stdout)}, vigil run: {len(expected)}")
sys.exit(1 if problems else 0)
EOF
grep -q "^  $expected alerts arrived in RabbitMQ" "$TMP/run.out" || fail "the demo did not report $expected alerts in RabbitMQ"
grep -q '^  metrics: curl -s http://127.0.0.1:[0-9]*/metrics$' "$TMP/run.out" || fail "the demo did not print the metrics URL"
[[ $(grep -c '^  alert ' "$TMP/run.out") == 3 ]] || fail "DEMO_ALERTS=3 did not print exactly 3 alerts"
grep -q '^  vigil: stopped: ' "$TMP/run.out" || fail "no final summary of the daemon"
python3 tests/tools/check_grafana_dashboard.py docs/grafana-vigil.json adapters/serve_metrics.cc \
  "$TMP/run/metrics.txt" || fail "the dashboard queries what the daemon does not export"
check_all_stopped "$TMP/run"
if ((failures)); then cat "$TMP/run.out"; fi

# 2. Ctrl-C: a process group of its own with SIGINT's default action (a background job of this
# script would ignore it), then SIGINT to the whole group, as a terminal does.
SERVE_DEMO_VIGIL=$VIGIL SERVE_DEMO_TOOLS=$TOOLS SERVE_DEMO_DIR=$TMP/keep DEMO_KEEP=1 DEMO_ALERTS=0 \
  python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.setpgid(0, 0)
os.execvp(sys.argv[1], sys.argv[1:])' scripts/serve-demo.sh >"$TMP/keep.out" 2>&1 &
demo=$!
for ((i = 0; i < 600; i++)); do
  grep -q '^Serving until Ctrl-C' "$TMP/keep.out" && break
  kill -0 "$demo" 2>/dev/null || break
  sleep 0.1
done
if grep -q '^Serving until Ctrl-C' "$TMP/keep.out"; then
  kill -INT -- "-$demo"
  status=0
  wait "$demo" || status=$?
  [[ $status == 130 ]] || fail "after Ctrl-C the demo exited with $status, not 130"
  grep -q '^interrupted: stopping' "$TMP/keep.out" || fail "the demo did not say it was interrupted"
  grep -q "stopped: $messages messages" "$TMP/keep/serve.log" || fail "the daemon did not stop cleanly after Ctrl-C"
  check_all_stopped "$TMP/keep"
else
  kill -KILL -- "-$demo" 2>/dev/null || true
  wait "$demo" || true
  fail "the demo with DEMO_KEEP=1 did not reach 'Serving until Ctrl-C'"
fi
if ((failures)); then
  cat "$TMP/keep.out"
  echo "$failures failure(s)"
  exit 1
fi
echo "PASS"
