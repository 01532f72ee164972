/*
 * daemon.c - the running `litesafe replicate` (see daemon.h): the replicator
 * of the configuration, and what the control socket and the metrics
 * listener ask of it.
 */
#include "daemon.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct cli_daemon {
    cli_env *env;
    ls_config *cfg;             /* owned */
    char *config_path;          /* NULL: the configuration came from URLs */
    ls_replicator *r;
    int64_t started_ms;
    pthread_rwlock_t lock;      /* readers: status, sync; writer: a change of the set */
};

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cli_daemon_start(cli_env *env, ls_config *cfg, const char *config_path, cli_daemon **out)
{
    cli_daemon *d = calloc(1, sizeof(*d));
    int rc;
    *out = NULL;
    if (!d || (config_path && !(d->config_path = strdup(config_path)))) {
        free(d);
        ls_config_free(cfg);
        return cli_fail(env, LS_ENOMEM, "out of memory");
    }
    d->env = env;
    d->cfg = cfg;
    d->started_ms = unix_ms();
    pthread_rwlock_init(&d->lock, NULL);
    if ((rc = ls_replicator_open_config(env->ctx, cfg, &d->r)) != 0 ||
        (rc = ls_replicator_start(d->r)) != 0) {
        rc = cli_fail_lib(env, rc);
        cli_daemon_close(d);
        return rc;
    }
    *out = d;
    return -1;
}

void cli_daemon_wait_started(cli_daemon *d, int64_t ms)
{
    ls_replicator_wait_started(d->r, ms);
}

int cli_daemon_running(cli_daemon *d)
{
    return ls_replicator_running(d->r);
}

typedef struct stopper {
    ls_replicator *r;
    volatile int done;
    int rc;
} stopper;

static void *stop_thread(void *p)
{
    stopper *s = p;
    s->rc = ls_replicator_stop(s->r, -1);
    __atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* ls_replicator_stop in a thread, so that a second signal can interrupt it. */
static int stop_replicator(ls_replicator *r)
{
    stopper s = {r, 0, 0};
    pthread_t th;
    if (cli_stop >= 2 || pthread_create(&th, NULL, stop_thread, &s) != 0) {
        ls_replicator_interrupt(r);
        return ls_replicator_stop(r, -1);
    }
    while (!__atomic_load_n(&s.done, __ATOMIC_ACQUIRE)) {
        if (cli_stop >= 2)
            ls_replicator_interrupt(r);
        usleep(20000);
    }
    pthread_join(th, NULL);
    return s.rc;
}

int cli_daemon_stop(cli_daemon *d)
{
    return stop_replicator(d->r);
}

void cli_daemon_close(cli_daemon *d)
{
    if (!d)
        return;
    ls_replicator_close(d->r);
    ls_config_free(d->cfg);
    pthread_rwlock_destroy(&d->lock);
    free(d->config_path);
    free(d);
}

int cli_daemon_status(cli_daemon *d, ls_ctx *ctx, cli_status_fn fn, void *ud)
{
    ls_replica_status *st = NULL;
    size_t n = 0;
    (void)ctx;
    pthread_rwlock_rdlock(&d->lock);
    int rc = ls_replicator_status(d->r, &st, &n);
    if (rc == 0)
        fn(ud, st, n);
    pthread_rwlock_unlock(&d->lock);
    ls_replica_status_free(st);
    return rc;
}

int cli_daemon_sync(cli_daemon *d, ls_ctx *ctx, const char *db, unsigned flags,
                    int64_t timeout_ms)
{
    pthread_rwlock_rdlock(&d->lock);
    int rc = ls_replicator_sync_db(d->r, ctx, db, flags, timeout_ms);
    pthread_rwlock_unlock(&d->lock);
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
