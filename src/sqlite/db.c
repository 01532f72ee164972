/*
 * db.c - the source side: probing a database file, opening litesafe's own
 * connections, and the consistent page reader (see db.h).
 *
 * HOW THE READER PINS A SNAPSHOT (ls_dbread_open)
 *
 *   1. Probe the file (exists, non-empty, SQLite header) and open two
 *      connections: `w` only to take the write lock, `rd` to hold the read
 *      transaction. Neither checkpoints on close.
 *   2. Pre-scan the WAL without any lock: the bulk of the frames is read
 *      while the application keeps writing.
 *   3. BEGIN IMMEDIATE on `w`: no transaction can commit now. Scan the frames
 *      committed since step 2 (few) and read SQLite's wal-index header, whose
 *      mxFrame is the exact end of the committed WAL.
 *   4. Start the read transaction on `rd`. Its snapshot is that same mxFrame,
 *      since nothing can commit in between. Check that SQLite's page count
 *      matches what the WAL says.
 *   5. ROLLBACK `w`: writers go on. Because `rd` holds a read mark, the WAL
 *      cannot restart, and a checkpoint copies back at most the frames of our
 *      snapshot, which never changes what our snapshot sees in the database
 *      file. The one exception is a snapshot whose WAL was fully checkpointed
 *      (nBackfill == mxFrame): SQLite then lets writers restart the WAL, but
 *      the database file alone holds the snapshot, so the WAL is not read.
 *   6. Pages come from the database file, overlaid by the pages whose newest
 *      committed frame <= mxFrame is in the WAL; each such frame is read and
 *      its checksum re-verified.
 * A rollback-journal database is simpler: the read transaction's SHARED lock
 * keeps every writer out of the file until the reader ends.
 */
#include "db.h"

#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char SQLITE_MAGIC[16] = "SQLite format 3";

int ls_db_hdr_decode(const uint8_t *b, ls_db_hdr *hdr)
{
    memset(hdr, 0, sizeof(*hdr));
    if (memcmp(b, SQLITE_MAGIC, 16) != 0)
        return LS_ENOTDB;
    uint32_t ps = ((uint32_t)b[16] << 8) | b[17];
    if (ps == 1)
        ps = 65536;
    if (ps < 512 || ps > 65536 || (ps & (ps - 1)))
        return LS_ENOTDB;
    hdr->page_size = ps;
    hdr->wal = b[18] == 2 && b[19] == 2;
    hdr->page_count = ls_get32be(b + 28);
    hdr->freelist_count = ls_get32be(b + 36);
    hdr->schema_cookie = ls_get32be(b + 40);
    hdr->text_encoding = ls_get32be(b + 56);
    hdr->size_valid = ls_get32be(b + 92) == ls_get32be(b + 24);
    return 0;
}

sqlite3_file *ls_db_file(sqlite3 *db)
{
    sqlite3_file *f = NULL;
    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &f) != SQLITE_OK)
        return NULL;
    return f && f->pMethods ? f : NULL;
}

/*
 * THE DESCRIPTORS OF ls_db_fd_acquire
 *
 * Closing any descriptor of a file drops every POSIX lock the process holds on
 * it, the locks of SQLite's connections included (db.h). So a descriptor of
 * ours is closed only at a moment when no SQLite connection of this process
 * can hold a lock on its file, and none can take one before the close:
 *   a. no other descriptor of the process refers to the file (a scan of
 *      /proc/self/fd, by device and inode). Every connection's descriptor
 *      shows there, and so do the ones SQLite's unix VFS keeps open after a
 *      connection closed while others held locks (its deferred closes). With
 *      none, no lock is held: the close of the last one dropped them all, and
 *      ours never takes any;
 *   b. SQLite's unix VFS mutex (SQLITE_MUTEX_STATIC_VFS1, the one os_unix.c
 *      takes to register an opened file with its inode) is held from the
 *      scan to the close: a connection opening the file meanwhile may already
 *      have a descriptor the scan missed, but it cannot lock through it
 *      before the VFS registered it, which waits for us.
 * Otherwise the descriptor stays open, idle, and is tried again at every later
 * acquire and release (of any file). Descriptors are shared per file (device,
 * inode) with a reference count, in a list that grows as needed: nothing to
 * run out of, and an idle descriptor outlives the last reader only while some
 * other descriptor of its file is open in the process (at most one per
 * database the process has open, not one per database it ever read; a deleted
 * database's space is freed once its last connection closes). Where
 * /proc/self/fd cannot be read, nothing can be shown and idle descriptors stay
 * open (one per file, reused).
 */
typedef struct db_fd {
    dev_t dev;     /* the file's device */
    ino_t ino;     /* and inode */
    int fd;        /* our read-only descriptor of it */
    unsigned refs; /* acquired and not yet released (0: idle, to close when safe) */
    int shared;    /* scratch of close_idle: another descriptor refers to the file */
} db_fd;

static struct {
    db_fd *v;       /* the descriptors, in no order */
    size_t n;       /* used */
    size_t cap;     /* allocated */
} db_fds;
static pthread_mutex_t db_fds_mu = PTHREAD_MUTEX_INITIALIZER;

/* 1 if fd is one of the registry's own descriptors (caller holds db_fds_mu). */
static int is_registry_fd(int fd)
{
    for (size_t i = 0; i < db_fds.n; i++)
        if (db_fds.v[i].fd == fd)
            return 1;
    return 0;
}

/*
 * Close the idle descriptors whose file no other descriptor of the process
 * refers to (a and b above). Caller holds db_fds_mu; takes SQLite's VFS mutex
 * inside it (the only order in which the two are ever held).
 */
static void close_idle(void)
{
    size_t idle = 0;
    for (size_t i = 0; i < db_fds.n; i++) {
        db_fds.v[i].shared = 0;
        idle += db_fds.v[i].refs == 0;
    }
    if (idle == 0)
        return;
    sqlite3_mutex *vfs = sqlite3_mutex_alloc(SQLITE_MUTEX_STATIC_VFS1);
    sqlite3_mutex_enter(vfs);
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char *end = NULL;
            long k = strtol(e->d_name, &end, 10);
            struct stat st;
            if (end == e->d_name || *end || k == dirfd(d) || is_registry_fd((int)k) ||
                fstat((int)k, &st) != 0)
                continue;
            for (size_t i = 0; i < db_fds.n; i++)
                if (db_fds.v[i].dev == st.st_dev && db_fds.v[i].ino == st.st_ino)
                    db_fds.v[i].shared = 1;
        }
        closedir(d);
        for (size_t i = db_fds.n; i-- > 0;) {
            if (db_fds.v[i].refs || db_fds.v[i].shared)
                continue;
            close(db_fds.v[i].fd);
            db_fds.v[i] = db_fds.v[--db_fds.n];
        }
    }
    sqlite3_mutex_leave(vfs);
}

int ls_db_fd_acquire(ls_ctx *ctx, const char *path)
{
    struct stat st, fst;
    int fd = -1;
    if (stat(path, &st) != 0) {
        ls_err_errno(ctx, errno, "%s", path);
        return -1;
    }
    pthread_mutex_lock(&db_fds_mu);
    for (size_t i = 0; i < db_fds.n && fd < 0; i++)
        if (db_fds.v[i].dev == st.st_dev && db_fds.v[i].ino == st.st_ino) {
            db_fds.v[i].refs++;
            fd = db_fds.v[i].fd;
        }
    if (fd < 0) {
        /* Room first: a descriptor once open may only be closed as above. */
        if (db_fds.n == db_fds.cap) {
            size_t cap = db_fds.cap ? 2 * db_fds.cap : 8;
            db_fd *v = realloc(db_fds.v, cap * sizeof(*v));
            if (!v) {
                pthread_mutex_unlock(&db_fds_mu);
                ls_err(ctx, LS_ENOMEM, "out of memory");
                return -1;
            }
            db_fds.v = v;
            db_fds.cap = cap;
        }
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0 && fstat(fd, &fst) == 0) {
            /* Replaced between stat and open: registered idle, not used. */
            int same = fst.st_dev == st.st_dev && fst.st_ino == st.st_ino;
            db_fds.v[db_fds.n++] = (db_fd){fst.st_dev, fst.st_ino, fd, same ? 1u : 0u, 0};
            if (!same)
                fd = -1;
        } else if (fd >= 0) {
            db_fds.v[db_fds.n++] = (db_fd){st.st_dev, st.st_ino, fd, 0, 0};
            fd = -1;
        }
    }
    close_idle();
    pthread_mutex_unlock(&db_fds_mu);
    if (fd < 0)
        ls_err(ctx, LS_EIO, "%s: no descriptor for a direct copy", path);
    return fd;
}

void ls_db_fd_release(int fd)
{
    if (fd < 0)
        return;
    pthread_mutex_lock(&db_fds_mu);
    for (size_t i = 0; i < db_fds.n; i++)
        if (db_fds.v[i].fd == fd && db_fds.v[i].refs > 0) {
            db_fds.v[i].refs--;
            break;
        }
    close_idle();
    pthread_mutex_unlock(&db_fds_mu);
}

int ls_db_file_read(ls_ctx *ctx, sqlite3_file *f, void *buf, size_t n, uint64_t off, size_t *got,
                    const char *what)
{
    sqlite3_int64 size = 0;
    if (f->pMethods->xFileSize(f, &size) != SQLITE_OK)
        return ls_err(ctx, LS_EIO, "size of %s", what);
    size_t have = (uint64_t)size <= off ? 0 : (uint64_t)size - off < n ? (size_t)(size - off) : n;
    if (have > 0) {
        int rc = f->pMethods->xRead(f, buf, (int)have, (sqlite3_int64)off);
        if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ)
            return ls_err(ctx, LS_EIO, "read %s at offset %llu: %s", what,
                          (unsigned long long)off, sqlite3_errstr(rc));
    }
    if (have < n)
        memset((char *)buf + have, 0, n - have);
    if (got)
        *got = have;
    else if (have < n)
        return ls_err(ctx, LS_EIO, "read %s: unexpected end of file at offset %llu", what,
                      (unsigned long long)(off + have));
    return 0;
}

int ls_db_shm_info(sqlite3 *db, ls_shm_info *out)
{
    sqlite3_file *f = ls_db_file(db);
    volatile void *p = NULL;
    if (!f || f->pMethods->iVersion < 2 || !f->pMethods->xShmMap)
        return LS_ENOENT;
    /* Region 0 of SQLite's 32 KiB wal-index pages holds the header. */
    if (f->pMethods->xShmMap(f, 0, 32768, 0, &p) != SQLITE_OK || !p)
        return LS_ENOENT;
    uint8_t buf[LS_SHM_HDRSIZE];
    int rc = LS_EBUSY;
    for (int i = 0; i < 5 && rc == LS_EBUSY; i++) {
        __sync_synchronize();
        memcpy(buf, (const void *)p, sizeof(buf));
        __sync_synchronize();
        rc = ls_shm_decode(buf, out);
    }
    return rc;
}

int ls_db_probe(ls_ctx *ctx, const char *path, ls_db_hdr *hdr)
{
    struct stat st;
    sqlite3 *db = NULL;
    uint8_t b[100];
    size_t got = 0;
    int rc;

    if (stat(path, &st) != 0)
        return ls_err_errno(ctx, errno, "%s", path);
    if (!S_ISREG(st.st_mode))
        return ls_err(ctx, LS_ENOTDB, "%s: not a regular file", path);
    if (st.st_size == 0)
        return ls_err(ctx, LS_ENOTDB, "%s: empty file, not a database", path);
    /* Through SQLite's VFS, never a bare open()/close() (see db.h). */
    rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    sqlite3_file *f = rc == SQLITE_OK ? ls_db_file(db) : NULL;
    if (!f) {
        rc = ls_err(ctx, rc == SQLITE_OK ? LS_EIO : ls_db_code(rc), "open %s: %s", path,
                    db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return rc;
    }
    rc = ls_db_file_read(ctx, f, b, sizeof(b), 0, &got, path);
    sqlite3_close(db);
    if (rc)
        return rc;
    if (got < sizeof(b) || ls_db_hdr_decode(b, hdr) != 0)
        return ls_err(ctx, LS_ENOTDB,
                      "%s: file is not a database (its header is not an SQLite database header)",
                      path);
    return 0;
}

int ls_db_resolve(ls_ctx *ctx, const char *path, char *abs, size_t abssz, struct stat *st)
{
    ls_db_hdr hdr;
    int rc;
    if ((rc = ls_abspath(ctx, path, abs, abssz)) != 0 || (rc = ls_db_probe(ctx, abs, &hdr)) != 0)
        return rc;
    if (stat(abs, st) != 0)
        return ls_err_errno(ctx, errno, "%s", abs);
    return 0;
}

int ls_db_code(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
        return 0;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return LS_EBUSY;
    case SQLITE_NOTADB:
        return LS_ENOTDB;
    case SQLITE_CORRUPT:
        return LS_ECORRUPT;
    case SQLITE_CANTOPEN:
        return LS_ENOENT;
    case SQLITE_FULL:
        return LS_ENOSPC;
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
        return LS_EPERM;
    case SQLITE_NOMEM:
        return LS_ENOMEM;
    case SQLITE_IOERR:
        return LS_EIO;
    default:
        return LS_ERROR;
    }
}

int ls_db_open(ls_ctx *ctx, const char *path, int readonly, int busy_ms, sqlite3 **out)
{
    sqlite3 *db = NULL;
    int flags = (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        int code = ls_err(ctx, ls_db_code(rc), "open %s: %s", path,
                          db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return code;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, busy_ms > 0 ? busy_ms : 5000);
    sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    *out = db;
    return 0;
}

int ls_db_exec(ls_ctx *ctx, sqlite3 *db, const char *path, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK) {
        int code = ls_err(ctx, ls_db_code(rc), "%s: %s", path, err ? err : sqlite3_errstr(rc));
        sqlite3_free(err);
        return code;
    }
    return 0;
}

/* Step a one-value statement and return its integer; -1 on failure (message set). */
static int64_t query_int(ls_ctx *ctx, sqlite3 *db, const char *path, const char *sql, int *rcp)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            v = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            v = 0;
            rc = SQLITE_OK;
        }
    }
    if (rc != SQLITE_OK)
        *rcp = ls_err(ctx, ls_db_code(rc), "%s: %s", path, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return v;
}

/*
 * Busy handler for litesafe's short write-lock grabs (pinning, checkpoint
 * cycles): retry every 100-400 microseconds until the deadline. SQLite's own
 * handler sleeps 1, 2, 5, 10 ... ms between attempts, which a writer that
 * takes the lock back to back wins every time.
 */
static int fast_busy_cb(void *arg, int count)
{
    ls_fast_busy *b = arg;
    (void)count;
    if (ls_now_ms() >= b->deadline_ms)
        return 0;
    b->seed = b->seed * 1103515245u + 12345u;
    usleep(100 + (b->seed >> 16) % 300);
    return 1;
}

void ls_db_fast_busy(sqlite3 *db, ls_fast_busy *b, int ms)
{
    b->deadline_ms = ls_now_ms() + (uint64_t)(ms > 0 ? ms : 0);
    b->seed ^= (uint32_t)getpid() ^ (uint32_t)ls_now_ms();
    sqlite3_busy_handler(db, fast_busy_cb, b);
}

/* Is fd still the file at path (not deleted and re-created meanwhile)? */
static int same_file(int fd, const char *path)
{
    struct stat a, b;
    return stat(path, &a) == 0 && fstat(fd, &b) == 0 && a.st_ino == b.st_ino &&
           a.st_dev == b.st_dev;
}

/*
 * Steps 2-5 of the pinning procedure for a WAL database. Called with `rd`
 * open and idle. On success `rd` holds the read transaction.
 */
static int pin_wal_snapshot(ls_dbread *r, int busy_ms)
{
    ls_ctx *ctx = r->ctx;
    sqlite3 *w = NULL;
    int rc, locked = 0;
    char wal[PATH_MAX + 8];
    snprintf(wal, sizeof(wal), "%s-wal", r->path);

    /* 2. Pre-scan without locks (the file may not exist yet). */
    r->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
    if (r->wal_fd >= 0 && (rc = ls_wal_scan_fd(ctx, &r->scan, r->wal_fd, wal)) != 0)
        goto cleanup;

    /* 3. Hold off writers, finish the scan, read the wal-index header. */
    if ((rc = ls_db_open(ctx, r->path, 0, busy_ms, &w)) != 0)
        goto cleanup;
    ls_fast_busy fb = {0, 0};
    ls_db_fast_busy(w, &fb, busy_ms > 0 ? busy_ms : 5000);
    if ((rc = ls_db_exec(ctx, w, r->path, "BEGIN IMMEDIATE")) != 0) {
        if (rc == LS_EBUSY)
            rc = LS_EWRITELOCK;
        goto cleanup;
    }
    locked = 1;
    /* The WAL may have been deleted and re-created (the application's last
     * connection closing) since the pre-scan: scan the file that is there now. */
    if (r->wal_fd >= 0 && !same_file(r->wal_fd, wal)) {
        close(r->wal_fd);
        r->wal_fd = -1;
        ls_wal_scan_reset(&r->scan);
    }
    if (r->wal_fd < 0)
        r->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
    if (r->wal_fd >= 0 && (rc = ls_wal_scan_fd(ctx, &r->scan, r->wal_fd, wal)) != 0)
        goto cleanup;

    /* 4. The read transaction; its snapshot is the end of the committed WAL. */
    if ((rc = ls_db_exec(ctx, r->rd, r->path, "BEGIN")) != 0)
        goto cleanup;
    rc = 0;
    query_int(ctx, r->rd, r->path, "SELECT count(*) FROM sqlite_master", &rc);
    if (rc)
        goto cleanup;
    int64_t pages = query_int(ctx, r->rd, r->path, "PRAGMA page_count", &rc);
    if (rc)
        goto cleanup;
    r->page_count = (uint64_t)pages;

    ls_shm_info si;
    int have_si = 0;
    if (ls_db_shm_info(r->rd, &si) == 0) {
        uint8_t salts[8];
        ls_put32be(salts, r->scan.hdr.salt1);
        ls_put32be(salts + 4, r->scan.hdr.salt2);
        have_si = si.mx_frame == 0 || (r->scan.have_hdr && memcmp(salts, si.salt, 8) == 0);
        if (!have_si) {
            /* The index describes another WAL than the file scanned: never guess. */
            rc = ls_err(ctx, LS_EBUSY, "%s: the WAL and its index disagree; retrying", r->path);
            goto cleanup;
        }
    }
    ls_err_clear(ctx);
    if (have_si && si.mx_frame < r->scan.commit_frame) {
        /* Frames past SQLite's mxFrame are not committed: rescan up to it. */
        ls_wal_scan_reset(&r->scan);
        r->scan.limit = si.mx_frame;
        if (si.mx_frame && (rc = ls_wal_scan_fd(ctx, &r->scan, r->wal_fd, wal)) != 0)
            goto cleanup;
    }
    if (have_si && si.mx_frame != r->scan.commit_frame) {
        rc = ls_err(ctx, LS_ECORRUPT,
                    "%s: the WAL holds %llu committed frames but SQLite's index says %u",
                    r->path, (unsigned long long)r->scan.commit_frame, si.mx_frame);
        goto cleanup;
    }
    r->snap_frame = r->scan.commit_frame;
    if (r->snap_frame && r->scan.commit_dbsize != r->page_count) {
        rc = ls_err(ctx, LS_EBUSY, "%s: snapshot changed while it was pinned", r->path);
        goto cleanup;
    }
    /* 5. A fully checkpointed WAL: the database file is the snapshot. */
    r->use_wal = r->snap_frame > 0 && !(have_si && si.n_backfill >= si.mx_frame);

cleanup:
    if (locked)
        sqlite3_exec(w, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(w);
    return rc;
}

int ls_dbread_open(ls_ctx *ctx, const char *path, int busy_ms, ls_dbread **out)
{
    ls_db_hdr hdr;
    ls_dbread *r = NULL;
    int rc;

    *out = NULL;
    /* 1. Probe, then open the reader's connection. */
    if ((rc = ls_db_probe(ctx, path, &hdr)) != 0)
        return rc;
    r = calloc(1, sizeof(*r));
    if (!r)
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    r->ctx = ctx;
    r->wal_fd = -1;
    ls_strlcpy(r->path, path, sizeof(r->path));
    ls_wal_scan_init(&r->scan, 1);
    r->wal_mode = hdr.wal;
    r->page_size = hdr.page_size;

    if ((rc = ls_db_open(ctx, path, 0, busy_ms, &r->rd)) != 0)
        goto fail;
    if (!(r->file = ls_db_file(r->rd))) {
        rc = ls_err(ctx, LS_EIO, "%s: no file handle", path);
        goto fail;
    }
    if (r->wal_mode) {
        if ((rc = pin_wal_snapshot(r, busy_ms)) != 0)
            goto fail;
        if (r->scan.have_hdr && r->scan.hdr.page_size != r->page_size) {
            rc = ls_err(ctx, LS_ECORRUPT, "%s: WAL page size %u differs from the database's %u",
                        path, r->scan.hdr.page_size, r->page_size);
            goto fail;
        }
    } else {
        if ((rc = ls_db_exec(ctx, r->rd, path, "BEGIN")) != 0)
            goto fail;
        int64_t pages = query_int(ctx, r->rd, path, "SELECT count(*) FROM sqlite_master", &rc);
        if (!rc)
            pages = query_int(ctx, r->rd, path, "PRAGMA page_count", &rc);
        if (rc)
            goto fail;
        r->page_count = (uint64_t)pages;
    }
    if (r->use_wal) {
        r->frame = malloc(LS_WAL_FRAME_HDRSIZE + r->page_size);
        if (!r->frame) {
            rc = ls_err(ctx, LS_ENOMEM, "out of memory");
            goto fail;
        }
    }
    *out = r;
    return 0;

fail:
    ls_dbread_close(r);
    return rc;
}

int ls_dbread_pages(ls_dbread *r, uint64_t pgno, uint32_t n, uint8_t *buf)
{
    ls_ctx *ctx = r->ctx;
    const size_t ps = r->page_size;
    size_t got = 0;
    int rc;

    if (ls_cancelled(ctx))
        return ls_err(ctx, LS_ECANCEL, "cancelled");
    /* Pages past the end of the database file exist only in the WAL. */
    rc = ls_db_file_read(ctx, r->file, buf, n * ps, (pgno - 1) * ps, &got, r->path);
    if (rc)
        return rc;
    if (got < n * ps)
        memset(buf + got, 0, n * ps - got);
    uint64_t need_from_file_end = got / ps; /* pages fully read from the file */
    for (uint32_t i = 0; i < n; i++) {
        const ls_wal_page *wp = r->use_wal ? ls_wal_scan_lookup(&r->scan, (uint32_t)(pgno + i)) : NULL;
        if (!wp) {
            if (i >= need_from_file_end)
                return ls_err(ctx, LS_ECORRUPT, "%s: page %llu is neither in the file nor the WAL",
                              r->path, (unsigned long long)(pgno + i));
            continue;
        }
        off_t off = (off_t)ls_wal_frame_offset(r->page_size, wp->frame);
        rc = ls_pread_full(ctx, r->wal_fd, r->frame, LS_WAL_FRAME_HDRSIZE + ps, off, NULL,
                           "WAL");
        if (rc)
            return rc;
        uint32_t ck[2] = {wp->prev_ck[0], wp->prev_ck[1]};
        if (ls_get32be(r->frame) != wp->pgno || !ls_wal_frame_check(&r->scan.hdr, r->frame, ck))
            return ls_err(ctx, LS_EBUSY, "%s: WAL frame %u changed during the copy", r->path,
                          wp->frame);
        memcpy(buf + i * ps, r->frame + LS_WAL_FRAME_HDRSIZE, ps);
    }
    return 0;
}

void ls_dbread_close(ls_dbread *r)
{
    if (!r)
        return;
    if (r->rd) {
        sqlite3_exec(r->rd, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(r->rd);
    }
    if (r->wal_fd >= 0)
        close(r->wal_fd);
    ls_wal_scan_free(&r->scan);
    free(r->frame);
    free(r);
}
