/*
 * test_msg.c — 2-phase messages (DTM msg) end to end: real dtmq
 * (build/asan/dtmq) on the store named by DTMQ_TEST_STORE_KIND, calling a
 * recording business service (tests/lib/busi.c) over HTTP.
 *
 * Client flow: prepare (with query_prepared) → local transaction → submit, or
 * submit directly. Covered: actions delivered in order with DTM's query
 * parameters, concurrent delivery, errors and FAILURE retried (never rolled
 * back), custom_data delay, the check-back of a msg whose submit never came
 * (SUCCESS / FAILURE / ONGOING, and FAILURE in a 200 body), abort, topic
 * fan-out, bad input, a small check-back matrix, and a kill -9 while an
 * action is in flight.
 */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "busi.h"
#include "e2e_env.h"
#include "testlib.h"

#define QUERY_PREPARED "/api/QueryPrepared"

typedef e2e_env msg_env;

/* busi's URL for path, in buf. */
static const char *svc_url(const msg_env *env, const char *path, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s", busi_url(env->svc), path);
    return buf;
}

/*
 * A msg body for gid with n steps /api/Msg<i> (payload {"amount":10*i}) and
 * query_prepared /api/QueryPrepared. extra (may be NULL, consumed) is merged
 * in; a key set to null in extra is removed from the body.
 */
static char *msg_body(const msg_env *env, const char *gid, int n, json_t *extra)
{
    json_t *steps = json_array(), *payloads = json_array();
    char url[256];
    for (int i = 1; i <= n; i++) {
        char path[64], payload[64];
        snprintf(path, sizeof(path), "/api/Msg%d", i);
        snprintf(payload, sizeof(payload), "{\"amount\":%d}", 10 * i);
        json_array_append_new(steps, json_pack("{s:s}", "action", svc_url(env, path, url, sizeof(url))));
        json_array_append_new(payloads, json_string(payload));
    }
    json_t *body = json_pack("{s:s, s:s, s:s, s:o, s:o}", "gid", gid, "trans_type", "msg",
                             "query_prepared", svc_url(env, QUERY_PREPARED, url, sizeof(url)),
                             "steps", steps, "payloads", payloads);
    if (extra) {
        json_object_update(body, extra);
        json_decref(extra);
        const char *key;
        json_t *value;
        void *tmp;
        json_object_foreach_safe(body, tmp, key, value)
            if (json_is_null(value))
                json_object_del(body, key);
    }
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return text;
}

/* Prepares gid with n steps (extra as msg_body); asserts 200. */
static void prepare(const msg_env *env, const char *gid, int n, json_t *extra)
{
    char *body = msg_body(env, gid, n, extra);
    e2e_post_expect(&env->dtmq, "prepare", body, 200);
    free(body);
}

/* Submits gid or aborts it the way DTM's client does after prepare: {gid, trans_type}. */
static void finish(const msg_env *env, const char *route, const char *gid, int want_status)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"gid\":\"%s\",\"trans_type\":\"msg\"}", gid);
    e2e_post_expect(&env->dtmq, route, body, want_status);
}

/* POSTs body to route; asserts the status and that the message contains needle. */
static void post_rejected(const msg_env *env, const char *route, const char *body, int want_status,
                          const char *needle)
{
    char path[128];
    snprintf(path, sizeof(path), "/api/dtmsvr/%s", route);
    int status = 0;
    json_t *j = e2e_call(&env->dtmq, "POST", path, body, &status);
    const char *msg = json_string_value(json_object_get(j, "message"));
    ck_assert_msg(status == want_status, "POST %s: want %d, got %d (%s)", route, want_status, status,
                  msg ? msg : "no message");
    ck_assert_msg(msg != NULL && strstr(msg, needle) != NULL, "POST %s: message '%s' should name '%s'",
                  route, msg ? msg : "(none)", needle);
    json_decref(j);
}

/* /query of gid (caller decrefs). */
static json_t *query(const msg_env *env, const char *gid)
{
    char path[256];
    snprintf(path, sizeof(path), "/api/dtmsvr/query?gid=%s", gid);
    int status = 0;
    json_t *j = e2e_call(&env->dtmq, "GET", path, NULL, &status);
    ck_assert_int_eq(status, 200);
    ck_assert_ptr_nonnull(j);
    return j;
}

static void assert_not_stored(const msg_env *env, const char *gid)
{
    json_t *q = query(env, gid);
    ck_assert_msg(json_is_null(json_object_get(q, "transaction")), "gid %s should not be stored", gid);
    ck_assert_uint_eq(json_array_size(json_object_get(q, "branches")), 0);
    json_decref(q);
}

static void assert_status(const msg_env *env, const char *gid, const char *want)
{
    char st[32];
    ck_assert_str_eq(e2e_status(&env->dtmq, gid, st, sizeof(st)), want);
}

static int qp_count(const msg_env *env, const char *gid)
{
    return busi_count(env->svc, QUERY_PREPARED, gid, NULL);
}

/* Asserts call c is branch branch_id's action of env->gid, by method. */
static void assert_action(const msg_env *env, const busi_call *c, const char *path,
                          const char *branch_id, const char *method, const char *body)
{
    ck_assert_str_eq(c->path, path);
    ck_assert_str_eq(c->gid, env->gid);
    ck_assert_str_eq(c->trans_type, "msg");
    ck_assert_str_eq(c->op, "action");
    ck_assert_str_eq(c->branch_id, branch_id);
    ck_assert_str_eq(c->method, method);
    ck_assert_str_eq(c->body, body);
}

/* ---- delivery ------------------------------------------------------------ */

START_TEST(msg_prepare_then_submit_delivers_actions_in_order)
{
    msg_env env;
    e2e_env_start(&env, true, "msg", NULL);
    /* step 2 has an empty payload: DTM calls it with GET */
    json_t *extra = json_pack("{s:[s,s]}", "payloads", "{\"amount\":10}", "");
    char *body = msg_body(&env, env.gid, 2, json_deep_copy(extra));
    e2e_post_expect(&env.dtmq, "prepare", body, 200);
    e2e_post_expect(&env.dtmq, "prepare", body, 200); /* re-prepare of a prepared gid: no-op */
    assert_status(&env, env.gid, "prepared");
    ck_assert_int_eq(busi_count(env.svc, NULL, NULL, NULL), 0); /* nothing before submit */

    /* DTM's client submits the same body again, with wait_result here */
    json_object_set_new(extra, "wait_result", json_true());
    char *submit_body = msg_body(&env, env.gid, 2, extra);
    e2e_post_expect(&env.dtmq, "submit", submit_body, 200);
    assert_status(&env, env.gid, "succeed");

    busi_call *calls;
    size_t n = busi_calls(env.svc, &calls);
    ck_assert_uint_eq(n, 2);
    assert_action(&env, &calls[0], "/api/Msg1", "01", "POST", "{\"amount\":10}");
    assert_action(&env, &calls[1], "/api/Msg2", "02", "GET", "");
    ck_assert_ptr_nonnull(strstr(calls[0].headers, "application/json"));
    busi_calls_free(calls, n);
    ck_assert_int_eq(qp_count(&env, NULL), 0); /* submitted in time: never asked back */

    json_t *q = query(&env, env.gid);
    json_t *branches = json_object_get(q, "branches");
    ck_assert_uint_eq(json_array_size(branches), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *b = json_array_get(branches, i);
        ck_assert_str_eq(json_string_value(json_object_get(b, "op")), "action");
        ck_assert_str_eq(json_string_value(json_object_get(b, "status")), "succeed");
    }
    json_decref(q);
    finish(&env, "submit", env.gid, 409); /* finished: cannot submit again */
    e2e_post_expect(&env.dtmq, "prepare", body, 409); /* nor prepare */
    free(body);
    free(submit_body);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(msg_submit_without_prepare_delivers)
{
    msg_env env;
    e2e_env_start(&env, true, "msg", NULL);
    char *body = msg_body(&env, env.gid, 3, json_pack("{s:n}", "query_prepared"));
    e2e_post_expect(&env.dtmq, "submit", body, 200);
    e2e_wait_status(&env.dtmq, env.gid, "succeed", 20);
    busi_call *calls;
    size_t n = busi_calls(env.svc, &calls);
    ck_assert_uint_eq(n, 3);
    assert_action(&env, &calls[0], "/api/Msg1", "01", "POST", "{\"amount\":10}");
    assert_action(&env, &calls[1], "/api/Msg2", "02", "POST", "{\"amount\":20}");
    assert_action(&env, &calls[2], "/api/Msg3", "03", "POST", "{\"amount\":30}");
    busi_calls_free(calls, n);
    free(body);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(msg_concurrent_actions_go_out_at_once)
{
    msg_env env;
    e2e_env_start(&env, true, "msg", NULL);
    for (int i = 1; i <= 3; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/api/Msg%d", i);
        busi_rule(env.svc, path, NULL, NULL, 200, NULL, 600, 1); /* slow: in order they'd be 600 ms apart */
    }
    char *body = msg_body(&env, env.gid, 3, json_pack("{s:b}", "concurrent", 1));
    e2e_post_expect(&env.dtmq, "submit", body, 200);
    e2e_wait_status(&env.dtmq, env.gid, "succeed", 20);
    busi_call *calls;
    size_t n = busi_calls(env.svc, &calls);
    ck_assert_uint_eq(n, 3);
    long long spread = calls[2].time_ms - calls[0].time_ms;
    ck_assert_msg(spread < 300, "concurrent actions should go out together, spread %lld ms", spread);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(calls[i].op, "action");
    busi_calls_free(calls, n);
    free(body);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(msg_action_error_is_retried_until_success)
{
    msg_env env;
    e2e_env_start(&env, true, "msg", NULL);
    busi_rule(env.svc, "/api/Msg1", NULL, NULL, 500, NULL, 0, 1);
    char *body = msg_body(&env, env.gid, 2, NULL);
    e2e_post_expect(&env.dtmq, "submit", body, 200);
    e2e_wait_status(&env.dtmq, env.gid, "succeed", 20);
    ck_assert_int_eq(busi_count(env.svc, "/api/Msg1", env.gid, "action"), 2);
    ck_assert_int_eq(busi_count(env.svc, "/api/Msg2", env.gid, "action"), 1);
    busi_call *calls;
    size_t n = busi_calls(env.svc, &calls);
    ck_assert_str_eq(calls[0].path, "/api/Msg1"); /* in order: Msg2 only after Msg1 succeeded */
    ck_assert_str_eq(calls[1].path, "/api/Msg1");
    ck_assert_str_eq(calls[2].path, "/api/Msg2");
    busi_calls_free(calls, n);
    free(body);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(msg_action_failure_is_retried_never_rolled_back)
{
    msg_env env;
    e2e_env_start(&env, true, "msg", NULL);
    busi_rule(env.svc, "/api/Msg1", NULL, NULL, 409, NULL, 0, 1);
    char *body = msg_body(&env, env.gid, 1, NULL);
    e2e_post_expect(&env.dtmq, "submit", body, 200);
    ck_assert_int_eq(busi_wait(env.svc, "/api/Msg1", NULL, NULL, 1, 10000), 1);
    char st[32];
    e2e_status(&env.dtmq, env.gid, st, sizeof(st));
    ck_assert_msg(strcmp(st, "submitted") == 0 || strcmp(st, "succeed") == 0,
                  "a committed msg must not fail or abort on FAILURE, status %s", st);
    e2e_wait_status(&env.dtmq, env.gid, "succeed", 20);
    ck_assert_int_eq(busi_count(env.svc, "/api/Msg1", env.gid, "action"), 2);
    ck_assert_int_eq(busi_count(env.svc, NULL, NULL, NULL), 2); /* nothing else: no compensation */
    free(body);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(msg_delay_holds_actions_back)
{
    msg_env env;
    e2e_env_start(&env, true, "msg", NULL);
    char *body = msg_body(&env, env.gid, 1, json_pack("{s:s}", "custom_data", "{\"delay\":2}"));
    long long t0 = test_wall_ms();
    e2e_post_expect(&env.dtmq, "submit", body, 200);
    assert_status(&env, env.gid, "submitted");
    ck_assert_int_eq(busi_wait(env.svc, "/api/Msg1", NULL, NULL, 1, 10000), 1);
    e2e_wait_status(&env.dtmq, env.gid, "succeed", 10);
    busi_call *calls;
    size_t n = busi_calls(env.svc, &calls);
    ck_assert_uint_eq(n, 1);
    ck_assert_msg(calls[0].time_ms - t0 >= 2000, "action %lld ms after submit, before the 2 s delay",
                  calls[0].time_ms - t0);
    busi_calls_free(calls, n);
    free(body);
    e2e_env_stop(&env);
}
END_TEST

/* DTM's clients send a prepared msg's delay with the submit, not the prepare. */
START_TEST(msg_delay_given_at_submit_of_a_prepared_msg_holds_actions_back)
{
    msg_env env;
    e2e_env_start(&env, true, "msg", NULL);
    prepare(&env, env.gid, 1, NULL);
    char body[256];
    snprintf(body, sizeof(body), "{\"gid\":\"%s\",\"trans_type\":\"msg\",\"custom_data\":\"{\\\"delay\\\":2}\"}",
             env.gid);
    long long t0 = test_wall_ms();
    e2e_post_expect(&env.dtmq, "submit", body, 200);
    ck_assert_int_eq(busi_wait(env.svc, "/api/Msg1", NULL, NULL, 1, 10000), 1);
    busi_call *calls;
    size_t n = busi_calls(env.svc, &calls);
    ck_assert_uint_ge(n, 1);
    ck_assert_msg(calls[n - 1].time_ms - t0 >= 1500, "action %lld ms after submit, before the delay",
                  calls[n - 1].time_ms - t0);
    busi_calls_free(calls, n);
    e2e_env_stop(&env);
}
END_TEST

/* ---- check-back (query_prepared) ------------------------------------------- */

START_TEST(msg_unsubmitted_is_checked_back_and_committed_on_success)
{
    msg_env env;
    e2e_env_start(&env, true, "msg", NULL);
    long long t0 = test_wall_ms();
    prepare(&env, env.gid, 2, NULL);
    ck_assert_int_eq(busi_wait(env.svc, QUERY_PREPARED, NULL, NULL, 1, 15000), 1);
    e2e_wait_status(&env.dtmq, env.gid, "succeed", 15);

    busi_call *calls;
    size_t n = busi_calls(env.svc, &calls);
    ck_assert_uint_eq(n, 3);
    const busi_call *qp = &calls[0];
    ck_assert_str_eq(qp->path, QUERY_PREPARED);
    ck_assert_str_eq(qp->method, "GET");
    ck_assert_str_eq(qp->gid, env.gid);
    ck_assert_str_eq(qp->trans_type, "msg");
    ck_assert_str_eq(qp->branch_id, "00");
    ck_assert_str_eq(qp->op, "msg");
    ck_assert_str_eq(qp->body, "");
    ck_assert_msg(qp->time_ms - t0 >= 3000, "query_prepared %lld ms after prepare, before TimeoutToFail",
                  qp->time_ms - t0);
    assert_action(&env, &calls[1], "/api/Msg1", "01", "POST", "{\"amount\":10}");
    assert_action(&env, &calls[2], "/api/Msg2", "02", "POST", "{\"amount\":20}");
    busi_calls_free(calls, n);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(msg_check_back_failure_fails_without_any_action)
{
    msg_env env;
    e2e_env_start(&env, true, "msg", NULL);
    busi_rule(env.svc, QUERY_PREPARED, NULL, NULL, 409, NULL, 0, -1);
    prepare(&env, env.gid, 2, NULL);
    e2e_wait_status(&env.dtmq, env.gid, "failed", 15);
    ck_assert_int_eq(qp_count(&env, env.gid), 1);
    ck_assert_int_eq(busi_wait(env.svc, "/api/Msg1", NULL, NULL, 1, 1500), 0);
    ck_assert_int_eq(busi_count(env.svc, "/api/Msg2", NULL, NULL), 0);
    finish(&env, "submit", env.gid, 409); /* too late */
    e2e_env_stop(&env);
}
END_TEST

START_TEST(msg_check_back_ongoing_asks_again_later)
{
    msg_env env;
    e2e_env_start(&env, true, "msg", NULL);
    busi_rule(env.svc, QUERY_PREPARED, NULL, NULL, 425, NULL, 0, -1);
    prepare(&env, env.gid, 1, NULL);
    ck_assert_int_ge(busi_wait(env.svc, QUERY_PREPARED, NULL, NULL, 2, 20000), 2);
    assert_status(&env, env.gid, "prepared");
    ck_assert_int_eq(busi_count(env.svc, "/api/Msg1", NULL, NULL), 0);
    int asked = qp_count(&env, env.gid);
    busi_clear_rules(env.svc); /* the local transaction committed meanwhile */
    e2e_wait_status(&env.dtmq, env.gid, "succeed", 20);
    ck_assert_int_gt(qp_count(&env, env.gid), asked);
    ck_assert_int_eq(busi_count(env.svc, "/api/Msg1", env.gid, "action"), 1);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(msg_abort_of_prepared_fails_without_calls)
{
    msg_env env;
    e2e_env_start(&env, true, "msg", NULL);
    prepare(&env, env.gid, 2, NULL);
    finish(&env, "abort", env.gid, 200);
    assert_status(&env, env.gid, "failed");
    /* past the 3 s timeout: still nobody is asked or called */
    ck_assert_int_eq(busi_wait(env.svc, NULL, NULL, NULL, 1, 4500), 0);
    finish(&env, "submit", env.gid, 409);
    finish(&env, "abort", env.gid, 409);
    assert_status(&env, env.gid, "failed");
    ck_assert_int_eq(busi_count(env.svc, NULL, NULL, NULL), 0);

    /* DTM: only a prepared msg can be aborted */
    char gid[64];
    e2e_gid(gid, sizeof(gid), "msgsub");
    char *body = msg_body(&env, gid, 1, NULL);
    e2e_post_expect(&env.dtmq, "submit", body, 200);
    finish(&env, "abort", gid, 409);
    e2e_wait_status(&env.dtmq, gid, "succeed", 20);
    finish(&env, "abort", gid, 409);
    free(body);
    e2e_env_stop(&env);
}
END_TEST

/*
 * Seven prepared msgs: query_prepared answers A 200, B 409, C 425 then 200,
 * D 200, G 200 with a FAILURE body (DTM reads the body too); E is submitted
 * and F aborted before their timeout. Exactly A, C, D, E are delivered; E and
 * F are never asked back.
 */
START_TEST(msg_check_back_matrix)
{
    msg_env env;
    e2e_env_start(&env, true, "msg", NULL);
    enum { N = 7 };
    char gids[N][64];
    const char *deliver = "/api/Deliver";
    char url[256];
    svc_url(&env, deliver, url, sizeof(url));
    for (int i = 0; i < N; i++) {
        char prefix[16];
        snprintf(prefix, sizeof(prefix), "mx%c", 'a' + i);
        e2e_gid(gids[i], sizeof(gids[i]), prefix);
    }
    busi_rule(env.svc, QUERY_PREPARED, gids[1], NULL, 409, NULL, 0, -1);
    busi_rule(env.svc, QUERY_PREPARED, gids[2], NULL, 425, NULL, 0, 1);
    busi_rule(env.svc, QUERY_PREPARED, gids[6], NULL, 200, "{\"dtm_result\":\"FAILURE\"}", 0, -1);
    for (int i = 0; i < N; i++)
        prepare(&env, gids[i], 1, json_pack("{s:[{s:s}], s:[s]}", "steps", "action", url, "payloads", gids[i]));
    finish(&env, "submit", gids[4], 200);
    finish(&env, "abort", gids[5], 200);

    const char *want[N] = {"succeed", "failed", "succeed", "succeed", "succeed", "failed", "failed"};
    for (int i = 0; i < N; i++)
        e2e_wait_status(&env.dtmq, gids[i], want[i], 20);
    busi_wait(env.svc, QUERY_PREPARED, gids[4], NULL, 1, 1000); /* would E or F be asked late? */

    const int delivered[N] = {1, 0, 1, 1, 1, 0, 0};
    for (int i = 0; i < N; i++)
        ck_assert_msg(busi_count(env.svc, deliver, gids[i], "action") == delivered[i],
                      "msg %c delivered %d times, want %d", 'A' + i,
                      busi_count(env.svc, deliver, gids[i], "action"), delivered[i]);
    ck_assert_int_eq(qp_count(&env, gids[0]), 1);
    ck_assert_int_eq(qp_count(&env, gids[1]), 1);
    ck_assert_int_ge(qp_count(&env, gids[2]), 2);
    ck_assert_int_eq(qp_count(&env, gids[3]), 1);
    ck_assert_int_eq(qp_count(&env, gids[4]), 0);
    ck_assert_int_eq(qp_count(&env, gids[5]), 0);
    ck_assert_int_eq(qp_count(&env, gids[6]), 1);

    busi_call *calls;
    size_t n = busi_calls(env.svc, &calls);
    for (size_t i = 0; i < n; i++)
        if (strcmp(calls[i].path, deliver) == 0)
            ck_assert_str_eq(calls[i].body, calls[i].gid); /* each msg got its own payload */
    busi_calls_free(calls, n);
    e2e_env_stop(&env);
}
END_TEST

/* ---- topics and bad input ------------------------------------------------ */

/* Percent-encodes s for a query string. */
static void url_escape(const char *s, char *out, size_t len)
{
    size_t o = 0;
    for (; *s && o + 4 < len; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-_.~", c))
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, len - o, "%%%02X", c);
    }
    out[o] = '\0';
}

/* GET or POST /api/dtmsvr/subscribe?topic=..&url=<busi path, percent-encoded>&remark=..;
 * asserts 200. */
static void subscribe(const msg_env *env, const char *method, const char *topic, const char *path,
                      const char *remark)
{
    char url[256], escaped[768], route[1024];
    url_escape(svc_url(env, path, url, sizeof(url)), escaped, sizeof(escaped));
    snprintf(route, sizeof(route), "/api/dtmsvr/subscribe?topic=%s&url=%s&remark=%s", topic, escaped,
             remark);
    int status = 0;
    json_t *j = e2e_call(&env->dtmq, method, route, strcmp(method, "POST") == 0 ? "" : NULL, &status);
    ck_assert_msg(status == 200, "%s %s: %d", method, route, status);
    json_decref(j);
}

START_TEST(msg_topic_fans_out_to_every_subscriber)
{
    msg_env env;
    e2e_env_start(&env, true, "msg", NULL);
    subscribe(&env, "GET", "orders", "/api/SubA", "first");
    subscribe(&env, "POST", "orders", "/api/SubB?tenant=7", "second"); /* its own query string */
    char *body = msg_body(&env, env.gid, 1,
                          json_pack("{s:[{s:s}], s:[s]}", "steps", "action", "topic://orders",
                                    "payloads", "{\"order\":7}"));
    e2e_post_expect(&env.dtmq, "prepare", body, 200);
    finish(&env, "submit", env.gid, 200);
    e2e_wait_status(&env.dtmq, env.gid, "succeed", 20);

    busi_call *calls;
    size_t n = busi_calls(env.svc, &calls);
    ck_assert_uint_eq(n, 2);
    assert_action(&env, &calls[0], "/api/SubA", "01-01", "POST", "{\"order\":7}");
    assert_action(&env, &calls[1], "/api/SubB", "01-02", "POST", "{\"order\":7}");
    busi_calls_free(calls, n);
    free(body);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(msg_unknown_topic_and_missing_query_prepared_are_rejected)
{
    msg_env env;
    e2e_env_start(&env, true, "msg", NULL);
    char *body = msg_body(&env, env.gid, 1, json_pack("{s:[{s:s}]}", "steps", "action", "topic://nope"));
    post_rejected(&env, "submit", body, 400, "nope");
    post_rejected(&env, "prepare", body, 400, "nope");
    assert_not_stored(&env, env.gid);
    free(body);

    body = msg_body(&env, env.gid, 1, json_pack("{s:[{s:s}]}", "steps", "action", "topic://"));
    post_rejected(&env, "submit", body, 400, "topic://");
    assert_not_stored(&env, env.gid);
    free(body);

    body = msg_body(&env, env.gid, 1, json_pack("{s:n}", "query_prepared"));
    post_rejected(&env, "prepare", body, 400, "query_prepared");
    assert_not_stored(&env, env.gid);
    free(body);

    body = msg_body(&env, env.gid, 1, json_pack("{s:s}", "query_prepared", ""));
    post_rejected(&env, "prepare", body, 400, "query_prepared");
    assert_not_stored(&env, env.gid);
    free(body);

    ck_assert_int_eq(busi_count(env.svc, NULL, NULL, NULL), 0);
    int status;
    json_t *j = e2e_call(&env.dtmq, "GET", "/api/ping", NULL, &status);
    ck_assert_int_eq(status, 200);
    json_decref(j);
    e2e_env_stop(&env);
}
END_TEST

/* ---- crash ------------------------------------------------------------------ */

START_TEST(msg_survives_kill_9_with_an_action_in_flight)
{
    msg_env env;
    e2e_env_start(&env, true, "msg", NULL);
    busi_rule(env.svc, "/api/Msg1", NULL, NULL, 200, NULL, 1500, 1); /* slow once */
    prepare(&env, env.gid, 2, NULL);
    finish(&env, "submit", env.gid, 200);
    ck_assert_int_eq(busi_wait(env.svc, "/api/Msg1", NULL, NULL, 1, 10000), 1);
    ck_assert_int_eq(dtmq_stop(&env.dtmq, SIGKILL, 10), 128 + SIGKILL);
    e2e_start(&env.dtmq, env.store, NULL); /* same store: resumes after the lease */
    e2e_wait_status(&env.dtmq, env.gid, "succeed", 40);
    ck_assert_int_ge(busi_count(env.svc, "/api/Msg1", env.gid, "action"), 1);
    ck_assert_int_ge(busi_count(env.svc, "/api/Msg2", env.gid, "action"), 1);
    ck_assert_int_eq(qp_count(&env, NULL), 0); /* it was submitted: never asked back */
    e2e_env_stop(&env);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("msg");
    test_group g = {.suite = s, .timeout_s = 90};
    test_add(&g, msg_prepare_then_submit_delivers_actions_in_order);
    test_add(&g, msg_submit_without_prepare_delivers);
    test_add(&g, msg_concurrent_actions_go_out_at_once);
    test_add(&g, msg_action_error_is_retried_until_success);
    test_add(&g, msg_action_failure_is_retried_never_rolled_back);
    test_add(&g, msg_delay_holds_actions_back);
    test_add(&g, msg_delay_given_at_submit_of_a_prepared_msg_holds_actions_back);
    test_add(&g, msg_unsubmitted_is_checked_back_and_committed_on_success);
    test_add(&g, msg_check_back_failure_fails_without_any_action);
    test_add(&g, msg_check_back_ongoing_asks_again_later);
    test_add(&g, msg_abort_of_prepared_fails_without_calls);
    test_add(&g, msg_check_back_matrix);
    test_add(&g, msg_topic_fans_out_to_every_subscriber);
    test_add(&g, msg_unknown_topic_and_missing_query_prepared_are_rejected);
    test_add(&g, msg_survives_kill_9_with_an_action_in_flight);
    return run_suite(s);
}
