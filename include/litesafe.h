/*
 * litesafe.h - public API of liblitesafe.
 *
 * liblitesafe keeps SQLite databases safe: consistent online backups, WAL
 * checkpoint control and inspection, verification, retention, and restore of a
 * backup file. The `litesafe` command is a thin layer over these calls.
 *
 * Conventions (the same for every call):
 *   - Every call takes an `ls_ctx *` first. The context carries the message of
 *     the last failure (ls_errmsg), the log callback and a cancel flag.
 *   - Calls return 0 on success and a negative LS_E* code on failure; the
 *     human-readable reason is then available from ls_errmsg(ctx).
 *   - The library never prints. It logs through the callback set with
 *     ls_ctx_set_log(); long operations report progress through a callback in
 *     their options.
 *   - Result structs are the caller's and filled by the callee, which zeroes
 *     the whole struct first. Strings in them are `char *` allocated by the
 *     call and owned by the struct (ls_backup_result, ls_checkpoint_result,
 *     ls_info_result, ls_verify_result, ls_prune_result,
 *     ls_restore_file_result); NULL when the call did not get that far or
 *     the value does not apply. Release them with the struct's
 *     ls_<name>_result_free() after every call, whether it succeeded or
 *     failed (a failed call may have filled some, and ls_verify fills all of
 *     them when a check fails). A _free call frees the strings and sets them
 *     to NULL; it is safe on a zeroed struct, twice, and with NULL. Release a
 *     struct before passing it to a call again: the call zeroes it, and what
 *     it held would leak. Small arrays of a fixed, known size (a hex
 *     SHA-256, a journal mode, a generation name) stay in the struct, and a
 *     result without strings (ls_restore_result, ls_validate_result) needs
 *     no release.
 *   - One ls_ctx must not be used by two threads at once.
 */
#ifndef LITESAFE_H
#define LITESAFE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* LS_VERSION_MAJOR, LS_VERSION_MINOR, LS_VERSION_PATCH (integers) and LS_VERSION
 * ("MAJOR.MINOR.PATCH"): the version of this header. ls_version() gives the
 * version of the library linked in, which is the same unless the build mixes
 * them up. */
#include "litesafe_version.h"

/* Error codes. 0 is success; every failure is negative. */
enum {
    LS_OK = 0,
    LS_ERROR = -1,    /* unclassified runtime failure */
    LS_ENOENT = -2,   /* a file the operation needs does not exist */
    LS_EEXIST = -3,   /* a destination already exists (never overwritten) */
    LS_ENOTDB = -4,   /* the file is not an SQLite database */
    LS_ECORRUPT = -5, /* integrity check, checksum or hash mismatch */
    LS_EBUSY = -6,    /* database locked / in use by another process */
    LS_EIO = -7,      /* read/write/fsync failure (includes disk full) */
    LS_ENOSPC = -8,   /* no space left on the destination device */
    LS_EUSAGE = -9,   /* invalid argument or option */
    LS_ENOTWAL = -10, /* a WAL-only operation on a database not in WAL mode */
    LS_EPERM = -11,   /* permission denied */
    LS_ECANCEL = -12, /* cancelled through ls_ctx_cancel() */
    LS_ENOMEM = -13,  /* out of memory */
    LS_ENET = -14     /* a remote server could not be reached or failed in a way that
                         may pass (connection refused or reset, timeout, HTTP 5xx or
                         429, SFTP channel error): worth retrying */
};

/* Log levels, in increasing severity. */
enum { LS_LOG_DEBUG = 0, LS_LOG_INFO = 1, LS_LOG_WARN = 2, LS_LOG_ERROR = 3 };

typedef struct ls_ctx ls_ctx;

/*
 * Log callback: `msg` is one event as "text key=value key=value". It is only
 * called for levels >= the level given to ls_ctx_set_log().
 */
typedef void (*ls_log_fn)(void *ud, int level, const char *msg);

/*
 * Progress callback for long operations: `done` of `total` units (pages for a
 * backup). Return non-zero to cancel the operation (it then fails with
 * LS_ECANCEL and leaves nothing behind).
 */
typedef int (*ls_progress_fn)(void *ud, uint64_t done, uint64_t total);

/* A new context (no log callback, no error): 0 or LS_ENOMEM. */
int ls_ctx_new(ls_ctx **out);
/* Free a context; NULL is a no-op. Nothing using it may still run. */
void ls_ctx_free(ls_ctx *ctx);
/* Message of the last failure on this context ("" if none). Borrowed. */
const char *ls_errmsg(const ls_ctx *ctx);
/* Code of the last failure on this context (0 if none). */
int ls_errcode(const ls_ctx *ctx);
/*
 * Record a failure on ctx, as the library's calls do (for an application's
 * own layers over it): the printf-formatted message and `code`, which is
 * returned.
 */
int ls_ctx_set_error(ls_ctx *ctx, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Send events of `level` (LS_LOG_*) and above to fn(ud, ...); fn NULL turns logging off. */
void ls_ctx_set_log(ls_ctx *ctx, ls_log_fn fn, void *ud, int level);
/* Ask running operations on this context to stop; safe from a signal handler. */
void ls_ctx_cancel(ls_ctx *ctx);
/* Short name of an error code ("ENOENT"...). */
const char *ls_strerror(int code);

/* ---------------------------------------------------------------------- */
/* Version and global state                                               */

/* The library's version, "MAJOR.MINOR.PATCH" (LS_VERSION when it was built). Static. */
const char *ls_version(void);

/*
 * Initialise the global state of the libraries liblitesafe uses for remote
 * replicas (libcurl for S3 and Azure, libssh2 for SFTP). Returns 0, or LS_EIO
 * when one of them cannot be initialised (nothing is left initialised then).
 * Reference-counted: each successful call must be matched by one
 * ls_library_shutdown(); the first call does the work, later ones only count.
 *
 * Thread safety: the global initialisation of libcurl and libssh2 is not
 * thread-safe with respect to anything else in the process using them. Call
 * ls_library_init() from one thread at program start, before any other thread
 * uses liblitesafe (or libcurl/libssh2), and ls_library_shutdown() at the end,
 * once every other thread has stopped using them and every context and handle
 * of the library is closed. The two calls are serialised with each other, but
 * not with other users of libcurl or libssh2.
 *
 * Calling it is the documented way. A program that never does still works:
 * the first remote replica opened initialises the libraries itself (once, at
 * that moment, with the same thread-safety caveat) and they stay initialised
 * until exit, or until the last ls_library_shutdown() of a later
 * ls_library_init().
 */
int ls_library_init(void);
/*
 * Release one reference taken by ls_library_init(); the last one cleans up
 * libcurl's and libssh2's global state. A call without a matching init does
 * nothing.
 */
void ls_library_shutdown(void);

/* ---------------------------------------------------------------------- */
/* Backup                                                                  */

typedef struct ls_backup_opts {
    int compact;                /* 1: VACUUM INTO semantics (no free pages) */
    int make_dir;               /* 1: create DEST's directory (0700) once the source checks pass */
    int busy_timeout_ms;        /* wait this long for locks; 0 means 5000 */
    ls_progress_fn progress;    /* may be NULL */
    void *progress_ud;
} ls_backup_opts;

typedef struct ls_backup_result {
    char *source;               /* absolute path of the source database */
    char *destination;          /* absolute path of the published backup */
    uint64_t size_bytes;        /* size of the destination file */
    char sha256[65];            /* lowercase hex SHA-256 of the destination bytes */
    uint32_t page_size;         /* bytes per page */
    uint64_t page_count;        /* pages copied */
    uint64_t wal_frames;        /* committed WAL frames the copy included */
    uint64_t elapsed_ms;        /* wall time of the whole operation */
    int compact;                /* copy made with VACUUM INTO semantics */
    int retries;                /* times the consistent read had to start over */
} ls_backup_result;

/*
 * Consistent online copy of `src` (writers keep writing) to `dest`.
 * `dest` must not exist; it is published atomically with the source's
 * permission bits, and a failure leaves no file at `dest` and no temp file.
 * Returns 0, LS_ENOENT (no source), LS_ENOTDB, LS_EEXIST (dest exists),
 * LS_EIO/LS_ENOSPC (write failed), LS_EBUSY, LS_ECANCEL.
 */
int ls_backup(ls_ctx *ctx, const char *src, const char *dest, const ls_backup_opts *opts,
              ls_backup_result *res);
/* Free the strings of `res` (source, destination) and set them to NULL; the
 * other fields stay. Safe on a zeroed struct, after a failed ls_backup, twice,
 * and with NULL. */
void ls_backup_result_free(ls_backup_result *res);

/*
 * Path of a timestamped backup of `src` in `dir` (default: <src dir>/backups):
 * "<dir>/<src base name without .db/.sqlite/...>-YYYYMMDDTHHMMSSZ.db", with the
 * UTC time `t`. `dir` is created (0700) when `mkdir_it` is set; prefer leaving
 * that to ls_backup_opts.make_dir, which creates it only once the source has
 * been checked.
 */
int ls_backup_path(ls_ctx *ctx, const char *src, const char *dir, int64_t t, int mkdir_it,
                   char *out, size_t outsz);

/* ---------------------------------------------------------------------- */
/* Checkpoint                                                              */

typedef enum {
    LS_CKPT_PASSIVE = 0,
    LS_CKPT_FULL = 1,
    LS_CKPT_RESTART = 2,
    LS_CKPT_TRUNCATE = 3
} ls_ckpt_mode;

typedef struct ls_checkpoint_result {
    char *database;             /* absolute path of the database */
    ls_ckpt_mode mode;
    int busy;                   /* 1 if the checkpoint could not finish (readers/writers) */
    int64_t wal_pages;          /* frames in the WAL at the end: 0 if not WAL mode (nothing
                                   to do), -1 if busy before the checkpoint could start */
    int64_t checkpointed_pages; /* of those, frames copied back (the same 0 and -1 cases) */
    int fully_checkpointed;     /* 1 when not busy and every frame is in the database file */
    int wal_mode;               /* 0: database not in WAL mode, nothing to do */
    uint64_t elapsed_ms;
} ls_checkpoint_result;

/* Parse "passive|full|restart|truncate" in any case. Returns 0 or LS_EUSAGE.
 * ls_ckpt_mode_name gives SQLite's upper-case name ("PASSIVE", ...). */
int ls_ckpt_mode_parse(const char *s, ls_ckpt_mode *out);
const char *ls_ckpt_mode_name(ls_ckpt_mode mode);

/*
 * Run a WAL checkpoint in `mode`. A busy result (a reader pinning an old
 * snapshot, a writer holding the lock past busy_timeout_ms) is not an error:
 * res->busy is set and 0 returned. busy_timeout_ms < 0 means 5000.
 */
int ls_checkpoint(ls_ctx *ctx, const char *db, ls_ckpt_mode mode, int busy_timeout_ms,
                  ls_checkpoint_result *res);
/* Free res->database and set it to NULL; the other fields stay. Safe on a
 * zeroed struct, after a failed ls_checkpoint, twice, and with NULL. */
void ls_checkpoint_result_free(ls_checkpoint_result *res);

/* ---------------------------------------------------------------------- */
/* Info (strictly read-only: never opens the database through SQLite)     */

typedef struct ls_info_result {
    char *path;                 /* absolute path */
    uint64_t size_bytes;        /* size of the database file */
    char journal_mode[16];      /* "wal" or "delete" (rollback journal) */
    uint32_t page_size;
    uint64_t page_count;        /* as of the last commit (WAL included) */
    uint64_t freelist_count;    /* as of the last commit (WAL included) */
    uint32_t schema_cookie;     /* header offset 40, latest version */
    uint32_t text_encoding;     /* 1 utf-8, 2 utf-16le, 3 utf-16be */
    int wal_file_exists;
    uint64_t wal_size_bytes;
    int wal_header_valid;       /* the WAL header checksum is right */
    uint64_t wal_frames;        /* valid frames up to the last commit */
    uint64_t wal_frames_total;  /* frames the file could hold by its size */
    uint32_t wal_salt1, wal_salt2;
    uint32_t wal_checkpoint_seq;
    uint64_t wal_last_commit_frame; /* 1-based frame number, 0 if none */
    uint64_t wal_commits;       /* commit frames among the valid frames */
    int shm_file_exists;
    int journal_file_exists;    /* a rollback -journal file is present */
    int meta_dir_exists;        /* .<name>-litesafe/ present next to the db */
    int litestream_meta_dir_exists; /* .<name>-litestream/ present */
    char *meta_dir;             /* absolute path of .<name>-litesafe/ (present or not) */
} ls_info_result;

/* Inspect `db`. Returns 0, LS_ENOENT, LS_ENOTDB (not SQLite; a zero-length file is
 * an empty database). */
int ls_info(ls_ctx *ctx, const char *db, ls_info_result *res);
/* Free the strings of `res` (path, meta_dir) and set them to NULL; the other
 * fields stay. Safe on a zeroed struct, after a failed ls_info, twice, and
 * with NULL. */
void ls_info_result_free(ls_info_result *res);

/* ---------------------------------------------------------------------- */
/* Verify                                                                  */

typedef struct ls_verify_result {
    char *path;                 /* absolute path of the file checked */
    uint64_t size_bytes;
    char sha256[65];            /* SHA-256 of the file's bytes */
    int sha256_match;           /* -1 not asked, 0 mismatch, 1 match */
    int integrity_ok;           /* PRAGMA integrity_check said "ok" */
    char *integrity_message;    /* first problems reported (at most 1023 bytes), or "ok" */
    uint32_t page_size;
    uint64_t page_count;
    char journal_mode[16];
} ls_verify_result;

/*
 * Integrity check of FILE (without writing anything next to it) and, if
 * `expect_sha256` is non-NULL, comparison with that hex digest.
 * Returns 0 when everything holds, LS_ECORRUPT when a check failed (res filled),
 * LS_ENOENT, LS_ENOTDB, LS_EUSAGE (malformed expected digest).
 */
int ls_verify(ls_ctx *ctx, const char *file, const char *expect_sha256, ls_verify_result *res);
/* Free the strings of `res` (path, integrity_message) and set them to NULL;
 * the other fields stay. Safe on a zeroed struct, after a failed ls_verify,
 * twice, and with NULL. */
void ls_verify_result_free(ls_verify_result *res);

/* ---------------------------------------------------------------------- */
/* Prune                                                                   */

typedef struct ls_prune_opts {
    int64_t keep;               /* keep this many newest backups per database; <0 unset */
    int64_t keep_within_s;      /* keep backups younger than this; <0 unset */
    int dry_run;                /* report, delete nothing */
    int64_t now;                /* reference time (unix seconds); 0 means now */
    /* called for every backup examined, kept or deleted; may be NULL */
    void (*each)(void *ud, const char *path, int64_t t, int deleted);
    void *each_ud;
} ls_prune_opts;

typedef struct ls_prune_result {
    char *dir;                  /* absolute path of the directory pruned */
    uint64_t examined;          /* timestamped backups found */
    uint64_t kept;
    uint64_t deleted;
    uint64_t bytes_freed;
} ls_prune_result;

/*
 * Retention over the timestamped backups (<name>-YYYYMMDDTHHMMSSZ.db) in DIR.
 * Other files are never touched. With both `keep` and `keep_within_s`, a backup
 * is kept if either rule keeps it. The newest backup of each name is always kept.
 */
int ls_prune(ls_ctx *ctx, const char *dir, const ls_prune_opts *opts, ls_prune_result *res);
/* Free res->dir and set it to NULL; the counts stay. Safe on a zeroed struct,
 * after a failed ls_prune, twice, and with NULL. */
void ls_prune_result_free(ls_prune_result *res);

/* ---------------------------------------------------------------------- */
/* Restore from a backup file                                              */

typedef struct ls_restore_file_result {
    char *source;               /* the backup restored from (absolute path) */
    char *destination;          /* the restored database (absolute path) */
    char *pre_restore;          /* where the old database went (NULL if none) */
    uint64_t size_bytes;
    char sha256[65];
    uint64_t page_count;
    uint64_t elapsed_ms;
} ls_restore_file_result;

/*
 * Verify `backup` (integrity check), then write it to `out` (must not exist).
 * With `replace` set instead, `out` is a live database path to swap the backup
 * into: refused (LS_EBUSY) while any process has it open; the old database and
 * its -wal move aside to <out>.pre-restore(-wal) (refused with LS_EEXIST if that
 * exists), a stale -shm is removed, and the backup is published atomically.
 */
int ls_restore_file(ls_ctx *ctx, const char *backup, const char *out, int replace,
                    ls_restore_file_result *res);
/* Free the strings of `res` (source, destination, pre_restore) and set them to
 * NULL; the other fields stay. Safe on a zeroed struct, after a failed
 * ls_restore_file, twice, and with NULL. */
void ls_restore_file_result_free(ls_restore_file_result *res);

/* ---------------------------------------------------------------------- */
/* Replication: options, configuration, the replicator                     */
/*
 * Option structs of the replication API are versioned (libgit2's way): the
 * first member is the version of the struct the caller was compiled with.
 * Initialise one with its LS_*_OPTIONS_INIT macro or its ls_*_options_init()
 * call, then set what you need; a call given a version it does not know
 * fails with LS_EUSAGE. Unset numbers are -1 (the default applies), unset
 * strings NULL. Nothing the caller passes is kept: strings are copied.
 */

/* Size of a generation name with its NUL: 16 lowercase hex digits. */
#define LS_GENERATION_SIZE 17

typedef struct ls_storage ls_storage; /* a backend: see litesafe/sys/storage.h */

#define LS_REPLICA_OPTIONS_VERSION 1
/*
 * One replica: a URL, or a type and the fields the configuration file has
 * (the same names, with '-' as '_'), or an embedder's own backend.
 *   url: "file:///ABS/DIR" or a plain path, "s3://BUCKET/PATH",
 *        "gcs://BUCKET/PATH", "abs://[ACCOUNT@]CONTAINER/PATH",
 *        "sftp://[USER[:PASSWORD]@]HOST[:PORT]/PATH" (Litestream 0.3's forms).
 * Credentials not given come from the environment as in the configuration
 * file (LITESTREAM_ACCESS_KEY_ID, AWS_ACCESS_KEY_ID, ...).
 */
typedef struct ls_replica_options {
    unsigned int version;       /* LS_REPLICA_OPTIONS_VERSION */
    const char *name;           /* default: the type ("file", "s3", ...), or the storage's name */
    const char *url;            /* exclusive with type/path/bucket/host */
    const char *type;           /* file|s3|gcs|abs|sftp (default from url, else file) */
    const char *path;           /* file: directory; others: key prefix / remote directory */
    /* s3, gcs */
    const char *bucket, *region, *endpoint;
    int force_path_style;       /* -1 unset, 0 or 1 */
    int skip_verify;            /* -1 unset, 0 or 1 (TLS certificate check off) */
    const char *ca_file;        /* CA bundle for TLS */
    const char *access_key_id, *secret_access_key, *session_token;
    /* sftp: host is "HOST[:PORT]" */
    const char *host, *user, *password, *key_path, *known_hosts;
    const char *host_key;       /* "SHA256:<base64>" or an authorized-keys line */
    /* abs */
    const char *account_name, *account_key;
    /* timing, milliseconds; -1: the configuration file's defaults */
    int64_t sync_interval_ms;       /* least time between two uploads (default: 0 for file
                                     * and .storage, 1 s for s3/gcs/abs/sftp) */
    int64_t snapshot_interval_ms;   /* a new snapshot this often (default 0: when needed) */
    int64_t retention_ms;           /* keep snapshots younger than this (default 24h) */
    int64_t retention_check_interval_ms; /* default 1h */
    int64_t validation_interval_ms; /* compare with the database this often (default 0: off) */
    /*
     * An embedder's own backend (litesafe/sys/storage.h) instead of url or
     * type: it becomes the replicator's once ls_replicator_add_replica()
     * returns 0 (closed with it), and stays the caller's on failure.
     */
    ls_storage *storage;
} ls_replica_options;

#define LS_REPLICA_OPTIONS_INIT                                                                    \
    {LS_REPLICA_OPTIONS_VERSION, NULL, NULL, NULL, NULL, NULL, NULL, NULL, -1, -1, NULL, NULL,   \
     NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, -1, -1, -1, -1, -1, NULL}
/* Set *o to LS_REPLICA_OPTIONS_INIT of `version`; LS_EUSAGE for an unknown version. */
int ls_replica_options_init(ls_replica_options *o, unsigned int version);

#define LS_REPLICATOR_OPTIONS_VERSION 1
/* The database side of a replicator (the configuration file's dbs[] settings). */
typedef struct ls_replicator_options {
    unsigned int version;               /* LS_REPLICATOR_OPTIONS_VERSION */
    const char *meta_path;              /* spool directory (default <dir>/.<name>-litesafe) */
    int64_t monitor_interval_ms;        /* fallback poll when inotify misses (default 1s) */
    int64_t checkpoint_interval_ms;     /* default 1m */
    int64_t min_checkpoint_page_count;  /* default 1000 */
    int64_t max_checkpoint_page_count;  /* default 10000 */
    int64_t busy_timeout_ms;            /* a checkpoint's wait for the write lock */
    int64_t shutdown_timeout_ms;        /* how long ls_replicator_stop may flush (default 30s) */
    int64_t max_spool_size;             /* bytes the spool keeps for a replica that is away
                                           before dropping it (it then takes a fresh snapshot);
                                           default (<= 0): the larger of 1 GiB and twice the
                                           database */
} ls_replicator_options;

#define LS_REPLICATOR_OPTIONS_INIT {LS_REPLICATOR_OPTIONS_VERSION, NULL, -1, -1, -1, -1, -1, -1, -1}
/* Set *o to LS_REPLICATOR_OPTIONS_INIT of `version`; LS_EUSAGE for an unknown version. */
int ls_replicator_options_init(ls_replicator_options *o, unsigned int version);

/*
 * A replication configuration: a YAML file in Litestream 0.3's or 0.5's
 * format (see the README), or `replicate DB URL...`'s arguments. Opaque;
 * read with the accessors below. Defaults are applied and everything is
 * validated when it is opened, so an error is a configuration error
 * ("<file>:<line>:<col>: ..." where the position is known, LS_EUSAGE).
 */
typedef struct ls_config ls_config;

/* Default configuration path: $LITESAFE_CONFIG, else /etc/litesafe.yml. Static. */
const char *ls_config_default_path(void);
/*
 * Open the YAML file at `path` ($VAR and ${VAR} expanded unless no_expand_env).
 * LS_ENOENT when it does not exist, LS_EUSAGE when it is wrong.
 */
int ls_config_open(ls_ctx *ctx, const char *path, int no_expand_env, ls_config **out);
/* The configuration of one database `db` and one replica per URL (a path is a file replica). */
int ls_config_open_urls(ls_ctx *ctx, const char *db, const char *const *urls, size_t n,
                        ls_config **out);
/* Free a configuration; NULL is a no-op. */
void ls_config_free(ls_config *cfg);
/* Number of databases (directory entries of Litestream 0.5 expanded, one per database found). */
size_t ls_config_db_count(const ls_config *cfg);
/*
 * The index of the database `path` names (resolved as the configuration
 * resolves its paths: "~" expanded, made absolute), or -1 when it is not one
 * of cfg's.
 */
long ls_config_db_index(const ls_config *cfg, const char *path);
/* Absolute path of database i; NULL when i is out of range. Borrowed from cfg. */
const char *ls_config_db_path(const ls_config *cfg, size_t i);
/* Number of replicas of database db (0 when db is out of range). */
size_t ls_config_replica_count(const ls_config *cfg, size_t db);
/* Name and type ("file", "s3", "gcs", "abs", "sftp") of replica r of database db. */
const char *ls_config_replica_name(const ls_config *cfg, size_t db, size_t r);
const char *ls_config_replica_type(const ls_config *cfg, size_t db, size_t r);
/* Top-level settings (NULL when not given): exec, log level, log type ("text"|"json"),
 * log file (logging.file, an absolute path), metrics address. */
const char *ls_config_exec(const ls_config *cfg);
const char *ls_config_log_level(const ls_config *cfg);
const char *ls_config_log_type(const ls_config *cfg);
const char *ls_config_log_file(const ls_config *cfg);
/* logging.stderr: 1 when log lines go to stderr as well as to the log file. */
int ls_config_log_stderr(const ls_config *cfg);
/*
 * 1 when database i of `a` and database j of `b` have the same settings:
 * path, every db key and every replica (in order, with what it inherits
 * from the top level); 0 otherwise or when an index is out of range. A
 * reload keeps a database running as it is when this says 1.
 */
int ls_config_db_equal(const ls_config *a, size_t i, const ls_config *b, size_t j);
const char *ls_config_addr(const ls_config *cfg);
/* shutdown-timeout in milliseconds (default 30000). */
int64_t ls_config_shutdown_timeout_ms(const ls_config *cfg);
/*
 * health-max-lag in milliseconds (default 60000): the replica lag past which
 * replicate's /healthz (served on addr) answers 503.
 */
int64_t ls_config_health_max_lag_ms(const ls_config *cfg);
/*
 * The control socket of `litesafe replicate` for cfg, into out (n bytes):
 * socket.path if given; for a configuration of one database from URLs,
 * "control.sock" in that database's meta directory (so `litesafe status DB`
 * finds it); otherwise $XDG_RUNTIME_DIR/litesafe.sock,
 * /run/litesafe/litesafe.sock for root, /tmp/litesafe-UID/litesafe.sock.
 * LS_ENOENT when socket.enabled is false; LS_EUSAGE when n is too small.
 */
int ls_config_socket(const ls_config *cfg, char *out, size_t n);
/* socket.permissions: the socket file's mode (default 0600). */
int ls_config_socket_mode(const ls_config *cfg);

/*
 * A replicator: continuous replication of databases to their replicas, in
 * threads of its own (one per database, following its WAL through inotify,
 * and one per replica). Built in code (ls_replicator_open on one database,
 * then ls_replicator_add_replica) or from a configuration
 * (ls_replicator_open_config, every database of it, or
 * ls_replicator_open_config_db, one), then started.
 *
 * Threads: ls_replicator_notify() and ls_replicator_interrupt() may be
 * called from any thread at any time (notify from sqlite3_wal_hook,
 * interrupt from a signal handler). The other calls must not run in two
 * threads at once. Errors are recorded on the ls_ctx given at open, which
 * must outlive the replicator; its log callback receives the replicator's
 * log (from the replicator's threads: the callback must be thread-safe).
 *
 * Problems of one database or replica after start never stop it: they are
 * logged, retried, and shown by ls_replicator_status().
 */
typedef struct ls_replicator ls_replicator;

/*
 * A replicator for database `db` (it need not exist yet: it is attached
 * when it exists and is in WAL mode). `o` may be NULL for the defaults.
 * Nothing is opened or contacted until ls_replicator_start().
 */
int ls_replicator_open(ls_ctx *ctx, const char *db, const ls_replicator_options *o,
                       ls_replicator **out);
/* A replicator for every database and replica of `cfg`, which must stay open until
 * ls_replicator_close(). */
int ls_replicator_open_config(ls_ctx *ctx, const ls_config *cfg, ls_replicator **out);
/*
 * A replicator for database `db` (an index below ls_config_db_count) of
 * `cfg` and its replicas. It keeps a copy of that database's settings (cfg
 * may be freed at once) and checks them as ls_replicator_start does (its
 * replicas' backends are opened, nothing is contacted): an error here is a
 * configuration error (LS_EUSAGE, naming the replica). Several of them, one
 * per database, let a caller stop, start or change one database while the
 * others run (what `replicate` does on SIGHUP); give each its own ctx when
 * they are stopped from different threads.
 */
int ls_replicator_open_config_db(ls_ctx *ctx, const ls_config *cfg, size_t db,
                                 ls_replicator **out);
/* Add a replica (before start). LS_EUSAGE for a bad URL or option, naming it. */
int ls_replicator_add_replica(ls_replicator *r, const ls_replica_options *o);
/*
 * Check every replica's settings and open their backends (nothing is
 * contacted yet: an error here is a configuration error), then start the
 * threads. Returns at once.
 */
int ls_replicator_start(ls_replicator *r);
/*
 * Block until every database had its first attach attempt (so an
 * application started next finds replication running where its database
 * exists), at most timeout_ms. 0, or LS_EBUSY on timeout.
 */
int ls_replicator_wait_started(ls_replicator *r, int64_t timeout_ms);
/*
 * Tell the replicator that a database changed (e.g. from sqlite3_wal_hook),
 * so it looks at once instead of waiting for inotify or the poll.
 * Cheap, never blocks, safe from any thread; `db` NULL means every database.
 */
void ls_replicator_notify(ls_replicator *r, const char *db);
/*
 * The durable barrier: return 0 once everything committed to the
 * databases before the call is on every replica (restorable), LS_EBUSY
 * when timeout_ms passed first (the message names the replica that lags
 * and its last error), LS_ENOENT when a database is not attached (missing
 * or not in WAL mode), LS_ECANCEL after a stop.
 */
int ls_replicator_sync(ls_replicator *r, int64_t timeout_ms);

/* Flags of ls_replicator_sync_db. */
#define LS_SYNC_HURRY 0x1 /* ship now: end the replicas' sync-interval wait */
#define LS_SYNC_SPOOL 0x2 /* return once the commits are in the local spool */
/*
 * The barrier for database `db` (an absolute path as configured; NULL: every
 * database), recording errors on `ctx` (NULL: the replicator's). Without
 * LS_SYNC_HURRY it rides the replicas' own cadence: it adds no upload, and
 * waits at most one sync-interval beyond the upload. ls_replicator_sync is
 * this with db NULL and LS_SYNC_HURRY. LS_ENOENT also when `db` is not one of
 * the replicator's databases. Unlike the calls around it, this one and
 * ls_replicator_status may run in any thread while the replicator runs
 * (give each thread its own ctx).
 */
int ls_replicator_sync_db(ls_replicator *r, ls_ctx *ctx, const char *db, unsigned flags,
                          int64_t timeout_ms);

/* One replica's state, as ls_replicator_status() reports it. */
typedef struct ls_replica_status {
    const char *database;       /* the database's path (borrowed from the replicator) */
    const char *name;           /* the replica's name (borrowed) */
    const char *type;           /* "file", "s3", ... (borrowed) */
    char generation[LS_GENERATION_SIZE]; /* generation it holds ("" none yet) */
    uint32_t index;             /* position it holds: WAL index ... */
    uint64_t offset;            /* ... and byte offset in it */
    int restorable;             /* it has a snapshot of that generation */
    int attached;               /* the database is attached (exists, WAL mode) */
    int64_t lag_ms;             /* age of the oldest commit not yet on it; 0 when current */
    uint64_t segments, snapshots, bytes; /* uploads since start */
    int last_error;             /* the last step's failure (LS_E*), 0 while it works */
    const char *last_error_message; /* its message ("" while it works; owned by the array) */
    /* The database side (the same in every replica of one database). */
    char local_generation[LS_GENERATION_SIZE]; /* the spool's generation ("" none yet) */
    uint32_t local_index;       /* the spool's end: WAL index ... */
    uint64_t local_offset;      /* ... and committed bytes in it */
    uint64_t db_size;           /* bytes of the database file (0: missing) */
    uint64_t wal_size;          /* bytes of its -wal file (0: none) */
    uint64_t spool_size;        /* bytes in the spool (every generation kept locally) */
    uint64_t wal_bytes;         /* WAL bytes copied to the spool since start */
    /* Progress and cadence. */
    uint64_t lag_bytes;         /* spool bytes not on this replica yet (all of the
                                   generation's when it holds another one) */
    int64_t last_success_ms;    /* unix ms of its last stored upload (0: none since start) */
    int64_t last_error_ms;      /* unix ms of the last failure (0: none since start) */
    int64_t next_snapshot_ms;   /* unix ms the next scheduled snapshot is due (0: none) */
    int64_t next_retention_ms;  /* unix ms the next retention pass is due (0: never) */
    /* Requests to its storage since start (every try of a retried call counts). */
    uint64_t puts, gets, lists, stats, deletes;
    uint64_t errors_net;        /* failed requests: server away, 5xx, timeouts */
    uint64_t errors_auth;       /* failed requests: credentials or signature refused */
    uint64_t errors_other;      /* failed requests: anything else */
    double requests_per_sec;    /* mean over the last minute */
    /* Times its unshipped WAL was dropped from the spool (max-spool-size) since start. */
    uint64_t spool_drops;
    /* requests_per_sec over a 30-day month at the replica's request-price (the price of
     * 1,000 requests; default 0.005 for s3, gcs and abs, 0 for file and sftp). */
    double monthly_request_cost;
} ls_replica_status;

/*
 * A snapshot of every replica's state: *out is a malloc'd array of *n
 * entries (free it with ls_replica_status_free); valid until the
 * replicator is closed.
 */
int ls_replicator_status(ls_replicator *r, ls_replica_status **out, size_t *n);
/* Free what ls_replicator_status() returned; NULL is a no-op. */
void ls_replica_status_free(ls_replica_status *st);
/*
 * 1 while the replicator's threads run (after a start, before a stop); 0
 * if they ended on their own (a failure at start, recorded on the ctx).
 */
int ls_replicator_running(ls_replicator *r);
/*
 * Stop: ship everything committed before the call to every replica,
 * retrying through transient failures for up to timeout_ms (< 0: the
 * shutdown timeout of the options or configuration, default 30 s), then
 * stop every thread. 0 when every replica holds it; LS_EIO naming the
 * replicas that do not. A replicator never started returns 0.
 */
int ls_replicator_stop(ls_replicator *r, int64_t timeout_ms);
/*
 * Cut a running or later ls_replicator_stop() short: it stops at once
 * (async-signal-safe; a second SIGTERM).
 */
void ls_replicator_interrupt(ls_replicator *r);
/* Stop at once if running (no flush) and free everything; NULL is a no-op. */
void ls_replicator_close(ls_replicator *r);

/* ---------------------------------------------------------------------- */
/* Replicas: restore, listing, validation                                   */

/*
 * A target: the replicas a restore, listing or validation works on, from a
 * replica URL, or from a database path looked up in a configuration file.
 */
typedef struct ls_target ls_target;

#define LS_TARGET_OPTIONS_VERSION 1
typedef struct ls_target_options {
    unsigned int version;       /* LS_TARGET_OPTIONS_VERSION */
    const char *config_path;    /* NULL: ls_config_default_path() */
    int no_expand_env;          /* do not expand $VAR in the configuration */
    const char *replica;        /* only the replica of this name (not with a URL) */
} ls_target_options;
#define LS_TARGET_OPTIONS_INIT {LS_TARGET_OPTIONS_VERSION, NULL, 0, NULL}
/* Set *o to LS_TARGET_OPTIONS_INIT of `version`; LS_EUSAGE for an unknown version. */
int ls_target_options_init(ls_target_options *o, unsigned int version);

/* 1 if `s` is a replica URL ("^\w+://", Litestream's rule), 0 if it is a path. */
int ls_is_url(const char *s);

/*
 * Resolve `arg`: a replica URL ("^\w+://"), else a database of the
 * configuration. LS_ENOENT when the database is not in the configuration
 * or the replica named does not exist, LS_EUSAGE for a bad URL or a
 * -replica with a URL. `o` may be NULL.
 */
int ls_target_open(ls_ctx *ctx, const char *arg, const ls_target_options *o, ls_target **out);
/* The same from an opened configuration (copied): database `db` of it. */
int ls_target_open_config(ls_ctx *ctx, const ls_config *cfg, const char *db, const char *replica,
                          ls_target **out);
/* Free a target; NULL is a no-op. */
void ls_target_free(ls_target *t);
/* The database path (NULL for a URL target), its spool directory (NULL for a URL). */
const char *ls_target_database(const ls_target *t);
const char *ls_target_meta_path(const ls_target *t);
/* The replicas selected: count, and the name of each. */
size_t ls_target_replica_count(const ls_target *t);
const char *ls_target_replica_name(const ls_target *t, size_t i);
/*
 * The replica a restore should use: the one whose newest restorable
 * generation is the most recent (an unreachable one is skipped when
 * another can serve). 0 with *i set.
 */
int ls_target_best_replica(ls_ctx *ctx, ls_target *t, size_t *i);

/* What a replica holds: every generation with its snapshots and WAL segments. */
typedef struct ls_object_info {
    uint32_t index;             /* WAL index */
    uint32_t offset;            /* byte offset of a WAL segment (0 for a snapshot) */
    uint64_t size;              /* stored (compressed) bytes */
    int64_t created_ms;         /* upload time, unix ms */
} ls_object_info;

typedef struct ls_generation_info {
    char name[LS_GENERATION_SIZE];
    int64_t start_ms, end_ms;   /* earliest and latest upload of any of its objects */
    ls_object_info *snapshots;  /* sorted by index, then time */
    size_t nsnapshots;
    ls_object_info *segments;   /* sorted by index, then offset */
    size_t nsegments;
} ls_generation_info;

typedef struct ls_replica_listing {
    ls_generation_info *generations; /* sorted by name */
    size_t n;
} ls_replica_listing;

/* List replica i of t (only `generation` when not NULL). Free with ls_replica_listing_free. */
int ls_target_list(ls_ctx *ctx, ls_target *t, size_t i, const char *generation,
                   ls_replica_listing **out);
/* Free a listing; NULL is a no-op. */
void ls_replica_listing_free(ls_replica_listing *l);

#define LS_RESTORE_OPTIONS_VERSION 1
typedef struct ls_restore_options {
    unsigned int version;       /* LS_RESTORE_OPTIONS_VERSION */
    const char *generation;     /* restore this generation (NULL: the newest) */
    int64_t index;              /* through the end of this WAL index (-1: latest) */
    int64_t timestamp_ms;       /* as of this time, unix ms (-1: latest); not with index */
    int parallelism;            /* concurrent downloads, 1..64 (0: 16) */
    int if_db_not_exists;       /* an existing output is success, nothing restored */
    int if_replica_exists;      /* a replica holding nothing is success, nothing restored */
} ls_restore_options;
#define LS_RESTORE_OPTIONS_INIT {LS_RESTORE_OPTIONS_VERSION, NULL, -1, -1, 0, 0, 0}
/* Set *o to LS_RESTORE_OPTIONS_INIT of `version`; LS_EUSAGE for an unknown version. */
int ls_restore_options_init(ls_restore_options *o, unsigned int version);

typedef struct ls_restore_result {
    int restored;               /* 0 when an if_* option made it a no-op */
    size_t replica;             /* index of the replica used in the target */
    char generation[LS_GENERATION_SIZE];
    uint32_t snapshot_index;    /* snapshot restored from */
    uint32_t index;             /* last WAL index applied ... */
    uint64_t offset;            /* ... through this byte offset */
    uint32_t page_size;
    uint64_t page_count;
    uint64_t segments;          /* WAL segments applied */
    uint64_t wal_pages;         /* pages taken from the WAL instead of the snapshot */
    uint64_t bytes_downloaded;
    uint64_t elapsed_ms;
} ls_restore_result;

/*
 * Restore from the best replica of t (ls_target_best_replica) into `out`
 * (NULL: the target's database path; required for a URL target). `out`
 * must not exist (LS_EEXIST, or success with if_db_not_exists) and no
 * -wal/-shm/-journal may be beside it; each page is written once, the file
 * is checked (integrity_check) and published atomically. LS_ENOENT when
 * the replica holds nothing that matches (success with if_replica_exists),
 * LS_ECORRUPT for a damaged object or a hole in the WAL. Nothing is left at
 * `out` on failure. When an if_* option turned a failure into success
 * (res->restored 0), ls_errcode()/ls_errmsg() keep that failure as the
 * reason (LS_EEXIST: the output exists; LS_ENOENT: the replica holds
 * nothing that matches); it is logged at LS_LOG_INFO too. `o` may be NULL.
 */
int ls_restore(ls_ctx *ctx, ls_target *t, const char *out, const ls_restore_options *o,
               ls_restore_result *res);

typedef struct ls_validate_result {
    char generation[LS_GENERATION_SIZE]; /* generation compared */
    uint32_t index;                  /* WAL index of the position */
    uint64_t offset;                 /* byte offset of the position */
    uint64_t live_pages;             /* pages in the live database at the position */
    uint64_t replica_pages;          /* pages the replica restored to */
    uint64_t first_diff_page;        /* first page that differs, 0 if none */
    int ok;                          /* identical */
    uint64_t elapsed_ms;
} ls_validate_result;

/*
 * Restore replica i of t at the live database's current position and
 * compare byte for byte (`db` NULL: the target's database; required for a
 * URL target). Returns 0 when the comparison ran (res->ok says whether
 * they match), LS_EBUSY when the replica did not reach the position within
 * timeout_ms, other codes when it could not run.
 */
int ls_target_validate(ls_ctx *ctx, ls_target *t, size_t i, const char *db, int64_t timeout_ms,
                       ls_validate_result *res);

/* A position as Litestream prints it: "<generation>/<index %08x>:<offset>". */
void ls_position_format(char *out, size_t n, const char *generation, uint32_t index,
                        uint64_t offset);

/* ---------------------------------------------------------------------- */
/* Utilities shared with the CLI                                          */

/* SHA-256 of a file's bytes as lowercase hex (65 bytes with NUL). */
int ls_sha256_file(ls_ctx *ctx, const char *path, char hex[65]);

/*
 * Check a path a database is about to be written to (restore, backup):
 * LS_EEXIST when a -wal, -shm or -journal of that name is there (SQLite
 * would replay or trust it), naming it. 0 otherwise.
 */
int ls_publish_check(ls_ctx *ctx, const char *dest);

/* Forget the last failure recorded on ctx. */
void ls_err_clear(ls_ctx *ctx);
/* Log through ctx's callback (printf format), as the library does. */
void ls_ctx_log(ls_ctx *ctx, int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/*
 * Parse a duration: Go syntax ("1h30m", "500ms", "90s") plus "d" (days) and
 * "w" (weeks); a bare number is seconds. Returns 0 or LS_EUSAGE.
 */
int ls_duration_parse(const char *s, int64_t *out_ms);

#ifdef __cplusplus
}
#endif
#endif /* LITESAFE_H */
