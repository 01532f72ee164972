/*
 * test_library.c - the library's version (macros and ls_version() agree) and
 * its global initialisation: ls_library_init/ls_library_shutdown are
 * reference-counted, an extra shutdown is harmless, init works again after
 * the last shutdown, and the lazy path (a backend opened without any
 * ls_library_init) still works.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http.h"
#include "library.h"
#include "litesafe.h"

#include <curl/curl.h>
#include <libssh2.h>
#include <stdio.h>
#include <string.h>

/* The version string is MAJOR.MINOR.PATCH, and the run-time one is the same. */
static void test_version(void **state)
{
    (void)state;
    char buf[64];
    snprintf(buf, sizeof(buf), "%d.%d.%d", LS_VERSION_MAJOR, LS_VERSION_MINOR, LS_VERSION_PATCH);
    assert_string_equal(LS_VERSION, buf);
    assert_non_null(ls_version());
    assert_string_equal(ls_version(), LS_VERSION);
}

/* libcurl and libssh2 are usable: an easy handle and an SSH session can be made. */
static void assert_usable(void)
{
    CURL *h = curl_easy_init();
    assert_non_null(h);
    curl_easy_cleanup(h);
    LIBSSH2_SESSION *s = libssh2_session_init();
    assert_non_null(s);
    libssh2_session_free(s);
}

/* init twice, shutdown twice (and once more), then init again. */
static void test_refcount(void **state)
{
    (void)state;
    assert_int_equal(ls_library_refs(), 0);
    assert_int_equal(ls_library_init(), 0);
    assert_int_equal(ls_library_refs(), 1);
    assert_int_equal(ls_library_init(), 0);
    assert_int_equal(ls_library_refs(), 2);
    assert_int_equal(ls_library_initialised(), 1);
    assert_usable();

    ls_library_shutdown();
    assert_int_equal(ls_library_refs(), 1);
    assert_int_equal(ls_library_initialised(), 1);
    ls_library_shutdown();
    assert_int_equal(ls_library_refs(), 0);
    assert_int_equal(ls_library_initialised(), 0);
    ls_library_shutdown(); /* one too many: no effect */
    assert_int_equal(ls_library_refs(), 0);

    assert_int_equal(ls_library_init(), 0);
    assert_int_equal(ls_library_refs(), 1);
    assert_int_equal(ls_library_initialised(), 1);
    assert_usable();
    ls_library_shutdown();
    assert_int_equal(ls_library_initialised(), 0);
}

/*
 * A caller that never calls ls_library_init: opening an HTTP pool initialises
 * the libraries itself, and a later init/shutdown pair releases them.
 */
static void test_lazy(void **state)
{
    (void)state;
    ls_ctx *ctx = NULL;
    assert_int_equal(ls_ctx_new(&ctx), 0);
    assert_int_equal(ls_library_initialised(), 0);
    ls_http_opts opts;
    memset(&opts, 0, sizeof(opts));
    ls_http_pool *p = NULL;
    assert_int_equal(ls_http_pool_new(ctx, &opts, &p), 0);
    assert_non_null(p);
    assert_int_equal(ls_library_initialised(), 1);
    assert_int_equal(ls_library_refs(), 0);
    assert_usable();
    ls_http_pool_free(p);

    assert_int_equal(ls_library_init(), 0);
    assert_int_equal(ls_library_refs(), 1);
    ls_library_shutdown();
    assert_int_equal(ls_library_initialised(), 0);
    ls_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_lazy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
