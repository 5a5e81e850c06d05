/*
 * kafka_mock_port.c — see kafka_mock_port.h. Defines bind(2) in the dtmq
 * binary, which the dynamic linker then prefers over libc's for librdkafka
 * too; unless armed for the calling thread it is a plain system call.
 *
 * Invariant: at most one thread is armed at a time (arming is serialised by
 * arm_mu, held from arm to disarm), and only its first IPv4 bind to port 0
 * is redirected.
 */
#include "kafka_mock_port.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_mutex_t arm_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int armed;        /* 1 between arm and disarm */
static pthread_t armed_thread;  /* valid while armed */
static int wanted_port;
static int result = -1;         /* -1: not seen yet; 0 bound; else errno */

/* Binds fd to sin with SO_REUSEADDR, by the system call itself: 0, or the
 * errno of the failed bind. */
static int bind_reusable(int fd, const struct sockaddr_in *sin)
{
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    return syscall(SYS_bind, fd, (const struct sockaddr *)sin, sizeof(*sin)) == 0 ? 0 : errno;
}

int mock_port_check(int port)
{
    if (port == 0)
        return 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return errno;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rc = bind_reusable(fd, &sin);
    close(fd);
    return rc;
}

void mock_port_arm(int port)
{
    assert(port >= 0 && port <= 65535);
    pthread_mutex_lock(&arm_mu);
    wanted_port = port;
    result = port == 0 ? 0 : -1;
    armed_thread = pthread_self();
    atomic_store(&armed, port != 0);
}

int mock_port_disarm(void)
{
    atomic_store(&armed, 0);
    int r = result;
    pthread_mutex_unlock(&arm_mu);
    return r;
}

/* The redirected bind of the armed thread. */
static int bind_wanted(int fd, const struct sockaddr_in *asked)
{
    struct sockaddr_in sin = *asked;
    sin.sin_port = htons((uint16_t)wanted_port);
    atomic_store(&armed, 0); /* only the first one */
    result = bind_reusable(fd, &sin);
    if (result == 0)
        return 0;
    errno = result;
    return -1;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    if (atomic_load(&armed) && pthread_equal(pthread_self(), armed_thread) && addr != NULL &&
        addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in) &&
        ((const struct sockaddr_in *)addr)->sin_port == 0)
        return bind_wanted(fd, (const struct sockaddr_in *)addr);
    return (int)syscall(SYS_bind, fd, addr, len);
}
