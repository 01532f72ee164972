/*
 * cmd_snapshot.c - `litesafe snapshot DB DEST` (alias `snap`): checkpoint,
 * then a consistent backup to DEST.
 *
 * Invariants:
 *   - DEST is checked before anything touches the source: an existing DEST,
 *     a -wal/-shm/-journal next to it, or a missing DEST directory fails
 *     (exit 1) with the WAL untouched.
 *   - A busy checkpoint does not fail the snapshot. It only moves WAL frames
 *     into the database file; the backup reads committed WAL frames as well,
 *     so the copy is complete and consistent either way. The busy result is
 *     reported in the "checkpoint" object and the backup goes ahead.
 *
 * Default mode: passive. A passive checkpoint never waits and never holds
 * the write lock, so the snapshot cannot stall the application; full, restart
 * and truncate hold off its writers for up to the busy timeout whenever a
 * reader is active (the way Litestream's forced checkpoints hang writers).
 * Since the backup is consistent without any checkpoint, waiting buys
 * nothing for the copy; use -m truncate to also shrink the -wal file.
 *
 * The output is sqlite-checkpoint's, plus litesafe's extra keys:
 *   JSON  {"command": "snapshot", "checkpoint": {"mode": "PASSIVE", "busy",
 *          "wal_pages", "checkpointed_pages", "fully_checkpointed", ...},
 *          "backup": {"source", "destination", "size_bytes", "sha256", ...},
 *          "elapsed_ms"}; the top-level elapsed_ms is the sum of the parts'.
 *   text  snapshot complete [checkpoint ok|partial|busy]
 *           checkpoint busy:    no
 *           wal pages:          12
 *           checkpointed:       12
 *           destination:        /backups/app.db
 *           size:               16,384 bytes
 *           sha256:             <hex>
 *           elapsed:            5 ms
 *         then litesafe's fields in the same layout.
 */
#include "cli.h"

#include <errno.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>

static const char USAGE[] = "snapshot DB DEST [-m passive|full|restart|truncate] "
                            "[--busy-timeout MS] [--compact]";

/*
 * The destination checks done before the checkpoint: DEST must not exist and
 * its directory must. Returns -1 to go on, or the exit code after reporting.
 */
static int check_dest(cli_env *env, const char *dest)
{
    struct stat st;
    char dir[4096];
    if (lstat(dest, &st) == 0)
        return cli_fail(env, LS_EEXIST, "%s: destination exists", dest);
    if (ls_publish_check(env->ctx, dest) != 0) /* a stranger's -wal/-shm/-journal */
        return cli_fail_lib(env, ls_errcode(env->ctx));
    if (strlen(dest) >= sizeof(dir))
        return cli_fail(env, LS_EUSAGE, "%s: path too long", dest);
    strcpy(dir, dest);
    const char *d = dirname(dir);
    if (stat(d, &st) != 0)
        return cli_fail(env, errno == ENOENT || errno == ENOTDIR ? LS_ENOENT : LS_EPERM,
                        "%s: destination directory %s: %s", dest, d, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return cli_fail(env, LS_ENOENT, "%s: destination directory %s: Not a directory", dest, d);
    return -1;
}

/* The text form: sqlite-checkpoint's lines, then litesafe's. */
static void print_snapshot_text(cli_env *env, const ls_checkpoint_result *cr,
                                const ls_backup_result *br)
{
    char n[32];
    out_head(env, "snapshot complete [checkpoint %s]", cli_ckpt_status(cr));
    out_line(env, "checkpoint busy", "%s", cr->busy ? "yes" : "no");
    out_line(env, "wal pages", "%lld", (long long)cr->wal_pages);
    out_line(env, "checkpointed", "%lld", (long long)cr->checkpointed_pages);
    out_line(env, "destination", "%s", br->destination);
    out_line(env, "size", "%s bytes", out_commas(n, sizeof(n), br->size_bytes));
    out_line(env, "sha256", "%s", br->sha256);
    out_line(env, "elapsed", "%llu ms", (unsigned long long)(cr->elapsed_ms + br->elapsed_ms));
    out_line(env, "source", "%s", br->source);
    out_line(env, "checkpoint mode", "%s", ls_ckpt_mode_name(cr->mode));
    out_line(env, "fully checkpointed", "%s", cr->fully_checkpointed ? "yes" : "no");
    out_line(env, "WAL mode", "%s", cr->wal_mode ? "yes" : "no");
    out_line(env, "page size", "%s", out_commas(n, sizeof(n), br->page_size));
    out_line(env, "page count", "%s", out_commas(n, sizeof(n), br->page_count));
    out_line(env, "WAL frames copied", "%llu", (unsigned long long)br->wal_frames);
    out_line(env, "compact", "%s", br->compact ? "yes" : "no");
    out_line(env, "retries", "%d", br->retries);
}

int cmd_snapshot(cli_env *env, int argc, char **argv)
{
    const char *mode_s = "passive";
    long long busy = 5000;
    int compact = 0;
    const cli_opt opts[] = {
        {"mode", 'm', OPT_STR, &mode_s, "MODE",
         "checkpoint mode: passive (default), full, restart or truncate"},
        {"busy-timeout", 0, OPT_INT, &busy, "MS", "wait this long for locks (default 5000)"},
        {"compact", 0, OPT_FLAG, &compact, NULL, "copy without free pages (VACUUM INTO)"},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    char *pos[2];
    int npos, rc;
    if ((rc = cli_parse(env, USAGE,
                        "Checkpoint the WAL, then copy the database consistently to DEST (which "
                        "must not exist).\nA busy checkpoint is reported and the backup still "
                        "runs: the copy includes the WAL. A DEST-wal,\nDEST-shm or DEST-journal "
                        "(SQLite would replay it into the copy) is refused before the checkpoint.\n"
                        "(Not to be confused with `snapshots`, which lists the snapshots a "
                        "replica holds.)",
                        opts, argc, argv, pos, 2, &npos)) >= 0)
        return rc;
    if ((rc = cli_want_args(env, npos, 2, 2, USAGE)) >= 0)
        return rc;
    ls_ckpt_mode mode;
    if ((rc = cli_ckpt_args(env, mode_s, busy, &mode)) >= 0)
        return rc;
    const char *db = pos[0], *dest = pos[1];

    /* 1. DEST first: nothing may touch the source if the copy cannot be made. */
    if ((rc = check_dest(env, dest)) >= 0)
        return rc;

    /* 2. The checkpoint; busy is reported, not fatal. */
    ls_checkpoint_result cr;
    if ((rc = ls_checkpoint(env->ctx, db, mode, (int)busy, &cr)) != 0) {
        ls_checkpoint_result_free(&cr);
        return cli_fail_lib(env, rc);
    }
    if (!cr.wal_mode)
        cli_note(env, "%s: not in WAL mode; nothing to checkpoint", cr.database);
    else if (cr.busy)
        cli_note(env, "%s: checkpoint busy; the backup includes the WAL's committed frames",
                 cr.database);

    /* 3. The backup. */
    ls_backup_opts bo = {.compact = compact, .busy_timeout_ms = busy > 0 ? (int)busy : 1};
    ls_backup_result br;
    cli_progress prog;
    cli_progress_init(&prog, env, "snapshot");
    bo.progress = cli_progress_cb;
    bo.progress_ud = &prog;
    rc = ls_backup(env->ctx, db, dest, &bo, &br);
    cli_progress_done(&prog);
    if (rc != 0)
        goto cleanup;

    out_begin(env);
    if (env->json) {
        out_str(env, "command", "snapshot");
        out_obj_begin(env, "checkpoint");
        print_checkpoint_result(env, &cr);
        out_obj_end(env);
        out_obj_begin(env, "backup");
        print_backup_result(env, &br);
        out_obj_end(env);
        out_uint(env, "elapsed_ms", cr.elapsed_ms + br.elapsed_ms);
    } else {
        print_snapshot_text(env, &cr, &br);
    }
    out_end(env);

cleanup:
    ls_checkpoint_result_free(&cr);
    ls_backup_result_free(&br);
    return rc ? cli_fail_lib(env, rc) : 0;
}
