/* In storage/ (not replication/): backends use its readers, writers and ls_copy. */
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

/*
 * Readers and writers over local data. The caller owns the state struct,
 * which must outlive the reader/writer; nothing here allocates except the
 * growing buffer of ls_writer_buf.
 */
typedef struct ls_fd_range {
    int fd;             /* file to read */
    uint64_t off;       /* next offset */
    uint64_t end;       /* stop here */
    ls_ctx *ctx;        /* for error messages */
    const char *what;   /* names the file in messages ("file" unless set) */
} ls_fd_range;
/*
 * A reader over bytes [off, end) of an open file (its size is end - off).
 * The file ending before `end` is LS_EIO ("unexpected end of file").
 */
void ls_reader_fd_range(ls_reader *r, ls_fd_range *st, ls_ctx *ctx, int fd, uint64_t off,
                        uint64_t end);
/* A writer appending to an open file descriptor (no message: the LS_E* of errno). */
void ls_writer_fd(ls_writer *w, int *fd);

/* A reader over a memory buffer (borrowed, not copied). */
typedef struct ls_mem_src {
    const uint8_t *p;   /* the bytes */
    size_t n;           /* their count */
    size_t pos;         /* next byte to hand out */
} ls_mem_src;
void ls_reader_mem(ls_reader *r, ls_mem_src *st, const void *p, size_t n);

/* A growing memory buffer; {0} is empty. */
typedef struct ls_buf {
    uint8_t *p;         /* malloc'd bytes, NULL while empty */
    size_t n;           /* bytes used */
    size_t cap;         /* bytes allocated */
} ls_buf;
/* A writer appending to b (fails only with LS_ENOMEM). */
void ls_writer_buf(ls_writer *w, ls_buf *b);
void ls_buf_free(ls_buf *b);

/*
 * Copy everything r yields into w through one 64 KiB buffer; *copied (may be
 * NULL) gets the byte count. Returns 0 or the first failure: the reader's or
 * writer's code (their message is kept; a generic one is recorded when they
 * left none), or LS_ECANCEL when the context is cancelled between chunks.
 * The context's last error is cleared first, so any message present at the
 * end belongs to this copy.
 */
int ls_copy(ls_ctx *ctx, ls_reader *r, ls_writer *w, uint64_t *copied);

#endif
