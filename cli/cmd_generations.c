/*
 * cmd_generations.c - `litesafe generations DB|URL`: the generations of each
 * replica with their time range and lag (Litestream's columns: name
 * generation lag start end).
 */
#include "cli.h"
#include "table.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

static const char USAGE[] = "generations [-config PATH] [-replica NAME] DB|URL";

/* Latest modification of the database or its WAL, unix ms (0 if neither exists). */
static int64_t db_mtime_ms(const char *path)
{
    char wal[4200];
    struct stat st;
    int64_t best = 0;
    snprintf(wal, sizeof(wal), "%s-wal", path);
    const char *files[2] = {path, wal};
    for (int i = 0; i < 2; i++)
        if (stat(files[i], &st) == 0) {
            int64_t t = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
            if (t > best)
                best = t;
        }
    return best;
}

static void fmt_lag(int64_t ms, char *buf, size_t n)
{
    if (ms < 0)
        ms = 0;
    snprintf(buf, n, "%lld.%03llds", (long long)(ms / 1000), (long long)(ms % 1000));
}

int cmd_generations(cli_env *env, int argc, char **argv)
{
    const char *config = NULL, *replica = NULL;
    int no_expand = 0;
    const cli_opt opts[] = {
        {"config", 0, OPT_STR, &config, "PATH", "configuration file"},
        {"no-expand-env", 0, OPT_FLAG, &no_expand, NULL, "do not expand $VAR in the config"},
        {"replica", 0, OPT_STR, &replica, "NAME", "only this replica"},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    char *pos[1];
    int npos, rc;
    ls_target *t = NULL;
    if ((rc = cli_parse(env, USAGE, "List the generations of a database's replicas.", opts, argc,
                        argv, pos, 1, &npos)) >= 0)
        return rc;
    if ((rc = cli_want_args(env, npos, 1, 1, USAGE)) >= 0)
        return rc;
    if ((rc = cli_target_open(env, config, no_expand, replica, pos[0], &t)) >= 0)
        return rc;
    int64_t ref = ls_target_database(t) ? db_mtime_ms(ls_target_database(t)) : 0;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    cli_table tab;
    const char *hdr[] = {"name", "generation", "lag", "start", "end"};
    cli_table_init(&tab, 5, hdr);
    if (env->json) {
        out_begin(env);
        out_str(env, "command", "generations");
        out_arr_begin(env, "generations");
    }
    rc = 0;
    for (size_t i = 0; i < ls_target_replica_count(t) && !rc; i++) {
        const char *name = ls_target_replica_name(t, i);
        ls_replica_listing *l = NULL;
        if ((rc = ls_target_list(env->ctx, t, i, NULL, &l)) != 0)
            break;
        for (size_t g = 0; g < l->n; g++) {
            const ls_generation_info *gen = &l->generations[g];
            char start[32], end[32], lag[32];
            cli_rfc3339(gen->start_ms, start, sizeof(start));
            cli_rfc3339(gen->end_ms, end, sizeof(end));
            int64_t lag_ms = (ref ? ref : now_ms) - gen->end_ms;
            fmt_lag(lag_ms, lag, sizeof(lag));
            if (env->json) {
                out_item_begin(env);
                out_str(env, "name", name);
                out_str(env, "generation", gen->name);
                out_int(env, "lag_ms", lag_ms);
                out_str(env, "start", start);
                out_str(env, "end", end);
                out_uint(env, "snapshots", gen->nsnapshots);
                out_uint(env, "wal_segments", gen->nsegments);
                out_item_end(env);
            } else {
                const char *row[] = {name, gen->name, lag, start, end};
                cli_table_add(&tab, row);
            }
        }
        ls_replica_listing_free(l);
    }
    if (rc) {
        cli_table_free(&tab);
        ls_target_free(t);
        return cli_fail_lib(env, rc);
    }
    cli_table_finish(env, &tab);
    ls_target_free(t);
    return 0;
}
