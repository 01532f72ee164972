/*
 * cmd_replicate.c - `litesafe replicate`: continuous replication.
 *
 *   litesafe replicate [-config PATH] [-no-expand-env] [-exec CMD]
 *   litesafe replicate [-exec CMD] DB URL [URL...]
 *
 * Runs in the foreground until SIGINT/SIGTERM, then ships what is committed
 * to every replica (waiting up to shutdown-timeout through transient errors)
 * and exits 0, or 1 naming the replicas that did not get it. A second signal
 * stops at once. With -exec, the command runs as a child once every database
 * had its first look (so it never writes before replication has started on a
 * database that exists), signals are forwarded to it, and litesafe exits with
 * its status after the final flush (1 if the flush failed).
 *
 * Once the configuration is accepted, nothing about one database or replica
 * ends the command (see STAYING UP in src/replication/replicate.c).
 */
#include "cli.h"

#include "config.h"
#include "replicate.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char USAGE[] = "replicate [-config PATH] [-no-expand-env] [-exec CMD] [DB URL...]";

static int log_level_parse(const char *s)
{
    if (!s || !strcasecmp(s, "info"))
        return LS_LOG_INFO;
    if (!strcasecmp(s, "debug"))
        return LS_LOG_DEBUG;
    if (!strcasecmp(s, "warn") || !strcasecmp(s, "warning"))
        return LS_LOG_WARN;
    if (!strcasecmp(s, "error"))
        return LS_LOG_ERROR;
    return -1;
}

typedef struct run_arg {
    ls_engine *e;
    volatile sig_atomic_t stop;
    volatile sig_atomic_t done;     /* the engine returned (a failure at start) */
    int rc;
} run_arg;

static void *engine_thread(void *p)
{
    run_arg *a = p;
    a->rc = ls_engine_run(a->e, &a->stop);
    __atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static pid_t spawn(cli_env *env, const char *cmd)
{
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    if (pid < 0)
        cli_fail(env, LS_ERROR, "-exec: fork: %s", strerror(errno));
    return pid;
}

int cmd_replicate(cli_env *env, int argc, char **argv)
{
    const char *config = NULL, *exec_cmd = NULL, *log_level = NULL;
    int no_expand = 0;
    const cli_opt opts[] = {
        {"config", 0, OPT_STR, &config, "PATH", "configuration file (default $LITESAFE_CONFIG "
                                                  "or /etc/litesafe.yml)"},
        {"no-expand-env", 0, OPT_FLAG, &no_expand, NULL, "do not expand $VAR in the config"},
        {"exec", 0, OPT_STR, &exec_cmd, "CMD", "run CMD as a child; exit with its status"},
        {"log-level", 0, OPT_STR, &log_level, "LEVEL", "debug|info|warn|error (default info)"},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    char *pos[64];
    int npos, rc;
    ls_config *cfg = NULL;
    ls_engine *e = NULL;

    if ((rc = cli_parse(env, USAGE,
                        "Replicate databases continuously to file, s3, sftp or abs replicas, in the "
                        "Litestream 0.3\nlayout. Runs until SIGINT/SIGTERM, then ships every "
                        "committed transaction to\nevery replica (retrying for up to "
                        "shutdown-timeout, default 30s) and exits 0, or 1\nnaming what is "
                        "missing; a second signal stops at once. A database or replica that\n"
                        "fails (missing, not a database, not in WAL mode, credentials, bucket, "
                        "host) is\nlogged once and retried; only a bad config stops it (exit 2).",
                        opts, argc, argv, pos, 64, &npos)) >= 0)
        return rc;
    if (npos == 1)
        return cli_fail(env, LS_EUSAGE, "must specify at least one replica URL for %s", pos[0]);
    if (npos > 1 && config)
        return cli_fail(env, LS_EUSAGE, "cannot specify a replica URL and -config together");
    if (npos > 1)
        rc = ls_config_from_urls(env->ctx, pos[0], (const char *const *)pos + 1,
                                 (size_t)npos - 1, &cfg);
    else
        rc = ls_config_load(env->ctx, config ? config : ls_config_default_path(), !no_expand,
                            &cfg);
    if (rc)
        return cli_fail_lib(env, rc);
    if ((rc = ls_config_apply_defaults(env->ctx, cfg)) != 0) {
        ls_config_free(cfg);
        return cli_fail_lib(env, rc);
    }
    if (!exec_cmd && cfg->exec)
        exec_cmd = cfg->exec;
    int level = log_level_parse(log_level ? log_level : cfg->log_level);
    if (level < 0) {
        ls_config_free(cfg);
        return cli_fail(env, LS_EUSAGE, "invalid log level '%s'",
                        log_level ? log_level : cfg->log_level);
    }
    ls_ctx_set_log(env->ctx, cli_log, NULL, level);
    cli_log_set_json(cfg->log_type && !strcmp(cfg->log_type, "json"));
    if (cfg->addr)
        ls_log(env->ctx, LS_LOG_WARN, "metrics endpoint not supported, ignored addr=%s", cfg->addr);

    if ((rc = ls_engine_new(env->ctx, cfg, &e)) != 0) {
        ls_config_free(cfg);
        return cli_fail_lib(env, rc);
    }
    ls_engine_set_shutdown_timeout(e, cfg->shutdown_timeout_ms);
    for (size_t i = 0; i < cfg->n_dbs; i++)
        for (size_t j = 0; j < cfg->dbs[i].n_replicas; j++)
            ls_log(env->ctx, LS_LOG_INFO, "replicating db=%s replica=%s type=%s", cfg->dbs[i].path,
                   cfg->dbs[i].replicas[j].name, cfg->dbs[i].replicas[j].type);

    run_arg ra = {e, 0, 0, 0};
    pthread_t th;
    if (pthread_create(&th, NULL, engine_thread, &ra) != 0) {
        ls_engine_free(e);
        ls_config_free(cfg);
        return cli_fail(env, LS_ERROR, "cannot start the replication thread");
    }
    if (exec_cmd)
        ls_engine_wait_tried(e, 10000);
    pid_t child = exec_cmd && !cli_stop ? spawn(env, exec_cmd) : 0;
    int status = 0, child_done = child <= 0, forwarded = 0;
    /* Until a signal, the -exec child's exit, or the engine's own end. */
    for (;;) {
        int engine_done = __atomic_load_n(&ra.done, __ATOMIC_ACQUIRE);
        int want = cli_stop ? cli_stop : engine_done; /* SIGTERMs the child should have had */
        if (child > 0 && !child_done && want > forwarded) {
            kill(child, SIGTERM);
            forwarded = want;
        }
        if (child > 0 && !child_done && waitpid(child, &status, WNOHANG) == child)
            child_done = 1;
        if (exec_cmd && child > 0 ? child_done : (cli_stop || engine_done))
            break;
        usleep(20000);
    }
    /* The final flush; a second signal cuts it short. */
    ra.stop = cli_stop >= 2 ? 2 : 1;
    while (!__atomic_load_n(&ra.done, __ATOMIC_ACQUIRE)) {
        if (cli_stop >= 2)
            ra.stop = 2;
        usleep(20000);
    }
    pthread_join(th, NULL);
    ls_engine_free(e);
    ls_config_free(cfg);
    if (ra.rc)
        return cli_fail_lib(env, ra.rc);
    if (exec_cmd) {
        if (child < 0)
            return EXIT_RUNTIME;
        if (WIFEXITED(status))
            return WEXITSTATUS(status);
        return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    }
    return 0;
}
