/*
 * replicator.c - the public replicator (litesafe.h): an ls_engine run in a
 * thread of its own, over a configuration built in code (ls_replicator_open
 * and ls_replicator_add_replica) or given (ls_replicator_open_config; or
 * ls_replicator_open_config_db, one database of it, copied, its engine
 * built at once so that its errors are configuration errors at open).
 *
 * Life cycle: open -> add replicas -> start (defaults applied, everything
 * checked, backends opened, threads started) -> notify / sync / status ->
 * stop (the engine's flush, bounded by the shutdown timeout; a concurrent
 * ls_replicator_interrupt cuts it short) -> close.
 */
#include "config.h"
#include "engine.h"

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct ls_replicator {
    ls_ctx *ctx;                /* the caller's: errors and the log sink */
    ls_config *own;             /* the configuration built by ls_replicator_open (owned) */
    ls_config *copy;            /* ls_replicator_open_config_db's copy of one database
                                   (owned) */
    const ls_config *cfg;       /* the configuration replicated (own, copy or the caller's) */
    ls_replica_cfg tmpl;        /* an unset replica, the start of every added one */
    ls_engine *e;               /* from start on (from open on when `prepared`) */
    int prepared;               /* e was built at open and is not started yet */
    int64_t shutdown_ms;        /* the configuration's shutdown timeout */
    pthread_t th;
    int started;                /* th runs or ran and was not joined */
    volatile sig_atomic_t stop; /* the engine's stop requests (1 flush, 2 at once) */
    volatile int done;          /* the engine returned */
    int rc;                     /* what it returned */
};

static int check_version(ls_ctx *ctx, const char *what, unsigned int have, unsigned int want)
{
    if (have != want)
        return ls_err(ctx, LS_EUSAGE, "%s: version %u is not known to this library (%s)", what,
                      have, LS_VERSION);
    return 0;
}

int ls_replica_options_init(ls_replica_options *o, unsigned int version)
{
    if (version != LS_REPLICA_OPTIONS_VERSION)
        return LS_EUSAGE;
    ls_replica_options init = LS_REPLICA_OPTIONS_INIT;
    *o = init;
    return 0;
}

int ls_replicator_options_init(ls_replicator_options *o, unsigned int version)
{
    if (version != LS_REPLICATOR_OPTIONS_VERSION)
        return LS_EUSAGE;
    ls_replicator_options init = LS_REPLICATOR_OPTIONS_INIT;
    *o = init;
    return 0;
}

static ls_replicator *replicator_new(ls_ctx *ctx)
{
    ls_replicator *r = calloc(1, sizeof(*r));
    if (!r) {
        ls_err(ctx, LS_ENOMEM, "out of memory");
        return NULL;
    }
    r->ctx = ctx;
    return r;
}

/*
 * A configuration of one database and no replica. The configuration's own
 * constructor (ls_config_from_urls) gives one database with one replica
 * whose settings are all unset: that replica becomes the template of the
 * replicas added later, so "unset" has one definition (config.c's).
 */
static int config_one_db(ls_replicator *r, const char *db)
{
    static const char *const placeholder[1] = {"-"};
    int rc = ls_config_from_urls(r->ctx, db, placeholder, 1, &r->own);
    if (rc)
        return rc;
    ls_db_cfg *d = &r->own->dbs[0];
    r->tmpl = d->replicas[0];
    free(r->tmpl.url);
    r->tmpl.url = NULL;
    free(d->replicas);
    d->replicas = NULL;
    d->n_replicas = 0;
    return 0;
}

int ls_replicator_open(ls_ctx *ctx, const char *db, const ls_replicator_options *o,
                       ls_replicator **out)
{
    ls_replicator_options defaults = LS_REPLICATOR_OPTIONS_INIT;
    ls_replicator *r = NULL;
    int rc;
    *out = NULL;
    if (!o)
        o = &defaults;
    if ((rc = check_version(ctx, "ls_replicator_options", o->version,
                            LS_REPLICATOR_OPTIONS_VERSION)) != 0)
        return rc;
    if (!db || !*db)
        return ls_err(ctx, LS_EUSAGE, "ls_replicator_open: no database path");
    if (!(r = replicator_new(ctx)))
        return LS_ENOMEM;
    if ((rc = config_one_db(r, db)) != 0) {
        ls_replicator_close(r);
        return rc;
    }
    ls_db_cfg *d = &r->own->dbs[0];
    if (o->meta_path && !(d->meta_path = strdup(o->meta_path))) {
        ls_replicator_close(r);
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    }
    d->monitor_interval_ms = o->monitor_interval_ms;
    d->checkpoint_interval_ms = o->checkpoint_interval_ms;
    d->min_checkpoint_page_count = o->min_checkpoint_page_count;
    d->max_checkpoint_page_count = o->max_checkpoint_page_count;
    d->busy_timeout_ms = o->busy_timeout_ms;
    d->max_spool_size = o->max_spool_size > 0 ? o->max_spool_size : -1;
    r->own->shutdown_timeout_ms = o->shutdown_timeout_ms;
    r->cfg = r->own;
    *out = r;
    return 0;
}

int ls_replicator_open_config(ls_ctx *ctx, const ls_config *cfg, ls_replicator **out)
{
    *out = NULL;
    if (!cfg || !cfg->defaults_applied)
        return ls_err(ctx, LS_EUSAGE, "ls_replicator_open_config: not an opened configuration");
    ls_replicator *r = replicator_new(ctx);
    if (!r)
        return LS_ENOMEM;
    r->cfg = cfg;
    *out = r;
    return 0;
}

int ls_replicator_open_config_db(ls_ctx *ctx, const ls_config *cfg, size_t db,
                                 ls_replicator **out)
{
    ls_replicator *r = NULL;
    int rc;
    *out = NULL;
    if (!cfg || !cfg->defaults_applied)
        return ls_err(ctx, LS_EUSAGE, "ls_replicator_open_config_db: not an opened configuration");
    if (db >= cfg->n_dbs)
        return ls_err(ctx, LS_EUSAGE, "ls_replicator_open_config_db: no database %zu (of %zu)",
                      db, cfg->n_dbs);
    if (!(r = replicator_new(ctx)))
        return LS_ENOMEM;
    if ((rc = ls_config_copy_db(cfg, &cfg->dbs[db], &r->copy)) != 0) {
        ls_replicator_close(r);
        return ls_err(ctx, rc, "out of memory");
    }
    r->cfg = r->copy;
    if ((rc = ls_engine_new(ctx, r->cfg, &r->e)) != 0) {
        ls_replicator_close(r);
        return rc;
    }
    r->prepared = 1;
    *out = r;
    return 0;
}

/* The string options of a replica and where the configuration keeps them. */
static const struct {
    size_t opt, cfg;
} replica_strings[] = {
#define S(o, c) {offsetof(ls_replica_options, o), offsetof(ls_replica_cfg, c)}
    S(name, name),         S(url, url),
    S(type, type),         S(path, path),
    S(bucket, bucket),     S(region, region),
    S(endpoint, endpoint), S(ca_file, ca_file),
    S(access_key_id, access_key_id),
    S(secret_access_key, secret_access_key),
    S(session_token, session_token),
    S(host, host),         S(user, user),
    S(password, password), S(key_path, key_path),
    S(known_hosts, known_hosts),
    S(host_key, host_key), S(account_name, account_name),
    S(account_key, account_key),
#undef S
};

/* Fill rc (a copy of the template) from o; strings are copied. */
static int replica_from_options(const ls_replica_options *o, ls_replica_cfg *rc)
{
    for (size_t i = 0; i < sizeof(replica_strings) / sizeof(replica_strings[0]); i++) {
        const char *v = *(const char *const *)((const char *)o + replica_strings[i].opt);
        char **dst = (char **)((char *)rc + replica_strings[i].cfg);
        if (v && *v && !(*dst = strdup(v)))
            return LS_ENOMEM;
    }
    rc->force_path_style = o->force_path_style;
    rc->skip_verify = o->skip_verify;
    rc->sync_interval_ms = o->sync_interval_ms;
    rc->snapshot_interval_ms = o->snapshot_interval_ms;
    rc->retention_ms = o->retention_ms;
    rc->retention_check_interval_ms = o->retention_check_interval_ms;
    rc->validation_interval_ms = o->validation_interval_ms;
    rc->storage = o->storage;
    /* An embedder's backend names itself unless the options name it. */
    if (o->storage && !rc->name && o->storage->name[0] && !(rc->name = strdup(o->storage->name)))
        return LS_ENOMEM;
    return 0;
}

int ls_replicator_add_replica(ls_replicator *r, const ls_replica_options *o)
{
    int rc;
    if ((rc = check_version(r->ctx, "ls_replica_options", o->version,
                            LS_REPLICA_OPTIONS_VERSION)) != 0)
        return rc;
    if (!r->own)
        return ls_err(r->ctx, LS_EUSAGE, "a replicator opened on a configuration takes its "
                      "replicas from it");
    if (r->e)
        return ls_err(r->ctx, LS_EUSAGE, "replicas are added before ls_replicator_start");
    if (o->storage && (o->url || o->type))
        return ls_err(r->ctx, LS_EUSAGE, "a replica is a url, a type or a storage, not two");
    if (o->storage && (!o->storage->type || o->storage->version < 1 ||
                          o->storage->version > LS_STORAGE_VERSION))
        return ls_err(r->ctx, LS_EUSAGE, "replica storage: not an ls_storage of version 1 to %d",
                      LS_STORAGE_VERSION);
    ls_db_cfg *d = &r->own->dbs[0];
    ls_replica_cfg *v = realloc(d->replicas, (d->n_replicas + 1) * sizeof(*v));
    if (!v)
        return ls_err(r->ctx, LS_ENOMEM, "out of memory");
    d->replicas = v;
    ls_replica_cfg *rcfg = &v[d->n_replicas++];
    *rcfg = r->tmpl;
    if ((rc = replica_from_options(o, rcfg)) != 0) {
        rcfg->storage = NULL; /* stays the caller's */
        return ls_err(r->ctx, rc, "out of memory");
    }
    return 0;
}

static void *engine_thread(void *p)
{
    ls_replicator *r = p;
    r->rc = ls_engine_run(r->e, &r->stop);
    __atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

int ls_replicator_start(ls_replicator *r)
{
    int rc;
    ls_engine *e = r->prepared ? r->e : NULL;
    if (r->e && !r->prepared)
        return ls_err(r->ctx, LS_EUSAGE, "the replicator was started already");
    if (r->own) {
        if (!r->own->dbs[0].n_replicas)
            return ls_err(r->ctx, LS_EUSAGE, "must add at least one replica for %s",
                          r->own->dbs[0].path);
        if ((rc = ls_config_apply_defaults(r->ctx, r->own)) != 0)
            return rc;
    }
    if (!e && (rc = ls_engine_new(r->ctx, r->cfg, &e)) != 0)
        return rc;
    r->prepared = 0;
    r->shutdown_ms = r->cfg->shutdown_timeout_ms;
    ls_engine_set_shutdown_timeout(e, r->shutdown_ms);
    r->stop = 0;
    r->done = 0;
    __atomic_store_n(&r->e, e, __ATOMIC_RELEASE);
    if (pthread_create(&r->th, NULL, engine_thread, r) != 0)
        return ls_err(r->ctx, LS_ERROR, "cannot start the replication thread");
    r->started = 1;
    return 0;
}

int ls_replicator_wait_started(ls_replicator *r, int64_t timeout_ms)
{
    if (!r->e || r->prepared)
        return ls_err(r->ctx, LS_EUSAGE, "the replicator is not started");
    if (ls_engine_wait_tried(r->e, timeout_ms) != 0)
        return ls_err(r->ctx, LS_EBUSY, "replication did not start within %lldms",
                      (long long)timeout_ms);
    return 0;
}

void ls_replicator_notify(ls_replicator *r, const char *db)
{
    ls_engine *e = r ? __atomic_load_n(&r->e, __ATOMIC_ACQUIRE) : NULL;
    if (e)
        ls_engine_notify(e, db);
}

int ls_replicator_sync(ls_replicator *r, int64_t timeout_ms)
{
    return ls_replicator_sync_db(r, NULL, NULL, LS_SYNC_HURRY, timeout_ms);
}

int ls_replicator_sync_db(ls_replicator *r, ls_ctx *ctx, const char *db, unsigned flags,
                          int64_t timeout_ms)
{
    if (!ctx)
        ctx = r->ctx;
    if (flags & ~(unsigned)(LS_SYNC_HURRY | LS_SYNC_SPOOL))
        return ls_err(ctx, LS_EUSAGE, "ls_replicator_sync_db: unknown flags 0x%x", flags);
    ls_engine *e = __atomic_load_n(&r->e, __ATOMIC_ACQUIRE);
    if (!e || r->prepared || __atomic_load_n(&r->done, __ATOMIC_ACQUIRE))
        return ls_err(ctx, LS_ECANCEL, "replication is not running");
    return ls_engine_sync(e, ctx, db, flags, timeout_ms);
}

int ls_replicator_status(ls_replicator *r, ls_replica_status **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!r->e)
        return ls_err(r->ctx, LS_EUSAGE, "the replicator is not started");
    return ls_engine_status(r->e, out, n);
}

void ls_replica_status_free(ls_replica_status *st)
{
    free(st);
}

int ls_replicator_running(ls_replicator *r)
{
    return r->started && !__atomic_load_n(&r->done, __ATOMIC_ACQUIRE);
}

int ls_replicator_stop(ls_replicator *r, int64_t timeout_ms)
{
    if (!r->started)
        return 0;
    if (timeout_ms >= 0)
        ls_engine_set_shutdown_timeout(r->e, timeout_ms);
    if (__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE) < 1)
        __atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
    pthread_join(r->th, NULL);
    r->started = 0;
    return r->rc;
}

void ls_replicator_interrupt(ls_replicator *r)
{
    __atomic_store_n(&r->stop, 2, __ATOMIC_RELEASE);
}

void ls_replicator_close(ls_replicator *r)
{
    if (!r)
        return;
    if (r->started) {
        __atomic_store_n(&r->stop, 2, __ATOMIC_RELEASE);
        pthread_join(r->th, NULL);
    }
    ls_engine_free(r->e);
    /* Backends the engine did not take over are still ours to close. */
    for (size_t i = 0; r->own && i < r->own->dbs[0].n_replicas; i++)
        ls_storage_close(r->own->dbs[0].replicas[i].storage);
    ls_config_free(r->own);
    ls_config_free(r->copy);
    free(r);
}
