/*
 * test_fault_mock.c — dtmq's reliability suite: Kafka faults that a real
 * cluster cannot be made to show on demand, injected with librdkafka's mock
 * cluster (see tests/fault/README.md, "Mock-cluster error injection").
 *
 * The mock cluster (3 brokers) runs inside this test process; dtmq is started
 * with it as an external Kafka (--kafka host:port). Two things stand in the
 * way, and a small Kafka-protocol proxy in this file (one per mock broker)
 * deals with them:
 *   - dtmq sends CreateTopics at start and before the first message to a
 *     branch topic (broker/kafka_link.c), even for topics that exist; the
 *     mock cluster has no CreateTopics. The proxy answers CreateTopics itself
 *     (rd_kafka_mock_topic_create) and adds CreateTopics 0..4 to the
 *     ApiVersions answer.
 *   - so that every connection passes the proxy, it rewrites the brokers'
 *     ports in Metadata and FindCoordinator answers, and names a controller.
 * Everything else is relayed byte for byte, so the injected errors are the
 * mock cluster's own.
 *
 * Tests (each prints one `fault[mock-.../STORE]:` line):
 *   1. Produce errors (retriable, then not retriable) on the broker that leads
 *      the kafka:// branch topic and the reply_to topic, while dtmq publishes
 *      msg branches and replies: every msg ends succeed and is delivered,
 *      every saga submitted over Kafka is stored and final with its steps
 *      called once, and the injected errors were all consumed.
 *   2. One broker down for DTMQ_FAULT_MOCK_DOWN_MS while submit messages
 *      arrive on PREFIXsubmit: every gid stored and final, steps called once,
 *      nothing dead-lettered.
 *   3. Fetch and OffsetCommit errors on the ingress consumer, some poison
 *      messages among the submits, then a restart of dtmq in the same group
 *      (so whatever offset commit failed is read again): every gid stored
 *      and final, steps called once, the DLQ holds exactly the poison
 *      messages.
 *
 * Knobs (environment): DTMQ_FAULT_MOCK_TRANSACTIONS (40 per test),
 * DTMQ_FAULT_MOCK_ERRORS (8: retriable errors injected per kind),
 * DTMQ_FAULT_MOCK_DOWN_MS (3000), DTMQ_FAULT_MOCK_WAIT_S (90: bound on
 * waiting for the transactions to end); DTMQ_FAULT_MOCK_DEBUG=1 prints every
 * request and answer the proxy relays.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "libdtmq/common/kafka_producer.h"
#include "busi.h"
#include "kafkatest.h"
#include "testlib.h"

enum { BROKERS = 3, PARTITIONS = 4, MAX_CONNS = 256 };
enum { API_PRODUCE = 0, API_FETCH = 1, API_METADATA = 3, API_OFFSET_COMMIT = 8,
       API_FIND_COORDINATOR = 10, API_API_VERSIONS = 18, API_CREATE_TOPICS = 19 };

/* ---- big-endian buffer helpers ------------------------------------------ */

static int32_t rd32(const unsigned char *p)
{
    return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}

static int16_t rd16(const unsigned char *p)
{
    return (int16_t)((uint16_t)p[0] << 8 | p[1]);
}

static void wr32(unsigned char *p, int32_t v)
{
    uint32_t u = (uint32_t)v;
    p[0] = (unsigned char)(u >> 24);
    p[1] = (unsigned char)(u >> 16);
    p[2] = (unsigned char)(u >> 8);
    p[3] = (unsigned char)u;
}

static void wr16(unsigned char *p, int16_t v)
{
    uint16_t u = (uint16_t)v;
    p[0] = (unsigned char)(u >> 8);
    p[1] = (unsigned char)u;
}

/* Unsigned varint; returns bytes read, 0 when it does not fit. */
static size_t uvarint(const unsigned char *p, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < len && i < 10; i++) {
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *out = v;
            return i + 1;
        }
    }
    return 0;
}

/* ---- the proxy ---------------------------------------------------------- */

typedef struct kproxy kproxy;

typedef struct kconn {
    kproxy *px;
    int cfd, ufd;
    pthread_mutex_t wmu; /* writes to cfd */
    pthread_mutex_t mu;  /* the in-flight table */
    struct { int32_t corr; int16_t key, ver; } inflight[512];
    pthread_t up, down;
    int used;
} kconn;

struct kproxy {
    rd_kafka_mock_cluster_t *mc;
    int n;                       /* brokers */
    int up_port[BROKERS];        /* the mock brokers' ports */
    int px_port[BROKERS];        /* ours, same order */
    int lfd[BROKERS];
    pthread_t acceptor[BROKERS];
    atomic_int stop;
    pthread_mutex_t mu;
    kconn *conns[MAX_CONNS];
    int nconns;
    atomic_int topics_created, create_requests, rewrites;
};

typedef struct acceptor_arg {
    kproxy *px;
    int idx;
} acceptor_arg;

static acceptor_arg acceptor_args[BROKERS];

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = recv(fd, p, n, 0);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* One frame (without its length prefix); malloc'd, NULL at EOF. */
static unsigned char *read_frame(int fd, size_t *len)
{
    unsigned char hdr[4];
    if (read_all(fd, hdr, 4) != 0)
        return NULL;
    int32_t n = rd32(hdr);
    if (n < 0 || n > 64 * 1024 * 1024)
        return NULL;
    unsigned char *buf = malloc((size_t)n + 16);
    if (buf == NULL || read_all(fd, buf, (size_t)n) != 0) {
        free(buf);
        return NULL;
    }
    *len = (size_t)n;
    return buf;
}

static int write_frame(kconn *c, int fd, const unsigned char *p, size_t n)
{
    unsigned char hdr[4];
    wr32(hdr, (int32_t)n);
    if (fd == c->cfd)
        pthread_mutex_lock(&c->wmu);
    int rc = write_all(fd, hdr, 4) == 0 && write_all(fd, p, n) == 0 ? 0 : -1;
    if (fd == c->cfd)
        pthread_mutex_unlock(&c->wmu);
    return rc;
}

static int proxy_port_for(const kproxy *px, int32_t up_port)
{
    for (int i = 0; i < px->n; i++)
        if (px->up_port[i] == up_port)
            return px->px_port[i];
    return up_port;
}

/* A Kafka string (int16 length, -1 = null) at *off; advances. 0 ok. */
static int skip_str(const unsigned char *b, size_t len, size_t *off)
{
    if (*off + 2 > len)
        return -1;
    int16_t n = rd16(b + *off);
    *off += 2 + (n > 0 ? (size_t)n : 0);
    return *off <= len ? 0 : -1;
}

/* Metadata v0..v8: broker ports -> ours; ControllerId -1 -> the first broker. */
static void rewrite_metadata(kproxy *px, unsigned char *b, size_t len, int16_t ver)
{
    size_t off = 4; /* correlation id */
    if (ver >= 3)
        off += 4;
    if (ver > 8 || off + 4 > len)
        return;
    int32_t n = rd32(b + off);
    off += 4;
    int32_t first_id = -1, ids[16];
    for (int32_t i = 0; i < n; i++) {
        if (off + 4 > len)
            return;
        if (i == 0)
            first_id = rd32(b + off);
        if (i < 16)
            ids[i] = rd32(b + off);
        off += 4;
        if (skip_str(b, len, &off) != 0 || off + 4 > len)
            return;
        wr32(b + off, proxy_port_for(px, rd32(b + off)));
        off += 4;
        if (ver >= 1 && skip_str(b, len, &off) != 0)
            return;
    }
    if (ver >= 2 && skip_str(b, len, &off) != 0)
        return;
    int known = 0; /* the mock names controller 0, which is no broker: use the first */
    for (int32_t i = 0; off + 4 <= len && i < n && i < 16; i++)
        known |= ids[i] == rd32(b + off);
    if (ver >= 1 && off + 4 <= len && !known)
        wr32(b + off, first_id);
    atomic_fetch_add(&px->rewrites, 1);
}

/* FindCoordinator v0..v2: the coordinator's port -> ours. */
static void rewrite_find_coordinator(kproxy *px, unsigned char *b, size_t len, int16_t ver)
{
    size_t off = 4;
    if (ver > 2)
        return;
    if (ver >= 1)
        off += 4;
    off += 2; /* error */
    if (ver >= 1 && skip_str(b, len, &off) != 0)
        return;
    off += 4; /* node id */
    if (skip_str(b, len, &off) != 0 || off + 4 > len)
        return;
    wr32(b + off, proxy_port_for(px, rd32(b + off)));
    atomic_fetch_add(&px->rewrites, 1);
}

/* ApiVersions: a new frame with CreateTopics 0..4 added (NULL: unchanged). */
static unsigned char *rewrite_api_versions(const unsigned char *b, size_t len, int16_t ver,
                                           size_t *out_len)
{
    if (len < 8 || rd16(b + 4) != 0)
        return NULL; /* an error answer: leave it */
    unsigned char *o = malloc(len + 16);
    if (o == NULL)
        return NULL;
    size_t off = 6;
    if (ver < 3) {
        int32_t n = rd32(b + off);
        size_t end = off + 4 + (size_t)n * 6;
        if (n < 0 || end > len) {
            free(o);
            return NULL;
        }
        memcpy(o, b, end);
        wr32(o + off, n + 1);
        wr16(o + end, API_CREATE_TOPICS);
        wr16(o + end + 2, 0);
        wr16(o + end + 4, 4);
        memcpy(o + end + 6, b + end, len - end);
        *out_len = len + 6;
        return o;
    }
    uint64_t n1;
    size_t vl = uvarint(b + off, len - off, &n1);
    if (vl == 0 || n1 == 0 || n1 > 126) { /* keep the count varint one byte */
        free(o);
        return NULL;
    }
    size_t p = off + vl;
    for (uint64_t i = 0; i + 1 < n1; i++) { /* entries: key, min, max, tagged fields */
        p += 6;
        uint64_t tags;
        size_t tl = p < len ? uvarint(b + p, len - p, &tags) : 0;
        if (tl == 0) {
            free(o);
            return NULL;
        }
        p += tl;
        for (uint64_t t = 0; t < tags; t++) {
            uint64_t tag, sz;
            size_t a = uvarint(b + p, len - p, &tag);
            size_t s = a ? uvarint(b + p + a, len - p - a, &sz) : 0;
            if (a == 0 || s == 0) {
                free(o);
                return NULL;
            }
            p += a + s + sz;
        }
        if (p > len) {
            free(o);
            return NULL;
        }
    }
    memcpy(o, b, p);
    o[off] = (unsigned char)(n1 + 1);
    wr16(o + p, API_CREATE_TOPICS);
    wr16(o + p + 2, 0);
    wr16(o + p + 4, 4);
    o[p + 6] = 0; /* no tagged fields */
    memcpy(o + p + 7, b + p, len - p);
    *out_len = len + 7;
    return o;
}

/* Answers CreateTopics v0..v4 itself: creates each topic in the mock. */
static int answer_create_topics(kconn *c, const unsigned char *b, size_t len)
{
    kproxy *px = c->px;
    int16_t ver = rd16(b + 2);
    int32_t corr = rd32(b + 4);
    size_t off = 8;
    if (skip_str(b, len, &off) != 0 || off + 4 > len || ver > 4)
        return -1;
    int32_t n = rd32(b + off);
    off += 4;
    unsigned char out[8192];
    size_t o = 0;
    wr32(out, corr);
    o = 4;
    if (ver >= 2) {
        wr32(out + o, 0);
        o += 4;
    }
    wr32(out + o, n);
    o += 4;
    atomic_fetch_add(&px->create_requests, 1);
    for (int32_t i = 0; i < n; i++) {
        if (off + 2 > len)
            return -1;
        int16_t name_len = rd16(b + off);
        if (name_len <= 0 || off + 2 + (size_t)name_len + 6 > len || o + (size_t)name_len + 8 > sizeof(out))
            return -1;
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)name_len, (const char *)b + off + 2);
        memcpy(out + o, b + off, 2 + (size_t)name_len); /* the name, as sent */
        o += 2 + (size_t)name_len;
        off += 2 + (size_t)name_len;
        int32_t parts = rd32(b + off);
        off += 6; /* partitions, replication factor */
        int32_t assignments = off + 4 <= len ? rd32(b + off) : 0;
        off += 4;
        for (int32_t a = 0; a < assignments && off + 8 <= len; a++)
            off += 8 + 4 * (size_t)rd32(b + off + 4);
        int32_t configs = off + 4 <= len ? rd32(b + off) : 0;
        off += 4;
        for (int32_t k = 0; k < configs; k++)
            if (skip_str(b, len, &off) != 0 || skip_str(b, len, &off) != 0)
                return -1;
        rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(px->mc, name, parts > 0 ? parts : PARTITIONS, 1);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            atomic_fetch_add(&px->topics_created, 1);
        wr16(out + o, (int16_t)err);
        o += 2;
        if (ver >= 1) {
            wr16(out + o, -1); /* no message */
            o += 2;
        }
    }
    return write_frame(c, c->cfd, out, o);
}

static void remember(kconn *c, int32_t corr, int16_t key, int16_t ver)
{
    pthread_mutex_lock(&c->mu);
    size_t slot = (uint32_t)corr % (sizeof(c->inflight) / sizeof(c->inflight[0]));
    c->inflight[slot].corr = corr;
    c->inflight[slot].key = key;
    c->inflight[slot].ver = ver;
    pthread_mutex_unlock(&c->mu);
}

static int recall(kconn *c, int32_t corr, int16_t *key, int16_t *ver)
{
    pthread_mutex_lock(&c->mu);
    size_t slot = (uint32_t)corr % (sizeof(c->inflight) / sizeof(c->inflight[0]));
    int ok = c->inflight[slot].corr == corr;
    *key = c->inflight[slot].key;
    *ver = c->inflight[slot].ver;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

static void *client_to_broker(void *arg)
{
    kconn *c = arg;
    size_t len;
    unsigned char *f;
    while ((f = read_frame(c->cfd, &len)) != NULL) {
        int rc = -1;
        if (len >= 8) {
            int16_t key = rd16(f), ver = rd16(f + 2);
            int32_t corr = rd32(f + 4);
            if (getenv("DTMQ_FAULT_MOCK_DEBUG"))
                fprintf(stderr, "proxy: request key %d v%d corr %d len %zu\n", key, ver, corr, len);
            if (key == API_CREATE_TOPICS) {
                rc = answer_create_topics(c, f, len);
            } else {
                remember(c, corr, key, ver);
                rc = write_frame(c, c->ufd, f, len);
            }
        }
        free(f);
        if (rc != 0)
            break;
    }
    shutdown(c->cfd, SHUT_RDWR);
    shutdown(c->ufd, SHUT_RDWR);
    return NULL;
}

static void *broker_to_client(void *arg)
{
    kconn *c = arg;
    size_t len;
    unsigned char *f;
    while ((f = read_frame(c->ufd, &len)) != NULL) {
        int16_t key = -1, ver = 0;
        unsigned char *out = NULL;
        size_t out_len = len;
        if (len >= 4 && recall(c, rd32(f), &key, &ver)) {
            if (getenv("DTMQ_FAULT_MOCK_DEBUG"))
                fprintf(stderr, "proxy: response key %d v%d len %zu\n", key, ver, len);
            if (key == API_METADATA)
                rewrite_metadata(c->px, f, len, ver);
            else if (key == API_FIND_COORDINATOR)
                rewrite_find_coordinator(c->px, f, len, ver);
            else if (key == API_API_VERSIONS)
                out = rewrite_api_versions(f, len, ver, &out_len);
        }
        int rc = write_frame(c, c->cfd, out ? out : f, out_len);
        free(out);
        free(f);
        if (rc != 0)
            break;
    }
    shutdown(c->cfd, SHUT_RDWR);
    shutdown(c->ufd, SHUT_RDWR);
    return NULL;
}

static int connect_local(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    return -1;
}

static void *acceptor_main(void *arg)
{
    acceptor_arg *aa = arg;
    kproxy *px = aa->px;
    while (!atomic_load(&px->stop)) {
        int cfd = accept(px->lfd[aa->idx], NULL, NULL);
        if (cfd < 0) {
            if (atomic_load(&px->stop))
                break;
            continue;
        }
        int ufd = connect_local(px->up_port[aa->idx]);
        pthread_mutex_lock(&px->mu);
        if (ufd < 0 || px->nconns == MAX_CONNS || atomic_load(&px->stop)) {
            pthread_mutex_unlock(&px->mu);
            close(cfd);
            if (ufd >= 0)
                close(ufd);
            continue;
        }
        kconn *c = calloc(1, sizeof(*c));
        c->px = px;
        c->cfd = cfd;
        c->ufd = ufd;
        for (size_t i = 0; i < sizeof(c->inflight) / sizeof(c->inflight[0]); i++)
            c->inflight[i].corr = -1;
        pthread_mutex_init(&c->wmu, NULL);
        pthread_mutex_init(&c->mu, NULL);
        pthread_create(&c->up, NULL, client_to_broker, c);
        pthread_create(&c->down, NULL, broker_to_client, c);
        px->conns[px->nconns++] = c;
        pthread_mutex_unlock(&px->mu);
    }
    return NULL;
}

static int listen_local(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(a);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0)
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

/* Starts one proxy per broker of mc; bootstrap gets "127.0.0.1:P,...". */
static void proxy_start(kproxy *px, rd_kafka_mock_cluster_t *mc, char *bootstrap, size_t blen)
{
    memset(px, 0, sizeof(*px));
    px->mc = mc;
    pthread_mutex_init(&px->mu, NULL);
    char bs[512];
    snprintf(bs, sizeof(bs), "%s", rd_kafka_mock_cluster_bootstraps(mc));
    size_t used = 0;
    bootstrap[0] = '\0';
    for (char *save = NULL, *tok = strtok_r(bs, ",", &save); tok && px->n < BROKERS;
         tok = strtok_r(NULL, ",", &save)) {
        const char *colon = strrchr(tok, ':');
        ck_assert_ptr_nonnull(colon);
        int i = px->n++;
        px->up_port[i] = atoi(colon + 1);
        px->lfd[i] = listen_local(&px->px_port[i]);
        ck_assert_int_ge(px->lfd[i], 0);
        used += (size_t)snprintf(bootstrap + used, blen - used, "%s127.0.0.1:%d", i ? "," : "",
                                 px->px_port[i]);
        acceptor_args[i] = (acceptor_arg){px, i};
        pthread_create(&px->acceptor[i], NULL, acceptor_main, &acceptor_args[i]);
    }
    ck_assert_int_eq(px->n, BROKERS);
}

static void proxy_stop(kproxy *px)
{
    atomic_store(&px->stop, 1);
    for (int i = 0; i < px->n; i++) {
        shutdown(px->lfd[i], SHUT_RDWR);
        pthread_join(px->acceptor[i], NULL);
        close(px->lfd[i]);
    }
    for (int k = 0; k < px->nconns; k++) {
        kconn *c = px->conns[k];
        shutdown(c->cfd, SHUT_RDWR);
        shutdown(c->ufd, SHUT_RDWR);
        pthread_join(c->up, NULL);
        pthread_join(c->down, NULL);
        close(c->cfd);
        close(c->ufd);
        pthread_mutex_destroy(&c->wmu);
        pthread_mutex_destroy(&c->mu);
        free(c);
    }
    pthread_mutex_destroy(&px->mu);
}

/* ---- the mock cluster, the proxy and dtmq together ---------------------- */

typedef struct menv {
    rd_kafka_t *host; /* owns the mock cluster */
    rd_kafka_mock_cluster_t *mc;
    kproxy px;
    char proxy_bootstrap[256]; /* what dtmq uses */
    char mock_bootstrap[256];  /* what the test's own clients use */
    busi *svc;
    dtmq_proc dtmq;
    char store[512], prefix[64], group[64];
    dtmq_kafka_producer *producer;
} menv;

static void menv_topic(const menv *e, const char *suffix, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s", e->prefix, suffix);
}

/* Creates topic with its partitions led by broker (0: the mock's choice). */
static void menv_create_topic(menv *e, const char *topic, int32_t leader)
{
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(e->mc, topic, PARTITIONS, 1);
    ck_assert_msg(err == RD_KAFKA_RESP_ERR_NO_ERROR, "mock topic %s: %s", topic, rd_kafka_err2str(err));
    for (int p = 0; leader > 0 && p < PARTITIONS; p++)
        ck_assert_int_eq(rd_kafka_mock_partition_set_leader(e->mc, topic, p, leader), 0);
}

static void menv_start_dtmq(menv *e)
{
    const char *args[] = {"--kafka", e->proxy_bootstrap, "--kafka-topic-prefix", e->prefix,
                          "--kafka-group", e->group, "--kafka-partitions", "4", NULL};
    e2e_start(&e->dtmq, e->store, args);
}

/* Mock cluster + proxy + busi + dtmq's topics (leaders: own topics on
 * own_leader, 0 = spread) + dtmq. */
static void menv_start(menv *e, int32_t own_leader)
{
    memset(e, 0, sizeof(*e));
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "2", errstr, sizeof(errstr));
    e->host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    ck_assert_msg(e->host != NULL, "%s", errstr);
    e->mc = rd_kafka_mock_cluster_new(e->host, BROKERS);
    ck_assert_ptr_nonnull(e->mc);
    /* versions the proxy understands (it rewrites only non-flexible ones) */
    rd_kafka_mock_set_apiversion(e->mc, API_METADATA, 0, 8);
    rd_kafka_mock_set_apiversion(e->mc, API_FIND_COORDINATOR, 0, 2);
    snprintf(e->mock_bootstrap, sizeof(e->mock_bootstrap), "%s", rd_kafka_mock_cluster_bootstraps(e->mc));
    proxy_start(&e->px, e->mc, e->proxy_bootstrap, sizeof(e->proxy_bootstrap));
    char id[32];
    e2e_gid(id, sizeof(id), "fm");
    snprintf(e->prefix, sizeof(e->prefix), "%s.", id);
    snprintf(e->group, sizeof(e->group), "g-%s", id);
    const char *own[] = {"submit", "reply", "events", "submit.dlq"};
    for (size_t i = 0; i < 4; i++) {
        char t[160];
        menv_topic(e, own[i], t, sizeof(t));
        menv_create_topic(e, t, own_leader);
    }
    rd_kafka_mock_coordinator_set(e->mc, "group", e->group, 1);
    e->svc = busi_start();
    ck_assert_ptr_nonnull(e->svc);
    test_store_uri(e->store, sizeof(e->store));
    menv_start_dtmq(e);
    char err[512];
    e->producer = dtmq_kafka_producer_start(e->mock_bootstrap, err, sizeof(err));
    ck_assert_msg(e->producer != NULL, "%s", err);
}

static void menv_stop(menv *e)
{
    dtmq_kafka_producer_stop(e->producer, 5000);
    e2e_stop(&e->dtmq);
    busi_stop(e->svc);
    proxy_stop(&e->px);
    rd_kafka_mock_cluster_destroy(e->mc);
    rd_kafka_destroy(e->host);
}

static size_t error_stack(menv *e, int32_t broker, int16_t api)
{
    size_t n = 0;
    rd_kafka_mock_broker_error_stack_cnt(e->mc, broker, api, &n);
    return n;
}

/* A saga for PREFIXsubmit with HTTP steps on busi (reply_to optional). */
static char *saga_message(const menv *e, const char *gid, const char *reply_to)
{
    const char *u = busi_url(e->svc);
    char *text = NULL;
    char extra[256] = "";
    if (reply_to)
        snprintf(extra, sizeof(extra), ",\"reply_to\":\"%s\"", reply_to);
    ck_assert_int_ge(asprintf(&text,
                              "{\"op\":\"submit\",\"gid\":\"%s\",\"trans_type\":\"saga\",\"steps\":["
                              "{\"action\":\"%s/api/Out\",\"compensate\":\"%s/api/OutRevert\"},"
                              "{\"action\":\"%s/api/In\",\"compensate\":\"%s/api/InRevert\"}],"
                              "\"payloads\":[\"{}\",\"{}\"]%s}",
                              gid, u, u, u, u, extra),
                     0);
    return text;
}

typedef struct acks {
    atomic_int ok, failed;
} acks;

static void on_ack(void *arg, int ok, const char *error)
{
    acks *a = arg;
    (void)error;
    atomic_fetch_add(ok ? &a->ok : &a->failed, 1);
}

static void produce_async(menv *e, const char *topic, const char *key, const char *value, acks *a)
{
    ck_assert_int_eq(dtmq_kafka_produce(e->producer, topic, key, value, strlen(value), NULL, 0, on_ack, a), 0);
}

static int is_final(const char *s)
{
    return strcmp(s, "succeed") == 0 || strcmp(s, "failed") == 0;
}

/* Waits until every gid is final; returns how many are not. */
static int wait_all_final(menv *e, char (*gids)[64], int n)
{
    long long deadline = test_now_ms() + 1000LL * test_env_int("DTMQ_FAULT_MOCK_WAIT_S", 90, 10, 3600);
    for (;;) {
        int pending = 0;
        for (int i = 0; i < n; i++) {
            char st[32];
            pending += !is_final(e2e_status(&e->dtmq, gids[i], st, sizeof(st)));
        }
        if (pending == 0 || test_now_ms() > deadline)
            return pending;
        test_sleep_ms(500);
    }
}

typedef struct saga_check {
    int stored, succeed, extra_calls, missing_calls;
} saga_check;

/* Every gid stored once and succeed, both steps called exactly once. */
static saga_check check_sagas(menv *e, char (*gids)[64], int n)
{
    saga_check r = {0};
    for (int i = 0; i < n; i++) {
        char st[32];
        e2e_status(&e->dtmq, gids[i], st, sizeof(st));
        r.stored += st[0] != '\0';
        r.succeed += strcmp(st, "succeed") == 0;
        for (int k = 0; k < 2; k++) {
            int calls = busi_count(e->svc, k ? "/api/In" : "/api/Out", gids[i], "action");
            r.extra_calls += calls > 1 ? calls - 1 : 0;
            r.missing_calls += calls == 0;
            if (calls != 1)
                fprintf(stderr, "fault: %s step %d called %d times (status '%s')\n", gids[i], k + 1, calls, st);
        }
    }
    return r;
}

static int count_in(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* /api/info's kafka_ingress.dead_lettered (and .submitted in *submitted). */
static long ingress_counts(menv *e, long *submitted)
{
    int st = 0;
    json_t *info = e2e_call(&e->dtmq, "GET", "/api/info", NULL, &st);
    json_t *k = json_object_get(info, "kafka_ingress");
    long n = (long)json_integer_value(json_object_get(k, "dead_lettered"));
    if (submitted)
        *submitted = (long)json_integer_value(json_object_get(k, "submitted"));
    json_decref(info);
    return n;
}

static long dead_lettered(menv *e)
{
    return ingress_counts(e, NULL);
}

/* After a restart: waits (at least min_ms, at most 30 s) until the messages
 * the new process takes (submitted + dead-lettered) stop changing for 3 s.
 * Returns how many it took: those read again because a commit was lost. */
static long wait_reread(menv *e, long min_ms)
{
    long long t0 = test_now_ms(), last_change = t0;
    long last = -1;
    for (;;) {
        long submitted = 0, taken = ingress_counts(e, &submitted);
        taken += submitted;
        if (taken != last) {
            last = taken;
            last_change = test_now_ms();
        }
        long long now = test_now_ms();
        if ((now - t0 >= min_ms && now - last_change >= 3000) || now - t0 > 30000)
            return last;
        test_sleep_ms(250);
    }
}

/* ---- test 1: Produce errors while dtmq publishes ------------------------ */

START_TEST(produce_errors_on_branch_and_reply_publishes)
{
    menv e;
    menv_start(&e, 1); /* dtmq's own topics on broker 1 */
    int n = test_env_int("DTMQ_FAULT_MOCK_TRANSACTIONS", 40, 2, 10000);
    int retriable = test_env_int("DTMQ_FAULT_MOCK_ERRORS", 8, 1, 1000);
    char work[160], replies[160];
    menv_topic(&e, "work", work, sizeof(work));
    menv_topic(&e, "replies", replies, sizeof(replies));
    menv_create_topic(&e, work, 2); /* branch and reply_to topics on broker 2 */
    menv_create_topic(&e, replies, 2);
    /* broker 2: retriable errors, then two that are not, then retriable again */
    rd_kafka_resp_err_t R1 = RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                        R2 = RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                        R3 = RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                        P1 = RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
                        P2 = RD_KAFKA_RESP_ERR_INVALID_MSG;
    for (int k = 0; k < retriable; k++)
        rd_kafka_mock_broker_push_request_error_rtts(e.mc, 2, API_PRODUCE, 1, k % 3 == 0 ? R1 : k % 3 == 1 ? R2 : R3, 0);
    rd_kafka_mock_broker_push_request_error_rtts(e.mc, 2, API_PRODUCE, 2, P1, 0, P2, 0);
    for (int k = 0; k < retriable; k++)
        rd_kafka_mock_broker_push_request_error_rtts(e.mc, 2, API_PRODUCE, 1, R2, 0);
    size_t injected = error_stack(&e, 2, API_PRODUCE);
    long long t0 = test_now_ms();
    char (*msgs)[64] = calloc((size_t)(unsigned)n, 64), (*sagas)[64] = calloc((size_t)(unsigned)n, 64);
    char submit[160];
    menv_topic(&e, "submit", submit, sizeof(submit));
    acks a = {0};
    for (int i = 0; i < n; i++) {
        e2e_gid(msgs[i], 64, "mm");
        char body[1024];
        snprintf(body, sizeof(body),
                 "{\"gid\":\"%s\",\"trans_type\":\"msg\",\"steps\":[{\"action\":\"kafka://%s\"}],"
                 "\"payloads\":[\"{\\\"gid\\\":\\\"%s\\\"}\"]}",
                 msgs[i], work, msgs[i]);
        e2e_post_expect(&e.dtmq, "submit", body, 200);
        e2e_gid(sagas[i], 64, "ms");
        char *m = saga_message(&e, sagas[i], replies);
        produce_async(&e, submit, sagas[i], m, &a);
        free(m);
    }
    int msg_pending = wait_all_final(&e, msgs, n), saga_pending = wait_all_final(&e, sagas, n);
    long long final_ms = test_now_ms() - t0;
    size_t left = error_stack(&e, 2, API_PRODUCE);
    kt_msg *km;
    size_t got = kt_read(e.mock_bootstrap, work, (size_t)n + 1, 8000, &km);
    int delivered = 0, redelivered = 0;
    for (int i = 0; i < n; i++) {
        int c = 0;
        for (size_t k = 0; k < got; k++)
            c += strcmp(km[k].key, msgs[i]) == 0;
        delivered += c > 0;
        redelivered += c > 1 ? c - 1 : 0;
        if (c == 0)
            fprintf(stderr, "fault: msg %s not on %s\n", msgs[i], work);
    }
    kt_free(km, got);
    size_t nreplies = kt_read(e.mock_bootstrap, replies, (size_t)n, 8000, &km);
    kt_free(km, nreplies);
    int msg_succeed = 0;
    for (int i = 0; i < n; i++) {
        char st[32];
        msg_succeed += strcmp(e2e_status(&e.dtmq, msgs[i], st, sizeof(st)), "succeed") == 0;
    }
    saga_check sc = check_sagas(&e, sagas, n);
    long dlq = dead_lettered(&e);
    int created = atomic_load(&e.px.topics_created), create_requests = atomic_load(&e.px.create_requests);
    char *log = dtmq_log(&e.dtmq);
    int publish_failed = count_in(log, "answered ERROR (publish failed"), reply_failed = count_in(log, "cannot publish the");
    free(log);
    menv_stop(&e);
    fprintf(stderr,
            "fault[mock-produce/%s]: msgs=%d sagas=%d errors_injected=%zu errors_left=%zu "
            "msg_succeed=%d msg_delivered=%d msg_redelivered=%d saga_stored=%d saga_succeed=%d "
            "extra_step_calls=%d missing_step_calls=%d accepted_replies=%zu publish_failed=%d "
            "reply_queue_failed=%d submits_acked=%d "
            "dead_lettered=%ld not_final=%d create_topics_requests=%d topics_created_by_proxy=%d "
            "final_ms=%lld\n",
            test_store_kind(), n, n, injected, left, msg_succeed, delivered, redelivered, sc.stored,
            sc.succeed, sc.extra_calls, sc.missing_calls, nreplies, publish_failed, reply_failed,
            atomic_load(&a.ok), dlq,
            msg_pending + saga_pending, create_requests, created, final_ms);
    ck_assert_int_eq(atomic_load(&a.ok), n);
    ck_assert_int_eq(left, 0); /* every injected error was met */
    /* the errors that are not retriable failed some publishes for good, and
     * dtmq published those again (the delivered check below) */
    ck_assert_int_ge(publish_failed + reply_failed, 1);
    ck_assert_int_eq(msg_pending + saga_pending, 0);
    ck_assert_int_eq(msg_succeed, n);
    ck_assert_int_eq(delivered, n);
    ck_assert_int_eq(sc.stored, n);
    ck_assert_int_eq(sc.succeed, n);
    ck_assert_int_eq(sc.extra_calls, 0);
    ck_assert_int_eq(dlq, 0);
    /* every topic exists beforehand: dtmq asks the cluster to create none */
    ck_assert_int_eq(create_requests, 0);
    free(msgs);
    free(sagas);
}
END_TEST

/* ---- test 2: a broker down while submits arrive ------------------------- */

START_TEST(broker_down_while_submits_arrive)
{
    menv e;
    menv_start(&e, 0); /* partitions spread over the three brokers */
    int n = test_env_int("DTMQ_FAULT_MOCK_TRANSACTIONS", 40, 2, 10000);
    int down_ms = test_env_int("DTMQ_FAULT_MOCK_DOWN_MS", 3000, 100, 600000);
    char submit[160];
    menv_topic(&e, "submit", submit, sizeof(submit));
    char (*gids)[64] = calloc((size_t)(unsigned)n, 64);
    acks a = {0};
    long long t0 = test_now_ms(), down_at = 0, up_at = 0;
    for (int i = 0; i < n; i++) {
        if (i == n / 4) { /* a quarter in: broker 2 goes down */
            ck_assert_int_eq(rd_kafka_mock_broker_set_down(e.mc, 2), 0);
            down_at = test_now_ms();
        }
        if (down_at && !up_at && test_now_ms() - down_at >= down_ms) {
            ck_assert_int_eq(rd_kafka_mock_broker_set_up(e.mc, 2), 0);
            up_at = test_now_ms();
        }
        e2e_gid(gids[i], 64, "md");
        char *m = saga_message(&e, gids[i], NULL);
        produce_async(&e, submit, gids[i], m, &a);
        free(m);
        test_sleep_ms(2L * down_ms / n); /* the submits span twice the outage */
    }
    if (!up_at) {
        long long rest = down_ms - (test_now_ms() - down_at);
        if (rest > 0)
            test_sleep_ms((long)rest);
        ck_assert_int_eq(rd_kafka_mock_broker_set_up(e.mc, 2), 0);
        up_at = test_now_ms();
    }
    int pending = wait_all_final(&e, gids, n);
    long long final_ms = test_now_ms() - up_at;
    saga_check sc = check_sagas(&e, gids, n);
    long dlq = dead_lettered(&e);
    menv_stop(&e);
    fprintf(stderr,
            "fault[mock-broker-down/%s]: submits=%d acked=%d ack_failed=%d down_ms=%lld stored=%d "
            "succeed=%d extra_step_calls=%d missing_step_calls=%d dead_lettered=%ld not_final=%d "
            "final_after_up_ms=%lld elapsed_ms=%lld\n",
            test_store_kind(), n, atomic_load(&a.ok), atomic_load(&a.failed), up_at - down_at,
            sc.stored, sc.succeed, sc.extra_calls, sc.missing_calls, dlq, pending, final_ms,
            test_now_ms() - t0);
    ck_assert_int_eq(atomic_load(&a.ok), n);
    ck_assert_int_eq(pending, 0);
    ck_assert_int_eq(sc.stored, n);
    ck_assert_int_eq(sc.succeed, n);
    ck_assert_int_eq(sc.extra_calls, 0);
    ck_assert_int_eq(dlq, 0);
    free(gids);
}
END_TEST

/* ---- test 3: Fetch and OffsetCommit errors on the ingress consumer ------- */

static const char *const poison[] = {"not json", "{\"op\":\"explode\",\"gid\":\"%s\"}",
                                     "{\"op\":\"submit\",\"gid\":\"%s\",\"trans_type\":\"saga\","
                                     "\"steps\":[{\"action\":\"ftp://x\"}]}"};

START_TEST(fetch_and_offset_commit_errors_on_the_ingress)
{
    menv e;
    menv_start(&e, 1);
    int n = test_env_int("DTMQ_FAULT_MOCK_TRANSACTIONS", 40, 2, 10000);
    int errs = test_env_int("DTMQ_FAULT_MOCK_ERRORS", 8, 1, 1000);
    char submit[160], dlq_topic[160];
    menv_topic(&e, "submit", submit, sizeof(submit));
    menv_topic(&e, "submit.dlq", dlq_topic, sizeof(dlq_topic));
    for (int k = 0; k < errs; k++) {
        rd_kafka_mock_broker_push_request_error_rtts(
            e.mc, 1, API_FETCH, 1,
            k % 2 ? RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION : RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, 0);
        rd_kafka_mock_broker_push_request_error_rtts(
            e.mc, 1, API_OFFSET_COMMIT, 1,
            k % 2 ? RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT : RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, 0);
    }
    size_t fetch_injected = error_stack(&e, 1, API_FETCH), commit_injected = error_stack(&e, 1, API_OFFSET_COMMIT);
    char (*gids)[64] = calloc((size_t)(unsigned)n, 64);
    size_t npoison = sizeof(poison) / sizeof(poison[0]);
    char poison_keys[3][64];
    acks a = {0};
    long long t0 = test_now_ms();
    for (int i = 0; i < n; i++) {
        e2e_gid(gids[i], 64, "mf");
        char *m = saga_message(&e, gids[i], NULL);
        produce_async(&e, submit, gids[i], m, &a);
        free(m);
        if (i % (n / (int)npoison + 1) == 0 && (size_t)(i / (n / (int)npoison + 1)) < npoison) {
            size_t p = (size_t)(i / (n / (int)npoison + 1));
            char value[512];
            e2e_gid(poison_keys[p], 64, "poison");
            snprintf(value, sizeof(value), poison[p], poison_keys[p]);
            produce_async(&e, submit, poison_keys[p], value, &a);
        }
        test_sleep_ms(50);
    }
    int pending = wait_all_final(&e, gids, n);
    size_t fetch_left = error_stack(&e, 1, API_FETCH), commit_left = error_stack(&e, 1, API_OFFSET_COMMIT);
    /* a restart in the same group reads again whatever was not committed */
    e2e_stop(&e.dtmq);
    menv_start_dtmq(&e);
    /* the new member joins (a few seconds) and reads from the committed offsets */
    long reread = wait_reread(&e, 8000);
    int pending_after = wait_all_final(&e, gids, n);
    saga_check sc = check_sagas(&e, gids, n);
    long dlq_after_restart = dead_lettered(&e);
    kt_msg *km;
    size_t ndlq = kt_read(e.mock_bootstrap, dlq_topic, 2 * npoison + 1, 8000, &km);
    int dlq_poison = 0, dlq_other = 0, poison_seen[3] = {0};
    for (size_t k = 0; k < ndlq; k++) {
        int is_poison = 0;
        for (size_t p = 0; p < npoison; p++)
            if (strcmp(km[k].key, poison_keys[p]) == 0) {
                is_poison = 1;
                poison_seen[p] = 1;
            }
        dlq_poison += is_poison;
        dlq_other += !is_poison;
        if (!is_poison)
            fprintf(stderr, "fault: dead letter with key '%s' is not a poison message\n", km[k].key);
    }
    kt_free(km, ndlq);
    menv_stop(&e);
    fprintf(stderr,
            "fault[mock-fetch-commit/%s]: submits=%d poison=%zu acked=%d fetch_errors=%zu "
            "fetch_left=%zu commit_errors=%zu commit_left=%zu stored=%d succeed=%d "
            "extra_step_calls=%d missing_step_calls=%d dlq_messages=%zu dlq_poison=%d dlq_other=%d "
            "read_again_after_restart=%ld dead_lettered_after_restart=%ld not_final=%d elapsed_ms=%lld\n",
            test_store_kind(), n, npoison, atomic_load(&a.ok), fetch_injected, fetch_left,
            commit_injected, commit_left, sc.stored, sc.succeed, sc.extra_calls,
            sc.missing_calls, ndlq, dlq_poison, dlq_other, reread, dlq_after_restart, pending + pending_after,
            test_now_ms() - t0);
    ck_assert_int_eq(atomic_load(&a.ok), n + (int)npoison);
    ck_assert_int_eq(fetch_left, 0);
    ck_assert_int_eq(pending + pending_after, 0);
    ck_assert_int_eq(sc.stored, n);
    ck_assert_int_eq(sc.succeed, n);
    ck_assert_int_eq(sc.extra_calls, 0);
    ck_assert_int_eq(dlq_other, 0);
    /* each poison message dead-lettered at least once (again when it was read
     * again after a lost commit or a rebalance: at-least-once) */
    for (size_t p = 0; p < npoison; p++)
        ck_assert_msg(poison_seen[p], "poison message %zu (%s) not in the DLQ", p, poison_keys[p]);
    free(gids);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fault_mock");
    test_group g = {.suite = s};
    int n = test_env_int("DTMQ_FAULT_MOCK_TRANSACTIONS", 40, 2, 10000);
    g.timeout_s = 150 + n / 2 + test_env_int("DTMQ_FAULT_MOCK_WAIT_S", 90, 10, 3600);
    test_add(&g, produce_errors_on_branch_and_reply_publishes);
    test_add(&g, broker_down_while_submits_arrive);
    test_add(&g, fetch_and_offset_commit_errors_on_the_ingress);
    return run_suite(s);
}
