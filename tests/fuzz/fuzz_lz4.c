/*
 * fuzz_lz4.c - the LZ4 readers of replica objects on any bytes: the input
 * as a stored WAL segment or snapshot, decompressed by ls_lz4_decompress_buf
 * and by the streaming ls_lz4_writer fed in odd chunk sizes (the two must
 * agree); then the input as plaintext, compressed by ls_lz4_reader read in
 * odd chunk sizes and decompressed back, which must give the input again.
 * (fuzz_store.h: the odd-chunk helpers.)
 *
 * Seeds (corpus/fuzz_lz4): real *.snapshot.lz4 and *.wal.lz4 objects, lt-*
 * written by Litestream 0.3.13 and ls-* by litesafe, each replicating a
 * page_size 512 database (`litestream replicate DB file:///DIR` and
 * `litesafe replicate DB file:///DIR` for a few seconds while sqlite3 runs
 * a few INSERTs; tests/fuzz/seeds_store.sh remakes them), plus regress-*
 * inputs of findings.
 */
#include "fuzz_store.h"
#include "stream.h"

#include <litesafe.h>

/* A writer collecting into an ls_buf that checks the 64 KiB bound of stream.h. */
static int collect_bounded(void *ud, const uint8_t *buf, size_t n)
{
    if (n > LS_IO_CHUNK)
        abort();
    return fuzz_collect(ud, buf, n);
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
    ls_writer sink = {collect_bounded, &got}, in;
    ls_lz4_writer *z = NULL;
    int rc2 = ls_lz4_writer_new(ctx, &sink, &z, &in);
    if (rc2 == 0) {
        rc2 = fuzz_feed(&in, data, size);
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
    ls_mem_src ms;
    ls_reader plain, comp;
    ls_reader_mem(&plain, &ms, data, size);
    ls_lz4_reader *c = NULL;
    ls_buf frame = {0};
    if (ls_lz4_reader_new(ctx, &plain, &c, &comp) == 0) {
        if (fuzz_drain(&comp, &frame) != 0)
            abort();
        out = NULL;
        outn = 0;
        if (ls_lz4_decompress_buf(ctx, frame.p, frame.n, &out, &outn) != 0 || outn != size ||
            (size && memcmp(out, data, size) != 0))
            abort();
        free(out);
    }
    ls_lz4_reader_free(c);
    ls_buf_free(&frame);
    ls_err_clear(ctx);
    return 0;
}
