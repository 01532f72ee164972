/*
 * control.h - the control socket of `litesafe replicate`, and its client
 * (`litesafe status`, `litesafe sync`).
 *
 * PROTOCOL. A Unix stream socket (mode socket.permissions, 0600 by
 * default: the file mode is the access control). Each message is one line
 * of JSON, JSON-RPC 2.0 in shape; a connection may send several requests,
 * one at a time, each answered by one line:
 *
 *   -> {"jsonrpc":"2.0","id":1,"method":"status","params":{"db":"/data/app.db"}}
 *   <- {"jsonrpc":"2.0","id":1,"result":{"databases":[...]}}
 *   <- {"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"...","data":{"ls_code":-6}}}
 *
 * Methods (params are optional unless said):
 *   info                 version, pid, config, socket, start time, databases
 *   list (or databases)  the databases and their replicas' names and types
 *   status   {db}        per database and replica: positions, lag, sizes,
 *                        cadence, requests, last error (docs: README,
 *                        "Operating litesafe")
 *   sync     {db, timeout_ms (default 30000), wait (default true),
 *             hurry (default false)}
 *                        the barrier of ls_replicator_sync_db: with wait,
 *                        answers once every commit made before the request
 *                        is on every replica; without, once it is in the
 *                        local spool. Never changes data.
 * Nothing else is accepted: an unknown method is error -32601. Requests are
 * at most 64 KiB; a client that sends nothing for 10 s is dropped; at most
 * 16 connections are served at once.
 */
#ifndef LS_CLI_CONTROL_H
#define LS_CLI_CONTROL_H

#include "daemon.h"

#include <jansson.h>

typedef struct cli_control cli_control;

/*
 * Listen on `path` (created with `mode`; missing parent directories are
 * made) for daemon d, logging on ctx. A stale socket file (nobody listens)
 * is replaced; a socket another process answers on is left alone. When
 * the socket cannot be used, the reason is logged and *out is NULL:
 * replication goes on without it.
 */
void cli_control_start(cli_daemon *d, ls_ctx *ctx, const char *path, int mode,
                       cli_control **out);
/* Stop listening, end the connections, remove the socket file. NULL is a no-op. */
void cli_control_stop(cli_control *c);

/*
 * Client: send one request (params may be NULL; borrowed) to
 * the socket at path and wait up to timeout_ms for the answer. 0 with
 * *result (a new reference); LS_ENOENT when no daemon listens there; the
 * daemon's own error (its LS_E* code and message) on ctx otherwise.
 */
int cli_control_call(ls_ctx *ctx, const char *path, const char *method, json_t *params,
                     int64_t timeout_ms, json_t **result);

/*
 * The socket of a client command: -socket if given; else the socket of the
 * configuration (-config, or the default one when it exists and holds db);
 * else, with db, the one a `replicate DB URL` of it listens on. Returns -1
 * to go on with path filled, or the exit code after printing an error.
 * *cfg receives the configuration when one was read (else NULL; the caller
 * frees it).
 */
int cli_control_path(cli_env *env, const char *sock, const char *config, int no_expand,
                     const char *db, char *path, size_t n, ls_config **cfg);

/*
 * The two ends of one exchange without a socket (control.c uses them; the
 * fuzzer tests/fuzz/fuzz_control.c calls them directly). The daemon's
 * answer to one request line (without its newline) as the socket at `path`
 * gives it: a malloc'd line with its newline, NULL when out of memory.
 */
char *cli_control_answer(cli_daemon *d, ls_ctx *ctx, const char *path, const char *line);
/*
 * The client's reading of an answer line from the socket at `path`: 0 with
 * *result (a new reference), or the daemon's error (its LS_E* code and
 * message) on ctx, LS_EIO when the line is no answer.
 */
int cli_control_parse_answer(ls_ctx *ctx, const char *path, const char *line, json_t **result);

#endif
