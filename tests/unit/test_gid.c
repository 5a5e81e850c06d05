/*
 * test_gid.c — gids are 22 characters of [0-9A-Za-z] and do not repeat.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "gid.h"
#include "testlib.h"

static int cmp_gid(const void *a, const void *b)
{
    return strcmp(a, b);
}

START_TEST(gid_shape)
{
    char gid[GID_LEN + 1];
    for (int i = 0; i < 1000; i++) {
        ck_assert_int_eq(gid_new(gid), 0);
        ck_assert_uint_eq(strlen(gid), 22);
        ck_assert_uint_eq(strspn(gid, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"), 22);
    }
}
END_TEST

START_TEST(gids_do_not_repeat_and_use_every_position)
{
    enum { N = 20000 };
    char(*gids)[GID_LEN + 1] = malloc(sizeof(*gids) * N);
    int first_chars[62] = {0};
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(gid_new(gids[i]), 0);
        const char *alpha = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        first_chars[strchr(alpha, gids[i][GID_LEN - 1]) - alpha]++;
    }
    qsort(gids, N, sizeof(*gids), cmp_gid);
    for (int i = 1; i < N; i++)
        ck_assert_str_ne(gids[i - 1], gids[i]);
    /* the last digit is uniform over 62 symbols: each appears about N/62 = 322 times */
    for (int c = 0; c < 62; c++)
        ck_assert_msg(first_chars[c] > 200 && first_chars[c] < 450, "symbol %d seen %d times", c,
                      first_chars[c]);
    free(gids);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gid");
    test_group g = {.suite = s};
    test_add(&g, gid_shape);
    test_add(&g, gids_do_not_repeat_and_use_every_position);
    return run_suite(s);
}
