/*
 * tests/support/mem.c - an in-memory backend for tests, with the file backend's
 * contract (storage.h): same key rules, same messages, whole-object
 * replacement, ranges, string-prefix listing.
 *
 * Invariants: objects live in one array under one mutex; a put reads its
 * whole source into a private buffer first and only then swaps it in, so a
 * failing source leaves the store unchanged (all-or-nothing). get copies
 * the range out under the lock and streams it to the writer unlocked, in
 * 64 KiB chunks (ls_copy), so a writer may call back into the store.
 */
#define _GNU_SOURCE
#include "storage_test.h"
#include "io.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One stored object. */
typedef struct mem_obj {
    char *key;        /* malloc'd key */
    uint8_t *data;    /* malloc'd bytes, NULL when empty */
    size_t n;         /* byte count */
    int64_t mtime_ms; /* time of the put (or as set by the test hook) */
} mem_obj;

typedef struct mem_store {
    ls_storage base;    /* must be first */
    pthread_mutex_t mu; /* guards v, n, cap */
    mem_obj *v;         /* objects, unordered */
    size_t n;           /* count */
    size_t cap;         /* allocated */
} mem_store;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Index of key, or -1. Call with the lock held. */
static ssize_t find(const mem_store *m, const char *key)
{
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->v[i].key, key) == 0)
            return (ssize_t)i;
    }
    return -1;
}

/* Read the whole source, then insert or replace under the lock. */
static int mem_put(ls_storage *s, ls_ctx *ctx, const char *key, ls_reader *r)
{
    mem_store *m = (mem_store *)s;
    ls_buf b = {0};
    ls_writer w;
    char *k = NULL;
    int rc = ls_storage_check_key(s, ctx, "put", key, 0);
    if (rc)
        return rc;
    ls_writer_buf(&w, &b);
    rc = ls_copy(ctx, r, &w, NULL);
    if (rc) {
        rc = ls_storage_err(s, ctx, rc, "put", key, NULL);
        goto cleanup;
    }
    pthread_mutex_lock(&m->mu);
    ssize_t i = find(m, key);
    if (i < 0) {
        if (m->n == m->cap) {
            size_t cap = m->cap ? m->cap * 2 : 16;
            mem_obj *v = realloc(m->v, cap * sizeof(*v));
            if (v) {
                m->v = v;
                m->cap = cap;
            }
        }
        k = m->n < m->cap ? strdup(key) : NULL;
        if (!k) {
            pthread_mutex_unlock(&m->mu);
            rc = ls_storage_err(s, ctx, LS_ENOMEM, "put", key, "out of memory");
            goto cleanup;
        }
        i = (ssize_t)m->n++;
        m->v[i].key = k;
        m->v[i].data = NULL;
    }
    free(m->v[i].data);
    m->v[i].data = b.p;
    m->v[i].n = b.n;
    m->v[i].mtime_ms = now_ms();
    b.p = NULL;
    pthread_mutex_unlock(&m->mu);

cleanup:
    ls_buf_free(&b);
    return rc;
}

static int mem_get(ls_storage *s, ls_ctx *ctx, const char *key, uint64_t off, int64_t len,
                   ls_writer *w)
{
    mem_store *m = (mem_store *)s;
    uint8_t *copy = NULL;
    size_t n = 0;
    ls_mem_src st;
    ls_reader r;
    int rc = ls_storage_check_key(s, ctx, "get", key, 0);
    if (rc)
        return rc;

    pthread_mutex_lock(&m->mu);
    ssize_t i = find(m, key);
    if (i >= 0) {
        size_t size = m->v[i].n;
        size_t start = off < size ? (size_t)off : size;
        n = len < 0 || (uint64_t)len >= size - start ? size - start : (size_t)len;
        copy = n ? malloc(n) : NULL;
        if (copy)
            memcpy(copy, m->v[i].data + start, n);
    }
    pthread_mutex_unlock(&m->mu);

    if (i < 0)
        return ls_storage_err(s, ctx, LS_ENOENT, "get", key, "no such object");
    if (n && !copy)
        return ls_storage_err(s, ctx, LS_ENOMEM, "get", key, "out of memory");
    ls_reader_mem(&r, &st, copy, n);
    rc = ls_copy(ctx, &r, w, NULL);
    if (rc)
        rc = ls_storage_err(s, ctx, rc, "get", key, NULL);
    free(copy);
    return rc;
}

static int mem_list(ls_storage *s, ls_ctx *ctx, const char *prefix, ls_obj_list *out)
{
    mem_store *m = (mem_store *)s;
    size_t plen = prefix ? strlen(prefix) : 0;
    int rc = ls_storage_check_key(s, ctx, "list", prefix, 1);
    if (rc)
        return rc;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n && !rc; i++) {
        if (strncmp(m->v[i].key, prefix, plen) == 0 &&
            ls_obj_list_add(out, m->v[i].key, m->v[i].n, m->v[i].mtime_ms))
            rc = ls_storage_err(s, ctx, LS_ENOMEM, "list", prefix, "out of memory");
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int mem_stat(ls_storage *s, ls_ctx *ctx, const char *key, ls_obj *out)
{
    mem_store *m = (mem_store *)s;
    int rc = ls_storage_check_key(s, ctx, "stat", key, 0);
    if (rc)
        return rc;
    pthread_mutex_lock(&m->mu);
    ssize_t i = find(m, key);
    if (i >= 0) {
        out->key = NULL;
        out->size = m->v[i].n;
        out->mtime_ms = m->v[i].mtime_ms;
    }
    pthread_mutex_unlock(&m->mu);
    if (i < 0)
        return ls_storage_err(s, ctx, LS_ENOENT, "stat", key, "no such object");
    return 0;
}

static int mem_del(ls_storage *s, ls_ctx *ctx, const char *const *keys, size_t n)
{
    mem_store *m = (mem_store *)s;
    for (size_t k = 0; k < n; k++) {
        int rc = ls_storage_check_key(s, ctx, "delete", keys[k], 0);
        if (rc)
            return rc;
        pthread_mutex_lock(&m->mu);
        ssize_t i = find(m, keys[k]);
        if (i >= 0) {
            free(m->v[i].key);
            free(m->v[i].data);
            m->v[i] = m->v[--m->n];
        }
        pthread_mutex_unlock(&m->mu);
    }
    return 0;
}

static void mem_close(ls_storage *s)
{
    mem_store *m = (mem_store *)s;
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].key);
        free(m->v[i].data);
    }
    free(m->v);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

int ls_storage_mem_open(ls_ctx *ctx, const char *name, ls_storage **out)
{
    mem_store *m = calloc(1, sizeof(*m));
    *out = NULL;
    if (!m)
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    pthread_mutex_init(&m->mu, NULL);
    ls_storage_init(&m->base, "mem", name, "memory");
    m->base.put = mem_put;
    m->base.get = mem_get;
    m->base.list = mem_list;
    m->base.stat = mem_stat;
    m->base.del = mem_del;
    m->base.close = mem_close;
    *out = &m->base;
    return 0;
}

int ls_storage_mem_set_mtime(ls_storage *s, const char *key, int64_t mtime_ms)
{
    mem_store *m = (mem_store *)s;
    pthread_mutex_lock(&m->mu);
    ssize_t i = find(m, key);
    if (i >= 0)
        m->v[i].mtime_ms = mtime_ms;
    pthread_mutex_unlock(&m->mu);
    return i >= 0 ? 0 : LS_ENOENT;
}
