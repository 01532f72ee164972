/*
 * test_random.c - random bytes and hex names (util/random.c): the shape of
 * the hex (length, lowercase digits, NUL), sizes beyond one internal chunk,
 * and that two draws differ.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "random.h"

#include <string.h>

/* 1 if s is exactly n lowercase hex digits. */
static int is_lower_hex(const char *s, size_t n)
{
    if (strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static void test_hex_shape(void **state)
{
    (void)state;
    char a[17], b[17], big[2 * 200 + 1], none[1] = {'x'};
    assert_int_equal(ls_random_hex(a, 8), 0);
    assert_int_equal(ls_random_hex(b, 8), 0);
    assert_true(is_lower_hex(a, 16));
    assert_true(is_lower_hex(b, 16));
    assert_string_not_equal(a, b); /* 2^-64 to fail by chance */
    assert_int_equal(ls_random_hex(big, 200), 0); /* more than one chunk of 64 bytes */
    assert_true(is_lower_hex(big, 400));
    assert_int_equal(ls_random_hex(none, 0), 0);
    assert_string_equal(none, "");
}

static void test_bytes(void **state)
{
    (void)state;
    uint8_t x[32] = {0}, zero[32] = {0};
    assert_int_equal(ls_random_bytes(x, sizeof(x)), 0);
    assert_memory_not_equal(x, zero, sizeof(x));
    assert_int_equal(ls_random_bytes(x, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex_shape),
        cmocka_unit_test(test_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
