/*
 * dtmq.h — what libdtmq's public headers share: the result a branch answers
 * (dtmq_result) and the HTTP status and body DTM expects for it, the error
 * codes of the client calls (dtmq_error), a branch call's identity
 * (dtmq_branch_info, dtmq_branch_ref) and the one parser that reads it from
 * the query string of one of DTM's HTTP branch calls. dtmq_client.h,
 * dtmq_worker.h and dtmq_barrier.h include it; a service may include it
 * alone. Needs no library but libdtmq itself (pkg-config dtmq).
 *
 * Ownership: nothing here allocates or keeps a pointer to what it is given;
 * every output goes into the caller's buffer or struct. The returned strings
 * (dtmq_error_name, dtmq_result_name, dtmq_result_body) are static. Every
 * function is thread-safe and reports failure through its return value and
 * an err buffer (err may be NULL when errlen is 0); nothing aborts or prints.
 */
#ifndef DTMQ_H
#define DTMQ_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- results --------------------------------------------------------------- */

/* What a branch answers: a worker's handler returns it (dtmq_worker.h), an
 * HTTP branch handler answers its status and body. */
typedef enum { DTMQ_SUCCESS = 0, DTMQ_FAILURE, DTMQ_ONGOING } dtmq_result;

/* The HTTP status DTM expects for a result: SUCCESS 200, FAILURE 409,
 * ONGOING 425; anything else 500 (an error: DTM retries). The one mapping of
 * libdtmq: dtmq_result_status and dtmq_barrier_http_status go through it. */
int dtmq_result_http_status(dtmq_result r);
/* The same as dtmq_result_http_status (the name dtmq_client.h had). */
int dtmq_result_status(dtmq_result r);
/* The matching body: {"dtm_result":"SUCCESS"} / "FAILURE" / "ONGOING";
 * else {"message":"error"}. Static storage. */
const char *dtmq_result_body(dtmq_result r);
/* "SUCCESS", "FAILURE", "ONGOING" (the dtm_result of a reply); NULL for any
 * other value. Static storage. */
const char *dtmq_result_name(dtmq_result r);

/* ---- errors ---------------------------------------------------------------- */

typedef enum dtmq_error {
    DTMQ_OK = 0,
    DTMQ_ERR_INVALID = 1,     /* a bad argument or option, found before anything was sent */
    DTMQ_ERR_UNREACHABLE = 2, /* no answer: connection refused, timeout, no Kafka
                                 acknowledgement. The outcome is UNKNOWN. */
    DTMQ_ERR_FAILURE = 3,     /* 409, or a body with FAILURE: refused for good */
    DTMQ_ERR_ONGOING = 4,     /* 425, or a body with ONGOING: not finished yet */
    DTMQ_ERR_SERVER = 5,      /* any other non-200 answer (400 bad input, 500, ...) */
    DTMQ_ERR_NOMEM = 6        /* out of memory */
} dtmq_error;

/* "DTMQ_OK", "DTMQ_ERR_INVALID", ...; "unknown" for other values. */
const char *dtmq_error_name(int code);

/* ---- a branch call's identity ------------------------------------------------- */

/* Field sizes: the columns of the barrier table dtm_barrier.barrier (without
 * the NUL). dtmq_barrier.h's DTMQ_BARRIER_*_MAX are the same numbers. */
#define DTMQ_GID_MAX 128
#define DTMQ_BRANCH_ID_MAX 128
#define DTMQ_NAME_MAX 45 /* trans_type, op (and the barrier's barrier_id, reason) */

/* The 2-phase message's own branch (DTM's MsgDoBranch0, MsgDoOp): the
 * barrier row its local transaction writes and query_prepared looks up. */
#define DTMQ_MSG_BRANCH_ID "00"
#define DTMQ_MSG_OP "msg"

/* gid, trans_type, branch_id, op: what the barrier keys a call by. */
typedef struct dtmq_branch_info {
    char gid[DTMQ_GID_MAX + 1];
    char trans_type[DTMQ_NAME_MAX + 1]; /* saga, tcc, xa, msg, workflow */
    char branch_id[DTMQ_BRANCH_ID_MAX + 1];
    char op[DTMQ_NAME_MAX + 1]; /* action, compensate, try, confirm, cancel, msg, ... */
} dtmq_branch_info;

/* The same four fields (same sizes: a ref always fits a dtmq_branch_info,
 * dtmq_branch_info_from_fields(r.gid, r.trans_type, r.branch_id, r.op, ...))
 * plus what a TCC/XA branch call carries besides. */
typedef struct dtmq_branch_ref {
    char gid[DTMQ_GID_MAX + 1];
    char trans_type[DTMQ_NAME_MAX + 1];
    char branch_id[DTMQ_BRANCH_ID_MAX + 1];
    char op[DTMQ_NAME_MAX + 1];
    char dtm[512];         /* the server URL a tcc/xa try call carries; "" when absent */
    char phase2_url[1024]; /* an xa action call's own URL; "" when absent */
} dtmq_branch_ref;

/*
 * The branch-query parser. A query is "a=1&b=2", "?a=1", or a path with a
 * query ("/api/TransIn?gid=..&.."); a '#' fragment is ignored. Names and
 * values are URL-decoded ('+' and %XX; %00 is a bad escape). The first
 * occurrence of a name wins; other names are ignored. gid, trans_type,
 * branch_id and op are required (present and non-empty); every value must
 * fit its buffer (NUL included). The error names the first field that is
 * missing, too long or badly escaped ("query: op is missing"). The three
 * entry points below differ only in where the values go and in the return
 * convention of the header they came from.
 */

/* Into *out (the client's convention): 0 (DTMQ_OK), or DTMQ_ERR_INVALID
 * with err and *out zeroed. Also reads dtm and phase2_url (optional: "" when
 * absent). */
int dtmq_branch_from_query(const char *query, dtmq_branch_ref *out, char *err, size_t errlen);

/* Into *out (the barrier's convention): 0, or -1 with err and *out zeroed. */
int dtmq_branch_info_from_query(const char *query, dtmq_branch_info *out, char *err,
                                size_t errlen);

/* Into the caller's four buffers (gid_len etc. bytes each, NUL included):
 * 0, or -1 with err (the buffers' contents are then unspecified). */
int dtmq_parse_branch_query(const char *query, char *gid, size_t gid_len, char *trans_type,
                            size_t tt_len, char *branch_id, size_t bid_len, char *op,
                            size_t op_len, char *err, size_t errlen);

/* The first value of name in an HTTP query string (as above), URL-decoded,
 * into out (len bytes). 0 found, 1 absent (out ""), -1 bad %-escape or too
 * long (err says which). */
int dtmq_query_value(const char *query, const char *name, char *out, size_t len, char *err,
                     size_t errlen);

/* From fields read elsewhere, e.g. the dtm-* headers of a Kafka branch
 * message (dtmq_branch_msg). Every field must be non-empty and fit. 0, or -1
 * with err. */
int dtmq_branch_info_from_fields(const char *gid, const char *trans_type, const char *branch_id,
                                 const char *op, dtmq_branch_info *out, char *err, size_t errlen);

/* The special branch of a 2-phase message's local transaction: trans_type
 * "msg", branch_id DTMQ_MSG_BRANCH_ID, op DTMQ_MSG_OP (with the barrier: use
 * barrier_id DTMQ_BARRIER_FIRST_ID). query_prepared looks for exactly this
 * row. 0, or -1 with err. */
int dtmq_branch_info_for_msg(const char *gid, dtmq_branch_info *out, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
