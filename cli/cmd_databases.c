/*
 * cmd_databases.c - `litesafe databases`: the databases of the configuration
 * and their replicas (Litestream's columns: path replicas).
 */
#include "cli.h"
#include "table.h"

#include <string.h>

int cmd_databases(cli_env *env, int argc, char **argv)
{
    const char *config = NULL;
    int no_expand = 0;
    const cli_opt opts[] = {
        {"config", 0, OPT_STR, &config, "PATH", "configuration file"},
        {"no-expand-env", 0, OPT_FLAG, &no_expand, NULL, "do not expand $VAR in the config"},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    char *pos[1];
    int npos, rc;
    ls_config *cfg = NULL;
    if ((rc = cli_parse(env, "databases [-config PATH]", "List the configured databases.", opts,
                        argc, argv, pos, 0, &npos)) >= 0)
        return rc;
    rc = ls_config_open(env->ctx, config ? config : ls_config_default_path(), no_expand, &cfg);
    if (rc)
        return cli_fail_lib(env, rc);
    cli_table tab;
    const char *hdr[] = {"path", "replicas"};
    cli_table_init(&tab, 2, hdr);
    if (env->json) {
        out_begin(env);
        out_str(env, "command", "databases");
        out_arr_begin(env, "databases");
    }
    for (size_t i = 0; i < ls_config_db_count(cfg); i++) {
        const char *path = ls_config_db_path(cfg, i);
        char names[1024] = "";
        for (size_t j = 0; j < ls_config_replica_count(cfg, i); j++) {
            if (j)
                strncat(names, ",", sizeof(names) - strlen(names) - 1);
            strncat(names, ls_config_replica_name(cfg, i, j), sizeof(names) - strlen(names) - 1);
        }
        if (env->json) {
            out_item_begin(env);
            out_str(env, "path", path);
            out_str(env, "replicas", names);
            out_item_end(env);
        } else {
            const char *row[] = {path, names};
            cli_table_add(&tab, row);
        }
    }
    cli_table_finish(env, &tab);
    ls_config_free(cfg);
    return 0;
}
