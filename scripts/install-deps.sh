#!/usr/bin/env bash
# Installs, with apt-get, the Debian 12 packages Vigil needs to build and test — only those missing.
# Idempotent and quiet when everything is already there. Run as root (or with sudo available).
set -euo pipefail

packages=(
  # toolchain
  cmake ninja-build g++ ccache clang libclang-rt-14-dev pkg-config
  # libraries (see DEVELOPERS.md)
  libboost-dev libboost-container-dev libtbb-dev libhyperscan-dev libmsgpack-cxx-dev
  libsimdjson-dev libbenchmark-dev doctest-dev librdkafka-dev librabbitmq-dev
  libfmt-dev libspdlog-dev libcli11-dev libabsl-dev prometheus-cpp-dev libyaml-cpp-dev
  # test services and tools (tests/cli_test.sh validates JSON with python3)
  rabbitmq-server python3
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
# rabbitmq-server starts a system-wide broker on install; the tests start their own private one.
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Do not leave the packaged broker running: the tests use private instances on their own ports.
if command -v systemctl >/dev/null && systemctl is-active --quiet rabbitmq-server 2>/dev/null; then
  "${sudo_cmd[@]}" systemctl stop rabbitmq-server || true
fi
echo "install-deps: done"
