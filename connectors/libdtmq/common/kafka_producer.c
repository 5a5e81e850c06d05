/*
 * kafka_producer.c — see kafka_producer.h. Every message carries a small
 * delivery record as its opaque; librdkafka hands it back in the delivery
 * report, where the caller's callback runs and the record is freed. With
 * enable.idempotence, retries never duplicate or reorder a partition's
 * messages, and acks=all means "acknowledged" survives a broker loss.
 */
#include "kafka_producer.h"
#include "deadline.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dtmq_kafka_producer {
    rd_kafka_t *rk;
    pthread_t thread;
    atomic_int stopping;
};

typedef struct delivery {
    dtmq_kafka_delivered done;
    void *arg;
} delivery;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    delivery *d = m->_private;
    if (d == NULL)
        return;
    if (d->done)
        d->done(d->arg, m->err == RD_KAFKA_RESP_ERR_NO_ERROR,
                m->err ? rd_kafka_err2str(m->err) : "");
    free(d);
}

static void *poll_main(void *arg)
{
    dtmq_kafka_producer *p = arg;
    while (!atomic_load(&p->stopping))
        rd_kafka_poll(p->rk, 100);
    return NULL;
}

static int set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err, size_t errlen)
{
    char errstr[256];
    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) == RD_KAFKA_CONF_OK)
        return 0;
    snprintf(err, errlen, "kafka: %s=%s: %s", name, value, errstr);
    return -1;
}

dtmq_kafka_producer *dtmq_kafka_producer_start(const char *bootstrap, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (set(conf, "bootstrap.servers", bootstrap, err, errlen) ||
        set(conf, "enable.idempotence", "true", err, errlen) ||
        set(conf, "acks", "all", err, errlen) || set(conf, "linger.ms", "1", err, errlen) ||
        set(conf, "log_level", "3", err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    dtmq_kafka_producer *p = calloc(1, sizeof(*p));
    char errstr[512];
    p->rk = p ? rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr)) : NULL;
    if (p == NULL || p->rk == NULL) {
        snprintf(err, errlen, "kafka: cannot create the producer: %s", p ? errstr : "out of memory");
        rd_kafka_conf_destroy(conf);
        free(p);
        return NULL;
    }
    if (pthread_create(&p->thread, NULL, poll_main, p) != 0) {
        snprintf(err, errlen, "kafka: cannot start the producer thread");
        rd_kafka_destroy(p->rk);
        free(p);
        return NULL;
    }
    return p;
}

int dtmq_kafka_produce(dtmq_kafka_producer *p, const char *topic, const char *key, const void *value,
                  size_t len, const dtmq_kafka_header *headers, size_t header_count,
                  dtmq_kafka_delivered done, void *arg)
{
    if (atomic_load(&p->stopping))
        return -1;
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(header_count);
    for (size_t i = 0; i < header_count; i++)
        rd_kafka_header_add(hdrs, headers[i].name, -1, headers[i].value, -1);
    delivery *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        rd_kafka_headers_destroy(hdrs);
        return -1;
    }
    d->done = done;
    d->arg = arg;
    rd_kafka_resp_err_t e = rd_kafka_producev(
        p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
        RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) { /* headers are ours again on failure */
        rd_kafka_headers_destroy(hdrs);
        free(d);
        return -1;
    }
    return 0;
}

typedef struct sync_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, ok, abandoned;
    char error[256];
} sync_wait;

static void sync_wait_free(sync_wait *w)
{
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}

static void on_sync_delivery(void *arg, int ok, const char *error)
{
    sync_wait *w = arg;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    w->ok = ok;
    snprintf(w->error, sizeof(w->error), "%s", error);
    int abandoned = w->abandoned;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (abandoned) /* the waiter timed out and left the record to us */
        sync_wait_free(w);
}

int dtmq_kafka_produce_sync(dtmq_kafka_producer *p, const char *topic, const char *key, const void *value,
                       size_t len, const dtmq_kafka_header *headers, size_t header_count,
                       int timeout_ms, char *err, size_t errlen)
{
    sync_wait *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -1;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (dtmq_kafka_produce(p, topic, key, value, len, headers, header_count, on_sync_delivery, w) != 0) {
        snprintf(err, errlen, "kafka: cannot queue a message for %s", topic);
        sync_wait_free(w);
        return -1;
    }
    struct timespec until = dtmq_deadline_after_ms(timeout_ms);
    pthread_mutex_lock(&w->mu);
    while (!w->done && pthread_cond_timedwait(&w->cv, &w->mu, &until) == 0)
        ;
    int done = w->done, ok = w->ok;
    if (!done)
        w->abandoned = 1;
    else if (!ok)
        snprintf(err, errlen, "kafka: %s: %s", topic, w->error);
    pthread_mutex_unlock(&w->mu);
    if (!done) {
        snprintf(err, errlen, "kafka: %s: no acknowledgement within %d ms", topic, timeout_ms);
        return -1;
    }
    sync_wait_free(w);
    return ok ? 0 : -1;
}

int dtmq_kafka_producer_outstanding(dtmq_kafka_producer *p)
{
    return rd_kafka_outq_len(p->rk);
}

void dtmq_kafka_producer_stop(dtmq_kafka_producer *p, int flush_ms)
{
    if (p == NULL)
        return;
    rd_kafka_flush(p->rk, flush_ms);
    atomic_store(&p->stopping, 1);
    pthread_join(p->thread, NULL);
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(p->rk, 0); /* delivery reports of purged messages: "producer stopped" */
    rd_kafka_destroy(p->rk);
    free(p);
}

/* Puts into missing the topics the cluster's metadata does not list (all of
 * them when the metadata cannot be read); returns how many. */
static size_t missing_topics(rd_kafka_t *rk, const char *const *topics, size_t count,
                             const char **missing)
{
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(rk, 1, NULL, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (size_t i = 0; i < count; i++)
            missing[i] = topics[i];
        return count;
    }
    size_t n = 0;
    for (size_t i = 0; i < count; i++) {
        int known = 0;
        for (int j = 0; j < md->topic_cnt && !known; j++)
            known = md->topics[j].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
                    strcmp(md->topics[j].topic, topics[i]) == 0;
        if (!known)
            missing[n++] = topics[i];
    }
    rd_kafka_metadata_destroy(md);
    return n;
}

int dtmq_kafka_ensure_topics(const char *bootstrap, const char *const *all_topics, size_t all_count,
                        int partitions, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (set(conf, "bootstrap.servers", bootstrap, err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    char errstr[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        snprintf(err, errlen, "kafka: %s", errstr);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    /* CreateTopics only for what is missing: a cluster may refuse the
     * request (no admin rights, or no CreateTopics at all) yet have them */
    const char **topics = calloc(all_count ? all_count : 1, sizeof(*topics));
    size_t count = topics ? missing_topics(rk, all_topics, all_count, topics) : 0;
    if (topics == NULL || count == 0) {
        free(topics);
        rd_kafka_destroy(rk);
        if (topics == NULL)
            snprintf(err, errlen, "kafka: out of memory");
        return topics == NULL ? -1 : 0;
    }
    rd_kafka_NewTopic_t **nt = calloc(count, sizeof(*nt));
    for (size_t i = 0; i < count; i++)
        nt[i] = rd_kafka_NewTopic_new(topics[i], partitions, 1, errstr, sizeof(errstr));
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, 10000, NULL, 0);
    rd_kafka_CreateTopics(rk, nt, count, opts, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
    int rc = 0;
    if (ev == NULL) {
        snprintf(err, errlen, "kafka: no answer to CreateTopics within 15 s");
        rc = -1;
    } else if (rd_kafka_event_error(ev)) {
        snprintf(err, errlen, "kafka: CreateTopics: %s", rd_kafka_event_error_string(ev));
        rc = -1;
    } else {
        size_t n = 0;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        for (size_t i = 0; i < n && rc == 0; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
            if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                snprintf(err, errlen, "kafka: cannot create topic %s: %s",
                         rd_kafka_topic_result_name(res[i]), rd_kafka_err2str(e));
                rc = -1;
            }
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy_array(nt, count);
    free(nt);
    free(topics);
    rd_kafka_destroy(rk);
    return rc;
}
