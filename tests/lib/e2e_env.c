/*
 * e2e_env.c — see e2e_env.h.
 */
#include "e2e_env.h"

#include <stdio.h>
#include <string.h>

void e2e_env_start(e2e_env *env, bool with_busi, const char *gid_prefix,
                   const char *const *extra_args)
{
    memset(env, 0, sizeof(*env));
    if (with_busi) {
        env->svc = busi_start();
        ck_assert_ptr_nonnull(env->svc);
    }
    test_store_uri(env->store, sizeof(env->store));
    e2e_start(&env->dtmq, env->store, extra_args);
    if (gid_prefix != NULL)
        e2e_gid(env->gid, sizeof(env->gid), gid_prefix);
}

void e2e_env_stop(e2e_env *env)
{
    e2e_stop(&env->dtmq);
    if (env->svc != NULL)
        busi_stop(env->svc);
}

void e2e_kafka_env_start(e2e_kafka_env *env, const char *id_prefix,
                         const char *const *extra_args)
{
    memset(env, 0, sizeof(*env));
    char id[32];
    e2e_gid(id, sizeof(id), id_prefix);
    snprintf(env->prefix, sizeof(env->prefix), "%s.", id);
    snprintf(env->group, sizeof(env->group), "g-%s", id);
    snprintf(env->bootstrap, sizeof(env->bootstrap), "%s", test_kafka_bootstrap());
    const char *args[24] = {"--kafka", env->bootstrap, "--kafka-topic-prefix", env->prefix,
                            "--kafka-group", env->group};
    size_t n = 6;
    for (size_t i = 0; extra_args && extra_args[i] && n < 23; i++)
        args[n++] = extra_args[i];
    args[n] = NULL;
    e2e_env_start(&env->e, true, NULL, args);
}

void e2e_kafka_env_stop(e2e_kafka_env *env)
{
    e2e_env_stop(&env->e);
}

void e2e_kafka_topic(const e2e_kafka_env *env, const char *suffix, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s", env->prefix, suffix);
}
