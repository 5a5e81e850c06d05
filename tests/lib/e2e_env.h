/*
 * e2e_env.h — the environment most end-to-end tests start with and stop at
 * the end: the test business service (busi.h), dtmq on a fresh store of the
 * kind under test (testlib.h's test_store_uri and e2e_start) and a fresh gid.
 * Suites that need more keep it as the first member of their own struct.
 * e2e_kafka_env is the same with dtmq on the real Kafka (DTMQ_TEST_KAFKA),
 * with a topic prefix and consumer group of its own.
 */
#ifndef DTMQ_E2E_ENV_H
#define DTMQ_E2E_ENV_H

#include <stdbool.h>

#include "busi.h"
#include "testlib.h"

typedef struct e2e_env {
    busi *svc; /* NULL when started without it */
    dtmq_proc dtmq;
    char store[512];
    char gid[64]; /* "<gid_prefix>-<random>"; "" without a prefix */
} e2e_env;

/* Starts busi (with_busi), then dtmq with e2e_start on a fresh store with
 * extra_args (NULL-terminated, may be NULL), and makes env->gid when
 * gid_prefix is not NULL. Asserts every step. */
void e2e_env_start(e2e_env *env, bool with_busi, const char *gid_prefix,
                   const char *const *extra_args);
/* Stops dtmq (asserting a clean exit, e2e_stop), then busi. */
void e2e_env_stop(e2e_env *env);

typedef struct e2e_kafka_env {
    e2e_env e;          /* gid not set */
    char prefix[64];    /* this test's topic prefix, "<id_prefix>-<random>." */
    char group[64];     /* "g-<id_prefix>-<random>" */
    char bootstrap[256];
} e2e_kafka_env;

/* Like e2e_env_start (with busi, no gid) with dtmq on the real Kafka:
 * --kafka, --kafka-topic-prefix, --kafka-group, then extra_args (at most 17;
 * may be NULL). */
void e2e_kafka_env_start(e2e_kafka_env *env, const char *id_prefix,
                         const char *const *extra_args);
void e2e_kafka_env_stop(e2e_kafka_env *env);
/* The topic "<prefix><suffix>" in buf. */
void e2e_kafka_topic(const e2e_kafka_env *env, const char *suffix, char *buf, size_t len);

#endif
