/*
 * store_mongo.c — the MongoDB store backend (store.h) through libmongoc.
 *
 * Database: the URI's path component, "dtmq" if absent. Two collections:
 *   trans  one document per global transaction, branches embedded:
 *          { _id: ObjectId (made at insert; orders list_trans newest first),
 *            gid, trans_type, status, query_prepared, protocol, custom_data,
 *            options, steps, payloads, ext_data, result, rollback_reason, owner,
 *            create_time, update_time, finish_time, rollback_time, next_cron_time,
 *            next_cron_interval,                                   (int64)
 *            branches: [ { key: "<len(branch_id)>:<branch_id><op>", branch_id, op,
 *                          url, data: binary, status, create_time, update_time,
 *                          finish_time, rollback_time }, ... ] }   (insertion order)
 *   kv     { _id, cat, key, value, version, create_time, update_time }
 * Indexes: trans {gid} unique, {status, next_cron_time}, {create_time};
 *          kv {cat, key} unique. Absent strings are absent fields; times are ms.
 *
 * Atomicity. MongoDB matches and writes one document in one atomic step, so
 * every state change here is ONE single-document operation whose filter carries
 * its guard (gid absent via the unique index, expected status, expected KV
 * version, branch keys absent or at known array positions). When the filter
 * matches nothing, a follow-up read only explains why (not found / conflict /
 * duplicate); it never decides to write. Branches are append-only, so an array
 * position, once checked in the filter, always names the same branch.
 *
 * Durability: unless the URI sets w or journal, writes use w=majority, j=true
 * (wtimeout 10 s unless set), so STORE_OK means the write is acknowledged as
 * durable. Server selection times out after 5 s unless the URI says otherwise.
 *
 * Servers whose guarded update is NOT atomic are refused at open:
 * FerretDB v1 (buildInfo.ferretdbVersion 1.x) runs update and findAndModify
 * as "query, then replace by _id" in two separate steps, so two guarded
 * updates of one document can both "win" (measured: 199 of 200 rounds of 8
 * racing writers had several winners). Earlier versions of dtmq serialised
 * writes host-wide for it; that was correct on one host only, and the tests
 * now run on servers that are atomic (tests/services/mongo.sh, secantus.sh).
 *
 * Files: this one opens/closes and holds the shared helpers and the ops table;
 * store_mongo_trans.c, store_mongo_kv.c and store_mongo_bson.c hold the rest
 * (see store_mongo_internal.h).
 *
 * Threads: a mongoc_client_pool_t; each call pops a client and pushes it back.
 * mongoc_init() runs once per process (pthread_once), which also installs a log
 * handler (warnings and errors only). mongoc_cleanup() is never called: other
 * handles may still be open, and the library's globals are process-lifetime
 * (valgrind: still reachable, not leaked).
 */
#include "store_mongo_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_DB "dtmq"
#define DEFAULT_SERVER_SELECTION_MS 5000
#define DEFAULT_WTIMEOUT_MS 10000

static pthread_once_t mongo_init_once = PTHREAD_ONCE_INIT;

static const char *const unfinished_statuses[] = {TRANS_PREPARED, TRANS_SUBMITTED,
                                                  TRANS_ABORTING};

/* libmongoc's log, warnings and worse only (its debug lines repeat, e.g.
 * twice a second per unreachable host; failures reach callers as results),
 * less one warning: on a server without sessions (mongo-java-server) every
 * pool destroy would say that "endSessions" failed. */
static void mongo_store_log(mongoc_log_level_t level, const char *domain, const char *message,
                            void *data)
{
    if (level > MONGOC_LOG_LEVEL_WARNING ||
        (level == MONGOC_LOG_LEVEL_WARNING && strstr(message, "\"endSessions\"") != NULL))
        return;
    mongoc_log_default_handler(level, domain, message, data);
}

static void mongo_store_global_init(void)
{
    mongoc_init();
    mongoc_log_set_handler(mongo_store_log, NULL);
}

/* ---- small helpers ------------------------------------------------------ */

void mongo_op_begin(mongo_op *op, store *s, const char *collection)
{
    op->m = (mongo_store *)s;
    op->client = mongoc_client_pool_pop(op->m->pool);
    op->coll = mongoc_client_get_collection(op->client, op->m->db_name, collection);
}

void mongo_op_end(mongo_op *op)
{
    mongoc_collection_destroy(op->coll);
    mongoc_client_pool_push(op->m->pool, op->client);
}

/* Rejected for its content (a document over the size limit, a bad argument):
 * trying again cannot help, so this is STORE_INVALID, not STORE_UNAVAILABLE. */
static bool mongo_is_rejected(const bson_error_t *e)
{
    return e->domain == MONGOC_ERROR_BSON ||
           (e->domain == MONGOC_ERROR_COMMAND && e->code == MONGOC_ERROR_COMMAND_INVALID_ARG) ||
           (e->domain == MONGOC_ERROR_SERVER &&
            (e->code == 10334 || e->code == 17419 || e->code == 17420)); /* BSONObjectTooLarge */
}

/* e's message with line breaks made spaces (FerretDB's span lines). */
static const char *one_line(const bson_error_t *e, char *buf, size_t len)
{
    snprintf(buf, len, "%s", e->message);
    for (char *p = buf; *p != '\0'; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return buf;
}

store_result mongo_failed(const char *what, const bson_error_t *e)
{
    char msg[sizeof(e->message)];
    return store_set_error(mongo_is_rejected(e) ? STORE_INVALID : STORE_UNAVAILABLE,
                           "mongodb: %s: %s", what, one_line(e, msg, sizeof(msg)));
}

store_result mongo_oom(const char *what)
{
    return store_set_error(STORE_UNAVAILABLE, "mongodb: %s: out of memory", what);
}

bool mongo_is_duplicate(const bson_error_t *e)
{
    return e->code == 11000 || e->code == 11001 || e->code == 12582;
}

int64_t mongo_reply_count(const bson_t *reply, const char *field)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, reply, field) && BSON_ITER_HOLDS_NUMBER(&it))
        return bson_iter_as_int64(&it);
    return 0;
}

int64_t mongo_add_saturating(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

void mongo_append_string_array(bson_t *doc, const char *field, const char *const *v, size_t n)
{
    bson_t arr;
    BSON_APPEND_ARRAY_BEGIN(doc, field, &arr);
    for (size_t i = 0; i < n; i++) {
        char idx[24];
        const char *name;
        bson_uint32_to_string((uint32_t)i, &name, idx, sizeof(idx));
        BSON_APPEND_UTF8(&arr, name, v[i]);
    }
    bson_append_array_end(doc, &arr);
}

/* Appends {field: {$in: [prepared, submitted, aborting]}}. */
void mongo_append_unfinished(bson_t *doc, const char *field)
{
    bson_t in;
    BSON_APPEND_DOCUMENT_BEGIN(doc, field, &in);
    mongo_append_string_array(&in, "$in", unfinished_statuses,
                        sizeof(unfinished_statuses) / sizeof(unfinished_statuses[0]));
    bson_append_document_end(doc, &in);
}

store_result mongo_find(mongo_op *op, const char *what, const bson_t *filter,
                        const bson_t *opts, mongo_doc_fn on_doc, void *ctx)
{
    bson_error_t err;
    const bson_t *doc;
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(op->coll, filter, opts, NULL);
    bool more = true;
    while (more && mongoc_cursor_next(cur, &doc))
        more = on_doc(doc, ctx);
    store_result r = STORE_OK;
    if (mongoc_cursor_error(cur, &err))
        r = mongo_failed(what, &err);
    mongoc_cursor_destroy(cur);
    return r;
}

static bool copy_first(const bson_t *doc, void *ctx)
{
    *(bson_t **)ctx = bson_copy(doc);
    return false;
}

/* Reads one document: STORE_OK with *out (bson_destroy it), or STORE_NOT_FOUND. */
store_result mongo_find_one(mongo_op *op, const char *what, const bson_t *filter,
                            const bson_t *projection, bson_t **out)
{
    bson_t opts = BSON_INITIALIZER;
    *out = NULL;
    BSON_APPEND_INT64(&opts, "limit", 1);
    if (projection != NULL)
        BSON_APPEND_DOCUMENT(&opts, "projection", projection);
    store_result r = mongo_find(op, what, filter, &opts, copy_first, out);
    bson_destroy(&opts);
    if (r != STORE_OK)
        return r;
    return *out != NULL ? STORE_OK : STORE_NOT_FOUND;
}

/* update_one; *matched gets whether the filter matched a document. */
store_result mongo_update_one(mongo_op *op, const char *what, const bson_t *filter,
                              const bson_t *update, bool *matched)
{
    bson_t reply;
    bson_error_t err;
    bool ok = mongoc_collection_update_one(op->coll, filter, update, NULL, &reply, &err);
    *matched = ok && mongo_reply_count(&reply, "matchedCount") > 0;
    bson_destroy(&reply);
    return ok ? STORE_OK : mongo_failed(what, &err);
}

/* ---- open / close ------------------------------------------------------- */

/* uri with the password between "user:" and "@" replaced by "***"; malloc'd. */
static char *mongo_store_redact_uri(const char *uri)
{
    const char *auth = strstr(uri, "://");
    auth = auth ? auth + 3 : uri;
    const char *end = auth + strcspn(auth, "/?");
    const char *at = NULL;
    for (const char *p = auth; p < end; p++)
        if (*p == '@')
            at = p;
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon == NULL)
        return strdup(uri);
    size_t head = (size_t)(colon + 1 - uri);
    size_t len = head + 3 + strlen(at) + 1;
    char *out = malloc(len);
    if (out != NULL)
        snprintf(out, len, "%.*s***%s", (int)head, uri, at);
    return out;
}

/* "host:port,host:port" of the URI, for error lines. */
static void mongo_store_hosts(const mongoc_uri_t *uri, char *buf, size_t len)
{
    const char *srv = mongoc_uri_get_srv_hostname(uri);
    size_t used = 0;
    buf[0] = '\0';
    if (srv != NULL) {
        snprintf(buf, len, "%s", srv);
        return;
    }
    for (const mongoc_host_list_t *h = mongoc_uri_get_hosts(uri); h != NULL && used < len;
         h = h->next) {
        int n = snprintf(buf + used, len - used, "%s%s", used ? "," : "", h->host_and_port);
        used += n > 0 ? (size_t)n : 0;
    }
}

/* Applies this store's defaults where the URI is silent; false if libmongoc
 * refuses one (it should not). */
static bool mongo_store_uri_defaults(mongoc_uri_t *uri)
{
    bool ok = true;
    if (!mongoc_uri_has_option(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
        ok = mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS,
                                            DEFAULT_SERVER_SELECTION_MS);
    const mongoc_write_concern_t *given = mongoc_uri_get_write_concern(uri);
    if (mongoc_write_concern_get_w(given) == MONGOC_WRITE_CONCERN_W_DEFAULT &&
        !mongoc_write_concern_journal_is_set(given)) {
        /* Journaled majority: a STORE_OK write survives a primary's crash. */
        mongoc_write_concern_t *wc = mongoc_write_concern_new();
        int32_t wtimeout = mongoc_uri_get_option_as_int32(uri, MONGOC_URI_WTIMEOUTMS,
                                                          DEFAULT_WTIMEOUT_MS);
        mongoc_write_concern_set_wmajority(wc, wtimeout);
        mongoc_write_concern_set_journal(wc, true);
        mongoc_uri_set_write_concern(uri, wc);
        mongoc_write_concern_destroy(wc);
    }
    if (mongoc_uri_get_appname(uri) == NULL)
        ok = mongoc_uri_set_appname(uri, "dtmq") && ok;
    return ok;
}

/* Creates the indexes if missing. One createIndexes command per index:
 * FerretDB v1.24 panics on a command listing several indexes that all exist. */
static bool mongo_store_create_indexes(mongo_store *m, mongoc_client_t *client, bson_error_t *err)
{
    bson_t *cmds[] = {
        BCON_NEW("createIndexes", BCON_UTF8(MONGO_TRANS_COLL), "indexes", "[", "{", "key", "{",
                 "gid", BCON_INT32(1), "}", "name", BCON_UTF8("gid_1"), "unique",
                 BCON_BOOL(true), "}", "]"),
        BCON_NEW("createIndexes", BCON_UTF8(MONGO_TRANS_COLL), "indexes", "[", "{", "key", "{",
                 "status", BCON_INT32(1), "next_cron_time", BCON_INT32(1), "}", "name",
                 BCON_UTF8("status_1_next_cron_time_1"), "}", "]"),
        BCON_NEW("createIndexes", BCON_UTF8(MONGO_TRANS_COLL), "indexes", "[", "{", "key", "{",
                 "create_time", BCON_INT32(1), "}", "name", BCON_UTF8("create_time_1"), "}",
                 "]"),
        BCON_NEW("createIndexes", BCON_UTF8(MONGO_KV_COLL), "indexes", "[", "{", "key", "{",
                 "cat", BCON_INT32(1), "key", BCON_INT32(1), "}", "name",
                 BCON_UTF8("cat_1_key_1"), "unique", BCON_BOOL(true), "}", "]"),
    };
    bool ok = true;
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        ok = ok && mongoc_client_write_command_with_opts(client, m->db_name, cmds[i], NULL, NULL,
                                                         err);
        bson_destroy(cmds[i]);
    }
    return ok;
}

const char *mongo_server_refusal(const bson_t *build_info)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, build_info, "ferretdbVersion"))
        return NULL;
    const char *v = BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, NULL) : "";
    if (v[0] == 'v')
        v++;
    if (v[0] == '1' && (v[1] == '.' || v[1] == '\0'))
        return "FerretDB v1 does not make a guarded update atomic (two writers can both win), "
               "so dtmq cannot keep transactions consistent on it; use MongoDB (or FerretDB v2)";
    return NULL;
}

/* Pings, refuses servers that are not atomic, creates indexes; one line into err on failure. */
static bool mongo_store_prepare(mongo_store *m, char *err, size_t errlen)
{
    bson_error_t e;
    bson_t reply;
    char hosts[256];
    mongoc_client_t *client = mongoc_client_pool_pop(m->pool);
    bson_t *cmd = BCON_NEW("ping", BCON_INT32(1));
    bool ok = mongoc_client_command_simple(client, "admin", cmd, NULL, &reply, &e);
    bson_destroy(cmd);
    bson_destroy(&reply);
    if (!ok) {
        mongo_store_hosts(m->uri, hosts, sizeof(hosts));
        snprintf(err, errlen, "store: cannot connect to MongoDB at %s: %s", hosts, e.message);
        goto out;
    }
    cmd = BCON_NEW("buildInfo", BCON_INT32(1));
    ok = mongoc_client_command_simple(client, "admin", cmd, NULL, &reply, &e);
    const char *refusal = ok ? mongo_server_refusal(&reply) : NULL;
    if (refusal != NULL) {
        mongo_store_hosts(m->uri, hosts, sizeof(hosts));
        snprintf(err, errlen, "store: the server at %s is refused: %s", hosts, refusal);
        ok = false;
    }
    bson_destroy(cmd);
    bson_destroy(&reply);
    if (!ok) {
        if (refusal == NULL)
            snprintf(err, errlen, "store: MongoDB buildInfo failed: %s", e.message);
        goto out;
    }
    ok = mongo_store_create_indexes(m, client, &e);
    if (!ok)
        snprintf(err, errlen, "store: cannot create MongoDB indexes in %s: %s", m->db_name,
                 e.message);
out:
    mongoc_client_pool_push(m->pool, client);
    return ok;
}

static void mongo_store_close(store *s)
{
    mongo_store *m = (mongo_store *)s;
    if (m->pool != NULL)
        mongoc_client_pool_destroy(m->pool);
    mongoc_uri_destroy(m->uri);
    free(m->db_name);
    free(m);
}

static const store_ops mongo_store_ops;

store *store_mongo_open(const char *uri_text, char *err, size_t errlen)
{
    bson_error_t e;
    pthread_once(&mongo_init_once, mongo_store_global_init);
    mongo_store *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        snprintf(err, errlen, "store: out of memory");
        return NULL;
    }
    m->base.ops = &mongo_store_ops;
    m->base.display_uri = mongo_store_redact_uri(uri_text);
    if (m->base.display_uri == NULL) {
        snprintf(err, errlen, "store: out of memory");
        goto fail;
    }
    m->uri = mongoc_uri_new_with_error(uri_text, &e);
    if (m->uri == NULL) {
        snprintf(err, errlen, "store: bad MongoDB URI '%s': %s", m->base.display_uri, e.message);
        goto fail;
    }
    if (!mongo_store_uri_defaults(m->uri)) {
        snprintf(err, errlen, "store: cannot set defaults on MongoDB URI '%s'",
                 m->base.display_uri);
        goto fail;
    }
    const char *db = mongoc_uri_get_database(m->uri);
    m->db_name = strdup(db != NULL && db[0] != '\0' ? db : DEFAULT_DB);
    if (m->db_name == NULL) {
        snprintf(err, errlen, "store: out of memory");
        goto fail;
    }
    m->pool = mongoc_client_pool_new_with_error(m->uri, &e);
    if (m->pool == NULL) {
        snprintf(err, errlen, "store: cannot use MongoDB URI: %s", e.message);
        goto fail;
    }
    if (!mongoc_client_pool_set_error_api(m->pool, MONGOC_ERROR_API_VERSION_2)) {
        snprintf(err, errlen, "store: libmongoc refused error API version 2");
        goto fail;
    }
    if (!mongo_store_prepare(m, err, errlen))
        goto fail;
    return &m->base;
fail:
    for (char *p = err; errlen > 0 && *p != '\0'; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' '; /* one line, whatever the server said */
    free(m->base.display_uri);
    mongo_store_close(&m->base);
    return NULL;
}

/* ---- ping / drop ---------------------------------------------------------- */

static store_result mongo_store_ping(store *s)
{
    mongo_store *m = (mongo_store *)s;
    bson_error_t e;
    mongoc_client_t *client = mongoc_client_pool_pop(m->pool);
    bson_t *cmd = BCON_NEW("ping", BCON_INT32(1));
    bool ok = mongoc_client_command_simple(client, "admin", cmd, NULL, NULL, &e);
    bson_destroy(cmd);
    mongoc_client_pool_push(m->pool, client);
    return ok ? STORE_OK : mongo_failed("ping", &e);
}

static store_result mongo_store_drop_all(store *s)
{
    const char *colls[] = {MONGO_TRANS_COLL, MONGO_KV_COLL};
    bson_t all = BSON_INITIALIZER;
    store_result r = STORE_OK;
    for (size_t i = 0; r == STORE_OK && i < 2; i++) {
        mongo_op op;
        bson_error_t e;
        mongo_op_begin(&op, s, colls[i]);
        if (!mongoc_collection_delete_many(op.coll, &all, NULL, NULL, &e))
            r = mongo_failed("drop_all", &e);
        mongo_op_end(&op);
    }
    bson_destroy(&all);
    return r;
}


static const store_ops mongo_store_ops = {
    .driver = "mongodb",
    .close = mongo_store_close,
    .ping = mongo_store_ping,
    .drop_all = mongo_store_drop_all,
    .create_trans = mongo_store_create_trans,
    .find_trans = mongo_store_find_trans,
    .change_status = mongo_store_change_status,
    .append_branches = mongo_store_append_branches,
    .update_branches = mongo_store_update_branches,
    .claim_due = mongo_store_claim_due,
    .touch_cron = mongo_store_touch_cron,
    .reset_cron_times = mongo_store_reset_cron_times,
    .list_trans = mongo_store_list_trans,
    .count_by_status = mongo_store_count_by_status,
    .delete_finished = mongo_store_delete_finished,
    .kv_create = mongo_store_kv_create,
    .kv_get = mongo_store_kv_get,
    .kv_update = mongo_store_kv_update,
    .kv_delete = mongo_store_kv_delete,
    .kv_scan = mongo_store_kv_scan,
};
