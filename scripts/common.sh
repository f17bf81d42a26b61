# Shared by scripts/demo.sh, test.sh and fuzz.sh (sourced, not run): go to the repository root,
# install missing packages, configure a build directory. Steps print nothing when there is nothing
# to do; a failing step prints its full log.
#
# Environment: VIGIL_BUILD_DIR (default build), JOBS (default nproc).

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VIGIL_ROOT=$PWD
BUILD_DIR=${VIGIL_BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}

# run_logged LOG CMD...: runs CMD with its output in LOG; on failure prints LOG and exits.
run_logged() {
  local log=$1
  shift
  mkdir -p "$(dirname "$log")"
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    echo "error: '$*' failed (log: $log)" >&2
    exit 1
  fi
}

install_deps() {
  "$VIGIL_ROOT/scripts/install-deps.sh"
}

# configure DIR [CMAKE ARGS...]: Ninja build in DIR. Re-running with the same arguments changes
# nothing, so the next build does no work.
configure() {
  local dir=$1
  shift
  run_logged "$dir/configure.log" cmake -S "$VIGIL_ROOT" -B "$dir" -G Ninja "$@"
}

# build DIR [TARGETS...]: ninja without progress lines; prints only compiler messages.
build() {
  local dir=$1 rc
  shift
  set +e
  ninja --quiet -C "$dir" -j"$JOBS" "$@" 2>&1 | grep --line-buffered -v '^ninja: no work to do\.$'
  rc=${PIPESTATUS[0]}
  set -e
  return "$rc"
}

# The configuration shared by demo.sh and test.sh, so both reuse one build directory.
configure_main() {
  configure "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DVIGIL_WERROR=ON -DVIGIL_BENCH=ON
}
