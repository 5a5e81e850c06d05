/*
 * kafka_link.c — opens Kafka for the broker (see kafka_link.h).
 *
 * Embedded mode hosts librdkafka's mock cluster on a dedicated client handle
 * and hands its bootstrap address to everything else, so the rest of dtmq
 * talks to the embedded cluster exactly as to a real one. In every mode the
 * link checks the cluster by fetching metadata before it reports success.
 */
#include "kafka_link.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KAFKA_CHECK_TIMEOUT_MS 10000

struct kafka_link {
    char *mode;            /* "embedded", "external", "off" */
    char *bootstrap;       /* NULL when off */
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

static int start_embedded(kafka_link *link, char *err, size_t errlen)
{
    link->mock_host = new_client(NULL, err, errlen);
    if (link->mock_host == NULL)
        return -1;
    link->mock = rd_kafka_mock_cluster_new(link->mock_host, 1);
    if (link->mock == NULL) {
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

kafka_link *kafka_link_open(const char *setting, char *err, size_t errlen)
{
    if (!valid_setting(setting)) {
        snprintf(err, errlen, "kafka: empty setting (want embedded, off or host:port,...)");
        return NULL;
    }
    kafka_link *link = calloc(1, sizeof(*link));
    if (link == NULL) {
        snprintf(err, errlen, "kafka: out of memory");
        return NULL;
    }
    int rc = 0;
    if (strcmp(setting, "off") == 0) {
        link->mode = strdup("off");
    } else if (strcmp(setting, "embedded") == 0) {
        link->mode = strdup("embedded");
        rc = start_embedded(link, err, errlen);
    } else {
        link->mode = strdup("external");
        link->bootstrap = strdup(setting);
    }
    if (rc == 0 && (link->mode == NULL || (strcmp(link->mode, "off") != 0 && link->bootstrap == NULL))) {
        snprintf(err, errlen, "kafka: out of memory");
        rc = -1;
    }
    if (rc == 0 && link->bootstrap != NULL)
        rc = check_cluster(link->bootstrap, err, errlen);
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

void kafka_link_close(kafka_link *link)
{
    if (link == NULL)
        return;
    if (link->mock != NULL)
        rd_kafka_mock_cluster_destroy(link->mock);
    if (link->mock_host != NULL)
        rd_kafka_destroy(link->mock_host);
    free(link->bootstrap);
    free(link->mode);
    free(link);
}
