/*
 * dtmq_client.h — libdtmq, the C SDK a service links to drive distributed
 * transactions through dtmq (or DTM): saga, 2-phase message (msg), TCC, XA
 * and workflow, submitted over DTM's HTTP protocol or produced to dtmq's
 * Kafka submit topic. docs/sdk.md has the whole story with examples.
 *
 * The request bodies are byte for byte what DTM's Go SDK (dtmcli) sends:
 * {"gid","trans_type","custom_data","wait_result",...,"concurrent",
 *  "retry_limit","steps","payloads","query_prepared","protocol",
 *  "rollback_reason"} in that order, empty optional keys left out.
 *
 * Conventions
 *   - Every call that can fail returns 0 (DTMQ_OK) or a dtmq_error code and,
 *     when err is not NULL, writes one line into err (errlen bytes) naming
 *     the problem: the URL and curl's error for an unreachable server, the
 *     server's own message for a FAILURE, the option for an invalid one.
 *     Nothing here aborts the process or prints.
 *   - Strings passed in are copied; the caller keeps ownership. Objects
 *     returned by *_new are owned by the caller and freed with the matching
 *     *_free (which accept NULL).
 *   - A dtmq_client is immutable once made and may be shared by threads. A
 *     dtmq_trans is a plain builder: one thread at a time.
 *
 * Builder errors are sticky: a setter given a bad value returns
 * DTMQ_ERR_INVALID and also records the message in the transaction, and
 * every later submission of it fails with DTMQ_ERR_INVALID and that message
 * without sending anything (so a chain of setters may be checked once, at
 * submission). dtmq_trans_error() shows the recorded message.
 */
#ifndef DTMQ_CLIENT_H
#define DTMQ_CLIENT_H

#include <stddef.h>

/* dtmq_result, dtmq_error (DTMQ_OK, DTMQ_ERR_*) and dtmq_error_name, the
 * branch identity (dtmq_branch_ref) and the branch-handler helpers
 * (dtmq_branch_from_query, dtmq_result_status, dtmq_result_body) are
 * declared in the shared header, installed next to this one. */
#include "dtmq.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- client -------------------------------------------------------------- */

typedef struct dtmq_client_options {
    /* DTM's HTTP API base, e.g. "http://127.0.0.1:36789/api/dtmsvr" (a
     * trailing '/' is dropped). NULL: HTTP calls answer DTMQ_ERR_INVALID. */
    const char *server;
    /* Kafka bootstrap "host:port[,...]" for dtmq_submit_kafka. NULL: none. */
    const char *kafka_bootstrap;
    /* The submit topic: dtmq's KafkaTopicPrefix + "submit". NULL: "dtm.submit". */
    const char *submit_topic;
    /* Longest wait for one HTTP call (to dtmq or to a branch) or for Kafka's
     * acknowledgement, in ms. 0: 10000. Must not be negative. */
    int timeout_ms;
} dtmq_client_options;

typedef struct dtmq_client dtmq_client;

/* At least one of server and kafka_bootstrap must be given. With Kafka, the
 * producer (idempotent, acks=all) is created here and connects in the
 * background. NULL + err on a bad option or when the producer cannot be made. */
dtmq_client *dtmq_client_new(const dtmq_client_options *o, char *err, size_t errlen);
/* Flushes the Kafka producer (up to timeout_ms) and frees c. NULL allowed. */
void dtmq_client_free(dtmq_client *c);

/* GET newGid: a fresh gid from the server into gid (len bytes). */
int dtmq_new_gid(dtmq_client *c, char *gid, size_t len, char *err, size_t errlen);

/* ---- transaction builder --------------------------------------------------- */

typedef struct dtmq_trans dtmq_trans;

/* Each returns NULL only when out of memory. A NULL or empty gid (or name)
 * is recorded as a builder error. */
dtmq_trans *dtmq_saga_new(const char *gid);
dtmq_trans *dtmq_msg_new(const char *gid, const char *query_prepared_url);
dtmq_trans *dtmq_tcc_new(const char *gid);
dtmq_trans *dtmq_xa_new(const char *gid);
/* name: the workflow's name (sent back as op on resume calls); resume_url:
 * where dtmq calls when the workflow must be resumed (its query_prepared). */
dtmq_trans *dtmq_workflow_new(const char *gid, const char *name, const char *resume_url);
void dtmq_trans_free(dtmq_trans *t);

const char *dtmq_trans_gid(const dtmq_trans *t);
/* The first builder error, or NULL when there is none. Owned by t. */
const char *dtmq_trans_error(const dtmq_trans *t);

/* A saga step: action and compensation URLs (http(s)://, kafka://TOPIC, or
 * "" for a no-op) and the body both are called with. payload NULL or "":
 * dtmq calls the step with GET and no body. Saga only. */
int dtmq_saga_add(dtmq_trans *t, const char *action_url, const char *compensate_url,
                  const char *payload);
/* Concurrent saga: step (0-based, as DTM's AddBranchOrder) starts only after
 * depends_on_step (also 0-based, smaller) succeeded. Call once per
 * dependency. Requires dtmq_trans_set_concurrent(t, 1) by submission. */
int dtmq_saga_add_order(dtmq_trans *t, int step, int depends_on_step);
/* A msg step (action URL, http(s)://, kafka:// or topic://NAME). Msg only. */
int dtmq_msg_add(dtmq_trans *t, const char *action_url, const char *payload);
/* Msg: run the steps no earlier than seconds after the transaction was
 * created (custom_data {"delay":N}, sent with submit as DTM's SDK does). */
int dtmq_msg_set_delay(dtmq_trans *t, long seconds);
/* Workflow: the input handed back on resume calls (custom_data's "data",
 * base64). Not set: null. Workflow only. */
int dtmq_workflow_set_data(dtmq_trans *t, const void *data, size_t len);

/* Options, flattened into the body as DTM's SDK does. Seconds and counts
 * must not be negative; 0 leaves the server's default. */
int dtmq_trans_set_wait_result(dtmq_trans *t, int on);
int dtmq_trans_set_timeout_to_fail(dtmq_trans *t, long seconds);
int dtmq_trans_set_request_timeout(dtmq_trans *t, long seconds);
int dtmq_trans_set_retry_interval(dtmq_trans *t, long seconds);
int dtmq_trans_set_retry_limit(dtmq_trans *t, long count);
int dtmq_trans_set_concurrent(dtmq_trans *t, int on);
/* Adds one header sent with every branch call (later value for the same
 * name wins). No line breaks, no ':' in the name, no "dtm-" prefix. */
int dtmq_trans_add_branch_header(dtmq_trans *t, const char *name, const char *value);
/* Free-form custom_data. Not for workflows, and not together with a
 * concurrent saga or a msg delay (those generate custom_data). */
int dtmq_trans_set_custom_data(dtmq_trans *t, const char *custom_data);
/* rollback_reason, sent with abort (and every other call, as DTM's SDK). */
int dtmq_trans_set_rollback_reason(dtmq_trans *t, const char *reason);

/* The JSON that would be sent for op ("prepare", "submit", "abort",
 * "prepareWorkflow") into *json (malloc'd, caller frees). For logs and tests. */
int dtmq_trans_to_json(const dtmq_trans *t, const char *op, char **json, char *err,
                       size_t errlen);

/* ---- submission over HTTP ------------------------------------------------ */

/* POST prepare (msg, tcc, xa), submit (saga, msg, tcc, xa), abort (msg, tcc,
 * xa). With wait_result, submit answers once the transaction's pass ended:
 * DTMQ_ERR_FAILURE when it failed (message: the rollback reason). */
int dtmq_prepare(dtmq_client *c, const dtmq_trans *t, char *err, size_t errlen);
int dtmq_submit(dtmq_client *c, const dtmq_trans *t, char *err, size_t errlen);
int dtmq_abort(dtmq_client *c, const dtmq_trans *t, char *err, size_t errlen);

/* ---- TCC and XA ---------------------------------------------------------- */

/*
 * TCC, between dtmq_prepare and dtmq_submit/dtmq_abort: registers the branch
 * (registerBranch {gid, trans_type, branch_id, data, confirm, cancel}), then
 * POSTs payload to try_url?dtm=..&gid=..&trans_type=tcc&branch_id=..&op=try
 * with the branch headers. branch_id NULL: the next of "01", "02", ...
 * The try's answer body goes into resp (may be NULL) and its outcome is
 * mapped as dtmq maps branch answers: 200 → 0, 409/FAILURE →
 * DTMQ_ERR_FAILURE, 425/ONGOING → DTMQ_ERR_ONGOING, other → DTMQ_ERR_SERVER,
 * no answer → DTMQ_ERR_UNREACHABLE. On any error, abort the transaction.
 */
int dtmq_tcc_call_branch(dtmq_client *c, dtmq_trans *t, const char *branch_id,
                         const char *try_url, const char *confirm_url, const char *cancel_url,
                         const char *payload, char *resp, size_t resp_len, char *err,
                         size_t errlen);

/* XA, after dtmq_prepare: POSTs payload to url?dtm=..&gid=..&trans_type=xa&
 * branch_id=..&op=action&phase2_url=<url>. The branch does its local XA
 * transaction and registers itself (dtmq_xa_register) before answering.
 * branch_id, resp and the result mapping as dtmq_tcc_call_branch. */
int dtmq_xa_call_branch(dtmq_client *c, dtmq_trans *t, const char *branch_id, const char *url,
                        const char *payload, char *resp, size_t resp_len, char *err,
                        size_t errlen);

/* The XA branch's side: registerBranch {gid, trans_type:"xa", branch_id,
 * url (its commit/rollback endpoint, usually phase2_url), data (NULL: left
 * out)}. */
int dtmq_xa_register(dtmq_client *c, const char *gid, const char *branch_id, const char *url,
                     const char *data, char *err, size_t errlen);

/* ---- workflow ------------------------------------------------------------ */

typedef struct dtmq_progress {
    char *branch_id, *op, *status; /* e.g. "01", "action", "succeed" */
    unsigned char *data;           /* the recorded data, decoded; NUL-terminated */
    size_t data_len;
} dtmq_progress;

typedef struct dtmq_workflow_state {
    char status[16];           /* the global's status: "prepared", "succeed", ... */
    dtmq_progress *progresses; /* the recorded step results, in order (NULL when none) */
    size_t count;
} dtmq_workflow_state;

/* POST prepareWorkflow: creates the workflow (prepared) or, when it exists,
 * returns what was recorded so the caller can replay. out is filled only on
 * success; release it with dtmq_workflow_state_clear. */
int dtmq_workflow_prepare(dtmq_client *c, const dtmq_trans *t, dtmq_workflow_state *out,
                          char *err, size_t errlen);
void dtmq_workflow_state_clear(dtmq_workflow_state *s);

/* registerBranch {gid, trans_type:"workflow", branch_id, op ("action",
 * "commit", "rollback"), status ("succeed" or "failed"), data (NULL: "")}. */
int dtmq_workflow_record(dtmq_client *c, const char *gid, const char *branch_id, const char *op,
                         const char *status, const char *data, char *err, size_t errlen);

/* Ends the workflow: submit with req_extra {status: succeed|failed,
 * rollback_reason (NULL: ""), result (left out when NULL)}. */
int dtmq_workflow_finish(dtmq_client *c, const char *gid, int succeeded,
                         const char *rollback_reason, const char *result, char *err,
                         size_t errlen);

/* ---- msg outbox (DTM's DoAndSubmit) ---------------------------------------- */

/* A branch call's identity (dtmq_branch_ref) is declared in dtmq.h. */

/* The local transaction of dtmq_msg_do_and_submit. barrier names the row to
 * write in the same local transaction ({gid, "msg", "00", "msg"}), which is
 * what query_prepared looks up. Return 0 when the local transaction
 * committed, DTMQ_ERR_FAILURE when it rolled back, anything else when its
 * outcome is unknown; err (errlen bytes) may be filled with the reason. */
typedef int (*dtmq_local_fn)(void *arg, const dtmq_branch_ref *barrier, char *err, size_t errlen);

/*
 * prepare → fn → submit, as DTM's Msg.DoAndSubmit:
 *   fn 0                → submit; returns submit's result.
 *   fn DTMQ_ERR_FAILURE → abort; returns DTMQ_ERR_FAILURE.
 *   fn other            → asks query_prepared itself (GET, op=msg): FAILURE
 *                         → abort and DTMQ_ERR_FAILURE; 200 → submit;
 *                         anything else → DTMQ_ERR_UNREACHABLE.
 * When submit or abort gets no answer, the msg stays prepared and dtmq asks
 * query_prepared back after timeout_to_fail: it is delivered if and only if
 * the local transaction committed. The caller need not (must not) retry.
 */
int dtmq_msg_do_and_submit(dtmq_client *c, const dtmq_trans *t, dtmq_local_fn fn, void *arg,
                           char *err, size_t errlen);

/* ---- submission over Kafka ----------------------------------------------- */

/* Produces the same JSON as the HTTP call plus "op" (and "reply_to" when
 * not NULL) to the submit topic, keyed by gid, and waits for Kafka's
 * acknowledgement. op: "prepare", "submit" or "abort". 0 means Kafka holds
 * the command, not that dtmq accepted it: dtmq's answer goes to reply_to
 * (and the store, GET query). No acknowledgement within timeout_ms:
 * DTMQ_ERR_UNREACHABLE (the message may still arrive). */
int dtmq_submit_kafka(dtmq_client *c, const dtmq_trans *t, const char *op, const char *reply_to,
                      char *err, size_t errlen);

/* ---- helpers for HTTP branch handlers -------------------------------------- */

/* In dtmq.h: dtmq_branch_from_query (the dtm-* fields of a branch call's
 * query string into a dtmq_branch_ref), dtmq_result_status and
 * dtmq_result_body (the status and body DTM expects for a result). */

#ifdef __cplusplus
}
#endif

#endif
