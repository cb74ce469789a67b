#!/bin/sh
# clink-admin end to end with real processes: an aggregator and two leaves
# from memsql.cnf files (one leaf keeps its TLS keys in an !include'd file),
# each with an account opsadmin (no password, REQUIRE SUBJECT of the
# administrator's certificate, grant ALL). clink-admin list shows the three
# with their ops ports; update-config --all sets a live key (applied), a
# restart key (needs a restart) and a bad value (refused on every node, every
# file byte-identical); the edit lands in the !include'd file where the key
# is, comments and other lines kept, FILE.bak kept; reload --all; restart
# under contrib/clink-supervise brings a leaf back as a new process, and a
# node without a supervisor says it cannot. Every change is logged with who.
set -u
bin=$1   # build dir
src=$(cd "$(dirname "$0")/.." && pwd)
base=${CLINK_TEST_TMP:-/tmp}
mkdir -p "$base" && t=$(mktemp -d "$base/tools_admin.XXXXXX") || exit 1
pids=""
cleanup() {
  for p in $pids; do kill -TERM "$p" 2>/dev/null; done
  for p in $pids; do wait "$p" 2>/dev/null; done
  rm -rf "$t"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM
pass=0 fail=0
ok() { pass=$((pass + 1)); }
no() { fail=$((fail + 1)); echo "FAIL: $*"; }
certs=$bin/tools/clink-certs accounts=$bin/tools/clink-accounts admin=$bin/tools/clink-admin
command -v openssl >/dev/null 2>&1 || { echo "tools_admin: openssl is not installed, skipped"; exit 77; }

"$certs" ca --out "$t/pki" >/dev/null 2>&1 || no "make CA"
for n in agg1 leaf1 leaf2 opsadmin; do
  "$certs" node --ca "$t/pki" --out "$t/pki" --name $n --dns localhost --ip 127.0.0.1 >/dev/null 2>&1 || no "make $n"
done
"$certs" node --ca "$t/pki" --out "$t/pki" --name leaf1b --dns localhost --ip 127.0.0.1 --days 50 >/dev/null 2>&1 ||
  no "make leaf1b"
subject=$(openssl x509 -in "$t/pki/opsadmin.pem" -noout -subject -nameopt compat | sed 's/^subject=//')
agg_subject=$(openssl x509 -in "$t/pki/agg1.pem" -noout -subject -nameopt compat | sed 's/^subject=//')

# node NAME [extra [server] lines...]: its folder, accounts and memsql.cnf
node_dir() {
  d=$t/$1; mkdir -p "$d"
  "$accounts" --file "$d/accounts.cnf" add opsadmin --require "SUBJECT '$subject'" --grant ALL >/dev/null 2>&1 ||
    no "$1: add opsadmin"
  "$accounts" --file "$d/accounts.cnf" add agg1 --require "SUBJECT '$agg_subject'" >/dev/null 2>&1 ||
    no "$1: add agg1 (the aggregator's login)"
  cp "$t/pki/ca.pem" "$t/pki/$1.pem" "$t/pki/$1-key.pem" "$d/"
}
start() { # NAME [supervised]
  d=$t/$1; rm -f "$d/port" "$d/ops.port"
  if [ "${2:-}" = supervised ]; then
    sh "$src/contrib/clink-supervise" "$bin/tools/clink-node" --config "$d/memsql.cnf" --port-file "$d/port" \
      --ops-port-file "$d/ops.port" 2>>"$d/node.log" &
  else
    "$bin/tools/clink-node" --config "$d/memsql.cnf" --port-file "$d/port" --ops-port-file "$d/ops.port" \
      2>>"$d/node.log" &
  fi
  pids="$pids $!"
  i=0; while { [ ! -s "$d/port" ] || [ ! -s "$d/ops.port" ]; } && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
  if [ ! -s "$d/port" ] || [ ! -s "$d/ops.port" ]; then no "$1 did not start"; cat "$d/node.log"; exit 1; fi
}

node_dir leaf1
cat >"$t/leaf1/memsql.cnf" <<CNF
# leaf1: its TLS files are kept in tls.cnf
[server]
port = 0
ops_port = 0
workers = 1
accounts_file = accounts.cnf
!include tls.cnf
CNF
cat >"$t/leaf1/tls.cnf" <<CNF
[server]
# the node's own pair
ssl_cert = leaf1.pem    # made by clink-certs
ssl_key = leaf1-key.pem
ssl_ca = ca.pem
CNF
node_dir leaf2
cat >"$t/leaf2/memsql.cnf" <<CNF
[client]
user = app

[server]
port = 0
ops_port = 0
workers = 1
ssl_cert = leaf2.pem
ssl_key = leaf2-key.pem
ssl_ca = ca.pem
accounts_file = accounts.cnf
CNF
start leaf1 supervised
start leaf2
node_dir agg1
cat >"$t/agg1/memsql.cnf" <<CNF
[server]
port = 0
ops_port = 0
workers = 1
ssl_cert = agg1.pem
ssl_key = agg1-key.pem
ssl_ca = ca.pem
accounts_file = accounts.cnf

[leaf leaf1]
host = 127.0.0.1
port = $(cat "$t/leaf1/port")
user = agg1

[leaf leaf2]
host = 127.0.0.1
port = $(cat "$t/leaf2/port")
user = agg1
CNF
start agg1

CLINK_ADMIN_HOST="127.0.0.1:$(cat "$t/agg1/ops.port")"
export CLINK_ADMIN_HOST CLINK_ADMIN_CA="$t/pki/ca.pem"
export CLINK_ADMIN_CERT="$t/pki/opsadmin.pem" CLINK_ADMIN_KEY="$t/pki/opsadmin-key.pem" CLINK_ADMIN_USER=opsadmin

"$admin" --help | grep -q "update-config" && ok || no "--help"
"$admin" list-nodes >/dev/null 2>&1; [ $? -eq 2 ] && ok || no "an unknown command is a usage error (2)"
"$admin" reload >/dev/null 2>&1; [ $? -eq 2 ] && ok || no "reload without nodes or --all is a usage error"

# list: every node with its ops port, once the pools are up
i=0
while [ $i -lt 300 ]; do
  "$admin" list >"$t/list" 2>&1
  [ "$(grep -c ' yes ' "$t/list")" = 3 ] && ! grep -q 'leaf[12] .* -  ' "$t/list" && break
  sleep 0.1; i=$((i + 1))
done
grep -q "^leaf1 .*leaf .*127.0.0.1:$(cat "$t/leaf1/port") *$(cat "$t/leaf1/ops.port") *yes *TLS" "$t/list" &&
  grep -q "^leaf2 .*leaf .*127.0.0.1:$(cat "$t/leaf2/port") *$(cat "$t/leaf2/ops.port") *yes" "$t/list" &&
  grep -q "aggregator.*REQUIRE_TLS.*(asked)" "$t/list" && ok || { no "list"; cat "$t/list"; }
[ "$("$admin" list -q -r leaf | tr '\n' ' ')" = "leaf1 leaf2 " ] && ok || no "list -q -r leaf"
"$admin" list -r master >/dev/null 2>&1; [ $? -eq 2 ] && ok || no "-r takes leaf or aggregator"

# Without the administrator's certificate: refused (401), nothing changed.
cp "$t/leaf2/memsql.cnf" "$t/leaf2.orig"
CLINK_ADMIN_CERT="$t/pki/leaf2.pem" CLINK_ADMIN_KEY="$t/pki/leaf2-key.pem" \
  "$admin" update-config leaf2 --key max_connections --value 99 >"$t/out" 2>&1
[ $? -eq 1 ] && grep -q "leaf2: failed" "$t/out" && cmp -s "$t/leaf2/memsql.cnf" "$t/leaf2.orig" && ok ||
  { no "another certificate is refused"; cat "$t/out"; }

# A bad value on every node: refused, every file as it was.
for n in agg1 leaf1 leaf2; do cp "$t/$n/memsql.cnf" "$t/$n.orig"; done
cp "$t/leaf1/tls.cnf" "$t/leaf1-tls.orig"
"$admin" update-config --all --key ssl_ca --value missing.pem >"$t/out" 2>&1
[ $? -eq 1 ] && [ "$(grep -c ': refused.*missing.pem' "$t/out")" = 3 ] && ok || { no "a missing file is refused"; cat "$t/out"; }
for n in agg1 leaf1 leaf2; do cmp -s "$t/$n/memsql.cnf" "$t/$n.orig" || no "$n's file changed by a refusal"; done
cmp -s "$t/leaf1/tls.cnf" "$t/leaf1-tls.orig" && [ ! -e "$t/leaf1/tls.cnf.bak" ] && ok || no "leaf1's tls.cnf changed"
"$admin" update-config leaf1 --key ssl_sertificate --value x >"$t/out" 2>&1
[ $? -eq 1 ] && grep -q "not a \[server\] key" "$t/out" && ok || { no "an unknown key is refused"; cat "$t/out"; }

# A certificate without its key: the whole result is checked before anything is written.
cp "$t/pki/leaf1b.pem" "$t/leaf1/"
"$admin" update-config leaf1 --key ssl_cert --value leaf1b.pem >"$t/out" 2>&1
[ $? -eq 1 ] && grep -q "leaf1: refused.*match" "$t/out" && cmp -s "$t/leaf1/tls.cnf" "$t/leaf1-tls.orig" && ok ||
  { no "a certificate that does not match the key is refused"; cat "$t/out"; }

# ... and with its key, as one change: applied; then back to the first pair the same way.
cp "$t/pki/leaf1b-key.pem" "$t/leaf1/" || no "leaf1b's key"
"$admin" update-config leaf1 --key ssl_cert --value leaf1b.pem --key ssl_key --value leaf1b-key.pem >"$t/out" 2>&1 &&
  grep -q "leaf1: applied in $t/leaf1/tls.cnf" "$t/out" && grep -qx 'ssl_key = leaf1b-key.pem' "$t/leaf1/tls.cnf" && ok ||
  { no "a certificate with its key, as one change"; cat "$t/out"; }
"$admin" update-config leaf1 --key ssl_cert --value leaf1.pem --key ssl_key --value leaf1-key.pem >"$t/out" 2>&1 &&
  cmp -s "$t/leaf1/tls.cnf" "$t/leaf1-tls.orig" && ok || { no "and back"; cat "$t/out"; diff "$t/leaf1-tls.orig" "$t/leaf1/tls.cnf"; }
"$admin" update-config leaf1 --key ssl_cert --value leaf1b.pem --key ssl_key >"$t/out" 2>&1
[ $? -eq 2 ] && ok || { no "a key without a value is a usage error"; cat "$t/out"; }

# The document's step: ssl_ca on every node (live), in the included file where leaf1 has it.
for n in agg1 leaf1 leaf2; do cp "$t/pki/ca.pem" "$t/$n/ca-cert.pem"; done
"$admin" update-config --all --key ssl_ca --value ./ca-cert.pem >"$t/out" 2>&1
[ $? -eq 0 ] && [ "$(grep -c ': applied in ' "$t/out")" = 3 ] && grep -q "^leaf1: applied in $t/leaf1/tls.cnf" "$t/out" &&
  ok || { no "update-config --all ssl_ca"; cat "$t/out"; }
grep -qx 'ssl_ca = ./ca-cert.pem' "$t/leaf1/tls.cnf" && grep -qx '# the node.s own pair' "$t/leaf1/tls.cnf" &&
  grep -qx 'ssl_cert = leaf1.pem    # made by clink-certs' "$t/leaf1/tls.cnf" && cmp -s "$t/leaf1/memsql.cnf" "$t/leaf1.orig" &&
  ok || { no "leaf1: only the ssl_ca line of tls.cnf changed"; cat "$t/leaf1/tls.cnf"; }
cmp -s "$t/leaf1/tls.cnf.bak" "$t/leaf1-tls.orig" && ok || no "leaf1: tls.cnf.bak is the file as it was"
diff "$t/leaf2.orig" "$t/leaf2/memsql.cnf" | grep -q '^> ssl_ca = ./ca-cert.pem' &&
  [ "$(diff "$t/leaf2.orig" "$t/leaf2/memsql.cnf" | grep -c '^[<>]')" = 2 ] && ok ||
  { no "leaf2: one line changed"; diff "$t/leaf2.orig" "$t/leaf2/memsql.cnf"; }
grep -q "config: ssl_ca = ./ca-cert.pem by 'opsadmin'@'127.0.0.1' certificate .*CN=opsadmin.*: applied" "$t/leaf2/node.log" &&
  ok || { no "the change is logged with who made it"; cat "$t/leaf2/node.log"; }
"$admin" update-config leaf2 --key ssl_ca --value ./ca-cert.pem >"$t/out" 2>&1 && grep -q "leaf2: unchanged" "$t/out" &&
  ok || { no "the same value again: unchanged"; cat "$t/out"; }

# A key that needs a restart: written, said so; a new key goes into [server].
"$admin" update-config leaf2 --key max-connections --value 300 >"$t/out" 2>&1 &&
  grep -q "leaf2: changed, needs a restart" "$t/out" && ok || { no "max_connections needs a restart"; cat "$t/out"; }
sed -n '/^\[server\]$/,$p' "$t/leaf2/memsql.cnf" | grep -qx 'max_connections = 300' && ok ||
  { no "max_connections added to [server]"; cat "$t/leaf2/memsql.cnf"; }

# reload --all
"$admin" reload --all >"$t/out" 2>&1 && [ "$(grep -c ': ok' "$t/out")" = 3 ] && ok || { no "reload --all"; cat "$t/out"; }

# restart: leaf2 has no supervisor; leaf1 (clink-supervise) comes back as a new process, its port the same file.
"$admin" restart leaf2 >"$t/out" 2>&1
[ $? -eq 1 ] && grep -q "leaf2: failed.*cannot restart itself" "$t/out" && ok || { no "restart without a supervisor"; cat "$t/out"; }
# Its ports were any free ones (0): pinned to the ones it has, so that it comes back where the others look.
"$admin" update-config leaf1 --key port --value "$(cat "$t/leaf1/port")" >"$t/out" 2>&1 &&
  "$admin" update-config leaf1 --key ops_port --value "$(cat "$t/leaf1/ops.port")" >>"$t/out" 2>&1 &&
  [ "$(grep -c "leaf1: changed, needs a restart" "$t/out")" = 2 ] && ok || { no "pin leaf1's ports"; cat "$t/out"; }
"$admin" restart leaf1 >"$t/out" 2>&1
rc=$?
[ $rc -eq 0 ] && grep -q "leaf1: restarted, back in" "$t/out" && ok ||
  { no "restart leaf1 under clink-supervise (exit $rc)"; cat "$t/out"; tail -60 "$t/leaf1/node.log"; ps -ef | grep -c "[c]link-node"; }
i=0
while [ $i -lt 300 ]; do
  "$admin" list >"$t/list" 2>&1
  grep -q "^leaf1 .* yes " "$t/list" && break
  sleep 0.1; i=$((i + 1))
done
grep -q "^leaf1 .* yes " "$t/list" && ok || { no "leaf1 is up again for the aggregator"; cat "$t/list"; }
grep -q "restart asked by 'opsadmin'" "$t/leaf1/node.log" && grep -q "clink-supervise: .* asked for a restart" "$t/leaf1/node.log" &&
  ok || { no "leaf1's log says who restarted it"; cat "$t/leaf1/node.log"; }

# rotate-certs: a CA that did not issue them is refused, nothing changed; then every node gets a new pair from the
# cluster's CA, with its subject and names, the key made on the node (mode 0600), the old pair kept as .bak.
"$certs" ca --out "$t/other" --cn "other CA" >/dev/null 2>&1 || no "make another CA"
"$admin" rotate-certs --ca "$t/other" leaf2 >"$t/out" 2>&1
[ $? -eq 1 ] && grep -q "leaf2: refused.*does not verify" "$t/out" && [ ! -e "$t/leaf2/leaf2.pem.bak" ] && ok ||
  { no "rotate-certs with another CA is refused"; cat "$t/out"; }
for n in agg1 leaf1 leaf2; do cp "$t/$n/$n.pem" "$t/$n.cert.orig"; done
"$admin" rotate-certs --ca "$t/pki" --days 30 --all >"$t/out" 2>&1 &&
  [ "$(grep -c ': new certificate installed and applied' "$t/out")" = 3 ] && ok || { no "rotate-certs --all"; cat "$t/out"; }
for n in agg1 leaf1 leaf2; do
  old_serial=$(openssl x509 -in "$t/$n.cert.orig" -noout -serial) new_serial=$(openssl x509 -in "$t/$n/$n.pem" -noout -serial)
  [ "$old_serial" != "$new_serial" ] &&
    [ "$(openssl x509 -in "$t/$n/$n.pem" -noout -subject)" = "$(openssl x509 -in "$t/$n.cert.orig" -noout -subject)" ] &&
    [ "$(openssl x509 -in "$t/$n/$n.pem" -noout -ext subjectAltName)" = "$(openssl x509 -in "$t/$n.cert.orig" -noout -ext subjectAltName)" ] &&
    openssl x509 -in "$t/$n/$n.pem" -noout -checkend $((29 * 86400)) >/dev/null &&
    ! openssl x509 -in "$t/$n/$n.pem" -noout -checkend $((31 * 86400)) >/dev/null &&
    openssl verify -CAfile "$t/pki/ca.pem" "$t/$n/$n.pem" >/dev/null 2>&1 &&
    [ "$(stat -c %a "$t/$n/$n-key.pem")" = 600 ] && cmp -s "$t/$n/$n.pem.bak" "$t/$n.cert.orig" &&
    openssl x509 -in "$t/$n/$n.pem" -noout -pubkey | cmp -s - "$(openssl pkey -in "$t/$n/$n-key.pem" -pubout >"$t/pub" && echo "$t/pub")" &&
    ok || no "$n: a new pair, same identity, 30 days, from the CA, key 0600, old kept"
done
grep -q "certificate renewal by 'opsadmin'.*installed and applied" "$t/leaf2/node.log" && ok ||
  { no "the renewal is logged with who"; cat "$t/leaf2/node.log"; }
# The nodes serve the new certificates: a fresh list (new handshakes) still verifies every node.
"$admin" reload --all >"$t/out" 2>&1 && [ "$(grep -c ': ok' "$t/out")" = 3 ] && ok ||
  { no "reload --all after the rotation"; cat "$t/out"; }

# replace-issuer: a CA rollover's step for the accounts. leaf2 has an account that requires the cluster CA as issuer.
ca_subject=$(openssl x509 -in "$t/pki/ca.pem" -noout -subject -nameopt compat | sed 's/^subject=//')
"$accounts" --file "$t/leaf2/accounts.cnf" add svc --require "ISSUER '$ca_subject'" >/dev/null 2>&1 &&
  "$admin" reload leaf2 >/dev/null 2>&1 || no "add svc (REQUIRE ISSUER the CA)"
"$admin" replace-issuer --from "$ca_subject" --to "/CN=cluster CA 2" --all >"$t/out" 2>&1 &&
  grep -q "^leaf2: ok: 1 account(s) now require the new issuer" "$t/out" &&
  grep -q "^leaf1: ok: 0 account(s)" "$t/out" && sed -n '/^\[svc@%\]/,/^\[/p' "$t/leaf2/accounts.cnf" |
  grep -qx "require_issuer = /CN=cluster CA 2" && ok || { no "replace-issuer --all"; cat "$t/out"; cat "$t/leaf2/accounts.cnf"; }
"$admin" replace-issuer --from "$ca_subject" --to "/CN=it's" leaf2 >"$t/out" 2>&1
[ $? -eq 1 ] && grep -q "leaf2: refused" "$t/out" && ok || { no "an issuer with a quote is refused"; cat "$t/out"; }
"$admin" replace-issuer --to "/CN=x" leaf2 >/dev/null 2>&1
[ $? -eq 2 ] && ok || no "replace-issuer without --from is a usage error"

# Revocation through clink-admin: leaf2's certificate revoked, the CRL set on the others (checked and applied live),
# then reload --all: the aggregator's links to leaf2 close (GOAWAY) and its pool cannot dial it again.
# Both of leaf2's certificates: the one rotate-certs installed and the one its links still carry (now leaf2.pem.bak).
"$certs" revoke --ca "$t/pki" --cert "$t/leaf2/leaf2.pem" --reason keyCompromise >"$t/out" 2>&1 &&
  "$certs" revoke --ca "$t/pki" --cert "$t/leaf2/leaf2.pem.bak" --reason keyCompromise >>"$t/out" 2>&1 ||
  { no "clink-certs revoke leaf2"; cat "$t/out"; }
"$admin" list -q -r aggregator | xargs "$admin" update-config leaf1 --key ssl_crl --value "$t/pki/crl.pem" >"$t/out" 2>&1 &&
  [ "$(grep -c ': applied in ' "$t/out")" = 2 ] && ok || { no "ssl_crl on agg1 and leaf1"; cat "$t/out"; }
"$admin" reload --all >"$t/out" 2>&1
i=0
while [ $i -lt 300 ]; do
  "$admin" list >"$t/list" 2>&1
  grep -q "^leaf2 .* no " "$t/list" && break
  sleep 0.1; i=$((i + 1))
done
grep -q "^leaf2 .* no " "$t/list" && grep -q "^leaf1 .* yes " "$t/list" && ok ||
  { no "after reload --all leaf2 (revoked) is down for the aggregator, leaf1 up"; cat "$t/list"; }
grep -q "peer certificate revoked.*leaf2.*GOAWAY\|revoked.*CN=leaf2" "$t/agg1/node.log" && ok ||
  { no "the aggregator logs leaf2's links closed as revoked"; grep -i revoked "$t/agg1/node.log" | head -3; }

for n in agg1 leaf1 leaf2; do
  grep -q "ERROR: AddressSanitizer\|runtime error" "$t/$n/node.log" && no "$n: sanitizer report" && cat "$t/$n/node.log"
done
echo "tools_admin: $pass passed, $fail failed"
[ $fail -eq 0 ]
