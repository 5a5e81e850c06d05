/*
 * reply_window.c — see reply_window.h. A fixed ring of entries guarded by
 * one mutex; a condition variable wakes the worker when an entry settles.
 *
 * Invariants: head + count never exceeds the ring (indices taken modulo
 * capacity); an entry between head and head + count is live and owns its
 * topic; only the oldest entry is ever popped, and only when settled.
 */
#include "reply_window.h"
#include "libdtmq/common/deadline.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct slot {
    reply_window *owner;
    rw_entry e;
} slot;

struct reply_window {
    pthread_mutex_t mu;
    pthread_cond_t settled;
    slot *ring;
    size_t capacity, head, count;
};

reply_window *dtmq_reply_window_new(size_t capacity)
{
    assert(capacity >= 1);
    reply_window *rw = calloc(1, sizeof(*rw));
    if (rw == NULL || (rw->ring = calloc(capacity, sizeof(slot))) == NULL) {
        free(rw);
        return NULL;
    }
    rw->capacity = capacity;
    pthread_mutex_init(&rw->mu, NULL);
    pthread_cond_init(&rw->settled, NULL);
    return rw;
}

void dtmq_reply_window_free(reply_window *rw)
{
    if (rw == NULL)
        return;
    assert(rw->count == 0 && "entries still in flight");
    pthread_mutex_destroy(&rw->mu);
    pthread_cond_destroy(&rw->settled);
    free(rw->ring);
    free(rw);
}

void *dtmq_reply_window_push(reply_window *rw, const char *topic, int32_t partition, int64_t offset,
                        int pending)
{
    char *copy = strdup(topic);
    if (copy == NULL)
        return NULL;
    pthread_mutex_lock(&rw->mu);
    slot *s = NULL;
    if (rw->count < rw->capacity) {
        s = &rw->ring[(rw->head + rw->count) % rw->capacity];
        memset(s, 0, sizeof(*s));
        s->owner = rw;
        s->e.topic = copy;
        s->e.partition = partition;
        s->e.offset = offset;
        s->e.state = pending ? RW_PENDING : RW_ACKED;
        rw->count++;
    }
    pthread_mutex_unlock(&rw->mu);
    if (s == NULL)
        free(copy);
    return s;
}

void dtmq_reply_window_settle(void *ticket, int ok, const char *error)
{
    slot *s = ticket;
    reply_window *rw = s->owner;
    pthread_mutex_lock(&rw->mu);
    assert(s->e.state == RW_PENDING);
    s->e.state = ok ? RW_ACKED : RW_FAILED;
    if (!ok)
        snprintf(s->e.error, sizeof(s->e.error), "%s", error ? error : "not acknowledged");
    pthread_cond_broadcast(&rw->settled);
    pthread_mutex_unlock(&rw->mu);
}

int dtmq_reply_window_pop(reply_window *rw, rw_entry *out)
{
    pthread_mutex_lock(&rw->mu);
    int popped = 0;
    if (rw->count > 0 && rw->ring[rw->head].e.state != RW_PENDING) {
        *out = rw->ring[rw->head].e; /* the topic moves to the caller */
        memset(&rw->ring[rw->head], 0, sizeof(slot));
        rw->head = (rw->head + 1) % rw->capacity;
        rw->count--;
        popped = 1;
    }
    pthread_mutex_unlock(&rw->mu);
    return popped;
}

void dtmq_reply_window_drop_partition(reply_window *rw, const char *topic, int32_t partition)
{
    pthread_mutex_lock(&rw->mu);
    for (size_t i = 0; i < rw->count; i++) {
        rw_entry *e = &rw->ring[(rw->head + i) % rw->capacity].e;
        if (e->partition == partition && strcmp(e->topic, topic) == 0)
            e->dropped = 1;
    }
    pthread_mutex_unlock(&rw->mu);
}

size_t dtmq_reply_window_count(reply_window *rw)
{
    pthread_mutex_lock(&rw->mu);
    size_t n = rw->count;
    pthread_mutex_unlock(&rw->mu);
    return n;
}

int dtmq_reply_window_full(reply_window *rw)
{
    return dtmq_reply_window_count(rw) >= rw->capacity;
}

void dtmq_reply_window_wait(reply_window *rw, int ms)
{
    struct timespec until = dtmq_deadline_after_ms(ms);
    pthread_mutex_lock(&rw->mu);
    int settled_one = rw->count > 0 && rw->ring[rw->head].e.state != RW_PENDING;
    if (!settled_one)
        (void)pthread_cond_timedwait(&rw->settled, &rw->mu, &until);
    pthread_mutex_unlock(&rw->mu);
}
