/*
 * barrier_mongo.c — the subtransaction barrier on MongoDB through libmongoc
 * (dtmq_barrier.h; the collection is described in schemas/barrier/mongo.md).
 *
 * One document per barrier row in <db>.barrier (db "dtm_barrier" by default):
 *   { _id: "<len>:<gid>|<len>:<branch_id>|<len>:<op>|<len>:<barrier_id>",
 *     trans_type, gid, branch_id, op, barrier_id, reason,
 *     status: "done" | "pending", create_time, update_time (BSON dates) }
 * The row's key is its _id, so uniqueness never depends on an index having
 * been created: every MongoDB-protocol server refuses a second document with
 * the same _id (duplicate key 11000), atomically, FerretDB v1 included.
 *
 * Two ways to run a call, chosen per call by dtmq_barrier_mongo_has_transactions:
 *
 * With transactions (replica set, mongos): DTM's MongoCall. One session
 * transaction holds both barrier rows (written by upsert with $setOnInsert:
 * upsertedCount says whether the row is new, and an existing row is no error,
 * which inside a transaction would abort it) and fn's writes (fn gets the
 * session). Commit, or abort on any error. A concurrent call of the same
 * branch meets a write conflict and aborts: DB_ERROR, DTM calls again later
 * and then finds the committed row. Every row is "done".
 *
 * Without transactions (standalone, FerretDB v1: no multi-document
 * transactions, and guarded updates are not atomic there either). Only a
 * single insert is atomic, so the call is made of inserts that decide and
 * writes that only the row's inserter makes:
 *   1. compensating op: insert the origin row {reason: op, status: done}. If
 *      it existed and is "pending", the origin op is running (or crashed
 *      mid-way): DB_ERROR, nothing written. If it existed with reason = op,
 *      an earlier attempt of this compensation wrote it (and may have died
 *      before step 2): still a null compensation.
 *   2. insert the op's row: "done" for a null compensation, else "pending".
 *   3. decide as DTM; an existing row that is "pending" means the same call
 *      is running elsewhere (or crashed mid-way): DB_ERROR.
 *   4. fn (session NULL); then the row becomes "done" (fn OK) or is deleted
 *      (fn failed or asked to retry, so a retry runs fn again).
 * "pending" plays the part of PostgreSQL's row lock: where PostgreSQL makes a
 * concurrent call wait, this answers 500 and DTM calls again. What this does
 * NOT give: fn's writes and the row's "done" are separate writes, so a crash
 * between them leaves the row pending (every later call answers 500 until an
 * operator decides, see docs/barrier.md), and fn's own writes are not undone
 * when it fails.
 *
 * query_prepared inserts the msg row {reason: "rollback"} outside any
 * transaction (DTM does too) and reads it back; on MongoDB a plain insert that
 * meets an uncommitted transaction's row waits for that transaction.
 *
 * mongoc_init() is the caller's (it made the client). Errors are one line.
 */
#include "barrier_internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define DEFAULT_DB "dtm_barrier"
#define COLLECTION "barrier"
#define STATUS_DONE "done"
#define STATUS_PENDING "pending"
#define KEY_MAX (DTMQ_BARRIER_GID_MAX + DTMQ_BARRIER_BRANCH_ID_MAX + 2 * DTMQ_BARRIER_NAME_MAX + 32)

/* One barrier row: its key fields and contents. */
typedef struct mongo_row {
    const char *trans_type, *gid, *branch_id, *op, *barrier_id, *reason, *status;
} mongo_row;

/* What an existing row says. */
typedef struct mongo_found {
    bool found;
    char reason[DTMQ_BARRIER_NAME_MAX + 1];
    char status[16];
} mongo_found;

/* err = "barrier: <what>: <libmongoc message on one line>". */
static void mongo_set_error(char *err, size_t errlen, const char *what, const bson_error_t *e)
{
    char line[512];
    snprintf(line, sizeof(line), "%s", e->message[0] ? e->message : "no message");
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    dtmq_barrier_set_err(err, errlen, "barrier: %s: %s (code %u)", what, line, e->code);
}

static bool mongo_is_duplicate(const bson_error_t *e)
{
    return e->code == 11000 || e->code == 11001 || e->code == 12582;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The row's _id: every part length-prefixed, so no two keys collide. */
static void mongo_row_key(const mongo_row *row, char *key, size_t len)
{
    snprintf(key, len, "%zu:%s|%zu:%s|%zu:%s|%zu:%s", strlen(row->gid), row->gid,
             strlen(row->branch_id), row->branch_id, strlen(row->op), row->op,
             strlen(row->barrier_id), row->barrier_id);
}

/* The row's fields (without _id) into doc (initialised by the caller). */
static void mongo_row_fields(const mongo_row *row, bson_t *doc)
{
    int64_t now = now_ms();
    BSON_APPEND_UTF8(doc, "trans_type", row->trans_type);
    BSON_APPEND_UTF8(doc, "gid", row->gid);
    BSON_APPEND_UTF8(doc, "branch_id", row->branch_id);
    BSON_APPEND_UTF8(doc, "op", row->op);
    BSON_APPEND_UTF8(doc, "barrier_id", row->barrier_id);
    BSON_APPEND_UTF8(doc, "reason", row->reason);
    BSON_APPEND_UTF8(doc, "status", row->status);
    BSON_APPEND_DATE_TIME(doc, "create_time", now);
    BSON_APPEND_DATE_TIME(doc, "update_time", now);
}

/* The options of one operation: the session when there is one. 0, or -1 + err. */
static int mongo_opts(mongoc_client_session_t *session, bson_t *opts, char *err, size_t errlen)
{
    bson_error_t e;
    if (session != NULL && !mongoc_client_session_append(session, opts, &e)) {
        mongo_set_error(err, errlen, "cannot add the session to an operation", &e);
        return -1;
    }
    return 0;
}

/* Without a transaction: insert row; a duplicate key means it existed.
 * 0, or -1 + err. */
static int mongo_insert_row(mongoc_collection_t *coll, const mongo_row *row, bool *inserted,
                            char *err, size_t errlen)
{
    char key[KEY_MAX];
    mongo_row_key(row, key, sizeof(key));
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "_id", key);
    mongo_row_fields(row, &doc);
    bson_error_t e;
    bool ok = mongoc_collection_insert_one(coll, &doc, NULL, NULL, &e);
    bson_destroy(&doc);
    if (ok || mongo_is_duplicate(&e)) {
        *inserted = ok;
        return 0;
    }
    mongo_set_error(err, errlen, "insert into " COLLECTION, &e);
    return -1;
}

/* Inside a transaction: upsert row with $setOnInsert; upsertedCount says
 * whether it was new. 0, or -1 + err. */
static int mongo_upsert_row(mongoc_collection_t *coll, mongoc_client_session_t *session,
                            const mongo_row *row, bool *inserted, char *err, size_t errlen)
{
    char key[KEY_MAX];
    mongo_row_key(row, key, sizeof(key));
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, fields, opts = BSON_INITIALIZER,
           reply;
    BSON_APPEND_UTF8(&filter, "_id", key);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &fields);
    mongo_row_fields(row, &fields);
    bson_append_document_end(&update, &fields);
    BSON_APPEND_BOOL(&opts, "upsert", true);
    int rc = mongo_opts(session, &opts, err, errlen);
    if (rc == 0) {
        bson_error_t e;
        /* reply is initialised by update_one whether it succeeds or not. */
        if (!mongoc_collection_update_one(coll, &filter, &update, &opts, &reply, &e)) {
            mongo_set_error(err, errlen, "upsert into " COLLECTION, &e);
            rc = -1;
        } else {
            bson_iter_t it;
            *inserted = bson_iter_init_find(&it, &reply, "upsertedCount") &&
                        BSON_ITER_HOLDS_NUMBER(&it) && bson_iter_as_int64(&it) == 1;
        }
        bson_destroy(&reply);
    }
    bson_destroy(&filter);
    bson_destroy(&update);
    bson_destroy(&opts);
    return rc;
}

/* Reads the row with row's key (session may be NULL). 0, or -1 + err. */
static int mongo_read_row(mongoc_collection_t *coll, mongoc_client_session_t *session,
                          const mongo_row *row, mongo_found *out, char *err, size_t errlen)
{
    char key[KEY_MAX];
    mongo_row_key(row, key, sizeof(key));
    memset(out, 0, sizeof(*out));
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, "_id", key);
    BSON_APPEND_INT64(&opts, "limit", 1);
    int rc = mongo_opts(session, &opts, err, errlen);
    if (rc == 0) {
        mongoc_cursor_t *cursor = mongoc_collection_find_with_opts(coll, &filter, &opts, NULL);
        const bson_t *doc;
        bson_iter_t it;
        if (mongoc_cursor_next(cursor, &doc)) {
            out->found = true;
            if (bson_iter_init_find(&it, doc, "reason") && BSON_ITER_HOLDS_UTF8(&it))
                snprintf(out->reason, sizeof(out->reason), "%s", bson_iter_utf8(&it, NULL));
            if (bson_iter_init_find(&it, doc, "status") && BSON_ITER_HOLDS_UTF8(&it))
                snprintf(out->status, sizeof(out->status), "%s", bson_iter_utf8(&it, NULL));
        }
        bson_error_t e;
        if (mongoc_cursor_error(cursor, &e)) {
            mongo_set_error(err, errlen, "find in " COLLECTION, &e);
            rc = -1;
        }
        mongoc_cursor_destroy(cursor);
    }
    bson_destroy(&filter);
    bson_destroy(&opts);
    return rc;
}

/* Without a transaction, by the row's inserter only: pending → done.
 * 0, or -1 + err. */
static int mongo_mark_done(mongoc_collection_t *coll, const mongo_row *row, char *err,
                           size_t errlen)
{
    char key[KEY_MAX];
    mongo_row_key(row, key, sizeof(key));
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, reply;
    BSON_APPEND_UTF8(&filter, "_id", key);
    BSON_APPEND_UTF8(&filter, "status", STATUS_PENDING);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_UTF8(&set, "status", STATUS_DONE);
    BSON_APPEND_DATE_TIME(&set, "update_time", now_ms());
    bson_append_document_end(&update, &set);
    bson_error_t e;
    int rc = 0;
    if (!mongoc_collection_update_one(coll, &filter, &update, NULL, &reply, &e)) {
        mongo_set_error(err, errlen, "mark the barrier row done", &e);
        rc = -1;
    } else {
        bson_iter_t it;
        if (!bson_iter_init_find(&it, &reply, "matchedCount") || bson_iter_as_int64(&it) != 1) {
            dtmq_barrier_set_err(err, errlen, "barrier: the pending row %s vanished before it could"
                                         " be marked done", key);
            rc = -1;
        }
    }
    bson_destroy(&reply);
    bson_destroy(&filter);
    bson_destroy(&update);
    return rc;
}

/* Without a transaction, by the row's inserter only: deletes the pending row
 * so a retry runs fn again. 0, or -1 + err. */
static int mongo_remove_pending(mongoc_collection_t *coll, const mongo_row *row, char *err,
                                size_t errlen)
{
    char key[KEY_MAX];
    mongo_row_key(row, key, sizeof(key));
    bson_t filter = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, "_id", key);
    BSON_APPEND_UTF8(&filter, "status", STATUS_PENDING);
    bson_error_t e;
    int rc = 0;
    if (!mongoc_collection_delete_one(coll, &filter, NULL, NULL, &e)) {
        mongo_set_error(err, errlen, "remove the pending barrier row (it stays pending)", &e);
        rc = -1;
    }
    bson_destroy(&filter);
    return rc;
}

int dtmq_barrier_mongo_write_opts(const dtmq_barrier_mongo_tx *tx, bson_t *opts, char *err,
                                  size_t errlen)
{
    if (tx == NULL || opts == NULL) {
        dtmq_barrier_set_err(err, errlen, "barrier: write_opts needs tx and opts");
        return -1;
    }
    return mongo_opts(tx->session, opts, err, errlen);
}

int dtmq_barrier_mongo_has_transactions(mongoc_client_t *client, char *err, size_t errlen)
{
    if (client == NULL) {
        dtmq_barrier_set_err(err, errlen, "barrier: no MongoDB client");
        return -1;
    }
    bson_error_t e;
    mongoc_server_description_t *sd = mongoc_client_select_server(client, true, NULL, &e);
    if (sd == NULL) {
        mongo_set_error(err, errlen, "no MongoDB server to write to", &e);
        return -1;
    }
    const char *type = mongoc_server_description_type(sd);
    const bson_t *hello = mongoc_server_description_hello_response(sd);
    bson_iter_t it;
    bool sessions = bson_iter_init_find(&it, hello, "logicalSessionTimeoutMinutes") &&
                    BSON_ITER_HOLDS_NUMBER(&it);
    int64_t wire = bson_iter_init_find(&it, hello, "maxWireVersion") && BSON_ITER_HOLDS_NUMBER(&it)
                       ? bson_iter_as_int64(&it)
                       : 0;
    int yes = strcmp(type, "LoadBalancer") == 0 ||
              (strcmp(type, "RSPrimary") == 0 && sessions && wire >= 7) || /* MongoDB 4.0 */
              (strcmp(type, "Mongos") == 0 && sessions && wire >= 8);      /* MongoDB 4.2 */
    mongoc_server_description_destroy(sd);
    return yes;
}

int dtmq_barrier_mongo_ensure_indexes(mongoc_client_t *client, const char *db, char *err,
                                      size_t errlen)
{
    if (client == NULL) {
        dtmq_barrier_set_err(err, errlen, "barrier: no MongoDB client");
        return -1;
    }
    bson_t *cmd = BCON_NEW("createIndexes", BCON_UTF8(COLLECTION), "indexes", "[", "{", "key",
                           "{", "gid", BCON_INT32(1), "branch_id", BCON_INT32(1), "op",
                           BCON_INT32(1), "barrier_id", BCON_INT32(1), "}", "name",
                           BCON_UTF8("uniq_barrier"), "unique", BCON_BOOL(true), "}", "]");
    bson_error_t e;
    bool ok = mongoc_client_write_command_with_opts(client, db ? db : DEFAULT_DB, cmd, NULL, NULL,
                                                    &e);
    if (!ok)
        mongo_set_error(err, errlen, "create the index uniq_barrier", &e);
    bson_destroy(cmd);
    return ok ? 0 : -1;
}

/* ---- with a transaction --------------------------------------------------- */

/* Inside the session's transaction: inserts, decision, fn. Commits nothing. */
static dtmq_barrier_outcome mongo_call_in_tx(mongoc_collection_t *coll,
                                             const dtmq_barrier_mongo_tx *tx,
                                             const dtmq_branch_info *b, const char *barrier_id,
                                             dtmq_barrier_mongo_fn fn, void *arg, char *err,
                                             size_t errlen)
{
    mongo_row row = {b->trans_type, b->gid, b->branch_id, b->op, barrier_id, b->op, STATUS_DONE};
    const char *origin = dtmq_barrier_origin_op(b->op);
    bool origin_inserted = false, current_inserted = false;
    if (origin != NULL) {
        mongo_row origin_row = row;
        origin_row.op = origin;
        if (mongo_upsert_row(coll, tx->session, &origin_row, &origin_inserted, err, errlen) != 0)
            return DTMQ_BARRIER_DB_ERROR;
    }
    if (mongo_upsert_row(coll, tx->session, &row, &current_inserted, err, errlen) != 0)
        return DTMQ_BARRIER_DB_ERROR;
    switch (dtmq_barrier_decide(b->op, origin_inserted, current_inserted)) {
    case BARRIER_MSG_DUP:
        return DTMQ_BARRIER_MSG_DUPLICATE;
    case BARRIER_SKIP_NULL_COMP:
        return DTMQ_BARRIER_SKIPPED_NULL_COMPENSATION;
    case BARRIER_SKIP_EXISTING: {
        mongo_found f;
        if (mongo_read_row(coll, tx->session, &row, &f, err, errlen) != 0)
            return DTMQ_BARRIER_DB_ERROR;
        if (!f.found) {
            dtmq_barrier_set_err(err, errlen, "barrier: the row of %s/%s/%s/%s existed but is gone",
                            b->gid, b->branch_id, b->op, barrier_id);
            return DTMQ_BARRIER_DB_ERROR;
        }
        return dtmq_barrier_existing_outcome(b->op, f.reason);
    }
    case BARRIER_RUN_FN:
        break;
    }
    dtmq_business_result r = fn(arg, tx, err, errlen);
    if (r == DTMQ_BUSINESS_OK)
        return DTMQ_BARRIER_DONE;
    if (err != NULL && errlen > 0 && err[0] == '\0')
        dtmq_barrier_set_err(err, errlen, "barrier: the business function %s",
                        r == DTMQ_BUSINESS_FAILURE ? "failed" : "asked to retry");
    return r == DTMQ_BUSINESS_FAILURE ? DTMQ_BARRIER_BUSINESS_ERROR : DTMQ_BARRIER_DB_ERROR;
}

static dtmq_barrier_outcome mongo_call_with_tx(mongoc_client_t *client,
                                               mongoc_collection_t *coll,
                                               const dtmq_branch_info *b, const char *barrier_id,
                                               dtmq_barrier_mongo_fn fn, void *arg, char *err,
                                               size_t errlen)
{
    bson_error_t e;
    mongoc_client_session_t *session = mongoc_client_start_session(client, NULL, &e);
    if (session == NULL) {
        mongo_set_error(err, errlen, "start a session", &e);
        return DTMQ_BARRIER_DB_ERROR;
    }
    if (!mongoc_client_session_start_transaction(session, NULL, &e)) {
        mongo_set_error(err, errlen, "start a transaction", &e);
        mongoc_client_session_destroy(session);
        return DTMQ_BARRIER_DB_ERROR;
    }
    dtmq_barrier_mongo_tx tx = {client, session};
    dtmq_barrier_outcome o = mongo_call_in_tx(coll, &tx, b, barrier_id, fn, arg, err, errlen);
    bool commit = o == DTMQ_BARRIER_DONE || o == DTMQ_BARRIER_SKIPPED_DUPLICATE ||
                  o == DTMQ_BARRIER_SKIPPED_NULL_COMPENSATION || o == DTMQ_BARRIER_SKIPPED_HANGING;
    if (commit && !mongoc_client_session_commit_transaction(session, NULL, &e)) {
        /* Unknown or failed: DTM calls again; the retry finds the rows if it
         * committed after all, or runs fn if it did not. */
        mongo_set_error(err, errlen, "commit the barrier's transaction", &e);
        o = DTMQ_BARRIER_DB_ERROR;
    } else if (!commit) {
        (void)mongoc_client_session_abort_transaction(session, &e); /* best effort */
    }
    mongoc_client_session_destroy(session);
    return o;
}

/* ---- without a transaction ------------------------------------------------ */

/* Step 1 for a compensating op: the origin row. DB_ERROR when its op is in
 * progress. Otherwise *by_compensation says whether the origin row stands
 * for "the origin op never ran": this call inserted it, or an earlier
 * attempt of this compensation did (reason = this op) and may have died
 * before inserting its own row — then this call finishes the null
 * compensation instead of running fn. */
static dtmq_barrier_outcome mongo_plain_origin(mongoc_collection_t *coll,
                                               const mongo_row *origin_row, bool *inserted,
                                               bool *by_compensation, char *err, size_t errlen)
{
    if (mongo_insert_row(coll, origin_row, inserted, err, errlen) != 0)
        return DTMQ_BARRIER_DB_ERROR;
    *by_compensation = *inserted;
    if (*inserted)
        return DTMQ_BARRIER_DONE;
    mongo_found f;
    if (mongo_read_row(coll, NULL, origin_row, &f, err, errlen) != 0)
        return DTMQ_BARRIER_DB_ERROR;
    if (!f.found) {
        dtmq_barrier_set_err(err, errlen, "barrier: the %s row of %s/%s changed under this call: retry",
                        origin_row->op, origin_row->gid, origin_row->branch_id);
        return DTMQ_BARRIER_DB_ERROR;
    }
    if (strcmp(f.status, STATUS_PENDING) == 0) {
        dtmq_barrier_set_err(err, errlen, "barrier: %s %s/%s is still in progress (or was interrupted"
                                     " mid-way): compensate later", origin_row->op,
                        origin_row->gid, origin_row->branch_id);
        return DTMQ_BARRIER_DB_ERROR;
    }
    *by_compensation = strcmp(f.reason, origin_row->reason) == 0;
    return DTMQ_BARRIER_DONE;
}

/* The op's row existed: duplicate, hanging, or pending elsewhere (DB_ERROR). */
static dtmq_barrier_outcome mongo_plain_existing(mongoc_collection_t *coll, const mongo_row *row,
                                                 char *err, size_t errlen)
{
    mongo_found f;
    if (mongo_read_row(coll, NULL, row, &f, err, errlen) != 0)
        return DTMQ_BARRIER_DB_ERROR;
    if (!f.found) {
        dtmq_barrier_set_err(err, errlen, "barrier: the row of %s/%s/%s changed under this call: retry",
                        row->gid, row->branch_id, row->op);
        return DTMQ_BARRIER_DB_ERROR;
    }
    if (strcmp(f.status, STATUS_PENDING) == 0) {
        dtmq_barrier_set_err(err, errlen, "barrier: %s %s/%s is in progress elsewhere (or was"
                                     " interrupted mid-way): retry later", row->op, row->gid,
                        row->branch_id);
        return DTMQ_BARRIER_DB_ERROR;
    }
    return dtmq_barrier_existing_outcome(row->op, f.reason);
}

/* Step 4: fn, then the pending row becomes done or goes away. */
static dtmq_barrier_outcome mongo_plain_run(mongoc_client_t *client, mongoc_collection_t *coll,
                                            const mongo_row *row, dtmq_barrier_mongo_fn fn,
                                            void *arg, char *err, size_t errlen)
{
    dtmq_barrier_mongo_tx tx = {client, NULL};
    dtmq_business_result r = fn(arg, &tx, err, errlen);
    if (r == DTMQ_BUSINESS_OK)
        return mongo_mark_done(coll, row, err, errlen) == 0 ? DTMQ_BARRIER_DONE
                                                            : DTMQ_BARRIER_DB_ERROR;
    char why[256] = "";
    if (err != NULL && errlen > 0)
        snprintf(why, sizeof(why), "%s", err);
    if (why[0] == '\0')
        snprintf(why, sizeof(why), "barrier: the business function %s",
                 r == DTMQ_BUSINESS_FAILURE ? "failed" : "asked to retry");
    char rm_err[384] = "";
    if (mongo_remove_pending(coll, row, rm_err, sizeof(rm_err)) != 0) {
        dtmq_barrier_set_err(err, errlen, "%s; then %s", why, rm_err);
        return DTMQ_BARRIER_DB_ERROR;
    }
    dtmq_barrier_set_err(err, errlen, "%s", why);
    return r == DTMQ_BUSINESS_FAILURE ? DTMQ_BARRIER_BUSINESS_ERROR : DTMQ_BARRIER_DB_ERROR;
}

static dtmq_barrier_outcome mongo_call_plain(mongoc_client_t *client, mongoc_collection_t *coll,
                                             const dtmq_branch_info *b, const char *barrier_id,
                                             dtmq_barrier_mongo_fn fn, void *arg, char *err,
                                             size_t errlen)
{
    mongo_row row = {b->trans_type, b->gid, b->branch_id, b->op, barrier_id, b->op, STATUS_PENDING};
    const char *origin = dtmq_barrier_origin_op(b->op);
    bool origin_inserted = false, by_compensation = false, current_inserted = false;
    if (origin != NULL) {
        mongo_row origin_row = row;
        origin_row.op = origin;
        origin_row.status = STATUS_DONE;
        if (mongo_plain_origin(coll, &origin_row, &origin_inserted, &by_compensation, err,
                               errlen) != DTMQ_BARRIER_DONE)
            return DTMQ_BARRIER_DB_ERROR;
    }
    if (by_compensation) /* a null compensation: nothing will run */
        row.status = STATUS_DONE;
    if (mongo_insert_row(coll, &row, &current_inserted, err, errlen) != 0)
        return DTMQ_BARRIER_DB_ERROR;
    /* What PostgreSQL would have seen had both inserts been one transaction:
     * an origin row written by an earlier attempt of this compensation that
     * died before its own row counts as inserted now. */
    bool origin_affected = origin_inserted || (by_compensation && current_inserted);
    switch (dtmq_barrier_decide(b->op, origin_affected, current_inserted)) {
    case BARRIER_MSG_DUP:
        return DTMQ_BARRIER_MSG_DUPLICATE;
    case BARRIER_SKIP_NULL_COMP:
        return DTMQ_BARRIER_SKIPPED_NULL_COMPENSATION;
    case BARRIER_SKIP_EXISTING:
        return mongo_plain_existing(coll, &row, err, errlen);
    case BARRIER_RUN_FN:
        break;
    }
    return mongo_plain_run(client, coll, &row, fn, arg, err, errlen);
}

dtmq_barrier_outcome dtmq_barrier_mongo_call(mongoc_client_t *client, const char *db,
                                             const dtmq_branch_info *b, const char *barrier_id,
                                             dtmq_barrier_mongo_fn fn, void *arg, char *err,
                                             size_t errlen)
{
    dtmq_barrier_set_err(err, errlen, "%s", "");
    if (barrier_id == NULL)
        barrier_id = DTMQ_BARRIER_FIRST_ID;
    if (dtmq_barrier_check_call(b, barrier_id, fn != NULL, err, errlen) != 0)
        return DTMQ_BARRIER_DB_ERROR;
    int has_tx = dtmq_barrier_mongo_has_transactions(client, err, errlen);
    if (has_tx < 0)
        return DTMQ_BARRIER_DB_ERROR;
    mongoc_collection_t *coll = mongoc_client_get_collection(client, db ? db : DEFAULT_DB,
                                                             COLLECTION);
    dtmq_barrier_outcome o =
        has_tx ? mongo_call_with_tx(client, coll, b, barrier_id, fn, arg, err, errlen)
               : mongo_call_plain(client, coll, b, barrier_id, fn, arg, err, errlen);
    mongoc_collection_destroy(coll);
    if (dtmq_barrier_http_status(o) == 200)
        dtmq_barrier_set_err(err, errlen, "%s", ""); /* fn may have written to it */
    return o;
}

int dtmq_barrier_mongo_query_prepared(mongoc_client_t *client, const char *db, const char *gid,
                                      char *err, size_t errlen)
{
    dtmq_barrier_set_err(err, errlen, "%s", "");
    if (dtmq_barrier_check_gid(gid, err, errlen) != 0)
        return -1;
    if (client == NULL) {
        dtmq_barrier_set_err(err, errlen, "barrier: no MongoDB client");
        return -1;
    }
    mongoc_collection_t *coll = mongoc_client_get_collection(client, db ? db : DEFAULT_DB,
                                                             COLLECTION);
    mongo_row row = {"msg", gid, BARRIER_MSG_BRANCH_ID, BARRIER_MSG_OP, BARRIER_MSG_BARRIER_ID,
                     BARRIER_REASON_ROLLBACK, STATUS_DONE};
    bool inserted = false;
    mongo_found f = {0};
    int status = -1;
    if (mongo_insert_row(coll, &row, &inserted, err, errlen) != 0)
        goto done;
    if (inserted) {
        status = 409;
        goto done;
    }
    if (mongo_read_row(coll, NULL, &row, &f, err, errlen) != 0)
        goto done;
    if (!f.found)
        dtmq_barrier_set_err(err, errlen, "barrier: the msg row of %s vanished after a duplicate key",
                        gid);
    else if (strcmp(f.status, STATUS_PENDING) == 0)
        status = 425;
    else
        status = strcmp(f.reason, BARRIER_REASON_ROLLBACK) == 0 ? 409 : 200;
done:
    mongoc_collection_destroy(coll);
    return status;
}
