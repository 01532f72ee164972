/*
 * internal.h - what the library's modules share and the API does not show:
 * the context struct, error and log helpers.
 *
 * Errors: a failing function records its message once with ls_err() (which
 * returns the code, so `return ls_err(ctx, LS_EIO, "...")` is the idiom) and
 * its callers pass the code up unchanged. The first recorded failure wins
 * while an operation unwinds, unless a caller deliberately overwrites it.
 */
#ifndef LS_INTERNAL_H
#define LS_INTERNAL_H

#include "litesafe.h"

#include <signal.h>
#include <stdarg.h>
#include <stdint.h>

struct ls_ctx {
    int code;                  /* last failure code, 0 if none */
    char msg[1024];            /* last failure message */
    ls_log_fn log_fn;          /* log sink, NULL: no logging */
    void *log_ud;              /* passed to log_fn */
    int log_level;             /* minimum level passed to log_fn */
    sig_atomic_t cancelled;    /* set by ls_ctx_cancel() from any thread: ls_cancelled() */
    const struct ls_ctx *parent; /* cancelled with it (ls_ctx_new_child); outlives this one */
};

/*
 * ls_ctx_cancel() was called on ctx or on one of its parents (NULL: no), as
 * another thread may do at any time.
 */
static inline int ls_cancelled(const ls_ctx *ctx)
{
    for (; ctx; ctx = ctx->parent)
        if (__atomic_load_n(&ctx->cancelled, __ATOMIC_ACQUIRE))
            return 1;
    return 0;
}

/*
 * A context for a worker thread of an operation running on `parent`: its
 * own error message, the parent's log sink, and cancelled whenever the
 * parent is (a download thread's request ends when the caller cancels).
 * The caller frees it (ls_ctx_free) before the parent. 0 or LS_ENOMEM.
 */
int ls_ctx_new_child(const ls_ctx *parent, ls_ctx **out);

#if defined(__GNUC__)
#define LS_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LS_PRINTF(a, b)
#endif

/*
 * Internal codes, never returned by the public API: they tell a caller in
 * the library which recovery applies.
 */
#define LS_EWRITELOCK (-100) /* the write lock could not be taken in time */

/* Record a failure and return `code`: the public ls_ctx_set_error(). */
#define ls_err ls_ctx_set_error
/* Record a failure from errno `e` about `what` ("open /x"): ": <strerror>". */
int ls_err_errno(ls_ctx *ctx, int e, const char *fmt, ...) LS_PRINTF(3, 4);
/* Map an errno to an LS_E* code. */
int ls_code_from_errno(int e);
/* Keep the last failure's message under another code; returns `code`. */
int ls_err_recode(ls_ctx *ctx, int code);
/*
 * `rc`, with "out of memory" recorded when it is LS_ENOMEM: the entry point of
 * a module whose helpers return LS_ENOMEM bare (url.c, config*.c) calls it on
 * its way out, so that failure has a message too.
 */
static inline int ls_err_oom(ls_ctx *ctx, int rc)
{
    return rc == LS_ENOMEM ? ls_err(ctx, LS_ENOMEM, "out of memory") : rc;
}
/* Forget the last failure (used before an operation that may fail benignly). */
void ls_err_clear(ls_ctx *ctx);

/* Logging: the level is checked before anything is formatted. */
void ls_log_emit(ls_ctx *ctx, int level, const char *fmt, ...) LS_PRINTF(3, 4);
#define ls_log(ctx, level, ...)                                                                    \
    do {                                                                                           \
        if ((ctx) && (ctx)->log_fn && (level) >= (ctx)->log_level)                                 \
            ls_log_emit((ctx), (level), __VA_ARGS__);                                              \
    } while (0)

/* Milliseconds of a monotonic clock. */
uint64_t ls_now_ms(void);
/* Unix time in seconds. */
int64_t ls_unix_now(void);
/* Milliseconds since the Unix epoch (wall clock). */
int64_t ls_unix_now_ms(void);

/* Copy a string into a fixed buffer, always terminated. */
void ls_strlcpy(char *dst, const char *src, size_t size);
/* A malloc'd copy of `s` in *out (the caller frees it). Returns 0 or LS_ENOMEM. */
int ls_strdup(ls_ctx *ctx, char **out, const char *s);

#endif
