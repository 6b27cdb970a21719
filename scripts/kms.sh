# Sourced by demo.sh and test.sh: the loopback KMS emulator (cmd/kms-emulator).
#   kms_start DIR   builds and starts it on 127.0.0.1 with fresh credentials
#                   and one master key; writes DIR/kms-credentials (with the
#                   region, as a DBA would write ~/.aws/credentials) and sets
#                   KMS_ADDR KMS_PID KMS_KEY_ID KMS_ALIAS KMS_ACCESS_KEY
#                   KMS_SECRET KMS_REGION
#   kms_stop
#   kms_aws ARGS... runs the AWS CLI against it with those credentials
# The emulator also exits by itself after an hour (-max-lifetime).

KMS_REGION=${KMS_REGION:-eu-central-1}
KMS_ALIAS=${KMS_ALIAS:-alias/mariadb-test}
KMS_KEY_ID=${KMS_KEY_ID:-2c9d9c4e-6f3e-4b5c-9a8e-1f2d3c4b5a69}

kms_start() {
  local dir=$1 root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  rm -rf "$dir"
  mkdir -p "$dir"
  (cd "$root" && go build -o build/kms-emulator ./cmd/kms-emulator) || return 1
  KMS_DIR=$dir
  KMS_ACCESS_KEY=AKIAAKMTEST$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F)
  KMS_SECRET=$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')
  printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\nregion = %s\n' \
    "$KMS_ACCESS_KEY" "$KMS_SECRET" "$KMS_REGION" >"$dir/kms-credentials"
  chmod 600 "$dir/kms-credentials"
  "$root/build/kms-emulator" -listen 127.0.0.1:0 -port-file "$dir/addr" -region "$KMS_REGION" \
    -account 111122223333 -access-key-id "$KMS_ACCESS_KEY" -secret-access-key "$KMS_SECRET" \
    -key "$KMS_KEY_ID=$KMS_ALIAS" -log "$dir/emulator.log" -max-lifetime 1h &
  KMS_PID=$!
  local i
  for i in $(seq 1 100); do
    [ -s "$dir/addr" ] && break
    kill -0 "$KMS_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ ! -s "$dir/addr" ]; then
    echo "the KMS emulator did not start:"; cat "$dir/emulator.log"; KMS_PID=""; return 1
  fi
  KMS_ADDR=$(cat "$dir/addr")
}

kms_stop() {
  [ -n "${KMS_PID:-}" ] || return 0
  kill "$KMS_PID" 2>/dev/null
  wait "$KMS_PID" 2>/dev/null
  KMS_PID=""
}

# The environment a server (or the AWS CLI) gets: only the credentials
# file, nothing inherited from the caller's AWS settings.
kms_env() {
  printf '%s\n' -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE \
    -u AWS_REGION -u AWS_DEFAULT_REGION -u AWS_SHARED_CREDENTIALS_FILE \
    AWS_CONFIG_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true \
    AWS_CREDENTIAL_PROFILES_FILE="$KMS_DIR/kms-credentials"
}

kms_aws() {
  env AWS_SHARED_CREDENTIALS_FILE="$KMS_DIR/kms-credentials" AWS_CONFIG_FILE=/dev/null AWS_PAGER= \
    timeout 60 aws --endpoint-url "http://$KMS_ADDR" --region "$KMS_REGION" "$@"
}
