/*
 * dtmq_worker.h — the library a business service links to take part in dtmq
 * transactions whose branches are Kafka messages (branch URL kafka://TOPIC).
 *
 * dtmq publishes every such branch call to TOPIC, keyed by the gid, with the
 * branch payload as the value and these headers:
 *   dtm-gid, dtm-trans-type, dtm-branch-id, dtm-op, dtm-reply-to
 * plus the transaction's branch_headers. A worker consumes those topics in a
 * consumer group, calls the service's handler for each message and, for
 * saga/TCC/XA/workflow branches, publishes the outcome to dtm-reply-to:
 *   {"gid":..,"branch_id":..,"op":..,"dtm_result":"SUCCESS"|"FAILURE"|"ONGOING","message":..}
 * For msg (2-phase message) branches no reply is sent: dtmq counts the
 * broker's acknowledged publish as the branch's success and never sends the
 * message again, so the worker holds on to it instead: until the handler
 * returns DTMQ_SUCCESS, the same message is handled again (after a pause).
 *
 * DELIVERY IS AT LEAST ONCE. A message's offset is stored for commit only
 * after its reply was acknowledged by Kafka (or, for msg branches, after the
 * handler returned DTMQ_SUCCESS). If the reply cannot be published the partition is moved
 * back and the same message is handled again; after a crash, everything not
 * yet committed is handled again; dtmq itself calls a branch again when its
 * reply is late. THE HANDLER MUST THEREFORE BE IDEMPOTENT: doing the same
 * (gid, branch_id, op) twice must have the effect of doing it once, and must
 * return the same outcome (a barrier table keyed by gid+branch_id+op, as in
 * DTM, is the usual way).
 *
 * Services that answer DTM's HTTP branch calls instead use the helpers of
 * dtmq.h (included here): dtmq_parse_branch_query / dtmq_branch_from_query
 * and dtmq_result_http_status.
 *
 * Ownership: every string in a dtmq_branch_msg belongs to the worker and is
 * valid only during the handler call. Nothing here aborts the process; every
 * call reports failure through its return value and an err buffer.
 */
#ifndef DTMQ_WORKER_H
#define DTMQ_WORKER_H

#include <stddef.h>

/* dtmq_result (DTMQ_SUCCESS, DTMQ_FAILURE, DTMQ_ONGOING), the branch-query
 * parser and dtmq_result_http_status: the shared header, next to this one. */
#include "dtmq.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One branch call, as the handler sees it. Borrowed: valid during the call. */
typedef struct dtmq_branch_msg {
    const char *gid, *trans_type, *branch_id, *op; /* from the dtm-* headers ("" when
                                                      dtm-trans-type is absent) */
    const char *reply_to;                          /* dtm-reply-to, may be "" */
    const void *payload;                           /* the branch body (may be NULL when empty) */
    size_t payload_len;
    const char *topic;
    int partition;
    long long offset;
} dtmq_branch_msg;

/*
 * The business handler: do the work (idempotently — redelivery happens, see
 * above) and return the outcome. message (message_len bytes, initially "")
 * may be filled with a NUL-terminated text that is copied into the reply.
 * The handler may call dtmq_worker_stop; the current message is still
 * finished (replied to, offset stored). Returning anything but the three
 * dtmq_result values counts as an error: nothing is replied, the offset is
 * stored, and dtmq calls the branch again when its reply does not come (as
 * DTM does for an HTTP 500).
 */
typedef dtmq_result (*dtmq_branch_handler)(void *arg, const dtmq_branch_msg *m, char *message,
                                           size_t message_len);

typedef struct dtmq_worker_options {
    const char *bootstrap;     /* required: Kafka bootstrap servers "host:port[,...]" */
    const char *group;         /* required: consumer group */
    const char *const *topics; /* required: NULL-terminated, at least one */
    dtmq_branch_handler handler; /* required */
    void *arg;                 /* handed to the handler */
    int poll_timeout_ms;       /* <= 0: 200 */
} dtmq_worker_options;

typedef struct dtmq_worker dtmq_worker;

/*
 * Creates a worker: a consumer in o->group subscribed to o->topics
 * (auto.offset.reset=earliest: a new group starts at the beginning) and a
 * producer for the replies. Topics that do not exist yet are created with
 * the cluster's default partitions and replication (best effort: failures
 * are logged; a topic created later is noticed within 10 s). What o points
 * to is not kept. Returns 0 and *out (free it with dtmq_worker_free), or -1
 * with one line in err and *out = NULL.
 */
int dtmq_worker_new(const dtmq_worker_options *o, dtmq_worker **out, char *err, size_t errlen);

/*
 * Handles messages until dtmq_worker_stop is called (from another thread or
 * from the handler) or, when max_messages > 0, until the handler was called
 * max_messages times. Per message, in partition order:
 *   1. reads the dtm-* headers; a message without dtm-gid, dtm-branch-id or
 *      dtm-op is logged to stderr, its offset stored, and skipped;
 *   2. calls the handler;
 *   3. unless trans_type is "msg" or dtm-reply-to is empty, publishes the
 *      reply keyed by gid; the worker goes on with the next message while
 *      the reply is in flight (up to 256 in flight);
 *   4. once Kafka acknowledged the reply (and every earlier message's),
 *      stores the offset (committed in the background and by
 *      dtmq_worker_free). If the reply failed, nothing later of its
 *      partition is stored: the partition is moved back to the message,
 *      which is handled again after a short pause, and so are the messages
 *      after it that were handled meanwhile (the barrier absorbs repeats).
 * Before returning, a run waits up to 10 s for its replies in flight.
 * Returns the number of handler calls, or -1 with err when the consumer hit
 * a fatal error or could not move back to a message whose reply failed;
 * the worker is then unusable (every later run returns -1) and must be freed
 * (offsets of unreplied messages are never committed, so a new worker in
 * the same group handles them again). Not to be called from two threads at
 * once.
 */
long dtmq_worker_run(dtmq_worker *w, long max_messages, char *err, size_t errlen);

/* Makes dtmq_worker_run return after the message in hand. Thread-safe (not
 * async-signal-safe). A stop that comes while no run is going makes the next
 * run return 0 at once. NULL allowed. */
void dtmq_worker_stop(dtmq_worker *w);

/* How many partitions the group has assigned to this worker right now (0
 * while the group is still forming or rebalancing), or -1 when the worker
 * cannot tell (NULL, or the consumer is broken). Thread-safe: meant for a
 * readiness probe while another thread runs dtmq_worker_run. A worker joins
 * with session.timeout.ms=6000 and heartbeat.interval.ms=1000, so a
 * rebalance completes within about a second of every member's heartbeat. */
int dtmq_worker_assigned_partitions(dtmq_worker *w);

/* Leaves the group, committing the stored offsets, stops the reply producer
 * (flushing for up to 5 s) and frees w. Not while dtmq_worker_run is going.
 * NULL allowed. */
void dtmq_worker_free(dtmq_worker *w);

/* ---- helpers for HTTP branches --------------------------------------- */

/* dtmq_parse_branch_query, dtmq_query_value and dtmq_result_http_status,
 * once declared here, are in dtmq.h (included above). */

#ifdef __cplusplus
}
#endif

#endif
