# Sourced by demo.sh and test.sh: a private mariadbd on 127.0.0.1.
# Set SRV_DIR (state: datadir, socket, logs) and SRV_PLUGIN_DIR, then
#   srv_install; srv_start [mariadbd options...]; srv_sql ...; srv_stop
# srv_stop is bounded: SIGTERM after 30 s, SIGKILL after 60 s.
# SRV_ENV holds env(1) arguments for mariadbd (e.g. AWS settings);
# SRV_DEFAULTS_FILE an option file for it to read; SRV_WAIT how long
# srv_start waits for it to answer (60 s by default).

srv_pid=""
SRV_ENV=()

srv_free_port() {
  local p
  for p in $(seq "${1:-23306}" "$(( ${1:-23306} + 100 ))"); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "no free port near ${1:-23306}" >&2
  return 1
}

srv_install() {
  rm -rf "$SRV_DIR"
  mkdir -p "$SRV_DIR"
  mariadb-install-db --no-defaults --datadir="$SRV_DIR/data" --user="$(id -un)" \
    --auth-root-authentication-method=normal --skip-test-db >"$SRV_DIR/install.log" 2>&1 \
    || { cat "$SRV_DIR/install.log"; return 1; }
}

srv_sql() { mariadb --no-defaults -S "$SRV_DIR/mysqld.sock" -uroot "$@"; }

srv_start() {
  SRV_PORT=${SRV_PORT:-$(srv_free_port)}
  # SRV_DEFAULTS_FILE: the server reads that option file (only), as a
  # DBA's server reads my.cnf; otherwise none.
  local defaults=--no-defaults
  [ -z "${SRV_DEFAULTS_FILE:-}" ] || defaults=--defaults-file="$SRV_DEFAULTS_FILE"
  env "${SRV_ENV[@]}" /usr/sbin/mariadbd "$defaults" --datadir="$SRV_DIR/data" --socket="$SRV_DIR/mysqld.sock" \
    --port="$SRV_PORT" --bind-address=127.0.0.1 --pid-file="$SRV_DIR/mysqld.pid" \
    --log-error="$SRV_DIR/error.log" --user="$(id -un)" --plugin-dir="$SRV_PLUGIN_DIR" \
    "$@" >>"$SRV_DIR/mysqld.out" 2>&1 &
  srv_pid=$!
  local i
  for i in $(seq 1 $((${SRV_WAIT:-60} * 2))); do
    mariadb-admin --no-defaults -S "$SRV_DIR/mysqld.sock" -uroot ping >/dev/null 2>&1 && return 0
    if ! kill -0 "$srv_pid" 2>/dev/null; then
      echo "mariadbd exited; its log:"; tail -30 "$SRV_DIR/error.log"; srv_pid=""; return 1
    fi
    sleep 0.5
  done
  echo "mariadbd did not answer within ${SRV_WAIT:-60} s"; tail -30 "$SRV_DIR/error.log"
  return 1
}

# srv_stop: returns the server's exit status (0 for a clean shutdown).
srv_stop() {
  [ -n "$srv_pid" ] || return 0
  mariadb-admin --no-defaults -S "$SRV_DIR/mysqld.sock" -uroot shutdown >/dev/null 2>&1 || kill "$srv_pid" 2>/dev/null
  local i rc=0
  for i in $(seq 1 120); do
    kill -0 "$srv_pid" 2>/dev/null || break
    [ "$i" = 60 ] && kill "$srv_pid" 2>/dev/null
    sleep 0.5
  done
  kill -9 "$srv_pid" 2>/dev/null && rc=137
  wait "$srv_pid" 2>/dev/null || rc=$?
  srv_pid=""
  return "$rc"
}
