/*
 * replicate.c - the replication daemon (see replicate.h).
 *
 * Each database has a source thread that sleeps in poll() on an inotify
 * descriptor watching the database's directory; a write to the -wal wakes it
 * at once (commit-to-spool latency is a few hundred microseconds), and
 * monitor-interval bounds the wait when inotify is unavailable or misses
 * something. Bursts are coalesced: a sync runs at most every COALESCE_MS.
 * After each sync the spool is trimmed to what every replica still needs.
 */
#define _GNU_SOURCE
#include "replicate.h"

#include "fsutil.h"
#include "retry.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define COALESCE_MS 10
#define PENDING_RECHECK_MS 2
#define PENDING_RECHECKS 50

typedef struct engine_db {
    ls_ctx *ctx;                /* the source thread's context */
    const ls_db_cfg *cfg;       /* its configuration */
    ls_source *src;
    ls_replica **reps;
    size_t nrep;
    pthread_t th;
    int started;
    int failed;                 /* the source thread stopped on an error */
    volatile sig_atomic_t *stop;
} engine_db;

struct ls_engine {
    ls_ctx *ctx;
    engine_db *dbs;
    size_t ndb;
};

/* Tries per storage call before a failure reaches the caller (retry.c). */
#define STORAGE_ATTEMPTS 8

int ls_replica_storage_open(ls_ctx *ctx, const ls_replica_cfg *rc, ls_storage **out)
{
    ls_storage_opts so = {0};
    so.name = rc->name;
    so.url = rc->type && rc->path ? NULL : rc->url; /* the config already parsed it */
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
    return r;
}

/* Trim the spool to what the slowest replica still needs. */
static void gc_spool(engine_db *d)
{
    ls_spool_pos sp;
    ls_source_pos(d->src, &sp);
    uint32_t keep = sp.index;
    for (size_t i = 0; i < d->nrep; i++) {
        uint32_t need = ls_replica_needs_from(d->reps[i], sp.gen);
        if (need < keep)
            keep = need;
    }
    if (keep > 0)
        ls_source_gc(d->src, keep);
}

/*
 * Waking up on WAL writes. A watch on the WAL file is armed one-shot before
 * each sync, so a burst of writes costs the application's write() calls one
 * event at most per sync instead of one per write (a permanent IN_MODIFY watch
 * costs a busy writer about a tenth of its throughput). A watch on the
 * directory catches the WAL being created, replaced or deleted. Arming before
 * syncing means a write that lands after the sync's read still wakes us.
 */
typedef struct wal_watch {
    int fd;                     /* inotify descriptor, -1: poll only */
    int wal_wd;                 /* one-shot watch on the WAL file, -1 when not armed */
    char walpath[PATH_MAX + 8]; /* the -wal path */
    char walname[PATH_MAX + 8]; /* its base name */
} wal_watch;

static void watch_open(wal_watch *w, const char *db)
{
    char dir[PATH_MAX], base[PATH_MAX];
    ls_path_split(db, dir, sizeof(dir), base, sizeof(base));
    snprintf(w->walpath, sizeof(w->walpath), "%s-wal", db);
    snprintf(w->walname, sizeof(w->walname), "%s-wal", base);
    w->wal_wd = -1;
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

/* Wait up to ms; returns 1 when the WAL may have changed. */
static int watch_wait(wal_watch *w, int ms)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    struct pollfd pfd = {w->fd, POLLIN, 0};
    int n = poll(w->fd >= 0 ? &pfd : NULL, w->fd >= 0 ? 1 : 0, ms);
    if (n <= 0)
        return n == 0; /* the fallback poll always syncs */
    int relevant = 0;
    ssize_t len;
    while ((len = read(w->fd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + len;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            if (ev->wd == w->wal_wd) {
                relevant = 1;
                if (ev->mask & (IN_IGNORED | IN_MODIFY))
                    w->wal_wd = -1; /* one-shot: fired (or the file went away) */
            } else if (ev->len && strcmp(ev->name, w->walname) == 0) {
                relevant = 1;
                w->wal_wd = -1; /* a new file: watch its inode */
            }
            p += sizeof(*ev) + ev->len;
        }
    }
    return relevant;
}

static void *db_main(void *arg)
{
    engine_db *d = arg;
    wal_watch w;
    watch_open(&w, d->src->path);
    if (w.fd < 0)
        ls_log(d->ctx, LS_LOG_WARN, "inotify unavailable db=%s, polling every %lldms",
               d->src->path, (long long)d->cfg->monitor_interval_ms);
    int64_t poll_ms = d->cfg->monitor_interval_ms > 0 ? d->cfg->monitor_interval_ms : 1000;
    uint64_t last_sync = 0;
    int relevant = 1, rechecks = 0;

    while (!*d->stop) {
        if (relevant) {
            uint64_t now = ls_now_ms();
            if (now - last_sync < COALESCE_MS)
                usleep((useconds_t)((COALESCE_MS - (now - last_sync)) * 1000));
            watch_arm(&w);
            int grew = 0;
            int rc = ls_source_sync(d->src, &grew);
            last_sync = ls_now_ms();
            if (rc) {
                ls_log(d->ctx, LS_LOG_ERROR, "sync failed db=%s error=\"%s\"", d->src->path,
                       ls_errmsg(d->ctx));
                ls_err_clear(d->ctx);
                usleep(100000);
            } else {
                gc_spool(d);
            }
        }
        /* Frames SQLite has not published yet are normally published within
         * microseconds: look again soon, but not forever (a writer that died
         * before publishing leaves them until the next writer overwrites them). */
        rechecks = d->src->pending ? rechecks + 1 : 0;
        int wait = d->src->pending && rechecks <= PENDING_RECHECKS ? PENDING_RECHECK_MS
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
    ls_ctx_free(d->ctx);
}

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
    for (size_t i = 0; i < cfg->n_dbs; i++) {
        const ls_db_cfg *dc = &cfg->dbs[i];
        engine_db *d = &e->dbs[e->ndb++];
        d->cfg = dc;
        if ((rc = ls_ctx_new(&d->ctx)) != 0) {
            rc = ls_err(ctx, LS_ENOMEM, "out of memory");
            goto fail;
        }
        ls_ctx_set_log(d->ctx, ctx->log_fn, ctx->log_ud, ctx->log_level);
        ls_source_opts so = {.meta_dir = dc->meta_path,
                             .min_ckpt_pages = dc->min_checkpoint_page_count,
                             .max_ckpt_pages = dc->max_checkpoint_page_count,
                             .ckpt_interval_ms = dc->checkpoint_interval_ms,
                             .busy_ms = (int)dc->busy_timeout_ms};
        if ((rc = ls_source_open(d->ctx, dc->path, &so, &d->src)) != 0) {
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
            if (rcfg->n_age_identities || rcfg->n_age_recipients) {
                /* Refuse rather than write a replica the user believes encrypted. */
                rc = ls_err(ctx, LS_EUSAGE, "replica %s: age encryption is not supported yet",
                            rcfg->name);
                goto fail;
            }
            if ((rc = ls_replica_storage_open(ctx, rcfg, &st)) != 0)
                goto fail;
            ls_replica_opts ro = {.name = rcfg->name,
                                  .sync_interval_ms = rcfg->sync_interval_ms,
                                  .snapshot_interval_ms = rcfg->snapshot_interval_ms,
                                  .retention_ms = rcfg->retention_ms,
                                  .retention_check_ms = rcfg->retention_check_interval_ms,
                                  .validation_interval_ms = rcfg->validation_interval_ms};
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

/*
 * Wait (at most CONTACT_WAIT_MS) for every replica's first listing. One that
 * was refused for good (credentials, a missing bucket: ls_permanent) stops
 * the start, so a misconfigured replica is an exit status and a message,
 * not a log line repeated forever. One that is only unreachable is not:
 * its worker keeps retrying, and the spool keeps what it has not shipped.
 */
#define CONTACT_WAIT_MS 15000

static int await_contact(ls_engine *e, volatile sig_atomic_t *stop)
{
    char msg[512];
    uint64_t deadline = ls_now_ms() + CONTACT_WAIT_MS;
    for (;;) {
        int pending = 0;
        for (size_t i = 0; i < e->ndb; i++) {
            for (size_t j = 0; j < e->dbs[i].nrep; j++) {
                ls_replica *r = e->dbs[i].reps[j];
                int c = ls_replica_contact(r, msg, sizeof(msg));
                if (c < 0 && ls_permanent(c)) {
                    r->unusable = 1;
                    return ls_err(e->ctx, c, "%s", msg);
                }
                pending += c == 0;
            }
        }
        if (!pending || *stop || ls_now_ms() > deadline)
            return 0;
        usleep(20000);
    }
}

int ls_engine_run(ls_engine *e, volatile sig_atomic_t *stop)
{
    int rc = 0;
    for (size_t i = 0; i < e->ndb; i++) {
        engine_db *d = &e->dbs[i];
        d->stop = stop;
        for (size_t j = 0; j < d->nrep; j++)
            if ((rc = ls_replica_start(d->reps[j])) != 0)
                goto shutdown;
        if (pthread_create(&d->th, NULL, db_main, d) != 0) {
            rc = ls_err(e->ctx, LS_ERROR, "cannot start a thread");
            goto shutdown;
        }
        d->started = 1;
    }
    if ((rc = await_contact(e, stop)) != 0)
        goto shutdown;
    while (!*stop)
        usleep(50000);

shutdown:
    *stop = 1;
    for (size_t i = 0; i < e->ndb; i++) {
        engine_db *d = &e->dbs[i];
        if (d->started)
            pthread_join(d->th, NULL);
        d->started = 0;
        /* Final sync of what is committed, then stop the workers and flush. */
        int grew = 0;
        if (ls_source_sync(d->src, &grew) != 0)
            ls_log(e->ctx, LS_LOG_ERROR, "final sync failed db=%s error=\"%s\"", d->src->path,
                   ls_errmsg(d->ctx));
        ls_source_stop(d->src);
        for (size_t j = 0; j < d->nrep; j++) {
            ls_replica *r = d->reps[j];
            if (r->started) {
                /* Cut short a retry wait or a request to a server that is
                 * away; the flush below runs uncancelled. */
                ls_ctx_cancel(r->ctx);
                pthread_join(r->th, NULL);
                r->started = 0;
                r->ctx->cancelled = 0;
            }
            if (!r->unusable && ls_replica_flush(r) != 0) {
                ls_log(e->ctx, LS_LOG_ERROR, "final replica sync failed db=%s replica=%s "
                       "error=\"%s\"", d->src->path, r->name, ls_errmsg(r->ctx));
                if (!rc)
                    rc = ls_err(e->ctx, LS_EIO, "replica %s: %s", r->name, ls_errmsg(r->ctx));
            }
        }
    }
    return rc;
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
