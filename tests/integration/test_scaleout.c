/*
 * test_scaleout.c — three dtmq processes in one Kafka consumer group on one
 * store, taking a load of transactions from PREFIXsubmit; one is killed with
 * SIGKILL in the middle. Every transaction still ends, and a business step
 * runs a second time only if its first call was in flight when the process
 * died (its answer was lost with it) — never otherwise.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "busi.h"
#include "kafkatest.h"
#include "testlib.h"

enum { PROCS = 3, TXNS = 60 };

/* A step may repeat only when its first call was still in flight at the kill:
 * the first call started before it and the repeat started after it. */
static void assert_repeats_only_across_the_kill(busi_call *calls, size_t n, long long killed_at)
{
    int repeats = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            if (strcmp(calls[i].gid, calls[j].gid) != 0 || strcmp(calls[i].path, calls[j].path) != 0)
                continue;
            repeats++;
            ck_assert_msg(calls[i].time_ms <= killed_at + 50 && calls[j].time_ms >= killed_at,
                          "%s %s ran twice at %lld and %lld (kill at %lld)", calls[i].gid,
                          calls[i].path, calls[i].time_ms, calls[j].time_ms, killed_at);
        }
    fprintf(stderr, "scale-out: %d step(s) repeated after the kill\n", repeats);
}

START_TEST(three_processes_one_killed_every_transaction_ends)
{
    busi *svc = busi_start();
    busi_rule(svc, "/api/Out", NULL, NULL, 200, NULL, 100, -1);
    char store[512], id[32], prefix[64], group[64], submit[128], bootstrap[256];
    test_store_uri(store, sizeof(store));
    e2e_gid(id, sizeof(id), "so");
    snprintf(prefix, sizeof(prefix), "%s.", id);
    snprintf(group, sizeof(group), "g-%s", id);
    snprintf(submit, sizeof(submit), "%ssubmit", prefix);
    snprintf(bootstrap, sizeof(bootstrap), "%s", test_kafka_bootstrap());
    const char *args[] = {"--kafka", bootstrap, "--kafka-topic-prefix", prefix, "--kafka-group",
                          group, NULL};
    dtmq_proc p[PROCS];
    for (int i = 0; i < PROCS; i++)
        e2e_start(&p[i], store, args);
    char gids[TXNS][64];
    for (int i = 0; i < TXNS; i++) {
        e2e_gid(gids[i], sizeof(gids[i]), "so");
        char value[1024];
        snprintf(value, sizeof(value),
                 "{\"op\":\"submit\",\"gid\":\"%s\",\"trans_type\":\"saga\",\"steps\":["
                 "{\"action\":\"%s/api/Out\",\"compensate\":\"\"},{\"action\":\"%s/api/In\",\"compensate\":\"\"}],"
                 "\"payloads\":[\"{}\",\"{}\"]}", gids[i], busi_url(svc), busi_url(svc));
        ck_assert_int_eq(kt_produce(bootstrap, submit, gids[i], value, strlen(value), NULL), 0);
    }
    ck_assert_int_ge(busi_wait(svc, "/api/In", NULL, NULL, TXNS / 4, 30000), TXNS / 4);
    long long killed_at = test_wall_ms();
    ck_assert_int_eq(dtmq_stop(&p[0], SIGKILL, 10), 128 + SIGKILL);
    for (int i = 0; i < TXNS; i++)
        e2e_wait_status(&p[1 + i % 2], gids[i], "succeed", 90);
    for (int i = 0; i < TXNS; i++) {
        ck_assert_int_ge(busi_count(svc, "/api/Out", gids[i], "action"), 1);
        ck_assert_int_ge(busi_count(svc, "/api/In", gids[i], "action"), 1);
    }
    busi_call *calls;
    size_t n = busi_calls(svc, &calls);
    assert_repeats_only_across_the_kill(calls, n, killed_at);
    busi_calls_free(calls, n);
    e2e_stop(&p[1]);
    e2e_stop(&p[2]);
    busi_stop(svc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("scaleout");
    test_group g = {.suite = s, .timeout_s = 240};
    test_add(&g, three_processes_one_killed_every_transaction_ends);
    return run_suite(s);
}
