/*
 * info.c - what a database and its WAL look like, found by reading the files
 * directly: journal mode, page size and count, free pages, schema cookie,
 * the WAL's header, committed frames and last commit, the -shm/-journal
 * files, and whether a replicator's meta directory sits next to the database.
 *
 * INVARIANT: strictly read-only. The database is never opened through SQLite
 * (an SQLite connection may create -wal/-shm files, run recovery, checkpoint,
 * or delete the WAL when it closes). Files are only open()ed O_RDONLY, read
 * with pread() and stat()ed; nothing is created, written, locked or removed.
 *
 * HOW THE LATEST STATE IS FOUND (ls_info)
 *
 *   1. Probe the database file and decode its 100-byte header: page size,
 *      journal mode (read/write versions 2 = WAL), and the values as of the
 *      last checkpoint. A zero-length file is what SQLite calls an empty
 *      database (as sqlite-checkpoint reports it): rollback journal, no
 *      pages, SQLite's default page size and encoding, which its first write
 *      would give it. SQLite ignores (and removes) a -wal next to an empty
 *      database, so one there is reported but changes no figure.
 *   2. Scan the -wal file, if any, with the WAL scanner: only frames whose
 *      salts and checksum chain verify, up to the last commit frame, count.
 *      The last commit frame gives the page count after the last commit.
 *   3. If that committed WAL holds page 1, its newest committed version is the
 *      current header: read that frame, check it again against its checksum
 *      (a writer may have restarted the WAL since step 2; then scan again),
 *      and take the free-page count and schema cookie from it.
 *   4. The neighbours: -shm, -journal, .<name>-litesafe/, .<name>-litestream/.
 * No lock is taken, so on a busy database the result is a view of one moment
 * that may be stale a moment later; each WAL figure comes from one scan.
 */
#include "db.h"
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Times a scan is repeated when the WAL is rewritten while it is read. */
#define MAX_SCANS 3
/* What SQLite gives a new database (SQLITE_DEFAULT_PAGE_SIZE, UTF-8). */
#define EMPTY_DB_PAGE_SIZE 4096
#define EMPTY_DB_ENCODING 1

/* 1 if `path` is a directory (following links), else 0. */
static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/*
 * Step 3: read the newest committed frame of page 1 from the WAL at `fd` and
 * decode the database header it holds into *hdr. Returns 0, LS_EBUSY when the
 * frame no longer verifies (the WAL changed since it was scanned: scan again),
 * LS_ECORRUPT when it holds no database header, or an I/O error.
 */
static int read_page1(ls_ctx *ctx, int fd, const char *wal, const ls_wal_scan *scan, ls_db_hdr *hdr)
{
    const ls_wal_page *wp = ls_wal_scan_lookup(scan, 1);
    const size_t szFrame = LS_WAL_FRAME_HDRSIZE + scan->hdr.page_size;
    uint32_t ck[2];
    size_t got = 0;
    int rc;

    if (!wp)
        return ls_err(ctx, LS_ERROR, "%s: page 1 is not in the WAL", wal);
    uint8_t *frame = malloc(szFrame);
    if (!frame)
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    rc = ls_pread_full(ctx, fd, frame, szFrame,
                       (off_t)ls_wal_frame_offset(scan->hdr.page_size, wp->frame), &got, wal);
    if (rc)
        goto cleanup;
    ck[0] = wp->prev_ck[0];
    ck[1] = wp->prev_ck[1];
    if (got < szFrame || ls_get32be(frame) != 1 || !ls_wal_frame_check(&scan->hdr, frame, ck))
        rc = ls_err(ctx, LS_EBUSY, "%s: frame %u changed while it was read", wal, wp->frame);
    else if (ls_db_hdr_decode(frame + LS_WAL_FRAME_HDRSIZE, hdr) != 0)
        rc =
            ls_err(ctx, LS_ECORRUPT, "%s: frame %u holds no valid database header", wal, wp->frame);

cleanup:
    free(frame);
    return rc;
}

/*
 * Steps 2 and 3 for the WAL at `wal`: fill the wal_* fields of `res`; when the
 * WAL holds committed frames for a database of `page_size`, also the page
 * count and (page 1 in the WAL) the header values as of the last commit.
 * A missing WAL is not an error. Returns 0 or an LS_E* code.
 */
static int inspect_wal(ls_ctx *ctx, const char *wal, uint32_t page_size, ls_info_result *res)
{
    ls_wal_scan scan;
    ls_db_hdr p1;
    struct stat st;
    int fd = -1, rc = 0, got_p1 = 0;

    ls_wal_scan_init(&scan, 1);
    fd = open(wal, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            rc = ls_err_errno(ctx, errno, "open %s", wal);
        goto cleanup;
    }
    res->wal_file_exists = 1;

    for (int attempt = 1;; attempt++) {
        ls_wal_scan_reset(&scan);
        if ((rc = ls_wal_scan_fd(ctx, &scan, fd, wal)) != 0)
            goto cleanup;
        if (!scan.have_hdr || scan.hdr.page_size != page_size || !scan.page1_frame)
            break; /* the database file's header is the newest there is */
        rc = read_page1(ctx, fd, wal, &scan, &p1);
        got_p1 = rc == 0;
        if (rc != LS_EBUSY || attempt >= MAX_SCANS)
            break;
        ls_err_clear(ctx);
    }
    if (rc)
        goto cleanup;

    /* The size after the scan, so a growing WAL still has wal_frames <= wal_frames_total. */
    if (fstat(fd, &st) != 0) {
        rc = ls_err_errno(ctx, errno, "stat %s", wal);
        goto cleanup;
    }
    res->wal_size_bytes = (uint64_t)st.st_size;
    uint32_t ps = scan.have_hdr ? scan.hdr.page_size : page_size;
    if (res->wal_size_bytes > LS_WAL_HDRSIZE)
        res->wal_frames_total =
            (res->wal_size_bytes - LS_WAL_HDRSIZE) / (LS_WAL_FRAME_HDRSIZE + ps);
    if (!scan.have_hdr)
        goto cleanup;
    res->wal_header_valid = 1;
    res->wal_salt1 = scan.hdr.salt1;
    res->wal_salt2 = scan.hdr.salt2;
    res->wal_checkpoint_seq = scan.hdr.ckpt_seq;
    res->wal_frames = scan.commit_frame;
    res->wal_last_commit_frame = scan.commit_frame;
    res->wal_commits = scan.commits;
    /* A WAL of another page size is not this database's: it changes nothing. */
    if (scan.commit_frame && ps == page_size)
        res->page_count = scan.commit_dbsize;
    if (got_p1) {
        res->freelist_count = p1.freelist_count;
        res->schema_cookie = p1.schema_cookie;
        res->text_encoding = p1.text_encoding;
    }

cleanup:
    if (fd >= 0)
        close(fd);
    ls_wal_scan_free(&scan);
    return rc;
}

/* Step 4: .<name>-litesafe/ and .<name>-litestream/ next to the database. */
static int inspect_meta_dirs(ls_ctx *ctx, ls_info_result *res)
{
    char dir[PATH_MAX], base[PATH_MAX], meta[PATH_MAX], other[PATH_MAX * 2 + 32];
    ls_path_split(res->path, dir, sizeof(dir), base, sizeof(base));
    const char *sep = strcmp(dir, "/") ? "/" : "";
    int n = snprintf(meta, sizeof(meta), "%s%s.%s-litesafe", dir, sep, base);
    if (n < 0 || (size_t)n >= sizeof(meta))
        return ls_err(ctx, LS_EUSAGE, "path too long: %s", res->path);
    snprintf(other, sizeof(other), "%s%s.%s-litestream", dir, sep, base);
    res->meta_dir_exists = is_dir(meta);
    res->litestream_meta_dir_exists = is_dir(other);
    return ls_strdup(ctx, &res->meta_dir, meta);
}

int ls_info(ls_ctx *ctx, const char *db, ls_info_result *res)
{
    char side[PATH_MAX + 16];
    ls_db_hdr hdr;
    struct stat st;
    int rc;

    memset(res, 0, sizeof(*res));
    ls_err_clear(ctx);

    /* 1. The database file and its header (none in an empty database). */
    if ((rc = ls_abspath_dup(ctx, db, &res->path)) != 0)
        return rc;
    if (stat(res->path, &st) != 0)
        return ls_err_errno(ctx, errno, "%s", res->path);
    int empty = S_ISREG(st.st_mode) && st.st_size == 0;
    memset(&hdr, 0, sizeof(hdr));
    if (empty) {
        hdr.page_size = EMPTY_DB_PAGE_SIZE;
        hdr.text_encoding = EMPTY_DB_ENCODING;
    } else if ((rc = ls_db_probe(ctx, res->path, &hdr)) != 0) {
        return rc;
    }
    if (stat(res->path, &st) != 0)
        return ls_err_errno(ctx, errno, "stat %s", res->path);
    res->size_bytes = (uint64_t)st.st_size;
    ls_strlcpy(res->journal_mode, hdr.wal ? "wal" : "delete", sizeof(res->journal_mode));
    res->page_size = hdr.page_size;
    res->page_count =
        hdr.size_valid && hdr.page_count ? hdr.page_count : res->size_bytes / hdr.page_size;
    res->freelist_count = hdr.freelist_count;
    res->schema_cookie = hdr.schema_cookie;
    res->text_encoding = hdr.text_encoding;

    /* 2-3. The WAL (read even when the header says rollback journal: SQLite
     * itself uses a -wal file it finds next to the database). Page size 0
     * for an empty database: no WAL matches it, so none changes a figure. */
    snprintf(side, sizeof(side), "%s-wal", res->path);
    if ((rc = inspect_wal(ctx, side, empty ? 0 : hdr.page_size, res)) != 0)
        return rc;

    /* 4. The neighbours. */
    snprintf(side, sizeof(side), "%s-shm", res->path);
    res->shm_file_exists = ls_path_exists(side);
    snprintf(side, sizeof(side), "%s-journal", res->path);
    res->journal_file_exists = ls_path_exists(side);
    return inspect_meta_dirs(ctx, res);
}

void ls_info_result_free(ls_info_result *res)
{
    if (!res)
        return;
    free(res->path);
    free(res->meta_dir);
    res->path = res->meta_dir = NULL;
}
