/*
 * test_workflow.c — workflows end to end: real dtmq (build/asan/dtmq) on the
 * store named by DTMQ_TEST_STORE_KIND, driven over HTTP the way DTM's
 * workflow client drives it (prepareWorkflow → registerBranch per step result
 * → submit with req_extra), with a recording business service
 * (tests/lib/busi.c) standing in for the client's resume URL.
 *
 * prepareWorkflow fresh and with recorded progresses, submit succeed/failed
 * and on an unknown gid, the resume calls of a workflow left prepared (and
 * their end after submit), and a kill -9 while a resume call is in flight.
 */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "busi.h"
#include "e2e_env.h"
#include "testlib.h"

#define RESUME_PATH "/api/Resume"
#define WF_NAME "wf1"
/* The workflow's input as the client stores it in custom_data: base64 of WF_DATA. */
#define WF_DATA "{\"amount\":30}"
#define WF_DATA_B64 "eyJhbW91bnQiOjMwfQ=="

typedef struct wf_env {
    e2e_env e; /* busi, dtmq, store, gid */
    char resume_url[256];
} wf_env;

static void env_start(wf_env *env)
{
    e2e_env_start(&env->e, true, "wf", NULL);
    snprintf(env->resume_url, sizeof(env->resume_url), "%s" RESUME_PATH, busi_url(env->e.svc));
}

static void env_stop(wf_env *env)
{
    e2e_env_stop(&env->e);
}

/* POSTs {gid, trans_type:"workflow"} + extra (stolen, may be NULL) to
 * /api/dtmsvr/<route>, asserts the HTTP status, returns the parsed reply
 * (caller decrefs). */
static json_t *wf_post(const wf_env *env, const char *route, json_t *extra, int want_status)
{
    json_t *body = json_pack("{s:s, s:s}", "gid", env->e.gid, "trans_type", "workflow");
    if (extra) {
        json_object_update(body, extra);
        json_decref(extra);
    }
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    char path[128];
    snprintf(path, sizeof(path), "/api/dtmsvr/%s", route);
    int status = 0;
    json_t *reply = e2e_call(&env->e.dtmq, "POST", path, text, &status);
    char *dump = reply ? json_dumps(reply, JSON_COMPACT) : strdup("(not JSON)");
    ck_assert_msg(status == want_status, "POST %s %s: want %d, got %d %s", route, text, want_status,
                  status, dump);
    free(dump);
    free(text);
    return reply;
}

/* prepareWorkflow as the client sends it; returns {transaction, progresses}. */
static json_t *wf_prepare(const wf_env *env)
{
    json_t *reply = wf_post(env, "prepareWorkflow",
                            json_pack("{s:s, s:s}", "query_prepared", env->resume_url, "custom_data",
                                      "{\"name\":\"" WF_NAME "\",\"data\":\"" WF_DATA_B64 "\"}"),
                            200);
    ck_assert_ptr_nonnull(reply);
    return reply;
}

/* Records one step's result. */
static void wf_register(const wf_env *env, const char *branch_id, const char *op,
                        const char *status, const char *data)
{
    json_decref(wf_post(env, "registerBranch",
                        json_pack("{s:s, s:s, s:s, s:s}", "branch_id", branch_id, "op", op, "status",
                                  status, "data", data),
                        200));
}

/* Ends the workflow: req_extra {status, rollback_reason, result} (NULLs left out). */
static void wf_submit(const wf_env *env, const char *status, const char *reason, const char *result,
                      int want_status)
{
    json_t *extra = json_pack("{s:s}", "status", status);
    if (reason)
        json_object_set_new(extra, "rollback_reason", json_string(reason));
    if (result)
        json_object_set_new(extra, "result", json_string(result));
    json_decref(wf_post(env, "submit", json_pack("{s:o}", "req_extra", extra), want_status));
}

static json_t *query(const wf_env *env)
{
    char path[256];
    snprintf(path, sizeof(path), "/api/dtmsvr/query?gid=%s", env->e.gid);
    int status = 0;
    json_t *q = e2e_call(&env->e.dtmq, "GET", path, NULL, &status);
    ck_assert_int_eq(status, 200);
    ck_assert_ptr_nonnull(q);
    return q;
}

static const char *str_field(json_t *obj, const char *key)
{
    const char *v = json_string_value(json_object_get(obj, key));
    ck_assert_msg(v != NULL, "field %s missing", key);
    return v;
}

/* Asserts progress p is (branch_id, op, status) with bin_data = base64 of the data. */
static void expect_progress(json_t *p, const char *branch_id, const char *op, const char *status,
                            const char *bin_data)
{
    ck_assert_str_eq(str_field(p, "branch_id"), branch_id);
    ck_assert_str_eq(str_field(p, "op"), op);
    ck_assert_str_eq(str_field(p, "status"), status);
    ck_assert_str_eq(str_field(p, "bin_data"), bin_data);
}

/* Asserts every call to the resume URL so far is DTM's resume call. */
static void expect_resume_calls(const wf_env *env)
{
    busi_call *calls;
    size_t n = busi_calls(env->e.svc, &calls);
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(calls[i].path, RESUME_PATH);
        ck_assert_str_eq(calls[i].method, "POST");
        ck_assert_str_eq(calls[i].gid, env->e.gid);
        ck_assert_str_eq(calls[i].trans_type, "workflow");
        ck_assert_str_eq(calls[i].branch_id, "00");
        ck_assert_str_eq(calls[i].op, WF_NAME);
        ck_assert_str_eq(calls[i].body, WF_DATA); /* custom_data's data, decoded */
    }
    busi_calls_free(calls, n);
}

START_TEST(workflow_fresh_prepare_returns_no_progresses)
{
    wf_env env;
    env_start(&env);
    json_t *reply = wf_prepare(&env);
    json_t *t = json_object_get(reply, "transaction");
    ck_assert_str_eq(str_field(t, "gid"), env.e.gid);
    ck_assert_str_eq(str_field(t, "trans_type"), "workflow");
    ck_assert_str_eq(str_field(t, "status"), "prepared");
    ck_assert_str_eq(str_field(t, "query_prepared"), env.resume_url);
    ck_assert_ptr_nonnull(strstr(str_field(t, "custom_data"), WF_DATA_B64));
    ck_assert(json_is_array(json_object_get(reply, "progresses")));
    ck_assert_uint_eq(json_array_size(json_object_get(reply, "progresses")), 0);
    json_decref(reply);
    char st[32];
    ck_assert_str_eq(e2e_status(&env.e.dtmq, env.e.gid, st, sizeof(st)), "prepared");
    ck_assert_int_eq(busi_count(env.e.svc, NULL, NULL, NULL), 0); /* dtmq called nobody */
    env_stop(&env);
}
END_TEST

START_TEST(workflow_registered_steps_come_back_as_progresses)
{
    wf_env env;
    env_start(&env);
    json_decref(wf_prepare(&env));
    wf_register(&env, "01", "action", "succeed", "{\"a\":1}");
    wf_register(&env, "02", "action", "failed", "no stock");
    json_t *reply = wf_prepare(&env); /* the replay of a restarted client */
    ck_assert_str_eq(str_field(json_object_get(reply, "transaction"), "status"), "prepared");
    json_t *progresses = json_object_get(reply, "progresses");
    ck_assert_uint_eq(json_array_size(progresses), 2);
    expect_progress(json_array_get(progresses, 0), "01", "action", "succeed", "eyJhIjoxfQ==");
    expect_progress(json_array_get(progresses, 1), "02", "action", "failed", "bm8gc3RvY2s=");
    json_decref(reply);
    json_t *q = query(&env); /* /query shows the same rows */
    ck_assert_uint_eq(json_array_size(json_object_get(q, "branches")), 2);
    expect_progress(json_array_get(json_object_get(q, "branches"), 1), "02", "action", "failed",
                    "bm8gc3RvY2s=");
    json_decref(q);
    ck_assert_int_eq(busi_count(env.e.svc, NULL, NULL, NULL), 0);
    env_stop(&env);
}
END_TEST

START_TEST(workflow_submit_succeed_stores_the_result)
{
    wf_env env;
    env_start(&env);
    json_decref(wf_prepare(&env));
    wf_register(&env, "01", "action", "succeed", "{\"a\":1}");
    wf_submit(&env, "succeed", NULL, "eyJvcmRlciI6N30=", 200);
    json_t *q = query(&env);
    json_t *t = json_object_get(q, "transaction");
    ck_assert_str_eq(str_field(t, "status"), "succeed");
    ck_assert_str_eq(str_field(t, "result"), "eyJvcmRlciI6N30=");
    ck_assert_str_ne(str_field(t, "finish_time"), "");
    json_decref(q);
    /* a client replaying it now learns that it is over */
    json_t *reply = wf_prepare(&env);
    ck_assert_str_eq(str_field(json_object_get(reply, "transaction"), "status"), "succeed");
    ck_assert_uint_eq(json_array_size(json_object_get(reply, "progresses")), 1);
    json_decref(reply);
    /* no more steps once it ended */
    json_decref(wf_post(&env, "registerBranch",
                        json_pack("{s:s, s:s, s:s, s:s}", "branch_id", "02", "op", "action", "status",
                                  "succeed", "data", "late"),
                        409));
    env_stop(&env);
}
END_TEST

START_TEST(workflow_submit_failed_keeps_the_rollback_reason)
{
    wf_env env;
    env_start(&env);
    json_decref(wf_prepare(&env));
    wf_register(&env, "01", "action", "succeed", "{\"a\":1}");
    wf_register(&env, "02", "action", "failed", "no stock");
    wf_register(&env, "01", "rollback", "succeed", "");
    wf_submit(&env, "failed", "02 answered FAILURE: no stock", NULL, 200);
    json_t *q = query(&env);
    json_t *t = json_object_get(q, "transaction");
    ck_assert_str_eq(str_field(t, "status"), "failed");
    ck_assert_str_eq(str_field(t, "rollback_reason"), "02 answered FAILURE: no stock");
    ck_assert_str_ne(str_field(t, "rollback_time"), "");
    ck_assert_uint_eq(json_array_size(json_object_get(q, "branches")), 3);
    json_decref(q);
    ck_assert_int_eq(busi_count(env.e.svc, NULL, NULL, NULL), 0);
    env_stop(&env);
}
END_TEST

START_TEST(workflow_submit_of_an_unknown_gid_is_409)
{
    wf_env env;
    env_start(&env);
    json_t *reply = wf_post(&env, "submit", json_pack("{s:{s:s}}", "req_extra", "status", "succeed"), 409);
    ck_assert_str_eq(str_field(reply, "dtm_result"), "FAILURE");
    json_decref(reply);
    json_t *q = query(&env);
    ck_assert(json_is_null(json_object_get(q, "transaction")));
    json_decref(q);
    env_stop(&env);
}
END_TEST

START_TEST(workflow_left_prepared_is_resumed_until_submitted)
{
    wf_env env;
    env_start(&env);
    long long t0 = test_wall_ms();
    json_decref(wf_prepare(&env));
    wf_register(&env, "01", "action", "succeed", "{\"a\":1}");
    /* the client died: after TimeoutToFail (3 s) dtmq calls the resume URL, and again later */
    ck_assert_int_ge(busi_wait(env.e.svc, RESUME_PATH, env.e.gid, WF_NAME, 2, 20000), 2);
    char st[32];
    ck_assert_str_eq(e2e_status(&env.e.dtmq, env.e.gid, st, sizeof(st)), "prepared");
    expect_resume_calls(&env);
    busi_call *calls;
    size_t n = busi_calls(env.e.svc, &calls);
    ck_assert_msg(calls[0].time_ms - t0 >= 2900, "resumed %lld ms after prepare, before the timeout",
                  calls[0].time_ms - t0);
    ck_assert_int_ge(calls[1].time_ms - calls[0].time_ms, 500); /* a later pass, not a double call */
    busi_calls_free(calls, n);

    /* the resumed client finishes it: no more resume calls */
    wf_submit(&env, "succeed", NULL, "", 200);
    ck_assert_str_eq(e2e_status(&env.e.dtmq, env.e.gid, st, sizeof(st)), "succeed");
    usleep(300 * 1000); /* a pass that had already started may still be calling */
    int settled = busi_count(env.e.svc, RESUME_PATH, NULL, NULL);
    sleep(4);
    ck_assert_int_eq(busi_count(env.e.svc, RESUME_PATH, NULL, NULL), settled);
    ck_assert_str_eq(e2e_status(&env.e.dtmq, env.e.gid, st, sizeof(st)), "succeed");
    env_stop(&env);
}
END_TEST

START_TEST(workflow_survives_kill_9_while_a_resume_is_in_flight)
{
    wf_env env;
    env_start(&env);
    json_decref(wf_prepare(&env));
    wf_register(&env, "01", "action", "succeed", "{\"a\":1}");
    busi_rule(env.e.svc, RESUME_PATH, env.e.gid, NULL, 200, NULL, 3000, 1); /* slow once */
    ck_assert_int_eq(busi_wait(env.e.svc, RESUME_PATH, env.e.gid, WF_NAME, 1, 15000), 1);
    ck_assert_int_eq(dtmq_stop(&env.e.dtmq, SIGKILL, 10), 128 + SIGKILL);
    e2e_start(&env.e.dtmq, env.e.store, NULL); /* same store */
    /* the new process resumes it again once the lease runs out */
    ck_assert_int_ge(busi_wait(env.e.svc, RESUME_PATH, env.e.gid, WF_NAME, 2, 30000), 2);
    expect_resume_calls(&env);
    /* the resumed client replays the recorded step and ends the workflow */
    json_t *reply = wf_prepare(&env);
    ck_assert_str_eq(str_field(json_object_get(reply, "transaction"), "status"), "prepared");
    ck_assert_uint_eq(json_array_size(json_object_get(reply, "progresses")), 1);
    expect_progress(json_array_get(json_object_get(reply, "progresses"), 0), "01", "action", "succeed",
                    "eyJhIjoxfQ==");
    json_decref(reply);
    wf_register(&env, "02", "action", "succeed", "{\"b\":2}");
    wf_submit(&env, "succeed", NULL, "b2s=", 200);
    e2e_wait_status(&env.e.dtmq, env.e.gid, "succeed", 5);
    json_t *q = query(&env);
    ck_assert_str_eq(str_field(json_object_get(q, "transaction"), "result"), "b2s=");
    ck_assert_uint_eq(json_array_size(json_object_get(q, "branches")), 2);
    json_decref(q);
    env_stop(&env);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("workflow");
    test_group g = {.suite = s, .timeout_s = 90};
    test_add(&g, workflow_fresh_prepare_returns_no_progresses);
    test_add(&g, workflow_registered_steps_come_back_as_progresses);
    test_add(&g, workflow_submit_succeed_stores_the_result);
    test_add(&g, workflow_submit_failed_keeps_the_rollback_reason);
    test_add(&g, workflow_submit_of_an_unknown_gid_is_409);
    test_add(&g, workflow_left_prepared_is_resumed_until_submitted);
    test_add(&g, workflow_survives_kill_9_while_a_resume_is_in_flight);
    return run_suite(s);
}
