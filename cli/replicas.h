/*
 * replicas.h - how the replica commands (restore, generations, snapshots,
 * wal, validate) find their replicas: a replica URL, or a database path
 * looked up in the configuration, optionally narrowed with -replica NAME.
 */
#ifndef LS_CLI_REPLICAS_H
#define LS_CLI_REPLICAS_H

#include "cli.h"
#include "catalog.h"
#include "config.h"

#define CLI_MAX_REPLICAS 32

typedef struct cli_target {
    ls_config *cfg;                         /* owned */
    ls_db_cfg *db;                          /* the database entry; its path is "" for a URL */
    int is_url;                             /* the argument was a replica URL */
    ls_replica_cfg *reps[CLI_MAX_REPLICAS]; /* the replicas selected */
    size_t n;
} cli_target;

/*
 * Resolve `arg`. Returns -1 on success (go on), or the exit code after
 * printing the error.
 */
int cli_target_open(cli_env *env, const char *config, int no_expand, const char *replica,
                    const char *arg, cli_target *t);
void cli_target_free(cli_target *t);
/* RFC 3339 UTC time of unix milliseconds into buf (at least 32 bytes). */
void cli_rfc3339(int64_t ms, char *buf, size_t n);
/* Parse RFC 3339 ("2026-01-02T03:04:05Z", fractional seconds and offsets allowed). */
int cli_parse_rfc3339(const char *s, int64_t *ms);

/* Open replica i of the target and list it (only `gen` when not NULL). */
int cli_target_catalog(cli_env *env, cli_target *t, size_t i, const char *gen, ls_storage **st,
                       ls_catalog *cat);

#endif
