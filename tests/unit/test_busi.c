/*
 * test_busi.c — the scriptable business service (tests/lib/busi.h) answers by
 * its rules (default, specificity, recency, times, delay) and records every
 * request exactly: method, path, query fields, headers, binary bodies, under
 * concurrency, on kept-alive connections and for aborted uploads.
 */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "busi.h"
#include "testlib.h"

/* ---------- helpers ---------- */

/* GET/POST base+path_query; returns the status, *resp the body (malloc'd). */
static int call(busi *b, const char *method, const char *path_query, const char *body, char **resp)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", busi_url(b), path_query);
    return http_do(method, url, body, resp);
}

/* Status only; the response body is dropped. */
static int call_status(busi *b, const char *method, const char *path_query)
{
    char *resp = NULL;
    int status = call(b, method, path_query, NULL, &resp);
    free(resp);
    return status;
}

typedef struct sink {
    char *data;
    size_t len;
} sink;

static size_t sink_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    sink *s = userdata;
    size_t n = size * nmemb;
    char *grown = realloc(s->data, s->len + n + 1);
    if (grown == NULL)
        return 0;
    s->data = grown;
    memcpy(s->data + s->len, ptr, n);
    s->len += n;
    s->data[s->len] = '\0';
    return n;
}

/* POST of len raw bytes with one extra header on handle c; returns the status. */
static int post_raw(CURL *c, const char *url, const char *header, const char *body, size_t len)
{
    sink s = {NULL, 0};
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (header != NULL)
        headers = curl_slist_append(headers, header);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    long status = -1;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(headers);
    free(s.data);
    return (int)status;
}

/* ---------- default answer and rules ---------- */

START_TEST(default_answer_is_success)
{
    busi *b = busi_start();
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(strncmp(busi_url(b), "http://127.0.0.1:", 17), 0);
    ck_assert_int_gt(atoi(busi_url(b) + 17), 0);

    char *resp = NULL;
    ck_assert_int_eq(call(b, "GET", "/api/TransOut?gid=g1&trans_type=saga&branch_id=01&op=action",
                          NULL, &resp),
                     200);
    ck_assert_str_eq(resp, "{\"dtm_result\":\"SUCCESS\"}");
    free(resp);
    ck_assert_int_eq(busi_count(b, NULL, NULL, NULL), 1);
    ck_assert_int_eq(busi_count(b, "/api/TransOut", "g1", "action"), 1);
    ck_assert_int_eq(busi_count(b, "/api/TransOut", "g2", NULL), 0);
    ck_assert_int_eq(busi_count(b, "/api/TransIn", NULL, NULL), 0);
    ck_assert_int_eq(busi_count(b, NULL, NULL, "compensate"), 0);
    busi_stop(b);
}
END_TEST

START_TEST(rule_default_and_custom_bodies)
{
    busi *b = busi_start();
    ck_assert_ptr_nonnull(b);
    busi_rule(b, "/ok", NULL, NULL, 200, NULL, 0, -1);
    busi_rule(b, "/fail", NULL, NULL, 409, NULL, 0, -1);
    busi_rule(b, "/ongoing", NULL, NULL, 425, NULL, 0, -1);
    busi_rule(b, "/err", NULL, NULL, 500, NULL, 0, -1);
    busi_rule(b, "/custom", NULL, NULL, 200, "{\"dtm_result\":\"FAILURE\",\"x\":1}", 0, -1);

    struct {
        const char *path;
        int status;
        const char *body;
    } want[] = {
        {"/ok", 200, "{\"dtm_result\":\"SUCCESS\"}"},
        {"/fail", 409, "{\"dtm_result\":\"FAILURE\"}"},
        {"/ongoing", 425, "{\"dtm_result\":\"ONGOING\"}"},
        {"/err", 500, "{\"message\":\"busi error\"}"},
        {"/custom", 200, "{\"dtm_result\":\"FAILURE\",\"x\":1}"},
        {"/unruled", 200, "{\"dtm_result\":\"SUCCESS\"}"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        char *resp = NULL;
        ck_assert_int_eq(call(b, "GET", want[i].path, NULL, &resp), want[i].status);
        ck_assert_str_eq(resp, want[i].body);
        free(resp);
    }
    /* a rule matches the path exactly, ignoring the query string */
    ck_assert_int_eq(call_status(b, "GET", "/fail?gid=x&op=action"), 409);
    ck_assert_int_eq(call_status(b, "GET", "/fail/more"), 200);
    ck_assert_int_eq(call_status(b, "GET", "/fai"), 200);

    busi_call *calls;
    size_t n = busi_calls(b, &calls);
    ck_assert_uint_eq(n, 9);
    ck_assert_int_eq(calls[1].status_sent, 409);
    ck_assert_int_eq(calls[2].status_sent, 425);
    ck_assert_int_eq(calls[3].status_sent, 500);
    ck_assert_int_eq(calls[6].status_sent, 409);
    ck_assert_str_eq(calls[6].path, "/fail");
    ck_assert_int_eq(calls[7].status_sent, 200);
    busi_calls_free(calls, n);
    busi_stop(b);
}
END_TEST

START_TEST(rule_specificity_beats_recency)
{
    busi *b = busi_start();
    ck_assert_ptr_nonnull(b);
    /* added most specific first so that recency alone would get it wrong */
    busi_rule(b, "/api/Branch", "g1", "cancel", 501, NULL, 0, -1);
    busi_rule(b, "/api/Branch", "g1", NULL, 502, NULL, 0, -1);
    busi_rule(b, "/api/Branch", NULL, "cancel", 503, NULL, 0, -1);
    busi_rule(b, "/api/Branch", NULL, NULL, 504, NULL, 0, -1);
    busi_rule(b, "/api/Other", "g1", "cancel", 409, NULL, 0, -1);

    ck_assert_int_eq(call_status(b, "POST", "/api/Branch?gid=g1&op=cancel"), 501);
    ck_assert_int_eq(call_status(b, "POST", "/api/Branch?gid=g1&op=try"), 502);
    ck_assert_int_eq(call_status(b, "POST", "/api/Branch?gid=g2&op=cancel"), 503);
    ck_assert_int_eq(call_status(b, "POST", "/api/Branch?gid=g2&op=try"), 504);
    ck_assert_int_eq(call_status(b, "POST", "/api/Branch"), 504);
    ck_assert_int_eq(call_status(b, "POST", "/api/Other?gid=g1&op=cancel"), 409);
    ck_assert_int_eq(call_status(b, "POST", "/api/Other?gid=g1&op=try"), 200);
    ck_assert_int_eq(call_status(b, "POST", "/api/Other?gid=g2&op=cancel"), 200);
    busi_stop(b);
}
END_TEST

START_TEST(rule_newest_first_among_equals)
{
    busi *b = busi_start();
    ck_assert_ptr_nonnull(b);
    busi_rule(b, "/a", NULL, "action", 500, NULL, 0, -1);
    busi_rule(b, "/a", NULL, "action", 409, NULL, 0, -1);
    ck_assert_int_eq(call_status(b, "GET", "/a?op=action"), 409);
    ck_assert_int_eq(call_status(b, "GET", "/a?op=action"), 409);
    /* a newer, less specific rule does not override the older op rule */
    busi_rule(b, "/a", NULL, NULL, 425, NULL, 0, -1);
    ck_assert_int_eq(call_status(b, "GET", "/a?op=action"), 409);
    ck_assert_int_eq(call_status(b, "GET", "/a?op=compensate"), 425);
    busi_clear_rules(b);
    ck_assert_int_eq(call_status(b, "GET", "/a?op=action"), 200);
    ck_assert_int_eq(call_status(b, "GET", "/a?op=compensate"), 200);
    busi_stop(b);
}
END_TEST

START_TEST(rule_times_run_out)
{
    busi *b = busi_start();
    ck_assert_ptr_nonnull(b);
    busi_rule(b, "/q", NULL, NULL, 500, NULL, 0, -1); /* forever, underneath */
    busi_rule(b, "/q", NULL, NULL, 409, NULL, 0, 2);
    busi_rule(b, "/q", NULL, NULL, 425, NULL, 0, 1);
    busi_rule(b, "/q", NULL, NULL, 200, NULL, 0, 0); /* never active */
    int want[] = {425, 409, 409, 500, 500};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        ck_assert_int_eq(call_status(b, "GET", "/q"), want[i]);

    /* a gid rule with times 1 falls back to the path rule */
    busi_rule(b, "/r", "g", NULL, 409, NULL, 0, 1);
    ck_assert_int_eq(call_status(b, "GET", "/r?gid=g"), 409);
    ck_assert_int_eq(call_status(b, "GET", "/r?gid=g"), 200);

    busi_call *calls;
    size_t n = busi_calls(b, &calls);
    ck_assert_uint_eq(n, 7);
    for (size_t i = 0; i < 5; i++)
        ck_assert_int_eq(calls[i].status_sent, want[i]);
    ck_assert_int_eq(calls[5].status_sent, 409);
    ck_assert_int_eq(calls[6].status_sent, 200);
    busi_calls_free(calls, n);
    busi_stop(b);
}
END_TEST

/* ---------- delay ---------- */

typedef struct delayed_req {
    busi *b;
    const char *path;
    int status;
    long long elapsed_ms;
} delayed_req;

static void *delayed_req_run(void *arg)
{
    delayed_req *r = arg;
    long long t0 = test_now_ms();
    r->status = call_status(r->b, "GET", r->path);
    r->elapsed_ms = test_now_ms() - t0;
    return NULL;
}

START_TEST(rule_delay_answers_late)
{
    busi *b = busi_start();
    ck_assert_ptr_nonnull(b);
    busi_rule(b, "/slow", NULL, NULL, 409, NULL, 300, -1);
    long long t0 = test_now_ms();
    char *resp = NULL;
    ck_assert_int_eq(call(b, "GET", "/slow?gid=s", NULL, &resp), 409);
    long long elapsed = test_now_ms() - t0;
    ck_assert_str_eq(resp, "{\"dtm_result\":\"FAILURE\"}");
    free(resp);
    ck_assert_int_ge(elapsed, 300);
    ck_assert_int_lt(elapsed, 3000);
    busi_stop(b);
}
END_TEST

START_TEST(rule_delay_does_not_block_others)
{
    enum { N = 24 }; /* three times the pool size */
    busi *b = busi_start();
    ck_assert_ptr_nonnull(b);
    busi_rule(b, "/slow", NULL, NULL, 200, NULL, 800, -1);
    delayed_req reqs[N];
    pthread_t th[N];
    long long t0 = test_now_ms();
    for (int i = 0; i < N; i++) {
        reqs[i] = (delayed_req){b, "/slow", 0, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, delayed_req_run, &reqs[i]), 0);
    }
    /* every slow request has arrived and is waiting out its delay */
    ck_assert_int_eq(busi_wait(b, "/slow", NULL, NULL, N, 5000), N);
    long long f0 = test_now_ms();
    ck_assert_int_eq(call_status(b, "GET", "/fast"), 200);
    ck_assert_int_lt(test_now_ms() - f0, 500);
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(reqs[i].status, 200);
        ck_assert_int_ge(reqs[i].elapsed_ms, 800);
    }
    /* in parallel, not one pool thread sleeping per request (serial would be N*0.8 s / 8) */
    ck_assert_int_lt(test_now_ms() - t0, 2400);
    busi_stop(b);
}
END_TEST

START_TEST(stop_with_a_delayed_request_pending)
{
    busi *b = busi_start();
    ck_assert_ptr_nonnull(b);
    busi_rule(b, "/hang", NULL, NULL, 200, NULL, 20000, -1);
    delayed_req r = {b, "/hang", 0, 0};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, delayed_req_run, &r), 0);
    ck_assert_int_eq(busi_wait(b, "/hang", NULL, NULL, 1, 5000), 1);
    long long t0 = test_now_ms();
    busi_stop(b);
    ck_assert_int_lt(test_now_ms() - t0, 5000);
    pthread_join(th, NULL);
    /* answered at once on stop, or cut off; either way not after 20 s */
    ck_assert(r.status == 200 || r.status == -1);
    ck_assert_int_lt(r.elapsed_ms, 10000);
}
END_TEST

/* ---------- recording ---------- */

START_TEST(records_query_fields_method_and_headers)
{
    busi *b = busi_start();
    ck_assert_ptr_nonnull(b);
    busi_rule(b, "/api/TransIn", NULL, "compensate", 425, NULL, 0, -1);
    long long before = test_wall_ms();
    char *resp = NULL;
    ck_assert_int_eq(call(b, "GET",
                          "/api/TransIn?gid=a%2Fb%20c&trans_type=saga&branch_id=02&op=compensate",
                          NULL, &resp),
                     425);
    free(resp);
    ck_assert_int_eq(call(b, "POST", "/api/TransIn?gid=g9&trans_type=msg&branch_id=01-02&op=msg",
                          "{\"amount\":30}", &resp),
                     200);
    free(resp);
    ck_assert_int_eq(call_status(b, "DELETE", "/plain"), 200);
    long long after = test_wall_ms();

    busi_call *calls;
    size_t n = busi_calls(b, &calls);
    ck_assert_uint_eq(n, 3);

    ck_assert_str_eq(calls[0].method, "GET");
    ck_assert_str_eq(calls[0].path, "/api/TransIn");
    ck_assert_str_eq(calls[0].gid, "a/b c");
    ck_assert_str_eq(calls[0].trans_type, "saga");
    ck_assert_str_eq(calls[0].branch_id, "02");
    ck_assert_str_eq(calls[0].op, "compensate");
    ck_assert_uint_eq(calls[0].body_len, 0);
    ck_assert_str_eq(calls[0].body, "");
    ck_assert_int_eq(calls[0].status_sent, 425);
    ck_assert_ptr_nonnull(strstr(calls[0].headers, "Content-Type: application/json\n"));
    ck_assert_ptr_nonnull(strstr(calls[0].headers, "Host: 127.0.0.1:"));

    ck_assert_str_eq(calls[1].method, "POST");
    ck_assert_str_eq(calls[1].path, "/api/TransIn");
    ck_assert_str_eq(calls[1].gid, "g9");
    ck_assert_str_eq(calls[1].trans_type, "msg");
    ck_assert_str_eq(calls[1].branch_id, "01-02");
    ck_assert_str_eq(calls[1].op, "msg");
    ck_assert_str_eq(calls[1].body, "{\"amount\":30}");
    ck_assert_uint_eq(calls[1].body_len, 13);
    ck_assert_int_eq(calls[1].status_sent, 200);
    ck_assert_ptr_nonnull(strstr(calls[1].headers, "Content-Length: 13\n"));

    ck_assert_str_eq(calls[2].method, "DELETE");
    ck_assert_str_eq(calls[2].path, "/plain");
    ck_assert_str_eq(calls[2].gid, "");
    ck_assert_str_eq(calls[2].trans_type, "");
    ck_assert_str_eq(calls[2].branch_id, "");
    ck_assert_str_eq(calls[2].op, "");

    for (size_t i = 0; i < n; i++) {
        ck_assert_int_ge(calls[i].time_ms, before);
        ck_assert_int_le(calls[i].time_ms, after);
        if (i > 0)
            ck_assert_int_ge(calls[i].time_ms, calls[i - 1].time_ms);
    }
    busi_calls_free(calls, n);
    ck_assert_int_eq(busi_count(b, "/api/TransIn", "a/b c", "compensate"), 1);
    ck_assert_int_eq(busi_count(b, "/api/TransIn", NULL, NULL), 2);
    busi_stop(b);
}
END_TEST

START_TEST(records_custom_header_and_binary_body_on_one_connection)
{
    enum { BIG = 1024 * 1024 };
    busi *b = busi_start();
    ck_assert_ptr_nonnull(b);
    char *big = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (char)(i * 131 % 256); /* includes NUL bytes */
    char url[256];
    snprintf(url, sizeof(url), "%s/api/Big?gid=big&op=action", busi_url(b));

    CURL *c = curl_easy_init(); /* one handle: the connection is kept alive */
    ck_assert_int_eq(post_raw(c, url, "X-Trace-Id: t-42", big, BIG), 200);
    ck_assert_int_eq(post_raw(c, url, "Branch-Header: v2", "a\0b", 3), 200);
    ck_assert_int_eq(post_raw(c, url, NULL, "", 0), 200);
    curl_easy_cleanup(c);

    busi_call *calls;
    size_t n = busi_calls(b, &calls);
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(calls[0].body_len, BIG);
    ck_assert_int_eq(memcmp(calls[0].body, big, BIG), 0);
    ck_assert_int_eq(calls[0].body[BIG], '\0');
    ck_assert_ptr_nonnull(strstr(calls[0].headers, "X-Trace-Id: t-42\n"));
    ck_assert_ptr_null(strstr(calls[0].headers, "Branch-Header"));
    ck_assert_uint_eq(calls[1].body_len, 3);
    ck_assert_int_eq(memcmp(calls[1].body, "a\0b", 4), 0);
    ck_assert_ptr_nonnull(strstr(calls[1].headers, "Branch-Header: v2\n"));
    ck_assert_ptr_null(strstr(calls[1].headers, "X-Trace-Id"));
    ck_assert_uint_eq(calls[2].body_len, 0);
    for (size_t i = 0; i < n; i++) {
        ck_assert_str_eq(calls[i].method, "POST");
        ck_assert_str_eq(calls[i].path, "/api/Big");
        ck_assert_str_eq(calls[i].gid, "big");
        ck_assert_str_eq(calls[i].op, "action");
    }
    busi_calls_free(calls, n);
    free(big);
    busi_stop(b);
}
END_TEST

START_TEST(records_an_aborted_upload_once)
{
    busi *b = busi_start();
    ck_assert_ptr_nonnull(b);
    int port = atoi(busi_url(b) + strlen("http://127.0.0.1:"));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    const char *partial = "POST /api/Cut?gid=cut&op=try HTTP/1.1\r\nHost: x\r\n"
                          "Content-Length: 100\r\n\r\n0123456789";
    ck_assert_int_eq(write(fd, partial, strlen(partial)), (ssize_t)strlen(partial));
    usleep(200 * 1000);
    close(fd);

    ck_assert_int_eq(busi_wait(b, "/api/Cut", "cut", "try", 1, 5000), 1);
    ck_assert_int_eq(call_status(b, "GET", "/after"), 200);
    busi_call *calls;
    size_t n = busi_calls(b, &calls);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(calls[0].path, "/api/Cut");
    ck_assert_str_eq(calls[0].method, "POST");
    ck_assert_int_eq(calls[0].status_sent, 0);
    ck_assert_uint_le(calls[0].body_len, 10);
    ck_assert_int_eq(strncmp(calls[0].body, "0123456789", calls[0].body_len), 0);
    ck_assert_str_eq(calls[1].path, "/after");
    ck_assert_int_eq(calls[1].status_sent, 200);
    busi_calls_free(calls, n);
    busi_stop(b);
}
END_TEST

START_TEST(reset_calls_keeps_rules)
{
    busi *b = busi_start();
    ck_assert_ptr_nonnull(b);
    busi_rule(b, "/x", NULL, NULL, 409, NULL, 0, -1);
    ck_assert_int_eq(call_status(b, "GET", "/x"), 409);
    ck_assert_int_eq(busi_count(b, NULL, NULL, NULL), 1);
    busi_reset_calls(b);
    ck_assert_int_eq(busi_count(b, NULL, NULL, NULL), 0);
    busi_call *calls;
    ck_assert_uint_eq(busi_calls(b, &calls), 0);
    busi_calls_free(calls, 0);
    ck_assert_int_eq(call_status(b, "GET", "/x?gid=after"), 409);
    ck_assert_int_eq(busi_count(b, "/x", "after", NULL), 1);
    ck_assert_int_eq(busi_count(b, NULL, NULL, NULL), 1);
    busi_stop(b);
}
END_TEST

/* ---------- busi_wait ---------- */

typedef struct later_req {
    busi *b;
    int after_ms;
    int status;
} later_req;

static void *later_req_run(void *arg)
{
    later_req *r = arg;
    usleep((useconds_t)r->after_ms * 1000);
    r->status = call_status(r->b, "GET", "/api/Later?gid=lg&op=confirm");
    return NULL;
}

START_TEST(wait_times_out)
{
    busi *b = busi_start();
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(call_status(b, "GET", "/api/Later?gid=lg&op=confirm"), 200);
    long long t0 = test_now_ms();
    ck_assert_int_eq(busi_wait(b, "/api/Later", "lg", "confirm", 2, 300), 1);
    long long elapsed = test_now_ms() - t0;
    ck_assert_int_ge(elapsed, 290);
    ck_assert_int_lt(elapsed, 2000);
    t0 = test_now_ms();
    ck_assert_int_eq(busi_wait(b, "/api/Later", "other", NULL, 1, 200), 0);
    ck_assert_int_ge(test_now_ms() - t0, 190);
    busi_stop(b);
}
END_TEST

START_TEST(wait_succeeds_when_the_call_arrives)
{
    busi *b = busi_start();
    ck_assert_ptr_nonnull(b);
    /* already satisfied: immediate */
    long long t0 = test_now_ms();
    ck_assert_int_eq(busi_wait(b, NULL, NULL, NULL, 0, 5000), 0);
    ck_assert_int_lt(test_now_ms() - t0, 100);

    later_req r = {b, 300, 0};
    pthread_t th;
    t0 = test_now_ms();
    ck_assert_int_eq(pthread_create(&th, NULL, later_req_run, &r), 0);
    /* unrelated calls wake the waiter without satisfying it */
    ck_assert_int_eq(call_status(b, "GET", "/api/Noise?gid=lg&op=confirm"), 200);
    ck_assert_int_eq(busi_wait(b, "/api/Later", "lg", "confirm", 1, 10000), 1);
    long long elapsed = test_now_ms() - t0;
    ck_assert_int_ge(elapsed, 290);
    ck_assert_int_lt(elapsed, 5000);
    pthread_join(th, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(busi_count(b, NULL, "lg", "confirm"), 2);
    busi_stop(b);
}
END_TEST

/* ---------- concurrency ---------- */

enum { CONC = 50 };

typedef struct conc_req {
    busi *b;
    int index;
    int status;
} conc_req;

static void *conc_req_run(void *arg)
{
    conc_req *r = arg;
    char path[128], body[64];
    snprintf(path, sizeof(path), "/api/Conc?gid=c%02d&trans_type=tcc&branch_id=%02d&op=try",
             r->index, r->index);
    snprintf(body, sizeof(body), "{\"i\":%d}", r->index);
    char *resp = NULL;
    r->status = call(r->b, "POST", path, body, &resp);
    free(resp);
    return NULL;
}

START_TEST(concurrent_requests_all_recorded_once)
{
    busi *b = busi_start();
    ck_assert_ptr_nonnull(b);
    busi_rule(b, "/api/Conc", NULL, "try", 409, NULL, 0, 10);
    conc_req reqs[CONC];
    pthread_t th[CONC];
    for (int i = 0; i < CONC; i++) {
        reqs[i] = (conc_req){b, i, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, conc_req_run, &reqs[i]), 0);
    }
    int failures = 0;
    for (int i = 0; i < CONC; i++) {
        pthread_join(th[i], NULL);
        ck_assert(reqs[i].status == 200 || reqs[i].status == 409);
        failures += reqs[i].status == 409;
    }
    ck_assert_int_eq(failures, 10); /* `times` is used up exactly under concurrency */
    ck_assert_int_eq(busi_count(b, "/api/Conc", NULL, "try"), CONC);

    busi_call *calls;
    size_t n = busi_calls(b, &calls);
    ck_assert_uint_eq(n, CONC);
    int seen[CONC] = {0};
    int sent_409 = 0;
    for (size_t i = 0; i < n; i++) {
        int idx = atoi(calls[i].gid + 1);
        ck_assert_int_ge(idx, 0);
        ck_assert_int_lt(idx, CONC);
        seen[idx]++;
        char body[64], branch[8];
        snprintf(body, sizeof(body), "{\"i\":%d}", idx);
        snprintf(branch, sizeof(branch), "%02d", idx);
        ck_assert_str_eq(calls[i].body, body);
        ck_assert_str_eq(calls[i].branch_id, branch);
        ck_assert_str_eq(calls[i].trans_type, "tcc");
        ck_assert_int_eq(calls[i].status_sent, reqs[idx].status);
        sent_409 += calls[i].status_sent == 409;
        if (i > 0)
            ck_assert_int_ge(calls[i].time_ms, calls[i - 1].time_ms);
    }
    for (int i = 0; i < CONC; i++)
        ck_assert_int_eq(seen[i], 1);
    ck_assert_int_eq(sent_409, 10);
    busi_calls_free(calls, n);
    busi_stop(b);
}
END_TEST

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    Suite *s = suite_create("busi");
    test_group g = {.suite = s, .timeout_s = 120};
    test_add(&g, default_answer_is_success);
    test_add(&g, rule_default_and_custom_bodies);
    test_add(&g, rule_specificity_beats_recency);
    test_add(&g, rule_newest_first_among_equals);
    test_add(&g, rule_times_run_out);
    test_add(&g, rule_delay_answers_late);
    test_add(&g, rule_delay_does_not_block_others);
    test_add(&g, stop_with_a_delayed_request_pending);
    test_add(&g, records_query_fields_method_and_headers);
    test_add(&g, records_custom_header_and_binary_body_on_one_connection);
    test_add(&g, records_an_aborted_upload_once);
    test_add(&g, reset_calls_keeps_rules);
    test_add(&g, wait_times_out);
    test_add(&g, wait_succeeds_when_the_call_arrives);
    test_add(&g, concurrent_requests_all_recorded_once);
    int rc = run_suite(s);
    curl_global_cleanup();
    return rc;
}
