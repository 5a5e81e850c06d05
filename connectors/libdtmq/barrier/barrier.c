/*
 * barrier.c — the parts of the subtransaction barrier (dtmq_barrier.h) that
 * do not touch a database: reading a branch's identity from a query string or
 * from fields, the outcome names and HTTP statuses, argument checks, and
 * DTM's decision after the two barrier inserts (dtmq_barrier_decide), which
 * barrier_pg.c and barrier_mongo.c both use so they cannot drift apart.
 */
#include "barrier_internal.h"

#include <dtmq/dtmq_worker.h>

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

/* Copies value into buf (len bytes) when it is non-empty and fits. 0, or -1 + err. */
static int copy_field(const char *name, const char *value, char *buf, size_t len, char *err,
                      size_t errlen)
{
    if (value == NULL || value[0] == '\0') {
        dtmq_barrier_set_err(err, errlen, "barrier: %s is missing", name);
        return -1;
    }
    size_t n = strlen(value);
    if (n >= len) {
        dtmq_barrier_set_err(err, errlen, "barrier: %s is %zu bytes, at most %zu allowed", name, n,
                        len - 1);
        return -1;
    }
    memcpy(buf, value, n + 1);
    return 0;
}

int dtmq_branch_info_from_fields(const char *gid, const char *trans_type, const char *branch_id,
                                 const char *op, dtmq_branch_info *out, char *err, size_t errlen)
{
    if (out == NULL) {
        dtmq_barrier_set_err(err, errlen, "barrier: no dtmq_branch_info to fill");
        return -1;
    }
    memset(out, 0, sizeof(*out));
    if (copy_field("gid", gid, out->gid, sizeof(out->gid), err, errlen) != 0 ||
        copy_field("trans_type", trans_type, out->trans_type, sizeof(out->trans_type), err,
                   errlen) != 0 ||
        copy_field("branch_id", branch_id, out->branch_id, sizeof(out->branch_id), err,
                   errlen) != 0 ||
        copy_field("op", op, out->op, sizeof(out->op), err, errlen) != 0)
        return -1;
    return 0;
}

int dtmq_branch_info_from_query(const char *query, dtmq_branch_info *out, char *err,
                                size_t errlen)
{
    if (out == NULL) {
        dtmq_barrier_set_err(err, errlen, "barrier: no dtmq_branch_info to fill");
        return -1;
    }
    memset(out, 0, sizeof(*out));
    char why[200] = "";
    if (dtmq_parse_branch_query(query, out->gid, sizeof(out->gid), out->trans_type,
                                sizeof(out->trans_type), out->branch_id, sizeof(out->branch_id),
                                out->op, sizeof(out->op), why, sizeof(why)) != 0) {
        dtmq_barrier_set_err(err, errlen, "barrier: %s", why);
        return -1;
    }
    return 0;
}

int dtmq_branch_info_for_msg(const char *gid, dtmq_branch_info *out, char *err, size_t errlen)
{
    return dtmq_branch_info_from_fields(gid, "msg", BARRIER_MSG_BRANCH_ID, BARRIER_MSG_OP, out,
                                        err, errlen);
}

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

int dtmq_barrier_http_status(dtmq_barrier_outcome o)
{
    switch (o) {
    case DTMQ_BARRIER_DONE:
    case DTMQ_BARRIER_SKIPPED_DUPLICATE:
    case DTMQ_BARRIER_SKIPPED_NULL_COMPENSATION:
    case DTMQ_BARRIER_SKIPPED_HANGING:
    case DTMQ_BARRIER_MSG_DUPLICATE:
        return 200;
    case DTMQ_BARRIER_BUSINESS_ERROR:
        return 409;
    case DTMQ_BARRIER_DB_ERROR:
        return 500;
    }
    return 500;
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
