/*
 * store_sqlite_list.c — paging through global transactions in the SQLite store
 * (store_list_trans), newest first.
 *
 * Paging invariant: ids are AUTOINCREMENT, so they only grow and are never
 * reused. A page is "id < cursor ORDER BY id DESC", and the cursor is the id
 * of the page's last row; rows created meanwhile get larger ids and can never
 * land on a later page, so every matching row is returned exactly once. The
 * query fetches limit + 1 rows: the extra row only tells whether another page
 * exists, so the last page has next_cursor "" even when it is exactly full.
 *
 * The WHERE clause is assembled from constant fragments, one per filter that
 * is set, so SQLite can use the matching index; every value is bound to a
 * named parameter, never written into the SQL.
 */
#include "store_sqlite_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_set(const char *v)
{
    return v != NULL && v[0] != '\0';
}

/* Parses a cursor this file produced: a positive decimal id. 0 for "first
 * page" (""), -1 when it is not a cursor of ours. */
static int parse_cursor(const char *cursor, int64_t *id)
{
    *id = 0;
    if (cursor[0] == '\0')
        return 0;
    if (cursor[0] < '0' || cursor[0] > '9')
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(cursor, &end, 10);
    if (errno != 0 || *end != '\0' || v <= 0)
        return -1;
    *id = (int64_t)v;
    return 0;
}

/* Writes the SELECT for this filter into sql (size len). */
static void build_list_sql(char *sql, size_t len, const store_filter *f, int64_t after_id)
{
    snprintf(sql, len, "SELECT id, %s FROM trans_global WHERE 1 = 1%s%s%s%s%s%s"
                       " ORDER BY id DESC LIMIT :limit",
             SQLITE_TRANS_COLUMNS,
             is_set(f->gid) ? " AND gid = :gid" : "",
             is_set(f->status) ? " AND status = :status" : "",
             is_set(f->trans_type) ? " AND trans_type = :trans_type" : "",
             f->create_time_start != 0 ? " AND create_time >= :ct_start" : "",
             f->create_time_end != 0 ? " AND create_time <= :ct_end" : "",
             after_id != 0 ? " AND id < :cursor" : "");
}

/* Binds every value; build_list_sql decided which names the SQL has. */
static int bind_list_params(sqlite3_stmt *st, const store_filter *f, int64_t after_id, int limit)
{
    int rc = SQLITE_OK;
    sqlite_store_bind_named_text(st, ":gid", f->gid, &rc);
    sqlite_store_bind_named_text(st, ":status", f->status, &rc);
    sqlite_store_bind_named_text(st, ":trans_type", f->trans_type, &rc);
    sqlite_store_bind_named_int64(st, ":ct_start", f->create_time_start, &rc);
    sqlite_store_bind_named_int64(st, ":ct_end", f->create_time_end, &rc);
    sqlite_store_bind_named_int64(st, ":cursor", after_id, &rc);
    sqlite_store_bind_named_int64(st, ":limit", (int64_t)limit + 1, &rc);
    return rc;
}

/* Steps st into out (up to limit items); *last_id gets the id of the last
 * item kept and *more whether a further row exists. */
static store_result collect_rows(sqlite_store *ss, sqlite3_stmt *st, int limit,
                                 store_trans_list *out, int64_t *last_id, bool *more)
{
    int rc;
    *more = false;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->count == (size_t)limit) {
            *more = true;
            return STORE_OK;
        }
        trans_global *t = sqlite_store_read_trans_row(st, 1);
        if (t == NULL)
            return STORE_UNAVAILABLE;
        *last_id = sqlite3_column_int64(st, 0);
        out->items[out->count++] = t;
    }
    return rc == SQLITE_DONE ? STORE_OK : sqlite_store_fail(ss, "list");
}

/* The page query; runs with the handle locked. */
static store_result list_page(sqlite_store *ss, const store_filter *filter, int64_t after_id,
                              int limit, store_trans_list *out, char **next_cursor)
{
    char sql[1024];
    build_list_sql(sql, sizeof(sql), filter, after_id);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(ss->db, sql, -1, &st, NULL) != SQLITE_OK)
        return sqlite_store_fail(ss, "list");
    store_result r = STORE_OK;
    int64_t last_id = 0;
    bool more = false;
    out->items = calloc((size_t)limit, sizeof(*out->items));
    if (out->items == NULL)
        r = store_set_error(STORE_UNAVAILABLE, "store sqlite: out of memory");
    else if (bind_list_params(st, filter, after_id, limit) != SQLITE_OK)
        r = sqlite_store_fail(ss, "list");
    else
        r = collect_rows(ss, st, limit, out, &last_id, &more);
    (void)sqlite3_finalize(st); /* repeats a step error already reported */
    if (out->count == 0) { /* an empty page holds no array */
        free(out->items);
        out->items = NULL;
    }
    if (r == STORE_OK) {
        char buf[24] = "";
        if (more)
            snprintf(buf, sizeof(buf), "%lld", (long long)last_id);
        if ((*next_cursor = sqlite_store_strdup(buf)) == NULL)
            r = STORE_UNAVAILABLE;
    }
    return r;
}

store_result sqlite_store_list_trans(store *s, const store_filter *filter, const char *cursor,
                                     int limit, store_trans_list *out, char **next_cursor)
{
    int64_t after_id = 0;
    if (parse_cursor(cursor, &after_id) != 0)
        return store_set_error(STORE_INVALID, "list: '%.40s' is not a cursor of this store",
                               cursor);
    sqlite_store *ss = sqlite_store_of(s);
    store_result r = sqlite_store_begin_read(ss);
    if (r != STORE_OK)
        return r;
    r = sqlite_store_end(ss, list_page(ss, filter, after_id, limit, out, next_cursor));
    if (r != STORE_OK) {
        store_trans_list_clear(out);
        free(*next_cursor);
        *next_cursor = NULL;
    }
    return r;
}

/* One GROUP BY over the status column (the (status, next_cron_time) index
 * covers it), inside a read transaction so the counts are one snapshot. */
store_result sqlite_store_count_by_status(store *s, store_status_counts *out)
{
    sqlite_store *ss = sqlite_store_of(s);
    store_result r = sqlite_store_begin_read(ss);
    if (r != STORE_OK)
        return r;
    sqlite3_stmt *st = sqlite_store_stmt(ss, SQ_TRANS_COUNT_BY_STATUS,
                                         "SELECT status, COUNT(*) FROM trans_global GROUP BY status");
    if (st == NULL) {
        r = STORE_UNAVAILABLE;
    } else {
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            int64_t *slot = store_status_counter(out, (const char *)sqlite3_column_text(st, 0));
            if (slot)
                *slot = sqlite3_column_int64(st, 1);
        }
        if (rc != SQLITE_DONE)
            r = sqlite_store_fail(ss, "count_by_status");
    }
    sqlite_store_release(st);
    return sqlite_store_end(ss, r);
}
