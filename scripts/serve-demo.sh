#!/usr/bin/env bash
# The README demo of the daemon: `vigil serve` between real brokers, on this machine, in well
# under a minute. It
#   1. installs what is missing and builds `vigil` and three test tools (build/tests/:
#      vigil_kafka_mock, librdkafka's mock cluster; vigil_kafka_produce and vigil_rabbitmq_read,
#      two small clients, since there is no kcat or pika here), as scripts/demo.sh does;
#   2. starts a private RabbitMQ (scripts/rabbitmq-local.sh, in a temporary directory, on a port
#      of its own) and a Kafka mock cluster (one broker, topic `events`);
#   3. produces the bundled sample stream (rules/sample/events.jsonl) into `events`, then a
#      punctuation {"type":"$watermark","watermark":"9000-01-01T00:00:00Z"} that ends event time,
#      so every pending alert fires (as the end of the file does for `vigil run`);
#   4. runs `vigil serve` with scripts/serve-demo-brokers.yaml (ports filled in): source the Kafka
#      topic, sinks the RabbitMQ queue `alerts` (message_id = match id) and stdout; prints the
#      alerts from stdout as they come and the metrics URL;
#   5. once the daemon's watermark has reached the end and a checkpoint covers it, stops it
#      (SIGTERM: a final checkpoint), reads the queue back and prints how many alerts arrived
#      with their match ids — the same alerts as on stdout, and as `vigil run` finds;
#   6. stops the broker and the mock cluster. Ctrl-C at any point stops everything cleanly too.
#
# Environment: DEMO_ALERTS=N prints only the first N alerts (all by default); DEMO_KEEP=1 keeps
# the daemon and the brokers running after the alerts until Ctrl-C (to curl the metrics or point
# Grafana at them: docs/grafana-vigil.json). VIGIL_BUILD_DIR, JOBS: as for scripts/demo.sh.
# Run from anywhere, again and again, as root or as a user with sudo (needed only when packages
# are missing). Nothing is left behind but epmd (Erlang's port mapper, shared by every broker).
#
# For tests/serve_demo_test.sh: SERVE_DEMO_VIGIL=PATH and SERVE_DEMO_TOOLS=DIR (the tools'
# directory) use those binaries and skip installing and building; SERVE_DEMO_DIR=DIR works in DIR
# and keeps it (the alerts from stdout in stdout.jsonl, the queue's in rabbitmq.tsv: message id,
# tab, body; the /metrics page after the last alert in metrics.txt).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"   # cd's to the repository root

if [[ -n ${SERVE_DEMO_VIGIL:-} ]]; then
  VIGIL=$(realpath "$SERVE_DEMO_VIGIL")
  TOOLS=$(realpath "${SERVE_DEMO_TOOLS:?SERVE_DEMO_TOOLS is needed with SERVE_DEMO_VIGIL}")
else
  install_deps
  configure_main
  build "$BUILD_DIR" vigil vigil_kafka_mock vigil_kafka_produce vigil_rabbitmq_read
  VIGIL=$(realpath "$BUILD_DIR/vigil")
  TOOLS=$(realpath "$BUILD_DIR/tests")
fi

if [[ -n ${SERVE_DEMO_DIR:-} ]]; then
  mkdir -p "$SERVE_DEMO_DIR"
  WORK=$(realpath "$SERVE_DEMO_DIR")
else
  WORK=$(mktemp -d /tmp/vigil-serve-demo-XXXXXX)
fi
END_OF_TIME='{"type":"$watermark","watermark":"9000-01-01T00:00:00Z"}'
START=$SECONDS
vigil_pid='' mock_pid='' printer_pid='' rabbit_started=''

# stop_vigil: SIGTERM (the daemon takes a final checkpoint and flushes its sinks), then waits;
# SIGKILL if it is not gone within 30 s.
stop_vigil() {
  [[ -n $vigil_pid ]] || return 0
  kill -TERM "$vigil_pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 300; i++)); do
    kill -0 "$vigil_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$vigil_pid" 2>/dev/null || true
  vigil_status=0
  wait "$vigil_pid" || vigil_status=$?
  vigil_pid=''
}

# The daemon first (its last checkpoint needs both brokers), then the brokers.
cleanup() {
  trap - EXIT INT TERM
  stop_vigil
  if [[ -n $printer_pid ]]; then wait "$printer_pid" 2>/dev/null || true; fi
  if [[ -n $rabbit_started ]]; then scripts/rabbitmq-local.sh stop "$WORK/rabbitmq" || true; fi
  if [[ -n $mock_pid ]]; then
    kill -TERM "$mock_pid" 2>/dev/null || true
    wait "$mock_pid" 2>/dev/null || true
  fi
  if [[ -z ${SERVE_DEMO_DIR:-} ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'echo; echo "interrupted: stopping vigil, RabbitMQ and the Kafka mock"; exit 130' INT TERM

fail() {
  echo "serve-demo: $*" >&2
  exit 1
}

# The daemon's log, for a failure.
show_log() {
  echo "--- vigil serve's log ($WORK/serve.log), last lines:" >&2
  tail -n 20 "$WORK/serve.log" >&2 || true
}

# metric NAME: its value (the first sample) from the daemon's /metrics, or empty.
metric() {
  curl -s -m 2 "$metrics_url" | awk -v name="$1" '$1 == name { print $2; exit }' || true
}

# Both brokers start at once (RabbitMQ takes a few seconds; the mock cluster none). The broker
# and the mock get sessions of their own (setsid), so a Ctrl-C reaches only this script, which
# stops them in order.
echo "\$ scripts/rabbitmq-local.sh start $WORK/rabbitmq      # a private RabbitMQ"
RABBITMQ_WATCH_PID=$$ scripts/rabbitmq-local.sh start "$WORK/rabbitmq" >"$WORK/rabbitmq.out" 2>&1 &
rabbit_start_pid=$!
rabbit_started=1
echo "\$ vigil_kafka_mock events:1                          # a Kafka mock cluster, topic 'events'"
setsid "$TOOLS/vigil_kafka_mock" events:1 >"$WORK/kafka.out" 2>"$WORK/kafka.err" </dev/null &
mock_pid=$!
for ((i = 0; i < 100; i++)); do
  grep -q '^bootstrap=' "$WORK/kafka.out" && break
  kill -0 "$mock_pid" 2>/dev/null || fail "vigil_kafka_mock exited: $(cat "$WORK/kafka.err")"
  sleep 0.1
done
bootstrap=$(sed -n 's/^bootstrap=//p' "$WORK/kafka.out")
[[ -n $bootstrap ]] || fail "vigil_kafka_mock printed no address within 10 s"
echo "  bootstrap=$bootstrap"

echo "\$ vigil_kafka_produce $bootstrap events < rules/sample/events.jsonl + end-of-time watermark"
if ! { cat rules/sample/events.jsonl; echo "$END_OF_TIME"; } |
  "$TOOLS/vigil_kafka_produce" "$bootstrap" events 2>&1 | sed 's/^/  /'; then
  fail "producing the sample failed"
fi

wait "$rabbit_start_pid" || fail "RabbitMQ did not start: $(cat "$WORK/rabbitmq.out")"
amqp_port=$(sed -n 's/^amqp_port=//p' "$WORK/rabbitmq.out")
echo "  RabbitMQ: amqp_port=$amqp_port"
# The alerts queue must exist before the daemon publishes to it (the default exchange drops
# what no queue takes).
"$TOOLS/vigil_rabbitmq_read" --declare "$amqp_port" alerts || fail "cannot declare the queue 'alerts'"

sed -e "s|@VIGIL_ROOT@|$VIGIL_ROOT|g" -e "s|@WORK_DIR@|$WORK|g" -e "s|@BOOTSTRAP@|$bootstrap|g" \
  -e "s|@AMQP_PORT@|$amqp_port|g" scripts/serve-demo-brokers.yaml >"$WORK/vigil.yaml"
"$VIGIL" serve --check-config "$WORK/vigil.yaml" >"$WORK/check-config.out" 2>&1 ||
  { cat "$WORK/check-config.out" >&2; fail "the generated config does not check"; }

echo
echo "\$ vigil serve --config $WORK/vigil.yaml    # from scripts/serve-demo-brokers.yaml"
: >"$WORK/stdout.jsonl"   # before tail follows it (the daemon's redirection may come later)
setsid "$VIGIL" serve --config "$WORK/vigil.yaml" >"$WORK/stdout.jsonl" 2>"$WORK/serve.log" </dev/null &
vigil_pid=$!
# The alerts of the stdout sink, one line each, as they come (tail follows the file until the
# daemon is gone); the full JSON lines are what the queue receives.
tail -s 0.2 -n +1 -f --pid="$vigil_pid" "$WORK/stdout.jsonl" | python3 -c '
import json, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)   # the script stops us, after the daemon
limit = int(sys.argv[1]) if sys.argv[1] else None
n = 0
for line in sys.stdin:
    n += 1
    if limit is not None and n > limit:
        continue
    try:
        a = json.loads(line)
        sev, rule, mid, msg = a["severity"], a["rule"], a["match_id"], a.get("message", "")
        print(f"  alert {n:>3}  {sev:<8} {rule:<28} {mid}  {msg}", flush=True)
    except (ValueError, KeyError):
        print("  " + line.rstrip(), flush=True)
' "${DEMO_ALERTS:-}" &
printer_pid=$!

metrics_url=''
for ((i = 0; i < 300; i++)); do
  metrics_url=$(grep -o 'http://[^ ]*/metrics' "$WORK/serve.log" | head -n 1 || true)
  [[ -n $metrics_url ]] && break
  kill -0 "$vigil_pid" 2>/dev/null || { show_log; fail "vigil serve exited"; }
  sleep 0.1
done
[[ -n $metrics_url ]] || { show_log; fail "vigil serve did not start its metrics endpoint within 30 s"; }
echo "  metrics: curl -s $metrics_url"

# Done when the watermark has passed the end-of-time punctuation (the router read every event
# and the last deadlines fired) and two checkpoints later (the second began after that, so the
# alerts before its barrier are delivered: in the queue, confirmed).
for ((i = 0; ; i++)); do
  kill -0 "$vigil_pid" 2>/dev/null || { show_log; fail "vigil serve exited"; }
  wm=$(metric vigil_watermark_seconds)
  # 9000-01-01 is 221845392000 s after 1970.
  awk -v w="${wm:-0}" 'BEGIN { exit !(w >= 221845392000) }' && break
  ((i < 600)) || { show_log; fail "the watermark did not reach the end within 60 s (at ${wm:-?} s)"; }
  sleep 0.1
done
checkpoints=$(metric vigil_checkpoints_total)
for ((i = 0; ; i++)); do
  now=$(metric vigil_checkpoints_total)
  awk -v a="${now:-0}" -v b="${checkpoints:-0}" 'BEGIN { exit !(a >= b + 2) }' && break
  ((i < 100)) || { show_log; fail "no checkpoint within 10 s after the end of the input"; }
  sleep 0.1
done
sleep 0.3   # the last lines to the printer (tail polls every 0.2 s)

echo
echo "\$ curl -s $metrics_url | grep ...    # a few of the metrics (docs/grafana-vigil.json)"
curl -s -m 2 "$metrics_url" >"$WORK/metrics.txt" || true
grep -E '^vigil_(source_messages_total|events_total|late_events_total|dead_letters_total|checkpoints_total|output_queue_depth|alert_latency_seconds_count)' \
  "$WORK/metrics.txt" | sed 's/^/  /' || true
awk '/^vigil_alerts_total/ { n += $2 } END { printf "  vigil_alerts_total summed over rules: %d\n", n }' "$WORK/metrics.txt"

if [[ -n ${DEMO_KEEP:-} ]]; then
  echo
  echo "Serving until Ctrl-C: curl -s $metrics_url (also /healthz, /readyz); RabbitMQ on 127.0.0.1:$amqp_port"
  while kill -0 "$vigil_pid" 2>/dev/null; do sleep 1; done
fi

echo
echo "stopping vigil serve (SIGTERM: a final checkpoint, sinks flushed)"
stop_vigil
wait "$printer_pid" || true
printer_pid=''
[[ $vigil_status == 0 ]] || { show_log; fail "vigil serve exited with $vigil_status"; }
stdout_count=$(wc -l <"$WORK/stdout.jsonl")
if [[ -n ${DEMO_ALERTS:-} ]]; then echo "  ... ($stdout_count alerts in all on stdout)"; fi
grep -o '\(stopped\|input done\): .*' "$WORK/serve.log" | tail -n 1 | sed 's/^/  vigil: /'
grep -E '\[(warning|error)\]' "$WORK/serve.log" | sed 's/^/  /' | head -n 10 || true

echo
# As many as stdout got (waiting up to 10 s for each), then whatever else is there (1 s of quiet).
echo "\$ vigil_rabbitmq_read $amqp_port alerts $stdout_count 10    # read the queue 'alerts' back"
"$TOOLS/vigil_rabbitmq_read" "$amqp_port" alerts "$stdout_count" 10 >"$WORK/rabbitmq.tsv" || true
"$TOOLS/vigil_rabbitmq_read" "$amqp_port" alerts 0 1 >>"$WORK/rabbitmq.tsv"
rabbit_count=$(wc -l <"$WORK/rabbitmq.tsv")
echo "  $rabbit_count alerts arrived in RabbitMQ; their message ids (= match ids):"
cut -f1 "$WORK/rabbitmq.tsv" | paste -sd' ' | fold -s -w 96 | sed 's/^/    /; s/ *$//'

# The queue holds what stdout got: the same match ids, each message's id its body's match id.
python3 - "$WORK/stdout.jsonl" "$WORK/rabbitmq.tsv" <<'EOF'
import json, sys
stdout = [json.loads(l)["match_id"] for l in open(sys.argv[1]) if l.strip()]
queue = [l.rstrip("\n").split("\t", 1) for l in open(sys.argv[2]) if l.strip()]
bad = [mid for mid, body in queue if json.loads(body)["match_id"] != mid]
if bad:
    sys.exit(f"serve-demo: message ids that are not their alert's match id: {bad[:5]}")
if sorted(stdout) != sorted(mid for mid, _ in queue):
    sys.exit(f"serve-demo: the queue's {len(queue)} alerts differ from stdout's {len(stdout)}")
print(f"  the same {len(queue)} alerts as on stdout (by match id)")
EOF
echo "done in $((SECONDS - START)) s; stopping RabbitMQ and the Kafka mock"
