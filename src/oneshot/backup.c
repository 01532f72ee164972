/*
 * backup.c - consistent online backup of a live database to a new file.
 *
 * THE BACKUP PROCEDURE (ls_backup)
 *
 *   1. Check the source (exists, is a database) and the destination (does not
 *      exist, its directory does, and no -wal/-shm/-journal is next to it:
 *      ls_publish_check) before anything is written.
 *   2. Create the temp file next to the destination with the source's
 *      permission bits; sweep temp files that crashed runs left.
 *   3. Pin a snapshot with the consistent reader (db.c) and stream its pages
 *      to the temp file in 1 MiB chunks. A second thread hashes each chunk
 *      while the next one is read, so SHA-256 costs no extra pass. Writeback
 *      to disk is started every few MiB so the final fsync is short.
 *      If the WAL was rewritten under the copy (only possible for a snapshot
 *      whose WAL was fully checkpointed), start over; never more than a few
 *      times, and each attempt is a single pass, never a page-by-page restart.
 *      With `compact`, VACUUM INTO writes the temp file instead and it is then
 *      hashed.
 *   4. fsync the temp file, publish it without replacing anything (the
 *      siblings are checked again: one may have appeared during the copy),
 *      fsync the directory. Any failure removes the temp file: there is either
 *      a complete destination or none. Steps 2 and 4 are fsutil's ls_tmpfile.
 *
 * Writers are held off only while the snapshot is pinned (db.c step 3).
 */
#define _GNU_SOURCE
#include "db.h"
#include "fsutil.h"
#include "hash.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_BYTES (4u << 20)
#define NBUF 4
#define MAX_ATTEMPTS 5
#define WRITEBACK_EVERY (32u << 20)

/*
 * The hashing thread's queue: NBUF chunk buffers. The copy loop fills buffer
 * i % NBUF, writes it out, and hands it over; the hasher consumes in order.
 */
typedef struct hashq {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint8_t *buf[NBUF];  /* chunk buffers */
    const uint8_t *ptr[NBUF]; /* what each handed-over slot holds: its buffer, or mapped source */
    size_t len[NBUF];    /* bytes in each handed-over slot */
    uint64_t produced;   /* buffers handed over so far */
    uint64_t consumed;   /* buffers hashed so far */
    int done;            /* no more buffers will come */
    int started;         /* the hashing thread runs */
    pthread_t th;        /* it */
    ls_sha256 *sha;      /* the running digest */
} hashq;

static void *hash_main(void *arg)
{
    hashq *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (q->consumed == q->produced && !q->done)
            pthread_cond_wait(&q->cv, &q->mu);
        if (q->consumed == q->produced)
            break;
        int i = (int)(q->consumed % NBUF);
        pthread_mutex_unlock(&q->mu);
        ls_sha256_update(q->sha, q->ptr[i], q->len[i]);
        pthread_mutex_lock(&q->mu);
        q->consumed++;
        pthread_cond_broadcast(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* Wait for a free buffer; returns its index. */
static int hashq_acquire(hashq *q)
{
    pthread_mutex_lock(&q->mu);
    while (q->produced - q->consumed >= NBUF)
        pthread_cond_wait(&q->cv, &q->mu);
    int i = (int)(q->produced % NBUF);
    pthread_mutex_unlock(&q->mu);
    return i;
}

static void hashq_submit(hashq *q, int i, const uint8_t *p, size_t len)
{
    pthread_mutex_lock(&q->mu);
    q->ptr[i] = p;
    q->len[i] = len;
    q->produced++;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

static void hashq_finish(hashq *q)
{
    pthread_mutex_lock(&q->mu);
    q->done = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* Does the WAL overlay any of pages [pgno, pgno+n) of the snapshot? */
static int overlaid(const ls_dbread *r, uint64_t pgno, uint32_t n)
{
    if (!r->use_wal)
        return 0;
    for (uint32_t i = 0; i < n; i++)
        if (ls_wal_scan_lookup(&r->scan, (uint32_t)(pgno + i)))
            return 1;
    return 0;
}

/* Copy [off, off+len) from in to out at the same offset, inside the kernel. */
static int copy_range(int in, int out, off_t off, size_t len)
{
    loff_t a = off, b = off;
    while (len > 0) {
        ssize_t k = copy_file_range(in, &a, out, &b, len, 0);
        if (k <= 0)
            return -1;
        len -= (size_t)k;
    }
    return 0;
}

/* Allocate the queue's buffers (bufsz bytes each) and digest, start the hasher. */
static int hashq_start(ls_ctx *ctx, hashq *q, size_t bufsz)
{
    for (int i = 0; i < NBUF; i++)
        if (!(q->buf[i] = malloc(bufsz)))
            return ls_err(ctx, LS_ENOMEM, "out of memory");
    if (!(q->sha = ls_sha256_new()))
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    if (pthread_create(&q->th, NULL, hash_main, q) != 0)
        return ls_err(ctx, LS_ERROR, "cannot start the hashing thread");
    q->started = 1;
    return 0;
}

/* Stop the hasher (if started) and free the queue; the hex digest goes to `hex` when given. */
static void hashq_stop(hashq *q, char *hex)
{
    if (q->started) {
        hashq_finish(q);
        pthread_join(q->th, NULL);
    }
    if (hex)
        ls_sha256_final(q->sha, hex);
    else
        ls_sha256_free(q->sha);
    for (int i = 0; i < NBUF; i++)
        free(q->buf[i]);
}

/*
 * The fast path's view of the source: ranges of whole pages that are in the
 * database file and not overlaid by the WAL are copied inside the kernel
 * (copy_file_range) and hashed from a read-only mapping of the file, so no
 * byte of them goes through a user buffer. Both are stable while the snapshot
 * is pinned (see db.c). Other ranges, or a kernel without copy_file_range,
 * take the buffered path.
 */
typedef struct src_view {
    int fd;         /* the database file (ls_db_fd_acquire), -1: no fast path */
    uint8_t *map;   /* read-only mapping of it, or NULL */
    size_t size;    /* its size */
    size_t usable;  /* bytes the fast path may use (0: disabled) */
} src_view;

/* Map the pinned source; without a descriptor or a mapping, the buffered path does all. */
static void src_view_open(ls_ctx *ctx, const ls_dbread *r, src_view *v)
{
    struct stat st;
    memset(v, 0, sizeof(*v));
    v->fd = ls_db_fd_acquire(ctx, r->path);
    if (v->fd >= 0 && fstat(v->fd, &st) == 0 && st.st_size > 0) {
        v->size = (size_t)st.st_size;
        v->map = mmap(NULL, v->size, PROT_READ, MAP_SHARED, v->fd, 0);
        if (v->map == MAP_FAILED) {
            v->map = NULL;
        } else {
            v->usable = v->size;
            madvise(v->map, v->size, MADV_SEQUENTIAL);
        }
    }
    ls_err_clear(ctx);
}

/* Unmap; the descriptor is released by the caller once the reader is closed. */
static void src_view_unmap(src_view *v)
{
    if (v->map)
        munmap(v->map, v->size);
    v->map = NULL;
}

/*
 * The copy loop of step 3: every page of the snapshot `r` to `fd` at its own
 * offset, in chunks of `per` pages through the queue's buffers (or the fast
 * path), with writeback started every WRITEBACK_EVERY bytes.
 */
static int copy_pages(ls_ctx *ctx, ls_dbread *r, hashq *q, src_view *v, uint32_t per, int fd,
                      const char *tmp, const ls_backup_opts *o)
{
    const uint32_t ps = r->page_size;
    uint64_t total = r->page_count, since_wb = 0, wb_from = 0;
    int rc;
    for (uint64_t pg = 1; pg <= total;) {
        uint32_t n = (uint32_t)(total - pg + 1 < per ? total - pg + 1 : per);
        size_t len = (size_t)n * ps;
        off_t off = (off_t)((pg - 1) * ps);
        int i = hashq_acquire(q);
        int direct = v->map && (uint64_t)off + len <= v->usable && !overlaid(r, pg, n);
        if (direct && copy_range(v->fd, fd, off, len) == 0) {
            hashq_submit(q, i, v->map + off, len);
        } else {
            if (direct)
                v->usable = 0; /* copy_file_range unusable here: buffered from now on */
            if ((rc = ls_dbread_pages(r, pg, n, q->buf[i])) != 0)
                return rc;
            if ((rc = ls_write_all(ctx, fd, q->buf[i], len, off, tmp)) != 0)
                return rc;
            hashq_submit(q, i, q->buf[i], len);
        }
        pg += n;
        since_wb += len;
        if (since_wb >= WRITEBACK_EVERY) {
            /* Start writeback now so the final fsync has little left to do. */
            sync_file_range(fd, (off64_t)wb_from, (off64_t)since_wb, SYNC_FILE_RANGE_WRITE);
            wb_from += since_wb;
            since_wb = 0;
        }
        if (ls_cancelled(ctx) || (o->progress && o->progress(o->progress_ud, pg - 1, total) != 0))
            return ls_err(ctx, LS_ECANCEL, "backup cancelled");
    }
    return 0;
}

/*
 * One attempt of step 3: copy a pinned snapshot of `src` to `fd` (empty, at
 * offset 0), hashing as it goes. LS_EBUSY means the snapshot was disturbed and
 * the attempt may be repeated.
 */
static int copy_snapshot(ls_ctx *ctx, const char *src, int fd, const char *tmp,
                         const ls_backup_opts *o, ls_backup_result *res)
{
    ls_dbread *r = NULL;
    hashq q;
    src_view v = {.fd = -1};
    int rc;

    memset(&q, 0, sizeof(q));
    pthread_mutex_init(&q.mu, NULL);
    pthread_cond_init(&q.cv, NULL);
    if ((rc = ls_dbread_open(ctx, src, o->busy_timeout_ms, &r)) != 0)
        goto cleanup;
    const uint32_t per = CHUNK_BYTES / r->page_size ? CHUNK_BYTES / r->page_size : 1;
    if ((rc = hashq_start(ctx, &q, (size_t)per * r->page_size)) != 0)
        goto cleanup;
    src_view_open(ctx, r, &v);
    if ((rc = copy_pages(ctx, r, &q, &v, per, fd, tmp, o)) != 0)
        goto cleanup;
    res->page_size = r->page_size;
    res->page_count = r->page_count;
    res->wal_frames = r->use_wal ? r->snap_frame : 0;
    res->size_bytes = r->page_count * r->page_size;

cleanup:
    hashq_stop(&q, rc == 0 ? res->sha256 : NULL);
    pthread_mutex_destroy(&q.mu);
    pthread_cond_destroy(&q.cv);
    src_view_unmap(&v);
    ls_dbread_close(r);
    ls_db_fd_release(v.fd); /* after the reader: with no connection left it closes now */
    return rc;
}

/* Size, pages and SHA-256 of a finished temp file written by SQLite. */
static int describe_file(ls_ctx *ctx, const char *tmp, ls_backup_result *res)
{
    ls_db_hdr hdr;
    struct stat st;
    int rc;
    if ((rc = ls_db_probe(ctx, tmp, &hdr)) != 0)
        return rc;
    if (stat(tmp, &st) != 0)
        return ls_err_errno(ctx, errno, "stat %s", tmp);
    res->page_size = hdr.page_size;
    res->size_bytes = (uint64_t)st.st_size;
    res->page_count = res->size_bytes / hdr.page_size;
    return ls_sha256_file(ctx, tmp, res->sha256);
}

/*
 * Step 3 when the write lock cannot be had (a writer holding it back to
 * back): SQLite's backup API in one step, under a plain read transaction,
 * which needs no write lock and never restarts. Slower, but it always ends.
 */
static int backup_api_copy(ls_ctx *ctx, const char *src, const char *tmp,
                           const ls_backup_opts *o, ls_backup_result *res)
{
    sqlite3 *s = NULL, *d = NULL;
    sqlite3_backup *b = NULL;
    int rc = ls_db_open(ctx, src, 1, o->busy_timeout_ms, &s);
    if (!rc)
        rc = ls_db_open(ctx, tmp, 0, o->busy_timeout_ms, &d);
    if (!rc)
        rc = ls_db_exec(ctx, d, tmp, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF");
    if (!rc && !(b = sqlite3_backup_init(d, "main", s, "main")))
        rc = ls_err(ctx, ls_db_code(sqlite3_errcode(d)), "backup %s: %s", src, sqlite3_errmsg(d));
    if (!rc) {
        int src_rc = sqlite3_backup_step(b, -1);
        if (src_rc != SQLITE_DONE)
            rc = ls_err(ctx, ls_db_code(src_rc), "backup %s: %s", src, sqlite3_errstr(src_rc));
    }
    if (b && sqlite3_backup_finish(b) != SQLITE_OK && !rc)
        rc = ls_err(ctx, ls_db_code(sqlite3_errcode(d)), "backup %s: %s", src, sqlite3_errmsg(d));
    sqlite3_close(d);
    sqlite3_close(s);
    return rc ? rc : describe_file(ctx, tmp, res);
}

/* Step 3 with `compact`: VACUUM INTO a file in the private temp directory, then hash it. */
static int vacuum_into(ls_ctx *ctx, const char *src, const char *tmp, const ls_backup_opts *o,
                       ls_backup_result *res)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = ls_db_open(ctx, src, 1, o->busy_timeout_ms, &db);
    if (rc)
        return rc;
    int src_rc = sqlite3_prepare_v2(db, "VACUUM INTO ?1", -1, &st, NULL);
    if (src_rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, tmp, -1, SQLITE_STATIC);
        src_rc = sqlite3_step(st);
        if (src_rc == SQLITE_DONE)
            src_rc = SQLITE_OK;
    }
    if (src_rc != SQLITE_OK)
        rc = ls_err(ctx, ls_db_code(src_rc), "VACUUM INTO %s: %s", tmp, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc ? rc : describe_file(ctx, tmp, res);
}

/* Create the destination's directory (one level, 0700) if it is missing. */
static int mkdir_dest_dir(ls_ctx *ctx, const char *dest)
{
    char dir[PATH_MAX];
    ls_path_split(dest, dir, sizeof(dir), NULL, 0);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return ls_err_errno(ctx, errno, "create backup directory %s", dir);
    return 0;
}

/* Step 1: the source and the destination, checked before anything is written. */
static int check_paths(ls_ctx *ctx, const char *src, const char *dest, const ls_backup_opts *o,
                       ls_backup_result *res, struct stat *sst)
{
    char abs[PATH_MAX];
    int rc;
    if ((rc = ls_db_resolve(ctx, src, abs, sizeof(abs), sst)) != 0 ||
        (rc = ls_strdup(ctx, &res->source, abs)) != 0)
        return rc;
    if (ls_path_exists(dest))
        return ls_err(ctx, LS_EEXIST, "%s: destination exists", dest);
    if (o->make_dir && (rc = mkdir_dest_dir(ctx, dest)) != 0)
        return rc;
    if ((rc = ls_abspath_dup(ctx, dest, &res->destination)) != 0)
        return rc;
    if (strcmp(res->source, res->destination) == 0)
        return ls_err(ctx, LS_EUSAGE, "%s: source and destination are the same file", dest);
    return 0;
}

/*
 * Step 3 without `compact`: copy_snapshot, started over while the snapshot is
 * disturbed (at most MAX_ATTEMPTS), or SQLite's backup API when the write lock
 * cannot be had.
 */
static int copy_with_retries(ls_ctx *ctx, const ls_tmpfile *t, const ls_backup_opts *o,
                             ls_backup_result *res)
{
    for (int attempt = 0;; attempt++) {
        int rc = copy_snapshot(ctx, res->source, t->fd, t->path, o, res);
        if (rc == LS_EWRITELOCK) {
            ls_log(ctx, LS_LOG_INFO, "backup through SQLite's backup API db=%s reason=\"%s\"",
                   res->source, ls_errmsg(ctx));
            ls_err_clear(ctx);
            return ftruncate(t->fd, 0) != 0 ? ls_err_errno(ctx, errno, "truncate %s", t->path)
                                            : backup_api_copy(ctx, res->source, t->path, o, res);
        }
        if (rc != LS_EBUSY || attempt + 1 >= MAX_ATTEMPTS || ls_cancelled(ctx))
            return rc;
        ls_log(ctx, LS_LOG_INFO, "backup restarting db=%s reason=\"%s\" attempt=%d", res->source,
               ls_errmsg(ctx), attempt + 2);
        res->retries++;
        ls_err_clear(ctx);
        if (ftruncate(t->fd, 0) != 0)
            return ls_err_errno(ctx, errno, "truncate %s", t->path);
    }
}

int ls_backup(ls_ctx *ctx, const char *src, const char *dest, const ls_backup_opts *opts,
              ls_backup_result *res)
{
    ls_backup_opts o = {0};
    ls_tmpfile t = LS_TMPFILE_INIT;
    uint64_t t0 = ls_now_ms();
    struct stat sst;
    int rc;

    if (opts)
        o = *opts;
    memset(res, 0, sizeof(*res));
    res->compact = o.compact;
    ls_err_clear(ctx);

    /* 1. Source and destination checks, before anything is written. */
    if ((rc = check_paths(ctx, src, dest, &o, res, &sst)) != 0)
        return rc;

    /* 2. The temp file, with the source's permission bits (for VACUUM INTO, in a
     *    private 0700 directory: SQLite creates its files with its own modes).
     *    Its begin checks the siblings (ls_publish_check) and sweeps. */
    if ((rc = ls_tmpfile_begin(ctx, &t, res->destination, sst.st_mode & 0777,
                               o.compact ? LS_TMPFILE_DIR : 0)) != 0)
        return rc;

    /* 3. Copy (or VACUUM INTO) and hash. */
    if (o.compact)
        rc = vacuum_into(ctx, res->source, t.path, &o, res);
    else
        rc = copy_with_retries(ctx, &t, &o, res);

    /* 4. Durable, then visible. */
    if (!rc)
        rc = ls_tmpfile_commit(ctx, &t);
    if (!rc) {
        res->elapsed_ms = ls_now_ms() - t0;
        ls_log(ctx, LS_LOG_INFO, "backup done db=%s dest=%s pages=%llu bytes=%llu ms=%llu",
               res->source, res->destination, (unsigned long long)res->page_count,
               (unsigned long long)res->size_bytes, (unsigned long long)res->elapsed_ms);
    }
    ls_tmpfile_abort(&t);
    return rc;
}

void ls_backup_result_free(ls_backup_result *res)
{
    if (!res)
        return;
    free(res->source);
    free(res->destination);
    res->source = res->destination = NULL;
}

int ls_backup_path(ls_ctx *ctx, const char *src, const char *dir, int64_t t, int mkdir_it,
                   char *out, size_t outsz)
{
    char sdir[PATH_MAX], base[PATH_MAX], bdir[PATH_MAX], abs[PATH_MAX];
    int rc = ls_abspath(ctx, src, abs, sizeof(abs));
    if (rc)
        return rc;
    ls_path_split(abs, sdir, sizeof(sdir), base, sizeof(base));
    static const char *exts[] = {".db", ".sqlite3", ".sqlite", ".db3", NULL};
    size_t blen = strlen(base);
    for (int i = 0; exts[i]; i++) {
        size_t elen = strlen(exts[i]);
        if (blen > elen && strcmp(base + blen - elen, exts[i]) == 0) {
            base[blen - elen] = '\0';
            break;
        }
    }
    int n = dir && *dir ? snprintf(bdir, sizeof(bdir), "%s", dir)
                        : snprintf(bdir, sizeof(bdir), "%.*s/backups", PATH_MAX - 16, sdir);
    if (n < 0 || (size_t)n >= sizeof(bdir))
        return ls_err(ctx, LS_EUSAGE, "path too long: %s", dir ? dir : sdir);
    if (mkdir_it && mkdir(bdir, 0700) != 0 && errno != EEXIST)
        return ls_err_errno(ctx, errno, "create backup directory %s", bdir);
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    char stamp[32];
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
    n = snprintf(out, outsz, "%s/%s-%s.db", bdir, base, stamp);
    if (n < 0 || (size_t)n >= outsz)
        return ls_err(ctx, LS_EUSAGE, "path too long in %s", bdir);
    return 0;
}
