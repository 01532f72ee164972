/* cmd_version.c - `litesafe version`. */
#include "cli.h"

#include <sqlite3.h>

int cmd_version(cli_env *env, int argc, char **argv)
{
    static const cli_opt opts[] = {{NULL, 0, 0, NULL, NULL, NULL}};
    char *pos[1];
    int npos, rc;
    if ((rc = cli_parse(env, "version", "Print litesafe's version.", opts, argc, argv, pos, 0,
                        &npos)) >= 0)
        return rc;
    if (!env->json) {
        printf("litesafe %s (SQLite %s)\n", ls_version(), sqlite3_libversion());
        return 0;
    }
    out_begin(env);
    out_str(env, "command", "version");
    out_str(env, "version", ls_version());
    out_str(env, "sqlite_version", sqlite3_libversion());
    out_end(env);
    return 0;
}
