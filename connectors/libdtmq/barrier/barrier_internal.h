/*
 * barrier_internal.h — what barrier.c shares with the PostgreSQL and MongoDB
 * barriers (barrier_pg.c, barrier_mongo.c): error text, argument checks, and
 * DTM's decision as one pure function, so both backends decide alike.
 */
#ifndef DTMQ_BARRIER_INTERNAL_H
#define DTMQ_BARRIER_INTERNAL_H

#include <dtmq/dtmq_barrier.h>

#include <stdbool.h>

/* The 2-phase message's own barrier row (DTM: MsgDoBranch0, MsgDoOp, MsgDoBarrierID). */
#define BARRIER_MSG_BRANCH_ID DTMQ_MSG_BRANCH_ID
#define BARRIER_MSG_OP DTMQ_MSG_OP
#define BARRIER_MSG_BARRIER_ID "01"
#define BARRIER_REASON_ROLLBACK "rollback"

/* snprintf into err when there is room; err may be NULL with errlen 0. */
void dtmq_barrier_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The op a compensating op undoes (cancel→try, compensate→action,
 * rollback→action), or NULL when op compensates nothing. */
const char *dtmq_barrier_origin_op(const char *op);

/* Checks a call's inputs: b with every field non-empty and NUL-terminated in
 * its buffer, barrier_id (already defaulted) non-empty and short enough,
 * has_fn. 0, or -1 with err. */
int dtmq_barrier_check_call(const dtmq_branch_info *b, const char *barrier_id, bool has_fn, char *err,
                       size_t errlen);

/* A gid for query_prepared: non-empty and short enough. 0, or -1 with err. */
int dtmq_barrier_check_gid(const char *gid, char *err, size_t errlen);

/* What DTM's algorithm does after the two inserts. */
typedef enum {
    BARRIER_RUN_FN,         /* run fn, then commit */
    BARRIER_SKIP_NULL_COMP, /* null compensation: commit the rows, fn not run */
    BARRIER_SKIP_EXISTING,  /* the op's row existed: duplicate or hanging */
    BARRIER_MSG_DUP         /* op "msg" whose row existed: refuse */
} barrier_decision;

barrier_decision dtmq_barrier_decide(const char *op, bool origin_inserted, bool current_inserted);

/* For BARRIER_SKIP_EXISTING: the existing row's reason tells duplicate (the op
 * itself wrote it) from hanging (its compensation wrote it first). */
dtmq_barrier_outcome dtmq_barrier_existing_outcome(const char *op, const char *reason);

#endif
