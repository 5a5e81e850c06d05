/*
 * engine.c — the engine's threads (see engine.h): worker queues, the cron that
 * claims due transactions from the store, start and stop. What one pass of a
 * transaction does is in pass.c.
 */
#include "engine_internal.h"
#include "libdtmq/common/deadline.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "gid.h"
#include "log.h"

#define ENGINE_WORKERS 4
#define ENGINE_MAX_IN_FLIGHT 1024
#define CRON_BATCH 256
/* The cron claims no more while this many transactions have a pass running
 * or waiting (a backlog of 100,000 due ones is taken in bites, so leases do
 * not run out in the queue and memory stays bounded). */
#define CRON_MAX_ACTIVE 2048
#define CRON_BACKOFF_MS 50

unsigned engine_hash(const char *gid)
{
    unsigned h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)gid; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h;
}

static void worker_enqueue(worker *w, event *ev)
{
    pthread_mutex_lock(&w->mu);
    ev->next = NULL;
    if (w->tail)
        w->tail->next = ev;
    else
        w->head = ev;
    w->tail = ev;
    w->queued++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void engine_post(engine *e, event *ev)
{
    worker_enqueue(&e->workers[engine_hash(ev->gid) % (unsigned)e->worker_count], ev);
}

static event *worker_next_event(worker *w)
{
    pthread_mutex_lock(&w->mu);
    while (w->head == NULL)
        pthread_cond_wait(&w->cv, &w->mu);
    event *ev = w->head;
    w->head = ev->next;
    if (w->head == NULL)
        w->tail = NULL;
    w->queued--;
    pthread_mutex_unlock(&w->mu);
    return ev;
}

static void event_free(event *ev)
{
    free(ev->gid);
    free(ev->text);
    free(ev->message);
    free(ev);
}

/* Frees what is left in a stopped worker's queue; a kick's wait_result
 * caller is answered 503 (the transaction is resumed later). */
static void drain_queue(worker *w)
{
    pthread_mutex_lock(&w->mu);
    event *ev = w->head;
    w->head = w->tail = NULL;
    w->queued = 0;
    pthread_mutex_unlock(&w->mu);
    while (ev) {
        event *next = ev->next;
        if (ev->waiter)
            ev->waiter->fn(ev->waiter->arg, 503, "{\"message\":\"dtmq is stopping; the transaction will be resumed\"}");
        free(ev->waiter);
        event_free(ev);
        ev = next;
    }
}

static void worker_release_all(worker *w)
{
    for (size_t i = 0; i < ENGINE_BUCKETS; i++) {
        while (w->table[i]) {
            active *a = w->table[i];
            w->table[i] = a->next;
            pass_release(w, a);
            active_free(a);
        }
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    store_defer_durability(true); /* pass.c syncs before every outside effect */
    for (;;) {
        event *ev = worker_next_event(w);
        if (ev->kind == EV_STOP) {
            event_free(ev);
            break;
        }
        if (ev->kind == EV_KICK)
            pass_on_kick(w, ev);
        else if (ev->kind == EV_DURABLE)
            pass_on_durable(w, ev);
        else
            pass_on_result(w, ev);
        event_free(ev);
    }
    worker_release_all(w);
    return NULL;
}

int64_t engine_lease_ms(const engine *e, const trans_options *opts)
{
    const dtmq_config *cfg = e->b->cfg;
    int64_t timeout = opts && opts->request_timeout > 0 ? opts->request_timeout : cfg->request_timeout;
    int64_t lease = cfg->retry_interval > timeout + 5 ? cfg->retry_interval : timeout + 5;
    return lease * 1000;
}

const char *engine_owner(const engine *e)
{
    return e->owner;
}

int engine_calls_pending(engine *e)
{
    return http_dispatch_pending(e->http);
}

int engine_queue_depth(engine *e)
{
    int depth = 0;
    for (int i = 0; i < e->worker_count; i++) {
        pthread_mutex_lock(&e->workers[i].mu);
        depth += e->workers[i].queued;
        pthread_mutex_unlock(&e->workers[i].mu);
    }
    return depth;
}

void engine_kick(engine *e, const char *gid, int64_t lease_until_ms, engine_waiter_fn fn, void *arg)
{
    waiter *w = NULL;
    if (fn != NULL) {
        w = calloc(1, sizeof(*w));
        if (w == NULL) {
            fn(arg, 500, "{\"message\":\"out of memory\"}");
            return;
        }
        w->fn = fn;
        w->arg = arg;
    }
    event *ev = calloc(1, sizeof(*ev));
    char *copy = strdup(gid);
    if (ev == NULL || copy == NULL || e->stopping) {
        free(ev);
        free(copy);
        if (w)
            fn(arg, 503, "{\"message\":\"dtmq is stopping; the transaction will be resumed\"}");
        free(w);
        return;
    }
    ev->kind = EV_KICK;
    ev->gid = copy;
    ev->lease_until = lease_until_ms;
    ev->waiter = w;
    engine_post(e, ev);
}

store_result engine_poke(engine *e, const char *gid)
{
    store_result r = store_touch_cron(e->b->store, gid, "", dtmq_now_ms(), 0);
    if (r != STORE_CONFLICT)
        return r;
    trans_global *t = NULL; /* leased (running now), or finished? */
    r = store_find_trans(e->b->store, gid, &t);
    if (r == STORE_OK && trans_status_is_final(t->status))
        r = STORE_CONFLICT;
    trans_free(t);
    return r;
}

/* Claims due transactions (at most CRON_BATCH, and no more than the engine
 * has room for) and kicks a pass of each. Returns 1 when more may be due at
 * once (a cap was reached), 0 when none is left, -1 when the engine is full.
 * The claims of a batch share one commit (the cron thread defers
 * durability): the passes start once the leases are durable. */
static int cron_claim_batch(engine *e)
{
    char *gids[CRON_BATCH];
    int claimed = 0, room = CRON_MAX_ACTIVE - (atomic_load(&e->active_count) + engine_queue_depth(e));
    if (room <= 0)
        return -1; /* busy: try again soon */
    int64_t lease = engine_lease_ms(e, NULL), now = dtmq_now_ms();
    while (claimed < CRON_BATCH && claimed < room && !e->stopping) {
        trans_global *t = NULL;
        store_result r = store_claim_due(e->b->store, now, lease, e->owner, &t);
        if (r == STORE_NOT_FOUND)
            break;
        if (r != STORE_OK) {
            log_warn("cron: cannot claim due transactions: %s", store_last_error());
            break;
        }
        log_gid_debug(t->gid, "cron: claimed (%s)", t->status);
        gids[claimed++] = t->gid; /* taken over from t */
        t->gid = NULL;
        trans_free(t);
    }
    int durable = store_sync(e->b->store) == STORE_OK;
    if (!durable) /* the leases are lost; the transactions stay due */
        log_warn("cron: the claims were not made durable: %s", store_last_error());
    for (int i = 0; i < claimed; i++) {
        if (durable)
            engine_kick(e, gids[i], now + lease, NULL, NULL);
        free(gids[i]);
    }
    return claimed == CRON_BATCH || claimed == room;
}

static void cron_sleep(engine *e, int64_t ms)
{
    struct timespec until = dtmq_deadline_after_ms(ms);
    pthread_mutex_lock(&e->cron_mu);
    while (!e->stopping &&
           pthread_cond_timedwait(&e->cron_cv, &e->cron_mu, &until) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&e->cron_mu);
}

static void *cron_main(void *arg)
{
    engine *e = arg;
    store_defer_durability(true); /* cron_claim_batch syncs before kicking */
    while (!e->stopping) {
        retention_tick(e);
        int more = cron_claim_batch(e);
        if (more < 0) {
            cron_sleep(e, CRON_BACKOFF_MS);
            continue;
        }
        if (more)
            continue; /* more may be due right now */
        /* DTM sleeps TransCronInterval minus up to 1 s of jitter, so several
         * processes do not poll the store in lockstep. */
        unsigned jitter = 0;
        if (getrandom(&jitter, sizeof(jitter), 0) != sizeof(jitter))
            jitter = 0;
        int64_t ms = (int64_t)e->b->cfg->trans_cron_interval * 1000;
        ms -= ms > 1000 ? (int64_t)(jitter % 1000) : (int64_t)(jitter % (unsigned)(ms / 2 + 1));
        cron_sleep(e, ms);
    }
    return NULL;
}

static void make_owner(engine *e)
{
    char host[64] = "host";
    gethostname(host, sizeof(host) - 1);
    char nonce[GID_LEN + 1];
    if (gid_new(nonce) != 0)
        snprintf(nonce, sizeof(nonce), "%ld", (long)time(NULL));
    snprintf(e->owner, sizeof(e->owner), "%.40s:%d:%.8s", host, (int)getpid(), nonce);
}

engine *engine_start(broker *b, char *err, size_t errlen)
{
    engine *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        snprintf(err, errlen, "engine: out of memory");
        return NULL;
    }
    e->b = b;
    make_owner(e);
    if (b->kafka != NULL) {
        e->kafka = kafka_link_producer(b->kafka);
        e->topics = kafka_link_topics(b->kafka);
    }
    pthread_mutex_init(&e->replies_mu, NULL);
    pthread_mutex_init(&e->cron_mu, NULL);
    pthread_cond_init(&e->cron_cv, NULL);
    e->http = http_dispatch_start(ENGINE_MAX_IN_FLIGHT);
    e->workers = calloc(ENGINE_WORKERS, sizeof(worker));
    if (e->http == NULL || e->workers == NULL) {
        snprintf(err, errlen, "engine: cannot start the HTTP dispatcher");
        http_dispatch_stop(e->http);
        free(e->workers);
        free(e);
        return NULL;
    }
    for (int i = 0; i < ENGINE_WORKERS; i++) {
        worker *w = &e->workers[i];
        w->e = e;
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
        pthread_create(&w->thread, NULL, worker_main, w);
        e->worker_count++;
    }
    e->cron_started = pthread_create(&e->cron, NULL, cron_main, e) == 0;
    e->replies_timer_started = pthread_create(&e->replies_timer, NULL, replies_timer_main, e) == 0;
    log_info("engine: %d workers, lease owner %s", e->worker_count, e->owner);
    return e;
}

/*
 * Order matters: the workers stop before the dispatcher, so no worker can
 * hand the dispatcher a call while it shuts down. Results that arrive after
 * the workers stopped are queued and freed by engine_free; nothing is
 * recorded for them, and the leases the workers gave back let another
 * process (or the next start) redo those calls.
 */
void engine_stop(engine *e)
{
    if (e == NULL || e->stopping)
        return;
    pthread_mutex_lock(&e->cron_mu);
    e->stopping = 1;
    pthread_cond_broadcast(&e->cron_cv);
    pthread_mutex_unlock(&e->cron_mu);
    if (e->cron_started)
        pthread_join(e->cron, NULL);
    for (int i = 0; i < e->worker_count; i++) {
        event *ev = calloc(1, sizeof(*ev));
        ev->kind = EV_STOP;
        ev->gid = strdup("");
        worker_enqueue(&e->workers[i], ev); /* straight to this worker, not by hash */
    }
    for (int i = 0; i < e->worker_count; i++) {
        pthread_join(e->workers[i].thread, NULL);
        drain_queue(&e->workers[i]);
    }
    /* Answers waiting for their commit (pass.c) go out before the HTTP
     * server stops; the store commits at once, so this is short. */
    for (int ms = 0; atomic_load(&e->durable_pending) > 0 && ms < 30000; ms++)
        usleep(1000);
    if (e->replies_timer_started)
        pthread_join(e->replies_timer, NULL);
    http_dispatch_stop(e->http); /* in-flight calls end with "dispatcher stopped" */
    e->http = NULL;
    for (int i = 0; i < e->worker_count; i++)
        drain_queue(&e->workers[i]); /* their results: nothing is recorded */
}

void engine_free(engine *e)
{
    if (e == NULL)
        return;
    for (int i = 0; i < e->worker_count; i++) {
        pthread_mutex_destroy(&e->workers[i].mu);
        pthread_cond_destroy(&e->workers[i].cv);
    }
    for (int i = 0; i < e->worker_count; i++)
        drain_queue(&e->workers[i]); /* Kafka deliveries reported after engine_stop */
    replies_free_all(e);
    pthread_mutex_destroy(&e->replies_mu);
    pthread_mutex_destroy(&e->cron_mu);
    pthread_cond_destroy(&e->cron_cv);
    free(e->workers);
    free(e);
}
