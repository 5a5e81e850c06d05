/*
 * http_dispatch.c — calls transaction branches over HTTP, many at once, from
 * one thread.
 *
 * The engine decides *what* to call (saga action, TCC confirm, query-back...);
 * this file only does the HTTP part and maps the answer to DTM's four
 * outcomes (protocol reference 2.1). Nothing here blocks per call: a single
 * dispatcher thread drives libcurl's multi interface and sleeps in
 * curl_multi_poll() until a socket is ready, a curl timer fires, or
 * http_dispatch_submit() wakes it with curl_multi_wakeup().
 *
 * Life of a call:
 *
 *   submit (any thread)      copy *call into a dispatch_call, append it to the
 *                            queue under d->lock, wake the dispatcher
 *   admit (dispatcher)       while fewer than max_in_flight run, pop the queue,
 *                            configure an easy handle, add it to the multi
 *   complete (dispatcher)    CURLMSG_DONE: classify, call done, free the call
 *   stop                     everything still queued or running completes
 *                            with DISPATCH_ERROR "dispatcher stopped"
 *
 * Connections are reused: all easy handles share the multi handle's
 * connection cache (HTTP/1.1 keep-alive), and finished easy handles are kept
 * in a small pool and reset rather than destroyed.
 *
 * Invariants:
 *   - A dispatch_call is in exactly one place: the queue (owned by d, guarded
 *     by d->lock), or in flight (owned by the dispatcher thread, linked on
 *     d->running), or being completed (owned by dispatch_complete, which
 *     frees it). Its strings are private copies made at submit time.
 *   - d->queued + d->in_flight is the number of calls whose done callback has
 *     not started yet; both change only under d->lock. A call counts as in
 *     flight from the moment the dispatcher pops it until just before its
 *     callback runs.
 *   - done is called exactly once per accepted call, on the dispatcher thread,
 *     never with d->lock held (so a callback may call http_dispatch_submit).
 *   - Once d->stopping is set nothing enters the queue, and no thread calls
 *     curl_multi_wakeup (it is only called under d->lock while !stopping), so
 *     the multi handle can be cleaned up after the thread is joined.
 */
#include "http_dispatch.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum {
    DISPATCH_MAX_BODY = 1 << 20,        /* response bytes kept; the rest is dropped */
    DISPATCH_MAX_CONNECT_MS = 5000,     /* connect timeout cap */
    DISPATCH_POLL_MAX_MS = 1000,        /* upper bound of one curl_multi_poll */
    DISPATCH_ERROR_TEXT = CURL_ERROR_SIZE + 128,
};

static const char DISPATCH_STOPPED[] = "dispatcher stopped";

typedef struct dispatch_call {
    struct dispatch_call *next; /* queue link, then in-flight list link */
    struct dispatch_call *prev; /* in-flight list only */

    /* Request: private copies, freed by dispatch_call_free. */
    bool is_post;
    char *url;
    char *body;                 /* POST only; never NULL for POST */
    size_t body_len;
    struct curl_slist *headers; /* caller's headers plus our defaults */
    long timeout_ms;
    http_call_done done;
    void *arg;

    /* Transfer state, dispatcher thread only. */
    CURL *easy;                 /* borrowed from the pool while in flight */
    char *resp;                 /* NUL-terminated, at most DISPATCH_MAX_BODY bytes */
    size_t resp_len;
    size_t resp_cap;            /* bytes allocated for resp, excluding the NUL */
    long long started_ms;
    char curl_error[CURL_ERROR_SIZE];   /* CURLOPT_ERRORBUFFER */
    char error[DISPATCH_ERROR_TEXT];    /* what the callback sees as result->error */
} dispatch_call;

struct http_dispatch {
    pthread_t thread;
    CURLM *multi;
    int max_in_flight;

    pthread_mutex_t lock;  /* guards the fields down to `stopping` */
    dispatch_call *queue_head;
    dispatch_call *queue_tail;
    int queued;
    int in_flight;
    bool stopping;

    /* Dispatcher thread only. */
    dispatch_call *running;  /* in-flight calls, doubly linked */
    CURL **idle_easy;        /* reset easy handles ready for reuse */
    int idle_count;          /* <= max_in_flight */
};

static pthread_once_t dispatch_curl_once = PTHREAD_ONCE_INIT;
static CURLcode dispatch_curl_init_result = CURLE_FAILED_INIT;

static long long dispatch_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- calls: copy, free ------------------------------------------------- */

static void dispatch_call_free(dispatch_call *c)
{
    if (c == NULL)
        return;
    free(c->url);
    free(c->body);
    curl_slist_free_all(c->headers);
    free(c->resp);
    free(c);
}

static bool dispatch_header_is(const char *header, const char *name)
{
    size_t n = strlen(name);
    return strncasecmp(header, name, n) == 0 && header[n] == ':';
}

/* Appends one header; 0 or -1 (out of memory). */
static int dispatch_add_header(struct curl_slist **list, const char *header)
{
    struct curl_slist *grown = curl_slist_append(*list, header);
    if (grown == NULL)
        return -1;
    *list = grown;
    return 0;
}

/* Copies the caller's headers, then adds Content-Type: application/json for a
 * POST and an empty Expect (no 100-continue round trip) unless the caller set
 * them. */
static int dispatch_copy_headers(dispatch_call *c, const char *const *headers)
{
    bool has_type = false, has_expect = false;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
        has_type = has_type || dispatch_header_is(headers[i], "Content-Type");
        has_expect = has_expect || dispatch_header_is(headers[i], "Expect");
        if (dispatch_add_header(&c->headers, headers[i]) != 0)
            return -1;
    }
    if (c->is_post && !has_type && dispatch_add_header(&c->headers, "Content-Type: application/json") != 0)
        return -1;
    if (c->is_post && !has_expect && dispatch_add_header(&c->headers, "Expect:") != 0)
        return -1;
    return 0;
}

static bool dispatch_call_is_valid(const http_call *call)
{
    return call != NULL && call->url != NULL && call->done != NULL && call->timeout_ms > 0 &&
           call->method != NULL &&
           (strcasecmp(call->method, "GET") == 0 || strcasecmp(call->method, "POST") == 0) &&
           (call->body != NULL || call->body_len == 0);
}

/* A private copy of *call (caller owns the result), or NULL. A GET drops the
 * body: DTM sends none. */
static dispatch_call *dispatch_call_copy(const http_call *call)
{
    dispatch_call *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->is_post = strcasecmp(call->method, "POST") == 0;
    c->url = strdup(call->url);
    c->timeout_ms = call->timeout_ms;
    c->done = call->done;
    c->arg = call->arg;
    if (c->is_post) {
        c->body_len = call->body != NULL ? call->body_len : 0;
        c->body = malloc(c->body_len + 1);
        if (c->body != NULL && c->body_len > 0)
            memcpy(c->body, call->body, c->body_len);
    }
    if (c->url == NULL || (c->is_post && c->body == NULL) || dispatch_copy_headers(c, call->headers) != 0) {
        dispatch_call_free(c);
        return NULL;
    }
    return c;
}

/* ---- completion -------------------------------------------------------- */

/* Runs the callback and frees c. The caller has already taken c off the
 * queue or the in-flight list and out of the counters. */
static void dispatch_complete(dispatch_call *c, dispatch_outcome outcome, int http_status,
                              long long finished_ms)
{
    http_call_result r = {
        .outcome = outcome,
        .http_status = http_status,
        .body = c->resp != NULL ? c->resp : "",
        .body_len = c->resp_len,
        .error = c->error,
        .started_ms = c->started_ms,
        .finished_ms = finished_ms,
    };
    c->done(c->arg, &r);
    dispatch_call_free(c);
}

/* Completes a call that was counted in flight. */
static void dispatch_complete_in_flight(http_dispatch *d, dispatch_call *c, dispatch_outcome outcome,
                                        int http_status)
{
    long long finished_ms = dispatch_now_ms();
    pthread_mutex_lock(&d->lock);
    d->in_flight--;
    pthread_mutex_unlock(&d->lock);
    dispatch_complete(c, outcome, http_status, finished_ms);
}

static void dispatch_set_error(dispatch_call *c, const char *text)
{
    snprintf(c->error, sizeof(c->error), "%s", text);
}

/* DTM's HTTPResp2DtmError: a transport error first, then 425/ONGOING,
 * 409/FAILURE, other non-200, 200. */
static dispatch_outcome dispatch_classify(CURLcode res, long status, const char *body, size_t len)
{
    if (res != CURLE_OK)
        return DISPATCH_ERROR;
    if (status == 425 || memmem(body, len, "ONGOING", 7) != NULL)
        return DISPATCH_ONGOING;
    if (status == 409 || memmem(body, len, "FAILURE", 7) != NULL)
        return DISPATCH_FAILURE;
    if (status != 200)
        return DISPATCH_ERROR;
    return DISPATCH_SUCCESS;
}

static void dispatch_describe_transport_error(dispatch_call *c, CURLcode res)
{
    const char *text = curl_easy_strerror(res);
    if (c->curl_error[0] != '\0' && strcmp(c->curl_error, text) != 0)
        snprintf(c->error, sizeof(c->error), "%s: %s", text, c->curl_error);
    else
        dispatch_set_error(c, text);
}

/* ---- easy handles ------------------------------------------------------ */

/* An easy handle from the pool or a new one; NULL when out of memory. */
static CURL *dispatch_easy_get(http_dispatch *d)
{
    if (d->idle_count > 0)
        return d->idle_easy[--d->idle_count];
    return curl_easy_init();
}

/* Takes back an easy handle that is no longer in the multi. */
static void dispatch_easy_put(http_dispatch *d, CURL *easy)
{
    if (d->idle_count < d->max_in_flight) {
        curl_easy_reset(easy);
        d->idle_easy[d->idle_count++] = easy;
    } else {
        curl_easy_cleanup(easy);
    }
}

/* CURLOPT_WRITEFUNCTION: keeps the first DISPATCH_MAX_BODY bytes. */
static size_t dispatch_on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    dispatch_call *c = userp;
    size_t n = size * nmemb;
    size_t keep = DISPATCH_MAX_BODY - c->resp_len;
    if (keep > n)
        keep = n;
    if (keep == 0)
        return n;
    if (c->resp_len + keep > c->resp_cap) {
        size_t cap = c->resp_cap != 0 ? c->resp_cap : 1024;
        while (cap < c->resp_len + keep)
            cap *= 2;
        if (cap > DISPATCH_MAX_BODY)
            cap = DISPATCH_MAX_BODY;
        char *grown = realloc(c->resp, cap + 1);
        if (grown == NULL)
            return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
        c->resp = grown;
        c->resp_cap = cap;
    }
    memcpy(c->resp + c->resp_len, data, keep);
    c->resp_len += keep;
    c->resp[c->resp_len] = '\0';
    return n;
}

/* Sets every option of one transfer; 0 or -1. The codes are OR-ed: nonzero
 * means at least one option was refused. */
static int dispatch_easy_configure(CURL *easy, dispatch_call *c)
{
    long connect_ms = c->timeout_ms < DISPATCH_MAX_CONNECT_MS ? c->timeout_ms : DISPATCH_MAX_CONNECT_MS;
    int rc = CURLE_OK;
    rc |= curl_easy_setopt(easy, CURLOPT_URL, c->url);
    rc |= curl_easy_setopt(easy, CURLOPT_PRIVATE, c);
    rc |= curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    rc |= curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    rc |= curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    rc |= curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    rc |= curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    rc |= curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    rc |= curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    rc |= curl_easy_setopt(easy, CURLOPT_HTTPHEADER, c->headers);
    rc |= curl_easy_setopt(easy, CURLOPT_USERAGENT, "dtmq");
    rc |= curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, dispatch_on_body);
    rc |= curl_easy_setopt(easy, CURLOPT_WRITEDATA, c);
    rc |= curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, c->curl_error);
    if (c->is_post) {
        rc |= curl_easy_setopt(easy, CURLOPT_POST, 1L);
        rc |= curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body_len);
        rc |= curl_easy_setopt(easy, CURLOPT_POSTFIELDS, c->body);
    } else {
        rc |= curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    }
    return rc == CURLE_OK ? 0 : -1;
}

/* ---- the in-flight list (dispatcher thread only) ------------------------ */

static void dispatch_running_add(http_dispatch *d, dispatch_call *c)
{
    c->prev = NULL;
    c->next = d->running;
    if (d->running != NULL)
        d->running->prev = c;
    d->running = c;
}

static void dispatch_running_remove(http_dispatch *d, dispatch_call *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        d->running = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

/* ---- dispatcher thread ------------------------------------------------- */

/* Pops the next queued call if a transfer slot is free; the call then counts
 * as in flight. NULL when the queue is empty, all slots are busy, or the
 * dispatcher is stopping. */
static dispatch_call *dispatch_take_admissible(http_dispatch *d)
{
    dispatch_call *c = NULL;
    pthread_mutex_lock(&d->lock);
    if (!d->stopping && d->queue_head != NULL && d->in_flight < d->max_in_flight) {
        c = d->queue_head;
        d->queue_head = c->next;
        if (d->queue_head == NULL)
            d->queue_tail = NULL;
        c->next = NULL;
        d->queued--;
        d->in_flight++;
    }
    pthread_mutex_unlock(&d->lock);
    return c;
}

/* Starts one transfer; if it cannot start, completes the call with ERROR. */
static void dispatch_start_transfer(http_dispatch *d, dispatch_call *c)
{
    c->started_ms = dispatch_now_ms();
    c->easy = dispatch_easy_get(d);
    if (c->easy == NULL) {
        dispatch_set_error(c, "out of memory (curl_easy_init)");
        dispatch_complete_in_flight(d, c, DISPATCH_ERROR, 0);
        return;
    }
    if (dispatch_easy_configure(c->easy, c) != 0) {
        dispatch_set_error(c, "cannot configure the transfer");
    } else {
        CURLMcode mc = curl_multi_add_handle(d->multi, c->easy);
        if (mc == CURLM_OK) {
            dispatch_running_add(d, c);
            return;
        }
        dispatch_set_error(c, curl_multi_strerror(mc));
    }
    dispatch_easy_put(d, c->easy);
    c->easy = NULL;
    dispatch_complete_in_flight(d, c, DISPATCH_ERROR, 0);
}

static void dispatch_admit_queued(http_dispatch *d)
{
    dispatch_call *c;
    while ((c = dispatch_take_admissible(d)) != NULL)
        dispatch_start_transfer(d, c);
}

/* Takes c's easy handle out of the multi and back to the pool. */
static void dispatch_detach(http_dispatch *d, dispatch_call *c)
{
    curl_multi_remove_handle(d->multi, c->easy);
    dispatch_easy_put(d, c->easy);
    c->easy = NULL;
    dispatch_running_remove(d, c);
}

static void dispatch_finish_transfer(http_dispatch *d, CURL *easy, CURLcode res)
{
    char *priv = NULL;
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    dispatch_call *c = (dispatch_call *)priv;
    dispatch_outcome outcome = dispatch_classify(res, status, c->resp != NULL ? c->resp : "", c->resp_len);
    if (res != CURLE_OK)
        dispatch_describe_transport_error(c, res);
    dispatch_detach(d, c);
    dispatch_complete_in_flight(d, c, outcome, (int)status);
}

/* Completes every transfer curl reports as done. */
static void dispatch_collect_finished(http_dispatch *d)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(d->multi, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE)
            dispatch_finish_transfer(d, msg->easy_handle, msg->data.result);
    }
}

static bool dispatch_is_stopping(http_dispatch *d)
{
    pthread_mutex_lock(&d->lock);
    bool stopping = d->stopping;
    pthread_mutex_unlock(&d->lock);
    return stopping;
}

static bool dispatch_can_admit(http_dispatch *d)
{
    pthread_mutex_lock(&d->lock);
    bool can = !d->stopping && d->queue_head != NULL && d->in_flight < d->max_in_flight;
    pthread_mutex_unlock(&d->lock);
    return can;
}

/* On stop: every running transfer ends with "dispatcher stopped". */
static void dispatch_abort_running(http_dispatch *d)
{
    while (d->running != NULL) {
        dispatch_call *c = d->running;
        dispatch_detach(d, c);
        dispatch_set_error(c, DISPATCH_STOPPED);
        dispatch_complete_in_flight(d, c, DISPATCH_ERROR, 0);
    }
}

/* On stop: every queued call ends with "dispatcher stopped", never started
 * (started_ms == finished_ms). */
static void dispatch_abort_queued(http_dispatch *d)
{
    pthread_mutex_lock(&d->lock);
    dispatch_call *c = d->queue_head;
    d->queue_head = d->queue_tail = NULL;
    d->queued = 0;
    pthread_mutex_unlock(&d->lock);
    while (c != NULL) {
        dispatch_call *next = c->next;
        long long now = dispatch_now_ms();
        c->started_ms = now;
        dispatch_set_error(c, DISPATCH_STOPPED);
        dispatch_complete(c, DISPATCH_ERROR, 0, now);
        c = next;
    }
}

/* Only when curl_multi_poll fails (poll() error), which should not happen. */
static void dispatch_backoff(void)
{
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, NULL);
}

static void *dispatch_thread_main(void *arg)
{
    http_dispatch *d = arg;
    while (!dispatch_is_stopping(d)) {
        dispatch_admit_queued(d);
        int running = 0;
        CURLMcode mc = curl_multi_perform(d->multi, &running);
        dispatch_collect_finished(d);
        /* Finished transfers freed slots for queued calls: admit them now. */
        if (mc == CURLM_OK && dispatch_can_admit(d))
            continue;
        /* A submit or stop between the checks above and here is not lost:
         * its curl_multi_wakeup makes this poll return at once. */
        if (curl_multi_poll(d->multi, NULL, 0, DISPATCH_POLL_MAX_MS, NULL) != CURLM_OK)
            dispatch_backoff(); /* poll() itself failed: do not spin */
    }
    dispatch_abort_running(d);
    dispatch_abort_queued(d);
    return NULL;
}

/* ---- public API -------------------------------------------------------- */

static void dispatch_curl_global_init(void)
{
    dispatch_curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Frees d's resources; the thread is not running. */
static void dispatch_free(http_dispatch *d)
{
    for (int i = 0; i < d->idle_count; i++)
        curl_easy_cleanup(d->idle_easy[i]);
    free(d->idle_easy);
    if (d->multi != NULL)
        curl_multi_cleanup(d->multi);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

http_dispatch *http_dispatch_start(int max_in_flight)
{
    if (max_in_flight <= 0)
        return NULL;
    pthread_once(&dispatch_curl_once, dispatch_curl_global_init);
    if (dispatch_curl_init_result != CURLE_OK)
        return NULL;
    http_dispatch *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    d->max_in_flight = max_in_flight;
    if (pthread_mutex_init(&d->lock, NULL) != 0) {
        free(d);
        return NULL;
    }
    d->idle_easy = calloc((size_t)max_in_flight, sizeof(*d->idle_easy));
    d->multi = curl_multi_init();
    /* Keep an idle connection per transfer slot for reuse. */
    if (d->idle_easy == NULL || d->multi == NULL ||
        curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS, (long)max_in_flight) != CURLM_OK ||
        pthread_create(&d->thread, NULL, dispatch_thread_main, d) != 0) {
        dispatch_free(d);
        return NULL;
    }
    return d;
}

int http_dispatch_submit(http_dispatch *d, const http_call *call)
{
    if (d == NULL || !dispatch_call_is_valid(call))
        return -1;
    dispatch_call *c = dispatch_call_copy(call);
    if (c == NULL)
        return -1;
    pthread_mutex_lock(&d->lock);
    if (d->stopping) {
        pthread_mutex_unlock(&d->lock);
        dispatch_call_free(c);
        return -1;
    }
    if (d->queue_tail != NULL)
        d->queue_tail->next = c;
    else
        d->queue_head = c;
    d->queue_tail = c;
    d->queued++;
    curl_multi_wakeup(d->multi); /* under the lock: see the stopping invariant */
    pthread_mutex_unlock(&d->lock);
    return 0;
}

int http_dispatch_pending(http_dispatch *d)
{
    pthread_mutex_lock(&d->lock);
    int n = d->queued + d->in_flight;
    pthread_mutex_unlock(&d->lock);
    return n;
}

/* Stop frees d: the caller must make sure no other thread is inside or will
 * enter http_dispatch_submit/pending once stop returns. Submits that race
 * with stop (and submits from done callbacks run by stop) get -1. Must not
 * be called from a done callback (the thread would join itself). */
void http_dispatch_stop(http_dispatch *d)
{
    if (d == NULL)
        return;
    pthread_mutex_lock(&d->lock);
    d->stopping = true;
    curl_multi_wakeup(d->multi);
    pthread_mutex_unlock(&d->lock);
    pthread_join(d->thread, NULL);
    /* A submit that saw !stopping has released the lock by now, so nobody
     * touches d->multi any more. */
    pthread_mutex_lock(&d->lock);
    pthread_mutex_unlock(&d->lock);
    dispatch_free(d);
}

/* ---- branch URLs ------------------------------------------------------- */

static bool dispatch_is_unreserved(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

/* Length of s percent-encoded (RFC 3986: all but unreserved characters). */
static size_t dispatch_escaped_len(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        n += dispatch_is_unreserved((unsigned char)*s) ? 1 : 3;
    return n;
}

/* Writes "name=escaped(value)" at out; returns the end. */
static char *dispatch_put_param(char *out, const char *name, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(name);
    memcpy(out, name, n);
    out += n;
    *out++ = '=';
    for (const unsigned char *s = (const unsigned char *)value; *s != '\0'; s++) {
        if (dispatch_is_unreserved(*s)) {
            *out++ = (char)*s;
        } else {
            *out++ = '%';
            *out++ = hex[*s >> 4];
            *out++ = hex[*s & 15];
        }
    }
    return out;
}

char *http_dispatch_branch_url(const char *url, const char *gid, const char *trans_type,
                               const char *branch_id, const char *op)
{
    if (url == NULL)
        return NULL;
    const char *names[4] = {"gid", "trans_type", "branch_id", "op"};
    const char *values[4] = {gid ? gid : "", trans_type ? trans_type : "", branch_id ? branch_id : "",
                             op ? op : ""};
    size_t url_len = strlen(url);
    const char *query = strchr(url, '?');
    /* "?" when there is no query, "&" after an existing one, nothing when the
     * URL already ends with '?' or '&'. */
    const char *sep = query == NULL ? "?" : (url[url_len - 1] == '?' || url[url_len - 1] == '&') ? "" : "&";
    size_t total = url_len + strlen(sep) + 1;
    for (int i = 0; i < 4; i++)
        total += strlen(names[i]) + 1 + dispatch_escaped_len(values[i]) + (i > 0 ? 1 : 0);
    char *out = malloc(total);
    if (out == NULL)
        return NULL;
    char *p = out;
    memcpy(p, url, url_len);
    p += url_len;
    p = stpcpy(p, sep);
    for (int i = 0; i < 4; i++) {
        if (i > 0)
            *p++ = '&';
        p = dispatch_put_param(p, names[i], values[i]);
    }
    *p = '\0';
    return out;
}
