/*
 * events.h — every global status change, published to PREFIXevents when
 * KafkaEvents is 1, for systems that react to outcomes. Keyed by gid, so one
 * transaction's events stay in order on one partition. Best effort: the
 * store, not this topic, is the record (a crash between the store write and
 * the publish loses that event).
 */
#ifndef DTMQ_EVENTS_H
#define DTMQ_EVENTS_H

#include "broker.h"

/* Whether status changes are published to Kafka (KafkaEvents and Kafka on). */
int events_published(const broker *b);

/* A status change that is durable: counts it and publishes it now. from may
 * be NULL (a new transaction); reason may be NULL; create_time (ms) dates the
 * transaction for the duration metric of final statuses (metrics.h). */
void events_status_changed(broker *b, const char *gid, const char *trans_type, const char *from,
                           const char *to, const char *reason, int64_t create_time);

/* A status change that may not be durable yet: counts it now and returns the
 * event's JSON text (malloc'd) for events_publish once it is; NULL when
 * events are not published. */
char *events_status_message(broker *b, const char *gid, const char *trans_type, const char *from,
                            const char *to, const char *reason, int64_t create_time);
void events_publish(broker *b, const char *gid, const char *text);

#endif
