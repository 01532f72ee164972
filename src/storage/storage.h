/*
 * storage.h - the blob-level interface every replica backend implements.
 *
 * A backend stores opaque objects under keys ("generations/<gen>/wal/..."),
 * relative to the replica's root (a directory, a bucket prefix, ...). It never
 * retries, compresses, encrypts or builds keys: core does that once
 * (layout.c builds keys, stream.c compresses, replica.c retries).
 *
 * Contract, for every backend:
 *   - put is all-or-nothing: a reader sees the whole object or none (temp +
 *     fsync + rename + directory fsync for files; one PUT or a completed
 *     multipart upload for S3; temp name then rename for SFTP). A put over an
 *     existing key replaces it.
 *   - A missing object is LS_ENOENT from get, stat and (silently, 0) delete.
 *   - get of a range: bytes [off, min(off + len, size)); a range starting at
 *     or past the end yields no bytes and succeeds.
 *   - list returns every key that starts with a prefix (a plain string
 *     prefix, not only whole directories) with its size and modification
 *     time, in any order; keys are relative to the root. A prefix matching
 *     nothing, or a root that does not exist yet, is an empty list.
 *   - Keys are '/'-separated relative paths: not empty, no leading or
 *     trailing '/', no empty, "." or ".." component, and no component that
 *     starts with '.' (that name space is the backends' own: temp files).
 *     Anything else is LS_EUSAGE (ls_storage_check_key).
 *   - Errors carry a message on the context naming the backend and object:
 *     "replica <name> (<desc>): <op> <key>: <why>" (ls_storage_err).
 *
 * The struct is versioned (libgit2's odb_backend style): a backend embeds
 * ls_storage first and fills the function pointers; NULL means unsupported.
 */
#ifndef LS_STORAGE_H
#define LS_STORAGE_H

#include "internal.h"

#include <stddef.h>
#include <stdint.h>

#define LS_STORAGE_VERSION 1

/* One listed object. */
typedef struct ls_obj {
    char *key;          /* key relative to the root (malloc'd) */
    uint64_t size;      /* stored size in bytes */
    int64_t mtime_ms;   /* modification / upload time, unix milliseconds */
} ls_obj;

typedef struct ls_obj_list {
    ls_obj *v;          /* objects */
    size_t n;           /* count */
    size_t cap;         /* allocated */
} ls_obj_list;

/* Free the keys and the array; the list is then empty ({0}) and reusable. */
void ls_obj_list_free(ls_obj_list *l);
/* Append a copy of key; returns 0 or LS_ENOMEM. */
int ls_obj_list_add(ls_obj_list *l, const char *key, uint64_t size, int64_t mtime_ms);
/* Sort by key, bytewise (for layout keys: by generation, index, offset). */
void ls_obj_list_sort(ls_obj_list *l);

/*
 * A source of bytes for put: read up to n bytes into buf, returning the count
 * (0 at the end) or a negative LS_E* code. `size` is the total length when
 * known in advance (-1 when not), which lets S3 choose PUT or multipart.
 */
typedef struct ls_reader {
    int64_t (*read)(void *ud, uint8_t *buf, size_t n);
    void *ud;
    int64_t size;
} ls_reader;

/* A sink for get: write n bytes; returns 0 or a negative LS_E* code. */
typedef struct ls_writer {
    int (*write)(void *ud, const uint8_t *buf, size_t n);
    void *ud;
} ls_writer;

typedef struct ls_storage ls_storage;
struct ls_storage {
    int version;        /* LS_STORAGE_VERSION */
    const char *type;   /* "file", "s3", "sftp", "abs" */
    char name[64];      /* replica name, for messages */
    char desc[512];     /* where it points, for messages and logs (no secrets) */

    /* Store `r`'s bytes at key, atomically. */
    int (*put)(ls_storage *s, ls_ctx *ctx, const char *key, ls_reader *r);
    /* Stream the object (from byte off, at most len bytes; len < 0: to the end) into w. */
    int (*get)(ls_storage *s, ls_ctx *ctx, const char *key, uint64_t off, int64_t len,
               ls_writer *w);
    /* Append every object whose key starts with prefix to out (the caller frees it, always). */
    int (*list)(ls_storage *s, ls_ctx *ctx, const char *prefix, ls_obj_list *out);
    /* Size and time of one object (out->key is set to NULL); LS_ENOENT if missing. */
    int (*stat)(ls_storage *s, ls_ctx *ctx, const char *key, ls_obj *out);
    /* Delete keys (missing ones are not an error). */
    int (*del)(ls_storage *s, ls_ctx *ctx, const char *const *keys, size_t n);
    /* Release everything. */
    void (*close)(ls_storage *s);
};

/* Options a backend may use; unset strings are NULL. */
typedef struct ls_storage_opts {
    const char *name;           /* replica name */
    const char *url;            /* replica URL, or NULL with type + fields */
    const char *type;           /* "file", ... when no URL */
    const char *path;           /* file: directory; others: key prefix */
    const char *bucket, *region, *endpoint;
    int force_path_style, skip_verify;
    const char *ca_file;
    const char *access_key_id, *secret_access_key, *session_token;
    const char *host, *user, *password, *key_path, *known_hosts;
    const char *host_key_fingerprint; /* sftp: pinned "SHA256:<base64>" fingerprint */
    const char *host_key;             /* sftp: pinned host key as the config's host-key says it: a
                                         fingerprint or an authorized-keys line (see
                                         ls_storage_sftp_check_host_key) */
    const char *account_name, *account_key;
    int timeout_ms;             /* per remote call; 0: backend default */
} ls_storage_opts;

/*
 * Open the backend the URL scheme (or opts->type, default "file") selects.
 * A URL without a scheme ("/backups/db", "rel/dir") is a file replica; the
 * scheme wins over opts->type. Unknown types and the types not built yet
 * (s3, gcs, abs, sftp for now) are LS_EUSAGE.
 */
int ls_storage_open(ls_ctx *ctx, const ls_storage_opts *opts, ls_storage **out);
/* Close; NULL is a no-op. */
void ls_storage_close(ls_storage *s);

/*
 * Backends (src/storage/<type>.c).
 * file: root directory from opts->url ("file:///abs/path", or a plain path)
 * or opts->path (not both); a relative path is made absolute at open. The
 * root need not exist until the first put.
 */
int ls_storage_file_open(ls_ctx *ctx, const ls_storage_opts *opts, ls_storage **out);
/*
 * s3 (and gcs, through its S3-compatible endpoint): bucket, region, endpoint,
 * force_path_style, skip_verify, ca_file, credentials; path is the key prefix.
 */
int ls_storage_s3_open(ls_ctx *ctx, const ls_storage_opts *opts, ls_storage **out);
/* sftp: host ("HOST[:PORT]"), user, password or key_path, known_hosts and/or
 * host_key / host_key_fingerprint; path is the remote directory. */
int ls_storage_sftp_open(ls_ctx *ctx, const ls_storage_opts *opts, ls_storage **out);
/*
 * Check an sftp host-key setting without connecting: a SHA-256 fingerprint
 * "SHA256:<43 base64 characters>" as ssh-keygen -lf prints it, or an
 * authorized-keys line "[OPTIONS|HOST] TYPE BASE64 [COMMENT]" (Litestream
 * 0.5's form; ssh-keyscan's "HOST TYPE BASE64" too) of type ssh-ed25519,
 * ecdsa-sha2-nistp256/384/521 or ssh-rsa whose key blob is well formed.
 * Returns 0 or LS_EUSAGE with a message starting "host-key: ".
 */
int ls_storage_sftp_check_host_key(ls_ctx *ctx, const char *spec);
/* abs: account_name, account_key, bucket (the container), endpoint; path is the prefix. */
int ls_storage_abs_open(ls_ctx *ctx, const ls_storage_opts *opts, ls_storage **out);

/*
 * Wrap `inner` (owned from now on, also on failure) so that transient
 * failures (retry.h) of get, list, stat and del are retried, up to
 * `attempts` tries per call with backoff from 100 ms to 5 s; get resumes
 * where the failed try stopped. put is passed through. Type, name and desc
 * are the inner backend's.
 */
int ls_storage_retry_open(ls_ctx *ctx, ls_storage *inner, unsigned attempts, ls_storage **out);
/* Change the tries per call of a retrying wrapper (no-op on other backends). */
void ls_storage_retry_limit(ls_storage *s, unsigned attempts);

/*
 * Convenience: put a memory buffer, get a whole object into a malloc'd
 * buffer (*out is NULL when the object is empty).
 */
int ls_storage_put_buf(ls_storage *s, ls_ctx *ctx, const char *key, const void *buf, size_t n);
int ls_storage_get_buf(ls_storage *s, ls_ctx *ctx, const char *key, uint8_t **out, size_t *n);

/* ---- For backend implementations ---- */

/* Fill the common fields: version, type (static string), name (default: type), desc. */
void ls_storage_init(ls_storage *s, const char *type, const char *name, const char *desc);
/*
 * Record "replica <name> (<desc>): <op> <key>: <why>" and return code. With
 * fmt NULL, <why> is the context's current message when it carries this
 * same code (a lower layer's explanation, now given its object), otherwise
 * the code's name. key may be NULL or "" (then it is left out).
 */
int ls_storage_err(ls_storage *s, ls_ctx *ctx, int code, const char *op, const char *key,
                   const char *fmt, ...) LS_PRINTF(6, 7);
/*
 * 0 if key obeys the key rules above, else LS_EUSAGE with a message. With
 * is_prefix set, "" and a trailing '/' are allowed too (a list prefix).
 */
int ls_storage_check_key(ls_storage *s, ls_ctx *ctx, const char *op, const char *key,
                         int is_prefix);
/*
 * If url starts with a scheme ("^\w+://"), copy it lowercased into out and
 * return 1; else return 0 (a plain path). Litestream's rule for "is a URL".
 */
int ls_storage_url_scheme(const char *url, char *out, size_t outsz);

#endif
