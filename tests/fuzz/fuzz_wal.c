/*
 * fuzz_wal.c - the WAL reader on any bytes: the header decoder, the frame
 * check along the checksum chain, and the incremental scanner with its page
 * map, over a file holding the input (then the input grown by its own tail,
 * as a WAL grows between two scans).
 */
#define _GNU_SOURCE
#include "wal.h"

#include <litesafe.h>
#include <sys/mman.h>
#include <unistd.h>

static int file_of(const uint8_t *data, size_t size)
{
    int fd = memfd_create("wal", MFD_CLOEXEC);
    if (fd >= 0 && size > 0 && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return -1;
    }
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ls_ctx *ctx;
    if (!ctx && ls_ctx_new(&ctx) != 0)
        return 0;

    ls_wal_hdr hdr;
    if (size >= LS_WAL_HDRSIZE && ls_wal_hdr_decode(data, &hdr) == 0) {
        uint32_t ck[2] = {hdr.cksum[0], hdr.cksum[1]};
        size_t frame = LS_WAL_FRAME_HDRSIZE + (size_t)hdr.page_size;
        for (size_t off = LS_WAL_HDRSIZE; off + frame <= size; off += frame) {
            ls_wal_frame_hdr fh;
            ls_wal_frame_hdr_decode(data + off, &fh);
            if (!ls_wal_frame_check(&hdr, data + off, ck))
                break;
        }
    }

    int fd = file_of(data, size);
    if (fd < 0)
        return 0;
    ls_wal_scan s;
    ls_wal_scan_init(&s, 1);
    if (ls_wal_scan_fd(ctx, &s, fd, "fuzz") == 0) {
        /* The WAL grows: its second half appended again, scanned from the last commit. */
        size_t half = size / 2;
        if (half && write(fd, data + half, size - half) == (ssize_t)(size - half))
            ls_wal_scan_fd(ctx, &s, fd, "fuzz");
        for (uint32_t pg = 1; pg <= 8; pg++)
            ls_wal_scan_lookup(&s, pg);
    }
    ls_err_clear(ctx);
    ls_wal_scan_free(&s);
    close(fd);
    return 0;
}
