/*
 * spool.c - the local spool of committed WAL frames (see spool.h).
 *
 * Invariants:
 *   - A spool file only ever grows by whole committed transactions, appended
 *     after their checksums were verified against the previous frame.
 *   - The `generation` file is replaced atomically and names a generation
 *     whose directory exists.
 *   - After a crash, ls_spool_open() trusts nothing past the last commit
 *     frame whose checksum chain verifies.
 *   - Every directory of the spool and every index file's name are fsynced
 *     into their parent when made (ls_mkdir_p, open_index), before the
 *     generation file names them: after a power cut the spool is found again,
 *     up to its last fsync (tests/integration/test_powercut.py).
 *   - `older` + `size` is what the spool holds of the current generation:
 *     counted at open, grown by each finished index, shrunk by ls_spool_gc.
 */
#define _GNU_SOURCE
#include "spool.h"

#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Remove a directory tree (best effort). */
static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rm_rf(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(path);
}

void ls_spool_file(const char *dir, const char *gen, uint32_t index, char *out, size_t n)
{
    snprintf(out, n, "%s/generations/%s/wal/%08x.wal", dir, gen, index);
}

void ls_spool_default_dir(const char *db, char *out, size_t n)
{
    char dir[PATH_MAX], base[PATH_MAX];
    ls_path_split(db, dir, sizeof(dir), base, sizeof(base));
    snprintf(out, n, "%.*s/.%.*s-litesafe", PATH_MAX / 2, dir, PATH_MAX / 4, base);
}

void ls_spool_path(const ls_spool *sp, uint32_t index, char *out, size_t n)
{
    ls_spool_file(sp->dir, sp->gen, index, out, n);
}

static void reset_index_state(ls_spool *sp)
{
    if (sp->fd >= 0)
        close(sp->fd);
    sp->fd = -1;
    sp->size = 0;
    memset(&sp->hdr, 0, sizeof(sp->hdr));
    sp->ck[0] = sp->ck[1] = 0;
    sp->dbsize = 0;
    sp->frames = 0;
    sp->dirty = 0;
}

/* Open (creating) the spool file of the current index and recover its state. */
static int open_index(ls_ctx *ctx, ls_spool *sp)
{
    char path[PATH_MAX];
    struct stat st;
    ls_wal_scan scan;
    int rc = 0;

    reset_index_state(sp);
    ls_spool_path(sp, sp->index, path, sizeof(path));
    sp->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (sp->fd < 0)
        return ls_err_errno(ctx, errno, "open spool %s", path);
    if (fstat(sp->fd, &st) != 0)
        return ls_err_errno(ctx, errno, "stat spool %s", path);
    /* A new index file: its name is durable before anything is shipped from it. */
    if (st.st_size == 0)
        return ls_fsync_parent(ctx, path);
    ls_wal_scan_init(&scan, 0);
    rc = ls_wal_scan_fd(ctx, &scan, sp->fd, path);
    if (rc == 0 && scan.have_hdr) {
        sp->hdr = scan.hdr;
        sp->frames = scan.commit_frame;
        sp->size = scan.commit_frame ? ls_wal_frame_offset(scan.hdr.page_size,
                                                           scan.commit_frame + 1)
                                     : LS_WAL_HDRSIZE;
        sp->ck[0] = scan.commit_ck[0];
        sp->ck[1] = scan.commit_ck[1];
        sp->dbsize = scan.commit_dbsize;
    }
    ls_wal_scan_free(&scan);
    if (rc)
        return rc;
    /* Cut a torn or uncommitted tail back to the last commit. */
    if ((uint64_t)st.st_size != sp->size && ftruncate(sp->fd, (off_t)sp->size) != 0)
        return ls_err_errno(ctx, errno, "truncate spool %s", path);
    return 0;
}

/*
 * 1 with *idx when `name` is a spool file's name as ls_spool_file() writes
 * it: exactly 8 lowercase hex digits and ".wal". Anything else (sscanf's %x
 * would take " 1", "-1", "0x1" or "A" too) is not a spool file.
 */
static int spool_name_index(const char *name, uint32_t *idx)
{
    uint32_t v = 0;
    for (int i = 0; i < 8; i++) {
        char c = name[i];
        if (c >= '0' && c <= '9')
            v = v << 4 | (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v << 4 | (uint32_t)(c - 'a' + 10);
        else
            return 0;
    }
    if (strcmp(name + 8, ".wal") != 0)
        return 0;
    *idx = v;
    return 1;
}

/* Newest spool index of generation `gen` into *best, -1 if none; 0 or the failure to list. */
static int newest_index_of(ls_ctx *ctx, const char *dir, const char *gen, int64_t *best)
{
    char wal[PATH_MAX];
    snprintf(wal, sizeof(wal), "%s/generations/%s/wal", dir, gen);
    *best = -1;
    DIR *d = opendir(wal);
    if (!d) /* only a missing directory means "no spool file": EMFILE, ENOMEM, EIO do not */
        return errno == ENOENT ? 0 : ls_err_errno(ctx, errno, "open %s", wal);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint32_t idx;
        if (spool_name_index(e->d_name, &idx) && (int64_t)idx > *best)
            *best = idx;
    }
    closedir(d);
    return 0;
}

/* Bytes of the spool files of generation `gen` with an index in [from, below). */
static uint64_t bytes_between(const char *dir, const char *gen, uint32_t from, uint32_t below)
{
    char wal[PATH_MAX], path[PATH_MAX];
    snprintf(wal, sizeof(wal), "%s/generations/%s/wal", dir, gen);
    DIR *d = opendir(wal);
    if (!d)
        return 0;
    uint64_t sum = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint32_t idx;
        struct stat st;
        if (!spool_name_index(e->d_name, &idx) || idx < from || idx >= below)
            continue;
        ls_spool_file(dir, gen, idx, path, sizeof(path));
        if (stat(path, &st) == 0)
            sum += (uint64_t)st.st_size;
    }
    closedir(d);
    return sum;
}

uint64_t ls_spool_bytes_from(const ls_spool *sp, uint32_t from)
{
    if (!sp->gen[0])
        return 0;
    return (from < sp->index ? bytes_between(sp->dir, sp->gen, from, sp->index) : 0) + sp->size;
}

/*
 * The generation named in "<dir>/generation", or "" when there is none (no
 * file, or not a generation's name). A file that cannot be read is an error,
 * not "none": taking it for none would start a new generation and drop the
 * spool an away replica still needs. open() and pread(), not stdio: nothing
 * to allocate.
 */
static int read_generation(ls_ctx *ctx, const char *dir, char gen[LS_GEN_LEN + 1])
{
    char path[PATH_MAX], line[64];
    gen[0] = '\0';
    snprintf(path, sizeof(path), "%s/generation", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : ls_err_errno(ctx, errno, "open %s", path);
    ssize_t n;
    do
        n = pread(fd, line, sizeof(line) - 1, 0);
    while (n < 0 && errno == EINTR);
    int e = errno;
    close(fd);
    if (n < 0)
        return ls_err_errno(ctx, e, "read %s", path);
    line[n] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    if (ls_layout_is_gen(line))
        ls_strlcpy(gen, line, LS_GEN_LEN + 1);
    return 0;
}

int ls_spool_peek(ls_ctx *ctx, const char *dir, char gen[LS_GEN_LEN + 1], int64_t *newest)
{
    *newest = -1;
    int rc = read_generation(ctx, dir, gen);
    if (rc == 0 && gen[0])
        rc = newest_index_of(ctx, dir, gen, newest);
    return rc;
}

int ls_spool_lock(ls_ctx *ctx, const char *dir, int *fd)
{
    char path[PATH_MAX], pid[32];
    int rc = ls_mkdir_p(ctx, dir, 0700);
    if (rc)
        return rc;
    snprintf(path, sizeof(path), "%s/lock", dir);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (*fd < 0)
        return ls_err_errno(ctx, errno, "open %s", path);
    if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        ssize_t n = pread(*fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        close(*fd);
        *fd = -1;
        if (e == EWOULDBLOCK)
            return ls_err(ctx, LS_EBUSY,
                          "another litesafe replicate is running for this database (pid %s, "
                          "lock %s)",
                          pid[0] ? pid : "?", path);
        return ls_err_errno(ctx, e, "lock %s", path);
    }
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(*fd, 0) != 0 || pwrite(*fd, pid, (size_t)n, 0) != n)
        ls_log(ctx, LS_LOG_DEBUG, "cannot record pid in %s", path);
    return 0;
}

int ls_spool_open(ls_ctx *ctx, const char *dir, ls_spool *sp)
{
    char path[PATH_MAX];
    int rc;

    memset(sp, 0, sizeof(*sp));
    sp->fd = -1;
    ls_strlcpy(sp->dir, dir, sizeof(sp->dir));
    if ((rc = ls_mkdir_p(ctx, dir, 0700)) != 0)
        return rc;
    /* Temp files of an interrupted generation switch. */
    snprintf(path, sizeof(path), "%s/generation.tmp", dir);
    unlink(path);

    int64_t idx;
    if ((rc = read_generation(ctx, dir, sp->gen)) != 0)
        return rc;
    if (!sp->gen[0])
        return 0; /* no generation yet */
    if ((rc = newest_index_of(ctx, dir, sp->gen, &idx)) != 0)
        return rc;
    if (idx < 0) {
        sp->gen[0] = '\0';
        return 0;
    }
    sp->index = (uint32_t)idx;
    sp->older = bytes_between(dir, sp->gen, 0, sp->index);
    return open_index(ctx, sp);
}

void ls_spool_close(ls_spool *sp)
{
    reset_index_state(sp);
}

int ls_spool_new_gen(ls_ctx *ctx, ls_spool *sp)
{
    char gen[LS_GEN_LEN + 1], path[PATH_MAX], tmp[PATH_MAX];
    int rc, fd = -1;

    if ((rc = ls_layout_gen_new(gen)) != 0)
        return ls_err(ctx, rc, "cannot make a generation name");
    /* 1. Drop every older generation: their spools can never be shipped now. */
    snprintf(path, sizeof(path), "%s/generations", sp->dir);
    rm_rf(path);
    reset_index_state(sp);
    ls_strlcpy(sp->gen, gen, sizeof(sp->gen));
    sp->index = 0;
    sp->older = 0;
    /* 2. The new generation's directory and its empty first spool. */
    snprintf(path, sizeof(path), "%s/generations/%s/wal", sp->dir, gen);
    if ((rc = ls_mkdir_p(ctx, path, 0700)) != 0)
        return rc;
    if ((rc = open_index(ctx, sp)) != 0)
        return rc;
    /* 3. Name it current, atomically. */
    snprintf(tmp, sizeof(tmp), "%s/generation.tmp", sp->dir);
    snprintf(path, sizeof(path), "%s/generation", sp->dir);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return ls_err_errno(ctx, errno, "create %s", tmp);
    char line[LS_GEN_LEN + 2];
    snprintf(line, sizeof(line), "%s\n", gen);
    rc = ls_write_all(ctx, fd, line, strlen(line), -1, tmp);
    if (!rc)
        rc = ls_fd_sync(ctx, fd, tmp);
    close(fd);
    if (!rc && rename(tmp, path) != 0)
        rc = ls_err_errno(ctx, errno, "rename %s", tmp);
    if (!rc)
        rc = ls_fsync_parent(ctx, path);
    return rc;
}

int ls_spool_next_index(ls_ctx *ctx, ls_spool *sp)
{
    /* The finished index ends exactly at its last commit: drop any pending tail. */
    if (sp->fd >= 0 && ftruncate(sp->fd, (off_t)sp->size) != 0)
        return ls_err_errno(ctx, errno, "truncate spool");
    sp->dirty = 1;
    int rc = ls_spool_sync(ctx, sp);
    if (rc)
        return rc;
    sp->older += sp->size;
    sp->index++;
    return open_index(ctx, sp);
}

int ls_spool_put_hdr(ls_ctx *ctx, ls_spool *sp, const uint8_t hdr[LS_WAL_HDRSIZE])
{
    ls_wal_hdr h;
    char wal[PATH_MAX];
    int rc;
    if (ls_wal_hdr_decode(hdr, &h) != 0)
        return ls_err(ctx, LS_ECORRUPT, "spool: invalid WAL header");
    if (sp->fd < 0) {
        /* Its file could not be created before (a full disk, no descriptors): again. */
        snprintf(wal, sizeof(wal), "%s/generations/%s/wal", sp->dir, sp->gen);
        if ((rc = ls_mkdir_p(ctx, wal, 0700)) != 0 || (rc = open_index(ctx, sp)) != 0)
            return rc;
    }
    rc = ls_write_all(ctx, sp->fd, hdr, LS_WAL_HDRSIZE, 0, "spool");
    if (rc)
        return rc;
    sp->hdr = h;
    sp->size = LS_WAL_HDRSIZE;
    sp->ck[0] = h.cksum[0];
    sp->ck[1] = h.cksum[1];
    sp->frames = 0;
    sp->dirty = 1;
    return 0;
}

int ls_spool_write(ls_ctx *ctx, ls_spool *sp, uint64_t off, const uint8_t *buf, size_t n)
{
    return ls_write_all(ctx, sp->fd, buf, n, (off_t)off, "spool");
}

void ls_spool_commit(ls_spool *sp, uint64_t size, const uint32_t ck[2], uint32_t dbsize)
{
    sp->size = size;
    sp->frames = (size - LS_WAL_HDRSIZE) / (LS_WAL_FRAME_HDRSIZE + sp->hdr.page_size);
    sp->ck[0] = ck[0];
    sp->ck[1] = ck[1];
    sp->dbsize = dbsize;
    sp->dirty = 1;
}

int ls_spool_sync(ls_ctx *ctx, ls_spool *sp)
{
    if (!sp->dirty || sp->fd < 0)
        return 0;
    int rc = ls_fd_sync(ctx, sp->fd, "spool");
    if (!rc)
        sp->dirty = 0;
    return rc;
}

void ls_spool_gc(ls_spool *sp, uint32_t keep_from)
{
    char path[PATH_MAX];
    struct stat st;
    for (uint32_t i = keep_from; i-- > 0;) {
        ls_spool_path(sp, i, path, sizeof(path));
        uint64_t n = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
        if (unlink(path) != 0 && errno == ENOENT)
            break; /* older ones were removed before */
        sp->older = sp->older > n ? sp->older - n : 0;
    }
}

/* ---- dropped-replica markers (THE CAP, spool.h) ---- */

/* "<dir>/generations/<gen>/dropped[/<name encoded>]": bytes other than
 * [A-Za-z0-9_-] (and a '.' first) become %XX, so any name is one file name. */
static void dropped_path(const char *dir, const char *gen, const char *replica, char *out,
                         size_t n)
{
    int len = snprintf(out, n, "%s/generations/%s/dropped", dir, gen);
    if (!replica || len < 0 || (size_t)len + 2 >= n)
        return;
    size_t at = (size_t)len;
    out[at++] = '/';
    for (const unsigned char *p = (const unsigned char *)replica; *p && at + 4 < n; p++) {
        int plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' ||
                    (*p == '.' && p != (const unsigned char *)replica);
        if (plain)
            out[at++] = (char)*p;
        else
            at += (size_t)snprintf(out + at, n - at, "%%%02X", *p);
    }
    out[at] = '\0';
}

int ls_spool_mark_dropped(ls_ctx *ctx, const char *dir, const char *gen, const char *replica)
{
    char path[PATH_MAX];
    dropped_path(dir, gen, NULL, path, sizeof(path));
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return ls_err_errno(ctx, errno, "create directory %s", path);
    dropped_path(dir, gen, replica, path, sizeof(path));
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return ls_err_errno(ctx, errno, "create %s", path);
    close(fd);
    return ls_fsync_parent(ctx, path);
}

int ls_spool_is_dropped(const char *dir, const char *gen, const char *replica)
{
    char path[PATH_MAX];
    dropped_path(dir, gen, replica, path, sizeof(path));
    return access(path, F_OK) == 0;
}

void ls_spool_clear_dropped(const char *dir, const char *gen, const char *replica)
{
    char path[PATH_MAX];
    dropped_path(dir, gen, replica, path, sizeof(path));
    unlink(path);
}
