/*
 * pass.c — one pass of one transaction, on the worker thread that owns it.
 *
 * A pass loads the transaction from the store, asks the mode's planner what
 * to do, does it (branch calls go out through the dispatcher; status changes
 * are compare-and-set in the store), and asks again after every result,
 * until nothing is in flight and nothing more can be done now. Then it writes
 * when the next pass is due (next_cron_time, backing off after unknown
 * results), answers wait_result callers and forgets the transaction: the
 * store is the only memory between passes, so a crash loses nothing that was
 * acknowledged.
 *
 * Invariants:
 *   - A branch result is recorded in the store (guarded by the global status
 *     it was called under) before the planner sees it.
 *   - A call goes out only while this process holds the transaction's lease
 *     for longer than the call can take (ensure_lease).
 *   - Status changes happen only when no call is in flight (plan.h).
 *   - The worker defers durability (store.h): its writes return once
 *     applied, and pass_sync waits until they are durable before anything
 *     outside the store can depend on them — a branch call, a Kafka message,
 *     a status event, an answer to a waiter. Writes between two outside
 *     effects (e.g. the results of empty-URL branches and the final status)
 *     thus share one commit, with other transactions' writes.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "libdtmq/common/base64.h"
#include "libdtmq/common/rules.h"
#include "log.h"
#include "trans_json.h"
#include "engine_internal.h"

#define LEASE_MARGIN_MS 2000

/* ---- the table of active transactions ------------------------------------ */

active *active_find(worker *w, const char *gid)
{
    for (active *a = w->table[engine_hash(gid) % ENGINE_BUCKETS]; a; a = a->next)
        if (strcmp(a->gid, gid) == 0)
            return a;
    return NULL;
}

static active *active_insert(worker *w, const char *gid)
{
    active *a = calloc(1, sizeof(*a));
    if (a == NULL || (a->gid = strdup(gid)) == NULL) {
        free(a);
        return NULL;
    }
    a->failed_branch = -1;
    active **bucket = &w->table[engine_hash(gid) % ENGINE_BUCKETS];
    a->next = *bucket;
    *bucket = a;
    atomic_fetch_add(&w->e->active_count, 1);
    return a;
}

static void active_remove(worker *w, active *a)
{
    for (active **p = &w->table[engine_hash(a->gid) % ENGINE_BUCKETS]; *p; p = &(*p)->next)
        if (*p == a) {
            *p = a->next;
            atomic_fetch_sub(&w->e->active_count, 1);
            return;
        }
}

void active_free(active *a)
{
    trans_free(a->t);
    trans_options_clear(&a->opts);
    json_decref(a->attempts);
    free(a->in_flight);
    free(a->tried);
    free(a->gid);
    free(a);
}

static void answer_waiters(active *a, int status, const char *body)
{
    while (a->waiters) {
        waiter *wt = a->waiters;
        a->waiters = wt->next;
        wt->fn(wt->arg, status, body);
        free(wt);
    }
}

static void answer_waiters_json(active *a, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    answer_waiters(a, status, text ? text : "{}");
    free(text);
}

static void forget(worker *w, active *a)
{
    active_remove(w, a);
    active_free(a);
}

/* ---- durability ------------------------------------------------------- */

/* Waits until this worker's writes (and what it read) are durable. 0, or -1
 * when the store lost one of them: a's state is then not the store's, so the
 * caller gives the pass up (give_up) and a later pass redoes it from the
 * store. */
static int pass_sync(worker *w, active *a)
{
    if (store_sync(w->e->b->store) == STORE_OK)
        return 0;
    snprintf(a->last_error, sizeof(a->last_error), "store: %s", store_last_error());
    log_gid_warn(a->gid, "a change was not made durable (%s); the pass is given up and redone later",
                 a->last_error);
    a->lost = 1;
    return -1;
}

static void give_up(worker *w, active *a)
{
    answer_waiters_json(a, 500, json_pack("{s:s}", "message", a->last_error));
    forget(w, a);
}

typedef struct durable_ctx {
    engine *e;
    char *gid;
} durable_ctx;

/* On the store's commit thread: tell the owner its writes are durable. */
static void on_durable(void *arg, store_result r)
{
    durable_ctx *c = arg;
    event *ev = calloc(1, sizeof(*ev));
    if (ev != NULL) {
        ev->kind = EV_DURABLE;
        ev->gid = c->gid;
        c->gid = NULL;
        ev->durable = r == STORE_OK;
        engine_post(c->e, ev);
    }
    atomic_fetch_sub(&c->e->durable_pending, 1);
    free(c->gid);
    free(c);
}

/* Before a call out: 1 when the pass's writes are durable now, 0 when the
 * pass must wait for EV_DURABLE (the worker serves other transactions
 * meanwhile), -1 when one was lost (a->lost set). */
static int pass_durable(worker *w, active *a)
{
    durable_ctx *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->gid = strdup(a->gid)) == NULL) {
        free(c);
        return pass_sync(w, a) == 0 ? 1 : -1;
    }
    c->e = w->e;
    atomic_fetch_add(&w->e->durable_pending, 1);
    int rc = store_when_durable(w->e->b->store, on_durable, c);
    if (rc == 1) {
        a->awaiting_durable = 1;
        return 0;
    }
    atomic_fetch_sub(&w->e->durable_pending, 1);
    free(c->gid);
    free(c);
    if (rc == 0)
        return 1;
    snprintf(a->last_error, sizeof(a->last_error), "store: %s", store_last_error());
    a->lost = 1;
    return -1;
}

/* Status events wait for the change they report. */
typedef struct event_ctx {
    engine *e;
    char *gid;
    char *text;
} event_ctx;

static void on_event_durable(void *arg, store_result r)
{
    event_ctx *c = arg;
    if (r == STORE_OK)
        events_publish(c->e->b, c->gid, c->text);
    else
        log_gid_warn(c->gid, "status event not published: the change it reports was not made durable");
    atomic_fetch_sub(&c->e->durable_pending, 1);
    free(c->gid);
    free(c->text);
    free(c);
}

/* Publishes text (owned; NULL = nothing) once this worker's writes are durable. */
static void publish_when_durable(worker *w, const char *gid, char *text)
{
    if (text == NULL)
        return;
    event_ctx *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->gid = strdup(gid)) == NULL) {
        free(c);
        free(text);
        return;
    }
    c->e = w->e;
    c->text = text;
    atomic_fetch_add(&w->e->durable_pending, 1);
    int rc = store_when_durable(w->e->b->store, on_event_durable, c);
    if (rc != 1)
        on_event_durable(c, rc == 0 ? STORE_OK : STORE_UNAVAILABLE);
}

/* Answers that wait for the writes they report. */
typedef struct answer_ctx {
    engine *e;
    waiter *waiters;
    int status;
    char *body;
} answer_ctx;

static void answer_list(waiter *list, int status, const char *body)
{
    while (list) {
        waiter *wt = list;
        list = wt->next;
        wt->fn(wt->arg, status, body);
        free(wt);
    }
}

static void on_answer_durable(void *arg, store_result r)
{
    answer_ctx *c = arg;
    if (r == STORE_OK)
        answer_list(c->waiters, c->status, c->body ? c->body : "{}");
    else
        answer_list(c->waiters, 500, "{\"message\":\"store: the commit of the transaction's last change failed; it is resumed from the store\"}");
    atomic_fetch_sub(&c->e->durable_pending, 1);
    free(c->body);
    free(c);
}

/* Answers a's waiters with status and body (owned, JSON text) once the
 * pass's writes are durable, without blocking the worker. */
static void answer_when_durable(worker *w, active *a, int status, char *body)
{
    answer_ctx *c = a->waiters ? calloc(1, sizeof(*c)) : NULL;
    if (c == NULL) { /* nobody to answer (or no memory: answer after a blocking sync) */
        if (a->waiters && pass_sync(w, a) != 0)
            answer_waiters_json(a, 500, json_pack("{s:s}", "message", a->last_error));
        answer_waiters(a, status, body ? body : "{}");
        free(body);
        return;
    }
    *c = (answer_ctx){.e = w->e, .waiters = a->waiters, .status = status, .body = body};
    a->waiters = NULL;
    atomic_fetch_add(&w->e->durable_pending, 1);
    int rc = store_when_durable(w->e->b->store, on_answer_durable, c);
    if (rc != 1)
        on_answer_durable(c, rc == 0 ? STORE_OK : STORE_UNAVAILABLE);
}

/* ---- loading ---------------------------------------------------------- */

static int ensure_flags(active *a)
{
    size_t n = a->t->branch_count;
    if (n <= a->flags_cap)
        return 0;
    unsigned char *f = realloc(a->in_flight, n);
    if (f == NULL)
        return -1;
    a->in_flight = f;
    f = realloc(a->tried, n);
    if (f == NULL)
        return -1;
    a->tried = f;
    memset(a->in_flight + a->flags_cap, 0, n - a->flags_cap);
    memset(a->tried + a->flags_cap, 0, n - a->flags_cap);
    a->flags_cap = n;
    return 0;
}

/* Reads the transaction from the store into a. 0, or -1 with last_error set. */
static int active_load(worker *w, active *a)
{
    trans_global *t = NULL;
    store_result r = store_find_trans(w->e->b->store, a->gid, &t);
    if (r != STORE_OK) {
        snprintf(a->last_error, sizeof(a->last_error), "cannot read the transaction: %s %s",
                 store_result_name(r), store_last_error());
        return -1;
    }
    trans_free(a->t);
    a->t = t;
    trans_options_clear(&a->opts);
    trans_options_from_text(t->options, &a->opts);
    a->planner = plan_for_type(t->trans_type);
    if (a->planner == NULL) {
        snprintf(a->last_error, sizeof(a->last_error), "unknown trans_type '%s'", t->trans_type);
        return -1;
    }
    return ensure_flags(a);
}

/* ---- recording results ------------------------------------------------ */

static void note_unknown(active *a, const char *what, const char *text, int ongoing)
{
    if (ongoing) {
        a->had_ongoing = 1;
    } else {
        a->had_error = 1;
        snprintf(a->last_error, sizeof(a->last_error), "%s: %s", what, text ? text : "");
    }
}

/* Records a branch's new status in the store, guarded by the global status. */
static void record_branch(worker *w, active *a, size_t i, const char *status)
{
    trans_branch *b = &a->t->branches[i];
    trans_branch update = *b; /* shallow: only status and times are read by the store */
    int64_t now = dtmq_now_ms();
    update.status = (char *)status;
    update.update_time = now;
    update.finish_time = now;
    store_result r = store_update_branches(w->e->b->store, a->gid, a->t->status, &update, 1);
    if (r == STORE_OK) {
        trans_set_str(&b->status, status);
        b->update_time = b->finish_time = now;
        return;
    }
    if (r == STORE_CONFLICT || r == STORE_NOT_FOUND) { /* changed under us (forceStop, ...) */
        if (active_load(w, a) == 0)
            return;
    }
    a->tried[i] = 1;
    note_unknown(a, "store", store_last_error(), 0);
}

/* Applies a status change; 0 done, 1 the transaction changed under us and
 * was reloaded, -1 failed. */
static int record_status(worker *w, active *a, const char *status, const char *reason)
{
    int64_t now = dtmq_now_ms();
    store_status_change ch = {.status = status, .update_time = now};
    if (strcmp(status, TRANS_SUCCEED) == 0)
        ch.finish_time = now;
    if (strcmp(status, TRANS_FAILED) == 0)
        ch.rollback_time = ch.finish_time = now;
    if (reason && reason[0])
        ch.rollback_reason = reason;
    int64_t retry_count = 0;
    char *ext = NULL;
    if (a->attempts && json_array_size(a->attempts) > 0) /* they ride along with this write */
        ch.ext_data = ext = attempts_ext_data(a, 0, NULL, &retry_count);
    store_result r = store_change_status(w->e->b->store, a->gid, a->t->status, &ch);
    if (r == STORE_OK && ext) {
        free(a->t->ext_data);
        a->t->ext_data = ext;
        ext = NULL;
        json_array_clear(a->attempts);
    }
    free(ext);
    if (r == STORE_OK) {
        log_gid_info(a->gid, "%s %s -> %s%s%s", a->t->trans_type, a->t->status, status,
                     reason && reason[0] ? ": " : "", reason ? reason : "");
        publish_when_durable(w, a->gid, events_status_message(w->e->b, a->gid, a->t->trans_type,
                                                              a->t->status, status, reason,
                                                              a->t->create_time));
        trans_set_str(&a->t->status, status);
        if (ch.rollback_reason)
            trans_set_str(&a->t->rollback_reason, reason);
        a->t->update_time = now;
        if (ch.finish_time)
            a->t->finish_time = ch.finish_time;
        if (ch.rollback_time)
            a->t->rollback_time = ch.rollback_time;
        return 0;
    }
    if ((r == STORE_CONFLICT || r == STORE_NOT_FOUND) && active_load(w, a) == 0)
        return 1;
    note_unknown(a, "store", store_last_error(), 0);
    return -1;
}

static int is_kafka_url(const char *url)
{
    return dtmq_url_kind_of(url, 0) == DTMQ_URL_KAFKA;
}

static int is_saga_action(const active *a, size_t i)
{
    return trans_global_mode(a->t) == TRANS_MODE_SAGA && strcmp(a->t->branches[i].op, "action") == 0;
}

static void apply_branch_result(worker *w, active *a, const event *ev)
{
    size_t i = (size_t)ev->branch;
    const trans_branch *b = &a->t->branches[i];
    char what[96];
    snprintf(what, sizeof(what), "branch %s %s", b->branch_id, b->op);
    log_gid_debug(a->gid, "%s answered %s (%s)", what, dispatch_outcome_name(ev->outcome), ev->text);
    switch (ev->outcome) {
    case DISPATCH_SUCCESS:
        record_branch(w, a, i, TRANS_SUCCEED);
        break;
    case DISPATCH_FAILURE:
        if (is_saga_action(a, i)) { /* only a saga action may fail for good */
            record_branch(w, a, i, TRANS_FAILED);
            snprintf(a->last_error, sizeof(a->last_error), "%s: %s", what, ev->text);
            if (a->failed_branch < 0) { /* the first one is the saga's rollback reason */
                a->failed_branch = (long)i;
                snprintf(a->failure_text, sizeof(a->failure_text), "%s", ev->message ? ev->message : "");
            }
        } else {
            a->tried[i] = 1;
            note_unknown(a, what, "answered FAILURE, which this op cannot take back; retrying", 0);
        }
        break;
    case DISPATCH_ONGOING:
        a->tried[i] = 1;
        note_unknown(a, what, ev->text, 1);
        break;
    case DISPATCH_ERROR:
        if (is_kafka_url(b->url) && active_load(w, a) == 0 &&
            !plan_branch_is(a->t, i, TRANS_PREPARED))
            break; /* another process received the reply and recorded it */
        a->tried[i] = 1;
        note_unknown(a, what, ev->text, 0);
        break;
    }
}

static void apply_query_prepared_result(worker *w, active *a, const event *ev)
{
    if (ev->outcome == DISPATCH_SUCCESS && strcmp(a->t->status, TRANS_PREPARED) == 0)
        record_status(w, a, TRANS_SUBMITTED, NULL);
    else if (ev->outcome == DISPATCH_FAILURE && strcmp(a->t->status, TRANS_PREPARED) == 0)
        record_status(w, a, TRANS_FAILED, "query_prepared answered FAILURE: the local transaction did not commit");
    else
        note_unknown(a, "query_prepared", ev->text, ev->outcome == DISPATCH_ONGOING);
}

static void apply_result(worker *w, active *a, const event *ev)
{
    if (ev->branch >= 0) {
        apply_branch_result(w, a, ev);
        return;
    }
    a->special_tried = 1;
    if (trans_global_mode(a->t) == TRANS_MODE_MSG)
        apply_query_prepared_result(w, a, ev);
    else if (ev->outcome != DISPATCH_SUCCESS)
        note_unknown(a, "workflow resume", ev->text, ev->outcome == DISPATCH_ONGOING);
}

/* ---- calling ---------------------------------------------------------- */

typedef struct call_ctx {
    engine *e;
    char *gid;
    long branch;
} call_ctx;

/* On the dispatcher thread: turn the result into an event for the owner. */
static void on_call_done(void *arg, const http_call_result *res)
{
    call_ctx *ctx = arg;
    event *ev = calloc(1, sizeof(*ev));
    if (ev != NULL) {
        ev->kind = EV_RESULT;
        ev->gid = ctx->gid;
        ctx->gid = NULL;
        ev->branch = ctx->branch;
        ev->outcome = res->outcome;
        ev->http_status = res->http_status;
        ev->started_ms = res->started_ms;
        ev->finished_ms = res->finished_ms;
        size_t n = res->http_status ? strlen(res->body) + 32 : strlen(res->error) + 32;
        if (n > 600)
            n = 600;
        ev->text = malloc(n);
        if (ev->text && res->http_status)
            snprintf(ev->text, n, "HTTP %d %s", res->http_status, res->body);
        else if (ev->text)
            snprintf(ev->text, n, "%s", res->error);
        engine_post(ctx->e, ev);
    }
    free(ctx->gid);
    free(ctx);
}

static int64_t request_timeout_ms(const engine *e, const active *a)
{
    int64_t s = a->opts.request_timeout > 0 ? a->opts.request_timeout : e->b->cfg->request_timeout;
    return s * 1000;
}

/* Makes sure this process holds the lease for longer than a call can take. */
static int ensure_lease(worker *w, active *a)
{
    int64_t now = dtmq_now_ms();
    if (a->lease_until > now + request_timeout_ms(w->e, a) + LEASE_MARGIN_MS)
        return 0;
    int64_t until = now + engine_lease_ms(w->e, &a->opts);
    store_result r = store_touch_cron(w->e->b->store, a->gid, w->e->owner, until, 0);
    if (r != STORE_OK) {
        log_gid_warn(a->gid, "lease not renewed (%s): leaving the transaction to its new owner",
                     store_result_name(r));
        return -1;
    }
    a->lease_until = until;
    return 0;
}

/* "k: v" lines from branch_headers; NULL-terminated, malloc'd (free each + array). */
static char **header_lines(const trans_options *o)
{
    size_t n = o->branch_headers ? json_object_size(o->branch_headers) : 0;
    char **lines = calloc(n + 1, sizeof(char *));
    if (lines == NULL || n == 0)
        return lines;
    size_t k = 0;
    const char *key;
    json_t *v;
    json_object_foreach(o->branch_headers, key, v)
        if (asprintf(&lines[k], "%s: %s", key, json_string_value(v)) >= 0)
            k++;
    lines[k] = NULL;
    return lines;
}

static void free_lines(char **lines)
{
    for (size_t i = 0; lines && lines[i]; i++)
        free(lines[i]);
    free(lines);
}

/* Sends one HTTP call for the pass; branch -1 is the special call. */
static int send_call(worker *w, active *a, long branch, const char *method, const char *url,
                     const unsigned char *body, size_t body_len)
{
    call_ctx *ctx = calloc(1, sizeof(*ctx));
    char **headers = header_lines(&a->opts);
    if (ctx == NULL || headers == NULL || (ctx->gid = strdup(a->gid)) == NULL) {
        free(ctx);
        free_lines(headers);
        return -1;
    }
    ctx->e = w->e;
    ctx->branch = branch;
    http_call call = {
        .method = method,
        .url = url,
        .body = (const char *)body,
        .body_len = body_len,
        .headers = (const char *const *)headers,
        .timeout_ms = (long)request_timeout_ms(w->e, a),
        .done = on_call_done,
        .arg = ctx,
    };
    int rc = http_dispatch_submit(w->e->http, &call);
    free_lines(headers);
    if (rc != 0) {
        free(ctx->gid);
        free(ctx);
    }
    return rc;
}

static int url_is_http(const char *url)
{
    return dtmq_url_kind_of(url, 0) == DTMQ_URL_HTTP;
}

/* ---- Kafka branches ---------------------------------------------------- */

typedef struct kafka_call_ctx {
    engine *e;
    char *gid;
    char *branch_id;
    char *op;
    long branch;
    int await_reply; /* saga/tcc/xa: the worker's reply decides; msg: the ack does */
    int64_t started_ms;
} kafka_call_ctx;

static void kafka_call_ctx_free(kafka_call_ctx *c)
{
    free(c->gid);
    free(c->branch_id);
    free(c->op);
    free(c);
}

static void post_call_result(engine *e, const char *gid, long branch, dispatch_outcome outcome,
                             const char *text, int64_t started_ms)
{
    event *ev = calloc(1, sizeof(*ev));
    if (ev == NULL)
        return;
    ev->kind = EV_RESULT;
    ev->gid = strdup(gid);
    ev->branch = branch;
    ev->outcome = outcome;
    ev->text = strdup(text);
    ev->started_ms = started_ms;
    ev->finished_ms = dtmq_now_ms();
    engine_post(e, ev);
}

/* On the producer's thread: the broker acknowledged the branch message, or not. */
static void on_kafka_delivered(void *arg, int ok, const char *error)
{
    kafka_call_ctx *c = arg;
    if (!ok) {
        if (c->await_reply)
            replies_cancel(c->e, c->gid, c->branch_id, c->op);
        char text[400];
        snprintf(text, sizeof(text), "publish failed: %.300s", error);
        post_call_result(c->e, c->gid, c->branch, DISPATCH_ERROR, text, c->started_ms);
    } else if (!c->await_reply) {
        post_call_result(c->e, c->gid, c->branch, DISPATCH_SUCCESS, "published", c->started_ms);
    }
    kafka_call_ctx_free(c);
}

/* Publishes branch i to kafka://TOPIC, keyed by gid, with the dtm-* headers
 * (and branch_headers). 0, or -1 with nothing in flight and the reason in err
 * (it becomes the transaction's last error). */
static int call_kafka_branch(worker *w, active *a, size_t i, char *err, size_t errlen)
{
    engine *e = w->e;
    const trans_branch *b = &a->t->branches[i];
    const char *topic = dtmq_url_rest(b->url, 0);
    if (e->kafka == NULL) {
        snprintf(err, errlen, "Kafka is off (DTMQ_KAFKA=off)");
        return -1;
    }
    if (kafka_link_ensure_topic(e->b->kafka, topic, err, errlen) != 0)
        return -1;
    kafka_call_ctx *c = calloc(1, sizeof(*c));
    if (c == NULL || !(c->gid = strdup(a->gid)) || !(c->branch_id = strdup(b->branch_id)) ||
        !(c->op = strdup(b->op))) {
        if (c)
            kafka_call_ctx_free(c);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->e = e;
    c->branch = (long)i;
    c->started_ms = dtmq_now_ms();
    c->await_reply = trans_global_mode(a->t) != TRANS_MODE_MSG;
    dtmq_kafka_header h[32] = {{"dtm-gid", a->gid}, {"dtm-trans-type", a->t->trans_type},
                          {"dtm-branch-id", b->branch_id}, {"dtm-op", b->op},
                          {"dtm-reply-to", e->topics->reply}};
    size_t n = c->await_reply ? 5 : 4; /* msg branches get no reply topic: none is read */
    const char *key;
    json_t *v;
    json_object_foreach(a->opts.branch_headers, key, v)
        if (n < 32)
            h[n++] = (dtmq_kafka_header){key, json_string_value(v)};
    int64_t deadline = c->started_ms + request_timeout_ms(e, a);
    if (c->await_reply && replies_expect(e, a->gid, b->branch_id, b->op, (long)i, c->started_ms, deadline) != 0) {
        kafka_call_ctx_free(c);
        snprintf(err, errlen, "cannot wait for the reply (out of memory)");
        return -1;
    }
    int awaiting = c->await_reply;
    /* an empty payload is sent as an empty value, never as a null (a tombstone) */
    const void *value = b->data ? (const void *)b->data : (const void *)"";
    if (dtmq_kafka_produce(e->kafka, topic, a->gid, value, b->data_len, h, n, on_kafka_delivered, c) != 0) {
        if (awaiting)
            replies_cancel(e, a->gid, b->branch_id, b->op);
        kafka_call_ctx_free(c);
        snprintf(err, errlen, "cannot queue the Kafka message to %.200s (producer queue full or stopping)", topic);
        return -1;
    }
    return 0;
}

/* Calls branch i. Returns 1 when it completed at once (empty URL: success). */
static int call_branch(worker *w, active *a, size_t i)
{
    trans_branch *b = &a->t->branches[i];
    if (b->url == NULL || b->url[0] == '\0') {
        record_branch(w, a, i, TRANS_SUCCEED);
        return 1;
    }
    char what[96];
    snprintf(what, sizeof(what), "branch %s %s", b->branch_id, b->op);
    if (is_kafka_url(b->url)) {
        char err[300] = "";
        if (call_kafka_branch(w, a, i, err, sizeof(err)) == 0) {
            a->in_flight[i] = 1;
        } else {
            a->tried[i] = 1;
            note_unknown(a, what, err, 0);
        }
        return 0;
    }
    if (!url_is_http(b->url)) {
        a->tried[i] = 1;
        note_unknown(a, what, "no dispatcher for this URL scheme", 0);
        return 0;
    }
    char *url = http_dispatch_branch_url(b->url, a->gid, a->t->trans_type, b->branch_id, b->op);
    int post = b->data_len > 0 || trans_global_mode(a->t) == TRANS_MODE_XA;
    if (url == NULL || send_call(w, a, (long)i, post ? "POST" : "GET", url, b->data, b->data_len) != 0) {
        a->tried[i] = 1;
        note_unknown(a, what, "cannot queue the call", 0);
    } else {
        a->in_flight[i] = 1;
    }
    free(url);
    return 0;
}

/* msg: GET query_prepared; workflow: POST query_prepared with its data. */
static void call_special(worker *w, active *a, plan_special which)
{
    const trans_global *t = a->t;
    const char *url = t->query_prepared ? t->query_prepared : "";
    if (!url_is_http(url)) {
        a->special_tried = 1;
        note_unknown(a, "query_prepared", "missing or not an http(s) URL", 0);
        return;
    }
    const char *op = "msg";
    unsigned char *data = NULL;
    size_t data_len = 0;
    json_t *custom = NULL;
    if (which == SPECIAL_RESUME) {
        custom = t->custom_data ? json_loads(t->custom_data, 0, NULL) : NULL;
        const char *name = json_string_value(json_object_get(custom, "name"));
        const char *b64 = json_string_value(json_object_get(custom, "data"));
        op = name ? name : "";
        data = b64 ? dtmq_base64_decode(b64, &data_len) : NULL;
    }
    char *full = http_dispatch_branch_url(url, a->gid, t->trans_type, "00", op);
    const char *method = which == SPECIAL_RESUME ? "POST" : "GET";
    if (full == NULL || send_call(w, a, -1, method, full, data, data_len) != 0) {
        a->special_tried = 1;
        note_unknown(a, "query_prepared", "cannot queue the call", 0);
    } else {
        a->special_in_flight = 1;
    }
    free(full);
    free(data);
    json_decref(custom);
}

/* ---- ending a pass ---------------------------------------------------- */

static int64_t base_interval_s(const engine *e, const trans_options *o)
{
    const dtmq_config *cfg = e->b->cfg;
    if (o->retry_interval > 0)
        return o->retry_interval;
    if (o->timeout_to_fail > 0 && o->timeout_to_fail < cfg->retry_interval)
        return o->timeout_to_fail;
    return cfg->retry_interval;
}

/* DTM's retry policy, with a cap: unknown results double the interval up to
 * RetryIntervalMax, ONGOING keeps it, a clean pass resets it. */
static void schedule(const engine *e, const active *a, const plan *p, int64_t now,
                     int64_t *next_time, int64_t *interval)
{
    int64_t base = base_interval_s(e, &a->opts);
    int64_t cap = e->b->cfg->retry_interval_max > base ? e->b->cfg->retry_interval_max : base;
    int64_t stored = a->t->next_cron_interval > 0 ? a->t->next_cron_interval : base;
    if (a->had_error)
        *interval = stored * 2 < cap ? stored * 2 : cap;
    else if (a->had_ongoing)
        *interval = stored;
    else
        *interval = base;
    *next_time = now + *interval * 1000;
    if (p->wake_at_ms > 0) {
        int unknown = a->had_error || a->had_ongoing;
        if (!unknown || p->wake_at_ms < *next_time)
            *next_time = p->wake_at_ms;
    }
}

static void ignore_alert_result(void *arg, const http_call_result *res)
{
    if (res->outcome != DISPATCH_SUCCESS)
        log_gid_warn((const char *)arg, "alert webhook: %s", res->http_status ? "non-200 answer" : res->error);
    free(arg);
}

/* DTM's AlertWebHook: POST {gid,status,branch,error,retry_count}. */
static void post_alert(worker *w, const active *a, int64_t retry_count)
{
    const dtmq_config *cfg = w->e->b->cfg;
    if (cfg->alert_web_hook == NULL || cfg->alert_web_hook[0] == '\0' || !a->had_error ||
        retry_count < cfg->alert_retry_limit)
        return;
    json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:I}", "gid", a->gid, "status", a->t->status,
                             "branch", "", "error", a->last_error, "retry_count",
                             (json_int_t)retry_count);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    http_call call = {.method = "POST", .url = cfg->alert_web_hook, .body = text,
                      .body_len = text ? strlen(text) : 0,
                      .timeout_ms = (long)cfg->request_timeout * 1000,
                      .done = ignore_alert_result, .arg = strdup(a->gid)};
    if (text == NULL || call.arg == NULL || http_dispatch_submit(w->e->http, &call) != 0)
        free(call.arg);
    free(text);
}

static char *json_text(json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return text;
}

static void answer_final(worker *w, active *a)
{
    if (strcmp(a->t->status, TRANS_SUCCEED) == 0)
        answer_when_durable(w, a, 200, strdup("{\"dtm_result\":\"SUCCESS\"}"));
    else
        answer_when_durable(w, a, 409, json_text(json_pack("{s:s, s:s}", "dtm_result", "FAILURE", "message",
                                                           a->t->rollback_reason ? a->t->rollback_reason : "")));
}

static void answer_unfinished(worker *w, active *a)
{
    if (a->had_error)
        answer_when_durable(w, a, 500, json_text(json_pack("{s:s}", "message", a->last_error)));
    else
        answer_when_durable(w, a, 425, json_text(json_pack("{s:s, s:s}", "dtm_result", "ONGOING", "message",
                                                           a->had_ongoing ? "a branch answered ONGOING"
                                                                          : "the transaction is not finished yet")));
}

static void reset_pass(active *a)
{
    memset(a->tried, 0, a->flags_cap);
    a->special_tried = a->had_error = a->had_ongoing = 0;
    a->last_error[0] = '\0';
    a->rerun = 0;
}

/* Ends the pass. Returns 1 when another pass should start at once (a kick
 * arrived meanwhile), 0 when the transaction was forgotten. */
static int end_pass(worker *w, active *a, const plan *p)
{
    if (a->lost) {
        give_up(w, a);
        return 0;
    }
    if (trans_status_is_final(a->t->status)) {
        answer_final(w, a);
        forget(w, a);
        return 0;
    }
    if (a->rerun) {
        reset_pass(a);
        if (active_load(w, a) == 0)
            return 1;
    }
    int64_t now = dtmq_now_ms(), next = 0, interval = 0, retry_count = 0;
    schedule(w->e, a, p, now, &next, &interval);
    char *ext = attempts_ext_data(a, a->had_error || a->had_ongoing,
                                  a->had_error ? a->last_error : NULL, &retry_count);
    /* owner "" gives the lease up: the transaction is idle until next */
    store_status_change ch = {.status = a->t->status, .update_time = now, .next_cron_time = next,
                              .next_cron_interval = interval, .ext_data = ext, .owner = ""};
    store_result r = store_change_status(w->e->b->store, a->gid, a->t->status, &ch);
    free(ext);
    if (r != STORE_OK)
        log_gid_warn(a->gid, "cannot schedule the next pass (%s %s); the lease will expire instead",
                     store_result_name(r), store_last_error());
    if (a->had_error)
        log_gid_warn(a->gid, "pass ended with an unknown result, retry in %llds: %s",
                     (long long)interval, a->last_error);
    post_alert(w, a, retry_count);
    answer_unfinished(w, a);
    forget(w, a);
    return 0;
}

/* ---- the pass loop ---------------------------------------------------- */

/* Whether the plan makes a call outside dtmq (an empty URL succeeds at once). */
static int plan_calls_out(const active *a, const plan *p)
{
    if (p->special != SPECIAL_NONE)
        return 1;
    for (size_t k = 0; k < p->call_count; k++) {
        const char *url = a->t->branches[p->calls[k]].url;
        if (url != NULL && url[0] != '\0')
            return 1;
    }
    return 0;
}

static void pass_continue(worker *w, active *a)
{
    for (;;) {
        if (a->lost) {
            give_up(w, a);
            return;
        }
        if (a->awaiting_durable)
            return; /* results are recorded meanwhile; pass_on_durable re-plans */
        plan p;
        pass_view v = {.t = a->t, .opts = &a->opts, .in_flight = a->in_flight, .tried = a->tried,
                       .special_in_flight = a->special_in_flight,
                       .special_tried = a->special_tried,
                       .failed_branch = a->failed_branch, .failure_text = a->failure_text,
                       .retry_count = 0, .now_ms = dtmq_now_ms(),
                       .default_timeout_ms = (int64_t)w->e->b->cfg->timeout_to_fail * 1000};
        json_t *ext = a->t->ext_data ? json_loads(a->t->ext_data, 0, NULL) : NULL;
        v.retry_count = json_integer_value(json_object_get(ext, "retry_count"));
        json_decref(ext);
        a->planner(&v, &p);
        if (p.call_count > 0 || p.special != SPECIAL_NONE) {
            if (plan_calls_out(a, &p)) {
                if (ensure_lease(w, a) != 0) {
                    answer_waiters(a, 425, "{\"dtm_result\":\"ONGOING\",\"message\":\"another dtmq process took over the transaction\"}");
                    forget(w, a);
                    return;
                }
                int durable = pass_durable(w, a);
                if (durable < 0)
                    give_up(w, a);
                if (durable <= 0)
                    return; /* given up, or pass_on_durable goes on */
            }
            int completed_now = 0;
            for (size_t k = 0; k < p.call_count; k++)
                completed_now |= call_branch(w, a, p.calls[k]);
            if (p.special != SPECIAL_NONE)
                call_special(w, a, p.special);
            if (completed_now || !plan_busy(&v))
                continue; /* re-plan: something finished, or nothing went out */
            return;       /* wait for results */
        }
        if (p.new_status != NULL) {
            if (record_status(w, a, p.new_status, p.reason) >= 0)
                continue;
        } else if (plan_busy(&v)) {
            return;
        }
        if (!end_pass(w, a, &p))
            return;
    }
}

void pass_on_kick(worker *w, event *ev)
{
    if (w->e->stopping) { /* the lease runs out or was released: redone later */
        if (ev->waiter)
            ev->waiter->fn(ev->waiter->arg, 503, "{\"message\":\"dtmq is stopping; the transaction will be resumed\"}");
        free(ev->waiter);
        ev->waiter = NULL;
        return;
    }
    active *a = active_find(w, ev->gid);
    if (a != NULL) { /* a pass is running: run another right after it */
        a->rerun = 1;
        if (ev->lease_until > a->lease_until)
            a->lease_until = ev->lease_until;
    } else {
        a = active_insert(w, ev->gid);
        if (a == NULL) {
            if (ev->waiter)
                ev->waiter->fn(ev->waiter->arg, 500, "{\"message\":\"out of memory\"}");
            free(ev->waiter);
            return;
        }
        a->lease_until = ev->lease_until;
    }
    if (ev->waiter) {
        ev->waiter->next = a->waiters;
        a->waiters = ev->waiter;
        ev->waiter = NULL;
    }
    if (a->rerun)
        return;
    if (active_load(w, a) != 0) {
        log_gid_warn(a->gid, "cannot run: %s", a->last_error);
        answer_waiters_json(a, 500, json_pack("{s:s}", "message", a->last_error));
        forget(w, a);
        return;
    }
    pass_continue(w, a);
}

void pass_on_result(worker *w, event *ev)
{
    active *a = active_find(w, ev->gid);
    if (a == NULL)
        return; /* the pass was abandoned (lease lost); the new owner redoes it */
    if (ev->branch >= 0 && (size_t)ev->branch < a->flags_cap)
        a->in_flight[ev->branch] = 0;
    else if (ev->branch < 0)
        a->special_in_flight = 0;
    if (w->e->stopping)
        return; /* recorded nothing: released at stop, redone after restart */
    attempts_record(a, ev);
    apply_result(w, a, ev);
    pass_continue(w, a);
}

void pass_on_durable(worker *w, event *ev)
{
    active *a = active_find(w, ev->gid);
    if (a == NULL || !a->awaiting_durable)
        return;
    a->awaiting_durable = 0;
    if (!ev->durable) {
        snprintf(a->last_error, sizeof(a->last_error),
                 "store: the commit of this pass's changes failed; the pass is redone later");
        log_gid_warn(a->gid, "%s", a->last_error);
        a->lost = 1;
    }
    if (w->e->stopping)
        return; /* released at stop, redone after restart */
    pass_continue(w, a);
}

void pass_release(worker *w, active *a)
{
    int64_t now = dtmq_now_ms();
    store_status_change ch = {.status = a->t->status, .update_time = now, .next_cron_time = now,
                              .owner = ""};
    if (!trans_status_is_final(a->t->status))
        store_change_status(w->e->b->store, a->gid, a->t->status, &ch);
    (void)store_sync(w->e->b->store); /* if lost, the lease expires instead */
    answer_waiters(a, 503, "{\"message\":\"dtmq is stopping; the transaction will be resumed\"}");
}
