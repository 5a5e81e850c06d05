/*
 * api_trans.c — HTTP routes that change transactions: prepare, submit, abort,
 * registerBranch (and its aliases), prepareWorkflow, forceStop. Each parses
 * DTM's body (trans_json.h) and runs the command (engine/commands.h); a
 * submit or abort with wait_result answers when the engine's pass ends,
 * through a deferred HTTP answer.
 */
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"

/* A request waiting for its transaction's pass (wait_result). */
typedef struct waiting_request {
    http_deferred *deferred;
    const char *api;  /* route pattern, static */
    double started;
} waiting_request;

/* Engine waiter → deferred HTTP answer. */
static void answer_deferred(void *arg, int status, const char *body)
{
    waiting_request *w = arg;
    http_deferred_complete(w->deferred, status, strdup(body));
    api_count_request(w->api, status, api_seconds_now() - w->started);
    free(w);
}

static int parse_request(const http_request *req, http_response *resp, int require_type,
                         trans_request *out)
{
    char err[512];
    if (trans_request_parse(req->body, req->body_len, require_type, out, err, sizeof(err)) != 0) {
        api_reply_message(resp, 400, "%s", err);
        return -1;
    }
    return 0;
}

void api_prepare(broker *b, const http_request *req, http_response *resp)
{
    trans_request tr;
    if (parse_request(req, resp, 1, &tr) != 0)
        return;
    cmd_reply r = {0};
    cmd_prepare(b, &tr, &r);
    api_reply_cmd(resp, &r);
    trans_request_clear(&tr);
}

/* submit and abort: with wait_result the answer is deferred until the pass ends. */
static void run_waitable(broker *b, const http_request *req, http_response *resp, int require_type,
                         void (*cmd)(broker *, const trans_request *, engine_waiter_fn, void *,
                                     cmd_reply *))
{
    trans_request tr;
    if (parse_request(req, resp, require_type, &tr) != 0)
        return;
    waiting_request *w = NULL;
    if (tr.opts.wait_result && (w = calloc(1, sizeof(*w))) != NULL) {
        w->deferred = http_defer(req);
        w->api = cmd == cmd_submit ? "/api/dtmsvr/submit" : "/api/dtmsvr/abort";
        w->started = api_seconds_now();
    }
    cmd_reply r = {0};
    cmd(b, &tr, w ? answer_deferred : NULL, w, &r);
    if (w != NULL && !r.deferred) { /* answered at once after all */
        char *text = r.body ? json_dumps(r.body, JSON_COMPACT) : NULL;
        answer_deferred(w, r.status, text ? text : "{}");
        free(text);
    }
    api_reply_cmd(resp, &r);
    trans_request_clear(&tr);
}

void api_submit(broker *b, const http_request *req, http_response *resp)
{
    run_waitable(b, req, resp, 1, cmd_submit);
}

void api_abort(broker *b, const http_request *req, http_response *resp)
{
    run_waitable(b, req, resp, 0, cmd_abort);
}

void api_register_branch(broker *b, const http_request *req, http_response *resp)
{
    json_t *body = api_body_object(req, resp);
    if (body == NULL)
        return;
    cmd_reply r = {0};
    cmd_register_branch(b, body, &r);
    api_reply_cmd(resp, &r);
    json_decref(body);
}

void api_prepare_workflow(broker *b, const http_request *req, http_response *resp)
{
    trans_request tr;
    if (parse_request(req, resp, 1, &tr) != 0)
        return;
    cmd_reply r = {0};
    cmd_prepare_workflow(b, &tr, &r);
    api_reply_cmd(resp, &r);
    trans_request_clear(&tr);
}

void api_force_stop(broker *b, const http_request *req, http_response *resp)
{
    json_t *body = NULL;
    const char *gid = api_body_gid(req, resp, &body);
    if (gid != NULL) {
        cmd_reply r = {0};
        cmd_force_stop(b, gid, &r);
        api_reply_cmd(resp, &r);
    }
    json_decref(body);
}
