/*
 * trans_json.c — DTM's JSON shapes in and out (see trans_json.h).
 *
 * Parsing keeps the first problem it meets and reports it in one line that
 * names the field ("steps[2].action: ..."), so a client can fix its request
 * from the 400 alone.
 */
#include "trans_json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define GID_MAX 128

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Copies a string member into *dst; absent or null leaves NULL. -1 if not a string. */
static int take_string(json_t *obj, const char *key, char **dst, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return fail(err, errlen, "%s: must be a string", key);
    *dst = strdup(json_string_value(v));
    return *dst ? 0 : fail(err, errlen, "out of memory");
}

/* A non-negative integer option; also accepts a numeric string (some SDKs). */
static int take_seconds(json_t *obj, const char *key, int64_t *dst, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_integer(v)) {
        *dst = json_integer_value(v);
    } else if (json_is_string(v) && json_string_length(v) > 0) {
        char *end = NULL;
        long long n = strtoll(json_string_value(v), &end, 10);
        if (*end != '\0')
            return fail(err, errlen, "%s: '%s' is not an integer", key, json_string_value(v));
        *dst = n;
    } else {
        return fail(err, errlen, "%s: must be an integer", key);
    }
    if (*dst < 0)
        return fail(err, errlen, "%s: must not be negative", key);
    return 0;
}

static int take_bool(json_t *obj, const char *key, int *dst, char *err, size_t errlen)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return fail(err, errlen, "%s: must be true or false", key);
    *dst = json_is_true(v);
    return 0;
}

static int parse_options(json_t *obj, trans_options *o, char *err, size_t errlen)
{
    if (take_bool(obj, "wait_result", &o->wait_result, err, errlen) ||
        take_bool(obj, "concurrent", &o->concurrent, err, errlen) ||
        take_seconds(obj, "timeout_to_fail", &o->timeout_to_fail, err, errlen) ||
        take_seconds(obj, "request_timeout", &o->request_timeout, err, errlen) ||
        take_seconds(obj, "retry_interval", &o->retry_interval, err, errlen) ||
        take_seconds(obj, "retry_limit", &o->retry_limit, err, errlen))
        return -1;
    json_t *h = json_object_get(obj, "branch_headers");
    if (h == NULL || json_is_null(h))
        return 0;
    if (!json_is_object(h))
        return fail(err, errlen, "branch_headers: must be an object of strings");
    const char *k;
    json_t *v;
    json_object_foreach(h, k, v) {
        if (!json_is_string(v))
            return fail(err, errlen, "branch_headers.%s: must be a string", k);
        if (strpbrk(k, "\r\n:") || strpbrk(json_string_value(v), "\r\n"))
            return fail(err, errlen, "branch_headers.%s: header names and values may not contain line breaks", k);
        if (strncasecmp(k, "dtm-", 4) == 0) /* dtmq's own headers on Kafka branches */
            return fail(err, errlen, "branch_headers.%s: names starting with dtm- are reserved", k);
    }
    o->branch_headers = json_incref(h);
    return 0;
}

/* DTM strips '\n', '\r' and ';' from gids (they would break its SQL and logs). */
static void strip_gid(char *gid)
{
    char *w = gid;
    for (const char *r = gid; *r; r++)
        if (*r != '\n' && *r != '\r' && *r != ';')
            *w++ = *r;
    *w = '\0';
}

static int check_gid(trans_request *r, char *err, size_t errlen)
{
    if (r->gid == NULL)
        return fail(err, errlen, "gid: missing");
    strip_gid(r->gid);
    if (r->gid[0] == '\0')
        return fail(err, errlen, "gid: empty");
    if (strlen(r->gid) > GID_MAX)
        return fail(err, errlen, "gid: longer than %d bytes", GID_MAX);
    return 0;
}

static int check_type(const char *type, char *err, size_t errlen)
{
    if (type == NULL)
        return fail(err, errlen, "trans_type: missing");
    if (trans_mode_of(type) != TRANS_MODE_NONE)
        return 0;
    return fail(err, errlen, "trans_type: '%.32s' is not one of saga, tcc, xa, msg, workflow", type);
}

static int parse_steps(trans_request *r, char *err, size_t errlen)
{
    json_t *steps = json_object_get(r->body, "steps");
    if (steps == NULL || json_is_null(steps))
        return 0;
    if (!json_is_array(steps))
        return fail(err, errlen, "steps: must be an array of objects");
    size_t i;
    json_t *step;
    json_array_foreach(steps, i, step) {
        if (!json_is_object(step))
            return fail(err, errlen, "steps[%zu]: must be an object", i);
        const char *k;
        json_t *v;
        json_object_foreach(step, k, v)
            if (!json_is_string(v))
                return fail(err, errlen, "steps[%zu].%s: must be a string", i, k);
    }
    r->steps = json_incref(steps);
    return 0;
}

/* payloads, with DTM's fallback: when none are given, steps[i].data serve. */
static int parse_payloads(trans_request *r, char *err, size_t errlen)
{
    json_t *p = json_object_get(r->body, "payloads");
    if (p != NULL && !json_is_null(p)) {
        if (!json_is_array(p))
            return fail(err, errlen, "payloads: must be an array of strings");
        size_t i;
        json_t *v;
        json_array_foreach(p, i, v)
            if (!json_is_string(v))
                return fail(err, errlen, "payloads[%zu]: must be a string", i);
        r->payloads = json_incref(p);
    } else if (r->steps != NULL) {
        json_t *from_data = json_array();
        size_t i;
        json_t *step;
        int any = 0;
        json_array_foreach(r->steps, i, step) {
            json_t *d = json_object_get(step, "data");
            any |= d != NULL;
            json_array_append_new(from_data, json_string(d ? json_string_value(d) : ""));
        }
        if (any)
            r->payloads = from_data;
        else
            json_decref(from_data);
    }
    if (r->steps && r->payloads && json_array_size(r->payloads) != json_array_size(r->steps) &&
        json_array_size(r->payloads) != 0)
        return fail(err, errlen, "payloads: %zu given for %zu steps (want one per step)",
                    json_array_size(r->payloads), json_array_size(r->steps));
    return 0;
}

int trans_request_parse(const char *body, size_t len, int require_type, trans_request *out,
                        char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    json_error_t jerr;
    out->body = json_loadb(body, len, 0, &jerr);
    if (out->body == NULL)
        return fail(err, errlen, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                    jerr.text);
    int rc = -1;
    if (!json_is_object(out->body))
        fail(err, errlen, "body: must be a JSON object");
    else if (take_string(out->body, "gid", &out->gid, err, errlen) == 0 &&
             check_gid(out, err, errlen) == 0 &&
             take_string(out->body, "trans_type", &out->trans_type, err, errlen) == 0 &&
             (!require_type || check_type(out->trans_type, err, errlen) == 0) &&
             take_string(out->body, "query_prepared", &out->query_prepared, err, errlen) == 0 &&
             take_string(out->body, "protocol", &out->protocol, err, errlen) == 0 &&
             take_string(out->body, "custom_data", &out->custom_data, err, errlen) == 0 &&
             take_string(out->body, "rollback_reason", &out->rollback_reason, err, errlen) == 0 &&
             parse_options(out->body, &out->opts, err, errlen) == 0 &&
             parse_steps(out, err, errlen) == 0 && parse_payloads(out, err, errlen) == 0)
        rc = 0;
    if (rc == 0) {
        json_t *extra = json_object_get(out->body, "req_extra");
        if (json_is_object(extra))
            out->req_extra = json_incref(extra);
    }
    if (rc != 0)
        trans_request_clear(out);
    return rc;
}

void trans_options_clear(trans_options *o)
{
    json_decref(o->branch_headers);
    memset(o, 0, sizeof(*o));
}

void trans_request_clear(trans_request *r)
{
    free(r->gid);
    free(r->trans_type);
    free(r->query_prepared);
    free(r->protocol);
    free(r->custom_data);
    free(r->rollback_reason);
    json_decref(r->steps);
    json_decref(r->payloads);
    json_decref(r->req_extra);
    json_decref(r->body);
    trans_options_clear(&r->opts);
    memset(r, 0, sizeof(*r));
}

char *trans_options_to_text(const trans_options *o)
{
    json_t *j = json_pack("{s:b, s:b}", "concurrent", o->concurrent, "wait_result", o->wait_result);
    if (j == NULL)
        return NULL;
    const struct { const char *key; int64_t value; } nums[] = {
        {"timeout_to_fail", o->timeout_to_fail}, {"request_timeout", o->request_timeout},
        {"retry_interval", o->retry_interval}, {"retry_limit", o->retry_limit}};
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
        if (nums[i].value > 0)
            json_object_set_new(j, nums[i].key, json_integer(nums[i].value));
    if (o->branch_headers != NULL && json_object_size(o->branch_headers) > 0)
        json_object_set(j, "branch_headers", o->branch_headers);
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    return text;
}

int trans_options_from_text(const char *text, trans_options *out)
{
    memset(out, 0, sizeof(*out));
    if (text == NULL || text[0] == '\0')
        return 0;
    json_t *j = json_loads(text, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return -1;
    }
    char err[128];
    int rc = parse_options(j, out, err, sizeof(err));
    json_decref(j);
    if (rc != 0)
        trans_options_clear(out);
    return rc;
}

const char *trans_json_time(int64_t ms, char *buf, size_t len)
{
    if (ms <= 0) {
        snprintf(buf, len, "0001-01-01T00:00:00Z");
        return buf;
    }
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    int frac = (int)(ms % 1000);
    if (frac == 0) { /* Go trims trailing zeros of the fraction, and the dot with them */
        snprintf(buf + n, len - n, "Z");
    } else {
        char digits[4];
        snprintf(digits, sizeof(digits), "%03d", frac);
        for (int i = 2; i > 0 && digits[i] == '0'; i--)
            digits[i] = '\0';
        snprintf(buf + n, len - n, ".%sZ", digits);
    }
    return buf;
}

static void set_time(json_t *o, const char *key, int64_t ms)
{
    char buf[48];
    if (ms > 0)
        json_object_set_new(o, key, json_string(trans_json_time(ms, buf, sizeof(buf))));
}

static void set_str(json_t *o, const char *key, const char *value)
{
    json_object_set_new(o, key, json_string(value ? value : ""));
}

json_t *trans_global_to_json(const trans_global *t)
{
    json_t *o = json_object();
    set_time(o, "create_time", t->create_time);
    set_time(o, "update_time", t->update_time);
    set_str(o, "gid", t->gid);
    set_str(o, "trans_type", t->trans_type);
    set_str(o, "status", t->status);
    set_str(o, "query_prepared", t->query_prepared);
    set_str(o, "protocol", t->protocol);
    set_time(o, "finish_time", t->finish_time);
    set_time(o, "rollback_time", t->rollback_time);
    set_str(o, "result", t->result);
    set_str(o, "rollback_reason", t->rollback_reason);
    set_str(o, "options", t->options);
    set_str(o, "custom_data", t->custom_data);
    set_str(o, "ext_data", t->ext_data);
    json_object_set_new(o, "next_cron_interval", json_integer(t->next_cron_interval));
    set_time(o, "next_cron_time", t->next_cron_time);
    set_str(o, "owner", t->owner);
    trans_options opts;
    if (trans_options_from_text(t->options, &opts) == 0) { /* DTM flattens options too */
        json_object_set_new(o, "concurrent", json_boolean(opts.concurrent));
        json_object_set_new(o, "wait_result", json_boolean(opts.wait_result));
        json_object_set_new(o, "timeout_to_fail", json_integer(opts.timeout_to_fail));
        json_object_set_new(o, "request_timeout", json_integer(opts.request_timeout));
        json_object_set_new(o, "retry_interval", json_integer(opts.retry_interval));
        json_object_set_new(o, "retry_limit", json_integer(opts.retry_limit));
        if (opts.branch_headers)
            json_object_set(o, "branch_headers", opts.branch_headers);
        trans_options_clear(&opts);
    }
    return o;
}

json_t *trans_branch_to_json(const trans_branch *b, const char *gid)
{
    json_t *o = json_object();
    set_time(o, "create_time", b->create_time);
    set_time(o, "update_time", b->update_time);
    set_str(o, "gid", gid);
    set_str(o, "url", b->url);
    char *data = dtmq_base64_encode(b->data, b->data ? b->data_len : 0);
    set_str(o, "bin_data", data);
    free(data);
    set_str(o, "branch_id", b->branch_id);
    set_str(o, "op", b->op);
    set_str(o, "status", b->status);
    set_time(o, "finish_time", b->finish_time);
    set_time(o, "rollback_time", b->rollback_time);
    return o;
}
