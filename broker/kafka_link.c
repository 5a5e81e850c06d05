/*
 * kafka_link.c — opens Kafka for the broker (see kafka_link.h).
 *
 * Embedded mode hosts librdkafka's mock cluster on a dedicated client handle
 * and hands its bootstrap address to everything else, so the rest of dtmq
 * talks to the embedded cluster exactly as to a real one. In every mode the
 * link checks the cluster by fetching metadata before it reports success, then
 * creates dtmq's own topics if they are missing and starts the producer.
 */
#include "kafka_link.h"
#include "kafka_mock_port.h"

#include <librdkafka/rdkafka.h>
#include <errno.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define KAFKA_CHECK_TIMEOUT_MS 10000

#define KNOWN_TOPICS_MAX 4096

struct kafka_link {
    char *mode;            /* "embedded", "external", "off" */
    int partitions;        /* for topics dtmq creates */
    pthread_mutex_t known_mu;
    char **known;          /* topics that exist (checked or created), guarded by known_mu */
    size_t known_count;
    char *bootstrap;       /* NULL when off */
    kafka_topics topics;
    dtmq_kafka_producer *producer;
    rd_kafka_t *mock_host; /* embedded only: owns the mock cluster */
    rd_kafka_mock_cluster_t *mock;
};

static rd_kafka_t *new_client(const char *bootstrap, char *err, size_t errlen)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (bootstrap != NULL &&
        rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "kafka: bad bootstrap list '%s': %s", bootstrap, errstr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        snprintf(err, errlen, "kafka: cannot create a client: %s", errstr);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* Asks the cluster for its metadata: proves the bootstrap list reaches a broker. */
static int check_cluster(const char *bootstrap, char *err, size_t errlen)
{
    rd_kafka_t *rk = new_client(bootstrap, err, errlen);
    if (rk == NULL)
        return -1;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, NULL, &md, KAFKA_CHECK_TIMEOUT_MS);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        snprintf(err, errlen, "kafka: cannot reach %s within %d s: %s", bootstrap,
                 KAFKA_CHECK_TIMEOUT_MS / 1000, rd_kafka_err2str(e));
    else
        rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    return e == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
}

/* Starts the mock cluster, on port (0: a free one). */
static int start_embedded(kafka_link *link, int port, char *err, size_t errlen)
{
    link->mock_host = new_client(NULL, err, errlen);
    if (link->mock_host == NULL)
        return -1;
    int bound = mock_port_check(port);
    if (bound == 0) {
        mock_port_arm(port);
        link->mock = rd_kafka_mock_cluster_new(link->mock_host, 1);
        bound = mock_port_disarm();
    }
    /* librdkafka 2.0.2 returns a half-made cluster when its bind failed,
     * which it cannot destroy either: left to the exiting process (the port
     * was free a moment before, so only a race brings us here). */
    if (bound != 0)
        link->mock = NULL;
    if (link->mock == NULL) {
        if (bound > 0)
            snprintf(err, errlen, "kafka: KafkaEmbeddedPort %d: cannot listen on 127.0.0.1:%d: %s",
                     port, port, strerror(bound));
        else if (bound < 0)
            snprintf(err, errlen, "kafka: KafkaEmbeddedPort %d: this librdkafka's mock cluster "
                     "did not bind as expected; leave KafkaEmbeddedPort at 0", port);
        else
            snprintf(err, errlen, "kafka: cannot start the embedded (mock) cluster");
        return -1;
    }
    link->bootstrap = strdup(rd_kafka_mock_cluster_bootstraps(link->mock));
    return link->bootstrap ? 0 : -1;
}

static int valid_setting(const char *setting)
{
    return setting != NULL && setting[0] != '\0';
}

static void name_topics(kafka_topics *t, const char *prefix)
{
    snprintf(t->submit, sizeof(t->submit), "%ssubmit", prefix);
    snprintf(t->reply, sizeof(t->reply), "%sreply", prefix);
    snprintf(t->events, sizeof(t->events), "%sevents", prefix);
    snprintf(t->dlq, sizeof(t->dlq), "%ssubmit.dlq", prefix);
}

/* Creates topic in the embedded (mock) cluster. A topic that is already
 * there is fine: the mock cluster creates a topic itself the moment any
 * client asks for it (a worker that subscribes before the first message is
 * sent to it), with the cluster's default partition count. 0, or -1 with
 * librdkafka's reason in err. */
static int mock_topic_create(kafka_link *link, const char *topic, char *err, size_t errlen)
{
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(link->mock, topic, link->partitions, 1);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR || e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
        return 0;
    snprintf(err, errlen, "kafka: cannot create topic %s in the embedded cluster: %s", topic,
             rd_kafka_err2str(e));
    return -1;
}

/* Creates dtmq's topics when missing, then starts the producer. */
static int prepare_cluster(kafka_link *link, const dtmq_config *cfg, char *err, size_t errlen)
{
    const char *names[] = {link->topics.submit, link->topics.reply, link->topics.events,
                           link->topics.dlq};
    if (link->mock != NULL) { /* the mock cluster has no admin API: create directly */
        for (size_t i = 0; i < 4; i++)
            if (mock_topic_create(link, names[i], err, errlen) != 0)
                return -1;
    } else if (dtmq_kafka_ensure_topics(link->bootstrap, names, 4, cfg->kafka_partitions, err, errlen) != 0) {
        return -1;
    }
    link->producer = dtmq_kafka_producer_start(link->bootstrap, err, errlen);
    return link->producer ? 0 : -1;
}

kafka_link *kafka_link_open(const dtmq_config *cfg, char *err, size_t errlen)
{
    const char *setting = cfg->kafka;
    if (!valid_setting(setting)) {
        snprintf(err, errlen, "kafka: empty setting (want embedded, off or host:port,...)");
        return NULL;
    }
    kafka_link *link = calloc(1, sizeof(*link));
    if (link == NULL) {
        snprintf(err, errlen, "kafka: out of memory");
        return NULL;
    }
    pthread_mutex_init(&link->known_mu, NULL);
    link->partitions = cfg->kafka_partitions > 0 ? cfg->kafka_partitions : 4;
    int rc = 0;
    if (strcmp(setting, "off") == 0) {
        link->mode = strdup("off");
    } else if (strcmp(setting, "embedded") == 0) {
        link->mode = strdup("embedded");
        rc = start_embedded(link, cfg->kafka_embedded_port, err, errlen);
    } else {
        link->mode = strdup("external");
        link->bootstrap = strdup(setting);
    }
    if (rc == 0 && (link->mode == NULL || (strcmp(link->mode, "off") != 0 && link->bootstrap == NULL))) {
        snprintf(err, errlen, "kafka: out of memory");
        rc = -1;
    }
    name_topics(&link->topics, cfg->kafka_topic_prefix ? cfg->kafka_topic_prefix : "dtm.");
    if (rc == 0 && link->bootstrap != NULL)
        rc = check_cluster(link->bootstrap, err, errlen);
    if (rc == 0 && link->bootstrap != NULL)
        rc = prepare_cluster(link, cfg, err, errlen);
    if (rc != 0) {
        kafka_link_close(link);
        return NULL;
    }
    return link;
}

const char *kafka_link_bootstrap(const kafka_link *link)
{
    return link->bootstrap;
}

const char *kafka_link_mode(const kafka_link *link)
{
    return link->mode;
}

static int topic_known(kafka_link *link, const char *topic)
{
    for (size_t i = 0; i < link->known_count; i++)
        if (strcmp(link->known[i], topic) == 0)
            return 1;
    return 0;
}

int kafka_link_ensure_topic(kafka_link *link, const char *topic, char *err, size_t errlen)
{
    pthread_mutex_lock(&link->known_mu);
    int rc = 0;
    if (!topic_known(link, topic)) {
        if (link->mock != NULL)
            rc = mock_topic_create(link, topic, err, errlen);
        else
            rc = dtmq_kafka_ensure_topics(link->bootstrap, &topic, 1, link->partitions, err, errlen);
        if (rc == 0 && link->known_count < KNOWN_TOPICS_MAX) {
            char *copy = strdup(topic);
            char **grown = copy ? realloc(link->known, (link->known_count + 1) * sizeof(char *)) : NULL;
            if (grown) {
                link->known = grown;
                link->known[link->known_count++] = copy;
            } else {
                free(copy);
            }
        }
    }
    pthread_mutex_unlock(&link->known_mu);
    return rc;
}

dtmq_kafka_producer *kafka_link_producer(const kafka_link *link)
{
    return link->producer;
}

const kafka_topics *kafka_link_topics(const kafka_link *link)
{
    return &link->topics;
}

void kafka_link_stop_producer(kafka_link *link)
{
    if (link == NULL)
        return;
    dtmq_kafka_producer_stop(link->producer, 5000);
    link->producer = NULL;
}

void kafka_link_close(kafka_link *link)
{
    if (link == NULL)
        return;
    kafka_link_stop_producer(link);
    if (link->mock != NULL)
        rd_kafka_mock_cluster_destroy(link->mock);
    if (link->mock_host != NULL)
        rd_kafka_destroy(link->mock_host);
    for (size_t i = 0; i < link->known_count; i++)
        free(link->known[i]);
    free(link->known);
    pthread_mutex_destroy(&link->known_mu);
    free(link->bootstrap);
    free(link->mode);
    free(link);
}
