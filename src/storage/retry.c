/*
 * retry.c - a storage wrapper that retries transient failures (retry.h) of
 * one call with capped exponential backoff and jitter, so that a dropped
 * connection or a 503 costs a short wait instead of a failed restore or a
 * replica sync cycle. Every replica handle is wrapped (engine.c).
 *
 * What is retried:
 *   - get resumes: bytes already handed to the caller's writer are not asked
 *     for again; the next attempt asks for the range after them. Objects are
 *     never changed in place (a put replaces them whole with the same bytes),
 *     so the pieces belong to one object. A failure of the caller's own
 *     writer is not retried.
 *   - list, stat and del are repeated whole (all are idempotent; a list
 *     result of a failed attempt is dropped first).
 *   - put is not: its reader is a one-way stream. The replica worker repeats
 *     its whole step, from the position it knows, with its own backoff.
 * A retry is logged at WARN with the failure it follows, at DEBUG when that
 * failure is the one the previous retry followed (a server that stays away
 * is one line, not eight per call); the final failure is returned unchanged
 * (message and code of the backend).
 */
#include "retry.h"
#include "storage.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct retry_storage {
    ls_storage base;
    ls_storage *inner;
    unsigned attempts;         /* tries per call, first included */
    uint64_t min_ms, max_ms;   /* backoff bounds */
    pthread_mutex_t mu;        /* guards last (restore's threads share a handle) */
    char last[512];            /* the failure the last retry logged followed */
} retry_storage;

/* After failure rc of try `attempt` (0-based): 1 if another try should follow. */
static int again(retry_storage *r, ls_ctx *ctx, int rc, unsigned attempt, const char *op,
                 const char *key)
{
    if (!ls_retryable(rc) || attempt + 1 >= r->attempts || (ctx && ctx->cancelled))
        return 0;
    uint64_t ms = ls_backoff_ms(attempt, r->min_ms, r->max_ms);
    int level = LS_LOG_DEBUG;
    if (ctx) {
        pthread_mutex_lock(&r->mu);
        if (strcmp(r->last, ls_errmsg(ctx)) != 0) {
            level = LS_LOG_WARN;
            ls_strlcpy(r->last, ls_errmsg(ctx), sizeof(r->last));
        }
        pthread_mutex_unlock(&r->mu);
    }
    if (ctx)
        ls_log(ctx, level, "retrying replica=%s op=%s key=%s attempt=%u/%u wait_ms=%llu "
               "error=\"%s\"", r->base.name, op, key ? key : "", attempt + 2, r->attempts,
               (unsigned long long)ms, ls_errmsg(ctx));
    /* In slices, so that a cancelled context (a stopping replica) stops waiting. */
    for (uint64_t slept = 0; slept < ms && !(ctx && ctx->cancelled); slept += 20)
        usleep((useconds_t)((ms - slept < 20 ? ms - slept : 20) * 1000));
    return !(ctx && ctx->cancelled);
}

static int r_put(ls_storage *s, ls_ctx *ctx, const char *key, ls_reader *rd)
{
    retry_storage *r = (retry_storage *)s;
    return r->inner->put(r->inner, ctx, key, rd);
}

/* Counts what reached the caller's writer, and whether the writer failed. */
typedef struct resume_sink {
    ls_writer *w;
    uint64_t done;
    int wrc;
} resume_sink;

static int resume_write(void *ud, const uint8_t *buf, size_t n)
{
    resume_sink *k = ud;
    k->wrc = k->w->write(k->w->ud, buf, n);
    if (k->wrc == 0)
        k->done += n;
    return k->wrc;
}

static int r_get(ls_storage *s, ls_ctx *ctx, const char *key, uint64_t off, int64_t len,
                 ls_writer *w)
{
    retry_storage *r = (retry_storage *)s;
    resume_sink k = {w, 0, 0};
    ls_writer sink = {resume_write, &k};
    for (unsigned attempt = 0;; attempt++) {
        int64_t left = len < 0 ? -1 : len - (int64_t)k.done;
        if (left == 0)
            return 0;
        int rc = r->inner->get(r->inner, ctx, key, off + k.done, left, &sink);
        if (rc == 0 || k.wrc != 0 || !again(r, ctx, rc, attempt, "get", key))
            return rc;
    }
}

static int r_list(ls_storage *s, ls_ctx *ctx, const char *prefix, ls_obj_list *out)
{
    retry_storage *r = (retry_storage *)s;
    size_t n0 = out->n;
    for (unsigned attempt = 0;; attempt++) {
        int rc = r->inner->list(r->inner, ctx, prefix, out);
        if (rc == 0)
            return 0;
        while (out->n > n0)
            free(out->v[--out->n].key);
        if (!again(r, ctx, rc, attempt, "list", prefix))
            return rc;
    }
}

static int r_stat(ls_storage *s, ls_ctx *ctx, const char *key, ls_obj *out)
{
    retry_storage *r = (retry_storage *)s;
    for (unsigned attempt = 0;; attempt++) {
        int rc = r->inner->stat(r->inner, ctx, key, out);
        if (rc == 0 || !again(r, ctx, rc, attempt, "stat", key))
            return rc;
    }
}

static int r_del(ls_storage *s, ls_ctx *ctx, const char *const *keys, size_t n)
{
    retry_storage *r = (retry_storage *)s;
    for (unsigned attempt = 0;; attempt++) {
        int rc = r->inner->del(r->inner, ctx, keys, n);
        if (rc == 0 || !again(r, ctx, rc, attempt, "delete", n ? keys[0] : NULL))
            return rc;
    }
}

static void r_close(ls_storage *s)
{
    retry_storage *r = (retry_storage *)s;
    ls_storage_close(r->inner);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void ls_storage_retry_limit(ls_storage *s, unsigned attempts)
{
    if (s && s->close == r_close)
        ((retry_storage *)s)->attempts = attempts ? attempts : 1;
}

int ls_storage_retry_open(ls_ctx *ctx, ls_storage *inner, unsigned attempts, ls_storage **out)
{
    retry_storage *r = calloc(1, sizeof(*r));
    *out = NULL;
    if (!r) {
        ls_storage_close(inner);
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    }
    ls_storage_init(&r->base, inner->type, inner->name, inner->desc);
    r->base.put = r_put;
    r->base.get = r_get;
    r->base.list = r_list;
    r->base.stat = r_stat;
    r->base.del = r_del;
    r->base.close = r_close;
    r->inner = inner;
    r->attempts = attempts ? attempts : 1;
    r->min_ms = 100;
    r->max_ms = 5000;
    pthread_mutex_init(&r->mu, NULL);
    *out = &r->base;
    return 0;
}
