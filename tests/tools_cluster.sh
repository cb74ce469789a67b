#!/bin/sh
# A cluster from config files, end to end with real processes: two leaves
# sharing a session ticket key file, an aggregator whose [leaf] sections make
# its pools, clink-status --pools to read them; the aggregator's fan-out
# method (through clink-bench) answers while both leaves are up and fails,
# naming no wrong data, while one is down; a leaf process is killed (its
# pool goes down) and started again (the pool comes back by itself, resuming
# its TLS session with the shared ticket key). Also clink-bench's scale
# scenario in small (1 and 2 leaves of its own, short lines).
set -u
bin=$1 # build dir
t=$(mktemp -d)
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$t"; }
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
no() { fail=$((fail + 1)); echo "FAIL: $*"; }
certs=$bin/tools/clink-certs

"$certs" ca --out "$t" >/dev/null 2>&1 || no "make CA"
for n in leaf1 leaf2 agg1; do
  "$certs" node --ca "$t" --out "$t" --name $n --dns localhost --ip 127.0.0.1 >/dev/null 2>&1 || no "make $n"
done
head -c 80 /dev/urandom >"$t/ticket.key" && chmod 600 "$t/ticket.key"

leaf_conf() { # name port
  cat >"$t/$1.cnf" <<CNF
[server]
ops_port = 0
ssl_cert = $1.pem
ssl_key = $1-key.pem
ssl_ca = ca.pem
ssl_session_ticket_key = ticket.key
port = $2
workers = 1
CNF
}
start() { # name -> pid in $last_pid, port in $t/name.port
  rm -f "$t/$1.port"
  "$bin/tools/clink-node" --config "$t/$1.cnf" --port-file "$t/$1.port" 2>>"$t/$1.log" &
  last_pid=$!
  pids="$pids $last_pid"
  i=0; while [ ! -s "$t/$1.port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
  [ -s "$t/$1.port" ] || { no "$1 did not start"; cat "$t/$1.log"; exit 1; }
}

leaf_conf leaf1 0; start leaf1; port1=$(cat "$t/leaf1.port")
leaf_conf leaf2 0; start leaf2; leaf2_pid=$last_pid; port2=$(cat "$t/leaf2.port")
cat >"$t/agg1.cnf" <<CNF
[server]
ops_port = 0
ssl_cert = agg1.pem
ssl_key = agg1-key.pem
ssl_ca = ca.pem
port = 0
workers = 1

[leaf leaf1]
host = 127.0.0.1
port = $port1
ssl_server_name = localhost

[leaf leaf2]
host = 127.0.0.1
port = $port2
ssl_server_name = localhost
CNF
start agg1; aport=$(cat "$t/agg1.port")

pools() {
  "$bin/tools/clink-status" --host 127.0.0.1 --port "$aport" --ssl-server-name localhost --pools \
    --ssl-cert "$t/agg1.pem" --ssl-key "$t/agg1-key.pem" --ssl-ca "$t/ca.pem" >"$t/s" 2>&1
}
# wait_for PATTERN: poll the aggregator's pools until a line matches (5 s)
wait_for() {
  i=0
  while [ $i -lt 100 ]; do
    pools && grep -q "$1" "$t/s" && return 0
    sleep 0.05; i=$((i + 1))
  done
  return 1
}

wait_for "^Pool leaf2: leaf 127.0.0.1:$port2, up" && grep -q "^Pool leaf1: leaf 127.0.0.1:$port1, up" "$t/s" &&
  grep -q "^  Connections: 1 open" "$t/s" && ok || { no "the aggregator's pools are up"; cat "$t/s" "$t/agg1.log"; }

# fanout QUIET: the aggregator's fan-out method for 300 ms through clink-bench; results in $t/fan.json
fanout() {
  rm -f "$t/fan.json"
  "$bin/bench/clink-bench" --target "127.0.0.1:$port1" --aggregator "127.0.0.1:$aport" --name localhost \
    --cert "$t/agg1.pem" --key "$t/agg1-key.pem" --ca "$t/ca.pem" --scenarios fanout --modes tls \
    --duration-ms 300 --warmup-ms 0 --concurrency 8 --json "$t/fan.json" >"$t/fan.out" 2>&1
}
fanout && [ "$(grep -c '"failed":0,' "$t/fan.json")" -eq 4 ] && ! grep -q '"ok":0,' "$t/fan.json" && ok ||
  { no "fan-out answers while both leaves are up"; cat "$t/fan.out"; }

# The scale scenario in small: an in-process aggregator fans out to 1, then 2 leaves in a process of their own
# (its own leaves, not this cluster's), a leaf restarts (its pool resumes: the leaves keep their ticket keys),
# the aggregator restarts (a new node has no tickets: full handshakes). Four lines per N, none failed.
rm -f "$t/scale.json"
"$bin/bench/clink-bench" --target "127.0.0.1:$port1" --name localhost --cert "$t/agg1.pem" --key "$t/agg1-key.pem" \
  --ca "$t/ca.pem" --scenarios scale --modes tls --scale-leaves 1,2 --duration-ms 200 --warmup-ms 0 \
  --json "$t/scale.json" >"$t/scale.out" 2>&1 &&
  [ "$(grep -c '"scenario":"scale".*"failed":0,' "$t/scale.json")" -eq 8 ] &&
  [ "$(grep -c '"mode":"fanout".*"leaf_calls_per_s":[1-9]' "$t/scale.json")" -eq 2 ] &&
  [ "$(grep -c '"mode":"restart-leaf".*"resumed_share":1,' "$t/scale.json")" -eq 2 ] &&
  [ "$(grep -c '"mode":"restart-agg".*"handshakes_resumed":0,' "$t/scale.json")" -eq 2 ] && ok ||
  { no "clink-bench --scenarios scale"; cat "$t/scale.out" "$t/scale.json"; }

kill -TERM "$leaf2_pid"; wait "$leaf2_pid" 2>/dev/null
wait_for "^Pool leaf2: .*, down" && ok || { no "leaf2's pool goes down"; cat "$t/s"; }
grep -q "^Pool leaf1: .*, up" "$t/s" && ok || no "leaf1 stays up"
# Every fan-out call now fails (leaf2 is unavailable): counted as failed, none answered as if whole.
! fanout && grep -q '"ok":0,' "$t/fan.json" && ! grep -q '"failed":0,' "$t/fan.json" && ok ||
  { no "fan-out fails while a leaf is down"; cat "$t/fan.out"; }

leaf_conf leaf2 "$port2"; start leaf2
wait_for "^Pool leaf2: .*, up" && ok || { no "leaf2's pool comes back by itself"; cat "$t/s" "$t/leaf2.log"; }
sed -n '/^Pool leaf2/,/^Pool/p' "$t/s" | grep -q "Handshakes: 1 full, 1 resumed" && ok ||
  { no "the reconnect resumed (shared ticket key file)"; cat "$t/s"; }
sed -n '/^Pool leaf2/,/^Pool/p' "$t/s" | grep -q "Reconnects: 1," && ok || { no "reconnect counted"; cat "$t/s"; }

for p in $pids; do kill -TERM "$p" 2>/dev/null; done
for p in $pids; do wait "$p" 2>/dev/null; done
pids=""
grep -q "stopped:" "$t/agg1.log" && ok || { no "the aggregator stops cleanly"; cat "$t/agg1.log"; }

echo "tools_cluster: $pass passed, $fail failed"
[ $fail -eq 0 ]
