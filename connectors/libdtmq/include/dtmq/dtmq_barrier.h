/*
 * dtmq_barrier.h — the subtransaction barrier, DTM's way of making retries,
 * duplicates and reordering of branch calls harmless for a business service,
 * for PostgreSQL (libpq) and MongoDB (libmongoc). docs/barrier.md explains it
 * with examples and lists exactly what is guaranteed where.
 *
 * dtmq (like DTM) calls a branch at least once and may deliver it twice, late,
 * or after its compensation. The barrier records every (gid, branch_id, op,
 * barrier_id) it has seen in a table (PostgreSQL: dtm_barrier.barrier, see
 * schemas/barrier/postgres.sql; MongoDB: the collection "barrier" of database
 * "dtm_barrier", see schemas/barrier/mongo.md) in the same local transaction
 * as the business write, and runs the business function only when DTM's
 * algorithm says so:
 *   originOp = {cancel→try, compensate→action, rollback→action}[op]
 *   insert (originOp, reason=op) if originOp exists → originAffected
 *   insert (op,       reason=op)                     → currentAffected
 *   op == "msg" and currentAffected == 0   → MSG_DUPLICATE (fn not run)
 *   compensating op and originAffected > 0 → SKIPPED_NULL_COMPENSATION
 *   currentAffected == 0                   → SKIPPED_DUPLICATE or SKIPPED_HANGING
 *   otherwise                              → fn, then commit (or roll back)
 *
 * Usage in an HTTP branch handler (PostgreSQL):
 *   dtmq_branch_info b;
 *   if (dtmq_branch_info_from_query(query_string, &b, err, sizeof err) != 0) answer 400;
 *   dtmq_barrier_outcome o =
 *       dtmq_barrier_pg_call(db, &b, "01", transfer_out, &req, err, sizeof err);
 *   answer dtmq_barrier_http_status(o);
 * For a 2-phase message (outbox): run the local transaction with
 * dtmq_branch_info_for_msg(gid) and, in the query_prepared handler, answer
 * dtmq_barrier_pg_query_prepared(db, gid).
 *
 * Ownership and threads: nothing here keeps a pointer to what it is given.
 * A PGconn or mongoc_client_t is used by one thread at a time (libpq's and
 * libmongoc's rule); the caller owns it and keeps it open. Nothing aborts the
 * process: every failure comes back as DTMQ_BARRIER_DB_ERROR (or -1) with one
 * line in err naming the problem. err may be NULL when errlen is 0.
 */
#ifndef DTMQ_BARRIER_H
#define DTMQ_BARRIER_H

#include <libpq-fe.h>
#include <mongoc/mongoc.h>
#include <stddef.h>

/* The branch a call belongs to (dtmq_branch_info) and how it is read:
 * dtmq_branch_info_from_query, dtmq_branch_info_from_fields,
 * dtmq_branch_info_for_msg, in the shared header next to this one. */
#include "dtmq.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the branch a call belongs to ---------------------------------------- */

/* Field sizes of dtmq_branch_info: the columns of dtm_barrier.barrier (+1
 * for the NUL); the names dtmq.h gives them. */
#define DTMQ_BARRIER_GID_MAX DTMQ_GID_MAX
#define DTMQ_BARRIER_BRANCH_ID_MAX DTMQ_BRANCH_ID_MAX
#define DTMQ_BARRIER_NAME_MAX DTMQ_NAME_MAX /* trans_type, op, barrier_id, reason */

/* barrier_id: a counter per handler call, "01" for the first barrier call of a
 * branch, "02" for a second one in the same handler, and so on. */
#define DTMQ_BARRIER_FIRST_ID "01"

/* ---- outcomes -------------------------------------------------------------- */

typedef enum {
    DTMQ_BARRIER_DONE = 0,                   /* fn ran and its work is committed */
    DTMQ_BARRIER_SKIPPED_DUPLICATE,          /* this call was done before: fn not run */
    DTMQ_BARRIER_SKIPPED_NULL_COMPENSATION,  /* compensation of an op that never ran */
    DTMQ_BARRIER_SKIPPED_HANGING,            /* try/action after its compensation */
    DTMQ_BARRIER_BUSINESS_ERROR,             /* fn returned DTMQ_BUSINESS_FAILURE: rolled back */
    DTMQ_BARRIER_DB_ERROR,                   /* database error, fn asked to retry, or a
                                                call in progress elsewhere: rolled back */
    DTMQ_BARRIER_MSG_DUPLICATE               /* op "msg": the msg row exists already (a
                                                committed local transaction, or query_prepared
                                                decided "rollback"): fn not run */
} dtmq_barrier_outcome;

/* "DONE", "SKIPPED_DUPLICATE", ...; "?" for an unknown value. */
const char *dtmq_barrier_outcome_name(dtmq_barrier_outcome o);

/* The HTTP status a branch handler answers: DONE, SKIPPED_* and MSG_DUPLICATE
 * 200, BUSINESS_ERROR 409 (DTM: FAILURE, roll the transaction back), DB_ERROR
 * and anything else 500 (DTM calls again later). That is, the outcome as a
 * dtmq_result (SUCCESS, FAILURE, or an error) through dtmq_result_http_status. */
int dtmq_barrier_http_status(dtmq_barrier_outcome o);

/* What a business function returns. */
typedef enum {
    DTMQ_BUSINESS_OK = 0,       /* done: commit */
    DTMQ_BUSINESS_FAILURE = -1, /* the business refuses (e.g. no funds): roll back,
                                   outcome BUSINESS_ERROR, HTTP 409 */
    DTMQ_BUSINESS_RETRY = -2    /* could not do it now (e.g. a database error): roll
                                   back, outcome DB_ERROR, HTTP 500, DTM calls again */
} dtmq_business_result;

/* ---- PostgreSQL -------------------------------------------------------------- */

/*
 * The business function: does its writes on db, inside the barrier's
 * transaction (it must not BEGIN, COMMIT or ROLLBACK itself), and may put one
 * line into err (errlen bytes, initially "") for the outcome's message.
 */
typedef dtmq_business_result (*dtmq_barrier_pg_fn)(void *arg, PGconn *db, char *err,
                                                   size_t errlen);

/*
 * Runs one barrier call on db, which must be a blocking connection with no
 * transaction open: BEGIN; the two INSERT ... ON CONFLICT DO NOTHING into
 * dtm_barrier.barrier; fn when due; COMMIT. Any error (a failed statement, fn
 * returning anything but DTMQ_BUSINESS_OK, fn leaving the transaction failed or
 * ended, a COMMIT that rolled back) ROLLs BACK the barrier rows together with
 * fn's writes, so a later retry runs fn again. A concurrent call of the same
 * branch waits on the row's uniqueness check until this one commits or rolls
 * back (PostgreSQL's ON CONFLICT), so fn never runs twice.
 * barrier_id NULL means DTMQ_BARRIER_FIRST_ID. err is "" unless the outcome is
 * BUSINESS_ERROR (fn's message) or DB_ERROR.
 */
dtmq_barrier_outcome dtmq_barrier_pg_call(PGconn *db, const dtmq_branch_info *b,
                                          const char *barrier_id, dtmq_barrier_pg_fn fn,
                                          void *arg, char *err, size_t errlen);

/*
 * The 2-phase message's query_prepared check for gid, on an idle connection:
 * INSERT (gid, "00", "msg", "01", reason "rollback") ON CONFLICT DO NOTHING,
 * committed at once, then reads the row's reason. Returns 409 when it is
 * "rollback" (the local transaction never committed, and now never can: its
 * own insert will conflict and it gets MSG_DUPLICATE), 200 when the local
 * transaction committed (deliver the message), or -1 with err on a database
 * error (answer 500). A local transaction still in flight is waited for.
 */
int dtmq_barrier_pg_query_prepared(PGconn *db, const char *gid, char *err, size_t errlen);

/* ---- MongoDB ----------------------------------------------------------------- */

/*
 * Where the business function writes. On a server with transactions (a
 * replica set or mongos) session is the transaction's session: every write
 * must carry it (dtmq_barrier_mongo_write_opts) to be part of the barrier's
 * transaction. Without transactions (a standalone server, FerretDB) session is
 * NULL and fn's writes are NOT atomic with the barrier row: see
 * docs/barrier.md, "MongoDB without transactions".
 */
typedef struct dtmq_barrier_mongo_tx {
    mongoc_client_t *client;          /* the caller's client */
    mongoc_client_session_t *session; /* NULL without transactions */
} dtmq_barrier_mongo_tx;

typedef dtmq_business_result (*dtmq_barrier_mongo_fn)(void *arg, const dtmq_barrier_mongo_tx *tx,
                                                      char *err, size_t errlen);

/* Appends tx's session (if any) to opts, the options document of one of fn's
 * operations. 0, or -1 with err. */
int dtmq_barrier_mongo_write_opts(const dtmq_barrier_mongo_tx *tx, bson_t *opts, char *err,
                                  size_t errlen);

/* 1 when the server client talks to can run multi-document transactions (a
 * replica set primary with sessions, mongos, a load balancer), 0 when not
 * (standalone, FerretDB v1), -1 with err when no server can be selected. */
int dtmq_barrier_mongo_has_transactions(mongoc_client_t *client, char *err, size_t errlen);

/* Creates db.barrier (db NULL: "dtm_barrier") with the unique index
 * {gid, branch_id, op, barrier_id} if missing: DTM's definition of the
 * collection. Idempotent; call it when the service starts (a transaction
 * cannot create the collection before MongoDB 4.4). Uniqueness itself does
 * not depend on the index (each row's _id is its key); lookups by gid do.
 * 0, or -1 with err. */
int dtmq_barrier_mongo_ensure_indexes(mongoc_client_t *client, const char *db, char *err,
                                      size_t errlen);

/*
 * The same algorithm on db.barrier (db NULL: "dtm_barrier"). With transactions:
 * one session transaction holds the barrier rows and fn's writes; commit, or
 * abort on any error. Without: the rows rely on the unique _id alone (an
 * insert either succeeds or fails with duplicate key 11000, atomically even
 * on FerretDB); the row of a call that runs fn is written "pending" and
 * marked "done" after fn, or removed when fn fails; a call that finds its row
 * (or, for a compensation, its origin's row) pending answers DB_ERROR (500:
 * in progress elsewhere, or interrupted by a crash — docs/barrier.md).
 * Call dtmq_barrier_mongo_ensure_indexes once before (it creates the
 * collection). err is "" unless the outcome is BUSINESS_ERROR or DB_ERROR.
 */
dtmq_barrier_outcome dtmq_barrier_mongo_call(mongoc_client_t *client, const char *db,
                                             const dtmq_branch_info *b, const char *barrier_id,
                                             dtmq_barrier_mongo_fn fn, void *arg, char *err,
                                             size_t errlen);

/* query_prepared on db.barrier: 409 "rollback" (also when it inserts the
 * row), 200 committed, 425 the local transaction's row is pending (without
 * transactions only: in progress, or interrupted — DTM asks again later), or
 * -1 with err. */
int dtmq_barrier_mongo_query_prepared(mongoc_client_t *client, const char *db, const char *gid,
                                      char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
