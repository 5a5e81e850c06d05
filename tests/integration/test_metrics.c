/*
 * test_metrics.c — /api/metrics after real work: DTM's metric names with the
 * right counts for finished transactions, branch calls and requests; dtmq's
 * gauges (transactions by status, calls in flight) and store latency
 * histograms; every line in Prometheus' text format.
 */
#include <check.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busi.h"
#include "testlib.h"

/* The value of the sample line that starts with `series ` (exact), or -1. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return atof(p + n + 1);
    return -1;
}

static void assert_exposition_format(const char *text)
{
    regex_t sample_re, comment_re;
    ck_assert_int_eq(regcomp(&sample_re,
                             "^[a-zA-Z_:][a-zA-Z0-9_:]*(\\{([a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\.)*\",?)*\\})? "
                             "[-+0-9.eEInfa]+$", REG_EXTENDED | REG_NOSUB), 0);
    ck_assert_int_eq(regcomp(&comment_re, "^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$", REG_EXTENDED | REG_NOSUB), 0);
    char *copy = strdup(text);
    int lines = 0;
    for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int ok = regexec(line[0] == '#' ? &comment_re : &sample_re, line, 0, NULL, 0) == 0;
        ck_assert_msg(ok, "not Prometheus text: '%s'", line);
        lines++;
    }
    ck_assert_int_gt(lines, 20);
    free(copy);
    regfree(&sample_re);
    regfree(&comment_re);
}

START_TEST(metrics_count_what_happened)
{
    busi *svc = busi_start();
    busi_rule(svc, "/api/In", NULL, NULL, 409, NULL, 0, -1);
    char store[512], body[1024];
    test_store_uri(store, sizeof(store));
    dtmq_proc p;
    e2e_start(&p, store, NULL);
    snprintf(body, sizeof(body), "{\"gid\":\"met-ok\",\"trans_type\":\"saga\",\"wait_result\":true,\"steps\":[{\"action\":\"%s/api/Out\",\"compensate\":\"%s/api/OutRevert\"}],\"payloads\":[\"{}\"]}",
             busi_url(svc), busi_url(svc));
    e2e_post_expect(&p, "submit", body, 200);
    snprintf(body, sizeof(body), "{\"gid\":\"met-fail\",\"trans_type\":\"saga\",\"wait_result\":true,\"steps\":[{\"action\":\"%s/api/Out\",\"compensate\":\"%s/api/OutRevert\"},{\"action\":\"%s/api/In\",\"compensate\":\"%s/api/InRevert\"}],\"payloads\":[\"{}\",\"{}\"]}",
             busi_url(svc), busi_url(svc), busi_url(svc), busi_url(svc));
    e2e_post_expect(&p, "submit", body, 409);
    char url[256], *text = NULL;
    snprintf(url, sizeof(url), "%s/api/metrics", p.base_url);
    ck_assert_int_eq(http_do("GET", url, NULL, &text), 200);
    assert_exposition_format(text);
    ck_assert(sample(text, "dtm_transaction_process_total{model=\"saga\",status=\"OK\"}") == 1);
    ck_assert(sample(text, "dtm_transaction_process_total{model=\"saga\",status=\"FAIL\"}") == 1);
    ck_assert(sample(text, "dtm_branch_process_total{model=\"saga\",branchid=\"01\",branchtype=\"action\",status=\"OK\"}") == 2);
    ck_assert(sample(text, "dtm_branch_process_total{model=\"saga\",branchid=\"02\",branchtype=\"action\",status=\"FAIL\"}") == 1);
    ck_assert(sample(text, "dtm_branch_process_total{model=\"saga\",branchid=\"01\",branchtype=\"compensate\",status=\"OK\"}") == 1);
    ck_assert(sample(text, "dtm_server_process_total{type=\"http\",api=\"/api/dtmsvr/submit\",status=\"OK\"}") == 1);
    ck_assert(sample(text, "dtm_server_process_total{type=\"http\",api=\"/api/dtmsvr/submit\",status=\"FAIL\"}") == 1);
    ck_assert(sample(text, "dtmq_transactions{status=\"succeed\"}") == 1);
    ck_assert(sample(text, "dtmq_transactions{status=\"failed\"}") == 1);
    ck_assert(sample(text, "dtmq_transactions{status=\"submitted\"}") == 0);
    ck_assert(sample(text, "dtmq_branch_calls_in_flight") == 0);
    ck_assert(sample(text, "dtm_transaction_handled_duration_count{model=\"saga\"}") == 2);
    ck_assert(sample(text, "dtmq_store_operation_seconds_count{op=\"create_trans\"}") >= 2);
    ck_assert(sample(text, "dtmq_store_operation_seconds_bucket{op=\"create_trans\",le=\"+Inf\"}") >= 2);
    ck_assert_ptr_nonnull(strstr(text, "# TYPE dtm_server_response_duration histogram"));
    free(text);
    e2e_stop(&p);
    busi_stop(svc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    test_group g = {.suite = s, .timeout_s = 60};
    test_add(&g, metrics_count_what_happened);
    return run_suite(s);
}
