/*
 * msg.c — the 2-phase message planner (DTM's trans_type_msg.go).
 *
 * Prepared: the client is between its local commit and submit. Once the
 * timeout passes (timeout_to_fail, else TimeoutToFail), dtmq asks it back
 * (query_prepared): the engine maps SUCCESS → submitted, FAILURE → failed,
 * ONGOING → ask again later. Submitted: after custom_data "delay" seconds from
 * creation, the action rows run in order (the first not-yet-successful one
 * blocks the rest) or all at once when concurrent; all done → succeed. A
 * failing action is retried, never rolled back: the message was committed.
 */
#include "plan.h"

#include <jansson.h>
#include <string.h>

static int64_t msg_delay_ms(const trans_global *t)
{
    json_t *custom = t->custom_data ? json_loads(t->custom_data, 0, NULL) : NULL;
    json_t *delay = json_object_get(custom, "delay");
    int64_t ms = json_is_integer(delay) ? json_integer_value(delay) * 1000 : 0;
    json_decref(custom);
    return ms > 0 ? ms : 0;
}

static void msg_plan_prepared(const pass_view *v, plan *out)
{
    int64_t deadline;
    if (!plan_timed_out(v, 1, &deadline))
        out->wake_at_ms = deadline;
    else if (!v->special_in_flight && !v->special_tried)
        out->special = SPECIAL_QUERY_PREPARED;
}

static void msg_plan_submitted(const pass_view *v, plan *out)
{
    const trans_global *t = v->t;
    int64_t start_at = t->create_time + msg_delay_ms(t);
    if (v->now_ms < start_at) {
        out->wake_at_ms = start_at;
        return;
    }
    int pending = 0;
    for (size_t i = 0; i < t->branch_count; i++) {
        if (strcmp(t->branches[i].op, "action") != 0 || plan_branch_is(t, i, TRANS_SUCCEED))
            continue;
        pending = 1;
        if (plan_callable(v, i))
            plan_add_call(out, i);
        if (!v->opts->concurrent)
            break; /* in order: this one first */
    }
    if (!pending && !plan_busy(v))
        plan_set_status(out, TRANS_SUCCEED, "%s", "");
}

void msg_plan(const pass_view *v, plan *out)
{
    memset(out, 0, sizeof(*out));
    if (strcmp(v->t->status, TRANS_PREPARED) == 0)
        msg_plan_prepared(v, out);
    else if (strcmp(v->t->status, TRANS_SUBMITTED) == 0)
        msg_plan_submitted(v, out);
}
