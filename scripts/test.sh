#!/usr/bin/env bash
# Runs the test levels and prints one summary line "N passed, N failed"
# counting every test of every level. Exits non-zero on any failure; an
# mtr test that is skipped counts as failed (the suite must run here).
#   scripts/test.sh            all levels
#   scripts/test.sh LEVEL...   some of: lint unit build abi mtr
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH="$ROOT/build/tools:$PATH:/usr/local/go/bin"
export AWS_EC2_METADATA_DISABLED=true
LOGS="$ROOT/build/test-logs"
mkdir -p "$LOGS"
levels=("$@")
((${#levels[@]})) || levels=(lint unit build abi mtr)

PASS=0 FAIL=0
FAILED_ITEMS=()
ok()   { PASS=$((PASS + 1)); printf '  ok    %s\n' "$1"; }
bad()  { FAIL=$((FAIL + 1)); FAILED_ITEMS+=("$1"); printf '  FAIL  %s\n' "$1"; }
add()  { PASS=$((PASS + $1)); FAIL=$((FAIL + $2)); }
section() { printf '\n== %s\n' "$1"; }

lint() {
  section "lint: gofmt, go vet, staticcheck"
  local out
  out=$(gofmt -l cabi plugin internal 2>&1)
  if [ -z "$out" ]; then ok "gofmt"; else bad "gofmt: $out"; fi
  if go vet ./... >"$LOGS/vet.log" 2>&1; then ok "go vet ./..."; else cat "$LOGS/vet.log"; bad "go vet"; fi
  if go vet -tags mock ./... >"$LOGS/vet-mock.log" 2>&1; then ok "go vet -tags mock ./..."; else cat "$LOGS/vet-mock.log"; bad "go vet -tags mock"; fi
  if staticcheck ./... >"$LOGS/staticcheck.log" 2>&1 && staticcheck -tags mock ./... >>"$LOGS/staticcheck.log" 2>&1; then
    ok "staticcheck (release and mock)"
  else cat "$LOGS/staticcheck.log"; bad "staticcheck"; fi
}

# count_go_tests LOG: adds the --- PASS / --- FAIL lines of a go test -v log.
count_go_tests() {
  local p f
  p=$(grep -cE '^\s*--- PASS' "$1")
  f=$(grep -cE '^\s*--- FAIL' "$1")
  add "$p" "$f"
  printf '  %d Go tests passed, %d failed (%s)\n' "$p" "$f" "$(basename "$1")"
  ((f == 0)) || grep -E '^\s*--- FAIL' "$1" | sed 's/^/    /'
}

unit() {
  section "unit: go test -race ./internal/..."
  go test -race -count=1 -v ./internal/... >"$LOGS/unit.log" 2>&1
  local rc=$?
  count_go_tests "$LOGS/unit.log"
  if ((rc != 0)); then tail -30 "$LOGS/unit.log"; bad "go test -race exited $rc"; fi
  # The internal packages are plain Go: they must build and pass without cgo.
  if CGO_ENABLED=0 go test -count=1 ./internal/... >"$LOGS/unit-nocgo.log" 2>&1; then
    ok "CGO_ENABLED=0 go test ./internal/..."
  else tail -30 "$LOGS/unit-nocgo.log"; bad "CGO_ENABLED=0 go test ./internal/..."; fi
}

build() {
  section "build: release and mock libraries"
  if make -s release >"$LOGS/build.log" 2>&1; then ok "make (build/aws_key_management.so)"; else cat "$LOGS/build.log"; bad "make"; fi
  if make -s mock >>"$LOGS/build.log" 2>&1; then ok "make mock (build/mock/aws_key_management.so)"; else cat "$LOGS/build.log"; bad "make mock"; fi
  # The release library must not contain the mock: its blob magic and its
  # variable are in the mock build (checked, so the test can fail) and
  # absent from the release build.
  local m
  for m in AKMMOCK1 "Use the in-process mock KMS"; do
    if grep -qa "$m" build/mock/aws_key_management.so && ! grep -qa "$m" build/aws_key_management.so; then
      ok "'$m' is in the mock build only"
    else bad "'$m': mock build has it: $(grep -ca "$m" build/mock/aws_key_management.so), release has it: $(grep -ca "$m" build/aws_key_management.so)"; fi
  done
}

abi() {
  section "abi: C host loads the mock library as mariadbd does"
  if ! make -s build/abi-host mock >"$LOGS/abi-build.log" 2>&1; then cat "$LOGS/abi-build.log"; bad "building the ABI host"; return; fi
  local dir; dir=$(mktemp -d)
  build/abi-host build/mock/aws_key_management.so "$dir" >"$LOGS/abi.log" 2>&1
  local rc=$?
  rm -rf "$dir"
  grep -E '^FAIL' "$LOGS/abi.log" | sed 's/^/    /'
  local line; line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$LOGS/abi.log" | tail -1)
  if [ -z "$line" ]; then tail -20 "$LOGS/abi.log"; bad "ABI host crashed (exit $rc)"; return; fi
  local p f; read -r p _ f _ <<<"${line//,/}"
  add "$p" "$f"
  printf '  %s (ABI host)\n' "$line"
  ((rc == 0 || f > 0)) || bad "ABI host exited $rc"
}

mtr() {
  section "mtr: the aws_key_management suite in a real mariadbd (mock build)"
  if ! make -s mock >"$LOGS/mtr-build.log" 2>&1; then cat "$LOGS/mtr-build.log"; bad "make mock"; return; fi
  local mtrdir=/usr/share/mysql/mysql-test
  [ -x "$mtrdir/mtr" ] || { bad "mysql-test-run not installed ($mtrdir/mtr); run scripts/deps.sh"; return; }
  local expected; expected=$(ls mysql-test/aws_key_management/t/*.test | wc -l)
  # MTR_RECORD=1 rewrites the result files (review them before committing);
  # mtr records only tests named on the command line.
  local tests=${MTR_TESTS:-}
  if [ -n "${MTR_RECORD:-}" ] && [ -z "$tests" ]; then
    tests=$(cd mysql-test/aws_key_management/t && ls *.test | sed 's/\.test$//' | tr '\n' ' ')
  fi
  [ -z "${MTR_TESTS:-}" ] || expected=$(wc -w <<<"$MTR_TESTS")
  local vardir="$ROOT/build/mtr-var"
  rm -rf "$vardir"
  # mtr splits --suite at '-' (so ".../mysql-test/..." breaks): give it a
  # path without one.
  local link; link=$(mktemp -d /tmp/akmsuiteXXXXXX)
  ln -s "$ROOT/mysql-test/aws_key_management" "$link/aws_key_management"
  (cd "$mtrdir" && AWS_KEY_MANAGEMENT_SO=aws_key_management.so AKM_ROOT="$ROOT" \
    timeout 1800 perl mtr --vardir="$vardir" --suite="$link/aws_key_management" \
      --mysqld=--plugin-dir="$ROOT/build/mock" --parallel=2 --force --retry=0 --max-test-fail=0 \
      --testcase-timeout=10 --suite-timeout=40 ${MTR_RECORD:+--record} $tests)  >"$LOGS/mtr.log" 2>&1
  local rc=$?
  rm -rf "$link"
  local p f s
  p=$(grep -cE '\[ pass \]' "$LOGS/mtr.log")
  f=$(grep -cE '\[ fail \]' "$LOGS/mtr.log")
  s=$(grep -cE '\[ skipped \]' "$LOGS/mtr.log")
  grep -E '\[ (pass|fail|skipped) \]' "$LOGS/mtr.log" | sed 's/^/    /'
  add "$p" $((f + s))
  printf '  mtr: %d passed, %d failed, %d skipped (skips count as failures), %d test files\n' "$p" "$f" "$s" "$expected"
  if ((p != expected)); then
    grep -E -A30 '\[ fail \]' "$LOGS/mtr.log" | head -150
    if ((f + s == 0)); then bad "mtr ran $p of $expected tests (exit $rc)"; fi
  elif ((rc != 0)); then bad "mtr exited $rc"
  fi
}

for l in "${levels[@]}"; do
  case "$l" in
    lint|unit|build|abi|mtr) "$l" ;;
    *) echo "unknown level $l (want lint unit build abi mtr)"; exit 2 ;;
  esac
done

echo
if ((FAIL)); then printf 'failed: %s\n' "${FAILED_ITEMS[@]}"; fi
echo "logs: $LOGS"
echo "$PASS passed, $FAIL failed"
((FAIL == 0))
