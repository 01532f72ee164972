/*
 * storage.c - the backend-independent part of storage.h and
 * litesafe/sys/storage.h: choosing a backend by its type (a type-to-factory
 * table, as libgit2's transports), object lists, key rules, the common
 * message format, and the buffer conveniences built on put/get.
 *
 * Invariant: every backend validates keys with ls_storage_check_key() and
 * words failures with ls_storage_err(), so all of them accept the same keys
 * and fail with the same shape of message.
 */
#include "storage.h"
#include "io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Opens one backend type; NULL: known type, not built yet. */
typedef int (*storage_factory)(ls_ctx *ctx, const ls_storage_opts *opts, ls_storage **out);

static const struct {
    const char *type;     /* config "type" (and URL scheme) */
    storage_factory open; /* constructor, NULL if not supported yet */
} factories[] = {
    {"file", ls_storage_file_open}, {"s3", ls_storage_s3_open},     {"gcs", ls_storage_s3_open},
    {"abs", ls_storage_abs_open},   {"sftp", ls_storage_sftp_open},
};

/*
 * Pick the backend by opts->type ("file" when unset). Returns the backend's
 * result, or LS_EUSAGE for a type that is unknown or not supported yet.
 */
int ls_storage_open(ls_ctx *ctx, const ls_storage_opts *opts, ls_storage **out)
{
    const char *type = opts->type && *opts->type ? opts->type : "file";

    *out = NULL;
    const char *name = opts->name && *opts->name ? opts->name : type;
    for (size_t i = 0; i < sizeof(factories) / sizeof(factories[0]); i++) {
        if (strcasecmp(type, factories[i].type) != 0)
            continue;
        if (!factories[i].open)
            return ls_err(ctx, LS_EUSAGE, "replica %s: %s replicas are not supported yet", name,
                          factories[i].type);
        return factories[i].open(ctx, opts, out);
    }
    return ls_err(ctx, LS_EUSAGE,
                  "replica %s: unknown replica type \"%s\" (expected file, s3, gcs, abs or sftp)",
                  name, type);
}

void ls_storage_close(ls_storage *s)
{
    if (s && s->close)
        s->close(s);
}

void ls_storage_init(ls_storage *s, const char *type, const char *name, const char *desc)
{
    s->version = LS_STORAGE_VERSION;
    s->caps = 0;
    s->type = type;
    ls_strlcpy(s->name, name && *name ? name : type, sizeof(s->name));
    ls_strlcpy(s->desc, desc ? desc : "", sizeof(s->desc));
}

int ls_storage_err(ls_storage *s, ls_ctx *ctx, int code, const char *op, const char *key,
                   const char *fmt, ...)
{
    char why[sizeof(((ls_ctx *)0)->msg)];
    if (!ctx)
        return code;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
    } else if (ctx->code == code && ctx->msg[0]) {
        ls_strlcpy(why, ctx->msg, sizeof(why));
    } else {
        snprintf(why, sizeof(why), "failed (%s)", ls_strerror(code));
    }
    int has_key = key && *key;
    return ls_err(ctx, code, "replica %s (%s): %s%s%s: %s", s->name, s->desc, op,
                  has_key ? " " : "", has_key ? key : "", why);
}

/*
 * Check the key rules of storage.h. Walks the components: each must be
 * non-empty and must not start with '.' (which also rules out "." and "..").
 * A prefix may be "" and may end with '/'.
 */
int ls_storage_check_key(ls_storage *s, ls_ctx *ctx, const char *op, const char *key, int is_prefix)
{
    const char *why = NULL;
    size_t n = key ? strlen(key) : 0;

    if (!key)
        return ls_storage_err(s, ctx, LS_EUSAGE, op, NULL, "no key");
    if (n == 0) {
        if (!is_prefix)
            why = "empty key";
    } else if (n > 1024) {
        why = "key longer than 1024 bytes";
    } else if (key[0] == '/') {
        why = "key starts with '/'";
    } else if (key[n - 1] == '/' && !is_prefix) {
        why = "key ends with '/'";
    } else {
        const char *c = key;
        while (*c && !why) {
            if (*c == '/')
                why = "empty path component";
            else if (*c == '.')
                why = "path component starts with '.'";
            const char *slash = strchr(c, '/');
            c = slash ? slash + 1 : c + strlen(c);
        }
        for (const char *q = key; *q && !why; q++) {
            if ((unsigned char)*q < 0x20 || *q == 0x7f || *q == '\\')
                why = "control character or backslash";
        }
    }
    if (why)
        return ls_storage_err(s, ctx, LS_EUSAGE, op, key, "invalid key: %s", why);
    return 0;
}

void ls_obj_list_free(ls_obj_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].key);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

int ls_obj_list_add(ls_obj_list *l, const char *key, uint64_t size, int64_t mtime_ms)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        ls_obj *v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return LS_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    char *k = strdup(key);
    if (!k)
        return LS_ENOMEM;
    l->v[l->n].key = k;
    l->v[l->n].size = size;
    l->v[l->n].mtime_ms = mtime_ms;
    l->n++;
    return 0;
}

static int obj_cmp(const void *a, const void *b)
{
    return strcmp(((const ls_obj *)a)->key, ((const ls_obj *)b)->key);
}

void ls_obj_list_sort(ls_obj_list *l)
{
    if (l->n > 1)
        qsort(l->v, l->n, sizeof(l->v[0]), obj_cmp);
}

int ls_storage_put_buf(ls_storage *s, ls_ctx *ctx, const char *key, const void *buf, size_t n)
{
    ls_mem_src st;
    ls_reader r;
    ls_reader_mem(&r, &st, buf, n);
    return s->put(s, ctx, key, &r);
}

int ls_storage_get_buf(ls_storage *s, ls_ctx *ctx, const char *key, uint8_t **out, size_t *n)
{
    ls_buf b = {0};
    ls_writer w;
    ls_writer_buf(&w, &b);
    int rc = s->get(s, ctx, key, 0, -1, &w);
    if (rc) {
        ls_buf_free(&b);
        *out = NULL;
        *n = 0;
        return rc;
    }
    *out = b.p;
    *n = b.n;
    return 0;
}
