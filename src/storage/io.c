/*
 * io.c - the generic byte pipes of io.h: readers over a file range and a
 * memory buffer, writers to a file descriptor and a growing buffer, and the
 * copy loop that joins a reader to a writer. Nothing here knows a format
 * (stream.c adds LZ4 on top) or a backend (they use these to move bytes).
 */
#define _GNU_SOURCE
#include "io.h"
#include "fsutil.h"

#include <stdlib.h>
#include <string.h>

static int64_t fd_range_read(void *ud, uint8_t *buf, size_t n)
{
    ls_fd_range *st = ud;
    size_t got = 0;
    if (st->off >= st->end)
        return 0;
    if ((uint64_t)n > st->end - st->off)
        n = (size_t)(st->end - st->off);
    int rc = ls_pread_full(st->ctx, st->fd, buf, n, (off_t)st->off, &got, st->what);
    if (rc)
        return rc;
    if (got == 0)
        return ls_err(st->ctx, LS_EIO, "read %s: unexpected end of file at offset %llu", st->what,
                      (unsigned long long)st->off);
    st->off += got;
    return (int64_t)got;
}

void ls_reader_fd_range(ls_reader *r, ls_fd_range *st, ls_ctx *ctx, int fd, uint64_t off,
                        uint64_t end)
{
    st->fd = fd;
    st->off = off;
    st->end = end < off ? off : end;
    st->ctx = ctx;
    st->what = "file";
    r->read = fd_range_read;
    r->ud = st;
    r->size = (int64_t)(st->end - off);
}

static int fd_write(void *ud, const uint8_t *buf, size_t n)
{
    return ls_write_all(NULL, *(int *)ud, buf, n, -1, "file");
}

void ls_writer_fd(ls_writer *w, int *fd)
{
    w->write = fd_write;
    w->ud = fd;
}

static int64_t mem_read(void *ud, uint8_t *buf, size_t n)
{
    ls_mem_src *st = ud;
    size_t k = st->n - st->pos;
    if (k > n)
        k = n;
    if (k > 0)
        memcpy(buf, st->p + st->pos, k);
    st->pos += k;
    return (int64_t)k;
}

void ls_reader_mem(ls_reader *r, ls_mem_src *st, const void *p, size_t n)
{
    st->p = p;
    st->n = p ? n : 0;
    st->pos = 0;
    r->read = mem_read;
    r->ud = st;
    r->size = (int64_t)st->n;
}

int ls_buf_add(ls_buf *b, const void *p, size_t n)
{
    if (b->cap - b->n <= n) { /* room for the bytes and the NUL */
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->n <= n) {
            if (cap > SIZE_MAX / 2)
                return LS_ENOMEM;
            cap *= 2;
        }
        uint8_t *q = realloc(b->p, cap);
        if (!q)
            return LS_ENOMEM;
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 0;
}

/* ls_writer_buf's write: nothing to do for no bytes (an empty object stays NULL). */
static int buf_write(void *ud, const uint8_t *p, size_t n)
{
    return n ? ls_buf_add(ud, p, n) : 0;
}

void ls_writer_buf(ls_writer *w, ls_buf *b)
{
    w->write = buf_write;
    w->ud = b;
}

void ls_buf_free(ls_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* Keep the message a failing callback recorded, or record a generic one. */
static int side_failed(ls_ctx *ctx, int code, const char *side)
{
    if (ctx->code == code)
        return code;
    return ls_err(ctx, code, "%s failed (%s)", side, ls_strerror(code));
}

int ls_copy(ls_ctx *ctx, ls_reader *r, ls_writer *w, uint64_t *copied)
{
    uint8_t *buf = NULL;
    uint64_t total = 0;
    int rc = 0;

    ls_err_clear(ctx);
    buf = malloc(LS_IO_CHUNK);
    if (!buf) {
        rc = ls_err(ctx, LS_ENOMEM, "out of memory");
        goto cleanup;
    }
    for (;;) {
        if (ls_cancelled(ctx)) {
            rc = ls_err(ctx, LS_ECANCEL, "cancelled");
            goto cleanup;
        }
        int64_t got = r->read(r->ud, buf, LS_IO_CHUNK);
        if (got < 0) {
            rc = side_failed(ctx, (int)got, "read");
            goto cleanup;
        }
        if (got > LS_IO_CHUNK) {
            rc = ls_err(ctx, LS_ERROR, "read returned more than asked");
            goto cleanup;
        }
        if (got == 0)
            break;
        rc = w->write(w->ud, buf, (size_t)got);
        if (rc) {
            rc = side_failed(ctx, rc, "write");
            goto cleanup;
        }
        total += (uint64_t)got;
    }

cleanup:
    free(buf);
    if (copied)
        *copied = total;
    return rc;
}
