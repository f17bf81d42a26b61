#!/usr/bin/env bash
# Everything CI runs (.ci/run calls this): install what is missing, configure build/ with
# warnings as errors, build every target, run every CTest test — the doctest cases, the shell
# tests of the CLI and, when clang is installed, 60 s of fuzzing (scripts/fuzz.sh) — and exit
# non-zero on any failure. Idempotent; run from anywhere.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

install_deps
configure_main
build "$BUILD_DIR"
# The fuzz test is RUN_SERIAL (it builds its own clang tree), the rest run $JOBS at a time.
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$JOBS"
