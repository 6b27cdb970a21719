#!/usr/bin/env bash
# Runs the test levels and prints one summary line "N passed, N failed"
# counting every test of every level. Exits non-zero on any failure; an
# mtr test that is skipped counts as failed (the suite must run here).
#   scripts/test.sh            all levels
#   scripts/test.sh LEVEL...   some of the levels in ALL_LEVELS below
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH="$ROOT/build/tools:$PATH:/usr/local/go/bin"
export AWS_EC2_METADATA_DISABLED=true
LOGS="$ROOT/build/test-logs"
mkdir -p "$LOGS"
# Every level, in the order a full run takes them (each is a function
# below; install's is install_level, so as not to shadow install(1)).
ALL_LEVELS=(lint unit build abi keycache release kmscli mtr kms crash tools backup creds mfa suite repl galera install deb)
levels=("$@")
((${#levels[@]})) || levels=("${ALL_LEVELS[@]}")

PASS=0 FAIL=0
FAILED_ITEMS=()
ok()   { PASS=$((PASS + 1)); printf '  ok    %s\n' "$1"; }
bad()  { FAIL=$((FAIL + 1)); FAILED_ITEMS+=("$1"); printf '  FAIL  %s\n' "$1"; }
add()  { PASS=$((PASS + $1)); FAIL=$((FAIL + $2)); }
section() { printf '\n== %s\n' "$1"; }

lint() {
  section "lint: gofmt, go vet, staticcheck"
  local out
  out=$(gofmt -l cabi plugin internal cmd 2>&1)
  if [ -z "$out" ]; then ok "gofmt"; else bad "gofmt: $out"; fi
  if go vet ./... >"$LOGS/vet.log" 2>&1; then ok "go vet ./..."; else cat "$LOGS/vet.log"; bad "go vet"; fi
  if go vet -tags mock ./... >"$LOGS/vet-mock.log" 2>&1; then ok "go vet -tags mock ./..."; else cat "$LOGS/vet-mock.log"; bad "go vet -tags mock"; fi
  if staticcheck ./... >"$LOGS/staticcheck.log" 2>&1 && staticcheck -tags mock ./... >>"$LOGS/staticcheck.log" 2>&1; then
    ok "staticcheck (release and mock)"
  else cat "$LOGS/staticcheck.log"; bad "staticcheck"; fi
}

# Go tests that may skip at the unit level, each with the reason it is
# expected here ("PACKAGE TEST" -> why). Any other skip fails the level: a
# test that starts skipping must not vanish from the count while the level
# stays green.
declare -A GO_SKIP_OK=(
  ["internal/keyfile TestCrashChild"]="the child half of TestCreateSurvivesKill9, which runs it in its own process; alone it skips"
  ["internal/keyfile TestReplaceCrashChild"]="the child half of TestReplaceSurvivesKill9, which runs it in its own process; alone it skips"
  ["internal/keyfile TestUnreadableChild"]="the unprivileged half of TestReadUnreadablePermission, which runs it as uid 65534; alone it skips"
  ["internal/keyfile TestReadOnlyMountChild"]="the child of TestCreateReadOnlyMount, which runs it in a private mount namespace; alone it skips"
  ["internal/kmsbackend TestMemScanChild"]="the KMS of the memory-scan test, which runs it in a child process so that its buffers are not in the scanned memory; alone it skips"
)

# count_go_tests JSON LOG: adds the results of a `go test -json` run: the
# pass and fail events of every test and subtest (not "--- PASS" text a
# test prints, e.g. from a child process it runs), writes the tests'
# output as `go test -v` shows it to LOG, and fails on any skip not in
# GO_SKIP_OK.
count_go_tests() {
  local json=$1 log=$2 res p f s kind pkg name msg
  if ! res=$(perl "$ROOT/scripts/gotest-json.pl" "$json" "$log"); then
    bad "reading $(basename "$json")"; return
  fi
  read -r _ p f s <<<"$(head -1 <<<"$res")"
  add "$p" "$f"
  printf '  %d Go tests passed, %d failed (%s)\n' "$p" "$f" "$(basename "$log")"
  while IFS=$'\t' read -r kind msg; do
    read -r kind pkg name <<<"$kind"
    case $kind in
      fail) printf '    --- FAIL: %s %s: %.600s\n' "$pkg" "$name" "$msg" ;;
      skip)
        if [ -n "${GO_SKIP_OK["$pkg $name"]:-}" ]; then
          printf '  skipped as expected: %s %s (%s)\n' "$pkg" "$name" "${GO_SKIP_OK["$pkg $name"]}"
        else
          bad "Go test skipped, and not in GO_SKIP_OK: $pkg $name: $msg"
        fi ;;
    esac
  done < <(tail -n +2 <<<"$res")
}

unit() {
  section "unit: go test -race ./internal/... ./cmd/..."
  go test -race -count=1 -json ./internal/... ./cmd/... >"$LOGS/unit.json" 2>"$LOGS/unit.stderr"
  local rc=$?
  count_go_tests "$LOGS/unit.json" "$LOGS/unit.log"
  if ((rc != 0)); then
    # No failed test to show (a build error, a panic, a timeout): the end
    # of the output says why.
    grep -q '^--- FAIL' "$LOGS/unit.log" || { cat "$LOGS/unit.stderr"; tail -30 "$LOGS/unit.log"; }
    bad "go test -race exited $rc"
  fi
  # The internal packages are plain Go: they must build and pass without cgo.
  if CGO_ENABLED=0 go test -count=1 ./internal/... >"$LOGS/unit-nocgo.log" 2>&1; then
    ok "CGO_ENABLED=0 go test ./internal/..."
  else tail -30 "$LOGS/unit-nocgo.log"; bad "CGO_ENABLED=0 go test ./internal/..."; fi
}

build() {
  section "build: release and mock libraries"
  if make -s release >"$LOGS/build.log" 2>&1; then ok "make (build/aws_key_management.so)"; else cat "$LOGS/build.log"; bad "make"; fi
  if make -s mock >>"$LOGS/build.log" 2>&1; then ok "make mock (build/mock/aws_key_management.so)"; else cat "$LOGS/build.log"; bad "make mock"; fi
  if make -s tool >>"$LOGS/build.log" 2>&1 && build/mariadb-aws-keys --help >/dev/null; then ok "make tool (build/mariadb-aws-keys)"; else cat "$LOGS/build.log"; bad "make tool"; fi
  if make -s wrapper >>"$LOGS/build.log" 2>&1 && build/iam-kms-wrapper --help >/dev/null; then ok "make wrapper (build/iam-kms-wrapper)"; else cat "$LOGS/build.log"; bad "make wrapper"; fi
  # The Makefile's LDFLAGS reach the wrapper: --version names this build.
  local wv; wv=$(build/iam-kms-wrapper --version 2>&1)
  if [[ "$wv" == "iam-kms-wrapper version $(cat VERSION) commit $(git rev-parse --short=12 HEAD)"* ]]; then ok "build/iam-kms-wrapper --version names this build: $wv"
  else bad "build/iam-kms-wrapper --version: '$wv'"; fi
  # CMakeLists.txt builds the same library (mock here, so the ABI host
  # can drive it).
  local d; d=$(mktemp -d)
  if cmake -S . -B build/cmake -DAWS_KEY_MANAGEMENT_MOCK=ON >"$LOGS/cmake.log" 2>&1 &&
     cmake --build build/cmake >>"$LOGS/cmake.log" 2>&1 && make -s build/abi-host >>"$LOGS/cmake.log" 2>&1 &&
     build/abi-host build/cmake/aws_key_management.so "$d" >>"$LOGS/cmake.log" 2>&1; then
    ok "cmake build of the mock library passes the ABI host"
  else tail -20 "$LOGS/cmake.log"; bad "cmake build"; fi
  rm -rf "$d"
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

keycache() {
  section "keycache: the C key table by itself under ThreadSanitizer"
  if ! make -s build/keycache-test >"$LOGS/keycache-build.log" 2>&1; then cat "$LOGS/keycache-build.log"; bad "building the key table test"; return; fi
  # Any ThreadSanitizer report stops the test with exit code 66.
  TSAN_OPTIONS="halt_on_error=1 exitcode=66" timeout 300 build/keycache-test >"$LOGS/keycache.log" 2>&1
  local rc=$?
  grep -E '^FAIL' "$LOGS/keycache.log" | sed 's/^/    /'
  if ((rc == 66)); then grep -A20 'WARNING: ThreadSanitizer' "$LOGS/keycache.log" | head -40; bad "ThreadSanitizer reported a data race (see $LOGS/keycache.log)"; return; fi
  local line; line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$LOGS/keycache.log" | tail -1)
  if [ -z "$line" ]; then tail -20 "$LOGS/keycache.log"; bad "key table test did not finish (exit $rc)"; return; fi
  local p f; read -r p _ f _ <<<"${line//,/}"
  add "$p" "$f"
  printf '  %s (key table, TSan)\n' "$line"
  ((rc == 0 || f > 0)) || bad "key table test exited $rc"
}

release() {
  section "release: build/aws_key_management.so installed into a running server as a DBA would"
  if ! make -s release >"$LOGS/release-build.log" 2>&1; then cat "$LOGS/release-build.log"; bad "make"; return; fi
  SRV_DIR="$ROOT/build/test-release" SRV_PLUGIN_DIR="$ROOT/build"
  . "$ROOT/scripts/server.sh"
  . "$ROOT/scripts/kms.sh"
  local log="$SRV_DIR/error.log" out t0
  if ! srv_install; then bad "mariadb-install-db"; return; fi
  if ! kms_start "$ROOT/build/test-release-kms" >"$LOGS/release-kms.log" 2>&1; then cat "$LOGS/release-kms.log"; bad "starting the KMS emulator"; return; fi
  # Debian's mysql user has home /nonexistent: the credentials file is in
  # the datadir, as MariaDB's docs put it, and nothing else is set.
  mkdir -m 700 "$SRV_DIR/data/.aws"
  cp "$KMS_DIR/kms-credentials" "$SRV_DIR/data/.aws/credentials"
  SRV_ENV=(-u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE -u AWS_REGION
    -u AWS_DEFAULT_REGION -u AWS_SHARED_CREDENTIALS_FILE -u AWS_CREDENTIAL_PROFILES_FILE
    HOME=/nonexistent AWS_CONFIG_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true)
  if ! srv_start --loose-aws-key-management-endpoint-url="http://$KMS_ADDR" \
       --loose-aws-key-management-master-key-id="$KMS_ALIAS" \
       --loose-aws-key-management-request-timeout=500; then
    bad "start mariadbd"; kms_stop; return
  fi
  if srv_sql -e "INSTALL SONAME 'aws_key_management'" 2>"$LOGS/release-sql.log"; then ok "INSTALL SONAME 'aws_key_management'"
  else cat "$LOGS/release-sql.log"; bad "INSTALL SONAME"; fi
  out=$(srv_sql -N -e "SELECT CONCAT_WS(',', PLUGIN_STATUS, PLUGIN_TYPE, PLUGIN_MATURITY, PLUGIN_LICENSE) FROM information_schema.PLUGINS WHERE PLUGIN_NAME='aws_key_management'")
  if [ "$out" = "ACTIVE,ENCRYPTION,Stable,GPL" ]; then ok "plugin ACTIVE, ENCRYPTION, Stable, GPL"; else bad "plugin row: '$out'"; fi
  # Which build is loaded: the version and commit the Makefile linked in.
  local build; build="$(cat VERSION) commit $(git rev-parse --short=12 HEAD)"
  out=$(srv_sql -N -e "SELECT PLUGIN_DESCRIPTION FROM information_schema.PLUGINS WHERE PLUGIN_NAME='aws_key_management'")
  if [[ "$out" == "AWS key management plugin (Go) $build"*", built for mariadb-10.11" ]] &&
     grep -q "AWS KMS plugin: starting AWS key management plugin (Go) $build" "$log"; then
    ok "PLUGIN_DESCRIPTION and the error log name this build: $out"
  else bad "PLUGIN_DESCRIPTION '$out', want this build ($build)"; fi
  out=$(srv_sql -N -e "SELECT GROUP_CONCAT(VARIABLE_NAME ORDER BY VARIABLE_NAME) FROM information_schema.GLOBAL_VARIABLES WHERE VARIABLE_NAME LIKE 'AWS\_KEY\_MANAGEMENT\_%'")
  if [ "$out" = "AWS_KEY_MANAGEMENT_ENDPOINT_URL,AWS_KEY_MANAGEMENT_FALLBACK_TO_OLDER_VERSION,AWS_KEY_MANAGEMENT_KEYFILE_DIR,AWS_KEY_MANAGEMENT_KEY_SPEC,AWS_KEY_MANAGEMENT_LOG_LEVEL,AWS_KEY_MANAGEMENT_MASTER_KEY_ID,AWS_KEY_MANAGEMENT_RECOVERY_BUNDLE,AWS_KEY_MANAGEMENT_RECOVERY_IDENTITY,AWS_KEY_MANAGEMENT_REGION,AWS_KEY_MANAGEMENT_REQUEST_TIMEOUT,AWS_KEY_MANAGEMENT_ROTATE_KEY" ]; then
    ok "release build has upstream's variables plus keyfile_dir, fallback_to_older_version and the recovery ones, and no mock variables"
  else bad "release variables: $out"; fi
  out=$(srv_sql -N -e "SELECT @@aws_key_management_endpoint_url, @@aws_key_management_request_timeout")
  if [ "$out" = "$(printf 'http://%s\t500' "$KMS_ADDR")" ]; then ok "command-line values reach the plugin installed later"; else bad "values: '$out'"; fi
  if grep -q "KMS client for region $KMS_REGION at http://$KMS_ADDR.*credentials file $SRV_DIR/data/.aws/credentials (from datadir)" "$log"; then
    ok "credentials and region from <datadir>/.aws/credentials (HOME=/nonexistent)"
  else grep "AWS KMS plugin" "$log" | tail -3; bad "credentials file not found in the datadir"; fi
  if grep -q "\[Warning\] .*AWS KMS plugin: using endpoint http://$KMS_ADDR instead of the region's default (aws_key_management_endpoint_url): whoever answers there can hand out keys; with http:// keys cross the connection unencrypted" "$log"; then
    ok "the endpoint override is a warning in the error log"
  else grep "AWS KMS plugin" "$log" | tail -3; bad "no warning about the endpoint override"; fi
  if srv_sql -e "CREATE DATABASE d; CREATE TABLE d.t (a INT) ENCRYPTED=YES ENCRYPTION_KEY_ID=3; INSERT INTO d.t VALUES (1)" 2>"$LOGS/release-sql.log" &&
     [ -f "$SRV_DIR/data/aws-kms-key.3.1" ]; then
    ok "a new key from KMS: aws-kms-key.3.1, table created"
  else cat "$LOGS/release-sql.log"; bad "creating a key through KMS"; fi

  kms_stop
  if srv_sql -e "INSERT INTO d.t VALUES (2)" 2>"$LOGS/release-sql.log"; then ok "KMS down: the loaded key still serves writes"
  else cat "$LOGS/release-sql.log"; bad "KMS down: writes to a table with a loaded key failed"; fi
  t0=$SECONDS
  if srv_sql -e "CREATE TABLE d.u (a INT) ENCRYPTED=YES ENCRYPTION_KEY_ID=4" 2>"$LOGS/release-sql.log"; then
    bad "KMS down: CREATE TABLE with a new key succeeded"
  elif grep -q "AWS KMS plugin : KMS Client API 'GenerateDataKeyWithoutPlaintext' failed : RequestError" "$log" &&
       [ ! -e "$SRV_DIR/data/aws-kms-key.4.1" ] && ((SECONDS - t0 < 30)); then
    ok "KMS down: a new key fails in $((SECONDS - t0)) s (bounded), error logged in upstream's format, no key file"
  else cat "$LOGS/release-sql.log"; grep "AWS KMS" "$log" | tail -3; bad "KMS down: new key"; fi
  if srv_sql -e "SELECT COUNT(*) FROM d.t" >/dev/null; then ok "server still serving"; else bad "server not serving after KMS failure"; fi
  if srv_sql -e "UNINSTALL SONAME 'aws_key_management'" && srv_sql -e "INSTALL SONAME 'aws_key_management'"; then
    ok "UNINSTALL SONAME then INSTALL SONAME again"
  else bad "UNINSTALL/INSTALL cycle"; fi
  if srv_stop; then ok "clean shutdown with the plugin loaded"; else bad "shutdown exit status $?"; fi
  SRV_ENV=()
  # (grep -c reads its whole input: with pipefail, an early exit of grep -q
  # would make the first grep fail on SIGPIPE and hide a match.)
  if [ "$(grep -E "\[ERROR\]" "$log" | grep -vc "AWS KMS plugin : KMS Client API")" != 0 ]; then
    grep -E "\[ERROR\]" "$log" | grep -v "AWS KMS plugin : KMS Client API" | head -5; bad "unexpected [ERROR] lines in the error log"
  else ok "no unexpected [ERROR] lines in the error log"; fi
}

# run_mtr SUITE PLUGIN_DIR PARALLEL: runs one suite of mysql-test/ and adds
# its pass/fail/skip counts; a skip counts as a failure. MTR_ENV holds
# env(1) arguments for mtr and the servers it starts.
MTR_ENV=()
run_mtr() {
  local suite=$1 plugin_dir=$2 parallel=$3
  local mtrdir=/usr/share/mysql/mysql-test
  [ -x "$mtrdir/mtr" ] || { bad "mysql-test-run not installed ($mtrdir/mtr); run scripts/deps.sh"; return; }
  local expected; expected=$(ls "mysql-test/$suite"/t/*.test | wc -l)
  # MTR_RECORD=1 rewrites the result files (review them before committing);
  # mtr records only tests named on the command line.
  local tests=${MTR_TESTS:-}
  if [ -n "${MTR_RECORD:-}" ] && [ -z "$tests" ]; then
    tests=$(cd "mysql-test/$suite/t" && ls *.test | sed 's/\.test$//' | tr '\n' ' ')
  fi
  [ -z "${MTR_TESTS:-}" ] || expected=$(wc -w <<<"$MTR_TESTS")
  local vardir="$ROOT/build/mtr-var-$suite" log="$LOGS/mtr-$suite.log"
  rm -rf "$vardir"
  # mtr splits --suite at '-' (so ".../mysql-test/..." breaks): give it a
  # path without one.
  local link; link=$(mktemp -d /tmp/akmsuiteXXXXXX)
  ln -s "$ROOT/mysql-test/$suite" "$link/$suite"
  (cd "$mtrdir" && env "${MTR_ENV[@]}" AWS_KEY_MANAGEMENT_SO=aws_key_management.so \
    timeout 1800 perl mtr --vardir="$vardir" --suite="$link/$suite" \
      --mysqld=--plugin-dir="$plugin_dir" --parallel="$parallel" --force --retry=0 --max-test-fail=0 \
      --testcase-timeout=10 --suite-timeout=40 ${MTR_RECORD:+--record} $tests) >"$log" 2>&1
  local rc=$?
  rm -rf "$link"
  local p f s
  p=$(grep -cE '\[ pass \]' "$log")
  f=$(grep -cE '\[ fail \]' "$log")
  s=$(grep -cE '\[ skipped \]' "$log")
  grep -E '\[ (pass|fail|skipped) \]' "$log" | sed 's/^/    /'
  add "$p" $((f + s))
  printf '  %s: %d passed, %d failed, %d skipped (skips count as failures), %d test files\n' "$suite" "$p" "$f" "$s" "$expected"
  if ((p != expected)); then
    grep -E -A30 '\[ fail \]' "$log" | head -150
    if ((f + s == 0)); then tail -20 "$log"; bad "$suite: mtr ran $p of $expected tests (exit $rc)"; fi
  elif ((rc != 0)); then bad "$suite: mtr exited $rc"
  fi
}

mtr() {
  section "mtr: the aws_key_management suite in a real mariadbd (mock build)"
  if ! make -s mock >"$LOGS/mtr-build.log" 2>&1; then cat "$LOGS/mtr-build.log"; bad "make mock"; return; fi
  run_mtr aws_key_management "$ROOT/build/mock" 2
}

kms() {
  section "kms: release build against the loopback KMS emulator in a real mariadbd"
  if ! make -s release >"$LOGS/kms-build.log" 2>&1; then cat "$LOGS/kms-build.log"; bad "make"; return; fi
  command -v aws >/dev/null || { bad "the AWS CLI (aws) is not installed; run scripts/deps.sh"; return; }
  . "$ROOT/scripts/kms.sh"
  if ! kms_start "$ROOT/build/kms" >>"$LOGS/kms-build.log" 2>&1; then cat "$LOGS/kms-build.log"; bad "starting the KMS emulator"; return; fi
  # The server sees only the credentials file, as a DBA following the
  # MariaDB docs would set it up; the region is in that file.
  mapfile -t MTR_ENV < <(kms_env)
  MTR_ENV+=(AKM_KMS_ENDPOINT="http://$KMS_ADDR" AKM_KMS_KEY_ID="$KMS_KEY_ID" AKM_KMS_ALIAS="$KMS_ALIAS"
    AKM_KMS_ACCESS_KEY="$KMS_ACCESS_KEY" AKM_KMS_SECRET="$KMS_SECRET"
    AKM_AWS="env AWS_SHARED_CREDENTIALS_FILE=$KMS_DIR/kms-credentials AWS_CONFIG_FILE=/dev/null AWS_PAGER= timeout 60 aws --endpoint-url http://$KMS_ADDR --region $KMS_REGION")
  # One test at a time: tests change the emulator's shared state.
  run_mtr aws_key_management_kms "$ROOT/build" 1
  MTR_ENV=()
  kms_stop
}

# run_script LABEL SCRIPT: runs a script that prints "ok"/"FAIL" lines and
# ends with "N passed, N failed", and adds its counts.
run_script() {
  local label=$1 script=$2 log="$LOGS/$(basename "$(dirname "$2")").log"
  bash "$script" >"$log" 2>&1
  local rc=$?
  grep -E '^FAIL' "$log" | sed 's/^/    /'
  local item
  while IFS= read -r item; do FAILED_ITEMS+=("$label: ${item#FAIL - }"); done < <(grep -E '^FAIL' "$log")
  local line; line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1)
  if [ -z "$line" ]; then tail -20 "$log"; bad "$label did not finish (exit $rc)"; return; fi
  local p f; read -r p _ f _ <<<"${line//,/}"
  add "$p" "$f"
  printf '  %s (%s)\n' "$line" "$label"
  ((rc == 0 || f > 0)) || bad "$label exited $rc"
}

kmscli() {
  section "kmscli: the KMS emulator checked with an independent client (the AWS CLI)"
  run_script "AWS CLI against the emulator" tests/kmscli/run.sh
}

tools() {
  section "tools: mariadb-aws-keys against a real mariadbd (release build, loopback KMS)"
  if ! make -s release tool >"$LOGS/tools-build.log" 2>&1; then cat "$LOGS/tools-build.log"; bad "make release tool"; return; fi
  command -v aws >/dev/null || { bad "the AWS CLI (aws) is not installed; run scripts/deps.sh"; return; }
  run_script "operator tool against a real server" tests/tools/run.sh
}

crash() {
  section "crash: kill -9 during rotations, full and read-only key directories (mock build)"
  if ! make -s mock >"$LOGS/crash-build.log" 2>&1; then cat "$LOGS/crash-build.log"; bad "make mock"; return; fi
  run_script "crash and disk faults" tests/crash/run.sh
}

backup() {
  section "backup: mariadb-backup and restores, release build against the loopback KMS"
  run_script "backups and restores" tests/backup/run.sh
}

creds() {
  section "creds: planted and readable credentials files, LOAD_FILE, systemd drop-ins (release build, real mariadbd)"
  if ! make -s release tool wrapper >"$LOGS/creds-build.log" 2>&1; then cat "$LOGS/creds-build.log"; bad "make release tool wrapper"; return; fi
  run_script "credentials files against a real server" tests/creds/run.sh
}

# (Not named install: that would shadow install(1) in this shell.)
install_level() {
  section "install: the README's install, configure, start, check and migration commands, as written, on Debian's server (private copies of its directories)"
  run_script "README install and migration steps" tests/install/run.sh
}

deb() {
  section "deb: make deb, lintian, dpkg -i into Debian's MariaDB, the server started by its init script, dpkg -r/-P"
  run_script "the Debian package" tests/deb/run.sh
}

mfa() {
  section "mfa: iam-kms-wrapper, session expiry and enable/disable-key with MFA, release build in a real mariadbd"
  if ! make -s release tool wrapper >"$LOGS/mfa-build.log" 2>&1; then cat "$LOGS/mfa-build.log"; bad "make release tool wrapper"; return; fi
  run_script "MFA start wrapper and key enable/disable" tests/mfa/run.sh
}

suite() {
  section "suite: MariaDB's own encryption mtr suite, the mock build in file_key_management's place"
  if ! make -s mock >"$LOGS/suite-build.log" 2>&1; then cat "$LOGS/suite-build.log"; bad "make mock"; return; fi
  run_script "stock encryption suite" tests/suite/run.sh
  # Passes, failures, mtr skips (not counted) and exclusions.
  grep -E '^# encryption suite:' "$LOGS/suite.log" | sed 's/^# /  /'
}

repl() {
  section "repl: a primary and a replica with encrypted binary and relay logs (release build, loopback KMS)"
  run_script "replication" tests/repl/run.sh
}

galera() {
  section "galera: a 3-node Galera cluster, SST by mariadb-backup, IST (release build, loopback KMS)"
  run_script "Galera cluster" tests/galera/run.sh
}

for l in "${levels[@]}"; do
  if [[ " ${ALL_LEVELS[*]} " != *" $l "* ]]; then
    echo "unknown level $l (want ${ALL_LEVELS[*]})"; exit 2
  fi
  case "$l" in
    install) install_level ;;
    *) "$l" ;;
  esac
done

echo
if ((FAIL)); then printf 'failed: %s\n' "${FAILED_ITEMS[@]}"; fi
echo "logs: $LOGS"
echo "$PASS passed, $FAIL failed"
((FAIL == 0))
