/*
 * http_dispatch.h — branch calls over HTTP, many in flight at once.
 *
 * One dispatcher thread drives libcurl's multi interface; callers hand it
 * requests from any thread with http_dispatch_submit() and get each result
 * through a callback, called ON THE DISPATCHER THREAD: a callback must be
 * quick and must not block (post the result to your own queue and return).
 * No thread per call, no blocking per call. A result's outcome is the
 * model's dispatch_outcome (daemon/model/outcome.h), which Kafka branches
 * share.
 */
#ifndef DTMQ_HTTP_DISPATCH_H
#define DTMQ_HTTP_DISPATCH_H

#include <stddef.h>

#include "daemon/model/outcome.h"

typedef struct http_call_result {
    dispatch_outcome outcome;
    int http_status;     /* 0 when no response arrived */
    const char *body;    /* response body, NUL-terminated, "" if none; valid during the callback */
    size_t body_len;
    const char *error;   /* transport error text ("" if none); valid during the callback */
    long long started_ms; /* wall clock, ms since epoch */
    long long finished_ms;
} http_call_result;

typedef void (*http_call_done)(void *arg, const http_call_result *result);

typedef struct http_call {
    const char *method;   /* "GET" or "POST" */
    const char *url;      /* full URL including any query string */
    const char *body;     /* may contain NUL bytes; NULL = no body */
    size_t body_len;
    const char *const *headers; /* "Name: value" strings, NULL-terminated; may be NULL */
    long timeout_ms;      /* whole-request timeout, > 0 */
    http_call_done done;  /* required */
    void *arg;            /* passed to done */
} http_call;

typedef struct http_dispatch http_dispatch;

/* Starts the dispatcher thread. max_in_flight bounds concurrent transfers
 * (further calls queue). NULL on failure. */
http_dispatch *http_dispatch_start(int max_in_flight);

/* Queues one call. Copies everything in *call, so the caller may free its
 * strings on return. Returns 0, or -1 if the dispatcher is stopping or out of
 * memory (then done is never called). Thread-safe. */
int http_dispatch_submit(http_dispatch *d, const http_call *call);

/* Number of calls queued or in flight (for metrics). Thread-safe. */
int http_dispatch_pending(http_dispatch *d);

/* Stops the thread. Calls still queued or in flight complete with outcome
 * DISPATCH_ERROR and error "dispatcher stopped" before this returns. */
void http_dispatch_stop(http_dispatch *d);

/* Builds "url?gid=G&trans_type=T&branch_id=B&op=O" (or "&..." when url has a
 * query already), each value URL-encoded. Returns a malloc'd string or NULL. */
char *http_dispatch_branch_url(const char *url, const char *gid, const char *trans_type,
                               const char *branch_id, const char *op);

#endif
