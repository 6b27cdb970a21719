#!/usr/bin/env bash
# A 3-node Galera cluster on 127.0.0.1 (Debian's galera-4 and mariadbd),
# every node with the release build against the same loopback KMS
# emulator, its own datadir and option file, InnoDB tables encrypted.
#
#   1. Node 1 bootstraps (--wsrep-new-cluster); nodes 2 and 3 join by SST
#      with wsrep_sst_method=mariabackup: each receives the donor's key
#      files (the same bytes) and unwraps them through KMS at start.
#   2. Writes on every node reach the others; a new key id is made by
#      each node for itself (key files are per node).
#   3. rotate_key=-1 on node 1: its key versions move, the others' do
#      not; every node keeps serving reads and writes.
#   4. Node 2 stops, node 1 writes, node 2 comes back by IST (its log says
#      so) with the rows.
#   5. Node 3 restarted with KMS unreachable (a closed loopback port): its
#      error log says so, InnoDB refuses to start without key 1 and the
#      node does not join; nodes 1 and 2 keep serving as a primary
#      component.
#   6. Node 3 back with another master key (CMK): it still unwraps the key
#      files wrapped under the first one (each blob names its CMK), and a
#      new key of node 3 is wrapped under the new CMK.
#   7. Node 1 with its key files in keyfile_dir (not the datadir): a node
#      joining by SST from it gets no key file and fails; the others keep
#      serving.
   8. A joiner whose only KMS credentials are <datadir>/.aws/credentials:
#      the SST script empties the datadir first, the SST fails.
#
# Prints "ok - ..." / "FAIL - ..." per check and "N passed, N failed";
# exits non-zero on any failure. Bounded (600 s). AKM_GALERA_KEEP=1 keeps
# the work directory.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bounded 600 "$@"
. "$ROOT/tests/nodes.sh"
. "$ROOT/scripts/kms.sh"

WORK=$(mktemp -d /tmp/akm-galera.XXXXXX)
NODE_ROOT=$WORK
NODE_WAIT=180
cleanup() {
  trap - EXIT INT TERM
  node_kill_all
  kms_stop
  if [ -n "${AKM_GALERA_KEEP:-}" ]; then echo "# AKM_GALERA_KEEP: $WORK left in place"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'echo "# interrupted or over time"; fail "run interrupted (signal or the 600 s bound)"; echo "$PASSED passed, $FAILED failed"; exit 1' INT TERM

PROVIDER=/usr/lib/galera/libgalera_smm.so
[ -f "$PROVIDER" ] || { fail "$PROVIDER not found: install galera-4 (scripts/deps.sh)"; finish; }
command -v socat >/dev/null || { fail "socat not found (wsrep_sst_mariabackup needs it): scripts/deps.sh"; finish; }
nodes_prepare "$WORK" || finish
# Per node: mysql, group communication, IST, SST ports; one more port
# that stays closed (the unreachable KMS).
mapfile -t P < <(node_free_ports 27306 13)
[ "${#P[@]}" = 13 ] || { fail "no 13 free ports from 27306"; finish; }
declare -A GCOMM IST SST
for n in 1 2 3; do
  NODE_PORT[$n]=${P[$((n * 4 - 4))]} GCOMM[$n]=${P[$((n * 4 - 3))]} IST[$n]=${P[$((n * 4 - 2))]} SST[$n]=${P[$((n * 4 - 1))]}
done
CLOSED=${P[12]}
CLUSTER="gcomm://127.0.0.1:${GCOMM[1]},127.0.0.1:${GCOMM[2]},127.0.0.1:${GCOMM[3]}"
# The servers, and the SST scripts and mariadb-backup they start, see only
# the credentials file (kms_env).
mapfile -t SRV_ENV < <(kms_env)
TOOL="$ROOT/build/mariadb-aws-keys"

# write_cnf N [ENDPOINT [MASTER_KEY]]: node N's option file.
write_cnf() {
  local n=$1 d; d=$(node_dir "$1")
  mkdir -p "$d"
  { node_cnf "$n"; cat <<EOF
innodb_autoinc_lock_mode = 2

[galera]
wsrep_on = ON
wsrep_provider = $PROVIDER
wsrep_cluster_name = akm_test
wsrep_cluster_address = $CLUSTER
wsrep_node_name = n$n
wsrep_node_address = 127.0.0.1:${GCOMM[$n]}
wsrep_node_incoming_address = 127.0.0.1:${NODE_PORT[$n]}
wsrep_provider_options = "gmcast.listen_addr=tcp://127.0.0.1:${GCOMM[$n]};ist.recv_addr=127.0.0.1:${IST[$n]};gcache.size=64M"
wsrep_sst_method = mariabackup
wsrep_sst_receive_address = 127.0.0.1:${SST[$n]}

[sst]
sockopt = bind=127.0.0.1
sst-log-archive-dir = $d/sst-log-archive
EOF
  } >"$d/my.cnf"
  if [ -n "${2:-}" ]; then sed -i "s|^aws_key_management_endpoint_url = .*|aws_key_management_endpoint_url = $2|" "$d/my.cnf"; fi
  if [ -n "${3:-}" ]; then sed -i "s|^aws_key_management_master_key_id = .*|aws_key_management_master_key_id = $3|" "$d/my.cnf"; fi
}
keys() { (cd "$(node_dir "$1")/data" && ls aws-kms-key.* 2>/dev/null | sort | tr '\n' ' '); }
status() { node_sql "$1" -e "SELECT CONCAT(@@wsrep_node_name, ':', VARIABLE_VALUE) FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME='$2'"; }
# count N TABLE: rows of d.TABLE on node N.
count() { node_sql "$1" -e "SELECT COUNT(*) FROM d.$2"; }

# two_primary: nodes 1 and 2 form a primary component of 2 (waits up to
# 60 s for them to notice that node 3 is gone); sets st.
two_primary() {
  local i
  for i in $(seq 1 60); do
    st=$(for n in 1 2; do node_sql "$n" -e "SELECT CONCAT(@@wsrep_node_name, ':', (SELECT GROUP_CONCAT(VARIABLE_VALUE ORDER BY VARIABLE_NAME)
      FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME IN ('WSREP_CLUSTER_SIZE', 'WSREP_CLUSTER_STATUS')))"; done | tr '\n' ' ')
    [ "$st" = "n1:2,Primary n2:2,Primary " ] && return 0
    sleep 1
  done
  return 1
}

# --------------------------------------------------- 1. bootstrap, SST
# Nodes 2 and 3 start with an empty datadir: SST fills it.
node_install 1 || { fail "mariadb-install-db (node 1)"; finish; }
for n in 1 2 3; do
  mkdir -p "$(node_dir "$n")/data"
  write_cnf "$n"
done
if node_start 1 --wsrep-new-cluster; then ok "node 1 bootstraps the cluster (--wsrep-new-cluster)"; else fail "node 1 bootstrap"; finish; fi
node_sql 1 -e "CREATE DATABASE d; USE d;
  CREATE TABLE d.t1 (a INT AUTO_INCREMENT PRIMARY KEY, b VARCHAR(100), n VARCHAR(10)) ENGINE=InnoDB;
  CREATE TABLE d.t5 (a INT AUTO_INCREMENT PRIMARY KEY, b VARCHAR(100), n VARCHAR(10)) ENGINE=InnoDB ENCRYPTED=YES ENCRYPTION_KEY_ID=5;
  INSERT INTO d.t1 (b, n) SELECT REPEAT('one', 30), 'n1' FROM seq_1_to_500;
  INSERT INTO d.t5 (b, n) SELECT REPEAT('five', 20), 'n1' FROM seq_1_to_500;
  SET GLOBAL aws_key_management_rotate_key = 5;
  INSERT INTO d.t5 (b, n) SELECT REPEAT('FIVE', 20), 'n1' FROM seq_1_to_500;" 2>"$WORK/sql.err" ||
  { cat "$WORK/sql.err"; fail "tables on node 1"; }
K1=$(keys 1)
for n in 2 3; do
  if node_start "$n"; then
    d=$(node_dir "$n")
    same=0
    for f in $K1; do cmp -s "$(node_dir 1)/data/$f" "$d/data/$f" && same=$((same + 1)); done
    if grep -q "WSREP: SST succeeded for position" "$d/error.log" && grep -q "mariabackup SST completed on joiner" "$d/error.log" &&
       [ "$(keys "$n")" = "$K1" ] && [ "$same" = "$(wc -w <<<"$K1")" ]; then
      ok "node $n joined by SST (mariabackup) and has node 1's key files, the same bytes ($K1)"
    else grep -i "sst\|ist" "$d/error.log" | tail -5 | sed 's/^/#   /'; fail "node $n: SST or key files ($(keys "$n"); $same identical)"; fi
    # The joiner's mariadb-backup --prepare loads the plugin too (with the
    # donor's settings, from backup-my.cnf) to read the encrypted redo log.
    if grep -q "AWS KMS plugin: unwrapped $(wc -w <<<"$K1") of $(wc -w <<<"$K1") key versions at start" "$d/error.log" &&
       grep -q "Loading encryption plugin from aws_key_management" "$d/data/mariabackup.prepare.log" &&
       [ "$(tail -1 "$d/data/mariabackup.prepare.log" | grep -c "completed OK!")" = 1 ]; then
      ok "node $n: mariadb-backup --prepare loaded the plugin (encrypted redo log applied), then the server unwrapped the donor's $(wc -w <<<"$K1") key versions through KMS"
    else grep "AWS KMS plugin" "$d/error.log" | tail -5 | sed 's/^/#   /'; fail "node $n: unwrap at start"; fi
    [ "$(count "$n" t5)" = 1000 ] && ok "node $n reads the encrypted tables written before it joined" || fail "node $n: d.t5 has $(count "$n" t5) rows"
  else fail "node $n did not join"; finish; fi
done
sizes=$(for n in 1 2 3; do status "$n" wsrep_cluster_size; done | tr '\n' ' ')
[ "$sizes" = "n1:3 n2:3 n3:3 " ] && ok "every node sees a cluster of 3 ($sizes)" || fail "cluster sizes: $sizes"

# checksums N: CHECKSUM TABLE of every table of d on node N, after it
# applied everything the cluster committed.
checksums() { node_sql "$1" -e "SET SESSION wsrep_sync_wait=15; CHECKSUM TABLE d.t1, d.t5, d.t7" | tr '\t\n' '  '; }
same_everywhere() {
  local a b c; a=$(checksums 1) b=$(checksums 2) c=$(checksums 3)
  [ "$a" = "$b" ] && [ "$b" = "$c" ] && [[ "$a" =~ ^d\.t1\ [1-9] ]] && return 0
  printf '#   node %s: %s\n' 1 "$a" 2 "$b" 3 "$c"
  return 1
}

# --------------------------------------------------- 2. writes, new key
MARK=AKMGALERA$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
node_sql 2 -e "INSERT INTO d.t5 (b, n) VALUES ('from node 2', 'n2'); INSERT INTO d.t1 (b, n) VALUES ('from node 2', 'n2');
  INSERT INTO d.t5 (b, n) VALUES ('$MARK', 'n2')" || fail "insert on node 2"
node_sql 3 -e "CREATE TABLE d.t7 (a INT AUTO_INCREMENT PRIMARY KEY, b VARCHAR(100), n VARCHAR(10)) ENGINE=InnoDB ENCRYPTED=YES ENCRYPTION_KEY_ID=7;
  INSERT INTO d.t7 (b, n) VALUES ('from node 3', 'n3')" || fail "table on key 7 from node 3"
if same_everywhere && [ "$(node_sql 1 -e "SELECT GROUP_CONCAT(n ORDER BY a) FROM d.t7")" = n3 ] &&
   [ "$(node_sql 3 -e "SELECT COUNT(*) FROM d.t5 WHERE b = 'from node 2'")" = 1 ]; then
  ok "writes on nodes 2 and 3 reach every node (CHECKSUM TABLE the same on all three)"
else fail "writes from nodes 2 and 3"; fi
k7=0 same7=0
for n in 1 2 3; do [ -f "$(node_dir "$n")/data/aws-kms-key.7.1" ] && k7=$((k7 + 1)); done
for n in 2 3; do cmp -s "$(node_dir 1)/data/aws-kms-key.7.1" "$(node_dir "$n")/data/aws-kms-key.7.1" && same7=$((same7 + 1)); done
[ "$k7" = 3 ] && [ "$same7" = 0 ] && ok "the new key 7: each node made its own aws-kms-key.7.1 (3 different files)" ||
  fail "key 7: $k7 nodes have aws-kms-key.7.1, $same7 identical to node 1's"

# --------------------------------------------------- 3. rotate on node 1
K2=$(keys 2) K3=$(keys 3)
node_sql 1 -e "SET GLOBAL aws_key_management_rotate_key = -1" || fail "rotate_key=-1 on node 1"
for n in 1 2 3; do
  node_sql "$n" -e "INSERT INTO d.t1 (b, n) VALUES ('after rotation', 'n$n'); INSERT INTO d.t5 (b, n) VALUES ('after rotation', 'n$n');
    INSERT INTO d.t7 (b, n) VALUES ('after rotation', 'n$n')" || fail "write on node $n after node 1 rotated"
done
if [ "$(keys 1)" = "aws-kms-key.1.1 aws-kms-key.1.2 aws-kms-key.2.1 aws-kms-key.2.2 aws-kms-key.5.1 aws-kms-key.5.2 aws-kms-key.5.3 aws-kms-key.7.1 aws-kms-key.7.2 " ] &&
   [ "$(keys 2)" = "$K2" ] && [ "$(keys 3)" = "$K3" ] && [ "$K2" = "$K3" ] && [[ "$K2" != *.1.2* ]]; then
  ok "rotate_key=-1 on node 1: node 1 has new versions of keys 1, 2, 5 and 7; nodes 2 and 3 keep theirs ($K2)"
else fail "key files: node 1 '$(keys 1)', node 2 '$(keys 2)' (was '$K2'), node 3 '$(keys 3)' (was '$K3')"; fi
v=$(for n in 1 2 3; do node_sql "$n" -e "SELECT CONCAT('n$n:', VARIABLE_VALUE) FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME='AWS_KEY_MANAGEMENT_VERSIONS_LOADED'"; done | tr '\n' ' ')
if same_everywhere; then ok "every node serves reads and writes after the rotation on node 1 (key versions loaded: $v)"
else fail "after the rotation on node 1"; fi

# --------------------------------------------------- 4. IST
node_stop 2 || fail "node 2 shutdown exit status $?"
node_sql 1 -e "USE d; INSERT INTO d.t5 (b, n) SELECT 'while node 2 was down', 'n1' FROM seq_1_to_300" || fail "write while node 2 is down"
mark=$(wc -l <"$(node_dir 2)/error.log")
if node_start 2; then
  tail -n +"$((mark + 1))" "$(node_dir 2)/error.log" >"$WORK/n2-rejoin.log"
  if grep -q "mariabackup IST completed on joiner" "$WORK/n2-rejoin.log" && grep -q "WSREP: IST received" "$WORK/n2-rejoin.log" &&
     ! grep -q "SST completed on joiner" "$WORK/n2-rejoin.log" &&
     [ "$(node_sql 2 -e "SET SESSION wsrep_sync_wait=15; SELECT COUNT(*) FROM d.t5 WHERE b = 'while node 2 was down'")" = 300 ]; then
    ok "node 2 rejoined by IST (its log: $(grep -o "Receiving IST\.\.\. *100.0% ([0-9]*/[0-9]* events) complete" "$WORK/n2-rejoin.log" | tail -1); no SST) with the 300 rows written while it was down"
  else grep -i "IST\|SST" "$WORK/n2-rejoin.log" | head -10 | sed 's/^/#   /'; fail "node 2's rejoin"; fi
else fail "node 2 did not rejoin"; fi

# --------------------------------------------------- 5. KMS unreachable
node_stop 3 || fail "node 3 shutdown exit status $?"
write_cnf 3 "http://127.0.0.1:$CLOSED"
mark=$(wc -l <"$(node_dir 3)/error.log")
# It does not come up (InnoDB refuses to start without key 1): bounded
# by the unwrap's deadline at start (3 x 2 s + 5 s) and the node's wait.
NODE_WAIT=90 node_start 3 >"$WORK/n3-nokms.out" 2>&1
started=$?
tail -n +"$((mark + 1))" "$(node_dir 3)/error.log" >"$WORK/n3-nokms.log"
nk=$(wc -w <<<"$K3")
if grep -q "AWS KMS plugin : KMS Client API 'Decrypt' failed : RequestError.*127.0.0.1:$CLOSED.*connection refused (aws-kms-key.1.1)" "$WORK/n3-nokms.log" &&
   grep -q "AWS KMS plugin: unwrapped 0 of $nk key versions at start" "$WORK/n3-nokms.log"; then
  ok "node 3 started with KMS unreachable: its error log names the failed Decrypt, the endpoint, the key file, and 'unwrapped 0 of $nk'"
else grep "AWS KMS\|InnoDB" "$WORK/n3-nokms.log" | tail -10 | sed 's/^/#   /'; fail "node 3 without KMS: error log"; fi
if ((started != 0)) && grep -q "InnoDB: cannot enable encryption, encryption plugin is not available" "$WORK/n3-nokms.log" &&
   grep -q "\[ERROR\] Aborting" "$WORK/n3-nokms.log" && [ -z "${NODE_PID[3]:-}" ]; then
  ok "node 3 refuses to start without its keys (InnoDB: 'cannot enable encryption'), it does not join"
else sed 's/^/#   /' "$WORK/n3-nokms.out" | tail -5; fail "node 3 without KMS: started=$started"; fi
node_sql 1 -e "INSERT INTO d.t5 (b, n) VALUES ('while node 3 had no KMS', 'n1')" || fail "node 1 write while node 3 has no KMS"
if two_primary &&
   [ "$(node_sql 2 -e "SET SESSION wsrep_sync_wait=15; SELECT COUNT(*) FROM d.t5 WHERE b = 'while node 3 had no KMS'")" = 1 ]; then
  ok "nodes 1 and 2 keep serving as a primary component of 2 ($st)"
else fail "nodes 1 and 2 while node 3 has no KMS: $st"; fi
node_stop 3 >/dev/null 2>&1

# --------------------------------------------------- 6. another CMK
KEY2=5e5e5e5e-0000-4000-8000-00000000cm02
if curl -sf -X POST "http://$KMS_ADDR/_emulator/keys" -d "{\"KeyId\":\"$KEY2\",\"Aliases\":[\"alias/mariadb-node3\"]}" >/dev/null; then
  ok "a second master key in the same KMS (alias/mariadb-node3)"
else fail "creating a second master key"; fi
write_cnf 3 "" alias/mariadb-node3
mark=$(wc -l <"$(node_dir 3)/error.log")
if node_start 3; then
  nk=$(wc -w <<<"$(keys 3)")
  grep -q "AWS KMS plugin: unwrapped $nk of $nk key versions at start" "$(node_dir 3)/error.log" &&
    ok "node 3 with master_key_id=alias/mariadb-node3 (it rejoined by $(grep -q "SST completed on joiner" <(tail -n +"$mark" "$(node_dir 3)/error.log") && echo SST || echo IST)) unwraps its $nk key files, wrapped under the first CMK (each blob names its CMK)" ||
    fail "node 3 with another CMK: unwrap at start"
  node_sql 3 -e "CREATE TABLE d.t9 (a INT PRIMARY KEY) ENGINE=InnoDB ENCRYPTED=YES ENCRYPTION_KEY_ID=9; INSERT INTO d.t9 VALUES (9)" ||
    fail "a table on the new key 9 from node 3"
  # cmk N FILE: the ARN of the CMK that wraps node N's key file.
  cmk() {
    env "${SRV_ENV[@]}" timeout 120 "$TOOL" --defaults-file "$(node_dir "$1")/my.cnf" list --kms --json >"$WORK/list.json" 2>"$WORK/list.err"
    perl -MJSON::PP -0777 -ne 'my $d = decode_json($_); print "$_->{cmk_arn}\n" for grep { $_->{file} eq "'"$2"'" } @{$d->{keys}}' "$WORK/list.json"
  }
  c39=$(cmk 3 aws-kms-key.9.1) c31=$(cmk 3 aws-kms-key.1.1) c19=$(cmk 1 aws-kms-key.9.1)
  if [[ "$c39" == *":key/$KEY2" ]] && [[ "$c31" == *":key/$KMS_KEY_ID" ]] && [[ "$c19" == *":key/$KMS_KEY_ID" ]] &&
     [ "$(node_sql 1 -e "SET SESSION wsrep_sync_wait=15; SELECT a FROM d.t9")" = 9 ]; then
    ok "node 3's new key 9 is wrapped under the second CMK, its key 1 and node 1's key 9 under the first (mariadb-aws-keys list --kms)"
  else cat "$WORK/list.err"; fail "CMKs: node 3 key 9 '$c39', node 3 key 1 '$c31', node 1 key 9 '$c19'"; fi
  same_everywhere && ok "the three nodes hold the same data (CHECKSUM TABLE)" || fail "checksums at the end"
else fail "node 3 did not come back with the second CMK"; fi

# --------------------------------------------------- 7. keyfile_dir
# Node 1 keeps its key files in a directory of its own (keyfile_dir =
# keys, under the datadir; another path behaves the same): mariadb-backup
# does not copy it, so a joiner by SST from node 1 cannot read the data.
node_stop 3 || fail "node 3 shutdown exit status $?"
node_stop 1 || fail "node 1 shutdown exit status $?"
D1=$(node_dir 1)/data
install -d -m 0700 "$D1/keys" && mv "$D1"/aws-kms-key.* "$D1/keys/"
write_cnf 1
sed -i 's/^plugin_load_add = .*/&\naws_key_management_keyfile_dir = keys/' "$(node_dir 1)/my.cnf"
sed -i 's/^\[galera\]$/[galera]\nwsrep_sst_donor = n1/' "$(node_dir 3)/my.cnf"
if node_start 1 && [ "$(node_sql 1 -e "SELECT COUNT(*) FROM d.t9")" = 1 ]; then
  ok "node 1 back (by IST) with its key files in keyfile_dir = keys"
else fail "node 1 with keyfile_dir = keys"; fi
rm -rf "$(node_dir 3)/data" && mkdir "$(node_dir 3)/data"
mark=$(wc -l <"$(node_dir 3)/error.log")
NODE_WAIT=90 node_start 3 >"$WORK/n3-keydir.out" 2>&1
started=$?
tail -n +"$((mark + 1))" "$(node_dir 3)/error.log" >"$WORK/n3-keydir.log"
if ((started != 0)) && ! ls "$(node_dir 3)"/data/aws-kms-key.* >/dev/null 2>&1 &&
   grep -q "WSREP_SST: \[ERROR\] Cleanup after exit with status: 1" "$WORK/n3-keydir.log" &&
   grep -q "InnoDB: Obtaining redo log encryption key version 1 failed" "$(node_dir 3)/data/mariabackup.prepare.log"; then
  ok "a new node 3 joining by SST from node 1 (keyfile_dir = keys) gets no key file: mariadb-backup --prepare cannot read the redo log, the SST fails"
else sed 's/^/#   /' "$WORK/n3-keydir.out" | tail -5; fail "SST from a donor with keyfile_dir = keys: started=$started, key files: $(keys 3)"; fi
node_stop 3 >/dev/null 2>&1
two_primary && node_sql 2 -e "INSERT INTO d.t9 VALUES (10)" && [ "$(node_sql 1 -e "SET SESSION wsrep_sync_wait=15; SELECT COUNT(*) FROM d.t9")" = 2 ] &&
  ok "nodes 1 and 2 keep serving ($st)" || fail "nodes 1 and 2 after the failed SST: $st"

# --------------------------------------------------- 8. datadir credentials
# Node 3's only credentials are <datadir>/.aws/credentials (HOME is
# /nonexistent, as for Debian's mysql user): the joiner's SST script
# empties the datadir before the transfer, so mariadb-backup --prepare
# finds no credentials and the SST fails.
D3=$(node_dir 3)/data
rm -rf "$D3" && mkdir -p "$D3/.aws" && cp "$KMS_DIR/kms-credentials" "$D3/.aws/credentials"
sed -i 's/^wsrep_sst_donor = n1$/wsrep_sst_donor = n2/' "$(node_dir 3)/my.cnf"
ENV_BEFORE=("${SRV_ENV[@]}")
SRV_ENV=(-u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE -u AWS_REGION
  -u AWS_DEFAULT_REGION -u AWS_SHARED_CREDENTIALS_FILE -u AWS_CREDENTIAL_PROFILES_FILE
  HOME=/nonexistent AWS_CONFIG_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true)
NODE_WAIT=90 node_start 3 >"$WORK/n3-creds.out" 2>&1
started=$?
SRV_ENV=("${ENV_BEFORE[@]}")
if ((started != 0)) && [ ! -e "$D3/.aws/credentials" ] &&
   grep -q "InnoDB: Obtaining redo log encryption key version 1 failed" "$D3/mariabackup.prepare.log"; then
  ok "credentials only in the joiner's <datadir>/.aws: the SST script deletes them before mariadb-backup --prepare, which then cannot unwrap; the SST fails"
else sed 's/^/#   /' "$WORK/n3-creds.out" | tail -5; fail "SST with credentials in the datadir: started=$started"; fi
node_stop 3 >/dev/null 2>&1

for n in 2 1; do node_stop "$n" || fail "node $n shutdown exit status $?"; done

# --------------------------------------------------- 9. what is in clear
# The row written on node 2 in step 2 (d.t5, encrypted): in no file of
# nodes 1 and 2 but Galera's write-set cache, galera.cache, which Galera
# 4 keeps unencrypted (the plugin has no say there).
where=$(for n in 1 2; do grep -rla "$MARK" "$(node_dir "$n")/data"; done | sed "s|^$WORK/||" | sort | tr '\n' ' ')
if [ "$where" = "n1/data/galera.cache n2/data/galera.cache " ]; then
  ok "an encrypted row is in clear only in galera.cache (Galera's write-set cache) on nodes 1 and 2, in no data, redo or other file"
else fail "the marker row in clear in: '$where' (want n1/data/galera.cache n2/data/galera.cache)"; fi
errs=$(cat "$(node_dir 1)/error.log" "$(node_dir 2)/error.log" | grep "\[ERROR\].*AWS KMS plugin")
[ -z "$errs" ] && ok "no plugin error in the error logs of nodes 1 and 2 (every SST, IST and restart included)" ||
  { sed 's/^/#   /' <<<"$errs" | head -5; fail "plugin errors on nodes 1 and 2"; }

finish
