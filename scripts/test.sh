#!/usr/bin/env bash
# Every test, as CI runs it: install what is missing, then
#   0. the house format (.clang-format), checked, not applied
#   1. ASan+UBSan build: the Criterion suites and the drivers
#   2. the kTLS suite, the transport suites and the netem fault scenarios under a kernel with kTLS (../shared/ktls-vm/run)
#   3. TSan build: the threaded driver (Criterion cannot run under TSan)
#   4. release build: everything again, plus the strace check that io_uring did all socket I/O
#   5. install right after the main job's build, and an outside project built against the installed package
#      (find_package and pkg-config, shared and static: scripts/test-install.sh, which runs alone too)
#   6. the README's main job in its quick form
#   7. libFuzzer targets: each replays its seeds and regression inputs, then fuzzes for a fixed time
# Each stage prints its time; the last line counts stages passed and failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc 2>/dev/null || echo 2)
fuzz_secs=${CLINK_FUZZ_SECONDS:-30}
passed=0
failed=0
failed_names=()

stage() {
  local name=$1; shift
  local t0=$SECONDS
  printf '\n===== %s\n' "$name"
  if "$@"; then
    passed=$((passed + 1)); printf '===== %s: ok (%ds)\n' "$name" $((SECONDS - t0))
  else
    failed=$((failed + 1)); failed_names+=("$name"); printf '===== %s: FAILED (%ds)\n' "$name" $((SECONDS - t0))
  fi
}

build() { # dir, extra cmake args...
  local dir=$1; shift
  cmake -S "$root" -B "$dir" -G Ninja "$@" >/dev/null && cmake --build "$dir" -j "$jobs"
}

run_ctest() {
  (cd "$1" && ctest --output-on-failure --timeout 600)
}

asan() {
  build build/asan -DCMAKE_BUILD_TYPE=Debug -DCLINK_SANITIZE=address &&
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    CLINK_SOAK_SECONDS=${CLINK_SOAK_SECONDS:-60} run_ctest build/asan
}

tsan() {
  build build/tsan -DCMAKE_BUILD_TYPE=Debug -DCLINK_SANITIZE=thread -DCLINK_BUILD_BENCH=OFF &&
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    CLINK_SOAK_SECONDS=${CLINK_SOAK_SECONDS:-60} run_ctest build/tsan
}

release() {
  build build/release -DCMAKE_BUILD_TYPE=Release && run_ctest build/release
}

# Each target in fuzz/ (one per parser of network or file input, fuzz/README.md): first it replays every
# input of fuzz/corpus/<name> and fuzz/regressions/<name> once, then it fuzzes for $fuzz_secs from them.
# One line per target; a failure prints the lines that say what broke, and where the input was saved.
fuzz() {
  mkdir -p build/fuzz
  if ! build build/fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DCLINK_BUILD_FUZZ=ON \
    -DCLINK_BUILD_TESTS=OFF -DCLINK_BUILD_BENCH=OFF >build/fuzz/build.log 2>&1; then
    tail -n 30 build/fuzz/build.log
    return 1
  fi
  local rc=0 t name seeds regr art log work n scratch
  for t in build/fuzz/fuzz/fuzz_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    seeds="$root/fuzz/corpus/${name#fuzz_}"
    regr="$root/fuzz/regressions/${name#fuzz_}"
    art="$root/build/fuzz/artifacts/${name#fuzz_}"
    log="$root/build/fuzz/${name}.log"
    mkdir -p "$art"
    n=$(find "$seeds" "$regr" -type f ! -name '.*' 2>/dev/null | wc -l)
    # Where targets that parse files write them (fuzz/fuzz.h), removed here even when a failure skipped their cleanup.
    scratch=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
    export CLINK_FUZZ_TMP=$scratch
    # Files, not directories: libFuzzer then names each input as it runs it.
    if ! find "$seeds" "$regr" -type f ! -name '.*' -print0 |
      xargs -0 "$t" -artifact_prefix="$art/" >"$log" 2>&1; then
      echo "$name: replay of $n seed and regression inputs FAILED:"
      grep -a -E '^Running: |property failed|ERROR: |runtime error|SUMMARY' "$log" | tail -n 5
      echo "  (full log: $log)"
      rc=1
      rm -rf "$scratch"
      continue
    fi
    work=$(mktemp -d)
    if "$t" -max_total_time="$fuzz_secs" -print_final_stats=1 -artifact_prefix="$art/" "$work" "$seeds" "$regr" \
      >"$log" 2>&1; then
      awk -v name="$name" -v n="$n" -v secs="$fuzz_secs" '
        $2 == "DONE" { for (i = 1; i <= NF; i++) { if ($i == "cov:") cov = $(i + 1); if ($i == "ft:") ft = $(i + 1) } }
        /stat::number_of_executed_units:/ { runs = $2 }
        /stat::average_exec_per_sec:/ { rate = $2 }
        END { printf "%s: ok: %d inputs replayed; %ss: %d runs (%d/s), cov %s, ft %s\n", name, n, secs, runs, rate, cov, ft }
      ' "$log"
    else
      echo "$name: FAILED after replaying $n inputs:"
      grep -a -E 'property failed|ERROR: |runtime error|SUMMARY' "$log" | head -n 5
      echo "  input saved in: $(ls -t "$art" | head -n 1 | sed "s|^|$art/|")"
      echo "  (put it in fuzz/regressions/${name#fuzz_}/, named for what it found; full log: $log)"
      rc=1
    fi
    rm -rf "$work" "$scratch"
  done
  unset CLINK_FUZZ_TMP
  return $rc
}

# kTLS needs a kernel with the tls ULP, which this machine lacks: ../shared/ktls-vm/run boots one under
# qemu and runs the kTLS suite and the transport suites there (ASan build). Not finding it fails the stage.
ktls_vm() {
  local run
  for run in "${KTLS_VM_RUN:-}" "$root/../shared/ktls-vm/run" /work/shared/ktls-vm/run; do
    [ -n "$run" ] && [ -x "$run" ] && break
    run=
  done
  [ -n "$run" ] || { echo "ktls-vm/run not found (set KTLS_VM_RUN)"; return 1; }
  mkdir -p "$root/build/asan/tests/tmp"
  # The same boot runs the netem fault scenarios (this host has no netem): tests/faults.sh. It takes 6 minutes
  # on a quiet 2-core machine and twice that when the host is busy: the timeout leaves room for both.
  CLINK_EXPECT_KTLS=1 CLINK_TEST_TMP="$root/build/asan/tests/tmp" CLINK_TEST_TIMEOUT_SCALE=10 \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    KTLS_VM_MODULES="sch_netem veth" "$run" --timeout 1500 -- sh -c 'build/asan/tests/test_ktls --jobs 1 &&
      build/asan/tests/test_handshake --jobs 1 && build/asan/tests/test_ssl_modes --jobs 1 &&
      build/asan/tests/test_opening --jobs 1 && build/asan/tests/test_handshake_limits --jobs 1 &&
      build/asan/tests/test_frames --jobs 1 && build/asan/tests/test_calls --jobs 1 &&
      build/asan/tests/test_call_endings --jobs 1 && build/asan/tests/test_close --jobs 1 &&
      build/asan/tests/test_buffers --jobs 1 && build/asan/tests/test_streams --jobs 1 &&
      build/asan/tests/test_stream_credit --jobs 1 &&
      build/asan/tests/test_ops --jobs 1 &&
      build/asan/tests/test_revoke --jobs 1 &&
      sh tests/mysql_clients.sh build/asan &&
      CLINK_TEST_TIMEOUT_SCALE=4 sh tests/faults.sh build/asan netem'
}

format() {
  git ls-files '*.c' '*.h' '*.cpp' | xargs clang-format --dry-run --Werror
}

stage "dependencies" "$root/scripts/deps.sh"
stage "format (.clang-format)" format
stage "asan+ubsan build and tests" asan
stage "kTLS suites and netem faults in a kTLS kernel (ktls-vm)" ktls_vm
stage "tsan build and threaded driver" tsan
stage "release build and tests (incl. strace)" release
# Not build/release: the release stage built everything there, and the README's order is the main job's
# build then `cmake --install`, so the install test repeats the main job's build step (not the whole job)
# in a fresh dir of its own (about 20 s).
stage "install and outside project" "$root/scripts/test-install.sh"
# Bounded like every network test: a hang (the bench once deadlocked in a pool) fails the stage, not the run.
stage "main job, quick" timeout --kill-after=10 300 "$root/scripts/main-job.sh" --quick --out "$root/build/main-job-quick"
stage "fuzz (${fuzz_secs}s per target)" fuzz

printf '\n===== total %ds\n' "$SECONDS"
[ "$failed" -eq 0 ] || printf 'failed stages: %s\n' "${failed_names[*]}"
printf 'stages: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
