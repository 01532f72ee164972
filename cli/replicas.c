/*
 * replicas.c - resolving the replica commands' argument (see replicas.h).
 */
#define _GNU_SOURCE
#include "replicas.h"

#include "replicate.h"
#include "url.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The placeholder database path of a URL-only configuration. */
static const char URL_DB[] = "/litesafe-url-target";

int cli_target_open(cli_env *env, const char *config, int no_expand, const char *replica,
                    const char *arg, cli_target *t)
{
    int rc;
    memset(t, 0, sizeof(*t));
    if (ls_url_is_url(arg)) {
        if (replica)
            return cli_fail(env, LS_EUSAGE, "cannot specify -replica with a replica URL");
        const char *urls[1] = {arg};
        rc = ls_config_from_urls(env->ctx, URL_DB, urls, 1, &t->cfg);
        t->is_url = 1;
    } else {
        rc = ls_config_load(env->ctx, config ? config : ls_config_default_path(), !no_expand,
                            &t->cfg);
    }
    if (!rc)
        rc = ls_config_apply_defaults(env->ctx, t->cfg);
    if (rc) {
        cli_target_free(t);
        return cli_fail_lib(env, rc);
    }
    t->db = t->is_url ? &t->cfg->dbs[0] : ls_config_find_db(t->cfg, arg);
    if (!t->db) {
        cli_target_free(t);
        return cli_fail(env, LS_ENOENT, "database not found in config: %s", arg);
    }
    for (size_t i = 0; i < t->db->n_replicas && t->n < CLI_MAX_REPLICAS; i++)
        if (!replica || strcmp(t->db->replicas[i].name, replica) == 0)
            t->reps[t->n++] = &t->db->replicas[i];
    if (!t->n) {
        cli_target_free(t);
        return replica ? cli_fail(env, LS_ENOENT, "replica not found: %s", replica)
                       : cli_fail(env, LS_ENOENT, "no replicas configured for %s", arg);
    }
    return -1;
}

void cli_target_free(cli_target *t)
{
    ls_config_free(t->cfg);
    memset(t, 0, sizeof(*t));
}

void cli_rfc3339(int64_t ms, char *buf, size_t n)
{
    time_t tt = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int cli_parse_rfc3339(const char *s, int64_t *ms)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return LS_EUSAGE;
    double frac = 0;
    if (*p == '.') {
        char *end;
        frac = strtod(p, &end);
        p = end;
    }
    long off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh, mm;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2)
            return LS_EUSAGE;
        off = (hh * 3600L + mm * 60L) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return LS_EUSAGE;
    }
    if (*p)
        return LS_EUSAGE;
    time_t t = timegm(&tm);
    *ms = ((int64_t)t - off) * 1000 + (int64_t)(frac * 1000.0);
    return 0;
}

int cli_target_catalog(cli_env *env, cli_target *t, size_t i, const char *gen, ls_storage **st,
                       ls_catalog *cat)
{
    int rc = ls_replica_storage_open(env->ctx, t->reps[i], st);
    if (!rc)
        rc = ls_catalog_load(env->ctx, *st, gen, cat);
    if (rc) {
        ls_storage_close(*st);
        *st = NULL;
    }
    return rc;
}
