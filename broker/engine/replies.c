/*
 * replies.c — Kafka branch calls whose answer comes back as a message on
 * PREFIXreply (saga, tcc, xa). Before a branch message is produced the pass
 * registers what it waits for (gid, branch_id, op) with a deadline; a reply
 * that matches is handed to the owning worker as the call's result; a
 * deadline that passes first becomes an ERROR result ("no reply"), which the
 * pass retries with backoff like any unknown result.
 *
 * A reply nobody here waits for (its pass runs in another dtmq process, or
 * already gave up) is still worth its content: a SUCCESS, or a saga action's
 * FAILURE, is recorded in the store under the status guard, so whichever
 * process runs the next pass sees it. Replies for unknown gids or branches
 * are counted and logged, never applied.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "engine_internal.h"

#define REPLY_SCAN_MS 100

typedef struct reply_wait {
    char *gid;
    char *branch_id;
    char *op;
    long branch;
    int64_t started_ms;
    int64_t deadline_ms;
    struct reply_wait *next;
} reply_wait;

static unsigned wait_bucket(const char *gid)
{
    return engine_hash(gid) % REPLY_BUCKETS;
}

static void wait_free(reply_wait *w)
{
    free(w->gid);
    free(w->branch_id);
    free(w->op);
    free(w);
}

int replies_expect(engine *e, const char *gid, const char *branch_id, const char *op, long branch,
                   int64_t started_ms, int64_t deadline_ms)
{
    reply_wait *w = calloc(1, sizeof(*w));
    if (w == NULL || !(w->gid = strdup(gid)) || !(w->branch_id = strdup(branch_id)) ||
        !(w->op = strdup(op))) {
        if (w)
            wait_free(w);
        return -1;
    }
    w->branch = branch;
    w->started_ms = started_ms;
    w->deadline_ms = deadline_ms;
    pthread_mutex_lock(&e->replies_mu);
    reply_wait **bucket = (reply_wait **)&e->replies[wait_bucket(gid)];
    w->next = *bucket;
    *bucket = w;
    pthread_mutex_unlock(&e->replies_mu);
    return 0;
}

/* Removes and returns the wait for (gid, branch_id, op), or NULL. */
static reply_wait *take_wait(engine *e, const char *gid, const char *branch_id, const char *op)
{
    pthread_mutex_lock(&e->replies_mu);
    reply_wait *found = NULL;
    for (reply_wait **p = (reply_wait **)&e->replies[wait_bucket(gid)]; *p; p = &(*p)->next) {
        reply_wait *w = *p;
        if (strcmp(w->gid, gid) == 0 && strcmp(w->branch_id, branch_id) == 0 &&
            strcmp(w->op, op) == 0) {
            *p = w->next;
            found = w;
            break;
        }
    }
    pthread_mutex_unlock(&e->replies_mu);
    return found;
}

void replies_cancel(engine *e, const char *gid, const char *branch_id, const char *op)
{
    reply_wait *w = take_wait(e, gid, branch_id, op);
    if (w)
        wait_free(w);
}

/* Hands the reply to the owning worker's pass; message is the worker's own
 * reason (kept up to 200 bytes), may be NULL. */
static void post_result(engine *e, reply_wait *w, dispatch_outcome outcome, const char *text,
                        const char *message)
{
    event *ev = calloc(1, sizeof(*ev));
    if (ev == NULL) {
        wait_free(w);
        return;
    }
    ev->kind = EV_RESULT;
    ev->gid = w->gid;
    w->gid = NULL;
    ev->branch = w->branch;
    ev->outcome = outcome;
    ev->text = strdup(text);
    ev->message = message && message[0] ? strndup(message, 200) : NULL;
    ev->started_ms = w->started_ms;
    ev->finished_ms = dtmq_now_ms();
    wait_free(w);
    engine_post(e, ev);
}

/* A reply for a call this process does not wait for: record what can be. */
static reply_status record_unwaited(engine *e, const char *gid, const char *branch_id,
                                    const char *op, dispatch_outcome outcome)
{
    trans_global *t = NULL;
    if (store_find_trans(e->b->store, gid, &t) != STORE_OK)
        return REPLY_UNKNOWN;
    trans_branch *b = trans_find_branch(t, branch_id, op);
    reply_status rs = b ? REPLY_IGNORED : REPLY_UNKNOWN;
    int saga_action = trans_global_mode(t) == TRANS_MODE_SAGA && strcmp(op, "action") == 0;
    const char *status = outcome == DISPATCH_SUCCESS                 ? TRANS_SUCCEED
                         : outcome == DISPATCH_FAILURE && saga_action ? TRANS_FAILED
                                                                      : NULL;
    if (b && status && strcmp(b->status, TRANS_PREPARED) == 0 && !trans_status_is_final(t->status)) {
        trans_branch update = *b;
        int64_t now = dtmq_now_ms();
        update.status = (char *)status;
        update.update_time = update.finish_time = now;
        /* only over "prepared": the owner's pass may record its own result
         * for this branch at the same moment, and that one stands */
        if (store_update_branches_if(e->b->store, gid, t->status, &update, 1, TRANS_PREPARED) == STORE_OK)
            rs = REPLY_RECORDED;
    }
    trans_free(t);
    return rs;
}

reply_status engine_on_reply(engine *e, const char *gid, const char *branch_id, const char *op,
                             dispatch_outcome outcome, const char *message)
{
    reply_wait *w = take_wait(e, gid, branch_id, op);
    if (w != NULL) {
        char text[600];
        snprintf(text, sizeof(text), "reply %s%s%.500s", dispatch_outcome_name(outcome),
                 message && message[0] ? ": " : "", message ? message : "");
        post_result(e, w, outcome, text, message);
        return REPLY_DELIVERED;
    }
    reply_status rs = record_unwaited(e, gid, branch_id, op, outcome);
    if (rs == REPLY_UNKNOWN)
        log_gid_warn(gid, "reply for unknown branch %s %s ignored", branch_id, op);
    else
        log_gid_debug(gid, "reply %s for branch %s %s (not waited for here): %s",
                      dispatch_outcome_name(outcome), branch_id, op,
                      rs == REPLY_RECORDED ? "recorded" : "nothing to record");
    return rs;
}

/* Expired waits become ERROR results. */
static void expire_waits(engine *e, int64_t now)
{
    reply_wait *expired = NULL;
    pthread_mutex_lock(&e->replies_mu);
    for (size_t i = 0; i < REPLY_BUCKETS; i++) {
        reply_wait **p = (reply_wait **)&e->replies[i];
        while (*p) {
            reply_wait *w = *p;
            if (w->deadline_ms > now) {
                p = &w->next;
                continue;
            }
            *p = w->next;
            w->next = expired;
            expired = w;
        }
    }
    pthread_mutex_unlock(&e->replies_mu);
    while (expired) {
        reply_wait *next = expired->next;
        post_result(e, expired, DISPATCH_ERROR, "no reply within request_timeout", NULL);
        expired = next;
    }
}

void *replies_timer_main(void *arg)
{
    engine *e = arg;
    while (!e->stopping) {
        expire_waits(e, dtmq_now_ms());
        struct timespec ts = {0, REPLY_SCAN_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

void replies_free_all(engine *e)
{
    for (size_t i = 0; i < REPLY_BUCKETS; i++) {
        reply_wait *w = e->replies[i];
        while (w) {
            reply_wait *next = w->next;
            wait_free(w);
            w = next;
        }
        e->replies[i] = NULL;
    }
}
