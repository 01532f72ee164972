/*
 * catalog.h - what a replica holds, organised: generations, each with its
 * snapshots and WAL segments sorted, and its time range. One listing of the
 * replica builds it; restore, validate and the listing commands read it.
 */
#ifndef LS_CATALOG_H
#define LS_CATALOG_H

#include "layout.h"
#include "storage.h"

typedef struct ls_cat_obj {
    uint32_t index;         /* WAL index */
    uint32_t offset;        /* segment offset (0 for snapshots) */
    uint64_t size;          /* stored (compressed) size */
    int64_t mtime_ms;       /* upload time */
} ls_cat_obj;

typedef struct ls_cat_gen {
    char name[LS_GEN_LEN + 1];
    ls_cat_obj *snaps;      /* sorted by index, then time */
    size_t nsnap;
    ls_cat_obj *segs;       /* sorted by index, then offset */
    size_t nseg;
    int64_t start_ms;       /* earliest upload time of any object */
    int64_t end_ms;         /* latest */
} ls_cat_gen;

typedef struct ls_catalog {
    ls_cat_gen *gens;       /* sorted by name */
    size_t n;
} ls_catalog;

/* List the replica (all generations, or only `gen` when not NULL). */
int ls_catalog_load(ls_ctx *ctx, ls_storage *st, const char *gen, ls_catalog *out);
void ls_catalog_free(ls_catalog *c);
const ls_cat_gen *ls_catalog_find(const ls_catalog *c, const char *gen);
/* Decompressed length of one stored object (a WAL segment's end is its offset plus this). */
int ls_catalog_object_length(ls_ctx *ctx, ls_storage *st, const char *key, uint64_t *len);

#endif
