/*
 * fuzz_files.h - what the targets share: one library context per process,
 * and, for the targets that read files, a directory of this process under /dev/shm
 * (memory, not the disk) where the input's files are written for each run,
 * removed with everything in it at exit.
 *
 * Header-only: each target is one file with its own copy of these.
 */
#ifndef LS_FUZZ_FILES_H
#define LS_FUZZ_FILES_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <litesafe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char fuzz_dir_path[64];

/* The context of every run (errors cleared by the target), or NULL. */
static inline ls_ctx *fuzz_ctx(void)
{
    static ls_ctx *ctx;
    if (!ctx && ls_ctx_new(&ctx) != 0)
        ctx = NULL;
    return ctx;
}

static inline int fuzz_rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    if (ftw->level > 0)
        remove(path);
    return 0;
}

/* Remove everything in `dir` (the directory stays). */
static inline void fuzz_clear(const char *dir)
{
    nftw(dir, fuzz_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void fuzz_dir_remove(void)
{
    fuzz_clear(fuzz_dir_path);
    rmdir(fuzz_dir_path);
}

/* "/dev/shm/litesafe-<target>.<pid>", made at the first call; NULL if it cannot be. */
static inline const char *fuzz_dir(const char *target)
{
    if (!fuzz_dir_path[0]) {
        snprintf(fuzz_dir_path, sizeof(fuzz_dir_path), "/dev/shm/litesafe-%s.%d", target,
                 (int)getpid());
        if (mkdir(fuzz_dir_path, 0700) != 0 && errno != EEXIST) {
            fuzz_dir_path[0] = '\0';
            return NULL;
        }
        atexit(fuzz_dir_remove);
    }
    return fuzz_dir_path;
}

/* Write n bytes to path (created or truncated). 0, or -1. */
static inline int fuzz_put(const char *path, const uint8_t *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    int rc = n == 0 || write(fd, data, n) == (ssize_t)n ? 0 : -1;
    close(fd);
    return rc;
}

#endif
