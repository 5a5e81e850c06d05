/*
 * dtmq_client_trans.c — the transaction builder (dtmq_saga_new and friends,
 * the option setters) and the JSON body of each call, in the field order and
 * with the omissions of DTM's Go SDK (TransBase in dtmimp/trans_base.go):
 *
 *   gid, trans_type, custom_data?, wait_result?, timeout_to_fail?,
 *   request_timeout?, retry_interval?, branch_headers?, concurrent,
 *   retry_limit?, steps?, payloads?, query_prepared?, protocol,
 *   rollback_reason?                                  (? = left out when empty)
 *
 * custom_data is generated as the Go SDK generates it: a concurrent saga's
 * {"concurrent":true,"orders":{...}} and a msg's {"delay":N} on submit, a
 * workflow's {"data":<base64>,"name":...} always.
 *
 * A setter given a bad value records the first such error in t->error
 * (sticky); dtmq_sdk_trans_body refuses a transaction that has one.
 */
#include "dtmq_client_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SDK_GID_MAX 128

static const char *const sdk_type_names[] = {"saga", "msg", "tcc", "xa", "workflow"};

const char *dtmq_sdk_type_name(sdk_type type)
{
    return sdk_type_names[type];
}

/* Records the first builder error; returns code. */
static int sdk_trans_fail(dtmq_trans *t, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int sdk_trans_fail(dtmq_trans *t, int code, const char *fmt, ...)
{
    if (t->error[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->error, sizeof(t->error), fmt, ap);
        va_end(ap);
    }
    return code;
}

/* 1 when s is valid UTF-8 (what a JSON string may hold). */
static int sdk_utf8_ok(const char *s)
{
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

/* Replaces *dst with a copy of src (NULL clears). 0, or an error recorded. */
static int sdk_set_text(dtmq_trans *t, char **dst, const char *src, const char *what)
{
    char *copy = NULL;
    if (src != NULL) {
        if (!sdk_utf8_ok(src))
            return sdk_trans_fail(t, DTMQ_ERR_INVALID, "%s: not valid UTF-8", what);
        if ((copy = strdup(src)) == NULL)
            return sdk_trans_fail(t, DTMQ_ERR_NOMEM, "%s: out of memory", what);
    }
    free(*dst);
    *dst = copy;
    return DTMQ_OK;
}

/* ---------- constructors ---------- */

static dtmq_trans *sdk_trans_new(sdk_type type, const char *gid)
{
    dtmq_trans *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->type = type;
    t->steps = json_array();
    t->payloads = json_array();
    t->gid = strdup(gid != NULL ? gid : "");
    if (t->steps == NULL || t->payloads == NULL || t->gid == NULL) {
        dtmq_trans_free(t);
        return NULL;
    }
    if (gid == NULL || gid[0] == '\0')
        sdk_trans_fail(t, DTMQ_ERR_INVALID, "gid: missing");
    else if (strlen(gid) > SDK_GID_MAX)
        sdk_trans_fail(t, DTMQ_ERR_INVALID, "gid: longer than %d bytes", SDK_GID_MAX);
    else if (strpbrk(gid, "\r\n;") != NULL)
        sdk_trans_fail(t, DTMQ_ERR_INVALID, "gid '%s': may not contain CR, LF or ';'", gid);
    else if (!sdk_utf8_ok(gid))
        sdk_trans_fail(t, DTMQ_ERR_INVALID, "gid: not valid UTF-8");
    return t;
}

dtmq_trans *dtmq_saga_new(const char *gid)
{
    return sdk_trans_new(SDK_SAGA, gid);
}

dtmq_trans *dtmq_msg_new(const char *gid, const char *query_prepared_url)
{
    dtmq_trans *t = sdk_trans_new(SDK_MSG, gid);
    if (t != NULL && query_prepared_url != NULL && query_prepared_url[0] != '\0')
        sdk_set_text(t, &t->query_prepared, query_prepared_url, "query_prepared");
    return t;
}

dtmq_trans *dtmq_tcc_new(const char *gid)
{
    return sdk_trans_new(SDK_TCC, gid);
}

dtmq_trans *dtmq_xa_new(const char *gid)
{
    return sdk_trans_new(SDK_XA, gid);
}

dtmq_trans *dtmq_workflow_new(const char *gid, const char *name, const char *resume_url)
{
    dtmq_trans *t = sdk_trans_new(SDK_WORKFLOW, gid);
    if (t == NULL)
        return NULL;
    if (name == NULL || name[0] == '\0')
        sdk_trans_fail(t, DTMQ_ERR_INVALID, "workflow name: missing");
    else
        sdk_set_text(t, &t->wf_name, name, "workflow name");
    if (resume_url == NULL || resume_url[0] == '\0')
        sdk_trans_fail(t, DTMQ_ERR_INVALID, "workflow resume_url: missing");
    else
        sdk_set_text(t, &t->query_prepared, resume_url, "workflow resume_url");
    return t;
}

void dtmq_trans_free(dtmq_trans *t)
{
    if (t == NULL)
        return;
    free(t->gid);
    json_decref(t->steps);
    json_decref(t->payloads);
    json_decref(t->headers);
    free(t->orders);
    free(t->query_prepared);
    free(t->custom_data);
    free(t->rollback_reason);
    free(t->wf_name);
    free(t->wf_data);
    free(t);
}

const char *dtmq_trans_gid(const dtmq_trans *t)
{
    return t != NULL ? t->gid : NULL;
}

const char *dtmq_trans_error(const dtmq_trans *t)
{
    return t != NULL && t->error[0] != '\0' ? t->error : NULL;
}

/* ---------- steps ---------- */

/* DTMQ_ERR_INVALID when t is NULL or (recorded) not of type. */
static int sdk_need_type(dtmq_trans *t, sdk_type type, const char *what)
{
    if (t == NULL)
        return DTMQ_ERR_INVALID;
    if (t->type != type)
        return sdk_trans_fail(t, DTMQ_ERR_INVALID, "%s: only for %s, this is a %s", what,
                              dtmq_sdk_type_name(type), dtmq_sdk_type_name(t->type));
    return DTMQ_OK;
}

/* Appends a step and its payload; 0 or an error recorded. */
static int sdk_add_step(dtmq_trans *t, const char *action, const char *compensate,
                        const char *payload, const char *what)
{
    if (action == NULL)
        return sdk_trans_fail(t, DTMQ_ERR_INVALID, "%s: action_url is NULL (\"\" is a no-op)",
                              what);
    json_t *step = json_object();
    json_t *a = json_string(action);
    json_t *c = compensate != NULL ? json_string(compensate) : NULL;
    json_t *p = json_string(payload != NULL ? payload : "");
    int bad = a == NULL || (compensate != NULL && c == NULL) || p == NULL;
    if (step == NULL || bad) {
        json_decref(step);
        json_decref(a);
        json_decref(c);
        json_decref(p);
        return sdk_trans_fail(t, DTMQ_ERR_INVALID,
                              "%s: step %zu: URLs and payload must be valid UTF-8", what,
                              json_array_size(t->steps));
    }
    json_object_set_new(step, "action", a);
    if (c != NULL)
        json_object_set_new(step, "compensate", c);
    if (json_array_append_new(t->steps, step) != 0 || json_array_append_new(t->payloads, p) != 0)
        return sdk_trans_fail(t, DTMQ_ERR_NOMEM, "%s: out of memory", what);
    return DTMQ_OK;
}

int dtmq_saga_add(dtmq_trans *t, const char *action_url, const char *compensate_url,
                  const char *payload)
{
    int rc = sdk_need_type(t, SDK_SAGA, "dtmq_saga_add");
    if (rc != DTMQ_OK)
        return rc;
    return sdk_add_step(t, action_url, compensate_url != NULL ? compensate_url : "", payload,
                        "dtmq_saga_add");
}

int dtmq_msg_add(dtmq_trans *t, const char *action_url, const char *payload)
{
    int rc = sdk_need_type(t, SDK_MSG, "dtmq_msg_add");
    if (rc != DTMQ_OK)
        return rc;
    return sdk_add_step(t, action_url, NULL, payload, "dtmq_msg_add");
}

int dtmq_saga_add_order(dtmq_trans *t, int step, int depends_on_step)
{
    int rc = sdk_need_type(t, SDK_SAGA, "dtmq_saga_add_order");
    if (rc != DTMQ_OK)
        return rc;
    if (step < 0 || depends_on_step < 0 || depends_on_step >= step)
        return sdk_trans_fail(t, DTMQ_ERR_INVALID,
                              "dtmq_saga_add_order(%d, %d): steps are 0-based and a step can only "
                              "depend on an earlier one", step, depends_on_step);
    if (t->norders == t->orders_cap) {
        size_t cap = t->orders_cap ? t->orders_cap * 2 : 8;
        sdk_order *grown = realloc(t->orders, cap * sizeof(*grown));
        if (grown == NULL)
            return sdk_trans_fail(t, DTMQ_ERR_NOMEM, "dtmq_saga_add_order: out of memory");
        t->orders = grown;
        t->orders_cap = cap;
    }
    t->orders[t->norders++] = (sdk_order){step, depends_on_step};
    return DTMQ_OK;
}

int dtmq_msg_set_delay(dtmq_trans *t, long seconds)
{
    int rc = sdk_need_type(t, SDK_MSG, "dtmq_msg_set_delay");
    if (rc != DTMQ_OK)
        return rc;
    if (seconds < 0)
        return sdk_trans_fail(t, DTMQ_ERR_INVALID, "delay: %ld is negative", seconds);
    t->delay = seconds;
    return DTMQ_OK;
}

int dtmq_workflow_set_data(dtmq_trans *t, const void *data, size_t len)
{
    int rc = sdk_need_type(t, SDK_WORKFLOW, "dtmq_workflow_set_data");
    if (rc != DTMQ_OK)
        return rc;
    if (data == NULL && len > 0)
        return sdk_trans_fail(t, DTMQ_ERR_INVALID, "dtmq_workflow_set_data: data is NULL");
    unsigned char *copy = malloc(len ? len : 1);
    if (copy == NULL)
        return sdk_trans_fail(t, DTMQ_ERR_NOMEM, "dtmq_workflow_set_data: out of memory");
    if (len > 0)
        memcpy(copy, data, len);
    free(t->wf_data);
    t->wf_data = copy;
    t->wf_data_len = len;
    t->wf_has_data = 1;
    return DTMQ_OK;
}

/* ---------- options ---------- */

/* t is not NULL (the callers check, before taking a field's address). */
static int sdk_set_count(dtmq_trans *t, long *field, long value, const char *name)
{
    if (value < 0)
        return sdk_trans_fail(t, DTMQ_ERR_INVALID, "%s: %ld is negative", name, value);
    *field = value;
    return DTMQ_OK;
}

int dtmq_trans_set_wait_result(dtmq_trans *t, int on)
{
    if (t == NULL)
        return DTMQ_ERR_INVALID;
    t->wait_result = on != 0;
    return DTMQ_OK;
}

int dtmq_trans_set_timeout_to_fail(dtmq_trans *t, long seconds)
{
    if (t == NULL)
        return DTMQ_ERR_INVALID;
    return sdk_set_count(t, &t->timeout_to_fail, seconds, "timeout_to_fail");
}

int dtmq_trans_set_request_timeout(dtmq_trans *t, long seconds)
{
    if (t == NULL)
        return DTMQ_ERR_INVALID;
    return sdk_set_count(t, &t->request_timeout, seconds, "request_timeout");
}

int dtmq_trans_set_retry_interval(dtmq_trans *t, long seconds)
{
    if (t == NULL)
        return DTMQ_ERR_INVALID;
    return sdk_set_count(t, &t->retry_interval, seconds, "retry_interval");
}

int dtmq_trans_set_retry_limit(dtmq_trans *t, long count)
{
    if (t == NULL)
        return DTMQ_ERR_INVALID;
    return sdk_set_count(t, &t->retry_limit, count, "retry_limit");
}

int dtmq_trans_set_concurrent(dtmq_trans *t, int on)
{
    if (t == NULL)
        return DTMQ_ERR_INVALID;
    t->concurrent = on != 0;
    return DTMQ_OK;
}

static int sdk_header_problem(const char *name, const char *value)
{
    return name == NULL || value == NULL || name[0] == '\0' || strpbrk(name, "\r\n:") != NULL ||
           strpbrk(value, "\r\n") != NULL || strncasecmp(name, "dtm-", 4) == 0;
}

int dtmq_trans_add_branch_header(dtmq_trans *t, const char *name, const char *value)
{
    if (t == NULL)
        return DTMQ_ERR_INVALID;
    if (sdk_header_problem(name, value))
        return sdk_trans_fail(t, DTMQ_ERR_INVALID,
                              "branch_headers.%s: name and value must be given, without line "
                              "breaks, ':' in the name or the reserved prefix dtm-",
                              name != NULL ? name : "(NULL)");
    json_t *v = json_string(value);
    if (v == NULL || !sdk_utf8_ok(name)) {
        json_decref(v);
        return sdk_trans_fail(t, DTMQ_ERR_INVALID, "branch_headers: not valid UTF-8");
    }
    if (t->headers == NULL && (t->headers = json_object()) == NULL) {
        json_decref(v);
        return sdk_trans_fail(t, DTMQ_ERR_NOMEM, "branch_headers: out of memory");
    }
    if (json_object_set_new(t->headers, name, v) != 0)
        return sdk_trans_fail(t, DTMQ_ERR_NOMEM, "branch_headers: out of memory");
    return DTMQ_OK;
}

int dtmq_trans_set_custom_data(dtmq_trans *t, const char *custom_data)
{
    if (t == NULL)
        return DTMQ_ERR_INVALID;
    if (t->type == SDK_WORKFLOW)
        return sdk_trans_fail(t, DTMQ_ERR_INVALID,
                              "custom_data: a workflow's is made from its name and data");
    return sdk_set_text(t, &t->custom_data, custom_data, "custom_data");
}

int dtmq_trans_set_rollback_reason(dtmq_trans *t, const char *reason)
{
    if (t == NULL)
        return DTMQ_ERR_INVALID;
    return sdk_set_text(t, &t->rollback_reason, reason, "rollback_reason");
}

/* ---------- branch ids ---------- */

int dtmq_sdk_trans_branch_id(dtmq_trans *t, const char *branch_id, char *out, size_t len, char *err,
                        size_t errlen)
{
    if (branch_id == NULL) {
        if (t->next_branch >= SDK_MAX_BRANCHES)
            return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID, "branch_id: more than %d branches",
                            SDK_MAX_BRANCHES);
        snprintf(out, len, "%02d", ++t->next_branch);
        return DTMQ_OK;
    }
    size_t n = strlen(branch_id);
    if (n == 0 || n >= len || !sdk_utf8_ok(branch_id))
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID,
                        "branch_id '%.64s': must be 1 to %zu bytes of UTF-8", branch_id, len - 1);
    snprintf(out, len, "%s", branch_id);
    if (strspn(branch_id, "0123456789") == n && n <= 2 && atoi(branch_id) > t->next_branch)
        t->next_branch = atoi(branch_id); /* NULL next time continues after it */
    return DTMQ_OK;
}

/* ---------- bodies ---------- */

/* Checks that op makes sense for t's type. */
static int sdk_check_op(const dtmq_trans *t, sdk_op op, char *err, size_t errlen)
{
    const char *type = dtmq_sdk_type_name(t->type);
    switch (op) {
    case SDK_OP_PREPARE:
        if (t->type == SDK_SAGA)
            return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID,
                            "prepare: a saga is not prepared, submit it");
        if (t->type == SDK_WORKFLOW)
            return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID,
                            "prepare: use dtmq_workflow_prepare for a workflow");
        return DTMQ_OK;
    case SDK_OP_SUBMIT:
        if (t->type == SDK_WORKFLOW)
            return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID,
                            "submit: use dtmq_workflow_finish for a workflow");
        return DTMQ_OK;
    case SDK_OP_ABORT:
        if (t->type == SDK_SAGA || t->type == SDK_WORKFLOW)
            return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID,
                            "abort: only msg, tcc and xa are aborted, this is a %s", type);
        return DTMQ_OK;
    case SDK_OP_PREPARE_WORKFLOW:
        if (t->type != SDK_WORKFLOW)
            return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID, "prepareWorkflow: this is a %s", type);
        return DTMQ_OK;
    }
    return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID, "unknown operation");
}

/* The checks of saga and msg content for op. */
static int sdk_check_steps(const dtmq_trans *t, sdk_op op, char *err, size_t errlen)
{
    size_t nsteps = json_array_size(t->steps);
    if (t->type == SDK_SAGA) {
        if (nsteps == 0)
            return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID, "saga: no steps (dtmq_saga_add)");
        if (t->norders > 0 && !t->concurrent)
            return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID,
                            "saga: orders given but not concurrent (dtmq_trans_set_concurrent)");
        for (size_t i = 0; i < t->norders; i++)
            if ((size_t)t->orders[i].step >= nsteps)
                return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID,
                                "saga: order for step %d, but the saga has %zu steps (0-based)",
                                t->orders[i].step, nsteps);
        if (t->concurrent && t->custom_data != NULL)
            return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID,
                            "custom_data: a concurrent saga's is made from its orders");
    }
    if (t->type == SDK_MSG) {
        if (nsteps == 0 && op != SDK_OP_ABORT)
            return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID, "msg: no steps (dtmq_msg_add)");
        if (op == SDK_OP_PREPARE && t->query_prepared == NULL)
            return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID,
                            "msg: prepare needs a query_prepared URL (dtmq_msg_new)");
        if (t->delay > 0 && t->custom_data != NULL)
            return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID,
                            "custom_data: a msg with a delay has {\"delay\":N} as custom_data");
    }
    return DTMQ_OK;
}

/* {"concurrent":true,"orders":{"<step>":[deps]}} as Go marshals it. */
static char *sdk_saga_custom(const dtmq_trans *t)
{
    json_t *orders = json_object();
    for (size_t i = 0; orders != NULL && i < t->norders; i++) {
        char key[16];
        snprintf(key, sizeof(key), "%d", t->orders[i].step);
        json_t *deps = json_object_get(orders, key);
        if (deps == NULL) {
            deps = json_array();
            json_object_set_new(orders, key, deps);
        }
        json_array_append_new(deps, json_integer(t->orders[i].depends_on));
    }
    json_t *custom = json_pack("{s:b, s:o}", "concurrent", 1, "orders", orders);
    char *text = custom != NULL ? dtmq_sdk_json_text(custom, JSON_SORT_KEYS) : NULL;
    json_decref(custom);
    return text;
}

static char *sdk_workflow_custom(const dtmq_trans *t)
{
    char *b64 = t->wf_has_data ? dtmq_base64_encode(t->wf_data, t->wf_data_len) : NULL;
    if (t->wf_has_data && b64 == NULL)
        return NULL;
    json_t *custom = json_pack("{s:o, s:s}", "data", b64 ? json_string(b64) : json_null(), "name",
                               t->wf_name);
    char *text = custom != NULL ? dtmq_sdk_json_text(custom, JSON_SORT_KEYS) : NULL;
    json_decref(custom);
    free(b64);
    return text;
}

/* The custom_data of the body for op (malloc'd), NULL when none; *oom set
 * when it could not be made. */
static char *sdk_custom_data(const dtmq_trans *t, sdk_op op, int *oom)
{
    char *text = NULL;
    *oom = 0;
    if (t->type == SDK_WORKFLOW) {
        text = sdk_workflow_custom(t);
    } else if (t->type == SDK_SAGA && op == SDK_OP_SUBMIT && t->concurrent) {
        text = sdk_saga_custom(t);
    } else if (t->type == SDK_MSG && op == SDK_OP_SUBMIT && t->delay > 0) {
        json_t *d = json_pack("{s:I}", "delay", (json_int_t)t->delay);
        text = d != NULL ? dtmq_sdk_json_text(d, JSON_SORT_KEYS) : NULL;
        json_decref(d);
    } else if (t->custom_data != NULL && t->custom_data[0] != '\0') {
        text = strdup(t->custom_data);
    } else {
        return NULL;
    }
    *oom = text == NULL;
    return text;
}

static int sdk_compare_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* branch_headers with its keys in sorted order (Go marshals maps sorted). */
static json_t *sdk_sorted_headers(const json_t *headers)
{
    size_t n = json_object_size(headers);
    const char **keys = calloc(n ? n : 1, sizeof(*keys));
    json_t *out = json_object();
    if (keys == NULL || out == NULL) {
        free(keys);
        json_decref(out);
        return NULL;
    }
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)headers, k, v)
        keys[i++] = k;
    qsort(keys, n, sizeof(*keys), sdk_compare_keys);
    for (i = 0; i < n; i++)
        json_object_set(out, keys[i], json_object_get(headers, keys[i]));
    free(keys);
    return out;
}

/* Sets key to value (stolen); remembers a failure in *bad. */
static void sdk_put(json_t *o, const char *key, json_t *value, int *bad)
{
    if (value == NULL || json_object_set_new(o, key, value) != 0)
        *bad = 1;
}

/* The options TransOptions flattens into the body, in its field order. */
static void sdk_put_options(json_t *o, const dtmq_trans *t, int *bad)
{
    if (t->wait_result)
        sdk_put(o, "wait_result", json_true(), bad);
    if (t->timeout_to_fail > 0)
        sdk_put(o, "timeout_to_fail", json_integer(t->timeout_to_fail), bad);
    if (t->request_timeout > 0)
        sdk_put(o, "request_timeout", json_integer(t->request_timeout), bad);
    if (t->retry_interval > 0)
        sdk_put(o, "retry_interval", json_integer(t->retry_interval), bad);
    if (t->headers != NULL && json_object_size(t->headers) > 0)
        sdk_put(o, "branch_headers", sdk_sorted_headers(t->headers), bad);
    sdk_put(o, "concurrent", json_boolean(t->concurrent), bad);
    if (t->retry_limit > 0)
        sdk_put(o, "retry_limit", json_integer(t->retry_limit), bad);
}

/* The whole TransBase object; NULL when out of memory. */
static json_t *sdk_build_body(const dtmq_trans *t, sdk_op op)
{
    int bad = 0;
    char *custom = sdk_custom_data(t, op, &bad);
    json_t *o = json_object();
    if (o == NULL || bad) {
        free(custom);
        json_decref(o);
        return NULL;
    }
    sdk_put(o, "gid", json_string(t->gid), &bad);
    sdk_put(o, "trans_type", json_string(dtmq_sdk_type_name(t->type)), &bad);
    if (custom != NULL)
        sdk_put(o, "custom_data", json_string(custom), &bad);
    sdk_put_options(o, t, &bad);
    if (json_array_size(t->steps) > 0) {
        sdk_put(o, "steps", json_deep_copy(t->steps), &bad);
        sdk_put(o, "payloads", json_deep_copy(t->payloads), &bad);
    }
    if (t->query_prepared != NULL && t->query_prepared[0] != '\0')
        sdk_put(o, "query_prepared", json_string(t->query_prepared), &bad);
    sdk_put(o, "protocol", json_string(""), &bad);
    if (t->rollback_reason != NULL && t->rollback_reason[0] != '\0')
        sdk_put(o, "rollback_reason", json_string(t->rollback_reason), &bad);
    free(custom);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *dtmq_sdk_trans_body(const dtmq_trans *t, sdk_op op, int *code, char *err, size_t errlen)
{
    if (t == NULL) {
        *code = dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID, "transaction is NULL");
        return NULL;
    }
    if (t->error[0] != '\0') {
        *code = dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID, "%s", t->error);
        return NULL;
    }
    if ((*code = sdk_check_op(t, op, err, errlen)) != DTMQ_OK ||
        (*code = sdk_check_steps(t, op, err, errlen)) != DTMQ_OK)
        return NULL;
    json_t *body = sdk_build_body(t, op);
    if (body == NULL)
        *code = dtmq_sdk_fail(err, errlen, DTMQ_ERR_NOMEM, "%s: out of memory", t->gid);
    return body;
}

int dtmq_trans_to_json(const dtmq_trans *t, const char *op, char **json, char *err,
                       size_t errlen)
{
    static const struct {
        const char *name;
        sdk_op op;
    } ops[] = {{"prepare", SDK_OP_PREPARE},
               {"submit", SDK_OP_SUBMIT},
               {"abort", SDK_OP_ABORT},
               {"prepareWorkflow", SDK_OP_PREPARE_WORKFLOW}};
    if (json == NULL)
        return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID, "dtmq_trans_to_json: json is NULL");
    *json = NULL;
    for (size_t i = 0; op != NULL && i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (strcmp(op, ops[i].name) != 0)
            continue;
        int code;
        json_t *body = dtmq_sdk_trans_body(t, ops[i].op, &code, err, errlen);
        if (body == NULL)
            return code;
        *json = dtmq_sdk_json_text(body, 0);
        json_decref(body);
        return *json != NULL ? DTMQ_OK : dtmq_sdk_fail(err, errlen, DTMQ_ERR_NOMEM, "out of memory");
    }
    return dtmq_sdk_fail(err, errlen, DTMQ_ERR_INVALID,
                    "op '%s': not one of prepare, submit, abort, prepareWorkflow",
                    op != NULL ? op : "(NULL)");
}
