/*
 * workflow.c — the workflow planner (DTM's trans_type_workflow.go).
 *
 * A workflow is driven by its client: it records each step's result with
 * registerBranch and ends the transaction with submit. dtmq's part is
 * recovery: once the timeout passes (timeout_to_fail, else TimeoutToFail)
 * without an end, and then at every retry, it calls the client's resume URL
 * (query_prepared) so a new client instance replays the workflow.
 */
#include "plan.h"

#include <string.h>

void workflow_plan(const pass_view *v, plan *out)
{
    memset(out, 0, sizeof(*out));
    if (trans_status_is_final(v->t->status))
        return;
    int64_t deadline;
    if (!plan_timed_out(v, 1, &deadline))
        out->wake_at_ms = deadline;
    else if (!v->special_in_flight && !v->special_tried)
        out->special = SPECIAL_RESUME;
}
