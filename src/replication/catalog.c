/*
 * catalog.c - build a catalog from one listing (see catalog.h). Keys that do
 * not match the layout are ignored, as Litestream ignores them.
 */
#include "catalog.h"

#include "stream.h"

#include <stdlib.h>
#include <string.h>

static int cmp_obj(const void *a, const void *b)
{
    const ls_cat_obj *x = a, *y = b;
    if (x->index != y->index)
        return x->index < y->index ? -1 : 1;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return (x->mtime_ms > y->mtime_ms) - (x->mtime_ms < y->mtime_ms);
}

static int cmp_gen(const void *a, const void *b)
{
    return strcmp(((const ls_cat_gen *)a)->name, ((const ls_cat_gen *)b)->name);
}

static int push(ls_cat_obj **v, size_t *n, const ls_cat_obj *o)
{
    if ((*n & (*n - 1)) == 0) { /* grow at powers of two */
        ls_cat_obj *nv = realloc(*v, (*n ? *n * 2 : 8) * sizeof(**v));
        if (!nv)
            return LS_ENOMEM;
        *v = nv;
    }
    (*v)[(*n)++] = *o;
    return 0;
}

static ls_cat_gen *gen_get(ls_catalog *c, const char *name, size_t *cap)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->gens[i].name, name) == 0)
            return &c->gens[i];
    if (c->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        ls_cat_gen *ng = realloc(c->gens, ncap * sizeof(*ng));
        if (!ng)
            return NULL;
        c->gens = ng;
        *cap = ncap;
    }
    ls_cat_gen *g = &c->gens[c->n++];
    memset(g, 0, sizeof(*g));
    memcpy(g->name, name, LS_GEN_LEN + 1);
    return g;
}

int ls_catalog_load(ls_ctx *ctx, ls_storage *st, const char *gen, ls_catalog *out)
{
    char prefix[LS_LAYOUT_KEY_MAX];
    ls_obj_list l = {0};
    size_t cap = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    if (gen)
        ls_layout_gen_prefix(prefix, sizeof(prefix), gen);
    else
        ls_strlcpy(prefix, ls_layout_root_prefix(), sizeof(prefix));
    rc = st->list(st, ctx, prefix, &l);
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        ls_key k;
        ls_key_kind kind = ls_layout_parse(l.v[i].key, &k);
        if (kind == LS_KEY_OTHER)
            continue;
        ls_cat_gen *g = gen_get(out, k.gen, &cap);
        if (!g) {
            rc = ls_err(ctx, LS_ENOMEM, "out of memory");
            break;
        }
        ls_cat_obj o = {k.index, kind == LS_KEY_WAL ? k.offset : 0, l.v[i].size, l.v[i].mtime_ms};
        if (kind == LS_KEY_SNAPSHOT)
            rc = push(&g->snaps, &g->nsnap, &o);
        else
            rc = push(&g->segs, &g->nseg, &o);
        if (rc) {
            rc = ls_err(ctx, LS_ENOMEM, "out of memory");
            break;
        }
        if (g->start_ms == 0 || o.mtime_ms < g->start_ms)
            g->start_ms = o.mtime_ms;
        if (o.mtime_ms > g->end_ms)
            g->end_ms = o.mtime_ms;
    }
    ls_obj_list_free(&l);
    if (rc) {
        ls_catalog_free(out);
        return rc;
    }
    for (size_t i = 0; i < out->n; i++) {
        if (out->gens[i].nsnap)
            qsort(out->gens[i].snaps, out->gens[i].nsnap, sizeof(ls_cat_obj), cmp_obj);
        if (out->gens[i].nseg)
            qsort(out->gens[i].segs, out->gens[i].nseg, sizeof(ls_cat_obj), cmp_obj);
    }
    if (out->n)
        qsort(out->gens, out->n, sizeof(*out->gens), cmp_gen);
    return 0;
}

void ls_catalog_free(ls_catalog *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->gens[i].snaps);
        free(c->gens[i].segs);
    }
    free(c->gens);
    memset(c, 0, sizeof(*c));
}

const ls_cat_gen *ls_catalog_find(const ls_catalog *c, const char *gen)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->gens[i].name, gen) == 0)
            return &c->gens[i];
    return NULL;
}

static int count_bytes(void *ud, const uint8_t *buf, size_t n)
{
    (void)buf;
    *(uint64_t *)ud += n;
    return 0;
}

int ls_catalog_object_length(ls_ctx *ctx, ls_storage *st, const char *key, uint64_t *len)
{
    ls_writer counter = {count_bytes, len}, in;
    ls_lz4_writer *z = NULL;
    *len = 0;
    int rc = ls_lz4_writer_new(ctx, &counter, &z, &in);
    if (!rc)
        rc = st->get(st, ctx, key, 0, -1, &in);
    if (!rc)
        rc = ls_lz4_writer_finish(z);
    ls_lz4_writer_free(z);
    return rc;
}
