#!/usr/bin/env bash
# run.sh — the browser test of the admin page (/admin/): needs Debian's
# chromium (docker/install-deps.sh --test installs it), installs
# playwright-core from npm into tests/admin/node_modules when missing, builds dtmq when DTMQ_TEST_BIN (default
# build/asan/dtmq) is missing, then runs admin.spec.mjs, which starts its own
# dtmq, drives headless Chromium through the page and ends with Check's
# summary line "N%: Checks: N, Failures: N, Errors: N". Exits non-zero on any
# failure. Takes about 20-30 s once installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=tests/admin

if [ ! -x /usr/bin/chromium ]; then
  echo "run.sh: /usr/bin/chromium is missing: install the Debian package chromium (bash docker/install-deps.sh --test)" >&2
  exit 1
fi

# npm ci only when node_modules is missing or older than the lock file.
stamp=$dir/node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ "$dir/package-lock.json" -nt "$stamp" ]; then
  echo "== npm ci (playwright-core)"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
fi

export DTMQ_TEST_BIN=${DTMQ_TEST_BIN:-build/asan/dtmq}
if [ ! -x "$DTMQ_TEST_BIN" ]; then
  echo "== building $DTMQ_TEST_BIN"
  make -s "$DTMQ_TEST_BIN"
fi

# a hung browser or dtmq must not hold up the whole test run
exec timeout -k 10 180 node "$dir/admin.spec.mjs"
