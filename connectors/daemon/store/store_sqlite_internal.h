/*
 * store_sqlite_internal.h — what the store_sqlite*.c files share (private to
 * the SQLite backend).
 *
 *   store_sqlite.c        the handle: open/close, schema, statement cache,
 *                         transaction brackets, bind/read helpers, ops table;
 *   store_sqlite_trans.c  global transactions and their branches;
 *   store_sqlite_list.c   paging through global transactions;
 *   store_sqlite_kv.c     the key/value table.
 *
 * Concurrency model: one sqlite3 connection per handle, used only while
 * holding the handle's mutex (the connection is opened NOMUTEX). Every call
 * that writes runs in its own SAVEPOINT inside a batch opened with BEGIN
 * IMMEDIATE, which takes SQLite's write lock before the first read, so a
 * guard checked inside the bracket still holds when the write happens — also
 * against other processes sharing the file (they wait on busy_timeout for the
 * lock). The committer thread COMMITs each batch: group commit, see
 * store_sqlite_commit.c. Reads outside a batch run in a deferred transaction
 * for one consistent snapshot.
 */
#ifndef DTMQ_STORE_SQLITE_INTERNAL_H
#define DTMQ_STORE_SQLITE_INTERNAL_H

#include "store_backend.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>

/* How many finished batches remember whether they were lost. */
#define SQLITE_BATCH_RING 4096

/* Slots of the prepared-statement cache; each statement is prepared on first
 * use from the SQL text its caller passes and kept until close. */
typedef enum sqlite_stmt_slot {
    SQ_PING,
    SQ_TRANS_INSERT,
    SQ_TRANS_BY_GID,
    SQ_TRANS_GUARD,
    SQ_TRANS_CHANGE_STATUS,
    SQ_TRANS_CLAIM_PICK,
    SQ_TRANS_CLAIM_LEASE,
    SQ_TRANS_TOUCH,
    SQ_TRANS_RESET_COUNT,
    SQ_TRANS_RESET_MOVE,
    SQ_BRANCH_INSERT,
    SQ_BRANCH_BY_GID,
    SQ_BRANCH_UPDATE,
    SQ_BRANCH_STATUS,
    SQ_KV_INSERT,
    SQ_KV_GET,
    SQ_KV_VERSION,
    SQ_KV_UPDATE,
    SQ_KV_DELETE,
    SQ_KV_SCAN,
    SQ_TRANS_COUNT_BY_STATUS,
    SQ_DELETE_FINISHED_BRANCHES,
    SQ_DELETE_FINISHED_GLOBALS,
    SQ_BEGIN_IMMEDIATE, /* the brackets (store_sqlite_commit.c), run per op */
    SQ_BEGIN,
    SQ_COMMIT,
    SQ_SAVEPOINT,
    SQ_RELEASE,
    SQ_ROLLBACK_TO,
    SQ_SLOT_COUNT
} sqlite_stmt_slot;

typedef struct sqlite_store {
    struct store base; /* must stay first: store_backend.h casts through it */
    pthread_mutex_t lock; /* the connection, and the fields up to gc_mu */
    sqlite3 *db;
    sqlite3_stmt *stmts[SQ_SLOT_COUNT];
    int in_write;        /* the op holding the lock is a write (has a savepoint) */
    int batch_open;      /* a batch (BEGIN IMMEDIATE) is open */
    uint64_t batch_seq;  /* number of the open batch, else of the last one */
    uint64_t committed_seq; /* the last batch COMMITted (maybe not fsynced yet) */
    char broken[200];    /* set when an fsync failed: every op is refused */
    int wal_fd;          /* the WAL file, for the committer's fsync */

    pthread_mutex_t gc_mu;  /* the fields below */
    pthread_cond_t gc_wake; /* to the committer: a batch opened, or stop */
    pthread_cond_t gc_done; /* to waiters: durable_seq moved */
    uint64_t opened_seq;    /* the last batch opened */
    _Atomic uint64_t durable_seq; /* every batch up to it is finished (durable or lost) */
    uint64_t last_failed_seq;
    unsigned char batch_failed[SQLITE_BATCH_RING];
    char last_fail_text[200];
    struct sqlite_durable_cb *callbacks; /* store_when_durable, oldest first */
    struct sqlite_durable_cb **callbacks_tail;
    int gc_stopping;
    int committer_running;
    pthread_t committer;
} sqlite_store;

static inline sqlite_store *sqlite_store_of(store *s)
{
    return (sqlite_store *)s;
}

/* Shared statuses of unfinished transactions, as an SQL list (a constant,
 * never a value taken from a caller). */
#define SQLITE_STORE_ACTIVE_STATUSES "('prepared', 'submitted', 'aborting')"
/* Partial index over the unfinished rows by next_cron_time. The cron queries
 * name it (INDEXED BY): without statistics SQLite would rather pick the
 * (status, next_cron_time) index and sort every due row for each claim. */
#define SQLITE_STORE_DUE_INDEX "trans_global_due"

/* ---- brackets and group commit (store_sqlite_commit.c) ----------------- */

/* Locks the handle. A write then runs in a savepoint of the open batch
 * (opening one if needed); a read outside any batch in BEGIN. On failure the
 * handle is unlocked again and the error text is set. */
store_result sqlite_store_begin_write(sqlite_store *ss);
store_result sqlite_store_begin_read(sqlite_store *ss);
/* Ends what begin_* opened (a write's savepoint is released when r is
 * STORE_OK, else rolled back), unlocks, and waits until the change (or what
 * the read saw) is durable, unless the thread defers durability. Returns r,
 * or STORE_UNAVAILABLE if its batch was lost. */
store_result sqlite_store_end(sqlite_store *ss, store_result r);
/* store_sync and store_when_durable for this backend. */
store_result sqlite_store_sync(store *s);
int sqlite_store_when_durable(store *s, store_durable_fn done, void *arg);
/* Starts / stops the committer thread (stop commits the open batch first).
 * start: 0 or -1; stop is safe when start failed or never ran. */
int sqlite_store_commit_start(sqlite_store *ss);
void sqlite_store_commit_stop(sqlite_store *ss);

/* ---- statements (store_sqlite.c) ---------------------------------------- */

/* The cached statement of slot (prepared from sql on first use), reset and
 * with no bindings. NULL on failure, with the error text set. */
sqlite3_stmt *sqlite_store_stmt(sqlite_store *ss, sqlite_stmt_slot slot, const char *sql);
/* Resets st and clears its bindings, so it holds no pointer into caller
 * memory and no read lock. NULL is allowed; releasing twice is harmless. */
void sqlite_store_release(sqlite3_stmt *st);
/* Records SQLite's current error for what (e.g. "create_trans") and returns
 * STORE_UNAVAILABLE. */
store_result sqlite_store_fail(sqlite_store *ss, const char *what);
/* Steps st once expecting SQLITE_DONE, stores sqlite3_changes() in *changes
 * (may be NULL) and releases st. */
store_result sqlite_store_run(sqlite_store *ss, sqlite3_stmt *st, const char *what, int *changes);

/* Binders: each does nothing once *rc is not SQLITE_OK, so a run of binds
 * needs one check at the end. Text and blob are bound SQLITE_STATIC: the
 * caller's memory must outlive the step (it does: statements are released
 * before the op returns). A NULL text binds SQL NULL; a blob of length 0
 * binds SQL NULL. */
void sqlite_store_bind_text(sqlite3_stmt *st, int idx, const char *v, int *rc);
void sqlite_store_bind_int64(sqlite3_stmt *st, int idx, int64_t v, int *rc);
void sqlite_store_bind_blob(sqlite3_stmt *st, int idx, const void *v, size_t len, int *rc);
/* Same, by parameter name (":gid"); a name the statement lacks is skipped. */
void sqlite_store_bind_named_text(sqlite3_stmt *st, const char *name, const char *v, int *rc);
void sqlite_store_bind_named_int64(sqlite3_stmt *st, const char *name, int64_t v, int *rc);

/* Readers: copy column col of the current row into *out (malloc'd; SQL NULL
 * gives NULL; a zero-length blob gives NULL with *len 0). -1 on
 * out-of-memory. */
int sqlite_store_column_text(sqlite3_stmt *st, int col, char **out);
int sqlite_store_column_blob(sqlite3_stmt *st, int col, unsigned char **out, size_t *len);

/* malloc'd copy of s, or NULL on out-of-memory (sets the error text). */
char *sqlite_store_strdup(const char *s);

/* ---- ops (store_sqlite_trans.c, store_sqlite_list.c, store_sqlite_kv.c) - */

store_result sqlite_store_create_trans(store *s, const trans_global *t);
store_result sqlite_store_find_trans(store *s, const char *gid, trans_global **out);
store_result sqlite_store_change_status(store *s, const char *gid, const char *expect_status,
                                        const store_status_change *change);
store_result sqlite_store_append_branches(store *s, const char *gid, const char *expect_status,
                                          const trans_branch *b, size_t n);
store_result sqlite_store_update_branches(store *s, const char *gid, const char *expect_status,
                                          const trans_branch *b, size_t n,
                                          const char *expect_branch_status);
store_result sqlite_store_claim_due(store *s, int64_t now_ms, int64_t lease_ms,
                                    const char *owner, trans_global **out);
store_result sqlite_store_touch_cron(store *s, const char *gid, const char *owner,
                                     int64_t next_cron_time, int64_t next_cron_interval);
store_result sqlite_store_delete_finished(store *s, int64_t before_ms, int limit, int *deleted);
store_result sqlite_store_reset_cron_times(store *s, int64_t now_ms, int64_t after_ms,
                                           int limit, int *moved, bool *has_remaining);

store_result sqlite_store_count_by_status(store *s, store_status_counts *out);
store_result sqlite_store_list_trans(store *s, const store_filter *filter, const char *cursor,
                                     int limit, store_trans_list *out, char **next_cursor);

store_result sqlite_store_kv_create(store *s, const char *cat, const char *key,
                                    const char *value);
store_result sqlite_store_kv_get(store *s, const char *cat, const char *key,
                                 store_kv_list *out);
store_result sqlite_store_kv_update(store *s, const char *cat, const char *key,
                                    const char *value, int64_t expect_version);
store_result sqlite_store_kv_delete(store *s, const char *cat, const char *key);
store_result sqlite_store_kv_scan(store *s, const char *cat, const char *cursor, int limit,
                                  store_kv_list *out, char **next_cursor);

/* Shared by store_sqlite_trans.c and store_sqlite_list.c: the trans_global
 * columns in the order the row helpers bind and read them. */
#define SQLITE_TRANS_COLUMNS                                                          \
    "gid, trans_type, status, query_prepared, protocol, custom_data, options, steps, " \
    "payloads, ext_data, result, rollback_reason, owner, create_time, update_time, "  \
    "finish_time, rollback_time, next_cron_time, next_cron_interval"
#define SQLITE_TRANS_COLUMN_COUNT 19

/* Reads a row laid out as SQLITE_TRANS_COLUMNS starting at column first into
 * a new trans_global (no branches). NULL on out-of-memory (error text set). */
trans_global *sqlite_store_read_trans_row(sqlite3_stmt *st, int first);

#endif
