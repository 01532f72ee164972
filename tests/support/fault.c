/*
 * tests/support/fault.c - a backend wrapper that fails chosen calls, for tests of
 * the layers above storage (retries, all-or-nothing puts, restore errors).
 * The rule is described in storage_test.h.
 *
 * Invariant: with no rule (ops == 0) every call goes to the wrapped backend
 * unchanged, so the contract suite can run on the wrapper as on any backend.
 * Counters and rule are plain fields: one thread at a time.
 */
#include "storage_test.h"

#include <stdlib.h>
#include <string.h>

/* Number of operation kinds (LS_FAULT_* bits). */
#define N_OPS 5

typedef struct fault_store {
    ls_storage base;       /* must be first; type and names copied from inner */
    ls_storage *inner;     /* the wrapped backend, owned */
    ls_fault rule;         /* current rule */
    uint64_t calls[N_OPS]; /* calls seen, per operation bit */
    uint64_t matched;      /* calls the rule's ops selected */
    uint64_t injected;     /* failures injected */
} fault_store;

/* A reader or writer that fails once `left` bytes went through it. */
typedef struct cut_stream {
    ls_ctx *ctx;    /* messages */
    ls_reader *src; /* put: the caller's source */
    ls_writer *dst; /* get: the caller's sink */
    int64_t left;   /* bytes still allowed through */
    int code;       /* failure to return */
    int fired;      /* 1 once the failure was returned */
} cut_stream;

static int rule_code(const fault_store *f)
{
    return f->rule.code ? f->rule.code : LS_EIO;
}

/* Count a call of operation `op` (one LS_FAULT_* bit); 1 if it must fail. */
static int should_fail(fault_store *f, unsigned op)
{
    for (int b = 0; b < N_OPS; b++) {
        if (op == (1u << b))
            f->calls[b]++;
    }
    if (!(f->rule.ops & op))
        return 0;
    uint64_t k = f->matched++;
    if (k < f->rule.skip)
        return 0;
    return f->rule.times < 0 || k - f->rule.skip < (uint64_t)f->rule.times;
}

static int inject(fault_store *f, ls_ctx *ctx, const char *op, const char *key)
{
    f->injected++;
    return ls_storage_err(&f->base, ctx, rule_code(f), op, key, "injected fault");
}

static int64_t cut_read(void *ud, uint8_t *buf, size_t n)
{
    cut_stream *c = ud;
    if (c->left == 0) {
        c->fired = 1;
        return ls_err(c->ctx, c->code, "injected fault");
    }
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
    size_t pass = (uint64_t)n > (uint64_t)c->left ? (size_t)c->left : n;
    if (pass > 0) {
        int rc = c->dst->write(c->dst->ud, buf, pass);
        if (rc)
            return rc;
        c->left -= (int64_t)pass;
    }
    if (pass < n) {
        c->fired = 1;
        return ls_err(c->ctx, c->code, "injected fault");
    }
    return 0;
}

/*
 * put and get under a rule with partial >= 0: run the inner call through a
 * cut stream; if the cut never fired, the call completed below and the
 * failure is reported now (a lost reply).
 */
static int cut_result(fault_store *f, ls_ctx *ctx, const cut_stream *c, int rc, const char *op,
                      const char *key)
{
    if (c->fired) {
        f->injected++;
        return rc;
    }
    return rc ? rc : inject(f, ctx, op, key);
}

static int fault_put(ls_storage *s, ls_ctx *ctx, const char *key, ls_reader *r)
{
    fault_store *f = (fault_store *)s;
    if (!should_fail(f, LS_FAULT_PUT))
        return f->inner->put(f->inner, ctx, key, r);
    if (f->rule.partial < 0)
        return inject(f, ctx, "put", key);
    cut_stream c = {ctx, r, NULL, f->rule.partial, rule_code(f), 0};
    ls_reader cr = {cut_read, &c, r->size};
    int rc = f->inner->put(f->inner, ctx, key, &cr);
    return cut_result(f, ctx, &c, rc, "put", key);
}

static int fault_get(ls_storage *s, ls_ctx *ctx, const char *key, uint64_t off, int64_t len,
                     ls_writer *w)
{
    fault_store *f = (fault_store *)s;
    if (!should_fail(f, LS_FAULT_GET))
        return f->inner->get(f->inner, ctx, key, off, len, w);
    if (f->rule.partial < 0)
        return inject(f, ctx, "get", key);
    cut_stream c = {ctx, NULL, w, f->rule.partial, rule_code(f), 0};
    ls_writer cw = {cut_write, &c};
    int rc = f->inner->get(f->inner, ctx, key, off, len, &cw);
    return cut_result(f, ctx, &c, rc, "get", key);
}

static int fault_list(ls_storage *s, ls_ctx *ctx, const char *prefix, ls_obj_list *out)
{
    fault_store *f = (fault_store *)s;
    if (should_fail(f, LS_FAULT_LIST))
        return inject(f, ctx, "list", prefix);
    return f->inner->list(f->inner, ctx, prefix, out);
}

static int fault_stat(ls_storage *s, ls_ctx *ctx, const char *key, ls_obj *out)
{
    fault_store *f = (fault_store *)s;
    if (should_fail(f, LS_FAULT_STAT))
        return inject(f, ctx, "stat", key);
    return f->inner->stat(f->inner, ctx, key, out);
}

static int fault_del(ls_storage *s, ls_ctx *ctx, const char *const *keys, size_t n)
{
    fault_store *f = (fault_store *)s;
    if (should_fail(f, LS_FAULT_DEL))
        return inject(f, ctx, "delete", n ? keys[0] : NULL);
    return f->inner->del(f->inner, ctx, keys, n);
}

static void fault_close(ls_storage *s)
{
    fault_store *f = (fault_store *)s;
    ls_storage_close(f->inner);
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
    f->rule = *rule;
    memset(f->calls, 0, sizeof(f->calls));
    f->matched = 0;
    f->injected = 0;
}

uint64_t ls_storage_fault_calls(ls_storage *s, unsigned ops)
{
    const fault_store *f = (const fault_store *)s;
    uint64_t n = 0;
    for (int b = 0; b < N_OPS; b++) {
        if (ops & (1u << b))
            n += f->calls[b];
    }
    return n;
}

uint64_t ls_storage_fault_injected(ls_storage *s)
{
    return ((const fault_store *)s)->injected;
}
