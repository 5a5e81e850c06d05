/*
 * store_mongo_internal.h — what the MongoDB store's files share (private to
 * connectors/daemon/store/store_mongo*.c). The document shapes and the atomicity
 * argument are in store_mongo.c's top comment.
 *
 *   store_mongo.c        open/close, ping, drop_all, shared helpers, ops table
 *   store_mongo_trans.c  global transactions: create, CAS updates, claim, list
 *   store_mongo_kv.c     the key/value collection
 *   store_mongo_bson.c   BSON <-> trans_global / store_kv, branch keys, hex
 */
#ifndef DTMQ_STORE_MONGO_INTERNAL_H
#define DTMQ_STORE_MONGO_INTERNAL_H

#include <mongoc/mongoc.h>
#include <stdbool.h>

#include "store_backend.h"

#define MONGO_TRANS_COLL "trans"
#define MONGO_KV_COLL "kv"
/* Re-tries of a guarded update when the read that explains a miss finds the
 * guard true again (a concurrent change came and went). */
#define MONGO_GUARD_RETRIES 8

typedef struct mongo_store {
    struct store base; /* first: store.c sees a struct store */
    mongoc_client_pool_t *pool;
    mongoc_uri_t *uri;
    char *db_name;
} mongo_store;

/* One call's connection: a pooled client and one collection. */
typedef struct mongo_op {
    mongo_store *m;
    mongoc_client_t *client;
    mongoc_collection_t *coll;
} mongo_op;

/* Pops a client and opens collection; mongo_op_end undoes both. */
void mongo_op_begin(mongo_op *op, store *s, const char *collection);

/* NULL when dtmq can run on the server whose buildInfo reply this is, else
 * why not (a static string): FerretDB v1, whose guarded updates are not
 * atomic. */
const char *mongo_server_refusal(const bson_t *build_info);
void mongo_op_end(mongo_op *op);

/* STORE_UNAVAILABLE with "mongodb: WHAT: message" (STORE_INVALID when the
 * server or driver rejected the content, e.g. a document over 16 MiB). */
store_result mongo_failed(const char *what, const bson_error_t *e);
store_result mongo_oom(const char *what);
/* A duplicate key error (unique index). */
bool mongo_is_duplicate(const bson_error_t *e);
/* Integer field of a command reply, 0 if absent. */
int64_t mongo_reply_count(const bson_t *reply, const char *field);
int64_t mongo_add_saturating(int64_t a, int64_t b);

/* Appends {field: [v...]} and {field: {$in: [prepared, submitted, aborting]}}. */
void mongo_append_string_array(bson_t *doc, const char *field, const char *const *v, size_t n);
void mongo_append_unfinished(bson_t *doc, const char *field);

/* Runs a find; on_doc gets each result until it returns false. */
typedef bool (*mongo_doc_fn)(const bson_t *doc, void *ctx);
store_result mongo_find(mongo_op *op, const char *what, const bson_t *filter, const bson_t *opts,
                        mongo_doc_fn on_doc, void *ctx);
/* Reads one document: STORE_OK with *out (bson_destroy it) or STORE_NOT_FOUND. */
store_result mongo_find_one(mongo_op *op, const char *what, const bson_t *filter,
                            const bson_t *projection, bson_t **out);
/* update_one; *matched tells whether the filter matched a document. */
store_result mongo_update_one(mongo_op *op, const char *what, const bson_t *filter,
                              const bson_t *update, bool *matched);

/* ---- ops (contracts in store.h) ---- */
store_result mongo_store_create_trans(store *s, const trans_global *t);
store_result mongo_store_find_trans(store *s, const char *gid, trans_global **out);
store_result mongo_store_change_status(store *s, const char *gid, const char *expect_status,
                                       const store_status_change *change);
store_result mongo_store_append_branches(store *s, const char *gid, const char *expect_status,
                                         const trans_branch *b, size_t n);
store_result mongo_store_update_branches(store *s, const char *gid, const char *expect_status,
                                         const trans_branch *b, size_t n,
                                         const char *expect_branch_status);
store_result mongo_store_claim_due(store *s, int64_t now_ms, int64_t lease_ms, const char *owner,
                                   trans_global **out);
store_result mongo_store_touch_cron(store *s, const char *gid, const char *owner,
                                    int64_t next_cron_time, int64_t next_cron_interval);
store_result mongo_store_reset_cron_times(store *s, int64_t now_ms, int64_t after_ms, int limit,
                                          int *moved, bool *has_remaining);
store_result mongo_store_count_by_status(store *s, store_status_counts *out);
store_result mongo_store_delete_finished(store *s, int64_t before_ms, int limit, int *deleted);
store_result mongo_store_list_trans(store *s, const store_filter *filter, const char *cursor,
                                    int limit, store_trans_list *out, char **next_cursor);
store_result mongo_store_kv_create(store *s, const char *cat, const char *key, const char *value);
store_result mongo_store_kv_get(store *s, const char *cat, const char *key, store_kv_list *out);
store_result mongo_store_kv_update(store *s, const char *cat, const char *key, const char *value,
                                   int64_t expect_version);
store_result mongo_store_kv_delete(store *s, const char *cat, const char *key);
store_result mongo_store_kv_scan(store *s, const char *cat, const char *cursor, int limit,
                                 store_kv_list *out, char **next_cursor);

/* ---- BSON conversion (store_mongo_bson.c) ---- */

/*
 * The "key" of a branch: "<len(branch_id)>:<branch_id><op>", e.g. "2:01action".
 * Unambiguous for any pair of strings, so one string field identifies a
 * (branch_id, op) pair and a plain array match can guard on it (FerretDB v1
 * cannot $elemMatch on field conditions). malloc'd, NULL on out-of-memory.
 */
char *mongo_branch_key(const char *branch_id, const char *op);

/* Appends every field of t except _id and branches. false when t does not fit. */
bool mongo_bson_append_trans_fields(bson_t *doc, const trans_global *t);
/* Appends an array field of branch subdocuments
 * {key, branch_id, op, url, data, status, create/update/finish/rollback_time}. */
bool mongo_bson_append_branches(bson_t *doc, const char *field, const trans_branch *b, size_t n);

/* A transaction document to a new trans_global (with branches if the
 * document has them). NULL on out-of-memory or a document without gid. */
trans_global *mongo_bson_to_trans(const bson_t *doc);
/* A kv document into *out (strings malloc'd). false on out-of-memory. */
bool mongo_bson_to_kv(const bson_t *doc, store_kv *out);

/* Hex for opaque cursors: malloc'd, NULL on out-of-memory (decode: or not
 * valid hex of a non-empty string without NUL). */
char *mongo_hex_encode(const char *s);
char *mongo_hex_decode(const char *hex);

#endif
