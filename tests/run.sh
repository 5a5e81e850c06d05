#!/usr/bin/env bash
# run.sh — the body of `make test`: builds the sanitizer flavour and every test,
# starts real Kafka and FerretDB on 127.0.0.1 (tests/services/), runs every test
# binary, stops the services, and ends with the line "N passed, N failed"
# (N counts test cases, summed over every binary's Check summary).
#
# A binary that dies without a Check summary counts as one failure. A service
# that cannot be started fails the run loudly; no test is skipped for it.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
results=()
B=${B:-build}
export B
logdir=$B/test-logs
services=tests/services/services.sh

summary() {
  echo
  for r in "${results[@]}"; do echo "  $r"; done
  echo "$passed passed, $failed failed"
}

abort_run() { # reason
  echo "run.sh: $1" >&2
  failed=$((failed + 1))
  results+=("FAIL  $1")
  summary
  exit 1
}

echo "== build (sanitizers: address, undefined)"
make -s -j"$(nproc)" STRICT=1 check || abort_run "build failed"

echo "== services"
bash $services install || abort_run "a test service could not be installed (see above)"
trap 'bash $services down >/dev/null 2>&1' EXIT
bash $services up || abort_run "a test service could not be started (see above)"

export DTMQ_TEST_KAFKA=127.0.0.1:${DTMQ_KAFKA_PORT:-19092}
export DTMQ_TEST_MONGO=mongodb://127.0.0.1:${DTMQ_FERRETDB_PORT:-27018}/
export DTMQ_TEST_POSTGRES="host=127.0.0.1 port=${DTMQ_POSTGRES_PORT:-15432} dbname=dtmq_test user=postgres"
export DTMQ_TEST_BIN=$B/asan/dtmq
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
# libmongoc's shared-memory counters print a warning when /dev/shm is busy
# (many processes at once); tests compare stderr, so keep them in memory.
export MONGOC_DISABLE_SHM=1
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$logdir"

# run_binary NAME COMMAND...: runs one Check binary, adds its counts. With
# DTMQ_TEST_FILTER (an extended regex) set, only the names it matches run
# (make soak runs the fault suite this way).
run_binary() {
  local name=$1
  shift
  if [ -n "${DTMQ_TEST_FILTER:-}" ] && ! [[ $name =~ $DTMQ_TEST_FILTER ]]; then
    return
  fi
  local log="$logdir/${name//\//_}.log"
  echo "== $name"
  CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-120} "$@" >"$log" 2>&1
  local rc=$?
  grep -E '^[0-9]+%: Checks:|:[EF]:' "$log" | head -40
  local line checks fails errors
  line=$(grep -E '^[0-9]+%: Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$log" | tail -1)
  if [ -z "$line" ]; then
    tail -30 "$log"
    failed=$((failed + 1))
    results+=("FAIL  $name: died without a summary (exit $rc), log $log")
    return
  fi
  checks=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")
  fails=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$line")
  errors=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$line")
  local bad=$((fails + errors))
  passed=$((passed + checks - bad))
  failed=$((failed + bad))
  if [ "$bad" -gt 0 ] || [ "$rc" -ne 0 ]; then
    [ "$bad" -eq 0 ] && failed=$((failed + 1))
    results+=("FAIL  $name: $line (exit $rc), log $log")
  else
    results+=("ok    $name: $line")
  fi
}

tests_in() { # DIR: the names of the test sources in tests/DIR
  for src in tests/"$1"/*.c; do [ -e "$src" ] && basename "$src" .c; done
}

tmp=$(mktemp -d /tmp/dtmq-tests-XXXXXX)

for n in $(tests_in unit); do
  run_binary "unit/$n" "$B/asan/tests/unit/$n"
done
# the JSON Schemas checked by an independent validator (Debian's python3-jsonschema)
run_binary "schemas/cross_check" /usr/bin/python3 tests/schemas/cross_check.py
# the README's quick start, as written (make run + its curl lines)
run_binary "readme/quickstart" bash tests/readme/run.sh
# the deployment files (docker-compose config; no Docker engine needed)
run_binary "docker/compose" bash tests/docker/run.sh
# libFuzzer on every parser of outside input, bounded (DTMQ_FUZZ_SECONDS each)
run_binary "fuzz/libfuzzer" bash tests/fuzz/run.sh
run_binary "store/conformance[sqlite]" \
  env DTMQ_TEST_STORE="sqlite:$tmp/conformance.db" $B/asan/tests/store/conformance
run_binary "store/conformance[mongodb]" \
  env DTMQ_TEST_STORE="${DTMQ_TEST_MONGO}dtmq_conformance" $B/asan/tests/store/conformance
# acknowledged = durable: SIGKILL under load, deferred durability, group commit
run_binary "store/durability[sqlite]" \
  env DTMQ_TEST_STORE="sqlite:$tmp/durability.db" $B/asan/tests/store/durability
run_binary "store/durability[mongodb]" \
  env DTMQ_TEST_STORE="${DTMQ_TEST_MONGO}dtmq_durability" $B/asan/tests/store/durability
# test_process and test_barrier do not depend on dtmq's store (the first
# covers both itself); the end-to-end suites run once per store.
run_binary "integration/test_process" $B/asan/tests/integration/test_process
run_binary "integration/test_barrier" $B/asan/tests/integration/test_barrier
for n in $(tests_in integration); do
  [ "$n" = test_process ] && continue
  [ "$n" = test_barrier ] && continue
  for kind in sqlite mongodb; do
    run_binary "integration/$n[$kind]" env DTMQ_TEST_STORE_KIND=$kind "$B/asan/tests/integration/$n"
  done
done

# the worked examples (docs/examples/), end to end on PostgreSQL and Kafka
export DTMQ_EXAMPLES_BIN=$B/asan/examples
run_binary "examples/bank_transfer" bash tests/examples/bank_transfer.sh
run_binary "examples/outbox" bash tests/examples/outbox.sh

# make install, then a service built against the installed libdtmq
run_binary "install/libdtmq" bash tests/install/run.sh

# the admin page in headless Chromium (playwright-core from npm, Debian's chromium)
run_binary "admin/browser" env DTMQ_ADMIN_SCREENSHOT="$logdir/admin.png" bash tests/admin/run.sh

# The same code without sanitizers, under valgrind: any memory error or
# definite leak makes the test (or dtmq, for integration tests) exit 99.
export CK_TIMEOUT_MULTIPLIER=5 # valgrind runs code about 20-50 times slower
vg="valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite"
for n in $(tests_in unit); do
  run_binary "valgrind/unit/$n" $vg --trace-children=yes "$B/valgrind/tests/unit/$n"
done
run_binary "valgrind/store/conformance[sqlite]" \
  env DTMQ_TEST_STORE="sqlite:$tmp/conformance-vg.db" \
  $vg --trace-children=yes $B/valgrind/tests/store/conformance
run_binary "valgrind/integration/test_barrier" \
  env CK_FORK=no $vg $B/valgrind/tests/integration/test_barrier
run_binary "valgrind/integration/test_process" \
  env DTMQ_TEST_BIN=$B/valgrind/dtmq DTMQ_TEST_WRAPPER="$vg" \
  $B/valgrind/tests/integration/test_process
rm -rf "$tmp"

summary
[ "$failed" -eq 0 ]
