/*
 * fault_bank.c — the invariant bank workload of dtmq's fault tests: options,
 * the plan of every transaction, the history, fb_new/fb_free, talking to
 * dtmq, the submitters, the poller and the workload. The bank service and the
 * Kafka worker are in fault_bank_service.c, the checks in fault_bank_checks.c,
 * what they share in fault_bank_internal.h. The API and the rules are in
 * fault_bank.h.
 */
#include "fault_bank.h"

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "libdtmq/common/kafka_producer.h"
#include "fault_bank_internal.h"
#include "testlib.h"

/* ---- small helpers ------------------------------------------------------ */

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

/* ---- history ------------------------------------------------------------ */

void fbi_ev_add(fault_bank *b, const event *e)
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
    b->ev[b->n_ev].ms = test_now_ms();
    b->n_ev++;
    pthread_mutex_unlock(&b->ev_mu);
}

/* ---- the plan of every transaction -------------------------------------- */

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

int fbi_idx_of(const fault_bank *b, const char *gid)
{
    const char *dash = gid ? strrchr(gid, '-') : NULL;
    if (dash == NULL)
        return -1;
    int i = atoi(dash + 1);
    if (i < 0 || i >= b->o.transactions || strcmp(b->plans[i].gid, gid) != 0)
        return -1;
    return i;
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
    fbi_verdicts_init(b);
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

void fb_free(fault_bank *b)
{
    if (b == NULL)
        return;
    if (b->subs)
        fb_workload_join(b);
    fbi_poller_stop(b);
    fbi_worker_stop(b);
    fb_service_stop(b);
    dtmq_kafka_producer_stop(b->producer, 2000);
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
json_t *fbi_query_gid(fault_bank *b, const char *gid, int *exists)
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
    while (test_now_ms() < deadline_ms) {
        char *resp;
        int st = dtmq_http(b, 1, "POST", path, body, &resp);
        free(resp);
        if (st == 200)
            return 1;
        if (st == 409) {
            int exists = 0;
            json_t *j = fbi_query_gid(b, gid, &exists);
            int known = j != NULL;
            json_decref(j);
            if (known)
                return exists;
        } else if (st >= 400 && st < 500) {
            fprintf(stderr, "fault: %s %s refused with %d\n", route, gid, st);
            return 0;
        }
        test_sleep_ms(100); /* down, restarting, or a store error: try again */
    }
    return 0;
}

int fb_use_kafka_submit(fault_bank *b, const char *bootstrap, const char *topic, char *err,
                        size_t errlen)
{
    snprintf(b->submit_topic, sizeof(b->submit_topic), "%s", topic);
    b->producer = dtmq_kafka_producer_start(bootstrap, err, errlen);
    return b->producer ? 0 : -1;
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
    while (!acked && test_now_ms() < deadline_ms) {
        char err[256];
        int wait = (int)(deadline_ms - test_now_ms());
        acked = dtmq_kafka_produce_sync(b->producer, b->submit_topic, p->gid, value, strlen(value),
                                   NULL, 0, wait > 0 ? wait : 1, err, sizeof(err)) == 0;
        if (!acked) {
            fprintf(stderr, "fault: produce %s %s: %s\n", op, p->gid, err);
            test_sleep_ms(200);
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
    long long deadline = test_now_ms() + b->o.ack_timeout_ms;
    if (deadline > b->t0 + b->o.span_ms + b->o.ack_timeout_ms)
        deadline = b->t0 + b->o.span_ms + b->o.ack_timeout_ms;
    int acked = submit_cmd(b, p, p->kind == KIND_SAGA ? "submit" : "prepare", body, deadline);
    if (acked && p->kind == KIND_MSG && p->msg_submit)
        p->submit_acked = submit_cmd(b, p, "submit", body, deadline);
    free(body);
    if (acked) {
        p->acked = 1;
        event e = {.type = EV_ACK, .idx = (int)(p - b->plans), .kafka = p->via_kafka};
        fbi_ev_add(b, &e);
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
        test_sleep_ms((long)(due - test_now_ms()));
        submit_one(b, &b->plans[i]);
    }
}

/* ---- the poller: every status a client can see --------------------------- */

void fbi_poll_once(fault_bank *b)
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
            int i = fbi_idx_of(b, json_string_value(json_object_get(t, "gid")));
            const char *s = json_string_value(json_object_get(t, "status"));
            if (i < 0 || s == NULL)
                continue;
            event e = {.type = EV_POLL, .idx = i};
            snprintf(e.st, sizeof(e.st), "%s", s);
            fbi_ev_add(b, &e);
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
        long long t = test_now_ms();
        fbi_poll_once(b);
        /* at most a quarter of the time: observing must not throttle the store
         * (a page of /all can cost ~200 ms on a busy 2-core machine) */
        long long cost = test_now_ms() - t;
        b->poll_cost_ms = cost > b->poll_cost_ms ? cost : b->poll_cost_ms;
        test_sleep_ms((long)(cost * 3 > 300 ? cost * 3 : 300));
    }
    return NULL;
}

void fbi_poller_stop(fault_bank *b)
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
    b->t0 = test_now_ms();
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
    b->workload_ms = test_now_ms() - b->t0;
}

void fb_mark_back(fault_bank *b, int kafka_only)
{
    event e = {.type = EV_RESTART, .idx = -1, .kafka = kafka_only};
    fbi_ev_add(b, &e);
    b->marks++;
}

int fbi_is_final(const char *s)
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
        n += fbi_is_final(b->seen[i]);
    pthread_mutex_unlock(&b->ev_mu);
    return n;
}

long long fb_wait_final(fault_bank *b, int timeout_s)
{
    long long wait0 = test_now_ms(), deadline = wait0 + 1000LL * timeout_s;
    int pending;
    do { /* from the poller's observations: no extra load on dtmq */
        pending = 0;
        pthread_mutex_lock(&b->ev_mu);
        for (int i = 0; i < b->o.transactions; i++) {
            plan *p = &b->plans[i];
            if (fbi_is_final(b->seen[i]))
                snprintf(p->final_status, sizeof(p->final_status), "%s", b->seen[i]);
            else if (p->acked || b->seen[i][0])
                pending++;
        }
        pthread_mutex_unlock(&b->ev_mu);
        if (pending)
            test_sleep_ms(500);
    } while (pending && test_now_ms() < deadline);
    b->final_wait_ms = test_now_ms() - wait0;
    return b->final_wait_ms;
}
