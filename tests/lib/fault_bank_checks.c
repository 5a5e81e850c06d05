/*
 * fault_bank_checks.c — the checks of dtmq's fault tests, run once at the end
 * (fb_check): the invariants on the bank and on every gid's final /query, the
 * history checker over the event log, and the recovery/resume figures. Each
 * violation is counted and printed; the list is in fault_bank.h.
 */
#include "fault_bank.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault_bank_internal.h"
#include "testlib.h"

static const char *const verdict_names[V_COUNT] = {
    "sum of balances unchanged",
    "every acknowledged transaction final",
    "saga succeed: both effects once; failed: net zero",
    "msg: committed delivered exactly once, dropped never",
    "no action applied after its compensation (service counters)",
    "final status matches the branch outcomes in /query",
    "history: exactly one final state per transaction",
    "history: no saga action call after its first compensation call",
    "history: no Deposit call after the msg was seen failed",
};

void fbi_verdicts_init(fault_bank *b)
{
    for (int v = 0; v < V_COUNT; v++)
        b->v[v].name = verdict_names[v];
}

/* ---- checks ------------------------------------------------------------- */

static void violation(fault_bank *b, int v, const char *fmt, ...)
{
    if (b->v[v].count < MAX_NOTES) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b->v[v].notes[b->v[v].count], sizeof(b->v[v].notes[0]), fmt, ap);
        va_end(ap);
    }
    b->v[v].count++;
}

/* Branch rows of a /query answer: status of (branch_id, op), "" when absent. */
static const char *branch_status(json_t *q, const char *bid, const char *op)
{
    json_t *br;
    size_t k;
    json_array_foreach(json_object_get(q, "branches"), k, br)
    {
        const char *id = json_string_value(json_object_get(br, "branch_id"));
        const char *o = json_string_value(json_object_get(br, "op"));
        if (id && o && strcmp(id, bid) == 0 && strcmp(o, op) == 0) {
            const char *s = json_string_value(json_object_get(br, "status"));
            return s ? s : "";
        }
    }
    return "";
}

static const char *const bids[2] = {"01", "02"};

static void check_saga(fault_bank *b, plan *p, json_t *q)
{
    const char *st = p->final_status;
    if (strcmp(st, "succeed") == 0) {
        for (int br = 0; br < 2; br++)
            if (p->effects[br][OP_ACTION] != 1 || p->effects[br][OP_COMP] != 0)
                violation(b, V_SAGA_EFFECT, "%s succeed but branch %s effects action=%d compensate=%d",
                          p->gid, bids[br], p->effects[br][OP_ACTION], p->effects[br][OP_COMP]);
        if (p->in_fails)
            violation(b, V_SAGA_EFFECT, "%s succeed although TransIn answered 409", p->gid);
        for (int br = 0; br < 2; br++)
            if (strcmp(branch_status(q, bids[br], "action"), "succeed") != 0)
                violation(b, V_BRANCHES, "%s succeed but branch %s action is '%s'", p->gid, bids[br],
                          branch_status(q, bids[br], "action"));
    } else if (strcmp(st, "failed") == 0) {
        for (int br = 0; br < 2; br++) {
            if (p->effects[br][OP_ACTION] != p->effects[br][OP_COMP] || p->effects[br][OP_ACTION] > 1)
                violation(b, V_SAGA_EFFECT, "%s failed but branch %s effects action=%d compensate=%d",
                          p->gid, bids[br], p->effects[br][OP_ACTION], p->effects[br][OP_COMP]);
            const char *a = branch_status(q, bids[br], "action");
            const char *c = branch_status(q, bids[br], "compensate");
            if (strcmp(a, "succeed") == 0 && strcmp(c, "succeed") != 0)
                violation(b, V_BRANCHES, "%s failed, branch %s action succeed but compensate '%s'",
                          p->gid, bids[br], c);
        }
    }
}

static void check_msg(fault_bank *b, plan *p, json_t *q)
{
    const char *st = p->final_status;
    if (strcmp(st, "succeed") == 0) {
        if (!p->msg_commit)
            violation(b, V_MSG_EFFECT, "%s succeed although QueryPrepared answers 409", p->gid);
        for (int br = 0; br < 2; br++) {
            if (p->effects[br][OP_ACTION] != 1)
                violation(b, V_MSG_EFFECT, "%s succeed but branch %s applied %d times", p->gid,
                          bids[br], p->effects[br][OP_ACTION]);
            if (strcmp(branch_status(q, bids[br], "action"), "succeed") != 0)
                violation(b, V_BRANCHES, "%s succeed but branch %s is '%s'", p->gid, bids[br],
                          branch_status(q, bids[br], "action"));
        }
    } else if (strcmp(st, "failed") == 0) {
        if (p->msg_commit)
            violation(b, V_MSG_EFFECT, "%s failed although it was committed (submit acked=%d)",
                      p->gid, p->submit_acked);
        for (int br = 0; br < 2; br++) {
            if (p->calls[br][OP_ACTION] != 0 || p->effects[br][OP_ACTION] != 0)
                violation(b, V_MSG_EFFECT, "%s dropped but branch %s called %d times, applied %d",
                          p->gid, bids[br], p->calls[br][OP_ACTION], p->effects[br][OP_ACTION]);
            if (strcmp(branch_status(q, bids[br], "action"), "succeed") == 0)
                violation(b, V_BRANCHES, "%s failed but branch %s is succeed", p->gid, bids[br]);
        }
    }
}

/* The history checker: the event log in order. */
static void check_history(fault_bank *b)
{
    int n = b->o.transactions;
    char (*first_final)[ST_LEN] = calloc((size_t)n + 1, ST_LEN);
    long long *first_comp = calloc((size_t)n + 1, sizeof(long long));
    long long *failed_seen = calloc((size_t)n + 1, sizeof(long long));
    if (!first_final || !first_comp || !failed_seen)
        abort();
    for (int i = 0; i < n; i++)
        first_comp[i] = failed_seen[i] = -1;
    for (size_t k = 0; k < b->n_ev; k++) {
        const event *e = &b->ev[k];
        if (e->idx < 0)
            continue;
        plan *p = &b->plans[e->idx];
        if (e->type == EV_POLL) {
            if (first_final[e->idx][0] && strcmp(first_final[e->idx], e->st) != 0)
                violation(b, V_ONE_FINAL, "%s seen '%s' after it was seen final '%s'", p->gid, e->st,
                          first_final[e->idx]);
            if (!first_final[e->idx][0] && fbi_is_final(e->st))
                snprintf(first_final[e->idx], ST_LEN, "%s", e->st);
            if (strcmp(e->st, "failed") == 0 && failed_seen[e->idx] < 0)
                failed_seen[e->idx] = e->seq;
        } else if (e->type == EV_CALL && e->outcome == -1 && e->branch >= 0) { /* arrival */
            if (p->kind == KIND_SAGA) {
                if (e->op == OP_COMP && first_comp[e->idx] < 0)
                    first_comp[e->idx] = e->seq;
                if (e->op == OP_ACTION && first_comp[e->idx] >= 0)
                    violation(b, V_ACTION_AFTER_COMP,
                              "%s: branch %02d action called (event %lld) after compensation "
                              "started (event %lld)",
                              p->gid, e->branch + 1, e->seq, first_comp[e->idx]);
            } else if (e->is_deposit && failed_seen[e->idx] >= 0) {
                violation(b, V_DEPOSIT_AFTER_FAIL,
                          "%s: Deposit called (event %lld) after the msg was seen failed (event %lld)",
                          p->gid, e->seq, failed_seen[e->idx]);
            }
        }
    }
    for (int i = 0; i < n; i++) {
        plan *p = &b->plans[i];
        if (p->acked && p->final_status[0] && first_final[i][0] &&
            strcmp(first_final[i], p->final_status) != 0)
            violation(b, V_ONE_FINAL, "%s first seen final '%s', ends '%s'", p->gid, first_final[i],
                      p->final_status);
    }
    free(first_final);
    free(first_comp);
    free(failed_seen);
}

/* Recovery: from each mark to the next branch call answered 200 (of a Kafka
 * transaction or branch when the mark says kafka_only). */
static long long max_recovery_ms(const fault_bank *b, int *unrecovered)
{
    long long worst = 0;
    *unrecovered = 0;
    for (size_t k = 0; k < b->n_ev; k++) {
        const event *r = &b->ev[k];
        if (r->type != EV_RESTART)
            continue;
        size_t m = k + 1;
        while (m < b->n_ev && !(b->ev[m].type == EV_CALL && b->ev[m].outcome >= 0 &&
                                b->ev[m].status == 200 && (!r->kafka || b->ev[m].kafka)))
            m++;
        if (m == b->n_ev) {
            (*unrecovered)++;
            continue;
        }
        long long d = b->ev[m].ms - r->ms;
        if (d > worst)
            worst = d;
    }
    return worst;
}

/* Resumption: for each mark, the longest a transaction that had been called
 * before it waited, after it, for its next call answered 200. */
static long long max_resume_ms(const fault_bank *b)
{
    int n = b->o.transactions;
    long long worst = 0;
    char *called = calloc((size_t)n + 1, 1), *resumed = calloc((size_t)n + 1, 1);
    if (!called || !resumed)
        abort();
    for (size_t k = 0; k < b->n_ev; k++) {
        const event *r = &b->ev[k];
        if (r->type != EV_RESTART)
            continue;
        memset(called, 0, (size_t)n);
        memset(resumed, 0, (size_t)n);
        for (size_t m = 0; m < k; m++)
            if (b->ev[m].type == EV_CALL && b->ev[m].idx >= 0)
                called[b->ev[m].idx] = 1;
        for (size_t m = k + 1; m < b->n_ev; m++) {
            const event *e = &b->ev[m];
            if (e->type != EV_CALL || e->idx < 0 || e->outcome < 0 || e->status != 200 ||
                !called[e->idx] || resumed[e->idx])
                continue;
            resumed[e->idx] = 1;
            if (e->ms - r->ms > worst)
                worst = e->ms - r->ms;
        }
    }
    free(called);
    free(resumed);
    return worst;
}

/* The final /query of every gid and the checks on it; counts into f. */
static void check_every_gid(fault_bank *b, fb_figures *f)
{
    for (int i = 0; i < b->o.transactions; i++) {
        plan *p = &b->plans[i];
        int exists = 0;
        json_t *q = fbi_query_gid(b, p->gid, &exists);
        const char *s = json_string_value(json_object_get(json_object_get(q, "transaction"), "status"));
        if (p->final_status[0] && s && strcmp(s, p->final_status) != 0)
            violation(b, V_ONE_FINAL, "%s was final '%s', now '%s'", p->gid, p->final_status, s);
        if (s)
            snprintf(p->final_status, sizeof(p->final_status), "%s", s);
        if (p->acked && !fbi_is_final(p->final_status))
            violation(b, V_FINAL, "%s (%s%s, acked) still '%s' after %lld ms", p->gid,
                      p->kind == KIND_SAGA ? "saga" : "msg", p->via_kafka ? " via Kafka" : "",
                      p->final_status, b->final_wait_ms);
        if (!p->acked && s && !fbi_is_final(s))
            violation(b, V_FINAL, "%s (not acked but stored) still '%s'", p->gid, s);
        f->succeed += strcmp(p->final_status, "succeed") == 0;
        f->failed += strcmp(p->final_status, "failed") == 0;
        f->acked += p->acked;
        f->via_kafka += p->via_kafka;
        pthread_mutex_lock(&b->svc_mu);
        if (p->kind == KIND_SAGA)
            check_saga(b, p, q);
        else
            check_msg(b, p, q);
        /* a gid the store never saw must have had no effect either */
        if (!s)
            for (int br = 0; br < 2; br++)
                for (int op = 0; op < 2; op++)
                    if (p->effects[br][op])
                        violation(b, V_SAGA_EFFECT, "%s unknown to dtmq but has effects", p->gid);
        pthread_mutex_unlock(&b->svc_mu);
        json_decref(q);
    }
}

int fb_check(fault_bank *b, fb_figures *f)
{
    memset(f, 0, sizeof(*f));
    test_sleep_ms(1500); /* let late (stalled) calls and a few more polls land */
    fbi_poller_stop(b);
    fbi_poll_once(b);
    check_every_gid(b, f);
    fb_service_stop(b);
    fbi_worker_stop(b);

    long long sum = 0;
    for (int a = 0; a < FB_ACCOUNTS; a++)
        sum += b->balance[a];
    if (sum != b->sum0)
        violation(b, V_SUM, "sum of balances %lld, was %lld", sum, b->sum0);
    if (b->action_after_comp)
        violation(b, V_HANGING, "%ld action effect(s) applied after their compensation",
                  b->action_after_comp);
    check_history(b);
    f->max_recovery_ms = max_recovery_ms(b, &f->unrecovered);
    f->max_resume_ms = max_resume_ms(b);

    for (int v = 0; v < V_COUNT; v++) {
        f->violations += b->v[v].count;
        for (int k = 0; k < b->v[v].count && k < MAX_NOTES; k++)
            fprintf(stderr, "fault: VIOLATION [%s] %s\n", b->v[v].name, b->v[v].notes[k]);
    }
    f->transactions = b->o.transactions;
    f->applied = b->applied;
    f->duplicates = b->duplicates;
    f->null_comp = b->null_comp;
    f->hanging = b->hanging;
    f->busi_fail = b->busi_fail;
    f->injected = b->injected;
    f->kafka_calls = b->kafka_calls;
    f->marks = b->marks;
    f->workload_ms = b->workload_ms;
    f->final_wait_ms = b->final_wait_ms;
    f->max_poll_ms = b->poll_cost_ms;
    f->events = b->n_ev;
    return f->violations;
}
