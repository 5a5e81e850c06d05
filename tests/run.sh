#!/usr/bin/env bash
# run.sh — the body of `make test`: builds the sanitizer flavour and every test,
# starts real Kafka, the MongoDB-protocol servers and PostgreSQL on 127.0.0.1
# (tests/services/), runs every test
# binary, stops the services, and ends with the line "N passed, N failed"
# (N counts test cases, summed over every binary's Check summary).
#
# A binary that dies without a Check summary counts as one failure. A service
# that cannot be started fails the run loudly; no test is skipped for it.
set -uo pipefail
cd "$(dirname "$0")/.."

# shared with make check-unit and make test-one (run_binary, test_env, summary)
source tests/lib/run_lib.sh

echo "== build (sanitizers: address, undefined)"
make -s -j"$(nproc)" STRICT=1 check || abort_run "build failed"

echo "== services"
bash $services install || abort_run "a test service could not be installed (see above)"
trap 'bash $services down >/dev/null 2>&1' EXIT
bash $services up || abort_run "a test service could not be started (see above)"

test_env

tmp=$(mktemp -d /tmp/dtmq-tests-XXXXXX)

run_unit_tests
# the start-of-run check for missing tools names each one's Debian package
run_binary "preflight/packages" bash tests/preflight/run.sh
# the JSON Schemas checked by an independent validator (Debian's python3-jsonschema)
run_binary "schemas/cross_check" /usr/bin/python3 tests/schemas/cross_check.py
# the README's quick start, as written (make run + its curl lines)
run_binary "readme/quickstart" bash tests/readme/run.sh
# the deployment files (docker-compose config; no Docker engine needed)
run_binary "docker/compose" bash tests/docker/run.sh
# libFuzzer on every parser of outside input, bounded (DTMQ_FUZZ_SECONDS each)
run_binary "fuzz/libfuzzer" bash tests/fuzz/run.sh
# conformance (on both atomic MongoDB-protocol servers: its races prove the
# guarded updates atomic); durability: acknowledged = durable (SIGKILL under
# load, deferred durability, group commit)
for kind in sqlite mongodb secantus; do
  run_binary "store/conformance[$kind]" \
    env DTMQ_TEST_STORE="$(store_uri $kind conformance "$tmp")" $B/asan/tests/store/conformance
done
for kind in sqlite mongodb; do
  run_binary "store/durability[$kind]" \
    env DTMQ_TEST_STORE="$(store_uri $kind durability "$tmp")" $B/asan/tests/store/durability
done
# test_process and test_barrier do not depend on dtmq's store (the first
# covers both itself); the end-to-end suites run once per store.
run_binary "integration/test_process" $B/asan/tests/integration/test_process
# the barrier's MongoDB fallback on mongo-java-server (no sessions), then its
# transaction path on SecantusDB (sessions and transactions)
run_binary "integration/test_barrier" \
  env DTMQ_TEST_MONGO_TRANSACTIONS=0 $B/asan/tests/integration/test_barrier
run_binary "integration/test_barrier[secantus]" \
  env DTMQ_TEST_BARRIER_DBS=mongo DTMQ_TEST_MONGO="$DTMQ_TEST_MONGO_TXN" \
  DTMQ_TEST_MONGO_TRANSACTIONS=1 $B/asan/tests/integration/test_barrier
for n in $(tests_in integration); do
  per_store "$n" || continue
  for kind in sqlite mongodb; do
    run_binary "integration/$n[$kind]" env DTMQ_TEST_STORE_KIND=$kind "$B/asan/tests/integration/$n"
  done
done

# the worked examples (docs/examples/), end to end on PostgreSQL and Kafka
export DTMQ_EXAMPLES_BIN=$B/asan/examples
run_binary "examples/bank_transfer" bash tests/examples/bank_transfer.sh
run_binary "examples/outbox" bash tests/examples/outbox.sh
# the Python worker library (connectors/python), pytest in a pinned venv
run_binary "workers/python" bash tests/workers/python/run.sh
# the Go worker library (connectors/go), go test against the same services
run_binary "workers/go" bash tests/workers/go/run.sh

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
