/*
 * commands.h — what clients ask of the broker, independent of how the request
 * arrived (HTTP, or Kafka's dtm.submit through kafka_ingress.c): prepare, submit, abort,
 * registerBranch, prepareWorkflow, forceStop. Each checks its input, makes
 * the change durable in the store, then hands the transaction to the engine,
 * and fills a reply with DTM's status mapping: 200 SUCCESS, 400 bad input,
 * 409 FAILURE (the transaction's state does not allow it), 425 ONGOING,
 * 500 the store failed.
 */
#ifndef DTMQ_COMMANDS_H
#define DTMQ_COMMANDS_H

#include <jansson.h>

#include "trans_json.h"
#include "engine.h"

typedef struct cmd_reply {
    int status;   /* HTTP status */
    json_t *body; /* owned; NULL when deferred */
    int deferred; /* the answer comes through the waiter given to the command */
} cmd_reply;

void cmd_reply_clear(cmd_reply *r);

void cmd_prepare(broker *b, const trans_request *req, cmd_reply *out);
/* With req->opts.wait_result, the answer may be deferred to waiter(arg, ...). */
void cmd_submit(broker *b, const trans_request *req, engine_waiter_fn waiter, void *arg,
                cmd_reply *out);
void cmd_abort(broker *b, const trans_request *req, engine_waiter_fn waiter, void *arg,
               cmd_reply *out);
/* body: DTM's flat map {gid, trans_type, branch_id, data, confirm/cancel | url | op/status}. */
void cmd_register_branch(broker *b, json_t *body, cmd_reply *out);
void cmd_prepare_workflow(broker *b, const trans_request *req, cmd_reply *out);
void cmd_force_stop(broker *b, const char *gid, cmd_reply *out);

#endif
