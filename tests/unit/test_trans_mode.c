/*
 * test_trans_mode.c — connectors/daemon/model/trans.c: the transaction mode
 * enum and its names (DTM's trans_type strings, as stored and sent).
 */
#include <check.h>
#include <string.h>

#include "daemon/model/trans.h"
#include "testlib.h"

START_TEST(mode_names_round_trip)
{
    static const char *const names[] = {"saga", "tcc", "xa", "msg", "workflow"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        trans_mode m = trans_mode_of(names[i]);
        ck_assert_int_ne(m, TRANS_MODE_NONE);
        ck_assert_str_eq(trans_mode_name(m), names[i]);
    }
    for (int m = TRANS_MODE_SAGA; m <= TRANS_MODE_WORKFLOW; m++)
        ck_assert_int_eq(trans_mode_of(trans_mode_name((trans_mode)m)), m);
}
END_TEST

START_TEST(mode_values_are_distinct)
{
    ck_assert_int_eq(trans_mode_of("saga"), TRANS_MODE_SAGA);
    ck_assert_int_eq(trans_mode_of("tcc"), TRANS_MODE_TCC);
    ck_assert_int_eq(trans_mode_of("xa"), TRANS_MODE_XA);
    ck_assert_int_eq(trans_mode_of("msg"), TRANS_MODE_MSG);
    ck_assert_int_eq(trans_mode_of("workflow"), TRANS_MODE_WORKFLOW);
}
END_TEST

START_TEST(mode_unknown_is_none)
{
    const char *other[] = {"", "SAGA", "Saga", "saga ", " saga", "sagas", "x", "tc", "grpc"};
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++)
        ck_assert_msg(trans_mode_of(other[i]) == TRANS_MODE_NONE, "'%s' is a mode", other[i]);
    ck_assert_int_eq(trans_mode_of(NULL), TRANS_MODE_NONE);
    ck_assert_ptr_null(trans_mode_name(TRANS_MODE_NONE));
}
END_TEST

START_TEST(mode_of_a_global)
{
    trans_global *t = trans_new();
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(trans_global_mode(t), TRANS_MODE_NONE);
    ck_assert_int_eq(trans_set_str(&t->trans_type, "xa"), 0);
    ck_assert_int_eq(trans_global_mode(t), TRANS_MODE_XA);
    trans_free(t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("trans_mode");
    test_group g = {.suite = s};
    test_add(&g, mode_names_round_trip);
    test_add(&g, mode_values_are_distinct);
    test_add(&g, mode_unknown_is_none);
    test_add(&g, mode_of_a_global);
    return run_suite(s);
}
