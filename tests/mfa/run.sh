#!/usr/bin/env bash
# The MFA workflows of MariaDB's "advanced usage" guide, end to end: a
# real mariadbd running the release plugin (build/aws_key_management.so)
# started through build/iam-kms-wrapper against the loopback KMS emulator's
# STS, and build/mariadb-aws-keys enable-key/disable-key around a start.
#
#   1. The key policy requires MFA: a server with the static credentials
#      cannot start (AccessDeniedException); through the wrapper, after
#      `echo CODE > FIFO`, it starts, logs when its session expires, and
#      encrypted tables work. The FIFO is mode 0600 while it waits and gone
#      after.
#   2. The session expires (the emulator's control endpoint): rotate_key
#      fails with a warning that says the session expired and what to do;
#      a new key id fails; loaded keys keep serving reads and writes.
#   3. The wrapper refuses, exits 1, removes the FIFO and does not start
#      the server: a wrong code, a code that is not six digits, no code in
#      time, SIGTERM while waiting; a regular file where the FIFO goes is
#      left alone.
#   4. disable-key with MFA: the server cannot start and its log names the
#      key and what DisabledException means; enable-key: it starts.
#
# Prints "ok - ..." / "FAIL - ..." per check and one last line
# "N passed, N failed"; exits non-zero on any failure. Bounded (420 s);
# everything lives under a mktemp directory; a trap stops the server, the
# wrapper and the emulator. AKM_MFA_KEEP=1 keeps the work directory.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
bounded 420 "$@"

WORK=$(mktemp -d /tmp/akm-mfa.XXXXXX)
SRV_DIR="$WORK/srv" SRV_PLUGIN_DIR="$ROOT/build"
. "$ROOT/scripts/server.sh"
. "$ROOT/scripts/kms.sh"
WRAP_PID=""
cleanup() {
  trap - EXIT INT TERM
  [ -n "$WRAP_PID" ] && { kill -9 "$WRAP_PID" 2>/dev/null; wait "$WRAP_PID" 2>/dev/null; }
  if [ -n "$srv_pid" ]; then kill -9 "$srv_pid" 2>/dev/null; wait "$srv_pid" 2>/dev/null; srv_pid=""; fi
  kms_stop
  if [ -n "${AKM_MFA_KEEP:-}" ]; then echo "# AKM_MFA_KEEP: logs and datadir left in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'echo "# interrupted or over time"; fail "run interrupted (signal or the 420 s bound)"; echo "$PASSED passed, $FAILED failed"; exit 1' INT TERM

WRAPPER="$ROOT/build/iam-kms-wrapper" TOOL="$ROOT/build/mariadb-aws-keys"
for f in "$WRAPPER" "$TOOL" "$ROOT/build/aws_key_management.so"; do
  [ -e "$f" ] || { fail "$f missing: make"; finish; }
done
SRV_PORT=$(srv_free_port 26306) || { fail "no free port"; finish; }
srv_install || { fail "mariadb-install-db"; finish; }
kms_start "$WORK/kms" >"$WORK/kms-start.log" 2>&1 || { cat "$WORK/kms-start.log"; fail "starting the KMS emulator"; finish; }
ARN="arn:aws:kms:$KMS_REGION:111122223333:key/$KMS_KEY_ID"
DBA_MFA=arn:aws:iam::111122223333:mfa/MDBEnc DBA_CODE=111676
ADMIN_MFA=arn:aws:iam::111122223333:mfa/MDBEncAdmin ADMIN_CODE=575290

# control PATH BODY: the emulator's unsigned control endpoint.
control() { curl -fsS -m 10 -X POST --data-binary "$2" "http://$KMS_ADDR/_emulator/$1"; }
control mfa-devices "{\"SerialNumber\":\"$DBA_MFA\",\"Code\":\"$DBA_CODE\"}" &&
  control mfa-devices "{\"SerialNumber\":\"$ADMIN_MFA\",\"Code\":\"$ADMIN_CODE\"}" || { fail "adding MFA devices"; finish; }

# The wrapper's (and the tool's) own long-term credentials are in a
# credentials file; nothing else of the caller's AWS setup leaks in.
AWS_ENV=(-u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE -u AWS_DEFAULT_REGION
  -u AWS_CREDENTIAL_PROFILES_FILE -u AWS_CREDENTIAL_EXPIRATION -u AWS_ENDPOINT_URL HOME=/nonexistent
  AWS_CONFIG_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true AWS_SHARED_CREDENTIALS_FILE="$KMS_DIR/kms-credentials"
  AWS_REGION="$KMS_REGION" AWS_ENDPOINT_URL_STS="http://$KMS_ADDR")
SRV_ENV=("${AWS_ENV[@]}")
SRV_OPTS=(--plugin-load-add=aws_key_management --aws-key-management-endpoint-url="http://$KMS_ADDR"
  --aws-key-management-master-key-id="$KMS_ALIAS" --aws-key-management-request-timeout=2000
  --innodb-encrypt-tables=ON --innodb-encrypt-log=ON)
LOG="$SRV_DIR/error.log"
FIFO="$WORK/kms_mfa_socket"
q() { timeout 30 mariadb --no-defaults -S "$SRV_DIR/mysqld.sock" -uroot -N -B "$@"; }

# The wrapper's config, as the guide writes it, plus our optional settings.
CFG="$WORK/iam-kms-wrapper.config"
cat >"$CFG" <<EOF
[kms]
kms_mfa_id = $DBA_MFA
kms_mfa_socket = $FIFO
kms_mfa_timeout = 60
kms_session_duration = 900
EOF

# wrap_start CONFIG: the README's command line, in the background: the
# wrapper's pid becomes the server's (it execs). Output in $WORK/wrapper.err.
wrap_start() {
  env "${AWS_ENV[@]}" "$WRAPPER" --config="$1" /usr/sbin/mariadbd --no-defaults --datadir="$SRV_DIR/data" \
    --socket="$SRV_DIR/mysqld.sock" --port="$SRV_PORT" --bind-address=127.0.0.1 --pid-file="$SRV_DIR/mysqld.pid" \
    --log-error="$LOG" --user="$(id -un)" --plugin-dir="$SRV_PLUGIN_DIR" "${SRV_OPTS[@]}" \
    >>"$SRV_DIR/mysqld.out" 2>"$WORK/wrapper.err" &
  WRAP_PID=$!
}
# wait_fifo: until the wrapper has made the FIFO (30 s at most).
wait_fifo() {
  local i
  for i in $(seq 1 300); do
    [ -p "$FIFO" ] && return 0
    kill -0 "$WRAP_PID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
# wait_server: until the server answers (srv_pid = the wrapper's pid).
wait_server() {
  local i
  srv_pid=$WRAP_PID WRAP_PID=""
  for i in $(seq 1 120); do
    mariadb-admin --no-defaults -S "$SRV_DIR/mysqld.sock" -uroot ping >/dev/null 2>&1 && return 0
    kill -0 "$srv_pid" 2>/dev/null || { wait "$srv_pid" 2>/dev/null; srv_pid=""; return 1; }
    sleep 0.5
  done
  return 1
}
# wrap_exit: waits (30 s at most) for a wrapper that must give up and
# sets WRAP_RC to its exit status. (kill -0 cannot tell: an exited child
# stays a zombie until waited for.)
wrap_exit() {
  local wd
  ( sleep 30; kill -9 "$WRAP_PID" 2>/dev/null ) &
  wd=$!
  wait "$WRAP_PID" 2>/dev/null
  WRAP_RC=$?
  kill "$wd" 2>/dev/null; wait "$wd" 2>/dev/null
  WRAP_PID=""
}
server_down() { ! mariadb-admin --no-defaults -S "$SRV_DIR/mysqld.sock" -uroot ping >/dev/null 2>&1; }

# 1. The key policy requires MFA.
control require-mfa on || fail "require-mfa on"
: >"$LOG"
if srv_start "${SRV_OPTS[@]}" >"$WORK/static-start.log" 2>&1; then
  fail "with the static credentials under the MFA key policy the server started"
  srv_stop
elif grep -q "AccessDeniedException - User: .* is not authorized to perform: kms:GenerateDataKeyWithoutPlaintext" "$LOG"; then
  ok "static credentials under the MFA key policy: AccessDeniedException, the server does not start"
else
  tail -5 "$LOG"; fail "static credentials: no AccessDeniedException in the error log"
fi

: >"$LOG"
wrap_start "$CFG"
if wait_fifo; then
  mode=$(stat -c '%a %F %U' "$FIFO")
  if [ "$mode" = "600 fifo $(id -un)" ]; then ok "the wrapper waits on FIFO $FIFO, mode 600, owned by $(id -un)"; else fail "FIFO: $mode"; fi
  if grep -q "waiting up to 1m0s for the code of MFA device $DBA_MFA: write it to $FIFO" "$WORK/wrapper.err"; then
    ok "the wrapper says what it waits for and where to write the code"
  else fail "wrapper message: $(cat "$WORK/wrapper.err")"; fi
  echo $DBA_CODE > "$FIFO"
  if wait_server; then
    ok "echo CODE > FIFO: the wrapper exec'd mariadbd, which started"
  else tail -5 "$LOG"; cat "$WORK/wrapper.err"; fail "the server did not start through the wrapper"; finish; fi
else
  cat "$WORK/wrapper.err"; fail "the wrapper made no FIFO"; finish
fi
[ -e "$FIFO" ] && fail "the FIFO is still there after the start" || ok "the FIFO is removed once the code is read"
if tr '\0' '\n' <"/proc/$srv_pid/environ" | grep -q '^AWS_ACCESS_KEY_ID=ASIA' &&
   tr '\0' '\n' <"/proc/$srv_pid/environ" | grep -q '^AWS_SESSION_TOKEN=.' &&
   tr '\0' '\n' <"/proc/$srv_pid/environ" | grep -q '^AWS_CREDENTIAL_EXPIRATION=20'; then
  ok "the server's environment holds the session's ASIA key, its token and AWS_CREDENTIAL_EXPIRATION"
else fail "server environment: $(tr '\0' '\n' <"/proc/$srv_pid/environ" | grep '^AWS_' | cut -c1-40)"; fi
if grep -q "AWS KMS plugin: KMS client for region $KMS_REGION at http://$KMS_ADDR; .*credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from the environment, with AWS_SESSION_TOKEN (session credentials)" "$LOG"; then
  ok "the plugin says it uses the session credentials of its environment"
else grep "KMS client for" "$LOG"; fail "the plugin's client line does not name the environment's session credentials"; fi
if grep -qE "\[Note\] .*AWS KMS plugin: session credentials expire at 20[0-9-]+ [0-9:]+ UTC \(in 1[45] min\)" "$LOG"; then
  ok "the plugin logs when its session credentials expire: $(grep -o 'session credentials expire at [^;]*' "$LOG" | head -1)"
else grep "AWS KMS plugin" "$LOG" | tail -5; fail "no session expiry line in the error log"; fi
if q -e "CREATE DATABASE d; CREATE TABLE d.t (a INT) ENCRYPTED=YES ENCRYPTION_KEY_ID=5; INSERT INTO d.t VALUES (1),(2)" &&
   [ "$(q -e 'SELECT SUM(a) FROM d.t')" = 3 ] && [ -f "$SRV_DIR/data/aws-kms-key.5.1" ]; then
  ok "with MFA session credentials: a new key (aws-kms-key.5.1) and an encrypted table"
else fail "encrypted table through the MFA session"; fi

# 2. The session expires.
n=$(control sessions/expire "")
[ "$n" -ge 1 ] 2>/dev/null && ok "emulator: $n session(s) expired now" || fail "expiring sessions: '$n'"
out=$(q -e "SET GLOBAL aws_key_management_rotate_key = 5; SHOW WARNINGS" 2>&1)
if grep -q "AWS KMS refused a new data key for key id=5: the AWS session credentials have expired: keys already loaded keep working, but no new key can be created until the server has fresh credentials: restart it through iam-kms-wrapper" <<<"$out" &&
   grep -q "Could not generate datakey for key id= 5, ver= 1" <<<"$out"; then
  ok "rotate_key after expiry: the client's warning says the session expired and to restart through iam-kms-wrapper"
else echo "$out" | sed 's/^/# /'; fail "rotate_key warning after expiry"; fi
if grep -q "AWS KMS plugin : KMS Client API 'GenerateDataKeyWithoutPlaintext' failed : ExpiredTokenException - The security token included in the request is expired; the AWS session credentials have expired" "$LOG"; then
  ok "the error log names ExpiredTokenException and says what it means"
else grep "AWS KMS" "$LOG" | tail -3; fail "no clear expiry line in the error log"; fi
[ ! -e "$SRV_DIR/data/aws-kms-key.5.2" ] && ok "no key file aws-kms-key.5.2" || fail "aws-kms-key.5.2 was written"
if q -e "INSERT INTO d.t VALUES (3)" && [ "$(q -e 'SELECT SUM(a) FROM d.t')" = 6 ]; then
  ok "after expiry the loaded key still serves writes and reads"
else fail "the loaded key after expiry"; fi
if q -e "CREATE TABLE d.u (a INT) ENCRYPTED=YES ENCRYPTION_KEY_ID=6" 2>/dev/null; then fail "a new key id after expiry worked"
else ok "after expiry a new key id fails (CREATE TABLE ... ENCRYPTION_KEY_ID=6)"; fi
srv_stop && ok "clean shutdown" || fail "shutdown"

# 3. The wrapper's refusals: exit 1, FIFO removed, no server.
# refuse WHAT WRITE MESSAGE [CONFIG]: WRITE is written to the FIFO ("" for
# nothing; "TERM" sends SIGTERM instead).
refuse() {
  local what=$1 write=$2 msg=$3 cfg=${4:-$CFG}
  : >"$LOG"
  wrap_start "$cfg"
  if ! wait_fifo; then fail "$what: no FIFO ($(cat "$WORK/wrapper.err"))"; wrap_exit; return; fi
  case $write in
    "") ;;
    TERM) kill -TERM "$WRAP_PID" ;;
    *) printf '%s' "$write" > "$FIFO" ;;
  esac
  wrap_exit
  if [ "$WRAP_RC" = 1 ] && grep -q -- "$msg" "$WORK/wrapper.err" && grep -q "/usr/sbin/mariadbd not started" "$WORK/wrapper.err" &&
     [ ! -e "$FIFO" ] && server_down && [ ! -s "$LOG" ]; then
    ok "$what: the wrapper exits 1 ('$msg'), FIFO removed, server not started"
  else
    fail "$what: exit $WRAP_RC, FIFO $(ls -l "$FIFO" 2>&1 | cut -c1-60), log $(wc -c <"$LOG") bytes: $(cat "$WORK/wrapper.err")"
  fi
}
refuse "a wrong code" $'000000\n' "MultiFactorAuthentication failed with invalid MFA one time pass code"
refuse "a code of letters" $'12ab56\n' "want six digits"
refuse "SIGTERM while waiting" TERM "waiting for the MFA code: stopped by signal terminated"
sed 's/^kms_mfa_timeout = 60$/kms_mfa_timeout = 2/' "$CFG" >"$WORK/short.config"
refuse "no code within kms_mfa_timeout = 2" "" "no MFA code arrived in time (waited 2s" "$WORK/short.config"
echo "not a fifo" >"$FIFO"
rc=$(env "${AWS_ENV[@]}" "$WRAPPER" --config="$CFG" /usr/sbin/mariadbd --no-defaults 2>"$WORK/wrapper.err"; echo $?)
if [ "$rc" = 1 ] && grep -q "a regular file is already there" "$WORK/wrapper.err" && [ "$(cat "$FIFO")" = "not a fifo" ]; then
  ok "a regular file at kms_mfa_socket: the wrapper refuses and leaves it alone"
else fail "regular file at the FIFO path: exit $rc: $(cat "$WORK/wrapper.err")"; fi
rm -f "$FIFO"
echo "[kms]
kms_mfa_id = $DBA_MFA
kms_mfa_sokcet = $FIFO" >"$WORK/typo.config"
rc=$(env "${AWS_ENV[@]}" "$WRAPPER" --config="$WORK/typo.config" /usr/sbin/mariadbd 2>"$WORK/wrapper.err"; echo $?)
if [ "$rc" = 2 ] && grep -q "config file $WORK/typo.config, \[kms\]: unknown setting \"kms_mfa_sokcet\"" "$WORK/wrapper.err"; then
  ok "a config file with a misspelt setting: exit 2 naming the file and the setting"
else fail "typo config: exit $rc: $(cat "$WORK/wrapper.err")"; fi

# 4. disable-key / enable-key with MFA, as the README writes them: the
# key administrator's profile MDBEncAdmin (the emulator's one static key
# pair under that name), the region from the key ARN, the device's code
# changing between the two calls.
ADMIN_CREDS="$WORK/admin-credentials"
printf '[MDBEncAdmin]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$KMS_ACCESS_KEY" "$KMS_SECRET" >"$ADMIN_CREDS"
TOOL_ENV=(-u AWS_REGION)
for e in "${AWS_ENV[@]}"; do [[ $e == AWS_REGION=* ]] || TOOL_ENV+=("$e"); done
TOOL_ENV+=(AWS_SHARED_CREDENTIALS_FILE="$ADMIN_CREDS" AWS_ENDPOINT_URL_KMS="http://$KMS_ADDR" PATH="$ROOT/build:$PATH")
control mfa-devices "{\"SerialNumber\":\"$ADMIN_MFA\",\"Code\":\"575290\"}" || fail "MFA code 575290"
if env "${TOOL_ENV[@]}" bash -c "AWS_PROFILE=MDBEncAdmin mariadb-aws-keys disable-key --key-id $ARN --mfa-serial $ADMIN_MFA --mfa-code 575290" \
     >"$WORK/tool.out" 2>"$WORK/tool.err" && [ "$(head -1 "$WORK/tool.out")" = "$ARN: Disabled" ] &&
   grep -q "^MFA session credentials used; they expire at 20" "$WORK/tool.out"; then
  ok "AWS_PROFILE=MDBEncAdmin mariadb-aws-keys disable-key --key-id ARN --mfa-serial ... --mfa-code 575290: $(head -1 "$WORK/tool.out")"
else fail "disable-key: $(cat "$WORK/tool.out" "$WORK/tool.err")"; fi
: >"$LOG"
wrap_start "$CFG"
if wait_fifo; then
  echo $DBA_CODE > "$FIFO"
  if wait_server; then fail "the server started with its master key disabled"; srv_stop
  elif grep -q "\[ERROR\] .*AWS KMS plugin : KMS Client API 'Decrypt' failed : DisabledException - $ARN is disabled. (at start, [0-9]* of [0-9]* key versions); the KMS master key is disabled: nothing can be wrapped or unwrapped with it until it is enabled (mariadb-aws-keys enable-key" "$LOG"; then
    ok "master key disabled: the server does not start; its log names the key and says to enable it"
  else grep -E "AWS KMS|ERROR" "$LOG" | tail -5; fail "disabled key: no clear line in the error log"; fi
else fail "disabled key: no FIFO"; fi
control mfa-devices "{\"SerialNumber\":\"$ADMIN_MFA\",\"Code\":\"799870\"}" || fail "MFA code 799870"
if env "${TOOL_ENV[@]}" bash -c "AWS_PROFILE=MDBEncAdmin mariadb-aws-keys enable-key --key-id $ARN --mfa-serial $ADMIN_MFA --mfa-code 799870" \
     >"$WORK/tool.out" 2>"$WORK/tool.err" && [ "$(head -1 "$WORK/tool.out")" = "$ARN: Enabled" ]; then
  ok "AWS_PROFILE=MDBEncAdmin mariadb-aws-keys enable-key ... --mfa-code 799870: $(head -1 "$WORK/tool.out")"
else fail "enable-key: $(cat "$WORK/tool.out" "$WORK/tool.err")"; fi
if env "${TOOL_ENV[@]}" AWS_PROFILE=MDBEncAdmin "$TOOL" enable-key --key-id "$ARN" --json >"$WORK/tool.out" 2>"$WORK/tool.err" &&
   grep -q '"state": "Enabled"' "$WORK/tool.out" && ! grep -q mfa_session "$WORK/tool.out"; then
  ok "enable-key --json without MFA (the administrator's own credentials): state Enabled"
else fail "enable-key --json: $(cat "$WORK/tool.out" "$WORK/tool.err")"; fi
: >"$LOG"
wrap_start "$CFG"
if wait_fifo && echo $DBA_CODE > "$FIFO" && wait_server && [ "$(q -e 'SELECT SUM(a) FROM d.t')" = 6 ]; then
  ok "master key enabled again: the server starts through the wrapper and reads the table"
else tail -5 "$LOG"; fail "start after enable-key"; fi
srv_stop || fail "shutdown"
finish
