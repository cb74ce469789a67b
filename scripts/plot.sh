#!/usr/bin/env bash
# Draw plots from DIR/results.json (clink-bench --json), each where its lines
# are there: DIR/throughput.png, one-way throughput against message size over
# one connection, a line per mode (and the bare loop's, bench/bare_loop.c),
# with the stream lines (one stream, the leaf sending) as points at their
# message size; DIR/scale.png, the scale scenario's fan-outs/s, leaf calls/s
# and fan-out p50/p99 against the number of leaves.
#
#   scripts/plot.sh DIR
set -euo pipefail
case "${1:-}" in
  -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  '') echo "plot: usage: scripts/plot.sh DIR (try --help)" >&2; exit 2 ;;
esac
out=$1
[ -s "$out/results.json" ] || { echo "plot: $out/results.json is missing or empty" >&2; exit 1; }
command -v gnuplot >/dev/null 2>&1 || { echo "plot: gnuplot is not installed (scripts/deps.sh installs it)" >&2; exit 1; }
drawn=0

plots=()
for m in plain tls ktls stunnel bare-plain bare-tls; do
  # Flat JSON lines: pull size and bytes/s with awk (no jq needed).
  awk -v m="$m" '/"scenario":"throughput"/ && $0 ~ "\"mode\":\"" m "\"" && /"connections":1,/ && /bytes_per_s/ {
    match($0, /"msg_size":[0-9]+/); s = substr($0, RSTART + 11, RLENGTH - 11)
    match($0, /"bytes_per_s":[0-9.e+]+/); b = substr($0, RSTART + 14, RLENGTH - 14)
    print s, b / 1e6 }' "$out/results.json" >"$out/throughput-$m.dat"
  [ -s "$out/throughput-$m.dat" ] && plots+=("'$out/throughput-$m.dat' using 1:2 with linespoints lw 2 title '$m'")
done
for m in plain tls ktls; do
  awk -v m="$m" '/"scenario":"stream"/ && $0 ~ "\"mode\":\"" m "\"" && /bytes_per_s/ {
    match($0, /"msg_size":[0-9]+/); s = substr($0, RSTART + 11, RLENGTH - 11)
    match($0, /"bytes_per_s":[0-9.e+]+/); b = substr($0, RSTART + 14, RLENGTH - 14)
    print s, b / 1e6 }' "$out/results.json" >"$out/throughput-stream-$m.dat"
  [ -s "$out/throughput-stream-$m.dat" ] &&
    plots+=("'$out/throughput-stream-$m.dat' using 1:2 with points pt 7 ps 1.5 title 'stream $m'")
done
if [ ${#plots[@]} -gt 0 ]; then
  gnuplot <<GP
set terminal pngcairo size 900,560 noenhanced
set output '$out/throughput.png'
set title 'clink one-way throughput vs message size (one connection, loopback)'
set logscale x 2
set format x '%.0b%B'
set xlabel 'message size (bytes; Ki = 1024)'
set ylabel 'MB/s'
set key top left
set grid
plot $(IFS=,; echo "${plots[*]}")
GP
  echo "plot: $out/throughput.png"
  drawn=$((drawn + 1))
fi

# scale: leaves, fan-outs/s, leaf calls/s, p50 and p99 of a fan-out (us).
awk '/"scenario":"scale"/ && /"mode":"fanout"/ && /ops_per_s/ {
  match($0, /"leaves":[0-9]+/); n = substr($0, RSTART + 9, RLENGTH - 9)
  match($0, /"ops_per_s":[0-9.e+]+/); f = substr($0, RSTART + 12, RLENGTH - 12)
  match($0, /"leaf_calls_per_s":[0-9.e+]+/); l = substr($0, RSTART + 19, RLENGTH - 19)
  match($0, /"p50_us":[0-9.e+]+/); p50 = substr($0, RSTART + 9, RLENGTH - 9)
  match($0, /"p99_us":[0-9.e+]+/); p99 = substr($0, RSTART + 9, RLENGTH - 9)
  print n, f, l, p50, p99 }' "$out/results.json" | sort -n >"$out/scale.dat"
if [ -s "$out/scale.dat" ]; then
  gnuplot <<GP
set terminal pngcairo size 900,560 noenhanced
set output '$out/scale.png'
set title 'clink fan-out: one aggregator (1 worker) to N leaves (1 worker each), 64 B, 16 fan-outs in flight'
set logscale x 2
set xlabel 'leaves (N)'
set ylabel 'calls per second'
set y2label 'fan-out latency (us)'
set logscale y
set logscale y2
set ytics nomirror
set y2tics
set key below horizontal
set grid
plot '$out/scale.dat' using 1:2 axes x1y1 with linespoints lw 2 title 'fan-outs/s', \
     '$out/scale.dat' using 1:3 axes x1y1 with linespoints lw 2 title 'leaf calls/s', \
     '$out/scale.dat' using 1:4 axes x1y2 with linespoints lw 2 dt 2 title 'p50 (us, right)', \
     '$out/scale.dat' using 1:5 axes x1y2 with linespoints lw 2 dt 2 title 'p99 (us, right)'
GP
  echo "plot: $out/scale.png"
  drawn=$((drawn + 1))
fi
[ "$drawn" -gt 0 ] || { echo "plot: no throughput or scale lines in $out/results.json" >&2; exit 1; }
