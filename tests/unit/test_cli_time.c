/*
 * test_cli_time.c - the RFC 3339 times of the replica commands (cli/time.c):
 * `restore -timestamp` reads them, generations/snapshots/wal print them.
 * Offsets, fractions, and the malformed ones refused without reading past
 * the end of the argument (found by fuzz_cli_opts: "+09:0" made the offset
 * parser step over the terminating NUL).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli.h"

#include <stdlib.h>
#include <string.h>

/* The time 2026-11-21T09:00:00Z in unix milliseconds. */
#define T0 1795251600000LL

/* Parse a copy of s in a buffer of its exact size, so a read past its end is caught. */
static int parse(const char *s, int64_t *ms)
{
    size_t n = strlen(s) + 1;
    char *copy = malloc(n);
    assert_non_null(copy);
    memcpy(copy, s, n);
    int rc = cli_parse_rfc3339(copy, ms);
    free(copy);
    return rc;
}

static void test_rfc3339_accepted(void **state)
{
    (void)state;
    int64_t ms = 0;
    char buf[40];
    assert_int_equal(parse("2026-11-21T09:00:00Z", &ms), 0);
    assert_int_equal(ms, T0);
    assert_int_equal(parse("2026-11-21T10:30:00+01:30", &ms), 0);
    assert_int_equal(ms, T0);
    assert_int_equal(parse("2026-11-21T07:00:00-02:00", &ms), 0);
    assert_int_equal(ms, T0);
    assert_int_equal(parse("2026-11-21T09:00:00.25z", &ms), 0);
    assert_int_equal(ms, T0 + 250);
    assert_int_equal(parse("2026-11-21T09:00:00.123456789Z", &ms), 0);
    assert_int_equal(ms, T0 + 123);
    cli_rfc3339(T0, buf, sizeof(buf));
    assert_string_equal(buf, "2026-11-21T09:00:00Z");
}

static void test_rfc3339_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "2026-11-21T09:00:00",       "2026-11-21T09:00:00+09:0", "2026-11-21T09:00:00+9:00",
        "2026-11-21T09:00:00+09",    "2026-11-21T09:00:00+",     "2026-11-21T09:00:00+ 9: 0",
        "2026-11-21T09:00:00.Z",     "2026-11-21T09:00:00.5e3Z", "2026-11-21T09:00:00Zx",
        "2026-11-21T09:00:00+09:00x", "2026-11-21",              "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = 0;
        if (parse(bad[i], &ms) != LS_EUSAGE)
            fail_msg("'%s' was accepted", bad[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc3339_accepted),
        cmocka_unit_test(test_rfc3339_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
