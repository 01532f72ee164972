/*
 * fuzz_lz4.c - the LZ4 readers of replica objects on any bytes: the input
 * as a stored WAL segment or snapshot, decompressed by ls_lz4_decompress_buf
 * and by the streaming ls_lz4_writer fed in odd chunk sizes (the two must
 * agree); then the input as plaintext, compressed by ls_lz4_reader read in
 * odd chunk sizes and decompressed back, which must give the input again.
 *
 * Seeds (corpus/fuzz_lz4): real *.snapshot.lz4 and *.wal.lz4 objects, lt-*
 * written by Litestream 0.3.13 and ls-* by litesafe, each replicating a
 * page_size 512 database (`litestream replicate DB file:///DIR` and
 * `litesafe replicate DB file:///DIR` for a few seconds while sqlite3 runs
 * a few INSERTs; tests/fuzz/seeds_store.sh remakes them), plus regress-*
 * inputs of findings.
 */
#include "io.h"
#include "stream.h"

#include <litesafe.h>
#include <stdlib.h>
#include <string.h>

/* Odd chunk sizes, cycled: 1, 7, 64 KiB - 1, 3, ... */
static const size_t chunks[] = {1, 7, 65535, 3, 4096, 13, 65537, 2};

/* A writer collecting into an ls_buf, at most LS_IO_CHUNK per call (checked). */
static int collect(void *ud, const uint8_t *buf, size_t n)
{
    if (n > LS_IO_CHUNK)
        abort();
    return ls_buf_add(ud, buf, n);
}

/* An ls_reader over memory that hands out at most chunks[i] bytes per read. */
typedef struct odd_src {
    const uint8_t *p;
    size_t n, pos, i;
} odd_src;

static int64_t odd_read(void *ud, uint8_t *buf, size_t n)
{
    odd_src *s = ud;
    size_t k = chunks[s->i++ % (sizeof(chunks) / sizeof(chunks[0]))];
    if (k > n)
        k = n;
    if (k > s->n - s->pos)
        k = s->n - s->pos;
    memcpy(buf, s->p + s->pos, k);
    s->pos += k;
    return (int64_t)k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ls_ctx *ctx;
    if (!ctx && ls_ctx_new(&ctx) != 0)
        return 0;

    /* 1. The input as a stored object: one-shot and streamed must agree. */
    uint8_t *out = NULL;
    size_t outn = 0;
    int rc1 = ls_lz4_decompress_buf(ctx, data, size, &out, &outn);
    ls_buf got = {0};
    ls_writer sink = {collect, &got}, in;
    ls_lz4_writer *z = NULL;
    int rc2 = ls_lz4_writer_new(ctx, &sink, &z, &in);
    if (rc2 == 0) {
        for (size_t off = 0, i = 0; rc2 == 0 && off < size; i++) {
            size_t k = chunks[i % (sizeof(chunks) / sizeof(chunks[0]))];
            if (k > size - off)
                k = size - off;
            rc2 = in.write(in.ud, data + off, k);
            off += k;
        }
        if (rc2 == 0)
            rc2 = ls_lz4_writer_finish(z);
        if ((rc1 == 0) != (rc2 == 0))
            abort();
        if (rc1 == 0 && (outn != got.n || (outn && memcmp(out, got.p, outn) != 0)))
            abort();
    }
    ls_lz4_writer_free(z);
    ls_buf_free(&got);
    free(out);
    ls_err_clear(ctx);

    /* 2. The input as plaintext: compressed in odd reads, it decompresses to itself. */
    odd_src src = {data, size, 0, 0};
    ls_reader plain = {odd_read, &src, (int64_t)size}, comp;
    ls_lz4_reader *c = NULL;
    ls_buf frame = {0};
    if (ls_lz4_reader_new(ctx, &plain, &c, &comp) == 0) {
        uint8_t buf[4099];
        int64_t n;
        size_t i = 0;
        while ((n = comp.read(comp.ud, buf, 1 + (i++ * 997) % sizeof(buf))) > 0)
            if (ls_buf_add(&frame, buf, (size_t)n) != 0)
                break;
        if (n < 0)
            abort();
        out = NULL;
        outn = 0;
        if (n == 0 && ls_lz4_decompress_buf(ctx, frame.p, frame.n, &out, &outn) != 0)
            abort();
        if (n == 0 && (outn != size || (size && memcmp(out, data, size) != 0)))
            abort();
        free(out);
    }
    ls_lz4_reader_free(c);
    ls_buf_free(&frame);
    ls_err_clear(ctx);
    return 0;
}
