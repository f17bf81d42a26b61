# Shared by the shell tests of the `vigil` executable (cli_test.sh, run_cli_test.sh): sourced
# after `vigil` is set. Makes $tmp (removed at exit), counts failures, and runs vigil.
tmp=$(mktemp -d)
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT
failures=0

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# expect_exit CODE ARGS...: runs vigil ARGS, output in $tmp/out and $tmp/err.
expect_exit() {
  local want=$1
  shift
  "$vigil" "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  if [ "$got" -ne "$want" ]; then
    fail "vigil $* exited $got, expected $want"
    sed 's/^/  stdout: /' "$tmp/out" >&2
    sed 's/^/  stderr: /' "$tmp/err" >&2
  fi
}
