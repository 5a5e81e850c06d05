/*
 * test_tcc_xa.c — TCC and XA end to end: real dtmq (build/asan/dtmq) on the
 * store named by DTMQ_TEST_STORE_KIND, driven over HTTP the way DTM's Go and
 * Java SDKs drive it (prepare → registerBranch per branch → the client's own
 * try → submit or abort), with a recording business service (tests/lib/busi.c)
 * answering the second phase.
 *
 * TCC: confirms in reverse registration order on submit, cancels in reverse
 * on abort and on a prepare that times out, unknown results and FAILURE of a
 * confirm retried (never rolled back), the registerBranch/submit/abort status
 * rules, wait_result, and a kill -9 while a confirm is in flight.
 * XA: commit and rollback forward, always POST; a prepare that times out rolls
 * back; ONGOING asked again (also for a TCC confirm).
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

/* Business paths: the client's try, the TCC second phase, the XA branch. */
#define TRY_PATH "/api/Try"
#define CONFIRM_PATH "/api/Confirm"
#define CANCEL_PATH "/api/Cancel"
#define XA_PATH "/api/XaBranch"

typedef struct tx_env {
    e2e_env e; /* busi, dtmq, store, gid */
    const char *type; /* "tcc" or "xa" */
} tx_env;

static void env_start(tx_env *env, const char *type)
{
    e2e_env_start(&env->e, true, type, NULL);
    env->type = type;
}

static void env_stop(tx_env *env)
{
    e2e_env_stop(&env->e);
}

/* The data branch i is registered with (and that its phase-2 call must carry). */
static const char *branch_data(char *buf, size_t len, int i)
{
    snprintf(buf, len, "{\"amount\":%d}", 10 * i);
    return buf;
}

/* POSTs body (stolen) to /api/dtmsvr/<route>, asserts the HTTP status and
 * returns the parsed reply (caller decrefs; NULL if not JSON). */
static json_t *post(const tx_env *env, const char *route, json_t *body, int want_status)
{
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

/* {gid, trans_type} plus extra (stolen, may be NULL). */
static json_t *trans_body(const tx_env *env, json_t *extra)
{
    json_t *body = json_pack("{s:s, s:s}", "gid", env->e.gid, "trans_type", env->type);
    if (extra) {
        json_object_update(body, extra);
        json_decref(extra);
    }
    return body;
}

/* POSTs {gid, trans_type}+extra to route and asserts the status. */
static void trans_post(const tx_env *env, const char *route, json_t *extra, int want_status)
{
    json_decref(post(env, route, trans_body(env, extra), want_status));
}

/* registerBranch as the SDKs send it: a flat string map. */
static json_t *register_body(const tx_env *env, const char *branch_id, const char *data)
{
    const char *base = busi_url(env->e.svc);
    char confirm[256], cancel[256], xa[256];
    snprintf(confirm, sizeof(confirm), "%s" CONFIRM_PATH, base);
    snprintf(cancel, sizeof(cancel), "%s" CANCEL_PATH, base);
    snprintf(xa, sizeof(xa), "%s" XA_PATH, base);
    if (strcmp(env->type, "tcc") == 0)
        return trans_body(env, json_pack("{s:s, s:s, s:s, s:s}", "branch_id", branch_id, "data",
                                         data, "confirm", confirm, "cancel", cancel));
    return trans_body(env, json_pack("{s:s, s:s, s:s}", "branch_id", branch_id, "data", data,
                                     "url", xa));
}

static void register_branch(const tx_env *env, const char *branch_id, const char *data,
                            int want_status)
{
    json_decref(post(env, "registerBranch", register_body(env, branch_id, data), want_status));
}

/* The client's own try call (TCC): POST op=try, as TransTcc.CallBranch does. */
static void call_try(const tx_env *env, const char *branch_id, const char *data)
{
    char url[512];
    snprintf(url, sizeof(url), "%s" TRY_PATH "?gid=%s&trans_type=tcc&branch_id=%s&op=try",
             busi_url(env->e.svc), env->e.gid, branch_id);
    char *resp = NULL;
    ck_assert_int_eq(http_do("POST", url, data, &resp), 200);
    free(resp);
}

/* prepare, then the branches bids[0..n) registered (and tried, for TCC) in that order. */
static void prepare_registering(const tx_env *env, const char *const *bids, size_t n)
{
    trans_post(env, "prepare", NULL, 200);
    for (size_t i = 0; i < n; i++) {
        char data[64];
        branch_data(data, sizeof(data), atoi(bids[i]));
        register_branch(env, bids[i], data, 200);
        if (strcmp(env->type, "tcc") == 0)
            call_try(env, bids[i], data);
    }
}

/* prepare, then n branches 01..n registered in order. */
static void prepare_with_branches(const tx_env *env, int n)
{
    static const char *const bids[] = {"01", "02", "03", "04", "05", "06", "07", "08", "09"};
    prepare_registering(env, bids, (size_t)n);
}

static json_t *query(const tx_env *env)
{
    char path[256];
    snprintf(path, sizeof(path), "/api/dtmsvr/query?gid=%s", env->e.gid);
    int status = 0;
    json_t *q = e2e_call(&env->e.dtmq, "GET", path, NULL, &status);
    ck_assert_int_eq(status, 200);
    ck_assert_ptr_nonnull(q);
    return q;
}

/* A string field of /query's transaction, copied into buf. */
static const char *trans_field(const tx_env *env, const char *key, char *buf, size_t len)
{
    json_t *q = query(env);
    const char *v = json_string_value(json_object_get(json_object_get(q, "transaction"), key));
    snprintf(buf, len, "%s", v ? v : "");
    json_decref(q);
    return buf;
}

/*
 * Asserts that the calls to path are exactly the phase-2 calls op on branches
 * want_bids[0..n) in that order: POST, the dtm query parameters, and the
 * registered data as body (want_bodies, or branch_data(bid) when NULL).
 */
static void expect_phase2(const tx_env *env, const char *path, const char *op,
                          const char *const *want_bids, const char *const *want_bodies, size_t n)
{
    busi_call *calls;
    size_t total = busi_calls(env->e.svc, &calls);
    size_t k = 0;
    for (size_t i = 0; i < total; i++) {
        const busi_call *c = &calls[i];
        if (strcmp(c->path, path) != 0)
            continue;
        ck_assert_msg(k < n, "unexpected extra call %s %s branch %s", c->path, c->op, c->branch_id);
        char data[64];
        const char *body = want_bodies ? want_bodies[k] : branch_data(data, sizeof(data), atoi(want_bids[k]));
        ck_assert_str_eq(c->method, "POST");
        ck_assert_str_eq(c->gid, env->e.gid);
        ck_assert_str_eq(c->trans_type, env->type);
        ck_assert_str_eq(c->op, op);
        ck_assert_str_eq(c->branch_id, want_bids[k]);
        ck_assert_str_eq(c->body, body);
        ck_assert_int_eq(c->status_sent, 200);
        k++;
    }
    ck_assert_uint_eq(k, n);
    busi_calls_free(calls, total);
}

/* Number of calls to path on branch_id. */
static int count_branch(busi *svc, const char *path, const char *branch_id)
{
    busi_call *calls;
    size_t total = busi_calls(svc, &calls);
    int n = 0;
    for (size_t i = 0; i < total; i++)
        n += strcmp(calls[i].path, path) == 0 && strcmp(calls[i].branch_id, branch_id) == 0;
    busi_calls_free(calls, total);
    return n;
}

static const char *const REVERSE3[] = {"03", "02", "01"};

/* ---- TCC ------------------------------------------------------------------ */

START_TEST(tcc_submit_confirms_in_reverse_registration_order)
{
    tx_env env;
    env_start(&env, "tcc");
    /* registered out of branch_id order, as concurrent tries may do: the
     * registration order, not the id, decides */
    const char *const registered[] = {"02", "01", "03"};
    prepare_registering(&env, registered, 3);
    char st[32];
    ck_assert_str_eq(e2e_status(&env.e.dtmq, env.e.gid, st, sizeof(st)), "prepared");
    ck_assert_int_eq(busi_count(env.e.svc, CONFIRM_PATH, NULL, NULL), 0); /* nothing before submit */
    trans_post(&env, "submit", NULL, 200);
    e2e_wait_status(&env.e.dtmq, env.e.gid, "succeed", 20);

    busi_call *calls;
    size_t n = busi_calls(env.e.svc, &calls);
    ck_assert_uint_eq(n, 6); /* the client's 3 tries, then dtmq's 3 confirms */
    for (size_t i = 0; i < 3; i++) {
        ck_assert_str_eq(calls[i].path, TRY_PATH);
        ck_assert_str_eq(calls[i + 3].path, CONFIRM_PATH);
    }
    busi_calls_free(calls, n);
    const char *const want[] = {"03", "01", "02"};
    expect_phase2(&env, CONFIRM_PATH, "confirm", want, NULL, 3);
    ck_assert_int_eq(busi_count(env.e.svc, CANCEL_PATH, NULL, NULL), 0);

    /* rows in registration order, (cancel, confirm) per branch, with the
     * registered data; confirms succeed, cancels stay prepared */
    json_t *q = query(&env);
    json_t *branches = json_object_get(q, "branches"), *b;
    size_t i;
    ck_assert_uint_eq(json_array_size(branches), 6);
    json_array_foreach(branches, i, b) {
        const char *op = json_string_value(json_object_get(b, "op"));
        const char *status = json_string_value(json_object_get(b, "status"));
        ck_assert_str_eq(op, i % 2 == 0 ? "cancel" : "confirm");
        ck_assert_str_eq(status, i % 2 == 0 ? "prepared" : "succeed");
        ck_assert_str_eq(json_string_value(json_object_get(b, "branch_id")), registered[i / 2]);
        ck_assert_str_eq(json_string_value(json_object_get(b, "url")) + strlen(busi_url(env.e.svc)),
                         i % 2 == 0 ? CANCEL_PATH : CONFIRM_PATH);
        static const char *const b64[] = {"eyJhbW91bnQiOjIwfQ==", "eyJhbW91bnQiOjEwfQ==",
                                          "eyJhbW91bnQiOjMwfQ=="}; /* {"amount":20|10|30} */
        ck_assert_str_eq(json_string_value(json_object_get(b, "bin_data")), b64[i / 2]);
    }
    json_decref(q);
    env_stop(&env);
}
END_TEST

START_TEST(tcc_registering_the_same_branch_again_is_a_no_op)
{
    tx_env env;
    env_start(&env, "tcc");
    prepare_with_branches(&env, 2);
    register_branch(&env, "01", "{\"amount\":99}", 200); /* an SDK retrying its registerBranch */
    json_t *q = query(&env);
    ck_assert_uint_eq(json_array_size(json_object_get(q, "branches")), 4);
    json_decref(q);
    trans_post(&env, "submit", json_pack("{s:b}", "wait_result", 1), 200);
    const char *const want[] = {"02", "01"};
    expect_phase2(&env, CONFIRM_PATH, "confirm", want, NULL, 2); /* first data kept, once each */
    env_stop(&env);
}
END_TEST

START_TEST(tcc_abort_cancels_in_reverse_and_keeps_the_reason)
{
    tx_env env;
    env_start(&env, "tcc");
    prepare_with_branches(&env, 3);
    trans_post(&env, "abort", json_pack("{s:s}", "rollback_reason", "stock is insufficient"), 200);
    e2e_wait_status(&env.e.dtmq, env.e.gid, "failed", 20);
    expect_phase2(&env, CANCEL_PATH, "cancel", REVERSE3, NULL, 3);
    ck_assert_int_eq(busi_count(env.e.svc, CONFIRM_PATH, NULL, NULL), 0);
    char reason[256], t[64];
    ck_assert_str_eq(trans_field(&env, "rollback_reason", reason, sizeof(reason)),
                     "stock is insufficient");
    ck_assert_str_ne(trans_field(&env, "rollback_time", t, sizeof(t)), "");
    env_stop(&env);
}
END_TEST

START_TEST(tcc_prepared_never_submitted_is_cancelled_after_the_timeout)
{
    tx_env env;
    env_start(&env, "tcc");
    long long t0 = test_wall_ms();
    prepare_with_branches(&env, 2);
    /* the client vanished: dtmq cancels once TimeoutToFail (3 s) has passed */
    ck_assert_int_eq(busi_wait(env.e.svc, CANCEL_PATH, env.e.gid, "cancel", 1, 1500), 0);
    char st[32];
    ck_assert_str_eq(e2e_status(&env.e.dtmq, env.e.gid, st, sizeof(st)), "prepared");
    e2e_wait_status(&env.e.dtmq, env.e.gid, "failed", 20);
    const char *const want[] = {"02", "01"};
    expect_phase2(&env, CANCEL_PATH, "cancel", want, NULL, 2);
    ck_assert_int_eq(busi_count(env.e.svc, CONFIRM_PATH, NULL, NULL), 0);

    busi_call *calls;
    size_t n = busi_calls(env.e.svc, &calls);
    for (size_t i = 0; i < n; i++)
        if (strcmp(calls[i].path, CANCEL_PATH) == 0)
            ck_assert_msg(calls[i].time_ms - t0 >= 2900, "cancel %lld ms after prepare, before the timeout",
                          calls[i].time_ms - t0);
    busi_calls_free(calls, n);
    char reason[256];
    ck_assert_ptr_nonnull(strstr(trans_field(&env, "rollback_reason", reason, sizeof(reason)), "Timeout"));
    env_stop(&env);
}
END_TEST

START_TEST(tcc_confirm_error_is_retried_until_success)
{
    tx_env env;
    env_start(&env, "tcc");
    prepare_with_branches(&env, 3);
    busi_rule(env.e.svc, CONFIRM_PATH, env.e.gid, "confirm", 500, NULL, 0, 1); /* branch 03, once */
    trans_post(&env, "submit", NULL, 200);
    e2e_wait_status(&env.e.dtmq, env.e.gid, "succeed", 30);

    /* the first error ends the pass: 02 is confirmed only after 03 was, on the retry */
    busi_call *calls;
    size_t n = busi_calls(env.e.svc, &calls);
    const char *want[] = {"03", "03", "02", "01"};
    const int want_status[] = {500, 200, 200, 200};
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(calls[i].path, CONFIRM_PATH) != 0)
            continue;
        ck_assert_uint_lt(k, 4);
        ck_assert_str_eq(calls[i].branch_id, want[k]);
        ck_assert_str_eq(calls[i].op, "confirm");
        ck_assert_int_eq(calls[i].status_sent, want_status[k]);
        k++;
    }
    ck_assert_uint_eq(k, 4);
    busi_calls_free(calls, n);
    ck_assert_int_eq(busi_count(env.e.svc, CANCEL_PATH, NULL, NULL), 0);
    env_stop(&env);
}
END_TEST

START_TEST(tcc_confirm_failure_is_retried_not_rolled_back)
{
    tx_env env;
    env_start(&env, "tcc");
    prepare_with_branches(&env, 3);
    busi_rule(env.e.svc, CONFIRM_PATH, env.e.gid, "confirm", 409, NULL, 0, 2); /* FAILURE twice */
    trans_post(&env, "submit", NULL, 200);

    /* while the confirm keeps answering FAILURE the transaction stays submitted */
    int polls = 0;
    while (busi_count(env.e.svc, CONFIRM_PATH, env.e.gid, "confirm") < 3) {
        char st[32];
        e2e_status(&env.e.dtmq, env.e.gid, st, sizeof(st));
        if (busi_count(env.e.svc, CONFIRM_PATH, env.e.gid, "confirm") < 3)
            ck_assert_str_eq(st, "submitted");
        ck_assert_msg(++polls < 20 * 30, "the confirm was not retried within 30 s");
        usleep(50 * 1000);
    }
    ck_assert_int_gt(polls, 0);
    e2e_wait_status(&env.e.dtmq, env.e.gid, "succeed", 20);
    ck_assert_int_eq(busi_count(env.e.svc, CANCEL_PATH, NULL, NULL), 0);
    ck_assert_int_eq(count_branch(env.e.svc, CONFIRM_PATH, "03"), 3);
    ck_assert_int_eq(count_branch(env.e.svc, CONFIRM_PATH, "02"), 1);
    ck_assert_int_eq(count_branch(env.e.svc, CONFIRM_PATH, "01"), 1);
    char reason[256];
    ck_assert_str_eq(trans_field(&env, "rollback_reason", reason, sizeof(reason)), "");
    env_stop(&env);
}
END_TEST

START_TEST(tcc_register_branch_with_a_non_string_value_is_400)
{
    tx_env env;
    env_start(&env, "tcc");
    trans_post(&env, "prepare", NULL, 200);
    json_t *body = register_body(&env, "01", "{}");
    json_object_set_new(body, "data", json_integer(5));
    json_t *reply = post(&env, "registerBranch", body, 400);
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(reply, "message")), "data"));
    json_decref(reply);
    json_t *q = query(&env); /* nothing was registered */
    ck_assert_uint_eq(json_array_size(json_object_get(q, "branches")), 0);
    json_decref(q);
    env_stop(&env);
}
END_TEST

START_TEST(tcc_register_branch_on_unknown_gid_is_409)
{
    tx_env env;
    env_start(&env, "tcc");
    char data[64];
    json_t *reply = post(&env, "registerBranch", register_body(&env, "01", branch_data(data, sizeof(data), 1)), 409);
    ck_assert_str_eq(json_string_value(json_object_get(reply, "dtm_result")), "FAILURE");
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(reply, "message")), env.e.gid));
    json_decref(reply);
    json_t *q = query(&env); /* nothing was created */
    ck_assert(json_is_null(json_object_get(q, "transaction")));
    ck_assert_uint_eq(json_array_size(json_object_get(q, "branches")), 0);
    json_decref(q);
    env_stop(&env);
}
END_TEST

START_TEST(tcc_register_branch_after_submit_is_409_with_a_message)
{
    tx_env env;
    env_start(&env, "tcc");
    prepare_with_branches(&env, 1);
    trans_post(&env, "submit", json_pack("{s:b}", "wait_result", 1), 200);
    char data[64];
    json_t *reply = post(&env, "registerBranch", register_body(&env, "02", branch_data(data, sizeof(data), 2)), 409);
    ck_assert_str_eq(json_string_value(json_object_get(reply, "dtm_result")), "FAILURE");
    const char *msg = json_string_value(json_object_get(reply, "message"));
    ck_assert_ptr_nonnull(msg);
    ck_assert_ptr_nonnull(strstr(msg, env.e.gid));
    ck_assert_ptr_nonnull(strstr(msg, "prepared"));
    json_decref(reply);
    json_t *q = query(&env);
    ck_assert_uint_eq(json_array_size(json_object_get(q, "branches")), 2); /* 01's rows only */
    json_decref(q);
    const char *const want[] = {"01"};
    expect_phase2(&env, CONFIRM_PATH, "confirm", want, NULL, 1);
    env_stop(&env);
}
END_TEST

START_TEST(tcc_second_submit_is_accepted_and_confirms_nothing_twice)
{
    tx_env env;
    env_start(&env, "tcc");
    prepare_with_branches(&env, 2);
    busi_rule(env.e.svc, CONFIRM_PATH, env.e.gid, "confirm", 200, NULL, 1000, 1); /* 02 is slow */
    trans_post(&env, "submit", NULL, 200);
    ck_assert_int_eq(busi_wait(env.e.svc, CONFIRM_PATH, env.e.gid, "confirm", 1, 10000), 1);
    trans_post(&env, "submit", NULL, 200); /* while 02's confirm is in flight */
    e2e_wait_status(&env.e.dtmq, env.e.gid, "succeed", 20);
    sleep(2); /* room for a duplicate pass to show up */
    const char *const want[] = {"02", "01"};
    expect_phase2(&env, CONFIRM_PATH, "confirm", want, NULL, 2);
    /* DTM: submit of a finished transaction → 409 "current status 'succeed', cannot sumbmit" */
    json_t *reply = post(&env, "submit", trans_body(&env, NULL), 409);
    ck_assert_str_eq(json_string_value(json_object_get(reply, "dtm_result")), "FAILURE");
    json_decref(reply);
    expect_phase2(&env, CONFIRM_PATH, "confirm", want, NULL, 2);
    env_stop(&env);
}
END_TEST

START_TEST(tcc_abort_of_a_succeeded_transaction_is_409)
{
    tx_env env;
    env_start(&env, "tcc");
    prepare_with_branches(&env, 2);
    trans_post(&env, "submit", json_pack("{s:b}", "wait_result", 1), 200);
    json_t *reply = post(&env, "abort", trans_body(&env, json_pack("{s:s}", "rollback_reason", "too late")), 409);
    ck_assert_str_eq(json_string_value(json_object_get(reply, "dtm_result")), "FAILURE");
    json_decref(reply);
    sleep(1);
    char st[32], reason[64];
    ck_assert_str_eq(e2e_status(&env.e.dtmq, env.e.gid, st, sizeof(st)), "succeed");
    ck_assert_str_eq(trans_field(&env, "rollback_reason", reason, sizeof(reason)), "");
    ck_assert_int_eq(busi_count(env.e.svc, CANCEL_PATH, NULL, NULL), 0);
    env_stop(&env);
}
END_TEST

START_TEST(tcc_wait_result_submit_answers_after_the_confirms)
{
    tx_env env;
    env_start(&env, "tcc");
    prepare_with_branches(&env, 2);
    busi_rule(env.e.svc, CONFIRM_PATH, env.e.gid, "confirm", 200, NULL, 400, -1);
    long long t0 = test_wall_ms();
    json_t *reply = post(&env, "submit", trans_body(&env, json_pack("{s:b}", "wait_result", 1)), 200);
    long long t1 = test_wall_ms();
    ck_assert_str_eq(json_string_value(json_object_get(reply, "dtm_result")), "SUCCESS");
    json_decref(reply);
    /* both confirms (400 ms each, one after the other) ran before the answer */
    ck_assert_int_eq(busi_count(env.e.svc, CONFIRM_PATH, env.e.gid, "confirm"), 2);
    ck_assert_int_ge(t1 - t0, 800);
    char st[32];
    ck_assert_str_eq(e2e_status(&env.e.dtmq, env.e.gid, st, sizeof(st)), "succeed");
    const char *const want[] = {"02", "01"};
    expect_phase2(&env, CONFIRM_PATH, "confirm", want, NULL, 2);
    env_stop(&env);
}
END_TEST

START_TEST(tcc_survives_kill_9_while_a_confirm_is_in_flight)
{
    tx_env env;
    env_start(&env, "tcc");
    prepare_with_branches(&env, 3);
    busi_rule(env.e.svc, CONFIRM_PATH, env.e.gid, "confirm", 200, NULL, 3000, 1); /* 03, slow once */
    trans_post(&env, "submit", NULL, 200);
    ck_assert_int_eq(busi_wait(env.e.svc, CONFIRM_PATH, env.e.gid, "confirm", 1, 10000), 1);
    ck_assert_int_eq(dtmq_stop(&env.e.dtmq, SIGKILL, 10), 128 + SIGKILL);
    char st[32];
    e2e_start(&env.e.dtmq, env.e.store, NULL); /* same store: resumes once the lease runs out */
    ck_assert_str_eq(e2e_status(&env.e.dtmq, env.e.gid, st, sizeof(st)), "submitted");
    e2e_wait_status(&env.e.dtmq, env.e.gid, "succeed", 40);
    /* 03 may be confirmed again (its answer was lost with the process); the rest once, in order */
    ck_assert_int_ge(count_branch(env.e.svc, CONFIRM_PATH, "03"), 2);
    ck_assert_int_eq(count_branch(env.e.svc, CONFIRM_PATH, "02"), 1);
    ck_assert_int_eq(count_branch(env.e.svc, CONFIRM_PATH, "01"), 1);
    ck_assert_int_eq(busi_count(env.e.svc, CANCEL_PATH, NULL, NULL), 0);
    busi_call *calls;
    size_t n = busi_calls(env.e.svc, &calls);
    ck_assert_str_eq(calls[n - 1].branch_id, "01");
    ck_assert_str_eq(calls[n - 2].branch_id, "02");
    busi_calls_free(calls, n);
    env_stop(&env);
}
END_TEST

/* ---- XA ------------------------------------------------------------------- */

/* prepare and two XA branches: 01 with no data, 02 with data. */
static const char *const XA_BIDS[] = {"01", "02"};
static const char *const XA_BODIES[] = {"", "{\"amount\":20}"};

static void xa_prepare_two(const tx_env *env)
{
    trans_post(env, "prepare", NULL, 200);
    for (int i = 0; i < 2; i++)
        register_branch(env, XA_BIDS[i], XA_BODIES[i], 200);
}

START_TEST(xa_submit_commits_forward_always_with_post)
{
    tx_env env;
    env_start(&env, "xa");
    xa_prepare_two(&env);
    trans_post(&env, "submit", NULL, 200);
    e2e_wait_status(&env.e.dtmq, env.e.gid, "succeed", 20);
    expect_phase2(&env, XA_PATH, "commit", XA_BIDS, XA_BODIES, 2); /* POST even with no data */
    ck_assert_int_eq(busi_count(env.e.svc, XA_PATH, NULL, "rollback"), 0);
    json_t *q = query(&env);
    json_t *branches = json_object_get(q, "branches"), *b;
    size_t i;
    ck_assert_uint_eq(json_array_size(branches), 4);
    json_array_foreach(branches, i, b) {
        ck_assert_str_eq(json_string_value(json_object_get(b, "op")), i % 2 == 0 ? "rollback" : "commit");
        ck_assert_str_eq(json_string_value(json_object_get(b, "status")), i % 2 == 0 ? "prepared" : "succeed");
    }
    json_decref(q);
    env_stop(&env);
}
END_TEST

START_TEST(xa_abort_rolls_back_forward)
{
    tx_env env;
    env_start(&env, "xa");
    xa_prepare_two(&env);
    trans_post(&env, "abort", json_pack("{s:s}", "rollback_reason", "xa branch 02 failed"), 200);
    e2e_wait_status(&env.e.dtmq, env.e.gid, "failed", 20);
    expect_phase2(&env, XA_PATH, "rollback", XA_BIDS, XA_BODIES, 2);
    ck_assert_int_eq(busi_count(env.e.svc, XA_PATH, NULL, "commit"), 0);
    char reason[256];
    ck_assert_str_eq(trans_field(&env, "rollback_reason", reason, sizeof(reason)), "xa branch 02 failed");
    env_stop(&env);
}
END_TEST

START_TEST(tcc_confirm_ongoing_is_asked_again)
{
    tx_env env;
    env_start(&env, "tcc");
    prepare_with_branches(&env, 2);
    busi_rule(env.e.svc, CONFIRM_PATH, env.e.gid, "confirm", 425, NULL, 0, 2); /* ONGOING twice */
    trans_post(&env, "submit", NULL, 200);
    e2e_wait_status(&env.e.dtmq, env.e.gid, "succeed", 30);
    ck_assert_int_eq(count_branch(env.e.svc, CONFIRM_PATH, "02"), 3);
    ck_assert_int_eq(count_branch(env.e.svc, CONFIRM_PATH, "01"), 1);
    ck_assert_int_eq(busi_count(env.e.svc, CANCEL_PATH, NULL, NULL), 0);
    env_stop(&env);
}
END_TEST

START_TEST(xa_prepared_never_submitted_rolls_back_after_the_timeout)
{
    tx_env env;
    env_start(&env, "xa");
    xa_prepare_two(&env);
    ck_assert_int_eq(busi_wait(env.e.svc, XA_PATH, env.e.gid, "rollback", 1, 1500), 0);
    e2e_wait_status(&env.e.dtmq, env.e.gid, "failed", 20);
    expect_phase2(&env, XA_PATH, "rollback", XA_BIDS, XA_BODIES, 2);
    ck_assert_int_eq(busi_count(env.e.svc, XA_PATH, NULL, "commit"), 0);
    char reason[256];
    ck_assert_ptr_nonnull(strstr(trans_field(&env, "rollback_reason", reason, sizeof(reason)), "Timeout"));
    env_stop(&env);
}
END_TEST

START_TEST(xa_commit_ongoing_is_asked_again)
{
    tx_env env;
    env_start(&env, "xa");
    xa_prepare_two(&env);
    busi_rule(env.e.svc, XA_PATH, env.e.gid, "commit", 425, NULL, 0, 1);
    trans_post(&env, "submit", NULL, 200);
    e2e_wait_status(&env.e.dtmq, env.e.gid, "succeed", 30);
    ck_assert_int_eq(busi_count(env.e.svc, XA_PATH, env.e.gid, "commit"), 3); /* 01 twice, 02 once */
    env_stop(&env);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tcc_xa");
    test_group g = {.suite = s, .timeout_s = 90};
    test_add(&g, tcc_submit_confirms_in_reverse_registration_order);
    test_add(&g, tcc_abort_cancels_in_reverse_and_keeps_the_reason);
    test_add(&g, tcc_prepared_never_submitted_is_cancelled_after_the_timeout);
    test_add(&g, tcc_confirm_error_is_retried_until_success);
    test_add(&g, tcc_confirm_failure_is_retried_not_rolled_back);
    test_add(&g, tcc_registering_the_same_branch_again_is_a_no_op);
    test_add(&g, tcc_register_branch_on_unknown_gid_is_409);
    test_add(&g, tcc_register_branch_with_a_non_string_value_is_400);
    test_add(&g, tcc_register_branch_after_submit_is_409_with_a_message);
    test_add(&g, tcc_second_submit_is_accepted_and_confirms_nothing_twice);
    test_add(&g, tcc_abort_of_a_succeeded_transaction_is_409);
    test_add(&g, tcc_wait_result_submit_answers_after_the_confirms);
    test_add(&g, tcc_survives_kill_9_while_a_confirm_is_in_flight);
    test_add(&g, xa_submit_commits_forward_always_with_post);
    test_add(&g, xa_abort_rolls_back_forward);
    test_add(&g, tcc_confirm_ongoing_is_asked_again);
    test_add(&g, xa_prepared_never_submitted_rolls_back_after_the_timeout);
    test_add(&g, xa_commit_ongoing_is_asked_again);
    return run_suite(s);
}
