/*
 * store_sqlite.c — the embedded transaction store: one SQLite file in WAL mode
 * (store.h's "sqlite:PATH"). This file holds the handle: opening the file with
 * durable settings, creating the schema, the prepared-statement cache, the
 * transaction brackets every op runs in, bind/read helpers and the ops table.
 * The ops themselves live in store_sqlite_trans.c, store_sqlite_list.c and
 * store_sqlite_kv.c; store_sqlite_internal.h explains the concurrency model.
 */
#include "store_sqlite_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long a call waits for another connection (thread or process) holding
 * the write lock before it gives up with STORE_UNAVAILABLE. */
#define SQLITE_STORE_BUSY_TIMEOUT_MS 5000

/* Tables and indexes; IF NOT EXISTS so opening an existing file is a no-op.
 * Times are INTEGER milliseconds since the epoch, 0 when unset. AUTOINCREMENT
 * keeps ids strictly increasing (never reused), which list paging and branch
 * insertion order rely on. */
static const char SQLITE_STORE_SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS trans_global ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " gid TEXT NOT NULL UNIQUE,"
    " trans_type TEXT NOT NULL,"
    " status TEXT NOT NULL,"
    " query_prepared TEXT, protocol TEXT, custom_data TEXT, options TEXT,"
    " steps TEXT, payloads TEXT, ext_data TEXT, result TEXT,"
    " rollback_reason TEXT, owner TEXT,"
    " create_time INTEGER NOT NULL DEFAULT 0,"
    " update_time INTEGER NOT NULL DEFAULT 0,"
    " finish_time INTEGER NOT NULL DEFAULT 0,"
    " rollback_time INTEGER NOT NULL DEFAULT 0,"
    " next_cron_time INTEGER NOT NULL DEFAULT 0,"
    " next_cron_interval INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS trans_global_status_cron"
    " ON trans_global (status, next_cron_time);"
    "CREATE INDEX IF NOT EXISTS trans_global_create_time ON trans_global (create_time);"
    /* The cron's queue: only unfinished rows, in due order (rowid last), so
     * claim_due reads one index entry instead of sorting the backlog. */
    "CREATE INDEX IF NOT EXISTS " SQLITE_STORE_DUE_INDEX " ON trans_global (next_cron_time)"
    " WHERE status IN " SQLITE_STORE_ACTIVE_STATUSES ";"
    "CREATE TABLE IF NOT EXISTS trans_branch ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " gid TEXT NOT NULL,"
    " branch_id TEXT NOT NULL,"
    " op TEXT NOT NULL,"
    " url TEXT,"
    " data BLOB,"
    " status TEXT NOT NULL,"
    " create_time INTEGER NOT NULL DEFAULT 0,"
    " update_time INTEGER NOT NULL DEFAULT 0,"
    " finish_time INTEGER NOT NULL DEFAULT 0,"
    " rollback_time INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE (gid, branch_id, op));"
    "CREATE TABLE IF NOT EXISTS kv ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " cat TEXT NOT NULL,"
    " k TEXT NOT NULL,"
    " v TEXT,"
    " version INTEGER NOT NULL,"
    " create_time INTEGER NOT NULL DEFAULT 0,"
    " update_time INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE (cat, k));";

/* ---- statements ------------------------------------------------------------ */

store_result sqlite_store_fail(sqlite_store *ss, const char *what)
{
    return store_set_error(STORE_UNAVAILABLE, "store %s: %s: %s", ss->base.display_uri, what,
                           sqlite3_errmsg(ss->db));
}

sqlite3_stmt *sqlite_store_stmt(sqlite_store *ss, sqlite_stmt_slot slot, const char *sql)
{
    if (ss->stmts[slot] == NULL &&
        sqlite3_prepare_v3(ss->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &ss->stmts[slot], NULL) !=
            SQLITE_OK) {
        sqlite_store_fail(ss, "prepare");
        ss->stmts[slot] = NULL;
    }
    return ss->stmts[slot];
}

void sqlite_store_release(sqlite3_stmt *st)
{
    if (st == NULL)
        return;
    /* reset's return repeats the last step's error, already handled there. */
    (void)sqlite3_reset(st);
    (void)sqlite3_clear_bindings(st);
}

store_result sqlite_store_run(sqlite_store *ss, sqlite3_stmt *st, const char *what, int *changes)
{
    store_result r = STORE_OK;
    if (sqlite3_step(st) != SQLITE_DONE)
        r = sqlite_store_fail(ss, what);
    else if (changes != NULL)
        *changes = sqlite3_changes(ss->db);
    sqlite_store_release(st);
    return r;
}

void sqlite_store_bind_text(sqlite3_stmt *st, int idx, const char *v, int *rc)
{
    if (*rc != SQLITE_OK)
        return;
    *rc = v ? sqlite3_bind_text(st, idx, v, -1, SQLITE_STATIC) : sqlite3_bind_null(st, idx);
}

void sqlite_store_bind_int64(sqlite3_stmt *st, int idx, int64_t v, int *rc)
{
    if (*rc == SQLITE_OK)
        *rc = sqlite3_bind_int64(st, idx, (sqlite3_int64)v);
}

void sqlite_store_bind_blob(sqlite3_stmt *st, int idx, const void *v, size_t len, int *rc)
{
    if (*rc != SQLITE_OK)
        return;
    *rc = (v != NULL && len > 0) ? sqlite3_bind_blob64(st, idx, v, (sqlite3_uint64)len, SQLITE_STATIC)
                                 : sqlite3_bind_null(st, idx);
}

void sqlite_store_bind_named_text(sqlite3_stmt *st, const char *name, const char *v, int *rc)
{
    int idx = sqlite3_bind_parameter_index(st, name);
    if (idx > 0)
        sqlite_store_bind_text(st, idx, v, rc);
}

void sqlite_store_bind_named_int64(sqlite3_stmt *st, const char *name, int64_t v, int *rc)
{
    int idx = sqlite3_bind_parameter_index(st, name);
    if (idx > 0)
        sqlite_store_bind_int64(st, idx, v, rc);
}

int sqlite_store_column_text(sqlite3_stmt *st, int col, char **out)
{
    *out = NULL;
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return 0;
    const unsigned char *text = sqlite3_column_text(st, col);
    if (text == NULL) /* not SQL NULL, so out of memory converting it */
        return -1;
    size_t len = (size_t)sqlite3_column_bytes(st, col);
    *out = malloc(len + 1);
    if (*out == NULL)
        return -1;
    memcpy(*out, text, len);
    (*out)[len] = '\0';
    return 0;
}

int sqlite_store_column_blob(sqlite3_stmt *st, int col, unsigned char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return 0;
    const void *bytes = sqlite3_column_blob(st, col);
    int n = sqlite3_column_bytes(st, col);
    if (n == 0)
        return 0;
    if (bytes == NULL)
        return -1;
    /* One spare NUL byte, like trans_branch_copy, so text bodies can be
     * printed; data_len does not count it. */
    *out = malloc((size_t)n + 1);
    if (*out == NULL)
        return -1;
    memcpy(*out, bytes, (size_t)n);
    (*out)[n] = '\0';
    *len = (size_t)n;
    return 0;
}

char *sqlite_store_strdup(const char *s)
{
    char *copy = strdup(s);
    if (copy == NULL)
        store_set_error(STORE_UNAVAILABLE, "store sqlite: out of memory");
    return copy;
}

/* ---- handle ----------------------------------------------------------------- */

static void sqlite_store_free(sqlite_store *ss)
{
    /* finalize returns the statement's last error, already reported; NULL
     * is a no-op. */
    sqlite_store_commit_stop(ss);
    for (int i = 0; i < SQ_SLOT_COUNT; i++)
        (void)sqlite3_finalize(ss->stmts[i]);
    /* Every statement is finalized, so close cannot be refused as busy; an
     * open transaction (failed setup) is rolled back. */
    (void)sqlite3_close(ss->db);
    pthread_mutex_destroy(&ss->lock);
    free(ss);
}

static void sqlite_store_close(store *s)
{
    /* store_close frees display_uri. */
    sqlite_store_free(sqlite_store_of(s));
}

static store_result sqlite_store_ping(store *s)
{
    sqlite_store *ss = sqlite_store_of(s);
    pthread_mutex_lock(&ss->lock);
    store_result r = STORE_UNAVAILABLE;
    /* Reads the file (schema and one page), unlike "SELECT 1". */
    sqlite3_stmt *st = sqlite_store_stmt(ss, SQ_PING, "SELECT id FROM trans_global LIMIT 1");
    if (st != NULL) {
        int rc = sqlite3_step(st);
        r = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? STORE_OK : sqlite_store_fail(ss, "ping");
        sqlite_store_release(st);
    }
    pthread_mutex_unlock(&ss->lock);
    return r;
}

static store_result sqlite_store_drop_all(store *s)
{
    sqlite_store *ss = sqlite_store_of(s);
    store_result r = sqlite_store_begin_write(ss);
    if (r != STORE_OK)
        return r;
    if (sqlite3_exec(ss->db, "DELETE FROM trans_branch; DELETE FROM trans_global; DELETE FROM kv;",
                     NULL, NULL, NULL) != SQLITE_OK)
        r = sqlite_store_fail(ss, "drop_all");
    return sqlite_store_end(ss, r);
}

static const store_ops sqlite_store_ops = {
    .driver = "sqlite",
    .close = sqlite_store_close,
    .ping = sqlite_store_ping,
    .sync = sqlite_store_sync,
    .when_durable = sqlite_store_when_durable,
    .drop_all = sqlite_store_drop_all,
    .create_trans = sqlite_store_create_trans,
    .find_trans = sqlite_store_find_trans,
    .change_status = sqlite_store_change_status,
    .append_branches = sqlite_store_append_branches,
    .update_branches = sqlite_store_update_branches,
    .claim_due = sqlite_store_claim_due,
    .touch_cron = sqlite_store_touch_cron,
    .reset_cron_times = sqlite_store_reset_cron_times,
    .list_trans = sqlite_store_list_trans,
    .count_by_status = sqlite_store_count_by_status,
    .delete_finished = sqlite_store_delete_finished,
    .kv_create = sqlite_store_kv_create,
    .kv_get = sqlite_store_kv_get,
    .kv_update = sqlite_store_kv_update,
    .kv_delete = sqlite_store_kv_delete,
    .kv_scan = sqlite_store_kv_scan,
};

/* Switches the file to WAL (persistent, so usually already set). Fails when
 * SQLite picks another mode, e.g. for ":memory:", which could not be durable
 * or shared. */
static int sqlite_store_enable_wal(sqlite3 *db, const char **why)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            const unsigned char *mode = sqlite3_column_text(st, 0);
            rc = (mode != NULL && strcmp((const char *)mode, "wal") == 0) ? SQLITE_OK : SQLITE_ERROR;
            if (rc != SQLITE_OK)
                *why = "journal_mode=WAL is not supported for this file";
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_ERROR;
            *why = "PRAGMA journal_mode returned no mode";
        }
    }
    (void)sqlite3_finalize(st); /* repeats the step's error, kept in rc */
    return rc;
}

/* Connection settings and schema. Returns an SQLite code; *why gets a fixed
 * explanation when the failure is not SQLite's own (else sqlite3_errmsg). */
static int sqlite_store_setup(sqlite3 *db, const char **why)
{
    int rc = sqlite3_busy_timeout(db, SQLITE_STORE_BUSY_TIMEOUT_MS);
    if (rc == SQLITE_OK)
        rc = sqlite_store_enable_wal(db, why);
    /* NORMAL: COMMIT does not fsync the WAL; the committer does, outside
     * the connection lock, before any op of the batch gets STORE_OK (group
     * commit, store_sqlite_commit.c). Checkpoints still sync. */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    /* Several processes may open a new file at once: the write lock makes
     * the schema creation one step, the later ones find the tables. */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, SQLITE_STORE_SCHEMA, NULL, NULL, NULL);
    /* On failure the transaction stays open so sqlite3_errmsg still names
     * the cause; closing the connection rolls it back. */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    return rc;
}

store *store_sqlite_open(const char *path, char *err, size_t errlen)
{
    sqlite_store *ss = calloc(1, sizeof(*ss));
    size_t uri_len = strlen("sqlite:") + strlen(path) + 1;
    char *display = malloc(uri_len);
    if (ss == NULL || display == NULL || pthread_mutex_init(&ss->lock, NULL) != 0) {
        snprintf(err, errlen, "store: cannot open sqlite:%s: out of memory", path);
        free(display);
        free(ss);
        return NULL;
    }
    snprintf(display, uri_len, "sqlite:%s", path);
    ss->wal_fd = -1;
    ss->base.ops = &sqlite_store_ops;
    ss->base.display_uri = display;

    const char *why = NULL;
    int rc = sqlite3_open_v2(path, &ss->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc == SQLITE_OK)
        rc = sqlite_store_setup(ss->db, &why);
    if (rc == SQLITE_OK && sqlite_store_commit_start(ss) != 0) {
        rc = SQLITE_ERROR;
        why = "cannot start the committer thread";
    }
    if (rc != SQLITE_OK) {
        if (why == NULL)
            why = ss->db ? sqlite3_errmsg(ss->db) : "out of memory";
        snprintf(err, errlen, "store: cannot open %s: %s", display, why);
        free(display);
        sqlite_store_free(ss);
        return NULL;
    }
    return &ss->base;
}
