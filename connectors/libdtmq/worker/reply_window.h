/*
 * reply_window.h — the replies a worker has published but Kafka has not yet
 * acknowledged, in the order their messages were polled, so that a worker
 * can go on with the next message while a reply is in flight and still
 * store offsets only in order and only past acknowledged replies.
 *
 * One thread (the worker's) pushes and pops; the producer's delivery
 * callback only settles entries. An entry's memory is not reused until it
 * is popped, and it is popped only once settled, so a callback never writes
 * into a reused slot.
 */
#ifndef DTMQ_REPLY_WINDOW_H
#define DTMQ_REPLY_WINDOW_H

#include <stddef.h>
#include <stdint.h>

typedef enum { RW_PENDING, RW_ACKED, RW_FAILED } rw_state;

/* A settled entry as popped; topic is owned by the caller (free it). */
typedef struct rw_entry {
    char *topic;
    int32_t partition;
    int64_t offset;
    rw_state state;   /* RW_ACKED or RW_FAILED */
    int dropped;      /* its partition was moved back before it: store nothing */
    char error[256];  /* why the reply failed (RW_FAILED) */
} rw_entry;

typedef struct reply_window reply_window;

/* NULL when out of memory. capacity >= 1. */
reply_window *dtmq_reply_window_new(size_t capacity);

/* Frees rw; every entry must have been popped (nothing in flight). */
void dtmq_reply_window_free(reply_window *rw);

/* Appends the message topic[partition]@offset. pending: a reply is in
 * flight (settle it through the returned ticket); else it is acknowledged
 * already (no reply was due). Returns the ticket, or NULL when the window
 * is full or out of memory. */
void *dtmq_reply_window_push(reply_window *rw, const char *topic, int32_t partition, int64_t offset,
                        int pending);

/* The delivery callback's side: settles the ticket's entry. Thread-safe.
 * Matches dtmq_kafka_delivered. */
void dtmq_reply_window_settle(void *ticket, int ok, const char *error);

/* Pops the oldest entry into *out when it is settled: 1, else 0. */
int dtmq_reply_window_pop(reply_window *rw, rw_entry *out);

/* Marks every entry of topic[partition] still in the window as dropped. */
void dtmq_reply_window_drop_partition(reply_window *rw, const char *topic, int32_t partition);

size_t dtmq_reply_window_count(reply_window *rw);
int dtmq_reply_window_full(reply_window *rw);

/* Waits up to ms for the next settle (returns early if one came). */
void dtmq_reply_window_wait(reply_window *rw, int ms);

#endif
