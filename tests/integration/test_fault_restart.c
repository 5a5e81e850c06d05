/*
 * test_fault_restart.c — dtmq's reliability suite, part two: the invariant
 * bank workload (tests/lib/fault_bank.h) while something dtmq depends on
 * goes away and comes back (see tests/fault/README.md):
 *
 *   kafka_restart    a PRIVATE Kafka (tests/services/kafka.sh, own port and
 *                    state dir) is stopped for a while under load and
 *                    restarted with its data kept; half the transactions
 *                    arrive over Kafka (dtm.submit), half the sagas' TransIn
 *                    are kafka:// branches answered by a dtmq worker;
 *   store_restart    [mongodb] a PRIVATE MongoDB-protocol server (tests/services/mongo.sh)
 *                    is stopped for a while and restarted with its data kept;
 *                    half the transactions arrive over the shared Kafka and
 *                    half the TransIn are kafka:// branches, so the ingress
 *                    takes messages again while the store is away;
 *                    [sqlite] not applicable: the store is an embedded file;
 *   branch_down      the bank service stops listening for longer than
 *                    RequestTimeout and comes back on the same port, then a
 *                    phase where every call is slower than RequestTimeout,
 *                    on top of the random 500/425/409 answers;
 *   scaleout_kill    three dtmq processes on one store in one Kafka consumer
 *                    group (the shared Kafka); one is killed with SIGKILL
 *                    mid-load.
 *
 * Each test asserts violations == 0 (which includes every acknowledged
 * transaction being final), that every transaction was acknowledged and the
 * fault really happened, and prints one line
 *   fault[<test>/<store>]: transactions=.. acked=.. succeed=.. failed=.. faults=..
 *     recovery_ms=.. resume_ms=.. violations=.. ...
 * recovery_ms: from the broken thing being back to the next branch call
 * answered 200 (for Kafka: of a Kafka transaction or branch); resume_ms: the
 * longest a transaction that was under way waited for its next such call.
 *
 * Knobs (environment; defaults keep the file within ~3 min on SQLite):
 *   DTMQ_FAULT_RESTART_TX    transactions per test (60)
 *   DTMQ_FAULT_KAFKA_DOWN_S  Kafka stopped this long (5)
 *   DTMQ_FAULT_STORE_DOWN_S  the server stopped this long (5)
 *   DTMQ_FAULT_BUSI_DOWN_S   bank service not listening this long (5; > RequestTimeout 2 s)
 *   DTMQ_FAULT_SLOW_S        every call stalls DTMQ_FAULT_SLOW_MS (2500) this long (4)
 *   DTMQ_FAULT_OUTAGES       how many times each outage is repeated (1)
 * and the workload's DTMQ_FAULT_FAIL_PCT, DTMQ_FAULT_ERR_PCT,
 * DTMQ_FAULT_DELAY_PCT, DTMQ_FAULT_DELAY_MS, DTMQ_FAULT_FINAL_WAIT_S (120),
 * DTMQ_FAULT_SEED, as in test_fault_kill9.
 */
#include <check.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault_bank.h"
#include "testlib.h"

enum { PROCS = 3 };

/* ---- private service instances (started in the parent by a fixture) ---- */

typedef struct private_service {
    const char *script; /* tests/services/<name>.sh */
    const char *port_var; /* DTMQ_KAFKA_PORT / DTMQ_MONGO_PORT */
    int port;
    char dir[256];      /* DTMQ_SERVICES_DIR of this instance */
    int up;
    char why[512];      /* why it did not start */
} private_service;

static private_service kafka_svc = {"tests/services/kafka.sh", "DTMQ_KAFKA_PORT", 0, "", 0, ""};
static private_service mongo_svc = {"tests/services/mongo.sh", "DTMQ_MONGO_PORT", 0, "", 0, ""};

static int port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* A free port in [lo, hi] whose next `span - 1` ports are free too; 0 if none. */
static int free_port_in(int lo, int hi, int span)
{
    for (int p = lo; p + span - 1 <= hi; p += span) {
        int ok = 1;
        for (int k = 0; k < span && ok; k++)
            ok = port_free(p + k);
        if (ok)
            return p;
    }
    return 0;
}

/* Runs `<script> <cmd>` with the instance's port and state dir; its output
 * goes to <dir>/<cmd>.out. Returns the exit status. */
static int service_cmd(const private_service *s, const char *cmd)
{
    char line[1024];
    snprintf(line, sizeof(line), "%s=%d DTMQ_SERVICES_DIR='%s' bash %s %s >>'%s/script.out' 2>&1",
             s->port_var, s->port, s->dir, s->script, cmd, s->dir);
    int rc = system(line);
    return rc == -1 ? -1 : WEXITSTATUS(rc);
}

static void service_up(private_service *s, const char *dir_template, int lo, int hi, int span)
{
    s->up = 0;
    s->why[0] = 0;
    snprintf(s->dir, sizeof(s->dir), "%s", dir_template);
    if (access(s->script, R_OK) != 0) {
        snprintf(s->why, sizeof(s->why), "%s not found (run from the repository root)", s->script);
        return;
    }
    if (mkdtemp(s->dir) == NULL) {
        snprintf(s->why, sizeof(s->why), "cannot create %s", dir_template);
        return;
    }
    s->port = free_port_in(lo, hi, span);
    if (s->port == 0) {
        snprintf(s->why, sizeof(s->why), "no free port in %d-%d", lo, hi);
        return;
    }
    if (service_cmd(s, "start") != 0) {
        snprintf(s->why, sizeof(s->why), "'%s start' failed on port %d (see %s/script.out)",
                 s->script, s->port, s->dir);
        return;
    }
    s->up = 1;
}

static void service_down(private_service *s)
{
    if (s->dir[0] == 0 || access(s->dir, F_OK) != 0)
        return;
    service_cmd(s, "stop");
    char line[512];
    snprintf(line, sizeof(line), "rm -rf '%s'", s->dir);
    if (system(line) != 0)
        fprintf(stderr, "fault: could not remove %s\n", s->dir);
    s->dir[0] = 0;
}

static void kafka_setup(void)
{
    service_up(&kafka_svc, "/tmp/dtmq-fault-kafka-XXXXXX", 19200, 19299, 2);
}

static void kafka_teardown(void)
{
    service_down(&kafka_svc);
}

static void mongo_setup(void)
{
    if (strcmp(test_store_kind(), "mongodb") == 0)
        service_up(&mongo_svc, "/tmp/dtmq-fault-mongo-XXXXXX", 27200, 27299, 1);
}

static void mongo_teardown(void)
{
    service_down(&mongo_svc);
}

/* ---- common parts of every test ----------------------------------------- */

static int outages(void)
{
    int n = fb_env_int("DTMQ_FAULT_OUTAGES", 1);
    return n < 1 ? 1 : n;
}

static fb_options workload_options(const char *name, long long span_ms)
{
    fb_options o = fb_options_from_env(name, fb_env_int("DTMQ_FAULT_RESTART_TX", 60));
    o.final_wait_s = fb_env_int("DTMQ_FAULT_FINAL_WAIT_S", 120);
    o.span_ms = span_ms;
    return o;
}

/* dtmq's e2e flags on store, plus Kafka (bootstrap, a private prefix and
 * group from id) when bootstrap is not NULL. */
static void start_dtmq(dtmq_proc *p, const char *store, const char *bootstrap, const char *id)
{
    char prefix[64], group[64];
    snprintf(prefix, sizeof(prefix), "%s.", id);
    snprintf(group, sizeof(group), "g-%s", id);
    const char *kafka_args[] = {"--kafka", bootstrap, "--kafka-topic-prefix", prefix,
                                "--kafka-group", group, NULL};
    e2e_start(p, store, bootstrap ? kafka_args : NULL);
}

/* Stops dtmq with SIGTERM (30 s); on anything but a clean exit prints the end
 * of its log. Returns the exit status (dtmq_stop's). The caller asserts it
 * after printing its figures. */
static int stop_dtmq(dtmq_proc *p)
{
    int rc = dtmq_stop(p, SIGTERM, 30);
    if (rc != 0) {
        char *log = dtmq_log(p);
        size_t n = log ? strlen(log) : 0;
        fprintf(stderr, "fault: dtmq pid %d exited %d on SIGTERM (-1: still running after 30 s, "
                        "killed); end of %s:\n%s\n",
                (int)p->pid, rc, p->log_path, log ? log + (n > 3000 ? n - 3000 : 0) : "");
        free(log);
    }
    return rc;
}

static void assert_stopped(int rc, const dtmq_proc *p)
{
    ck_assert_msg(rc == 0, "dtmq exited %d on SIGTERM (log %s)", rc, p->log_path);
}

/* The figures line of one test, then the assertions every test makes. */
static void report(const char *test, const fb_figures *f, int faults, const char *extra)
{
    fprintf(stderr,
            "fault[%s/%s]: transactions=%d acked=%d succeed=%d failed=%d via_kafka=%d "
            "kafka_calls=%ld faults=%d %srecovery_ms=%lld resume_ms=%lld unrecovered=%d "
            "violations=%d effects=%ld duplicates_absorbed=%ld null_comp=%ld hanging=%ld "
            "busi_fail=%ld injected_errors=%ld workload_ms=%lld final_wait_ms=%lld events=%zu\n",
            test, test_store_kind(), f->transactions, f->acked, f->succeed, f->failed, f->via_kafka,
            f->kafka_calls, faults, extra, f->max_recovery_ms, f->max_resume_ms, f->unrecovered,
            f->violations, f->applied, f->duplicates, f->null_comp, f->hanging, f->busi_fail,
            f->injected, f->workload_ms, f->final_wait_ms, f->events);
}

static void assert_outcome(const fb_figures *f, int faults, int faults_wanted)
{
    ck_assert_msg(f->violations == 0, "%d invariant violation(s), listed above as fault: VIOLATION",
                  f->violations);
    ck_assert_msg(f->acked == f->transactions, "only %d of %d transactions were acknowledged",
                  f->acked, f->transactions);
    ck_assert_msg(f->succeed + f->failed == f->transactions, "%d of %d transactions not final",
                  f->transactions - f->succeed - f->failed, f->transactions);
    ck_assert_msg(faults == faults_wanted, "only %d of %d faults were injected", faults,
                  faults_wanted);
    ck_assert_msg(f->unrecovered == 0, "%d outage(s) never followed by progress", f->unrecovered);
}

/* ---- a private service stopped and restarted with its data -------------- */

typedef struct outage_ctx {
    fault_bank *bank;
    private_service *svc;
    int down_ms, count, kafka_only;
    int done;             /* outages completed (stopped and back) */
    long long longest_ms; /* the longest from "stop" to answering again */
} outage_ctx;

static void *service_outages(void *arg)
{
    outage_ctx *c = arg;
    for (int i = 0; i < c->count; i++) {
        test_sleep_ms(2000);
        long long t = test_now_ms();
        if (service_cmd(c->svc, "stop") != 0)
            return NULL;
        test_sleep_ms(c->down_ms);
        if (service_cmd(c->svc, "restart") != 0) {
            fprintf(stderr, "fault: '%s restart' failed (see %s/script.out)\n", c->svc->script,
                    c->svc->dir);
            return NULL;
        }
        fb_mark_back(c->bank, c->kafka_only);
        if (test_now_ms() - t > c->longest_ms)
            c->longest_ms = test_now_ms() - t;
        c->done++;
    }
    return NULL;
}

/* Runs the workload of b while c's outages happen; returns the figures. */
static void run_with_outages(fault_bank *b, outage_ctx *c, const fb_options *o, fb_figures *f)
{
    pthread_t t;
    fb_workload_start(b);
    pthread_create(&t, NULL, service_outages, c);
    fb_workload_join(b);
    pthread_join(t, NULL);
    fb_wait_final(b, o->final_wait_s);
    fb_check(b, f);
}

START_TEST(kafka_restart)
{
    ck_assert_msg(kafka_svc.up, "private Kafka: %s", kafka_svc.why);
    char bootstrap[64], id[32], submit_topic[96], worker_topic[96], group[96], err[256];
    snprintf(bootstrap, sizeof(bootstrap), "127.0.0.1:%d", kafka_svc.port);
    e2e_gid(id, sizeof(id), "fr");
    snprintf(submit_topic, sizeof(submit_topic), "%s.submit", id);
    snprintf(worker_topic, sizeof(worker_topic), "%s.bank", id);
    snprintf(group, sizeof(group), "w-%s", id);
    int down_s = fb_env_int("DTMQ_FAULT_KAFKA_DOWN_S", 5), n_out = outages();
    fb_options o = workload_options("frk", (long long)n_out * (down_s + 12) * 1000);
    o.kafka_submit_pct = 50;
    o.kafka_branch_pct = 50;
    fault_bank *b = fb_new(&o);
    ck_assert_ptr_nonnull(b);
    fprintf(stderr, "fault[kafka-restart/%s]: seed=%u kafka=%s down_s=%d outages=%d\n",
            test_store_kind(), fb_seed(b), bootstrap, down_s, n_out);
    ck_assert_msg(fb_service_start(b, 0) == 0, "bank service did not start");
    ck_assert_msg(fb_start_worker(b, bootstrap, group, worker_topic, err, sizeof(err)) == 0,
                  "worker: %s", err);
    ck_assert_msg(fb_use_kafka_submit(b, bootstrap, submit_topic, err, sizeof(err)) == 0,
                  "producer: %s", err);
    char store[512];
    test_store_uri(store, sizeof(store));
    dtmq_proc d;
    start_dtmq(&d, store, bootstrap, id);
    fb_set_dtmq(b, 0, d.base_url);

    outage_ctx c = {.bank = b, .svc = &kafka_svc, .down_ms = down_s * 1000, .count = n_out,
                    .kafka_only = 1};
    fb_figures f;
    run_with_outages(b, &c, &o, &f);
    int rc = stop_dtmq(&d);
    fb_free(b);
    char extra[64];
    snprintf(extra, sizeof(extra), "kafka_down_ms=%lld ", c.longest_ms);
    report("kafka-restart", &f, c.done, extra);
    assert_outcome(&f, c.done, n_out);
    assert_stopped(rc, &d);
    ck_assert_msg(f.via_kafka > 0 && f.kafka_calls > 0, "no transaction went through Kafka");
}
END_TEST

START_TEST(store_restart)
{
    if (strcmp(test_store_kind(), "mongodb") != 0) {
        fprintf(stderr, "fault[store-restart/%s]: not applicable (embedded SQLite file has no "
                        "server to restart)\n",
                test_store_kind());
        return;
    }
    ck_assert_msg(mongo_svc.up, "private MongoDB-protocol server: %s", mongo_svc.why);
    char store[256], id[32], submit_topic[96], worker_topic[96], group[96], err[256];
    e2e_gid(id, sizeof(id), "fr");
    snprintf(store, sizeof(store), "mongodb://127.0.0.1:%d/dtmq_fault_%s", mongo_svc.port, id + 3);
    snprintf(submit_topic, sizeof(submit_topic), "%s.submit", id);
    snprintf(worker_topic, sizeof(worker_topic), "%s.bank", id);
    snprintf(group, sizeof(group), "w-%s", id);
    /* half the transactions over the shared Kafka, half the TransIn kafka://:
     * the ingress lanes take messages again while the store is away */
    const char *bootstrap = getenv("DTMQ_TEST_KAFKA");
    ck_assert_msg(bootstrap && bootstrap[0], "DTMQ_TEST_KAFKA is not set");
    int down_s = fb_env_int("DTMQ_FAULT_STORE_DOWN_S", 5), n_out = outages();
    fb_options o = workload_options("frs", (long long)n_out * (down_s + 6) * 1000);
    o.kafka_submit_pct = 50;
    o.kafka_branch_pct = 50;
    fault_bank *b = fb_new(&o);
    ck_assert_ptr_nonnull(b);
    fprintf(stderr, "fault[store-restart/%s]: seed=%u store=%s kafka=%s down_s=%d outages=%d\n",
            test_store_kind(), fb_seed(b), store, bootstrap, down_s, n_out);
    ck_assert_msg(fb_service_start(b, 0) == 0, "bank service did not start");
    ck_assert_msg(fb_start_worker(b, bootstrap, group, worker_topic, err, sizeof(err)) == 0,
                  "worker: %s", err);
    ck_assert_msg(fb_use_kafka_submit(b, bootstrap, submit_topic, err, sizeof(err)) == 0,
                  "producer: %s", err);
    dtmq_proc d;
    start_dtmq(&d, store, bootstrap, id);
    fb_set_dtmq(b, 0, d.base_url);

    outage_ctx c = {.bank = b, .svc = &mongo_svc, .down_ms = down_s * 1000, .count = n_out};
    fb_figures f;
    run_with_outages(b, &c, &o, &f);
    int rc = stop_dtmq(&d);
    fb_free(b);
    char extra[64];
    snprintf(extra, sizeof(extra), "store_down_ms=%lld ", c.longest_ms);
    report("store-restart", &f, c.done, extra);
    assert_outcome(&f, c.done, n_out);
    assert_stopped(rc, &d);
    ck_assert_msg(f.via_kafka > 0 && f.kafka_calls > 0, "no transaction went through Kafka");
}
END_TEST

/* ---- the bank service down, then slow ----------------------------------- */

typedef struct busi_fault_ctx {
    fault_bank *bank;
    int down_ms, slow_ms, slow_call_ms, count, err_pct, delay_pct, delay_ms;
    int downs, slows;
    long long longest_down_ms;
} busi_fault_ctx;

static int restart_service(fault_bank *b, int port)
{
    for (int attempt = 0; attempt < 50; attempt++) { /* the port may linger a moment */
        if (fb_service_start(b, port) == 0)
            return 0;
        test_sleep_ms(200);
    }
    return -1;
}

static void *busi_faults(void *arg)
{
    busi_fault_ctx *c = arg;
    int port = fb_service_port(c->bank);
    for (int i = 0; i < c->count; i++) {
        test_sleep_ms(2000);
        long long t = test_now_ms();
        fb_service_stop(c->bank); /* connection refused from now on */
        test_sleep_ms(c->down_ms);
        if (restart_service(c->bank, port) != 0) {
            fprintf(stderr, "fault: the bank service could not listen on %d again\n", port);
            return NULL;
        }
        fb_mark_back(c->bank, 0);
        if (test_now_ms() - t > c->longest_down_ms)
            c->longest_down_ms = test_now_ms() - t;
        c->downs++;
        test_sleep_ms(2000);
        fb_set_faults(c->bank, c->err_pct, 100, c->slow_call_ms); /* every call too slow */
        test_sleep_ms(c->slow_ms);
        fb_set_faults(c->bank, c->err_pct, c->delay_pct, c->delay_ms);
        fb_mark_back(c->bank, 0);
        c->slows++;
    }
    return NULL;
}

START_TEST(branch_down)
{
    int down_s = fb_env_int("DTMQ_FAULT_BUSI_DOWN_S", 5), slow_s = fb_env_int("DTMQ_FAULT_SLOW_S", 4);
    int n_out = outages();
    fb_options o = workload_options("frb", (long long)n_out * (down_s + slow_s + 5) * 1000);
    fault_bank *b = fb_new(&o);
    ck_assert_ptr_nonnull(b);
    busi_fault_ctx c = {.bank = b, .down_ms = down_s * 1000, .slow_ms = slow_s * 1000,
                        .slow_call_ms = fb_env_int("DTMQ_FAULT_SLOW_MS", 2500), .count = n_out,
                        .err_pct = o.err_pct, .delay_pct = o.delay_pct, .delay_ms = o.delay_ms};
    fprintf(stderr, "fault[branch-down/%s]: seed=%u down_s=%d slow_s=%d slow_call_ms=%d outages=%d\n",
            test_store_kind(), fb_seed(b), down_s, slow_s, c.slow_call_ms, n_out);
    ck_assert_msg(fb_service_start(b, 0) == 0, "bank service did not start");
    char store[512];
    test_store_uri(store, sizeof(store));
    dtmq_proc d;
    start_dtmq(&d, store, NULL, "unused");
    fb_set_dtmq(b, 0, d.base_url);

    pthread_t t;
    fb_workload_start(b);
    pthread_create(&t, NULL, busi_faults, &c);
    fb_workload_join(b);
    pthread_join(t, NULL);
    fb_wait_final(b, o.final_wait_s);
    fb_figures f;
    fb_check(b, &f);
    int rc = stop_dtmq(&d);
    fb_free(b);
    char extra[96];
    snprintf(extra, sizeof(extra), "down_ms=%lld slow_phases=%d ", c.longest_down_ms, c.slows);
    report("branch-down", &f, c.downs + c.slows, extra);
    assert_outcome(&f, c.downs + c.slows, 2 * n_out);
    assert_stopped(rc, &d);
}
END_TEST

/* ---- three processes, one killed ---------------------------------------- */

START_TEST(scaleout_kill)
{
    char bootstrap[256], id[32], submit_topic[96], worker_topic[96], group[96], err[256];
    snprintf(bootstrap, sizeof(bootstrap), "%s", test_kafka_bootstrap());
    e2e_gid(id, sizeof(id), "fr");
    snprintf(submit_topic, sizeof(submit_topic), "%s.submit", id);
    snprintf(worker_topic, sizeof(worker_topic), "%s.bank", id);
    snprintf(group, sizeof(group), "w-%s", id);
    fb_options o = workload_options("fro", 12000);
    o.kafka_submit_pct = 50;
    o.kafka_branch_pct = 30;
    fault_bank *b = fb_new(&o);
    ck_assert_ptr_nonnull(b);
    fprintf(stderr, "fault[scaleout-kill/%s]: seed=%u processes=%d\n", test_store_kind(), fb_seed(b),
            PROCS);
    ck_assert_msg(fb_service_start(b, 0) == 0, "bank service did not start");
    ck_assert_msg(fb_start_worker(b, bootstrap, group, worker_topic, err, sizeof(err)) == 0,
                  "worker: %s", err);
    ck_assert_msg(fb_use_kafka_submit(b, bootstrap, submit_topic, err, sizeof(err)) == 0,
                  "producer: %s", err);
    char store[512];
    test_store_uri(store, sizeof(store));
    dtmq_proc d[PROCS];
    for (int i = 0; i < PROCS; i++) {
        start_dtmq(&d[i], store, bootstrap, id);
        fb_set_dtmq(b, i, d[i].base_url);
    }

    fb_workload_start(b);
    long long until = test_now_ms() + 30000; /* kill once a third is acknowledged */
    while (fb_acked(b) < o.transactions / 3 && test_now_ms() < until)
        test_sleep_ms(100);
    fb_set_dtmq(b, 0, NULL);
    int rc = dtmq_stop(&d[0], SIGKILL, 10);
    fb_mark_back(b, 0); /* the survivors are "back" at once: resume_ms shows the take-over */
    fb_workload_join(b);
    fb_wait_final(b, o.final_wait_s);
    fb_figures f;
    fb_check(b, &f);
    int rc1 = stop_dtmq(&d[1]), rc2 = stop_dtmq(&d[2]);
    fb_free(b);
    report("scaleout-kill", &f, rc == 128 + SIGKILL, "");
    assert_outcome(&f, rc == 128 + SIGKILL, 1);
    assert_stopped(rc1, &d[1]);
    assert_stopped(rc2, &d[2]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fault_restart");
    int tx = fb_env_int("DTMQ_FAULT_RESTART_TX", 60), wait = fb_env_int("DTMQ_FAULT_FINAL_WAIT_S", 120);
    int per_outage = 30 + fb_env_int("DTMQ_FAULT_KAFKA_DOWN_S", 5) +
                     fb_env_int("DTMQ_FAULT_STORE_DOWN_S", 5) + fb_env_int("DTMQ_FAULT_BUSI_DOWN_S", 5) +
                     fb_env_int("DTMQ_FAULT_SLOW_S", 4);
    int timeout = 120 + wait + tx / 5 + outages() * per_outage;
    struct {
        const char *name;
        const TTest *test;
        SFun setup, teardown;
    } cases[] = {
        {"kafka_restart", kafka_restart, kafka_setup, kafka_teardown},
        {"store_restart", store_restart, mongo_setup, mongo_teardown},
        {"branch_down", branch_down, NULL, NULL},
        {"scaleout_kill", scaleout_kill, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, timeout);
        if (cases[i].setup) /* in the parent: the private service is stopped even on failure */
            tcase_add_unchecked_fixture(tc, cases[i].setup, cases[i].teardown);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return run_suite(s);
}
