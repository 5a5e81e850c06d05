#!/usr/bin/env bash
# run.sh — the Python worker library's tests (connectors/python, pytest in
# tests/workers/python/) against real Kafka, a real dtmq and real PostgreSQL.
# Creates or reuses the pinned virtualenv (venv.sh), runs pytest on the
# tree's own library (PYTHONPATH, nothing installed), and prints as its LAST
# line Check's summary "P%: Checks: N, Failures: F, Errors: E" counted from
# pytest's JUnit report; exits 0 only when every test passed.
#
# Environment (tests/lib/run_lib.sh's test_env sets them):
#   DTMQ_TEST_KAFKA      Kafka bootstrap, e.g. 127.0.0.1:19092
#   DTMQ_TEST_POSTGRES   libpq conninfo of the test database
#   DTMQ_TEST_BIN        the dtmq binary (build/asan/dtmq)
# Extra arguments go to pytest (e.g. -k late_reply, -x).
set -uo pipefail
cd "$(dirname "$0")/../../.." || exit 1
here=tests/workers/python

summary() { # checks failures errors
  local pct=0
  [ "$1" -gt 0 ] && pct=$((($1 - $2 - $3) * 100 / $1))
  echo "$pct%: Checks: $1, Failures: $2, Errors: $3"
}
for v in DTMQ_TEST_KAFKA DTMQ_TEST_POSTGRES DTMQ_TEST_BIN; do
  if [ -z "${!v:-}" ]; then
    echo "$here/run.sh:0:E:setup: $v is not set (tests/lib/run_lib.sh's test_env sets it)"
    summary 1 0 1
    exit 1
  fi
done
if ! venv=$(bash $here/venv.sh | tail -1) || [ ! -x "$venv/bin/python" ]; then
  echo "$here/run.sh:0:E:setup: the virtualenv could not be created (see above)"
  summary 1 0 1
  exit 1
fi
export DTMQ_TEST_BIN=$(realpath "$DTMQ_TEST_BIN")
report=$(mktemp /tmp/dtmq-pyworker-junit-XXXXXX.xml)
trap 'rm -f "$report"' EXIT
# bounded: every wait inside is bounded too; this is the backstop
PYTHONPATH=connectors/python timeout 600 "$venv/bin/python" -m pytest -p no:cacheprovider \
  -o junit_family=xunit2 --junitxml="$report" -q -rfE --durations=5 "$here" "$@"
rc=$?
counts=$("$venv/bin/python" - "$report" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print("0 0 0"); sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
t = sum(int(s.get("tests", 0)) for s in suites)
f = sum(int(s.get("failures", 0)) for s in suites)
e = sum(int(s.get("errors", 0)) for s in suites)
print(t, f, e)
PY
)
read -r checks fails errors <<<"$counts"
if [ "$checks" -eq 0 ]; then
  echo "$here/run.sh:0:E:pytest: no test ran (pytest exit $rc)"
  summary 1 0 1
  exit 1
fi
if [ "$rc" -ne 0 ] && [ $((fails + errors)) -eq 0 ]; then
  echo "$here/run.sh:0:E:pytest: exit $rc without a failed test"
  errors=$((errors + 1)); checks=$((checks + 1))
fi
summary "$checks" "$fails" "$errors"
[ "$rc" -eq 0 ] && [ $((fails + errors)) -eq 0 ]
