#!/usr/bin/env bash
# Credentials that cannot be planted or read: the release plugin
# (build/aws_key_management.so) in a real mariadbd against the loopback KMS,
# with its only credentials in <datadir>/.aws/credentials (HOME=/nonexistent,
# as for Debian's mysql user), and the operator tool reading the same file.
#
#   1. A planted credentials file with credential_process (the command
#      would touch a marker file) is refused, at server start
#      (plugin_load_add; again once a key file waits to be unwrapped) and
#      by INSTALL SONAME: world-writable, group-writable, owned by another
#      user, in a world-writable .aws directory. Each time the
#      plugin does not load, the error log names the file, its owner and
#      mode and the fix, and the command never runs. The tool refuses it
#      too (exit 2).
#   2. The same file at 0600 of the server's user: the plugin loads, the
#      command runs (the control: the marker appears), the log names the
#      program but not its arguments; at 0644 the plugin loads with a
#      warning that every local user can read the file. The tool as
#      another user (nobody) with a credentials file of its own works; as
#      root with that file it is refused.
#   3. LOAD_FILE: a user with only the FILE privilege reads the secret key
#      out of <datadir>/.aws/credentials, and creates <datadir>/.aws/config
#      with INTO OUTFILE (owner: the server's user), though not over an
#      existing file; with secure_file_priv set to another directory the
#      same SELECT gives NULL (a file inside that directory still reads:
#      the control) and INTO OUTFILE is refused.
#   4. support-files/systemd: the drop-ins, attached to a copy of this
#      machine's mariadb.service, pass `systemd-analyze verify` with no
#      diagnostic (with build/iam-kms-wrapper as /usr/bin/iam-kms-wrapper,
#      the path of the MFA drop-in's ExecStart=, through an overlay in a
#      private mount namespace); broken copies get one (the controls: a
#      relative EnvironmentFile=, the MFA drop-in without the line that
#      clears ExecStart=, the MFA drop-in without the wrapper in place);
#      the example env file has only plain VAR=value lines; the README's
#      MFA section shows the MFA drop-in's settings and the example
#      wrapper config verbatim.
#   5. The README's install commands of "Credentials, safely" (setup 2),
#      run with /etc under a scratch root: modes, and the installed
#      drop-in verifies.
#
# Prints "ok - ..." / "FAIL - ..." per check and one last line
# "N passed, N failed"; exits non-zero on any failure. Bounded (300 s);
# everything lives under a mktemp directory; a trap stops the server and
# the emulator. AKM_KEEP=1 keeps the work directory.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bounded 300 "$@"

server_test_work creds 300

TOOL="$ROOT/build/mariadb-aws-keys"
[ -x "$TOOL" ] && [ -x "$ROOT/build/iam-kms-wrapper" ] && [ -f "$ROOT/build/aws_key_management.so" ] ||
  { fail "build/mariadb-aws-keys, build/iam-kms-wrapper or build/aws_key_management.so missing: make"; finish; }
# start ARGS...: srv_start on a port free now (other servers come and go
# on this machine between our restarts).
start() { SRV_PORT=$(srv_free_port 26306) || return 1; srv_start "$@"; }

# q SQL...: one bounded client call as root, tab-separated, no column names.
q() { timeout 30 mariadb --no-defaults -S "$SRV_DIR/mysqld.sock" -uroot -N -B "$@"; }
plugin_status() { q -e "SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME='aws_key_management'"; }

srv_install || { fail "mariadb-install-db"; finish; }
kms_start "$WORK/kms" >"$WORK/kms-start.log" 2>&1 || { cat "$WORK/kms-start.log"; fail "starting the KMS emulator"; finish; }
DATA="$SRV_DIR/data" LOG="$SRV_DIR/error.log" ME=$(id -un)
mkdir -m 700 "$DATA/.aws"
CREDS="$DATA/.aws/credentials"

# The planted profile: credential_process runs a script that would leave
# a marker and hand out the emulator's credentials. The script itself is
# ours (0700), so only the file that names it is in question.
MARKER="$WORK/credential-process-ran"
mkdir -m 700 "$WORK/bin"
printf '#!/bin/sh\ntouch %s\nprintf %s\n' "$MARKER" \
  "'{\"Version\":1,\"AccessKeyId\":\"$KMS_ACCESS_KEY\",\"SecretAccessKey\":\"$KMS_SECRET\"}'" >"$WORK/bin/get-creds"
chmod 700 "$WORK/bin/get-creds"
plant() { # plant MODE: the credential_process profile at MODE, owned by us
  rm -f "$CREDS"
  printf '[default]\ncredential_process = %s --token s3cr3t-arg\nregion = %s\n' "$WORK/bin/get-creds" "$KMS_REGION" >"$CREDS"
  chmod "$1" "$CREDS"
}

SRV_ENV=(-u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE -u AWS_REGION
  -u AWS_DEFAULT_REGION -u AWS_SHARED_CREDENTIALS_FILE -u AWS_CREDENTIAL_PROFILES_FILE
  HOME=/nonexistent AWS_CONFIG_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true)
PLUGIN_OPTS=(--loose-aws-key-management-endpoint-url="http://$KMS_ADDR"
  --loose-aws-key-management-master-key-id="$KMS_ALIAS" --loose-aws-key-management-request-timeout=2000)

# refused LABEL WHAT...: the last refusal in the error log names the
# credentials file, then each of WHAT; the plugin is not active; the
# command did not run.
refused() {
  local label=$1 line st; shift
  line=$(grep -a "AWS KMS plugin: initializing KMS client: refusing the AWS credentials file (from datadir) $CREDS" "$LOG" | tail -1)
  st=$(plugin_status)
  local w missing=""
  for w in "$@"; do [[ "$line" == *"$w"* ]] || missing+=" '$w'"; done
  if [ -n "$line" ] && [ -z "$missing" ] && [[ "$line" == *"[ERROR]"* ]] && [ "$st" != ACTIVE ] && [ ! -e "$MARKER" ]; then
    ok "$label: refused (plugin status '${st:-none}'), the command did not run; error log: ${line#*AWS KMS plugin: }"
  else
    fail "$label: log line '${line:-none}' (missing:${missing:- none}), plugin status '$st', marker $([ -e "$MARKER" ] && echo present || echo absent)"
  fi
}

note "1. planted credentials files are refused"
plant 666
if start "${PLUGIN_OPTS[@]}" --plugin-load-add=aws_key_management; then
  refused "world-writable file at server start (plugin_load_add)" "owner $ME, mode 0666" "its group or other users can write it" \
    "credential_process" "fix: chown $ME: $CREDS; chmod 600 $CREDS"
  srv_stop
else fail "the server did not start with a refused plugin"; fi

# One server, INSTALL SONAME after each new plant: a failed INSTALL leaves
# the server running and the plugin not installed.
start "${PLUGIN_OPTS[@]}" || { fail "start mariadbd"; finish; }
install_refused() {
  local label=$1; shift
  if q -e "INSTALL SONAME 'aws_key_management'" 2>"$WORK/sql.err"; then
    fail "$label: INSTALL SONAME succeeded"; q -e "UNINSTALL SONAME 'aws_key_management'"
  else refused "$label (INSTALL SONAME: $(grep -o 'ERROR.*' "$WORK/sql.err"))" "$@"; fi
}
plant 600; chown 65534:65534 "$CREDS"
install_refused "a 0600 file of another user (nobody)" "owner nobody, mode 0600" "belongs to neither root nor $ME (the user this process runs as)"
plant 600; chmod 777 "$DATA/.aws"
install_refused "a 0600 file in a world-writable .aws directory" "its directory $DATA/.aws (owner $ME, mode 0777)" "fix: chmod go-w $DATA/.aws"
chmod 700 "$DATA/.aws"
plant 620
install_refused "a group-writable file" "mode 0620"

note "2. the same file, safe: 0600 works, 0644 works with a warning"
plant 600
if q -e "INSTALL SONAME 'aws_key_management'" 2>"$WORK/sql.err" && [ "$(plugin_status)" = ACTIVE ]; then
  ok "0600 file of the server's user: INSTALL SONAME, plugin ACTIVE"
else cat "$WORK/sql.err"; fail "0600 file: plugin not installed"; fi
if q -e "CREATE DATABASE d; CREATE TABLE d.t (a INT) ENCRYPTED=YES ENCRYPTION_KEY_ID=7; INSERT INTO d.t VALUES (1)" 2>"$WORK/sql.err" &&
   [ -f "$DATA/aws-kms-key.7.1" ] && [ -e "$MARKER" ]; then
  ok "a key from KMS with the credentials of credential_process (the control: the command ran, the marker is there)"
else cat "$WORK/sql.err"; fail "0600 file: no key through credential_process (marker $([ -e "$MARKER" ] && echo present || echo absent))"; fi
if grep -q "profile \"default\" gets them by running $WORK/bin/get-creds (credential_process; arguments not shown)" "$LOG" &&
   ! grep -q "s3cr3t-arg" "$LOG"; then
  ok "the error log names the program credential_process runs, not its arguments"
else grep "AWS KMS plugin: KMS client" "$LOG" | tail -2; fail "no log line naming the credential_process program (or its arguments shown)"; fi
if (cd "$WORK" && env "${SRV_ENV[@]}" timeout 60 "$TOOL" verify --no-defaults --datadir "$DATA" --region "$KMS_REGION" \
     --endpoint-url "http://$KMS_ADDR" >"$WORK/tool.out" 2>"$WORK/tool.err"); then
  ok "mariadb-aws-keys verify with the 0600 file: exit 0"
else cat "$WORK/tool.out" "$WORK/tool.err"; fail "mariadb-aws-keys verify with the 0600 file"; fi
# The tool checks for the user it runs as: nobody stands for mysql, with a
# copy of the key file and a credentials file of its own. As nobody it
# works; as root the same file is refused (nobody could have written it).
PUB="$WORK/as-nobody"
chmod 711 "$WORK"
mkdir -m 700 "$PUB" && cp "$DATA"/aws-kms-key.* "$PUB/" && cp "$KMS_DIR/kms-credentials" "$PUB/credentials" && chown -R 65534:65534 "$PUB"
as_tool() { # as_tool [runuser -u USER --]: verify $PUB with $PUB/credentials
  (cd "$WORK" && "$@" env "${SRV_ENV[@]}" AWS_SHARED_CREDENTIALS_FILE="$PUB/credentials" timeout 60 "$TOOL" verify --no-defaults \
    --region "$KMS_REGION" --endpoint-url "http://$KMS_ADDR" "$PUB" >"$WORK/tool.out" 2>"$WORK/tool.err")
}
if as_tool runuser -u nobody --; then ok "mariadb-aws-keys verify as nobody, with nobody's 0600 credentials file: exit 0"
else cat "$WORK/tool.out" "$WORK/tool.err"; fail "mariadb-aws-keys verify as nobody"; fi
as_tool; rc=$?
if [ "$rc" = 2 ] && grep -q "refusing the AWS credentials file (from AWS_SHARED_CREDENTIALS_FILE) $PUB/credentials: owner nobody, mode 0600: it belongs to neither root nor $ME" "$WORK/tool.err"; then
  ok "mariadb-aws-keys verify as $ME with nobody's credentials file: refused (exit 2)"
else cat "$WORK/tool.err"; fail "mariadb-aws-keys verify as $ME with nobody's credentials file: exit $rc"; fi
srv_stop || fail "shutdown exit status $?"
# The tool, on the datadir that now has a key file (a fresh marker).
plant 666; rm -f "$MARKER"
out=$(cd "$WORK" && env "${SRV_ENV[@]}" timeout 60 "$TOOL" verify --no-defaults --datadir "$DATA" --region "$KMS_REGION" \
  --endpoint-url "http://$KMS_ADDR" 2>"$WORK/tool.err"); rc=$?
if [ "$rc" = 2 ] && grep -q "refusing the AWS credentials file (from datadir) $CREDS: owner $ME, mode 0666" "$WORK/tool.err" && [ ! -e "$MARKER" ]; then
  ok "mariadb-aws-keys verify refuses the world-writable file too (exit 2, stderr names it), the command did not run"
else cat "$WORK/tool.err"; fail "mariadb-aws-keys verify with a world-writable credentials file: exit $rc, marker $([ -e "$MARKER" ] && echo present || echo absent)"; fi
# A restart with key files: a plugin that loads unwraps them at once (so
# the command would run now; the 0644 start below is the control).
if start "${PLUGIN_OPTS[@]}" --plugin-load-add=aws_key_management; then
  refused "world-writable file at a restart with a key file to unwrap" "owner $ME, mode 0666"
  srv_stop
else fail "the server did not start with a refused plugin and an encrypted table"; fi

plant 644; rm -f "$MARKER"
if start "${PLUGIN_OPTS[@]}" --plugin-load-add=aws_key_management && [ "$(plugin_status)" = ACTIVE ] &&
   [ "$(q -e "SELECT a FROM d.t")" = 1 ] && [ -e "$MARKER" ]; then
  ok "0644 file: the plugin loads at start, runs the command to unwrap the key (the control), and the table reads"
else fail "0644 file: plugin status '$(plugin_status)', marker $([ -e "$MARKER" ] && echo present || echo absent)"; fi
if grep -q "\[Warning\] .*AWS KMS plugin: the AWS credentials file (from datadir) $CREDS (owner $ME, mode 0644) can be read by every local user" "$LOG"; then
  ok "0644 file: a warning that every local user can read it"
else grep "AWS KMS plugin" "$LOG" | tail -3; fail "0644 file: no warning"; fi

note "3. LOAD_FILE and INTO OUTFILE reach .aws unless secure_file_priv keeps them out"
cp "$KMS_DIR/kms-credentials" "$CREDS" # static keys now, 0600
q -e "CREATE USER filer@localhost IDENTIFIED BY 'filer-pw'; GRANT FILE ON *.* TO filer@localhost" || fail "CREATE USER filer"
asfiler() { timeout 30 mariadb --no-defaults -S "$SRV_DIR/mysqld.sock" -ufiler -pfiler-pw -N -B -e "$1"; }
out=$(asfiler "SELECT @@secure_file_priv IS NULL OR @@secure_file_priv = '', LOAD_FILE('$CREDS') LIKE '%$KMS_SECRET%'")
if [ "$out" = "$(printf '1\t1')" ]; then
  ok "no secure_file_priv: a user with only FILE reads the secret access key with LOAD_FILE('$CREDS')"
else fail "LOAD_FILE without secure_file_priv: '$out'"; fi
# ... and writes: INTO OUTFILE creates a file the SDK would read (here
# <datadir>/.aws/config, read when HOME is the datadir), owned by the
# server's user, so it passes the owner check; it never overwrites one.
CONF="$DATA/.aws/config"
if asfiler "SELECT '[default]' INTO OUTFILE '$CONF'" && [ "$(stat -c '%U %a' "$CONF")" = "$ME 644" ]; then
  ok "no secure_file_priv: a user with only FILE creates $CONF with INTO OUTFILE (owner $ME, mode 644: what the check accepts)"
else fail "INTO OUTFILE without secure_file_priv: $(stat -c '%U %a' "$CONF" 2>&1)"; fi
rm -f "$CONF"
install -m 600 /dev/null "$CONF"
if ! asfiler "SELECT '[default]' INTO OUTFILE '$CONF'" 2>"$WORK/sql.err" && grep -q "already exists" "$WORK/sql.err" && [ ! -s "$CONF" ]; then
  ok "an empty config file of our own cannot be replaced by INTO OUTFILE ($(grep -o 'ERROR.*' "$WORK/sql.err"))"
else cat "$WORK/sql.err"; fail "INTO OUTFILE over an existing config file"; fi
rm -f "$CONF"
srv_stop || fail "shutdown exit status $?"
mkdir -m 700 "$WORK/imports"
echo "harmless import" >"$WORK/imports/data.txt"
if start "${PLUGIN_OPTS[@]}" --plugin-load-add=aws_key_management --secure-file-priv="$WORK/imports"; then
  if ! asfiler "SELECT '[default]' INTO OUTFILE '$CONF'" 2>"$WORK/sql.err" && grep -q "ERROR 1290" "$WORK/sql.err" && [ ! -e "$CONF" ]; then
    ok "secure_file_priv: INTO OUTFILE '$CONF' is refused ($(grep -o 'ERROR.*' "$WORK/sql.err"))"
  else cat "$WORK/sql.err"; fail "INTO OUTFILE with secure_file_priv"; fi
  out=$(asfiler "SELECT LOAD_FILE('$CREDS') IS NULL, LOAD_FILE('$WORK/imports/data.txt')")
  if [ "$out" = "$(printf '1\tharmless import\\n')" ]; then # (-B shows the newline as \n)
    ok "secure_file_priv=$WORK/imports: LOAD_FILE of the credentials file is NULL; a file in that directory still reads"
  else fail "LOAD_FILE with secure_file_priv: '$out'"; fi
  [ "$(plugin_status)" = ACTIVE ] && ok "with secure_file_priv the plugin still reads its credentials file" || fail "plugin not active with secure_file_priv"
  srv_stop || fail "shutdown exit status $?"
else fail "start with secure_file_priv"; fi

note "4. support-files/systemd: drop-ins and env file"
SD="$ROOT/support-files/systemd"
if ! command -v systemd-analyze >/dev/null; then
  fail "systemd-analyze not installed (apt-get install systemd): the drop-ins cannot be verified"
elif [ ! -f /lib/systemd/system/mariadb.service ]; then
  fail "/lib/systemd/system/mariadb.service missing (mariadb-server): nothing to attach the drop-ins to"
else
  # A unit directory of our own: this machine's mariadb.service and a
  # mariadb.service.d with our drop-ins. systemd-analyze verify exits 0
  # even on a bad line, so any diagnostic counts as a failure.
  # systemd-analyze checks that each ExecStart= program exists: the MFA
  # drop-in's is /usr/bin/iam-kms-wrapper, where the Debian package puts
  # it; verify lays build/iam-kms-wrapper over /usr/bin in a private mount
  # namespace (the system's /usr/bin is not touched), verify_bare does not.
  U="$WORK/units"
  mkdir -p "$WORK/wrapper-bin"
  cp "$ROOT/build/iam-kms-wrapper" "$WORK/wrapper-bin/"
  verify() { # verify [DIR]: mariadb.service of DIR (default U) and its drop-ins
    local d=${1:-$U}
    unshare --mount --propagation private bash -c 'mount -t overlay overlay -o lowerdir="$1":/usr/bin /usr/bin &&
      SYSTEMD_UNIT_PATH="$2:" exec timeout 60 systemd-analyze verify "$2/mariadb.service"' verify "$WORK/wrapper-bin" "$d" 2>&1
  }
  verify_bare() { SYSTEMD_UNIT_PATH="$U:" timeout 60 systemd-analyze verify "$U/mariadb.service" 2>&1; }
  mkdir -p "$U/mariadb.service.d"
  cp /lib/systemd/system/mariadb.service "$U/"
  out=$(verify); rc=$?
  [ "$rc" = 0 ] && [ -z "$out" ] && ok "Debian's mariadb.service alone verifies with no diagnostic" ||
    fail "mariadb.service alone: exit $rc: $out"
  n=0
  for f in "$SD"/*.conf; do
    [ -f "$f" ] || continue
    n=$((n + 1))
    cp "$f" "$U/mariadb.service.d/"
  done
  out=$(verify); rc=$?
  [ "$n" -ge 3 ] && [ -f "$U/mariadb.service.d/aws-key-management-mfa.conf" ] && [ "$rc" = 0 ] && [ -z "$out" ] &&
    ok "systemd-analyze verify: mariadb.service with the $n drop-ins of support-files/systemd, no diagnostic" ||
    fail "systemd-analyze verify with $n drop-ins: exit $rc: $out"
  sed 's|^EnvironmentFile=/|EnvironmentFile=|' "$SD/aws-key-management-credentials.conf" >"$U/mariadb.service.d/zz-broken.conf"
  out=$(verify)
  [[ "$out" == *"zz-broken.conf"*"not absolute"* ]] &&
    ok "the control: a copy with a relative EnvironmentFile= gets a diagnostic from systemd-analyze ($out)" ||
    fail "the control: no diagnostic for a broken drop-in: '$out'"
  rm -f "$U/mariadb.service.d/zz-broken.conf"
  MFA="$SD/aws-key-management-mfa.conf"
  grep -vx 'ExecStart=' "$MFA" >"$U/mariadb.service.d/aws-key-management-mfa.conf"
  out=$(verify)
  [[ "$out" == *"more than one ExecStart="* ]] &&
    ok "the control: the MFA drop-in without its 'ExecStart=' line (which clears Debian's) gets a diagnostic ($out)" ||
    fail "the control: no diagnostic for an MFA drop-in that does not clear ExecStart=: '$out'"
  cp "$MFA" "$U/mariadb.service.d/"
  if [ -e /usr/bin/iam-kms-wrapper ]; then
    note "/usr/bin/iam-kms-wrapper exists on this machine (the package?): the missing-wrapper control is not run (not counted)"
  else
    out=$(verify_bare)
    [[ "$out" == *"/usr/bin/iam-kms-wrapper is not executable"* ]] &&
      ok "the control: without the wrapper at /usr/bin/iam-kms-wrapper, systemd-analyze says so ($out)" ||
      fail "the control: no diagnostic for a missing /usr/bin/iam-kms-wrapper: '$out'"
  fi
  # The README's MFA section shows the drop-in's settings (the file less
  # its comments) and the example config, verbatim.
  readme_block() { # readme_block FIRST: the fenced block of the MFA section whose first line is FIRST
    awk -v first="$1" '/^### / { s = ($0 ~ /^### Starting the server with an MFA code/) } !s { next }
      /^```/ { if (in_b) { if (keep) exit; in_b = 0 } else { in_b = 1; n = 0 } next }
      in_b && ++n == 1 { keep = ($0 == first) } in_b && keep' "$ROOT/README.md"
  }
  if [ -n "$(readme_block '[Service]')" ] && diff <(readme_block '[Service]') <(grep -v '^#' "$MFA") >"$WORK/diff.out"; then
    ok "README (MFA section): the drop-in shown is support-files/systemd/aws-key-management-mfa.conf without its comments"
  else cat "$WORK/diff.out"; fail "README (MFA section): the drop-in shown differs from $MFA"; fi
  if [ -n "$(readme_block '[kms]')" ] && diff <(readme_block '[kms]') "$SD/iam-kms-wrapper.config" >"$WORK/diff.out"; then
    ok "README (MFA section): the config shown is support-files/systemd/iam-kms-wrapper.config"
  else cat "$WORK/diff.out"; fail "README (MFA section): the config shown differs from $SD/iam-kms-wrapper.config"; fi
  # (A line check, as systemd-analyze does not read env files: plain
  # VAR=value lines, no quotes, backslashes or spaces, which systemd and a
  # shell could read differently; only variables the README names.)
  bad=$(grep -vE '^(#.*|[[:space:]]*|(AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|AWS_REGION|AWS_SHARED_CREDENTIALS_FILE|AWS_CONFIG_FILE|AWS_PROFILE)=[^[:space:]"'\''\\]+)$' "$SD/aws-key-management.env.example")
  [ -z "$bad" ] && grep -q '^AWS_SECRET_ACCESS_KEY=' "$SD/aws-key-management.env.example" &&
    ok "aws-key-management.env.example: plain AWS_*=value lines only" || fail "aws-key-management.env.example: lines '$bad'"

  # The README's install commands of setup 2, as written but with /etc/
  # under a scratch root (and no sudo: this runs as root). editor and
  # systemctl are not run: no systemd manager here; systemd-analyze
  # verifies the installed drop-in instead.
  note "5. README \"Credentials, safely\": the install commands, under $WORK/root"
  R="$WORK/root"
  mkdir -p "$R/etc/mysql" # as on a host with mariadb-server
  scratch_root_run "$R" "$ROOT" README < <(awk '/^## Credentials, safely/ { f = 1; next } /^## / { f = 0 } f && /^ *sudo install / { sub(/^ +/, ""); print }' "$ROOT/README.md")
  [ "$SCRATCH_N" = 3 ] && ok "the README's setup 2 has 3 install commands, all run" || fail "found $SCRATCH_N install commands in the README's setup 2, want 3"
  [ "$(stat -c '%U %a' "$R/etc/mysql/aws-key-management.env" 2>&1)" = "root 600" ] &&
    ok "installed env file: owner root, mode 600" || fail "installed env file: $(stat -c '%U %a' "$R/etc/mysql/aws-key-management.env" 2>&1)"
  cp /lib/systemd/system/mariadb.service "$R/etc/systemd/system/" 2>/dev/null
  out=$(verify "$R/etc/systemd/system"); rc=$?
  [ "$rc" = 0 ] && [ -z "$out" ] && [ -f "$R/etc/systemd/system/mariadb.service.d/aws-key-management-credentials.conf" ] &&
    ok "the installed drop-in verifies with mariadb.service (systemd-analyze, no diagnostic)" ||
    fail "installed drop-in: exit $rc: $out"
fi

finish
