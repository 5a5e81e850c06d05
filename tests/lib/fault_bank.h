/*
 * fault_bank.h — the invariant workload of dtmq's fault tests (see
 * tests/fault/README.md): an in-memory bank service with DTM barrier
 * semantics, a workload of sagas and 2-phase msgs that move money between its
 * accounts, a poller that records every status a client can see, and the
 * checks run at the end (invariants + history) that count violations.
 *
 * A fault test does:
 *
 *     fb_options o = fb_options_from_env("fr", 60);   // DTMQ_FAULT_* knobs
 *     fault_bank *b = fb_new(&o);
 *     ck_assert_int_eq(fb_service_start(b, 0), 0);    // the bank, 127.0.0.1
 *     ... start dtmq ...
 *     fb_set_dtmq(b, 0, proc.base_url);               // where to submit/poll
 *     fb_workload_start(b);                           // submitters + poller
 *     ... inject the fault: fb_set_dtmq(b, 0, NULL) while dtmq is down,
 *         fb_service_stop/start for the bank, fb_set_faults(...), and
 *         fb_mark_back(b, ...) when the broken thing is back ...
 *     fb_workload_join(b);                            // every submission done
 *     fb_wait_final(b, o.final_wait_s);               // bounded
 *     fb_figures f;
 *     int violations = fb_check(b, &f);               // needs a dtmq up
 *     fb_free(b);
 *
 * THE BANK. ACCOUNTS (10) balances of 1000 and the endpoints TransOut,
 * TransOutRevert, TransIn, TransInRevert, Deposit and QueryPrepared. Every
 * branch handler applies DTM's barrier rules on an in-memory table keyed by
 * (gid, branch_id, op), atomically with its balance change: a duplicate has no
 * effect, a compensation whose action never ran is a null compensation, an
 * action arriving after its compensation is skipped as hanging, a business
 * failure (409) leaves no barrier row. TransIn answers 409 for fail_pct % of
 * the sagas. err_pct % of calls answer 500 before the effect, 425, or 500
 * after the effect (answer lost); delay_pct % stall delay_ms first.
 * QueryPrepared answers 200 for committed msgs, 409 for dropped ones (or a
 * random 500/425). The same handler serves Kafka branches through a worker
 * (fb_start_worker): SUCCESS/FAILURE/ONGOING for 200/409/425, no reply for 500.
 *
 * THE WORKLOAD. N transactions, ⅔ sagas TransOut(from)→TransIn(to), ⅓ msgs
 * TransOut(from)+Deposit(to), submitted by client threads spread over
 * span_ms. A submission (HTTP: submit or prepare[+submit]) is retried against
 * any dtmq that is up until acknowledged: 200, or a 409 for a gid /query shows
 * stored. Over Kafka (kafka_submit_pct) the same JSON plus "op" is produced to
 * the submit topic, keyed by gid; Kafka's acknowledgement is the
 * acknowledgement. After ack_timeout_ms (and in any case ack_timeout_ms after
 * the end of the span) a transaction counts as not acknowledged.
 *
 * THE CHECKS (fb_check; each violation is printed as "fault: VIOLATION [...]"):
 * the sum of balances is unchanged; every acknowledged transaction (and every
 * stored one) is final; a succeeded saga applied both actions once, a failed
 * one has net zero effect; a committed msg was delivered once, a dropped msg
 * never called; no action applied after its compensation; the final status
 * matches the branch rows of /query; a gid dtmq does not know has no effect.
 * The history checker: one final state per transaction across all polls; no
 * saga action call after its first compensation call; no Deposit call after
 * the msg was seen failed.
 *
 * Ownership: fb_new returns a bank the caller frees with fb_free (which stops
 * the service, the worker, the poller and the Kafka producer). Strings passed
 * in are copied. Nothing here calls ck_assert: failures are return values.
 */
#ifndef DTMQ_TESTS_FAULT_BANK_H
#define DTMQ_TESTS_FAULT_BANK_H

#include <stddef.h>

enum { FB_ACCOUNTS = 10, FB_INITIAL_BALANCE = 1000, FB_MAX_DTMQ = 4 };

typedef struct fb_options {
    const char *name;     /* gid prefix (a random part is added), e.g. "fk" */
    int transactions;     /* N */
    int fail_pct;         /* % of sagas whose TransIn answers 409 */
    int err_pct;          /* % of calls answered 500/425 at random */
    int delay_pct;        /* % of branch calls stalled delay_ms first */
    int delay_ms;
    unsigned seed;        /* 0: time ^ pid */
    long long span_ms;    /* submissions are spread over this long */
    int submitters;       /* client threads; 0: 4 */
    int ack_timeout_ms;   /* give up on a submission after this; 0: 45000 */
    int kafka_submit_pct; /* % submitted over Kafka (needs fb_use_kafka_submit) */
    int kafka_branch_pct; /* % of sagas whose TransIn is kafka://topic (needs fb_start_worker) */
    int final_wait_s;     /* for the caller's fb_wait_final */
} fb_options;

/* Options from DTMQ_FAULT_FAIL_PCT (20), DTMQ_FAULT_ERR_PCT (10),
 * DTMQ_FAULT_DELAY_PCT (2), DTMQ_FAULT_DELAY_MS (5000), DTMQ_FAULT_SEED (0),
 * DTMQ_FAULT_FINAL_WAIT_S (150); transactions and span are the caller's. */
fb_options fb_options_from_env(const char *name, int transactions);
/* An integer from the environment, or def when unset/empty. */
int fb_env_int(const char *name, int def);

typedef struct fb_figures {
    int transactions, acked, succeed, failed, violations;
    int via_kafka;          /* transactions submitted over Kafka */
    long applied, duplicates, null_comp, hanging, busi_fail, injected;
    long kafka_calls;       /* branch calls that came through the worker */
    int marks;              /* fb_mark_back calls */
    long long max_recovery_ms; /* the longest mark → next progressing call */
    int unrecovered;        /* marks never followed by progress */
    long long max_resume_ms; /* the longest a transaction called before a mark waited
                              * after it for its next call answered 200 */
    long long workload_ms, final_wait_ms, max_poll_ms;
    size_t events;
} fb_figures;

typedef struct fault_bank fault_bank;

/* Plans the transactions (nothing runs yet). NULL on allocation failure. */
fault_bank *fb_new(const fb_options *o);
/* Stops everything the bank runs and frees it. NULL allowed. */
void fb_free(fault_bank *b);
unsigned fb_seed(const fault_bank *b);
/* Uniform in [0, n) from the bank's seeded generator (thread-safe). */
unsigned fb_rand(fault_bank *b, unsigned n);
/* Every fb time is on testlib's monotonic clock, test_now_ms (testlib.h). */

/* The bank's HTTP service on 127.0.0.1:port (0: a free port; the same port
 * again after fb_service_stop). 0, or -1 when it cannot listen. */
int fb_service_start(fault_bank *b, int port);
/* Stops listening (waits for the calls being handled). Safe when stopped. */
void fb_service_stop(fault_bank *b);
int fb_service_port(const fault_bank *b);
/* Changes the injected faults while running (thread-safe). */
void fb_set_faults(fault_bank *b, int err_pct, int delay_pct, int delay_ms);

/* Where dtmq answers: base URL ("http://127.0.0.1:PORT") of slot 0..
 * FB_MAX_DTMQ-1, or NULL while that dtmq is down. HTTP submissions go to a
 * random slot that is up; polls and queries to the first one. */
void fb_set_dtmq(fault_bank *b, int slot, const char *base_url);

/* Submits kafka_submit_pct % of the transactions by producing to topic
 * (dtmq's "<prefix>submit") on bootstrap. 0, or -1 with err. */
int fb_use_kafka_submit(fault_bank *b, const char *bootstrap, const char *topic, char *err,
                        size_t errlen);
/* Runs a dtmq worker (connectors/libdtmq/worker) in group for topic, answering the
 * kafka:// TransIn branches with the bank's handler; restarted when it fails.
 * 0, or -1 with err. */
int fb_start_worker(fault_bank *b, const char *bootstrap, const char *group, const char *topic,
                    char *err, size_t errlen);

/* Starts the poller and the submitters (returns at once). */
void fb_workload_start(fault_bank *b);
/* Waits until every submission was acknowledged or given up. */
void fb_workload_join(fault_bank *b);
/* Records that the broken thing is back (a restart). kafka_only: only calls
 * of Kafka transactions/branches count as the progress that ends it. */
void fb_mark_back(fault_bank *b, int kafka_only);
/* Waits (at most timeout_s) until every acknowledged or seen transaction was
 * seen final by the poller. Returns the ms waited. */
long long fb_wait_final(fault_bank *b, int timeout_s);
/* Number of transactions acknowledged so far. */
int fb_acked(fault_bank *b);
/* Number of transactions the poller saw final so far. */
int fb_final_seen(fault_bank *b);

/* Stops the poller, queries every gid, stops the bank's service and runs
 * every check. Needs a dtmq up (fb_set_dtmq). Prints each violation and
 * returns their count; fills f. */
int fb_check(fault_bank *b, fb_figures *f);

#endif
