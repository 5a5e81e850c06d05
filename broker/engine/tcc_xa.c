/*
 * tcc_xa.c — planners for TCC and XA (DTM's trans_type_tcc.go / _xa.go).
 *
 * Rows come from registerBranch: TCC adds (cancel, confirm) per branch, XA adds
 * (rollback, commit). A prepared transaction waits for its client; past its
 * timeout (timeout_to_fail, else TimeoutToFail) it goes aborting. Submitted
 * runs the second-phase "commit" op of every branch, aborting the "rollback"
 * op; one at a time, TCC from the last registered branch back, XA forward.
 * The first branch that does not answer SUCCESS ends the pass (retried later);
 * all done → succeed / failed.
 */
#include "plan.h"

#include <string.h>

static void phase2_plan(const pass_view *v, const char *commit_op, const char *rollback_op,
                        int reverse, plan *out)
{
    memset(out, 0, sizeof(*out));
    const trans_global *t = v->t;
    if (strcmp(t->status, TRANS_PREPARED) == 0) {
        int64_t deadline;
        if (plan_timed_out(v, 1, &deadline))
            plan_set_status(out, TRANS_ABORTING, "Timeout after %lld seconds",
                            (long long)((deadline - t->create_time) / 1000));
        else
            out->wake_at_ms = deadline;
        return;
    }
    int committing = strcmp(t->status, TRANS_SUBMITTED) == 0;
    if (!committing && strcmp(t->status, TRANS_ABORTING) != 0)
        return;
    const char *op = committing ? commit_op : rollback_op;
    for (size_t k = 0; k < t->branch_count; k++) {
        size_t i = reverse ? t->branch_count - 1 - k : k;
        const trans_branch *b = &t->branches[i];
        if (strcmp(b->op, op) != 0 || plan_branch_is(t, i, TRANS_SUCCEED))
            continue;
        if (plan_callable(v, i))
            plan_add_call(out, i);
        return; /* one at a time: this branch first (in flight, tried or called now) */
    }
    if (!plan_busy(v))
        plan_set_status(out, committing ? TRANS_SUCCEED : TRANS_FAILED, "%s",
                        committing ? "" : (t->rollback_reason ? t->rollback_reason : ""));
}

void tcc_plan(const pass_view *v, plan *out)
{
    phase2_plan(v, "confirm", "cancel", 1, out);
}

void xa_plan(const pass_view *v, plan *out)
{
    phase2_plan(v, "commit", "rollback", 0, out);
}
