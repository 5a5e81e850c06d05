/*
 * api.h — the HTTP API: maps (method, path) to the handler that serves it.
 * docs/protocol.md lists every route with an example.
 */
#ifndef DTMQ_API_H
#define DTMQ_API_H

#include "http_server.h"

/* An http_handler; ctx is the broker (broker.h). */
void api_handle(void *ctx, const http_request *req, http_response *resp);

#endif
