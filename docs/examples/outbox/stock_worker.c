/*
 * stock_worker.c — the stock side of the outbox example (README.md next to
 * this file): a Kafka worker (dtmq_worker.h) that consumes the orders dtmq
 * publishes to TOPIC (the msg's step kafka://TOPIC) and reserves stock for
 * each, exactly once however often a message arrives.
 *
 * Kafka delivers at least once: a message comes again after a worker crash,
 * a rebalance, or a producer retry. The reservation therefore runs inside
 * dtmq_barrier_pg_call keyed by the message's dtm-gid, dtm-branch-id and
 * dtm-op headers: the first delivery reserves, every later one is a
 * SKIPPED_DUPLICATE that changes nothing.
 *
 * Tables (created if missing) in --schema:
 *   stock(sku, available, reserved)           seed it yourself
 *   reservations(gid, order_id, sku, count)   one row per reserved order
 *   deliveries(gid, branch_id, op, kafka_partition, kafka_offset, outcome)
 *                                             every message handled, duplicates
 *                                             included (to watch the barrier work)
 *
 *   stock_worker --kafka 127.0.0.1:9092 --group stock --topic stock.reserve \
 *     --schema stock --db "host=127.0.0.1 dbname=dtmq_test user=postgres"
 */
#define _POSIX_C_SOURCE 200809L
#include <dtmq/dtmq_barrier.h>
#include <dtmq/dtmq_worker.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/example_http.h"
#include "../common/example_pg.h"

#define DB_ATTEMPTS 30 /* a database error is retried this often, 1 s apart */

typedef struct config {
    const char *kafka, *group, *topic, *db, *schema;
} config;

typedef struct worker_ctx {
    const config *cfg;
    PGconn *db; /* the handler's connection (one thread: the worker's) */
    atomic_int stopping;
    dtmq_worker *worker;
    sigset_t stop_signals;
} worker_ctx;

static void usage(FILE *to)
{
    fprintf(to, "usage: stock_worker --kafka BOOTSTRAP --group GROUP --topic TOPIC\n"
                "                    --schema NAME --db CONNINFO\n");
}

static int parse_args(int argc, char **argv, config *c)
{
    *c = (config){0};
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        const char **field = strcmp(a, "--kafka") == 0    ? &c->kafka
                             : strcmp(a, "--group") == 0  ? &c->group
                             : strcmp(a, "--topic") == 0  ? &c->topic
                             : strcmp(a, "--db") == 0     ? &c->db
                             : strcmp(a, "--schema") == 0 ? &c->schema
                                                          : NULL;
        if (field == NULL || v == NULL) {
            fprintf(stderr, "stock_worker: bad option %s\n", a);
            return -1;
        }
        *field = v;
    }
    if (!c->kafka || !c->group || !c->topic || !c->db || !ex_sql_identifier_ok(c->schema)) {
        fprintf(stderr, "stock_worker: --kafka, --group, --topic, --db and --schema (a plain "
                        "lower-case identifier) are required\n");
        return -1;
    }
    return 0;
}

/* ---- database ---------------------------------------------------------------- */

/* (Re)connects ctx->db when it is missing or broken: 0, or -1 with err. */
static int ensure_db(worker_ctx *ctx, char *err, size_t errlen)
{
    if (ctx->db != NULL && PQstatus(ctx->db) == CONNECTION_OK)
        return 0;
    PQfinish(ctx->db);
    ctx->db = PQconnectdb(ctx->cfg->db);
    if (ctx->db != NULL && PQstatus(ctx->db) == CONNECTION_OK)
        return 0;
    snprintf(err, errlen, "PostgreSQL: %s",
             ctx->db != NULL ? PQerrorMessage(ctx->db) : "out of memory");
    err[strcspn(err, "\n")] = '\0';
    return -1;
}

static int prepare_schema(worker_ctx *ctx, char *err, size_t errlen)
{
    const char *s = ctx->cfg->schema;
    char sql[4][400];
    snprintf(sql[0], sizeof(sql[0]), "CREATE SCHEMA IF NOT EXISTS %s", s);
    snprintf(sql[1], sizeof(sql[1]),
             "CREATE TABLE IF NOT EXISTS %s.stock (sku text PRIMARY KEY, "
             "available int NOT NULL CHECK (available >= 0), reserved int NOT NULL DEFAULT 0)",
             s);
    snprintf(sql[2], sizeof(sql[2]),
             "CREATE TABLE IF NOT EXISTS %s.reservations (gid text PRIMARY KEY, "
             "order_id text NOT NULL, sku text NOT NULL, count int NOT NULL, "
             "created_at timestamptz NOT NULL DEFAULT now())",
             s);
    snprintf(sql[3], sizeof(sql[3]),
             "CREATE TABLE IF NOT EXISTS %s.deliveries (id bigserial PRIMARY KEY, gid text, "
             "branch_id text, op text, kafka_partition int, kafka_offset bigint, outcome text, "
             "at timestamptz NOT NULL DEFAULT now())",
             s);
    const char *statements[] = {sql[0], sql[1], sql[2], sql[3]};
    if (ensure_db(ctx, err, errlen) != 0)
        return -1;
    return example_prepare_schema(ctx->db, statements, 4, err, errlen);
}

/* ---- the business step ---------------------------------------------------------------- */

typedef struct reservation {
    const config *cfg;
    const char *gid;
    char order_id[65], sku[65];
    long count;
} reservation;

/* Reads the payload {"order_id","sku","count"}: 0, or -1 with err. */
static int parse_payload(const dtmq_branch_msg *m, reservation *r, char *err, size_t errlen)
{
    json_error_t je;
    json_t *j = m->payload != NULL ? json_loadb(m->payload, m->payload_len, 0, &je) : NULL;
    const char *id = json_string_value(json_object_get(j, "order_id"));
    const char *sku = json_string_value(json_object_get(j, "sku"));
    json_t *count = json_object_get(j, "count");
    int ok = id != NULL && strlen(id) < sizeof(r->order_id) && sku != NULL &&
             strlen(sku) < sizeof(r->sku) && json_is_integer(count) &&
             json_integer_value(count) >= 1 && json_integer_value(count) <= 1000000;
    if (ok) {
        snprintf(r->order_id, sizeof(r->order_id), "%s", id);
        snprintf(r->sku, sizeof(r->sku), "%s", sku);
        r->count = (long)json_integer_value(count);
    } else {
        snprintf(err, errlen, "payload is not {\"order_id\",\"sku\",\"count\"}");
    }
    json_decref(j);
    return ok ? 0 : -1;
}

/* Inside the barrier's transaction: take count from available into reserved
 * and remember the reservation. */
static dtmq_business_result reserve(void *arg, PGconn *db, char *err, size_t errlen)
{
    const reservation *r = arg;
    char take[256], note[256], count[24];
    snprintf(take, sizeof(take),
             "UPDATE %s.stock SET available = available - $2::int, reserved = reserved + $2::int "
             "WHERE sku = $1 AND available >= $2::int",
             r->cfg->schema);
    snprintf(note, sizeof(note),
             "INSERT INTO %s.reservations (gid, order_id, sku, count) VALUES ($1, $2, $3, $4::int)",
             r->cfg->schema);
    snprintf(count, sizeof(count), "%ld", r->count);
    const char *p1[] = {r->sku, count}, *p2[] = {r->gid, r->order_id, r->sku, count};
    PGresult *res = NULL;
    if (example_sql(db, take, 2, p1, &res, err, errlen) != 0)
        return DTMQ_BUSINESS_RETRY;
    int taken = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    if (!taken) {
        snprintf(err, errlen, "sku %s: unknown or fewer than %ld available", r->sku, r->count);
        return DTMQ_BUSINESS_FAILURE;
    }
    return example_sql(db, note, 4, p2, NULL, err, errlen) == 0 ? DTMQ_BUSINESS_OK
                                                             : DTMQ_BUSINESS_RETRY;
}

/* Writes one row into deliveries (outside the barrier: every delivery). */
static void note_delivery(worker_ctx *ctx, const dtmq_branch_msg *m, const char *outcome)
{
    char sql[256], part[16], off[24], err[256];
    snprintf(sql, sizeof(sql),
             "INSERT INTO %s.deliveries (gid, branch_id, op, kafka_partition, kafka_offset, "
             "outcome) VALUES ($1, $2, $3, $4::int, $5::bigint, $6)",
             ctx->cfg->schema);
    snprintf(part, sizeof(part), "%d", m->partition);
    snprintf(off, sizeof(off), "%lld", m->offset);
    const char *p[] = {m->gid, m->branch_id, m->op, part, off, outcome};
    if (ensure_db(ctx, err, sizeof(err)) != 0 || example_sql(ctx->db, sql, 6, p, NULL, err,
                                                          sizeof(err)) != 0)
        fprintf(stderr, "stock_worker: cannot note the delivery of %s: %s\n", m->gid, err);
}

static void pause_one_second(void)
{
    struct timespec ts = {.tv_sec = 1};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* The barrier call, retried on database errors (a msg branch is not called
 * again by dtmq: once Kafka has the message, its delivery is up to us). */
static dtmq_barrier_outcome reserve_once(worker_ctx *ctx, const dtmq_branch_info *b,
                                         reservation *r, char *err, size_t errlen)
{
    dtmq_barrier_outcome o = DTMQ_BARRIER_DB_ERROR;
    for (int attempt = 1; attempt <= DB_ATTEMPTS; attempt++) {
        if (ensure_db(ctx, err, errlen) == 0)
            o = dtmq_barrier_pg_call(ctx->db, b, DTMQ_BARRIER_FIRST_ID, reserve, r, err, errlen);
        if (o != DTMQ_BARRIER_DB_ERROR || atomic_load(&ctx->stopping))
            break;
        fprintf(stderr, "stock_worker: %s: attempt %d: %s\n", b->gid, attempt, err);
        pause_one_second();
    }
    return o;
}

static dtmq_result handle(void *arg, const dtmq_branch_msg *m, char *message, size_t message_len)
{
    worker_ctx *ctx = arg;
    reservation r = {.cfg = ctx->cfg, .gid = m->gid};
    dtmq_branch_info b;
    dtmq_barrier_outcome o = DTMQ_BARRIER_BUSINESS_ERROR;
    if (parse_payload(m, &r, message, message_len) == 0 &&
        dtmq_branch_info_from_fields(m->gid, m->trans_type, m->branch_id, m->op, &b, message,
                                     message_len) == 0)
        o = reserve_once(ctx, &b, &r, message, message_len);
    const char *name = dtmq_barrier_outcome_name(o);
    printf("stock: %s[%d]@%lld gid=%s branch=%s op=%s order=%s sku=%s count=%ld -> %s%s%s\n",
           m->topic, m->partition, m->offset, m->gid, m->branch_id, m->op, r.order_id, r.sku,
           r.count, name, message[0] ? ": " : "", message);
    note_delivery(ctx, m, name);
    int status = dtmq_barrier_http_status(o);
    if (status == 200)
        return DTMQ_SUCCESS;
    /* 409: refused for good (bad payload, no stock): nothing to retry. 500:
     * still failing after DB_ATTEMPTS; the worker moves on (see README). */
    return status == 409 ? DTMQ_FAILURE : (dtmq_result)-1;
}

/* ---- start and stop ------------------------------------------------------------------ */

/* Waits for SIGINT/SIGTERM, then stops the worker (dtmq_worker_stop is
 * thread-safe but not async-signal-safe, hence this thread). */
static void *signal_thread(void *arg)
{
    worker_ctx *ctx = arg;
    ex_wait_stop_signal(&ctx->stop_signals);
    atomic_store(&ctx->stopping, 1);
    dtmq_worker_stop(ctx->worker);
    return NULL;
}

static int run_worker(worker_ctx *ctx)
{
    const char *topics[] = {ctx->cfg->topic, NULL};
    dtmq_worker_options o = {.bootstrap = ctx->cfg->kafka, .group = ctx->cfg->group,
                             .topics = topics, .handler = handle, .arg = ctx};
    char err[512];
    if (dtmq_worker_new(&o, &ctx->worker, err, sizeof(err)) != 0) {
        fprintf(stderr, "stock_worker: %s\n", err);
        return 1;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, signal_thread, ctx) != 0) {
        fprintf(stderr, "stock_worker: cannot start the signal thread\n");
        dtmq_worker_free(ctx->worker);
        return 1;
    }
    printf("stock: consuming %s in group %s\n", ctx->cfg->topic, ctx->cfg->group);
    long n = dtmq_worker_run(ctx->worker, 0, err, sizeof(err));
    if (n < 0)
        fprintf(stderr, "stock_worker: %s\n", err);
    if (!atomic_load(&ctx->stopping))
        pthread_kill(t, SIGTERM); /* the worker broke: end the signal thread too */
    pthread_join(t, NULL);
    dtmq_worker_free(ctx->worker);
    printf("stock: stopped after %ld messages\n", n);
    return n < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    worker_ctx ctx = {0};
    ex_block_stop_signals(&ctx.stop_signals);
    setvbuf(stdout, NULL, _IOLBF, 0);
    config c;
    if (parse_args(argc, argv, &c) != 0) {
        usage(stderr);
        return 2;
    }
    ctx.cfg = &c;
    char err[512];
    int rc = 1;
    if (prepare_schema(&ctx, err, sizeof(err)) != 0)
        fprintf(stderr, "stock_worker: %s\n", err);
    else
        rc = run_worker(&ctx);
    PQfinish(ctx.db);
    return rc;
}
