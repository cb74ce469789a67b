#!/usr/bin/env bash
# Every test, as CI runs it: install what is missing, then
#   0. the house format (.clang-format), checked, not applied
#   1. ASan+UBSan build: the Criterion suites and the drivers
#   2. the kTLS suite, the transport suite and the netem fault scenarios under a kernel with kTLS (../shared/ktls-vm/run)
#   3. TSan build: the threaded driver (Criterion cannot run under TSan)
#   4. release build: everything again, plus the strace check that io_uring did all socket I/O
#   5. install + an outside project built against the installed package (pkg-config and find_package)
#   6. the README's main job in its quick form
#   7. libFuzzer targets, a short fixed time each
# Each stage prints its time; the last line counts stages passed and failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc 2>/dev/null || echo 2)
fuzz_secs=${CLINK_FUZZ_SECONDS:-20}
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

fuzz() {
  build build/fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DCLINK_BUILD_FUZZ=ON \
    -DCLINK_BUILD_TESTS=OFF -DCLINK_BUILD_BENCH=OFF || return 1
  local rc=0
  for t in build/fuzz/fuzz/fuzz_*; do
    [ -x "$t" ] || continue
    local name corpus
    name=$(basename "$t")
    corpus="$root/fuzz/corpus/${name#fuzz_}"
    local work
    work=$(mktemp -d)
    echo "$name: ${fuzz_secs}s"
    "$t" -max_total_time="$fuzz_secs" -print_final_stats=0 "$work" "$corpus" 2>&1 | tail -n 2 || rc=1
    rm -rf "$work"
  done
  return $rc
}

# kTLS needs a kernel with the tls ULP, which this machine lacks: ../shared/ktls-vm/run boots one under
# qemu and runs the kTLS suite and the transport suite there (ASan build). Not finding it fails the stage.
ktls_vm() {
  local run
  for run in "${KTLS_VM_RUN:-}" "$root/../shared/ktls-vm/run" /work/shared/ktls-vm/run; do
    [ -n "$run" ] && [ -x "$run" ] && break
    run=
  done
  [ -n "$run" ] || { echo "ktls-vm/run not found (set KTLS_VM_RUN)"; return 1; }
  mkdir -p "$root/build/asan/tests/tmp"
  # The same boot runs the netem fault scenarios (this host has no netem): tests/faults.sh.
  CLINK_EXPECT_KTLS=1 CLINK_TEST_TMP="$root/build/asan/tests/tmp" CLINK_TEST_TIMEOUT_SCALE=10 \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    KTLS_VM_MODULES="sch_netem veth" "$run" --timeout 900 -- sh -c 'build/asan/tests/test_ktls --jobs 1 &&
      build/asan/tests/test_transport --jobs 1 && CLINK_TEST_TIMEOUT_SCALE=4 sh tests/faults.sh build/asan netem'
}

format() {
  git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror
}

stage "dependencies" "$root/scripts/deps.sh"
stage "format (.clang-format)" format
stage "asan+ubsan build and tests" asan
stage "kTLS suites and netem faults in a kTLS kernel (ktls-vm)" ktls_vm
stage "tsan build and threaded driver" tsan
stage "release build and tests (incl. strace)" release
stage "install and outside project" "$root/scripts/test-install.sh" "$root/build/release"
# Bounded like every network test: a hang (the bench once deadlocked in a pool) fails the stage, not the run.
stage "main job, quick" timeout --kill-after=10 300 "$root/scripts/main-job.sh" --quick --out "$root/build/main-job-quick"
stage "fuzz (${fuzz_secs}s per target)" fuzz

printf '\n===== total %ds\n' "$SECONDS"
[ "$failed" -eq 0 ] || printf 'failed stages: %s\n' "${failed_names[*]}"
printf 'stages: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
