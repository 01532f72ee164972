/*
 * fuzz_cli_opts.c - the command line on any bytes: the input split at NUL
 * bytes is the argument list after the command name, parsed by every
 * command's own option table (cli_parse through cmd_<name>, stopped once the
 * options are parsed: cli_parse_only), and each word given to the value
 * parsers the commands use after parsing (durations, RFC 3339 times,
 * checkpoint modes, log levels). No command runs.
 *
 * main.c is not linked (libFuzzer has the main()); its commands are listed
 * here, and its signal flags defined.
 */
#include "fuzz_files.h"

#include "cli.h"

#include <string.h>

volatile sig_atomic_t cli_stop;
volatile sig_atomic_t cli_hup;

void cli_catch_hup(void)
{
}

#define MAX_WORDS 64

static const struct {
    const char *name;
    int (*run)(cli_env *env, int argc, char **argv);
} commands[] = {
    {"backup", cmd_backup},
    {"checkpoint", cmd_checkpoint},
    {"snapshot", cmd_snapshot},
    {"info", cmd_info},
    {"verify", cmd_verify},
    {"prune", cmd_prune},
    {"restore", cmd_restore},
    {"replicate", cmd_replicate},
    {"generations", cmd_generations},
    {"snapshots", cmd_snapshots},
    {"wal", cmd_wal},
    {"databases", cmd_databases},
    {"validate", cmd_validate},
    {"status", cmd_status},
    {"sync", cmd_sync},
    {"version", cmd_version},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int once;
    ls_ctx *ctx = fuzz_ctx();
    if (!ctx)
        return 0;
    if (!once) {
        /* Help and error messages go nowhere (libFuzzer keeps its own stderr). */
        FILE *null = fopen("/dev/null", "w");
        if (!null)
            return 0;
        stdout = stderr = null;
        cli_parse_only = 1;
        once = 1;
    }

    /* The words: a copy of the input, NUL-terminated, cut at each NUL. */
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[MAX_WORDS + 2];
    int argc = 1;
    for (size_t off = 0; off < size && argc <= MAX_WORDS; off += strlen(buf + off) + 1)
        argv[argc++] = buf + off;
    argv[argc] = NULL;

    cli_env env;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        memset(&env, 0, sizeof(env));
        env.ctx = ctx;
        env.cmd = commands[i].name;
        argv[0] = (char *)commands[i].name;
        commands[i].run(&env, argc, argv);
    }

    /* The value parsers, on every word. */
    memset(&env, 0, sizeof(env));
    env.ctx = ctx;
    env.cmd = "checkpoint";
    for (int i = 1; i < argc; i++) {
        int64_t ms;
        ls_ckpt_mode mode;
        ls_duration_parse(argv[i], &ms);
        cli_parse_rfc3339(argv[i], &ms);
        cli_log_level_parse(argv[i]);
        cli_ckpt_args(&env, argv[i], i, &mode);
    }
    ls_err_clear(ctx);
    free(buf);
    return 0;
}
