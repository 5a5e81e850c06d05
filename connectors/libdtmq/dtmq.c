/*
 * dtmq.c — the implementation of <dtmq/dtmq.h>, what libdtmq's client,
 * worker and barrier share: result names, bodies and the one
 * result-to-HTTP-status mapping, error names, the branch identity, and the
 * one branch-query parser behind dtmq_branch_from_query,
 * dtmq_branch_info_from_query and dtmq_parse_branch_query. Pure C: no
 * library but libc, so a service using only dtmq.h links nothing else.
 *
 * Ownership: nothing is allocated; every output goes into the caller's
 * buffers, which are never written past the length given.
 */
#include <dtmq/dtmq.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- results and errors -------------------------------------------------- */

int dtmq_result_http_status(dtmq_result r)
{
    switch (r) {
    case DTMQ_SUCCESS:
        return 200;
    case DTMQ_FAILURE:
        return 409;
    case DTMQ_ONGOING:
        return 425;
    }
    return 500;
}

int dtmq_result_status(dtmq_result r)
{
    return dtmq_result_http_status(r);
}

const char *dtmq_result_name(dtmq_result r)
{
    switch (r) {
    case DTMQ_SUCCESS:
        return "SUCCESS";
    case DTMQ_FAILURE:
        return "FAILURE";
    case DTMQ_ONGOING:
        return "ONGOING";
    }
    return NULL;
}

const char *dtmq_result_body(dtmq_result r)
{
    switch (r) {
    case DTMQ_SUCCESS:
        return "{\"dtm_result\":\"SUCCESS\"}";
    case DTMQ_FAILURE:
        return "{\"dtm_result\":\"FAILURE\"}";
    case DTMQ_ONGOING:
        return "{\"dtm_result\":\"ONGOING\"}";
    }
    return "{\"message\":\"error\"}";
}

const char *dtmq_error_name(int code)
{
    switch (code) {
    case DTMQ_OK:
        return "DTMQ_OK";
    case DTMQ_ERR_INVALID:
        return "DTMQ_ERR_INVALID";
    case DTMQ_ERR_UNREACHABLE:
        return "DTMQ_ERR_UNREACHABLE";
    case DTMQ_ERR_FAILURE:
        return "DTMQ_ERR_FAILURE";
    case DTMQ_ERR_ONGOING:
        return "DTMQ_ERR_ONGOING";
    case DTMQ_ERR_SERVER:
        return "DTMQ_ERR_SERVER";
    case DTMQ_ERR_NOMEM:
        return "DTMQ_ERR_NOMEM";
    default:
        return "unknown";
    }
}

/* ---- the query parser ------------------------------------------------------ */

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

typedef enum { DECODE_OK, DECODE_BAD_ESCAPE, DECODE_TOO_LONG } decode_status;

/* URL-decodes s[0..n) into out (NUL-terminated, outlen bytes with the NUL). */
static decode_status url_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= n) /* needs two hex digits after it */
                return DECODE_BAD_ESCAPE;
            int h1 = hex_value(s[i + 1]), h2 = hex_value(s[i + 2]);
            if (h1 < 0 || h2 < 0 || h1 + h2 == 0) /* %00 would cut the value short */
                return DECODE_BAD_ESCAPE;
            c = (char)(h1 * 16 + h2);
            i += 2;
        }
        if (o + 1 >= outlen)
            return DECODE_TOO_LONG;
        out[o++] = c;
    }
    if (outlen == 0)
        return DECODE_TOO_LONG;
    out[o] = '\0';
    return DECODE_OK;
}

/* One field the parser looks for: its name and the caller's buffer. */
typedef struct query_field {
    const char *name;
    char *buf;
    size_t len;
    int found;
} query_field;

/* Decodes one "name=value" pair into the field it names, if any and the
 * first time. 0, or -1 + err. */
static int take_query_pair(const char *pair, size_t n, query_field *fields, size_t nfields,
                           char *err, size_t errlen)
{
    const char *eq = memchr(pair, '=', n);
    size_t name_len = eq ? (size_t)(eq - pair) : n;
    char name[32];
    if (url_decode(pair, name_len, name, sizeof(name)) != DECODE_OK)
        return 0; /* not a name we look for */
    for (size_t i = 0; i < nfields; i++) {
        query_field *f = &fields[i];
        if (strcmp(name, f->name) != 0 || f->found)
            continue;
        const char *value = eq ? eq + 1 : pair + n;
        size_t value_len = (size_t)(pair + n - value);
        decode_status s = f->buf ? url_decode(value, value_len, f->buf, f->len) : DECODE_TOO_LONG;
        if (s == DECODE_BAD_ESCAPE) {
            set_err(err, errlen, "query: %s: bad %%-escape", f->name);
            return -1;
        }
        if (s == DECODE_TOO_LONG) {
            set_err(err, errlen, "query: %s: longer than its buffer (%zu bytes)", f->name, f->len);
            return -1;
        }
        f->found = 1;
    }
    return 0;
}

/* Fills every field named in query (after '?' if any, before '#') in one
 * pass; then the first nrequired fields must have been found non-empty.
 * Fields not found are "". 0, or -1 + err. */
static int parse_query(const char *query, query_field *fields, size_t nfields, size_t nrequired,
                       char *err, size_t errlen)
{
    if (query == NULL) {
        set_err(err, errlen, "query: missing");
        return -1;
    }
    for (size_t i = 0; i < nfields; i++)
        if (fields[i].buf != NULL && fields[i].len > 0)
            fields[i].buf[0] = '\0';
    const char *q = strchr(query, '?');
    q = q ? q + 1 : query;
    size_t end = strcspn(q, "#"); /* a fragment is not part of the query */
    for (size_t start = 0; start < end;) {
        size_t n = strcspn(q + start, "&");
        if (start + n > end)
            n = end - start;
        if (n > 0 && take_query_pair(q + start, n, fields, nfields, err, errlen) != 0)
            return -1;
        start += n + 1;
    }
    for (size_t i = 0; i < nrequired; i++)
        if (!fields[i].found || fields[i].buf[0] == '\0') {
            set_err(err, errlen, "query: %s is missing", fields[i].name);
            return -1;
        }
    return 0;
}

int dtmq_query_value(const char *query, const char *name, char *out, size_t len, char *err,
                     size_t errlen)
{
    if (query == NULL || name == NULL || out == NULL || len == 0) {
        set_err(err, errlen, "query: missing argument");
        return -1;
    }
    query_field f = {name, out, len, 0};
    if (parse_query(query, &f, 1, 0, err, errlen) != 0)
        return -1;
    return f.found ? 0 : 1;
}

int dtmq_parse_branch_query(const char *query, char *gid, size_t gid_len, char *trans_type,
                            size_t tt_len, char *branch_id, size_t bid_len, char *op,
                            size_t op_len, char *err, size_t errlen)
{
    query_field fields[] = {{"gid", gid, gid_len, 0},
                            {"trans_type", trans_type, tt_len, 0},
                            {"branch_id", branch_id, bid_len, 0},
                            {"op", op, op_len, 0}};
    size_t n = sizeof(fields) / sizeof(fields[0]);
    return parse_query(query, fields, n, n, err, errlen);
}

int dtmq_branch_info_from_query(const char *query, dtmq_branch_info *out, char *err,
                                size_t errlen)
{
    if (out == NULL) {
        set_err(err, errlen, "query: no dtmq_branch_info to fill");
        return -1;
    }
    memset(out, 0, sizeof(*out));
    if (dtmq_parse_branch_query(query, out->gid, sizeof(out->gid), out->trans_type,
                                sizeof(out->trans_type), out->branch_id, sizeof(out->branch_id),
                                out->op, sizeof(out->op), err, errlen) != 0) {
        memset(out, 0, sizeof(*out));
        return -1;
    }
    return 0;
}

int dtmq_branch_from_query(const char *query, dtmq_branch_ref *out, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (out == NULL) {
        set_err(err, errlen, "dtmq_branch_from_query: out is NULL");
        return DTMQ_ERR_INVALID;
    }
    memset(out, 0, sizeof(*out));
    query_field fields[] = {{"gid", out->gid, sizeof(out->gid), 0},
                            {"trans_type", out->trans_type, sizeof(out->trans_type), 0},
                            {"branch_id", out->branch_id, sizeof(out->branch_id), 0},
                            {"op", out->op, sizeof(out->op), 0},
                            {"dtm", out->dtm, sizeof(out->dtm), 0},
                            {"phase2_url", out->phase2_url, sizeof(out->phase2_url), 0}};
    if (parse_query(query, fields, sizeof(fields) / sizeof(fields[0]), 4, err, errlen) != 0) {
        memset(out, 0, sizeof(*out));
        return DTMQ_ERR_INVALID;
    }
    return DTMQ_OK;
}

/* ---- the branch identity from fields ---------------------------------------- */

/* Copies value into buf (len bytes) when it is non-empty and fits. 0, or -1 + err. */
static int copy_field(const char *name, const char *value, char *buf, size_t len, char *err,
                      size_t errlen)
{
    if (value == NULL || value[0] == '\0') {
        set_err(err, errlen, "branch: %s is missing", name);
        return -1;
    }
    size_t n = strlen(value);
    if (n >= len) {
        set_err(err, errlen, "branch: %s is %zu bytes, at most %zu allowed", name, n, len - 1);
        return -1;
    }
    memcpy(buf, value, n + 1);
    return 0;
}

int dtmq_branch_info_from_fields(const char *gid, const char *trans_type, const char *branch_id,
                                 const char *op, dtmq_branch_info *out, char *err, size_t errlen)
{
    if (out == NULL) {
        set_err(err, errlen, "branch: no dtmq_branch_info to fill");
        return -1;
    }
    memset(out, 0, sizeof(*out));
    if (copy_field("gid", gid, out->gid, sizeof(out->gid), err, errlen) != 0 ||
        copy_field("trans_type", trans_type, out->trans_type, sizeof(out->trans_type), err,
                   errlen) != 0 ||
        copy_field("branch_id", branch_id, out->branch_id, sizeof(out->branch_id), err,
                   errlen) != 0 ||
        copy_field("op", op, out->op, sizeof(out->op), err, errlen) != 0) {
        memset(out, 0, sizeof(*out));
        return -1;
    }
    return 0;
}

int dtmq_branch_info_for_msg(const char *gid, dtmq_branch_info *out, char *err, size_t errlen)
{
    return dtmq_branch_info_from_fields(gid, "msg", DTMQ_MSG_BRANCH_ID, DTMQ_MSG_OP, out, err,
                                        errlen);
}
