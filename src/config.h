/*
 * config.h - the replication configuration: Litestream 0.3's YAML keys, with
 * unknown keys refused (a typo must not silently disable a setting), $VAR and
 * ${VAR} expansion, durations in Go syntax plus d/w.
 *
 * Values not given in the file are -1 (numbers/durations/flags) or NULL
 * (strings) after parsing; ls_config_apply_defaults() fills Litestream's
 * defaults where litesafe keeps them (see config.c for the table).
 */
#ifndef LS_CONFIG_H
#define LS_CONFIG_H

#include "internal.h"

#include <stddef.h>
#include <stdint.h>

/* One replica of one database (dbs[].replicas[]). */
typedef struct ls_replica_cfg {
    char *name;                      /* name; default: the type */
    char *type;                      /* file|s3|gcs|abs|sftp; default from url, else file */
    char *url;                       /* replica URL (exclusive with path/bucket/host) */
    char *path;                      /* file: directory; others: prefix in the bucket/host */
    /* s3 / gcs */
    char *bucket, *region, *endpoint;
    int force_path_style;            /* -1 unset */
    int skip_verify;                 /* -1 unset */
    char *ca_file;                   /* litesafe: CA bundle for TLS */
    char *access_key_id, *secret_access_key, *session_token;
    /* sftp */
    char *host, *user, *password, *key_path;
    char *known_hosts, *host_key;    /* litesafe: host key verification */
    /* abs */
    char *account_name, *account_key;
    /* timing, milliseconds; -1 unset */
    int64_t retention_ms;            /* 24h */
    int64_t retention_check_interval_ms; /* 1h, capped at retention */
    int64_t snapshot_interval_ms;    /* 0: snapshots only at generation start / retention */
    int64_t sync_interval_ms;        /* litesafe default 0: ship as soon as committed */
    int64_t validation_interval_ms;  /* 0: off */
    /* age encryption */
    char **age_identities;
    size_t n_age_identities;
    char **age_recipients;
    size_t n_age_recipients;
    int line;                        /* line in the config file, for messages */
} ls_replica_cfg;

/* One database (dbs[]). */
typedef struct ls_db_cfg {
    char *path;                      /* absolute path of the database (~ expanded) */
    char *meta_path;                 /* default <dir>/.<name>-litesafe */
    int64_t monitor_interval_ms;     /* 1s; 0 disables the fallback poll */
    int64_t checkpoint_interval_ms;  /* 1m */
    int64_t min_checkpoint_page_count; /* 1000 */
    int64_t max_checkpoint_page_count; /* 10000 */
    ls_replica_cfg *replicas;
    size_t n_replicas;
    int line;
} ls_db_cfg;

typedef struct ls_config {
    char *source;                    /* file the config came from, or "<args>" */
    char *addr;                      /* metrics address (accepted, reported unsupported) */
    char *exec;                      /* command to run as a child */
    char *access_key_id, *secret_access_key; /* defaults for every replica */
    char *log_level;                 /* debug|info|warn|error */
    char *log_type;                  /* text|json */
    int log_stderr;                  /* -1 unset */
    ls_db_cfg *dbs;
    size_t n_dbs;
} ls_config;

/* Load a YAML file (expand_env: apply $VAR expansion to the text first). */
int ls_config_load(ls_ctx *ctx, const char *path, int expand_env, ls_config **out);
/* Parse YAML text; `name` is used in messages ("<file>:<line>:<col>: ..."). */
int ls_config_parse(ls_ctx *ctx, const char *text, size_t n, const char *name, int expand_env,
                    ls_config **out);
/* Fill defaults, derive types/names from URLs, validate (duplicate names, url+path...). */
int ls_config_apply_defaults(ls_ctx *ctx, ls_config *cfg);
void ls_config_free(ls_config *cfg);

/* $VAR / ${VAR} expansion (unset variables become empty); *out is malloc'd. */
int ls_config_expand_env(const char *in, char **out);
/* Default config path: $LITESAFE_CONFIG, else /etc/litesafe.yml. */
const char *ls_config_default_path(void);

#endif
