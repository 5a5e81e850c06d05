/*
 * testlib.h — helpers for dtmq's integration tests: start a dtmq process on a
 * free loopback port and wait until it answers, stop it with a signal, make
 * HTTP calls with libcurl, read the addresses of the test services that
 * tests/run.sh started (real Kafka, the MongoDB-protocol servers), the clocks every test uses,
 * and test_group/test_add, which make each test a Check test case of its own.
 */
#ifndef DTMQ_TESTLIB_H
#define DTMQ_TESTLIB_H

#include <check.h>
#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct dtmq_proc {
    pid_t pid;
    int port;
    char base_url[64];  /* http://127.0.0.1:PORT */
    char log_path[320]; /* the process's stderr */
    char dir[256];      /* a fresh working directory (sqlite file lives here) */
} dtmq_proc;

/* Path of the dtmq binary under test (DTMQ_TEST_BIN, default build/asan/dtmq). */
const char *test_dtmq_bin(void);
/* Bootstrap of the real Kafka (DTMQ_TEST_KAFKA); aborts the test if unset. */
const char *test_kafka_bootstrap(void);
/* Base URI of the MongoDB-protocol server (DTMQ_TEST_MONGO); aborts if unset. */
const char *test_mongo_uri(void);

/* A free TCP port on 127.0.0.1. */
int test_free_port(void);

/*
 * Starts dtmq with --http-host 127.0.0.1 --http-port <free> plus args
 * (NULL-terminated, may be NULL) in a fresh directory, with env entries
 * "NAME=value" (NULL-terminated, may be NULL) added to the environment.
 * Waits up to 60 s for /api/ping. Returns 0, or -1 if it exited or never
 * answered (its exit status then in *exit_status when not NULL).
 */
int dtmq_start(dtmq_proc *p, const char *const *args, const char *const *env, int *exit_status);
/* Like dtmq_start but does not wait for readiness; for start-up failure tests. */
int dtmq_spawn(dtmq_proc *p, const char *const *args, const char *const *env);
/* Sends sig and waits up to timeout_s; returns the exit status (WEXITSTATUS),
 * 128+signal if killed by a signal, -1 on timeout (then it is SIGKILLed). */
int dtmq_stop(dtmq_proc *p, int sig, int timeout_s);
/* Waits for exit without signalling; same return values as dtmq_stop. */
int dtmq_wait(dtmq_proc *p, int timeout_s);
/* The process's stderr so far (malloc'd). */
char *dtmq_log(const dtmq_proc *p);

/* HTTP call; body may be NULL. *resp gets the malloc'd body. Returns the HTTP
 * status, or -1 on a transport error. */
int http_do(const char *method, const char *url, const char *body, char **resp);

/* Runs every test of s with Check and returns the process exit status:
 * 0 when all passed. Every test binary's main() ends with this. */
int run_suite(Suite *s);

/*
 * One TCase per test, named after the test function, so that any one test can
 * be run alone (CK_RUN_CASE=<test name>; `make test-one`, docs/testing.md).
 * A test_group holds what the tests of a group share: the suite, the time
 * limit (0: Check's default, CK_DEFAULT_TIMEOUT) and fixtures; the checked
 * fixture runs around every test (in its fork), the unchecked one around each
 * test's TCase (in the parent, so also once per test).
 *
 *   test_group g = {.suite = s, .timeout_s = 90, .setup = a, .teardown = b};
 *   test_add(&g, saga_commits);             TCase "saga_commits"
 *   test_add_loop(&g, classifies, 0, n);    one TCase, iterations 0..n-1
 */
typedef struct test_group {
    Suite *suite;
    int timeout_s;
    SFun setup, teardown;   /* checked fixture, or NULL */
    SFun usetup, uteardown; /* unchecked fixture, or NULL */
} test_group;

TCase *test_group_add(const test_group *g, const TTest *test, int start, int end);
/* The same under another name (kept, not copied: a string that outlives the
 * run), for a test run once per parameter, e.g. per database. */
TCase *test_group_add_as(const test_group *g, const char *name, const TTest *test, int start,
                         int end);
#define test_add(g, test) test_group_add((g), (test), 0, 1)
#define test_add_loop(g, test, start, end) test_group_add((g), (test), (start), (end))

/* ---- end-to-end helpers -------------------------------------------------- */

/* A store URI for one test: DTMQ_TEST_STORE's kind ("sqlite" by default, or
 * "mongodb" with DTMQ_TEST_MONGO) with a fresh file/database of its own. */
void test_store_uri(char *buf, size_t len);

/* Starts dtmq for an end-to-end test on store_uri with short intervals
 * (RetryInterval 1 s, RetryIntervalMax 4 s, TransCronInterval 1 s,
 * TimeoutToFail 3 s, RequestTimeout 2 s), Kafka off, plus extra args. Aborts
 * the test with dtmq's log if it does not start. */
void e2e_start(dtmq_proc *p, const char *store_uri, const char *const *extra_args);
/* Stops it with SIGTERM and asserts a clean exit (0). */
void e2e_stop(dtmq_proc *p);

/* Calls dtmq; returns the parsed JSON body (NULL if not JSON), status in *status. */
json_t *e2e_call(const dtmq_proc *p, const char *method, const char *path, const char *body,
                 int *status);
/* POSTs body to /api/dtmsvr/<route>; asserts the status; returns nothing. */
void e2e_post_expect(const dtmq_proc *p, const char *route, const char *body, int want_status);
/* The transaction's status via /query ("" when absent; copy into buf). */
const char *e2e_status(const dtmq_proc *p, const char *gid, char *buf, size_t len);
/* Waits until the status is want (polls /query); asserts it within timeout_s. */
void e2e_wait_status(const dtmq_proc *p, const char *gid, const char *want, int timeout_s);
/* A fresh gid for a test ("<prefix>-<random>"). */
void e2e_gid(char *buf, size_t len, const char *prefix);

/* http_do with "Authorization: Bearer <token>" when token is not NULL. */
int http_do_headers(const char *method, const char *url, const char *body, const char *token,
                    char **resp);
/* http_do with "Authorization: <authorization>" (any scheme) when not NULL. */
int http_do_raw_auth(const char *method, const char *url, const char *body,
                     const char *authorization, char **resp);

/* ---- small helpers the tests share -------------------------------------- */

/* Milliseconds: monotonic (for durations) and wall clock (what busi stamps
 * its calls with). */
long long test_now_ms(void);
long long test_wall_ms(void);
void test_sleep_ms(long ms);
/* The integer in environment variable name, def when unset, clamped to lo..hi. */
int test_env_int(const char *name, int def, int lo, int hi);
/* DTMQ_TEST_STORE_KIND: "sqlite" (default) or "mongodb". */
const char *test_store_kind(void);

/* Reads a whole file (malloc'd) or NULL. */
char *read_file(const char *path);

#endif
