/*
 * powercut.c - an LD_PRELOAD model of what a power cut leaves of the
 * directory trees named in LS_POWERCUT_DIRS (colon-separated absolute
 * paths), for tests/integration/test_powercut.py and tests/powercut/powercut.py.
 *
 * THE MODEL (strict POSIX durability; docs/reliability.md, "Power cut")
 *   - A regular file's content (and size) is durable as it was at its last
 *     fsync or fdatasync; one never synced is empty.
 *   - A directory's entries (name -> inode: creates, renames, unlinks,
 *     mkdir, rmdir) are durable as they were at the last fsync of that
 *     directory; one never synced since it was made is empty.
 *   - sync_file_range is not a barrier (not intercepted); writes, renames
 *     and unlinks are never durable by themselves.
 * At `powercut.py arm` the trees as they are on disk are durable; the shim
 * then records, for the process it is loaded in, every later sync into the
 * state directory LS_POWERCUT_STATE, and `powercut.py cut` rebuilds each
 * tree from those records after the process was killed.
 *
 * THE STATE DIRECTORY (same file system as the trees: inode numbers and
 * hard links are its keys)
 *   base/<ino>  a hard link to each file of the trees at arm time: the
 *               content it had then, while no data/<ino> exists;
 *   data/<ino>  the durable content of a file: a copy made at each fsync,
 *               and for a base file before its first change (O_TRUNC,
 *               write, ftruncate, fallocate), so base/ never hides a change;
 *   dirs/<ino>  the durable listing of a directory, one "f|d <ino> <name>"
 *               line per entry: written at arm, replaced at each fsync;
 *   keep/<ino>  a hard link to each file unlinked or renamed over during
 *               the run (and removed directories stay open, O_PATH): no
 *               inode number named in a record is reused by a new file.
 * Each record is written to a temp name and renamed into place before the
 * intercepted call returns, so a SIGKILL at any point leaves every record
 * whole (the host keeps running; only the process dies).
 *
 * Limits: paths are matched lexically (absolute, or relative to the cwd or
 * to a directory descriptor); descriptors made by dup, mkstemp or fopen
 * (glibc opens those internally) are not followed; every tree must be on one
 * file system, with the state directory.
 */
#undef _FORTIFY_SOURCE
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_DIRS 8
#define MAX_FDS 65536
#define COPY_CHUNK 65536

/* What the shim knows of one open descriptor of a watched path. */
typedef struct fd_info {
    ino_t ino;           /* its inode */
    unsigned char on;    /* 1: a watched regular file or directory */
    unsigned char dir;   /* 1: a directory (fsync records its listing) */
    unsigned char base;  /* 1: a file of the trees at arm time (base/<ino>) */
    unsigned char saved; /* 1: data/<ino> exists (base content saved, or synced) */
} fd_info;

static fd_info g_fd[MAX_FDS];                            /* by descriptor; under g_mu */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER; /* g_fd and every record */
static char g_dirs[MAX_DIRS][PATH_MAX];                  /* the watched trees */
static size_t g_dirlen[MAX_DIRS];                        /* their lengths */
static int g_ndirs;                                      /* how many */
static char g_state[PATH_MAX];                           /* LS_POWERCUT_STATE */
static int g_on;                                         /* 1 once configured */
static unsigned long g_seq;                              /* temp record names; under g_mu */

/* The functions interposed, as the next object (libc) defines them. */
static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static int (*real_ftruncate)(int, off_t);
static int (*real_fallocate)(int, int, off_t, off_t);
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);
static int (*real_renameat2)(int, const char *, int, const char *, unsigned);
static int (*real_unlink)(const char *);
static int (*real_unlinkat)(int, const char *, int);
static int (*real_rmdir)(const char *);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_close)(int);

#define RESOLVE(name) (real_##name ? (void)0 : (void)(*(void **)&real_##name = dlsym(RTLD_NEXT, #name)))

static void resolve_all(void)
{
    RESOLVE(open);
    RESOLVE(openat);
    RESOLVE(write);
    RESOLVE(pwrite);
    RESOLVE(writev);
    RESOLVE(pwritev);
    RESOLVE(ftruncate);
    RESOLVE(fallocate);
    RESOLVE(rename);
    RESOLVE(renameat);
    RESOLVE(renameat2);
    RESOLVE(unlink);
    RESOLVE(unlinkat);
    RESOLVE(rmdir);
    RESOLVE(fsync);
    RESOLVE(fdatasync);
    RESOLVE(close);
}

/* Stop the process: a record that cannot be written would make the model lie. */
static void die(const char *what, const char *path)
{
    char msg[PATH_MAX + 128];
    int n = snprintf(msg, sizeof(msg), "powercut: %s %s: %s\n", what, path ? path : "",
                     strerror(errno));
    if (n > 0 && real_write)
        (void)!real_write(2, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
    abort();
}

__attribute__((constructor)) static void powercut_init(void)
{
    resolve_all();
    const char *dirs = getenv("LS_POWERCUT_DIRS");
    const char *state = getenv("LS_POWERCUT_STATE");
    if (!dirs || !*dirs || !state || !*state)
        return;
    snprintf(g_state, sizeof(g_state), "%s", state);
    for (const char *p = dirs; *p && g_ndirs < MAX_DIRS;) {
        size_t n = strcspn(p, ":");
        if (n > 0 && n < PATH_MAX) {
            memcpy(g_dirs[g_ndirs], p, n);
            while (n > 1 && g_dirs[g_ndirs][n - 1] == '/')
                n--;
            g_dirs[g_ndirs][n] = '\0';
            g_dirlen[g_ndirs] = n;
            g_ndirs++;
        }
        p += n + (p[n] == ':');
    }
    g_on = g_ndirs > 0;
}

/*
 * 1 when `path` (relative to `dirfd`, or AT_FDCWD) names something in a
 * watched tree (a root itself included); its absolute path into abs.
 */
static int watched(int dirfd, const char *path, char abs[PATH_MAX])
{
    char base[PATH_MAX];
    if (!g_on || !path)
        return 0;
    if (path[0] == '/') {
        snprintf(abs, PATH_MAX, "%s", path);
    } else {
        if (dirfd == AT_FDCWD) {
            if (!getcwd(base, sizeof(base)))
                return 0;
        } else {
            char link[64];
            snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
            ssize_t n = readlink(link, base, sizeof(base) - 1);
            if (n <= 0)
                return 0;
            base[n] = '\0';
        }
        if (snprintf(abs, PATH_MAX, "%s/%s", base, path) >= PATH_MAX)
            return 0;
    }
    for (int i = 0; i < g_ndirs; i++) {
        size_t n = g_dirlen[i];
        if (strncmp(abs, g_dirs[i], n) == 0 && (abs[n] == '/' || abs[n] == '\0'))
            return 1;
    }
    return 0;
}

static void state_path(char *out, const char *kind, ino_t ino)
{
    snprintf(out, PATH_MAX, "%s/%s/%llu", g_state, kind, (unsigned long long)ino);
}

static int state_has(const char *kind, ino_t ino)
{
    char p[PATH_MAX];
    struct stat st;
    state_path(p, kind, ino);
    return lstat(p, &st) == 0;
}

/* A fresh temp name in the state directory (caller holds g_mu). */
static void temp_path(char *out)
{
    snprintf(out, PATH_MAX, "%s/tmp.%ld.%lu", g_state, (long)getpid(), ++g_seq);
}

/* Write n bytes (the shim's own descriptors: no interposition). */
static void write_all(int fd, const char *buf, size_t n, const char *what)
{
    while (n > 0) {
        ssize_t w = real_write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write", what);
        buf += w;
        n -= (size_t)w;
    }
}

/*
 * data/<ino> := the whole content of the open file `src` (any access mode:
 * it is read through a descriptor of its own), with its mode and mtime.
 * Caller holds g_mu.
 */
static void save_content(int src, ino_t ino)
{
    char link[64], tmp[PATH_MAX], dst[PATH_MAX];
    struct stat st;
    static char buf[COPY_CHUNK];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", src);
    int in = real_open(link, O_RDONLY | O_CLOEXEC);
    if (in < 0 || fstat(in, &st) != 0)
        die("reopen", link);
    temp_path(tmp);
    int out = real_open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0)
        die("create", tmp);
    for (off_t off = 0;;) {
        ssize_t r = pread(in, buf, sizeof(buf), off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            die("read", link);
        if (r == 0)
            break;
        write_all(out, buf, (size_t)r, tmp);
        off += r;
    }
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    if (fchmod(out, st.st_mode & 07777) != 0 || futimens(out, times) != 0)
        die("chmod/utime", tmp);
    real_close(out);
    real_close(in);
    state_path(dst, "data", ino);
    if (real_rename(tmp, dst) != 0)
        die("rename", dst);
}

/* dirs/<ino> := the listing of the open directory `dfd`. Caller holds g_mu. */
static void save_listing(int dfd, ino_t ino)
{
    char tmp[PATH_MAX], dst[PATH_MAX], line[NAME_MAX + 64];
    int d = real_openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dir = d >= 0 ? fdopendir(d) : NULL;
    if (!dir)
        die("open directory", "(fsynced)");
    temp_path(tmp);
    int out = real_open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0)
        die("create", tmp);
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        struct stat st;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
            continue;
        int n = snprintf(line, sizeof(line), "%c %llu %s\n", S_ISDIR(st.st_mode) ? 'd' : 'f',
                         (unsigned long long)st.st_ino, e->d_name);
        write_all(out, line, (size_t)n, tmp);
    }
    closedir(dir);
    real_close(out);
    state_path(dst, "dirs", ino);
    if (real_rename(tmp, dst) != 0)
        die("rename", dst);
}

/* Follow the descriptor just opened on a watched path. */
static void track(int fd)
{
    struct stat st;
    if (fd < 0 || fd >= MAX_FDS || fstat(fd, &st) != 0)
        return;
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
        return;
    pthread_mutex_lock(&g_mu);
    fd_info *f = &g_fd[fd];
    f->ino = st.st_ino;
    f->dir = S_ISDIR(st.st_mode);
    f->base = !f->dir && state_has("base", st.st_ino);
    f->saved = !f->dir && state_has("data", st.st_ino);
    __atomic_store_n(&f->on, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&g_mu);
}

/* Before fd's file changes: a base file's arm-time content is saved first. */
static void before_change(int fd)
{
    if (fd < 0 || fd >= MAX_FDS || !__atomic_load_n(&g_fd[fd].on, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&g_mu);
    fd_info *f = &g_fd[fd];
    if (f->on && f->base && !f->saved) {
        if (!state_has("data", f->ino))
            save_content(fd, f->ino);
        f->saved = 1;
    }
    pthread_mutex_unlock(&g_mu);
}

/* Before `abs` is truncated by an open: the same, by path. */
static void before_trunc(const char *abs)
{
    struct stat st;
    char p[PATH_MAX];
    if (lstat(abs, &st) != 0 || !S_ISREG(st.st_mode))
        return;
    pthread_mutex_lock(&g_mu);
    if (state_has("base", st.st_ino) && !state_has("data", st.st_ino)) {
        state_path(p, "base", st.st_ino);
        int fd = real_open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            die("open", p);
        save_content(fd, st.st_ino);
        real_close(fd);
    }
    pthread_mutex_unlock(&g_mu);
}

/*
 * Before `abs` (watched) loses its name (unlink, rmdir, rename over it):
 * its inode stays allocated until the cut, so its number means it alone.
 */
static void before_unname(const char *abs)
{
    struct stat st;
    char p[PATH_MAX];
    if (lstat(abs, &st) != 0)
        return;
    pthread_mutex_lock(&g_mu);
    if (S_ISDIR(st.st_mode)) {
        (void)real_open(abs, O_PATH | O_DIRECTORY | O_CLOEXEC); /* held until exit */
    } else if (S_ISREG(st.st_mode) && !state_has("base", st.st_ino) &&
               !state_has("keep", st.st_ino)) {
        state_path(p, "keep", st.st_ino);
        if (link(abs, p) != 0 && errno != EEXIST)
            die("link", p);
    }
    pthread_mutex_unlock(&g_mu);
}

/* After a successful fsync/fdatasync of fd: record what is durable now. */
static void after_sync(int fd)
{
    if (fd < 0 || fd >= MAX_FDS || !__atomic_load_n(&g_fd[fd].on, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&g_mu);
    fd_info *f = &g_fd[fd];
    if (f->on) {
        if (f->dir) {
            save_listing(fd, f->ino);
        } else {
            save_content(fd, f->ino);
            f->saved = 1;
        }
    }
    pthread_mutex_unlock(&g_mu);
}

/* ---- the interposed calls ---- */

static int do_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    char abs[PATH_MAX];
    int w = watched(dirfd, path, abs);
    if (w && (flags & O_TRUNC))
        before_trunc(abs);
    int fd = real_openat(dirfd, path, flags, mode);
    if (w && fd >= 0 && !(flags & O_PATH)) {
        int e = errno;
        track(fd);
        errno = e;
    }
    return fd;
}

static mode_t mode_arg(int flags, va_list ap)
{
    int need = (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
    return need ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return do_openat(AT_FDCWD, path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return do_openat(AT_FDCWD, path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return do_openat(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return do_openat(dirfd, path, flags, mode);
}

int creat(const char *path, mode_t mode)
{
    return do_openat(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, mode);
}

int creat64(const char *path, mode_t mode)
{
    return do_openat(AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC, mode);
}

ssize_t write(int fd, const void *buf, size_t n)
{
    before_change(fd);
    return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    before_change(fd);
    return real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    before_change(fd);
    return real_pwrite(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    before_change(fd);
    return real_writev(fd, iov, cnt);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
    before_change(fd);
    return real_pwritev(fd, iov, cnt, off);
}

int ftruncate(int fd, off_t len)
{
    before_change(fd);
    return real_ftruncate(fd, len);
}

int ftruncate64(int fd, off_t len)
{
    before_change(fd);
    return real_ftruncate(fd, len);
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
    before_change(fd);
    return real_fallocate(fd, mode, off, len);
}

int fsync(int fd)
{
    int rc = real_fsync(fd);
    if (rc == 0)
        after_sync(fd);
    return rc;
}

int fdatasync(int fd)
{
    int rc = real_fdatasync(fd);
    if (rc == 0)
        after_sync(fd);
    return rc;
}

int close(int fd)
{
    if (fd >= 0 && fd < MAX_FDS && __atomic_load_n(&g_fd[fd].on, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&g_mu);
        memset(&g_fd[fd], 0, sizeof(g_fd[fd]));
        pthread_mutex_unlock(&g_mu);
    }
    return real_close(fd);
}

int unlink(const char *path)
{
    char abs[PATH_MAX];
    if (watched(AT_FDCWD, path, abs))
        before_unname(abs);
    return real_unlink(path);
}

int unlinkat(int dirfd, const char *path, int flags)
{
    char abs[PATH_MAX];
    if (watched(dirfd, path, abs))
        before_unname(abs);
    return real_unlinkat(dirfd, path, flags);
}

int rmdir(const char *path)
{
    char abs[PATH_MAX];
    if (watched(AT_FDCWD, path, abs))
        before_unname(abs);
    return real_rmdir(path);
}

int rename(const char *from, const char *to)
{
    char abs[PATH_MAX];
    if (watched(AT_FDCWD, to, abs))
        before_unname(abs);
    return real_rename(from, to);
}

int renameat(int fromfd, const char *from, int tofd, const char *to)
{
    char abs[PATH_MAX];
    if (watched(tofd, to, abs))
        before_unname(abs);
    return real_renameat(fromfd, from, tofd, to);
}

int renameat2(int fromfd, const char *from, int tofd, const char *to, unsigned flags)
{
    char abs[PATH_MAX];
    if (watched(tofd, to, abs))
        before_unname(abs);
    return real_renameat2(fromfd, from, tofd, to, flags);
}
