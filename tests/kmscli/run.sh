#!/usr/bin/env bash
# Independent-client check of the KMS emulator (cmd/kms-emulator): the AWS
# CLI, not our Go code, signs and parses every request. Builds
# build/kms-emulator, starts it on 127.0.0.1 with fixed credentials and runs
# `aws ... kms` against it. Works with awscli 1.x (pip) and 2.x (Debian):
# only flags both have, binary input through fileb://, blob output
# base64-decoded here.
#
#   bash tests/kmscli/run.sh                    # the `aws` on PATH
#   AWS_CLI=/usr/bin/aws bash tests/kmscli/run.sh  # another CLI
#
# Prints "ok - ..." / "FAIL - ..." per check, then "N passed, N failed";
# exits non-zero on any failure. Never skips: no CLI is a failure.
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
AWS_BIN=${AWS_CLI:-aws}
PASSED=0
FAILED=0
ok() { PASSED=$((PASSED + 1)); echo "ok - $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $*"; }
finish() {
	echo "$PASSED passed, $FAILED failed"
	[ "$FAILED" -eq 0 ]
	exit $?
}

if ! command -v "$AWS_BIN" >/dev/null 2>&1; then
	fail "no AWS CLI: '$AWS_BIN' is not on PATH (install awscli: pip install awscli, or apt-get install awscli)"
	finish
fi
AWS_VERSION=$(timeout 60 "$AWS_BIN" --version 2>&1 | head -n 1)
echo "# using $(command -v "$AWS_BIN"): $AWS_VERSION"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kmscli.XXXXXX")
EMU_PID=""
stop_emulator() {
	if [ -n "$EMU_PID" ]; then
		kill -TERM "$EMU_PID" 2>/dev/null
		for _ in $(seq 50); do
			kill -0 "$EMU_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$EMU_PID" 2>/dev/null
		wait "$EMU_PID" 2>/dev/null
		EMU_PID=""
	fi
}
cleanup() {
	stop_emulator
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$ROOT/build"
if ! (cd "$ROOT" && timeout 600 go build -o build/kms-emulator ./cmd/kms-emulator) >"$WORK/build.log" 2>&1; then
	fail "go build ./cmd/kms-emulator: $(tail -n 5 "$WORK/build.log")"
	finish
fi
ok "built build/kms-emulator"

AKID=AKIDKMSCLITEST000001
SECRET='kmscli/test+secret=key/only/for/loopback'
REGION=us-east-1
ACCOUNT=111122223333
SEED=00112233445566778899aabbccddeeff
MFA_SERIAL=arn:aws:iam::111122223333:mfa/kmscli
MFA_CODE=424242
PORT_FILE="$WORK/port"

start_emulator() {
	rm -f "$PORT_FILE"
	"$ROOT/build/kms-emulator" -listen 127.0.0.1:0 -port-file "$PORT_FILE" \
		-region "$REGION" -account "$ACCOUNT" -access-key-id "$AKID" -secret-access-key "$SECRET" \
		-seed "$SEED" -key cli-fixed-key=alias/fixed -mfa-device "$MFA_SERIAL=$MFA_CODE" -log "$WORK/emulator.log" -max-lifetime 15m \
		2>>"$WORK/emulator.err" &
	EMU_PID=$!
	for _ in $(seq 100); do
		[ -s "$PORT_FILE" ] && break
		kill -0 "$EMU_PID" 2>/dev/null || break
		sleep 0.1
	done
	if [ ! -s "$PORT_FILE" ]; then
		fail "emulator did not write its port file: $(tail -n 5 "$WORK/emulator.err")"
		finish
	fi
	ENDPOINT="http://$(head -n 1 "$PORT_FILE")"
}
start_emulator
ok "emulator listening at $ENDPOINT"

# A clean environment: nothing from the user's AWS setup, no proxy for loopback.
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_REGION AWS_ENDPOINT_URL \
	AWS_ENDPOINT_URL_KMS AWS_CA_BUNDLE AWS_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE AWS_CONTAINER_CREDENTIALS_FULL_URI \
	AWS_CONTAINER_CREDENTIALS_RELATIVE_URI HTTP_PROXY HTTPS_PROXY http_proxy https_proxy ALL_PROXY all_proxy
export AWS_ACCESS_KEY_ID=$AKID AWS_SECRET_ACCESS_KEY=$SECRET AWS_DEFAULT_REGION=$REGION
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
export AWS_PAGER="" AWS_CLI_AUTO_PROMPT=off NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

# REQUESTS counts the calls made to the emulator (a CLI call that is
# retried makes more requests; each one is a line of its log).
REQUESTS=0
# kms ARGS...: one bounded CLI call; stdout to $WORK/out, stderr to $WORK/err.
kms() {
	REQUESTS=$((REQUESTS + 1))
	timeout 60 "$AWS_BIN" --endpoint-url "$ENDPOINT" kms "$@" >"$WORK/out" 2>"$WORK/err"
}
out() { tr -d '\r' <"$WORK/out" | sed -e 's/[[:space:]]*$//'; }
why() { tr '\n' ' ' <"$WORK/err" | cut -c1-300; }
b64d() { base64 -d 2>/dev/null; }
# control PATH BODY: an unsigned request to the emulator's control endpoint.
control() {
	REQUESTS=$((REQUESTS + 1))
	timeout 10 bash -c 'exec 3<>"/dev/tcp/${0%:*}/${0##*:}" || exit 1
		printf "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" "$1" "$0" "${#2}" "$2" >&3
		IFS= read -r status <&3; case "$status" in "HTTP/1.1 2"*) exit 0;; *) exit 1;; esac' \
		"${ENDPOINT#http://}" "$1" "$2"
}
# expect_error EXCEPTION DESCRIPTION: the last call failed with EXCEPTION.
expect_error() {
	local rc=$1 code=$2 what=$3
	if [ "$rc" -ne 0 ] && grep -q "($code)" "$WORK/err"; then
		ok "$what fails with $code"
	else
		fail "$what: want $code and a non-zero exit, got exit $rc: $(why)"
	fi
}

# 1. create-key, describe-key
if kms create-key --description "kmscli key 1" --query KeyMetadata.Arn --output text; then
	ARN1=$(out)
	KEY1=${ARN1##*/}
	case "$ARN1" in
	"arn:aws:kms:$REGION:$ACCOUNT:key/"?*) ok "create-key gives $ARN1" ;;
	*) fail "create-key ARN '$ARN1'" ;;
	esac
else
	fail "create-key: $(why)"
	finish
fi
if kms describe-key --key-id "$KEY1" --query '[KeyMetadata.KeyState,KeyMetadata.Arn,KeyMetadata.KeySpec]' --output text &&
	[ "$(out)" = "$(printf 'Enabled\t%s\tSYMMETRIC_DEFAULT' "$ARN1")" ]; then
	ok "describe-key: Enabled, same ARN"
else
	fail "describe-key: $(out) $(why)"
fi

# 2. create-alias, list-aliases, list-keys
if kms create-alias --alias-name alias/kmscli --target-key-id "$KEY1"; then
	ok "create-alias alias/kmscli"
else
	fail "create-alias: $(why)"
fi
if kms list-aliases --query "Aliases[?AliasName=='alias/kmscli'].[TargetKeyId,AliasArn]" --output text &&
	[ "$(out)" = "$(printf '%s\tarn:aws:kms:%s:%s:alias/kmscli' "$KEY1" "$REGION" "$ACCOUNT")" ]; then
	ok "list-aliases shows alias/kmscli -> $KEY1"
else
	fail "list-aliases: '$(out)' $(why)"
fi
if kms list-keys --query 'Keys[].KeyId' --output text && grep -q "$KEY1" <(out) && grep -q cli-fixed-key <(out); then
	ok "list-keys shows both keys"
else
	fail "list-keys: '$(out)' $(why)"
fi

# 3. encrypt / decrypt a binary plaintext through an alias
printf 'kmscli plaintext \000\001\002\377 with binary bytes\n' >"$WORK/pt"
if kms encrypt --key-id alias/kmscli --plaintext "fileb://$WORK/pt" --query CiphertextBlob --output text &&
	out | b64d >"$WORK/ct" && [ -s "$WORK/ct" ]; then
	if grep -q "kmscli plaintext" "$WORK/ct"; then
		fail "encrypt: the blob holds the plaintext"
	else
		ok "encrypt under alias/kmscli"
	fi
else
	fail "encrypt: $(why)"
fi
if kms decrypt --ciphertext-blob "fileb://$WORK/ct" --query '[KeyId,Plaintext]' --output text &&
	[ "$(out | cut -f1)" = "$ARN1" ] && out | cut -f2 | b64d >"$WORK/pt2" && cmp -s "$WORK/pt" "$WORK/pt2"; then
	ok "decrypt gives the plaintext back, KeyId is the key ARN"
else
	fail "decrypt: '$(out)' $(why)"
fi

# 4. encryption context must match
if kms encrypt --key-id "$ARN1" --plaintext "fileb://$WORK/pt" --encryption-context purpose=kmscli,db=test \
	--query CiphertextBlob --output text && out | b64d >"$WORK/ct-ctx"; then
	kms decrypt --ciphertext-blob "fileb://$WORK/ct-ctx" --query Plaintext --output text
	expect_error $? InvalidCiphertextException "decrypt without the encryption context"
	if kms decrypt --ciphertext-blob "fileb://$WORK/ct-ctx" --encryption-context db=test,purpose=kmscli \
		--query Plaintext --output text && out | b64d | cmp -s - "$WORK/pt"; then
		ok "decrypt with the encryption context"
	else
		fail "decrypt with the encryption context: $(why)"
	fi
else
	fail "encrypt with an encryption context: $(why)"
fi

# 5. data keys
if kms generate-data-key-without-plaintext --key-id "$KEY1" --key-spec AES_256 --query CiphertextBlob --output text &&
	out | b64d >"$WORK/dk" && [ -s "$WORK/dk" ]; then
	if kms decrypt --ciphertext-blob "fileb://$WORK/dk" --query Plaintext --output text &&
		[ "$(out | b64d | wc -c)" -eq 32 ]; then
		ok "generate-data-key-without-plaintext AES_256 decrypts to 32 bytes"
	else
		fail "decrypt of the data key: '$(out)' $(why)"
	fi
else
	fail "generate-data-key-without-plaintext: $(why)"
fi
if kms generate-data-key --key-id alias/kmscli --key-spec AES_128 --query '[CiphertextBlob,Plaintext,KeyId]' --output text; then
	out | cut -f1 | b64d >"$WORK/dk2"
	out | cut -f2 | b64d >"$WORK/dk2-plain"
	dk_arn=$(out | cut -f3)
	if [ "$(wc -c <"$WORK/dk2-plain")" -eq 16 ] && [ "$dk_arn" = "$ARN1" ] &&
		kms decrypt --ciphertext-blob "fileb://$WORK/dk2" --query Plaintext --output text &&
		out | b64d | cmp -s - "$WORK/dk2-plain"; then
		ok "generate-data-key AES_128: 16-byte plaintext that its blob decrypts to"
	else
		fail "generate-data-key: '$(out)' $(why)"
	fi
else
	fail "generate-data-key: $(why)"
fi

# 6. re-encrypt to a second key, then decrypt
if kms create-key --query KeyMetadata.Arn --output text; then
	ARN2=$(out)
	if kms re-encrypt --ciphertext-blob "fileb://$WORK/ct" --destination-key-id "$ARN2" \
		--query '[CiphertextBlob,SourceKeyId,KeyId]' --output text &&
		[ "$(out | cut -f2)" = "$ARN1" ] && [ "$(out | cut -f3)" = "$ARN2" ]; then
		out | cut -f1 | b64d >"$WORK/ct2"
		if kms decrypt --ciphertext-blob "fileb://$WORK/ct2" --query '[KeyId,Plaintext]' --output text &&
			[ "$(out | cut -f1)" = "$ARN2" ] && out | cut -f2 | b64d | cmp -s - "$WORK/pt"; then
			ok "re-encrypt to a second key, decrypt under it"
		else
			fail "decrypt after re-encrypt: '$(out)' $(why)"
		fi
		kms decrypt --ciphertext-blob "fileb://$WORK/ct2" --key-id "$ARN1"
		expect_error $? IncorrectKeyException "decrypt naming the wrong key"
	else
		fail "re-encrypt: '$(out)' $(why)"
	fi
else
	fail "create-key (second): $(why)"
fi

# 7. disable-key / enable-key
if kms disable-key --key-id "$KEY1"; then
	kms decrypt --ciphertext-blob "fileb://$WORK/ct"
	expect_error $? DisabledException "decrypt under a disabled key"
	kms generate-data-key-without-plaintext --key-id alias/kmscli --key-spec AES_256
	expect_error $? DisabledException "generate-data-key-without-plaintext under a disabled key"
else
	fail "disable-key: $(why)"
fi
if kms enable-key --key-id "$KEY1" && kms decrypt --ciphertext-blob "fileb://$WORK/ct" --query Plaintext --output text &&
	out | b64d | cmp -s - "$WORK/pt"; then
	ok "enable-key, then decrypt works again"
else
	fail "enable-key then decrypt: $(why)"
fi

# 8. signatures and credential scope
AWS_SECRET_ACCESS_KEY=not-the-secret kms describe-key --key-id "$KEY1"
expect_error $? InvalidSignatureException "a wrong secret key"
AWS_ACCESS_KEY_ID=AKIDUNKNOWNKEY000000 kms describe-key --key-id "$KEY1"
expect_error $? UnrecognizedClientException "an unknown access key id"
AWS_DEFAULT_REGION=eu-west-1 kms describe-key --key-id "$KEY1"
rc=$?
expect_error $rc InvalidSignatureException "a wrong region"
if [ $rc -ne 0 ] && ! grep -q "not 'eu-west-1'" "$WORK/err"; then
	fail "wrong region message does not name the region: $(why)"
fi

# 9. the CLI's own retryer gets through two throttles
if control /_emulator/faults "fail=Decrypt:ThrottlingException:2"; then
	if kms decrypt --ciphertext-blob "fileb://$WORK/ct" --query Plaintext --output text && out | b64d | cmp -s - "$WORK/pt"; then
		ok "decrypt through two injected ThrottlingExceptions (CLI retries)"
	else
		fail "decrypt with two throttles: $(why)"
	fi
	control /_emulator/faults "" || fail "clearing faults"
else
	fail "POST /_emulator/faults"
fi

# 10. a restart with the same seed and -key opens old blobs; SIGTERM stops cleanly
if kms encrypt --key-id alias/fixed --plaintext "fileb://$WORK/pt" --query CiphertextBlob --output text &&
	out | b64d >"$WORK/ct-fixed"; then
	kill -TERM "$EMU_PID"
	rc=0
	timeout 10 tail --pid="$EMU_PID" -f /dev/null || rc=1
	wait "$EMU_PID"
	st=$?
	EMU_PID=""
	if [ $rc -eq 0 ] && [ $st -eq 0 ]; then
		ok "emulator exits 0 on SIGTERM"
	else
		fail "emulator on SIGTERM: exit status $st"
	fi
	start_emulator
	if kms decrypt --ciphertext-blob "fileb://$WORK/ct-fixed" --query Plaintext --output text && out | b64d | cmp -s - "$WORK/pt"; then
		ok "restarted emulator (same -seed, same -key) decrypts an old blob"
	else
		fail "decrypt after restart: $(why)"
	fi
else
	fail "encrypt under alias/fixed: $(why)"
fi

# STS GetSessionToken, with and without MFA, and its temporary credentials
# on the KMS side (the AWS CLI signs for service sts, parses the XML).
stscall() {
	REQUESTS=$((REQUESTS + 1))
	timeout 60 "$AWS_BIN" --endpoint-url "$ENDPOINT" sts "$@" >"$WORK/out" 2>"$WORK/err"
}
if stscall get-session-token --duration-seconds 900 --serial-number "$MFA_SERIAL" --token-code "$MFA_CODE" \
	--query '[Credentials.AccessKeyId,Credentials.SecretAccessKey,Credentials.SessionToken,Credentials.Expiration]' --output text; then
	read -r S_AKID S_SECRET S_TOKEN S_EXP <<<"$(out)"
	exp_s=$(date -d "$S_EXP" +%s 2>/dev/null || echo 0)
	left=$((exp_s - $(date +%s)))
	if [[ "$S_AKID" == ASIA* ]] && [ ${#S_TOKEN} -ge 100 ] && [ "$left" -ge 880 ] && [ "$left" -le 900 ]; then
		ok "sts get-session-token with MFA: $S_AKID, a token, expiry in ${left} s"
	else
		fail "sts get-session-token: '$S_AKID', token ${#S_TOKEN} chars, expiry '$S_EXP' (${left} s)"
	fi
else
	fail "sts get-session-token with MFA: $(why)"
	S_AKID="" S_SECRET="" S_TOKEN=""
fi
# skms ARGS...: kms with the session's credentials.
skms() {
	REQUESTS=$((REQUESTS + 1))
	AWS_ACCESS_KEY_ID=$S_AKID AWS_SECRET_ACCESS_KEY=$S_SECRET AWS_SESSION_TOKEN=$S_TOKEN \
		timeout 60 "$AWS_BIN" --endpoint-url "$ENDPOINT" kms "$@" >"$WORK/out" 2>"$WORK/err"
}
if skms describe-key --key-id alias/fixed --query KeyMetadata.KeyState --output text && [ "$(out)" = Enabled ]; then
	ok "kms describe-key with the session credentials"
else
	fail "describe-key with session credentials: $(why)"
fi
stscall get-session-token --serial-number "$MFA_SERIAL" --token-code 000000
rc=$?
expect_error $rc AccessDenied "sts get-session-token with a wrong MFA code"
if grep -q "MultiFactorAuthentication failed with invalid MFA one time pass code" "$WORK/err"; then
	ok "wrong MFA code: AWS's message"
else
	fail "wrong MFA code message: $(why)"
fi
# (DurationSeconds out of 900..129600 is refused by the CLI itself before
# any request; internal/kmstest's Go tests check the emulator's answer.)
if control /_emulator/require-mfa on; then
	kms encrypt --key-id alias/fixed --plaintext fileb://"$WORK/pt" --query CiphertextBlob --output text
	rc=$?
	expect_error $rc AccessDeniedException "key policy requires MFA: encrypt with the static credentials"
	if skms encrypt --key-id alias/fixed --plaintext fileb://"$WORK/pt" --query CiphertextBlob --output text; then
		ok "key policy requires MFA: encrypt with the MFA session's credentials works"
	else
		fail "encrypt with MFA session under the MFA policy: $(why)"
	fi
	control /_emulator/require-mfa off || fail "require-mfa off"
else
	fail "control require-mfa on"
fi
if control /_emulator/sessions/expire ""; then
	skms describe-key --key-id alias/fixed
	rc=$?
	expect_error $rc ExpiredTokenException "kms describe-key with an expired session"
	if grep -q "The security token included in the request is expired" "$WORK/err"; then
		ok "expired session: AWS's message"
	else
		fail "expired session message: $(why)"
	fi
else
	fail "control sessions/expire"
fi

# The log is complete once the emulator has stopped (a request's line is
# written after its answer). It must hold a line for every request made,
# and none of them a secret or a signature.
stop_emulator
LOG_LINES=$(grep -c ' op=[^ ]* key=[^ ]* status=' "$WORK/emulator.log")
grep -q -F -e "$SECRET" -e "Signature=" ${S_TOKEN:+-e "$S_TOKEN"} ${S_SECRET:+-e "$S_SECRET"} "$WORK/emulator.log"
case "$?,$LOG_LINES" in
1,*)
	if [ "$LOG_LINES" -ge "$REQUESTS" ]; then
		ok "emulator log holds no secret or signature ($LOG_LINES request lines for $REQUESTS requests)"
	else
		fail "emulator log has $LOG_LINES request lines for $REQUESTS requests: $(ls -l "$WORK/emulator.log" 2>&1)"
	fi
	;;
0,*) fail "the emulator log holds a secret or signature" ;;
*) fail "emulator log $WORK/emulator.log missing or unreadable ($LOG_LINES request lines for $REQUESTS requests)" ;;
esac
finish
