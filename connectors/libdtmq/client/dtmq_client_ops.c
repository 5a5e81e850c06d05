/*
 * dtmq_client_ops.c — what a transaction does with a client: prepare,
 * submit and abort over HTTP (DTM's TransCallDtm), the client-driven TCC
 * and XA branch calls (registerBranch, then the try/action call with
 * ?dtm&gid&trans_type&branch_id&op, as dtmcli's CallBranch), the msg outbox
 * (DoAndSubmit) and submission to dtmq's Kafka submit topic.
 */
#include "dtmq_client_internal.h"
#include "libdtmq/common/rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void sdk_clear(char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
}

/* ---------- prepare / submit / abort ---------- */

static int sdk_trans_call(dtmq_client *c, const dtmq_trans *t, sdk_op op, const char *route,
                          char *err, size_t errlen)
{
    sdk_clear(err, errlen);
    int code;
    json_t *body = dtmq_sdk_trans_body(t, op, &code, err, errlen);
    if (body == NULL)
        return code;
    code = dtmq_sdk_call_server(c, route, body, 0, NULL, err, errlen);
    json_decref(body);
    return code;
}

int dtmq_prepare(dtmq_client *c, const dtmq_trans *t, char *err, size_t errlen)
{
    return sdk_trans_call(c, t, SDK_OP_PREPARE, "prepare", err, errlen);
}

int dtmq_submit(dtmq_client *c, const dtmq_trans *t, char *err, size_t errlen)
{
    return sdk_trans_call(c, t, SDK_OP_SUBMIT, "submit", err, errlen);
}

int dtmq_abort(dtmq_client *c, const dtmq_trans *t, char *err, size_t errlen)
{
    return sdk_trans_call(c, t, SDK_OP_ABORT, "abort", err, errlen);
}

/* ---------- registerBranch ---------- */

/* registerBranch with DTM's flat string map {gid, trans_type, pairs...}
 * (pairs: name, value, ...; a NULL value leaves the name out). Go marshals
 * the map with sorted keys. */
static int sdk_register(dtmq_client *c, const char *gid, const char *type,
                        const char *const *pairs, size_t npairs, char *err, size_t errlen)
{
    json_t *m = json_object();
    int bad = m == NULL || json_object_set_new(m, "gid", json_string(gid)) != 0 ||
              json_object_set_new(m, "trans_type", json_string(type)) != 0;
    for (size_t i = 0; !bad && i + 1 < npairs; i += 2)
        if (pairs[i + 1] != NULL)
            bad = json_object_set_new(m, pairs[i], json_string(pairs[i + 1])) != 0;
    if (bad) {
        json_decref(m);
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID,
                        "registerBranch %s: values must be valid UTF-8", gid);
    }
    int rc = dtmq_sdk_call_server(c, "registerBranch", m, JSON_SORT_KEYS, NULL, err, errlen);
    json_decref(m);
    return rc;
}

/* 0 when s is given and not empty, else DTMQ_ERR_INVALID naming it. */
static int sdk_need(const char *s, const char *what, char *err, size_t errlen)
{
    if (s == NULL || s[0] == '\0')
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID, "%s: missing", what);
    return DTMQ_OK;
}

int dtmq_xa_register(dtmq_client *c, const char *gid, const char *branch_id, const char *url,
                     const char *data, char *err, size_t errlen)
{
    sdk_clear(err, errlen);
    int rc;
    if ((rc = sdk_need(gid, "dtmq_xa_register: gid", err, errlen)) != DTMQ_OK ||
        (rc = sdk_need(branch_id, "dtmq_xa_register: branch_id", err, errlen)) != DTMQ_OK ||
        (rc = sdk_need(url, "dtmq_xa_register: url", err, errlen)) != DTMQ_OK)
        return rc;
    const char *pairs[] = {"branch_id", branch_id, "url", url, "data", data};
    return sdk_register(c, gid, "xa", pairs, 6, err, errlen);
}

/* ---------- TCC and XA branch calls ---------- */

/* POSTs payload to url with DTM's branch query and t's headers; maps the
 * answer as dtmq maps a branch's, its body copied into resp. */
static int sdk_call_branch(dtmq_client *c, const dtmq_trans *t, const char *url,
                           const char *branch_id, const char *op, const char *payload,
                           char *resp, size_t resp_len, char *err, size_t errlen)
{
    const char *pairs[] = {"dtm", c->server, "gid", t->gid, "trans_type", dtmq_sdk_type_name(t->type),
                           "branch_id", branch_id, "op", op, "phase2_url", url};
    size_t npairs = t->type == SDK_XA ? 12 : 10; /* dtmcli adds phase2_url for xa */
    char *full = dtmq_sdk_url_with_query(url, pairs, npairs);
    if (full == NULL)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_NOMEM, "%s: out of memory", url);
    sdk_http_reply r;
    int rc = dtmq_sdk_http(c, "POST", full, payload != NULL ? payload : "", t->headers, &r, err, errlen);
    if (rc == DTMQ_OK) {
        if (resp != NULL && resp_len > 0)
            snprintf(resp, resp_len, "%s", r.body);
        rc = dtmq_sdk_map_branch_reply("POST", full, &r, err, errlen);
        free(r.body);
    }
    free(full);
    return rc;
}

/* What both branch calls check first. */
static int sdk_check_branch_call(dtmq_client *c, dtmq_trans *t, sdk_type type, const char *what,
                                 char *err, size_t errlen)
{
    if (c == NULL || t == NULL)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID, "%s: client or transaction is NULL", what);
    if (c->server == NULL)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID, "%s: the client has no server URL", what);
    if (t->error[0] != '\0')
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID, "%s", t->error);
    if (t->type != type)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID, "%s: this is a %s transaction", what,
                        dtmq_sdk_type_name(t->type));
    return DTMQ_OK;
}

int dtmq_tcc_call_branch(dtmq_client *c, dtmq_trans *t, const char *branch_id,
                         const char *try_url, const char *confirm_url, const char *cancel_url,
                         const char *payload, char *resp, size_t resp_len, char *err,
                         size_t errlen)
{
    sdk_clear(err, errlen);
    if (resp != NULL && resp_len > 0)
        resp[0] = '\0';
    char bid[DTMQ_BRANCH_ID_MAX + 1]; /* a branch id as dtmq.h sizes it */
    int rc;
    if ((rc = sdk_check_branch_call(c, t, SDK_TCC, "dtmq_tcc_call_branch", err, errlen)) !=
            DTMQ_OK ||
        (rc = sdk_need(try_url, "dtmq_tcc_call_branch: try_url", err, errlen)) != DTMQ_OK ||
        (rc = dtmq_sdk_trans_branch_id(t, branch_id, bid, sizeof(bid), err, errlen)) != DTMQ_OK)
        return rc;
    const char *pairs[] = {"branch_id", bid, "data", payload != NULL ? payload : "",
                           "confirm", confirm_url != NULL ? confirm_url : "",
                           "cancel", cancel_url != NULL ? cancel_url : ""};
    rc = sdk_register(c, t->gid, "tcc", pairs, 8, err, errlen);
    if (rc != DTMQ_OK)
        return rc;
    return sdk_call_branch(c, t, try_url, bid, "try", payload, resp, resp_len, err, errlen);
}

int dtmq_xa_call_branch(dtmq_client *c, dtmq_trans *t, const char *branch_id, const char *url,
                        const char *payload, char *resp, size_t resp_len, char *err,
                        size_t errlen)
{
    sdk_clear(err, errlen);
    if (resp != NULL && resp_len > 0)
        resp[0] = '\0';
    char bid[DTMQ_BRANCH_ID_MAX + 1]; /* a branch id as dtmq.h sizes it */
    int rc;
    if ((rc = sdk_check_branch_call(c, t, SDK_XA, "dtmq_xa_call_branch", err, errlen)) != DTMQ_OK ||
        (rc = sdk_need(url, "dtmq_xa_call_branch: url", err, errlen)) != DTMQ_OK ||
        (rc = dtmq_sdk_trans_branch_id(t, branch_id, bid, sizeof(bid), err, errlen)) != DTMQ_OK)
        return rc;
    return sdk_call_branch(c, t, url, bid, "action", payload, resp, resp_len, err, errlen);
}

/* ---------- msg outbox ---------- */

/* GET query_prepared?...&branch_id=00&op=msg, as DoAndSubmit does when the
 * local transaction's outcome is unknown; mapped as a branch answer. */
static int sdk_query_prepared(dtmq_client *c, const dtmq_trans *t, char *err, size_t errlen)
{
    const char *pairs[] = {"dtm", c->server, "gid", t->gid, "trans_type", "msg",
                           "branch_id", DTMQ_MSG_BRANCH_ID, "op", DTMQ_MSG_OP};
    char *url = dtmq_sdk_url_with_query(t->query_prepared, pairs, 10);
    if (url == NULL)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_NOMEM, "query_prepared: out of memory");
    sdk_http_reply r;
    int rc = dtmq_sdk_http(c, "GET", url, NULL, t->headers, &r, err, errlen);
    if (rc == DTMQ_OK) {
        rc = dtmq_sdk_map_branch_reply("GET", url, &r, err, errlen);
        free(r.body);
    }
    free(url);
    return rc;
}

/* Aborts after the local transaction failed; returns DTMQ_ERR_FAILURE. */
static int sdk_abort_after(dtmq_client *c, const dtmq_trans *t, const char *why, char *err,
                           size_t errlen)
{
    char abort_err[512];
    int rc = dtmq_abort(c, t, abort_err, sizeof(abort_err));
    if (rc == DTMQ_OK)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_FAILURE, "%s: %s; the msg was aborted", t->gid, why);
    return dtmq_sdk_fail(err, errlen, DTMQ_ERR_FAILURE,
                    "%s: %s; abort failed (%s), dtmq will drop the msg when query_prepared "
                    "answers FAILURE", t->gid, why, abort_err);
}

/* Submits; an unanswered submit is left to dtmq's query-back. */
static int sdk_submit_after(dtmq_client *c, const dtmq_trans *t, char *err, size_t errlen)
{
    char submit_err[512];
    int rc = dtmq_submit(c, t, submit_err, sizeof(submit_err));
    if (rc == DTMQ_ERR_UNREACHABLE)
        return dtmq_sdk_fail(err, errlen, rc,
                        "%s; the local transaction committed: dtmq will ask query_prepared "
                        "and deliver the msg", submit_err);
    if (rc != DTMQ_OK)
        return dtmq_sdk_fail(err, errlen, rc, "%s", submit_err);
    return DTMQ_OK;
}

int dtmq_msg_do_and_submit(dtmq_client *c, const dtmq_trans *t, dtmq_local_fn fn, void *arg,
                           char *err, size_t errlen)
{
    sdk_clear(err, errlen);
    if (fn == NULL)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID, "dtmq_msg_do_and_submit: fn is NULL");
    int rc = dtmq_prepare(c, t, err, errlen);
    if (rc != DTMQ_OK)
        return rc;
    dtmq_branch_ref barrier;
    memset(&barrier, 0, sizeof(barrier));
    snprintf(barrier.gid, sizeof(barrier.gid), "%s", t->gid);
    snprintf(barrier.trans_type, sizeof(barrier.trans_type), "msg");
    snprintf(barrier.branch_id, sizeof(barrier.branch_id), DTMQ_MSG_BRANCH_ID);
    snprintf(barrier.op, sizeof(barrier.op), DTMQ_MSG_OP);
    snprintf(barrier.dtm, sizeof(barrier.dtm), "%s", c->server);
    char fn_err[512] = "", why[700];
    int frc = fn(arg, &barrier, fn_err, sizeof(fn_err));
    if (frc == DTMQ_OK)
        return sdk_submit_after(c, t, err, errlen);
    snprintf(why, sizeof(why), "the local transaction failed (%s: %s)", dtmq_error_name(frc),
             fn_err[0] ? fn_err : "no reason given");
    if (frc == DTMQ_ERR_FAILURE)
        return sdk_abort_after(c, t, why, err, errlen);
    char q_err[512];
    int qrc = sdk_query_prepared(c, t, q_err, sizeof(q_err));
    if (qrc == DTMQ_ERR_FAILURE)
        return sdk_abort_after(c, t, why, err, errlen);
    if (qrc == DTMQ_OK)
        return sdk_submit_after(c, t, err, errlen);
    return dtmq_sdk_fail(err, errlen, DTMQ_ERR_UNREACHABLE,
                    "%s: %s and query_prepared did not tell (%s); the msg stays prepared and "
                    "dtmq asks query_prepared back", t->gid, why, q_err);
}

/* ---------- Kafka ---------- */

/* Kafka's topic name rule, as schemas/kafka/submit.schema.json states it. */
static int sdk_topic_ok(const char *topic)
{
    return dtmq_topic_name_ok(topic);
}

static int sdk_kafka_op(const dtmq_trans *t, const char *op, sdk_op *out, char *err,
                        size_t errlen)
{
    if (op == NULL)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID, "kafka op: missing");
    if (strcmp(op, "prepare") == 0)
        *out = t != NULL && t->type == SDK_WORKFLOW ? SDK_OP_PREPARE_WORKFLOW : SDK_OP_PREPARE;
    else if (strcmp(op, "submit") == 0)
        *out = SDK_OP_SUBMIT;
    else if (strcmp(op, "abort") == 0)
        *out = SDK_OP_ABORT;
    else
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID,
                        "kafka op '%s': not one of prepare, submit, abort", op);
    return DTMQ_OK;
}

/* {"op":op, <body>, "reply_to":reply_to} as text; NULL + *code on error. */
static char *sdk_kafka_value(const dtmq_trans *t, const char *op, const char *reply_to,
                             int *code, char *err, size_t errlen)
{
    sdk_op sop = SDK_OP_SUBMIT;
    if ((*code = sdk_kafka_op(t, op, &sop, err, errlen)) != DTMQ_OK)
        return NULL;
    if (reply_to != NULL && !sdk_topic_ok(reply_to)) {
        *code = dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID,
                         "reply_to '%s': not a Kafka topic name ([A-Za-z0-9._-], 1 to 249)",
                         reply_to);
        return NULL;
    }
    json_t *body = dtmq_sdk_trans_body(t, sop, code, err, errlen);
    if (body == NULL)
        return NULL;
    json_t *value = json_pack("{s:s}", "op", op);
    int bad = value == NULL || json_object_update(value, body) != 0;
    if (!bad && reply_to != NULL)
        bad = json_object_set_new(value, "reply_to", json_string(reply_to)) != 0;
    char *text = bad ? NULL : dtmq_sdk_json_text(value, 0);
    json_decref(value);
    json_decref(body);
    if (text == NULL)
        *code = dtmq_sdk_fail(err, errlen, DTMQ_ERR_NOMEM, "kafka: out of memory");
    return text;
}

int dtmq_submit_kafka(dtmq_client *c, const dtmq_trans *t, const char *op, const char *reply_to,
                      char *err, size_t errlen)
{
    sdk_clear(err, errlen);
    if (c == NULL || c->producer == NULL)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID,
                        "dtmq_submit_kafka: the client has no kafka_bootstrap");
    int code;
    char *value = sdk_kafka_value(t, op, reply_to, &code, err, errlen);
    if (value == NULL)
        return code;
    char kerr[512];
    if (dtmq_kafka_produce_sync(c->producer, c->submit_topic, t->gid, value, strlen(value), NULL, 0,
                           c->timeout_ms, kerr, sizeof(kerr)) != 0)
        code = dtmq_sdk_fail(err, errlen, DTMQ_ERR_UNREACHABLE, "kafka %s, topic %s, gid %s: %s",
                        c->bootstrap, c->submit_topic, t->gid, kerr);
    free(value);
    return code;
}
