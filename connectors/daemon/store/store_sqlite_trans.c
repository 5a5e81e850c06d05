/*
 * store_sqlite_trans.c — global transactions and their branches in the SQLite
 * store: create, find, the guarded updates (status CAS, branch append/update,
 * cron touch) and the cron queries (claim_due, reset_cron_times).
 *
 * Every op that writes runs in sqlite_store_begin_write/end, i.e. one
 * BEGIN IMMEDIATE transaction holding SQLite's write lock from its first
 * statement: the guard an op reads (status, owner, existence) cannot change
 * before its write, in this process or any other sharing the file, and a
 * failure part-way (a duplicate or missing branch) rolls back everything the
 * op wrote.
 */
#include "store_sqlite_internal.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ---- row layout ------------------------------------------------------------ */

/* trans_global's fields in SQLITE_TRANS_COLUMNS order: 13 texts, 6 integers. */
static const size_t trans_text_fields[] = {
    offsetof(trans_global, gid),         offsetof(trans_global, trans_type),
    offsetof(trans_global, status),      offsetof(trans_global, query_prepared),
    offsetof(trans_global, protocol),    offsetof(trans_global, custom_data),
    offsetof(trans_global, options),     offsetof(trans_global, steps),
    offsetof(trans_global, payloads),    offsetof(trans_global, ext_data),
    offsetof(trans_global, result),      offsetof(trans_global, rollback_reason),
    offsetof(trans_global, owner),
};
static const size_t trans_int_fields[] = {
    offsetof(trans_global, create_time),    offsetof(trans_global, update_time),
    offsetof(trans_global, finish_time),    offsetof(trans_global, rollback_time),
    offsetof(trans_global, next_cron_time), offsetof(trans_global, next_cron_interval),
};
#define N_TEXT (sizeof(trans_text_fields) / sizeof(trans_text_fields[0]))
#define N_INT (sizeof(trans_int_fields) / sizeof(trans_int_fields[0]))
_Static_assert(N_TEXT + N_INT == SQLITE_TRANS_COLUMN_COUNT, "column list and field tables differ");

#define BRANCH_COLUMNS \
    "branch_id, op, url, data, status, create_time, update_time, finish_time, rollback_time"

static char **trans_text_at(trans_global *t, size_t i)
{
    return (char **)((char *)t + trans_text_fields[i]);
}

static int64_t *trans_int_at(trans_global *t, size_t i)
{
    return (int64_t *)((char *)t + trans_int_fields[i]);
}

static const char *trans_text_of(const trans_global *t, size_t i)
{
    return *(char *const *)((const char *)t + trans_text_fields[i]);
}

static int64_t trans_int_of(const trans_global *t, size_t i)
{
    return *(const int64_t *)((const char *)t + trans_int_fields[i]);
}

/* Binds t's fields to parameters 1..SQLITE_TRANS_COLUMN_COUNT. */
static void bind_trans_row(sqlite3_stmt *st, const trans_global *t, int *rc)
{
    for (size_t i = 0; i < N_TEXT; i++)
        sqlite_store_bind_text(st, (int)i + 1, trans_text_of(t, i), rc);
    for (size_t i = 0; i < N_INT; i++)
        sqlite_store_bind_int64(st, (int)(N_TEXT + i) + 1, trans_int_of(t, i), rc);
}

trans_global *sqlite_store_read_trans_row(sqlite3_stmt *st, int first)
{
    trans_global *t = trans_new();
    int failed = t == NULL;
    for (size_t i = 0; !failed && i < N_TEXT; i++)
        failed = sqlite_store_column_text(st, first + (int)i, trans_text_at(t, i)) != 0;
    for (size_t i = 0; !failed && i < N_INT; i++)
        *trans_int_at(t, i) = sqlite3_column_int64(st, first + (int)(N_TEXT + i));
    if (failed) {
        trans_free(t);
        store_set_error(STORE_UNAVAILABLE, "store sqlite: out of memory reading a transaction");
        return NULL;
    }
    return t;
}

/* Reads a row laid out as BRANCH_COLUMNS into b (zeroed first). 0 or -1. */
static int read_branch_row(sqlite3_stmt *st, trans_branch *b)
{
    memset(b, 0, sizeof(*b));
    int failed = sqlite_store_column_text(st, 0, &b->branch_id) != 0 ||
                 sqlite_store_column_text(st, 1, &b->op) != 0 ||
                 sqlite_store_column_text(st, 2, &b->url) != 0 ||
                 sqlite_store_column_blob(st, 3, &b->data, &b->data_len) != 0 ||
                 sqlite_store_column_text(st, 4, &b->status) != 0;
    b->create_time = sqlite3_column_int64(st, 5);
    b->update_time = sqlite3_column_int64(st, 6);
    b->finish_time = sqlite3_column_int64(st, 7);
    b->rollback_time = sqlite3_column_int64(st, 8);
    if (failed)
        trans_branch_clear(b);
    return failed ? -1 : 0;
}

/* ---- reads ------------------------------------------------------------------ */

/* Appends gid's branches to t in insertion (= id) order. */
static store_result load_branches(sqlite_store *ss, trans_global *t)
{
    sqlite3_stmt *st = sqlite_store_stmt(
        ss, SQ_BRANCH_BY_GID,
        "SELECT " BRANCH_COLUMNS " FROM trans_branch WHERE gid = ?1 ORDER BY id");
    if (st == NULL)
        return STORE_UNAVAILABLE;
    int rc = SQLITE_OK;
    sqlite_store_bind_text(st, 1, t->gid, &rc);
    store_result r = rc == SQLITE_OK ? STORE_OK : sqlite_store_fail(ss, "find branches");
    while (r == STORE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        trans_branch b;
        if (read_branch_row(st, &b) != 0) {
            r = store_set_error(STORE_UNAVAILABLE, "store sqlite: out of memory reading a branch");
            break;
        }
        /* trans_add_branch copies; ours is freed either way. */
        if (trans_add_branch(t, &b) != 0)
            r = store_set_error(STORE_UNAVAILABLE, "store sqlite: out of memory adding a branch");
        trans_branch_clear(&b);
    }
    if (r == STORE_OK && rc != SQLITE_DONE)
        r = sqlite_store_fail(ss, "find branches");
    sqlite_store_release(st);
    return r;
}

/* Reads gid with its branches into *out. Runs inside a begun transaction. */
static store_result load_trans(sqlite_store *ss, const char *gid, trans_global **out)
{
    *out = NULL;
    sqlite3_stmt *st = sqlite_store_stmt(
        ss, SQ_TRANS_BY_GID, "SELECT " SQLITE_TRANS_COLUMNS " FROM trans_global WHERE gid = ?1");
    if (st == NULL)
        return STORE_UNAVAILABLE;
    int rc = SQLITE_OK;
    sqlite_store_bind_text(st, 1, gid, &rc);
    if (rc != SQLITE_OK) {
        sqlite_store_release(st);
        return sqlite_store_fail(ss, "find");
    }
    rc = sqlite3_step(st);
    trans_global *t = NULL;
    store_result r = STORE_OK;
    if (rc == SQLITE_ROW)
        r = (t = sqlite_store_read_trans_row(st, 0)) != NULL ? STORE_OK : STORE_UNAVAILABLE;
    else
        r = rc == SQLITE_DONE ? STORE_NOT_FOUND : sqlite_store_fail(ss, "find");
    sqlite_store_release(st);
    if (r == STORE_OK)
        r = load_branches(ss, t);
    if (r != STORE_OK)
        trans_free(t);
    else
        *out = t;
    return r;
}

store_result sqlite_store_find_trans(store *s, const char *gid, trans_global **out)
{
    sqlite_store *ss = sqlite_store_of(s);
    /* One read transaction: the global and its branches are one snapshot. */
    store_result r = sqlite_store_begin_read(ss);
    if (r != STORE_OK)
        return r;
    trans_global *t = NULL;
    r = sqlite_store_end(ss, load_trans(ss, gid, &t));
    if (r == STORE_OK)
        *out = t;
    else
        trans_free(t);
    return r;
}

/* ---- guards ----------------------------------------------------------------- */

/* The statuses SQLITE_STORE_ACTIVE_STATUSES lists: the cron still works on
 * these. */
static int status_is_active(const char *status)
{
    return status != NULL &&
           (strcmp(status, TRANS_PREPARED) == 0 || strcmp(status, TRANS_SUBMITTED) == 0 ||
            strcmp(status, TRANS_ABORTING) == 0);
}

/* Reads gid's status and owner (malloc'd into *status / *owner, either may be
 * NULL when not wanted). STORE_NOT_FOUND when gid does not exist. Called
 * inside a write transaction, so what it reads holds until the COMMIT. */
static store_result read_guard(sqlite_store *ss, const char *gid, char **status, char **owner)
{
    sqlite3_stmt *st = sqlite_store_stmt(ss, SQ_TRANS_GUARD,
                                         "SELECT status, owner FROM trans_global WHERE gid = ?1");
    if (st == NULL)
        return STORE_UNAVAILABLE;
    int rc = SQLITE_OK;
    sqlite_store_bind_text(st, 1, gid, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    store_result r = STORE_OK;
    if (rc == SQLITE_DONE)
        r = store_set_error(STORE_NOT_FOUND, "store sqlite: no transaction %s", gid);
    else if (rc != SQLITE_ROW)
        r = sqlite_store_fail(ss, "read status");
    else if ((status && sqlite_store_column_text(st, 0, status) != 0) ||
             (owner && sqlite_store_column_text(st, 1, owner) != 0))
        r = store_set_error(STORE_UNAVAILABLE, "store sqlite: out of memory");
    sqlite_store_release(st);
    return r;
}

/* STORE_OK when gid exists with status expect_status, else NOT_FOUND or
 * CONFLICT. */
static store_result check_status_guard(sqlite_store *ss, const char *gid, const char *expect_status)
{
    char *status = NULL;
    store_result r = read_guard(ss, gid, &status, NULL);
    if (r == STORE_OK && (status == NULL || strcmp(status, expect_status) != 0))
        r = store_set_error(STORE_CONFLICT, "store sqlite: %s is %s, not %s", gid,
                            status ? status : "(null)", expect_status);
    free(status);
    return r;
}

/* ---- create ----------------------------------------------------------------- */

/* Inserts branches b[0..n) of gid. STORE_DUPLICATE at the first (branch_id,
 * op) that exists; the caller's transaction then rolls back the earlier
 * ones, so nothing is appended. */
static store_result insert_branches(sqlite_store *ss, const char *gid, const trans_branch *b,
                                    size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sqlite3_stmt *st = sqlite_store_stmt(
            ss, SQ_BRANCH_INSERT,
            "INSERT INTO trans_branch (gid, " BRANCH_COLUMNS ")"
            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            " ON CONFLICT (gid, branch_id, op) DO NOTHING");
        if (st == NULL)
            return STORE_UNAVAILABLE;
        int rc = SQLITE_OK;
        sqlite_store_bind_text(st, 1, gid, &rc);
        sqlite_store_bind_text(st, 2, b[i].branch_id, &rc);
        sqlite_store_bind_text(st, 3, b[i].op, &rc);
        sqlite_store_bind_text(st, 4, b[i].url, &rc);
        sqlite_store_bind_blob(st, 5, b[i].data, b[i].data_len, &rc);
        sqlite_store_bind_text(st, 6, b[i].status, &rc);
        sqlite_store_bind_int64(st, 7, b[i].create_time, &rc);
        sqlite_store_bind_int64(st, 8, b[i].update_time, &rc);
        sqlite_store_bind_int64(st, 9, b[i].finish_time, &rc);
        sqlite_store_bind_int64(st, 10, b[i].rollback_time, &rc);
        if (rc != SQLITE_OK) {
            sqlite_store_release(st);
            return sqlite_store_fail(ss, "insert branch");
        }
        int changes = 0;
        store_result r = sqlite_store_run(ss, st, "insert branch", &changes);
        if (r != STORE_OK)
            return r;
        if (changes == 0)
            return store_set_error(STORE_DUPLICATE, "store sqlite: branch %s/%s of %s exists",
                                   b[i].branch_id, b[i].op, gid);
    }
    return STORE_OK;
}

static store_result insert_global(sqlite_store *ss, const trans_global *t)
{
    sqlite3_stmt *st = sqlite_store_stmt(
        ss, SQ_TRANS_INSERT,
        "INSERT INTO trans_global (" SQLITE_TRANS_COLUMNS ") VALUES"
        " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
        " ON CONFLICT (gid) DO NOTHING");
    if (st == NULL)
        return STORE_UNAVAILABLE;
    int rc = SQLITE_OK;
    bind_trans_row(st, t, &rc);
    if (rc != SQLITE_OK) {
        sqlite_store_release(st);
        return sqlite_store_fail(ss, "create");
    }
    int changes = 0;
    store_result r = sqlite_store_run(ss, st, "create", &changes);
    if (r == STORE_OK && changes == 0)
        r = store_set_error(STORE_DUPLICATE, "store sqlite: transaction %s exists", t->gid);
    return r;
}

store_result sqlite_store_create_trans(store *s, const trans_global *t)
{
    sqlite_store *ss = sqlite_store_of(s);
    store_result r = sqlite_store_begin_write(ss);
    if (r != STORE_OK)
        return r;
    /* ON CONFLICT DO NOTHING + changes() is the "gid absent" guard; the
     * global and its branches commit together or not at all. */
    r = insert_global(ss, t);
    if (r == STORE_OK)
        r = insert_branches(ss, t->gid, t->branches, t->branch_count);
    return sqlite_store_end(ss, r);
}

/* ---- guarded updates -------------------------------------------------------- */

static store_result apply_status_change(sqlite_store *ss, const char *gid,
                                        const store_status_change *c)
{
    /* Zero times and NULL strings keep the stored value (store.h). */
    sqlite3_stmt *st = sqlite_store_stmt(
        ss, SQ_TRANS_CHANGE_STATUS,
        "UPDATE trans_global SET status = ?2, update_time = ?3,"
        " finish_time = CASE WHEN ?4 <> 0 THEN ?4 ELSE finish_time END,"
        " rollback_time = CASE WHEN ?5 <> 0 THEN ?5 ELSE rollback_time END,"
        " rollback_reason = coalesce(?6, rollback_reason),"
        " result = coalesce(?7, result),"
        " ext_data = coalesce(?8, ext_data),"
        " next_cron_time = CASE WHEN ?9 <> 0 THEN ?9 ELSE next_cron_time END,"
        " next_cron_interval = CASE WHEN ?10 <> 0 THEN ?10 ELSE next_cron_interval END,"
        " owner = coalesce(?11, owner),"
        " custom_data = coalesce(?12, custom_data)"
        " WHERE gid = ?1");
    if (st == NULL)
        return STORE_UNAVAILABLE;
    int rc = SQLITE_OK;
    sqlite_store_bind_text(st, 1, gid, &rc);
    sqlite_store_bind_text(st, 2, c->status, &rc);
    sqlite_store_bind_int64(st, 3, c->update_time, &rc);
    sqlite_store_bind_int64(st, 4, c->finish_time, &rc);
    sqlite_store_bind_int64(st, 5, c->rollback_time, &rc);
    sqlite_store_bind_text(st, 6, c->rollback_reason, &rc);
    sqlite_store_bind_text(st, 7, c->result, &rc);
    sqlite_store_bind_text(st, 8, c->ext_data, &rc);
    sqlite_store_bind_int64(st, 9, c->next_cron_time, &rc);
    sqlite_store_bind_int64(st, 10, c->next_cron_interval, &rc);
    sqlite_store_bind_text(st, 11, c->owner, &rc);
    sqlite_store_bind_text(st, 12, c->custom_data, &rc);
    if (rc != SQLITE_OK) {
        sqlite_store_release(st);
        return sqlite_store_fail(ss, "change_status");
    }
    return sqlite_store_run(ss, st, "change_status", NULL);
}

store_result sqlite_store_change_status(store *s, const char *gid, const char *expect_status,
                                        const store_status_change *change)
{
    sqlite_store *ss = sqlite_store_of(s);
    store_result r = sqlite_store_begin_write(ss);
    if (r != STORE_OK)
        return r;
    /* Guard and update share the write transaction: compare-and-set. */
    r = check_status_guard(ss, gid, expect_status);
    if (r == STORE_OK)
        r = apply_status_change(ss, gid, change);
    return sqlite_store_end(ss, r);
}

store_result sqlite_store_append_branches(store *s, const char *gid, const char *expect_status,
                                          const trans_branch *b, size_t n)
{
    sqlite_store *ss = sqlite_store_of(s);
    store_result r = sqlite_store_begin_write(ss);
    if (r != STORE_OK)
        return r;
    r = check_status_guard(ss, gid, expect_status);
    if (r == STORE_OK)
        r = insert_branches(ss, gid, b, n); /* DUPLICATE rolls back the whole batch */
    return sqlite_store_end(ss, r);
}

/* Sets the result fields of each (branch_id, op); STORE_NOT_FOUND at the
 * first that does not exist (the caller's transaction undoes the others). */
static store_result update_branch_rows(sqlite_store *ss, const char *gid, const trans_branch *b,
                                       size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sqlite3_stmt *st = sqlite_store_stmt(
            ss, SQ_BRANCH_UPDATE,
            "UPDATE trans_branch SET status = ?4, update_time = ?5, finish_time = ?6,"
            " rollback_time = ?7 WHERE gid = ?1 AND branch_id = ?2 AND op = ?3");
        if (st == NULL)
            return STORE_UNAVAILABLE;
        int rc = SQLITE_OK;
        sqlite_store_bind_text(st, 1, gid, &rc);
        sqlite_store_bind_text(st, 2, b[i].branch_id, &rc);
        sqlite_store_bind_text(st, 3, b[i].op, &rc);
        sqlite_store_bind_text(st, 4, b[i].status, &rc);
        sqlite_store_bind_int64(st, 5, b[i].update_time, &rc);
        sqlite_store_bind_int64(st, 6, b[i].finish_time, &rc);
        sqlite_store_bind_int64(st, 7, b[i].rollback_time, &rc);
        if (rc != SQLITE_OK) {
            sqlite_store_release(st);
            return sqlite_store_fail(ss, "update branch");
        }
        int changes = 0;
        store_result r = sqlite_store_run(ss, st, "update branch", &changes);
        if (r != STORE_OK)
            return r;
        if (changes == 0)
            return store_set_error(STORE_NOT_FOUND, "store sqlite: no branch %s/%s in %s",
                                   b[i].branch_id, b[i].op, gid);
    }
    return STORE_OK;
}

/* Checks that every (branch_id, op) of b exists with status want. Inside
 * the write transaction, so it still holds when the rows are updated. */
static store_result check_branch_statuses(sqlite_store *ss, const char *gid, const trans_branch *b,
                                          size_t n, const char *want)
{
    for (size_t i = 0; i < n; i++) {
        sqlite3_stmt *st = sqlite_store_stmt(
            ss, SQ_BRANCH_STATUS, "SELECT status FROM trans_branch WHERE gid = ?1 AND branch_id = ?2 AND op = ?3");
        if (st == NULL)
            return STORE_UNAVAILABLE;
        int rc = SQLITE_OK;
        sqlite_store_bind_text(st, 1, gid, &rc);
        sqlite_store_bind_text(st, 2, b[i].branch_id, &rc);
        sqlite_store_bind_text(st, 3, b[i].op, &rc);
        int step = rc == SQLITE_OK ? sqlite3_step(st) : rc;
        store_result r = STORE_OK;
        if (step == SQLITE_DONE)
            r = store_set_error(STORE_NOT_FOUND, "store sqlite: no branch %s/%s in %s", b[i].branch_id,
                                b[i].op, gid);
        else if (step != SQLITE_ROW)
            r = sqlite_store_fail(ss, "branch status");
        else if (strcmp((const char *)sqlite3_column_text(st, 0), want) != 0)
            r = store_set_error(STORE_CONFLICT, "store sqlite: branch %s/%s of %s is %s, not %s",
                                b[i].branch_id, b[i].op, gid, (const char *)sqlite3_column_text(st, 0), want);
        sqlite_store_release(st);
        if (r != STORE_OK)
            return r;
    }
    return STORE_OK;
}

store_result sqlite_store_update_branches(store *s, const char *gid, const char *expect_status,
                                          const trans_branch *b, size_t n,
                                          const char *expect_branch_status)
{
    sqlite_store *ss = sqlite_store_of(s);
    store_result r = sqlite_store_begin_write(ss);
    if (r != STORE_OK)
        return r;
    /* A late branch result for a global that moved on fails the guard and
     * changes nothing. */
    r = check_status_guard(ss, gid, expect_status);
    if (r == STORE_OK && expect_branch_status)
        r = check_branch_statuses(ss, gid, b, n, expect_branch_status);
    if (r == STORE_OK)
        r = update_branch_rows(ss, gid, b, n);
    return sqlite_store_end(ss, r);
}

/* ---- cron ------------------------------------------------------------------- */

/* a + b for a cron time, saturating instead of overflowing. */
static int64_t add_ms(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

/* The gid of the earliest due unfinished transaction into *gid (malloc'd),
 * or STORE_NOT_FOUND. */
static store_result pick_due(sqlite_store *ss, int64_t now_ms, char **gid)
{
    *gid = NULL;
    sqlite3_stmt *st = sqlite_store_stmt(
        ss, SQ_TRANS_CLAIM_PICK,
        "SELECT gid FROM trans_global INDEXED BY " SQLITE_STORE_DUE_INDEX
        " WHERE status IN " SQLITE_STORE_ACTIVE_STATUSES
        " AND next_cron_time <= ?1 ORDER BY next_cron_time, id LIMIT 1");
    if (st == NULL)
        return STORE_UNAVAILABLE;
    int rc = SQLITE_OK;
    sqlite_store_bind_int64(st, 1, now_ms, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    store_result r = STORE_OK;
    if (rc == SQLITE_DONE)
        r = STORE_NOT_FOUND;
    else if (rc != SQLITE_ROW)
        r = sqlite_store_fail(ss, "claim_due");
    else if (sqlite_store_column_text(st, 0, gid) != 0 || *gid == NULL)
        r = store_set_error(STORE_UNAVAILABLE, "store sqlite: out of memory");
    sqlite_store_release(st);
    return r;
}

static store_result set_lease(sqlite_store *ss, const char *gid, const char *owner,
                              int64_t until_ms)
{
    sqlite3_stmt *st = sqlite_store_stmt(
        ss, SQ_TRANS_CLAIM_LEASE,
        "UPDATE trans_global SET owner = ?2, next_cron_time = ?3 WHERE gid = ?1");
    if (st == NULL)
        return STORE_UNAVAILABLE;
    int rc = SQLITE_OK;
    sqlite_store_bind_text(st, 1, gid, &rc);
    sqlite_store_bind_text(st, 2, owner, &rc);
    sqlite_store_bind_int64(st, 3, until_ms, &rc);
    if (rc != SQLITE_OK) {
        sqlite_store_release(st);
        return sqlite_store_fail(ss, "claim_due");
    }
    return sqlite_store_run(ss, st, "claim_due", NULL);
}

store_result sqlite_store_claim_due(store *s, int64_t now_ms, int64_t lease_ms,
                                    const char *owner, trans_global **out)
{
    sqlite_store *ss = sqlite_store_of(s);
    store_result r = sqlite_store_begin_write(ss);
    if (r != STORE_OK)
        return r;
    /* Pick, lease and read back in one write transaction: no other caller
     * can pick the same row before the new next_cron_time is committed. */
    char *gid = NULL;
    trans_global *t = NULL;
    r = pick_due(ss, now_ms, &gid);
    if (r == STORE_OK)
        r = set_lease(ss, gid, owner, add_ms(now_ms, lease_ms));
    if (r == STORE_OK)
        r = load_trans(ss, gid, &t);
    free(gid);
    r = sqlite_store_end(ss, r);
    if (r == STORE_OK)
        *out = t;
    else
        trans_free(t);
    return r;
}

static store_result set_cron(sqlite_store *ss, const char *gid, int64_t next_cron_time,
                             int64_t next_cron_interval)
{
    sqlite3_stmt *st = sqlite_store_stmt(
        ss, SQ_TRANS_TOUCH,
        "UPDATE trans_global SET next_cron_time = ?2,"
        " next_cron_interval = CASE WHEN ?3 > 0 THEN ?3 ELSE next_cron_interval END"
        " WHERE gid = ?1");
    if (st == NULL)
        return STORE_UNAVAILABLE;
    int rc = SQLITE_OK;
    sqlite_store_bind_text(st, 1, gid, &rc);
    sqlite_store_bind_int64(st, 2, next_cron_time, &rc);
    sqlite_store_bind_int64(st, 3, next_cron_interval, &rc);
    if (rc != SQLITE_OK) {
        sqlite_store_release(st);
        return sqlite_store_fail(ss, "touch_cron");
    }
    return sqlite_store_run(ss, st, "touch_cron", NULL);
}

store_result sqlite_store_touch_cron(store *s, const char *gid, const char *owner,
                                     int64_t next_cron_time, int64_t next_cron_interval)
{
    sqlite_store *ss = sqlite_store_of(s);
    store_result r = sqlite_store_begin_write(ss);
    if (r != STORE_OK)
        return r;
    char *status = NULL, *holder = NULL;
    r = read_guard(ss, gid, &status, &holder);
    /* Guard (unfinished, lease holder) and write share the transaction. */
    if (r == STORE_OK && !status_is_active(status))
        r = store_set_error(STORE_CONFLICT, "store sqlite: %s is finished (%s)", gid,
                            status ? status : "(null)");
    else if (r == STORE_OK && owner != NULL && (holder == NULL || strcmp(holder, owner) != 0))
        r = store_set_error(STORE_CONFLICT, "store sqlite: %s is leased to %s, not %s", gid,
                            holder ? holder : "nobody", owner);
    if (r == STORE_OK)
        r = set_cron(ss, gid, next_cron_time, next_cron_interval);
    free(status);
    free(holder);
    return sqlite_store_end(ss, r);
}

/* How many unfinished transactions are due later than after_ms, counting at
 * most cap. */
static store_result count_late(sqlite_store *ss, int64_t after_ms, int64_t cap, int64_t *count)
{
    sqlite3_stmt *st = sqlite_store_stmt(
        ss, SQ_TRANS_RESET_COUNT,
        "SELECT count(*) FROM (SELECT 1 FROM trans_global INDEXED BY " SQLITE_STORE_DUE_INDEX
        " WHERE status IN " SQLITE_STORE_ACTIVE_STATUSES " AND next_cron_time > ?1 LIMIT ?2)");
    if (st == NULL)
        return STORE_UNAVAILABLE;
    int rc = SQLITE_OK;
    sqlite_store_bind_int64(st, 1, after_ms, &rc);
    sqlite_store_bind_int64(st, 2, cap, &rc);
    store_result r = STORE_OK;
    if (rc != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
        r = sqlite_store_fail(ss, "reset_cron_times");
    else
        *count = sqlite3_column_int64(st, 0);
    sqlite_store_release(st);
    return r;
}

/* Moves at most limit of them (the latest-due last) to now_ms. */
static store_result move_late(sqlite_store *ss, int64_t now_ms, int64_t after_ms, int limit,
                              int *moved)
{
    sqlite3_stmt *st = sqlite_store_stmt(
        ss, SQ_TRANS_RESET_MOVE,
        "UPDATE trans_global SET next_cron_time = ?1 WHERE id IN"
        " (SELECT id FROM trans_global INDEXED BY " SQLITE_STORE_DUE_INDEX
        " WHERE status IN " SQLITE_STORE_ACTIVE_STATUSES
        " AND next_cron_time > ?2 ORDER BY next_cron_time, id LIMIT ?3)");
    if (st == NULL)
        return STORE_UNAVAILABLE;
    int rc = SQLITE_OK;
    sqlite_store_bind_int64(st, 1, now_ms, &rc);
    sqlite_store_bind_int64(st, 2, after_ms, &rc);
    sqlite_store_bind_int64(st, 3, limit, &rc);
    if (rc != SQLITE_OK) {
        sqlite_store_release(st);
        return sqlite_store_fail(ss, "reset_cron_times");
    }
    return sqlite_store_run(ss, st, "reset_cron_times", moved);
}

store_result sqlite_store_reset_cron_times(store *s, int64_t now_ms, int64_t after_ms,
                                           int limit, int *moved, bool *has_remaining)
{
    sqlite_store *ss = sqlite_store_of(s);
    store_result r = sqlite_store_begin_write(ss);
    if (r != STORE_OK)
        return r;
    /* Count (up to limit + 1) before moving: a moved row may still qualify
     * afterwards (after_ms < 0), so counting after would never end. */
    int64_t threshold = add_ms(now_ms, after_ms);
    int64_t qualifying = 0;
    int changed = 0;
    r = count_late(ss, threshold, (int64_t)limit + 1, &qualifying);
    if (r == STORE_OK)
        r = move_late(ss, now_ms, threshold, limit, &changed);
    r = sqlite_store_end(ss, r);
    if (r == STORE_OK) {
        *moved = changed;
        *has_remaining = qualifying > changed;
    }
    return r;
}

/* ---- retention ------------------------------------------------------------ */

/* The rows delete_finished takes: finished, finish_time set and earlier
 * than :before, the oldest (by id) :limit of them. Both deletes below select
 * the same rows: the first does not change trans_global. */
#define FINISHED_BEFORE                                                              \
    " FROM trans_global WHERE status IN ('succeed', 'failed') AND finish_time > 0" \
    " AND finish_time < :before ORDER BY id LIMIT :limit"

static store_result delete_rows(sqlite_store *ss, sqlite_stmt_slot slot, const char *sql,
                                int64_t before_ms, int limit, int *changes)
{
    sqlite3_stmt *st = sqlite_store_stmt(ss, slot, sql);
    if (st == NULL)
        return STORE_UNAVAILABLE;
    int rc = SQLITE_OK;
    sqlite_store_bind_named_int64(st, ":before", before_ms, &rc);
    sqlite_store_bind_named_int64(st, ":limit", limit, &rc);
    if (rc != SQLITE_OK) {
        sqlite_store_release(st);
        return sqlite_store_fail(ss, "delete_finished bind");
    }
    return sqlite_store_run(ss, st, "delete_finished", changes);
}

store_result sqlite_store_delete_finished(store *s, int64_t before_ms, int limit, int *deleted)
{
    static const char branches[] = "DELETE FROM trans_branch WHERE gid IN (SELECT gid" FINISHED_BEFORE ")";
    static const char globals[] = "DELETE FROM trans_global WHERE id IN (SELECT id" FINISHED_BEFORE ")";
    sqlite_store *ss = sqlite_store_of(s);
    store_result r = sqlite_store_begin_write(ss);
    if (r != STORE_OK)
        return r;
    int ignored = 0;
    r = delete_rows(ss, SQ_DELETE_FINISHED_BRANCHES, branches, before_ms, limit, &ignored);
    if (r == STORE_OK)
        r = delete_rows(ss, SQ_DELETE_FINISHED_GLOBALS, globals, before_ms, limit, deleted);
    if (r != STORE_OK)
        *deleted = 0;
    return sqlite_store_end(ss, r);
}
