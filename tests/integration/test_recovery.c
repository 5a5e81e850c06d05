/*
 * test_recovery.c — several dtmq processes on one store. Each transaction is
 * run by one process at a time (the store's lease): with two processes
 * sharing the load no business step runs twice; when one is killed, the other
 * finishes what it had started once the lease runs out; when one stops
 * gracefully it hands its transactions back at once.
 */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "busi.h"
#include "testlib.h"

enum { SAGAS = 30 };

typedef struct pair_env {
    busi *svc;
    dtmq_proc a, b;
    char store[512];
    char gids[SAGAS][64];
} pair_env;

static void pair_start(pair_env *env)
{
    env->svc = busi_start();
    ck_assert_ptr_nonnull(env->svc);
    test_store_uri(env->store, sizeof(env->store));
    e2e_start(&env->a, env->store, NULL);
    e2e_start(&env->b, env->store, NULL);
}

/* Submits a 2-step saga (/api/Out then /api/In) with gid env->gids[i] to p. */
static void submit_saga(pair_env *env, const dtmq_proc *p, int i)
{
    char out[256], in[256];
    snprintf(out, sizeof(out), "%s/api/Out", busi_url(env->svc));
    snprintf(in, sizeof(in), "%s/api/In", busi_url(env->svc));
    e2e_gid(env->gids[i], sizeof(env->gids[i]), "rec");
    json_t *body = json_pack("{s:s, s:s, s:[{s:s, s:s}, {s:s, s:s}], s:[s, s]}", "gid",
                             env->gids[i], "trans_type", "saga", "steps", "action", out,
                             "compensate", "", "action", in, "compensate", "", "payloads",
                             "{\"n\":1}", "{\"n\":2}");
    char *text = json_dumps(body, JSON_COMPACT);
    e2e_post_expect(p, "submit", text, 200);
    free(text);
    json_decref(body);
}

static void assert_each_step_ran_once(pair_env *env, int count)
{
    for (int i = 0; i < count; i++) {
        ck_assert_int_eq(busi_count(env->svc, "/api/Out", env->gids[i], "action"), 1);
        ck_assert_int_eq(busi_count(env->svc, "/api/In", env->gids[i], "action"), 1);
    }
}

START_TEST(two_processes_share_the_load_and_never_run_a_step_twice)
{
    pair_env env;
    pair_start(&env);
    busi_rule(env.svc, "/api/Out", NULL, NULL, 200, NULL, 50, -1);
    for (int i = 0; i < SAGAS; i++)
        submit_saga(&env, i % 2 ? &env.a : &env.b, i);
    for (int i = 0; i < SAGAS; i++)
        e2e_wait_status(i % 2 ? &env.b : &env.a, env.gids[i], "succeed", 30); /* seen by the other */
    assert_each_step_ran_once(&env, SAGAS);
    e2e_stop(&env.a);
    e2e_stop(&env.b);
    busi_stop(env.svc);
}
END_TEST

START_TEST(killed_process_work_is_finished_by_the_other)
{
    pair_env env;
    pair_start(&env);
    busi_rule(env.svc, "/api/In", NULL, NULL, 200, NULL, 1500, -1); /* slow second step */
    for (int i = 0; i < 5; i++)
        submit_saga(&env, &env.a, i);
    /* every saga's second step is in flight, so every first step's answer
     * was recorded (the second is only called after that) */
    ck_assert_int_ge(busi_wait(env.svc, "/api/In", NULL, NULL, 5, 10000), 5);
    ck_assert_int_eq(dtmq_stop(&env.a, SIGKILL, 10), 128 + SIGKILL);
    for (int i = 0; i < 5; i++)
        e2e_wait_status(&env.b, env.gids[i], "succeed", 40);
    for (int i = 0; i < 5; i++) /* the first step had answered: never repeated */
        ck_assert_int_eq(busi_count(env.svc, "/api/Out", env.gids[i], "action"), 1);
    e2e_stop(&env.b);
    busi_stop(env.svc);
}
END_TEST

START_TEST(graceful_stop_hands_transactions_over_at_once)
{
    pair_env env;
    pair_start(&env);
    /* the second step keeps answering ONGOING, so process a holds it */
    busi_rule(env.svc, "/api/In", NULL, NULL, 425, NULL, 0, 1);
    submit_saga(&env, &env.a, 0);
    ck_assert_int_ge(busi_wait(env.svc, "/api/In", NULL, NULL, 1, 10000), 1);
    e2e_stop(&env.a);
    /* a released the lease (next_cron_time = now), and its retry interval
     * after ONGOING is 1 s: b must finish well before the 7 s lease would
     * have run out */
    long long t0 = 0;
    busi_call *calls;
    size_t n = busi_calls(env.svc, &calls);
    t0 = calls[n - 1].time_ms;
    busi_calls_free(calls, n);
    e2e_wait_status(&env.b, env.gids[0], "succeed", 10);
    n = busi_calls(env.svc, &calls);
    long long took = calls[n - 1].time_ms - t0;
    busi_calls_free(calls, n);
    ck_assert_msg(took < 5000, "handover took %lld ms", took);
    e2e_stop(&env.b);
    busi_stop(env.svc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("recovery");
    test_group g = {.suite = s, .timeout_s = 120};
    test_add(&g, two_processes_share_the_load_and_never_run_a_step_twice);
    test_add(&g, killed_process_work_is_finished_by_the_other);
    test_add(&g, graceful_stop_hands_transactions_over_at_once);
    return run_suite(s);
}
