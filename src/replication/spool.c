/*
 * shadow.c - the local spool of committed WAL frames (see shadow.h).
 *
 * Invariants:
 *   - A spool file only ever grows by whole committed transactions, appended
 *     after their checksums were verified against the previous frame.
 *   - The `generation` file is replaced atomically and names a generation
 *     whose directory exists.
 *   - After a crash, ls_shadow_open() trusts nothing past the last commit
 *     frame whose checksum chain verifies.
 */
#define _GNU_SOURCE
#include "shadow.h"

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

static int mkdir_p(ls_ctx *ctx, const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    ls_strlcpy(buf, path, sizeof(buf));
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST)
            return ls_err_errno(ctx, errno, "create directory %s", buf);
        *p = '/';
    }
    if (mkdir(buf, mode) != 0 && errno != EEXIST)
        return ls_err_errno(ctx, errno, "create directory %s", buf);
    return 0;
}

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

void ls_shadow_path(const ls_shadow *sh, uint32_t index, char *out, size_t n)
{
    ls_spool_file(sh->dir, sh->gen, index, out, n);
}

static void reset_index_state(ls_shadow *sh)
{
    if (sh->fd >= 0)
        close(sh->fd);
    sh->fd = -1;
    sh->size = 0;
    memset(&sh->hdr, 0, sizeof(sh->hdr));
    sh->ck[0] = sh->ck[1] = 0;
    sh->dbsize = 0;
    sh->frames = 0;
    sh->dirty = 0;
}

/* Open (creating) the spool file of the current index and recover its state. */
static int open_index(ls_ctx *ctx, ls_shadow *sh)
{
    char path[PATH_MAX];
    struct stat st;
    ls_wal_scan scan;
    int rc = 0;

    reset_index_state(sh);
    ls_shadow_path(sh, sh->index, path, sizeof(path));
    sh->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (sh->fd < 0)
        return ls_err_errno(ctx, errno, "open spool %s", path);
    if (fstat(sh->fd, &st) != 0)
        return ls_err_errno(ctx, errno, "stat spool %s", path);
    if (st.st_size == 0)
        return 0;
    ls_wal_scan_init(&scan, 0);
    rc = ls_wal_scan_fd(ctx, &scan, sh->fd, path);
    if (rc == 0 && scan.have_hdr) {
        sh->hdr = scan.hdr;
        sh->frames = scan.commit_frame;
        sh->size = scan.commit_frame ? ls_wal_frame_offset(scan.hdr.page_size,
                                                           scan.commit_frame + 1)
                                     : LS_WAL_HDRSIZE;
        sh->ck[0] = scan.commit_ck[0];
        sh->ck[1] = scan.commit_ck[1];
        sh->dbsize = scan.commit_dbsize;
    }
    ls_wal_scan_free(&scan);
    if (rc)
        return rc;
    /* Cut a torn or uncommitted tail back to the last commit. */
    if ((uint64_t)st.st_size != sh->size && ftruncate(sh->fd, (off_t)sh->size) != 0)
        return ls_err_errno(ctx, errno, "truncate spool %s", path);
    return 0;
}

/* Newest spool index of generation `gen`, or -1 if none. */
static int64_t newest_index_of(const char *dir, const char *gen)
{
    char wal[PATH_MAX];
    snprintf(wal, sizeof(wal), "%s/generations/%s/wal", dir, gen);
    DIR *d = opendir(wal);
    if (!d)
        return -1;
    int64_t best = -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        unsigned idx;
        char tail[8];
        if (strlen(e->d_name) == 12 && sscanf(e->d_name, "%8x.%3s", &idx, tail) == 2 &&
            strcmp(tail, "wal") == 0 && (int64_t)idx > best)
            best = idx;
    }
    closedir(d);
    return best;
}

/* The generation named in "<dir>/generation", or "" . */
static void read_generation(const char *dir, char gen[LS_GEN_LEN + 1])
{
    char path[PATH_MAX], line[64] = "";
    gen[0] = '\0';
    snprintf(path, sizeof(path), "%s/generation", dir);
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    if (!fgets(line, sizeof(line), f))
        line[0] = '\0';
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    if (ls_layout_is_gen(line))
        ls_strlcpy(gen, line, LS_GEN_LEN + 1);
}

int ls_shadow_peek(const char *dir, char gen[LS_GEN_LEN + 1], int64_t *newest)
{
    read_generation(dir, gen);
    *newest = gen[0] ? newest_index_of(dir, gen) : -1;
    return 0;
}

int ls_shadow_lock(ls_ctx *ctx, const char *dir, int *fd)
{
    char path[PATH_MAX], pid[32];
    int rc = mkdir_p(ctx, dir, 0700);
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

int ls_shadow_open(ls_ctx *ctx, const char *dir, ls_shadow *sh)
{
    char path[PATH_MAX];
    int rc;

    memset(sh, 0, sizeof(*sh));
    sh->fd = -1;
    ls_strlcpy(sh->dir, dir, sizeof(sh->dir));
    if ((rc = mkdir_p(ctx, dir, 0700)) != 0)
        return rc;
    /* Temp files of an interrupted generation switch. */
    snprintf(path, sizeof(path), "%s/generation.tmp", dir);
    unlink(path);

    read_generation(dir, sh->gen);
    if (!sh->gen[0])
        return 0; /* no generation yet */
    int64_t idx = newest_index_of(dir, sh->gen);
    if (idx < 0) {
        sh->gen[0] = '\0';
        return 0;
    }
    sh->index = (uint32_t)idx;
    return open_index(ctx, sh);
}

void ls_shadow_close(ls_shadow *sh)
{
    reset_index_state(sh);
}

int ls_shadow_new_gen(ls_ctx *ctx, ls_shadow *sh)
{
    char gen[LS_GEN_LEN + 1], path[PATH_MAX], tmp[PATH_MAX];
    int rc, fd = -1;

    if ((rc = ls_layout_gen_new(gen)) != 0)
        return ls_err(ctx, rc, "cannot make a generation name");
    /* 1. Drop every older generation: their spools can never be shipped now. */
    snprintf(path, sizeof(path), "%s/generations", sh->dir);
    rm_rf(path);
    reset_index_state(sh);
    ls_strlcpy(sh->gen, gen, sizeof(sh->gen));
    sh->index = 0;
    /* 2. The new generation's directory and its empty first spool. */
    snprintf(path, sizeof(path), "%s/generations/%s/wal", sh->dir, gen);
    if ((rc = mkdir_p(ctx, path, 0700)) != 0)
        return rc;
    if ((rc = open_index(ctx, sh)) != 0)
        return rc;
    /* 3. Name it current, atomically. */
    snprintf(tmp, sizeof(tmp), "%s/generation.tmp", sh->dir);
    snprintf(path, sizeof(path), "%s/generation", sh->dir);
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

int ls_shadow_next_index(ls_ctx *ctx, ls_shadow *sh)
{
    /* The finished index ends exactly at its last commit: drop any pending tail. */
    if (sh->fd >= 0 && ftruncate(sh->fd, (off_t)sh->size) != 0)
        return ls_err_errno(ctx, errno, "truncate spool");
    sh->dirty = 1;
    int rc = ls_shadow_sync(ctx, sh);
    if (rc)
        return rc;
    sh->index++;
    return open_index(ctx, sh);
}

int ls_shadow_put_hdr(ls_ctx *ctx, ls_shadow *sh, const uint8_t hdr[LS_WAL_HDRSIZE])
{
    ls_wal_hdr h;
    if (ls_wal_hdr_decode(hdr, &h) != 0)
        return ls_err(ctx, LS_ECORRUPT, "spool: invalid WAL header");
    int rc = ls_write_all(ctx, sh->fd, hdr, LS_WAL_HDRSIZE, 0, "spool");
    if (rc)
        return rc;
    sh->hdr = h;
    sh->size = LS_WAL_HDRSIZE;
    sh->ck[0] = h.cksum[0];
    sh->ck[1] = h.cksum[1];
    sh->frames = 0;
    sh->dirty = 1;
    return 0;
}

int ls_shadow_write(ls_ctx *ctx, ls_shadow *sh, uint64_t off, const uint8_t *buf, size_t n)
{
    return ls_write_all(ctx, sh->fd, buf, n, (off_t)off, "spool");
}

void ls_shadow_commit(ls_shadow *sh, uint64_t size, const uint32_t ck[2], uint32_t dbsize)
{
    sh->size = size;
    sh->frames = (size - LS_WAL_HDRSIZE) / (LS_WAL_FRAME_HDRSIZE + sh->hdr.page_size);
    sh->ck[0] = ck[0];
    sh->ck[1] = ck[1];
    sh->dbsize = dbsize;
    sh->dirty = 1;
}

int ls_shadow_sync(ls_ctx *ctx, ls_shadow *sh)
{
    if (!sh->dirty || sh->fd < 0)
        return 0;
    int rc = ls_fd_sync(ctx, sh->fd, "spool");
    if (!rc)
        sh->dirty = 0;
    return rc;
}

void ls_shadow_gc(ls_shadow *sh, uint32_t keep_from)
{
    char path[PATH_MAX];
    for (uint32_t i = keep_from; i-- > 0;) {
        ls_shadow_path(sh, i, path, sizeof(path));
        if (unlink(path) != 0 && errno == ENOENT)
            break; /* older ones were removed before */
    }
}
