/*
 * test_fault_duplicates.c — dtmq's reliability suite: the same thing arriving
 * twice, or too late (see tests/fault/README.md, "Duplicates and late replies").
 *
 *   1. the same transaction submitted twice at once over HTTP (sagas; msgs
 *      prepared and submitted twice; the same saga over HTTP and over Kafka
 *      PREFIXsubmit): one stored transaction per gid, every step called once,
 *      the second submit answered as docs/protocol.md says (200 while
 *      running, also when it lost the prepared -> submitted race; 409 once
 *      finished);
 *   2. the same PREFIXsubmit message produced twice, and once more after the
 *      transaction finished: one transaction, every step called once, the
 *      accepted replies 200 / 200-or-409 / 409;
 *   3. worker replies on PREFIXreply that come twice (also a SUCCESS followed
 *      by a conflicting FAILURE), late (after request_timeout, when dtmq has
 *      already published the branch again) and after the transaction
 *      finished: the outcome is decided once, every reply is counted in
 *      /api/info, and a final state never changes.
 *
 * Each test prints one `fault[dup-.../STORE]:` line of figures on stderr.
 * Knobs (environment): DTMQ_FAULT_DUP_GIDS (30: gids per variant of test 1
 * and 2), DTMQ_FAULT_DUP_REPLY_GIDS (24: sagas of test 3, a third per group),
 * DTMQ_FAULT_DUP_WAIT_S (90: bound on waiting for the transactions to end).
 */
#include <check.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libdtmq/common/kafka_producer.h"
#include "busi.h"
#include "e2e_env.h"
#include "kafkatest.h"
#include "testlib.h"

/* ---- dtmq on real Kafka, with topics and a group of its own ------------- */

typedef struct kenv {
    e2e_kafka_env k;
    dtmq_kafka_producer *producer; /* the test's own, for submits and replies */
} kenv;

static void kenv_start(kenv *env)
{
    memset(env, 0, sizeof(*env));
    e2e_kafka_env_start(&env->k, "fd", NULL);
    char err[512];
    env->producer = dtmq_kafka_producer_start(env->k.bootstrap, err, sizeof(err));
    ck_assert_msg(env->producer != NULL, "test producer: %s", err);
}

static void kenv_stop(kenv *env)
{
    dtmq_kafka_producer_stop(env->producer, 5000);
    e2e_kafka_env_stop(&env->k);
}

static void kenv_produce(kenv *env, const char *suffix, const char *key, const char *value)
{
    char t[160], err[512];
    e2e_kafka_topic(&env->k, suffix, t, sizeof(t));
    int rc = dtmq_kafka_produce_sync(env->producer, t, key, value, strlen(value), NULL, 0, 10000, err,
                                sizeof(err));
    ck_assert_msg(rc == 0, "produce to %s: %s", t, err);
}

/* kafka_ingress counters from /api/info. */
typedef struct ingress_counts {
    long submitted, dead_lettered, replies, replies_unknown;
} ingress_counts;

static ingress_counts ingress(const kenv *env)
{
    int st = 0;
    json_t *info = e2e_call(&env->k.e.dtmq, "GET", "/api/info", NULL, &st);
    json_t *k = json_object_get(info, "kafka_ingress");
    ingress_counts c = {(long)json_integer_value(json_object_get(k, "submitted")),
                        (long)json_integer_value(json_object_get(k, "dead_lettered")),
                        (long)json_integer_value(json_object_get(k, "replies")),
                        (long)json_integer_value(json_object_get(k, "replies_unknown"))};
    json_decref(info);
    return c;
}

/* How many transactions /api/dtmsvr/all lists for gid. */
static int stored_count(const kenv *env, const char *gid)
{
    char path[256];
    snprintf(path, sizeof(path), "/api/dtmsvr/all?gid=%s&limit=10", gid);
    int st = 0;
    json_t *j = e2e_call(&env->k.e.dtmq, "GET", path, NULL, &st);
    int n = st == 200 ? (int)json_array_size(json_object_get(j, "transactions")) : -1;
    json_decref(j);
    return n;
}

/* The /query answer for gid (caller frees). */
static json_t *query(const kenv *env, const char *gid)
{
    char path[256];
    snprintf(path, sizeof(path), "/api/dtmsvr/query?gid=%s", gid);
    int st = 0;
    return e2e_call(&env->k.e.dtmq, "GET", path, NULL, &st);
}

static const char *trans_status(json_t *q)
{
    const char *s = json_string_value(json_object_get(json_object_get(q, "transaction"), "status"));
    return s ? s : "";
}

/* "branch_id/op=status;..." of the branch rows, for comparing snapshots. */
static void branch_digest(json_t *q, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    json_t *b;
    size_t i;
    json_array_foreach(json_object_get(q, "branches"), i, b)
    {
        int n = snprintf(buf + used, len - used, "%s/%s=%s;",
                         json_string_value(json_object_get(b, "branch_id")),
                         json_string_value(json_object_get(b, "op")),
                         json_string_value(json_object_get(b, "status")));
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
}

static int is_final(const char *s)
{
    return strcmp(s, "succeed") == 0 || strcmp(s, "failed") == 0;
}

/* Waits until every gid is final; returns how many are not (after the bound). */
static int wait_all_final(const kenv *env, char (*gids)[64], int n, int bound_s)
{
    long long deadline = test_now_ms() + 1000LL * bound_s;
    int pending;
    for (;;) {
        pending = 0;
        for (int i = 0; i < n; i++) {
            char st[32];
            if (!is_final(e2e_status(&env->k.e.dtmq, gids[i], st, sizeof(st))))
                pending++;
        }
        if (pending == 0 || test_now_ms() > deadline)
            return pending;
        test_sleep_ms(500);
    }
}

/* ---- test 1: the same transaction submitted twice at once ---------------- */

enum { VAR_SAGA, VAR_MSG, VAR_HTTP_KAFKA, VAR_COUNT };
static const char *const var_names[] = {"saga", "msg", "http+kafka"};
static const char *const var_gid_prefix[] = {"ds", "dm", "dk"};

typedef struct race {
    kenv *env;
    const char *gid;
    const char *body;     /* HTTP body (saga or msg) */
    const char *kmsg;     /* Kafka message (VAR_HTTP_KAFKA) */
    int variant, side;    /* side 0 / 1: the two racers */
    pthread_barrier_t *go;
    int status[2];        /* saga: submit; msg: prepare, submit; kafka side: -2 (see replies) */
    char message[2][160];
} race;

static int post(const kenv *env, const char *route, const char *body, char *msg, size_t len)
{
    char path[64];
    snprintf(path, sizeof(path), "/api/dtmsvr/%s", route);
    int st = 0;
    json_t *j = e2e_call(&env->k.e.dtmq, "POST", path, body, &st);
    const char *m = json_string_value(json_object_get(j, "message"));
    snprintf(msg, len, "%s", m ? m : "");
    json_decref(j);
    return st;
}

static void *racer(void *arg)
{
    race *r = arg;
    pthread_barrier_wait(r->go);
    if (r->variant == VAR_SAGA) {
        r->status[0] = post(r->env, "submit", r->body, r->message[0], sizeof(r->message[0]));
    } else if (r->variant == VAR_MSG) {
        r->status[0] = post(r->env, "prepare", r->body, r->message[0], sizeof(r->message[0]));
        r->status[1] = post(r->env, "submit", r->body, r->message[1], sizeof(r->message[1]));
    } else if (r->side == 0) {
        r->status[0] = post(r->env, "submit", r->body, r->message[0], sizeof(r->message[0]));
    } else {
        kenv_produce(r->env, "submit", r->gid, r->kmsg);
        r->status[0] = -2; /* its answer comes on reply_to */
    }
    return NULL;
}

static char *saga_body(const kenv *env, const char *gid)
{
    const char *u = busi_url(env->k.e.svc);
    char *text = NULL;
    ck_assert_int_ge(asprintf(&text,
                              "{\"gid\":\"%s\",\"trans_type\":\"saga\",\"steps\":["
                              "{\"action\":\"%s/api/Out\",\"compensate\":\"%s/api/OutRevert\"},"
                              "{\"action\":\"%s/api/In\",\"compensate\":\"%s/api/InRevert\"}],"
                              "\"payloads\":[\"{}\",\"{}\"]}",
                              gid, u, u, u, u),
                     0);
    return text;
}

static char *msg_body(const kenv *env, const char *gid)
{
    const char *u = busi_url(env->k.e.svc);
    char *text = NULL;
    ck_assert_int_ge(asprintf(&text,
                              "{\"gid\":\"%s\",\"trans_type\":\"msg\",\"query_prepared\":"
                              "\"%s/api/QueryPrepared\",\"steps\":[{\"action\":\"%s/api/Deliver\"}],"
                              "\"payloads\":[\"{}\"]}",
                              gid, u, u),
                     0);
    return text;
}

/* The saga as a PREFIXsubmit message with reply_to. */
static char *saga_kafka(const kenv *env, const char *gid, const char *reply_to)
{
    char *http = saga_body(env, gid);
    json_t *j = json_loads(http, 0, NULL);
    json_object_set_new(j, "op", json_string("submit"));
    json_object_set_new(j, "reply_to", json_string(reply_to));
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    free(http);
    return text;
}

/* An answer to a racing submit is fine when it is one of DTM's: 200, or 409
 * naming a state that forbids it ("cannot submit": finished; "cannot
 * prepare"). A submit that loses the prepared -> submitted race to another
 * one finds the transaction running and answers 200 like DTM, never 409
 * "changed meanwhile" (counted apart as http_409_lost_race, must be 0). */
static int acceptable_second(int status, const char *message)
{
    if (status == 200)
        return 1;
    return status == 409 && (strstr(message, "cannot submit") || strstr(message, "cannot prepare"));
}

typedef struct dup_figures {
    int gids, stored_ok, answers_200, answers_409, bad_answers, step_calls_extra, not_final;
    int answers_409_race; /* 409 "changed meanwhile": lost the prepared -> submitted race */
    int kafka_accepted_200, kafka_accepted_409;
    long long elapsed_ms;
} dup_figures;

/* Accepted replies (phase accepted) per gid from reply_to: status of the first. */
static int accepted_status(kt_msg *m, size_t n, const char *gid, int nth)
{
    int seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(m[i].key, gid) != 0)
            continue;
        json_t *r = json_loads(m[i].value, 0, NULL);
        const char *phase = json_string_value(json_object_get(r, "phase"));
        int accepted = phase && strcmp(phase, "accepted") == 0;
        int st = (int)json_integer_value(json_object_get(r, "status"));
        json_decref(r);
        if (accepted && seen++ == nth)
            return st;
    }
    return -1;
}

static void run_variant(kenv *env, int variant, int n, dup_figures *f)
{
    char (*gids)[64] = calloc((size_t)n, 64);
    char **bodies = calloc((size_t)n, sizeof(char *)), **kmsgs = calloc((size_t)n, sizeof(char *));
    race *races = calloc((size_t)n * 2, sizeof(race));
    char replies[160];
    e2e_kafka_topic(&env->k, "dupreplies", replies, sizeof(replies));
    enum { BATCH = 10 };
    for (int base = 0; base < n; base += BATCH) {
        int cnt = n - base < BATCH ? n - base : BATCH;
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, (unsigned)(2 * cnt));
        pthread_t th[2 * BATCH];
        for (int i = base; i < base + cnt; i++) {
            e2e_gid(gids[i], 64, var_gid_prefix[variant]);
            bodies[i] = variant == VAR_MSG ? msg_body(env, gids[i]) : saga_body(env, gids[i]);
            kmsgs[i] = variant == VAR_HTTP_KAFKA ? saga_kafka(env, gids[i], replies) : NULL;
            for (int side = 0; side < 2; side++) {
                race *r = &races[2 * i + side];
                *r = (race){.env = env, .gid = gids[i], .body = bodies[i], .kmsg = kmsgs[i],
                            .variant = variant, .side = side, .go = &go};
                pthread_create(&th[2 * (i - base) + side], NULL, racer, r);
            }
        }
        for (int t = 0; t < 2 * cnt; t++)
            pthread_join(th[t], NULL);
        pthread_barrier_destroy(&go);
    }
    f->gids += n;
    f->not_final += wait_all_final(env, gids, n, test_env_int("DTMQ_FAULT_DUP_WAIT_S", 90, 10, 3600));
    kt_msg *km = NULL;
    size_t kn = 0;
    if (variant == VAR_HTTP_KAFKA)
        kn = kt_read(env->k.bootstrap, replies, (size_t)n, 20000, &km);
    for (int i = 0; i < n; i++) {
        int ok200 = 0;
        for (int side = 0; side < 2; side++) {
            race *r = &races[2 * i + side];
            for (int k = 0; k < (variant == VAR_MSG ? 2 : 1); k++) {
                int st = r->status[k];
                if (st == -2) {
                    st = accepted_status(km, kn, gids[i], 0);
                    f->kafka_accepted_200 += st == 200;
                    f->kafka_accepted_409 += st == 409;
                    ok200 += st == 200;
                    ck_assert_msg(st == 200 || st == 409, "%s: Kafka submit accepted %d", gids[i], st);
                    continue;
                }
                f->answers_200 += st == 200;
                f->answers_409 += st == 409;
                f->answers_409_race += st == 409 && strstr(r->message[k], "changed meanwhile") != NULL;
                ok200 += st == 200 && (variant != VAR_MSG || k == 1);
                if (!acceptable_second(st, r->message[k])) {
                    f->bad_answers++;
                    fprintf(stderr, "fault: %s %s side %d call %d answered %d '%s'\n",
                            var_names[variant], gids[i], side, k, st, r->message[k]);
                }
            }
        }
        ck_assert_msg(ok200 >= 1, "%s: neither racing submit was answered 200", gids[i]);
        int stored = stored_count(env, gids[i]);
        f->stored_ok += stored == 1;
        ck_assert_msg(stored == 1, "%s: %d stored transactions", gids[i], stored);
        json_t *q = query(env, gids[i]);
        ck_assert_str_eq(trans_status(q), "succeed");
        size_t want_branches = variant == VAR_MSG ? 1 : 4; /* saga: action + compensate per step */
        ck_assert_uint_eq(json_array_size(json_object_get(q, "branches")), want_branches);
        json_decref(q);
        const char *paths[] = {"/api/Out", "/api/In"};
        for (int p = 0; p < (variant == VAR_MSG ? 1 : 2); p++) {
            int calls = busi_count(env->k.e.svc, variant == VAR_MSG ? "/api/Deliver" : paths[p], gids[i], NULL);
            f->step_calls_extra += calls - 1;
            ck_assert_msg(calls == 1, "%s: step %s called %d times", gids[i],
                          variant == VAR_MSG ? "/api/Deliver" : paths[p], calls);
        }
        ck_assert_int_eq(busi_count(env->k.e.svc, "/api/OutRevert", gids[i], NULL) +
                             busi_count(env->k.e.svc, "/api/InRevert", gids[i], NULL) +
                             busi_count(env->k.e.svc, "/api/QueryPrepared", gids[i], NULL),
                         0);
        free(bodies[i]);
        free(kmsgs[i]);
    }
    kt_free(km, kn);
    free(gids);
    free(bodies);
    free(kmsgs);
    free(races);
}

START_TEST(same_transaction_submitted_twice_at_once)
{
    kenv env;
    kenv_start(&env);
    int n = test_env_int("DTMQ_FAULT_DUP_GIDS", 30, 1, 100000);
    dup_figures f[VAR_COUNT];
    memset(f, 0, sizeof(f));
    for (int v = 0; v < VAR_COUNT; v++) {
        long long v0 = test_now_ms();
        run_variant(&env, v, n, &f[v]);
        f[v].elapsed_ms = test_now_ms() - v0;
    }
    ingress_counts c = ingress(&env);
    kenv_stop(&env);
    for (int v = 0; v < VAR_COUNT; v++)
        fprintf(stderr,
                "fault[dup-submit/%s]: variant=%s gids=%d stored_once=%d http_200=%d http_409=%d "
                "http_409_lost_race=%d "
                "kafka_accepted_200=%d kafka_accepted_409=%d bad_answers=%d extra_step_calls=%d "
                "not_final=%d dead_lettered=%ld elapsed_ms=%lld\n",
                test_store_kind(), var_names[v], f[v].gids, f[v].stored_ok, f[v].answers_200,
                f[v].answers_409, f[v].answers_409_race, f[v].kafka_accepted_200, f[v].kafka_accepted_409,
                f[v].bad_answers, f[v].step_calls_extra, f[v].not_final, c.dead_lettered,
                f[v].elapsed_ms);
    for (int v = 0; v < VAR_COUNT; v++) {
        ck_assert_int_eq(f[v].bad_answers, 0);
        ck_assert_int_eq(f[v].answers_409_race, 0);
        ck_assert_int_eq(f[v].not_final, 0);
    }
    ck_assert_int_eq(c.dead_lettered, 0);
}
END_TEST

/* ---- test 2: one PREFIXsubmit message delivered twice, and again later --- */

START_TEST(kafka_submit_message_delivered_twice)
{
    kenv env;
    kenv_start(&env);
    int n = test_env_int("DTMQ_FAULT_DUP_GIDS", 30, 1, 100000);
    long long t0 = test_now_ms();
    char (*gids)[64] = calloc((size_t)n, 64);
    char **msgs = calloc((size_t)n, sizeof(char *));
    char replies[160];
    e2e_kafka_topic(&env.k, "replies", replies, sizeof(replies));
    ingress_counts c0 = ingress(&env);
    for (int i = 0; i < n; i++) {
        e2e_gid(gids[i], 64, "kd");
        msgs[i] = saga_kafka(&env, gids[i], replies);
        kenv_produce(&env, "submit", gids[i], msgs[i]); /* the same message, twice in a row */
        kenv_produce(&env, "submit", gids[i], msgs[i]);
    }
    int not_final = wait_all_final(&env, gids, n, test_env_int("DTMQ_FAULT_DUP_WAIT_S", 90, 10, 3600));
    for (int i = 0; i < n; i++) /* re-delivered after dtmq finished it */
        kenv_produce(&env, "submit", gids[i], msgs[i]);
    kt_msg *m;
    size_t got = kt_read(env.k.bootstrap, replies, (size_t)n * 3, 30000, &m);
    test_sleep_ms(1000); /* a stray step call would land now */
    int second_200 = 0, second_409 = 0, third_409 = 0, extra_calls = 0, stored_once = 0;
    for (int i = 0; i < n; i++) {
        int a0 = accepted_status(m, got, gids[i], 0), a1 = accepted_status(m, got, gids[i], 1),
            a2 = accepted_status(m, got, gids[i], 2), a3 = accepted_status(m, got, gids[i], 3);
        ck_assert_msg(a0 == 200, "%s: first delivery accepted %d", gids[i], a0);
        ck_assert_msg(a1 == 200 || a1 == 409, "%s: second delivery accepted %d", gids[i], a1);
        ck_assert_msg(a2 == 409, "%s: delivery after the end accepted %d (want 409)", gids[i], a2);
        ck_assert_msg(a3 == -1, "%s: a fourth accepted reply", gids[i]);
        second_200 += a1 == 200;
        second_409 += a1 == 409;
        third_409 += a2 == 409;
        int stored = stored_count(&env, gids[i]);
        stored_once += stored == 1;
        ck_assert_msg(stored == 1, "%s: %d stored transactions", gids[i], stored);
        for (int k = 0; k < 2; k++) {
            int calls = busi_count(env.k.e.svc, k ? "/api/In" : "/api/Out", gids[i], NULL);
            extra_calls += calls - 1;
            ck_assert_msg(calls == 1, "%s: step %d called %d times", gids[i], k + 1, calls);
        }
        char st[32];
        ck_assert_str_eq(e2e_status(&env.k.e.dtmq, gids[i], st, sizeof(st)), "succeed");
    }
    ingress_counts c1 = ingress(&env);
    kenv_stop(&env);
    fprintf(stderr,
            "fault[dup-kafka-submit/%s]: gids=%d messages=%d stored_once=%d second_accepted_200=%d "
            "second_accepted_409=%d after_end_409=%d extra_step_calls=%d not_final=%d "
            "ingress_submitted=%ld dead_lettered=%ld replies_read=%zu elapsed_ms=%lld\n",
            test_store_kind(), n, 3 * n, stored_once, second_200, second_409, third_409, extra_calls,
            not_final, c1.submitted - c0.submitted, c1.dead_lettered - c0.dead_lettered, got,
            test_now_ms() - t0);
    ck_assert_int_eq(not_final, 0);
    ck_assert_int_eq(c1.submitted - c0.submitted, 3L * n); /* each delivery taken, none lost */
    ck_assert_int_eq(c1.dead_lettered - c0.dead_lettered, 0);
    kt_free(m, got);
    for (int i = 0; i < n; i++)
        free(msgs[i]);
    free(msgs);
    free(gids);
}
END_TEST

/* ---- test 3: worker replies twice, late, and after the end --------------- */

enum { G_DUP, G_LATE, G_AFTER, G_COUNT };
static const char *const group_names[] = {"dup", "late", "after"};

typedef struct rsaga {
    char gid[64];
    int group, index;
    int published[2][2];    /* [branch 01/02][action/compensate] messages seen */
    long long late_due_ms;  /* G_LATE: when to send the held reply of branch 01 (under mu) */
    int late_sent;
} rsaga;

typedef struct rworld {
    kenv *env;
    rsaga *s;
    int n;
    char action_topic[160], comp_topic[160];
    pthread_mutex_t mu;
    volatile int stop;
    long replies_sent;
    int late_ms;
} rworld;

static rsaga *find_saga(rworld *w, const char *gid)
{
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->s[i].gid, gid) == 0)
            return &w->s[i];
    return NULL;
}

static void send_reply(rworld *w, const char *gid, const char *bid, const char *op, const char *result)
{
    char value[512];
    snprintf(value, sizeof(value),
             "{\"gid\":\"%s\",\"branch_id\":\"%s\",\"op\":\"%s\",\"dtm_result\":\"%s\"}", gid, bid,
             op, result);
    kenv_produce(w->env, "reply", gid, value);
    pthread_mutex_lock(&w->mu);
    w->replies_sent++;
    pthread_mutex_unlock(&w->mu);
}

/* The worker's answer to one branch message, per the saga's group. */
static void answer(rworld *w, rsaga *s, const char *bid, int branch, int nth)
{
    if (s->group == G_DUP) {
        if (nth > 1)
            return; /* replied already, twice */
        send_reply(w, s->gid, bid, "action", "SUCCESS");
        send_reply(w, s->gid, bid, "action", branch == 0 ? "SUCCESS" : "FAILURE");
    } else if (s->group == G_LATE && branch == 0) {
        /* The first publish is not answered. Once dtmq published it again
         * (request_timeout passed), the held reply goes out: for half of the
         * sagas at once (it answers the second wait), for the others after
         * the second wait expired too (between attempts: recorded in the
         * store, or it answers a third publish). If no second publish comes
         * within 15 s it goes out anyway, and the test fails on
         * late_branches_republished. */
        pthread_mutex_lock(&w->mu);
        if (nth == 1)
            s->late_due_ms = test_now_ms() + 15000;
        else if (nth == 2)
            s->late_due_ms = test_now_ms() + (s->index % 2 ? w->late_ms : 300);
        pthread_mutex_unlock(&w->mu);
    } else if (nth == 1) {
        send_reply(w, s->gid, bid, "action", "SUCCESS");
    }
}

static rd_kafka_t *follow(const char *bootstrap, const char *const *topics, size_t nt)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", "fault-dup-follower", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    ck_assert_msg(rk != NULL, "follower: %s", errstr);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    for (size_t t = 0; t < nt; t++)
        for (int p = 0; p < 4; p++) /* dtmq creates branch topics with KafkaPartitions (4) */
            rd_kafka_topic_partition_list_add(l, topics[t], p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    return rk;
}

static void header(const rd_kafka_message_t *m, const char *name, char *buf, size_t len)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t sz = 0;
    buf[0] = '\0';
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        rd_kafka_header_get_last(h, name, &v, &sz) == RD_KAFKA_RESP_ERR_NO_ERROR && v)
        snprintf(buf, len, "%.*s", (int)sz, (const char *)v);
}

static void *worker_main(void *arg)
{
    rworld *w = arg;
    const char *topics[] = {w->action_topic, w->comp_topic};
    rd_kafka_t *rk = follow(w->env->k.bootstrap, topics, 2);
    while (!w->stop) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m && m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            char gid[64], bid[16], op[16];
            header(m, "dtm-gid", gid, sizeof(gid));
            header(m, "dtm-branch-id", bid, sizeof(bid));
            header(m, "dtm-op", op, sizeof(op));
            rsaga *s = find_saga(w, gid);
            int branch = strcmp(bid, "02") == 0, comp = strcmp(op, "compensate") == 0;
            if (s) {
                pthread_mutex_lock(&w->mu);
                int nth = ++s->published[branch][comp];
                pthread_mutex_unlock(&w->mu);
                if (!comp)
                    answer(w, s, bid, branch, nth);
                else
                    send_reply(w, gid, bid, "compensate", "SUCCESS");
            }
        }
        if (m)
            rd_kafka_message_destroy(m);
        for (int i = 0; i < w->n; i++) { /* the held replies that are due */
            rsaga *s = &w->s[i];
            pthread_mutex_lock(&w->mu);
            int due = s->late_due_ms && !s->late_sent && test_now_ms() >= s->late_due_ms;
            s->late_sent |= due;
            pthread_mutex_unlock(&w->mu);
            if (due)
                send_reply(w, s->gid, "01", "action", "SUCCESS");
        }
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return NULL;
}

static int count_in(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

START_TEST(worker_replies_twice_late_and_after_the_end)
{
    kenv env;
    kenv_start(&env);
    rworld w = {.env = &env, .n = test_env_int("DTMQ_FAULT_DUP_REPLY_GIDS", 24, 3, 3000)};
    w.late_ms = 2500; /* past the second wait's request_timeout (2 s) */
    pthread_mutex_init(&w.mu, NULL);
    w.s = calloc((size_t)(unsigned)w.n, sizeof(rsaga));
    e2e_kafka_topic(&env.k, "work", w.action_topic, sizeof(w.action_topic));
    e2e_kafka_topic(&env.k, "work-revert", w.comp_topic, sizeof(w.comp_topic));
    char err[512];
    const char *topics[] = {w.action_topic, w.comp_topic};
    ck_assert_msg(dtmq_kafka_ensure_topics(env.k.bootstrap, topics, 2, 4, err, sizeof(err)) == 0, "%s", err);
    for (int i = 0; i < w.n; i++) {
        w.s[i].group = i % G_COUNT;
        w.s[i].index = i / G_COUNT;
        e2e_gid(w.s[i].gid, sizeof(w.s[i].gid), group_names[w.s[i].group]);
    }
    pthread_t wt;
    pthread_create(&wt, NULL, worker_main, &w);
    long long t0 = test_now_ms();
    ingress_counts c0 = ingress(&env);
    for (int i = 0; i < w.n; i++) {
        rsaga *s = &w.s[i];
        char body[1024];
        snprintf(body, sizeof(body),
                 "{\"gid\":\"%s\",\"trans_type\":\"saga\",\"request_timeout\":%d,\"steps\":["
                 "{\"action\":\"kafka://%s\",\"compensate\":\"kafka://%s\"},"
                 "{\"action\":\"kafka://%s\",\"compensate\":\"kafka://%s\"}],"
                 "\"payloads\":[\"{}\",\"{}\"]}",
                 s->gid, s->group == G_LATE ? 2 : 20, w.action_topic, w.comp_topic,
                 w.action_topic, w.comp_topic);
        e2e_post_expect(&env.k.e.dtmq, "submit", body, 200);
    }
    char (*gids)[64] = calloc((size_t)(unsigned)w.n, 64);
    for (int i = 0; i < w.n; i++)
        memcpy(gids[i], w.s[i].gid, 64);
    int not_final = wait_all_final(&env, gids, w.n, test_env_int("DTMQ_FAULT_DUP_WAIT_S", 90, 10, 3600));
    /* after the end: a repeated SUCCESS, a contradicting FAILURE, a stray compensate */
    char (*before)[512] = calloc((size_t)(unsigned)w.n, 512);
    for (int i = 0; i < w.n; i++) {
        json_t *q = query(&env, w.s[i].gid);
        branch_digest(q, before[i], 512);
        json_decref(q);
        if (w.s[i].group != G_AFTER)
            continue;
        send_reply(&w, w.s[i].gid, "01", "action", "SUCCESS");
        send_reply(&w, w.s[i].gid, "02", "action", "FAILURE");
        send_reply(&w, w.s[i].gid, "01", "compensate", "SUCCESS");
    }
    /* every reply counted (replies or replies_unknown) */
    ingress_counts c1;
    long long count_deadline = test_now_ms() + 30000;
    do {
        test_sleep_ms(300);
        c1 = ingress(&env);
    } while ((c1.replies + c1.replies_unknown) - (c0.replies + c0.replies_unknown) < w.replies_sent &&
             test_now_ms() < count_deadline);
    test_sleep_ms(1500); /* anything a reply wrongly started would show now */
    w.stop = 1;
    pthread_join(wt, NULL);
    int changed = 0, inconsistent = 0, not_succeed = 0, compensations = 0, late_republished = 0, extra_publish = 0;
    for (int i = 0; i < w.n; i++) {
        rsaga *s = &w.s[i];
        json_t *q = query(&env, s->gid);
        char after[512];
        branch_digest(q, after, sizeof(after));
        if (strcmp(after, before[i]) != 0) {
            changed++;
            fprintf(stderr, "fault: %s branches changed after the end: %s -> %s\n", s->gid,
                    before[i], after);
        }
        if (strstr(after, "/action=succeed;") == NULL || strstr(after, "action=failed") ||
            count_in(after, "/action=succeed;") != 2) {
            inconsistent++; /* a succeeded saga whose action rows are not both succeed */
            fprintf(stderr, "fault: %s (%s) action rows: %s\n", s->gid, group_names[s->group], after);
        }
        if (strcmp(trans_status(q), "succeed") != 0) {
            not_succeed++;
            fprintf(stderr, "fault: %s (%s) ended '%s'\n", s->gid, group_names[s->group], trans_status(q));
        }
        json_decref(q);
        compensations += s->published[0][1] + s->published[1][1];
        if (s->group == G_LATE)
            late_republished += s->published[0][0] >= 2;
        else
            extra_publish += (s->published[0][0] - 1) + (s->published[1][0] - 1);
    }
    char *log = dtmq_log(&env.k.e.dtmq);
    int unwaited_recorded = count_in(log, "(not waited for here): recorded");
    int unwaited_ignored = count_in(log, "(not waited for here): nothing to record");
    free(log);
    kenv_stop(&env);
    long counted = (c1.replies + c1.replies_unknown) - (c0.replies + c0.replies_unknown);
    fprintf(stderr,
            "fault[dup-replies/%s]: sagas=%d (dup/late/after) replies_sent=%ld replies_counted=%ld "
            "replies_unknown=%ld not_waited_recorded=%d not_waited_ignored=%d "
            "late_branches_republished=%d extra_publishes=%d compensations=%d not_succeed=%d "
            "changed_after_end=%d inconsistent_rows=%d not_final=%d elapsed_ms=%lld\n",
            test_store_kind(), w.n, w.replies_sent, counted, c1.replies_unknown - c0.replies_unknown,
            unwaited_recorded, unwaited_ignored, late_republished, extra_publish, compensations,
            not_succeed, changed, inconsistent, not_final, test_now_ms() - t0);
    ck_assert_int_eq(not_final, 0);
    ck_assert_int_eq(not_succeed, 0);   /* the first reply decided: no FAILURE took over */
    ck_assert_int_eq(compensations, 0); /* so nothing was compensated */
    ck_assert_int_eq(changed, 0);       /* a final state never changes */
    /* a succeeded saga has both action rows succeed: a contradicting reply
     * after the deciding one is never recorded over it */
    ck_assert_int_eq(inconsistent, 0);
    ck_assert_int_eq(counted, w.replies_sent);
    ck_assert_int_eq(c1.replies_unknown - c0.replies_unknown, 0);
    ck_assert_int_eq(extra_publish, 0); /* a duplicate reply never makes dtmq publish again */
    ck_assert_msg(late_republished == w.n / G_COUNT + (w.n % G_COUNT > G_LATE),
                  "only %d late sagas were published again", late_republished);
    /* the duplicates and the after-the-end replies found no waiter */
    ck_assert_int_ge(unwaited_recorded + unwaited_ignored, (w.n / G_COUNT) * 5);
    free(before);
    free(gids);
    free(w.s);
    pthread_mutex_destroy(&w.mu);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fault_duplicates");
    test_group g = {.suite = s};
    int n = test_env_int("DTMQ_FAULT_DUP_GIDS", 30, 1, 100000);
    g.timeout_s = 240 + n;
    test_add(&g, same_transaction_submitted_twice_at_once);
    test_add(&g, kafka_submit_message_delivered_twice);
    test_add(&g, worker_replies_twice_late_and_after_the_end);
    return run_suite(s);
}
