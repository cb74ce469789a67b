#!/bin/sh
# Accounts and reload, end to end with the tools: clink-accounts writes the
# file, clink-node checks logins against it, clink-status logs in (by
# certificate or password) and gets exactly "Access denied ..." when refused;
# SIGHUP rotates the node's certificate, keeps the old one when the new files
# are broken, and reloads the accounts.
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

"$accounts" --help >/dev/null 2>&1 && ok || no "clink-accounts --help"
"$accounts" --no-such-flag >/dev/null 2>&1; [ $? -eq 2 ] && ok || no "clink-accounts: bad flag should exit 2"
"$accounts" --file "$t/a.cnf" frobnicate root >/dev/null 2>&1; [ $? -eq 2 ] && ok || no "unknown command exits 2"

"$certs" ca --out "$t/pki" >/dev/null 2>&1 || no "make CA"
for n in leaf1 agg1 agg2; do
  "$certs" node --ca "$t/pki" --out "$t/pki" --name $n --dns localhost --ip 127.0.0.1 >/dev/null 2>&1 || no "make $n"
done

acc=$t/pki/accounts.cnf
"$accounts" --file "$acc" add root --require "SUBJECT '/CN=agg1'" >/dev/null 2>"$t/out" && ok || no "add root"
grep -q "note: 'root'@'%' has no password: it logs in only with a verified client certificate" "$t/out" && ok ||
  { no "a password-less add says what stands for the password"; cat "$t/out"; }
printf 's3cret\n' | "$accounts" --file "$acc" add app@127.0.0.% --require SSL --password-stdin >/dev/null 2>"$t/out" &&
  ok || no "add app with a password"
[ ! -s "$t/out" ] && ok || { no "a password account gets no note"; cat "$t/out"; }
grep -q mysql_native_password "$acc" && no "an account without --native-password keeps the SHA1 verifier" || ok
"$accounts" --file "$acc" add base@127.0.0.% --plaintext-no-password ON >"$t/out" 2>&1
[ $? -eq 1 ] && grep -q "plaintext_no_password needs a literal host" "$t/out" && ok ||
  { no "--plaintext-no-password ON for a pattern host is refused"; cat "$t/out"; }
"$accounts" --file "$acc" add base@127.0.0.1 --plaintext-no-password ON >/dev/null 2>"$t/out" &&
  grep -A3 '^\[base@127.0.0.1\]' "$acc" | grep -q '^plaintext_no_password = ON$' &&
  grep -q "warning: 'base'@'127.0.0.1' has no password and plaintext_no_password = ON" "$t/out" && ok ||
  { no "--plaintext-no-password ON for a literal host, with a warning"; cat "$t/out"; }
"$accounts" --file "$acc" drop base@127.0.0.1 >/dev/null || no "drop base"
"$accounts" --file "$acc" add root --require X509 >"$t/out" 2>&1
[ $? -eq 1 ] && grep -q "exists" "$t/out" && ok || { no "adding twice is refused"; cat "$t/out"; }
"$accounts" --file "$acc" add bad --require "SUBJECT" >"$t/out" 2>&1
[ $? -eq 1 ] && grep -q "SUBJECT needs a quoted value" "$t/out" && ok || { no "bad REQUIRE is refused"; cat "$t/out"; }
[ "$(stat -c %a "$acc")" = 600 ] && ok || no "accounts file mode 0600"
grep -q s3cret "$acc" && no "the password itself is in the file" || ok
"$accounts" --file "$acc" alter app@127.0.0.% --native-password ON >"$t/out" 2>&1
[ $? -eq 1 ] && grep -q "give the password with it" "$t/out" && ok ||
  { no "--native-password ON without the password is refused"; cat "$t/out"; }
printf 's3cret\n' | "$accounts" --file "$acc" alter app@127.0.0.% --legacy-native-tls ON --password-stdin >/dev/null &&
  grep -A6 '^\[app@127.0.0.%\]' "$acc" | grep -q '^legacy_native_tls = ON$' &&
  grep -A6 '^\[app@127.0.0.%\]' "$acc" | grep -q '^mysql_native_password = \*' && ok ||
  no "--legacy-native-tls ON (with the password) is written, with the verifier it implies"
"$accounts" --file "$acc" alter app@127.0.0.% --legacy-native-tls OFF >/dev/null &&
  ! grep -q legacy_native_tls "$acc" && ok || no "--legacy-native-tls OFF is written"
"$accounts" --file "$acc" alter app@127.0.0.% --legacy-native-tls MAYBE >"$t/out" 2>&1
[ $? -eq 1 ] && grep -q "ON or OFF" "$t/out" && ok || { no "--legacy-native-tls MAYBE is refused"; cat "$t/out"; }
"$accounts" --file "$acc" alter app@127.0.0.% --native-password OFF >/dev/null && ! grep -q native_password "$acc" &&
  ok || no "--native-password OFF drops the verifier"

cat >"$t/pki/memsql.cnf" <<CNF
[server]
ops_port = 0
ssl_cert = leaf1.pem
ssl_key = leaf1-key.pem
ssl_ca = ca.pem
accounts_file = accounts.cnf
port = 0
workers = 1
CNF
"$bin/tools/clink-node" --config "$t/pki/memsql.cnf" --port-file "$t/port" 2>"$t/node.log" &
node_pid=$!
i=0; while [ ! -s "$t/port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
port=$(cat "$t/port" 2>/dev/null)
[ -n "$port" ] && ok || { no "clink-node did not start"; cat "$t/node.log"; exit 1; }

status() { # cert-name, extra args...
  c=$1; shift
  "$bin/tools/clink-status" --host 127.0.0.1 --port "$port" --ssl-cert "$t/pki/$c.pem" --ssl-key "$t/pki/$c-key.pem" \
    --ssl-ca "$t/pki/ca.pem" --timeout-ms 5000 "$@"
}

status agg1 --user root >"$t/s" 2>&1
[ $? -eq 0 ] && grep -q '^Current user: root@%$' "$t/s" && grep -q '^Current user: root$' "$t/s" && ok ||
  { no "certificate login as root"; cat "$t/s"; }
status agg2 --user root >"$t/s" 2>&1
[ $? -eq 1 ] && grep -q "Access denied for user 'root'@'127.0.0.1'$" "$t/s" && ok ||
  { no "agg2 is not root's subject: Access denied"; cat "$t/s"; }
grep -q "requires subject '/CN=agg1'" "$t/node.log" && ok || { no "the node's log says why"; cat "$t/node.log"; }
status agg2 --user nobody >"$t/s" 2>&1
[ $? -eq 1 ] && grep -q "Access denied for user 'nobody'@'127.0.0.1'$" "$t/s" && ok || { no "unknown user"; cat "$t/s"; }
CLINK_PWD=s3cret status agg2 --user app >"$t/s" 2>&1
[ $? -eq 0 ] && grep -q '^Current user: app@127.0.0.%$' "$t/s" && ok || { no "password login inside TLS"; cat "$t/s"; }
status agg2 --user app --password wrong >"$t/s" 2>&1
[ $? -eq 1 ] && grep -q "Access denied for user 'app'@'127.0.0.1'$" "$t/s" && ok || { no "wrong password"; cat "$t/s"; }

# Rotation: new files in place, SIGHUP, new connections see the new certificate.
"$certs" node --ca "$t/pki" --out "$t/new" --name leaf1-rotated --dns localhost --ip 127.0.0.1 >/dev/null 2>&1 ||
  no "make rotated cert"
cp "$t/new/leaf1-rotated.pem" "$t/pki/leaf1.pem" && cp "$t/new/leaf1-rotated-key.pem" "$t/pki/leaf1-key.pem"
kill -HUP "$node_pid"
i=0; while ! grep -q "TLS credentials replaced" "$t/node.log" && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
status agg1 --user root >"$t/s" 2>&1
[ $? -eq 0 ] && grep -q '^Peer certificate subject: CN=leaf1-rotated$' "$t/s" && ok ||
  { no "SIGHUP rotated the certificate"; cat "$t/s" "$t/node.log"; }

# A broken rotation (key of another certificate) is refused and the node keeps serving the current one.
cp "$t/pki/agg2-key.pem" "$t/pki/leaf1-key.pem"
kill -HUP "$node_pid"
i=0; while ! grep -q "keeping the credentials in use" "$t/node.log" && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
grep -q "reload: TLS: .*keeping the credentials in use" "$t/node.log" && ok || { no "bad reload reported"; cat "$t/node.log"; }
status agg1 --user root >"$t/s" 2>&1
[ $? -eq 0 ] && grep -q '^Peer certificate subject: CN=leaf1-rotated$' "$t/s" && ok ||
  { no "still serving after a bad reload"; cat "$t/s"; }

# Accounts reload: root dropped, SIGHUP, root refused.
cp "$t/new/leaf1-rotated-key.pem" "$t/pki/leaf1-key.pem"
"$accounts" --file "$acc" drop root >/dev/null && ok || no "drop root"
# Wait for this SIGHUP's report (one "reload: ... (SIGHUP)" line per reload).
n0=$(grep -c "^clink-node: reload: .*(SIGHUP)" "$t/node.log")
kill -HUP "$node_pid"
i=0; while [ "$(grep -c "^clink-node: reload: .*(SIGHUP)" "$t/node.log")" -le "$n0" ] && [ $i -lt 100 ]; do
  sleep 0.05; i=$((i + 1))
done
grep "^clink-node: reload: .*(SIGHUP)" "$t/node.log" | tail -1 | grep -q "account(s)" && ok ||
  { no "the accounts reload was reported"; cat "$t/node.log"; }
status agg1 --user root >"$t/s" 2>&1
[ $? -eq 1 ] && grep -q "Access denied for user 'root'@'127.0.0.1'$" "$t/s" && ok ||
  { no "dropped account refused after SIGHUP"; cat "$t/s" "$t/node.log"; }

kill -TERM "$node_pid"; wait "$node_pid"; rc=$?; node_pid=
[ $rc -eq 0 ] && ok || no "clink-node exit status $rc after SIGTERM"

echo "tools_accounts: $pass passed, $fail failed"
[ $fail -eq 0 ]
