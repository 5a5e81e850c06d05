/*
 * stub_http.c — see stub_http.h.
 */
#include "stub_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

struct MHD_Daemon *stub_http_start(MHD_AccessHandlerCallback handler, void *cls,
                                   const stub_http_options *o, int *port, char *url,
                                   size_t url_len)
{
    static const stub_http_options defaults = {0};
    if (o == NULL)
        o = &defaults;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)o->port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    struct MHD_OptionItem opts[8];
    size_t n = 0;
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &addr};
    if (o->threads > 0)
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)o->threads, NULL};
    if (o->connection_limit > 0)
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, (intptr_t)o->connection_limit, NULL};
    if (o->connection_timeout_s > 0)
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)o->connection_timeout_s, NULL};
    if (o->completed != NULL)
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)o->completed, o->completed_cls};
    if (o->connection != NULL)
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)o->connection, o->connection_cls};
    if (o->uri_log != NULL)
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)o->uri_log, o->uri_log_cls};
    opts[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | o->flags;
    if (o->threads == 0)
        flags |= MHD_USE_THREAD_PER_CONNECTION;
    struct MHD_Daemon *d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, handler, cls,
                                            MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (d == NULL)
        return NULL;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    if (info == NULL || info->port == 0) {
        MHD_stop_daemon(d);
        return NULL;
    }
    if (port != NULL)
        *port = info->port;
    if (url != NULL)
        snprintf(url, url_len, "http://127.0.0.1:%u", (unsigned)info->port);
    return d;
}
