#!/bin/sh
# The HTTPS operations endpoint, end to end with real processes and curl
# (always --cacert, never -k): clink-node serves /metrics and /status on an
# ephemeral ops port; clink-certs ops-set-cert refuses a mismatched pair
# without touching anything, then installs a certificate from another CA and
# edits only the two config lines; POST /reload (admin only: 403 for an
# account without grant ALL, 401 without credentials) makes the node serve it;
# POST /secure-transport and an edited config + SIGHUP change the transport
# security live. The node must exit 0 on SIGTERM with no sanitizer report.
set -u
bin=$1 # build dir
t=$(mktemp -d)
node_pid=
cleanup() { [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null; rm -rf "$t"; }
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
no() { fail=$((fail + 1)); echo "FAIL: $*"; }
certs=$bin/tools/clink-certs
accounts=$bin/tools/clink-accounts
command -v curl >/dev/null 2>&1 || { echo "tools_ops: curl is not installed, skipped"; exit 77; }

# The cluster's CA and the node's certificate; a second, unrelated CA ("the company's web CA") for HTTPS.
"$certs" ca --out "$t/pki" >/dev/null 2>&1 || no "make CA"
"$certs" node --ca "$t/pki" --out "$t/pki" --name node1 --dns localhost --ip 127.0.0.1 >/dev/null 2>&1 || no "make node1"
"$certs" ca --out "$t/web" --cn "web CA" >/dev/null 2>&1 || no "make the second CA"
"$certs" node --ca "$t/web" --out "$t/web" --name web --dns localhost --ip 127.0.0.1 --days 20 >/dev/null 2>&1 ||
  no "make the HTTPS certificate"
ca1=$t/pki/ca.pem ca2=$t/web/ca.pem

acc=$t/pki/accounts.cnf
printf 'adminpw\n' | "$accounts" --file "$acc" add admin --require SSL --password-stdin --grant ALL >/dev/null &&
  ok || no "add admin (grant ALL)"
printf 'viewerpw\n' | "$accounts" --file "$acc" add viewer --require SSL --password-stdin >/dev/null &&
  ok || no "add viewer (no grant)"

conf=$t/pki/memsql.cnf
cat >"$conf" <<CNF
# clink-node's config; ops-set-cert must keep this comment, [client] and every other line
[client]
user = app

[server]
; the HTTPS endpoint on any free port (written to --ops-port-file)
ops_port = 0
ssl_cert = node1.pem
ssl_key = node1-key.pem
ssl_ca = ca.pem
accounts_file = accounts.cnf
port = 0
workers = 1
CNF
cp "$conf" "$t/conf.orig"

"$bin/tools/clink-node" --config "$conf" --port-file "$t/port" --ops-port-file "$t/ops.port" 2>"$t/node.log" &
node_pid=$!
i=0; while { [ ! -s "$t/port" ] || [ ! -s "$t/ops.port" ]; } && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
oport=$(cat "$t/ops.port" 2>/dev/null)
[ -n "$oport" ] && [ -s "$t/port" ] && ok || { no "clink-node did not start"; cat "$t/node.log"; exit 1; }
url=https://127.0.0.1:$oport

# get CA PATH: the HTTP status on stdout ("000": no answer, e.g. the certificate did not verify), body in $t/body
get() {
  curl -sS --max-time 10 --cacert "$1" -o "$t/body" -w '%{http_code}' "$url$2" 2>"$t/curl.err"
}
# post CA USER:PASS|"" PATH BODY [CONTENT-TYPE]: likewise
post() {
  if [ -n "$2" ]; then
    curl -sS --max-time 10 --cacert "$1" -u "$2" -H "Content-Type: ${5:-application/json}" -d "$4" \
      -o "$t/body" -w '%{http_code}' "$url$3" 2>"$t/curl.err"
  else
    curl -sS --max-time 10 --cacert "$1" -H "Content-Type: ${5:-application/json}" -d "$4" \
      -o "$t/body" -w '%{http_code}' "$url$3" 2>"$t/curl.err"
  fi
}
# metrics_have CA LINE: poll /metrics (5 s) until it has LINE exactly
metrics_have() {
  i=0
  while [ $i -lt 100 ]; do
    [ "$(get "$1" /metrics)" = 200 ] && grep -qxF "$2" "$t/body" && return 0
    sleep 0.05; i=$((i + 1))
  done
  return 1
}

code=$(get "$ca1" /metrics)
[ "$code" = 200 ] && ok || { no "GET /metrics: $code"; cat "$t/curl.err"; }
grep -q '^clink_cert_expiry_seconds{use="https",kind="own",subject="CN=node1"' "$t/body" && ok ||
  { no "/metrics has the HTTPS certificate's expiry"; cat "$t/body"; }
grep -qxF 'clink_secure_transport{state="REQUIRE_TLS"} 1' "$t/body" && ok || { no "/metrics: REQUIRE_TLS"; cat "$t/body"; }
code=$(get "$ca1" /status)
if command -v python3 >/dev/null 2>&1; then
  [ "$code" = 200 ] && python3 -m json.tool "$t/body" >/dev/null 2>&1 && ok || { no "GET /status is JSON ($code)"; cat "$t/body"; }
else
  [ "$code" = 200 ] && grep -q '^{' "$t/body" && ok || { no "GET /status is JSON ($code)"; cat "$t/body"; }
fi
grep -q '"secure_transport":[ ]*"REQUIRE_TLS"' "$t/body" && ok || { no "/status: secure_transport"; cat "$t/body"; }
[ "$(get "$ca2" /metrics)" = 000 ] && ok || no "before ops-set-cert the second CA is not trusted"

# A key of another certificate: exit 1, the reason names the key file, and nothing is touched.
"$certs" ops-set-cert --config "$conf" --cert "$t/web/web.pem" --key "$t/pki/node1-key.pem" >"$t/out" 2>&1
[ $? -eq 1 ] && grep -q "node1-key.pem: key does not match" "$t/out" && ok || { no "mismatched key refused"; cat "$t/out"; }
cmp -s "$conf" "$t/conf.orig" && ok || no "the config is byte-identical after a refused ops-set-cert"
[ ! -e "$t/pki/ops-cert.pem" ] && [ ! -e "$t/pki/ops-key.pem" ] && ok || no "nothing installed after a refusal"
# A certificate that does not chain to --ca: refused too.
"$certs" ops-set-cert --config "$conf" --cert "$t/web/web.pem" --key "$t/web/web-key.pem" --ca "$ca1" >"$t/out" 2>&1
[ $? -eq 1 ] && cmp -s "$conf" "$t/conf.orig" && ok || { no "a certificate not from --ca is refused"; cat "$t/out"; }
"$certs" ops-set-cert --config "$conf" --cert "$t/web/web.pem" >"$t/out" 2>&1
[ $? -eq 2 ] && grep -q "ops-set-cert --help" "$t/out" && ok || { no "missing --key: usage error (2)"; cat "$t/out"; }

# The right pair.
"$certs" ops-set-cert --config "$conf" --cert "$t/web/web.pem" --key "$t/web/web-key.pem" --ca "$ca2" >"$t/out" 2>&1
[ $? -eq 0 ] && ok || { no "ops-set-cert with the right pair"; cat "$t/out"; }
grep -q "kill -HUP" "$t/out" && grep -q "/reload" "$t/out" && ok || { no "it says how to apply it"; cat "$t/out"; }
sed -n '/^\[server\]$/,$p' "$conf" | grep -qx 'ops_ssl_cert = ops-cert.pem' &&
  sed -n '/^\[server\]$/,$p' "$conf" | grep -qx 'ops_ssl_key = ops-key.pem' && ok ||
  { no "the config's [server] names the installed pair"; cat "$conf"; }
grep -vx -e 'ops_ssl_cert = ops-cert.pem' -e 'ops_ssl_key = ops-key.pem' "$conf" | cmp -s - "$t/conf.orig" && ok ||
  { no "every other line of the config is unchanged"; diff "$t/conf.orig" "$conf"; }
cmp -s "$t/pki/ops-cert.pem" "$t/web/web.pem" && cmp -s "$t/pki/ops-key.pem" "$t/web/web-key.pem" && ok ||
  no "ops-cert.pem and ops-key.pem are copies"
[ "$(stat -c %a "$t/pki/ops-key.pem")" = 600 ] && ok || no "ops-key.pem is mode 0600"
# Installed, not applied: the node serves the old certificate until it reloads.
[ "$(get "$ca1" /metrics)" = 200 ] && ok || no "the old certificate is served until a reload"

# Who may reload: no credentials 401, a wrong password 401, an account without grant ALL 403, not JSON 415.
code=$(post "$ca1" "" /reload '{}')
[ "$code" = 401 ] && ok || no "POST /reload without credentials: $code, not 401"
code=$(post "$ca1" admin:wrong /reload '{}')
[ "$code" = 401 ] && ok || no "POST /reload with a wrong password: $code, not 401"
code=$(post "$ca1" viewer:viewerpw /reload '{}')
[ "$code" = 403 ] && ok || { no "POST /reload as viewer: $code, not 403"; cat "$t/body"; }
grep -q "ops: POST /reload by 'viewer'@'127.0.0.1' refused (403): the account does not hold grant ALL" "$t/node.log" &&
  grep -q "ops: POST /reload by 'admin'@'127.0.0.1' refused (401)" "$t/node.log" && ok ||
  { no "refused POSTs are logged with who and why"; cat "$t/node.log"; }
code=$(post "$ca1" admin:adminpw /reload 'a=b' application/x-www-form-urlencoded)
[ "$code" = 415 ] && ok || no "POST /reload as a form: $code, not 415"
[ "$(get "$ca1" /metrics)" = 200 ] && ok || no "refused POSTs reloaded nothing"

code=$(post "$ca1" admin:adminpw /reload '{}')
[ "$code" = 200 ] && ok || { no "POST /reload as admin: $code"; cat "$t/body" "$t/node.log"; }
code=$(get "$ca2" /metrics)
[ "$code" = 200 ] && ok || { no "after the reload the new certificate is served ($code)"; cat "$t/curl.err"; }
# Its expiry: CN=web, 20 days at most.
exp=$(sed -n 's/^clink_cert_expiry_seconds{use="https",kind="own",subject="CN=web".*} \(-\{0,1\}[0-9]*\)$/\1/p' "$t/body")
[ -n "$exp" ] && [ "$exp" -gt 0 ] && [ "$exp" -le $((20 * 86400)) ] && ok ||
  { no "/metrics: the HTTPS certificate is CN=web, 20 days ($exp)"; grep '^clink_cert_expiry' "$t/body"; }
code=$(get "$ca1" /metrics)
[ "$code" = 000 ] && ok || no "a client trusting only the first CA now fails ($code)"
get "$ca2" /status >/dev/null && grep -q '"last_reload"' "$t/body" && ok || { no "/status: last_reload"; cat "$t/body"; }

# Transport security, live: POST /secure-transport as admin ...
code=$(post "$ca2" viewer:viewerpw /secure-transport '{"state":"PREFER_TLS"}')
[ "$code" = 403 ] && ok || no "POST /secure-transport as viewer: $code, not 403"
code=$(post "$ca2" admin:adminpw /secure-transport '{"state":"PREFER_TLS"}')
[ "$code" = 200 ] && ok || { no "POST /secure-transport PREFER_TLS: $code"; cat "$t/body"; }
metrics_have "$ca2" 'clink_secure_transport{state="PREFER_TLS"} 1' &&
  grep -qxF 'clink_secure_transport{state="REQUIRE_TLS"} 0' "$t/body" && ok ||
  { no "/metrics shows PREFER_TLS"; grep '^clink_secure_transport' "$t/body"; }
# ... and the config file + SIGHUP (the signal path).
sed 's/^\[server\]$/[server]\nrequire_secure_transport = ACCEPT_BOTH/' "$conf" >"$t/conf.new" && cat "$t/conf.new" >"$conf"
kill -HUP "$node_pid"
metrics_have "$ca2" 'clink_secure_transport{state="ACCEPT_BOTH"} 1' && ok ||
  { no "after SIGHUP /metrics shows ACCEPT_BOTH"; grep '^clink_secure_transport' "$t/body"; cat "$t/node.log"; }
grep -q "require_secure_transport ACCEPT_BOTH: now in effect.*(SIGHUP)" "$t/node.log" && ok ||
  { no "the node's log reports the SIGHUP reload"; cat "$t/node.log"; }
[ "$(get "$ca2" /metrics)" = 200 ] && ok || no "the SIGHUP reload kept the installed HTTPS certificate"

# An operator logs in by certificate (no password to guess or lock out): an account REQUIRE SUBJECT with grant ALL,
# curl presenting the cluster's certificate with "user:" and no password. Without the certificate it is nobody.
subject=$(openssl x509 -in "$t/pki/node1.pem" -noout -subject -nameopt compat | sed 's/^subject=//')
"$accounts" --file "$acc" add opsadmin --require "SUBJECT '$subject'" --grant ALL >/dev/null 2>&1 &&
  kill -HUP "$node_pid" && sleep 0.5 && ok || no "add opsadmin (REQUIRE SUBJECT '$subject', grant ALL)"
code=$(curl -sS --max-time 10 --cacert "$ca2" --cert "$t/pki/node1.pem" --key "$t/pki/node1-key.pem" -u opsadmin: \
  -H "Content-Type: application/json" -d '{"state":"ACCEPT_BOTH"}' -o "$t/body" -w '%{http_code}' \
  "$url/secure-transport" 2>"$t/curl.err")
[ "$code" = 200 ] && ok || { no "POST as opsadmin with its certificate: $code"; cat "$t/body" "$t/curl.err"; }
code=$(post "$ca2" opsadmin: /secure-transport '{"state":"ACCEPT_BOTH"}')
[ "$code" = 401 ] && ok || no "POST as opsadmin without a certificate: $code, not 401"

kill -TERM "$node_pid"; wait "$node_pid"; rc=$?; node_pid=
[ $rc -eq 0 ] && ok || { no "clink-node exit status $rc after SIGTERM"; cat "$t/node.log"; }
grep -q "Sanitizer\|runtime error:" "$t/node.log" && { no "sanitizer report in the node's log"; cat "$t/node.log"; } || ok

echo "tools_ops: $pass passed, $fail failed"
[ $fail -eq 0 ]
