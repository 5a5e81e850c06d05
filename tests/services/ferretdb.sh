#!/usr/bin/env bash
# ferretdb.sh — a MongoDB-compatible server (FerretDB v1.24.0, SQLite backend)
# for the tests of dtmq's MongoDB store, on 127.0.0.1 only.
#
#   ferretdb.sh install   build the binary into $DTMQ_CACHE/bin (default ~/.cache/dtmq)
#   ferretdb.sh start     start it on $DTMQ_FERRETDB_PORT (default 27018), fresh data
#   ferretdb.sh restart   stop it if it runs, start it again on the SAME data
#   ferretdb.sh stop      stop it
#   ferretdb.sh status    say whether it runs
#
# State (data, pid file, log): ${DTMQ_SERVICES_DIR:-/tmp/dtmq-services}/ferretdb.
# The build log stays in the cache: $DTMQ_CACHE/ferretdb-build.log.
set -euo pipefail

VERSION=v1.24.0
MODULE=github.com/FerretDB/FerretDB
CACHE=${DTMQ_CACHE:-$HOME/.cache/dtmq}
BIN=$CACHE/bin/ferretdb
PORT=${DTMQ_FERRETDB_PORT:-27018}
STATE_DIR=${DTMQ_SERVICES_DIR:-/tmp/dtmq-services}/ferretdb
PID_FILE=$STATE_DIR/ferretdb.pid
LOG_FILE=$STATE_DIR/ferretdb.log

die() { echo "ferretdb: $*" >&2; exit 1; }

installed() { [[ -x $BIN ]] && "$BIN" --version >/dev/null 2>&1; }

# Built from the module source: `go install MODULE@VERSION` does not work here
# (the module proxy refuses FerretDB's version list), `go mod download` does.
install() {
    if installed; then return 0; fi
    command -v go >/dev/null || die "FerretDB could not be had: no 'go' toolchain on PATH"
    local log=$CACHE/ferretdb-build.log src
    mkdir -p "$CACHE/src" "$CACHE/bin"
    echo "ferretdb: building FerretDB $VERSION into $BIN (takes a minute or two)"
    if ! (cd "${TMPDIR:-/tmp}" && GOFLAGS=-mod=mod go mod download "$MODULE@$VERSION") >"$log" 2>&1; then
        die "FerretDB could not be had: 'go mod download $MODULE@$VERSION' failed: $(tail -n 1 "$log") (log: $log)"
    fi
    src=$CACHE/src/ferretdb-${VERSION#v}
    rm -rf "$src"
    cp -r "$(go env GOMODCACHE)/github.com/!ferret!d!b/!ferret!d!b@$VERSION" "$src"
    chmod -R u+w "$src"
    # FerretDB panics at start unless its version file names a version.
    echo "$VERSION" >"$src/build/version/version.txt"
    if ! (cd "$src" && go build -trimpath -o "$BIN.tmp" ./cmd/ferretdb) >"$log" 2>&1; then
        rm -f "$BIN.tmp"
        die "FerretDB could not be had: 'go build' failed: $(tail -n 1 "$log") (log: $log)"
    fi
    mv "$BIN.tmp" "$BIN"
    installed || die "FerretDB could not be had: the built binary does not run"
    echo "ferretdb: installed $("$BIN" --version | head -n 1)"
}

running_pid() {
    local pid
    [[ -f $PID_FILE ]] || return 1
    pid=$(cat "$PID_FILE")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

start() {
    if running_pid >/dev/null; then
        echo "ferretdb: already running on 127.0.0.1:$PORT (pid $(cat "$PID_FILE"))"
        return 0
    fi
    installed || install
    port_open && die "port 127.0.0.1:$PORT is taken by another program (set DTMQ_FERRETDB_PORT)"
    rm -rf "$STATE_DIR"
    mkdir -p "$STATE_DIR/data"
    launch
}

# Stops FerretDB if it runs and starts it again on the data a previous start
# created: nothing is wiped.
restart() {
    [[ -d $STATE_DIR/data ]] || die "nothing to restart in $STATE_DIR (run 'ferretdb.sh start' first)"
    installed || install
    stop >/dev/null
    port_open && die "port 127.0.0.1:$PORT is taken by another program (set DTMQ_FERRETDB_PORT)"
    launch
}

# Runs FerretDB on $STATE_DIR/data and waits until it listens.
launch() {
    "$BIN" --handler=sqlite --sqlite-url="file:$STATE_DIR/data/" --state-dir="$STATE_DIR" \
        --listen-addr="127.0.0.1:$PORT" --debug-addr=- --telemetry=disable \
        --log-level=WARN >>"$LOG_FILE" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
    for _ in $(seq 1 600); do
        if port_open; then
            echo "ferretdb: listening on 127.0.0.1:$PORT (pid $(cat "$PID_FILE"), log $LOG_FILE)"
            return 0
        fi
        running_pid >/dev/null || break
        sleep 0.1
    done
    echo "ferretdb: did not start listening on 127.0.0.1:$PORT; last lines of $LOG_FILE:" >&2
    tail -n 20 "$LOG_FILE" >&2 || true
    stop >/dev/null 2>&1 || true
    exit 1
}

stop() {
    local pid
    if pid=$(running_pid); then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
        echo "ferretdb: stopped (pid $pid)"
    fi
    rm -f "$PID_FILE"
}

status() {
    local pid
    if pid=$(running_pid); then
        echo "ferretdb: running on 127.0.0.1:$PORT (pid $pid)"
    else
        echo "ferretdb: not running"
        return 1
    fi
}

case "${1:-}" in
install) install ;;
start) start ;;
restart) restart ;;
stop) stop ;;
status) status ;;
*) echo "usage: $0 install|start|restart|stop|status" >&2; exit 2 ;;
esac
