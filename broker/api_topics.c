/*
 * api_topics.c — msg topics (subscribe, unsubscribe, DELETE topic/:name) and
 * the key/value routes they live in (scanKV, queryKV). A topic is the KV
 * entry (cat "topics", key NAME) whose value is [{"url":..,"remark":..}];
 * changes are compare-and-set on the entry's version, so concurrent
 * subscribers never overwrite each other.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "api_internal.h"
#include "libdtmq/common/rules.h"
#include "trans_json.h"

#define TOPICS_CAT "topics"
#define KV_CAS_ATTEMPTS 5

/* A parameter from the query string, else from a JSON body; "" if absent. */
static const char *param(const http_request *req, json_t *body, const char *name)
{
    const char *v = http_query(req, name);
    if (v == NULL && body)
        v = json_string_value(json_object_get(body, name));
    return v ? v : "";
}

static json_t *optional_body(const http_request *req)
{
    return req->body_len ? json_loadb(req->body, req->body_len, 0, NULL) : NULL;
}

/* Applies edit to a topic's subscriber list with version CAS. edit returns 0
 * (write the list; an empty list deletes the topic) or an HTTP status after
 * setting *msg. */
typedef int (*topic_edit)(json_t *subs, const char *url, const char *remark, const char **msg);

static int add_subscriber(json_t *subs, const char *url, const char *remark, const char **msg)
{
    size_t i;
    json_t *s;
    json_array_foreach(subs, i, s)
        if (strcmp(json_string_value(json_object_get(s, "url")), url) == 0) {
            *msg = "this url exists";
            return 409;
        }
    json_array_append_new(subs, json_pack("{s:s, s:s}", "url", url, "remark", remark));
    return 0;
}

static int remove_subscriber(json_t *subs, const char *url, const char *remark, const char **msg)
{
    size_t i;
    json_t *s;
    json_array_foreach(subs, i, s)
        if (strcmp(json_string_value(json_object_get(s, "url")), url) == 0) {
            json_array_remove(subs, i);
            return 0;
        }
    *msg = "no such an url";
    return 409;
}

/* A subscriber dtmq can call: http(s)://REST, or kafka://TOPIC with a name
 * Kafka accepts (msg's topic:// steps fan out to these unchecked). */
static int subscriber_url_ok(const char *url)
{
    dtmq_url_kind kind = dtmq_url_kind_of(url, 0);
    return kind == DTMQ_URL_HTTP ||
           (kind == DTMQ_URL_KAFKA && dtmq_topic_name_ok(dtmq_url_rest(url, 0)));
}

static void edit_topic(broker *b, const http_request *req, http_response *resp, topic_edit edit,
                       int create_if_missing)
{
    json_t *body = optional_body(req);
    const char *topic = param(req, body, "topic"), *url = param(req, body, "url");
    const char *remark = param(req, body, "remark"), *msg = NULL;
    dtmq_url_kind scheme = dtmq_url_scheme(url, 0);
    char why[300];
    if (topic[0] == '\0' || url[0] == '\0') {
        api_reply_message(resp, 400, "%s", topic[0] ? "url: missing" : "topic: missing (empty topic)");
    } else if (scheme != DTMQ_URL_HTTP && scheme != DTMQ_URL_KAFKA) {
        snprintf(why, sizeof(why), "url: '%.200s' is not an http(s):// or kafka:// URL", url);
        api_reply_message(resp, 400, "%s", why);
    } else if (create_if_missing && !subscriber_url_ok(url)) {
        /* unsubscribe takes any url of these schemes: one stored before this
         * check existed can still be removed */
        api_reply_message(resp, 400, "url: '%.200s' is not a URL dtmq can call", url);
    } else if (!access_url_allowed(b->cfg, url)) {
        api_reply_message(resp, 403, "url: '%.200s' is not in BranchAllowlist", url);
    } else {
        for (int attempt = 0; attempt < KV_CAS_ATTEMPTS; attempt++) {
            store_kv_list kv;
            store_result r = store_kv_get(b->store, TOPICS_CAT, topic, &kv);
            if (r == STORE_NOT_FOUND && !create_if_missing) {
                api_reply_message(resp, 409, "no such a topic");
                break;
            }
            json_t *subs = r == STORE_OK ? json_loads(kv.items[0].value, 0, NULL) : json_array();
            int64_t version = r == STORE_OK ? kv.items[0].version : 0;
            store_kv_list_clear(&kv);
            if (r != STORE_OK && r != STORE_NOT_FOUND) {
                json_decref(subs);
                api_reply_message(resp, 500, "store %s: %s", store_result_name(r), store_last_error());
                break;
            }
            int status = edit(json_is_array(subs) ? subs : NULL, url, remark, &msg);
            if (status != 0) {
                json_decref(subs);
                api_reply_message(resp, status, "%s", msg);
                break;
            }
            char *value = json_dumps(subs, JSON_COMPACT);
            size_t left = json_array_size(subs);
            json_decref(subs);
            if (version == 0)
                r = store_kv_create(b->store, TOPICS_CAT, topic, value);
            else if (left == 0)
                r = store_kv_delete(b->store, TOPICS_CAT, topic);
            else
                r = store_kv_update(b->store, TOPICS_CAT, topic, value, version);
            free(value);
            if (r == STORE_OK) {
                api_reply_json(resp, 200, json_pack("{s:s}", "dtm_result", "SUCCESS"));
                break;
            }
            if (r != STORE_CONFLICT && r != STORE_DUPLICATE) {
                api_reply_message(resp, 500, "store %s: %s", store_result_name(r), store_last_error());
                break;
            }
            if (attempt == KV_CAS_ATTEMPTS - 1)
                api_reply_message(resp, 409, "topic '%s' kept changing; try again", topic);
        }
    }
    json_decref(body);
}

void api_subscribe(broker *b, const http_request *req, http_response *resp)
{
    edit_topic(b, req, resp, add_subscriber, 1);
}

void api_unsubscribe(broker *b, const http_request *req, http_response *resp)
{
    edit_topic(b, req, resp, remove_subscriber, 0);
}

void api_delete_topic(broker *b, const http_request *req, http_response *resp)
{
    const char *name = req->path + strlen("/api/dtmsvr/topic/");
    store_result r = store_kv_delete(b->store, TOPICS_CAT, name);
    if (r == STORE_OK)
        api_reply_json(resp, 200, json_pack("{s:s}", "dtm_result", "SUCCESS"));
    else if (r == STORE_NOT_FOUND)
        api_reply_message(resp, 409, "no such a topic");
    else
        api_reply_message(resp, 500, "store %s: %s", store_result_name(r), store_last_error());
}

static json_t *kv_to_json(const store_kv *kv)
{
    char created[48], updated[48];
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "cat", kv->cat, "k", kv->key, "v", kv->value,
                     "create_time", trans_json_time(kv->create_time, created, sizeof(created)),
                     "update_time", trans_json_time(kv->update_time, updated, sizeof(updated)),
                     "version", (json_int_t)kv->version);
}

static void reply_kv_list(http_response *resp, store_kv_list *list, const char *next)
{
    json_t *items = json_array();
    for (size_t i = 0; i < list->count; i++)
        json_array_append_new(items, kv_to_json(&list->items[i]));
    json_t *body = json_pack("{s:o}", "kv", items);
    if (next)
        json_object_set_new(body, "next_position", json_string(next));
    api_reply_json(resp, 200, body);
    store_kv_list_clear(list);
}

void api_scan_kv(broker *b, const http_request *req, http_response *resp)
{
    const char *cat = http_query(req, "cat");
    long long limit = 100;
    if (cat == NULL || cat[0] == '\0') {
        api_reply_message(resp, 400, "cat: missing");
        return;
    }
    if (api_query_int(req, resp, "limit", 1, 1000, &limit) != 0)
        return;
    store_kv_list list;
    char *next = NULL;
    store_result r = store_kv_scan(b->store, cat, http_query(req, "position"), (int)limit, &list, &next);
    if (r == STORE_OK)
        reply_kv_list(resp, &list, next ? next : "");
    else
        api_reply_message(resp, r == STORE_INVALID ? 400 : 500, "scanKV: %s", store_last_error());
    free(next);
}

void api_query_kv(broker *b, const http_request *req, http_response *resp)
{
    const char *cat = http_query(req, "cat"), *key = http_query(req, "key");
    if (cat == NULL || !cat[0] || key == NULL || !key[0]) {
        api_reply_message(resp, 400, "cat and key are required");
        return;
    }
    store_kv_list list;
    store_result r = store_kv_get(b->store, cat, key, &list);
    if (r == STORE_OK || r == STORE_NOT_FOUND)
        reply_kv_list(resp, &list, NULL);
    else
        api_reply_message(resp, 500, "queryKV: %s", store_last_error());
}
