# lib.sh — sourced by the tests of the worked examples (tests/examples/*.sh):
# Check-style counting of assertions, background processes that are stopped
# on exit, bounded waits, and small readers of dtmq's and PostgreSQL's state.
#
# A test script calls check_eq/check_true for every assertion and ends with
# ex_finish, which stops what it started (checking that each example program
# exits cleanly and left no sanitizer report) and prints, as its very last
# line, Check's summary "P%: Checks: N, Failures: F, Errors: E"; its exit
# status is 0 only when nothing failed. A script may define ex_cleanup (run
# by ex_finish when everything passed, e.g. to drop its schemas). ex_fatal ends a script early (a
# service that does not start): one error, the summary, exit 1.
#
# Environment (set by tests/run.sh; defaults for running by hand):
#   DTMQ_TEST_BIN        the dtmq binary                (build/asan/dtmq)
#   DTMQ_EXAMPLES_BIN    where the example binaries are  (build/asan/examples)
#   DTMQ_TEST_POSTGRES   libpq connection string of the test database (required)
#   DTMQ_TEST_KAFKA      Kafka bootstrap (the outbox test only)
#   EX_KEEP_LOGS=1       keep the processes' logs (in /tmp/dtmq-example-*) even
#                        when everything passed

EX_SCRIPT=$(basename "$0")
EX_CHECKS=0
EX_FAILS=0
EX_ERRORS=0
EX_FINISHED=0
EX_TMP=$(mktemp -d "/tmp/dtmq-example-XXXXXX")
declare -A EX_PID=()     # name -> pid of a running background process
declare -A EX_WRAP=()    # name -> pid of the subshell that waits for it
declare -A EX_LOG=()     # name -> its log file
declare -A EX_CLEAN=()   # name -> 1 when it must exit 0 and log no sanitizer report

DTMQ_TEST_BIN=${DTMQ_TEST_BIN:-build/asan/dtmq}
DTMQ_EXAMPLES_BIN=${DTMQ_EXAMPLES_BIN:-build/asan/examples}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

# ---- counting -----------------------------------------------------------------

# check_eq CASE DESCRIPTION WANT GOT
check_eq() {
  EX_CHECKS=$((EX_CHECKS + 1))
  if [ "$3" == "$4" ]; then
    echo "ok    $1: $2 ($4)"
  else
    echo "$EX_SCRIPT:${BASH_LINENO[0]}:F:$1: $2: want '$3', got '$4'"
    EX_FAILS=$((EX_FAILS + 1))
  fi
}

# check_true CASE DESCRIPTION COMMAND...: passes when COMMAND exits 0
check_true() {
  local c=$1 d=$2
  shift 2
  EX_CHECKS=$((EX_CHECKS + 1))
  if "$@"; then
    echo "ok    $c: $d"
  else
    echo "$EX_SCRIPT:${BASH_LINENO[0]}:F:$c: $d: failed: $*"
    EX_FAILS=$((EX_FAILS + 1))
  fi
}

ex_summary() {
  local pct=0
  [ "$EX_CHECKS" -gt 0 ] && pct=$(((EX_CHECKS - EX_FAILS - EX_ERRORS) * 100 / EX_CHECKS))
  echo "$pct%: Checks: $EX_CHECKS, Failures: $EX_FAILS, Errors: $EX_ERRORS"
}

# ---- background processes ----------------------------------------------------------

# ex_start NAME CLEAN COMMAND...: runs COMMAND in the background, output to
# $EX_TMP/NAME.log. CLEAN 1: at the end it must exit 0 on SIGTERM (our example
# programs); 0: not checked. COMMAND runs under a small subshell that records
# its exit status, so that bash's "Killed" notices stay out of the output.
ex_start() {
  local name=$1 clean=$2 i
  shift 2
  EX_LOG[$name]=$EX_TMP/$name.log
  rm -f "$EX_TMP/$name.pid" "$EX_TMP/$name.rc"
  (
    "$@" >>"${EX_LOG[$name]}" 2>&1 </dev/null &
    echo $! >"$EX_TMP/$name.pid"
    wait $!
    echo $? >"$EX_TMP/$name.rc"
  ) 2>/dev/null &
  EX_WRAP[$name]=$!
  for i in $(seq 1 100); do
    [ -s "$EX_TMP/$name.pid" ] && break
    sleep 0.05
  done
  EX_PID[$name]=$(cat "$EX_TMP/$name.pid" 2>/dev/null)
  EX_CLEAN[$name]=$clean
}

# ex_stop NAME [SIGNAL]: signals it (TERM by default), waits up to 20 s (then
# KILL), forgets it; its exit status (128+N when killed by signal N) goes into
# EX_RC. (Not in $(...): a subshell cannot wait for this shell's children.)
EX_RC=0
ex_stop() {
  local name=$1 sig=${2:-TERM} pid=${EX_PID[$1]:-} i
  EX_RC=0
  [ -n "$pid" ] || return 0
  kill -"$sig" "$pid" 2>/dev/null
  for i in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "${EX_WRAP[$name]}" 2>/dev/null
  EX_RC=$(cat "$EX_TMP/$name.rc" 2>/dev/null || echo 255)
  unset "EX_PID[$name]" "EX_WRAP[$name]"
}

# ex_running NAME: 0 when it still runs.
ex_running() { [ -n "${EX_PID[$1]:-}" ] && kill -0 "${EX_PID[$1]}" 2>/dev/null; }
ex_exited() { ! ex_running "$1"; }

# ex_reap NAME: waits (up to 20 s) for a process that ends on its own (a
# simulated crash), forgets it; its exit status goes into EX_RC.
ex_reap() {
  wait_until 20 ex_exited "$1"
  ex_stop "$1" KILL
}

ex_no_sanitizer_report() { ! grep -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$1" >/dev/null 2>&1; }

# Stops everything still running; checks that the example programs exit
# cleanly and that no log (dtmq's included) holds a sanitizer report.
ex_stop_all() {
  local name
  for name in $(printf '%s\n' "${!EX_PID[@]}" | sort); do
    ex_stop "$name"
    if [ "${EX_CLEAN[$name]}" = 1 ]; then
      check_eq end "$name exits cleanly on SIGTERM" 0 "$EX_RC"
    fi
  done
  for name in $(printf '%s\n' "${!EX_LOG[@]}" | sort); do
    check_true end "no sanitizer report in $name's log" ex_no_sanitizer_report "${EX_LOG[$name]}"
  done
}

# ex_finish: stops everything, prints the summary last, exits.
ex_finish() {
  ex_stop_all
  EX_FINISHED=1
  if [ "$EX_FAILS" -eq 0 ] && [ "$EX_ERRORS" -eq 0 ] && [ -z "${EX_KEEP_LOGS:-}" ]; then
    # the script's own clean-up (e.g. dropping its schemas), only when all
    # passed: after a failure the database is evidence
    if declare -F ex_cleanup >/dev/null; then ex_cleanup >/dev/null 2>&1; fi
    rm -rf "$EX_TMP"
  else
    echo "logs kept in $EX_TMP"
  fi
  ex_summary
  [ "$EX_FAILS" -eq 0 ] && [ "$EX_ERRORS" -eq 0 ]
  exit $?
}

# ex_fatal MESSAGE: the test cannot go on (a service did not start).
ex_fatal() {
  EX_CHECKS=$((EX_CHECKS + 1))
  EX_ERRORS=$((EX_ERRORS + 1))
  echo "$EX_SCRIPT:${BASH_LINENO[0]}:E:setup: $1"
  local name
  for name in "${!EX_LOG[@]}"; do
    echo "--- last lines of $name's log (${EX_LOG[$name]})"
    tail -n 15 "${EX_LOG[$name]}"
  done
  ex_finish
}

# On any other way out (a signal, an unexpected exit): stop quietly.
ex_on_exit() {
  [ "$EX_FINISHED" = 1 ] && return
  local pid
  for pid in "${EX_PID[@]}"; do kill -KILL "$pid" 2>/dev/null; done
}
trap ex_on_exit EXIT
trap 'exit 130' INT TERM

# ---- waiting -----------------------------------------------------------------------

# wait_until SECONDS COMMAND...: polls COMMAND every 0.2 s; 0 once it succeeds,
# 1 when SECONDS passed.
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  while ! "$@"; do
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 0.2
  done
}

# http_answers URL: any HTTP answer at all.
http_answers() { [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1")" != 000 ]; }

# free_port: a TCP port on 127.0.0.1 nothing listens on (outside Linux's
# ephemeral range, so an outgoing connection cannot take it meanwhile).
free_port() {
  local p i
  for i in $(seq 1 200); do
    p=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

# ---- dtmq ----------------------------------------------------------------------------

# dtmq_start NAME PORT ARGS...: dtmq on 127.0.0.1:PORT with its store in
# $EX_TMP/NAME.db and short intervals, plus ARGS; waits for /api/ping.
dtmq_start() {
  local name=$1 port=$2
  shift 2
  ex_start "$name" 0 "$DTMQ_TEST_BIN" --http-host 127.0.0.1 --http-port "$port" \
    --store "sqlite:$EX_TMP/$name.db" --retry-interval 1 --retry-interval-max 2 \
    --trans-cron-interval 1 --request-timeout 5 "$@"
  wait_until 60 http_answers "http://127.0.0.1:$port/api/ping" ||
    ex_fatal "dtmq ($name) did not answer on port $port within 60 s"
}

# trans_status DTM_API GID: the transaction's status ("" when unknown).
trans_status() {
  curl -s --max-time 5 "$1/query?gid=$2" |
    "$PY" -c 'import json,sys
try: t=json.load(sys.stdin).get("transaction") or {}
except Exception: t={}
print(t.get("status",""))'
}

# branch_statuses DTM_API GID: "branch_id op status" lines, sorted.
branch_statuses() {
  curl -s --max-time 5 "$1/query?gid=$2" |
    "$PY" -c 'import json,sys
try: bs=json.load(sys.stdin).get("branches") or []
except Exception: bs=[]
for l in sorted("%s %s %s" % (b.get("branch_id"), b.get("op"), b.get("status")) for b in bs): print(l)'
}

# status_is DTM_API GID WANT
status_is() { [ "$(trans_status "$1" "$2")" = "$3" ]; }

# ---- PostgreSQL -------------------------------------------------------------------------

# sql QUERY: runs it on the test database; prints the rows (fields |-separated).
sql() { psql "$DTMQ_TEST_POSTGRES" -X -q -A -t -v ON_ERROR_STOP=1 -c "$1" 2>&1; }

# apply_barrier_schema: the barrier's table (idempotent).
apply_barrier_schema() {
  psql "$DTMQ_TEST_POSTGRES" -X -q -v ON_ERROR_STOP=1 -f schemas/barrier/postgres.sql \
    >/dev/null 2>"$EX_TMP/barrier-schema.log"
}
