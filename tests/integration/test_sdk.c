/*
 * test_sdk.c — libdtmq (connectors/libdtmq/include/dtmq/dtmq_client.h) end to end: the SDK
 * drives a real dtmq (DTMQ_TEST_BIN, store from DTMQ_TEST_STORE_KIND) whose
 * branches are the recording business service (tests/lib/busi.c).
 *
 * Bodies byte for byte as DTM's Go SDK writes them; saga success, failure
 * (compensation seen) and concurrent orders; msg DoAndSubmit committed,
 * failed (aborted, never delivered) and unknown (query_prepared asked);
 * TCC confirm and cancel; XA with a branch (a small server here) that
 * registers itself; workflow prepare/record/finish with progresses; every
 * option seen by /query; the error codes (unreachable, FAILURE, ONGOING,
 * server, invalid); the branch-handler helpers; submission to real Kafka
 * (DTMQ_TEST_KAFKA) and to a Kafka that is not there.
 */
#include <arpa/inet.h>
#include <check.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dtmq/dtmq_client.h>
#include "busi.h"
#include "e2e_env.h"
#include "kafkatest.h"
#include "stub_http.h"
#include "testlib.h"

typedef struct sdk_env {
    e2e_env e; /* busi, dtmq, store, gid */
    char server[128]; /* http://127.0.0.1:PORT/api/dtmsvr */
    dtmq_client *client;
} sdk_env;

static dtmq_client *client_for(const char *server, const char *bootstrap, const char *topic,
                               int timeout_ms)
{
    dtmq_client_options o = {server, bootstrap, topic, timeout_ms};
    char err[512];
    dtmq_client *c = dtmq_client_new(&o, err, sizeof(err));
    ck_assert_msg(c != NULL, "dtmq_client_new: %s", err);
    return c;
}

static void env_start_with(sdk_env *env, const char *const *extra_args)
{
    e2e_env_start(&env->e, true, "sdk", extra_args);
    snprintf(env->server, sizeof(env->server), "%s/api/dtmsvr", env->e.dtmq.base_url);
    env->client = client_for(env->server, NULL, NULL, 0);
}

static void env_start(sdk_env *env)
{
    env_start_with(env, NULL);
}

static void env_stop(sdk_env *env)
{
    dtmq_client_free(env->client);
    e2e_env_stop(&env->e);
}

/* busi's URL for path, in buf. */
static const char *svc_url(const sdk_env *env, const char *path, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s", busi_url(env->e.svc), path);
    return buf;
}

/* GET /query?gid=gid; the whole reply (caller decrefs). */
static json_t *query(const sdk_env *env, const char *gid)
{
    char path[256];
    snprintf(path, sizeof(path), "/api/dtmsvr/query?gid=%s", gid);
    int status = 0;
    json_t *q = e2e_call(&env->e.dtmq, "GET", path, NULL, &status);
    ck_assert_int_eq(status, 200);
    ck_assert_ptr_nonnull(q);
    return q;
}

/* A string field of the transaction, copied into buf ("" when absent). */
static const char *trans_field(const sdk_env *env, const char *gid, const char *key, char *buf,
                               size_t len)
{
    json_t *q = query(env, gid);
    const char *v = json_string_value(json_object_get(json_object_get(q, "transaction"), key));
    snprintf(buf, len, "%s", v ? v : "");
    json_decref(q);
    return buf;
}

/* Asserts rc == want, showing err. */
#define ASSERT_RC(rc, want, err)                                                                 \
    ck_assert_msg((rc) == (want), "want %s, got %s: %s", dtmq_error_name(want),                  \
                  dtmq_error_name(rc), (err))

/* A saga of n steps /api/Step<i>{,Revert} with payload {"amount":10*i}. */
static dtmq_trans *saga_of(const sdk_env *env, const char *gid, int n)
{
    dtmq_trans *t = dtmq_saga_new(gid);
    ck_assert_ptr_nonnull(t);
    for (int i = 1; i <= n; i++) {
        char action[256], comp[256], path[64], payload[64];
        snprintf(path, sizeof(path), "/api/Step%d", i);
        svc_url(env, path, action, sizeof(action));
        snprintf(path, sizeof(path), "/api/Step%dRevert", i);
        svc_url(env, path, comp, sizeof(comp));
        snprintf(payload, sizeof(payload), "{\"amount\":%d}", 10 * i);
        ck_assert_int_eq(dtmq_saga_add(t, action, comp, payload), DTMQ_OK);
    }
    return t;
}

/* ------------------------------------------------------------------ */
/* bodies                                                              */
/* ------------------------------------------------------------------ */

static void expect_json(const dtmq_trans *t, const char *op, const char *want)
{
    char *json = NULL, err[256];
    int rc = dtmq_trans_to_json(t, op, &json, err, sizeof(err));
    ASSERT_RC(rc, DTMQ_OK, err);
    ck_assert_str_eq(json, want);
    free(json);
}

START_TEST(bodies_are_byte_for_byte_those_of_dtm_go_sdk)
{
    /* What dtmcli.Saga marshals for the same calls (encoding/json: struct
     * order, sorted map keys, <>& escaped, empty options left out). */
    dtmq_trans *saga = dtmq_saga_new("g1");
    dtmq_saga_add(saga, "http://a/Out?x=1&y=2", "http://a/OutRevert", "{\"amount\":30}");
    dtmq_saga_add(saga, "http://a/In", "http://a/InRevert", "<b>");
    dtmq_trans_set_concurrent(saga, 1);
    dtmq_saga_add_order(saga, 1, 0);
    dtmq_trans_set_wait_result(saga, 1);
    dtmq_trans_set_timeout_to_fail(saga, 30);
    dtmq_trans_set_request_timeout(saga, 5);
    dtmq_trans_set_retry_interval(saga, 7);
    dtmq_trans_set_retry_limit(saga, 3);
    dtmq_trans_add_branch_header(saga, "X-B", "2");
    dtmq_trans_add_branch_header(saga, "X-A", "1");
    expect_json(saga, "submit",
                "{\"gid\":\"g1\",\"trans_type\":\"saga\","
                "\"custom_data\":\"{\\\"concurrent\\\":true,\\\"orders\\\":{\\\"1\\\":[0]}}\","
                "\"wait_result\":true,\"timeout_to_fail\":30,\"request_timeout\":5,"
                "\"retry_interval\":7,\"branch_headers\":{\"X-A\":\"1\",\"X-B\":\"2\"},"
                "\"concurrent\":true,\"retry_limit\":3,"
                "\"steps\":[{\"action\":\"http://a/Out?x=1\\u0026y=2\","
                "\"compensate\":\"http://a/OutRevert\"},"
                "{\"action\":\"http://a/In\",\"compensate\":\"http://a/InRevert\"}],"
                "\"payloads\":[\"{\\\"amount\\\":30}\",\"\\u003cb\\u003e\"],\"protocol\":\"\"}");
    dtmq_trans_free(saga);

    /* dtmcli.Msg: the delay goes into custom_data on submit only */
    dtmq_trans *msg = dtmq_msg_new("m1", "http://a/Query");
    dtmq_msg_add(msg, "http://a/Act", "{}");
    dtmq_msg_set_delay(msg, 5);
    expect_json(msg, "prepare",
                "{\"gid\":\"m1\",\"trans_type\":\"msg\",\"concurrent\":false,"
                "\"steps\":[{\"action\":\"http://a/Act\"}],\"payloads\":[\"{}\"],"
                "\"query_prepared\":\"http://a/Query\",\"protocol\":\"\"}");
    expect_json(msg, "submit",
                "{\"gid\":\"m1\",\"trans_type\":\"msg\",\"custom_data\":\"{\\\"delay\\\":5}\","
                "\"concurrent\":false,\"steps\":[{\"action\":\"http://a/Act\"}],"
                "\"payloads\":[\"{}\"],\"query_prepared\":\"http://a/Query\",\"protocol\":\"\"}");
    dtmq_trans_free(msg);

    /* dtmcli TCC prepare, and its abort carrying the rollback reason */
    dtmq_trans *tcc = dtmq_tcc_new("t1");
    expect_json(tcc, "prepare",
                "{\"gid\":\"t1\",\"trans_type\":\"tcc\",\"concurrent\":false,\"protocol\":\"\"}");
    dtmq_trans_set_rollback_reason(tcc, "no stock");
    expect_json(tcc, "abort",
                "{\"gid\":\"t1\",\"trans_type\":\"tcc\",\"concurrent\":false,\"protocol\":\"\","
                "\"rollback_reason\":\"no stock\"}");
    dtmq_trans_free(tcc);

    /* workflow: custom_data {"data":<base64>,"name":...}; null without data */
    dtmq_trans *wf = dtmq_workflow_new("w1", "wf1", "http://a/Resume");
    expect_json(wf, "prepareWorkflow",
                "{\"gid\":\"w1\",\"trans_type\":\"workflow\","
                "\"custom_data\":\"{\\\"data\\\":null,\\\"name\\\":\\\"wf1\\\"}\","
                "\"concurrent\":false,\"query_prepared\":\"http://a/Resume\",\"protocol\":\"\"}");
    dtmq_workflow_set_data(wf, "{\"a\":1}", 7);
    expect_json(wf, "prepareWorkflow",
                "{\"gid\":\"w1\",\"trans_type\":\"workflow\","
                "\"custom_data\":\"{\\\"data\\\":\\\"eyJhIjoxfQ==\\\",\\\"name\\\":\\\"wf1\\\"}\","
                "\"concurrent\":false,\"query_prepared\":\"http://a/Resume\",\"protocol\":\"\"}");
    dtmq_trans_free(wf);
}
END_TEST

/* ------------------------------------------------------------------ */
/* saga                                                                */
/* ------------------------------------------------------------------ */

START_TEST(saga_success_with_a_gid_from_the_server)
{
    sdk_env env;
    env_start(&env);
    char gid[64], err[512];
    int rc = dtmq_new_gid(env.client, gid, sizeof(gid), err, sizeof(err));
    ASSERT_RC(rc, DTMQ_OK, err);
    ck_assert_uint_ge(strlen(gid), 10);
    dtmq_trans *t = saga_of(&env, gid, 2);
    ck_assert_str_eq(dtmq_trans_gid(t), gid);
    dtmq_trans_set_wait_result(t, 1);
    rc = dtmq_submit(env.client, t, err, sizeof(err));
    ASSERT_RC(rc, DTMQ_OK, err);
    ck_assert_str_eq(err, "");
    char st[32];
    ck_assert_str_eq(e2e_status(&env.e.dtmq, gid, st, sizeof(st)), "succeed");
    busi_call *calls;
    size_t n = busi_calls(env.e.svc, &calls);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(calls[0].path, "/api/Step1");
    ck_assert_str_eq(calls[1].path, "/api/Step2");
    ck_assert_str_eq(calls[0].gid, gid);
    ck_assert_str_eq(calls[0].op, "action");
    ck_assert_str_eq(calls[0].branch_id, "01");
    ck_assert_str_eq(calls[1].branch_id, "02");
    ck_assert_str_eq(calls[0].body, "{\"amount\":10}");
    ck_assert_str_eq(calls[1].body, "{\"amount\":20}");
    busi_calls_free(calls, n);
    dtmq_trans_free(t);
    env_stop(&env);
}
END_TEST

START_TEST(saga_failure_returns_failure_and_compensates)
{
    sdk_env env;
    env_start(&env);
    busi_rule(env.e.svc, "/api/Step2", NULL, NULL, 409, NULL, 0, -1);
    dtmq_trans *t = saga_of(&env, env.e.gid, 2);
    dtmq_trans_set_wait_result(t, 1);
    char err[512];
    int rc = dtmq_submit(env.client, t, err, sizeof(err));
    ASSERT_RC(rc, DTMQ_ERR_FAILURE, err);
    char reason[256], st[32];
    trans_field(&env, env.e.gid, "rollback_reason", reason, sizeof(reason));
    ck_assert_str_ne(reason, "");
    ck_assert_msg(strstr(err, reason) != NULL, "err '%s' should carry the server's message '%s'",
                  err, reason);
    ck_assert_ptr_nonnull(strstr(err, "/api/dtmsvr/submit"));
    ck_assert_str_eq(e2e_status(&env.e.dtmq, env.e.gid, st, sizeof(st)), "failed");
    busi_call *calls;
    size_t n = busi_calls(env.e.svc, &calls);
    const char *want[] = {"/api/Step1", "/api/Step2", "/api/Step2Revert", "/api/Step1Revert"};
    ck_assert_uint_eq(n, 4);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(calls[i].path, want[i]);
    ck_assert_str_eq(calls[3].op, "compensate");
    ck_assert_str_eq(calls[3].body, "{\"amount\":10}");
    busi_calls_free(calls, n);
    dtmq_trans_free(t);
    env_stop(&env);
}
END_TEST

START_TEST(saga_concurrent_orders_run_steps_together_then_the_dependent)
{
    sdk_env env;
    env_start(&env);
    busi_rule(env.e.svc, "/api/Step1", NULL, NULL, 200, NULL, 400, 1);
    busi_rule(env.e.svc, "/api/Step2", NULL, NULL, 200, NULL, 400, 1);
    dtmq_trans *t = saga_of(&env, env.e.gid, 3);
    dtmq_trans_set_concurrent(t, 1);
    ck_assert_int_eq(dtmq_saga_add_order(t, 2, 0), DTMQ_OK);
    ck_assert_int_eq(dtmq_saga_add_order(t, 2, 1), DTMQ_OK);
    dtmq_trans_set_wait_result(t, 1);
    char err[512];
    int rc = dtmq_submit(env.client, t, err, sizeof(err));
    ASSERT_RC(rc, DTMQ_OK, err);
    char custom[256];
    ck_assert_str_eq(trans_field(&env, env.e.gid, "custom_data", custom, sizeof(custom)),
                     "{\"concurrent\":true,\"orders\":{\"2\":[0,1]}}");
    busi_call *calls;
    size_t n = busi_calls(env.e.svc, &calls);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(calls[2].path, "/api/Step3");
    long long gap = calls[1].time_ms - calls[0].time_ms;
    ck_assert_msg(gap < 300, "steps 1 and 2 should start together, %lld ms apart", gap);
    ck_assert_int_ge(calls[2].time_ms - calls[1].time_ms, 300);
    busi_calls_free(calls, n);
    dtmq_trans_free(t);
    env_stop(&env);
}
END_TEST

/* ------------------------------------------------------------------ */
/* msg                                                                 */
/* ------------------------------------------------------------------ */

/* The local transaction of DoAndSubmit: records the barrier it was handed
 * and answers as told. */
typedef struct local_tx {
    int calls;
    int answer;
    dtmq_branch_ref seen;
} local_tx;

static int local_tx_run(void *arg, const dtmq_branch_ref *barrier, char *err, size_t errlen)
{
    local_tx *lt = arg;
    lt->calls++;
    lt->seen = *barrier;
    if (lt->answer != DTMQ_OK)
        snprintf(err, errlen, "insufficient balance");
    return lt->answer;
}

static local_tx local_tx_answering(int answer)
{
    local_tx lt;
    memset(&lt, 0, sizeof(lt));
    lt.answer = answer;
    return lt;
}

static dtmq_trans *msg_of(const sdk_env *env, const char *gid)
{
    char q[256], action[256];
    dtmq_trans *t = dtmq_msg_new(gid, svc_url(env, "/api/QueryPrepared", q, sizeof(q)));
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(dtmq_msg_add(t, svc_url(env, "/api/MsgAction", action, sizeof(action)),
                                  "{\"sku\":42}"), DTMQ_OK);
    return t;
}

START_TEST(msg_do_and_submit_delivers_when_the_local_transaction_commits)
{
    sdk_env env;
    env_start(&env);
    dtmq_trans *t = msg_of(&env, env.e.gid);
    local_tx lt = local_tx_answering(DTMQ_OK);
    char err[512];
    int rc = dtmq_msg_do_and_submit(env.client, t, local_tx_run, &lt, err, sizeof(err));
    ASSERT_RC(rc, DTMQ_OK, err);
    ck_assert_int_eq(lt.calls, 1);
    ck_assert_str_eq(lt.seen.gid, env.e.gid);
    ck_assert_str_eq(lt.seen.trans_type, "msg");
    ck_assert_str_eq(lt.seen.branch_id, "00");
    ck_assert_str_eq(lt.seen.op, "msg");
    e2e_wait_status(&env.e.dtmq, env.e.gid, "succeed", 20);
    ck_assert_int_eq(busi_count(env.e.svc, "/api/MsgAction", env.e.gid, "action"), 1);
    ck_assert_int_eq(busi_count(env.e.svc, "/api/QueryPrepared", NULL, NULL), 0);
    busi_call *calls;
    size_t n = busi_calls(env.e.svc, &calls);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(calls[0].body, "{\"sku\":42}");
    busi_calls_free(calls, n);
    dtmq_trans_free(t);
    env_stop(&env);
}
END_TEST

START_TEST(msg_do_and_submit_aborts_when_the_local_transaction_fails)
{
    sdk_env env;
    env_start(&env);
    dtmq_trans *t = msg_of(&env, env.e.gid);
    local_tx lt = local_tx_answering(DTMQ_ERR_FAILURE);
    char err[512], st[32];
    int rc = dtmq_msg_do_and_submit(env.client, t, local_tx_run, &lt, err, sizeof(err));
    ASSERT_RC(rc, DTMQ_ERR_FAILURE, err);
    ck_assert_ptr_nonnull(strstr(err, "insufficient balance"));
    ck_assert_ptr_nonnull(strstr(err, "aborted"));
    ck_assert_str_eq(e2e_status(&env.e.dtmq, env.e.gid, st, sizeof(st)), "failed");
    /* past TimeoutToFail (3 s): a failed msg is never asked back nor delivered */
    ck_assert_int_eq(busi_wait(env.e.svc, NULL, NULL, NULL, 1, 4000), 0);
    ck_assert_str_eq(e2e_status(&env.e.dtmq, env.e.gid, st, sizeof(st)), "failed");
    dtmq_trans_free(t);
    env_stop(&env);
}
END_TEST

START_TEST(msg_do_and_submit_asks_query_prepared_when_the_outcome_is_unknown)
{
    sdk_env env;
    env_start(&env);
    char err[512], gid2[64];
    /* 1: query_prepared says the local transaction did not commit → abort */
    busi_rule(env.e.svc, "/api/QueryPrepared", env.e.gid, NULL, 409, NULL, 0, -1);
    dtmq_trans *t = msg_of(&env, env.e.gid);
    local_tx lt = local_tx_answering(DTMQ_ERR_UNREACHABLE);
    int rc = dtmq_msg_do_and_submit(env.client, t, local_tx_run, &lt, err, sizeof(err));
    ASSERT_RC(rc, DTMQ_ERR_FAILURE, err);
    e2e_wait_status(&env.e.dtmq, env.e.gid, "failed", 10);
    ck_assert_int_eq(busi_count(env.e.svc, "/api/QueryPrepared", env.e.gid, "msg"), 1);
    busi_call *calls;
    size_t n = busi_calls(env.e.svc, &calls);
    ck_assert_str_eq(calls[0].method, "GET");
    ck_assert_str_eq(calls[0].trans_type, "msg");
    ck_assert_str_eq(calls[0].branch_id, "00");
    busi_calls_free(calls, n);
    ck_assert_int_eq(busi_count(env.e.svc, "/api/MsgAction", NULL, NULL), 0);
    dtmq_trans_free(t);
    /* 2: it says committed (busi's default 200) → submitted and delivered */
    e2e_gid(gid2, sizeof(gid2), "sdk");
    t = msg_of(&env, gid2);
    rc = dtmq_msg_do_and_submit(env.client, t, local_tx_run, &lt, err, sizeof(err));
    ASSERT_RC(rc, DTMQ_OK, err);
    e2e_wait_status(&env.e.dtmq, gid2, "succeed", 20);
    ck_assert_int_eq(busi_count(env.e.svc, "/api/QueryPrepared", gid2, "msg"), 1);
    ck_assert_int_eq(busi_count(env.e.svc, "/api/MsgAction", gid2, "action"), 1);
    dtmq_trans_free(t);
    env_stop(&env);
}
END_TEST

/* ------------------------------------------------------------------ */
/* TCC                                                                 */
/* ------------------------------------------------------------------ */

/* Calls one TCC branch on busi with payload {"amount":<amount>}. */
static int tcc_branch(const sdk_env *env, dtmq_trans *t, int amount, char *err, size_t errlen)
{
    char try_url[256], confirm[256], cancel[256], payload[64], resp[256];
    snprintf(payload, sizeof(payload), "{\"amount\":%d}", amount);
    return dtmq_tcc_call_branch(env->client, t, NULL, svc_url(env, "/api/Try", try_url, 256),
                                svc_url(env, "/api/Confirm", confirm, 256),
                                svc_url(env, "/api/Cancel", cancel, 256), payload, resp,
                                sizeof(resp), err, errlen);
}

/* Asserts the calls to path are op on branches bids[0..n), in that order. */
static void expect_calls(const sdk_env *env, const char *path, const char *op,
                         const char *const *bids, size_t n)
{
    busi_call *calls;
    size_t total = busi_calls(env->e.svc, &calls);
    size_t k = 0;
    for (size_t i = 0; i < total; i++) {
        if (strcmp(calls[i].path, path) != 0)
            continue;
        ck_assert_msg(k < n, "unexpected extra call %s branch %s", path, calls[i].branch_id);
        ck_assert_str_eq(calls[i].method, "POST");
        ck_assert_str_eq(calls[i].gid, env->e.gid);
        ck_assert_str_eq(calls[i].op, op);
        ck_assert_str_eq(calls[i].branch_id, bids[k]);
        char payload[64];
        snprintf(payload, sizeof(payload), "{\"amount\":%d}", atoi(bids[k]) * 10);
        ck_assert_str_eq(calls[i].body, payload);
        k++;
    }
    ck_assert_uint_eq(k, n);
    busi_calls_free(calls, total);
}

START_TEST(tcc_two_branches_then_submit_confirms_both)
{
    sdk_env env;
    env_start(&env);
    dtmq_trans *t = dtmq_tcc_new(env.e.gid);
    dtmq_trans_set_timeout_to_fail(t, 60);
    dtmq_trans_set_wait_result(t, 1);
    dtmq_trans_add_branch_header(t, "X-Tenant", "acme");
    char err[512];
    int rc = dtmq_prepare(env.client, t, err, sizeof(err));
    ASSERT_RC(rc, DTMQ_OK, err);
    ASSERT_RC(tcc_branch(&env, t, 10, err, sizeof(err)), DTMQ_OK, err);
    ASSERT_RC(tcc_branch(&env, t, 20, err, sizeof(err)), DTMQ_OK, err);
    const char *tries[] = {"01", "02"}, *confirms[] = {"02", "01"};
    expect_calls(&env, "/api/Try", "try", tries, 2);
    busi_call *calls;
    size_t n = busi_calls(env.e.svc, &calls);
    ck_assert_str_eq(calls[0].trans_type, "tcc");
    ck_assert_ptr_nonnull(strstr(calls[0].headers, "acme")); /* branch headers on the try */
    busi_calls_free(calls, n);
    rc = dtmq_submit(env.client, t, err, sizeof(err));
    ASSERT_RC(rc, DTMQ_OK, err);
    char st[32];
    ck_assert_str_eq(e2e_status(&env.e.dtmq, env.e.gid, st, sizeof(st)), "succeed");
    expect_calls(&env, "/api/Confirm", "confirm", confirms, 2); /* reverse order */
    ck_assert_int_eq(busi_count(env.e.svc, "/api/Cancel", NULL, NULL), 0);
    dtmq_trans_free(t);
    env_stop(&env);
}
END_TEST

START_TEST(tcc_try_failure_then_abort_cancels)
{
    sdk_env env;
    env_start(&env);
    busi_rule(env.e.svc, "/api/Try", env.e.gid, NULL, 409,
              "{\"dtm_result\":\"FAILURE\",\"message\":\"no stock\"}", 0, -1);
    busi_rule(env.e.svc, "/api/Try", env.e.gid, NULL, 200, NULL, 0, 1); /* the first try passes */
    dtmq_trans *t = dtmq_tcc_new(env.e.gid);
    dtmq_trans_set_timeout_to_fail(t, 60);
    char err[512];
    ASSERT_RC(dtmq_prepare(env.client, t, err, sizeof(err)), DTMQ_OK, err);
    ASSERT_RC(tcc_branch(&env, t, 10, err, sizeof(err)), DTMQ_OK, err);
    int rc = tcc_branch(&env, t, 20, err, sizeof(err));
    ASSERT_RC(rc, DTMQ_ERR_FAILURE, err);
    ck_assert_ptr_nonnull(strstr(err, "no stock"));
    ck_assert_ptr_nonnull(strstr(err, "/api/Try"));
    dtmq_trans_set_rollback_reason(t, "try 02 failed: no stock");
    rc = dtmq_abort(env.client, t, err, sizeof(err));
    ASSERT_RC(rc, DTMQ_OK, err);
    char reason[128];
    e2e_wait_status(&env.e.dtmq, env.e.gid, "failed", 20);
    ck_assert_str_eq(trans_field(&env, env.e.gid, "rollback_reason", reason, sizeof(reason)),
                     "try 02 failed: no stock");
    const char *cancels[] = {"02", "01"};
    expect_calls(&env, "/api/Cancel", "cancel", cancels, 2);
    ck_assert_int_eq(busi_count(env.e.svc, "/api/Confirm", NULL, NULL), 0);
    dtmq_trans_free(t);
    env_stop(&env);
}
END_TEST

/* ------------------------------------------------------------------ */
/* XA: a branch that registers itself                                  */
/* ------------------------------------------------------------------ */

/* A small HTTP service playing an XA branch: on op=action it reads the
 * dtm-* fields with dtmq_branch_from_query and registers itself with
 * dtmq_xa_register(phase2_url); commit/rollback are counted. */
typedef struct xa_branch {
    struct MHD_Daemon *daemon;
    char url[64];
    dtmq_client *client;
    pthread_mutex_t mu;
    int actions, commits, rollbacks, bad_queries;
    int register_rc;
    char register_err[512];
    dtmq_branch_ref action_ref;
    char commit_body[1024];
} xa_branch;

typedef struct xa_req {
    char *uri; /* with the query string */
    char body[1024];
    size_t len;
    int started;
} xa_req;

static void *xa_uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    xa_req *r = calloc(1, sizeof(*r));
    if (r != NULL)
        r->uri = strdup(uri);
    return r;
}

static void xa_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    xa_req *r = *con_cls;
    if (r != NULL) {
        free(r->uri);
        free(r);
    }
    *con_cls = NULL;
}

/* Handles the whole request; returns the dtmq_result to answer. */
static dtmq_result xa_handle(xa_branch *b, xa_req *r)
{
    dtmq_branch_ref ref;
    char err[256];
    if (dtmq_branch_from_query(r->uri, &ref, err, sizeof(err)) != DTMQ_OK) {
        pthread_mutex_lock(&b->mu);
        b->bad_queries++;
        pthread_mutex_unlock(&b->mu);
        return (dtmq_result)-1;
    }
    if (strcmp(ref.op, "action") == 0) {
        char rerr[512];
        int rc = dtmq_xa_register(b->client, ref.gid, ref.branch_id, ref.phase2_url, r->body,
                                  rerr, sizeof(rerr));
        pthread_mutex_lock(&b->mu);
        b->actions++;
        b->action_ref = ref;
        b->register_rc = rc;
        snprintf(b->register_err, sizeof(b->register_err), "%s", rerr);
        pthread_mutex_unlock(&b->mu);
        return rc == DTMQ_OK ? DTMQ_SUCCESS : DTMQ_FAILURE;
    }
    pthread_mutex_lock(&b->mu);
    if (strcmp(ref.op, "commit") == 0) {
        b->commits++;
        snprintf(b->commit_body, sizeof(b->commit_body), "%s", r->body);
    } else if (strcmp(ref.op, "rollback") == 0) {
        b->rollbacks++;
    }
    pthread_mutex_unlock(&b->mu);
    return DTMQ_SUCCESS;
}

static enum MHD_Result xa_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    (void)url;
    (void)method;
    (void)version;
    xa_req *r = *con_cls;
    if (r == NULL)
        return MHD_NO;
    if (!r->started) {
        r->started = 1;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        size_t room = sizeof(r->body) - 1 - r->len;
        size_t n = *upload_size < room ? *upload_size : room;
        memcpy(r->body + r->len, upload, n);
        r->len += n;
        r->body[r->len] = '\0';
        *upload_size = 0;
        return MHD_YES;
    }
    dtmq_result res = xa_handle(cls, r);
    const char *body = dtmq_result_body(res);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)dtmq_result_status(res), resp);
    MHD_destroy_response(resp);
    return ret;
}

static void xa_branch_start(xa_branch *b, dtmq_client *client)
{
    memset(b, 0, sizeof(*b));
    pthread_mutex_init(&b->mu, NULL);
    b->client = client;
    b->register_rc = -1;
    stub_http_options o = {.threads = 0, .uri_log = xa_uri_log, .uri_log_cls = b,
                           .completed = xa_completed, .completed_cls = b};
    b->daemon = stub_http_start(xa_access, b, &o, NULL, b->url, sizeof(b->url));
    ck_assert_ptr_nonnull(b->daemon);
}

static void xa_branch_stop(xa_branch *b)
{
    MHD_stop_daemon(b->daemon);
    pthread_mutex_destroy(&b->mu);
}

START_TEST(xa_branch_registers_itself_and_is_committed)
{
    sdk_env env;
    env_start(&env);
    xa_branch b;
    xa_branch_start(&b, env.client);
    dtmq_trans *t = dtmq_xa_new(env.e.gid);
    dtmq_trans_set_timeout_to_fail(t, 60);
    dtmq_trans_set_wait_result(t, 1);
    char err[512], url[128], resp[256];
    snprintf(url, sizeof(url), "%s/api/XaTransIn", b.url);
    ASSERT_RC(dtmq_prepare(env.client, t, err, sizeof(err)), DTMQ_OK, err);
    int rc = dtmq_xa_call_branch(env.client, t, NULL, url, "{\"amount\":30}", resp, sizeof(resp),
                                 err, sizeof(err));
    ASSERT_RC(rc, DTMQ_OK, err);
    ck_assert_str_eq(resp, "{\"dtm_result\":\"SUCCESS\"}");
    pthread_mutex_lock(&b.mu);
    ck_assert_int_eq(b.actions, 1);
    ck_assert_msg(b.register_rc == DTMQ_OK, "register: %s", b.register_err);
    ck_assert_str_eq(b.action_ref.gid, env.e.gid);
    ck_assert_str_eq(b.action_ref.trans_type, "xa");
    ck_assert_str_eq(b.action_ref.branch_id, "01");
    ck_assert_str_eq(b.action_ref.dtm, env.server);
    ck_assert_str_eq(b.action_ref.phase2_url, url);
    pthread_mutex_unlock(&b.mu);
    rc = dtmq_submit(env.client, t, err, sizeof(err));
    ASSERT_RC(rc, DTMQ_OK, err);
    char st[32];
    ck_assert_str_eq(e2e_status(&env.e.dtmq, env.e.gid, st, sizeof(st)), "succeed");
    pthread_mutex_lock(&b.mu);
    ck_assert_int_eq(b.commits, 1);
    ck_assert_int_eq(b.rollbacks, 0);
    ck_assert_int_eq(b.bad_queries, 0);
    ck_assert_str_eq(b.commit_body, "{\"amount\":30}"); /* the data it registered */
    pthread_mutex_unlock(&b.mu);
    json_t *q = query(&env, env.e.gid);
    json_t *branches = json_object_get(q, "branches");
    ck_assert_uint_eq(json_array_size(branches), 2);
    for (size_t i = 0; i < 2; i++)
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(branches, i), "url")),
                         url);
    json_decref(q);
    dtmq_trans_free(t);
    xa_branch_stop(&b);
    env_stop(&env);
}
END_TEST

/* ------------------------------------------------------------------ */
/* workflow                                                            */
/* ------------------------------------------------------------------ */

START_TEST(workflow_prepare_record_finish_and_progresses)
{
    sdk_env env;
    env_start(&env);
    char resume[256], err[512];
    dtmq_trans *t = dtmq_workflow_new(env.e.gid, "wf1", svc_url(&env, "/api/Resume", resume, 256));
    ck_assert_int_eq(dtmq_workflow_set_data(t, "{\"amount\":30}", 13), DTMQ_OK);
    dtmq_workflow_state s;
    int rc = dtmq_workflow_prepare(env.client, t, &s, err, sizeof(err));
    ASSERT_RC(rc, DTMQ_OK, err);
    ck_assert_str_eq(s.status, "prepared");
    ck_assert_uint_eq(s.count, 0);
    ck_assert_ptr_null(s.progresses);
    dtmq_workflow_state_clear(&s);
    char custom[256];
    ck_assert_str_eq(trans_field(&env, env.e.gid, "custom_data", custom, sizeof(custom)),
                     "{\"data\":\"eyJhbW91bnQiOjMwfQ==\",\"name\":\"wf1\"}");
    rc = dtmq_workflow_record(env.client, env.e.gid, "01", "action", "succeed", "{\"a\":1}", err,
                              sizeof(err));
    ASSERT_RC(rc, DTMQ_OK, err);
    rc = dtmq_workflow_record(env.client, env.e.gid, "02", "action", "failed", "no stock", err,
                              sizeof(err));
    ASSERT_RC(rc, DTMQ_OK, err);
    rc = dtmq_workflow_prepare(env.client, t, &s, err, sizeof(err)); /* a restarted client */
    ASSERT_RC(rc, DTMQ_OK, err);
    ck_assert_str_eq(s.status, "prepared");
    ck_assert_uint_eq(s.count, 2);
    ck_assert_str_eq(s.progresses[0].branch_id, "01");
    ck_assert_str_eq(s.progresses[0].op, "action");
    ck_assert_str_eq(s.progresses[0].status, "succeed");
    ck_assert_str_eq((char *)s.progresses[0].data, "{\"a\":1}");
    ck_assert_uint_eq(s.progresses[0].data_len, 7);
    ck_assert_str_eq(s.progresses[1].branch_id, "02");
    ck_assert_str_eq(s.progresses[1].status, "failed");
    ck_assert_str_eq((char *)s.progresses[1].data, "no stock");
    dtmq_workflow_state_clear(&s);
    ck_assert_uint_eq(s.count, 0);
    rc = dtmq_workflow_finish(env.client, env.e.gid, 0, "step 02: FAILURE, no stock", NULL, err,
                              sizeof(err));
    ASSERT_RC(rc, DTMQ_OK, err);
    char st[32], reason[128];
    ck_assert_str_eq(e2e_status(&env.e.dtmq, env.e.gid, st, sizeof(st)), "failed");
    ck_assert_str_eq(trans_field(&env, env.e.gid, "rollback_reason", reason, sizeof(reason)),
                     "step 02: FAILURE, no stock");
    /* prepared again after the end: the state, not an error, although the
     * answer carries the word FAILURE (in the rollback reason) */
    rc = dtmq_workflow_prepare(env.client, t, &s, err, sizeof(err));
    ASSERT_RC(rc, DTMQ_OK, err);
    ck_assert_str_eq(s.status, "failed");
    ck_assert_uint_eq(s.count, 2);
    dtmq_workflow_state_clear(&s);
    /* finished: a second finish with another outcome is refused */
    rc = dtmq_workflow_finish(env.client, env.e.gid, 1, NULL, NULL, err, sizeof(err));
    ASSERT_RC(rc, DTMQ_ERR_FAILURE, err);
    dtmq_trans_free(t);

    /* a second workflow ends succeed with a result */
    char gid2[64], result[64];
    e2e_gid(gid2, sizeof(gid2), "sdk");
    t = dtmq_workflow_new(gid2, "wf1", resume);
    ASSERT_RC(dtmq_workflow_prepare(env.client, t, &s, err, sizeof(err)), DTMQ_OK, err);
    dtmq_workflow_state_clear(&s);
    rc = dtmq_workflow_finish(env.client, gid2, 1, NULL, "done", err, sizeof(err));
    ASSERT_RC(rc, DTMQ_OK, err);
    ck_assert_str_eq(e2e_status(&env.e.dtmq, gid2, st, sizeof(st)), "succeed");
    ck_assert_str_eq(trans_field(&env, gid2, "result", result, sizeof(result)), "done");
    dtmq_trans_free(t);
    env_stop(&env);
}
END_TEST

/* ------------------------------------------------------------------ */
/* options                                                             */
/* ------------------------------------------------------------------ */

START_TEST(every_option_reaches_the_server)
{
    sdk_env env;
    env_start(&env);
    char err[512], text[512];
    dtmq_trans *t = saga_of(&env, env.e.gid, 2);
    dtmq_trans_set_wait_result(t, 1);
    dtmq_trans_set_timeout_to_fail(t, 30);
    dtmq_trans_set_request_timeout(t, 5);
    dtmq_trans_set_retry_interval(t, 7);
    dtmq_trans_set_retry_limit(t, 3);
    dtmq_trans_set_concurrent(t, 1);
    dtmq_saga_add_order(t, 1, 0);
    dtmq_trans_add_branch_header(t, "X-Trace", "t-42");
    dtmq_trans_add_branch_header(t, "X-Tenant", "acme");
    ASSERT_RC(dtmq_submit(env.client, t, err, sizeof(err)), DTMQ_OK, err);
    json_t *got = json_loads(trans_field(&env, env.e.gid, "options", text, sizeof(text)), 0, NULL);
    json_t *want = json_pack("{s:b, s:b, s:i, s:i, s:i, s:i, s:{s:s, s:s}}", "wait_result", 1,
                             "concurrent", 1, "timeout_to_fail", 30, "request_timeout", 5,
                             "retry_interval", 7, "retry_limit", 3, "branch_headers", "X-Trace",
                             "t-42", "X-Tenant", "acme");
    ck_assert_msg(json_equal(got, want), "options stored: %s", text);
    json_decref(got);
    json_decref(want);
    ck_assert_str_eq(trans_field(&env, env.e.gid, "custom_data", text, sizeof(text)),
                     "{\"concurrent\":true,\"orders\":{\"1\":[0]}}");
    busi_call *calls;
    size_t n = busi_calls(env.e.svc, &calls);
    ck_assert_uint_eq(n, 2);
    for (size_t i = 0; i < n; i++) {
        ck_assert_ptr_nonnull(strstr(calls[i].headers, "t-42"));
        ck_assert_ptr_nonnull(strstr(calls[i].headers, "acme"));
    }
    busi_calls_free(calls, n);
    dtmq_trans_free(t);

    /* custom_data as given, on a msg submitted directly */
    char gid2[64], action[256];
    e2e_gid(gid2, sizeof(gid2), "sdk");
    t = dtmq_msg_new(gid2, NULL);
    dtmq_msg_add(t, svc_url(&env, "/api/MsgAction", action, sizeof(action)), "{}");
    dtmq_trans_set_custom_data(t, "{\"tenant\":\"acme\"}");
    ASSERT_RC(dtmq_submit(env.client, t, err, sizeof(err)), DTMQ_OK, err);
    ck_assert_str_eq(trans_field(&env, gid2, "custom_data", text, sizeof(text)),
                     "{\"tenant\":\"acme\"}");
    dtmq_trans_free(t);

    /* a msg's delay: custom_data {"delay":2}, and the step waits for it */
    char gid3[64];
    e2e_gid(gid3, sizeof(gid3), "sdk");
    t = dtmq_msg_new(gid3, NULL);
    dtmq_msg_add(t, action, "{}");
    dtmq_msg_set_delay(t, 2);
    long long t0 = test_wall_ms();
    ASSERT_RC(dtmq_submit(env.client, t, err, sizeof(err)), DTMQ_OK, err);
    ck_assert_str_eq(trans_field(&env, gid3, "custom_data", text, sizeof(text)), "{\"delay\":2}");
    ck_assert_int_eq(busi_wait(env.e.svc, "/api/MsgAction", gid3, NULL, 1, 15000), 1);
    n = busi_calls(env.e.svc, &calls);
    for (size_t i = 0; i < n; i++)
        if (strcmp(calls[i].gid, gid3) == 0)
            ck_assert_int_ge(calls[i].time_ms - t0, 1500);
    busi_calls_free(calls, n);
    dtmq_trans_free(t);
    env_stop(&env);
}
END_TEST

/* ------------------------------------------------------------------ */
/* errors                                                              */
/* ------------------------------------------------------------------ */

START_TEST(unreachable_server_names_the_url)
{
    char server[128], err[512], gid[64];
    snprintf(server, sizeof(server), "http://127.0.0.1:%d/api/dtmsvr", test_free_port());
    dtmq_client *c = client_for(server, NULL, NULL, 2000);
    dtmq_trans *t = dtmq_saga_new("sdk-unreachable");
    dtmq_saga_add(t, "http://127.0.0.1:1/a", "http://127.0.0.1:1/b", "{}");
    int rc = dtmq_submit(c, t, err, sizeof(err));
    ASSERT_RC(rc, DTMQ_ERR_UNREACHABLE, err);
    char want[200];
    snprintf(want, sizeof(want), "POST %s/submit: ", server);
    ck_assert_msg(strstr(err, want) != NULL, "err '%s' should name %s", err, want);
    ck_assert_ptr_nonnull(strstr(err, "onnect")); /* curl: "Couldn't connect to server" */
    rc = dtmq_new_gid(c, gid, sizeof(gid), err, sizeof(err));
    ASSERT_RC(rc, DTMQ_ERR_UNREACHABLE, err);
    ck_assert_ptr_nonnull(strstr(err, "/api/dtmsvr/newGid"));
    ck_assert_str_eq(gid, "");
    dtmq_trans_free(t);
    dtmq_client_free(c);
}
END_TEST

START_TEST(server_failure_ongoing_and_bad_input_are_told_apart)
{
    sdk_env env;
    env_start(&env);
    char err[512], action[256];
    /* a msg that already succeeded cannot be prepared again: 409 */
    dtmq_trans *t = dtmq_msg_new(env.e.gid, "http://127.0.0.1:1/q");
    dtmq_msg_add(t, svc_url(&env, "/api/MsgAction", action, sizeof(action)), "{}");
    dtmq_trans_set_wait_result(t, 1);
    ASSERT_RC(dtmq_submit(env.client, t, err, sizeof(err)), DTMQ_OK, err);
    int rc = dtmq_prepare(env.client, t, err, sizeof(err));
    ASSERT_RC(rc, DTMQ_ERR_FAILURE, err);
    char *body = NULL, *resp = NULL, url[256];
    ck_assert_int_eq(dtmq_trans_to_json(t, "prepare", &body, NULL, 0), DTMQ_OK);
    snprintf(url, sizeof(url), "%s/prepare", env.server);
    ck_assert_int_eq(http_do("POST", url, body, &resp), 409);
    json_t *j = json_loads(resp, 0, NULL);
    const char *msg = json_string_value(json_object_get(j, "message"));
    ck_assert_ptr_nonnull(msg);
    ck_assert_msg(strstr(err, msg) != NULL, "err '%s' should carry '%s'", err, msg);
    json_decref(j);
    free(resp);
    free(body);
    dtmq_trans_free(t);

    /* a second submit with wait_result while the first still runs: 425 */
    char gid2[64];
    e2e_gid(gid2, sizeof(gid2), "sdk");
    busi_rule(env.e.svc, "/api/Step1", gid2, NULL, 200, NULL, 2500, 1);
    t = saga_of(&env, gid2, 1);
    ASSERT_RC(dtmq_submit(env.client, t, err, sizeof(err)), DTMQ_OK, err);
    ck_assert_int_eq(busi_wait(env.e.svc, "/api/Step1", gid2, NULL, 1, 5000), 1);
    dtmq_trans_set_wait_result(t, 1);
    rc = dtmq_submit(env.client, t, err, sizeof(err));
    ASSERT_RC(rc, DTMQ_ERR_ONGOING, err);
    ck_assert_ptr_nonnull(strstr(err, "ONGOING"));
    e2e_wait_status(&env.e.dtmq, gid2, "succeed", 15);
    dtmq_trans_free(t);

    /* a URL the server refuses: 400 → DTMQ_ERR_SERVER with its message */
    char gid3[64];
    e2e_gid(gid3, sizeof(gid3), "sdk");
    t = dtmq_saga_new(gid3);
    dtmq_saga_add(t, "ftp://x/a", "", "{}");
    rc = dtmq_submit(env.client, t, err, sizeof(err));
    ASSERT_RC(rc, DTMQ_ERR_SERVER, err);
    ck_assert_ptr_nonnull(strstr(err, "HTTP 400"));
    ck_assert_ptr_nonnull(strstr(err, "ftp://x/a"));
    dtmq_trans_free(t);

    /* registerBranch on a gid that was never prepared: 409 */
    rc = dtmq_xa_register(env.client, "sdk-never-prepared", "01", "http://127.0.0.1:1/x", NULL,
                          err, sizeof(err));
    ASSERT_RC(rc, DTMQ_ERR_FAILURE, err);
    ck_assert_ptr_nonnull(strstr(err, "sdk-never-prepared"));
    env_stop(&env);
}
END_TEST

/* Asserts rc is DTMQ_ERR_INVALID and err mentions want. */
static void expect_invalid(int rc, const char *err, const char *want)
{
    ASSERT_RC(rc, DTMQ_ERR_INVALID, err);
    ck_assert_msg(strstr(err, want) != NULL, "err '%s' should mention '%s'", err, want);
}

/* Submits (or op) t and expects an INVALID naming want. */
static void expect_trans_invalid(dtmq_client *c, dtmq_trans *t, const char *op, const char *want)
{
    char err[512];
    int rc;
    if (strcmp(op, "prepare") == 0)
        rc = dtmq_prepare(c, t, err, sizeof(err));
    else if (strcmp(op, "abort") == 0)
        rc = dtmq_abort(c, t, err, sizeof(err));
    else
        rc = dtmq_submit(c, t, err, sizeof(err));
    expect_invalid(rc, err, want);
    dtmq_trans_free(t);
}

START_TEST(invalid_options_are_refused_before_anything_is_sent)
{
    sdk_env env;
    env_start(&env);
    dtmq_client *c = env.client;
    char err[512];
    /* client options */
    dtmq_client_options none = {NULL, NULL, NULL, 0}, ftp = {"ftp://x", NULL, NULL, 0},
                        neg = {"http://x", NULL, NULL, -1};
    ck_assert_ptr_null(dtmq_client_new(&none, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "kafka_bootstrap"));
    ck_assert_ptr_null(dtmq_client_new(&ftp, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "ftp://x"));
    ck_assert_ptr_null(dtmq_client_new(&neg, err, sizeof(err)));
    ck_assert_ptr_nonnull(strstr(err, "timeout_ms"));
    ck_assert_ptr_null(dtmq_client_new(NULL, err, sizeof(err)));

    /* transactions */
    expect_trans_invalid(c, dtmq_saga_new(env.e.gid), "submit", "no steps");
    expect_trans_invalid(c, dtmq_saga_new(""), "submit", "gid: missing");
    dtmq_trans *t = dtmq_saga_new(env.e.gid);
    dtmq_saga_add(t, "http://a/x", "", "{}");
    expect_trans_invalid(c, t, "prepare", "a saga is not prepared");
    t = dtmq_saga_new(env.e.gid);
    dtmq_saga_add(t, "http://a/x", "", "{}");
    ck_assert_int_eq(dtmq_trans_set_timeout_to_fail(t, -5), DTMQ_ERR_INVALID);
    ck_assert_str_eq(dtmq_trans_error(t), "timeout_to_fail: -5 is negative");
    ck_assert_int_eq(dtmq_trans_set_retry_limit(t, 2), DTMQ_OK); /* sticky: still refused */
    expect_trans_invalid(c, t, "submit", "timeout_to_fail: -5 is negative");
    t = dtmq_saga_new(env.e.gid);
    dtmq_saga_add(t, "http://a/x", "", "{}");
    ck_assert_int_eq(dtmq_trans_add_branch_header(t, "X-Bad", "a\r\nb"), DTMQ_ERR_INVALID);
    expect_trans_invalid(c, t, "submit", "branch_headers.X-Bad");
    t = dtmq_saga_new(env.e.gid);
    dtmq_saga_add(t, "http://a/x", "", "{}");
    ck_assert_int_eq(dtmq_trans_add_branch_header(t, "dtm-gid", "x"), DTMQ_ERR_INVALID);
    expect_trans_invalid(c, t, "submit", "dtm-");
    t = dtmq_saga_new(env.e.gid);
    dtmq_saga_add(t, "http://a/x", "", "{}");
    dtmq_saga_add(t, "http://a/y", "", "{}");
    dtmq_saga_add_order(t, 1, 0);
    expect_trans_invalid(c, t, "submit", "not concurrent");
    t = dtmq_saga_new(env.e.gid);
    dtmq_saga_add(t, "http://a/x", "", "{}");
    dtmq_trans_set_concurrent(t, 1);
    dtmq_saga_add_order(t, 3, 1);
    expect_trans_invalid(c, t, "submit", "order for step 3");
    t = dtmq_saga_new(env.e.gid);
    ck_assert_int_eq(dtmq_saga_add_order(t, 0, 0), DTMQ_ERR_INVALID);
    expect_trans_invalid(c, t, "submit", "dtmq_saga_add_order(0, 0)");
    t = dtmq_tcc_new(env.e.gid);
    ck_assert_int_eq(dtmq_saga_add(t, "http://a/x", "", "{}"), DTMQ_ERR_INVALID);
    expect_trans_invalid(c, t, "prepare", "only for saga, this is a tcc");
    t = dtmq_msg_new(env.e.gid, NULL);
    dtmq_msg_add(t, "http://a/x", "{}");
    expect_trans_invalid(c, t, "prepare", "query_prepared");
    t = dtmq_msg_new(env.e.gid, "http://a/q");
    dtmq_msg_add(t, "http://a/x", "{}");
    dtmq_msg_set_delay(t, 3);
    dtmq_trans_set_custom_data(t, "x");
    expect_trans_invalid(c, t, "submit", "custom_data");
    t = dtmq_saga_new(env.e.gid);
    dtmq_saga_add(t, "http://a/x", "", "{}");
    expect_trans_invalid(c, t, "abort", "only msg, tcc and xa");
    t = dtmq_workflow_new(env.e.gid, "wf", "http://a/r");
    ck_assert_int_eq(dtmq_trans_set_custom_data(t, "x"), DTMQ_ERR_INVALID);
    expect_trans_invalid(c, t, "submit", "custom_data");
    t = dtmq_workflow_new(env.e.gid, NULL, "http://a/r");
    dtmq_workflow_state s;
    expect_invalid(dtmq_workflow_prepare(c, t, &s, err, sizeof(err)), err, "workflow name");
    dtmq_trans_free(t);

    /* calls */
    t = dtmq_saga_new(env.e.gid);
    char resp[64];
    expect_invalid(dtmq_tcc_call_branch(c, t, NULL, "http://a/try", "", "", "{}", resp,
                                        sizeof(resp), err, sizeof(err)),
                   err, "this is a saga");
    expect_invalid(dtmq_submit_kafka(c, t, "submit", NULL, err, sizeof(err)), err,
                   "no kafka_bootstrap");
    char *json = NULL;
    expect_invalid(dtmq_trans_to_json(t, "bogus", &json, err, sizeof(err)), err, "'bogus'");
    ck_assert_ptr_null(json);
    dtmq_trans_free(t);
    t = dtmq_tcc_new(env.e.gid);
    expect_invalid(dtmq_tcc_call_branch(c, t, NULL, NULL, "", "", "{}", NULL, 0, err,
                                        sizeof(err)),
                   err, "try_url: missing");
    expect_invalid(dtmq_tcc_call_branch(c, t, "", "http://a/try", "", "", "{}", NULL, 0, err,
                                        sizeof(err)),
                   err, "branch_id");
    dtmq_trans_free(t);
    expect_invalid(dtmq_workflow_record(c, env.e.gid, "01", "action", "done", "", err, sizeof(err)),
                   err, "'done' is not succeed or failed");
    expect_invalid(dtmq_xa_register(c, env.e.gid, "01", NULL, NULL, err, sizeof(err)), err,
                   "url: missing");
    ck_assert_int_eq(dtmq_trans_set_timeout_to_fail(NULL, 1), DTMQ_ERR_INVALID);
    ck_assert_int_eq(dtmq_trans_set_wait_result(NULL, 1), DTMQ_ERR_INVALID);
    ck_assert_int_eq(dtmq_saga_add(NULL, "http://a/x", "", "{}"), DTMQ_ERR_INVALID);
    ck_assert_ptr_null(dtmq_trans_error(NULL));
    dtmq_trans_free(NULL);
    dtmq_client_free(NULL);
    expect_invalid(dtmq_submit(c, NULL, err, sizeof(err)), err, "transaction is NULL");
    char small[4];
    dtmq_msg_do_and_submit(c, NULL, NULL, NULL, small, sizeof(small)); /* truncated, no overflow */
    ck_assert_uint_eq(strlen(small), 3);

    /* nothing of this reached the server */
    json_t *q = query(&env, env.e.gid);
    ck_assert(json_is_null(json_object_get(q, "transaction")));
    json_decref(q);
    ck_assert_int_eq(busi_count(env.e.svc, NULL, NULL, NULL), 0);
    env_stop(&env);
}
END_TEST

/* ------------------------------------------------------------------ */
/* handler helpers                                                     */
/* ------------------------------------------------------------------ */

START_TEST(branch_helpers_read_queries_and_map_results)
{
    dtmq_branch_ref ref;
    char err[256];
    int rc = dtmq_branch_from_query("gid=g-1&trans_type=saga&branch_id=01&op=action", &ref, err,
                                    sizeof(err));
    ASSERT_RC(rc, DTMQ_OK, err);
    ck_assert_str_eq(ref.gid, "g-1");
    ck_assert_str_eq(ref.trans_type, "saga");
    ck_assert_str_eq(ref.branch_id, "01");
    ck_assert_str_eq(ref.op, "action");
    ck_assert_str_eq(ref.dtm, "");
    ck_assert_str_eq(ref.phase2_url, "");
    rc = dtmq_branch_from_query("/api/XaIn?dtm=http%3A%2F%2F127.0.0.1%3A36789%2Fapi%2Fdtmsvr"
                                "&gid=a+b%2Bc&trans_type=xa&branch_id=02&op=action"
                                "&phase2_url=http%3A%2F%2Fh%2Fx%3Fk%3Dv",
                                &ref, err, sizeof(err));
    ASSERT_RC(rc, DTMQ_OK, err);
    ck_assert_str_eq(ref.gid, "a b+c");
    ck_assert_str_eq(ref.dtm, "http://127.0.0.1:36789/api/dtmsvr");
    ck_assert_str_eq(ref.phase2_url, "http://h/x?k=v");
    ck_assert_str_eq(ref.branch_id, "02");

    static const struct {
        const char *query, *want;
    } bad[] = {
        {"", "gid"},
        {"trans_type=saga&branch_id=01&op=action", "gid"},
        {"gid=g&branch_id=01&op=action", "trans_type"},
        {"gid=g&trans_type=saga&branch_id=01", "op"},
        {"gid=%zz&trans_type=saga&branch_id=01&op=action", "%-escape"},
        {"gid=g&trans_type=saga&branch_id=01&op=action&dtm=%4", "dtm: bad %-escape"},
        {"&&&=&=x", "gid"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rc = dtmq_branch_from_query(bad[i].query, &ref, err, sizeof(err));
        ck_assert_msg(rc == DTMQ_ERR_INVALID, "'%s' should be refused", bad[i].query);
        ck_assert_msg(strstr(err, bad[i].want) != NULL, "'%s': err '%s' should mention '%s'",
                      bad[i].query, err, bad[i].want);
        ck_assert_str_eq(ref.gid, ""); /* zeroed */
    }
    ck_assert_int_eq(dtmq_branch_from_query(NULL, &ref, err, sizeof(err)), DTMQ_ERR_INVALID);
    ck_assert_int_eq(dtmq_branch_from_query("gid=g", NULL, err, sizeof(err)), DTMQ_ERR_INVALID);
    char longq[512];
    memset(longq, 0, sizeof(longq));
    strcpy(longq, "gid=");
    memset(longq + 4, 'g', 200);
    strcat(longq, "&trans_type=saga&branch_id=01&op=action");
    rc = dtmq_branch_from_query(longq, &ref, err, sizeof(err));
    ck_assert_int_eq(rc, DTMQ_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err, "gid"));

    ck_assert_int_eq(dtmq_result_status(DTMQ_SUCCESS), 200);
    ck_assert_int_eq(dtmq_result_status(DTMQ_FAILURE), 409);
    ck_assert_int_eq(dtmq_result_status(DTMQ_ONGOING), 425);
    ck_assert_int_eq(dtmq_result_status((dtmq_result)42), 500);
    ck_assert_str_eq(dtmq_result_body(DTMQ_SUCCESS), "{\"dtm_result\":\"SUCCESS\"}");
    ck_assert_str_eq(dtmq_result_body(DTMQ_FAILURE), "{\"dtm_result\":\"FAILURE\"}");
    ck_assert_str_eq(dtmq_result_body(DTMQ_ONGOING), "{\"dtm_result\":\"ONGOING\"}");
    ck_assert_str_eq(dtmq_result_body((dtmq_result)42), "{\"message\":\"error\"}");
    ck_assert_str_eq(dtmq_error_name(DTMQ_ERR_FAILURE), "DTMQ_ERR_FAILURE");
    ck_assert_str_eq(dtmq_error_name(99), "unknown");
}
END_TEST

/* ------------------------------------------------------------------ */
/* Kafka                                                               */
/* ------------------------------------------------------------------ */

START_TEST(kafka_without_a_broker_is_unreachable)
{
    char bootstrap[64], err[512];
    snprintf(bootstrap, sizeof(bootstrap), "127.0.0.1:%d", test_free_port());
    dtmq_client *c = client_for(NULL, bootstrap, "sdk.submit", 1500);
    dtmq_trans *t = dtmq_saga_new("sdk-kafka-down");
    dtmq_saga_add(t, "http://127.0.0.1:1/a", "", "{}");
    long long t0 = test_wall_ms();
    int rc = dtmq_submit_kafka(c, t, "submit", NULL, err, sizeof(err));
    ASSERT_RC(rc, DTMQ_ERR_UNREACHABLE, err);
    ck_assert_ptr_nonnull(strstr(err, bootstrap));
    ck_assert_ptr_nonnull(strstr(err, "sdk.submit"));
    ck_assert_int_lt(test_wall_ms() - t0, 10000);
    expect_invalid(dtmq_submit_kafka(c, t, "commit", NULL, err, sizeof(err)), err, "'commit'");
    expect_invalid(dtmq_submit_kafka(c, t, "submit", "bad topic!", err, sizeof(err)), err,
                   "reply_to 'bad topic!'");
    expect_invalid(dtmq_submit(c, t, err, sizeof(err)), err, "no server URL");
    dtmq_trans_free(t);
    dtmq_client_free(c);
}
END_TEST

START_TEST(kafka_submission_runs_saga_and_msg)
{
    sdk_env env;
    char bootstrap[256], prefix[64], group[64], id[32], topic[128], replies[128];
    snprintf(bootstrap, sizeof(bootstrap), "%s", test_kafka_bootstrap());
    e2e_gid(id, sizeof(id), "sdk");
    snprintf(prefix, sizeof(prefix), "%s.", id);
    snprintf(group, sizeof(group), "g-%s", id);
    const char *args[] = {"--kafka", bootstrap, "--kafka-topic-prefix", prefix, "--kafka-group",
                          group, NULL};
    env_start_with(&env, args);
    snprintf(topic, sizeof(topic), "%ssubmit", prefix);
    snprintf(replies, sizeof(replies), "%sreplies", prefix);
    dtmq_client *kc = client_for(env.server, bootstrap, topic, 15000);
    char err[512];

    /* a saga, with dtmq's answers on reply_to */
    dtmq_trans *t = saga_of(&env, env.e.gid, 2);
    dtmq_trans_set_wait_result(t, 1);
    int rc = dtmq_submit_kafka(kc, t, "submit", replies, err, sizeof(err));
    ASSERT_RC(rc, DTMQ_OK, err);
    e2e_wait_status(&env.e.dtmq, env.e.gid, "succeed", 40);
    ck_assert_int_eq(busi_count(env.e.svc, "/api/Step1", env.e.gid, "action"), 1);
    ck_assert_int_eq(busi_count(env.e.svc, "/api/Step2", env.e.gid, "action"), 1);
    kt_msg *m;
    size_t n = kt_read(bootstrap, replies, 2, 20000, &m);
    ck_assert_uint_eq(n, 2);
    int accepted = 0, finished = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_loads(m[i].value, 0, NULL);
        ck_assert_str_eq(m[i].key, env.e.gid);
        ck_assert_str_eq(json_string_value(json_object_get(r, "dtm_result")), "SUCCESS");
        const char *phase = json_string_value(json_object_get(r, "phase"));
        accepted += phase != NULL && strcmp(phase, "accepted") == 0;
        finished += phase != NULL && strcmp(phase, "finished") == 0;
        json_decref(r);
    }
    ck_assert_int_eq(accepted, 1);
    ck_assert_int_eq(finished, 1);
    kt_free(m, n);
    dtmq_trans_free(t);

    /* a msg: prepare and submit as two Kafka commands, in order */
    char gid2[64];
    e2e_gid(gid2, sizeof(gid2), "sdk");
    t = msg_of(&env, gid2);
    ASSERT_RC(dtmq_submit_kafka(kc, t, "prepare", NULL, err, sizeof(err)), DTMQ_OK, err);
    ASSERT_RC(dtmq_submit_kafka(kc, t, "submit", NULL, err, sizeof(err)), DTMQ_OK, err);
    e2e_wait_status(&env.e.dtmq, gid2, "succeed", 40);
    ck_assert_int_eq(busi_count(env.e.svc, "/api/MsgAction", gid2, "action"), 1);
    ck_assert_int_eq(busi_count(env.e.svc, "/api/QueryPrepared", gid2, NULL), 0);
    dtmq_trans_free(t);
    dtmq_client_free(kc);
    env_stop(&env);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sdk");
    test_group local = {.suite = s};
    test_add(&local, bodies_are_byte_for_byte_those_of_dtm_go_sdk);
    test_add(&local, branch_helpers_read_queries_and_map_results);
    test_add(&local, unreachable_server_names_the_url);
    test_add(&local, kafka_without_a_broker_is_unreachable);

    test_group e2e = {.suite = s, .timeout_s = 90};
    test_add(&e2e, saga_success_with_a_gid_from_the_server);
    test_add(&e2e, saga_failure_returns_failure_and_compensates);
    test_add(&e2e, saga_concurrent_orders_run_steps_together_then_the_dependent);
    test_add(&e2e, msg_do_and_submit_delivers_when_the_local_transaction_commits);
    test_add(&e2e, msg_do_and_submit_aborts_when_the_local_transaction_fails);
    test_add(&e2e, msg_do_and_submit_asks_query_prepared_when_the_outcome_is_unknown);
    test_add(&e2e, tcc_two_branches_then_submit_confirms_both);
    test_add(&e2e, tcc_try_failure_then_abort_cancels);
    test_add(&e2e, xa_branch_registers_itself_and_is_committed);
    test_add(&e2e, workflow_prepare_record_finish_and_progresses);
    test_add(&e2e, every_option_reaches_the_server);
    test_add(&e2e, server_failure_ongoing_and_bad_input_are_told_apart);
    test_add(&e2e, invalid_options_are_refused_before_anything_is_sent);

    test_group kafka = {.suite = s, .timeout_s = 120};
    test_add(&kafka, kafka_submission_runs_saga_and_msg);
    return run_suite(s);
}
