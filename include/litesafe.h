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
 *   - Result structs are filled by the callee; strings in them are owned by
 *     the struct (fixed-size buffers) so nothing needs freeing.
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

int ls_ctx_new(ls_ctx **out);
void ls_ctx_free(ls_ctx *ctx);
/* Message of the last failure on this context ("" if none). Borrowed. */
const char *ls_errmsg(const ls_ctx *ctx);
/* Code of the last failure on this context (0 if none). */
int ls_errcode(const ls_ctx *ctx);
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
    char source[4096];          /* absolute path of the source database */
    char destination[4096];     /* path of the published backup */
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
    char database[4096];        /* absolute path of the database */
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

/* ---------------------------------------------------------------------- */
/* Info (strictly read-only: never opens the database through SQLite)     */

typedef struct ls_info_result {
    char path[4096];            /* absolute path */
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
    char meta_dir[4096];
} ls_info_result;

/* Inspect `db`. Returns 0, LS_ENOENT, LS_ENOTDB (not SQLite; a zero-length file is
 * an empty database). */
int ls_info(ls_ctx *ctx, const char *db, ls_info_result *res);

/* ---------------------------------------------------------------------- */
/* Verify                                                                  */

typedef struct ls_verify_result {
    char path[4096];
    uint64_t size_bytes;
    char sha256[65];            /* SHA-256 of the file's bytes */
    int sha256_match;           /* -1 not asked, 0 mismatch, 1 match */
    int integrity_ok;           /* PRAGMA integrity_check said "ok" */
    char integrity_message[1024]; /* first problems reported, or "ok" */
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
    char dir[4096];
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

/* ---------------------------------------------------------------------- */
/* Restore from a backup file                                              */

typedef struct ls_restore_file_result {
    char source[4096];          /* the backup restored from */
    char destination[4096];     /* the restored database */
    char pre_restore[4096];     /* where the old database went ("" if none) */
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

/* ---------------------------------------------------------------------- */
/* Utilities shared with the CLI                                          */

/* SHA-256 of a file's bytes as lowercase hex (65 bytes with NUL). */
int ls_sha256_file(ls_ctx *ctx, const char *path, char hex[65]);

/*
 * Parse a duration: Go syntax ("1h30m", "500ms", "90s") plus "d" (days) and
 * "w" (weeks); a bare number is seconds. Returns 0 or LS_EUSAGE.
 */
int ls_duration_parse(const char *s, int64_t *out_ms);

#ifdef __cplusplus
}
#endif
#endif /* LITESAFE_H */
