/*
 * test_base64.c — connectors/libdtmq/common/base64.c: standard base64 both
 * ways; the decoder refuses anything but the alphabet followed by the right
 * padding or none (bad characters, garbage after the padding, bad padding).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "libdtmq/common/base64.h"
#include "testlib.h"

/* Decodes text and checks it gives want (want_len bytes). */
static void expect_decoded(const char *text, const char *want, size_t want_len)
{
    size_t n = 999;
    unsigned char *out = dtmq_base64_decode(text, &n);
    ck_assert_msg(out != NULL, "'%s' refused", text);
    ck_assert_uint_eq(n, want_len);
    ck_assert_int_eq(memcmp(out, want, want_len), 0);
    ck_assert_int_eq(out[n], '\0');
    free(out);
}

static void expect_refused(const char *text)
{
    size_t n = 999;
    unsigned char *out = dtmq_base64_decode(text, &n);
    ck_assert_msg(out == NULL, "'%s' decoded to %zu bytes", text, n);
}

START_TEST(base64_decodes_padded)
{
    expect_decoded("", "", 0);
    expect_decoded("QQ==", "A", 1);
    expect_decoded("QUI=", "AB", 2);
    expect_decoded("QUJD", "ABC", 3);
    expect_decoded("eyJvayI6MX0=", "{\"ok\":1}", 8);
    expect_decoded("dXNlcjpzM2NyZXQ=", "user:s3cret", 11);
    expect_decoded("+/+/", "\xfb\xff\xbf", 3);
}
END_TEST

START_TEST(base64_decodes_unpadded)
{
    expect_decoded("QQ", "A", 1);
    expect_decoded("QUI", "AB", 2);
    expect_decoded("eyJvayI6MX0", "{\"ok\":1}", 8);
}
END_TEST

START_TEST(base64_ignores_unused_low_bits)
{
    /* as Go's base64.StdEncoding (not Strict) does: "QR==" is "A" too */
    expect_decoded("QR==", "A", 1);
    expect_decoded("QUJ=", "AB", 2);
}
END_TEST

START_TEST(base64_refuses_garbage_after_padding)
{
    expect_refused("QQ==!!");
    expect_refused("QQ==QQ==");
    expect_refused("QQ==A");
    expect_refused("QUI=QUI=");
    expect_refused("QQ== ");
}
END_TEST

START_TEST(base64_refuses_bad_characters)
{
    expect_refused("QQ!=");
    expect_refused("Q Q=");
    expect_refused(" QQ==");
    expect_refused("QQ==\n");
    expect_refused("QU\nJD");
    expect_refused("QUJD-_");  /* the URL-safe alphabet is not the standard one */
    expect_refused("\xc3\xa9");
}
END_TEST

START_TEST(base64_refuses_bad_padding)
{
    expect_refused("Q");      /* 6 bits alone are no byte */
    expect_refused("Q===");
    expect_refused("QUJDQ");
    expect_refused("QQ=");    /* half the padding */
    expect_refused("QQ===");
    expect_refused("QUI==");
    expect_refused("QUJD=");  /* padding after a full group */
    expect_refused("QUJD====");
    expect_refused("=");
    expect_refused("====");
    expect_refused("QQ=A");   /* data after padding */
}
END_TEST

START_TEST(base64_round_trips)
{
    unsigned char data[300];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof(data); len++) {
        char *text = dtmq_base64_encode(data, len);
        ck_assert_ptr_nonnull(text);
        ck_assert_uint_eq(strlen(text), 4 * ((len + 2) / 3));
        size_t n = 999;
        unsigned char *back = dtmq_base64_decode(text, &n);
        ck_assert_msg(back != NULL, "len %zu: '%s' refused", len, text);
        ck_assert_uint_eq(n, len);
        ck_assert_int_eq(memcmp(back, data, len), 0);
        free(back);
        free(text);
    }
}
END_TEST

START_TEST(base64_encodes_as_go_std_encoding)
{
    /* what Go's base64.StdEncoding.EncodeToString gives (DTM's bin_data) */
    char *a = dtmq_base64_encode((const unsigned char *)"A", 1);
    char *ab = dtmq_base64_encode((const unsigned char *)"AB", 2);
    char *bin = dtmq_base64_encode((const unsigned char *)"\x00\xff\xfe", 3);
    ck_assert_str_eq(a, "QQ==");
    ck_assert_str_eq(ab, "QUI=");
    ck_assert_str_eq(bin, "AP/+");
    free(a);
    free(ab);
    free(bin);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("base64");
    test_group g = {.suite = s};
    test_add(&g, base64_decodes_padded);
    test_add(&g, base64_decodes_unpadded);
    test_add(&g, base64_ignores_unused_low_bits);
    test_add(&g, base64_refuses_garbage_after_padding);
    test_add(&g, base64_refuses_bad_characters);
    test_add(&g, base64_refuses_bad_padding);
    test_add(&g, base64_round_trips);
    test_add(&g, base64_encodes_as_go_std_encoding);
    return run_suite(s);
}
