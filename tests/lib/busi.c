/*
 * busi.c — the scriptable business service of busi.h: a libmicrohttpd server
 * (thread pool) that records each request it receives and answers it by the
 * most specific, newest active rule.
 *
 * Life of a request: the first call of the access handler creates a busi_req
 * (method, path, query fields, headers); later calls append the
 * body; the final call picks the answer, records the call, and either answers
 * at once or — when the rule has a delay — suspends the connection and hands
 * it to the timer thread, which resumes it when the delay is over; the handler
 * then runs once more and answers. The completion callback frees the
 * busi_req (recording it first if it never got that far).
 *
 * Locks: b->mu guards rules and recorded calls; b->timer_mu guards the list
 * of suspended connections. Neither is taken while holding the other.
 */
#include "busi.h"
#include "stub_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
    BUSI_THREADS = 8,
    BUSI_MAX_BODY = 64 * 1024 * 1024, /* larger uploads are cut off (and recorded, status 0) */
};

typedef struct busi_rule_node {
    struct busi_rule_node *next;
    char *path;
    char *gid; /* NULL = any */
    char *op;  /* NULL = any */
    char *body;
    int status;
    int delay_ms;
    int times_left; /* < 0 = forever */
} busi_rule_node;

/* A connection suspended until its rule's delay is over. */
typedef struct busi_delayed {
    struct MHD_Connection *conn;
    long long due_ns; /* CLOCK_MONOTONIC */
} busi_delayed;

struct busi {
    struct MHD_Daemon *daemon;
    char url[64];

    pthread_mutex_t mu;
    pthread_cond_t call_cond; /* broadcast on every recorded call; CLOCK_MONOTONIC */
    busi_rule_node *rules;    /* newest first */
    busi_call *calls;
    size_t ncalls, calls_cap;

    pthread_mutex_t timer_mu;
    pthread_cond_t timer_cond; /* CLOCK_MONOTONIC */
    busi_delayed *delayed;
    size_t ndelayed, delayed_cap;
    bool timer_stop;
    bool timer_running;
    pthread_t timer;
};

typedef enum busi_req_phase {
    BUSI_REQ_RECEIVING, /* headers in, body arriving */
    BUSI_REQ_DELAYED,   /* recorded, connection suspended until the delay is over */
} busi_req_phase;

/* Per-request state, owned by the connection (MHD's *con_cls). */
typedef struct busi_req {
    busi_call call; /* body and headers move into b->calls when recorded */
    size_t body_cap;
    busi_req_phase phase;
    bool recorded;
    int answer_status;
    char *answer_body; /* owned */
} busi_req;

/* ---------- small helpers ---------- */

static long long busi_clock_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static struct timespec busi_timespec(long long ns)
{
    struct timespec ts = {.tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL};
    return ts;
}

/* Copies src (NULL = "") into dst of size n, truncating. */
static void busi_copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src != NULL ? src : "");
}

static char *busi_strdup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static const char *busi_default_body(int status)
{
    switch (status) {
    case 200:
        return "{\"dtm_result\":\"SUCCESS\"}";
    case 409:
        return "{\"dtm_result\":\"FAILURE\"}";
    case 425:
        return "{\"dtm_result\":\"ONGOING\"}";
    default:
        return "{\"message\":\"busi error\"}";
    }
}

static int busi_init_monotonic_cond(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return -1;
    int rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return rc == 0 ? 0 : -1;
}

/* ---------- rules ---------- */

static void busi_rule_free(busi_rule_node *r)
{
    free(r->path);
    free(r->gid);
    free(r->op);
    free(r->body);
    free(r);
}

static void busi_rules_free(busi_rule_node *r)
{
    while (r != NULL) {
        busi_rule_node *next = r->next;
        busi_rule_free(r);
        r = next;
    }
}

static bool busi_rule_matches(const busi_rule_node *r, const char *path, const char *gid,
                              const char *op)
{
    return strcmp(r->path, path) == 0 && (r->gid == NULL || strcmp(r->gid, gid) == 0) &&
           (r->op == NULL || strcmp(r->op, op) == 0);
}

/* gid+op 3 > gid 2 > op 1 > any 0 */
static int busi_rule_rank(const busi_rule_node *r)
{
    return (r->gid != NULL ? 2 : 0) + (r->op != NULL ? 1 : 0);
}

/* The link pointing at the best rule for the request, or NULL. Caller holds b->mu. */
static busi_rule_node **busi_rule_find_locked(busi *b, const char *path, const char *gid,
                                              const char *op)
{
    busi_rule_node **best = NULL;
    int best_rank = -1;
    for (busi_rule_node **link = &b->rules; *link != NULL; link = &(*link)->next) {
        int rank = busi_rule_rank(*link);
        if (rank > best_rank && busi_rule_matches(*link, path, gid, op)) {
            best = link;
            best_rank = rank;
        }
    }
    return best;
}

/* Picks the answer for a request and uses up one of its rule's times. */
static void busi_rule_apply(busi *b, const char *path, const char *gid, const char *op,
                            int *status, char **body, int *delay_ms)
{
    pthread_mutex_lock(&b->mu);
    busi_rule_node **link = busi_rule_find_locked(b, path, gid, op);
    if (link == NULL) {
        *status = 200;
        *body = strdup(busi_default_body(200));
        *delay_ms = 0;
    } else {
        busi_rule_node *r = *link;
        *status = r->status;
        *body = strdup(r->body);
        *delay_ms = r->delay_ms;
        if (r->times_left > 0 && --r->times_left == 0) {
            *link = r->next;
            busi_rule_free(r);
        }
    }
    pthread_mutex_unlock(&b->mu);
}

void busi_rule(busi *b, const char *path, const char *gid, const char *op, int status,
               const char *body, int delay_ms, int times)
{
    if (times == 0)
        return;
    busi_rule_node *r = calloc(1, sizeof(*r));
    if (r == NULL)
        abort();
    r->path = strdup(path);
    r->gid = busi_strdup_or_null(gid);
    r->op = busi_strdup_or_null(op);
    r->body = strdup(body != NULL ? body : busi_default_body(status));
    if (r->path == NULL || r->body == NULL || (gid != NULL && r->gid == NULL) ||
        (op != NULL && r->op == NULL))
        abort();
    r->status = status;
    r->delay_ms = delay_ms > 0 ? delay_ms : 0;
    r->times_left = times < 0 ? -1 : times;
    pthread_mutex_lock(&b->mu);
    r->next = b->rules;
    b->rules = r;
    pthread_mutex_unlock(&b->mu);
}

void busi_clear_rules(busi *b)
{
    pthread_mutex_lock(&b->mu);
    busi_rule_node *rules = b->rules;
    b->rules = NULL;
    pthread_mutex_unlock(&b->mu);
    busi_rules_free(rules);
}

/* ---------- recorded calls ---------- */

static void busi_call_release(busi_call *c)
{
    free(c->body);
    free(c->headers);
    c->body = NULL;
    c->headers = NULL;
}

static bool busi_call_matches(const busi_call *c, const char *path, const char *gid, const char *op)
{
    return (path == NULL || strcmp(c->path, path) == 0) &&
           (gid == NULL || strcmp(c->gid, gid) == 0) && (op == NULL || strcmp(c->op, op) == 0);
}

static int busi_count_locked(busi *b, const char *path, const char *gid, const char *op)
{
    int n = 0;
    for (size_t i = 0; i < b->ncalls; i++)
        n += busi_call_matches(&b->calls[i], path, gid, op);
    return n;
}

/* Stamps req->call with the time and moves it (body and headers included)
 * into the record. */
static void busi_record(busi *b, busi_req *req)
{
    pthread_mutex_lock(&b->mu);
    if (b->ncalls == b->calls_cap) {
        size_t cap = b->calls_cap ? b->calls_cap * 2 : 64;
        busi_call *grown = realloc(b->calls, cap * sizeof(*grown));
        if (grown == NULL)
            abort();
        b->calls = grown;
        b->calls_cap = cap;
    }
    req->call.time_ms = busi_clock_ns(CLOCK_REALTIME) / 1000000LL; /* under mu: ordered */
    b->calls[b->ncalls++] = req->call;
    req->call.body = NULL;
    req->call.headers = NULL;
    req->recorded = true;
    pthread_cond_broadcast(&b->call_cond);
    pthread_mutex_unlock(&b->mu);
}

static int busi_call_copy(busi_call *dst, const busi_call *src)
{
    *dst = *src;
    dst->body = malloc(src->body_len + 1);
    dst->headers = strdup(src->headers);
    if (dst->body == NULL || dst->headers == NULL) {
        busi_call_release(dst);
        return -1;
    }
    memcpy(dst->body, src->body, src->body_len + 1);
    return 0;
}

size_t busi_calls(busi *b, busi_call **out)
{
    *out = NULL;
    pthread_mutex_lock(&b->mu);
    size_t n = b->ncalls;
    busi_call *copy = n ? calloc(n, sizeof(*copy)) : NULL;
    if (n && copy == NULL)
        abort();
    for (size_t i = 0; i < n; i++)
        if (busi_call_copy(&copy[i], &b->calls[i]) != 0)
            abort();
    pthread_mutex_unlock(&b->mu);
    *out = copy;
    return n;
}

void busi_calls_free(busi_call *calls, size_t n)
{
    for (size_t i = 0; i < n; i++)
        busi_call_release(&calls[i]);
    free(calls);
}

int busi_count(busi *b, const char *path, const char *gid, const char *op)
{
    pthread_mutex_lock(&b->mu);
    int n = busi_count_locked(b, path, gid, op);
    pthread_mutex_unlock(&b->mu);
    return n;
}

int busi_wait(busi *b, const char *path, const char *gid, const char *op, int n, int timeout_ms)
{
    struct timespec deadline =
        busi_timespec(busi_clock_ns(CLOCK_MONOTONIC) + (long long)timeout_ms * 1000000LL);
    pthread_mutex_lock(&b->mu);
    int count = busi_count_locked(b, path, gid, op);
    while (count < n) {
        int rc = pthread_cond_timedwait(&b->call_cond, &b->mu, &deadline);
        count = busi_count_locked(b, path, gid, op);
        if (rc == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&b->mu);
    return count;
}

void busi_reset_calls(busi *b)
{
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < b->ncalls; i++)
        busi_call_release(&b->calls[i]);
    b->ncalls = 0;
    pthread_mutex_unlock(&b->mu);
}

/* ---------- delay timer ---------- */

/* Resumes every connection due by now_ns. Caller holds b->timer_mu. */
static void busi_timer_resume_due_locked(busi *b, long long now_ns)
{
    size_t kept = 0;
    for (size_t i = 0; i < b->ndelayed; i++) {
        if (b->delayed[i].due_ns <= now_ns)
            MHD_resume_connection(b->delayed[i].conn);
        else
            b->delayed[kept++] = b->delayed[i];
    }
    b->ndelayed = kept;
}

static long long busi_timer_next_due_locked(const busi *b)
{
    long long next = b->delayed[0].due_ns;
    for (size_t i = 1; i < b->ndelayed; i++)
        if (b->delayed[i].due_ns < next)
            next = b->delayed[i].due_ns;
    return next;
}

static void *busi_timer_main(void *arg)
{
    busi *b = arg;
    pthread_mutex_lock(&b->timer_mu);
    while (!b->timer_stop) {
        busi_timer_resume_due_locked(b, busi_clock_ns(CLOCK_MONOTONIC));
        if (b->ndelayed == 0) {
            pthread_cond_wait(&b->timer_cond, &b->timer_mu);
        } else {
            struct timespec due = busi_timespec(busi_timer_next_due_locked(b));
            pthread_cond_timedwait(&b->timer_cond, &b->timer_mu, &due);
        }
    }
    busi_timer_resume_due_locked(b, LLONG_MAX); /* nothing may stay suspended */
    pthread_mutex_unlock(&b->timer_mu);
    return NULL;
}

/* Suspends conn for delay_ms; false (not suspended) when the service is stopping. */
static bool busi_timer_suspend(busi *b, struct MHD_Connection *conn, int delay_ms)
{
    bool suspended = false;
    pthread_mutex_lock(&b->timer_mu);
    if (!b->timer_stop) {
        if (b->ndelayed == b->delayed_cap) {
            size_t cap = b->delayed_cap ? b->delayed_cap * 2 : 16;
            busi_delayed *grown = realloc(b->delayed, cap * sizeof(*grown));
            if (grown == NULL)
                abort();
            b->delayed = grown;
            b->delayed_cap = cap;
        }
        long long due = busi_clock_ns(CLOCK_MONOTONIC) + (long long)delay_ms * 1000000LL;
        b->delayed[b->ndelayed++] = (busi_delayed){conn, due};
        /* under timer_mu, so the timer cannot resume it before it is suspended */
        MHD_suspend_connection(conn);
        pthread_cond_signal(&b->timer_cond);
        suspended = true;
    }
    pthread_mutex_unlock(&b->timer_mu);
    return suspended;
}

static void busi_timer_stop(busi *b)
{
    if (!b->timer_running)
        return;
    pthread_mutex_lock(&b->timer_mu);
    b->timer_stop = true;
    pthread_cond_signal(&b->timer_cond);
    pthread_mutex_unlock(&b->timer_mu);
    pthread_join(b->timer, NULL);
    b->timer_running = false;
}

/* ---------- requests ---------- */

typedef struct busi_strbuf {
    char *data;
    size_t len, cap;
} busi_strbuf;

static void busi_strbuf_add(busi_strbuf *s, const char *text)
{
    size_t n = strlen(text);
    if (s->len + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 256;
        while (s->len + n + 1 > cap)
            cap *= 2;
        char *grown = realloc(s->data, cap);
        if (grown == NULL)
            abort();
        s->data = grown;
        s->cap = cap;
    }
    memcpy(s->data + s->len, text, n + 1);
    s->len += n;
}

static enum MHD_Result busi_collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                           const char *value)
{
    (void)kind;
    busi_strbuf *s = cls;
    busi_strbuf_add(s, key);
    busi_strbuf_add(s, ": ");
    busi_strbuf_add(s, value != NULL ? value : "");
    busi_strbuf_add(s, "\n");
    return MHD_YES;
}

static char *busi_headers_of(struct MHD_Connection *conn)
{
    busi_strbuf s = {NULL, 0, 0};
    busi_strbuf_add(&s, "");
    MHD_get_connection_values(conn, MHD_HEADER_KIND, busi_collect_header, &s);
    return s.data;
}

static const char *busi_query(struct MHD_Connection *conn, const char *name)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
    return v != NULL ? v : "";
}

static busi_req *busi_req_new(struct MHD_Connection *conn, const char *url, const char *method)
{
    busi_req *req = calloc(1, sizeof(*req));
    if (req == NULL)
        return NULL;
    busi_call *c = &req->call;
    busi_copy(c->method, sizeof(c->method), method);
    busi_copy(c->path, sizeof(c->path), url);
    busi_copy(c->gid, sizeof(c->gid), busi_query(conn, "gid"));
    busi_copy(c->trans_type, sizeof(c->trans_type), busi_query(conn, "trans_type"));
    busi_copy(c->branch_id, sizeof(c->branch_id), busi_query(conn, "branch_id"));
    busi_copy(c->op, sizeof(c->op), busi_query(conn, "op"));
    c->headers = busi_headers_of(conn);
    c->body = calloc(1, 1);
    req->body_cap = 1;
    if (c->body == NULL) {
        free(c->headers);
        free(req);
        return NULL;
    }
    return req;
}

static void busi_req_free(busi_req *req)
{
    busi_call_release(&req->call);
    free(req->answer_body);
    free(req);
}

/* Appends upload data to the body, keeping it NUL-terminated; -1 past the limit. */
static int busi_req_append(busi_req *req, const char *data, size_t n)
{
    busi_call *c = &req->call;
    if (c->body_len + n > BUSI_MAX_BODY)
        return -1;
    if (c->body_len + n + 1 > req->body_cap) {
        size_t cap = req->body_cap * 2;
        while (cap < c->body_len + n + 1)
            cap *= 2;
        char *grown = realloc(c->body, cap);
        if (grown == NULL)
            return -1;
        c->body = grown;
        req->body_cap = cap;
    }
    memcpy(c->body + c->body_len, data, n);
    c->body_len += n;
    c->body[c->body_len] = '\0';
    return 0;
}

/* The whole request is in: chooses the answer and records the call.
 * Returns the delay to apply before answering. */
static int busi_req_decide(busi *b, busi_req *req, struct MHD_Connection *conn, const char *url)
{
    int delay_ms;
    busi_rule_apply(b, url, busi_query(conn, "gid"), busi_query(conn, "op"), &req->answer_status,
                    &req->answer_body, &delay_ms);
    if (req->answer_body == NULL)
        abort();
    req->call.status_sent = req->answer_status;
    busi_record(b, req);
    return delay_ms;
}

static enum MHD_Result busi_req_answer(struct MHD_Connection *conn, busi_req *req)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        strlen(req->answer_body), req->answer_body, MHD_RESPMEM_MUST_COPY);
    if (resp == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)req->answer_status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result busi_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version,
                                   const char *upload_data, size_t *upload_data_size,
                                   void **con_cls)
{
    (void)version;
    busi *b = cls;
    busi_req *req = *con_cls;
    if (req == NULL) {
        req = busi_req_new(conn, url, method);
        *con_cls = req;
        return req != NULL ? MHD_YES : MHD_NO;
    }
    if (*upload_data_size > 0) {
        if (busi_req_append(req, upload_data, *upload_data_size) != 0)
            return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (req->phase == BUSI_REQ_RECEIVING) {
        int delay_ms = busi_req_decide(b, req, conn, url);
        if (delay_ms > 0 && busi_timer_suspend(b, conn, delay_ms)) {
            req->phase = BUSI_REQ_DELAYED;
            return MHD_YES;
        }
    }
    return busi_req_answer(conn, req);
}

static void busi_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    (void)toe;
    busi *b = cls;
    busi_req *req = *con_cls;
    if (req == NULL)
        return;
    if (!req->recorded) {
        req->call.status_sent = 0;
        busi_record(b, req);
    }
    busi_req_free(req);
    *con_cls = NULL;
}

/* ---------- start / stop ---------- */

static void busi_free(busi *b)
{
    busi_rules_free(b->rules);
    busi_calls_free(b->calls, b->ncalls);
    free(b->delayed);
    pthread_cond_destroy(&b->call_cond);
    pthread_cond_destroy(&b->timer_cond);
    pthread_mutex_destroy(&b->mu);
    pthread_mutex_destroy(&b->timer_mu);
    free(b);
}

/* Mutexes and condition variables; all or nothing. */
static int busi_init_sync(busi *b)
{
    if (busi_init_monotonic_cond(&b->call_cond) != 0)
        return -1;
    if (busi_init_monotonic_cond(&b->timer_cond) != 0) {
        pthread_cond_destroy(&b->call_cond);
        return -1;
    }
    pthread_mutex_init(&b->mu, NULL);
    pthread_mutex_init(&b->timer_mu, NULL);
    return 0;
}

busi *busi_start(void)
{
    busi *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    if (busi_init_sync(b) != 0) {
        free(b);
        return NULL;
    }
    if (pthread_create(&b->timer, NULL, busi_timer_main, b) != 0) {
        busi_free(b);
        return NULL;
    }
    b->timer_running = true;
    stub_http_options o = {.threads = BUSI_THREADS, .flags = MHD_ALLOW_SUSPEND_RESUME,
                           .completed = busi_completed, .completed_cls = b};
    b->daemon = stub_http_start(busi_handle, b, &o, NULL, b->url, sizeof(b->url));
    if (b->daemon == NULL) {
        busi_stop(b);
        return NULL;
    }
    return b;
}

const char *busi_url(const busi *b)
{
    return b->url;
}

void busi_stop(busi *b)
{
    if (b == NULL)
        return;
    busi_timer_stop(b); /* resumes every delayed connection: MHD must not stop with any suspended */
    if (b->daemon != NULL)
        MHD_stop_daemon(b->daemon);
    busi_free(b);
}
