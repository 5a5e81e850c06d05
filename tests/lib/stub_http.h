/*
 * stub_http.h — a stub HTTP service for tests: libmicrohttpd on 127.0.0.1
 * with the test's handler, on a port of the kernel's choosing (or a given
 * one), telling its port and URL. The test's business service (busi.c), the
 * fault bank's service, the HTTP dispatcher's test server and test_sdk's XA
 * branch all start this way; each keeps its own handler and threading.
 */
#ifndef DTMQ_STUB_HTTP_H
#define DTMQ_STUB_HTTP_H

#include <microhttpd.h>
#include <stddef.h>

typedef struct stub_http_options {
    int port;                   /* 0: a free port the kernel picks */
    unsigned threads;           /* a pool of that many; 0: a thread per connection */
    unsigned int flags;         /* more MHD_USE_* / MHD_ALLOW_* flags (e.g. MHD_ALLOW_SUSPEND_RESUME) */
    unsigned connection_limit;  /* 0: libmicrohttpd's default */
    unsigned connection_timeout_s; /* 0: none (libmicrohttpd's default) */
    MHD_RequestCompletedCallback completed; /* MHD_OPTION_NOTIFY_COMPLETED, or NULL */
    void *completed_cls;
    MHD_NotifyConnectionCallback connection; /* MHD_OPTION_NOTIFY_CONNECTION, or NULL */
    void *connection_cls;
    void *(*uri_log)(void *cls, const char *uri, struct MHD_Connection *con); /* or NULL */
    void *uri_log_cls;
} stub_http_options;

/* Starts handler(cls, ...) on 127.0.0.1 (internal polling thread, MHD_USE_AUTO)
 * with o (NULL: a free port, a thread per connection). Returns the daemon
 * (MHD_stop_daemon stops it) with its port in *port and "http://127.0.0.1:PORT"
 * in url (each when not NULL), or NULL when it could not start. */
struct MHD_Daemon *stub_http_start(MHD_AccessHandlerCallback handler, void *cls,
                                   const stub_http_options *o, int *port, char *url,
                                   size_t url_len);

#endif
