/*
 * store.h — the one interface every transaction store implements.
 *
 * A store keeps global transactions with their branches, and a small key/value
 * table (msg topics and their subscribers). Two backends exist:
 *   - store_sqlite.c : embedded default, an SQLite file in WAL mode;
 *   - store_mongo.c  : MongoDB through libmongoc, one document per global
 *                      transaction with its branches embedded.
 * Both pass the same conformance suite (tests/store/conformance.c).
 *
 * Contract, true of every backend:
 *   - Durable on return: a call that returns STORE_OK has the change committed
 *     (SQLite: the transaction is committed with synchronous=FULL; MongoDB:
 *     acknowledged with the configured write concern, journaled by default),
 *     unless the calling thread asked for deferred durability (see
 *     store_defer_durability below: then durable at its next store_sync).
 *   - Every call that changes a global transaction is atomic: it happens whole
 *     or not at all, and the guard it names (gid absent, expected status,
 *     expected KV version) is checked in the same atomic step as the write.
 *   - A store handle is safe to use from several threads at once.
 *   - Out parameters that return data are owned by the caller; free globals
 *     with trans_free(), lists with store_trans_list_clear(), KV entries with
 *     store_kv_list_clear(), cursors with free().
 *   - Error text: when a call fails with STORE_UNAVAILABLE or STORE_INVALID, the
 *     store keeps a description that store_last_error() returns (thread-local).
 */
#ifndef DTMQ_STORE_H
#define DTMQ_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/model/trans.h"

typedef enum store_result {
    STORE_OK = 0,
    STORE_NOT_FOUND,   /* no such gid / key, or nothing due */
    STORE_DUPLICATE,   /* the gid, (branch_id, op) or key exists already; nothing changed */
    STORE_CONFLICT,    /* the guard (expected status / version) did not hold; nothing changed */
    STORE_UNAVAILABLE, /* the backend could not be reached or failed an I/O */
    STORE_INVALID,     /* the arguments were rejected */
} store_result;

/* Called after every store operation with its name ("create_trans", ...) and
 * how long it took; for metrics. NULL (the default) turns it off. Set it
 * once, before the store is used from several threads. */
typedef void (*store_observer)(const char *op, double seconds);
void store_set_observer(store_observer fn);

/* Human-readable name of a result ("ok", "not found", ...). */
const char *store_result_name(store_result r);

typedef struct store store; /* opaque handle */

/*
 * Opens a store from a URI:
 *   sqlite:PATH            an SQLite file (created if missing), e.g. sqlite:./dtmq.db
 *   mongodb://...          a MongoDB deployment; the database is the URI's path
 *                          component ("/dtmq" if absent), e.g. mongodb://127.0.0.1:27017/dtmq
 * Creates tables / collections and indexes if missing, then pings the backend.
 * On failure returns NULL and writes one line naming the problem into err.
 */
store *store_open(const char *uri, char *err, size_t errlen);
/* Closes the handle and frees everything it holds. NULL is allowed. */
void store_close(store *s);

/* "sqlite" or "mongodb". */
const char *store_driver(const store *s);
/* The URI with any password replaced by "***" (safe to log and report). */
const char *store_display_uri(const store *s);
/* Last error text of this thread's most recent failed call, "" if none. */
const char *store_last_error(void);

store_result store_ping(store *s);

/* ---- durability: group commit ------------------------------------------ */

/*
 * The SQLite backend commits the changes of many threads together, one fsync
 * for all of them (group commit). A call still returns only once its change
 * is durable, unless its thread turned deferred durability on:
 *
 *   store_defer_durability(true)  this thread's later calls return as soon as
 *       their change is applied (visible to every later call of any thread),
 *       possibly before it is durable. The thread must call store_sync before
 *       anything outside the store may depend on what it wrote or read: an
 *       answer to a client, a branch call, a Kafka message.
 *   store_sync(s)  waits until every change this thread made, and every
 *       change it saw in a read, is durable. STORE_UNAVAILABLE when one of
 *       them was lost (its group's commit failed): the store then holds none
 *       of that group, and the caller must forget what it derived from it.
 *
 * A deferring thread uses one store. The setting is per thread and off by
 * default. On MongoDB every change is durable on return and store_sync
 * returns STORE_OK at once.
 */
void store_defer_durability(bool on);
bool store_durability_deferred(void);
store_result store_sync(store *s);

/*
 * store_sync without blocking, for a deferring thread that must not wait
 * (the engine's workers): returns 0 when everything this thread made or saw
 * is durable already (done is not called), -1 when some of it was lost
 * (done is not called; store_last_error says why), and 1 when it is still
 * being committed: then done(arg, result) is called exactly once, later, on
 * the store's commit thread, with STORE_OK or STORE_UNAVAILABLE. done must be
 * quick and must not call the store.
 */
typedef void (*store_durable_fn)(void *arg, store_result result);
int store_when_durable(store *s, store_durable_fn done, void *arg);

/* Deletes every transaction and KV entry (tests only). */
store_result store_drop_all(store *s);

/* ---- global transactions ---------------------------------------------- */

/*
 * Creates t with its branches if no transaction with t->gid exists.
 * STORE_DUPLICATE (and nothing changed) when the gid exists. The caller sets
 * every field it wants stored, including times; the store copies, t stays the
 * caller's.
 */
store_result store_create_trans(store *s, const trans_global *t);

/* Reads one transaction with all its branches in insertion order. */
store_result store_find_trans(store *s, const char *gid, trans_global **out);

/* A status change: the fields to set along with the new status. */
typedef struct store_status_change {
    const char *status;          /* new status, required */
    int64_t update_time;         /* required */
    int64_t finish_time;         /* 0 = leave unchanged */
    int64_t rollback_time;       /* 0 = leave unchanged */
    const char *rollback_reason; /* NULL = leave unchanged */
    const char *result;          /* NULL = leave unchanged */
    const char *ext_data;        /* NULL = leave unchanged */
    int64_t next_cron_time;      /* 0 = leave unchanged */
    int64_t next_cron_interval;  /* 0 = leave unchanged */
    const char *owner;           /* NULL = leave unchanged; set with next_cron_time to take the lease */
    const char *custom_data;     /* NULL = leave unchanged */
} store_status_change;

/*
 * Compare-and-set: applies change only if the transaction's status is
 * expect_status. STORE_CONFLICT if it is not, STORE_NOT_FOUND if no such gid.
 * The new status may equal the old one (a guarded field update).
 */
store_result store_change_status(store *s, const char *gid, const char *expect_status,
                                 const store_status_change *change);

/*
 * Appends branches to a transaction whose status is expect_status, in one
 * atomic step (DTM's registerBranch). STORE_CONFLICT if the status differs,
 * STORE_NOT_FOUND if no such gid, STORE_DUPLICATE (nothing appended) if any
 * (branch_id, op) already exists in the transaction or repeats within b.
 */
store_result store_append_branches(store *s, const char *gid, const char *expect_status,
                                   const trans_branch *b, size_t n);

/*
 * Updates existing branches of gid, matched by (branch_id, op): sets status,
 * update_time, finish_time and rollback_time from each element (url and data
 * are not changed). Only when the global's status is expect_status
 * (STORE_CONFLICT otherwise), so a finished or force-stopped transaction is
 * never changed by a late result. STORE_NOT_FOUND if the gid or any
 * (branch_id, op) does not exist (then nothing is changed).
 */
store_result store_update_branches(store *s, const char *gid, const char *expect_status,
                                   const trans_branch *b, size_t n);
/*
 * The same, also guarded by each branch's own status: only while every one
 * of them is expect_branch_status (STORE_CONFLICT otherwise, nothing
 * changed). For results that may race with another writer of the same
 * branch, such as a Kafka reply nobody waits for (it must not overwrite a
 * result already recorded).
 */
store_result store_update_branches_if(store *s, const char *gid, const char *expect_status,
                                      const trans_branch *b, size_t n,
                                      const char *expect_branch_status);

/*
 * Claims one due transaction: status in (prepared, submitted, aborting) and
 * next_cron_time <= now_ms, the one due earliest first. In the same atomic
 * step sets owner = owner and next_cron_time = now_ms + lease_ms, so two
 * callers (threads or processes) never claim the same transaction until its
 * lease runs out. Returns the claimed transaction (with branches, after the
 * update) in *out, or STORE_NOT_FOUND when nothing is due.
 */
store_result store_claim_due(store *s, int64_t now_ms, int64_t lease_ms, const char *owner,
                             trans_global **out);

/*
 * Sets next_cron_time (and next_cron_interval when > 0) of an unfinished
 * transaction. If owner is not NULL, only while the transaction's owner is
 * owner (STORE_CONFLICT otherwise: someone else holds the lease now).
 */
store_result store_touch_cron(store *s, const char *gid, const char *owner,
                              int64_t next_cron_time, int64_t next_cron_interval);

/*
 * DTM's resetCronTime: unfinished transactions whose next_cron_time is later
 * than now_ms + after_ms get next_cron_time = now_ms, at most limit of them.
 * *moved gets how many changed, *has_remaining whether more would qualify.
 */
store_result store_reset_cron_times(store *s, int64_t now_ms, int64_t after_ms, int limit,
                                    int *moved, bool *has_remaining);

/*
 * Retention: deletes up to limit (1..10000) finished transactions (succeed or
 * failed) whose finish_time is set and earlier than before_ms, with their
 * branches, oldest first where the backend can tell. *deleted gets how many.
 * A deleted gid is forgotten: submitting it again creates a new transaction.
 */
store_result store_delete_finished(store *s, int64_t before_ms, int limit, int *deleted);

/* ---- listing ------------------------------------------------------------ */

typedef struct store_filter {
    const char *gid;           /* exact match, NULL = any */
    const char *status;        /* NULL = any */
    const char *trans_type;    /* NULL = any */
    int64_t create_time_start; /* inclusive, 0 = unbounded */
    int64_t create_time_end;   /* inclusive, 0 = unbounded */
} store_filter;

typedef struct store_trans_list {
    trans_global **items; /* owned; branches are NOT loaded (branch_count 0) */
    size_t count;
} store_trans_list;

/*
 * Lists transactions newest first. cursor is NULL or "" for the first page,
 * else the next_cursor of the previous page. limit 1..1000. *next_cursor gets
 * a malloc'd opaque string, "" when this was the last page. Paging through
 * all pages returns every matching transaction exactly once, even while new
 * ones are created (those may or may not appear).
 */
store_result store_list_trans(store *s, const store_filter *filter, const char *cursor,
                              int limit, store_trans_list *out, char **next_cursor);
void store_trans_list_clear(store_trans_list *l);

/* How many transactions are in each status (for the admin page and metrics). */
typedef struct store_status_counts {
    int64_t prepared, submitted, aborting, succeed, failed;
} store_status_counts;
store_result store_count_by_status(store *s, store_status_counts *out);

/* ---- key/value (msg topics) -------------------------------------------- */

typedef struct store_kv {
    char *cat;
    char *key;
    char *value;
    int64_t version; /* 1 on create, +1 on every update */
    int64_t create_time;
    int64_t update_time;
} store_kv;

typedef struct store_kv_list {
    store_kv *items;
    size_t count;
} store_kv_list;

/* STORE_DUPLICATE if (cat, key) exists. */
store_result store_kv_create(store *s, const char *cat, const char *key, const char *value);
/* Reads one entry into a one-element list. STORE_NOT_FOUND if absent. */
store_result store_kv_get(store *s, const char *cat, const char *key, store_kv_list *out);
/* Sets value only if the entry's version is expect_version; version += 1. */
store_result store_kv_update(store *s, const char *cat, const char *key, const char *value,
                             int64_t expect_version);
store_result store_kv_delete(store *s, const char *cat, const char *key);
/* Entries of one category in key order; paging as store_list_trans. */
store_result store_kv_scan(store *s, const char *cat, const char *cursor, int limit,
                           store_kv_list *out, char **next_cursor);
void store_kv_list_clear(store_kv_list *l);

#endif
