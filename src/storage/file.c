/*
 * storage/file.c - the file backend: a replica is a directory tree on a local
 * or mounted file system, and a key is a path below its root.
 *
 * put is all-or-nothing (STYLE.md, "Backends"); steps 2-5 are an ls_tmpfile
 * (fsutil.h) with a unique name and a replacing commit:
 *   1. mkdir -p the key's directory (each new directory's parent is fsynced);
 *   2. create "<dir>/.<base>.<pid>.<16 random hex>.tmp" with O_EXCL;
 *   3. copy the source into it in 64 KiB chunks, fdatasync, close;
 *   4. rename(2) it over the key: an existing object is replaced whole;
 *   5. fsync the directory (Litestream skips this step; a crash could then
 *      lose an object it had reported as written).
 * Any failure removes the temp file. A crash before step 4 leaves only a
 * temp file: its name starts with '.', which list skips and keys may not
 * use, and every put picks a fresh name, so a stale temp file is never seen
 * as an object, never reused and never in a later put's way. Nothing sweeps
 * them: a sweep racing another process's put could remove a live temp file.
 *
 * Modes: new directories get the permission bits of the root directory
 * (0755 when the root itself is created), objects the same bits without x
 * (0644 by default); the umask applies to both. So chmod 700 on the root
 * keeps every object private.
 *
 * get opens the object once and streams the requested range from that open
 * file, so a concurrent put (a rename) cannot mix two versions.
 * list walks the tree below the deepest directory the prefix names, skips
 * names starting with '.', symbolic links and anything that is neither a
 * regular file nor a directory, and prunes subtrees the prefix excludes.
 * del unlinks, then removes directories left empty up to (not including)
 * the root, so deleting a generation's last object leaves no directory. A
 * put racing that removal retries its mkdir (step 1).
 */
#define _GNU_SOURCE
#include "fsutil.h"
#include "io.h"
#include "storage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Attempts at steps 1-2 of put when the directory vanishes in between. */
#define PUT_CREATE_TRIES 4

typedef struct file_store {
    ls_storage base;     /* must be first: the vtable and names */
    char root[PATH_MAX]; /* absolute root directory, no trailing '/' (unless "/") */
} file_store;

/* A write sink into the temp file of a put. */
typedef struct file_sink {
    ls_ctx *ctx;      /* messages */
    int fd;           /* the temp file */
    const char *what; /* its path, for messages */
} file_sink;

/* Record errno `e` of `step` (may be NULL) while doing `op` on `key`. */
static int sys_err(ls_storage *s, ls_ctx *ctx, int e, const char *op, const char *key,
                   const char *step)
{
    return ls_storage_err(s, ctx, ls_code_from_errno(e), op, key, "%s%s%s", step ? step : "",
                          step ? ": " : "", strerror(e));
}

/* The file path of key (already checked) into out. */
static int obj_path(file_store *fs, ls_ctx *ctx, const char *op, const char *key, char *out,
                    size_t outsz)
{
    int root_is_slash = strcmp(fs->root, "/") == 0;
    int n = snprintf(out, outsz, "%s%s%s", root_is_slash ? "" : fs->root, "/", key);
    if (n < 0 || (size_t)n >= outsz)
        return ls_storage_err(&fs->base, ctx, LS_EUSAGE, op, key, "path too long");
    return 0;
}

/*
 * The root directory from opts->path: a relative path is made absolute
 * against the current directory; trailing slashes are dropped. (A URL never
 * reaches a backend: the configuration resolved it into fields.) Returns 0
 * or LS_EUSAGE.
 */
static int root_from_opts(ls_ctx *ctx, const ls_storage_opts *opts, char *root, size_t rootsz)
{
    const char *name = opts->name && *opts->name ? opts->name : "file";
    char p[PATH_MAX], cwd[PATH_MAX];

    if (!opts->path || !*opts->path)
        return ls_err(ctx, LS_EUSAGE, "replica %s: file replica: path required", name);
    if (strlen(opts->path) >= sizeof(p))
        return ls_err(ctx, LS_EUSAGE, "replica %s: path too long", name);
    ls_strlcpy(p, opts->path, sizeof(p));
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        p[--n] = '\0';
    if (p[0] == '/') {
        ls_strlcpy(root, p, rootsz);
        return 0;
    }
    if (!getcwd(cwd, sizeof(cwd)))
        return ls_err_errno(ctx, errno, "replica %s: current directory", name);
    int k = snprintf(root, rootsz, "%s%s%s", cwd, strcmp(cwd, "/") ? "/" : "", p);
    if (k < 0 || (size_t)k >= rootsz)
        return ls_err(ctx, LS_EUSAGE, "replica %s: path too long", name);
    return 0;
}

/* Permission bits for new directories: the root's, or 0755 before it exists. */
static mode_t dir_mode(const file_store *fs)
{
    struct stat st;
    if (stat(fs->root, &st) == 0 && S_ISDIR(st.st_mode))
        return st.st_mode & 0777;
    return 0755;
}

/*
 * Steps 1 and 2 of put: make the key's directory and begin a fresh temp file
 * in it (ls_tmpfile: a unique name, the umask applies, commit replaces). A
 * concurrent delete may remove the directory between the two steps
 * (LS_ENOENT): the pair is retried a few times.
 */
static int begin_tmp(file_store *fs, ls_ctx *ctx, const char *key, const char *path,
                     ls_tmpfile *t)
{
    char dir[PATH_MAX];
    mode_t mode = dir_mode(fs);

    ls_path_split(path, dir, sizeof(dir), NULL, 0);
    for (int attempt = 1;; attempt++) {
        int rc = ls_mkdir_p(ctx, dir, mode);
        if (!rc)
            rc = ls_tmpfile_begin(ctx, t, path, mode & 0666,
                                  LS_TMPFILE_REPLACE | LS_TMPFILE_UNIQUE | LS_TMPFILE_UMASK);
        if (!rc)
            return 0;
        if (rc != LS_ENOENT || attempt == PUT_CREATE_TRIES)
            return ls_storage_err(&fs->base, ctx, rc, "put", key, NULL);
    }
}

static int sink_write(void *ud, const uint8_t *buf, size_t n)
{
    file_sink *k = ud;
    return ls_write_all(k->ctx, k->fd, buf, n, -1, k->what);
}

/* put: steps 1-5 of the header comment. */
static int file_put(ls_storage *s, ls_ctx *ctx, const char *key, ls_reader *r)
{
    file_store *fs = (file_store *)s;
    ls_tmpfile t = LS_TMPFILE_INIT;
    char path[PATH_MAX];
    int rc;

    rc = ls_storage_check_key(s, ctx, "put", key, 0);
    if (!rc)
        rc = obj_path(fs, ctx, "put", key, path, sizeof(path));
    if (!rc)
        rc = begin_tmp(fs, ctx, key, path, &t);
    if (rc)
        goto cleanup;

    file_sink sink = {ctx, t.fd, t.path};
    ls_writer w = {sink_write, &sink};
    rc = ls_copy(ctx, r, &w, NULL);
    if (!rc)
        rc = ls_tmpfile_commit(ctx, &t); /* steps 3 (the sync) to 5 */
    if (rc)
        rc = ls_storage_err(s, ctx, rc, "put", key, NULL);

cleanup:
    ls_tmpfile_abort(&t);
    return rc;
}

/* get: one open file, the range streamed from it in 64 KiB chunks (ls_copy). */
static int file_get(ls_storage *s, ls_ctx *ctx, const char *key, uint64_t off, int64_t len,
                    ls_writer *w)
{
    file_store *fs = (file_store *)s;
    char path[PATH_MAX];
    struct stat st;
    ls_fd_range range;
    ls_reader r;
    int fd = -1, rc;

    rc = ls_storage_check_key(s, ctx, "get", key, 0);
    if (!rc)
        rc = obj_path(fs, ctx, "get", key, path, sizeof(path));
    if (rc)
        return rc;
    /* No symlinks (list does not show them); O_NONBLOCK: a FIFO must not hang us. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return sys_err(s, ctx, errno == ELOOP ? ENOENT : errno, "get", key, NULL);
    if (fstat(fd, &st) != 0) {
        rc = sys_err(s, ctx, errno, "get", key, "fstat");
        goto cleanup;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = ls_storage_err(s, ctx, LS_ENOENT, "get", key, "not a regular file");
        goto cleanup;
    }
    uint64_t size = (uint64_t)st.st_size;
    uint64_t start = off < size ? off : size;
    uint64_t end = len < 0 || (uint64_t)len >= size - start ? size : start + (uint64_t)len;
    ls_reader_fd_range(&r, &range, ctx, fd, start, end);
    range.what = path;
    rc = ls_copy(ctx, &r, w, NULL);
    if (rc)
        rc = ls_storage_err(s, ctx, rc, "get", key, NULL);

cleanup:
    close(fd);
    return rc;
}

/*
 * Append to out the regular files below the open directory dfd whose keys
 * start with prefix. rel[0, rlen) is that directory's key prefix ("" or
 * ending in '/'); rel has PATH_MAX bytes and is restored before returning.
 * Subdirectories are entered only if keys below them can match. Entries
 * that vanish during the walk are skipped. Takes ownership of dfd.
 */
static int walk(file_store *fs, ls_ctx *ctx, const char *prefix, int dfd, char *rel, size_t rlen,
                ls_obj_list *out)
{
    size_t plen = strlen(prefix);
    int rc = 0;
    DIR *d = fdopendir(dfd);
    if (!d) {
        rc = sys_err(&fs->base, ctx, errno, "list", prefix, NULL);
        close(dfd);
        return rc;
    }
    for (;;) {
        struct stat st;
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno)
                rc = sys_err(&fs->base, ctx, errno, "list", prefix, "readdir");
            break;
        }
        size_t nlen = strlen(e->d_name);
        if (e->d_name[0] == '.' || rlen + nlen + 2 > PATH_MAX)
            continue;
        memcpy(rel + rlen, e->d_name, nlen + 1);
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT)
                continue;
            rc = sys_err(&fs->base, ctx, errno, "list", prefix, rel);
        } else if (S_ISREG(st.st_mode)) {
            if (strncmp(rel, prefix, plen) == 0 &&
                ls_obj_list_add(out, rel, (uint64_t)st.st_size,
                                (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000))
                rc = ls_err(ctx, LS_ENOMEM, "out of memory");
        } else if (S_ISDIR(st.st_mode)) {
            size_t k = rlen + nlen + 1;
            rel[k - 1] = '/';
            rel[k] = '\0';
            if (strncmp(rel, prefix, k < plen ? k : plen) == 0) {
                int sub =
                    openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub >= 0)
                    rc = walk(fs, ctx, prefix, sub, rel, k, out);
                else if (errno != ENOENT)
                    rc = sys_err(&fs->base, ctx, errno, "list", prefix, rel);
            }
        }
        if (rc)
            break;
    }
    rel[rlen] = '\0';
    closedir(d);
    return rc;
}

/* list: walk from the deepest directory the prefix names; missing is empty. */
static int file_list(ls_storage *s, ls_ctx *ctx, const char *prefix, ls_obj_list *out)
{
    file_store *fs = (file_store *)s;
    char rel[PATH_MAX], path[PATH_MAX];
    int rc = ls_storage_check_key(s, ctx, "list", prefix, 1);
    if (rc)
        return rc;
    const char *slash = strrchr(prefix, '/');
    size_t rlen = slash ? (size_t)(slash - prefix) + 1 : 0;
    memcpy(rel, prefix, rlen);
    rel[rlen] = '\0';
    if (rlen == 0)
        ls_strlcpy(path, fs->root, sizeof(path));
    else if ((rc = obj_path(fs, ctx, "list", rel, path, sizeof(path))) != 0)
        return rc;
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        return sys_err(s, ctx, errno, "list", prefix, NULL);
    }
    return walk(fs, ctx, prefix, dfd, rel, rlen, out);
}

static int file_stat(ls_storage *s, ls_ctx *ctx, const char *key, ls_obj *out)
{
    file_store *fs = (file_store *)s;
    char path[PATH_MAX];
    struct stat st;
    int rc = ls_storage_check_key(s, ctx, "stat", key, 0);
    if (!rc)
        rc = obj_path(fs, ctx, "stat", key, path, sizeof(path));
    if (rc)
        return rc;
    if (lstat(path, &st) != 0)
        return sys_err(s, ctx, errno, "stat", key, NULL);
    if (!S_ISREG(st.st_mode))
        return ls_storage_err(s, ctx, LS_ENOENT, "stat", key, "not a regular file");
    out->key = NULL;
    out->size = (uint64_t)st.st_size;
    out->mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    return 0;
}

/* Remove the directories above path that are now empty, stopping below the root. */
static void prune_empty_dirs(const file_store *fs, const char *path)
{
    char dir[PATH_MAX];
    size_t rootlen = strlen(fs->root);
    ls_strlcpy(dir, path, sizeof(dir));
    for (;;) {
        char *slash = strrchr(dir, '/');
        if (!slash || (size_t)(slash - dir) <= rootlen)
            return;
        *slash = '\0';
        if (rmdir(dir) != 0)
            return;
    }
}

static int file_del(ls_storage *s, ls_ctx *ctx, const char *const *keys, size_t n)
{
    file_store *fs = (file_store *)s;
    char path[PATH_MAX];
    for (size_t i = 0; i < n; i++) {
        int rc = ls_storage_check_key(s, ctx, "delete", keys[i], 0);
        if (!rc)
            rc = obj_path(fs, ctx, "delete", keys[i], path, sizeof(path));
        if (rc)
            return rc;
        if (unlink(path) != 0) {
            if (errno == ENOENT || errno == ENOTDIR)
                continue;
            return sys_err(s, ctx, errno, "delete", keys[i], NULL);
        }
        prune_empty_dirs(fs, path);
    }
    return 0;
}

static void file_close(ls_storage *s)
{
    free(s);
}

int ls_storage_file_open(ls_ctx *ctx, const ls_storage_opts *opts, ls_storage **out)
{
    file_store *fs = NULL;
    int rc;

    *out = NULL;
    fs = calloc(1, sizeof(*fs));
    if (!fs)
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    rc = root_from_opts(ctx, opts, fs->root, sizeof(fs->root));
    if (rc) {
        free(fs);
        return rc;
    }
    ls_storage_init(&fs->base, "file", opts->name, fs->root);
    fs->base.put = file_put;
    fs->base.get = file_get;
    fs->base.list = file_list;
    fs->base.stat = file_stat;
    fs->base.del = file_del;
    fs->base.close = file_close;
    *out = &fs->base;
    return 0;
}
