#!/usr/bin/env bash
# venv.sh — creates, when missing, the virtualenv of the Python worker tests
# and of the python-outbox example test, and prints its path (last line).
#
# It lives OUTSIDE the clone, in ${DTMQ_CACHE:-~/.cache/dtmq}/python-worker-venv-<hash>,
# where <hash> covers tests/workers/python/requirements.txt,
# connectors/python/requirements.txt and the interpreter's version: a
# change of a pin makes a new venv, an unchanged one is reused. Debian's
# python3 with python3-venv (docker/install-deps.sh --test) builds it; pip
# fetches the pinned wheels from PyPI once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3) || { echo "venv.sh: python3 is not installed (Debian: python3)" >&2; exit 1; }
CACHE=${DTMQ_CACHE:-$HOME/.cache/dtmq}
hash=$({ cat "$here/requirements.txt" "$root/connectors/python/requirements.txt"; "$PY" --version; } |
  sha256sum | cut -c1-12)
VENV=$CACHE/python-worker-venv-$hash
if [ ! -f "$VENV/.complete" ]; then
  mkdir -p "$CACHE"
  echo "venv.sh: creating $VENV (first run only)" >&2
  rm -rf "$VENV"
  "$PY" -m venv "$VENV" >&2 || { echo "venv.sh: $PY -m venv failed (Debian: python3-venv)" >&2; exit 1; }
  if ! "$VENV/bin/pip" install -q --disable-pip-version-check --only-binary=:all: \
      -r "$here/requirements.txt" >"$CACHE/python-worker-pip.log" 2>&1; then
    tail -20 "$CACHE/python-worker-pip.log" >&2
    echo "venv.sh: pip install failed (log: $CACHE/python-worker-pip.log)" >&2
    rm -rf "$VENV"
    exit 1
  fi
  touch "$VENV/.complete"
fi
echo "$VENV"
