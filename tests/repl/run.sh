#!/usr/bin/env bash
# Replication with encrypted binary and relay logs: a primary and a
# replica (two private mariadbd on 127.0.0.1, GTID replication), each with
# its own datadir and key files, the release build against the same
# loopback KMS emulator, encrypt_binlog=ON on both, InnoDB tables
# encrypted (innodb_encrypt_tables=ON, and ENCRYPTED=YES on another key).
#
#   1. Rows written on the primary appear on the replica.
#   2. rotate_key=-1 on the primary: its next binlog uses key 1 version 2
#      (mariadb-aws-keys list --server); later writes replicate; the
#      replica's key files are its own and are not touched.
#   3. The primary restarts, then the replica: replication resumes, both
#      threads running, no error.
#   4. mariadb-binlog --read-from-remote-server reads the primary's events
#      (the server decrypts them) and shows every marker row; on the file
#      itself mariadb-binlog reads only the header (key version 2).
#   5. No marker appears in clear in any binlog, relay log or data file of
#      either node (a table created ENCRYPTED=NO is the positive control:
#      its marker is found in its .ibd).
#
# Prints "ok - ..." / "FAIL - ..." per check and "N passed, N failed";
# exits non-zero on any failure. Bounded (300 s). AKM_REPL_KEEP=1 keeps
# the work directory.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bounded 300 "$@"
. "$ROOT/tests/nodes.sh"
. "$ROOT/scripts/kms.sh"

WORK=$(mktemp -d /tmp/akm-repl.XXXXXX)
NODE_ROOT=$WORK
cleanup() {
  trap - EXIT INT TERM
  node_kill_all
  kms_stop
  if [ -n "${AKM_REPL_KEEP:-}" ]; then echo "# AKM_REPL_KEEP: $WORK left in place"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'echo "# interrupted or over time"; fail "run interrupted (signal or the 300 s bound)"; echo "$PASSED passed, $FAILED failed"; exit 1' INT TERM

nodes_prepare "$WORK" || finish
mapfile -t NODE_PORT < <(node_free_ports 26306 2)
[ "${#NODE_PORT[@]}" = 2 ] || { fail "no 2 free ports from 26306"; finish; }
NODE_PORT=(0 "${NODE_PORT[@]}")
# The servers see only the credentials file (kms_env).
mapfile -t SRV_ENV < <(kms_env)

# write_cnf N: node N's option file (server_id N).
write_cnf() {
  local n=$1 d; d=$(node_dir "$1")
  { node_cnf "$n"; cat <<EOF
server_id = $n
log_bin = mysql-bin
relay_log = relay-bin
log_slave_updates = ON
gtid_strict_mode = ON
EOF
  } >"$d/my.cnf"
}
for n in 1 2; do
  node_install "$n" || { fail "mariadb-install-db (node $n)"; finish; }
  write_cnf "$n"
done
if node_start 1 && node_start 2; then
  ok "primary (port ${NODE_PORT[1]}) and replica (port ${NODE_PORT[2]}) started, release build, loopback KMS at $KMS_ADDR"
else fail "starting the servers"; finish; fi
P=$(node_dir 1)/data R=$(node_dir 2)/data
TOOL="$ROOT/build/mariadb-aws-keys"

# Marker strings: random, so no file can hold one by chance.
TAG=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
M1=AKMREPL${TAG}first M2=AKMREPL${TAG}rotated M3=AKMREPL${TAG}restart1 M4=AKMREPL${TAG}restart2
CONTROL=AKMREPL${TAG}cleartext

# sync_replica: waits (at most 60 s) until the replica applied the
# primary's whole GTID position.
sync_replica() {
  local pos r
  pos=$(node_sql 1 -e "SELECT @@gtid_binlog_pos") || return 1
  r=$(node_sql 2 -e "SELECT MASTER_GTID_WAIT('$pos', 60)") || return 1
  [ "$r" = 0 ] || { echo "# MASTER_GTID_WAIT('$pos', 60) returned '$r'"; return 1; }
}
# status_ok: the replica's both threads run and no error is recorded.
status_ok() {
  local s; s=$(node_sql 2 --column-names -e "SHOW REPLICA STATUS\G" | tr -s " ")
  grep -q "^ *Slave_IO_Running: Yes$" <<<"$s" && grep -q "^ *Slave_SQL_Running: Yes$" <<<"$s" &&
    grep -q "^ *Last_Error: *$" <<<"$s" && grep -q "^ *Last_SQL_Error: *$" <<<"$s" && return 0
  grep -E "Running|Error|Gtid_IO_Pos" <<<"$s" | sed 's/^/#   /'
  return 1
}
rows() { node_sql "$1" -e "SELECT GROUP_CONCAT(b ORDER BY a) FROM d.t1; SELECT GROUP_CONCAT(b ORDER BY a) FROM d.t5" | tr '\n' ' '; }
# insert MARKER: one row with it in each encrypted table.
insert() { node_sql 1 -e "INSERT INTO d.t1 (b) VALUES ('$1'); INSERT INTO d.t5 (b) VALUES ('$1')"; }

# --------------------------------------------------- 1. replicate
node_sql 1 -e "CREATE USER repl@'127.0.0.1' IDENTIFIED BY 'replpw'; GRANT REPLICATION SLAVE ON *.* TO repl@'127.0.0.1';
  CREATE DATABASE d;
  CREATE TABLE d.t1 (a INT AUTO_INCREMENT PRIMARY KEY, b VARCHAR(100)) ENGINE=InnoDB;
  CREATE TABLE d.t5 (a INT AUTO_INCREMENT PRIMARY KEY, b VARCHAR(100)) ENGINE=InnoDB ENCRYPTED=YES ENCRYPTION_KEY_ID=5;
  CREATE TABLE d.plain (a INT PRIMARY KEY, b VARCHAR(100)) ENGINE=InnoDB ENCRYPTED=NO;
  INSERT INTO d.plain VALUES (1, '$CONTROL');" 2>"$WORK/sql.err" || { cat "$WORK/sql.err"; fail "creating tables on the primary"; }
insert "$M1" || fail "insert $M1"
if node_sql 2 -e "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=${NODE_PORT[1]}, MASTER_USER='repl',
     MASTER_PASSWORD='replpw', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START REPLICA" 2>"$WORK/sql.err"; then
  ok "the replica follows the primary by GTID (MASTER_USE_GTID=slave_pos)"
else cat "$WORK/sql.err"; fail "CHANGE MASTER / START REPLICA"; fi
if sync_replica && [ "$(rows 2)" = "$M1 $M1 " ]; then
  ok "rows written on the primary are on the replica (d.t1 on key 1, d.t5 on key 5)"
else fail "replica rows: '$(rows 2)'"; fi
enc=$(node_sql 2 -e "SELECT GROUP_CONCAT(CONCAT(NAME, ':', ENCRYPTION_SCHEME, ':', CURRENT_KEY_ID) ORDER BY NAME)
  FROM information_schema.INNODB_TABLESPACES_ENCRYPTION WHERE NAME LIKE 'd/%'")
[ "$enc" = "d/plain:0:1,d/t1:1:1,d/t5:1:5" ] && ok "on the replica too d.t1 is encrypted with key 1, d.t5 with key 5 (d.plain, ENCRYPTED=NO, is not)" || fail "replica tablespaces: '$enc'"

# --------------------------------------------------- 2. rotate_key=-1
keys() { (cd "$1" && ls aws-kms-key.* | sort | tr '\n' ' '); }
R_KEYS_BEFORE=$(keys "$R")
node_sql 1 -e "SET GLOBAL aws_key_management_rotate_key=-1; FLUSH BINARY LOGS" || fail "rotate_key=-1 on the primary"
insert "$M2" || fail "insert $M2"
if sync_replica && [ "$(rows 2)" = "$M1,$M2 $M1,$M2 " ]; then
  ok "after rotate_key=-1 and FLUSH BINARY LOGS on the primary, new rows replicate"
else fail "replica rows after the rotation: '$(rows 2)'"; fi
# used_by of each key file as "file: use; use" lines.
used_by() {
  env "${SRV_ENV[@]}" timeout 120 "$TOOL" --defaults-file "$(node_dir "$1")/my.cnf" list --server --json >"$WORK/list.json" 2>"$WORK/list.err"
  perl -MJSON::PP -0777 -ne 'my $d = decode_json($_); for (@{$d->{keys}}) { print "$_->{file}: ", join("; ", @{$_->{used_by}}), "\n" }' "$WORK/list.json"
}
used=$(used_by 1)
if grep -q "^aws-kms-key.1.1: .*binlog: mysql-bin.000001" <<<"$used" && grep -q "^aws-kms-key.1.2: .*binlog: mysql-bin.000002" <<<"$used"; then
  ok "primary: mysql-bin.000001 uses key 1 version 1, mysql-bin.000002 version 2 (list --server, from the binlog headers)"
else sed 's/^/#   /' "$WORK/list.err" - <<<"$used"; fail "primary's binlog key versions"; fi
used=$(used_by 2)
if grep -q "^aws-kms-key.1.1: .*binlog: relay-bin.0" <<<"$used" && grep -q "^aws-kms-key.1.1: .*mysql-bin.000001" <<<"$used" &&
   [ "$(keys "$R")" = "$R_KEYS_BEFORE" ] && [ "$R_KEYS_BEFORE" = "aws-kms-key.1.1 aws-kms-key.2.1 aws-kms-key.5.1 " ]; then
  ok "replica: its own key files ($R_KEYS_BEFORE), untouched by the primary's rotation; its relay and binary logs on key 1 version 1"
else sed 's/^/#   /' "$WORK/list.err" - <<<"$used"; fail "replica key files: before '$R_KEYS_BEFORE', now '$(keys "$R")'"; fi
if [ "$(keys "$P")" = "aws-kms-key.1.1 aws-kms-key.1.2 aws-kms-key.2.1 aws-kms-key.2.2 aws-kms-key.5.1 aws-kms-key.5.2 " ] &&
   ! cmp -s "$P/aws-kms-key.1.1" "$R/aws-kms-key.1.1"; then
  ok "primary: every key rotated (1, 2 for temporary files, 5); key 1 version 1 differs from the replica's (keys are per node)"
else fail "primary key files: '$(keys "$P")'"; fi

# --------------------------------------------------- 3. restarts
node_stop 1 || fail "primary shutdown exit status $?"
node_start 1 || { fail "restarting the primary"; finish; }
insert "$M3" || fail "insert $M3"
if sync_replica && status_ok && [ "$(rows 2)" = "$M1,$M2,$M3 $M1,$M2,$M3 " ]; then
  ok "primary restarted: the replica reconnects and applies new rows, both threads Yes, no error"
else fail "after the primary's restart: '$(rows 2)'"; fi
node_stop 2 || fail "replica shutdown exit status $?"
insert "$M4" || fail "insert $M4"
node_start 2 || { fail "restarting the replica"; finish; }
if sync_replica && status_ok && [ "$(rows 2)" = "$M1,$M2,$M3,$M4 $M1,$M2,$M3,$M4 " ]; then
  ok "replica restarted: it catches up on rows written while it was down, both threads Yes, no error"
else fail "after the replica's restart: '$(rows 2)'"; fi
a=$(node_sql 1 -e "CHECKSUM TABLE d.t1, d.t5" | tr '\t\n' '  ') b=$(node_sql 2 -e "CHECKSUM TABLE d.t1, d.t5" | tr '\t\n' '  ')
[ "$a" = "$b" ] && ok "same CHECKSUM TABLE on both ($a)" || fail "checksums: primary '$a', replica '$b'"

# --------------------------------------------------- 4. remote binlog
if timeout 60 mariadb-binlog --no-defaults --read-from-remote-server --host=127.0.0.1 --port="${NODE_PORT[1]}" \
     --user=repl --password=replpw --verbose mysql-bin.000001 --to-last-log >"$WORK/remote.txt" 2>"$WORK/remote.err"; then
  n=0
  for m in "$M1" "$M2" "$M3" "$M4"; do
    [ "$(grep -c "^###   @2='$m'$" "$WORK/remote.txt")" = 2 ] && n=$((n + 1))
  done
  [ "$n" = 4 ] && ok "mariadb-binlog --read-from-remote-server --verbose: every marker row, twice (d.t1, d.t5)" ||
    { grep "^###   @2=" "$WORK/remote.txt" | sed 's/^/#   /'; fail "remote binlog: $n of 4 markers"; }
  # Each binlog starts with a format description ("Start: binlog v 4")
  # followed by its Start_encryption event.
  starts=$(grep -c "Start: binlog v 4" "$WORK/remote.txt") encs=$(grep -c "(Start_encryption)" "$WORK/remote.txt")
  [ "$starts" = 3 ] && [ "$encs" = 3 ] && ok "the remote read covers the primary's 3 binlogs (one more after its restart), each with its Start_encryption event" ||
    fail "remote read: $starts binlogs, $encs Start_encryption events (want 3 and 3)"
else cat "$WORK/remote.err"; fail "mariadb-binlog --read-from-remote-server"; fi

# ... while the file itself cannot be read without the server.
if ! mariadb-binlog --no-defaults "$P/mysql-bin.000002" >"$WORK/local.txt" 2>"$WORK/local.err" &&
   grep -q "^# Encryption scheme: 1, key_version: 2, nonce: " "$WORK/local.txt" && grep -q "Event decryption failure" "$WORK/local.err"; then
  ok "mariadb-binlog on the file mysql-bin.000002 itself: 'key_version: 2', then 'Event decryption failure', exit non-zero"
else cat "$WORK/local.err"; fail "mariadb-binlog of a local encrypted binlog"; fi

# --------------------------------------------------- 5. nothing in clear
node_stop 2 || fail "replica shutdown exit status $?"
node_stop 1 || fail "primary shutdown exit status $?"
logs=$(ls "$P"/mysql-bin.0* "$R"/mysql-bin.0* "$R"/relay-bin.0* | wc -l)
clear=$(grep -rlaE "$M1|$M2|$M3|$M4" "$P" "$R")
if [ -z "$clear" ] && [ "$logs" -ge 7 ]; then
  ok "no marker in clear in any file of either datadir ($logs binary and relay logs, the .ibd files, the redo logs)"
else fail "markers in clear in: $clear (binary and relay logs: $logs)"; fi
if [ "$(grep -rla "$CONTROL" "$P" "$R" | grep -c '/d/plain.ibd$')" = 2 ]; then
  ok "control: the row of the ENCRYPTED=NO table is found in clear in d/plain.ibd on both nodes"
else fail "control marker found in: $(grep -rla "$CONTROL" "$P" "$R" | tr '\n' ' ')"; fi
# The only [ERROR] lines allowed: the replica's reconnects while the
# primary restarted.
errs=$(cat "$(node_dir 1)/error.log" "$(node_dir 2)/error.log" | grep "\[ERROR\]" | grep -v "Slave I/O: error reconnecting to master")
[ -z "$errs" ] && ok "no [ERROR] in either error log but the replica's reconnects during the primary's restart" ||
  { sed 's/^/#   /' <<<"$errs" | head -10; fail "[ERROR] lines in the error logs"; }

finish
