#!/usr/bin/env bash
# preflight.sh — checks, before `make test` builds or starts anything, that
# every tool and library the test run uses is on this machine. For each one
# missing it prints one line naming the Debian package that provides it
# (docker/install-deps.sh --test installs them all) and exits 1, so a new
# machine learns what it lacks here and not from a linker error half an hour
# later. Prints nothing and exits 0 when all is there.
set -uo pipefail

missing=0
need() { # PACKAGE WHAT: records one missing piece
  echo "preflight: missing $2: install the Debian package $1 (bash docker/install-deps.sh --test)" >&2
  missing=$((missing + 1))
}
have_cmd() { command -v "$1" >/dev/null 2>&1; }
cmd() { # COMMAND PACKAGE
  have_cmd "$1" || need "$2" "the command $1"
}

cmd gcc gcc
cmd make make
cmd pkg-config pkg-config
# the libraries the build finds through pkg-config, each with its -dev package
while read -r module package; do
  have_cmd pkg-config && { pkg-config --exists "$module" || need "$package" "pkg-config module $module"; }
done <<'LIST'
rdkafka librdkafka-dev
libmongoc-1.0 libmongoc-dev
jansson libjansson-dev
libcurl libcurl4-openssl-dev
libmicrohttpd libmicrohttpd-dev
sqlite3 libsqlite3-dev
yaml-0.1 libyaml-dev
libpq libpq-dev
check check
LIST

# the fuzz targets link clang's libFuzzer and sanitizer runtimes, which Debian
# ships apart from clang itself (libclang-rt-N-dev, N = clang's major version)
if have_cmd clang; then
  major=$(clang -dumpversion | cut -d. -f1)
  rt="$(clang -print-resource-dir)/lib/linux/libclang_rt.fuzzer-x86_64.a"
  [ -f "$rt" ] || need "libclang-rt-$major-dev" "clang's libFuzzer runtime ($rt)"
else
  need clang "the command clang"
fi

cmd valgrind valgrind
cmd kcat kcat
cmd curl curl
cmd sqlite3 sqlite3
cmd python3 python3
have_cmd python3 && { python3 -c 'import jsonschema' 2>/dev/null || need python3-jsonschema "the Python module jsonschema"; }
have_cmd python3 && { python3 -c 'import ensurepip, venv' 2>/dev/null || need python3-venv "the Python modules venv and ensurepip"; }
cmd docker-compose docker-compose
cmd java default-jdk-headless
cmd mvn maven
cmd go golang-go
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need postgresql "PostgreSQL's initdb"
cmd node nodejs
cmd npm npm
[ -x /usr/bin/chromium ] || need chromium "/usr/bin/chromium"

[ "$missing" -eq 0 ]
