/*
 * bench_stub.c — the stub business service of the benchmarks: the cheapest
 * HTTP service that answers DTM's branch calls, so that what is measured is
 * dtmq, not the service. One thread, level-triggered epoll, raw HTTP/1.1
 * keep-alive; bodies (Content-Length) are read and dropped.
 *
 * (libmicrohttpd was the first choice; Debian 12's 0.9.75 left accepted
 * keep-alive connections unread, their requests waiting in the socket, when
 * 128 or more clients connected at once, with epoll and with poll alike, so
 * the HTTP ceiling read 0 at concurrency 256. A loop of 150 lines has no such
 * surprises.)
 *
 *   bench_stub --port PORT
 *
 * Routes (any method, query ignored):
 *   /ok        200 {"dtm_result":"SUCCESS"}
 *   /ongoing   425 {"dtm_result":"ONGOING"}
 *   /pending   ONGOING until the stub receives SIGUSR1, SUCCESS after (SIGUSR2:
 *              ONGOING again)
 *   /stats     {"ok":N,"ongoing":N,"pending":N} — calls answered so far
 *              (not counted itself)
 * Anything else: 404. Listens on 127.0.0.1 only; SIGTERM/SIGINT stop it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_common.h"

#define PROG "bench_stub"
#define BUF_CAP 65536

typedef struct client {
    int fd;
    char in[BUF_CAP];
    size_t len;
    size_t body_left; /* body bytes still to drop after the current request */
} client;

static unsigned long count_ok, count_ongoing, count_pending;
static int pending_released;

/* ---- answers ------------------------------------------------------------- */

static int send_answer(int fd, int status, const char *body)
{
    const char *reason = status == 200 ? "OK" : status == 425 ? "Too Early" : "Not Found";
    char out[512];
    int n = snprintf(out, sizeof(out),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     status, reason, strlen(body), body);
    return send(fd, out, (size_t)n, MSG_NOSIGNAL) == n ? 0 : -1;
}

static int answer(int fd, const char *path)
{
    static const char success[] = "{\"dtm_result\":\"SUCCESS\"}";
    static const char ongoing[] = "{\"dtm_result\":\"ONGOING\"}";
    if (strcmp(path, "/ok") == 0) {
        count_ok++;
        return send_answer(fd, 200, success);
    }
    if (strcmp(path, "/ongoing") == 0) {
        count_ongoing++;
        return send_answer(fd, 425, ongoing);
    }
    if (strcmp(path, "/pending") == 0) {
        count_pending++;
        return pending_released ? send_answer(fd, 200, success) : send_answer(fd, 425, ongoing);
    }
    if (strcmp(path, "/stats") == 0) {
        char body[160];
        snprintf(body, sizeof(body), "{\"ok\":%lu,\"ongoing\":%lu,\"pending\":%lu}", count_ok,
                 count_ongoing, count_pending);
        return send_answer(fd, 200, body);
    }
    return send_answer(fd, 404, "{\"message\":\"no such route\"}");
}

/* ---- requests ---------------------------------------------------------------- */

/* Handles every complete request in c->in. 0, or -1 to close the client. */
static int handle_input(client *c)
{
    for (;;) {
        if (c->body_left > 0) { /* drop body bytes */
            size_t n = c->len < c->body_left ? c->len : c->body_left;
            memmove(c->in, c->in + n, c->len - n);
            c->len -= n;
            c->body_left -= n;
            if (c->body_left > 0)
                return 0;
        }
        c->in[c->len] = '\0';
        char *end = strstr(c->in, "\r\n\r\n");
        if (end == NULL)
            return c->len >= BUF_CAP - 1 ? -1 : 0;
        /* request line: METHOD SP PATH[?query] SP VERSION */
        char *sp = strchr(c->in, ' ');
        if (sp == NULL || sp > end)
            return -1;
        char *path = sp + 1;
        size_t plen = strcspn(path, " ?\r");
        char saved = path[plen];
        path[plen] = '\0';
        long body = 0;
        for (char *line = strstr(path + plen + 1, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n"))
            if (strncasecmp(line + 2, "Content-Length:", 15) == 0)
                body = strtol(line + 17, NULL, 10);
        int rc = answer(c->fd, path);
        path[plen] = saved;
        size_t head = (size_t)(end + 4 - c->in);
        memmove(c->in, c->in + head, c->len - head);
        c->len -= head;
        c->body_left = body > 0 ? (size_t)body : 0;
        if (rc != 0)
            return -1;
    }
}

static void close_client(int epfd, client *c)
{
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

static void on_client(int epfd, client *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->in + c->len, BUF_CAP - 1 - c->len, 0);
        if (n > 0) {
            c->len += (size_t)n;
            if (handle_input(c) != 0) {
                close_client(epfd, c);
                return;
            }
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        close_client(epfd, c); /* closed by the peer, or an error */
        return;
    }
}

static void on_accept(int epfd, int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        client *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    }
}

/* ---- setup ------------------------------------------------------------------- */

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, 4096) != 0)
        bench_die(PROG, "cannot listen on 127.0.0.1:%d: %s", port, strerror(errno));
    return fd;
}

/* Signals arrive as reads on a signalfd in the same loop. 1 = stop. */
static int on_signal(int sfd)
{
    struct signalfd_siginfo si;
    if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
        return 0;
    if (si.ssi_signo == SIGUSR1 || si.ssi_signo == SIGUSR2) {
        pending_released = si.ssi_signo == SIGUSR1;
        printf(PROG ": /pending answers %s from now on\n", pending_released ? "SUCCESS" : "ONGOING");
        fflush(stdout);
        return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[1], "--port") != 0)
        bench_die(PROG, "usage: bench_stub --port PORT");
    int port = (int)bench_parse_long("--port", argv[2], 1, 65535);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    int lfd = listen_on(port);
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &lfd};
    struct epoll_event sev = {.events = EPOLLIN, .data.ptr = &sfd};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);
    epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &sev);
    printf(PROG ": listening on 127.0.0.1:%d\n", port);
    fflush(stdout);

    int stop = 0;
    while (!stop) {
        struct epoll_event evs[256];
        int n = epoll_wait(epfd, evs, 256, -1);
        for (int i = 0; i < n && !stop; i++) {
            if (evs[i].data.ptr == &lfd)
                on_accept(epfd, lfd);
            else if (evs[i].data.ptr == &sfd)
                stop = on_signal(sfd);
            else
                on_client(epfd, evs[i].data.ptr);
        }
    }
    /* clients still connected are closed with the process */
    printf(PROG ": answered ok=%lu ongoing=%lu pending=%lu\n", count_ok, count_ongoing, count_pending);
    close(lfd);
    close(sfd);
    close(epfd);
    return 0;
}
