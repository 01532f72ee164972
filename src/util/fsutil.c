/*
 * fsutil.c - see fsutil.h for the publication protocol.
 */
#define _GNU_SOURCE
#include "fsutil.h"
#include "random.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP_SUFFIX ".litesafe-tmp"

/* The files SQLite pairs with a database by appending to its name. */
static const char *const SIBLINGS[] = {"-wal", "-shm", "-journal"};
#define NSIBLINGS (sizeof(SIBLINGS) / sizeof(SIBLINGS[0]))

int ls_write_all(ls_ctx *ctx, int fd, const void *buf, size_t n, off_t off, const char *what)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = off >= 0 ? pwrite(fd, p, n, off) : write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return ls_err_errno(ctx, errno, "write %s", what);
        }
        if (w == 0)
            return ls_err(ctx, LS_EIO, "write %s: no progress", what);
        p += w;
        n -= (size_t)w;
        if (off >= 0)
            off += w;
    }
    return 0;
}

int ls_pread_full(ls_ctx *ctx, int fd, void *buf, size_t n, off_t off, size_t *got,
                  const char *what)
{
    char *p = buf;
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, p + done, n - done, off + (off_t)done);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return ls_err_errno(ctx, errno, "read %s", what);
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    if (got) {
        *got = done;
        return 0;
    }
    if (done < n)
        return ls_err(ctx, LS_EIO, "read %s: unexpected end of file at offset %lld", what,
                      (long long)(off + (off_t)done));
    return 0;
}

int ls_fd_sync(ls_ctx *ctx, int fd, const char *what)
{
    while (fdatasync(fd) != 0) {
        if (errno != EINTR)
            return ls_err_errno(ctx, errno, "fsync %s", what);
    }
    return 0;
}

void ls_path_split(const char *path, char *dir, size_t dirsz, char *base, size_t basesz)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        if (dir)
            ls_strlcpy(dir, ".", dirsz);
        if (base)
            ls_strlcpy(base, path, basesz);
        return;
    }
    if (dir) {
        size_t n = (size_t)(slash - path);
        if (n == 0)
            n = 1; /* "/x" -> "/" */
        if (n >= dirsz)
            n = dirsz - 1;
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    if (base)
        ls_strlcpy(base, slash + 1, basesz);
}

int ls_fsync_parent(ls_ctx *ctx, const char *path)
{
    char dir[PATH_MAX];
    ls_path_split(path, dir, sizeof(dir), NULL, 0);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ls_err_errno(ctx, errno, "open directory %s", dir);
    int rc = 0;
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
        rc = ls_err_errno(ctx, errno, "fsync directory %s", dir);
    close(fd);
    return rc;
}

int ls_abspath(ls_ctx *ctx, const char *path, char *out, size_t outsz)
{
    char dir[PATH_MAX], base[PATH_MAX], real[PATH_MAX];
    if (!path || !*path)
        return ls_err(ctx, LS_EUSAGE, "empty path");
    ls_path_split(path, dir, sizeof(dir), base, sizeof(base));
    if (!realpath(dir, real))
        return ls_err_errno(ctx, errno, "%s", dir);
    if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || !*base) {
        if (!realpath(path, real))
            return ls_err_errno(ctx, errno, "%s", path);
        ls_strlcpy(out, real, outsz);
        return 0;
    }
    int n = snprintf(out, outsz, "%s%s%s", real, strcmp(real, "/") ? "/" : "", base);
    if (n < 0 || (size_t)n >= outsz)
        return ls_err(ctx, LS_EUSAGE, "path too long: %s", path);
    return 0;
}

int ls_abspath_dup(ls_ctx *ctx, const char *path, char **out)
{
    char abs[PATH_MAX];
    int rc = ls_abspath(ctx, path, abs, sizeof(abs));
    *out = NULL;
    return rc ? rc : ls_strdup(ctx, out, abs);
}

int ls_path_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

int ls_tmp_create(ls_ctx *ctx, const char *dest, mode_t mode, char *tmp, size_t tmpsz, int *fd)
{
    char dir[PATH_MAX], base[PATH_MAX];
    ls_path_split(dest, dir, sizeof(dir), base, sizeof(base));
    int n = snprintf(tmp, tmpsz, "%s/.%s.%ld%s", dir, base, (long)getpid(), TMP_SUFFIX);
    if (n < 0 || (size_t)n >= tmpsz)
        return ls_err(ctx, LS_EUSAGE, "path too long: %s", dest);
    struct stat st;
    if (stat(dir, &st) != 0)
        return ls_err_errno(ctx, errno, "destination directory %s", dir);
    if (!S_ISDIR(st.st_mode))
        return ls_err(ctx, LS_ENOENT, "destination directory %s: not a directory", dir);
    /* A temp of ours from an earlier attempt in this same process (or a dead
     * one that had our pid): replace it, and drop the SQLite siblings of its
     * name, which no one else may use, so an open of the temp reads only it. */
    unlink(tmp);
    for (size_t i = 0; i < NSIBLINGS; i++) {
        char sib[PATH_MAX + 16];
        snprintf(sib, sizeof(sib), "%s%s", tmp, SIBLINGS[i]);
        unlink(sib);
    }
    *fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode & 07777);
    if (*fd < 0)
        return ls_err_errno(ctx, errno, "create %s", tmp);
    /* The umask must not widen or narrow what the caller asked for. */
    if (fchmod(*fd, mode & 07777) != 0) {
        int e = errno;
        close(*fd);
        unlink(tmp);
        *fd = -1;
        return ls_err_errno(ctx, e, "chmod %s", tmp);
    }
    return 0;
}

/* Remove a file or a directory tree (best effort). */
static void remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (!S_ISDIR(st.st_mode)) {
        unlink(path);
        return;
    }
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char p[PATH_MAX * 2];
            snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
            remove_tree(p);
        }
        closedir(d);
    }
    rmdir(path);
}

/*
 * The owner pid of a temp name ".<base>.<pid>.litesafe-tmp", or of one of its
 * SQLite siblings ("...litesafe-tmp-wal"), or 0 if it is not one.
 */
static long tmp_owner(const char *name)
{
    size_t len = strlen(name), slen = strlen(TMP_SUFFIX);
    for (size_t i = 0; i < NSIBLINGS; i++) {
        size_t k = strlen(SIBLINGS[i]);
        if (len > k && strcmp(name + len - k, SIBLINGS[i]) == 0) {
            len -= k;
            break;
        }
    }
    if (name[0] != '.' || len <= slen + 2 || strncmp(name + len - slen, TMP_SUFFIX, slen) != 0)
        return 0;
    const char *end = name + len - slen; /* the '.' before "litesafe-tmp" is in TMP_SUFFIX */
    const char *p = end;
    while (p > name && p[-1] >= '0' && p[-1] <= '9')
        p--;
    if (p == end || p == name || p[-1] != '.')
        return 0;
    return strtol(p, NULL, 10);
}

void ls_tmp_sweep(const char *dest)
{
    char dir[PATH_MAX];
    ls_path_split(dest, dir, sizeof(dir), NULL, 0);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long pid = tmp_owner(e->d_name);
        if (pid <= 0 || pid == (long)getpid())
            continue;
        if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
            char p[PATH_MAX * 2];
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
            remove_tree(p);
        }
    }
    closedir(d);
}

int ls_tmp_dir_create(ls_ctx *ctx, const char *dest, char *tmp, size_t tmpsz)
{
    char dir[PATH_MAX], base[PATH_MAX];
    ls_path_split(dest, dir, sizeof(dir), base, sizeof(base));
    int n = snprintf(tmp, tmpsz, "%s/.%s.%ld%s", dir, base, (long)getpid(), TMP_SUFFIX);
    if (n < 0 || (size_t)n >= tmpsz)
        return ls_err(ctx, LS_EUSAGE, "path too long: %s", dest);
    remove_tree(tmp); /* ours, from an earlier attempt in this process */
    if (mkdir(tmp, 0700) != 0)
        return ls_err_errno(ctx, errno, "create %s", tmp);
    return 0;
}

void ls_tmp_dir_remove(const char *tmp)
{
    remove_tree(tmp);
}

int ls_publish_check(ls_ctx *ctx, const char *dest)
{
    for (size_t i = 0; i < NSIBLINGS; i++) {
        char sib[PATH_MAX + 16];
        int n = snprintf(sib, sizeof(sib), "%s%s", dest, SIBLINGS[i]);
        if (n < 0 || (size_t)n >= sizeof(sib))
            return ls_err(ctx, LS_EUSAGE, "path too long: %s", dest);
        if (ls_path_exists(sib))
            return ls_err(ctx, LS_EEXIST,
                          "%s exists: a database published next to it would replay it; "
                          "remove it or choose another path",
                          sib);
    }
    return 0;
}

/* ls_publish without the directory fsync: 0 once tmp is at dest. */
static int publish_rename(ls_ctx *ctx, const char *tmp, const char *dest)
{
    int rc = ls_publish_check(ctx, dest);
    if (rc)
        return rc;
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dest, RENAME_NOREPLACE) != 0) {
        int e = errno;
        if (e == EEXIST)
            return ls_err(ctx, LS_EEXIST, "%s: destination exists", dest);
        if (e != EINVAL && e != ENOSYS && e != EOPNOTSUPP)
            return ls_err_errno(ctx, e, "rename %s to %s", tmp, dest);
        /* No RENAME_NOREPLACE here: link() refuses an existing name too. */
        if (link(tmp, dest) != 0) {
            e = errno;
            if (e == EEXIST)
                return ls_err(ctx, LS_EEXIST, "%s: destination exists", dest);
            return ls_err_errno(ctx, e, "link %s to %s", tmp, dest);
        }
        unlink(tmp);
    }
    return 0;
}

int ls_publish(ls_ctx *ctx, const char *tmp, const char *dest)
{
    int rc = publish_rename(ctx, tmp, dest);
    return rc ? rc : ls_fsync_parent(ctx, dest);
}

/* ---------------------------------------------------------------------- */
/* ls_tmpfile: the protocol as one object                                  */

/* Tries at a fresh random name before giving up (a collision is 2^-64). */
#define UNIQUE_TRIES 4

/*
 * LS_TMPFILE_UNIQUE's temp file: ".<base>.<pid>.<16 hex>.tmp" in dest's
 * directory, O_EXCL. Not the sweepable ".litesafe-tmp" name: another host
 * sharing the directory may be writing it.
 */
static int create_unique(ls_ctx *ctx, ls_tmpfile *t)
{
    char dir[PATH_MAX], base[PATH_MAX];
    mode_t mode = (t->flags & LS_TMPFILE_UMASK) ? t->mode : 0600;
    ls_path_split(t->dest, dir, sizeof(dir), base, sizeof(base));
    for (int attempt = 1;; attempt++) {
        char hex[2 * 8 + 1];
        if (ls_random_hex(hex, 8) != 0)
            return ls_err(ctx, LS_EIO, "create a temp file for %s: getrandom failed", t->dest);
        int n = snprintf(t->path, sizeof(t->path), "%s/.%s.%ld.%s.tmp", dir, base, (long)getpid(),
                         hex);
        if (n < 0 || (size_t)n >= sizeof(t->path)) {
            t->path[0] = '\0';
            return ls_err(ctx, LS_EUSAGE, "path too long: %s", t->dest);
        }
        t->fd = open(t->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 07777);
        if (t->fd >= 0)
            break;
        int e = errno;
        t->path[0] = '\0'; /* not ours: never remove it */
        if (e != EEXIST || attempt == UNIQUE_TRIES)
            return ls_err_errno(ctx, e, "create a temp file for %s", t->dest);
    }
    if (!(t->flags & LS_TMPFILE_UMASK) && fchmod(t->fd, t->mode & 07777) != 0)
        return ls_err_errno(ctx, errno, "chmod %s", t->path);
    return 0;
}

int ls_tmpfile_begin(ls_ctx *ctx, ls_tmpfile *t, const char *dest, mode_t mode,
                     unsigned flags)
{
    int rc;
    memset(t, 0, sizeof(*t));
    t->fd = -1;
    t->flags = flags;
    t->mode = mode;
    if (strlen(dest) >= sizeof(t->dest))
        return ls_err(ctx, LS_EUSAGE, "path too long: %s", dest);
    ls_strlcpy(t->dest, dest, sizeof(t->dest));

    /* 0. Nothing in the way of a new file. */
    if (!(flags & LS_TMPFILE_REPLACE)) {
        if (ls_path_exists(dest))
            return ls_err(ctx, LS_EEXIST, "%s: destination exists", dest);
        if ((rc = ls_publish_check(ctx, dest)) != 0)
            return rc;
    }
    /* 1. The temp file. */
    if (flags & LS_TMPFILE_UNIQUE) {
        rc = create_unique(ctx, t);
    } else {
        ls_tmp_sweep(dest);
        if (flags & LS_TMPFILE_DIR) {
            rc = ls_tmp_dir_create(ctx, dest, t->dir, sizeof(t->dir));
            if (rc)
                t->dir[0] = '\0';
            else
                snprintf(t->path, sizeof(t->path), "%s/db", t->dir);
        } else {
            rc = ls_tmp_create(ctx, dest, mode, t->path, sizeof(t->path), &t->fd);
            if (rc)
                t->path[0] = '\0';
        }
    }
    if (rc)
        ls_tmpfile_abort(t);
    return rc;
}

int ls_tmpfile_sync(ls_ctx *ctx, ls_tmpfile *t)
{
    int rc;
    if (t->synced)
        return 0;
    if (t->fd < 0) {
        /* LS_TMPFILE_DIR: a file SQLite wrote, with SQLite's mode. */
        if (!(t->flags & LS_TMPFILE_DIR) || !t->path[0])
            return ls_err(ctx, LS_EUSAGE, "%s: no temp file to sync", t->dest);
        t->fd = open(t->path, O_RDWR | O_CLOEXEC);
        if (t->fd < 0 || fchmod(t->fd, t->mode & 07777) != 0)
            return ls_err_errno(ctx, errno, "open %s", t->path);
    }
    if ((rc = ls_fd_sync(ctx, t->fd, t->path)) != 0)
        return rc;
    rc = close(t->fd);
    t->fd = -1;
    if (rc != 0)
        return ls_err_errno(ctx, errno, "close %s", t->path);
    t->synced = 1;
    return 0;
}

int ls_tmpfile_commit(ls_ctx *ctx, ls_tmpfile *t)
{
    int rc;
    if (!t->path[0])
        return ls_err(ctx, LS_EUSAGE, "%s: no temp file to publish", t->dest);
    if ((rc = ls_tmpfile_sync(ctx, t)) != 0)
        return rc;
    if (t->flags & LS_TMPFILE_REPLACE) {
        if (rename(t->path, t->dest) != 0)
            return ls_err_errno(ctx, errno, "rename %s to %s", t->path, t->dest);
    } else if ((rc = publish_rename(ctx, t->path, t->dest)) != 0) {
        return rc;
    }
    t->path[0] = '\0'; /* it is dest now: never remove it */
    rc = ls_fsync_parent(ctx, t->dest);
    if (t->dir[0]) {
        remove_tree(t->dir);
        t->dir[0] = '\0';
    }
    return rc;
}

void ls_tmpfile_abort(ls_tmpfile *t)
{
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
    if (t->path[0])
        unlink(t->path);
    t->path[0] = '\0';
    if (t->dir[0])
        remove_tree(t->dir);
    t->dir[0] = '\0';
}

/* One step of ls_mkdir_p: make `dir` exist as a directory. */
static int mkdir_one(ls_ctx *ctx, const char *dir, mode_t mode)
{
    struct stat st;
    if (mkdir(dir, mode) == 0)
        return ls_fsync_parent(ctx, dir);
    int e = errno;
    if (e != EEXIST)
        return ls_err_errno(ctx, e, "mkdir %s", dir);
    if (stat(dir, &st) != 0)
        return ls_err_errno(ctx, errno, "mkdir %s", dir);
    if (!S_ISDIR(st.st_mode))
        return ls_err_errno(ctx, ENOTDIR, "mkdir %s", dir);
    return 0;
}

int ls_mkdir_p(ls_ctx *ctx, const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    if (!*path)
        return ls_err(ctx, LS_EUSAGE, "mkdir: empty path");
    if (strlen(path) >= sizeof(buf))
        return ls_err(ctx, LS_EUSAGE, "path too long: %s", path);
    ls_strlcpy(buf, path, sizeof(buf));
    /* Every prefix that ends before a '/' (or at the end), shortest first. */
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        int rc = p[-1] == '/' ? 0 : mkdir_one(ctx, buf, mode);
        *p = c;
        if (rc)
            return rc;
        if (c == '\0')
            return 0;
    }
}
