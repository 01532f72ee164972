/*
 * cmd_validate.c - `litesafe validate DB`: restore each replica at the live
 * database's current position and compare byte for byte. Needs a running
 * `litesafe replicate` (or an idle database it has fully shipped).
 */
#include "cli.h"

static const char USAGE[] = "validate [-config PATH] [-replica NAME] [--timeout MS] DB | DB URL";

int cmd_validate(cli_env *env, int argc, char **argv)
{
    const char *config = NULL, *replica = NULL;
    int no_expand = 0;
    long long timeout = 10000;
    const cli_opt opts[] = {
        {"config", 0, OPT_STR, &config, "PATH", "configuration file"},
        {"no-expand-env", 0, OPT_FLAG, &no_expand, NULL, "do not expand $VAR in the config"},
        {"replica", 0, OPT_STR, &replica, "NAME", "only this replica"},
        {"timeout", 0, OPT_INT, &timeout, "MS", "wait this long for the replica (default 10000)"},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    char *pos[2];
    int npos, rc, bad = 0;
    ls_target *t = NULL;
    if ((rc = cli_parse(env, USAGE,
                        "Restore the replica at the live database's position and compare them "
                        "byte for byte.",
                        opts, argc, argv, pos, 2, &npos)) >= 0)
        return rc;
    if ((rc = cli_want_args(env, npos, 1, 2, USAGE)) >= 0)
        return rc;
    if (timeout < 0 || timeout > 86400000)
        return cli_fail(env, LS_EUSAGE, "--timeout: out of range");
    /* DB URL: compare with that replica; DB alone: the configured replicas. */
    if ((rc = cli_target_open(env, config, no_expand, replica, npos == 2 ? pos[1] : pos[0], &t)) >= 0)
        return rc;
    const char *db = npos == 2 ? pos[0] : ls_target_database(t);
    for (size_t i = 0; i < ls_target_replica_count(t); i++) {
        ls_validate_result res;
        rc = ls_target_validate(env->ctx, t, i, db, timeout, &res);
        if (rc) {
            ls_target_free(t);
            return cli_fail_lib(env, rc);
        }
        char pos_s[64];
        ls_position_format(pos_s, sizeof(pos_s), res.generation, res.index, res.offset);
        out_begin(env);
        out_str(env, "command", "validate");
        out_str(env, "database", db);
        out_str(env, "replica", ls_target_replica_name(t, i));
        out_str(env, "position", pos_s);
        out_bool(env, "ok", res.ok);
        out_uint(env, "live_pages", res.live_pages);
        out_uint(env, "replica_pages", res.replica_pages);
        out_uint(env, "first_diff_page", res.first_diff_page);
        out_uint(env, "elapsed_ms", res.elapsed_ms);
        out_end(env);
        if (!res.ok)
            bad = 1;
    }
    ls_target_free(t);
    if (bad)
        return cli_fail(env, LS_ECORRUPT, "replica differs from the live database");
    return 0;
}
