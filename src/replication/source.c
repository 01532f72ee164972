/*
 * source.c - following a live database's WAL into the spool.
 *
 * WHY NO COMMITTED FRAME CAN BE LOST
 *
 * SQLite overwrites committed WAL frames only when it restarts the WAL, and a
 * writer restarts it only if every frame was checkpointed (nBackfill ==
 * mxFrame) and no reader holds a read mark on slots 1..4. A reader that began
 * while the WAL was fully checkpointed sits on slot 0 instead; such a reader
 * blocks all checkpointing (the checkpointer needs slot 0 exclusively), so
 * once a new frame is committed the WAL cannot restart until that reader ends.
 *
 * litesafe therefore always holds a read transaction, and moves it forward
 * hand over hand: after copying the committed frames, it begins a new read
 * transaction on the second connection before ending the old one. Each new
 * read transaction either lands on slot 1..4 (no restart possible while held)
 * or on slot 0, which SQLite only grants when everything up to mxFrame is
 * checkpointed -- and since the previous read mark kept checkpoints at or
 * below what was already copied, that mxFrame was copied. A restart is thus
 * only possible at a point where the spool holds every committed frame, and
 * litesafe sees it as a new header with salt-1 incremented: the current index
 * is complete and index+1 begins. The first read transaction is begun under
 * the write lock after copying, for the same reason.
 *
 * Holding a read mark stops the application's checkpoints from restarting the
 * WAL, so litesafe restarts it itself, briefly, when it has grown:
 *
 * THE CHECKPOINT CYCLE (ls_source_checkpoint)
 *   0. PASSIVE checkpoint, no lock held: the bulk of the frames is copied back
 *      to the database while the application keeps writing.
 *   1. BEGIN IMMEDIATE (short busy timeout; if the application is writing,
 *      give up and try at the next sync).
 *   2. Copy the frames committed since the last sync; fsync the spool.
 *   3. End our read transaction.
 *   4. PASSIVE checkpoint again: only the frames committed since step 0.
 *   5. Begin a read transaction: everything being checkpointed, it lands on
 *      slot 0, which lets the next writer restart the WAL.
 *   6. ROLLBACK: the application's writers go on.
 * Writers wait only for steps 2-5 (a few new frames and two fsyncs); no
 * RESTART or TRUNCATE checkpoint ever waits on the application's readers.
 * Between cycles the application's own checkpoints return SQLITE_BUSY at
 * once (the guard, below; with checkpoint-guard off they copy up to our read
 * mark, and RESTART/TRUNCATE return SQLITE_BUSY after their busy timeout).
 *
 * THE CHECKPOINT GUARD (guard_set)
 * While our read mark holds the WAL, the application's automatic checkpoint
 * runs after each of its commits once the WAL is past its wal_autocheckpoint
 * size (1000 pages by default), and each attempt takes the checkpointer
 * lock, walks the read marks and stops at ours: several lock calls added to
 * every commit, about a quarter of a busy writer's time (docs/benchmarks.md).
 * So between cycles litesafe holds a shared lock on the checkpointer's lock
 * byte of the WAL index (byte 121 of the -shm file, SQLite's documented
 * locking protocol, walformat.html): the application's checkpoints return
 * SQLITE_BUSY at their first lock call and its commits go on. The lock is an
 * open file description lock: SQLite closing its own descriptors of the file
 * in this process does not drop it, and it conflicts with this process's
 * connections too, which is why it is let go around our own checkpoints.
 * It is taken when a sync copies new frames and let go
 *   - for our checkpoints, and after a cycle that checkpointed everything
 *     (the next commit restarts the WAL; until then an application's
 *     TRUNCATE checkpoint succeeds, as it did before the guard);
 *   - whenever the WAL-index header's two copies differ or it is not
 *     initialised: rebuilding the WAL index needs that byte exclusively, and
 *     an application that found the header torn (a writer killed while
 *     writing it) waits for it. Checked at every sync, at least once per
 *     monitor-interval, well within the seconds SQLite keeps retrying;
 *   - when a sync fails, and at detach.
 * It only ever stops checkpoints, and the WAL restarts only after a complete
 * one: no frame is exposed by it.
 *
 * CONTINUITY AT START-UP (ls_source_attach)
 * Under the write lock: the spool continues if the live WAL has the same
 * header and the frame at the end of the spool carries the same cumulative
 * checksum (which covers every byte before it). Otherwise, or without a
 * usable spool, a new generation starts (the replicas then take a snapshot):
 * the WAL was restarted, truncated or rewritten while litesafe was away.
 */
#define _GNU_SOURCE /* F_OFD_SETLK */
#include "source.h"

#include "db.h"
#include "fsutil.h"
#include "wal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define COPY_BUF (1u << 20)
#define DEFAULT_BUSY_MS 50
#define CKPT_MIN_GAP_MS 200
#define SHM_CKPT_LOCK_BYTE 121 /* WALINDEX_LOCK_OFFSET (120) + WAL_CKPT_LOCK (1) */

/* ---- read transactions ---- */

/* Run a prepared statement to its end; 0 or the SQLite error as an LS code. */
static int step_done(ls_source *s, sqlite3_stmt *st)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        ;
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return ls_err(s->ctx, ls_db_code(rc), "%s: %s", s->path,
                      sqlite3_errmsg(sqlite3_db_handle(st)));
    return 0;
}

/* Begin a read transaction on reader i (statements prepared once: this runs per sync). */
static int begin_read(ls_source *s, int i)
{
    int rc = step_done(s, s->q_begin[i]);
    if (!rc)
        rc = step_done(s, s->q_read[i]);
    if (rc == 0 && sqlite3_txn_state(s->rd[i], "main") != SQLITE_TXN_READ)
        rc = ls_err(s->ctx, LS_ERROR, "%s: read transaction did not start", s->path);
    if (rc && sqlite3_get_autocommit(s->rd[i]) == 0)
        step_done(s, s->q_end[i]);
    return rc;
}

static void end_read(ls_source *s, int i)
{
    if (sqlite3_get_autocommit(s->rd[i]) == 0 && step_done(s, s->q_end[i]) != 0)
        ls_err_clear(s->ctx);
}

/* Begin a read transaction on the other reader, then end the current one. */
static int advance_lock(ls_source *s)
{
    int next = s->cur < 0 ? 0 : 1 - s->cur;
    int rc = begin_read(s, next);
    if (rc)
        return rc;
    if (s->cur >= 0)
        end_read(s, s->cur);
    s->cur = next;
    return 0;
}

static void release_lock(ls_source *s)
{
    if (s->cur >= 0)
        end_read(s, s->cur);
    s->cur = -1;
}

/* ---- reading the live WAL ---- */

/* Open the -wal if it exists now; reopen it if the file was replaced. */
static void open_wal(ls_source *s)
{
    struct stat a, b;
    if (s->replaced)
        return; /* the old file's WAL, through the descriptor we have, or none */
    if (s->wal_fd >= 0 && (stat(s->wal_path, &a) != 0 || fstat(s->wal_fd, &b) != 0 ||
                           a.st_ino != b.st_ino || a.st_dev != b.st_dev)) {
        close(s->wal_fd);
        s->wal_fd = -1;
    }
    if (s->wal_fd < 0)
        s->wal_fd = open(s->wal_path, O_RDONLY | O_CLOEXEC);
}

/* Read the live WAL header; *valid is 0 when the file is missing, short or invalid. */
static int read_hdr(ls_source *s, uint8_t buf[LS_WAL_HDRSIZE], ls_wal_hdr *hdr, int *valid)
{
    size_t got = 0;
    *valid = 0;
    open_wal(s);
    if (s->wal_fd < 0)
        return 0;
    int rc = ls_pread_full(s->ctx, s->wal_fd, buf, LS_WAL_HDRSIZE, 0, &got, s->wal_path);
    if (rc)
        return rc;
    *valid = got == LS_WAL_HDRSIZE && ls_wal_hdr_decode(buf, hdr) == 0;
    return 0;
}

/*
 * The last frame SQLite considers committed, from its wal-index: frames past
 * it may carry valid checksums and even a commit frame (a writer killed
 * between writing its commit frame and publishing it in the index), but SQLite
 * will write over them, so they must never be shipped. Returns the number of
 * frames that may be copied, or -1 when the index cannot be read (then the
 * checksum chain alone decides). An index that describes another WAL than the
 * spool's (a restart SQLite has begun but not yet written to the file)
 * allows nothing: every committed frame of the old WAL was copied before any
 * restart could begin (see the top of this file).
 */
static int64_t shm_limit(ls_source *s)
{
    ls_shm_info si;
    /* Through SQLite's own mapping: never open()/close() the -shm here (db.h).
     * During start-up no reader is open yet, but `w` holds the write lock. */
    sqlite3 *db = s->cur >= 0 ? s->rd[s->cur] : s->w;
    if (ls_db_shm_info(db, &si) != 0)
        return -1;
    uint8_t salts[8];
    ls_put32be(salts, s->spool.hdr.salt1);
    ls_put32be(salts + 4, s->spool.hdr.salt2);
    if (memcmp(salts, si.salt, 8) != 0)
        return 0;
    return si.mx_frame;
}

/*
 * Copy the frames committed after the spool's end (same WAL header assumed).
 * Frames are verified against the running checksum and written to the spool
 * as they are read; the spool's end moves at each commit frame.
 */
static int copy_frames(ls_source *s, int *grew)
{
    ls_spool *sp = &s->spool;
    const size_t szFrame = LS_WAL_FRAME_HDRSIZE + sp->hdr.page_size;
    const size_t nPer = s->buf_cap / szFrame;
    int64_t limit = shm_limit(s);
    uint32_t ck[2] = {sp->ck[0], sp->ck[1]};
    uint64_t off = sp->size;
    uint64_t iFrame = sp->frames + 1;
    int rc;

    s->pending = 0;
    for (;;) {
        size_t got = 0, k;
        if ((rc = ls_pread_full(s->ctx, s->wal_fd, s->buf, nPer * szFrame, (off_t)off, &got,
                                s->wal_path)) != 0)
            return rc;
        size_t n = got / szFrame;
        uint64_t commit_end = 0;
        uint32_t commit_ck[2] = {0, 0}, dbsize = 0;
        for (k = 0; k < n; k++, iFrame++) {
            const uint8_t *f = s->buf + k * szFrame;
            if (limit >= 0 && iFrame > (uint64_t)limit) {
                /* Valid frames SQLite has not published yet: look again soon. */
                uint32_t tmp[2] = {ck[0], ck[1]};
                s->pending = ls_wal_frame_check(&sp->hdr, f, tmp);
                break;
            }
            if (!ls_wal_frame_check(&sp->hdr, f, ck))
                break;
            uint32_t commit = ls_get32be(f + 4);
            if (commit) {
                commit_end = off + (k + 1) * szFrame;
                commit_ck[0] = ck[0];
                commit_ck[1] = ck[1];
                dbsize = commit;
            }
        }
        if (k > 0 && (rc = ls_spool_write(s->ctx, sp, off, s->buf, k * szFrame)) != 0)
            return rc;
        if (commit_end) {
            s->commits_copied++;
            s->bytes_copied += commit_end - sp->size;
            ls_spool_commit(sp, commit_end, commit_ck, dbsize);
            *grew = 1;
        }
        off += k * szFrame;
        if (k < nPer)
            return 0;
    }
}

/* Start the spool's current (empty) index with the live header and copy. */
static int start_index(ls_source *s, const uint8_t hbuf[LS_WAL_HDRSIZE], int *grew)
{
    int rc = ls_spool_put_hdr(s->ctx, &s->spool, hbuf);
    if (rc)
        return rc;
    *grew = 1;
    return copy_frames(s, grew);
}

/*
 * Bring the spool up to date with the live WAL. Sets *lost when continuity
 * cannot be proven (the caller starts a new generation).
 */
static int catch_up(ls_source *s, int *grew, int *lost, const char **why)
{
    uint8_t hbuf[LS_WAL_HDRSIZE];
    ls_wal_hdr hdr;
    int valid, rc;
    ls_spool *sp = &s->spool;

    *lost = 0;
    if ((rc = read_hdr(s, hbuf, &hdr, &valid)) != 0)
        return rc;
    if (sp->size == 0) /* the index waits for its header */
        return valid ? start_index(s, hbuf, grew) : 0;
    if (!valid) {
        /* Truncated (or deleted) after a complete checkpoint: the index is done. */
        if ((rc = ls_spool_next_index(s->ctx, sp)) != 0)
            return rc;
        *grew = 1;
        return 0;
    }
    if (hdr.salt1 == sp->hdr.salt1 && hdr.salt2 == sp->hdr.salt2 &&
        hdr.ckpt_seq == sp->hdr.ckpt_seq) {
        struct stat st;
        if (fstat(s->wal_fd, &st) == 0 && (uint64_t)st.st_size < sp->size) {
            *lost = 1;
            *why = "WAL shorter than the spool (truncated by another process)";
            return 0;
        }
        return copy_frames(s, grew);
    }
    /* A new header: SQLite restarted the WAL (salt-1 + 1). */
    if (hdr.salt1 != sp->hdr.salt1 + 1) {
        *lost = 1;
        *why = "WAL replaced by another process (unexpected salt)";
        return 0;
    }
    if ((rc = ls_spool_next_index(s->ctx, sp)) != 0)
        return rc;
    ls_log(s->ctx, LS_LOG_DEBUG, "wal restarted db=%s index=%08x", s->path, sp->index);
    return start_index(s, hbuf, grew);
}

/* Under the write lock: a new generation starting from the live WAL as it is. */
static int new_generation(ls_source *s, const char *why, int *grew)
{
    uint8_t hbuf[LS_WAL_HDRSIZE];
    ls_wal_hdr hdr;
    int valid, rc;

    if ((rc = ls_spool_new_gen(s->ctx, &s->spool)) != 0)
        return rc;
    ls_log(s->ctx, LS_LOG_INFO, "new generation db=%s generation=%s reason=\"%s\"", s->path,
           s->spool.gen, why);
    *grew = 1;
    if ((rc = read_hdr(s, hbuf, &hdr, &valid)) != 0)
        return rc;
    return valid ? start_index(s, hbuf, grew) : 0;
}

/*
 * The database file's identity and last change, recorded in the spool
 * at a clean stop while the spool waits for a new WAL header: if it still
 * matches at start-up (and there is no WAL), nothing was committed meanwhile.
 */
static void db_state_path(const ls_source *s, char *out, size_t n)
{
    snprintf(out, n, "%s/db-state", s->spool.dir);
}

static void db_state_line(const ls_source *s, char *out, size_t n)
{
    struct stat st;
    if (stat(s->path, &st) != 0) {
        snprintf(out, n, "missing");
        return;
    }
    snprintf(out, n, "%s %llu %llu %lld.%09ld\n", s->spool.gen, (unsigned long long)st.st_ino,
             (unsigned long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

static int db_state_matches(ls_source *s)
{
    char path[PATH_MAX + 16], want[256], have[256] = "";
    db_state_path(s, path, sizeof(path));
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    if (!fgets(have, sizeof(have), f))
        have[0] = '\0';
    fclose(f);
    unlink(path); /* good for one start only */
    db_state_line(s, want, sizeof(want));
    return strcmp(want, have) == 0;
}

static void db_state_save(ls_source *s)
{
    char path[PATH_MAX + 16], line[256];
    db_state_path(s, path, sizeof(path));
    unlink(path);
    if (!s->spool.gen[0] || s->spool.size != 0)
        return;
    db_state_line(s, line, sizeof(line));
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    if (ls_write_all(s->ctx, fd, line, strlen(line), -1, path) != 0 || ls_fd_sync(s->ctx, fd, path))
        unlink(path);
    close(fd);
}

/* Does the live WAL continue the recovered spool? */
static int spool_continues(ls_source *s, const char **why)
{
    uint8_t hbuf[LS_WAL_HDRSIZE], fh[LS_WAL_FRAME_HDRSIZE];
    ls_wal_hdr hdr;
    int valid;
    ls_spool *sp = &s->spool;

    if (!sp->gen[0]) {
        *why = "no generation yet";
        return 0;
    }
    if (read_hdr(s, hbuf, &hdr, &valid) != 0)
        return 0;
    if (sp->size == 0) {
        /* No WAL either: only the state recorded at our clean stop proves nothing was
         * committed (and checkpointed away) in between. */
        *why = "database changed while litesafe was stopped";
        return !valid && db_state_matches(s);
    }
    if (!valid || hdr.salt1 != sp->hdr.salt1 || hdr.salt2 != sp->hdr.salt2) {
        *why = "WAL checkpointed or restarted while litesafe was stopped";
        return 0;
    }
    if (sp->frames == 0)
        return 1;
    size_t got = 0;
    uint64_t off = ls_wal_frame_offset(sp->hdr.page_size, sp->frames);
    if (ls_pread_full(s->ctx, s->wal_fd, fh, sizeof(fh), (off_t)off, &got, s->wal_path) != 0 ||
        got < sizeof(fh) || ls_get32be(fh + 16) != sp->ck[0] || ls_get32be(fh + 20) != sp->ck[1]) {
        *why = "WAL overwritten while litesafe was stopped";
        return 0;
    }
    return 1;
}

/* Wake the replica threads: the spool grew or changed generation (caller holds mu). */
static void notify(ls_source *s)
{
    s->seq++;
    pthread_cond_broadcast(&s->cv);
}

/* ---- the checkpoint guard ---- */

static void guard_open(ls_source *s)
{
    char shm[PATH_MAX + 8];
    if (s->o.no_guard || s->guard_fd >= 0)
        return;
    snprintf(shm, sizeof(shm), "%s-shm", s->path);
    s->guard_fd = open(shm, O_RDONLY | O_CLOEXEC); /* none (exclusive locking mode): no guard */
}

/*
 * Only once this process's SQLite connections to the database are closed:
 * closing any descriptor of the -shm drops every POSIX lock the process
 * holds on it, theirs included (ls_shm_read's warning). The guard itself is
 * let go first (guard_set(s, 0)).
 */
static void guard_close(ls_source *s)
{
    if (s->guard_fd >= 0)
        close(s->guard_fd);
    s->guard_fd = -1;
    s->guarded = 0;
}

/* The WAL-index header is whole: initialised, its two copies agree, its checksum holds. */
static int shm_header_whole(ls_source *s)
{
    uint8_t h[LS_SHM_HDRSIZE];
    ls_shm_info info;
    if (pread(s->guard_fd, h, sizeof(h), 0) != (ssize_t)sizeof(h))
        return 0;
    return ls_shm_decode(h, &info) == 0;
}

/* Hold (on) or let go of the guard; taken only over a whole header. */
static void guard_set(ls_source *s, int on)
{
#ifdef F_OFD_SETLK
    if (s->guard_fd < 0)
        return;
    if (on && !shm_header_whole(s))
        on = 0;
    if (on == s->guarded)
        return;
    struct flock fl = {.l_type = on ? F_RDLCK : F_UNLCK,
                       .l_whence = SEEK_SET,
                       .l_start = SHM_CKPT_LOCK_BYTE,
                       .l_len = 1};
    /* Taking it fails while a checkpoint runs: the next sync tries again. */
    if (fcntl(s->guard_fd, F_OFD_SETLK, &fl) == 0)
        s->guarded = on;
#else
    (void)on;
#endif
}

/* Take the write lock, waiting up to ms. 0, or LS_EBUSY when the application holds it. */
static int write_lock(ls_source *s, int ms)
{
    ls_db_fast_busy(s->w, &s->w_busy, ms);
    return ls_db_exec(s->ctx, s->w, s->path, "BEGIN IMMEDIATE");
}

static void write_unlock(ls_source *s)
{
    sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
}

int ls_source_new(ls_ctx *ctx, const char *db, const ls_source_opts *opts, ls_source **out)
{
    ls_source *s = calloc(1, sizeof(*s));
    *out = NULL;
    if (!s)
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    if (!db || !*db || strlen(db) >= sizeof(s->path)) {
        free(s);
        return ls_err(ctx, LS_EUSAGE, "invalid database path");
    }
    s->ctx = ctx;
    s->cur = -1;
    s->wal_fd = -1;
    s->lock_fd = -1;
    s->guard_fd = -1;
    s->spool.fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    /* Made absolute at attach, when its directory exists. */
    ls_strlcpy(s->path, db, sizeof(s->path));
    snprintf(s->wal_path, sizeof(s->wal_path), "%s-wal", s->path);
    if (opts)
        s->o = *opts;
    if (s->o.min_ckpt_pages <= 0)
        s->o.min_ckpt_pages = 1000;
    if (s->o.max_ckpt_pages <= 0)
        s->o.max_ckpt_pages = 10000;
    if (s->o.ckpt_interval_ms < 0)
        s->o.ckpt_interval_ms = 60000;
    if (s->o.ckpt_gap_ms < CKPT_MIN_GAP_MS)
        s->o.ckpt_gap_ms = CKPT_MIN_GAP_MS;
    if (s->o.ckpt_interval_ms > 0 && s->o.ckpt_gap_ms > s->o.ckpt_interval_ms)
        s->o.ckpt_gap_ms = s->o.ckpt_interval_ms;
    if (s->o.busy_ms <= 0)
        s->o.busy_ms = DEFAULT_BUSY_MS;
    *out = s;
    return 0;
}

/* The identity (device, inode) of the file s->path names now; 0, or -1 if none. */
static int path_identity(const ls_source *s, dev_t *dev, ino_t *ino)
{
    struct stat st;
    if (stat(s->path, &st) != 0)
        return -1;
    *dev = st.st_dev;
    *ino = st.st_ino;
    return 0;
}

int ls_source_replaced(ls_source *s)
{
    dev_t dev;
    ino_t ino;
    if (!s->opened)
        return 0;
    if (!s->replaced && (path_identity(s, &dev, &ino) != 0 || dev != s->db_dev ||
                         ino != s->db_ino)) {
        pthread_mutex_lock(&s->mu);
        s->replaced = 1;
        pthread_mutex_unlock(&s->mu);
    }
    return s->replaced;
}

/*
 * ATTACHING (ls_source_attach)
 *   1. Probe the file without changing it: it must exist, be an SQLite
 *      database and be in WAL mode (litesafe never changes the journal mode).
 *   2. Open the connections, and record the file's identity; a file replaced
 *      while they were opened is an error (the caller tries again).
 *   3. Take the spool's lock and recover the spool.
 *   4. Under the write lock: continue the spool or start a new generation
 *      (see CONTINUITY AT START-UP), and take the first read lock.
 * On failure everything opened is closed again and `s` can attach later.
 * Steps 1, 2 and 4 are attach_probe, attach_connections and attach_continue.
 */

/* Step 1: the file is an SQLite database in WAL mode; s->path made absolute, the copy buffer. */
static int attach_probe(ls_source *s)
{
    ls_ctx *ctx = s->ctx;
    ls_db_hdr dh;
    char abs[PATH_MAX];
    int rc;

    if ((rc = ls_db_probe(ctx, s->path, &dh)) != 0)
        return rc;
    if (!dh.wal)
        return ls_err(ctx, LS_ENOTWAL,
                      "%s: database is not in WAL mode (litesafe does not change it; run "
                      "PRAGMA journal_mode=WAL)",
                      s->path);
    if ((rc = ls_abspath(ctx, s->path, abs, sizeof(abs))) != 0)
        return rc;
    ls_strlcpy(s->path, abs, sizeof(s->path));
    snprintf(s->wal_path, sizeof(s->wal_path), "%s-wal", s->path);
    s->page_size = dh.page_size;
    s->buf_cap = COPY_BUF;
    if (s->buf_cap < 4 * (LS_WAL_FRAME_HDRSIZE + s->page_size))
        s->buf_cap = 4 * (LS_WAL_FRAME_HDRSIZE + s->page_size);
    free(s->buf);
    if (!(s->buf = malloc(s->buf_cap)))
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    return 0;
}

/*
 * Step 2: the connections (two readers, the write-lock holder, the
 * checkpointer) and the readers' statements. The file's identity before
 * (dev0, ino0) must still be its identity after (LS_EBUSY: replaced
 * meanwhile); it is recorded. On failure the caller detaches.
 */
static int attach_connections(ls_source *s, dev_t dev0, ino_t ino0)
{
    ls_ctx *ctx = s->ctx;
    dev_t dev1;
    ino_t ino1;
    int rc;

    sqlite3 **conns[] = {&s->rd[0], &s->rd[1], &s->w, &s->ck};
    for (size_t i = 0; i < sizeof(conns) / sizeof(conns[0]); i++) {
        if ((rc = ls_db_open(ctx, s->path, 0, 5000, conns[i])) != 0)
            return rc;
        sqlite3_exec(*conns[i], "PRAGMA cache_size=-256", NULL, NULL, NULL);
    }
    sqlite3_exec(s->ck, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    for (int i = 0; i < 2; i++) {
        if (sqlite3_prepare_v2(s->rd[i], "BEGIN", -1, &s->q_begin[i], NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(s->rd[i], "SELECT count(*) FROM sqlite_master", -1, &s->q_read[i],
                               NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(s->rd[i], "ROLLBACK", -1, &s->q_end[i], NULL) != SQLITE_OK)
            return ls_err(ctx, LS_ENOTDB, "%s: %s", s->path, sqlite3_errmsg(s->rd[i]));
    }
    if (path_identity(s, &dev1, &ino1) != 0 || dev1 != dev0 || ino1 != ino0)
        return ls_err(ctx, LS_EBUSY, "%s: database file replaced while it was opened", s->path);
    s->db_dev = dev0;
    s->db_ino = ino0;
    return 0;
}

/*
 * Step 4, under the write lock (caller holds it): recover the spool in `dir`,
 * continue it or start a new generation (CONTINUITY AT START-UP), sync it and
 * take the first read lock. Replica threads may be looking at the spool: mu
 * is held here.
 */
static int attach_continue(ls_source *s, const char *dir)
{
    const char *why = NULL;
    int grew = 0, rc;

    pthread_mutex_lock(&s->mu);
    rc = ls_spool_open(s->ctx, dir, &s->spool);
    if (!rc && s->after_replace) {
        why = "database file replaced";
        rc = new_generation(s, why, &grew);
    } else if (!rc && spool_continues(s, &why)) {
        int lost = 0;
        rc = catch_up(s, &grew, &lost, &why);
        if (!rc && lost)
            rc = new_generation(s, why, &grew);
    } else if (!rc) {
        rc = new_generation(s, why, &grew);
    }
    if (!rc)
        rc = ls_spool_sync(s->ctx, &s->spool);
    if (!rc)
        rc = advance_lock(s);
    if (!rc) {
        s->opened = 1;
        notify(s);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int ls_source_attach(ls_source *s)
{
    ls_ctx *ctx = s->ctx;
    char spool_dir[PATH_MAX];
    dev_t dev;
    ino_t ino;
    int rc;

    if (s->opened)
        return 0;
    if ((rc = attach_probe(s)) != 0)
        return rc;
    if (path_identity(s, &dev, &ino) != 0)
        return ls_err_errno(ctx, errno, "%s", s->path);
    if ((rc = attach_connections(s, dev, ino)) != 0)
        goto fail;

    /* 3. One replicator per database: a second one would delete the first's spool. */
    if (s->o.spool_dir)
        ls_strlcpy(spool_dir, s->o.spool_dir, sizeof(spool_dir));
    else
        ls_spool_default_dir(s->path, spool_dir, sizeof(spool_dir));
    if ((rc = ls_spool_lock(ctx, spool_dir, &s->lock_fd)) != 0)
        goto fail;

    /* 4. Continuity is decided, and the first read lock taken, under the write lock. */
    if ((rc = write_lock(s, 10000)) != 0)
        goto fail;
    rc = attach_continue(s, spool_dir);
    write_unlock(s);
    if (rc)
        goto fail;
    s->last_ckpt_ms = ls_now_ms();
    s->after_replace = 0;
    guard_open(s);
    ls_log(ctx, LS_LOG_INFO, "source open db=%s generation=%s index=%08x offset=%llu", s->path,
           s->spool.gen, s->spool.index, (unsigned long long)s->spool.size);
    return 0;

fail:
    ls_source_detach(s);
    return rc;
}

/* Copy, handle a lost continuity, move the lock; caller holds mu. */
static int sync_locked(ls_source *s, int *grew)
{
    int lost = 0, rc;
    const char *why = NULL;
    if ((rc = catch_up(s, grew, &lost, &why)) != 0)
        return rc;
    if (!lost && s->after_cycle && s->spool.index != s->cycle_index && s->spool.size > LS_WAL_HDRSIZE) {
        /*
         * The WAL restarted after our checkpoint cycle, which left our read
         * mark on slot 0. Move it to a slot of its own: a slot-0 reader makes
         * every checkpoint attempt of the application index the whole WAL in
         * vain (it cannot copy back while we sit there), while a mark on
         * slots 1..4 lets those attempts end at once.
         */
        s->after_cycle = 0;
        return advance_lock(s);
    }
    if (lost && s->replaced)
        return 0; /* the caller detaches; the next file gets its own generation */
    if (lost) {
        /* Take the write lock so the new generation starts from a still WAL. */
        if ((rc = write_lock(s, 5000)) != 0)
            return rc;
        rc = new_generation(s, why, grew);
        if (!rc)
            rc = ls_spool_sync(s->ctx, &s->spool);
        if (!rc)
            rc = advance_lock(s);
        write_unlock(s);
        return rc;
    }
    return rc;
}

int ls_source_sync(ls_source *s, int *grew)
{
    int rc, g = 0;
    if (grew)
        *grew = 0;
    if (!s->opened)
        return 0;
    ls_source_replaced(s);
    pthread_mutex_lock(&s->mu);
    rc = sync_locked(s, &g);
    if (g)
        notify(s);
    pthread_mutex_unlock(&s->mu);
    if (grew)
        *grew = g;
    /* Held from the first new frame after a cycle; its header checked each time. */
    guard_set(s, !rc && (s->guarded || g));
    if (rc)
        return rc;
    /*
     * A checkpoint cycle when the WAL index is big enough (at most every
     * ckpt_gap_ms unless it passed max-checkpoint-page-count, or four times
     * that with paced replicas: under a flood of tiny commits that bounds the
     * cycles, and the writer's waits, to a few per second, and the new WAL
     * indexes, each one an upload more, to about one per paced upload, as
     * Litestream checks its WAL once per sync) or old enough.
     */
    uint64_t frames = s->spool.frames, since = ls_now_ms() - s->last_ckpt_ms;
    int64_t hard = s->o.max_ckpt_pages * (s->o.ckpt_gap_ms > CKPT_MIN_GAP_MS ? 4 : 1);
    int due = ((int64_t)frames >= s->o.min_ckpt_pages &&
               (since >= (uint64_t)s->o.ckpt_gap_ms || (int64_t)frames >= hard)) ||
              (frames > 0 && s->o.ckpt_interval_ms > 0 && since >= (uint64_t)s->o.ckpt_interval_ms);
    if (due && !s->replaced) {
        int busy = 0;
        rc = ls_source_checkpoint(s, &busy);
    }
    return rc;
}

int ls_source_checkpoint(ls_source *s, int *busy)
{
    int rc, nLog = -1, nCkpt = -1, g = 0;
    uint64_t t0 = ls_now_ms();

    *busy = 0;
    guard_set(s, 0);
    /* 0. The bulk, without any lock: move our read mark to the end of what is
     * copied, copy back to the database up to it, flush the spool. */
    pthread_mutex_lock(&s->mu);
    rc = advance_lock(s);
    if (!rc)
        rc = ls_spool_sync(s->ctx, &s->spool);
    pthread_mutex_unlock(&s->mu);
    if (rc)
        return rc;
    sqlite3_wal_checkpoint_v2(s->ck, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    /* 1. Hold off writers briefly; the application may be mid-transaction. */
    int wait = (int64_t)s->spool.frames >= s->o.max_ckpt_pages ? s->o.busy_ms * 4 : s->o.busy_ms;
    if (write_lock(s, wait) != 0) {
        ls_err_clear(s->ctx);
        *busy = 1;
        guard_set(s, 1);
        return 0;
    }
    pthread_mutex_lock(&s->mu);
    /* 2. Everything committed is in the spool, durably. */
    rc = sync_locked(s, &g);
    if (!rc)
        rc = ls_spool_sync(s->ctx, &s->spool);
    if (!rc) {
        /* 3-5. Step off our read mark, checkpoint the rest, re-enter on slot 0. */
        release_lock(s);
        /* The application's own checkpoint may hold the checkpoint lock for a
         * moment (PASSIVE never waits for it): retry briefly. */
        int crc = SQLITE_BUSY;
        for (int i = 0; i < 20 && crc == SQLITE_BUSY; i++) {
            if (i)
                usleep(500);
            crc = sqlite3_wal_checkpoint_v2(s->ck, NULL, SQLITE_CHECKPOINT_PASSIVE, &nLog, &nCkpt);
        }
        if (crc != SQLITE_OK && crc != SQLITE_BUSY)
            ls_log(s->ctx, LS_LOG_WARN, "checkpoint failed db=%s error=\"%s\"", s->path,
                   sqlite3_errmsg(s->ck));
        rc = advance_lock(s);
        s->after_cycle = 1;
        s->cycle_index = s->spool.index;
    }
    if (g)
        notify(s);
    pthread_mutex_unlock(&s->mu);
    /* 6. */
    write_unlock(s);
    s->last_ckpt_ms = ls_now_ms();
    s->checkpoints++;
    ls_log(s->ctx, LS_LOG_DEBUG, "checkpoint db=%s wal_frames=%d checkpointed=%d ms=%llu",
           s->path, nLog, nCkpt, (unsigned long long)(ls_now_ms() - t0));
    if (nLog >= 0 && nCkpt < nLog)
        *busy = 1;
    /* Everything checkpointed: the WAL restarts at the next commit. */
    guard_set(s, !rc && *busy);
    return rc;
}

void ls_source_pos(ls_source *s, ls_spool_pos *out)
{
    pthread_mutex_lock(&s->mu);
    memcpy(out->gen, s->spool.gen, sizeof(out->gen));
    out->index = s->spool.index;
    out->size = s->spool.size;
    out->salt1 = s->spool.hdr.salt1;
    out->salt2 = s->spool.hdr.salt2;
    out->seq = s->seq;
    pthread_mutex_unlock(&s->mu);
}

static struct timespec deadline_in(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

void ls_source_wait(ls_source *s, uint64_t seq, int64_t ms)
{
    struct timespec ts = deadline_in(ms);
    pthread_mutex_lock(&s->mu);
    while (s->seq == seq && !s->stopping)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&s->mu);
}

void ls_source_sleep(ls_source *s, int64_t ms)
{
    struct timespec ts = deadline_in(ms);
    pthread_mutex_lock(&s->mu);
    while (!s->stopping)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&s->mu);
}

void ls_source_pace(ls_source *s, int64_t ms)
{
    struct timespec ts = deadline_in(ms);
    pthread_mutex_lock(&s->mu);
    uint64_t hurry = s->hurry;
    while (!s->stopping && !s->flushing && s->hurry == hurry)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&s->mu);
}

void ls_source_flush_request(ls_source *s)
{
    pthread_mutex_lock(&s->mu);
    s->flushing = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void ls_source_hurry(ls_source *s)
{
    pthread_mutex_lock(&s->mu);
    s->hurry++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

int ls_source_identity(ls_source *s, dev_t *dev, ino_t *ino)
{
    pthread_mutex_lock(&s->mu);
    int ok = s->opened && !s->replaced;
    *dev = s->db_dev;
    *ino = s->db_ino;
    pthread_mutex_unlock(&s->mu);
    return ok ? 0 : -1;
}

void ls_source_gc(ls_source *s, uint32_t keep_from)
{
    pthread_mutex_lock(&s->mu);
    if (keep_from > s->spool.index)
        keep_from = s->spool.index;
    ls_spool_gc(&s->spool, keep_from);
    pthread_mutex_unlock(&s->mu);
}

uint64_t ls_source_spool_bytes(ls_source *s, uint32_t from)
{
    pthread_mutex_lock(&s->mu);
    uint64_t n = !s->spool.gen[0] ? 0
                 : from == 0      ? s->spool.older + s->spool.size
                                  : ls_spool_bytes_from(&s->spool, from);
    pthread_mutex_unlock(&s->mu);
    return n;
}

void ls_source_stop(ls_source *s)
{
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void ls_source_detach(ls_source *s)
{
    if (!s)
        return;
    if (s->spool.fd >= 0)
        ls_spool_sync(s->ctx, &s->spool);
    guard_set(s, 0); /* the descriptor is closed after the connections */
    release_lock(s);
    if (s->opened && !s->replaced)
        db_state_save(s);
    for (int i = 0; i < 2; i++) {
        sqlite3_finalize(s->q_begin[i]);
        sqlite3_finalize(s->q_read[i]);
        sqlite3_finalize(s->q_end[i]);
        sqlite3_close(s->rd[i]);
        s->q_begin[i] = s->q_read[i] = s->q_end[i] = NULL;
        s->rd[i] = NULL;
    }
    sqlite3_close(s->w);
    sqlite3_close(s->ck);
    s->w = s->ck = NULL;
    guard_close(s);
    if (s->wal_fd >= 0)
        close(s->wal_fd);
    s->wal_fd = -1;
    pthread_mutex_lock(&s->mu);
    ls_spool_close(&s->spool);
    s->spool.gen[0] = '\0'; /* replicas see no generation until the next attach */
    if (s->replaced)
        s->after_replace = 1; /* never continue the old file's spool */
    s->opened = s->replaced = s->pending = s->after_cycle = 0;
    notify(s);
    pthread_mutex_unlock(&s->mu);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the flock */
    s->lock_fd = -1;
}

void ls_source_close(ls_source *s)
{
    if (!s)
        return;
    ls_source_detach(s);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->buf);
    free(s);
}
