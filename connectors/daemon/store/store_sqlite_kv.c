/*
 * store_sqlite_kv.c — the key/value table of the SQLite store (msg topics and
 * their subscribers): create, get, versioned update, delete and scan.
 *
 * Writes run in one BEGIN IMMEDIATE transaction each (see
 * store_sqlite_internal.h): the version compare of kv_update and the
 * existence check that tells NOT_FOUND from CONFLICT see the same row the
 * write changes. The store stamps create/update times itself.
 *
 * kv_scan pages in key order; its cursor is the last key returned (keys are
 * never empty, so "" means "from the start").
 */
#include "store_sqlite_internal.h"

#include <stdlib.h>
#include <string.h>

#define KV_COLUMNS "cat, k, v, version, create_time, update_time"

/* Reads a row laid out as KV_COLUMNS into e. 0, or -1 on out-of-memory. */
static int read_kv_row(sqlite3_stmt *st, store_kv *e)
{
    memset(e, 0, sizeof(*e));
    int failed = sqlite_store_column_text(st, 0, &e->cat) != 0 ||
                 sqlite_store_column_text(st, 1, &e->key) != 0 ||
                 sqlite_store_column_text(st, 2, &e->value) != 0;
    e->version = sqlite3_column_int64(st, 3);
    e->create_time = sqlite3_column_int64(st, 4);
    e->update_time = sqlite3_column_int64(st, 5);
    if (failed) {
        free(e->cat);
        free(e->key);
        free(e->value);
        memset(e, 0, sizeof(*e));
    }
    return failed ? -1 : 0;
}

/* Steps st (rows laid out as KV_COLUMNS) into out, at most limit entries;
 * *more tells whether a further row exists. out->items must hold limit. */
static store_result collect_kv_rows(sqlite_store *ss, sqlite3_stmt *st, size_t limit,
                                    store_kv_list *out, bool *more)
{
    int rc;
    *more = false;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->count == limit) {
            *more = true;
            return STORE_OK;
        }
        if (read_kv_row(st, &out->items[out->count]) != 0)
            return store_set_error(STORE_UNAVAILABLE, "store sqlite: out of memory");
        out->count++;
    }
    return rc == SQLITE_DONE ? STORE_OK : sqlite_store_fail(ss, "kv read");
}

store_result sqlite_store_kv_create(store *s, const char *cat, const char *key,
                                    const char *value)
{
    sqlite_store *ss = sqlite_store_of(s);
    store_result r = sqlite_store_begin_write(ss);
    if (r != STORE_OK)
        return r;
    sqlite3_stmt *st = sqlite_store_stmt(
        ss, SQ_KV_INSERT,
        "INSERT INTO kv (" KV_COLUMNS ") VALUES (?1, ?2, ?3, 1, ?4, ?4)"
        " ON CONFLICT (cat, k) DO NOTHING");
    int rc = SQLITE_OK, changes = 0;
    if (st == NULL) {
        r = STORE_UNAVAILABLE;
    } else {
        sqlite_store_bind_text(st, 1, cat, &rc);
        sqlite_store_bind_text(st, 2, key, &rc);
        sqlite_store_bind_text(st, 3, value, &rc);
        sqlite_store_bind_int64(st, 4, dtmq_now_ms(), &rc);
        r = rc == SQLITE_OK ? sqlite_store_run(ss, st, "kv_create", &changes)
                            : sqlite_store_fail(ss, "kv_create");
        sqlite_store_release(st);
    }
    /* ON CONFLICT DO NOTHING + changes(): the "key absent" guard. */
    if (r == STORE_OK && changes == 0)
        r = store_set_error(STORE_DUPLICATE, "store sqlite: kv %s/%s exists", cat, key);
    return sqlite_store_end(ss, r);
}

store_result sqlite_store_kv_get(store *s, const char *cat, const char *key, store_kv_list *out)
{
    sqlite_store *ss = sqlite_store_of(s);
    store_result r = sqlite_store_begin_read(ss);
    if (r != STORE_OK)
        return r;
    sqlite3_stmt *st = sqlite_store_stmt(
        ss, SQ_KV_GET, "SELECT " KV_COLUMNS " FROM kv WHERE cat = ?1 AND k = ?2");
    bool more = false;
    int rc = SQLITE_OK;
    if (st == NULL) {
        r = STORE_UNAVAILABLE;
    } else if ((out->items = calloc(1, sizeof(*out->items))) == NULL) {
        r = store_set_error(STORE_UNAVAILABLE, "store sqlite: out of memory");
    } else {
        sqlite_store_bind_text(st, 1, cat, &rc);
        sqlite_store_bind_text(st, 2, key, &rc);
        r = rc == SQLITE_OK ? collect_kv_rows(ss, st, 1, out, &more) : sqlite_store_fail(ss, "kv_get");
        if (r == STORE_OK && out->count == 0)
            r = STORE_NOT_FOUND;
    }
    sqlite_store_release(st);
    r = sqlite_store_end(ss, r);
    if (r != STORE_OK)
        store_kv_list_clear(out);
    return r;
}

/* STORE_OK when (cat, key) exists, else STORE_NOT_FOUND. */
static store_result kv_exists(sqlite_store *ss, const char *cat, const char *key)
{
    sqlite3_stmt *st =
        sqlite_store_stmt(ss, SQ_KV_VERSION, "SELECT version FROM kv WHERE cat = ?1 AND k = ?2");
    if (st == NULL)
        return STORE_UNAVAILABLE;
    int rc = SQLITE_OK;
    sqlite_store_bind_text(st, 1, cat, &rc);
    sqlite_store_bind_text(st, 2, key, &rc);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    store_result r = rc == SQLITE_ROW    ? STORE_OK
                     : rc == SQLITE_DONE ? STORE_NOT_FOUND
                                         : sqlite_store_fail(ss, "kv read");
    sqlite_store_release(st);
    return r;
}

store_result sqlite_store_kv_update(store *s, const char *cat, const char *key,
                                    const char *value, int64_t expect_version)
{
    sqlite_store *ss = sqlite_store_of(s);
    store_result r = sqlite_store_begin_write(ss);
    if (r != STORE_OK)
        return r;
    /* The version compare is in the UPDATE's WHERE: compare-and-set. */
    sqlite3_stmt *st = sqlite_store_stmt(
        ss, SQ_KV_UPDATE,
        "UPDATE kv SET v = ?3, version = version + 1, update_time = ?5"
        " WHERE cat = ?1 AND k = ?2 AND version = ?4");
    int rc = SQLITE_OK, changes = 0;
    if (st == NULL) {
        r = STORE_UNAVAILABLE;
    } else {
        sqlite_store_bind_text(st, 1, cat, &rc);
        sqlite_store_bind_text(st, 2, key, &rc);
        sqlite_store_bind_text(st, 3, value, &rc);
        sqlite_store_bind_int64(st, 4, expect_version, &rc);
        sqlite_store_bind_int64(st, 5, dtmq_now_ms(), &rc);
        r = rc == SQLITE_OK ? sqlite_store_run(ss, st, "kv_update", &changes)
                            : sqlite_store_fail(ss, "kv_update");
        sqlite_store_release(st);
    }
    /* Nothing changed: tell a missing key from a stale version. Still inside
     * the write transaction, so the answer matches what the UPDATE saw. */
    if (r == STORE_OK && changes == 0) {
        r = kv_exists(ss, cat, key);
        if (r == STORE_OK)
            r = store_set_error(STORE_CONFLICT, "store sqlite: kv %s/%s is not at version %lld",
                                cat, key, (long long)expect_version);
    }
    return sqlite_store_end(ss, r);
}

store_result sqlite_store_kv_delete(store *s, const char *cat, const char *key)
{
    sqlite_store *ss = sqlite_store_of(s);
    store_result r = sqlite_store_begin_write(ss);
    if (r != STORE_OK)
        return r;
    sqlite3_stmt *st =
        sqlite_store_stmt(ss, SQ_KV_DELETE, "DELETE FROM kv WHERE cat = ?1 AND k = ?2");
    int rc = SQLITE_OK, changes = 0;
    if (st == NULL) {
        r = STORE_UNAVAILABLE;
    } else {
        sqlite_store_bind_text(st, 1, cat, &rc);
        sqlite_store_bind_text(st, 2, key, &rc);
        r = rc == SQLITE_OK ? sqlite_store_run(ss, st, "kv_delete", &changes)
                            : sqlite_store_fail(ss, "kv_delete");
        sqlite_store_release(st);
    }
    if (r == STORE_OK && changes == 0)
        r = STORE_NOT_FOUND;
    return sqlite_store_end(ss, r);
}

/* One page of cat's entries after key cursor; runs with the handle locked. */
static store_result kv_scan_page(sqlite_store *ss, const char *cat, const char *cursor, int limit,
                                 store_kv_list *out, char **next_cursor)
{
    sqlite3_stmt *st = sqlite_store_stmt(
        ss, SQ_KV_SCAN,
        "SELECT " KV_COLUMNS " FROM kv WHERE cat = ?1 AND k > ?2 ORDER BY k LIMIT ?3");
    if (st == NULL)
        return STORE_UNAVAILABLE;
    bool more = false;
    int rc = SQLITE_OK;
    store_result r;
    if ((out->items = calloc((size_t)limit, sizeof(*out->items))) == NULL) {
        r = store_set_error(STORE_UNAVAILABLE, "store sqlite: out of memory");
    } else {
        sqlite_store_bind_text(st, 1, cat, &rc);
        sqlite_store_bind_text(st, 2, cursor, &rc);
        sqlite_store_bind_int64(st, 3, (int64_t)limit + 1, &rc); /* +1: is there more? */
        r = rc == SQLITE_OK ? collect_kv_rows(ss, st, (size_t)limit, out, &more)
                            : sqlite_store_fail(ss, "kv_scan");
    }
    sqlite_store_release(st);
    if (out->count == 0) { /* an empty page holds no array */
        free(out->items);
        out->items = NULL;
    }
    if (r == STORE_OK) {
        const char *next = more ? out->items[out->count - 1].key : "";
        if ((*next_cursor = sqlite_store_strdup(next)) == NULL)
            r = STORE_UNAVAILABLE;
    }
    return r;
}

store_result sqlite_store_kv_scan(store *s, const char *cat, const char *cursor, int limit,
                                  store_kv_list *out, char **next_cursor)
{
    sqlite_store *ss = sqlite_store_of(s);
    store_result r = sqlite_store_begin_read(ss);
    if (r != STORE_OK)
        return r;
    r = sqlite_store_end(ss, kv_scan_page(ss, cat, cursor, limit, out, next_cursor));
    if (r != STORE_OK) {
        store_kv_list_clear(out);
        free(*next_cursor);
        *next_cursor = NULL;
    }
    return r;
}
