#!/usr/bin/env bash
# Check that an installed clink is usable from an outside project, installed
# the way the README says: right after the main job's build.
#
#   scripts/test-install.sh [BUILD_DIR]
#
#   1. configures a Release build (BUILD_DIR, default a fresh temp dir) and
#      checks that `cmake --install` refuses it before anything is built,
#      copying nothing;
#   2. runs the main job's build step alone (scripts/main-job.sh --build-only:
#      the same cmake --build targets as the job, without its slow cluster and
#      benchmark), then `cmake --install` into a temp prefix: the README's order;
#   3. builds tests/consumer against that prefix only, and runs each program:
#      a) CMake:      find_package(clink): clink::clink, clink::clink_static
#                     (and tests/cxx/consumer.cpp with each)
#      b) pkg-config: cc $(pkg-config --cflags --libs clink)          (libclink.so)
#      c) pkg-config: cc $(pkg-config --cflags --libs clink-static)   (libclink.a)
#      d) pkg-config --static clink-static with the whole archive: every
#         object's dependencies are declared
#      and checks that --cflags carries only clink's include dir.
# A fresh BUILD_DIR is what proves the main job's build is enough: an already
# complete build dir (the tests' build/release) proves nothing.
# Exits non-zero with a message on the first failure. Temp dirs are removed on
# exit (set CLINK_KEEP_TMP=1 to keep them).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONSUMER_SRC="$ROOT/tests/consumer"
CC="${CC:-cc}"

say() { printf '==> %s\n' "$*"; }
die() { printf 'test-install: FAIL: %s\n' "$*" >&2; exit 1; }
exec 3>&1 # progress goes here even when a command's output goes to a log
run() { printf '    $ %s\n' "$*" >&3; "$@"; }

for tool in cmake ninja pkg-config readelf "$CC"; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found (run scripts/deps.sh)"
done

TMP="$(mktemp -d "${TMPDIR:-/tmp}/clink-install-test.XXXXXX")"
cleanup() {
  if [[ "${CLINK_KEEP_TMP:-0}" == 1 ]]; then
    say "keeping $TMP"
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT
PREFIX="$TMP/prefix"
BUILD="${1:-$TMP/build}"
mkdir -p "$BUILD"
BUILD="$(cd "$BUILD" && pwd)"

# ---- 1. an unbuilt tree: cmake --install stops before copying anything ----
# The main job's configure line (scripts/main-job.sh).
say "configuring $BUILD as the main job does"
run cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >"$TMP/configure.log" 2>&1 \
  || { cat "$TMP/configure.log" >&2; die "configuring failed"; }
if [[ ! -e "$BUILD/libclink.so" ]]; then
  say "cmake --install before the build must fail and copy nothing"
  if run cmake --install "$BUILD" --prefix "$TMP/early" >"$TMP/early.log" 2>&1; then
    cat "$TMP/early.log" >&2; die "cmake --install of an unbuilt tree succeeded"
  fi
  grep -q 'not built yet' "$TMP/early.log" || { cat "$TMP/early.log" >&2; die "cmake --install failed, but not with the check's message"; }
  [[ ! -e "$TMP/early" ]] || { find "$TMP/early" >&2; die "cmake --install of an unbuilt tree copied files"; }
  tr -s ' \n' '  ' <"$TMP/early.log" | sed -n 's/.*\(clink: not built yet: [^.]*\.\).*/    refused: \1\n/p'
fi

# ---- 2. the main job's build, then install (the README's order) ----
say "the main job's build step (scripts/main-job.sh --build-only)"
run "$ROOT/scripts/main-job.sh" --build-only --build-dir "$BUILD" >"$TMP/build.log" 2>&1 \
  || { tail -n 50 "$TMP/build.log" >&2; die "the main job's build failed"; }
say "installing into $PREFIX"
run cmake --install "$BUILD" --prefix "$PREFIX" >"$TMP/install.log" 2>&1 \
  || { cat "$TMP/install.log" >&2; die "cmake --install right after the main job's build failed"; }

LIBDIR_REL="$(sed -n 's/^CMAKE_INSTALL_LIBDIR:[A-Z]*=//p' "$BUILD/CMakeCache.txt")"
LIBDIR_REL="${LIBDIR_REL:-lib}"
case "$LIBDIR_REL" in
  /*) die "CMAKE_INSTALL_LIBDIR is absolute ($LIBDIR_REL): cannot install into a temp prefix" ;;
esac
LIBDIR="$PREFIX/$LIBDIR_REL"
PCDIR="$LIBDIR/pkgconfig"

say "checking the installed files"
for f in include/clink/clink.h include/clink/error.h "$LIBDIR_REL/libclink.a" "$LIBDIR_REL/libclink.so" \
         "$LIBDIR_REL/cmake/clink/clinkConfig.cmake" "$LIBDIR_REL/cmake/clink/clinkConfigVersion.cmake" \
         "$LIBDIR_REL/cmake/clink/clinkTargets.cmake" "$LIBDIR_REL/pkgconfig/clink.pc" \
         "$LIBDIR_REL/pkgconfig/clink-static.pc" bin/clink-node bin/clink-certs; do
  [[ -e "$PREFIX/$f" ]] || die "missing after install: $f"
done
# Installed package files must not point back into the source or build tree.
if grep -n -F -e "$ROOT" -e "$BUILD" "$LIBDIR/cmake/clink/"*.cmake "$PCDIR/"clink*.pc >&2; then
  die "installed package files (above) reference the source or build tree"
fi
for pc in clink clink-static; do
  grep -qx "prefix=$PREFIX" "$PCDIR/$pc.pc" || { cat "$PCDIR/$pc.pc" >&2; die "$pc.pc prefix is not $PREFIX"; }
done

export PKG_CONFIG_PATH="$PCDIR${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
ver="$(pkg-config --modversion clink)" || die "pkg-config cannot read clink.pc"
say "pkg-config: clink $ver"
for q in "--cflags clink" "--libs clink" "--static --libs clink" "--cflags clink-static" "--libs clink-static" \
         "--static --libs clink-static"; do
  # shellcheck disable=SC2086
  printf '    pkg-config %-28s %s\n' "$q:" "$(pkg-config $q)"
done
# Only clink's own include dir: no dependency's private flags (issue 18: -D__x86_64__ -I/usr/include/cjson).
for pc in clink clink-static; do
  cflags="$(pkg-config --cflags "$pc")"
  cflags="${cflags%"${cflags##*[![:space:]]}"}"
  [[ "$cflags" == "-I$PREFIX/include" ]] || die "pkg-config --cflags $pc is '$cflags', expected only -I$PREFIX/include"
done
[[ " $(pkg-config --libs clink-static) " == *" -l:libclink.a "* ]] || die "pkg-config --libs clink-static does not name libclink.a"

check_run() { # name binary shared|static
  local name="$1" bin="$2" out
  out="$(LD_LIBRARY_PATH="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$bin")" || die "$name: running $bin failed"
  printf '    %s: %s\n' "$name" "$(printf '%s' "$out" | tr '\n' ' ')"
  [[ "$out" == *"clink_strerror(-"*"): "?* ]] || die "$name: unexpected output: $out"
  if [[ "$3" == static ]]; then
    if readelf -d "$bin" | grep -q 'NEEDED.*libclink\.so'; then die "$name: linked against libclink.so, expected libclink.a"; fi
  else
    readelf -d "$bin" | grep -q 'NEEDED.*libclink\.so' || die "$name: not linked against libclink.so"
  fi
}

# ---- 3a. CMake consumer ----
say "building tests/consumer with CMake (CMAKE_PREFIX_PATH=$PREFIX)"
CBUILD="$TMP/consumer-cmake"
run cmake -S "$CONSUMER_SRC" -B "$CBUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$PREFIX" >"$TMP/consumer-configure.log" 2>&1 \
  || { cat "$TMP/consumer-configure.log" >&2; die "configuring tests/consumer (find_package(clink)) failed"; }
clink_dir="$(sed -n 's/^clink_DIR:[A-Z]*=//p' "$CBUILD/CMakeCache.txt")"
[[ "$clink_dir" == "$PREFIX"/* ]] || die "find_package(clink) found '$clink_dir', not the package in $PREFIX"
run cmake --build "$CBUILD" >"$TMP/consumer-build.log" 2>&1 \
  || { cat "$TMP/consumer-build.log" >&2; die "building tests/consumer with CMake failed"; }
# Nothing private may reach the consumer's compile lines either.
if grep -n -e '-D__x86_64__' -e 'include/cjson' "$CBUILD/build.ninja" >&2; then
  die "a dependency's private compile flags reached the CMake consumer (above)"
fi
check_run "cmake clink::clink" "$CBUILD/consumer" shared
check_run "cmake clink::clink_static" "$CBUILD/consumer_static" static
check_run "cmake C++ clink::clink" "$CBUILD/consumer_cxx" shared
check_run "cmake C++ clink::clink_static" "$CBUILD/consumer_cxx_static" static

# The same sources, listed once in tests/consumer/CMakeLists.txt.
# The server API's leaf and aggregator (tests/consumer/leaf.c, aggregator.c): two leaves and an aggregator from
# config files, real processes; the aggregator's handler fans out to both and answers (tests/consumer_server.sh).
server_pair() { # name leaf aggregator shared|static
  local out
  if [[ "$4" == static ]] && readelf -d "$2" | grep -q 'NEEDED.*libclink\.so'; then
    die "$1: linked against libclink.so, expected libclink.a"
  fi
  out="$(LD_LIBRARY_PATH="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    sh "$ROOT/tests/consumer_server.sh" "$BUILD" "$2" "$3" 2>&1)" || { printf '%s\n' "$out" >&2; die "$1: the server pair failed"; }
  printf '    %s: %s\n' "$1" "$out"
}
server_pair "cmake server API, clink::clink" "$CBUILD/consumer_leaf" "$CBUILD/consumer_aggregator" shared
server_pair "cmake server API, clink::clink_static" "$CBUILD/consumer_leaf_static" "$CBUILD/consumer_aggregator_static" static

mapfile -t SOURCES <"$CBUILD/consumer-sources.txt"
CFLAGS_C=(-std=c11 -Wall -Wextra -Werror -Wstrict-prototypes)

# ---- 3b. pkg-config, shared ----
say "building tests/consumer with pkg-config clink (libclink.so)"
# shellcheck disable=SC2046
run "$CC" "${CFLAGS_C[@]}" "${SOURCES[@]}" -o "$TMP/consumer-pc" $(pkg-config --cflags --libs clink) \
  || die "pkg-config clink build failed"
check_run "pkg-config clink" "$TMP/consumer-pc" shared

# ---- 3c. pkg-config, static libclink.a ----
say "building tests/consumer with pkg-config clink-static (libclink.a)"
# shellcheck disable=SC2046
run "$CC" "${CFLAGS_C[@]}" "${SOURCES[@]}" -o "$TMP/consumer-pc-static" $(pkg-config --cflags --libs clink-static) \
  || die "pkg-config clink-static build failed"
check_run "pkg-config clink-static" "$TMP/consumer-pc-static" static
printf '    its shared libraries: %s\n' "$(readelf -d "$TMP/consumer-pc-static" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | tr '\n' ' ')"

say "building the server API's leaf and aggregator with pkg-config, shared and static"
for pc in clink clink-static; do
  for prog in leaf aggregator; do
    # shellcheck disable=SC2046
    run "$CC" "${CFLAGS_C[@]}" "$CONSUMER_SRC/$prog.c" -o "$TMP/$prog-$pc" $(pkg-config --cflags --libs "$pc") \
      || die "pkg-config $pc build of $prog.c failed"
  done
done
server_pair "pkg-config clink, server API" "$TMP/leaf-clink" "$TMP/aggregator-clink" shared
server_pair "pkg-config clink-static, server API" "$TMP/leaf-clink-static" "$TMP/aggregator-clink-static" static

# ---- 3d. the whole archive: every object's dependencies are declared ----
say "linking all of libclink.a (pkg-config --static --libs clink-static, whole archive)"
static_libs="$(pkg-config --static --libs clink-static)"
static_libs="${static_libs/-l:libclink.a/-Wl,--whole-archive -l:libclink.a -Wl,--no-whole-archive}"
# shellcheck disable=SC2046,SC2086
run "$CC" "${CFLAGS_C[@]}" "${SOURCES[@]}" -o "$TMP/consumer-pc-whole" $(pkg-config --cflags clink-static) $static_libs \
  || die "linking the whole libclink.a failed: clink-static.pc misses a dependency"
check_run "pkg-config clink-static, whole archive" "$TMP/consumer-pc-whole" static

say "install test passed"
