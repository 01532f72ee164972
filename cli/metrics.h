/*
 * metrics.h - replicate's metrics and health listener (the config's addr:):
 * Prometheus text on /metrics, a health check on /healthz, nothing else.
 * See metrics.c for the addresses, the metric names and the health rules.
 *
 * Two steps, so that a port already in use stops `replicate` before any
 * replication starts: cli_metrics_open binds, cli_metrics_serve starts the
 * listener's thread once the daemon runs.
 */
#ifndef LS_CLI_METRICS_H
#define LS_CLI_METRICS_H

#include "daemon.h"

typedef struct cli_metrics cli_metrics;

/*
 * Bind addr ("HOST:PORT", ":PORT" for 127.0.0.1, "[IPV6]:PORT"). Returns
 * -1 with *out set, or the exit code after printing the failure: EXIT_USAGE
 * for an address that does not parse, EXIT_RUNTIME when it cannot be bound
 * (in use, not a local address, permission).
 */
int cli_metrics_open(cli_env *env, const char *addr, cli_metrics **out);
/*
 * Serve /metrics and /healthz from d, in a thread of the listener's own;
 * /healthz fails past max_lag_ms of replica lag. Logs at `level` and above
 * through cli_log. -1, or the exit code after printing the failure.
 */
int cli_metrics_serve(cli_metrics *m, cli_daemon *d, int64_t max_lag_ms, int level);
/* Stop serving (waits for the request in progress) and free; NULL is a no-op. */
void cli_metrics_close(cli_metrics *m);

#endif
