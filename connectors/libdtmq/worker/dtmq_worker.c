/*
 * dtmq_worker.c — see dtmq_worker.h. A worker is one librdkafka consumer
 * (its group, its topics) and one dtmq_kafka_producer for the replies, driven by
 * the caller's thread in dtmq_worker_run.
 *
 * Replies are pipelined: the worker goes on with the next message while
 * earlier replies are in flight, and every finished message waits in a
 * reply_window (in poll order) until its reply is acknowledged.
 *
 * Invariants, per partition:
 *   - offsets are stored only by settle_replies, in poll order, and only
 *     for a message that is finished: skipped for good (no dtm headers),
 *     handled with no reply due, or handled with its reply acknowledged by
 *     Kafka, and only when every earlier message of the window is finished
 *     too. Auto-commit (enable.auto.offset.store=false,
 *     enable.auto.commit=true) commits stored offsets only, so a committed
 *     offset never passes a message whose reply is missing;
 *   - when a reply fails, nothing after its message is stored for that
 *     partition (its later window entries are dropped) and the partition is
 *     moved back to the message (seek) before the next poll; later
 *     messages already handled are handled again (the barrier absorbs the
 *     repeat). If the seek fails the worker turns unusable instead of going
 *     on (going on would store a later offset past the message).
 * The same pattern as broker/kafka_ingress.c.
 */
#include <dtmq/dtmq_worker.h>

#include <assert.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libdtmq/common/kafka_producer.h"
#include "reply_window.h"

#define DEFAULT_POLL_TIMEOUT_MS 200
#define REPLY_ACK_TIMEOUT_MS 10000  /* wait for Kafka's ack of a reply */
#define RETRY_PAUSE_MS 500          /* before handling a message again */
#define SEEK_TIMEOUT_MS 5000
#define PRODUCER_FLUSH_MS 5000
#define HANDLER_MESSAGE_LEN 1024
#define CREATE_TOPICS_TIMEOUT_MS 10000
#define TOPIC_VISIBLE_TIMEOUT_MS 5000
#define REPLY_WINDOW 256            /* replies in flight at most */
#define WINDOW_POLL_MS 20           /* poll timeout while replies are in flight */
#define WINDOW_WAIT_MS 50           /* wait for an ack when the window is full */

struct dtmq_worker {
    rd_kafka_t *rk;           /* owned consumer */
    dtmq_kafka_producer *producer; /* owned, for replies */
    reply_window *window;     /* owned: finished messages, oldest first */
    dtmq_branch_handler handler;
    void *arg;
    int poll_timeout_ms;
    atomic_int stopping;
    int broken;               /* 1 after a fatal error: run refuses */
    char broken_reason[512];
};

/* ---- small helpers ------------------------------------------------------ */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line on stderr, written at once. */
static void log_line(const char *fmt, ...)
{
    char line[1024];
    int n = snprintf(line, sizeof(line), "dtmq_worker: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    line[len] = '\n';
    fwrite(line, 1, len + 1, stderr);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Sleeps up to ms, returning early when a stop is asked for. */
static void pause_unless_stopping(dtmq_worker *w, int ms)
{
    for (int slept = 0; slept < ms && !atomic_load(&w->stopping); slept += 50)
        sleep_ms(50);
}

/* ---- creating and freeing ---------------------------------------------- */

static int check_options(const dtmq_worker_options *o, char *err, size_t errlen)
{
    if (o == NULL)
        set_err(err, errlen, "dtmq_worker: options: missing");
    else if (o->bootstrap == NULL || o->bootstrap[0] == '\0')
        set_err(err, errlen, "dtmq_worker: options.bootstrap: required");
    else if (o->group == NULL || o->group[0] == '\0')
        set_err(err, errlen, "dtmq_worker: options.group: required");
    else if (o->topics == NULL || o->topics[0] == NULL)
        set_err(err, errlen, "dtmq_worker: options.topics: at least one topic is required");
    else if (o->handler == NULL)
        set_err(err, errlen, "dtmq_worker: options.handler: required");
    else
        return 0;
    return -1;
}

/* Waits (up to TOPIC_VISIBLE_TIMEOUT_MS) until the cluster's metadata shows
 * a topic just created, so that the subscription finds it at once. */
static void wait_for_topic(rd_kafka_t *rk, const char *name)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, name, NULL);
    if (rkt == NULL)
        return;
    int visible = 0;
    for (int waited = 0; !visible && waited < TOPIC_VISIBLE_TIMEOUT_MS; waited += 100) {
        const rd_kafka_metadata_t *md = NULL;
        if (rd_kafka_metadata(rk, 0, rkt, &md, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            visible = md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
                      md->topics[0].partition_cnt > 0;
            rd_kafka_metadata_destroy(md);
        }
        if (!visible)
            sleep_ms(100);
    }
    rd_kafka_topic_destroy(rkt);
}

/*
 * Creates the topics that do not exist yet, with the cluster's default
 * partitions and replication. Best effort: a topic that cannot be created
 * (no permission, cluster slow) is logged and left to whoever creates it
 * later (dtmq's first publish does); the consumer notices it at its next
 * metadata refresh. Without this step, a topic created after the consumer
 * subscribed is noticed only at that refresh, and a subscription's own
 * metadata request does not create topics on a KRaft cluster.
 */
static void create_missing_topics(rd_kafka_t *rk, const char *const *topics, size_t n)
{
    char errstr[256];
    rd_kafka_NewTopic_t **nt = calloc(n, sizeof(*nt));
    size_t count = 0;
    for (size_t i = 0; nt && i < n; i++)
        if (topics[i][0] != '^' && /* a regex subscription names no topic */
            (nt[count] = rd_kafka_NewTopic_new(topics[i], -1, -1, errstr, sizeof(errstr))) != NULL)
            count++;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_event_t *ev = NULL;
    if (count > 0 && q && opts) {
        rd_kafka_AdminOptions_set_request_timeout(opts, CREATE_TOPICS_TIMEOUT_MS, NULL, 0);
        rd_kafka_CreateTopics(rk, nt, count, opts, q);
        ev = rd_kafka_queue_poll(q, CREATE_TOPICS_TIMEOUT_MS + 1000);
    }
    if (count > 0 && ev == NULL) {
        log_line("cannot create missing topics: no answer within %d ms", CREATE_TOPICS_TIMEOUT_MS);
    } else if (ev && rd_kafka_event_error(ev)) {
        log_line("cannot create missing topics: %s", rd_kafka_event_error_string(ev));
    } else if (ev) {
        size_t nres = 0;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &nres);
        for (size_t i = 0; i < nres; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
                wait_for_topic(rk, rd_kafka_topic_result_name(res[i]));
            else if (e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                log_line("cannot create topic %s: %s", rd_kafka_topic_result_name(res[i]),
                         rd_kafka_err2str(e));
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    if (opts)
        rd_kafka_AdminOptions_destroy(opts);
    if (q)
        rd_kafka_queue_destroy(q);
    if (nt)
        rd_kafka_NewTopic_destroy_array(nt, count);
    free(nt);
}

static int subscribe(rd_kafka_t *rk, const char *const *topics, char *err, size_t errlen)
{
    size_t n = 0;
    while (topics[n])
        n++;
    for (size_t i = 0; i < n; i++)
        if (topics[i][0] == '\0') {
            set_err(err, errlen, "dtmq_worker: options.topics[%zu]: empty topic name", i);
            return -1;
        }
    create_missing_topics(rk, topics, n);
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(subs, topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        set_err(err, errlen, "dtmq_worker: cannot subscribe: %s", rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

/* A consumer in o->group subscribed to o->topics; NULL + err on failure. */
static rd_kafka_t *new_consumer(const dtmq_worker_options *o, char *err, size_t errlen)
{
    char errstr[512];
    const char *settings[][2] = {
        {"bootstrap.servers", o->bootstrap},
        {"group.id", o->group},
        {"enable.auto.commit", "true"},
        {"auto.commit.interval.ms", "500"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"},
        {"allow.auto.create.topics", "true"},
        {"topic.metadata.refresh.interval.ms", "10000"}, /* notice topics created later */
        /* a rebalance waits for every member's next heartbeat: 1 s, not 3 s;
         * a dead worker's partitions move after 6 s (Kafka's minimum), not
         * 45 s; and the embedded cluster's rebalances take 5 s, not 44 s */
        {"session.timeout.ms", "6000"},
        {"heartbeat.interval.ms", "1000"},
        {"log_level", "3"},
    };
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
        if (rd_kafka_conf_set(conf, settings[i][0], settings[i][1], errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK) {
            set_err(err, errlen, "dtmq_worker: %s: %s", settings[i][0], errstr);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (rk == NULL) { /* conf is still ours */
        set_err(err, errlen, "dtmq_worker: cannot create the consumer: %s", errstr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    if (subscribe(rk, o->topics, err, errlen) != 0) {
        rd_kafka_destroy(rk);
        return NULL;
    }
    return rk;
}

int dtmq_worker_new(const dtmq_worker_options *o, dtmq_worker **out, char *err, size_t errlen)
{
    if (out == NULL) {
        set_err(err, errlen, "dtmq_worker: out: missing");
        return -1;
    }
    *out = NULL;
    if (check_options(o, err, errlen) != 0)
        return -1;
    dtmq_worker *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        set_err(err, errlen, "dtmq_worker: out of memory");
        return -1;
    }
    w->handler = o->handler;
    w->arg = o->arg;
    w->poll_timeout_ms = o->poll_timeout_ms > 0 ? o->poll_timeout_ms : DEFAULT_POLL_TIMEOUT_MS;
    w->window = dtmq_reply_window_new(REPLY_WINDOW);
    if (w->window == NULL) {
        set_err(err, errlen, "dtmq_worker: out of memory");
        free(w);
        return -1;
    }
    char perr[512] = "";
    w->producer = dtmq_kafka_producer_start(o->bootstrap, perr, sizeof(perr));
    if (w->producer == NULL) {
        set_err(err, errlen, "dtmq_worker: reply producer: %s", perr);
        dtmq_reply_window_free(w->window);
        free(w);
        return -1;
    }
    w->rk = new_consumer(o, err, errlen);
    if (w->rk == NULL) {
        dtmq_kafka_producer_stop(w->producer, 0);
        dtmq_reply_window_free(w->window);
        free(w);
        return -1;
    }
    *out = w;
    return 0;
}

int dtmq_worker_assigned_partitions(dtmq_worker *w)
{
    if (w == NULL || w->rk == NULL)
        return -1;
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(w->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return -1;
    int n = parts->cnt;
    rd_kafka_topic_partition_list_destroy(parts);
    return n;
}

void dtmq_worker_stop(dtmq_worker *w)
{
    if (w != NULL)
        atomic_store(&w->stopping, 1);
}

static int settle_replies(dtmq_worker *w, int closing, char *err, size_t errlen);

void dtmq_worker_free(dtmq_worker *w)
{
    if (w == NULL)
        return;
    /* Flushing settles every reply (stopping fails the rest), so the
     * acknowledged ones are stored before the close commits. */
    dtmq_kafka_producer_stop(w->producer, PRODUCER_FLUSH_MS);
    (void)settle_replies(w, 1, NULL, 0);
    assert(dtmq_reply_window_count(w->window) == 0);
    rd_kafka_resp_err_t e = rd_kafka_consumer_close(w->rk); /* commits stored offsets */
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        log_line("closing the consumer: %s", rd_kafka_err2str(e));
    rd_kafka_destroy(w->rk);
    dtmq_reply_window_free(w->window);
    free(w);
}

/* ---- reading a branch message ------------------------------------------ */

/* The dtm-* headers of one message, copied (owned). */
typedef struct branch_headers {
    char *gid, *trans_type, *branch_id, *op, *reply_to;
} branch_headers;

typedef enum { HEADERS_OK, HEADERS_MISSING, HEADERS_NO_MEMORY } headers_status;

static void branch_headers_clear(branch_headers *h)
{
    free(h->gid);
    free(h->trans_type);
    free(h->branch_id);
    free(h->op);
    free(h->reply_to);
    memset(h, 0, sizeof(*h));
}

/* Copies the first header called name into *out ("" when absent and
 * optional). HEADERS_MISSING when absent (or a null value) and required.
 * The first, because dtmq writes its dtm-* headers before the
 * transaction's branch_headers, which may repeat a name. */
static headers_status copy_header(rd_kafka_headers_t *hdrs, const char *name, int required,
                                  char **out)
{
    const void *value = NULL;
    size_t size = 0;
    if (hdrs == NULL || rd_kafka_header_get(hdrs, 0, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        value == NULL) {
        if (required)
            return HEADERS_MISSING;
        value = "";
        size = 0;
    }
    *out = strndup(value, size);
    return *out ? HEADERS_OK : HEADERS_NO_MEMORY;
}

/* Reads the dtm-* headers into h (cleared by the caller in every case).
 * *missing names the first required header that is absent. */
static headers_status read_headers(const rd_kafka_message_t *m, branch_headers *h,
                                   const char **missing)
{
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        hdrs = NULL;
    struct {
        const char *name;
        int required;
        char **out;
    } fields[] = {{"dtm-gid", 1, &h->gid},
                  {"dtm-branch-id", 1, &h->branch_id},
                  {"dtm-op", 1, &h->op},
                  {"dtm-trans-type", 0, &h->trans_type},
                  {"dtm-reply-to", 0, &h->reply_to}};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        headers_status s = copy_header(hdrs, fields[i].name, fields[i].required, fields[i].out);
        if (s != HEADERS_OK) {
            *missing = fields[i].name;
            return s;
        }
    }
    return HEADERS_OK;
}

/* ---- the reply ---------------------------------------------------------- */

/* A JSON string for s; bytes that are not valid UTF-8 become '?' (jansson
 * refuses invalid UTF-8). NULL only when out of memory. */
static json_t *json_text(const char *s)
{
    json_t *j = json_string(s);
    if (j != NULL)
        return j;
    char *copy = strdup(s);
    if (copy == NULL)
        return NULL;
    for (char *c = copy; *c; c++)
        if ((unsigned char)*c >= 0x80)
            *c = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

/* The reply's value (malloc'd), in the order dtmq documents; NULL when out
 * of memory. */
static char *reply_json(const branch_headers *h, const char *result, const char *message)
{
    json_t *r = json_object();
    const char *names[] = {"gid", "branch_id", "op", "dtm_result", "message"};
    const char *values[] = {h->gid, h->branch_id, h->op, result, message};
    int ok = r != NULL;
    for (size_t i = 0; ok && i < sizeof(names) / sizeof(names[0]); i++)
        ok = json_object_set_new(r, names[i], json_text(values[i])) == 0;
    char *text = ok ? json_dumps(r, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(r);
    return text;
}

/* Queues the reply; Kafka's answer settles ticket (also when queueing
 * fails: then at once, with the reason). */
static void send_reply(dtmq_worker *w, const branch_headers *h, const char *result,
                       const char *message, void *ticket)
{
    char *text = reply_json(h, result, message);
    if (text == NULL) {
        dtmq_reply_window_settle(ticket, 0, "out of memory");
        return;
    }
    dtmq_kafka_header hdr[] = {{"dtm-gid", h->gid}, {"dtm-branch-id", h->branch_id}, {"dtm-op", h->op}};
    if (dtmq_kafka_produce(w->producer, h->reply_to, h->gid, text, strlen(text), hdr,
                           sizeof(hdr) / sizeof(hdr[0]), dtmq_reply_window_settle, ticket) != 0)
        dtmq_reply_window_settle(ticket, 0, "cannot queue the reply (invalid topic name or full queue)");
    free(text);
}

/* ---- offsets ------------------------------------------------------------ */

/* Marks topic[partition]@offset as finished: offset + 1 is committed with
 * the next commit. */
static void store_offset(dtmq_worker *w, const char *topic, int32_t partition, int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset + 1;
    rd_kafka_resp_err_t e = rd_kafka_offsets_store(w->rk, l);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        e = l->elems[0].err;
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) /* e.g. the partition moved to another worker */
        log_line("cannot store the offset of %s[%d]@%lld (it will be handled again): %s", topic,
                 (int)partition, (long long)offset, rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
}

/* Moves topic[partition] back to offset, so that it is the next message
 * polled from it. 0, or -1 + err. */
static int seek_back(dtmq_worker *w, const char *topic, int32_t partition, int64_t offset,
                     char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
    rd_kafka_error_t *e = rd_kafka_seek_partitions(w->rk, l, SEEK_TIMEOUT_MS);
    int rc = 0;
    if (e != NULL) {
        set_err(err, errlen, "%s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        rc = -1;
    } else if (l->elems[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        set_err(err, errlen, "%s", rd_kafka_err2str(l->elems[0].err));
        rc = -1;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

/* ---- one message -------------------------------------------------------- */

typedef enum {
    MSG_FINISHED, /* nothing in flight: its offset may be stored in turn */
    MSG_REPLYING, /* in the window with its reply in flight */
    MSG_AGAIN     /* handle it again: seek back, pause */
} msg_outcome;

/* Calls the handler for m and queues the reply when one is due (the
 * message then enters the window as pending). */
static msg_outcome handle_branch(dtmq_worker *w, const rd_kafka_message_t *m,
                                 const branch_headers *h)
{
    dtmq_branch_msg bm = {
        .gid = h->gid, .trans_type = h->trans_type, .branch_id = h->branch_id, .op = h->op,
        .reply_to = h->reply_to, .payload = m->payload, .payload_len = m->len,
        .topic = rd_kafka_topic_name(m->rkt), .partition = (int)m->partition,
        .offset = (long long)m->offset,
    };
    char message[HANDLER_MESSAGE_LEN] = "";
    dtmq_result r = w->handler(w->arg, &bm, message, sizeof(message));
    message[sizeof(message) - 1] = '\0';
    const char *result = dtmq_result_name(r);
    if (strcmp(h->trans_type, "msg") == 0) {
        /* dtmq counted the publish as the branch's success and never sends it
         * again: only the handler's SUCCESS may let the message go. */
        if (r == DTMQ_SUCCESS)
            return MSG_FINISHED;
        log_line("gid %s branch %s %s: msg branch not done (%s%s%s); handling %s[%d]@%lld again",
                 h->gid, h->branch_id, h->op, result ? result : "not a dtmq_result",
                 message[0] ? ": " : "", message, bm.topic, bm.partition, bm.offset);
        return MSG_AGAIN;
    }
    if (result == NULL) {
        log_line("gid %s branch %s %s: the handler returned %d, not a dtmq_result; no reply "
                 "(dtmq calls the branch again)", h->gid, h->branch_id, h->op, (int)r);
        return MSG_FINISHED;
    }
    if (h->reply_to[0] == '\0')
        return MSG_FINISHED;
    void *ticket = dtmq_reply_window_push(w->window, bm.topic, m->partition, m->offset, 1);
    if (ticket == NULL) { /* the run loop keeps a free slot: out of memory */
        log_line("gid %s branch %s %s: out of memory for the reply; handling %s[%d]@%lld again",
                 h->gid, h->branch_id, h->op, bm.topic, bm.partition, bm.offset);
        return MSG_AGAIN;
    }
    send_reply(w, h, result, message, ticket);
    return MSG_REPLYING;
}

/* Makes the worker unusable with a reason; returns -1 for the caller. */
static int break_worker(dtmq_worker *w, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int break_worker(dtmq_worker *w, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->broken_reason, sizeof(w->broken_reason), fmt, ap);
    va_end(ap);
    w->broken = 1;
    log_line("%s", w->broken_reason);
    set_err(err, errlen, "%s", w->broken_reason);
    return -1;
}

/* Moves the partition back to a message that must be handled again and
 * pauses; 0, or -1 when the seek failed (the worker is then broken). */
static int handle_again(dtmq_worker *w, const char *topic, int32_t partition, int64_t offset,
                        char *err, size_t errlen)
{
    char why[512] = "";
    if (seek_back(w, topic, partition, offset, why, sizeof(why)) != 0)
        return break_worker(w, err, errlen,
                            "dtmq_worker: cannot move %s[%d] back to offset %lld, whose reply is "
                            "missing (free this worker; a new one handles it again): %s",
                            topic, (int)partition, (long long)offset, why);
    pause_unless_stopping(w, RETRY_PAUSE_MS);
    return 0;
}

/*
 * Takes the settled entries at the window's head, oldest first: an
 * acknowledged one stores its offset; a failed one drops the later entries
 * of its partition and, unless closing, moves the partition back to it.
 * When closing, entries still pending are failed by the stopped producer
 * first, so the window ends empty. 0, or -1 when the worker broke.
 */
static int settle_replies(dtmq_worker *w, int closing, char *err, size_t errlen)
{
    rw_entry e;
    int rc = 0;
    while (rc == 0 && dtmq_reply_window_pop(w->window, &e)) {
        if (e.dropped) {
            /* an earlier message of its partition is handled again */
        } else if (e.state == RW_ACKED) {
            store_offset(w, e.topic, e.partition, e.offset);
        } else {
            assert(e.state == RW_FAILED);
            log_line("cannot publish the reply of %s[%d]@%lld, handling it again: %s", e.topic,
                     (int)e.partition, (long long)e.offset, e.error);
            dtmq_reply_window_drop_partition(w->window, e.topic, e.partition);
            if (!closing)
                rc = handle_again(w, e.topic, e.partition, e.offset, err, errlen);
        }
        free(e.topic);
    }
    return rc;
}

/* A consumer event that is not a message: 0 to go on, -1 when fatal. */
static int take_consumer_error(dtmq_worker *w, const rd_kafka_message_t *m, char *err,
                               size_t errlen)
{
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
        return 0;
    if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[256] = "";
        rd_kafka_fatal_error(w->rk, why, sizeof(why));
        return break_worker(w, err, errlen, "dtmq_worker: fatal consumer error: %s", why);
    }
    log_line("consumer: %s", rd_kafka_message_errstr(m));
    return 0;
}

/*
 * Takes one polled event: a consumer error, a message to skip, or a branch
 * message for the handler (*handled counts handler calls). A finished
 * message enters the window behind the ones in flight. 0 to go on, -1 when
 * the worker broke (err says why).
 */
static int take_message(dtmq_worker *w, const rd_kafka_message_t *m, long *handled, char *err,
                        size_t errlen)
{
    if (m->err)
        return take_consumer_error(w, m, err, errlen);
    const char *topic = rd_kafka_topic_name(m->rkt);
    branch_headers h = {0};
    const char *missing = NULL;
    headers_status hs = read_headers(m, &h, &missing);
    msg_outcome outcome = MSG_FINISHED;
    if (hs == HEADERS_MISSING) {
        log_line("%s[%d]@%lld has no %s header: not a dtmq branch message, skipped", topic,
                 (int)m->partition, (long long)m->offset, missing);
    } else if (hs == HEADERS_NO_MEMORY) {
        log_line("%s[%d]@%lld: out of memory reading its headers, handling it again", topic,
                 (int)m->partition, (long long)m->offset);
        outcome = MSG_AGAIN;
    } else {
        (*handled)++;
        outcome = handle_branch(w, m, &h);
    }
    branch_headers_clear(&h);
    if (outcome == MSG_FINISHED &&
        dtmq_reply_window_push(w->window, topic, m->partition, m->offset, 0) == NULL) {
        log_line("%s[%d]@%lld: out of memory, handling it again", topic, (int)m->partition,
                 (long long)m->offset);
        outcome = MSG_AGAIN;
    }
    if (outcome != MSG_AGAIN)
        return 0;
    return handle_again(w, topic, m->partition, m->offset, err, errlen);
}

/* Settles what Kafka answered; when the window is full, waits for room.
 * 0, or -1 when the worker broke. */
static int make_room(dtmq_worker *w, char *err, size_t errlen)
{
    int rc = settle_replies(w, 0, err, errlen);
    while (rc == 0 && dtmq_reply_window_full(w->window)) {
        dtmq_reply_window_wait(w->window, WINDOW_WAIT_MS);
        rc = settle_replies(w, 0, err, errlen);
    }
    return rc;
}

/* At the end of a run: waits up to REPLY_ACK_TIMEOUT_MS for the replies in
 * flight and settles them. Entries still pending stay for the next run or
 * dtmq_worker_free. 0, or -1 when the worker broke. */
static int drain_replies(dtmq_worker *w, char *err, size_t errlen)
{
    int rc = settle_replies(w, 0, err, errlen);
    for (int waited = 0; rc == 0 && dtmq_reply_window_count(w->window) > 0 &&
                         waited < REPLY_ACK_TIMEOUT_MS;
         waited += WINDOW_WAIT_MS) {
        dtmq_reply_window_wait(w->window, WINDOW_WAIT_MS);
        rc = settle_replies(w, 0, err, errlen);
    }
    return rc;
}

long dtmq_worker_run(dtmq_worker *w, long max_messages, char *err, size_t errlen)
{
    if (w == NULL) {
        set_err(err, errlen, "dtmq_worker: no worker");
        return -1;
    }
    if (w->broken) {
        set_err(err, errlen, "dtmq_worker: unusable after an earlier error: %s", w->broken_reason);
        return -1;
    }
    long handled = 0;
    while (!atomic_load(&w->stopping) && (max_messages <= 0 || handled < max_messages)) {
        if (make_room(w, err, errlen) != 0)
            return -1;
        int timeout = dtmq_reply_window_count(w->window) > 0 && w->poll_timeout_ms > WINDOW_POLL_MS
                          ? WINDOW_POLL_MS
                          : w->poll_timeout_ms;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(w->rk, timeout);
        if (m == NULL)
            continue;
        int rc = take_message(w, m, &handled, err, errlen);
        rd_kafka_message_destroy(m);
        if (rc != 0)
            return -1;
    }
    atomic_store(&w->stopping, 0); /* a stop ends one run */
    if (drain_replies(w, err, errlen) != 0)
        return -1;
    return handled;
}
