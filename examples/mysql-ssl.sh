#!/bin/sh
# MemSQL's "SSL Secure Connections" document, step by step, on a clink
# cluster, with the stock mysql client (docs/mysql.md, docs/admin.md). Run it
# from a build: examples/mysql-ssl.sh BUILD_DIR [WORKDIR]. It leaves nothing
# running; WORKDIR (default: a temporary one, removed) keeps the
# certificates, configs and logs when given.
#
#   1. the document's openssl recipe: a CA, one server certificate that every
#      node shares (CN memsql.ssl.test.server, no subjectAltName), and a client
#      certificate
#   2. each node's memsql.cnf as MySQL writes one: a [mysqld] group, bare keys,
#      quoted values, comments after values, ./certs/... paths relative to the
#      file. The cluster starts without SSL (require_secure_transport =
#      PLAINTEXT), as the document's cluster does; the ops port (HTTPS, port
#      9001 in the document's Ops) is on the document's server certificate
#   3. an administrator on every node, for clink-admin (memsql-ops)
#   4. start two leaves and the aggregator: links in plaintext
#   5. the document's memsql-ops steps, with clink-admin:
#        clink-admin list -q -r aggregator | xargs clink-admin update-config \
#            --key ssl_cert --value ./certs/server-cert.pem --key ssl_key ...
#        clink-admin update-config --all --key ssl_cert ... --key ssl_key ... \
#            --key ssl_ca --value ./certs/ca-cert.pem
#        clink-admin reload --all        (the document's memsql-restart --all:
#                                         every key here applies live)
#      then the transport moves to TLS, live: ACCEPT_BOTH, PREFER_TLS, ON
#   6. with the mysql client, as the administrator, the document's
#        GRANT ALL ON *.* TO 'user'@'%' REQUIRE SSL;
#      which makes 'user' (MySQL 5.x's GRANT; grant_creates_user = OFF keeps
#      MySQL 8's 1410), with no password: it then logs in only with a client
#      certificate (--ssl-cert/--ssl-key); and a password account:
#        CREATE USER 'app'@'%' IDENTIFIED BY '...';
#        GRANT USAGE ON *.* TO 'app'@'%' REQUIRE SSL;
#      The document's client flag, --ssl-mode=REQUIRED, is MySQL's client's;
#      the MariaDB client refuses it, and is shown its own spelling beside it.
#   7. connect without SSL: the document's "Access denied" is what a node with
#      require_secure_transport = OFF answers (shown on a second node); with
#      clink's default (ON) every plaintext login gets error 3159 first. With
#      SSL: the client's status line shows the cipher
#   8. the aggregator's links to its leaves, with clink-status --pools: TLS
set -eu
bin=$(cd "${1:?usage: mysql-ssl.sh BUILD_DIR [WORKDIR]}" && pwd)
mysql=$(command -v mariadb || command -v mysql) || { echo "mysql-ssl: install mariadb-client"; exit 77; }
command -v openssl >/dev/null || { echo "mysql-ssl: install openssl"; exit 77; }
if [ $# -ge 2 ]; then
  dir=$2
  mkdir -p "$dir"
  keep=1
else
  dir=$(mktemp -d "${TMPDIR:-/tmp}/clink-mysql-ssl-XXXXXX")
  keep=0
fi
pids=""
cleanup() {
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  [ $keep = 1 ] || rm -rf "$dir"
}
trap cleanup EXIT
say() { printf '\n== %s\n' "$*"; }
T=$bin/tools
cd "$dir"

say "1. the document's certificates, made with openssl"
mkdir -p certs
(
  cd certs
  SUBJ="/C=US/ST=CA/L=San Francisco/O=MemSQL/CN="
  set -x
  openssl genrsa 2048 >ca-key.pem 2>/dev/null
  openssl req -new -x509 -nodes -days 3600 -key ca-key.pem -out ca-cert.pem -subj "${SUBJ}memsql.ssl.test.ca"
  openssl req -newkey rsa:2048 -days 3600 -nodes -keyout server-key.pem -out server-req.pem \
    -subj "${SUBJ}memsql.ssl.test.server" 2>/dev/null
  openssl rsa -in server-key.pem -out server-key.pem 2>/dev/null
  openssl x509 -req -in server-req.pem -days 3600 -CA ca-cert.pem -CAkey ca-key.pem -set_serial 01 \
    -out server-cert.pem 2>/dev/null
  openssl req -newkey rsa:2048 -days 3600 -nodes -keyout client-key.pem -out client-req.pem \
    -subj "${SUBJ}memsql.ssl.test.client" 2>/dev/null
  openssl rsa -in client-key.pem -out client-key.pem 2>/dev/null
  openssl x509 -req -in client-req.pem -days 3600 -CA ca-cert.pem -CAkey ca-key.pem -set_serial 02 \
    -out client-cert.pem 2>/dev/null
  openssl verify -CAfile ca-cert.pem server-cert.pem client-cert.pem
  set +x
  chmod 600 ca-key.pem server-key.pem client-key.pem
)

say "2. memsql.cnf, as MySQL writes one; the cluster starts without SSL"
# Every node's own folder: its memsql.cnf and accounts; ./certs/... is relative to the file.
for n in leaf1 leaf2 agg1; do
  mkdir -p "$n"
  ln -sfn ../certs "$n/certs"
  cat >"$n/memsql.cnf" <<EOF
# $n: a my.cnf that mysqld, the mysql client and clink all read
[client]
port = 3306

[mysqld]
skip-name-resolve
max_allowed_packet = 64M

[server]
skip-name-resolve                      # a MySQL key clink passes over, with a warning
name = "$n"
port = 0                               # any free port (this example writes it to a file)
workers = 1
require_secure_transport = PLAINTEXT   # the document's cluster, before SSL
accounts_file = accounts.cnf
ops_port = 0
ops_ssl_cert = ./certs/server-cert.pem # the ops endpoint (HTTPS) on the document's certificate
ops_ssl_key = ./certs/server-key.pem
EOF
done

say "3. an administrator on every node (clink-admin logs in as it)"
for n in leaf1 leaf2 agg1; do
  rm -f "$n/accounts.cnf"
  printf 'admin-password\n' |
    "$T/clink-accounts" --file "$n/accounts.cnf" add admin --require SSL --password-stdin --grant ALL >/dev/null
done
# The aggregator logs in to its leaves as agg1: no password; in plaintext (only from 127.0.0.1), then, once the
# cluster has certificates, with the certificate every node shares (the document's: whoever has it is agg1).
for n in leaf1 leaf2; do
  "$T/clink-accounts" --file "$n/accounts.cnf" add agg1@127.0.0.1 --plaintext-no-password ON >/dev/null
done
"$T/clink-accounts" --file agg1/accounts.cnf add agg1 --require "SUBJECT '/C=US/ST=CA/L=San Francisco/O=MemSQL/CN=memsql.ssl.test.server'"

say "4. two leaves and the aggregator, in plaintext"
start() { # name: starts clink-node in its folder, sets $port and $ops
  rm -f "$1/port" "$1/ops.port"
  "$T/clink-node" --config "$1/memsql.cnf" --port-file "$1/port" --ops-port-file "$1/ops.port" 2>"$1/node.log" &
  pids="$pids $!"
  i=0
  while { [ ! -s "$1/port" ] || [ ! -s "$1/ops.port" ]; } && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
  port=$(cat "$1/port")
  ops=$(cat "$1/ops.port")
}
start leaf1
p1=$port
start leaf2
p2=$port
cat >>agg1/memsql.cnf <<EOF

# The leaves, as ADD LEAF records them. The document's certificate names no host: say which name to expect.
[leaf leaf1]
host = 127.0.0.1
port = $p1
user = agg1
ssl_server_name = memsql.ssl.test.server

[leaf leaf2]
host = 127.0.0.1
port = $p2
user = agg1
ssl_server_name = memsql.ssl.test.server
EOF
start agg1
pa=$port
echo "leaves on ports $p1 and $p2, aggregator on $pa (ops port $ops)"
grep "keys clink does not use" agg1/node.log || true

say "5. the document's memsql-ops steps, with clink-admin"
# clink-admin reaches every node's ops port over HTTPS and verifies it: the CA, and the name the shared
# certificate carries. It logs in as admin (a password here: the document's nodes have no CA yet to check a client
# certificate with; docs/admin.md shows the certificate login).
export CLINK_ADMIN_HOST="127.0.0.1:$ops" CLINK_ADMIN_CA=certs/ca-cert.pem CLINK_ADMIN_USER=admin
export CLINK_ADMIN_PASSWORD=admin-password CLINK_ADMIN_SSL_SERVER_NAME=memsql.ssl.test.server
i=0
until [ "$("$T/clink-admin" list 2>/dev/null | grep -c ' yes ')" = 3 ] || [ $i -ge 100 ]; do sleep 0.1; i=$((i + 1)); done
set -x
"$T/clink-admin" list
"$T/clink-admin" list -q -r aggregator |
  xargs "$T/clink-admin" update-config --key ssl_cert --value ./certs/server-cert.pem \
    --key ssl_key --value ./certs/server-key.pem --key ssl_ca --value ./certs/ca-cert.pem
"$T/clink-admin" update-config --all --key ssl_cert --value ./certs/server-cert.pem \
  --key ssl_key --value ./certs/server-key.pem --key ssl_ca --value ./certs/ca-cert.pem | tee update.txt
set +x
# The aggregator had them already (unchanged); each leaf applied them live.
[ "$(grep -c ': applied in \|: unchanged' update.txt)" = 3 ]
grep -n '^ssl_' leaf1/memsql.cnf
ls leaf1/memsql.cnf.bak >/dev/null
# What clink says of the document's certificates, once, on each node (docs/config.md, "Certificates you bring"):
grep -m 4 "certificate" leaf1/node.log || true
# The document restarts every node here. Each of these keys applies live: a reload is enough.
set -x
"$T/clink-admin" reload --all
set +x
# Then plaintext to TLS without a restart (docs/config.md, "Moving a cluster from plaintext to TLS"): each step
# on every node before the next, so that no link is refused on the way.
for state in ACCEPT_BOTH PREFER_TLS ON; do
  "$T/clink-admin" update-config --all --key require_secure_transport --value $state | tee update.txt
  [ "$(grep -c ': applied in ' update.txt)" = 3 ]
  sleep 0.5
done

say "6. GRANT ... REQUIRE SSL, with the stock client, as the administrator"
# The document connects with MySQL's client: mysql --ssl-mode=REQUIRED. MariaDB's client (Debian's mysql) has no
# --ssl-mode and stops at it; its spelling is --ssl (REQUIRED: encrypted, the server not checked) or --ssl-ca=FILE
# (the chain checked). The document's certificate names no host, so the client cannot check whom it talks to
# (MySQL's VERIFY_IDENTITY, MariaDB's --ssl-verify-server-cert): per-node certificates (clink-certs node --ip ...) can.
if "$mysql" --help 2>/dev/null | grep -q -- '--ssl-mode'; then
  tls="--ssl-mode=VERIFY_CA --ssl-ca=certs/ca-cert.pem"
  echo "MySQL's client: the document's --ssl-mode=REQUIRED works; VERIFY_CA also checks the chain"
else
  tls="--ssl-ca=certs/ca-cert.pem"
  echo "MariaDB's client: the document's --ssl-mode=REQUIRED is refused:"
  "$mysql" -h 127.0.0.1 -P "$pa" -u admin --ssl-mode=REQUIRED -e "select 1" 2>&1 || true
  echo "its spelling: --ssl (as REQUIRED: the server not checked), or $tls (as VERIFY_CA)"
fi
set -x
# shellcheck disable=SC2086 # $tls is several flags
"$mysql" -h 127.0.0.1 -P "$pa" -u admin -padmin-password $tls -vvv -e "grant all on *.* to 'user'@'%' REQUIRE SSL;"
set +x
grep -A3 '^\[user@%\]' agg1/accounts.cnf
# The GRANT made 'user' without a password (MySQL 5.x's GRANT would let anyone in as it). clink takes a login with no
# password only with a client certificate that verifies against ssl_ca: 'user' presents the document's client one.
set -x
# shellcheck disable=SC2086
"$mysql" -h 127.0.0.1 -P "$pa" -u user $tls --ssl-cert=certs/client-cert.pem --ssl-key=certs/client-key.pem \
  -e "select current_user(); SHOW GRANTS;"
set +x
echo "'user' without its certificate:"
# shellcheck disable=SC2086
if "$mysql" -h 127.0.0.1 -P "$pa" -u user $tls -e "select 1"; then
  echo "mysql-ssl: 'user' logged in without a client certificate" >&2
  exit 1
fi
set -x
# shellcheck disable=SC2086
"$mysql" -h 127.0.0.1 -P "$pa" -u admin -padmin-password $tls \
  -e "CREATE USER 'app'@'%' IDENTIFIED BY 'app-password'; GRANT USAGE ON *.* TO 'app'@'%' REQUIRE SSL;"
set +x
grep -A2 '^\[app@%\]' agg1/accounts.cnf

say "7. without SSL, then with it"
# The document shows "Access denied" here. clink's default, require_secure_transport = ON, refuses every plaintext
# login before it looks at the account: error 3159. The default stays; a node with it OFF answers as the document.
set -x
if "$mysql" -h 127.0.0.1 -P "$pa" -u user --skip-ssl -e "select 1" 2>plain.txt; then
  echo "mysql-ssl: a plaintext login to a REQUIRE SSL account was accepted" >&2
  exit 1
fi
set +x
cat plain.txt
grep -q "^ERROR 3159 (HY000): Connections using insecure transport are prohibited" plain.txt
mkdir -p plain1
ln -sfn ../certs plain1/certs
cp agg1/accounts.cnf plain1/
sed -e 's/^require_secure_transport = .*/require_secure_transport = OFF/' -e '/^# The leaves/,$d' \
  agg1/memsql.cnf >plain1/memsql.cnf
start plain1
echo "a second node with require_secure_transport = OFF, port $port:"
set -x
if "$mysql" -h 127.0.0.1 -P "$port" -u user --skip-ssl -e "select 1" 2>plain.txt; then
  echo "mysql-ssl: a plaintext login to a REQUIRE SSL account was accepted" >&2
  exit 1
fi
set +x
cat plain.txt
grep -q "^ERROR 1045 (28000): Access denied for user 'user'@'127.0.0.1'" plain.txt
kill "${pids##* }"
set -x
if "$mysql" -h 127.0.0.1 -P "$pa" -u app -papp-password --skip-ssl -e "select 1"; then
  echo "mysql-ssl: a plaintext login to a REQUIRE SSL account was accepted" >&2
  exit 1
fi
# shellcheck disable=SC2086
"$mysql" -h 127.0.0.1 -P "$pa" -u app -papp-password $tls -e status | tee status.txt
# shellcheck disable=SC2086
"$mysql" -h 127.0.0.1 -P "$pa" -u app -papp-password $tls -e "SHOW STATUS LIKE 'Ssl%'"
set +x
grep -q "Cipher in use is TLS_" status.txt

say "8. the aggregator's links to its leaves, now in TLS"
i=0
until "$T/clink-status" --host 127.0.0.1 --port "$pa" --ssl-server-name memsql.ssl.test.server \
  --ssl-cert certs/server-cert.pem --ssl-key certs/server-key.pem --ssl-ca certs/ca-cert.pem --user agg1 \
  --pools >pools.txt 2>&1 &&
  [ "$(grep -c '^Pool leaf[12]: leaf .*, up' pools.txt)" = 2 ] || [ $i -ge 100 ]; do
  sleep 0.05
  i=$((i + 1))
done
grep "^Pool\|Cipher\|TLS version" pools.txt
[ "$(grep -c '^Pool leaf[12]: leaf .*, up' pools.txt)" = 2 ]
"$T/clink-admin" list | tee list.txt
[ "$(grep -c '^leaf[12] .* yes *TLS' list.txt)" = 2 ]
echo
echo "mysql-ssl: done"
