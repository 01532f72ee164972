/*
 * daemon.h - the running `litesafe replicate`, as its services see it: the
 * control socket (control.c), the metrics and health listener (metrics.c)
 * and the reload on SIGHUP (daemon.c).
 *
 * Threads: cli_daemon_status and cli_daemon_sync may be called from any
 * thread while the daemon runs, concurrently with each other and with a
 * reload; they never block the replication threads.
 */
#ifndef LS_CLI_DAEMON_H
#define LS_CLI_DAEMON_H

#include "cli.h"

typedef struct cli_daemon cli_daemon;

/*
 * Start replicating every database of cfg (taken over: freed by
 * cli_daemon_close). config_path is what it was read from (NULL for URLs).
 * Returns the exit code of a failure after printing it, or -1 with *out set.
 */
int cli_daemon_start(cli_env *env, ls_config *cfg, const char *config_path, cli_daemon **out);
/* Until every database had its first attach attempt, at most ms. */
void cli_daemon_wait_started(cli_daemon *d, int64_t ms);
/* 1 while replication runs (0 once it ended on its own). */
int cli_daemon_running(cli_daemon *d);
/*
 * The final flush (shutdown-timeout; a second signal, cli_stop >= 2, cuts it
 * short) and the end of every thread. 0, or an LS_E* code with the message
 * on env->ctx.
 */
int cli_daemon_stop(cli_daemon *d);
/* Free everything (stopping at once if still running); NULL is a no-op. */
void cli_daemon_close(cli_daemon *d);

/* Called once per group of replicas (one database's, or more), with a status array
 * valid only during the call. */
typedef void (*cli_status_fn)(void *ud, const ls_replica_status *st, size_t n);

/*
 * Every replica's state: fn is called for each group while the set of
 * databases cannot change. 0, or an LS_E* code with the message on ctx.
 */
int cli_daemon_status(cli_daemon *d, ls_ctx *ctx, cli_status_fn fn, void *ud);

/*
 * The barrier of ls_replicator_sync_db over the database `db` (NULL: all),
 * with flags LS_SYNC_*; errors on ctx.
 */
int cli_daemon_sync(cli_daemon *d, ls_ctx *ctx, const char *db, unsigned flags,
                    int64_t timeout_ms);

/* What the daemon runs: its configuration file ("<args>" for URLs), start time, pid. */
const char *cli_daemon_config_path(const cli_daemon *d);
int64_t cli_daemon_started_ms(const cli_daemon *d); /* unix ms */

#endif
