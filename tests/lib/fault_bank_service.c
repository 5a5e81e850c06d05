/*
 * fault_bank_service.c — the bank of dtmq's fault tests as a service: the
 * HTTP handlers with DTM barrier semantics on the in-memory balances,
 * fb_service_*, fb_set_faults, and the Kafka worker that answers kafka://
 * branches with the same handler. The rules are in fault_bank.h.
 */
#include "fault_bank.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <dtmq/dtmq_worker.h>
#include "fault_bank_internal.h"
#include "stub_http.h"
#include "testlib.h"


/* ---- the bank service --------------------------------------------------- */

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
    int i = fbi_idx_of(b, gid);
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
        fbi_ev_add(b, &e);
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
    fbi_ev_add(b, &arrival);

    unsigned r = fb_rand(b, 100);
    int err_before = 0, ongoing = 0, err_after = 0;
    if ((int)r < err_pct) {
        unsigned m = fb_rand(b, 4);
        err_before = m < 2;
        ongoing = m == 2;
        err_after = m == 3;
    }
    if ((int)fb_rand(b, 100) < delay_pct)
        test_sleep_ms(delay_ms); /* longer than RequestTimeout: dtmq gives up and retries */

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
    fbi_ev_add(b, &e);
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
    /* A thread per connection: a stalled call (fb_sleep_ms in the handler)
     * holds only its own connection. In a thread pool it would hold every
     * keep-alive connection of its thread, so calls dtmq sent meanwhile would
     * be seen seconds late, after calls dtmq sent later — and the history
     * checker would blame dtmq for the order it sees. */
    stub_http_options o = {.port = port, .threads = 0, .connection_timeout_s = 30};
    b->daemon = stub_http_start(svc_handle, b, &o, &b->port, b->url, sizeof(b->url));
    if (b->daemon == NULL)
        return -1;
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
                test_sleep_ms(500);
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
            test_sleep_ms(500);
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

void fbi_worker_stop(fault_bank *b)
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
