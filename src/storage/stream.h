/*
 * stream.h - the byte pipelines between local data and replica objects:
 * LZ4 frame compression on the way out, decompression on the way in, with
 * bounded memory (64 KiB blocks on write; any block size Litestream writes
 * on read). Frames written here: independent blocks, content checksum, no
 * block checksum (Litestream 0.3's reader rejects block checksums). The
 * streams are ls_reader / ls_writer pipes (io.h).
 */
#ifndef LS_STREAM_H
#define LS_STREAM_H

#include "storage.h"

typedef struct ls_lz4_reader ls_lz4_reader;
/*
 * A reader that yields the LZ4 frame of everything `src` yields (FLG 0x64,
 * BD 0x40: 64 KiB independent blocks, content checksum). The result's size
 * is -1 (unknown). A failure of `src` is passed on with its code; the first
 * failure is sticky. Free with ls_lz4_reader_free after use.
 */
int ls_lz4_reader_new(ls_ctx *ctx, ls_reader *src, ls_lz4_reader **out, ls_reader *as_reader);
void ls_lz4_reader_free(ls_lz4_reader *z);

typedef struct ls_lz4_writer ls_lz4_writer;
/*
 * A writer that takes an LZ4 frame (possibly several concatenated) in chunks
 * of any size and passes the decompressed bytes to `dst`, at most 64 KiB per
 * call. Any frame liblz4 reads is accepted: 64 KiB to 4 MiB blocks, linked
 * blocks, content size, block checksums, with or without content checksum.
 * A write fails with LS_ECORRUPT on bad magic (not LZ4 data, or encrypted),
 * a corrupt block or a checksum mismatch; the first failure is sticky.
 * ls_lz4_writer_finish() fails with LS_ECORRUPT if the input ended inside a
 * frame ("truncated LZ4 frame") or held no frame at all.
 */
int ls_lz4_writer_new(ls_ctx *ctx, ls_writer *dst, ls_lz4_writer **out, ls_writer *as_writer);
int ls_lz4_writer_finish(ls_lz4_writer *z);
void ls_lz4_writer_free(ls_lz4_writer *z);

/*
 * One-shot helpers for small objects. *out is malloc'd (NULL when *outn is 0
 * after decompression of an empty frame). Decompression accepts what
 * ls_lz4_writer accepts and fails the same way.
 */
int ls_lz4_compress_buf(ls_ctx *ctx, const void *in, size_t n, uint8_t **out, size_t *outn);
int ls_lz4_decompress_buf(ls_ctx *ctx, const void *in, size_t n, uint8_t **out, size_t *outn);

#endif
