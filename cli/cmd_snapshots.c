/*
 * cmd_snapshots.c - `litesafe snapshots DB|URL` and `litesafe wal DB|URL`:
 * the objects of each replica, with Litestream's columns (snapshots: replica
 * generation index size created; wal: replica generation index offset size
 * created). Indexes print in decimal, as Litestream prints them.
 */
#include "cli.h"
#include "table.h"

#include <stdio.h>
#include <string.h>

static int list_objects(cli_env *env, int argc, char **argv, int wal)
{
    const char *config = NULL, *replica = NULL, *generation = NULL;
    int no_expand = 0;
    const cli_opt opts[] = {
        {"config", 0, OPT_STR, &config, "PATH", "configuration file"},
        {"no-expand-env", 0, OPT_FLAG, &no_expand, NULL, "do not expand $VAR in the config"},
        {"replica", 0, OPT_STR, &replica, "NAME", "only this replica"},
        {"generation", 0, OPT_STR, &generation, "GEN", "only this generation"},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    const char *usage = wal ? "wal [-config PATH] [-replica NAME] [-generation GEN] DB|URL"
                            : "snapshots [-config PATH] [-replica NAME] [-generation GEN] DB|URL";
    char *pos[1];
    int npos, rc;
    ls_target *t = NULL;
    if ((rc = cli_parse(env, usage,
                        wal ? "List the WAL segments of a database's replicas."
                            : "List the snapshots of a database's replicas (full copies "
                              "the replicator uploads;\n`snapshot` is the command that makes a "
                              "local checkpointed backup).",
                        opts, argc, argv, pos, 1, &npos)) >= 0)
        return rc;
    if ((rc = cli_want_args(env, npos, 1, 1, usage)) >= 0)
        return rc;
    if ((rc = cli_target_open(env, config, no_expand, replica, pos[0], &t)) >= 0)
        return rc;
    cli_table tab;
    const char *hs[] = {"replica", "generation", "index", "size", "created"};
    const char *hw[] = {"replica", "generation", "index", "offset", "size", "created"};
    cli_table_init(&tab, wal ? 6 : 5, wal ? hw : hs);
    if (env->json) {
        out_begin(env);
        out_str(env, "command", wal ? "wal" : "snapshots");
        out_arr_begin(env, wal ? "wal" : "snapshots");
    }
    rc = 0;
    for (size_t i = 0; i < ls_target_replica_count(t) && !rc; i++) {
        const char *name = ls_target_replica_name(t, i);
        ls_replica_listing *l = NULL;
        if ((rc = ls_target_list(env->ctx, t, i, generation, &l)) != 0)
            break;
        for (size_t g = 0; g < l->n; g++) {
            const ls_generation_info *gen = &l->generations[g];
            const ls_object_info *v = wal ? gen->segments : gen->snapshots;
            size_t n = wal ? gen->nsegments : gen->nsnapshots;
            for (size_t k = 0; k < n; k++) {
                char idx[16], off[16], size[24], created[32];
                snprintf(idx, sizeof(idx), "%u", v[k].index);
                snprintf(off, sizeof(off), "%u", v[k].offset);
                snprintf(size, sizeof(size), "%llu", (unsigned long long)v[k].size);
                cli_rfc3339(v[k].created_ms, created, sizeof(created));
                if (env->json) {
                    out_item_begin(env);
                    out_str(env, "replica", name);
                    out_str(env, "generation", gen->name);
                    out_uint(env, "index", v[k].index);
                    if (wal)
                        out_uint(env, "offset", v[k].offset);
                    out_uint(env, "size", v[k].size);
                    out_str(env, "created", created);
                    out_item_end(env);
                } else if (wal) {
                    const char *row[] = {name, gen->name, idx, off, size, created};
                    cli_table_add(&tab, row);
                } else {
                    const char *row[] = {name, gen->name, idx, size, created};
                    cli_table_add(&tab, row);
                }
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

int cmd_snapshots(cli_env *env, int argc, char **argv)
{
    return list_objects(env, argc, argv, 0);
}

int cmd_wal(cli_env *env, int argc, char **argv)
{
    return list_objects(env, argc, argv, 1);
}
