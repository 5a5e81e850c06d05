/*
 * engine.h — runs transactions: decides each next step with the mode's
 * planner (plan.h), calls branches without blocking (http_dispatch), records
 * every result in the store before acting on it, and retries what is
 * unfinished through the store's leases (the cron).
 *
 * Threads: a few workers, each owning the transactions whose gid hashes to it
 * (one owner per transaction inside the process: its events are handled in
 * order by one thread); one cron thread claiming due transactions (and
 * deleting expired finished ones, retention.c); one reply timer thread
 * ending the waits for Kafka branches' replies at their deadline
 * (replies.c); the HTTP dispatcher thread. Across processes, the store's
 * lease (owner + next_cron_time) decides who runs a transaction.
 */
#ifndef DTMQ_ENGINE_H
#define DTMQ_ENGINE_H

#include <stdint.h>

#include "broker.h"
#include "daemon/model/outcome.h"
#include "daemon/model/trans_options.h"

typedef struct engine engine;

/* Called once with the HTTP status and JSON body (DTM's mapping) a
 * wait_result submit should answer; on a worker thread. body is only valid
 * during the call. */
typedef void (*engine_waiter_fn)(void *arg, int http_status, const char *body);

/* Starts the workers, the dispatcher and the cron. NULL + one line in err. */
engine *engine_start(broker *b, char *err, size_t errlen);
/* Stops the threads: every waiter is answered (503 while stopping), every
 * transaction this process holds is released (next_cron_time = now) so that
 * another process or the next start picks it up at once. */
void engine_stop(engine *e);
/* Frees the engine after engine_stop (and after the HTTP server stopped). */
void engine_free(engine *e);

/* This process's lease owner id, unique per process start. */
const char *engine_owner(const engine *e);
/* How long a lease taken for a transaction with these options lasts (ms). */
int64_t engine_lease_ms(const engine *e, const trans_options *opts);

/*
 * Runs a pass of gid, whose lease the caller holds until lease_until_ms (it
 * created the transaction, or changed it in the store with owner =
 * engine_owner and next_cron_time = lease_until_ms). waiter may be NULL.
 */
void engine_kick(engine *e, const char *gid, int64_t lease_until_ms, engine_waiter_fn waiter,
                 void *arg);

/* A worker's reply from PREFIXreply (kafka_ingress.c). */
typedef enum reply_status {
    REPLY_DELIVERED, /* a pass here was waiting for it */
    REPLY_RECORDED,  /* nobody here waited; its result was recorded in the store */
    REPLY_IGNORED,   /* known branch, nothing to record (already done, or ONGOING) */
    REPLY_UNKNOWN,   /* no such gid or branch: counted and logged */
} reply_status;
reply_status engine_on_reply(engine *e, const char *gid, const char *branch_id, const char *op,
                             dispatch_outcome outcome, const char *message);

/*
 * Makes an unfinished transaction due now, without breaking a lease: an idle
 * one (owner "") gets next_cron_time = now; one whose pass runs right now
 * (here or in another process) is left to that pass. Returns STORE_OK in both
 * cases, STORE_NOT_FOUND / STORE_CONFLICT (finished) / STORE_UNAVAILABLE else.
 */
store_result engine_poke(engine *e, const char *gid);

/* Calls queued or in flight (for metrics and tests). */
int engine_calls_pending(engine *e);
/* Events waiting in the workers' queues (for metrics). */
int engine_queue_depth(engine *e);

#endif
