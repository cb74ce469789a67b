#!/bin/sh
# MemSQL's SSL setup, step by step, on a clink cluster, with the stock mysql
# client (docs/mysql.md). Run it from a build: examples/mysql-ssl.sh BUILD_DIR
# [WORKDIR]. It leaves nothing running; WORKDIR (default: a temporary one,
# removed) keeps the certificates, configs and logs when given.
#
#   1. a CA, and a certificate and key for each node (clink-certs)
#   2. ssl_cert / ssl_key / ssl_ca in each node's memsql.cnf-style [server]
#      section (relative paths: next to the file); the aggregator names its
#      leaves in [leaf] sections and keeps verified TLS pools to them
#   3. the first administrative account on the aggregator (clink-accounts)
#   4. start two leaves and the aggregator
#   5. with the mysql client, as the administrator, the document's
#        GRANT ALL ON *.* TO 'user'@'%' REQUIRE SSL;
#      which makes 'user' (MySQL 5.x's GRANT; grant_creates_user = OFF keeps
#      MySQL 8's 1410), with no password: it then logs in only with a client
#      certificate (--ssl-cert/--ssl-key); and a password account:
#        CREATE USER 'app'@'%' IDENTIFIED BY '...';
#        GRANT USAGE ON *.* TO 'app'@'%' REQUIRE SSL;
#      The document's client flag, --ssl-mode=REQUIRED, is MySQL's client's;
#      the MariaDB client refuses it, and is shown its own spelling beside it.
#   6. connect without SSL: the document's "Access denied" is what a node with
#      require_secure_transport = OFF answers (shown on a second node); with
#      clink's default (ON) every plaintext login gets error 3159 first. With
#      --ssl-ca and --ssl-verify-server-cert: the status shows the cipher
#   7. the aggregator's links to its leaves, with clink-status --pools
set -eu
bin=$(cd "${1:?usage: mysql-ssl.sh BUILD_DIR [WORKDIR]}" && pwd)
mysql=$(command -v mariadb || command -v mysql) || { echo "mysql-ssl: install mariadb-client"; exit 77; }
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

say "1. a CA and a certificate per node"
"$T/clink-certs" ca --out . --force >/dev/null
for n in agg1 leaf1 leaf2; do
  "$T/clink-certs" node --ca . --out . --name $n --dns localhost --ip 127.0.0.1 --force >/dev/null
done
ls ./*.pem

say "2. ssl_cert, ssl_key and ssl_ca in each node's [server] section"
for n in leaf1 leaf2; do
  cat >$n.cnf <<EOF
[server]
ops_port = 0
port = 0
ssl_cert = $n.pem
ssl_key = $n-key.pem
ssl_ca = ca.pem
workers = 1
EOF
done
start() { # name: starts clink-node, sets $port
  rm -f "$1.port"
  "$T/clink-node" --config "$1.cnf" --port-file "$1.port" 2>"$1.log" &
  pids="$pids $!"
  i=0
  while [ ! -s "$1.port" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
  port=$(cat "$1.port")
}
start leaf1
p1=$port
start leaf2
p2=$port
cat >agg1.cnf <<EOF
[server]
ops_port = 0
port = 0
ssl_cert = agg1.pem
ssl_key = agg1-key.pem
ssl_ca = ca.pem
accounts_file = accounts.cnf
workers = 1

[leaf leaf1]
host = 127.0.0.1
port = $p1
ssl_server_name = localhost

[leaf leaf2]
host = 127.0.0.1
port = $p2
ssl_server_name = localhost
EOF
cat agg1.cnf

say "3. the first administrative account (its password from standard input)"
rm -f accounts.cnf
"$T/clink-accounts" --file accounts.cnf add admin@127.0.0.1 --require SSL --password-stdin --grant ALL <<EOF
admin-password
EOF
# clink-status logs in to the aggregator by certificate as this account.
"$T/clink-accounts" --file accounts.cnf add agg1 --require "SUBJECT '/CN=agg1'"

say "4. the aggregator starts; its pools to both leaves come up over verified TLS"
start agg1
pa=$port
echo "leaves on ports $p1 and $p2, aggregator on $pa"

say "5. GRANT ... REQUIRE SSL, with the stock client, as the administrator"
# The document connects with MySQL's client: mysql --ssl-mode=REQUIRED. MariaDB's client (Debian's mysql) has no
# --ssl-mode and stops at it; its spelling is --ssl (REQUIRED: encrypted, the server not checked) or, better and as
# used here, --ssl-ca=ca.pem --ssl-verify-server-cert (MySQL's --ssl-mode=VERIFY_IDENTITY --ssl-ca=ca.pem).
if "$mysql" --help 2>/dev/null | grep -q -- '--ssl-mode'; then
  tls="--ssl-mode=VERIFY_IDENTITY --ssl-ca=ca.pem"
  echo "MySQL's client: the document's --ssl-mode=REQUIRED works; VERIFY_IDENTITY also checks whom it talks to"
else
  tls="--ssl-ca=ca.pem --ssl-verify-server-cert"
  echo "MariaDB's client: the document's --ssl-mode=REQUIRED is refused:"
  "$mysql" -h 127.0.0.1 -P "$pa" -u admin --ssl-mode=REQUIRED -e "select 1" 2>&1 || true
  echo "its spelling: --ssl (as REQUIRED: the server not checked), or $tls (as VERIFY_IDENTITY)"
fi
set -x
# shellcheck disable=SC2086 # $tls is several flags
"$mysql" -h 127.0.0.1 -P "$pa" -u admin -padmin-password $tls -vvv -e "grant all on *.* to 'user'@'%' REQUIRE SSL;"
set +x
grep -A3 '^\[user@%\]' accounts.cnf
# The GRANT made 'user' without a password (MySQL 5.x's GRANT would let anyone in as it). clink takes a login with no
# password only with a client certificate that verifies against ssl_ca: 'user' presents one.
"$T/clink-certs" node --ca . --out . --name user --usage client --force >/dev/null
set -x
# shellcheck disable=SC2086
"$mysql" -h 127.0.0.1 -P "$pa" -u user $tls --ssl-cert=user.pem --ssl-key=user-key.pem \
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
grep -A2 '^\[app@%\]' accounts.cnf

say "6. without SSL, then with it"
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
sed -e 's/^accounts_file = .*/&\nrequire_secure_transport = OFF/' -e '/^\[leaf/,$d' agg1.cnf >plain1.cnf
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
"$mysql" -h 127.0.0.1 -P "$pa" -u app -papp-password --ssl-ca=ca.pem --ssl-verify-server-cert -e status |
  tee status.txt
"$mysql" -h 127.0.0.1 -P "$pa" -u app -papp-password --ssl-ca=ca.pem --ssl-verify-server-cert \
  -e "SHOW STATUS LIKE 'Ssl%'"
set +x
grep -q "Cipher in use is TLS_" status.txt

say "7. the aggregator's links to its leaves"
i=0
until "$T/clink-status" --host 127.0.0.1 --port "$pa" --ssl-server-name localhost --ssl-cert agg1.pem \
  --ssl-key agg1-key.pem --ssl-ca ca.pem --user agg1 --pools >pools.txt 2>&1 &&
  [ "$(grep -c 'up' pools.txt)" -ge 2 ] || [ $i -ge 100 ]; do
  sleep 0.05
  i=$((i + 1))
done
grep "^Pool\|Cipher\|TLS version" pools.txt
[ "$(grep -c '^Pool leaf[12]: leaf .*, up' pools.txt)" = 2 ]
echo
echo "mysql-ssl: done"
