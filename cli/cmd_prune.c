/*
 * cmd_prune.c - `litesafe prune DIR --keep N | --keep-within DURATION
 * [--dry-run]`: retention over the timestamped backups in DIR
 * (<name>-YYYYMMDDTHHMMSSZ.db, as `backup` names them without DEST).
 *
 * Output: the counts ("deleted_count" among them) and "deleted", the paths
 * removed (with --dry-run, the paths that would be), one per line in text
 * mode. A failure part-way still reports what was deleted before it.
 */
#include "cli.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] = "prune DIR --keep N | --keep-within DURATION [--dry-run]";

/* Paths reported deleted by the library's callback, in its order. */
typedef struct path_list {
    char **v;   /* the paths (owned) */
    size_t n;   /* used */
    size_t cap; /* allocated */
    int oom;    /* an allocation failed: the list is incomplete */
} path_list;

static void on_each(void *ud, const char *path, int64_t t, int deleted)
{
    path_list *l = ud;
    (void)t;
    if (!deleted || l->oom)
        return;
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        char **nv = realloc(l->v, ncap * sizeof(*nv));
        if (!nv) {
            l->oom = 1;
            return;
        }
        l->v = nv;
        l->cap = ncap;
    }
    if (!(l->v[l->n] = strdup(path))) {
        l->oom = 1;
        return;
    }
    l->n++;
}

int cmd_prune(cli_env *env, int argc, char **argv)
{
    const char *within = NULL;
    long long keep = LLONG_MIN; /* not given */
    int dry_run = 0;
    const cli_opt opts[] = {
        {"keep", 'k', OPT_INT, &keep, "N", "keep the N newest backups of each database"},
        {"keep-within", 0, OPT_STR, &within, "DURATION",
         "keep backups younger than DURATION (e.g. 36h, 7d, 2w)"},
        {"dry-run", 'n', OPT_FLAG, &dry_run, NULL, "report what would be deleted, delete nothing"},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    char *pos[1];
    int npos, rc;
    if ((rc = cli_parse(env, USAGE,
                        "Delete old timestamped backups (<name>-YYYYMMDDTHHMMSSZ.db) in DIR. Per "
                        "database name, a backup\nsurvives when either rule keeps it; the newest "
                        "one always survives. Other files are never touched.",
                        opts, argc, argv, pos, 1, &npos)) >= 0)
        return rc;
    if ((rc = cli_want_args(env, npos, 1, 1, USAGE)) >= 0)
        return rc;
    if (keep == LLONG_MIN && !within)
        return cli_fail(env, LS_EUSAGE, "give --keep N or --keep-within DURATION (or both)");
    if (keep != LLONG_MIN && keep < 1)
        return cli_fail(env, LS_EUSAGE, "--keep: must be at least 1");
    int64_t within_ms = -1;
    if (within && ls_duration_parse(within, &within_ms) != 0)
        return cli_fail(env, LS_EUSAGE, "--keep-within: invalid duration '%s'", within);

    path_list del = {0};
    ls_prune_result res;
    ls_prune_opts po = {
        .keep = keep == LLONG_MIN ? -1 : keep,
        .keep_within_s = within ? within_ms / 1000 : -1,
        .dry_run = dry_run,
        .each = on_each,
        .each_ud = &del,
    };
    rc = ls_prune(env->ctx, pos[0], &po, &res);
    /* After a failure part-way, what was deleted is still worth reporting. */
    if (rc == 0 || del.n > 0) {
        out_begin(env);
        out_str(env, "command", "prune");
        out_str(env, "dir", res.dir);
        out_bool(env, "dry_run", dry_run);
        out_uint(env, "examined", res.examined);
        out_uint(env, "kept", res.kept);
        out_uint(env, "deleted_count", res.deleted);
        out_uint(env, "bytes_freed", res.bytes_freed);
        out_arr_begin(env, "deleted");
        for (size_t i = 0; i < del.n; i++)
            out_str(env, NULL, del.v[i]); /* a bare value: an array of strings */
        out_arr_end(env);
        out_end(env);
    }
    if (rc != 0)
        rc = cli_fail_lib(env, rc);
    else if (del.oom)
        rc = cli_fail(env, LS_ENOMEM, "out of memory: the list of deleted files is incomplete");
    for (size_t i = 0; i < del.n; i++)
        free(del.v[i]);
    free(del.v);
    ls_prune_result_free(&res);
    return rc;
}
