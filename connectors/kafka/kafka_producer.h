/*
 * kafka_producer.h — dtmq's Kafka producer: idempotent, acks=all, one
 * background thread serving delivery reports. Used for Kafka branches,
 * replies, events and the dead-letter topic.
 */
#ifndef DTMQ_KAFKA_PRODUCER_H
#define DTMQ_KAFKA_PRODUCER_H

#include <stddef.h>

typedef struct kafka_producer kafka_producer;

typedef struct kafka_header {
    const char *name;
    const char *value; /* NUL-terminated */
} kafka_header;

/* Called once per produced message when Kafka acknowledged it (ok = 1) or it
 * failed for good (ok = 0, error says why); on the producer's thread, so it
 * must be quick and must not block. */
typedef void (*kafka_delivered)(void *arg, int ok, const char *error);

/* Connects to bootstrap. NULL + one line in err on failure. */
kafka_producer *kafka_producer_start(const char *bootstrap, char *err, size_t errlen);

/* Queues a message (copied). done may be NULL. Returns 0, or -1 with done
 * never called (queue full, unknown topic name, stopping). Thread-safe. */
int kafka_produce(kafka_producer *p, const char *topic, const char *key, const void *value,
                  size_t len, const kafka_header *headers, size_t header_count,
                  kafka_delivered done, void *arg);

/* Produces and waits for the acknowledgement (up to timeout_ms). 0 on ack. */
int kafka_produce_sync(kafka_producer *p, const char *topic, const char *key, const void *value,
                       size_t len, const kafka_header *headers, size_t header_count,
                       int timeout_ms, char *err, size_t errlen);

/* Messages not yet acknowledged. */
int kafka_producer_outstanding(kafka_producer *p);

/* Waits up to flush_ms for outstanding messages, stops the thread; messages
 * still outstanding get done(arg, 0, "producer stopped"). NULL allowed. */
void kafka_producer_stop(kafka_producer *p, int flush_ms);

/* Creates the topics that do not exist yet (partitions each, replication 1
 * or the cluster default). 0, or -1 + one line in err. */
int kafka_ensure_topics(const char *bootstrap, const char *const *topics, size_t count,
                        int partitions, char *err, size_t errlen);

#endif
