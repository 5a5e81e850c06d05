/*
 * http_server.c — runs libmicrohttpd with an internal epoll thread pool and
 * turns its incremental upload callbacks into one call of the broker's
 * handler per complete request (see http_server.h).
 *
 * Per-connection state (request_state) lives in MHD's con_cls pointer from the
 * first callback of a request until request_completed frees it.
 */
#include "http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct http_server {
    struct MHD_Daemon *daemon;
    http_handler handler;
    void *ctx;
    size_t max_body;
    int port;
};

/* Per-request state. For a deferred request it is shared between the MHD
 * thread and the completing thread: the fields below `mu` are guarded by it.
 * MHD frees it (on_completed) only after the answer was sent, which for a
 * deferred request happens after http_deferred_complete. */
typedef struct request_state {
    char *body;
    size_t len;
    size_t cap;
    int too_large;
    struct MHD_Connection *conn;
    pthread_mutex_t mu;
    int deferred;  /* the handler called http_defer */
    int suspended; /* MHD_suspend_connection was called */
    int completed; /* http_deferred_complete was called */
    int answer_status;
    char *answer_body;
} request_state;

const char *http_query(const http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_header(const http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

static int append_body(request_state *st, const char *data, size_t n, size_t max_body)
{
    if (st->len + n > max_body) {
        st->too_large = 1;
        return 0;
    }
    if (st->len + n + 1 > st->cap) {
        size_t cap = st->cap ? st->cap : 1024;
        while (cap < st->len + n + 1)
            cap *= 2;
        char *grown = realloc(st->body, cap);
        if (grown == NULL)
            return -1;
        st->body = grown;
        st->cap = cap;
    }
    memcpy(st->body + st->len, data, n);
    st->len += n;
    st->body[st->len] = '\0';
    return 0;
}

static enum MHD_Result send_response(struct MHD_Connection *conn, int status, char *body,
                                     const char *content_type, const http_response *extra)
{
    size_t len = body ? strlen(body) : 0;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, body ? body : (char *)"", MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (extra && extra->header_name)
        MHD_add_response_header(resp, extra->header_name, extra->header_value);
    enum MHD_Result r = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, int status, const char *message)
{
    char *body = malloc(strlen(message) + 32);
    if (body == NULL)
        return MHD_NO;
    sprintf(body, "{\"message\":\"%s\"}", message); /* message is a fixed literal */
    return send_response(conn, status, body, "application/json", NULL);
}

http_deferred *http_defer(const http_request *req)
{
    request_state *st = req->state;
    st->deferred = 1;
    return (http_deferred *)st;
}

int http_is_deferred(const http_request *req)
{
    return ((const request_state *)req->state)->deferred;
}

void http_deferred_complete(http_deferred *d, int status, char *body)
{
    request_state *st = (request_state *)d;
    pthread_mutex_lock(&st->mu);
    st->answer_status = status;
    st->answer_body = body;
    st->completed = 1;
    if (st->suspended)
        MHD_resume_connection(st->conn); /* MHD calls on_request again: send_deferred */
    pthread_mutex_unlock(&st->mu);
}

/* Sends a deferred answer if it has arrived; else suspends the connection
 * until http_deferred_complete resumes it. */
static enum MHD_Result send_or_suspend(struct MHD_Connection *conn, request_state *st)
{
    pthread_mutex_lock(&st->mu);
    if (st->completed) {
        char *body = st->answer_body;
        st->answer_body = NULL;
        int status = st->answer_status;
        pthread_mutex_unlock(&st->mu);
        return send_response(conn, status, body, "application/json", NULL);
    }
    if (!st->suspended) {
        st->suspended = 1;
        MHD_suspend_connection(conn);
    }
    pthread_mutex_unlock(&st->mu);
    return MHD_YES;
}

static enum MHD_Result dispatch(http_server *srv, struct MHD_Connection *conn, const char *url,
                                const char *method, request_state *st)
{
    http_request req = {
        .method = method,
        .path = url,
        .body = st->body ? st->body : "",
        .body_len = st->len,
        .conn = conn,
        .state = st,
    };
    http_response resp = {.status = 200, .body = NULL, .content_type = "application/json"};
    srv->handler(srv->ctx, &req, &resp);
    if (st->deferred) {
        free(resp.body);
        return send_or_suspend(conn, st);
    }
    return send_response(conn, resp.status, resp.body, resp.content_type, &resp);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    http_server *srv = cls;
    request_state *st = *con_cls;
    if (st == NULL) { /* first call for this request: headers only */
        st = calloc(1, sizeof(*st));
        if (st == NULL)
            return MHD_NO;
        st->conn = conn;
        pthread_mutex_init(&st->mu, NULL);
        *con_cls = st;
        return MHD_YES;
    }
    if (st->deferred) /* resumed after http_deferred_complete */
        return send_or_suspend(conn, st);
    if (*upload_data_size > 0) {
        if (!st->too_large && append_body(st, upload_data, *upload_data_size, srv->max_body) != 0)
            return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (st->too_large)
        return send_error(conn, 413, "request body larger than MaxBodyBytes");
    return dispatch(srv, conn, url, method, st);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    request_state *st = *con_cls;
    if (st != NULL) {
        free(st->body);
        free(st->answer_body);
        pthread_mutex_destroy(&st->mu);
        free(st);
        *con_cls = NULL;
    }
}

http_server *http_server_start(const http_server_options *opts, http_handler handler, void *ctx,
                               char *err, size_t errlen)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opts->port)};
    if (inet_pton(AF_INET, opts->host, &addr.sin_addr) != 1) {
        snprintf(err, errlen, "http: '%s' is not a numeric IPv4 address (HttpHost)", opts->host);
        return NULL;
    }
    http_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        snprintf(err, errlen, "http: out of memory");
        return NULL;
    }
    srv->handler = handler;
    srv->ctx = ctx;
    srv->max_body = opts->max_body;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO |
                     MHD_ALLOW_SUSPEND_RESUME;
    errno = 0;
    srv->daemon = MHD_start_daemon(
        flags, (uint16_t)opts->port, NULL, NULL, on_request, srv,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(opts->threads ? opts->threads : 1),
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
        MHD_OPTION_END);
    if (srv->daemon == NULL) {
        snprintf(err, errlen, "http: cannot listen on %s:%d: %s", opts->host, opts->port,
                 errno ? strerror(errno) : "libmicrohttpd refused to start");
        free(srv);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : opts->port;
    return srv;
}

int http_server_port(const http_server *srv)
{
    return srv->port;
}

void http_server_stop(http_server *srv)
{
    if (srv == NULL)
        return;
    MHD_stop_daemon(srv->daemon);
    free(srv);
}
