/*
 * store_mongo_trans.c — the global-transaction ops of the MongoDB store:
 * create, find, the guarded single-document updates (status CAS, branch
 * append/update, lease claim, cron touch), reset_cron_times and list_trans.
 * Why each guard is atomic is said at each op; shapes in store_mongo.c.
 */
#include "store_mongo_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Reads gid's status (and with want_keys its branches' keys and statuses into *doc, which the
 * caller destroys): NOT_FOUND, CONFLICT when the status is not expect_status,
 * else STORE_OK. Used to explain why a guarded update matched nothing (STORE_OK
 * then means a concurrent change came and went: retry) and by update_branches
 * to learn array positions. It never decides a write: the guarded update does.
 */
static store_result mongo_check_guard(mongo_op *op, const char *what, const char *gid,
                                      const char *expect_status, bool want_keys, bson_t **doc)
{
    bson_t *filter = BCON_NEW("gid", BCON_UTF8(gid));
    bson_t *proj = want_keys ? BCON_NEW("status", BCON_INT32(1), "branches.key", BCON_INT32(1),
                                        "branches.status", BCON_INT32(1))
                             : BCON_NEW("status", BCON_INT32(1));
    bson_t *found = NULL;
    bson_iter_t it;
    store_result r = mongo_find_one(op, what, filter, proj, &found);
    bson_destroy(filter);
    bson_destroy(proj);
    if (r == STORE_NOT_FOUND)
        return store_set_error(r, "%s: no transaction %s", what, gid);
    if (r != STORE_OK)
        return r;
    if (!bson_iter_init_find(&it, found, "status") || !BSON_ITER_HOLDS_UTF8(&it) ||
        strcmp(bson_iter_utf8(&it, NULL), expect_status) != 0)
        r = store_set_error(STORE_CONFLICT, "%s: %s is not %s", what, gid, expect_status);
    if (doc != NULL && r == STORE_OK)
        *doc = found;
    else
        bson_destroy(found);
    return r;
}

/* Array position of key among doc's branches.*.key, or -1. */
static long branch_index(const bson_t *doc, const char *key)
{
    bson_iter_t it, arr, sub;
    long i = 0;
    if (!bson_iter_init_find(&it, doc, "branches") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &arr))
        return -1;
    for (; bson_iter_next(&arr); i++)
        if (BSON_ITER_HOLDS_DOCUMENT(&arr) && bson_iter_recurse(&arr, &sub) &&
            bson_iter_find(&sub, "key") && BSON_ITER_HOLDS_UTF8(&sub) &&
            strcmp(bson_iter_utf8(&sub, NULL), key) == 0)
            return i;
    return -1;
}

store_result mongo_store_create_trans(store *s, const trans_global *t)
{
    bson_t doc = BSON_INITIALIZER;
    bson_oid_t id;
    bson_error_t e;
    bson_oid_init(&id, NULL); /* process-monotonic: newest first by _id */
    bool built = BSON_APPEND_OID(&doc, "_id", &id) && mongo_bson_append_trans_fields(&doc, t) &&
                 mongo_bson_append_branches(&doc, "branches", t->branches, t->branch_count);
    if (!built) {
        bson_destroy(&doc);
        return store_set_error(STORE_INVALID, "create: transaction %s is too large", t->gid);
    }
    mongo_op op;
    mongo_op_begin(&op, s, MONGO_TRANS_COLL); /* the unique gid index is the guard */
    store_result r = STORE_OK;
    if (!mongoc_collection_insert_one(op.coll, &doc, NULL, NULL, &e))
        r = mongo_is_duplicate(&e)
                ? store_set_error(STORE_DUPLICATE, "create: transaction %s exists", t->gid)
                : mongo_failed("create", &e);
    mongo_op_end(&op);
    bson_destroy(&doc);
    return r;
}

store_result mongo_store_find_trans(store *s, const char *gid, trans_global **out)
{
    mongo_op op;
    bson_t *doc = NULL;
    bson_t *filter = BCON_NEW("gid", BCON_UTF8(gid));
    mongo_op_begin(&op, s, MONGO_TRANS_COLL);
    store_result r = mongo_find_one(&op, "find", filter, NULL, &doc);
    mongo_op_end(&op);
    bson_destroy(filter);
    if (r == STORE_OK) {
        *out = mongo_bson_to_trans(doc);
        if (*out == NULL)
            r = mongo_oom("find");
    }
    bson_destroy(doc);
    return r;
}

static void append_status_change(bson_t *set, const store_status_change *c)
{
    BSON_APPEND_UTF8(set, "status", c->status);
    BSON_APPEND_INT64(set, "update_time", c->update_time);
    const struct { const char *name; int64_t v; } times[] = {
        {"finish_time", c->finish_time},     {"rollback_time", c->rollback_time},
        {"next_cron_time", c->next_cron_time}, {"next_cron_interval", c->next_cron_interval},
    };
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++)
        if (times[i].v != 0)
            BSON_APPEND_INT64(set, times[i].name, times[i].v);
    const struct { const char *name; const char *v; } strs[] = {
        {"rollback_reason", c->rollback_reason}, {"result", c->result}, {"ext_data", c->ext_data},
        {"owner", c->owner}, {"custom_data", c->custom_data},
    };
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        if (strs[i].v != NULL)
            BSON_APPEND_UTF8(set, strs[i].name, strs[i].v);
}

/* Atomic because the filter {gid, status: expect} and the $set are one
 * single-document update. */
store_result mongo_store_change_status(store *s, const char *gid, const char *expect_status,
                                       const store_status_change *change)
{
    bson_t *filter = BCON_NEW("gid", BCON_UTF8(gid), "status", BCON_UTF8(expect_status));
    bson_t update = BSON_INITIALIZER, set;
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    append_status_change(&set, change);
    bson_append_document_end(&update, &set);
    mongo_op op;
    mongo_op_begin(&op, s, MONGO_TRANS_COLL);
    store_result r = STORE_OK;
    for (int i = 0; i < MONGO_GUARD_RETRIES && r == STORE_OK; i++) {
        bool matched;
        r = mongo_update_one(&op, "change_status", filter, &update, &matched);
        if (r != STORE_OK || matched)
            break;
        r = mongo_check_guard(&op, "change_status", gid, expect_status, false, NULL);
        if (r == STORE_OK && i == MONGO_GUARD_RETRIES - 1)
            r = store_set_error(STORE_CONFLICT, "change_status: %s keeps changing", gid);
    }
    mongo_op_end(&op);
    bson_destroy(filter);
    bson_destroy(&update);
    return r;
}

/* Frees keys[0..n). */
static void free_keys(char **keys, size_t n)
{
    for (size_t i = 0; keys != NULL && i < n; i++)
        free(keys[i]);
    free(keys);
}

/* The branch keys of b[0..n); NULL on out-of-memory. */
static char **branch_keys(const trans_branch *b, size_t n)
{
    char **keys = calloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; keys != NULL && i < n; i++) {
        keys[i] = mongo_branch_key(b[i].branch_id, b[i].op);
        if (keys[i] == NULL) {
            free_keys(keys, i);
            return NULL;
        }
    }
    return keys;
}

/*
 * Filter {gid, status: expect, $nor: [{"branches.key": {$in: keys}}]}: matches
 * only while none of the new pairs exists, checked in the same atomic
 * single-document update as the $push. ($nor of a positive match, because
 * FerretDB v1 gets $nin/$ne over an array of subdocuments wrong.)
 */
static bson_t *append_filter(const char *gid, const char *expect_status, char **keys, size_t n)
{
    bson_t *filter = BCON_NEW("gid", BCON_UTF8(gid), "status", BCON_UTF8(expect_status));
    bson_t nor, clause, in;
    BSON_APPEND_ARRAY_BEGIN(filter, "$nor", &nor);
    BSON_APPEND_DOCUMENT_BEGIN(&nor, "0", &clause);
    BSON_APPEND_DOCUMENT_BEGIN(&clause, "branches.key", &in);
    mongo_append_string_array(&in, "$in", (const char *const *)keys, n);
    bson_append_document_end(&clause, &in);
    bson_append_document_end(&nor, &clause);
    bson_append_array_end(filter, &nor);
    return filter;
}

store_result mongo_store_append_branches(store *s, const char *gid, const char *expect_status,
                                         const trans_branch *b, size_t n)
{
    char **keys = branch_keys(b, n);
    if (keys == NULL)
        return mongo_oom("append_branches");
    bson_t *filter = append_filter(gid, expect_status, keys, n);
    bson_t update = BSON_INITIALIZER, push, each;
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$push", &push);
    BSON_APPEND_DOCUMENT_BEGIN(&push, "branches", &each);
    bool built = mongo_bson_append_branches(&each, "$each", b, n);
    bson_append_document_end(&push, &each);
    bson_append_document_end(&update, &push);
    store_result r =
        built ? STORE_OK : store_set_error(STORE_INVALID, "append_branches: too large for %s", gid);
    mongo_op op;
    mongo_op_begin(&op, s, MONGO_TRANS_COLL);
    for (int i = 0; i < MONGO_GUARD_RETRIES && r == STORE_OK; i++) {
        bool matched = false;
        bson_t *doc = NULL;
        if (n > 0)
            r = mongo_update_one(&op, "append_branches", filter, &update, &matched);
        if (r != STORE_OK || matched)
            break;
        /* No match, or nothing to append: explain (or confirm the guard for n == 0). */
        r = mongo_check_guard(&op, "append_branches", gid, expect_status, true, &doc);
        for (size_t k = 0; r == STORE_OK && k < n; k++)
            if (branch_index(doc, keys[k]) >= 0)
                r = store_set_error(STORE_DUPLICATE, "append_branches: %s/%s exists in %s",
                                    b[k].branch_id, b[k].op, gid);
        bson_destroy(doc);
        if (n == 0 || r != STORE_OK)
            break;
        if (i == MONGO_GUARD_RETRIES - 1)
            r = store_set_error(STORE_CONFLICT, "append_branches: %s keeps changing", gid);
    }
    mongo_op_end(&op);
    bson_destroy(filter);
    bson_destroy(&update);
    free_keys(keys, n);
    return r;
}

/*
 * The guarded update for update_branches, given the array positions idx[] of
 * b[] in the document: filter {gid, status: expect, "branches.<i>.key": key...}
 * and $set of "branches.<i>.<field>". A later element for the same pair wins.
 */
static void build_branch_update(bson_t *filter, bson_t *update, const char *gid,
                                const char *expect_status, const trans_branch *b, char **keys,
                                const long *idx, size_t n, const char *expect_branch_status)
{
    bson_t set;
    char path[64];
    BSON_APPEND_UTF8(filter, "gid", gid);
    BSON_APPEND_UTF8(filter, "status", expect_status);
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    for (size_t i = 0; i < n; i++) {
        bool superseded = false;
        for (size_t j = i + 1; j < n; j++)
            superseded = superseded || idx[j] == idx[i];
        if (superseded)
            continue;
        snprintf(path, sizeof(path), "branches.%ld.key", idx[i]);
        BSON_APPEND_UTF8(filter, path, keys[i]);
        if (expect_branch_status) {
            snprintf(path, sizeof(path), "branches.%ld.status", idx[i]);
            BSON_APPEND_UTF8(filter, path, expect_branch_status);
        }
        snprintf(path, sizeof(path), "branches.%ld.status", idx[i]);
        BSON_APPEND_UTF8(&set, path, b[i].status);
        const struct { const char *name; int64_t v; } times[] = {
            {"update_time", b[i].update_time}, {"finish_time", b[i].finish_time},
            {"rollback_time", b[i].rollback_time},
        };
        for (size_t t = 0; t < 3; t++) {
            snprintf(path, sizeof(path), "branches.%ld.%s", idx[i], times[t].name);
            BSON_APPEND_INT64(&set, path, times[t].v);
        }
    }
    bson_append_document_end(update, &set);
}

/*
 * Reads the document to learn the array positions, then one guarded update.
 * Branches are append-only, so positions never move; the filter re-checks
 * status and each position's key in the same atomic step as the $set.
 */
/* The status of the branch at position i of doc, or NULL. */
static const char *branch_status_at(const bson_t *doc, long i)
{
    char path[64];
    bson_iter_t it, found;
    snprintf(path, sizeof(path), "branches.%ld.status", i);
    if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &found) &&
        BSON_ITER_HOLDS_UTF8(&found))
        return bson_iter_utf8(&found, NULL);
    return NULL;
}

store_result mongo_store_update_branches(store *s, const char *gid, const char *expect_status,
                                         const trans_branch *b, size_t n,
                                         const char *expect_branch_status)
{
    char **keys = branch_keys(b, n);
    long *idx = calloc(n ? n : 1, sizeof(long));
    store_result r = keys && idx ? STORE_OK : mongo_oom("update_branches");
    mongo_op op;
    mongo_op_begin(&op, s, MONGO_TRANS_COLL);
    for (int attempt = 0; attempt < MONGO_GUARD_RETRIES && r == STORE_OK; attempt++) {
        bson_t *doc = NULL;
        r = mongo_check_guard(&op, "update_branches", gid, expect_status, true, &doc);
        for (size_t i = 0; r == STORE_OK && i < n; i++) {
            if ((idx[i] = branch_index(doc, keys[i])) < 0) {
                r = store_set_error(STORE_NOT_FOUND, "update_branches: no branch %s/%s in %s",
                                    b[i].branch_id, b[i].op, gid);
            } else if (expect_branch_status) {
                const char *now = branch_status_at(doc, idx[i]);
                if (now == NULL || strcmp(now, expect_branch_status) != 0)
                    r = store_set_error(STORE_CONFLICT, "update_branches: branch %s/%s of %s is %s, not %s",
                                        b[i].branch_id, b[i].op, gid, now ? now : "?", expect_branch_status);
            }
        }
        bson_destroy(doc);
        if (r != STORE_OK || n == 0)
            break;
        bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER;
        bool matched = false;
        build_branch_update(&filter, &update, gid, expect_status, b, keys, idx, n, expect_branch_status);
        r = mongo_update_one(&op, "update_branches", &filter, &update, &matched);
        bson_destroy(&filter);
        bson_destroy(&update);
        if (r != STORE_OK || matched)
            break;
        if (attempt == MONGO_GUARD_RETRIES - 1)
            r = store_set_error(STORE_CONFLICT, "update_branches: %s keeps changing", gid);
    }
    mongo_op_end(&op);
    free_keys(keys, n);
    free(idx);
    return r;
}

/* findAndModify matches, updates and returns one document in one atomic step,
 * so the lease (owner, next_cron_time) is taken by exactly one caller. */
store_result mongo_store_claim_due(store *s, int64_t now_ms, int64_t lease_ms,
                                   const char *owner, trans_global **out)
{
    bson_t query = BSON_INITIALIZER, reply;
    bson_error_t e;
    bson_iter_t it;
    mongo_append_unfinished(&query, "status");
    bson_t *due = BCON_NEW("$lte", BCON_INT64(now_ms));
    BSON_APPEND_DOCUMENT(&query, "next_cron_time", due);
    bson_t *sort = BCON_NEW("next_cron_time", BCON_INT32(1));
    bson_t *update = BCON_NEW("$set", "{", "owner", BCON_UTF8(owner), "next_cron_time",
                              BCON_INT64(mongo_add_saturating(now_ms, lease_ms)), "}");
    mongoc_find_and_modify_opts_t *opts = mongoc_find_and_modify_opts_new();
    mongoc_find_and_modify_opts_set_sort(opts, sort);
    mongoc_find_and_modify_opts_set_update(opts, update);
    mongoc_find_and_modify_opts_set_flags(opts, MONGOC_FIND_AND_MODIFY_RETURN_NEW);
    mongo_op op;
    mongo_op_begin(&op, s, MONGO_TRANS_COLL);
    bool ok = mongoc_collection_find_and_modify_with_opts(op.coll, &query, opts, &reply, &e);
    mongo_op_end(&op);
    store_result r = ok ? STORE_NOT_FOUND : mongo_failed("claim_due", &e);
    if (ok && bson_iter_init_find(&it, &reply, "value") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
        uint32_t len;
        const uint8_t *data;
        bson_t doc;
        bson_iter_document(&it, &len, &data);
        r = bson_init_static(&doc, data, len) && (*out = mongo_bson_to_trans(&doc)) != NULL
                ? STORE_OK
                : mongo_oom("claim_due");
    }
    mongoc_find_and_modify_opts_destroy(opts);
    bson_destroy(&reply);
    bson_destroy(&query);
    bson_destroy(due);
    bson_destroy(sort);
    bson_destroy(update);
    return r;
}

/* One guarded update: {gid, status unfinished[, owner]}. */
store_result mongo_store_touch_cron(store *s, const char *gid, const char *owner,
                                    int64_t next_cron_time, int64_t next_cron_interval)
{
    bson_t *filter = BCON_NEW("gid", BCON_UTF8(gid));
    mongo_append_unfinished(filter, "status");
    if (owner != NULL)
        BSON_APPEND_UTF8(filter, "owner", owner);
    bson_t update = BSON_INITIALIZER, set;
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_INT64(&set, "next_cron_time", next_cron_time);
    if (next_cron_interval > 0)
        BSON_APPEND_INT64(&set, "next_cron_interval", next_cron_interval);
    bson_append_document_end(&update, &set);
    mongo_op op;
    bool matched = false;
    mongo_op_begin(&op, s, MONGO_TRANS_COLL);
    store_result r = mongo_update_one(&op, "touch_cron", filter, &update, &matched);
    if (r == STORE_OK && !matched) {
        bson_t *doc = NULL, *by_gid = BCON_NEW("gid", BCON_UTF8(gid));
        r = mongo_find_one(&op, "touch_cron", by_gid, NULL, &doc);
        if (r == STORE_OK)
            r = store_set_error(STORE_CONFLICT, "touch_cron: %s is finished or leased by another",
                                gid);
        else if (r == STORE_NOT_FOUND)
            store_set_error(r, "touch_cron: no transaction %s", gid);
        bson_destroy(doc);
        bson_destroy(by_gid);
    }
    mongo_op_end(&op);
    bson_destroy(filter);
    bson_destroy(&update);
    return r;
}

typedef struct id_list {
    bson_oid_t *ids;
    size_t count, cap;
} id_list;

static bool collect_id(const bson_t *doc, void *ctx)
{
    id_list *l = ctx;
    bson_iter_t it;
    if (l->count < l->cap && bson_iter_init_find(&it, doc, "_id") && BSON_ITER_HOLDS_OID(&it))
        bson_oid_copy(bson_iter_oid(&it), &l->ids[l->count++]);
    return true;
}

/*
 * Finds up to limit + 1 candidates, then one update_many over the first limit
 * of them that repeats the condition, so each document is changed only if it
 * still qualifies (each document's update is atomic on its own).
 */
/* Appends {_id: {$in: [ids...]}} to filter. */
static void append_id_in(bson_t *filter, const bson_oid_t *ids, size_t n)
{
    bson_t in, arr;
    BSON_APPEND_DOCUMENT_BEGIN(filter, "_id", &in);
    BSON_APPEND_ARRAY_BEGIN(&in, "$in", &arr);
    for (size_t i = 0; i < n; i++) {
        char idx[24];
        const char *name;
        bson_uint32_to_string((uint32_t)i, &name, idx, sizeof(idx));
        BSON_APPEND_OID(&arr, name, &ids[i]);
    }
    bson_append_array_end(&in, &arr);
    bson_append_document_end(filter, &in);
}

store_result mongo_store_reset_cron_times(store *s, int64_t now_ms, int64_t after_ms,
                                          int limit, int *moved, bool *has_remaining)
{
    id_list found = {calloc((size_t)limit + 1, sizeof(bson_oid_t)), 0, (size_t)limit + 1};
    if (found.ids == NULL)
        return mongo_oom("reset_cron_times");
    bson_t cond = BSON_INITIALIZER;
    mongo_append_unfinished(&cond, "status");
    bson_t *later = BCON_NEW("$gt", BCON_INT64(mongo_add_saturating(now_ms, after_ms)));
    BSON_APPEND_DOCUMENT(&cond, "next_cron_time", later);
    bson_t *opts = BCON_NEW("limit", BCON_INT64(limit + 1), "projection", "{", "_id",
                            BCON_INT32(1), "}");
    mongo_op op;
    mongo_op_begin(&op, s, MONGO_TRANS_COLL);
    store_result r = mongo_find(&op, "reset_cron_times", &cond, opts, collect_id, &found);
    if (r == STORE_OK && found.count > 0) {
        size_t n = found.count > (size_t)limit ? (size_t)limit : found.count;
        bson_t filter = BSON_INITIALIZER, reply;
        bson_error_t e;
        bson_concat(&filter, &cond);
        append_id_in(&filter, found.ids, n);
        bson_t *update = BCON_NEW("$set", "{", "next_cron_time", BCON_INT64(now_ms), "}");
        if (mongoc_collection_update_many(op.coll, &filter, update, NULL, &reply, &e))
            *moved = (int)mongo_reply_count(&reply, "modifiedCount");
        else
            r = mongo_failed("reset_cron_times", &e);
        *has_remaining = found.count > (size_t)limit;
        bson_destroy(&reply);
        bson_destroy(update);
        bson_destroy(&filter);
    }
    mongo_op_end(&op);
    bson_destroy(opts);
    bson_destroy(later);
    bson_destroy(&cond);
    free(found.ids);
    return r;
}

/* Finished (succeed/failed) with 0 < finish_time < before_ms: the condition
 * of delete_finished, also its guard in the delete itself. */
static void append_finished_before(bson_t *cond, int64_t before_ms)
{
    bson_t *statuses = BCON_NEW("$in", "[", BCON_UTF8(TRANS_SUCCEED), BCON_UTF8(TRANS_FAILED), "]");
    bson_t *range = BCON_NEW("$gt", BCON_INT64(0), "$lt", BCON_INT64(before_ms));
    BSON_APPEND_DOCUMENT(cond, "status", statuses);
    BSON_APPEND_DOCUMENT(cond, "finish_time", range);
    bson_destroy(statuses);
    bson_destroy(range);
}

store_result mongo_store_delete_finished(store *s, int64_t before_ms, int limit, int *deleted)
{
    id_list found = {calloc((size_t)limit, sizeof(bson_oid_t)), 0, (size_t)limit};
    if (found.ids == NULL)
        return mongo_oom("delete_finished");
    bson_t cond = BSON_INITIALIZER;
    append_finished_before(&cond, before_ms);
    bson_t *opts = BCON_NEW("limit", BCON_INT64(limit), "projection", "{", "_id", BCON_INT32(1), "}");
    mongo_op op;
    mongo_op_begin(&op, s, MONGO_TRANS_COLL);
    store_result r = mongo_find(&op, "delete_finished", &cond, opts, collect_id, &found);
    if (r == STORE_OK && found.count > 0) {
        bson_t filter = BSON_INITIALIZER, reply;
        bson_error_t e;
        bson_concat(&filter, &cond);
        append_id_in(&filter, found.ids, found.count);
        if (mongoc_collection_delete_many(op.coll, &filter, NULL, &reply, &e))
            *deleted = (int)mongo_reply_count(&reply, "deletedCount");
        else
            r = mongo_failed("delete_finished", &e);
        bson_destroy(&reply);
        bson_destroy(&filter);
    }
    mongo_op_end(&op);
    bson_destroy(opts);
    bson_destroy(&cond);
    free(found.ids);
    return r;
}

typedef struct trans_page {
    store_trans_list *out;
    size_t limit;
    bson_oid_t last;  /* _id of the last row kept: the next cursor */
    bool more;        /* a row beyond limit exists */
    bool oom;
} trans_page;

static bool collect_trans(const bson_t *doc, void *ctx)
{
    trans_page *p = ctx;
    bson_iter_t it;
    if (p->out->count == p->limit) {
        p->more = true;
        return false;
    }
    trans_global *t = mongo_bson_to_trans(doc);
    if (t == NULL || !bson_iter_init_find(&it, doc, "_id") || !BSON_ITER_HOLDS_OID(&it)) {
        trans_free(t);
        p->oom = true;
        return false;
    }
    bson_oid_copy(bson_iter_oid(&it), &p->last);
    p->out->items[p->out->count++] = t;
    return true;
}

/* Appends {op: v} for a non-zero time bound. */
static void append_time_bound(bson_t *range, const char *op, int64_t v)
{
    if (v != 0)
        BSON_APPEND_INT64(range, op, v);
}

/* The list filter: the store_filter's fields, and _id < cursor. */
static bool build_list_filter(bson_t *q, const store_filter *f, const char *cursor)
{
    if (f->gid != NULL)
        BSON_APPEND_UTF8(q, "gid", f->gid);
    if (f->status != NULL)
        BSON_APPEND_UTF8(q, "status", f->status);
    if (f->trans_type != NULL)
        BSON_APPEND_UTF8(q, "trans_type", f->trans_type);
    if (f->create_time_start != 0 || f->create_time_end != 0) {
        bson_t range;
        BSON_APPEND_DOCUMENT_BEGIN(q, "create_time", &range);
        append_time_bound(&range, "$gte", f->create_time_start);
        append_time_bound(&range, "$lte", f->create_time_end);
        bson_append_document_end(q, &range);
    }
    if (cursor[0] != '\0') {
        bson_oid_t last;
        bson_t lt;
        if (strlen(cursor) != 24 || !bson_oid_is_valid(cursor, 24))
            return false;
        bson_oid_init_from_string(&last, cursor);
        BSON_APPEND_DOCUMENT_BEGIN(q, "_id", &lt);
        BSON_APPEND_OID(&lt, "$lt", &last);
        bson_append_document_end(q, &lt);
    }
    return true;
}

/*
 * Newest first by _id (made at insert, increasing within a process); the
 * cursor is the hex _id of the page's last row and the next page is
 * _id < cursor, so every row is returned exactly once. One extra row is read
 * to tell whether another page exists.
 */
store_result mongo_store_list_trans(store *s, const store_filter *filter, const char *cursor,
                                    int limit, store_trans_list *out, char **next_cursor)
{
    bson_t q = BSON_INITIALIZER;
    if (!build_list_filter(&q, filter, cursor)) {
        bson_destroy(&q);
        return store_set_error(STORE_INVALID, "list: bad cursor '%.40s'", cursor);
    }
    bson_t *opts = BCON_NEW("sort", "{", "_id", BCON_INT32(-1), "}", "limit",
                            BCON_INT64(limit + 1), "projection", "{", "branches", BCON_INT32(0),
                            "}");
    trans_page page = {.out = out, .limit = (size_t)limit};
    out->items = calloc((size_t)limit, sizeof(trans_global *));
    store_result r = out->items ? STORE_OK : mongo_oom("list");
    if (r == STORE_OK) {
        mongo_op op;
        mongo_op_begin(&op, s, MONGO_TRANS_COLL);
        r = mongo_find(&op, "list", &q, opts, collect_trans, &page);
        mongo_op_end(&op);
        if (r == STORE_OK && page.oom)
            r = mongo_oom("list");
    }
    bson_destroy(&q);
    bson_destroy(opts);
    if (r == STORE_OK) {
        char hex[25] = "";
        if (page.more)
            bson_oid_to_string(&page.last, hex);
        *next_cursor = strdup(hex);
        if (*next_cursor == NULL)
            r = mongo_oom("list");
    }
    if (r != STORE_OK)
        store_trans_list_clear(out);
    return r;
}

/* One count per status (FerretDB v1 lacks $group on this path); each uses
 * the (status, next_cron_time) index. Not one snapshot: counts taken while
 * transactions move may be off by those in flight. */
store_result mongo_store_count_by_status(store *s, store_status_counts *out)
{
    static const char *const statuses[] = {"prepared", "submitted", "aborting", "succeed", "failed"};
    mongo_op op;
    mongo_op_begin(&op, s, MONGO_TRANS_COLL);
    store_result r = op.coll ? STORE_OK : store_set_error(STORE_UNAVAILABLE, "mongodb: count: no connection");
    for (size_t i = 0; r == STORE_OK && i < 5; i++) {
        bson_t *q = BCON_NEW("status", BCON_UTF8(statuses[i]));
        bson_error_t e;
        int64_t n = mongoc_collection_count_documents(op.coll, q, NULL, NULL, NULL, &e);
        bson_destroy(q);
        if (n < 0)
            r = mongo_failed("count_by_status", &e);
        else
            *store_status_counter(out, statuses[i]) = n;
    }
    mongo_op_end(&op);
    return r;
}
