/*
 * deadline.c — see deadline.h.
 */
#include "deadline.h"

#include <assert.h>

struct timespec dtmq_deadline_after_ms(int64_t ms)
{
    assert(ms >= 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    assert(until.tv_nsec >= 0 && until.tv_nsec < 1000000000L);
    return until;
}
