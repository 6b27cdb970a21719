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

# server_test_work NAME BOUND: for a script that runs a private server and
# the loopback KMS: WORK=$(mktemp -d /tmp/akm-NAME.XXXXXX), SRV_DIR and
# SRV_PLUGIN_DIR (build/) set, scripts/server.sh and kms.sh sourced, and
# traps: on exit the server is killed, the emulator stopped and WORK
# removed (kept with AKM_KEEP=1); TERM or INT (the BOUND of `bounded`)
# counts as a failure.
server_test_work() {
  WORK=$(mktemp -d "/tmp/akm-$1.XXXXXX")
  SRV_DIR="$WORK/srv" SRV_PLUGIN_DIR="$ROOT/build"
  . "$ROOT/scripts/server.sh"
  . "$ROOT/scripts/kms.sh"
  trap server_test_cleanup EXIT
  # shellcheck disable=SC2064 # the bound is fixed now
  trap "echo '# interrupted or over time'; fail 'run interrupted (signal or the $2 s bound)'; echo \"\$PASSED passed, \$FAILED failed\"; exit 1" INT TERM
}
server_test_cleanup() {
  trap - EXIT INT TERM
  if [ -n "$srv_pid" ]; then kill -9 "$srv_pid" 2>/dev/null; wait "$srv_pid" 2>/dev/null; srv_pid=""; fi
  kms_stop
  if [ -n "${AKM_KEEP:-}" ]; then echo "# AKM_KEEP: logs and datadir left in $WORK"; else rm -rf "$WORK"; fi
}

# scratch_root_run ROOT DIR LABEL: runs each command line read from stdin
# (a README's `sudo install ...` lines, say) as root in DIR, as written
# but without "sudo " and with every /etc/ path under the scratch root
# ROOT (a line with another /etc path is not run: a failure); one ok/fail
# line per command, labelled LABEL. SCRATCH_N: how many lines were read.
scratch_root_run() {
  local r=$1 dir=$2 label=$3 line cmd
  SCRATCH_N=0
  while IFS= read -r line; do
    SCRATCH_N=$((SCRATCH_N + 1))
    cmd=${line#sudo }
    cmd=${cmd//\/etc\//$r/etc/}
    if [[ "$cmd" == *" /etc"* ]]; then fail "$label: \$ $line: a /etc path not under the scratch root; not run"
    elif (cd "$dir" && bash -c "$cmd") >"$r.out" 2>&1; then ok "$label: \$ $line"
    else cat "$r.out"; fail "$label: \$ $line"; fi
  done
}
