/*
 * cmd_checkpoint.c - `litesafe checkpoint DB` (alias `cp`): run a WAL
 * checkpoint in passive, full, restart or truncate mode.
 *
 * A busy checkpoint (a reader or writer kept it from finishing within the
 * busy timeout) is a result, not a failure: exit 0 with "busy": true. A
 * database not in WAL mode is also exit 0: nothing to checkpoint (0 of 0
 * pages, fully checkpointed), wal_mode false and a note.
 *
 * The output is sqlite-checkpoint's, plus litesafe's extra keys:
 *   JSON  {"command": "checkpoint", "mode": "PASSIVE", "busy", "wal_pages",
 *          "checkpointed_pages", "fully_checkpointed", "database",
 *          "elapsed_ms", then "wal_mode"}
 *   text  checkpoint PASSIVE [ok|partial|busy]
 *           busy:               no
 *           wal pages:          12
 *           checkpointed:       12
 *           elapsed:            3 ms
 *         then litesafe's fields in the same layout.
 * Also home of print_checkpoint_result() and cli_ckpt_status(), which
 * snapshot shares.
 */
#include "cli.h"

static const char USAGE[] = "checkpoint DB [-m passive|full|restart|truncate] [--busy-timeout MS]";

void print_checkpoint_result(cli_env *env, const ls_checkpoint_result *r)
{
    out_str(env, "mode", ls_ckpt_mode_name(r->mode));
    out_bool(env, "busy", r->busy);
    out_int(env, "wal_pages", r->wal_pages);
    out_int(env, "checkpointed_pages", r->checkpointed_pages);
    out_bool(env, "fully_checkpointed", r->fully_checkpointed);
    out_str(env, "database", r->database);
    out_uint(env, "elapsed_ms", r->elapsed_ms);
    out_bool(env, "wal_mode", r->wal_mode);
}

const char *cli_ckpt_status(const ls_checkpoint_result *r)
{
    return r->busy ? "busy" : r->fully_checkpointed ? "ok" : "partial";
}

/* The text form: sqlite-checkpoint's lines, then litesafe's. */
static void print_checkpoint_text(cli_env *env, const ls_checkpoint_result *r)
{
    out_head(env, "checkpoint %s [%s]", ls_ckpt_mode_name(r->mode), cli_ckpt_status(r));
    out_line(env, "busy", "%s", r->busy ? "yes" : "no");
    out_line(env, "wal pages", "%lld", (long long)r->wal_pages);
    out_line(env, "checkpointed", "%lld", (long long)r->checkpointed_pages);
    out_line(env, "elapsed", "%llu ms", (unsigned long long)r->elapsed_ms);
    out_line(env, "database", "%s", r->database);
    out_line(env, "fully checkpointed", "%s", r->fully_checkpointed ? "yes" : "no");
    out_line(env, "WAL mode", "%s", r->wal_mode ? "yes" : "no");
}

int cli_ckpt_args(cli_env *env, const char *mode_s, long long busy, ls_ckpt_mode *mode)
{
    if (ls_ckpt_mode_parse(mode_s, mode) != 0)
        return cli_fail(env, LS_EUSAGE,
                        "--mode: unknown mode '%s' (passive, full, restart or truncate)", mode_s);
    if (busy < 0 || busy > 86400000)
        return cli_fail(env, LS_EUSAGE, "--busy-timeout: out of range (0 to 86400000 ms)");
    return -1;
}

int cmd_checkpoint(cli_env *env, int argc, char **argv)
{
    const char *mode_s = "passive";
    long long busy = 5000;
    const cli_opt opts[] = {
        {"mode", 'm', OPT_STR, &mode_s, "MODE",
         "passive (default), full, restart or truncate; any case"},
        {"busy-timeout", 0, OPT_INT, &busy, "MS",
         "wait this long for readers and writers (default 5000)"},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    char *pos[1];
    int npos, rc;
    if ((rc = cli_parse(env, USAGE,
                        "Copy the WAL's frames back into the database file. passive never "
                        "waits; full waits for\nwriters and readers; restart also makes the next "
                        "writer start the WAL afresh;\ntruncate also cuts the -wal file to zero "
                        "bytes. Waiting stops after the busy timeout\nand the result then says "
                        "busy (exit 0).",
                        opts, argc, argv, pos, 1, &npos)) >= 0)
        return rc;
    if ((rc = cli_want_args(env, npos, 1, 1, USAGE)) >= 0)
        return rc;
    ls_ckpt_mode mode;
    if ((rc = cli_ckpt_args(env, mode_s, busy, &mode)) >= 0)
        return rc;

    ls_checkpoint_result res;
    if ((rc = ls_checkpoint(env->ctx, pos[0], mode, (int)busy, &res)) != 0) {
        ls_checkpoint_result_free(&res);
        return cli_fail_lib(env, rc);
    }
    if (!res.wal_mode)
        cli_note(env, "%s: not in WAL mode; nothing to checkpoint", res.database);
    else if (res.busy && res.wal_pages < 0)
        cli_note(env, "%s: checkpoint busy: could not start within the busy timeout",
                 res.database);
    else if (res.busy)
        cli_note(env, "%s: checkpoint busy: %lld of %lld WAL frames checkpointed", res.database,
                 (long long)res.checkpointed_pages, (long long)res.wal_pages);
    out_begin(env);
    if (env->json) {
        out_str(env, "command", "checkpoint");
        print_checkpoint_result(env, &res);
    } else {
        print_checkpoint_text(env, &res);
    }
    out_end(env);
    ls_checkpoint_result_free(&res);
    return 0;
}
