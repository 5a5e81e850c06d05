/*
 * account_service.c — one bank of the bank-transfer example (README.md next
 * to this file): an HTTP service holding accounts in PostgreSQL, with the
 * four saga branches dtmq calls for a transfer.
 *
 *   POST /api/TransOut        debit   {"account":"A","amount":30}   (saga action)
 *   POST /api/TransOutRevert  credit it back                         (its compensation)
 *   POST /api/TransIn         credit  {"account":"B","amount":30}   (saga action)
 *   POST /api/TransInRevert   debit it back                          (its compensation)
 *
 * dtmq calls each with ?gid=..&trans_type=saga&branch_id=..&op=action|compensate.
 * Every balance update runs inside dtmq_barrier_pg_call, in one local
 * transaction with the barrier's row, so a call delivered twice is done once,
 * a compensation whose action never ran does nothing (null compensation),
 * and an action arriving after its compensation does nothing (hanging).
 *
 * Business failures answer 409, which makes dtmq roll the saga back: TransOut
 * when the balance is too low or the account frozen, TransIn when the account
 * is frozen (set `frozen = true` on the row to simulate it). TransIn credits
 * first and refuses afterwards, to show the barrier rolling the credit back
 * together with its own row.
 *
 * Run one process per bank, each with its own schema in the same database:
 *   account_service --port 8081 --schema bank1 --db "host=127.0.0.1 dbname=dtmq_test user=postgres"
 * It creates <schema>.account if missing; the barrier table
 * dtm_barrier.barrier (schemas/barrier/postgres.sql) must exist.
 */
#define _POSIX_C_SOURCE 200809L
#include <dtmq/dtmq_barrier.h>
#include <dtmq/dtmq_client.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/example_http.h"
#include "../common/example_pg.h"

/* ---- configuration --------------------------------------------------------- */

typedef struct config {
    const char *host;
    long port;
    const char *db;     /* libpq connection string */
    const char *schema; /* where this bank's account table lives */
    long slow_ms;       /* TransIn sleeps this long inside its transaction (demo of a crash) */
} config;

static void usage(FILE *to)
{
    fprintf(to, "usage: account_service --port N --schema NAME --db CONNINFO [--host ADDR]\n"
                "                       [--slow-trans-in MS]\n"
                "  --port N             HTTP port (1..65535)\n"
                "  --schema NAME        PostgreSQL schema of this bank's account table\n"
                "  --db CONNINFO        libpq connection string, e.g. \"host=127.0.0.1 "
                "dbname=dtmq_test user=postgres\"\n"
                "  --host ADDR          IPv4 address to listen on (default 127.0.0.1)\n"
                "  --slow-trans-in MS   TransIn waits MS ms inside its transaction (to have\n"
                "                       time to kill dtmq mid-saga)\n");
}

/* Reads argv into c: 0, or -1 after printing why. */
static int parse_args(int argc, char **argv, config *c)
{
    *c = (config){.host = "127.0.0.1"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (v == NULL) {
            fprintf(stderr, "account_service: %s needs a value\n", a);
            return -1;
        }
        i++;
        if (strcmp(a, "--port") == 0 && ex_parse_long(v, 1, 65535, &c->port) == 0)
            continue;
        if (strcmp(a, "--slow-trans-in") == 0 && ex_parse_long(v, 0, 600000, &c->slow_ms) == 0)
            continue;
        if (strcmp(a, "--schema") == 0 && ex_sql_identifier_ok(v)) {
            c->schema = v;
            continue;
        }
        if (strcmp(a, "--db") == 0) {
            c->db = v;
            continue;
        }
        if (strcmp(a, "--host") == 0) {
            c->host = v;
            continue;
        }
        fprintf(stderr, "account_service: bad option %s %s\n", a, v);
        return -1;
    }
    if (c->port == 0 || c->schema == NULL || c->db == NULL) {
        fprintf(stderr, "account_service: --port, --schema and --db are required\n");
        return -1;
    }
    return 0;
}

/* ---- database helpers ---------------------------------------------------------- */

/* Creates <schema>.account when missing and checks the barrier table. */
static int prepare_schema(const config *c, char *err, size_t errlen)
{
    PGconn *db = example_connect(c->db, err, errlen);
    if (db == NULL)
        return -1;
    char schema[128], table[512];
    snprintf(schema, sizeof(schema), "CREATE SCHEMA IF NOT EXISTS %s", c->schema);
    snprintf(table, sizeof(table),
             "CREATE TABLE IF NOT EXISTS %s.account (id text PRIMARY KEY, "
             "balance bigint NOT NULL CHECK (balance >= 0), "
             "frozen boolean NOT NULL DEFAULT false)",
             c->schema);
    const char *statements[] = {schema, table};
    int rc = example_prepare_schema(db, statements, 2, err, errlen);
    PQfinish(db);
    return rc;
}

/* ---- the business functions (run inside the barrier's transaction) ------------ */

/* One branch call's request: which account, how much. */
typedef struct transfer {
    const config *cfg;
    char account[65];
    long amount;
} transfer;

/* Locks the account row: 0 with balance and frozen, 1 when there is no such
 * account, -1 on a database error (err). */
static int lock_account(PGconn *db, const transfer *t, long long *balance, int *frozen, char *err,
                        size_t errlen)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT balance, frozen FROM %s.account WHERE id = $1 FOR UPDATE",
             t->cfg->schema);
    const char *p[] = {t->account};
    PGresult *r = NULL;
    if (example_sql(db, sql, 1, p, &r, err, errlen) != 0)
        return -1;
    int found = PQntuples(r) == 1;
    if (found) {
        *balance = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        *frozen = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
    }
    PQclear(r);
    return found ? 0 : 1;
}

/* balance += delta on the account; 0, 1 when there is no such account
 * (nothing changed), -1 on a database error. *frozen (may be NULL) gets the
 * account's frozen flag. */
static int add_to_balance(PGconn *db, const transfer *t, long delta, int *frozen, char *err,
                          size_t errlen)
{
    char sql[256], amount[32];
    snprintf(sql, sizeof(sql),
             "UPDATE %s.account SET balance = balance + $2::bigint WHERE id = $1 RETURNING frozen",
             t->cfg->schema);
    snprintf(amount, sizeof(amount), "%ld", delta);
    const char *p[] = {t->account, amount};
    PGresult *r = NULL;
    if (example_sql(db, sql, 2, p, &r, err, errlen) != 0)
        return -1;
    int found = PQntuples(r) == 1;
    if (found && frozen != NULL)
        *frozen = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return found ? 0 : 1;
}

/* Saga action of the paying bank: debit, refusing (409) when the account is
 * missing, frozen, or too poor. */
static dtmq_business_result trans_out(void *arg, PGconn *db, char *err, size_t errlen)
{
    const transfer *t = arg;
    long long balance = 0;
    int frozen = 0;
    int rc = lock_account(db, t, &balance, &frozen, err, errlen);
    if (rc < 0)
        return DTMQ_BUSINESS_RETRY;
    if (rc > 0) {
        snprintf(err, errlen, "no account %s", t->account);
        return DTMQ_BUSINESS_FAILURE;
    }
    if (frozen || balance < t->amount) {
        snprintf(err, errlen, "account %s: %s", t->account,
                 frozen ? "frozen" : "insufficient funds");
        return DTMQ_BUSINESS_FAILURE;
    }
    return add_to_balance(db, t, -t->amount, NULL, err, errlen) == 0 ? DTMQ_BUSINESS_OK
                                                                      : DTMQ_BUSINESS_RETRY;
}

/* Waits ms milliseconds (the --slow-trans-in demo). */
static void pause_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (ms > 0 && nanosleep(&ts, &ts) != 0)
        ;
}

/* Saga action of the receiving bank: credit, then refuse (409) if the account
 * turns out to be frozen — the barrier rolls the credit back with its row. */
static dtmq_business_result trans_in(void *arg, PGconn *db, char *err, size_t errlen)
{
    const transfer *t = arg;
    pause_ms(t->cfg->slow_ms);
    int frozen = 0;
    int rc = add_to_balance(db, t, t->amount, &frozen, err, errlen);
    if (rc < 0)
        return DTMQ_BUSINESS_RETRY;
    if (rc > 0 || frozen) {
        snprintf(err, errlen, "account %s: %s", t->account, rc > 0 ? "no such account" : "frozen");
        return DTMQ_BUSINESS_FAILURE;
    }
    return DTMQ_BUSINESS_OK;
}

/* Compensations: undo the action. A database error (or a missing account,
 * which cannot happen after a successful action) is retried by dtmq. */
static dtmq_business_result trans_out_revert(void *arg, PGconn *db, char *err, size_t errlen)
{
    const transfer *t = arg;
    int rc = add_to_balance(db, t, t->amount, NULL, err, errlen);
    if (rc > 0)
        snprintf(err, errlen, "no account %s", t->account);
    return rc == 0 ? DTMQ_BUSINESS_OK : DTMQ_BUSINESS_RETRY;
}

static dtmq_business_result trans_in_revert(void *arg, PGconn *db, char *err, size_t errlen)
{
    const transfer *t = arg;
    int rc = add_to_balance(db, t, -t->amount, NULL, err, errlen);
    if (rc > 0)
        snprintf(err, errlen, "no account %s", t->account);
    return rc == 0 ? DTMQ_BUSINESS_OK : DTMQ_BUSINESS_RETRY;
}

/* ---- HTTP ------------------------------------------------------------------- */

typedef struct route {
    const char *path;
    const char *op; /* the op dtmq sends it with */
    dtmq_barrier_pg_fn fn;
} route;

static const route ROUTES[] = {
    {"/api/TransOut", "action", trans_out},
    {"/api/TransOutRevert", "compensate", trans_out_revert},
    {"/api/TransIn", "action", trans_in},
    {"/api/TransInRevert", "compensate", trans_in_revert},
};

static const route *find_route(const char *path)
{
    for (size_t i = 0; i < sizeof(ROUTES) / sizeof(ROUTES[0]); i++)
        if (strcmp(ROUTES[i].path, path) == 0)
            return &ROUTES[i];
    return NULL;
}

/* Reads {"account": "...", "amount": N} into t: 0, or -1 with err. */
static int parse_body(const char *body, transfer *t, char *err, size_t errlen)
{
    json_error_t je;
    json_t *j = json_loads(body, 0, &je);
    json_t *acc = json_object_get(j, "account"), *amt = json_object_get(j, "amount");
    int ok = json_is_string(acc) && json_string_length(acc) >= 1 &&
             json_string_length(acc) < sizeof(t->account) && json_is_integer(amt) &&
             json_integer_value(amt) >= 1 && json_integer_value(amt) <= 1000000000;
    if (ok) {
        snprintf(t->account, sizeof(t->account), "%s", json_string_value(acc));
        t->amount = (long)json_integer_value(amt);
    } else {
        snprintf(err, errlen, "body must be {\"account\": \"<1..64 chars>\", "
                              "\"amount\": <1..1000000000>}");
    }
    json_decref(j);
    return ok ? 0 : -1;
}

/* Runs one branch call through the barrier and answers as DTM expects:
 * 200 (done or skipped), 409 (business failure), 500 (try again later). */
static void run_branch(const config *c, const route *rt, const dtmq_branch_info *b,
                       transfer *t, ex_response *resp)
{
    char err[512] = "";
    PGconn *db = example_connect(c->db, err, sizeof(err));
    dtmq_barrier_outcome o = DTMQ_BARRIER_DB_ERROR;
    if (db != NULL)
        o = dtmq_barrier_pg_call(db, b, DTMQ_BARRIER_FIRST_ID, rt->fn, t, err, sizeof(err));
    PQfinish(db);
    int status = dtmq_barrier_http_status(o);
    const char *result = status == 200 ? "SUCCESS" : status == 409 ? "FAILURE" : "ERROR";
    printf("%s: %s gid=%s branch=%s op=%s account=%s amount=%ld -> %s%s%s\n", c->schema,
           rt->path + 5, b->gid, b->branch_id, b->op, t->account, t->amount,
           dtmq_barrier_outcome_name(o), err[0] ? ": " : "", err);
    ex_reply_json(resp, status,
                  json_pack("{s:s,s:s,s:s}", "dtm_result", result, "barrier",
                            dtmq_barrier_outcome_name(o), "message", err));
}

static void handle(void *arg, const ex_request *req, ex_response *resp)
{
    const config *c = arg;
    const route *rt = find_route(req->path);
    if (rt == NULL) {
        ex_reply_message(resp, 404, "no such route");
        return;
    }
    char err[256];
    dtmq_branch_info b;
    transfer t = {.cfg = c};
    if (dtmq_branch_info_from_query(req->query, &b, err, sizeof(err)) != 0 ||
        parse_body(req->body, &t, err, sizeof(err)) != 0) {
        ex_reply_message(resp, 400, err);
        return;
    }
    if (strcmp(b.op, rt->op) != 0) {
        snprintf(err, sizeof(err), "%s takes op=%s, not op=%s", req->path, rt->op, b.op);
        ex_reply_message(resp, 400, err);
        return;
    }
    run_branch(c, rt, &b, &t, resp);
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
        fprintf(stderr, "account_service: %s\n", err);
        return 1;
    }
    ex_server *s = ex_server_start(c.host, (int)c.port, handle, &c, err, sizeof(err));
    if (s == NULL) {
        fprintf(stderr, "account_service: %s\n", err);
        return 1;
    }
    printf("%s: listening on http://%s:%ld/api\n", c.schema, c.host, c.port);
    ex_wait_stop_signal(&stop);
    ex_server_stop(s);
    printf("%s: stopped\n", c.schema);
    return 0;
}
