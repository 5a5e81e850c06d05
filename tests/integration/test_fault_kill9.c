/*
 * test_fault_kill9.c — dtmq's reliability suite, part one: an invariant
 * workload under repeated kill -9 (see tests/fault/README.md).
 *
 * The bank service, the workload (sagas TransOut→TransIn, and 2-phase msgs
 * TransOut+Deposit either submitted or left to query-back), the poller and
 * the checks are the shared library tests/lib/fault_bank.h. Here the workload
 * is submitted while a killer thread kill -9s dtmq at random moments and
 * restarts it on the same store. At the end every invariant is checked, a
 * history of client-visible events is verified, and one line of figures is
 * printed on stderr.
 *
 * Knobs (environment): DTMQ_FAULT_TRANSACTIONS (150), DTMQ_FAULT_KILLS (7),
 * DTMQ_FAULT_FAIL_PCT (20: TransIn business failures), DTMQ_FAULT_ERR_PCT
 * (10: random 500/425), DTMQ_FAULT_DELAY_PCT (2: calls stalled
 * DTMQ_FAULT_DELAY_MS, 5000), DTMQ_FAULT_FINAL_WAIT_S (150), DTMQ_FAULT_SEED
 * (random).
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault_bank.h"
#include "testlib.h"

typedef struct killer_ctx {
    fault_bank *bank;
    const char *store;
    int kills_wanted;
    dtmq_proc dtmq; /* the incarnation that is up (owned by the killer while it runs) */
    int kills;
    int restart_fail;
} killer_ctx;

/* Starts dtmq with e2e_start's flags; 0 or -1. */
static int restart_dtmq(const char *store, dtmq_proc *next)
{
    const char *args[] = {"--store", store, "--kafka", "off", "--retry-interval", "1",
                          "--retry-interval-max", "4", "--trans-cron-interval", "1",
                          "--timeout-to-fail", "3", "--request-timeout", "2",
                          "--log-level", "debug", NULL};
    int exit_status = 0;
    if (dtmq_start(next, args, NULL, &exit_status) == 0)
        return 0;
    fprintf(stderr, "fault: dtmq did not restart (exit %d), log %s\n", exit_status, next->log_path);
    return -1;
}

static void *killer(void *arg)
{
    killer_ctx *k = arg;
    for (int i = 0; i < k->kills_wanted; i++) {
        test_sleep_ms(500 + fb_rand(k->bank, 1501));
        fb_set_dtmq(k->bank, 0, NULL);
        int rc = dtmq_stop(&k->dtmq, SIGKILL, 10);
        if (rc != 128 + SIGKILL)
            fprintf(stderr, "fault: kill -9 of dtmq pid %d gave %d\n", (int)k->dtmq.pid, rc);
        k->kills++;
        dtmq_proc next;
        if (restart_dtmq(k->store, &next) != 0) {
            k->restart_fail++;
            if (restart_dtmq(k->store, &next) != 0) {
                k->restart_fail++;
                return NULL;
            }
        }
        k->dtmq = next;
        fb_set_dtmq(k->bank, 0, next.base_url);
        fb_mark_back(k->bank, 0);
    }
    return NULL;
}

START_TEST(invariants_hold_under_repeated_kill9)
{
    int n_tx = fb_env_int("DTMQ_FAULT_TRANSACTIONS", 150);
    killer_ctx k = {.kills_wanted = fb_env_int("DTMQ_FAULT_KILLS", 7)};
    fb_options o = fb_options_from_env("fk", n_tx);
    o.span_ms = (long long)k.kills_wanted * 2000 + 2000; /* spread over the kill window */
    fault_bank *bank = fb_new(&o);
    ck_assert_ptr_nonnull(bank);
    k.bank = bank;
    const char *kind = getenv("DTMQ_TEST_STORE_KIND");
    kind = kind && kind[0] ? kind : "sqlite";
    fprintf(stderr, "fault[kill9/%s]: seed=%u transactions=%d kills=%d fail_pct=%d err_pct=%d "
                    "delay_pct=%d\n",
            kind, fb_seed(bank), n_tx, k.kills_wanted, o.fail_pct, o.err_pct, o.delay_pct);

    ck_assert_msg(fb_service_start(bank, 0) == 0, "bank service did not start");
    char store[512];
    test_store_uri(store, sizeof(store));
    k.store = store;
    e2e_start(&k.dtmq, store, NULL);
    fb_set_dtmq(bank, 0, k.dtmq.base_url);

    /* the workload under the killer */
    pthread_t kt;
    fb_workload_start(bank);
    pthread_create(&kt, NULL, killer, &k);
    fb_workload_join(bank);
    pthread_join(kt, NULL);
    ck_assert_msg(k.restart_fail == 0, "dtmq did not restart on the same store %d time(s)",
                  k.restart_fail);

    /* wait (bounded) until every acknowledged transaction is final, then check */
    fb_wait_final(bank, o.final_wait_s);
    fb_figures f;
    int violations = fb_check(bank, &f);
    e2e_stop(&k.dtmq);
    fprintf(stderr,
            "fault[kill9/%s]: transactions=%d acked=%d succeed=%d failed=%d kills=%d "
            "violations=%d effects=%ld duplicates_absorbed=%ld null_comp=%ld hanging=%ld "
            "busi_fail=%ld injected_errors=%ld max_recovery_ms=%lld unrecovered_restarts=%d "
            "workload_ms=%lld final_wait_ms=%lld max_poll_ms=%lld events=%zu\n",
            kind, f.transactions, f.acked, f.succeed, f.failed, k.kills, violations, f.applied,
            f.duplicates, f.null_comp, f.hanging, f.busi_fail, f.injected, f.max_recovery_ms,
            f.unrecovered, f.workload_ms, f.final_wait_ms, f.max_poll_ms, f.events);
    fb_free(bank);

    ck_assert_msg(violations == 0, "%d invariant violation(s), listed above as fault: VIOLATION",
                  violations);
    ck_assert_msg(k.kills == k.kills_wanted, "only %d of %d kills happened", k.kills,
                  k.kills_wanted);
    ck_assert_msg(f.acked == n_tx, "only %d of %d transactions were acknowledged", f.acked, n_tx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fault_kill9");
    test_group g = {.suite = s};
    int tx = fb_env_int("DTMQ_FAULT_TRANSACTIONS", 150), kills = fb_env_int("DTMQ_FAULT_KILLS", 7);
    g.timeout_s = 180 + 10 * kills + tx / 5;
    test_add(&g, invariants_hold_under_repeated_kill9);
    return run_suite(s);
}
