/*
 * test_api.c — DTM's black-box expectations of the HTTP API and dtmq's
 * answers to bad input, end to end: real dtmq (build/asan/dtmq) on the store
 * named by DTMQ_TEST_STORE_KIND, with a recording business service
 * (tests/lib/busi.c) where branches are needed.
 *
 * Covered: newGid's all-string body, query without / with an unknown gid,
 * /all cursor paging and filters, forceStop, resetNextCronTime,
 * resetCronTime, every kind of bad /submit (a 4xx naming the problem and
 * nothing stored), unknown keys tolerated, a second submit, registerBranch on
 * an unknown gid, the topic and KV routes, and a server that stays healthy.
 */
#include <check.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "busi.h"
#include "e2e_env.h"
#include "testlib.h"

typedef e2e_env api_env;

/* Calls dtmq (formatted path); asserts the status; returns the JSON body (caller decrefs). */
static json_t *call(const api_env *env, const char *method, const char *body, int want_status,
                    const char *path_fmt, ...) __attribute__((format(printf, 5, 6)));
static json_t *call(const api_env *env, const char *method, const char *body, int want_status,
                    const char *path_fmt, ...)
{
    char path[2048];
    va_list ap;
    va_start(ap, path_fmt);
    vsnprintf(path, sizeof(path), path_fmt, ap);
    va_end(ap);
    int status = 0;
    json_t *j = e2e_call(&env->dtmq, method, path, body, &status);
    char *dump = j ? json_dumps(j, JSON_COMPACT) : strdup("(not JSON)");
    ck_assert_msg(status == want_status, "%s %s: want %d, got %d %s", method, path, want_status,
                  status, dump);
    free(dump);
    return j;
}

/* Asserts j is {"message": "...needle..."} (a 4xx/5xx answer naming the problem). */
static void assert_message(json_t *j, const char *needle)
{
    const char *msg = json_string_value(json_object_get(j, "message"));
    ck_assert_msg(msg != NULL && msg[0] != '\0', "the error answer has no message");
    ck_assert_msg(strstr(msg, needle) != NULL, "message '%s' should name '%s'", msg, needle);
}

/* Calls and asserts an error status with a message naming needle. */
static void rejected(const api_env *env, const char *method, const char *path, const char *body,
                     int want_status, const char *needle)
{
    json_t *j = call(env, method, body, want_status, "%s", path);
    assert_message(j, needle);
    json_decref(j);
}

static json_t *query(const api_env *env, const char *gid)
{
    return call(env, "GET", NULL, 200, "/api/dtmsvr/query?gid=%s", gid);
}

static void assert_not_stored(const api_env *env, const char *gid)
{
    json_t *q = query(env, gid);
    ck_assert_msg(json_is_null(json_object_get(q, "transaction")), "gid %s should not be stored", gid);
    ck_assert_uint_eq(json_array_size(json_object_get(q, "branches")), 0);
    json_decref(q);
}

static void assert_status(const api_env *env, const char *gid, const char *want)
{
    char st[32];
    ck_assert_str_eq(e2e_status(&env->dtmq, gid, st, sizeof(st)), want);
}

static void assert_healthy(const api_env *env)
{
    json_t *j = call(env, "GET", NULL, 200, "/api/ping");
    ck_assert_str_eq(json_string_value(json_object_get(j, "msg")), "pong");
    json_decref(j);
}

/*
 * A saga body for gid with n steps /api/Step<i>{,Revert} (payload
 * {"amount":10*i}); urls 0 gives every step empty URLs (they succeed at
 * once). extra (may be NULL, consumed) is merged in.
 */
static char *saga_body(const api_env *env, const char *gid, int n, int urls, json_t *extra)
{
    json_t *steps = json_array(), *payloads = json_array();
    for (int i = 1; i <= n; i++) {
        char action[256] = "", comp[256] = "", payload[64];
        if (urls) {
            snprintf(action, sizeof(action), "%s/api/Step%d", busi_url(env->svc), i);
            snprintf(comp, sizeof(comp), "%s/api/Step%dRevert", busi_url(env->svc), i);
        }
        snprintf(payload, sizeof(payload), "{\"amount\":%d}", 10 * i);
        json_array_append_new(steps, json_pack("{s:s, s:s}", "action", action, "compensate", comp));
        json_array_append_new(payloads, json_string(payload));
    }
    json_t *body = json_pack("{s:s, s:s, s:o, s:o}", "gid", gid, "trans_type", "saga", "steps", steps,
                             "payloads", payloads);
    if (extra) {
        json_object_update(body, extra);
        json_decref(extra);
    }
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return text;
}

/* Submits a saga (as saga_body); asserts the status. */
static void submit_saga(const api_env *env, const char *gid, int n, int urls, json_t *extra,
                        int want_status)
{
    char *body = saga_body(env, gid, n, urls, extra);
    e2e_post_expect(&env->dtmq, "submit", body, want_status);
    free(body);
}

/* Waits until the transaction's ext_data.retry_count reaches n, i.e. a pass
 * that ended with an unknown result has scheduled its retry. */
static void wait_retry_count(const api_env *env, const char *gid, int n)
{
    for (int i = 0; i < 200; i++) {
        json_t *q = query(env, gid);
        const char *ext = json_string_value(json_object_get(json_object_get(q, "transaction"), "ext_data"));
        json_t *e = ext ? json_loads(ext, 0, NULL) : NULL;
        json_int_t count = json_integer_value(json_object_get(e, "retry_count"));
        json_decref(e);
        json_decref(q);
        if (count >= n)
            return;
        test_sleep_ms(50);
    }
    ck_abort_msg("gid %s: retry_count never reached %d", gid, n);
}

/* ---- read side --------------------------------------------------------------- */

START_TEST(api_new_gid_values_are_all_strings)
{
    api_env env;
    e2e_env_start(&env, true, "api", NULL);
    char first[128] = "";
    for (int i = 0; i < 3; i++) {
        json_t *j = call(&env, "GET", NULL, 200, "/api/dtmsvr/newGid");
        const char *key;
        json_t *value;
        json_object_foreach(j, key, value)
            ck_assert_msg(json_is_string(value), "newGid: '%s' is not a string", key);
        const char *gid = json_string_value(json_object_get(j, "gid"));
        ck_assert_ptr_nonnull(gid);
        ck_assert_uint_gt(strlen(gid), 0);
        ck_assert_str_eq(json_string_value(json_object_get(j, "dtm_result")), "SUCCESS");
        ck_assert_str_ne(gid, first);
        snprintf(first, sizeof(first), "%s", gid);
        json_decref(j);
    }
    e2e_env_stop(&env);
}
END_TEST

START_TEST(api_query_without_gid_and_of_an_unknown_gid)
{
    api_env env;
    e2e_env_start(&env, true, "api", NULL);
    rejected(&env, "GET", "/api/dtmsvr/query", NULL, 500, "gid");
    rejected(&env, "GET", "/api/dtmsvr/query?gid=", NULL, 500, "gid");
    json_t *q = query(&env, env.gid);
    ck_assert_uint_eq(json_object_size(q), 2);
    ck_assert(json_is_null(json_object_get(q, "transaction")));
    ck_assert(json_is_array(json_object_get(q, "branches")));
    ck_assert_uint_eq(json_array_size(json_object_get(q, "branches")), 0);
    json_decref(q);
    e2e_env_stop(&env);
}
END_TEST

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

/*
 * Pages through /all?limit=<limit>&<filter> until next_position is "";
 * returns {gid: times seen} (caller decrefs) and the page count in *pages.
 * Every page but the last must be full; the last must end with "".
 */
static json_t *page_all(const api_env *env, int limit, const char *filter, int *pages)
{
    json_t *seen = json_object();
    char position[512] = "";
    *pages = 0;
    for (;;) {
        char escaped[1536];
        url_escape(position, escaped, sizeof(escaped));
        json_t *j = call(env, "GET", NULL, 200, "/api/dtmsvr/all?limit=%d&position=%s%s%s", limit,
                         escaped, filter[0] ? "&" : "", filter);
        (*pages)++;
        ck_assert_int_lt(*pages, 50);
        json_t *items = json_object_get(j, "transactions");
        ck_assert(json_is_array(items));
        ck_assert_uint_le(json_array_size(items), (size_t)limit);
        size_t i;
        json_t *t;
        json_array_foreach(items, i, t) {
            const char *gid = json_string_value(json_object_get(t, "gid"));
            ck_assert_ptr_nonnull(gid);
            json_object_set_new(seen, gid,
                                json_integer(json_integer_value(json_object_get(seen, gid)) + 1));
        }
        const char *next = json_string_value(json_object_get(j, "next_position"));
        ck_assert_msg(next != NULL, "/all: next_position missing or not a string");
        int last = next[0] == '\0';
        if (!last)
            ck_assert_uint_eq(json_array_size(items), (size_t)limit);
        snprintf(position, sizeof(position), "%s", next);
        json_decref(j);
        if (last)
            return seen;
    }
}

/* Asserts seen holds exactly the gids of want (n of them), each once. */
static void assert_seen_once(json_t *seen, char (*want)[64], size_t n)
{
    ck_assert_uint_eq(json_object_size(seen), n);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(json_integer_value(json_object_get(seen, want[i])) == 1, "gid %s seen %lld times",
                      want[i], (long long)json_integer_value(json_object_get(seen, want[i])));
}

START_TEST(api_all_pages_and_filters)
{
    api_env env;
    e2e_env_start(&env, true, "api", NULL);
    enum { SAGAS = 25, MSGS = 2 };
    char sagas[SAGAS][64], msgs[MSGS][64];
    for (int i = 0; i < SAGAS; i++) {
        e2e_gid(sagas[i], sizeof(sagas[i]), "page");
        submit_saga(&env, sagas[i], 1, 0, json_pack("{s:b}", "wait_result", 1), 200);
    }
    test_sleep_ms(20);
    long long mid = test_wall_ms();
    test_sleep_ms(20);
    char qp[256];
    snprintf(qp, sizeof(qp), "%s/api/QueryPrepared", busi_url(env.svc));
    for (int i = 0; i < MSGS; i++) {
        e2e_gid(msgs[i], sizeof(msgs[i]), "pagemsg");
        json_t *b = json_pack("{s:s, s:s, s:s, s:i, s:[]}", "gid", msgs[i], "trans_type", "msg",
                              "query_prepared", qp, "timeout_to_fail", 600, "steps");
        char *text = json_dumps(b, JSON_COMPACT);
        e2e_post_expect(&env.dtmq, "prepare", text, 200);
        free(text);
        json_decref(b);
    }

    int pages;
    json_t *seen = page_all(&env, 10, "status=succeed", &pages);
    ck_assert_int_eq(pages, 3);
    assert_seen_once(seen, sagas, SAGAS);
    json_decref(seen);

    seen = page_all(&env, 10, "", &pages);
    ck_assert_int_eq(pages, 3);
    ck_assert_uint_eq(json_object_size(seen), SAGAS + MSGS);
    json_decref(seen);

    seen = page_all(&env, 10, "transType=saga", &pages);
    assert_seen_once(seen, sagas, SAGAS);
    json_decref(seen);

    seen = page_all(&env, 100, "status=prepared&transType=msg", &pages);
    ck_assert_int_eq(pages, 1);
    assert_seen_once(seen, msgs, MSGS);
    json_decref(seen);

    seen = page_all(&env, 100, "transType=tcc", &pages);
    ck_assert_uint_eq(json_object_size(seen), 0);
    json_decref(seen);

    char filter[256];
    snprintf(filter, sizeof(filter), "gid=%s", sagas[7]);
    seen = page_all(&env, 10, filter, &pages);
    assert_seen_once(seen, &sagas[7], 1);
    json_decref(seen);

    snprintf(filter, sizeof(filter), "createTimeStart=%lld", mid);
    seen = page_all(&env, 10, filter, &pages);
    assert_seen_once(seen, msgs, MSGS);
    json_decref(seen);

    snprintf(filter, sizeof(filter), "createTimeEnd=%lld", mid);
    seen = page_all(&env, 10, filter, &pages);
    ck_assert_int_eq(pages, 3);
    assert_seen_once(seen, sagas, SAGAS);
    json_decref(seen);

    snprintf(filter, sizeof(filter), "createTimeStart=%lld&createTimeEnd=%lld", mid - 600000, mid);
    seen = page_all(&env, 25, filter, &pages);
    ck_assert_int_eq(pages, 1); /* exactly full and last: next_position "" */
    assert_seen_once(seen, sagas, SAGAS);
    json_decref(seen);

    /* newest first, as DTM (ORDER BY id DESC): the msgs lead the first page */
    json_t *j = call(&env, "GET", NULL, 200, "/api/dtmsvr/all?limit=2");
    json_t *items = json_object_get(j, "transactions");
    ck_assert_uint_eq(json_array_size(items), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *t = json_array_get(items, i);
        ck_assert_str_eq(json_string_value(json_object_get(t, "trans_type")), "msg");
        ck_assert_str_eq(json_string_value(json_object_get(t, "status")), "prepared");
    }
    json_decref(j);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(api_all_rejects_malformed_parameters)
{
    api_env env;
    e2e_env_start(&env, true, "api", NULL);
    const char *bad_limits[] = {"abc", "0", "-1", "10x", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad_limits) / sizeof(bad_limits[0]); i++) {
        char path[128];
        snprintf(path, sizeof(path), "/api/dtmsvr/all?limit=%s", bad_limits[i]);
        rejected(&env, "GET", path, NULL, 400, "limit");
    }
    rejected(&env, "GET", "/api/dtmsvr/all?createTimeStart=yesterday", NULL, 400, "createTimeStart");
    rejected(&env, "GET", "/api/dtmsvr/all?createTimeEnd=-5", NULL, 400, "createTimeEnd");
    rejected(&env, "GET", "/api/dtmsvr/resetCronTime?timeout=soon", NULL, 400, "timeout");
    rejected(&env, "GET", "/api/dtmsvr/resetCronTime?limit=0", NULL, 400, "limit");
    rejected(&env, "GET", "/api/dtmsvr/scanKV?cat=topics&limit=abc", NULL, 400, "limit");
    rejected(&env, "GET", "/api/dtmsvr/scanKV?cat=topics&limit=0", NULL, 400, "limit");
    json_t *j = call(&env, "GET", NULL, 200, "/api/dtmsvr/all");
    ck_assert_uint_eq(json_array_size(json_object_get(j, "transactions")), 0);
    ck_assert_str_eq(json_string_value(json_object_get(j, "next_position")), "");
    json_decref(j);
    assert_healthy(&env);
    /* last: scanKV reads its limit with atoi, so "10x" passes as 10 */
    rejected(&env, "GET", "/api/dtmsvr/scanKV?cat=topics&limit=10x", NULL, 400, "limit");
    e2e_env_stop(&env);
}
END_TEST

/* ---- operator routes --------------------------------------------------------- */

START_TEST(api_force_stop_of_a_finished_transaction_is_409)
{
    api_env env;
    e2e_env_start(&env, true, "api", NULL);
    submit_saga(&env, env.gid, 2, 0, json_pack("{s:b}", "wait_result", 1), 200);
    assert_status(&env, env.gid, "succeed");
    char body[256];
    snprintf(body, sizeof(body), "{\"gid\":\"%s\"}", env.gid);
    json_t *j = call(&env, "POST", body, 409, "/api/dtmsvr/forceStop");
    ck_assert_str_eq(json_string_value(json_object_get(j, "dtm_result")), "FAILURE");
    json_decref(j);
    assert_status(&env, env.gid, "succeed");
    rejected(&env, "POST", "/api/dtmsvr/forceStop", "{}", 400, "gid");
    rejected(&env, "POST", "/api/dtmsvr/forceStop", "not json", 400, "JSON");
    e2e_env_stop(&env);
}
END_TEST

START_TEST(api_force_stop_of_a_running_saga_stops_its_branch_calls)
{
    api_env env;
    e2e_env_start(&env, true, "api", NULL);
    busi_rule(env.svc, "/api/Step1", NULL, NULL, 425, NULL, 0, -1); /* never finishes */
    submit_saga(&env, env.gid, 2, 1, NULL, 200);
    ck_assert_int_ge(busi_wait(env.svc, "/api/Step1", NULL, NULL, 2, 15000), 2);
    char body[256];
    snprintf(body, sizeof(body), "{\"gid\":\"%s\"}", env.gid);
    json_t *j = call(&env, "POST", body, 200, "/api/dtmsvr/forceStop");
    json_decref(j);
    assert_status(&env, env.gid, "failed");
    test_sleep_ms(300); /* a call already on the wire may still land */
    int calls = busi_count(env.svc, NULL, env.gid, NULL);
    ck_assert_int_eq(busi_wait(env.svc, NULL, env.gid, NULL, calls + 1, 3500), calls);
    ck_assert_int_eq(busi_count(env.svc, "/api/Step2", NULL, NULL), 0);
    ck_assert_int_eq(busi_count(env.svc, "/api/Step1Revert", NULL, NULL), 0);
    assert_status(&env, env.gid, "failed");
    j = call(&env, "POST", body, 409, "/api/dtmsvr/forceStop"); /* now it is finished */
    json_decref(j);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(api_reset_next_cron_time_retries_a_backing_off_transaction_promptly)
{
    api_env env;
    e2e_env_start(&env, true, "api", NULL);
    busi_rule(env.svc, "/api/Step1", NULL, NULL, 500, NULL, 0, 1);
    /* retry_interval 30: without the reset the retry would come 30 s later */
    submit_saga(&env, env.gid, 2, 1, json_pack("{s:i}", "retry_interval", 30), 200);
    ck_assert_int_eq(busi_wait(env.svc, "/api/Step1", NULL, NULL, 1, 10000), 1);
    wait_retry_count(&env, env.gid, 1);
    ck_assert_int_eq(busi_wait(env.svc, "/api/Step1", NULL, NULL, 2, 1500), 1); /* backing off */
    char body[256];
    snprintf(body, sizeof(body), "{\"gid\":\"%s\"}", env.gid);
    json_t *j = call(&env, "POST", body, 200, "/api/dtmsvr/resetNextCronTime");
    json_decref(j);
    ck_assert_int_eq(busi_wait(env.svc, "/api/Step1", NULL, NULL, 2, 5000), 2);
    e2e_wait_status(&env.dtmq, env.gid, "succeed", 10);
    rejected(&env, "POST", "/api/dtmsvr/resetNextCronTime", "{}", 400, "gid");
    e2e_env_stop(&env);
}
END_TEST

START_TEST(api_reset_cron_time_moves_backing_off_transactions)
{
    api_env env;
    e2e_env_start(&env, true, "api", NULL);
    char gids[2][64];
    for (int i = 0; i < 2; i++) {
        e2e_gid(gids[i], sizeof(gids[i]), "reset");
        busi_rule(env.svc, "/api/Step1", gids[i], NULL, 500, NULL, 0, 1);
        submit_saga(&env, gids[i], 1, 1, json_pack("{s:i}", "retry_interval", 30), 200);
    }
    for (int i = 0; i < 2; i++)
        wait_retry_count(&env, gids[i], 1);

    json_t *j = call(&env, "GET", NULL, 200, "/api/dtmsvr/resetCronTime?limit=1");
    ck_assert(json_is_true(json_object_get(j, "has_remaining")));
    ck_assert_int_eq(json_integer_value(json_object_get(j, "succeed_count")), 1);
    json_decref(j);
    j = call(&env, "GET", NULL, 200, "/api/dtmsvr/resetCronTime"); /* default: 3 x TimeoutToFail */
    ck_assert(json_is_false(json_object_get(j, "has_remaining")));
    ck_assert_int_eq(json_integer_value(json_object_get(j, "succeed_count")), 1);
    json_decref(j);

    for (int i = 0; i < 2; i++)
        e2e_wait_status(&env.dtmq, gids[i], "succeed", 8); /* long before the 30 s retry */
    j = call(&env, "GET", NULL, 200, "/api/dtmsvr/resetCronTime?timeout=0");
    ck_assert(json_is_false(json_object_get(j, "has_remaining")));
    ck_assert_int_eq(json_integer_value(json_object_get(j, "succeed_count")), 0);
    json_decref(j);
    e2e_env_stop(&env);
}
END_TEST

/* ---- bad input --------------------------------------------------------------- */

/* A submit body (format with one %s for the gid), what the 4xx must name. */
typedef struct bad_submit {
    const char *body_fmt;
    const char *needle;
} bad_submit;

static const bad_submit bad_submits[] = {
    {"{\"gid\":\"%s\",\"trans_type\":\"saga\",\"steps\":[", "JSON"},
    {"[\"%s\",\"saga\"]", "object"},
    {"\"%s\"", "JSON"}, /* a bare scalar: jansson's parser refuses it as invalid JSON */
    {"{\"trans_type\":\"saga\",\"steps\":[{\"action\":\"\",\"compensate\":\"\"}],\"note\":\"%s\"}", "gid"},
    {"{\"gid\":\"\",\"trans_type\":\"saga\",\"steps\":[{\"action\":\"\",\"compensate\":\"\"}],\"note\":\"%s\"}", "gid"},
    {"{\"gid\":\"%s\",\"trans_type\":\"sagax\",\"steps\":[{\"action\":\"\",\"compensate\":\"\"}]}", "trans_type"},
    {"{\"gid\":\"%s\",\"steps\":[{\"action\":\"\",\"compensate\":\"\"}]}", "trans_type"},
    {"{\"gid\":\"%s\",\"trans_type\":\"saga\",\"steps\":[{\"action\":\"\",\"compensate\":\"\"},"
     "{\"action\":\"\",\"compensate\":\"\"}],\"payloads\":[\"{}\"]}", "payloads"},
    {"{\"gid\":\"%s\",\"trans_type\":\"saga\",\"steps\":[{\"action\":\"ftp://x\",\"compensate\":\"\"}]}", "ftp://x"},
    /* kafka:// with Kafka off (e2e_start runs dtmq with --kafka off) */
    {"{\"gid\":\"%s\",\"trans_type\":\"saga\",\"steps\":[{\"action\":\"kafka://t\",\"compensate\":\"\"}]}", "kafka"},
    {"{\"gid\":\"%s\",\"trans_type\":\"msg\",\"steps\":[{\"action\":\"kafka://t\"}]}", "kafka"},
    {"{\"gid\":\"%s\",\"trans_type\":\"saga\",\"wait_result\":\"yes\",\"steps\":[{\"action\":\"\",\"compensate\":\"\"}]}", "wait_result"},
    {"{\"gid\":\"%s\",\"trans_type\":\"saga\",\"timeout_to_fail\":-5,\"steps\":[{\"action\":\"\",\"compensate\":\"\"}]}", "timeout_to_fail"},
    {"{\"gid\":\"%s\",\"trans_type\":\"saga\",\"steps\":[]}", "steps"},
    {"{\"gid\":\"%s\",\"trans_type\":\"saga\",\"steps\":\"nope\"}", "steps"},
};

START_TEST(api_bad_submits_are_rejected_naming_the_problem_and_store_nothing)
{
    api_env env;
    e2e_env_start(&env, true, "api", NULL);
    for (size_t i = 0; i < sizeof(bad_submits) / sizeof(bad_submits[0]); i++) {
        char gid[64], body[1024];
        e2e_gid(gid, sizeof(gid), "bad");
        snprintf(body, sizeof(body), bad_submits[i].body_fmt, gid);
        int status = 0;
        json_t *j = e2e_call(&env.dtmq, "POST", "/api/dtmsvr/submit", body, &status);
        const char *msg = json_string_value(json_object_get(j, "message"));
        ck_assert_msg(status >= 400 && status < 500, "submit %s: want 4xx, got %d (%s)", body, status,
                      msg ? msg : "no message");
        ck_assert_msg(msg != NULL && strstr(msg, bad_submits[i].needle) != NULL,
                      "submit %s: message '%s' should name '%s'", body, msg ? msg : "(none)",
                      bad_submits[i].needle);
        json_decref(j);
        assert_not_stored(&env, gid);
    }
    json_t *j = call(&env, "GET", NULL, 200, "/api/dtmsvr/all");
    ck_assert_uint_eq(json_array_size(json_object_get(j, "transactions")), 0);
    json_decref(j);
    ck_assert_int_eq(busi_count(env.svc, NULL, NULL, NULL), 0);
    assert_healthy(&env);
    e2e_env_stop(&env);
}
END_TEST

/*
 * A TCC/XA submit must follow a prepare. For a gid that was never prepared,
 * DTM creates and finishes an empty transaction (200); dtmq refuses it. Either
 * is acceptable, a 5xx (a server fault) is not: a refusal is a 409 naming the
 * gid, with nothing stored.
 */
START_TEST(api_submit_of_a_never_prepared_tcc_or_xa_is_not_a_server_error)
{
    api_env env;
    e2e_env_start(&env, true, "api", NULL);
    const char *types[] = {"tcc", "xa"};
    for (size_t i = 0; i < 2; i++) {
        char gid[64], body[256];
        e2e_gid(gid, sizeof(gid), types[i]);
        snprintf(body, sizeof(body), "{\"gid\":\"%s\",\"trans_type\":\"%s\"}", gid, types[i]);
        int status = 0;
        json_t *j = e2e_call(&env.dtmq, "POST", "/api/dtmsvr/submit", body, &status);
        char *dump = j ? json_dumps(j, JSON_COMPACT) : strdup("(not JSON)");
        ck_assert_msg(status == 200 || status == 409, "submit of a never prepared %s: want 409 (or DTM's "
                      "200), got %d %s", types[i], status, dump);
        free(dump);
        if (status == 409) {
            assert_message(j, gid);
            assert_not_stored(&env, gid);
        } else {
            e2e_wait_status(&env.dtmq, gid, "succeed", 10);
        }
        json_decref(j);
    }
    assert_healthy(&env);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(api_body_over_the_limit_is_413_and_stores_nothing)
{
    api_env env;
    const char *args[] = {"--max-body-bytes", "2048", NULL};
    e2e_env_start(&env, true, "api", args);
    char *big = malloc(4097);
    memset(big, 'x', 4096);
    big[4096] = '\0';
    char *body = saga_body(&env, env.gid, 1, 0, json_pack("{s:[s]}", "payloads", big));
    ck_assert_uint_gt(strlen(body), 4096);
    int status = 0;
    json_t *j = e2e_call(&env.dtmq, "POST", "/api/dtmsvr/submit", body, &status);
    ck_assert_int_eq(status, 413);
    json_decref(j);
    assert_not_stored(&env, env.gid);
    assert_healthy(&env);
    submit_saga(&env, env.gid, 1, 0, json_pack("{s:b}", "wait_result", 1), 200); /* small: fine */
    assert_status(&env, env.gid, "succeed");
    free(body);
    free(big);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(api_unknown_extra_keys_are_tolerated)
{
    api_env env;
    e2e_env_start(&env, true, "api", NULL);
    json_t *extra = json_pack("{s:{s:s}, s:s, s:b, s:{s:i}, s:s}", "passthrough_headers", "X-Old", "1",
                              "protocol", "", "wait_result", 1, "some_future_option", "n", 1,
                              "rollback_reason", "");
    submit_saga(&env, env.gid, 2, 1, extra, 200);
    assert_status(&env, env.gid, "succeed");
    ck_assert_int_eq(busi_count(env.svc, NULL, env.gid, "action"), 2);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(api_second_submit_of_a_saga_never_runs_a_branch_twice)
{
    api_env env;
    e2e_env_start(&env, true, "api", NULL);
    busi_rule(env.svc, "/api/Step1", NULL, NULL, 200, NULL, 1500, 1); /* still running at the resubmit */
    char *body = saga_body(&env, env.gid, 2, 1, NULL);
    e2e_post_expect(&env.dtmq, "submit", body, 200);
    ck_assert_int_eq(busi_wait(env.svc, "/api/Step1", NULL, NULL, 1, 10000), 1);
    e2e_post_expect(&env.dtmq, "submit", body, 200); /* DTM: submit on submitted re-processes */
    e2e_wait_status(&env.dtmq, env.gid, "succeed", 20);
    busi_wait(env.svc, NULL, NULL, NULL, 3, 1500); /* a duplicate would show up meanwhile */
    ck_assert_int_eq(busi_count(env.svc, "/api/Step1", env.gid, "action"), 1);
    ck_assert_int_eq(busi_count(env.svc, "/api/Step2", env.gid, "action"), 1);
    ck_assert_int_eq(busi_count(env.svc, NULL, NULL, NULL), 2);
    int status = 0;
    json_t *j = e2e_call(&env.dtmq, "POST", "/api/dtmsvr/submit", body, &status);
    ck_assert_int_eq(status, 409);
    ck_assert_str_eq(json_string_value(json_object_get(j, "dtm_result")), "FAILURE");
    json_decref(j);
    ck_assert_int_eq(busi_count(env.svc, NULL, NULL, NULL), 2);
    free(body);
    e2e_env_stop(&env);
}
END_TEST

START_TEST(api_register_branch_needs_a_prepared_global)
{
    api_env env;
    e2e_env_start(&env, true, "api", NULL);
    char body[1024];
    const char *url = busi_url(env.svc);
    snprintf(body, sizeof(body),
             "{\"gid\":\"%s\",\"trans_type\":\"tcc\",\"branch_id\":\"01\",\"confirm\":\"%s/api/Confirm\","
             "\"cancel\":\"%s/api/Cancel\",\"data\":\"{}\"}", env.gid, url, url);
    json_t *j = call(&env, "POST", body, 409, "/api/dtmsvr/registerBranch");
    ck_assert_str_eq(json_string_value(json_object_get(j, "dtm_result")), "FAILURE");
    json_decref(j);
    j = call(&env, "POST", body, 409, "/api/dtmsvr/registerTccBranch");
    json_decref(j);
    assert_not_stored(&env, env.gid);

    /* a saga is never prepared: registering under it is refused too */
    submit_saga(&env, env.gid, 1, 0, json_pack("{s:b}", "wait_result", 1), 200);
    j = call(&env, "POST", body, 409, "/api/dtmsvr/registerBranch");
    json_decref(j);
    json_t *q = query(&env, env.gid);
    ck_assert_uint_eq(json_array_size(json_object_get(q, "branches")), 2); /* the saga's own rows */
    json_decref(q);
    rejected(&env, "POST", "/api/dtmsvr/registerBranch", "[]", 400, "object");
    assert_healthy(&env);
    e2e_env_stop(&env);
}
END_TEST

/* ---- topics and KV ----------------------------------------------------------- */

/* The subscribers of topic per queryKV ([] when absent; caller decrefs). */
static json_t *topic_subscribers(const api_env *env, const char *topic)
{
    json_t *j = call(env, "GET", NULL, 200, "/api/dtmsvr/queryKV?cat=topics&key=%s", topic);
    json_t *kv = json_object_get(j, "kv");
    ck_assert(json_is_array(kv));
    json_t *subs = json_array();
    if (json_array_size(kv) > 0) {
        ck_assert_uint_eq(json_array_size(kv), 1);
        json_t *e = json_array_get(kv, 0);
        ck_assert_str_eq(json_string_value(json_object_get(e, "cat")), "topics");
        ck_assert_str_eq(json_string_value(json_object_get(e, "k")), topic);
        ck_assert(json_is_integer(json_object_get(e, "version")));
        json_decref(subs);
        subs = json_loads(json_string_value(json_object_get(e, "v")), 0, NULL);
        ck_assert(json_is_array(subs));
    }
    json_decref(j);
    return subs;
}

START_TEST(api_topics_and_kv)
{
    api_env env;
    e2e_env_start(&env, true, "api", NULL);
    const char *u = busi_url(env.svc);
    char path[512];
    json_t *j;

    snprintf(path, sizeof(path), "/api/dtmsvr/subscribe?topic=orders&url=%s/api/A&remark=first", u);
    json_decref(call(&env, "GET", NULL, 200, "%s", path));
    rejected(&env, "GET", path, NULL, 409, "exists"); /* the same url again */
    snprintf(path, sizeof(path), "/api/dtmsvr/subscribe?topic=orders&url=%s/api/B&remark=second", u);
    json_decref(call(&env, "POST", "", 200, "%s", path));

    json_t *subs = topic_subscribers(&env, "orders");
    ck_assert_uint_eq(json_array_size(subs), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(subs, 0), "remark")), "first");
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(json_array_get(subs, 1), "url")), "/api/B"));
    json_decref(subs);

    /* errors */
    snprintf(path, sizeof(path), "/api/dtmsvr/subscribe?topic=&url=%s/api/A", u);
    rejected(&env, "GET", path, NULL, 400, "topic");
    rejected(&env, "GET", "/api/dtmsvr/subscribe?topic=orders", NULL, 400, "url");
    rejected(&env, "GET", "/api/dtmsvr/subscribe?topic=orders&url=ftp://x", NULL, 400, "url");
    snprintf(path, sizeof(path), "/api/dtmsvr/unsubscribe?topic=nosuch&url=%s/api/A", u);
    rejected(&env, "GET", path, NULL, 409, "topic");
    snprintf(path, sizeof(path), "/api/dtmsvr/unsubscribe?topic=orders&url=%s/api/C", u);
    rejected(&env, "GET", path, NULL, 409, "url");
    rejected(&env, "DELETE", "/api/dtmsvr/topic/nosuch", NULL, 409, "topic");
    j = call(&env, "DELETE", NULL, 404, "/api/dtmsvr/topic/");
    json_decref(j);

    /* unsubscribe one, then delete the topic */
    snprintf(path, sizeof(path), "/api/dtmsvr/unsubscribe?topic=orders&url=%s/api/A", u);
    json_decref(call(&env, "GET", NULL, 200, "%s", path));
    subs = topic_subscribers(&env, "orders");
    ck_assert_uint_eq(json_array_size(subs), 1);
    json_decref(subs);
    json_decref(call(&env, "DELETE", NULL, 200, "/api/dtmsvr/topic/orders"));
    subs = topic_subscribers(&env, "orders");
    ck_assert_uint_eq(json_array_size(subs), 0);
    json_decref(subs);
    rejected(&env, "DELETE", "/api/dtmsvr/topic/orders", NULL, 409, "topic");

    /* scanKV pages through the topics in key order */
    const char *topics[] = {"t1", "t2", "t3"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "/api/dtmsvr/subscribe?topic=%s&url=%s/api/A&remark=", topics[i], u);
        json_decref(call(&env, "GET", NULL, 200, "%s", path));
    }
    j = call(&env, "GET", NULL, 200, "/api/dtmsvr/scanKV?cat=topics&limit=2");
    json_t *kv = json_object_get(j, "kv");
    ck_assert_uint_eq(json_array_size(kv), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(kv, 0), "k")), "t1");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(kv, 1), "k")), "t2");
    const char *next = json_string_value(json_object_get(j, "next_position"));
    ck_assert_ptr_nonnull(next);
    ck_assert_uint_gt(strlen(next), 0);
    char escaped[512];
    url_escape(next, escaped, sizeof(escaped));
    json_t *j2 = call(&env, "GET", NULL, 200, "/api/dtmsvr/scanKV?cat=topics&limit=2&position=%s", escaped);
    kv = json_object_get(j2, "kv");
    ck_assert_uint_eq(json_array_size(kv), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(kv, 0), "k")), "t3");
    ck_assert_str_eq(json_string_value(json_object_get(j2, "next_position")), "");
    json_decref(j2);
    json_decref(j);
    j = call(&env, "GET", NULL, 200, "/api/dtmsvr/scanKV?cat=nothing");
    ck_assert_uint_eq(json_array_size(json_object_get(j, "kv")), 0);
    ck_assert_str_eq(json_string_value(json_object_get(j, "next_position")), "");
    json_decref(j);
    rejected(&env, "GET", "/api/dtmsvr/scanKV", NULL, 400, "cat");
    rejected(&env, "GET", "/api/dtmsvr/queryKV?cat=topics", NULL, 400, "key");
    assert_healthy(&env);
    e2e_env_stop(&env);
}
END_TEST

/* ---- robustness -------------------------------------------------------------- */

START_TEST(api_server_stays_healthy_after_bad_input)
{
    api_env env;
    e2e_env_start(&env, true, "api", NULL);
    const char *routes[] = {"prepare", "submit", "abort", "registerBranch", "prepareWorkflow",
                            "forceStop", "resetNextCronTime"};
    const char *bodies[] = {"", "{", "null", "[]", "{\"gid\":5}", "{\"gid\":null,\"trans_type\":[]}",
                            "\xff\xfe\x00garbage", "{\"gid\":\"x\",\"trans_type\":\"saga\",\"steps\":[1]}"};
    for (size_t r = 0; r < sizeof(routes) / sizeof(routes[0]); r++)
        for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++) {
            char path[128];
            snprintf(path, sizeof(path), "/api/dtmsvr/%s", routes[r]);
            int status = 0;
            json_t *j = e2e_call(&env.dtmq, "POST", path, bodies[b], &status);
            ck_assert_msg(status >= 400 && status < 500, "POST %s '%s': want 4xx, got %d", routes[r],
                          bodies[b], status);
            ck_assert_msg(json_is_string(json_object_get(j, "message")), "POST %s: no message", routes[r]);
            json_decref(j);
        }
    json_decref(call(&env, "GET", NULL, 404, "/api/dtmsvr/nosuch"));
    json_decref(call(&env, "GET", NULL, 405, "/api/dtmsvr/submit"));
    json_decref(call(&env, "GET", NULL, 200, "/api/dtmsvr/query?gid=%%ff%%fe%%22"));
    assert_healthy(&env);
    json_t *j = call(&env, "GET", NULL, 200, "/api/dtmsvr/all");
    ck_assert_uint_eq(json_array_size(json_object_get(j, "transactions")), 0);
    json_decref(j);
    submit_saga(&env, env.gid, 2, 1, json_pack("{s:b}", "wait_result", 1), 200); /* still works */
    assert_status(&env, env.gid, "succeed");
    e2e_env_stop(&env);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("api");
    test_group g = {.suite = s, .timeout_s = 90};
    test_add(&g, api_new_gid_values_are_all_strings);
    test_add(&g, api_query_without_gid_and_of_an_unknown_gid);
    test_add(&g, api_all_pages_and_filters);
    test_add(&g, api_all_rejects_malformed_parameters);
    test_add(&g, api_force_stop_of_a_finished_transaction_is_409);
    test_add(&g, api_force_stop_of_a_running_saga_stops_its_branch_calls);
    test_add(&g, api_reset_next_cron_time_retries_a_backing_off_transaction_promptly);
    test_add(&g, api_reset_cron_time_moves_backing_off_transactions);
    test_add(&g, api_bad_submits_are_rejected_naming_the_problem_and_store_nothing);
    test_add(&g, api_submit_of_a_never_prepared_tcc_or_xa_is_not_a_server_error);
    test_add(&g, api_body_over_the_limit_is_413_and_stores_nothing);
    test_add(&g, api_unknown_extra_keys_are_tolerated);
    test_add(&g, api_second_submit_of_a_saga_never_runs_a_branch_twice);
    test_add(&g, api_register_branch_needs_a_prepared_global);
    test_add(&g, api_topics_and_kv);
    test_add(&g, api_server_stays_healthy_after_bad_input);
    return run_suite(s);
}
