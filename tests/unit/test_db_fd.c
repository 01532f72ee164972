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

/* The tests' directory and context, made once for the group. */
static char test_dir[64];
static ls_ctx *test_ctx;

static int group_setup(void **state)
{
    (void)state;
    strcpy(test_dir, "/tmp/ls-test-dbfd-XXXXXX");
    return mkdtemp(test_dir) && ls_ctx_new(&test_ctx) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", test_dir);
    ls_ctx_free(test_ctx);
    return system(cmd) == 0 ? 0 : -1;
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

/* A small database at <dir>/<name>.db, in WAL mode when `wal`. */
static void make_db(const char *name, int wal, char *path, size_t pathsz)
{
    sqlite3 *db = NULL;
    snprintf(path, pathsz, "%s/%s.db", test_dir, name);
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
    char path[128], name[16];
    (void)state;
    for (int i = 0; i < NDB; i++) {
        snprintf(name, sizeof(name), "many%d", i);
        make_db(name, i % 2, path, sizeof(path));
    }
    int before = count_fds();
    for (int i = 0; i < NDB; i++) {
        ls_dbread *r = NULL;
        snprintf(path, sizeof(path), "%s/many%d.db", test_dir, i);
        assert_int_equal(ls_dbread_open(test_ctx, path, 1000, &r), 0);
        int fd = ls_db_fd_acquire(test_ctx, path);
        assert_true(fd >= 0);
        assert_int_equal(ls_db_fd_acquire(test_ctx, path), fd); /* shared per file */
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
    char path[128], other[128];
    sqlite3 *app = NULL;
    (void)state;
    make_db("app", 0, path, sizeof(path));
    make_db("other", 0, other, sizeof(other));
    int before = count_fds();

    assert_int_equal(sqlite3_open(path, &app), SQLITE_OK);
    assert_int_equal(sqlite3_exec(app, "BEGIN; SELECT count(*) FROM t", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_true(shared_lock_seen(path));
    int fd = ls_db_fd_acquire(test_ctx, path);
    assert_true(fd >= 0);
    assert_reads_db(fd);
    ls_db_fd_release(fd);
    assert_true(shared_lock_seen(path)); /* a close would have dropped it */
    assert_int_equal(fcntl(fd, F_GETFD), FD_CLOEXEC);
    assert_int_equal(sqlite3_exec(app, "COMMIT", NULL, NULL, NULL), SQLITE_OK);

    /* Idle, and still not closed while the connection has the file open. */
    int fd2 = ls_db_fd_acquire(test_ctx, other);
    assert_true(fd2 >= 0);
    ls_db_fd_release(fd2);
    assert_int_equal(fcntl(fd, F_GETFD), FD_CLOEXEC);
    assert_int_equal(count_fds(), before + 2); /* the connection's and ours */

    /* The connection gone, the next call closes it. */
    assert_int_equal(sqlite3_close(app), SQLITE_OK);
    fd2 = ls_db_fd_acquire(test_ctx, other);
    ls_db_fd_release(fd2);
    assert_int_equal(count_fds(), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(many_databases_no_growth),
        cmocka_unit_test(lock_of_another_connection_survives),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
