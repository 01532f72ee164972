/*
 * test_publish.c - fsutil's publish protocol and SQLite's siblings: a
 * database file is never published while "<dest>-wal", "<dest>-shm" or
 * "<dest>-journal" exists, whether the sibling was there from the start
 * (ls_publish_check) or appeared between the temp file's creation and the
 * final rename (ls_publish checks again). The temp names' own siblings are
 * litesafe's to clear. Each test works in its own temporary directory.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fsutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const SUFFIXES[] = {"-wal", "-shm", "-journal"};
#define NSUFFIX 3

/* The per-test state: a directory and a context. */
typedef struct fixture {
    char dir[64]; /* the temporary directory */
    ls_ctx *ctx;  /* the library context */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    strcpy(f->dir, "/tmp/ls-test-publish-XXXXXX");
    if (!mkdtemp(f->dir) || ls_ctx_new(&f->ctx) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    ls_ctx_free(f->ctx);
    free(f);
    return rc == 0 ? 0 : -1;
}

static void put_file(const char *path, const char *content)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(content, fp);
    assert_int_equal(fclose(fp), 0);
}

static void assert_content(const char *path, const char *want)
{
    char buf[256] = "";
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    assert_string_equal(buf, want);
}

/* Prepare a publication of <dir>/out.db: the temp file, written and synced. */
static void prepare(fixture *f, char *dest, size_t destsz, char *tmp, size_t tmpsz)
{
    int fd = -1;
    snprintf(dest, destsz, "%s/out.db", f->dir);
    assert_int_equal(ls_tmp_create(f->ctx, dest, 0644, tmp, tmpsz, &fd), 0);
    assert_int_equal(ls_write_all(f->ctx, fd, "fresh", 5, 0, tmp), 0);
    assert_int_equal(ls_fd_sync(f->ctx, fd, tmp), 0);
    close(fd);
}

static void publish_without_siblings(void **state)
{
    fixture *f = *state;
    char dest[128], tmp[256];
    prepare(f, dest, sizeof(dest), tmp, sizeof(tmp));
    assert_int_equal(ls_publish_check(f->ctx, dest), 0);
    assert_int_equal(ls_publish(f->ctx, tmp, dest), 0);
    assert_content(dest, "fresh");
    assert_false(ls_path_exists(tmp));
}

/* The sibling was there before anything was prepared: the start check sees it. */
static void start_check_names_the_sibling(void **state)
{
    fixture *f = *state;
    char dest[128], sib[160];
    snprintf(dest, sizeof(dest), "%s/out.db", f->dir);
    for (int i = 0; i < NSUFFIX; i++) {
        snprintf(sib, sizeof(sib), "%s%s", dest, SUFFIXES[i]);
        put_file(sib, "stranger");
        assert_int_equal(ls_publish_check(f->ctx, dest), LS_EEXIST);
        assert_non_null(strstr(ls_errmsg(f->ctx), sib));
        assert_non_null(strstr(ls_errmsg(f->ctx), "would replay it"));
        assert_int_equal(unlink(sib), 0);
    }
    /* A dangling symbolic link is a sibling too: SQLite would create its target. */
    snprintf(sib, sizeof(sib), "%s-wal", dest);
    assert_int_equal(symlink("/nonexistent/target", sib), 0);
    assert_int_equal(ls_publish_check(f->ctx, dest), LS_EEXIST);
}

/* The sibling appears between prepare and publish: the final rename is refused. */
static void sibling_appearing_before_the_rename(void **state)
{
    fixture *f = *state;
    char dest[128], tmp[256], sib[160];
    for (int i = 0; i < NSUFFIX; i++) {
        prepare(f, dest, sizeof(dest), tmp, sizeof(tmp));
        assert_int_equal(ls_publish_check(f->ctx, dest), 0);
        snprintf(sib, sizeof(sib), "%s%s", dest, SUFFIXES[i]);
        put_file(sib, "stranger");
        assert_int_equal(ls_publish(f->ctx, tmp, dest), LS_EEXIST);
        assert_non_null(strstr(ls_errmsg(f->ctx), sib));
        assert_false(ls_path_exists(dest));
        assert_content(tmp, "fresh"); /* still the caller's to remove */
        assert_content(sib, "stranger");
        assert_int_equal(unlink(sib), 0);
        assert_int_equal(unlink(tmp), 0);
    }
}

/* An existing destination is still refused, and is left as it was. */
static void existing_destination_refused(void **state)
{
    fixture *f = *state;
    char dest[128], tmp[256];
    prepare(f, dest, sizeof(dest), tmp, sizeof(tmp));
    put_file(dest, "precious");
    assert_int_equal(ls_publish(f->ctx, tmp, dest), LS_EEXIST);
    assert_content(dest, "precious");
}

/*
 * Siblings of a temp name (".out.db.<pid>.litesafe-tmp-wal"...) are in
 * litesafe's own namespace: ls_tmp_create clears those of its own pid (a
 * dead process's that had the same pid), and ls_tmp_sweep those of dead
 * processes, so an integrity check of a temp file never reads a stale one.
 */
static void temp_siblings_are_cleared(void **state)
{
    fixture *f = *state;
    char dest[128], tmp[256], sib[300], dead[300];
    int fd = -1;
    snprintf(dest, sizeof(dest), "%s/out.db", f->dir);
    snprintf(tmp, sizeof(tmp), "%s/.out.db.%ld.litesafe-tmp", f->dir, (long)getpid());
    for (int i = 0; i < NSUFFIX; i++) {
        snprintf(sib, sizeof(sib), "%s%s", tmp, SUFFIXES[i]);
        put_file(sib, "stale");
    }
    assert_int_equal(ls_tmp_create(f->ctx, dest, 0600, tmp, sizeof(tmp), &fd), 0);
    close(fd);
    for (int i = 0; i < NSUFFIX; i++) {
        snprintf(sib, sizeof(sib), "%s%s", tmp, SUFFIXES[i]);
        assert_false(ls_path_exists(sib));
    }

    /* A process that is gone: fork one and wait for it. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(0);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    for (int i = 0; i < NSUFFIX; i++) {
        snprintf(dead, sizeof(dead), "%s/.out.db.%ld.litesafe-tmp%s", f->dir, (long)pid,
                 SUFFIXES[i]);
        put_file(dead, "stale");
    }
    /* Names that only look alike are not ours and stay. */
    snprintf(sib, sizeof(sib), "%s/.out.db.%ld.litesafe-tmp-walrus", f->dir, (long)pid);
    put_file(sib, "keep");
    ls_tmp_sweep(dest);
    for (int i = 0; i < NSUFFIX; i++) {
        snprintf(dead, sizeof(dead), "%s/.out.db.%ld.litesafe-tmp%s", f->dir, (long)pid,
                 SUFFIXES[i]);
        assert_false(ls_path_exists(dead));
    }
    assert_true(ls_path_exists(sib));
    assert_true(ls_path_exists(tmp)); /* ours: the process is alive */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(publish_without_siblings, setup, teardown),
        cmocka_unit_test_setup_teardown(start_check_names_the_sibling, setup, teardown),
        cmocka_unit_test_setup_teardown(sibling_appearing_before_the_rename, setup, teardown),
        cmocka_unit_test_setup_teardown(existing_destination_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(temp_siblings_are_cleared, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
