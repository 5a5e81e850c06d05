/*
 * kafka_link.h — dtmq's connection to Kafka, whichever Kafka it is:
 *   "embedded"  an in-process cluster from librdkafka's mock cluster, listening
 *               on 127.0.0.1 (for trying dtmq out and for development);
 *   "off"       no Kafka at all (HTTP only);
 *   host:port,… a real Kafka cluster's bootstrap list.
 * Opening checks that the cluster answers, so a wrong address fails at start.
 */
#ifndef DTMQ_KAFKA_LINK_H
#define DTMQ_KAFKA_LINK_H

#include <stddef.h>

#include "libdtmq/common/kafka_producer.h"
#include "config.h"

typedef struct kafka_link kafka_link;

/* dtmq's own topics, named from KafkaTopicPrefix. */
typedef struct kafka_topics {
    char submit[160]; /* PREFIXsubmit: transactions in */
    char reply[160];  /* PREFIXreply: workers' answers */
    char events[160]; /* PREFIXevents: status changes out */
    char dlq[160];    /* PREFIXsubmit.dlq: messages that could not be taken */
} kafka_topics;

/* Opens the link cfg->kafka names (see above), creates dtmq's topics when
 * missing and starts the producer. With "off", returns a link whose
 * bootstrap and producer are NULL. NULL with one line in err on failure. */
kafka_link *kafka_link_open(const dtmq_config *cfg, char *err, size_t errlen);
/* The producer, NULL when off. */
dtmq_kafka_producer *kafka_link_producer(const kafka_link *link);
const kafka_topics *kafka_link_topics(const kafka_link *link);
/* Bootstrap servers clients should use ("127.0.0.1:41234"), NULL when off. */
const char *kafka_link_bootstrap(const kafka_link *link);
/* "embedded", "external" or "off". */
const char *kafka_link_mode(const kafka_link *link);
/* Makes sure a branch topic exists before the first message goes to it, so
 * that workers subscribed to it see it at once (a consumer notices a topic
 * created by auto-creation only at its next metadata refresh, minutes later).
 * Remembers the topics it has checked. 0, or -1 with err. Thread-safe. */
int kafka_link_ensure_topic(kafka_link *link, const char *topic, char *err, size_t errlen);

/* Stops the producer (flushing what is queued for up to 5 s). NULL allowed. */
void kafka_link_stop_producer(kafka_link *link);
/* Closes the link (and stops the embedded cluster). NULL allowed. */
void kafka_link_close(kafka_link *link);

#endif
