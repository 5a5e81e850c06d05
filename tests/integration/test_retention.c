/*
 * test_retention.c — FinishedDataExpire: a finished transaction is deleted
 * once it has been finished that long (and its gid is free again); an
 * unfinished one is never deleted; with the default 0 nothing is deleted.
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

static const char SAGA[] = "{\"gid\":\"%s\",\"trans_type\":\"saga\",\"wait_result\":true,"
                           "\"steps\":[{\"action\":\"\",\"compensate\":\"\"}],\"payloads\":[\"\"]}";
/* prepared and never submitted; its query-back is far in the future */
static const char PREPARED[] = "{\"gid\":\"%s\",\"trans_type\":\"msg\",\"timeout_to_fail\":3600,"
                               "\"query_prepared\":\"http://127.0.0.1:9/q\","
                               "\"steps\":[{\"action\":\"http://127.0.0.1:9/a\"}],\"payloads\":[\"\"]}";

static void post(const dtmq_proc *p, const char *route, const char *fmt, const char *gid)
{
    char body[512];
    snprintf(body, sizeof(body), fmt, gid);
    e2e_post_expect(p, route, body, 200);
}

/* Waits up to timeout_s for gid to be gone from /query; 1 if it went. */
static int wait_gone(const dtmq_proc *p, const char *gid, int timeout_s)
{
    char st[32];
    for (int i = 0; i < timeout_s * 10; i++) {
        if (e2e_status(p, gid, st, sizeof(st))[0] == '\0')
            return 1;
        usleep(100000);
    }
    return 0;
}

START_TEST(finished_transactions_expire_unfinished_stay)
{
    char store[512];
    test_store_uri(store, sizeof(store));
    dtmq_proc p;
    const char *args[] = {"--finished-data-expire", "2", NULL};
    e2e_start(&p, store, args);
    post(&p, "submit", SAGA, "ret-done");
    post(&p, "prepare", PREPARED, "ret-open");
    char st[32];
    ck_assert_str_eq(e2e_status(&p, "ret-done", st, sizeof(st)), "succeed");
    ck_assert_msg(wait_gone(&p, "ret-done", 20), "a transaction finished 2 s ago is still stored");
    ck_assert_str_eq(e2e_status(&p, "ret-open", st, sizeof(st)), "prepared");
    /* its gid is free again: a new transaction of that gid runs */
    post(&p, "submit", SAGA, "ret-done");
    ck_assert_str_eq(e2e_status(&p, "ret-done", st, sizeof(st)), "succeed");
    char *log = dtmq_log(&p);
    ck_assert_msg(strstr(log, "retention: deleted") != NULL, "no retention line in the log");
    free(log);
    e2e_stop(&p);
}
END_TEST

START_TEST(nothing_expires_by_default)
{
    char store[512];
    test_store_uri(store, sizeof(store));
    dtmq_proc p;
    e2e_start(&p, store, NULL);
    post(&p, "submit", SAGA, "keep-1");
    sleep(4); /* longer than the other test's expiry and two cron intervals */
    char st[32];
    ck_assert_str_eq(e2e_status(&p, "keep-1", st, sizeof(st)), "succeed");
    e2e_stop(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("retention");
    test_group g = {.suite = s, .timeout_s = 90};
    test_add(&g, finished_transactions_expire_unfinished_stay);
    test_add(&g, nothing_expires_by_default);
    return run_suite(s);
}
