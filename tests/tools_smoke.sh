#!/bin/sh
# The command-line tools and the README example, end to end on loopback:
# --help works everywhere, bad usage exits 2, clink-certs makes CAs,
# intermediates and node certificates for a role, clink-node serves verified
# TLS (also through an intermediate), clink-status prints the cipher and
# version from both ends, a wrong expected name and a certificate without
# client usage are refused (and the node logs why), and the README example runs.
set -u
bin=$1        # build dir
t=$(mktemp -d)
node_pid=
cleanup() { [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null; rm -rf "$t"; }
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
no() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { desc=$1; shift; if "$@" >"$t/out" 2>&1; then ok; else no "$desc"; cat "$t/out"; fi; }

for tool in tools/clink-certs tools/clink-node tools/clink-status bench/clink-bench; do
  check "$tool --help" "$bin/$tool" --help
  "$bin/$tool" --no-such-flag >/dev/null 2>&1; [ $? -eq 2 ] && ok || no "$tool: bad flag should exit 2"
done

check "make CA" "$bin/tools/clink-certs" ca --out "$t/pki"
check "make leaf cert" "$bin/tools/clink-certs" node --ca "$t/pki" --out "$t/pki" --name leaf1 --dns localhost --ip 127.0.0.1
check "make agg cert" "$bin/tools/clink-certs" node --ca "$t/pki" --out "$t/pki" --name agg1
"$bin/tools/clink-certs" node --ca "$t/pki" --out "$t/pki" --name agg1 >/dev/null 2>&1
[ $? -eq 1 ] && ok || no "clink-certs must refuse to overwrite without --force"

# An intermediate CA, a node under it (its file carries the chain), usages.
check "make intermediate CA" "$bin/tools/clink-certs" ca --out "$t/pki/int" --parent "$t/pki"
check "make leaf under the intermediate" "$bin/tools/clink-certs" node --ca "$t/pki/int" --out "$t/pki" \
  --name leaf2 --dns localhost --ip 127.0.0.1
[ "$(grep -c 'BEGIN CERTIFICATE' "$t/pki/leaf2.pem")" -eq 2 ] && ok || no "leaf2.pem holds the leaf, then the intermediate"
"$bin/tools/clink-certs" ca --out "$t/pki/int2" --parent "$t/pki/int" >"$t/out" 2>&1
[ $? -eq 1 ] && grep -q "pathlen 0" "$t/out" && ok || { no "an intermediate must not sign a CA"; cat "$t/out"; }
"$bin/tools/clink-certs" ca --out "$t/pki" --parent "$t/pki" --force >"$t/out" 2>&1
[ $? -eq 1 ] && grep -q "would overwrite the parent CA" "$t/out" && ok || { no "--parent = --out must fail"; cat "$t/out"; }
check "make server-only cert" "$bin/tools/clink-certs" node --ca "$t/pki" --out "$t/pki" --name srvonly --usage server
"$bin/tools/clink-certs" node --ca "$t/pki" --out "$t/pki" --name x --usage sideways >/dev/null 2>&1
[ $? -eq 2 ] && ok || no "a bad --usage must exit 2"

"$bin/tools/clink-node" -v --listen 127.0.0.1:0 --cert "$t/pki/leaf1.pem" --key "$t/pki/leaf1-key.pem" \
  --ca "$t/pki/ca.pem" --port-file "$t/port" 2>"$t/node.log" &
node_pid=$!
i=0; while [ ! -s "$t/port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
port=$(cat "$t/port" 2>/dev/null)
[ -n "$port" ] && ok || no "clink-node did not start"

"$bin/tools/clink-status" --connect "127.0.0.1:$port" --name localhost --cert "$t/pki/agg1.pem" \
  --key "$t/pki/agg1-key.pem" --ca "$t/pki/ca.pem" >"$t/status" 2>&1
[ $? -eq 0 ] && ok || { no "clink-status"; cat "$t/status"; }
[ "$(grep -c '^TLS version: TLSv1.3$' "$t/status")" -eq 2 ] && ok || no "both ends report TLSv1.3"
grep -q '^SSL: Cipher in use is TLS_' "$t/status" && ok || no "cipher reported the mysql client's way"
grep -q '^Session: full handshake$' "$t/status" && ok || no "session reported"
grep -q '^Peer certificate subject: CN=agg1$' "$t/status" && ok || no "server saw the client certificate"
grep -q '^kTLS: off (' "$t/status" && ok || no "kTLS state and reason reported"
grep -q '^Verification: identity$' "$t/status" && ok || no "verification reported"

"$bin/tools/clink-status" --host 127.0.0.1 --port "$port" --ssl-mode VERIFY_CA --ssl-server-name not-this-node \
  --ssl-cert "$t/pki/agg1.pem" --ssl-key "$t/pki/agg1-key.pem" --ssl-ca "$t/pki/ca.pem" >"$t/vca" 2>&1
[ $? -eq 0 ] && grep -q '^Verification: ca$' "$t/vca" && ok || { no "mysql-style options, VERIFY_CA"; cat "$t/vca"; }
"$bin/tools/clink-status" --connect "127.0.0.1:$port" --name not-this-node --cert "$t/pki/agg1.pem" \
  --key "$t/pki/agg1-key.pem" --ca "$t/pki/ca.pem" >"$t/bad" 2>&1
[ $? -eq 1 ] && grep -q "certificate verify failed: hostname mismatch" "$t/bad" && ok || { no "wrong name must be refused"; cat "$t/bad"; }
"$bin/tools/clink-status" --connect "127.0.0.1:$port" --name localhost --cert "$t/pki/srvonly.pem" \
  --key "$t/pki/srvonly-key.pem" --ca "$t/pki/ca.pem" >"$t/bad" 2>&1
[ $? -eq 1 ] && grep -q "peer rejected our certificate: unsupported certificate" "$t/bad" && ok ||
  { no "a server-only certificate must be refused as a client"; cat "$t/bad"; }
grep -q "unsuitable certificate purpose (depth 0, CN=srvonly)" "$t/node.log" && ok ||
  { no "clink-node logs which client certificate it refused and why"; cat "$t/node.log"; }
"$bin/tools/clink-status" --connect "127.0.0.1:$port" --plaintext >"$t/plain" 2>&1
[ $? -eq 1 ] && grep -q "plaintext connections are not allowed" "$t/plain" && ok || { no "plaintext must be refused"; cat "$t/plain"; }

kill -TERM "$node_pid"; wait "$node_pid"; rc=$?; node_pid=
[ $rc -eq 0 ] && ok || no "clink-node exit status $rc after SIGTERM"
grep -q "stopped:" "$t/node.log" && ok || no "clink-node reports its shutdown"

# A node from a memsql.cnf as MemSQL writes it (keys for mysqld and MemSQL, bare flags, quotes), paths relative
# to the file's folder.
cat >"$t/pki/memsql.cnf" <<CNF
[mysqld]
skip-external-locking
[server]
skip-name-resolve
master-aggregator
datadir = "/var/lib/memsql/data" # not clink's
ops_port = 0
ssl_cert = leaf1.pem
ssl_key = leaf1-key.pem
ssl_ca = ca.pem
port = 0
workers = 1
CNF
rm -f "$t/port"
"$bin/tools/clink-node" --config "$t/pki/memsql.cnf" --port-file "$t/port" 2>"$t/node.log" &
node_pid=$!
i=0; while [ ! -s "$t/port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
port=$(cat "$t/port" 2>/dev/null)
"$bin/tools/clink-status" --connect "127.0.0.1:$port" --name localhost --cert "$t/pki/agg1.pem" \
  --key "$t/pki/agg1-key.pem" --ca "$t/pki/ca.pem" >"$t/status" 2>&1
[ $? -eq 0 ] && ok || { no "clink-node --config"; cat "$t/status" "$t/node.log"; }
grep -q "keys clink does not use, ignored: skip-name-resolve (memsql.cnf:4), master-aggregator (memsql.cnf:5), datadir" \
  "$t/node.log" && ok || { no "clink-node names the keys it passed over"; cat "$t/node.log"; }
kill -TERM "$node_pid"; wait "$node_pid"; node_pid=
# A node whose certificate comes from the intermediate; its peers trust only the root.
rm -f "$t/port"
"$bin/tools/clink-node" --listen 127.0.0.1:0 --cert "$t/pki/leaf2.pem" --key "$t/pki/leaf2-key.pem" \
  --ca "$t/pki/ca.pem" --port-file "$t/port" 2>"$t/node.log" &
node_pid=$!
i=0; while [ ! -s "$t/port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
port=$(cat "$t/port" 2>/dev/null)
"$bin/tools/clink-status" --connect "127.0.0.1:$port" --name localhost --cert "$t/pki/agg1.pem" \
  --key "$t/pki/agg1-key.pem" --ca "$t/pki/ca.pem" >"$t/status" 2>&1
[ $? -eq 0 ] && grep -q '^Peer certificate issuer: CN=clink intermediate CA$' "$t/status" && ok ||
  { no "a chain through an intermediate verifies against the root"; cat "$t/status" "$t/node.log"; }
kill -TERM "$node_pid"; wait "$node_pid"; node_pid=
# The open files limit: clink-node raises its soft limit to the hard one at start and says so (issue 17,
# item 4), and warns when even the hard limit is short of what max_connections and max_node_links allow.
hard=$(ulimit -H -n)
if [ "$hard" != unlimited ] && [ "$hard" -gt 256 ]; then
  rm -f "$t/port"
  # shellcheck disable=SC2016 # $@ is for the inner sh
  sh -c 'ulimit -S -n 256 && exec "$@"' sh "$bin/tools/clink-node" --config "$t/pki/memsql.cnf" \
    --port-file "$t/port" 2>"$t/node.log" &
  node_pid=$!
  i=0; while [ ! -s "$t/port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
  soft=$(awk '/^Max open files/ {print $4}' "/proc/$node_pid/limits" 2>/dev/null)
  [ "$soft" = "$hard" ] && grep -q "open files limit raised from 256 to $hard" "$t/node.log" && ok ||
    { no "clink-node raises its open files limit to the hard limit (soft now '$soft', hard $hard)"; cat "$t/node.log"; }
  kill -TERM "$node_pid"; wait "$node_pid"; node_pid=
fi
sh -c 'ulimit -n 128 && exec "$@"' sh "$bin/tools/clink-node" --config "$t/pki/memsql.cnf" --max-connections 50 \
  --port-file "$t/port2" 2>"$t/node.log" &
node_pid=$!
i=0; while [ ! -s "$t/port2" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
grep -q "warning: the open files limit (128) is below what max_connections (50," "$t/node.log" && ok ||
  { no "clink-node warns when the fd limit is below its connection limits"; cat "$t/node.log"; }
kill -TERM "$node_pid"; wait "$node_pid"; node_pid=
printf '[server]\nssl_cert = leaf1.pem\nssl_sert = typo.pem\n' >"$t/pki/bad.cnf"
"$bin/tools/clink-node" --config "$t/pki/bad.cnf" >"$t/out" 2>&1
[ $? -eq 1 ] && grep -q "bad.cnf:3: ssl_sert: unknown key" "$t/out" && ok || { no "bad config must fail with file:line"; cat "$t/out"; }

check "README example" "$bin/examples/example_hello" "$t/pki/leaf1.pem" "$t/pki/leaf1-key.pem" "$t/pki/ca.pem"
grep -q "hello, aggregator" "$t/out" && ok || no "example output"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
