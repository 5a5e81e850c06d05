/*
 * bench_store.c — the store ceiling of the benchmarks: the raw store API
 * (connectors/daemon/store/store.h), with no HTTP, no engine and no Kafka, doing per
 * transaction the same operations dtmq does, as many of each as dtmq's own
 * metrics counted (dtmq_store_operation_seconds_count{op} divided by the
 * transactions finished), on records of the same shape and size.
 *
 *   bench_store --uri URI --ops OP=N[,OP=N...] [--concurrency C] [--seconds S]
 *               [--warmup S] [--steps N] [--action URL] [--compensate URL]
 *               [--payload-bytes N] [--trans-type saga|msg]
 *
 * OP is one of create_trans, find_trans, update_branches, change_status,
 * touch_cron, claim_due; N may be fractional (0.5: every other transaction).
 * Each of C threads runs transactions back to back on the one shared store
 * handle, in dtmq's order: create (a second create of the same gid, as a
 * msg's submit does, finds it there), then find/touch/update/status changes,
 * the last status change to succeed. A transaction's latency is from its
 * create to its last operation. txn/s is the operations done inside the
 * measured window divided by the operations per transaction; whole_txn= counts
 * the transactions that ended inside it. One RESULT line; exit 1 if an
 * operation failed.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/store/store.h"
#include "bench_common.h"

#define PROG "bench_store"

enum { OP_CREATE, OP_FIND, OP_TOUCH, OP_UPDATE, OP_STATUS, OP_CLAIM, OP_COUNT };
static const char *const op_names[OP_COUNT] = {"create_trans", "find_trans", "touch_cron",
                                               "update_branches", "change_status", "claim_due"};

typedef struct options {
    const char *uri;
    double per_txn[OP_COUNT];
    int concurrency;
    double seconds, warmup;
    int steps, payload_bytes;
    const char *action, *compensate, *trans_type;
} options;

typedef struct worker {
    pthread_t thread;
    int id;
    const options *o;
    store *s;
    double carry[OP_COUNT]; /* fractional operations owed */
    uint64_t seq, measured, errors;
    uint64_t ops; /* operations that succeeded inside the measured window */
    bench_hist hist;
} worker;

static atomic_int phase; /* 0 warmup, 1 measuring, 2 stop */
static char run_prefix[64];
static char *steps_json, *payloads_json, *payload;

/* ---- options ------------------------------------------------------------- */

static void parse_ops(options *o, const char *spec)
{
    char *copy = strdup(spec);
    for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
        char *eq = strchr(tok, '=');
        if (eq == NULL)
            bench_die(PROG, "--ops: '%s' is not OP=N", tok);
        *eq = '\0';
        int found = 0;
        for (int i = 0; i < OP_COUNT; i++)
            if (strcmp(tok, op_names[i]) == 0) {
                o->per_txn[i] = atof(eq + 1);
                found = 1;
            }
        if (!found && atof(eq + 1) >= 0.05)
            bench_die(PROG, "--ops: dtmq does %s per transaction, which this ceiling cannot do yet", tok);
    }
    free(copy);
}

static void parse_options(options *o, int argc, char **argv)
{
    memset(o, 0, sizeof(*o));
    o->concurrency = 10;
    o->seconds = 5;
    o->warmup = 1;
    o->steps = 2;
    o->action = o->compensate = "";
    o->trans_type = "saga";
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (strcmp(a, "--uri") == 0) o->uri = v;
        else if (strcmp(a, "--ops") == 0) parse_ops(o, v);
        else if (strcmp(a, "--concurrency") == 0) o->concurrency = (int)bench_parse_long(a, v, 1, 1024);
        else if (strcmp(a, "--seconds") == 0) o->seconds = (double)bench_parse_long(a, v, 1, 3600);
        else if (strcmp(a, "--warmup") == 0) o->warmup = (double)bench_parse_long(a, v, 0, 600);
        else if (strcmp(a, "--steps") == 0) o->steps = (int)bench_parse_long(a, v, 1, 100);
        else if (strcmp(a, "--payload-bytes") == 0) o->payload_bytes = (int)bench_parse_long(a, v, 0, 1 << 20);
        else if (strcmp(a, "--action") == 0) o->action = v;
        else if (strcmp(a, "--compensate") == 0) o->compensate = v;
        else if (strcmp(a, "--trans-type") == 0) o->trans_type = v;
        else bench_die(PROG, "unknown option '%s'", a);
    }
    if (argc % 2 == 0 || o->uri == NULL || o->per_txn[OP_CREATE] <= 0)
        bench_die(PROG, "usage: bench_store --uri URI --ops create_trans=1,OP=N,... [--concurrency C] "
                        "[--seconds S] [--warmup S] [--steps N] [--action URL] [--compensate URL] "
                        "[--payload-bytes N] [--trans-type saga|msg]");
}

/* The steps and payloads JSON texts dtmq stores, built once. */
static void build_texts(const options *o)
{
    size_t cap = (size_t)o->steps * (strlen(o->action) + strlen(o->compensate) + (size_t)o->payload_bytes + 64) + 8;
    steps_json = malloc(cap);
    payloads_json = malloc(cap);
    payload = malloc((size_t)o->payload_bytes + 1);
    memset(payload, 'x', (size_t)o->payload_bytes);
    payload[o->payload_bytes] = '\0';
    char *s = steps_json, *p = payloads_json;
    *s++ = '[';
    *p++ = '[';
    for (int i = 0; i < o->steps; i++) {
        s += sprintf(s, "%s{\"action\":\"%s\",\"compensate\":\"%s\"}", i ? "," : "", o->action, o->compensate);
        p += sprintf(p, "%s\"%s\"", i ? "," : "", payload);
    }
    strcpy(s, "]");
    strcpy(p, "]");
}

/* ---- one transaction ------------------------------------------------------ */

/* After the window a transaction in hand is left unfinished: on a slow store
 * finishing it could take many seconds, and it would not be counted. */
static int stopping(void)
{
    return atomic_load(&phase) == 2;
}

/* How many of op this transaction does: the whole part of what is owed. */
static int take_ops(worker *w, int op)
{
    w->carry[op] += w->o->per_txn[op];
    int n = (int)floor(w->carry[op] + 1e-9);
    w->carry[op] -= n;
    return n;
}

static void add_branch(trans_global *t, int step, const char *op, const char *url, int64_t now)
{
    char id[16];
    snprintf(id, sizeof(id), "%02d", step + 1);
    trans_branch b = {.branch_id = id, .op = (char *)op, .url = (char *)url,
                      .data = (unsigned char *)payload, .data_len = strlen(payload),
                      .status = TRANS_PREPARED, .create_time = now, .update_time = now};
    trans_add_branch(t, &b);
}

/* A record shaped like the one dtmq creates at submit: the global with its
 * options and texts, one row per (step, op), owned by this process. */
static trans_global *new_record(worker *w, const char *gid, int64_t now)
{
    const options *o = w->o;
    int is_msg = strcmp(o->trans_type, "msg") == 0;
    trans_global *t = trans_new();
    trans_set_str(&t->gid, gid);
    trans_set_str(&t->trans_type, o->trans_type);
    trans_set_str(&t->status, TRANS_SUBMITTED);
    trans_set_str(&t->protocol, "http");
    trans_set_str(&t->options, "{\"concurrent\":false,\"wait_result\":true}");
    trans_set_str(&t->steps, steps_json);
    trans_set_str(&t->payloads, payloads_json);
    trans_set_str(&t->owner, run_prefix);
    t->create_time = t->update_time = now;
    t->next_cron_time = now + 10000;
    for (int i = 0; i < o->steps; i++) {
        if (!is_msg)
            add_branch(t, i, "compensate", o->compensate, now);
        add_branch(t, i, is_msg ? "msg" : "action", o->action, now);
    }
    return t;
}

static int check(worker *w, store_result r, const char *op, const char *gid)
{
    if (r == STORE_OK) {
        if (atomic_load(&phase) == 1)
            w->ops++;
        return 0;
    }
    if (w->errors++ < 3)
        fprintf(stderr, PROG ": %s of %s: %s %s\n", op, gid, store_result_name(r), store_last_error());
    return -1;
}

/* create → find → touch → branch updates → status changes, dtmq's order. */
static int run_txn(worker *w, const char *gid)
{
    int64_t now = bench_wall_ms();
    trans_global *t = new_record(w, gid, now);
    int rc = check(w, store_create_trans(w->s, t), "create_trans", gid);
    /* dtmq may try to create a transaction again (a msg's submit after its
     * prepare): those find it there, as they do in dtmq */
    for (int i = take_ops(w, OP_CREATE) - 1; rc == 0 && i > 0; i--) {
        store_result r = store_create_trans(w->s, t);
        rc = check(w, r == STORE_DUPLICATE ? STORE_OK : r, "create_trans again", gid);
    }
    trans_free(t);
    for (int i = take_ops(w, OP_FIND); rc == 0 && i > 0 && !stopping(); i--) {
        trans_global *found = NULL;
        rc = check(w, store_find_trans(w->s, gid, &found), "find_trans", gid);
        trans_free(found);
    }
    for (int i = take_ops(w, OP_TOUCH); rc == 0 && i > 0 && !stopping(); i--)
        rc = check(w, store_touch_cron(w->s, gid, run_prefix, bench_wall_ms() + 10000, 0), "touch_cron", gid);
    int is_msg = strcmp(w->o->trans_type, "msg") == 0;
    int updates = take_ops(w, OP_UPDATE);
    for (int i = 0; rc == 0 && i < updates && !stopping(); i++) {
        char id[16];
        snprintf(id, sizeof(id), "%02d", i % w->o->steps + 1);
        int64_t at = bench_wall_ms();
        trans_branch b = {.branch_id = id, .op = is_msg ? "msg" : "action", .status = TRANS_SUCCEED,
                          .update_time = at, .finish_time = at};
        rc = check(w, store_update_branches(w->s, gid, TRANS_SUBMITTED, &b, 1), "update_branches", gid);
    }
    int changes = take_ops(w, OP_STATUS);
    for (int i = 0; rc == 0 && i < changes && !stopping(); i++) {
        int last = i == changes - 1;
        int64_t at = bench_wall_ms();
        store_status_change c = {.status = last ? TRANS_SUCCEED : TRANS_SUBMITTED, .update_time = at,
                                 .finish_time = last ? at : 0, .owner = last ? "" : NULL};
        rc = check(w, store_change_status(w->s, gid, TRANS_SUBMITTED, &c), "change_status", gid);
    }
    for (int i = take_ops(w, OP_CLAIM); rc == 0 && i > 0 && !stopping(); i--) {
        trans_global *claimed = NULL;
        store_result r = store_claim_due(w->s, bench_wall_ms() - 3600000, 1000, run_prefix, &claimed);
        rc = r == STORE_NOT_FOUND ? 0 : check(w, r, "claim_due", gid);
        trans_free(claimed);
    }
    return rc;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    char gid[128];
    while (atomic_load(&phase) < 2) {
        snprintf(gid, sizeof(gid), "%s-%d-%llu", run_prefix, w->id, (unsigned long long)++w->seq);
        int measuring = atomic_load(&phase) == 1;
        int64_t start = bench_now_ns();
        int rc = run_txn(w, gid);
        if (measuring && atomic_load(&phase) == 1 && rc == 0) {
            w->measured++;
            bench_hist_add(&w->hist, bench_now_ns() - start);
        }
    }
    return NULL;
}

static void sleep_seconds(double s)
{
    usleep((useconds_t)(s * 1e6));
}

int main(int argc, char **argv)
{
    options o;
    parse_options(&o, argc, argv);
    snprintf(run_prefix, sizeof(run_prefix), "s%x%llx", (unsigned)getpid(),
             (unsigned long long)bench_wall_ms());
    build_texts(&o);
    char err[512];
    store *s = store_open(o.uri, err, sizeof(err));
    if (s == NULL)
        bench_die(PROG, "cannot open %s: %s", o.uri, err);
    worker *ws = calloc((size_t)o.concurrency, sizeof(worker));
    for (int i = 0; i < o.concurrency; i++) {
        ws[i] = (worker){.id = i, .o = &o, .s = s};
        pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]);
    }
    sleep_seconds(o.warmup);
    double cpu0 = bench_self_cpu_seconds();
    atomic_store(&phase, 1);
    sleep_seconds(o.seconds);
    atomic_store(&phase, 2);
    double cpu = bench_self_cpu_seconds() - cpu0;
    bench_hist total;
    bench_hist_reset(&total);
    uint64_t measured = 0, errors = 0, ops = 0;
    for (int i = 0; i < o.concurrency; i++) {
        pthread_join(ws[i].thread, NULL);
        bench_hist_merge(&total, &ws[i].hist);
        measured += ws[i].measured;
        errors += ws[i].errors;
        ops += ws[i].ops;
    }
    /* Throughput from the operations done inside the window, divided by the
     * operations per transaction: on a slow store with many threads a whole
     * transaction can outlast the window, and counting whole transactions
     * would then read near 0. */
    double per_txn = 0;
    for (int i = 0; i < OP_COUNT; i++)
        per_txn += o.per_txn[i];
    uint64_t txns = (uint64_t)((double)ops / per_txn + 0.5);
    char extra[256];
    snprintf(extra, sizeof(extra), "cpu_gen=%.3f store=%s ops=%llu whole_txn=%llu", cpu / o.seconds,
             store_driver(s), (unsigned long long)ops, (unsigned long long)measured);
    bench_print_result("store", o.concurrency, txns, o.seconds, &total, errors, extra);
    store_close(s);
    free(ws);
    free(steps_json);
    free(payloads_json);
    free(payload);
    return errors > 0 || ops == 0 ? 1 : 0;
}
