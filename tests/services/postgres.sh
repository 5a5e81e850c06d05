#!/usr/bin/env bash
# postgres.sh — a throwaway PostgreSQL 15 cluster for the tests of the
# PostgreSQL subtransaction barrier (connectors/libdtmq/barrier/), on 127.0.0.1 only.
#
#   postgres.sh install   install Debian's postgresql package if the server is missing
#   postgres.sh start     initdb a fresh cluster, start it on $DTMQ_POSTGRES_PORT
#                         (default 15432), wait for pg_isready, create database dtmq_test
#   postgres.sh stop      stop it (fast shutdown)
#   postgres.sh status    say whether it runs
#
# State (data, socket, log): ${DTMQ_SERVICES_DIR:-/tmp/dtmq-services}/postgres,
# wiped on every start. The server binaries are Debian's
# (${DTMQ_POSTGRES_BIN:-/usr/lib/postgresql/15/bin}); nothing is cached.
#
# initdb and postgres refuse to run as root: as root, every server command runs
# as the postgres OS user (runuser) and the state directory is chown'd to it;
# as any other user they run as that user. Authentication is trust (tests only,
# loopback only); fsync stays on, so commits are as durable as in production.
# Clients connect with
#   host=127.0.0.1 port=$DTMQ_POSTGRES_PORT dbname=dtmq_test user=postgres
set -euo pipefail

PG_BIN=${DTMQ_POSTGRES_BIN:-/usr/lib/postgresql/15/bin}
PORT=${DTMQ_POSTGRES_PORT:-15432}
STATE_DIR=${DTMQ_SERVICES_DIR:-/tmp/dtmq-services}/postgres
DATA_DIR=$STATE_DIR/data
LOG_FILE=$STATE_DIR/postgres.log
DB_NAME=dtmq_test
DB_USER=postgres

die() { echo "postgres: $*" >&2; exit 1; }

installed() { [[ -x $PG_BIN/initdb && -x $PG_BIN/postgres && -x $PG_BIN/pg_ctl && -x $PG_BIN/pg_isready ]]; }

# Runs a server command as the postgres OS user when we are root.
as_pg() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

install() {
    if installed; then return 0; fi
    [[ $(id -u) -eq 0 ]] || die "PostgreSQL is missing ($PG_BIN/initdb) and only root can apt-get install it"
    command -v apt-get >/dev/null || die "PostgreSQL is missing ($PG_BIN/initdb) and there is no apt-get"
    echo "postgres: installing Debian's postgresql package"
    local log=${TMPDIR:-/tmp}/dtmq-postgres-apt.log
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        die "PostgreSQL could not be had: apt-get install postgresql failed (log: $log)"
    fi
    installed || die "postgresql is installed but $PG_BIN has no server (set DTMQ_POSTGRES_BIN)"
}

# The postmaster's pid when our cluster runs.
running_pid() {
    local pid
    [[ -f $DATA_DIR/postmaster.pid ]] || return 1
    pid=$(head -n 1 "$DATA_DIR/postmaster.pid")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U "$DB_USER" -d postgres; }

create_database() {
    local exists
    exists=$("$PG_BIN/psql" -X -q -t -A -h 127.0.0.1 -p "$PORT" -U "$DB_USER" -d postgres \
        -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'") ||
        die "cannot query the databases of 127.0.0.1:$PORT"
    [[ $exists == 1 ]] && return 0
    "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PORT" -U "$DB_USER" -d postgres \
        -c "CREATE DATABASE $DB_NAME" >/dev/null || die "CREATE DATABASE $DB_NAME failed"
}

init_cluster() {
    rm -rf "$STATE_DIR"
    mkdir -p "$STATE_DIR"
    if [[ $(id -u) -eq 0 ]]; then chown postgres: "$STATE_DIR"; fi
    if ! as_pg "$PG_BIN/initdb" -D "$DATA_DIR" -U "$DB_USER" --auth=trust -E UTF8 \
        --locale=C --no-instructions >"$STATE_DIR/initdb.log" 2>&1; then
        tail -n 20 "$STATE_DIR/initdb.log" >&2
        die "initdb failed (log: $STATE_DIR/initdb.log)"
    fi
    cat >>"$DATA_DIR/postgresql.conf" <<CONF

# dtmq tests (tests/services/postgres.sh)
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$STATE_DIR'
fsync = on
synchronous_commit = on
max_connections = 100
shared_buffers = 32MB
log_min_messages = warning
CONF
}

# Starts the postmaster and waits until it answers (60 s at most). Returns 0
# when ready, 2 when it died because the port was busy, 1 otherwise.
launch() {
    as_pg "$PG_BIN/pg_ctl" -D "$DATA_DIR" -l "$LOG_FILE" -W start >/dev/null 2>&1 || return 1
    local i
    for i in $(seq 1 600); do
        ready && return 0
        # the postmaster writes its pid file at once; none after 3 s: it died
        if ((i > 30)) && ! running_pid >/dev/null; then
            grep -q "could not bind" "$LOG_FILE" && return 2
            return 1
        fi
        sleep 0.1
    done
    return 1
}

start() {
    if running_pid >/dev/null; then
        echo "postgres: already running on 127.0.0.1:$PORT (pid $(running_pid))"
        create_database
        return 0
    fi
    installed || install
    port_open && die "port 127.0.0.1:$PORT is taken by another program (set DTMQ_POSTGRES_PORT)"
    init_cluster
    # The default port lies in Linux's ephemeral range (32768-60999): an
    # outgoing connection may hold it for a moment. Such a bind failure is
    # tried again, twice, a second apart.
    local attempt rc=1
    for attempt in 1 2 3; do
        as_pg truncate -s 0 "$LOG_FILE" 2>/dev/null || as_pg touch "$LOG_FILE"
        launch && rc=0 || rc=$?
        [[ $rc -eq 2 && $attempt -lt 3 ]] || break
        echo "postgres: 127.0.0.1:$PORT was busy (attempt $attempt), trying again" >&2
        sleep 1
    done
    if [[ $rc -eq 0 ]]; then
        create_database
        echo "postgres: listening on 127.0.0.1:$PORT (pid $(running_pid), database $DB_NAME, log $LOG_FILE)"
        return 0
    fi
    echo "postgres: not ready on 127.0.0.1:$PORT (waited up to 60 s); last lines of $LOG_FILE:" >&2
    tail -n 20 "$LOG_FILE" >&2 || true
    stop >/dev/null 2>&1 || true
    exit 1
}

stop() {
    local pid
    if pid=$(running_pid); then
        as_pg "$PG_BIN/pg_ctl" -D "$DATA_DIR" -m fast -t 30 stop >/dev/null 2>&1 || true
        if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
        echo "postgres: stopped (pid $pid)"
    fi
}

status() {
    local pid
    if pid=$(running_pid); then
        echo "postgres: running on 127.0.0.1:$PORT (pid $pid)"
    else
        echo "postgres: not running"
        return 1
    fi
}

case "${1:-}" in
install) install ;;
start) start ;;
stop) stop ;;
status) status ;;
*) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
