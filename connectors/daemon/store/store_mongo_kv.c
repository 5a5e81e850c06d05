/*
 * store_mongo_kv.c — the key/value ops of the MongoDB store (msg topics):
 * collection kv, documents {cat, key, value, version, create_time,
 * update_time}, unique index {cat, key}.
 *
 * create relies on the unique index (atomic in the insert); update is one
 * update_one whose filter carries the expected version, with $inc on it in the
 * same atomic step; delete is one delete_one.
 */
#include "store_mongo_internal.h"

#include <stdlib.h>
#include <string.h>

static bson_t *kv_filter(const char *cat, const char *key)
{
    return BCON_NEW("cat", BCON_UTF8(cat), "key", BCON_UTF8(key));
}

store_result mongo_store_kv_create(store *s, const char *cat, const char *key, const char *value)
{
    int64_t now = dtmq_now_ms();
    bson_t *doc = BCON_NEW("cat", BCON_UTF8(cat), "key", BCON_UTF8(key), "value",
                           BCON_UTF8(value), "version", BCON_INT64(1), "create_time",
                           BCON_INT64(now), "update_time", BCON_INT64(now));
    bson_error_t e;
    mongo_op op;
    mongo_op_begin(&op, s, MONGO_KV_COLL); /* the unique (cat, key) index guards */
    store_result r = STORE_OK;
    if (!mongoc_collection_insert_one(op.coll, doc, NULL, NULL, &e))
        r = mongo_is_duplicate(&e)
                ? store_set_error(STORE_DUPLICATE, "kv_create: %s/%s exists", cat, key)
                : mongo_failed("kv_create", &e);
    mongo_op_end(&op);
    bson_destroy(doc);
    return r;
}

/* Appends a document to a kv list with room for it; false on out-of-memory. */
static bool kv_list_add(store_kv_list *l, const bson_t *doc)
{
    return mongo_bson_to_kv(doc, &l->items[l->count]) && (l->count++, true);
}

store_result mongo_store_kv_get(store *s, const char *cat, const char *key, store_kv_list *out)
{
    bson_t *filter = kv_filter(cat, key), *doc = NULL;
    mongo_op op;
    mongo_op_begin(&op, s, MONGO_KV_COLL);
    store_result r = mongo_find_one(&op, "kv_get", filter, NULL, &doc);
    mongo_op_end(&op);
    if (r == STORE_OK) {
        out->items = calloc(1, sizeof(store_kv));
        if (out->items == NULL || !kv_list_add(out, doc)) {
            store_kv_list_clear(out);
            r = mongo_oom("kv_get");
        }
    }
    bson_destroy(doc);
    bson_destroy(filter);
    return r;
}

/* The filter {cat, key, version: expect} and the $inc are one atomic update. */
store_result mongo_store_kv_update(store *s, const char *cat, const char *key, const char *value,
                                   int64_t expect_version)
{
    bson_t *filter = BCON_NEW("cat", BCON_UTF8(cat), "key", BCON_UTF8(key), "version",
                              BCON_INT64(expect_version));
    bson_t *update = BCON_NEW("$set", "{", "value", BCON_UTF8(value), "update_time",
                              BCON_INT64(dtmq_now_ms()), "}", "$inc", "{", "version",
                              BCON_INT64(1), "}");
    bool matched = false;
    mongo_op op;
    mongo_op_begin(&op, s, MONGO_KV_COLL);
    store_result r = mongo_update_one(&op, "kv_update", filter, update, &matched);
    if (r == STORE_OK && !matched) {
        bson_t *by_key = kv_filter(cat, key), *doc = NULL;
        r = mongo_find_one(&op, "kv_update", by_key, NULL, &doc);
        if (r == STORE_OK)
            r = store_set_error(STORE_CONFLICT, "kv_update: %s/%s is not at version %lld", cat,
                                key, (long long)expect_version);
        else if (r == STORE_NOT_FOUND)
            store_set_error(r, "kv_update: no entry %s/%s", cat, key);
        bson_destroy(doc);
        bson_destroy(by_key);
    }
    mongo_op_end(&op);
    bson_destroy(filter);
    bson_destroy(update);
    return r;
}

store_result mongo_store_kv_delete(store *s, const char *cat, const char *key)
{
    bson_t *filter = kv_filter(cat, key), reply;
    bson_error_t e;
    mongo_op op;
    mongo_op_begin(&op, s, MONGO_KV_COLL);
    bool ok = mongoc_collection_delete_one(op.coll, filter, NULL, &reply, &e);
    mongo_op_end(&op);
    store_result r = !ok ? mongo_failed("kv_delete", &e)
                     : mongo_reply_count(&reply, "deletedCount") > 0
                         ? STORE_OK
                         : store_set_error(STORE_NOT_FOUND, "kv_delete: no entry %s/%s", cat, key);
    bson_destroy(&reply);
    bson_destroy(filter);
    return r;
}

typedef struct kv_page {
    store_kv_list *out;
    size_t limit;
    bool more, oom;
} kv_page;

static bool collect_kv(const bson_t *doc, void *ctx)
{
    kv_page *p = ctx;
    if (p->out->count == p->limit) {
        p->more = true;
        return false;
    }
    p->oom = !kv_list_add(p->out, doc);
    return !p->oom;
}

/*
 * Key order; the cursor is the hex of the page's last key and the next page is
 * key > cursor, so every entry is returned exactly once. One extra row is read
 * to tell whether another page exists.
 */
store_result mongo_store_kv_scan(store *s, const char *cat, const char *cursor, int limit,
                                 store_kv_list *out, char **next_cursor)
{
    char *after = NULL;
    if (cursor[0] != '\0' && (after = mongo_hex_decode(cursor)) == NULL)
        return store_set_error(STORE_INVALID, "kv_scan: bad cursor '%.40s'", cursor);
    bson_t *filter = BCON_NEW("cat", BCON_UTF8(cat));
    if (after != NULL)
        BCON_APPEND(filter, "key", "{", "$gt", BCON_UTF8(after), "}");
    free(after);
    bson_t *opts = BCON_NEW("sort", "{", "key", BCON_INT32(1), "}", "limit",
                            BCON_INT64(limit + 1));
    kv_page page = {.out = out, .limit = (size_t)limit};
    out->items = calloc((size_t)limit, sizeof(store_kv));
    store_result r = out->items ? STORE_OK : mongo_oom("kv_scan");
    if (r == STORE_OK) {
        mongo_op op;
        mongo_op_begin(&op, s, MONGO_KV_COLL);
        r = mongo_find(&op, "kv_scan", filter, opts, collect_kv, &page);
        mongo_op_end(&op);
        if (r == STORE_OK && page.oom)
            r = mongo_oom("kv_scan");
    }
    bson_destroy(filter);
    bson_destroy(opts);
    if (r == STORE_OK) {
        *next_cursor = page.more ? mongo_hex_encode(out->items[out->count - 1].key) : strdup("");
        if (*next_cursor == NULL)
            r = mongo_oom("kv_scan");
    }
    if (r != STORE_OK)
        store_kv_list_clear(out);
    return r;
}
