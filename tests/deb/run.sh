#!/usr/bin/env bash
# The Debian package on this machine's Debian MariaDB, as the README's "The
# Debian package" section has a user do it: every "$ " line of that section,
# in order, as written, as root, in a copy of the checkout, with these
# checks after the lines they concern:
#   make deb        lintian (no error or warning); contents, Depends,
#                   conffile, copyright (DEP-5, every Go module compiled
#                   into any of the three binaries, each naming its binaries)
#   dpkg -i         files in place (the examples are support-files/systemd's);
#                   the installed MFA drop-in passes systemd-analyze verify
#                   with mariadb.service and the installed /usr/bin/iam-kms-wrapper
#                   (and a copy without its ExecStart= reset does not); the
#                   example config enables nothing: the server (Debian's init
#                   script) starts without the plugin
#   (before the restart: AWS credentials in <datadir>/.aws/credentials, as
#   "Installing the plugin" has them)
#   SELECT ... PLUGINS   ACTIVE, the package's library, this build; the
#                   example's settings; an encrypted table written and read,
#                   its key files (0400, mysql), no plaintext in the .ibd; the
#                   installed mariadb-aws-keys (as mysql) verifies them; the error log
#   --version       the installed tool and wrapper name this build; the
#                   wrapper's --help names the drop-in example
#   dpkg -r / -P    library, tool and wrapper gone; the edited conffile kept / gone
# and at the end /etc/mysql, /var/lib/mysql, /usr/lib/mysql/plugin and
# /usr/bin exactly as before, no system server running.
# Mapped: "sudo systemctl restart|stop mariadb" is a stop of the sandbox's
# server and /etc/init.d/mariadb start (no systemd as PID 1 here); "sudo" is
# a pass-through where it is missing; a dpkg line is retried while another
# dpkg or apt holds the lock. The KMS is the loopback emulator, under the
# README's alias and region, found through AWS_ENDPOINT_URL_KMS.
# Everything runs with private copies of /etc/mysql, /var/lib/mysql and
# /run/mysqld (tests/sandbox.sh): the server never writes the system's
# datadir, and dpkg writes the conffile into the copy (its database,
# /usr/lib/mysql/plugin and /usr/bin are the system's). A trap stops the
# server and purges the package on every exit path, and restores
# /etc/mysql from a copy if it changed. Refuses to run (a failure, not a
# skip) while the system's server is running or the package is installed.
# Needs root. Prints "ok"/"FAIL" lines and "N passed, N failed". Bounded
# (480 s).
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bounded 480 "$@"
. "$ROOT/tests/sandbox.sh"

PKG=aws-key-management
CNF=/etc/mysql/mariadb.conf.d/50-aws-key-management.cnf
[ "$(id -u)" = 0 ] || { fail "needs root (dpkg -i)"; finish; }
for c in dpkg-deb dpkg-shlibdeps lintian unshare systemd-analyze /etc/init.d/mariadb; do
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
  if [ -n "$INSTALLED" ]; then echo "# purging $PKG"; sandbox dpkg -P "$PKG" >/dev/null 2>&1; fi
  snapshot "${SYSDIRS[@]}" >"$WORK/after"
  if ! diff -q <(grep '^/etc/mysql' "$WORK/before") <(grep '^/etc/mysql' "$WORK/after") >/dev/null; then
    echo "# /etc/mysql changed: restoring it from $WORK/etc-mysql.tar"
    rm -rf /etc/mysql && tar -C / -xpf "$WORK/etc-mysql.tar"
  fi
  if [ -n "${AKM_DEB_KEEP:-}" ]; then echo "# AKM_DEB_KEEP: $WORK kept"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'echo "# interrupted or over time"; fail "run interrupted (signal or the 480 s bound)"; echo "$PASSED passed, $FAILED failed"; exit 1' INT TERM

kms_start "$WORK/kms" >"$WORK/kms.log" 2>&1 || { cat "$WORK/kms.log"; fail "starting the KMS emulator"; finish; }
sandbox_init "$WORK" /etc/mysql /var/lib/mysql /run/mysqld || { fail "copying /etc/mysql /var/lib/mysql /run/mysqld"; finish; }
sandbox_test_config
DATA="$SANDBOX_ROOT/var/lib/mysql" SCNF="$SANDBOX_ROOT$CNF"
q() { sandbox timeout 30 mariadb -N -B -e "$1"; }
user_shell "$WORK" || { fail "copying the checkout"; finish; }
BUILD="$(cat VERSION) commit $(git rev-parse --short=12 HEAD)"

# after_make_deb: lintian and what is in the package.
after_make_deb() {
  local deb rc contents w missing=() dep mods m nmissing=0
  deb=$(ls "$CWD"/build/${PKG}_*_amd64.deb 2>/dev/null)
  [ -f "$deb" ] || { fail "make deb wrote no build/${PKG}_*_amd64.deb"; return; }
  [ "$(basename "$deb")" = "${PKG}_$(cat VERSION)_amd64.deb" ] && ok "make deb: build/$(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)" || fail "package name $(basename "$deb")"
  lintian --fail-on error,warning "$deb" >"$WORK/lintian.log" 2>&1
  rc=$?
  if [ "$rc" = 0 ] && ! grep -qE '^[EW]: ' "$WORK/lintian.log"; then
    ok "lintian: no error or warning ($(grep -c '^[a-z]' packaging/deb/lintian-overrides) overrides, the reason in packaging/deb/lintian-overrides)"
  else sed 's/^/#   /' "$WORK/lintian.log"; fail "lintian (exit $rc)"; fi
  contents=$(dpkg-deb -c "$deb" | awk '{ print $1, $6 }')
  for w in "-rw-r--r-- ./usr/lib/mysql/plugin/aws_key_management.so" "-rwxr-xr-x ./usr/bin/mariadb-aws-keys" \
    "-rwxr-xr-x ./usr/bin/iam-kms-wrapper" \
    "-rw-r--r-- .$CNF" "-rw-r--r-- ./usr/share/doc/$PKG/copyright" "-rw-r--r-- ./usr/share/doc/$PKG/README.md.gz" \
    "-rw-r--r-- ./usr/share/doc/$PKG/examples/aws-key-management-credentials.conf" \
    "-rw-r--r-- ./usr/share/doc/$PKG/examples/aws-key-management-mfa.conf" \
    "-rw-r--r-- ./usr/share/doc/$PKG/examples/iam-kms-wrapper.config" \
    "-rw-r--r-- ./usr/share/man/man1/mariadb-aws-keys.1.gz" "-rw-r--r-- ./usr/share/man/man1/iam-kms-wrapper.1.gz"; do
    grep -qxF -- "$w" <<<"$contents" || missing+=("$w")
  done
  ((${#missing[@]} == 0)) && ok "contents: the library, the tool, the wrapper, the conffile, docs, copyright, the two drop-in examples, the wrapper's config, the two man pages" || fail "missing from the package: ${missing[*]}"
  dep=$(dpkg-deb -f "$deb" Depends)
  [[ "$dep" == *"libc6 (>="*"mariadb-server (>= 1:10.11), mariadb-server (<< 1:10.12~)" ]] && ok "Depends: $dep" || fail "Depends: $dep"
  [ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles)" = "$CNF" ] && ok "conffiles: $CNF" || fail "conffiles"
  dpkg-deb --fsys-tarfile "$deb" | tar -xOf - "./usr/share/doc/$PKG/copyright" >"$WORK/copyright"
  mods=$(for b in aws_key_management.so mariadb-aws-keys iam-kms-wrapper; do go version -m "$CWD/build/$b"; done | awk '$1 == "dep" { print $2 }' | sort -u)
  while read -r m; do grep -q "^Files: go-modules/$m/\*$" "$WORK/copyright" || { note "copyright lacks $m"; nmissing=$((nmissing + 1)); }; done <<<"$mods"
  if ((nmissing == 0)) && grep -q '^Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/$' "$WORK/copyright" &&
     awk '/^Files: / { f = ($2 == "go-modules/github.com/aws/aws-sdk-go-v2/*") } f && /^License: /' "$WORK/copyright" | grep -qx 'License: Apache-2.0'; then
    ok "copyright: DEP-5, all $(wc -l <<<"$mods") Go modules of go version -m of the library, the tool and the wrapper, the AWS SDK for Go as Apache-2.0"
  else fail "copyright: $nmissing modules missing, or no DEP-5 header, or the SDK's licence"; fi
  # Each module names the binaries it is in: STS is in all three, cobra in
  # the tool only.
  grep -qx 'Comment: Go module github.com/aws/aws-sdk-go-v2/service/sts v[0-9.]*, compiled into aws_key_management.so, mariadb-aws-keys, iam-kms-wrapper' "$WORK/copyright" &&
    grep -qx 'Comment: Go module github.com/spf13/cobra v[0-9.]*, compiled into mariadb-aws-keys' "$WORK/copyright" &&
    ok "copyright: each module names the binaries it is compiled into (STS: all three; cobra: the tool)" ||
    fail "copyright: $(grep -E '^Comment: Go module github.com/(aws/aws-sdk-go-v2/service/sts|spf13/cobra) ' "$WORK/copyright")"
}

# after_dpkg_install: the files, and a server with the config as installed.
after_dpkg_install() {
  local active
  INSTALLED=1
  [ "$(dpkg-query -W -f='${Status} ${Version}' "$PKG")" = "install ok installed $(cat VERSION)" ] && ok "dpkg: $PKG $(cat VERSION) installed" || fail "dpkg status: $(dpkg-query -W -f='${Status} ${Version}' "$PKG")"
  cmp -s "$CWD/build/aws_key_management.so" /usr/lib/mysql/plugin/aws_key_management.so && ok "/usr/lib/mysql/plugin/aws_key_management.so is the release build" || fail "the installed library differs from build/aws_key_management.so"
  cmp -s "$CWD/build/iam-kms-wrapper" /usr/bin/iam-kms-wrapper && ok "/usr/bin/iam-kms-wrapper is the build's wrapper" || fail "the installed wrapper differs from build/iam-kms-wrapper"
  local ex=/usr/share/doc/$PKG/examples f sd out rc
  for f in aws-key-management-mfa.conf iam-kms-wrapper.config; do
    cmp -s "$CWD/support-files/systemd/$f" "$ex/$f" && ok "$ex/$f is support-files/systemd/$f" || fail "$ex/$f differs from support-files/systemd/$f"
  done
  # The MFA drop-in and config, installed by the README's `sudo install`
  # lines of "Starting the server with an MFA code", as written but with
  # /etc/ under a scratch root R; then the unit with this machine's
  # mariadb.service: its ExecStart= names the installed wrapper, which now
  # exists (systemd-analyze checks that), and the installed config is one
  # the wrapper accepts (it goes on to look for the command). The control:
  # without the line that clears Debian's ExecStart=, systemd refuses the
  # unit.
  local R="$WORK/root"
  mkdir -p "$R/etc/mysql"
  scratch_root_run "$R" "$CWD" "README (MFA)" < <(awk '/^### Starting the server with an MFA code/ { f = 1; next } /^##+ / { f = 0 } f && /^sudo install /' "$CWD/README.md")
  [ "$SCRATCH_N" = 3 ] && ok "the README's MFA section has 3 install commands, all run" || fail "found $SCRATCH_N install commands in the README's MFA section, want 3"
  sd="$R/etc/systemd/system"
  cp /lib/systemd/system/mariadb.service "$sd/"
  out=$(SYSTEMD_UNIT_PATH="$sd:" timeout 60 systemd-analyze verify "$sd/mariadb.service" 2>&1); rc=$?
  [ "$rc" = 0 ] && [ -z "$out" ] && grep -qx 'ExecStart=/usr/bin/iam-kms-wrapper .*' "$sd/mariadb.service.d/aws-key-management-mfa.conf" &&
    ok "the installed MFA drop-in verifies with mariadb.service and /usr/bin/iam-kms-wrapper (systemd-analyze, no diagnostic)" ||
    fail "installed MFA drop-in: exit $rc: $out"
  out=$(/usr/bin/iam-kms-wrapper --config="$R/etc/mysql/iam-kms-wrapper.config" /nonexistent/mariadbd 2>&1); rc=$?
  [ "$rc" = 2 ] && [[ "$out" == "iam-kms-wrapper: command /nonexistent/mariadbd: "* ]] &&
    ok "the installed wrapper accepts the installed example config" || fail "example config: exit $rc: $out"
  grep -vx 'ExecStart=' "$ex/aws-key-management-mfa.conf" >"$sd/mariadb.service.d/aws-key-management-mfa.conf"
  out=$(SYSTEMD_UNIT_PATH="$sd:" timeout 60 systemd-analyze verify "$sd/mariadb.service" 2>&1)
  [[ "$out" == *"more than one ExecStart="* ]] && ok "the control: without 'ExecStart=' first, systemd-analyze refuses the unit" ||
    fail "the control: no diagnostic for a drop-in that does not clear ExecStart=: '$out'"
  active=$(grep -vE '^[[:space:]]*(#|$)' "$SCNF")
  [ "$active" = "[mariadb]" ] && ok "$CNF enables nothing as installed (every setting commented out)" || fail "$CNF has active lines: $active"
  if sandbox_start "${ENV[@]}" >"$WORK/start1.log" 2>&1 && [ "$(q "SELECT COUNT(*) FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'aws_key_management'")" = 0 ]; then
    ok "/etc/init.d/mariadb start with the package installed and its config untouched: the server runs, without the plugin"
  else cat "$WORK/start1.log"; tail -5 "$ERRLOG" 2>/dev/null; fail "start with the config as installed"; fi
  sandbox_stop || fail "stopping the server (killed)"
}

# after_plugins: the plugin at work.
after_plugins() {
  [[ "$(tail -1 "$WORK/out")" == "ACTIVE	aws_key_management.so	AWS key management plugin (Go) $BUILD"*", built for mariadb-10.11" ]] &&
    ok "plugin ACTIVE from the package's library, naming this build" || fail "plugin row: $(cat "$WORK/out")"
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
    ok "key files aws-kms-key.1.1 and 7.1 in /var/lib/mysql (0400, mysql); the row is not in clear in pkg/t.ibd"
  else ls -l "$DATA" | grep aws-kms | sed 's/^/#   /'; fail "key files or plaintext"; fi
  # As the server's user, as "Credentials, safely" says (as root the tool
  # refuses a credentials file that mysql owns).
  if sandbox env "${ENV[@]}" runuser -u mysql -- timeout 60 /usr/bin/mariadb-aws-keys verify >"$WORK/verify.out" 2>"$WORK/verify.err" &&
     grep -qE '^verified ([0-9]+) key files in /var/lib/mysql: \1 ok, 0 failed' "$WORK/verify.out"; then
    ok "the installed mariadb-aws-keys verify, run as mysql, reads the server's config: $(head -1 "$WORK/verify.out")"
  else cat "$WORK/verify.out" "$WORK/verify.err"; fail "mariadb-aws-keys verify"; fi
  grep -q "AWS KMS plugin: starting AWS key management plugin (Go) $BUILD" "$ERRLOG" &&
    grep -q "AWS KMS plugin: generated encrypted datakey for key id=7, version=1" "$ERRLOG" &&
    ok "error log (mariadbd-safe's log_error): the build, the new key" || { grep "AWS KMS" "$ERRLOG" | tail -5; fail "error log lines"; }
}

n=0
while IFS= read -r line; do
  n=$((n + 1))
  if [ "$line" = "sudo systemctl restart mariadb" ]; then
    # Credentials, as "Installing the plugin" puts them.
    install -d -m 0700 -o mysql -g mysql "$DATA/.aws"
    install -m 0600 -o mysql -g mysql "$KMS_DIR/kms-credentials" "$DATA/.aws/credentials"
  fi
  echo "## \$ $line"
  rc=0
  case "$line" in
    "sudo systemctl restart mariadb") { sandbox_stop && sandbox_start "${ENV[@]}"; } >"$WORK/out" 2>"$WORK/err" || rc=$? ;;
    "sudo systemctl stop mariadb") sandbox_stop >"$WORK/out" 2>"$WORK/err" || rc=$? ;;
    *)
      for _ in $(seq 1 24); do
        rc=0
        (cd "$CWD" && sandbox env "${ENV[@]}" bash -c "$line" </dev/null >"$WORK/out" 2>"$WORK/err") || rc=$?
        [[ "$rc" != 0 && "$line" == "sudo dpkg "* ]] && grep -q 'lock' "$WORK/err" || break
        sleep 5
      done ;;
  esac
  sed 's/^/##   /' "$WORK/out" | head -20
  sed 's/^/##   (stderr) /' "$WORK/err" | head -20
  [ "$rc" = 0 ] && ok "README: \$ $line" || { tail -5 "$ERRLOG" 2>/dev/null | sed 's/^/#   /'; fail "README: \$ $line (exit $rc)"; }
  case "$line" in
    "make deb") after_make_deb ;;
    "sudo dpkg -i "*) after_dpkg_install ;;
    *"FROM information_schema.PLUGINS"*) after_plugins ;;
    "mariadb-aws-keys --version")
      [[ "$(cat "$WORK/out")" == "mariadb-aws-keys version $BUILD"* ]] && ok "the installed tool names this build" || fail "tool version: $(cat "$WORK/out")" ;;
    "iam-kms-wrapper --version")
      [ "$(command -v iam-kms-wrapper)" = /usr/bin/iam-kms-wrapper ] && [[ "$(cat "$WORK/out")" == "iam-kms-wrapper version $BUILD"* ]] &&
        ok "the installed wrapper (/usr/bin/iam-kms-wrapper) names this build: $(cat "$WORK/out")" || fail "wrapper version: $(cat "$WORK/out")"
      if /usr/bin/iam-kms-wrapper --help >"$WORK/help" 2>&1 && grep -q -- '--version' "$WORK/help" &&
         grep -q "/usr/share/doc/$PKG/examples/" "$WORK/help" && grep -q 'aws-key-management-mfa.conf' "$WORK/help" &&
         [ -f "/usr/share/doc/$PKG/examples/aws-key-management-mfa.conf" ]; then
        ok "the installed wrapper's --help names --version and the drop-in example the package ships"
      else fail "wrapper --help: $(head -5 "$WORK/help")"; fi ;;
    "sudo dpkg -r "*)
      [ ! -e /usr/lib/mysql/plugin/aws_key_management.so ] && [ ! -e /usr/bin/mariadb-aws-keys ] && [ ! -e /usr/bin/iam-kms-wrapper ] &&
        grep -q '^plugin_load_add' "$SCNF" &&
        ok "dpkg -r: library, tool and wrapper gone, the edited conffile kept" || fail "after dpkg -r" ;;
    "sudo dpkg -P "*)
      if [ ! -e "$SCNF" ] && ! dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q installed; then
        INSTALLED=""; ok "dpkg -P: the conffile gone, the package unknown to dpkg"
      else fail "after dpkg -P"; fi ;;
  esac
done < <(readme_commands "The Debian package")
[ "$n" -ge 10 ] && ok "the README's Debian package section has $n commands, all run" || fail "only $n commands found in the README's Debian package section"

# The system as it was.
snapshot "${SYSDIRS[@]}" >"$WORK/after"
if cmp -s "$WORK/before" "$WORK/after"; then ok "${SYSDIRS[*]} exactly as before (listing, modes, owners, file mtimes, checksums)"
else diff "$WORK/before" "$WORK/after" | head -20 | sed 's/^/#   /'; fail "the system's directories changed"; fi
system_server_running && fail "a system server is running after the test" || ok "no system server left running"
finish
