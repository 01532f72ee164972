/*
 * main.c - the litesafe command: global options and the command table.
 *
 *   litesafe [--json] [-q] COMMAND [options] [args]
 *
 * Every command is a library call with a thin layer of argument parsing and
 * printing on top (cmd_<name>.c).
 */
#include "cli.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cli_cmd {
    const char *name;    /* command name */
    const char *alias;   /* short alias, NULL if none */
    int (*run)(cli_env *env, int argc, char **argv);
    const char *summary; /* one line for the command list */
} cli_cmd;

static const cli_cmd commands[] = {
    {"backup", "bk", cmd_backup, "consistent online copy of a live database"},
    {"checkpoint", "cp", cmd_checkpoint, "run a WAL checkpoint (passive|full|restart|truncate)"},
    {"snapshot", "snap", cmd_snapshot, "checkpoint, then backup"},
    {"info", NULL, cmd_info, "inspect a database and its WAL, strictly read-only"},
    {"verify", NULL, cmd_verify, "integrity check and optional SHA-256 check of a file"},
    {"prune", NULL, cmd_prune, "retention for timestamped backups in a directory"},
    {"restore", NULL, cmd_restore, "restore a backup file to a new path or into place"},
    {"replicate", NULL, cmd_replicate, "replicate databases continuously to replicas"},
    {"generations", NULL, cmd_generations, "list the generations of a database's replicas"},
    {"snapshots", NULL, cmd_snapshots, "list the snapshots of a database's replicas"},
    {"wal", NULL, cmd_wal, "list the WAL segments of a database's replicas"},
    {"databases", NULL, cmd_databases, "list the databases in the configuration"},
    {"validate", NULL, cmd_validate, "restore a replica at the live position and compare"},
    {"status", NULL, cmd_status, "how far behind each replica of a running replicate is"},
    {"sync", NULL, cmd_sync, "wait until what is committed is on the replicas"},
    {"version", NULL, cmd_version, "print the version"},
    {NULL, NULL, NULL, NULL},
};

static ls_ctx *g_ctx;
volatile sig_atomic_t cli_stop;

volatile sig_atomic_t cli_hup;

static void on_hup(int sig)
{
    (void)sig;
    cli_hup++;
}

void cli_catch_hup(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_hup;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &sa, NULL);
}

/* Counts stop requests: `replicate` flushes at the first and stops at once at the second. */
static void on_signal(int sig)
{
    (void)sig;
    cli_stop = cli_stop < 2 ? cli_stop + 1 : 2;
    if (g_ctx)
        ls_ctx_cancel(g_ctx);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: litesafe [--json] [-q] COMMAND [options] [args]\n\n"
               "litesafe keeps SQLite databases safe.\n\ncommands:\n");
    for (const cli_cmd *c = commands; c->name; c++) {
        char left[32];
        snprintf(left, sizeof(left), "%s%s%s", c->name, c->alias ? ", " : "",
                 c->alias ? c->alias : "");
        fprintf(f, "  %-18s %s\n", left, c->summary);
    }
    fprintf(f, "\nRun 'litesafe COMMAND --help' for a command's options.\n"
               "Exit codes: 0 success, 1 runtime failure, 2 usage error.\n");
}

/*
 * A password in a URL argument (sftp://user:secret@host/...) would show in
 * `ps` and /proc/PID/cmdline for as long as the replicator runs. The command
 * works on private copies of the arguments; the originals, which are what
 * `ps` shows, get the password overwritten with 'x'. The copies are freed at
 * exit.
 */
static char **hidden_argv;

static void free_hidden_argv(void)
{
    for (size_t i = 0; hidden_argv && hidden_argv[i]; i++)
        free(hidden_argv[i]);
    free(hidden_argv);
    hidden_argv = NULL;
}

static char **hide_secrets(int argc, char **argv)
{
    hidden_argv = calloc((size_t)argc + 1, sizeof(char *));
    if (!hidden_argv)
        return argv;
    atexit(free_hidden_argv);
    for (int i = 0; i < argc; i++) {
        if (!(hidden_argv[i] = strdup(argv[i])))
            return argv;
        char *auth = strstr(argv[i], "://");
        if (!auth)
            continue;
        auth += 3;
        char *at = auth + strcspn(auth, "/@");
        char *colon = *at == '@' ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon)
            memset(colon + 1, 'x', (size_t)(at - colon - 1));
    }
    return hidden_argv;
}

int main(int argc, char **argv)
{
    argv = hide_secrets(argc, argv);
    cli_env env;
    memset(&env, 0, sizeof(env));
    int i = 1;
    /* Global options before the command. */
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i] + (argv[i][1] == '-' ? 2 : 1);
        if (strcmp(a, "json") == 0)
            env.json = 1;
        else if (strcmp(a, "q") == 0 || strcmp(a, "quiet") == 0)
            env.quiet = 1;
        else if (strcmp(a, "h") == 0 || strcmp(a, "help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "version") == 0) {
            printf("litesafe %s\n", ls_version());
            return 0;
        } else {
            return cli_fail(&env, LS_EUSAGE, "unknown option '%s' (see --help)", argv[i]);
        }
    }
    if (i >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[i], "help") == 0) {
        usage(stdout);
        return 0;
    }
    const cli_cmd *cmd = NULL;
    for (const cli_cmd *c = commands; c->name; c++)
        if (strcmp(argv[i], c->name) == 0 || (c->alias && strcmp(argv[i], c->alias) == 0))
            cmd = c;
    if (!cmd)
        return cli_fail(&env, LS_EUSAGE, "unknown command '%s' (see litesafe --help)", argv[i]);
    env.cmd = cmd->name;
    /* Global state of libcurl/libssh2, before any thread exists. */
    if (ls_library_init() != 0)
        return cli_fail(&env, LS_EIO, "cannot initialise libcurl and libssh2");
    if (ls_ctx_new(&env.ctx) != 0) {
        ls_library_shutdown();
        return cli_fail(&env, LS_ENOMEM, "out of memory");
    }
    g_ctx = env.ctx;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    ls_ctx_set_log(env.ctx, cli_log, NULL, LS_LOG_WARN);
    int rc = cmd->run(&env, argc - i, argv + i);
    g_ctx = NULL;
    ls_ctx_free(env.ctx);
    ls_library_shutdown();
    return rc;
}
