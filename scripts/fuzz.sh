#!/usr/bin/env bash
# Fuzzes the rule-language front end (tests/fuzz/check_fuzz.cc) or the event decoders
# (tests/fuzz/decode_fuzz.cc) for a bounded time:
#   scripts/fuzz.sh [SECONDS] [check|decode]        (default 60, check)
# Configures a separate build directory (VIGIL_FUZZ_BUILD_DIR, default build-fuzz) with clang,
# -DVIGIL_FUZZ=ON (ASan + UBSan + libFuzzer on every library), builds only the fuzz target and
# runs it over the committed seeds (tests/fuzz/corpus/ with the dictionary tests/fuzz/vigil.dict;
# tests/fuzz/corpus_decode/ for the decoders). New inputs go to <build dir>/corpus[_decode], never
# into the committed corpus. A crash, leak, timeout
# (>10 s per input) or out-of-memory (>2 GB) fails the run: the log's end is printed and the input
# is saved under fuzz-artifacts/ — reproduce with `<build dir>/tests/fuzz/<target> FILE`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

seconds=${1:-60}
which=${2:-check}
dir=${VIGIL_FUZZ_BUILD_DIR:-build-fuzz}
case "$which" in
  check) target=check_fuzz; seeds=tests/fuzz/corpus; corpus=$dir/corpus; extra=(-max_len=16384 -dict=tests/fuzz/vigil.dict) ;;
  decode) target=decode_fuzz; seeds=tests/fuzz/corpus_decode; corpus=$dir/corpus_decode; extra=(-max_len=4096) ;;
  *) echo "fuzz: unknown target '$which' (check or decode)" >&2; exit 2 ;;
esac

install_deps
if ! command -v clang++ >/dev/null; then
  echo "fuzz: clang++ not found (install clang and libclang-rt-14-dev)" >&2
  exit 1
fi
# Debug keeps assertions on; -O1 keeps the sanitized parser fast enough to fuzz.
CC=clang CXX=clang++ configure "$dir" -DVIGIL_FUZZ=ON -DVIGIL_BENCH=OFF \
  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS=-O1
build "$dir" "$target"

mkdir -p "$corpus" fuzz-artifacts
log=$dir/fuzz-$which.log
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
if ! "$dir/tests/fuzz/$target" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    "${extra[@]}" -artifact_prefix=fuzz-artifacts/ \
    -print_final_stats=1 "$corpus" "$seeds" >"$log" 2>&1; then
  # What failed, then the first stack frames; Spirit's frames are kilobytes long, so each is cut
  # to its start and its source location.
  grep -m 5 -E 'Assertion|ERROR: |runtime error: |SUMMARY: |ALARM|out-of-memory' "$log" |
    cut -c1-300 >&2 || true
  grep -m 30 -E '^ +#[0-9]+ ' "$log" |
    sed -E 's/^( +#[0-9]+ 0x[0-9a-f]+ in )(.{100}).* ([^ ]+:[0-9]+(:[0-9]+)?)$/\1\2... \3/' >&2 || true
  echo "fuzz: FAILED after at most ${seconds} s (full log: $log)" >&2
  for input in $(sed -n 's/.*Test unit written to \(fuzz-artifacts\/[^ ]*\).*/\1/p' "$log"); do
    echo "fuzz: replay with: $dir/tests/fuzz/$target $VIGIL_ROOT/$input" >&2
  done
  exit 1
fi
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)
echo "fuzz ($which): ${seconds} s, ${runs:-?} inputs, ${cov:-cov: ?}, no failure"
