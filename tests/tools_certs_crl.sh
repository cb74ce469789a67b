#!/bin/sh
# clink-certs revoke and clink-certs crl, end to end: --help, usage errors
# (exit 2), a CRL made, re-issued and grown (entries kept, number bumped,
# mode 0644), a serial revoked twice (the second says so and changes
# nothing), another CA's certificate refused; then a clink-node with ssl_crl:
# it warns when the CRL lapses within a week, and after a revocation and
# SIGHUP it refuses the revoked client saying so while another still gets in.
set -u
bin=$1 # build dir
t=$(mktemp -d)
node_pid=
cleanup() { [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null; rm -rf "$t"; }
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
no() { fail=$((fail + 1)); echo "FAIL: $*"; }
certs="$bin/tools/clink-certs"
# expect STATUS DESC CMD...: the command exits STATUS; its output is in $t/out.
expect() {
  want=$1 desc=$2; shift 2
  "$@" >"$t/out" 2>&1; got=$?
  if [ "$got" -eq "$want" ]; then ok; else no "$desc (exit $got, wanted $want)"; cat "$t/out"; fi
}
has() { if grep -q -- "$1" "$t/out"; then ok; else no "$2: no '$1' in:"; cat "$t/out"; fi; }

for cmd in revoke crl; do
  expect 0 "$cmd --help" "$certs" $cmd --help
  has "--ca DIR" "$cmd --help"
  expect 2 "$cmd: unknown flag" "$certs" $cmd --no-such-flag
  has "Run 'clink-certs $cmd --help'" "$cmd: the hint names the command"
  expect 2 "$cmd without --ca" "$certs" $cmd
  expect 2 "$cmd: stray argument" "$certs" $cmd --ca "$t/pki" stray
  expect 2 "$cmd: bad --days" "$certs" $cmd --ca "$t/pki" --days 0
done
"$certs" --help | grep -q "revoke" && ok || no "the command list names revoke"

expect 0 "make CA" "$certs" ca --out "$t/pki"
for n in leaf1 agg1 agg2; do
  expect 0 "make $n" "$certs" node --ca "$t/pki" --out "$t/pki" --name $n --dns localhost --ip 127.0.0.1
done
expect 0 "make another CA" "$certs" ca --out "$t/other" --cn "other CA"
expect 0 "make a node of the other CA" "$certs" node --ca "$t/other" --out "$t/other" --name stranger

expect 2 "revoke: neither --cert nor --serial" "$certs" revoke --ca "$t/pki"
has "exactly one of --cert FILE and --serial HEX" "revoke: says what it needs"
expect 2 "revoke: both --cert and --serial" "$certs" revoke --ca "$t/pki" --cert "$t/pki/agg2.pem" --serial 1f
expect 2 "revoke: a serial that is not hex" "$certs" revoke --ca "$t/pki" --serial 12xz
has "not a hex number" "revoke: bad serial"
expect 2 "revoke: an unknown reason" "$certs" revoke --ca "$t/pki" --serial 12 --reason certificateHold
has "keyCompromise" "revoke: lists the reasons"
expect 1 "revoke: a CA directory without a CA" "$certs" revoke --ca "$t/nothing" --serial 12
has "cannot open CA certificate" "revoke: missing CA"
expect 1 "revoke: another CA's certificate" "$certs" revoke --ca "$t/pki" --cert "$t/other/stranger.pem"
has "was not issued by the CA in" "revoke: another CA's certificate"
[ ! -e "$t/pki/crl.pem" ] && ok || no "a refused revocation wrote a CRL"

expect 0 "crl: the first, empty" "$certs" crl --ca "$t/pki" --days 30
has "CRL number 1, 0 revoked" "crl: number and entries"
[ "$(stat -c %a "$t/pki/crl.pem")" = 644 ] && ok || no "crl.pem is mode $(stat -c %a "$t/pki/crl.pem"), not 644"
[ "$(stat -c %a "$t/pki/ca-key.pem")" = 600 ] && ok || no "the CA key is no longer 0600"

# A node that checks the CRL: agg2 still gets in.
cat >"$t/pki/memsql.cnf" <<CNF
[server]
ssl_cert = leaf1.pem
ssl_key = leaf1-key.pem
ssl_ca = ca.pem
ssl_crl = crl.pem
port = 0
ops_port = 0
workers = 1
CNF
"$bin/tools/clink-node" -v --config "$t/pki/memsql.cnf" --port-file "$t/port" 2>"$t/node.log" &
node_pid=$!
i=0; while [ ! -s "$t/port" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
port=$(cat "$t/port" 2>/dev/null)
[ -n "$port" ] && ok || { no "clink-node did not start"; cat "$t/node.log"; }
status() { # status NAME: clink-status as NAME
  "$bin/tools/clink-status" --connect "127.0.0.1:$port" --name localhost --cert "$t/pki/$1.pem" \
    --key "$t/pki/$1-key.pem" --ca "$t/pki/ca.pem" >"$t/out" 2>&1
}
status agg2 && ok || { no "agg2 before its revocation"; cat "$t/out"; }

expect 0 "revoke agg2" "$certs" revoke --ca "$t/pki" --cert "$t/pki/agg2.pem" --reason keyCompromise
has "revoked serial [0-9A-F]* CN=agg2, reason keyCompromise" "revoke: says what it revoked"
has "CRL number 2, 1 revoked" "revoke: number bumped"
has "reload them all" "revoke: says what to do next"
cp "$t/pki/crl.pem" "$t/crl-2.pem"
expect 0 "revoke agg2 again" "$certs" revoke --ca "$t/pki" --cert "$t/pki/agg2.pem"
has "already revoked" "revoke again: says so"
cmp -s "$t/pki/crl.pem" "$t/crl-2.pem" && ok || no "revoking again changed the CRL"
expect 0 "revoke by serial" "$certs" revoke --ca "$t/pki" --serial 0x0a:1b --reason superseded
has "revoked serial 0A1B" "revoke by serial"
has "CRL number 3, 2 revoked" "revoke by serial: the first entry kept"
if command -v openssl >/dev/null 2>&1; then
  openssl crl -in "$t/pki/crl.pem" -noout -text >"$t/out" 2>&1
  has "Key Compromise" "openssl reads the reason"
  has "Serial Number: 0A1B" "openssl reads the serial entry"
  openssl verify -crl_check -CAfile "$t/pki/ca.pem" -CRLfile "$t/pki/crl.pem" "$t/pki/agg2.pem" >"$t/out" 2>&1
  has "certificate revoked" "openssl verify refuses agg2"
fi

# SIGHUP: the node refuses agg2 now, and says so; agg1 still gets in.
kill -HUP "$node_pid"
i=0; while ! grep -q "reload" "$t/node.log" && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
sleep 0.2
status agg2; rc=$?
[ $rc -eq 1 ] && grep -q "revoked" "$t/out" && ok || { no "agg2 after its revocation and SIGHUP (exit $rc)"; cat "$t/out"; }
status agg1 && ok || { no "agg1 after the reload"; cat "$t/out"; }
grep -q "certificate revoked" "$t/node.log" && ok || { no "the node logs the revoked client"; cat "$t/node.log"; }

# crl: re-issued as it is, here for two days: the node warns at its reload.
expect 0 "crl --days 2" "$certs" crl --ca "$t/pki" --days 2
has "CRL number 4, 2 revoked" "crl: entries kept, number bumped"
kill -HUP "$node_pid"
i=0; while ! grep -q "its CRL (ssl_crl) expires in [12] days" "$t/node.log" && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
grep -q "its CRL (ssl_crl) expires in [12] days" "$t/node.log" && ok || { no "no CRL expiry warning"; cat "$t/node.log"; }
expect 0 "crl --out FILE: a new one" "$certs" crl --ca "$t/pki" --out "$t/elsewhere.pem"
has "CRL number 1, 0 revoked" "crl --out: a file of its own"

kill -TERM "$node_pid"; wait "$node_pid"; node_pid=
echo "tools_certs_crl: $pass passed, $fail failed"
[ $fail -eq 0 ]
