/*
 * api_internal.h — what the HTTP API's route files share: the route handler
 * type and the reply helpers (api.c), and the handlers each file provides.
 */
#ifndef DTMQ_API_INTERNAL_H
#define DTMQ_API_INTERNAL_H

#include <jansson.h>

#include "broker.h"
#include "engine/commands.h"
#include "http_server.h"

typedef void (*route_fn)(broker *b, const http_request *req, http_response *resp);

/* Sends body (reference taken) with status. */
void api_reply_json(http_response *resp, int status, json_t *body);
/* {"message": ...} with status. */
void api_reply_message(http_response *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sends a command's reply (or defers the request when the command did). */
void api_reply_cmd(http_response *resp, cmd_reply *r);
/* The request body parsed as a JSON object, or NULL after replying 400. */
json_t *api_body_object(const http_request *req, http_response *resp);

/* The "gid" of a JSON body like {"gid":"..."}; NULL after replying 400.
 * *body gets the parsed body (the gid points into it); json_decref it. */
const char *api_body_gid(const http_request *req, http_response *resp, json_t **body);

/* Reads the integer query parameter name into *out (unchanged when absent).
 * 0, or -1 after replying 400 naming the parameter. */
int api_query_int(const http_request *req, http_response *resp, const char *name, long long min,
                  long long max, long long *out);

/* Counts a served request in the metrics (api: the route's pattern). */
void api_count_request(const char *api, int status, double seconds);
double api_seconds_now(void);

/* api_trans.c */
void api_prepare(broker *b, const http_request *req, http_response *resp);
void api_submit(broker *b, const http_request *req, http_response *resp);
void api_abort(broker *b, const http_request *req, http_response *resp);
void api_register_branch(broker *b, const http_request *req, http_response *resp);
void api_prepare_workflow(broker *b, const http_request *req, http_response *resp);
void api_force_stop(broker *b, const http_request *req, http_response *resp);

/* api_query.c */
void api_query(broker *b, const http_request *req, http_response *resp);
void api_all(broker *b, const http_request *req, http_response *resp);
void api_reset_cron_time(broker *b, const http_request *req, http_response *resp);
void api_reset_next_cron_time(broker *b, const http_request *req, http_response *resp);
void api_stats(broker *b, const http_request *req, http_response *resp);
void api_metrics(broker *b, const http_request *req, http_response *resp);

/* api_topics.c */
void api_subscribe(broker *b, const http_request *req, http_response *resp);
void api_unsubscribe(broker *b, const http_request *req, http_response *resp);
void api_delete_topic(broker *b, const http_request *req, http_response *resp);
void api_scan_kv(broker *b, const http_request *req, http_response *resp);
void api_query_kv(broker *b, const http_request *req, http_response *resp);

#endif
