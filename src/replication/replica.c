/*
 * replica.c - the replica worker (see replica.h).
 *
 * THE WORKER LOOP (ls_replica_step)
 *   1. Learn the position if unknown or if the spool moved to another
 *      generation: list generations/<gen>/ on the replica; the position is the
 *      end of the newest segment (its decompressed length is read back once),
 *      or the start of the spool's first index. A segment that cannot be
 *      read back (damaged; or age-encrypted with no identity here that opens
 *      it) is shipped again from its start: the spool still holds its bytes.
 *      The newest snapshot's end is checked too (one ranged get of its last
 *      bytes): one cut short is taken again in step 3.
 *   2. Ship: for each spool index from the position on, upload one segment
 *      holding every committed byte not yet on the replica (header included
 *      at offset 0), compressed; a finished index moves the position to the
 *      next. Segments always end on a commit frame because the spool does.
 *   3. Snapshot when the generation has none on the replica, or when
 *      snapshot-interval passed: the database is pinned (db.c), the spool is
 *      shipped up to the pinned frame first, then the pages are streamed. So
 *      a snapshot never holds changes that are missing from the segments
 *      listed before it, and a point-in-time restore never mixes states.
 *   4. Retention when due (see retain()).
 *   5. Compaction when due (compact.c): finished WAL indexes become one
 *      object each. Step 3 also snapshots when the WAL shipped since the last
 *      snapshot exceeds snapshot-wal-ratio times the database size.
 * A failure leaves the position unknown (step 1 recomputes it from the
 * replica) and backs off exponentially, capped, with jitter.
 *
 * AFTER A SPOOL DROP (max-spool-size; THE CAP in spool.h)
 * A replica dropped from the spool cannot ship the WAL it missed. When it
 * works again it takes a fresh snapshot of the same generation, labelled
 * with the spool's current index, and ships from that index's start (step
 * 3 with no snapshot). The generation on the replica then holds the old
 * snapshots and segments up to where it stopped, no segment of the indexes
 * it missed, and the new snapshot followed by every index from its own:
 * a restore starts from the newest snapshot not after its target and needs
 * the WAL only from there on (litesafe's restore and Litestream 0.3's), and
 * a point in time before the drop restores from the old part. The spool's
 * marker lives until the new snapshot's index holds a segment, so a restart
 * in between never resumes from the old position.
 */
#define _GNU_SOURCE
#include "replica.h"

#include "age.h"
#include "catalog.h"
#include "compact.h"
#include "db.h"
#include "fsutil.h"
#include "layout.h"
#include "retry.h"
#include "io.h"
#include "stream.h"
#include "validate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define KEY_MAX 256
#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 5000

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- step 1: the position on the replica ---- */

/* Collects the last bytes of an object (frame_tail). */
typedef struct tail_buf {
    uint8_t b[8];
    size_t n;
} tail_buf;

static int tail_write(void *ud, const uint8_t *buf, size_t n)
{
    tail_buf *t = ud;
    size_t take = n < sizeof(t->b) - t->n ? n : sizeof(t->b) - t->n;
    memcpy(t->b + t->n, buf, take);
    t->n += take;
    return 0;
}

/*
 * Whether the stored object `key` of `size` bytes ends as every LZ4 frame
 * of ours does (stream.c: the end mark, four zero bytes, then the content
 * checksum): *whole 1 or 0. One ranged get of its last 8 bytes, so the
 * newest snapshot can be checked at every start whatever its size; it
 * tells a body cut short (kept by a store such as s3rver when the sender
 * was killed) from a whole one, not a whole one from a damaged one (a cut
 * right after four zero bytes would pass). Returns 0 or the get's failure.
 */
static int frame_tail_whole(ls_replica *r, const char *key, uint64_t size, int *whole)
{
    tail_buf t = {{0}, 0};
    ls_writer w = {tail_write, &t};
    *whole = 0;
    if (size < 15) /* shorter than the smallest frame: header, end mark, checksum */
        return 0;
    int rc = r->st->get(r->st, r->ctx, key, size - sizeof(t.b), (int64_t)sizeof(t.b), &w);
    if (!rc)
        *whole = t.n == sizeof(t.b) && !t.b[0] && !t.b[1] && !t.b[2] && !t.b[3];
    return rc;
}

static int learn_position(ls_replica *r, const ls_spool_pos *sp)
{
    char prefix[KEY_MAX];
    ls_obj_list l = {0};
    int rc, have_wal = 0;
    ls_key best = {0}, k;
    char best_key[KEY_MAX] = "", snap_key[KEY_MAX] = "";
    uint64_t snap_size = 0;

    ls_layout_gen_prefix(prefix, sizeof(prefix), sp->gen);
    rc = r->st->list(r->st, r->ctx, prefix, &l);
    if (rc) {
        ls_obj_list_free(&l); /* a failed listing may hold part of it (the contract) */
        return rc;
    }
    memcpy(r->gen, sp->gen, sizeof(r->gen));
    r->have_snapshot = 0;
    r->last_snapshot_ms = 0;
    for (size_t i = 0; i < l.n; i++) {
        switch (ls_layout_parse(l.v[i].key, &k)) {
        case LS_KEY_SNAPSHOT:
            if (!r->have_snapshot || k.index > r->snap_index) {
                r->snap_index = k.index;
                ls_strlcpy(snap_key, l.v[i].key, sizeof(snap_key));
                snap_size = l.v[i].size;
            }
            r->have_snapshot = 1;
            if (l.v[i].mtime_ms > r->last_snapshot_ms)
                r->last_snapshot_ms = l.v[i].mtime_ms;
            break;
        case LS_KEY_WAL:
            if (!have_wal || k.index > best.index ||
                (k.index == best.index && k.offset > best.offset)) {
                best = k;
                ls_strlcpy(best_key, l.v[i].key, sizeof(best_key));
                have_wal = 1;
            }
            break;
        default:
            break;
        }
    }
    ls_obj_list_free(&l);
    /*
     * The newest snapshot cut short (its upload was killed and the store
     * kept what arrived) would pass for the generation's snapshot: the
     * latest state would not restore until the next snapshot is due. Its
     * end is checked at every start (when the store serves ranges: an
     * encrypted replica's frame is inside age's); a cut one is taken again
     * (step 3; it replaces it when the spool is still in its index).
     */
    r->snap_damaged = 0;
    if (r->have_snapshot && ls_storage_ranged(r->st)) {
        int whole = 0;
        if ((rc = frame_tail_whole(r, snap_key, snap_size, &whole)) != 0)
            return rc;
        if (!whole) {
            ls_log(r->ctx, LS_LOG_WARN, "replica object damaged db=%s replica=%s key=%s "
                   "error=\"the snapshot does not end as a whole LZ4 frame (cut short)\" "
                   "action=snapshot-again", r->src->path, r->name, snap_key);
            r->snap_damaged = 1;
        }
    }
    if (have_wal && !ls_storage_age_readable(r->st)) {
        /*
         * Encrypted to recipients without an identity here: the newest
         * segment's length cannot be read. Ship its index again from that
         * segment's start (as for a damaged one below): the put replaces it
         * with a segment that starts at the same offset and holds at least
         * its bytes, so no segment overlaps another.
         */
        ls_log(r->ctx, LS_LOG_INFO, "replica position without an age identity db=%s replica=%s "
               "key=%s action=upload-again (the newest segment is encrypted and no identity is "
               "configured to read its length: it is uploaded again from its start)",
               r->src->path, r->name, best_key);
        r->index = best.index;
        r->offset = best.offset;
    } else if (have_wal) {
        uint64_t len = 0;
        rc = ls_catalog_object_length(r->ctx, r->st, best_key, &len);
        if (rc == LS_ECORRUPT) {
            /*
             * The newest segment does not decode: an upload the server kept
             * although it was cut short (a server that crashed mid-PUT and
             * stores bodies in place, as s3rver does; S3 itself never shows
             * a partial object). It was never recorded as shipped, so the
             * spool still holds its bytes: ship from its start, and the put
             * of the same key replaces it.
             */
            ls_log(r->ctx, LS_LOG_WARN, "replica object damaged db=%s replica=%s key=%s "
                   "error=\"%s\" action=upload-again", r->src->path, r->name, best_key,
                   ls_errmsg(r->ctx));
            len = 0;
            rc = 0;
        } else if (rc == LS_EPERM) {
            /* Encrypted, and none of the identities opens it (they are not
             * among the recipients): as without an identity, above. */
            ls_log(r->ctx, LS_LOG_WARN, "replica object unreadable db=%s replica=%s key=%s "
                   "error=\"%s\" action=upload-again", r->src->path, r->name, best_key,
                   ls_errmsg(r->ctx));
            len = 0;
            rc = 0;
        }
        if (rc)
            return rc;
        r->index = best.index;
        r->offset = best.offset + len;
    } else {
        /* Nothing shipped in this generation: start with the spool's current index
         * (the snapshot taken next belongs to it or a later one). */
        r->index = sp->index;
        r->offset = 0;
    }
    r->have_pos = 1;
    if (ls_spool_is_dropped(r->src->spool.dir, sp->gen, r->name)) {
        /* Dropped before a restart: it still owes the fresh snapshot. */
        pthread_mutex_lock(&r->mu);
        memcpy(r->drop_gen, sp->gen, sizeof(r->drop_gen));
        pthread_mutex_unlock(&r->mu);
    }
    ls_log(r->ctx, r->failures ? LS_LOG_DEBUG : LS_LOG_INFO,
           "replica position db=%s replica=%s pos=%s/%08x:%llu snapshot=%d",
           r->src->path, r->name, r->gen, r->index, (unsigned long long)r->offset,
           r->have_snapshot);
    return 0;
}

/* ---- step 2: shipping segments ---- */

/* Committed size of spool index `index` (the current one: sp->size). */
static int spool_size(ls_replica *r, const ls_spool_pos *sp, uint32_t index, uint64_t *size)
{
    if (index == sp->index) {
        *size = sp->size;
        return 0;
    }
    char path[PATH_MAX];
    struct stat st;
    ls_spool_file(r->src->spool.dir, sp->gen, index, path, sizeof(path));
    if (stat(path, &st) != 0)
        return ls_err_errno(r->ctx, errno, "replica %s: spool %s", r->name, path);
    *size = (uint64_t)st.st_size;
    return 0;
}

/* Upload bytes [off, end) of spool index `index` as one compressed segment. */
static int put_segment(ls_replica *r, const char *gen, uint32_t index, uint64_t off, uint64_t end)
{
    char path[PATH_MAX], key[KEY_MAX];
    ls_fd_range fr;
    ls_reader raw, z;
    ls_lz4_reader *lz = NULL;
    int rc, fd;

    ls_spool_file(r->src->spool.dir, gen, index, path, sizeof(path));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ls_err_errno(r->ctx, errno, "replica %s: open spool %s", r->name, path);
    ls_reader_fd_range(&raw, &fr, r->ctx, fd, off, end);
    rc = ls_lz4_reader_new(r->ctx, &raw, &lz, &z);
    if (!rc) {
        ls_layout_wal_key(key, sizeof(key), gen, index, (uint32_t)off);
        uint64_t t0 = ls_now_ms();
        rc = r->st->put(r->st, r->ctx, key, &z);
        if (!rc)
            ls_log(r->ctx, LS_LOG_DEBUG,
                   "segment put db=%s replica=%s pos=%s/%08x:%llu bytes=%llu ms=%llu",
                   r->src->path, r->name, gen, index, (unsigned long long)off,
                   (unsigned long long)(end - off), (unsigned long long)(ls_now_ms() - t0));
    }
    ls_lz4_reader_free(lz);
    close(fd);
    return rc;
}

/* Publish the position shipped so far for other threads (ls_replica_has, gc). */
static void publish(ls_replica *r)
{
    pthread_mutex_lock(&r->mu);
    r->shipped_index = r->index;
    r->shipped_offset = r->offset;
    r->shipped_snapshot = r->have_snapshot && !r->snap_damaged;
    memcpy(r->shipped_gen, r->gen, sizeof(r->shipped_gen));
    pthread_mutex_unlock(&r->mu);
}

/* Count a stored segment of `bytes` (or a snapshot) for status, under mu. */
static void count_upload(ls_replica *r, int snapshot, uint64_t bytes)
{
    pthread_mutex_lock(&r->mu);
    if (snapshot) {
        r->snapshots++;
    } else {
        r->segments++;
        r->bytes += bytes;
    }
    r->last_ok_ms = unix_ms();
    pthread_mutex_unlock(&r->mu);
}

/* Ship everything up to the spool position `sp`. */
static int ship(ls_replica *r, const ls_spool_pos *sp)
{
    int rc;
    while (r->index <= sp->index) {
        uint64_t end;
        if ((rc = spool_size(r, sp, r->index, &end)) != 0) {
            /*
             * The spool keeps an index until every replica has shipped all of
             * it (ls_source_gc), so an older index that is gone was shipped
             * whole: the position learnt from the replica is its end. Unless
             * the replica was dropped (max-spool-size): then it is missing,
             * and the caller takes a fresh snapshot.
             */
            if (rc != LS_ENOENT || r->index >= sp->index || ls_replica_dropped(r, sp->gen))
                return rc;
            ls_err_clear(r->ctx);
            r->index++;
            r->offset = 0;
            continue;
        }
        if (r->offset > end)
            return ls_err(r->ctx, LS_ECORRUPT,
                          "replica %s: holds %s/%08x:%llu, beyond the local spool (%llu): another "
                          "process may be replicating to it",
                          r->name, r->gen, r->index, (unsigned long long)r->offset,
                          (unsigned long long)end);
        if (r->offset < end) {
            if ((rc = put_segment(r, sp->gen, r->index, r->offset, end)) != 0)
                return rc;
            count_upload(r, 0, end - r->offset);
            r->wal_since_snapshot += end - r->offset;
            r->offset = end;
            r->last_put_ms = ls_now_ms();
        }
        if (r->index == sp->index)
            break;
        r->index++;
        r->offset = 0;
    }
    publish(r);
    return 0;
}

/* ---- step 3: snapshots ---- */

typedef struct page_src {
    ls_dbread *db;      /* pinned snapshot */
    uint64_t next;      /* next page to read */
    uint8_t *buf;       /* pages read but not yet handed out */
    size_t len, pos;    /* bytes in buf, bytes handed out */
    uint32_t per;       /* pages per read */
} page_src;

static int64_t page_read(void *ud, uint8_t *out, size_t n)
{
    page_src *p = ud;
    if (p->pos == p->len) {
        if (p->next > p->db->page_count)
            return 0;
        uint64_t left = p->db->page_count - p->next + 1;
        uint32_t k = (uint32_t)(left < p->per ? left : p->per);
        int rc = ls_dbread_pages(p->db, p->next, k, p->buf);
        if (rc)
            return rc;
        p->next += k;
        p->len = (size_t)k * p->db->page_size;
        p->pos = 0;
    }
    size_t take = p->len - p->pos < n ? p->len - p->pos : n;
    memcpy(out, p->buf + p->pos, take);
    p->pos += take;
    return (int64_t)take;
}

/*
 * Wait until the spool holds the pinned snapshot's last frame; *sp is then
 * the position the snapshot is labelled with. A spool still on an older WAL
 * (the source has not copied the restart yet) is waited for; one that has
 * left the pinned WAL (possible when the pin reads the fully checkpointed
 * database file, which does not hold the WAL back) means pinning again.
 * SQLite gives each restarted WAL salt-1 plus one, which tells the two apart.
 */
static int pinned_in_spool(ls_replica *r, const ls_dbread *db, ls_spool_pos *sp)
{
    uint64_t need = db->snap_frame ? ls_wal_frame_offset(db->page_size, db->snap_frame + 1) : 0;
    uint64_t deadline = ls_now_ms() + 5000;

    for (;;) {
        ls_source_pos(r->src, sp);
        if (!db->scan.have_hdr || db->snap_frame == 0)
            return 1;
        int same = sp->size >= LS_WAL_HDRSIZE && sp->salt1 == db->scan.hdr.salt1 &&
                   sp->salt2 == db->scan.hdr.salt2;
        if (same && sp->size >= need)
            return 1;
        if (!same && sp->size >= LS_WAL_HDRSIZE && (int32_t)(db->scan.hdr.salt1 - sp->salt1) <= 0)
            return 0;
        if (ls_now_ms() > deadline || r->src->stopping)
            return 0;
        ls_source_wait(r->src, sp->seq, 50);
    }
}

/*
 * 1 when the database path still names the file the source is attached to.
 * Checked after pinning by path: a pin of a file that replaced it must never
 * be labelled with the old file's generation.
 */
static int same_file(ls_replica *r)
{
    struct stat st;
    dev_t dev;
    ino_t ino;
    return ls_source_identity(r->src, &dev, &ino) == 0 && stat(r->src->path, &st) == 0 &&
           st.st_dev == dev && st.st_ino == ino;
}

/* Pin the database, label it with the spool index it belongs to, ship, upload. */
static int snapshot(ls_replica *r)
{
    ls_dbread *db = NULL;
    ls_spool_pos sp;
    page_src ps = {0};
    ls_lz4_reader *lz = NULL;
    int rc = 0;
    char key[KEY_MAX];

    for (int attempt = 0;; attempt++) {
        if ((rc = ls_dbread_open(r->ctx, r->src->path, 5000, &db)) != 0)
            return rc;
        if (!same_file(r)) {
            ls_dbread_close(db);
            return ls_err(r->ctx, LS_EBUSY, "replica %s: %s was replaced; no snapshot of it "
                          "for generation %s", r->name, r->src->path, r->gen);
        }
        if (pinned_in_spool(r, db, &sp) && strcmp(sp.gen, r->gen) == 0)
            break;
        ls_dbread_close(db);
        db = NULL;
        if (r->src->stopping)
            return ls_err(r->ctx, LS_ECANCEL, "cancelled");
        if (attempt >= 7)
            return ls_err(r->ctx, LS_EBUSY, "replica %s: could not pin a snapshot", r->name);
        ls_source_sleep(r->src, 5 << attempt);
    }
    /*
     * The generation's first snapshot on this replica: WAL indexes before the
     * one it belongs to could never be restored (no snapshot at or before
     * them), so shipping starts at its index.
     */
    if (!r->have_snapshot && r->index < sp.index) {
        r->index = sp.index;
        r->offset = 0;
    }
    if ((rc = ship(r, &sp)) != 0)
        goto cleanup;

    ps.db = db;
    ps.per = (1u << 20) / db->page_size ? (1u << 20) / db->page_size : 1;
    ps.next = 1;
    ps.buf = malloc((size_t)ps.per * db->page_size);
    if (!ps.buf) {
        rc = ls_err(r->ctx, LS_ENOMEM, "out of memory");
        goto cleanup;
    }
    ls_reader raw = {page_read, &ps, (int64_t)(db->page_count * db->page_size)}, z;
    if ((rc = ls_lz4_reader_new(r->ctx, &raw, &lz, &z)) != 0)
        goto cleanup;
    ls_layout_snapshot_key(key, sizeof(key), sp.gen, sp.index);
    uint64_t t0 = ls_now_ms();
    if ((rc = r->st->put(r->st, r->ctx, key, &z)) != 0)
        goto cleanup;
    r->have_snapshot = 1;
    r->snap_damaged = 0;
    r->snap_index = sp.index;
    r->last_snapshot_ms = unix_ms();
    r->wal_since_snapshot = 0;
    count_upload(r, 1, 0);
    publish(r);
    ls_log(r->ctx, LS_LOG_INFO, "snapshot written db=%s replica=%s pos=%s/%08x:%llu pages=%llu ms=%llu",
           r->src->path, r->name, sp.gen, sp.index, (unsigned long long)sp.size,
           (unsigned long long)db->page_count, (unsigned long long)(ls_now_ms() - t0));

cleanup:
    ls_lz4_reader_free(lz);
    free(ps.buf);
    ls_dbread_close(db);
    return rc;
}

/* ---- step 4: retention ---- */

/*
 * Litestream's rule, with one restorable snapshot always kept: snapshots
 * younger than `retention` are retained; if none is, a new one is taken
 * first. A generation with no retained snapshot is deleted whole (never the
 * current one); in the others, snapshots and segments with an index below the
 * oldest retained snapshot's go.
 */
static int retain(ls_replica *r)
{
    ls_obj_list l = {0};
    int rc;
    int64_t cutoff = unix_ms() - r->o.retention_ms;

    if ((rc = r->st->list(r->st, r->ctx, ls_layout_root_prefix(), &l)) != 0) {
        ls_obj_list_free(&l);
        return rc;
    }
    /* Oldest retained snapshot index per generation: found by scanning twice. */
    int any_retained = 0;
    ls_key k;
    for (size_t i = 0; i < l.n; i++)
        if (ls_layout_parse(l.v[i].key, &k) == LS_KEY_SNAPSHOT && l.v[i].mtime_ms >= cutoff)
            any_retained = 1;
    if (!any_retained) {
        ls_obj_list_free(&l);
        if ((rc = snapshot(r)) != 0)
            return rc;
        if ((rc = r->st->list(r->st, r->ctx, ls_layout_root_prefix(), &l)) != 0) {
            ls_obj_list_free(&l);
            return rc;
        }
        cutoff = unix_ms() - r->o.retention_ms;
    }
    /* The oldest retained snapshot index of each generation. */
    struct gen_min {
        char gen[LS_GEN_LEN + 1];
        int64_t min_idx; /* -1: no retained snapshot */
    } *gens = calloc(l.n ? l.n : 1, sizeof(*gens));
    const char **del = calloc(l.n ? l.n : 1, sizeof(*del));
    size_t ngen = 0, ndel = 0;
    if (!del || !gens) {
        free(gens);
        free(del);
        ls_obj_list_free(&l);
        return ls_err(r->ctx, LS_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < l.n; i++) {
        ls_key_kind kind = ls_layout_parse(l.v[i].key, &k);
        if (kind == LS_KEY_OTHER)
            continue;
        size_t g = 0;
        while (g < ngen && strcmp(gens[g].gen, k.gen) != 0)
            g++;
        if (g == ngen) {
            memcpy(gens[ngen].gen, k.gen, sizeof(k.gen));
            gens[ngen++].min_idx = -1;
        }
        if (kind == LS_KEY_SNAPSHOT && l.v[i].mtime_ms >= cutoff &&
            (gens[g].min_idx < 0 || k.index < gens[g].min_idx))
            gens[g].min_idx = k.index;
    }
    for (size_t i = 0; i < l.n; i++) {
        if (ls_layout_parse(l.v[i].key, &k) == LS_KEY_OTHER)
            continue;
        size_t g = 0;
        while (strcmp(gens[g].gen, k.gen) != 0)
            g++;
        int current = strcmp(k.gen, r->gen) == 0;
        int64_t min_idx = gens[g].min_idx;
        if ((min_idx < 0 && !current) || (min_idx >= 0 && (int64_t)k.index < min_idx))
            del[ndel++] = l.v[i].key;
    }
    free(gens);
    rc = ndel ? r->st->del(r->st, r->ctx, del, ndel) : 0;
    if (!rc && ndel)
        ls_log(r->ctx, LS_LOG_INFO, "retention db=%s replica=%s deleted=%zu", r->src->path,
               r->name, ndel);
    free(del);
    ls_obj_list_free(&l);
    r->last_retention_ms = unix_ms();
    return rc;
}

/* ---- validation-interval ---- */

static void *validate_main(void *arg)
{
    ls_replica *r = arg;
    ls_ctx *ctx = NULL;
    ls_validate_result res;
    /* A child of the worker's ctx: the engine's cancel at shutdown ends its requests too. */
    if (ls_ctx_new_child(r->ctx, &ctx) == 0 && !ls_storage_age_readable(r->st)) {
        ls_log(ctx, LS_LOG_INFO, "validation skipped db=%s replica=%s reason=\"the replica is "
               "age-encrypted and no identity is configured to read it back\"", r->src->path,
               r->name);
        ls_ctx_free(ctx);
    } else if (ctx) {
        int rc = ls_validate(ctx, r->src->path, r->src->spool.dir, r->st, 30000, &res);
        char pos[LS_LAYOUT_POS_MAX] = "";
        if (!rc)
            ls_layout_pos_str(pos, sizeof(pos), res.generation, res.index, res.offset);
        if (rc)
            ls_log(ctx, LS_LOG_WARN, "validation could not run db=%s replica=%s error=\"%s\"",
                   r->src->path, r->name, ls_errmsg(ctx));
        else if (!res.ok)
            ls_log(ctx, LS_LOG_ERROR,
                   "validation failed db=%s replica=%s pos=%s first_diff_page=%llu", r->src->path,
                   r->name, pos, (unsigned long long)res.first_diff_page);
        else
            ls_log(ctx, LS_LOG_INFO, "validation ok db=%s replica=%s pos=%s pages=%llu",
                   r->src->path, r->name, pos, (unsigned long long)res.live_pages);
        pthread_mutex_lock(&r->mu);
        r->validations++;
        if (!rc && !res.ok)
            r->validation_failures++;
        pthread_mutex_unlock(&r->mu);
        ls_ctx_free(ctx);
    }
    r->vdone = 1;
    return NULL;
}

/* Start a validation when due and none is running; join a finished one. */
static void maybe_validate(ls_replica *r, int64_t now)
{
    if (r->vstarted && r->vdone) {
        pthread_join(r->vth, NULL);
        r->vstarted = 0;
    }
    if (r->o.validation_interval_ms <= 0 || r->vstarted || !r->have_snapshot)
        return;
    if (r->last_validation_ms == 0) {
        r->last_validation_ms = now; /* the first one an interval after start */
        return;
    }
    if (now - r->last_validation_ms < r->o.validation_interval_ms)
        return;
    r->last_validation_ms = now;
    r->vdone = 0;
    if (pthread_create(&r->vth, NULL, validate_main, r) == 0)
        r->vstarted = 1;
}

/* ---- the loop ---- */

/*
 * Snapshot when the generation has none here, when its newest was found
 * cut short (learn_position), or when a drop left the replica owing one
 * (AFTER A SPOOL DROP); *sp is read again (the snapshot shipped past it).
 * Returns 1 in *moved when the spool changed generation.
 */
static int snapshot_if_owed(ls_replica *r, ls_spool_pos *sp, int *moved)
{
    int rc, owed = ls_replica_dropped(r, sp->gen);
    *moved = 0;
    if (owed)
        r->have_snapshot = 0;
    if (r->have_snapshot && !r->snap_damaged)
        return 0;
    if ((rc = snapshot(r)) != 0)
        return rc;
    if (owed) {
        pthread_mutex_lock(&r->mu);
        if (strcmp(r->drop_gen, r->gen) == 0)
            r->drop_gen[0] = '\0'; /* the spool keeps its WAL again, from shipped_index */
        pthread_mutex_unlock(&r->mu);
        r->unmark_pending = 1;
        r->resnap_index = r->index;
        ls_log(r->ctx, LS_LOG_INFO, "replica resumed after a spool drop db=%s replica=%s "
               "pos=%s/%08x:%llu (fresh snapshot)", r->src->path, r->name, r->gen, r->index,
               (unsigned long long)r->offset);
    }
    ls_source_pos(r->src, sp);
    *moved = strcmp(sp->gen, r->gen) != 0;
    return 0;
}

/*
 * snapshot-wal-ratio: 1 when the WAL shipped since the last snapshot is more
 * than the ratio times the database file's size (and at least
 * SNAPSHOT_WAL_FLOOR, so a tiny database is not snapshotted every few
 * commits), i.e. a restore of the latest state would read more WAL than that.
 */
#define SNAPSHOT_WAL_FLOOR (16ull << 20)

static int wal_outgrew_snapshot(ls_replica *r)
{
    struct stat st;
    if (r->o.snapshot_wal_ratio <= 0 || r->wal_since_snapshot < SNAPSHOT_WAL_FLOOR ||
        stat(r->src->path, &st) != 0)
        return 0;
    return (double)r->wal_since_snapshot > r->o.snapshot_wal_ratio * (double)st.st_size;
}

int ls_replica_step(ls_replica *r)
{
    ls_spool_pos sp;
    int rc, moved;
    ls_source_pos(r->src, &sp);
    if (!sp.gen[0])
        return 0;
    if (!r->have_pos || strcmp(r->gen, sp.gen) != 0) {
        if ((rc = learn_position(r, &sp)) != 0)
            return rc;
    }
    /* A generation without a snapshot here starts with one (it ships the WAL
     * up to the pinned frame first); otherwise ship, then snapshot when due. */
    if ((rc = snapshot_if_owed(r, &sp, &moved)) != 0 || moved)
        return rc;
    rc = ship(r, &sp);
    if (rc && ls_replica_dropped(r, sp.gen)) {
        /* Dropped while shipping: what it lacks is gone from the spool. */
        ls_err_clear(r->ctx);
        if ((rc = snapshot_if_owed(r, &sp, &moved)) != 0 || moved)
            return rc;
        rc = ship(r, &sp);
    }
    if (rc)
        return rc;
    if (r->unmark_pending && strcmp(sp.gen, r->gen) == 0 &&
        (r->index > r->resnap_index || r->offset > 0)) {
        ls_spool_clear_dropped(r->src->spool.dir, r->gen, r->name);
        r->unmark_pending = 0;
    }
    /*
     * Snapshots are named by WAL index (Litestream's layout), so one taken in
     * the index of the newest would replace it, and every point in time
     * before it with it: a due snapshot waits for the next index (the
     * checkpoint cycles restart the WAL; only a reader the application holds
     * open can keep it from restarting).
     */
    int64_t now = unix_ms();
    if ((sp.index != r->snap_index || strcmp(sp.gen, r->gen) != 0) &&
        ((r->o.snapshot_interval_ms > 0 && now - r->last_snapshot_ms >= r->o.snapshot_interval_ms) ||
         wal_outgrew_snapshot(r))) {
        if ((rc = snapshot(r)) != 0)
            return rc;
    }
    maybe_validate(r, now);
    if (r->o.retention_ms > 0 && now - r->last_retention_ms >= r->o.retention_check_ms) {
        if (r->last_retention_ms == 0)
            r->last_retention_ms = now; /* first pass one interval after start */
        else if ((rc = retain(r)) != 0)
            return rc;
    }
    return ls_compact_step(r, now);
}

/*
 * Record the outcome of a step for logs and for the owner: a failure is
 * logged at ERROR when its message differs from the last one logged (a
 * replica that stays down is one line, not one per retry), and recovery is
 * logged once.
 */
static void note_result(ls_replica *r, int rc, uint64_t back_ms)
{
    if (rc == 0) {
        if (r->failures)
            ls_log(r->ctx, LS_LOG_INFO, "replica recovered db=%s replica=%s failures=%d",
                   r->src->path, r->name, r->failures);
        r->failures = 0;
        pthread_mutex_lock(&r->mu);
        r->last_rc = 0;
        pthread_mutex_unlock(&r->mu);
        return;
    }
    const char *msg = ls_errmsg(r->ctx);
    pthread_mutex_lock(&r->mu);
    int same = r->last_rc == rc && strcmp(r->last_err, msg) == 0;
    r->last_rc = rc;
    r->last_error_ms = unix_ms();
    ls_strlcpy(r->last_err, msg, sizeof(r->last_err));
    pthread_mutex_unlock(&r->mu);
    r->failures++;
    ls_log(r->ctx, same ? LS_LOG_DEBUG : LS_LOG_ERROR,
           "replica sync failed db=%s replica=%s target=\"%s\" retry_ms=%llu error=\"%s\" "
           "action=retry%s", r->src->path, r->name, r->st->desc, (unsigned long long)back_ms, msg,
           same ? "" : " (logged again when the error changes)");
}

static void *replica_main(void *arg)
{
    ls_replica *r = arg;
    while (!r->src->stopping) {
        ls_spool_pos sp;
        ls_source_pos(r->src, &sp);
        int rc = ls_replica_step(r);
        if (rc && r->src->stopping)
            break;
        if (rc) {
            r->have_pos = 0;
            uint64_t back = ls_backoff_ms((unsigned)r->failures, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
            note_result(r, rc, back);
            ls_err_clear(r->ctx);
            ls_source_sleep(r->src, (int64_t)back);
            continue;
        }
        note_result(r, 0, 0);
        /* Wait for new data; sync-interval spaces uploads out (not during a final flush). */
        if (r->o.sync_interval_ms > 0) {
            uint64_t next = r->last_put_ms + (uint64_t)r->o.sync_interval_ms;
            uint64_t now = ls_now_ms();
            if (now < next)
                ls_source_pace(r->src, (int64_t)(next - now));
        }
        ls_source_wait(r->src, sp.seq, 1000);
    }
    return NULL;
}

int ls_replica_new(ls_ctx *parent, ls_source *src, ls_storage *st, const ls_replica_opts *o,
                   ls_replica **out)
{
    ls_replica *r = calloc(1, sizeof(*r));
    if (!r) {
        ls_storage_close(st);
        return ls_err(parent, LS_ENOMEM, "out of memory");
    }
    if (ls_ctx_new(&r->ctx) != 0) {
        free(r);
        ls_storage_close(st);
        return ls_err(parent, LS_ENOMEM, "out of memory");
    }
    ls_ctx_set_log(r->ctx, parent->log_fn, parent->log_ud, parent->log_level);
    r->st = st;
    r->src = src;
    if (o)
        r->o = *o;
    if (r->o.retention_check_ms <= 0)
        r->o.retention_check_ms = 3600000;
    if (r->o.retention_ms > 0 && r->o.retention_check_ms > r->o.retention_ms)
        r->o.retention_check_ms = r->o.retention_ms;
    ls_strlcpy(r->name, o && o->name ? o->name : st->type, sizeof(r->name));
    pthread_mutex_init(&r->mu, NULL);
    *out = r;
    return 0;
}

int ls_replica_start(ls_replica *r)
{
    if (pthread_create(&r->th, NULL, replica_main, r) != 0)
        return ls_err(r->ctx, LS_ERROR, "replica %s: cannot start its thread", r->name);
    r->started = 1;
    return 0;
}

int ls_replica_has(ls_replica *r, const ls_spool_pos *sp, int *last_rc, char *msg, size_t msgsz)
{
    pthread_mutex_lock(&r->mu);
    int has = !sp->gen[0] ||
              (r->shipped_snapshot && strcmp(r->shipped_gen, sp->gen) == 0 &&
               (r->shipped_index > sp->index ||
                (r->shipped_index == sp->index && r->shipped_offset >= sp->size)));
    if (last_rc)
        *last_rc = r->last_rc;
    if (msg)
        ls_strlcpy(msg, r->last_err, msgsz);
    pthread_mutex_unlock(&r->mu);
    return has;
}

void ls_replica_shipped(ls_replica *r, char *out, size_t n)
{
    pthread_mutex_lock(&r->mu);
    if (r->shipped_gen[0] && r->shipped_snapshot)
        ls_layout_pos_str(out, n, r->shipped_gen, r->shipped_index, r->shipped_offset);
    else
        ls_strlcpy(out, "nothing-restorable", n);
    pthread_mutex_unlock(&r->mu);
}

uint32_t ls_replica_needs_from(ls_replica *r, const char *gen)
{
    uint32_t v = 0;
    pthread_mutex_lock(&r->mu);
    if (strcmp(r->drop_gen, gen) == 0)
        v = UINT32_MAX;
    else if (strcmp(r->shipped_gen, gen) == 0)
        v = r->shipped_index;
    pthread_mutex_unlock(&r->mu);
    return v;
}

int ls_replica_dropped(ls_replica *r, const char *gen)
{
    pthread_mutex_lock(&r->mu);
    int v = gen[0] && strcmp(r->drop_gen, gen) == 0;
    pthread_mutex_unlock(&r->mu);
    return v;
}

int ls_replica_drop(ls_replica *r, ls_ctx *ctx, const char *gen)
{
    int was = ls_spool_is_dropped(r->src->spool.dir, gen, r->name);
    pthread_mutex_lock(&r->mu);
    int already = strcmp(r->drop_gen, gen) == 0;
    memcpy(r->drop_gen, gen, sizeof(r->drop_gen));
    if (!already && !was)
        r->spool_drops++;
    pthread_mutex_unlock(&r->mu);
    if (already)
        return 0;
    if (was)
        return 2;
    /* The marker before the caller removes anything: a restart must see it. */
    if (ls_spool_mark_dropped(ctx, r->src->spool.dir, gen, r->name) != 0) {
        ls_log(ctx, LS_LOG_WARN, "cannot record a spool drop db=%s replica=%s error=\"%s\" "
               "(a restart before it returns would resume it after a gap)",
               r->src->path, r->name, ls_errmsg(ctx));
        ls_err_clear(ctx);
    }
    return 1;
}

void ls_replica_free(ls_replica *r)
{
    if (!r)
        return;
    if (r->started)
        pthread_join(r->th, NULL);
    if (r->vstarted)
        pthread_join(r->vth, NULL);
    ls_storage_close(r->st);
    ls_compact_free(r);
    pthread_mutex_destroy(&r->mu);
    ls_ctx_free(r->ctx);
    free(r);
}
