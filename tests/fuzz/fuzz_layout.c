/*
 * fuzz_layout.c - replica object names and listings on any bytes: each line
 * of the input is a key as a backend's list would return it. Every line goes
 * through ls_layout_parse (a parsed key must format back to itself) and
 * ls_layout_is_gen; then the whole listing, served by a fake backend whose
 * list answers with the lines under the asked prefix, is organised by
 * ls_catalog_load (all generations, then each one alone), whose result must
 * be sorted and must agree with the generation-only load.
 *
 * Seeds (corpus/fuzz_layout): the key lists (`find generations -type f`
 * under the replica root) of the replicas Litestream 0.3.13 and litesafe
 * wrote for the fuzz_lz4 seeds, one of both merged with a stray file, plus
 * regress-* inputs of findings. tests/fuzz/seeds_store.sh remakes them.
 */
#include "catalog.h"
#include "fuzz_store.h"
#include "layout.h"

#include <litesafe.h>

/* The fake backend: the lines of the input, in input order. */
typedef struct lines_store {
    ls_storage base; /* must be first */
    char **keys;     /* NUL-terminated lines */
    size_t n;        /* their count */
} lines_store;

static int lines_list(ls_storage *s, ls_ctx *ctx, const char *prefix, ls_obj_list *out)
{
    lines_store *ls = (lines_store *)s;
    (void)ctx;
    for (size_t i = 0; i < ls->n; i++)
        if (strncmp(ls->keys[i], prefix, strlen(prefix)) == 0 &&
            ls_obj_list_add(out, ls->keys[i], strlen(ls->keys[i]), (int64_t)(i * 7919 % 5)) != 0)
            return LS_ENOMEM;
    return 0;
}

/* 1 if the objects of one generation are sorted as catalog.h says. */
static int sorted(const ls_cat_obj *v, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (v[i - 1].index > v[i].index ||
            (v[i - 1].index == v[i].index && v[i - 1].offset > v[i].offset))
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ls_ctx *ctx;
    if (!ctx && ls_ctx_new(&ctx) != 0)
        return 0;

    char *text = fuzz_text(data, size);
    lines_store st = {0};
    st.keys = malloc((size + 1) * sizeof(*st.keys));
    if (!text || !st.keys)
        goto cleanup;
    for (char *p = text, *nl; p; p = nl) {
        nl = strchr(p, '\n');
        if (nl)
            *nl++ = '\0';
        st.keys[st.n++] = p;
    }

    /* 1. Each key alone: a parsed key formats back to itself. */
    for (size_t i = 0; i < st.n; i++) {
        ls_key k;
        char again[LS_LAYOUT_KEY_MAX], pos[LS_LAYOUT_POS_MAX];
        ls_key_kind kind = ls_layout_parse(st.keys[i], &k);
        ls_layout_is_gen(st.keys[i]);
        if (kind == LS_KEY_OTHER)
            continue;
        if (!ls_layout_is_gen(k.gen))
            abort();
        if (kind == LS_KEY_SNAPSHOT)
            ls_layout_snapshot_key(again, sizeof(again), k.gen, k.index);
        else
            ls_layout_wal_key(again, sizeof(again), k.gen, k.index, k.offset);
        if (strcmp(again, st.keys[i]) != 0)
            abort();
        ls_layout_pos_str(pos, sizeof(pos), k.gen, k.index, k.offset);
    }

    /* 2. The listing as a catalog, whole and per generation. */
    ls_storage_init(&st.base, "lines", "fuzz", NULL);
    st.base.list = lines_list;
    ls_catalog all;
    if (ls_catalog_load(ctx, &st.base, NULL, &all) != 0)
        goto cleanup;
    for (size_t g = 0; g < all.n; g++) {
        const ls_cat_gen *cg = &all.gens[g];
        if ((g && strcmp(all.gens[g - 1].name, cg->name) >= 0) || !sorted(cg->snaps, cg->nsnap) ||
            !sorted(cg->segs, cg->nseg) || ls_catalog_find(&all, cg->name) != cg)
            abort();
        ls_catalog one;
        if (ls_catalog_load(ctx, &st.base, cg->name, &one) != 0)
            continue;
        if (one.n != 1 || one.gens[0].nsnap != cg->nsnap || one.gens[0].nseg != cg->nseg)
            abort();
        ls_catalog_free(&one);
    }
    ls_catalog_free(&all);

cleanup:
    ls_err_clear(ctx);
    free(st.keys);
    free(text);
    return 0;
}
