/*
 * plan.c — helpers every mode's planner shares, and the planner table.
 */
#include "plan.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

planner_fn plan_for_type(const char *trans_type)
{
    switch (trans_mode_of(trans_type)) {
    case TRANS_MODE_SAGA: return saga_plan;
    case TRANS_MODE_TCC: return tcc_plan;
    case TRANS_MODE_XA: return xa_plan;
    case TRANS_MODE_MSG: return msg_plan;
    case TRANS_MODE_WORKFLOW: return workflow_plan;
    case TRANS_MODE_NONE: break;
    }
    return NULL;
}

long plan_branch_index(const trans_global *t, const char *branch_id, const char *op)
{
    for (size_t i = 0; i < t->branch_count; i++)
        if (strcmp(t->branches[i].branch_id, branch_id) == 0 && strcmp(t->branches[i].op, op) == 0)
            return (long)i;
    return -1;
}

int plan_branch_is(const trans_global *t, size_t i, const char *s)
{
    return strcmp(t->branches[i].status, s) == 0;
}

int plan_callable(const pass_view *v, size_t i)
{
    return plan_branch_is(v->t, i, TRANS_PREPARED) && !v->in_flight[i] && !v->tried[i];
}

void plan_add_call(plan *p, size_t i)
{
    if (p->call_count < PLAN_MAX_CALLS)
        p->calls[p->call_count++] = i;
}

int plan_busy(const pass_view *v)
{
    if (v->special_in_flight)
        return 1;
    for (size_t i = 0; i < v->t->branch_count; i++)
        if (v->in_flight[i])
            return 1;
    return 0;
}

void plan_set_status(plan *p, const char *status, const char *fmt, ...)
{
    p->new_status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->reason, sizeof(p->reason), fmt, ap);
    va_end(ap);
}

int plan_timed_out(const pass_view *v, int always_times_out, int64_t *deadline_ms)
{
    int64_t timeout_ms = v->opts->timeout_to_fail * 1000;
    if (timeout_ms <= 0)
        timeout_ms = always_times_out ? v->default_timeout_ms : 0;
    if (timeout_ms <= 0) {
        *deadline_ms = 0;
        return 0;
    }
    *deadline_ms = v->t->create_time + timeout_ms;
    return v->now_ms >= *deadline_ms;
}
