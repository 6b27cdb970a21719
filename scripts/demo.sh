#!/usr/bin/env bash
# make demo: build the plugin, start a private MariaDB on 127.0.0.1 with it,
# create encrypted tables, rotate a key, restart, and show the key files
# and the plugin's log lines. Everything lives in build/demo and the server
# is stopped at the end (or on Ctrl-C).
#
# KMS: the release build (the real AWS SDK code path) talks to the
# project's loopback KMS emulator (cmd/kms-emulator) on 127.0.0.1, with
# credentials and region in a credentials file named by
# AWS_CREDENTIAL_PROFILES_FILE, as a DBA would set them up for AWS. No AWS
# account and no network beyond loopback are needed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO="$ROOT/build/demo"
SRV_DIR="$DEMO/server"
SRV_PLUGIN_DIR="$ROOT/build"
KMS_ALIAS=alias/mariadb-demo
. "$ROOT/scripts/server.sh"
. "$ROOT/scripts/kms.sh"

step() { printf '\n== %s\n' "$*"; }
sql()  { srv_sql --table "$@"; }
show_keys() { ls -l "$SRV_DIR/data" | awk 'NR == 1 || /aws-kms-key/'; }

start_server() {
  srv_start --plugin-load-add=aws_key_management \
    --aws-key-management-master-key-id="$KMS_ALIAS" \
    --aws-key-management-endpoint-url="http://$KMS_ADDR" \
    --innodb-encrypt-tables=ON --innodb-encrypt-log=ON --encrypt-tmp-files=ON \
    --log-bin=binlog --encrypt-binlog=ON --aria-encrypt-tables=ON \
    --innodb-encryption-threads=1 --innodb-encryption-rotate-key-age=1 \
    --innodb-tablespaces-encryption
}

trap 'srv_stop; kms_stop' EXIT
rm -rf "$DEMO"
step "Loopback KMS emulator with one master key, $KMS_ALIAS"
kms_start "$DEMO/kms"
echo "KMS at http://$KMS_ADDR; credentials file $KMS_DIR/kms-credentials:"
sed 's/\(secret_access_key = \).*/\1<hidden>/' "$KMS_DIR/kms-credentials" | sed 's/^/  /'
echo "The AWS CLI sees the same key:"
kms_aws kms describe-key --key-id "$KMS_ALIAS" --query 'KeyMetadata.[Arn,KeyState]' --output text | sed 's/^/  /'
mapfile -t SRV_ENV < <(kms_env)

SRV_PORT=$(srv_free_port 23306)
step "Fresh datadir in $SRV_DIR (server on 127.0.0.1:$SRV_PORT)"
srv_install

step "Start mariadbd with plugin_load_add=aws_key_management ($SRV_PLUGIN_DIR)"
start_server
sql -e "SELECT PLUGIN_NAME, PLUGIN_STATUS, PLUGIN_MATURITY FROM information_schema.PLUGINS WHERE PLUGIN_NAME='aws_key_management'"
sql -e "SHOW GLOBAL VARIABLES LIKE 'aws_key_management%'"

step "Encrypted tables: InnoDB with the default key 1 and with key 7, and Aria"
sql <<'SQL'
CREATE DATABASE shop;
CREATE TABLE shop.customers (id INT PRIMARY KEY, name VARCHAR(60), card VARCHAR(20)) ENGINE=InnoDB;
CREATE TABLE shop.payments (id INT PRIMARY KEY, amount DECIMAL(10,2), note VARCHAR(80))
  ENGINE=InnoDB ENCRYPTED=YES ENCRYPTION_KEY_ID=7;
CREATE TABLE shop.audit (at DATETIME, what VARCHAR(80)) ENGINE=Aria TRANSACTIONAL=0;
INSERT INTO shop.customers VALUES (1, 'Ada Lovelace', 'CARD-4111-1111'), (2, 'Alan Turing', 'CARD-5500-0000');
INSERT INTO shop.payments VALUES (1, 12.50, 'SECRET-PAYMENT-NOTE'), (2, 99.99, 'SECRET-PAYMENT-NOTE');
INSERT INTO shop.audit VALUES (NOW(), 'SECRET-AUDIT-LINE');
FLUSH TABLES shop.customers, shop.payments FOR EXPORT;
UNLOCK TABLES;
FLUSH TABLES shop.audit;
SQL
sql -e "SELECT NAME, ENCRYPTION_SCHEME, CURRENT_KEY_ID, CURRENT_KEY_VERSION FROM information_schema.INNODB_TABLESPACES_ENCRYPTION WHERE NAME LIKE 'shop/%' ORDER BY NAME"

step "Key files: one per key version, each a wrapped (sealed) data key, mode 0400"
show_keys
f="$SRV_DIR/data/aws-kms-key.7.1"
printf '%s: %s bytes of KMS CiphertextBlob; first bytes: ' "$(basename "$f")" "$(stat -c %s "$f")"
head -c 24 "$f" | od -An -tx1 | tr -d '\n'
echo
echo "Only KMS can unwrap it; the AWS CLI, asking the same KMS, gets a key of this many bytes:"
kms_aws kms decrypt --ciphertext-blob "fileb://$f" --query Plaintext --output text | base64 -d | wc -c | sed 's/^/  /'

step "Nothing readable on disk (tablespaces, redo log, binlog, Aria data)"
# MariaDB does not encrypt the Aria transaction log (aria_log.*): the
# demo's Aria table is TRANSACTIONAL=0 so none of its rows go there.
for pat in CARD-4111 SECRET-PAYMENT-NOTE SECRET-AUDIT-LINE; do
  hits=$({ grep -rlaF "$pat" "$SRV_DIR/data" 2>/dev/null || true; } | sed "s|$SRV_DIR/data/||" | tr '\n' ' ')
  printf '  %-20s found in: %s\n' "$pat" "${hits:-no file}"
done

step "Rotate key 7: SET GLOBAL aws_key_management_rotate_key = 7"
sql -e "SET GLOBAL aws_key_management_rotate_key = 7; SHOW WARNINGS"
show_keys
echo "waiting (at most 30 s) for InnoDB to re-encrypt shop/payments with version 2 ..."
for _ in $(seq 1 60); do
  v=$(srv_sql -N -e "SELECT CURRENT_KEY_VERSION FROM information_schema.INNODB_TABLESPACES_ENCRYPTION WHERE NAME='shop/payments'")
  [ "$v" = 2 ] && break
  sleep 0.5
done
sql -e "SELECT NAME, CURRENT_KEY_ID, CURRENT_KEY_VERSION FROM information_schema.INNODB_TABLESPACES_ENCRYPTION WHERE NAME='shop/payments'"

step "Rotate every key: SET GLOBAL aws_key_management_rotate_key = -1"
sql -e "SET GLOBAL aws_key_management_rotate_key = -1"
show_keys

step "Restart: keys are unwrapped from their files, data reads back"
srv_stop
start_server
sql -e "SELECT * FROM shop.customers; SELECT * FROM shop.payments; SELECT what FROM shop.audit"

step "The plugin's lines in the error log ($SRV_DIR/error.log)"
grep "AWS KMS plugin" "$SRV_DIR/error.log" | sed 's/^/  /'

step "What the KMS saw (one line per request, from $KMS_DIR/emulator.log)"
tail -n 8 "$KMS_DIR/emulator.log" | sed 's/^/  /'

step "Stop"
srv_stop
kms_stop
echo "Done. Datadir, key files and logs are kept in $DEMO."
