/*
 * compact.c - merge the segments of each finished WAL index into one
 * object (see compact.h).
 *
 * THE PROTOCOL (ls_compact_step), for an index I of the current generation
 * that is finished (below the index the replica ships, so no segment of it
 * will ever be added) and whose newest segment is older than compact-after:
 *   1. Read its segments in offset order into a temp file, each at its own
 *      offset: the first at offset 0, none starting past the end of those
 *      before it. Bytes that overlap what is already there must be equal
 *      (an earlier merge interrupted before its deletes left the merged
 *      object and the old segments side by side).
 *   2. The whole is one WAL whose checksums chain from the header to a
 *      commit frame that ends it (the scan restore uses), or I is left as
 *      it is, with a warning.
 *   3. Put it at key I_00000000, replacing the first segment in one step
 *      (a PUT on S3 and Azure, a rename on a file replica; on SFTP the old
 *      object is renamed aside first, so for one round trip a reader finds
 *      no I_00000000 and its restore fails, to be run again: never a wrong
 *      database).
 *   4. One compact-interval later (the grace period), in a later pass,
 *      delete the old segments I_<offset>, offset > 0: a restore that listed
 *      before the merge still finds every object it listed.
 * Between 3 and 4 the replica holds the merged object and the old segments.
 * Litestream 0.3 restores it right: it concatenates the segments of I in
 * offset order, so the WAL file it hands to SQLite is I's whole WAL
 * followed by copies of frames already in it; SQLite's recovery stops at
 * the first frame whose cumulative checksum does not continue the chain,
 * which is the first copied frame, so the copies are ignored. litesafe's
 * restore writes each object at its own offset and accepts overlap.
 * Before 3, after 4, and after a kill at any point, the replica is one of
 * those three states; a restart finds the merged index again (its first
 * object already holds all of it: no put, only the deletes after the grace
 * period counted from that object's upload time).
 *
 * The replica's position (learn_position) is the end of the newest segment
 * of the newest index: compaction never touches that index, and an older
 * index's end is the same whichever of its objects is newest. Retention and
 * compaction run in the same thread, one after the other, never at once.
 *
 * Point-in-time restores: the merged object's upload time is the time of
 * the merge, so a restore to a time inside a merged index stops at the end
 * of the index before it (litesafe and Litestream alike: both stop at the
 * first segment uploaded after the target). Only indexes older than
 * compact-after are merged, so recent points in time stay exact.
 */
#define _GNU_SOURCE
#include "compact.h"

#include "catalog.h"
#include "fsutil.h"
#include "io.h"
#include "layout.h"
#include "stream.h"
#include "wal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Work per pass: merging stops once this much WAL was read (the index at hand finishes). */
#define PASS_BYTES (256ull << 20)
#define PASS_INDEXES 64
#define CMP_CHUNK 65536

/* An index merged, its old segments not deleted yet. */
struct ls_merged {
    uint32_t index;
    uint64_t end;           /* the merged object's length: segments below it are covered */
    int64_t merged_ms;      /* unix ms of the merged object's upload */
};

/* Writes one segment at its offset; bytes already in the file are compared instead. */
typedef struct merge_writer {
    ls_ctx *ctx;
    int fd;
    uint64_t pos;           /* where the next byte goes */
    uint64_t end;           /* bytes in the file so far */
    uint8_t *cmp;           /* CMP_CHUNK bytes */
} merge_writer;

static int merge_write(void *ud, const uint8_t *buf, size_t n)
{
    merge_writer *w = ud;
    while (n > 0) {
        size_t k = n;
        int rc;
        if (w->pos < w->end) {
            if (k > w->end - w->pos)
                k = (size_t)(w->end - w->pos);
            if (k > CMP_CHUNK)
                k = CMP_CHUNK;
            if ((rc = ls_pread_full(w->ctx, w->fd, w->cmp, k, (off_t)w->pos, NULL,
                                    "compaction temp file")) != 0)
                return rc;
            if (memcmp(w->cmp, buf, k) != 0)
                return ls_err(w->ctx, LS_ECORRUPT, "overlapping segments differ at offset %llu",
                              (unsigned long long)w->pos);
        } else {
            if ((rc = ls_write_all(w->ctx, w->fd, buf, k, (off_t)w->pos,
                                   "compaction temp file")) != 0)
                return rc;
            w->end = w->pos + k;
        }
        w->pos += k;
        buf += k;
        n -= k;
    }
    return 0;
}

/* Segment (index, offset) into the temp file at its offset. */
static int read_segment(ls_replica *r, merge_writer *w, uint32_t index, uint32_t offset)
{
    char key[LS_LAYOUT_KEY_MAX];
    ls_writer sink = {merge_write, w}, in;
    ls_lz4_writer *z = NULL;
    ls_layout_wal_key(key, sizeof(key), r->gen, index, offset);
    w->pos = offset;
    int rc = ls_lz4_writer_new(r->ctx, &sink, &z, &in);
    if (!rc)
        rc = r->st->get(r->st, r->ctx, key, 0, -1, &in);
    if (!rc && (rc = ls_lz4_writer_finish(z)) != 0)
        rc = ls_storage_err(r->st, r->ctx, rc, "get", key, NULL);
    ls_lz4_writer_free(z);
    return rc;
}

/* Put the temp file's [0, end) as I_00000000, compressed. */
static int put_merged(ls_replica *r, int fd, uint32_t index, uint64_t end)
{
    char key[LS_LAYOUT_KEY_MAX];
    ls_fd_range fr;
    ls_reader raw, z;
    ls_lz4_reader *lz = NULL;
    ls_reader_fd_range(&raw, &fr, r->ctx, fd, 0, end);
    int rc = ls_lz4_reader_new(r->ctx, &raw, &lz, &z);
    if (!rc) {
        ls_layout_wal_key(key, sizeof(key), r->gen, index, 0);
        rc = r->st->put(r->st, r->ctx, key, &z);
    }
    ls_lz4_reader_free(lz);
    return rc;
}

/* Steps 1-2: the segments of one index into fd; *first_len is the first one's length. */
static int assemble(ls_replica *r, int fd, const ls_cat_obj *segs, size_t n, uint64_t *end,
                    uint64_t *first_len)
{
    merge_writer w = {r->ctx, fd, 0, 0, malloc(CMP_CHUNK)};
    ls_wal_scan scan;
    int rc = 0;
    if (!w.cmp)
        return ls_err(r->ctx, LS_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < n; i++) {
        if (segs[i].offset > w.end) {
            rc = ls_err(r->ctx, LS_ECORRUPT, "gap at offset %llu", (unsigned long long)w.end);
            break;
        }
        rc = read_segment(r, &w, segs[i].index, segs[i].offset);
        if (i == 0)
            *first_len = w.end;
    }
    free(w.cmp);
    if (rc)
        return rc;
    *end = w.end;
    ls_wal_scan_init(&scan, 0);
    rc = ls_wal_scan_fd(r->ctx, &scan, fd, "compaction temp file");
    uint64_t committed = scan.commit_frame
                             ? ls_wal_frame_offset(scan.hdr.page_size, scan.commit_frame + 1)
                             : 0;
    ls_wal_scan_free(&scan);
    if (!rc && committed != w.end)
        rc = ls_err(r->ctx, LS_ECORRUPT, "its WAL does not chain to a commit at its end "
                    "(%llu of %llu bytes)", (unsigned long long)committed,
                    (unsigned long long)w.end);
    return rc;
}

static int remember(ls_replica *r, uint32_t index, uint64_t end, int64_t merged_ms)
{
    struct ls_merged *v = realloc(r->merged, (r->nmerged + 1) * sizeof(*v));
    if (!v)
        return ls_err(r->ctx, LS_ENOMEM, "out of memory");
    r->merged = v;
    r->merged[r->nmerged++] = (struct ls_merged){index, end, merged_ms};
    return 0;
}

/*
 * Steps 1-3 for the n > 1 segments of one index. A damaged or incomplete
 * index is left alone (0 with a warning); a storage failure is returned.
 */
static int merge_index(ls_replica *r, const ls_cat_obj *segs, size_t n, int64_t now,
                       uint64_t *bytes)
{
    char tmpl[PATH_MAX];
    uint64_t end = 0, first_len = 0;
    int rc;
    snprintf(tmpl, sizeof(tmpl), "%s/.compact-XXXXXX", r->src->spool.dir);
    int fd = mkstemp(tmpl);
    if (fd < 0)
        return ls_err_errno(r->ctx, errno, "replica %s: compaction temp file in %s", r->name,
                            r->src->spool.dir);
    unlink(tmpl);
    rc = assemble(r, fd, segs, n, &end, &first_len);
    *bytes += end;
    if (rc == LS_ECORRUPT) {
        ls_log(r->ctx, LS_LOG_WARN, "compaction skipped db=%s replica=%s index=%s/%08x "
               "segments=%zu error=\"%s\"", r->src->path, r->name, r->gen, segs[0].index, n,
               ls_errmsg(r->ctx));
        ls_err_clear(r->ctx);
        rc = 0;
    } else if (!rc && first_len == end) {
        /* Merged before a restart: only the deletes are left, a grace period after its upload. */
        rc = remember(r, segs[0].index, end, segs[0].mtime_ms);
    } else if (!rc && (rc = put_merged(r, fd, segs[0].index, end)) == 0) {
        rc = remember(r, segs[0].index, end, now);
        ls_log(r->ctx, LS_LOG_INFO, "compaction merged db=%s replica=%s index=%s/%08x "
               "segments=%zu bytes=%llu", r->src->path, r->name, r->gen, segs[0].index, n,
               (unsigned long long)end);
    }
    close(fd);
    return rc;
}

/* Step 4 for a merged index whose grace period ended: delete its covered segments. */
static int delete_old(ls_replica *r, const struct ls_merged *m, const ls_cat_obj *segs, size_t n)
{
    char (*keys)[LS_LAYOUT_KEY_MAX] = calloc(n, sizeof(*keys));
    const char **ptrs = calloc(n, sizeof(*ptrs));
    size_t k = 0;
    int rc = 0;
    if (!keys || !ptrs) {
        rc = ls_err(r->ctx, LS_ENOMEM, "out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        if (segs[i].offset == 0 || segs[i].offset >= m->end)
            continue; /* the merged object itself; a segment past it is never deleted */
        ls_layout_wal_key(keys[k], sizeof(keys[k]), r->gen, segs[i].index, segs[i].offset);
        ptrs[k] = keys[k];
        k++;
    }
    if (k && (rc = r->st->del(r->st, r->ctx, ptrs, k)) == 0)
        ls_log(r->ctx, LS_LOG_INFO, "compaction deleted db=%s replica=%s index=%s/%08x "
               "segments=%zu", r->src->path, r->name, r->gen, m->index, k);
cleanup:
    free(keys);
    free(ptrs);
    return rc;
}

static struct ls_merged *find_merged(ls_replica *r, uint32_t index)
{
    for (size_t i = 0; i < r->nmerged; i++)
        if (r->merged[i].index == index)
            return &r->merged[i];
    return NULL;
}

/* Forget merged indexes whose old segments were deleted (here, or by retention). */
static void forget_done(ls_replica *r, const ls_cat_gen *g)
{
    size_t keep = 0;
    for (size_t i = 0; i < r->nmerged; i++) {
        int left = 0;
        if (r->merged[i].merged_ms < 0)
            continue;
        for (size_t j = 0; g && j < g->nseg && !left; j++)
            left = g->segs[j].index == r->merged[i].index && g->segs[j].offset > 0 &&
                   g->segs[j].offset < r->merged[i].end;
        if (left)
            r->merged[keep++] = r->merged[i];
    }
    r->nmerged = keep;
}

/* One pass over the listing of the current generation. */
static int pass(ls_replica *r, const ls_cat_gen *g, int64_t now)
{
    uint64_t bytes = 0;
    int merged = 0, rc = 0;
    int64_t grace = r->o.compact_interval_ms;
    r->compact_pending = 0;
    for (size_t a = 0; g && a < g->nseg && !rc;) {
        size_t b = a;
        int64_t newest = 0;
        while (b < g->nseg && g->segs[b].index == g->segs[a].index) {
            if (g->segs[b].mtime_ms > newest)
                newest = g->segs[b].mtime_ms;
            b++;
        }
        const ls_cat_obj *segs = &g->segs[a];
        size_t n = b - a;
        a = b;
        if (n < 2 || segs[0].index >= r->index)
            continue;
        struct ls_merged *m = find_merged(r, segs[0].index);
        if (m) {
            if (now - m->merged_ms >= grace && (rc = delete_old(r, m, segs, n)) == 0)
                m->merged_ms = -1; /* done: forgotten below */
            else
                r->compact_pending = 1;
        } else if (segs[0].offset != 0) {
            continue; /* no first segment (cut by a spool drop): nothing a restore could use */
        } else if (now - newest < r->o.compact_after_ms || merged >= PASS_INDEXES ||
                   bytes >= PASS_BYTES) {
            r->compact_pending = 1;
        } else {
            rc = merge_index(r, segs, n, now, &bytes);
            merged++;
            r->compact_pending |= rc == 0; /* its deletes come later */
        }
    }
    return rc;
}

int ls_compact_step(ls_replica *r, int64_t now)
{
    ls_catalog cat;
    int rc;
    if (r->o.compact_after_ms <= 0 || r->o.compact_interval_ms <= 0 || !r->have_pos)
        return 0;
    if (r->last_compact_ms == 0) {
        /* The first pass one interval after start: it finds what an earlier run left. */
        r->last_compact_ms = now;
        r->compact_pending = 1;
        return 0;
    }
    if (now - r->last_compact_ms < r->o.compact_interval_ms)
        return 0;
    r->last_compact_ms = now;
    if (!r->compact_pending && r->segments == r->compact_seen)
        return 0; /* nothing shipped, nothing left: no request */
    r->compact_seen = r->segments;
    /* A pass that fails leaves its work pending: the next interval tries again
     * (not only once something new was shipped). */
    if ((rc = ls_catalog_load(r->ctx, r->st, r->gen, &cat)) != 0) {
        r->compact_pending = 1;
        return rc;
    }
    const ls_cat_gen *g = ls_catalog_find(&cat, r->gen);
    rc = pass(r, g, now);
    if (!rc)
        forget_done(r, g);
    else
        r->compact_pending = 1;
    ls_catalog_free(&cat);
    return rc;
}

void ls_compact_free(ls_replica *r)
{
    free(r->merged);
    r->merged = NULL;
    r->nmerged = 0;
}
