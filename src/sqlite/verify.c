/*
 * verify.c - integrity check and SHA-256 check of a database file (ls_verify),
 * and the integrity check restore shares with it (ls_integrity_check).
 *
 * Invariant: verifying writes nothing, anywhere. SQLite would create
 * FILE-wal and FILE-shm when it opens a WAL-mode file (a backup of a WAL
 * database is one: header bytes 18/19 are 2), so such a file is opened as
 * `file:PATH?immutable=1`, which reads it as a plain read-only image with no
 * locks, no -shm and no -wal. Only when a -wal already exists is the file a
 * live database: then it is opened read-only the normal way (see
 * open_for_check) and SQLite may add a -shm next to the -wal that is there.
 * A missing file is never created: the file is probed first, and no open
 * carries SQLITE_OPEN_CREATE.
 */
#include "verify.h"

#include "db.h"
#include "fsutil.h"
#include "hash.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* Rows of integrity_check asked for (SQLite stops after this many problems). */
#define MAX_PROBLEMS 100
#define MSG_MAX 1024 /* bytes of integrity_message, its terminator included */
#define BUSY_MS 5000

/*
 * Percent-encode an absolute path for an SQLite URI: every byte outside
 * [A-Za-z0-9-._~/] becomes %XX, so '%', '?' and '#' in a file name cannot
 * be read as an escape, a query or a fragment. Returns 0 or LS_EUSAGE.
 */
static int uri_from_path(ls_ctx *ctx, const char *path, char *out, size_t outsz)
{
    static const char hexd[] = "0123456789ABCDEF";
    static const char keep[] = "-._~/";
    size_t n = 0;
    const char *pre = "file:", *post = "?immutable=1";
    if (outsz < strlen(pre) + strlen(post) + 1)
        return ls_err(ctx, LS_EUSAGE, "path too long: %s", path);
    memcpy(out, pre, strlen(pre));
    n = strlen(pre);
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        if (n + 3 + strlen(post) + 1 > outsz)
            return ls_err(ctx, LS_EUSAGE, "path too long: %s", path);
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr(keep, *p)) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hexd[*p >> 4];
            out[n++] = hexd[*p & 15];
        }
    }
    memcpy(out + n, post, strlen(post) + 1);
    return 0;
}

/*
 * Open `path` read-only for checking, without writing next to it:
 *   - WAL-mode header and no -wal: `immutable=1` (SQLite would otherwise
 *     create -wal and -shm; with no -wal there is nothing beyond the file).
 *   - a -wal exists: a normal read-only open. The committed transactions in
 *     that WAL are part of the database, and reading them consistently needs
 *     SQLite's wal-index (-shm) and locks; immutable=1 would ignore the WAL and
 *     check a stale image (reporting false corruption when the file alone is
 *     mid-checkpoint).
 *   - rollback-journal mode: a normal read-only open. It creates nothing, and
 *     its SHARED lock keeps a live writer from changing the file under the check.
 */
static int open_for_check(ls_ctx *ctx, const char *path, const ls_db_hdr *hdr, sqlite3 **out)
{
    char wal[PATH_MAX + 8], uri[3 * PATH_MAX + 32];
    sqlite3 *db = NULL;
    int n = snprintf(wal, sizeof(wal), "%s-wal", path);
    if (n < 0 || (size_t)n >= sizeof(wal))
        return ls_err(ctx, LS_EUSAGE, "path too long: %s", path);
    if (!hdr->wal || ls_path_exists(wal))
        return ls_db_open(ctx, path, 1, BUSY_MS, out);

    int rc = uri_from_path(ctx, path, uri, sizeof(uri));
    if (rc)
        return rc;
    int src = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX,
                              NULL);
    if (src != SQLITE_OK) {
        rc = ls_err(ctx, ls_db_code(src), "open %s: %s", path,
                    db ? sqlite3_errmsg(db) : sqlite3_errstr(src));
        sqlite3_close(db);
        return rc;
    }
    sqlite3_extended_result_codes(db, 1);
    *out = db;
    return 0;
}

/*
 * Append `text` to the "; "-joined message, one part per line of it (SQLite
 * puts several lines in one row). Returns 0 once the message is full; its
 * end is then "...".
 */
static int msg_append(char *msg, size_t size, const char *text)
{
    for (const char *line = text; *line;) {
        size_t n = strcspn(line, "\n"), len = strlen(msg), add = n + (len ? 2 : 0);
        if (n > 0 && len + add + 1 > size) {
            const char *more = len ? "; ..." : "...";
            size_t keep = size - 1 - strlen(more);
            if (len > keep)
                len = keep;
            memcpy(msg + len, more, strlen(more) + 1);
            return 0;
        }
        if (n > 0)
            snprintf(msg + len, size - len, "%s%.*s", len ? "; " : "", (int)n, line);
        line += n;
        if (*line == '\n')
            line++;
    }
    return 1;
}

/* A SQLite failure that says the file is damaged, as opposed to "cannot run". */
static int is_damage(int sqlite_rc)
{
    int code = ls_db_code(sqlite_rc);
    return code == LS_ECORRUPT || code == LS_ENOTDB;
}

/* One-integer PRAGMA; leaves *v unchanged when it cannot be read. */
static void pragma_u64(sqlite3 *db, const char *sql, uint64_t *v)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        *v = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
}

/*
 * See verify.h. Steps:
 *   1. probe the header (never creates the file) and prefill page size,
 *      page count and journal mode from it;
 *   2. open without side effects (open_for_check);
 *   3. run integrity_check; "ok" alone is a pass, anything else (rows of
 *      problems, or SQLite calling the file corrupt / not a database) is a
 *      failed check whose first lines become the message;
 *   4. take page size and count from SQLite when it can tell (a -wal may
 *      have changed both since the header was written).
 */
int ls_integrity_check(ls_ctx *ctx, const char *path, ls_verify_result *res)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    ls_db_hdr hdr;
    struct stat sb;
    int rc, src, rows = 0, ok_row = 0, room = 1;
    char sql[64], msg[MSG_MAX] = "";

    /* 1. Header. */
    if ((rc = ls_db_probe(ctx, path, &hdr)) != 0)
        return rc;
    if (stat(path, &sb) != 0)
        return ls_err_errno(ctx, errno, "%s", path);
    res->integrity_ok = 0;
    res->page_size = hdr.page_size;
    res->page_count = hdr.size_valid && hdr.page_count ? hdr.page_count
                                                       : (uint64_t)sb.st_size / hdr.page_size;
    ls_strlcpy(res->journal_mode, hdr.wal ? "wal" : "delete", sizeof(res->journal_mode));

    /* 2. Open. */
    if ((rc = open_for_check(ctx, path, &hdr, &db)) != 0)
        goto cleanup;

    /* 3. The check. */
    snprintf(sql, sizeof(sql), "PRAGMA integrity_check(%d)", MAX_PROBLEMS);
    src = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    while (src == SQLITE_OK && (src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *line = (const char *)sqlite3_column_text(st, 0);
        line = line ? line : "(null)";
        rows++;
        ok_row = rows == 1 && strcmp(line, "ok") == 0;
        if (room)
            room = msg_append(msg, sizeof(msg), line);
        src = SQLITE_OK;
    }
    if (src != SQLITE_DONE) {
        if (!is_damage(src)) {
            rc = ls_err(ctx, ls_db_code(src), "integrity check of %s: %s", path,
                        sqlite3_errmsg(db));
            goto cleanup;
        }
        /* Damage SQLite met before or while checking: a failed check. */
        if (room)
            msg_append(msg, sizeof(msg), sqlite3_errmsg(db));
        ok_row = 0;
    }
    res->integrity_ok = rows == 1 && ok_row;
    if (rows == 0 && !msg[0])
        ls_strlcpy(msg, "integrity check returned nothing", sizeof(msg));
    if ((rc = ls_strdup(ctx, &res->integrity_message, msg)) != 0)
        goto cleanup;

    /* 4. SQLite's view of the size, when it can read it. */
    if (res->integrity_ok) {
        uint64_t ps = res->page_size;
        pragma_u64(db, "PRAGMA page_size", &ps);
        res->page_size = (uint32_t)ps;
        pragma_u64(db, "PRAGMA page_count", &res->page_count);
    }

cleanup:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

/*
 * ls_verify, in steps:
 *   1. reject a malformed expected digest before touching the file;
 *   2. integrity check (probes the file first: LS_ENOENT, LS_ENOTDB);
 *   3. size and SHA-256 of the bytes, compared without regard to case;
 *   4. LS_ECORRUPT when either check failed; `res` is complete either way.
 */
int ls_verify(ls_ctx *ctx, const char *file, const char *expect_sha256, ls_verify_result *res)
{
    struct stat sb;
    int rc;

    memset(res, 0, sizeof(*res));
    res->sha256_match = -1;
    ls_err_clear(ctx);

    /* 1. Usage. */
    if (expect_sha256 && !ls_sha256_hex_valid(expect_sha256))
        return ls_err(ctx, LS_EUSAGE, "expected SHA-256 '%s' is not 64 hex digits",
                      expect_sha256);
    if ((rc = ls_abspath_dup(ctx, file, &res->path)) != 0)
        return rc;

    /* 2. Integrity. */
    if ((rc = ls_integrity_check(ctx, res->path, res)) != 0)
        return rc;

    /* 3. Bytes. */
    if (stat(res->path, &sb) != 0)
        return ls_err_errno(ctx, errno, "%s", res->path);
    res->size_bytes = (uint64_t)sb.st_size;
    if ((rc = ls_sha256_file(ctx, res->path, res->sha256)) != 0)
        return rc;
    if (expect_sha256)
        res->sha256_match = strcasecmp(expect_sha256, res->sha256) == 0;

    /* 4. Verdict. */
    if (!res->integrity_ok && res->sha256_match == 0)
        return ls_err(ctx, LS_ECORRUPT, "%s: integrity check failed (%s) and SHA-256 %s differs "
                      "from the expected %s", res->path, res->integrity_message, res->sha256,
                      expect_sha256);
    if (!res->integrity_ok)
        return ls_err(ctx, LS_ECORRUPT, "%s: integrity check failed: %s", res->path,
                      res->integrity_message);
    if (res->sha256_match == 0)
        return ls_err(ctx, LS_ECORRUPT, "%s: SHA-256 mismatch: file has %s, expected %s",
                      res->path, res->sha256, expect_sha256);
    ls_log(ctx, LS_LOG_DEBUG, "verify ok path=%s pages=%llu sha256=%s", res->path,
           (unsigned long long)res->page_count, res->sha256);
    return 0;
}

void ls_verify_result_free(ls_verify_result *res)
{
    if (!res)
        return;
    free(res->path);
    free(res->integrity_message);
    res->path = res->integrity_message = NULL;
}
