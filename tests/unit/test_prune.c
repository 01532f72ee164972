/*
 * test_prune.c - ls_prune's rules with a fixed reference time: which names
 * count as backups, the per-name ranking, keep / keep-within and their union,
 * the newest-survives rule, dry runs, the `each` callback, and refusals.
 * Each test works in its own temporary directory.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "litesafe.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* 2024-01-10T00:00:00Z */
#define NOW 1704844800LL
#define DAY 86400LL

/* What the `each` callback saw. */
typedef struct seen {
    int n;             /* calls */
    int deleted;       /* calls with deleted set */
    char last[512];    /* last path reported */
    int64_t last_t;    /* its time */
} seen;

static void on_each(void *ud, const char *path, int64_t t, int deleted)
{
    seen *s = ud;
    s->n++;
    s->deleted += deleted != 0;
    snprintf(s->last, sizeof(s->last), "%s", path);
    s->last_t = t;
}

static int setup(void **state)
{
    char *d = strdup("/tmp/ls-test-prune-XXXXXX");
    if (!d || !mkdtemp(d))
        return -1;
    *state = d;
    return 0;
}

static int teardown(void **state)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", (char *)*state);
    int rc = system(cmd);
    free(*state);
    return rc == 0 ? 0 : -1;
}

static void touch(const char *dir, const char *name, size_t size)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    close(fd);
}

static int exists(const char *dir, const char *name)
{
    char p[600];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return lstat(p, &st) == 0;
}

static int run(const char *dir, int64_t keep, int64_t within, int dry, ls_prune_result *res,
               seen *s)
{
    ls_ctx *ctx = NULL;
    assert_int_equal(ls_ctx_new(&ctx), 0);
    ls_prune_opts o = {.keep = keep, .keep_within_s = within, .dry_run = dry, .now = NOW,
                       .each = s ? on_each : NULL, .each_ud = s};
    int rc = ls_prune(ctx, dir, &o, res);
    ls_prune_result_free(res); /* the tests look at the counts only */
    ls_ctx_free(ctx);
    return rc;
}

static void test_only_exact_names_count(void **state)
{
    const char *d = *state;
    const char *not_backups[] = {
        "a-20240101T000000Z.db.tmp", "a-20240101T000000Z.db-wal", "a-20241301T000000Z.db",
        "a-20230229T000000Z.db",     "a-20240431T000000Z.db",     "a-20240101T240000Z.db",
        "a-20240101T006000Z.db",     "a-20240101T000060Z.db",     "a-2024010xT000000Z.db",
        "-20240101T000000Z.db",      "a-20240101 000000Z.db",     "a-20240101T000000Z.DB",
        "a_20240101T000000Z.db",     "a-19691231T235959Z.db",     "20240101T000000Z.db",
        NULL};
    for (int i = 0; not_backups[i]; i++)
        touch(d, not_backups[i], 1);
    touch(d, "a-20240229T000000Z.db", 1); /* a leap day is a real date */
    ls_prune_result res;
    seen s = {0};
    assert_int_equal(run(d, 1, -1, 0, &res, &s), 0);
    assert_int_equal(res.examined, 1);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.last_t, 1709164800LL); /* 2024-02-29T00:00:00Z */
    for (int i = 0; not_backups[i]; i++)
        if (!exists(d, not_backups[i]))
            fail_msg("%s was touched", not_backups[i]);
}

static void test_rank_per_name_and_keep(void **state)
{
    const char *d = *state;
    /* Names that share prefixes must still be separate groups. */
    touch(d, "a-20240101T000000Z.db", 10);
    touch(d, "a-20240102T000000Z.db", 10);
    touch(d, "a-20240103T000000Z.db", 10);
    touch(d, "a-b-20240101T000000Z.db", 5);
    touch(d, "a-b-20240102T000000Z.db", 5);
    touch(d, "ab-20231231T235959Z.db", 1);
    ls_prune_result res;
    seen s = {0};
    assert_int_equal(run(d, 1, -1, 0, &res, &s), 0);
    assert_int_equal(res.examined, 6);
    assert_int_equal(res.kept, 3);
    assert_int_equal(res.deleted, 3);
    assert_int_equal(res.bytes_freed, 25);
    assert_int_equal(s.n, 6);
    assert_int_equal(s.deleted, 3);
    assert_true(exists(d, "a-20240103T000000Z.db"));
    assert_true(exists(d, "a-b-20240102T000000Z.db"));
    assert_true(exists(d, "ab-20231231T235959Z.db"));
    assert_false(exists(d, "a-20240101T000000Z.db"));
    assert_false(exists(d, "a-20240102T000000Z.db"));
    assert_false(exists(d, "a-b-20240101T000000Z.db"));
}

static void test_keep_within_relative_to_now(void **state)
{
    const char *d = *state;
    touch(d, "x-20240109T000001Z.db", 1); /* younger than 1 day at NOW */
    touch(d, "x-20240109T000000Z.db", 1); /* exactly 1 day: not younger */
    touch(d, "x-20240101T000000Z.db", 1);
    ls_prune_result res;
    assert_int_equal(run(d, -1, DAY, 0, &res, NULL), 0);
    assert_int_equal(res.deleted, 2);
    assert_true(exists(d, "x-20240109T000001Z.db"));
    assert_false(exists(d, "x-20240109T000000Z.db"));
}

static void test_union_and_newest_survives(void **state)
{
    const char *d = *state;
    touch(d, "y-20240109T000000Z.db", 1);
    touch(d, "y-20240108T000000Z.db", 1);
    touch(d, "y-20240101T000000Z.db", 1);
    touch(d, "y-20231201T000000Z.db", 1);
    ls_prune_result res;
    /* keep 3 keeps three, within 3 days keeps two: the union is three. */
    assert_int_equal(run(d, 3, 3 * DAY, 1, &res, NULL), 0);
    assert_int_equal(res.kept, 3);
    /* keep 0 and a zero window keep nothing, yet the newest survives. */
    assert_int_equal(run(d, 0, 0, 0, &res, NULL), 0);
    assert_int_equal(res.kept, 1);
    assert_true(exists(d, "y-20240109T000000Z.db"));
    assert_false(exists(d, "y-20240108T000000Z.db"));
}

static void test_future_is_newest(void **state)
{
    const char *d = *state;
    touch(d, "z-20990101T000000Z.db", 1);
    touch(d, "z-20240109T235959Z.db", 1);
    ls_prune_result res;
    assert_int_equal(run(d, 1, -1, 0, &res, NULL), 0);
    assert_true(exists(d, "z-20990101T000000Z.db"));
    assert_false(exists(d, "z-20240109T235959Z.db"));
}

static void test_dry_run(void **state)
{
    const char *d = *state;
    touch(d, "w-20240101T000000Z.db", 3);
    touch(d, "w-20240102T000000Z.db", 3);
    ls_prune_result res;
    seen s = {0};
    assert_int_equal(run(d, 1, -1, 1, &res, &s), 0);
    assert_int_equal(res.deleted, 1);
    assert_int_equal(res.bytes_freed, 3);
    assert_int_equal(s.deleted, 1);
    assert_true(exists(d, "w-20240101T000000Z.db"));
}

static void test_refusals(void **state)
{
    const char *d = *state;
    ls_ctx *ctx = NULL;
    ls_prune_result res;
    assert_int_equal(ls_ctx_new(&ctx), 0);
    ls_prune_opts none = {.keep = -1, .keep_within_s = -1};
    assert_int_equal(ls_prune(ctx, d, &none, &res), LS_EUSAGE);
    ls_prune_result_free(&res);
    assert_int_equal(ls_prune(ctx, d, NULL, &res), LS_EUSAGE);
    ls_prune_result_free(&res);
    ls_prune_opts one = {.keep = 1, .keep_within_s = -1};
    char missing[600];
    snprintf(missing, sizeof(missing), "%s/nope", d);
    assert_int_equal(ls_prune(ctx, missing, &one, &res), LS_ENOENT);
    assert_non_null(strstr(ls_errmsg(ctx), "nope"));
    ls_prune_result_free(&res);
    ls_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_only_exact_names_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rank_per_name_and_keep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_within_relative_to_now, setup, teardown),
        cmocka_unit_test_setup_teardown(test_union_and_newest_survives, setup, teardown),
        cmocka_unit_test_setup_teardown(test_future_is_newest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dry_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
