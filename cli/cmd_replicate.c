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
 * its status after the final flush (1 if the flush failed). SIGHUP reopens
 * the log file and reloads the configuration file (RELOAD in daemon.c).
 *
 * Once the configuration is accepted, nothing about one database or replica
 * ends the command (see STAYING UP in src/replication/engine.c).
 */
#include "control.h"
#include "metrics.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char USAGE[] = "replicate [-config PATH] [-no-expand-env] [-exec CMD] [DB URL...]";

/*
 * Run until a signal, the -exec child's exit, or the replicator's own end,
 * forwarding each SIGTERM/SIGINT (and the replicator's end) to the child as
 * a SIGTERM, and reloading on SIGHUP (not forwarded: the child's own
 * SIGHUP means something else). *status is the child's wait status once it
 * exited.
 */
static void supervise(cli_daemon *d, pid_t child, int *status)
{
    int child_done = child <= 0, forwarded = 0;
    sig_atomic_t hups = 0;
    for (;;) {
        if (cli_hup != hups && !cli_stop) { /* SIGHUPs coalesce into one reload */
            hups = cli_hup;
            cli_daemon_reload(d);
        }
        int engine_done = !cli_daemon_running(d);
        int want = cli_stop ? cli_stop : engine_done; /* SIGTERMs the child should have had */
        if (!child_done && want > forwarded) {
            kill(child, SIGTERM);
            forwarded = want;
        }
        if (!child_done && waitpid(child, status, WNOHANG) == child)
            child_done = 1;
        if (child > 0 ? child_done : (cli_stop || engine_done))
            return;
        usleep(20000);
    }
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
    cli_daemon *d = NULL;
    cli_metrics *m = NULL;

    if ((rc = cli_parse(env, USAGE,
                        "Replicate databases continuously to file, s3, sftp or abs replicas, in the "
                        "Litestream 0.3\nlayout. Runs until SIGINT/SIGTERM, then ships every "
                        "committed transaction to\nevery replica (retrying for up to "
                        "shutdown-timeout, default 30s) and exits 0, or 1\nnaming what is "
                        "missing; a second signal stops at once. A database or replica that\n"
                        "fails (missing, not a database, not in WAL mode, credentials, bucket, "
                        "host) is\nlogged once and retried; only a bad config stops it (exit 2). "
                        "SIGHUP reopens the\nlog file and reloads the config file (a bad one is "
                        "logged and ignored).",
                        opts, argc, argv, pos, 64, &npos)) >= 0)
        return rc;
    cli_catch_hup();
    if (npos == 1)
        return cli_fail(env, LS_EUSAGE, "must specify at least one replica URL for %s", pos[0]);
    if (npos > 1 && config)
        return cli_fail(env, LS_EUSAGE, "cannot specify a replica URL and -config together");
    if (npos > 1)
        rc = ls_config_open_urls(env->ctx, pos[0], (const char *const *)pos + 1,
                                 (size_t)npos - 1, &cfg);
    else
        rc = ls_config_open(env->ctx, config ? config : ls_config_default_path(), no_expand,
                            &cfg);
    if (rc)
        return cli_fail_lib(env, rc);
    if (!exec_cmd && ls_config_exec(cfg))
        exec_cmd = ls_config_exec(cfg); /* borrowed: spawned before any reload frees cfg */
    char err[1024];
    if ((rc = cli_log_from_config(cfg, log_level, err, sizeof(err))) != 0) {
        rc = cli_fail(env, rc, "%s", err);
        ls_config_free(cfg);
        return rc;
    }
    /* Every event reaches the sink, which filters: a reload may change the level. */
    ls_ctx_set_log(env->ctx, cli_log, NULL, LS_LOG_DEBUG);
    /* The metrics listener binds first: an address in use stops us before anything runs. */
    int64_t max_lag_ms = ls_config_health_max_lag_ms(cfg);
    if (ls_config_addr(cfg) && (rc = cli_metrics_open(env, ls_config_addr(cfg), &m)) >= 0) {
        ls_config_free(cfg);
        return rc;
    }

    if ((rc = cli_daemon_start(env, cfg, npos > 1 ? NULL : config ? config
                                                      : ls_config_default_path(), &d)) >= 0) {
        cli_metrics_close(m);
        return rc;
    }
    /* cfg now belongs to the daemon (a reload replaces it): read what is needed now */
    cli_daemon_set_reload(d, no_expand, log_level);
    if (m && (rc = cli_metrics_serve(m, d, max_lag_ms, LS_LOG_DEBUG)) >= 0) {
        cli_metrics_close(m);
        cli_daemon_close(d);
        return rc;
    }
    /* The control socket (status, sync); replication goes on without it if it cannot be had. */
    cli_control *ctl = NULL;
    char sock[4096];
    if (ls_config_socket(cfg, sock, sizeof(sock)) == 0)
        cli_control_start(d, env->ctx, sock, ls_config_socket_mode(cfg), &ctl);
    if (exec_cmd)
        cli_daemon_wait_started(d, 10000);
    int status = 0;
    pid_t child = exec_cmd && !cli_stop ? spawn(env, exec_cmd) : 0;
    supervise(d, child, &status);
    /* The final flush; a second signal cuts it short. */
    if ((rc = cli_daemon_stop(d)) != 0)
        rc = cli_fail(env, rc, "%s", cli_daemon_errmsg(d));
    cli_control_stop(ctl); /* after the stop: a sync in progress ends with it */
    cli_metrics_close(m);  /* served through the final flush */
    cli_daemon_close(d);
    if (rc)
        return rc;
    if (exec_cmd) {
        if (child < 0)
            return EXIT_RUNTIME;
        if (WIFEXITED(status))
            return WEXITSTATUS(status);
        return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    }
    return 0;
}
