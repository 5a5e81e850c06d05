/*
 * trans_options.h — the per-transaction options a client may send (DTM's
 * TransOptions), as the engine and the planners read them. The JSON codec
 * (broker/trans_json.c) parses and stores them; this header needs no JSON
 * library, so the pure planners can include it without the codec.
 */
#ifndef DTMQ_TRANS_OPTIONS_H
#define DTMQ_TRANS_OPTIONS_H

#include <stdint.h>

struct json_t; /* jansson's; only the codec looks inside */

/* The per-transaction options a client may send (all optional). */
typedef struct trans_options {
    int wait_result;
    int64_t timeout_to_fail;  /* seconds, 0 = unset */
    int64_t request_timeout;  /* seconds, 0 = unset */
    int64_t retry_interval;   /* seconds, 0 = unset */
    int64_t retry_limit;      /* 0 = no limit */
    int concurrent;
    struct json_t *branch_headers; /* object of string values, or NULL; owned reference */
} trans_options;

#endif
