/*
 * cmd_verify.c - `litesafe verify FILE [--sha256 HEX]`: integrity check of a
 * database file (usually a backup) and, if given, a check of its SHA-256.
 *
 * Nothing is written next to FILE (see src/sqlite/verify.c). The result is printed
 * even when a check fails; the failure then follows as an error (exit 1).
 * A malformed --sha256 is a usage error (exit 2).
 */
#include "cli.h"

static const char USAGE[] = "verify FILE [--sha256 HEX]";

int cmd_verify(cli_env *env, int argc, char **argv)
{
    const char *sha = NULL;
    const cli_opt opts[] = {
        {"sha256", 0, OPT_STR, &sha, "HEX", "expected SHA-256 of the file (64 hex digits, any case)"},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    char *pos[1];
    int npos, rc;
    if ((rc = cli_parse(env, USAGE,
                        "Run PRAGMA integrity_check on FILE without writing anything next to it "
                        "(a FILE that has a -wal\nis checked with its WAL), report its SHA-256 and "
                        "compare it with --sha256. Exit 1 when a\ncheck fails.",
                        opts, argc, argv, pos, 1, &npos)) >= 0)
        return rc;
    if ((rc = cli_want_args(env, npos, 1, 1, USAGE)) >= 0)
        return rc;

    ls_verify_result res;
    rc = ls_verify(env->ctx, pos[0], sha, &res);
    /* LS_ECORRUPT comes with a complete result: print it, then the error. */
    if (rc != 0 && rc != LS_ECORRUPT) {
        ls_verify_result_free(&res);
        return cli_fail_lib(env, rc);
    }
    out_begin(env);
    out_str(env, "command", "verify");
    out_str(env, "path", res.path);
    out_uint(env, "size_bytes", res.size_bytes);
    out_str(env, "sha256", res.sha256);
    if (sha)
        out_str(env, "sha256_expected", sha);
    if (res.sha256_match < 0)
        out_str(env, "sha256_match", NULL);
    else
        out_bool(env, "sha256_match", res.sha256_match);
    out_bool(env, "integrity_ok", res.integrity_ok);
    out_str(env, "integrity", res.integrity_message);
    out_uint(env, "page_size", res.page_size);
    out_uint(env, "page_count", res.page_count);
    out_str(env, "journal_mode", res.journal_mode);
    out_bool(env, "ok", rc == 0);
    out_end(env);
    ls_verify_result_free(&res);
    return rc ? cli_fail_lib(env, rc) : 0;
}
