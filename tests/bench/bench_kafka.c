/*
 * bench_kafka.c — the Kafka side of the benchmarks, three programs in one:
 *
 *   bench_kafka worker  --bootstrap B --topics T[,T...] [--threads N] [--group G]
 *       Kafka workers answering dtmq's kafka:// branches through the worker
 *       library (connectors/libdtmq/include/dtmq/dtmq_worker.h): every branch SUCCESS. N
 *       threads, one dtmq_worker each, in one consumer group. Runs until
 *       SIGTERM/SIGINT, then prints "bench_kafka worker: handled N".
 *
 *   bench_kafka submit  --bootstrap B [--concurrency N] [--seconds S] [--warmup S]
 *                       [--steps N] [--action URL] [--compensate URL] [--pid PID]
 *                       [--submit-topic T] [--drain S]
 *       The Kafka-ingress load generator: closed loop of N transactions in
 *       flight, each a saga produced to T (dtm.submit) with wait_result and a
 *       reply_to topic of its own; a transaction ends with dtmq's "finished"
 *       reply (status 200 = succeed). Latency: produce call to that reply.
 *
 *   bench_kafka ceiling --bootstrap B [--concurrency N] [--seconds S] [--warmup S]
 *                       [--hops H] [--size BYTES]
 *       The Kafka ceiling: raw produce + consume with nothing else. N chains
 *       in flight; a transaction is H hops one after the other, each a
 *       message of BYTES produced (idempotent, acks=all, as dtmq produces)
 *       and consumed before the next is produced.
 *
 * submit and ceiling print one RESULT line (bench_common.h); exit 1 when a
 * transaction failed or none finished, 2 on bad usage or no cluster.
 */
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libdtmq/common/kafka_producer.h"
#include <dtmq/dtmq_worker.h>
#include "bench_common.h"

#define PROG "bench_kafka"

typedef struct options {
    const char *cmd;
    const char *bootstrap;
    const char *topics;
    const char *group;
    int threads;
    int concurrency;
    double seconds, warmup;
    int steps;
    const char *action, *compensate;
    int hops, size;
    int pid;
    const char *submit_topic;
    double drain; /* seconds the transactions in flight at the window's end may take */
} options;

static void parse_options(options *o, int argc, char **argv)
{
    memset(o, 0, sizeof(*o));
    o->threads = 4;
    o->group = "bench-workers";
    o->concurrency = 10;
    o->seconds = 5;
    o->warmup = 1;
    o->steps = 2;
    o->action = o->compensate = "kafka://bench.branch";
    o->hops = 6;
    o->submit_topic = "dtm.submit";
    o->drain = 30;
    o->size = 200;
    if (argc < 2)
        bench_die(PROG, "usage: bench_kafka worker|submit|ceiling --bootstrap B [options]");
    o->cmd = argv[1];
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (strcmp(a, "--bootstrap") == 0) o->bootstrap = v;
        else if (strcmp(a, "--topics") == 0) o->topics = v;
        else if (strcmp(a, "--group") == 0) o->group = v;
        else if (strcmp(a, "--threads") == 0) o->threads = (int)bench_parse_long(a, v, 1, 64);
        else if (strcmp(a, "--concurrency") == 0) o->concurrency = (int)bench_parse_long(a, v, 1, 4096);
        else if (strcmp(a, "--seconds") == 0) o->seconds = (double)bench_parse_long(a, v, 1, 3600);
        else if (strcmp(a, "--warmup") == 0) o->warmup = (double)bench_parse_long(a, v, 0, 600);
        else if (strcmp(a, "--steps") == 0) o->steps = (int)bench_parse_long(a, v, 1, 100);
        else if (strcmp(a, "--action") == 0) o->action = v;
        else if (strcmp(a, "--compensate") == 0) o->compensate = v;
        else if (strcmp(a, "--hops") == 0) o->hops = (int)bench_parse_long(a, v, 1, 100);
        else if (strcmp(a, "--size") == 0) o->size = (int)bench_parse_long(a, v, 16, 1 << 20);
        else if (strcmp(a, "--drain") == 0) o->drain = (double)bench_parse_long(a, v, 0, 600);
        else if (strcmp(a, "--submit-topic") == 0) o->submit_topic = v;
        else if (strcmp(a, "--pid") == 0) o->pid = (int)bench_parse_long(a, v, 1, 1 << 30);
        else bench_die(PROG, "unknown option '%s'", a);
    }
    if (argc % 2 != 0 || o->bootstrap == NULL)
        bench_die(PROG, "usage: bench_kafka worker|submit|ceiling --bootstrap B [options]");
}

/* ---- shared: a producer like dtmq's and a consumer of one fresh topic ---- */

static rd_kafka_t *new_client(rd_kafka_type_t type, const options *o, const char *group)
{
    const char *settings[][2] = {
        {"bootstrap.servers", o->bootstrap}, {"log_level", "3"},
        /* the producer as dtmq's (connectors/libdtmq/common/kafka_producer.c) */
        {"enable.idempotence", "true"}, {"acks", "all"}, {"linger.ms", "1"},
    };
    const char *consumer_settings[][2] = {
        {"bootstrap.servers", o->bootstrap}, {"log_level", "3"}, {"group.id", group},
        {"enable.auto.commit", "false"}, {"fetch.wait.max.ms", "100"},
    };
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *(*chosen)[2] = type == RD_KAFKA_PRODUCER ? settings : consumer_settings;
    size_t rows = type == RD_KAFKA_PRODUCER ? sizeof(settings) / sizeof(settings[0])
                                            : sizeof(consumer_settings) / sizeof(consumer_settings[0]);
    for (size_t i = 0; i < rows; i++) {
        const char *k = chosen[i][0], *v = chosen[i][1];
        if (rd_kafka_conf_set(conf, k, v, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
            bench_die(PROG, "%s: %s", k, errstr);
    }
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    if (rk == NULL)
        bench_die(PROG, "cannot create a Kafka client: %s", errstr);
    if (type == RD_KAFKA_CONSUMER)
        rd_kafka_poll_set_consumer(rk);
    return rk;
}

/* Creates topic (one partition) and assigns the consumer to its start. */
static rd_kafka_t *consume_fresh_topic(const options *o, const char *topic)
{
    char err[512];
    const char *topics[] = {topic};
    if (dtmq_kafka_ensure_topics(o->bootstrap, topics, 1, 1, err, sizeof(err)) != 0)
        bench_die(PROG, "%s", err);
    rd_kafka_t *c = new_client(RD_KAFKA_CONSUMER, o, topic);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    if (rd_kafka_assign(c, l) != RD_KAFKA_RESP_ERR_NO_ERROR)
        bench_die(PROG, "cannot assign %s", topic);
    rd_kafka_topic_partition_list_destroy(l);
    return c;
}

static void produce(rd_kafka_t *p, const char *topic, const char *key, const char *value, size_t len)
{
    for (int tries = 0;; tries++) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            return;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || tries > 1000)
            bench_die(PROG, "produce to %s: %s", topic, rd_kafka_err2str(e));
        rd_kafka_poll(p, 10);
    }
}

/* ---- closed-loop slots, shared by submit and ceiling -------------------- */

typedef struct slot {
    uint64_t seq;
    int hop;
    int64_t start;
    int64_t accepted; /* when dtmq's "accepted" reply came (submit mode) */
} slot;

typedef struct loop {
    const options *o;
    slot *slots;
    int64_t measure_from, measure_to;
    int accepting;
    int busy;
    uint64_t measured, errors;
    bench_hist hist;
} loop;

static void loop_finish(loop *l, slot *s, int ok)
{
    int64_t now = bench_now_ns();
    l->busy--;
    if (!ok)
        l->errors++;
    else if (now >= l->measure_from && now <= l->measure_to) {
        l->measured++;
        bench_hist_add(&l->hist, now - s->start);
    }
}

/* "PREFIX-SLOT-SEQ" → slot and seq; -1 when it is not one of ours. */
static int parse_key(const loop *l, const char *key, size_t len, uint64_t *seq)
{
    char buf[128];
    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, key, len);
    buf[len] = '\0';
    char *dash2 = strrchr(buf, '-');
    if (dash2 == NULL)
        return -1;
    *dash2 = '\0';
    char *dash1 = strrchr(buf, '-');
    if (dash1 == NULL)
        return -1;
    int idx = atoi(dash1 + 1);
    *seq = strtoull(dash2 + 1, NULL, 10);
    return idx >= 0 && idx < l->o->concurrency ? idx : -1;
}

/* ---- submit ------------------------------------------------------------- */

typedef struct submit_ctx {
    loop l;
    rd_kafka_t *producer, *consumer;
    char prefix[64], reply_topic[96];
    char *steps_json;
    long trace_slow_ms; /* DTMQ_BENCH_TRACE_SLOW_MS: print transactions slower than this */
} submit_ctx;

static void submit_start(submit_ctx *x, int idx)
{
    slot *s = &x->l.slots[idx];
    s->seq++;
    s->start = bench_now_ns();
    s->accepted = 0;
    x->l.busy++;
    char gid[128];
    snprintf(gid, sizeof(gid), "%s-%d-%llu", x->prefix, idx, (unsigned long long)s->seq);
    size_t cap = strlen(x->steps_json) + 512 + (size_t)x->l.o->steps * 4;
    char *v = malloc(cap);
    char *p = v + sprintf(v, "{\"op\":\"submit\",\"gid\":\"%s\",\"trans_type\":\"saga\",\"steps\":%s,"
                             "\"payloads\":[", gid, x->steps_json);
    for (int i = 0; i < x->l.o->steps; i++)
        p += sprintf(p, "%s\"\"", i ? "," : "");
    sprintf(p, "],\"reply_to\":\"%s\",\"wait_result\":true}", x->reply_topic);
    produce(x->producer, x->l.o->submit_topic, gid, v, strlen(v));
    free(v);
}

/* One reply from dtmq: accepted (ends the transaction only when refused) or
 * finished (ends it: 200 = succeed). */
static void submit_on_reply(submit_ctx *x, const rd_kafka_message_t *m)
{
    uint64_t seq = 0;
    int idx = parse_key(&x->l, m->key, m->key_len, &seq);
    if (idx < 0 || x->l.slots[idx].seq != seq)
        return;
    json_t *j = json_loadb(m->payload, m->len, 0, NULL);
    const char *phase = json_string_value(json_object_get(j, "phase"));
    long status = (long)json_integer_value(json_object_get(j, "status"));
    int ends = phase && (strcmp(phase, "finished") == 0 || status != 200);
    slot *s = &x->l.slots[idx];
    if (phase && strcmp(phase, "accepted") == 0)
        s->accepted = bench_now_ns();
    if (ends && x->trace_slow_ms > 0 && bench_now_ns() - s->start > x->trace_slow_ms * 1000000LL)
        fprintf(stderr, PROG ": slow %.*s: accepted after %.1f ms, finished after %.1f ms\n",
                (int)m->key_len, (const char *)m->key,
                s->accepted ? (s->accepted - s->start) / 1e6 : -1.0,
                (bench_now_ns() - s->start) / 1e6);
    if (ends) {
        if (status != 200 && x->l.errors < 3)
            fprintf(stderr, PROG ": %.*s: %.*s\n", (int)m->key_len, (const char *)m->key,
                    (int)m->len, (const char *)m->payload);
        loop_finish(&x->l, &x->l.slots[idx], status == 200);
        if (x->l.accepting)
            submit_start(x, idx);
    }
    json_decref(j);
}

static void consume_until(loop *l, rd_kafka_t *consumer, rd_kafka_t *producer, int64_t until,
                          int stop_when_idle, void (*on_msg)(void *, const rd_kafka_message_t *),
                          void *arg)
{
    for (;;) {
        if (until > 0 && bench_now_ns() >= until)
            return;
        if (stop_when_idle && l->busy == 0)
            return;
        rd_kafka_poll(producer, 0);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 20);
        if (m == NULL)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
            on_msg(arg, m);
        else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            fprintf(stderr, PROG ": consume: %s\n", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
    }
}

static void submit_on_msg(void *arg, const rd_kafka_message_t *m)
{
    submit_on_reply(arg, m);
}

/* Runs the closed loop: warmup, the measured window, then a bounded drain. */
static void run_loop(loop *l, rd_kafka_t *consumer, rd_kafka_t *producer,
                     void (*start)(void *, int), void (*on_msg)(void *, const rd_kafka_message_t *),
                     void *arg, const char *mode, int pid)
{
    const options *o = l->o;
    int64_t t0 = bench_now_ns();
    l->accepting = 1;
    l->measure_from = t0 + (int64_t)(o->warmup * 1e9);
    l->measure_to = l->measure_from + (int64_t)(o->seconds * 1e9);
    for (int i = 0; i < o->concurrency; i++)
        start(arg, i);
    consume_until(l, consumer, producer, l->measure_from, 0, on_msg, arg);
    bench_proc dtmq;
    bench_proc_start(&dtmq, pid);
    double cpu0 = bench_self_cpu_seconds();
    consume_until(l, consumer, producer, l->measure_to, 0, on_msg, arg);
    char extra[512];
    snprintf(extra, sizeof(extra), "cpu_gen=%.3f", (bench_self_cpu_seconds() - cpu0) / o->seconds);
    bench_proc_report(&dtmq, "dtmq", o->seconds, extra, sizeof(extra));
    l->accepting = 0;
    consume_until(l, consumer, producer, bench_now_ns() + (int64_t)(o->drain * 1e9), 1, on_msg, arg);
    if (l->busy > 0) {
        size_t used = strlen(extra);
        snprintf(extra + used, sizeof(extra) - used, " unfinished=%d", l->busy);
    }
    bench_print_result(mode, o->concurrency, l->measured, o->seconds, &l->hist, l->errors, extra);
}

static void submit_start_cb(void *arg, int idx)
{
    submit_start(arg, idx);
}

static int run_submit(const options *o)
{
    submit_ctx x;
    memset(&x, 0, sizeof(x));
    x.l.o = o;
    x.l.slots = calloc((size_t)o->concurrency, sizeof(slot));
    const char *trace = getenv("DTMQ_BENCH_TRACE_SLOW_MS");
    x.trace_slow_ms = trace ? atol(trace) : 0;
    snprintf(x.prefix, sizeof(x.prefix), "k%x%llx", (unsigned)getpid(), (unsigned long long)bench_wall_ms());
    snprintf(x.reply_topic, sizeof(x.reply_topic), "bench.replies.%s", x.prefix);
    size_t cap = (size_t)o->steps * (strlen(o->action) + strlen(o->compensate) + 40) + 4;
    x.steps_json = malloc(cap);
    char *p = x.steps_json;
    *p++ = '[';
    for (int i = 0; i < o->steps; i++)
        p += sprintf(p, "%s{\"action\":\"%s\",\"compensate\":\"%s\"}", i ? "," : "", o->action, o->compensate);
    strcpy(p, "]");
    x.consumer = consume_fresh_topic(o, x.reply_topic);
    x.producer = new_client(RD_KAFKA_PRODUCER, o, NULL);
    run_loop(&x.l, x.consumer, x.producer, submit_start_cb, submit_on_msg, &x, "kafka-submit", o->pid);
    rd_kafka_flush(x.producer, 5000);
    rd_kafka_consumer_close(x.consumer);
    rd_kafka_destroy(x.consumer);
    rd_kafka_destroy(x.producer);
    int rc = x.l.errors > 0 || x.l.measured == 0 ? 1 : 0;
    free(x.l.slots);
    free(x.steps_json);
    return rc;
}

/* ---- ceiling -------------------------------------------------------------- */

typedef struct ceiling_ctx {
    loop l;
    rd_kafka_t *producer, *consumer;
    char prefix[64], topic[96];
    char *value;
} ceiling_ctx;

static void ceiling_send(ceiling_ctx *x, int idx)
{
    char key[128];
    snprintf(key, sizeof(key), "%s-%d-%llu", x->prefix, idx, (unsigned long long)x->l.slots[idx].seq);
    produce(x->producer, x->topic, key, x->value, (size_t)x->l.o->size);
}

static void ceiling_start(void *arg, int idx)
{
    ceiling_ctx *x = arg;
    slot *s = &x->l.slots[idx];
    s->seq++;
    s->hop = 1;
    s->start = bench_now_ns();
    x->l.busy++;
    ceiling_send(x, idx);
}

static void ceiling_on_msg(void *arg, const rd_kafka_message_t *m)
{
    ceiling_ctx *x = arg;
    uint64_t seq = 0;
    int idx = parse_key(&x->l, m->key, m->key_len, &seq);
    if (idx < 0 || x->l.slots[idx].seq != seq)
        return;
    slot *s = &x->l.slots[idx];
    if (m->len != (size_t)x->l.o->size) {
        loop_finish(&x->l, s, 0);
    } else if (s->hop < x->l.o->hops) {
        s->hop++;
        ceiling_send(x, idx);
        return;
    } else {
        loop_finish(&x->l, s, 1);
    }
    if (x->l.accepting)
        ceiling_start(x, idx);
}

static int run_ceiling(const options *o)
{
    ceiling_ctx x;
    memset(&x, 0, sizeof(x));
    x.l.o = o;
    x.l.slots = calloc((size_t)o->concurrency, sizeof(slot));
    snprintf(x.prefix, sizeof(x.prefix), "c%x%llx", (unsigned)getpid(), (unsigned long long)bench_wall_ms());
    snprintf(x.topic, sizeof(x.topic), "bench.ceiling.%s", x.prefix);
    x.value = malloc((size_t)o->size);
    memset(x.value, 'x', (size_t)o->size);
    x.consumer = consume_fresh_topic(o, x.topic);
    x.producer = new_client(RD_KAFKA_PRODUCER, o, NULL);
    run_loop(&x.l, x.consumer, x.producer, ceiling_start, ceiling_on_msg, &x, "kafka-ceiling", 0);
    rd_kafka_flush(x.producer, 5000);
    rd_kafka_consumer_close(x.consumer);
    rd_kafka_destroy(x.consumer);
    rd_kafka_destroy(x.producer);
    int rc = x.l.errors > 0 || x.l.measured == 0 ? 1 : 0;
    free(x.l.slots);
    free(x.value);
    return rc;
}

/* ---- worker ---------------------------------------------------------------- */

typedef struct worker_thread {
    pthread_t thread;
    dtmq_worker *w;
    long handled;
} worker_thread;

static atomic_long handled_total;

static dtmq_result answer_success(void *arg, const dtmq_branch_msg *m, char *message, size_t len)
{
    atomic_fetch_add(&handled_total, 1);
    return DTMQ_SUCCESS;
}

static void *worker_main(void *arg)
{
    worker_thread *t = arg;
    char err[512];
    t->handled = dtmq_worker_run(t->w, 0, err, sizeof(err));
    if (t->handled < 0)
        fprintf(stderr, PROG " worker: %s\n", err);
    return NULL;
}

/* Waits (up to 30 s) until every worker thread holds at least one partition
 * and the assignment stayed so for a second: the group has formed, so the
 * measured window sees no join or rebalance. Assumes threads <= partitions. */
static void wait_group_ready(worker_thread *ts, int threads)
{
    int stable_ms = 0;
    for (int waited = 0; waited < 30000 && stable_ms < 1000; waited += 100) {
        int all = 1;
        for (int i = 0; i < threads; i++)
            all = all && dtmq_worker_assigned_partitions(ts[i].w) > 0;
        stable_ms = all ? stable_ms + 100 : 0;
        usleep(100 * 1000);
    }
    if (stable_ms < 1000)
        fprintf(stderr, PROG " worker: the group did not form within 30 s\n");
}

static int run_workers(const options *o)
{
    if (o->topics == NULL)
        bench_die(PROG, "worker needs --topics");
    char *copy = strdup(o->topics);
    const char *topics[33] = {0};
    int n = 0;
    for (char *t = strtok(copy, ","); t && n < 32; t = strtok(NULL, ","))
        topics[n++] = t;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    worker_thread *ts = calloc((size_t)o->threads, sizeof(*ts));
    dtmq_worker_options wo = {.bootstrap = o->bootstrap, .group = o->group, .topics = topics,
                              .handler = answer_success, .poll_timeout_ms = 50};
    for (int i = 0; i < o->threads; i++) {
        char err[512];
        if (dtmq_worker_new(&wo, &ts[i].w, err, sizeof(err)) != 0)
            bench_die(PROG, "worker: %s", err);
        pthread_create(&ts[i].thread, NULL, worker_main, &ts[i]);
    }
    wait_group_ready(ts, o->threads);
    printf(PROG " worker: %d threads on %s\n", o->threads, o->topics);
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    for (int i = 0; i < o->threads; i++)
        dtmq_worker_stop(ts[i].w);
    for (int i = 0; i < o->threads; i++) {
        pthread_join(ts[i].thread, NULL);
        dtmq_worker_free(ts[i].w);
    }
    printf(PROG " worker: handled %ld\n", atomic_load(&handled_total));
    free(ts);
    free(copy);
    return 0;
}

int main(int argc, char **argv)
{
    options o;
    parse_options(&o, argc, argv);
    if (strcmp(o.cmd, "worker") == 0)
        return run_workers(&o);
    if (strcmp(o.cmd, "submit") == 0)
        return run_submit(&o);
    if (strcmp(o.cmd, "ceiling") == 0)
        return run_ceiling(&o);
    bench_die(PROG, "'%s' is not worker, submit or ceiling", o.cmd);
}
