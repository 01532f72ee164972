/*
 * target.c - the public calls on replicas (litesafe.h, "Replicas: restore,
 * listing, validation"): resolving a target (a replica URL, or a database of
 * a configuration narrowed to one replica), choosing the best replica,
 * listing one, restoring from the best one and validating one.
 *
 * A target owns a configuration holding its database (the one loaded, or a
 * copy of an entry of the caller's) and the indexes of the replicas chosen
 * in it; every call opens the storage of the replica it works on and closes
 * it before it returns, so a target holds no connection.
 *
 * The messages are the `litesafe` command's (it prints them as they are),
 * hence the option names in some of them.
 */
#include "catalog.h"
#include "config.h"
#include "fsutil.h"
#include "layout.h"
#include "engine.h"
#include "restore.h"
#include "url.h"
#include "validate.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The placeholder database path of a URL target's configuration. */
static const char URL_DB[] = "/litesafe-url-target";

struct ls_target {
    ls_config *cfg;             /* owned: the configuration the replicas come from */
    const ls_db_cfg *db;        /* the database entry in cfg */
    int is_url;                 /* made from a replica URL (db->path is URL_DB) */
    size_t *reps;               /* indexes in db->replicas of the replicas selected */
    size_t n;                   /* their count (at least 1) */
};

int ls_target_options_init(ls_target_options *o, unsigned int version)
{
    static const ls_target_options init = LS_TARGET_OPTIONS_INIT;
    if (!o || version != LS_TARGET_OPTIONS_VERSION)
        return LS_EUSAGE;
    *o = init;
    return 0;
}

int ls_restore_options_init(ls_restore_options *o, unsigned int version)
{
    static const ls_restore_options init = LS_RESTORE_OPTIONS_INIT;
    if (!o || version != LS_RESTORE_OPTIONS_VERSION)
        return LS_EUSAGE;
    *o = init;
    return 0;
}

int ls_is_url(const char *s)
{
    return s && ls_url_is_url(s);
}

/*
 * Select the replicas of t->db (all, or the one called `replica`). Takes
 * ownership of t->cfg whatever happens: on failure t is freed. `arg` names
 * the database in messages.
 */
static int target_select(ls_ctx *ctx, ls_target *t, const char *arg, const char *replica,
                         ls_target **out)
{
    const ls_db_cfg *db = t->db;
    if (!(t->reps = calloc(db->n_replicas ? db->n_replicas : 1, sizeof(*t->reps)))) {
        ls_target_free(t);
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < db->n_replicas; i++)
        if (!replica || strcmp(db->replicas[i].name, replica) == 0)
            t->reps[t->n++] = i;
    if (!t->n) {
        ls_target_free(t);
        return replica ? ls_err(ctx, LS_ENOENT, "replica not found: %s", replica)
                       : ls_err(ctx, LS_ENOENT, "no replicas configured for %s", arg);
    }
    *out = t;
    return 0;
}

int ls_target_open(ls_ctx *ctx, const char *arg, const ls_target_options *o, ls_target **out)
{
    static const ls_target_options defaults = LS_TARGET_OPTIONS_INIT;
    ls_target *t;
    int rc;

    *out = NULL;
    if (!o)
        o = &defaults;
    if (o->version != LS_TARGET_OPTIONS_VERSION)
        return ls_err(ctx, LS_EUSAGE, "ls_target_options: unknown version %u", o->version);
    if (!arg || !*arg)
        return ls_err(ctx, LS_EUSAGE, "no database or replica URL given");
    if (!(t = calloc(1, sizeof(*t))))
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    if (ls_url_is_url(arg)) {
        const char *urls[1] = {arg};
        if (o->replica) {
            free(t);
            return ls_err(ctx, LS_EUSAGE, "cannot specify -replica with a replica URL");
        }
        rc = ls_config_open_urls(ctx, URL_DB, urls, 1, &t->cfg);
        t->is_url = 1;
    } else {
        rc = ls_config_open(ctx, o->config_path ? o->config_path : ls_config_default_path(),
                            o->no_expand_env, &t->cfg);
    }
    if (rc) {
        ls_target_free(t);
        return rc;
    }
    t->db = t->is_url ? &t->cfg->dbs[0] : ls_config_find_db(t->cfg, arg);
    if (!t->db) {
        ls_target_free(t);
        return ls_err(ctx, LS_ENOENT, "database not found in config: %s", arg);
    }
    return target_select(ctx, t, arg, o->replica, out);
}

int ls_target_open_config(ls_ctx *ctx, const ls_config *cfg, const char *db, const char *replica,
                          ls_target **out)
{
    const ls_db_cfg *d;
    ls_target *t;
    int rc;

    *out = NULL;
    if (!cfg || !db)
        return ls_err(ctx, LS_EUSAGE, "no configuration or database given");
    if (!(d = ls_config_find_db(cfg, db)))
        return ls_err(ctx, LS_ENOENT, "database not found in config: %s", db);
    if (!(t = calloc(1, sizeof(*t))))
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    if ((rc = ls_config_copy_db(cfg, d, &t->cfg)) != 0) {
        free(t);
        return ls_err(ctx, rc, "out of memory");
    }
    t->db = &t->cfg->dbs[0];
    t->is_url = strcmp(t->db->path, URL_DB) == 0;
    return target_select(ctx, t, db, replica, out);
}

void ls_target_free(ls_target *t)
{
    if (!t)
        return;
    ls_config_free(t->cfg);
    free(t->reps);
    free(t);
}

const char *ls_target_database(const ls_target *t)
{
    return t && !t->is_url ? t->db->path : NULL;
}

const char *ls_target_meta_path(const ls_target *t)
{
    return t && !t->is_url ? t->db->meta_path : NULL;
}

size_t ls_target_replica_count(const ls_target *t)
{
    return t ? t->n : 0;
}

/* Replica i of the selection, or NULL. */
static const ls_replica_cfg *target_replica(const ls_target *t, size_t i)
{
    return t && i < t->n ? &t->db->replicas[t->reps[i]] : NULL;
}

const char *ls_target_replica_name(const ls_target *t, size_t i)
{
    const ls_replica_cfg *r = target_replica(t, i);
    return r ? r->name : NULL;
}

/* Open replica i of t and list it (only `gen` when not NULL); *st is closed on failure. */
static int target_catalog(ls_ctx *ctx, ls_target *t, size_t i, const char *gen, ls_storage **st,
                          ls_catalog *cat)
{
    const ls_replica_cfg *r = target_replica(t, i);
    int rc;
    *st = NULL;
    memset(cat, 0, sizeof(*cat));
    if (!r)
        return ls_err(ctx, LS_EUSAGE, "no replica %zu in the target", i);
    rc = ls_replica_storage_open(ctx, r, st);
    if (!rc)
        rc = ls_catalog_load(ctx, *st, gen, cat);
    if (rc) {
        ls_storage_close(*st);
        *st = NULL;
    }
    return rc;
}

int ls_target_best_replica(ls_ctx *ctx, ls_target *t, size_t *pick)
{
    int64_t best = -1;
    *pick = 0;
    if (!t)
        return ls_err(ctx, LS_EUSAGE, "no target");
    if (t->n == 1)
        return 0;
    for (size_t i = 0; i < t->n; i++) {
        ls_storage *st = NULL;
        ls_catalog cat;
        if (target_catalog(ctx, t, i, NULL, &st, &cat) != 0) {
            /* An unreachable replica is skipped if another one can serve. */
            ls_log(ctx, LS_LOG_INFO, "replica skipped replica=%s error=\"%s\"",
                   ls_target_replica_name(t, i), ls_errmsg(ctx));
            ls_err_clear(ctx);
            continue;
        }
        for (size_t g = 0; g < cat.n; g++)
            if (cat.gens[g].nsnap && cat.gens[g].end_ms > best) {
                best = cat.gens[g].end_ms;
                *pick = i;
            }
        ls_catalog_free(&cat);
        ls_storage_close(st);
    }
    return 0;
}

/* ---- listing ---- */

/* A copy of the catalog's objects v[0..n) as the public struct; 0 or LS_ENOMEM. */
static int copy_objects(const ls_cat_obj *v, size_t n, ls_object_info **out)
{
    *out = NULL;
    if (!n)
        return 0;
    if (!(*out = calloc(n, sizeof(**out))))
        return LS_ENOMEM;
    for (size_t k = 0; k < n; k++)
        (*out)[k] = (ls_object_info){v[k].index, v[k].offset, v[k].size, v[k].mtime_ms};
    return 0;
}

int ls_target_list(ls_ctx *ctx, ls_target *t, size_t i, const char *generation,
                   ls_replica_listing **out)
{
    ls_storage *st = NULL;
    ls_catalog cat;
    ls_replica_listing *l = NULL;
    int rc;

    *out = NULL;
    if ((rc = target_catalog(ctx, t, i, generation, &st, &cat)) != 0)
        return rc;
    ls_storage_close(st);
    if (!(l = calloc(1, sizeof(*l))) ||
        (cat.n && !(l->generations = calloc(cat.n, sizeof(*l->generations))))) {
        rc = LS_ENOMEM;
        goto cleanup;
    }
    for (size_t g = 0; g < cat.n; g++, l->n++) {
        const ls_cat_gen *cg = &cat.gens[g];
        ls_generation_info *gi = &l->generations[g];
        memcpy(gi->name, cg->name, sizeof(gi->name));
        gi->start_ms = cg->start_ms;
        gi->end_ms = cg->end_ms;
        gi->nsnapshots = cg->nsnap;
        gi->nsegments = cg->nseg;
        if (copy_objects(cg->snaps, cg->nsnap, &gi->snapshots) != 0 ||
            copy_objects(cg->segs, cg->nseg, &gi->segments) != 0) {
            l->n++; /* freed with the others */
            rc = LS_ENOMEM;
            goto cleanup;
        }
    }
    *out = l;
    l = NULL;

cleanup:
    ls_catalog_free(&cat);
    ls_replica_listing_free(l);
    return rc ? ls_err(ctx, rc, "out of memory") : 0;
}

void ls_replica_listing_free(ls_replica_listing *l)
{
    if (!l)
        return;
    for (size_t g = 0; g < l->n; g++) {
        free(l->generations[g].snapshots);
        free(l->generations[g].segments);
    }
    free(l->generations);
    free(l);
}

/* ---- restore ---- */

/* The options' values a restore cannot take. */
static int restore_options_check(ls_ctx *ctx, const ls_restore_options *o)
{
    if (o->version != LS_RESTORE_OPTIONS_VERSION)
        return ls_err(ctx, LS_EUSAGE, "ls_restore_options: unknown version %u", o->version);
    if (o->index >= 0 && o->timestamp_ms >= 0)
        return ls_err(ctx, LS_EUSAGE, "cannot specify both -index and -timestamp");
    if (o->index < -1 || o->index > 0x7fffffffLL)
        return ls_err(ctx, LS_EUSAGE, "-index: %lld is not a WAL index", (long long)o->index);
    if (o->timestamp_ms < -1)
        return ls_err(ctx, LS_EUSAGE, "-timestamp: %lld is before 1970",
                      (long long)o->timestamp_ms);
    if (o->parallelism < 0 || o->parallelism > 64)
        return ls_err(ctx, LS_EUSAGE, "-parallelism: must be between 1 and 64");
    return 0;
}

/*
 * The steps (cli/cmd_restore.c calls this as it is):
 *   1. Where: `out`, else the target's database (a URL target has none).
 *   2. An existing output: success without restoring with if_db_not_exists
 *      (the LS_EEXIST stays on ctx as the reason), else LS_EEXIST.
 *   3. No stranger's -wal/-shm/-journal at the output, before any replica
 *      is contacted.
 *   4. The best replica (ls_target_best_replica), restored from
 *      (restore.c). A replica holding nothing (LS_ENOENT) is success
 *      without restoring with if_replica_exists (the reason stays on ctx).
 */
int ls_restore(ls_ctx *ctx, ls_target *t, const char *out, const ls_restore_options *o,
               ls_restore_result *res)
{
    static const ls_restore_options defaults = LS_RESTORE_OPTIONS_INIT;
    ls_storage *st = NULL;
    size_t pick = 0;
    int rc;

    memset(res, 0, sizeof(*res));
    if (!o)
        o = &defaults;
    if ((rc = restore_options_check(ctx, o)) != 0)
        return rc;
    if (!t)
        return ls_err(ctx, LS_EUSAGE, "no target");
    /* 1-3. */
    if (!out && !(out = ls_target_database(t)))
        return ls_err(ctx, LS_EUSAGE, "-o PATH is required when restoring from a URL");
    if (access(out, F_OK) == 0) {
        rc = ls_err(ctx, LS_EEXIST, "%s: output exists (restore never overwrites)", out);
        if (!o->if_db_not_exists)
            return rc;
        ls_log(ctx, LS_LOG_INFO, "nothing restored (if-db-not-exists) db=%s reason=\"%s\"", out,
               ls_errmsg(ctx));
        return 0;
    }
    if ((rc = ls_publish_check(ctx, out)) != 0)
        return rc;
    /* 4. */
    ls_restore_plan plan = LS_RESTORE_PLAN_LATEST;
    plan.generation = o->generation;
    plan.index = o->index;
    plan.timestamp_ms = o->timestamp_ms;
    plan.parallelism = o->parallelism;
    ls_target_best_replica(ctx, t, &pick);
    if ((rc = ls_replica_storage_open(ctx, target_replica(t, pick), &st)) == 0)
        rc = ls_restore_replica(ctx, st, out, &plan, res);
    ls_storage_close(st);
    res->replica = pick;
    if (rc == LS_ENOENT && o->if_replica_exists) {
        ls_log(ctx, LS_LOG_INFO, "nothing restored (if-replica-exists) db=%s reason=\"%s\"", out,
               ls_errmsg(ctx));
        return 0;
    }
    if (!rc)
        res->restored = 1;
    return rc;
}

/* ---- validation, positions ---- */

int ls_target_validate(ls_ctx *ctx, ls_target *t, size_t i, const char *db, int64_t timeout_ms,
                       ls_validate_result *res)
{
    const ls_replica_cfg *r = target_replica(t, i);
    const char *meta = NULL;
    ls_storage *st = NULL;
    int rc;

    memset(res, 0, sizeof(*res));
    if (!r)
        return ls_err(ctx, LS_EUSAGE, "no replica %zu in the target", i);
    if (timeout_ms < 0)
        return ls_err(ctx, LS_EUSAGE, "timeout: %lld ms is negative", (long long)timeout_ms);
    /* The target's own database has its configured spool; another, the default one. */
    if (!db || (ls_target_database(t) && strcmp(db, ls_target_database(t)) == 0)) {
        db = ls_target_database(t);
        meta = ls_target_meta_path(t);
    }
    if (!db)
        return ls_err(ctx, LS_EUSAGE, "validating a replica URL needs the database's path");
    if ((rc = ls_replica_storage_open(ctx, r, &st)) == 0)
        rc = ls_validate(ctx, db, meta, st, timeout_ms > INT_MAX ? INT_MAX : (int)timeout_ms,
                         res);
    ls_storage_close(st);
    return rc;
}

void ls_position_format(char *out, size_t n, const char *generation, uint32_t index,
                        uint64_t offset)
{
    ls_layout_pos_str(out, n, generation, index, offset);
}
