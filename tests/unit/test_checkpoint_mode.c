/*
 * test_checkpoint_mode.c - checkpoint mode names: parsing in any case, the
 * names printed back, refusal of anything else, and ls_checkpoint's own
 * refusal of a mode value outside the enum.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "litesafe.h"

static ls_ckpt_mode parse(const char *s)
{
    ls_ckpt_mode m = (ls_ckpt_mode)-1;
    if (ls_ckpt_mode_parse(s, &m) != 0)
        fail_msg("refused '%s'", s);
    return m;
}

static void test_parse_any_case(void **state)
{
    (void)state;
    assert_int_equal(parse("passive"), LS_CKPT_PASSIVE);
    assert_int_equal(parse("PASSIVE"), LS_CKPT_PASSIVE);
    assert_int_equal(parse("full"), LS_CKPT_FULL);
    assert_int_equal(parse("Full"), LS_CKPT_FULL);
    assert_int_equal(parse("restart"), LS_CKPT_RESTART);
    assert_int_equal(parse("rEsTaRt"), LS_CKPT_RESTART);
    assert_int_equal(parse("truncate"), LS_CKPT_TRUNCATE);
    assert_int_equal(parse("TRUNCATE"), LS_CKPT_TRUNCATE);
}

static void test_parse_refuses(void **state)
{
    (void)state;
    const char *bad[] = {"", "pass", "passive ", " full", "truncated", "noop", "0", "3", NULL};
    for (int i = 0; bad[i]; i++) {
        ls_ckpt_mode m = LS_CKPT_FULL;
        if (ls_ckpt_mode_parse(bad[i], &m) != LS_EUSAGE)
            fail_msg("accepted '%s'", bad[i]);
        assert_int_equal(m, LS_CKPT_FULL); /* untouched on failure */
    }
    ls_ckpt_mode m;
    assert_int_equal(ls_ckpt_mode_parse(NULL, &m), LS_EUSAGE);
}

static void test_names_round_trip(void **state)
{
    (void)state;
    assert_string_equal(ls_ckpt_mode_name(LS_CKPT_PASSIVE), "PASSIVE");
    assert_string_equal(ls_ckpt_mode_name(LS_CKPT_FULL), "FULL");
    assert_string_equal(ls_ckpt_mode_name(LS_CKPT_RESTART), "RESTART");
    assert_string_equal(ls_ckpt_mode_name(LS_CKPT_TRUNCATE), "TRUNCATE");
    for (int i = LS_CKPT_PASSIVE; i <= LS_CKPT_TRUNCATE; i++)
        assert_int_equal(parse(ls_ckpt_mode_name((ls_ckpt_mode)i)), i);
    assert_string_equal(ls_ckpt_mode_name((ls_ckpt_mode)42), "unknown");
}

static void test_checkpoint_refuses_bad_mode(void **state)
{
    (void)state;
    ls_ctx *ctx = NULL;
    ls_checkpoint_result res;
    assert_int_equal(ls_ctx_new(&ctx), 0);
    /* Refused before the path is even looked at. */
    assert_int_equal(ls_checkpoint(ctx, "/nonexistent/x.db", (ls_ckpt_mode)7, 100, &res),
                     LS_EUSAGE);
    assert_int_equal(ls_errcode(ctx), LS_EUSAGE);
    assert_int_equal(res.wal_pages, -1);
    ls_checkpoint_result_free(&res);
    /* A valid mode on a missing file: ENOENT. */
    assert_int_equal(ls_checkpoint(ctx, "/nonexistent/x.db", LS_CKPT_PASSIVE, 100, &res),
                     LS_ENOENT);
    ls_checkpoint_result_free(&res);
    ls_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_any_case),
        cmocka_unit_test(test_parse_refuses),
        cmocka_unit_test(test_names_round_trip),
        cmocka_unit_test(test_checkpoint_refuses_bad_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
