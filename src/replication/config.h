/*
 * config.h - the replication configuration: Litestream 0.3's YAML keys and
 * Litestream 0.5's (accepted with their meaning, mapped onto litesafe's, or
 * refused with the reason and the replacement: see config_yaml.c), with unknown
 * keys refused (a typo must not silently disable a setting), $VAR and ${VAR}
 * expansion, durations in Go syntax plus d/w.
 *
 * Values not given in the file are -1 (numbers/durations/flags) or NULL
 * (strings; an empty string counts as not given) after parsing;
 * ls_config_apply_defaults() expands directory entries (dir + pattern) into
 * one db each, fills each replica's unset settings from its db's and the
 * top level's defaults, then Litestream's defaults where litesafe keeps
 * them (see config_defaults.c for the table), resolves replica URLs into the fields
 * below and validates. After it, every replica has a type and a name, every
 * field the URL implies is set, and every flag and duration is >= 0.
 *
 * Everything is malloc'd and owned by the ls_config; ls_config_free() frees it.
 */
#ifndef LS_CONFIG_H
#define LS_CONFIG_H

#include "internal.h"

#include <stddef.h>
#include <stdint.h>

/*
 * One replica of one database (dbs[].replicas[] or dbs[].replica). The same
 * struct holds the defaults a db and the top level give their replicas
 * (ls_db_cfg.defaults, ls_config.defaults): there only the settings fields
 * are used (not name, type, url, path, line, col).
 */
typedef struct ls_replica_cfg {
    char *name;                      /* name; default: the type */
    char *type;                      /* file|s3|gcs|abs|sftp (0.5's "gs" becomes gcs);
                                        default from url, else file */
    char *url;                       /* replica URL as written (exclusive with path/bucket/host) */
    char *path;                      /* file: absolute directory; others: key prefix or remote
                                        directory (from a URL: no leading '/'; from path:
                                        as written, like Litestream) */
    /* s3 / gcs */
    char *bucket, *region, *endpoint;
    int force_path_style;            /* -1 unset */
    int skip_verify;                 /* -1 unset */
    char *ca_file;                   /* litesafe: CA bundle for TLS */
    char *access_key_id, *secret_access_key, *session_token;
    /* sftp; host is "HOST[:PORT]" (port 22 if none) */
    char *host, *user, *password, *key_path;
    char *known_hosts; /* litesafe: known_hosts file for host key verification */
    char *host_key;    /* pinned host key: "SHA256:<base64>" fingerprint or an
                          authorized-keys line "TYPE BASE64 [comment]" (0.5) */
    /* abs */
    char *account_name, *account_key;
    /* timing, milliseconds; -1 unset */
    int64_t retention_ms;            /* 24h */
    int64_t retention_check_interval_ms; /* 1h, capped at retention */
    int64_t snapshot_interval_ms;    /* 0: snapshots only at generation start / retention */
    int64_t sync_interval_ms;        /* default 0 for file, 1 s for remote replicas */
    int64_t validation_interval_ms;  /* 0: off */
    char *request_price;             /* litesafe: price of 1,000 requests, as written */
    double price_per_1k;             /* request_price parsed: 0.005 for s3/gcs/abs, else 0 */
    int64_t compact_after_ms;        /* litesafe: merge finished WAL indexes this old (10m; 0 off) */
    int64_t compact_interval_ms;     /* litesafe: compaction passes this often (5m) */
    char *snapshot_wal_ratio;        /* litesafe: snapshot after this times the db in WAL, as
                                        written */
    double wal_ratio;                /* snapshot_wal_ratio parsed (default 4; 0 off) */
    /* age encryption (age.h): texts of keys as Litestream 0.3 takes them, and
       litesafe's files of keys (as age -i / age -R read them) */
    char **age_identities;
    size_t n_age_identities;
    char **age_recipients;
    size_t n_age_recipients;
    char **age_identity_files;       /* litesafe: age.identity-files */
    size_t n_age_identity_files;
    char **age_recipient_files;      /* litesafe: age.recipient-files */
    size_t n_age_recipient_files;
    int line, col;                   /* position in the config file (1-based; 0: none) */
    ls_storage *storage;             /* an embedder's own backend (ls_replica_options.storage):
                                        no URL or type checks; the engine takes it over and
                                        sets this to NULL. Not owned by the config. */
} ls_replica_cfg;

/* One database (dbs[]). */
typedef struct ls_db_cfg {
    char *path;                      /* absolute path of the database (~ expanded) */
    char *dir;                       /* 0.5 directory entry: scan this directory (exclusive
                                        with path; NULL after ls_config_apply_defaults) */
    char *pattern;                   /* dir: base-name glob of the databases (required) */
    int recursive;                   /* dir: scan subdirectories too; -1 unset */
    int checkpoint_guard;            /* hold the checkpoint guard (source.c); -1 unset: on */
    char *rel_path;                  /* found by a dir scan: path relative to the dir (its
                                        replicas store below it), else NULL */
    char *meta_path;                 /* default <dir>/.<name>-litesafe */
    char *meta_dir;                  /* dir: root of the found databases' meta directories */
    int64_t monitor_interval_ms;     /* 1s; 0 disables the fallback poll */
    int64_t checkpoint_interval_ms;  /* 1m */
    int64_t min_checkpoint_page_count; /* 1000 */
    int64_t max_checkpoint_page_count; /* 10000 (0.5's truncate-page-n is the same setting) */
    int64_t busy_timeout_ms;           /* 0.5 busy-timeout: how long a checkpoint cycle waits
                                          for the write lock; 0 after defaults: the engine's */
    int64_t max_spool_size;            /* bytes the spool may hold for replicas that are away
                                          (engine.c, THE CAP); 0 after defaults: automatic,
                                          the larger of 1 GiB and twice the database */
    ls_replica_cfg defaults;           /* settings for its replicas (sync-interval, snapshot:) */
    ls_replica_cfg *replicas;        /* replicas[0..n_replicas) */
    size_t n_replicas;
    int line, col;                   /* position in the config file (1-based; 0: none) */
} ls_db_cfg;

typedef struct ls_config {
    char *source;                    /* file the config came from, or "<args>" */
    char *addr;                      /* metrics and health listener, "[HOST]:PORT" (the CLI
                                        parses it; NULL: no listener) */
    int64_t health_max_lag_ms;       /* /healthz fails past this replica lag: 1 min */
    char *exec;                      /* command to run as a child */
    ls_replica_cfg defaults;         /* replica settings given at the top level (0.3's
                                        credentials, 0.5's inline settings, snapshot:, ...) */
    int retention_enabled;           /* 0.5 retention.enabled; -1 unset (false: keep all) */
    int64_t shutdown_timeout_ms;     /* how long a stop may wait for the final sync: 30 s;
                                        0: one try, no waiting (alias shutdown-sync-timeout) */
    char *log_level;                 /* debug|info|warn|error ("warning" becomes "warn") */
    char *log_type;                  /* text|json */
    int log_stderr;                  /* -1 unset; with log_file: also to stderr */
    char *log_file;                  /* logging.file: append log lines to it (absolute after
                                        defaults), NULL: stderr */
    int socket_enabled;              /* socket.enabled: -1 unset (on) */
    char *socket_path;               /* socket.path: NULL for the default (ls_config_socket) */
    char *socket_permissions;        /* socket.permissions: octal, default 0600 */
    int socket_mode;                 /* socket_permissions parsed (defaults applied) */
    ls_db_cfg *dbs;                  /* dbs[0..n_dbs) */
    size_t n_dbs;
    int defaults_applied;            /* set by ls_config_apply_defaults (which runs once) */
} ls_config;

/*
 * Load a YAML file (expand_env: apply $VAR expansion to the text first) and
 * parse it as ls_config_parse does. A missing file is LS_ENOENT ("open PATH:
 * ..."); the caller decides whether a missing default path matters.
 */
int ls_config_load(ls_ctx *ctx, const char *path, int expand_env, ls_config **out);
/*
 * Parse YAML text; `name` is used in messages ("<name>:<line>:<col>: ...").
 * Returns 0, LS_EUSAGE (syntax, unknown key, wrong type or value) or
 * LS_ENOMEM. An empty document parses to a config with no dbs.
 */
int ls_config_parse(ls_ctx *ctx, const char *text, size_t n, const char *name, int expand_env,
                    ls_config **out);
/*
 * The config of `replicate DB URL [URL...]`: one db, one replica per URL
 * (a bare path is a file replica), source "<args>". Not yet defaulted.
 */
int ls_config_from_urls(ls_ctx *ctx, const char *db_path, const char *const *urls, size_t n,
                        ls_config **out);
/*
 * Fill defaults, derive types/names from URLs, validate (duplicate names,
 * url+path...). Reads the environment for credentials. Returns 0, LS_EUSAGE
 * ("<name>:<line>:<col>: ..." when the position is known) or LS_ENOMEM.
 * Runs once: later calls return 0 and change nothing. After a failure the
 * config is half-filled and only fit for ls_config_free().
 */
int ls_config_apply_defaults(ls_ctx *ctx, ls_config *cfg);
/* Free everything; NULL is a no-op. */
void ls_config_free(ls_config *cfg);

/*
 * The database `path` names (~ expanded, made absolute the way db paths in
 * the config are), or NULL. Call after ls_config_apply_defaults.
 */
ls_db_cfg *ls_config_find_db(const ls_config *cfg, const char *path);
/* The replica called `name` in `db`, or NULL. */
ls_replica_cfg *ls_db_cfg_find_replica(const ls_db_cfg *db, const char *name);
/*
 * A configuration holding a copy of `db` (an entry of `cfg`, defaults
 * applied or not as cfg's are) and nothing else of cfg's but its source
 * and shutdown timeout. Returns 0 or LS_ENOMEM.
 */
int ls_config_copy_db(const ls_config *cfg, const ls_db_cfg *db, ls_config **out);
/*
 * 1 when two db entries (defaults applied) say the same: every key of the
 * db table (its replicas' included, in order) and rel_path; else 0.
 */
int ls_db_cfg_equal(const ls_db_cfg *a, const ls_db_cfg *b);
/*
 * A path as the config resolves a db path: "~" and "~/..." expanded from
 * $HOME, made absolute against the working directory, the directory resolved
 * with realpath() when it exists (the file itself need not). *out is malloc'd.
 * Returns 0, LS_EUSAGE (empty path, "/", "~" without a home) or LS_ENOMEM.
 */
int ls_config_abs_path(ls_ctx *ctx, const char *path, char **out);

/* $VAR / ${VAR} expansion (unset variables become empty); *out is malloc'd. */
int ls_config_expand_env(const char *in, char **out);
/* Default config path: $LITESAFE_CONFIG, else /etc/litesafe.yml. Borrowed. */
const char *ls_config_default_path(void);

#endif
