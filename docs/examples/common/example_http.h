/*
 * example_http.h — the little HTTP server the worked examples share, so that
 * each service's file shows only its business handlers. It wraps GNU
 * libmicrohttpd: one thread per connection, the whole request (path, query
 * string, body up to EX_MAX_BODY bytes) handed to one handler function, whose
 * answer is a status and a JSON body.
 *
 * Also: blocking SIGINT/SIGTERM before any thread starts and waiting for one
 * of them, so a service stops cleanly on Ctrl-C or `kill`.
 *
 * Nothing here aborts the process; every failure comes back as NULL or -1
 * with one line in err.
 */
#ifndef EXAMPLE_HTTP_H
#define EXAMPLE_HTTP_H

#include <jansson.h>
#include <signal.h>
#include <stddef.h>

#define EX_MAX_BODY (64 * 1024) /* larger request bodies are answered 413 */

/* One request, as the handler sees it. Valid during the handler call only. */
typedef struct ex_request {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* "/api/TransOut" (without the query string) */
    const char *query;  /* "gid=..&branch_id=.." without the '?', "" when none */
    const char *body;   /* NUL-terminated; "" when none */
    size_t body_len;
} ex_request;

/* What the handler answers: an HTTP status and a body (JSON text). */
typedef struct ex_response {
    int status;
    char body[2048];
} ex_response;

typedef void (*ex_handler)(void *arg, const ex_request *req, ex_response *resp);

typedef struct ex_server ex_server;

/* Listens on host:port (host an IPv4 address such as "127.0.0.1") and calls
 * handler for every request, from the connection's own thread. NULL + err
 * when the port cannot be taken. */
ex_server *ex_server_start(const char *host, int port, ex_handler handler, void *arg, char *err,
                           size_t errlen);
/* Stops listening, waits for the running handlers, frees s. NULL allowed. */
void ex_server_stop(ex_server *s);

/* Fills resp with status and the JSON text of obj, then releases obj (the
 * reference is stolen). obj NULL answers 500 {"message":"out of memory"}. */
void ex_reply_json(ex_response *resp, int status, json_t *obj);
/* Fills resp with status and {"message": message}. */
void ex_reply_message(ex_response *resp, int status, const char *message);

/* Blocks SIGINT and SIGTERM in the calling thread (call it first thing in
 * main, before any thread exists, so every thread inherits the mask). */
void ex_block_stop_signals(sigset_t *set);
/* Waits for one of the signals ex_block_stop_signals blocked; returns it. */
int ex_wait_stop_signal(const sigset_t *set);

/* Parses a whole decimal number within [min, max] into *out: 0, or -1. */
int ex_parse_long(const char *text, long min, long max, long *out);
/* 1 when name is a plain SQL identifier: [a-z_][a-z0-9_]*, 1..63 bytes. */
int ex_sql_identifier_ok(const char *name);

#endif
