/*
 * storage.h - the library's side of the backend interface: choosing and
 * opening a backend from its options, the built-in backends, the retrying
 * wrapper, and conveniences built on put/get. The interface itself (struct
 * ls_storage, objects, readers and writers, the contract every backend
 * keeps, and the helpers a backend uses) is public, for embedders who write
 * their own: include/litesafe/sys/storage.h.
 *
 * Backends take fields only (ls_storage_opts); URLs are parsed once, by
 * util/url.c, into the replica configuration that fills these fields.
 */
#ifndef LS_STORAGE_H
#define LS_STORAGE_H

#include "internal.h"

#include <litesafe/sys/storage.h>

#include <stddef.h>
#include <stdint.h>

/* Sort by key, bytewise (for layout keys: by generation, index, offset). */
void ls_obj_list_sort(ls_obj_list *l);

/*
 * What a backend is opened with: fields only, the configuration file's
 * settings by name (a URL was resolved into them by util/url.c and the
 * configuration). Unset strings are NULL; each backend reads the fields of
 * its type and ignores the rest.
 */
typedef struct ls_storage_opts {
    const char *name;           /* replica name (default: the type) */
    const char *type;           /* "file" (default), "s3", "gcs", "abs" or "sftp" */
    const char *path;           /* file: directory; sftp: remote directory; others: key prefix */
    const char *bucket;         /* s3/gcs: bucket; abs: container */
    const char *region;         /* s3: signing region (default us-east-1; gcs: auto) */
    const char *endpoint;       /* s3/abs: "https://HOST[:PORT]" (default: the cloud's own) */
    int force_path_style;       /* s3: address the bucket in the path, not the host name */
    int skip_verify;            /* s3/abs: do not check the server's TLS certificate */
    const char *ca_file;        /* s3/abs: CA bundle for TLS */
    const char *access_key_id, *secret_access_key, *session_token; /* s3/gcs credentials */
    const char *host;           /* sftp: "HOST[:PORT]" or "[V6]:PORT" */
    const char *user;           /* sftp: login (default: the current user) */
    const char *password;       /* sftp: password, or the key's passphrase */
    const char *key_path;       /* sftp: private key file */
    const char *known_hosts;    /* sftp: known_hosts file */
    const char *host_key_fingerprint; /* sftp: pinned "SHA256:<base64>" fingerprint */
    const char *host_key;             /* sftp: pinned host key as the config's host-key says it: a
                                         fingerprint or an authorized-keys line (see
                                         ls_storage_sftp_check_host_key) */
    const char *account_name, *account_key; /* abs: storage account and its base64 key */
    int timeout_ms;             /* per remote call; 0: backend default */
} ls_storage_opts;

/*
 * Open the backend opts->type selects ("file" when unset; gcs is the s3
 * backend on Google's S3-compatible endpoint). An unknown type is
 * LS_EUSAGE, naming the replica.
 */
int ls_storage_open(ls_ctx *ctx, const ls_storage_opts *opts, ls_storage **out);
/* Close; NULL is a no-op. */
void ls_storage_close(ls_storage *s);

/*
 * Backends (src/storage/<type>.c).
 * file: root directory opts->path; a relative path is made absolute at
 * open. The root need not exist until the first put.
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

/* What a retrying wrapper counted since it was opened: every try is one request. */
typedef struct ls_storage_counts {
    uint64_t puts, gets, lists, stats, deletes; /* requests by operation */
    uint64_t errors_net;        /* failed with LS_ENET (server away, 5xx, timeouts) */
    uint64_t errors_auth;       /* failed with LS_EPERM (credentials, signature) */
    uint64_t errors_other;      /* failed otherwise (a missing object is not a failure) */
    uint64_t last_minute;       /* requests in the last 60 seconds */
    int try_rc;                 /* the newest try's failure, 0 once a try succeeds: a
                                   call still retrying is failing already */
    int64_t try_error_ms;       /* unix ms of that failure */
    char try_error[256];        /* its message */
} ls_storage_counts;
/* The counts of a retrying wrapper (zeros for another backend). Thread-safe. */
void ls_storage_counts_get(ls_storage *s, ls_storage_counts *out);

/* 1 if s serves ranged gets (LS_STORAGE_CAP_WHOLE_GETS unset, or a version 1 backend). */
int ls_storage_ranged(const ls_storage *s);

/*
 * Get object `key` of `size` bytes (as listed) into w, in order, with up to n
 * ranged gets of `part` bytes at once (pget.c); at most n parts are held in
 * memory. One plain get when s does not serve ranges, n <= 1 or size <= part.
 * A part shorter than asked for is LS_ECORRUPT (the object is shorter than
 * listed).
 */
int ls_storage_get_parallel(ls_storage *s, ls_ctx *ctx, const char *key, uint64_t size,
                            size_t part, int n, ls_writer *w);

/*
 * Convenience: put a memory buffer, get a whole object into a malloc'd
 * buffer (*out is NULL when the object is empty).
 */
int ls_storage_put_buf(ls_storage *s, ls_ctx *ctx, const char *key, const void *buf, size_t n);
int ls_storage_get_buf(ls_storage *s, ls_ctx *ctx, const char *key, uint8_t **out, size_t *n);

#endif
