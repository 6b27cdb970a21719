#!/usr/bin/env bash
# make demo: build the plugin, start a private MariaDB on 127.0.0.1 with it,
# create encrypted tables, rotate a key, restart, and show the key files
# and the plugin's log lines. Everything lives in build/demo and the server
# is stopped at the end (or on Ctrl-C).
#
# KMS: the mock build's in-process KMS (aws_key_management_mock=ON): no
# network and no AWS account needed. Key files are still sealed, never
# plaintext.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO="$ROOT/build/demo"
MASTER_KEY=${DEMO_MASTER_KEY:-alias/mariadb-demo}
SRV_DIR="$DEMO"
SRV_PLUGIN_DIR="$ROOT/build/mock"
. "$ROOT/scripts/server.sh"

step() { printf '\n== %s\n' "$*"; }
sql()  { srv_sql --table "$@"; }
show_keys() { ls -l "$DEMO/data" | awk 'NR == 1 || /aws-kms-key/'; }

start_server() {
  srv_start --plugin-load-add=aws_key_management \
    --aws-key-management-mock=ON \
    --aws-key-management-master-key-id="$MASTER_KEY" \
    --innodb-encrypt-tables=ON --innodb-encrypt-log=ON --encrypt-tmp-files=ON \
    --log-bin=binlog --encrypt-binlog=ON --aria-encrypt-tables=ON \
    --innodb-encryption-threads=1 --innodb-encryption-rotate-key-age=1 \
    --innodb-tablespaces-encryption
}

trap srv_stop EXIT
SRV_PORT=$(srv_free_port 23306)
step "Fresh datadir in $DEMO (server on 127.0.0.1:$SRV_PORT)"
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
f="$DEMO/data/aws-kms-key.7.1"
printf '%s: %s bytes; first bytes: ' "$(basename "$f")" "$(stat -c %s "$f")"
head -c 24 "$f" | od -An -tx1 | tr -d '\n'
echo

step "Nothing readable on disk (tablespaces, redo log, binlog, Aria data)"
# MariaDB does not encrypt the Aria transaction log (aria_log.*): the
# demo's Aria table is TRANSACTIONAL=0 so none of its rows go there.
for pat in CARD-4111 SECRET-PAYMENT-NOTE SECRET-AUDIT-LINE; do
  hits=$({ grep -rlaF "$pat" "$DEMO/data" 2>/dev/null || true; } | sed "s|$DEMO/data/||" | tr '\n' ' ')
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

step "The plugin's lines in the error log ($DEMO/error.log)"
grep "AWS KMS plugin" "$DEMO/error.log" | sed 's/^/  /'

step "Stop"
srv_stop
echo "Done. Datadir, key files and log are kept in $DEMO."
