/*
 * io.h - generic byte pipes: readers and writers over local data (a file
 * range, a file descriptor, memory) and ls_copy, which joins any reader to
 * any writer in bounded memory. The ls_reader / ls_writer types are the
 * backend interface's (litesafe/sys/storage.h); backends, the LZ4 streams
 * (stream.h) and core all move bytes through these.
 */
#ifndef LS_IO_H
#define LS_IO_H

#include "storage.h"

/* Bytes per step of ls_copy (and of the LZ4 streams built on these pipes). */
#define LS_IO_CHUNK (64 * 1024)

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
/*
 * Append n bytes of p to b, keeping a NUL after the bytes (so a buffer of
 * text is a C string; b->p is allocated even when n is 0). Returns 0 or
 * LS_ENOMEM (no message).
 */
int ls_buf_add(ls_buf *b, const void *p, size_t n);
/* A writer appending to b (fails only with LS_ENOMEM; no bytes, no allocation). */
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
