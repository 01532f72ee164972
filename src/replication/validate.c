/*
 * validate.c - prove a replica restores to exactly the live database.
 *
 * THE VALIDATION PROCEDURE (ls_validate)
 *   1. Pin the live database (db.c): one committed state, frame M of the
 *      WAL whose header has salts S.
 *   2. Map it to a replica position: the spool (spool.h) names the
 *      generation, and the spool index whose header has salts S is the WAL
 *      index; the position is that index at the byte offset after frame
 *      M. (A WAL with no frames: the end of the newest spooled index.)
 *   3. Wait, up to a timeout, until the replica holds that position: a
 *      running replicator ships it within moments.
 *   4. Restore the replica up to exactly that position into a file in a
 *      private (0700) temp directory next to the database (fsutil's
 *      ls_tmp_dir_create): no one else can put a -wal, -shm or -journal
 *      beside it or beside the restore's own temp files, and a killed
 *      validation is swept like any litesafe temp.
 *   5. Compare it page by page with the pinned state; report the first
 *      difference. The temp directory is removed.
 */
#define _GNU_SOURCE
#include "validate.h"

#include "catalog.h"
#include "db.h"
#include "fsutil.h"
#include "restore.h"
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Step 2: the spool index of generation `gen` whose header has the pinned salts. */
static int find_index(ls_ctx *ctx, const char *spool, const ls_dbread *db, ls_validate_result *res)
{
    int64_t newest = -1;
    int rc;
    /* Read only: the replicator may be appending to the spool right now. */
    if ((rc = ls_spool_peek(ctx, spool, res->generation, &newest)) != 0)
        return rc;
    if (!res->generation[0] || newest < 0)
        return ls_err(ctx, LS_ENOENT, "%s: no replication state here (is litesafe replicate "
                      "running for this database?)", spool);
    uint64_t newest_size = 0;
    {
        char path[PATH_MAX];
        ls_wal_scan sc;
        ls_spool_file(spool, res->generation, (uint32_t)newest, path, sizeof(path));
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return ls_err_errno(ctx, errno, "open %s", path);
        ls_wal_scan_init(&sc, 0);
        rc = ls_wal_scan_fd(ctx, &sc, fd, path);
        close(fd);
        if (!rc && sc.have_hdr)
            newest_size = sc.commit_frame ? ls_wal_frame_offset(sc.hdr.page_size,
                                                                sc.commit_frame + 1)
                                          : LS_WAL_HDRSIZE;
        ls_wal_scan_free(&sc);
        if (rc)
            return rc;
    }
    if (!db->scan.have_hdr || db->snap_frame == 0) {
        res->index = (uint32_t)newest;
        res->offset = newest_size;
        return 0;
    }
    for (int64_t i = newest; i >= 0; i--) {
        char path[PATH_MAX];
        uint8_t hbuf[LS_WAL_HDRSIZE];
        ls_wal_hdr h;
        size_t got = 0;
        ls_spool_file(spool, res->generation, (uint32_t)i, path, sizeof(path));
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            break;
        rc = ls_pread_full(ctx, fd, hbuf, sizeof(hbuf), 0, &got, path);
        close(fd);
        if (rc)
            return rc;
        if (got == sizeof(hbuf) && ls_wal_hdr_decode(hbuf, &h) == 0 &&
            h.salt1 == db->scan.hdr.salt1 && h.salt2 == db->scan.hdr.salt2) {
            res->index = (uint32_t)i;
            res->offset = ls_wal_frame_offset(db->page_size, db->snap_frame + 1);
            return 0;
        }
    }
    return ls_err(ctx, LS_EBUSY, "the live WAL is not in the local spool yet (is litesafe "
                  "replicate running?)");
}

/* Step 3: does the replica hold everything before res->offset of res->index? */
static int replica_reached(ls_ctx *ctx, ls_storage *st, const ls_validate_result *res, int *yes)
{
    ls_catalog cat;
    int rc = ls_catalog_load(ctx, st, res->generation, &cat);
    *yes = 0;
    if (rc)
        return rc;
    const ls_cat_gen *g = ls_catalog_find(&cat, res->generation);
    const ls_cat_obj *last = NULL;
    for (size_t i = 0; g && i < g->nseg; i++) {
        if (g->segs[i].index > res->index)
            *yes = 1;
        if (g->segs[i].index == res->index)
            last = &g->segs[i];
    }
    if (!*yes && last) {
        if (last->offset >= res->offset) {
            *yes = 1;
        } else {
            /* The end of the last segment is its offset plus its decompressed length. */
            char key[LS_LAYOUT_KEY_MAX];
            uint64_t len = 0;
            ls_layout_wal_key(key, sizeof(key), res->generation, last->index, last->offset);
            rc = ls_catalog_object_length(ctx, st, key, &len);
            *yes = !rc && last->offset + len >= res->offset;
        }
    }
    if (!*yes && res->offset <= LS_WAL_HDRSIZE && g && g->nsnap)
        *yes = 1; /* nothing but a header: the snapshot alone holds the state */
    ls_catalog_free(&cat);
    return rc;
}

/* Step 5: compare the restored file with the pinned pages. */
static int compare(ls_ctx *ctx, ls_dbread *db, const char *path, ls_validate_result *res)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ls_err_errno(ctx, errno, "open %s", path);
    const uint32_t per = 256;
    size_t sz = (size_t)per * db->page_size;
    uint8_t *a = malloc(sz), *b = malloc(sz);
    int rc = 0;
    if (!a || !b) {
        rc = ls_err(ctx, LS_ENOMEM, "out of memory");
        goto cleanup;
    }
    off_t end = lseek(fd, 0, SEEK_END);
    res->replica_pages = (uint64_t)end / db->page_size;
    res->live_pages = db->page_count;
    for (uint64_t pg = 1; pg <= db->page_count; pg += per) {
        uint32_t n = (uint32_t)(db->page_count - pg + 1 < per ? db->page_count - pg + 1 : per);
        size_t got = 0;
        if ((rc = ls_dbread_pages(db, pg, n, a)) != 0)
            goto cleanup;
        if ((rc = ls_pread_full(ctx, fd, b, (size_t)n * db->page_size,
                                (off_t)((pg - 1) * db->page_size), &got, path)) != 0)
            goto cleanup;
        for (uint32_t i = 0; i < n; i++) {
            size_t at = (size_t)i * db->page_size;
            if (got < at + db->page_size || memcmp(a + at, b + at, db->page_size) != 0) {
                res->first_diff_page = pg + i;
                goto cleanup;
            }
        }
    }
    if (res->replica_pages != res->live_pages)
        res->first_diff_page = (res->replica_pages < res->live_pages ? res->replica_pages
                                                                    : res->live_pages) + 1;
    res->ok = res->first_diff_page == 0;
cleanup:
    free(a);
    free(b);
    close(fd);
    return rc;
}

int ls_validate(ls_ctx *ctx, const char *db_path, const char *spool_dir, ls_storage *st,
                int timeout_ms, ls_validate_result *res)
{
    ls_dbread *db = NULL;
    char tmpdir[PATH_MAX + 64] = "", tmp[PATH_MAX + 80], abs[PATH_MAX], spool[PATH_MAX];
    uint64_t t0 = ls_now_ms();
    int rc;

    memset(res, 0, sizeof(*res));
    if ((rc = ls_abspath(ctx, db_path, abs, sizeof(abs))) != 0)
        return rc;
    if (spool_dir)
        ls_strlcpy(spool, spool_dir, sizeof(spool));
    else
        ls_spool_default_dir(abs, spool, sizeof(spool));
    /* 1-2. */
    if ((rc = ls_dbread_open(ctx, abs, 5000, &db)) != 0)
        return rc == LS_EWRITELOCK ? ls_err_recode(ctx, LS_EBUSY) : rc;
    int64_t pinned = unix_ms();
    if ((rc = find_index(ctx, spool, db, res)) != 0)
        goto cleanup;
    /* 3. */
    for (;;) {
        int yes = 0;
        if ((rc = replica_reached(ctx, st, res, &yes)) != 0)
            goto cleanup;
        if (yes)
            break;
        if (ls_now_ms() - t0 > (uint64_t)timeout_ms) {
            rc = ls_err(ctx, LS_EBUSY,
                        "replica has not reached %s/%08x:%llu within %d ms (is litesafe "
                        "replicate running?)",
                        res->generation, res->index, (unsigned long long)res->offset, timeout_ms);
            goto cleanup;
        }
        usleep(100000);
    }
    /* 4. */
    ls_tmp_sweep(abs);
    if ((rc = ls_tmp_dir_create(ctx, abs, tmpdir, sizeof(tmpdir))) != 0) {
        tmpdir[0] = '\0';
        goto cleanup;
    }
    snprintf(tmp, sizeof(tmp), "%s/db", tmpdir);
    ls_restore_plan ro = {res->generation, res->index, -1, (int64_t)res->offset, pinned, 8, 1};
    ls_restore_result rr;
    if ((rc = ls_restore_replica(ctx, st, tmp, &ro, &rr)) != 0)
        goto cleanup;
    /* 5. */
    rc = compare(ctx, db, tmp, res);
    res->elapsed_ms = ls_now_ms() - t0;

cleanup:
    if (tmpdir[0])
        ls_tmp_dir_remove(tmpdir);
    ls_dbread_close(db);
    return rc;
}
