/*
 * fuzz_store.h - helpers of the storage-side fuzz targets (fuzz_lz4,
 * fuzz_age, fuzz_layout, fuzz_s3_xml, fuzz_abs_xml, fuzz_url): the input as
 * a C string or a server's reply, the store a reply parser needs, and byte pipes driven in odd chunk sizes, as networks and
 * files hand bytes over. Header-only: each target is one executable.
 */
#ifndef LS_FUZZ_STORE_H
#define LS_FUZZ_STORE_H

#include "http.h"
#include "io.h"
#include "storage.h"

#include <stdlib.h>
#include <string.h>

/* Chunk sizes cycled by fuzz_feed, around the 64 KiB chunk of the pipes. */
static const size_t fuzz_chunks[] = {1, 7, 65535, 3, 4096, 13, 65537, 2};

/* A malloc'd NUL-terminated copy of the input (NULL on ENOMEM). */
static inline char *fuzz_text(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s) {
        memcpy(s, data, size);
        s[size] = '\0';
    }
    return s;
}

/*
 * The context and the store of a reply-parser target, made on the first
 * call (the store's open makes no request). 1 when both are ready.
 */
static inline int fuzz_store(ls_ctx **ctx, ls_storage **st, const ls_storage_opts *o)
{
    if (!*ctx && ls_ctx_new(ctx) != 0)
        return 0;
    return *st || ls_storage_open(*ctx, o, st) == 0;
}

/*
 * A 200 reply whose body is a copy of the input (NUL-terminated, as
 * ls_http_do leaves it; NULL on ENOMEM). The caller frees the body.
 */
static inline ls_http_resp fuzz_reply(const uint8_t *data, size_t size)
{
    ls_http_resp r = {.status = 200, .body = fuzz_text(data, size), .body_len = size};
    r.content_length = -1;
    return r;
}

/* The list prefixes the library asks backends for (the root, and a generation's). */
static const char *const fuzz_prefixes[] = {"", "generations/"};
#define FUZZ_N_PREFIXES (sizeof(fuzz_prefixes) / sizeof(fuzz_prefixes[0]))

/* An ls_writer callback appending to the ls_buf ud. */
static inline int fuzz_collect(void *ud, const uint8_t *buf, size_t n)
{
    return ls_buf_add(ud, buf, n);
}

/* Write [data, size) to w in fuzz_chunks sizes. Returns 0 or the first failure. */
static inline int fuzz_feed(ls_writer *w, const uint8_t *data, size_t size)
{
    int rc = 0;
    for (size_t off = 0, i = 0; rc == 0 && off < size; i++) {
        size_t n = fuzz_chunks[i % (sizeof(fuzz_chunks) / sizeof(fuzz_chunks[0]))];
        n = n < size - off ? n : size - off;
        rc = w->write(w->ud, data + off, n);
        off += n;
    }
    return rc;
}

/*
 * Read r to its end into out, asking for 1 to 4099 bytes at a time. Returns
 * 0, the reader's failure, or LS_ENOMEM.
 */
static inline int fuzz_drain(ls_reader *r, ls_buf *out)
{
    uint8_t buf[4099];
    int64_t n;
    for (size_t i = 0; (n = r->read(r->ud, buf, 1 + (i * 997) % sizeof(buf))) > 0; i++)
        if (ls_buf_add(out, buf, (size_t)n) != 0)
            return LS_ENOMEM;
    return (int)n;
}

#endif
