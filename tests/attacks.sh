#!/bin/sh
# Scripted attacks on running clink-node processes (issue 7): makes a CA and
# certificates with clink-certs, starts three nodes from the same build on
# loopback (TLS 1.3 only with a short handshake timeout; one with --tls12;
# one under `ulimit -n 128`), runs tests/attacks/ against them (a bystander
# client calls each node while it is attacked), then stops every node with
# SIGTERM: each must exit 0, and its log must hold no sanitizer report (in
# sanitizer builds the nodes are instrumented too: a leak or a crash fails).
#
#   attacks.sh BUILD_DIR [attacks options, e.g. --only storm --strict]
#   CLINK_ATTACKS_KEEP=1 keeps the temporary directory (certificates, node logs).
set -u
bin=${1:?usage: attacks.sh BUILD_DIR [attacks options]}
shift
scale=${CLINK_TEST_TIMEOUT_SCALE:-1}
hs_ms=2000 # the main node's handshake_timeout_ms: short, so slowloris and the storm end quickly
mkdir -p "${CLINK_TEST_TMP:-/tmp}"
t=$(mktemp -d "${CLINK_TEST_TMP:-/tmp}/attacks-XXXXXX") || exit 1
pids=
cleanup() {
  for p in $pids; do kill -9 "$p" 2>/dev/null; done
  if [ -n "${CLINK_ATTACKS_KEEP:-}" ]; then echo "attacks.sh: kept $t"; else rm -rf "$t"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

certs=$bin/tools/clink-certs
node=$bin/tools/clink-node
{
  "$certs" ca --out "$t/pki" &&
    "$certs" node --ca "$t/pki" --out "$t/pki" --name node --dns localhost --ip 127.0.0.1 &&
    "$certs" node --ca "$t/pki" --out "$t/pki" --name client &&
    "$certs" ca --out "$t/other" &&
    "$certs" node --ca "$t/other" --out "$t/other" --name intruder --dns localhost --ip 127.0.0.1
} >"$t/certs.log" 2>&1 || {
  echo "attacks.sh: clink-certs failed"
  cat "$t/certs.log"
  exit 1
}
cat >"$t/pki/node.cnf" <<CNF
[server]
ops_port = 0
ssl_cert = node.pem
ssl_key = node-key.pem
ssl_ca = ca.pem
bind_address = 127.0.0.1
port = 0
workers = 2
handshake_timeout_ms = $hs_ms
CNF

# The storm opens 2000 connections to one node: it needs the descriptors (root may raise the hard limit).
# shellcheck disable=SC3045 # dash and bash both have ulimit -n / -H
[ "$(ulimit -n)" -ge 4096 ] 2>/dev/null || ulimit -n 4096 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# start NAME COMMAND...: run a node writing NAME.port and NAME.log; sets $pid.
start() {
  name=$1
  shift
  "$@" --port-file "$t/$name.port" 2>"$t/$name.log" &
  pid=$!
  pids="$pids $pid"
  i=0
  while [ ! -s "$t/$name.port" ] && [ $i -lt $((100 * scale)) ]; do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
    i=$((i + 1))
  done
  [ -s "$t/$name.port" ] || {
    echo "attacks.sh: the $name node did not start"
    cat "$t/$name.log"
    exit 1
  }
}
start main "$node" -v --config "$t/pki/node.cnf"
main_pid=$pid
start tls12 "$node" -v --config "$t/pki/node.cnf" --tls12
tls12_pid=$pid
# exec keeps the pid: the driver reads this node's /proc entries (fds, CPU, limit).
# shellcheck disable=SC2016 # $@ is for the inner sh
start fdlim sh -c 'ulimit -n 128 && exec "$@"' sh "$node" --listen 127.0.0.1:0 --cert "$t/pki/node.pem" \
  --key "$t/pki/node-key.pem" --ca "$t/pki/ca.pem" --workers 2
fd_pid=$pid

rc=0
"$bin/tests/attacks" --port "$(cat "$t/main.port")" --tls12-port "$(cat "$t/tls12.port")" \
  --fd-port "$(cat "$t/fdlim.port")" --fd-pid "$fd_pid" --fd-log "$t/fdlim.log" \
  --cert "$t/pki/client.pem" --key "$t/pki/client-key.pem" --ca "$t/pki/ca.pem" \
  --other-cert "$t/other/intruder.pem" --other-key "$t/other/intruder-key.pem" \
  --handshake-timeout-ms $hs_ms --workers 2 "$@" || rc=1

# stop NAME PID: SIGTERM, bounded wait, exit status 0 and a log without sanitizer reports.
stop() {
  name=$1
  p=$2
  kill -TERM "$p" 2>/dev/null
  # Bounded: a node that does not stop is killed (and fails). A zombie has stopped: wait reaps it.
  i=0
  while [ -e "/proc/$p" ] && [ "$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null)" != Z ] &&
    [ $i -lt $((200 * scale)) ]; do
    sleep 0.1
    i=$((i + 1))
  done
  [ "$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null)" = Z ] || kill -9 "$p" 2>/dev/null
  wait "$p"
  st=$?
  pids=$(echo "$pids" | sed "s/ $p\b//")
  bad=
  [ $st -eq 0 ] || bad="exit status $st after SIGTERM"
  if grep -q "AddressSanitizer\|LeakSanitizer\|ThreadSanitizer\|runtime error:" "$t/$name.log"; then
    bad="${bad:+$bad; }a sanitizer report in its log"
  fi
  grep -q "clink-node: stopped:" "$t/$name.log" || bad="${bad:+$bad; }no orderly stop in its log"
  if [ -n "$bad" ]; then
    echo "FAIL: the $name node: $bad; its log ends:"
    grep -v " INFO " "$t/$name.log" | tail -n 60
    rc=1
  else
    echo "ok: the $name node exited 0 after SIGTERM, no sanitizer report ($(wc -l <"$t/$name.log") log lines)"
  fi
}
stop main "$main_pid"
stop tls12 "$tls12_pid"
stop fdlim "$fd_pid"
exit $rc
