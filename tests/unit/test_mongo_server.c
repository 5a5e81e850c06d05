/*
 * test_mongo_server.c — connectors/daemon/store/store_mongo.c's rule for which
 * MongoDB-protocol servers dtmq refuses at open (mongo_server_refusal): FerretDB
 * v1, whose guarded updates are not atomic; MongoDB and FerretDB v2 are fine.
 * The replies are buildInfo documents as those servers send them.
 */
#include <check.h>
#include <string.h>

#include "daemon/store/store_mongo_internal.h"
#include "testlib.h"

/* The refusal for a buildInfo reply {version: "...", ferretdbVersion?: v}. */
static const char *refusal_for(const char *ferretdb_version)
{
    bson_t reply = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&reply, "version", "7.0.77");
    if (ferretdb_version != NULL)
        BSON_APPEND_UTF8(&reply, "ferretdbVersion", ferretdb_version);
    const char *r = mongo_server_refusal(&reply);
    bson_destroy(&reply);
    return r;
}

START_TEST(mongodb_is_accepted)
{
    ck_assert_ptr_null(refusal_for(NULL));
}
END_TEST

START_TEST(ferretdb_v1_is_refused_with_the_reason)
{
    const char *versions[] = {"v1.24.0", "v1.0.0", "1.24.0", "v1"};
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        const char *r = refusal_for(versions[i]);
        ck_assert_msg(r != NULL, "%s accepted", versions[i]);
        ck_assert_msg(strstr(r, "FerretDB v1") != NULL && strstr(r, "atomic") != NULL,
                      "%s: the reason does not say why: %s", versions[i], r);
    }
}
END_TEST

START_TEST(ferretdb_v2_and_later_are_accepted)
{
    ck_assert_ptr_null(refusal_for("v2.0.0"));
    ck_assert_ptr_null(refusal_for("v10.1.0"));
    ck_assert_ptr_null(refusal_for("v12.0.0"));
}
END_TEST

START_TEST(a_ferretdb_version_that_is_not_a_string_is_accepted)
{
    bson_t reply = BSON_INITIALIZER;
    BSON_APPEND_INT32(&reply, "ferretdbVersion", 1);
    ck_assert_ptr_null(mongo_server_refusal(&reply));
    bson_destroy(&reply);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mongo_server");
    test_group g = {.suite = s};
    test_add(&g, mongodb_is_accepted);
    test_add(&g, ferretdb_v1_is_refused_with_the_reason);
    test_add(&g, ferretdb_v2_and_later_are_accepted);
    test_add(&g, a_ferretdb_version_that_is_not_a_string_is_accepted);
    return run_suite(s);
}
