#!/usr/bin/env bash
# Check that an installed clink is usable from an outside project.
#
#   scripts/test-install.sh [BUILD_DIR]
#
# Builds the library (a Release build in a temp dir, or BUILD_DIR if given),
# installs it into a temp prefix with `cmake --install`, then builds
# tests/consumer against that prefix only:
#   a) CMake:      find_package(clink) + clink::clink and clink::clink_static
#   b) pkg-config: cc main.c $(pkg-config --cflags --libs clink)
#   c) pkg-config: libclink.a with `pkg-config --static --libs clink`
# and runs every binary. Exits non-zero with a message on the first failure.
# Temp dirs are removed on exit (set CLINK_KEEP_TMP=1 to keep them).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONSUMER_SRC="$ROOT/tests/consumer"
CC="${CC:-cc}"

say() { printf '==> %s\n' "$*"; }
die() { printf 'test-install: FAIL: %s\n' "$*" >&2; exit 1; }
exec 3>&1 # progress goes here even when a command's output goes to a log
run() { printf '    $ %s\n' "$*" >&3; "$@"; }

for tool in cmake pkg-config "$CC"; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found (run scripts/deps.sh)"
done
GEN=()
if command -v ninja >/dev/null 2>&1; then GEN=(-G Ninja); fi

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

# ---- 1. build the library ----
if [[ $# -ge 1 && -n "$1" ]]; then
  BUILD="$(cd "$1" && pwd)" || die "build dir '$1' does not exist"
  [[ -f "$BUILD/CMakeCache.txt" ]] || die "'$BUILD' is not a configured CMake build dir"
  say "reusing build dir $BUILD"
else
  BUILD="$TMP/build"
  say "configuring a Release build in $BUILD"
  run cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release \
      -DCLINK_BUILD_TESTS=OFF -DCLINK_BUILD_BENCH=OFF -DCLINK_BUILD_FUZZ=OFF >"$TMP/configure.log" 2>&1 \
    || { cat "$TMP/configure.log" >&2; die "configuring the library failed"; }
fi
say "building the library"
run cmake --build "$BUILD" >"$TMP/build.log" 2>&1 \
  || { tail -n 50 "$TMP/build.log" >&2; die "building the library failed"; }

# ---- 2. install into a temp prefix ----
say "installing into $PREFIX"
run cmake --install "$BUILD" --prefix "$PREFIX" >"$TMP/install.log" 2>&1 \
  || { cat "$TMP/install.log" >&2; die "cmake --install failed"; }
sed 's/^/    /' "$TMP/install.log"

LIBDIR_REL="$(sed -n 's/^CMAKE_INSTALL_LIBDIR:[A-Z]*=//p' "$BUILD/CMakeCache.txt")"
LIBDIR_REL="${LIBDIR_REL:-lib}"
case "$LIBDIR_REL" in
  /*) die "CMAKE_INSTALL_LIBDIR is absolute ($LIBDIR_REL): cannot install into a temp prefix" ;;
esac
LIBDIR="$PREFIX/$LIBDIR_REL"
PCDIR="$LIBDIR/pkgconfig"

say "checking the installed files"
for f in include/clink/error.h include/clink/auth.h "$LIBDIR_REL/libclink.a" "$LIBDIR_REL/libclink.so" \
         "$LIBDIR_REL/cmake/clink/clinkConfig.cmake" "$LIBDIR_REL/cmake/clink/clinkConfigVersion.cmake" \
         "$LIBDIR_REL/cmake/clink/clinkTargets.cmake" "$LIBDIR_REL/pkgconfig/clink.pc"; do
  [[ -e "$PREFIX/$f" ]] || die "missing after install: $f"
done
# Installed package files must not point back into the source or build tree.
if grep -n -F -e "$ROOT" -e "$BUILD" "$LIBDIR/cmake/clink/"*.cmake "$PCDIR/clink.pc" >&2; then
  die "installed package files (above) reference the source or build tree"
fi
grep -qx "prefix=$PREFIX" "$PCDIR/clink.pc" || { cat "$PCDIR/clink.pc" >&2; die "clink.pc prefix is not $PREFIX"; }

export PKG_CONFIG_PATH="$PCDIR${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
ver="$(pkg-config --modversion clink)" || die "pkg-config cannot read clink.pc"
say "pkg-config: clink $ver"
printf '    cflags: %s\n    libs:   %s\n    static: %s\n' "$(pkg-config --cflags clink)" \
  "$(pkg-config --libs clink)" "$(pkg-config --static --libs clink)"

check_run() { # name binary [expect_no_libclink_so]
  local name="$1" bin="$2" out
  out="$(LD_LIBRARY_PATH="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$bin")" || die "$name: running $bin failed"
  printf '    %s\n' "$out"
  [[ "$out" == *"clink_strerror(-1001): "?* ]] || die "$name: unexpected output: $out"
  if [[ "${3:-}" == static ]]; then
    if readelf -d "$bin" | grep -q 'NEEDED.*libclink\.so'; then die "$name: linked against libclink.so, expected libclink.a"; fi
  else
    readelf -d "$bin" | grep -q 'NEEDED.*libclink\.so' || die "$name: not linked against libclink.so"
  fi
}

# ---- 3a. CMake consumer ----
say "building tests/consumer with CMake (CMAKE_PREFIX_PATH=$PREFIX)"
CBUILD="$TMP/consumer-cmake"
run cmake -S "$CONSUMER_SRC" -B "$CBUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$PREFIX" >"$TMP/consumer-configure.log" 2>&1 \
  || { cat "$TMP/consumer-configure.log" >&2; die "configuring tests/consumer (find_package(clink)) failed"; }
clink_dir="$(sed -n 's/^clink_DIR:[A-Z]*=//p' "$CBUILD/CMakeCache.txt")"
[[ "$clink_dir" == "$PREFIX"/* ]] || die "find_package(clink) found '$clink_dir', not the package in $PREFIX"
run cmake --build "$CBUILD" >"$TMP/consumer-build.log" 2>&1 \
  || { cat "$TMP/consumer-build.log" >&2; die "building tests/consumer with CMake failed"; }
check_run "cmake clink::clink" "$CBUILD/consumer"
check_run "cmake clink::clink_static" "$CBUILD/consumer_static" static
check_run "cmake C++ consumer (clink::clink)" "$CBUILD/consumer_cxx"

# ---- 3b. pkg-config consumer, shared ----
say "building tests/consumer/main.c with pkg-config (shared)"
PBIN="$TMP/consumer-pc"
# shellcheck disable=SC2046
run "$CC" -std=c11 -Wall -Wextra -Werror "$CONSUMER_SRC/main.c" -o "$PBIN" $(pkg-config --cflags --libs clink) \
  || die "pkg-config shared build failed"
check_run "pkg-config shared" "$PBIN"

# ---- 3c. pkg-config consumer, static libclink.a ----
# The whole archive is linked so that every dependency of every object in
# libclink.a must be covered by `pkg-config --static --libs`.
say "building tests/consumer/main.c with pkg-config --static (libclink.a, whole archive)"
SBIN="$TMP/consumer-pc-static"
static_libs="$(pkg-config --static --libs clink)"
static_libs="${static_libs/-lclink/-Wl,--whole-archive -l:libclink.a -Wl,--no-whole-archive}"
# shellcheck disable=SC2046,SC2086
run "$CC" -std=c11 -Wall -Wextra -Werror "$CONSUMER_SRC/main.c" -o "$SBIN" $(pkg-config --cflags clink) $static_libs \
  || die "pkg-config static build failed (Libs.private/Requires.private incomplete?)"
check_run "pkg-config static" "$SBIN" static

say "install test passed"
