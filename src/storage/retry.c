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
 *
 * Every try is counted (ls_storage_counts_get): requests by operation,
 * failures by class, and the requests of the last minute in one-second
 * buckets, for status and metrics.
 */
#include "age.h"
#include "retry.h"
#include "storage.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct retry_storage {
    ls_storage base;
    ls_storage *inner;
    unsigned attempts;         /* tries per call, first included */
    uint64_t min_ms, max_ms;   /* backoff bounds */
    pthread_mutex_t mu;        /* guards last and the counters (restore's threads
                                  share a handle) */
    char last[512];            /* the failure the last retry logged followed */
    ls_storage_counts counts;  /* last_minute unused here: see minute[] */
    struct {
        int64_t sec;           /* the unix second the bucket counts */
        uint64_t n;
    } minute[60];
} retry_storage;

enum { OP_PUT, OP_GET, OP_LIST, OP_STAT, OP_DEL };

static void r_close(ls_storage *s);

static int64_t unix_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

/* Count one try of `op` that returned rc (its message in ctx); returns rc. */
static int counted(retry_storage *r, ls_ctx *ctx, int op, int rc)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec;
    pthread_mutex_lock(&r->mu);
    ls_storage_counts *c = &r->counts;
    uint64_t *per_op[] = {&c->puts, &c->gets, &c->lists, &c->stats, &c->deletes};
    (*per_op[op])++;
    /* A missing object is an answer to a read, not a failure. */
    int failed = rc != 0 && !(rc == LS_ENOENT && op != OP_PUT);
    if (!failed)
        ;
    else if (rc == LS_ENET)
        c->errors_net++;
    else if (rc == LS_EPERM)
        c->errors_auth++;
    else
        c->errors_other++;
    c->try_rc = failed ? rc : 0;
    if (failed) {
        c->try_error_ms = now * 1000 + ts.tv_nsec / 1000000;
        ls_strlcpy(c->try_error, ctx ? ls_errmsg(ctx) : "request failed", sizeof(c->try_error));
    }
    size_t b = (size_t)(now % 60);
    if (r->minute[b].sec != now) {
        r->minute[b].sec = now;
        r->minute[b].n = 0;
    }
    r->minute[b].n++;
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void ls_storage_counts_get(ls_storage *s, ls_storage_counts *out)
{
    memset(out, 0, sizeof(*out));
    s = ls_storage_age_inner(s); /* an encrypted replica: its backend's counts */
    if (!s || s->close != r_close)
        return;
    retry_storage *r = (retry_storage *)s;
    int64_t now = unix_sec();
    pthread_mutex_lock(&r->mu);
    *out = r->counts;
    for (size_t i = 0; i < 60; i++)
        if (r->minute[i].sec > now - 60)
            out->last_minute += r->minute[i].n;
    pthread_mutex_unlock(&r->mu);
}

/* After failure rc of try `attempt` (0-based): 1 if another try should follow. */
static int again(retry_storage *r, ls_ctx *ctx, int rc, unsigned attempt, const char *op,
                 const char *key)
{
    if (!ls_retryable(rc) || attempt + 1 >= r->attempts || ls_cancelled(ctx))
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
    for (uint64_t slept = 0; slept < ms && !ls_cancelled(ctx); slept += 20)
        usleep((useconds_t)((ms - slept < 20 ? ms - slept : 20) * 1000));
    return !ls_cancelled(ctx);
}

static int r_put(ls_storage *s, ls_ctx *ctx, const char *key, ls_reader *rd)
{
    retry_storage *r = (retry_storage *)s;
    return counted(r, ctx, OP_PUT, r->inner->put(r->inner, ctx, key, rd));
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
        int rc = counted(r, ctx, OP_GET,
                         r->inner->get(r->inner, ctx, key, off + k.done, left, &sink));
        if (rc == 0 || k.wrc != 0 || !again(r, ctx, rc, attempt, "get", key))
            return rc;
    }
}

static int r_list(ls_storage *s, ls_ctx *ctx, const char *prefix, ls_obj_list *out)
{
    retry_storage *r = (retry_storage *)s;
    size_t n0 = out->n;
    for (unsigned attempt = 0;; attempt++) {
        int rc = counted(r, ctx, OP_LIST, r->inner->list(r->inner, ctx, prefix, out));
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
        int rc = counted(r, ctx, OP_STAT, r->inner->stat(r->inner, ctx, key, out));
        if (rc == 0 || !again(r, ctx, rc, attempt, "stat", key))
            return rc;
    }
}

static int r_del(ls_storage *s, ls_ctx *ctx, const char *const *keys, size_t n)
{
    retry_storage *r = (retry_storage *)s;
    for (unsigned attempt = 0;; attempt++) {
        int rc = counted(r, ctx, OP_DEL, r->inner->del(r->inner, ctx, keys, n));
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
    s = ls_storage_age_inner(s);
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
    r->base.caps = inner->version >= 2 ? inner->caps : 0; /* what the inner one cannot do */
    r->inner = inner;
    r->attempts = attempts ? attempts : 1;
    r->min_ms = 100;
    r->max_ms = 5000;
    pthread_mutex_init(&r->mu, NULL);
    *out = &r->base;
    return 0;
}
