#!/usr/bin/env bash
# Crash safety and full / read-only disks, in a real mariadbd with the mock
# build (build/mock/aws_key_management.so, made here with `make mock`).
#
#   1. Full or read-only key directory during rotation: keyfile_dir is a
#      small tmpfs mounted here (root), remounted read-only, then filled up.
#      SET GLOBAL aws_key_management_rotate_key=N must give a clear warning
#      (client) and error (log, with the reason), write no file, and leave
#      the previous version in use: tables still read and write, and
#      INNODB_TABLESPACES_ENCRYPTION keeps the old version even with
#      encryption threads running. Without mount(8), a chattr +i directory
#      stands in for the read-only disk and the full-disk check FAILS (it is
#      never skipped). AKM_CRASH_NO_MOUNT=1 forces that path.
#   2. kill -9 while keys rotate: 8 times, a client rotates every key and
#      inserts rows (the mock's GenerateDataKeyWithoutPlaintext delayed by
#      20 ms to widen the window), the server is killed after 50..400 ms,
#      the key files are checked (none empty or partial, no gaps), and the
#      server must restart: every table reads back, nothing fails to
#      unwrap, temporary files are gone and each one left is logged.
#
# Prints "ok - ..." / "FAIL - ..." per check and one last line
# "N passed, N failed"; exits non-zero on any failure. Servers listen on
# 127.0.0.1 only and everything lives under a mktemp directory; a trap
# stops the servers and unmounts. The whole run is bounded (280 s).
# AKM_CRASH_KEEP=1 keeps the work directory (logs, datadirs) for a look.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
# TERM at 280 s runs the trap (servers, mount); KILL only if that hangs.
bounded 280 60 "$@"

WORK=$(mktemp -d /tmp/akm-crash.XXXXXX)
MOUNTED="" IMMUTABLE="" CLIENT_PID=""
SRV_DIR="$WORK/srv-disk" SRV_PLUGIN_DIR="$WORK/plugin"
. "$ROOT/scripts/server.sh"

cleanup() {
  trap - EXIT INT TERM
  if [ -n "$CLIENT_PID" ]; then kill "$CLIENT_PID" 2>/dev/null; wait "$CLIENT_PID" 2>/dev/null; fi
  if [ -n "$srv_pid" ]; then kill -9 "$srv_pid" 2>/dev/null; wait "$srv_pid" 2>/dev/null; srv_pid=""; fi
  [ -n "$IMMUTABLE" ] && chattr -i "$IMMUTABLE" 2>/dev/null
  if [ -n "$MOUNTED" ]; then umount "$MOUNTED" 2>/dev/null || umount -l "$MOUNTED" 2>/dev/null; fi
  if [ -n "$MOUNTED" ] && mountpoint -q "$MOUNTED" 2>/dev/null; then
    echo "# WARNING: could not unmount $MOUNTED; $WORK left in place"
  elif [ -n "${AKM_CRASH_KEEP:-}" ]; then
    echo "# AKM_CRASH_KEEP: logs and datadirs left in $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'echo "# interrupted or over time"; fail "run interrupted (signal or the 280 s bound)"; echo "$PASSED passed, $FAILED failed"; exit 1' INT TERM

# Away from the ports the other test levels start at (23306).
SRV_PORT=$(srv_free_port 24306) || { fail "no free port"; echo "$PASSED passed, $FAILED failed"; exit 1; }

# q SQL...: one bounded client call, tab-separated, no column names.
q() { timeout 30 mariadb --no-defaults -S "$SRV_DIR/mysqld.sock" -uroot -N -B "$@"; }
# log_mark / log_since MARK: the error log from a point on.
log_mark() { wc -l <"$SRV_DIR/error.log" 2>/dev/null || echo 0; }
log_since() { tail -n +"$(($1 + 1))" "$SRV_DIR/error.log"; }

MASTER=crash-master-key
START_OPTS=(--plugin-load-add=aws_key_management --aws-key-management-mock=ON
  --aws-key-management-master-key-id=$MASTER --aws-key-management-request-timeout=5000
  --innodb-encrypt-tables=ON --innodb-encrypt-log=ON --encrypt-tmp-files=ON
  --innodb-encryption-threads=2 --innodb-encryption-rotate-key-age=1
  --innodb-buffer-pool-size=64M)

# ---------------------------------------------------------------- build
# AKM_CRASH_SO=path tests another mock build (e.g. a deliberately broken
# one, to see the checks fail) instead of making build/mock.
mkdir -p "$SRV_PLUGIN_DIR"
if [ -n "${AKM_CRASH_SO:-}" ]; then
  if cp "$AKM_CRASH_SO" "$SRV_PLUGIN_DIR/aws_key_management.so"; then ok "using $AKM_CRASH_SO"
  else fail "AKM_CRASH_SO=$AKM_CRASH_SO cannot be copied"; finish; fi
else
  if ! timeout 300 make -s mock >"$WORK/build.log" 2>&1; then
    tail -20 "$WORK/build.log"
    fail "make mock"
    finish
  fi
  # A private copy: other builds of build/mock may happen meanwhile.
  cp build/mock/aws_key_management.so "$SRV_PLUGIN_DIR/"
  ok "make mock (build/mock/aws_key_management.so)"
fi

# ---------------------------------------------- 1. full / read-only disk
# expect_rotation_refused WHAT REASON_REGEX: rotate key 5 and check the
# warning, the logged reason, that no file appeared and that version 1
# stays in use.
expect_rotation_refused() {
  local what=$1 reason=$2 mark out files before
  before=$(cd "$KEYDIR" && ls -A | grep -v '^filler$' | tr '\n' ' ')
  mark=$(log_mark)
  out=$(q -e "SET GLOBAL aws_key_management_rotate_key = 5; SHOW WARNINGS" 2>&1)
  if grep -q "Warning.1105.Could not generate datakey for key id= 5, ver= 1" <<<"$out"; then
    ok "$what: SET GLOBAL aws_key_management_rotate_key=5 warns 'Could not generate datakey for key id= 5, ver= 1'"
  else
    fail "$what: client got: $out"
  fi
  if grep -qE "\[ERROR\] .*AWS KMS plugin: Can't create key file: creating $KEYDIR/aws-kms-key\.5\.2: .*$reason" <(log_since "$mark"); then
    ok "$what: the error log names the file and the reason: $(log_since "$mark" | grep -o "Can't create key file: .*" | head -1)"
  else
    log_since "$mark" | sed 's/^/#   /'
    fail "$what: no error naming aws-kms-key.5.2 and '$reason' in the log"
  fi
  files=$(cd "$KEYDIR" && ls -A | grep -v '^filler$' | tr '\n' ' ')
  if [ "$files" = "$before" ] && [[ " $files" == *" aws-kms-key.5.1 "* ]]; then
    ok "$what: no new file and no temporary file in the key directory (still: $files)"
  else
    fail "$what: key directory held '$before', now '$files'"
  fi
  # With encryption threads running and rotate_key_age=1, InnoDB would
  # move to a version 2 within a second or two; give it time.
  sleep 3
  out=$(q -e "INSERT INTO d.t1 (b) VALUES ('$what'); SELECT COUNT(*) FROM d.t1;
    SELECT CONCAT(MIN_KEY_VERSION, '/', CURRENT_KEY_VERSION) FROM information_schema.INNODB_TABLESPACES_ENCRYPTION WHERE NAME = 'd/t1'" 2>&1)
  ROWS=$((ROWS + 1))
  if [ "$out" = "$(printf '%s\n%s' "$ROWS" "1/1")" ]; then
    ok "$what: table writable and readable ($ROWS rows); INNODB_TABLESPACES_ENCRYPTION still at key 5 version 1"
  else
    fail "$what: after the refused rotation: '$out' (want $ROWS rows and 1/1)"
  fi
}

disk_checks() {
  KEYDIR="$WORK/keys"
  mkdir -p "$KEYDIR"
  local mode=""
  [ -z "${AKM_CRASH_NO_MOUNT:-}" ] || echo "mount not tried: AKM_CRASH_NO_MOUNT=1" >"$WORK/mount.err"
  if [ -z "${AKM_CRASH_NO_MOUNT:-}" ] && mount -t tmpfs -o size=256k,mode=0700 tmpfs "$KEYDIR" 2>"$WORK/mount.err"; then
    MOUNTED=$KEYDIR mode=tmpfs
    ok "mounted a 256 KiB tmpfs as keyfile_dir ($KEYDIR)"
  elif chattr -i "$KEYDIR" 2>"$WORK/mount.err"; then
    mode=chattr
    note "mount failed ($(cat "$WORK/mount.err")); using chattr +i on $KEYDIR for the read-only check"
  else
    fail "neither mount -t tmpfs nor chattr works here ($(cat "$WORK/mount.err")): cannot test a full or read-only key directory"
    return
  fi
  if ! srv_install; then fail "mariadb-install-db"; return; fi
  if ! srv_start "${START_OPTS[@]}" --aws-key-management-keyfile-dir="$KEYDIR"; then
    fail "start mariadbd with keyfile_dir=$KEYDIR"
    return
  fi
  if q -e "CREATE DATABASE d; CREATE TABLE d.t1 (a INT AUTO_INCREMENT PRIMARY KEY, b VARCHAR(200)) ENGINE=InnoDB ENCRYPTED=YES ENCRYPTION_KEY_ID=5;
      INSERT INTO d.t1 (b) VALUES ('one'), ('two')" && [ -s "$KEYDIR/aws-kms-key.5.1" ]; then
    ok "encrypted table with key 5; $KEYDIR/aws-kms-key.5.1 written"
  else
    fail "creating the table with key 5"
    return
  fi
  ROWS=2

  case $mode in
    tmpfs)
      if mount -o remount,ro "$KEYDIR"; then
        ok "key directory remounted read-only"
        expect_rotation_refused "read-only disk" "read-only file system"
        local out
        out=$(q -e "CREATE TABLE d.t9 (a INT) ENGINE=InnoDB ENCRYPTED=YES ENCRYPTION_KEY_ID=9" 2>&1)
        if grep -q "ERROR 1005" <<<"$out" && [ ! -e "$KEYDIR/aws-kms-key.9.1" ]; then
          ok "read-only disk: a table with a new key fails cleanly (ER_CANT_CREATE_TABLE), no file"
        else fail "read-only disk: new key: '$out'"; fi
        mount -o remount,rw "$KEYDIR" || fail "remount read-write"
      else fail "remount read-only failed"; fi

      # Fill the file system: no page is left for a key file.
      dd if=/dev/zero of="$KEYDIR/filler" bs=4096 >/dev/null 2>&1
      if ! echo x 2>/dev/null >"$KEYDIR/probe"; then
        rm -f "$KEYDIR/probe"
        ok "key directory full ($(df -k --output=avail "$KEYDIR" | tail -1 | tr -d ' ') KiB free)"
        expect_rotation_refused "full disk" "no space left on device"
      else
        rm -f "$KEYDIR/probe"
        fail "could not fill the tmpfs"
      fi
      rm -f "$KEYDIR/filler"
      ;;
    chattr)
      if chattr +i "$KEYDIR"; then
        IMMUTABLE=$KEYDIR
        ok "key directory made immutable (chattr +i)"
        expect_rotation_refused "immutable directory" "operation not permitted"
        chattr -i "$KEYDIR"
        IMMUTABLE=""
      else fail "chattr +i $KEYDIR failed"; fi
      fail "full disk: not tested: mount -t tmpfs is not available here ($(cat "$WORK/mount.err"))"
      ;;
  esac

  # Positive control: with space again the same rotation works and InnoDB
  # moves to the new version (so the checks above could see a change).
  local mark out i
  mark=$(log_mark)
  out=$(q -e "SET GLOBAL aws_key_management_rotate_key = 5; SHOW WARNINGS" 2>&1)
  if [ -z "$out" ] && [ -s "$KEYDIR/aws-kms-key.5.2" ] &&
     grep -q "generated encrypted datakey for key id=5, version=2" <(log_since "$mark"); then
    ok "disk usable again: rotation writes aws-kms-key.5.2"
  else fail "rotation after the disk recovered: '$out'"; fi
  for i in $(seq 1 60); do
    out=$(q -e "SELECT CURRENT_KEY_VERSION FROM information_schema.INNODB_TABLESPACES_ENCRYPTION WHERE NAME = 'd/t1'")
    [ "$out" = 2 ] && break
    sleep 0.5
  done
  if [ "$out" = 2 ] && [ "$(q -e 'SELECT COUNT(*) FROM d.t1')" = "$ROWS" ]; then
    ok "control: InnoDB re-encrypts d/t1 with key 5 version 2 (within $((i * 500)) ms); all $ROWS rows read"
  else fail "control: CURRENT_KEY_VERSION '$out' after 30 s"; fi

  if srv_stop; then ok "clean shutdown"; else fail "shutdown exit status $?"; fi
  if [ -n "$MOUNTED" ]; then
    if umount "$KEYDIR"; then MOUNTED=""; else fail "umount $KEYDIR"; fi
  fi
}

# --------------------------------------------------- 2. kill -9 loop
ITERATIONS=8
TABLES="t1 t2 t3"

# check_keyfiles WHEN: key files in the datadir: none empty, all as large
# as a complete mock blob, versions of each key 1..N without gaps.
check_keyfiles() {
  local when=$1 out
  out=$(cd "$SRV_DIR/data" && BLOB=$BLOB_SIZE perl -e '
    my (%max, %n, @bad, $count);
    for my $f (glob("aws-kms-key.*")) {
      next unless $f =~ /^aws-kms-key\.(\d+)\.(\d+)$/;
      $count++;
      my ($id, $v) = ($1, $2);
      my $s = -s $f;
      push @bad, "$f has " . ($s // 0) . " bytes" if !-f $f || $s != $ENV{BLOB};
      $max{$id} = $v if $v > ($max{$id} // 0);
      $n{$id}++;
    }
    for my $id (sort keys %max) { push @bad, "key $id: $n{$id} files, latest version $max{$id}" if $n{$id} != $max{$id}; }
    print @bad ? join("; ", @bad) : "$count", "\n";')
  if [[ "$out" =~ ^[0-9]+$ ]]; then
    KEYFILES=$out
    ok "$when: $out key files, none empty or partial (all $BLOB_SIZE bytes), versions without gaps"
  else
    fail "$when: $out"
  fi
}

kill_loop() {
  SRV_DIR="$WORK/srv-kill"
  if ! srv_install; then fail "mariadb-install-db"; return; fi
  if ! srv_start "${START_OPTS[@]}"; then fail "start mariadbd (keys in the datadir)"; return; fi
  local t id=1 sql=""
  for t in $TABLES; do
    sql+="CREATE TABLE d.$t (a INT AUTO_INCREMENT PRIMARY KEY, b VARCHAR(200)) ENGINE=InnoDB ENCRYPTED=YES ENCRYPTION_KEY_ID=$id; INSERT INTO d.$t (b) VALUES ('start');"
    id=$((id + 1))
  done
  if q -e "CREATE DATABASE d; $sql"; then ok "kill loop: 3 encrypted tables with keys 1, 2, 3"; else fail "creating the tables"; return; fi
  BLOB_SIZE=$(stat -c %s "$SRV_DIR/data/aws-kms-key.2.1")
  note "a complete key file of this mock and master key has $BLOB_SIZE bytes"
  # The client's work: rotate every key, insert into every table, again.
  local i
  for i in $(seq 1 400); do
    echo "SET GLOBAL aws_key_management_rotate_key = -1;"
    for t in $TABLES; do echo "INSERT INTO d.$t (b) VALUES (REPEAT('r', 150));"; done
  done >"$WORK/load.sql"

  local iter before after total_temps=0 first_files rows_before=0 rows planted
  first_files=$(ls "$SRV_DIR/data" | grep -cE '^aws-kms-key\.[0-9]+\.[0-9]+$')
  for iter in $(seq 1 "$ITERATIONS"); do
    q -e "SET GLOBAL aws_key_management_mock_faults = 'delay=GenerateDataKeyWithoutPlaintext:20'" ||
      fail "iteration $iter: setting the mock fault"
    timeout 30 mariadb --no-defaults -S "$SRV_DIR/mysqld.sock" -uroot --force --skip-reconnect \
      <"$WORK/load.sql" >/dev/null 2>&1 &
    CLIENT_PID=$!
    local ms=$((50 + RANDOM % 351))
    sleep "$(printf '0.%03d' "$ms")"
    kill -9 "$srv_pid"
    wait "$srv_pid" 2>/dev/null
    srv_pid=""
    kill "$CLIENT_PID" 2>/dev/null
    wait "$CLIENT_PID" 2>/dev/null
    CLIENT_PID=""

    check_keyfiles "iteration $iter, killed after $ms ms"
    local temps
    temps=$(cd "$SRV_DIR/data" && ls -A | grep -E '^aws-kms-key\.[0-9]+\.[0-9]+\.tmp-[0-9a-f]{12}$')
    planted=""
    if [ "$iter" = 1 ]; then
      # Also as if a kill had hit inside Store.Create (a natural hit is
      # rare): a half-written temporary file of the next version of key 2.
      planted="aws-kms-key.2.$(( $(ls "$SRV_DIR/data" | grep -cE '^aws-kms-key\.2\.[0-9]+$') + 1 )).tmp-0123456789ab"
      head -c $((BLOB_SIZE / 2)) "$SRV_DIR/data/aws-kms-key.2.1" >"$SRV_DIR/data/$planted"
      chmod 0400 "$SRV_DIR/data/$planted"
      temps=$(printf '%s\n%s' "$temps" "$planted" | sed '/^$/d')
    fi
    local ntemps=0
    [ -n "$temps" ] && ntemps=$(wc -l <<<"$temps")
    [ -n "$planted" ] || total_temps=$((total_temps + ntemps))

    local mark
    mark=$(log_mark)
    if srv_start "${START_OPTS[@]}"; then
      ok "iteration $iter: the server restarts after kill -9"
    else
      fail "iteration $iter: the server does not restart after kill -9"
      return
    fi
    rows=0
    local out bad_tables=""
    local n
    for t in $TABLES; do
      out=$(q -e "CHECK TABLE d.$t" 2>&1)
      n=$(q -e "SELECT COUNT(*) FROM d.$t" 2>&1)
      if [ "$out" = "$(printf 'd.%s\tcheck\tstatus\tOK' "$t")" ] && [[ "$n" =~ ^[0-9]+$ ]]; then
        rows=$((rows + n))
      else
        bad_tables+=" $t: '$out' '$n'"
      fi
    done
    if [ -z "$bad_tables" ] && ((rows >= rows_before)); then
      ok "iteration $iter: every table checks OK and reads back ($rows rows, $rows_before before)"
    else
      fail "iteration $iter: tables:$bad_tables rows $rows (before $rows_before)"
    fi
    rows_before=$rows
    # Every key version on disk must be unwrapped at start: a version the
    # start did not reach in time leaves no "could not be decrypted" line,
    # only "unwrapped X of Y" with X < Y (and no line: nothing was done).
    local unwrapped
    unwrapped=$(log_since "$mark" | grep -o 'unwrapped [0-9]* of [0-9]* key versions.*' | head -1)
    if log_since "$mark" | grep -E "could not be decrypted|invalid key file|Can't create key file" >"$WORK/badlog"; then
      sed 's/^/#   /' "$WORK/badlog"
      fail "iteration $iter: the error log after the restart reports key failures"
    elif [[ "$unwrapped" =~ ^unwrapped\ ([0-9]+)\ of\ ([0-9]+)\ key\ versions ]] &&
         [ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ]; then
      ok "iteration $iter: after the restart no key fails to unwrap (${unwrapped%% at start*})"
    else
      fail "iteration $iter: not every key version was unwrapped at the restart: ${unwrapped:-no 'unwrapped X of Y key versions' line in the error log}"
    fi
    local left missing=""
    left=$(cd "$SRV_DIR/data" && ls -A | grep -c '\.tmp-')
    if [ -n "$temps" ]; then
      while read -r t; do
        grep -qF "AWS KMS plugin: removed $t, left over from an interrupted key file write" <(log_since "$mark") || missing+=" $t"
      done <<<"$temps"
    fi
    if [ "$left" = 0 ] && [ -z "$missing" ]; then
      ok "iteration $iter: no temporary file after the restart ($ntemps there after the kill${planted:+, one of them planted: $planted}; each removed with a note)"
    else
      fail "iteration $iter: $left temporary files remain; no removal note for:$missing"
    fi
    # Every version InnoDB uses has its key file.
    out=$(q -e "SELECT CONCAT('aws-kms-key.', CURRENT_KEY_ID, '.', CURRENT_KEY_VERSION) FROM information_schema.INNODB_TABLESPACES_ENCRYPTION WHERE CURRENT_KEY_VERSION > 0" 2>&1)
    local f missing_files=""
    for f in $out; do [ -s "$SRV_DIR/data/$f" ] || missing_files+=" $f"; done
    if [ -n "$out" ] && [ -z "$missing_files" ]; then
      ok "iteration $iter: every key version InnoDB uses has its key file ($(sort -u <<<"$out" | tr '\n' ' '))"
    else
      fail "iteration $iter: key versions in use without a key file:$missing_files ('$out')"
    fi
  done
  check_keyfiles "after $ITERATIONS kills"
  note "$total_temps temporary files were left by the kills themselves (besides the planted one)"
  if ((KEYFILES > first_files)); then
    ok "keys were rotated during the loop: $first_files key files before, $KEYFILES after"
  else
    fail "no rotation happened during the loop ($first_files key files before, $KEYFILES after): the kills tested nothing"
  fi
  if srv_stop; then ok "clean shutdown at the end"; else fail "final shutdown exit status $?"; fi
}

SECONDS=0
disk_checks
note "disk checks took $SECONDS s"
kill_loop
note "total $SECONDS s"
finish
