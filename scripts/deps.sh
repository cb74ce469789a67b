#!/usr/bin/env bash
# Install the Debian 12 packages clink needs to build, test, fuzz and bench.
# Idempotent: prints nothing and touches nothing when all are installed;
# otherwise runs `apt-get update` once and installs only the missing ones
# (with sudo when not root).
#
#   scripts/deps.sh           install what is missing
#   scripts/deps.sh --check   list what is missing, exit 1 if anything is
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config  # toolchain
  libssl-dev liburing-dev libck-dev libcrypt-dev  # library deps
  libinih-dev libcriterion-dev libcjson-dev     # config parser; tests and tools
  clang clang-format                            # libFuzzer (clang-14 pulls libclang-rt-14-dev); style check
  strace valgrind openssl iproute2 stunnel4     # test drivers, certs, ss/tc, the stunnel baseline
  iptables                                      # random packet loss in the fault tests (statistic match)
  mariadb-client python3-pymysql                # the MySQL front door tested with stock clients
  python3-sqlalchemy                            # ... and an ORM (tests/mysql_clients.sh)
  chromium libnss3-tools curl                   # the ops page in a real browser (certutil: a throwaway NSS trust store)
  gnuplot-nox                                   # bench plots
)

# Node and npm for the Node MySQL drivers (tests/mysql_clients.sh): Debian's, unless a node is already there
# (a newer one from elsewhere would conflict with the package).
command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs npm)

installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

missing=()
for p in "${PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

if [[ "${1:-}" == "--check" ]]; then
  echo "deps: missing: ${missing[*]}"
  exit 1
fi

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "deps: missing ${missing[*]}; not root and no sudo: install them as root" >&2
    exit 1
  fi
  SUDO=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
echo "deps: installing ${missing[*]}"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"

still=()
for p in "${missing[@]}"; do
  installed "$p" || still+=("$p")
done
if [[ ${#still[@]} -ne 0 ]]; then
  echo "deps: still missing after apt-get install: ${still[*]}" >&2
  exit 1
fi
echo "deps: done"
