/*
 * store_backend.h — what a store backend implements (private to connectors/daemon/store).
 *
 * A backend allocates a struct whose first member is `struct store`, fills in
 * `ops` and returns it from its open function; store.c dispatches every public
 * call through ops. Each op has the contract of the public function of the same
 * name in store.h. Backends report failure text with store_set_error().
 */
#ifndef DTMQ_STORE_BACKEND_H
#define DTMQ_STORE_BACKEND_H

#include "store.h"

typedef struct store_ops {
    const char *driver;
    void (*close)(store *s);
    store_result (*ping)(store *s);
    store_result (*sync)(store *s); /* NULL: every change is durable on return */
    int (*when_durable)(store *s, store_durable_fn done, void *arg); /* NULL: likewise */
    store_result (*drop_all)(store *s);
    store_result (*create_trans)(store *s, const trans_global *t);
    store_result (*find_trans)(store *s, const char *gid, trans_global **out);
    store_result (*change_status)(store *s, const char *gid, const char *expect_status,
                                  const store_status_change *change);
    store_result (*append_branches)(store *s, const char *gid, const char *expect_status,
                                    const trans_branch *b, size_t n);
    /* expect_branch_status NULL: any */
    store_result (*update_branches)(store *s, const char *gid, const char *expect_status,
                                    const trans_branch *b, size_t n,
                                    const char *expect_branch_status);
    store_result (*claim_due)(store *s, int64_t now_ms, int64_t lease_ms, const char *owner,
                              trans_global **out);
    store_result (*touch_cron)(store *s, const char *gid, const char *owner,
                               int64_t next_cron_time, int64_t next_cron_interval);
    store_result (*reset_cron_times)(store *s, int64_t now_ms, int64_t after_ms, int limit,
                                     int *moved, bool *has_remaining);
    store_result (*delete_finished)(store *s, int64_t before_ms, int limit, int *deleted);
    store_result (*list_trans)(store *s, const store_filter *filter, const char *cursor,
                               int limit, store_trans_list *out, char **next_cursor);
    store_result (*count_by_status)(store *s, store_status_counts *out);
    store_result (*kv_create)(store *s, const char *cat, const char *key, const char *value);
    store_result (*kv_get)(store *s, const char *cat, const char *key, store_kv_list *out);
    store_result (*kv_update)(store *s, const char *cat, const char *key, const char *value,
                              int64_t expect_version);
    store_result (*kv_delete)(store *s, const char *cat, const char *key);
    store_result (*kv_scan)(store *s, const char *cat, const char *cursor, int limit,
                            store_kv_list *out, char **next_cursor);
} store_ops;

struct store {
    const store_ops *ops;
    char *display_uri; /* owned; freed by store_close */
};

/* Records this thread's error text (printf-style) and returns result. */
store_result store_set_error(store_result result, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Where the count of status goes in c; NULL for an unknown status. */
int64_t *store_status_counter(store_status_counts *c, const char *status);

/* Backend constructors: NULL on failure with a line in err. */
store *store_sqlite_open(const char *path, char *err, size_t errlen);
store *store_mongo_open(const char *uri, char *err, size_t errlen);

#endif
