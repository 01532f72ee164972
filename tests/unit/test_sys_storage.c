/*
 * test_sys_storage.c - an embedder's own backend, written against the public
 * headers alone (<litesafe.h> and <litesafe/sys/storage.h>; this target is
 * built without the library's internal include directories, and with
 * -Wpedantic): a tiny in-memory store that keeps the contract, driven
 * through the vtable (put, get with ranges, list by prefix, stat, del,
 * close), and the helpers a backend author uses (ls_storage_init,
 * ls_storage_err, ls_storage_check_key, ls_obj_list_add/free).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <litesafe.h>
#include <litesafe/sys/storage.h>

#include <stdlib.h>
#include <string.h>

/* ---- the backend: at most 16 objects in memory ---- */

#define TINY_MAX 16

typedef struct tiny_obj {
    char *key;          /* NULL: free slot */
    uint8_t *data;      /* malloc'd bytes (NULL when empty) */
    size_t n;           /* their count */
    int64_t mtime_ms;   /* a counter standing in for the time */
} tiny_obj;

typedef struct tiny_store {
    ls_storage base;    /* first, as the header asks */
    tiny_obj objs[TINY_MAX];
    int64_t clock;      /* next mtime */
    int *closed;        /* set to 1 by close (the test looks) */
} tiny_store;

static tiny_obj *tiny_find(tiny_store *t, const char *key)
{
    for (int i = 0; i < TINY_MAX; i++)
        if (t->objs[i].key && strcmp(t->objs[i].key, key) == 0)
            return &t->objs[i];
    return NULL;
}

/* Read the whole source first: nothing is stored unless it all arrived. */
static int tiny_put(ls_storage *s, ls_ctx *ctx, const char *key, ls_reader *r)
{
    tiny_store *t = (tiny_store *)s;
    uint8_t *buf = NULL, chunk[7]; /* a small chunk: several reads per object */
    size_t n = 0;
    int rc = ls_storage_check_key(s, ctx, "put", key, 0);
    if (rc)
        return rc;
    for (;;) {
        int64_t got = r->read(r->ud, chunk, sizeof(chunk));
        if (got < 0) {
            free(buf);
            return ls_storage_err(s, ctx, (int)got, "put", key, "source failed");
        }
        if (got == 0)
            break;
        uint8_t *nb = realloc(buf, n + (size_t)got);
        if (!nb) {
            free(buf);
            return ls_storage_err(s, ctx, LS_ENOMEM, "put", key, NULL);
        }
        buf = nb;
        memcpy(buf + n, chunk, (size_t)got);
        n += (size_t)got;
    }
    tiny_obj *o = tiny_find(t, key);
    for (int i = 0; !o && i < TINY_MAX; i++)
        if (!t->objs[i].key && (t->objs[i].key = strdup(key)) != NULL)
            o = &t->objs[i];
    if (!o) {
        free(buf);
        return ls_storage_err(s, ctx, LS_ENOSPC, "put", key, "store full");
    }
    free(o->data);
    o->data = buf;
    o->n = n;
    o->mtime_ms = t->clock++;
    return 0;
}

static int tiny_get(ls_storage *s, ls_ctx *ctx, const char *key, uint64_t off, int64_t len,
                    ls_writer *w)
{
    int rc = ls_storage_check_key(s, ctx, "get", key, 0);
    if (rc)
        return rc;
    tiny_obj *o = tiny_find((tiny_store *)s, key);
    if (!o)
        return ls_storage_err(s, ctx, LS_ENOENT, "get", key, "no such object");
    if (off >= o->n)
        return 0;
    size_t k = o->n - (size_t)off;
    if (len >= 0 && (uint64_t)len < k)
        k = (size_t)len;
    return k ? w->write(w->ud, o->data + off, k) : 0;
}

static int tiny_list(ls_storage *s, ls_ctx *ctx, const char *prefix, ls_obj_list *out)
{
    tiny_store *t = (tiny_store *)s;
    int rc = ls_storage_check_key(s, ctx, "list", prefix, 1);
    for (int i = 0; !rc && i < TINY_MAX; i++) {
        tiny_obj *o = &t->objs[i];
        if (o->key && strncmp(o->key, prefix, strlen(prefix)) == 0 &&
            (rc = ls_obj_list_add(out, o->key, o->n, o->mtime_ms)) != 0)
            rc = ls_storage_err(s, ctx, rc, "list", prefix, NULL);
    }
    return rc;
}

static int tiny_stat(ls_storage *s, ls_ctx *ctx, const char *key, ls_obj *out)
{
    int rc = ls_storage_check_key(s, ctx, "stat", key, 0);
    if (rc)
        return rc;
    tiny_obj *o = tiny_find((tiny_store *)s, key);
    if (!o)
        return ls_storage_err(s, ctx, LS_ENOENT, "stat", key, NULL);
    out->key = NULL;
    out->size = o->n;
    out->mtime_ms = o->mtime_ms;
    return 0;
}

static int tiny_del(ls_storage *s, ls_ctx *ctx, const char *const *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = ls_storage_check_key(s, ctx, "delete", keys[i], 0);
        if (rc)
            return rc;
        tiny_obj *o = tiny_find((tiny_store *)s, keys[i]);
        if (o) {
            free(o->key);
            free(o->data);
            memset(o, 0, sizeof(*o));
        }
    }
    return 0;
}

static void tiny_close(ls_storage *s)
{
    tiny_store *t = (tiny_store *)s;
    for (int i = 0; i < TINY_MAX; i++) {
        free(t->objs[i].key);
        free(t->objs[i].data);
    }
    *t->closed = 1;
    free(t);
}

static ls_storage *tiny_open(const char *name, int *closed)
{
    tiny_store *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    ls_storage_init(&t->base, "tiny", name, "memory of the test");
    t->base.put = tiny_put;
    t->base.get = tiny_get;
    t->base.list = tiny_list;
    t->base.stat = tiny_stat;
    t->base.del = tiny_del;
    t->base.close = tiny_close;
    t->closed = closed;
    *closed = 0;
    return &t->base;
}

/* ---- readers and writers over memory, as an embedder writes them ---- */

typedef struct src {
    const char *p;      /* bytes */
    size_t n, pos;      /* count, next */
    int fail_at;        /* fail once pos reaches this (-1: never) */
} src;

static int64_t src_read(void *ud, uint8_t *buf, size_t n)
{
    src *s = ud;
    if (s->fail_at >= 0 && s->pos >= (size_t)s->fail_at)
        return LS_EIO;
    size_t k = s->n - s->pos < n ? s->n - s->pos : n;
    memcpy(buf, s->p + s->pos, k);
    s->pos += k;
    return (int64_t)k;
}

typedef struct sink {
    char buf[256];      /* what arrived, NUL-terminated */
    size_t n;           /* its length */
} sink;

static int sink_write(void *ud, const uint8_t *buf, size_t n)
{
    sink *k = ud;
    if (k->n + n >= sizeof(k->buf))
        return LS_ENOSPC;
    memcpy(k->buf + k->n, buf, n);
    k->n += n;
    k->buf[k->n] = '\0';
    return 0;
}

static int put_str(ls_storage *s, ls_ctx *ctx, const char *key, const char *v, int fail_at)
{
    src st = {v, strlen(v), 0, fail_at};
    ls_reader r = {src_read, &st, (int64_t)st.n};
    return s->put(s, ctx, key, &r);
}

static int get_str(ls_storage *s, ls_ctx *ctx, const char *key, uint64_t off, int64_t len,
                   sink *k)
{
    memset(k, 0, sizeof(*k));
    ls_writer w = {sink_write, k};
    return s->get(s, ctx, key, off, len, &w);
}

/* ---- the tests ---- */

static void test_vtable(void **state)
{
    (void)state;
    ls_ctx *ctx = NULL;
    int closed = 0;
    sink k;
    ls_obj o;
    ls_obj_list l = {0};
    assert_int_equal(ls_ctx_new(&ctx), 0);
    ls_storage *s = tiny_open("mine", &closed);
    assert_int_equal(s->version, LS_STORAGE_VERSION);
    assert_string_equal(s->type, "tiny");
    assert_string_equal(s->name, "mine");
    assert_string_equal(s->desc, "memory of the test");

    /* put, get whole and in ranges */
    assert_int_equal(put_str(s, ctx, "generations/a/wal/1", "hello, world", -1), 0);
    assert_int_equal(get_str(s, ctx, "generations/a/wal/1", 0, -1, &k), 0);
    assert_string_equal(k.buf, "hello, world");
    assert_int_equal(get_str(s, ctx, "generations/a/wal/1", 7, 3, &k), 0);
    assert_string_equal(k.buf, "wor");
    assert_int_equal(get_str(s, ctx, "generations/a/wal/1", 7, 100, &k), 0);
    assert_string_equal(k.buf, "world");
    assert_int_equal(get_str(s, ctx, "generations/a/wal/1", 50, -1, &k), 0);
    assert_int_equal(k.n, 0);

    /* a failing source stores nothing and leaves an old object whole */
    assert_int_equal(put_str(s, ctx, "generations/a/wal/1", "a longer replacement", 10), LS_EIO);
    assert_string_equal(ls_errmsg(ctx),
                        "replica mine (memory of the test): put generations/a/wal/1: source failed");
    assert_int_equal(get_str(s, ctx, "generations/a/wal/1", 0, -1, &k), 0);
    assert_string_equal(k.buf, "hello, world");
    assert_int_equal(put_str(s, ctx, "generations/a/wal/1", "replaced", -1), 0);

    /* list: a plain string prefix */
    assert_int_equal(put_str(s, ctx, "generations/ab/x", "12345", -1), 0);
    assert_int_equal(put_str(s, ctx, "other", "", -1), 0);
    assert_int_equal(s->list(s, ctx, "generations/a", &l), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(s->list(s, ctx, "", &l), 0); /* appends */
    assert_int_equal(l.n, 5);
    ls_obj_list_free(&l);
    assert_int_equal(l.n, 0);
    assert_null(l.v);
    assert_int_equal(s->list(s, ctx, "nothing/", &l), 0);
    assert_int_equal(l.n, 0);
    ls_obj_list_free(&l);

    /* stat, del, and the one "not found" code */
    assert_int_equal(s->stat(s, ctx, "generations/ab/x", &o), 0);
    assert_int_equal(o.size, 5);
    assert_null(o.key);
    const char *keys[] = {"generations/ab/x", "never/was"};
    assert_int_equal(s->del(s, ctx, keys, 2), 0);
    assert_int_equal(s->stat(s, ctx, "generations/ab/x", &o), LS_ENOENT);
    assert_string_equal(ls_errmsg(ctx), "replica mine (memory of the test): stat generations/ab/x: "
                                        "failed (ENOENT)");
    assert_int_equal(get_str(s, ctx, "never/was", 0, -1, &k), LS_ENOENT);

    /* keys the contract refuses never reach the store */
    assert_int_equal(put_str(s, ctx, "../escape", "x", -1), LS_EUSAGE);
    assert_int_equal(s->list(s, ctx, "/abs", &l), LS_EUSAGE);
    ls_obj_list_free(&l);

    s->close(s);
    assert_int_equal(closed, 1);
    ls_ctx_free(ctx);
}

static void test_check_key(void **state)
{
    (void)state;
    ls_ctx *ctx = NULL;
    int closed;
    char longkey[1100];
    assert_int_equal(ls_ctx_new(&ctx), 0);
    ls_storage *s = tiny_open(NULL, &closed);
    assert_string_equal(s->name, "tiny"); /* the type when no name is given */

    static const char *const good[] = {"a", "a/b", "generations/0123/wal/00_00.wal.lz4", "a.b/c-d"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (ls_storage_check_key(s, ctx, "put", good[i], 0) != 0)
            fail_msg("refused \"%s\": %s", good[i], ls_errmsg(ctx));
    static const char *const bad[] = {"",     "/a",   "a/",    "a//b",  ".a",
                                      "a/.b", "a/..", "./a",   "a\\b",  "a\nb"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ls_storage_check_key(s, ctx, "put", bad[i], 0) != LS_EUSAGE)
            fail_msg("accepted \"%s\"", bad[i]);
    memset(longkey, 'k', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    assert_int_equal(ls_storage_check_key(s, ctx, "put", longkey, 0), LS_EUSAGE);
    assert_int_equal(ls_storage_check_key(s, ctx, "put", NULL, 0), LS_EUSAGE);
    /* a prefix may be empty or end with '/' */
    assert_int_equal(ls_storage_check_key(s, ctx, "list", "", 1), 0);
    assert_int_equal(ls_storage_check_key(s, ctx, "list", "generations/", 1), 0);
    assert_int_equal(ls_storage_check_key(s, ctx, "list", "generations//", 1), LS_EUSAGE);
    assert_int_equal(ls_storage_check_key(s, ctx, "put", "a/.tmp", 0), LS_EUSAGE);
    assert_string_equal(ls_errmsg(ctx), "replica tiny (memory of the test): put a/.tmp: "
                                        "invalid key: path component starts with '.'");

    /* ls_storage_err: the format, a lower layer's message kept, NULL ctx */
    assert_int_equal(ls_storage_err(s, ctx, LS_EIO, "get", "k", "disk said %d", 5), LS_EIO);
    assert_string_equal(ls_errmsg(ctx), "replica tiny (memory of the test): get k: disk said 5");
    assert_int_equal(ls_errcode(ctx), LS_EIO);
    assert_int_equal(ls_storage_err(s, ctx, LS_EIO, "put", "k2", NULL), LS_EIO);
    assert_string_equal(ls_errmsg(ctx), "replica tiny (memory of the test): put k2: "
                                        "replica tiny (memory of the test): get k: disk said 5");
    assert_int_equal(ls_storage_err(s, ctx, LS_EPERM, "list", "", NULL), LS_EPERM);
    assert_string_equal(ls_errmsg(ctx), "replica tiny (memory of the test): list: failed "
                                        "(EPERM)");
    assert_int_equal(ls_storage_err(s, NULL, LS_ENET, "del", "k", "x"), LS_ENET);

    /* ls_storage_init: long names are cut, NULL desc is "" */
    char big[200];
    memset(big, 'n', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ls_storage_init(s, "tiny", big, NULL);
    assert_int_equal(strlen(s->name), sizeof(s->name) - 1);
    assert_string_equal(s->desc, "");
    s->close(s);
    ls_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vtable),
        cmocka_unit_test(test_check_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
