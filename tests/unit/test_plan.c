/*
 * test_plan.c — the mode planners in broker/engine/ as pure functions: given
 * a transaction's rows and statuses, and what is in flight, do they plan the
 * right calls and status changes? No network, no store.
 */
#include <check.h>
#include <string.h>

#include "engine/plan.h"
#include "testlib.h"

typedef struct fixture {
    trans_global *t;
    trans_options opts;
    unsigned char in_flight[64];
    unsigned char tried[64];
    pass_view v;
    plan p;
} fixture;

static void fx_init(fixture *f, const char *type, const char *status)
{
    memset(f, 0, sizeof(*f));
    f->t = trans_new();
    trans_set_str(&f->t->gid, "g");
    trans_set_str(&f->t->trans_type, type);
    trans_set_str(&f->t->status, status);
    f->t->create_time = 1000000;
}

static void fx_row(fixture *f, const char *id, const char *op, const char *status)
{
    trans_branch b = {.branch_id = (char *)id, .op = (char *)op, .url = "http://x",
                      .status = (char *)status};
    trans_add_branch(f->t, &b);
}

/* A saga of n steps, statuses given per action ("p", "s", "f") and compensate. */
static void fx_saga(fixture *f, const char *status, const char *actions, const char *comps)
{
    fx_init(f, "saga", status);
    static const char *const names[] = {['p'] = "prepared", ['s'] = "succeed", ['f'] = "failed"};
    for (size_t i = 0; actions[i]; i++) {
        char id[32];
        snprintf(id, sizeof(id), "%02zu", i + 1);
        fx_row(f, id, "compensate", names[(int)comps[i]]);
        fx_row(f, id, "action", names[(int)actions[i]]);
    }
}

static plan *fx_plan(fixture *f, int64_t now)
{
    f->v = (pass_view){.t = f->t, .opts = &f->opts, .in_flight = f->in_flight, .tried = f->tried,
                       .now_ms = now, .default_timeout_ms = 35000};
    plan_for_type(f->t->trans_type)(&f->v, &f->p);
    return &f->p;
}

static void fx_free(fixture *f)
{
    trans_free(f->t);
}

/* action of step i (0-based) is row 2i+1, compensate 2i */
#define ACTION(i) (2 * (i) + 1)
#define COMP(i) (2 * (i))

START_TEST(saga_sequential_runs_the_first_prepared_action_only)
{
    fixture f;
    fx_saga(&f, "submitted", "spp", "ppp");
    plan *p = fx_plan(&f, 2000000);
    ck_assert_uint_eq(p->call_count, 1);
    ck_assert_uint_eq(p->calls[0], ACTION(1));
    ck_assert_ptr_null(p->new_status);
    f.in_flight[ACTION(1)] = 1;
    p = fx_plan(&f, 2000000);
    ck_assert_uint_eq(p->call_count, 0);
    ck_assert_ptr_null(p->new_status); /* waits for the call */
    fx_free(&f);
}
END_TEST

START_TEST(saga_all_succeeded_means_succeed)
{
    fixture f;
    fx_saga(&f, "submitted", "ss", "pp");
    ck_assert_str_eq(fx_plan(&f, 2000000)->new_status, "succeed");
    fx_free(&f);
}
END_TEST

START_TEST(saga_failed_action_aborts_then_compensates_in_reverse)
{
    fixture f;
    fx_saga(&f, "submitted", "ssf", "ppp");
    plan *p = fx_plan(&f, 2000000);
    ck_assert_str_eq(p->new_status, "aborting");
    ck_assert_ptr_nonnull(strstr(p->reason, "03"));
    trans_set_str(&f.t->status, "aborting");
    p = fx_plan(&f, 2000000);
    ck_assert_uint_eq(p->call_count, 1);
    ck_assert_uint_eq(p->calls[0], COMP(2)); /* the failed step first */
    trans_set_str(&f.t->branches[COMP(2)].status, "succeed");
    p = fx_plan(&f, 2000000);
    ck_assert_uint_eq(p->calls[0], COMP(1));
    trans_set_str(&f.t->branches[COMP(1)].status, "succeed");
    trans_set_str(&f.t->branches[COMP(0)].status, "succeed");
    ck_assert_str_eq(fx_plan(&f, 2000000)->new_status, "failed");
    fx_free(&f);
}
END_TEST

START_TEST(saga_failure_waits_for_calls_in_flight_before_aborting)
{
    fixture f;
    fx_saga(&f, "submitted", "fp", "pp");
    trans_set_str(&f.t->custom_data, "{\"concurrent\":true}");
    f.in_flight[ACTION(1)] = 1;
    plan *p = fx_plan(&f, 2000000);
    ck_assert_ptr_null(p->new_status);
    ck_assert_uint_eq(p->call_count, 0);
    fx_free(&f);
}
END_TEST

START_TEST(saga_never_eligible_steps_are_not_compensated)
{
    fixture f;
    fx_saga(&f, "aborting", "fpp", "ppp"); /* step 1 failed; 2 and 3 never became eligible */
    plan *p = fx_plan(&f, 2000000);
    ck_assert_uint_eq(p->call_count, 1);
    ck_assert_uint_eq(p->calls[0], COMP(0));
    trans_set_str(&f.t->branches[COMP(0)].status, "succeed");
    ck_assert_str_eq(fx_plan(&f, 2000000)->new_status, "failed");
    fx_free(&f);
}
END_TEST

START_TEST(saga_eligible_unknown_action_is_compensated)
{
    fixture f;
    fx_saga(&f, "aborting", "sp", "pp"); /* step 2 was eligible, its result unknown */
    plan *p = fx_plan(&f, 2000000);
    ck_assert_uint_eq(p->call_count, 1);
    ck_assert_uint_eq(p->calls[0], COMP(1));
    fx_free(&f);
}
END_TEST

START_TEST(saga_concurrent_orders)
{
    fixture f;
    fx_saga(&f, "submitted", "ppp", "ppp");
    trans_set_str(&f.t->custom_data, "{\"concurrent\":true,\"orders\":{\"2\":[0,1]}}");
    plan *p = fx_plan(&f, 2000000);
    ck_assert_uint_eq(p->call_count, 2);
    ck_assert_uint_eq(p->calls[0], ACTION(0));
    ck_assert_uint_eq(p->calls[1], ACTION(1));
    trans_set_str(&f.t->branches[ACTION(0)].status, "succeed");
    p = fx_plan(&f, 2000000);
    ck_assert_uint_eq(p->call_count, 1); /* step 3 still waits for step 2 */
    ck_assert_uint_eq(p->calls[0], ACTION(1));
    trans_set_str(&f.t->branches[ACTION(1)].status, "succeed");
    p = fx_plan(&f, 2000000);
    ck_assert_uint_eq(p->calls[0], ACTION(2));
    fx_free(&f);
}
END_TEST

START_TEST(saga_concurrent_compensation_waits_for_dependents)
{
    fixture f;
    fx_saga(&f, "aborting", "ssf", "ppp");
    trans_set_str(&f.t->custom_data, "{\"concurrent\":true,\"orders\":{\"2\":[0,1]}}");
    plan *p = fx_plan(&f, 2000000);
    ck_assert_uint_eq(p->call_count, 1);
    ck_assert_uint_eq(p->calls[0], COMP(2)); /* 1 and 2 wait for 3, which depends on them */
    trans_set_str(&f.t->branches[COMP(2)].status, "succeed");
    p = fx_plan(&f, 2000000);
    ck_assert_uint_eq(p->call_count, 2);
    fx_free(&f);
}
END_TEST

START_TEST(saga_timeout_and_retry_limit)
{
    fixture f;
    fx_saga(&f, "submitted", "sp", "pp");
    f.opts.timeout_to_fail = 5;
    f.tried[ACTION(1)] = 1;
    plan *p = fx_plan(&f, f.t->create_time + 4000);
    ck_assert_ptr_null(p->new_status);
    ck_assert_int_eq(p->wake_at_ms, f.t->create_time + 5000);
    p = fx_plan(&f, f.t->create_time + 5000);
    ck_assert_str_eq(p->new_status, "aborting");
    ck_assert_str_eq(p->reason, "Timeout after 5 seconds");
    f.opts.timeout_to_fail = 0;
    f.opts.retry_limit = 2;
    f.v.retry_count = 0;
    p = fx_plan(&f, f.t->create_time + 5000);
    ck_assert_ptr_null(p->new_status);
    /* retry_count is read from the view */
    f.v = (pass_view){.t = f.t, .opts = &f.opts, .in_flight = f.in_flight, .tried = f.tried,
                      .now_ms = 2000000, .retry_count = 3};
    saga_plan(&f.v, &f.p);
    ck_assert_str_eq(f.p.new_status, "aborting");
    ck_assert_ptr_nonnull(strstr(f.p.reason, "RetryLimit"));
    fx_free(&f);
}
END_TEST

START_TEST(tcc_confirms_one_at_a_time_in_reverse)
{
    fixture f;
    fx_init(&f, "tcc", "submitted");
    fx_row(&f, "01", "cancel", "prepared");
    fx_row(&f, "01", "confirm", "prepared");
    fx_row(&f, "02", "cancel", "prepared");
    fx_row(&f, "02", "confirm", "prepared");
    plan *p = fx_plan(&f, 2000000);
    ck_assert_uint_eq(p->call_count, 1);
    ck_assert_uint_eq(p->calls[0], 3);
    f.tried[3] = 1; /* answered an error: the pass stops there */
    p = fx_plan(&f, 2000000);
    ck_assert_uint_eq(p->call_count, 0);
    ck_assert_ptr_null(p->new_status);
    f.tried[3] = 0;
    trans_set_str(&f.t->branches[3].status, "succeed");
    ck_assert_uint_eq(fx_plan(&f, 2000000)->calls[0], 1);
    trans_set_str(&f.t->branches[1].status, "succeed");
    ck_assert_str_eq(fx_plan(&f, 2000000)->new_status, "succeed");
    fx_free(&f);
}
END_TEST

START_TEST(tcc_prepared_times_out_into_aborting)
{
    fixture f;
    fx_init(&f, "tcc", "prepared");
    plan *p = fx_plan(&f, f.t->create_time + 1000);
    ck_assert_ptr_null(p->new_status);
    ck_assert_int_eq(p->wake_at_ms, f.t->create_time + 35000);
    p = fx_plan(&f, f.t->create_time + 35000);
    ck_assert_str_eq(p->new_status, "aborting");
    fx_free(&f);
}
END_TEST

START_TEST(xa_rolls_back_forward)
{
    fixture f;
    fx_init(&f, "xa", "aborting");
    fx_row(&f, "01", "rollback", "prepared");
    fx_row(&f, "01", "commit", "prepared");
    fx_row(&f, "02", "rollback", "prepared");
    fx_row(&f, "02", "commit", "prepared");
    plan *p = fx_plan(&f, 2000000);
    ck_assert_uint_eq(p->calls[0], 0);
    trans_set_str(&f.t->branches[0].status, "succeed");
    ck_assert_uint_eq(fx_plan(&f, 2000000)->calls[0], 2);
    trans_set_str(&f.t->branches[2].status, "succeed");
    ck_assert_str_eq(fx_plan(&f, 2000000)->new_status, "failed");
    fx_free(&f);
}
END_TEST

START_TEST(msg_prepared_asks_back_after_timeout_once_per_pass)
{
    fixture f;
    fx_init(&f, "msg", "prepared");
    fx_row(&f, "01", "action", "prepared");
    plan *p = fx_plan(&f, f.t->create_time + 1000);
    ck_assert_int_eq(p->special, SPECIAL_NONE);
    p = fx_plan(&f, f.t->create_time + 35000);
    ck_assert_int_eq(p->special, SPECIAL_QUERY_PREPARED);
    ck_assert_uint_eq(p->call_count, 0); /* never delivered before the answer */
    f.v.special_tried = 1;
    msg_plan(&f.v, &f.p);
    ck_assert_int_eq(f.p.special, SPECIAL_NONE);
    fx_free(&f);
}
END_TEST

START_TEST(msg_submitted_delivers_in_order_after_delay)
{
    fixture f;
    fx_init(&f, "msg", "submitted");
    trans_set_str(&f.t->custom_data, "{\"delay\":10}");
    fx_row(&f, "01", "action", "prepared");
    fx_row(&f, "02", "action", "prepared");
    plan *p = fx_plan(&f, f.t->create_time + 9000);
    ck_assert_uint_eq(p->call_count, 0);
    ck_assert_int_eq(p->wake_at_ms, f.t->create_time + 10000);
    p = fx_plan(&f, f.t->create_time + 10000);
    ck_assert_uint_eq(p->call_count, 1);
    ck_assert_uint_eq(p->calls[0], 0);
    f.opts.concurrent = 1;
    ck_assert_uint_eq(fx_plan(&f, f.t->create_time + 10000)->call_count, 2);
    trans_set_str(&f.t->branches[0].status, "succeed");
    trans_set_str(&f.t->branches[1].status, "succeed");
    ck_assert_str_eq(fx_plan(&f, f.t->create_time + 10000)->new_status, "succeed");
    fx_free(&f);
}
END_TEST

START_TEST(workflow_resumes_after_timeout)
{
    fixture f;
    fx_init(&f, "workflow", "prepared");
    ck_assert_int_eq(fx_plan(&f, f.t->create_time + 100)->special, SPECIAL_NONE);
    ck_assert_int_eq(fx_plan(&f, f.t->create_time + 35000)->special, SPECIAL_RESUME);
    trans_set_str(&f.t->status, "succeed");
    ck_assert_int_eq(fx_plan(&f, f.t->create_time + 35000)->special, SPECIAL_NONE);
    fx_free(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("plan");
    test_group g = {.suite = s};
    test_add(&g, saga_sequential_runs_the_first_prepared_action_only);
    test_add(&g, saga_all_succeeded_means_succeed);
    test_add(&g, saga_failed_action_aborts_then_compensates_in_reverse);
    test_add(&g, saga_failure_waits_for_calls_in_flight_before_aborting);
    test_add(&g, saga_never_eligible_steps_are_not_compensated);
    test_add(&g, saga_eligible_unknown_action_is_compensated);
    test_add(&g, saga_concurrent_orders);
    test_add(&g, saga_concurrent_compensation_waits_for_dependents);
    test_add(&g, saga_timeout_and_retry_limit);
    test_add(&g, tcc_confirms_one_at_a_time_in_reverse);
    test_add(&g, tcc_prepared_times_out_into_aborting);
    test_add(&g, xa_rolls_back_forward);
    test_add(&g, msg_prepared_asks_back_after_timeout_once_per_pass);
    test_add(&g, msg_submitted_delivers_in_order_after_delay);
    test_add(&g, workflow_resumes_after_timeout);
    return run_suite(s);
}
