/*
 * example_http.c — the HTTP server of the worked examples (see
 * example_http.h): GNU libmicrohttpd with one thread per connection. The
 * full URI (with its query string) is kept from MHD's URI log callback, the
 * body is gathered chunk by chunk, and the handler runs once the request is
 * complete.
 */
#define _POSIX_C_SOURCE 200809L
#include "example_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ex_server {
    struct MHD_Daemon *daemon;
    ex_handler handler;
    void *arg;
};

/* One request in progress: its URI and the body gathered so far. */
typedef struct pending {
    char *uri;
    char *body;
    size_t len, cap;
    int started; /* MHD calls once with the headers only, before any body */
    int too_big;
} pending;

static void *keep_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    pending *p = calloc(1, sizeof(*p));
    if (p != NULL && (p->uri = strdup(uri)) == NULL) {
        free(p);
        p = NULL;
    }
    return p; /* NULL: the access handler answers 500 */
}

static void forget_request(void *cls, struct MHD_Connection *conn, void **req,
                           enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)conn;
    (void)why;
    pending *p = *req;
    if (p != NULL) {
        free(p->uri);
        free(p->body);
        free(p);
    }
    *req = NULL;
}

/* Appends one chunk of the body; bodies above EX_MAX_BODY are marked too big. */
static void add_body(pending *p, const char *data, size_t n)
{
    if (p->too_big || n == 0)
        return;
    if (p->len + n > EX_MAX_BODY) {
        p->too_big = 1;
        return;
    }
    if (p->len + n + 1 > p->cap) {
        size_t cap = p->len + n + 1 > 1024 ? p->len + n + 1 : 1024;
        char *b = realloc(p->body, cap);
        if (b == NULL) {
            p->too_big = 1;
            return;
        }
        p->body = b;
        p->cap = cap;
    }
    memcpy(p->body + p->len, data, n);
    p->len += n;
    p->body[p->len] = '\0';
}

static enum MHD_Result send_answer(struct MHD_Connection *conn, const ex_response *r)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(r->body), (void *)r->body, MHD_RESPMEM_MUST_COPY);
    if (resp == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Splits p->uri at '?' (in place) and calls the handler. */
static void dispatch(const ex_server *s, const char *method, pending *p, ex_response *r)
{
    char *q = strchr(p->uri, '?');
    if (q != NULL)
        *q++ = '\0';
    ex_request req = {.method = method, .path = p->uri, .query = q != NULL ? q : "",
                      .body = p->body != NULL ? p->body : "", .body_len = p->len};
    r->status = 500;
    snprintf(r->body, sizeof(r->body), "{\"message\":\"no answer\"}");
    s->handler(s->arg, &req, r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req)
{
    (void)url;
    (void)version;
    ex_server *s = cls;
    pending *p = *req;
    ex_response r = {0};
    if (p == NULL) {
        ex_reply_message(&r, 500, "out of memory");
        return send_answer(conn, &r);
    }
    if (!p->started) {
        p->started = 1;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        add_body(p, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (p->too_big)
        ex_reply_message(&r, 413, "request body too large (or out of memory)");
    else
        dispatch(s, method, p, &r);
    return send_answer(conn, &r);
}

ex_server *ex_server_start(const char *host, int port, ex_handler handler, void *arg, char *err,
                           size_t errlen)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (port < 1 || port > 65535 || inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        snprintf(err, errlen, "listen address %s:%d is not an IPv4 address and port", host, port);
        return NULL;
    }
    ex_server *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->handler = handler;
    s->arg = arg;
    s->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_AUTO,
        (uint16_t)port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &addr,
        MHD_OPTION_URI_LOG_CALLBACK, keep_uri, NULL, MHD_OPTION_NOTIFY_COMPLETED,
        forget_request, NULL, MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
    if (s->daemon == NULL) {
        snprintf(err, errlen, "cannot listen on %s:%d (port taken?)", host, port);
        free(s);
        return NULL;
    }
    return s;
}

void ex_server_stop(ex_server *s)
{
    if (s == NULL)
        return;
    MHD_stop_daemon(s->daemon);
    free(s);
}

void ex_reply_json(ex_response *resp, int status, json_t *obj)
{
    char *text = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (text == NULL || strlen(text) >= sizeof(resp->body)) {
        free(text);
        resp->status = 500;
        snprintf(resp->body, sizeof(resp->body), "{\"message\":\"cannot encode the answer\"}");
        return;
    }
    resp->status = status;
    snprintf(resp->body, sizeof(resp->body), "%s", text);
    free(text);
}

void ex_reply_message(ex_response *resp, int status, const char *message)
{
    ex_reply_json(resp, status, json_pack("{s:s}", "message", message));
}

void ex_block_stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

int ex_wait_stop_signal(const sigset_t *set)
{
    int sig = 0;
    while (sigwait(set, &sig) != 0)
        ;
    return sig;
}

int ex_parse_long(const char *text, long min, long max, long *out)
{
    if (text == NULL || *text == '\0')
        return -1;
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int ex_sql_identifier_ok(const char *name)
{
    size_t n = name != NULL ? strlen(name) : 0;
    if (n < 1 || n > 63 || (name[0] >= '0' && name[0] <= '9'))
        return 0;
    return strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}
