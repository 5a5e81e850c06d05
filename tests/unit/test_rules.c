/*
 * test_rules.c — connectors/libdtmq/common/rules.c: the URL kinds (with the
 * empty-remainder rule and the case flag) and Kafka's topic name rule.
 */
#include <check.h>
#include <string.h>

#include "libdtmq/common/rules.h"
#include "testlib.h"

START_TEST(url_kinds_by_scheme)
{
    ck_assert_int_eq(dtmq_url_kind_of("http://busi:8081/api/a", 0), DTMQ_URL_HTTP);
    ck_assert_int_eq(dtmq_url_kind_of("https://busi/api/a", 0), DTMQ_URL_HTTP);
    ck_assert_int_eq(dtmq_url_kind_of("kafka://orders", 0), DTMQ_URL_KAFKA);
    ck_assert_int_eq(dtmq_url_kind_of("topic://ship", 0), DTMQ_URL_TOPIC);
    ck_assert_int_eq(dtmq_url_kind_of("ftp://x", 0), DTMQ_URL_OTHER);
    ck_assert_int_eq(dtmq_url_kind_of("localhost:36789", 0), DTMQ_URL_OTHER);
    ck_assert_int_eq(dtmq_url_kind_of("http:/x", 0), DTMQ_URL_OTHER);
    ck_assert_int_eq(dtmq_url_kind_of("httpx://x", 0), DTMQ_URL_OTHER);
}
END_TEST

START_TEST(url_empty_is_none)
{
    ck_assert_int_eq(dtmq_url_kind_of("", 0), DTMQ_URL_NONE);
    ck_assert_int_eq(dtmq_url_kind_of(NULL, 0), DTMQ_URL_NONE);
    ck_assert_int_eq(dtmq_url_scheme("", 0), DTMQ_URL_NONE);
    ck_assert_ptr_null(dtmq_url_rest("", 0));
    ck_assert_ptr_null(dtmq_url_rest(NULL, 0));
}
END_TEST

START_TEST(url_bare_scheme_names_nothing)
{
    static const struct { const char *url; dtmq_url_kind scheme; } cases[] = {
        {"http://", DTMQ_URL_HTTP}, {"https://", DTMQ_URL_HTTP},
        {"kafka://", DTMQ_URL_KAFKA}, {"topic://", DTMQ_URL_TOPIC},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_int_eq(dtmq_url_kind_of(cases[i].url, 0), DTMQ_URL_OTHER);
        ck_assert_int_eq(dtmq_url_scheme(cases[i].url, 0), cases[i].scheme);
        ck_assert_str_eq(dtmq_url_rest(cases[i].url, 0), "");
    }
}
END_TEST

START_TEST(url_case_sensitive_unless_asked)
{
    ck_assert_int_eq(dtmq_url_kind_of("HTTP://x", 0), DTMQ_URL_OTHER);
    ck_assert_int_eq(dtmq_url_kind_of("Https://x", 0), DTMQ_URL_OTHER);
    ck_assert_int_eq(dtmq_url_kind_of("HTTP://x", DTMQ_URL_ANY_CASE), DTMQ_URL_HTTP);
    ck_assert_int_eq(dtmq_url_kind_of("Https://x", DTMQ_URL_ANY_CASE), DTMQ_URL_HTTP);
    ck_assert_int_eq(dtmq_url_kind_of("KAFKA://t", DTMQ_URL_ANY_CASE), DTMQ_URL_KAFKA);
    ck_assert_int_eq(dtmq_url_kind_of("HTTP://", DTMQ_URL_ANY_CASE), DTMQ_URL_OTHER);
    ck_assert_str_eq(dtmq_url_rest("HTTP://host", DTMQ_URL_ANY_CASE), "host");
    ck_assert_ptr_null(dtmq_url_rest("HTTP://host", 0));
}
END_TEST

START_TEST(url_rest_follows_the_scheme)
{
    ck_assert_str_eq(dtmq_url_rest("http://busi/a", 0), "busi/a");
    ck_assert_str_eq(dtmq_url_rest("https://busi/a", 0), "busi/a");
    ck_assert_str_eq(dtmq_url_rest("kafka://orders", 0), "orders");
    ck_assert_str_eq(dtmq_url_rest("topic://ship", 0), "ship");
    ck_assert_str_eq(dtmq_url_rest("http:///a", 0), "/a");
    ck_assert_ptr_null(dtmq_url_rest("ftp://x", 0));
}
END_TEST

START_TEST(url_kind_names)
{
    ck_assert_str_eq(dtmq_url_kind_name(DTMQ_URL_NONE), "none");
    ck_assert_str_eq(dtmq_url_kind_name(DTMQ_URL_HTTP), "http");
    ck_assert_str_eq(dtmq_url_kind_name(DTMQ_URL_KAFKA), "kafka");
    ck_assert_str_eq(dtmq_url_kind_name(DTMQ_URL_TOPIC), "topic");
    ck_assert_str_eq(dtmq_url_kind_name(DTMQ_URL_OTHER), "other");
}
END_TEST

START_TEST(topic_names_kafka_accepts)
{
    char longest[DTMQ_TOPIC_NAME_MAX + 1];
    memset(longest, 'a', DTMQ_TOPIC_NAME_MAX);
    longest[DTMQ_TOPIC_NAME_MAX] = '\0';
    const char *good[] = {"a", "dtm.submit", "orders_v2", "A-Z.0-9_", "...", ".a", "a..", longest};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ck_assert_msg(dtmq_topic_name_ok(good[i]), "'%s' refused", good[i]);
}
END_TEST

START_TEST(topic_names_kafka_refuses)
{
    char too_long[DTMQ_TOPIC_NAME_MAX + 2];
    memset(too_long, 'a', DTMQ_TOPIC_NAME_MAX + 1);
    too_long[DTMQ_TOPIC_NAME_MAX + 1] = '\0';
    const char *bad[] = {"", ".", "..", "a b", "a/b", "a:b", "é", "a\n", "kafka://x", too_long};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!dtmq_topic_name_ok(bad[i]), "'%s' accepted", bad[i]);
    ck_assert(!dtmq_topic_name_ok(NULL));
}
END_TEST

START_TEST(topic_chars_for_prefixes)
{
    ck_assert(dtmq_topic_chars_ok(""));
    ck_assert(dtmq_topic_chars_ok("dtm."));
    ck_assert(dtmq_topic_chars_ok("."));
    ck_assert(!dtmq_topic_chars_ok("dtm/"));
    ck_assert(!dtmq_topic_chars_ok("a b"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rules");
    test_group g = {.suite = s};
    test_add(&g, url_kinds_by_scheme);
    test_add(&g, url_empty_is_none);
    test_add(&g, url_bare_scheme_names_nothing);
    test_add(&g, url_case_sensitive_unless_asked);
    test_add(&g, url_rest_follows_the_scheme);
    test_add(&g, url_kind_names);
    test_add(&g, topic_names_kafka_accepts);
    test_add(&g, topic_names_kafka_refuses);
    test_add(&g, topic_chars_for_prefixes);
    return run_suite(s);
}
