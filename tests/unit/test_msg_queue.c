/*
 * test_msg_queue.c — the ingress lane's queue: items leave oldest first
 * across the ring's wrap, a push into a full queue waits for a pop and gives
 * up once stopping is set, a pop waits for a push from another thread or
 * its timeout, a wake ends a waiting pop, and free destroys what is left.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "msg_queue.h"
#include "testlib.h"

static atomic_int destroyed;

static void count_destroy(void *item)
{
    (void)item;
    atomic_fetch_add(&destroyed, 1);
}

static void *item(uintptr_t n)
{
    return (void *)n; /* never dereferenced */
}

static double clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

START_TEST(items_leave_oldest_first_across_the_wrap)
{
    atomic_int stopping = 0;
    msg_queue *q = msg_queue_new(3, count_destroy);
    uintptr_t next_in = 1, next_out = 1;
    for (int round = 0; round < 5; round++) { /* head walks round the ring */
        while (msg_queue_count(q) < 3)
            ck_assert_int_eq(msg_queue_push(q, item(next_in++), &stopping), 0);
        for (int k = 0; k < 2; k++)
            ck_assert_ptr_eq(msg_queue_pop(q, 0), item(next_out++));
    }
    ck_assert_uint_eq(msg_queue_count(q), 1);
    ck_assert_int_eq(msg_queue_push(q, item(next_in++), &stopping), 0);
    ck_assert_int_eq(msg_queue_push(q, item(next_in++), &stopping), 0);
    ck_assert_ptr_eq(msg_queue_pop(q, 0), item(next_out++));
    atomic_store(&destroyed, 0);
    msg_queue_free(q); /* two left */
    ck_assert_int_eq(atomic_load(&destroyed), 2);
}
END_TEST

typedef struct pusher {
    msg_queue *q;
    atomic_int *stopping;
    int rc;
    double waited_ms;
} pusher;

static void *push_one(void *arg)
{
    pusher *p = arg;
    double start = clock_ms();
    p->rc = msg_queue_push(p->q, item(99), p->stopping);
    p->waited_ms = clock_ms() - start;
    return NULL;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

START_TEST(a_push_into_a_full_queue_waits_for_a_pop)
{
    atomic_int stopping = 0;
    msg_queue *q = msg_queue_new(1, count_destroy);
    ck_assert_int_eq(msg_queue_push(q, item(1), &stopping), 0);
    pusher p = {q, &stopping, -2, 0};
    pthread_t th;
    pthread_create(&th, NULL, push_one, &p);
    sleep_ms(150);
    ck_assert_uint_eq(msg_queue_count(q), 1); /* still waiting */
    ck_assert_ptr_eq(msg_queue_pop(q, 0), item(1));
    pthread_join(th, NULL);
    ck_assert_int_eq(p.rc, 0);
    ck_assert_msg(p.waited_ms >= 140, "the push returned after %.0f ms, before the pop", p.waited_ms);
    ck_assert_ptr_eq(msg_queue_pop(q, 0), item(99));
    msg_queue_free(q);
}
END_TEST

START_TEST(a_push_into_a_full_queue_gives_up_when_stopping)
{
    atomic_int stopping = 0;
    msg_queue *q = msg_queue_new(1, count_destroy);
    ck_assert_int_eq(msg_queue_push(q, item(1), &stopping), 0);
    pusher p = {q, &stopping, -2, 0};
    pthread_t th;
    pthread_create(&th, NULL, push_one, &p);
    sleep_ms(100);
    atomic_store(&stopping, 1);
    pthread_join(th, NULL);
    ck_assert_int_eq(p.rc, -1);
    ck_assert_msg(p.waited_ms < 1000, "the push gave up after %.0f ms", p.waited_ms);
    ck_assert_uint_eq(msg_queue_count(q), 1); /* item 99 was not taken */
    atomic_store(&destroyed, 0);
    msg_queue_free(q);
    ck_assert_int_eq(atomic_load(&destroyed), 1);
}
END_TEST

static void *push_later(void *arg)
{
    pusher *p = arg;
    sleep_ms(100);
    p->rc = msg_queue_push(p->q, item(7), p->stopping);
    return NULL;
}

static void *wake_later(void *arg)
{
    sleep_ms(100);
    msg_queue_wake(arg);
    return NULL;
}

START_TEST(a_pop_waits_for_a_push_its_timeout_or_a_wake)
{
    atomic_int stopping = 0;
    msg_queue *q = msg_queue_new(4, count_destroy);
    double start = clock_ms();
    ck_assert_ptr_null(msg_queue_pop(q, 60)); /* times out */
    double waited = clock_ms() - start;
    ck_assert_msg(waited >= 55 && waited < 1000, "an empty pop of 60 ms took %.0f ms", waited);
    ck_assert_ptr_null(msg_queue_pop(q, 0)); /* no wait */

    pusher p = {q, &stopping, -2, 0};
    pthread_t th;
    pthread_create(&th, NULL, push_later, &p);
    start = clock_ms();
    ck_assert_ptr_eq(msg_queue_pop(q, 5000), item(7));
    waited = clock_ms() - start;
    pthread_join(th, NULL);
    ck_assert_msg(waited >= 90 && waited < 2000, "the pop got a push of 100 ms after %.0f ms", waited);

    pthread_create(&th, NULL, wake_later, q);
    start = clock_ms();
    ck_assert_ptr_null(msg_queue_pop(q, 5000));
    waited = clock_ms() - start;
    pthread_join(th, NULL);
    ck_assert_msg(waited >= 90 && waited < 2000, "the pop ended %.0f ms after a wake at 100 ms", waited);
    msg_queue_free(q);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("msg_queue");
    test_group g = {.suite = s};
    test_add(&g, items_leave_oldest_first_across_the_wrap);
    test_add(&g, a_push_into_a_full_queue_waits_for_a_pop);
    test_add(&g, a_push_into_a_full_queue_gives_up_when_stopping);
    test_add(&g, a_pop_waits_for_a_push_its_timeout_or_a_wake);
    return run_suite(s);
}
