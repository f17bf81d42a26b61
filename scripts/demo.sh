#!/usr/bin/env bash
# The README demo: install what is missing, build the `vigil` executable (Ninja, Release, ccache)
# into build/, check every example rule file in rules/, then run them over the bundled sample
# stream (rules/sample/events.jsonl: three days of traffic with planted fraud scenarios) and
# print the alerts as JSON lines, then the summary (events, late, dead letters, alerts per rule,
# throughput). The sample has events up to 5 s out of order, hence --out-of-orderness 5s
# (rules/sample/README.md). Set DEMO_ALERTS=N to print only the first N alerts (all by default).
# Idempotent; quiet when there is nothing to install or build. Run from anywhere, as root or as
# a user with sudo (needed only when packages are missing).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

install_deps
configure_main
build "$BUILD_DIR" vigil
echo "\$ vigil check rules/"
"$BUILD_DIR/vigil" check rules/
echo
echo "\$ vigil run --rules rules --input rules/sample/events.jsonl --out-of-orderness 5s"
alerts=$(mktemp)
trap 'rm -f "$alerts" "$alerts.err"' EXIT
# Alerts to a file first, so that the summary (stderr) follows them in one piece.
"$BUILD_DIR/vigil" run --rules rules --input rules/sample/events.jsonl --out-of-orderness 5s \
  --out "$alerts" 2>"$alerts.err" || { cat "$alerts.err" >&2; exit 1; }
if [ -n "${DEMO_ALERTS:-}" ]; then
  head -n "$DEMO_ALERTS" "$alerts"
  echo "... ($(wc -l <"$alerts") alerts in all)"
else
  cat "$alerts"
fi
cat "$alerts.err" >&2
