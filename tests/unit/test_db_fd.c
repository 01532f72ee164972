/*
 * test_db_fd.c - the database descriptors of ls_db_fd_acquire (db.c): one
 * process reads more databases than any fixed table would hold, without a
 * failure and without keeping a descriptor per database (counted in
 * /proc/self/fd); a descriptor shared with a connection that holds a lock is
 * not closed under it (the lock survives, as seen from another process), and
 * is closed once that connection is gone.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "db.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* More databases than the former table of 64 never-closed descriptors held. */
#define NDB 150

/* SQLite's lock bytes (os_unix.c): PENDING, RESERVED, then 510 SHARED bytes. */
#define SHARED_FIRST (0x40000000LL + 2)
#define SHARED_SIZE 510

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
    strcpy(f->dir, "/tmp/ls-test-dbfd-XXXXXX");
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

/* The descriptors this process has open. */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own */
}

/* A small database at <dir>/<i>.db, in WAL mode when `wal`. */
static void make_db(fixture *f, int i, int wal, char *path, size_t pathsz)
{
    sqlite3 *db = NULL;
    snprintf(path, pathsz, "%s/%d.db", f->dir, i);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, wal ? "PRAGMA journal_mode=WAL" : "PRAGMA journal_mode=DELETE",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1)", NULL, NULL,
                                  NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* The first bytes through the descriptor are the SQLite header. */
static void assert_reads_db(int fd)
{
    char hdr[16];
    assert_int_equal(pread(fd, hdr, sizeof(hdr), 0), (ssize_t)sizeof(hdr));
    assert_memory_equal(hdr, "SQLite format 3", 16);
}

/* 1 if another process sees a SHARED lock on `path` (a fork asks with F_GETLK). */
static int shared_lock_seen(const char *path)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct flock fl;
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            _exit(2);
        memset(&fl, 0, sizeof(fl));
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        fl.l_start = SHARED_FIRST;
        fl.l_len = SHARED_SIZE;
        if (fcntl(fd, F_GETLK, &fl) != 0)
            _exit(2);
        _exit(fl.l_type == F_RDLCK ? 1 : 0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_not_equal(WEXITSTATUS(status), 2);
    return WEXITSTATUS(status) == 1;
}

/*
 * As a backup does it, for each of NDB databases: pin a snapshot, take the
 * descriptor, read through it, close the reader, give the descriptor back.
 * Every acquire succeeds and no descriptor is left behind.
 */
static void many_databases_no_growth(void **state)
{
    fixture *f = *state;
    char path[128];
    for (int i = 0; i < NDB; i++)
        make_db(f, i, i % 2, path, sizeof(path));
    int before = count_fds();
    for (int i = 0; i < NDB; i++) {
        ls_dbread *r = NULL;
        snprintf(path, sizeof(path), "%s/%d.db", f->dir, i);
        assert_int_equal(ls_dbread_open(f->ctx, path, 1000, &r), 0);
        int fd = ls_db_fd_acquire(f->ctx, path);
        assert_true(fd >= 0);
        assert_int_equal(ls_db_fd_acquire(f->ctx, path), fd); /* shared per file */
        assert_reads_db(fd);
        ls_dbread_close(r);
        ls_db_fd_release(fd);
        ls_db_fd_release(fd);
    }
    assert_int_equal(count_fds(), before);
}

/*
 * A connection of this process holds a read transaction (a SHARED lock) on
 * the database: giving the descriptor back must not close it, which would
 * drop that lock. Once the connection is closed, the next acquire or release
 * closes the idle descriptor.
 */
static void lock_of_another_connection_survives(void **state)
{
    fixture *f = *state;
    char path[128], other[128];
    sqlite3 *app = NULL;
    make_db(f, 0, 0, path, sizeof(path));
    make_db(f, 1, 0, other, sizeof(other));
    int before = count_fds();

    assert_int_equal(sqlite3_open(path, &app), SQLITE_OK);
    assert_int_equal(sqlite3_exec(app, "BEGIN; SELECT count(*) FROM t", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_true(shared_lock_seen(path));
    int fd = ls_db_fd_acquire(f->ctx, path);
    assert_true(fd >= 0);
    assert_reads_db(fd);
    ls_db_fd_release(fd);
    assert_true(shared_lock_seen(path)); /* a close would have dropped it */
    assert_int_equal(fcntl(fd, F_GETFD), FD_CLOEXEC);
    assert_int_equal(sqlite3_exec(app, "COMMIT", NULL, NULL, NULL), SQLITE_OK);

    /* Idle, and still not closed while the connection has the file open. */
    int fd2 = ls_db_fd_acquire(f->ctx, other);
    assert_true(fd2 >= 0);
    ls_db_fd_release(fd2);
    assert_int_equal(fcntl(fd, F_GETFD), FD_CLOEXEC);
    assert_int_equal(count_fds(), before + 2); /* the connection's and ours */

    /* The connection gone, the next call closes it. */
    assert_int_equal(sqlite3_close(app), SQLITE_OK);
    fd2 = ls_db_fd_acquire(f->ctx, other);
    ls_db_fd_release(fd2);
    assert_int_equal(count_fds(), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(many_databases_no_growth, setup, teardown),
        cmocka_unit_test_setup_teardown(lock_of_another_connection_survives, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
