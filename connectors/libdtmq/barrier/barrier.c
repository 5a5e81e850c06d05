/*
 * barrier.c — the parts of the subtransaction barrier (dtmq_barrier.h) that
 * do not touch a database: the outcome names and HTTP statuses (through
 * dtmq.h's one mapping), argument checks, and
 * DTM's decision after the two barrier inserts (dtmq_barrier_decide), which
 * barrier_pg.c and barrier_mongo.c both use so they cannot drift apart.
 */
#include "barrier_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void dtmq_barrier_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* dtmq_branch_info_from_query, _from_fields and _for_msg are in
 * connectors/libdtmq/dtmq.c, with the rest of dtmq.h. */

const char *dtmq_barrier_outcome_name(dtmq_barrier_outcome o)
{
    switch (o) {
    case DTMQ_BARRIER_DONE:
        return "DONE";
    case DTMQ_BARRIER_SKIPPED_DUPLICATE:
        return "SKIPPED_DUPLICATE";
    case DTMQ_BARRIER_SKIPPED_NULL_COMPENSATION:
        return "SKIPPED_NULL_COMPENSATION";
    case DTMQ_BARRIER_SKIPPED_HANGING:
        return "SKIPPED_HANGING";
    case DTMQ_BARRIER_BUSINESS_ERROR:
        return "BUSINESS_ERROR";
    case DTMQ_BARRIER_DB_ERROR:
        return "DB_ERROR";
    case DTMQ_BARRIER_MSG_DUPLICATE:
        return "MSG_DUPLICATE";
    }
    return "?";
}

/* The outcome as what the branch answers: done or skipped is a SUCCESS, the
 * business's refusal a FAILURE, anything else an error (no dtmq_result:
 * dtmq_result_http_status answers it 500, DTM calls again). */
static dtmq_result outcome_result(dtmq_barrier_outcome o)
{
    switch (o) {
    case DTMQ_BARRIER_DONE:
    case DTMQ_BARRIER_SKIPPED_DUPLICATE:
    case DTMQ_BARRIER_SKIPPED_NULL_COMPENSATION:
    case DTMQ_BARRIER_SKIPPED_HANGING:
    case DTMQ_BARRIER_MSG_DUPLICATE:
        return DTMQ_SUCCESS;
    case DTMQ_BARRIER_BUSINESS_ERROR:
        return DTMQ_FAILURE;
    case DTMQ_BARRIER_DB_ERROR:
        break;
    }
    return (dtmq_result)-1;
}

int dtmq_barrier_http_status(dtmq_barrier_outcome o)
{
    return dtmq_result_http_status(outcome_result(o));
}

const char *dtmq_barrier_origin_op(const char *op)
{
    if (strcmp(op, "cancel") == 0)
        return "try";
    if (strcmp(op, "compensate") == 0 || strcmp(op, "rollback") == 0)
        return "action";
    return NULL;
}

/* A field of b is usable: non-empty and NUL-terminated inside its buffer. */
static int check_field(const char *name, const char *value, size_t len, char *err, size_t errlen)
{
    if (value[0] == '\0') {
        dtmq_barrier_set_err(err, errlen, "barrier: %s is empty", name);
        return -1;
    }
    if (memchr(value, '\0', len) == NULL) {
        dtmq_barrier_set_err(err, errlen, "barrier: %s is not NUL-terminated", name);
        return -1;
    }
    return 0;
}

int dtmq_barrier_check_call(const dtmq_branch_info *b, const char *barrier_id, bool has_fn, char *err,
                       size_t errlen)
{
    if (b == NULL) {
        dtmq_barrier_set_err(err, errlen, "barrier: no branch info");
        return -1;
    }
    if (check_field("gid", b->gid, sizeof(b->gid), err, errlen) != 0 ||
        check_field("trans_type", b->trans_type, sizeof(b->trans_type), err, errlen) != 0 ||
        check_field("branch_id", b->branch_id, sizeof(b->branch_id), err, errlen) != 0 ||
        check_field("op", b->op, sizeof(b->op), err, errlen) != 0)
        return -1;
    if (barrier_id[0] == '\0' || strlen(barrier_id) > DTMQ_BARRIER_NAME_MAX) {
        dtmq_barrier_set_err(err, errlen, "barrier: barrier_id must be 1 to %d bytes",
                        DTMQ_BARRIER_NAME_MAX);
        return -1;
    }
    if (!has_fn) {
        dtmq_barrier_set_err(err, errlen, "barrier: no business function");
        return -1;
    }
    return 0;
}

int dtmq_barrier_check_gid(const char *gid, char *err, size_t errlen)
{
    if (gid == NULL || gid[0] == '\0') {
        dtmq_barrier_set_err(err, errlen, "barrier: gid is missing");
        return -1;
    }
    if (strlen(gid) > DTMQ_BARRIER_GID_MAX) {
        dtmq_barrier_set_err(err, errlen, "barrier: gid is longer than %d bytes", DTMQ_BARRIER_GID_MAX);
        return -1;
    }
    return 0;
}

barrier_decision dtmq_barrier_decide(const char *op, bool origin_inserted, bool current_inserted)
{
    if (strcmp(op, BARRIER_MSG_OP) == 0 && !current_inserted)
        return BARRIER_MSG_DUP;
    if (dtmq_barrier_origin_op(op) != NULL && origin_inserted)
        return BARRIER_SKIP_NULL_COMP;
    if (!current_inserted)
        return BARRIER_SKIP_EXISTING;
    return BARRIER_RUN_FN;
}

dtmq_barrier_outcome dtmq_barrier_existing_outcome(const char *op, const char *reason)
{
    return strcmp(op, reason) == 0 ? DTMQ_BARRIER_SKIPPED_DUPLICATE : DTMQ_BARRIER_SKIPPED_HANGING;
}
