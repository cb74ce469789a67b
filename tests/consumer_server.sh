#!/bin/sh
# The consumer programs built on the server API (tests/consumer/leaf.c and
# aggregator.c): two leaves and an aggregator from config files, real
# processes; the aggregator's handler fans out to both leaves and answers.
#
#   tests/consumer_server.sh BUILD_DIR LEAF_BIN AGGREGATOR_BIN
set -u
bin=$1 leaf=$2 agg=$3
t=$(mktemp -d)
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$t"; }
trap cleanup EXIT
"$bin/tools/clink-certs" ca --out "$t" >/dev/null 2>&1 || { echo "FAIL: make CA"; exit 1; }
"$bin/tools/clink-certs" node --ca "$t" --out "$t" --name node --dns localhost --ip 127.0.0.1 >/dev/null 2>&1 ||
  { echo "FAIL: make the node certificate"; exit 1; }
conf() { # file, extra lines
  printf '[server]\nops = OFF\nssl_cert = node.pem\nssl_key = node-key.pem\nssl_ca = ca.pem\nport = 0\nworkers = 1\n%s' \
    "$2" >"$t/$1"
}
for n in leaf1 leaf2; do
  conf $n.cnf ""
  "$leaf" "$t/$n.cnf" >"$t/$n.port" 2>"$t/$n.log" &
  pids="$pids $!"
done
i=0; while { [ ! -s "$t/leaf1.port" ] || [ ! -s "$t/leaf2.port" ]; } && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
if [ ! -s "$t/leaf1.port" ] || [ ! -s "$t/leaf2.port" ]; then
  echo "FAIL: the leaves did not start"; cat "$t"/*.log; exit 1
fi
peers=""
for n in leaf1 leaf2; do
  peers="${peers}[leaf $n]
host = 127.0.0.1
port = $(cat "$t/$n.port")
ssl_server_name = localhost
"
done
conf agg.cnf "$peers"
out=$("$agg" "$t/agg.cnf" 2>&1)
rc=$?
if [ $rc -ne 0 ] || [ "$out" != "2: hi hi" ]; then
  echo "FAIL: the aggregator's answer (exit $rc): $out"; cat "$t"/*.log; exit 1
fi
for p in $pids; do kill -TERM "$p"; wait "$p" || { echo "FAIL: a leaf did not stop cleanly"; exit 1; }; done
pids=""
echo "consumer_server: the aggregator asked both leaves: $out"
