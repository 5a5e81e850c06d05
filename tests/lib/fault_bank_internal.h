/*
 * fault_bank_internal.h — what the three parts of the fault-test bank share,
 * and nothing else includes: the plan of every transaction, the history's
 * events, the checks' verdicts, the bank's struct, and the internal functions
 * (prefix fbi_) one part defines for another. fault_bank.c has the plan, the
 * history, talking to dtmq, the submitters, the poller and the workload;
 * fault_bank_service.c the bank service and the Kafka worker;
 * fault_bank_checks.c the checks. The API and the rules are in fault_bank.h.
 */
#ifndef DTMQ_TESTS_FAULT_BANK_INTERNAL_H
#define DTMQ_TESTS_FAULT_BANK_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "libdtmq/common/kafka_producer.h"
#include <dtmq/dtmq_worker.h>
#include "fault_bank.h"

enum { MAX_NOTES = 8, ST_LEN = 16 };

/* ---- the plan of every transaction -------------------------------------- */

enum { KIND_SAGA, KIND_MSG };
enum { BR_OUT, BR_IN }; /* branch 01, 02 */
enum { OP_ACTION, OP_COMP };
enum { BAR_NONE, BAR_DONE, BAR_BY_COMP }; /* barrier row: absent, by its op, by a null compensation */

typedef struct plan {
    char gid[64];
    int kind;
    int from, to, amount;
    int in_fails;     /* saga: TransIn answers 409 (business failure) */
    int msg_commit;   /* msg: QueryPrepared answers 200 (else 409) */
    int msg_submit;   /* msg: the client submits after prepare (only when committed) */
    int via_kafka;    /* submitted over Kafka */
    int kafka_branch; /* saga: TransIn is a kafka:// branch */
    /* client side */
    int acked;        /* submit (saga) / prepare (msg) acknowledged */
    int submit_acked;
    char final_status[ST_LEN];
    /* service side, under svc_mu */
    int barrier[2][2];
    int effects[2][2];
    int calls[2][2];
} plan;

/* ---- history ------------------------------------------------------------ */

enum { EV_ACK, EV_CALL, EV_POLL, EV_RESTART };
enum { OUT_APPLIED, OUT_DUPLICATE, OUT_NULL_COMP, OUT_HANGING, OUT_BUSI_FAIL, OUT_ERR_BEFORE,
       OUT_ONGOING, OUT_ERR_AFTER, OUT_QUERY };

typedef struct event {
    long long seq, ms;
    int type, idx;
    int branch, op, outcome, status; /* EV_CALL (outcome -1: the arrival) */
    int is_deposit;
    int kafka;       /* EV_CALL: a Kafka transaction or branch; EV_RESTART: kafka_only */
    char st[ST_LEN]; /* EV_POLL: the status seen */
} event;

/* ---- checks' verdicts --------------------------------------------------- */

typedef struct verdict {
    const char *name;
    int count;
    char notes[MAX_NOTES][320];
} verdict;

enum { V_SUM, V_FINAL, V_SAGA_EFFECT, V_MSG_EFFECT, V_HANGING, V_BRANCHES, V_ONE_FINAL,
       V_ACTION_AFTER_COMP, V_DEPOSIT_AFTER_FAIL, V_COUNT };

struct fault_bank {
    fb_options o;
    char run_id[24];
    plan *plans;
    uint64_t rng;
    pthread_mutex_t rng_mu;
    /* the service */
    struct MHD_Daemon *daemon;
    int port;
    char url[64];
    pthread_mutex_t svc_mu; /* balances, plans' service side, counters, fault knobs */
    int err_pct, delay_pct, delay_ms;
    long long balance[FB_ACCOUNTS], sum0;
    long applied, duplicates, null_comp, hanging, busi_fail, injected, action_after_comp;
    long kafka_calls;
    /* history */
    pthread_mutex_t ev_mu;
    event *ev;
    size_t n_ev, cap_ev;
    long long seq;
    char (*seen)[ST_LEN]; /* the latest status the poller saw, per transaction, under ev_mu */
    /* dtmq */
    pthread_mutex_t d_mu;
    char dtmq[FB_MAX_DTMQ][64]; /* "" while down */
    /* Kafka */
    dtmq_kafka_producer *producer;
    char submit_topic[128];
    char worker_bootstrap[256], worker_group[128], worker_topic[128];
    pthread_t worker_thread;
    int worker_running;
    dtmq_worker *worker;
    pthread_mutex_t w_mu;
    volatile int stop_worker;
    /* the workload */
    pthread_t *subs, poller;
    int n_subs, poller_running;
    int next_tx;
    pthread_mutex_t next_mu;
    long long t0, workload_ms, final_wait_ms, poll_cost_ms;
    volatile int stop_poll;
    int marks;
    verdict v[V_COUNT];
};

/* ---- defined in fault_bank.c -------------------------------------------- */

/* Appends e to the history (its seq and ms are set here). Thread-safe. */
void fbi_ev_add(fault_bank *b, const event *e);
/* The index of the transaction with this gid, -1 when it is none of ours. */
int fbi_idx_of(const fault_bank *b, const char *gid);
/* "succeed" or "failed". */
int fbi_is_final(const char *s);
/* The transaction (status and branches) from /query; NULL when not reachable. */
json_t *fbi_query_gid(fault_bank *b, const char *gid, int *exists);
/* One pass of the poller over /all. */
void fbi_poll_once(fault_bank *b);
/* Stops the poller thread. Safe when not running. */
void fbi_poller_stop(fault_bank *b);

/* ---- defined in fault_bank_service.c ------------------------------------ */

/* Stops and frees the Kafka worker. Safe when not running. */
void fbi_worker_stop(fault_bank *b);

/* ---- defined in fault_bank_checks.c ------------------------------------- */

/* Names the verdicts of a new bank. */
void fbi_verdicts_init(fault_bank *b);

#endif
