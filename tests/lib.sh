# Sourced by the test scripts under tests/ (crash, tools, backup): checks
# counted as "ok - ..." / "FAIL - ..." lines and a last line
# "N passed, N failed" (what scripts/test.sh's run_script reads), the
# script's time bound, and ROOT (the checkout), PATH and the directory.
#
#   . "$(dirname "$0")/../lib.sh"
#   bounded 240 "$@"        # once: re-runs the script under timeout(1)
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
export PATH="$ROOT/build/tools:$PATH:/usr/local/go/bin"

PASSED=0 FAILED=0
ok() { PASSED=$((PASSED + 1)); echo "ok - $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $*"; }
note() { echo "# $*"; }
finish() {
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
  exit $?
}

# bounded SECONDS [KILL_AFTER] ARGS...: re-executes the calling script
# (once) under timeout(1): TERM at SECONDS (the script's trap cleans up),
# KILL KILL_AFTER seconds later (30 by default) if that hangs.
bounded() {
  [ -n "${AKM_TEST_BOUNDED:-}" ] && return 0
  local secs=$1 kill_after=30
  shift
  if [[ "${1:-}" =~ ^[0-9]+$ ]]; then kill_after=$1; shift; fi
  AKM_TEST_BOUNDED=1 exec timeout -k "$kill_after" "$secs" bash "$0" "$@"
}
