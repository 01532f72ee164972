/*
 * config_public.c - the configuration as the public API shows it
 * (litesafe.h): opened with defaults applied, read through accessors, so the
 * structs of config.h stay free to change.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* After a load: apply the defaults; on any failure free the configuration. */
static int opened(ls_ctx *ctx, int rc, ls_config *cfg, ls_config **out)
{
    if (!rc)
        rc = ls_config_apply_defaults(ctx, cfg);
    if (rc) {
        ls_config_free(cfg);
        cfg = NULL;
    }
    *out = cfg;
    return rc;
}

int ls_config_open(ls_ctx *ctx, const char *path, int no_expand_env, ls_config **out)
{
    ls_config *cfg = NULL;
    int rc = ls_config_load(ctx, path, !no_expand_env, &cfg);
    return opened(ctx, rc, cfg, out);
}

int ls_config_open_urls(ls_ctx *ctx, const char *db, const char *const *urls, size_t n,
                        ls_config **out)
{
    ls_config *cfg = NULL;
    int rc = ls_config_from_urls(ctx, db, urls, n, &cfg);
    return opened(ctx, rc, cfg, out);
}

size_t ls_config_db_count(const ls_config *cfg)
{
    return cfg ? cfg->n_dbs : 0;
}

const char *ls_config_db_path(const ls_config *cfg, size_t i)
{
    return cfg && i < cfg->n_dbs ? cfg->dbs[i].path : NULL;
}

long ls_config_db_index(const ls_config *cfg, const char *path)
{
    const ls_db_cfg *d = ls_config_find_db(cfg, path);
    return d ? (long)(d - cfg->dbs) : -1;
}

size_t ls_config_replica_count(const ls_config *cfg, size_t db)
{
    return cfg && db < cfg->n_dbs ? cfg->dbs[db].n_replicas : 0;
}

static const ls_replica_cfg *replica_at(const ls_config *cfg, size_t db, size_t r)
{
    if (!cfg || db >= cfg->n_dbs || r >= cfg->dbs[db].n_replicas)
        return NULL;
    return &cfg->dbs[db].replicas[r];
}

const char *ls_config_replica_name(const ls_config *cfg, size_t db, size_t r)
{
    const ls_replica_cfg *rc = replica_at(cfg, db, r);
    return rc ? rc->name : NULL;
}

const char *ls_config_replica_type(const ls_config *cfg, size_t db, size_t r)
{
    const ls_replica_cfg *rc = replica_at(cfg, db, r);
    return rc ? rc->type : NULL;
}

const char *ls_config_exec(const ls_config *cfg)
{
    return cfg->exec;
}

const char *ls_config_log_level(const ls_config *cfg)
{
    return cfg->log_level;
}

const char *ls_config_log_type(const ls_config *cfg)
{
    return cfg->log_type;
}

const char *ls_config_log_file(const ls_config *cfg)
{
    return cfg->log_file;
}

int ls_config_log_stderr(const ls_config *cfg)
{
    return cfg->log_stderr > 0;
}

int ls_config_db_equal(const ls_config *a, size_t i, const ls_config *b, size_t j)
{
    if (!a || !b || i >= a->n_dbs || j >= b->n_dbs)
        return 0;
    return ls_db_cfg_equal(&a->dbs[i], &b->dbs[j]);
}

const char *ls_config_addr(const ls_config *cfg)
{
    return cfg->addr;
}

int64_t ls_config_shutdown_timeout_ms(const ls_config *cfg)
{
    return cfg->shutdown_timeout_ms;
}

int64_t ls_config_health_max_lag_ms(const ls_config *cfg)
{
    return cfg->health_max_lag_ms;
}

int ls_config_socket(const ls_config *cfg, char *out, size_t n)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int len;
    if (cfg->socket_enabled == 0)
        return LS_ENOENT;
    if (cfg->socket_path)
        len = snprintf(out, n, "%s", cfg->socket_path);
    else if (strcmp(cfg->source, "<args>") == 0 && cfg->n_dbs == 1)
        len = snprintf(out, n, "%s/control.sock", cfg->dbs[0].meta_path);
    else if (xdg && xdg[0] == '/')
        len = snprintf(out, n, "%s/litesafe.sock", xdg);
    else if (geteuid() == 0)
        len = snprintf(out, n, "/run/litesafe/litesafe.sock");
    else
        len = snprintf(out, n, "/tmp/litesafe-%u/litesafe.sock", (unsigned)geteuid());
    return len < 0 || (size_t)len >= n ? LS_EUSAGE : 0;
}

int ls_config_socket_mode(const ls_config *cfg)
{
    return cfg->socket_mode;
}
