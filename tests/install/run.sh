#!/usr/bin/env bash
# run.sh — `make install` into a scratch DESTDIR, then build a small service
# against the installed libdtmq with `pkg-config dtmq` (C and C++), run it
# against a live dtmq, and check the installed dtmq binary. Prints a
# Check-style summary line for tests/run.sh.
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
cat >"$dest/svc.c" <<'C'
#include <dtmq/dtmq_client.h>
#include <stdio.h>
int main(int argc, char **argv)
{
    char err[512], gid[64];
    dtmq_client_options o = {0};
    o.server = argv[1];
    dtmq_client *c = dtmq_client_new(&o, err, sizeof(err));
    if (c == NULL || dtmq_new_gid(c, gid, sizeof(gid), err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    printf("%s\n", gid);
    dtmq_client_free(c);
    return argc > 2;
}
C
cp "$dest/svc.c" "$dest/svc.cpp"
check "make install" make -s B="$B" install DESTDIR="$dest" PREFIX=/usr
check "installed files" test -x "$dest/usr/bin/dtmq" -a -f "$dest/usr/lib/libdtmq.a" -a -f "$dest/usr/include/dtmq/dtmq_client.h" -a -f "$dest/usr/include/dtmq/dtmq_barrier.h"
check "build a C service with pkg-config dtmq" sh -c "cc -std=c11 -I$dest/usr/include \$(pkg-config --cflags dtmq) $dest/svc.c -L$dest/usr/lib \$(pkg-config --libs dtmq) -o $dest/svc"
check "build it as C++" sh -c "g++ -I$dest/usr/include \$(pkg-config --cflags dtmq) -x c++ $dest/svc.cpp -L$dest/usr/lib \$(pkg-config --libs dtmq) -o $dest/svcpp"
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
(cd "$dest" && exec "$dest/usr/bin/dtmq" --http-host 127.0.0.1 --http-port "$port" --kafka off --store "sqlite:$dest/d.db" >"$dest/dtmq.log" 2>&1) &
pid=$!
for _ in $(seq 1 100); do curl -s "http://127.0.0.1:$port/api/ping" >/dev/null && break; sleep 0.1; done
check "the service gets a gid from the installed dtmq" sh -c "$dest/svc http://127.0.0.1:$port/api/dtmsvr | grep -Eq '^[0-9A-Za-z]{22}\$'"
check "make uninstall removes it all" sh -c "make -s B=$B uninstall DESTDIR=$dest PREFIX=/usr && test ! -e $dest/usr/lib/libdtmq.a -a ! -e $dest/usr/bin/dtmq"
pct=$(( checks > 0 ? (checks - failures) * 100 / checks : 0 ))
echo "${pct}%: Checks: $checks, Failures: $failures, Errors: 0"
[ "$failures" -eq 0 ]
