# run_lib.sh — what tests/run.sh (make test), tests/unit.sh (make check-unit)
# and tests/one.sh (make test-one) share, sourced by each so they never
# drift: the build directory and log folder, the test services' addresses and
# the sanitizer settings every binary runs with, run_binary (runs one Check
# binary and adds its counts), the store a per-store suite runs on, and the
# "N passed, N failed" summary. Run from the repository's root.

B=${B:-build}
export B
logdir=$B/test-logs
services=tests/services/services.sh
passed=0
failed=0
results=()

summary() {
  echo
  for r in "${results[@]}"; do echo "  $r"; done
  echo "$passed passed, $failed failed"
}

abort_run() { # reason
  echo "$(basename "$0"): $1" >&2
  failed=$((failed + 1))
  results+=("FAIL  $1")
  summary
  exit 1
}

# The environment of every test binary: where the services listen (the
# ports services.sh starts them on), which dtmq binary to start, and the
# sanitizers' options.
test_env() {
  export DTMQ_TEST_KAFKA=127.0.0.1:${DTMQ_KAFKA_PORT:-19092}
  export DTMQ_TEST_MONGO=mongodb://127.0.0.1:${DTMQ_MONGO_PORT:-27018}/
  # SecantusDB: sessions and transactions (the barrier's transaction path)
  export DTMQ_TEST_MONGO_TXN=mongodb://127.0.0.1:${DTMQ_SECANTUS_PORT:-27019}/
  export DTMQ_TEST_POSTGRES="host=127.0.0.1 port=${DTMQ_POSTGRES_PORT:-15432} dbname=dtmq_test user=postgres"
  export DTMQ_TEST_BIN=$B/asan/dtmq
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
  # libmongoc's shared-memory counters print a warning when /dev/shm is busy
  # (many processes at once); tests compare stderr, so keep them in memory.
  export MONGOC_DISABLE_SHM=1
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  mkdir -p "$logdir"
}

# run_binary NAME COMMAND...: runs one Check binary, adds its counts. With
# DTMQ_TEST_FILTER (an extended regex) set, only the names it matches run
# (make soak runs the fault suite this way). A binary that dies without a
# Check summary counts as one failure; with RUN_NEED_CHECKS=1, so does one
# that ran no test at all (a CK_RUN_CASE that names no test).
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
  # no suite ran (CK_RUN_CASE named no test): Check prints its summary on the
  # "Running suite(s):" line
  if [ -z "$line" ] && [ "${RUN_NEED_CHECKS:-0}" = 1 ] && grep -q 'Checks: 0, Failures: 0, Errors: 0' "$log"; then
    failed=$((failed + 1))
    results+=("FAIL  $name: no test ran (no test named '${CK_RUN_CASE:-}'?), log $log")
    return
  fi
  if [ -z "$line" ]; then
    tail -30 "$log"
    failed=$((failed + 1))
    results+=("FAIL  $name: died without a summary (exit $rc), log $log")
    return
  fi
  checks=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")
  fails=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$line")
  errors=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$line")
  if [ "${RUN_NEED_CHECKS:-0}" = 1 ] && [ "$checks" -eq 0 ]; then
    failed=$((failed + 1))
    results+=("FAIL  $name: no test ran (no test named '${CK_RUN_CASE:-}'?), log $log")
    return
  fi
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

# store_uri KIND NAME DIR: the store a store suite (tests/store/NAME) runs on:
# an SQLite file in DIR, a database of the MongoDB-protocol server every
# end-to-end test uses (mongodb: mongo-java-server), or one of SecantusDB
# (secantus: WiredTiger, the second atomic server).
store_uri() {
  case "$1" in
    sqlite) echo "sqlite:$3/$2.db" ;;
    mongodb) echo "${DTMQ_TEST_MONGO}dtmq_$2" ;;
    secantus) echo "${DTMQ_TEST_MONGO_TXN}dtmq_$2" ;;
    *) echo "run_lib.sh: unknown store kind '$1' (sqlite, mongodb or secantus)" >&2; return 1 ;;
  esac
}

# per_store NAME: true for the integration suites that run once per store
# (test_process covers both stores itself; test_barrier does not use dtmq's).
per_store() {
  [ "$1" != test_process ] && [ "$1" != test_barrier ]
}

# run_unit_tests: every tests/unit/* binary of the sanitizer flavour (no
# services); make test and make check-unit both run them through this.
run_unit_tests() {
  local n
  for n in $(tests_in unit); do
    run_binary "unit/$n" "$B/asan/tests/unit/$n"
  done
}
