/*
 * daemon.c - the running `litesafe replicate` (see daemon.h): one
 * replicator per database of the configuration, the reload on SIGHUP, the
 * final stop, and what the control socket and the metrics listener ask of it.
 *
 * THE SET. d->dbs holds one entry per database: a replicator on a copy of
 * that database's settings (ls_replicator_open_config_db) and a context of
 * its own (its errors; stops run in parallel threads). Entries only change
 * in the main thread (start, reload, stop). Readers (status, sync) take
 * d->lock for reading; a reload takes it for writing only to swap the
 * array, never while a database flushes. A sync holds a reference on the
 * entries it waits on instead of the lock (it may wait long); an entry is
 * freed once it is out of the set, stopped, and has no reference left.
 *
 * RELOAD (cli_daemon_reload, on SIGHUP, in the main thread):
 *   1. Reopen the log file (logrotate renamed it: new lines go to the new
 *      file). With a configuration from URLs, that is all.
 *   2. Read the file again, as at start. A missing or wrong file rejects
 *      the reload: logged, and everything keeps running as it was.
 *   3. Sort the new databases against the running ones by path: unchanged
 *      (ls_config_db_equal) are kept as they run (threads, spool,
 *      positions); changed are restarted; added are started; removed are
 *      stopped. Replicators for the changed and added ones are opened
 *      (checked) now: a failure rejects the reload as in 2.
 *   4. Apply logging: (level, type, file; a file that cannot be opened
 *      rejects the reload as in 2). Swap the set under the write lock:
 *      kept, added (started at once) and the changed ones' old replicators.
 *   5. Outside the lock, stop the removed and the changed ones' old
 *      replicators in parallel as at the final stop (everything committed
 *      shipped, within one shutdown-timeout; a second SIGINT/SIGTERM cuts
 *      it short).
 *   6. Start the changed ones' new replicators (they resume from their
 *      spool's stored positions, in the same generation) and swap them in.
 * exec and addr are read at start only: a change is logged as needing a
 * restart. shutdown-timeout applies from the next stop on.
 */
#include "daemon.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* One database being replicated. */
typedef struct daemon_db {
    char *path;                 /* the database, as configured */
    ls_ctx *ctx;                /* its replicator's: errors; the log goes to cli_log */
    ls_replicator *r;           /* replicates this database alone */
    int users;                  /* syncs waiting on it (atomic) */
} daemon_db;

struct cli_daemon {
    cli_env *env;
    ls_config *cfg;             /* the configuration running (owned) */
    char *config_path;          /* NULL: the configuration came from URLs */
    int no_expand_env;          /* how a reload reads the file */
    char *log_level;            /* -log-level, which wins over logging.level; NULL: none */
    daemon_db **dbs;            /* the set, one entry per database of cfg */
    size_t ndb;
    int64_t started_ms;
    char err[2048];             /* the final stop's failure */
    pthread_rwlock_t lock;      /* readers: status, sync; writer: a change of the set */
};

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------------- */
/* Entries                                                                 */

/* Free an entry out of the set: stop at once if running, after its last user. */
static void db_free(daemon_db *e)
{
    if (!e)
        return;
    while (__atomic_load_n(&e->users, __ATOMIC_ACQUIRE) > 0)
        usleep(5000);
    ls_replicator_close(e->r);
    ls_ctx_free(e->ctx);
    free(e->path);
    free(e);
}

/*
 * An entry for database i of cfg, its replicator opened (checked), not
 * started. NULL on failure, with the message in err.
 */
static daemon_db *db_open(const ls_config *cfg, size_t i, int *rc, char *err, size_t n)
{
    daemon_db *e = calloc(1, sizeof(*e));
    *rc = LS_ENOMEM;
    if (!e || !(e->path = strdup(ls_config_db_path(cfg, i))) || ls_ctx_new(&e->ctx) != 0) {
        snprintf(err, n, "out of memory");
        db_free(e);
        return NULL;
    }
    /* Every level: the sink filters (the level can change on reload). */
    ls_ctx_set_log(e->ctx, cli_log, NULL, LS_LOG_DEBUG);
    if ((*rc = ls_replicator_open_config_db(e->ctx, cfg, i, &e->r)) != 0) {
        snprintf(err, n, "%s", ls_errmsg(e->ctx));
        db_free(e);
        return NULL;
    }
    return e;
}

/*
 * Start an entry's replicator with SIGINT, SIGTERM and SIGHUP blocked, so
 * that its threads (which inherit the mask) never take them: the main
 * thread handles them, and no replication syscall is interrupted.
 */
static int db_start(daemon_db *e)
{
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int rc = ls_replicator_start(e->r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* The index of the entry for `path` in v[0..n), or -1. */
static long db_find(daemon_db *const *v, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] && strcmp(v[i]->path, path) == 0)
            return (long)i;
    return -1;
}

/* "replicating db=... replica=... type=..." for each replica of database i. */
static void log_replicas(cli_env *env, const ls_config *cfg, size_t i)
{
    for (size_t j = 0; j < ls_config_replica_count(cfg, i); j++)
        ls_ctx_log(env->ctx, LS_LOG_INFO, "replicating db=%s replica=%s type=%s",
                   ls_config_db_path(cfg, i), ls_config_replica_name(cfg, i, j),
                   ls_config_replica_type(cfg, i, j));
}

/* ---------------------------------------------------------------------- */
/* Stopping in parallel                                                    */

typedef struct stopper {
    ls_replicator *r;
    int64_t timeout_ms;
    pthread_t th;
    int threaded;               /* th runs the stop */
    volatile int done;
    int rc;
} stopper;

static void *stop_thread(void *p)
{
    stopper *s = p;
    s->rc = ls_replicator_stop(s->r, s->timeout_ms);
    __atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/*
 * Stop the replicators of v[0..n) at once, each in a thread of its own, so
 * that all of them flush within one timeout_ms; a second signal (cli_stop
 * >= 2) interrupts them all. rcs[i] is each stop's result (its message on
 * v[i]->ctx).
 */
static void stop_all(daemon_db *const *v, size_t n, int64_t timeout_ms, int *rcs)
{
    stopper *s = calloc(n ? n : 1, sizeof(*s));
    for (size_t i = 0; s && i < n; i++) {
        s[i].r = v[i]->r;
        s[i].timeout_ms = timeout_ms;
        s[i].threaded = pthread_create(&s[i].th, NULL, stop_thread, &s[i]) == 0;
    }
    for (int all = 0; s && !all;) {
        all = 1;
        for (size_t i = 0; i < n; i++) {
            if (cli_stop >= 2)
                ls_replicator_interrupt(v[i]->r);
            if (s[i].threaded && !__atomic_load_n(&s[i].done, __ATOMIC_ACQUIRE))
                all = 0;
        }
        if (!all)
            usleep(20000);
    }
    for (size_t i = 0; i < n; i++) {
        if (s && s[i].threaded) {
            pthread_join(s[i].th, NULL);
            rcs[i] = s[i].rc;
            continue;
        }
        if (cli_stop >= 2) /* no thread: one at a time, in this one */
            ls_replicator_interrupt(v[i]->r);
        rcs[i] = ls_replicator_stop(v[i]->r, timeout_ms);
    }
    free(s);
}

/* ---------------------------------------------------------------------- */
/* Start, stop                                                             */

int cli_daemon_start(cli_env *env, ls_config *cfg, const char *config_path, cli_daemon **out)
{
    cli_daemon *d = calloc(1, sizeof(*d));
    size_t n = ls_config_db_count(cfg);
    char err[1024];
    int rc = 0;
    *out = NULL;
    if (!d || (config_path && !(d->config_path = strdup(config_path))) ||
        !(d->dbs = calloc(n ? n : 1, sizeof(*d->dbs)))) {
        if (d)
            free(d->config_path);
        free(d);
        ls_config_free(cfg);
        return cli_fail(env, LS_ENOMEM, "out of memory");
    }
    d->env = env;
    d->cfg = cfg;
    d->started_ms = unix_ms();
    pthread_rwlock_init(&d->lock, NULL);
    for (size_t i = 0; i < n && !rc; i++) {
        if (!(d->dbs[i] = db_open(cfg, i, &rc, err, sizeof(err))))
            break;
        d->ndb++;
    }
    for (size_t i = 0; i < d->ndb && !rc; i++)
        if ((rc = db_start(d->dbs[i])) != 0)
            snprintf(err, sizeof(err), "%s", ls_errmsg(d->dbs[i]->ctx));
    if (rc) {
        rc = cli_fail(env, rc, "%s", err);
        cli_daemon_close(d);
        return rc;
    }
    for (size_t i = 0; i < n; i++)
        log_replicas(env, cfg, i);
    *out = d;
    return -1;
}

void cli_daemon_set_reload(cli_daemon *d, int no_expand_env, const char *log_level)
{
    d->no_expand_env = no_expand_env;
    free(d->log_level);
    d->log_level = log_level ? strdup(log_level) : NULL;
}

void cli_daemon_wait_started(cli_daemon *d, int64_t ms)
{
    int64_t end = unix_ms() + ms;
    for (size_t i = 0; i < d->ndb; i++) {
        int64_t left = end - unix_ms();
        ls_replicator_wait_started(d->dbs[i]->r, left > 0 ? left : 0);
    }
}

int cli_daemon_running(cli_daemon *d)
{
    for (size_t i = 0; i < d->ndb; i++)
        if (!ls_replicator_running(d->dbs[i]->r))
            return 0;
    return 1;
}

int cli_daemon_stop(cli_daemon *d)
{
    int *rcs = calloc(d->ndb ? d->ndb : 1, sizeof(int));
    int rc = 0;
    size_t failed = 0;
    if (!rcs) {
        snprintf(d->err, sizeof(d->err), "out of memory");
        return LS_ENOMEM;
    }
    stop_all(d->dbs, d->ndb, ls_config_shutdown_timeout_ms(d->cfg), rcs);
    for (size_t i = 0; i < d->ndb; i++) {
        if (!rcs[i])
            continue;
        if (!failed++) {
            rc = rcs[i];
            snprintf(d->err, sizeof(d->err), "%s", ls_errmsg(d->dbs[i]->ctx));
        }
    }
    if (failed > 1) {
        size_t len = strlen(d->err);
        snprintf(d->err + len, sizeof(d->err) - len,
                 "; and %zu more database(s) not flushed (see the log)", failed - 1);
    }
    free(rcs);
    return rc;
}

const char *cli_daemon_errmsg(const cli_daemon *d)
{
    return d->err;
}

void cli_daemon_close(cli_daemon *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->ndb; i++)
        db_free(d->dbs[i]);
    free(d->dbs);
    ls_config_free(d->cfg);
    pthread_rwlock_destroy(&d->lock);
    free(d->config_path);
    free(d->log_level);
    free(d);
}

/* ---------------------------------------------------------------------- */
/* Reload                                                                  */

/* What a reload does, built before anything changes (steps 2-3). */
typedef struct plan {
    ls_config *cfg;             /* the new configuration */
    daemon_db **set;            /* the new set, as cfg's databases; NULL: changed (see fresh) */
    daemon_db **fresh;          /* per new database: its new replicator (added, changed) */
    daemon_db **retire;         /* the old entries that stop (removed, changed) */
    size_t n, nretire;
    size_t kept, changed, added;
} plan;

static void plan_free(plan *p)
{
    for (size_t i = 0; p->fresh && i < p->n; i++)
        db_free(p->fresh[i]);
    free(p->set);
    free(p->fresh);
    free(p->retire);
    ls_config_free(p->cfg);
}

/* Log a rejected reload; returns rc. */
static int rejected(cli_daemon *d, int rc, const char *why)
{
    ls_ctx_log(d->env->ctx, LS_LOG_ERROR, "reload rejected config=%s error=\"%s\" "
               "action=\"the running configuration stays\"", d->config_path, why);
    return rc;
}

/* Steps 2 and 3: read the file, sort its databases, open the new replicators. */
static int plan_make(cli_daemon *d, plan *p, char *err, size_t n)
{
    ls_ctx *ctx = NULL;
    int rc;
    memset(p, 0, sizeof(*p));
    if (ls_ctx_new(&ctx) != 0)
        return snprintf(err, n, "out of memory"), LS_ENOMEM;
    rc = ls_config_open(ctx, d->config_path, d->no_expand_env, &p->cfg);
    snprintf(err, n, "%s", rc ? ls_errmsg(ctx) : "");
    ls_ctx_free(ctx);
    if (rc)
        return rc;
    p->n = ls_config_db_count(p->cfg);
    p->set = calloc(p->n, sizeof(*p->set));
    p->fresh = calloc(p->n, sizeof(*p->fresh));
    p->retire = calloc(d->ndb ? d->ndb : 1, sizeof(*p->retire));
    if (!p->set || !p->fresh || !p->retire)
        return snprintf(err, n, "out of memory"), LS_ENOMEM;
    for (size_t j = 0; j < p->n; j++) {
        long i = db_find(d->dbs, d->ndb, ls_config_db_path(p->cfg, j));
        if (i >= 0 && ls_config_db_equal(d->cfg, (size_t)i, p->cfg, j)) {
            p->set[j] = d->dbs[i];
            p->kept++;
            continue;
        }
        if (!(p->fresh[j] = db_open(p->cfg, j, &rc, err, n)))
            return rc;
        if (i >= 0) {
            p->set[j] = d->dbs[i]; /* the old one runs until its successor starts */
            p->retire[p->nretire++] = d->dbs[i];
            p->changed++;
        } else {
            p->set[j] = p->fresh[j];
            p->added++;
        }
    }
    for (size_t i = 0; i < d->ndb; i++)
        if (db_find(p->set, p->n, d->dbs[i]->path) < 0)
            p->retire[p->nretire++] = d->dbs[i];
    return 0;
}

/* The top-level settings read at start only: log each change as needing a restart. */
static void log_restart_keys(cli_daemon *d, const ls_config *now)
{
    static const struct {
        const char *key;
        const char *(*get)(const ls_config *);
    } keys[] = {{"exec", ls_config_exec}, {"addr", ls_config_addr}};
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        const char *a = keys[k].get(d->cfg), *b = keys[k].get(now);
        if (a != b && (!a || !b || strcmp(a, b) != 0))
            ls_ctx_log(d->env->ctx, LS_LOG_WARN, "reload: setting needs a restart key=%s "
                       "action=\"the running value stays until replicate restarts\"",
                       keys[k].key);
    }
    char a[4096] = "", b[4096] = "";
    int ha = ls_config_socket(d->cfg, a, sizeof(a)), hb = ls_config_socket(now, b, sizeof(b));
    if (ha != hb || strcmp(a, b) != 0 ||
        ls_config_socket_mode(d->cfg) != ls_config_socket_mode(now))
        ls_ctx_log(d->env->ctx, LS_LOG_WARN, "reload: setting needs a restart key=socket "
                   "action=\"the running value stays until replicate restarts\"");
}

/* Step 4's swap: the new set and configuration in, under the write lock. */
static void swap_in(cli_daemon *d, plan *p)
{
    pthread_rwlock_wrlock(&d->lock);
    daemon_db **old = d->dbs;
    ls_config *oldcfg = d->cfg;
    d->dbs = p->set;
    d->ndb = p->n;
    d->cfg = p->cfg;
    pthread_rwlock_unlock(&d->lock);
    p->set = old;
    p->cfg = oldcfg;
}

/* Steps 5 and 6: stop the retired in parallel, start the changed ones' successors. */
static void retire_and_restart(cli_daemon *d, plan *p)
{
    int *rcs = calloc(p->nretire ? p->nretire : 1, sizeof(int));
    if (rcs)
        stop_all(p->retire, p->nretire, ls_config_shutdown_timeout_ms(d->cfg), rcs);
    for (size_t i = 0; i < p->nretire; i++) {
        daemon_db *e = p->retire[i];
        int changed = db_find(d->dbs, d->ndb, e->path) >= 0;
        if (!rcs || rcs[i])
            ls_ctx_log(d->env->ctx, LS_LOG_ERROR, "database stopped unflushed db=%s error=\"%s\" "
                       "action=\"what is missing stays in its spool\"", e->path,
                       rcs ? ls_errmsg(e->ctx) : "out of memory");
        else
            ls_ctx_log(d->env->ctx, LS_LOG_INFO, "database stopped db=%s reason=%s", e->path,
                       changed ? "changed" : "removed");
    }
    free(rcs);
    /* The successors in; the old ones out and closed (their spool's lock released). */
    pthread_rwlock_wrlock(&d->lock);
    for (size_t j = 0; j < p->n; j++) {
        long i = db_find(d->dbs, d->ndb, ls_config_db_path(d->cfg, j));
        if (p->fresh[j] && i >= 0 && d->dbs[i] != p->fresh[j])
            d->dbs[i] = p->fresh[j];
        else
            p->fresh[j] = NULL; /* kept, or added and started already */
    }
    pthread_rwlock_unlock(&d->lock);
    for (size_t i = 0; i < p->nretire; i++)
        db_free(p->retire[i]);
    p->nretire = 0;
    for (size_t j = 0; j < p->n; j++) {
        daemon_db *e = p->fresh[j];
        if (!e)
            continue;
        p->fresh[j] = NULL; /* in the set */
        if (db_start(e) != 0)
            ls_ctx_log(d->env->ctx, LS_LOG_ERROR, "database restart failed db=%s error=\"%s\"",
                       e->path, ls_errmsg(e->ctx));
        log_replicas(d->env, d->cfg, j);
    }
}

int cli_daemon_reload(cli_daemon *d)
{
    char err[1024];
    plan p;
    int rc, e;
    /* 1 */
    if ((e = cli_log_reopen()) != 0)
        ls_ctx_log(d->env->ctx, LS_LOG_ERROR, "log reopen failed error=\"%s\"", strerror(e));
    if (!d->config_path)
        return 0;
    /* 2, 3 */
    if ((rc = plan_make(d, &p, err, sizeof(err))) != 0) {
        plan_free(&p);
        return rejected(d, rc, err);
    }
    /* 4 */
    if ((rc = cli_log_from_config(p.cfg, d->log_level, err, sizeof(err))) != 0) {
        plan_free(&p);
        return rejected(d, rc, err);
    }
    ls_ctx_log(d->env->ctx, LS_LOG_INFO, "reload config=%s kept=%zu changed=%zu added=%zu "
               "removed=%zu", d->config_path, p.kept, p.changed, p.added,
               p.nretire - p.changed);
    log_restart_keys(d, p.cfg);
    for (size_t j = 0; j < p.n; j++) {
        if (!p.fresh[j] || p.set[j] != p.fresh[j])
            continue;
        if (db_start(p.fresh[j]) != 0)
            ls_ctx_log(d->env->ctx, LS_LOG_ERROR, "database start failed db=%s error=\"%s\"",
                       p.fresh[j]->path, ls_errmsg(p.fresh[j]->ctx));
        p.fresh[j] = NULL; /* in the set from here on */
        log_replicas(d->env, p.cfg, j);
    }
    swap_in(d, &p);
    /* 5, 6 */
    retire_and_restart(d, &p);
    plan_free(&p);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* For the services                                                        */

int cli_daemon_status(cli_daemon *d, ls_ctx *ctx, cli_status_fn fn, void *ud)
{
    int rc = 0;
    pthread_rwlock_rdlock(&d->lock);
    for (size_t i = 0; i < d->ndb && !rc; i++) {
        ls_replica_status *st = NULL;
        size_t n = 0;
        if ((rc = ls_replicator_status(d->dbs[i]->r, &st, &n)) == 0)
            fn(ud, st, n);
        else /* the replicator's own ctx has the message; ctx is the caller's */
            ls_ctx_set_error(ctx, rc, "status of %s: %s", d->dbs[i]->path, ls_strerror(rc));
        ls_replica_status_free(st);
    }
    pthread_rwlock_unlock(&d->lock);
    return rc;
}

int cli_daemon_sync(cli_daemon *d, ls_ctx *ctx, const char *db, unsigned flags,
                    int64_t timeout_ms)
{
    daemon_db **v = NULL;
    size_t n = 0;
    int rc = 0;
    /* Take a reference on the entries to wait on, then wait without the lock. */
    pthread_rwlock_rdlock(&d->lock);
    long only = db ? db_find(d->dbs, d->ndb, db) : -1;
    if (only < 0 && db)
        only = 0; /* not one of ours: any replicator says so, on ctx */
    if ((v = calloc(d->ndb ? d->ndb : 1, sizeof(*v))) != NULL)
        for (size_t i = 0; i < d->ndb; i++)
            if (only < 0 || (size_t)only == i) {
                v[n] = d->dbs[i];
                __atomic_add_fetch(&v[n++]->users, 1, __ATOMIC_ACQ_REL);
            }
    pthread_rwlock_unlock(&d->lock);
    if (!v)
        return LS_ENOMEM;
    int64_t end = unix_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
    for (size_t i = 0; i < n; i++) {
        int64_t left = end - unix_ms();
        if (!rc)
            rc = ls_replicator_sync_db(v[i]->r, ctx, db, flags, left > 0 ? left : 0);
        __atomic_sub_fetch(&v[i]->users, 1, __ATOMIC_ACQ_REL);
    }
    free(v);
    return rc;
}

const char *cli_daemon_config_path(const cli_daemon *d)
{
    return d->config_path ? d->config_path : "<args>";
}

int64_t cli_daemon_started_ms(const cli_daemon *d)
{
    return d->started_ms;
}
