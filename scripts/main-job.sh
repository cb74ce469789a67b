#!/usr/bin/env bash
# The main job: install what is missing, build, make a CA and node
# certificates, start a local cluster (one aggregator, two leaves) over
# mutually verified TLS on loopback, print the aggregator's pools and a
# connection's status, run the benchmark (clink-bench dials the leaves with
# the aggregator's identity, and calls the aggregator's fan-out method, which
# asks both leaves), write results (JSON, a table, a plot) under results/,
# and stop the cluster, leaving nothing running.
#
#   scripts/main-job.sh [--quick] [--out DIR]
#   scripts/main-job.sh --build-only [--build-dir DIR]
#
# --build-only runs only the build step (no dependencies, no cluster), into
# DIR (default build/release): the install test (scripts/test-install.sh)
# uses it to install after exactly this job's build, as the README does.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
quick=
out=
build_only=
build="$root/build/release"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=--quick; shift ;;
    --out) out=$2; shift 2 ;;
    --build-only) build_only=1; shift ;;
    --build-dir) build=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "main-job: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
stage() { printf '\n== %s (%ds)\n' "$1" "$SECONDS"; }

if [ -z "$build_only" ]; then
  stage "dependencies"
  "$root/scripts/deps.sh"
fi

stage "build (release)"
# The same build dir as the tests' release stage: the programs the job runs and the library (both
# forms), so that `cmake --install build/release` works right after this job (the README's order);
# not the tests, and the test option in its cache is left as it was. The library's objects are built
# for the programs anyway: the library targets add two link steps.
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target clink clink_static clink-certs clink-node clink-status clink-accounts clink-admin clink-bench
[ -z "$build_only" ] || exit 0
bin="$build/tools"

out=${out:-"$root/results/$(date -u +%Y%m%d-%H%M%S)"}
mkdir -p "$out"
out=$(cd "$out" && pwd)
pki="$out/pki"
# A rerun into the same --out starts from scratch: new CA, new results.
rm -rf "$pki" "$out/results.json" "$out"/throughput-*.dat "$out/scale.dat"

stage "certificates"
"$bin/clink-certs" ca --out "$pki" --cn "clink local cluster CA"
for n in leaf1 leaf2; do
  "$bin/clink-certs" node --ca "$pki" --out "$pki" --name "$n" --dns localhost --ip 127.0.0.1 --ip ::1
done
"$bin/clink-certs" node --ca "$pki" --out "$pki" --name agg1 --dns localhost --ip 127.0.0.1

stage "accounts"
# The aggregator logs in as root, proven by its certificate (no password hashing per connection).
# The plaintext baseline cannot prove anything: it gets its own account, from loopback only, marked
# plaintext_no_password (a password-less account otherwise stands only on a verified client certificate).
"$bin/clink-accounts" --file "$pki/accounts.cnf" add root \
  --require "SUBJECT '/CN=agg1' AND ISSUER '/CN=clink local cluster CA'"
"$bin/clink-accounts" --file "$pki/accounts.cnf" add baseline@127.0.0.1 --require NONE --plaintext-no-password ON

stage "cluster: 1 aggregator, 2 leaves on loopback"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 143' TERM INT # a timeout or ^C still stops the leaves (through the EXIT trap)
ports=()
# The memory scenario holds 5000 plaintext sessions as baseline: client sessions, past max_connections'
# default of 151 (its TLS ones log in by certificate: node links, within max_node_links' 16384).
# leaf2 sends stream data zero-copy on plaintext links (zerocopy_send = on; the default is off):
# the bench's two plain stream lines compare it with leaf1's gathering sends.
printf '[server]\nzerocopy_send = on\nops = off\n' >"$out/leaf2.cnf"
for n in leaf1 leaf2; do
  rm -f "$out/$n.port"
  cnf=()
  [ "$n" = leaf2 ] && cnf=(--config "$out/leaf2.cnf")
  "$bin/clink-node" "${cnf[@]}" --listen 127.0.0.1:0 --cert "$pki/$n.pem" --key "$pki/$n-key.pem" --ca "$pki/ca.pem" \
    --accounts "$pki/accounts.cnf" --allow-plaintext --max-connections 10000 --workers 1 --port-file "$out/$n.port" \
    2>"$out/$n.log" &
  pids+=($!)
done
for n in leaf1 leaf2; do
  for _ in $(seq 100); do [ -s "$out/$n.port" ] && break; sleep 0.05; done
  [ -s "$out/$n.port" ] || { echo "main-job: $n did not start:"; cat "$out/$n.log"; exit 1; }
  ports+=("$(cat "$out/$n.port")")
done
echo "leaf1 on 127.0.0.1:${ports[0]}, leaf2 on 127.0.0.1:${ports[1]} (TLS 1.3, client certificates required; plaintext allowed for the baseline)"

# The aggregator: its own port, and a pool of verified TLS connections to each leaf (docs/config.md).
cat >"$out/agg1.cnf" <<CONF
[server]
ops_port = 0
bind_address = 127.0.0.1
port = 0
ssl_cert = $pki/agg1.pem
ssl_key = $pki/agg1-key.pem
ssl_ca = $pki/ca.pem
accounts_file = $pki/accounts.cnf

[leaf leaf1]
host = 127.0.0.1
port = ${ports[0]}
ssl_server_name = localhost
user = root

[leaf leaf2]
host = 127.0.0.1
port = ${ports[1]}
ssl_server_name = localhost
user = root
CONF
rm -f "$out/agg1.port"
rm -f "$out/agg1.ops"
"$bin/clink-node" --config "$out/agg1.cnf" --workers 1 --port-file "$out/agg1.port" --ops-port-file "$out/agg1.ops" \
  2>"$out/agg1.log" &
agg_pid=$!
pids+=($agg_pid)
for _ in $(seq 100); do [ -s "$out/agg1.port" ] && break; sleep 0.05; done
[ -s "$out/agg1.port" ] || { echo "main-job: the aggregator did not start:"; cat "$out/agg1.log"; exit 1; }
agg_port=$(cat "$out/agg1.port")
echo "agg1 on 127.0.0.1:$agg_port, pools to leaf1 and leaf2"

stage "stunnel baseline (what users would otherwise deploy)"
# An stunnel client/server pair in front of leaf1's plaintext side, verifying leaf1's certificate:
# clink-bench sends plaintext clink through it (mode "stunnel").
stunnel_args=()
free_port() { # a port no socket uses (ss is in iproute2)
  # Any state, not only listening: a socket still closing from an earlier run (a back-to-back rerun's
  # thousands of connections) holds its port too, and stunnel's bind then fails with EADDRINUSE.
  # Below the kernel's ephemeral range (32768 and up), which outgoing connections draw from.
  local p
  for _ in $(seq 50); do
    p=$(shuf -i 20000-32000 -n 1)
    ss -tanH "( sport = :$p or dport = :$p )" 2>/dev/null | grep -q . || { echo "$p"; return 0; }
  done
  return 1
}
if command -v stunnel4 >/dev/null 2>&1 && sp=$(free_port) && cp=$(free_port); then
  cat >"$out/stunnel-server.conf" <<CONF
foreground = yes
pid =
[clink-server]
accept = 127.0.0.1:$sp
connect = 127.0.0.1:${ports[0]}
cert = $pki/leaf1.pem
key = $pki/leaf1-key.pem
CONF
  cat >"$out/stunnel-client.conf" <<CONF
foreground = yes
pid =
[clink-client]
client = yes
accept = 127.0.0.1:$cp
connect = 127.0.0.1:$sp
CAfile = $pki/ca.pem
verifyChain = yes
checkHost = localhost
CONF
  stunnel4 "$out/stunnel-server.conf" 2>"$out/stunnel-server.log" &
  pids+=($!)
  stunnel4 "$out/stunnel-client.conf" 2>"$out/stunnel-client.log" &
  pids+=($!)
  for _ in $(seq 100); do ss -ltnH "sport = :$cp" | grep -q . && ss -ltnH "sport = :$sp" | grep -q . && break; sleep 0.05; done
  stunnel_args=(--stunnel "127.0.0.1:$cp" --measure-pid "${pids[-1]}" --measure-pid "${pids[-2]}")
  echo "stunnel pair: client 127.0.0.1:$cp -> server 127.0.0.1:$sp -> leaf1 plaintext (${stunnel_args[*]})"
else
  echo "stunnel4 not installed: the stunnel baseline is skipped (scripts/deps.sh installs it)"
fi

stage "the aggregator's pools, and a connection's status (aggregator identity -> leaf1)"
# The pools warm up in the background: wait until both leaves have open connections.
for _ in $(seq 100); do
  "$bin/clink-status" --host 127.0.0.1 --port "$agg_port" --ssl-server-name localhost --user root \
    --ssl-cert "$pki/agg1.pem" --ssl-key "$pki/agg1-key.pem" --ssl-ca "$pki/ca.pem" --pools >"$out/pools.txt" 2>&1 || true
  [ "$(grep -c ', up$' "$out/pools.txt" || true)" -ge 2 ] && break
  sleep 0.1
done
cat "$out/pools.txt"
[ "$(grep -c ', up$' "$out/pools.txt" || true)" -ge 2 ] || { echo "main-job: the aggregator's pools did not come up"; cat "$out/agg1.log"; exit 1; }
"$bin/clink-status" --host 127.0.0.1 --port "${ports[0]}" --ssl-server-name localhost --user root \
  --ssl-cert "$pki/agg1.pem" --ssl-key "$pki/agg1-key.pem" --ssl-ca "$pki/ca.pem" | tee "$out/status.txt"

stage "the aggregator's operations endpoint over HTTPS (docs/ops.md)"
ops_port=$(cat "$out/agg1.ops")
echo "page: https://localhost:$ops_port/ (trust $pki/ca.pem); metrics and status below"
curl -sS --fail --cacert "$pki/ca.pem" "https://localhost:$ops_port/metrics" >"$out/metrics.txt" ||
  { echo "main-job: GET /metrics failed"; cat "$out/agg1.log"; exit 1; }
curl -sS --fail --cacert "$pki/ca.pem" "https://localhost:$ops_port/status" >"$out/status.json" ||
  { echo "main-job: GET /status failed"; exit 1; }
grep -E '^clink_(secure_transport\{.*\} 1|plaintext_links|pool_up|cert_expiry_seconds\{use="node",kind="own")' "$out/metrics.txt"
grep -q '^clink_plaintext_links 0$' "$out/metrics.txt" || { echo "main-job: plaintext links on a TLS cluster"; exit 1; }

stage "benchmark"
"$build/bench/clink-bench" $quick --target "127.0.0.1:${ports[0]}" --target "127.0.0.1:${ports[1]}" \
  --name localhost --cert "$pki/agg1.pem" --key "$pki/agg1-key.pem" --ca "$pki/ca.pem" --user root --plain-user baseline \
  --aggregator "127.0.0.1:$agg_port" --workers 1 --json "$out/results.json" \
  --measure-pid "${pids[0]}" --measure-pid "${pids[1]}" --measure-pid "$agg_pid" "${stunnel_args[@]}" |
  tee "$out/table.txt"

stage "plot"
"$root/scripts/plot.sh" "$out" || echo "main-job: no plot (see above)"

stage "stop cluster"
for p in "${pids[@]}"; do kill -TERM "$p"; done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
pids=()
cat "$out"/leaf*.log "$out/agg1.log"
[ "$rc" -eq 0 ] || { echo "main-job: a node exited with status $rc"; exit 1; }
mkdir -p "$root/results" && ln -sfn "$out" "$root/results/latest"
echo
echo "results: $out (results.json, table.txt, pools.txt, status.txt, throughput.png, scale.png); total ${SECONDS}s"
