/*
 * test_publish.c - fsutil's publish protocol and SQLite's siblings: a
 * database file is never published while "<dest>-wal", "<dest>-shm" or
 * "<dest>-journal" exists, whether the sibling was there from the start
 * (ls_publish_check) or appeared between the temp file's creation and the
 * final rename (ls_publish checks again). The temp names' own siblings are
 * litesafe's to clear. Then ls_tmpfile, the protocol as one object: commit
 * publishes, abort (and every failure, fsync's ENOSPC included) leaves no
 * file behind, an existing destination or a stale sibling is refused, and
 * its flags (replace, unique names, umask, a private directory). Each test
 * works in its own temporary directory.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * The library's fdatasync, failing with `sync_errno` when it is set: this
 * definition in the test program takes the place of libc's for the
 * statically linked library, so a full disk can be shown without one.
 */
static int sync_errno;
int fdatasync(int fd)
{
    if (sync_errno) {
        errno = sync_errno;
        return -1;
    }
    return (int)syscall(SYS_fdatasync, fd);
}

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

/* ---------------------------------------------------------------------- */
/* ls_tmpfile                                                              */

/* The test directory holds exactly `want`: its names, sorted, space-separated. */
static void assert_dir_holds(fixture *f, const char *want)
{
    char got[512] = "";
    struct dirent **names = NULL;
    int n = scandir(f->dir, &names, NULL, alphasort);
    assert_true(n >= 0);
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, "..")) {
            if (got[0])
                strcat(got, " ");
            strncat(got, names[i]->d_name, sizeof(got) - strlen(got) - 2);
        }
        free(names[i]);
    }
    free(names);
    assert_string_equal(got, want);
}

static void tmpfile_write(fixture *f, ls_tmpfile *t, const char *content)
{
    assert_int_equal(ls_write_all(f->ctx, t->fd, content, strlen(content), 0, t->path), 0);
}

/* "<dir>/out.db" into dest and, when sib is given, its "-wal" into sib. */
static void out_names(const fixture *f, char *dest, size_t destsz, char *sib, size_t sibsz)
{
    snprintf(dest, destsz, "%s/out.db", f->dir);
    if (sib)
        snprintf(sib, sibsz, "%s-wal", dest);
}

/* begin, write, commit: the destination with the content and exactly the mode, no temp left. */
static void tmpfile_commit_publishes(void **state)
{
    fixture *f = *state;
    char dest[128];
    struct stat st;
    ls_tmpfile t = LS_TMPFILE_INIT;
    out_names(f, dest, sizeof(dest), NULL, 0);
    mode_t old = umask(077);
    assert_int_equal(ls_tmpfile_begin(f->ctx, &t, dest, 0640, 0), 0);
    umask(old);
    assert_true(t.fd >= 0);
    assert_non_null(strstr(t.path, ".litesafe-tmp"));
    assert_false(ls_path_exists(dest));
    tmpfile_write(f, &t, "fresh");
    assert_int_equal(ls_tmpfile_commit(f->ctx, &t), 0);
    assert_content(dest, "fresh");
    assert_int_equal(stat(dest, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640); /* the umask does not narrow it */
    assert_int_equal(t.fd, -1);
    ls_tmpfile_abort(&t); /* after commit: nothing to do, dest stays */
    assert_dir_holds(f, "out.db");
}

/* abort after writing, and abort of a never-begun tmpfile: nothing is left. */
static void tmpfile_abort_leaves_nothing(void **state)
{
    fixture *f = *state;
    char dest[128];
    ls_tmpfile t = LS_TMPFILE_INIT;
    ls_tmpfile_abort(&t);
    out_names(f, dest, sizeof(dest), NULL, 0);
    assert_int_equal(ls_tmpfile_begin(f->ctx, &t, dest, 0600, 0), 0);
    tmpfile_write(f, &t, "half");
    ls_tmpfile_abort(&t);
    assert_int_equal(t.fd, -1);
    assert_dir_holds(f, "");
    ls_tmpfile_abort(&t); /* twice is fine */

    /* synced, then aborted (restore's integrity check failing after step 5) */
    assert_int_equal(ls_tmpfile_begin(f->ctx, &t, dest, 0600, 0), 0);
    tmpfile_write(f, &t, "whole");
    assert_int_equal(ls_tmpfile_sync(f->ctx, &t), 0);
    assert_int_equal(ls_tmpfile_sync(f->ctx, &t), 0);
    ls_tmpfile_abort(&t);
    assert_dir_holds(f, "");
}

/* An existing destination: refused at begin (nothing created) and at commit (left as it was). */
static void tmpfile_existing_dest_refused(void **state)
{
    fixture *f = *state;
    char dest[128];
    ls_tmpfile t = LS_TMPFILE_INIT;
    out_names(f, dest, sizeof(dest), NULL, 0);
    put_file(dest, "precious");
    assert_int_equal(ls_tmpfile_begin(f->ctx, &t, dest, 0600, 0), LS_EEXIST);
    assert_non_null(strstr(ls_errmsg(f->ctx), "destination exists"));
    ls_tmpfile_abort(&t);
    assert_dir_holds(f, "out.db");

    assert_int_equal(unlink(dest), 0);
    assert_int_equal(ls_tmpfile_begin(f->ctx, &t, dest, 0600, 0), 0);
    tmpfile_write(f, &t, "fresh");
    put_file(dest, "precious"); /* appears during the write */
    assert_int_equal(ls_tmpfile_commit(f->ctx, &t), LS_EEXIST);
    ls_tmpfile_abort(&t);
    assert_content(dest, "precious");
    assert_dir_holds(f, "out.db");
}

/* A stale -wal: refused at begin; one appearing before the commit: refused there. */
static void tmpfile_stale_sibling_refused(void **state)
{
    fixture *f = *state;
    char dest[128], sib[160];
    ls_tmpfile t = LS_TMPFILE_INIT;
    out_names(f, dest, sizeof(dest), sib, sizeof(sib));
    put_file(sib, "stranger");
    assert_int_equal(ls_tmpfile_begin(f->ctx, &t, dest, 0600, 0), LS_EEXIST);
    assert_non_null(strstr(ls_errmsg(f->ctx), "would replay it"));
    assert_dir_holds(f, "out.db-wal");

    assert_int_equal(unlink(sib), 0);
    assert_int_equal(ls_tmpfile_begin(f->ctx, &t, dest, 0600, 0), 0);
    tmpfile_write(f, &t, "fresh");
    put_file(sib, "stranger");
    assert_int_equal(ls_tmpfile_commit(f->ctx, &t), LS_EEXIST);
    assert_non_null(strstr(ls_errmsg(f->ctx), sib));
    ls_tmpfile_abort(&t);
    assert_content(sib, "stranger");
    assert_dir_holds(f, "out.db-wal");
}

/* fdatasync failing (a full disk): no destination, and abort leaves nothing. */
static void tmpfile_sync_failure(void **state)
{
    fixture *f = *state;
    char dest[128];
    ls_tmpfile t = LS_TMPFILE_INIT;
    out_names(f, dest, sizeof(dest), NULL, 0);
    assert_int_equal(ls_tmpfile_begin(f->ctx, &t, dest, 0600, 0), 0);
    tmpfile_write(f, &t, "fresh");
    sync_errno = ENOSPC;
    int rc = ls_tmpfile_commit(f->ctx, &t);
    sync_errno = 0;
    assert_int_equal(rc, LS_ENOSPC);
    assert_non_null(strstr(ls_errmsg(f->ctx), "fsync"));
    assert_false(ls_path_exists(dest));
    ls_tmpfile_abort(&t);
    assert_dir_holds(f, "");

    /* the same through ls_tmpfile_sync, then commit is not reached */
    assert_int_equal(ls_tmpfile_begin(f->ctx, &t, dest, 0600, 0), 0);
    sync_errno = EIO;
    rc = ls_tmpfile_sync(f->ctx, &t);
    sync_errno = 0;
    assert_int_equal(rc, LS_EIO);
    ls_tmpfile_abort(&t);
    assert_dir_holds(f, "");
}

/* LS_TMPFILE_REPLACE: an existing file and its siblings are no obstacle; the file is replaced. */
static void tmpfile_replace(void **state)
{
    fixture *f = *state;
    char dest[128], sib[160];
    ls_tmpfile t = LS_TMPFILE_INIT;
    out_names(f, dest, sizeof(dest), sib, sizeof(sib));
    put_file(dest, "old");
    put_file(sib, "its own wal");
    assert_int_equal(ls_tmpfile_begin(f->ctx, &t, dest, 0600, LS_TMPFILE_REPLACE), 0);
    tmpfile_write(f, &t, "new");
    assert_int_equal(ls_tmpfile_commit(f->ctx, &t), 0);
    ls_tmpfile_abort(&t);
    assert_content(dest, "new");
    assert_dir_holds(f, "out.db out.db-wal");

    /* cleared before commit: publish without replacing (restore's swap on a file
     * system without hard links) */
    assert_int_equal(ls_tmpfile_begin(f->ctx, &t, dest, 0600, LS_TMPFILE_REPLACE), 0);
    t.flags &= ~LS_TMPFILE_REPLACE;
    assert_int_equal(ls_tmpfile_commit(f->ctx, &t), LS_EEXIST);
    ls_tmpfile_abort(&t);
    assert_content(dest, "new");
}

/*
 * LS_TMPFILE_UNIQUE | LS_TMPFILE_UMASK (a file replica's put): two writers of
 * one destination at once get two names, which no sweep takes for a dead
 * process's; the umask applies.
 */
static void tmpfile_unique_names(void **state)
{
    fixture *f = *state;
    char dest[128];
    struct stat st;
    ls_tmpfile a = LS_TMPFILE_INIT, b = LS_TMPFILE_INIT;
    const unsigned fl = LS_TMPFILE_REPLACE | LS_TMPFILE_UNIQUE | LS_TMPFILE_UMASK;
    snprintf(dest, sizeof(dest), "%s/obj", f->dir);
    mode_t old = umask(027);
    assert_int_equal(ls_tmpfile_begin(f->ctx, &a, dest, 0666, fl), 0);
    assert_int_equal(ls_tmpfile_begin(f->ctx, &b, dest, 0666, fl), 0);
    umask(old);
    assert_string_not_equal(a.path, b.path);
    assert_null(strstr(a.path, "litesafe-tmp"));
    assert_int_equal(fstat(a.fd, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    ls_tmp_sweep(dest);
    assert_true(ls_path_exists(a.path));
    tmpfile_write(f, &a, "from a");
    tmpfile_write(f, &b, "from b");
    assert_int_equal(ls_tmpfile_commit(f->ctx, &a), 0);
    assert_int_equal(ls_tmpfile_commit(f->ctx, &b), 0);
    ls_tmpfile_abort(&a);
    ls_tmpfile_abort(&b);
    assert_content(dest, "from b");
    assert_dir_holds(f, "obj");

    /* a missing directory is LS_ENOENT, so a store can create it and try again */
    snprintf(dest, sizeof(dest), "%s/gone/obj", f->dir);
    assert_int_equal(ls_tmpfile_begin(f->ctx, &a, dest, 0644, fl), LS_ENOENT);
    assert_int_equal(ls_tmpfile_begin(f->ctx, &a, dest, 0644, 0), LS_ENOENT);
}

/* LS_TMPFILE_DIR: someone else writes t.path in a private directory; commit gives it the mode. */
static void tmpfile_private_dir(void **state)
{
    fixture *f = *state;
    char dest[128];
    struct stat st;
    ls_tmpfile t = LS_TMPFILE_INIT;
    out_names(f, dest, sizeof(dest), NULL, 0);
    assert_int_equal(ls_tmpfile_begin(f->ctx, &t, dest, 0644, LS_TMPFILE_DIR), 0);
    assert_int_equal(t.fd, -1);
    assert_int_equal(stat(t.dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    put_file(t.path, "vacuumed");
    char side[PATH_MAX + 80];
    snprintf(side, sizeof(side), "%s-journal", t.path);
    put_file(side, "sqlite's own");
    ls_tmpfile_abort(&t); /* the directory goes, with all in it */
    assert_dir_holds(f, "");

    assert_int_equal(ls_tmpfile_begin(f->ctx, &t, dest, 0644, LS_TMPFILE_DIR), 0);
    put_file(t.path, "vacuumed");
    assert_int_equal(chmod(t.path, 0600), 0);
    assert_int_equal(ls_tmpfile_commit(f->ctx, &t), 0);
    ls_tmpfile_abort(&t);
    assert_content(dest, "vacuumed");
    assert_int_equal(stat(dest, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_dir_holds(f, "out.db");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(publish_without_siblings, setup, teardown),
        cmocka_unit_test_setup_teardown(start_check_names_the_sibling, setup, teardown),
        cmocka_unit_test_setup_teardown(sibling_appearing_before_the_rename, setup, teardown),
        cmocka_unit_test_setup_teardown(existing_destination_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(temp_siblings_are_cleared, setup, teardown),
        cmocka_unit_test_setup_teardown(tmpfile_commit_publishes, setup, teardown),
        cmocka_unit_test_setup_teardown(tmpfile_abort_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(tmpfile_existing_dest_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(tmpfile_stale_sibling_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(tmpfile_sync_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(tmpfile_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(tmpfile_unique_names, setup, teardown),
        cmocka_unit_test_setup_teardown(tmpfile_private_dir, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
