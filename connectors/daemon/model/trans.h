/*
 * trans.h — the transaction data model shared by the broker and every store.
 *
 * A global transaction (trans_global) carries DTM's fields and owns an array of
 * branch rows (trans_branch). Times are milliseconds since the Unix epoch, 0 when
 * unset. Every string field is heap-allocated and owned by its struct; NULL means
 * "absent". trans_free() frees a global with all its branches.
 *
 * Statuses and ops are DTM's strings (see docs/protocol.md); the store does not
 * interpret them beyond comparing the global status in compare-and-set updates.
 */
#ifndef DTMQ_TRANS_H
#define DTMQ_TRANS_H

#include <stddef.h>
#include <stdint.h>

/* Global statuses. */
#define TRANS_PREPARED "prepared"
#define TRANS_SUBMITTED "submitted"
#define TRANS_ABORTING "aborting"
#define TRANS_SUCCEED "succeed"
#define TRANS_FAILED "failed"

/* The transaction modes, DTM's trans_type. Stored and sent as their names
 * ("saga", "tcc", "xa", "msg", "workflow"); the enum is for comparing. */
typedef enum trans_mode {
    TRANS_MODE_NONE = 0, /* absent, or not one of DTM's modes */
    TRANS_MODE_SAGA,
    TRANS_MODE_TCC,
    TRANS_MODE_XA,
    TRANS_MODE_MSG,
    TRANS_MODE_WORKFLOW,
} trans_mode;

/* The mode a trans_type names (exact, case-sensitive, as DTM compares);
 * TRANS_MODE_NONE for NULL or any other text. */
trans_mode trans_mode_of(const char *name);
/* The trans_type text of a mode ("saga", ...); NULL for TRANS_MODE_NONE. */
const char *trans_mode_name(trans_mode mode);

/* One branch row: a (branch_id, op) pair is unique inside its global. */
typedef struct trans_branch {
    char *branch_id;   /* "01", "02", "01-02" (topic fan-out), "00" (query-back) */
    char *op;          /* action, compensate, try, confirm, cancel, commit, rollback, msg */
    char *url;         /* http(s)://..., kafka://TOPIC, or "" for a no-op branch */
    unsigned char *data; /* request body bytes (may contain NUL), NULL when empty */
    size_t data_len;
    char *status;      /* prepared, succeed, failed */
    int64_t create_time;
    int64_t update_time;
    int64_t finish_time;
    int64_t rollback_time;
} trans_branch;

/* One global transaction with its branches, in insertion order. */
typedef struct trans_global {
    char *gid;
    char *trans_type;      /* saga, tcc, xa, msg, workflow */
    char *status;
    char *query_prepared;  /* msg: query-back URL; workflow: resume URL */
    char *protocol;        /* "http" */
    char *custom_data;     /* JSON text, mode-specific (orders, delay, ...) */
    char *options;         /* JSON text of the transaction options */
    char *steps;           /* JSON text of the submitted steps array */
    char *payloads;        /* JSON text of the submitted payloads array */
    char *ext_data;        /* JSON text, free for the engine's use */
    char *result;
    char *rollback_reason;
    char *owner;           /* lease holder set by store_claim_due */
    int64_t create_time;
    int64_t update_time;
    int64_t finish_time;
    int64_t rollback_time;
    int64_t next_cron_time;
    int64_t next_cron_interval; /* seconds */
    trans_branch *branches;
    size_t branch_count;
    size_t branch_cap;
} trans_global;

/* Allocates an empty global; returns NULL on out-of-memory. */
trans_global *trans_new(void);
/* Frees a global, its strings and its branches. NULL is allowed. */
void trans_free(trans_global *t);
/* Deep copy; returns NULL on out-of-memory. */
trans_global *trans_clone(const trans_global *t);

/* Replaces *field with a copy of value (NULL clears it). Returns 0, or -1 on
 * out-of-memory (the field is then unchanged). */
int trans_set_str(char **field, const char *value);

/* Appends a deep copy of b to t's branches. Returns 0, or -1 on out-of-memory. */
int trans_add_branch(trans_global *t, const trans_branch *b);
/* Frees the strings and data of one branch (not the branch itself). */
void trans_branch_clear(trans_branch *b);
/* Deep-copies src into dst (dst's previous content is not freed). 0 or -1. */
int trans_branch_copy(trans_branch *dst, const trans_branch *src);

/* Returns the branch with this (branch_id, op), or NULL. */
trans_branch *trans_find_branch(const trans_global *t, const char *branch_id, const char *op);

/* The mode of t's trans_type (TRANS_MODE_NONE when it has none). */
trans_mode trans_global_mode(const trans_global *t);

/* True for succeed and failed: no further work will ever happen. */
int trans_status_is_final(const char *status);

/* Wall-clock time in milliseconds since the epoch. */
int64_t dtmq_now_ms(void);

#endif
