/*
 * test_worker.c — the worker library (connectors/libdtmq/include/dtmq/dtmq_worker.h)
 * against real Kafka (DTMQ_TEST_KAFKA), and end to end with the real dtmq
 * binary (build/asan/dtmq, or DTMQ_TEST_BIN).
 *
 * Branch messages are produced here the way dtmq's engine publishes them
 * (broker/engine/pass.c, call_kafka_branch): topic from kafka://TOPIC, key =
 * gid, value = the payload, headers dtm-gid, dtm-trans-type, dtm-branch-id,
 * dtm-op, dtm-reply-to. Replies are read back with a plain consumer and
 * compared byte for byte; committed offsets are read from the group
 * coordinator. Every topic and group is fresh per test, and every wait is
 * bounded (a watchdog stops a worker that waits too long).
 *
 * Covered: the handler's view of a saga branch and the exact reply; FAILURE
 * and ONGOING; no reply for msg branches; messages without dtm headers
 * skipped; offsets committed (no redelivery to the next worker of the
 * group); a message whose reply cannot be published handled again, in this
 * worker and the next; stop from the handler and from another thread; bad
 * options; the HTTP helpers; a saga and a msg through dtmq itself.
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
#include "libdtmq/common/deadline.h"
#include <dtmq/dtmq_worker.h>
#include "testlib.h"

#define WAIT_MS 30000 /* the bound of every wait on Kafka */
#define MAX_RECORDS 64
#define MAX_RULES 8

/* ---- a recording handler ------------------------------------------------ */

/* One handler call, copied. */
typedef struct record {
    char *gid, *trans_type, *branch_id, *op, *reply_to, *topic;
    unsigned char *payload;
    size_t payload_len;
    int partition;
    long long offset;
} record;

/* What the handler answers for messages of a topic and op (NULL: any);
 * times > 0: only for the first times matches. */
typedef struct rule {
    const char *topic, *op;
    dtmq_result result;
    const char *message;
    int times, used;
} rule;

typedef struct recorder {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    record calls[MAX_RECORDS];
    size_t n;
    rule rules[MAX_RULES];
    size_t nrules;
    dtmq_worker *stop_me; /* when set, the handler stops this worker */
} recorder;

static void recorder_init(recorder *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
}

static void recorder_clear(recorder *r)
{
    for (size_t i = 0; i < r->n; i++) {
        record *c = &r->calls[i];
        free(c->gid);
        free(c->trans_type);
        free(c->branch_id);
        free(c->op);
        free(c->reply_to);
        free(c->topic);
        free(c->payload);
    }
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

static void recorder_rule_n(recorder *r, const char *topic, const char *op, dtmq_result result,
                            const char *message, int times)
{
    ck_assert_uint_lt(r->nrules, MAX_RULES);
    r->rules[r->nrules++] = (rule){topic, op, result, message, times, 0};
}

static void recorder_rule(recorder *r, const char *topic, const char *op, dtmq_result result,
                          const char *message)
{
    recorder_rule_n(r, topic, op, result, message, 0);
}

/* The first rule for m that is not used up (counts the use). */
static const rule *find_rule(recorder *r, const dtmq_branch_msg *m)
{
    for (size_t i = 0; i < r->nrules; i++) {
        rule *u = &r->rules[i];
        if ((u->topic == NULL || strcmp(u->topic, m->topic) == 0) &&
            (u->op == NULL || strcmp(u->op, m->op) == 0) && (u->times == 0 || u->used < u->times)) {
            u->used++;
            return u;
        }
    }
    return NULL;
}

static dtmq_result record_call(void *arg, const dtmq_branch_msg *m, char *message, size_t len)
{
    recorder *r = arg;
    pthread_mutex_lock(&r->mu);
    if (r->n < MAX_RECORDS) {
        record *c = &r->calls[r->n++];
        c->gid = strdup(m->gid);
        c->trans_type = strdup(m->trans_type);
        c->branch_id = strdup(m->branch_id);
        c->op = strdup(m->op);
        c->reply_to = strdup(m->reply_to);
        c->topic = strdup(m->topic);
        c->payload = malloc(m->payload_len + 1);
        if (m->payload_len)
            memcpy(c->payload, m->payload, m->payload_len);
        c->payload_len = m->payload_len;
        c->partition = m->partition;
        c->offset = m->offset;
    }
    const rule *u = find_rule(r, m);
    if (u && u->message)
        snprintf(message, len, "%s", u->message);
    if (r->stop_me)
        dtmq_worker_stop(r->stop_me);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return u ? u->result : DTMQ_SUCCESS;
}

/* Waits until the recorder has n calls; returns how many it has. */
static size_t recorder_wait(recorder *r, size_t n, int timeout_ms)
{
    struct timespec until = dtmq_deadline_after_ms(timeout_ms);
    pthread_mutex_lock(&r->mu);
    while (r->n < n && pthread_cond_timedwait(&r->cv, &r->mu, &until) == 0)
        ;
    size_t have = r->n;
    pthread_mutex_unlock(&r->mu);
    return have;
}

/* ---- names, producing ---------------------------------------------------- */

static void fresh_name(char *buf, size_t len, const char *prefix)
{
    e2e_gid(buf, len, prefix);
}

typedef struct branch_spec {
    const char *topic, *gid, *trans_type, *branch_id, *op, *reply_to;
    const void *payload;
    size_t payload_len;
} branch_spec;

/* Produces a branch message with dtmq's headers and waits for the ack. */
static void produce_branch(dtmq_kafka_producer *p, const branch_spec *b)
{
    dtmq_kafka_header h[] = {{"dtm-gid", b->gid}, {"dtm-trans-type", b->trans_type},
                        {"dtm-branch-id", b->branch_id}, {"dtm-op", b->op},
                        {"dtm-reply-to", b->reply_to}, {"X-Trace", "t-1"}};
    char err[512] = "";
    int rc = dtmq_kafka_produce_sync(p, b->topic, b->gid, b->payload, b->payload_len, h, 6, WAIT_MS,
                                err, sizeof(err));
    ck_assert_msg(rc == 0, "produce to %s: %s", b->topic, err);
}

/* Produces a message with the given headers only (may be none). */
static void produce_raw(dtmq_kafka_producer *p, const char *topic, const char *key, const char *value,
                        const dtmq_kafka_header *h, size_t nh)
{
    char err[512] = "";
    int rc = dtmq_kafka_produce_sync(p, topic, key, value, strlen(value), h, nh, WAIT_MS, err, sizeof(err));
    ck_assert_msg(rc == 0, "produce to %s: %s", topic, err);
}

static dtmq_kafka_producer *start_producer(void)
{
    char err[512] = "";
    dtmq_kafka_producer *p = dtmq_kafka_producer_start(test_kafka_bootstrap(), err, sizeof(err));
    ck_assert_msg(p != NULL, "producer: %s", err);
    return p;
}

/* ---- workers with a bound ----------------------------------------------- */

static dtmq_worker *new_worker(const char *group, const char *const *topics, recorder *r)
{
    dtmq_worker_options o = {.bootstrap = test_kafka_bootstrap(), .group = group, .topics = topics,
                             .handler = record_call, .arg = r, .poll_timeout_ms = 100};
    dtmq_worker *w = NULL;
    char err[512] = "";
    int rc = dtmq_worker_new(&o, &w, err, sizeof(err));
    ck_assert_msg(rc == 0, "dtmq_worker_new: %s", err);
    ck_assert_ptr_nonnull(w);
    return w;
}

/* Stops a worker after timeout_ms unless cancelled first. */
typedef struct watchdog {
    dtmq_worker *w;
    int timeout_ms;
    int cancelled, fired;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
} watchdog;

static void *watchdog_main(void *arg)
{
    watchdog *d = arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += d->timeout_ms / 1000;
    until.tv_nsec += (long)(d->timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&d->mu);
    while (!d->cancelled && pthread_cond_timedwait(&d->cv, &d->mu, &until) == 0)
        ;
    if (!d->cancelled) {
        d->fired = 1;
        dtmq_worker_stop(d->w);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* dtmq_worker_run(w, max) stopped after timeout_ms at the latest; asserts no
 * error. Returns what run returned. */
static long run_bounded(dtmq_worker *w, long max, int timeout_ms)
{
    watchdog d = {.w = w, .timeout_ms = timeout_ms};
    pthread_mutex_init(&d.mu, NULL);
    pthread_cond_init(&d.cv, NULL);
    ck_assert_int_eq(pthread_create(&d.thread, NULL, watchdog_main, &d), 0);
    char err[512] = "";
    long n = dtmq_worker_run(w, max, err, sizeof(err));
    pthread_mutex_lock(&d.mu);
    d.cancelled = 1;
    pthread_cond_signal(&d.cv);
    pthread_mutex_unlock(&d.mu);
    pthread_join(d.thread, NULL);
    pthread_mutex_destroy(&d.mu);
    pthread_cond_destroy(&d.cv);
    ck_assert_msg(n >= 0, "dtmq_worker_run: %s", err);
    return n;
}

/* ---- reading replies and committed offsets ---------------------------------- */

typedef struct kmsg {
    char *key, *value;
    int partition;
} kmsg;

static void kmsgs_free(kmsg *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(m[i].key);
        free(m[i].value);
    }
}

static rd_kafka_t *new_reader(const char *group)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *settings[][2] = {{"bootstrap.servers", test_kafka_bootstrap()},
                                 {"group.id", group},
                                 {"auto.offset.reset", "earliest"},
                                 {"enable.auto.commit", "false"},
                                 {"allow.auto.create.topics", "true"},
                                 {"log_level", "3"}};
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
        ck_assert_int_eq(rd_kafka_conf_set(conf, settings[i][0], settings[i][1], errstr, sizeof(errstr)),
                         RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    ck_assert_msg(rk != NULL, "reader: %s", errstr);
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

/* Reads up to max messages of topic (from the start) until stop_key's
 * message arrived, max were read, or timeout_ms passed. Returns the count. */
static size_t read_topic(const char *topic, kmsg *out, size_t max, const char *stop_key,
                         int timeout_ms)
{
    char group[64];
    fresh_name(group, sizeof(group), "reader");
    rd_kafka_t *rk = new_reader(group);
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(subs, topic, RD_KAFKA_PARTITION_UA);
    ck_assert_int_eq(rd_kafka_subscribe(rk, subs), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(subs);
    size_t n = 0;
    int stop = 0;
    for (int waited = 0; n < max && !stop && waited < timeout_ms; waited += 100) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m == NULL)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            out[n].key = strndup(m->key ? m->key : "", m->key_len);
            out[n].value = strndup(m->payload ? m->payload : "", m->len);
            out[n].partition = (int)m->partition;
            stop = stop_key && strcmp(out[n].key, stop_key) == 0;
            n++;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

/* The offset group committed for topic[partition]; RD_KAFKA_OFFSET_INVALID
 * when none. */
static long long committed_offset(const char *group, const char *topic, int partition)
{
    rd_kafka_t *rk = new_reader(group);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition);
    ck_assert_int_eq(rd_kafka_committed(rk, l, WAIT_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
    long long offset = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return offset;
}

static char *expected_reply(const char *gid, const char *bid, const char *op, const char *result,
                            const char *message)
{
    char *s = NULL;
    ck_assert_int_ge(asprintf(&s,
                              "{\"gid\":\"%s\",\"branch_id\":\"%s\",\"op\":\"%s\",\"dtm_result\":"
                              "\"%s\",\"message\":\"%s\"}",
                              gid, bid, op, result, message),
                     0);
    return s;
}

/* A fresh topic, reply topic, group and gid for one test. */
typedef struct names {
    char topic[64], reply[64], group[64], gid[64];
} names;

static void fresh_names(names *n)
{
    fresh_name(n->topic, sizeof(n->topic), "wt-branch");
    fresh_name(n->reply, sizeof(n->reply), "wt-reply");
    fresh_name(n->group, sizeof(n->group), "wt-group");
    fresh_name(n->gid, sizeof(n->gid), "wt-gid");
}

/* ---- the worker against Kafka ------------------------------------------- */

START_TEST(worker_saga_branch_reaches_the_handler_and_the_reply_is_exact)
{
    names nm;
    fresh_names(&nm);
    dtmq_kafka_producer *p = start_producer();
    static const unsigned char payload[] = {'{', '"', 'a', '"', ':', '1', '}', 0, 0xff, 'z'};
    branch_spec b = {nm.topic, nm.gid, "saga", "01", "action", nm.reply, payload, sizeof(payload)};
    produce_branch(p, &b);

    recorder r;
    recorder_init(&r);
    recorder_rule(&r, NULL, NULL, DTMQ_SUCCESS, "done \"ok\"");
    const char *topics[] = {nm.topic, NULL};
    dtmq_worker *w = new_worker(nm.group, topics, &r);
    ck_assert_int_eq(run_bounded(w, 1, WAIT_MS), 1);

    ck_assert_uint_eq(r.n, 1);
    const record *c = &r.calls[0];
    ck_assert_str_eq(c->gid, nm.gid);
    ck_assert_str_eq(c->trans_type, "saga");
    ck_assert_str_eq(c->branch_id, "01");
    ck_assert_str_eq(c->op, "action");
    ck_assert_str_eq(c->reply_to, nm.reply);
    ck_assert_str_eq(c->topic, nm.topic);
    ck_assert_int_ge(c->partition, 0);
    ck_assert_int_eq(c->offset, 0); /* the first message of its partition */
    ck_assert_uint_eq(c->payload_len, sizeof(payload));
    ck_assert_mem_eq(c->payload, payload, sizeof(payload));

    kmsg replies[4];
    size_t n = read_topic(nm.reply, replies, 4, nm.gid, WAIT_MS);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(replies[0].key, nm.gid);
    char *want = expected_reply(nm.gid, "01", "action", "SUCCESS", "done \\\"ok\\\"");
    ck_assert_str_eq(replies[0].value, want);
    free(want);
    kmsgs_free(replies, n);
    dtmq_worker_free(w);
    recorder_clear(&r);
    dtmq_kafka_producer_stop(p, 5000);
}
END_TEST

START_TEST(worker_takes_dtmqs_headers_over_branch_headers_of_the_same_name)
{
    names nm;
    fresh_names(&nm);
    char elsewhere[64];
    fresh_name(elsewhere, sizeof(elsewhere), "wt-elsewhere");
    dtmq_kafka_producer *p = start_producer();
    /* dtmq writes its headers first, then the transaction's branch_headers */
    dtmq_kafka_header h[] = {{"dtm-gid", nm.gid}, {"dtm-trans-type", "saga"}, {"dtm-branch-id", "01"},
                        {"dtm-op", "action"}, {"dtm-reply-to", nm.reply},
                        {"dtm-gid", "spoofed"}, {"dtm-op", "compensate"},
                        {"dtm-reply-to", elsewhere}};
    produce_raw(p, nm.topic, nm.gid, "v", h, sizeof(h) / sizeof(h[0]));
    recorder r;
    recorder_init(&r);
    const char *topics[] = {nm.topic, NULL};
    dtmq_worker *w = new_worker(nm.group, topics, &r);
    ck_assert_int_eq(run_bounded(w, 1, WAIT_MS), 1);
    ck_assert_str_eq(r.calls[0].gid, nm.gid);
    ck_assert_str_eq(r.calls[0].op, "action");
    ck_assert_str_eq(r.calls[0].reply_to, nm.reply);
    kmsg replies[2];
    size_t n = read_topic(nm.reply, replies, 2, nm.gid, WAIT_MS);
    ck_assert_uint_eq(n, 1);
    char *want = expected_reply(nm.gid, "01", "action", "SUCCESS", "");
    ck_assert_str_eq(replies[0].value, want);
    free(want);
    kmsgs_free(replies, n);
    dtmq_worker_free(w);
    recorder_clear(&r);
    dtmq_kafka_producer_stop(p, 5000);
}
END_TEST

START_TEST(worker_failure_and_ongoing_are_replied_as_dtm_results)
{
    names nm;
    fresh_names(&nm);
    dtmq_kafka_producer *p = start_producer();
    const char *ops[] = {"action", "compensate", "try"};
    const char *bids[] = {"01", "02", "03"};
    for (int i = 0; i < 3; i++) {
        branch_spec b = {nm.topic, nm.gid, i == 2 ? "tcc" : "saga", bids[i], ops[i], nm.reply, "{}", 2};
        produce_branch(p, &b);
    }
    recorder r;
    recorder_init(&r);
    recorder_rule(&r, NULL, "action", DTMQ_FAILURE, "insufficient balance");
    recorder_rule(&r, NULL, "compensate", DTMQ_ONGOING, NULL);
    recorder_rule(&r, NULL, "try", DTMQ_SUCCESS, NULL);
    const char *topics[] = {nm.topic, NULL};
    dtmq_worker *w = new_worker(nm.group, topics, &r);
    ck_assert_int_eq(run_bounded(w, 3, WAIT_MS), 3);
    ck_assert_str_eq(r.calls[2].trans_type, "tcc");

    kmsg replies[8];
    size_t n = read_topic(nm.reply, replies, 3, NULL, WAIT_MS);
    ck_assert_uint_eq(n, 3); /* one gid: one partition, in order */
    char *want[] = {expected_reply(nm.gid, "01", "action", "FAILURE", "insufficient balance"),
                    expected_reply(nm.gid, "02", "compensate", "ONGOING", ""),
                    expected_reply(nm.gid, "03", "try", "SUCCESS", "")};
    for (size_t i = 0; i < 3; i++) {
        ck_assert_str_eq(replies[i].key, nm.gid);
        ck_assert_str_eq(replies[i].value, want[i]);
        free(want[i]);
    }
    kmsgs_free(replies, n);
    dtmq_worker_free(w);
    recorder_clear(&r);
    dtmq_kafka_producer_stop(p, 5000);
}
END_TEST

START_TEST(worker_sends_no_reply_for_msg_branches)
{
    names nm;
    fresh_names(&nm);
    dtmq_kafka_producer *p = start_producer();
    branch_spec m = {nm.topic, nm.gid, "msg", "01", "action", nm.reply, "{\"m\":1}", 7};
    produce_branch(p, &m);
    /* a saga branch behind it in the same partition: its reply is the sentinel */
    branch_spec s = {nm.topic, nm.gid, "saga", "02", "action", nm.reply, "{}", 2};
    produce_branch(p, &s);
    recorder r;
    recorder_init(&r);
    /* the msg handler fails once: the worker must keep the message (dtmq never
     * sends a msg branch again) and hand it over once more, then succeed */
    recorder_rule_n(&r, NULL, NULL, DTMQ_FAILURE, "not yet", 1);
    recorder_rule_n(&r, NULL, NULL, DTMQ_SUCCESS, "", 1);
    recorder_rule(&r, NULL, NULL, DTMQ_FAILURE, "would be replied if it were not msg");
    const char *topics[] = {nm.topic, NULL};
    dtmq_worker *w = new_worker(nm.group, topics, &r);
    ck_assert_int_eq(run_bounded(w, 3, WAIT_MS), 3);
    ck_assert_str_eq(r.calls[0].trans_type, "msg");
    ck_assert_str_eq(r.calls[0].reply_to, nm.reply);
    ck_assert_str_eq(r.calls[1].trans_type, "msg"); /* the same message again */
    ck_assert_str_eq(r.calls[1].branch_id, "01");
    ck_assert_str_eq(r.calls[2].branch_id, "02");

    kmsg replies[4];
    size_t n = read_topic(nm.reply, replies, 4, nm.gid, WAIT_MS);
    ck_assert_uint_eq(n, 1); /* only the saga branch's */
    char *want = expected_reply(nm.gid, "02", "action", "FAILURE", "would be replied if it were not msg");
    ck_assert_str_eq(replies[0].value, want);
    free(want);
    kmsgs_free(replies, n);
    dtmq_worker_free(w);
    recorder_clear(&r);
    dtmq_kafka_producer_stop(p, 5000);
}
END_TEST

START_TEST(worker_skips_messages_without_dtm_headers)
{
    names nm;
    fresh_names(&nm);
    dtmq_kafka_producer *p = start_producer();
    produce_raw(p, nm.topic, nm.gid, "no headers at all", NULL, 0);
    dtmq_kafka_header no_op[] = {{"dtm-gid", nm.gid}, {"dtm-branch-id", "01"}, {"dtm-trans-type", "saga"}};
    produce_raw(p, nm.topic, nm.gid, "no dtm-op", no_op, 3);
    dtmq_kafka_header no_bid[] = {{"dtm-gid", nm.gid}, {"dtm-op", "action"}};
    produce_raw(p, nm.topic, nm.gid, "no dtm-branch-id", no_bid, 2);
    branch_spec good = {nm.topic, nm.gid, "saga", "04", "action", "", "good", 4};
    produce_branch(p, &good);

    recorder r;
    recorder_init(&r);
    const char *topics[] = {nm.topic, NULL};
    dtmq_worker *w = new_worker(nm.group, topics, &r);
    ck_assert_int_eq(run_bounded(w, 1, WAIT_MS), 1); /* skipped ones are not counted */
    ck_assert_uint_eq(r.n, 1);
    ck_assert_str_eq(r.calls[0].branch_id, "04");
    ck_assert_str_eq(r.calls[0].reply_to, ""); /* empty reply_to: nothing to publish */
    ck_assert_int_eq(r.calls[0].offset, 3);
    int partition = r.calls[0].partition;
    dtmq_worker_free(w); /* commits */
    ck_assert_int_eq(committed_offset(nm.group, nm.topic, partition), 4);
    recorder_clear(&r);
    dtmq_kafka_producer_stop(p, 5000);
}
END_TEST

START_TEST(worker_commits_offsets_so_the_next_worker_does_not_redeliver)
{
    names nm;
    fresh_names(&nm);
    dtmq_kafka_producer *p = start_producer();
    const char *bids[] = {"01", "02", "03", "04"};
    for (int i = 0; i < 3; i++) {
        branch_spec b = {nm.topic, nm.gid, "saga", bids[i], "action", nm.reply, "x", 1};
        produce_branch(p, &b);
    }
    recorder r1;
    recorder_init(&r1);
    const char *topics[] = {nm.topic, NULL};
    dtmq_worker *w1 = new_worker(nm.group, topics, &r1);
    ck_assert_int_eq(run_bounded(w1, 3, WAIT_MS), 3);
    int partition = r1.calls[0].partition;
    dtmq_worker_free(w1);
    ck_assert_int_eq(committed_offset(nm.group, nm.topic, partition), 3);

    branch_spec b4 = {nm.topic, nm.gid, "saga", bids[3], "action", nm.reply, "x", 1};
    produce_branch(p, &b4);
    recorder r2;
    recorder_init(&r2);
    dtmq_worker *w2 = new_worker(nm.group, topics, &r2);
    /* same key, same partition: a redelivered 01..03 would come before 04 */
    ck_assert_int_eq(run_bounded(w2, 1, WAIT_MS), 1);
    ck_assert_str_eq(r2.calls[0].branch_id, "04");
    ck_assert_int_eq(r2.calls[0].offset, 3);
    dtmq_worker_free(w2);
    ck_assert_int_eq(committed_offset(nm.group, nm.topic, partition), 4);
    recorder_clear(&r1);
    recorder_clear(&r2);
    dtmq_kafka_producer_stop(p, 5000);
}
END_TEST

START_TEST(worker_handles_again_a_message_whose_reply_failed)
{
    names nm;
    fresh_names(&nm);
    dtmq_kafka_producer *p = start_producer();
    branch_spec bad = {nm.topic, nm.gid, "saga", "01", "action", "bad topic!", "x", 1};
    produce_branch(p, &bad);
    branch_spec next = {nm.topic, nm.gid, "saga", "02", "action", nm.reply, "y", 1};
    produce_branch(p, &next);

    recorder r1;
    recorder_init(&r1);
    const char *topics[] = {nm.topic, NULL};
    dtmq_worker *w1 = new_worker(nm.group, topics, &r1);
    /* One handler call per run: a run ends once its replies are settled,
     * and a failed one has moved the partition back by then. (Within a run,
     * 02 may be handled while 01's reply is in flight; then it is handled
     * again after 01.) */
    ck_assert_int_eq(run_bounded(w1, 1, WAIT_MS * 2), 1);
    ck_assert_int_eq(run_bounded(w1, 1, WAIT_MS * 2), 1);
    /* the same message twice: the partition never moved past it */
    ck_assert_uint_eq(r1.n, 2);
    for (size_t i = 0; i < 2; i++) {
        ck_assert_str_eq(r1.calls[i].branch_id, "01");
        ck_assert_int_eq(r1.calls[i].offset, 0);
    }
    int partition = r1.calls[0].partition;
    dtmq_worker_free(w1);
    long long committed = committed_offset(nm.group, nm.topic, partition);
    ck_assert_msg(committed == RD_KAFKA_OFFSET_INVALID || committed == 0,
                  "offset %lld committed past a message whose reply failed", committed);

    recorder r2;
    recorder_init(&r2);
    dtmq_worker *w2 = new_worker(nm.group, topics, &r2);
    ck_assert_int_eq(run_bounded(w2, 1, WAIT_MS * 2), 1);
    ck_assert_str_eq(r2.calls[0].branch_id, "01");
    ck_assert_int_eq(r2.calls[0].offset, 0);
    dtmq_worker_free(w2);
    kmsg replies[2];
    size_t n = read_topic(nm.reply, replies, 2, NULL, 2000);
    ck_assert_uint_eq(n, 0); /* 02 is stuck behind 01, as at-least-once in order requires */
    kmsgs_free(replies, n);
    recorder_clear(&r1);
    recorder_clear(&r2);
    dtmq_kafka_producer_stop(p, 5000);
}
END_TEST

typedef struct run_arg {
    dtmq_worker *w;
    long result;
} run_arg;

static void *run_unbounded(void *arg)
{
    run_arg *a = arg;
    char err[256];
    a->result = dtmq_worker_run(a->w, 0, err, sizeof(err));
    return NULL;
}

START_TEST(worker_stops_from_the_handler_and_from_another_thread)
{
    names nm;
    fresh_names(&nm);
    dtmq_kafka_producer *p = start_producer();
    for (int i = 0; i < 2; i++) {
        branch_spec b = {nm.topic, nm.gid, "saga", i ? "02" : "01", "action", "", "x", 1};
        produce_branch(p, &b);
    }
    recorder r;
    recorder_init(&r);
    const char *topics[] = {nm.topic, NULL};
    dtmq_worker *w = new_worker(nm.group, topics, &r);
    r.stop_me = w;
    ck_assert_int_eq(run_bounded(w, 0, WAIT_MS), 1); /* unlimited, stopped by the handler */
    ck_assert_str_eq(r.calls[0].branch_id, "01");
    r.stop_me = NULL;
    ck_assert_int_eq(run_bounded(w, 1, WAIT_MS), 1); /* a stop ends one run only */
    ck_assert_str_eq(r.calls[1].branch_id, "02");

    run_arg a = {w, -2};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, run_unbounded, &a), 0);
    test_sleep_ms(300);
    dtmq_worker_stop(w);
    pthread_join(t, NULL);
    ck_assert_int_eq(a.result, 0);
    dtmq_worker_free(w);
    recorder_clear(&r);
    dtmq_kafka_producer_stop(p, 5000);
}
END_TEST

/* Waits until the workers' assignments are all non-empty and add up to
 * total partitions; returns the milliseconds it took, or -1 at WAIT_MS. */
static int wait_assigned(dtmq_worker *const *ws, int n, int total)
{
    for (int waited = 0; waited < WAIT_MS; waited += 100) {
        int sum = 0, all = 1;
        for (int i = 0; i < n; i++) {
            int got = dtmq_worker_assigned_partitions(ws[i]);
            all = all && got > 0;
            sum += got > 0 ? got : 0;
        }
        if (all && sum == total)
            return waited;
        test_sleep_ms(100);
    }
    return -1;
}

START_TEST(worker_reports_its_assignment_and_shares_it_with_a_second_member)
{
    names nm;
    fresh_names(&nm);
    recorder r;
    recorder_init(&r);
    const char *topics[] = {nm.topic, NULL}; /* created by the worker: the cluster's 4 partitions */
    dtmq_worker *ws[2] = {new_worker(nm.group, topics, &r), NULL};
    ck_assert_int_eq(dtmq_worker_assigned_partitions(NULL), -1);
    run_arg a[2] = {{ws[0], -2}, {NULL, -2}};
    pthread_t t[2];
    ck_assert_int_eq(pthread_create(&t[0], NULL, run_unbounded, &a[0]), 0);
    int alone_ms = wait_assigned(ws, 1, 4);
    ck_assert_msg(alone_ms >= 0, "one worker never got the topic's 4 partitions");

    ws[1] = new_worker(nm.group, topics, &r);
    a[1].w = ws[1];
    ck_assert_int_eq(pthread_create(&t[1], NULL, run_unbounded, &a[1]), 0);
    int shared_ms = wait_assigned(ws, 2, 4);
    fprintf(stderr, "assignment: alone after %d ms, shared with a second member after %d ms\n",
            alone_ms, shared_ms);
    ck_assert_msg(shared_ms >= 0, "the two workers never split the 4 partitions");
    for (int i = 0; i < 2; i++) {
        dtmq_worker_stop(ws[i]);
        pthread_join(t[i], NULL);
        ck_assert_int_eq(a[i].result, 0);
        dtmq_worker_free(ws[i]);
    }
    recorder_clear(&r);
}
END_TEST

START_TEST(worker_new_rejects_missing_options)
{
    const char *topics[] = {"t", NULL};
    const char *no_topics[] = {NULL};
    recorder r;
    recorder_init(&r);
    struct {
        dtmq_worker_options o;
        const char *want;
    } cases[] = {
        {{NULL, "g", topics, record_call, &r, 0}, "bootstrap"},
        {{"127.0.0.1:1", "", topics, record_call, &r, 0}, "group"},
        {{"127.0.0.1:1", "g", NULL, record_call, &r, 0}, "topics"},
        {{"127.0.0.1:1", "g", no_topics, record_call, &r, 0}, "topics"},
        {{"127.0.0.1:1", "g", topics, NULL, &r, 0}, "handler"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        dtmq_worker *w = (dtmq_worker *)&r; /* must be reset to NULL */
        char err[256] = "";
        ck_assert_int_eq(dtmq_worker_new(&cases[i].o, &w, err, sizeof(err)), -1);
        ck_assert_ptr_null(w);
        ck_assert_msg(strstr(err, cases[i].want) != NULL, "case %zu: '%s'", i, err);
    }
    char err[256] = "";
    ck_assert_int_eq(dtmq_worker_new(NULL, NULL, err, sizeof(err)), -1);
    ck_assert_int_eq(dtmq_worker_run(NULL, 1, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "no worker"));
    dtmq_worker_stop(NULL);
    dtmq_worker_free(NULL);
    recorder_clear(&r);
}
END_TEST

/* ---- the HTTP helpers ---------------------------------------------------- */

typedef struct parsed {
    char gid[64], tt[16], bid[16], op[16], err[256];
} parsed;

static int parse(const char *q, parsed *p)
{
    memset(p, 0, sizeof(*p));
    return dtmq_parse_branch_query(q, p->gid, sizeof(p->gid), p->tt, sizeof(p->tt), p->bid,
                                   sizeof(p->bid), p->op, sizeof(p->op), p->err, sizeof(p->err));
}

START_TEST(parse_branch_query_reads_dtm_parameters)
{
    parsed p;
    ck_assert_int_eq(parse("gid=g1&trans_type=saga&branch_id=01&op=action", &p), 0);
    ck_assert_str_eq(p.gid, "g1");
    ck_assert_str_eq(p.tt, "saga");
    ck_assert_str_eq(p.bid, "01");
    ck_assert_str_eq(p.op, "action");

    /* any order, other parameters, a path before '?', the first value wins */
    ck_assert_int_eq(parse("/api/TransIn?x=1&op=compensate&gid=g2&branch_id=02&trans_type=tcc&gid=other", &p), 0);
    ck_assert_str_eq(p.gid, "g2");
    ck_assert_str_eq(p.tt, "tcc");
    ck_assert_str_eq(p.bid, "02");
    ck_assert_str_eq(p.op, "compensate");

    /* URL-encoded names and values */
    ck_assert_int_eq(parse("?gid=a%2Fb+c%C3%A9&trans%5Ftype=msg&branch_id=%30%31&op=act%69on#frag", &p), 0);
    ck_assert_str_eq(p.gid, "a/b c\xc3\xa9");
    ck_assert_str_eq(p.tt, "msg");
    ck_assert_str_eq(p.bid, "01");
    ck_assert_str_eq(p.op, "action");
}
END_TEST

START_TEST(parse_branch_query_names_what_is_missing_or_wrong)
{
    parsed p;
    struct {
        const char *query, *want;
    } cases[] = {
        {"trans_type=saga&branch_id=01&op=action", "gid is missing"},
        {"gid=g&branch_id=01&op=action", "trans_type is missing"},
        {"gid=g&trans_type=saga&op=action", "branch_id is missing"},
        {"gid=g&trans_type=saga&branch_id=01", "op is missing"},
        {"gid=&trans_type=saga&branch_id=01&op=action", "gid is missing"},
        {"gid&trans_type=saga&branch_id=01&op=action", "gid is missing"},
        {"", "gid is missing"},
        {"gid=g%2&trans_type=saga&branch_id=01&op=action", "gid: bad %-escape"},
        {"gid=g%zz&trans_type=saga&branch_id=01&op=action", "gid: bad %-escape"},
        {"gid=g%00x&trans_type=saga&branch_id=01&op=action", "gid: bad %-escape"},
        {"gid=g&trans_type=saga&branch_id=01&op=aaaaaaaaaaaaaaaaaaaa", "op: longer than its buffer (16 bytes)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_msg(parse(cases[i].query, &p) == -1, "case %zu accepted", i);
        ck_assert_msg(strstr(p.err, cases[i].want) != NULL, "case %zu: '%s'", i, p.err);
    }
    ck_assert_int_eq(dtmq_parse_branch_query(NULL, p.gid, 1, p.tt, 1, p.bid, 1, p.op, 1, p.err,
                                             sizeof(p.err)), -1);
    /* exactly fitting: 15 characters + NUL in 16 bytes */
    ck_assert_int_eq(parse("gid=g&trans_type=saga&branch_id=01&op=aaaaaaaaaaaaaaa", &p), 0);
    ck_assert_str_eq(p.op, "aaaaaaaaaaaaaaa");
}
END_TEST

START_TEST(result_http_status_is_dtms)
{
    ck_assert_int_eq(dtmq_result_http_status(DTMQ_SUCCESS), 200);
    ck_assert_int_eq(dtmq_result_http_status(DTMQ_FAILURE), 409);
    ck_assert_int_eq(dtmq_result_http_status(DTMQ_ONGOING), 425);
    ck_assert_int_eq(dtmq_result_http_status((dtmq_result)7), 500);
}
END_TEST

/* ---- end to end with dtmq ------------------------------------------------ */

/* dtmq on real Kafka with its own topic prefix and group. */
static void start_dtmq_on_kafka(dtmq_proc *d, char *prefix, size_t prefix_len)
{
    char store[512], group[64];
    test_store_uri(store, sizeof(store));
    fresh_name(prefix, prefix_len - 1, "wt");
    strcat(prefix, ".");
    fresh_name(group, sizeof(group), "wt-dtmq");
    /* RequestTimeout 10 s: a reply is awaited that long, so a slow group join
     * does not turn into a retry (which would duplicate calls) */
    const char *extra[] = {"--kafka", test_kafka_bootstrap(), "--kafka-topic-prefix", prefix,
                           "--kafka-group", group, "--request-timeout", "10", NULL};
    e2e_start(d, store, extra);
}

typedef struct worker_thread {
    dtmq_worker *w;
    pthread_t thread;
    long result;
    char err[256];
} worker_thread;

static void *worker_thread_main(void *arg)
{
    worker_thread *t = arg;
    t->result = dtmq_worker_run(t->w, 0, t->err, sizeof(t->err));
    return NULL;
}

/* Makes sure the worker is assigned its topics before dtmq publishes: one
 * msg-type warm-up message per topic, waited for. */
static void warm_up(dtmq_kafka_producer *p, recorder *r, const char *const *topics, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        branch_spec b = {topics[i], "warmup", "msg", "00", "warmup", "", "", 0};
        produce_branch(p, &b);
    }
    ck_assert_uint_eq(recorder_wait(r, n, WAIT_MS * 2), n);
}

START_TEST(e2e_saga_with_kafka_branches_compensates_in_reverse)
{
    dtmq_proc d;
    char prefix[64];
    start_dtmq_on_kafka(&d, prefix, sizeof(prefix));
    char a[64], b[64], a_rev[80], b_rev[80], group[64], gid[64];
    fresh_name(a, sizeof(a), "wt-a");
    fresh_name(b, sizeof(b), "wt-b");
    snprintf(a_rev, sizeof(a_rev), "%s-revert", a);
    snprintf(b_rev, sizeof(b_rev), "%s-revert", b);
    fresh_name(group, sizeof(group), "wt-busi");
    fresh_name(gid, sizeof(gid), "wt-saga");

    recorder r;
    recorder_init(&r);
    recorder_rule(&r, b, "action", DTMQ_FAILURE, "B refuses");
    const char *topics[] = {a, b, a_rev, b_rev, NULL};
    worker_thread wt = {.w = new_worker(group, topics, &r)};
    ck_assert_int_eq(pthread_create(&wt.thread, NULL, worker_thread_main, &wt), 0);
    dtmq_kafka_producer *p = start_producer();
    warm_up(p, &r, topics, 4);

    char body[1024];
    snprintf(body, sizeof(body),
             "{\"gid\":\"%s\",\"trans_type\":\"saga\",\"wait_result\":true,"
             "\"steps\":[{\"action\":\"kafka://%s\",\"compensate\":\"kafka://%s\"},"
             "{\"action\":\"kafka://%s\",\"compensate\":\"kafka://%s\"}],"
             "\"payloads\":[\"{\\\"amount\\\":10}\",\"{\\\"amount\\\":20}\"]}",
             gid, a, a_rev, b, b_rev);
    e2e_post_expect(&d, "submit", body, 409); /* wait_result: ended failed */
    char st[32];
    ck_assert_str_eq(e2e_status(&d, gid, st, sizeof(st)), "failed");
    ck_assert_uint_eq(recorder_wait(&r, 8, 5000), 8);

    dtmq_worker_stop(wt.w);
    pthread_join(wt.thread, NULL);
    ck_assert_msg(wt.result == 8, "run: %ld %s", wt.result, wt.err);
    struct {
        const char *topic, *op, *bid, *payload;
    } want[] = {{a, "action", "01", "{\"amount\":10}"},
                {b, "action", "02", "{\"amount\":20}"},
                {b_rev, "compensate", "02", "{\"amount\":20}"},
                {a_rev, "compensate", "01", "{\"amount\":10}"}};
    char reply_topic[96];
    snprintf(reply_topic, sizeof(reply_topic), "%sreply", prefix);
    ck_assert_uint_eq(r.n, 8);
    for (size_t i = 0; i < 4; i++) {
        const record *c = &r.calls[4 + i];
        ck_assert_str_eq(c->topic, want[i].topic);
        ck_assert_str_eq(c->op, want[i].op);
        ck_assert_str_eq(c->branch_id, want[i].bid);
        ck_assert_str_eq(c->gid, gid);
        ck_assert_str_eq(c->trans_type, "saga");
        ck_assert_str_eq(c->reply_to, reply_topic);
        ck_assert_uint_eq(c->payload_len, strlen(want[i].payload));
        ck_assert_mem_eq(c->payload, want[i].payload, c->payload_len);
    }
    dtmq_worker_free(wt.w);
    recorder_clear(&r);
    dtmq_kafka_producer_stop(p, 5000);
    e2e_stop(&d);
}
END_TEST

START_TEST(e2e_saga_branch_answered_ongoing_is_called_again)
{
    dtmq_proc d;
    char prefix[64];
    start_dtmq_on_kafka(&d, prefix, sizeof(prefix));
    char a[64], a_rev[80], group[64], gid[64];
    fresh_name(a, sizeof(a), "wt-a");
    snprintf(a_rev, sizeof(a_rev), "%s-revert", a);
    fresh_name(group, sizeof(group), "wt-busi");
    fresh_name(gid, sizeof(gid), "wt-saga");

    recorder r;
    recorder_init(&r);
    recorder_rule_n(&r, a, "action", DTMQ_ONGOING, "not yet", 1);
    const char *topics[] = {a, a_rev, NULL};
    worker_thread wt = {.w = new_worker(group, topics, &r)};
    ck_assert_int_eq(pthread_create(&wt.thread, NULL, worker_thread_main, &wt), 0);
    dtmq_kafka_producer *p = start_producer();
    warm_up(p, &r, topics, 2);

    char body[1024];
    snprintf(body, sizeof(body),
             "{\"gid\":\"%s\",\"trans_type\":\"saga\",\"steps\":[{\"action\":\"kafka://%s\","
             "\"compensate\":\"kafka://%s\"}],\"payloads\":[\"p\"]}",
             gid, a, a_rev);
    e2e_post_expect(&d, "submit", body, 200);
    e2e_wait_status(&d, gid, "succeed", 30);
    ck_assert_uint_eq(recorder_wait(&r, 4, 5000), 4);
    dtmq_worker_stop(wt.w);
    pthread_join(wt.thread, NULL);
    ck_assert_msg(wt.result == 4, "run: %ld %s", wt.result, wt.err);
    /* ONGOING, then the same branch again (SUCCESS); no compensation */
    ck_assert_uint_eq(r.n, 4);
    for (size_t i = 2; i < 4; i++) {
        ck_assert_str_eq(r.calls[i].topic, a);
        ck_assert_str_eq(r.calls[i].op, "action");
        ck_assert_str_eq(r.calls[i].branch_id, "01");
        ck_assert_str_eq(r.calls[i].gid, gid);
    }
    dtmq_worker_free(wt.w);
    recorder_clear(&r);
    dtmq_kafka_producer_stop(p, 5000);
    e2e_stop(&d);
}
END_TEST

START_TEST(e2e_msg_with_a_kafka_branch_succeeds_and_is_delivered)
{
    dtmq_proc d;
    char prefix[64];
    start_dtmq_on_kafka(&d, prefix, sizeof(prefix));
    char topic[64], group[64], gid[64];
    fresh_name(topic, sizeof(topic), "wt-m");
    fresh_name(group, sizeof(group), "wt-busi");
    fresh_name(gid, sizeof(gid), "wt-msg");
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"gid\":\"%s\",\"trans_type\":\"msg\",\"wait_result\":true,"
             "\"query_prepared\":\"http://127.0.0.1:9/qp\","
             "\"steps\":[{\"action\":\"kafka://%s\"}],\"payloads\":[\"{\\\"amount\\\":7}\"],"
             "\"branch_headers\":{\"X-Trace\":\"t-9\"}}",
             gid, topic);
    e2e_post_expect(&d, "submit", body, 200);
    char st[32];
    ck_assert_str_eq(e2e_status(&d, gid, st, sizeof(st)), "succeed");

    recorder r;
    recorder_init(&r);
    recorder_rule(&r, NULL, NULL, DTMQ_FAILURE, "ignored for msg");
    const char *topics[] = {topic, NULL};
    dtmq_worker *w = new_worker(group, topics, &r);
    ck_assert_int_eq(run_bounded(w, 1, WAIT_MS), 1);
    const record *c = &r.calls[0];
    ck_assert_str_eq(c->gid, gid);
    ck_assert_str_eq(c->trans_type, "msg");
    ck_assert_str_eq(c->branch_id, "01");
    ck_assert_str_eq(c->op, "action");
    ck_assert_uint_eq(c->payload_len, strlen("{\"amount\":7}"));
    ck_assert_mem_eq(c->payload, "{\"amount\":7}", c->payload_len);
    dtmq_worker_free(w);
    /* the worker's FAILURE was not replied and changed nothing */
    ck_assert_str_eq(e2e_status(&d, gid, st, sizeof(st)), "succeed");
    recorder_clear(&r);
    e2e_stop(&d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("worker");
    test_group helpers = {.suite = s};
    test_add(&helpers, worker_new_rejects_missing_options);
    test_add(&helpers, parse_branch_query_reads_dtm_parameters);
    test_add(&helpers, parse_branch_query_names_what_is_missing_or_wrong);
    test_add(&helpers, result_http_status_is_dtms);

    test_group kafka = {.suite = s, .timeout_s = 120};
    test_add(&kafka, worker_saga_branch_reaches_the_handler_and_the_reply_is_exact);
    test_add(&kafka, worker_takes_dtmqs_headers_over_branch_headers_of_the_same_name);
    test_add(&kafka, worker_failure_and_ongoing_are_replied_as_dtm_results);
    test_add(&kafka, worker_sends_no_reply_for_msg_branches);
    test_add(&kafka, worker_skips_messages_without_dtm_headers);
    test_add(&kafka, worker_commits_offsets_so_the_next_worker_does_not_redeliver);
    test_add(&kafka, worker_handles_again_a_message_whose_reply_failed);
    test_add(&kafka, worker_stops_from_the_handler_and_from_another_thread);
    test_add(&kafka, worker_reports_its_assignment_and_shares_it_with_a_second_member);

    test_group e2e = {.suite = s, .timeout_s = 180};
    test_add(&e2e, e2e_saga_with_kafka_branches_compensates_in_reverse);
    test_add(&e2e, e2e_saga_branch_answered_ongoing_is_called_again);
    test_add(&e2e, e2e_msg_with_a_kafka_branch_succeeds_and_is_delivered);
    return run_suite(s);
}
