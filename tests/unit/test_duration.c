/*
 * test_duration.c - duration parsing: Go syntax, days and weeks, bare seconds,
 * and the malformed inputs that must be refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "litesafe.h"

static int64_t ms(const char *s)
{
    int64_t v = -1;
    assert_int_equal(ls_duration_parse(s, &v), 0);
    return v;
}

static void test_valid(void **state)
{
    (void)state;
    assert_int_equal(ms("250ms"), 250);
    assert_int_equal(ms("1s"), 1000);
    assert_int_equal(ms("90"), 90000);
    assert_int_equal(ms("1.5"), 1500);
    assert_int_equal(ms("1h30m"), 5400000);
    assert_int_equal(ms("1.5h"), 5400000);
    assert_int_equal(ms("7d"), 604800000);
    assert_int_equal(ms("2w"), 1209600000);
    assert_int_equal(ms("1m1s1ms"), 61001);
    assert_int_equal(ms("0s"), 0);
}

static void test_invalid(void **state)
{
    (void)state;
    const char *bad[] = {"", "h", "1x", "-1s", "1h-", "1 h", "s1", "1hh", "ms", "1e999", NULL};
    for (int i = 0; bad[i]; i++) {
        int64_t v = 0;
        if (ls_duration_parse(bad[i], &v) != LS_EUSAGE)
            fail_msg("accepted '%s'", bad[i]);
    }
    int64_t v;
    assert_int_equal(ls_duration_parse(NULL, &v), LS_EUSAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
