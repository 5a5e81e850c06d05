/*
 * test_url_rules.c — the branch URL and topic name rules (libdtmq/common/
 * rules.h) as the HTTP API applies them, end to end on a real dtmq: a scheme
 * with nothing after it is refused as a branch URL and as a subscriber, a
 * kafka:// subscriber needs a topic name Kafka accepts, and unsubscribe still
 * takes any http(s):// or kafka:// URL (so one stored before the rule
 * existed can be removed).
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

typedef struct rules_env {
    dtmq_proc dtmq;
    char store[512];
    char gid[64];
} rules_env;

static void env_start(rules_env *env)
{
    test_store_uri(env->store, sizeof(env->store));
    e2e_start(&env->dtmq, env->store, NULL);
    e2e_gid(env->gid, sizeof(env->gid), "urlrules");
}

/* Calls dtmq; asserts the status and, when needle is set, that the answer's
 * message names it. */
static void expect(const rules_env *env, const char *method, const char *path, const char *body,
                   int want_status, const char *needle)
{
    int status = 0;
    json_t *j = e2e_call(&env->dtmq, method, path, body, &status);
    char *dump = j ? json_dumps(j, JSON_COMPACT) : strdup("(not JSON)");
    ck_assert_msg(status == want_status, "%s %s %s: want %d, got %d %s", method, path,
                  body ? body : "", want_status, status, dump);
    const char *msg = json_string_value(json_object_get(j, "message"));
    if (needle != NULL)
        ck_assert_msg(msg != NULL && strstr(msg, needle) != NULL, "message %s should name '%s'",
                      dump, needle);
    free(dump);
    json_decref(j);
}

/* POST body {"topic":topic,"url":url} to route. */
static void topic_call(const rules_env *env, const char *route, const char *topic,
                       const char *url, int want_status, const char *needle)
{
    char path[128];
    snprintf(path, sizeof(path), "/api/dtmsvr/%s", route);
    json_t *body = json_pack("{s:s, s:s, s:s}", "topic", topic, "url", url, "remark", "");
    char *text = json_dumps(body, JSON_COMPACT);
    expect(env, "POST", path, text, want_status, needle);
    free(text);
    json_decref(body);
}

START_TEST(url_rules_bare_scheme_branch_refused)
{
    rules_env env;
    env_start(&env);
    const char *bare[] = {"http://", "https://", "kafka://", "topic://"};
    for (size_t i = 0; i < sizeof(bare) / sizeof(bare[0]); i++) {
        char gid[80];
        snprintf(gid, sizeof(gid), "%s-%zu", env.gid, i);
        json_t *body = json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "gid", gid, "trans_type", "saga",
                                 "steps", "action", bare[i], "compensate", "");
        char *text = json_dumps(body, JSON_COMPACT);
        expect(&env, "POST", "/api/dtmsvr/submit", text, 400, bare[i]);
        free(text);
        json_decref(body);
        char path[160];
        snprintf(path, sizeof(path), "/api/dtmsvr/query?gid=%s", gid);
        int status = 0;
        json_t *q = e2e_call(&env.dtmq, "GET", path, NULL, &status);
        ck_assert_int_eq(status, 200);
        ck_assert_msg(json_is_null(json_object_get(q, "transaction")), "%s was stored", gid);
        json_decref(q);
    }
    e2e_stop(&env.dtmq);
}
END_TEST

START_TEST(url_rules_empty_branch_url_still_a_no_op)
{
    rules_env env;
    env_start(&env);
    json_t *body = json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "gid", env.gid, "trans_type", "saga",
                             "steps", "action", "", "compensate", "");
    char *text = json_dumps(body, JSON_COMPACT);
    expect(&env, "POST", "/api/dtmsvr/submit", text, 200, NULL);
    free(text);
    json_decref(body);
    e2e_wait_status(&env.dtmq, env.gid, "succeed", 20);
    e2e_stop(&env.dtmq);
}
END_TEST

START_TEST(url_rules_subscribe_refuses_uncallable_urls)
{
    rules_env env;
    env_start(&env);
    topic_call(&env, "subscribe", "orders", "http://", 400, "http://");
    topic_call(&env, "subscribe", "orders", "kafka://", 400, "kafka://");
    topic_call(&env, "subscribe", "orders", "kafka://a b", 400, "kafka://a b");
    topic_call(&env, "subscribe", "orders", "kafka://.", 400, "kafka://.");
    topic_call(&env, "subscribe", "orders", "kafka://..", 400, "kafka://..");
    topic_call(&env, "subscribe", "orders", "HTTP://x/a", 400, "HTTP://x/a");
    topic_call(&env, "subscribe", "orders", "ftp://x", 400, "ftp://x");
    topic_call(&env, "subscribe", "orders", "http://127.0.0.1:1/a", 200, NULL);
    topic_call(&env, "subscribe", "orders", "kafka://orders.v2", 200, NULL);
    e2e_stop(&env.dtmq);
}
END_TEST

START_TEST(url_rules_unsubscribe_takes_any_known_scheme)
{
    rules_env env;
    env_start(&env);
    topic_call(&env, "subscribe", "orders", "http://127.0.0.1:1/a", 200, NULL);
    /* not stored, but not malformed for unsubscribe: "no such an url" */
    topic_call(&env, "unsubscribe", "orders", "kafka://", 409, "url");
    topic_call(&env, "unsubscribe", "orders", "kafka://a b", 409, "url");
    topic_call(&env, "unsubscribe", "orders", "http://", 409, "url");
    topic_call(&env, "unsubscribe", "orders", "ftp://x", 400, "ftp://x");
    topic_call(&env, "unsubscribe", "orders", "http://127.0.0.1:1/a", 200, NULL);
    e2e_stop(&env.dtmq);
}
END_TEST

/* One TCase per test, named after it. */
#define ADD_TEST(s, fn, secs)                    \
    do {                                         \
        TCase *tc_ = tcase_create(#fn);          \
        tcase_set_timeout(tc_, (secs));          \
        tcase_add_test(tc_, fn);                 \
        suite_add_tcase((s), tc_);               \
    } while (0)

int main(void)
{
    Suite *s = suite_create("url_rules");
    ADD_TEST(s, url_rules_bare_scheme_branch_refused, 60);
    ADD_TEST(s, url_rules_empty_branch_url_still_a_no_op, 60);
    ADD_TEST(s, url_rules_subscribe_refuses_uncallable_urls, 60);
    ADD_TEST(s, url_rules_unsubscribe_takes_any_known_scheme, 60);
    return run_suite(s);
}
