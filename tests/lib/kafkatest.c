/*
 * kafkatest.c — see kafkatest.h. Reading uses a plain consumer with an
 * explicit assignment of every partition at the beginning, so tests see all
 * of a topic regardless of consumer groups.
 */
#include "kafkatest.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libdtmq/common/kafka_producer.h"
#include "testlib.h"

int kt_produce(const char *bootstrap, const char *topic, const char *key, const char *value,
               size_t len, const char *const *headers)
{
    char err[512];
    dtmq_kafka_producer *p = dtmq_kafka_producer_start(bootstrap, err, sizeof(err));
    if (p == NULL)
        return -1;
    dtmq_kafka_header h[16];
    char names[16][128];
    size_t n = 0;
    for (size_t i = 0; headers && headers[i] && n < 16; i++) {
        const char *eq = strchr(headers[i], '=');
        if (eq == NULL)
            continue;
        snprintf(names[n], sizeof(names[n]), "%.*s", (int)(eq - headers[i]), headers[i]);
        h[n].name = names[n];
        h[n].value = eq + 1;
        n++;
    }
    int rc = dtmq_kafka_produce_sync(p, topic, key, value, len, h, n, 10000, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "kt_produce: %s\n", err);
    dtmq_kafka_producer_stop(p, 1000);
    return rc;
}

static rd_kafka_t *reader_for(const char *bootstrap, const char *topic)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", "kafkatest-reader", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (rk == NULL)
        return NULL;
    rd_kafka_poll_set_consumer(rk);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int partitions = 0;
    for (int attempt = 0; attempt < 20 && partitions == 0; attempt++) {
        if (rd_kafka_metadata(rk, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
                partitions = md->topics[0].partition_cnt;
            rd_kafka_metadata_destroy(md);
        }
        if (partitions == 0)
            test_sleep_ms(250);
    }
    rd_kafka_topic_destroy(rkt);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; p++)
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    return rk;
}

static void copy_headers(const rd_kafka_message_t *m, kt_msg *out)
{
    rd_kafka_headers_t *hdrs = NULL;
    size_t cap = 1, used = 0;
    out->headers = calloc(1, 1);
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    const char *name;
    const void *val;
    size_t size;
    for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
        size_t need = strlen(name) + size + 3;
        char *grown = realloc(out->headers, cap + need);
        if (grown == NULL)
            return;
        out->headers = grown;
        cap += need;
        used += (size_t)sprintf(out->headers + used, "%s=%.*s\n", name, (int)size, val ? (const char *)val : "");
    }
}

size_t kt_read(const char *bootstrap, const char *topic, size_t n, int timeout_ms, kt_msg **out)
{
    *out = NULL;
    rd_kafka_t *rk = reader_for(bootstrap, topic);
    if (rk == NULL)
        return 0;
    size_t count = 0, cap = 0;
    long long deadline = test_now_ms() + timeout_ms;
    while (count < n && test_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m == NULL)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (count == cap) {
                cap = cap ? cap * 2 : 16;
                *out = realloc(*out, cap * sizeof(kt_msg));
            }
            kt_msg *k = &(*out)[count++];
            k->key = strndup(m->key ? (const char *)m->key : "", m->key ? m->key_len : 0);
            k->value = strndup(m->payload ? (const char *)m->payload : "", m->len);
            k->len = m->len;
            k->partition = (int)m->partition;
            k->offset = (long long)m->offset;
            copy_headers(m, k);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return count;
}

void kt_free(kt_msg *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(msgs[i].key);
        free(msgs[i].value);
        free(msgs[i].headers);
    }
    free(msgs);
}

const char *kt_header(const kt_msg *m, const char *name, char *buf, size_t len)
{
    size_t nl = strlen(name);
    for (const char *p = m->headers; p && *p;) {
        const char *end = strchr(p, '\n');
        if (end == NULL)
            break;
        if (strncmp(p, name, nl) == 0 && p[nl] == '=') {
            snprintf(buf, len, "%.*s", (int)(end - p - nl - 1), p + nl + 1);
            return buf;
        }
        p = end + 1;
    }
    return NULL;
}
