#!/usr/bin/env bash
# The Debian package on this machine's Debian MariaDB:
#   1. make deb; lintian (no error or warning); the package's contents,
#      Depends, conffile and copyright (every Go module compiled in);
#   2. dpkg -i; the files in place, the tool names its build;
#   3. the server started the way Debian starts it (/etc/init.d/mariadb,
#      mariadbd-safe) with the example configuration as installed (all
#      commented out): it starts, without the plugin;
#   4. the example configuration enabled (uncommented, a region), AWS
#      credentials in <datadir>/.aws/credentials, the loopback KMS (found
#      through AWS_ENDPOINT_URL_KMS): the plugin ACTIVE, naming this build;
#      an encrypted table written and read; its key file in the datadir
#      (0400, mysql); the installed mariadb-aws-keys verifies it;
#   5. stop; dpkg -r (the edited conffile stays), dpkg -P (it goes);
#   6. /etc/mysql, /var/lib/mysql, /usr/lib/mysql/plugin and /usr/bin are
#      exactly as before.
# The server runs on private copies of /etc/mysql, /var/lib/mysql and
# /run/mysqld (tests/sandbox.sh), so the system's datadir is never written;
# dpkg itself works on the real system. A trap purges the package and
# restores /etc/mysql from a copy on every exit path. Refuses to run (a
# failure, not a skip) if the system's server is running or the package
# is already installed. Needs root. Bounded (480 s).
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bounded 480 "$@"
. "$ROOT/tests/sandbox.sh"

PKG=aws-key-management
CNF=/etc/mysql/mariadb.conf.d/50-aws-key-management.cnf
[ "$(id -u)" = 0 ] || { fail "needs root (dpkg -i)"; finish; }
for c in dpkg-deb dpkg-shlibdeps lintian unshare /etc/init.d/mariadb; do
  command -v "$c" >/dev/null || { fail "$c not found (run scripts/deps.sh)"; finish; }
done
if system_server_running; then fail "the system's MariaDB server is running: stop it first (this test starts Debian's server itself)"; finish; fi
if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q 'installed'; then
  fail "$PKG is installed on this machine: this test would remove it; dpkg -P $PKG first"; finish
fi

WORK=$(mktemp -d /tmp/akm-deb.XXXXXX)
KMS_ALIAS=alias/mariadb KMS_REGION=eu-central-1
. "$ROOT/scripts/kms.sh"
SYSDIRS=(/etc/mysql /var/lib/mysql /usr/lib/mysql/plugin /usr/bin)
snapshot "${SYSDIRS[@]}" >"$WORK/before"
tar -C / -cpf "$WORK/etc-mysql.tar" etc/mysql || { fail "backing up /etc/mysql"; finish; }
INSTALLED=""
cleanup() {
  trap - EXIT INT TERM
  sandbox_stop || echo "# the sandbox's server had to be killed"
  kms_stop
  if [ -n "$INSTALLED" ]; then echo "# purging $PKG"; dpkg -P "$PKG" >/dev/null 2>&1; fi
  snapshot "${SYSDIRS[@]}" >"$WORK/after"
  if ! diff -q <(grep '^/etc/mysql' "$WORK/before") <(grep '^/etc/mysql' "$WORK/after") >/dev/null; then
    echo "# /etc/mysql changed: restoring it from $WORK/etc-mysql.tar"
    rm -rf /etc/mysql && tar -C / -xpf "$WORK/etc-mysql.tar"
  fi
  if [ -n "${AKM_DEB_KEEP:-}" ]; then echo "# AKM_DEB_KEEP: $WORK kept"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'echo "# interrupted or over time"; fail "run interrupted (signal or the 480 s bound)"; echo "$PASSED passed, $FAILED failed"; exit 1' INT TERM

# dpkg_retry ARGS...: dpkg, waiting (up to 2 min) while another dpkg or apt
# on the machine holds its lock.
dpkg_retry() {
  local i
  for i in $(seq 1 24); do
    dpkg "$@" >"$WORK/dpkg.log" 2>&1 && return 0
    grep -q 'lock' "$WORK/dpkg.log" || break
    sleep 5
  done
  cat "$WORK/dpkg.log"
  return 1
}

# 1. Build and inspect.
DEB=$(scripts/deb.sh 2>"$WORK/deb.err") && [ -f "$DEB" ] || { cat "$WORK/deb.err"; fail "make deb"; finish; }
ok "make deb: $DEB ($(du -k "$DEB" | cut -f1) KiB)"
BUILD="$(cat VERSION) commit $(git rev-parse --short=12 HEAD)"
lintian --fail-on error,warning "$DEB" >"$WORK/lintian.log" 2>&1
rc=$?
if [ "$rc" = 0 ] && ! grep -qE '^[EW]: ' "$WORK/lintian.log"; then
  ok "lintian: no error or warning ($(grep -cE '^[IP]: ' "$WORK/lintian.log") info/pedantic tags, $(grep -c . packaging/deb/lintian-overrides) override lines)"
else sed 's/^/#   /' "$WORK/lintian.log"; fail "lintian (exit $rc)"; fi
contents=$(dpkg-deb -c "$DEB" | awk '{ print $1, $6 }')
want=("-rw-r--r-- ./usr/lib/mysql/plugin/aws_key_management.so" "-rwxr-xr-x ./usr/bin/mariadb-aws-keys"
  "-rw-r--r-- .$CNF" "-rw-r--r-- ./usr/share/doc/$PKG/copyright" "-rw-r--r-- ./usr/share/doc/$PKG/README.md.gz"
  "-rw-r--r-- ./usr/share/doc/$PKG/examples/aws-key-management-credentials.conf" "-rw-r--r-- ./usr/share/man/man1/mariadb-aws-keys.1.gz")
missing=()
for w in "${want[@]}"; do grep -qxF -- "$w" <<<"$contents" || missing+=("$w"); done
((${#missing[@]} == 0)) && ok "contents: the library, the tool, the conffile, docs, copyright, the drop-in example, the man page" || fail "missing from the package: ${missing[*]}"
dep=$(dpkg-deb -f "$DEB" Depends)
[[ "$dep" == *"libc6 (>="*"mariadb-server (>= 1:10.11), mariadb-server (<< 1:10.12~)" ]] && ok "Depends: $dep" || fail "Depends: $dep"
[ "$(dpkg-deb --ctrl-tarfile "$DEB" | tar -xOf - ./conffiles)" = "$CNF" ] && ok "conffiles: $CNF" || fail "conffiles"
dpkg-deb --fsys-tarfile "$DEB" | tar -xOf - "./usr/share/doc/$PKG/copyright" >"$WORK/copyright"
mods=$( (go version -m build/aws_key_management.so; go version -m build/mariadb-aws-keys) | awk '$1 == "dep" { print $2 }' | sort -u)
nmissing=0
while read -r m; do grep -q "^Files: go-modules/$m/\*$" "$WORK/copyright" || { note "copyright lacks $m"; nmissing=$((nmissing + 1)); }; done <<<"$mods"
if ((nmissing == 0)) && grep -q '^Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/$' "$WORK/copyright" &&
   awk '/^Files: / { f = ($2 == "go-modules/github.com/aws/aws-sdk-go-v2/*") } f && /^License: /' "$WORK/copyright" | grep -qx 'License: Apache-2.0'; then
  ok "copyright: DEP-5, all $(wc -l <<<"$mods") Go modules of go version -m, the AWS SDK for Go as Apache-2.0"
else fail "copyright: $nmissing modules missing, or no DEP-5 header, or the SDK's licence"; fi

# 2. Install.
if dpkg_retry -i "$DEB"; then INSTALLED=1; ok "dpkg -i"; else fail "dpkg -i"; finish; fi
[ "$(dpkg-query -W -f='${Status} ${Version}' "$PKG")" = "install ok installed $(cat VERSION)" ] && ok "dpkg: $PKG $(cat VERSION) installed" || fail "dpkg status: $(dpkg-query -W -f='${Status} ${Version}' "$PKG")"
cmp -s build/aws_key_management.so /usr/lib/mysql/plugin/aws_key_management.so && ok "/usr/lib/mysql/plugin/aws_key_management.so is the release build" || fail "the installed library differs from build/aws_key_management.so"
[[ "$(/usr/bin/mariadb-aws-keys --version)" == "mariadb-aws-keys version $BUILD"* ]] && ok "/usr/bin/mariadb-aws-keys --version: $BUILD" || fail "tool version: $(/usr/bin/mariadb-aws-keys --version 2>&1)"
active=$(grep -vE '^[[:space:]]*(#|$)' "$CNF")
[ "$active" = "[mariadb]" ] && ok "$CNF enables nothing as installed (every setting commented out)" || fail "$CNF has active lines: $active"

# 3. The server as Debian starts it, on copies, with the config as installed.
kms_start "$WORK/kms" >"$WORK/kms.log" 2>&1 || { cat "$WORK/kms.log"; fail "starting the KMS emulator"; finish; }
sandbox_init "$WORK" /etc/mysql /var/lib/mysql /run/mysqld || { fail "copying /etc/mysql /var/lib/mysql /run/mysqld"; finish; }
printf '%s\n' '[mysqld_safe]' 'skip_syslog' 'log_error = /run/mysqld/error.log' '' '[mariadb]' 'skip_networking' \
  'log_error = /run/mysqld/error.log' >"$SANDBOX_ROOT/etc/mysql/mariadb.conf.d/99-akm-test.cnf"
ERRLOG="$SANDBOX_ROOT/run/mysqld/error.log"
q() { sandbox timeout 30 mariadb -N -B -e "$1"; }
ENV=(-u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE -u AWS_REGION
  -u AWS_DEFAULT_REGION -u AWS_SHARED_CREDENTIALS_FILE -u AWS_CREDENTIAL_PROFILES_FILE -u AWS_CONFIG_FILE
  AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL_KMS="http://$KMS_ADDR")
if sandbox_start "${ENV[@]}" >"$WORK/start1.log" 2>&1 && [ "$(q "SELECT COUNT(*) FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'aws_key_management'")" = 0 ]; then
  ok "/etc/init.d/mariadb start with the package installed and its config untouched: the server runs, without the plugin"
else cat "$WORK/start1.log"; tail -5 "$ERRLOG" 2>/dev/null; fail "start with the config as installed"; fi
sandbox_stop || fail "stopping the server (killed)"

# 4. Enabled, as the README says: uncommented, the region set.
DATA="$SANDBOX_ROOT/var/lib/mysql"
sed -i -e 's/^#\([a-z]\)/\1/' -e 's/us-east-1/eu-central-1/' "$SANDBOX_ROOT$CNF"
install -d -m 0700 -o mysql -g mysql "$DATA/.aws"
install -m 0600 -o mysql -g mysql "$KMS_DIR/kms-credentials" "$DATA/.aws/credentials"
if sandbox_start "${ENV[@]}" >"$WORK/start2.log" 2>&1; then ok "/etc/init.d/mariadb start with the example configuration enabled"
else cat "$WORK/start2.log"; tail -20 "$ERRLOG" | sed 's/^/#   /'; fail "start with the plugin"; finish; fi
out=$(q "SELECT PLUGIN_STATUS, PLUGIN_DESCRIPTION, PLUGIN_LIBRARY FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'aws_key_management'")
[[ "$out" == "ACTIVE	AWS key management plugin (Go) $BUILD"*", built for mariadb-10.11	aws_key_management.so" ]] &&
  ok "plugin ACTIVE from the package's library, naming this build" || fail "plugin row: $out"
[ "$(q "SELECT @@aws_key_management_region, @@aws_key_management_master_key_id, (SELECT LOAD_OPTION FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'aws_key_management')")" = "$(printf 'eu-central-1\talias/mariadb\tFORCE_PLUS_PERMANENT')" ] &&
  ok "the example's settings: region, alias/mariadb, FORCE_PLUS_PERMANENT" || fail "settings: $(q "SELECT @@aws_key_management_region, @@aws_key_management_master_key_id")"
if q "CREATE DATABASE pkg; CREATE TABLE pkg.t (id INT PRIMARY KEY, secret VARCHAR(64)) ENCRYPTED=YES ENCRYPTION_KEY_ID=7;
      INSERT INTO pkg.t VALUES (1, 'written through the package')" 2>"$WORK/sql.err" &&
   [ "$(q "SELECT secret FROM pkg.t")" = "written through the package" ] &&
   [ "$(q "SELECT ENCRYPTION_SCHEME, CURRENT_KEY_ID, CURRENT_KEY_VERSION FROM information_schema.INNODB_TABLESPACES_ENCRYPTION WHERE NAME = 'pkg/t'")" = "$(printf '1\t7\t1')" ]; then
  ok "an encrypted table (key 7 version 1) written and read"
else cat "$WORK/sql.err"; fail "encrypted table"; fi
if [ "$(stat -c '%a %U %G' "$DATA/aws-kms-key.7.1" 2>/dev/null)" = "400 mysql mysql" ] && [ -f "$DATA/aws-kms-key.1.1" ] &&
   ! grep -qa 'written through the package' "$DATA/pkg/t.ibd"; then
  ok "key files aws-kms-key.1.1 and 7.1 in the datadir (0400, mysql); the row is not in clear in pkg/t.ibd"
else ls -l "$DATA" | grep aws-kms | sed 's/^/#   /'; fail "key files or plaintext"; fi
if sandbox env "${ENV[@]}" timeout 60 /usr/bin/mariadb-aws-keys verify >"$WORK/verify.out" 2>"$WORK/verify.err" &&
   grep -qE '^verified ([0-9]+) key files in /var/lib/mysql: \1 ok, 0 failed' "$WORK/verify.out"; then
  ok "the installed mariadb-aws-keys verify reads the server's config: $(head -1 "$WORK/verify.out")"
else cat "$WORK/verify.out" "$WORK/verify.err"; fail "mariadb-aws-keys verify"; fi
grep -q "AWS KMS plugin: starting AWS key management plugin (Go) $BUILD" "$ERRLOG" &&
  grep -q "AWS KMS plugin: generated encrypted datakey for key id=7, version=1" "$ERRLOG" &&
  ok "error log (mariadbd-safe's log_error): the build, the new key" || { grep "AWS KMS" "$ERRLOG" | tail -5; fail "error log lines"; }
sandbox_stop && ok "the server stopped cleanly" || fail "the server had to be killed"

# 5. Remove, then purge. The system's conffile was never edited (the
# server ran on a copy), so dpkg -r leaves it and dpkg -P removes it.
if dpkg_retry -r "$PKG" && [ ! -e /usr/lib/mysql/plugin/aws_key_management.so ] && [ ! -e /usr/bin/mariadb-aws-keys ] && [ -f "$CNF" ]; then
  ok "dpkg -r: library and tool gone, the conffile kept"
else fail "dpkg -r"; fi
if dpkg_retry -P "$PKG" && [ ! -e "$CNF" ] && ! dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q installed; then
  INSTALLED=""; ok "dpkg -P: the conffile gone, the package unknown to dpkg"
else fail "dpkg -P"; fi

# 6. The system as it was.
snapshot "${SYSDIRS[@]}" >"$WORK/after"
if cmp -s "$WORK/before" "$WORK/after"; then ok "${SYSDIRS[*]} exactly as before (listing, modes, owners, file mtimes, checksums)"
else diff "$WORK/before" "$WORK/after" | head -20 | sed 's/^/#   /'; fail "the system's directories changed"; fi
system_server_running && fail "a system server is running after the test" || ok "no system server left running"
finish
