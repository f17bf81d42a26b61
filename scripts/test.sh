#!/usr/bin/env bash
# Everything CI runs (.ci/run calls this): install what is missing, configure build/ with
# warnings as errors, build every target, run every CTest test — the doctest cases, the shell
# tests of the CLI and, when clang is installed, 60 s of fuzzing of the front end and 30 s of the
# decoders (scripts/fuzz.sh) — and exit non-zero on any failure. Idempotent; run from anywhere.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

install_deps
configure_main
build "$BUILD_DIR"
# The fuzz tests are RUN_SERIAL (they build their own clang tree), the rest run $JOBS at a time.
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$JOBS"
