/*
 * dtmq_client_branch.c — the query-string builder the SDK needs to call a
 * TCC/XA branch (url?dtm=..&gid=..). Reading such a query string back is the
 * shared parser's job (connectors/libdtmq/dtmq.c).
 */
#include "dtmq_client_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* dtmq_result_status, dtmq_result_body and dtmq_branch_from_query (the
 * branch-query parser) are in connectors/libdtmq/dtmq.c, with the rest of dtmq.h. */

/* ---------- query strings ---------- */

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

