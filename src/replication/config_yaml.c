/*
 * config_yaml.c - the replication config, first half: YAML read with
 * libyaml's document API into an ls_config through key tables, $VAR
 * expansion, and the config's memory (free, copy, inherit, from the same
 * tables). The second half, defaults and validation, is config_defaults.c;
 * config_int.h is what the two share.
 *
 * Tables. Each mapping level (top, logging, socket, snapshot, validation,
 * retention, dbs[], a replica, age) has a table of rows {key, kind, offset
 * of the field}. One walker parses every level from its table, and
 * ls_config_free() frees (copy_fields() copies, inherit_fields() fills,
 * equal_fields() compares) from the same tables, so a key added to a table
 * is parsed, type-checked, freed, copied and compared. A level may take in
 * another table's keys as its own, at an offset ("inline", as Go's yaml
 * does): the replica settings
 * (settings_table) are keys of every replica and, as defaults for every
 * replica, of the top level (Litestream 0.5's ReplicaSettings).
 *
 * Stricter than Litestream (yaml, non-strict, ignores all of these):
 *   - an unknown key is an error, naming the known key within edit distance 2
 *     ("did you mean") or the level where the key belongs;
 *   - a duplicate key is an error, and so are two names of one setting
 *     (shutdown-timeout and shutdown-sync-timeout);
 *   - a value of the wrong shape (a list where a string goes) or that does
 *     not parse (a duration, a number, a boolean, an enumerated word) is an
 *     error;
 *   - YAML merge keys ("<<") are not supported and so are unknown keys.
 * Every parse error reads "<file>:<line>:<col>: <problem>", at the key.
 *
 * Litestream 0.5 (v0.5.0 to v0.5.16: its Config, DBConfig, ReplicaSettings,
 * ReplicaConfig, SnapshotConfig, LoggingConfig and SocketConfig structs).
 * Every key it reads is known here, and is one of:
 *   - accepted with its meaning: replica: (one replica, a mapping; with
 *     replicas: in the same db an error), sync-interval, validation-interval,
 *     the s3/abs/sftp keys, age, logging, exec, addr, meta-path, ...;
 *   - mapped onto litesafe's setting: top-level replica settings are
 *     defaults for every replica (as in 0.5), snapshot.interval/retention
 *     are snapshot-interval/retention of the replicas of its level,
 *     validation.interval is validation-interval, retention.enabled: false
 *     is retention 0 (keep everything), shutdown-sync-timeout is
 *     shutdown-timeout, truncate-page-n is max-checkpoint-page-count,
 *     busy-timeout bounds the checkpoint cycle's wait for the write lock,
 *     dir + pattern (+ recursive, meta-dir) expand at start into one db per
 *     SQLite file found (expand_dirs), type gs is gcs, host-key takes an
 *     authorized-keys line (checked by the sftp backend);
 *   - a K_COMPAT row, for a feature litesafe does not have: accepted when
 *     empty or when its value asks for what litesafe does anyway
 *     (verify-compaction: false, watch: false,
 *     sign-payload: true, concurrent-writes: any), otherwise refused, exit
 *     2, with the reason and what to use instead (levels, l0-retention,
 *     mcp-addr, heartbeat-*, part-size, sse-*, the nats and webdav keys...).
 * Nothing is accepted and then ignored. The README's "Moving from
 * Litestream 0.5" lists them all.
 *
 * Value rules:
 *   - null, ~ and empty values mean "not given", as does "" for a string
 *     (and an empty list or mapping for a K_COMPAT key).
 *   - Booleans: YAML 1.1 true/false/yes/no/on/off in any case.
 *   - Durations: Go syntax plus d and w (ls_duration_parse). A bare number is
 *     refused except 0, as Go's time.ParseDuration does: "sync-interval: 10"
 *     could mean seconds or milliseconds, so it must say "10s". (The CLI's
 *     duration options take bare seconds; a config file stays Go-compatible.)
 *   - Numbers: decimal integers.
 *
 * Environment expansion (ls_config_expand_env) is Go's os.ExpandEnv over the
 * whole text before parsing, comments included: $NAME and ${NAME}; an unset
 * variable becomes empty; there is no escape, so "$$" is the (normally unset)
 * variable "$" and becomes empty, as in Litestream; a '$' followed by no name
 * stays; $PID is the process id (Litestream 0.5.8+). Positions in messages
 * are positions in the expanded text.
 *
 * Defaults and validation (ls_config_apply_defaults, in config_defaults.c)
 * are described above that function, credentials precedence included.
 */
#include "config_int.h"

#include "url.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#define LS_CONFIG_DEFAULT_PATH "/etc/litesafe.yml"
#define LS_CONFIG_MAX_SIZE (16u << 20) /* refuse config files above 16 MiB */

/* ---------------------------------------------------------------------- */
/* Key tables                                                              */

typedef enum {
    K_STR,    /* char *: a scalar */
    K_ENUM,   /* char *: one of `choices` (any case), stored as the choice */
    K_BOOL,   /* int: 0 or 1 */
    K_DUR,    /* int64_t: milliseconds */
    K_INT,    /* int64_t: a decimal integer >= `min` */
    K_LIST,   /* char ** and a size_t count at off_n: a list of scalars */
    K_MAP,    /* a nested mapping (`sub`) whose base is this level's base + off */
    K_SEQ,    /* an array and a size_t count at off_n: a list of mappings (`sub`) */
    K_ONE,    /* the array of a K_SEQ row, from one mapping: a one-element array */
    K_COMPAT, /* no field: a Litestream 0.5 key litesafe accepts only as `accept` */
    K_ANY     /* (K_COMPAT's vkind only) any value: a scalar, a list or a mapping */
} key_kind;

typedef struct key_table key_table;

/* One key of one mapping level. */
typedef struct key_def {
    const char *key;            /* as written in YAML */
    key_kind kind;              /* how the value is read */
    size_t off;                 /* offset of the field (K_MAP: of the nested base) in the
                                   level's struct */
    size_t off_n;               /* K_LIST, K_SEQ, K_ONE: offset of the size_t count */
    const key_table *sub;       /* K_MAP, K_SEQ, K_ONE: the nested level */
    const char *const *choices; /* K_ENUM: accepted words, NULL-terminated */
    const char *(*refuse)(const char *word); /* K_ENUM: why a word that is no choice is
                                   refused, or NULL (then: "not one of") */
    int64_t min;                /* K_INT: smallest accepted value */
    int zero_unset;             /* K_INT: 0 means "not given" */
    int bytes;                  /* K_INT: a size, with an optional unit (parse_size) */
    const char *same;           /* another key that sets the same field (both: an error) */
    key_kind vkind;             /* K_COMPAT: the value's kind (K_BOOL, K_INT, K_STR, K_ANY) */
    const char *accept;         /* K_COMPAT: the one value accepted, "*" any, NULL none */
    const char *why;            /* K_COMPAT: why any other value is refused, and what to
                                   use instead */
} key_def;

/* One mapping level. */
struct key_table {
    const char *what;           /* the level in messages: "unknown key ... in <what>" */
    const char *prefix;         /* in front of its keys in messages ("socket.") */
    const char *hint;           /* where its keys go: "a replica key (under replica:)" */
    const key_def *keys;        /* rows */
    size_t n;                   /* number of rows */
    const key_table *inl;       /* a table whose keys are this level's too, or NULL */
    size_t inl_off;             /* offset of inl's base in this level's base */
    size_t size;                /* K_SEQ element size */
    void (*init)(void *elem, int line, int col); /* K_SEQ element: set "not given" */
};

#define ROW_STR(T, k, f) {.key = k, .kind = K_STR, .off = offsetof(T, f)}
#define ROW_ENUM(T, k, f, c, r)                                                                    \
    {.key = k, .kind = K_ENUM, .off = offsetof(T, f), .choices = c, .refuse = r}
#define ROW_BOOL(T, k, f) {.key = k, .kind = K_BOOL, .off = offsetof(T, f)}
#define ROW_DUR(T, k, f) {.key = k, .kind = K_DUR, .off = offsetof(T, f)}
#define ROW_DUR_SAME(T, k, f, s)                                                                   \
    {.key = k, .kind = K_DUR, .off = offsetof(T, f), .same = s}
#define ROW_INT(T, k, f, m) {.key = k, .kind = K_INT, .off = offsetof(T, f), .min = m}
#define ROW_SIZE(T, k, f, m)                                                                       \
    {.key = k, .kind = K_INT, .off = offsetof(T, f), .min = m, .bytes = 1}
#define ROW_LIST(T, k, f, fn)                                                                      \
    {.key = k, .kind = K_LIST, .off = offsetof(T, f), .off_n = offsetof(T, fn)}
#define ROW_MAP(k, t) {.key = k, .kind = K_MAP, .sub = &t}
#define ROW_MAP_AT(T, k, f, t)                                                                     \
    {.key = k, .kind = K_MAP, .off = offsetof(T, f), .sub = &t}
#define ROW_SEQ(T, k, f, fn, t)                                                                    \
    {.key = k, .kind = K_SEQ, .off = offsetof(T, f), .off_n = offsetof(T, fn), .sub = &t}
#define ROW_ONE(T, k, f, fn, t)                                                                    \
    {.key = k, .kind = K_ONE, .off = offsetof(T, f), .off_n = offsetof(T, fn), .sub = &t}
#define ROW_COMPAT(k, vk, acc, w)                                                                  \
    {.key = k, .kind = K_COMPAT, .vkind = vk, .accept = acc, .why = w}

static const char *const replica_types[] = {"file", "s3", "gcs", "abs", "sftp", "gs", NULL};
static const char *const log_levels[] = {"debug", "info", "warn", "warning", "error", NULL};
static const char *const log_types[] = {"text", "json", NULL};

static void replica_init(void *elem, int line, int col)
{
    ls_replica_cfg *r = elem;
    r->force_path_style = -1;
    r->skip_verify = -1;
    r->retention_ms = -1;
    r->retention_check_interval_ms = -1;
    r->snapshot_interval_ms = -1;
    r->sync_interval_ms = -1;
    r->validation_interval_ms = -1;
    r->compact_after_ms = -1;
    r->compact_interval_ms = -1;
    r->line = line;
    r->col = col;
}

static void db_init(void *elem, int line, int col)
{
    ls_db_cfg *d = elem;
    d->recursive = -1;
    d->checkpoint_guard = -1;
    d->monitor_interval_ms = -1;
    d->checkpoint_interval_ms = -1;
    d->min_checkpoint_page_count = -1;
    d->max_checkpoint_page_count = -1;
    d->busy_timeout_ms = -1;
    d->max_spool_size = -1;
    replica_init(&d->defaults, 0, 0);
    d->line = line;
    d->col = col;
}

/* Why Litestream 0.5 keys litesafe has no use for are refused (K_COMPAT rows). */
#define WHY_NATS                                                                                   \
    "a NATS replica setting: litesafe has no NATS replica type; use s3, gcs, abs, sftp or file"
#define WHY_WEBDAV                                                                                 \
    "WebDAV replicas are not supported by litesafe: use sftp, s3, abs, or a file replica on a "    \
    "mounted WebDAV share"
#define WHY_SSE                                                                                    \
    "litesafe sends no server-side encryption headers: encrypt the replica with age "              \
    "(age: recipients:) instead, or turn on the bucket's default encryption"
#define WHY_HEARTBEAT                                                                              \
    "litesafe sends no heartbeats: remove it, and ping your monitor from exec or from a cron "     \
    "job that checks the replica (litesafe generations --json)"

/* dbs[].replica(s).age, and the top level's age */
static const key_def age_keys[] = {
    ROW_LIST(ls_replica_cfg, "identities", age_identities, n_age_identities),
    ROW_LIST(ls_replica_cfg, "recipients", age_recipients, n_age_recipients),
    ROW_LIST(ls_replica_cfg, "identity-files", age_identity_files, n_age_identity_files),
    ROW_LIST(ls_replica_cfg, "recipient-files", age_recipient_files, n_age_recipient_files),
};
static const key_table age_table = {.what = "age",
                                    .prefix = "age.",
                                    .hint = "an age key (under age:)",
                                    .keys = age_keys,
                                    .n = NROWS(age_keys)};

/*
 * The replica settings: keys of a replica, and of the top level as defaults
 * for every replica (Litestream 0.5's ReplicaSettings, plus litesafe's own).
 */
static const key_def settings_keys[] = {
    ROW_DUR(ls_replica_cfg, "sync-interval", sync_interval_ms),
    ROW_STR(ls_replica_cfg, "request-price", request_price),
    ROW_DUR(ls_replica_cfg, "compact-after", compact_after_ms),
    ROW_DUR(ls_replica_cfg, "compact-interval", compact_interval_ms),
    ROW_STR(ls_replica_cfg, "snapshot-wal-ratio", snapshot_wal_ratio),
    ROW_DUR_SAME(ls_replica_cfg, "validation-interval", validation_interval_ms,
                 "validation.interval"),
    ROW_MAP("age", age_table),
    ROW_STR(ls_replica_cfg, "access-key-id", access_key_id),
    ROW_STR(ls_replica_cfg, "secret-access-key", secret_access_key),
    ROW_STR(ls_replica_cfg, "session-token", session_token),
    ROW_STR(ls_replica_cfg, "region", region),
    ROW_STR(ls_replica_cfg, "bucket", bucket),
    ROW_STR(ls_replica_cfg, "endpoint", endpoint),
    ROW_BOOL(ls_replica_cfg, "force-path-style", force_path_style),
    ROW_BOOL(ls_replica_cfg, "skip-verify", skip_verify),
    ROW_STR(ls_replica_cfg, "ca-file", ca_file),
    ROW_STR(ls_replica_cfg, "host", host),
    ROW_STR(ls_replica_cfg, "user", user),
    ROW_STR(ls_replica_cfg, "password", password),
    ROW_STR(ls_replica_cfg, "key-path", key_path),
    ROW_STR(ls_replica_cfg, "known-hosts", known_hosts),
    ROW_STR(ls_replica_cfg, "host-key", host_key),
    ROW_STR(ls_replica_cfg, "account-name", account_name),
    ROW_STR(ls_replica_cfg, "account-key", account_key),
    /* Litestream 0.5 */
    ROW_COMPAT("max-sync-ltx-files", K_INT, "0",
               "litesafe uploads everything pending on each sync: remove it (sync-interval "
               "batches uploads)"),
    ROW_COMPAT("auto-recover", K_BOOL, "true",
               "litesafe always recovers on its own: when it cannot prove that the replica "
               "continues the database, it starts a new generation with a fresh snapshot; "
               "remove it"),
    ROW_COMPAT("sign-payload", K_BOOL, "true", LS_WHY_SIGN_PAYLOAD),
    ROW_COMPAT("require-content-md5", K_BOOL, "true", LS_WHY_CONTENT_MD5),
    ROW_COMPAT("storage-class", K_STR, "STANDARD", LS_WHY_STORAGE_CLASS),
    ROW_COMPAT("part-size", K_ANY, NULL, LS_WHY_PART_SIZE),
    ROW_COMPAT("concurrency", K_ANY, NULL, LS_WHY_PART_SIZE),
    ROW_COMPAT("sse-customer-algorithm", K_ANY, NULL, WHY_SSE),
    ROW_COMPAT("sse-customer-key", K_ANY, NULL, WHY_SSE),
    ROW_COMPAT("sse-customer-key-path", K_ANY, NULL, WHY_SSE),
    ROW_COMPAT("sse-kms-key-id", K_ANY, NULL,
               "litesafe sends no server-side encryption headers: make this KMS key the "
               "bucket's default encryption (every object is then encrypted with it), or "
               "encrypt the replica with age (age: recipients:)"),
    ROW_COMPAT("sas-token", K_ANY, NULL,
               "litesafe signs Azure requests with the account key (Shared Key): use "
               "account-key (or LITESAFE_AZURE_ACCOUNT_KEY) instead"),
    ROW_COMPAT("concurrent-writes", K_BOOL, "*", NULL), /* in-order pipelined writes suit both */
    ROW_COMPAT("webdav-url", K_ANY, NULL, WHY_WEBDAV),
    ROW_COMPAT("webdav-username", K_ANY, NULL, WHY_WEBDAV),
    ROW_COMPAT("webdav-password", K_ANY, NULL, WHY_WEBDAV),
    ROW_COMPAT("jwt", K_ANY, NULL, WHY_NATS),
    ROW_COMPAT("seed", K_ANY, NULL, WHY_NATS),
    ROW_COMPAT("creds", K_ANY, NULL, WHY_NATS),
    ROW_COMPAT("nkey", K_ANY, NULL, WHY_NATS),
    ROW_COMPAT("username", K_ANY, NULL, WHY_NATS),
    ROW_COMPAT("token", K_ANY, NULL, WHY_NATS),
    ROW_COMPAT("tls", K_ANY, NULL, WHY_NATS),
    ROW_COMPAT("root-cas", K_ANY, NULL, WHY_NATS),
    ROW_COMPAT("client-cert", K_ANY, NULL, WHY_NATS),
    ROW_COMPAT("client-key", K_ANY, NULL, WHY_NATS),
    ROW_COMPAT("max-reconnects", K_ANY, NULL, WHY_NATS),
    ROW_COMPAT("reconnect-wait", K_ANY, NULL, WHY_NATS),
    ROW_COMPAT("timeout", K_ANY, NULL, WHY_NATS),
};
static const key_table settings_table = {.what = "replica",
                                         .prefix = "",
                                         .hint = "a replica key (under replica: or replicas:)",
                                         .keys = settings_keys,
                                         .n = NROWS(settings_keys)};

/* dbs[].replicas[], dbs[].replica: the settings plus these */
static const key_def replica_keys[] = {
    ROW_ENUM(ls_replica_cfg, "type", type, replica_types, ls_url_scheme_refusal),
    ROW_STR(ls_replica_cfg, "name", name),
    ROW_STR(ls_replica_cfg, "url", url),
    ROW_STR(ls_replica_cfg, "path", path),
    ROW_DUR(ls_replica_cfg, "retention", retention_ms),
    ROW_DUR(ls_replica_cfg, "retention-check-interval", retention_check_interval_ms),
    ROW_DUR(ls_replica_cfg, "snapshot-interval", snapshot_interval_ms),
};
static const key_table replica_table = {.what = "replica",
                                        .prefix = "",
                                        .hint = "a replica key (under replica: or replicas:)",
                                        .keys = replica_keys,
                                        .n = NROWS(replica_keys),
                                        .inl = &settings_table,
                                        .inl_off = 0,
                                        .size = sizeof(ls_replica_cfg),
                                        .init = replica_init};

/* snapshot: (top level and db), into the replica defaults of its level */
static const key_def snapshot_keys[] = {
    ROW_DUR(ls_replica_cfg, "interval", snapshot_interval_ms),
    ROW_DUR(ls_replica_cfg, "retention", retention_ms),
};
static const key_table snapshot_table = {.what = "snapshot",
                                         .prefix = "snapshot.",
                                         .hint = "a snapshot key (under snapshot:)",
                                         .keys = snapshot_keys,
                                         .n = NROWS(snapshot_keys)};

/* validation: (top level), into the replica defaults */
static const key_def validation_keys[] = {
    ROW_DUR_SAME(ls_replica_cfg, "interval", validation_interval_ms, "validation-interval"),
};
static const key_table validation_table = {.what = "validation",
                                           .prefix = "validation.",
                                           .hint = "a validation key (under validation:)",
                                           .keys = validation_keys,
                                           .n = NROWS(validation_keys)};

/* dbs[] */
static const key_def db_keys[] = {
    ROW_STR(ls_db_cfg, "path", path),
    ROW_STR(ls_db_cfg, "dir", dir),
    ROW_STR(ls_db_cfg, "pattern", pattern),
    ROW_BOOL(ls_db_cfg, "recursive", recursive),
    ROW_STR(ls_db_cfg, "meta-path", meta_path),
    ROW_STR(ls_db_cfg, "meta-dir", meta_dir),
    ROW_DUR(ls_db_cfg, "monitor-interval", monitor_interval_ms),
    ROW_DUR(ls_db_cfg, "checkpoint-interval", checkpoint_interval_ms),
    ROW_DUR(ls_db_cfg, "busy-timeout", busy_timeout_ms),
    ROW_INT(ls_db_cfg, "min-checkpoint-page-count", min_checkpoint_page_count, 1),
    ROW_BOOL(ls_db_cfg, "checkpoint-guard", checkpoint_guard),
    ROW_SIZE(ls_db_cfg, "max-spool-size", max_spool_size, 1),
    {.key = "max-checkpoint-page-count",
     .kind = K_INT,
     .off = offsetof(ls_db_cfg, max_checkpoint_page_count),
     .same = "truncate-page-n"},
    {.key = "truncate-page-n",
     .kind = K_INT,
     .off = offsetof(ls_db_cfg, max_checkpoint_page_count),
     .zero_unset = 1,
     .same = "max-checkpoint-page-count"},
    ROW_DUR(ls_db_cfg, "sync-interval", defaults.sync_interval_ms),
    ROW_MAP_AT(ls_db_cfg, "snapshot", defaults, snapshot_table),
    ROW_SEQ(ls_db_cfg, "replicas", replicas, n_replicas, replica_table),
    ROW_ONE(ls_db_cfg, "replica", replicas, n_replicas, replica_table),
    ROW_COMPAT("max-sync-wal-bytes", K_INT, "0",
               "litesafe ships every committed frame on each sync (through its spool on disk, "
               "not memory): remove it"),
    ROW_COMPAT("restore-if-db-not-exists", K_BOOL, "false",
               "replicate does not restore: run `litesafe restore -if-db-not-exists "
               "-if-replica-exists -config FILE DB` before it (e.g. as ExecStartPre=)"),
    ROW_COMPAT("watch", K_BOOL, "false",
               "litesafe scans dir at start and on SIGHUP: send replicate SIGHUP to pick up new "
               "databases (e.g. from a systemd path unit), or set watch: false"),
};
static const key_table db_table = {.what = "db",
                                   .prefix = "",
                                   .hint = "a db key (under dbs:)",
                                   .keys = db_keys,
                                   .n = NROWS(db_keys),
                                   .size = sizeof(ls_db_cfg),
                                   .init = db_init};

/* logging */
static const key_def logging_keys[] = {
    ROW_ENUM(ls_config, "level", log_level, log_levels, NULL),
    ROW_ENUM(ls_config, "type", log_type, log_types, NULL),
    ROW_BOOL(ls_config, "stderr", log_stderr),
    ROW_STR(ls_config, "file", log_file),
    ROW_COMPAT("source", K_BOOL, "false",
               "litesafe's log lines carry no source positions: remove it or set it to false"),
};
static const key_table logging_table = {.what = "logging",
                                        .prefix = "logging.",
                                        .hint = "a logging key (under logging:)",
                                        .keys = logging_keys,
                                        .n = NROWS(logging_keys)};

/* retention: (0.5, top level) */
static const key_def retention_keys[] = {
    ROW_BOOL(ls_config, "enabled", retention_enabled),
};
static const key_table retention_table = {.what = "retention",
                                          .prefix = "retention.",
                                          .hint = "a retention key (under retention:)",
                                          .keys = retention_keys,
                                          .n = NROWS(retention_keys)};

/* socket: the control socket (Litestream 0.5's keys; see ls_config_socket) */
static const key_def socket_keys[] = {
    ROW_BOOL(ls_config, "enabled", socket_enabled),
    ROW_STR(ls_config, "path", socket_path),
    ROW_STR(ls_config, "permissions", socket_permissions),
};
static const key_table socket_table = {.what = "socket",
                                       .prefix = "socket.",
                                       .hint = "a socket key (under socket:)",
                                       .keys = socket_keys,
                                       .n = NROWS(socket_keys)};

/* the top level: these plus the replica settings as defaults */
static const key_def top_keys[] = {
    ROW_SEQ(ls_config, "dbs", dbs, n_dbs, db_table),
    ROW_STR(ls_config, "addr", addr),
    ROW_DUR(ls_config, "health-max-lag", health_max_lag_ms),
    ROW_STR(ls_config, "exec", exec),
    ROW_MAP("logging", logging_table),
    ROW_DUR_SAME(ls_config, "shutdown-timeout", shutdown_timeout_ms, "shutdown-sync-timeout"),
    ROW_DUR_SAME(ls_config, "shutdown-sync-timeout", shutdown_timeout_ms, "shutdown-timeout"),
    ROW_MAP_AT(ls_config, "snapshot", defaults, snapshot_table),
    ROW_MAP_AT(ls_config, "validation", defaults, validation_table),
    ROW_MAP("retention", retention_table),
    ROW_MAP("socket", socket_table),
    ROW_COMPAT("levels", K_ANY, NULL,
               "Litestream 0.5's compaction levels have no equivalent: litesafe writes "
               "Litestream 0.3's layout (snapshots and WAL segments) and compacts it itself "
               "(compact-after, snapshot-wal-ratio); remove levels (snapshot.interval and "
               "snapshot.retention say how often snapshots are taken and how long the "
               "replica keeps them)"),
    ROW_COMPAT("l0-retention", K_ANY, NULL,
               "litesafe has no L0 files to keep (it writes Litestream 0.3's layout): remove "
               "it; snapshot.retention (or a replica's retention) says how long the replica "
               "keeps what restores need"),
    ROW_COMPAT("l0-retention-check-interval", K_ANY, NULL,
               "litesafe has no L0 files to keep: remove it; a replica's "
               "retention-check-interval says how often retention runs"),
    ROW_COMPAT("verify-compaction", K_BOOL, "false",
               "litesafe does not compact: remove it; validation-interval (or "
               "validation.interval) restores the replica and compares it with the live "
               "database"),
    ROW_COMPAT("heartbeat-url", K_ANY, NULL, WHY_HEARTBEAT),
    ROW_COMPAT("heartbeat-interval", K_ANY, NULL, WHY_HEARTBEAT),
    ROW_COMPAT("mcp-addr", K_ANY, NULL,
               "litesafe has no MCP server: remove it (tools can run litesafe's commands with "
               "--json)"),
    ROW_COMPAT("shutdown-sync-interval", K_ANY, NULL,
               "litesafe retries the final sync with its own capped backoff until "
               "shutdown-timeout runs out: remove it (shutdown-timeout, or its 0.5 name "
               "shutdown-sync-timeout, bounds the wait)"),
};
static const key_table top_table = {.what = "the top level",
                                    .prefix = "",
                                    .hint = "a top-level key",
                                    .keys = top_keys,
                                    .n = NROWS(top_keys),
                                    .inl = &settings_table,
                                    .inl_off = offsetof(ls_config, defaults)};

/* walk_map's duplicate-key mask has one bit per row, inline rows included */
#define MAX_ROWS 256
_Static_assert(NROWS(replica_keys) + NROWS(settings_keys) <= MAX_ROWS &&
                   NROWS(top_keys) + NROWS(settings_keys) <= MAX_ROWS && NROWS(db_keys) <= MAX_ROWS,
               "a key table has more than MAX_ROWS rows");

/* Every level, in the order "belongs to" hints look for an unknown key. */
static const key_table *const all_tables[] = {&db_table, &replica_table, &top_table,
                                              &logging_table, &age_table};

#define FIELD(base, off, type) ((type *)(void *)((char *)(base) + (off)))

/* The number of rows of t, its inline table's included. */
static size_t table_rows(const key_table *t)
{
    return t->n + (t->inl ? t->inl->n : 0);
}

/*
 * Row i of t (inline rows follow t's own); *base_off is the offset to add to
 * the level's base for it.
 */
static const key_def *table_row(const key_table *t, size_t i, size_t *base_off)
{
    if (i < t->n) {
        *base_off = 0;
        return &t->keys[i];
    }
    *base_off = t->inl_off;
    return &t->inl->keys[i - t->n];
}

/* The row of `key` in t (inline rows included) and its index, or NULL. */
static const key_def *find_key(const key_table *t, const char *key, size_t *idx, size_t *base_off)
{
    size_t off = 0, n = table_rows(t);
    for (size_t i = 0; i < n; i++) {
        const key_def *kd = table_row(t, i, &off);
        if (strcmp(kd->key, key) == 0) {
            if (idx)
                *idx = i;
            if (base_off)
                *base_off = off;
            return kd;
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* Messages                                                                */

/* See config_int.h. */
int ls_cfg_pos_err(ls_ctx *ctx, int code, const char *name, size_t line, size_t col,
                   const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!name)
        name = "<config>";
    if (line && col)
        return ls_err(ctx, code, "%s:%zu:%zu: %s", name, line, col, msg);
    if (line)
        return ls_err(ctx, code, "%s:%zu: %s", name, line, msg);
    return ls_err(ctx, code, "%s: %s", name, msg);
}

/* Levenshtein distance of a and b, or a large number for long strings. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b), prev[65], cur[65];
    if (na > 64 || nb > 64)
        return SIZE_MAX;
    for (size_t j = 0; j <= nb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= na; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (nb + 1) * sizeof(size_t));
    }
    return prev[nb];
}

/* ---------------------------------------------------------------------- */
/* The walker                                                              */

typedef struct walker {
    ls_ctx *ctx;                /* where errors go */
    const char *name;           /* file name for messages */
    yaml_document_t *doc;       /* the loaded document (node lookups) */
} walker;

static const char *node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_MAPPING_NODE: return "a mapping";
    default: return "a scalar";
    }
}

/* 1 if n is a null: an empty scalar, or a plain ~ / null. */
static int node_is_null(const yaml_node_t *n)
{
    if (!n || n->type != YAML_SCALAR_NODE)
        return 0;
    const char *v = (const char *)n->data.scalar.value;
    if (n->data.scalar.length == 0)
        return 1;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    return strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
           strcmp(v, "NULL") == 0;
}

/* 1 if n is a null, an empty list or an empty mapping. */
static int node_is_empty(const yaml_node_t *n)
{
    if (n->type == YAML_SEQUENCE_NODE)
        return n->data.sequence.items.top == n->data.sequence.items.start;
    if (n->type == YAML_MAPPING_NODE)
        return n->data.mapping.pairs.top == n->data.mapping.pairs.start;
    return node_is_null(n);
}

#define AT(n) (n)->start_mark.line + 1, (n)->start_mark.column + 1

/* Boolean words of YAML 1.1. Returns 0/1, or -1 when s is not one. */
static int parse_bool(const char *s)
{
    static const char *const yes[] = {"true", "yes", "on", NULL};
    static const char *const no[] = {"false", "no", "off", NULL};
    for (int i = 0; yes[i]; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return 1;
        if (strcasecmp(s, no[i]) == 0)
            return 0;
    }
    return -1;
}

/* A config duration: ls_duration_parse, but a bare number must be 0. */
static int parse_config_duration(const char *s, int64_t *ms)
{
    char *end = NULL;
    (void)strtod(s, &end);
    if (end != s && *end == '\0')
        return strspn(s, "0.") == strlen(s) && strchr(s, '0') ? (*ms = 0, 0) : LS_EUSAGE;
    return ls_duration_parse(s, ms);
}

/* A decimal integer; 0 or LS_EUSAGE. */
static int parse_int(const char *s, long long *n)
{
    char *end = NULL;
    errno = 0;
    *n = strtoll(s, &end, 10);
    return (end == s || *end != '\0' || errno) ? LS_EUSAGE : 0;
}

/*
 * A size in bytes: a number (a fraction allowed before a unit), optional
 * spaces, and an optional unit in any case: B; kB/KB, MB, GB, TB (powers of
 * 1000); KiB, MiB, GiB, TiB and K, M, G, T (powers of 1024). 0 or LS_EUSAGE.
 */
static int parse_size(const char *s, long long *n)
{
    static const struct {
        const char *unit;
        double mul;
    } units[] = {{"", 1},           {"b", 1},           {"kb", 1e3},        {"mb", 1e6},
                 {"gb", 1e9},       {"tb", 1e12},       {"k", 1024.0},      {"m", 1048576.0},
                 {"g", 1073741824.0}, {"t", 1099511627776.0}, {"kib", 1024.0},
                 {"mib", 1048576.0}, {"gib", 1073741824.0}, {"tib", 1099511627776.0}};
    char *end = NULL;
    if (!isdigit((unsigned char)*s))
        return LS_EUSAGE;
    errno = 0;
    double v = strtod(s, &end);
    size_t digits = strspn(s, "0123456789.");
    if (end == s || errno || (size_t)(end - s) != digits)
        return LS_EUSAGE; /* no exponents, no hexadecimal */
    int frac = memchr(s, '.', digits) != NULL;
    while (*end == ' ')
        end++;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(end, units[i].unit) != 0)
            continue;
        if ((frac && units[i].mul == 1) || v * units[i].mul >= 9.2e18)
            return LS_EUSAGE;
        *n = (long long)(v * units[i].mul + 0.5);
        return 0;
    }
    return LS_EUSAGE;
}

static int walk_map(walker *w, yaml_node_t *node, const key_table *t, void *base);

/*
 * The value of key `k` must be a scalar (or null): *out is its text, or NULL
 * for null. A scalar with a NUL byte in it is refused.
 */
static int want_scalar(walker *w, yaml_node_t *key, const char *k, yaml_node_t *v,
                       const char *expect, const char **out)
{
    *out = NULL;
    if (v->type != YAML_SCALAR_NODE)
        return ls_cfg_pos_err(w->ctx, LS_EUSAGE, w->name, AT(key), "%s: expected %s, got %s", k,
                              expect, node_kind(v));
    if (node_is_null(v))
        return 0;
    if (strlen((const char *)v->data.scalar.value) != v->data.scalar.length)
        return ls_cfg_pos_err(w->ctx, LS_EUSAGE, w->name, AT(key),
                              "%s: the value contains a NUL byte", k);
    *out = (const char *)v->data.scalar.value;
    return 0;
}

/* Read a list of scalars into a char ** array and its count. */
static int set_list(walker *w, yaml_node_t *key, const char *k, yaml_node_t *v, const key_def *kd,
                    void *base)
{
    if (node_is_null(v))
        return 0;
    if (v->type != YAML_SEQUENCE_NODE)
        return ls_cfg_pos_err(w->ctx, LS_EUSAGE, w->name, AT(key), "%s: expected a list, got %s", k,
                       node_kind(v));
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    char **arr = calloc(n ? n : 1, sizeof(char *));
    if (!arr)
        return LS_ENOMEM;
    *FIELD(base, kd->off, char **) = arr;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *it = yaml_document_get_node(w->doc, v->data.sequence.items.start[i]);
        if (!it || it->type != YAML_SCALAR_NODE || node_is_null(it))
            return ls_cfg_pos_err(w->ctx, LS_EUSAGE, w->name, AT(it ? it : key),
                           "%s: item %zu: expected a string, got %s", k, i + 1,
                           it && it->type != YAML_SCALAR_NODE ? node_kind(it) : "nothing");
        if (strlen((const char *)it->data.scalar.value) != it->data.scalar.length)
            return ls_cfg_pos_err(w->ctx, LS_EUSAGE, w->name, AT(it),
                                  "%s: item %zu contains a NUL byte", k, i + 1);
        if (!(arr[i] = strdup((const char *)it->data.scalar.value)))
            return LS_ENOMEM;
        *FIELD(base, kd->off_n, size_t) = i + 1;
    }
    return 0;
}

/*
 * Read a list of mappings (K_SEQ) or one mapping (K_ONE) into a new array of
 * kd->sub->size elements. The two rows that share an array (replicas:,
 * replica:) cannot both be given.
 */
static int set_seq(walker *w, yaml_node_t *key, const char *k, yaml_node_t *v, const key_def *kd,
                   void *base)
{
    const key_table *t = kd->sub;
    int one = kd->kind == K_ONE;
    if (node_is_null(v))
        return 0;
    if (*FIELD(base, kd->off, void *))
        return ls_cfg_pos_err(w->ctx, LS_EUSAGE, w->name, AT(key),
                       "%s: replica and replicas cannot both be set: use replica: for one "
                       "replica, or replicas: for a list",
                       k);
    if (v->type != (one ? YAML_MAPPING_NODE : YAML_SEQUENCE_NODE))
        return ls_cfg_pos_err(w->ctx, LS_EUSAGE, w->name, AT(key), "%s: expected %s, got %s", k,
                       one ? "a mapping (one replica; replicas: takes a list)" : "a list",
                       node_kind(v));
    size_t n = one ? 1 : (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    char *arr = calloc(n ? n : 1, t->size);
    if (!arr)
        return LS_ENOMEM;
    *FIELD(base, kd->off, void *) = arr;
    *FIELD(base, kd->off_n, size_t) = n;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *it = one ? v : yaml_document_get_node(w->doc, v->data.sequence.items.start[i]);
        t->init(arr + i * t->size, (int)it->start_mark.line + 1, (int)it->start_mark.column + 1);
    }
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *it = one ? v : yaml_document_get_node(w->doc, v->data.sequence.items.start[i]);
        if (it->type != YAML_MAPPING_NODE)
            return ls_cfg_pos_err(w->ctx, LS_EUSAGE, w->name, AT(it),
                           "%s: item %zu: expected a mapping (a %s), got %s", k, i + 1, t->what,
                           node_is_null(it) ? "nothing" : node_kind(it));
        int rc = walk_map(w, it, t, arr + i * t->size);
        if (rc)
            return rc;
    }
    return 0;
}

/* "<k>: expected <kind>..., got "<s>"" for a scalar that does not parse as `kind`. */
static int bad_scalar(walker *w, yaml_node_t *key, const char *k, key_kind kind, const char *s)
{
    switch (kind) {
    case K_BOOL:
        return ls_cfg_pos_err(w->ctx, LS_EUSAGE, w->name, AT(key),
                       "%s: expected a boolean (true/false, yes/no, on/off), got \"%s\"", k, s);
    case K_DUR:
        return ls_cfg_pos_err(w->ctx, LS_EUSAGE, w->name, AT(key),
                       "%s: expected a duration with a unit (e.g. 500ms, 10s, 1h30m, 7d), got "
                       "\"%s\"",
                       k, s);
    default:
        return ls_cfg_pos_err(w->ctx, LS_EUSAGE, w->name, AT(key),
                              "%s: expected a number, got \"%s\"", k, s);
    }
}

static const char *const expect_kind[] = {
    [K_STR] = "a string",   [K_ENUM] = "a word",  [K_BOOL] = "a boolean",
    [K_DUR] = "a duration", [K_INT] = "a number",
};

/*
 * A K_COMPAT key: accepted when empty, or when its value (of kind vkind) is
 * kd->accept ("*": any); otherwise LS_EUSAGE "<key>: <why>".
 */
static int check_compat(walker *w, yaml_node_t *key, const char *k, yaml_node_t *v,
                        const key_def *kd)
{
    const char *s = NULL;
    int rc, ok = 0;
    if (node_is_empty(v))
        return 0;
    if (kd->vkind != K_ANY) {
        if ((rc = want_scalar(w, key, k, v, expect_kind[kd->vkind], &s)) != 0 || !s)
            return rc;
        long long n = 0, want = 0;
        if (kd->vkind == K_BOOL && parse_bool(s) < 0)
            return bad_scalar(w, key, k, K_BOOL, s);
        if (kd->vkind == K_INT && parse_int(s, &n) != 0)
            return bad_scalar(w, key, k, K_INT, s);
        if (kd->accept && strcmp(kd->accept, "*") != 0) {
            if (kd->vkind == K_BOOL)
                ok = parse_bool(s) == parse_bool(kd->accept);
            else if (kd->vkind == K_INT)
                ok = parse_int(kd->accept, &want) == 0 && n == want;
            else
                ok = strcasecmp(s, kd->accept) == 0;
        }
    }
    if (ok || (kd->accept && strcmp(kd->accept, "*") == 0))
        return 0;
    return ls_cfg_pos_err(w->ctx, LS_EUSAGE, w->name, AT(key), "%s: %s", k, kd->why);
}

/* 1 if the scalar field of kd in base holds a value already. */
static int field_is_set(const key_def *kd, const void *base)
{
    switch (kd->kind) {
    case K_STR:
    case K_ENUM:
        return *FIELD(base, kd->off, char *) != NULL;
    case K_BOOL:
        return *FIELD(base, kd->off, int) >= 0;
    case K_DUR:
    case K_INT:
        return *FIELD(base, kd->off, int64_t) >= 0;
    default:
        return 0;
    }
}

/* Read the value of one known key (full name k) into its field. */
static int set_value(walker *w, yaml_node_t *key, const char *k, yaml_node_t *v, const key_def *kd,
                     void *base)
{
    const char *s = NULL;
    int rc;

    switch (kd->kind) {
    case K_LIST:
        return set_list(w, key, k, v, kd, base);
    case K_SEQ:
    case K_ONE:
        return set_seq(w, key, k, v, kd, base);
    case K_COMPAT:
        return check_compat(w, key, k, v, kd);
    case K_MAP:
        if (node_is_null(v))
            return 0;
        if (v->type != YAML_MAPPING_NODE)
            return ls_cfg_pos_err(w->ctx, LS_EUSAGE, w->name, AT(key),
                                  "%s: expected a mapping, got %s", k, node_kind(v));
        return walk_map(w, v, kd->sub, (char *)base + kd->off);
    default:
        break;
    }

    if ((rc = want_scalar(w, key, k, v, expect_kind[kd->kind], &s)) != 0 || !s)
        return rc;
    if (kd->same && field_is_set(kd, base))
        return ls_cfg_pos_err(w->ctx, LS_EUSAGE, w->name, AT(key),
                       "%s: the same setting as %s, which is set too: set only one", k, kd->same);

    switch (kd->kind) {
    case K_STR: {
        char **dst = FIELD(base, kd->off, char *);
        free(*dst);
        return (*dst = strdup(s)) ? 0 : LS_ENOMEM;
    }
    case K_ENUM: {
        char **dst = FIELD(base, kd->off, char *);
        char list[256] = "";
        const char *why;
        for (int i = 0; kd->choices[i]; i++) {
            if (strcasecmp(s, kd->choices[i]) == 0) {
                free(*dst);
                return (*dst = strdup(kd->choices[i])) ? 0 : LS_ENOMEM;
            }
            size_t l = strlen(list);
            snprintf(list + l, sizeof(list) - l, "%s%s", i ? ", " : "", kd->choices[i]);
        }
        if (kd->refuse && (why = kd->refuse(s)) != NULL)
            return ls_cfg_pos_err(w->ctx, LS_EUSAGE, w->name, AT(key), "%s: \"%s\": %s", k, s, why);
        return ls_cfg_pos_err(w->ctx, LS_EUSAGE, w->name, AT(key), "%s: \"%s\" is not one of %s", k,
                              s, list);
    }
    case K_BOOL: {
        int b = parse_bool(s);
        if (b < 0)
            return bad_scalar(w, key, k, K_BOOL, s);
        *FIELD(base, kd->off, int) = b;
        return 0;
    }
    case K_DUR: {
        int64_t ms = 0;
        if (parse_config_duration(s, &ms) != 0)
            return bad_scalar(w, key, k, K_DUR, s);
        *FIELD(base, kd->off, int64_t) = ms;
        return 0;
    }
    case K_INT: {
        long long n = 0;
        if (kd->bytes && parse_size(s, &n) != 0)
            return ls_cfg_pos_err(w->ctx, LS_EUSAGE, w->name, AT(key),
                                  "%s: expected a size (e.g. 1GiB, 512MB, 1048576), got \"%s\"",
                                  k, s);
        if (!kd->bytes && parse_int(s, &n) != 0)
            return bad_scalar(w, key, k, K_INT, s);
        if (n < kd->min)
            return ls_cfg_pos_err(w->ctx, LS_EUSAGE, w->name, AT(key), "%s must be %s 0, got %lld",
                                  k, kd->min > 0 ? ">" : ">=", n);
        if (n == 0 && kd->zero_unset)
            return 0;
        *FIELD(base, kd->off, int64_t) = n;
        return 0;
    }
    default:
        return ls_err(w->ctx, LS_ERROR, "config: bad key table");
    }
}

/*
 * An unknown key: the message names the level and, when it can, the key
 * meant: the same key at another level ("it is a replica key"), else a
 * known key of this level within edit distance 2.
 */
static int unknown_key(walker *w, yaml_node_t *key, const key_table *t)
{
    const char *k = (const char *)key->data.scalar.value;
    const key_def *best = NULL;
    size_t best_d = 3, off = 0;

    for (size_t i = 0; i < NROWS(all_tables); i++) {
        if (all_tables[i] != t && find_key(all_tables[i], k, NULL, NULL))
            return ls_cfg_pos_err(w->ctx, LS_EUSAGE, w->name, AT(key),
                           "unknown key \"%s%s\" in %s: it is %s", t->prefix, k, t->what,
                           all_tables[i]->hint);
    }
    for (size_t i = 0; i < table_rows(t); i++) {
        const key_def *kd = table_row(t, i, &off);
        size_t d = edit_distance(k, kd->key);
        if (d < best_d) {
            best_d = d;
            best = kd;
        }
    }
    if (best)
        return ls_cfg_pos_err(w->ctx, LS_EUSAGE, w->name, AT(key),
                       "unknown key \"%s%s\" in %s (did you mean \"%s%s\"?)", t->prefix, k, t->what,
                       t->prefix, best->key);
    return ls_cfg_pos_err(w->ctx, LS_EUSAGE, w->name, AT(key), "unknown key \"%s%s\" in %s",
                          t->prefix, k, t->what);
}

/* Read one mapping level into `base` by table `t` (inline rows included). */
static int walk_map(walker *w, yaml_node_t *node, const key_table *t, void *base)
{
    uint64_t seen[MAX_ROWS / 64] = {0};
    if (node->type != YAML_MAPPING_NODE)
        return ls_cfg_pos_err(w->ctx, LS_EUSAGE, w->name, AT(node),
                              "%s: expected a mapping, got %s", t->what, node_kind(node));
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
         p++) {
        yaml_node_t *key = yaml_document_get_node(w->doc, p->key);
        yaml_node_t *val = yaml_document_get_node(w->doc, p->value);
        size_t idx = 0, off = 0;
        char k[128];
        if (key->type != YAML_SCALAR_NODE || node_is_null(key))
            return ls_cfg_pos_err(w->ctx, LS_EUSAGE, w->name, AT(key),
                                  "%s: a key must be a word, got %s", t->what,
                                  key->type == YAML_SCALAR_NODE ? "nothing" : node_kind(key));
        const key_def *kd = find_key(t, (const char *)key->data.scalar.value, &idx, &off);
        if (!kd)
            return unknown_key(w, key, t);
        snprintf(k, sizeof(k), "%s%s", t->prefix, kd->key);
        if (seen[idx / 64] & ((uint64_t)1 << (idx % 64)))
            return ls_cfg_pos_err(w->ctx, LS_EUSAGE, w->name, AT(key), "duplicate key \"%s\" in %s",
                                  k, t->what);
        seen[idx / 64] |= (uint64_t)1 << (idx % 64);
        int rc = set_value(w, key, k, val, kd, (char *)base + off);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Whole levels: free, copy, compare, inherit                             */

/* Free every field `t` describes in `base` (not base itself). */
static void free_fields(const key_table *t, void *base)
{
    size_t off = 0;
    for (size_t i = 0; i < table_rows(t); i++) {
        const key_def *kd = table_row(t, i, &off);
        void *b = (char *)base + off;
        switch (kd->kind) {
        case K_STR:
        case K_ENUM:
            free(*FIELD(b, kd->off, char *));
            break;
        case K_LIST: {
            char **arr = *FIELD(b, kd->off, char **);
            size_t n = *FIELD(b, kd->off_n, size_t);
            for (size_t j = 0; j < n; j++)
                free(arr[j]);
            free(arr);
            break;
        }
        case K_MAP:
            free_fields(kd->sub, (char *)b + kd->off);
            break;
        case K_SEQ: {
            char *arr = *FIELD(b, kd->off, char *);
            size_t n = *FIELD(b, kd->off_n, size_t);
            for (size_t j = 0; j < n; j++)
                free_fields(kd->sub, arr + j * kd->sub->size);
            free(arr);
            break;
        }
        default: /* K_ONE: its K_SEQ row frees the array */
            break;
        }
    }
}

/* A copy of the list src[0..n) into *dst (NULL on failure); 0 or LS_ENOMEM. */
static int copy_list(char ***dst, size_t *dst_n, char *const *src, size_t n)
{
    *dst = NULL;
    *dst_n = 0;
    if (!src)
        return 0;
    if (!(*dst = calloc(n ? n : 1, sizeof(char *))))
        return LS_ENOMEM;
    for (size_t j = 0; j < n; j++) {
        if (!((*dst)[j] = strdup(src[j])))
            return LS_ENOMEM;
        *dst_n = j + 1;
    }
    return 0;
}

/*
 * Make `base`, a byte copy of another level, own its fields: every string,
 * list and array it points to is replaced by a copy. On LS_ENOMEM the fields
 * not copied are NULL (and counts 0), so base is still fit for free_fields.
 */
static int copy_fields(const key_table *t, void *base)
{
    size_t off = 0;
    int rc = 0;
    for (size_t i = 0; i < table_rows(t); i++) {
        const key_def *kd = table_row(t, i, &off);
        void *b = (char *)base + off;
        switch (kd->kind) {
        case K_STR:
        case K_ENUM: {
            char **f = FIELD(b, kd->off, char *);
            if (*f && !(*f = strdup(*f)))
                rc = LS_ENOMEM;
            break;
        }
        case K_LIST: {
            char **src = *FIELD(b, kd->off, char **);
            if (copy_list(FIELD(b, kd->off, char **), FIELD(b, kd->off_n, size_t), src,
                          *FIELD(b, kd->off_n, size_t)) != 0)
                rc = LS_ENOMEM;
            break;
        }
        case K_MAP:
            if (copy_fields(kd->sub, (char *)b + kd->off) != 0)
                rc = LS_ENOMEM;
            break;
        case K_SEQ: {
            char *src = *FIELD(b, kd->off, char *), *arr = NULL;
            size_t n = *FIELD(b, kd->off_n, size_t), sz = kd->sub->size;
            if (src && !(arr = calloc(n ? n : 1, sz))) {
                n = 0;
                rc = LS_ENOMEM;
            }
            if (arr)
                memcpy(arr, src, n * sz);
            *FIELD(b, kd->off, char *) = arr;
            *FIELD(b, kd->off_n, size_t) = n;
            for (size_t j = 0; j < n; j++)
                if (copy_fields(kd->sub, arr + j * sz) != 0)
                    rc = LS_ENOMEM;
            break;
        }
        default:
            break;
        }
    }
    return rc;
}

/* Two strings, either possibly NULL, equal. */
static int str_equal(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* 1 when every field `t` describes is the same in `a` and `b`. */
static int equal_fields(const key_table *t, const void *a, const void *b)
{
    size_t off = 0;
    for (size_t i = 0; i < table_rows(t); i++) {
        const key_def *kd = table_row(t, i, &off);
        const char *x = (const char *)a + off, *y = (const char *)b + off;
        switch (kd->kind) {
        case K_STR:
        case K_ENUM:
            if (!str_equal(*FIELD(x, kd->off, char *), *FIELD(y, kd->off, char *)))
                return 0;
            break;
        case K_BOOL:
            if (*FIELD(x, kd->off, int) != *FIELD(y, kd->off, int))
                return 0;
            break;
        case K_DUR:
        case K_INT:
            if (*FIELD(x, kd->off, int64_t) != *FIELD(y, kd->off, int64_t))
                return 0;
            break;
        case K_LIST:
        case K_SEQ: {
            size_t n = *FIELD(x, kd->off_n, size_t);
            if (n != *FIELD(y, kd->off_n, size_t))
                return 0;
            for (size_t j = 0; j < n; j++)
                if (kd->kind == K_LIST
                        ? !str_equal((*FIELD(x, kd->off, char **))[j],
                                     (*FIELD(y, kd->off, char **))[j])
                        : !equal_fields(kd->sub, *FIELD(x, kd->off, char *) + j * kd->sub->size,
                                        *FIELD(y, kd->off, char *) + j * kd->sub->size))
                    return 0;
            break;
        }
        case K_MAP:
            if (!equal_fields(kd->sub, x + kd->off, y + kd->off))
                return 0;
            break;
        default: /* K_ONE: its K_SEQ row compares the array; K_COMPAT: no field */
            break;
        }
    }
    return 1;
}

/*
 * Give `dst` (a replica) every setting of table t that it lacks and `src`
 * (defaults: a db's or the top level's) has. Returns 0 or LS_ENOMEM.
 */
static int inherit_fields(const key_table *t, void *dst, const void *src)
{
    size_t off = 0;
    for (size_t i = 0; i < table_rows(t); i++) {
        const key_def *kd = table_row(t, i, &off);
        void *d = (char *)dst + off;
        const void *s = (const char *)src + off;
        switch (kd->kind) {
        case K_STR:
        case K_ENUM:
            if (!*FIELD(d, kd->off, char *) && *FIELD(s, kd->off, char *) &&
                !(*FIELD(d, kd->off, char *) = strdup(*FIELD(s, kd->off, char *))))
                return LS_ENOMEM;
            break;
        case K_BOOL:
            if (*FIELD(d, kd->off, int) < 0)
                *FIELD(d, kd->off, int) = *FIELD(s, kd->off, int);
            break;
        case K_DUR:
        case K_INT:
            if (*FIELD(d, kd->off, int64_t) < 0)
                *FIELD(d, kd->off, int64_t) = *FIELD(s, kd->off, int64_t);
            break;
        case K_LIST:
            if (*FIELD(d, kd->off_n, size_t) == 0 && *FIELD(s, kd->off_n, size_t) > 0) {
                free(*FIELD(d, kd->off, char **));
                if (copy_list(FIELD(d, kd->off, char **), FIELD(d, kd->off_n, size_t),
                              *FIELD(s, kd->off, char **), *FIELD(s, kd->off_n, size_t)) != 0)
                    return LS_ENOMEM;
            }
            break;
        case K_MAP:
            if (inherit_fields(kd->sub, (char *)d + kd->off, (const char *)s + kd->off) != 0)
                return LS_ENOMEM;
            break;
        default:
            break;
        }
    }
    return 0;
}

int ls_cfg_inherit_replica(ls_replica_cfg *r, const ls_replica_cfg *defaults)
{
    int rc = inherit_fields(&settings_table, r, defaults);
    return rc ? rc : inherit_fields(&snapshot_table, r, defaults);
}

int ls_cfg_db_copy(ls_db_cfg *db)
{
    return copy_fields(&db_table, db);
}

int ls_db_cfg_equal(const ls_db_cfg *a, const ls_db_cfg *b)
{
    return str_equal(a->rel_path, b->rel_path) && equal_fields(&db_table, a, b);
}

void ls_cfg_db_free(ls_db_cfg *db)
{
    free_fields(&db_table, db);
}

void ls_config_free(ls_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_dbs; i++)
        free(cfg->dbs[i].rel_path);
    free_fields(&top_table, cfg);
    free(cfg->source);
    free(cfg);
}

static ls_config *config_new(const char *source)
{
    ls_config *cfg = calloc(1, sizeof(*cfg));
    if (!cfg)
        return NULL;
    cfg->log_stderr = -1;
    cfg->retention_enabled = -1;
    cfg->socket_enabled = -1;
    cfg->shutdown_timeout_ms = -1;
    cfg->health_max_lag_ms = -1;
    replica_init(&cfg->defaults, 0, 0);
    if (!(cfg->source = strdup(source))) {
        free(cfg);
        return NULL;
    }
    return cfg;
}

/* ---------------------------------------------------------------------- */
/* Environment expansion                                                   */

/* Go's shell special variables: $1, $$, ${#} ... */
static int is_special_var(int c)
{
    return c && strchr("*#$@!?-0123456789", c) != NULL;
}

/* Append n bytes to a growing buffer. */
static int buf_add(char **b, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t nc = (*cap ? *cap : 64);
        while (nc < *len + n + 1)
            nc *= 2;
        char *nb = realloc(*b, nc);
        if (!nb)
            return LS_ENOMEM;
        *b = nb;
        *cap = nc;
    }
    memcpy(*b + *len, s, n);
    *len += n;
    (*b)[*len] = '\0';
    return 0;
}

/*
 * os.ExpandEnv: for each '$' that is not the last character, read a name:
 *   ${X} where X is one special character; else ${...} up to the first '}'
 *   ("${}" and an unclosed "${" are bad syntax and vanish); else one special
 *   character; else a run of [A-Za-z0-9_]. A name is replaced by its value
 *   ("" if unset; PID by the process id, whatever the environment says, as
 *   Litestream 0.5 does); no name (e.g. "$/") leaves the '$' in place.
 */
int ls_config_expand_env(const char *in, char **out)
{
    char *b = NULL, *name = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;

    *out = NULL;
    if ((rc = buf_add(&b, &len, &cap, "", 0)) != 0)
        goto cleanup;
    for (size_t i = 0; in[i];) {
        if (in[i] != '$' || in[i + 1] == '\0') {
            size_t run = strcspn(in + i + 1, "$") + 1;
            if ((rc = buf_add(&b, &len, &cap, in + i, run)) != 0)
                goto cleanup;
            i += run;
            continue;
        }
        const char *s = in + i + 1;
        size_t nstart = 0, nlen = 0, w = 0; /* name = s[nstart..nstart+nlen), w consumed */
        if (s[0] == '{') {
            if (is_special_var(s[1]) && s[2] == '}') {
                nstart = 1, nlen = 1, w = 3;
            } else {
                const char *close = strchr(s + 1, '}');
                if (!close)
                    w = 1;                  /* "${" unclosed: eat it */
                else if (close == s + 1)
                    w = 2;                  /* "${}": eat it */
                else
                    nstart = 1, nlen = (size_t)(close - s - 1), w = nlen + 2;
            }
        } else if (is_special_var(s[0])) {
            nlen = 1, w = 1;
        } else {
            while (isalnum((unsigned char)s[nlen]) || s[nlen] == '_')
                nlen++;
            w = nlen;
        }
        if (nlen > 0) {
            if (!(name = malloc(nlen + 1))) {
                rc = LS_ENOMEM;
                goto cleanup;
            }
            memcpy(name, s + nstart, nlen);
            name[nlen] = '\0';
            char pid[24];
            const char *v = getenv(name);
            if (strcmp(name, "PID") == 0) { /* Litestream 0.5.8+: always the process id */
                snprintf(pid, sizeof(pid), "%ld", (long)getpid());
                v = pid;
            }
            free(name);
            name = NULL;
            if (v && (rc = buf_add(&b, &len, &cap, v, strlen(v))) != 0)
                goto cleanup;
        } else if (w == 0 && (rc = buf_add(&b, &len, &cap, "$", 1)) != 0) {
            goto cleanup;
        }
        i += 1 + w;
    }
    *out = b;
    b = NULL;
cleanup:
    free(b);
    return rc;
}

const char *ls_config_default_path(void)
{
    const char *p = getenv("LITESAFE_CONFIG");
    return (p && *p) ? p : LS_CONFIG_DEFAULT_PATH;
}

/* ---------------------------------------------------------------------- */
/* Parse and load                                                          */

/* "<name>:<line>:<col>: <problem> (<context>)" from a failed libyaml parser. */
static int yaml_error(ls_ctx *ctx, const char *name, const yaml_parser_t *ps, const char *text)
{
    size_t line = ps->problem_mark.line + 1, col = ps->problem_mark.column + 1;
    if (ps->error == YAML_MEMORY_ERROR)
        return ls_err(ctx, LS_ENOMEM, "%s: out of memory parsing YAML", name);
    if (ps->error == YAML_READER_ERROR) {
        /* the reader reports a byte offset only */
        line = 1, col = 1;
        for (size_t i = 0; i < ps->problem_offset && text[i]; i++) {
            if (text[i] == '\n')
                line++, col = 1;
            else
                col++;
        }
    }
    if (ps->context)
        return ls_cfg_pos_err(ctx, LS_EUSAGE, name, line, col, "%s (%s at line %zu)",
                       ps->problem ? ps->problem : "invalid YAML", ps->context,
                       ps->context_mark.line + 1);
    return ls_cfg_pos_err(ctx, LS_EUSAGE, name, line, col, "%s",
                   ps->problem ? ps->problem : "invalid YAML");
}

/* ls_config_parse; its helpers return LS_ENOMEM without a message (the wrapper adds it). */
static int config_parse(ls_ctx *ctx, const char *text, size_t n, const char *name,
                        int expand_env, ls_config **out)
{
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    int parser_ok = 0, doc_ok = 0, rc = 0;
    char *buf = NULL;
    ls_config *cfg = NULL;

    *out = NULL;
    if (!name)
        name = "<config>";
    if (n && memchr(text, '\0', n))
        return ls_cfg_pos_err(ctx, LS_EUSAGE, name, 0, 0, "the file contains a NUL byte");
    if (expand_env) {
        char *raw = malloc(n + 1);
        if (!raw)
            return LS_ENOMEM;
        memcpy(raw, text, n);
        raw[n] = '\0';
        rc = ls_config_expand_env(raw, &buf);
        free(raw);
        if (rc)
            return rc;
    } else {
        if (!(buf = malloc(n + 1)))
            return LS_ENOMEM;
        memcpy(buf, text, n);
        buf[n] = '\0';
    }
    if (!(cfg = config_new(name))) {
        rc = LS_ENOMEM;
        goto cleanup;
    }

    /* 1. the first document */
    if (!yaml_parser_initialize(&parser)) {
        rc = LS_ENOMEM;
        goto cleanup;
    }
    parser_ok = 1;
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, strlen(buf));
    if (!yaml_parser_load(&parser, &doc)) {
        rc = yaml_error(ctx, name, &parser, buf);
        goto cleanup;
    }
    doc_ok = 1;

    /* 2. its root must be a mapping; an empty file is a config without dbs */
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && !node_is_null(root)) {
        walker w = {ctx, name, &doc};
        if (root->type != YAML_MAPPING_NODE) {
            rc = ls_cfg_pos_err(ctx, LS_EUSAGE, name, AT(root),
                                "the top level must be a mapping, got %s", node_kind(root));
            goto cleanup;
        }
        if ((rc = walk_map(&w, root, &top_table, cfg)) != 0)
            goto cleanup;
    }

    /* 3. nothing may follow it */
    if (!yaml_parser_load(&parser, &extra)) {
        rc = yaml_error(ctx, name, &parser, buf);
        goto cleanup;
    }
    root = yaml_document_get_root_node(&extra);
    if (root)
        rc = ls_cfg_pos_err(ctx, LS_EUSAGE, name, extra.start_mark.line + 1,
                            extra.start_mark.column + 1,
                            "a second YAML document: a config file holds one");
    yaml_document_delete(&extra);
    if (rc)
        goto cleanup;

    *out = cfg;
    cfg = NULL;
cleanup:
    if (doc_ok)
        yaml_document_delete(&doc);
    if (parser_ok)
        yaml_parser_delete(&parser);
    ls_config_free(cfg);
    free(buf);
    return rc;
}

int ls_config_parse(ls_ctx *ctx, const char *text, size_t n, const char *name, int expand_env,
                    ls_config **out)
{
    return ls_err_oom(ctx, config_parse(ctx, text, n, name, expand_env, out));
}

int ls_config_load(ls_ctx *ctx, const char *path, int expand_env, ls_config **out)
{
    FILE *f = NULL;
    char *text = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;

    *out = NULL;
    if (!(f = fopen(path, "rb"))) {
        rc = ls_err_errno(ctx, errno, "open %s", path);
        goto cleanup;
    }
    for (;;) {
        if (n == cap) {
            if (cap >= LS_CONFIG_MAX_SIZE) {
                rc = ls_err(ctx, LS_EUSAGE, "%s: larger than %u bytes: not a config file", path,
                            LS_CONFIG_MAX_SIZE);
                goto cleanup;
            }
            cap = cap ? cap * 2 : 4096;
            char *nt = realloc(text, cap);
            if (!nt) {
                rc = LS_ENOMEM;
                goto cleanup;
            }
            text = nt;
        }
        size_t got = fread(text + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                rc = ls_err_errno(ctx, errno ? errno : EIO, "read %s", path);
                goto cleanup;
            }
            break;
        }
    }
    rc = ls_config_parse(ctx, text ? text : "", n, path, expand_env, out);
cleanup:
    if (f)
        fclose(f);
    free(text);
    return ls_err_oom(ctx, rc);
}

int ls_config_from_urls(ls_ctx *ctx, const char *db_path, const char *const *urls, size_t n,
                        ls_config **out)
{
    ls_config *cfg = NULL;
    ls_db_cfg *db;
    int rc = LS_ENOMEM;

    *out = NULL;
    if (n == 0)
        return ls_err(ctx, LS_EUSAGE, "must specify at least one replica URL for %s", db_path);
    if (!(cfg = config_new("<args>")) || !(cfg->dbs = calloc(1, sizeof(ls_db_cfg))))
        goto cleanup;
    cfg->n_dbs = 1;
    db = &cfg->dbs[0];
    db_init(db, 0, 0);
    if (!(db->path = strdup(db_path)) || !(db->replicas = calloc(n, sizeof(ls_replica_cfg))))
        goto cleanup;
    db->n_replicas = n;
    for (size_t i = 0; i < n; i++)
        replica_init(&db->replicas[i], 0, 0);
    for (size_t i = 0; i < n; i++)
        if (!(db->replicas[i].url = strdup(urls[i])))
            goto cleanup;
    *out = cfg;
    cfg = NULL;
    rc = 0;
cleanup:
    ls_config_free(cfg);
    return ls_err_oom(ctx, rc);
}

int ls_config_copy_db(const ls_config *cfg, const ls_db_cfg *db, ls_config **out)
{
    ls_config *c = config_new(cfg->source);
    int rc = 0;
    *out = NULL;
    if (!c || !(c->dbs = calloc(1, sizeof(*c->dbs)))) {
        ls_config_free(c);
        return LS_ENOMEM;
    }
    c->dbs[0] = *db; /* a byte copy, then made to own its fields (as a dir scan does) */
    c->dbs[0].rel_path = NULL;
    c->n_dbs = 1;
    if (ls_cfg_db_copy(&c->dbs[0]) != 0 ||
        (db->rel_path && !(c->dbs[0].rel_path = strdup(db->rel_path))))
        rc = LS_ENOMEM;
    c->shutdown_timeout_ms = cfg->shutdown_timeout_ms;
    c->health_max_lag_ms = cfg->health_max_lag_ms;
    c->defaults_applied = cfg->defaults_applied;
    if (rc) {
        ls_config_free(c);
        return rc;
    }
    *out = c;
    return 0;
}
