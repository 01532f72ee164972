/*
 * restore_file.c - restore a backup file, either to a new path or into the
 * place of an existing database (ls_restore_file).
 *
 * Invariants:
 *   - Nothing visible changes until the restored copy is complete, has passed
 *     PRAGMA integrity_check and is on disk: a corrupt or unreadable backup
 *     leaves every file as it was (at most a temp file existed, and it is gone).
 *   - An existing file is never overwritten: `-o PATH` must not exist, and
 *     with `replace` the old database (and its -wal / -journal) is first kept
 *     whole under <DB>.pre-restore(-wal|-journal), so the pre-restore copy
 *     opens in SQLite with every transaction it had committed.
 *   - A database some other process has open is never replaced.
 *
 * THE RESTORE PROCEDURE
 *
 *   1. Check the backup (exists, SQLite header) and the destination:
 *      with -o it must not exist; with `replace` it must be a regular SQLite
 *      file or absent, and <DB>.pre-restore(-wal|-shm|-journal) must not
 *      exist (LS_EEXIST: the user moves the previous one away). Where no
 *      database exists at the destination, no -wal, -shm or -journal may
 *      either (ls_publish_check): SQLite would replay a stranger's WAL or roll
 *      back a stranger's journal into the restored file. With `replace`,
 *      refuse (LS_EBUSY) while another process has the database open
 *      (check_not_in_use); the existing database's own siblings are its
 *      state, moved aside with it in step 7.
 *   2. Create the temp file next to the destination (fsutil's protocol). Its
 *      mode is the replaced database's (and its owner, when we may set it), so
 *      the application can still open its database; otherwise the backup's
 *      mode, as backup gives a copy the source's mode.
 *   3. Copy the backup into it, hashing on the way (copy_backup). A backup
 *      with a -wal or -journal next to it is a database someone opened: its
 *      committed state is read through the consistent reader (db.h), so a
 *      stale WAL's committed frames are included and an uncommitted tail is
 *      not. Otherwise its bytes are copied as they are (the restored file then
 *      has the backup's own SHA-256).
 *   4. Integrity-check the copy (ls_integrity_check, shared with verify).
 *      This checks exactly what will be published, so a corrupt backup is
 *      refused and so is a copy damaged on the way.
 *   5. fdatasync the copy.
 *   6. -o: publish without replacing anything, fsync the directory
 *      (ls_publish checks the siblings again). Done.
 *   7. replace: check again that nobody has the database open (it may have
 *      been opened during the copy), then swap_in().
 */
#define _GNU_SOURCE
#include "db.h"
#include "fsutil.h"
#include "hash.h"
#include "verify.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK_BYTES (1u << 20)
#define BUSY_MS 5000

/* SQLite's lock bytes (os_unix.c): PENDING, RESERVED, then 510 SHARED bytes. */
#define DB_LOCK_START 0x40000000LL
#define DB_LOCK_LEN 512
/* In the -shm file: 8 WAL locks at 120..127, then the "DMS" byte 128 that every
 * open WAL connection holds a shared lock on for as long as it is open. */
#define SHM_LOCK_START 120
#define SHM_LOCK_LEN 9

/* A database path and the names SQLite derives from it. */
typedef struct db_names {
    char db[PATH_MAX];          /* the database file */
    char wal[PATH_MAX + 8];     /* <db>-wal */
    char shm[PATH_MAX + 8];     /* <db>-shm */
    char journal[PATH_MAX + 8]; /* <db>-journal */
} db_names;

static int names_init(ls_ctx *ctx, db_names *n, const char *db, const char *suffix)
{
    int a = snprintf(n->db, sizeof(n->db), "%s%s", db, suffix);
    if (a < 0 || (size_t)a >= sizeof(n->db))
        return ls_err(ctx, LS_EUSAGE, "path too long: %s%s", db, suffix);
    snprintf(n->wal, sizeof(n->wal), "%s-wal", n->db);
    snprintf(n->shm, sizeof(n->shm), "%s-shm", n->db);
    snprintf(n->journal, sizeof(n->journal), "%s-journal", n->db);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Is the database in use?                                                 */

/* 1 if another process holds a lock in [start, start+len) of `path`. */
static int lock_held(const char *path, off_t start, off_t len)
{
    struct flock fl;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return 0;
    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = start;
    fl.l_len = len;
    /* An OFD query also reports the POSIX locks SQLite takes; older kernels
     * lack it and get the classic query. */
    int r = fcntl(fd, F_OFD_GETLK, &fl);
    if (r != 0 && errno == EINVAL) {
        memset(&fl, 0, sizeof(fl));
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        fl.l_start = start;
        fl.l_len = len;
        r = fcntl(fd, F_GETLK, &fl);
    }
    close(fd);
    return r == 0 && fl.l_type != F_UNLCK;
}

/*
 * Scan /proc/<pid>/fd of every other process for a descriptor on one of the
 * files `ids` (compared by device and inode, so other names of the same file
 * count). Returns the index of the file found and sets *pid and comm, or -1.
 * Processes whose descriptors we may not read (other users) are skipped.
 */
static int proc_holder(const struct stat *ids, int nids, long *pid, char *comm, size_t commsz)
{
    DIR *proc = opendir("/proc");
    struct dirent *pe;
    int found = -1;
    long self = (long)getpid();
    if (!proc)
        return -1;
    while (found < 0 && (pe = readdir(proc)) != NULL) {
        char *end = NULL, fddir[64];
        long p = strtol(pe->d_name, &end, 10);
        if (p <= 0 || *end || p == self)
            continue;
        snprintf(fddir, sizeof(fddir), "/proc/%ld/fd", p);
        DIR *fds = opendir(fddir);
        if (!fds)
            continue;
        struct dirent *fe;
        while (found < 0 && (fe = readdir(fds)) != NULL) {
            struct stat st;
            if (fe->d_name[0] == '.' || fstatat(dirfd(fds), fe->d_name, &st, 0) != 0)
                continue;
            for (int i = 0; i < nids; i++)
                if (st.st_dev == ids[i].st_dev && st.st_ino == ids[i].st_ino)
                    found = i;
        }
        closedir(fds);
        if (found >= 0) {
            char cpath[64];
            *pid = p;
            ls_strlcpy(comm, "?", commsz);
            snprintf(cpath, sizeof(cpath), "/proc/%ld/comm", p);
            FILE *f = fopen(cpath, "re");
            if (f) {
                if (fgets(comm, (int)commsz, f))
                    comm[strcspn(comm, "\n")] = '\0';
                fclose(f);
            }
        }
    }
    closedir(proc);
    return found;
}

/*
 * 0 when no other process has the database open, else LS_EBUSY naming the
 * holder. Two probes, because neither sees everything:
 *   a. /proc/<pid>/fd of every other process, for the database, its -wal,
 *      -shm or -journal: a connection idle in rollback-journal mode holds no
 *      lock at all, but it holds the file open;
 *   b. SQLite's locks: the database's lock bytes, and the -shm bytes every
 *      WAL connection holds while it is open. This also sees processes of
 *      other users, whose /proc/<pid>/fd we may not read.
 * Caveat for library users: probe b opens and closes the files, which drops
 * POSIX locks this same process holds on them (see fcntl(2)); never restore
 * over a database the calling process itself has open.
 */
static int check_not_in_use(ls_ctx *ctx, const db_names *n)
{
    const char *files[4] = {n->db, n->wal, n->shm, n->journal};
    const char *which[4];
    struct stat ids[4];
    int nids = 0;
    long pid = 0;
    char comm[64];

    for (int i = 0; i < 4; i++)
        if (stat(files[i], &ids[nids]) == 0)
            which[nids++] = files[i];
    if (nids == 0)
        return 0;
    int k = proc_holder(ids, nids, &pid, comm, sizeof(comm));
    if (k >= 0)
        return ls_err(ctx, LS_EBUSY, "%s is open in process %ld (%s): stop it before restoring",
                      which[k], pid, comm);
    if (lock_held(n->db, DB_LOCK_START, DB_LOCK_LEN))
        return ls_err(ctx, LS_EBUSY, "%s is locked by another process: stop it before restoring",
                      n->db);
    if (lock_held(n->shm, SHM_LOCK_START, SHM_LOCK_LEN))
        return ls_err(ctx, LS_EBUSY,
                      "%s is in use by another process (%s is locked): stop it before restoring",
                      n->db, n->shm);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Copy and swap                                                           */

/*
 * Step 3: copy the committed content of `backup` to `fd` (empty, offset 0)
 * and hash it. `through_sqlite` selects the consistent reader (a -wal or
 * -journal sits next to the backup) over a plain copy of the bytes.
 * Fills res->size_bytes and res->sha256. LS_ECANCEL when cancelled.
 */
static int copy_backup(ls_ctx *ctx, const char *backup, int through_sqlite, int fd,
                       const char *tmp, ls_restore_file_result *res)
{
    ls_dbread *r = NULL;
    ls_sha256 *h = ls_sha256_new();
    uint8_t *buf = malloc(CHUNK_BYTES);
    int in = -1, rc = 0;
    uint64_t off = 0;

    if (!h || !buf) {
        rc = ls_err(ctx, LS_ENOMEM, "out of memory");
        goto cleanup;
    }
    if (through_sqlite) {
        if ((rc = ls_dbread_open(ctx, backup, BUSY_MS, &r)) == LS_EWRITELOCK)
            rc = ls_err_recode(ctx, LS_EBUSY);
        if (rc != 0)
            goto cleanup;
        const uint32_t ps = r->page_size;
        const uint32_t per = CHUNK_BYTES / ps ? CHUNK_BYTES / ps : 1;
        for (uint64_t pg = 1; pg <= r->page_count;) {
            uint32_t cnt = (uint32_t)(r->page_count - pg + 1 < per ? r->page_count - pg + 1 : per);
            size_t len = (size_t)cnt * ps;
            if ((rc = ls_dbread_pages(r, pg, cnt, buf)) != 0 ||
                (rc = ls_write_all(ctx, fd, buf, len, (off_t)off, tmp)) != 0)
                goto cleanup;
            ls_sha256_update(h, buf, len);
            off += len;
            pg += cnt;
        }
    } else {
        in = open(backup, O_RDONLY | O_CLOEXEC);
        if (in < 0) {
            rc = ls_err_errno(ctx, errno, "open %s", backup);
            goto cleanup;
        }
        for (;;) {
            size_t got = 0;
            if (ls_cancelled(ctx)) {
                rc = ls_err(ctx, LS_ECANCEL, "restore cancelled");
                goto cleanup;
            }
            if ((rc = ls_pread_full(ctx, in, buf, CHUNK_BYTES, (off_t)off, &got, backup)) != 0)
                goto cleanup;
            if (got == 0)
                break;
            if ((rc = ls_write_all(ctx, fd, buf, got, (off_t)off, tmp)) != 0)
                goto cleanup;
            ls_sha256_update(h, buf, got);
            off += got;
        }
    }
    res->size_bytes = off;
    ls_sha256_final(h, res->sha256);
    h = NULL;

cleanup:
    ls_sha256_free(h);
    free(buf);
    if (in >= 0)
        close(in);
    ls_dbread_close(r);
    return rc;
}

/*
 * Keep `from` under the name `to` without replacing anything: a hard link,
 * so `from` stays in place until the swap; where the file system has no hard
 * links, a no-replace rename. Sets *renamed in that case.
 */
static int set_aside(ls_ctx *ctx, const char *from, const char *to, int *renamed)
{
    if (link(from, to) == 0)
        return 0;
    int e = errno;
    if (e == EEXIST)
        return ls_err(ctx, LS_EEXIST, "%s exists (left by an earlier restore?): move it away first",
                      to);
    if (e != EPERM && e != EOPNOTSUPP && e != EXDEV && e != EMLINK && e != ENOSYS)
        return ls_err_errno(ctx, e, "link %s to %s", from, to);
    *renamed = 1;
    return ls_publish(ctx, from, to);
}

/* unlink that accepts a missing file. */
static int remove_if_present(ls_ctx *ctx, const char *path)
{
    if (unlink(path) != 0 && errno != ENOENT)
        return ls_err_errno(ctx, errno, "remove %s", path);
    return 0;
}

/*
 * Step 7 for an existing database `n` (checked unused just before):
 *   a. keep the old state whole: <db>, <db>-wal and <db>-journal get their
 *      .pre-restore names (hard links), and the directory is fsynced. A crash
 *      from here on leaves the complete old state under those names.
 *   b. remove <db>-journal, <db>-wal and <db>-shm: they belong to the old
 *      database, and a WAL left next to the restored file would be replayed
 *      into it (a hot journal rolled back into it).
 *   c. rename the temp file over <db>: the name changes from old to new in one
 *      step and never vanishes. This replaces only the inode that step a kept
 *      as <db>.pre-restore (checked first), and only while no sibling is back
 *      (ls_publish_check: one that appeared after step b belongs to someone
 *      who opened the database meanwhile); where step a had to rename, <db>
 *      is gone and the temp is published without replacing anything.
 *   d. fsync the directory.
 */
static int swap_in(ls_ctx *ctx, const db_names *n, const db_names *pre, ls_tmpfile *t)
{
    struct stat a, b;
    int renamed = 0, rc;

    /* a. On a failure here, links made so far are undone (renames cannot be). */
    const char *from[3] = {n->db, n->wal, n->journal}, *to[3] = {pre->db, pre->wal, pre->journal};
    int made[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        if (i > 0 && !ls_path_exists(from[i]))
            continue;
        if ((rc = set_aside(ctx, from[i], to[i], &renamed)) != 0) {
            while (!renamed && i-- > 0)
                if (made[i])
                    unlink(to[i]);
            return rc;
        }
        made[i] = 1;
    }
    if ((rc = ls_fsync_parent(ctx, n->db)) != 0)
        return rc;

    /* b. */
    if ((rc = remove_if_present(ctx, n->journal)) != 0 ||
        (rc = remove_if_present(ctx, n->wal)) != 0 || (rc = remove_if_present(ctx, n->shm)) != 0)
        return rc;

    /* c, d. */
    if ((rc = ls_publish_check(ctx, n->db)) != 0) {
        char why[1024];
        ls_strlcpy(why, ls_errmsg(ctx), sizeof(why));
        return ls_err(ctx, rc, "%s (the old database is kept as %s)", why, pre->db);
    }
    if (lstat(n->db, &a) != 0) {
        if (errno != ENOENT || !renamed)
            return ls_err_errno(ctx, errno, "%s", n->db);
        t->flags &= ~LS_TMPFILE_REPLACE; /* <db> is gone: publish without replacing */
        return ls_tmpfile_commit(ctx, t);
    }
    if (stat(pre->db, &b) != 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino)
        return ls_err(ctx, LS_EBUSY, "%s changed during the restore; the old database is in %s",
                      n->db, pre->db);
    return ls_tmpfile_commit(ctx, t);
}

/*
 * Step 1 for the destination: fills `n` (and `pre` with `replace`) and
 * *exists, checks what the header comment lists, and returns the stat of
 * the existing database in *st.
 */
static int check_destination(ls_ctx *ctx, const char *dest, int replace, db_names *n,
                             db_names *pre, int *exists, struct stat *st)
{
    int rc;
    if ((rc = names_init(ctx, n, dest, "")) != 0 ||
        (rc = names_init(ctx, pre, dest, ".pre-restore")) != 0)
        return rc;
    *exists = lstat(n->db, st) == 0;
    if (*exists && !replace)
        return ls_err(ctx, LS_EEXIST, "%s: destination exists", n->db);
    if (!*exists)
        return ls_publish_check(ctx, n->db);
    if (!S_ISREG(st->st_mode))
        return ls_err(ctx, LS_EUSAGE, "%s is not a regular file (give the database's real path)",
                      n->db);
    if (st->st_size > 0) {
        ls_db_hdr hdr;
        if ((rc = ls_db_probe(ctx, n->db, &hdr)) != 0)
            return ls_err(ctx, rc, "%s is not an SQLite database: refusing to replace it", n->db);
    }
    const char *taken[4] = {pre->db, pre->wal, pre->shm, pre->journal};
    for (int i = 0; i < 4; i++)
        if (ls_path_exists(taken[i]))
            return ls_err(ctx, LS_EEXIST,
                          "%s exists (left by an earlier restore?): move it away first", taken[i]);
    return check_not_in_use(ctx, n);
}

/*
 * Step 1 for the backup: fills res->source and `src` (its names), checks it
 * is an SQLite file, and returns its stat in *st.
 */
static int check_backup(ls_ctx *ctx, const char *backup, ls_restore_file_result *res,
                        db_names *src, struct stat *st)
{
    char abs[PATH_MAX];
    int rc = ls_db_resolve(ctx, backup, abs, sizeof(abs), st);
    if (!rc)
        rc = ls_strdup(ctx, &res->source, abs);
    return rc ? rc : names_init(ctx, src, res->source, "");
}

/* Step 4: the copy passes PRAGMA integrity_check, else LS_ECORRUPT. */
static int check_copy(ls_ctx *ctx, const char *tmp, ls_restore_file_result *res)
{
    ls_verify_result vr;
    int rc;
    memset(&vr, 0, sizeof(vr));
    if ((rc = ls_integrity_check(ctx, tmp, &vr)) == 0 && !vr.integrity_ok)
        rc = ls_err(ctx, LS_ECORRUPT, "%s fails its integrity check (%s): nothing was restored",
                    res->source, vr.integrity_message);
    if (rc == 0)
        res->page_count = vr.page_count;
    ls_verify_result_free(&vr);
    return rc;
}

int ls_restore_file(ls_ctx *ctx, const char *backup, const char *out, int replace,
                    ls_restore_file_result *res)
{
    db_names dst, pre, src;
    struct stat bst, dst_st;
    ls_tmpfile t = LS_TMPFILE_INIT;
    int exists = 0, through_sqlite, rc;
    mode_t mode;
    uint64_t t0 = ls_now_ms();

    memset(res, 0, sizeof(*res));
    ls_err_clear(ctx);
    if (!backup || !out)
        return ls_err(ctx, LS_EUSAGE, "restore needs a backup and a destination");

    /* 1. The backup, then the destination. */
    if ((rc = check_backup(ctx, backup, res, &src, &bst)) != 0)
        return rc;
    if ((rc = ls_abspath_dup(ctx, out, &res->destination)) != 0)
        return rc;
    if (strcmp(res->source, res->destination) == 0)
        return ls_err(ctx, LS_EUSAGE, "%s: backup and destination are the same file", out);
    if ((rc = check_destination(ctx, res->destination, replace, &dst, &pre, &exists, &dst_st)))
        return rc;

    /* 2. The temp file: the replaced database's mode and owner, else the backup's
     *    mode. An existing database is replaced by swap_in (its siblings are its
     *    own, checked in step 1), a new one published without replacing. */
    mode = (exists ? dst_st.st_mode : bst.st_mode) & 0777;
    if ((rc = ls_tmpfile_begin(ctx, &t, dst.db, mode, exists ? LS_TMPFILE_REPLACE : 0)) != 0)
        goto cleanup;
    if (exists && (dst_st.st_uid != geteuid() || dst_st.st_gid != getegid()) &&
        fchown(t.fd, dst_st.st_uid, dst_st.st_gid) != 0)
        ls_log(ctx, LS_LOG_WARN, "restore cannot give the restored file the owner of %s "
               "(uid=%ld gid=%ld): %s", dst.db, (long)dst_st.st_uid, (long)dst_st.st_gid,
               strerror(errno));

    /* 3. Copy and hash. */
    through_sqlite = ls_path_exists(src.wal) || ls_path_exists(src.journal);
    if ((rc = copy_backup(ctx, res->source, through_sqlite, t.fd, t.path, res)) != 0)
        goto cleanup;

    /* 4. Check what will be published. */
    if ((rc = check_copy(ctx, t.path, res)) != 0)
        goto cleanup;

    /* 5. Durable. */
    if ((rc = ls_tmpfile_sync(ctx, &t)) != 0)
        goto cleanup;

    /* 6, 7. Visible. (pre_restore is copied first: nothing can fail after the swap.) */
    if (exists) {
        if ((rc = ls_strdup(ctx, &res->pre_restore, pre.db)) != 0 ||
            (rc = check_not_in_use(ctx, &dst)) != 0 || (rc = swap_in(ctx, &dst, &pre, &t)) != 0) {
            free(res->pre_restore); /* nothing was moved aside */
            res->pre_restore = NULL;
            goto cleanup;
        }
    } else if ((rc = ls_tmpfile_commit(ctx, &t)) != 0) {
        goto cleanup;
    }
    res->elapsed_ms = ls_now_ms() - t0;
    ls_log(ctx, LS_LOG_INFO, "restore done backup=%s dest=%s pre_restore=%s bytes=%llu ms=%llu",
           res->source, res->destination, res->pre_restore ? res->pre_restore : "-",
           (unsigned long long)res->size_bytes, (unsigned long long)res->elapsed_ms);

cleanup:
    ls_tmpfile_abort(&t);
    return rc;
}

void ls_restore_file_result_free(ls_restore_file_result *res)
{
    if (!res)
        return;
    free(res->source);
    free(res->destination);
    free(res->pre_restore);
    res->source = res->destination = res->pre_restore = NULL;
}
