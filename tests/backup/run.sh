#!/usr/bin/env bash
# Backups and restores as DBAs do them, with the real tools: the release
# build (build/aws_key_management.so) against the loopback KMS emulator,
# Debian's mariadb-backup, private servers on 127.0.0.1.
#
#   1. Key files in the datadir: mariadb-backup --backup, --prepare and
#      --copy-back into another datadir; the restored server reads every
#      table back (CHECKSUM TABLE equal, rows written before and after two
#      rotations), and the key files came with the data.
#   2. keyfile_dir outside the datadir: the backup holds no key file; the
#      commands the README gives copy the key directory with the backup and
#      back; the restored server reads every table.
#   3. A host with no KMS: mariadb-aws-keys exported the keys into a
#      recovery bundle; with KMS stopped, --prepare and the restored server
#      read the keys from the bundle (recovery mode); new keys are refused.
#   4. Another KMS (a second emulator: another account and region): import
#      --to wraps the bundle's keys under its key; the restored server reads
#      every table through it.
#   The backup is checked with `mariadb-aws-keys verify` before each
#   restore that uses KMS; verify (and list --data-files) read the data files too: the
#   key id and versions they find in the real pages agree with
#   information_schema, and a backup whose latest key version or whole
#   key id is missing fails, naming the data file and the key file.
#   5. The restore guard: a restored datadir started without its key
#      files: the plugin generates no key, the server refuses to start,
#      the error log names the data files and the fix; with the key files
#      copied back it starts and reads every table.
#   6. Aria (aria_encrypt_tables=ON, InnoDB not encrypted): a version of
#      key 1 only an Aria table needs is in use for list --server
#      --data-files (and kept without --data-files), one nothing needs is
#      not needed; verify of a backup without its key file names the
#      .MAD file; the restore guard names the Aria tables.
#
# Prints "ok - ..." / "FAIL - ..." per check and "N passed, N failed";
# exits non-zero on any failure. Bounded (330 s). AKM_BACKUP_KEEP=1 keeps
# the work directory.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bounded 330 "$@"

WORK=$(mktemp -d /tmp/akm-backup.XXXXXX)
SRV_PLUGIN_DIR="$WORK/plugin"
. "$ROOT/scripts/server.sh"
. "$ROOT/scripts/kms.sh"

cleanup() {
  trap - EXIT INT TERM
  if [ -n "$srv_pid" ]; then kill -9 "$srv_pid" 2>/dev/null; wait "$srv_pid" 2>/dev/null; srv_pid=""; fi
  kms_stop
  if [ -n "${AKM_BACKUP_KEEP:-}" ]; then echo "# AKM_BACKUP_KEEP: $WORK left in place"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'echo "# interrupted or over time"; fail "run interrupted (signal or the 330 s bound)"; echo "$PASSED passed, $FAILED failed"; exit 1' INT TERM

SRV_PORT=$(srv_free_port 25306) || { fail "no free port"; finish; }

mkdir -p "$SRV_PLUGIN_DIR"
if ! timeout 300 make -s release build/mariadb-aws-keys >"$WORK/build.log" 2>&1; then
  tail -20 "$WORK/build.log"; fail "make"; finish
fi
cp build/aws_key_management.so "$SRV_PLUGIN_DIR/"
if ! kms_start "$WORK/kms" >"$WORK/kms.log" 2>&1; then cat "$WORK/kms.log"; fail "starting the KMS emulator"; finish; fi
ok "release build and the loopback KMS at $KMS_ADDR"

# The server and mariadb-backup see only the credentials file (kms_env).
mapfile -t SRV_ENV < <(kms_env)
BACKUP_ENV=("${SRV_ENV[@]}")
OPTS=(--plugin-load-add=aws_key_management
  --aws-key-management-endpoint-url="http://$KMS_ADDR" --aws-key-management-master-key-id="$KMS_ALIAS"
  --aws-key-management-request-timeout=2000
  --innodb-encrypt-tables=ON --innodb-encrypt-log=ON --encrypt-tmp-files=ON
  --innodb-buffer-pool-size=32M --innodb-tablespaces-encryption)

RESTORE_OPTS=("${OPTS[@]}")
q() { timeout 30 mariadb --no-defaults -S "$SRV_DIR/mysqld.sock" -uroot -N -B "$@"; }
TOOL="$ROOT/build/mariadb-aws-keys"
# tool ARGS...: the operator tool with the server's KMS settings and only
# the credentials file, as a DBA would run it.
tool() { env "${SRV_ENV[@]}" timeout 120 "$TOOL" --no-defaults --endpoint-url "http://$KMS_ADDR" --request-timeout 2000 "$@"; }
TABLES="t1 t5 t6"

# fill: tables on three keys, rows before and after two rotations of key 5
# and one of key 6, pages flushed (so they use several key versions); a
# ROW_FORMAT=COMPRESSED table (the pre-full_crc32 page format) and a
# PAGE_COMPRESSED one, for the data-file check.
fill() {
  q -e "CREATE DATABASE d; USE d;
    CREATE TABLE d.t1 (a INT PRIMARY KEY, b VARCHAR(200)) ENCRYPTED=YES;
    CREATE TABLE d.t5 (a INT PRIMARY KEY, b VARCHAR(200)) ENCRYPTED=YES ENCRYPTION_KEY_ID=5;
    CREATE TABLE d.t6 (a INT PRIMARY KEY, b VARCHAR(200)) ENCRYPTED=YES ENCRYPTION_KEY_ID=6;
    CREATE TABLE d.tz (a INT PRIMARY KEY, b VARCHAR(200)) ROW_FORMAT=COMPRESSED ENCRYPTED=YES ENCRYPTION_KEY_ID=5;
    CREATE TABLE d.tp (a INT PRIMARY KEY, b VARCHAR(200)) PAGE_COMPRESSED=1 ENCRYPTED=YES ENCRYPTION_KEY_ID=6;
    INSERT INTO d.tz SELECT seq, REPEAT('zip', 50) FROM seq_1_to_2000;
    INSERT INTO d.tp SELECT seq, REPEAT('pc', 70) FROM seq_1_to_2000;
    INSERT INTO d.t1 SELECT seq, REPEAT('one', 50) FROM seq_1_to_2000;
    INSERT INTO d.t5 SELECT seq, REPEAT('five', 40) FROM seq_1_to_2000;
    INSERT INTO d.t6 SELECT seq, REPEAT('six', 50) FROM seq_1_to_2000;
    FLUSH TABLES d.t1, d.t5, d.t6 FOR EXPORT; UNLOCK TABLES;
    SET GLOBAL aws_key_management_rotate_key = 5;
    INSERT INTO d.t5 SELECT seq, REPEAT('FIVE', 40) FROM seq_2001_to_4000;
    FLUSH TABLES d.t5 FOR EXPORT; UNLOCK TABLES;
    SET GLOBAL aws_key_management_rotate_key = 5;
    SET GLOBAL aws_key_management_rotate_key = 6;
    UPDATE d.t6 SET b = REPEAT('SIX', 50) WHERE a % 2 = 0;
    UPDATE d.tz SET b = REPEAT('ZIP', 50) WHERE a % 3 = 0;
    UPDATE d.tp SET b = REPEAT('PC', 70) WHERE a % 3 = 0;
    INSERT INTO d.t5 SELECT seq, REPEAT('5ive', 40) FROM seq_4001_to_5000;"
}

checksums() {
  local t
  for t in $TABLES; do q -e "CHECKSUM TABLE d.$t" 2>&1; done | tr '\t\n' ' '
}

# restore_and_check WHAT BACKUP NEWDIR [server options...]: copy-back into
# NEWDIR/data, start a server on it, compare the checksums.
restore_and_check() {
  local what=$1 backup=$2 newdir=$3
  shift 3
  SRV_DIR=$newdir
  mkdir -p "$SRV_DIR"
  if env "${BACKUP_ENV[@]}" timeout 120 mariadb-backup --copy-back --target-dir="$backup" \
       --datadir="$SRV_DIR/data" >"$WORK/copyback-$what.log" 2>&1; then
    ok "$what: mariadb-backup --copy-back into a new datadir"
  else
    tail -5 "$WORK/copyback-$what.log"; fail "$what: --copy-back"; return
  fi
  if srv_start "${RESTORE_OPTS[@]}" "$@"; then ok "$what: the restored server starts"; else fail "$what: the restored server does not start"; return; fi
  local after
  after=$(checksums)
  if [ "$after" = "$SUMS" ] && [[ "$after" =~ ^d\.t1\ [1-9][0-9]*\ d\.t5\ [1-9][0-9]*\ d\.t6\ [1-9][0-9]*\ $ ]]; then
    ok "$what: every table reads back the same (CHECKSUM TABLE: $after)"
  else
    fail "$what: checksums '$after', want '$SUMS'"
  fi
  local n
  n=$(q -e "SELECT COUNT(*) FROM d.t5 WHERE BINARY b LIKE 'FIVE%'" 2>&1)
  if [ "$n" = 2000 ]; then
    ok "$what: the rows written between the rotations of key 5 are there"
  else
    fail "$what: rows between rotations: '$n'"
  fi
  srv_stop || fail "$what: restored server shutdown exit status $?"
}

# --------------------------------------------- 1. key files in the datadir
SRV_DIR="$WORK/src"
srv_install || { fail "mariadb-install-db"; finish; }
if srv_start "${OPTS[@]}"; then ok "source server with the plugin"; else fail "source server"; finish; fi
if fill 2>"$WORK/fill.log"; then ok "encrypted tables on keys 1, 5 and 6; key 5 rotated twice, key 6 once"
else cat "$WORK/fill.log"; fail "filling the tables"; fi
SUMS=$(checksums)
KEYS=$(cd "$SRV_DIR/data" && ls aws-kms-key.* | sort | tr '\n' ' ')
if [ "$KEYS" = "aws-kms-key.1.1 aws-kms-key.2.1 aws-kms-key.5.1 aws-kms-key.5.2 aws-kms-key.5.3 aws-kms-key.6.1 aws-kms-key.6.2 " ]; then
  ok "key files in the datadir: $KEYS"
else fail "key files: '$KEYS'"; fi
BK="$WORK/backup1"
if env "${BACKUP_ENV[@]}" timeout 120 mariadb-backup --backup --target-dir="$BK" --socket="$SRV_DIR/mysqld.sock" \
     --user=root >"$WORK/backup1.log" 2>&1; then
  ok "mariadb-backup --backup of the running server"
else tail -5 "$WORK/backup1.log"; fail "--backup"; fi
# A recovery key, and every key version sealed for it (while KMS is up).
if RECIPIENT=$("$TOOL" keygen --output "$WORK/recovery.key" 2>"$WORK/keygen.err") && [[ "$RECIPIENT" == age1* ]] &&
   [ "$(stat -c %a "$WORK/recovery.key")" = 600 ]; then
  ok "mariadb-aws-keys keygen: a recovery key (mode 0600), recipient $RECIPIENT"
else cat "$WORK/keygen.err"; fail "keygen"; fi
if out=$(tool export --recipient "$RECIPIENT" --output "$WORK/keys.age" "$SRV_DIR/data" 2>"$WORK/tool.err") &&
   [[ "$out" == "sealed 7 key versions of $SRV_DIR/data into $WORK/keys.age"* ]]; then
  ok "mariadb-aws-keys export: $out"
else echo "$out"; cat "$WORK/tool.err"; fail "export"; fi
IS=$(q -e "SELECT NAME, CURRENT_KEY_ID, CURRENT_KEY_VERSION FROM information_schema.INNODB_TABLESPACES_ENCRYPTION WHERE NAME LIKE 'd/%' ORDER BY NAME" | tr '\t' ' ')
srv_stop || fail "source server shutdown exit status $?"
# The data files, read offline after a clean shutdown (every page on
# disk): each table's key id is information_schema's, its pages' versions
# are key versions that exist, at most the current one.
if tool list --data-files --json "$SRV_DIR/data" >"$WORK/list-src.json" 2>"$WORK/tool.err"; then
  got=$(perl -MJSON::PP -0777 -ne 'my $d = decode_json($_); for my $t (@{$d->{data_files}{innodb_tablespaces}}) {
      next unless $t->{file} =~ m{/d/(t\w+)\.ibd$}; print "d/$1 $t->{key_id} ", join(",", map { $_->{version} } @{$t->{key_versions}}), " $t->{pages} $t->{unreadable_pages}\n" }' "$WORK/list-src.json")
  bad=""
  while read -r name id cur; do
    read -r _ gid vers pages unreadable <<<"$(grep "^$name " <<<"$got")"
    [ "$gid" = "$id" ] && [ -n "$vers" ] && [ "${unreadable:-1}" = 0 ] || bad+=" $name: key '$gid' versions '$vers' unreadable '$unreadable' (want key $id);"
    for v in ${vers//,/ }; do ((v >= 1 && v <= cur)) || bad+=" $name: version $v (current $cur);"; done
  done <<<"$IS"
  if [ -z "$bad" ] && [ "$(wc -l <<<"$IS")" = 5 ]; then
    ok "list reads the data files offline: key ids and page versions agree with information_schema ($(tr '\n' ';' <<<"$got"))"
  else echo "$IS"; echo "$got"; fail "data files vs information_schema:$bad"; fi
else cat "$WORK/tool.err"; fail "list --json of the stopped source datadir"; fi
cp -a "$BK" "$WORK/backup1-unprepared"
if [ "$(cd "$BK" && ls aws-kms-key.* 2>/dev/null | sort | tr '\n' ' ')" = "$KEYS" ]; then
  ok "the backup holds the key files"
else fail "the backup holds: $(cd "$BK" && ls aws-kms-key.* 2>&1 | tr '\n' ' ')"; fi
# A copy of the backup that lost a key file: verify names it before any
# server is started.
cp -a "$BK" "$WORK/backup1-lost"
rm -f "$WORK/backup1-lost/aws-kms-key.5.2"
tool verify "$WORK/backup1-lost" >/dev/null 2>"$WORK/tool.err"
if grep -q "key 5: version 2 missing (below aws-kms-key.5.3): data encrypted with them cannot be read" "$WORK/tool.err"; then
  ok "a backup missing aws-kms-key.5.2: verify names it ($(grep -o 'key 5: version 2 missing[^:]*' "$WORK/tool.err"))"
else cat "$WORK/tool.err"; fail "verify of a backup missing a key file"; fi
if out=$(tool verify "$BK" 2>"$WORK/tool.err") && [[ "$out" == "verified 7 key files in $BK: 7 ok, 0 failed"* ]] &&
   [[ "$out" =~ "data files in $BK: "[0-9]+" InnoDB tablespaces ("[1-9][0-9]*" encrypted), "[^$'\n']*" 0 missing, 0 files not read" ]]; then
  ok "mariadb-aws-keys verify of the backup before the restore: $(tr '\n' ' ' <<<"$out")"
else echo "$out"; cat "$WORK/tool.err"; fail "verify of the backup"; fi
if env "${BACKUP_ENV[@]}" timeout 120 mariadb-backup --prepare --target-dir="$BK" >"$WORK/prepare1.log" 2>&1; then
  ok "mariadb-backup --prepare (loads the plugin from backup-my.cnf; KMS through the credentials file)"
else tail -5 "$WORK/prepare1.log"; fail "--prepare"; fi
# The latest version of key 5 lost, and key 6 entirely: no gap between
# versions shows it; the data files do.
cp -a "$BK" "$WORK/backup1-nolatest"
rm -f "$WORK/backup1-nolatest"/aws-kms-key.5.3 "$WORK/backup1-nolatest"/aws-kms-key.6.*
tool verify "$WORK/backup1-nolatest" >"$WORK/verify-nolatest.out" 2>"$WORK/tool.err"; rc=$?
if ((rc == 1)) && grep -Eq "^mariadb-aws-keys: MISSING key file aws-kms-key.5.3: d/t5.ibd(, d/tz.ibd)? in $WORK/backup1-nolatest need aws-kms-key.5.3 \(key 5 version 3\), which is not in $WORK/backup1-nolatest: their data cannot be read without it. copy it from" "$WORK/tool.err" &&
   grep -Eq "^mariadb-aws-keys: MISSING key file aws-kms-key.6.[12]: (d/t6.ibd|d/tp.ibd)" "$WORK/tool.err" &&
   grep -q "^verified 4 key files in $WORK/backup1-nolatest: 4 ok, 0 failed" "$WORK/verify-nolatest.out"; then
  ok "a backup missing its latest aws-kms-key.5.3 and key 6: every file left verifies, the data files name what is missing (exit 1)"
else echo "rc=$rc"; cat "$WORK/verify-nolatest.out" "$WORK/tool.err"; fail "verify of a backup missing the latest version"; fi
if tool verify --json "$WORK/backup1-nolatest" >"$WORK/verify-nolatest.json" 2>/dev/null; [ $? = 1 ] &&
   missing=$(perl -MJSON::PP -0777 -ne 'my $d = decode_json($_); print "$_->{file}:", join(",", @{$_->{used_by}}), "\n" for @{$d->{data_files}{missing}}' "$WORK/verify-nolatest.json") &&
   grep -q "^aws-kms-key.5.3:.*d/t5.ibd" <<<"$missing" && grep -q "^aws-kms-key.6.2:.*d/t6.ibd" <<<"$missing" &&
   ! grep -qv "^aws-kms-key.\(5.3\|6.1\|6.2\):" <<<"$missing"; then
  ok "verify --json: data_files.missing names the key files and the tablespaces"
else cat "$WORK/verify-nolatest.json" | head -50; fail "verify --json of a backup missing keys"; fi
restore_and_check "datadir keys" "$BK" "$WORK/restore1"
if [ "$(cd "$WORK/restore1/data" && ls aws-kms-key.* | sort | tr '\n' ' ')" = "$KEYS" ]; then
  ok "datadir keys: the key files came back with the data, no new key made"
else fail "datadir keys: restored key files: $(cd "$WORK/restore1/data" && ls aws-kms-key.* | tr '\n' ' ')"; fi

# ------------------- 5. the restore guard: started without its key files
SRV_DIR="$WORK/restore-nokeys"
mkdir -p "$SRV_DIR" "$WORK/keys-aside"
if env "${BACKUP_ENV[@]}" timeout 120 mariadb-backup --copy-back --target-dir="$BK" --datadir="$SRV_DIR/data" >"$WORK/copyback-nokeys.log" 2>&1; then
  mv "$SRV_DIR/data"/aws-kms-key.* "$WORK/keys-aside/"
  if srv_start "${RESTORE_OPTS[@]}" >"$WORK/start-nokeys.log" 2>&1; then
    fail "restored without key files: the server started"; srv_stop
  elif grep -q "\[ERROR\] .*AWS KMS plugin: no key file in the datadir, but the datadir holds data encrypted with key ids 1, 5, 6 (d/t1.ibd (key 1), .*d/t6.ibd (key 6).*): no new key will be generated (a new key would not read that data); copy the key files (aws-kms-key.\*) from the backup, or from the source server's key directory, into the datadir (or write them back from a recovery bundle with mariadb-aws-keys import) and restart the server" "$SRV_DIR/error.log" &&
       grep -q "\[ERROR\] .*AWS KMS plugin: key id 1 has no key file in the datadir, but the datadir holds data encrypted with it (d/t1.ibd (key 1))" "$SRV_DIR/error.log" &&
       ! ls "$SRV_DIR/data"/aws-kms-key.* >/dev/null 2>&1; then
    ok "restored without key files: the server refuses to start, no key is generated, the error log names the data and the fix"
  else grep -E "ERROR|AWS KMS" "$SRV_DIR/error.log" | head; ls "$SRV_DIR/data"; fail "restored without key files"; fi
  cp -a "$WORK/keys-aside/." "$SRV_DIR/data/"
  if srv_start "${RESTORE_OPTS[@]}" && [ "$(checksums)" = "$SUMS" ]; then
    ok "the key files copied back: the server starts and reads every table"
  else fail "after copying the key files back: checksums '$(checksums)'"; fi
  srv_stop || fail "restore guard: shutdown exit status $?"
else tail -5 "$WORK/copyback-nokeys.log"; fail "restore guard: --copy-back"; fi

# ------------------------------------- 2. keyfile_dir outside the datadir
KEYFILE_DIR="$WORK/keys2"
install -d -m 0700 "$KEYFILE_DIR"
SRV_DIR="$WORK/src2"
srv_install || { fail "mariadb-install-db"; finish; }
if srv_start "${OPTS[@]}" --aws-key-management-keyfile-dir="$KEYFILE_DIR"; then ok "source server with keyfile_dir=$KEYFILE_DIR"
else fail "source server 2"; finish; fi
fill 2>"$WORK/fill2.log" || { cat "$WORK/fill2.log"; fail "filling the tables (2)"; }
SUMS=$(checksums)
KEYS=$(cd "$KEYFILE_DIR" && ls aws-kms-key.* | sort | tr '\n' ' ')
BK="$WORK/backup2"
BACKUPS="$WORK/backups"
env "${BACKUP_ENV[@]}" timeout 120 mariadb-backup --backup --target-dir="$BK" --socket="$SRV_DIR/mysqld.sock" \
  --user=root >"$WORK/backup2.log" 2>&1 || { tail -5 "$WORK/backup2.log"; fail "--backup (2)"; }
# The README's commands (Operations, "Backups"), with these paths:
mkdir -p "$BACKUPS"
cp -a "$KEYFILE_DIR" "$BACKUPS/keyfiles"
srv_stop || fail "source server 2 shutdown exit status $?"
if ! ls "$BK"/aws-kms-key.* >/dev/null 2>&1 && [ "$(cd "$BACKUPS/keyfiles" && ls aws-kms-key.* | sort | tr '\n' ' ')" = "$KEYS" ]; then
  ok "keyfile_dir outside: the backup holds no key file; cp -a copied all ($KEYS)"
else fail "keyfile_dir outside: backup has $(ls "$BK" | grep -c aws-kms-key) key files; the copy: $(ls "$BACKUPS/keyfiles" 2>&1 | tr '\n' ' ')"; fi
env "${BACKUP_ENV[@]}" timeout 120 mariadb-backup --prepare --target-dir="$BK" >"$WORK/prepare2.log" 2>&1 ||
  { tail -5 "$WORK/prepare2.log"; fail "--prepare (2)"; }
NEW_KEYFILE_DIR="$WORK/restore2-keys"
install -d -m 0700 "$NEW_KEYFILE_DIR"
cp -a "$BACKUPS/keyfiles/." "$NEW_KEYFILE_DIR/"
if [ "$(stat -c %a "$NEW_KEYFILE_DIR"/aws-kms-key.5.1)" = 400 ]; then ok "keyfile_dir outside: the copies keep mode 0400"
else fail "keyfile_dir outside: mode $(stat -c %a "$NEW_KEYFILE_DIR"/aws-kms-key.5.1)"; fi
restore_and_check "keyfile_dir outside" "$BK" "$WORK/restore2" --aws-key-management-keyfile-dir="$NEW_KEYFILE_DIR"
if [ "$(cd "$NEW_KEYFILE_DIR" && ls aws-kms-key.* | sort | tr '\n' ' ')" = "$KEYS" ]; then
  ok "keyfile_dir outside: no new key was made on restore"
else fail "keyfile_dir outside: key files now $(ls "$NEW_KEYFILE_DIR" | tr '\n' ' ')"; fi

# --------------------------------------------- 3. a host with no KMS
kms_stop
BK="$WORK/backup1-unprepared"
if tool verify "$BK" >"$WORK/verify-nokms.log" 2>&1; then fail "verify succeeded with KMS stopped"
else ok "KMS is gone: verify of the backup fails ($(tail -1 "$WORK/verify-nokms.log" | cut -c1-100))"; fi
# --prepare loads the plugin with backup-my.cnf's settings: the DBA adds
# the two recovery lines there.
printf 'aws_key_management_recovery_bundle=%s\naws_key_management_recovery_identity=%s\n' \
  "$WORK/keys.age" "$WORK/recovery.key" >>"$BK/backup-my.cnf"
if env "${BACKUP_ENV[@]}" timeout 120 mariadb-backup --prepare --target-dir="$BK" >"$WORK/prepare3.log" 2>&1; then
  ok "no KMS: mariadb-backup --prepare with the recovery bundle in backup-my.cnf"
else tail -5 "$WORK/prepare3.log"; fail "no KMS: --prepare"; fi
RESTORE_OPTS=("${OPTS[@]}" --aws-key-management-recovery-bundle="$WORK/keys.age"
  --aws-key-management-recovery-identity="$WORK/recovery.key")
SRV_DIR="$WORK/restore3"
restore_and_check "no KMS" "$BK" "$WORK/restore3" --aws-key-management-request-timeout=500
# (restore_and_check stopped the server: start it again for the checks.)
if srv_start "${RESTORE_OPTS[@]}"; then
  if grep -q "AWS KMS plugin: recovery mode: keys come from the recovery bundle $WORK/keys.age (made .* 7 key versions), not from KMS" "$SRV_DIR/error.log"; then
    ok "no KMS: the error log says where the keys come from"
  else fail "no KMS: no recovery-mode line in the error log"; fi
  if out=$(q -e "CREATE TABLE d.n (a INT) ENCRYPTED=YES ENCRYPTION_KEY_ID=9" 2>&1); then
    fail "no KMS: a table on a new key id was created"
  elif grep -q "AWS KMS plugin : KMS Client API 'GenerateDataKeyWithoutPlaintext' failed : RecoveryMode - keys come from a recovery bundle" "$SRV_DIR/error.log" &&
       [ ! -e "$SRV_DIR/data/aws-kms-key.9.1" ]; then
    ok "no KMS: a new key id is refused, saying why, and no key file is made"
  else echo "$out"; fail "no KMS: new key"; fi
  n=$(q -e "SHOW GLOBAL STATUS LIKE 'Aws_key_management_versions_loaded'" | cut -f2)
  [ "$n" = 7 ] && ok "no KMS: all 7 key versions were loaded from the bundle" || fail "no KMS: versions loaded '$n'"
  srv_stop || fail "no KMS: shutdown exit status $?"
fi

# ------------------------- 4. another KMS: import --to, then restore
KMS_REGION=eu-west-1 KMS_ALIAS=alias/mariadb-dr KMS_KEY_ID=7d7d7d7d-0000-4000-8000-0000000000dr
if kms_start "$WORK/kms-dr" >"$WORK/kms-dr.log" 2>&1; then ok "a second KMS (region $KMS_REGION, its own account and credentials)"
else cat "$WORK/kms-dr.log"; fail "starting the second KMS"; finish; fi
mapfile -t SRV_ENV < <(kms_env)
BACKUP_ENV=("${SRV_ENV[@]}")
DR_KEYS="$WORK/dr-keys"
# The README's commands ("Or move the keys to another KMS key"), as
# written but for the paths, run by a DBA whose ~/.aws/credentials has a
# profile "dr" for the other account (its [default] is not valid there)
# and whose ~/.my.cnf points the tool at the loopback KMS.
DR_HOME="$WORK/dr-home"
install -d -m 0700 "$DR_HOME" "$DR_HOME/.aws"
printf '[default]\naws_access_key_id = AKIANOTTHEDRACCOUNT0\naws_secret_access_key = not-valid-there\n\n[dr]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
  "$KMS_ACCESS_KEY" "$KMS_SECRET" >"$DR_HOME/.aws/credentials"
printf '[mariadb]\naws_key_management_endpoint_url = http://%s\n' "$KMS_ADDR" >"$DR_HOME/.my.cnf"
chmod 600 "$DR_HOME/.aws/credentials" "$DR_HOME/.my.cnf"
README_DR=$(grep -B1 -A1 '^AWS_PROFILE=dr mariadb-aws-keys import ' "$ROOT/README.md")
README_DR=${README_DR//\/var\/lib\/mysql-keys/$DR_KEYS}
README_DR=${README_DR//\/backups\/2026-12-01\/keys.age/$WORK/keys.age}
README_DR=${README_DR//\/secure\/mariadb-recovery.key/$WORK/recovery.key}
DR_ENV=(-u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE -u AWS_REGION -u AWS_DEFAULT_REGION
  -u AWS_SHARED_CREDENTIALS_FILE -u AWS_CREDENTIAL_PROFILES_FILE -u AWS_CONFIG_FILE AWS_EC2_METADATA_DISABLED=true
  HOME="$DR_HOME" PATH="$ROOT/build:$PATH")
if [[ "$README_DR" == "install -d -m 0700 -o mysql -g mysql $DR_KEYS"$'\n'"AWS_PROFILE=dr mariadb-aws-keys import --region eu-west-1 --to alias/mariadb-dr \\"$'\n'* ]] &&
   out=$(env "${DR_ENV[@]}" timeout 120 bash -ec "$README_DR" 2>"$WORK/tool.err") &&
   [[ "$out" == *": 7 written, 0 already present, 0 failed" ]] && [ "$(stat -c %a "$DR_KEYS")" = 700 ]; then
  ok "the README's AWS_PROFILE=dr mariadb-aws-keys import --region eu-west-1 --to alias/mariadb-dr ...: $out"
else echo "$README_DR"; echo "$out"; cat "$WORK/tool.err"; fail "the README's import --to with AWS_PROFILE=dr"; fi
if out=$(tool verify -v "$DR_KEYS" 2>"$WORK/tool.err") && [ "$(grep -c "arn:aws:kms:$KMS_REGION:111122223333:key/$KMS_KEY_ID" <<<"$out")" = 7 ]; then
  ok "the imported key files unwrap under the second KMS's key"
else echo "$out"; cat "$WORK/tool.err"; fail "verify of the imported key files"; fi
RESTORE_OPTS=(--plugin-load-add=aws_key_management
  --aws-key-management-endpoint-url="http://$KMS_ADDR" --aws-key-management-master-key-id="$KMS_ALIAS"
  --aws-key-management-request-timeout=2000 --aws-key-management-keyfile-dir="$DR_KEYS"
  --innodb-encrypt-tables=ON --innodb-encrypt-log=ON --encrypt-tmp-files=ON
  --innodb-buffer-pool-size=32M --innodb-tablespaces-encryption)
restore_and_check "another KMS" "$WORK/backup1" "$WORK/restore4"


# ------------------------------ 6. Aria: a key version only Aria needs
# aria_encrypt_tables=ON, InnoDB, its redo log and binlogs not encrypted:
# key 1 serves the Aria tables alone. d.old's pages (head, tail and blob
# pages, index pages) are on version 1, d.new's on version 3; version 2
# serves nothing.
SRV_DIR="$WORK/src6"
ARIA_OPTS=(--plugin-load-add=aws_key_management
  --aws-key-management-endpoint-url="http://$KMS_ADDR" --aws-key-management-master-key-id="$KMS_ALIAS"
  --aws-key-management-request-timeout=2000 --aria-encrypt-tables=ON --encrypt-tmp-files=ON)
srv_install || { fail "mariadb-install-db (6)"; finish; }
if srv_start "${ARIA_OPTS[@]}"; then ok "Aria: a server with aria_encrypt_tables=ON (InnoDB not encrypted)"
else fail "Aria: source server"; finish; fi
q -e "CREATE DATABASE d; USE d;
  CREATE TABLE d.old (a INT PRIMARY KEY, b VARCHAR(200), c LONGBLOB) ENGINE=Aria;
  INSERT INTO d.old SELECT seq, REPEAT('old', 60), IF(seq <= 20, REPEAT('blob', 5000), NULL) FROM seq_1_to_500;
  FLUSH TABLES;
  SET GLOBAL aws_key_management_rotate_key = 1;
  SET GLOBAL aws_key_management_rotate_key = 1;
  CREATE TABLE d.new (a INT PRIMARY KEY, b VARCHAR(200)) ENGINE=Aria TRANSACTIONAL=0;
  INSERT INTO d.new SELECT seq, REPEAT('new', 60) FROM seq_1_to_500;
  FLUSH TABLES;" 2>"$WORK/fill6.log" || { cat "$WORK/fill6.log"; fail "Aria: filling the tables"; }
ARIA_SUM=$(q -e "CHECKSUM TABLE d.old, d.new" 2>&1 | tr '\t\n' '  ')
# A restart: temporary files made before it (on key 2) no longer count.
srv_stop || fail "Aria: shutdown exit status $?"
srv_start "${ARIA_OPTS[@]}" || { fail "Aria: restart"; finish; }
D6="$SRV_DIR/data"
if out=$(tool list --server --data-files --socket "$SRV_DIR/mysqld.sock" --user root "$D6" 2>"$WORK/tool.err") &&
   grep -Eq '^1 +1 .* in-use +aria: 1 table \(first: d/old.MAD\)$' <<<"$out" &&
   grep -Eq '^1 +2 .* not-needed +no InnoDB tablespace, log or temporary file of the server uses key 1 version 2, nor the pages of its Aria tables \(2 encrypted, read from its datadir\)$' <<<"$out" &&
   grep -Eq '^1 +3 .* in-use +aria: 1 table \(first: d/new.MAD\)$' <<<"$out" &&
   grep -Eq "^data files in $D6: .*, [0-9]+ Aria tables \(2 encrypted\)" <<<"$out"; then
  ok "Aria: list --server --data-files: version 1 is in use by d/old.MAD alone, version 2 is not needed, version 3 is d/new.MAD's"
else echo "$out"; cat "$WORK/tool.err"; fail "Aria: list --server --data-files"; fi
if out=$(tool list --server --socket "$SRV_DIR/mysqld.sock" --user root "$D6" 2>"$WORK/tool.err") &&
   grep -Eq '^1 +1 .* kept +Aria usage is unknown: Aria tables encrypted with aria_encrypt_tables \(now ON\) keep the version each page was written with. add --data-files' <<<"$out" &&
   grep -Eq '^1 +2 .* kept +Aria usage is unknown' <<<"$out"; then
  ok "Aria: list --server without --data-files keeps versions 1 and 2, saying Aria usage is unknown"
else echo "$out"; cat "$WORK/tool.err"; fail "Aria: list --server without the data files"; fi
if [ "$(tool list --server --data-files --json --socket "$SRV_DIR/mysqld.sock" --user root "$D6" 2>/dev/null |
        jq -r '[.data_files.aria_tables[] | select(.encrypted) | "\(.file | split("/") | .[-2:] | join("/")) \([.key_versions[].version] | join(","))"] | join(" ")')" = "d/new.MAD 3 d/old.MAD 1" ]; then
  ok "Aria: list --json: each encrypted Aria table with the key versions of its pages"
else fail "Aria: list --json aria_tables"; fi
BK="$WORK/backup6"
env "${BACKUP_ENV[@]}" timeout 120 mariadb-backup --backup --target-dir="$BK" --socket="$SRV_DIR/mysqld.sock" \
  --user=root >"$WORK/backup6.log" 2>&1 || { tail -5 "$WORK/backup6.log"; fail "Aria: --backup"; }
env "${BACKUP_ENV[@]}" timeout 120 mariadb-backup --prepare --target-dir="$BK" >"$WORK/prepare6.log" 2>&1 ||
  { tail -5 "$WORK/prepare6.log"; fail "Aria: --prepare"; }
srv_stop || fail "Aria: shutdown exit status $?"
if out=$(tool verify "$BK" 2>"$WORK/tool.err") && grep -Eq " [0-9]+ Aria tables \(2 encrypted\), .* 0 missing, 0 files not read$" <<<"$out"; then
  ok "Aria: verify of the prepared backup: $(tail -1 <<<"$out")"
else echo "$out"; cat "$WORK/tool.err"; fail "Aria: verify of the backup"; fi
# The backup without aws-kms-key.1.1: nothing but d.old needs it.
cp -a "$BK" "$WORK/backup6-no11"
rm -f "$WORK/backup6-no11/aws-kms-key.1.1"
tool verify "$WORK/backup6-no11" >"$WORK/tool.out" 2>"$WORK/tool.err"; rc=$?
if ((rc == 1)) && grep -q "^mariadb-aws-keys: MISSING key file aws-kms-key.1.1: d/old.MAD in $WORK/backup6-no11 need aws-kms-key.1.1 (key 1 version 1), which is not in $WORK/backup6-no11: their data cannot be read without it" "$WORK/tool.err"; then
  ok "Aria: verify of a backup without aws-kms-key.1.1 exits 1, naming d/old.MAD and the key file"
else cat "$WORK/tool.out" "$WORK/tool.err"; fail "Aria: verify without aws-kms-key.1.1 (exit $rc)"; fi
# The restore guard sees Aria too: the backup restored without any key
# file; the server generates no key 1 (a new one would not read d.old).
rm -f "$WORK/backup6-no11"/aws-kms-key.*
SRV_DIR="$WORK/restore6"
mkdir -p "$SRV_DIR"
if env "${BACKUP_ENV[@]}" timeout 120 mariadb-backup --copy-back --target-dir="$WORK/backup6-no11" --datadir="$SRV_DIR/data" >"$WORK/copyback6.log" 2>&1; then
  srv_start "${ARIA_OPTS[@]}" >"$WORK/start6.log" 2>&1 && srv_stop
  if grep -q "\[ERROR\] .*AWS KMS plugin: no key file in the datadir, but the datadir holds data encrypted with key ids 1 (d/new.MAD (key 1), d/old.MAD (key 1)): no new key will be generated" "$SRV_DIR/error.log" &&
     [ ! -e "$SRV_DIR/data/aws-kms-key.1.1" ]; then
    ok "Aria: a restore without key files: the plugin names the Aria tables and generates no key"
  else tail -5 "$SRV_DIR/error.log"; fail "Aria: the restore guard"; fi
else tail -5 "$WORK/copyback6.log"; fail "Aria: --copy-back (6)"; fi
SRV_DIR="$WORK/restore6b"
mkdir -p "$SRV_DIR"
if env "${BACKUP_ENV[@]}" timeout 120 mariadb-backup --copy-back --target-dir="$BK" --datadir="$SRV_DIR/data" >"$WORK/copyback6b.log" 2>&1 &&
   srv_start "${ARIA_OPTS[@]}" && [ "$(q -e "CHECKSUM TABLE d.old, d.new" 2>&1 | tr '\t\n' '  ')" = "$ARIA_SUM" ]; then
  ok "Aria: the backup restored with its key files reads both tables back ($ARIA_SUM)"
else fail "Aria: restore of the backup: '$(q -e "CHECKSUM TABLE d.old, d.new" 2>&1 | tr '\t\n' '  ')', want '$ARIA_SUM'"; fi
srv_stop || fail "Aria: restored server shutdown exit status $?"

finish
