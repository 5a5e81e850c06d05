/*
 * test_kafka.c — dtmq as a Kafka-native broker, against real Kafka
 * (DTMQ_TEST_KAFKA) and once against its embedded cluster: transactions in
 * through PREFIXsubmit with replies on reply_to, bad messages to the DLQ
 * without stalling the partition, kafka:// branches answered on PREFIXreply,
 * replies for unknown gids counted, status events, and a kill -9 while
 * submit messages are being consumed (nothing lost); a worker's FAILURE
 * message as the rollback reason, refused submits answered on reply_to, and
 * the embedded cluster's topics that a client created first.
 */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "busi.h"
#include "e2e_env.h"
#include "kafkatest.h"
#include "testlib.h"

typedef e2e_kafka_env kenv;

static void produce_submit(const kenv *env, const char *key, const char *value)
{
    char t[128];
    e2e_kafka_topic(env, "submit", t, sizeof(t));
    ck_assert_int_eq(kt_produce(env->bootstrap, t, key, value, strlen(value), NULL), 0);
}

/* A saga JSON for the submit topic with HTTP steps on busi. */
static char *saga_message(const kenv *env, const char *gid, const char *extra_json)
{
    char *text = NULL;
    int rc = asprintf(&text,
                      "{\"op\":\"submit\",\"gid\":\"%s\",\"trans_type\":\"saga\",\"steps\":["
                      "{\"action\":\"%s/api/Out\",\"compensate\":\"%s/api/OutRevert\"},"
                      "{\"action\":\"%s/api/In\",\"compensate\":\"%s/api/InRevert\"}],"
                      "\"payloads\":[\"{}\",\"{}\"]%s%s}",
                      gid, busi_url(env->e.svc), busi_url(env->e.svc), busi_url(env->e.svc),
                      busi_url(env->e.svc), extra_json ? "," : "", extra_json ? extra_json : "");
    ck_assert_int_ge(rc, 0);
    return text;
}

START_TEST(kafka_submit_runs_the_saga_and_replies)
{
    kenv env;
    e2e_kafka_env_start(&env, "t", NULL);
    char gid[64], replies[128], extra[256];
    e2e_gid(gid, sizeof(gid), "ks");
    e2e_kafka_topic(&env, "replies", replies, sizeof(replies));
    snprintf(extra, sizeof(extra), "\"reply_to\":\"%s\",\"wait_result\":true", replies);
    char *msg = saga_message(&env, gid, extra);
    produce_submit(&env, gid, msg);
    e2e_wait_status(&env.e.dtmq, gid, "succeed", 30);
    ck_assert_int_eq(busi_count(env.e.svc, "/api/Out", gid, "action"), 1);
    ck_assert_int_eq(busi_count(env.e.svc, "/api/In", gid, "action"), 1);
    kt_msg *m;
    size_t n = kt_read(env.bootstrap, replies, 2, 15000, &m);
    ck_assert_uint_eq(n, 2);
    int accepted = 0, finished = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_loads(m[i].value, 0, NULL);
        ck_assert_str_eq(m[i].key, gid);
        ck_assert_str_eq(json_string_value(json_object_get(r, "gid")), gid);
        ck_assert_str_eq(json_string_value(json_object_get(r, "dtm_result")), "SUCCESS");
        ck_assert_int_eq(json_integer_value(json_object_get(r, "status")), 200);
        const char *phase = json_string_value(json_object_get(r, "phase"));
        accepted += strcmp(phase, "accepted") == 0;
        finished += strcmp(phase, "finished") == 0;
        json_decref(r);
    }
    ck_assert_int_eq(accepted, 1);
    ck_assert_int_eq(finished, 1);
    kt_free(m, n);
    free(msg);
    e2e_kafka_env_stop(&env);
}
END_TEST

/* The abort of a prepared msg with wait_result ends it without a pass: the
 * "finished" reply repeats the command's answer, so a client waiting for it
 * is answered at once. */
START_TEST(a_wait_result_command_without_a_pass_still_gets_finished)
{
    kenv env;
    e2e_kafka_env_start(&env, "t", NULL);
    char gid[64], replies[128], *prepare = NULL, *abort_msg = NULL;
    e2e_gid(gid, sizeof(gid), "kf");
    e2e_kafka_topic(&env, "replies", replies, sizeof(replies));
    ck_assert_int_ge(asprintf(&prepare,
                              "{\"op\":\"prepare\",\"gid\":\"%s\",\"trans_type\":\"msg\","
                              "\"steps\":[{\"action\":\"%s/api/In\"}],\"payloads\":[\"{}\"],"
                              "\"query_prepared\":\"%s/api/Query\"}",
                              gid, busi_url(env.e.svc), busi_url(env.e.svc)), 0);
    produce_submit(&env, gid, prepare);
    e2e_wait_status(&env.e.dtmq, gid, "prepared", 30);
    ck_assert_int_ge(asprintf(&abort_msg,
                              "{\"op\":\"abort\",\"gid\":\"%s\",\"trans_type\":\"msg\","
                              "\"reply_to\":\"%s\",\"wait_result\":true}", gid, replies), 0);
    produce_submit(&env, gid, abort_msg);
    e2e_wait_status(&env.e.dtmq, gid, "failed", 30);
    kt_msg *m;
    size_t n = kt_read(env.bootstrap, replies, 2, 15000, &m);
    ck_assert_uint_eq(n, 2);
    const char *want[] = {"accepted", "finished"}; /* in this order, one partition */
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_loads(m[i].value, 0, NULL);
        ck_assert_str_eq(json_string_value(json_object_get(r, "phase")), want[i]);
        ck_assert_str_eq(json_string_value(json_object_get(r, "op")), "abort");
        ck_assert_int_eq(json_integer_value(json_object_get(r, "status")), 200);
        json_decref(r);
    }
    ck_assert_int_eq(busi_count(env.e.svc, "/api/In", gid, "action"), 0);
    kt_free(m, n);
    free(prepare);
    free(abort_msg);
    e2e_kafka_env_stop(&env);
}
END_TEST

/* Each bad message must land in the DLQ with a reason naming the problem. */
static const struct {
    const char *key;
    const char *value;
    const char *reason;
} bad_messages[] = {
    {"b1", "not json", "invalid JSON"},
    {"b2", "{\"op\":\"submit\",\"trans_type\":\"saga\"}", "gid"},
    {"b3", "{\"op\":\"explode\",\"gid\":\"b3\"}", "op"},
    {"other", "{\"op\":\"submit\",\"gid\":\"b4\",\"trans_type\":\"saga\",\"steps\":[{\"action\":\"\"}]}", "key"},
    {"b5", "{\"op\":\"submit\",\"gid\":\"b5\",\"trans_type\":\"saga\",\"steps\":[{\"action\":\"\"}],\"payloads\":[\"a\",\"b\"]}", "payloads"},
    {"b6", "{\"op\":\"submit\",\"gid\":\"b6\",\"trans_type\":\"saga\",\"steps\":[{\"action\":\"ftp://x\"}]}", "ftp://x"},
    {"b7", "[1,2]", "object"},
};

START_TEST(bad_messages_go_to_the_dlq_and_do_not_stall)
{
    kenv env;
    e2e_kafka_env_start(&env, "t", NULL);
    size_t bad = sizeof(bad_messages) / sizeof(bad_messages[0]);
    /* every message on one partition (same key would do; here: produce in order, then a good one) */
    for (size_t i = 0; i < bad; i++)
        produce_submit(&env, bad_messages[i].key, bad_messages[i].value);
    char gid[64];
    e2e_gid(gid, sizeof(gid), "ok");
    char *good = saga_message(&env, gid, NULL);
    produce_submit(&env, gid, good);
    e2e_wait_status(&env.e.dtmq, gid, "succeed", 30);
    char dlq[128];
    e2e_kafka_topic(&env, "submit.dlq", dlq, sizeof(dlq));
    kt_msg *m;
    size_t n = kt_read(env.bootstrap, dlq, bad, 15000, &m);
    ck_assert_uint_eq(n, bad);
    for (size_t i = 0; i < bad; i++) {
        size_t j = 0; /* find the dead letter of message i by its value */
        while (j < n && strcmp(m[j].value, bad_messages[i].value) != 0)
            j++;
        ck_assert_msg(j < n, "message %zu not dead-lettered", i);
        char reason[512], src[128], offset[32];
        ck_assert_ptr_nonnull(kt_header(&m[j], "dtm-dlq-reason", reason, sizeof(reason)));
        ck_assert_msg(strstr(reason, bad_messages[i].reason) != NULL, "reason '%s' lacks '%s'",
                      reason, bad_messages[i].reason);
        ck_assert_ptr_nonnull(kt_header(&m[j], "dtm-dlq-topic", src, sizeof(src)));
        ck_assert_msg(strstr(src, "submit") != NULL, "source topic %s", src);
        ck_assert_ptr_nonnull(kt_header(&m[j], "dtm-dlq-offset", offset, sizeof(offset)));
        ck_assert_str_eq(m[j].key, bad_messages[i].key);
    }
    kt_free(m, n);
    char path[256];
    snprintf(path, sizeof(path), "/api/dtmsvr/query?gid=b5");
    int status;
    json_t *q = e2e_call(&env.e.dtmq, "GET", path, NULL, &status);
    ck_assert(json_is_null(json_object_get(q, "transaction"))); /* nothing stored for bad input */
    json_decref(q);
    free(good);
    e2e_kafka_env_stop(&env);
}
END_TEST

/* Reads the next branch message on topic after skip earlier ones; asserts its headers. */
static kt_msg *expect_branch(const kenv *env, const char *topic_name, const char *gid,
                             const char *bid, const char *op, size_t *count)
{
    kt_msg *m;
    *count = kt_read(env->bootstrap, topic_name, 1, 20000, &m);
    ck_assert_msg(*count >= 1, "no message on %s", topic_name);
    char v[128];
    ck_assert_str_eq(m[0].key, gid);
    ck_assert_str_eq(kt_header(&m[0], "dtm-gid", v, sizeof(v)), gid);
    ck_assert_str_eq(kt_header(&m[0], "dtm-branch-id", v, sizeof(v)), bid);
    ck_assert_str_eq(kt_header(&m[0], "dtm-op", v, sizeof(v)), op);
    ck_assert_str_eq(kt_header(&m[0], "dtm-trans-type", v, sizeof(v)), "saga");
    return m;
}

/* A worker's reply on PREFIXreply; message may be NULL (no "message" key). */
static void worker_reply_saying(const kenv *env, const char *gid, const char *bid, const char *op,
                                const char *result, const char *message)
{
    char reply[128], value[768];
    e2e_kafka_topic(env, "reply", reply, sizeof(reply));
    snprintf(value, sizeof(value), "{\"gid\":\"%s\",\"branch_id\":\"%s\",\"op\":\"%s\",\"dtm_result\":\"%s\"%s%s%s}",
             gid, bid, op, result, message ? ",\"message\":\"" : "", message ? message : "",
             message ? "\"" : "");
    ck_assert_int_eq(kt_produce(env->bootstrap, reply, gid, value, strlen(value), NULL), 0);
}

static void worker_reply(const kenv *env, const char *gid, const char *bid, const char *op,
                         const char *result)
{
    worker_reply_saying(env, gid, bid, op, result, NULL);
}

START_TEST(kafka_branches_are_decided_by_worker_replies)
{
    kenv env;
    e2e_kafka_env_start(&env, "t", NULL);
    char gid[64], ta[128], tb[128], ta_rev[128], tb_rev[128], body[1024];
    e2e_gid(gid, sizeof(gid), "kb");
    e2e_kafka_topic(&env, "stepA", ta, sizeof(ta));
    e2e_kafka_topic(&env, "stepB", tb, sizeof(tb));
    e2e_kafka_topic(&env, "stepA-revert", ta_rev, sizeof(ta_rev));
    e2e_kafka_topic(&env, "stepB-revert", tb_rev, sizeof(tb_rev));
    snprintf(body, sizeof(body),
             "{\"gid\":\"%s\",\"trans_type\":\"saga\",\"request_timeout\":20,\"steps\":["
             "{\"action\":\"kafka://%s\",\"compensate\":\"kafka://%s\"},"
             "{\"action\":\"kafka://%s\",\"compensate\":\"kafka://%s\"}],\"payloads\":[\"{\\\"a\\\":1}\",\"{\\\"b\\\":2}\"]}",
             gid, ta, ta_rev, tb, tb_rev);
    e2e_post_expect(&env.e.dtmq, "submit", body, 200);
    size_t n;
    kt_msg *m = expect_branch(&env, ta, gid, "01", "action", &n);
    ck_assert_str_eq(m[0].value, "{\"a\":1}");
    char reply_to[128];
    ck_assert_ptr_nonnull(kt_header(&m[0], "dtm-reply-to", reply_to, sizeof(reply_to)));
    ck_assert_msg(strstr(reply_to, "reply") != NULL, "reply-to %s", reply_to);
    kt_free(m, n);
    worker_reply(&env, gid, "01", "action", "SUCCESS");
    m = expect_branch(&env, tb, gid, "02", "action", &n);
    kt_free(m, n);
    worker_reply(&env, gid, "02", "action", "FAILURE");
    m = expect_branch(&env, tb_rev, gid, "02", "compensate", &n);
    kt_free(m, n);
    worker_reply(&env, gid, "02", "compensate", "SUCCESS");
    m = expect_branch(&env, ta_rev, gid, "01", "compensate", &n);
    kt_free(m, n);
    worker_reply(&env, gid, "01", "compensate", "SUCCESS");
    e2e_wait_status(&env.e.dtmq, gid, "failed", 30);
    e2e_kafka_env_stop(&env);
}
END_TEST

/* A saga action's FAILURE reply names why; that reason, after the branch, is
 * the transaction's rollback_reason (reply.schema.json). */
START_TEST(worker_failure_message_is_the_rollback_reason)
{
    kenv env;
    e2e_kafka_env_start(&env, "t", NULL);
    char gid[64], ta[128], ta_rev[128], body[1024];
    e2e_gid(gid, sizeof(gid), "kr");
    e2e_kafka_topic(&env, "reserve", ta, sizeof(ta));
    e2e_kafka_topic(&env, "reserve-revert", ta_rev, sizeof(ta_rev));
    snprintf(body, sizeof(body),
             "{\"gid\":\"%s\",\"trans_type\":\"saga\",\"request_timeout\":20,\"steps\":["
             "{\"action\":\"kafka://%s\",\"compensate\":\"kafka://%s\"}],\"payloads\":[\"{}\"]}",
             gid, ta, ta_rev);
    e2e_post_expect(&env.e.dtmq, "submit", body, 200);
    size_t n;
    kt_msg *m = expect_branch(&env, ta, gid, "01", "action", &n);
    kt_free(m, n);
    worker_reply_saying(&env, gid, "01", "action", "FAILURE", "insufficient stock for sku 42");
    m = expect_branch(&env, ta_rev, gid, "01", "compensate", &n);
    kt_free(m, n);
    worker_reply(&env, gid, "01", "compensate", "SUCCESS");
    e2e_wait_status(&env.e.dtmq, gid, "failed", 30);
    char path[256];
    snprintf(path, sizeof(path), "/api/dtmsvr/query?gid=%s", gid);
    int status;
    json_t *q = e2e_call(&env.e.dtmq, "GET", path, NULL, &status);
    ck_assert_int_eq(status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(q, "transaction"), "rollback_reason")),
                     "branch 01 action failed: insufficient stock for sku 42");
    json_decref(q);
    e2e_kafka_env_stop(&env);
}
END_TEST

/* Submits refused before any command ran (schema, envelope) are answered on
 * a readable reply_to with 400 and the reason, besides the dead letter; the
 * reply names gid and op only when they were usable. */
START_TEST(refused_submits_are_answered_on_reply_to)
{
    kenv env;
    e2e_kafka_env_start(&env, "t", NULL);
    char replies[128], v[3][512];
    e2e_kafka_topic(&env, "refusals", replies, sizeof(replies));
    snprintf(v[0], sizeof(v[0]), "{\"gid\":\"r-noop\",\"trans_type\":\"saga\",\"steps\":[],\"reply_to\":\"%s\"}", replies);
    snprintf(v[1], sizeof(v[1]), "{\"op\":\"launch\",\"gid\":\"r-badop\",\"trans_type\":\"saga\",\"steps\":[],\"reply_to\":\"%s\"}", replies);
    snprintf(v[2], sizeof(v[2]), "{\"op\":\"submit\",\"gid\":\"r-key\",\"trans_type\":\"saga\",\"steps\":[],\"reply_to\":\"%s\"}", replies);
    produce_submit(&env, "r-noop", v[0]);
    produce_submit(&env, "r-badop", v[1]);
    produce_submit(&env, "not-the-gid", v[2]);
    kt_msg *m;
    size_t n = kt_read(env.bootstrap, replies, 3, 20000, &m);
    ck_assert_uint_eq(n, 3);
    const char *gids[] = {"r-noop", "r-badop", "r-key"};
    const char *ops[] = {NULL, NULL, "submit"};
    const char *reasons[] = {"op", "op", "key"};
    for (size_t i = 0; i < 3; i++) {
        json_t *r = NULL;
        for (size_t j = 0; j < n && r == NULL; j++) {
            json_t *cand = json_loads(m[j].value, 0, NULL);
            if (strcmp(json_string_value(json_object_get(cand, "gid")) ?: "", gids[i]) == 0)
                r = cand;
            else
                json_decref(cand);
        }
        ck_assert_msg(r != NULL, "no reply for %s", gids[i]);
        ck_assert_str_eq(json_string_value(json_object_get(r, "phase")), "accepted");
        ck_assert_int_eq(json_integer_value(json_object_get(r, "status")), 400);
        ck_assert_str_eq(json_string_value(json_object_get(r, "dtm_result")), "FAILURE");
        if (ops[i])
            ck_assert_str_eq(json_string_value(json_object_get(r, "op")), ops[i]);
        else
            ck_assert_ptr_null(json_object_get(r, "op"));
        const char *why = json_string_value(json_object_get(r, "message"));
        ck_assert_msg(why && strstr(why, reasons[i]), "reply for %s: %s", gids[i], why ? why : "(none)");
        json_decref(r);
    }
    kt_free(m, n);
    char dlq[128];
    e2e_kafka_topic(&env, "submit.dlq", dlq, sizeof(dlq));
    n = kt_read(env.bootstrap, dlq, 3, 15000, &m);
    ck_assert_uint_eq(n, 3); /* and each is dead-lettered as before */
    kt_free(m, n);
    e2e_kafka_env_stop(&env);
}
END_TEST

START_TEST(msg_kafka_branch_succeeds_on_publish_and_events_are_published)
{
    const char *args[] = {"--kafka-events", "1", NULL};
    kenv env;
    e2e_kafka_env_start(&env, "t", args);
    char gid[64], orders[128], events[128], body[1024];
    e2e_gid(gid, sizeof(gid), "km");
    e2e_kafka_topic(&env, "orders", orders, sizeof(orders));
    e2e_kafka_topic(&env, "events", events, sizeof(events));
    snprintf(body, sizeof(body),
             "{\"gid\":\"%s\",\"trans_type\":\"msg\",\"steps\":[{\"action\":\"kafka://%s\"}],"
             "\"payloads\":[\"{\\\"order\\\":7}\"]}", gid, orders);
    e2e_post_expect(&env.e.dtmq, "submit", body, 200);
    e2e_wait_status(&env.e.dtmq, gid, "succeed", 30);
    kt_msg *m;
    size_t n = kt_read(env.bootstrap, orders, 1, 15000, &m);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(m[0].value, "{\"order\":7}");
    kt_free(m, n);
    n = kt_read(env.bootstrap, events, 2, 15000, &m);
    ck_assert_uint_eq(n, 2);
    const char *want[] = {"submitted", "succeed"};
    for (size_t i = 0; i < 2; i++) {
        json_t *ev = json_loads(m[i].value, 0, NULL);
        ck_assert_str_eq(json_string_value(json_object_get(ev, "gid")), gid);
        ck_assert_str_eq(json_string_value(json_object_get(ev, "status")), want[i]);
        json_decref(ev);
    }
    kt_free(m, n);
    e2e_kafka_env_stop(&env);
}
END_TEST

START_TEST(replies_for_unknown_gids_are_counted_not_applied)
{
    kenv env;
    e2e_kafka_env_start(&env, "t", NULL);
    worker_reply(&env, "no-such-gid", "01", "action", "SUCCESS");
    char reply[128];
    e2e_kafka_topic(&env, "reply", reply, sizeof(reply));
    ck_assert_int_eq(kt_produce(env.bootstrap, reply, "x", "garbage", 7, NULL), 0);
    long unknown = 0;
    for (int i = 0; i < 100 && unknown < 2; i++) {
        int status;
        json_t *info = e2e_call(&env.e.dtmq, "GET", "/api/info", NULL, &status);
        unknown = (long)json_integer_value(json_object_get(json_object_get(info, "kafka_ingress"), "replies_unknown"));
        json_decref(info);
        test_sleep_ms(100);
    }
    ck_assert_int_eq(unknown, 2);
    int status;
    /* the one process of the group holds every submit and reply partition */
    json_t *info = e2e_call(&env.e.dtmq, "GET", "/api/info", NULL, &status);
    json_t *assigned = json_object_get(json_object_get(info, "kafka_ingress"), "assigned_partitions");
    ck_assert_msg(json_is_integer(assigned), "kafka_ingress.assigned_partitions missing");
    ck_assert_int_eq(json_integer_value(assigned), 8); /* 4 of dtm.submit + 4 of dtm.reply */
    json_decref(info);
    json_t *q = e2e_call(&env.e.dtmq, "GET", "/api/dtmsvr/query?gid=no-such-gid", NULL, &status);
    ck_assert(json_is_null(json_object_get(q, "transaction")));
    json_decref(q);
    e2e_kafka_env_stop(&env);
}
END_TEST

START_TEST(kill_9_while_consuming_loses_nothing)
{
    enum { N = 20 };
    kenv env;
    e2e_kafka_env_start(&env, "t", NULL);
    busi_rule(env.e.svc, "/api/In", NULL, NULL, 200, NULL, 150, -1);
    char gids[N][64];
    for (int i = 0; i < N; i++) {
        e2e_gid(gids[i], sizeof(gids[i]), "kc");
        char *msg = saga_message(&env, gids[i], NULL);
        produce_submit(&env, gids[i], msg);
        free(msg);
    }
    ck_assert_int_ge(busi_wait(env.e.svc, "/api/In", NULL, NULL, 3, 20000), 3);
    ck_assert_int_eq(dtmq_stop(&env.e.dtmq, SIGKILL, 10), 128 + SIGKILL);
    const char *args[] = {"--kafka", env.bootstrap, "--kafka-topic-prefix", env.prefix,
                          "--kafka-group", env.group, NULL};
    e2e_start(&env.e.dtmq, env.e.store, args);
    for (int i = 0; i < N; i++)
        e2e_wait_status(&env.e.dtmq, gids[i], "succeed", 60);
    for (int i = 0; i < N; i++) {
        ck_assert_int_ge(busi_count(env.e.svc, "/api/Out", gids[i], "action"), 1);
        ck_assert_int_ge(busi_count(env.e.svc, "/api/In", gids[i], "action"), 1);
        /* a step is repeated only if its answer was lost in the crash */
        ck_assert_int_le(busi_count(env.e.svc, "/api/Out", gids[i], "action"), 2);
    }
    e2e_kafka_env_stop(&env);
}
END_TEST

/* The embedded cluster's bootstrap address, as GET /api/info reports it. */
static void embedded_bootstrap(const dtmq_proc *p, char *buf, size_t len)
{
    int status;
    json_t *info = e2e_call(p, "GET", "/api/info", NULL, &status);
    ck_assert_int_eq(status, 200);
    const char *b = json_string_value(json_object_get(info, "kafka_bootstrap"));
    ck_assert_ptr_nonnull(b);
    snprintf(buf, len, "%s", b);
    json_decref(info);
}

/* Submits a one-step saga on the embedded cluster at bootstrap and waits
 * for it to succeed. */
static void embedded_saga_succeeds(const dtmq_proc *p, busi *svc, const char *bootstrap,
                                   const char *gid_prefix)
{
    char gid[64], value[512];
    e2e_gid(gid, sizeof(gid), gid_prefix);
    snprintf(value, sizeof(value),
             "{\"op\":\"submit\",\"gid\":\"%s\",\"trans_type\":\"saga\",\"steps\":[{\"action\":\"%s/api/Out\",\"compensate\":\"\"}],\"payloads\":[\"{}\"]}",
             gid, busi_url(svc));
    ck_assert_int_eq(kt_produce(bootstrap, "dtm.submit", gid, value, strlen(value), NULL), 0);
    e2e_wait_status(p, gid, "succeed", 30);
    ck_assert_int_eq(busi_count(svc, "/api/Out", gid, "action"), 1);
}

START_TEST(embedded_kafka_takes_submit_messages)
{
    busi *svc = busi_start();
    char store[512];
    test_store_uri(store, sizeof(store));
    dtmq_proc p;
    const char *args[] = {"--kafka", "embedded", NULL};
    e2e_start(&p, store, args);
    char bootstrap[128];
    embedded_bootstrap(&p, bootstrap, sizeof(bootstrap));
    embedded_saga_succeeds(&p, svc, bootstrap, "emb");
    e2e_stop(&p);
    busi_stop(svc);
}
END_TEST

/* The embedded cluster creates a topic itself when a client asks for it
 * first (a worker subscribing, a producer): a kafka:// branch to that topic
 * must still be delivered, not fail as "cannot create topic". */
START_TEST(embedded_kafka_branch_to_a_topic_that_exists_already)
{
    char store[512];
    test_store_uri(store, sizeof(store));
    dtmq_proc p;
    const char *args[] = {"--kafka", "embedded", NULL};
    e2e_start(&p, store, args);
    char bootstrap[128];
    embedded_bootstrap(&p, bootstrap, sizeof(bootstrap));
    ck_assert_int_eq(kt_produce(bootstrap, "fresh.topic.b", "first", "before", 6, NULL), 0);
    char gid[64], body[512];
    e2e_gid(gid, sizeof(gid), "embt");
    snprintf(body, sizeof(body),
             "{\"gid\":\"%s\",\"trans_type\":\"msg\",\"steps\":[{\"action\":\"kafka://fresh.topic.b\"}],"
             "\"payloads\":[\"order-7\"],\"wait_result\":true}",
             gid);
    e2e_post_expect(&p, "submit", body, 200);
    e2e_wait_status(&p, gid, "succeed", 30);
    kt_msg *m;
    size_t n = kt_read(bootstrap, "fresh.topic.b", 2, 15000, &m);
    ck_assert_uint_eq(n, 2);
    int delivered = 0;
    for (size_t i = 0; i < n; i++)
        delivered += strcmp(m[i].value, "order-7") == 0 && strcmp(m[i].key, gid) == 0;
    ck_assert_int_eq(delivered, 1);
    kt_free(m, n);
    e2e_stop(&p);
}
END_TEST

/* KafkaEmbeddedPort: the embedded cluster keeps its bootstrap across a
 * kill -9 and restart (clients keep their configuration), and a port that
 * is taken stops the start with a message naming it. */
START_TEST(embedded_kafka_port_is_stable_across_restarts)
{
    busi *svc = busi_start();
    char store[512];
    test_store_uri(store, sizeof(store));
    int port = test_free_port();
    char port_s[16], want[64], bootstrap[128];
    snprintf(port_s, sizeof(port_s), "%d", port);
    snprintf(want, sizeof(want), "127.0.0.1:%d", port);
    const char *args[] = {"--kafka", "embedded", "--kafka-embedded-port", port_s, NULL};
    dtmq_proc p;
    e2e_start(&p, store, args);
    embedded_bootstrap(&p, bootstrap, sizeof(bootstrap));
    ck_assert_str_eq(bootstrap, want);
    embedded_saga_succeeds(&p, svc, want, "embp");

    dtmq_proc taken;
    ck_assert_int_eq(dtmq_spawn(&taken, args, NULL), 0); /* its own directory and store */
    ck_assert_int_ne(dtmq_wait(&taken, 30), 0);
    char *log = dtmq_log(&taken);
    char why[128];
    snprintf(why, sizeof(why), "cannot listen on 127.0.0.1:%d: Address already in use", port);
    ck_assert_msg(strstr(log, why) != NULL, "no '%s' in: %s", why, log);
    free(log);

    ck_assert_int_eq(dtmq_stop(&p, SIGKILL, 10), 128 + SIGKILL);
    e2e_start(&p, store, args);
    embedded_bootstrap(&p, bootstrap, sizeof(bootstrap));
    ck_assert_str_eq(bootstrap, want);
    embedded_saga_succeeds(&p, svc, want, "embp");
    e2e_stop(&p);
    busi_stop(svc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("kafka");
    test_group g = {.suite = s, .timeout_s = 150};
    test_add(&g, kafka_submit_runs_the_saga_and_replies);
    test_add(&g, a_wait_result_command_without_a_pass_still_gets_finished);
    test_add(&g, bad_messages_go_to_the_dlq_and_do_not_stall);
    test_add(&g, kafka_branches_are_decided_by_worker_replies);
    test_add(&g, msg_kafka_branch_succeeds_on_publish_and_events_are_published);
    test_add(&g, replies_for_unknown_gids_are_counted_not_applied);
    test_add(&g, kill_9_while_consuming_loses_nothing);
    test_add(&g, embedded_kafka_takes_submit_messages);
    test_add(&g, worker_failure_message_is_the_rollback_reason);
    test_add(&g, refused_submits_are_answered_on_reply_to);
    test_add(&g, embedded_kafka_branch_to_a_topic_that_exists_already);
    test_add(&g, embedded_kafka_port_is_stable_across_restarts);
    return run_suite(s);
}
