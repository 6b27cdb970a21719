# Sourced (after lib.sh) by the tests that run several private mariadbd
# at once on 127.0.0.1 (tests/repl, tests/galera): scripts/server.sh's
# functions, one node at a time. Node N lives in NODE_ROOT/nN (server.sh's
# layout: datadir data/, mysqld.sock, error.log) with an option file
# my.cnf that the test writes; the server reads only that file, and so do
# the tools it starts (an SST script, mariadb-backup). Set NODE_ROOT,
# SRV_PLUGIN_DIR, SRV_ENV and NODE_PORT[N] (the node's port).
#
#   node_install N          mariadb-install-db into NODE_ROOT/nN/data
#   node_start N [OPTS...]  srv_start with the node's option file; waits
#                           until it answers and, for a Galera node, is
#                           Synced (NODE_WAIT s each, 120 by default)
#   node_sql N ARGS...      the mariadb client as root on its socket, -N -B
#   node_stop N             srv_stop: clean shutdown, bounded; returns the
#                           exit status
#   node_kill_all           kill -9 of every node still running and of the
#                           processes it started (the EXIT trap)
#   node_free_ports BASE K  K free loopback ports from BASE up, one a line
#   node_cnf N              the start of node N's option file: [client],
#                           and [mariadb] with its paths, the plugin on the
#                           loopback KMS of scripts/kms.sh, encryption on
#   nodes_prepare DIR       make release and the tool, the library in
#                           SRV_PLUGIN_DIR=DIR/plugin, the loopback KMS in
#                           DIR/kms; on failure says what and returns 1

. "$ROOT/scripts/server.sh"
NODE_WAIT=${NODE_WAIT:-120}
declare -A NODE_PID=()
declare -a NODE_PORT=()

node_dir() { echo "$NODE_ROOT/n$1"; }

nodes_prepare() {
  if ! timeout 300 make -s release build/mariadb-aws-keys >"$1/build.log" 2>&1; then
    tail -20 "$1/build.log"; fail "make"; return 1
  fi
  SRV_PLUGIN_DIR=$1/plugin
  mkdir -p "$SRV_PLUGIN_DIR" && cp build/aws_key_management.so "$SRV_PLUGIN_DIR/" || { fail "copying the library"; return 1; }
  if ! kms_start "$1/kms" >"$1/kms.log" 2>&1; then cat "$1/kms.log"; fail "starting the KMS emulator"; return 1; fi
}

node_free_ports() {
  local p=$1 want=$2
  while ((want > 0 && p < $1 + 1000)); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; want=$((want - 1)); fi
    p=$((p + 1))
  done
  ((want == 0))
}

node_install() { SRV_DIR=$(node_dir "$1") srv_install; }

node_start() {
  local n=$1 d rc i state; d=$(node_dir "$1")
  shift
  SRV_DIR=$d SRV_PORT=${NODE_PORT[$n]} SRV_DEFAULTS_FILE=$d/my.cnf SRV_WAIT=$NODE_WAIT srv_start "$@"
  rc=$?
  [ -z "$srv_pid" ] || NODE_PID[$n]=$srv_pid
  srv_pid=""
  ((rc == 0)) || return "$rc"
  # A Galera node answers before it has applied its IST: wait until it
  # is Synced (an IST donor stopped before then would abort it).
  [ "$(node_sql "$n" -e "SELECT @@wsrep_on")" = 1 ] || return 0
  for i in $(seq 1 $((NODE_WAIT * 2))); do
    state=$(node_sql "$n" -e "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME='WSREP_LOCAL_STATE_COMMENT'" 2>/dev/null)
    [ "$state" = Synced ] && return 0
    kill -0 "${NODE_PID[$n]}" 2>/dev/null || break
    sleep 0.5
  done
  echo "# node $n: not Synced within $NODE_WAIT s (state '$state')"
  return 1
}

node_sql() {
  local d; d=$(node_dir "$1")
  shift
  timeout 60 mariadb --no-defaults -S "$d/mysqld.sock" -uroot -N -B "$@"
}

node_stop() {
  local n=$1 rc
  srv_pid=${NODE_PID[$n]:-}
  SRV_DIR=$(node_dir "$n") srv_stop
  rc=$?
  unset "NODE_PID[$n]"
  return "$rc"
}

# node_descendants PID: the processes PID started (an SST script, socat,
# mariadb-backup), children first.
node_descendants() {
  local c
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do node_descendants "$c"; echo "$c"; done
}

node_kill_all() {
  local n p
  for n in "${!NODE_PID[@]}"; do
    for p in $(node_descendants "${NODE_PID[$n]}") "${NODE_PID[$n]}"; do kill -9 "$p" 2>/dev/null; done
    wait "${NODE_PID[$n]}" 2>/dev/null
  done
  NODE_PID=()
}

node_cnf() {
  local d; d=$(node_dir "$1")
  cat <<EOF
[client]
socket = $d/mysqld.sock
user = root

[mariadb]
datadir = $d/data
socket = $d/mysqld.sock
port = ${NODE_PORT[$1]}
plugin_dir = $SRV_PLUGIN_DIR
plugin_load_add = aws_key_management
aws_key_management_master_key_id = $KMS_ALIAS
aws_key_management_endpoint_url = http://$KMS_ADDR
aws_key_management_request_timeout = 2000
innodb_encrypt_tables = ON
innodb_encrypt_log = ON
encrypt_tmp_files = ON
encrypt_binlog = ON
innodb_buffer_pool_size = 32M
binlog_format = ROW
EOF
}
