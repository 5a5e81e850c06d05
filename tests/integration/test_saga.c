/*
 * test_saga.c — sagas end to end: real dtmq (build/asan/dtmq) on the store
 * named by DTMQ_TEST_STORE_KIND, calling a recording business service
 * (tests/lib/busi.c) over HTTP. Success, failure with compensation in
 * reverse, ONGOING and errors retried, timeout, retry_limit, concurrent
 * orders, headers and query parameters, a compensation that keeps failing
 * (flagged and alerted), and a crash in the middle.
 */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busi.h"
#include "e2e_env.h"
#include "testlib.h"

typedef e2e_env saga_env;

/* A saga body with n steps /api/Step<i>{,Revert}; extra is merged in (may be NULL). */
static char *saga_body(const saga_env *env, int n, json_t *extra)
{
    json_t *steps = json_array(), *payloads = json_array();
    for (int i = 1; i <= n; i++) {
        char action[256], comp[256], payload[64];
        snprintf(action, sizeof(action), "%s/api/Step%d", busi_url(env->svc), i);
        snprintf(comp, sizeof(comp), "%s/api/Step%dRevert", busi_url(env->svc), i);
        snprintf(payload, sizeof(payload), "{\"amount\":%d}", 10 * i);
        json_array_append_new(steps, json_pack("{s:s, s:s}", "action", action, "compensate", comp));
        json_array_append_new(payloads, json_string(payload));
    }
    json_t *body = json_pack("{s:s, s:s, s:o, s:o}", "gid", env->gid, "trans_type", "saga",
                             "steps", steps, "payloads", payloads);
    if (extra) {
        json_object_update(body, extra);
        json_decref(extra);
    }
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return text;
}

static void submit(const saga_env *env, const char *body, int want_status)
{
    e2e_post_expect(&env->dtmq, "submit", body, want_status);
}

START_TEST(saga_success_calls_actions_in_order_with_dtm_parameters)
{
    saga_env env;
    e2e_env_start(&env, true, "saga", NULL);
    json_t *extra = json_pack("{s:b, s:{s:s}}", "wait_result", 1, "branch_headers", "X-Trace", "t-42");
    char *body = saga_body(&env, 2, extra);
    submit(&env, body, 200); /* wait_result: answered when the saga ended */
    char st[32];
    ck_assert_str_eq(e2e_status(&env.dtmq, env.gid, st, sizeof(st)), "succeed");

    busi_call *calls;
    size_t n = busi_calls(env.svc, &calls);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(calls[0].path, "/api/Step1");
    ck_assert_str_eq(calls[1].path, "/api/Step2");
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(calls[i].method, "POST"); /* payload → POST */
        ck_assert_str_eq(calls[i].gid, env.gid);
        ck_assert_str_eq(calls[i].trans_type, "saga");
        ck_assert_str_eq(calls[i].op, "action");
        ck_assert_ptr_nonnull(strstr(calls[i].headers, "t-42"));
    }
    ck_assert_str_eq(calls[0].branch_id, "01");
    ck_assert_str_eq(calls[1].branch_id, "02");
    ck_assert_str_eq(calls[0].body, "{\"amount\":10}");
    ck_assert_str_eq(calls[1].body, "{\"amount\":20}");
    busi_calls_free(calls, n);
    free(body);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(saga_failure_compensates_in_reverse_including_the_failed_step)
{
    saga_env env;
    e2e_env_start(&env, true, "saga", NULL);
    busi_rule(env.svc, "/api/Step3", NULL, NULL, 409, NULL, 0, -1);
    char *body = saga_body(&env, 3, json_pack("{s:b}", "wait_result", 1));
    submit(&env, body, 409); /* DTM: a wait_result submit that ends failed answers 409 */
    char st[32];
    ck_assert_str_eq(e2e_status(&env.dtmq, env.gid, st, sizeof(st)), "failed");

    busi_call *calls;
    size_t n = busi_calls(env.svc, &calls);
    const char *want[] = {"/api/Step1", "/api/Step2", "/api/Step3", "/api/Step3Revert",
                          "/api/Step2Revert", "/api/Step1Revert"};
    ck_assert_uint_eq(n, 6);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(calls[i].path, want[i]);
    ck_assert_str_eq(calls[3].op, "compensate");
    ck_assert_str_eq(calls[3].branch_id, "03");
    busi_calls_free(calls, n);

    int status;
    char path[256];
    snprintf(path, sizeof(path), "/api/dtmsvr/query?gid=%s", env.gid);
    json_t *q = e2e_call(&env.dtmq, "GET", path, NULL, &status);
    const char *reason = json_string_value(json_object_get(json_object_get(q, "transaction"), "rollback_reason"));
    ck_assert_ptr_nonnull(strstr(reason, "03"));
    json_decref(q);
    free(body);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(saga_ongoing_and_errors_are_retried_until_success)
{
    saga_env env;
    e2e_env_start(&env, true, "saga", NULL);
    busi_rule(env.svc, "/api/Step1", NULL, NULL, 425, NULL, 0, 2);
    busi_rule(env.svc, "/api/Step2", NULL, NULL, 500, NULL, 0, 1);
    char *body = saga_body(&env, 2, NULL);
    submit(&env, body, 200);
    e2e_wait_status(&env.dtmq, env.gid, "succeed", 30);
    ck_assert_int_eq(busi_count(env.svc, "/api/Step1", env.gid, "action"), 3);
    ck_assert_int_eq(busi_count(env.svc, "/api/Step2", env.gid, "action"), 2);
    ck_assert_int_eq(busi_count(env.svc, "/api/Step1Revert", NULL, NULL), 0);
    free(body);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(saga_timeout_rolls_back_what_may_have_run)
{
    saga_env env;
    e2e_env_start(&env, true, "saga", NULL);
    busi_rule(env.svc, "/api/Step2", NULL, NULL, 425, NULL, 0, -1); /* never finishes */
    char *body = saga_body(&env, 3, json_pack("{s:i}", "timeout_to_fail", 2));
    submit(&env, body, 200);
    e2e_wait_status(&env.dtmq, env.gid, "failed", 30);
    ck_assert_int_eq(busi_count(env.svc, "/api/Step3", NULL, NULL), 0);
    ck_assert_int_eq(busi_count(env.svc, "/api/Step3Revert", NULL, NULL), 0);
    ck_assert_int_eq(busi_count(env.svc, "/api/Step2Revert", NULL, NULL), 1);
    ck_assert_int_eq(busi_count(env.svc, "/api/Step1Revert", NULL, NULL), 1);
    int status;
    char path[256];
    snprintf(path, sizeof(path), "/api/dtmsvr/query?gid=%s", env.gid);
    json_t *q = e2e_call(&env.dtmq, "GET", path, NULL, &status);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(q, "transaction"), "rollback_reason")),
                     "Timeout after 2 seconds");
    json_decref(q);
    free(body);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(saga_retry_limit_aborts)
{
    saga_env env;
    e2e_env_start(&env, true, "saga", NULL);
    busi_rule(env.svc, "/api/Step1", NULL, NULL, 500, NULL, 0, -1);
    char *body = saga_body(&env, 1, json_pack("{s:i}", "retry_limit", 1));
    submit(&env, body, 200);
    e2e_wait_status(&env.dtmq, env.gid, "failed", 30);
    ck_assert_int_ge(busi_count(env.svc, "/api/Step1", NULL, NULL), 2);
    ck_assert_int_eq(busi_count(env.svc, "/api/Step1Revert", NULL, NULL), 1);
    free(body);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(saga_concurrent_orders_wait_for_dependencies)
{
    saga_env env;
    e2e_env_start(&env, true, "saga", NULL);
    busi_rule(env.svc, "/api/Step1", NULL, NULL, 200, NULL, 400, 1);
    busi_rule(env.svc, "/api/Step2", NULL, NULL, 200, NULL, 400, 1);
    /* steps 1 and 2 at once; step 3 after both */
    json_t *extra = json_pack("{s:s, s:b}", "custom_data",
                              "{\"concurrent\":true,\"orders\":{\"2\":[0,1]}}", "wait_result", 1);
    char *body = saga_body(&env, 3, extra);
    submit(&env, body, 200);
    busi_call *calls;
    size_t n = busi_calls(env.svc, &calls);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(calls[2].path, "/api/Step3");
    long long gap = calls[1].time_ms - calls[0].time_ms;
    ck_assert_msg(gap < 300, "steps 1 and 2 should start together, %lld ms apart", gap);
    ck_assert_int_ge(calls[2].time_ms - calls[1].time_ms, 300);
    busi_calls_free(calls, n);
    free(body);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(saga_failing_compensation_is_retried_flagged_and_alerted)
{
    saga_env env;
    busi *alerts = busi_start();
    char hook[256];
    snprintf(hook, sizeof(hook), "%s/alert", busi_url(alerts));
    const char *args[] = {"--alert-web-hook", hook, "--alert-retry-limit", "2", NULL};
    e2e_env_start(&env, true, "saga", args);
    busi_rule(env.svc, "/api/Step2", NULL, NULL, 409, NULL, 0, -1);
    busi_rule(env.svc, "/api/Step1Revert", NULL, NULL, 409, NULL, 0, -1);
    char *body = saga_body(&env, 2, NULL);
    submit(&env, body, 200);
    ck_assert_int_ge(busi_wait(env.svc, "/api/Step1Revert", NULL, NULL, 3, 30000), 3);
    ck_assert_int_ge(busi_wait(alerts, "/alert", NULL, NULL, 1, 30000), 1);
    char st[32];
    ck_assert_str_eq(e2e_status(&env.dtmq, env.gid, st, sizeof(st)), "aborting");
    int status;
    char path[256];
    snprintf(path, sizeof(path), "/api/dtmsvr/query?gid=%s", env.gid);
    json_t *q = e2e_call(&env.dtmq, "GET", path, NULL, &status);
    const char *ext = json_string_value(json_object_get(json_object_get(q, "transaction"), "ext_data"));
    ck_assert_ptr_nonnull(strstr(ext, "last_error"));
    ck_assert_ptr_nonnull(strstr(ext, "01 compensate"));
    json_decref(q);
    busi_call *calls;
    size_t n = busi_calls(alerts, &calls);
    json_t *alert = json_loads(calls[0].body, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(alert, "gid")), env.gid);
    ck_assert_int_ge(json_integer_value(json_object_get(alert, "retry_count")), 2);
    json_decref(alert);
    busi_calls_free(calls, n);
    free(body);
    e2e_env_stop(&env);
    busi_stop(alerts);
}
END_TEST

START_TEST(saga_survives_kill_9_in_the_middle)
{
    saga_env env;
    e2e_env_start(&env, true, "saga", NULL);
    busi_rule(env.svc, "/api/Step2", NULL, NULL, 200, NULL, 1500, 1); /* slow once */
    char *body = saga_body(&env, 3, NULL);
    submit(&env, body, 200);
    ck_assert_int_eq(busi_wait(env.svc, "/api/Step2", NULL, NULL, 1, 10000), 1);
    ck_assert_int_eq(dtmq_stop(&env.dtmq, SIGKILL, 10), 128 + SIGKILL);
    e2e_start(&env.dtmq, env.store, NULL); /* same store: resumes after the lease */
    e2e_wait_status(&env.dtmq, env.gid, "succeed", 40);
    ck_assert_int_eq(busi_count(env.svc, "/api/Step1", NULL, NULL), 1);
    ck_assert_int_ge(busi_count(env.svc, "/api/Step2", NULL, NULL), 1);
    ck_assert_int_eq(busi_count(env.svc, "/api/Step3", NULL, NULL), 1);
    free(body);
    e2e_env_stop(&env);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("saga");
    test_group g = {.suite = s, .timeout_s = 90};
    test_add(&g, saga_success_calls_actions_in_order_with_dtm_parameters);
    test_add(&g, saga_failure_compensates_in_reverse_including_the_failed_step);
    test_add(&g, saga_ongoing_and_errors_are_retried_until_success);
    test_add(&g, saga_timeout_rolls_back_what_may_have_run);
    test_add(&g, saga_retry_limit_aborts);
    test_add(&g, saga_concurrent_orders_wait_for_dependencies);
    test_add(&g, saga_failing_compensation_is_retried_flagged_and_alerted);
    test_add(&g, saga_survives_kill_9_in_the_middle);
    return run_suite(s);
}
