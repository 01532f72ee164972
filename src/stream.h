/*
 * stream.h - the byte pipelines between local data and replica objects:
 * LZ4 frame compression on the way out, decompression on the way in, with
 * bounded memory (64 KiB blocks on write; any block size Litestream writes
 * on read). Frames written here: independent blocks, content checksum, no
 * block checksum (Litestream 0.3's reader rejects block checksums).
 */
#ifndef LS_STREAM_H
#define LS_STREAM_H

#include "storage.h"

typedef struct ls_lz4_reader ls_lz4_reader;
/*
 * A reader that yields the LZ4 frame of everything `src` yields. The result's
 * size is -1 (unknown). Free with ls_lz4_reader_free after use.
 */
int ls_lz4_reader_new(ls_ctx *ctx, ls_reader *src, ls_lz4_reader **out, ls_reader *as_reader);
void ls_lz4_reader_free(ls_lz4_reader *z);

typedef struct ls_lz4_writer ls_lz4_writer;
/*
 * A writer that takes an LZ4 frame (possibly several concatenated) and
 * passes the decompressed bytes to `dst`. ls_lz4_writer_finish() fails with
 * LS_ECORRUPT if the input ended inside a frame or a checksum failed.
 */
int ls_lz4_writer_new(ls_ctx *ctx, ls_writer *dst, ls_lz4_writer **out, ls_writer *as_writer);
int ls_lz4_writer_finish(ls_lz4_writer *z);
void ls_lz4_writer_free(ls_lz4_writer *z);

/* One-shot helpers for small objects. *out is malloc'd. */
int ls_lz4_compress_buf(ls_ctx *ctx, const void *in, size_t n, uint8_t **out, size_t *outn);
int ls_lz4_decompress_buf(ls_ctx *ctx, const void *in, size_t n, uint8_t **out, size_t *outn);

/* Readers over local data. */
typedef struct ls_fd_range {
    int fd;             /* file to read */
    uint64_t off;       /* next offset */
    uint64_t end;       /* stop here */
    ls_ctx *ctx;        /* for error messages */
} ls_fd_range;
/* A reader over bytes [off, end) of an open file. */
void ls_reader_fd_range(ls_reader *r, ls_fd_range *st, ls_ctx *ctx, int fd, uint64_t off,
                        uint64_t end);
/* A writer appending to an open file descriptor. */
void ls_writer_fd(ls_writer *w, int *fd);

#endif
