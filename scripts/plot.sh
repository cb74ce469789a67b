#!/usr/bin/env bash
# Draw DIR/throughput.png from DIR/results.json (clink-bench --json): one-way
# throughput against message size over one connection, a line per mode (and
# the bare loop's, bench/bare_loop.c), and the stream lines (one stream, the
# leaf sending) as points at their message size.
#
#   scripts/plot.sh DIR
set -euo pipefail
case "${1:-}" in
  -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  '') echo "plot: usage: scripts/plot.sh DIR (try --help)" >&2; exit 2 ;;
esac
out=$1
[ -s "$out/results.json" ] || { echo "plot: $out/results.json is missing or empty" >&2; exit 1; }
command -v gnuplot >/dev/null 2>&1 || { echo "plot: gnuplot is not installed (scripts/deps.sh installs it)" >&2; exit 1; }
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
[ ${#plots[@]} -gt 0 ] || { echo "plot: no throughput lines in $out/results.json" >&2; exit 1; }
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
