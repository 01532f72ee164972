/*
 * err.c - the context: last error, log sink, cancel flag; error-code names.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int ls_ctx_new(ls_ctx **out)
{
    ls_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return LS_ENOMEM;
    ctx->log_level = LS_LOG_INFO;
    *out = ctx;
    return 0;
}

int ls_ctx_new_child(const ls_ctx *parent, ls_ctx **out)
{
    int rc = ls_ctx_new(out);
    if (rc)
        return rc;
    ls_ctx_set_log(*out, parent->log_fn, parent->log_ud, parent->log_level);
    (*out)->parent = parent;
    return 0;
}

void ls_ctx_free(ls_ctx *ctx)
{
    free(ctx);
}

const char *ls_errmsg(const ls_ctx *ctx)
{
    return ctx ? ctx->msg : "";
}

int ls_errcode(const ls_ctx *ctx)
{
    return ctx ? ctx->code : 0;
}

void ls_ctx_set_log(ls_ctx *ctx, ls_log_fn fn, void *ud, int level)
{
    ctx->log_fn = fn;
    ctx->log_ud = ud;
    ctx->log_level = level;
}

void ls_ctx_cancel(ls_ctx *ctx)
{
    __atomic_store_n(&ctx->cancelled, 1, __ATOMIC_RELEASE);
}

int ls_err_recode(ls_ctx *ctx, int code)
{
    if (ctx)
        ctx->code = code;
    return code;
}

void ls_err_clear(ls_ctx *ctx)
{
    ctx->code = 0;
    ctx->msg[0] = '\0';
}

static int err_vset(ls_ctx *ctx, int code, const char *suffix, const char *fmt, va_list ap)
{
    if (!ctx)
        return code;
    int n = vsnprintf(ctx->msg, sizeof(ctx->msg), fmt, ap);
    if (suffix && n >= 0 && (size_t)n < sizeof(ctx->msg))
        snprintf(ctx->msg + n, sizeof(ctx->msg) - (size_t)n, ": %s", suffix);
    ctx->code = code;
    return code;
}

int ls_ctx_set_error(ls_ctx *ctx, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(ctx, code, NULL, fmt, ap);
    va_end(ap);
    return code;
}

int ls_code_from_errno(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR:
        return LS_ENOENT;
    case EEXIST:
        return LS_EEXIST;
    case ENOSPC:
    case EDQUOT:
        return LS_ENOSPC;
    case EACCES:
    case EPERM:
    case EROFS:
        return LS_EPERM;
    case ENOMEM:
        return LS_ENOMEM;
    case EBUSY:
        return LS_EBUSY;
    default:
        return LS_EIO;
    }
}

int ls_err_errno(ls_ctx *ctx, int e, const char *fmt, ...)
{
    int code = ls_code_from_errno(e);
    va_list ap;
    va_start(ap, fmt);
    err_vset(ctx, code, strerror(e), fmt, ap);
    va_end(ap);
    return code;
}

const char *ls_strerror(int code)
{
    switch (code) {
    case LS_OK: return "OK";
    case LS_ERROR: return "ERROR";
    case LS_ENOENT: return "ENOENT";
    case LS_EEXIST: return "EEXIST";
    case LS_ENOTDB: return "ENOTDB";
    case LS_ECORRUPT: return "ECORRUPT";
    case LS_EBUSY: return "EBUSY";
    case LS_EIO: return "EIO";
    case LS_ENOSPC: return "ENOSPC";
    case LS_EUSAGE: return "EUSAGE";
    case LS_ENOTWAL: return "ENOTWAL";
    case LS_EPERM: return "EPERM";
    case LS_ECANCEL: return "ECANCEL";
    case LS_ENOMEM: return "ENOMEM";
    case LS_ENET: return "ENET";
    default: return "EUNKNOWN";
    }
}

void ls_log_emit(ls_ctx *ctx, int level, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    ctx->log_fn(ctx->log_ud, level, buf);
}

void ls_ctx_log(ls_ctx *ctx, int level, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    if (!ctx || !ctx->log_fn || level < ctx->log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    ctx->log_fn(ctx->log_ud, level, buf);
}

uint64_t ls_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t ls_unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

int64_t ls_unix_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ls_strlcpy(char *dst, const char *src, size_t size)
{
    if (size == 0)
        return;
    size_t n = strlen(src);
    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

int ls_strdup(ls_ctx *ctx, char **out, const char *s)
{
    if (!(*out = strdup(s)))
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    return 0;
}
