/*
 * api.c — the route table of the HTTP API, the reply helpers the route files
 * share, and the small handlers that need no engine: ping, version, newGid,
 * info. Replies follow DTM's shapes (section 1 of the protocol reference):
 * every value in newGid's body is a string, because old DTM clients decode it
 * into map[string]string. docs/protocol.md lists every route.
 */
#include "api.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "access.h"
#include "admin_assets.h"
#include "api_internal.h"
#include "gid.h"
#include "kafka_ingress.h"
#include "log.h"
#include "metrics.h"
#include "version.h"

typedef struct route {
    const char *method; /* NULL = any method */
    const char *path;
    int prefix;         /* path is a prefix (e.g. /api/dtmsvr/topic/) */
    route_fn fn;
    int admin;          /* needs the admin token when AdminToken is set */
} route;

void api_reply_json(http_response *resp, int status, json_t *body)
{
    resp->status = status;
    resp->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (resp->body == NULL) {
        resp->status = 500;
        resp->body = strdup("{\"message\":\"out of memory\"}");
    }
}

void api_reply_message(http_response *resp, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    api_reply_json(resp, status, json_pack("{s:s}", "message", msg));
}

void api_reply_cmd(http_response *resp, cmd_reply *r)
{
    if (!r->deferred) {
        api_reply_json(resp, r->status, r->body);
        r->body = NULL;
    }
    cmd_reply_clear(r);
}

json_t *api_body_object(const http_request *req, http_response *resp)
{
    json_error_t jerr;
    json_t *body = json_loadb(req->body, req->body_len, 0, &jerr);
    if (body == NULL) {
        api_reply_message(resp, 400, "invalid JSON at line %d column %d: %s", jerr.line,
                          jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        api_reply_message(resp, 400, "body: must be a JSON object");
        return NULL;
    }
    return body;
}

const char *api_body_gid(const http_request *req, http_response *resp, json_t **body)
{
    *body = api_body_object(req, resp);
    if (*body == NULL)
        return NULL;
    const char *gid = json_string_value(json_object_get(*body, "gid"));
    if (gid == NULL || gid[0] == '\0') {
        api_reply_message(resp, 400, "gid: missing");
        return NULL;
    }
    return gid;
}

/* Reads an integer query parameter into *out (unchanged when absent). 0, or
 * -1 after replying 400. */
int api_query_int(const http_request *req, http_response *resp, const char *name,
                     long long min, long long max, long long *out)
{
    const char *v = http_query(req, name);
    if (v == NULL || v[0] == '\0')
        return 0;
    char *end = NULL;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < min || n > max) {
        api_reply_message(resp, 400, "%s: '%.64s' is not an integer in %lld..%lld", name, v, min, max);
        return -1;
    }
    *out = n;
    return 0;
}

static void route_ping(broker *b, const http_request *req, http_response *resp)
{
    api_reply_json(resp, 200, json_pack("{s:s}", "msg", "pong"));
}

static void route_version(broker *b, const http_request *req, http_response *resp)
{
    api_reply_json(resp, 200, json_pack("{s:s}", "version", DTMQ_VERSION));
}

static void route_new_gid(broker *b, const http_request *req, http_response *resp)
{
    char gid[GID_LEN + 1];
    if (gid_new(gid) != 0) {
        log_error("newGid: the kernel's random source failed");
        api_reply_message(resp, 500, "cannot generate a gid: random source failed");
        return;
    }
    api_reply_json(resp, 200, json_pack("{s:s, s:s}", "gid", gid, "dtm_result", "SUCCESS"));
}

static void route_info(broker *b, const http_request *req, http_response *resp)
{
    const char *bootstrap = kafka_link_bootstrap(b->kafka);
    kafka_ingress_stats st = {0};
    if (b->ingress)
        kafka_ingress_stats_get(b->ingress, &st);
    json_t *info = json_pack("{s:s, s:{s:s, s:s}, s:s, s:o, s:{s:I, s:I, s:I, s:I, s:i}}",
                             "version", DTMQ_VERSION,
                             "store", "driver", store_driver(b->store),
                             "uri", store_display_uri(b->store),
                             "kafka_mode", kafka_link_mode(b->kafka),
                             "kafka_bootstrap", bootstrap ? json_string(bootstrap) : json_null(),
                             "kafka_ingress", "submitted", (json_int_t)st.submitted,
                             "dead_lettered", (json_int_t)st.dead_lettered,
                             "replies", (json_int_t)st.replies,
                             "replies_unknown", (json_int_t)st.replies_unknown,
                             "assigned_partitions", st.assigned_partitions);
    api_reply_json(resp, 200, info);
}

static const route routes[] = {
    {NULL, "/api/ping", 0, route_ping, 0},
    {"GET", "/api/dtmsvr/version", 0, route_version, 0},
    {"GET", "/api/dtmsvr/newGid", 0, route_new_gid, 0},
    {"GET", "/api/info", 0, route_info, 0},
    {"POST", "/api/dtmsvr/prepare", 0, api_prepare, 0},
    {"POST", "/api/dtmsvr/submit", 0, api_submit, 0},
    {"POST", "/api/dtmsvr/abort", 0, api_abort, 0},
    {"POST", "/api/dtmsvr/registerBranch", 0, api_register_branch, 0},
    {"POST", "/api/dtmsvr/registerXaBranch", 0, api_register_branch, 0},
    {"POST", "/api/dtmsvr/registerTccBranch", 0, api_register_branch, 0},
    {"POST", "/api/dtmsvr/prepareWorkflow", 0, api_prepare_workflow, 0},
    {"POST", "/api/dtmsvr/forceStop", 0, api_force_stop, 1},
    {"GET", "/api/dtmsvr/query", 0, api_query, 0},
    {"GET", "/api/dtmsvr/all", 0, api_all, 0},
    {"GET", "/api/dtmsvr/resetCronTime", 0, api_reset_cron_time, 1},
    {"POST", "/api/dtmsvr/resetNextCronTime", 0, api_reset_next_cron_time, 1},
    {NULL, "/api/dtmsvr/subscribe", 0, api_subscribe, 1},
    {NULL, "/api/dtmsvr/unsubscribe", 0, api_unsubscribe, 1},
    {"DELETE", "/api/dtmsvr/topic/", 1, api_delete_topic, 1},
    {"GET", "/api/dtmsvr/scanKV", 0, api_scan_kv, 0},
    {"GET", "/api/dtmsvr/queryKV", 0, api_query_kv, 0},
    {"GET", "/api/admin/stats", 0, api_stats, 1},
    {"GET", "/admin", 0, api_admin_asset, 1},
    {"GET", "/admin", 1, api_admin_asset, 1},
    {"GET", "/api/metrics", 0, api_metrics, 0},
};

static int path_matches(const route *r, const char *path)
{
    if (r->prefix)
        return strncmp(path, r->path, strlen(r->path)) == 0 && path[strlen(r->path)] != '\0';
    return strcmp(path, r->path) == 0;
}

static const route *route_for(const http_request *req, http_response *resp);

double api_seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* DTM's request metrics; api is the route's pattern (a small, fixed set). */
void api_count_request(const char *api, int status, double seconds)
{
    char labels[256];
    snprintf(labels, sizeof(labels), "type=\"http\",api=\"%s\",status=\"%s\"", api,
             status >= 200 && status < 300 ? "OK" : "FAIL");
    metrics_count("dtm_server_process_total", labels, 1);
    snprintf(labels, sizeof(labels), "type=\"http\",api=\"%s\"", api);
    metrics_observe("dtm_server_response_duration", labels, seconds);
}

void api_handle(void *ctx, const http_request *req, http_response *resp)
{
    broker *b = ctx;
    double started = api_seconds_now();
    const route *r = route_for(req, resp);
    if (r != NULL) {
        if (r->admin && !access_token_ok(b->cfg, http_header(req, "Authorization"))) {
            api_reply_message(resp, 401, "unauthorized");
            resp->header_name = "WWW-Authenticate"; /* lets a browser ask for the token */
            resp->header_value = "Basic realm=\"dtmq\", charset=\"UTF-8\"";
        } else if (b->stopping && strcmp(req->method, "GET") != 0) {
            /* nothing is stored that no pass here would run: ask another process */
            api_reply_message(resp, 503, "dtmq is stopping; send the request to another dtmq process");
        } else {
            r->fn(b, req, resp);
        }
    }
    if (!http_is_deferred(req)) /* a deferred answer is counted when it is sent */
        api_count_request(r ? r->path : "other", resp->status, api_seconds_now() - started);
}

/* The route for the request, or NULL after replying 404/405. */
static const route *route_for(const http_request *req, http_response *resp)
{
    int path_known = 0;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (!path_matches(&routes[i], req->path))
            continue;
        path_known = 1;
        if (routes[i].method == NULL || strcmp(routes[i].method, req->method) == 0)
            return &routes[i];
    }
    api_reply_message(resp, path_known ? 405 : 404, "%s %.400s: %s", req->method, req->path,
                      path_known ? "method not allowed" : "no such route");
    return NULL;
}
