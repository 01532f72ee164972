/*
 * tests/support/fault.c - a backend wrapper that fails, cuts, slows or hangs
 * chosen calls, for tests of the layers above storage (retries,
 * all-or-nothing puts, restore errors, cancellation, stores that break the
 * contract). The rule is described in storage_test.h.
 *
 * Invariants:
 *   - With no rule (ops == 0) every call goes to the wrapped backend
 *     unchanged, so the contract suite can run on the wrapper as on any
 *     backend.
 *   - The rule, the counters and the epoch are guarded by `mu`; a call takes
 *     what it needs under the lock (fault_call: a copy of the rule) and then
 *     never holds the lock while it waits or calls the wrapped backend, so
 *     calls from several threads run at once, as the contract requires.
 *   - A hanging call ends when its ctx is cancelled, the rule is replaced
 *     (the epoch moved) or its bound elapsed: nothing hangs forever that a
 *     test or a library's stop can release.
 */
#include "storage_test.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Number of operation kinds (LS_FAULT_* bits). */
#define N_OPS 5
/* How often a hanging or slow call looks at its ctx and the rule. */
#define POLL_MS 2

typedef struct fault_store {
    ls_storage base;       /* must be first; type and names copied from inner */
    ls_storage *inner;     /* the wrapped backend, owned */
    pthread_mutex_t mu;    /* guards every field below */
    ls_fault rule;         /* current rule */
    uint64_t epoch;        /* bumped by ls_storage_fault_set: releases hangs of older rules */
    uint64_t calls[N_OPS]; /* calls seen, per operation bit */
    uint64_t matched;      /* calls the rule's ops selected */
    uint64_t injected;     /* calls the rule acted on */
    uint64_t hanging;      /* calls blocked in hang() right now */
} fault_store;

/* One call's share of the rule, taken under the lock. */
typedef struct fault_call {
    int hit;        /* the rule takes this call */
    ls_fault rule;  /* the rule as it was when the call came */
    uint64_t epoch; /* its epoch */
} fault_call;

/* A reader or writer that cuts the transfer once `left` bytes went through it. */
typedef struct cut_stream {
    fault_store *f;
    const fault_call *fc;
    ls_ctx *ctx;      /* messages, cancellation */
    const char *op;   /* "put" or "get", for the message of a hang */
    const char *key;
    ls_reader *src;   /* put: the caller's source */
    ls_writer *dst;   /* get: the caller's sink */
    int64_t left;     /* bytes still allowed through */
    int fired;        /* 1 once the cut happened (failure, hang or end) */
} cut_stream;

static int rule_code(const ls_fault *rule)
{
    return rule->code ? rule->code : LS_EIO;
}

static void count_injected(fault_store *f)
{
    pthread_mutex_lock(&f->mu);
    f->injected++;
    pthread_mutex_unlock(&f->mu);
}

/*
 * Count a call of operation `op` (one LS_FAULT_* bit) and decide whether the
 * rule takes it. Calls the rule takes in any mode but FAIL are counted as
 * injected here (FAIL counts where the failure happens: a cut that never
 * fires below is a lost reply, counted by cut_result).
 */
static fault_call select_call(fault_store *f, unsigned op)
{
    fault_call fc = {0};
    pthread_mutex_lock(&f->mu);
    for (int b = 0; b < N_OPS; b++) {
        if (op == (1u << b))
            f->calls[b]++;
    }
    fc.rule = f->rule;
    fc.epoch = f->epoch;
    if (f->rule.ops & op) {
        uint64_t k = f->matched++;
        fc.hit = k >= f->rule.skip &&
                 (f->rule.times < 0 || k - f->rule.skip < (uint64_t)f->rule.times);
    }
    if (fc.hit && fc.rule.mode != LS_FAULT_MODE_FAIL)
        f->injected++;
    pthread_mutex_unlock(&f->mu);
    return fc;
}

static int inject(fault_store *f, ls_ctx *ctx, const fault_call *fc, const char *op,
                  const char *key)
{
    count_injected(f);
    return ls_storage_err(&f->base, ctx, rule_code(&fc->rule), op, key, "injected fault");
}

/* SLOW: wait the rule's delay in slices (a cancelled ctx ends the wait). */
static void slow(const fault_call *fc, ls_ctx *ctx)
{
    uint64_t t0 = ls_now_ms();
    while (!ls_cancelled(ctx) && ls_now_ms() - t0 < (uint64_t)fc->rule.delay_ms)
        usleep(POLL_MS * 1000);
}

/*
 * HANG: block until ctx is cancelled, the rule is replaced or its bound
 * elapsed. Returns the failure: LS_ECANCEL when cancelled, else the rule's code.
 */
static int hang(fault_store *f, ls_ctx *ctx, const fault_call *fc, const char *op,
                const char *key)
{
    uint64_t t0 = ls_now_ms();
    pthread_mutex_lock(&f->mu);
    f->hanging++;
    pthread_mutex_unlock(&f->mu);
    for (;;) {
        if (ls_cancelled(ctx))
            break;
        pthread_mutex_lock(&f->mu);
        int lifted = f->epoch != fc->epoch;
        pthread_mutex_unlock(&f->mu);
        if (lifted || (fc->rule.delay_ms > 0 && ls_now_ms() - t0 >= (uint64_t)fc->rule.delay_ms))
            break;
        usleep(POLL_MS * 1000);
    }
    pthread_mutex_lock(&f->mu);
    f->hanging--;
    pthread_mutex_unlock(&f->mu);
    if (ls_cancelled(ctx))
        return ls_storage_err(&f->base, ctx, LS_ECANCEL, op, key, "cancelled");
    return ls_storage_err(&f->base, ctx, rule_code(&fc->rule), op, key, "injected fault (hung)");
}

/* The cut of a stream: FAIL fails, HANG hangs then fails, SHORT ends it (0). */
static int cut_fire(cut_stream *c)
{
    c->fired = 1;
    switch (c->fc->rule.mode) {
    case LS_FAULT_MODE_SHORT:
        return 0;
    case LS_FAULT_MODE_HANG:
        return hang(c->f, c->ctx, c->fc, c->op, c->key);
    default:
        return ls_err(c->ctx, rule_code(&c->fc->rule), "injected fault");
    }
}

static int64_t cut_read(void *ud, uint8_t *buf, size_t n)
{
    cut_stream *c = ud;
    if (c->left <= 0)
        return cut_fire(c);
    if ((uint64_t)n > (uint64_t)c->left)
        n = (size_t)c->left;
    int64_t got = c->src->read(c->src->ud, buf, n);
    if (got > 0)
        c->left -= got;
    return got;
}

static int cut_write(void *ud, const uint8_t *buf, size_t n)
{
    cut_stream *c = ud;
    size_t pass = c->left <= 0 ? 0 : (uint64_t)n > (uint64_t)c->left ? (size_t)c->left : n;
    if (pass > 0) {
        int rc = c->dst->write(c->dst->ud, buf, pass);
        if (rc)
            return rc;
        c->left -= (int64_t)pass;
    }
    if (pass < n) {
        if (c->fired && c->fc->rule.mode == LS_FAULT_MODE_SHORT)
            return 0; /* the rest of a short read: dropped */
        return cut_fire(c);
    }
    return 0;
}

/*
 * put and get through a cut stream: if the cut never fired, the call
 * completed below; under FAIL or HANG the failure is reported now (a lost
 * reply), under SHORT the call's own result stands.
 */
static int cut_result(cut_stream *c, int rc)
{
    if (c->fc->rule.mode == LS_FAULT_MODE_SHORT)
        return rc;
    if (c->fired) {
        if (c->fc->rule.mode == LS_FAULT_MODE_FAIL)
            count_injected(c->f);
        return rc;
    }
    if (rc)
        return rc;
    if (c->fc->rule.mode == LS_FAULT_MODE_HANG)
        return hang(c->f, c->ctx, c->fc, c->op, c->key);
    return inject(c->f, c->ctx, c->fc, c->op, c->key);
}

/*
 * Before a call the rule took: SLOW waits (then 0: go through), FAIL and
 * HANG without `partial` fail here (*done set, the failure returned), the
 * others go on to the call's own handling.
 */
static int before_call(fault_store *f, ls_ctx *ctx, const fault_call *fc, int streams,
                       const char *op, const char *key, int *done)
{
    *done = 0;
    switch (fc->rule.mode) {
    case LS_FAULT_MODE_SLOW:
        slow(fc, ctx);
        return 0;
    case LS_FAULT_MODE_SHORT:
        return 0;
    case LS_FAULT_MODE_HANG:
        if (streams && fc->rule.partial >= 0)
            return 0;
        *done = 1;
        return hang(f, ctx, fc, op, key);
    default:
        if (streams && fc->rule.partial >= 0)
            return 0;
        *done = 1;
        return inject(f, ctx, fc, op, key);
    }
}

static int fault_put(ls_storage *s, ls_ctx *ctx, const char *key, ls_reader *r)
{
    fault_store *f = (fault_store *)s;
    fault_call fc = select_call(f, LS_FAULT_PUT);
    int done, rc;
    if (!fc.hit)
        return f->inner->put(f->inner, ctx, key, r);
    rc = before_call(f, ctx, &fc, 1, "put", key, &done);
    if (done || fc.rule.mode == LS_FAULT_MODE_SLOW)
        return done ? rc : f->inner->put(f->inner, ctx, key, r);
    int64_t keep = fc.rule.partial < 0 ? 0 : fc.rule.partial;
    cut_stream c = {f, &fc, ctx, "put", key, r, NULL, keep, 0};
    /* A short put announces the length it will store (a backend may check it). */
    int64_t size = fc.rule.mode == LS_FAULT_MODE_SHORT && r->size > keep ? keep : r->size;
    ls_reader cr = {cut_read, &c, size};
    rc = f->inner->put(f->inner, ctx, key, &cr);
    return cut_result(&c, rc);
}

static int fault_get(ls_storage *s, ls_ctx *ctx, const char *key, uint64_t off, int64_t len,
                     ls_writer *w)
{
    fault_store *f = (fault_store *)s;
    fault_call fc = select_call(f, LS_FAULT_GET);
    int done, rc;
    if (!fc.hit)
        return f->inner->get(f->inner, ctx, key, off, len, w);
    rc = before_call(f, ctx, &fc, 1, "get", key, &done);
    if (done || fc.rule.mode == LS_FAULT_MODE_SLOW)
        return done ? rc : f->inner->get(f->inner, ctx, key, off, len, w);
    int64_t keep = fc.rule.partial < 0 ? 0 : fc.rule.partial;
    cut_stream c = {f, &fc, ctx, "get", key, NULL, w, keep, 0};
    ls_writer cw = {cut_write, &c};
    rc = f->inner->get(f->inner, ctx, key, off, len, &cw);
    return cut_result(&c, rc);
}

/* SHORT list: the inner listing sorted, its first `keep` keys appended to out. */
static int short_list(fault_store *f, ls_ctx *ctx, const char *prefix, int64_t keep,
                      ls_obj_list *out)
{
    ls_obj_list all = {0};
    int rc = f->inner->list(f->inner, ctx, prefix, &all);
    ls_obj_list_sort(&all);
    for (size_t i = 0; !rc && i < all.n && (int64_t)i < keep; i++)
        if (ls_obj_list_add(out, all.v[i].key, all.v[i].size, all.v[i].mtime_ms) != 0)
            rc = ls_storage_err(&f->base, ctx, LS_ENOMEM, "list", prefix, "out of memory");
    ls_obj_list_free(&all);
    return rc;
}

static int fault_list(ls_storage *s, ls_ctx *ctx, const char *prefix, ls_obj_list *out)
{
    fault_store *f = (fault_store *)s;
    fault_call fc = select_call(f, LS_FAULT_LIST);
    int done = 0, rc = 0;
    if (fc.hit && ((rc = before_call(f, ctx, &fc, 0, "list", prefix, &done)) != 0 || done))
        return rc;
    if (fc.hit && fc.rule.mode == LS_FAULT_MODE_SHORT)
        return short_list(f, ctx, prefix, fc.rule.partial < 0 ? 0 : fc.rule.partial, out);
    return f->inner->list(f->inner, ctx, prefix, out);
}

static int fault_stat(ls_storage *s, ls_ctx *ctx, const char *key, ls_obj *out)
{
    fault_store *f = (fault_store *)s;
    fault_call fc = select_call(f, LS_FAULT_STAT);
    int done = 0, rc = 0;
    if (fc.hit && ((rc = before_call(f, ctx, &fc, 0, "stat", key, &done)) != 0 || done))
        return rc;
    return f->inner->stat(f->inner, ctx, key, out);
}

static int fault_del(ls_storage *s, ls_ctx *ctx, const char *const *keys, size_t n)
{
    fault_store *f = (fault_store *)s;
    fault_call fc = select_call(f, LS_FAULT_DEL);
    int done = 0, rc = 0;
    if (fc.hit && ((rc = before_call(f, ctx, &fc, 0, "delete", n ? keys[0] : NULL, &done)) != 0 ||
                   done))
        return rc;
    return f->inner->del(f->inner, ctx, keys, n);
}

static void fault_close(ls_storage *s)
{
    fault_store *f = (fault_store *)s;
    ls_storage_close(f->inner);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

int ls_storage_fault_open(ls_ctx *ctx, ls_storage *inner, ls_storage **out)
{
    fault_store *f = calloc(1, sizeof(*f));
    *out = NULL;
    if (!f)
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    f->inner = inner;
    f->rule.partial = -1;
    pthread_mutex_init(&f->mu, NULL);
    ls_storage_init(&f->base, inner->type, inner->name, inner->desc);
    f->base.put = fault_put;
    f->base.get = fault_get;
    f->base.list = fault_list;
    f->base.stat = fault_stat;
    f->base.del = fault_del;
    f->base.close = fault_close;
    *out = &f->base;
    return 0;
}

void ls_storage_fault_set(ls_storage *s, const ls_fault *rule)
{
    fault_store *f = (fault_store *)s;
    pthread_mutex_lock(&f->mu);
    f->rule = *rule;
    f->epoch++;
    memset(f->calls, 0, sizeof(f->calls));
    f->matched = 0;
    f->injected = 0;
    pthread_mutex_unlock(&f->mu);
}

uint64_t ls_storage_fault_calls(ls_storage *s, unsigned ops)
{
    fault_store *f = (fault_store *)s;
    uint64_t n = 0;
    pthread_mutex_lock(&f->mu);
    for (int b = 0; b < N_OPS; b++) {
        if (ops & (1u << b))
            n += f->calls[b];
    }
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* A counter of f, read under its lock. */
static uint64_t read_locked(fault_store *f, const uint64_t *v)
{
    pthread_mutex_lock(&f->mu);
    uint64_t n = *v;
    pthread_mutex_unlock(&f->mu);
    return n;
}

uint64_t ls_storage_fault_injected(ls_storage *s)
{
    fault_store *f = (fault_store *)s;
    return read_locked(f, &f->injected);
}

uint64_t ls_storage_fault_hanging(ls_storage *s)
{
    fault_store *f = (fault_store *)s;
    return read_locked(f, &f->hanging);
}
