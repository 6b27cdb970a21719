#!/usr/bin/env bash
# The operator tool (build/mariadb-aws-keys) against a real mariadbd that
# runs the release plugin (build/aws_key_management.so) against the
# loopback KMS emulator. Server and tool read the same option file, as on
# a DBA's host; the only AWS credentials are <datadir>/.aws/credentials
# (HOME=/nonexistent), which the plugin and the tool both find there.
#
#   1. list without a server; list --server after rotations: InnoDB's
#      versions (a table re-encrypted by the rotation threads, a table
#      dropped), the redo log's and the binlogs' versions, temporary files;
#      each status checked against the server's own information_schema;
#      after PURGE BINARY LOGS and a restart, key 2's old versions are no
#      longer needed; a user without PROCESS, and a server whose
#      INNODB_TABLESPACES_ENCRYPTION is disabled, keep every old version
#      and say why (exit 1).
#   2. verify.
#   3. The rotate-the-CMK procedure of the README while rows are written:
#      a new CMK, master_key_id set to it, rotate_key=-1, rewrap --to,
#      verify, disable the old CMK, restart: every version unwraps and
#      every table (InnoDB, Aria) and binlog reads back; the key files as
#      they were before the rewrap no longer verify (the control).
#
# Prints "ok - ..." / "FAIL - ..." per check and one last line
# "N passed, N failed"; exits non-zero on any failure. Bounded (300 s);
# everything lives under a mktemp directory; a trap stops the server and
# the emulator. AKM_TOOLS_KEEP=1 keeps the work directory.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bounded 300 "$@"

WORK=$(mktemp -d /tmp/akm-tools.XXXXXX)
SRV_DIR="$WORK/srv" SRV_PLUGIN_DIR="$ROOT/build"
. "$ROOT/scripts/server.sh"
. "$ROOT/scripts/kms.sh"
WRITER_PID=""
cleanup() {
  trap - EXIT INT TERM
  [ -n "$WRITER_PID" ] && { kill "$WRITER_PID" 2>/dev/null; wait "$WRITER_PID" 2>/dev/null; }
  if [ -n "$srv_pid" ]; then kill -9 "$srv_pid" 2>/dev/null; wait "$srv_pid" 2>/dev/null; srv_pid=""; fi
  kms_stop
  if [ -n "${AKM_TOOLS_KEEP:-}" ]; then echo "# AKM_TOOLS_KEEP: logs and datadir left in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'echo "# interrupted or over time"; fail "run interrupted (signal or the 300 s bound)"; echo "$PASSED passed, $FAILED failed"; exit 1' INT TERM

TOOL="$ROOT/build/mariadb-aws-keys"
[ -x "$TOOL" ] && [ -f "$ROOT/build/aws_key_management.so" ] || { fail "build/mariadb-aws-keys or build/aws_key_management.so missing: make"; finish; }
SRV_PORT=$(srv_free_port 25306) || { fail "no free port"; finish; }

# q SQL...: one bounded client call, tab-separated, no column names.
q() { timeout 30 mariadb --no-defaults -S "$SRV_DIR/mysqld.sock" -uroot -N -B "$@"; }

srv_install || { fail "mariadb-install-db"; finish; }
kms_start "$WORK/kms" >"$WORK/kms-start.log" 2>&1 || { cat "$WORK/kms-start.log"; fail "starting the KMS emulator"; finish; }
DATA="$SRV_DIR/data"
mkdir -m 700 "$DATA/.aws"
cp "$KMS_DIR/kms-credentials" "$DATA/.aws/credentials"
OLD_ARN="arn:aws:kms:$KMS_REGION:111122223333:key/$KMS_KEY_ID"

CNF="$WORK/my.cnf"
cat >"$CNF" <<EOF
[client]
socket = $SRV_DIR/mysqld.sock
user = root

[mysqld]
datadir = $DATA
plugin_load_add = aws_key_management
aws_key_management_master_key_id = $KMS_ALIAS
aws_key_management_endpoint_url = http://$KMS_ADDR
aws_key_management_request_timeout = 2000
innodb_encrypt_tables = ON
innodb_encrypt_log = ON
innodb_encryption_threads = 4
innodb_encryption_rotate_key_age = 1
encrypt_tmp_files = ON
encrypt_binlog = ON
aria_encrypt_tables = ON
log_bin = mysql-bin
server_id = 1
EOF
SRV_DEFAULTS_FILE=$CNF
# The server's and the tool's environment: nothing but the datadir's
# credentials file (Debian's mysql user has home /nonexistent).
ENV=(-u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE -u AWS_REGION
  -u AWS_DEFAULT_REGION -u AWS_SHARED_CREDENTIALS_FILE -u AWS_CREDENTIAL_PROFILES_FILE -u MYSQL_PWD
  HOME=/nonexistent AWS_CONFIG_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true)
SRV_ENV=("${ENV[@]}")
# tool ARGS...: runs the tool with the option file; stdout to $WORK/out,
# stderr to $WORK/err; returns its exit code.
tool() { env "${ENV[@]}" timeout 120 "$TOOL" --defaults-file "$CNF" "$@" >"$WORK/out" 2>"$WORK/err"; }
# statuses: "file status" lines of the list --json in $WORK/out.
statuses() { perl -MJSON::PP -0777 -ne 'my $d = decode_json($_); print "$_->{file} $_->{status}\n" for @{$d->{keys}}' "$WORK/out"; }
# status FILE: its status in $WORK/out.
status() { statuses | awk -v f="$1" '$1 == f { print $2 }'; }
show() { sed 's/^/#   /' "$WORK/out" "$WORK/err" | head -40; }

srv_start || { fail "start mariadbd with the option file"; finish; }
ok "mariadbd started from the option file, plugin loaded, credentials from the datadir"

q -e "CREATE DATABASE d; USE d;
  CREATE TABLE d.t1 (a INT PRIMARY KEY, b VARCHAR(100)) ENGINE=InnoDB;
  CREATE TABLE d.t5 (a INT PRIMARY KEY, b VARCHAR(100)) ENCRYPTED=YES ENCRYPTION_KEY_ID=5;
  CREATE TABLE d.t6 (a INT PRIMARY KEY) ENCRYPTED=YES ENCRYPTION_KEY_ID=6;
  CREATE TABLE d.aria (a INT PRIMARY KEY, b VARCHAR(100)) ENGINE=Aria TRANSACTIONAL=1;
  INSERT INTO d.t1 SELECT seq, REPEAT('x', 50) FROM seq_1_to_2000;
  INSERT INTO d.t5 SELECT seq, REPEAT('y', 50) FROM seq_1_to_2000;
  INSERT INTO d.t6 VALUES (1); INSERT INTO d.aria SELECT seq, 'z' FROM seq_1_to_100;" 2>"$WORK/sql.err" || { cat "$WORK/sql.err"; fail "creating tables"; }

# Two rotations of every key, a new binlog after each (each binlog keeps
# the key 1 version it was started with).
q -e "SET GLOBAL aws_key_management_rotate_key=-1; FLUSH BINARY LOGS; SET GLOBAL aws_key_management_rotate_key=-1; FLUSH BINARY LOGS;
  INSERT INTO d.t1 VALUES (5000, 'after'); DROP TABLE d.t6; CREATE TABLE d.t6b (a INT) ENCRYPTED=YES ENCRYPTION_KEY_ID=6;
  INSERT INTO d.t6b VALUES (1);" || fail "rotating"
# The rotation threads re-encrypt d.t5's pages to version 3 (age 1).
for _ in $(seq 1 120); do
  [ "$(q -e "SELECT MIN_KEY_VERSION FROM information_schema.INNODB_TABLESPACES_ENCRYPTION WHERE NAME='d/t5'")" = 3 ] && break
  sleep 0.5
done
t5=$(q -e "SELECT CONCAT(MIN_KEY_VERSION, '/', CURRENT_KEY_VERSION) FROM information_schema.INNODB_TABLESPACES_ENCRYPTION WHERE NAME='d/t5'")
t6=$(q -e "SELECT CONCAT(MIN_KEY_VERSION, '/', CURRENT_KEY_VERSION) FROM information_schema.INNODB_TABLESPACES_ENCRYPTION WHERE NAME='d/t6b'")
[ "$t5" = 3/3 ] && [ "$t6" = 3/3 ] && ok "the server re-encrypted d.t5 to key 5 version 3; d.t6b uses key 6 version 3" ||
  fail "information_schema: d/t5 $t5, d/t6b $t6 (want 3/3)"

# 1. list without a server: only the latest versions are known as such.
if tool list && grep -q "^5    1 .* unknown  *no server was asked (--server) which versions it uses$" "$WORK/out" && grep -q "^6    3 .* latest *$" "$WORK/out" &&
   grep -q "key files in $DATA: .* latest" "$WORK/out" && grep -q "add --server" "$WORK/out"; then
  ok "list from the option file's datadir, no server: versions latest/unknown"
else show; fail "list without a server"; fi

if tool list --server --json; then
  got=$(statuses | tr '\n' ',')
  want="aws-kms-key.1.1 in-use,aws-kms-key.1.2 in-use,aws-kms-key.1.3 in-use,aws-kms-key.2.1 kept,aws-kms-key.2.2 kept,aws-kms-key.2.3 latest,aws-kms-key.5.1 not-needed,aws-kms-key.5.2 not-needed,aws-kms-key.5.3 in-use,aws-kms-key.6.1 not-needed,aws-kms-key.6.2 not-needed,aws-kms-key.6.3 in-use,"
  [ "$got" = "$want" ] && ok "list --server: key 5/6 versions 1-2 not needed (re-encrypted, dropped); key 1 in use; key 2 kept (temporary files)" ||
    { show; fail "list --server statuses: $got; want $want"; }
  used=$(perl -MJSON::PP -0777 -ne 'my $d = decode_json($_); for (@{$d->{keys}}) { print "$_->{file}: ", join("; ", @{$_->{used_by}}), "\n" }' "$WORK/out")
  # (grep -q on a here-string: echo | grep -q fails under pipefail when
  # grep exits before echo has written everything.)
  grep -q "^aws-kms-key.1.1: .*redo-log: $DATA/ib_logfile0; binlog: mysql-bin.000001$" <<<"$used" &&
  grep -q "^aws-kms-key.1.2: .*binlog: mysql-bin.000002$" <<<"$used" && grep -q "^aws-kms-key.1.3: .*binlog: mysql-bin.000003$" <<<"$used" &&
  grep -q "^aws-kms-key.5.3: innodb: 1 tablespace (first: d/t5)$" <<<"$used" &&
    ok "used by: the redo log (key 1 version 1), each binlog its own version, d/t5" || { echo "$used" | sed 's/^/#   /'; fail "used_by"; }
  # The redo log's version as InnoDB reads it: its header, checked
  # against the bytes (big-endian key id 1 and version at offset 48).
  hdr=$(od -An -tx1 -j48 -N8 "$DATA/ib_logfile0" | tr -d ' \n')
  redo=$(perl -MJSON::PP -0777 -ne 'my $d = decode_json($_); print $d->{server}{redo_log}{key_version}' "$WORK/out")
  [ "$hdr" = "0000000100000001" ] && [ "$redo" = 1 ] && ok "redo log key version 1, as its header bytes say" || fail "redo log: header $hdr, tool $redo"
else show; fail "list --server --json (exit $?)"; fi

if tool list --server; then
  grep -q "^5    1 .*not-needed  no InnoDB tablespace, log or temporary file of the server uses key 5 version 1$" "$WORK/out" &&
  grep -q "^server: 10.11.*; .* encrypted InnoDB tablespaces; redo log: key 1 version 1; 3 binary/relay logs$" "$WORK/out" &&
  grep -q "^12 key files in $DATA: 5 in-use, 1 latest, 2 kept, 4 not-needed$" "$WORK/out" &&
    ok "list --server as a table" || { show; fail "list --server table"; }
else show; fail "list --server (exit $?)"; fi

# A user without PROCESS: InnoDB's use unknown, every old version kept,
# the reason on stderr, exit 1.
q -e "CREATE USER lister@localhost IDENTIFIED BY 'pw'; GRANT SELECT ON *.* TO lister@localhost"
tool list --server --user lister -ppw; rc=$?
[ "$rc" = 1 ] && grep -q "^5    1 .*kept  *InnoDB's use is not known" "$WORK/out" &&
  grep -q "warning: InnoDB's tablespaces are not known: reading information_schema.INNODB_TABLESPACES_ENCRYPTION needs the PROCESS privilege" "$WORK/err" &&
  ok "without PROCESS: old versions kept, the privilege named, exit 1" || { show; fail "without PROCESS (exit $rc)"; }

# PURGE the binlogs of versions 1 and 2 and restart: temporary files of
# the new server cannot use key 2's old versions.
q -e "PURGE BINARY LOGS TO 'mysql-bin.000003'"
# The tool knows the start time to the second and wants a newer version
# created 2 s before it: a real restart is later than that anyway.
sleep 3
srv_stop || fail "shutdown"
srv_start || { fail "restart"; finish; }
if tool list --server --json; then
  got=$(statuses | grep -E "aws-kms-key\.(1|2)\." | tr '\n' ',')
  want="aws-kms-key.1.1 in-use,aws-kms-key.1.2 kept,aws-kms-key.1.3 in-use,aws-kms-key.2.1 not-needed,aws-kms-key.2.2 not-needed,aws-kms-key.2.3 latest,"
  [ "$got" = "$want" ] && ok "after PURGE and a restart: key 2 versions 1-2 not needed; key 1 version 2 only kept for Aria" ||
    { perl -MJSON::PP -0777 -ne 'my $d = decode_json($_); print "#   $_->{file}: @{$_->{reasons}}\n" for @{$d->{keys}}' "$WORK/out"; fail "after restart: $got; want $want"; }
else show; fail "list after restart"; fi

# The table information_schema reads disabled (as mysql-test-run has it).
srv_stop
srv_start --innodb-tablespaces-encryption=OFF || { fail "restart without INNODB_TABLESPACES_ENCRYPTION"; finish; }
tool list --server; rc=$?
[ "$rc" = 1 ] && grep -q "information_schema.INNODB_TABLESPACES_ENCRYPTION is not available: the server runs with its plugin disabled" "$WORK/err" &&
  grep -q "start it with --innodb-tablespaces-encryption" "$WORK/err" && grep -q "^5    1 .*kept" "$WORK/out" &&
  ok "INNODB_TABLESPACES_ENCRYPTION disabled: said so with the fix, versions kept, exit 1" || { show; fail "I_S disabled (exit $rc)"; }
srv_stop
srv_start || { fail "restart"; finish; }

# 2. verify.
tool verify && grep -q "^verified 12 key files in $DATA: 12 ok, 0 failed" "$WORK/out" && ok "verify: 12 ok" || { show; fail "verify"; }

# 3. Rotate the CMK, as the README says, while rows are written.
mkdir -p "$WORK/before" && cp -p "$DATA"/aws-kms-key.* "$WORK/before/"
NEW_ID=$(kms_aws kms create-key --query KeyMetadata.KeyId --output text 2>"$WORK/aws.err") && kms_aws kms create-alias --alias-name alias/mariadb-new --target-key-id "$NEW_ID" 2>>"$WORK/aws.err" ||
  { cat "$WORK/aws.err"; fail "creating the new CMK"; finish; }
NEW_ARN="arn:aws:kms:$KMS_REGION:111122223333:key/$NEW_ID"
sed -i "s|^aws_key_management_master_key_id = .*|aws_key_management_master_key_id = alias/mariadb-new|" "$CNF"
q -e "SET GLOBAL aws_key_management_master_key_id = 'alias/mariadb-new'; SET GLOBAL aws_key_management_rotate_key = -1" || fail "master_key_id, rotate_key=-1"
( for i in $(seq 1 300); do q -e "INSERT INTO d.t1 VALUES ($((10000 + i)), 'during'); INSERT INTO d.t5 VALUES ($((10000 + i)), 'during')" || exit 1; done ) &
WRITER_PID=$!
tool rewrap --dry-run --to alias/mariadb-new && grep -q "^dry run, nothing changed: 12 of 16 key files in $DATA would be re-wrapped under $NEW_ARN, 4 are already, 0 cannot be" "$WORK/out" &&
  ok "rewrap --dry-run: 12 to do, the 4 new versions already under the new CMK" || { show; fail "rewrap --dry-run"; }
if tool rewrap --to alias/mariadb-new; then
  grep -q "^re-wrapped 12 key files in $DATA under $NEW_ARN: 4 were already, 0 failed" "$WORK/out" &&
  grep -q "no key file here is wrapped under $OLD_ARN any more" "$WORK/out" && ! grep -q "master_key_id" "$WORK/err" &&
    ok "rewrap --to alias/mariadb-new while rows are written: 12 re-wrapped, 4 already there" || { show; fail "rewrap output"; }
else show; fail "rewrap (exit $?)"; fi
wait "$WRITER_PID" && ok "300 + 300 inserts during the rewrap" || fail "inserts during the rewrap failed"
WRITER_PID=""
ls -d "$DATA"/\#sql-rewrap-backup-* >/dev/null 2>&1 && fail "a backup directory was left" || ok "no backup directory left"
tool list --kms --json && [ "$(perl -MJSON::PP -0777 -ne 'my $d = decode_json($_); print "$_->{cmk_arn}\n" for @{$d->{keys}}' "$WORK/out" | sort -u)" = "$NEW_ARN" ] &&
  ok "list --kms: all 16 under the new CMK" || { show; fail "list --kms after the rewrap"; }
tool verify && ok "verify after the rewrap" || { show; fail "verify after the rewrap"; }

kms_aws kms disable-key --key-id "$KMS_KEY_ID" 2>"$WORK/aws.err" || { cat "$WORK/aws.err"; fail "disable-key"; }
env "${ENV[@]}" "$TOOL" --defaults-file "$CNF" verify "$WORK/before" >"$WORK/out" 2>"$WORK/err"; rc=$?
[ "$rc" = 1 ] && grep -q "12 key files in $WORK/before: 0 ok, 12 failed" "$WORK/out" && grep -q "DisabledException - $OLD_ARN is disabled" "$WORK/err" &&
  ok "control: the key files as they were before the rewrap no longer unwrap (old CMK disabled)" || { show; fail "control (exit $rc)"; }

srv_stop || fail "shutdown"
mark=$(wc -l <"$SRV_DIR/error.log")
if srv_start; then
  log=$(tail -n +"$((mark + 1))" "$SRV_DIR/error.log")
  grep -q "AWS KMS plugin: unwrapped 16 of 16 key versions at start" <<<"$log" && ! grep -q "could not be decrypted" <<<"$log" &&
    ok "restart with the old CMK disabled: 16 of 16 versions unwrapped" || { echo "$log" | grep "AWS KMS" | sed 's/^/#   /'; fail "restart log"; }
  counts=$(q -e "SELECT COUNT(*) FROM d.t1; SELECT COUNT(*) FROM d.t5; SELECT COUNT(*) FROM d.t6b; SELECT COUNT(*) FROM d.aria" | tr '\n' ' ')
  [ "$counts" = "2301 2300 1 100 " ] && ok "every table reads back: $counts" || fail "tables: $counts"
  q -e "SHOW BINLOG EVENTS IN 'mysql-bin.000003'" >/dev/null && ok "the binlog of key 1 version 3 reads back" || fail "binlog"
  srv_stop || fail "clean shutdown"
else
  fail "the server does not start with the old CMK disabled"; tail -20 "$SRV_DIR/error.log" | sed 's/^/#   /'
fi

# 4. The README's "Operations" walk-through, command for command: every
# line of that section that starts with "$ " runs here, in order, in one
# shell, as a DBA's: the settings in ~/.my.cnf (which the tool, the
# server and the mariadb client read), AWS credentials and region in
# ~/.aws, the loopback KMS named by AWS_ENDPOINT_URL_KMS (for the AWS
# CLI, the plugin and the tool alike). "systemctl restart mariadb" is a
# restart of the private server. Each command must exit 0; the output is
# in the log (for the README's examples).
note "README Operations commands"
SRV_DIR="$WORK/ops" HOMEDIR="$WORK/home" CWD="$WORK/cwd"
mkdir -p "$HOMEDIR/.aws" "$CWD"
srv_install || { fail "mariadb-install-db (README)"; finish; }
cp "$KMS_DIR/kms-credentials" "$HOMEDIR/.aws/credentials"
printf '[default]\nregion = %s\n' "$KMS_REGION" >"$HOMEDIR/.aws/config"
README_KEY=$(kms_aws kms create-key --query KeyMetadata.KeyId --output text) &&
  kms_aws kms create-alias --alias-name alias/mariadb --target-key-id "$README_KEY" || { fail "creating alias/mariadb"; finish; }
printf '%s\n' "[client]" "socket = $SRV_DIR/mysqld.sock" "user = root" "" "[mariadb]" "datadir = $SRV_DIR/data" \
  "plugin_load_add = aws_key_management" "aws_key_management_master_key_id = alias/mariadb" "innodb_encrypt_tables = ON" \
  "innodb_encrypt_log = ON" "innodb_encryption_threads = 4" "encrypt_tmp_files = ON" "encrypt_binlog = ON" \
  "log_bin = mysql-bin" "server_id = 1" >"$HOMEDIR/.my.cnf"
ENV=(-u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE -u AWS_REGION
  -u AWS_DEFAULT_REGION -u AWS_SHARED_CREDENTIALS_FILE -u AWS_CREDENTIAL_PROFILES_FILE -u AWS_CONFIG_FILE -u MYSQL_PWD
  HOME="$HOMEDIR" AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL_KMS="http://$KMS_ADDR" AWS_PAGER=
  PATH="$ROOT/build:$PATH")
SRV_ENV=("${ENV[@]}") SRV_DEFAULTS_FILE="$HOMEDIR/.my.cnf"
srv_start || { fail "start the README's server"; finish; }
# A history for the example: tables on keys 1 and 5, two rotations, a
# table dropped; the rotation threads re-encrypt what they may.
q -e "CREATE DATABASE shop; USE shop;
  CREATE TABLE orders (id INT PRIMARY KEY, note VARCHAR(100)) ENGINE=InnoDB;
  CREATE TABLE cards (id INT PRIMARY KEY, pan VARCHAR(32)) ENCRYPTED=YES ENCRYPTION_KEY_ID=5;
  CREATE TABLE old_cards (id INT PRIMARY KEY) ENCRYPTED=YES ENCRYPTION_KEY_ID=6;
  INSERT INTO orders SELECT seq, 'o' FROM seq_1_to_1000; INSERT INTO cards SELECT seq, 'c' FROM seq_1_to_1000;
  SET GLOBAL aws_key_management_rotate_key = -1; FLUSH BINARY LOGS; DROP TABLE old_cards;
  SET GLOBAL aws_key_management_rotate_key = -1; FLUSH BINARY LOGS;" 2>"$WORK/sql.err" || { cat "$WORK/sql.err"; fail "README history"; }
for _ in $(seq 1 120); do
  [ "$(q -e "SELECT MIN_KEY_VERSION FROM information_schema.INNODB_TABLESPACES_ENCRYPTION WHERE NAME='shop/cards'")" = 3 ] && break
  sleep 0.5
done
sleep 3 # so that the example's ages are not all 0s
n=0
while IFS= read -r line; do
  n=$((n + 1))
  echo "## \$ $line"
  case "$line" in
    # (A restart comes a while after the last rotation: 3 s is enough
    # for the tool's view of key 2 to see it.)
    "systemctl restart mariadb") { sleep 3 && srv_stop && srv_start; } >"$WORK/out" 2>"$WORK/err"; rc=$? ;;
    *) (cd "$CWD" && env "${ENV[@]}" bash -c "$line" </dev/null >"$WORK/out" 2>"$WORK/err"); rc=$? ;;
  esac
  sed 's/^/##   /' "$WORK/out"
  sed 's/^/##   (stderr) /' "$WORK/err"
  [ "$rc" = 0 ] && ok "README: \$ $line" || fail "README: \$ $line (exit $rc)"
  case "$line" in
    *"SET GLOBAL aws_key_management_master_key_id"*)
      # ... and in the option file, as the README says.
      sed -i "s|^aws_key_management_master_key_id = .*|aws_key_management_master_key_id = alias/mariadb-2025|" "$HOMEDIR/.my.cnf" ;;
  esac
done < <(awk '/^## Operations/ { f = 1; next } /^## / { f = 0 } f && /^\$ / { sub(/^\$ /, ""); print }' "$ROOT/README.md")
[ "$n" -ge 10 ] && ok "the README's Operations section has $n commands, all run" || fail "only $n commands found in the README's Operations section"
[ -z "$srv_pid" ] || srv_stop
finish
