/*
 * plan.h — what a transaction should do next, decided by its mode.
 *
 * Each mode (saga.c, tcc_xa.c, msg.c, workflow.c) supplies a planner: a pure
 * function from the transaction's stored state plus what this process is doing
 * with it right now (calls in flight, branches that already answered
 * "not yet" in this pass) to the next step. The engine's pass (pass.c)
 * carries the step out and asks again, until the pass ends. Planners do no
 * I/O and include no JSON codec, so every rule of every mode is unit-tested
 * without a network (tests/unit/test_plan.c).
 *
 * Rule shared by all modes: a status change is only planned when no call of
 * the transaction is in flight, so a result never lands on a status it was
 * not started under (except after an outside change such as forceStop, which
 * the store's compare-and-set catches).
 */
#ifndef DTMQ_PLAN_H
#define DTMQ_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/model/trans.h"
#include "daemon/model/trans_options.h"

/* What this process knows beyond the stored state, for one pass. */
typedef struct pass_view {
    const trans_global *t;
    const trans_options *opts;
    const unsigned char *in_flight; /* per branch index: a call is out */
    const unsigned char *tried;     /* per branch index: answered error/ongoing this pass */
    int special_in_flight;          /* query_prepared / resume call out */
    int special_tried;              /* it was made this pass already */
    long failed_branch;             /* a saga action that answered FAILURE this pass, -1 = none */
    const char *failure_text;       /* what that branch said ("" = nothing), for rollback_reason */
    int64_t retry_count;            /* passes that ended with an unknown result so far */
    int64_t now_ms;
    int64_t default_timeout_ms;     /* TimeoutToFail for modes that always time out */
} pass_view;

typedef enum plan_special {
    SPECIAL_NONE = 0,
    SPECIAL_QUERY_PREPARED, /* msg: GET query_prepared, branch_id 00, op msg */
    SPECIAL_RESUME,         /* workflow: POST query_prepared with the workflow data */
} plan_special;

#define PLAN_MAX_CALLS 64

typedef struct plan {
    size_t calls[PLAN_MAX_CALLS]; /* branch indexes to call now */
    size_t call_count;
    plan_special special;         /* a non-branch call to make now */
    const char *new_status;       /* a status change to make now (static string) */
    char reason[256];             /* rollback_reason with new_status, "" = none */
    int64_t wake_at_ms;           /* pass over and nothing failed: next pass no later than this, 0 = policy */
} plan;

typedef void (*planner_fn)(const pass_view *v, plan *out);

void saga_plan(const pass_view *v, plan *out);
void tcc_plan(const pass_view *v, plan *out);
void xa_plan(const pass_view *v, plan *out);
void msg_plan(const pass_view *v, plan *out);
void workflow_plan(const pass_view *v, plan *out);

/* The planner for a trans_type, NULL if unknown. */
planner_fn plan_for_type(const char *trans_type);

/* Helpers the planners share (plan.c). */
/* Index of the branch (branch_id, op), or -1. */
long plan_branch_index(const trans_global *t, const char *branch_id, const char *op);
/* True if branch i is prepared, not in flight and not tried this pass. */
int plan_callable(const pass_view *v, size_t i);
/* Adds branch i to the plan's calls (ignored past PLAN_MAX_CALLS). */
void plan_add_call(plan *p, size_t i);
/* True if any branch is in flight or a special call is out. */
int plan_busy(const pass_view *v);
/* Plans a status change with a reason. */
void plan_set_status(plan *p, const char *status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The timeout in ms that applies (options, else default_timeout_ms when
 * always_times_out, else 0 = never), and whether it has passed. */
int plan_timed_out(const pass_view *v, int always_times_out, int64_t *deadline_ms);
/* True if the branch's status is s. */
int plan_branch_is(const trans_global *t, size_t i, const char *s);

#endif
