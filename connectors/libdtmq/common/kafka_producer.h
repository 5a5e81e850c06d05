/*
 * kafka_producer.h — dtmq's Kafka producer: idempotent, acks=all, one
 * background thread serving delivery reports. Used for Kafka branches,
 * replies, events and the dead-letter topic.
 */
#ifndef DTMQ_KAFKA_PRODUCER_H
#define DTMQ_KAFKA_PRODUCER_H

#include <stddef.h>

typedef struct dtmq_kafka_producer dtmq_kafka_producer;

typedef struct dtmq_kafka_header {
    const char *name;
    const char *value; /* NUL-terminated */
} dtmq_kafka_header;

/* Called once per produced message when Kafka acknowledged it (ok = 1) or it
 * failed for good (ok = 0, error says why); on the producer's thread, so it
 * must be quick and must not block. */
typedef void (*dtmq_kafka_delivered)(void *arg, int ok, const char *error);

/* Connects to bootstrap. NULL + one line in err on failure. */
dtmq_kafka_producer *dtmq_kafka_producer_start(const char *bootstrap, char *err, size_t errlen);

/* Queues a message (copied). done may be NULL. Returns 0, or -1 with done
 * never called (queue full, unknown topic name, stopping). Thread-safe. */
int dtmq_kafka_produce(dtmq_kafka_producer *p, const char *topic, const char *key, const void *value,
                  size_t len, const dtmq_kafka_header *headers, size_t header_count,
                  dtmq_kafka_delivered done, void *arg);

/* Produces and waits for the acknowledgement (up to timeout_ms). 0 on ack. */
int dtmq_kafka_produce_sync(dtmq_kafka_producer *p, const char *topic, const char *key, const void *value,
                       size_t len, const dtmq_kafka_header *headers, size_t header_count,
                       int timeout_ms, char *err, size_t errlen);

/* Messages not yet acknowledged. */
int dtmq_kafka_producer_outstanding(dtmq_kafka_producer *p);

/* Waits up to flush_ms for outstanding messages, stops the thread; messages
 * still outstanding get done(arg, 0, "producer stopped"). NULL allowed. */
void dtmq_kafka_producer_stop(dtmq_kafka_producer *p, int flush_ms);

/* Creates the topics that do not exist yet (partitions each, replication 1
 * or the cluster default). 0, or -1 + one line in err. */
int dtmq_kafka_ensure_topics(const char *bootstrap, const char *const *topics, size_t count,
                        int partitions, char *err, size_t errlen);

#endif
