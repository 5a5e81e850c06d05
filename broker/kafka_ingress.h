/*
 * kafka_ingress.h — transactions and branch replies arriving over Kafka.
 *
 * One consumer in group KafkaGroup reads PREFIXsubmit and PREFIXreply (range
 * assignment, so a gid's submit and reply partitions land on the same dtmq
 * process when both topics have the same partition count). Submit messages
 * run the same commands as HTTP (engine/commands.h); reply messages go to the
 * engine. A message's offset is stored for commit only after the store holds
 * its result; a message that cannot be taken goes to PREFIXsubmit.dlq with
 * the reason, and the partition moves on. docs/kafka.md has every format.
 */
#ifndef DTMQ_KAFKA_INGRESS_H
#define DTMQ_KAFKA_INGRESS_H

#include <stddef.h>

#include "broker.h"

typedef struct kafka_ingress kafka_ingress;

/* Starts consuming (no-op handle when Kafka is off). NULL + err on failure. */
kafka_ingress *kafka_ingress_start(broker *b, char *err, size_t errlen);
/* Stops consuming and commits the stored offsets. NULL allowed. */
void kafka_ingress_stop(kafka_ingress *in);

/* Counters for metrics and tests. */
typedef struct kafka_ingress_stats {
    long submitted;      /* submit-topic messages taken */
    long dead_lettered;  /* sent to the DLQ */
    long replies;        /* replies applied or handed to a waiting pass */
    long replies_unknown;/* replies for an unknown gid or branch, or malformed */
    int assigned_partitions; /* submit and reply partitions this process holds now
                              * (0 while its group forms or rebalances) */
} kafka_ingress_stats;
void kafka_ingress_stats_get(kafka_ingress *in, kafka_ingress_stats *out);
/* Sets the dtmq_kafka_consumer_lag gauges (per topic: high watermark minus
 * position over this process's partitions, from librdkafka's cached values). */
void kafka_ingress_report_lag(kafka_ingress *in);

#endif
