/*
 * stream.c - LZ4 between local data and replica objects: frame compression
 * as a reader, decompression as a writer (the plain readers, writers and the
 * copy loop they plug into are io.c's).
 *
 * LZ4 frame format (lz4_Frame_format.md), as far as it matters here:
 *   magic 04 22 4D 18 | FLG | BD | [content size, 8] | [dict id, 4] | HC
 *   blocks: 4-byte little-endian size (bit 31: stored uncompressed), data,
 *           [4-byte block checksum]; a zero size ends the blocks
 *   [4-byte XXH32 of the content]
 *   FLG bits: 7-6 version (01), 5 block independence, 4 block checksum,
 *             3 content size, 2 content checksum, 1 reserved, 0 dict id.
 *   BD bits 6-4: largest block (4: 64 KiB, 5: 256 KiB, 6: 1 MiB, 7: 4 MiB).
 *
 * Frames written here: FLG 0x44 (version 01, linked blocks, content
 * checksum) and BD 0x40 (64 KiB blocks). Litestream 0.3 writes BD 0x70
 * (4 MiB) but reads any block size, and linked blocks; 64 KiB keeps a
 * compressing stream near 200 KiB of memory instead of about 8 MiB, and
 * linking them lets each block refer to the 64 KiB before it, as inside
 * Litestream's large blocks: a WAL whose frames repeat one page compresses
 * to about half of what independent blocks give (71 against 131 KiB per
 * 1000 single-row commits; Litestream 55). The block checksum bit stays
 * clear: Litestream 0.3's reader rejects frames that set it. No content
 * size either (the source's length is not always known up front).
 *
 * Frames read here: anything liblz4 decodes. Memory on that side is bounded
 * by the frame's block size (liblz4 holds one block when our output chunk
 * is smaller: up to 4 MiB + 64 KiB for Litestream's frames) plus the 64 KiB
 * output chunk passed on to the next writer.
 *
 * Errors are sticky in both directions (as Redis's rio): once a stream has
 * failed, every later call returns the same code, and the message recorded
 * the first time stays on the context.
 */
#define _GNU_SOURCE
#include "stream.h"
#include "io.h"

/* LZ4F_getErrorCode() sits in the "static" section of lz4frame.h, but the
 * shared liblz4 exports it (1.8 and later). */
#define LZ4F_STATIC_LINKING_ONLY
#include <lz4frame.h>

#include <stdlib.h>
#include <string.h>

/* Bytes per step of every loop here: read, compress, decompress. */
#define CHUNK LS_IO_CHUNK

/* ---------------------------------------------------------------------- */
/* Compression: a reader yielding the LZ4 frame of its source              */

enum { STAGE_HEADER, STAGE_BLOCKS, STAGE_DONE };

struct ls_lz4_reader {
    ls_ctx *ctx;              /* messages */
    ls_reader *src;           /* uncompressed bytes */
    LZ4F_cctx *cctx;          /* liblz4 compression state (buffers up to one block) */
    LZ4F_preferences_t prefs; /* frame settings, see the top of the file */
    uint8_t *in;              /* CHUNK bytes read from src */
    uint8_t *out;             /* compressed bytes not handed out yet */
    size_t out_cap;           /* size of out: worst case of one step */
    size_t out_pos;           /* next byte of out to hand out */
    size_t out_len;           /* end of the valid bytes in out */
    int stage;                /* STAGE_*: what the next fill step does */
    int err;                  /* sticky failure, 0 if none */
};

/*
 * Refill z->out with the next step's compressed bytes: the frame header, the
 * blocks for one chunk of source (possibly nothing while liblz4 buffers a
 * partial block), or the end mark and content checksum at the source's end.
 * Returns 0 or a failure (the source's code, or LS_ERROR from liblz4).
 */
static int lz4r_fill(ls_lz4_reader *z)
{
    size_t r;
    z->out_pos = z->out_len = 0;
    if (z->stage == STAGE_HEADER) {
        r = LZ4F_compressBegin(z->cctx, z->out, z->out_cap, &z->prefs);
        z->stage = STAGE_BLOCKS;
    } else {
        int64_t got = z->src->read(z->src->ud, z->in, CHUNK);
        if (got < 0)
            return (int)got;
        if (got > CHUNK)
            return ls_err(z->ctx, LS_ERROR, "LZ4 compression: source returned more than asked");
        if (got == 0) {
            r = LZ4F_compressEnd(z->cctx, z->out, z->out_cap, NULL);
            z->stage = STAGE_DONE;
        } else {
            r = LZ4F_compressUpdate(z->cctx, z->out, z->out_cap, z->in, (size_t)got, NULL);
        }
    }
    if (LZ4F_isError(r))
        return ls_err(z->ctx, LS_ERROR, "LZ4 compression: %s", LZ4F_getErrorName(r));
    z->out_len = r;
    return 0;
}

static int64_t lz4r_read(void *ud, uint8_t *buf, size_t n)
{
    ls_lz4_reader *z = ud;
    while (z->out_pos == z->out_len) {
        if (z->err)
            return z->err;
        if (z->stage == STAGE_DONE)
            return 0;
        z->err = lz4r_fill(z);
    }
    size_t k = z->out_len - z->out_pos;
    if (k > n)
        k = n;
    memcpy(buf, z->out + z->out_pos, k);
    z->out_pos += k;
    return (int64_t)k;
}

int ls_lz4_reader_new(ls_ctx *ctx, ls_reader *src, ls_lz4_reader **out, ls_reader *as_reader)
{
    ls_lz4_reader *z = NULL;
    int rc = 0;

    *out = NULL;
    z = calloc(1, sizeof(*z));
    if (!z)
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    z->ctx = ctx;
    z->src = src;
    z->stage = STAGE_HEADER;
    z->prefs.frameInfo.blockSizeID = LZ4F_max64KB;
    z->prefs.frameInfo.blockMode = LZ4F_blockLinked;
    z->prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
    z->prefs.frameInfo.blockChecksumFlag = LZ4F_noBlockChecksum;
    z->prefs.frameInfo.frameType = LZ4F_frame;
    z->prefs.compressionLevel = 0; /* liblz4's fast default */
    z->out_cap = LZ4F_compressBound(CHUNK, &z->prefs);
    if (z->out_cap < LZ4F_HEADER_SIZE_MAX)
        z->out_cap = LZ4F_HEADER_SIZE_MAX;
    z->in = malloc(CHUNK);
    z->out = malloc(z->out_cap);
    if (!z->in || !z->out || LZ4F_isError(LZ4F_createCompressionContext(&z->cctx, LZ4F_VERSION))) {
        rc = ls_err(ctx, LS_ENOMEM, "out of memory");
        goto cleanup;
    }
    as_reader->read = lz4r_read;
    as_reader->ud = z;
    as_reader->size = -1;
    *out = z;
    z = NULL;

cleanup:
    ls_lz4_reader_free(z);
    return rc;
}

void ls_lz4_reader_free(ls_lz4_reader *z)
{
    if (!z)
        return;
    LZ4F_freeCompressionContext(z->cctx);
    free(z->in);
    free(z->out);
    free(z);
}

/* ---------------------------------------------------------------------- */
/* Decompression: a writer taking LZ4 frames                               */

struct ls_lz4_writer {
    ls_ctx *ctx;       /* messages */
    ls_writer *dst;    /* receives the decompressed bytes */
    LZ4F_dctx *dctx;   /* liblz4 decompression state */
    uint8_t *out;      /* CHUNK bytes of output on their way to dst */
    size_t hint;       /* liblz4's last return: 0 when between frames */
    uint64_t in_bytes; /* compressed bytes taken so far */
    int err;           /* sticky failure, 0 if none */
};

/* Record a decoding failure of liblz4 with a message saying what it means. */
static int lz4_decode_error(ls_ctx *ctx, size_t r)
{
    switch (LZ4F_getErrorCode(r)) {
    case LZ4F_ERROR_frameType_unknown:
        return ls_err(ctx, LS_ECORRUPT,
                      "not an LZ4 frame: bad magic number (not LZ4 data, or encrypted)");
    case LZ4F_ERROR_contentChecksum_invalid:
        return ls_err(ctx, LS_ECORRUPT, "LZ4 content checksum mismatch");
    case LZ4F_ERROR_blockChecksum_invalid:
        return ls_err(ctx, LS_ECORRUPT, "LZ4 block checksum mismatch");
    case LZ4F_ERROR_headerChecksum_invalid:
        return ls_err(ctx, LS_ECORRUPT, "LZ4 frame header checksum mismatch");
    case LZ4F_ERROR_decompressionFailed:
        return ls_err(ctx, LS_ECORRUPT, "corrupt LZ4 block");
    case LZ4F_ERROR_allocation_failed:
        return ls_err(ctx, LS_ENOMEM, "LZ4 decompression: out of memory");
    default:
        return ls_err(ctx, LS_ECORRUPT, "corrupt LZ4 frame (%s)", LZ4F_getErrorName(r));
    }
}

/*
 * Feed n compressed bytes to liblz4 and pass on what comes out, CHUNK bytes
 * at a time. The loop ends once all input is taken and an output chunk came
 * back short, which means liblz4 holds no more output for the input so far.
 */
static int lz4w_write(void *ud, const uint8_t *buf, size_t n)
{
    ls_lz4_writer *z = ud;
    size_t pos = 0;
    if (z->err)
        return z->err;
    if (n == 0)
        return 0;
    if (z->in_bytes == 0 && n >= 4 && memcmp(buf, "age-", 4) == 0)
        return z->err = ls_err(z->ctx, LS_ECORRUPT, "the object is age-encrypted: give the "
                               "replica's age identities (age: identity-files or identities "
                               "in the config file)");
    z->in_bytes += n;
    for (;;) {
        size_t outn = CHUNK, inn = n - pos;
        size_t r = LZ4F_decompress(z->dctx, z->out, &outn, buf + pos, &inn, NULL);
        if (LZ4F_isError(r))
            return z->err = lz4_decode_error(z->ctx, r);
        pos += inn;
        /* A call that took and gave nothing left the state (and its hint) as
         * it was; after a frame's end it would report the next header's size. */
        if (inn > 0 || outn > 0)
            z->hint = r;
        if (outn > 0) {
            int rc = z->dst->write(z->dst->ud, z->out, outn);
            if (rc)
                return z->err = rc;
        }
        if (pos == n && outn < CHUNK)
            return 0;
        if (inn == 0 && outn == 0)
            return z->err = ls_err(z->ctx, LS_ERROR, "LZ4 decompression made no progress");
    }
}

int ls_lz4_writer_new(ls_ctx *ctx, ls_writer *dst, ls_lz4_writer **out, ls_writer *as_writer)
{
    ls_lz4_writer *z = NULL;
    int rc = 0;

    *out = NULL;
    z = calloc(1, sizeof(*z));
    if (!z)
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    z->ctx = ctx;
    z->dst = dst;
    z->out = malloc(CHUNK);
    if (!z->out || LZ4F_isError(LZ4F_createDecompressionContext(&z->dctx, LZ4F_VERSION))) {
        rc = ls_err(ctx, LS_ENOMEM, "out of memory");
        goto cleanup;
    }
    as_writer->write = lz4w_write;
    as_writer->ud = z;
    *out = z;
    z = NULL;

cleanup:
    ls_lz4_writer_free(z);
    return rc;
}

int ls_lz4_writer_finish(ls_lz4_writer *z)
{
    if (z->err)
        return z->err;
    if (z->in_bytes == 0)
        return z->err = ls_err(z->ctx, LS_ECORRUPT, "empty LZ4 stream: no frame");
    if (z->hint != 0)
        return z->err =
                   ls_err(z->ctx, LS_ECORRUPT, "truncated LZ4 frame (input ended after %llu bytes)",
                          (unsigned long long)z->in_bytes);
    return 0;
}

void ls_lz4_writer_free(ls_lz4_writer *z)
{
    if (!z)
        return;
    LZ4F_freeDecompressionContext(z->dctx);
    free(z->out);
    free(z);
}

/* ---------------------------------------------------------------------- */
/* One-shot helpers                                                        */

int ls_lz4_compress_buf(ls_ctx *ctx, const void *in, size_t n, uint8_t **out, size_t *outn)
{
    ls_mem_src src_st;
    ls_reader src, zr;
    ls_lz4_reader *z = NULL;
    ls_buf b = {0};
    ls_writer w;
    int rc;

    *out = NULL;
    *outn = 0;
    ls_reader_mem(&src, &src_st, in, n);
    ls_writer_buf(&w, &b);
    rc = ls_lz4_reader_new(ctx, &src, &z, &zr);
    if (rc)
        goto cleanup;
    rc = ls_copy(ctx, &zr, &w, NULL);
    if (rc)
        goto cleanup;
    *out = b.p;
    *outn = b.n;
    b.p = NULL;

cleanup:
    ls_lz4_reader_free(z);
    ls_buf_free(&b);
    return rc;
}

int ls_lz4_decompress_buf(ls_ctx *ctx, const void *in, size_t n, uint8_t **out, size_t *outn)
{
    ls_lz4_writer *z = NULL;
    ls_buf b = {0};
    ls_writer w, zw;
    int rc;

    *out = NULL;
    *outn = 0;
    ls_writer_buf(&w, &b);
    rc = ls_lz4_writer_new(ctx, &w, &z, &zw);
    if (rc)
        goto cleanup;
    rc = zw.write(zw.ud, in, n);
    if (rc == LS_ENOMEM && ls_errcode(ctx) != rc)
        rc = ls_err(ctx, rc, "out of memory");
    if (!rc)
        rc = ls_lz4_writer_finish(z);
    if (rc)
        goto cleanup;
    *out = b.p;
    *outn = b.n;
    b.p = NULL;

cleanup:
    ls_lz4_writer_free(z);
    ls_buf_free(&b);
    return rc;
}
