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
#include "fuzz_files.h"

#include "db.h"
#include "wal.h"

#include <limits.h>
#include <string.h>

#define HDR_SIZE 5

/* Write dir/name (present) or remove it (absent). 0, or -1. */
static int put_file(const char *dir, const char *name, int present, const uint8_t *data, size_t n)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (!present)
        return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
    return fuzz_put(path, data, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ls_ctx *ctx = fuzz_ctx();
    const char *dir = fuzz_dir("fuzz-dbinfo");
    if (!ctx || !dir)
        return 0;
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
    if (put_file(dir, "x.db", 1, db, ndb) || put_file(dir, "x.db-wal", flags & 1, wal, nwal) ||
        put_file(dir, "x.db-shm", flags & 2, shm, nshm) ||
        put_file(dir, "x.db-journal", flags & 4, NULL, 0))
        return 0;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/x.db-shm", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ls_shm_read(ctx, fd, &si);
        close(fd);
    }
    snprintf(path, sizeof(path), "%s/x.db", dir);
    ls_info_result res;
    ls_info(ctx, path, &res);
    ls_info_result_free(&res);
    ls_err_clear(ctx);
    return 0;
}
