/*
 * dtmq_client_internal.h — what the dtmq_client_*.c files share and users
 * do not see: the client and transaction structs, the HTTP transport with
 * DTM's result mapping, and the body builder. Not installed.
 *
 *   dtmq_client.c          client, errors, HTTP transport, calls to the server
 *   dtmq_client_trans.c    the transaction builder and its JSON bodies
 *   dtmq_client_ops.c      prepare/submit/abort, TCC/XA, DoAndSubmit, Kafka
 *   dtmq_client_workflow.c workflow calls
 *   dtmq_client_branch.c   helpers for branch handlers
 */
#ifndef DTMQ_CLIENT_INTERNAL_H
#define DTMQ_CLIENT_INTERNAL_H

#include <jansson.h>
#include <stddef.h>

#include "libdtmq/common/kafka_producer.h"
#include "libdtmq/common/base64.h"
#include <dtmq/dtmq_client.h>

enum {
    SDK_DEFAULT_TIMEOUT_MS = 10000,
    SDK_MAX_BODY = 16 * 1024 * 1024, /* larger answers are cut off: an error */
    SDK_MAX_BRANCHES = 99,           /* DTM's branch id generator: 01..99 */
};

struct dtmq_client {
    char *server;       /* no trailing '/'; NULL when HTTP is not configured */
    char *bootstrap;    /* NULL when Kafka is not configured */
    char *submit_topic;
    int timeout_ms;
    dtmq_kafka_producer *producer; /* NULL without Kafka */
};

typedef enum sdk_type { SDK_SAGA, SDK_MSG, SDK_TCC, SDK_XA, SDK_WORKFLOW } sdk_type;

/* What a body is for; decides custom_data and the checks. */
typedef enum sdk_op { SDK_OP_PREPARE, SDK_OP_SUBMIT, SDK_OP_ABORT, SDK_OP_PREPARE_WORKFLOW } sdk_op;

typedef struct sdk_order {
    int step, depends_on;
} sdk_order;

struct dtmq_trans {
    sdk_type type;
    char *gid;
    json_t *steps;    /* array of {"action"[, "compensate"]} */
    json_t *payloads; /* array of strings, one per step */
    json_t *headers;  /* branch_headers object; NULL when none */
    sdk_order *orders;
    size_t norders, orders_cap;
    char *query_prepared, *custom_data, *rollback_reason;
    char *wf_name;
    unsigned char *wf_data; /* NULL with wf_has_data 0: "data":null */
    size_t wf_data_len;
    int wf_has_data;
    int wait_result, concurrent;
    long timeout_to_fail, request_timeout, retry_interval, retry_limit, delay;
    int next_branch;  /* the last branch number handed out (tcc/xa) */
    char error[256];  /* the first builder error; "" when none */
};

/* ---- dtmq_client.c ---- */

/* Writes printf-style text into err (when not NULL) and returns code. */
int dtmq_sdk_fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* One HTTP answer: status and body (malloc'd, NUL-terminated). */
typedef struct sdk_http_reply {
    long status;
    char *body;
    size_t len;
} sdk_http_reply;

/* Performs one HTTP request (body NULL: none; POST bodies are JSON).
 * headers: a JSON object of extra headers, may be NULL. 0 with *out filled
 * (free out->body) whatever the status; DTMQ_ERR_UNREACHABLE naming the
 * URL and curl's error when no answer came; DTMQ_ERR_NOMEM. */
int dtmq_sdk_http(const dtmq_client *c, const char *method, const char *url, const char *body,
             const json_t *headers, sdk_http_reply *out, char *err, size_t errlen);

/* Maps a server answer as DTM's SDK does (non-200 or a FAILURE body is a
 * failure): 0, DTMQ_ERR_FAILURE, DTMQ_ERR_ONGOING, DTMQ_ERR_SERVER, with err
 * "METHOD URL: ...: <the server's message>". */
int dtmq_sdk_map_server_reply(const char *method, const char *url, const sdk_http_reply *r,
                         char *err, size_t errlen);

/* Maps a branch answer as dtmq maps it (ONGOING before FAILURE). */
int dtmq_sdk_map_branch_reply(const char *method, const char *url, const sdk_http_reply *r,
                         char *err, size_t errlen);

/* JSON text as Go's encoding/json writes it: compact, '<' '>' '&' U+2028
 * U+2029 escaped; flags may add JSON_SORT_KEYS (Go sorts map keys). */
char *dtmq_sdk_json_text(const json_t *j, size_t flags);

/* POSTs body (json, not stolen; dumped with flags) to <server>/<route> (GET
 * when body is NULL) and maps the answer. *reply (may be NULL) gets the
 * parsed 200 body (NULL when not JSON). */
int dtmq_sdk_call_server(const dtmq_client *c, const char *route, const json_t *body, size_t flags,
                    json_t **reply, char *err, size_t errlen);

/* ---- dtmq_client_trans.c ---- */

const char *dtmq_sdk_type_name(sdk_type type);
/* The body for op, after checking t for it. NULL + err (DTMQ_ERR_INVALID
 * or DTMQ_ERR_NOMEM in *code). */
json_t *dtmq_sdk_trans_body(const dtmq_trans *t, sdk_op op, int *code, char *err, size_t errlen);
/* The next branch id for t (branch_id NULL) or checks the given one; into
 * out (3+ bytes). 0 or DTMQ_ERR_INVALID. */
int dtmq_sdk_trans_branch_id(dtmq_trans *t, const char *branch_id, char *out, size_t len, char *err,
                        size_t errlen);

/* ---- dtmq_client_branch.c ---- */

/* url?name=value&... (values escaped; '&' after an existing '?'); malloc'd. */
char *dtmq_sdk_url_with_query(const char *url, const char *const *pairs, size_t npairs);

#endif
