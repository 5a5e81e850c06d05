/*
 * barrier_pg.c — the subtransaction barrier on PostgreSQL through libpq
 * (dtmq_barrier.h; the table is schemas/barrier/postgres.sql).
 *
 * One barrier call is one local transaction on the caller's connection:
 *   BEGIN
 *   INSERT origin op row  ... ON CONFLICT DO NOTHING   (compensating ops only)
 *   INSERT the op's row   ... ON CONFLICT DO NOTHING
 *   dtmq_barrier_decide(): fn, or a skip (SELECT reason tells duplicate from hanging)
 *   COMMIT                (ROLLBACK on any error or business failure)
 *
 * Invariants, and what keeps them:
 * - The barrier rows and fn's writes commit together or not at all: they are
 *   in one transaction, and COMMIT's command tag is checked (PostgreSQL
 *   answers "ROLLBACK" to a COMMIT of a failed transaction).
 * - fn runs at most once per (gid, branch_id, op, barrier_id) among committed
 *   transactions: the op's row is inserted before fn, and the UNIQUE
 *   constraint makes a concurrent insert of the same row wait until this
 *   transaction ends; after a COMMIT it inserts nothing (a duplicate), after
 *   a ROLLBACK it inserts and runs fn itself. This holds at READ COMMITTED
 *   (PostgreSQL's default) and stronger levels; at SERIALIZABLE a conflict may
 *   also end in a serialization failure, which comes back as DB_ERROR (retry).
 * - A try/action arriving after its cancel/compensate never runs: the
 *   compensation inserted the origin row first (reason = the compensating
 *   op), so the late op's insert finds it.
 *
 * Every result is checked; statements use parameters (no quoting). Errors are
 * one line: libpq's messages have their line breaks turned into spaces.
 */
#include "barrier_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BARRIER_TABLE "dtm_barrier.barrier"

static const char insert_sql[] =
    "INSERT INTO " BARRIER_TABLE " (trans_type, gid, branch_id, op, barrier_id, reason)"
    " VALUES ($1, $2, $3, $4, $5, $6)"
    " ON CONFLICT (gid, branch_id, op, barrier_id) DO NOTHING";

static const char select_reason_sql[] = "SELECT reason FROM " BARRIER_TABLE
                                        " WHERE gid = $1 AND branch_id = $2 AND op = $3"
                                        " AND barrier_id = $4";

/* One barrier row's key and contents. */
typedef struct pg_row {
    const char *trans_type, *gid, *branch_id, *op, *barrier_id, *reason;
} pg_row;

/* err = "barrier: <what>: <libpq message on one line>". */
static void pg_set_error(char *err, size_t errlen, const char *what, const char *message)
{
    char line[512];
    snprintf(line, sizeof(line), "%s", message != NULL && message[0] ? message : "no message");
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    size_t n = strlen(line);
    while (n > 0 && line[n - 1] == ' ')
        line[--n] = '\0';
    dtmq_barrier_set_err(err, errlen, "barrier: %s: %s", what, line);
}

/* Runs a statement without parameters that returns no rows. 0, or -1 + err. */
static int pg_command(PGconn *db, const char *sql, char *err, size_t errlen)
{
    PGresult *res = PQexec(db, sql);
    int ok = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        pg_set_error(err, errlen, sql, res ? PQresultErrorMessage(res) : PQerrorMessage(db));
    PQclear(res);
    return ok ? 0 : -1;
}

/* ROLLBACK, best effort: after an error the transaction is given up either way
 * (a broken connection rolls back on the server when it closes). */
static void pg_rollback(PGconn *db)
{
    if (PQtransactionStatus(db) == PQTRANS_IDLE || PQtransactionStatus(db) == PQTRANS_UNKNOWN)
        return;
    PQclear(PQexec(db, "ROLLBACK"));
}

/* COMMIT and make sure it committed (a failed transaction "commits" as ROLLBACK). */
static int pg_commit(PGconn *db, char *err, size_t errlen)
{
    PGresult *res = PQexec(db, "COMMIT");
    int rc = -1;
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
        pg_set_error(err, errlen, "COMMIT", res ? PQresultErrorMessage(res) : PQerrorMessage(db));
    else if (strcmp(PQcmdStatus(res), "COMMIT") != 0)
        dtmq_barrier_set_err(err, errlen, "barrier: COMMIT answered %s: nothing was committed",
                        PQcmdStatus(res));
    else
        rc = 0;
    PQclear(res);
    return rc;
}

/* INSERT ... ON CONFLICT DO NOTHING of row; *inserted says whether it was new.
 * 0, or -1 + err. */
static int pg_insert_row(PGconn *db, const pg_row *row, bool *inserted, char *err, size_t errlen)
{
    const char *params[6] = {row->trans_type, row->gid,        row->branch_id,
                             row->op,         row->barrier_id, row->reason};
    PGresult *res = PQexecParams(db, insert_sql, 6, NULL, params, NULL, NULL, 0);
    int rc = -1;
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        pg_set_error(err, errlen, "INSERT INTO " BARRIER_TABLE,
                     res ? PQresultErrorMessage(res) : PQerrorMessage(db));
    } else {
        const char *tuples = PQcmdTuples(res);
        *inserted = strcmp(tuples, "1") == 0;
        if (*inserted || strcmp(tuples, "0") == 0)
            rc = 0;
        else
            dtmq_barrier_set_err(err, errlen,
                            "barrier: INSERT INTO " BARRIER_TABLE " affected '%s' rows", tuples);
    }
    PQclear(res);
    return rc;
}

/* The reason of row's key into reason (len bytes); *found says whether the
 * row exists. 0, or -1 + err. */
static int pg_read_reason(PGconn *db, const pg_row *row, char *reason, size_t len, bool *found,
                          char *err, size_t errlen)
{
    const char *params[4] = {row->gid, row->branch_id, row->op, row->barrier_id};
    PGresult *res = PQexecParams(db, select_reason_sql, 4, NULL, params, NULL, NULL, 0);
    int rc = -1;
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        pg_set_error(err, errlen, "SELECT reason FROM " BARRIER_TABLE,
                     res ? PQresultErrorMessage(res) : PQerrorMessage(db));
    } else if (PQntuples(res) > 1 || (PQntuples(res) == 1 && PQnfields(res) != 1)) {
        dtmq_barrier_set_err(err, errlen,
                        "barrier: %d rows for one key: is the UNIQUE constraint missing?",
                        PQntuples(res));
    } else {
        *found = PQntuples(res) == 1;
        snprintf(reason, len, "%s", *found ? PQgetvalue(res, 0, 0) : "");
        rc = 0;
    }
    PQclear(res);
    return rc;
}

/* The connection can start a transaction of ours. 0, or -1 + err. */
static int pg_check_idle(PGconn *db, char *err, size_t errlen)
{
    if (db == NULL) {
        dtmq_barrier_set_err(err, errlen, "barrier: no PostgreSQL connection");
        return -1;
    }
    if (PQstatus(db) != CONNECTION_OK) {
        pg_set_error(err, errlen, "the PostgreSQL connection is not usable", PQerrorMessage(db));
        return -1;
    }
    switch (PQtransactionStatus(db)) {
    case PQTRANS_IDLE:
        return 0;
    case PQTRANS_INTRANS:
    case PQTRANS_INERROR:
        dtmq_barrier_set_err(err, errlen, "barrier: a transaction is already open on the connection"
                                     " (the barrier runs its own)");
        return -1;
    default:
        dtmq_barrier_set_err(err, errlen, "barrier: the connection is busy with another command");
        return -1;
    }
}

/* fn's result turned into an outcome; a "successful" fn must leave the
 * transaction open and healthy. */
static dtmq_barrier_outcome pg_run_fn(PGconn *db, dtmq_barrier_pg_fn fn, void *arg, char *err,
                                      size_t errlen)
{
    dtmq_business_result r = fn(arg, db, err, errlen);
    if (r == DTMQ_BUSINESS_FAILURE) {
        if (err != NULL && errlen > 0 && err[0] == '\0')
            dtmq_barrier_set_err(err, errlen, "barrier: the business function failed");
        return DTMQ_BARRIER_BUSINESS_ERROR;
    }
    if (r != DTMQ_BUSINESS_OK) {
        if (err != NULL && errlen > 0 && err[0] == '\0')
            dtmq_barrier_set_err(err, errlen, "barrier: the business function asked to retry (%d)",
                            (int)r);
        return DTMQ_BARRIER_DB_ERROR;
    }
    switch (PQtransactionStatus(db)) {
    case PQTRANS_INTRANS:
        return DTMQ_BARRIER_DONE;
    case PQTRANS_INERROR:
        pg_set_error(err, errlen, "the business function returned OK but a statement of it failed",
                     PQerrorMessage(db));
        return DTMQ_BARRIER_DB_ERROR;
    case PQTRANS_IDLE:
        dtmq_barrier_set_err(err, errlen, "barrier: the business function ended the barrier's"
                                     " transaction (COMMIT or ROLLBACK of its own)");
        return DTMQ_BARRIER_DB_ERROR;
    default:
        dtmq_barrier_set_err(err, errlen, "barrier: the business function left the connection busy"
                                     " or broken");
        return DTMQ_BARRIER_DB_ERROR;
    }
}

/* Inside BEGIN: the inserts, the decision, fn. Commits nothing. */
static dtmq_barrier_outcome pg_call_in_tx(PGconn *db, const dtmq_branch_info *b,
                                          const char *barrier_id, dtmq_barrier_pg_fn fn,
                                          void *arg, char *err, size_t errlen)
{
    pg_row row = {b->trans_type, b->gid, b->branch_id, b->op, barrier_id, b->op};
    const char *origin = dtmq_barrier_origin_op(b->op);
    bool origin_inserted = false, current_inserted = false;
    if (origin != NULL) {
        pg_row origin_row = row;
        origin_row.op = origin;
        if (pg_insert_row(db, &origin_row, &origin_inserted, err, errlen) != 0)
            return DTMQ_BARRIER_DB_ERROR;
    }
    if (pg_insert_row(db, &row, &current_inserted, err, errlen) != 0)
        return DTMQ_BARRIER_DB_ERROR;
    switch (dtmq_barrier_decide(b->op, origin_inserted, current_inserted)) {
    case BARRIER_MSG_DUP:
        return DTMQ_BARRIER_MSG_DUPLICATE;
    case BARRIER_SKIP_NULL_COMP:
        return DTMQ_BARRIER_SKIPPED_NULL_COMPENSATION;
    case BARRIER_SKIP_EXISTING: {
        char reason[DTMQ_BARRIER_NAME_MAX + 1];
        bool found = false;
        if (pg_read_reason(db, &row, reason, sizeof(reason), &found, err, errlen) != 0)
            return DTMQ_BARRIER_DB_ERROR;
        if (!found) {
            dtmq_barrier_set_err(err, errlen, "barrier: the row of %s/%s/%s/%s conflicted but is gone",
                            b->gid, b->branch_id, b->op, barrier_id);
            return DTMQ_BARRIER_DB_ERROR;
        }
        return dtmq_barrier_existing_outcome(b->op, reason);
    }
    case BARRIER_RUN_FN:
        break;
    }
    return pg_run_fn(db, fn, arg, err, errlen);
}

dtmq_barrier_outcome dtmq_barrier_pg_call(PGconn *db, const dtmq_branch_info *b,
                                          const char *barrier_id, dtmq_barrier_pg_fn fn,
                                          void *arg, char *err, size_t errlen)
{
    dtmq_barrier_set_err(err, errlen, "%s", "");
    if (barrier_id == NULL)
        barrier_id = DTMQ_BARRIER_FIRST_ID;
    if (dtmq_barrier_check_call(b, barrier_id, fn != NULL, err, errlen) != 0 ||
        pg_check_idle(db, err, errlen) != 0)
        return DTMQ_BARRIER_DB_ERROR;
    if (pg_command(db, "BEGIN", err, errlen) != 0)
        return DTMQ_BARRIER_DB_ERROR;
    dtmq_barrier_outcome o = pg_call_in_tx(db, b, barrier_id, fn, arg, err, errlen);
    switch (o) {
    case DTMQ_BARRIER_DONE:
    case DTMQ_BARRIER_SKIPPED_DUPLICATE:
    case DTMQ_BARRIER_SKIPPED_NULL_COMPENSATION:
    case DTMQ_BARRIER_SKIPPED_HANGING:
        if (pg_commit(db, err, errlen) != 0) {
            pg_rollback(db);
            return DTMQ_BARRIER_DB_ERROR;
        }
        dtmq_barrier_set_err(err, errlen, "%s", ""); /* fn may have written to it */
        return o;
    default:
        pg_rollback(db);
        return o;
    }
}

int dtmq_barrier_pg_query_prepared(PGconn *db, const char *gid, char *err, size_t errlen)
{
    dtmq_barrier_set_err(err, errlen, "%s", "");
    if (dtmq_barrier_check_gid(gid, err, errlen) != 0 || pg_check_idle(db, err, errlen) != 0)
        return -1;
    /* Autocommit: committed before the reason is read, so the local
     * transaction can never commit after a "rollback" answer. */
    pg_row row = {"msg", gid, BARRIER_MSG_BRANCH_ID, BARRIER_MSG_OP, BARRIER_MSG_BARRIER_ID,
                  BARRIER_REASON_ROLLBACK};
    bool inserted = false, found = false;
    char reason[DTMQ_BARRIER_NAME_MAX + 1];
    if (pg_insert_row(db, &row, &inserted, err, errlen) != 0 ||
        pg_read_reason(db, &row, reason, sizeof(reason), &found, err, errlen) != 0)
        return -1;
    if (!found) {
        dtmq_barrier_set_err(err, errlen, "barrier: the msg row of %s is missing after its insert", gid);
        return -1;
    }
    return strcmp(reason, BARRIER_REASON_ROLLBACK) == 0 ? 409 : 200;
}
