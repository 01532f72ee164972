/*
 * storage/sftp.c - the SFTP backend (libssh2): a replica is a directory tree
 * on an SSH server, and a key is a path below its remote root. This file has
 * the file operations (put, get, list, stat, del) and open/close.
 *
 * Root. opts->path names the remote root directory: one
 * starting with '/' is absolute, anything else is relative to the login
 * directory the server gives the session ("" = the login directory itself).
 * The config layer strips the leading '/' of a URL path, as Litestream 0.3
 * does (its ParseReplicaURL trims it and its SFTP client then resolves the
 * path against the login directory): so "sftp://u@h/backups/db" is
 * ~/backups/db on a normal server, and an absolute root needs the config
 * file's `path: /abs/dir`. desc shows a relative root as "/~/rel".
 *
 * Sessions (sftp_session.c): connecting, host-key verification,
 * authentication and the pool of SSH sessions that every call below takes
 * one from and gives back.
 *
 * put is all-or-nothing:
 *   1. open "<dir>/.<base>.<16 random hex>.tmp" (create, exclusive); if the
 *      directory is missing, mkdir -p it and retry (a concurrent delete may
 *      remove it again: a few tries);
 *   2. stream the source into it, SFTP_BUF bytes at a time;
 *   3. fsync@openssh.com when the server has it (ignored when it does not),
 *      close (the server reports late write errors here);
 *   4. rename it to the key. OpenSSH refuses to rename onto an existing
 *      name (it links then unlinks, and libssh2 1.10 has no posix-rename),
 *      so over an existing key: rename the old object aside to
 *      ".<base>.<random>.old", rename the new one in, unlink the old one.
 *      If the second rename fails, the old object is renamed back. Between
 *      the two renames (one round trip) a reader sees no object (LS_ENOENT);
 *      a crash or a lost connection there leaves the old object under its
 *      hidden ".old" name (the caller's retry of the put then writes the key).
 *      Core's keys are almost all written once, so this window is rare.
 * On failure the temp file is removed (when the session still works). Names
 * starting with '.' are the backend's own: list skips them, keys cannot use
 * them, and every put picks a fresh one.
 *
 * get opens the object, seeks to the range start and streams it. list walks
 * the remote tree below the deepest directory the prefix names (skipping
 * names starting with '.', symbolic links and anything not a regular file or
 * directory). SFTP times are whole seconds: mtime_ms = mtime * 1000. del
 * unlinks (missing is fine), then removes the directories it emptied up to,
 * not including, the root.
 *
 * Errors: SSH_FX_NO_SUCH_FILE -> LS_ENOENT, SSH_FX_PERMISSION_DENIED ->
 * LS_EPERM, other SFTP statuses -> LS_EIO with the status name; transport
 * errors -> LS_ENET (session dropped).
 */
#define _GNU_SOURCE
#include "library.h"
#include "random.h"
#include "sftp_session.h"
#include "storage.h"
#include "url.h" /* ls_url_path_clean */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SFTP_BUF (256 * 1024)         /* bytes per read/write call (libssh2 pipelines them) */
#define SFTP_CHUNK (64 * 1024)        /* at most this many bytes per ls_writer call */
#define SFTP_PATH_MAX 4096            /* remote paths we build */
#define PUT_TRIES 4                   /* step 1 / step 4 attempts against concurrent deletes */
#define TMP_RANDOM_BYTES 8            /* in a temp name (as 16 hex digits) */
#define DIR_MODE 0755
#define FILE_MODE 0644

typedef struct sftp_store {
    ls_storage base;     /* must be first: the vtable and names */
    ls_sftp_session ses; /* connection settings and the session pool (sftp_session.c) */
    char *root;          /* remote root: "", "rel/dir" or "/abs/dir"; no trailing '/' but "/" */
} sftp_store;

/* ---------------------------------------------------------------------- */
/* Errors                                                                  */

/* 1 if the last failure of c is the SFTP status st. */
static int is_fx(ls_sftp_conn *c, int lrc, unsigned long st)
{
    return lrc == LIBSSH2_ERROR_SFTP_PROTOCOL && libssh2_sftp_last_error(c->sftp) == st;
}

/*
 * For a call whose failure the caller does not report (a clean-up, a probe):
 * a transport failure (a timeout included) leaves libssh2's per-channel
 * request state half done, and the session's next call of the same kind
 * would read this call's reply. So anything but success or an SFTP status
 * breaks the session. Returns lrc.
 */
static int quiet(ls_sftp_conn *c, int lrc)
{
    if (lrc != 0 && lrc != LIBSSH2_ERROR_SFTP_PROTOCOL)
        c->broken = 1;
    return lrc;
}

/* ---------------------------------------------------------------------- */
/* Paths                                                                   */

/* The remote path of rel (a key or key directory; "" = the root) into out. */
static int rpath(sftp_store *ss, ls_ctx *ctx, const char *op, const char *key, const char *rel,
                 char *out, size_t outsz)
{
    int n;
    if (!*rel)
        n = snprintf(out, outsz, "%s", *ss->root ? ss->root : ".");
    else if (!*ss->root)
        n = snprintf(out, outsz, "%s", rel);
    else
        n = snprintf(out, outsz, "%s%s%s", ss->root, strcmp(ss->root, "/") ? "/" : "", rel);
    if (n < 0 || (size_t)n >= outsz)
        return ls_storage_err(&ss->base, ctx, LS_EUSAGE, op, key, "remote path too long");
    return 0;
}

/* Split a remote path at its last '/' into dir ("" when none) and base. */
static void split_path(const char *path, char *dir, size_t dirsz, const char **base)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        dir[0] = '\0';
        *base = path;
        return;
    }
    size_t n = (size_t)(slash - path);
    if (n == 0)
        n = 1; /* "/x": the directory is "/" */
    if (n >= dirsz)
        n = dirsz - 1;
    memcpy(dir, path, n);
    dir[n] = '\0';
    *base = slash + 1;
}

/* ---------------------------------------------------------------------- */
/* put                                                                     */

/* Attributes of path (lstat); returns 0 or the libssh2 error. */
static int rstat(ls_sftp_conn *c, const char *path, LIBSSH2_SFTP_ATTRIBUTES *a)
{
    return quiet(c, libssh2_sftp_stat_ex(c->sftp, path, (unsigned)strlen(path), LIBSSH2_SFTP_LSTAT,
                                         a));
}

/* 1 if path exists and is a directory (a transport error reads as 0 and breaks the session:
 * callers check c->broken). */
static int is_dir(ls_sftp_conn *c, const char *path)
{
    LIBSSH2_SFTP_ATTRIBUTES a;
    return rstat(c, path, &a) == 0 && (a.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) &&
           LIBSSH2_SFTP_S_ISDIR(a.permissions);
}

/*
 * mkdir -p of a remote directory: mkdir; if its parent is missing, make the
 * parent first; if it fails otherwise but a directory is there (it existed,
 * or a concurrent put made it), that is success.
 */
static int mkdir_p(sftp_store *ss, ls_ctx *ctx, ls_sftp_conn *c, const char *key, const char *dir)
{
    int lrc = libssh2_sftp_mkdir_ex(c->sftp, dir, (unsigned)strlen(dir), DIR_MODE);
    if (lrc == 0)
        return 0;
    if (lrc != LIBSSH2_ERROR_SFTP_PROTOCOL)
        return ls_sftp_conn_err(&ss->base, ctx, c, lrc, "put", key, dir);
    unsigned long st = libssh2_sftp_last_error(c->sftp);
    if (st == LIBSSH2_FX_NO_SUCH_FILE || st == LIBSSH2_FX_NO_SUCH_PATH) {
        char parent[SFTP_PATH_MAX];
        const char *base;
        split_path(dir, parent, sizeof(parent), &base);
        if (!*parent || strcmp(parent, "/") == 0 || strcmp(parent, dir) == 0)
            return ls_sftp_fx_err(&ss->base, ctx, c, st, "put", key, dir);
        int rc = mkdir_p(ss, ctx, c, key, parent);
        if (rc)
            return rc;
        lrc = libssh2_sftp_mkdir_ex(c->sftp, dir, (unsigned)strlen(dir), DIR_MODE);
        if (lrc == 0)
            return 0;
        if (lrc != LIBSSH2_ERROR_SFTP_PROTOCOL)
            return ls_sftp_conn_err(&ss->base, ctx, c, lrc, "put", key, dir);
        st = libssh2_sftp_last_error(c->sftp);
    }
    if (is_dir(c, dir))
        return 0;
    if (c->broken)
        return ls_storage_err(&ss->base, ctx, LS_ENET, "put", key, "%s: connection lost", dir);
    return ls_sftp_fx_err(&ss->base, ctx, c, st, "put", key, dir);
}

/* Step 1 of put: create a fresh temp file next to path (making its directory). */
static int create_tmp(sftp_store *ss, ls_ctx *ctx, ls_sftp_conn *c, const char *key,
                      const char *path, char *tmp, size_t tmpsz, LIBSSH2_SFTP_HANDLE **h)
{
    char dir[SFTP_PATH_MAX], rnd[2 * TMP_RANDOM_BYTES + 1];
    const char *base;
    split_path(path, dir, sizeof(dir), &base);
    for (int attempt = 1;; attempt++) {
        if (ls_random_hex(rnd, TMP_RANDOM_BYTES) != 0)
            return ls_storage_err(&ss->base, ctx, LS_EIO, "put", key, "getrandom failed");
        int n = snprintf(tmp, tmpsz, "%s%s.%s.%s.tmp", dir, *dir && strcmp(dir, "/") ? "/" : "",
                         base, rnd);
        if (n < 0 || (size_t)n >= tmpsz)
            return ls_storage_err(&ss->base, ctx, LS_EUSAGE, "put", key, "remote path too long");
        *h = libssh2_sftp_open_ex(c->sftp, tmp, (unsigned)n,
                                  LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_EXCL,
                                  FILE_MODE, LIBSSH2_SFTP_OPENFILE);
        if (*h)
            return 0;
        int lrc = ls_sftp_last_rc(c);
        int missing =
            is_fx(c, lrc, LIBSSH2_FX_NO_SUCH_FILE) || is_fx(c, lrc, LIBSSH2_FX_NO_SUCH_PATH);
        if (!missing || attempt == PUT_TRIES || !*dir) {
            tmp[0] = '\0';
            return ls_sftp_conn_err(&ss->base, ctx, c, lrc, "put", key, "create temp file");
        }
        int rc = mkdir_p(ss, ctx, c, key, dir);
        if (rc) {
            tmp[0] = '\0';
            return rc;
        }
    }
}

/* Step 2 of put: everything r yields into h. */
static int upload(sftp_store *ss, ls_ctx *ctx, ls_sftp_conn *c, const char *key, ls_reader *r,
                  LIBSSH2_SFTP_HANDLE *h)
{
    uint8_t *buf = malloc(SFTP_BUF);
    int rc = 0;
    if (!buf)
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    if (ctx)
        ls_err_clear(ctx); /* a reader's own message is then the one kept */
    for (int eof = 0; !eof;) {
        size_t n = 0;
        while (n < SFTP_BUF) {
            int64_t got = r->read(r->ud, buf + n, SFTP_BUF - n);
            if (got < 0) {
                rc = ls_storage_err(&ss->base, ctx, (int)got, "put", key, NULL);
                goto cleanup;
            }
            if (got == 0) {
                eof = 1;
                break;
            }
            n += (size_t)got;
        }
        if (ls_cancelled(ctx)) {
            rc = ls_storage_err(&ss->base, ctx, LS_ECANCEL, "put", key, "cancelled");
            goto cleanup;
        }
        for (size_t off = 0; off < n;) {
            ssize_t w = libssh2_sftp_write(h, (const char *)buf + off, n - off);
            if (w < 0) {
                rc = ls_sftp_conn_err(&ss->base, ctx, c, (int)w, "put", key, "write");
                goto cleanup;
            }
            off += (size_t)w;
        }
    }
cleanup:
    free(buf);
    return rc;
}

/*
 * Step 4 of put: rename tmp to path; over an existing object, move the old
 * one aside first (see the header comment).
 */
static int publish(sftp_store *ss, ls_ctx *ctx, ls_sftp_conn *c, const char *key, const char *tmp,
                   const char *path)
{
    const long flags =
        LIBSSH2_SFTP_RENAME_OVERWRITE | LIBSSH2_SFTP_RENAME_ATOMIC | LIBSSH2_SFTP_RENAME_NATIVE;
    unsigned tlen = (unsigned)strlen(tmp), plen = (unsigned)strlen(path);
    char aside[SFTP_PATH_MAX];
    size_t n = strlen(tmp);

    /* ".<base>.<rnd>.tmp" -> ".<base>.<rnd>.old": same length, same directory */
    memcpy(aside, tmp, n + 1);
    memcpy(aside + n - 4, ".old", 5);
    for (int attempt = 1;; attempt++) {
        int lrc = libssh2_sftp_rename_ex(c->sftp, tmp, tlen, path, plen, flags);
        if (lrc == 0)
            return 0;
        if (!is_fx(c, lrc, LIBSSH2_FX_FAILURE) && !is_fx(c, lrc, LIBSSH2_FX_FILE_ALREADY_EXISTS))
            return ls_sftp_conn_err(&ss->base, ctx, c, lrc, "put", key, "rename temp file");
        if (attempt == PUT_TRIES)
            return ls_sftp_conn_err(&ss->base, ctx, c, lrc, "put", key, "rename temp file");
        /* the key exists (or the rename failed for another reason: then this fails too);
         * only a file is moved aside: a directory there holds other keys */
        LIBSSH2_SFTP_ATTRIBUTES a;
        if (rstat(c, path, &a) == 0 && (a.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) &&
            !LIBSSH2_SFTP_S_ISREG(a.permissions))
            return ls_storage_err(&ss->base, ctx, LS_EIO, "put", key,
                                  "a directory or other non-file is in the way");
        if (c->broken)
            return ls_storage_err(&ss->base, ctx, LS_ENET, "put", key, "connection lost");
        lrc = libssh2_sftp_rename_ex(c->sftp, path, plen, aside, (unsigned)n, flags);
        if (lrc != 0) {
            if (is_fx(c, lrc, LIBSSH2_FX_NO_SUCH_FILE))
                continue; /* gone meanwhile (a concurrent delete or put): try again */
            return ls_sftp_conn_err(&ss->base, ctx, c, lrc, "put", key,
                                    "move the old object aside");
        }
        lrc = libssh2_sftp_rename_ex(c->sftp, tmp, tlen, path, plen, flags);
        if (lrc == 0) {
            quiet(c, libssh2_sftp_unlink_ex(c->sftp, aside, (unsigned)n));
            return 0;
        }
        int rc = ls_sftp_conn_err(&ss->base, ctx, c, lrc, "put", key,
                                  "rename temp file over the old object");
        if (!c->broken)
            quiet(c, libssh2_sftp_rename_ex(c->sftp, aside, (unsigned)n, path, plen, flags));
        return rc;
    }
}

static int sftp_put(ls_storage *s, ls_ctx *ctx, const char *key, ls_reader *r)
{
    sftp_store *ss = (sftp_store *)s;
    char path[SFTP_PATH_MAX], tmp[SFTP_PATH_MAX];
    LIBSSH2_SFTP_HANDLE *h = NULL;
    ls_sftp_conn *c = NULL;
    int rc;

    tmp[0] = '\0';
    if ((rc = ls_storage_check_key(s, ctx, "put", key, 0)) != 0 ||
        (rc = rpath(ss, ctx, "put", key, key, path, sizeof(path))) != 0 ||
        (rc = ls_sftp_conn_get(&ss->ses, ctx, "put", key, &c)) != 0)
        return rc;
    if ((rc = create_tmp(ss, ctx, c, key, path, tmp, sizeof(tmp), &h)) != 0 ||
        (rc = upload(ss, ctx, c, key, r, h)) != 0)
        goto cleanup;
    int lrc = libssh2_sftp_fsync(h);
    if (lrc != 0 && !is_fx(c, lrc, LIBSSH2_FX_OP_UNSUPPORTED)) {
        rc = ls_sftp_conn_err(&ss->base, ctx, c, lrc, "put", key, "fsync");
        goto cleanup;
    }
    lrc = libssh2_sftp_close_handle(h);
    h = NULL;
    if (lrc != 0) {
        rc = ls_sftp_conn_err(&ss->base, ctx, c, lrc, "put", key, "close");
        goto cleanup;
    }
    if ((rc = publish(ss, ctx, c, key, tmp, path)) == 0)
        tmp[0] = '\0';

cleanup:
    if (h && !c->broken) /* a broken session's handles go with it: no blocking close */
        quiet(c, libssh2_sftp_close_handle(h));
    if (tmp[0] && !c->broken)
        quiet(c, libssh2_sftp_unlink_ex(c->sftp, tmp, (unsigned)strlen(tmp)));
    ls_sftp_conn_release(&ss->ses, c);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* get, stat                                                               */

/* A failed read: a directory (or other non-file) is a missing object. */
static int read_err(sftp_store *ss, ls_ctx *ctx, ls_sftp_conn *c, int lrc, const char *key,
                    LIBSSH2_SFTP_HANDLE *h)
{
    if (is_fx(c, lrc, LIBSSH2_FX_FAILURE)) {
        LIBSSH2_SFTP_ATTRIBUTES a;
        if (quiet(c, libssh2_sftp_fstat_ex(h, &a, 0)) == 0 &&
            (a.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) && !LIBSSH2_SFTP_S_ISREG(a.permissions))
            return ls_storage_err(&ss->base, ctx, LS_ENOENT, "get", key, "not a regular file");
        return ls_sftp_fx_err(&ss->base, ctx, c, LIBSSH2_FX_FAILURE, "get", key, "read");
    }
    return ls_sftp_conn_err(&ss->base, ctx, c, lrc, "get", key, "read");
}

/* get: open, seek to off, stream up to len bytes (or to the end). */
static int sftp_get(ls_storage *s, ls_ctx *ctx, const char *key, uint64_t off, int64_t len,
                    ls_writer *w)
{
    sftp_store *ss = (sftp_store *)s;
    char path[SFTP_PATH_MAX];
    LIBSSH2_SFTP_HANDLE *h = NULL;
    ls_sftp_conn *c = NULL;
    char *buf = NULL;
    int rc;

    if ((rc = ls_storage_check_key(s, ctx, "get", key, 0)) != 0 ||
        (rc = rpath(ss, ctx, "get", key, key, path, sizeof(path))) != 0)
        return rc;
    if (len == 0)
        len = -2; /* nothing to read: still report a missing object */
    if (!(buf = malloc(SFTP_BUF)))
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    if ((rc = ls_sftp_conn_get(&ss->ses, ctx, "get", key, &c)) != 0) {
        free(buf);
        return rc;
    }
    h = libssh2_sftp_open_ex(c->sftp, path, (unsigned)strlen(path), LIBSSH2_FXF_READ, 0,
                             LIBSSH2_SFTP_OPENFILE);
    if (!h) {
        rc = ls_sftp_conn_err(&ss->base, ctx, c, ls_sftp_last_rc(c), "get", key, "open");
        goto cleanup;
    }
    if (len == -2 || off > (uint64_t)INT64_MAX)
        goto cleanup; /* no bytes (SFTP servers take offsets as signed) */
    if (off > 0)
        libssh2_sftp_seek64(h, off);
    if (ctx)
        ls_err_clear(ctx); /* a writer's own message is then the one kept */
    uint64_t left = len < 0 ? UINT64_MAX : (uint64_t)len;
    while (left > 0) {
        size_t want = left < SFTP_BUF ? (size_t)left : SFTP_BUF;
        ssize_t n = libssh2_sftp_read(h, buf, want);
        if (n < 0) {
            rc = read_err(ss, ctx, c, (int)n, key, h);
            goto cleanup;
        }
        if (n == 0)
            break;
        for (ssize_t k = 0; k < n; k += SFTP_CHUNK) {
            size_t m = n - k < SFTP_CHUNK ? (size_t)(n - k) : SFTP_CHUNK;
            if ((rc = w->write(w->ud, (const uint8_t *)buf + k, m)) != 0) {
                rc = ls_storage_err(s, ctx, rc, "get", key, NULL);
                goto cleanup;
            }
        }
        left -= (uint64_t)n;
        if (ls_cancelled(ctx)) {
            rc = ls_storage_err(s, ctx, LS_ECANCEL, "get", key, "cancelled");
            goto cleanup;
        }
    }

cleanup:
    if (h && !c->broken)
        quiet(c, libssh2_sftp_close_handle(h));
    ls_sftp_conn_release(&ss->ses, c);
    free(buf);
    return rc;
}

static int sftp_stat(ls_storage *s, ls_ctx *ctx, const char *key, ls_obj *out)
{
    sftp_store *ss = (sftp_store *)s;
    char path[SFTP_PATH_MAX];
    LIBSSH2_SFTP_ATTRIBUTES a;
    ls_sftp_conn *c = NULL;
    int rc;

    if ((rc = ls_storage_check_key(s, ctx, "stat", key, 0)) != 0 ||
        (rc = rpath(ss, ctx, "stat", key, key, path, sizeof(path))) != 0 ||
        (rc = ls_sftp_conn_get(&ss->ses, ctx, "stat", key, &c)) != 0)
        return rc;
    int lrc = rstat(c, path, &a);
    if (lrc != 0)
        rc = ls_sftp_conn_err(&ss->base, ctx, c, lrc, "stat", key, "stat");
    else if (!(a.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) || !LIBSSH2_SFTP_S_ISREG(a.permissions))
        rc = ls_storage_err(s, ctx, LS_ENOENT, "stat", key, "not a regular file");
    else {
        out->key = NULL;
        out->size = (a.flags & LIBSSH2_SFTP_ATTR_SIZE) ? a.filesize : 0;
        out->mtime_ms = (a.flags & LIBSSH2_SFTP_ATTR_ACMODTIME) ? (int64_t)a.mtime * 1000 : 0;
    }
    ls_sftp_conn_release(&ss->ses, c);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* list                                                                    */

/*
 * Append the regular files below remote directory `dir` whose keys start
 * with prefix; rel[0, rlen) is the directory's key prefix ("" or ending in
 * '/'), rel has SFTP_PATH_MAX bytes and is restored on return. A directory
 * that vanished meanwhile is empty.
 */
static int walk(sftp_store *ss, ls_ctx *ctx, ls_sftp_conn *c, const char *prefix, const char *dir,
                char *rel, size_t rlen, ls_obj_list *out)
{
    size_t plen = strlen(prefix);
    char name[1024], sub[SFTP_PATH_MAX];
    LIBSSH2_SFTP_ATTRIBUTES a;
    int rc = 0;

    LIBSSH2_SFTP_HANDLE *h =
        libssh2_sftp_open_ex(c->sftp, dir, (unsigned)strlen(dir), 0, 0, LIBSSH2_SFTP_OPENDIR);
    if (!h) {
        int lrc = ls_sftp_last_rc(c);
        if (is_fx(c, lrc, LIBSSH2_FX_NO_SUCH_FILE) || is_fx(c, lrc, LIBSSH2_FX_NO_SUCH_PATH) ||
            is_fx(c, lrc, LIBSSH2_FX_NOT_A_DIRECTORY))
            return 0;
        if (rlen == 0 && is_fx(c, lrc, LIBSSH2_FX_FAILURE)) {
            int d = is_dir(c, dir);
            if (c->broken)
                return ls_storage_err(&ss->base, ctx, LS_ENET, "list", prefix,
                                      "%s: connection lost", dir);
            if (!d)
                return 0; /* the root is a file (OpenSSH says FAILURE for ENOTDIR) */
        }
        return ls_sftp_conn_err(&ss->base, ctx, c, lrc, "list", prefix, dir);
    }
    for (;;) {
        int n = libssh2_sftp_readdir_ex(h, name, sizeof(name), NULL, 0, &a);
        if (n < 0) {
            rc = ls_sftp_conn_err(&ss->base, ctx, c, n, "list", prefix, dir);
            break;
        }
        if (n == 0)
            break;
        if (name[0] == '.' || rlen + (size_t)n + 2 > SFTP_PATH_MAX ||
            !(a.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS))
            continue;
        memcpy(rel + rlen, name, (size_t)n + 1);
        if (LIBSSH2_SFTP_S_ISREG(a.permissions)) {
            if (strncmp(rel, prefix, plen) == 0 &&
                ls_obj_list_add(out, rel, (a.flags & LIBSSH2_SFTP_ATTR_SIZE) ? a.filesize : 0,
                                (a.flags & LIBSSH2_SFTP_ATTR_ACMODTIME) ? (int64_t)a.mtime * 1000
                                                                        : 0)) {
                rc = ls_err(ctx, LS_ENOMEM, "out of memory");
                break;
            }
        } else if (LIBSSH2_SFTP_S_ISDIR(a.permissions)) {
            size_t k = rlen + (size_t)n + 1;
            rel[k - 1] = '/';
            rel[k] = '\0';
            if (strncmp(rel, prefix, k < plen ? k : plen) != 0)
                continue;
            int m = snprintf(sub, sizeof(sub), "%s%s%s", dir, strcmp(dir, "/") ? "/" : "", name);
            if (m < 0 || (size_t)m >= sizeof(sub))
                continue;
            if ((rc = walk(ss, ctx, c, prefix, sub, rel, k, out)) != 0)
                break;
        }
    }
    rel[rlen] = '\0';
    if (!c->broken)
        quiet(c, libssh2_sftp_close_handle(h));
    return rc;
}

static int sftp_list(ls_storage *s, ls_ctx *ctx, const char *prefix, ls_obj_list *out)
{
    sftp_store *ss = (sftp_store *)s;
    char rel[SFTP_PATH_MAX], dir[SFTP_PATH_MAX];
    ls_sftp_conn *c = NULL;
    int rc;

    if ((rc = ls_storage_check_key(s, ctx, "list", prefix, 1)) != 0)
        return rc;
    const char *slash = strrchr(prefix, '/');
    size_t rlen = slash ? (size_t)(slash - prefix) + 1 : 0;
    memcpy(rel, prefix, rlen);
    rel[rlen] = '\0';
    if (rlen > 0)
        rel[rlen - 1] = '\0';
    rc = rpath(ss, ctx, "list", prefix, rel, dir, sizeof(dir));
    if (rlen > 0)
        rel[rlen - 1] = '/';
    if (rc || (rc = ls_sftp_conn_get(&ss->ses, ctx, "list", prefix, &c)) != 0)
        return rc;
    rc = walk(ss, ctx, c, prefix, dir, rel, rlen, out);
    ls_sftp_conn_release(&ss->ses, c);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* del                                                                     */

/* Remove the directories of key (relative) left empty, deepest first, not the root. */
static void prune_dirs(sftp_store *ss, ls_sftp_conn *c, const char *key)
{
    char rel[SFTP_PATH_MAX], path[SFTP_PATH_MAX];
    ls_strlcpy(rel, key, sizeof(rel));
    for (;;) {
        char *slash = strrchr(rel, '/');
        if (!slash || c->broken)
            return;
        *slash = '\0';
        if (rpath(ss, NULL, "delete", key, rel, path, sizeof(path)) != 0)
            return;
        int lrc = libssh2_sftp_rmdir_ex(c->sftp, path, (unsigned)strlen(path));
        if (lrc != 0) {
            if (lrc != LIBSSH2_ERROR_SFTP_PROTOCOL)
                c->broken = 1;
            return;
        }
    }
}

/* 1 if keys a and b lie in the same directory. */
static int same_dir(const char *a, const char *b)
{
    const char *sa = strrchr(a, '/'), *sb = strrchr(b, '/');
    size_t na = sa ? (size_t)(sa - a) : 0, nb = sb ? (size_t)(sb - b) : 0;
    return na == nb && memcmp(a, b, na) == 0;
}

static int sftp_del(ls_storage *s, ls_ctx *ctx, const char *const *keys, size_t n)
{
    sftp_store *ss = (sftp_store *)s;
    char path[SFTP_PATH_MAX];
    ls_sftp_conn *c = NULL;
    const char *last = NULL; /* the last deleted key whose directories are not pruned yet */
    int rc;

    for (size_t i = 0; i < n; i++)
        if ((rc = ls_storage_check_key(s, ctx, "delete", keys[i], 0)) != 0)
            return rc;
    if (n == 0)
        return 0;
    if ((rc = ls_sftp_conn_get(&ss->ses, ctx, "delete", keys[0], &c)) != 0)
        return rc;
    for (size_t i = 0; i < n && !rc; i++) {
        if ((rc = rpath(ss, ctx, "delete", keys[i], keys[i], path, sizeof(path))) != 0)
            break;
        int lrc = libssh2_sftp_unlink_ex(c->sftp, path, (unsigned)strlen(path));
        if (lrc != 0 && !is_fx(c, lrc, LIBSSH2_FX_NO_SUCH_FILE) &&
            !is_fx(c, lrc, LIBSSH2_FX_NO_SUCH_PATH)) {
            rc = ls_sftp_conn_err(&ss->base, ctx, c, lrc, "delete", keys[i], "unlink");
            break;
        }
        if (last && !same_dir(last, keys[i]))
            prune_dirs(ss, c, last);
        last = keys[i];
    }
    if (!rc && last)
        prune_dirs(ss, c, last);
    ls_sftp_conn_release(&ss->ses, c);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* open, close                                                             */

static void sftp_close(ls_storage *s)
{
    sftp_store *ss = (sftp_store *)s;
    if (!ss)
        return;
    ls_sftp_session_free(&ss->ses);
    free(ss->root);
    free(ss);
}

/* The root from the path: cleaned, no trailing '/' (but "/"), "" = login directory. */
static int set_root(sftp_store *ss, ls_ctx *ctx, const char *path)
{
    if (!(ss->root = strdup(path ? path : "")))
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    int abs = ss->root[0] == '/';
    ls_url_path_clean(ss->root);
    if (!abs && strcmp(ss->root, ".") == 0)
        ss->root[0] = '\0';
    return 0;
}

int ls_storage_sftp_open(ls_ctx *ctx, const ls_storage_opts *opts, ls_storage **out)
{
    const char *name = opts->name && *opts->name ? opts->name : "sftp";
    char desc[512];
    int rc;

    *out = NULL;
    const char *why = NULL;
    if (ls_library_lazy(&why) != 0) /* no-op after ls_library_init */
        return ls_err(ctx, LS_EIO, "replica %s: %s", name, why);
    sftp_store *ss = calloc(1, sizeof(*ss));
    if (!ss)
        return ls_err(ctx, LS_ENOMEM, "replica %s: out of memory", name);
    ls_storage_init(&ss->base, "sftp", opts->name, "sftp");
    ss->base.close = sftp_close;
    if ((rc = ls_sftp_session_init(&ss->ses, &ss->base, ctx, name, opts)) != 0 ||
        (rc = set_root(ss, ctx, opts->path)) != 0)
        goto fail;

    snprintf(desc, sizeof(desc),
             strchr(ss->ses.host, ':') ? "sftp://%s@[%s]:%d%s%s" : "sftp://%s@%s:%d%s%s",
             ss->ses.user, ss->ses.host, ss->ses.port,
             ss->root[0] == '/' ? "" : (*ss->root ? "/~/" : "/~"), ss->root);
    ls_strlcpy(ss->base.desc, desc, sizeof(ss->base.desc));
    ss->base.put = sftp_put;
    ss->base.get = sftp_get;
    ss->base.list = sftp_list;
    ss->base.stat = sftp_stat;
    ss->base.del = sftp_del;
    *out = &ss->base;
    return 0;
fail:
    sftp_close(&ss->base);
    return rc;
}
