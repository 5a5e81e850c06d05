/*
 * store_mongo_bson.c — converts trans_global / trans_branch / store_kv to and
 * from the BSON documents the MongoDB store keeps (shapes in store_mongo.c).
 *
 * Strings that are NULL in C are absent in BSON and read back as NULL; times
 * are int64 milliseconds; branch data is BSON binary (subtype generic), absent
 * when empty. Field lists are tables of offsets so both directions stay in step.
 */
#include "store_mongo_internal.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct field_map {
    const char *name;
    size_t offset;
} field_map;

#define TG_STR(f) {#f, offsetof(trans_global, f)}
static const field_map trans_strings[] = {
    TG_STR(gid),         TG_STR(trans_type), TG_STR(status),  TG_STR(query_prepared),
    TG_STR(protocol),    TG_STR(custom_data), TG_STR(options), TG_STR(steps),
    TG_STR(payloads),    TG_STR(ext_data),   TG_STR(result),  TG_STR(rollback_reason),
    TG_STR(owner),
};
static const field_map trans_times[] = {
    TG_STR(create_time),    TG_STR(update_time),    TG_STR(finish_time),
    TG_STR(rollback_time),  TG_STR(next_cron_time), TG_STR(next_cron_interval),
};
#undef TG_STR

#define TB_FIELD(f) {#f, offsetof(trans_branch, f)}
static const field_map branch_strings[] = {
    TB_FIELD(branch_id), TB_FIELD(op), TB_FIELD(url), TB_FIELD(status),
};
static const field_map branch_times[] = {
    TB_FIELD(create_time), TB_FIELD(update_time), TB_FIELD(finish_time), TB_FIELD(rollback_time),
};
#undef TB_FIELD

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define STR_AT(base, off) ((char **)((char *)(base) + (off)))
#define STR_IN(base, off) (*(char *const *)((const char *)(base) + (off)))
#define I64_AT(base, off) ((int64_t *)((char *)(base) + (off)))
#define I64_IN(base, off) (*(const int64_t *)((const char *)(base) + (off)))

char *mongo_branch_key(const char *branch_id, const char *op)
{
    size_t len = strlen(branch_id) + strlen(op) + 24;
    char *key = malloc(len);
    if (key != NULL)
        snprintf(key, len, "%zu:%s%s", strlen(branch_id), branch_id, op);
    return key;
}

static bool append_fields(bson_t *doc, const void *base, const field_map *strs, size_t nstrs,
                          const field_map *times, size_t ntimes)
{
    for (size_t i = 0; i < nstrs; i++) {
        const char *v = STR_IN(base, strs[i].offset);
        if (v != NULL && !BSON_APPEND_UTF8(doc, strs[i].name, v))
            return false;
    }
    for (size_t i = 0; i < ntimes; i++)
        if (!BSON_APPEND_INT64(doc, times[i].name, I64_IN(base, times[i].offset)))
            return false;
    return true;
}

bool mongo_bson_append_trans_fields(bson_t *doc, const trans_global *t)
{
    return append_fields(doc, t, trans_strings, COUNT(trans_strings), trans_times,
                         COUNT(trans_times));
}

static bool append_branch(bson_t *doc, const char *field, const trans_branch *b)
{
    bson_t sub;
    char *key = mongo_branch_key(b->branch_id, b->op);
    if (key == NULL)
        return false;
    bool ok = BSON_APPEND_DOCUMENT_BEGIN(doc, field, &sub);
    ok = ok && BSON_APPEND_UTF8(&sub, "key", key);
    ok = ok && append_fields(&sub, b, branch_strings, COUNT(branch_strings), branch_times,
                             COUNT(branch_times));
    if (ok && b->data != NULL && b->data_len > 0)
        ok = b->data_len <= UINT32_MAX &&
             BSON_APPEND_BINARY(&sub, "data", BSON_SUBTYPE_BINARY, b->data, (uint32_t)b->data_len);
    ok = bson_append_document_end(doc, &sub) && ok;
    free(key);
    return ok;
}

bool mongo_bson_append_branches(bson_t *doc, const char *field, const trans_branch *b, size_t n)
{
    bson_t arr;
    if (!BSON_APPEND_ARRAY_BEGIN(doc, field, &arr))
        return false;
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++) {
        char idx[24];
        const char *name;
        bson_uint32_to_string((uint32_t)i, &name, idx, sizeof(idx));
        ok = append_branch(&arr, name, &b[i]);
    }
    return bson_append_array_end(doc, &arr) && ok;
}

/* Reads a field named in one of the tables into base; true if it was one. */
static bool read_field(const bson_iter_t *it, void *base, const field_map *strs, size_t nstrs,
                       const field_map *times, size_t ntimes, bool *oom)
{
    const char *name = bson_iter_key(it);
    for (size_t i = 0; i < nstrs; i++) {
        if (strcmp(name, strs[i].name) != 0)
            continue;
        if (BSON_ITER_HOLDS_UTF8(it)) {
            char **field = STR_AT(base, strs[i].offset);
            free(*field);
            *field = strdup(bson_iter_utf8(it, NULL));
            *oom = *oom || *field == NULL;
        }
        return true;
    }
    for (size_t i = 0; i < ntimes; i++) {
        if (strcmp(name, times[i].name) != 0)
            continue;
        if (BSON_ITER_HOLDS_NUMBER(it))
            *I64_AT(base, times[i].offset) = bson_iter_as_int64(it);
        return true;
    }
    return false;
}

static bool read_branch_data(const bson_iter_t *it, trans_branch *b)
{
    bson_subtype_t subtype;
    uint32_t len = 0;
    const uint8_t *bytes = NULL;
    if (!BSON_ITER_HOLDS_BINARY(it))
        return true;
    bson_iter_binary(it, &subtype, &len, &bytes);
    if (len == 0)
        return true;
    b->data = malloc((size_t)len + 1);
    if (b->data == NULL)
        return false;
    memcpy(b->data, bytes, len);
    b->data[len] = '\0'; /* like trans_branch_copy: data is also usable as text */
    b->data_len = len;
    return true;
}

static bool read_branch(const bson_iter_t *elem, trans_global *t)
{
    bson_iter_t it;
    trans_branch b = {0};
    bool oom = false;
    if (!BSON_ITER_HOLDS_DOCUMENT(elem) || !bson_iter_recurse(elem, &it))
        return true; /* not a branch: skip it */
    while (!oom && bson_iter_next(&it)) {
        if (strcmp(bson_iter_key(&it), "data") == 0)
            oom = !read_branch_data(&it, &b);
        else
            read_field(&it, &b, branch_strings, COUNT(branch_strings), branch_times,
                       COUNT(branch_times), &oom);
    }
    /* Branches are appended by value (trans_add_branch copies), so append
     * then clear our temporary. */
    if (!oom && b.branch_id != NULL && b.op != NULL)
        oom = trans_add_branch(t, &b) != 0;
    trans_branch_clear(&b);
    return !oom;
}

trans_global *mongo_bson_to_trans(const bson_t *doc)
{
    bson_iter_t it;
    trans_global *t = trans_new();
    bool oom = t == NULL || !bson_iter_init(&it, doc);
    while (!oom && bson_iter_next(&it)) {
        if (read_field(&it, t, trans_strings, COUNT(trans_strings), trans_times,
                       COUNT(trans_times), &oom))
            continue;
        if (strcmp(bson_iter_key(&it), "branches") == 0 && BSON_ITER_HOLDS_ARRAY(&it)) {
            bson_iter_t arr;
            if (!bson_iter_recurse(&it, &arr))
                continue;
            while (!oom && bson_iter_next(&arr))
                oom = !read_branch(&arr, t);
        }
    }
    if (oom || t->gid == NULL) {
        trans_free(t);
        return NULL;
    }
    return t;
}

bool mongo_bson_to_kv(const bson_t *doc, store_kv *out)
{
    static const field_map kv_strings[] = {
        {"cat", offsetof(store_kv, cat)},
        {"key", offsetof(store_kv, key)},
        {"value", offsetof(store_kv, value)},
    };
    static const field_map kv_ints[] = {
        {"version", offsetof(store_kv, version)},
        {"create_time", offsetof(store_kv, create_time)},
        {"update_time", offsetof(store_kv, update_time)},
    };
    bson_iter_t it;
    bool oom = false;
    memset(out, 0, sizeof(*out));
    bool have = bson_iter_init(&it, doc);
    while (have && !oom && bson_iter_next(&it))
        read_field(&it, out, kv_strings, COUNT(kv_strings), kv_ints, COUNT(kv_ints), &oom);
    /* A kv entry always has cat, key and value ("" at least). */
    for (size_t i = 0; !oom && i < COUNT(kv_strings); i++) {
        char **field = STR_AT(out, kv_strings[i].offset);
        if (*field == NULL)
            oom = (*field = strdup("")) == NULL;
    }
    if (oom) {
        free(out->cat);
        free(out->key);
        free(out->value);
        memset(out, 0, sizeof(*out));
    }
    return !oom;
}

char *mongo_hex_encode(const char *s)
{
    static const char digits[] = "0123456789abcdef";
    size_t n = strlen(s);
    char *hex = malloc(2 * n + 1);
    if (hex == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = digits[(unsigned char)s[i] >> 4];
        hex[2 * i + 1] = digits[(unsigned char)s[i] & 0xf];
    }
    hex[2 * n] = '\0';
    return hex;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *mongo_hex_decode(const char *hex)
{
    size_t n = strlen(hex);
    if (n % 2 != 0)
        return NULL;
    char *s = malloc(n / 2 + 1);
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(s);
            return NULL;
        }
        s[i] = (char)(hi << 4 | lo);
    }
    s[n / 2] = '\0';
    return s;
}
