#!/usr/bin/env bash
# MariaDB's own `encryption` mtr suite (Debian's mariadb-test) with this
# plugin's mock build (build/mock/aws_key_management.so, made with `make
# mock`) as the key plugin, in the real mariadbd.
#
# The stock tests are not edited. The suite is copied at test time to
# build/suite/mysql-test/suite/encryption (the rest of that mysql-test tree
# links to the stock one) and only the loading of the key plugin is
# changed there:
#   - lines of *.opt and *.combinations that load or configure
#     file_key_management or example_key_management are dropped;
#   - mysql-test/encryption_suite/ is laid over the copy: suite.opt loads
#     aws_key_management (mock ON) for every test, and
#     include/have_{file,example}_key_management_plugin.{inc,opt} check
#     that aws_key_management is ACTIVE (the stock cbc/ctr combinations are
#     file_key_management's algorithms: this plugin leaves the cipher to
#     the server, so there is one combination).
# Key ids: file_key_management reads ids 1, 2, 33, ... from a key file;
# this plugin makes a key for any id on first use (version 1, as the key
# file has), so the ids map to themselves.
#
# mysql-test/encryption-suite.skip lists the tests left out, each with the
# reason (mtr --skip-test-list: they show as "[ disabled ]"). Every other
# test must pass: "ok - encryption.NAME 'COMBINATION'" per pass, "FAIL - "
# per failure; an mtr skip (a feature this server lacks, e.g. have_debug)
# is a "# skipped" line, counted neither as a pass nor as a failure. Then
# the by-design exclusions ("(b)") are run without the list: each must fail
# where it expects a missing key 3. Last line: "N passed, N failed". The
# run is bounded (2700 s).
# The suite's one big test (create_or_replace_big) takes seconds here, so
# --big-test is on. AKM_SUITE_TESTS="name ..." runs only those tests;
# AKM_SUITE_PARALLEL sets mtr's --parallel (2 by default).
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bounded 2700 "$@"

STOCK=/usr/share/mysql/mysql-test
SKIP="$ROOT/mysql-test/encryption-suite.skip"
OVERLAY="$ROOT/mysql-test/encryption_suite"
SO="$ROOT/build/mock/aws_key_management.so"
W="$ROOT/build/suite"
LOG="$W/mtr.log"
trap 'fail "run interrupted (signal or the 2700 s bound)"; finish' INT TERM

[ -d "$STOCK/suite/encryption" ] || { fail "no stock encryption suite in $STOCK/suite/encryption (install mariadb-test: scripts/deps.sh)"; finish; }
[ -f "$SO" ] || { fail "no $SO (run: make mock)"; finish; }
[ -f "$SKIP" ] || { fail "no exclusion list $SKIP"; finish; }

# The server's plugin directory: the stock plugins some tests load stay
# reachable next to the mock library.
STOCK_PLUGINS=$(mariadbd --no-defaults --verbose --help 2>/dev/null | awk '$1 == "plugin-dir" { print $2 }')
[ -d "$STOCK_PLUGINS" ] || { fail "cannot find the server's plugin-dir (got '$STOCK_PLUGINS')"; finish; }

# One run at a time: a second one would remove this one's copy.
mkdir -p "$ROOT/build"
exec 9>"$ROOT/build/suite.lock"
flock -n 9 || { fail "another run of tests/suite/run.sh holds $ROOT/build/suite.lock"; finish; }
rm -rf "$W"
mkdir -p "$W/plugins"
ln -s "$STOCK_PLUGINS"/* "$W/plugins/"
ln -sf "$SO" "$W/plugins/aws_key_management.so"

# A mysql-test tree of links to the stock one in which suite/encryption is
# the copy: mtr runs there and finds the suite by its name (so test names
# carry no path), and the stock tests' relative paths (../../innodb/...,
# suite/encryption/include/...) resolve as in the stock tree.
# mtr takes its base directory from the tree's parent: it finds the
# programs, charsets and plugins of the installed server through links.
T="$W/mysql-test"
mkdir -p "$T/suite"
for d in bin sbin lib share; do ln -s "/usr/$d" "$W/$d"; done
for f in "$STOCK"/*; do [ "$(basename "$f")" = suite ] || ln -s "$f" "$T/"; done
for f in "$STOCK"/suite/*; do [ "$(basename "$f")" = encryption ] || ln -s "$f" "$T/suite/"; done
cp -r "$STOCK/suite/encryption" "$T/suite/encryption"
C="$T/suite/encryption"
sed -i -E '/(file|example)[-_]key[-_]management/Id' "$C"/t/*.opt "$C"/include/*.opt "$C"/include/*.combinations
rm "$C/include/have_file_key_management_plugin.combinations"
cp -r "$OVERLAY"/. "$C/"
left=$(grep -rliE '(file|example)[-_]key[-_]management' "$C" --include='*.opt' --include='*.combinations' --include='*.cnf')
[ -z "$left" ] || fail "the copy still loads another key plugin: $left"

# Every exclusion names a stock test, and README lists it with its reason.
while read -r name _; do
  [ -f "$STOCK/suite/encryption/t/$name.test" ] || fail "$SKIP lists $name, which is not a stock test"
  grep -qF "\`$name\`" "$ROOT/README.md" || fail "$SKIP lists $name, which README.md's \"MariaDB's encryption suite\" does not"
done < <(grep -vE '^\s*(#|$)' "$SKIP")

note "mtr log: $LOG"
# shellcheck disable=SC2086
(cd "$T" && AWS_KEY_MANAGEMENT_SO=aws_key_management.so \
  timeout 2500 perl mtr --vardir="$W/var" --suite=encryption \
    --mysqld=--plugin-dir="$W/plugins" --parallel="${AKM_SUITE_PARALLEL:-2}" --force --retry=0 \
    --max-test-fail=0 --max-save-datadir=60 --testcase-timeout=15 --suite-timeout=40 --skip-test-list="$SKIP" \
    --big-test ${AKM_SUITE_TESTS:-}) >"$LOG" 2>&1
rc=$?

# Result lines: "encryption.NAME 'COMBINATION'  w1 [ STATUS ]  ...".
passed=0 failed=0 skipped=0 excluded=0
while IFS=$'\t' read -r test status rest; do
  case $status in
    pass) passed=$((passed + 1)); ok "$test" ;;
    fail) failed=$((failed + 1)); fail "$test" ;;
    skipped) skipped=$((skipped + 1)); note "skipped (not counted): $test: $rest" ;;
    disabled) excluded=$((excluded + 1)); note "excluded: $test: $rest" ;;
  esac
done < <(perl -ne 'print "$1\t$2\t$3\n" if /^(encryption\.\S+(?: \x27[^\x27]*\x27)?)\s+(?:w\d+\s+)?\[ (pass|fail|skipped|disabled) \]\s*(.*)$/' "$LOG")
note "encryption suite: $passed passed, $failed failed, $skipped skipped (not counted), $excluded excluded (mysql-test/encryption-suite.skip); mtr exit $rc"
# mtr's last line counts the tests that ran ("Completed: All N tests were
# successful." or "Completed: Failed F/N tests, ..."): a run cut short
# (a crash of mtr, the time bound) must not pass with tests missing.
done_line=$(grep -E '^Completed: ' "$LOG" | tail -1)
total=$(sed -nE 's/^Completed: (All ([0-9]+) tests|Failed [0-9]+\/([0-9]+) tests).*/\2\3/p' <<<"$done_line")
if [ -z "$total" ]; then
  fail "mtr did not print its summary (exit $rc, no 'Completed:' line): some tests may not have run"
elif ((total != passed + failed)); then
  fail "mtr counted $total tests, the result lines $((passed + failed))"
fi
if ((failed > 0)); then
  grep -E -A25 '\[ fail \]' "$LOG" | head -200 | sed 's/^/# /'
elif ((rc != 0)); then
  tail -30 "$LOG" | sed 's/^/# /'
  fail "mtr exited $rc with no failed test (timeout, crash or a setup error)"
fi
((passed > 0)) || fail "no stock test passed"
# The servers' error logs (var/log with one worker, var/N/log with more):
# the keys came from this plugin, and no other key plugin was loaded.
errlogs() { cat "$W"/var/log/mysqld.*.err "$W"/var/[0-9]*/log/mysqld.*.err 2>/dev/null; }
ids=$(errlogs | sed -nE 's/.*AWS KMS plugin: generated encrypted datakey for key id=([0-9]+),.*/\1/p' | sort -nu | tr '\n' ' ')
if [ -n "$ids" ]; then ok "the servers made their keys through aws_key_management (key ids: ${ids% })"
else fail "no 'generated encrypted datakey' line in the servers' error logs ($W/var)"; fi
other=$(errlogs | grep -E "(file|example)_key_management" | head -3)
if [ -z "$other" ]; then ok "no server loaded file_key_management or example_key_management"
else fail "another key plugin in the error logs: $other"; fi

# The by-design exclusions (b) stay true: run without the exclusion list,
# each must fail exactly where file_key_management refuses key 3 and this
# plugin creates it.
bydesign=$(sed -nE 's/^([^ #]+) : \(b\).*/\1/p' "$SKIP" | tr '\n' ' ')
if [ -n "$bydesign" ]; then
  # shellcheck disable=SC2086
  (cd "$T" && AWS_KEY_MANAGEMENT_SO=aws_key_management.so \
    timeout 600 perl mtr --vardir="$W/var-bydesign" --suite=encryption \
      --mysqld=--plugin-dir="$W/plugins" --parallel=1 --force --retry=0 --max-test-fail=0 \
      --testcase-timeout=5 --suite-timeout=10 $bydesign) >"$W/mtr-bydesign.log" 2>&1
  for name in $bydesign; do
    # The failure report follows the test's "[ fail ]" line.
    msg=$(awk -v t="encryption.$name " 'index($0, t) == 1 && /\[ fail \]/ { f = 1; next } f && /^mysqltest: / { print; exit }' "$W/mtr-bydesign.log")
    if grep -qE "ENCRYPTION_KEY_ID=3' succeeded - should have failed with error ER_CANT_CREATE_TABLE" -i <<<"$msg"; then
      ok "excluded by design, checked: $name fails where it expects key 3 to be missing (this plugin creates it)"
    else
      fail "$name is excluded as a by-design difference (key 3), but without the exclusion it gives: ${msg:-no failure} ($W/mtr-bydesign.log)"
    fi
  done
fi
finish
