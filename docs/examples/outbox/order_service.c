/*
 * order_service.c — the order side of the outbox example (README.md next to
 * this file): an HTTP service that takes orders and tells the stock service
 * about each one exactly when the order was really written, with a 2-phase
 * message (msg) through dtmq instead of an outbox table.
 *
 *   POST /api/CreateOrder    {"order_id":"1001","sku":"sku-42","count":2}
 *        1. prepare the msg gid "order-1001" with dtmq (its step: the
 *           Kafka topic kafka://TOPIC, payload = the order);
 *        2. in ONE local PostgreSQL transaction: insert the order row and
 *           the msg's barrier row (dtmq_barrier_pg_call);
 *        3. submit the msg: dtmq publishes the order to TOPIC.
 *        (dtmq_msg_do_and_submit does 1 to 3.)
 *   GET  /api/QueryPrepared  dtmq's question when a prepared msg was never
 *        submitted (the service died between 2 and 3, or before 2): answered
 *        from the barrier row, 200 when the local transaction committed
 *        (dtmq then delivers), 409 when it did not (dtmq drops the msg; the
 *        answer also makes sure it never commits later).
 *
 * Crash simulation: --crash-before-commit kills the process (SIGKILL) inside
 * the local transaction, after the order's INSERT and before COMMIT;
 * --crash-after-commit kills it right after COMMIT, before the submit.
 *
 *   order_service --port 8080 --schema orders --topic stock.reserve \
 *     --db "host=127.0.0.1 dbname=dtmq_test user=postgres" \
 *     --dtm http://127.0.0.1:36789/api/dtmsvr
 * It creates <schema>.orders if missing; the barrier table
 * dtm_barrier.barrier (schemas/barrier/postgres.sql) must exist.
 */
#define _POSIX_C_SOURCE 200809L
#include <dtmq/dtmq_barrier.h>
#include <dtmq/dtmq_client.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/example_http.h"
#include "../common/example_pg.h"

/* ---- configuration --------------------------------------------------------- */

typedef struct config {
    const char *host, *db, *schema, *dtm, *topic;
    long port;
    char public_url[256];        /* how dtmq reaches this service */
    int crash_before_commit;     /* SIGKILL inside the local transaction */
    int crash_after_commit;      /* SIGKILL after COMMIT, before submit */
    dtmq_client *client;
} config;

static void usage(FILE *to)
{
    fprintf(to,
            "usage: order_service --port N --schema NAME --db CONNINFO --topic TOPIC\n"
            "                     [--dtm URL] [--host ADDR] [--public-url URL]\n"
            "                     [--crash-before-commit | --crash-after-commit]\n"
            "  --topic TOPIC        the msg's step is kafka://TOPIC\n"
            "  --dtm URL            dtmq's API (default http://127.0.0.1:36789/api/dtmsvr)\n"
            "  --public-url URL     this service as dtmq reaches it (default http://HOST:PORT)\n"
            "  --crash-before-commit  die (SIGKILL) inside the local transaction\n"
            "  --crash-after-commit   die (SIGKILL) after the local commit, before submit\n");
}

/* Stores option a (value v) in c: 1 when a took the value, 0 for a flag
 * without value, -1 when a is unknown or v is bad. */
static int set_option(config *c, const char *a, const char *v)
{
    if (strcmp(a, "--crash-before-commit") == 0) {
        c->crash_before_commit = 1;
        return 0;
    }
    if (strcmp(a, "--crash-after-commit") == 0) {
        c->crash_after_commit = 1;
        return 0;
    }
    if (v == NULL)
        return -1;
    if (strcmp(a, "--port") == 0)
        return ex_parse_long(v, 1, 65535, &c->port) == 0 ? 1 : -1;
    if (strcmp(a, "--schema") == 0) {
        c->schema = v;
        return ex_sql_identifier_ok(v) ? 1 : -1;
    }
    if (strcmp(a, "--public-url") == 0) {
        int n = snprintf(c->public_url, sizeof(c->public_url), "%s", v);
        return n > 0 && (size_t)n < sizeof(c->public_url) ? 1 : -1;
    }
    const char **field = strcmp(a, "--db") == 0      ? &c->db
                         : strcmp(a, "--dtm") == 0   ? &c->dtm
                         : strcmp(a, "--topic") == 0 ? &c->topic
                         : strcmp(a, "--host") == 0  ? &c->host
                                                     : NULL;
    if (field == NULL)
        return -1;
    *field = v;
    return 1;
}

static int parse_args(int argc, char **argv, config *c)
{
    *c = (config){.host = "127.0.0.1", .dtm = "http://127.0.0.1:36789/api/dtmsvr"};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        int took = set_option(c, argv[i], i + 1 < argc ? argv[i + 1] : NULL);
        if (took < 0) {
            fprintf(stderr, "order_service: bad option %s\n", argv[i]);
            return -1;
        }
        i += took;
    }
    if (c->port == 0 || c->schema == NULL || c->db == NULL || c->topic == NULL) {
        fprintf(stderr, "order_service: --port, --schema, --db and --topic are required\n");
        return -1;
    }
    if (c->public_url[0] == '\0')
        snprintf(c->public_url, sizeof(c->public_url), "http://%s:%ld", c->host, c->port);
    return 0;
}

/* ---- database ---------------------------------------------------------------- */

static int prepare_schema(const config *c, char *err, size_t errlen)
{
    PGconn *db = example_connect(c->db, err, errlen);
    if (db == NULL)
        return -1;
    char schema[128], table[512];
    snprintf(schema, sizeof(schema), "CREATE SCHEMA IF NOT EXISTS %s", c->schema);
    snprintf(table, sizeof(table),
             "CREATE TABLE IF NOT EXISTS %s.orders (order_id text PRIMARY KEY, "
             "gid text NOT NULL UNIQUE, sku text NOT NULL, count int NOT NULL, "
             "created_at timestamptz NOT NULL DEFAULT now())",
             c->schema);
    const char *statements[] = {schema, table};
    int rc = example_prepare_schema(db, statements, 2, err, errlen);
    PQfinish(db);
    return rc;
}

/* ---- the order and its local transaction ------------------------------------------- */

typedef struct order {
    const config *cfg;
    char order_id[65], gid[80], sku[65];
    long count;
} order;

/* Dies the way a crash does: no cleanup, no COMMIT, no submit. */
static void crash(const char *where, const order *o)
{
    printf("orders: order %s: crashing on purpose %s\n", o->order_id, where);
    fflush(stdout);
    raise(SIGKILL);
}

/* Inside the barrier's transaction: the business write. */
static dtmq_business_result insert_order(void *arg, PGconn *db, char *err, size_t errlen)
{
    const order *o = arg;
    char sql[256], count[24];
    snprintf(sql, sizeof(sql),
             "INSERT INTO %s.orders (order_id, gid, sku, count) VALUES ($1, $2, $3, $4::int) "
             "ON CONFLICT DO NOTHING",
             o->cfg->schema);
    snprintf(count, sizeof(count), "%ld", o->count);
    const char *p[] = {o->order_id, o->gid, o->sku, count};
    PGresult *r = NULL;
    if (example_sql(db, sql, 4, p, &r, err, errlen) != 0)
        return DTMQ_BUSINESS_RETRY;
    int inserted = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    if (!inserted) {
        snprintf(err, errlen, "order %s exists already", o->order_id);
        return DTMQ_BUSINESS_FAILURE;
    }
    if (o->cfg->crash_before_commit)
        crash("before the local COMMIT", o);
    return DTMQ_BUSINESS_OK;
}

/*
 * The local transaction dtmq_msg_do_and_submit runs between prepare and
 * submit: the order row and the msg's barrier row ({gid, msg, 00, msg}) in
 * one PostgreSQL transaction. 0 committed; DTMQ_ERR_FAILURE rolled back for
 * good (then the msg is aborted); anything else: unknown (the SDK asks
 * QueryPrepared, which settles it).
 */
static int local_transaction(void *arg, const dtmq_branch_ref *ref, char *err, size_t errlen)
{
    order *o = arg;
    dtmq_branch_info b;
    if (dtmq_branch_info_from_fields(ref->gid, ref->trans_type, ref->branch_id, ref->op, &b, err,
                                     errlen) != 0)
        return DTMQ_ERR_INVALID;
    PGconn *db = example_connect(o->cfg->db, err, errlen);
    if (db == NULL)
        return DTMQ_ERR_UNREACHABLE;
    dtmq_barrier_outcome r =
        dtmq_barrier_pg_call(db, &b, DTMQ_BARRIER_FIRST_ID, insert_order, o, err, errlen);
    PQfinish(db);
    printf("orders: order %s (gid %s): local transaction %s%s%s\n", o->order_id, o->gid,
           dtmq_barrier_outcome_name(r), err[0] ? ": " : "", err);
    if (r == DTMQ_BARRIER_DONE && o->cfg->crash_after_commit)
        crash("after the local COMMIT, before the submit", o);
    if (r == DTMQ_BARRIER_DONE)
        return DTMQ_OK;
    if (r == DTMQ_BARRIER_MSG_DUPLICATE)
        snprintf(err, errlen, "gid %s was settled before (committed, or rolled back by "
                              "QueryPrepared)", o->gid);
    return r == DTMQ_BARRIER_DB_ERROR ? DTMQ_ERR_UNREACHABLE : DTMQ_ERR_FAILURE;
}

/* Reads {"order_id","sku","count"} into o: 0, or -1 with err. */
static int parse_order(const char *body, order *o, char *err, size_t errlen)
{
    json_error_t je;
    json_t *j = json_loads(body, 0, &je);
    json_t *id = json_object_get(j, "order_id"), *sku = json_object_get(j, "sku"),
           *count = json_object_get(j, "count");
    const char *ids = json_string_value(id), *skus = json_string_value(sku);
    const char *id_chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-";
    int ok = ids != NULL && strlen(ids) >= 1 && strlen(ids) < sizeof(o->order_id) &&
             strspn(ids, id_chars) == strlen(ids) && skus != NULL && strlen(skus) >= 1 &&
             strlen(skus) < sizeof(o->sku) && json_is_integer(count) &&
             json_integer_value(count) >= 1 && json_integer_value(count) <= 1000000;
    if (ok) {
        snprintf(o->order_id, sizeof(o->order_id), "%s", ids);
        snprintf(o->sku, sizeof(o->sku), "%s", skus);
        snprintf(o->gid, sizeof(o->gid), "order-%s", ids);
        o->count = (long)json_integer_value(count);
    } else {
        snprintf(err, errlen, "body must be {\"order_id\": \"<1..64 of [A-Za-z0-9_-]>\", "
                              "\"sku\": \"<1..64 chars>\", \"count\": <1..1000000>}");
    }
    json_decref(j);
    return ok ? 0 : -1;
}

/* The msg: one step, the Kafka topic, with the order as its payload. NULL
 * only when out of memory; a bad value is kept in the msg (sticky error). */
static dtmq_trans *build_msg(const config *c, const order *o)
{
    char query_prepared[320], step[300], payload[256];
    snprintf(query_prepared, sizeof(query_prepared), "%s/api/QueryPrepared", c->public_url);
    snprintf(step, sizeof(step), "kafka://%s", c->topic);
    json_t *j = json_pack("{s:s,s:s,s:I}", "order_id", o->order_id, "sku", o->sku, "count",
                          (json_int_t)o->count);
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    snprintf(payload, sizeof(payload), "%s", text != NULL ? text : "");
    free(text);
    json_decref(j);
    dtmq_trans *msg = dtmq_msg_new(o->gid, query_prepared);
    if (msg != NULL)
        dtmq_msg_add(msg, step, payload);
    return msg;
}

static int http_status_of(int rc)
{
    switch (rc) {
    case DTMQ_OK: return 200;
    case DTMQ_ERR_FAILURE: return 409;
    case DTMQ_ERR_INVALID: return 400;
    default: return 500; /* unknown: dtmq's QueryPrepared call settles it */
    }
}

static void create_order(config *c, const ex_request *req, ex_response *resp)
{
    char err[1024];
    order o = {.cfg = c};
    if (parse_order(req->body, &o, err, sizeof(err)) != 0) {
        ex_reply_message(resp, 400, err);
        return;
    }
    dtmq_trans *msg = build_msg(c, &o);
    int rc = msg != NULL ? dtmq_msg_do_and_submit(c->client, msg, local_transaction, &o, err,
                                                  sizeof(err))
                         : DTMQ_ERR_NOMEM;
    dtmq_trans_free(msg);
    if (rc == DTMQ_OK)
        printf("orders: order %s (gid %s): msg submitted\n", o.order_id, o.gid);
    else
        printf("orders: order %s (gid %s): %s: %s\n", o.order_id, o.gid, dtmq_error_name(rc), err);
    ex_reply_json(resp, http_status_of(rc),
                  json_pack("{s:s,s:s,s:s,s:s}", "order_id", o.order_id, "gid", o.gid, "result",
                            dtmq_error_name(rc), "message", rc == DTMQ_OK ? "" : err));
}

/* dtmq asks whether the local transaction of gid committed. */
static void query_prepared(const config *c, const ex_request *req, ex_response *resp)
{
    char err[512] = "";
    dtmq_branch_ref ref;
    if (dtmq_branch_from_query(req->query, &ref, err, sizeof(err)) != DTMQ_OK) {
        ex_reply_message(resp, 400, err);
        return;
    }
    PGconn *db = example_connect(c->db, err, sizeof(err));
    int status = db != NULL ? dtmq_barrier_pg_query_prepared(db, ref.gid, err, sizeof(err)) : -1;
    PQfinish(db);
    printf("orders: QueryPrepared gid=%s -> %d%s%s\n", ref.gid, status, err[0] ? ": " : "",
           err);
    if (status == 200 || status == 409)
        ex_reply_json(resp, status, json_pack("{s:s}", "dtm_result",
                                              status == 200 ? "SUCCESS" : "FAILURE"));
    else
        ex_reply_message(resp, 500, err);
}

static void handle(void *arg, const ex_request *req, ex_response *resp)
{
    config *c = arg;
    if (strcmp(req->path, "/api/CreateOrder") == 0 && strcmp(req->method, "POST") == 0)
        create_order(c, req, resp);
    else if (strcmp(req->path, "/api/QueryPrepared") == 0)
        query_prepared(c, req, resp);
    else
        ex_reply_message(resp, 404, "no such route");
}

int main(int argc, char **argv)
{
    sigset_t stop;
    ex_block_stop_signals(&stop);
    setvbuf(stdout, NULL, _IOLBF, 0);
    config c;
    if (parse_args(argc, argv, &c) != 0) {
        usage(stderr);
        return 2;
    }
    char err[512];
    if (prepare_schema(&c, err, sizeof(err)) != 0) {
        fprintf(stderr, "order_service: %s\n", err);
        return 1;
    }
    dtmq_client_options o = {.server = c.dtm};
    if ((c.client = dtmq_client_new(&o, err, sizeof(err))) == NULL) {
        fprintf(stderr, "order_service: %s\n", err);
        return 2;
    }
    ex_server *s = ex_server_start(c.host, (int)c.port, handle, &c, err, sizeof(err));
    if (s == NULL) {
        fprintf(stderr, "order_service: %s\n", err);
        dtmq_client_free(c.client);
        return 1;
    }
    printf("orders: listening on %s/api (msg step kafka://%s)%s\n", c.public_url, c.topic,
           c.crash_before_commit  ? ", will crash before the local commit"
           : c.crash_after_commit ? ", will crash after the local commit"
                                  : "");
    ex_wait_stop_signal(&stop);
    ex_server_stop(s);
    dtmq_client_free(c.client);
    printf("orders: stopped\n");
    return 0;
}
