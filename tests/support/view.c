/*
 * tests/support/view.c - a handle on another backend that does not own it,
 * so that several owners (replica workers, which close the handle they are
 * given) can use one store in turn and a test can look at it afterwards.
 *
 * Invariant: every call goes to the shared backend unchanged; closing the
 * view frees only the view.
 */
#include "storage_test.h"

#include <stdlib.h>

typedef struct view_store {
    ls_storage base;       /* must be first; type and names copied from the shared one */
    ls_storage *shared;    /* not owned */
} view_store;

static ls_storage *shared_of(ls_storage *s)
{
    return ((view_store *)s)->shared;
}

static int view_put(ls_storage *s, ls_ctx *ctx, const char *key, ls_reader *r)
{
    return shared_of(s)->put(shared_of(s), ctx, key, r);
}

static int view_get(ls_storage *s, ls_ctx *ctx, const char *key, uint64_t off, int64_t len,
                    ls_writer *w)
{
    return shared_of(s)->get(shared_of(s), ctx, key, off, len, w);
}

static int view_list(ls_storage *s, ls_ctx *ctx, const char *prefix, ls_obj_list *out)
{
    return shared_of(s)->list(shared_of(s), ctx, prefix, out);
}

static int view_stat(ls_storage *s, ls_ctx *ctx, const char *key, ls_obj *out)
{
    return shared_of(s)->stat(shared_of(s), ctx, key, out);
}

static int view_del(ls_storage *s, ls_ctx *ctx, const char *const *keys, size_t n)
{
    return shared_of(s)->del(shared_of(s), ctx, keys, n);
}

static void view_close(ls_storage *s)
{
    free(s);
}

int ls_storage_view_open(ls_ctx *ctx, ls_storage *shared, ls_storage **out)
{
    view_store *v = calloc(1, sizeof(*v));
    *out = NULL;
    if (!v)
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    v->shared = shared;
    ls_storage_init(&v->base, shared->type, shared->name, shared->desc);
    v->base.put = view_put;
    v->base.get = view_get;
    v->base.list = view_list;
    v->base.stat = view_stat;
    v->base.del = view_del;
    v->base.close = view_close;
    *out = &v->base;
    return 0;
}
