#!/bin/sh
# The command-line tools under Valgrind's memcheck: no leak, no invalid access,
# on their success and error paths. clink-node is run only up to where it would
# start its io_uring workers (its --help and refusals of bad input): Valgrind
# 3.19 cannot follow a worker blocked in io_uring_enter (a node under it never
# exits), so the node itself is checked by ASan/LSan and TSan instead.
set -u
bin=$1 # build dir
command -v valgrind >/dev/null || { echo "valgrind_tools: no valgrind"; exit 77; }
t=$(mktemp -d "${CLINK_TEST_TMP:-/tmp}/vg-XXXXXX")
trap 'rm -rf "$t"' EXIT
pass=0 fail=0
# vg EXPECTED_STATUS tool args...: the tool's own status must be EXPECTED_STATUS; memcheck errors exit 99.
vg() {
  want=$1
  shift
  valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible \
    --error-exitcode=99 "$@" >"$t/out" 2>"$t/err" </dev/null
  rc=$?
  if [ "$rc" = "$want" ]; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL (status $rc, wanted $want): $*"
    tail -n 30 "$t/err"
  fi
}
T=$bin/tools
vg 0 "$T/clink-certs" ca --out "$t/pki"
vg 0 "$T/clink-certs" ca --out "$t/pki/int" --parent "$t/pki"
vg 0 "$T/clink-certs" node --ca "$t/pki" --out "$t/pki" --name n1 --dns localhost --ip 127.0.0.1
vg 0 "$T/clink-certs" node --ca "$t/pki/int" --out "$t/pki" --name n2 --rsa
vg 1 "$T/clink-certs" node --ca "$t/nowhere" --out "$t/pki" --name n3
vg 2 "$T/clink-certs" node --bogus
vg 0 "$T/clink-certs" --help
vg 0 "$T/clink-certs" crl --ca "$t/pki"
vg 0 "$T/clink-certs" revoke --ca "$t/pki" --cert "$t/pki/n1.pem" --reason keyCompromise
vg 0 "$T/clink-certs" revoke --ca "$t/pki" --cert "$t/pki/n1.pem"
vg 0 "$T/clink-certs" revoke --ca "$t/pki" --serial 0a:1b
vg 1 "$T/clink-certs" revoke --ca "$t/pki" --cert "$t/pki/n2.pem"
vg 2 "$T/clink-certs" revoke --ca "$t/pki" --serial xyz
vg 0 "$T/clink-certs" crl --ca "$t/pki" --days 7 --out "$t/pki/crl2.pem"
vg 0 "$T/clink-accounts" --file "$t/acc" add root --require "SUBJECT '/CN=agg1'"
printf 'secret\n' >"$t/pw"
valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 \
  "$T/clink-accounts" --file "$t/acc" add app@10.0.0.% --require SSL --password-stdin <"$t/pw" >/dev/null 2>"$t/err" &&
  pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: clink-accounts add --password-stdin"; tail "$t/err"; }
vg 0 "$T/clink-accounts" --file "$t/acc" alter app@10.0.0.% --require X509
vg 0 "$T/clink-accounts" --file "$t/acc" add base@127.0.0.1 --plaintext-no-password ON
vg 1 "$T/clink-accounts" --file "$t/acc" alter app@10.0.0.% --native-password ON
vg 1 "$T/clink-accounts" --file "$t/acc" drop nobody
vg 0 "$T/clink-accounts" --file "$t/acc" drop app@10.0.0.%
vg 1 "$T/clink-accounts" --file "$t/acc" add x --require "BOGUS"
vg 0 "$T/clink-status" --help
vg 0 "$T/clink-node" --help
vg 1 "$T/clink-node" --listen 127.0.0.1:0 --cert "$t/pki/n1.pem" --key "$t/pki/n2-key.pem" --ca "$t/pki/ca.pem"
printf '[server]\nssl_cert = missing.pem\n' >"$t/bad.cnf"
vg 1 "$T/clink-node" --config "$t/bad.cnf"
echo "valgrind_tools: $pass passed, $fail failed"
[ $fail -eq 0 ]
