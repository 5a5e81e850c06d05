#!/usr/bin/env bash
# run.sh — the body of `make bench`: builds the release flavour and the
# programs of tests/bench/, starts real Kafka and the MongoDB-protocol server on ports of their
# own, runs every scenario on each store bounded in time, measures the
# ceilings in the same run, prints a table and writes the generated part of
# docs/benchmarks.md (between <!-- bench:begin --> and <!-- bench:end -->).
#
# Scenarios (each point: a fresh dtmq and a fresh store, warmup, then a
# measured window; dtmq's CPU and peak RSS over the window from /proc):
#   dtm         DTM's own workload: saga of 2 steps with empty URLs, HTTP
#               submit with wait_result, 10 clients
#   saga-http   saga of 2 HTTP branches against the C stub, HTTP ingress,
#               concurrency DTMQ_BENCH_CONCURRENCY
#   saga-kafka  the same saga submitted on Kafka, branches kafka:// answered
#               by workers (connectors/libdtmq/worker), concurrency DTMQ_BENCH_KAFKA_CONCURRENCY
#   msg-kafka   2-phase msg (HTTP prepare + submit with wait_result), one
#               kafka:// branch
#   pending     DTMQ_BENCH_PENDING sagas whose branch answers ONGOING: dtmq's
#               memory per pending transaction, then the time to finish them
#               all after a restart (branch now SUCCESS, resetCronTime)
# Ceilings, at the same concurrency: HTTP (the generator calling the stub
# directly, as many requests per transaction as dtmq's transaction made:
# counted by the stub), Kafka (raw produce+consume of the same number of
# messages in a chain, same size), store (the raw store API, the operations
# dtmq did per transaction counted from its own metrics
# dtmq_store_operation_seconds_count{op}).
#
# Knobs (environment):
#   DTMQ_BENCH_SECONDS (5)   measured window of each point, seconds
#   DTMQ_BENCH_WARMUP (2)    warmup before each window
#   DTMQ_BENCH_KAFKA_WARMUP (5)  the same for points with Kafka branches: each
#                            point has fresh topics, and the first message to
#                            each fresh partition was seen to take up to ~1 s
#                            (DTMQ_BENCH_TRACE_SLOW_MS=N makes bench_kafka print
#                            every transaction slower than N ms)
#   DTMQ_BENCH_STORES ("sqlite mongodb")
#   DTMQ_BENCH_SCENARIOS ("dtm saga-http saga-kafka msg-kafka pending")
#   DTMQ_BENCH_CONCURRENCY ("1 4 16 64 256")      saga-http points
#   DTMQ_BENCH_KAFKA_CONCURRENCY ("1 16 64")       saga-kafka and msg-kafka points
#   DTMQ_BENCH_PENDING (100000)          transactions left pending (SQLite)
#   DTMQ_BENCH_PENDING_MONGODB (300)     the same on the MongoDB-protocol server
#   DTMQ_BENCH_PENDING_SECONDS (120)     cap on the time spent creating them
#   DTMQ_BENCH_RESUME_SECONDS (180)      cap on the wait for them to finish
#   DTMQ_BENCH_PROFILE (1)   re-run a point that misses its target under perf
#   DTMQ_BENCH_OUT (docs/benchmarks.md)  where the report goes ("" = nowhere)
#   DTMQ_BENCH_HTTP_PORT (19680)  dtmq's port; the stub takes the next one
#   DTMQ_KAFKA_PORT (19692), DTMQ_MONGO_PORT (27618),
#   DTMQ_SERVICES_DIR (/tmp/dtmq-bench-services), B (build)
set -euo pipefail
cd "$(dirname "$0")/../.."

B=${B:-build}
SECS=${DTMQ_BENCH_SECONDS:-5}
WARM=${DTMQ_BENCH_WARMUP:-2}
KWARM=${DTMQ_BENCH_KAFKA_WARMUP:-5}
STORES=${DTMQ_BENCH_STORES:-sqlite mongodb}
SCENARIOS=${DTMQ_BENCH_SCENARIOS:-dtm saga-http saga-kafka msg-kafka pending}
CONCS=${DTMQ_BENCH_CONCURRENCY:-1 4 16 64 256}
KCONCS=${DTMQ_BENCH_KAFKA_CONCURRENCY:-1 16 64}
PENDING=${DTMQ_BENCH_PENDING:-100000}
# mongo-java-server keeps only unique indexes and answers a due-transaction
# claim by scanning the collection, so the MongoDB-protocol run is smaller.
PENDING_MONGODB=${DTMQ_BENCH_PENDING_MONGODB:-300}
PENDING_SECS=${DTMQ_BENCH_PENDING_SECONDS:-120}
RESUME_SECS=${DTMQ_BENCH_RESUME_SECONDS:-180}
PROFILE=${DTMQ_BENCH_PROFILE:-1}
OUT=${DTMQ_BENCH_OUT-docs/benchmarks.md}
HTTP_PORT=${DTMQ_BENCH_HTTP_PORT:-19680}
STUB_PORT=$((HTTP_PORT + 1))
export DTMQ_KAFKA_PORT=${DTMQ_KAFKA_PORT:-19692}
export DTMQ_MONGO_PORT=${DTMQ_MONGO_PORT:-27618}
export DTMQ_SERVICES_DIR=${DTMQ_SERVICES_DIR:-/tmp/dtmq-bench-services}
export MONGOC_DISABLE_SHM=1
KAFKA=127.0.0.1:$DTMQ_KAFKA_PORT
MONGO=mongodb://127.0.0.1:$DTMQ_MONGO_PORT
DRAIN=10                      # seconds a point's transactions in flight may take to end
BIN=$B/release
BENCH=$BIN/bench
RUN_ID=r$(date +%s)
STUB=http://127.0.0.1:$STUB_PORT
started=$(date +%s)

work=$(mktemp -d /tmp/dtmq-bench-XXXXXX)
results=$work/results.tsv     # one row per point, see add_row
notes=$work/notes.md          # profiles and details of missed targets
: >"$results"
: >"$notes"

log() { echo "== $*" >&2; }
die() { echo "run.sh: $*" >&2; exit 1; }

# ---- processes we start (and only those are stopped) ---------------------
DTMQ_PID=""
STUB_PID=""
WORKER_PID=""
services_started=()

stop_pid() { # PID [seconds]: SIGTERM, then SIGKILL after the grace time
  local pid=$1 grace=${2:-20}
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 $((grace * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  stop_pid "$WORKER_PID" 10
  stop_pid "$DTMQ_PID" 20
  stop_pid "$STUB_PID" 5
  for s in "${services_started[@]}"; do bash "tests/services/$s.sh" stop >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# ---- build and services ---------------------------------------------------
needs_kafka=0
needs_mongo=0
case " $SCENARIOS " in *" saga-kafka "* | *" msg-kafka "*) needs_kafka=1 ;; esac
case " $STORES " in *" mongodb "*) needs_mongo=1 ;; esac

log "build (release flavour, $B/release)"
make -s -j"$(nproc)" B="$B" bench-build || die "build failed"

start_service() { # NAME
  if bash "tests/services/$1.sh" status >/dev/null 2>&1; then
    log "$1 already running (left running at the end)"
    return 0
  fi
  bash "tests/services/$1.sh" install || die "$1 could not be installed"
  bash "tests/services/$1.sh" start || die "$1 could not be started"
  services_started+=("$1")
}
# perf, for the profiles of missed targets (Debian's linux-perf; optional)
if [ "$PROFILE" = 1 ] && ! command -v perf >/dev/null; then
  apt-get install -y -qq linux-perf >/dev/null 2>&1 || log "perf could not be installed: no profiles"
fi

[ "$needs_kafka" = 1 ] && start_service kafka
[ "$needs_mongo" = 1 ] && start_service mongo

"$BENCH/bench_stub" --port "$STUB_PORT" >"$work/stub.log" 2>&1 &
STUB_PID=$!
for _ in $(seq 1 50); do curl -sf "$STUB/stats" >/dev/null && break; sleep 0.1; done
curl -sf "$STUB/stats" >/dev/null || die "the stub did not start on $STUB_PORT ($(cat "$work/stub.log"))"

# ---- helpers ----------------------------------------------------------------
field() { # KEY LINE: the value of KEY=... in a RESULT line
  sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"
}

calc() { awk "BEGIN { printf \"%s\", $* }"; }

store_uri() { # STORE TAG: a fresh store for one point
  case $1 in
    sqlite) echo "sqlite:$work/$2.db" ;;
    mongodb) echo "$MONGO/${RUN_ID}_${2//[^a-zA-Z0-9]/_}" ;;
  esac
}

# start_dtmq STORE_URI KAFKA_MODE TOPIC_PREFIX [more flags]
start_dtmq() {
  local uri=$1 kafka=$2 prefix=$3
  shift 3
  "$BIN/dtmq" --http-host 127.0.0.1 --http-port "$HTTP_PORT" --store "$uri" --kafka "$kafka" \
    --kafka-topic-prefix "$prefix" --kafka-group "$prefix" --log-level warn "$@" \
    >>"$work/dtmq.log" 2>&1 &
  DTMQ_PID=$!
  # up, and with Kafka: its ingress group has formed (it holds partitions)
  local want='"version"'
  [ "$kafka" != off ] && want='"assigned_partitions":[1-9]'
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$HTTP_PORT/api/info" 2>/dev/null | grep -q "$want" && return 0
    kill -0 "$DTMQ_PID" 2>/dev/null || break
    sleep 0.1
  done
  tail -5 "$work/dtmq.log" >&2
  die "dtmq did not start ($uri, kafka $kafka)"
}

stop_dtmq() { stop_pid "$DTMQ_PID" 15; DTMQ_PID=""; }

start_worker() { # TOPIC GROUP
  "$BENCH/bench_kafka" worker --bootstrap "$KAFKA" --topics "$1" --group "$2" --threads 4 \
    >>"$work/worker.log" 2>&1 &
  WORKER_PID=$!
  # the worker prints its "threads on" line once its group has formed
  local before=$1 i
  for i in $(seq 1 350); do
    grep -q "threads on $before\$" "$work/worker.log" 2>/dev/null && return 0
    kill -0 "$WORKER_PID" 2>/dev/null || die "the bench worker died (see $work/worker.log)"
    sleep 0.1
  done
  die "the bench worker's group did not form within 35 s"
}

stop_worker() { stop_pid "$WORKER_PID" 15; WORKER_PID=""; }

# dtmq's counters: "op count sum" per store op, and "finished N".
scrape() {
  curl -sf "http://127.0.0.1:$HTTP_PORT/api/metrics" | awk '
    /^dtmq_store_operation_seconds_count\{/ { match($0, /op="[a-z_]+"/); op = substr($0, RSTART + 4, RLENGTH - 5); cnt[op] = $NF }
    /^dtmq_store_operation_seconds_sum\{/ { match($0, /op="[a-z_]+"/); op = substr($0, RSTART + 4, RLENGTH - 5); sum[op] = $NF }
    /^dtm_transaction_process_total\{/ { fin += $NF }
    END { for (op in cnt) print op, cnt[op], sum[op] + 0; print "finished", fin + 0, 0 }'
}

# Waits (at most 10 s) until dtmq has no unfinished transaction, so that the
# store operations and branch calls counted per transaction are of whole
# transactions (the generator stops with transactions still in flight).
# Sets QUIESCE_NOTE when it had to give up.
quiesce() {
  local deadline=$(($(date +%s) + 10)) open=""
  QUIESCE_NOTE=""
  while [ "$(date +%s)" -lt "$deadline" ]; do
    open=$(curl -sf "http://127.0.0.1:$HTTP_PORT/api/metrics" | awk '
      /^dtmq_transactions/ && /status="(prepared|submitted|aborting)"/ { n += $NF } END { print n + 0 }')
    [ "${open:-1}" = 0 ] && return 0
    sleep 0.5
  done
  QUIESCE_NOTE=" (approximate: $open transactions still unfinished 10 s after the window)"
}

stub_calls() { curl -sf "$STUB/stats" | sed 's/[^0-9,]//g' | awk -F, '{ print $1 + $2 + $3 }'; }

# Per-transaction store operations between two scrapes: sets OPS
# ("op=n,op=n", the ops the ceiling can do), OPS_ALL (every op, for the
# report), STORE_MS (store time per transaction, ms) and FINISHED.
per_txn_ops() { # BEFORE AFTER
  local line
  line=$(awk '
    NR == FNR { c0[$1] = $2; s0[$1] = $3; next }
    { c1[$1] = $2; s1[$1] = $3 }
    END {
      n = c1["finished"] - c0["finished"]
      if (n <= 0) { print "0|||0"; exit }
      ops = ""; all = ""; ms = 0
      for (op in c1) {
        if (op == "finished" || op == "count_by_status" || op == "ping") continue
        d = (c1[op] - c0[op]) / n
        if (d <= 0) continue
        ms += (s1[op] - s0[op]) * 1000 / n
        all = all (all == "" ? "" : ", ") sprintf("%s=%.2f (%.2f ms each)", op, d, (s1[op] - s0[op]) * 1000 / (c1[op] - c0[op]))
        if (op ~ /^(create_trans|find_trans|touch_cron|update_branches|change_status|claim_due)$/ && d >= 0.01)
          ops = ops (ops == "" ? "" : ",") sprintf("%s=%.3f", op, d)
      }
      printf "%d|%s|%s|%.2f\n", n, ops, all, ms
    }' "$1" "$2")
  IFS='|' read -r FINISHED OPS OPS_ALL STORE_MS <<<"$line"
}

# ---- ceilings (cached per shape and concurrency) --------------------------------
declare -A CEIL_CACHE

http_ceiling() { # CONC REQUESTS: txn/s of the generator calling the stub directly
  local key="http:$1:$2"
  if [ -z "${CEIL_CACHE[$key]:-}" ]; then
    local r
    r=$("$BENCH/bench_http" --mode direct --target "127.0.0.1:$STUB_PORT" --path /ok \
      --requests "$2" --concurrency "$1" --seconds "$SECS" --warmup 1 --drain "$DRAIN" \
      --stub-pid "$STUB_PID" | grep '^RESULT' || true)
    echo "   ceiling http x$2 c$1: $r" >&2
    CEIL_CACHE[$key]=$(field tps "$r")
  fi
  echo "${CEIL_CACHE[$key]:-0}"
}

kafka_ceiling() { # CONC HOPS SIZE
  local key="kafka:$1:$2:$3"
  if [ -z "${CEIL_CACHE[$key]:-}" ]; then
    local r
    r=$("$BENCH/bench_kafka" ceiling --bootstrap "$KAFKA" --concurrency "$1" --hops "$2" \
      --size "$3" --seconds "$SECS" --warmup 1 --drain "$DRAIN" | grep '^RESULT' || true)
    echo "   ceiling kafka ${2}hops c$1: $r" >&2
    CEIL_CACHE[$key]=$(field tps "$r")
  fi
  echo "${CEIL_CACHE[$key]:-0}"
}

store_ceiling() { # STORE CONC TAG OPS STEPS ACTION TRANS_TYPE
  [ -n "$4" ] || { echo 0; return; }
  local r
  r=$("$BENCH/bench_store" --uri "$(store_uri "$1" "ceil_$3")" --ops "$4" --concurrency "$2" \
    --seconds "$SECS" --warmup 1 --steps "$5" --action "$6" --compensate "$6" \
    --trans-type "$7" | grep '^RESULT' || true)
  echo "   ceiling store c$2 ($4): $r" >&2
  local t
  t=$(field tps "$r")
  echo "${t:-0}"
}

min_pos() { awk -v a="$1" -v b="$2" 'BEGIN { if (a <= 0) print b; else if (b <= 0 || a < b) print a; else print b }'; }

# ---- profiles of missed targets ------------------------------------------------------
profiled=""
# profile_point LABEL COMMAND...: re-runs a point's generator with perf attached to dtmq
profile_point() {
  local label=$1
  shift
  [ "$PROFILE" = 1 ] && command -v perf >/dev/null || return 0
  case " $profiled " in *" $label "*) return 0 ;; esac
  profiled="$profiled $label"
  local data=$work/perf.data
  perf record -q -F 499 -g -p "$DTMQ_PID" -o "$data" -- sleep "$SECS" >/dev/null 2>&1 &
  local perf_pid=$!
  "$@" >/dev/null 2>&1 || true
  wait "$perf_pid" 2>/dev/null || true
  {
    echo
    echo "#### Profile: $label"
    echo
    echo "\`perf record -F 499 -g\` on dtmq during a re-run of the point; top symbols by self time:"
    echo
    echo '```'
    perf report -i "$data" --stdio --no-children --sort dso,symbol 2>/dev/null |
      grep -E '^ +[0-9]+\.[0-9]+%' | sed 's/[ -]*$//' | head -20 || true
    echo '```'
    echo
  } >>"$notes"
  rm -f "$data"
}

# ---- results ----------------------------------------------------------------------
# add_row SCENARIO STORE CONC RESULT_LINE CEIL_NAME CEIL_TPS TARGET MET DETAILS
add_row() {
  local r=$4 tps ratio details=$9 stub_cpu
  stub_cpu=$(field cpu_stub "$r")
  tps=$(field tps "$r")
  [ -n "$(field cpu_gen "$r")" ] && details="$details; CPU (cores) generator $(field cpu_gen "$r")${stub_cpu:+, stub $stub_cpu}"
  ratio=$(awk -v t="${tps:-0}" -v c="${6:-0}" 'BEGIN { if (c > 0) printf "%.2f", t / c; else print "-" }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$1" "$2" "$3" "${tps:-0}" "$(field p50_ms "$r")" "$(field p99_ms "$r")" "$(field p999_ms "$r")" \
    "$(field cpu_dtmq "$r")" "$(field hwm_dtmq_kb "$r")" "$5" "${6:-0}" "$ratio" "$7" "$8" "$details" \
    "$(field errors "$r")" >>"$results"
  printf '   %-10s %-7s c=%-4s %9s txn/s p99 %8s ms  ceiling %s %s  ratio %s  %s: %s\n' "$1" "$2" "$3" \
    "${tps:-0}" "$(field p99_ms "$r")" "$5" "${6:-0}" "$ratio" "$7" "$8" >&2
}

# ---- scenarios -------------------------------------------------------------------------

# One HTTP-ingress point: fresh dtmq, generator, counters. Sets RESULT, OPS,
# OPS_ALL, STORE_MS, FINISHED, BRANCH_HTTP (branch calls per transaction).
LAST_BRANCH_HTTP=""
LAST_OPS=""
http_point() { # STORE TAG CONC KAFKA_MODE GENERATOR-ARGS...
  local store=$1 tag=$2 conc=$3 kafka=$4
  shift 4
  start_dtmq "$(store_uri "$store" "$tag")" "$kafka" "${RUN_ID}${tag}."
  local warm=$WARM
  [ "$kafka" != off ] && start_worker "${RUN_ID}${tag}.branch" "${RUN_ID}${tag}w" && warm=$KWARM
  scrape >"$work/m0"
  local s0 s1
  s0=$(stub_calls)
  RESULT=$("$BENCH/bench_http" --target "127.0.0.1:$HTTP_PORT" --concurrency "$conc" \
    --seconds "$SECS" --warmup "$warm" --drain "$DRAIN" --pid "$DTMQ_PID" --stub-pid "$STUB_PID" \
    "$@" | grep '^RESULT' || true)
  quiesce
  s1=$(stub_calls)
  scrape >"$work/m1"
  per_txn_ops "$work/m0" "$work/m1"
  OPS_ALL="$OPS_ALL$QUIESCE_NOTE"
  if [ -n "$QUIESCE_NOTE" ] && [ -n "$LAST_OPS" ]; then
    OPS=$LAST_OPS # the ceiling does the whole counts of the last point that drained
  elif [ -z "$QUIESCE_NOTE" ]; then
    LAST_OPS=$OPS
  fi
  BRANCH_HTTP=$(awk -v a="$s0" -v b="$s1" -v n="$FINISHED" 'BEGIN { if (n > 0) printf "%.0f", (b - a) / n; else print 0 }')
  # with transactions left unfinished the division is off: keep the last whole count
  if [ -n "$QUIESCE_NOTE" ] && [ -n "$LAST_BRANCH_HTTP" ]; then
    BRANCH_HTTP=$LAST_BRANCH_HTTP
  elif [ -z "$QUIESCE_NOTE" ]; then
    LAST_BRANCH_HTTP=$BRANCH_HTTP
  fi
  echo "   $tag c$conc: $RESULT" >&2
  echo "   store ops per txn: $OPS_ALL; store time per txn ${STORE_MS} ms; branch HTTP calls per txn $BRANCH_HTTP" >&2
}

scenario_dtm() { # STORE
  local store=$1 conc=10 tag="dtm_$1"
  log "dtm [$store]: saga of 2 empty-URL steps, HTTP submit with wait_result, $conc clients"
  local gen=(--mode dtm --steps 2 --action "" --compensate "")
  http_point "$store" "$tag" "$conc" off "${gen[@]}"
  local st ht ceil met
  st=$(store_ceiling "$store" "$conc" "$tag" "$OPS" 2 "" saga)
  ht=$(http_ceiling "$conc" 1)
  ceil=$(min_pos "$st" "$ht")
  met=$(awk -v t="$(field tps "$RESULT")" 'BEGIN { print (t >= 10000) ? "yes" : "no" }')
  add_row dtm "$store" "$conc" "$RESULT" "min(store $st, http $ht)" "$ceil" ">= 10000 txn/s, durable" "$met" \
    "ops/txn $OPS_ALL; store ms/txn $STORE_MS"
  if [ "$met" = no ]; then
    note_miss "dtm [$store] c$conc" "$RESULT" "$OPS_ALL" "$STORE_MS" "store ceiling $st txn/s, HTTP ceiling $ht txn/s"
    profile_point "dtm[$store]" "$BENCH/bench_http" --target "127.0.0.1:$HTTP_PORT" \
      --concurrency "$conc" --seconds "$SECS" --warmup 0 --drain "$DRAIN" "${gen[@]}"
  fi
  stop_dtmq
}

scenario_saga_http() { # STORE
  local store=$1 conc
  LAST_BRANCH_HTTP="" LAST_OPS=""
  for conc in $CONCS; do
    local tag="sagahttp_${store}_$conc"
    log "saga-http [$store] c$conc: saga of 2 HTTP branches against the stub"
    local gen=(--mode dtm --steps 2 --action "$STUB/ok" --compensate "$STUB/ok")
    http_point "$store" "$tag" "$conc" off "${gen[@]}"
    local st ht met tps p99
    ht=$(http_ceiling "$conc" $((1 + BRANCH_HTTP)))
    st=$(store_ceiling "$store" "$conc" "$tag" "$OPS" 2 "$STUB/ok" saga)
    tps=$(field tps "$RESULT")
    p99=$(field p99_ms "$RESULT")
    met=$(awk -v t="${tps:-0}" -v c="$ht" -v p="${p99:-1e9}" 'BEGIN { print (c > 0 && t >= 0.5 * c && p <= 50) ? "yes" : "no" }')
    add_row saga-http "$store" "$conc" "$RESULT" "http x$((1 + BRANCH_HTTP)) (store $st)" "$ht" \
      ">= 0.50 of http, p99 <= 50 ms" "$met" "ops/txn $OPS_ALL; store ms/txn $STORE_MS"
    if [ "$met" = no ]; then
      note_miss "saga-http [$store] c$conc" "$RESULT" "$OPS_ALL" "$STORE_MS" "HTTP ceiling $ht txn/s ($((1 + BRANCH_HTTP)) requests per transaction), store ceiling $st txn/s"
      profile_point "saga-http[$store]" "$BENCH/bench_http" --target "127.0.0.1:$HTTP_PORT" \
        --concurrency "$conc" --seconds "$SECS" --warmup 0 --drain "$DRAIN" "${gen[@]}"
    fi
    stop_dtmq
  done
}

# Kafka saga: 6 messages one after the other per transaction (submit,
# branch 1, reply 1, branch 2, reply 2, the finished reply); sizes about 200 B.
KAFKA_SAGA_HOPS=6
scenario_saga_kafka() { # STORE
  local store=$1 conc
  for conc in $KCONCS; do
    local tag="sagakafka_${store}_$conc" prefix
    prefix="${RUN_ID}sagakafka_${store}_$conc."
    log "saga-kafka [$store] c$conc: Kafka ingress, 2 kafka:// branches answered by workers"
    start_dtmq "$(store_uri "$store" "$tag")" "$KAFKA" "$prefix"
    start_worker "${prefix}branch" "${prefix}w"
    scrape >"$work/m0"
    local gen=(submit --bootstrap "$KAFKA" --submit-topic "${prefix}submit" --steps 2
      --action "kafka://${prefix}branch" --compensate "kafka://${prefix}branch")
    RESULT=$("$BENCH/bench_kafka" "${gen[@]}" --concurrency "$conc" --seconds "$SECS" \
      --warmup "$KWARM" --drain "$DRAIN" --pid "$DTMQ_PID" | grep '^RESULT' || true)
    quiesce
    scrape >"$work/m1"
    per_txn_ops "$work/m0" "$work/m1"
    OPS_ALL="$OPS_ALL$QUIESCE_NOTE"
    echo "   $tag: $RESULT" >&2
    echo "   store ops per txn: $OPS_ALL; store time per txn ${STORE_MS} ms" >&2
    local kt st ceil met
    kt=$(kafka_ceiling "$conc" "$KAFKA_SAGA_HOPS" 200)
    st=$(store_ceiling "$store" "$conc" "$tag" "$OPS" 2 "kafka://${prefix}branch" saga)
    ceil=$(min_pos "$kt" "$st")
    met=$(awk -v t="$(field tps "$RESULT")" -v c="$ceil" 'BEGIN { print (c > 0 && t + 0 >= 0.5 * c) ? "yes" : "no" }')
    add_row saga-kafka "$store" "$conc" "$RESULT" "min(kafka ${KAFKA_SAGA_HOPS}hops $kt, store $st)" "$ceil" \
      ">= 0.50 of min(kafka, store)" "$met" "ops/txn $OPS_ALL; store ms/txn $STORE_MS"
    if [ "$met" = no ]; then
      note_miss "saga-kafka [$store] c$conc" "$RESULT" "$OPS_ALL" "$STORE_MS" "Kafka ceiling $kt txn/s, store ceiling $st txn/s"
      profile_point "saga-kafka[$store]" "$BENCH/bench_kafka" "${gen[@]}" --concurrency "$conc" \
        --seconds "$SECS" --warmup 0 --drain "$DRAIN"
    fi
    stop_worker
    stop_dtmq
  done
}

# 2-phase msg: dtmq publishes the one branch, a worker consumes it: one
# message per transaction on the Kafka path.
scenario_msg_kafka() { # STORE
  local store=$1 conc
  LAST_BRANCH_HTTP="" LAST_OPS=""
  for conc in $KCONCS; do
    local tag="msgkafka_${store}_$conc" prefix
    prefix="${RUN_ID}${tag}."
    log "msg-kafka [$store] c$conc: 2-phase msg (HTTP prepare + submit), one kafka:// branch"
    local gen=(--mode msg --action "kafka://${prefix}branch" --query-prepared "$STUB/ok")
    http_point "$store" "$tag" "$conc" "$KAFKA" "${gen[@]}"
    local kt st ceil met
    kt=$(kafka_ceiling "$conc" 1 200)
    st=$(store_ceiling "$store" "$conc" "$tag" "$OPS" 1 "kafka://${prefix}branch" msg)
    ceil=$(min_pos "$kt" "$st")
    met=$(awk -v t="$(field tps "$RESULT")" -v c="$ceil" 'BEGIN { print (c > 0 && t + 0 >= 0.5 * c) ? "yes" : "no" }')
    add_row msg-kafka "$store" "$conc" "$RESULT" "min(kafka 1hop $kt, store $st)" "$ceil" \
      ">= 0.50 of min(kafka, store)" "$met" "ops/txn $OPS_ALL; store ms/txn $STORE_MS"
    if [ "$met" = no ]; then
      note_miss "msg-kafka [$store] c$conc" "$RESULT" "$OPS_ALL" "$STORE_MS" "Kafka ceiling $kt txn/s, store ceiling $st txn/s"
      profile_point "msg-kafka[$store]" "$BENCH/bench_http" --target "127.0.0.1:$HTTP_PORT" \
        --concurrency "$conc" --seconds "$SECS" --warmup 0 --drain "$DRAIN" "${gen[@]}"
    fi
    stop_worker
    stop_dtmq
  done
}

count_status() { # STATUS: transactions in that status, from dtmq's metrics
  curl -sf "http://127.0.0.1:$HTTP_PORT/api/metrics" |
    sed -n "s/^dtmq_transactions{status=\"$1\"} \([0-9.e+]*\).*/\1/p" | awk '{ printf "%d", $1 }'
}

scenario_pending() { # STORE
  local store=$1 tag="pending_$1" uri count=$PENDING
  [ "$store" = mongodb ] && count=$PENDING_MONGODB
  uri=$(store_uri "$store" "$tag")
  log "pending [$store]: up to $count sagas whose branch answers ONGOING (at most ${PENDING_SECS}s to create)"
  kill -USR2 "$STUB_PID" # /pending answers ONGOING
  local flags=(--retry-interval-max 7200 --trans-cron-interval 1)
  start_dtmq "$uri" off "${RUN_ID}${tag}." "${flags[@]}"
  sleep 1
  local rss0 p0 fill created
  rss0=$(awk '/^VmRSS/ { print $2 }' "/proc/$DTMQ_PID/status")
  p0=$(curl -sf "$STUB/stats" | sed 's/.*"pending":\([0-9]*\).*/\1/')
  fill=$("$BENCH/bench_http" --mode pending --target "127.0.0.1:$HTTP_PORT" --count "$count" \
    --max-seconds "$PENDING_SECS" --concurrency 32 --steps 1 --action "$STUB/pending" \
    --compensate "$STUB/ok" --extra '"retry_interval":3600,"timeout_to_fail":86400' \
    --drain "$DRAIN" --pid "$DTMQ_PID" | grep '^RESULT' || true)
  created=$(field txn "$fill")
  echo "   fill: $fill" >&2
  # every created transaction has had its first pass when the stub saw its call
  local t_wait=$(($(date +%s) + 60)) p1=0
  while [ "$(date +%s)" -lt "$t_wait" ]; do
    p1=$(curl -sf "$STUB/stats" | sed 's/.*"pending":\([0-9]*\).*/\1/')
    [ $((p1 - p0)) -ge "${created:-0}" ] && break
    sleep 1
  done
  sleep 2
  local rss1 hwm1 per_txn
  rss1=$(awk '/^VmRSS/ { print $2 }' "/proc/$DTMQ_PID/status")
  hwm1=$(awk '/^VmHWM/ { print $2 }' "/proc/$DTMQ_PID/status")
  per_txn=$(awk -v a="$rss0" -v b="$rss1" -v n="${created:-0}" 'BEGIN { if (n > 0) printf "%.0f", (b - a) * 1024 / n; else print 0 }')
  echo "   pending: created ${created:-0}, first passes $((p1 - p0)), dtmq RSS ${rss0} kB -> ${rss1} kB (peak ${hwm1} kB): ${per_txn} B per pending transaction" >&2
  # restart with the branch answering SUCCESS, and time until all succeeded
  stop_dtmq
  kill -USR1 "$STUB_PID"
  local t0 t1 done_n=0 moved cpu0 resume_secs
  t0=$(date +%s.%N)
  start_dtmq "$uri" off "${RUN_ID}${tag}." "${flags[@]}"
  cpu0=$(awk '{ print $14 + $15 }' "/proc/$DTMQ_PID/stat")
  scrape >"$work/m0"
  # the transactions sleep until their retry interval: wake them all (DTM's resetCronTime)
  for _ in $(seq 1 1000); do
    moved=$(curl -sf "http://127.0.0.1:$HTTP_PORT/api/dtmsvr/resetCronTime?timeout=0&limit=100000")
    case $moved in *'"has_remaining": false'* | *'"has_remaining":false'*) break ;; esac
  done
  local deadline
  deadline=$(($(date +%s) + RESUME_SECS))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    done_n=$(count_status succeed)
    [ "${done_n:-0}" -ge "${created:-1}" ] && break
    sleep 0.5
  done
  t1=$(date +%s.%N)
  resume_secs=$(calc "$t1 - $t0")
  scrape >"$work/m1"
  per_txn_ops "$work/m0" "$work/m1"
  local resume_ops="store ops per finished txn while resuming: ${OPS_ALL:-none}, store ms/txn ${STORE_MS}"
  local cpu1 hwm2 resume_rate
  cpu1=$(awk '{ print $14 + $15 }' "/proc/$DTMQ_PID/stat")
  hwm2=$(awk '/^VmHWM/ { print $2 }' "/proc/$DTMQ_PID/status")
  resume_rate=$(calc "${done_n:-0} / $resume_secs")
  echo "   resume: ${done_n} of ${created} succeeded ${resume_secs}s after the restart (${resume_rate} txn/s), peak RSS ${hwm2} kB" >&2
  local met=no
  [ "${per_txn:-99999}" -le 2048 ] && met=yes
  local cpu_cores
  cpu_cores=$(awk -v a="$cpu0" -v b="$cpu1" -v s="$resume_secs" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f", (b - a) / hz / s }')
  local row="RESULT tps=$(printf '%.1f' "$resume_rate") p50_ms=- p99_ms=- p999_ms=- cpu_dtmq=$cpu_cores hwm_dtmq_kb=$hwm2 errors=$(field errors "$fill")"
  add_row pending "$store" 32 "$row" "-" 0 "<= 2048 B/pending txn" "$met" \
    "created ${created:-0} ($(field tps "$fill") txn/s); RSS ${rss0}->${rss1} kB = ${per_txn} B/txn; resumed ${done_n}/${created} in ${resume_secs}s; $resume_ops"
  if [ "$met" = no ]; then
    echo "- pending [$store]: ${per_txn} B of dtmq RSS per pending transaction (RSS ${rss0} kB idle, ${rss1} kB with ${created} pending, peak ${hwm1} kB)." >>"$notes"
  fi
  PENDING_SUMMARY+=("$store|${created:-0}|$(field tps "$fill")|$rss0|$rss1|$per_txn|$done_n|$resume_secs|$resume_rate|$hwm2")
  stop_dtmq
}
PENDING_SUMMARY=()

# note_miss LABEL RESULT OPS STORE_MS CEILINGS: the facts behind a missed target
note_miss() {
  local busy
  busy=$(awk -v c="$(field cpu_dtmq "$2")" -v t="$(field tps "$2")" -v s="$4" -v p="$(field p50_ms "$2")" 'BEGIN {
    if (t <= 0) { print "no transaction finished"; exit }
    printf "dtmq spent %.0f us of CPU per transaction; each transaction spent %.2f ms in store calls of its %.2f ms median latency", c * 1e6 / t, s, p
    if (c < 0.5) printf " (dtmq used under half a core: it waits more than it computes)"
  }')
  {
    echo "- $1: $(field tps "$2") txn/s, p99 $(field p99_ms "$2") ms, dtmq CPU $(field cpu_dtmq "$2") cores," \
      "generator $(field cpu_gen "$2"), stub $(field cpu_stub "$2"); $5;" \
      "store operations per transaction: $3. $busy."
  } >>"$notes"
}

# ---- the run -------------------------------------------------------------------------------
for store in $STORES; do
  for sc in $SCENARIOS; do
    case $sc in
      dtm) scenario_dtm "$store" ;;
      saga-http) scenario_saga_http "$store" ;;
      saga-kafka) scenario_saga_kafka "$store" ;;
      msg-kafka) scenario_msg_kafka "$store" ;;
      pending) scenario_pending "$store" ;;
      *) die "unknown scenario '$sc'" ;;
    esac
  done
done

# ---- the report ----------------------------------------------------------------------------
elapsed=$(($(date +%s) - started))
mem_kb=$(awk '/^MemTotal/ { print $2 }' /proc/meminfo)
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
kafka_version=$(sed -n 's/^VERSION=\(.*\)/\1/p' tests/services/kafka.sh)
mongo_server_version=$(sed -n 's/^VERSION=\(.*\)/\1/p' tests/services/mongo.sh)

report() {
  echo "_Generated by \`make bench\` (tests/bench/run.sh) on $(date -u '+%Y-%m-%d %H:%M UTC') in ${elapsed} s;" \
    "each point: ${WARM} s warmup (${KWARM} s with Kafka branches), ${SECS} s measured._"
  echo
  echo "| machine | |"
  echo "|---|---|"
  echo "| cores | $(nproc) |"
  echo "| memory | $((mem_kb / 1024)) MiB |"
  echo "| CPU | ${cpu_model:-unknown} |"
  echo "| kernel | $(uname -r) |"
  echo "| load average at the end | $(cut -d' ' -f1-3 /proc/loadavg) |"
  echo
  echo "| versions | |"
  echo "|---|---|"
  echo "| dtmq | $("$BIN/dtmq" --version 2>/dev/null | awk '{ print $NF }') (release build, -O2) |"
  echo "| SQLite | $(pkg-config --modversion sqlite3) (WAL, synchronous=NORMAL + group commit: dtmq fsyncs the WAL before any answer) |"
  echo "| librdkafka | $(pkg-config --modversion rdkafka) |"
  echo "| libmongoc | $(pkg-config --modversion libmongoc-1.0) |"
  echo "| Kafka | ${kafka_version:-?} (KRaft, one broker, tests/services/kafka.sh) |"
  echo "| MongoDB-protocol server | mongo-java-server ${mongo_server_version:-?} (H2 file backend, tests/services/mongo.sh) |"
  echo
  echo "| scenario | store | conc | txn/s | p50 ms | p99 ms | p999 ms | dtmq CPU (cores) | dtmq peak RSS (MiB) | ceiling | ceiling txn/s | ratio | target | met |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---|"
  awk -F'\t' '{
    rss = ($9 ~ /^[0-9]+$/) ? sprintf("%.1f", $9 / 1024) : "-"
    err = ($16 != "" && $16 != "0") ? sprintf(" (%s errors)", $16) : ""
    printf "| %s | %s | %s | %s%s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, err, $5, $6, $7, $8, rss, $10, $11, $12, $13, $14
  }' "$results"
  echo
  echo "Details per point (store operations per transaction counted from dtmq's metrics, store time per transaction):"
  echo
  awk -F'\t' '{ printf "- %s [%s] c%s: %s\n", $1, $2, $3, $15 }' "$results"
  if [ "${#PENDING_SUMMARY[@]}" -gt 0 ]; then
    echo
    echo "| pending | created | create txn/s | dtmq RSS idle (kB) | RSS with them (kB) | B per pending txn | finished after restart | seconds | txn/s | peak RSS (kB) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for p in "${PENDING_SUMMARY[@]}"; do
      echo "| ${p//|/ | } |"
    done
  fi
  if [ -s "$notes" ]; then
    echo
    echo "### Missed targets: the facts and profiles"
    echo
    cat "$notes"
  fi
}
report >"$work/report.md"

echo
echo "== results (tab-separated: scenario store conc txn/s p50 p99 p999 cpu rss_kb ceiling ceiling_tps ratio target met)"
cut -f1-14 "$results" | column -t -s$'\t'
echo

if [ -n "$OUT" ]; then
  if [ ! -f "$OUT" ] || ! grep -q '<!-- bench:begin -->' "$OUT"; then
    printf '# Benchmarks\n\n<!-- bench:begin -->\n<!-- bench:end -->\n' >>"$OUT"
  fi
  awk -v report="$work/report.md" '
    /<!-- bench:begin -->/ { print; while ((getline line < report) > 0) print line; skip = 1; next }
    /<!-- bench:end -->/ { skip = 0 }
    !skip { print }' "$OUT" >"$work/out.md"
  cp "$work/out.md" "$OUT"
  echo "run.sh: wrote $OUT (${elapsed} s)"
fi
