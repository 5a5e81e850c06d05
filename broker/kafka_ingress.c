/*
 * kafka_ingress.c — the consumer of PREFIXsubmit and PREFIXreply (see
 * kafka_ingress.h).
 *
 * Lanes: one poll thread hands each message to the lane of its partition
 * (KafkaIngressLanes threads; lane_of), whose bounded queue (msg_queue.c)
 * holds back the poll when the lane is behind. A partition has exactly one
 * lane, so its messages (and a gid's, which share the gid's partition) are
 * taken one after another, in offset order, while other partitions' lanes
 * run, and wait on the store, at the same time.
 *
 * Guarantees, per message, in partition order:
 *   - a submit message's command has written the store, durably, before its
 *     offset is stored for commit (auto-commit only commits stored offsets)
 *     and before its "accepted" reply, so a crash re-reads it and the gid
 *     makes the second reading harmless. A lane defers durability: the
 *     messages it takes in one burst (up to INGRESS_BATCH) share one store
 *     commit, then their offsets and replies go out together (flush);
 *   - a message that cannot be taken (not JSON, not valid against
 *     schemas/kafka/submit.schema.json, key not its gid, bad fields, too
 *     large) is copied to PREFIXsubmit.dlq with the reason and its
 *     source in headers, acknowledged by Kafka, and only then skipped;
 *   - when the store is unavailable, or did not make a burst durable, its
 *     lane keeps those messages and takes them again, in order, after a
 *     pause (the lane waits; nothing is skipped, nothing is stored past them).
 * Replies to a message's reply_to topic are published asynchronously: the
 * store, not the reply, is the record (query it when a reply went missing).
 */
#include "kafka_ingress.h"

#include <assert.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/schema/json_schema.h"
#include "daemon/schema/schemas_embedded.h"
#include "engine/commands.h"
#include "libdtmq/common/rules.h"
#include "log.h"
#include "metrics.h"
#include "msg_queue.h"
#include "trans_json.h"

#define DLQ_ACK_TIMEOUT_MS 10000
#define STORE_RETRY_PAUSE_MS 1000
/* Messages a lane takes before their changes are made durable together. */
#define INGRESS_BATCH 128
/* Messages polled for a lane and not yet taken by it. */
#define LANE_QUEUE 256

/* A message taken (or to be read again) whose offset waits for the flush;
 * with the "accepted" reply it owes, if any. */
typedef struct taken_msg {
    rd_kafka_message_t *m; /* owned until the flush */
    int32_t partition;
    int64_t offset;
    int read_again; /* not taken: the lane takes it again */
    char *reply_to, *gid, *op;
    int status;
    json_t *body; /* the reply's body, owned */
    int finished_too; /* wait_result, but no pass follows: "finished" repeats it */
} taken_msg;

/* One lane: a thread taking the messages of its partitions in order.
 * Invariant: redo_next <= redo_count <= INGRESS_BATCH, and redo holds only
 * messages whose offsets were not stored, oldest first. */
typedef struct ingress_lane {
    struct kafka_ingress *in;
    pthread_t thread;
    int started;
    msg_queue *queue;               /* from the poll thread */
    taken_msg batch[INGRESS_BATCH]; /* waiting for the flush, in taking order */
    size_t batch_count;
    rd_kafka_message_t *redo[INGRESS_BATCH]; /* to take again before the queue */
    size_t redo_count, redo_next;
} ingress_lane;

struct kafka_ingress {
    broker *b;
    rd_kafka_t *rk; /* NULL when Kafka is off */
    pthread_t thread; /* the poll thread */
    int started;
    atomic_int stopping;
    atomic_long submitted, dead_lettered, replies, replies_unknown;
    json_schema *submit_schema; /* schemas/kafka/submit.schema.json */
    json_schema *reply_schema;  /* schemas/kafka/reply.schema.json */
    ingress_lane *lanes;
    int lane_count;
};

typedef enum { TAKEN, RETRY } take_result;

/* ---- replies to the submitter ----------------------------------------- */

typedef struct reply_target {
    broker *b;
    char *topic;
    char *gid;
    char *op;
} reply_target;

static void reply_target_free(reply_target *t)
{
    if (t == NULL)
        return;
    free(t->topic);
    free(t->gid);
    free(t->op);
    free(t);
}

/* Publishes {"gid","op","phase","status","dtm_result","message"} to reply_to.
 * Takes the reference to body (may be NULL). */
static void send_reply(broker *b, const char *topic, const char *gid, const char *op,
                       const char *phase, int status, json_t *body)
{
    assert(topic != NULL && phase != NULL);
    /* gid and op are left out only in the reply to a refused message that had
     * no usable one (submit_reply.schema.json) */
    json_t *r = json_pack("{s:s, s:i}", "phase", phase, "status", status);
    if (gid != NULL && gid[0] != '\0')
        json_object_set_new(r, "gid", json_string(gid));
    if (op != NULL)
        json_object_set_new(r, "op", json_string(op));
    const char *result = json_string_value(json_object_get(body, "dtm_result"));
    const char *message = json_string_value(json_object_get(body, "message"));
    json_object_set_new(r, "dtm_result", json_string(result ? result : status == 200 ? "SUCCESS" : "FAILURE"));
    if (message)
        json_object_set_new(r, "message", json_string(message));
    char *text = json_dumps(r, JSON_COMPACT);
    json_decref(r);
    json_decref(body);
    dtmq_kafka_header h = {"dtm-gid", gid};
    if (text == NULL || dtmq_kafka_produce(kafka_link_producer(b->kafka), topic, gid, text, strlen(text),
                                      &h, 1, NULL, NULL) != 0)
        log_gid_warn(gid, "cannot publish the %s reply to %s", phase, topic);
    free(text);
}

/* Engine waiter: the wait_result answer, as a "finished" reply. */
static void on_finished(void *arg, int status, const char *body)
{
    reply_target *t = arg;
    send_reply(t->b, t->topic, t->gid, t->op, "finished", status, json_loads(body, 0, NULL));
    reply_target_free(t);
}

/* ---- the dead-letter topic ------------------------------------------- */

/* Copies m to the DLQ with the reason; TAKEN once Kafka acknowledged it. */
static take_result dead_letter(kafka_ingress *in, const rd_kafka_message_t *m, const char *reason)
{
    char partition[16], offset[32], key[256] = "";
    snprintf(partition, sizeof(partition), "%d", (int)m->partition);
    snprintf(offset, sizeof(offset), "%lld", (long long)m->offset);
    if (m->key)
        snprintf(key, sizeof(key), "%.*s", (int)(m->key_len < 255 ? m->key_len : 255), (const char *)m->key);
    dtmq_kafka_header h[] = {{"dtm-dlq-reason", reason},
                        {"dtm-dlq-topic", rd_kafka_topic_name(m->rkt)},
                        {"dtm-dlq-partition", partition},
                        {"dtm-dlq-offset", offset}};
    char err[512];
    const kafka_topics *topics = kafka_link_topics(in->b->kafka);
    if (dtmq_kafka_produce_sync(kafka_link_producer(in->b->kafka), topics->dlq, m->key ? key : NULL,
                           m->payload, m->len, h, 4, DLQ_ACK_TIMEOUT_MS, err, sizeof(err)) != 0) {
        log_error("ingress: cannot dead-letter %s[%d]@%lld (%s); will read it again: %s",
                  rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset, reason, err);
        return RETRY;
    }
    atomic_fetch_add(&in->dead_lettered, 1);
    log_warn("ingress: %s[%d]@%lld dead-lettered to %s: %s", rd_kafka_topic_name(m->rkt),
             (int)m->partition, (long long)m->offset, topics->dlq, reason);
    return TAKEN;
}

/* ---- submit messages --------------------------------------------------- */

/* 1 when op is one of the four commands a submit message may carry. */
static int known_op(const char *op)
{
    static const char *const ops[] = {"prepare", "submit", "abort", "registerBranch"};
    for (size_t i = 0; op && i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strcmp(op, ops[i]) == 0)
            return 1;
    return 0;
}

/* Dead-letters a submit message refused before any command ran (schema or
 * envelope), and, once the dead-letter topic has it, answers on the
 * message's reply_to when that can be read: a string that is a legal topic
 * name. The answer names the gid and op only when they are usable (a gid of
 * at most 128 characters, one of the four ops), as the reply schema says. */
static take_result refuse_submit(kafka_ingress *in, const rd_kafka_message_t *m, json_t *body,
                                 const char *why)
{
    take_result result = dead_letter(in, m, why);
    const char *reply_to = json_string_value(json_object_get(body, "reply_to"));
    if (result != TAKEN || reply_to == NULL || !dtmq_topic_name_ok(reply_to))
        return result;
    const char *op = json_string_value(json_object_get(body, "op"));
    const char *usable_op = known_op(op) ? op : NULL;
    const char *gid = json_string_value(json_object_get(body, "gid"));
    if (gid != NULL && strlen(gid) > 128)
        gid = NULL;
    send_reply(in->b, reply_to, gid, usable_op, "accepted", 400, json_pack("{s:s}", "message", why));
    return result;
}

/* Runs op's command. The reply is in *r (deferred when wait_result took the
 * waiter); *err gets the parse problem when the body is bad (r untouched). */
static int run_command(broker *b, const char *op, const rd_kafka_message_t *m, json_t *body,
                       reply_target *finished, cmd_reply *r, char *err, size_t errlen)
{
    if (strcmp(op, "registerBranch") == 0) {
        /* "op" names the command here; a workflow branch's op travels as branch_op */
        json_t *flat = json_deep_copy(body);
        json_t *branch_op = json_object_get(body, "branch_op");
        if (branch_op)
            json_object_set(flat, "op", branch_op);
        else
            json_object_del(flat, "op");
        cmd_register_branch(b, flat, r);
        json_decref(flat);
        return 0;
    }
    trans_request req;
    if (trans_request_parse(m->payload, m->len, strcmp(op, "abort") != 0, &req, err, errlen) != 0)
        return -1;
    engine_waiter_fn waiter = finished && req.opts.wait_result ? on_finished : NULL;
    if (strcmp(op, "prepare") == 0)
        cmd_prepare(b, &req, r);
    else if (strcmp(op, "submit") == 0)
        cmd_submit(b, &req, waiter, finished, r);
    else
        cmd_abort(b, &req, waiter, finished, r);
    trans_request_clear(&req);
    return 0;
}

/* Checks the envelope: JSON object, op, gid, key = gid, reply_to. NULL reason = fine. */
static const char *check_envelope(const kafka_ingress *in, const rd_kafka_message_t *m,
                                  json_t *body, char *why, size_t len)
{
    const char *op = json_string_value(json_object_get(body, "op"));
    const char *gid = json_string_value(json_object_get(body, "gid"));
    json_t *reply_to = json_object_get(body, "reply_to");
    int op_ok = known_op(op);
    if (op == NULL)
        snprintf(why, len, "op: missing (want prepare, submit, abort or registerBranch)");
    else if (!op_ok)
        snprintf(why, len, "op: '%.64s' is not one of prepare, submit, abort, registerBranch", op);
    else if (gid == NULL || gid[0] == '\0')
        snprintf(why, len, "gid: missing");
    else if (m->key == NULL || m->key_len != strlen(gid) || memcmp(m->key, gid, m->key_len) != 0)
        snprintf(why, len, "key: the message key must be the gid '%.128s'", gid);
    else if (reply_to && (!json_is_string(reply_to) || !dtmq_topic_name_ok(json_string_value(reply_to))))
        snprintf(why, len, "reply_to: must be a Kafka topic name");
    else
        return NULL;
    return why;
}

/* 1 when the message asks for a "finished" reply: submit or abort with
 * wait_result. */
static int wants_finished(const char *op, json_t *body)
{
    return (strcmp(op, "submit") == 0 || strcmp(op, "abort") == 0) &&
           json_is_true(json_object_get(body, "wait_result"));
}

static take_result take_submit(kafka_ingress *in, const rd_kafka_message_t *m, taken_msg *acc)
{
    broker *b = in->b;
    char why[600];
    if (m->payload == NULL || m->len == 0)
        return dead_letter(in, m, "empty value (want a JSON transaction)");
    if ((long)m->len > b->cfg->max_body_bytes) {
        snprintf(why, sizeof(why), "value of %zu bytes is larger than MaxBodyBytes (%ld)", m->len,
                 b->cfg->max_body_bytes);
        return dead_letter(in, m, why);
    }
    json_error_t jerr;
    json_t *body = json_loadb(m->payload, m->len, 0, &jerr);
    if (!json_is_object(body)) {
        if (body == NULL)
            snprintf(why, sizeof(why), "invalid JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        else
            snprintf(why, sizeof(why), "value: must be a JSON object");
        json_decref(body);
        return dead_letter(in, m, why);
    }
    char schema_err[480];
    if (json_schema_validate(in->submit_schema, body, schema_err, sizeof(schema_err)) != 0) {
        snprintf(why, sizeof(why), "schema kafka/submit: %s", schema_err);
        take_result refused = refuse_submit(in, m, body, why);
        json_decref(body);
        return refused;
    }
    if (check_envelope(in, m, body, why, sizeof(why)) != NULL) {
        take_result refused = refuse_submit(in, m, body, why);
        json_decref(body);
        return refused;
    }
    const char *op = json_string_value(json_object_get(body, "op"));
    const char *gid = json_string_value(json_object_get(body, "gid"));
    const char *reply_to = json_string_value(json_object_get(body, "reply_to"));
    reply_target *finished = NULL;
    if (reply_to) {
        finished = calloc(1, sizeof(*finished));
        finished->b = b;
        finished->topic = strdup(reply_to);
        finished->gid = strdup(gid);
        finished->op = strdup(op);
    }
    cmd_reply r = {0};
    take_result result = TAKEN;
    if (run_command(b, op, m, body, finished, &r, why, sizeof(why)) != 0) {
        result = dead_letter(in, m, why);
        if (result == TAKEN && reply_to) { /* nothing was stored: no flush needed */
            send_reply(b, reply_to, gid, op, "accepted", 400, json_pack("{s:s}", "message", why));
            reply_to = NULL;
        }
    } else if (r.status >= 500) {
        log_gid_warn(gid, "ingress: %s failed (%d), reading it again later", op, r.status);
        result = RETRY;
    } else if (r.status == 400 || r.status == 413) {
        const char *msg = json_string_value(json_object_get(r.body, "message"));
        result = dead_letter(in, m, msg ? msg : "bad input");
    } else {
        atomic_fetch_add(&in->submitted, 1);
    }
    if (result == TAKEN && reply_to && !acc->reply_to) { /* sent at the flush */
        acc->reply_to = strdup(reply_to);
        acc->gid = strdup(gid);
        acc->op = strdup(op);
        acc->status = r.deferred ? 200 : r.status;
        acc->body = r.deferred ? json_pack("{s:s}", "dtm_result", "SUCCESS") : json_incref(r.body);
        /* the command ended the transaction, or left it to a pass already
         * running, without waiting (the abort of a prepared msg, the submit
         * of a workflow, the abort of a tcc/xa already aborting): the
         * client waiting for "finished" gets the command's answer as it */
        acc->finished_too = wants_finished(op, body) && !r.deferred && r.status == 200;
    }
    if (!r.deferred)
        reply_target_free(finished); /* the engine did not take it */
    cmd_reply_clear(&r);
    json_decref(body);
    return result;
}

/* ---- reply messages ----------------------------------------------------- */

static take_result take_reply(kafka_ingress *in, const rd_kafka_message_t *m)
{
    json_t *body = m->payload ? json_loadb(m->payload, m->len, 0, NULL) : NULL;
    char why[480] = "not JSON";
    if (body && json_schema_validate(in->reply_schema, body, why, sizeof(why)) != 0) {
        json_decref(body);
        body = NULL;
    }
    const char *gid = json_string_value(json_object_get(body, "gid"));
    const char *bid = json_string_value(json_object_get(body, "branch_id"));
    const char *op = json_string_value(json_object_get(body, "op"));
    const char *result = json_string_value(json_object_get(body, "dtm_result"));
    dispatch_outcome outcome = DISPATCH_ERROR;
    int known = result != NULL;
    if (known && strcmp(result, "SUCCESS") == 0)
        outcome = DISPATCH_SUCCESS;
    else if (known && strcmp(result, "FAILURE") == 0)
        outcome = DISPATCH_FAILURE;
    else if (known && strcmp(result, "ONGOING") == 0)
        outcome = DISPATCH_ONGOING;
    else
        known = 0;
    if (!gid || !bid || !op || !known) {
        atomic_fetch_add(&in->replies_unknown, 1);
        log_warn("ingress: malformed reply at %s[%d]@%lld ignored (schema kafka/reply: %s)",
                 rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset, why);
    } else {
        const char *message = json_string_value(json_object_get(body, "message"));
        reply_status rs = engine_on_reply(in->b->engine, gid, bid, op, outcome, message);
        atomic_fetch_add(rs == REPLY_UNKNOWN ? &in->replies_unknown : &in->replies, 1);
    }
    json_decref(body);
    return TAKEN;
}

/* ---- the consumer loop ------------------------------------------------ */

static void store_offset(kafka_ingress *in, const taken_msg *t)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(t->m->rkt), t->partition)->offset = t->offset + 1;
    rd_kafka_offsets_store(in->rk, l); /* refused (harmless) for a partition revoked meanwhile */
    rd_kafka_topic_partition_list_destroy(l);
}

static void taken_clear(taken_msg *t)
{
    if (t->m)
        rd_kafka_message_destroy(t->m);
    free(t->reply_to);
    free(t->gid);
    free(t->op);
    json_decref(t->body);
    memset(t, 0, sizeof(*t));
}

/* Puts the batch's messages that were not taken in front of what is still to
 * be taken again, keeping the order. Returns how many were put back. */
static size_t keep_for_redo(ingress_lane *lane, int durable)
{
    rd_kafka_message_t *next[INGRESS_BATCH];
    size_t n = 0;
    for (size_t i = 0; i < lane->batch_count; i++) {
        taken_msg *t = &lane->batch[i];
        if (!durable || t->read_again) {
            assert(n < INGRESS_BATCH);
            next[n++] = t->m;
            t->m = NULL;
        }
    }
    size_t again = n;
    for (size_t i = lane->redo_next; i < lane->redo_count; i++) {
        assert(n < INGRESS_BATCH); /* a batch taken from redo is no longer than redo */
        next[n++] = lane->redo[i];
    }
    memcpy(lane->redo, next, n * sizeof(next[0]));
    lane->redo_count = n;
    lane->redo_next = 0;
    return again;
}

/* Makes the batch's changes durable, then stores its offsets and sends its
 * "accepted" replies. If the store lost them, or a message could not be
 * taken, those messages are taken again after a pause. */
static void flush(ingress_lane *lane)
{
    kafka_ingress *in = lane->in;
    if (lane->batch_count == 0)
        return;
    int durable = store_sync(in->b->store) == STORE_OK;
    if (!durable)
        log_warn("ingress: the store did not make %zu message(s) durable (%s); taking them again",
                 lane->batch_count, store_last_error());
    for (size_t i = 0; i < lane->batch_count; i++) {
        taken_msg *t = &lane->batch[i];
        if (durable && !t->read_again) {
            store_offset(in, t);
            if (t->reply_to)
                send_reply(in->b, t->reply_to, t->gid, t->op, "accepted", t->status, json_incref(t->body));
            if (t->reply_to && t->finished_too)
                send_reply(in->b, t->reply_to, t->gid, t->op, "finished", t->status, json_incref(t->body));
        }
    }
    size_t again = keep_for_redo(lane, durable);
    for (size_t i = 0; i < lane->batch_count; i++)
        taken_clear(&lane->batch[i]);
    lane->batch_count = 0;
    if (again > 0 && !atomic_load(&in->stopping)) {
        struct timespec ts = {STORE_RETRY_PAUSE_MS / 1000, (STORE_RETRY_PAUSE_MS % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Takes one message (owned) into the batch; flushes when the batch is full
 * or the message must be taken again. */
static void take(ingress_lane *lane, rd_kafka_message_t *m, const char *reply_topic)
{
    assert(lane->batch_count < INGRESS_BATCH);
    taken_msg *t = &lane->batch[lane->batch_count++];
    int is_reply = strcmp(rd_kafka_topic_name(m->rkt), reply_topic) == 0;
    take_result r = is_reply ? take_reply(lane->in, m) : take_submit(lane->in, m, t);
    t->m = m;
    t->partition = m->partition;
    t->offset = m->offset;
    t->read_again = r != TAKEN;
    if (t->read_again || lane->batch_count == INGRESS_BATCH)
        flush(lane);
}

/* The next message to take: one to take again first, then the queue's. */
static rd_kafka_message_t *lane_next(ingress_lane *lane, int timeout_ms)
{
    if (lane->redo_next < lane->redo_count)
        return lane->redo[lane->redo_next++];
    return msg_queue_pop(lane->queue, timeout_ms);
}

static void *lane_main(void *arg)
{
    ingress_lane *lane = arg;
    kafka_ingress *in = lane->in;
    const char *reply_topic = kafka_link_topics(in->b->kafka)->reply;
    store_defer_durability(true); /* flush makes the batch durable */
    while (!atomic_load(&in->stopping)) {
        /* no waiting while messages wait for their flush */
        rd_kafka_message_t *m = lane_next(lane, lane->batch_count ? 0 : 200);
        if (m == NULL)
            flush(lane);
        else
            take(lane, m, reply_topic);
    }
    flush(lane);
    for (size_t i = lane->redo_next; i < lane->redo_count; i++)
        rd_kafka_message_destroy(lane->redo[i]); /* not stored: delivered again */
    lane->redo_count = lane->redo_next = 0;
    return NULL;
}

/* The lane of a message's partition: the submit and reply partitions of
 * each number side by side, round the lanes. */
static ingress_lane *lane_of(kafka_ingress *in, const rd_kafka_message_t *m, const char *reply_topic)
{
    int is_reply = strcmp(rd_kafka_topic_name(m->rkt), reply_topic) == 0;
    long slot = (long)m->partition * 2 + is_reply;
    return &in->lanes[slot % in->lane_count];
}

/* The poll thread: hands every message to its lane. */
static void *ingress_main(void *arg)
{
    kafka_ingress *in = arg;
    const char *reply_topic = kafka_link_topics(in->b->kafka)->reply;
    while (!atomic_load(&in->stopping)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(in->rk, 200);
        if (m == NULL)
            continue;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                log_warn("ingress: %s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        if (msg_queue_push(lane_of(in, m, reply_topic)->queue, m, &in->stopping) != 0)
            rd_kafka_message_destroy(m); /* stopping: not stored, delivered again */
    }
    return NULL;
}

static void destroy_message(void *m)
{
    rd_kafka_message_destroy(m);
}

/* Creates and starts the lanes; 0, or -1 + err. */
static int start_lanes(kafka_ingress *in, int count, char *err, size_t errlen)
{
    assert(count >= 1);
    in->lanes = calloc((size_t)count, sizeof(*in->lanes));
    if (in->lanes == NULL) {
        snprintf(err, errlen, "kafka ingress: out of memory");
        return -1;
    }
    in->lane_count = count;
    for (int i = 0; i < count; i++) {
        ingress_lane *lane = &in->lanes[i];
        lane->in = in;
        lane->queue = msg_queue_new(LANE_QUEUE, destroy_message);
        if (lane->queue == NULL || pthread_create(&lane->thread, NULL, lane_main, lane) != 0) {
            snprintf(err, errlen, "kafka ingress: cannot start lane %d of %d", i + 1, count);
            return -1;
        }
        lane->started = 1;
    }
    return 0;
}

/* Stops and joins the lanes (after the poll thread), then frees them. */
static void stop_lanes(kafka_ingress *in)
{
    for (int i = 0; i < in->lane_count; i++)
        if (in->lanes[i].queue)
            msg_queue_wake(in->lanes[i].queue);
    for (int i = 0; i < in->lane_count; i++) {
        if (in->lanes[i].started)
            pthread_join(in->lanes[i].thread, NULL);
        msg_queue_free(in->lanes[i].queue);
    }
    free(in->lanes);
    in->lanes = NULL;
    in->lane_count = 0;
}

static rd_kafka_t *new_consumer(broker *b, char *err, size_t errlen)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *settings[][2] = {
        {"bootstrap.servers", kafka_link_bootstrap(b->kafka)},
        {"group.id", b->cfg->kafka_group && b->cfg->kafka_group[0] ? b->cfg->kafka_group : "dtmq"},
        {"enable.auto.commit", "true"},
        {"auto.commit.interval.ms", "500"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "earliest"},
        {"partition.assignment.strategy", "range"},
        {"session.timeout.ms", "6000"},
        {"heartbeat.interval.ms", "1000"},
        {"log_level", "3"},
    };
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++)
        if (rd_kafka_conf_set(conf, settings[i][0], settings[i][1], errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
            snprintf(err, errlen, "kafka ingress: %s: %s", settings[i][0], errstr);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        snprintf(err, errlen, "kafka ingress: %s", errstr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    const kafka_topics *t = kafka_link_topics(b->kafka);
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(subs, t->submit, RD_KAFKA_PARTITION_UA);
    rd_kafka_topic_partition_list_add(subs, t->reply, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen, "kafka ingress: cannot subscribe: %s", rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return NULL;
    }
    return rk;
}

kafka_ingress *kafka_ingress_start(broker *b, char *err, size_t errlen)
{
    kafka_ingress *in = calloc(1, sizeof(*in));
    if (in == NULL) {
        snprintf(err, errlen, "kafka ingress: out of memory");
        return NULL;
    }
    in->b = b;
    if (b->kafka == NULL || kafka_link_producer(b->kafka) == NULL)
        return in; /* Kafka is off */
    in->submit_schema = json_schema_load(schema_text("kafka/submit"), err, errlen);
    in->reply_schema = in->submit_schema ? json_schema_load(schema_text("kafka/reply"), err, errlen) : NULL;
    if (in->reply_schema == NULL) {
        json_schema_free(in->submit_schema);
        free(in);
        return NULL;
    }
    in->rk = new_consumer(b, err, errlen);
    if (in->rk == NULL || start_lanes(in, b->cfg->kafka_ingress_lanes, err, errlen) != 0) {
        kafka_ingress_stop(in);
        return NULL;
    }
    if (pthread_create(&in->thread, NULL, ingress_main, in) != 0) {
        snprintf(err, errlen, "kafka ingress: cannot start its poll thread");
        kafka_ingress_stop(in);
        return NULL;
    }
    in->started = 1;
    const kafka_topics *t = kafka_link_topics(b->kafka);
    log_info("kafka ingress: consuming %s and %s in group %s, %d lane(s)", t->submit, t->reply,
             b->cfg->kafka_group ? b->cfg->kafka_group : "dtmq", in->lane_count);
    return in;
}

void kafka_ingress_stop(kafka_ingress *in)
{
    if (in == NULL)
        return;
    atomic_store(&in->stopping, 1);
    if (in->started)
        pthread_join(in->thread, NULL); /* no more pushes */
    stop_lanes(in); /* every message taken is flushed or destroyed */
    if (in->rk) {
        rd_kafka_consumer_close(in->rk); /* commits the stored offsets, leaves the group */
        rd_kafka_destroy(in->rk);
    }
    json_schema_free(in->submit_schema);
    json_schema_free(in->reply_schema);
    free(in);
}

void kafka_ingress_stats_get(kafka_ingress *in, kafka_ingress_stats *out)
{
    out->submitted = atomic_load(&in->submitted);
    out->dead_lettered = atomic_load(&in->dead_lettered);
    out->replies = atomic_load(&in->replies);
    out->replies_unknown = atomic_load(&in->replies_unknown);
    rd_kafka_topic_partition_list_t *parts = NULL;
    out->assigned_partitions = 0;
    if (in->rk != NULL && rd_kafka_assignment(in->rk, &parts) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        out->assigned_partitions = parts->cnt;
        rd_kafka_topic_partition_list_destroy(parts);
    }
}

void kafka_ingress_report_lag(kafka_ingress *in)
{
    if (in->rk == NULL)
        return;
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(in->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    rd_kafka_position(in->rk, parts);
    const kafka_topics *t = kafka_link_topics(in->b->kafka);
    const char *topics[] = {t->submit, t->reply};
    for (size_t k = 0; k < 2; k++) {
        int64_t lag = 0;
        for (int i = 0; i < parts->cnt; i++) {
            rd_kafka_topic_partition_t *p = &parts->elems[i];
            int64_t low = 0, high = 0;
            if (strcmp(p->topic, topics[k]) != 0 ||
                rd_kafka_get_watermark_offsets(in->rk, p->topic, p->partition, &low, &high) !=
                    RD_KAFKA_RESP_ERR_NO_ERROR)
                continue;
            int64_t pos = p->offset >= 0 ? p->offset : low;
            if (high > pos)
                lag += high - pos;
        }
        char labels[200], esc[170];
        snprintf(labels, sizeof(labels), "topic=\"%s\"", metrics_label(topics[k], esc, sizeof(esc)));
        metrics_gauge("dtmq_kafka_consumer_lag", labels, (double)lag);
    }
    rd_kafka_topic_partition_list_destroy(parts);
}
