/*
 * restore.c - rebuild a database from a replica, each page written once.
 *
 * THE RESTORE PROCEDURE (ls_restore_replica)
 *   0. Before the replica is read: the output must not exist, nor any
 *      -wal/-shm/-journal next to it (ls_publish_check: SQLite would replay a
 *      stranger's WAL into the restored file).
 *   1. List the replica once (catalog.c). Choose the generation: the one
 *      named, else the one whose objects are newest (with a timestamp: the
 *      newest that started at or before it).
 *   2. Choose the snapshot: the newest with index <= the target index, or
 *      uploaded at or before the target time; and the WAL segments after it,
 *      in (index, offset) order, up to the target. Every index from the
 *      snapshot's on must start at offset 0 and have no gap.
 *   3. Download the segments in parallel (the storage handle retries and
 *      resumes each object, retry.c), decompress each into a per-index temp
 *      WAL file at its own offset, so they can arrive in any order; then
 *      check each index's offsets leave no gap (they may overlap: the
 *      merged object and the old segments a compaction has not deleted yet
 *      hold the same bytes; the checksum scan of step 4 would stop at any
 *      frame that differed, and the index fails as damaged).
 *   4. Scan each temp WAL (checksums, salts, commit frames) and build one map:
 *      page -> newest committed frame up to the target. The last commit gives
 *      the database size.
 *   5. Begin the output's temp file (ls_tmpfile, fsutil.h: dest and its
 *      siblings checked again, stale temp files of dead processes swept).
 *      Stream the snapshot into it; each page is written either from the
 *      snapshot or, if the map has it, from its WAL frame -- once. Pages past
 *      the snapshot's end come from the map. Truncate to the database size.
 *   6. fsync, integrity_check, publish without replacing anything (checking
 *      the siblings again: a long restore gives one time to appear), fsync
 *      the directory. Temp files are removed whatever happens.
 * Unlike replaying each WAL index through a SQLite checkpoint, no page is
 * written twice and nothing is fsynced per index.
 */
#define _GNU_SOURCE
#include "restore.h"

#include "db.h"
#include "fsutil.h"
#include "stream.h"
#include "verify.h"
#include "wal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


/* One WAL index being rebuilt from its segments. */
typedef struct rs_index {
    uint32_t index;
    int fd;                 /* temp WAL file */
    char path[PATH_MAX];
    size_t first, count;    /* its segments: plan[first .. first+count) */
    size_t pending;         /* segments not downloaded yet (under rs_state.mu) */
    int scanned;            /* scan is done (by the thread that fetched its last segment) */
    ls_wal_scan scan;       /* after step 4 */
} rs_index;

/* One segment to download. */
typedef struct rs_seg {
    const ls_cat_obj *obj;
    rs_index *ix;
    uint64_t len;           /* decompressed length, after download */
    int rc;
} rs_seg;

typedef struct rs_state {
    ls_ctx *ctx;
    ls_storage *st;
    const char *gen;
    rs_seg *segs;
    size_t nseg;
    size_t next;            /* next segment to take (under mu) */
    int failed;             /* a download failed for good: stop taking work */
    char errmsg[1024];      /* its message */
    int errcode;
    uint64_t bytes;         /* downloaded, compressed */
    pthread_mutex_t mu;
} rs_state;

/* ---- step 3: downloads ---- */

typedef struct at_writer {
    int fd;
    uint64_t off;           /* next write position */
    uint64_t written;
    ls_ctx *ctx;
} at_writer;

static int at_write(void *ud, const uint8_t *buf, size_t n)
{
    at_writer *w = ud;
    int rc = ls_write_all(w->ctx, w->fd, buf, n, (off_t)w->off, "restore temp WAL");
    w->off += n;
    w->written += n;
    return rc;
}

/*
 * A damaged object (LS_ECORRUPT) ends the restore: its message then also
 * says when the object was uploaded, so that the caller can ask for a point
 * in time before it. Restore never falls back to an older state on its own
 * (it would return less than was asked for). Returns rc.
 */
static int damaged_hint(ls_ctx *ctx, int rc, int64_t mtime_ms)
{
    char when[32], msg[sizeof(ctx->msg)];
    struct tm tm;
    time_t t = (time_t)(mtime_ms / 1000);
    if (rc != LS_ECORRUPT || mtime_ms <= 0 || !gmtime_r(&t, &tm) ||
        !strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm))
        return rc;
    ls_strlcpy(msg, ls_errmsg(ctx), sizeof(msg));
    return ls_err(ctx, rc, "%s (the object does not decode; uploaded %s: a restore to a time "
                  "before it may succeed)", msg, when);
}

/* One segment into its index's temp WAL; the storage handle retries (retry.c). */
static int fetch_segment(ls_ctx *ctx, rs_state *s, rs_seg *sg)
{
    char key[LS_LAYOUT_KEY_MAX];
    ls_layout_wal_key(key, sizeof(key), s->gen, sg->obj->index, sg->obj->offset);
    at_writer aw = {sg->ix->fd, sg->obj->offset, 0, ctx};
    ls_writer sink = {at_write, &aw}, in;
    ls_lz4_writer *z = NULL;
    int rc = ls_lz4_writer_new(ctx, &sink, &z, &in);
    if (!rc)
        rc = s->st->get(s->st, ctx, key, 0, -1, &in);
    if (!rc && (rc = ls_lz4_writer_finish(z)) != 0) /* cut short: name the object */
        rc = ls_storage_err(s->st, ctx, rc, "get", key, NULL);
    ls_lz4_writer_free(z);
    if (!rc)
        sg->len = aw.written;
    return damaged_hint(ctx, rc, sg->obj->mtime_ms);
}

/*
 * Step 4's scan of one index (checksums, commits, its page map), done by the
 * download thread that brought its last segment: the scans of the indexes
 * run in parallel with each other and with the other downloads, while the
 * file is still in the page cache. The read buffer is freed at once (the
 * map is kept for build_map).
 */
static int scan_index(ls_ctx *ctx, rs_index *ix)
{
    ls_wal_scan_init(&ix->scan, 1);
    int rc = ls_wal_scan_fd(ctx, &ix->scan, ix->fd, ix->path);
    free(ix->scan.buf);
    ix->scan.buf = NULL;
    ix->scan.buf_cap = 0;
    ix->scanned = rc == 0;
    return rc;
}

static void *fetch_main(void *arg)
{
    rs_state *s = arg;
    ls_ctx *ctx = NULL;
    if (ls_ctx_new_child(s->ctx, &ctx) != 0) /* retries show; the caller's cancel reaches it */
        return NULL;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        if (s->failed || s->next >= s->nseg) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        rs_seg *sg = &s->segs[s->next++];
        pthread_mutex_unlock(&s->mu);
        int rc = fetch_segment(ctx, s, sg);
        pthread_mutex_lock(&s->mu);
        int last = !rc && --sg->ix->pending == 0 && !s->failed;
        pthread_mutex_unlock(&s->mu);
        if (last)
            rc = scan_index(ctx, sg->ix);
        pthread_mutex_lock(&s->mu);
        s->bytes += sg->obj->size;
        if (rc && !s->failed) {
            s->failed = 1;
            s->errcode = rc;
            ls_strlcpy(s->errmsg, ls_errmsg(ctx), sizeof(s->errmsg));
        }
        pthread_mutex_unlock(&s->mu);
    }
    ls_ctx_free(ctx);
    return NULL;
}

/*
 * Downloads at once by default: a remote replica's segments are small, so
 * their round trips dominate (hundreds of segments at 100 ms each on a
 * distant bucket); 16 keeps the decompression buffers of Litestream's 4 MiB
 * blocks under 64 MiB in the worst case. (On the loopback test server,
 * whose single node process is the bottleneck, 8 and 16 measure the same.)
 */
#define DEFAULT_PARALLELISM 16

static int fetch_all(rs_state *s, int parallelism)
{
    pthread_t th[64];
    int n = parallelism < 1 ? DEFAULT_PARALLELISM : parallelism > 64 ? 64 : parallelism;
    int started = 0;
    if ((size_t)n > s->nseg)
        n = (int)s->nseg;
    for (int i = 0; i < n; i++)
        if (pthread_create(&th[started], NULL, fetch_main, s) == 0)
            started++;
    if (n > 0 && started == 0)
        fetch_main(s);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    if (s->failed)
        return ls_err(s->ctx, s->errcode, "%s", s->errmsg);
    return 0;
}

/* ---- steps 1-2: choosing what to restore ---- */

/*
 * How recent a generation is as seen from the target: its newest object at
 * or before the timestamp (any object without one). -1 when the generation
 * has no snapshot it could start from.
 */
static int64_t gen_rank(const ls_cat_gen *g, const ls_restore_plan *o)
{
    int64_t first_snap = -1, newest = -1;
    for (size_t i = 0; i < g->nsnap; i++) {
        const ls_cat_obj *s = &g->snaps[i];
        if ((o->timestamp_ms >= 0 && s->mtime_ms > o->timestamp_ms) ||
            (o->index >= 0 && s->index > o->index))
            continue;
        if (first_snap < 0 || s->mtime_ms < first_snap)
            first_snap = s->mtime_ms;
        if (s->mtime_ms > newest)
            newest = s->mtime_ms;
    }
    if (first_snap < 0)
        return -1;
    for (size_t i = 0; i < g->nseg; i++)
        if (g->segs[i].mtime_ms > newest &&
            (o->timestamp_ms < 0 || g->segs[i].mtime_ms <= o->timestamp_ms))
            newest = g->segs[i].mtime_ms;
    return newest;
}

/*
 * The generation to restore: the one named, or the most recent one that has
 * a snapshot at or before the target. A generation whose first segments were
 * uploaded before its snapshot does not count for a time before that
 * snapshot: the older generation holds that moment.
 */
static const ls_cat_gen *choose_gen(ls_ctx *ctx, const ls_catalog *c, const ls_restore_plan *o)
{
    if (o->generation) {
        const ls_cat_gen *g = ls_catalog_find(c, o->generation);
        if (!g || !g->nsnap)
            ls_err(ctx, LS_ENOENT, "generation %s: %s", o->generation,
                   g ? "has no snapshot" : "not found on the replica");
        return g && g->nsnap ? g : NULL;
    }
    const ls_cat_gen *best = NULL;
    int64_t best_rank = -1;
    for (size_t i = 0; i < c->n; i++) {
        int64_t rank = gen_rank(&c->gens[i], o);
        if (rank >= 0 && (!best || rank > best_rank)) {
            best = &c->gens[i];
            best_rank = rank;
        }
    }
    if (!best)
        ls_err(ctx, LS_ENOENT, "no matching backup found on the replica");
    return best;
}

/* The snapshot to start from: newest that is not after the target. */
static const ls_cat_obj *choose_snapshot(const ls_cat_gen *g, const ls_restore_plan *o)
{
    const ls_cat_obj *best = NULL;
    for (size_t i = 0; i < g->nsnap; i++) {
        const ls_cat_obj *s = &g->snaps[i];
        if (o->index >= 0 && s->index > o->index)
            continue;
        if (o->timestamp_ms >= 0 && s->mtime_ms > o->timestamp_ms)
            continue;
        if (o->offset >= 0 && o->index >= 0 && s->index == o->index &&
            !(o->pinned_ms > 0 && s->mtime_ms <= o->pinned_ms))
            continue; /* a snapshot may hold frames past an exact offset in its own index */
        if (!best || s->index > best->index ||
            (s->index == best->index && s->mtime_ms >= best->mtime_ms))
            best = s;
    }
    return best;
}

/* ---- step 5: writing the output ---- */

/* Global page map across indexes: pgno -> (index slot, frame). */
typedef struct pmap_ent {
    uint32_t pgno;
    uint32_t ix;            /* position in the rs_index array */
    uint32_t frame;
} pmap_ent;

typedef struct pmap {
    pmap_ent *v;
    size_t cap, len;
} pmap;

static size_t pslot(uint32_t pgno, size_t cap)
{
    return (size_t)((pgno * 2654435761u) & (uint32_t)(cap - 1));
}

static int pmap_put(pmap *m, uint32_t pgno, uint32_t ix, uint32_t frame)
{
    if ((m->len + 1) * 2 > m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 4096;
        pmap_ent *nv = calloc(ncap, sizeof(*nv));
        if (!nv)
            return LS_ENOMEM;
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->v[i].pgno)
                continue;
            size_t j = pslot(m->v[i].pgno, ncap);
            while (nv[j].pgno)
                j = (j + 1) & (ncap - 1);
            nv[j] = m->v[i];
        }
        free(m->v);
        m->v = nv;
        m->cap = ncap;
    }
    size_t j = pslot(pgno, m->cap);
    while (m->v[j].pgno && m->v[j].pgno != pgno)
        j = (j + 1) & (m->cap - 1);
    if (!m->v[j].pgno)
        m->len++;
    m->v[j] = (pmap_ent){pgno, ix, frame};
    return 0;
}

static const pmap_ent *pmap_get(const pmap *m, uint32_t pgno)
{
    if (!m->cap)
        return NULL;
    size_t j = pslot(pgno, m->cap);
    while (m->v[j].pgno) {
        if (m->v[j].pgno == pgno)
            return &m->v[j];
        j = (j + 1) & (m->cap - 1);
    }
    return NULL;
}

/* Writes the database: snapshot bytes in, pages out (WAL versions substituted). */
typedef struct out_writer {
    ls_ctx *ctx;
    int fd;                 /* output temp file */
    const pmap *map;
    rs_index *ixs;
    uint32_t page_size;     /* 0 until the snapshot's header is seen */
    uint8_t *page;          /* page being assembled */
    uint8_t *frame;         /* one WAL frame, read when the map has the page */
    size_t fill;            /* bytes in page */
    uint64_t pgno;          /* number of the page being assembled */
    uint64_t wal_pages;
    uint64_t written;       /* pages written */
    uint8_t *run;           /* consecutive pages not written yet (one write each RUN_BYTES) */
    size_t run_len;         /* bytes in run */
    uint64_t run_first;     /* page number of its first page */
    uint64_t since_wb;      /* bytes written since writeback was last started */
    uint64_t wb_from;       /* where that writeback range starts */
} out_writer;

#define RUN_BYTES (1u << 20)
#define WRITEBACK_EVERY (32u << 20)

/* Write the pending run of pages in one call; start writeback now and then. */
static int flush_run(out_writer *w)
{
    if (!w->run_len)
        return 0;
    int rc = ls_write_all(w->ctx, w->fd, w->run, w->run_len,
                          (off_t)((w->run_first - 1) * w->page_size), "restored database");
    w->since_wb += w->run_len;
    w->run_len = 0;
    if (!rc && w->since_wb >= WRITEBACK_EVERY) {
        sync_file_range(w->fd, (off64_t)w->wb_from, (off64_t)w->since_wb, SYNC_FILE_RANGE_WRITE);
        w->wb_from += w->since_wb;
        w->since_wb = 0;
    }
    return rc;
}

/* Page `pgno` of the result: its newest WAL version if the map has one, else `snap_page`. */
static int write_page(out_writer *w, uint32_t pgno, const uint8_t *snap_page)
{
    const pmap_ent *e = pmap_get(w->map, pgno);
    const uint8_t *src = snap_page;
    int rc;
    if (e) {
        rs_index *ix = &w->ixs[e->ix];
        if (!w->frame && !(w->frame = malloc(LS_WAL_FRAME_HDRSIZE + w->page_size)))
            return ls_err(w->ctx, LS_ENOMEM, "out of memory");
        rc = ls_pread_full(w->ctx, ix->fd, w->frame, LS_WAL_FRAME_HDRSIZE + w->page_size,
                           (off_t)ls_wal_frame_offset(w->page_size, e->frame), NULL, ix->path);
        if (rc)
            return rc;
        src = w->frame + LS_WAL_FRAME_HDRSIZE;
        w->wal_pages++;
    }
    if (!w->run && !(w->run = malloc(RUN_BYTES > w->page_size ? RUN_BYTES : w->page_size)))
        return ls_err(w->ctx, LS_ENOMEM, "out of memory");
    if (w->run_len && (w->run_first + w->run_len / w->page_size != pgno ||
                       w->run_len + w->page_size > (RUN_BYTES > w->page_size ? RUN_BYTES
                                                                            : w->page_size))) {
        if ((rc = flush_run(w)) != 0)
            return rc;
    }
    if (!w->run_len)
        w->run_first = pgno;
    memcpy(w->run + w->run_len, src, w->page_size);
    w->run_len += w->page_size;
    w->written++;
    return 0;
}

static int out_write(void *ud, const uint8_t *buf, size_t n)
{
    out_writer *w = ud;
    while (n > 0) {
        if (!w->page) {
            /* The page size is in the first 100 bytes; keep a 64 KiB staging page. */
            w->page = malloc(65536);
            if (!w->page)
                return ls_err(w->ctx, LS_ENOMEM, "out of memory");
        }
        size_t want = w->page_size ? w->page_size : 100;
        size_t take = want - w->fill < n ? want - w->fill : n;
        memcpy(w->page + w->fill, buf, take);
        w->fill += take;
        buf += take;
        n -= take;
        if (!w->page_size && w->fill == 100) {
            ls_db_hdr h;
            if (ls_db_hdr_decode(w->page, &h) != 0)
                return ls_err(w->ctx, LS_ECORRUPT, "snapshot is not an SQLite database");
            w->page_size = h.page_size;
            continue;
        }
        if (w->page_size && w->fill == w->page_size) {
            int rc = write_page(w, (uint32_t)++w->pgno, w->page);
            if (rc)
                return rc;
            w->fill = 0;
        }
    }
    return 0;
}

/* ---- the procedure ---- */

/* Everything one restore holds while it runs; released by job_free(). */
typedef struct rs_job {
    ls_ctx *ctx;
    ls_storage *st;
    ls_restore_plan plan;
    ls_restore_result *res;
    int gap;                    /* build_map found a gap between listed segments */
    char dest[PATH_MAX];        /* absolute path of the output */
    ls_catalog cat;             /* the replica's listing (step 1) */
    const ls_cat_gen *gen;      /* the generation chosen, in cat */
    const ls_cat_obj *snap;     /* the snapshot chosen, in gen */
    rs_state s;                 /* the segments to apply and their downloads */
    rs_index *ixs;              /* one per WAL index applied, in order */
    size_t nix;
    pmap map;                   /* page -> newest frame (step 4) */
    uint32_t dbsize;            /* pages of the result (the last commit's, else the snapshot's) */
    char tmpdir[PATH_MAX];      /* the temp WAL files' directory ("" none) */
    ls_tmpfile out;             /* the output's temp file (steps 5-6) */
} rs_job;

static void job_free(rs_job *j)
{
    ls_tmpfile_abort(&j->out);
    for (size_t i = 0; i < j->nix; i++) {
        if (j->ixs[i].fd >= 0)
            close(j->ixs[i].fd);
        unlink(j->ixs[i].path);
        ls_wal_scan_free(&j->ixs[i].scan);
    }
    if (j->tmpdir[0])
        rmdir(j->tmpdir);
    free(j->ixs);
    free(j->s.segs);
    free(j->map.v);
    ls_catalog_free(&j->cat);
    pthread_mutex_destroy(&j->s.mu);
}

/* Step 0: the output must not exist, nor a -wal/-shm/-journal beside it. */
static int check_output(rs_job *j, const char *out)
{
    int rc;
    if (ls_path_exists(out))
        return ls_err(j->ctx, LS_EEXIST, "%s: output exists (restore never overwrites)", out);
    if ((rc = ls_abspath(j->ctx, out, j->dest, sizeof(j->dest))) != 0)
        return rc;
    return ls_publish_check(j->ctx, j->dest);
}

/* Steps 1-2: list the replica, choose the generation and the snapshot. */
static int choose(rs_job *j)
{
    int rc;
    if ((rc = ls_catalog_load(j->ctx, j->st, j->plan.generation, &j->cat)) != 0)
        return rc;
    if (!(j->gen = choose_gen(j->ctx, &j->cat, &j->plan)))
        return ls_errcode(j->ctx);
    if (!(j->snap = choose_snapshot(j->gen, &j->plan)))
        return ls_err(j->ctx, LS_ENOENT, "generation %s: no snapshot at or before the target",
                      j->gen->name);
    memcpy(j->res->generation, j->gen->name, sizeof(j->res->generation));
    j->res->snapshot_index = j->snap->index;
    j->res->index = j->snap->index;
    return 0;
}

/*
 * Step 2: the WAL segments after the snapshot up to the target, grouped by
 * index; every index from the snapshot's on starts at offset 0, none missing.
 */
static int plan_segments(rs_job *j)
{
    const ls_cat_gen *g = j->gen;
    const ls_restore_plan *o = &j->plan;
    j->s.segs = calloc(g->nseg ? g->nseg : 1, sizeof(*j->s.segs));
    j->ixs = calloc(g->nseg ? g->nseg : 1, sizeof(*j->ixs));
    if (!j->s.segs || !j->ixs)
        return ls_err(j->ctx, LS_ENOMEM, "out of memory");
    for (size_t i = 0; i < g->nseg; i++) {
        const ls_cat_obj *sg = &g->segs[i];
        if (sg->index < j->snap->index)
            continue;
        if (o->index >= 0 && sg->index > o->index)
            break;
        if (o->index >= 0 && o->offset >= 0 && sg->index == o->index && sg->offset >= o->offset)
            break;
        if (o->timestamp_ms >= 0 && sg->mtime_ms > o->timestamp_ms)
            break;
        if (!j->nix || j->ixs[j->nix - 1].index != sg->index) {
            uint32_t expect = j->nix ? j->ixs[j->nix - 1].index + 1 : j->snap->index;
            if (sg->index != expect)
                return ls_err(j->ctx, LS_ECORRUPT, "generation %s: WAL index %08x is missing",
                              g->name, expect);
            if (sg->offset != 0)
                return ls_err(j->ctx, LS_ECORRUPT,
                              "generation %s: WAL index %08x has no initial segment", g->name,
                              sg->index);
            j->ixs[j->nix] = (rs_index){.index = sg->index, .fd = -1, .first = j->s.nseg};
            j->nix++;
        }
        j->ixs[j->nix - 1].count++;
        j->s.segs[j->s.nseg++] = (rs_seg){.obj = sg, .ix = &j->ixs[j->nix - 1]};
    }
    return 0;
}

/* Step 3: download the segments in parallel into per-index temp WAL files. */
static int download(rs_job *j)
{
    char dir[PATH_MAX], base[PATH_MAX];
    int rc;
    ls_path_split(j->dest, dir, sizeof(dir), base, sizeof(base));
    if (j->nix)
        snprintf(j->tmpdir, sizeof(j->tmpdir), "%s/.%s.%ld.litesafe-restore", dir, base,
                 (long)getpid());
    if (j->nix && mkdir(j->tmpdir, 0700) != 0) {
        rc = ls_err_errno(j->ctx, errno, "create %s", j->tmpdir);
        j->tmpdir[0] = '\0';
        return rc;
    }
    for (size_t i = 0; i < j->nix; i++) {
        rs_index *ix = &j->ixs[i];
        snprintf(ix->path, sizeof(ix->path), "%s/%08x.wal", j->tmpdir, ix->index);
        ix->fd = open(ix->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (ix->fd < 0)
            return ls_err_errno(j->ctx, errno, "create %s", ix->path);
        ix->pending = ix->count;
    }
    j->s.ctx = j->ctx;
    j->s.st = j->st;
    j->s.gen = j->gen->name;
    if ((rc = fetch_all(&j->s, j->plan.parallelism)) != 0)
        return rc;
    j->res->bytes_downloaded = j->s.bytes;
    j->res->segments = j->s.nseg;
    return 0;
}

/* Step 4: each index contiguous and checksummed up to a commit; the page map. */
static int build_map(rs_job *j)
{
    const char *gname = j->gen->name;
    int rc;
    for (size_t i = 0; i < j->nix; i++) {
        rs_index *ix = &j->ixs[i];
        uint64_t end = 0;
        for (size_t k = ix->first; k < ix->first + ix->count; k++) {
            /* Overlap is fine: a compaction (compact.c) merged the index before deleting
             * the old segments; each object was written at its own offset. */
            const rs_seg *sg = &j->s.segs[k];
            if (sg->obj->offset > end)
                return j->gap = 1, ls_err(j->ctx, LS_ECORRUPT,
                              "generation %s: WAL index %08x has a gap at offset %llu", gname,
                              ix->index, (unsigned long long)end);
            if (sg->obj->offset + sg->len > end)
                end = sg->obj->offset + sg->len;
        }
        if (j->plan.index == (int64_t)ix->index && j->plan.offset >= 0 &&
            end > (uint64_t)j->plan.offset) {
            /* A merged object runs past an exact target offset: cut it there. */
            end = (uint64_t)j->plan.offset;
            if (ftruncate(ix->fd, (off_t)end) != 0)
                return ls_err_errno(j->ctx, errno, "truncate %s", ix->path);
            if (ix->scanned) { /* its download thread scanned past the cut */
                ls_wal_scan_free(&ix->scan);
                ix->scanned = 0;
            }
        }
        if (!ix->scanned && (rc = scan_index(j->ctx, ix)) != 0)
            return rc;
        uint64_t committed = ix->scan.commit_frame
                                 ? ls_wal_frame_offset(ix->scan.hdr.page_size,
                                                       ix->scan.commit_frame + 1)
                                 : (ix->scan.have_hdr ? LS_WAL_HDRSIZE : 0);
        if (!ix->scan.have_hdr || committed != end)
            return ls_err(j->ctx, LS_ECORRUPT,
                          "generation %s: WAL index %08x is damaged at offset %llu of %llu",
                          gname, ix->index, (unsigned long long)committed,
                          (unsigned long long)end);
        for (size_t k = 0; k < ix->scan.map_cap; k++) {
            const ls_wal_page *p = &ix->scan.map[k];
            if (p->pgno && (rc = pmap_put(&j->map, p->pgno, (uint32_t)i, p->frame)) != 0)
                return ls_err(j->ctx, rc, "out of memory");
        }
        if (ix->scan.commit_frame)
            j->dbsize = ix->scan.commit_dbsize;
        j->res->index = ix->index;
        j->res->offset = end;
    }
    return 0;
}

/*
 * The snapshot in parts of SNAP_PART bytes, up to SNAP_PARTS_MAX (or the
 * parallelism, if lower) ranged gets at once, decoded in order while the
 * next parts download (pget.c): at most 64 MiB held. A file replica is read
 * in one stream (local reads are already at disk speed; parts would only add
 * copies), and so is a storage that serves whole objects only.
 */
#define SNAP_PART (8u << 20)
#define SNAP_PARTS_MAX 8

static int get_snapshot(rs_job *j, const char *key, ls_writer *in)
{
    int n = j->plan.parallelism < 1 ? DEFAULT_PARALLELISM : j->plan.parallelism;
    if (n > SNAP_PARTS_MAX)
        n = SNAP_PARTS_MAX;
    if (strcmp(j->st->type, "file") == 0)
        n = 1;
    return ls_storage_get_parallel(j->st, j->ctx, key, j->snap->size, SNAP_PART, n, in);
}

/* Step 5, the snapshot's part: stream it through `ow`, each page written once. */
static int write_snapshot(rs_job *j, out_writer *ow)
{
    char key[LS_LAYOUT_KEY_MAX];
    ls_writer sink = {out_write, ow}, in;
    ls_lz4_writer *z = NULL;
    ls_layout_snapshot_key(key, sizeof(key), j->gen->name, j->snap->index);
    int rc = ls_lz4_writer_new(j->ctx, &sink, &z, &in);
    if (!rc)
        rc = get_snapshot(j, key, &in);
    if (!rc && (rc = ls_lz4_writer_finish(z)) != 0) /* cut short: name the object */
        rc = ls_storage_err(j->st, j->ctx, rc, "get", key, NULL);
    else if (rc == LS_ECORRUPT && !strstr(ls_errmsg(j->ctx), key)) /* bad bytes: name it too */
        rc = ls_storage_err(j->st, j->ctx, rc, "get", key, NULL);
    ls_lz4_writer_free(z);
    if (!rc && (ow->fill != 0 || !ow->page_size))
        rc = ls_err(j->ctx, LS_ECORRUPT, "snapshot %s: not a whole number of pages", key);
    j->res->bytes_downloaded += j->snap->size;
    return damaged_hint(j->ctx, rc, j->snap->mtime_ms);
}

/*
 * Step 5: the output's temp file: the snapshot's pages (WAL versions
 * substituted), then the pages past its end from the WAL, truncated to the
 * database size.
 */
static int write_output(rs_job *j)
{
    int rc;
    if ((rc = ls_tmpfile_begin(j->ctx, &j->out, j->dest, 0600, 0)) != 0)
        return rc;
    out_writer ow = {.ctx = j->ctx, .fd = j->out.fd, .map = &j->map, .ixs = j->ixs};
    rc = write_snapshot(j, &ow);
    if (!rc && !j->dbsize)
        j->dbsize = (uint32_t)ow.pgno;
    for (uint64_t pg = ow.pgno + 1; !rc && pg <= j->dbsize; pg++) {
        if (!pmap_get(&j->map, (uint32_t)pg)) {
            rc = ls_err(j->ctx, LS_ECORRUPT, "page %llu is in neither the snapshot nor the WAL",
                        (unsigned long long)pg);
            break;
        }
        rc = write_page(&ow, (uint32_t)pg, NULL);
    }
    if (!rc)
        rc = flush_run(&ow);
    free(ow.page);
    free(ow.frame);
    free(ow.run);
    if (rc)
        return rc;
    for (size_t i = 0; i < j->nix; i++)
        if (j->ixs[i].scan.have_hdr && j->ixs[i].scan.hdr.page_size != ow.page_size)
            return ls_err(j->ctx, LS_ECORRUPT,
                          "WAL index %08x page size differs from the snapshot's",
                          j->ixs[i].index);
    if (ftruncate(j->out.fd, (off_t)j->dbsize * ow.page_size) != 0)
        return ls_err_errno(j->ctx, errno, "truncate %s", j->out.path);
    j->res->page_size = ow.page_size;
    j->res->page_count = j->dbsize;
    j->res->wal_pages = ow.wal_pages;
    return 0;
}

/* Step 6: durable, checked (unless the plan skips it), published without replacing. */
static int finish(rs_job *j)
{
    int rc;
    if ((rc = ls_tmpfile_sync(j->ctx, &j->out)) != 0)
        return rc;
    if (!j->plan.skip_integrity) {
        ls_verify_result vr;
        memset(&vr, 0, sizeof(vr));
        if ((rc = ls_integrity_check(j->ctx, j->out.path, &vr)) == 0 && !vr.integrity_ok)
            rc = ls_err(j->ctx, LS_ECORRUPT, "restored database fails integrity_check: %s",
                        vr.integrity_message);
        ls_verify_result_free(&vr);
        if (rc)
            return rc;
    }
    return ls_tmpfile_commit(j->ctx, &j->out);
}

int ls_restore_replica(ls_ctx *ctx, ls_storage *st, const char *out, const ls_restore_plan *plan,
                       ls_restore_result *res)
{
    static const ls_restore_plan latest = LS_RESTORE_PLAN_LATEST;
    rs_job j;
    uint64_t t0 = ls_now_ms();
    int rc;

    /*
     * A listing of a live replica may miss an object that was stored while
     * it ran, yet show a later one (a directory read in hash order misses
     * an entry created behind it): the listed segments then have a gap that
     * the replica does not. Such an object exists before the next listing
     * begins, so a gap is listed again, twice, before it is reported.
     */
    for (int attempt = 0;; attempt++) {
        memset(&j, 0, sizeof(j));
        j.ctx = ctx;
        j.st = st;
        j.plan = plan ? *plan : latest;
        j.res = res;
        j.out = (ls_tmpfile)LS_TMPFILE_INIT;
        pthread_mutex_init(&j.s.mu, NULL);
        memset(res, 0, sizeof(*res));
        if ((rc = check_output(&j, out)) == 0 && (rc = choose(&j)) == 0 &&
            (rc = plan_segments(&j)) == 0 && (rc = download(&j)) == 0 &&
            (rc = build_map(&j)) == 0 && (rc = write_output(&j)) == 0 && (rc = finish(&j)) == 0)
            res->elapsed_ms = ls_now_ms() - t0;
        job_free(&j);
        if (!rc || !j.gap || attempt >= 2)
            return rc;
        ls_log(ctx, LS_LOG_INFO, "restore listing again error=\"%s\" (an object stored while "
               "the replica was listed may have been missed)", ls_errmsg(ctx));
        ls_err_clear(ctx);
    }
}
