#!/usr/bin/env bash
# run.sh — `make install` into a scratch DESTDIR, then check libdtmq's public
# face as a user sees it: every installed header compiles alone (C and C++);
# a C service using only dtmq_client.h builds with `pkg-config dtmq` alone (no
# libpq/libmongoc flags) and, run against the installed dtmq, gets a gid; a C++
# program including every public header links with `pkg-config dtmq-barrier`
# and runs; libdtmq.a defines no global symbol without the dtmq_ prefix.
# Prints a Check-style summary line for tests/run.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
B=${B:-build}
dest=$(mktemp -d /tmp/dtmq-install-XXXXXX)
trap 'rm -rf "$dest"; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null' EXIT
checks=0 failures=0
check() { # name command...
  checks=$((checks + 1))
  if "${@:2}" >"$dest/out.txt" 2>&1; then echo "ok   $1"; else
    failures=$((failures + 1)); echo "tests/install/run.sh:0:F:install:$1:0: failed"; cat "$dest/out.txt"; fi
}
export PKG_CONFIG_PATH="$dest/usr/lib/pkgconfig"
# The services built against the installed copy: client_only.c (dtmq_client.h
# alone, pkg-config dtmq) and every_header.cpp (every public header from C++,
# pkg-config dtmq-barrier).
cp tests/install/client_only.c "$dest/svc.c"
cp "$dest/svc.c" "$dest/svc.cpp"
check "make install" make -s B="$B" install DESTDIR="$dest" PREFIX=/usr
check "installed files" test -x "$dest/usr/bin/dtmq" -a -f "$dest/usr/lib/libdtmq.a" -a -f "$dest/usr/include/dtmq/dtmq.h" -a -f "$dest/usr/include/dtmq/dtmq_client.h" -a -f "$dest/usr/include/dtmq/dtmq_worker.h" -a -f "$dest/usr/include/dtmq/dtmq_barrier.h"
check "build a C service with pkg-config dtmq" sh -c "cc -std=c11 -I$dest/usr/include \$(pkg-config --cflags dtmq) $dest/svc.c -L$dest/usr/lib \$(pkg-config --libs dtmq) -o $dest/svc"
check "build it as C++" sh -c "g++ -I$dest/usr/include \$(pkg-config --cflags dtmq) -x c++ $dest/svc.cpp -L$dest/usr/lib \$(pkg-config --libs dtmq) -o $dest/svcpp"
check "pkg-config dtmq names neither libpq nor libmongoc" sh -c "pkg-config --cflags --libs dtmq; ! pkg-config --cflags --libs dtmq | grep -Eq -e '-lpq|postgres|mongoc|bson'"
# Each public header alone, as strict C11 and as C++11, with only the flags
# its pkg-config file gives (dtmq for all but the barrier's). libmongoc's
# headers, which dtmq_barrier.h includes, need POSIX (struct addrinfo): strict
# C11 gets _POSIX_C_SOURCE for that one, as docs/sdk.md says.
headers_alone() {
  for h in dtmq dtmq_client dtmq_worker dtmq_barrier; do
    pc=dtmq std="-std=c11 -pedantic"
    [ "$h" = dtmq_barrier ] && pc=dtmq-barrier std="-std=c11 -D_POSIX_C_SOURCE=200809L"
    printf '#include <dtmq/%s.h>\n' "$h" >"$dest/alone.c"
    cc $std -Wall -Wextra -Werror -fsyntax-only -I"$dest/usr/include" $(pkg-config --cflags $pc) \
      -x c "$dest/alone.c" || { echo "$h.h does not compile alone as C"; return 1; }
    g++ -std=c++11 -Wall -Wextra -Werror -fsyntax-only -I"$dest/usr/include" $(pkg-config --cflags $pc) \
      -x c++ "$dest/alone.c" || { echo "$h.h does not compile alone as C++"; return 1; }
  done
}
check "every public header compiles alone (C and C++)" headers_alone
check "a C++ program including every public header links with pkg-config dtmq-barrier" sh -c "g++ -std=c++11 -Wall -Wextra -Werror -I$dest/usr/include \$(pkg-config --cflags dtmq-barrier) tests/install/every_header.cpp -L$dest/usr/lib \$(pkg-config --libs dtmq-barrier) -o $dest/every_header"
check "it runs" sh -c "$dest/every_header | grep -qx ok"
# Every global symbol libdtmq.a defines (any type: T, D, B, R, W, ...) is
# dtmq_-prefixed; the offenders are listed.
only_dtmq_symbols() {
  nm -g --defined-only "$dest/usr/lib/libdtmq.a" >"$dest/nm.txt" || return 1
  awk 'NF == 3 && $3 !~ /^dtmq_/ { print "not dtmq_-prefixed: " $3 " (" $2 ")"; bad = 1 } END { exit bad }' "$dest/nm.txt"
}
check "libdtmq.a defines only dtmq_-prefixed global symbols" only_dtmq_symbols
# docs/sdk.md as a user reads it: installed to a real prefix (no DESTDIR, so
# pkg-config's paths are right), its named examples (saga.c, ..., app.cpp)
# and its cc/g++ command lines run as written (app.c is the saga example);
# every named C example also builds with the first of them.
sdk_docs_build() {
  make -s B="$B" install PREFIX="$dest/prefix" || return 1
  python3 tests/install/doc_blocks.py docs/sdk.md "$dest/doc" || return 1
  (
    cd "$dest/doc" && export PKG_CONFIG_PATH="$dest/prefix/lib/pkgconfig" || exit 1
    cp saga.c app.c && bash commands.sh || exit 1
    for f in *.c; do
      extra=; grep -q '<microhttpd.h>' "$f" && extra=libmicrohttpd
      cc -std=c11 -Wall -Werror -o "${f%.c}" "$f" $(pkg-config --cflags --libs dtmq $extra) ||
        { echo "docs/sdk.md: $f does not build"; exit 1; }
    done
  )
}
check "docs/sdk.md's examples and commands build as written" sdk_docs_build
# The worked examples' READMEs: their cc lines, run as written in a copy of
# docs/examples/ against the same installed prefix (after sdk_docs_build).
examples_docs_build() {
  cp -r docs/examples "$dest/examples" || return 1
  for ex in bank-transfer outbox; do
    python3 tests/install/doc_blocks.py --commands-only "docs/examples/$ex/README.md" \
      "$dest/examples/$ex" || return 1
    (cd "$dest/examples/$ex" && PKG_CONFIG_PATH="$dest/prefix/lib/pkgconfig" bash commands.sh) ||
      { echo "docs/examples/$ex/README.md: a command failed"; return 1; }
  done
}
check "docs/examples' build commands run as written" examples_docs_build
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
(cd "$dest" && exec "$dest/usr/bin/dtmq" --http-host 127.0.0.1 --http-port "$port" --kafka off --store "sqlite:$dest/d.db" >"$dest/dtmq.log" 2>&1) &
pid=$!
for _ in $(seq 1 100); do curl -s "http://127.0.0.1:$port/api/ping" >/dev/null && break; sleep 0.1; done
check "the service gets a gid from the installed dtmq" sh -c "$dest/svc http://127.0.0.1:$port/api/dtmsvr | grep -Eq '^[0-9A-Za-z]{22}\$'"
check "make uninstall removes it all" sh -c "make -s B=$B uninstall DESTDIR=$dest PREFIX=/usr && test ! -e $dest/usr/lib/libdtmq.a -a ! -e $dest/usr/bin/dtmq"
pct=$(( checks > 0 ? (checks - failures) * 100 / checks : 0 ))
echo "${pct}%: Checks: $checks, Failures: $failures, Errors: 0"
[ "$failures" -eq 0 ]
