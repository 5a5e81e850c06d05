/*
 * test_fault_checkback.c — dtmq's reliability suite: the RocketMQ-style
 * check-back matrix of 2-phase messages (see tests/fault/README.md,
 * "Check-back matrix").
 *
 * Many msgs, each with one Kafka branch (kafka://PREFIXcheckback), so
 * "delivered" means "a message on that topic". The origin service (busi, in
 * this process) plays five behaviours, chosen by the msg's index:
 *
 *   commit-now          prepare, then submit at once
 *   rollback-now        prepare, then abort at once
 *   commit-on-query     prepare only; QueryPrepared answers 200
 *   rollback-on-query   prepare only; QueryPrepared answers 409
 *   ongoing             prepare only; QueryPrepared answers 425 for ever
 *
 * Asserted at the end:
 *   - status: commit-* succeed, rollback-* failed, ongoing still prepared;
 *   - the topic holds every committed gid (at least once) and no other gid;
 *   - qb_finished = 0: no query-back for a msg the client had already
 *     finished (commit-now, rollback-now), and none for a *-on-query msg
 *     after its first query-back, which decided it (200 or 409);
 *   - qb_duplicates = 0: no *-on-query msg was asked back more than once;
 *   - early_qb = 0: no msg was asked back before its timeout_to_fail
 *     (counted from the moment the client sent the prepare);
 *   - every ongoing msg was asked back at least DTMQ_FAULT_CHECKBACK_MIN_QB
 *     times (the test waits for that, bounded), never twice within 90 % of
 *     its retry_interval (ONGOING keeps the interval, docs/protocol.md).
 *     ongoing_stopped (figure only) counts those not asked within the last
 *     3 intervals + 3 s before the end.
 *
 * One `fault[checkback/STORE]:` line of figures on stderr.
 * Knobs (environment): DTMQ_FAULT_CHECKBACK_MSGS (300; 60 on mongodb, see
 * matrix_size), DTMQ_FAULT_CHECKBACK_MIN_QB
 * (3), DTMQ_FAULT_CHECKBACK_WAIT_S (120: bound on waiting for the decided msgs).
 */
#include <check.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "busi.h"
#include "kafkatest.h"
#include "testlib.h"

enum { TIMEOUT_TO_FAIL_S = 3, RETRY_INTERVAL_S = 2, SUBMITTERS = 4 };

/* 300 msgs on either store. */
static int matrix_size(void)
{
    return test_env_int("DTMQ_FAULT_CHECKBACK_MSGS", 300, 5, 100000);
}

/* ---- the matrix --------------------------------------------------------- */

enum { B_COMMIT_NOW, B_ROLLBACK_NOW, B_COMMIT_ON_QUERY, B_ROLLBACK_ON_QUERY, B_ONGOING, B_COUNT };
static const char *const behaviour_names[] = {"commit-now", "rollback-now", "commit-on-query",
                                              "rollback-on-query", "ongoing"};

typedef struct cmsg {
    char gid[64];
    int behaviour;
    long long prepare_sent_wall_ms;
    int prepare_status, finish_status; /* HTTP answers; finish: submit / abort (0 when none) */
    char status[16];                   /* final /query status */
    int delivered;                     /* messages on the topic */
    int qb;                            /* query-backs received */
    long long first_qb_ms, last_qb_ms, min_gap_ms, max_gap_ms;
    int qb_after_first;
} cmsg;

typedef struct matrix {
    busi *svc;
    dtmq_proc dtmq;
    char store[512], prefix[64], group[64], bootstrap[256], topic[160];
    cmsg *m;
    int n;
    pthread_mutex_t next_mu;
    int next;
} matrix;

static int committed(const cmsg *c)
{
    return c->behaviour == B_COMMIT_NOW || c->behaviour == B_COMMIT_ON_QUERY;
}

static const char *want_status(const cmsg *c)
{
    return committed(c) ? "succeed" : c->behaviour == B_ONGOING ? "prepared" : "failed";
}

static char *msg_body(const matrix *x, const cmsg *c)
{
    char *text = NULL;
    ck_assert_int_ge(asprintf(&text,
                              "{\"gid\":\"%s\",\"trans_type\":\"msg\",\"query_prepared\":"
                              "\"%s/api/QueryPrepared\",\"timeout_to_fail\":%d,\"retry_interval\":%d,"
                              "\"steps\":[{\"action\":\"kafka://%s\"}],"
                              "\"payloads\":[\"{\\\"gid\\\":\\\"%s\\\"}\"]}",
                              c->gid, busi_url(x->svc), TIMEOUT_TO_FAIL_S, RETRY_INTERVAL_S,
                              x->topic, c->gid),
                     0);
    return text;
}

static int post(const matrix *x, const char *route, const char *body)
{
    char path[64];
    snprintf(path, sizeof(path), "/api/dtmsvr/%s", route);
    int st = 0;
    json_t *j = e2e_call(&x->dtmq, "POST", path, body, &st);
    json_decref(j);
    return st;
}

static void run_one(matrix *x, cmsg *c)
{
    char *body = msg_body(x, c);
    c->prepare_sent_wall_ms = test_wall_ms();
    c->prepare_status = post(x, "prepare", body);
    if (c->prepare_status == 200 && c->behaviour == B_COMMIT_NOW)
        c->finish_status = post(x, "submit", body);
    else if (c->prepare_status == 200 && c->behaviour == B_ROLLBACK_NOW)
        c->finish_status = post(x, "abort", body);
    free(body);
}

static void *submitter(void *arg)
{
    matrix *x = arg;
    for (;;) {
        pthread_mutex_lock(&x->next_mu);
        int i = x->next < x->n ? x->next++ : -1;
        pthread_mutex_unlock(&x->next_mu);
        if (i < 0)
            return NULL;
        run_one(x, &x->m[i]);
    }
}

/* ---- observing ---------------------------------------------------------- */

static cmsg *by_gid(matrix *x, const char *gid)
{
    const char *dash = strrchr(gid, '-');
    int i = dash ? atoi(dash + 1) : -1;
    return i >= 0 && i < x->n && strcmp(x->m[i].gid, gid) == 0 ? &x->m[i] : NULL;
}

static void read_statuses(matrix *x, int *pending_decided)
{
    *pending_decided = 0;
    for (int i = 0; i < x->n; i++) {
        cmsg *c = &x->m[i];
        if (strcmp(c->status, "succeed") == 0 || strcmp(c->status, "failed") == 0)
            continue; /* final: never read again */
        e2e_status(&x->dtmq, c->gid, c->status, sizeof(c->status));
        if (c->behaviour != B_ONGOING && strcmp(c->status, want_status(c)) != 0)
            (*pending_decided)++;
    }
}

/* Folds busi's QueryPrepared calls into the msgs. Returns calls for unknown gids. */
static int collect_query_backs(matrix *x)
{
    busi_call *calls = NULL;
    size_t n = busi_calls(x->svc, &calls);
    int stray = 0;
    for (size_t k = 0; k < n; k++) {
        if (strcmp(calls[k].path, "/api/QueryPrepared") != 0)
            continue;
        cmsg *c = by_gid(x, calls[k].gid);
        if (c == NULL) {
            stray++;
            continue;
        }
        long long t = calls[k].time_ms;
        if (c->qb > 0) {
            long long gap = t - c->last_qb_ms;
            c->min_gap_ms = c->qb == 1 || gap < c->min_gap_ms ? gap : c->min_gap_ms;
            c->max_gap_ms = gap > c->max_gap_ms ? gap : c->max_gap_ms;
            c->qb_after_first++;
        } else {
            c->first_qb_ms = t;
        }
        c->last_qb_ms = t;
        c->qb++;
    }
    busi_calls_free(calls, n);
    return stray;
}

/* Reads the branch topic; returns messages read, counts unexpected ones. */
static size_t collect_deliveries(matrix *x, int expected, int *foreign, int *bad_headers)
{
    kt_msg *m;
    /* one more than expected: waits the timeout out, so a stray delivery shows */
    size_t n = kt_read(x->bootstrap, x->topic, (size_t)expected + 1, 10000, &m);
    *foreign = *bad_headers = 0;
    for (size_t k = 0; k < n; k++) {
        cmsg *c = by_gid(x, m[k].key);
        char h[128];
        if (c == NULL) {
            (*foreign)++;
            continue;
        }
        const char *hg = kt_header(&m[k], "dtm-gid", h, sizeof(h));
        char want[128];
        snprintf(want, sizeof(want), "{\"gid\":\"%s\"}", c->gid);
        if (hg == NULL || strcmp(hg, c->gid) != 0 || strcmp(m[k].value, want) != 0)
            (*bad_headers)++;
        c->delivered++;
    }
    kt_free(m, n);
    return n;
}

START_TEST(checkback_matrix_delivers_exactly_the_committed)
{
    static matrix x;
    memset(&x, 0, sizeof(x));
    pthread_mutex_init(&x.next_mu, NULL);
    x.n = matrix_size();
    int min_qb = test_env_int("DTMQ_FAULT_CHECKBACK_MIN_QB", 3, 2, 1000);
    const char *kind = getenv("DTMQ_TEST_STORE_KIND");
    kind = kind && kind[0] ? kind : "sqlite";
    x.m = calloc((size_t)(unsigned)x.n, sizeof(cmsg));
    x.svc = busi_start();
    ck_assert_ptr_nonnull(x.svc);
    char id[32];
    e2e_gid(id, sizeof(id), "cb");
    snprintf(x.prefix, sizeof(x.prefix), "%s.", id);
    snprintf(x.group, sizeof(x.group), "g-%s", id);
    snprintf(x.topic, sizeof(x.topic), "%scheckback", x.prefix);
    snprintf(x.bootstrap, sizeof(x.bootstrap), "%s", test_kafka_bootstrap());
    int per[B_COUNT] = {0};
    for (int i = 0; i < x.n; i++) {
        cmsg *c = &x.m[i];
        c->behaviour = i % B_COUNT;
        per[c->behaviour]++;
        snprintf(c->gid, sizeof(c->gid), "%s-%d", id, i);
        if (c->behaviour == B_ROLLBACK_ON_QUERY)
            busi_rule(x.svc, "/api/QueryPrepared", c->gid, NULL, 409, NULL, 0, -1);
        else if (c->behaviour == B_ONGOING)
            busi_rule(x.svc, "/api/QueryPrepared", c->gid, NULL, 425, NULL, 0, -1);
        /* commit-on-query: no rule, busi answers 200 SUCCESS */
    }
    test_store_uri(x.store, sizeof(x.store));
    const char *args[] = {"--kafka", x.bootstrap, "--kafka-topic-prefix", x.prefix,
                          "--kafka-group", x.group, "--log-level", "info", NULL};
    e2e_start(&x.dtmq, x.store, args);

    long long t0 = test_now_ms();
    pthread_t th[SUBMITTERS];
    for (int t = 0; t < SUBMITTERS; t++)
        pthread_create(&th[t], NULL, submitter, &x);
    for (int t = 0; t < SUBMITTERS; t++)
        pthread_join(th[t], NULL);
    long long submit_ms = test_now_ms() - t0;
    long long last_prepare_wall = 0;
    for (int i = 0; i < x.n; i++) {
        cmsg *c = &x.m[i];
        ck_assert_msg(c->prepare_status == 200, "%s: prepare answered %d", c->gid, c->prepare_status);
        if (c->behaviour == B_COMMIT_NOW || c->behaviour == B_ROLLBACK_NOW)
            ck_assert_msg(c->finish_status == 200, "%s (%s): finish answered %d", c->gid,
                          behaviour_names[c->behaviour], c->finish_status);
        if (c->prepare_sent_wall_ms > last_prepare_wall)
            last_prepare_wall = c->prepare_sent_wall_ms;
    }

    /* wait: every decided msg final, and the ongoing ones asked back min_qb
     * times (timeout, then one retry_interval each, plus slack) */
    long long observe_until = last_prepare_wall + 1000LL * (TIMEOUT_TO_FAIL_S + RETRY_INTERVAL_S * min_qb) + 2500;
    long long deadline = test_now_ms() + 1000LL * test_env_int("DTMQ_FAULT_CHECKBACK_WAIT_S", 120, 10, 7200);
    int pending, ongoing_short;
    do {
        test_sleep_ms(1000);
        read_statuses(&x, &pending);
        ongoing_short = 0;
        for (int i = 0; i < x.n; i++)
            if (x.m[i].behaviour == B_ONGOING)
                ongoing_short += busi_count(x.svc, "/api/QueryPrepared", x.m[i].gid, NULL) < min_qb;
    } while ((pending > 0 || ongoing_short > 0 || test_wall_ms() < observe_until) && test_now_ms() < deadline);
    long long final_wait_ms = test_now_ms() - t0 - submit_ms;
    long long end_wall = test_wall_ms();

    int stray_qb = collect_query_backs(&x);
    int expected = per[B_COMMIT_NOW] + per[B_COMMIT_ON_QUERY];
    int foreign = 0, bad_headers = 0;
    size_t topic_msgs = collect_deliveries(&x, expected, &foreign, &bad_headers);
    read_statuses(&x, &pending);

    int wrong_status = 0, missing = 0, unexpected = 0, redelivered = 0, qb_finished = 0,
        qb_duplicates = 0, early_qb = 0, ongoing_few = 0, ongoing_fast = 0, ongoing_stopped = 0;
    int qb_total = 0, ongoing_qb_min = -1;
    long long ongoing_gap_min = -1, ongoing_gap_max = 0;
    for (int i = 0; i < x.n; i++) {
        cmsg *c = &x.m[i];
        qb_total += c->qb;
        if (strcmp(c->status, want_status(c)) != 0) {
            wrong_status++;
            fprintf(stderr, "fault: %s (%s) is '%s', want '%s'\n", c->gid,
                    behaviour_names[c->behaviour], c->status, want_status(c));
        }
        if (committed(c) && c->delivered == 0) {
            missing++;
            fprintf(stderr, "fault: %s (%s) committed but not delivered\n", c->gid, behaviour_names[c->behaviour]);
        }
        if (!committed(c) && c->delivered > 0) {
            unexpected++;
            fprintf(stderr, "fault: %s (%s) delivered %d time(s)\n", c->gid,
                    behaviour_names[c->behaviour], c->delivered);
        }
        redelivered += c->delivered > 1 ? c->delivered - 1 : 0;
        if (c->qb > 0 && c->first_qb_ms < c->prepare_sent_wall_ms + TIMEOUT_TO_FAIL_S * 1000 - 100) {
            early_qb++;
            fprintf(stderr, "fault: %s asked back %lld ms after its prepare (timeout %d s)\n", c->gid,
                    c->first_qb_ms - c->prepare_sent_wall_ms, TIMEOUT_TO_FAIL_S);
        }
        switch (c->behaviour) {
        case B_COMMIT_NOW:
        case B_ROLLBACK_NOW:
            qb_finished += c->qb;
            break;
        case B_COMMIT_ON_QUERY:
        case B_ROLLBACK_ON_QUERY:
            qb_finished += c->qb_after_first;
            qb_duplicates += c->qb > 1;
            if (c->qb == 0 && strcmp(c->status, want_status(c)) == 0)
                fprintf(stderr, "fault: %s decided without a query-back?\n", c->gid);
            break;
        default: /* ongoing */
            ongoing_few += c->qb < min_qb;
            ongoing_qb_min = ongoing_qb_min < 0 || c->qb < ongoing_qb_min ? c->qb : ongoing_qb_min;
            if (c->qb >= 2) {
                ongoing_fast += c->min_gap_ms < RETRY_INTERVAL_S * 900;
                ongoing_gap_min = ongoing_gap_min < 0 || c->min_gap_ms < ongoing_gap_min ? c->min_gap_ms : ongoing_gap_min;
                ongoing_gap_max = c->max_gap_ms > ongoing_gap_max ? c->max_gap_ms : ongoing_gap_max;
            }
            /* a figure only: on a slow store the last query-back may lag far behind */
            ongoing_stopped += end_wall - c->last_qb_ms > RETRY_INTERVAL_S * 3000 + 3000;
            break;
        }
    }
    e2e_stop(&x.dtmq);
    busi_stop(x.svc);
    fprintf(stderr,
            "fault[checkback/%s]: msgs=%d commit_now=%d rollback_now=%d commit_on_query=%d "
            "rollback_on_query=%d ongoing=%d wrong_status=%d delivered_gids=%d topic_messages=%zu "
            "missing=%d unexpected=%d foreign=%d bad_headers=%d redelivered=%d query_backs=%d "
            "qb_finished=%d qb_duplicates=%d early_qb=%d stray_qb=%d ongoing_min_qb=%d "
            "ongoing_gap_ms=%lld..%lld ongoing_under_min=%d ongoing_too_fast=%d ongoing_stopped=%d "
            "submit_ms=%lld final_wait_ms=%lld\n",
            kind, x.n, per[0], per[1], per[2], per[3], per[4], wrong_status,
            expected - missing, topic_msgs, missing, unexpected, foreign, bad_headers, redelivered,
            qb_total, qb_finished, qb_duplicates, early_qb, stray_qb, ongoing_qb_min,
            ongoing_gap_min, ongoing_gap_max, ongoing_few, ongoing_fast, ongoing_stopped,
            submit_ms, final_wait_ms);
    ck_assert_int_eq(wrong_status, 0);
    ck_assert_int_eq(missing, 0);
    ck_assert_int_eq(unexpected, 0);
    ck_assert_int_eq(foreign, 0);
    ck_assert_int_eq(bad_headers, 0);
    ck_assert_int_eq(qb_finished, 0);
    ck_assert_int_eq(qb_duplicates, 0);
    ck_assert_int_eq(early_qb, 0);
    ck_assert_int_eq(stray_qb, 0);
    ck_assert_int_eq(ongoing_few, 0);
    ck_assert_int_eq(ongoing_fast, 0);
    free(x.m);
    pthread_mutex_destroy(&x.next_mu);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fault_checkback");
    test_group g = {.suite = s};
    int n = matrix_size();
    g.timeout_s = 200 + n / 5 + test_env_int("DTMQ_FAULT_CHECKBACK_WAIT_S", 120, 10, 7200);
    test_add(&g, checkback_matrix_delivers_exactly_the_committed);
    return run_suite(s);
}
