/*
 * store_sqlite_commit.c — group commit for the SQLite backend: the brackets
 * every op runs in, and the committer thread.
 *
 * An fsync costs far more than the statements of one op, so the changes of
 * many ops (of any thread) share one SQLite transaction, a "batch", and one
 * fsync:
 *   - A write op takes the connection, opens the batch if none is open
 *     (BEGIN IMMEDIATE), and runs inside its own SAVEPOINT: an op that fails
 *     its guard or an I/O is rolled back alone, the batch goes on.
 *   - The committer thread COMMITs the open batch. The connection runs with
 *     synchronous=NORMAL, so COMMIT appends the batch to the WAL file without
 *     syncing it; the committer then releases the connection and fsyncs the
 *     WAL itself. Ops go on meanwhile and fill the next batch, so batches
 *     grow with the load and the disk is never idle while work waits.
 *   - An op's "ticket" is the number of the batch that holds its change, or
 *     that a read saw (an open batch, or a committed one not yet fsynced).
 *     A caller gets STORE_OK only once that batch is durable — at once for a
 *     plain op, at store_sync (or through store_when_durable) for a thread
 *     that deferred durability (store.h).
 *   - A batch whose COMMIT fails is rolled back whole; every op in it, and
 *     every read that saw it, reports STORE_UNAVAILABLE. A failed fsync
 *     leaves the file in an unknown state: the handle then refuses every
 *     further op (the process must be restarted, and SQLite recovers the
 *     file from its WAL).
 * Batches are numbered from 1 and finish in order: batch n+1 commits only
 * after batch n was committed or lost, so "durable_seq >= n" means batch n
 * is finished.
 */
#include "store_sqlite_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A store_when_durable registration, waiting for its batch. */
typedef struct sqlite_durable_cb {
    uint64_t ticket;
    store_durable_fn done;
    void *arg;
    struct sqlite_durable_cb *next;
} sqlite_durable_cb;

/* What a deferring thread still has to wait for (store_sync). */
static _Thread_local struct {
    const sqlite_store *ss;
    uint64_t ticket;
} pending;

/* ---- batch outcomes (under gc_mu) --------------------------------------- */

/* Records that batch seq is lost; it counts as finished once durable_seq
 * reaches it (batches finish in order, see finish_upto). */
static void mark_lost(sqlite_store *ss, uint64_t seq, const char *why)
{
    pthread_mutex_lock(&ss->gc_mu);
    ss->batch_failed[seq % SQLITE_BATCH_RING] = 1;
    ss->last_failed_seq = seq;
    snprintf(ss->last_fail_text, sizeof(ss->last_fail_text), "%s", why);
    pthread_mutex_unlock(&ss->gc_mu);
}

/* Every batch up to seq is finished: durable, or marked lost before. */
static void finish_upto(sqlite_store *ss, uint64_t seq)
{
    pthread_mutex_lock(&ss->gc_mu);
    if (seq > atomic_load(&ss->durable_seq))
        atomic_store(&ss->durable_seq, seq);
    pthread_cond_broadcast(&ss->gc_done);
    pthread_mutex_unlock(&ss->gc_mu);
}

static int batch_was_lost(const sqlite_store *ss, uint64_t seq)
{
    if (atomic_load(&ss->durable_seq) - seq < SQLITE_BATCH_RING)
        return ss->batch_failed[seq % SQLITE_BATCH_RING];
    return seq <= ss->last_failed_seq; /* too old to know: assume the worst */
}

static store_result lost_error(const sqlite_store *ss, const char *why)
{
    return store_set_error(STORE_UNAVAILABLE, "store %s: the commit of this change failed: %s",
                           ss->base.display_uri, why);
}

/* Waits until batch seq is finished; STORE_OK if it is durable. */
static store_result wait_durable(sqlite_store *ss, uint64_t seq)
{
    pthread_mutex_lock(&ss->gc_mu);
    while (atomic_load(&ss->durable_seq) < seq)
        pthread_cond_wait(&ss->gc_done, &ss->gc_mu);
    int lost = batch_was_lost(ss, seq);
    char why[sizeof(ss->last_fail_text)];
    snprintf(why, sizeof(why), "%s", ss->last_fail_text);
    pthread_mutex_unlock(&ss->gc_mu);
    return lost ? lost_error(ss, why) : STORE_OK;
}

/* ---- opening and ending an op (under the connection lock) --------------- */

/* Runs one of the bracket statements, prepared once: SQLITE_OK or the error. */
static int bracket(sqlite_store *ss, sqlite_stmt_slot slot, const char *sql)
{
    sqlite3_stmt *st = sqlite_store_stmt(ss, slot, sql);
    if (st == NULL)
        return SQLITE_ERROR;
    int rc = sqlite3_step(st);
    sqlite_store_release(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static store_result open_batch(sqlite_store *ss)
{
    if (ss->broken[0])
        return store_set_error(STORE_UNAVAILABLE, "store %s: %s (restart dtmq)", ss->base.display_uri,
                               ss->broken);
    if (ss->batch_open)
        return STORE_OK;
    if (bracket(ss, SQ_BEGIN_IMMEDIATE, "BEGIN IMMEDIATE") != SQLITE_OK)
        return sqlite_store_fail(ss, "BEGIN IMMEDIATE");
    ss->batch_open = 1;
    ss->batch_seq++;
    pthread_mutex_lock(&ss->gc_mu);
    ss->batch_failed[ss->batch_seq % SQLITE_BATCH_RING] = 0;
    ss->opened_seq = ss->batch_seq;
    pthread_cond_signal(&ss->gc_wake);
    pthread_mutex_unlock(&ss->gc_mu);
    return STORE_OK;
}

/* SQLite rolled the whole batch back by itself (some I/O errors do). */
static void note_batch_rolled_back(sqlite_store *ss)
{
    if (!ss->batch_open || !sqlite3_get_autocommit(ss->db))
        return;
    ss->batch_open = 0;
    mark_lost(ss, ss->batch_seq, sqlite3_errmsg(ss->db)); /* the committer finishes it */
}

store_result sqlite_store_begin_write(sqlite_store *ss)
{
    pthread_mutex_lock(&ss->lock);
    store_result r = open_batch(ss);
    if (r == STORE_OK && bracket(ss, SQ_SAVEPOINT, "SAVEPOINT op") != SQLITE_OK) {
        r = sqlite_store_fail(ss, "SAVEPOINT");
        note_batch_rolled_back(ss);
    }
    if (r != STORE_OK) {
        pthread_mutex_unlock(&ss->lock);
        return r;
    }
    ss->in_write = 1;
    return STORE_OK;
}

store_result sqlite_store_begin_read(sqlite_store *ss)
{
    pthread_mutex_lock(&ss->lock);
    /* Inside an open batch a read sees its changes (and then waits for
     * them, see settle); otherwise a read transaction gives one snapshot. */
    if (!ss->batch_open && bracket(ss, SQ_BEGIN, "BEGIN") != SQLITE_OK) {
        store_result r = sqlite_store_fail(ss, "BEGIN");
        pthread_mutex_unlock(&ss->lock);
        return r;
    }
    ss->in_write = 0;
    return STORE_OK;
}

/* Ends a write op's savepoint; returns r or the failure that ended it. */
static store_result end_write(sqlite_store *ss, store_result r)
{
    ss->in_write = 0;
    if (r == STORE_OK && bracket(ss, SQ_RELEASE, "RELEASE op") != SQLITE_OK)
        r = sqlite_store_fail(ss, "RELEASE");
    if (r != STORE_OK && !sqlite3_get_autocommit(ss->db)) {
        /* The error text was recorded before; if even this fails, SQLite
         * has rolled the batch back, which note_batch_rolled_back sees. */
        if (bracket(ss, SQ_ROLLBACK_TO, "ROLLBACK TO op") == SQLITE_OK)
            (void)bracket(ss, SQ_RELEASE, "RELEASE op");
    }
    note_batch_rolled_back(ss);
    if (!ss->batch_open && r == STORE_OK) /* the batch was lost under us */
        r = store_set_error(STORE_UNAVAILABLE, "store %s: the batch holding this change was rolled back",
                            ss->base.display_uri);
    return r;
}

/* Ends a read that ran outside any batch. */
static store_result end_plain_read(sqlite_store *ss, store_result r)
{
    if (r == STORE_OK && bracket(ss, SQ_COMMIT, "COMMIT") != SQLITE_OK)
        r = sqlite_store_fail(ss, "COMMIT");
    if (!sqlite3_get_autocommit(ss->db))
        (void)sqlite3_exec(ss->db, "ROLLBACK", NULL, NULL, NULL);
    return r;
}

/* Hands the op's ticket to its caller: waits for it, or, for a deferring
 * thread, keeps it for store_sync / store_when_durable. */
static store_result settle(sqlite_store *ss, uint64_t ticket, store_result r)
{
    if (ticket <= atomic_load(&ss->durable_seq) && (ticket == 0 || !batch_was_lost(ss, ticket)))
        return r;
    if (store_durability_deferred()) {
        if (pending.ss != ss || pending.ticket < ticket) {
            pending.ss = ss;
            pending.ticket = ticket;
        }
        return r;
    }
    store_result d = wait_durable(ss, ticket);
    return d == STORE_OK ? r : d;
}

store_result sqlite_store_end(sqlite_store *ss, store_result r)
{
    uint64_t ticket;
    if (ss->in_write) {
        r = end_write(ss, r);
        ticket = ss->batch_open ? ss->batch_seq : 0;
    } else {
        /* what the read saw: the open batch, or committed ones that may
         * not be fsynced yet */
        ticket = ss->batch_open ? ss->batch_seq : ss->committed_seq;
        if (!ss->batch_open)
            r = end_plain_read(ss, r);
    }
    pthread_mutex_unlock(&ss->lock);
    return settle(ss, ticket, r);
}

/* ---- durability for deferring threads ------------------------------------ */

store_result sqlite_store_sync(store *s)
{
    sqlite_store *ss = sqlite_store_of(s);
    if (pending.ss != ss || pending.ticket == 0)
        return STORE_OK;
    uint64_t ticket = pending.ticket;
    pending.ticket = 0;
    return wait_durable(ss, ticket);
}

int sqlite_store_when_durable(store *s, store_durable_fn done, void *arg)
{
    sqlite_store *ss = sqlite_store_of(s);
    if (pending.ss != ss || pending.ticket == 0)
        return 0;
    sqlite_durable_cb *cb = malloc(sizeof(*cb));
    if (cb == NULL) /* cannot queue it: wait here instead */
        return sqlite_store_sync(s) == STORE_OK ? 0 : -1;
    *cb = (sqlite_durable_cb){.ticket = pending.ticket, .done = done, .arg = arg};
    pending.ticket = 0;
    pthread_mutex_lock(&ss->gc_mu);
    int finished = atomic_load(&ss->durable_seq) >= cb->ticket;
    int lost = finished && batch_was_lost(ss, cb->ticket);
    /* Callbacks run in the order they were registered: behind others, this
     * one waits its turn even when its batch is finished (the committer is
     * woken to run them). */
    int queue = !finished || ss->callbacks != NULL;
    if (queue) {
        *ss->callbacks_tail = cb;
        ss->callbacks_tail = &cb->next;
        pthread_cond_signal(&ss->gc_wake);
    }
    pthread_mutex_unlock(&ss->gc_mu);
    if (queue)
        return 1;
    free(cb);
    if (!lost)
        return 0;
    lost_error(ss, "an earlier batch");
    return -1;
}

/* Whether the first registration can run (under gc_mu). */
static int callbacks_ready(const sqlite_store *ss)
{
    return ss->callbacks != NULL && ss->callbacks->ticket <= atomic_load(&ss->durable_seq);
}

/* Calls the registrations whose batch has finished (committer thread, no
 * lock held while they run). */
static void run_callbacks(sqlite_store *ss)
{
    sqlite_durable_cb *ready = NULL, **ready_tail = &ready;
    pthread_mutex_lock(&ss->gc_mu);
    uint64_t durable = atomic_load(&ss->durable_seq);
    /* in registration order, up to the first whose batch is not finished */
    while (ss->callbacks != NULL && ss->callbacks->ticket <= durable) {
        sqlite_durable_cb *cb = ss->callbacks;
        ss->callbacks = cb->next;
        cb->next = NULL;
        cb->ticket = (uint64_t)batch_was_lost(ss, cb->ticket); /* reused: 1 = lost */
        *ready_tail = cb;
        ready_tail = &cb->next;
    }
    if (ss->callbacks == NULL)
        ss->callbacks_tail = &ss->callbacks;
    pthread_mutex_unlock(&ss->gc_mu);
    while (ready) {
        sqlite_durable_cb *cb = ready;
        ready = cb->next;
        cb->done(cb->arg, cb->ticket ? STORE_UNAVAILABLE : STORE_OK);
        free(cb);
    }
}

/* ---- the committer ------------------------------------------------------- */

/* COMMITs the open batch (under the connection lock): the batch is in the
 * WAL, not yet fsynced. Returns its number, or 0 when it was lost. */
static uint64_t commit_batch(sqlite_store *ss)
{
    uint64_t seq = ss->batch_seq;
    ss->batch_open = 0;
    if (bracket(ss, SQ_COMMIT, "COMMIT") == SQLITE_OK) {
        ss->committed_seq = seq;
        return seq;
    }
    char why[200];
    snprintf(why, sizeof(why), "COMMIT: %s", sqlite3_errmsg(ss->db));
    if (!sqlite3_get_autocommit(ss->db))
        (void)sqlite3_exec(ss->db, "ROLLBACK", NULL, NULL, NULL);
    mark_lost(ss, seq, why);
    return 0;
}

/* fsyncs the WAL (no lock held: the next batch fills meanwhile). A failed
 * fsync leaves the file's state unknown: the handle refuses further ops. */
static void make_durable(sqlite_store *ss, uint64_t seq)
{
    if (fsync(ss->wal_fd) != 0) {
        char why[200];
        snprintf(why, sizeof(why), "fsync of the WAL failed: %s", strerror(errno));
        pthread_mutex_lock(&ss->lock);
        snprintf(ss->broken, sizeof(ss->broken), "%s", why);
        pthread_mutex_unlock(&ss->lock);
        mark_lost(ss, seq, why);
    }
    finish_upto(ss, seq);
}

static void *committer_main(void *arg)
{
    sqlite_store *ss = arg;
    for (;;) {
        pthread_mutex_lock(&ss->gc_mu);
        while (ss->opened_seq == atomic_load(&ss->durable_seq) && !ss->gc_stopping &&
               !callbacks_ready(ss))
            pthread_cond_wait(&ss->gc_wake, &ss->gc_mu);
        int stop = ss->gc_stopping && ss->opened_seq == atomic_load(&ss->durable_seq);
        pthread_mutex_unlock(&ss->gc_mu);
        if (stop)
            break;
        pthread_mutex_lock(&ss->lock);
        uint64_t seq = ss->batch_open ? commit_batch(ss) : 0;
        uint64_t upto = ss->batch_open ? 0 : ss->batch_seq; /* the rest was lost */
        pthread_mutex_unlock(&ss->lock);
        if (seq != 0)
            make_durable(ss, seq);
        else
            finish_upto(ss, upto);
        run_callbacks(ss);
    }
    run_callbacks(ss); /* every batch is finished: none is left */
    return NULL;
}

/* Opens the WAL file for the committer's fsync, and makes its directory
 * entry durable once. */
static int open_wal(sqlite_store *ss)
{
    const char *wal = sqlite3_filename_wal(sqlite3_db_filename(ss->db, "main"));
    if (wal == NULL || (ss->wal_fd = open(wal, O_RDONLY | O_CLOEXEC)) < 0)
        return -1;
    char *copy = strdup(wal);
    int dir = copy ? open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    int rc = dir >= 0 && fsync(dir) == 0 ? 0 : -1;
    if (dir >= 0)
        close(dir);
    free(copy);
    return rc;
}

int sqlite_store_commit_start(sqlite_store *ss)
{
    ss->wal_fd = -1;
    ss->callbacks_tail = &ss->callbacks;
    if (open_wal(ss) != 0 || pthread_mutex_init(&ss->gc_mu, NULL) != 0 ||
        pthread_cond_init(&ss->gc_wake, NULL) != 0 || pthread_cond_init(&ss->gc_done, NULL) != 0 ||
        pthread_create(&ss->committer, NULL, committer_main, ss) != 0)
        return -1; /* sqlite_store_commit_stop cleans up what was made */
    ss->committer_running = 1;
    return 0;
}

void sqlite_store_commit_stop(sqlite_store *ss)
{
    if (ss->committer_running) {
        pthread_mutex_lock(&ss->gc_mu);
        ss->gc_stopping = 1;
        pthread_cond_signal(&ss->gc_wake);
        pthread_mutex_unlock(&ss->gc_mu);
        pthread_join(ss->committer, NULL); /* commits what is open first */
        ss->committer_running = 0;
    }
    if (ss->wal_fd >= 0)
        close(ss->wal_fd);
    ss->wal_fd = -1;
}
