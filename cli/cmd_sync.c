/*
 * cmd_sync.c - `litesafe sync`: wait until what is committed is safe on the
 * replicas of a running `litesafe replicate` (over its control socket).
 *
 *   litesafe sync [-config PATH] [-socket PATH] [-wait] [-timeout DUR] [-hurry] [DB]
 *
 * With -wait: exit 0 once every transaction committed before the call is
 * stored on every replica of DB (every database without DB); exit 1 naming
 * the replica that lacks it (its position, what it needs, its last error)
 * when -timeout (default 30s) passes first. It rides the normal shipping:
 * no upload is added, so it waits at most one sync-interval beyond the
 * upload, unless -hurry ships at once. Without -wait (Litestream's default:
 * start a sync and return) it returns once the commits are in the local
 * spool, from where the replicas take them at their cadence.
 */
#include "control.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

static const char USAGE[] = "sync [-config PATH] [-socket PATH] [-wait] [-timeout DUR] [-hurry] [DB]";

int cmd_sync(cli_env *env, int argc, char **argv)
{
    const char *config = NULL, *sock = NULL, *timeout = NULL;
    int no_expand = 0, wait = 0, hurry = 0;
    const cli_opt opts[] = {
        {"config", 0, OPT_STR, &config, "PATH", "configuration file (finds the socket)"},
        {"no-expand-env", 0, OPT_FLAG, &no_expand, NULL, "do not expand $VAR in the config"},
        {"socket", 0, OPT_STR, &sock, "PATH", "the control socket of the replicate to ask"},
        {"wait", 0, OPT_FLAG, &wait, NULL, "return once the replicas hold it (else: the spool)"},
        {"timeout", 0, OPT_STR, &timeout, "DUR", "give up after DUR (default 30s)"},
        {"hurry", 0, OPT_FLAG, &hurry, NULL, "ship at once instead of at the sync-interval"},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    char *pos[1], path[PATH_MAX], dbabs[PATH_MAX];
    int npos, rc;
    int64_t ms = 30000;
    ls_config *cfg = NULL;
    json_t *result = NULL;
    if ((rc = cli_parse(env, USAGE,
                        "Wait until every transaction committed before the call is stored on "
                        "every replica\n(-wait) or in the local spool, in a running `litesafe "
                        "replicate`. Exit 1 naming\nwhat is missing when -timeout passes first.",
                        opts, argc, argv, pos, 1, &npos)) >= 0)
        return rc;
    if (timeout && (ls_duration_parse(timeout, &ms) != 0 || ms < 0))
        return cli_fail(env, LS_EUSAGE, "invalid -timeout '%s' (a duration such as 30s or 2m)",
                        timeout);
    const char *db = NULL;
    if (npos == 1) {
        if (!realpath(pos[0], dbabs))
            snprintf(dbabs, sizeof(dbabs), "%s", pos[0]);
        db = dbabs;
    }
    if ((rc = cli_control_path(env, sock, config, no_expand, db, path, sizeof(path), &cfg)) >= 0)
        return rc;
    ls_config_free(cfg);
    json_t *params = json_pack("{s:I, s:b, s:b}", "timeout_ms", (json_int_t)ms, "wait", wait,
                               "hurry", hurry);
    if (db)
        json_object_set_new(params, "db", json_string(db));
    /* The daemon answers by the deadline; a little more for the answer itself. */
    rc = cli_control_call(env->ctx, path, "sync", params, ms + 10000, &result);
    json_decref(params);
    if (rc)
        return cli_fail_lib(env, rc == LS_EBUSY ? LS_EIO : rc);
    size_t i, j;
    json_t *d, *r;
    if (env->json) {
        out_begin(env);
        out_str(env, "command", "sync");
        out_bool(env, "wait", wait);
        out_arr_begin(env, "replicas");
    }
    json_array_foreach(json_object_get(result, "databases"), i, d) {
        json_array_foreach(json_object_get(d, "replicas"), j, r) {
            const char *gen = json_string_value(json_object_get(r, "generation"));
            long long idx = json_integer_value(json_object_get(r, "index"));
            long long off = json_integer_value(json_object_get(r, "offset"));
            const char *dbp = json_string_value(json_object_get(d, "path"));
            const char *name = json_string_value(json_object_get(r, "name"));
            if (env->json) {
                out_item_begin(env);
                out_str(env, "database", dbp);
                out_str(env, "replica", name);
                out_str(env, "generation", gen);
                out_int(env, "index", idx);
                out_int(env, "offset", off);
                out_item_end(env);
            } else {
                printf("%s %s %s/%08llx:%lld%s\n", dbp, name, gen && *gen ? gen : "-", idx, off,
                       wait ? "" : " (spooled; shipping at the replica's cadence)");
            }
        }
    }
    if (env->json) {
        out_arr_end(env);
        out_end(env);
    }
    json_decref(result);
    return 0;
}
