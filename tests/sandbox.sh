# Sourced by tests/install and tests/deb: Debian's own MariaDB server,
# started the way the distribution starts it (/etc/init.d/mariadb, which
# runs mariadbd-safe), but on private copies of its directories, so that
# the test never changes the system's datadir or configuration:
#
#   sandbox_init WORK DIR...   copies each DIR (e.g. /etc/mysql /var/lib/mysql
#                              /run/mysqld) to WORK/sandbox/DIR
#   sandbox CMD...             runs CMD in a new mount namespace in which
#                              each DIR is its copy (bind mounts); every
#                              call sees the same copies, and a server one
#                              call started keeps them
#   sandbox_start [ENV=V...]   /etc/init.d/mariadb start in the sandbox,
#                              with those environment variables
#   sandbox_stop               mariadb-admin shutdown (debian.cnf), bounded;
#                              then SIGKILL to that server's pid only
#   system_server_running      whether the system's own server answers
#   snapshot DIR...            a listing to compare: every path, type, mode,
#                              owner, size, file mtime, file checksum
#
# Needs root and unshare(1). The init script's own "stop" is not used: when
# mariadb-admin fails it runs `killall mariadbd`, which would hit every
# server on the machine.
SANDBOX_ROOT="" SANDBOX_DIRS=()

sandbox_init() {
  SANDBOX_ROOT=$1/sandbox
  shift
  SANDBOX_DIRS=("$@")
  local d
  for d in "${SANDBOX_DIRS[@]}"; do
    mkdir -p "$SANDBOX_ROOT$d" || return 1
    [ ! -d "$d" ] || cp -a "$d/." "$SANDBOX_ROOT$d/" || return 1
  done
}

sandbox() {
  unshare --mount --propagation private bash -c '
    root=$1; shift; n=$1; shift
    for ((i = 0; i < n; i++)); do
      # (/run/mysqld may not exist before a first start; the init script
      # would create it the same way.)
      [ -d "$1" ] || install -d -m 0755 -o mysql -g root "$1"
      mount --bind "$root$1" "$1" || { echo "sandbox: cannot bind $root$1 on $1" >&2; exit 125; }
      shift
    done
    exec "$@"' sandbox "$SANDBOX_ROOT" "${#SANDBOX_DIRS[@]}" "${SANDBOX_DIRS[@]}" "$@"
}

# The pid of the sandbox's server (its pid file), or nothing.
sandbox_pid() {
  local f="$SANDBOX_ROOT/run/mysqld/mysqld.pid" p
  [ -s "$f" ] || return 0
  p=$(cat "$f")
  [[ "$p" =~ ^[0-9]+$ ]] && kill -0 "$p" 2>/dev/null && echo "$p"
}

sandbox_start() {
  sandbox env "$@" timeout 120 /etc/init.d/mariadb start </dev/null
}

sandbox_stop() {
  local pid safe i
  pid=$(sandbox_pid)
  [ -n "$pid" ] || return 0
  safe=$(ps -o ppid= -p "$pid" | tr -d ' ')
  sandbox timeout 60 mariadb-admin --defaults-file=/etc/mysql/debian.cnf shutdown >/dev/null 2>&1 || kill "$pid" 2>/dev/null
  for i in $(seq 1 120); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    # mysqld_safe first: it would start a killed server again.
    [ -n "$safe" ] && [ "$(ps -o comm= -p "$safe")" = mysqld_safe ] && kill -9 "$safe" 2>/dev/null
    kill -9 "$pid" 2>/dev/null
    return 1
  fi
  return 0
}

system_server_running() {
  local p
  [ -s /run/mysqld/mysqld.pid ] && p=$(cat /run/mysqld/mysqld.pid) && kill -0 "$p" 2>/dev/null && return 0
  timeout 10 mariadb-admin --defaults-file=/etc/mysql/debian.cnf ping >/dev/null 2>&1
}

# A directory's mtime is left out: it changes whenever anyone on the machine
# runs `mariadbd --verbose --help`, which creates and removes a test file in
# the datadir. What is in the directory is compared.
snapshot() {
  find "$@" -printf '%p %y %m %u %g %s ' \( -type d -printf '\n' -o -printf '%T@\n' \) 2>/dev/null | sort
  find "$@" -type f -exec sha256sum {} + 2>/dev/null | sort
}

# sandbox_test_config: test-only settings in the sandbox's copy of
# /etc/mysql: no TCP port (other servers run on the machine), the error log
# in a file (ERRLOG) instead of syslog.
sandbox_test_config() {
  printf '%s\n' '[mysqld_safe]' 'skip_syslog' 'log_error = /run/mysqld/error.log' '' '[mariadb]' 'skip_networking' \
    'log_error = /run/mysqld/error.log' >"$SANDBOX_ROOT/etc/mysql/mariadb.conf.d/99-akm-test.cnf"
  ERRLOG="$SANDBOX_ROOT/run/mysqld/error.log"
}

# user_shell DIR: where the README's commands run: a copy of the checkout in
# DIR/checkout (CWD; its relative paths, its own build/), a pass-through
# sudo in DIR/bin when the machine has none (the tests run as root), and
# ENV, env(1) arguments for the commands and the server: no AWS settings
# of the caller, the loopback KMS (KMS_ADDR) as AWS_ENDPOINT_URL_KMS, DIR/bin
# first on PATH.
user_shell() {
  CWD=$1/checkout
  mkdir -p "$CWD" "$1/bin" || return 1
  tar -C "$ROOT" --exclude=./build -cf - . | tar -C "$CWD" -xf - || return 1
  # (sudo -u USER: runuser, which root may use without a password.)
  command -v sudo >/dev/null || { printf '#!/bin/sh\nif [ "$1" = -u ]; then u=$2; shift 2; exec runuser -u "$u" -- "$@"; fi\nexec "$@"\n' >"$1/bin/sudo" && chmod +x "$1/bin/sudo"; }
  ENV=(-u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE -u AWS_REGION
    -u AWS_DEFAULT_REGION -u AWS_SHARED_CREDENTIALS_FILE -u AWS_CREDENTIAL_PROFILES_FILE -u AWS_CONFIG_FILE
    AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL_KMS="http://$KMS_ADDR" PATH="$1/bin:$PATH")
}

# readme_commands TITLE...: the "$ " lines of the README sections whose
# heading starts with "## TITLE", in order, without the "$ ".
readme_commands() {
  AKM_TITLES=$(printf '## %s\n' "$@") awk '
    BEGIN { n = split(ENVIRON["AKM_TITLES"], t, "\n") }
    /^## / { f = 0; for (i = 1; i <= n; i++) if (t[i] != "" && index($0, t[i]) == 1) f = 1; next }
    f && /^\$ / { sub(/^\$ /, ""); print }' "$ROOT/README.md"
}
