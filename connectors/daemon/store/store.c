/*
 * store.c — opens the backend a URI names and dispatches the public store API
 * (store.h) to it; also holds the helpers every backend shares (error text,
 * list clean-up, argument checks done once here instead of in each backend).
 */
#include "store_backend.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char last_error[512];
static _Thread_local bool durability_deferred;
static store_observer observer;

void store_defer_durability(bool on)
{
    durability_deferred = on;
}

bool store_durability_deferred(void)
{
    return durability_deferred;
}

void store_set_observer(store_observer fn)
{
    observer = fn;
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs one backend call, timing it for the observer. */
#define OBSERVED(op, call)                                                     \
    do {                                                                       \
        double start_ = observer ? seconds_now() : 0;                          \
        store_result r_ = (call);                                              \
        if (observer)                                                          \
            observer(op, seconds_now() - start_);                              \
        return r_;                                                             \
    } while (0)

store_result store_set_error(store_result result, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    return result;
}

/* Every public call starts with no error text, so a caller never reads an
 * earlier call's text (only UNAVAILABLE and INVALID set one). */
static void clear_error(void)
{
    last_error[0] = '\0';
}

const char *store_last_error(void)
{
    return last_error;
}

const char *store_result_name(store_result r)
{
    switch (r) {
    case STORE_OK: return "ok";
    case STORE_NOT_FOUND: return "not found";
    case STORE_DUPLICATE: return "duplicate";
    case STORE_CONFLICT: return "conflict";
    case STORE_UNAVAILABLE: return "unavailable";
    case STORE_INVALID: return "invalid";
    }
    return "unknown";
}

store *store_open(const char *uri, char *err, size_t errlen)
{
    if (uri == NULL || uri[0] == '\0') {
        snprintf(err, errlen, "store: empty store URI (want sqlite:PATH or mongodb://...)");
        return NULL;
    }
    if (strncmp(uri, "sqlite:", 7) == 0) {
        if (uri[7] == '\0') {
            snprintf(err, errlen, "store: '%s' names no file (want sqlite:PATH)", uri);
            return NULL;
        }
        return store_sqlite_open(uri + 7, err, errlen);
    }
    if (strncmp(uri, "mongodb://", 10) == 0 || strncmp(uri, "mongodb+srv://", 14) == 0)
        return store_mongo_open(uri, err, errlen);
    snprintf(err, errlen, "store: unsupported store URI '%.64s' (want sqlite:PATH or mongodb://...)",
             uri);
    return NULL;
}

void store_close(store *s)
{
    if (s == NULL)
        return;
    char *display = s->display_uri;
    s->ops->close(s);
    free(display);
}

const char *store_driver(const store *s)
{
    return s->ops->driver;
}

const char *store_display_uri(const store *s)
{
    return s->display_uri ? s->display_uri : "";
}

store_result store_ping(store *s)
{
    clear_error();
    OBSERVED("ping", s->ops->ping(s));
}

store_result store_sync(store *s)
{
    clear_error();
    /* not observed: most calls find nothing to wait for */
    return s->ops->sync ? s->ops->sync(s) : STORE_OK;
}

int store_when_durable(store *s, store_durable_fn done, void *arg)
{
    clear_error();
    return s->ops->when_durable ? s->ops->when_durable(s, done, arg) : 0;
}

store_result store_drop_all(store *s)
{
    clear_error();
    OBSERVED("drop_all", s->ops->drop_all(s));
}

static int is_blank(const char *v)
{
    return v == NULL || v[0] == '\0';
}

store_result store_create_trans(store *s, const trans_global *t)
{
    clear_error();
    if (t == NULL || is_blank(t->gid) || is_blank(t->status) || is_blank(t->trans_type))
        return store_set_error(STORE_INVALID, "create: gid, trans_type and status are required");
    for (size_t i = 0; i < t->branch_count; i++) {
        const trans_branch *b = &t->branches[i];
        if (is_blank(b->branch_id) || is_blank(b->op) || is_blank(b->status))
            return store_set_error(STORE_INVALID, "create: branch %zu lacks branch_id, op or status", i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(t->branches[j].branch_id, b->branch_id) == 0 &&
                strcmp(t->branches[j].op, b->op) == 0)
                return store_set_error(STORE_INVALID, "create: branch %s/%s appears twice",
                                       b->branch_id, b->op);
    }
    OBSERVED("create_trans", s->ops->create_trans(s, t));
}

store_result store_find_trans(store *s, const char *gid, trans_global **out)
{
    clear_error();
    *out = NULL;
    if (is_blank(gid))
        return store_set_error(STORE_INVALID, "find: gid is required");
    OBSERVED("find_trans", s->ops->find_trans(s, gid, out));
}

store_result store_change_status(store *s, const char *gid, const char *expect_status,
                                 const store_status_change *change)
{
    clear_error();
    if (is_blank(gid) || is_blank(expect_status) || change == NULL || is_blank(change->status))
        return store_set_error(STORE_INVALID, "change_status: gid, expected and new status are required");
    OBSERVED("change_status", s->ops->change_status(s, gid, expect_status, change));
}

static store_result check_branch_args(const char *what, const char *gid, const char *expect_status,
                                      const trans_branch *b, size_t n)
{
    if (is_blank(gid) || is_blank(expect_status) || (n > 0 && b == NULL))
        return store_set_error(STORE_INVALID, "%s: gid and expected status are required", what);
    for (size_t i = 0; i < n; i++)
        if (is_blank(b[i].branch_id) || is_blank(b[i].op) || is_blank(b[i].status))
            return store_set_error(STORE_INVALID, "%s: branch %zu lacks branch_id, op or status",
                                   what, i);
    return STORE_OK;
}

store_result store_append_branches(store *s, const char *gid, const char *expect_status,
                                   const trans_branch *b, size_t n)
{
    clear_error();
    store_result r = check_branch_args("append_branches", gid, expect_status, b, n);
    if (r != STORE_OK)
        return r;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(b[i].branch_id, b[j].branch_id) == 0 && strcmp(b[i].op, b[j].op) == 0)
                return store_set_error(STORE_DUPLICATE, "append_branches: %s/%s repeats",
                                       b[i].branch_id, b[i].op);
    OBSERVED("append_branches", s->ops->append_branches(s, gid, expect_status, b, n));
}

store_result store_update_branches(store *s, const char *gid, const char *expect_status,
                                   const trans_branch *b, size_t n)
{
    clear_error();
    store_result r = check_branch_args("update_branches", gid, expect_status, b, n);
    if (r != STORE_OK)
        return r;
    OBSERVED("update_branches", s->ops->update_branches(s, gid, expect_status, b, n, NULL));
}

store_result store_update_branches_if(store *s, const char *gid, const char *expect_status,
                                      const trans_branch *b, size_t n,
                                      const char *expect_branch_status)
{
    clear_error();
    store_result r = check_branch_args("update_branches", gid, expect_status, b, n);
    if (r == STORE_OK && (expect_branch_status == NULL || expect_branch_status[0] == '\0'))
        r = store_set_error(STORE_INVALID, "update_branches_if: expect_branch_status is required");
    if (r != STORE_OK)
        return r;
    OBSERVED("update_branches", s->ops->update_branches(s, gid, expect_status, b, n, expect_branch_status));
}

store_result store_claim_due(store *s, int64_t now_ms, int64_t lease_ms, const char *owner,
                             trans_global **out)
{
    clear_error();
    *out = NULL;
    if (is_blank(owner) || lease_ms <= 0)
        return store_set_error(STORE_INVALID, "claim_due: owner and a positive lease are required");
    OBSERVED("claim_due", s->ops->claim_due(s, now_ms, lease_ms, owner, out));
}

store_result store_touch_cron(store *s, const char *gid, const char *owner,
                              int64_t next_cron_time, int64_t next_cron_interval)
{
    clear_error();
    if (is_blank(gid))
        return store_set_error(STORE_INVALID, "touch_cron: gid is required");
    OBSERVED("touch_cron", s->ops->touch_cron(s, gid, owner, next_cron_time, next_cron_interval));
}

store_result store_reset_cron_times(store *s, int64_t now_ms, int64_t after_ms, int limit,
                                    int *moved, bool *has_remaining)
{
    clear_error();
    *moved = 0;
    *has_remaining = false;
    if (limit <= 0)
        return store_set_error(STORE_INVALID, "reset_cron_times: limit must be positive");
    OBSERVED("reset_cron_times", s->ops->reset_cron_times(s, now_ms, after_ms, limit, moved, has_remaining));
}

store_result store_delete_finished(store *s, int64_t before_ms, int limit, int *deleted)
{
    clear_error();
    *deleted = 0;
    if (limit < 1 || limit > 10000)
        return store_set_error(STORE_INVALID, "delete_finished: limit must be 1..10000, got %d", limit);
    if (before_ms <= 0)
        return store_set_error(STORE_INVALID, "delete_finished: before_ms must be positive");
    OBSERVED("delete_finished", s->ops->delete_finished(s, before_ms, limit, deleted));
}

store_result store_list_trans(store *s, const store_filter *filter, const char *cursor,
                              int limit, store_trans_list *out, char **next_cursor)
{
    clear_error();
    static const store_filter no_filter;
    out->items = NULL;
    out->count = 0;
    *next_cursor = NULL;
    if (limit < 1 || limit > 1000)
        return store_set_error(STORE_INVALID, "list: limit must be 1..1000, got %d", limit);
    OBSERVED("list_trans", s->ops->list_trans(s, filter ? filter : &no_filter, cursor ? cursor : "", limit, out,
                              next_cursor));
}

store_result store_count_by_status(store *s, store_status_counts *out)
{
    clear_error();
    memset(out, 0, sizeof(*out));
    OBSERVED("count_by_status", s->ops->count_by_status(s, out));
}

/* The counter of status in c, or NULL for a status the store does not know. */
int64_t *store_status_counter(store_status_counts *c, const char *status)
{
    static const char *const names[] = {"prepared", "submitted", "aborting", "succeed", "failed"};
    int64_t *slots[] = {&c->prepared, &c->submitted, &c->aborting, &c->succeed, &c->failed};
    for (size_t i = 0; status && i < 5; i++)
        if (strcmp(status, names[i]) == 0)
            return slots[i];
    return NULL;
}

void store_trans_list_clear(store_trans_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        trans_free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

static store_result check_kv_args(const char *what, const char *cat, const char *key)
{
    if (is_blank(cat) || is_blank(key))
        return store_set_error(STORE_INVALID, "%s: cat and key are required", what);
    return STORE_OK;
}

store_result store_kv_create(store *s, const char *cat, const char *key, const char *value)
{
    clear_error();
    store_result r = check_kv_args("kv_create", cat, key);
    if (r != STORE_OK)
        return r;
    OBSERVED("kv_create", s->ops->kv_create(s, cat, key, value ? value : ""));
}

store_result store_kv_get(store *s, const char *cat, const char *key, store_kv_list *out)
{
    clear_error();
    out->items = NULL;
    out->count = 0;
    store_result r = check_kv_args("kv_get", cat, key);
    if (r != STORE_OK)
        return r;
    OBSERVED("kv_get", s->ops->kv_get(s, cat, key, out));
}

store_result store_kv_update(store *s, const char *cat, const char *key, const char *value,
                             int64_t expect_version)
{
    clear_error();
    store_result r = check_kv_args("kv_update", cat, key);
    if (r != STORE_OK)
        return r;
    OBSERVED("kv_update", s->ops->kv_update(s, cat, key, value ? value : "", expect_version));
}

store_result store_kv_delete(store *s, const char *cat, const char *key)
{
    clear_error();
    store_result r = check_kv_args("kv_delete", cat, key);
    if (r != STORE_OK)
        return r;
    OBSERVED("kv_delete", s->ops->kv_delete(s, cat, key));
}

store_result store_kv_scan(store *s, const char *cat, const char *cursor, int limit,
                           store_kv_list *out, char **next_cursor)
{
    clear_error();
    out->items = NULL;
    out->count = 0;
    *next_cursor = NULL;
    if (is_blank(cat))
        return store_set_error(STORE_INVALID, "kv_scan: cat is required");
    if (limit < 1 || limit > 1000)
        return store_set_error(STORE_INVALID, "kv_scan: limit must be 1..1000, got %d", limit);
    OBSERVED("kv_scan", s->ops->kv_scan(s, cat, cursor ? cursor : "", limit, out, next_cursor));
}

void store_kv_list_clear(store_kv_list *l)
{
    for (size_t i = 0; i < l->count; i++) {
        free(l->items[i].cat);
        free(l->items[i].key);
        free(l->items[i].value);
    }
    free(l->items);
    l->items = NULL;
    l->count = 0;
}
