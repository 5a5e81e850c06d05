/*
 * http_server.h — the HTTP front door, a thin layer over GNU libmicrohttpd.
 *
 * The server reads each request body whole (up to max_body bytes; larger ones
 * get 413 without reaching a handler), then calls one handler with an
 * http_request; the handler fills an http_response. libmicrohttpd runs its own
 * thread pool, so handlers run concurrently and must be thread-safe.
 */
#ifndef DTMQ_HTTP_SERVER_H
#define DTMQ_HTTP_SERVER_H

#include <stddef.h>

struct MHD_Connection;

typedef struct http_request {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* without the query string */
    const char *body;   /* NUL-terminated copy of the body, "" when none */
    size_t body_len;
    struct MHD_Connection *conn; /* private: used by http_query/http_header */
    void *state;                 /* private: the server's per-request state */
} http_request;

typedef struct http_response {
    int status;               /* HTTP status, 200 unless set */
    char *body;               /* malloc'd; freed by the server after sending */
    const char *content_type; /* static string; "application/json" unless set */
    const char *header_name;  /* one extra response header (static strings), or NULL */
    const char *header_value;
} http_response;

/* Value of query parameter name, or NULL. Valid while the request is. */
const char *http_query(const http_request *req, const char *name);
/* Value of request header name (case-insensitive), or NULL. */
const char *http_header(const http_request *req, const char *name);

typedef void (*http_handler)(void *ctx, const http_request *req, http_response *resp);

/*
 * Deferred answers (wait_result): inside a handler, http_defer() takes the
 * request out of the handler's hands; the handler returns without a body and
 * the connection waits (suspended, no thread held) until someone calls
 * http_deferred_complete() — exactly once, from any thread. The server must
 * not be stopped while deferred requests are pending.
 */
typedef struct http_deferred http_deferred;
http_deferred *http_defer(const http_request *req);
/* True when the handler deferred this request. */
int http_is_deferred(const http_request *req);
/* Answers a deferred request; takes ownership of body (malloc'd, may be NULL). */
void http_deferred_complete(http_deferred *d, int status, char *body);

typedef struct http_server http_server;

typedef struct http_server_options {
    const char *host;  /* numeric IPv4 address to bind, e.g. "0.0.0.0" */
    int port;          /* 0 picks a free port (see http_server_port) */
    size_t max_body;   /* bytes */
    unsigned threads;  /* worker threads, >= 1 */
} http_server_options;

/* Starts listening. NULL with one line in err on failure (bad address, port in use). */
http_server *http_server_start(const http_server_options *opts, http_handler handler, void *ctx,
                               char *err, size_t errlen);
/* The port actually bound. */
int http_server_port(const http_server *srv);
/* Stops accepting, finishes in-flight requests, frees the server. NULL allowed. */
void http_server_stop(http_server *srv);

#endif
