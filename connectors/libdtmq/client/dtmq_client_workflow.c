/*
 * dtmq_client_workflow.c — the HTTP side of DTM's workflow client
 * (client/workflow/rpc.go): prepareWorkflow returns the recorded progresses
 * for the caller to replay, registerBranch records one step's result, and
 * submit with req_extra ends the workflow. Running the steps and deciding
 * what to replay is the caller's; docs/sdk.md shows the loop.
 */
#include "dtmq_client_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void sdk_clear(char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
}

static void sdk_progress_release(dtmq_progress *p)
{
    free(p->branch_id);
    free(p->op);
    free(p->status);
    free(p->data);
}

void dtmq_workflow_state_clear(dtmq_workflow_state *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->count; i++)
        sdk_progress_release(&s->progresses[i]);
    free(s->progresses);
    memset(s, 0, sizeof(*s));
}

static char *sdk_field_dup(json_t *obj, const char *key)
{
    const char *v = json_string_value(json_object_get(obj, key));
    return strdup(v != NULL ? v : "");
}

/* One progress from its JSON; 0, DTMQ_ERR_SERVER (bad base64) or NOMEM. */
static int sdk_progress_from(json_t *j, dtmq_progress *p, char *err, size_t errlen)
{
    p->branch_id = sdk_field_dup(j, "branch_id");
    p->op = sdk_field_dup(j, "op");
    p->status = sdk_field_dup(j, "status");
    const char *b64 = json_string_value(json_object_get(j, "bin_data"));
    p->data = dtmq_base64_decode(b64 != NULL ? b64 : "", &p->data_len);
    if (p->branch_id == NULL || p->op == NULL || p->status == NULL)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_NOMEM, "prepareWorkflow: out of memory");
    if (p->data == NULL)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_SERVER,
                        "prepareWorkflow: progress %s-%s: bin_data is not base64", p->branch_id,
                        p->op);
    return DTMQ_OK;
}

/* Fills out from {"transaction":{...},"progresses":[...]}. */
static int sdk_state_from(json_t *reply, dtmq_workflow_state *out, char *err, size_t errlen)
{
    json_t *trans = json_object_get(reply, "transaction");
    const char *status = json_string_value(json_object_get(trans, "status"));
    json_t *list = json_object_get(reply, "progresses");
    if (status == NULL || (list != NULL && !json_is_null(list) && !json_is_array(list)))
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_SERVER,
                        "prepareWorkflow: the answer has no transaction status or progress list");
    snprintf(out->status, sizeof(out->status), "%s", status);
    size_t n = json_array_size(list);
    if (n == 0)
        return DTMQ_OK;
    out->progresses = calloc(n, sizeof(*out->progresses));
    if (out->progresses == NULL)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_NOMEM, "prepareWorkflow: out of memory");
    for (size_t i = 0; i < n; i++) {
        out->count = i + 1; /* so a failure releases what was filled */
        int rc = sdk_progress_from(json_array_get(list, i), &out->progresses[i], err, errlen);
        if (rc != DTMQ_OK)
            return rc;
    }
    return DTMQ_OK;
}

int dtmq_workflow_prepare(dtmq_client *c, const dtmq_trans *t, dtmq_workflow_state *out,
                          char *err, size_t errlen)
{
    sdk_clear(err, errlen);
    if (out == NULL)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID, "dtmq_workflow_prepare: out is NULL");
    memset(out, 0, sizeof(*out));
    int rc;
    json_t *body = dtmq_sdk_trans_body(t, SDK_OP_PREPARE_WORKFLOW, &rc, err, errlen);
    if (body == NULL)
        return rc;
    json_t *reply = NULL;
    rc = dtmq_sdk_call_server(c, "prepareWorkflow", body, 0, &reply, err, errlen);
    json_decref(body);
    if (rc == DTMQ_OK)
        rc = sdk_state_from(reply, out, err, errlen);
    json_decref(reply);
    if (rc != DTMQ_OK)
        dtmq_workflow_state_clear(out);
    return rc;
}

static int sdk_need(const char *s, const char *what, char *err, size_t errlen)
{
    if (s == NULL || s[0] == '\0')
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID, "%s: missing", what);
    return DTMQ_OK;
}

int dtmq_workflow_record(dtmq_client *c, const char *gid, const char *branch_id, const char *op,
                         const char *status, const char *data, char *err, size_t errlen)
{
    sdk_clear(err, errlen);
    int rc;
    if ((rc = sdk_need(gid, "dtmq_workflow_record: gid", err, errlen)) != DTMQ_OK ||
        (rc = sdk_need(branch_id, "dtmq_workflow_record: branch_id", err, errlen)) != DTMQ_OK ||
        (rc = sdk_need(op, "dtmq_workflow_record: op", err, errlen)) != DTMQ_OK)
        return rc;
    if (status == NULL || (strcmp(status, "succeed") != 0 && strcmp(status, "failed") != 0))
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID,
                        "dtmq_workflow_record: status '%s' is not succeed or failed",
                        status != NULL ? status : "(NULL)");
    json_t *m = json_pack("{s:s?, s:s, s:s?, s:s?, s:s?, s:s?}", "branch_id", branch_id, "data",
                          data != NULL ? data : "", "gid", gid, "op", op, "status", status,
                          "trans_type", "workflow");
    if (m == NULL)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID,
                        "dtmq_workflow_record %s: values must be valid UTF-8", gid);
    rc = dtmq_sdk_call_server(c, "registerBranch", m, JSON_SORT_KEYS, NULL, err, errlen);
    json_decref(m);
    return rc;
}

int dtmq_workflow_finish(dtmq_client *c, const char *gid, int succeeded,
                         const char *rollback_reason, const char *result, char *err,
                         size_t errlen)
{
    sdk_clear(err, errlen);
    int rc = sdk_need(gid, "dtmq_workflow_finish: gid", err, errlen);
    if (rc != DTMQ_OK)
        return rc;
    json_t *extra = json_pack("{s:s, s:s}", "rollback_reason",
                              rollback_reason != NULL ? rollback_reason : "", "status",
                              succeeded ? "succeed" : "failed");
    if (extra != NULL && result != NULL &&
        json_object_set_new(extra, "result", json_string(result)) != 0) {
        json_decref(extra);
        extra = NULL;
    }
    json_t *m = extra != NULL ? json_pack("{s:s, s:o, s:s}", "gid", gid, "req_extra", extra,
                                          "trans_type", "workflow")
                              : NULL;
    if (m == NULL)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID,
                        "dtmq_workflow_finish %s: values must be valid UTF-8", gid);
    rc = dtmq_sdk_call_server(c, "submit", m, JSON_SORT_KEYS, NULL, err, errlen);
    json_decref(m);
    return rc;
}
