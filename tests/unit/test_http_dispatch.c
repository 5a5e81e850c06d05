/*
 * test_http_dispatch.c — the HTTP branch dispatcher against a real HTTP
 * server (libmicrohttpd on 127.0.0.1, started per test): DTM's result
 * mapping, transport errors and timeouts, what goes on the wire (method,
 * query, headers, binary bodies), concurrency and queueing limits,
 * connection reuse, stop semantics, and branch URL building.
 */
#include <check.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "daemon/dispatch/http_dispatch.h"
#include "stub_http.h"
#include "testlib.h"

enum {
    SLOW_MS = 1500,
    BIG_BODY = 2 << 20,          /* /big answers 2 MiB */
    KEPT_BODY = 1 << 20,         /* the dispatcher keeps 1 MiB */
    WAIT_MS = 20000,             /* deadline for callbacks in ordinary tests */
    TEST_TIMEOUT_MS = 5000,      /* timeout_ms of ordinary calls */
};

/* ---- clocks ------------------------------------------------------------ */

/* ---- the test server --------------------------------------------------
 *
 * libmicrohttpd with a small thread pool. /slow must not hold a worker for
 * 1.5 s (a worker serves many connections, so a sleeping handler would
 * serialise them and the concurrency tests would measure the server): it
 * suspends its connection, and a "resumer" thread resumes it when due.
 */

typedef struct request_state request_state;

typedef struct test_server {
    struct MHD_Daemon *daemon;
    char base[64];            /* http://127.0.0.1:PORT */
    atomic_int connections;   /* TCP connections accepted */
    atomic_int slow_hits;     /* /slow requests received */
    atomic_int slow_now;      /* /slow requests received and not answered or closed yet */
    atomic_int slow_max;      /* highest slow_now seen */

    pthread_t resumer;
    pthread_mutex_t lock;     /* guards suspended and stopping */
    pthread_cond_t cond;
    request_state *suspended; /* /slow requests waiting for their time */
    bool stopping;
} test_server;

static test_server srv;

/* Per-request state (MHD's con_cls). */
struct request_state {
    char *body;               /* the request body as it arrives */
    size_t len;
    bool slow_counted;        /* counted in srv.slow_now */
    bool slow_resumed;        /* the resumer has resumed it */
    long long resume_at;      /* monotonic ms */
    struct MHD_Connection *conn;
    request_state *next;      /* srv.suspended link */
};

static enum MHD_Result srv_reply(struct MHD_Connection *conn, unsigned status, const char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ok = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result srv_reply_str(struct MHD_Connection *conn, unsigned status, const char *body)
{
    return srv_reply(conn, status, body, strlen(body));
}

static const char *srv_value(struct MHD_Connection *conn, enum MHD_ValueKind kind, const char *key)
{
    const char *v = MHD_lookup_connection_value(conn, kind, key);
    return v != NULL ? v : "(none)";
}

/* The /echo body; the test builds the same text to compare (see echo_expect). */
static char *echo_format(const char *method, const char *gid, const char *trans_type, const char *branch_id,
                         const char *op, const char *header, const char *content_type, const char *body,
                         size_t body_len, size_t *out_len)
{
    char *head = NULL;
    int n = asprintf(&head,
                     "method=%s\ngid=%s\ntrans_type=%s\nbranch_id=%s\nop=%s\nx-dtmq-test=%s\n"
                     "content-type=%s\nbody_len=%zu\nbody=",
                     method, gid, trans_type, branch_id, op, header, content_type, body_len);
    ck_assert_int_gt(n, 0);
    char *out = malloc((size_t)n + body_len + 1);
    ck_assert_ptr_nonnull(out);
    memcpy(out, head, (size_t)n);
    if (body_len > 0)
        memcpy(out + n, body, body_len);
    out[(size_t)n + body_len] = '\0';
    free(head);
    *out_len = (size_t)n + body_len;
    return out;
}

static enum MHD_Result srv_echo(struct MHD_Connection *conn, const char *method, const request_state *st)
{
    size_t len;
    char *text = echo_format(method, srv_value(conn, MHD_GET_ARGUMENT_KIND, "gid"),
                             srv_value(conn, MHD_GET_ARGUMENT_KIND, "trans_type"),
                             srv_value(conn, MHD_GET_ARGUMENT_KIND, "branch_id"),
                             srv_value(conn, MHD_GET_ARGUMENT_KIND, "op"),
                             srv_value(conn, MHD_HEADER_KIND, "X-Dtmq-Test"),
                             srv_value(conn, MHD_HEADER_KIND, "Content-Type"), st->body, st->len, &len);
    enum MHD_Result ok = srv_reply(conn, 200, text, len);
    free(text);
    return ok;
}

/* Ends st's share of srv.slow_now (answered, or closed without an answer). */
static void srv_slow_uncount(request_state *st)
{
    if (st->slow_counted) {
        st->slow_counted = false;
        atomic_fetch_sub(&srv.slow_now, 1);
    }
}

/* First call: suspend for SLOW_MS (the resumer thread wakes it). Second call,
 * after the resume: answer 200. */
static enum MHD_Result srv_slow(struct MHD_Connection *conn, request_state *st)
{
    if (st->slow_resumed) {
        srv_slow_uncount(st);
        return srv_reply_str(conn, 200, "{}");
    }
    atomic_fetch_add(&srv.slow_hits, 1);
    int now = atomic_fetch_add(&srv.slow_now, 1) + 1;
    int max = atomic_load(&srv.slow_max);
    while (now > max && !atomic_compare_exchange_weak(&srv.slow_max, &max, now)) {
    }
    st->slow_counted = true;
    st->conn = conn;
    st->resume_at = test_now_ms() + SLOW_MS;
    MHD_suspend_connection(conn); /* before the resumer can see it */
    pthread_mutex_lock(&srv.lock);
    st->next = srv.suspended;
    srv.suspended = st;
    pthread_cond_signal(&srv.cond);
    pthread_mutex_unlock(&srv.lock);
    return MHD_YES;
}

/* Resumes the suspended requests that are due (all of them when stopping);
 * returns the earliest remaining resume time, or -1 if none. Needs srv.lock.
 * A resumed request may complete and be freed at once: not touched after. */
static long long srv_resume_due(void)
{
    long long now = test_now_ms(), next = -1;
    request_state **link = &srv.suspended;
    while (*link != NULL) {
        request_state *st = *link;
        if (srv.stopping || st->resume_at <= now) {
            *link = st->next;
            st->slow_resumed = true;
            MHD_resume_connection(st->conn);
        } else {
            if (next < 0 || st->resume_at < next)
                next = st->resume_at;
            link = &st->next;
        }
    }
    return next;
}

static void *srv_resumer_main(void *arg)
{
    pthread_mutex_lock(&srv.lock);
    for (;;) {
        long long next = srv_resume_due();
        if (srv.stopping)
            break;
        if (next < 0) {
            pthread_cond_wait(&srv.cond, &srv.lock);
        } else {
            struct timespec at = {(time_t)(next / 1000), (long)(next % 1000) * 1000000L};
            pthread_cond_timedwait(&srv.cond, &srv.lock, &at);
        }
    }
    pthread_mutex_unlock(&srv.lock);
    return NULL;
}

static enum MHD_Result srv_big(struct MHD_Connection *conn)
{
    char *big = malloc(BIG_BODY);
    memset(big, 'x', BIG_BODY);
    enum MHD_Result ok = srv_reply(conn, 200, big, BIG_BODY);
    free(big);
    return ok;
}

static enum MHD_Result srv_redirect(struct MHD_Connection *conn)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Location", "/ok");
    enum MHD_Result ok = MHD_queue_response(conn, 302, r);
    MHD_destroy_response(r);
    return ok;
}

/* Answers a complete request by path. */
static enum MHD_Result srv_answer(struct MHD_Connection *conn, const char *url, const char *method,
                                  request_state *st)
{
    if (strcmp(url, "/ok") == 0)
        return srv_reply_str(conn, 200, "{}");
    if (strcmp(url, "/fail409") == 0)
        return srv_reply_str(conn, 409, "{}");
    if (strcmp(url, "/failbody") == 0)
        return srv_reply_str(conn, 200, "{\"dtm_result\":\"FAILURE\"}");
    if (strcmp(url, "/ongoing425") == 0)
        return srv_reply_str(conn, 425, "{}");
    if (strcmp(url, "/ongoingbody") == 0)
        return srv_reply_str(conn, 200, "{\"dtm_result\":\"ONGOING\"}");
    if (strcmp(url, "/ongoing409") == 0) /* ONGOING is checked before 409 */
        return srv_reply_str(conn, 409, "{\"dtm_result\":\"ONGOING\"}");
    if (strcmp(url, "/failure500") == 0) /* FAILURE is checked before non-200 */
        return srv_reply_str(conn, 500, "{\"dtm_result\":\"FAILURE\"}");
    if (strcmp(url, "/err500") == 0)
        return srv_reply_str(conn, 500, "boom");
    if (strcmp(url, "/slow") == 0)
        return srv_slow(conn, st);
    if (strcmp(url, "/echo") == 0)
        return srv_echo(conn, method, st);
    if (strcmp(url, "/big") == 0)
        return srv_big(conn);
    if (strcmp(url, "/redirect") == 0)
        return srv_redirect(conn);
    return srv_reply_str(conn, 404, "not found");
}

static enum MHD_Result srv_handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size,
                                  void **con_cls)
{
    request_state *st = *con_cls;
    if (st == NULL) {
        *con_cls = st = calloc(1, sizeof(*st));
        return st != NULL ? MHD_YES : MHD_NO;
    }
    if (*upload_size > 0) {
        char *grown = realloc(st->body, st->len + *upload_size);
        if (grown == NULL)
            return MHD_NO;
        memcpy(grown + st->len, upload_data, *upload_size);
        st->body = grown;
        st->len += *upload_size;
        *upload_size = 0;
        return MHD_YES;
    }
    return srv_answer(conn, url, method, st);
}

static void srv_request_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                             enum MHD_RequestTerminationCode toe)
{
    request_state *st = *con_cls;
    if (st != NULL) {
        srv_slow_uncount(st);
        free(st->body);
        free(st);
        *con_cls = NULL;
    }
}

static void srv_connection_event(void *cls, struct MHD_Connection *conn, void **socket_context,
                                 enum MHD_ConnectionNotificationCode toe)
{
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        atomic_fetch_add(&srv.connections, 1);
}

static void srv_start_resumer(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&srv.cond, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&srv.lock, NULL);
    ck_assert_int_eq(pthread_create(&srv.resumer, NULL, srv_resumer_main, NULL), 0);
}

/* Resumes every suspended request at once and ends the resumer thread. */
static void srv_stop_resumer(void)
{
    pthread_mutex_lock(&srv.lock);
    srv.stopping = true;
    pthread_cond_signal(&srv.cond);
    pthread_mutex_unlock(&srv.lock);
    pthread_join(srv.resumer, NULL);
    pthread_cond_destroy(&srv.cond);
    pthread_mutex_destroy(&srv.lock);
}

/* Checked fixture: a server per test. */
static void srv_start(void)
{
    memset(&srv, 0, sizeof(srv));
    srv_start_resumer();
    for (int attempt = 0; attempt < 20 && srv.daemon == NULL; attempt++) {
        stub_http_options o = {.port = test_free_port(), .threads = 4,
                               .flags = MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
                               .connection_limit = 1000, .completed = srv_request_done,
                               .connection = srv_connection_event};
        srv.daemon = stub_http_start(srv_handle, NULL, &o, NULL, srv.base, sizeof(srv.base));
    }
    ck_assert_msg(srv.daemon != NULL, "cannot start the test HTTP server");
}

/* MHD must not be stopped with suspended connections: resume them all and
 * wait until each is answered or closed first. */
static void srv_stop(void)
{
    srv_stop_resumer();
    long long deadline = test_now_ms() + 10000;
    while (atomic_load(&srv.slow_now) > 0 && test_now_ms() < deadline)
        test_sleep_ms(5);
    if (srv.daemon != NULL)
        MHD_stop_daemon(srv.daemon);
    srv.daemon = NULL;
}

/* A server counter's current value (plain int for readable assertions). */
static int srv_count(atomic_int *counter)
{
    return atomic_load(counter);
}

/* A malloc'd URL on the test server. */
static char *srv_url(const char *path)
{
    char *url = NULL;
    ck_assert_int_gt(asprintf(&url, "%s%s", srv.base, path), 0);
    return url;
}

/* ---- collecting results ------------------------------------------------ */

typedef struct collector collector;

/* What one call's done callback saw (copies), and how often it ran. */
typedef struct call_slot {
    collector *col;
    int calls;
    dispatch_outcome outcome;
    int status;
    char *body;
    size_t body_len;
    char *error;
    long long started_ms;
    long long finished_ms;
    /* Optional: the callback submits one more call to resubmit_to. */
    http_dispatch *resubmit_to;
    int resubmit_rc;
} call_slot;

struct collector {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;       /* callbacks run */
    int n;
    call_slot *slots;
};

static collector *collector_new(int n)
{
    collector *col = calloc(1, sizeof(*col));
    ck_assert_ptr_nonnull(col);
    pthread_mutex_init(&col->lock, NULL);
    pthread_cond_init(&col->cond, NULL);
    col->n = n;
    col->slots = calloc((size_t)n, sizeof(call_slot));
    ck_assert_ptr_nonnull(col->slots);
    for (int i = 0; i < n; i++)
        col->slots[i].col = col;
    return col;
}

static void collector_free(collector *col)
{
    for (int i = 0; i < col->n; i++) {
        free(col->slots[i].body);
        free(col->slots[i].error);
    }
    free(col->slots);
    pthread_cond_destroy(&col->cond);
    pthread_mutex_destroy(&col->lock);
    free(col);
}

static void on_resubmitted(void *arg, const http_call_result *r)
{
}

static void on_done(void *arg, const http_call_result *r)
{
    call_slot *slot = arg;
    if (slot->resubmit_to != NULL) {
        http_call again = {.method = "GET", .url = "http://127.0.0.1:1/", .timeout_ms = 100,
                           .done = on_resubmitted};
        slot->resubmit_rc = http_dispatch_submit(slot->resubmit_to, &again);
    }
    collector *col = slot->col;
    pthread_mutex_lock(&col->lock);
    if (slot->calls++ == 0) {
        slot->outcome = r->outcome;
        slot->status = r->http_status;
        slot->body = malloc(r->body_len + 1);
        memcpy(slot->body, r->body, r->body_len + 1); /* includes the promised NUL */
        slot->body_len = r->body_len;
        slot->error = strdup(r->error);
        slot->started_ms = r->started_ms;
        slot->finished_ms = r->finished_ms;
    }
    col->done++;
    pthread_cond_broadcast(&col->cond);
    pthread_mutex_unlock(&col->lock);
}

/* Waits until n callbacks ran or timeout_ms passed; returns the count. */
static int collector_wait(collector *col, int n, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&col->lock);
    while (col->done < n && pthread_cond_timedwait(&col->cond, &col->lock, &deadline) == 0) {
    }
    int done = col->done;
    pthread_mutex_unlock(&col->lock);
    return done;
}

/* Asserts every slot's callback ran exactly once. */
static void assert_each_called_once(collector *col)
{
    pthread_mutex_lock(&col->lock);
    for (int i = 0; i < col->n; i++)
        ck_assert_msg(col->slots[i].calls == 1, "call %d: done ran %d times", i, col->slots[i].calls);
    pthread_mutex_unlock(&col->lock);
}

/* ---- submitting -------------------------------------------------------- */

static int submit_to(http_dispatch *d, call_slot *slot, const char *method, const char *url, const char *body,
                     size_t body_len, const char *const *headers, long timeout_ms)
{
    http_call call = {.method = method, .url = url, .body = body, .body_len = body_len, .headers = headers,
                      .timeout_ms = timeout_ms, .done = on_done, .arg = slot};
    return http_dispatch_submit(d, &call);
}

/* Submits n calls of method to path on the test server, one per slot. */
static void submit_many(http_dispatch *d, collector *col, const char *method, const char *path, long timeout_ms)
{
    char *url = srv_url(path);
    for (int i = 0; i < col->n; i++)
        ck_assert_int_eq(submit_to(d, &col->slots[i], method, url, NULL, 0, NULL, timeout_ms), 0);
    free(url);
}

/* Makes one call through a fresh dispatcher and waits for it; the caller
 * reads col->slots[0] and frees col. */
static collector *call_once(const char *method, const char *url, const char *body, size_t body_len,
                            const char *const *headers, long timeout_ms)
{
    collector *col = collector_new(1);
    http_dispatch *d = http_dispatch_start(4);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(submit_to(d, &col->slots[0], method, url, body, body_len, headers, timeout_ms), 0);
    ck_assert_int_eq(collector_wait(col, 1, WAIT_MS), 1);
    ck_assert_int_eq(http_dispatch_pending(d), 0);
    http_dispatch_stop(d);
    assert_each_called_once(col);
    return col;
}

static collector *call_path(const char *method, const char *path)
{
    char *url = srv_url(path);
    collector *col = call_once(method, url, NULL, 0, NULL, TEST_TIMEOUT_MS);
    free(url);
    return col;
}

/* Calls /echo at a branch URL and checks the whole echoed text. */
static void assert_echo(const char *method, const char *gid, const char *body, size_t body_len,
                        const char *const *headers, const char *want_header, const char *want_type,
                        size_t want_body_len)
{
    char *base = srv_url("/echo");
    char *url = http_dispatch_branch_url(base, gid, "saga", "01", "action");
    ck_assert_ptr_nonnull(url);
    collector *col = call_once(method, url, body, body_len, headers, TEST_TIMEOUT_MS);
    call_slot *s = &col->slots[0];
    size_t want_len;
    char *want = echo_format(method, gid, "saga", "01", "action", want_header, want_type, body, want_body_len,
                             &want_len);
    ck_assert_int_eq(s->outcome, DISPATCH_SUCCESS);
    ck_assert_int_eq(s->status, 200);
    ck_assert_str_eq(s->error, "");
    ck_assert_uint_eq(s->body_len, want_len);
    ck_assert_msg(memcmp(s->body, want, want_len) == 0, "echo differs:\n%s\nwant:\n%s", s->body, want);
    free(want);
    collector_free(col);
    free(url);
    free(base);
}

/* ---- tests: classification --------------------------------------------- */

typedef struct classify_case {
    const char *path;
    dispatch_outcome outcome;
    int status;
    const char *body;
} classify_case;

static const classify_case classify_cases[] = {
    {"/ok", DISPATCH_SUCCESS, 200, "{}"},
    {"/fail409", DISPATCH_FAILURE, 409, "{}"},
    {"/failbody", DISPATCH_FAILURE, 200, "{\"dtm_result\":\"FAILURE\"}"},
    {"/ongoing425", DISPATCH_ONGOING, 425, "{}"},
    {"/ongoingbody", DISPATCH_ONGOING, 200, "{\"dtm_result\":\"ONGOING\"}"},
    {"/ongoing409", DISPATCH_ONGOING, 409, "{\"dtm_result\":\"ONGOING\"}"},
    {"/failure500", DISPATCH_FAILURE, 500, "{\"dtm_result\":\"FAILURE\"}"},
    {"/err500", DISPATCH_ERROR, 500, "boom"},
    {"/missing", DISPATCH_ERROR, 404, "not found"},
    {"/redirect", DISPATCH_ERROR, 302, ""}, /* redirects are not followed */
};

START_TEST(classifies_answer)
{
    const classify_case *c = &classify_cases[_i];
    long long before = test_wall_ms();
    collector *col = call_path("POST", c->path);
    long long after = test_wall_ms();
    call_slot *s = &col->slots[0];
    ck_assert_msg(s->outcome == c->outcome, "%s: outcome %s, want %s", c->path, dispatch_outcome_name(s->outcome),
                  dispatch_outcome_name(c->outcome));
    ck_assert_int_eq(s->status, c->status);
    ck_assert_str_eq(s->body, c->body);
    ck_assert_uint_eq(s->body_len, strlen(c->body));
    ck_assert_str_eq(s->error, ""); /* an answer is not a transport error */
    ck_assert_int_ge(s->started_ms, before);
    ck_assert_int_ge(s->finished_ms, s->started_ms);
    ck_assert_int_le(s->finished_ms, after);
    collector_free(col);
}
END_TEST

START_TEST(outcome_names)
{
    ck_assert_str_eq(dispatch_outcome_name(DISPATCH_SUCCESS), "SUCCESS");
    ck_assert_str_eq(dispatch_outcome_name(DISPATCH_FAILURE), "FAILURE");
    ck_assert_str_eq(dispatch_outcome_name(DISPATCH_ONGOING), "ONGOING");
    ck_assert_str_eq(dispatch_outcome_name(DISPATCH_ERROR), "ERROR");
}
END_TEST

START_TEST(big_answer_is_truncated_and_classified)
{
    collector *col = call_path("GET", "/big");
    call_slot *s = &col->slots[0];
    ck_assert_int_eq(s->outcome, DISPATCH_SUCCESS);
    ck_assert_int_eq(s->status, 200);
    ck_assert_uint_eq(s->body_len, KEPT_BODY);
    ck_assert_int_eq(s->body[KEPT_BODY], '\0');
    ck_assert_uint_eq(strspn(s->body, "x"), KEPT_BODY);
    collector_free(col);
}
END_TEST

/* ---- tests: transport errors ------------------------------------------- */

START_TEST(connection_refused_is_error)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok", test_free_port()); /* nothing listens there */
    collector *col = call_once("POST", url, "{}", 2, NULL, TEST_TIMEOUT_MS);
    call_slot *s = &col->slots[0];
    ck_assert_int_eq(s->outcome, DISPATCH_ERROR);
    ck_assert_int_eq(s->status, 0);
    ck_assert_str_eq(s->body, "");
    ck_assert_ptr_nonnull(strstr(s->error, "Couldn't connect to server"));
    collector_free(col);
}
END_TEST

START_TEST(timeout_is_error)
{
    char *url = srv_url("/slow");
    collector *col = call_once("GET", url, NULL, 0, NULL, 300);
    call_slot *s = &col->slots[0];
    long long took = s->finished_ms - s->started_ms;
    ck_assert_int_eq(s->outcome, DISPATCH_ERROR);
    ck_assert_int_eq(s->status, 0);
    ck_assert_ptr_nonnull(strstr(s->error, "Timeout was reached"));
    ck_assert_int_ge(took, 250);
    ck_assert_int_lt(took, SLOW_MS);
    collector_free(col);
    free(url);
}
END_TEST

START_TEST(unsupported_scheme_is_error)
{
    collector *col = call_once("GET", "file:///etc/hostname", NULL, 0, NULL, TEST_TIMEOUT_MS);
    ck_assert_int_eq(col->slots[0].outcome, DISPATCH_ERROR);
    ck_assert_str_ne(col->slots[0].error, "");
    collector_free(col);
}
END_TEST

/* ---- tests: the request on the wire ------------------------------------ */

START_TEST(post_sends_exact_bytes_headers_and_query)
{
    static const char body[] = "{\"a\":1}\0after-nul\xff";
    const char *headers[] = {"X-Dtmq-Test: hello world", NULL};
    /* the gid needs escaping; the server decodes it back */
    assert_echo("POST", "g 1&x=y/é+%", body, sizeof(body) - 1, headers, "hello world", "application/json",
                sizeof(body) - 1);
}
END_TEST

START_TEST(post_sends_large_binary_body)
{
    enum { N = 300 * 1024 };
    char *body = malloc(N);
    for (int i = 0; i < N; i++)
        body[i] = (char)(i * 7 % 256);
    assert_echo("POST", "gid-large", body, N, NULL, "(none)", "application/json", N);
    free(body);
}
END_TEST

START_TEST(post_without_body_sends_empty_body)
{
    assert_echo("POST", "gid-empty", NULL, 0, NULL, "(none)", "application/json", 0);
}
END_TEST

START_TEST(post_keeps_callers_content_type)
{
    const char *headers[] = {"content-type: text/plain", "X-Dtmq-Test: v", NULL};
    assert_echo("POST", "gid-type", "abc", 3, headers, "v", "text/plain", 3);
}
END_TEST

START_TEST(get_sends_no_body)
{
    const char *headers[] = {"X-Dtmq-Test: get-header", NULL};
    assert_echo("GET", "gid-get", "ignored body", 12, headers, "get-header", "(none)", 0);
}
END_TEST

START_TEST(caller_may_free_call_after_submit)
{
    collector *col = collector_new(1);
    http_dispatch *d = http_dispatch_start(1);
    char *echo_url = srv_url("/echo");
    char *full = http_dispatch_branch_url(echo_url, "g", "msg", "01", "action");
    char *body = strdup("payload");
    char *header = strdup("X-Dtmq-Test: copied");
    const char *headers[] = {header, NULL};
    ck_assert_int_eq(submit_to(d, &col->slots[0], "POST", full, body, 7, headers, TEST_TIMEOUT_MS), 0);
    /* scribble over and free everything the call pointed to */
    memset(full, 'z', strlen(full));
    memset(body, 'z', 7);
    memset(header, 'z', strlen(header));
    free(full);
    free(body);
    free(header);
    ck_assert_int_eq(collector_wait(col, 1, WAIT_MS), 1);
    http_dispatch_stop(d);
    size_t want_len;
    char *want = echo_format("POST", "g", "msg", "01", "action", "copied", "application/json", "payload", 7,
                             &want_len);
    ck_assert_uint_eq(col->slots[0].body_len, want_len);
    ck_assert_mem_eq(col->slots[0].body, want, want_len);
    free(want);
    free(echo_url);
    collector_free(col);
}
END_TEST

/* A call submitted to an idle dispatcher (asleep in curl_multi_poll) starts
 * at once: submit wakes it rather than waiting for a poll timeout. */
START_TEST(submit_wakes_idle_dispatcher)
{
    collector *col = collector_new(3);
    http_dispatch *d = http_dispatch_start(4);
    char *url = srv_url("/ok");
    for (int i = 0; i < col->n; i++) {
        test_sleep_ms(200); /* let the dispatcher go idle */
        long long submitted = test_wall_ms();
        ck_assert_int_eq(submit_to(d, &col->slots[i], "GET", url, NULL, 0, NULL, TEST_TIMEOUT_MS), 0);
        ck_assert_int_eq(collector_wait(col, i + 1, WAIT_MS), i + 1);
        ck_assert_int_eq(col->slots[i].outcome, DISPATCH_SUCCESS);
        long long latency = col->slots[i].finished_ms - submitted;
        ck_assert_msg(latency < 500, "call %d finished %lld ms after submit", i, latency);
    }
    http_dispatch_stop(d);
    free(url);
    collector_free(col);
}
END_TEST

START_TEST(connections_are_reused)
{
    enum { N = 10 };
    collector *col = collector_new(N);
    http_dispatch *d = http_dispatch_start(1);
    submit_many(d, col, "POST", "/ok", TEST_TIMEOUT_MS);
    ck_assert_int_eq(collector_wait(col, N, WAIT_MS), N);
    http_dispatch_stop(d);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(col->slots[i].outcome, DISPATCH_SUCCESS);
    ck_assert_int_eq(srv_count(&srv.connections), 1);
    collector_free(col);
}
END_TEST

START_TEST(rejects_invalid_calls)
{
    http_dispatch *d = http_dispatch_start(1);
    call_slot slot = {0};
    ck_assert_int_eq(submit_to(d, &slot, "PUT", "http://127.0.0.1:1/", NULL, 0, NULL, 100), -1);
    ck_assert_int_eq(submit_to(d, &slot, NULL, "http://127.0.0.1:1/", NULL, 0, NULL, 100), -1);
    ck_assert_int_eq(submit_to(d, &slot, "GET", NULL, NULL, 0, NULL, 100), -1);
    ck_assert_int_eq(submit_to(d, &slot, "GET", "http://127.0.0.1:1/", NULL, 0, NULL, 0), -1);
    ck_assert_int_eq(submit_to(d, &slot, "POST", "http://127.0.0.1:1/", NULL, 5, NULL, 100), -1);
    http_call no_done = {.method = "GET", .url = "http://127.0.0.1:1/", .timeout_ms = 100};
    ck_assert_int_eq(http_dispatch_submit(d, &no_done), -1);
    ck_assert_int_eq(http_dispatch_pending(d), 0);
    http_dispatch_stop(d);
    ck_assert_int_eq(slot.calls, 0);
    ck_assert_ptr_null(http_dispatch_start(0));
}
END_TEST

/* ---- tests: concurrency, queueing, stop -------------------------------- */

START_TEST(many_calls_run_concurrently)
{
    enum { N = 200 };
    collector *col = collector_new(N);
    http_dispatch *d = http_dispatch_start(256);
    long long t0 = test_now_ms();
    submit_many(d, col, "GET", "/slow", 30000);
    ck_assert_int_eq(collector_wait(col, N, 60000), N);
    long long took = test_now_ms() - t0;
    ck_assert_int_eq(http_dispatch_pending(d), 0);
    http_dispatch_stop(d);
    assert_each_called_once(col);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(col->slots[i].outcome, DISPATCH_SUCCESS);
    ck_assert_msg(took < 10000, "200 slow calls took %lld ms", took);
    ck_assert_int_eq(srv_count(&srv.slow_hits), N);
    ck_assert_int_eq(srv_count(&srv.slow_max), N); /* the server held all of them at once */
    collector_free(col);
}
END_TEST

START_TEST(max_in_flight_queues_the_rest)
{
    enum { N = 6 };
    collector *col = collector_new(N);
    http_dispatch *d = http_dispatch_start(2);
    long long t0 = test_now_ms();
    submit_many(d, col, "GET", "/slow", 30000);
    ck_assert_int_eq(http_dispatch_pending(d), N);
    ck_assert_int_eq(collector_wait(col, N, 60000), N);
    long long took = test_now_ms() - t0;
    ck_assert_int_eq(http_dispatch_pending(d), 0);
    http_dispatch_stop(d);
    assert_each_called_once(col);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(col->slots[i].outcome, DISPATCH_SUCCESS);
    ck_assert_msg(took >= 3 * SLOW_MS, "6 slow calls, 2 at a time, took only %lld ms", took);
    ck_assert_int_eq(srv_count(&srv.slow_max), 2);
    collector_free(col);
}
END_TEST

/* Waits until the server has received n /slow requests. */
static void wait_slow_hits(int n)
{
    long long deadline = test_now_ms() + WAIT_MS;
    while (srv_count(&srv.slow_hits) < n && test_now_ms() < deadline)
        test_sleep_ms(10);
    ck_assert_int_eq(srv_count(&srv.slow_hits), n);
}

START_TEST(stop_completes_running_and_queued_calls)
{
    enum { N = 5 };
    collector *col = collector_new(N);
    http_dispatch *d = http_dispatch_start(2);
    for (int i = 0; i < N; i++)
        col->slots[i].resubmit_to = d; /* each callback tries to submit during stop */
    submit_many(d, col, "GET", "/slow", 30000);
    wait_slow_hits(2); /* two in flight, three queued */
    ck_assert_int_eq(http_dispatch_pending(d), N);
    long long t0 = test_now_ms();
    http_dispatch_stop(d);
    long long took = test_now_ms() - t0;
    ck_assert_int_eq(collector_wait(col, N, 0), N); /* all done before stop returned */
    assert_each_called_once(col);
    for (int i = 0; i < N; i++) {
        call_slot *s = &col->slots[i];
        ck_assert_int_eq(s->outcome, DISPATCH_ERROR);
        ck_assert_int_eq(s->status, 0);
        ck_assert_str_eq(s->error, "dispatcher stopped");
        ck_assert_int_eq(s->resubmit_rc, -1);
        ck_assert_int_ge(s->finished_ms, s->started_ms);
    }
    ck_assert_msg(took < SLOW_MS, "stop waited %lld ms for running calls", took);
    collector_free(col);
}
END_TEST

START_TEST(start_and_stop_idle)
{
    for (int i = 0; i < 5; i++) {
        http_dispatch *d = http_dispatch_start(8);
        ck_assert_ptr_nonnull(d);
        ck_assert_int_eq(http_dispatch_pending(d), 0);
        http_dispatch_stop(d);
    }
}
END_TEST

/* A callback submits the next call of a chain (what the engine does). */
typedef struct chain {
    http_dispatch *d;
    char *url;
    collector *col;
    int next;
} chain;

static void on_chain_step(void *arg, const http_call_result *r)
{
    chain *ch = arg;
    call_slot *slot = &ch->col->slots[ch->next++];
    if (ch->next < ch->col->n) {
        http_call call = {.method = "GET", .url = ch->url, .timeout_ms = TEST_TIMEOUT_MS, .done = on_chain_step,
                          .arg = ch};
        slot->resubmit_rc = http_dispatch_submit(ch->d, &call);
    }
    on_done(slot, r);
}

START_TEST(callback_may_submit)
{
    enum { N = 4 };
    chain ch = {.d = http_dispatch_start(1), .url = srv_url("/ok"), .col = collector_new(N)};
    http_call first = {.method = "GET", .url = ch.url, .timeout_ms = TEST_TIMEOUT_MS, .done = on_chain_step,
                       .arg = &ch};
    ck_assert_int_eq(http_dispatch_submit(ch.d, &first), 0);
    ck_assert_int_eq(collector_wait(ch.col, N, WAIT_MS), N);
    http_dispatch_stop(ch.d);
    assert_each_called_once(ch.col);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(ch.col->slots[i].outcome, DISPATCH_SUCCESS);
        ck_assert_int_eq(ch.col->slots[i].resubmit_rc, 0);
    }
    collector_free(ch.col);
    free(ch.url);
}
END_TEST

/* Several threads submit at once. */
typedef struct submitter {
    http_dispatch *d;
    collector *col;
    int first;
    int count;
    int failures;
} submitter;

static void *submitter_main(void *arg)
{
    submitter *s = arg;
    char *url = srv_url("/ok");
    for (int i = s->first; i < s->first + s->count; i++)
        if (submit_to(s->d, &s->col->slots[i], "POST", url, "{}", 2, NULL, TEST_TIMEOUT_MS) != 0)
            s->failures++;
    free(url);
    return NULL;
}

START_TEST(submit_from_many_threads)
{
    enum { THREADS = 8, PER_THREAD = 50, N = THREADS * PER_THREAD };
    collector *col = collector_new(N);
    http_dispatch *d = http_dispatch_start(16);
    pthread_t threads[THREADS];
    submitter subs[THREADS];
    for (int t = 0; t < THREADS; t++) {
        subs[t] = (submitter){.d = d, .col = col, .first = t * PER_THREAD, .count = PER_THREAD};
        ck_assert_int_eq(pthread_create(&threads[t], NULL, submitter_main, &subs[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
        ck_assert_int_eq(subs[t].failures, 0);
    }
    ck_assert_int_eq(collector_wait(col, N, 60000), N);
    http_dispatch_stop(d);
    assert_each_called_once(col);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(col->slots[i].outcome, DISPATCH_SUCCESS);
    ck_assert_int_le(srv_count(&srv.connections), 16);
    collector_free(col);
}
END_TEST

/* ---- tests: branch URLs ------------------------------------------------ */

static void assert_branch_url(const char *url, const char *gid, const char *want)
{
    char *got = http_dispatch_branch_url(url, gid, "saga", "01", "action");
    ck_assert_ptr_nonnull(got);
    ck_assert_str_eq(got, want);
    free(got);
}

START_TEST(branch_url_without_query)
{
    assert_branch_url("http://svc:8080/api/trans", "g1",
                      "http://svc:8080/api/trans?gid=g1&trans_type=saga&branch_id=01&op=action");
}
END_TEST

START_TEST(branch_url_with_query)
{
    assert_branch_url("http://svc/api?x=1", "g1", "http://svc/api?x=1&gid=g1&trans_type=saga&branch_id=01&op=action");
    assert_branch_url("http://svc/api?", "g1", "http://svc/api?gid=g1&trans_type=saga&branch_id=01&op=action");
    assert_branch_url("http://svc/api?x=1&", "g1", "http://svc/api?x=1&gid=g1&trans_type=saga&branch_id=01&op=action");
}
END_TEST

START_TEST(branch_url_escapes_values)
{
    assert_branch_url("http://svc/a", "a b&c=d/é?#+%-._~",
                      "http://svc/a?gid=a%20b%26c%3Dd%2F%C3%A9%3F%23%2B%25-._~&trans_type=saga&branch_id=01&op=action");
    char *got = http_dispatch_branch_url("http://svc/a", "", "x y", "00", "msg");
    ck_assert_str_eq(got, "http://svc/a?gid=&trans_type=x%20y&branch_id=00&op=msg");
    free(got);
    ck_assert_ptr_null(http_dispatch_branch_url(NULL, "g", "saga", "01", "action"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("http_dispatch");

    test_group pure = {.suite = s, .timeout_s = 60};
    test_add(&pure, outcome_names);
    test_add(&pure, branch_url_without_query);
    test_add(&pure, branch_url_with_query);
    test_add(&pure, branch_url_escapes_values);
    test_add(&pure, start_and_stop_idle);
    test_add(&pure, rejects_invalid_calls);
    test_add(&pure, connection_refused_is_error);
    test_add(&pure, unsupported_scheme_is_error);

    test_group server = {.suite = s, .setup = srv_start, .teardown = srv_stop, .timeout_s = 120};
    test_add_loop(&server, classifies_answer, 0, (int)(sizeof(classify_cases) / sizeof(classify_cases[0])));
    test_add(&server, big_answer_is_truncated_and_classified);
    test_add(&server, timeout_is_error);
    test_add(&server, post_sends_exact_bytes_headers_and_query);
    test_add(&server, post_sends_large_binary_body);
    test_add(&server, post_without_body_sends_empty_body);
    test_add(&server, post_keeps_callers_content_type);
    test_add(&server, get_sends_no_body);
    test_add(&server, caller_may_free_call_after_submit);
    test_add(&server, connections_are_reused);
    test_add(&server, submit_wakes_idle_dispatcher);
    test_add(&server, many_calls_run_concurrently);
    test_add(&server, max_in_flight_queues_the_rest);
    test_add(&server, stop_completes_running_and_queued_calls);
    test_add(&server, callback_may_submit);
    test_add(&server, submit_from_many_threads);

    return run_suite(s);
}
