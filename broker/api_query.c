/*
 * api_query.c — HTTP routes that read transactions or move their timers:
 * query, all (cursor paging with filters), resetCronTime, resetNextCronTime.
 * Shapes as DTM's; malformed parameters get a 400 naming the parameter.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "engine/engine.h"
#include "kafka_ingress.h"
#include "metrics.h"
#include "version.h"

void api_query(broker *b, const http_request *req, http_response *resp)
{
    const char *gid = http_query(req, "gid");
    if (gid == NULL || gid[0] == '\0') { /* DTM answers 500 here; clients expect it */
        api_reply_message(resp, 500, "gid: missing (use /api/dtmsvr/query?gid=...)");
        return;
    }
    trans_global *t = NULL;
    store_result r = store_find_trans(b->store, gid, &t);
    if (r != STORE_OK && r != STORE_NOT_FOUND) {
        api_reply_message(resp, 500, "query: store %s: %s", store_result_name(r), store_last_error());
        return;
    }
    json_t *branches = json_array();
    for (size_t i = 0; t && i < t->branch_count; i++)
        json_array_append_new(branches, trans_branch_to_json(&t->branches[i], t->gid));
    api_reply_json(resp, 200, json_pack("{s:o, s:o}", "transaction",
                                        t ? trans_global_to_json(t) : json_null(),
                                        "branches", branches));
    trans_free(t);
}

void api_all(broker *b, const http_request *req, http_response *resp)
{
    long long limit = 100, start = 0, end = 0;
    if (api_query_int(req, resp, "limit", 1, 1000, &limit) ||
        api_query_int(req, resp, "createTimeStart", 0, (long long)1 << 52, &start) ||
        api_query_int(req, resp, "createTimeEnd", 0, (long long)1 << 52, &end))
        return;
    store_filter f = {
        .gid = http_query(req, "gid"), .status = http_query(req, "status"),
        .trans_type = http_query(req, "transType"),
        .create_time_start = start, .create_time_end = end,
    };
    if (f.gid && !f.gid[0])
        f.gid = NULL;
    if (f.status && !f.status[0])
        f.status = NULL;
    if (f.trans_type && !f.trans_type[0])
        f.trans_type = NULL;
    store_trans_list list;
    char *next = NULL;
    store_result r = store_list_trans(b->store, &f, http_query(req, "position"), (int)limit, &list, &next);
    if (r == STORE_INVALID) {
        api_reply_message(resp, 400, "position: %s", store_last_error());
        return;
    }
    if (r != STORE_OK) {
        api_reply_message(resp, 500, "all: store %s: %s", store_result_name(r), store_last_error());
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < list.count; i++)
        json_array_append_new(items, trans_global_to_json(list.items[i]));
    api_reply_json(resp, 200, json_pack("{s:o, s:s}", "transactions", items, "next_position",
                                        next ? next : ""));
    store_trans_list_clear(&list);
    free(next);
}

void api_reset_cron_time(broker *b, const http_request *req, http_response *resp)
{
    long long timeout = 3LL * b->cfg->timeout_to_fail, limit = 100;
    if (api_query_int(req, resp, "timeout", 0, 1LL << 31, &timeout) ||
        api_query_int(req, resp, "limit", 1, 100000, &limit))
        return;
    int moved = 0;
    bool remaining = false;
    store_result r = store_reset_cron_times(b->store, dtmq_now_ms(), timeout * 1000, (int)limit,
                                            &moved, &remaining);
    if (r != STORE_OK) {
        api_reply_message(resp, 500, "resetCronTime: store %s: %s", store_result_name(r), store_last_error());
        return;
    }
    api_reply_json(resp, 200, json_pack("{s:b, s:i}", "has_remaining", remaining, "succeed_count", moved));
}

void api_reset_next_cron_time(broker *b, const http_request *req, http_response *resp)
{
    json_t *body = NULL;
    const char *gid = api_body_gid(req, resp, &body);
    if (gid == NULL) {
        json_decref(body);
        return;
    }
    store_result r = engine_poke(b->engine, gid);
    if (r == STORE_OK)
        api_reply_json(resp, 200, json_pack("{s:s}", "dtm_result", "SUCCESS"));
    else if (r == STORE_NOT_FOUND || r == STORE_CONFLICT)
        api_reply_json(resp, 409, json_pack("{s:s, s:s}", "dtm_result", "FAILURE", "message",
                                            "no unfinished transaction with this gid"));
    else
        api_reply_message(resp, 500, "resetNextCronTime: store %s: %s", store_result_name(r),
                          store_last_error());
    json_decref(body);
}

/* GET /api/admin/stats: how many transactions are in each status. */
void api_stats(broker *b, const http_request *req, http_response *resp)
{
    store_status_counts c;
    store_result r = store_count_by_status(b->store, &c);
    if (r != STORE_OK) {
        api_reply_message(resp, 500, "stats: store %s: %s", store_result_name(r), store_last_error());
        return;
    }
    api_reply_json(resp, 200, json_pack("{s:{s:I, s:I, s:I, s:I, s:I}}", "transactions",
                                        "prepared", (json_int_t)c.prepared, "submitted",
                                        (json_int_t)c.submitted, "aborting", (json_int_t)c.aborting,
                                        "succeed", (json_int_t)c.succeed, "failed", (json_int_t)c.failed));
}

/* GET /api/metrics: Prometheus text. Gauges that describe "now" are taken at
 * scrape time; the rest accumulate as things happen (metrics.h). */
void api_metrics(broker *b, const http_request *req, http_response *resp)
{
    char labels[128];
    snprintf(labels, sizeof(labels), "version=\"%s\"", DTMQ_VERSION);
    metrics_gauge("dtm_server_info", labels, 1);
    metrics_gauge("dtmq_branch_calls_in_flight", "", engine_calls_pending(b->engine));
    metrics_gauge("dtmq_engine_queue_depth", "", engine_queue_depth(b->engine));
    store_status_counts c;
    if (store_count_by_status(b->store, &c) == STORE_OK) {
        const struct { const char *status; int64_t n; } by[] = {
            {"prepared", c.prepared}, {"submitted", c.submitted}, {"aborting", c.aborting},
            {"succeed", c.succeed}, {"failed", c.failed}};
        for (size_t i = 0; i < 5; i++) {
            snprintf(labels, sizeof(labels), "status=\"%s\"", by[i].status);
            metrics_gauge("dtmq_transactions", labels, (double)by[i].n);
        }
    }
    if (b->ingress)
        kafka_ingress_report_lag(b->ingress);
    resp->status = 200;
    resp->body = metrics_render();
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
}
