/*
 * deadline.h — the absolute CLOCK_REALTIME time ms from now, as
 * pthread_cond_timedwait wants it. Shared by the daemon and libdtmq.
 */
#ifndef DTMQ_DEADLINE_H
#define DTMQ_DEADLINE_H

#include <stdint.h>
#include <time.h>

/* Now (CLOCK_REALTIME) plus ms (>= 0), tv_nsec normalised below 1 s. */
struct timespec dtmq_deadline_after_ms(int64_t ms);

#endif
