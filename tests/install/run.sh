#!/usr/bin/env bash
# The README as a new user follows it: every line that starts with "$ " in
# "Installing the plugin" and then in "Migrating from the C++ plugin, and
# back", run in order, as written, in one shell, as root, against Debian's
# own MariaDB server started the way the distribution starts it
# (/etc/init.d/mariadb, mariadbd-safe). The server runs on private copies
# of /etc/mysql, /var/lib/mysql, /run/mysqld, /usr/lib/mysql/plugin and
# /usr/local/bin (tests/sandbox.sh: bind mounts in a mount namespace), so
# the system's files are never written; the test checks that they are the
# same afterwards. The commands run in a copy of the checkout.
#
# Mapped, since this machine has no systemd as PID 1 and maybe no sudo:
# "sudo systemctl restart mariadb" stops the sandbox's server (if running)
# and runs /etc/init.d/mariadb start; "sudo" is a pass-through when sudo is
# not installed (the test runs as root). The KMS is the loopback emulator:
# its alias is the README's alias/mariadb and its region the README's; the
# server and the tool find it through AWS_ENDPOINT_URL_KMS in their
# environment, the README's configuration stays as written. Its
# credentials file is the "credentials" the README copies.
#
# Besides each command's exit status, checks what the README says the
# user sees, and the rollback: our library configured with the C++
# plugin's variables plus loose- ones still reads the datadir, and the
# server's option parsing stops at a plugin variable the library lacks
# unless it has loose- (why the README prefixes ours for the C++ plugin).
# Prints "ok"/"FAIL" lines and "N passed, N failed". Bounded (480 s).
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bounded 480 "$@"
. "$ROOT/tests/sandbox.sh"

[ "$(id -u)" = 0 ] || { fail "needs root (it installs into Debian's server directories, in a private mount namespace)"; finish; }
for c in unshare /etc/init.d/mariadb /usr/sbin/mariadbd mariadb-admin; do
  command -v "$c" >/dev/null || { fail "$c not found (run scripts/deps.sh)"; finish; }
done
if system_server_running; then
  fail "the system's MariaDB server is running: this test copies its datadir and uses its socket path; stop it first"
  finish
fi

WORK=$(mktemp -d /tmp/akm-install.XXXXXX)
KMS_ALIAS=alias/mariadb KMS_REGION=eu-central-1
. "$ROOT/scripts/kms.sh"
cleanup() {
  trap - EXIT INT TERM
  sandbox_stop || echo "# the sandbox's server had to be killed"
  kms_stop
  if [ -n "${AKM_INSTALL_KEEP:-}" ]; then echo "# AKM_INSTALL_KEEP: $WORK kept"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'echo "# interrupted or over time"; fail "run interrupted (signal or the 480 s bound)"; echo "$PASSED passed, $FAILED failed"; exit 1' INT TERM

DIRS=(/etc/mysql /var/lib/mysql /run/mysqld /usr/lib/mysql/plugin /usr/local/bin)
snapshot "${DIRS[@]}" >"$WORK/before"

kms_start "$WORK/kms" >"$WORK/kms.log" 2>&1 || { cat "$WORK/kms.log"; fail "starting the KMS emulator"; finish; }
sandbox_init "$WORK" "${DIRS[@]}" || { fail "copying ${DIRS[*]}"; finish; }
sandbox_test_config

# The user's shell: a copy of the checkout, "credentials" in it.
user_shell "$WORK" || { fail "copying the checkout"; finish; }
cp "$KMS_DIR/kms-credentials" "$CWD/credentials"

# wait_encrypted: until the encryption threads have encrypted every
# tablespace of the copied datadir (the README records the versions in use
# before and after a restart: a steady state, as on a server in service).
wait_encrypted() {
  local i left
  for i in $(seq 1 120); do
    left=$(sandbox mariadb -N -e "SELECT COUNT(*) FROM information_schema.INNODB_TABLESPACES_ENCRYPTION WHERE ENCRYPTION_SCHEME = 0 OR ROTATING_OR_FLUSHING = 1" 2>/dev/null)
    [ "$left" = 0 ] && return 0
    sleep 0.5
  done
  note "tablespaces still being encrypted after 60 s: $left"
}

n=0
while IFS= read -r line; do
  n=$((n + 1))
  case "$line" in *"> encryption-before.tsv"*) wait_encrypted ;; esac
  echo "## \$ $line"
  case "$line" in
    "sudo systemctl restart mariadb")
      { sandbox_stop && sandbox_start "${ENV[@]}"; } >"$WORK/out" 2>"$WORK/err"; rc=$? ;;
    *) (cd "$CWD" && sandbox env "${ENV[@]}" bash -c "$line" </dev/null >"$WORK/out" 2>"$WORK/err"); rc=$? ;;
  esac
  sed 's/^/##   /' "$WORK/out" | head -40
  sed 's/^/##   (stderr) /' "$WORK/err" | head -20
  [ "$rc" = 0 ] && ok "README: \$ $line" || { tail -5 "$ERRLOG" 2>/dev/null | sed 's/^/#   /'; fail "README: \$ $line (exit $rc)"; }
  # What the README says the user sees after some of the commands.
  case "$line" in
    *"install -m 0644 build/aws_key_management.so"*)
      cmp -s "$CWD/build/aws_key_management.so" "$SANDBOX_ROOT/usr/lib/mysql/plugin/aws_key_management.so" &&
        ok "the library is in the server's plugin directory (/usr/lib/mysql/plugin)" || fail "no aws_key_management.so in the server's plugin directory" ;;
    *"SELECT PLUGIN_STATUS, PLUGIN_DESCRIPTION"*)
      build="$(cat "$ROOT/VERSION") commit $(git -C "$ROOT" rev-parse --short=12 HEAD)"
      grep -q "^ACTIVE	AWS key management plugin (Go) $build.*, built for mariadb-10.11$" "$WORK/out" &&
        ok "the plugin is ACTIVE and its description names this build ($build)" || fail "plugin row: $(tail -1 "$WORK/out")" ;;
    *"FROM information_schema.INNODB_TABLESPACES_ENCRYPTION WHERE NAME = 'demo/t'"*)
      grep -q "^demo/t	1	1	1$" "$WORK/out" && ok "demo/t is encrypted with key 1 version 1" || fail "demo/t: $(tail -1 "$WORK/out")" ;;
    *"ls -l /var/lib/mysql/aws-kms-key.1.1"*)
      grep -q '^-r-------- 1 mysql mysql ' "$WORK/out" && ok "aws-kms-key.1.1 is mode 0400, owner mysql" || fail "key file: $(cat "$WORK/out")" ;;
    *"diff encryption-before.tsv encryption-rollback.tsv"*)
      grep -q '^aws_key_management_\|^loose-aws_key_management_fallback_to_older_version = OFF$' "$SANDBOX_ROOT/etc/mysql/mariadb.conf.d/50-aws-key-management.cnf" &&
        ! grep -qE '^aws_key_management_(fallback|keyfile_dir|recovery)' "$SANDBOX_ROOT/etc/mysql/mariadb.conf.d/50-aws-key-management.cnf" &&
        ok "rollback: only the C++ plugin's variables without loose- ($(grep -c '^aws_key_management' "$SANDBOX_ROOT/etc/mysql/mariadb.conf.d/50-aws-key-management.cnf")), ours with it; the datadir reads the same" ||
        fail "rollback configuration: $(grep aws_key "$SANDBOX_ROOT/etc/mysql/mariadb.conf.d/50-aws-key-management.cnf" | tr '\n' ' ')" ;;
    *"SELECT COUNT(*) FROM demo.t"*)
      grep -qx 1 "$WORK/out" && ok "rollback: the row written before the migration reads back" || fail "demo.t after the rollback: $(cat "$WORK/out")" ;;
  esac
done < <(readme_commands "Installing the plugin" "Migrating from the C++ plugin")
[ "$n" -ge 20 ] && ok "the README's install and migration sections have $n commands, all run" || fail "only $n commands found in the README's install and migration sections"

# The server's own account of it: the build, keys from KMS, the loopback
# endpoint (the README's configuration has none; AWS_ENDPOINT_URL_KMS).
if grep -q "AWS KMS plugin: starting AWS key management plugin (Go) " "$ERRLOG" &&
   grep -q "AWS KMS plugin: generated encrypted datakey for key id=1, version=1" "$ERRLOG" &&
   grep -q "KMS client for region eu-central-1 at http://$KMS_ADDR" "$ERRLOG"; then
  ok "error log: the build, the key from KMS, the README's region"
else grep "AWS KMS" "$ERRLOG" | tail -5 | sed 's/^/#   /'; fail "error log lines"; fi
out=$(sandbox mariadb -N -e "SELECT @@aws_key_management_fallback_to_older_version, @@aws_key_management_region" 2>&1)
[ "$out" = "$(printf '0\teu-central-1')" ] && ok "rollback: loose-aws_key_management_fallback_to_older_version = OFF still applies to this plugin" || fail "variables after the rollback: $out"
# The rollback's reason for loose-: a variable the loaded library does not
# have (as ours are to the C++ plugin) in the server's option files stops
# the server; with loose- it is a warning. The server's own option parsing
# (--help reads the options and loads the plugins from the configuration).
for prefix in "" loose-; do
  printf '[mariadb]\n%saws_key_management_only_in_another_build = 1\n' "$prefix" >"$WORK/extra.cnf"
  sandbox /usr/sbin/mariadbd --defaults-extra-file="$WORK/extra.cnf" --verbose --help --datadir=/nonexistent >"$WORK/help.out" 2>&1
  rc=$?
  if [ -z "$prefix" ] && [ "$rc" != 0 ] && grep -q "\[ERROR\] .*unknown variable 'aws_key_management_only_in_another_build=1'" "$WORK/help.out"; then
    ok "an aws_key_management_* variable the library lacks stops the server (exit $rc, unknown variable)"
  elif [ -n "$prefix" ] && [ "$rc" = 0 ] && grep -q "\[Warning\] .*unknown variable 'loose-aws_key_management_only_in_another_build=1'" "$WORK/help.out"; then
    ok "the same with loose-: a warning, the server goes on"
  else grep -i 'unknown\|error' "$WORK/help.out" | head -3 | sed 's/^/#   /'; fail "option parsing of ${prefix}aws_key_management_only_in_another_build (exit $rc)"; fi
done
# The README's old instruction named the client's plugin directory.
[ "$(mariadb_config --plugindir 2>/dev/null)" != "$(sandbox /usr/sbin/mariadbd --verbose --help 2>/dev/null | awk '$1 == "plugin-dir" {print $2}' | sed 's:/$::')" ] &&
  ! grep -q 'mariadb_config --plugindir)' "$ROOT/README.md" &&
  ok "the README does not install into mariadb_config --plugindir ($(mariadb_config --plugindir)), the client's directory" ||
  fail "mariadb_config --plugindir in the README's install step"

sandbox_stop && ok "the server stopped cleanly" || fail "the server had to be killed"
snapshot "${DIRS[@]}" >"$WORK/after"
if cmp -s "$WORK/before" "$WORK/after"; then ok "${DIRS[*]} are exactly as before (listing, modes, owners, file mtimes, checksums)"
else diff "$WORK/before" "$WORK/after" | head -20 | sed 's/^/#   /'; fail "the system's directories changed"; fi
finish
