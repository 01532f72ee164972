/*
 * fuzz_dbinfo.c - what `litesafe info` reads of a database it did not write:
 * the 100-byte header (ls_db_hdr_decode), the wal-index header of the -shm
 * (ls_shm_decode, ls_shm_read), and ls_info over a database file with its
 * -wal and -shm next to it.
 *
 * INPUT. One byte of flags, then the parts, each of the first two with a
 * 2-byte big-endian length (cut to what the input holds):
 *
 *   flags (1) | db length (2) | wal length (2) | db | wal | shm (the rest)
 *
 * flags bit 0: the -wal exists, bit 1: the -shm exists, bit 2: a -journal
 * (empty) exists. The database file always exists (a zero-length one is an
 * empty database). The files live in a directory of this process under
 * /dev/shm and are rewritten for every input.
 */
#define _GNU_SOURCE
#include "db.h"
#include "wal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <litesafe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HDR_SIZE 5

static char g_dir[64];

/* Write `n` bytes to dir/name (present) or remove it (absent). 0, or -1. */
static int put_file(const char *name, int present, const uint8_t *data, size_t n)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", g_dir, name);
    if (!present)
        return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    int rc = n == 0 || write(fd, data, n) == (ssize_t)n ? 0 : -1;
    close(fd);
    return rc;
}

/* At exit: the files and their directory go. */
static void remove_dir(void)
{
    static const char *const names[] = {"x.db", "x.db-wal", "x.db-shm", "x.db-journal"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        put_file(names[i], 0, NULL, 0);
    rmdir(g_dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ls_ctx *ctx;
    if (!ctx) {
        if (ls_ctx_new(&ctx) != 0)
            return 0;
        snprintf(g_dir, sizeof(g_dir), "/dev/shm/litesafe-fuzz-dbinfo.%d", (int)getpid());
        if (mkdir(g_dir, 0700) != 0 && errno != EEXIST)
            return 0;
        atexit(remove_dir);
    }
    if (size < HDR_SIZE)
        return 0;

    unsigned flags = data[0];
    size_t rest = size - HDR_SIZE;
    size_t ndb = (size_t)data[1] << 8 | data[2], nwal = (size_t)data[3] << 8 | data[4];
    if (ndb > rest)
        ndb = rest;
    if (nwal > rest - ndb)
        nwal = rest - ndb;
    const uint8_t *db = data + HDR_SIZE, *wal = db + ndb, *shm = wal + nwal;
    size_t nshm = rest - ndb - nwal;

    /* The decoders on the bytes themselves. */
    ls_db_hdr hdr;
    if (ndb >= 100)
        ls_db_hdr_decode(db, &hdr);
    ls_shm_info si;
    if (nshm >= LS_SHM_HDRSIZE)
        ls_shm_decode(shm, &si);

    /* ls_info over the files, as `litesafe info x.db` reads them. */
    if (put_file("x.db", 1, db, ndb) || put_file("x.db-wal", flags & 1, wal, nwal) ||
        put_file("x.db-shm", flags & 2, shm, nshm) || put_file("x.db-journal", flags & 4, NULL, 0))
        return 0;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/x.db-shm", g_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ls_shm_read(ctx, fd, &si);
        close(fd);
    }
    snprintf(path, sizeof(path), "%s/x.db", g_dir);
    ls_info_result res;
    ls_info(ctx, path, &res);
    ls_info_result_free(&res);
    ls_err_clear(ctx);
    return 0;
}
