/*
 * repl_fixture.h - the fixture of the replication unit tests
 * (test_replication.c, test_restore_plan.c): a real SQLite database in WAL
 * mode in a temp directory with an "application" connection writing to it,
 * a source (source.h) attached to it, and one replica worker (replica.h) whose
 * store is an in-memory store the test keeps (through a non-owning view and
 * a fault injector the worker owns). Everything runs in the test thread: the
 * test calls ls_source_sync and ls_replica_step itself, so nothing races.
 *
 * Also the checks the tests share: the database image as a consistent
 * reader sees it (page bytes), a restore into the temp directory compared
 * byte for byte with such an image, and listings of the store.
 *
 * Functions are static inline: each test file uses a part of them.
 */
#ifndef LS_REPL_FIXTURE_H
#define LS_REPL_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "db.h"
#include "layout.h"
#include "replica.h"
#include "restore.h"
#include "source.h"
#include "storage_test.h"
#include "stream.h"

#include <dirent.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A fixed wall-clock origin for tests that set upload times (2023-11-14). */
#define FX_T0 1700000000000LL
#define FX_PAGE 4096
#define FX_FRAME (LS_WAL_FRAME_HDRSIZE + FX_PAGE)
/* A test with the fixture. */
#define FX_TEST(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

typedef struct fx {
    char dir[128];          /* temp directory */
    char db[192];           /* the database */
    ls_ctx *ctx;            /* the test's context (source, restore) */
    sqlite3 *app;           /* the application's connection */
    ls_source *src;         /* attached at setup */
    ls_storage *mem;        /* the replica's store, owned here */
    ls_storage *fault;      /* fault injector over a view of mem, owned by r */
    ls_replica *r;          /* the replica worker (never started: stepped here) */
    int nrestore;           /* restores so far (output names) */
} fx;

static inline void fx_exec(fx *f, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(f->app, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        fail_msg("%s: %s", sql, err ? err : "?");
    sqlite3_free(err);
}

/* One transaction inserting n rows of `size` random bytes. */
static inline void fx_insert(fx *f, int n, int size)
{
    char sql[160];
    snprintf(sql, sizeof(sql),
             "BEGIN; WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<%d) "
             "INSERT INTO t(v) SELECT randomblob(%d) FROM c; COMMIT;", n, size);
    fx_exec(f, sql);
}

/* Open the application's connection: WAL mode, no automatic checkpoints. */
static inline void fx_app_open(fx *f)
{
    assert_int_equal(sqlite3_open(f->db, &f->app), SQLITE_OK);
    fx_exec(f, "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0");
}

static inline ls_replica *fx_replica_new(fx *f, const ls_replica_opts *o, ls_storage **fault)
{
    ls_storage *v = NULL, *fs = NULL;
    ls_replica *r = NULL;
    ls_replica_opts def = {.name = "mem"};
    assert_int_equal(ls_storage_view_open(f->ctx, f->mem, &v), 0);
    assert_int_equal(ls_storage_fault_open(f->ctx, v, &fs), 0);
    assert_int_equal(ls_replica_new(f->ctx, f->src, fs, o ? o : &def, &r), 0);
    *fault = fs;
    return r;
}

/* A replica worker replacing the fixture's one (a restarted replicator). */
static inline void fx_replica_restart(fx *f, const ls_replica_opts *o)
{
    ls_replica_free(f->r);
    f->r = fx_replica_new(f, o, &f->fault);
}

/*
 * ls_source_new + ls_source_attach (what ls_source_open is declared to do:
 * source.h declares it but no file defines it). *out is NULL on failure.
 */
static inline int fx_source_open(ls_ctx *ctx, const char *db, const ls_source_opts *o,
                                 ls_source **out)
{
    int rc = ls_source_new(ctx, db, o, out);
    if (!rc && (rc = ls_source_attach(*out)) != 0) {
        ls_source_close(*out);
        *out = NULL;
    }
    return rc;
}

static inline int fx_setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    ls_source_opts so = {.ckpt_interval_ms = 0};
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/ls-test-repl-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->db, sizeof(f->db), "%s/db", f->dir);
    if (ls_ctx_new(&f->ctx) != 0)
        return -1;
    fx_app_open(f);
    fx_exec(f, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    if (fx_source_open(f->ctx, f->db, &so, &f->src) != 0)
        return -1;
    if (ls_storage_mem_open(f->ctx, "mem", &f->mem) != 0)
        return -1;
    f->r = fx_replica_new(f, NULL, &f->fault);
    *state = f;
    return 0;
}

static inline int fx_teardown(void **state)
{
    fx *f = *state;
    char cmd[256];
    ls_replica_free(f->r);
    ls_source_close(f->src);
    sqlite3_close(f->app);
    ls_storage_close(f->mem);
    ls_ctx_free(f->ctx);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* ls_source_sync, which must succeed; returns *grew. */
static inline int fx_sync(fx *f)
{
    int grew = -1;
    int rc = ls_source_sync(f->src, &grew);
    if (rc)
        fail_msg("ls_source_sync: %d %s", rc, ls_errmsg(f->ctx));
    return grew;
}

/* ls_replica_step, which must succeed. */
static inline void fx_step(fx *f)
{
    int rc = ls_replica_step(f->r);
    if (rc)
        fail_msg("ls_replica_step: %d %s", rc, ls_errmsg(f->r->ctx));
}

/* Commit n rows, sync the spool and ship: the replica then holds it all. */
static inline void fx_commit_ship(fx *f, int n)
{
    fx_insert(f, n, 300);
    assert_int_equal(fx_sync(f), 1);
    fx_step(f);
}

/* A checkpoint cycle, then a commit: the WAL restarts, the spool moves to the next index. */
static inline void fx_next_index(fx *f)
{
    int busy = -1;
    ls_spool_pos before, after;
    ls_source_pos(f->src, &before);
    assert_int_equal(ls_source_checkpoint(f->src, &busy), 0);
    assert_int_equal(busy, 0);
    fx_insert(f, 2, 300);
    assert_int_equal(fx_sync(f), 1);
    ls_source_pos(f->src, &after);
    assert_int_equal(after.index, before.index + 1);
}

static inline int fx_has(fx *f)
{
    ls_spool_pos sp;
    ls_source_pos(f->src, &sp);
    return ls_replica_has(f->r, &sp, NULL, NULL, 0);
}

/* The live database's committed state, page by page, as a consistent reader sees it. */
static inline uint8_t *fx_image(fx *f, size_t *n)
{
    ls_dbread *rd = NULL;
    assert_int_equal(ls_dbread_open(f->ctx, f->db, 5000, &rd), 0);
    *n = (size_t)(rd->page_count * rd->page_size);
    uint8_t *buf = malloc(*n);
    assert_non_null(buf);
    assert_int_equal(ls_dbread_pages(rd, 1, (uint32_t)rd->page_count, buf), 0);
    ls_dbread_close(rd);
    return buf;
}

/* A whole file (not a database SQLite has open in this process: see db.h). */
static inline uint8_t *fx_file(const char *path, size_t *n)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    *n = (size_t)st.st_size;
    uint8_t *buf = malloc(*n ? *n : 1);
    assert_non_null(buf);
    assert_int_equal(pread(fd, buf, *n, 0), (ssize_t)*n);
    close(fd);
    return buf;
}

static inline int fx_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Restore options: latest, one download at a time (the fault injector is single-threaded). */
static inline ls_restore_plan fx_ropts(void)
{
    ls_restore_plan o = {NULL, -1, -1, -1, 0, 1, 0};
    return o;
}

/* Restore from `st` into a new file of the temp directory; its path in out. */
static inline int fx_restore_from(fx *f, ls_storage *st, const ls_restore_plan *o, char *out,
                                  size_t n, ls_restore_result *res)
{
    snprintf(out, n, "%s/restored-%d.db", f->dir, ++f->nrestore);
    return ls_restore_replica(f->ctx, st, out, o, res);
}

/* Nothing a failed restore may leave in the temp directory: only db, its siblings, the spool. */
static inline void fx_assert_no_leftovers(fx *f)
{
    DIR *d = opendir(f->dir);
    struct dirent *e;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        const char *s = e->d_name;
        if (!strcmp(s, ".") || !strcmp(s, "..") || !strncmp(s, "db", 2) ||
            !strcmp(s, ".db-litesafe") || !strncmp(s, "restored-", 9) || !strncmp(s, "other", 5))
            continue;
        fail_msg("left in %s: %s", f->dir, s);
    }
    closedir(d);
}

/* The restored file holds exactly the pages of `img`, and SQLite reads the same rows. */
static inline void fx_assert_same(const char *path, const uint8_t *img, size_t n)
{
    size_t got = 0;
    uint8_t *buf = fx_file(path, &got);
    assert_int_equal(got, n);
    for (size_t i = 0; i < n; i += FX_PAGE)
        if (memcmp(buf + i, img + i, FX_PAGE) != 0)
            fail_msg("%s: page %zu differs", path, i / FX_PAGE + 1);
    free(buf);
}

/* Rows in table t of the database at path (through SQLite). */
static inline int64_t fx_rows(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* Restore (latest unless o says otherwise) and compare with img; returns the result. */
static inline ls_restore_result fx_restore_check(fx *f, const ls_restore_plan *o,
                                                         const uint8_t *img, size_t n)
{
    char out[256];
    ls_restore_result res;
    ls_restore_plan def = fx_ropts();
    int rc = fx_restore_from(f, f->mem, o ? o : &def, out, sizeof(out), &res);
    if (rc)
        fail_msg("restore: %d %s", rc, ls_errmsg(f->ctx));
    fx_assert_same(out, img, n);
    return res;
}

/* Restore the latest state: it must be the live database's. */
static inline ls_restore_result fx_assert_restores_live(fx *f)
{
    size_t n = 0;
    uint8_t *img = fx_image(f, &n);
    ls_restore_result res = fx_restore_check(f, NULL, img, n);
    free(img);
    return res;
}

/* Sorted keys of the store under prefix (caller frees with ls_obj_list_free). */
static inline ls_obj_list fx_list(fx *f, const char *prefix)
{
    ls_obj_list l = {0};
    assert_int_equal(f->mem->list(f->mem, f->ctx, prefix, &l), 0);
    ls_obj_list_sort(&l);
    return l;
}

static inline size_t fx_count(fx *f, const char *prefix)
{
    ls_obj_list l = fx_list(f, prefix);
    size_t n = l.n;
    ls_obj_list_free(&l);
    return n;
}

static inline int fx_has_key(fx *f, const char *key)
{
    ls_obj o;
    return f->mem->stat(f->mem, f->ctx, key, &o) == 0;
}

/* A stored object decompressed. */
static inline uint8_t *fx_object(fx *f, const char *key, size_t *n)
{
    uint8_t *z = NULL, *out = NULL;
    size_t zn = 0;
    assert_int_equal(ls_storage_get_buf(f->mem, f->ctx, key, &z, &zn), 0);
    assert_int_equal(ls_lz4_decompress_buf(f->ctx, z, zn, &out, n), 0);
    free(z);
    return out;
}

/* Set the upload time of every object under prefix. */
static inline void fx_set_mtimes(fx *f, const char *prefix, int64_t ms)
{
    ls_obj_list l = fx_list(f, prefix);
    for (size_t i = 0; i < l.n; i++)
        assert_int_equal(ls_storage_mem_set_mtime(f->mem, l.v[i].key, ms), 0);
    ls_obj_list_free(&l);
}

static inline void fx_wal_key(fx *f, char *out, uint32_t index, uint32_t off)
{
    ls_layout_wal_key(out, LS_LAYOUT_KEY_MAX, f->r->gen, index, off);
}

static inline void fx_snap_key(fx *f, char *out, uint32_t index)
{
    ls_layout_snapshot_key(out, LS_LAYOUT_KEY_MAX, f->r->gen, index);
}

#endif
