/*
 * msg_queue.h — a bounded, blocking FIFO between the Kafka ingress's poll
 * thread (one producer) and one lane thread (one consumer); the items are
 * the polled rd_kafka_message_t's.
 *
 * Ownership: a pushed item belongs to the queue until popped, then to the
 * popper; msg_queue_free destroys what is still queued with the queue's
 * destroy function (for the ingress: messages whose offsets were never
 * stored, so Kafka delivers them again).
 */
#ifndef DTMQ_MSG_QUEUE_H
#define DTMQ_MSG_QUEUE_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct msg_queue msg_queue;

/* capacity >= 1; destroy frees an item left at msg_queue_free. NULL when
 * out of memory. */
msg_queue *msg_queue_new(size_t capacity, void (*destroy)(void *item));
void msg_queue_free(msg_queue *q);

/* Appends item (not NULL), waiting while the queue is full. Returns 0, or -1
 * (item not taken) once *stopping is set. */
int msg_queue_push(msg_queue *q, void *item, const atomic_int *stopping);
/* The oldest item, waiting up to timeout_ms (0: no wait) for one; NULL if
 * none came, or msg_queue_wake was called. */
void *msg_queue_pop(msg_queue *q, int timeout_ms);
/* Items queued now. */
size_t msg_queue_count(msg_queue *q);
/* Wakes a waiting pop (used at stop). */
void msg_queue_wake(msg_queue *q);

#endif
