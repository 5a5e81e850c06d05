/*
 * engine_internal.h — the engine's private structures, shared by engine.c
 * (threads, queues, the cron), pass.c (the table of active transactions and
 * one pass of one transaction: plan, call, record, schedule), replies.c
 * (waits for Kafka branches' replies and their timer thread), attempts.c
 * (the record of call attempts in ext_data) and retention.c (deleting
 * expired finished transactions).
 *
 * Ownership: an active record and everything in it belong to the worker
 * thread its gid hashes to; only that thread reads or writes it. Events are
 * handed between threads through the worker's queue (mutex + condvar) and
 * belong to the worker once queued.
 */
#ifndef DTMQ_ENGINE_INTERNAL_H
#define DTMQ_ENGINE_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#include "daemon/dispatch/http_dispatch.h"
#include "kafka_link.h"
#include "engine.h"
#include "plan.h"

#define ENGINE_BUCKETS 1024
#define REPLY_BUCKETS 1024

typedef struct waiter {
    engine_waiter_fn fn;
    void *arg;
    struct waiter *next;
} waiter;

/* A transaction this process is running a pass of. */
typedef struct active {
    char *gid;
    trans_global *t;          /* latest state, as the store has it */
    trans_options opts;
    planner_fn planner;
    unsigned char *in_flight; /* per branch index */
    unsigned char *tried;     /* per branch index, this pass */
    size_t flags_cap;
    int special_in_flight;
    int special_tried;
    int had_error;            /* some call ended in an unknown result this pass */
    int had_ongoing;
    char last_error[512];
    long failed_branch;       /* the saga action that answered FAILURE this pass, -1 = none */
    char failure_text[256];   /* what it said (a worker reply's message), "" = nothing */
    int rerun;                /* a kick arrived during the pass: run another */
    int lost;                 /* the store lost a change of this pass (pass_sync) */
    int awaiting_durable;     /* the pass waits for EV_DURABLE before it calls out */
    json_t *attempts;         /* calls made this pass, for ext_data.attempts (attempts.c) */
    int64_t lease_until;
    waiter *waiters;
    struct active *next;      /* hash chain */
} active;

typedef enum { EV_KICK, EV_RESULT, EV_DURABLE, EV_STOP } event_kind;

typedef struct event {
    event_kind kind;
    char *gid;
    int64_t lease_until;      /* EV_KICK */
    waiter *waiter;           /* EV_KICK, may be NULL */
    long branch;              /* EV_RESULT: branch index, -1 for the special call */
    dispatch_outcome outcome; /* EV_RESULT */
    int durable;              /* EV_DURABLE: 1 committed, 0 lost */
    int http_status;
    char *text;               /* EV_RESULT: what the call said (status + body or error) */
    char *message;            /* EV_RESULT: the branch's own reason (a worker reply's
                                 message, at most 200 bytes), NULL = none */
    int64_t started_ms;       /* EV_RESULT: when the call went out (0 = unknown) */
    int64_t finished_ms;      /* EV_RESULT: when its result came */
    struct event *next;
} event;

typedef struct worker {
    engine *e;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    event *head, *tail;       /* guarded by mu */
    int queued;               /* events in the queue, guarded by mu */
    active *table[ENGINE_BUCKETS];
} worker;

struct engine {
    broker *b;
    worker *workers;
    int worker_count;
    http_dispatch *http;
    pthread_t cron;
    pthread_mutex_t cron_mu;
    pthread_cond_t cron_cv;
    int cron_started;
    int stopping;             /* set once by engine_stop; read without lock is fine (monotonic) */
    char owner[96];
    dtmq_kafka_producer *kafka;    /* NULL when Kafka is off */
    const kafka_topics *topics;
    pthread_mutex_t replies_mu;
    void *replies[REPLY_BUCKETS]; /* reply_wait chains (replies.c), guarded by replies_mu */
    pthread_t replies_timer;
    int replies_timer_started;
    atomic_int durable_pending; /* store_when_durable callbacks not yet run (pass.c) */
    atomic_int active_count;    /* transactions with a pass running or queued (pass.c) */
    int64_t next_retention_ms;  /* cron thread only (retention.c) */
};

/* engine.c */
void engine_post(engine *e, event *ev);
unsigned engine_hash(const char *gid);

/* attempts.c: the bounded record of call attempts kept in ext_data */
void attempts_record(active *a, const event *ev);
/* ext_data with this pass's attempts merged in (the last ATTEMPTS_KEPT),
 * retry_count increased when count_retry, last_error set (or removed when
 * NULL); *retry_count gets the new count. malloc'd text. */
char *attempts_ext_data(const active *a, int count_retry, const char *last_error,
                        int64_t *retry_count);

/* replies.c */
/* Registers a wait for a Kafka branch's reply; 0 or -1. */
int replies_expect(engine *e, const char *gid, const char *branch_id, const char *op, long branch,
                   int64_t started_ms, int64_t deadline_ms);
void replies_cancel(engine *e, const char *gid, const char *branch_id, const char *op);
void *replies_timer_main(void *arg);
void replies_free_all(engine *e);

/* retention.c: on the cron thread, deletes expired finished transactions */
void retention_tick(engine *e);

/* pass.c */
/* Starts (or marks for re-run) a pass on the worker that owns ev->gid. */
void pass_on_kick(worker *w, event *ev);
void pass_on_result(worker *w, event *ev);
/* The writes a pass waited for are durable (or lost): it goes on (or gives up). */
void pass_on_durable(worker *w, event *ev);
/* Releases an active transaction at shutdown: lease given back, waiters answered. */
void pass_release(worker *w, active *a);
void active_free(active *a);
active *active_find(worker *w, const char *gid);

#endif
