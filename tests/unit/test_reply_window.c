/*
 * test_reply_window.c — the worker's window of replies in flight: entries
 * leave only in poll order and only once settled, a full window refuses,
 * a dropped partition's entries are marked, a settle from another thread
 * wakes a waiter.
 */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libdtmq/worker/reply_window.h"
#include "testlib.h"

static void pop_expect(reply_window *rw, int64_t offset, rw_state state, int dropped)
{
    rw_entry e;
    ck_assert_int_eq(dtmq_reply_window_pop(rw, &e), 1);
    ck_assert_int_eq(e.offset, offset);
    ck_assert_int_eq(e.state, state);
    ck_assert_int_eq(e.dropped, dropped);
    free(e.topic);
}

START_TEST(entries_leave_in_order_and_only_when_settled)
{
    reply_window *rw = dtmq_reply_window_new(4);
    void *t0 = dtmq_reply_window_push(rw, "t", 0, 10, 1);
    void *t1 = dtmq_reply_window_push(rw, "t", 0, 11, 1);
    ck_assert_ptr_nonnull(dtmq_reply_window_push(rw, "t", 1, 5, 0)); /* no reply due */
    ck_assert_ptr_nonnull(t0);
    ck_assert_ptr_nonnull(t1);
    rw_entry e;
    dtmq_reply_window_settle(t1, 1, NULL);
    ck_assert_int_eq(dtmq_reply_window_pop(rw, &e), 0); /* 10 is still in flight */
    dtmq_reply_window_settle(t0, 0, "broker down");
    rw_entry failed;
    ck_assert_int_eq(dtmq_reply_window_pop(rw, &failed), 1);
    ck_assert_int_eq(failed.offset, 10);
    ck_assert_int_eq(failed.state, RW_FAILED);
    ck_assert_str_eq(failed.error, "broker down");
    ck_assert_str_eq(failed.topic, "t");
    free(failed.topic);
    pop_expect(rw, 11, RW_ACKED, 0);
    pop_expect(rw, 5, RW_ACKED, 0);
    ck_assert_int_eq(dtmq_reply_window_pop(rw, &e), 0);
    ck_assert_uint_eq(dtmq_reply_window_count(rw), 0);
    dtmq_reply_window_free(rw);
}
END_TEST

START_TEST(a_full_window_refuses_and_its_ring_wraps)
{
    reply_window *rw = dtmq_reply_window_new(2);
    for (int64_t round = 0; round < 5; round++) {
        void *a = dtmq_reply_window_push(rw, "t", 0, 2 * round, 1);
        void *b = dtmq_reply_window_push(rw, "t", 0, 2 * round + 1, 1);
        ck_assert_ptr_nonnull(a);
        ck_assert_ptr_nonnull(b);
        ck_assert_int_eq(dtmq_reply_window_full(rw), 1);
        ck_assert_ptr_null(dtmq_reply_window_push(rw, "t", 0, 99, 0));
        dtmq_reply_window_settle(a, 1, NULL);
        pop_expect(rw, 2 * round, RW_ACKED, 0);
        ck_assert_int_eq(dtmq_reply_window_full(rw), 0);
        dtmq_reply_window_settle(b, 1, NULL);
        pop_expect(rw, 2 * round + 1, RW_ACKED, 0);
    }
    dtmq_reply_window_free(rw);
}
END_TEST

START_TEST(dropping_a_partition_marks_only_its_entries)
{
    reply_window *rw = dtmq_reply_window_new(8);
    void *t[4];
    t[0] = dtmq_reply_window_push(rw, "t", 0, 1, 1);
    t[1] = dtmq_reply_window_push(rw, "t", 1, 1, 1);
    t[2] = dtmq_reply_window_push(rw, "u", 0, 1, 1);
    t[3] = dtmq_reply_window_push(rw, "t", 0, 2, 1);
    dtmq_reply_window_drop_partition(rw, "t", 0);
    for (int i = 0; i < 4; i++)
        dtmq_reply_window_settle(t[i], 1, NULL);
    pop_expect(rw, 1, RW_ACKED, 1);
    pop_expect(rw, 1, RW_ACKED, 0);
    pop_expect(rw, 1, RW_ACKED, 0);
    pop_expect(rw, 2, RW_ACKED, 1);
    /* a later entry of the same partition is not dropped */
    dtmq_reply_window_settle(dtmq_reply_window_push(rw, "t", 0, 1, 1), 1, NULL);
    pop_expect(rw, 1, RW_ACKED, 0);
    dtmq_reply_window_free(rw);
}
END_TEST

static void *settle_later(void *ticket)
{
    struct timespec ts = {0, 100 * 1000000L};
    nanosleep(&ts, NULL);
    dtmq_reply_window_settle(ticket, 1, NULL);
    return NULL;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

START_TEST(a_settle_from_another_thread_wakes_the_waiter)
{
    reply_window *rw = dtmq_reply_window_new(1);
    void *ticket = dtmq_reply_window_push(rw, "t", 0, 0, 1);
    pthread_t th;
    pthread_create(&th, NULL, settle_later, ticket);
    double start = now_ms();
    dtmq_reply_window_wait(rw, 5000);
    double waited = now_ms() - start;
    pthread_join(th, NULL);
    ck_assert_msg(waited >= 90 && waited < 2000, "waited %.0f ms for a settle after 100 ms",
                  waited);
    pop_expect(rw, 0, RW_ACKED, 0);
    start = now_ms();
    dtmq_reply_window_wait(rw, 50); /* nothing in flight: times out */
    ck_assert_double_ge(now_ms() - start, 45);
    dtmq_reply_window_free(rw);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("reply_window");
    test_group g = {.suite = s};
    test_add(&g, entries_leave_in_order_and_only_when_settled);
    test_add(&g, a_full_window_refuses_and_its_ring_wraps);
    test_add(&g, dropping_a_partition_marks_only_its_entries);
    test_add(&g, a_settle_from_another_thread_wakes_the_waiter);
    return run_suite(s);
}
