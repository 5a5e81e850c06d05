#!/usr/bin/env bash
# bank_transfer.sh — runs the bank-transfer example (docs/examples/bank-transfer/)
# for real: dtmq (SQLite store, no Kafka), two account_service processes
# (bank1 and bank2, each with its own schema in the test PostgreSQL), and the
# transfer client. Cases:
#   (a) a transfer succeeds: A-30, B+30
#   (b) TransIn answers 409 (account frozen): the saga fails, everything is
#       compensated, balances unchanged (also: TransOut refusing for funds)
#   (c) the same branch call delivered 3 times by hand (curl): effect once;
#       compensations likewise; null compensation and hanging are skipped
#   (d) dtmq is killed (kill -9) while TransIn runs and started again: the
#       saga ends and the balances are consistent
# and after every case that the sum of all balances is unchanged. Last line:
# Check's summary; exit 0 only when everything passed.
#
#   DTMQ_TEST_POSTGRES="host=127.0.0.1 port=15432 dbname=dtmq_test user=postgres" \
#     bash tests/examples/bank_transfer.sh
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. tests/examples/lib.sh

[ -n "${DTMQ_TEST_POSTGRES:-}" ] || ex_fatal "DTMQ_TEST_POSTGRES is not set (a libpq connection string)"
EXB=$DTMQ_EXAMPLES_BIN/bank-transfer
for b in account_service transfer; do
  [ -x "$EXB/$b" ] || ex_fatal "$EXB/$b is missing (make check builds it)"
done
[ -x "$DTMQ_TEST_BIN" ] || ex_fatal "$DTMQ_TEST_BIN is missing"

RUN=$(date +%s)_$$
S1=bank1_$RUN # each bank's schema, fresh for this run
S2=bank2_$RUN
P_DTM=$(free_port) && P1=$(free_port) && P2=$(free_port) || ex_fatal "no free port"
DTM=http://127.0.0.1:$P_DTM/api/dtmsvr
BANK1=http://127.0.0.1:$P1/api
BANK2=http://127.0.0.1:$P2/api

# ---- helpers ---------------------------------------------------------------------

ex_cleanup() { sql "DROP SCHEMA IF EXISTS $S1, $S2 CASCADE"; } # when everything passed

balance() { sql "SELECT balance FROM $1.account WHERE id = '$2'"; }
balances() { echo "A=$(balance "$S1" A) B=$(balance "$S2" B)"; }
total() { sql "SELECT (SELECT sum(balance) FROM $S1.account) + (SELECT sum(balance) FROM $S2.account)"; }
barrier_rows() { sql "SELECT count(*) FROM dtm_barrier.barrier WHERE gid = '$1'"; }

# transfer GID [ARGS...]: runs the client; its output in $EX_TMP/GID.out, exit status in T_RC.
transfer() {
  local gid=$1
  shift
  timeout 60 "$EXB/transfer" --dtm "$DTM" --bank1 "$BANK1" --bank2 "$BANK2" --gid "$gid" "$@" \
    >"$EX_TMP/$gid.out" 2>&1
  T_RC=$?
}
result_line() { grep '^result:' "$EX_TMP/$1.out" | cut -c1-24; }

# branch_call URL GID BRANCH OP BODY: one call as dtmq makes it; prints
# "<http status> <barrier outcome>".
branch_call() {
  local out
  out=$(curl -s --max-time 20 -w ' %{http_code}' -X POST -H 'Content-Type: application/json' \
    -d "$5" "$1?gid=$2&trans_type=saga&branch_id=$3&op=$4")
  echo "${out##* } $(sed -n 's/.*"barrier":"\([A-Z_]*\)".*/\1/p' <<<"$out")"
}

# start_bank NAME PORT SCHEMA [ARGS...]
start_bank() {
  local name=$1 port=$2 schema=$3
  shift 3
  ex_start "$name" 1 "$EXB/account_service" --port "$port" --schema "$schema" \
    --db "$DTMQ_TEST_POSTGRES" "$@"
  wait_until 30 http_answers "http://127.0.0.1:$port/api/ping" ||
    ex_fatal "account_service $name did not answer on port $port"
}

# ---- set-up ---------------------------------------------------------------------------

apply_barrier_schema || ex_fatal "cannot apply schemas/barrier/postgres.sql: $(cat "$EX_TMP/barrier-schema.log")"
dtmq_start dtmq "$P_DTM" --kafka off
start_bank bank1 "$P1" "$S1"
start_bank bank2 "$P2" "$S2"
seeded=$(sql "INSERT INTO $S1.account (id, balance) VALUES ('A', 100);
              INSERT INTO $S2.account (id, balance) VALUES ('B', 100);
              SELECT 'seeded'")
[ "$seeded" = seeded ] || ex_fatal "cannot seed the accounts: $seeded"
check_eq setup "balances before" "A=100 B=100" "$(balances)"

# ---- (a) a successful transfer ------------------------------------------------------------

G=a_$RUN
transfer "$G"
check_eq a "transfer exits 0" 0 "$T_RC"
check_eq a "transfer prints" "result: succeeded" "$(result_line "$G")"
check_eq a "dtmq's status" succeed "$(trans_status "$DTM" "$G")"
check_eq a "balances" "A=70 B=130" "$(balances)"
check_eq a "barrier rows (01 action, 02 action)" 2 "$(barrier_rows "$G")"
check_eq a "sum of all balances" 200 "$(total)"

# ---- (b) TransIn refuses (409): rolled back and compensated --------------------------------------

sql "UPDATE $S2.account SET frozen = true WHERE id = 'B'" >/dev/null
G=b_$RUN
transfer "$G"
check_eq b "transfer exits 1 (failed)" 1 "$T_RC"
check_eq b "transfer prints" "result: failed, every st" "$(result_line "$G")"
check_eq b "dtmq's status" failed "$(trans_status "$DTM" "$G")"
check_eq b "branches" "01 action succeed|01 compensate succeed|02 action failed|02 compensate succeed" \
  "$(branch_statuses "$DTM" "$G" | paste -sd'|')"
check_eq b "balances unchanged" "A=70 B=130" "$(balances)"
# TransIn's credit was rolled back with its barrier row; the compensation that
# came next found no action row: a null compensation, which left this marker
check_eq b "TransIn's barrier row was written by its compensation" compensate \
  "$(sql "SELECT reason FROM dtm_barrier.barrier WHERE gid = '$G' AND branch_id = '02' AND op = 'action'")"
check_eq b "sum of all balances" 200 "$(total)"
sql "UPDATE $S2.account SET frozen = false WHERE id = 'B'" >/dev/null

G=b2_$RUN # TransOut refuses: more than the balance
transfer "$G" --amount 1000
check_eq b "a transfer of 1000 exits 1 (failed)" 1 "$T_RC"
check_eq b "its status" failed "$(trans_status "$DTM" "$G")"
check_eq b "balances unchanged" "A=70 B=130" "$(balances)"
check_eq b "sum of all balances" 200 "$(total)"

# ---- (c) duplicates, null compensation, hanging -------------------------------------------------

G=c_$RUN
out=()
for i in 1 2 3; do out+=("$(branch_call "$BANK1/TransOut" "$G" 01 action '{"account":"A","amount":30}')"); done
check_eq c "TransOut delivered 3 times, one after the other" \
  "200 DONE|200 SKIPPED_DUPLICATE|200 SKIPPED_DUPLICATE" "$(IFS='|'; echo "${out[*]}")"
for i in 1 2 3; do # at the same time: the barrier makes two of them wait, then skip
  branch_call "$BANK2/TransIn" "$G" 02 action '{"account":"B","amount":30}' >"$EX_TMP/c-in-$i" &
done
wait_until 30 eval '[ "$(cat "$EX_TMP"/c-in-* 2>/dev/null | grep -c .)" = 3 ]'
check_eq c "TransIn delivered 3 times at once" \
  "200 DONE|200 SKIPPED_DUPLICATE|200 SKIPPED_DUPLICATE" "$(cat "$EX_TMP"/c-in-* | sort | paste -sd'|')"
check_eq c "balances: each effect once" "A=40 B=160" "$(balances)"
check_eq c "sum of all balances" 200 "$(total)"
out=()
for i in 1 2 3; do
  out+=("$(branch_call "$BANK1/TransOutRevert" "$G" 01 compensate '{"account":"A","amount":30}')")
  out+=("$(branch_call "$BANK2/TransInRevert" "$G" 02 compensate '{"account":"B","amount":30}')")
done
check_eq c "both compensations delivered 3 times" \
  "200 DONE|200 DONE|200 SKIPPED_DUPLICATE|200 SKIPPED_DUPLICATE|200 SKIPPED_DUPLICATE|200 SKIPPED_DUPLICATE" \
  "$(printf '%s\n' "${out[@]}" | sort | paste -sd'|')"
check_eq c "balances: compensated once" "A=70 B=130" "$(balances)"
check_eq c "sum of all balances" 200 "$(total)"
G=c2_$RUN # the compensation arrives before its action
check_eq c "TransInRevert before TransIn" "200 SKIPPED_NULL_COMPENSATION" \
  "$(branch_call "$BANK2/TransInRevert" "$G" 02 compensate '{"account":"B","amount":30}')"
check_eq c "TransIn after its compensation (hanging)" "200 SKIPPED_HANGING" \
  "$(branch_call "$BANK2/TransIn" "$G" 02 action '{"account":"B","amount":30}')"
check_eq c "balances unchanged" "A=70 B=130" "$(balances)"
check_eq c "sum of all balances" 200 "$(total)"

# ---- (d) dtmq killed (kill -9) mid-saga, started again ----------------------------------------------

ex_stop bank2 # again, with a TransIn that takes 3 s inside its transaction
check_eq d "bank2 exits cleanly on SIGTERM" 0 "$EX_RC"
start_bank bank2 "$P2" "$S2" --slow-trans-in 3000
G=d_$RUN
ex_start transfer_d 0 timeout 60 "$EXB/transfer" --dtm "$DTM" --bank1 "$BANK1" --bank2 "$BANK2" --gid "$G"
wait_until 20 eval '[ "$(balance "$S1" A)" = 40 ]'
sleep 1 # TransOut is committed; TransIn is in its 3 s
check_eq d "killed mid-saga: TransOut done, TransIn not yet" "A=40 B=130" "$(balances)"
ex_stop dtmq KILL
check_eq d "dtmq killed" 137 "$EX_RC"
ex_reap transfer_d
check_eq d "transfer exits 2 (outcome unknown: dtmq did not answer)" 2 "$EX_RC"
dtmq_start dtmq "$P_DTM" --kafka off # same store file, same port
wait_until 60 status_is "$DTM" "$G" succeed
check_eq d "dtmq's status after the restart" succeed "$(trans_status "$DTM" "$G")"
check_eq d "balances" "A=40 B=160" "$(balances)"
check_eq d "TransIn's effect happened once" 1 \
  "$(grep -c "TransIn gid=$G .*-> DONE" "${EX_LOG[bank2]}")"
check_eq d "barrier rows" 2 "$(barrier_rows "$G")"
check_eq d "sum of all balances" 200 "$(total)"

ex_finish
