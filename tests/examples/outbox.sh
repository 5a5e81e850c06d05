#!/usr/bin/env bash
# outbox.sh — runs the outbox example (docs/examples/outbox/) for real: dtmq
# on real Kafka ($DTMQ_TEST_KAFKA) with a SQLite store, order_service and
# stock_worker on the test PostgreSQL. Cases:
#   (a) a normal order: delivered once to the worker, stock reserved once
#   (b) the service dies after its local commit, before the submit: dtmq asks
#       QueryPrepared after the timeout, gets 200 and delivers (reserved once)
#   (c) it dies before its commit: QueryPrepared answers 409, the msg fails
#       and nothing is ever delivered (checked well past the timeout, on the
#       topic itself and in the worker's tables)
#   (d) the same Kafka message delivered twice (a duplicate produced by
#       hand): stock reserved once
# and after every case that available + reserved stock is unchanged. Last
# line: Check's summary; exit 0 only when everything passed.
#
#   DTMQ_TEST_KAFKA=127.0.0.1:19092 \
#   DTMQ_TEST_POSTGRES="host=127.0.0.1 port=15432 dbname=dtmq_test user=postgres" \
#     bash tests/examples/outbox.sh
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. tests/examples/lib.sh

[ -n "${DTMQ_TEST_POSTGRES:-}" ] || ex_fatal "DTMQ_TEST_POSTGRES is not set (a libpq connection string)"
[ -n "${DTMQ_TEST_KAFKA:-}" ] || ex_fatal "DTMQ_TEST_KAFKA is not set (a Kafka bootstrap)"
command -v kcat >/dev/null || ex_fatal "kcat is not installed"
EXB=$DTMQ_EXAMPLES_BIN/outbox
for b in order_service stock_worker; do
  [ -x "$EXB/$b" ] || ex_fatal "$EXB/$b is missing (make check builds it)"
done
[ -x "$DTMQ_TEST_BIN" ] || ex_fatal "$DTMQ_TEST_BIN is missing"

K=$DTMQ_TEST_KAFKA
RUN=$(date +%s)_$$
PREFIX=ex$RUN.            # dtmq's own topics: ex<run>.submit, .reply, ...
TOPIC=ex$RUN.stock.reserve # the msg's step: kafka://TOPIC
SO=orders_$RUN             # the order service's schema
SS=stock_$RUN              # the stock worker's schema
TIMEOUT=3                  # dtmq's --timeout-to-fail: when QueryPrepared is asked
P_DTM=$(free_port) && P_ORD=$(free_port) || ex_fatal "no free port"
DTM=http://127.0.0.1:$P_DTM/api/dtmsvr
ORDERS=http://127.0.0.1:$P_ORD/api

# ---- helpers ---------------------------------------------------------------------

ex_cleanup() { sql "DROP SCHEMA IF EXISTS $SO, $SS CASCADE"; } # when everything passed

stock() { sql "SELECT available || ' ' || reserved FROM $SS.stock WHERE sku = 'sku-42'"; }
stock_total() { sql "SELECT available + reserved FROM $SS.stock WHERE sku = 'sku-42'"; }
deliveries() { sql "SELECT count(*) FROM $SS.deliveries WHERE gid = '$1'"; }
delivery_outcomes() { sql "SELECT outcome FROM $SS.deliveries WHERE gid = '$1' ORDER BY id" | paste -sd' '; }
reservations() { sql "SELECT count(*) FROM $SS.reservations WHERE gid = '$1'"; }
orders() { sql "SELECT count(*) FROM $SO.orders WHERE gid = '$1'"; }
msg_barrier() { sql "SELECT reason FROM dtm_barrier.barrier WHERE gid = '$1' AND branch_id = '00' AND op = 'msg'"; }

# on_topic GID: how many messages keyed GID the topic holds.
on_topic() {
  timeout 30 kcat -C -b "$K" -t "$TOPIC" -e -q -f '%k\n' 2>/dev/null | grep -cx "$1"
}

# order ID: POSTs CreateOrder for 2 of sku-42; prints the HTTP status
# (000 when the service died on the way).
order() {
  curl -s --max-time 20 -o "$EX_TMP/order-$1.out" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' -d "{\"order_id\":\"$1\",\"sku\":\"sku-42\",\"count\":2}" \
    "$ORDERS/CreateOrder"
}

# start_orders [--crash-before-commit|--crash-after-commit]
start_orders() {
  ex_start orders 1 "$EXB/order_service" --port "$P_ORD" --schema "$SO" --db "$DTMQ_TEST_POSTGRES" \
    --topic "$TOPIC" --dtm "$DTM" "$@"
  wait_until 30 http_answers "$ORDERS/ping" || ex_fatal "order_service did not answer on port $P_ORD"
}

# query_prepared_answers GID: the statuses order_service's QueryPrepared gave for GID.
query_prepared_answers() {
  sed -n "s/^orders: QueryPrepared gid=$1 -> \([0-9-]*\).*/\1/p" "${EX_LOG[orders]}" | sort -u | paste -sd' '
}

# ---- set-up ---------------------------------------------------------------------------

apply_barrier_schema || ex_fatal "cannot apply schemas/barrier/postgres.sql: $(cat "$EX_TMP/barrier-schema.log")"
dtmq_start dtmq "$P_DTM" --kafka "$K" --kafka-topic-prefix "$PREFIX" --kafka-group "ex$RUN" \
  --timeout-to-fail "$TIMEOUT" --retry-interval 1
start_orders
ex_start stock 1 "$EXB/stock_worker" --kafka "$K" --group "ex$RUN.stock" --topic "$TOPIC" \
  --schema "$SS" --db "$DTMQ_TEST_POSTGRES"
wait_until 30 eval '[ "$(sql "SELECT to_regclass('"'$SS.deliveries'"') IS NOT NULL")" = t ]' ||
  ex_fatal "stock_worker did not create its tables"
seeded=$(sql "INSERT INTO $SS.stock (sku, available) VALUES ('sku-42', 100); SELECT 'seeded'")
[ "$seeded" = seeded ] || ex_fatal "cannot seed the stock: $seeded"
check_eq setup "stock before (available reserved)" "100 0" "$(stock)"

# ---- (a) a normal order ------------------------------------------------------------------------

G=order-a$RUN
check_eq a "CreateOrder answers" 200 "$(order "a$RUN")"
check_eq a "the order row" 1 "$(orders "$G")"
wait_until 30 status_is "$DTM" "$G" succeed
check_eq a "dtmq's status" succeed "$(trans_status "$DTM" "$G")"
wait_until 30 eval '[ "$(deliveries "$G")" -ge 1 ]'
sleep 2 # would a second delivery come?
check_eq a "messages on the topic" 1 "$(on_topic "$G")"
check_eq a "deliveries to the worker" 1 "$(deliveries "$G")"
check_eq a "reservations" 1 "$(reservations "$G")"
check_eq a "stock (available reserved)" "98 2" "$(stock)"
check_eq a "available + reserved" 100 "$(stock_total)"

# ---- (b) dies after the local commit, before the submit -------------------------------------------

ex_stop orders
check_eq b "order_service exits cleanly on SIGTERM" 0 "$EX_RC"
start_orders --crash-after-commit
G=order-b$RUN
check_eq b "CreateOrder gets no answer (the service died)" 000 "$(order "b$RUN")"
ex_reap orders
check_eq b "order_service was killed (SIGKILL)" 137 "$EX_RC"
check_eq b "the order row was committed" 1 "$(orders "$G")"
check_eq b "dtmq's status: prepared, never submitted" prepared "$(trans_status "$DTM" "$G")"
start_orders # the service comes back; dtmq asks it after $TIMEOUT s
wait_until 40 status_is "$DTM" "$G" succeed
check_eq b "dtmq's status after asking QueryPrepared" succeed "$(trans_status "$DTM" "$G")"
check_eq b "QueryPrepared answered" 200 "$(query_prepared_answers "$G")"
wait_until 30 eval '[ "$(deliveries "$G")" -ge 1 ]'
sleep 2
check_eq b "messages on the topic" 1 "$(on_topic "$G")"
check_eq b "deliveries to the worker" 1 "$(deliveries "$G")"
check_eq b "reservations" 1 "$(reservations "$G")"
check_eq b "stock (available reserved)" "96 4" "$(stock)"
check_eq b "available + reserved" 100 "$(stock_total)"

# ---- (c) dies before the local commit ----------------------------------------------------------------

ex_stop orders
start_orders --crash-before-commit
G=order-c$RUN
check_eq c "CreateOrder gets no answer (the service died)" 000 "$(order "c$RUN")"
ex_reap orders
check_eq c "order_service was killed (SIGKILL)" 137 "$EX_RC"
check_eq c "no order row (rolled back)" 0 "$(orders "$G")"
check_eq c "dtmq's status: prepared" prepared "$(trans_status "$DTM" "$G")"
start_orders
wait_until 40 status_is "$DTM" "$G" failed
check_eq c "dtmq's status after asking QueryPrepared" failed "$(trans_status "$DTM" "$G")"
check_eq c "QueryPrepared answered" 409 "$(query_prepared_answers "$G")"
check_eq c "the msg's barrier row says rollback" rollback "$(msg_barrier "$G")"
sleep $((3 * TIMEOUT)) # well past the timeout: still nothing may come
check_eq c "dtmq's status stays" failed "$(trans_status "$DTM" "$G")"
check_eq c "messages on the topic" 0 "$(on_topic "$G")"
check_eq c "deliveries to the worker" 0 "$(deliveries "$G")"
check_eq c "reservations" 0 "$(reservations "$G")"
check_eq c "no order row" 0 "$(orders "$G")"
check_eq c "stock unchanged" "96 4" "$(stock)"
check_eq c "available + reserved" 100 "$(stock_total)"

# ---- (d) the same Kafka message twice -------------------------------------------------------------------

G=order-d$RUN
check_eq d "CreateOrder answers" 200 "$(order "d$RUN")"
wait_until 30 eval '[ "$(deliveries "$G")" -ge 1 ]'
check_eq d "first delivery" DONE "$(delivery_outcomes "$G")"
# copy dtmq's message (partition, key, headers, value) and produce it again
line=$(timeout 30 kcat -C -b "$K" -t "$TOPIC" -e -q -f '%p\t%k\t%h\t%s\n' 2>/dev/null | awk -F"\t" -v g="$G" '$2 == g')
IFS=$'\t' read -r part key headers value <<<"$line"
hdr=()
IFS=',' read -ra hs <<<"$headers"
for h in "${hs[@]}"; do hdr+=(-H "$h"); done
check_eq d "dtmq's message has the dtm-* headers" "dtm-gid=$G" "${hs[0]:-none}"
printf '%s\n' "$value" | timeout 30 kcat -P -b "$K" -t "$TOPIC" -p "$part" -k "$key" "${hdr[@]}" 2>"$EX_TMP/kcat.log"
check_eq d "the duplicate was produced" 0 "$?"
wait_until 30 eval '[ "$(deliveries "$G")" -ge 2 ]'
check_eq d "messages on the topic" 2 "$(on_topic "$G")"
check_eq d "deliveries: the second one is skipped" "DONE SKIPPED_DUPLICATE" "$(delivery_outcomes "$G")"
check_eq d "reservations" 1 "$(reservations "$G")"
check_eq d "stock (available reserved): reserved once" "94 6" "$(stock)"
check_eq d "available + reserved" 100 "$(stock_total)"

ex_finish
