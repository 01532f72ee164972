/*
 * fsutil.h - file-system helpers: full reads and writes, temp files next to a
 * destination, atomic no-clobber publication, directory fsync.
 *
 * Publication protocol (every file litesafe creates for a user goes through it):
 *   0. ls_publish_check() before any work: no SQLite sibling of the
 *      destination ("<dest>-wal", "<dest>-shm", "<dest>-journal") may exist.
 *      SQLite pairs them with a database by name alone, so the next open of a
 *      file published next to a stranger's WAL replays that WAL into it, and
 *      a hot journal is rolled back into it (sqlite.org/howtocorrupt.html,
 *      1.4). Refused with LS_EEXIST naming the sibling; never removed: it may
 *      be the only copy of someone's committed transactions.
 *   1. ls_tmp_create(): "<dir>/.<base>.<pid>.litesafe-tmp", O_EXCL, in the
 *      destination's own directory so the final step is a rename. Siblings
 *      of that name are litesafe's own (a dead process with the same pid) and
 *      are removed, so SQLite opening the temp file (integrity check) reads
 *      nothing but it.
 *   2. the caller writes it, then ls_fd_sync() (fdatasync) it.
 *   3. ls_publish(): step 0 again (a sibling may have appeared during a long
 *      restore or backup), then rename without replacing (renameat2
 *      RENAME_NOREPLACE, or link()+unlink() where the file system lacks it),
 *      then fsync of the directory. An existing destination is never replaced
 *      (LS_EEXIST). What is left is the instant between the check and the
 *      rename: no file system call checks a name and renames to another in
 *      one step.
 * A crash before step 3 leaves only the temp file, which ls_tmp_sweep() removes
 * on the next run once its owner process is gone.
 *
 * ls_tmpfile (below) is the whole protocol as one object, begin / commit /
 * abort: the one way to write a file whole and then make it visible. Use it
 * rather than the single steps.
 */
#ifndef LS_FSUTIL_H
#define LS_FSUTIL_H

#include "internal.h"

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

/* Write all of buf at offset (or at the current position when off < 0). */
int ls_write_all(ls_ctx *ctx, int fd, const void *buf, size_t n, off_t off, const char *what);
/* Read exactly n bytes at off; a short read (end of file) returns LS_EIO unless *got is given. */
int ls_pread_full(ls_ctx *ctx, int fd, void *buf, size_t n, off_t off, size_t *got,
                  const char *what);
/* fdatasync with a message naming `what`. */
int ls_fd_sync(ls_ctx *ctx, int fd, const char *what);
/* fsync the directory that contains `path`. */
int ls_fsync_parent(ls_ctx *ctx, const char *path);

/* Absolute, normalised form of path (the file need not exist; its directory must). */
int ls_abspath(ls_ctx *ctx, const char *path, char *out, size_t outsz);
/* ls_abspath into a malloc'd string in *out (the caller frees it; NULL on failure). */
int ls_abspath_dup(ls_ctx *ctx, const char *path, char **out);
/* Directory part and base name of a path into the given buffers. */
void ls_path_split(const char *path, char *dir, size_t dirsz, char *base, size_t basesz);
/* 1 if path exists (any type, dangling links included), 0 if not. */
int ls_path_exists(const char *path);

/*
 * Create the temp file for `dest` with permission bits `mode`. Returns the
 * fd in *fd and the name in tmp. Fails with LS_ENOENT if the directory is missing.
 */
int ls_tmp_create(ls_ctx *ctx, const char *dest, mode_t mode, char *tmp, size_t tmpsz, int *fd);
/*
 * Remove the temp files and directories that processes which no longer run
 * left in `dest`'s directory (any ".<name>.<pid>.litesafe-tmp", so a killed
 * timestamped backup is cleaned by the next one whatever its name), and the
 * SQLite siblings of such names ("...litesafe-tmp-wal", "-shm", "-journal").
 */
void ls_tmp_sweep(const char *dest);
/*
 * A private temp directory (0700) next to `dest`, named like a temp file, for
 * work whose side files must not be visible to anyone (VACUUM INTO). Remove it
 * with ls_tmp_dir_remove().
 */
int ls_tmp_dir_create(ls_ctx *ctx, const char *dest, char *tmp, size_t tmpsz);
void ls_tmp_dir_remove(const char *tmp);
/*
 * Step 0: 0 when none of dest's SQLite siblings exists (a dangling symbolic
 * link counts: SQLite would create its target), else LS_EEXIST with the
 * message "<sibling> exists: a database published next to it would replay
 * it; remove it or choose another path".
 */
int ls_publish_check(ls_ctx *ctx, const char *dest);
/*
 * Step 3: ls_publish_check(dest), then publish tmp at dest without replacing
 * anything, then fsync the directory. On failure tmp is left in place (the
 * caller removes it) and dest is not created.
 */
int ls_publish(ls_ctx *ctx, const char *tmp, const char *dest);

/*
 * ONE FILE, WRITTEN WHOLE, THEN PUBLISHED (ls_tmpfile): steps 0-3 above.
 *
 *     ls_tmpfile t = LS_TMPFILE_INIT;
 *     if ((rc = ls_tmpfile_begin(ctx, &t, dest, mode, 0)) != 0)   steps 0, 1
 *         goto cleanup;
 *     ... write t.fd (its name is t.path) ...
 *     rc = ls_tmpfile_commit(ctx, &t);                              steps 2, 3
 * cleanup:
 *     ls_tmpfile_abort(&t);      always: removes what is left, a no-op after commit
 *
 * Every failure leaves either a complete `dest` or none, and after abort no
 * temp file. ls_tmpfile_sync() is step 2 alone, for callers that check the
 * file (integrity_check) or the world (is the database in use?) between
 * making it durable and publishing it: commit then only publishes.
 *
 * Users: backup.c, restore_file.c, src/replication/restore.c (flags 0,
 * ls_tmpfile_sync before its integrity check) and src/storage/file.c (put:
 * flags LS_TMPFILE_REPLACE | LS_TMPFILE_UNIQUE | LS_TMPFILE_UMASK, in a loop
 * that re-creates the directory on LS_ENOENT).
 */
#define LS_TMPFILE_REPLACE 0x1u /* commit renames over `dest`, whatever is there;
                                   begin checks neither dest nor its
                                   siblings. Default: dest and its siblings must not
                                   exist (step 0), and commit never replaces. */
#define LS_TMPFILE_UNIQUE 0x2u  /* a fresh random name per begin,
                                   ".<base>.<pid>.<16 hex>.tmp", that no sweep
                                   removes: for writers that may run at once on one
                                   dest, from several processes or hosts sharing a
                                   mount (a pid then proves nothing). Default: the
                                   per-process name of ls_tmp_create, swept first. */
#define LS_TMPFILE_UMASK 0x4u   /* the umask applies to `mode`, as to any file a
                                   store creates. Default: exactly `mode`. */
#define LS_TMPFILE_DIR 0x8u     /* for a file someone else creates (SQLite's VACUUM
                                   INTO): begin makes a private 0700 directory
                                   (ls_tmp_dir_create) and t.path is "<it>/db" with
                                   t.fd -1; ls_tmpfile_sync opens the file and gives
                                   it `mode`. Abort removes the directory and all in
                                   it (SQLite's side files too). */

typedef struct ls_tmpfile {
    int fd;                   /* the temp file open for writing; -1 after sync (and,
                                 with LS_TMPFILE_DIR, until sync opens it) */
    int synced;               /* step 2 done: contents durable, fd closed */
    unsigned flags;           /* LS_TMPFILE_* given to begin */
    mode_t mode;              /* permission bits of the published file */
    char path[PATH_MAX + 64]; /* the temp file; "" when there is none to remove */
    char dir[PATH_MAX + 64];  /* LS_TMPFILE_DIR: the private directory, else "" */
    char dest[PATH_MAX];      /* where commit publishes it */
} ls_tmpfile;
#define LS_TMPFILE_INIT {.fd = -1}

/*
 * Steps 0 and 1: unless LS_TMPFILE_REPLACE, LS_EEXIST when `dest` or one of
 * its SQLite siblings exists (ls_publish_check); then (unless
 * LS_TMPFILE_UNIQUE) ls_tmp_sweep(dest), then the temp file in dest's
 * directory with permission bits `mode`. LS_ENOENT when the directory is
 * missing. On failure nothing was created and `t` is empty (abort is a no-op).
 */
int ls_tmpfile_begin(ls_ctx *ctx, ls_tmpfile *t, const char *dest, mode_t mode,
                     unsigned flags);
/*
 * Step 2: fdatasync and close the temp file (with LS_TMPFILE_DIR, open it and
 * set its mode first). Done once; later calls return 0. On failure the temp
 * file stays for ls_tmpfile_abort().
 */
int ls_tmpfile_sync(ls_ctx *ctx, ls_tmpfile *t);
/*
 * Steps 2 (unless done) and 3: publish the temp file at t->dest, without
 * replacing anything (ls_publish: the siblings are checked again) or, with
 * LS_TMPFILE_REPLACE in t->flags, over whatever is there; then fsync the
 * directory. A caller may change LS_TMPFILE_REPLACE in t->flags before
 * commit (restore swaps a file into a place it emptied itself). On failure
 * before the rename the temp file stays for ls_tmpfile_abort() and dest is
 * untouched; when only the directory fsync fails, dest is in place (and may
 * not survive a crash) and the error is returned.
 */
int ls_tmpfile_commit(ls_ctx *ctx, ls_tmpfile *t);
/* Close and remove what is left of the temp file (and directory); `t` is empty after. */
void ls_tmpfile_abort(ls_tmpfile *t);

/*
 * mkdir -p: create `path` and its missing parents with permission bits
 * `mode` (the umask applies). Each directory created is made durable by an
 * fsync of its parent. An existing directory is success; an existing file in
 * the way fails with LS_ENOENT (ENOTDIR).
 */
int ls_mkdir_p(ls_ctx *ctx, const char *path, mode_t mode);

#endif
