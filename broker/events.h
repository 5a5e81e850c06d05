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

/* from may be NULL (a new transaction); reason may be NULL; create_time (ms)
 * dates the transaction for the duration metric of final statuses. Also
 * counts finished transactions in the metrics (metrics.h). */
void events_status_changed(broker *b, const char *gid, const char *trans_type, const char *from,
                           const char *to, const char *reason, int64_t create_time);

#endif
