#!/usr/bin/env bash
# secantus.sh — SecantusDB 0.7.0b3 (PyPI), a MongoDB-protocol server on the
# WiredTiger engine with sessions and transactions, for the tests that need
# what mongo.sh's server lacks: the MongoDB barrier's transaction path
# (tests/integration/test_barrier.c) and a second, independent run of the store
# conformance suite. GPL-2.0: a separate test process, never linked. 127.0.0.1 only.
#
#   secantus.sh install   create its virtualenv in the cache (pinned versions)
#   secantus.sh start     start it on $DTMQ_SECANTUS_PORT (default 27019), fresh data
#   secantus.sh restart   stop it if it runs, start it again on the SAME data
#   secantus.sh stop      stop it
#   secantus.sh status    say whether it runs
#
# Cache: ${DTMQ_CACHE:-$HOME/.cache/dtmq}/secantusdb-0.7.0b3 (outside the clone).
# State: ${DTMQ_SERVICES_DIR:-/tmp/dtmq-services}/secantus. Commits are synced
# to disk (--sync-on-commit), so an acknowledged j:true write is durable.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

VERSION=0.7.0b3
CACHE=${DTMQ_CACHE:-$HOME/.cache/dtmq}
VENV=$CACHE/secantusdb-$VERSION
SVC_NAME=secantus
SVC_PORT=${DTMQ_SECANTUS_PORT:-27019}
SVC_PORT_VAR=DTMQ_SECANTUS_PORT
SVC_STATE=${DTMQ_SERVICES_DIR:-/tmp/dtmq-services}/secantus

svc_install() {
  if [[ -f $VENV/.complete ]] && cmp -s "$here/secantus/requirements.txt" "$VENV/requirements.txt"; then
    return 0
  fi
  command -v python3 >/dev/null || svc_die "SecantusDB cannot be had: python3 is not installed"
  echo "secantus: installing SecantusDB $VERSION into $VENV (first run only)"
  rm -rf "$VENV"
  python3 -m venv "$VENV" || svc_die "SecantusDB cannot be had: python3 -m venv failed (Debian: python3-venv)"
  if ! "$VENV/bin/pip" install -q --disable-pip-version-check -r "$here/secantus/requirements.txt" \
      >"$CACHE/secantus-pip.log" 2>&1; then
    tail -20 "$CACHE/secantus-pip.log" >&2
    svc_die "SecantusDB cannot be had: pip install failed (log: $CACHE/secantus-pip.log)"
  fi
  cp "$here/secantus/requirements.txt" "$VENV/requirements.txt"
  touch "$VENV/.complete"
}

svc_launch_cmd() {
  : >"$SVC_STATE/empty.toml" # no config file: built-in defaults and the flags below
  exec "$VENV/bin/secantusd-py" --config "$SVC_STATE/empty.toml" --host 127.0.0.1 \
    --port "$SVC_PORT" --storage-path "$SVC_STATE/data" --log-level WARNING --sync-on-commit
}

svc_main "$@"
