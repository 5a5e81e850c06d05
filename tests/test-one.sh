#!/usr/bin/env bash
# test-one.sh — the body of `make test-one T=DIR/BINARY[:TEST] [KIND=...]`
# (make builds the binary, and dtmq, first): runs one test binary of
# tests/unit, tests/store or tests/integration, or only its test TEST (every
# test is a Check test case of its own, selected with CK_RUN_CASE), the way
# tests/run.sh runs it (tests/lib/run_lib.sh: same environment, run_binary,
# "N passed, N failed"). The suites tests/run.sh runs once per store run on
# KIND, sqlite (the default) or mongodb (mongo-java-server); store suites
# also on secantus (SecantusDB). Integration suites, and store suites on a
# MongoDB-protocol server, need the test services: they are started when they are not up
# already and left running for the next run (make services-down stops them).
# A TEST that names no test fails the run.
set -uo pipefail
cd "$(dirname "$0")/.."
source tests/lib/run_lib.sh

usage="usage: make test-one T=DIR/BINARY[:TEST] [KIND=sqlite|mongodb|secantus], e.g. T=unit/test_config, T=unit/test_config:test_defaults, T=store/conformance:test_claim_due_empty, T=integration/test_saga KIND=mongodb"
spec=${1:-}
[ -n "$spec" ] || { echo "$usage" >&2; exit 2; }
bin=${spec%%:*}
test_name=
[[ $spec == *:* ]] && test_name=${spec#*:}
kind=${KIND:-sqlite}
case "$kind" in
  sqlite | mongodb) ;;
  secantus) [[ $bin == store/* ]] ||
    { echo "test-one.sh: KIND=secantus is for the store suites (tests/store) only" >&2; exit 2; } ;;
  *) echo "test-one.sh: KIND is sqlite, mongodb or secantus, not '$kind'" >&2; exit 2 ;;
esac
exe=$B/asan/tests/$bin
case "$bin" in
  unit/* | store/* | integration/*) ;;
  *) echo "test-one.sh: '$bin' is not a test binary of tests/unit, tests/store or tests/integration" >&2
     echo "$usage" >&2; exit 2 ;;
esac
[ -x "$exe" ] || { echo "test-one.sh: no test binary $exe" >&2; echo "$usage" >&2; exit 2; }

test_env
unset DTMQ_TEST_FILTER
export RUN_NEED_CHECKS=1
[ -n "$test_name" ] && export CK_RUN_CASE=$test_name

case "$bin" in
  integration/*) need_services=1 ;;
  store/*) [ "$kind" = sqlite ] && need_services=0 || need_services=1 ;;
  *) need_services=0 ;;
esac
if [ "$need_services" = 1 ]; then
  echo "== services (left running afterwards; make services-down stops them)"
  bash $services install || abort_run "a test service could not be installed (see above)"
  bash $services up || abort_run "a test service could not be started (see above)"
fi

tmp=$(mktemp -d /tmp/dtmq-test-one-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
n=${bin#*/}
case "$bin" in
  store/*)
    run_binary "$spec[$kind]" env DTMQ_TEST_STORE="$(store_uri "$kind" "$n" "$tmp")" "$exe" ;;
  integration/*)
    if per_store "$n"; then
      run_binary "$spec[$kind]" env DTMQ_TEST_STORE_KIND="$kind" "$exe"
    else
      run_binary "$spec" "$exe"
    fi ;;
  *) run_binary "$spec" "$exe" ;;
esac
summary
[ "$failed" -eq 0 ]
