/*
 * bench_http.c — the HTTP load generator of the benchmarks: closed loop, N
 * keep-alive connections driven by one epoll thread over raw HTTP/1.1
 * sockets, so that its own CPU cost stays small on a machine it shares with
 * dtmq and the stub service. Each connection runs one transaction at a time
 * and starts the next when the last one's final answer arrived; the latency
 * of a transaction is from its first byte sent to its final answer.
 *
 *   bench_http --mode MODE --target HOST:PORT [options]
 *
 * Modes (what one transaction is):
 *   dtm      POST /api/dtmsvr/submit of a saga (--steps, --action,
 *            --compensate, --payload-bytes) with wait_result: its 200 comes
 *            after the saga reached its final state (succeed).
 *   msg      a 2-phase message: POST prepare (one step --action, query_prepared
 *            --query-prepared), then POST submit with wait_result.
 *   direct   --requests GET requests to --path on the target, one after the
 *            other (the HTTP ceiling: the same requests without dtmq).
 *   pending  --count submits of a saga without wait_result, then exit (fills
 *            dtmq with transactions; no time bound).
 *
 * Options: --concurrency N (connections), --seconds S (measured window),
 * --warmup S, --extra 'JSON members' (added to every body, e.g.
 * '"retry_interval":60'), --no-wait, --gid-prefix P, --pid PID (dtmq: CPU
 * and peak RSS over the window), --stub-pid PID, --drain S (how long the
 * transactions in flight at the window's end may take to end; default 30),
 * --max-seconds S (pending: stop submitting after S seconds).
 *
 * Prints one RESULT line (bench_common.h); exit 0 when every transaction got
 * its expected answer, 1 when some did not (errors=N tells how many), 2 on
 * bad usage or when the target cannot be reached.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>

#include "bench_common.h"

#define PROG "bench_http"
#define IN_CAP 65536

typedef enum { MODE_DTM, MODE_MSG, MODE_DIRECT, MODE_PENDING } bench_mode;

typedef struct options {
    bench_mode mode;
    const char *mode_name;
    char host[64];
    int port;
    int concurrency;
    double seconds, warmup;
    int steps;
    const char *action, *compensate, *query_prepared;
    int payload_bytes;
    int requests;
    const char *path;
    long count;
    const char *extra;
    int wait;
    char prefix[64];
    int pid, stub_pid;
    double drain;       /* seconds to let transactions in flight end */
    double max_seconds; /* pending: stop submitting after this long (0: no limit) */
} options;

typedef struct conn {
    int fd;
    int slot;
    uint64_t seq;      /* transactions started on this connection */
    int step;          /* request index within the transaction */
    int busy;          /* a transaction is in progress */
    int64_t txn_start; /* ns */
    char in[IN_CAP];
    size_t in_len;
} conn;

typedef struct run_state {
    const options *o;
    int epfd;
    conn *conns;
    char *body;        /* request buffer, reused */
    size_t body_cap;
    char *payload_json; /* the payloads array, built once */
    char *steps_json;   /* the steps array, built once */
    int64_t measure_from, measure_to; /* ns; txns finishing inside are counted */
    int64_t submit_until;             /* pending: ns, 0 = no limit */
    int accepting;      /* start new transactions */
    long started, finished_total;
    uint64_t measured, errors, errors_printed;
    bench_hist hist;
} run_state;

/* ---- options ------------------------------------------------------------- */

static void usage(void)
{
    bench_die(PROG, "usage: bench_http --mode dtm|msg|direct|pending --target HOST:PORT "
                    "[--concurrency N] [--seconds S] [--warmup S] [--steps N] [--action URL] "
                    "[--compensate URL] [--query-prepared URL] [--payload-bytes N] "
                    "[--requests K] [--path P] [--count N] [--extra JSON] [--no-wait] "
                    "[--gid-prefix P] [--pid PID] [--stub-pid PID] [--drain S] [--max-seconds S]");
}

static void parse_target(options *o, const char *t)
{
    const char *colon = strrchr(t, ':');
    if (colon == NULL || (size_t)(colon - t) >= sizeof(o->host))
        bench_die(PROG, "--target: '%s' is not HOST:PORT", t);
    memcpy(o->host, t, (size_t)(colon - t));
    o->host[colon - t] = '\0';
    o->port = (int)bench_parse_long("--target port", colon + 1, 1, 65535);
}

static void parse_mode(options *o, const char *m)
{
    static const struct { const char *name; bench_mode mode; } modes[] = {
        {"dtm", MODE_DTM}, {"msg", MODE_MSG}, {"direct", MODE_DIRECT}, {"pending", MODE_PENDING}};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
        if (strcmp(m, modes[i].name) == 0) {
            o->mode = modes[i].mode;
            o->mode_name = modes[i].name;
            return;
        }
    bench_die(PROG, "--mode: '%s' is not dtm, msg, direct or pending", m);
}

static void parse_options(options *o, int argc, char **argv)
{
    memset(o, 0, sizeof(*o));
    o->concurrency = 10;
    o->seconds = 5;
    o->warmup = 1;
    o->steps = 2;
    o->action = o->compensate = o->query_prepared = "";
    o->requests = 1;
    o->path = "/ok";
    o->extra = "";
    o->wait = 1;
    o->drain = 30;
    o->mode_name = NULL;
    snprintf(o->prefix, sizeof(o->prefix), "b%x%llx", (unsigned)getpid(),
             (unsigned long long)bench_wall_ms());
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--no-wait") == 0) { o->wait = 0; continue; }
        if (v == NULL)
            usage();
        i++;
        if (strcmp(a, "--mode") == 0) parse_mode(o, v);
        else if (strcmp(a, "--target") == 0) parse_target(o, v);
        else if (strcmp(a, "--concurrency") == 0) o->concurrency = (int)bench_parse_long(a, v, 1, 4096);
        else if (strcmp(a, "--seconds") == 0) o->seconds = (double)bench_parse_long(a, v, 1, 3600);
        else if (strcmp(a, "--warmup") == 0) o->warmup = (double)bench_parse_long(a, v, 0, 600);
        else if (strcmp(a, "--steps") == 0) o->steps = (int)bench_parse_long(a, v, 1, 100);
        else if (strcmp(a, "--action") == 0) o->action = v;
        else if (strcmp(a, "--compensate") == 0) o->compensate = v;
        else if (strcmp(a, "--query-prepared") == 0) o->query_prepared = v;
        else if (strcmp(a, "--payload-bytes") == 0) o->payload_bytes = (int)bench_parse_long(a, v, 0, 1 << 20);
        else if (strcmp(a, "--requests") == 0) o->requests = (int)bench_parse_long(a, v, 1, 1000);
        else if (strcmp(a, "--path") == 0) o->path = v;
        else if (strcmp(a, "--count") == 0) o->count = bench_parse_long(a, v, 1, 100000000);
        else if (strcmp(a, "--extra") == 0) o->extra = v;
        else if (strcmp(a, "--gid-prefix") == 0) snprintf(o->prefix, sizeof(o->prefix), "%s", v);
        else if (strcmp(a, "--drain") == 0) o->drain = (double)bench_parse_long(a, v, 0, 600);
        else if (strcmp(a, "--max-seconds") == 0) o->max_seconds = (double)bench_parse_long(a, v, 1, 36000);
        else if (strcmp(a, "--pid") == 0) o->pid = (int)bench_parse_long(a, v, 1, 1 << 30);
        else if (strcmp(a, "--stub-pid") == 0) o->stub_pid = (int)bench_parse_long(a, v, 1, 1 << 30);
        else usage();
    }
    if (o->mode_name == NULL || o->port == 0)
        usage();
    if (o->mode == MODE_PENDING && o->count == 0)
        bench_die(PROG, "--mode pending needs --count");
}

/* ---- request bodies -------------------------------------------------------- */

/* The JSON arrays of steps and payloads, built once: every transaction has
 * the same shape, only its gid changes. */
static void build_templates(run_state *st)
{
    const options *o = st->o;
    int steps = o->mode == MODE_MSG ? 1 : o->steps;
    size_t step_len = strlen(o->action) + strlen(o->compensate) + 40;
    size_t pay_len = (size_t)o->payload_bytes + 4;
    st->steps_json = malloc((size_t)steps * step_len + 4);
    st->payload_json = malloc((size_t)steps * pay_len + 4);
    if (st->steps_json == NULL || st->payload_json == NULL)
        bench_die(PROG, "out of memory");
    char *s = st->steps_json, *p = st->payload_json;
    *s++ = '[';
    *p++ = '[';
    for (int i = 0; i < steps; i++) {
        if (i > 0) {
            *s++ = ',';
            *p++ = ',';
        }
        if (o->mode == MODE_MSG)
            s += sprintf(s, "{\"action\":\"%s\"}", o->action);
        else
            s += sprintf(s, "{\"action\":\"%s\",\"compensate\":\"%s\"}", o->action, o->compensate);
        *p++ = '"';
        memset(p, 'x', (size_t)o->payload_bytes);
        p += o->payload_bytes;
        *p++ = '"';
    }
    strcpy(s, "]");
    strcpy(p, "]");
    st->body_cap = strlen(st->steps_json) + strlen(st->payload_json) + strlen(o->extra) +
                   strlen(o->query_prepared) + 1024;
    st->body = malloc(st->body_cap);
    if (st->body == NULL)
        bench_die(PROG, "out of memory");
}

/* Writes the request for step c->step of c's current transaction into
 * st->body; returns its length. */
static size_t build_request(run_state *st, const conn *c)
{
    const options *o = st->o;
    char gid[128];
    snprintf(gid, sizeof(gid), "%s-%d-%llu", o->prefix, c->slot, (unsigned long long)c->seq);
    const char *extra_sep = *o->extra ? "," : "";
    if (o->mode == MODE_DIRECT)
        return (size_t)snprintf(st->body, st->body_cap,
                                "GET %s?gid=%s&trans_type=saga&branch_id=0%d&op=action HTTP/1.1\r\n"
                                "Host: %s:%d\r\n\r\n",
                                o->path, gid, c->step + 1, o->host, o->port);
    const char *route = "submit";
    char json[1024];
    if (o->mode == MODE_MSG && c->step == 0) {
        route = "prepare";
        snprintf(json, sizeof(json), "\"trans_type\":\"msg\",\"query_prepared\":\"%s\"",
                 o->query_prepared);
    } else if (o->mode == MODE_MSG) {
        snprintf(json, sizeof(json), "\"trans_type\":\"msg\",\"query_prepared\":\"%s\","
                 "\"wait_result\":%s", o->query_prepared, o->wait ? "true" : "false");
    } else {
        snprintf(json, sizeof(json), "\"trans_type\":\"saga\",\"wait_result\":%s",
                 o->wait && o->mode != MODE_PENDING ? "true" : "false");
    }
    /* The body goes after the headers; its length is known once written. */
    char *body_at = st->body + 200;
    int blen = snprintf(body_at, st->body_cap - 200, "{\"gid\":\"%s\",%s,\"steps\":%s,\"payloads\":%s%s%s}",
                        gid, json, st->steps_json, st->payload_json, extra_sep, o->extra);
    char head[200];
    int hlen = snprintf(head, sizeof(head),
                        "POST /api/dtmsvr/%s HTTP/1.1\r\nHost: %s:%d\r\n"
                        "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n",
                        route, o->host, o->port, blen);
    memmove(st->body + hlen, body_at, (size_t)blen);
    memcpy(st->body, head, (size_t)hlen);
    return (size_t)(hlen + blen);
}

static int requests_per_txn(const options *o)
{
    switch (o->mode) {
    case MODE_MSG: return 2;
    case MODE_DIRECT: return o->requests;
    default: return 1;
    }
}

/* ---- connections ------------------------------------------------------------ */

static int connect_to(const options *o)
{
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)o->port);
    if (inet_pton(AF_INET, strcmp(o->host, "localhost") == 0 ? "127.0.0.1" : o->host,
                  &addr.sin_addr) != 1)
        bench_die(PROG, "--target: '%s' is not an IPv4 address", o->host);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void conn_open(run_state *st, conn *c)
{
    c->fd = connect_to(st->o);
    if (c->fd < 0)
        bench_die(PROG, "cannot connect to %s:%d: %s", st->o->host, st->o->port, strerror(errno));
    c->in_len = 0;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(st->epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

static void conn_reopen(run_state *st, conn *c)
{
    epoll_ctl(st->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    conn_open(st, c);
}

/* Sends all of buf; a keep-alive socket takes a small request at once, a
 * large one may need POLLOUT. 0 or -1. */
static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            if (poll(&p, 1, 5000) <= 0)
                return -1;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return -1;
    }
    return 0;
}

static void send_step(run_state *st, conn *c)
{
    size_t len = build_request(st, c);
    if (send_all(c->fd, st->body, len) != 0) { /* the server closed: once more on a new socket */
        conn_reopen(st, c);
        if (send_all(c->fd, st->body, len) != 0)
            bench_die(PROG, "cannot send to %s:%d: %s", st->o->host, st->o->port, strerror(errno));
    }
}

static void start_txn(run_state *st, conn *c)
{
    c->seq++;
    c->step = 0;
    c->busy = 1;
    c->txn_start = bench_now_ns();
    st->started++;
    send_step(st, c);
}

static int may_start(const run_state *st)
{
    if (st->o->mode == MODE_PENDING)
        return st->started < st->o->count &&
               (st->submit_until == 0 || bench_now_ns() < st->submit_until);
    return st->accepting;
}

/* ---- responses ---------------------------------------------------------------- */

/* Length of the whole response at the start of c->in, 0 when incomplete,
 * -1 when it cannot be parsed. *status gets the status code. */
static long response_length(conn *c, int *status, int *closes)
{
    c->in[c->in_len < IN_CAP ? c->in_len : IN_CAP - 1] = '\0';
    char *end = strstr(c->in, "\r\n\r\n");
    if (end == NULL)
        return c->in_len >= IN_CAP - 1 ? -1 : 0;
    if (strncmp(c->in, "HTTP/1.", 7) != 0)
        return -1;
    *status = atoi(c->in + 9);
    long content_length = -1;
    *closes = 0;
    for (char *line = strstr(c->in, "\r\n") + 2; line < end; line = strstr(line, "\r\n") + 2) {
        if (strncasecmp(line, "Content-Length:", 15) == 0)
            content_length = strtol(line + 15, NULL, 10);
        else if (strncasecmp(line, "Connection:", 11) == 0 && strcasestr(line, "close") != NULL &&
                 strcasestr(line, "close") < strstr(line, "\r\n"))
            *closes = 1;
        else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0)
            return -1; /* chunked answers are not expected from dtmq or the stub */
    }
    if (content_length < 0)
        return -1;
    long total = (long)(end + 4 - c->in) + content_length;
    if (total >= IN_CAP)
        return -1;
    return (long)c->in_len >= total ? total : 0;
}

static void note_error(run_state *st, conn *c, int status)
{
    st->errors++;
    if (st->errors_printed++ < 3)
        fprintf(stderr, PROG ": transaction %s-%d-%llu step %d: unexpected answer %d: %.300s\n",
                st->o->prefix, c->slot, (unsigned long long)c->seq, c->step, status,
                strstr(c->in, "\r\n\r\n") ? strstr(c->in, "\r\n\r\n") + 4 : c->in);
}

static void finish_txn(run_state *st, conn *c, int ok)
{
    int64_t now = bench_now_ns();
    c->busy = 0;
    st->finished_total++;
    if (st->o->mode == MODE_PENDING || (now >= st->measure_from && now <= st->measure_to)) {
        if (ok) {
            st->measured++;
            bench_hist_add(&st->hist, now - c->txn_start);
        }
    }
}

/* One complete answer on c: next step, or the transaction's end. */
static void on_response(run_state *st, conn *c, int status)
{
    int ok = status == 200;
    if (!ok)
        note_error(st, c, status);
    if (ok && c->step + 1 < requests_per_txn(st->o)) {
        c->step++;
        send_step(st, c);
        return;
    }
    finish_txn(st, c, ok);
    if (may_start(st))
        start_txn(st, c);
}

static void on_readable(run_state *st, conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->in + c->in_len, IN_CAP - 1 - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            int status = 0, closes = 0;
            long len;
            while ((len = response_length(c, &status, &closes)) > 0) {
                memmove(c->in, c->in + len, c->in_len - (size_t)len);
                c->in_len -= (size_t)len;
                if (closes)
                    conn_reopen(st, c);
                on_response(st, c, status);
                if (closes)
                    return;
            }
            if (len < 0)
                bench_die(PROG, "cannot parse an answer from %s:%d: %.200s", st->o->host,
                          st->o->port, c->in);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        /* closed by the server */
        int was_busy = c->busy;
        conn_reopen(st, c);
        if (was_busy) {
            note_error(st, c, 0);
            finish_txn(st, c, 0);
            if (may_start(st))
                start_txn(st, c);
        }
        return;
    }
}

/* ---- the run ------------------------------------------------------------------- */

static int busy_count(const run_state *st)
{
    int n = 0;
    for (int i = 0; i < st->o->concurrency; i++)
        n += st->conns[i].busy;
    return n;
}

static void event_loop_until(run_state *st, int64_t until_ns, int stop_when_idle)
{
    struct epoll_event evs[256];
    for (;;) {
        int64_t now = bench_now_ns();
        if (until_ns > 0 && now >= until_ns)
            return;
        if (stop_when_idle && busy_count(st) == 0)
            return;
        int n = epoll_wait(st->epfd, evs, 256, 50);
        for (int i = 0; i < n; i++)
            on_readable(st, evs[i].data.ptr);
    }
}

int main(int argc, char **argv)
{
    options o;
    parse_options(&o, argc, argv);
    run_state st;
    memset(&st, 0, sizeof(st));
    st.o = &o;
    bench_hist_reset(&st.hist);
    build_templates(&st);
    st.epfd = epoll_create1(EPOLL_CLOEXEC);
    st.conns = calloc((size_t)o.concurrency, sizeof(conn));
    if (st.conns == NULL || st.epfd < 0)
        bench_die(PROG, "out of memory");
    for (int i = 0; i < o.concurrency; i++) {
        st.conns[i].slot = i;
        conn_open(&st, &st.conns[i]);
    }

    bench_proc dtmq, stub;
    int64_t t0 = bench_now_ns();
    st.accepting = 1;
    st.measure_from = o.mode == MODE_PENDING ? t0 : t0 + (int64_t)(o.warmup * 1e9);
    st.measure_to = o.mode == MODE_PENDING ? INT64_MAX : st.measure_from + (int64_t)(o.seconds * 1e9);
    st.submit_until = o.max_seconds > 0 ? t0 + (int64_t)(o.max_seconds * 1e9) : 0;
    for (int i = 0; i < o.concurrency && may_start(&st); i++)
        start_txn(&st, &st.conns[i]);

    double self_cpu0 = 0, secs;
    if (o.mode == MODE_PENDING) {
        bench_proc_start(&dtmq, o.pid);
        bench_proc_start(&stub, o.stub_pid);
        self_cpu0 = bench_self_cpu_seconds();
        event_loop_until(&st, 0, 1);
        secs = (double)(bench_now_ns() - t0) / 1e9;
    } else {
        event_loop_until(&st, st.measure_from, 0);
        bench_proc_start(&dtmq, o.pid);
        bench_proc_start(&stub, o.stub_pid);
        self_cpu0 = bench_self_cpu_seconds();
        event_loop_until(&st, st.measure_to, 0);
        secs = o.seconds;
    }
    char extra[512];
    snprintf(extra, sizeof(extra), "cpu_gen=%.3f", (bench_self_cpu_seconds() - self_cpu0) / secs);
    bench_proc_report(&dtmq, "dtmq", secs, extra, sizeof(extra));
    bench_proc_report(&stub, "stub", secs, extra, sizeof(extra));
    /* Let transactions in flight end (not counted), so the next point starts clean. */
    st.accepting = 0;
    event_loop_until(&st, bench_now_ns() + (int64_t)(o.drain * 1e9), 1);
    int left = busy_count(&st);
    if (left > 0) {
        size_t used = strlen(extra);
        snprintf(extra + used, sizeof(extra) - used, " unfinished=%d", left);
    }
    bench_print_result(o.mode_name, o.concurrency, st.measured, secs, &st.hist, st.errors, extra);

    for (int i = 0; i < o.concurrency; i++)
        close(st.conns[i].fd);
    close(st.epfd);
    free(st.conns);
    free(st.body);
    free(st.steps_json);
    free(st.payload_json);
    return st.errors > 0 || st.measured == 0 ? 1 : 0;
}
