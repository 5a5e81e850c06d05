/*
 * test_access.c — access control: with AdminToken set, the steering routes
 * answer 401 without the token (or with a wrong one) and work with it; with
 * BranchAllowlist set, a transaction, branch, query-back URL or topic
 * subscriber outside the list is refused with 403 and nothing is stored.
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busi.h"
#include "testlib.h"

static int call_with_token(const dtmq_proc *p, const char *method, const char *path,
                           const char *body, const char *token)
{
    char cmd_url[512];
    snprintf(cmd_url, sizeof(cmd_url), "%s%s", p->base_url, path);
    char *resp = NULL;
    int status = http_do_headers(method, cmd_url, body, token, &resp);
    free(resp);
    return status;
}

/* GET url with a raw Authorization header value. */
static int http_do_auth(const char *url, const char *authorization, char **resp)
{
    return http_do_raw_auth("GET", url, NULL, authorization, resp);
}

START_TEST(steering_routes_need_the_admin_token)
{
    char store[512];
    test_store_uri(store, sizeof(store));
    dtmq_proc p;
    const char *args[] = {"--admin-token", "s3cret-token", NULL};
    e2e_start(&p, store, args);
    e2e_post_expect(&p, "submit", "{\"gid\":\"acc-1\",\"trans_type\":\"saga\",\"steps\":[{\"action\":\"\",\"compensate\":\"\"}]}", 200);
    /* finished before the steering calls below: forceStop of it must be 409 */
    e2e_wait_status(&p, "acc-1", "succeed", 30);
    const struct { const char *method, *path, *body; } routes[] = {
        {"POST", "/api/dtmsvr/forceStop", "{\"gid\":\"acc-1\"}"},
        {"POST", "/api/dtmsvr/resetNextCronTime", "{\"gid\":\"acc-1\"}"},
        {"GET", "/api/dtmsvr/resetCronTime", NULL},
        {"GET", "/api/dtmsvr/subscribe?topic=t&url=http://127.0.0.1:1/x", NULL},
        {"GET", "/api/dtmsvr/unsubscribe?topic=t&url=http://127.0.0.1:1/x", NULL},
        {"DELETE", "/api/dtmsvr/topic/t", NULL},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        ck_assert_int_eq(call_with_token(&p, routes[i].method, routes[i].path, routes[i].body, NULL), 401);
        ck_assert_int_eq(call_with_token(&p, routes[i].method, routes[i].path, routes[i].body, "wrong"), 401);
    }
    /* nothing happened: the topic does not exist, the transaction is untouched */
    int status;
    json_t *kv = e2e_call(&p, "GET", "/api/dtmsvr/queryKV?cat=topics&key=t", NULL, &status);
    ck_assert_uint_eq(json_array_size(json_object_get(kv, "kv")), 0);
    json_decref(kv);
    /* with the token they work */
    ck_assert_int_eq(call_with_token(&p, "GET", routes[3].path, NULL, "s3cret-token"), 200);
    ck_assert_int_eq(call_with_token(&p, "GET", routes[4].path, NULL, "s3cret-token"), 200);
    ck_assert_int_eq(call_with_token(&p, "GET", routes[2].path, NULL, "s3cret-token"), 200);
    ck_assert_int_eq(call_with_token(&p, "POST", routes[0].path, routes[0].body, "s3cret-token"), 409); /* finished */
    /* a browser's Basic login: any user name, the token as password */
    char url[256], *resp = NULL;
    snprintf(url, sizeof(url), "%s/api/admin/stats", p.base_url);
    ck_assert_int_eq(http_do_auth(url, "Basic YWRtaW46czNjcmV0LXRva2Vu", &resp), 200); /* admin:s3cret-token */
    ck_assert_ptr_nonnull(strstr(resp, "succeed"));
    free(resp);
    ck_assert_int_eq(http_do_auth(url, "Basic YWRtaW46d3Jvbmc=", &resp), 401); /* admin:wrong */
    free(resp);
    /* transaction routes stay open to services (DTM's SDKs send no token) */
    e2e_post_expect(&p, "submit", "{\"gid\":\"acc-2\",\"trans_type\":\"saga\",\"steps\":[{\"action\":\"\",\"compensate\":\"\"}]}", 200);
    e2e_stop(&p);
}
END_TEST

static void assert_not_stored(const dtmq_proc *p, const char *gid)
{
    char path[256];
    snprintf(path, sizeof(path), "/api/dtmsvr/query?gid=%s", gid);
    int status;
    json_t *q = e2e_call(p, "GET", path, NULL, &status);
    ck_assert(json_is_null(json_object_get(q, "transaction")));
    json_decref(q);
}

START_TEST(branch_urls_outside_the_allowlist_are_refused)
{
    busi *svc = busi_start();
    char store[512], allow[256], body[1024];
    test_store_uri(store, sizeof(store));
    snprintf(allow, sizeof(allow), "%s/api/,kafka://orders.", busi_url(svc));
    dtmq_proc p;
    const char *args[] = {"--branch-allowlist", allow, NULL};
    e2e_start(&p, store, args);
    int status;
    /* a saga calling elsewhere */
    snprintf(body, sizeof(body), "{\"gid\":\"al-1\",\"trans_type\":\"saga\",\"steps\":[{\"action\":\"%s/api/Out\",\"compensate\":\"http://169.254.169.254/latest\"}]}",
             busi_url(svc));
    json_t *r = e2e_call(&p, "POST", "/api/dtmsvr/submit", body, &status);
    ck_assert_int_eq(status, 403);
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(r, "message")), "169.254.169.254"));
    json_decref(r);
    assert_not_stored(&p, "al-1");
    /* a msg whose query-back URL is elsewhere */
    snprintf(body, sizeof(body), "{\"gid\":\"al-2\",\"trans_type\":\"msg\",\"query_prepared\":\"http://127.0.0.1:9/qp\",\"steps\":[{\"action\":\"%s/api/Out\"}]}",
             busi_url(svc));
    e2e_post_expect(&p, "prepare", body, 403);
    assert_not_stored(&p, "al-2");
    /* a tcc branch registered elsewhere */
    e2e_post_expect(&p, "prepare", "{\"gid\":\"al-3\",\"trans_type\":\"tcc\"}", 200);
    e2e_post_expect(&p, "registerBranch", "{\"gid\":\"al-3\",\"trans_type\":\"tcc\",\"branch_id\":\"01\",\"confirm\":\"http://127.0.0.1:9/c\",\"cancel\":\"http://127.0.0.1:9/x\"}", 403);
    json_t *q = e2e_call(&p, "GET", "/api/dtmsvr/query?gid=al-3", NULL, &status);
    ck_assert_uint_eq(json_array_size(json_object_get(q, "branches")), 0);
    json_decref(q);
    /* a topic subscriber elsewhere */
    json_decref(e2e_call(&p, "GET", "/api/dtmsvr/subscribe?topic=t&url=http://127.0.0.1:9/s", NULL, &status));
    ck_assert_int_eq(status, 403);
    /* inside the list all is well */
    snprintf(body, sizeof(body), "{\"gid\":\"al-4\",\"trans_type\":\"saga\",\"wait_result\":true,\"steps\":[{\"action\":\"%s/api/Out\",\"compensate\":\"%s/api/OutRevert\"}]}",
             busi_url(svc), busi_url(svc));
    e2e_post_expect(&p, "submit", body, 200);
    ck_assert_int_eq(busi_count(svc, "/api/Out", "al-4", "action"), 1);
    ck_assert_int_eq(busi_count(svc, NULL, "al-1", NULL), 0);
    e2e_stop(&p);
    busi_stop(svc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("access");
    test_group g = {.suite = s, .timeout_s = 60};
    test_add(&g, steering_routes_need_the_admin_token);
    test_add(&g, branch_urls_outside_the_allowlist_are_refused);
    return run_suite(s);
}
