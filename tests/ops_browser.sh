#!/bin/sh
# The ops page in a real browser: headless Chromium loads an aggregator's
# https://localhost:PORT/ trusting the test CA only through a throwaway NSS
# database (certutil), never through a flag that ignores certificate errors,
# and the dumped DOM must show the node, its transport security, leaf1 up with
# TLS on all its links, a TLS 1.3 link with its cipher, and the aggregator's
# own 10-day certificate highlighted as expiring. The same browser must refuse
# the page of a node whose HTTPS certificate comes from another CA
# (net::ERR_CERT_AUTHORITY_INVALID), and the aggregator's page without the NSS
# trust. Under traffic (clink-bench's fan-out through the aggregator), the page's
# charts must be SVGs with their lines, and their points must differ between two
# loads 10.5 s apart: the charts are drawn and move. Skipped (77) only when chromium or certutil is not installed
# (scripts/deps.sh installs chromium, libnss3-tools and curl).
set -u
bin=$1 # build dir
chromium=${CHROMIUM:-chromium}
command -v "$chromium" >/dev/null 2>&1 ||
  { echo "ops_browser: $chromium is not installed (scripts/deps.sh installs chromium), skipped"; exit 77; }
command -v certutil >/dev/null 2>&1 ||
  { echo "ops_browser: certutil is not installed (scripts/deps.sh installs libnss3-tools), skipped"; exit 77; }

base=${CLINK_TEST_TMP:-/tmp}
mkdir -p "$base" && t=$(mktemp -d "$base/ops_browser.XXXXXX") || { echo "ops_browser: cannot make a directory in $base"; exit 1; }
pids=""
cleanup() {
  for p in $pids; do kill -TERM "$p" 2>/dev/null; done
  for p in $pids; do wait "$p" 2>/dev/null; done
  rm -rf "$t"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok:   $*"; }
no() { fail=$((fail + 1)); echo "FAIL: $*"; }
command -v curl >/dev/null 2>&1 || { no "curl is not installed (scripts/deps.sh installs it)"; exit 1; }
certs=$bin/tools/clink-certs

# The cluster's CA; leaf1 for a year, agg1 for 10 days (the page must highlight it); another CA for the negative.
"$certs" ca --out "$t/pki" >/dev/null 2>&1 || no "make the CA"
"$certs" node --ca "$t/pki" --out "$t/pki" --name leaf1 --dns localhost --ip 127.0.0.1 >/dev/null 2>&1 || no "make leaf1"
"$certs" node --ca "$t/pki" --out "$t/pki" --name agg1 --dns localhost --ip 127.0.0.1 --days 10 >/dev/null 2>&1 ||
  no "make agg1 (10 days)"
"$certs" node --ca "$t/pki" --out "$t/pki" --name web1 --dns localhost --ip 127.0.0.1 >/dev/null 2>&1 || no "make web1"
"$certs" ca --out "$t/other" --cn "other CA" >/dev/null 2>&1 || no "make the other CA"
"$certs" node --ca "$t/other" --out "$t/other" --name web1 --dns localhost --ip 127.0.0.1 >/dev/null 2>&1 ||
  no "make web1's HTTPS certificate (other CA)"
ca=$t/pki/ca.pem

conf() { # name [extra lines]: a [server] section on 127.0.0.1, any free ports
  cat >"$t/pki/$1.cnf" <<CNF
[server]
bind_address = 127.0.0.1
port = 0
ops_port = 0
ssl_cert = $1.pem
ssl_key = $1-key.pem
ssl_ca = ca.pem
workers = 1
${2:-}
CNF
}
start() { # name: clink-node with its config; ports in $t/name.port and $t/name.ops
  rm -f "$t/$1.port" "$t/$1.ops"
  "$bin/tools/clink-node" --config "$t/pki/$1.cnf" --port-file "$t/$1.port" --ops-port-file "$t/$1.ops" \
    </dev/null >/dev/null 2>>"$t/$1.log" &
  pids="$pids $!"
  i=0; while { [ ! -s "$t/$1.port" ] || [ ! -s "$t/$1.ops" ]; } && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
  [ -s "$t/$1.port" ] && [ -s "$t/$1.ops" ] || { no "$1 did not start"; cat "$t/$1.log"; exit 1; }
}

conf leaf1; start leaf1; port1=$(cat "$t/leaf1.port")
conf agg1 "name = agg1
[leaf leaf1]
host = 127.0.0.1
port = $port1
ssl_server_name = localhost"
start agg1; aops=$(cat "$t/agg1.ops")
# web1: its node identity from the cluster's CA, its HTTPS port's from the other CA.
conf web1 "ops_ssl_cert = ../other/web1.pem
ops_ssl_key = ../other/web1-key.pem"
start web1; wops=$(cat "$t/web1.ops")

# Wait (15 s at most) until agg1's /status shows its pool's TLS link to leaf1 open.
i=0
while [ $i -lt 150 ]; do
  curl -sS --max-time 5 --cacert "$ca" -o "$t/status.json" "https://localhost:$aops/status" 2>"$t/curl.err" &&
    grep -Eq '"peer_name":"leaf1",[^}]*"state":"open","mode":"k?tls"' "$t/status.json" && break
  sleep 0.1; i=$((i + 1))
done
[ $i -lt 150 ] && ok "agg1's /status (curl --cacert): an open TLS link to leaf1" ||
  { no "agg1's pool to leaf1 did not come up"; cat "$t/curl.err" "$t/status.json" "$t/agg1.log"; exit 1; }
# agg1's page shows leaf1 as leaf1's own ops port tells it (read every 10 s, verified as the pool dials it).
i=0
while [ $i -lt 250 ]; do
  curl -sS --max-time 5 --cacert "$ca" -o "$t/page0.html" "https://localhost:$aops/" 2>"$t/curl.err" &&
    grep -q "REQUIRE_TLS, 0 plaintext link(s); certificate until [0-9-]* ([0-9]* days); ops port $(cat "$t/leaf1.ops")" "$t/page0.html" &&
    break
  sleep 0.1; i=$((i + 1))
done
[ $i -lt 250 ] && ok "nodes: leaf1's own view (its ops port): REQUIRE_TLS, no plaintext link, its certificate" ||
  { no "agg1's page does not show leaf1's own view"; grep -o '<tr class="peer">.*</tr>' "$t/page0.html" | head -3; }
# web1 is up and serves the other CA's certificate (so a refusal below is the certificate's, not a dead port).
curl -sS --max-time 5 --cacert "$t/other/ca.pem" -o /dev/null "https://localhost:$wops/status" 2>"$t/curl.err" &&
  ok "web1's HTTPS port answers curl --cacert other-CA" || { no "web1 serves its page"; cat "$t/curl.err"; }

# The browser's trust: a throwaway NSS database in a throwaway HOME with the test CA, nothing else.
home=$t/home
mkdir -p "$home/.pki/nssdb" "$t/bare"
certutil -d "sql:$home/.pki/nssdb" -N --empty-password >"$t/certutil.out" 2>&1 &&
  certutil -d "sql:$home/.pki/nssdb" -A -t "C,," -n clink-test-ca -i "$ca" >>"$t/certutil.out" 2>&1 &&
  certutil -d "sql:$home/.pki/nssdb" -L >>"$t/certutil.out" 2>&1 && grep -q "clink-test-ca *C,," "$t/certutil.out" &&
  ok "NSS database with clink-test-ca trusted (C,,)" || { no "certutil"; cat "$t/certutil.out"; exit 1; }

# browse HOME URL NAME [FLAG]: headless Chromium's DOM of URL in $t/NAME.html, its stderr in $t/NAME.err.
# --no-sandbox: Chromium refuses to start as root without it (CI runs as root); it turns off
# the renderer's sandbox only, not certificate verification. A fresh profile each time.
# FLAG --enable-logging=stderr: the console (Content-Security-Policy violations) goes to NAME.err.
browse() {
  HOME=$1 XDG_CONFIG_HOME=$1/.config XDG_CACHE_HOME=$1/.cache \
    timeout -k 5 60 "$chromium" --headless=new --no-sandbox --disable-gpu --no-first-run ${4:-} \
    --user-data-dir="$t/profile-$3" --dump-dom "$2" </dev/null >"$t/$3.html" 2>"$t/$3.err"
  echo "chromium $2 ($3): exit $?, $(wc -c <"$t/$3.html") bytes of DOM"
}
# rows TABLE-ID <NAME.html: that table's rows, one per line
rows() {
  awk -v id="$1" '{ s = s $0 } END {
    i = index(s, "<table id=\"" id "\""); if (i == 0) exit 1
    s = substr(s, i); s = substr(s, 1, index(s, "</table>") + 7); gsub(/<tr/, "\n<tr", s); print s }'
}
cert_error() { grep -Eo 'ERR_CERT_[A-Z_]+|net_error -2[0-9][0-9]' "$t/$1.err" "$t/$1.html" | sed 's/^[^:]*://' | sort -u | tr '\n' ' ' | sed 's/ $//'; }
show() { echo "--- $1.html"; cat "$t/$1.html"; echo "--- $1.err (without dbus noise)"; grep -v dbus "$t/$1.err"; }

# The aggregator's page, trusted through the NSS database.
browse "$home" "https://localhost:$aops/" agg1
d=$t/agg1.html
grep -q '<span id="node-name">agg1</span>' "$d" && ok "node-name: agg1 (the config's name)" ||
  no "node-name is not 'agg1'"
grep -q '<strong id="secure-transport">REQUIRE_TLS</strong>' "$d" && ok "secure-transport: REQUIRE_TLS" ||
  no "secure-transport is not REQUIRE_TLS"
grep -q '<strong id="plaintext-links">0</strong>' "$d" && ok "plaintext-links: 0" || no "plaintext-links is not 0"
rows nodes <"$d" >"$t/nodes" 2>/dev/null
grep -Eq "^<tr class=\"peer\"><td>leaf1</td><td>leaf</td><td>127\\.0\\.0\\.1:$port1</td><td class=\"up\">up</td><td>[1-9][0-9]*</td><td>TLS on all [1-9][0-9]* \\([0-9]+ kTLS\\)</td>" "$t/nodes" &&
  ok "nodes: leaf1, leaf, up, TLS on all its links" || { no "nodes table: leaf1 up with TLS on all"; cat "$t/nodes"; }
rows links <"$d" >"$t/links" 2>/dev/null
grep -E '^<tr class="link k?tls"><td>[0-9]+</td><td>out</td>' "$t/links" | grep -F "<td>leaf1 127.0.0.1:$port1</td><td>leaf</td><td>open</td>" |
  grep -Eq '<td>TLSv1\.3</td><td>TLS_(AES_[0-9]+_GCM|CHACHA20_POLY1305)_SHA[0-9]+</td>' &&
  ok "links: $(grep -Eo 'class="link k?tls"' "$t/links" | head -1) to leaf1, open, $(grep -Eo 'TLSv1\.3</td><td>TLS_[A-Z0-9_]+' "$t/links" | head -1 | sed 's,</td><td>, ,')" ||
  { no "links table: an open TLSv1.3 link to leaf1 with a TLS 1.3 cipher"; cat "$t/links"; }
grep -F "<td>leaf1 127.0.0.1:$port1</td>" "$t/links" | grep -Eq '<td class="expiring">[^<]*\(in [0-9] days\)</td>' &&
  ok "links: our certificate's expiry (in < 10 days) highlighted on the link" ||
  { no "links table: agg1's own certificate expiry highlighted"; cat "$t/links"; }
rows certificates <"$d" >"$t/certs" 2>/dev/null
grep -Eq '^<tr class="cert expiring"><td>node</td><td>own</td><td>CN=agg1</td>.*<td class="expiring">[^<]*\(in [0-9] days\)</td></tr>' "$t/certs" &&
  ok "certificates: agg1's own node certificate, class 'cert expiring', in < 10 days" ||
  { no "certificates: agg1's own certificate is not 'cert expiring'"; cat "$t/certs"; }
grep -Eq '^<tr class="cert expiring"><td>https</td><td>own</td><td>CN=agg1</td>' "$t/certs" &&
  ok "certificates: the HTTPS port's certificate (the same) is 'cert expiring'" ||
  { no "certificates: the HTTPS certificate row is not 'cert expiring'"; cat "$t/certs"; }
grep -Eq '^<tr class="cert"><td>peer leaf1</td><td>own</td><td>CN=leaf1</td>' "$t/certs" &&
  grep -Eq '^<tr class="cert"><td>node</td><td>ca</td><td>CN=clink CA</td>' "$t/certs" &&
  ok "certificates: leaf1's (a year) and the CA's rows are not highlighted" ||
  { no "certificates: only the expiring ones highlighted"; cat "$t/certs"; }
[ -z "$(cert_error agg1)" ] && ok "no certificate error loading agg1's page" || no "certificate error on agg1: $(cert_error agg1)"
[ $fail -eq 0 ] || show agg1

# The charts: drawn, and moving. Traffic first: clink-bench's fan-out through agg1 to leaf1 (agg1's pool makes
# the calls), about 15 s of it; two loads of the page 10.5 s apart while it runs must draw different points. A
# point is the average of 3 s (the node's charts) or 10 s (a peer's): loads closer than that can fall in one
# point, and steady traffic draws the same pixel twice.
aport=$(cat "$t/agg1.port")
"$bin/bench/clink-bench" --target "127.0.0.1:$port1" --aggregator "127.0.0.1:$aport" --name localhost \
  --cert "$t/pki/agg1.pem" --key "$t/pki/agg1-key.pem" --ca "$ca" --scenarios fanout --modes tls \
  --duration-ms 15000 --warmup-ms 300 --workers 1 --connections 1 --concurrency 4 >"$t/bench.out" 2>&1 &
bench=$!
pids="$pids $bench"
sleep 3
browse "$home" "https://localhost:$aops/" charts1 --enable-logging=stderr
sleep 10.5
browse "$home" "https://localhost:$aops/" charts2 --enable-logging=stderr
# figure ID <NAME.html: that chart's <figure>, on one line
figure() {
  awk -v id="$1" '{ s = s $0 } END {
    i = index(s, "<figure class=\"chart\" id=\"" id "\">"); if (i == 0) exit 1
    s = substr(s, i); print substr(s, 1, index(s, "</figure>") + 8) }'
}
# points ID <NAME.html: the points of every polyline of that chart, on one line ("" if it has none)
points() {
  figure "$1" | awk '{ s = $0 } END {
    while ((j = index(s, "points=\"")) > 0) { s = substr(s, j + 8); k = index(s, "\""); printf "%s|", substr(s, 1, k - 1); s = substr(s, k) }
    print "" }'
}
drawn=0 missing=""
for c in node-calls node-bytes node-p99 node-handshakes peer-0-calls peer-0-bytes peer-0-p99 peer-0-handshakes; do
  p=$(points "chart-$c" <"$t/charts2.html") && [ -n "$p" ] &&
    figure "chart-$c" <"$t/charts2.html" | grep -Eq '<svg class="chart"[^>]*>.*<text [^>]*class="axis-max">[0-9.]+ ?[kMG]?(/s|B/s| µs| ms| s)</text>.*<polyline class="s0" points="[0-9]' &&
    drawn=$((drawn + 1)) || missing="$missing $c"
done
[ $drawn -eq 8 ] && ok "charts: agg1's and leaf1's calls/s, bytes/s, p99 and handshakes are SVGs with their lines" ||
  no "charts without an SVG line:$missing"
grep -q '<figure class="chart" id="spark-node">' "$t/charts2.html" && grep -q '<figure class="chart" id="spark-peer-0">' "$t/charts2.html" &&
  ok "nodes table: a calls/s sparkline on agg1's and leaf1's rows" || no "nodes table: sparklines"
a=$(points chart-node-calls <"$t/charts1.html") b=$(points chart-node-calls <"$t/charts2.html")
pa=$(points chart-peer-0-calls <"$t/charts1.html") pb=$(points chart-peer-0-calls <"$t/charts2.html")
[ -n "$a" ] && [ -n "$b" ] && [ "$a" != "$b" ] && [ "$pa" != "$pb" ] &&
  ok "charts move: agg1's and leaf1's calls/s points differ 10.5 s apart under traffic ($(echo "$b" | tr ' ' '\n' | wc -l) points now)" ||
  { no "charts do not move: agg1 calls/s '$a' then '$b'; leaf1 '$pa' then '$pb'"; cat "$t/bench.out"; }
grep -Eq 'id="chart-node-calls"><figcaption[^>]*><strong>Calls/s</strong>: now <span class="now">[0-9.]+k?/s</span>' "$t/charts2.html" &&
  ok "charts: the current value in words ($(grep -Eo 'id="chart-node-calls"><figcaption[^>]*><strong>Calls/s</strong>: now <span class="now">[^<]*' "$t/charts2.html" | sed 's/.*>//'))" ||
  no "charts: no current calls/s in words"
grep -q '<svg class="timeline" id="expiry-timeline"' "$t/charts2.html" &&
  grep -Eq '<g class="tl-cert tl-expiring"><title>CN=agg1 \(node, own\)' "$t/charts2.html" &&
  grep -Eq '<g class="tl-cert"><title>CN=leaf1 \(peer leaf1, own\)' "$t/charts2.html" &&
  ok "expiry timeline: agg1's 10-day certificate marked, leaf1's not" ||
  { no "expiry timeline"; awk '{ s = s $0 } END { i = index(s, "expiry-timeline"); print substr(s, i, 3000) }' "$t/charts2.html"; }
grep -i 'content security policy' "$t/charts1.err" "$t/charts2.err" >"$t/csp" &&
  { no "the browser's console reports a Content-Security-Policy violation"; cat "$t/csp"; } ||
  ok "no Content-Security-Policy violation in the browser's console (inline SVG and its styles are allowed)"
kill -TERM "$bench" 2>/dev/null; wait "$bench" 2>/dev/null
pids=$(echo "$pids" | sed "s/ $bench\$//")
[ $fail -eq 0 ] || show charts2

# Another CA's certificate on web1's HTTPS port: the same browser and NSS database must refuse the page.
browse "$home" "https://localhost:$wops/" web1
! grep -q 'node-name\|clink node' "$t/web1.html" && ok "web1 (other CA): no page content in the DOM" ||
  no "web1 (other CA): the page was shown"
cert_error web1 | grep -Eq 'ERR_CERT_AUTHORITY_INVALID|net_error -202' &&
  ok "web1 (other CA): refused for the certificate: $(cert_error web1)" ||
  { no "web1 (other CA): not refused as ERR_CERT_AUTHORITY_INVALID"; show web1; }
# The same page as agg1's, without the NSS database: refused too (the trust came from the database, not a default).
browse "$t/bare" "https://localhost:$aops/" bare
! grep -q 'node-name' "$t/bare.html" && cert_error bare | grep -Eq 'ERR_CERT_AUTHORITY_INVALID|net_error -202' &&
  ok "agg1 without the NSS database: refused ($(cert_error bare))" || { no "agg1 without the NSS database"; show bare; }
# Control: the very same command on agg1 still shows the page (the refusals are not a broken browser).
browse "$home" "https://localhost:$aops/" control
grep -q '<span id="node-name">agg1</span>' "$t/control.html" && ok "control: agg1's page again with the same command" ||
  { no "control: agg1's page"; show control; }

# The nodes stop cleanly, with no sanitizer report.
for p in $pids; do kill -TERM "$p" 2>/dev/null; done
rcs=""
for p in $pids; do wait "$p"; rcs="$rcs $?"; done
pids=""
[ "$rcs" = " 0 0 0" ] && ok "leaf1, agg1, web1 exit 0 on SIGTERM" || no "exit statuses after SIGTERM:$rcs"
for n in leaf1 agg1 web1; do
  grep -q "Sanitizer\|runtime error:" "$t/$n.log" && { no "sanitizer report in $n's log"; cat "$t/$n.log"; } ||
    ok "$n's log: no sanitizer report"
done

echo "ops_browser: $pass passed, $fail failed"
[ $fail -eq 0 ]
