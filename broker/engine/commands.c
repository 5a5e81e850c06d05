/*
 * commands.c — the write side of the protocol (see commands.h), following
 * DTM's dtmsvr/api.go and the per-mode row layouts:
 *   saga      step i → rows (compensate, action), branch_id %02d of i+1
 *   msg       step i → row action; topic://NAME → one row per subscriber,
 *             branch_id %02d-%02d
 *   tcc       registerBranch → rows (cancel, confirm)
 *   xa        registerBranch → rows (rollback, commit)
 *   workflow  registerBranch → one row with the op and status the client reports
 * Durable before acknowledged: every reply is written after the store call
 * that makes it true returned OK.
 */
#include "commands.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "events.h"
#include "libdtmq/common/rules.h"
#include "log.h"

void cmd_reply_clear(cmd_reply *r)
{
    json_decref(r->body);
    memset(r, 0, sizeof(*r));
}

static void reply_success(cmd_reply *out)
{
    out->status = 200;
    out->body = json_pack("{s:s}", "dtm_result", "SUCCESS");
}

static void reply_error(cmd_reply *out, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_error(cmd_reply *out, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    out->status = status;
    if (status == 409)
        out->body = json_pack("{s:s, s:s}", "dtm_result", "FAILURE", "message", msg);
    else
        out->body = json_pack("{s:s}", "message", msg);
}

static void reply_store_error(cmd_reply *out, const char *what, store_result r)
{
    reply_error(out, 500, "%s: store %s: %s", what, store_result_name(r), store_last_error());
}

/* ---- building transactions -------------------------------------------- */

/* A branch URL dtmq can call: empty (no-op), http(s)://, kafka://TOPIC (when
 * Kafka is on), and for msg topic://NAME; and within BranchAllowlist. Returns
 * 0, or the HTTP status to refuse it with (400 malformed, 403 not allowed)
 * after writing why. */
static int url_check(const broker *b, const char *url, int allow_topic, char *why, size_t len)
{
    dtmq_url_kind kind = dtmq_url_kind_of(url, 0);
    int kafka = dtmq_url_scheme(url, 0) == DTMQ_URL_KAFKA; /* "kafka://": a bad topic name */
    if (allow_topic && kind == DTMQ_URL_TOPIC)
        return 0; /* subscribers were checked when they subscribed */
    if (kafka && (b->kafka == NULL || kafka_link_producer(b->kafka) == NULL)) {
        snprintf(why, len, "'%.200s': kafka:// branches need Kafka, which is off here", url);
        return 400;
    }
    if (kafka && !dtmq_topic_name_ok(dtmq_url_rest(url, 0))) {
        snprintf(why, len, "'%.200s': not a valid Kafka topic name", url);
        return 400;
    }
    if (kind != DTMQ_URL_NONE && kind != DTMQ_URL_HTTP && !kafka) {
        snprintf(why, len, "'%.200s' is not an http(s)://, kafka://%s URL", url, allow_topic ? " or topic://" : "");
        return 400;
    }
    if (!access_url_allowed(b->cfg, url)) {
        snprintf(why, len, "'%.200s' is not in BranchAllowlist", url);
        return 403;
    }
    return 0;
}

static int add_row(trans_global *t, const char *branch_id, const char *op, const char *url,
                   const char *data, int64_t now)
{
    trans_branch b = {
        .branch_id = (char *)branch_id, .op = (char *)op, .url = (char *)url,
        .data = (unsigned char *)(data && data[0] ? data : NULL),
        .data_len = data ? strlen(data) : 0, .status = TRANS_PREPARED,
        .create_time = now, .update_time = now,
    };
    return trans_add_branch(t, &b);
}

static const char *payload_at(const trans_request *req, size_t i)
{
    return req->payloads ? json_string_value(json_array_get(req->payloads, i)) : NULL;
}

static const char *step_url(json_t *step, const char *key)
{
    const char *v = json_string_value(json_object_get(step, key));
    return v ? v : "";
}

static int build_saga_rows(const broker *b, const trans_request *req, trans_global *t, int64_t now, char *err,
                           size_t len)
{
    size_t i;
    json_t *step;
    json_array_foreach(req->steps, i, step) {
        const char *action = step_url(step, "action"), *comp = step_url(step, "compensate");
        char why[300];
        int code = url_check(b, action, 0, why, sizeof(why));
        if (code == 0)
            code = url_check(b, comp, 0, why, sizeof(why));
        if (code != 0) {
            snprintf(err, len, "steps[%zu]: %s", i, why);
            return code;
        }
        char id[48];
        snprintf(id, sizeof(id), "%02zu", i + 1);
        if (add_row(t, id, "compensate", comp, payload_at(req, i), now) ||
            add_row(t, id, "action", action, payload_at(req, i), now)) {
            snprintf(err, len, "out of memory");
            return 500;
        }
    }
    return 0;
}

/* topic://NAME → the subscribers' URLs from KV (cat "topics"). */
static json_t *topic_subscribers(broker *b, const char *topic, char *err, size_t len)
{
    store_kv_list kv;
    store_result r = store_kv_get(b->store, "topics", topic, &kv);
    if (r != STORE_OK) {
        snprintf(err, len, "topic '%s': %s", topic,
                 r == STORE_NOT_FOUND ? "no such topic (subscribe to it first)" : store_last_error());
        return NULL;
    }
    json_t *subs = json_loads(kv.items[0].value, 0, NULL);
    store_kv_list_clear(&kv);
    if (!json_is_array(subs) || json_array_size(subs) == 0) {
        json_decref(subs);
        snprintf(err, len, "topic '%s' has no subscribers", topic);
        return NULL;
    }
    return subs;
}

static int build_msg_rows(broker *b, const trans_request *req, trans_global *t, int64_t now,
                          char *err, size_t len)
{
    size_t i;
    json_t *step;
    json_array_foreach(req->steps, i, step) {
        const char *action = step_url(step, "action");
        char why[300], id[48];
        int code = url_check(b, action, 1, why, sizeof(why));
        if (code != 0) {
            snprintf(err, len, "steps[%zu]: %s", i, why);
            return code;
        }
        if (dtmq_url_kind_of(action, 0) != DTMQ_URL_TOPIC) {
            snprintf(id, sizeof(id), "%02zu", i + 1);
            if (add_row(t, id, "action", action, payload_at(req, i), now))
                return snprintf(err, len, "out of memory"), 500;
            continue;
        }
        json_t *subs = topic_subscribers(b, dtmq_url_rest(action, 0), err, len);
        if (subs == NULL)
            return 400;
        size_t j;
        json_t *sub;
        json_array_foreach(subs, j, sub) {
            snprintf(id, sizeof(id), "%02zu-%02zu", i + 1, j + 1);
            if (add_row(t, id, "action", step_url(sub, "url"), payload_at(req, i), now)) {
                json_decref(subs);
                return snprintf(err, len, "out of memory"), 500;
            }
        }
        json_decref(subs);
    }
    return 0;
}

/* Builds the row of a new transaction in the given status into *out.
 * Returns 0, or the HTTP status to refuse it with (400 malformed, 403 not
 * allowed, 500 out of memory) with err saying why. */
static int new_trans(broker *b, const trans_request *req, const char *status, int64_t now,
                     trans_global **out, char *err, size_t len)
{
    *out = NULL;
    if (req->query_prepared && req->query_prepared[0]) {
        char why[300];
        int code = url_check(b, req->query_prepared, 0, why, sizeof(why));
        if (code != 0) {
            snprintf(err, len, "query_prepared: %s", why);
            return code;
        }
    }
    trans_global *t = trans_new();
    char *options = trans_options_to_text(&req->opts);
    if (t == NULL || options == NULL || trans_set_str(&t->gid, req->gid) ||
        trans_set_str(&t->trans_type, req->trans_type) || trans_set_str(&t->status, status) ||
        trans_set_str(&t->query_prepared, req->query_prepared) ||
        trans_set_str(&t->protocol, req->protocol && req->protocol[0] ? req->protocol : "http") ||
        trans_set_str(&t->custom_data, req->custom_data) ||
        trans_set_str(&t->rollback_reason, req->rollback_reason)) {
        snprintf(err, len, "out of memory");
        free(options);
        trans_free(t);
        return 500;
    }
    t->options = options;
    t->create_time = t->update_time = now;
    if (req->steps)
        t->steps = json_dumps(req->steps, JSON_COMPACT);
    if (req->payloads)
        t->payloads = json_dumps(req->payloads, JSON_COMPACT);
    int rc = 0;
    trans_mode mode = trans_mode_of(req->trans_type);
    if (mode == TRANS_MODE_SAGA && req->steps)
        rc = build_saga_rows(b, req, t, now, err, len);
    else if (mode == TRANS_MODE_MSG && req->steps)
        rc = build_msg_rows(b, req, t, now, err, len);
    if (rc != 0) {
        trans_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* When a prepared transaction is first looked at: at its timeout. */
static int64_t prepared_deadline(broker *b, const trans_request *req, int64_t now)
{
    int64_t s = req->opts.timeout_to_fail > 0 ? req->opts.timeout_to_fail : b->cfg->timeout_to_fail;
    return now + s * 1000;
}

/* Stores a new prepared transaction, first looked at when its timeout
 * passes. Returns the store's answer; on bad input fills out (400) instead. */
static store_result create_prepared(broker *b, const trans_request *req, cmd_reply *out)
{
    char err[512];
    int64_t now = dtmq_now_ms();
    trans_global *t = NULL;
    int code = new_trans(b, req, TRANS_PREPARED, now, &t, err, sizeof(err));
    if (code != 0) {
        reply_error(out, code, "%s", err);
        return STORE_INVALID;
    }
    t->next_cron_time = prepared_deadline(b, req, now);
    trans_set_str(&t->owner, ""); /* idle: nobody holds a lease */
    store_result r = store_create_trans(b->store, t);
    trans_free(t);
    return r;
}

/* 0 when req's mode is one of allowed (ended by TRANS_MODE_NONE); -1 with
 * the reply filled otherwise. */
static int check_type(const trans_request *req, const trans_mode *allowed, cmd_reply *out,
                      const char *what)
{
    trans_mode mode = trans_mode_of(req->trans_type);
    for (size_t i = 0; allowed[i] != TRANS_MODE_NONE; i++)
        if (mode == allowed[i])
            return 0;
    reply_error(out, 400, "trans_type: %s does not apply to '%s' transactions", what, req->trans_type);
    return -1;
}

/* ---- the commands ---------------------------------------------------- */

void cmd_prepare(broker *b, const trans_request *req, cmd_reply *out)
{
    memset(out, 0, sizeof(*out));
    static const trans_mode types[] = {TRANS_MODE_TCC, TRANS_MODE_XA, TRANS_MODE_MSG,
                                       TRANS_MODE_WORKFLOW, TRANS_MODE_NONE};
    if (check_type(req, types, out, "prepare") != 0)
        return;
    if (trans_mode_of(req->trans_type) == TRANS_MODE_MSG && (req->query_prepared == NULL || !req->query_prepared[0])) {
        reply_error(out, 400, "query_prepared: required for msg (dtmq asks it back when the submit never comes)");
        return;
    }
    store_result r = create_prepared(b, req, out);
    if (out->status != 0)
        return;
    if (r == STORE_OK) {
        log_gid_info(req->gid, "%s prepared", req->trans_type);
        events_status_changed(b, req->gid, req->trans_type, NULL, TRANS_PREPARED, NULL, 0);
        reply_success(out);
        return;
    }
    if (r != STORE_DUPLICATE) {
        reply_store_error(out, "prepare", r);
        return;
    }
    trans_global *old = NULL;
    r = store_find_trans(b->store, req->gid, &old);
    if (r == STORE_OK && strcmp(old->status, TRANS_PREPARED) == 0)
        reply_success(out); /* DTM: re-preparing a prepared gid is a no-op */
    else if (r == STORE_OK)
        reply_error(out, 409, "current status '%s', cannot prepare", old->status);
    else
        reply_store_error(out, "prepare", r);
    trans_free(old);
}

/* Takes the lease of gid and starts a pass, answering through waiter if given. */
static void start_pass(broker *b, const char *gid, int64_t lease_until, int wait,
                       engine_waiter_fn waiter, void *arg, cmd_reply *out)
{
    if (wait && waiter) {
        out->deferred = 1;
        engine_kick(b->engine, gid, lease_until, waiter, arg);
    } else {
        engine_kick(b->engine, gid, lease_until, NULL, NULL);
        reply_success(out);
    }
}

/* An abort's wait_result caller asked for the rollback, so a transaction
 * that ends failed is what it wanted: DTM answers 200 then, not 409. */
typedef struct abort_waiter {
    engine_waiter_fn fn;
    void *arg;
} abort_waiter;

static void on_abort_finished(void *arg, int status, const char *body)
{
    abort_waiter *w = arg;
    if (status == 409)
        w->fn(w->arg, 200, "{\"dtm_result\":\"SUCCESS\"}");
    else
        w->fn(w->arg, status, body);
    free(w);
}

static void start_abort_pass(broker *b, const char *gid, int64_t lease_until, int wait,
                             engine_waiter_fn waiter, void *arg, cmd_reply *out)
{
    abort_waiter *w = wait && waiter ? calloc(1, sizeof(*w)) : NULL;
    if (w != NULL) {
        w->fn = waiter;
        w->arg = arg;
    }
    start_pass(b, gid, lease_until, w != NULL, w ? on_abort_finished : NULL, w, out);
}

/* prepared → to_status, taking the lease; 0 done, else the reply is filled:
 * 1 when the status had changed meanwhile (409), -1 on a store error.
 * custom_data (may be NULL) replaces the stored one: DTM's clients send a
 * msg's delay with the submit, not with the prepare. */
static int take_prepared(broker *b, const trans_global *old, const char *to_status,
                         const char *reason, const char *custom_data, int64_t *lease_until,
                         cmd_reply *out)
{
    trans_options opts;
    trans_options_from_text(old->options, &opts);
    int64_t now = dtmq_now_ms();
    *lease_until = now + engine_lease_ms(b->engine, &opts);
    trans_options_clear(&opts);
    store_status_change ch = {.status = to_status, .update_time = now,
                              .next_cron_time = *lease_until, .owner = engine_owner(b->engine),
                              .rollback_reason = reason && reason[0] ? reason : NULL,
                              .custom_data = custom_data && custom_data[0] ? custom_data : NULL};
    store_result r = store_change_status(b->store, old->gid, old->status, &ch);
    if (r == STORE_OK) {
        events_status_changed(b, old->gid, old->trans_type, old->status, to_status, reason, old->create_time);
        return 0;
    }
    if (r == STORE_CONFLICT) {
        reply_error(out, 409, "the transaction changed meanwhile (was '%s'); try again", old->status);
        return 1;
    }
    reply_store_error(out, to_status, r);
    return -1;
}

static void submit_workflow(broker *b, const trans_request *req, cmd_reply *out)
{
    const char *status = json_string_value(json_object_get(req->req_extra, "status"));
    if (status == NULL || (strcmp(status, TRANS_SUCCEED) != 0 && strcmp(status, TRANS_FAILED) != 0)) {
        reply_error(out, 400, "req_extra.status: a workflow submit must say succeed or failed");
        return;
    }
    const char *reason = json_string_value(json_object_get(req->req_extra, "rollback_reason"));
    const char *result = json_string_value(json_object_get(req->req_extra, "result"));
    int64_t now = dtmq_now_ms();
    store_status_change ch = {.status = status, .update_time = now, .finish_time = now,
                              .rollback_time = strcmp(status, TRANS_FAILED) == 0 ? now : 0,
                              .rollback_reason = reason, .result = result};
    store_result r = store_change_status(b->store, req->gid, TRANS_PREPARED, &ch);
    if (r == STORE_OK) {
        log_gid_info(req->gid, "workflow -> %s", status);
        events_status_changed(b, req->gid, trans_mode_name(TRANS_MODE_WORKFLOW), TRANS_PREPARED, status, reason, 0);
        reply_success(out);
        return;
    }
    trans_global *old = NULL;
    if (r == STORE_CONFLICT && store_find_trans(b->store, req->gid, &old) == STORE_OK &&
        strcmp(old->status, status) == 0)
        reply_success(out); /* the same submit again */
    else if (r == STORE_CONFLICT)
        reply_error(out, 409, "current status '%s', cannot submit", old ? old->status : "?");
    else if (r == STORE_NOT_FOUND)
        reply_error(out, 409, "no workflow with gid '%s' (prepareWorkflow first)", req->gid);
    else
        reply_store_error(out, "submit", r);
    trans_free(old);
}

/* A second submit of a gid: DTM's rules, never a second run. */
static void submit_existing(broker *b, const trans_request *req, engine_waiter_fn waiter, void *arg,
                            cmd_reply *out, int attempt)
{
    trans_global *old = NULL;
    store_result r = store_find_trans(b->store, req->gid, &old);
    if (r == STORE_NOT_FOUND) { /* tcc/xa are created by prepare, never by submit */
        reply_error(out, 409, "no %s transaction with gid '%s' (prepare it first)", req->trans_type, req->gid);
        return;
    }
    if (r != STORE_OK) {
        reply_store_error(out, "submit", r);
        return;
    }
    int64_t lease_until;
    if (strcmp(old->status, TRANS_PREPARED) == 0 && trans_global_mode(old) != TRANS_MODE_SAGA) {
        int took = take_prepared(b, old, TRANS_SUBMITTED, NULL, req->custom_data, &lease_until, out);
        if (took == 0) {
            log_gid_info(old->gid, "%s prepared -> submitted", old->trans_type);
            start_pass(b, old->gid, lease_until, req->opts.wait_result, waiter, arg, out);
        } else if (took > 0 && attempt == 0) {
            /* moved meanwhile (a racing submit, say): answer from where it is now */
            cmd_reply_clear(out);
            memset(out, 0, sizeof(*out));
            trans_free(old);
            submit_existing(b, req, waiter, arg, out, 1);
            return;
        }
    } else if (strcmp(old->status, TRANS_SUBMITTED) == 0) {
        /* already running here or elsewhere, or waiting for a retry: make it due now */
        engine_poke(b->engine, old->gid);
        if (req->opts.wait_result)
            reply_error(out, 425, "already submitted and still running");
        else
            reply_success(out);
        if (out->status == 425) {
            json_object_set_new(out->body, "dtm_result", json_string("ONGOING"));
        }
    } else {
        reply_error(out, 409, "current status '%s', cannot submit", old->status);
    }
    trans_free(old);
}

/*
 * Stores a new transaction that a pass starts on at once. With wait_result
 * the answer comes from the pass, which makes every change durable before it
 * answers or calls out (pass.c), and it sees this one: so the create need not
 * wait for its own commit and shares one with the pass's writes. Without
 * wait_result (or when the submit is published as an event right away) the
 * answer is given here, so the create is durable first.
 */
static store_result create_for_pass(broker *b, const trans_request *req, engine_waiter_fn waiter,
                                    const trans_global *t)
{
    int hand_over = req->opts.wait_result && waiter != NULL && !events_published(b);
    if (!hand_over)
        return store_create_trans(b->store, t);
    bool was = store_durability_deferred();
    store_defer_durability(true);
    store_result r = store_create_trans(b->store, t);
    store_defer_durability(was);
    return r;
}

void cmd_submit(broker *b, const trans_request *req, engine_waiter_fn waiter, void *arg,
                cmd_reply *out)
{
    memset(out, 0, sizeof(*out));
    trans_mode mode = trans_mode_of(req->trans_type);
    if (mode == TRANS_MODE_WORKFLOW) {
        submit_workflow(b, req, out);
        return;
    }
    if ((mode == TRANS_MODE_SAGA || mode == TRANS_MODE_MSG) &&
        (req->steps == NULL || json_array_size(req->steps) == 0)) {
        /* msg may have been prepared with its steps; saga must bring them */
        if (mode == TRANS_MODE_SAGA) {
            reply_error(out, 400, "steps: a saga needs at least one step");
            return;
        }
    }
    char err[512];
    int64_t now = dtmq_now_ms();
    trans_global *t = NULL;
    int code = new_trans(b, req, TRANS_SUBMITTED, now, &t, err, sizeof(err));
    if (code != 0) {
        reply_error(out, code, "%s", err);
        return;
    }
    int64_t lease_until = now + engine_lease_ms(b->engine, &req->opts);
    t->next_cron_time = lease_until;
    t->next_cron_interval = 0;
    trans_set_str(&t->owner, engine_owner(b->engine));
    int fresh_tcc = mode == TRANS_MODE_TCC || mode == TRANS_MODE_XA;
    store_result r = fresh_tcc ? STORE_DUPLICATE : create_for_pass(b, req, waiter, t);
    trans_free(t);
    if (r == STORE_OK) {
        log_gid_info(req->gid, "%s submitted", req->trans_type);
        events_status_changed(b, req->gid, req->trans_type, NULL, TRANS_SUBMITTED, NULL, 0);
        start_pass(b, req->gid, lease_until, req->opts.wait_result, waiter, arg, out);
    } else if (r == STORE_DUPLICATE) {
        submit_existing(b, req, waiter, arg, out, 0);
    } else {
        reply_store_error(out, "submit", r);
    }
}

void cmd_abort(broker *b, const trans_request *req, engine_waiter_fn waiter, void *arg,
               cmd_reply *out)
{
    memset(out, 0, sizeof(*out));
    trans_global *old = NULL;
    store_result r = store_find_trans(b->store, req->gid, &old);
    if (r == STORE_NOT_FOUND) {
        reply_error(out, 409, "no transaction with gid '%s'", req->gid);
        return;
    }
    if (r != STORE_OK) {
        reply_store_error(out, "abort", r);
        return;
    }
    const char *type = old->trans_type;
    trans_mode mode = trans_global_mode(old);
    int tcc_or_xa = mode == TRANS_MODE_TCC || mode == TRANS_MODE_XA;
    int64_t lease_until;
    if (mode == TRANS_MODE_MSG && strcmp(old->status, TRANS_PREPARED) == 0) {
        int64_t now = dtmq_now_ms();
        store_status_change ch = {.status = TRANS_FAILED, .update_time = now, .finish_time = now,
                                  .rollback_time = now, .rollback_reason = req->rollback_reason};
        r = store_change_status(b->store, old->gid, TRANS_PREPARED, &ch);
        if (r == STORE_OK) {
            events_status_changed(b, old->gid, type, TRANS_PREPARED, TRANS_FAILED, req->rollback_reason, old->create_time);
            reply_success(out);
        }
        else if (r == STORE_CONFLICT)
            reply_error(out, 409, "the transaction changed meanwhile; try again");
        else
            reply_store_error(out, "abort", r);
    } else if (tcc_or_xa && strcmp(old->status, TRANS_PREPARED) == 0) {
        if (take_prepared(b, old, TRANS_ABORTING, req->rollback_reason, NULL, &lease_until, out) == 0)
            start_abort_pass(b, old->gid, lease_until, req->opts.wait_result, waiter, arg, out);
    } else if (tcc_or_xa && strcmp(old->status, TRANS_ABORTING) == 0) {
        engine_poke(b->engine, old->gid);
        reply_success(out);
    } else {
        reply_error(out, 409, "current status '%s' of a %s transaction, cannot abort", old->status, type);
    }
    trans_free(old);
}

static const char *flat_string(json_t *body, const char *key)
{
    const char *v = json_string_value(json_object_get(body, key));
    return v ? v : "";
}

/* The rows one registerBranch adds; 0 or -1 with the reply filled. */
static int register_rows(const broker *b, json_t *body, const char *type, trans_global *rows, cmd_reply *out)
{
    const char *bid = flat_string(body, "branch_id"), *data = flat_string(body, "data");
    int64_t now = dtmq_now_ms();
    char why[300];
    int rc = 0;
    trans_mode mode = trans_mode_of(type);
    if (mode == TRANS_MODE_TCC) {
        const char *confirm = flat_string(body, "confirm"), *cancel = flat_string(body, "cancel");
        int code = url_check(b, confirm, 0, why, sizeof(why));
        if (code == 0)
            code = url_check(b, cancel, 0, why, sizeof(why));
        if (code != 0) {
            reply_error(out, code, "confirm/cancel: %s", why);
            return -1;
        }
        rc = add_row(rows, bid, "cancel", cancel, data, now) || add_row(rows, bid, "confirm", confirm, data, now);
    } else if (mode == TRANS_MODE_XA) {
        const char *url = flat_string(body, "url");
        int code = url_check(b, url, 0, why, sizeof(why));
        if (code != 0) {
            reply_error(out, code, "url: %s", why);
            return -1;
        }
        rc = add_row(rows, bid, "rollback", url, data, now) || add_row(rows, bid, "commit", url, data, now);
    } else if (mode == TRANS_MODE_WORKFLOW) {
        const char *op = flat_string(body, "op"), *status = flat_string(body, "status");
        if (op[0] == '\0' || (strcmp(status, TRANS_SUCCEED) != 0 && strcmp(status, TRANS_FAILED) != 0)) {
            reply_error(out, 400, "op and status (succeed or failed) are required for a workflow branch");
            return -1;
        }
        rc = add_row(rows, bid, op, "", data, now);
        if (rc == 0)
            trans_set_str(&rows->branches[0].status, status);
        rows->branches[0].finish_time = now;
    } else {
        reply_error(out, 400, "trans_type: registerBranch applies to tcc, xa and workflow, not '%s'", type);
        return -1;
    }
    if (rc != 0)
        reply_error(out, 500, "out of memory");
    return rc ? -1 : 0;
}

void cmd_register_branch(broker *b, json_t *body, cmd_reply *out)
{
    memset(out, 0, sizeof(*out));
    const char *gid = flat_string(body, "gid"), *type = flat_string(body, "trans_type");
    const char *bid = flat_string(body, "branch_id");
    if (!json_is_object(body) || gid[0] == '\0' || bid[0] == '\0') {
        reply_error(out, 400, "gid and branch_id are required");
        return;
    }
    const char *key;
    json_t *value;
    json_object_foreach(body, key, value) /* DTM reads this body as map[string]string */
        if (!json_is_string(value) && !json_is_null(value)) {
            reply_error(out, 400, "%s: must be a string (registerBranch takes a flat map of strings)", key);
            return;
        }
    trans_global *rows = trans_new();
    if (rows == NULL || register_rows(b, body, type, rows, out) != 0) {
        trans_free(rows);
        return;
    }
    store_result r = store_append_branches(b->store, gid, TRANS_PREPARED, rows->branches,
                                           rows->branch_count);
    trans_free(rows);
    if (r == STORE_OK || r == STORE_DUPLICATE) /* registering the same branch again is a no-op */
        reply_success(out);
    else if (r == STORE_CONFLICT || r == STORE_NOT_FOUND)
        reply_error(out, 409, "no trans with gid: %s status: prepared found", gid);
    else
        reply_store_error(out, "registerBranch", r);
}

void cmd_prepare_workflow(broker *b, const trans_request *req, cmd_reply *out)
{
    memset(out, 0, sizeof(*out));
    if (trans_mode_of(req->trans_type) != TRANS_MODE_WORKFLOW) {
        reply_error(out, 400, "trans_type: prepareWorkflow needs 'workflow'");
        return;
    }
    store_result r = create_prepared(b, req, out);
    if (out->status != 0)
        return;
    if (r != STORE_OK && r != STORE_DUPLICATE) {
        reply_store_error(out, "prepareWorkflow", r);
        return;
    }
    trans_global *cur = NULL;
    r = store_find_trans(b->store, req->gid, &cur);
    if (r != STORE_OK) {
        reply_store_error(out, "prepareWorkflow", r);
        return;
    }
    json_t *progresses = json_array();
    for (size_t i = 0; i < cur->branch_count; i++)
        json_array_append_new(progresses, trans_branch_to_json(&cur->branches[i], cur->gid));
    out->status = 200;
    out->body = json_pack("{s:o, s:o}", "transaction", trans_global_to_json(cur), "progresses", progresses);
    trans_free(cur);
}

void cmd_force_stop(broker *b, const char *gid, cmd_reply *out)
{
    memset(out, 0, sizeof(*out));
    for (int attempt = 0; attempt < 5; attempt++) {
        trans_global *old = NULL;
        store_result r = store_find_trans(b->store, gid, &old);
        if (r == STORE_NOT_FOUND) {
            reply_error(out, 409, "no transaction with gid '%s'", gid);
            return;
        }
        if (r != STORE_OK) {
            reply_store_error(out, "forceStop", r);
            return;
        }
        if (trans_status_is_final(old->status)) {
            reply_error(out, 409, "current status '%s', cannot forceStop", old->status);
            trans_free(old);
            return;
        }
        int64_t now = dtmq_now_ms();
        store_status_change ch = {.status = TRANS_FAILED, .update_time = now, .finish_time = now,
                                  .rollback_time = now, .rollback_reason = "force stopped by an operator"};
        r = store_change_status(b->store, gid, old->status, &ch);
        if (r == STORE_OK) {
            log_gid_warn(gid, "force stopped (was %s)", old->status);
            events_status_changed(b, gid, old->trans_type, old->status, TRANS_FAILED, ch.rollback_reason, old->create_time);
        }
        trans_free(old);
        if (r == STORE_OK) {
            reply_success(out);
            return;
        }
        if (r != STORE_CONFLICT) {
            reply_store_error(out, "forceStop", r);
            return;
        }
    }
    reply_error(out, 409, "the transaction kept changing; try again");
}
