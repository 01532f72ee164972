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
 */
#ifndef LS_FSUTIL_H
#define LS_FSUTIL_H

#include "internal.h"

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
 * Replacing publication, for stores whose objects are rewritten in place
 * (a file replica's put): rename tmp over dest, replacing whatever is there,
 * then fsync the directory. Same protocol as above otherwise: the caller
 * wrote and synced tmp, in dest's directory.
 */
int ls_replace(ls_ctx *ctx, const char *tmp, const char *dest);
/*
 * mkdir -p: create `path` and its missing parents with permission bits
 * `mode` (the umask applies). Each directory created is made durable by an
 * fsync of its parent. An existing directory is success; an existing file in
 * the way fails with LS_ENOENT (ENOTDIR).
 */
int ls_mkdir_p(ls_ctx *ctx, const char *path, mode_t mode);

#endif
