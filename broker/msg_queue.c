/*
 * msg_queue.c — the bounded FIFO behind a Kafka ingress lane
 * (see msg_queue.h): a ring under one mutex, with a condition per side.
 *
 * Invariant: 0 <= count <= capacity; the queued items are
 * ring[(head + i) % capacity] for i < count, oldest first.
 */
#include "msg_queue.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>

#include "libdtmq/common/deadline.h"

/* How often a push waiting on a full queue looks at the stop flag. */
#define PUSH_RECHECK_MS 100

struct msg_queue {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    void **ring;
    void (*destroy)(void *item);
    size_t capacity, head, count;
    int woken; /* msg_queue_wake since the last pop */
};

msg_queue *msg_queue_new(size_t capacity, void (*destroy)(void *item))
{
    assert(capacity >= 1 && destroy != NULL);
    msg_queue *q = calloc(1, sizeof(*q));
    if (q == NULL || (q->ring = calloc(capacity, sizeof(*q->ring))) == NULL) {
        free(q);
        return NULL;
    }
    q->capacity = capacity;
    q->destroy = destroy;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
    return q;
}

void msg_queue_free(msg_queue *q)
{
    if (q == NULL)
        return;
    for (size_t i = 0; i < q->count; i++)
        q->destroy(q->ring[(q->head + i) % q->capacity]);
    pthread_cond_destroy(&q->not_full);
    pthread_cond_destroy(&q->not_empty);
    pthread_mutex_destroy(&q->mu);
    free(q->ring);
    free(q);
}

int msg_queue_push(msg_queue *q, void *item, const atomic_int *stopping)
{
    assert(item != NULL);
    pthread_mutex_lock(&q->mu);
    while (q->count == q->capacity && !atomic_load(stopping)) {
        struct timespec until = dtmq_deadline_after_ms(PUSH_RECHECK_MS);
        pthread_cond_timedwait(&q->not_full, &q->mu, &until);
    }
    int taken = q->count < q->capacity && !atomic_load(stopping);
    if (taken) {
        q->ring[(q->head + q->count) % q->capacity] = item;
        q->count++;
        pthread_cond_signal(&q->not_empty);
    }
    assert(q->count <= q->capacity);
    pthread_mutex_unlock(&q->mu);
    return taken ? 0 : -1;
}

void *msg_queue_pop(msg_queue *q, int timeout_ms)
{
    pthread_mutex_lock(&q->mu);
    if (q->count == 0 && timeout_ms > 0 && !q->woken) {
        struct timespec until = dtmq_deadline_after_ms(timeout_ms);
        while (q->count == 0 && !q->woken)
            if (pthread_cond_timedwait(&q->not_empty, &q->mu, &until) != 0)
                break; /* timed out */
    }
    void *item = NULL;
    if (q->count > 0) {
        item = q->ring[q->head];
        q->head = (q->head + 1) % q->capacity;
        q->count--;
        pthread_cond_signal(&q->not_full);
    }
    q->woken = 0;
    pthread_mutex_unlock(&q->mu);
    return item;
}

size_t msg_queue_count(msg_queue *q)
{
    pthread_mutex_lock(&q->mu);
    size_t n = q->count;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void msg_queue_wake(msg_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->woken = 1;
    pthread_cond_broadcast(&q->not_empty);
    pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->mu);
}
