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
 * cli_daemon_close), one replicator per database, and log each replica.
 * config_path is what it was read from (NULL for URLs).
 * Returns the exit code of a failure after printing it, or -1 with *out set.
 */
int cli_daemon_start(cli_env *env, ls_config *cfg, const char *config_path, cli_daemon **out);
/*
 * How cli_daemon_reload reads the configuration file again: no_expand_env
 * as at start; log_level is the -log-level option (wins over the file's
 * logging.level), NULL if none.
 */
void cli_daemon_set_reload(cli_daemon *d, int no_expand_env, const char *log_level);
/*
 * SIGHUP (main thread only; see RELOAD in daemon.c): reopen the log file,
 * then read the configuration file again and apply it: databases added
 * start, removed ones stop flushed, changed ones restart, unchanged ones run
 * on untouched; logging: applied. 0, or an LS_E* code once the rejection is
 * logged (everything kept as it was). A removed or changed database flushes
 * before this returns (at most shutdown-timeout).
 */
int cli_daemon_reload(cli_daemon *d);
/* Until every database had its first attach attempt, at most ms. */
void cli_daemon_wait_started(cli_daemon *d, int64_t ms);
/* 1 while replication runs (0 once it ended on its own). */
int cli_daemon_running(cli_daemon *d);
/*
 * The final flush of every database at once (within one shutdown-timeout; a
 * second signal, cli_stop >= 2, cuts it short) and the end of every thread.
 * 0, or an LS_E* code with the message in cli_daemon_errmsg.
 */
int cli_daemon_stop(cli_daemon *d);
/* What the failed cli_daemon_stop reports (valid until cli_daemon_close). */
const char *cli_daemon_errmsg(const cli_daemon *d);
/* Free everything (stopping at once if still running); NULL is a no-op. */
void cli_daemon_close(cli_daemon *d);

/* Called once per group of replicas (one database's, or more), with a status array
 * valid only during the call. */
typedef void (*cli_status_fn)(void *ud, const ls_replica_status *st, size_t n);

/*
 * Every replica's state: fn is called once per database (its replicas),
 * while the set of databases cannot change (a reload waits). 0, or an LS_E*
 * code (LS_ENOMEM only).
 */
int cli_daemon_status(cli_daemon *d, ls_ctx *ctx, cli_status_fn fn, void *ud);

/*
 * The barrier of ls_replicator_sync_db over the database `db` (NULL: all,
 * one after the other within timeout_ms), with flags LS_SYNC_*; errors on
 * ctx (LS_ENOENT: not one of the databases). A reload does not wait for it;
 * a database that a reload stops meanwhile answers LS_ECANCEL.
 */
int cli_daemon_sync(cli_daemon *d, ls_ctx *ctx, const char *db, unsigned flags,
                    int64_t timeout_ms);

/* What the daemon runs: its configuration file ("<args>" for URLs), start time, pid. */
const char *cli_daemon_config_path(const cli_daemon *d);
int64_t cli_daemon_started_ms(const cli_daemon *d); /* unix ms */

#endif
