/*
 * test_results.c - the one-shot result structs own their strings: each call
 * (ls_backup, ls_checkpoint, ls_info, ls_verify, ls_prune, ls_restore_file)
 * fills them with allocated absolute paths and messages on a real database,
 * and each ls_<name>_result_free releases them, NULLs them, and is safe on a
 * zeroed struct, after a failed call, a second time and with NULL. Under the
 * ASan build a string left unreleased, or released twice, fails the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "litesafe.h"

#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The fixture: a temp directory (its real path) holding live.db, in WAL mode, with rows. */
typedef struct fixture {
    char dir[PATH_MAX];   /* realpath of the temp directory */
    char db[PATH_MAX];    /* <dir>/live.db */
    ls_ctx *ctx;
} fixture;

static void path_in(const fixture *f, char *out, const char *name)
{
    snprintf(out, PATH_MAX, "%s/%s", f->dir, name);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    char tmpl[] = "/tmp/ls-test-results-XXXXXX";
    sqlite3 *db = NULL;
    if (!f || !mkdtemp(tmpl) || !realpath(tmpl, f->dir) || ls_ctx_new(&f->ctx) != 0)
        return -1;
    path_in(f, f->db, "live.db");
    if (sqlite3_open(f->db, &db) != SQLITE_OK ||
        sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL; CREATE TABLE t(x);"
                     "INSERT INTO t VALUES (randomblob(3000)), (randomblob(3000)), (1);",
                     NULL, NULL, NULL) != SQLITE_OK)
        return -1;
    sqlite3_close(db);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    ls_ctx_free(f->ctx);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* A backup of live.db at <dir>/<name>, for the calls that read one. */
static void make_backup(fixture *f, const char *name, char *out)
{
    ls_backup_result br;
    path_in(f, out, name);
    assert_int_equal(ls_backup(f->ctx, f->db, out, NULL, &br), 0);
    ls_backup_result_free(&br);
}

static void test_free_on_zeroed_and_null(void **state)
{
    (void)state;
    ls_backup_result b;
    ls_checkpoint_result c;
    ls_info_result i;
    ls_verify_result v;
    ls_prune_result p;
    ls_restore_file_result r;
    memset(&b, 0, sizeof(b));
    memset(&c, 0, sizeof(c));
    memset(&i, 0, sizeof(i));
    memset(&v, 0, sizeof(v));
    memset(&p, 0, sizeof(p));
    memset(&r, 0, sizeof(r));
    ls_backup_result_free(&b);
    ls_checkpoint_result_free(&c);
    ls_info_result_free(&i);
    ls_verify_result_free(&v);
    ls_prune_result_free(&p);
    ls_restore_file_result_free(&r);
    ls_backup_result_free(NULL);
    ls_checkpoint_result_free(NULL);
    ls_info_result_free(NULL);
    ls_verify_result_free(NULL);
    ls_prune_result_free(NULL);
    ls_restore_file_result_free(NULL);
}

static void test_backup(void **state)
{
    fixture *f = *state;
    char dest[PATH_MAX];
    ls_backup_result res;
    path_in(f, dest, "b.db");
    assert_int_equal(ls_backup(f->ctx, f->db, dest, NULL, &res), 0);
    assert_string_equal(res.source, f->db);
    assert_string_equal(res.destination, dest);
    assert_int_equal(strlen(res.sha256), 64);
    assert_true(res.page_count > 0);
    ls_backup_result_free(&res);
    assert_null(res.source);
    assert_null(res.destination);
    assert_true(res.page_count > 0); /* the rest stays */
    ls_backup_result_free(&res);

    /* Refused (the destination exists) after the source was resolved. */
    memset(&res, 0xff, sizeof(res)); /* the call zeroes it first */
    assert_int_equal(ls_backup(f->ctx, f->db, dest, NULL, &res), LS_EEXIST);
    assert_string_equal(res.source, f->db);
    assert_null(res.destination);
    ls_backup_result_free(&res);
    ls_backup_result_free(&res);
    assert_null(res.source);

    /* No source at all: nothing was allocated, and freeing is still fine. */
    path_in(f, dest, "missing.db");
    assert_int_equal(ls_backup(f->ctx, dest, "/nonexistent/x.db", NULL, &res), LS_ENOENT);
    assert_null(res.source);
    ls_backup_result_free(&res);
}

static void test_checkpoint(void **state)
{
    fixture *f = *state;
    char missing[PATH_MAX];
    ls_checkpoint_result res;
    assert_int_equal(ls_checkpoint(f->ctx, f->db, LS_CKPT_TRUNCATE, 1000, &res), 0);
    assert_string_equal(res.database, f->db);
    assert_int_equal(res.wal_mode, 1);
    ls_checkpoint_result_free(&res);
    assert_null(res.database);
    ls_checkpoint_result_free(&res);

    /* The path resolves (its directory exists), the file does not. */
    path_in(f, missing, "missing.db");
    assert_int_equal(ls_checkpoint(f->ctx, missing, LS_CKPT_PASSIVE, 100, &res), LS_ENOENT);
    assert_string_equal(res.database, missing);
    ls_checkpoint_result_free(&res);
    ls_checkpoint_result_free(&res);
}

static void test_info(void **state)
{
    fixture *f = *state;
    char meta[PATH_MAX], junk[PATH_MAX];
    ls_info_result res;
    assert_int_equal(ls_info(f->ctx, f->db, &res), 0);
    assert_string_equal(res.path, f->db);
    path_in(f, meta, ".live.db-litesafe");
    assert_string_equal(res.meta_dir, meta);
    assert_string_equal(res.journal_mode, "wal");
    ls_info_result_free(&res);
    assert_null(res.path);
    assert_null(res.meta_dir);
    ls_info_result_free(&res);

    /* A file that is not a database: refused after the path was resolved. */
    path_in(f, junk, "junk.db");
    FILE *fp = fopen(junk, "w");
    assert_non_null(fp);
    for (int i = 0; i < 200; i++)
        fputs("not a database ", fp);
    fclose(fp);
    assert_int_equal(ls_info(f->ctx, junk, &res), LS_ENOTDB);
    assert_string_equal(res.path, junk);
    assert_null(res.meta_dir);
    ls_info_result_free(&res);
    ls_info_result_free(&res);
}

static void test_verify(void **state)
{
    fixture *f = *state;
    static const char zeros[] =
        "0000000000000000000000000000000000000000000000000000000000000000";
    char bk[PATH_MAX];
    ls_verify_result res;
    make_backup(f, "v.db", bk);
    assert_int_equal(ls_verify(f->ctx, bk, NULL, &res), 0);
    assert_string_equal(res.path, bk);
    assert_string_equal(res.integrity_message, "ok");
    assert_int_equal(res.integrity_ok, 1);
    ls_verify_result_free(&res);
    assert_null(res.path);
    assert_null(res.integrity_message);
    ls_verify_result_free(&res);

    /* A failed check comes with the whole result, strings included. */
    assert_int_equal(ls_verify(f->ctx, bk, zeros, &res), LS_ECORRUPT);
    assert_string_equal(res.path, bk);
    assert_string_equal(res.integrity_message, "ok");
    assert_int_equal(res.sha256_match, 0);
    ls_verify_result_free(&res);
    ls_verify_result_free(&res);

    /* Page 2 (the table's root) damaged: the message names the problem. */
    int fd = open(bk, O_WRONLY);
    char garbage[512];
    memset(garbage, 0xa5, sizeof(garbage));
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, garbage, sizeof(garbage), 4096), (ssize_t)sizeof(garbage));
    close(fd);
    assert_int_equal(ls_verify(f->ctx, bk, NULL, &res), LS_ECORRUPT);
    assert_non_null(res.integrity_message);
    assert_string_not_equal(res.integrity_message, "ok");
    assert_true(strlen(res.integrity_message) < 1024);
    ls_verify_result_free(&res);
    ls_verify_result_free(&res);

    /* Refused before the file is looked at. */
    assert_int_equal(ls_verify(f->ctx, bk, "xyz", &res), LS_EUSAGE);
    assert_null(res.path);
    ls_verify_result_free(&res);
}

static void test_prune(void **state)
{
    fixture *f = *state;
    char dir[PATH_MAX], a[PATH_MAX], b[PATH_MAX];
    ls_prune_result res;
    ls_prune_opts o = {.keep = 1, .keep_within_s = -1};
    path_in(f, dir, "backups");
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(a, sizeof(a), "%s/x-20240101T000000Z.db", dir);
    snprintf(b, sizeof(b), "%s/x-20240102T000000Z.db", dir);
    fclose(fopen(a, "w"));
    fclose(fopen(b, "w"));
    assert_int_equal(ls_prune(f->ctx, dir, &o, &res), 0);
    assert_string_equal(res.dir, dir);
    assert_int_equal(res.deleted, 1);
    ls_prune_result_free(&res);
    assert_null(res.dir);
    assert_int_equal(res.deleted, 1);
    ls_prune_result_free(&res);

    /* A missing directory: refused after its path was resolved. */
    path_in(f, dir, "nope");
    assert_int_equal(ls_prune(f->ctx, dir, &o, &res), LS_ENOENT);
    assert_string_equal(res.dir, dir);
    ls_prune_result_free(&res);
    ls_prune_result_free(&res);
}

static void test_restore_file(void **state)
{
    fixture *f = *state;
    char bk[PATH_MAX], out[PATH_MAX], pre[PATH_MAX + 16];
    ls_restore_file_result res;
    make_backup(f, "r-src.db", bk);
    path_in(f, out, "restored.db");
    assert_int_equal(ls_restore_file(f->ctx, bk, out, 0, &res), 0);
    assert_string_equal(res.source, bk);
    assert_string_equal(res.destination, out);
    assert_null(res.pre_restore); /* nothing was replaced */
    ls_restore_file_result_free(&res);
    assert_null(res.source);
    assert_null(res.destination);
    ls_restore_file_result_free(&res);

    /* Swapped in over the restored database: the old one is set aside. */
    assert_int_equal(ls_restore_file(f->ctx, bk, out, 1, &res), 0);
    snprintf(pre, sizeof(pre), "%s.pre-restore", out);
    assert_string_equal(res.pre_restore, pre);
    ls_restore_file_result_free(&res);
    assert_null(res.pre_restore);
    ls_restore_file_result_free(&res);

    /* The output exists: refused once both paths are known. */
    assert_int_equal(ls_restore_file(f->ctx, bk, out, 0, &res), LS_EEXIST);
    assert_string_equal(res.source, bk);
    assert_null(res.pre_restore);
    ls_restore_file_result_free(&res);
    ls_restore_file_result_free(&res);

    /* A second swap finds the .pre-restore of the first: refused, nothing set aside. */
    assert_int_equal(ls_restore_file(f->ctx, bk, out, 1, &res), LS_EEXIST);
    assert_null(res.pre_restore);
    ls_restore_file_result_free(&res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_free_on_zeroed_and_null),
        cmocka_unit_test_setup_teardown(test_backup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_info, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
