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

typedef struct kafka_link kafka_link;

/* Opens the link named by setting (see above). With "off", returns a link
 * whose bootstrap is NULL. NULL with one line in err on failure. */
kafka_link *kafka_link_open(const char *setting, char *err, size_t errlen);
/* Bootstrap servers clients should use ("127.0.0.1:41234"), NULL when off. */
const char *kafka_link_bootstrap(const kafka_link *link);
/* "embedded", "external" or "off". */
const char *kafka_link_mode(const kafka_link *link);
/* Closes the link (and stops the embedded cluster). NULL allowed. */
void kafka_link_close(kafka_link *link);

#endif
