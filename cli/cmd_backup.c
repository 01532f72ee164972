/*
 * cmd_backup.c - `litesafe backup DB [DEST]`: a consistent online copy.
 *
 * Without DEST the copy goes to a timestamped file in the backup directory
 * (--dir, default <db dir>/backups/). With --watch INTERVAL it repeats every
 * INTERVAL until SIGINT/SIGTERM, pruning with --keep/--keep-within after each
 * backup; one JSON object (or text block) is printed per backup.
 *
 * The text block is sqlite-checkpoint's ("backup complete", then source,
 * destination, size, sha256 and elapsed lines), litesafe's fields after it.
 */
#include "cli.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char USAGE[] = "backup DB [DEST] [--dir DIR] [--compact] [--watch INTERVAL "
                            "[--keep N | --keep-within DURATION]]";

void print_backup_result(cli_env *env, const ls_backup_result *r)
{
    out_str(env, "source", r->source);
    out_str(env, "destination", r->destination);
    out_uint(env, "size_bytes", r->size_bytes);
    out_str(env, "sha256", r->sha256);
    out_uint(env, "page_size", r->page_size);
    out_uint(env, "page_count", r->page_count);
    out_uint(env, "wal_frames", r->wal_frames);
    out_bool(env, "compact", r->compact);
    out_int(env, "retries", r->retries);
    out_uint(env, "elapsed_ms", r->elapsed_ms);
}

/* The text form: sqlite-checkpoint's lines, then litesafe's. */
static void print_backup_text(cli_env *env, const ls_backup_result *r)
{
    char n[32];
    out_head(env, "backup complete");
    out_line(env, "source", "%s", r->source);
    out_line(env, "destination", "%s", r->destination);
    out_line(env, "size", "%s bytes", out_commas(n, sizeof(n), r->size_bytes));
    out_line(env, "sha256", "%s", r->sha256);
    out_line(env, "elapsed", "%llu ms", (unsigned long long)r->elapsed_ms);
    out_line(env, "page size", "%s", out_commas(n, sizeof(n), r->page_size));
    out_line(env, "page count", "%s", out_commas(n, sizeof(n), r->page_count));
    out_line(env, "WAL frames copied", "%llu", (unsigned long long)r->wal_frames);
    out_line(env, "compact", "%s", r->compact ? "yes" : "no");
    out_line(env, "retries", "%d", r->retries);
}

/*
 * --watch's retention after each backup: prune the directory of `dest` with
 * --keep/--keep-within and print how many went. Returns 0 or the LS_E* code.
 */
static int prune_after_backup(cli_env *env, const char *dest, long long keep, int64_t within_ms)
{
    char bdir[8192], *slash;
    ls_prune_result pr;
    ls_prune_opts po = {.keep = keep, .keep_within_s = within_ms < 0 ? -1 : within_ms / 1000};
    snprintf(bdir, sizeof(bdir), "%s", dest);
    if ((slash = strrchr(bdir, '/')) != NULL)
        *slash = '\0';
    int rc = ls_prune(env->ctx, bdir, &po, &pr);
    if (rc == 0 && env->json)
        out_uint(env, "pruned", pr.deleted);
    else if (rc == 0)
        out_line(env, "pruned", "%llu", (unsigned long long)pr.deleted);
    ls_prune_result_free(&pr);
    return rc;
}

/* Sleep up to ms; returns 1 early when SIGINT/SIGTERM arrived. */
static int sleep_interruptible(int64_t ms)
{
    uint64_t end = cli_now_ms() + (uint64_t)ms;
    while (!cli_stop && cli_now_ms() < end) {
        int64_t left = (int64_t)(end - cli_now_ms());
        poll(NULL, 0, (int)(left > 200 ? 200 : left));
    }
    return cli_stop != 0;
}

int cmd_backup(cli_env *env, int argc, char **argv)
{
    const char *dir = NULL, *watch = NULL, *keep_within = NULL;
    long long keep = -1, busy = 5000;
    int compact = 0;
    const cli_opt opts[] = {
        {"dir", 'd', OPT_STR, &dir, "DIR", "backup directory when DEST is omitted"},
        {"compact", 0, OPT_FLAG, &compact, NULL, "copy without free pages (VACUUM INTO)"},
        {"watch", 'w', OPT_STR, &watch, "INTERVAL", "take a backup every INTERVAL (e.g. 1h)"},
        {"keep", 'k', OPT_INT, &keep, "N", "with --watch: keep the N newest backups"},
        {"keep-within", 0, OPT_STR, &keep_within, "DURATION",
         "with --watch: keep backups younger than DURATION (e.g. 7d)"},
        {"busy-timeout", 0, OPT_INT, &busy, "MS", "wait this long for locks (default 5000)"},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    char *pos[2];
    int npos, rc;
    if ((rc = cli_parse(env, USAGE,
                        "Copy a live database consistently while writers keep writing. DEST must "
                        "not exist; it is\npublished atomically with the source's permissions, "
                        "and its SHA-256 is reported. Nothing is\npublished next to an existing "
                        "DEST-wal, DEST-shm or DEST-journal (SQLite would replay it\ninto the "
                        "copy): the backup is refused, naming it (this holds for the timestamped "
                        "names too).",
                        opts, argc, argv, pos, 2, &npos)) >= 0)
        return rc;
    if ((rc = cli_want_args(env, npos, 1, 2, USAGE)) >= 0)
        return rc;
    const char *db = pos[0], *dest = npos > 1 ? pos[1] : NULL;
    int64_t every_ms = 0, within_ms = -1;
    if (watch && (ls_duration_parse(watch, &every_ms) != 0 || every_ms <= 0))
        return cli_fail(env, LS_EUSAGE, "--watch: invalid interval '%s'", watch);
    if (watch && every_ms < 1000) /* names carry the time to the second */
        return cli_fail(env, LS_EUSAGE, "--watch: the interval must be at least 1s");
    if (keep_within && ls_duration_parse(keep_within, &within_ms) != 0)
        return cli_fail(env, LS_EUSAGE, "--keep-within: invalid duration '%s'", keep_within);
    if (keep != -1 && keep < 1)
        return cli_fail(env, LS_EUSAGE, "--keep: must be at least 1");
    if ((keep >= 0 || keep_within) && !watch)
        return cli_fail(env, LS_EUSAGE, "--keep/--keep-within need --watch (or use 'prune')");
    if (watch && dest)
        return cli_fail(env, LS_EUSAGE, "--watch writes timestamped files: give --dir, not DEST");
    if (dir && dest)
        return cli_fail(env, LS_EUSAGE, "give DEST or --dir, not both");
    if (busy < 0 || busy > 86400000)
        return cli_fail(env, LS_EUSAGE, "--busy-timeout: out of range");

    ls_backup_opts bo = {.compact = compact, .busy_timeout_ms = (int)busy};
    for (;;) {
        char path[8192];
        const char *target = dest;
        ls_backup_result res;
        cli_progress prog;
        if (!target) {
            /* Timestamped name; the directory is created on first use. */
            int64_t now = (int64_t)time(NULL);
            if ((rc = ls_backup_path(env->ctx, db, dir, now, 0, path, sizeof(path))) != 0)
                return cli_fail_lib(env, rc);
            target = path;
            bo.make_dir = 1;
        }
        cli_progress_init(&prog, env, "backup");
        bo.progress = cli_progress_cb;
        bo.progress_ud = &prog;
        rc = ls_backup(env->ctx, db, target, &bo, &res);
        cli_progress_done(&prog);
        if (rc != 0) {
            ls_backup_result_free(&res);
            return cli_fail_lib(env, rc);
        }
        out_begin(env);
        if (env->json) {
            out_str(env, "command", "backup");
            print_backup_result(env, &res);
        } else {
            print_backup_text(env, &res);
        }
        if (watch && (keep >= 0 || keep_within))
            rc = prune_after_backup(env, res.destination, keep, within_ms);
        ls_backup_result_free(&res);
        out_end(env);
        if (rc != 0)
            return cli_fail_lib(env, rc);
        if (!watch)
            return 0;
        if (sleep_interruptible(every_ms))
            return 0;
    }
}
