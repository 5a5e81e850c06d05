/*
 * trans_json.h — DTM's JSON shapes for transactions, both ways.
 *
 * In:  the TransGlobal body of prepare/submit/abort/prepareWorkflow (and the
 *      flat map of registerBranch), parsed and checked into a trans_request.
 * Out: the Global and Branch objects of /query and /all, times in Go's
 *      RFC3339Nano form, and the options text stored with a transaction.
 * Field names and tolerances follow section 1.1 of DTM's protocol reference:
 * unknown keys are ignored, options are flattened into the top level.
 */
#ifndef DTMQ_TRANS_JSON_H
#define DTMQ_TRANS_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "libdtmq/common/base64.h"
#include "daemon/model/trans.h"
#include "daemon/model/trans_options.h"

typedef struct trans_request {
    char *gid;
    char *trans_type;
    char *query_prepared;
    char *protocol;
    char *custom_data;
    char *rollback_reason;
    json_t *steps;     /* array of objects with string values, or NULL; owned */
    json_t *payloads;  /* array of strings (steps[i].data folded in), or NULL; owned */
    json_t *req_extra; /* workflow submit: {status, rollback_reason, result}, or NULL; owned */
    json_t *body;      /* the whole parsed body; owned */
    trans_options opts;
} trans_request;

/*
 * Parses a TransGlobal body. Checks: valid JSON object; gid present, a string,
 * non-empty after DTM's stripping of '\n', '\r' and ';', at most 128 bytes;
 * trans_type (when require_type) one of saga, tcc, xa, msg, workflow; steps an
 * array of objects with string values; payloads an array of strings of the same
 * length as steps (when both are given); numeric options non-negative integers.
 * Returns 0, or -1 with one line in err naming the problem (the request is then
 * cleared).
 */
int trans_request_parse(const char *body, size_t len, int require_type, trans_request *out,
                        char *err, size_t errlen);
void trans_request_clear(trans_request *r);

/* Options as stored in trans_global.options, e.g. {"concurrent":false,...}. malloc'd. */
char *trans_options_to_text(const trans_options *o);
/* Parses stored options text (NULL or "" gives all-unset options). 0 or -1. */
int trans_options_from_text(const char *text, trans_options *out);
void trans_options_clear(trans_options *o);

/* DTM's Global object (query/all); new reference. */
json_t *trans_global_to_json(const trans_global *t);
/* DTM's Branch object; new reference. */
json_t *trans_branch_to_json(const trans_branch *b, const char *gid);
/* Go's RFC3339Nano in UTC ("2026-11-21T23:40:00.123Z"); "0001-01-01T00:00:00Z"
 * for 0 (Go's zero time). Writes into buf (>= 40 bytes). */
const char *trans_json_time(int64_t ms, char *buf, size_t len);


#endif
