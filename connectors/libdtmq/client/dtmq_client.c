/*
 * dtmq_client.c — libdtmq's client: options, lifetime, error names, the HTTP
 * transport (one libcurl easy handle per call, so a client may be shared by
 * threads) and the two ways an answer is read: as DTM's SDK reads the
 * server's (non-200 or FAILURE in the body is a failure) and as dtmq reads a
 * branch's (ONGOING, then FAILURE, then other non-200).
 */
#include "dtmq_client_internal.h"
#include "libdtmq/common/rules.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dtmq_sdk_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static void sdk_clear_err(char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
}

/* dtmq_error_name is in connectors/libdtmq/dtmq.c, with the rest of dtmq.h. */

/* ---------- client ---------- */

static int sdk_is_http_url(const char *url)
{
    return dtmq_url_kind_of(url, 0) == DTMQ_URL_HTTP;
}

static int sdk_check_options(const dtmq_client_options *o, char *err, size_t errlen)
{
    if (o == NULL)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID, "client options: missing");
    int has_server = o->server != NULL && o->server[0] != '\0';
    int has_kafka = o->kafka_bootstrap != NULL && o->kafka_bootstrap[0] != '\0';
    if (!has_server && !has_kafka)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID,
                        "client options: give server (HTTP) or kafka_bootstrap (Kafka), or both");
    if (has_server && !sdk_is_http_url(o->server))
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID,
                        "client options: server '%s' is not an http(s):// URL", o->server);
    if (o->timeout_ms < 0)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID,
                        "client options: timeout_ms %d is negative", o->timeout_ms);
    if (o->submit_topic != NULL && o->submit_topic[0] == '\0')
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID, "client options: submit_topic is empty");
    return DTMQ_OK;
}

static char *sdk_strdup_opt(const char *s)
{
    return s != NULL && s[0] != '\0' ? strdup(s) : NULL;
}

/* Copies the options into c; 0 or DTMQ_ERR_NOMEM. */
static int sdk_client_copy(dtmq_client *c, const dtmq_client_options *o)
{
    c->server = sdk_strdup_opt(o->server);
    c->bootstrap = sdk_strdup_opt(o->kafka_bootstrap);
    c->submit_topic = strdup(o->submit_topic != NULL ? o->submit_topic : "dtm.submit");
    c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : SDK_DEFAULT_TIMEOUT_MS;
    if ((o->server != NULL && o->server[0] != '\0' && c->server == NULL) ||
        (o->kafka_bootstrap != NULL && o->kafka_bootstrap[0] != '\0' && c->bootstrap == NULL) ||
        c->submit_topic == NULL)
        return DTMQ_ERR_NOMEM;
    if (c->server != NULL) {
        size_t n = strlen(c->server);
        while (n > 0 && c->server[n - 1] == '/')
            c->server[--n] = '\0';
    }
    return DTMQ_OK;
}

static void sdk_client_release(dtmq_client *c)
{
    free(c->server);
    free(c->bootstrap);
    free(c->submit_topic);
    free(c);
}

dtmq_client *dtmq_client_new(const dtmq_client_options *o, char *err, size_t errlen)
{
    sdk_clear_err(err, errlen);
    if (sdk_check_options(o, err, errlen) != DTMQ_OK)
        return NULL;
    dtmq_client *c = calloc(1, sizeof(*c));
    if (c == NULL || sdk_client_copy(c, o) != DTMQ_OK) {
        dtmq_sdk_fail(err, errlen, DTMQ_ERR_NOMEM, "client: out of memory");
        if (c != NULL)
            sdk_client_release(c);
        return NULL;
    }
    if (c->bootstrap != NULL) {
        c->producer = dtmq_kafka_producer_start(c->bootstrap, err, errlen);
        if (c->producer == NULL) {
            sdk_client_release(c);
            return NULL;
        }
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        dtmq_sdk_fail(err, errlen, DTMQ_ERR_NOMEM, "client: libcurl could not be initialised");
        dtmq_kafka_producer_stop(c->producer, 0);
        sdk_client_release(c);
        return NULL;
    }
    return c;
}

void dtmq_client_free(dtmq_client *c)
{
    if (c == NULL)
        return;
    dtmq_kafka_producer_stop(c->producer, c->timeout_ms);
    sdk_client_release(c);
    curl_global_cleanup();
}

/* ---------- HTTP transport ---------- */

typedef struct sdk_buf {
    char *data;
    size_t len, cap;
    int too_big;
} sdk_buf;

static size_t sdk_on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
    sdk_buf *b = arg;
    size_t n = size * nmemb;
    if (b->len + n > SDK_MAX_BODY) {
        b->too_big = 1;
        return 0; /* makes curl stop with CURLE_WRITE_ERROR */
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (grown == NULL)
            return 0;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* The request headers: JSON content type for bodies, no Expect, plus extra. */
static struct curl_slist *sdk_headers(const char *body, const json_t *extra, int *oom)
{
    struct curl_slist *list = NULL, *next;
    *oom = 0;
    if (body != NULL) {
        next = curl_slist_append(list, "Content-Type: application/json");
        *oom |= next == NULL;
        list = next ? next : list;
    }
    next = curl_slist_append(list, "Expect:");
    *oom |= next == NULL;
    list = next ? next : list;
    const char *name;
    json_t *value;
    json_object_foreach((json_t *)extra, name, value) {
        char *line = NULL;
        if (asprintf(&line, "%s: %s", name, json_string_value(value)) < 0) {
            *oom = 1;
            continue;
        }
        next = curl_slist_append(list, line);
        free(line);
        *oom |= next == NULL;
        list = next ? next : list;
    }
    return list;
}

static void sdk_set_request(CURL *h, const dtmq_client *c, const char *method, const char *url,
                            const char *body, struct curl_slist *headers)
{
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    if (body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    if (strcmp(method, "GET") == 0 && body == NULL)
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    else if (strcmp(method, "POST") != 0 || body == NULL)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
}

int dtmq_sdk_http(const dtmq_client *c, const char *method, const char *url, const char *body,
             const json_t *headers, sdk_http_reply *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    int oom = 0;
    CURL *h = curl_easy_init();
    struct curl_slist *list = h ? sdk_headers(body, headers, &oom) : NULL;
    if (h == NULL || oom) {
        curl_slist_free_all(list);
        curl_easy_cleanup(h);
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_NOMEM, "%s %s: out of memory", method, url);
    }
    sdk_buf buf = {NULL, 0, 0, 0};
    char curl_err[CURL_ERROR_SIZE] = "";
    sdk_set_request(h, c, method, url, body, list);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sdk_on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &buf);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(list);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK) {
        free(buf.data);
        out->status = 0;
        if (buf.too_big)
            return dtmq_sdk_fail(err, errlen, DTMQ_ERR_SERVER, "%s %s: answer larger than %d bytes",
                            method, url, SDK_MAX_BODY);
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_UNREACHABLE, "%s %s: %s%s%s", method, url,
                        curl_easy_strerror(rc), curl_err[0] ? ": " : "", curl_err);
    }
    out->body = buf.data != NULL ? buf.data : strdup("");
    out->len = buf.len;
    if (out->body == NULL)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_NOMEM, "%s %s: out of memory", method, url);
    return DTMQ_OK;
}

/* ---------- reading answers ---------- */

/* The answer's "message" when it is JSON with one, else the body itself. */
static void sdk_reply_message(const sdk_http_reply *r, char *msg, size_t len)
{
    json_t *j = json_loadb(r->body, r->len, 0, NULL);
    const char *m = json_string_value(json_object_get(j, "message"));
    if (m != NULL && m[0] != '\0')
        snprintf(msg, len, "%s", m);
    else if (r->len > 0)
        snprintf(msg, len, "%s", r->body);
    else
        snprintf(msg, len, "(empty body)");
    json_decref(j);
}

/* A 200 that still says FAILURE: DTM's SDK looks for the word anywhere in
 * the body; a JSON object is asked for its dtm_result instead, so that the
 * word inside data (a workflow's rollback_reason, say) is not misread. */
static int sdk_body_says_failure(const sdk_http_reply *r)
{
    json_t *j = json_loadb(r->body, r->len, 0, NULL);
    int failure;
    if (json_is_object(j)) {
        const char *result = json_string_value(json_object_get(j, "dtm_result"));
        failure = result != NULL && strcmp(result, "FAILURE") == 0;
    } else {
        failure = strstr(r->body, "FAILURE") != NULL;
    }
    json_decref(j);
    return failure;
}

int dtmq_sdk_map_server_reply(const char *method, const char *url, const sdk_http_reply *r,
                         char *err, size_t errlen)
{
    int failure = r->status == 409 || sdk_body_says_failure(r);
    if (r->status == 200 && !failure)
        return DTMQ_OK;
    char msg[768];
    sdk_reply_message(r, msg, sizeof(msg));
    if (failure)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_FAILURE, "%s %s: FAILURE: %s", method, url, msg);
    if (r->status == 425)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_ONGOING, "%s %s: ONGOING: %s", method, url, msg);
    return dtmq_sdk_fail(err, errlen, DTMQ_ERR_SERVER, "%s %s: HTTP %ld: %s", method, url, r->status,
                    msg);
}

int dtmq_sdk_map_branch_reply(const char *method, const char *url, const sdk_http_reply *r,
                         char *err, size_t errlen)
{
    char msg[768];
    sdk_reply_message(r, msg, sizeof(msg));
    if (r->status == 425 || strstr(r->body, "ONGOING") != NULL)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_ONGOING, "%s %s: ONGOING: %s", method, url, msg);
    if (r->status == 409 || strstr(r->body, "FAILURE") != NULL)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_FAILURE, "%s %s: FAILURE: %s", method, url, msg);
    if (r->status != 200)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_SERVER, "%s %s: HTTP %ld: %s", method, url,
                        r->status, msg);
    return DTMQ_OK;
}

/*
 * Go's encoding/json escapes '<', '>', '&', U+2028 and U+2029 inside
 * strings; jansson does not. Outside strings none of them can occur in
 * JSON, so a plain replacement over the whole text gives Go's bytes.
 */
static char *sdk_go_escape(const char *text)
{
    size_t n = 0;
    for (const char *p = text; *p; p++)
        n += (*p == '<' || *p == '>' || *p == '&') ? 6 : 1;
    char *out = malloc(n + 1), *w = out;
    if (out == NULL)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '<' || *p == '>' || *p == '&') {
            w += sprintf(w, "\\u%04x", *p);
        } else if (p[0] == 0xE2 && p[1] == 0x80 && (p[2] == 0xA8 || p[2] == 0xA9)) {
            w += sprintf(w, "\\u202%c", p[2] == 0xA8 ? '8' : '9');
            p += 2;
        } else {
            *w++ = (char)*p;
        }
    }
    *w = '\0';
    return out;
}

char *dtmq_sdk_json_text(const json_t *j, size_t flags)
{
    char *raw = json_dumps(j, JSON_COMPACT | flags);
    if (raw == NULL)
        return NULL;
    char *text = sdk_go_escape(raw);
    free(raw);
    return text;
}

static int sdk_need_server(const dtmq_client *c, const char *what, char *err, size_t errlen)
{
    if (c == NULL)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID, "%s: client is NULL", what);
    if (c->server == NULL)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID,
                        "%s: the client has no server URL (HTTP not configured)", what);
    return DTMQ_OK;
}

int dtmq_sdk_call_server(const dtmq_client *c, const char *route, const json_t *body, size_t flags,
                    json_t **reply, char *err, size_t errlen)
{
    if (reply != NULL)
        *reply = NULL;
    int rc = sdk_need_server(c, route, err, errlen);
    if (rc != DTMQ_OK)
        return rc;
    char *url = NULL, *text = NULL;
    if (asprintf(&url, "%s/%s", c->server, route) < 0)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_NOMEM, "%s: out of memory", route);
    if (body != NULL && (text = dtmq_sdk_json_text(body, flags)) == NULL) {
        free(url);
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_NOMEM, "%s: out of memory", route);
    }
    const char *method = body != NULL ? "POST" : "GET";
    sdk_http_reply r;
    rc = dtmq_sdk_http(c, method, url, text, NULL, &r, err, errlen);
    if (rc == DTMQ_OK)
        rc = dtmq_sdk_map_server_reply(method, url, &r, err, errlen);
    if (rc == DTMQ_OK && reply != NULL)
        *reply = json_loadb(r.body, r.len, 0, NULL);
    free(r.body);
    free(text);
    free(url);
    return rc;
}

int dtmq_new_gid(dtmq_client *c, char *gid, size_t len, char *err, size_t errlen)
{
    sdk_clear_err(err, errlen);
    if (gid == NULL || len == 0)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID, "newGid: no buffer for the gid");
    gid[0] = '\0';
    json_t *reply = NULL;
    int rc = dtmq_sdk_call_server(c, "newGid", NULL, 0, &reply, err, errlen);
    if (rc != DTMQ_OK)
        return rc;
    const char *g = json_string_value(json_object_get(reply, "gid"));
    if (g == NULL || g[0] == '\0')
        rc = dtmq_sdk_fail(err, errlen, DTMQ_ERR_SERVER, "newGid: the answer has no gid");
    else if (strlen(g) >= len)
        rc = dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID, "newGid: gid '%s' does not fit %zu bytes", g,
                      len);
    else
        snprintf(gid, len, "%s", g);
    json_decref(reply);
    return rc;
}
