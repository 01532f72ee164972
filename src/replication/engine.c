/*
 * engine.c - the replication daemon (see engine.h).
 *
 * Each database has a source thread that sleeps in poll() on an inotify
 * descriptor watching the database's directory; a write to the -wal wakes it
 * at once (commit-to-spool latency is a few hundred microseconds), and
 * monitor-interval bounds the wait when inotify is unavailable or misses
 * something. Bursts are coalesced: a sync runs at most every COALESCE_MS.
 * After each sync the spool is trimmed to what every replica still needs,
 * within its cap (THE CAP, below).
 *
 * THE CAP (ls_engine_trim_spool; max-spool-size, spool.h)
 *   1. The spool keeps every index from the lowest one a replica still
 *      needs; replicas dropped earlier in this generation need none.
 *   2. If what that keeps is over the cap (max-spool-size, by default the
 *      larger of 1 GiB and twice the database file, evaluated at each
 *      check), the replicas that need the lowest index are dropped (their
 *      marker written, the drop logged once at warn level and counted), and
 *      step 1 is done again, until it fits or only the current index is
 *      kept (its size is bounded by the checkpoint cycles, which never wait
 *      for a replica).
 *   3. The indexes below are removed. A dropped replica takes a fresh
 *      snapshot when it works again (replica.c, AFTER A SPOOL DROP); the
 *      others are untouched, and nothing here waits or blocks the writer.
 *
 * A SPOOL THAT CANNOT BE WRITTEN (disk full on meta-path)
 * A failed sync changes nothing: the spool keeps its last commit (a torn
 * write past it is overwritten by the next try), the read mark stays where
 * it was (SQLite keeps the uncopied frames in the WAL, which grows until
 * space returns) and no lock is held. It is logged once per distinct error
 * (ERROR, naming the spool), retried at every WAL change or
 * monitor-interval, and the recovery is logged once; the replicas go on
 * shipping what the spool holds.
 *
 * STAYING UP
 * Once the configuration is accepted, nothing about one database or one
 * replica stops the daemon. A database that does not exist yet, is not an
 * SQLite database or is not in WAL mode is looked at again every
 * monitor-interval (and at once when inotify sees it created), and attached
 * as soon as it qualifies; it is never created or changed meanwhile. A
 * replica that fails (server away, credentials refused, bucket missing)
 * retries with capped backoff in its own thread (replica.c). Each problem is
 * logged once, and again only when it changes or ends.
 *
 * A DATABASE REPLACED UNDER US
 * When the database path names another file (deleted and created again, or
 * renamed over), the source thread (1) copies the old file's last commits
 * through the descriptors it still holds, (2) waits, up to shutdown-timeout,
 * until every replica has shipped them, so the old generation stays
 * restorable up to its end, (3) detaches, and (4) attaches to the new file
 * with a new generation.
 *
 * STOPPING (ls_engine_run after the first stop request)
 *   1. Each source thread syncs what is committed and reports the spool's
 *      end as its target; sources keep following the WAL (a snapshot a
 *      replica still owes needs a live pin).
 *   2. Replicas stop pacing (sync-interval) and ship; a failure is retried
 *      with the usual backoff.
 *   3. The engine waits until every replica holds its database's target,
 *      or until shutdown-timeout, or a second stop request. A replica whose
 *      last failure is permanent (refused credentials) is not waited for.
 *   4. Everything stops; requests still running are cancelled. The result
 *      is 0 only when every replica holds its target; otherwise LS_EIO
 *      naming each replica, what it holds and what it lacks.
 */
#define _GNU_SOURCE
#include "engine.h"

#include "fsutil.h"
#include "retry.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define COALESCE_MS 10
#define PENDING_RECHECK_MS 2
#define PENDING_RECHECKS 50
#define DEFAULT_SHUTDOWN_MS 30000

/*
 * LAG. After each sync that grew the spool the source thread notes the new
 * end and the time. A replica's lag is the age of the oldest noted end it
 * does not hold yet (0 when it holds them all). The ring keeps the last
 * GROWTH_RING ends; past that, the oldest kept one gives a lower bound. A
 * database replaced (detached) or a new generation empties it: the old
 * generation's ends are never shipped.
 */
#define GROWTH_RING 256
typedef struct growth_mark {
    ls_spool_pos pos;
    int64_t unix_ms;
} growth_mark;

typedef struct engine_db {
    ls_ctx *ctx;                /* the source thread's context */
    const ls_db_cfg *cfg;       /* its configuration */
    ls_engine *e;               /* the engine (stop requests, timeouts) */
    ls_source *src;             /* created at start, attached by the source thread */
    ls_replica **reps;
    size_t nrep;
    pthread_t th;
    int started;
    int wake_fd;                /* eventfd: wakes the source thread's poll() */
    int tried;                  /* the source thread made its first attach attempt */
    volatile int want_target;   /* the engine is stopping: report the final position */
    volatile int have_target;   /* `target` is set (release/acquire) */
    ls_spool_pos target;        /* what must be on every replica before the exit */
    char last_err[512];         /* the attach failure last logged */
    char sync_err[512];         /* the sync failure last logged ("" while syncs work) */
    /* Guarded by mu: sync barriers (ls_engine_sync) and the growth ring. */
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* broadcast when a barrier is served */
    uint64_t barrier_req;       /* barriers requested ... */
    uint64_t barrier_done;      /* ... and served: barrier_pos covers every commit made
                                   before request number barrier_done */
    int barrier_attached;       /* the database was attached when it was served */
    ls_spool_pos barrier_pos;
    growth_mark growth[GROWTH_RING]; /* the spool's recent ends, oldest at growth_head */
    size_t ngrowth, growth_head;
} engine_db;

struct ls_engine {
    ls_ctx *ctx;
    engine_db *dbs;
    size_t ndb;
    int64_t shutdown_ms;        /* shutdown-timeout */
    volatile sig_atomic_t *stop; /* stop requests: 1 flush and stop, 2+ stop at once */
    int quit;                   /* source threads end */
    int running;                /* between the start of the threads and the stop */
    /* stop, *stop, quit, running and the dbs' tried are read by other threads
     * (LOAD/STORE below): set once by one thread, polled by the others. */
};

/* Tries per storage call before a failure reaches the caller (retry.c). */
#define STORAGE_ATTEMPTS 8
#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)

int ls_replica_storage_open(ls_ctx *ctx, const ls_replica_cfg *rc, ls_storage **out)
{
    ls_storage_opts so = {0};
    so.name = rc->name;
    so.type = rc->type;
    so.path = rc->path;
    so.bucket = rc->bucket;
    so.region = rc->region;
    so.endpoint = rc->endpoint;
    so.force_path_style = rc->force_path_style > 0;
    so.skip_verify = rc->skip_verify > 0;
    so.ca_file = rc->ca_file;
    so.access_key_id = rc->access_key_id;
    so.secret_access_key = rc->secret_access_key;
    so.session_token = rc->session_token;
    so.host = rc->host;
    so.user = rc->user;
    so.password = rc->password;
    so.key_path = rc->key_path;
    so.known_hosts = rc->known_hosts;
    so.host_key = rc->host_key; /* a fingerprint or an authorized-keys line */
    so.account_name = rc->account_name;
    so.account_key = rc->account_key;
    ls_storage *st = NULL;
    int r = ls_storage_open(ctx, &so, &st);
    if (r == 0)
        r = ls_storage_retry_open(ctx, st, STORAGE_ATTEMPTS, out);
    if (r == 0 && (r = ls_replica_storage_age(ctx, rc, out)) != 0)
        *out = NULL;
    return r;
}

int ls_replica_age_keys(ls_ctx *ctx, const ls_replica_cfg *rc, ls_age_keys **out)
{
    char what[128];
    snprintf(what, sizeof(what), "replica %s", rc->name ? rc->name : rc->type ? rc->type : "");
    ls_age_opts o = {.what = what,
                     .identities = rc->age_identities,
                     .n_identities = rc->n_age_identities,
                     .identity_files = rc->age_identity_files,
                     .n_identity_files = rc->n_age_identity_files,
                     .recipients = rc->age_recipients,
                     .n_recipients = rc->n_age_recipients,
                     .recipient_files = rc->age_recipient_files,
                     .n_recipient_files = rc->n_age_recipient_files};
    return ls_age_keys_load(ctx, &o, out);
}

/*
 * The age wrapper goes outside the retrying one: a get that the retry layer
 * resumes continues the ciphertext where it stopped, and the decryption
 * sees one stream.
 */
int ls_replica_storage_age(ls_ctx *ctx, const ls_replica_cfg *rc, ls_storage **st)
{
    ls_age_keys *keys = NULL;
    int r = ls_replica_age_keys(ctx, rc, &keys);
    if (r != 0) {
        ls_storage_close(*st);
        *st = NULL;
        return r;
    }
    if (!keys)
        return 0;
    ls_storage *inner = *st;
    *st = NULL;
    return ls_storage_age_open(ctx, inner, keys, st);
}

#define SPOOL_CAP_FLOOR (1ull << 30) /* the automatic cap is at least 1 GiB */

/* The cap in bytes: max_spool, or the larger of 1 GiB and twice the database. */
static uint64_t spool_cap(ls_source *s, int64_t max_spool, uint64_t have)
{
    struct stat st;
    if (max_spool > 0)
        return (uint64_t)max_spool;
    if (have <= SPOOL_CAP_FLOOR || stat(s->path, &st) != 0)
        return SPOOL_CAP_FLOOR; /* under the floor either way: no need to look */
    uint64_t twice = 2 * (uint64_t)st.st_size;
    return twice > SPOOL_CAP_FLOOR ? twice : SPOOL_CAP_FLOOR;
}

/* The lowest index a replica still needs (THE CAP, step 1), at most sp->index. */
static uint32_t spool_keep(const ls_spool_pos *sp, ls_replica **reps, size_t nrep)
{
    uint32_t keep = sp->index;
    for (size_t i = 0; i < nrep; i++) {
        uint32_t need = ls_replica_needs_from(reps[i], sp->gen);
        if (need < keep)
            keep = need;
    }
    return keep;
}

int ls_engine_trim_spool(ls_ctx *ctx, ls_source *s, ls_replica **reps, size_t nrep,
                         int64_t max_spool)
{
    ls_spool_pos sp;
    int dropped = 0;
    ls_source_pos(s, &sp);
    if (!sp.gen[0])
        return 0;
    uint64_t have = ls_source_spool_bytes(s, 0);
    uint64_t cap = spool_cap(s, max_spool, have);
    uint32_t keep = spool_keep(&sp, reps, nrep);
    while (keep < sp.index && have > cap) {
        uint64_t kept = ls_source_spool_bytes(s, keep);
        if (kept <= cap)
            break;
        /* 2. Drop the replicas that hold the oldest index back. */
        for (size_t i = 0; i < nrep; i++) {
            if (ls_replica_needs_from(reps[i], sp.gen) != keep)
                continue;
            char pos[LS_LAYOUT_POS_MAX], at[LS_LAYOUT_POS_MAX];
            int how = ls_replica_drop(reps[i], ctx, sp.gen);
            ls_replica_shipped(reps[i], pos, sizeof(pos));
            ls_layout_pos_str(at, sizeof(at), sp.gen, sp.index, sp.size);
            if (how)
                ls_log(ctx, how == 1 ? LS_LOG_WARN : LS_LOG_INFO,
                       "spool over max-spool-size db=%s replica=%s spool_bytes=%llu "
                       "max_spool_size=%llu replica_pos=%s spool_pos=%s action=drop "
                       "(its unshipped WAL is removed from the spool; it takes a fresh "
                       "snapshot when it is back)%s", s->path, reps[i]->name,
                       (unsigned long long)kept, (unsigned long long)cap, pos, at,
                       how == 2 ? " (dropped before a restart)" : "");
            dropped++;
        }
        uint32_t next = spool_keep(&sp, reps, nrep);
        if (next <= keep)
            break; /* nothing dropped after all (a replica moved meanwhile) */
        keep = next;
    }
    /* 3. */
    if (keep > 0)
        ls_source_gc(s, keep);
    return dropped;
}

/*
 * Waking up on WAL writes. A watch on the WAL file is armed one-shot before
 * each sync, so a burst of writes costs the application's write() calls one
 * event at most per sync instead of one per write (a permanent IN_MODIFY watch
 * costs a busy writer about a tenth of its throughput). A watch on the
 * directory catches the WAL or the database being created, replaced or
 * deleted. Arming before syncing means a write that lands after the sync's
 * read still wakes us. The engine wakes the thread through an eventfd.
 */
typedef struct wal_watch {
    int fd;                     /* inotify descriptor, -1: poll only */
    int wake_fd;                /* the engine's eventfd (-1: none) */
    int wal_wd;                 /* one-shot watch on the WAL file, -1 when not armed */
    char walpath[PATH_MAX + 8]; /* the -wal path */
    char walname[PATH_MAX + 8]; /* its base name */
    char dbname[PATH_MAX];      /* the database's base name */
} wal_watch;

static void watch_open(wal_watch *w, const char *db, int wake_fd)
{
    char dir[PATH_MAX];
    ls_path_split(db, dir, sizeof(dir), w->dbname, sizeof(w->dbname));
    snprintf(w->walpath, sizeof(w->walpath), "%s-wal", db);
    snprintf(w->walname, sizeof(w->walname), "%s-wal", w->dbname);
    w->wal_wd = -1;
    w->wake_fd = wake_fd;
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd >= 0 &&
        inotify_add_watch(w->fd, dir, IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM) < 0) {
        close(w->fd);
        w->fd = -1;
    }
}

static void watch_arm(wal_watch *w)
{
    if (w->fd >= 0 && w->wal_wd < 0)
        w->wal_wd = inotify_add_watch(w->fd, w->walpath, IN_MODIFY | IN_ONESHOT);
}

/* Wait up to ms; returns 1 when the WAL or the database may have changed. */
static int watch_wait(wal_watch *w, int ms)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    struct pollfd pfd[2];
    nfds_t n = 0;
    if (w->fd >= 0)
        pfd[n++] = (struct pollfd){w->fd, POLLIN, 0};
    if (w->wake_fd >= 0)
        pfd[n++] = (struct pollfd){w->wake_fd, POLLIN, 0};
    int got = poll(n ? pfd : NULL, n, ms);
    if (got <= 0)
        return got == 0; /* the fallback poll always syncs */
    uint64_t v;
    if (w->wake_fd >= 0 && read(w->wake_fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
        return 1;
    int relevant = 0;
    ssize_t len;
    while (w->fd >= 0 && (len = read(w->fd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + len;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            if (ev->wd == w->wal_wd) {
                relevant = 1;
                if (ev->mask & (IN_IGNORED | IN_MODIFY))
                    w->wal_wd = -1; /* one-shot: fired (or the file went away) */
            } else if (ev->len && strcmp(ev->name, w->walname) == 0) {
                relevant = 1;
                w->wal_wd = -1; /* a new file: watch its inode */
            } else if (ev->len && strcmp(ev->name, w->dbname) == 0) {
                relevant = 1;
            }
            p += sizeof(*ev) + ev->len;
        }
    }
    return relevant;
}

static void wake(engine_db *d)
{
    uint64_t one = 1;
    /* A full counter (EAGAIN) means the thread is woken anyway. */
    if (d->wake_fd >= 0 && write(d->wake_fd, &one, sizeof(one)) < 0)
        return;
}

/* ---- the source thread ---- */

/*
 * Try to attach the source; a failure is logged when it differs from the
 * last one logged (a database that does not exist yet is one line, not one
 * per monitor-interval). Returns 1 when attached.
 */
static int try_attach(engine_db *d)
{
    int rc = ls_source_attach(d->src);
    STORE(d->tried, 1);
    if (rc == 0) {
        if (d->last_err[0])
            ls_log(d->ctx, LS_LOG_INFO, "database ready db=%s", d->src->path);
        d->last_err[0] = '\0';
        return 1;
    }
    const char *msg = ls_errmsg(d->ctx);
    if (strcmp(msg, d->last_err) != 0) {
        if (rc == LS_ENOENT)
            ls_log(d->ctx, LS_LOG_WARN, "database does not exist yet db=%s action=wait "
                   "(litesafe never creates it)", d->src->path);
        else
            ls_log(d->ctx, LS_LOG_ERROR, "cannot replicate db=%s error=\"%s\" action=retry "
                   "(every monitor-interval; logged again when the error changes)",
                   d->src->path, msg);
        ls_strlcpy(d->last_err, msg, sizeof(d->last_err));
    }
    ls_err_clear(d->ctx);
    return 0;
}

/* 1 when every replica of d holds `sp`; failed (may be NULL) lists those that do not. */
static int all_have(engine_db *d, const ls_spool_pos *sp, int skip_permanent)
{
    for (size_t i = 0; i < d->nrep; i++) {
        int last = 0;
        if (!ls_replica_has(d->reps[i], sp, &last, NULL, 0) &&
            !(skip_permanent && last && ls_permanent(last)))
            return 0;
    }
    return 1;
}

/*
 * Log every replica of d that does not hold `sp`; returns how many. With
 * `first`, the first one also becomes ctx's error message.
 */
static int report_missing(engine_db *d, ls_ctx *ctx, const ls_spool_pos *sp, const char *when,
                          int first)
{
    int n = 0;
    char want[LS_LAYOUT_POS_MAX], have[LS_LAYOUT_POS_MAX], msg[512];
    ls_layout_pos_str(want, sizeof(want), sp->gen, sp->index, sp->size);
    for (size_t i = 0; i < d->nrep; i++) {
        int last = 0;
        if (ls_replica_has(d->reps[i], sp, &last, msg, sizeof(msg)))
            continue;
        ls_replica_shipped(d->reps[i], have, sizeof(have));
        ls_log(ctx, LS_LOG_ERROR, "not flushed %s db=%s replica=%s target=\"%s\" has=%s "
               "needs=%s last_error=\"%s\"", when, d->src->path, d->reps[i]->name,
               d->reps[i]->st->desc, have, want, last ? msg : "");
        if (first && !n)
            ls_err(ctx, LS_EIO, "replica %s of %s holds %s, not %s (%s)", d->reps[i]->name,
                   d->src->path, have, want, last ? msg : "not flushed in time");
        n++;
    }
    return n;
}

/* Forget the noted ends (see LAG): the database was detached. */
static void growth_forget(engine_db *d)
{
    pthread_mutex_lock(&d->mu);
    d->ngrowth = 0;
    pthread_mutex_unlock(&d->mu);
}

/*
 * The database path names another file: finish the old one (copy its last
 * commits, wait for the replicas to hold them, up to shutdown-timeout),
 * then detach; the next attach starts a new generation.
 */
static void on_replaced(engine_db *d)
{
    ls_spool_pos sp;
    int grew = 0;
    if (ls_source_sync(d->src, &grew) != 0)
        ls_err_clear(d->ctx);
    ls_source_pos(d->src, &sp);
    ls_log(d->ctx, LS_LOG_INFO, "database replaced db=%s generation=%s action=\"ship its last "
           "commits, then start a new generation\"", d->src->path, sp.gen);
    uint64_t deadline = ls_now_ms() + (uint64_t)LOAD(d->e->shutdown_ms);
    while (!all_have(d, &sp, 1) && ls_now_ms() < deadline && !LOAD(d->e->quit) &&
           !LOAD(d->want_target))
        usleep(20000);
    if (d->want_target)
        return; /* stopping: the engine waits for this position itself */
    report_missing(d, d->ctx, &sp, "before the new generation", 0);
    ls_source_detach(d->src);
    growth_forget(d); /* what the old file did not ship never will be (see LAG) */
}

/* ---- sync barriers and lag (the source thread's side) ---- */

static uint64_t barrier_requested(engine_db *d)
{
    pthread_mutex_lock(&d->mu);
    uint64_t req = d->barrier_req;
    pthread_mutex_unlock(&d->mu);
    return req;
}

/* Barriers up to `req` are served: `sp` (NULL: not attached) covers their commits. */
static void barrier_serve(engine_db *d, uint64_t req, const ls_spool_pos *sp)
{
    pthread_mutex_lock(&d->mu);
    if (req > d->barrier_done) {
        d->barrier_done = req;
        d->barrier_attached = sp != NULL;
        if (sp)
            d->barrier_pos = *sp;
        pthread_cond_broadcast(&d->cv);
    }
    pthread_mutex_unlock(&d->mu);
}

/* Note the spool's end after a sync for the lag (see LAG): a new end if it grew. */
static void growth_note(engine_db *d, const ls_spool_pos *sp, int grew)
{
    pthread_mutex_lock(&d->mu);
    /* A new generation: the old one's ends can never be shipped now (its
     * snapshot supersedes them), so they must not count as lag. */
    if (d->ngrowth) {
        const growth_mark *last = &d->growth[(d->growth_head + d->ngrowth - 1) % GROWTH_RING];
        if (strcmp(last->pos.gen, sp->gen) != 0)
            d->ngrowth = 0;
    }
    if (!grew) {
        pthread_mutex_unlock(&d->mu);
        return;
    }
    size_t at = (d->growth_head + d->ngrowth) % GROWTH_RING;
    if (d->ngrowth == GROWTH_RING)
        d->growth_head = (d->growth_head + 1) % GROWTH_RING;
    else
        d->ngrowth++;
    d->growth[at].pos = *sp;
    d->growth[at].unix_ms = ls_unix_now_ms();
    pthread_mutex_unlock(&d->mu);
}

/* One sync of the source thread: copy what is committed, note it, serve barriers. */
static void source_sync(engine_db *d)
{
    ls_source *s = d->src;
    uint64_t req = barrier_requested(d); /* read first: the sync covers its commits */
    int grew = 0;
    int rc = ls_source_sync(s, &grew);
    if (rc) {
        /* A SPOOL THAT CANNOT BE WRITTEN: logged once per distinct error. */
        const char *msg = ls_errmsg(d->ctx);
        int same = strcmp(msg, d->sync_err) == 0;
        ls_log(d->ctx, same ? LS_LOG_DEBUG : LS_LOG_ERROR,
               "sync failed db=%s spool=%s error=\"%s\" action=retry%s", s->path, s->spool.dir,
               msg, same ? "" : rc == LS_ENOSPC || rc == LS_EIO
                                ? " (the spool's disk: the application goes on and its WAL "
                                  "keeps the commits until space returns; logged again when "
                                  "the error changes)"
                                : " (logged again when the error changes)");
        ls_strlcpy(d->sync_err, msg, sizeof(d->sync_err));
        ls_err_clear(d->ctx);
        usleep(100000);
        return;
    }
    if (d->sync_err[0]) {
        ls_log(d->ctx, LS_LOG_INFO, "sync recovered db=%s spool=%s", s->path, s->spool.dir);
        d->sync_err[0] = '\0';
    }
    ls_engine_trim_spool(d->ctx, s, d->reps, d->nrep, d->cfg->max_spool_size);
    ls_spool_pos sp;
    ls_source_pos(s, &sp);
    growth_note(d, &sp, grew);
    barrier_serve(d, req, &sp);
}

static void *db_main(void *arg)
{
    engine_db *d = arg;
    ls_source *s = d->src;
    wal_watch w;
    watch_open(&w, s->path, d->wake_fd);
    if (w.fd < 0)
        ls_log(d->ctx, LS_LOG_WARN, "inotify unavailable db=%s, polling every %lldms", s->path,
               (long long)d->cfg->monitor_interval_ms);
    int64_t poll_ms = d->cfg->monitor_interval_ms > 0 ? d->cfg->monitor_interval_ms : 1000;
    uint64_t last_sync = 0;
    int relevant = 1, rechecks = 0;

    while (!LOAD(d->e->quit)) {
        int stopping = __atomic_load_n(&d->want_target, __ATOMIC_ACQUIRE);
        if (!s->opened && !stopping && !try_attach(d)) {
            barrier_serve(d, barrier_requested(d), NULL);
            relevant = watch_wait(&w, (int)poll_ms);
            continue;
        }
        if (s->opened && !stopping && ls_source_replaced(s)) {
            on_replaced(d);
            continue;
        }
        if (relevant || (stopping && !d->have_target)) {
            uint64_t now = ls_now_ms();
            if (now - last_sync < COALESCE_MS)
                usleep((useconds_t)((COALESCE_MS - (now - last_sync)) * 1000));
            watch_arm(&w);
            source_sync(d);
            last_sync = ls_now_ms();
            if (stopping && !d->have_target) {
                /* Everything committed before the stop request is in the spool. */
                if (s->opened)
                    ls_source_pos(s, &d->target);
                else
                    memset(&d->target, 0, sizeof(d->target));
                __atomic_store_n(&d->have_target, 1, __ATOMIC_RELEASE);
            }
        }
        /* Frames SQLite has not published yet are normally published within
         * microseconds: look again soon, but not forever (a writer that died
         * before publishing leaves them until the next writer overwrites them). */
        rechecks = s->pending ? rechecks + 1 : 0;
        int wait = s->pending && rechecks <= PENDING_RECHECKS ? PENDING_RECHECK_MS
                                                              : (int)poll_ms;
        relevant = watch_wait(&w, wait);
    }
    if (w.fd >= 0)
        close(w.fd);
    return NULL;
}

static void engine_db_close(engine_db *d)
{
    for (size_t i = 0; i < d->nrep; i++)
        ls_replica_free(d->reps[i]);
    free(d->reps);
    ls_source_close(d->src);
    if (d->wake_fd >= 0)
        close(d->wake_fd);
    ls_ctx_free(d->ctx);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
}

/*
 * Everything that can be checked without touching a database or a server:
 * an error here is a configuration error. Databases are attached, and
 * servers contacted, by the threads ls_engine_run starts.
 */
int ls_engine_new(ls_ctx *ctx, const ls_config *cfg, ls_engine **out)
{
    ls_engine *e = calloc(1, sizeof(*e));
    int rc = 0;
    *out = NULL;
    if (!e || !(e->dbs = calloc(cfg->n_dbs ? cfg->n_dbs : 1, sizeof(*e->dbs)))) {
        free(e);
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    }
    e->ctx = ctx;
    e->shutdown_ms = DEFAULT_SHUTDOWN_MS;
    for (size_t i = 0; i < cfg->n_dbs; i++) {
        const ls_db_cfg *dc = &cfg->dbs[i];
        engine_db *d = &e->dbs[e->ndb++];
        d->cfg = dc;
        d->e = e;
        pthread_mutex_init(&d->mu, NULL);
        pthread_cond_init(&d->cv, NULL);
        d->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if ((rc = ls_ctx_new(&d->ctx)) != 0) {
            rc = ls_err(ctx, LS_ENOMEM, "out of memory");
            goto fail;
        }
        ls_ctx_set_log(d->ctx, ctx->log_fn, ctx->log_ud, ctx->log_level);
        ls_source_opts so = {.spool_dir = dc->meta_path,
                             .min_ckpt_pages = dc->min_checkpoint_page_count,
                             .max_ckpt_pages = dc->max_checkpoint_page_count,
                             .ckpt_interval_ms = dc->checkpoint_interval_ms,
                             .busy_ms = (int)dc->busy_timeout_ms,
                             .no_guard = dc->checkpoint_guard == 0};
        /* A checkpoint cycle starts a WAL index, and each index costs every replica
         * at least one upload: no more indexes than a paced replica uploads. */
        for (size_t j = 0; j < dc->n_replicas; j++)
            if (dc->replicas[j].sync_interval_ms > so.ckpt_gap_ms)
                so.ckpt_gap_ms = dc->replicas[j].sync_interval_ms;
        if ((rc = ls_source_new(d->ctx, dc->path, &so, &d->src)) != 0) {
            rc = ls_err(ctx, rc, "%s", ls_errmsg(d->ctx));
            goto fail;
        }
        d->reps = calloc(dc->n_replicas ? dc->n_replicas : 1, sizeof(*d->reps));
        if (!d->reps) {
            rc = ls_err(ctx, LS_ENOMEM, "out of memory");
            goto fail;
        }
        for (size_t j = 0; j < dc->n_replicas; j++) {
            const ls_replica_cfg *rcfg = &dc->replicas[j];
            ls_storage *st = NULL;
            if (rcfg->storage) {
                /* An embedder's backend: ours from here on, retried (and encrypted) like ours. */
                ls_storage *own = rcfg->storage;
                ((ls_replica_cfg *)rcfg)->storage = NULL;
                if ((rc = ls_storage_retry_open(ctx, own, STORAGE_ATTEMPTS, &st)) != 0 ||
                    (rc = ls_replica_storage_age(ctx, rcfg, &st)) != 0)
                    goto fail;
            } else if ((rc = ls_replica_storage_open(ctx, rcfg, &st)) != 0) {
                goto fail;
            }
            ls_replica_opts ro = {.name = rcfg->name,
                                  .sync_interval_ms = rcfg->sync_interval_ms,
                                  .snapshot_interval_ms = rcfg->snapshot_interval_ms,
                                  .retention_ms = rcfg->retention_ms,
                                  .retention_check_ms = rcfg->retention_check_interval_ms,
                                  .validation_interval_ms = rcfg->validation_interval_ms,
                                  .request_price = rcfg->price_per_1k,
                                  .compact_after_ms = rcfg->compact_after_ms,
                                  .compact_interval_ms = rcfg->compact_interval_ms,
                                  .snapshot_wal_ratio = rcfg->wal_ratio};
            if ((rc = ls_replica_new(ctx, d->src, st, &ro, &d->reps[d->nrep])) != 0)
                goto fail;
            d->nrep++;
        }
    }
    *out = e;
    return 0;
fail:
    ls_engine_free(e);
    return rc;
}

void ls_engine_set_shutdown_timeout(ls_engine *e, int64_t ms)
{
    STORE(e->shutdown_ms, ms < 0 ? 0 : ms);
}

int ls_engine_wait_tried(ls_engine *e, int64_t ms)
{
    uint64_t deadline = ls_now_ms() + (uint64_t)ms;
    for (;;) {
        size_t n = 0;
        for (size_t i = 0; i < e->ndb; i++)
            n += LOAD(e->dbs[i].tried) != 0;
        if (n == e->ndb)
            return 0;
        volatile sig_atomic_t *stop = LOAD(e->stop);
        if (ls_now_ms() > deadline || LOAD(e->quit) || (stop && LOAD(*stop)))
            return -1;
        usleep(5000);
    }
}

/* Steps 1-3 of STOPPING: returns when every replica holds its target, or not. */
static void drain(ls_engine *e)
{
    uint64_t deadline = 0;
    for (size_t i = 0; i < e->ndb; i++) {
        engine_db *d = &e->dbs[i];
        __atomic_store_n(&d->want_target, 1, __ATOMIC_RELEASE);
        if (!d->started)
            d->have_target = 1;
        wake(d);
    }
    for (;;) {
        int all = 1;
        for (size_t i = 0; i < e->ndb; i++) {
            engine_db *d = &e->dbs[i];
            if (!__atomic_load_n(&d->have_target, __ATOMIC_ACQUIRE)) {
                all = 0;
                continue;
            }
            if (!deadline)
                deadline = ls_now_ms() + (uint64_t)LOAD(e->shutdown_ms);
            ls_source_flush_request(d->src);
            if (!all_have(d, &d->target, 1))
                all = 0;
        }
        if (all || LOAD(*e->stop) >= 2)
            return;
        if (deadline && ls_now_ms() >= deadline)
            return;
        usleep(20000);
    }
}

int ls_engine_run(ls_engine *e, volatile sig_atomic_t *stop)
{
    int rc = 0;
    STORE(e->stop, stop);
    for (size_t i = 0; i < e->ndb; i++) {
        engine_db *d = &e->dbs[i];
        for (size_t j = 0; j < d->nrep; j++)
            if ((rc = ls_replica_start(d->reps[j])) != 0) {
                rc = ls_err(e->ctx, rc, "%s", ls_errmsg(d->reps[j]->ctx));
                goto shutdown;
            }
        if (pthread_create(&d->th, NULL, db_main, d) != 0) {
            rc = ls_err(e->ctx, LS_ERROR, "cannot start a thread");
            goto shutdown;
        }
        d->started = 1;
    }
    STORE(e->running, 1);
    while (!LOAD(*stop))
        usleep(20000);
    drain(e);

shutdown:
    STORE(e->running, 0);
    STORE(e->quit, 1);
    for (size_t i = 0; i < e->ndb; i++) { /* release barrier waiters */
        pthread_mutex_lock(&e->dbs[i].mu);
        pthread_cond_broadcast(&e->dbs[i].cv);
        pthread_mutex_unlock(&e->dbs[i].mu);
    }
    for (size_t i = 0; i < e->ndb; i++) {
        engine_db *d = &e->dbs[i];
        wake(d);
        if (d->started)
            pthread_join(d->th, NULL);
        d->started = 0;
        /*
         * A stop at once (a second request before the source thread reported
         * its target) leaves no target: the spool's end is then what the
         * replicas must hold, so that the result names those that do not
         * instead of 0. The source thread is joined: its position is ours to read.
         */
        if (!__atomic_load_n(&d->have_target, __ATOMIC_ACQUIRE) && d->src && d->src->opened) {
            ls_source_pos(d->src, &d->target);
            __atomic_store_n(&d->have_target, 1, __ATOMIC_RELEASE);
        }
        ls_source_stop(d->src);
        /* Cut short a retry wait or a request still running. */
        for (size_t j = 0; j < d->nrep; j++)
            ls_ctx_cancel(d->reps[j]->ctx);
    }
    /* Step 4: what did not make it, named. */
    int missing = 0;
    for (size_t i = 0; i < e->ndb; i++) {
        engine_db *d = &e->dbs[i];
        for (size_t j = 0; j < d->nrep; j++) {
            ls_replica *r = d->reps[j];
            if (r->started)
                pthread_join(r->th, NULL);
            r->started = 0;
        }
        if (d->have_target)
            missing += report_missing(d, e->ctx, &d->target, "at shutdown", !rc && !missing);
    }
    if (!rc && missing) {
        char first[1024];
        int64_t shutdown_s = LOAD(e->shutdown_ms) / 1000; /* set by ls_replicator_stop's thread */
        ls_strlcpy(first, ls_errmsg(e->ctx), sizeof(first));
        if (missing > 1)
            rc = ls_err(e->ctx, LS_EIO, "%s; and %d more replica(s) not flushed "
                        "(shutdown-timeout %llds; see the log)", first, missing - 1,
                        (long long)shutdown_s);
        else
            rc = ls_err(e->ctx, LS_EIO, "%s (shutdown-timeout %llds)", first,
                        (long long)shutdown_s);
    }
    return rc;
}

/* ---- for the public replicator (replicator.c) ---- */

void ls_engine_notify(ls_engine *e, const char *db)
{
    for (size_t i = 0; i < e->ndb; i++)
        if (!db || strcmp(db, e->dbs[i].cfg->path) == 0)
            wake(&e->dbs[i]);
}

/* Wait until the source thread served barrier `req`: 0, or LS_EBUSY/LS_ECANCEL on ctx. */
static int barrier_wait(engine_db *d, ls_ctx *ctx, uint64_t req, uint64_t deadline,
                        ls_spool_pos *sp)
{
    int attached = 0;
    pthread_mutex_lock(&d->mu);
    while (d->barrier_done < req && !LOAD(d->e->quit) && ls_now_ms() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L; /* wake the thread again now and then */
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&d->cv, &d->mu, &ts);
        if (d->barrier_done < req)
            wake(d);
    }
    int served = d->barrier_done >= req;
    attached = d->barrier_attached;
    *sp = d->barrier_pos;
    pthread_mutex_unlock(&d->mu);
    if (!served)
        return LOAD(d->e->quit) ? ls_err(ctx, LS_ECANCEL, "replication stopped")
                          : ls_err(ctx, LS_EBUSY, "sync: db=%s was not read in time "
                                   "(the database side is stuck)", d->cfg->path);
    if (!attached)
        return ls_err(ctx, LS_ENOENT, "sync: %s is not replicated (%s)", d->cfg->path,
                      d->last_err[0] ? d->last_err : "not attached yet");
    return 0;
}

/*
 * The durable barrier. Each database's source thread is asked to sync and
 * report the spool's end; everything committed before the call is then at
 * or before that position. Then (unless LS_SYNC_SPOOL) the replicas are
 * waited for until each holds it, restorably: hurried (their sync-interval
 * wait ends) with LS_SYNC_HURRY, or at their own cadence without it.
 */
int ls_engine_sync(ls_engine *e, ls_ctx *ctx, const char *db, unsigned flags,
                   int64_t timeout_ms)
{
    uint64_t deadline = ls_now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
    size_t matched = 0;
    if (!ctx)
        ctx = e->ctx;
    /* Called right after the start (ls_replicator_start returns before the
     * engine's thread started the others): wait for them, within the timeout. */
    while (!LOAD(e->running) && !LOAD(e->quit) && ls_now_ms() < deadline)
        usleep(1000);
    if (!LOAD(e->running))
        return ls_err(ctx, LS_ECANCEL, "replication is not running");
    for (size_t i = 0; i < e->ndb; i++) {
        engine_db *d = &e->dbs[i];
        if (db && strcmp(db, d->cfg->path) != 0)
            continue;
        matched++;
        pthread_mutex_lock(&d->mu);
        uint64_t req = ++d->barrier_req;
        pthread_mutex_unlock(&d->mu);
        wake(d);
        ls_spool_pos sp;
        int rc = barrier_wait(d, ctx, req, deadline, &sp);
        if (rc)
            return rc;
        if (flags & LS_SYNC_SPOOL)
            continue;
        for (unsigned spin = 0; !all_have(d, &sp, 0); spin++) {
            if (LOAD(e->quit))
                return ls_err(ctx, LS_ECANCEL, "replication stopped");
            if (ls_now_ms() >= deadline) {
                report_missing(d, ctx, &sp, "by the sync deadline", 1);
                return ls_err_recode(ctx, LS_EBUSY);
            }
            if (flags & LS_SYNC_HURRY)
                ls_source_hurry(d->src);
            usleep(spin < 100 ? 500 : 10000);
        }
    }
    if (db && !matched)
        return ls_err(ctx, LS_ENOENT, "sync: %s is not a database of this replicator", db);
    return 0;
}

/* Age of the oldest noted spool end replica r does not hold (see LAG). */
static int64_t replica_lag(engine_db *d, ls_replica *r, int64_t now)
{
    int64_t lag = 0;
    pthread_mutex_lock(&d->mu);
    for (size_t k = 0; k < d->ngrowth; k++) {
        const growth_mark *g = &d->growth[(d->growth_head + k) % GROWTH_RING];
        if (!ls_replica_has(r, &g->pos, NULL, NULL, 0)) {
            lag = now - g->unix_ms;
            break;
        }
    }
    pthread_mutex_unlock(&d->mu);
    return lag < 0 ? 0 : lag;
}

/* Size of a file, 0 when it is missing. */
static uint64_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

/* Bytes under the spool's generations/ directory (every generation kept). */
static uint64_t spool_bytes(const char *dir)
{
    char path[PATH_MAX + 64];
    uint64_t total = 0;
    snprintf(path, sizeof(path), "%s/generations", dir);
    DIR *gd = opendir(path);
    struct dirent *g;
    while (gd && (g = readdir(gd)) != NULL) {
        if (g->d_name[0] == '.')
            continue;
        char wal[PATH_MAX + 128];
        snprintf(wal, sizeof(wal), "%s/generations/%s/wal", dir, g->d_name);
        DIR *wd = opendir(wal);
        struct dirent *f;
        while (wd && (f = readdir(wd)) != NULL) {
            char fp[PATH_MAX + 256];
            if (f->d_name[0] == '.')
                continue;
            snprintf(fp, sizeof(fp), "%s/%s", wal, f->d_name);
            total += file_size(fp);
        }
        if (wd)
            closedir(wd);
    }
    if (gd)
        closedir(gd);
    return total;
}

/* The spool directory of d, as the source thread opens it (no shared state read). */
static void spool_dir_of(engine_db *d, char *out, size_t n)
{
    if (d->cfg->meta_path)
        ls_strlcpy(out, d->cfg->meta_path, n);
    else
        ls_spool_default_dir(d->cfg->path, out, n);
}

/* The database side of a status entry (the same for each replica of d). */
static void status_local(engine_db *d, ls_replica_status *st, ls_spool_pos *sp)
{
    char dir[PATH_MAX];
    spool_dir_of(d, dir, sizeof(dir));
    st->db_size = file_size(d->cfg->path);
    st->wal_size = file_size(d->src->wal_path);
    ls_source_pos(d->src, sp);
    ls_strlcpy(st->local_generation, sp->gen, sizeof(st->local_generation));
    st->local_index = sp->index;
    st->local_offset = sp->size;
    st->spool_size = spool_bytes(dir);
    st->wal_bytes = __atomic_load_n(&d->src->bytes_copied, __ATOMIC_RELAXED);
}

/* Spool bytes from (index, offset) of the generation `sp` names to its end. */
static uint64_t bytes_behind(engine_db *d, const ls_spool_pos *sp, uint32_t index,
                             uint64_t offset)
{
    char dir[PATH_MAX];
    uint64_t total = 0;
    spool_dir_of(d, dir, sizeof(dir));
    for (uint32_t i = index; i <= sp->index; i++) {
        char path[PATH_MAX + 64];
        uint64_t size = sp->size;
        if (i < sp->index) {
            ls_spool_file(dir, sp->gen, i, path, sizeof(path));
            size = file_size(path);
        }
        uint64_t from = i == index ? offset : 0;
        total += size > from ? size - from : 0;
        if (i == UINT32_MAX)
            break;
    }
    return total;
}

/* The replica's side of a status entry; msg receives its last error. */
static void status_replica(engine_db *d, ls_replica *r, const ls_spool_pos *sp, int64_t now,
                           ls_replica_status *st, char *msg, size_t msgsz)
{
    st->database = d->cfg->path;
    st->name = r->name;
    st->type = r->st->type;
    st->lag_ms = replica_lag(d, r, now);
    pthread_mutex_lock(&r->mu);
    ls_strlcpy(st->generation, r->shipped_gen, sizeof(st->generation));
    st->index = r->shipped_index;
    st->offset = r->shipped_offset;
    st->restorable = r->shipped_snapshot;
    st->segments = r->segments;
    st->snapshots = r->snapshots;
    st->bytes = r->bytes;
    st->last_error = r->last_rc;
    st->last_success_ms = r->last_ok_ms;
    st->last_error_ms = r->last_error_ms;
    st->spool_drops = r->spool_drops;
    ls_strlcpy(msg, r->last_err, msgsz);
    pthread_mutex_unlock(&r->mu);
    st->last_error_message = msg;
    if (!sp->gen[0])
        st->lag_bytes = 0;
    else if (strcmp(st->generation, sp->gen) != 0 || st->index > sp->index)
        st->lag_bytes = bytes_behind(d, sp, 0, 0);
    else
        st->lag_bytes = bytes_behind(d, sp, st->index, st->offset);
    /* Written by the replica's thread alone; a stale read only shifts a due time. */
    int64_t snap = __atomic_load_n(&r->last_snapshot_ms, __ATOMIC_RELAXED);
    int64_t ret = __atomic_load_n(&r->last_retention_ms, __ATOMIC_RELAXED);
    if (r->o.snapshot_interval_ms > 0 && snap)
        st->next_snapshot_ms = snap + r->o.snapshot_interval_ms;
    if (r->o.retention_ms > 0 && ret)
        st->next_retention_ms = ret + r->o.retention_check_ms;
    ls_storage_counts c;
    ls_storage_counts_get(r->st, &c);
    st->puts = c.puts;
    st->gets = c.gets;
    st->lists = c.lists;
    st->stats = c.stats;
    st->deletes = c.deletes;
    st->errors_net = c.errors_net;
    st->errors_auth = c.errors_auth;
    st->errors_other = c.errors_other;
    if (st->last_error == 0 && c.try_rc != 0) {
        /* The step is still retrying a request that failed: failing already. */
        st->last_error = c.try_rc;
        st->last_error_ms = c.try_error_ms;
        ls_strlcpy(msg, c.try_error, msgsz);
    }
    st->requests_per_sec = (double)c.last_minute / 60.0;
    st->monthly_request_cost = st->requests_per_sec * 30 * 86400 / 1000 * r->o.request_price;
    dev_t dev;
    ino_t ino;
    st->attached = ls_source_identity(d->src, &dev, &ino) == 0;
}

int ls_engine_status(ls_engine *e, ls_replica_status **out, size_t *n)
{
    size_t total = 0, k = 0;
    for (size_t i = 0; i < e->ndb; i++)
        total += e->dbs[i].nrep;
    /* One block: the entries, then their messages (ls_replica_status_free is free). */
    enum { MSG = sizeof(((ls_replica *)0)->last_err) };
    ls_replica_status *v = calloc(total ? total : 1, sizeof(*v) + MSG);
    char *msgs = (char *)(v + (total ? total : 1));
    *out = NULL;
    *n = 0;
    if (!v)
        return ls_err(e->ctx, LS_ENOMEM, "out of memory");
    int64_t now = ls_unix_now_ms();
    for (size_t i = 0; i < e->ndb; i++) {
        engine_db *d = &e->dbs[i];
        ls_replica_status local = {0};
        ls_spool_pos sp;
        status_local(d, &local, &sp);
        for (size_t j = 0; j < d->nrep; j++, k++) {
            v[k] = local;
            status_replica(d, d->reps[j], &sp, now, &v[k], msgs + k * MSG, MSG);
        }
    }
    *out = v;
    *n = total;
    return 0;
}

void ls_engine_free(ls_engine *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->ndb; i++)
        engine_db_close(&e->dbs[i]);
    free(e->dbs);
    free(e);
}
