/*
 * test_fault_kill9.c — dtmq's reliability suite, part one: an invariant
 * workload under repeated kill -9 (see tests/fault/README.md).
 *
 * A bank service runs inside the test process (libmicrohttpd thread pool on
 * 127.0.0.1): ACCOUNTS balances in memory and the endpoints TransOut,
 * TransOutRevert, TransIn, TransInRevert, Deposit and QueryPrepared. Every
 * branch handler applies DTM's barrier rules on an in-memory table keyed by
 * (gid, branch_id, op): a duplicate has no effect, a compensation whose
 * action never ran is a null compensation, an action arriving after its
 * compensation is skipped as hanging. TransIn answers 409 for a share of the
 * gids (business failure: the saga compensates); every handler may answer
 * 500 or 425 at random (before or after applying its effect) and may stall
 * longer than dtmq's RequestTimeout, so retries, duplicates and hanging
 * requests happen.
 *
 * The workload (sagas TransOut→TransIn, and 2-phase msgs TransOut+Deposit
 * either submitted or left to query-back) is submitted while a killer thread
 * kill -9s dtmq at random moments and restarts it on the same store. At the
 * end every invariant is checked, a history of client-visible events is
 * verified, and one line of figures is printed on stderr.
 *
 * Knobs (environment): DTMQ_FAULT_TRANSACTIONS (150), DTMQ_FAULT_KILLS (7),
 * DTMQ_FAULT_FAIL_PCT (20: TransIn business failures), DTMQ_FAULT_ERR_PCT
 * (10: random 500/425), DTMQ_FAULT_DELAY_PCT (2: calls stalled
 * DTMQ_FAULT_DELAY_MS, 5000), DTMQ_FAULT_FINAL_WAIT_S (150), DTMQ_FAULT_SEED
 * (random).
 */
#include <check.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../lib/testlib.h"

enum { ACCOUNTS = 10, INITIAL_BALANCE = 1000, POOL_THREADS = 32, MAX_NOTES = 8 };

/* ---- small helpers ------------------------------------------------------ */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int env_int(const char *name, int def)
{
    const char *v = getenv(name);
    return v && v[0] ? atoi(v) : def;
}

static pthread_mutex_t rng_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t rng_state;

static unsigned rnd(unsigned n) /* uniform in [0, n) */
{
    pthread_mutex_lock(&rng_mu);
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    uint64_t v = rng_state;
    pthread_mutex_unlock(&rng_mu);
    return n ? (unsigned)(v % n) : 0;
}

/* ---- the plan of every transaction -------------------------------------- */

enum { KIND_SAGA, KIND_MSG };
enum { BR_OUT, BR_IN }; /* branch 01, 02 */
enum { OP_ACTION, OP_COMP };
enum { BAR_NONE, BAR_DONE, BAR_BY_COMP }; /* barrier row: absent, by its op, by a null compensation */

typedef struct plan {
    char gid[64];
    int kind;
    int from, to, amount;
    int in_fails;    /* saga: TransIn answers 409 (business failure) */
    int msg_commit;  /* msg: QueryPrepared answers 200 (else 409) */
    int msg_submit;  /* msg: the client submits after prepare (only when committed) */
    /* client side */
    int acked;       /* submit (saga) / prepare (msg) acknowledged */
    int submit_acked;
    long long ack_ms;
    char final_status[16];
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
    int branch, op, outcome, status; /* EV_CALL */
    int is_deposit;
    char st[16]; /* EV_POLL: the status seen */
} event;

typedef struct world {
    int n_tx, kills_wanted, fail_pct, err_pct, delay_pct, delay_ms;
    plan *plans;
    char run_id[16];
    /* service */
    struct MHD_Daemon *daemon;
    int port;
    char url[64];
    pthread_mutex_t svc_mu;
    long long balance[ACCOUNTS];
    long applied, duplicates, null_comp, hanging, busi_fail, injected, action_after_comp;
    /* history */
    pthread_mutex_t ev_mu;
    event *ev;
    size_t n_ev, cap_ev;
    long long seq;
    /* dtmq */
    pthread_mutex_t d_mu;
    dtmq_proc dtmq;
    int up;
    char store[512];
    int kills;
    int restart_fail;
    /* phases */
    volatile int stop_poll;
    int next_tx;
    pthread_mutex_t next_mu;
    long long span_ms, t0;
    char (*seen)[16]; /* the latest status the poller saw per transaction, under ev_mu */
    long long poll_cost_ms;
} world;

static world W;

static void ev_add(const event *e)
{
    pthread_mutex_lock(&W.ev_mu);
    if (W.n_ev == W.cap_ev) {
        W.cap_ev = W.cap_ev ? W.cap_ev * 2 : 4096;
        W.ev = realloc(W.ev, W.cap_ev * sizeof(event));
        if (W.ev == NULL)
            abort();
    }
    W.ev[W.n_ev] = *e;
    W.ev[W.n_ev].seq = W.seq++;
    W.ev[W.n_ev].ms = now_ms();
    W.n_ev++;
    pthread_mutex_unlock(&W.ev_mu);
}

/* ---- the bank service --------------------------------------------------- */

static int idx_of(const char *gid)
{
    const char *dash = gid ? strrchr(gid, '-') : NULL;
    if (dash == NULL)
        return -1;
    int i = atoi(dash + 1);
    if (i < 0 || i >= W.n_tx || strcmp(W.plans[i].gid, gid) != 0)
        return -1;
    return i;
}

/* The balance change of op on branch of p (the service's business). */
static void apply_effect(plan *p, int branch, int op)
{
    int sign = op == OP_ACTION ? 1 : -1;
    if (branch == BR_OUT)
        W.balance[p->from] -= sign * p->amount;
    else
        W.balance[p->to] += sign * p->amount;
    p->effects[branch][op]++;
    W.applied++;
}

static int handle_branch(const char *path, const char *gid, const char *branch_id,
                         const char *op_s)
{
    int i = idx_of(gid);
    if (i < 0)
        return 400;
    plan *p = &W.plans[i];
    event e = {.type = EV_CALL, .idx = i};
    if (strcmp(path, "/api/QueryPrepared") == 0) {
        e.outcome = OUT_QUERY;
        e.branch = -1;
        unsigned r = rnd(100);
        e.status = (int)r < W.err_pct ? (r % 2 ? 500 : 425) : p->msg_commit ? 200 : 409;
        ev_add(&e);
        return e.status;
    }
    int branch = strcmp(branch_id, "01") == 0 ? BR_OUT : strcmp(branch_id, "02") == 0 ? BR_IN : -1;
    int op = strcmp(op_s, "action") == 0 ? OP_ACTION : strcmp(op_s, "compensate") == 0 ? OP_COMP : -1;
    if (branch < 0 || op < 0)
        return 400;
    e.branch = branch;
    e.op = op;
    e.is_deposit = strcmp(path, "/api/Deposit") == 0;
    /* arrival: recorded before any stall, in the order calls arrive */
    event arrival = e;
    arrival.outcome = -1;
    ev_add(&arrival);

    unsigned r = rnd(100);
    int err_before = 0, ongoing = 0, err_after = 0;
    if ((int)r < W.err_pct) {
        unsigned m = rnd(4);
        err_before = m < 2;
        ongoing = m == 2;
        err_after = m == 3;
    }
    if ((int)rnd(100) < W.delay_pct)
        sleep_ms(W.delay_ms); /* longer than RequestTimeout: dtmq gives up and retries */

    int status = 200;
    pthread_mutex_lock(&W.svc_mu);
    p->calls[branch][op]++;
    if (err_before || ongoing) {
        W.injected++;
        e.outcome = ongoing ? OUT_ONGOING : OUT_ERR_BEFORE;
        status = ongoing ? 425 : 500;
    } else if (op == OP_COMP) {
        if (p->barrier[branch][OP_ACTION] == BAR_NONE) { /* the action never ran */
            p->barrier[branch][OP_ACTION] = BAR_BY_COMP;
            p->barrier[branch][OP_COMP] = BAR_DONE;
            W.null_comp++;
            e.outcome = OUT_NULL_COMP;
        } else if (p->barrier[branch][OP_COMP] != BAR_NONE) {
            W.duplicates++;
            e.outcome = OUT_DUPLICATE;
        } else {
            p->barrier[branch][OP_COMP] = BAR_DONE;
            apply_effect(p, branch, OP_COMP);
            e.outcome = OUT_APPLIED;
        }
    } else {
        if (p->barrier[branch][OP_ACTION] == BAR_BY_COMP) {
            W.hanging++;
            e.outcome = OUT_HANGING;
        } else if (p->barrier[branch][OP_ACTION] == BAR_DONE) {
            W.duplicates++;
            e.outcome = OUT_DUPLICATE;
        } else if (p->kind == KIND_SAGA && branch == BR_IN && p->in_fails) {
            W.busi_fail++; /* the local transaction rolls back: no barrier row */
            e.outcome = OUT_BUSI_FAIL;
            status = 409;
        } else {
            if (p->barrier[branch][OP_COMP] != BAR_NONE)
                W.action_after_comp++; /* impossible with a correct barrier */
            p->barrier[branch][OP_ACTION] = BAR_DONE;
            apply_effect(p, branch, OP_ACTION);
            e.outcome = OUT_APPLIED;
        }
    }
    if (err_after && status == 200) { /* effect committed, answer lost */
        W.injected++;
        e.outcome = OUT_ERR_AFTER;
        status = 500;
    }
    pthread_mutex_unlock(&W.svc_mu);
    e.status = status;
    ev_add(&e);
    return status;
}

static enum MHD_Result svc_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    static int marker;
    (void)cls;
    (void)method;
    (void)version;
    (void)upload_data;
    if (*con_cls == NULL) {
        *con_cls = &marker;
        return MHD_YES;
    }
    if (*upload_data_size > 0) { /* the amount comes from the plan; the body is not needed */
        *upload_data_size = 0;
        return MHD_YES;
    }
    const char *gid = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "gid");
    const char *bid = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "branch_id");
    const char *op = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "op");
    int status = handle_branch(url, gid, bid ? bid : "", op ? op : "");
    const char *body = status == 200   ? "{\"dtm_result\":\"SUCCESS\"}"
                       : status == 409 ? "{\"dtm_result\":\"FAILURE\"}"
                       : status == 425 ? "{\"dtm_result\":\"ONGOING\"}"
                                       : "{\"message\":\"injected error\"}";
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static void svc_start(void)
{
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    W.daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
                                svc_handle, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)POOL_THREADS,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)30, MHD_OPTION_END);
    ck_assert_msg(W.daemon != NULL, "bank service did not start");
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(W.daemon, MHD_DAEMON_INFO_BIND_PORT);
    ck_assert_msg(info != NULL && info->port != 0, "bank service has no port");
    W.port = info->port;
    snprintf(W.url, sizeof(W.url), "http://127.0.0.1:%d", W.port);
}

/* ---- talking to dtmq (whichever incarnation is up) ---------------------- */

/* HTTP to the current dtmq; -1 when it is down or the call failed in transport. */
static int dtmq_http(const char *method, const char *path, const char *body, char **resp)
{
    char url[1024];
    *resp = NULL;
    pthread_mutex_lock(&W.d_mu);
    int up = W.up;
    snprintf(url, sizeof(url), "%s%s", W.dtmq.base_url, path);
    pthread_mutex_unlock(&W.d_mu);
    if (!up)
        return -1;
    return http_do(method, url, body, resp);
}

/* The transaction (status and branches) from /query; NULL when not reachable. */
static json_t *query_gid(const char *gid, int *exists)
{
    char path[256], *resp;
    snprintf(path, sizeof(path), "/api/dtmsvr/query?gid=%s", gid);
    int st = dtmq_http("GET", path, NULL, &resp);
    json_t *j = st == 200 ? json_loads(resp ? resp : "", 0, NULL) : NULL;
    free(resp);
    if (j && exists)
        *exists = json_is_object(json_object_get(j, "transaction"));
    return j;
}

/* POSTs until acknowledged: 200, or 409 for a gid the store already has (an
 * earlier attempt was persisted and maybe finished). 1 acknowledged, 0 not
 * (gave up after deadline_ms or a definite refusal). */
static int post_until_acked(const char *route, const char *gid, const char *body,
                            long long deadline_ms)
{
    char path[128];
    snprintf(path, sizeof(path), "/api/dtmsvr/%s", route);
    while (now_ms() < deadline_ms) {
        char *resp;
        int st = dtmq_http("POST", path, body, &resp);
        free(resp);
        if (st == 200)
            return 1;
        if (st == 409) {
            int exists = 0;
            json_t *j = query_gid(gid, &exists);
            int known = j != NULL;
            json_decref(j);
            if (known)
                return exists;
        } else if (st >= 400 && st < 500) {
            fprintf(stderr, "fault: %s %s refused with %d\n", route, gid, st);
            return 0;
        }
        sleep_ms(100); /* down, restarting, or a store error: try again */
    }
    return 0;
}

static char *tx_body(const plan *p)
{
    char out[128], in[128], comp_out[128], comp_in[128], qp[128], pay[64];
    snprintf(out, sizeof(out), "%s/api/TransOut", W.url);
    snprintf(comp_out, sizeof(comp_out), "%s/api/TransOutRevert", W.url);
    snprintf(pay, sizeof(pay), "{\"amount\":%d}", p->amount);
    json_t *body;
    if (p->kind == KIND_SAGA) {
        snprintf(in, sizeof(in), "%s/api/TransIn", W.url);
        snprintf(comp_in, sizeof(comp_in), "%s/api/TransInRevert", W.url);
        body = json_pack("{s:s, s:s, s:[{s:s, s:s}, {s:s, s:s}], s:[s, s]}", "gid", p->gid,
                         "trans_type", "saga", "steps", "action", out, "compensate", comp_out,
                         "action", in, "compensate", comp_in, "payloads", pay, pay);
    } else {
        snprintf(in, sizeof(in), "%s/api/Deposit", W.url);
        snprintf(qp, sizeof(qp), "%s/api/QueryPrepared", W.url);
        body = json_pack("{s:s, s:s, s:s, s:[{s:s}, {s:s}], s:[s, s]}", "gid", p->gid,
                         "trans_type", "msg", "query_prepared", qp, "steps", "action", out,
                         "action", in, "payloads", pay, pay);
    }
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return text;
}

static void submit_one(plan *p)
{
    char *body = tx_body(p);
    long long deadline = now_ms() + 45000;
    int acked = post_until_acked(p->kind == KIND_SAGA ? "submit" : "prepare", p->gid, body, deadline);
    if (acked && p->kind == KIND_MSG && p->msg_submit)
        p->submit_acked = post_until_acked("submit", p->gid, body, deadline);
    free(body);
    if (acked) {
        p->ack_ms = now_ms();
        p->acked = 1;
        event e = {.type = EV_ACK, .idx = (int)(p - W.plans)};
        ev_add(&e);
    }
}

static void *submitter(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&W.next_mu);
        int i = W.next_tx < W.n_tx ? W.next_tx++ : -1;
        pthread_mutex_unlock(&W.next_mu);
        if (i < 0)
            return NULL;
        long long due = W.t0 + W.span_ms * i / W.n_tx; /* spread over the kill window */
        long long wait = due - now_ms();
        if (wait > 0)
            sleep_ms(wait);
        submit_one(&W.plans[i]);
    }
}

/* ---- the killer --------------------------------------------------------- */

static void *killer(void *arg)
{
    (void)arg;
    for (int k = 0; k < W.kills_wanted; k++) {
        sleep_ms(500 + rnd(1501));
        pthread_mutex_lock(&W.d_mu);
        W.up = 0;
        dtmq_proc old = W.dtmq;
        pthread_mutex_unlock(&W.d_mu);
        int rc = dtmq_stop(&old, SIGKILL, 10);
        if (rc != 128 + SIGKILL)
            fprintf(stderr, "fault: kill -9 of dtmq pid %d gave %d\n", (int)old.pid, rc);
        W.kills++;
        const char *args[] = {"--store", W.store, "--kafka", "off", "--retry-interval", "1",
                              "--retry-interval-max", "4", "--trans-cron-interval", "1",
                              "--timeout-to-fail", "3", "--request-timeout", "2",
                              "--log-level", "debug", NULL};
        dtmq_proc next;
        int exit_status = 0;
        if (dtmq_start(&next, args, NULL, &exit_status) != 0) { /* same flags as e2e_start */
            fprintf(stderr, "fault: dtmq did not restart (exit %d), log %s\n", exit_status,
                    next.log_path);
            W.restart_fail++;
            if (dtmq_start(&next, args, NULL, &exit_status) != 0) {
                W.restart_fail++;
                return NULL;
            }
        }
        pthread_mutex_lock(&W.d_mu);
        W.dtmq = next;
        W.up = 1;
        pthread_mutex_unlock(&W.d_mu);
        event e = {.type = EV_RESTART, .idx = -1};
        ev_add(&e);
    }
    return NULL;
}

/* ---- the poller: every status a client can see --------------------------- */

static void poll_once(void)
{
    char position[256] = "";
    for (int page = 0; page < 50; page++) {
        char path[512], *resp;
        snprintf(path, sizeof(path), "/api/dtmsvr/all?limit=1000%s%s", position[0] ? "&position=" : "",
                 position);
        int st = dtmq_http("GET", path, NULL, &resp);
        json_t *j = st == 200 ? json_loads(resp ? resp : "", 0, NULL) : NULL;
        free(resp);
        if (j == NULL)
            return;
        json_t *list = json_object_get(j, "transactions"), *t;
        size_t k;
        json_array_foreach(list, k, t)
        {
            int i = idx_of(json_string_value(json_object_get(t, "gid")));
            const char *s = json_string_value(json_object_get(t, "status"));
            if (i < 0 || s == NULL)
                continue;
            event e = {.type = EV_POLL, .idx = i};
            snprintf(e.st, sizeof(e.st), "%s", s);
            ev_add(&e);
            pthread_mutex_lock(&W.ev_mu);
            snprintf(W.seen[i], 16, "%s", s);
            pthread_mutex_unlock(&W.ev_mu);
        }
        const char *next = json_string_value(json_object_get(j, "next_position"));
        int more = next && next[0];
        if (more)
            snprintf(position, sizeof(position), "%s", next);
        json_decref(j);
        if (!more)
            return;
    }
}

static void *poller(void *arg)
{
    (void)arg;
    while (!W.stop_poll) {
        long long t = now_ms();
        poll_once();
        /* at most a quarter of the time: observing must not throttle the store
         * (a page of /all costs ~200 ms on FerretDB with a busy CPU) */
        long long cost = now_ms() - t;
        W.poll_cost_ms = cost > W.poll_cost_ms ? cost : W.poll_cost_ms;
        sleep_ms(cost * 3 > 300 ? cost * 3 : 300);
    }
    return NULL;
}

/* ---- checks ------------------------------------------------------------- */

typedef struct verdict {
    const char *name;
    int count;
    char notes[MAX_NOTES][320];
} verdict;

enum { V_SUM, V_FINAL, V_SAGA_EFFECT, V_MSG_EFFECT, V_HANGING, V_BRANCHES, V_ONE_FINAL,
       V_ACTION_AFTER_COMP, V_DEPOSIT_AFTER_FAIL, V_COUNT };

static verdict V[V_COUNT] = {
    {"sum of balances unchanged", 0, {{0}}},
    {"every acknowledged transaction final", 0, {{0}}},
    {"saga succeed: both effects once; failed: net zero", 0, {{0}}},
    {"msg: committed delivered exactly once, dropped never", 0, {{0}}},
    {"no action applied after its compensation (service counters)", 0, {{0}}},
    {"final status matches the branch outcomes in /query", 0, {{0}}},
    {"history: exactly one final state per transaction", 0, {{0}}},
    {"history: no saga action call after its first compensation call", 0, {{0}}},
    {"history: no Deposit call after the msg was seen failed", 0, {{0}}},
};

static void violation(int v, const char *fmt, ...)
{
    if (V[v].count < MAX_NOTES) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(V[v].notes[V[v].count], sizeof(V[v].notes[0]), fmt, ap);
        va_end(ap);
    }
    V[v].count++;
}

static int is_final(const char *s)
{
    return strcmp(s, "succeed") == 0 || strcmp(s, "failed") == 0;
}

/* Branch rows of a /query answer: status of (branch_id, op), "" when absent. */
static const char *branch_status(json_t *q, const char *bid, const char *op)
{
    json_t *b;
    size_t k;
    json_array_foreach(json_object_get(q, "branches"), k, b)
    {
        const char *id = json_string_value(json_object_get(b, "branch_id"));
        const char *o = json_string_value(json_object_get(b, "op"));
        if (id && o && strcmp(id, bid) == 0 && strcmp(o, op) == 0) {
            const char *s = json_string_value(json_object_get(b, "status"));
            return s ? s : "";
        }
    }
    return "";
}

static void check_final_state(plan *p, json_t *q)
{
    const char *st = p->final_status;
    const char *bids[2] = {"01", "02"};
    if (p->kind == KIND_SAGA) {
        if (strcmp(st, "succeed") == 0) {
            for (int b = 0; b < 2; b++)
                if (p->effects[b][OP_ACTION] != 1 || p->effects[b][OP_COMP] != 0)
                    violation(V_SAGA_EFFECT, "%s succeed but branch %s effects action=%d compensate=%d",
                              p->gid, bids[b], p->effects[b][OP_ACTION], p->effects[b][OP_COMP]);
            if (p->in_fails)
                violation(V_SAGA_EFFECT, "%s succeed although TransIn answered 409", p->gid);
            for (int b = 0; b < 2; b++)
                if (strcmp(branch_status(q, bids[b], "action"), "succeed") != 0)
                    violation(V_BRANCHES, "%s succeed but branch %s action is '%s'", p->gid, bids[b],
                              branch_status(q, bids[b], "action"));
        } else if (strcmp(st, "failed") == 0) {
            for (int b = 0; b < 2; b++) {
                if (p->effects[b][OP_ACTION] != p->effects[b][OP_COMP] || p->effects[b][OP_ACTION] > 1)
                    violation(V_SAGA_EFFECT, "%s failed but branch %s effects action=%d compensate=%d",
                              p->gid, bids[b], p->effects[b][OP_ACTION], p->effects[b][OP_COMP]);
                const char *a = branch_status(q, bids[b], "action");
                const char *c = branch_status(q, bids[b], "compensate");
                if (strcmp(a, "succeed") == 0 && strcmp(c, "succeed") != 0)
                    violation(V_BRANCHES, "%s failed, branch %s action succeed but compensate '%s'",
                              p->gid, bids[b], c);
            }
        }
    } else {
        if (strcmp(st, "succeed") == 0) {
            if (!p->msg_commit)
                violation(V_MSG_EFFECT, "%s succeed although QueryPrepared answers 409", p->gid);
            for (int b = 0; b < 2; b++) {
                if (p->effects[b][OP_ACTION] != 1)
                    violation(V_MSG_EFFECT, "%s succeed but branch %s applied %d times", p->gid,
                              bids[b], p->effects[b][OP_ACTION]);
                if (strcmp(branch_status(q, bids[b], "action"), "succeed") != 0)
                    violation(V_BRANCHES, "%s succeed but branch %s is '%s'", p->gid, bids[b],
                              branch_status(q, bids[b], "action"));
            }
        } else if (strcmp(st, "failed") == 0) {
            if (p->msg_commit)
                violation(V_MSG_EFFECT, "%s failed although it was committed (submit acked=%d)",
                          p->gid, p->submit_acked);
            for (int b = 0; b < 2; b++) {
                if (p->calls[b][OP_ACTION] != 0 || p->effects[b][OP_ACTION] != 0)
                    violation(V_MSG_EFFECT, "%s dropped but branch %s called %d times, applied %d",
                              p->gid, bids[b], p->calls[b][OP_ACTION], p->effects[b][OP_ACTION]);
                if (strcmp(branch_status(q, bids[b], "action"), "succeed") == 0)
                    violation(V_BRANCHES, "%s failed but branch %s is succeed", p->gid, bids[b]);
            }
        }
    }
}

/* The history checker: the event log in order. */
static void check_history(void)
{
    int n = W.n_tx;
    char (*first_final)[16] = calloc((size_t)n, 16);
    long long *first_comp = calloc((size_t)n, sizeof(long long));
    long long *failed_seen = calloc((size_t)n, sizeof(long long));
    for (int i = 0; i < n; i++)
        first_comp[i] = failed_seen[i] = -1;
    for (size_t k = 0; k < W.n_ev; k++) {
        const event *e = &W.ev[k];
        if (e->idx < 0)
            continue;
        plan *p = &W.plans[e->idx];
        if (e->type == EV_POLL) {
            if (first_final[e->idx][0] && strcmp(first_final[e->idx], e->st) != 0)
                violation(V_ONE_FINAL, "%s seen '%s' after it was seen final '%s'", p->gid, e->st,
                          first_final[e->idx]);
            if (!first_final[e->idx][0] && is_final(e->st))
                snprintf(first_final[e->idx], 16, "%s", e->st);
            if (strcmp(e->st, "failed") == 0 && failed_seen[e->idx] < 0)
                failed_seen[e->idx] = e->seq;
        } else if (e->type == EV_CALL && e->outcome == -1 && e->branch >= 0) { /* arrival */
            if (p->kind == KIND_SAGA) {
                if (e->op == OP_COMP && first_comp[e->idx] < 0)
                    first_comp[e->idx] = e->seq;
                if (e->op == OP_ACTION && first_comp[e->idx] >= 0)
                    violation(V_ACTION_AFTER_COMP,
                              "%s: branch %02d action called (event %lld) after compensation "
                              "started (event %lld)",
                              p->gid, e->branch + 1, e->seq, first_comp[e->idx]);
            } else if (e->is_deposit && failed_seen[e->idx] >= 0) {
                violation(V_DEPOSIT_AFTER_FAIL, "%s: Deposit called (event %lld) after the msg was seen failed (event %lld)",
                          p->gid, e->seq, failed_seen[e->idx]);
            }
        }
    }
    for (int i = 0; i < n; i++) {
        plan *p = &W.plans[i];
        if (p->acked && p->final_status[0] && first_final[i][0] &&
            strcmp(first_final[i], p->final_status) != 0)
            violation(V_ONE_FINAL, "%s first seen final '%s', ends '%s'", p->gid, first_final[i],
                      p->final_status);
    }
    free(first_final);
    free(first_comp);
    free(failed_seen);
}

/* Recovery: from each restart (dtmq answering) to the next branch call answered 200. */
static long long max_recovery_ms(int *unrecovered)
{
    long long worst = 0;
    *unrecovered = 0;
    for (size_t k = 0; k < W.n_ev; k++) {
        if (W.ev[k].type != EV_RESTART)
            continue;
        size_t m = k + 1;
        while (m < W.n_ev && !(W.ev[m].type == EV_CALL && W.ev[m].outcome >= 0 && W.ev[m].status == 200))
            m++;
        if (m == W.n_ev) {
            (*unrecovered)++;
            continue;
        }
        long long d = W.ev[m].ms - W.ev[k].ms;
        if (d > worst)
            worst = d;
    }
    return worst;
}

/* ---- the test ----------------------------------------------------------- */

START_TEST(invariants_hold_under_repeated_kill9)
{
    memset(&W, 0, sizeof(W));
    pthread_mutex_init(&W.svc_mu, NULL);
    pthread_mutex_init(&W.ev_mu, NULL);
    pthread_mutex_init(&W.d_mu, NULL);
    pthread_mutex_init(&W.next_mu, NULL);
    W.n_tx = env_int("DTMQ_FAULT_TRANSACTIONS", 150);
    W.kills_wanted = env_int("DTMQ_FAULT_KILLS", 7);
    W.fail_pct = env_int("DTMQ_FAULT_FAIL_PCT", 20);
    W.err_pct = env_int("DTMQ_FAULT_ERR_PCT", 10);
    W.delay_pct = env_int("DTMQ_FAULT_DELAY_PCT", 2);
    W.delay_ms = env_int("DTMQ_FAULT_DELAY_MS", 5000);
    unsigned seed = (unsigned)env_int("DTMQ_FAULT_SEED", 0);
    if (seed == 0)
        seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    rng_state = 0x9E3779B97F4A7C15ULL ^ seed;
    const char *kind = getenv("DTMQ_TEST_STORE_KIND");
    kind = kind && kind[0] ? kind : "sqlite";
    fprintf(stderr, "fault[kill9/%s]: seed=%u transactions=%d kills=%d fail_pct=%d err_pct=%d "
                    "delay_pct=%d\n",
            kind, seed, W.n_tx, W.kills_wanted, W.fail_pct, W.err_pct, W.delay_pct);

    /* the plan */
    e2e_gid(W.run_id, sizeof(W.run_id), "fk");
    W.plans = calloc((size_t)W.n_tx, sizeof(plan));
    W.seen = calloc((size_t)W.n_tx, 16);
    long long sum0 = 0;
    for (int a = 0; a < ACCOUNTS; a++)
        sum0 += W.balance[a] = INITIAL_BALANCE;
    for (int i = 0; i < W.n_tx; i++) {
        plan *p = &W.plans[i];
        p->kind = rnd(3) == 0 ? KIND_MSG : KIND_SAGA;
        snprintf(p->gid, sizeof(p->gid), "%s-%s-%d", W.run_id, p->kind == KIND_SAGA ? "saga" : "msg", i);
        p->from = (int)rnd(ACCOUNTS);
        p->to = (p->from + 1 + (int)rnd(ACCOUNTS - 1)) % ACCOUNTS;
        p->amount = 1 + (int)rnd(100);
        p->in_fails = p->kind == KIND_SAGA && (int)rnd(100) < W.fail_pct;
        if (p->kind == KIND_MSG) {
            unsigned m = rnd(3); /* submitted / left to query-back: committed / dropped */
            p->msg_commit = m != 2;
            p->msg_submit = m == 0;
        }
    }

    svc_start();
    test_store_uri(W.store, sizeof(W.store));
    e2e_start(&W.dtmq, W.store, NULL);
    W.up = 1;

    /* the workload under the killer */
    W.t0 = now_ms();
    W.span_ms = (long long)W.kills_wanted * 2000 + 2000;
    pthread_t subs[4], kt, pt;
    pthread_create(&pt, NULL, poller, NULL);
    pthread_create(&kt, NULL, killer, NULL);
    for (int t = 0; t < 4; t++)
        pthread_create(&subs[t], NULL, submitter, NULL);
    for (int t = 0; t < 4; t++)
        pthread_join(subs[t], NULL);
    pthread_join(kt, NULL);
    long long workload_ms = now_ms() - W.t0;
    ck_assert_msg(W.restart_fail == 0, "dtmq did not restart on the same store %d time(s)",
                  W.restart_fail);

    /* wait (bounded) until every acknowledged transaction is final */
    long long wait0 = now_ms(), wait_deadline = wait0 + 1000LL * env_int("DTMQ_FAULT_FINAL_WAIT_S", 150);
    int acked = 0, pending;
    for (int i = 0; i < W.n_tx; i++)
        acked += W.plans[i].acked;
    do { /* from the poller's observations: no extra load on dtmq */
        pending = 0;
        pthread_mutex_lock(&W.ev_mu);
        for (int i = 0; i < W.n_tx; i++) {
            plan *p = &W.plans[i];
            if (is_final(W.seen[i]))
                snprintf(p->final_status, sizeof(p->final_status), "%s", W.seen[i]);
            else if (p->acked || W.seen[i][0])
                pending++;
        }
        pthread_mutex_unlock(&W.ev_mu);
        if (pending)
            sleep_ms(500);
    } while (pending && now_ms() < wait_deadline);
    long long final_wait_ms = now_ms() - wait0;
    sleep_ms(1500); /* let late (stalled) calls and a few more polls land */
    W.stop_poll = 1;
    pthread_join(pt, NULL);
    poll_once();

    /* the final state of every gid, with its branches */
    int succeed = 0, failed = 0;
    for (int i = 0; i < W.n_tx; i++) {
        plan *p = &W.plans[i];
        int exists = 0;
        json_t *q = query_gid(p->gid, &exists);
        const char *s = json_string_value(json_object_get(json_object_get(q, "transaction"), "status"));
        if (p->final_status[0] && s && strcmp(s, p->final_status) != 0)
            violation(V_ONE_FINAL, "%s was final '%s', now '%s'", p->gid, p->final_status, s);
        if (s)
            snprintf(p->final_status, sizeof(p->final_status), "%s", s);
        if (p->acked && !is_final(p->final_status))
            violation(V_FINAL, "%s (%s, acked) still '%s' after %lld ms", p->gid,
                      p->kind == KIND_SAGA ? "saga" : "msg", p->final_status, final_wait_ms);
        if (!p->acked && s && !is_final(s))
            violation(V_FINAL, "%s (not acked but stored) still '%s'", p->gid, s);
        succeed += strcmp(p->final_status, "succeed") == 0;
        failed += strcmp(p->final_status, "failed") == 0;
        pthread_mutex_lock(&W.svc_mu);
        check_final_state(p, q);
        /* a gid the store never saw must have had no effect either */
        if (!s)
            for (int b = 0; b < 2; b++)
                for (int op = 0; op < 2; op++)
                    if (p->effects[b][op])
                        violation(V_SAGA_EFFECT, "%s unknown to dtmq but has effects", p->gid);
        pthread_mutex_unlock(&W.svc_mu);
        json_decref(q);
    }
    e2e_stop(&W.dtmq);
    MHD_stop_daemon(W.daemon);

    long long sum = 0;
    for (int a = 0; a < ACCOUNTS; a++)
        sum += W.balance[a];
    if (sum != sum0)
        violation(V_SUM, "sum of balances %lld, was %lld", sum, sum0);
    if (W.action_after_comp)
        violation(V_HANGING, "%ld action effect(s) applied after their compensation",
                  W.action_after_comp);
    check_history();
    int unrecovered = 0;
    long long recovery = max_recovery_ms(&unrecovered);

    int violations = 0;
    for (int v = 0; v < V_COUNT; v++)
        violations += V[v].count;
    for (int v = 0; v < V_COUNT; v++)
        for (int k = 0; k < V[v].count && k < MAX_NOTES; k++)
            fprintf(stderr, "fault: VIOLATION [%s] %s\n", V[v].name, V[v].notes[k]);
    fprintf(stderr,
            "fault[kill9/%s]: transactions=%d acked=%d succeed=%d failed=%d kills=%d "
            "violations=%d effects=%ld duplicates_absorbed=%ld null_comp=%ld hanging=%ld "
            "busi_fail=%ld injected_errors=%ld max_recovery_ms=%lld unrecovered_restarts=%d "
            "workload_ms=%lld final_wait_ms=%lld max_poll_ms=%lld events=%zu\n",
            kind, W.n_tx, acked, succeed, failed, W.kills, violations, W.applied, W.duplicates,
            W.null_comp, W.hanging, W.busi_fail, W.injected, recovery, unrecovered, workload_ms,
            final_wait_ms, W.poll_cost_ms, W.n_ev);

    for (int v = 0; v < V_COUNT; v++)
        ck_assert_msg(V[v].count == 0, "invariant '%s' violated %d time(s); first: %s", V[v].name,
                      V[v].count, V[v].notes[0]);
    ck_assert_int_eq(violations, 0);
    ck_assert_msg(W.kills == W.kills_wanted, "only %d of %d kills happened", W.kills, W.kills_wanted);
    ck_assert_msg(acked == W.n_tx, "only %d of %d transactions were acknowledged", acked, W.n_tx);
    free(W.plans);
    free(W.seen);
    free(W.ev);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fault_kill9");
    TCase *tc = tcase_create("kill9");
    int tx = env_int("DTMQ_FAULT_TRANSACTIONS", 150), kills = env_int("DTMQ_FAULT_KILLS", 7);
    tcase_set_timeout(tc, 180 + 10 * kills + tx / 5);
    tcase_add_test(tc, invariants_hold_under_repeated_kill9);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
