#!/usr/bin/env bash
# The demo of issue 2: install what is missing, build the `vigil` executable (Ninja, Release,
# ccache) into build/, then check every example rule file in rules/ and print the result.
# Idempotent; quiet when there is nothing to install or build. Run from anywhere, as root or as
# a user with sudo (needed only when packages are missing).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

install_deps
configure_main
build "$BUILD_DIR" vigil
echo "\$ vigil check rules/"
exec "$BUILD_DIR/vigil" check rules/
