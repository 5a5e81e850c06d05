/*
 * busi.h — a scriptable "business service" for end-to-end tests: the HTTP
 * service whose branches dtmq calls (saga action/compensate, TCC
 * try/confirm/cancel, msg query_prepared, workflow resume). It runs inside the
 * test process on 127.0.0.1, records every request it receives, and answers
 * according to rules the test sets.
 *
 * A request is recorded once its body has been received completely, before
 * any delay of the rule that answers it; status_sent is the status chosen for
 * it then. A request whose client goes away before its body is complete is
 * still recorded, with status_sent 0.
 */
#ifndef DTMQ_TESTS_BUSI_H
#define DTMQ_TESTS_BUSI_H

#include <stddef.h>

typedef struct busi busi;

typedef struct busi_call {
    char method[8];
    char path[128];                                       /* e.g. "/api/TransOut" */
    char gid[128], trans_type[16], branch_id[32], op[16]; /* from the query string, "" if absent */
    char *body;      /* request body, NUL-terminated (malloc'd; freed by busi_calls_free) */
    size_t body_len;
    char *headers;   /* all request headers as "Name: value\n" lines (malloc'd) */
    long long time_ms; /* wall clock when the request arrived (body complete); never
                        * decreases along the recorded order */
    int status_sent;   /* HTTP status answered */
} busi_call;

/* Starts the service on 127.0.0.1, a free port, libmicrohttpd thread pool.
 * NULL on failure. */
busi *busi_start(void);
/* "http://127.0.0.1:PORT"; owned by b. */
const char *busi_url(const busi *b);
/* Stops the server (answers any delayed request at once) and frees everything. */
void busi_stop(busi *b);

/* Adds an answer rule for requests to path (exact match, no query string),
 * optionally only for one gid (NULL = any gid) and/or one op (NULL = any op).
 * The rule answers `times` requests (-1 = forever) with status and body
 * (body NULL → "{\"dtm_result\":\"SUCCESS\"}" for 200, "{\"dtm_result\":\"FAILURE\"}" for 409,
 * "{\"dtm_result\":\"ONGOING\"}" for 425, "{\"message\":\"busi error\"}" otherwise),
 * after waiting delay_ms (the connection is suspended meanwhile, so other
 * requests are not held up). Rules are matched newest-added first among the
 * still-active ones with the most specific match (gid+op > gid > op > any).
 * A request with no matching active rule gets 200 {"dtm_result":"SUCCESS"}.
 * times 0 adds nothing; a status outside 100..999 makes the service close the
 * connection instead of answering. Thread-safe. */
void busi_rule(busi *b, const char *path, const char *gid, const char *op, int status,
               const char *body, int delay_ms, int times);
/* Removes every rule. */
void busi_clear_rules(busi *b);

/* Snapshot of the calls received so far, in arrival order. *out is malloc'd
 * (NULL when there are none); free with busi_calls_free. Returns the count. */
size_t busi_calls(busi *b, busi_call **out);
void busi_calls_free(busi_call *calls, size_t n);
/* Number of calls matching path (NULL any), gid (NULL any), op (NULL any). */
int busi_count(busi *b, const char *path, const char *gid, const char *op);
/* Waits until busi_count(...) >= n or timeout_ms passes; returns the count
 * reached. Sleeps on a condition variable signalled by each new call. */
int busi_wait(busi *b, const char *path, const char *gid, const char *op, int n, int timeout_ms);
/* Forgets recorded calls (rules stay). */
void busi_reset_calls(busi *b);

#endif
