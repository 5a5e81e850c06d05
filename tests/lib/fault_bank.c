/*
 * fault_bank.c — the invariant bank workload of dtmq's fault tests: the bank
 * service with barrier semantics, the submitters, the poller, the Kafka
 * worker and the checks. The API and the rules are in fault_bank.h.
 */
#include "fault_bank.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../connectors/kafka/kafka_producer.h"
#include "../../connectors/worker/dtmq_worker.h"
#include "testlib.h"

enum { POOL_THREADS = 32, MAX_NOTES = 8, ST_LEN = 16 };

/* ---- small helpers ------------------------------------------------------ */

long long fb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void fb_sleep_ms(long ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int fb_env_int(const char *name, int def)
{
    const char *v = getenv(name);
    return v && v[0] ? atoi(v) : def;
}

fb_options fb_options_from_env(const char *name, int transactions)
{
    fb_options o = {
        .name = name,
        .transactions = transactions,
        .fail_pct = fb_env_int("DTMQ_FAULT_FAIL_PCT", 20),
        .err_pct = fb_env_int("DTMQ_FAULT_ERR_PCT", 10),
        .delay_pct = fb_env_int("DTMQ_FAULT_DELAY_PCT", 2),
        .delay_ms = fb_env_int("DTMQ_FAULT_DELAY_MS", 5000),
        .seed = (unsigned)fb_env_int("DTMQ_FAULT_SEED", 0),
        .final_wait_s = fb_env_int("DTMQ_FAULT_FINAL_WAIT_S", 150),
    };
    return o;
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

static const char *const verdict_names[V_COUNT] = {
    "sum of balances unchanged",
    "every acknowledged transaction final",
    "saga succeed: both effects once; failed: net zero",
    "msg: committed delivered exactly once, dropped never",
    "no action applied after its compensation (service counters)",
    "final status matches the branch outcomes in /query",
    "history: exactly one final state per transaction",
    "history: no saga action call after its first compensation call",
    "history: no Deposit call after the msg was seen failed",
};

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
    kafka_producer *producer;
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

unsigned fb_rand(fault_bank *b, unsigned n) /* xorshift64, uniform enough in [0, n) */
{
    pthread_mutex_lock(&b->rng_mu);
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    uint64_t x = b->rng;
    pthread_mutex_unlock(&b->rng_mu);
    return n ? (unsigned)(x % n) : 0;
}

unsigned fb_seed(const fault_bank *b)
{
    return b->o.seed;
}

static void ev_add(fault_bank *b, const event *e)
{
    pthread_mutex_lock(&b->ev_mu);
    if (b->n_ev == b->cap_ev) {
        b->cap_ev = b->cap_ev ? b->cap_ev * 2 : 4096;
        b->ev = realloc(b->ev, b->cap_ev * sizeof(event));
        if (b->ev == NULL)
            abort();
    }
    b->ev[b->n_ev] = *e;
    b->ev[b->n_ev].seq = b->seq++;
    b->ev[b->n_ev].ms = fb_now_ms();
    b->n_ev++;
    pthread_mutex_unlock(&b->ev_mu);
}

static void plan_all(fault_bank *b)
{
    for (int a = 0; a < FB_ACCOUNTS; a++)
        b->sum0 += b->balance[a] = FB_INITIAL_BALANCE;
    for (int i = 0; i < b->o.transactions; i++) {
        plan *p = &b->plans[i];
        p->kind = fb_rand(b, 3) == 0 ? KIND_MSG : KIND_SAGA;
        snprintf(p->gid, sizeof(p->gid), "%s-%s-%d", b->run_id,
                 p->kind == KIND_SAGA ? "saga" : "msg", i);
        p->from = (int)fb_rand(b, FB_ACCOUNTS);
        p->to = (p->from + 1 + (int)fb_rand(b, FB_ACCOUNTS - 1)) % FB_ACCOUNTS;
        p->amount = 1 + (int)fb_rand(b, 100);
        p->in_fails = p->kind == KIND_SAGA && (int)fb_rand(b, 100) < b->o.fail_pct;
        if (p->kind == KIND_MSG) {
            unsigned m = fb_rand(b, 3); /* submitted / left to query-back: committed / dropped */
            p->msg_commit = m != 2;
            p->msg_submit = m == 0;
        }
        if (b->o.kafka_submit_pct > 0)
            p->via_kafka = (int)fb_rand(b, 100) < b->o.kafka_submit_pct;
        if (b->o.kafka_branch_pct > 0 && p->kind == KIND_SAGA)
            p->kafka_branch = (int)fb_rand(b, 100) < b->o.kafka_branch_pct;
    }
}

fault_bank *fb_new(const fb_options *o)
{
    fault_bank *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->o = *o;
    if (b->o.seed == 0)
        b->o.seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    if (b->o.submitters <= 0)
        b->o.submitters = 4;
    if (b->o.ack_timeout_ms <= 0)
        b->o.ack_timeout_ms = 45000;
    b->rng = 0x9E3779B97F4A7C15ULL ^ b->o.seed;
    pthread_mutex_init(&b->rng_mu, NULL);
    pthread_mutex_init(&b->svc_mu, NULL);
    pthread_mutex_init(&b->ev_mu, NULL);
    pthread_mutex_init(&b->d_mu, NULL);
    pthread_mutex_init(&b->w_mu, NULL);
    pthread_mutex_init(&b->next_mu, NULL);
    b->err_pct = o->err_pct;
    b->delay_pct = o->delay_pct;
    b->delay_ms = o->delay_ms;
    for (int v = 0; v < V_COUNT; v++)
        b->v[v].name = verdict_names[v];
    e2e_gid(b->run_id, sizeof(b->run_id), o->name ? o->name : "fb");
    b->plans = calloc((size_t)(o->transactions > 0 ? o->transactions : 1), sizeof(plan));
    b->seen = calloc((size_t)(o->transactions > 0 ? o->transactions : 1), ST_LEN);
    if (b->plans == NULL || b->seen == NULL) {
        fb_free(b);
        return NULL;
    }
    plan_all(b);
    return b;
}

/* ---- the bank service --------------------------------------------------- */

static int idx_of(const fault_bank *b, const char *gid)
{
    const char *dash = gid ? strrchr(gid, '-') : NULL;
    if (dash == NULL)
        return -1;
    int i = atoi(dash + 1);
    if (i < 0 || i >= b->o.transactions || strcmp(b->plans[i].gid, gid) != 0)
        return -1;
    return i;
}

/* The balance change of op on branch of p (the service's business). Under svc_mu. */
static void apply_effect(fault_bank *b, plan *p, int branch, int op)
{
    int sign = op == OP_ACTION ? 1 : -1;
    if (branch == BR_OUT)
        b->balance[p->from] -= sign * p->amount;
    else
        b->balance[p->to] += sign * p->amount;
    p->effects[branch][op]++;
    b->applied++;
}

/* The barrier and the business of one call that got past the injected
 * errors; returns the outcome, *status is 409 for a business failure. */
static int barrier_apply(fault_bank *b, plan *p, int branch, int op, int *status)
{
    if (op == OP_COMP) {
        if (p->barrier[branch][OP_ACTION] == BAR_NONE) { /* the action never ran */
            p->barrier[branch][OP_ACTION] = BAR_BY_COMP;
            p->barrier[branch][OP_COMP] = BAR_DONE;
            b->null_comp++;
            return OUT_NULL_COMP;
        }
        if (p->barrier[branch][OP_COMP] != BAR_NONE) {
            b->duplicates++;
            return OUT_DUPLICATE;
        }
        p->barrier[branch][OP_COMP] = BAR_DONE;
        apply_effect(b, p, branch, OP_COMP);
        return OUT_APPLIED;
    }
    if (p->barrier[branch][OP_ACTION] == BAR_BY_COMP) {
        b->hanging++;
        return OUT_HANGING;
    }
    if (p->barrier[branch][OP_ACTION] == BAR_DONE) {
        b->duplicates++;
        return OUT_DUPLICATE;
    }
    if (p->kind == KIND_SAGA && branch == BR_IN && p->in_fails) {
        b->busi_fail++; /* the local transaction rolls back: no barrier row */
        *status = 409;
        return OUT_BUSI_FAIL;
    }
    if (p->barrier[branch][OP_COMP] != BAR_NONE)
        b->action_after_comp++; /* impossible with a correct barrier */
    p->barrier[branch][OP_ACTION] = BAR_DONE;
    apply_effect(b, p, branch, OP_ACTION);
    return OUT_APPLIED;
}

static void current_faults(fault_bank *b, int *err_pct, int *delay_pct, int *delay_ms)
{
    pthread_mutex_lock(&b->svc_mu);
    *err_pct = b->err_pct;
    *delay_pct = b->delay_pct;
    *delay_ms = b->delay_ms;
    pthread_mutex_unlock(&b->svc_mu);
}

/* One branch call (HTTP or from the worker); returns the HTTP status. */
static int handle_branch(fault_bank *b, const char *path, const char *gid, const char *branch_id,
                         const char *op_s, int from_worker)
{
    int i = idx_of(b, gid);
    if (i < 0)
        return 400;
    plan *p = &b->plans[i];
    int err_pct, delay_pct, delay_ms;
    current_faults(b, &err_pct, &delay_pct, &delay_ms);
    event e = {.type = EV_CALL, .idx = i, .kafka = from_worker || p->via_kafka};
    if (strcmp(path, "/api/QueryPrepared") == 0) {
        e.outcome = OUT_QUERY;
        e.branch = -1;
        unsigned r = fb_rand(b, 100);
        e.status = (int)r < err_pct ? (r % 2 ? 500 : 425) : p->msg_commit ? 200 : 409;
        ev_add(b, &e);
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
    ev_add(b, &arrival);

    unsigned r = fb_rand(b, 100);
    int err_before = 0, ongoing = 0, err_after = 0;
    if ((int)r < err_pct) {
        unsigned m = fb_rand(b, 4);
        err_before = m < 2;
        ongoing = m == 2;
        err_after = m == 3;
    }
    if ((int)fb_rand(b, 100) < delay_pct)
        fb_sleep_ms(delay_ms); /* longer than RequestTimeout: dtmq gives up and retries */

    int status = 200;
    pthread_mutex_lock(&b->svc_mu);
    p->calls[branch][op]++;
    if (from_worker)
        b->kafka_calls++;
    if (err_before || ongoing) {
        b->injected++;
        e.outcome = ongoing ? OUT_ONGOING : OUT_ERR_BEFORE;
        status = ongoing ? 425 : 500;
    } else {
        e.outcome = barrier_apply(b, p, branch, op, &status);
    }
    if (err_after && status == 200) { /* effect committed, answer lost */
        b->injected++;
        e.outcome = OUT_ERR_AFTER;
        status = 500;
    }
    pthread_mutex_unlock(&b->svc_mu);
    e.status = status;
    ev_add(b, &e);
    return status;
}

static enum MHD_Result svc_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    static int marker;
    fault_bank *b = cls;
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
    int status = handle_branch(b, url, gid, bid ? bid : "", op ? op : "", 0);
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

int fb_service_start(fault_bank *b, int port)
{
    if (b->daemon != NULL)
        return 0;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((uint16_t)port);
    b->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
                                 svc_handle, b, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                 MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)POOL_THREADS,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)30, MHD_OPTION_END);
    if (b->daemon == NULL)
        return -1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(b->daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (info == NULL || info->port == 0) {
        fb_service_stop(b);
        return -1;
    }
    b->port = info->port;
    snprintf(b->url, sizeof(b->url), "http://127.0.0.1:%d", b->port);
    return 0;
}

void fb_service_stop(fault_bank *b)
{
    if (b->daemon != NULL)
        MHD_stop_daemon(b->daemon);
    b->daemon = NULL;
}

int fb_service_port(const fault_bank *b)
{
    return b->port;
}

void fb_set_faults(fault_bank *b, int err_pct, int delay_pct, int delay_ms)
{
    pthread_mutex_lock(&b->svc_mu);
    b->err_pct = err_pct;
    b->delay_pct = delay_pct;
    b->delay_ms = delay_ms;
    pthread_mutex_unlock(&b->svc_mu);
}

/* ---- the Kafka worker --------------------------------------------------- */

static dtmq_result worker_handle(void *arg, const dtmq_branch_msg *m, char *message,
                                 size_t message_len)
{
    fault_bank *b = arg;
    int st = handle_branch(b, "/api/TransIn", m->gid, m->branch_id, m->op, 1);
    if (st == 200)
        return DTMQ_SUCCESS;
    if (st == 409)
        return DTMQ_FAILURE;
    if (st == 425)
        return DTMQ_ONGOING;
    snprintf(message, message_len, "injected error %d", st);
    return (dtmq_result)-1; /* no reply: dtmq calls again when the reply does not come */
}

static dtmq_worker *worker_new(fault_bank *b, char *err, size_t errlen)
{
    const char *topics[] = {b->worker_topic, NULL};
    dtmq_worker_options wo = {.bootstrap = b->worker_bootstrap, .group = b->worker_group,
                              .topics = topics, .handler = worker_handle, .arg = b};
    dtmq_worker *w = NULL;
    if (dtmq_worker_new(&wo, &w, err, errlen) != 0)
        return NULL;
    return w;
}

static void *worker_main(void *arg)
{
    fault_bank *b = arg;
    while (!b->stop_worker) {
        char err[256] = "";
        pthread_mutex_lock(&b->w_mu);
        dtmq_worker *w = b->worker;
        pthread_mutex_unlock(&b->w_mu);
        if (w == NULL) {
            w = worker_new(b, err, sizeof(err));
            if (w == NULL) {
                fprintf(stderr, "fault_bank: worker: %s\n", err);
                fb_sleep_ms(500);
                continue;
            }
            pthread_mutex_lock(&b->w_mu);
            b->worker = w;
            pthread_mutex_unlock(&b->w_mu);
            if (b->stop_worker)
                break;
        }
        if (dtmq_worker_run(w, 0, err, sizeof(err)) < 0) { /* unusable: a new one */
            fprintf(stderr, "fault_bank: worker failed (%s); starting a new one\n", err);
            pthread_mutex_lock(&b->w_mu);
            b->worker = NULL;
            pthread_mutex_unlock(&b->w_mu);
            dtmq_worker_free(w);
            fb_sleep_ms(500);
        }
    }
    return NULL;
}

int fb_start_worker(fault_bank *b, const char *bootstrap, const char *group, const char *topic,
                    char *err, size_t errlen)
{
    snprintf(b->worker_bootstrap, sizeof(b->worker_bootstrap), "%s", bootstrap);
    snprintf(b->worker_group, sizeof(b->worker_group), "%s", group);
    snprintf(b->worker_topic, sizeof(b->worker_topic), "%s", topic);
    b->worker = worker_new(b, err, errlen);
    if (b->worker == NULL)
        return -1;
    if (pthread_create(&b->worker_thread, NULL, worker_main, b) != 0) {
        snprintf(err, errlen, "cannot start the worker thread");
        dtmq_worker_free(b->worker);
        b->worker = NULL;
        return -1;
    }
    b->worker_running = 1;
    return 0;
}

static void worker_stop(fault_bank *b)
{
    if (!b->worker_running)
        return;
    b->stop_worker = 1;
    pthread_mutex_lock(&b->w_mu);
    dtmq_worker_stop(b->worker);
    pthread_mutex_unlock(&b->w_mu);
    pthread_join(b->worker_thread, NULL);
    dtmq_worker_free(b->worker);
    b->worker = NULL;
    b->worker_running = 0;
}

int fb_use_kafka_submit(fault_bank *b, const char *bootstrap, const char *topic, char *err,
                        size_t errlen)
{
    snprintf(b->submit_topic, sizeof(b->submit_topic), "%s", topic);
    b->producer = kafka_producer_start(bootstrap, err, errlen);
    return b->producer ? 0 : -1;
}

/* ---- talking to dtmq ---------------------------------------------------- */

void fb_set_dtmq(fault_bank *b, int slot, const char *base_url)
{
    if (slot < 0 || slot >= FB_MAX_DTMQ)
        return;
    pthread_mutex_lock(&b->d_mu);
    snprintf(b->dtmq[slot], sizeof(b->dtmq[slot]), "%s", base_url ? base_url : "");
    pthread_mutex_unlock(&b->d_mu);
}

/* The base URL of an up dtmq: the first one, or a random one. 0 when none. */
static int pick_dtmq(fault_bank *b, int random, char *out, size_t len)
{
    int up[FB_MAX_DTMQ], n = 0;
    pthread_mutex_lock(&b->d_mu);
    for (int s = 0; s < FB_MAX_DTMQ; s++)
        if (b->dtmq[s][0])
            up[n++] = s;
    int chosen = n == 0 ? -1 : random ? up[fb_rand(b, (unsigned)n)] : up[0];
    if (chosen >= 0)
        snprintf(out, len, "%s", b->dtmq[chosen]);
    pthread_mutex_unlock(&b->d_mu);
    return chosen >= 0;
}

/* HTTP to a dtmq that is up; -1 when none is or the call failed in transport. */
static int dtmq_http(fault_bank *b, int random, const char *method, const char *path,
                     const char *body, char **resp)
{
    char base[64], url[1024];
    *resp = NULL;
    if (!pick_dtmq(b, random, base, sizeof(base)))
        return -1;
    snprintf(url, sizeof(url), "%s%s", base, path);
    return http_do(method, url, body, resp);
}

/* The transaction (status and branches) from /query; NULL when not reachable. */
static json_t *query_gid(fault_bank *b, const char *gid, int *exists)
{
    char path[256], *resp;
    snprintf(path, sizeof(path), "/api/dtmsvr/query?gid=%s", gid);
    int st = dtmq_http(b, 0, "GET", path, NULL, &resp);
    json_t *j = st == 200 ? json_loads(resp ? resp : "", 0, NULL) : NULL;
    free(resp);
    if (j && exists)
        *exists = json_is_object(json_object_get(j, "transaction"));
    return j;
}

/* POSTs until acknowledged: 200, or 409 for a gid the store already has (an
 * earlier attempt was persisted and maybe finished). 1 acknowledged, 0 not
 * (gave up after deadline_ms or a definite refusal). */
static int post_until_acked(fault_bank *b, const char *route, const char *gid, const char *body,
                            long long deadline_ms)
{
    char path[128];
    snprintf(path, sizeof(path), "/api/dtmsvr/%s", route);
    while (fb_now_ms() < deadline_ms) {
        char *resp;
        int st = dtmq_http(b, 1, "POST", path, body, &resp);
        free(resp);
        if (st == 200)
            return 1;
        if (st == 409) {
            int exists = 0;
            json_t *j = query_gid(b, gid, &exists);
            int known = j != NULL;
            json_decref(j);
            if (known)
                return exists;
        } else if (st >= 400 && st < 500) {
            fprintf(stderr, "fault: %s %s refused with %d\n", route, gid, st);
            return 0;
        }
        fb_sleep_ms(100); /* down, restarting, or a store error: try again */
    }
    return 0;
}

/* Produces the command to the submit topic until Kafka acknowledges it. */
static int produce_until_acked(fault_bank *b, const char *op, const plan *p, const char *body,
                               long long deadline_ms)
{
    json_t *j = json_loads(body, 0, NULL);
    json_object_set_new(j, "op", json_string(op));
    char *value = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    int acked = 0;
    while (!acked && fb_now_ms() < deadline_ms) {
        char err[256];
        int wait = (int)(deadline_ms - fb_now_ms());
        acked = kafka_produce_sync(b->producer, b->submit_topic, p->gid, value, strlen(value),
                                   NULL, 0, wait > 0 ? wait : 1, err, sizeof(err)) == 0;
        if (!acked) {
            fprintf(stderr, "fault: produce %s %s: %s\n", op, p->gid, err);
            fb_sleep_ms(200);
        }
    }
    free(value);
    return acked;
}

static char *tx_body(const fault_bank *b, const plan *p)
{
    char out[128], in[160], comp_out[128], comp_in[160], qp[128], pay[64];
    snprintf(out, sizeof(out), "%s/api/TransOut", b->url);
    snprintf(comp_out, sizeof(comp_out), "%s/api/TransOutRevert", b->url);
    snprintf(pay, sizeof(pay), "{\"amount\":%d}", p->amount);
    json_t *body;
    if (p->kind == KIND_SAGA) {
        if (p->kafka_branch) {
            snprintf(in, sizeof(in), "kafka://%s", b->worker_topic);
            snprintf(comp_in, sizeof(comp_in), "kafka://%s", b->worker_topic);
        } else {
            snprintf(in, sizeof(in), "%s/api/TransIn", b->url);
            snprintf(comp_in, sizeof(comp_in), "%s/api/TransInRevert", b->url);
        }
        body = json_pack("{s:s, s:s, s:[{s:s, s:s}, {s:s, s:s}], s:[s, s]}", "gid", p->gid,
                         "trans_type", "saga", "steps", "action", out, "compensate", comp_out,
                         "action", in, "compensate", comp_in, "payloads", pay, pay);
    } else {
        snprintf(in, sizeof(in), "%s/api/Deposit", b->url);
        snprintf(qp, sizeof(qp), "%s/api/QueryPrepared", b->url);
        body = json_pack("{s:s, s:s, s:s, s:[{s:s}, {s:s}], s:[s, s]}", "gid", p->gid,
                         "trans_type", "msg", "query_prepared", qp, "steps", "action", out,
                         "action", in, "payloads", pay, pay);
    }
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return text;
}

static int submit_cmd(fault_bank *b, plan *p, const char *op, const char *body, long long deadline)
{
    if (p->via_kafka && b->producer)
        return produce_until_acked(b, op, p, body, deadline);
    return post_until_acked(b, op, p->gid, body, deadline);
}

static void submit_one(fault_bank *b, plan *p)
{
    char *body = tx_body(b, p);
    /* each submission gets ack_timeout_ms, and all end by span + ack_timeout_ms:
     * a dtmq that never acknowledges cannot make the workload run for hours */
    long long deadline = fb_now_ms() + b->o.ack_timeout_ms;
    if (deadline > b->t0 + b->o.span_ms + b->o.ack_timeout_ms)
        deadline = b->t0 + b->o.span_ms + b->o.ack_timeout_ms;
    int acked = submit_cmd(b, p, p->kind == KIND_SAGA ? "submit" : "prepare", body, deadline);
    if (acked && p->kind == KIND_MSG && p->msg_submit)
        p->submit_acked = submit_cmd(b, p, "submit", body, deadline);
    free(body);
    if (acked) {
        p->acked = 1;
        event e = {.type = EV_ACK, .idx = (int)(p - b->plans), .kafka = p->via_kafka};
        ev_add(b, &e);
    }
}

static void *submitter(void *arg)
{
    fault_bank *b = arg;
    for (;;) {
        pthread_mutex_lock(&b->next_mu);
        int i = b->next_tx < b->o.transactions ? b->next_tx++ : -1;
        pthread_mutex_unlock(&b->next_mu);
        if (i < 0)
            return NULL;
        long long due = b->t0 + b->o.span_ms * i / b->o.transactions; /* spread over the span */
        fb_sleep_ms((long)(due - fb_now_ms()));
        submit_one(b, &b->plans[i]);
    }
}

/* ---- the poller: every status a client can see --------------------------- */

static void poll_once(fault_bank *b)
{
    char position[256] = "";
    for (int page = 0; page < 50; page++) {
        char path[512], *resp;
        snprintf(path, sizeof(path), "/api/dtmsvr/all?limit=1000%s%s",
                 position[0] ? "&position=" : "", position);
        int st = dtmq_http(b, 0, "GET", path, NULL, &resp);
        json_t *j = st == 200 ? json_loads(resp ? resp : "", 0, NULL) : NULL;
        free(resp);
        if (j == NULL)
            return;
        json_t *list = json_object_get(j, "transactions"), *t;
        size_t k;
        json_array_foreach(list, k, t)
        {
            int i = idx_of(b, json_string_value(json_object_get(t, "gid")));
            const char *s = json_string_value(json_object_get(t, "status"));
            if (i < 0 || s == NULL)
                continue;
            event e = {.type = EV_POLL, .idx = i};
            snprintf(e.st, sizeof(e.st), "%s", s);
            ev_add(b, &e);
            pthread_mutex_lock(&b->ev_mu);
            snprintf(b->seen[i], ST_LEN, "%s", s);
            pthread_mutex_unlock(&b->ev_mu);
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
    fault_bank *b = arg;
    while (!b->stop_poll) {
        long long t = fb_now_ms();
        poll_once(b);
        /* at most a quarter of the time: observing must not throttle the store
         * (a page of /all costs ~200 ms on FerretDB with a busy CPU) */
        long long cost = fb_now_ms() - t;
        b->poll_cost_ms = cost > b->poll_cost_ms ? cost : b->poll_cost_ms;
        fb_sleep_ms((long)(cost * 3 > 300 ? cost * 3 : 300));
    }
    return NULL;
}

static void poller_stop(fault_bank *b)
{
    if (!b->poller_running)
        return;
    b->stop_poll = 1;
    pthread_join(b->poller, NULL);
    b->poller_running = 0;
}

/* ---- the workload ------------------------------------------------------- */

void fb_workload_start(fault_bank *b)
{
    b->t0 = fb_now_ms();
    b->n_subs = b->o.submitters;
    b->subs = calloc((size_t)b->n_subs, sizeof(pthread_t));
    if (b->subs == NULL)
        abort();
    if (pthread_create(&b->poller, NULL, poller, b) != 0)
        abort();
    b->poller_running = 1;
    for (int t = 0; t < b->n_subs; t++)
        if (pthread_create(&b->subs[t], NULL, submitter, b) != 0)
            abort();
}

void fb_workload_join(fault_bank *b)
{
    for (int t = 0; t < b->n_subs; t++)
        pthread_join(b->subs[t], NULL);
    free(b->subs);
    b->subs = NULL;
    b->n_subs = 0;
    b->workload_ms = fb_now_ms() - b->t0;
}

void fb_mark_back(fault_bank *b, int kafka_only)
{
    event e = {.type = EV_RESTART, .idx = -1, .kafka = kafka_only};
    ev_add(b, &e);
    b->marks++;
}

static int is_final(const char *s)
{
    return strcmp(s, "succeed") == 0 || strcmp(s, "failed") == 0;
}

int fb_acked(fault_bank *b)
{
    int acked = 0;
    for (int i = 0; i < b->o.transactions; i++)
        acked += b->plans[i].acked;
    return acked;
}

int fb_final_seen(fault_bank *b)
{
    int n = 0;
    pthread_mutex_lock(&b->ev_mu);
    for (int i = 0; i < b->o.transactions; i++)
        n += is_final(b->seen[i]);
    pthread_mutex_unlock(&b->ev_mu);
    return n;
}

long long fb_wait_final(fault_bank *b, int timeout_s)
{
    long long wait0 = fb_now_ms(), deadline = wait0 + 1000LL * timeout_s;
    int pending;
    do { /* from the poller's observations: no extra load on dtmq */
        pending = 0;
        pthread_mutex_lock(&b->ev_mu);
        for (int i = 0; i < b->o.transactions; i++) {
            plan *p = &b->plans[i];
            if (is_final(b->seen[i]))
                snprintf(p->final_status, sizeof(p->final_status), "%s", b->seen[i]);
            else if (p->acked || b->seen[i][0])
                pending++;
        }
        pthread_mutex_unlock(&b->ev_mu);
        if (pending)
            fb_sleep_ms(500);
    } while (pending && fb_now_ms() < deadline);
    b->final_wait_ms = fb_now_ms() - wait0;
    return b->final_wait_ms;
}

/* ---- checks ------------------------------------------------------------- */

static void violation(fault_bank *b, int v, const char *fmt, ...)
{
    if (b->v[v].count < MAX_NOTES) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b->v[v].notes[b->v[v].count], sizeof(b->v[v].notes[0]), fmt, ap);
        va_end(ap);
    }
    b->v[v].count++;
}

/* Branch rows of a /query answer: status of (branch_id, op), "" when absent. */
static const char *branch_status(json_t *q, const char *bid, const char *op)
{
    json_t *br;
    size_t k;
    json_array_foreach(json_object_get(q, "branches"), k, br)
    {
        const char *id = json_string_value(json_object_get(br, "branch_id"));
        const char *o = json_string_value(json_object_get(br, "op"));
        if (id && o && strcmp(id, bid) == 0 && strcmp(o, op) == 0) {
            const char *s = json_string_value(json_object_get(br, "status"));
            return s ? s : "";
        }
    }
    return "";
}

static const char *const bids[2] = {"01", "02"};

static void check_saga(fault_bank *b, plan *p, json_t *q)
{
    const char *st = p->final_status;
    if (strcmp(st, "succeed") == 0) {
        for (int br = 0; br < 2; br++)
            if (p->effects[br][OP_ACTION] != 1 || p->effects[br][OP_COMP] != 0)
                violation(b, V_SAGA_EFFECT, "%s succeed but branch %s effects action=%d compensate=%d",
                          p->gid, bids[br], p->effects[br][OP_ACTION], p->effects[br][OP_COMP]);
        if (p->in_fails)
            violation(b, V_SAGA_EFFECT, "%s succeed although TransIn answered 409", p->gid);
        for (int br = 0; br < 2; br++)
            if (strcmp(branch_status(q, bids[br], "action"), "succeed") != 0)
                violation(b, V_BRANCHES, "%s succeed but branch %s action is '%s'", p->gid, bids[br],
                          branch_status(q, bids[br], "action"));
    } else if (strcmp(st, "failed") == 0) {
        for (int br = 0; br < 2; br++) {
            if (p->effects[br][OP_ACTION] != p->effects[br][OP_COMP] || p->effects[br][OP_ACTION] > 1)
                violation(b, V_SAGA_EFFECT, "%s failed but branch %s effects action=%d compensate=%d",
                          p->gid, bids[br], p->effects[br][OP_ACTION], p->effects[br][OP_COMP]);
            const char *a = branch_status(q, bids[br], "action");
            const char *c = branch_status(q, bids[br], "compensate");
            if (strcmp(a, "succeed") == 0 && strcmp(c, "succeed") != 0)
                violation(b, V_BRANCHES, "%s failed, branch %s action succeed but compensate '%s'",
                          p->gid, bids[br], c);
        }
    }
}

static void check_msg(fault_bank *b, plan *p, json_t *q)
{
    const char *st = p->final_status;
    if (strcmp(st, "succeed") == 0) {
        if (!p->msg_commit)
            violation(b, V_MSG_EFFECT, "%s succeed although QueryPrepared answers 409", p->gid);
        for (int br = 0; br < 2; br++) {
            if (p->effects[br][OP_ACTION] != 1)
                violation(b, V_MSG_EFFECT, "%s succeed but branch %s applied %d times", p->gid,
                          bids[br], p->effects[br][OP_ACTION]);
            if (strcmp(branch_status(q, bids[br], "action"), "succeed") != 0)
                violation(b, V_BRANCHES, "%s succeed but branch %s is '%s'", p->gid, bids[br],
                          branch_status(q, bids[br], "action"));
        }
    } else if (strcmp(st, "failed") == 0) {
        if (p->msg_commit)
            violation(b, V_MSG_EFFECT, "%s failed although it was committed (submit acked=%d)",
                      p->gid, p->submit_acked);
        for (int br = 0; br < 2; br++) {
            if (p->calls[br][OP_ACTION] != 0 || p->effects[br][OP_ACTION] != 0)
                violation(b, V_MSG_EFFECT, "%s dropped but branch %s called %d times, applied %d",
                          p->gid, bids[br], p->calls[br][OP_ACTION], p->effects[br][OP_ACTION]);
            if (strcmp(branch_status(q, bids[br], "action"), "succeed") == 0)
                violation(b, V_BRANCHES, "%s failed but branch %s is succeed", p->gid, bids[br]);
        }
    }
}

/* The history checker: the event log in order. */
static void check_history(fault_bank *b)
{
    int n = b->o.transactions;
    char (*first_final)[ST_LEN] = calloc((size_t)n + 1, ST_LEN);
    long long *first_comp = calloc((size_t)n + 1, sizeof(long long));
    long long *failed_seen = calloc((size_t)n + 1, sizeof(long long));
    if (!first_final || !first_comp || !failed_seen)
        abort();
    for (int i = 0; i < n; i++)
        first_comp[i] = failed_seen[i] = -1;
    for (size_t k = 0; k < b->n_ev; k++) {
        const event *e = &b->ev[k];
        if (e->idx < 0)
            continue;
        plan *p = &b->plans[e->idx];
        if (e->type == EV_POLL) {
            if (first_final[e->idx][0] && strcmp(first_final[e->idx], e->st) != 0)
                violation(b, V_ONE_FINAL, "%s seen '%s' after it was seen final '%s'", p->gid, e->st,
                          first_final[e->idx]);
            if (!first_final[e->idx][0] && is_final(e->st))
                snprintf(first_final[e->idx], ST_LEN, "%s", e->st);
            if (strcmp(e->st, "failed") == 0 && failed_seen[e->idx] < 0)
                failed_seen[e->idx] = e->seq;
        } else if (e->type == EV_CALL && e->outcome == -1 && e->branch >= 0) { /* arrival */
            if (p->kind == KIND_SAGA) {
                if (e->op == OP_COMP && first_comp[e->idx] < 0)
                    first_comp[e->idx] = e->seq;
                if (e->op == OP_ACTION && first_comp[e->idx] >= 0)
                    violation(b, V_ACTION_AFTER_COMP,
                              "%s: branch %02d action called (event %lld) after compensation "
                              "started (event %lld)",
                              p->gid, e->branch + 1, e->seq, first_comp[e->idx]);
            } else if (e->is_deposit && failed_seen[e->idx] >= 0) {
                violation(b, V_DEPOSIT_AFTER_FAIL,
                          "%s: Deposit called (event %lld) after the msg was seen failed (event %lld)",
                          p->gid, e->seq, failed_seen[e->idx]);
            }
        }
    }
    for (int i = 0; i < n; i++) {
        plan *p = &b->plans[i];
        if (p->acked && p->final_status[0] && first_final[i][0] &&
            strcmp(first_final[i], p->final_status) != 0)
            violation(b, V_ONE_FINAL, "%s first seen final '%s', ends '%s'", p->gid, first_final[i],
                      p->final_status);
    }
    free(first_final);
    free(first_comp);
    free(failed_seen);
}

/* Recovery: from each mark to the next branch call answered 200 (of a Kafka
 * transaction or branch when the mark says kafka_only). */
static long long max_recovery_ms(const fault_bank *b, int *unrecovered)
{
    long long worst = 0;
    *unrecovered = 0;
    for (size_t k = 0; k < b->n_ev; k++) {
        const event *r = &b->ev[k];
        if (r->type != EV_RESTART)
            continue;
        size_t m = k + 1;
        while (m < b->n_ev && !(b->ev[m].type == EV_CALL && b->ev[m].outcome >= 0 &&
                                b->ev[m].status == 200 && (!r->kafka || b->ev[m].kafka)))
            m++;
        if (m == b->n_ev) {
            (*unrecovered)++;
            continue;
        }
        long long d = b->ev[m].ms - r->ms;
        if (d > worst)
            worst = d;
    }
    return worst;
}

/* Resumption: for each mark, the longest a transaction that had been called
 * before it waited, after it, for its next call answered 200. */
static long long max_resume_ms(const fault_bank *b)
{
    int n = b->o.transactions;
    long long worst = 0;
    char *called = calloc((size_t)n + 1, 1), *resumed = calloc((size_t)n + 1, 1);
    if (!called || !resumed)
        abort();
    for (size_t k = 0; k < b->n_ev; k++) {
        const event *r = &b->ev[k];
        if (r->type != EV_RESTART)
            continue;
        memset(called, 0, (size_t)n);
        memset(resumed, 0, (size_t)n);
        for (size_t m = 0; m < k; m++)
            if (b->ev[m].type == EV_CALL && b->ev[m].idx >= 0)
                called[b->ev[m].idx] = 1;
        for (size_t m = k + 1; m < b->n_ev; m++) {
            const event *e = &b->ev[m];
            if (e->type != EV_CALL || e->idx < 0 || e->outcome < 0 || e->status != 200 ||
                !called[e->idx] || resumed[e->idx])
                continue;
            resumed[e->idx] = 1;
            if (e->ms - r->ms > worst)
                worst = e->ms - r->ms;
        }
    }
    free(called);
    free(resumed);
    return worst;
}

/* The final /query of every gid and the checks on it; counts into f. */
static void check_every_gid(fault_bank *b, fb_figures *f)
{
    for (int i = 0; i < b->o.transactions; i++) {
        plan *p = &b->plans[i];
        int exists = 0;
        json_t *q = query_gid(b, p->gid, &exists);
        const char *s = json_string_value(json_object_get(json_object_get(q, "transaction"), "status"));
        if (p->final_status[0] && s && strcmp(s, p->final_status) != 0)
            violation(b, V_ONE_FINAL, "%s was final '%s', now '%s'", p->gid, p->final_status, s);
        if (s)
            snprintf(p->final_status, sizeof(p->final_status), "%s", s);
        if (p->acked && !is_final(p->final_status))
            violation(b, V_FINAL, "%s (%s%s, acked) still '%s' after %lld ms", p->gid,
                      p->kind == KIND_SAGA ? "saga" : "msg", p->via_kafka ? " via Kafka" : "",
                      p->final_status, b->final_wait_ms);
        if (!p->acked && s && !is_final(s))
            violation(b, V_FINAL, "%s (not acked but stored) still '%s'", p->gid, s);
        f->succeed += strcmp(p->final_status, "succeed") == 0;
        f->failed += strcmp(p->final_status, "failed") == 0;
        f->acked += p->acked;
        f->via_kafka += p->via_kafka;
        pthread_mutex_lock(&b->svc_mu);
        if (p->kind == KIND_SAGA)
            check_saga(b, p, q);
        else
            check_msg(b, p, q);
        /* a gid the store never saw must have had no effect either */
        if (!s)
            for (int br = 0; br < 2; br++)
                for (int op = 0; op < 2; op++)
                    if (p->effects[br][op])
                        violation(b, V_SAGA_EFFECT, "%s unknown to dtmq but has effects", p->gid);
        pthread_mutex_unlock(&b->svc_mu);
        json_decref(q);
    }
}

int fb_check(fault_bank *b, fb_figures *f)
{
    memset(f, 0, sizeof(*f));
    fb_sleep_ms(1500); /* let late (stalled) calls and a few more polls land */
    poller_stop(b);
    poll_once(b);
    check_every_gid(b, f);
    fb_service_stop(b);
    worker_stop(b);

    long long sum = 0;
    for (int a = 0; a < FB_ACCOUNTS; a++)
        sum += b->balance[a];
    if (sum != b->sum0)
        violation(b, V_SUM, "sum of balances %lld, was %lld", sum, b->sum0);
    if (b->action_after_comp)
        violation(b, V_HANGING, "%ld action effect(s) applied after their compensation",
                  b->action_after_comp);
    check_history(b);
    f->max_recovery_ms = max_recovery_ms(b, &f->unrecovered);
    f->max_resume_ms = max_resume_ms(b);

    for (int v = 0; v < V_COUNT; v++) {
        f->violations += b->v[v].count;
        for (int k = 0; k < b->v[v].count && k < MAX_NOTES; k++)
            fprintf(stderr, "fault: VIOLATION [%s] %s\n", b->v[v].name, b->v[v].notes[k]);
    }
    f->transactions = b->o.transactions;
    f->applied = b->applied;
    f->duplicates = b->duplicates;
    f->null_comp = b->null_comp;
    f->hanging = b->hanging;
    f->busi_fail = b->busi_fail;
    f->injected = b->injected;
    f->kafka_calls = b->kafka_calls;
    f->marks = b->marks;
    f->workload_ms = b->workload_ms;
    f->final_wait_ms = b->final_wait_ms;
    f->max_poll_ms = b->poll_cost_ms;
    f->events = b->n_ev;
    return f->violations;
}

void fb_free(fault_bank *b)
{
    if (b == NULL)
        return;
    if (b->subs)
        fb_workload_join(b);
    poller_stop(b);
    worker_stop(b);
    fb_service_stop(b);
    kafka_producer_stop(b->producer, 2000);
    free(b->plans);
    free(b->seen);
    free(b->ev);
    pthread_mutex_destroy(&b->rng_mu);
    pthread_mutex_destroy(&b->svc_mu);
    pthread_mutex_destroy(&b->ev_mu);
    pthread_mutex_destroy(&b->d_mu);
    pthread_mutex_destroy(&b->w_mu);
    pthread_mutex_destroy(&b->next_mu);
    free(b);
}
