/*
 * saga.c — the saga planner (DTM's trans_type_saga.go, done asynchronously).
 *
 * Rows: step i (0-based) has a compensate row and an action row, both with
 * branch_id %02d of i+1. Submitted:
 *   - an action may run when its predecessors succeeded: the previous step
 *     (sequential), or the steps listed in custom_data "orders" (concurrent);
 *   - all actions succeeded → succeed; an action failed (FAILURE answer) or
 *     the timeout_to_fail deadline passed or retry_limit was exceeded →
 *     aborting.
 * Aborting: compensations run in reverse (sequential), or after every step
 * that depends on them (concurrent), for each step whose action may have run:
 * it answered, or it was eligible to be called (an eligible action with an
 * unknown result may have taken effect — DTM skips these, dtmq compensates
 * them; the barrier makes that a null compensation when it never ran). All
 * needed compensations succeeded → failed.
 */
#include "plan.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAGA_MAX_STEPS 1000

typedef struct saga_shape {
    size_t steps;
    long action[SAGA_MAX_STEPS];     /* branch index of step i's action row */
    long compensate[SAGA_MAX_STEPS];
    int concurrent;
    json_t *orders;                  /* {"i": [deps...]} or NULL; owned */
} saga_shape;

static void saga_shape_load(const pass_view *v, saga_shape *s)
{
    char id[16];
    for (size_t i = 0; i < SAGA_MAX_STEPS; i++) {
        snprintf(id, sizeof(id), "%02zu", i + 1);
        long a = plan_branch_index(v->t, id, "action");
        if (a < 0)
            break;
        s->action[i] = a;
        s->compensate[i] = plan_branch_index(v->t, id, "compensate");
        s->steps = i + 1;
    }
    s->concurrent = v->opts->concurrent;
    json_t *custom = v->t->custom_data ? json_loads(v->t->custom_data, 0, NULL) : NULL;
    if (json_is_object(custom)) {
        if (json_is_true(json_object_get(custom, "concurrent")))
            s->concurrent = 1;
        json_t *orders = json_object_get(custom, "orders");
        if (json_is_object(orders))
            s->orders = json_incref(orders);
    }
    json_decref(custom);
}

/* Does step i wait for step j's action (j is a predecessor of i)? */
static int saga_depends_on(const saga_shape *s, size_t i, size_t j)
{
    if (!s->concurrent)
        return j + 1 == i;
    char key[16];
    snprintf(key, sizeof(key), "%zu", i);
    json_t *deps = s->orders ? json_object_get(s->orders, key) : NULL;
    size_t k;
    json_t *d;
    json_array_foreach(deps, k, d)
        if (json_is_integer(d) && (size_t)json_integer_value(d) == j)
            return 1;
    return 0;
}

/* Step i's action may be called: every predecessor's action succeeded. */
static int saga_action_eligible(const pass_view *v, const saga_shape *s, size_t i)
{
    for (size_t j = 0; j < s->steps; j++)
        if (j != i && saga_depends_on(s, i, j) &&
            !plan_branch_is(v->t, (size_t)s->action[j], TRANS_SUCCEED))
            return 0;
    return 1;
}

static void saga_plan_forward(const pass_view *v, const saga_shape *s, plan *out)
{
    size_t succeeded = 0;
    long failed_step = -1;
    for (size_t i = 0; i < s->steps; i++) {
        size_t a = (size_t)s->action[i];
        if (plan_branch_is(v->t, a, TRANS_SUCCEED))
            succeeded++;
        else if (plan_branch_is(v->t, a, TRANS_FAILED))
            failed_step = (long)i;
        else if (plan_callable(v, a) && saga_action_eligible(v, s, i))
            plan_add_call(out, a);
    }
    int64_t deadline;
    int timed_out = plan_timed_out(v, 0, &deadline);
    int over_limit = v->opts->retry_limit > 0 && v->retry_count > v->opts->retry_limit;
    if (failed_step >= 0 || timed_out || over_limit)
        out->call_count = 0; /* no new actions once the saga must roll back */
    if (plan_busy(v) || out->call_count > 0) {
        if (deadline > 0 && !timed_out)
            out->wake_at_ms = deadline;
        return;
    }
    if (failed_step >= 0 && v->failed_branch == s->action[failed_step] && v->failure_text &&
        v->failure_text[0] != '\0')
        plan_set_status(out, TRANS_ABORTING, "branch %02ld action failed: %.200s", failed_step + 1,
                        v->failure_text);
    else if (failed_step >= 0)
        plan_set_status(out, TRANS_ABORTING, "branch %02ld action failed", failed_step + 1);
    else if (timed_out)
        plan_set_status(out, TRANS_ABORTING, "Timeout after %lld seconds",
                        (long long)v->opts->timeout_to_fail);
    else if (over_limit)
        plan_set_status(out, TRANS_ABORTING, "RetryCount is greater than RetryLimit: %lld > %lld",
                        (long long)v->retry_count, (long long)v->opts->retry_limit);
    else if (succeeded == s->steps)
        plan_set_status(out, TRANS_SUCCEED, "%s", "");
    else if (deadline > 0)
        out->wake_at_ms = deadline;
}

/* Step i needs compensating: its action answered, or may have run. */
static int saga_needs_compensation(const pass_view *v, const saga_shape *s, size_t i)
{
    size_t a = (size_t)s->action[i];
    return !plan_branch_is(v->t, a, TRANS_PREPARED) || saga_action_eligible(v, s, i);
}

static int saga_compensated(const pass_view *v, const saga_shape *s, size_t i)
{
    return !saga_needs_compensation(v, s, i) || s->compensate[i] < 0 ||
           plan_branch_is(v->t, (size_t)s->compensate[i], TRANS_SUCCEED);
}

/* Compensation of i waits for the steps after it (sequential) or the steps
 * that depended on it (concurrent) to be compensated first. */
static int saga_compensation_ready(const pass_view *v, const saga_shape *s, size_t i)
{
    for (size_t j = 0; j < s->steps; j++) {
        int later = s->concurrent ? saga_depends_on(s, j, i) : j > i;
        if (j != i && later && !saga_compensated(v, s, j))
            return 0;
    }
    return 1;
}

static void saga_plan_backward(const pass_view *v, const saga_shape *s, plan *out)
{
    int all_done = 1;
    for (size_t i = s->steps; i-- > 0;) {
        if (saga_compensated(v, s, i))
            continue;
        all_done = 0;
        size_t c = (size_t)s->compensate[i];
        if (plan_callable(v, c) && saga_compensation_ready(v, s, i))
            plan_add_call(out, c);
    }
    if (all_done && !plan_busy(v))
        plan_set_status(out, TRANS_FAILED, "%s", "");
}

void saga_plan(const pass_view *v, plan *out)
{
    memset(out, 0, sizeof(*out));
    saga_shape *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return;
    saga_shape_load(v, s);
    if (strcmp(v->t->status, TRANS_SUBMITTED) == 0)
        saga_plan_forward(v, s, out);
    else if (strcmp(v->t->status, TRANS_ABORTING) == 0)
        saga_plan_backward(v, s, out);
    json_decref(s->orders);
    free(s);
}
