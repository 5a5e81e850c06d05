#!/usr/bin/env bash
# install-deps.sh — installs the Debian packages dtmq builds and runs with.
# Used by `make run`, `make test` (through `make deps`) and the Dockerfile.
# Idempotent: asks apt only for what dpkg does not already have.
#   bash docker/install-deps.sh          build + run packages
#   bash docker/install-deps.sh --test   also what the test suite needs
set -euo pipefail

build_pkgs=(gcc make pkg-config ca-certificates
  librdkafka-dev libmongoc-dev libbson-dev libjansson-dev libcurl4-openssl-dev
  libmicrohttpd-dev libsqlite3-dev libyaml-dev libpq-dev)
# clang's libFuzzer and sanitizer runtimes are a package of their own
# (libclang-rt-14-dev for Debian 12's clang 14); sqlite3 is the shell the
# backup and retention commands of docs/operations.md use; chromium, nodejs
# and npm drive the admin page's browser test; python3-venv holds SecantusDB,
# a test MongoDB-protocol server from PyPI.
test_pkgs=(check valgrind kcat curl python3 python3-jsonschema python3-venv clang libclang-rt-14-dev sqlite3
  docker-compose default-jdk-headless maven golang-go postgresql chromium nodejs npm)

want=("${build_pkgs[@]}")
if [ "${1:-}" = "--test" ]; then
  want+=("${test_pkgs[@]}")
fi

missing=()
for p in "${want[@]}"; do
  # A tool that is already on PATH from elsewhere (e.g. a newer Go or JDK) counts.
  case "$p" in
    golang-go) command -v go >/dev/null 2>&1 && continue ;;
    default-jdk-headless) command -v java >/dev/null 2>&1 && continue ;;
    maven) command -v mvn >/dev/null 2>&1 && continue ;;
    nodejs) command -v node >/dev/null 2>&1 && continue ;;
    npm) command -v npm >/dev/null 2>&1 && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: need root to install: ${missing[*]} (run as root or install them yourself)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
