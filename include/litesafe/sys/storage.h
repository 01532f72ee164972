/*
 * litesafe/sys/storage.h - the backend interface, for embedders who plug in
 * a store of their own (libgit2's git2/sys/odb_backend.h is the model).
 *
 * A backend stores opaque objects under keys ("generations/<gen>/wal/..."),
 * relative to the replica's root (a directory, a bucket prefix, ...). It
 * never retries, compresses, encrypts or builds keys: the library does that
 * once, above every backend.
 *
 * Writing one:
 *   1. Embed `ls_storage` as the FIRST member of your own struct, so that
 *      the `ls_storage *` the library hands back to your functions can be
 *      cast to it.
 *   2. Call ls_storage_init() on it (version, type, name, desc), then set
 *      the function pointers.
 *   3. Check every key with ls_storage_check_key() and word every failure
 *      with ls_storage_err(), so your backend accepts the same keys and fails
 *      with the same shape of message as the built-in ones.
 *   4. Hand it to the library (ls_replica_options.storage in litesafe.h),
 *      which then owns it and calls close() once at the end.
 *
 * Contract, for every backend (the built-in ones pass one test suite that
 * checks each rule):
 *   - put is all-or-nothing: a reader sees the whole object or none (temp
 *     file + fsync + rename + directory fsync for files; one PUT or a
 *     completed multipart upload for S3; a temp name then a rename for
 *     SFTP). A put over an existing key replaces it. When the reader fails,
 *     put fails with the reader's code and stores nothing (an object that
 *     was there stays whole).
 *   - A missing object is LS_ENOENT from get and stat, and is silently
 *     skipped (0) by del. Every backend uses this one code for "not found":
 *     the library relies on it.
 *   - get of a range: bytes [off, min(off + len, size)); a range starting
 *     at or past the end yields no bytes and succeeds.
 *   - list appends every key that starts with a prefix (a plain string
 *     prefix, not only whole directories: "generations/ab" matches
 *     "generations/abc/x") with its size and modification time, in any
 *     order; keys are relative to the root. A prefix matching nothing, or a
 *     root that does not exist yet, is an empty list and success.
 *   - Keys are '/'-separated relative paths of at most 1024 bytes: not
 *     empty, no leading or trailing '/', no empty, "." or ".." component, no
 *     component that starts with '.' (that name space is the backends' own:
 *     temp files), no control character and no backslash. Anything else is
 *     LS_EUSAGE (ls_storage_check_key). A list prefix may also be "" or end
 *     with '/'.
 *   - Errors are negative LS_E* codes (litesafe.h) with the message on the
 *     context, "replica <name> (<desc>): <op> <key>: <why>" (ls_storage_err).
 *     LS_ENET marks a failure worth retrying (a connection refused or reset,
 *     a timeout, a server's 5xx): the library retries get, list, stat and
 *     del that fail with it.
 *   - Threads: the library calls one backend from several threads at once
 *     (each with its own ls_ctx), so every function but close must be safe
 *     to call concurrently. close is called once, when no other call runs.
 *
 * Versions: `version` is LS_STORAGE_VERSION of the header the backend was
 * compiled with (ls_storage_init sets it); a later version of the struct
 * only adds members at the end.
 */
#ifndef LITESAFE_SYS_STORAGE_H
#define LITESAFE_SYS_STORAGE_H

#include <litesafe.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* printf-style format checking where the compiler has it. */
#if defined(__GNUC__)
#define LS_STORAGE_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LS_STORAGE_PRINTF(a, b)
#endif

/* The version of struct ls_storage this header describes. */
#define LS_STORAGE_VERSION 2

/* One stored object, as list and stat report it. */
typedef struct ls_obj {
    char *key;          /* key relative to the root (malloc'd; NULL from stat) */
    uint64_t size;      /* stored size in bytes */
    int64_t mtime_ms;   /* modification / upload time, unix milliseconds */
} ls_obj;

/* A growing list of objects; {0} is empty. */
typedef struct ls_obj_list {
    ls_obj *v;          /* the objects */
    size_t n;           /* how many */
    size_t cap;         /* allocated entries */
} ls_obj_list;

/* Append a copy of key with its size and time. Returns 0 or LS_ENOMEM. */
int ls_obj_list_add(ls_obj_list *l, const char *key, uint64_t size, int64_t mtime_ms);
/* Free the keys and the array; the list is then empty ({0}) and reusable. NULL is a no-op. */
void ls_obj_list_free(ls_obj_list *l);

/*
 * A source of bytes for put: read(ud, buf, n) reads up to n bytes into buf
 * and returns the count (0 at the end) or a negative LS_E* code. `size` is
 * the total length when known in advance, -1 when not (S3 uses it to choose
 * one PUT or a multipart upload).
 */
typedef struct ls_reader {
    int64_t (*read)(void *ud, uint8_t *buf, size_t n); /* next bytes, 0 at the end */
    void *ud;                                          /* the reader's state */
    int64_t size;                                      /* total length, or -1 */
} ls_reader;

/*
 * A sink for get: write(ud, buf, n) takes n bytes and returns 0 or a
 * negative LS_E* code (get then stops and fails with that code).
 */
typedef struct ls_writer {
    int (*write)(void *ud, const uint8_t *buf, size_t n); /* consume n bytes */
    void *ud;                                             /* the writer's state */
} ls_writer;

typedef struct ls_storage ls_storage;

/*
 * A backend: names, then one function per operation. Every function gets
 * the backend itself (cast it to your struct) and the caller's context for
 * the error message, and returns 0 or a negative LS_E* code.
 */
struct ls_storage {
    int version;        /* LS_STORAGE_VERSION (ls_storage_init) */
    const char *type;   /* kind of store: "file", "s3", ... or the embedder's own word
                           (static string) */
    char name[64];      /* replica name, for messages and logs */
    char desc[512];     /* where it points, for messages and logs (never a secret) */

    /* Store everything `r` yields at key, all or nothing (see the contract). */
    int (*put)(ls_storage *s, ls_ctx *ctx, const char *key, ls_reader *r);
    /*
     * Stream the object into w, from byte off, at most len bytes (len < 0:
     * to the end). LS_ENOENT if it does not exist.
     */
    int (*get)(ls_storage *s, ls_ctx *ctx, const char *key, uint64_t off, int64_t len,
               ls_writer *w);
    /*
     * Append every object whose key starts with prefix to out. The caller
     * frees out whatever the result (it may hold part of a failed listing).
     */
    int (*list)(ls_storage *s, ls_ctx *ctx, const char *prefix, ls_obj_list *out);
    /* Size and time of one object into out (out->key is set to NULL); LS_ENOENT if missing. */
    int (*stat)(ls_storage *s, ls_ctx *ctx, const char *key, ls_obj *out);
    /* Delete n keys; missing ones are not an error. */
    int (*del)(ls_storage *s, ls_ctx *ctx, const char *const *keys, size_t n);
    /* Release the backend and everything it holds (including s itself). */
    void (*close)(ls_storage *s);

    /* Since version 2: what the backend cannot do (LS_STORAGE_CAP_*; 0 by ls_storage_init). */
    unsigned caps;
};

/*
 * caps bit: get serves whole objects only (off 0, len -1), e.g. a wrapper
 * that decrypts a stream. Readers then fetch an object in one sequential
 * get instead of parallel ranges. A version 1 backend (no caps) serves ranges.
 */
#define LS_STORAGE_CAP_WHOLE_GETS 1u

/*
 * Fill the common fields of a backend: version (LS_STORAGE_VERSION), caps (0), type
 * (a static string, kept as the pointer), name (copied; NULL or "" means
 * the type) and desc (copied; NULL means ""). Long names and descriptions
 * are cut to fit. Does not touch the function pointers.
 */
void ls_storage_init(ls_storage *s, const char *type, const char *name, const char *desc);

/*
 * Record the message "replica <name> (<desc>): <op> <key>: <why>" on ctx
 * and return `code` (so a backend can write `return ls_storage_err(...)`).
 * <why> is fmt and its arguments; with fmt NULL, it is the context's current
 * message when that carries this same code (a lower layer's explanation,
 * now given its object), else "failed (<name of the code>)". key may be NULL
 * or "" (then it is left out). With ctx NULL, just returns code.
 */
int ls_storage_err(ls_storage *s, ls_ctx *ctx, int code, const char *op, const char *key,
                   const char *fmt, ...) LS_STORAGE_PRINTF(6, 7);

/*
 * 0 if key obeys the key rules of the contract above, else LS_EUSAGE with a
 * message through ls_storage_err ("...: <op> <key>: invalid key: <why>").
 * With is_prefix set, "" and a trailing '/' are allowed too (a list prefix).
 */
int ls_storage_check_key(ls_storage *s, ls_ctx *ctx, const char *op, const char *key,
                         int is_prefix);

#ifdef __cplusplus
}
#endif

#endif
