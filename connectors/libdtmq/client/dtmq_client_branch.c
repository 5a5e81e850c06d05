/*
 * dtmq_client_branch.c — helpers for a service's HTTP branch handlers (the
 * dtm-* fields of a branch call's query string, the status and body DTM
 * expects for a result) and the small codecs the SDK needs: query-string
 * building and parsing.
 */
#include "dtmq_client_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- results ---------- */

int dtmq_result_status(dtmq_result r)
{
    return dtmq_result_http_status(r);
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
    default:
        return "{\"message\":\"error\"}";
    }
}

/* ---------- query strings ---------- */

static int sdk_optional_field(const char *query, const char *name, char *out, size_t len,
                              char *err, size_t errlen)
{
    char why[200];
    if (dtmq_query_value(query, name, out, len, why, sizeof(why)) < 0)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID, "%s", why);
    return DTMQ_OK;
}

int dtmq_branch_from_query(const char *query, dtmq_branch_ref *out, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (out == NULL)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID, "dtmq_branch_from_query: out is NULL");
    memset(out, 0, sizeof(*out));
    int rc = DTMQ_OK;
    if (dtmq_parse_branch_query(query, out->gid, sizeof(out->gid), out->trans_type,
                                sizeof(out->trans_type), out->branch_id, sizeof(out->branch_id),
                                out->op, sizeof(out->op), err, errlen) != 0)
        rc = DTMQ_ERR_INVALID;
    else if ((rc = sdk_optional_field(query, "dtm", out->dtm, sizeof(out->dtm), err, errlen)) ==
             DTMQ_OK)
        rc = sdk_optional_field(query, "phase2_url", out->phase2_url, sizeof(out->phase2_url),
                                err, errlen);
    if (rc != DTMQ_OK)
        memset(out, 0, sizeof(*out));
    return rc;
}

/* RFC 3986's unreserved characters, kept as they are in a query value. */
static int sdk_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

/* Length of s percent-encoded. */
static size_t sdk_escaped_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += sdk_unreserved((unsigned char)*s) ? 1 : 3;
    return n;
}

static char *sdk_escape_into(char *w, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (sdk_unreserved(*p)) {
            *w++ = (char)*p;
        } else {
            *w++ = '%';
            *w++ = hex[*p >> 4];
            *w++ = hex[*p & 15];
        }
    }
    return w;
}

char *dtmq_sdk_url_with_query(const char *url, const char *const *pairs, size_t npairs)
{
    size_t n = strlen(url) + 1;
    for (size_t i = 0; i + 1 < npairs; i += 2)
        n += 2 + sdk_escaped_len(pairs[i]) + sdk_escaped_len(pairs[i + 1]);
    char *out = malloc(n + 1), *w = out;
    if (out == NULL)
        return NULL;
    w += sprintf(w, "%s", url);
    char sep = strchr(url, '?') != NULL ? '&' : '?';
    for (size_t i = 0; i + 1 < npairs; i += 2) {
        *w++ = sep;
        sep = '&';
        w = sdk_escape_into(w, pairs[i]);
        *w++ = '=';
        w = sdk_escape_into(w, pairs[i + 1]);
    }
    *w = '\0';
    return out;
}

