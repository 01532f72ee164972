/*
 * fuzz_spool_state.c - the spool as `replicate` finds it at start after a
 * crash or another program touched it: the "generation" file, the names of
 * the spool files and their contents (recovered by ls_spool_open: newest
 * index found, its torn tail cut back to the last commit), ls_spool_peek
 * (what `status` reads of another process's spool) and ls_spool_bytes_from.
 *
 * INPUT.
 *
 *   gen length (1) | generation file | name (12) | wal length (2, BE) | wal | wal0 (the rest)
 *
 * The spool files go in generations/<gen>/wal/ (<gen>: the generation file's
 * first line when it names a generation, else a fixed one): `wal` under
 * `name` (any 12 bytes but '/' and NUL), `wal0` as 00000000.wal.
 *
 * INVARIANT checked: recovery opens the newest spool file there is; it never
 * creates one (a file created at start would be an index nobody wrote).
 */
#include "fuzz_files.h"

#include "spool.h"

#include <dirent.h>
#include <string.h>

#define NAME_LEN 12
#define OTHER_GEN "0123456789abcdef"

/* Entries in a directory but . and .., or -1. */
static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ls_ctx *ctx = fuzz_ctx();
    const char *dir = fuzz_dir("fuzz-spool");
    if (!ctx || !dir)
        return 0;
    if (size < 1 || size < 1u + data[0] + NAME_LEN + 2)
        return 0;

    /* 1. The generation file and the directory of its spool files. */
    size_t ngen = data[0];
    const uint8_t *p = data + 1;
    char path[PATH_MAX], line[64], gen[LS_GEN_LEN + 1], wal[PATH_MAX];
    snprintf(path, sizeof(path), "%s/generation", dir);
    if (fuzz_put(path, p, ngen) != 0)
        return 0;
    snprintf(line, sizeof(line), "%.*s", (int)(ngen < sizeof(line) ? ngen : sizeof(line) - 1),
             (const char *)p);
    line[strcspn(line, "\r\n")] = '\0';
    snprintf(gen, sizeof(gen), "%s", ls_layout_is_gen(line) ? line : OTHER_GEN);
    p += ngen;
    snprintf(wal, sizeof(wal), "%s/generations/%s/wal", dir, gen);
    snprintf(path, sizeof(path), "%s/generations", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/generations/%s", dir, gen);
    mkdir(path, 0700);
    if (mkdir(wal, 0700) != 0)
        goto cleanup;

    /* 2. The spool files. */
    char name[NAME_LEN + 1];
    for (size_t i = 0; i < NAME_LEN; i++)
        name[i] = p[i] == '/' || p[i] == '\0' ? '_' : (char)p[i];
    name[NAME_LEN] = '\0';
    p += NAME_LEN;
    size_t rest = size - (size_t)(p - data) - 2, nwal = (size_t)p[0] << 8 | p[1];
    p += 2;
    if (nwal > rest)
        nwal = rest;
    snprintf(path, sizeof(path), "%s/%s", wal, name);
    if (fuzz_put(path, p, nwal) != 0)
        goto cleanup;
    snprintf(path, sizeof(path), "%s/00000000.wal", wal);
    if (strcmp(name, "00000000.wal") != 0 && fuzz_put(path, p + nwal, rest - nwal) != 0)
        goto cleanup;

    /* 3. What a start reads of it. */
    int before = entries(wal);
    char peek[LS_GEN_LEN + 1];
    int64_t newest;
    ls_spool_peek(ctx, dir, peek, &newest);
    ls_spool sp;
    if (ls_spool_open(ctx, dir, &sp) == 0) {
        ls_spool_bytes_from(&sp, 0);
        ls_spool_is_dropped(dir, sp.gen, "s3");
        if (entries(wal) != before) {
            fprintf(stderr, "ls_spool_open created a spool file: index %08x for '%s'\n", sp.index,
                    name);
            abort();
        }
    }
    ls_spool_close(&sp);
    ls_err_clear(ctx);

cleanup:
    fuzz_clear(dir);
    return 0;
}
