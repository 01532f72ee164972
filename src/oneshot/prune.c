/*
 * prune.c - retention over the timestamped backups in one directory.
 *
 * A backup is a regular file whose name is exactly
 *     <name>-YYYYMMDDTHHMMSSZ.db
 * (the format of ls_backup_path: a non-empty <name>, a valid UTC date and
 * time). Nothing else is ever touched: not temp files, not directories, not
 * symbolic links, not "-wal"/"-shm" siblings, not names that almost match.
 *
 * Rules, per <name> (a directory may hold backups of several databases):
 *   - order by the time in the file name, newest first (never by mtime, which
 *     a copy or a restore from tape changes); a time in the future is newest;
 *   - `keep` N: the N newest survive;
 *   - `keep_within_s` D: backups younger than D seconds (relative to `now`)
 *     survive; with both rules, surviving either one is enough;
 *   - the newest backup of each name always survives, whatever the rules say.
 * Deletion is unlink() per file and one fsync of the directory at the end.
 */
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* "-YYYYMMDDTHHMMSSZ.db" */
#define STAMP_SUFFIX_LEN 20

/* One backup found in the directory. */
typedef struct bk_entry {
    char *fname;   /* file name inside the directory (owned) */
    size_t stem;   /* length of <name>, the part before "-YYYY..." */
    int64_t t;     /* time from the file name, unix seconds (UTC) */
    uint64_t size; /* file size in bytes */
} bk_entry;

/* Parse `n` decimal digits; -1 if any is not a digit. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/*
 * 1 if `fname` is "<name>-YYYYMMDDTHHMMSSZ.db" with a non-empty name and a
 * real UTC date and time (no 30 February, no hour 24); sets *stem and *t.
 */
static int parse_backup_name(const char *fname, size_t *stem, int64_t *t)
{
    size_t len = strlen(fname);
    if (len < STAMP_SUFFIX_LEN + 1)
        return 0;
    const char *s = fname + len - STAMP_SUFFIX_LEN;
    if (s[0] != '-' || s[9] != 'T' || s[16] != 'Z' || strcmp(s + 17, ".db") != 0)
        return 0;
    struct tm tm = {0}, back;
    int Y = digits(s + 1, 4), M = digits(s + 5, 2), D = digits(s + 7, 2);
    int h = digits(s + 10, 2), m = digits(s + 12, 2), sec = digits(s + 14, 2);
    if (Y < 1970 || M < 1 || M > 12 || D < 1 || D > 31 || h < 0 || h > 23 || m < 0 || m > 59 ||
        sec < 0 || sec > 59)
        return 0;
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    time_t tt = timegm(&tm);
    /* timegm normalises 31 April into 1 May: a round trip catches it. */
    if (tt == (time_t)-1 || !gmtime_r(&tt, &back) || back.tm_mday != D || back.tm_mon != M - 1)
        return 0;
    *stem = len - STAMP_SUFFIX_LEN;
    *t = (int64_t)tt;
    return 1;
}

/* By name, then newest first. */
static int entry_cmp(const void *a, const void *b)
{
    const bk_entry *x = a, *y = b;
    size_t n = x->stem < y->stem ? x->stem : y->stem;
    int c = memcmp(x->fname, y->fname, n);
    if (c)
        return c;
    if (x->stem != y->stem)
        return x->stem < y->stem ? -1 : 1;
    if (x->t != y->t)
        return x->t > y->t ? -1 : 1;
    return strcmp(x->fname, y->fname);
}

/* The backups found in a directory. */
typedef struct bk_list {
    bk_entry *v; /* the entries */
    size_t n;    /* used */
    size_t cap;  /* allocated */
} bk_list;

static void bk_list_free(bk_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].fname);
    free(l->v);
}

/* Step 2: the regular files of `d` (at `path`) whose names match the pattern. */
static int collect(ls_ctx *ctx, DIR *d, const char *path, bk_list *l)
{
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno)
                return ls_err_errno(ctx, errno, "read directory %s", path);
            return 0;
        }
        size_t stem;
        int64_t t;
        struct stat st;
        if (!parse_backup_name(e->d_name, &stem, &t))
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (l->n == l->cap) {
            size_t ncap = l->cap ? l->cap * 2 : 64;
            bk_entry *nv = realloc(l->v, ncap * sizeof(*nv));
            if (!nv)
                return ls_err(ctx, LS_ENOMEM, "out of memory");
            l->v = nv;
            l->cap = ncap;
        }
        if (!(l->v[l->n].fname = strdup(e->d_name)))
            return ls_err(ctx, LS_ENOMEM, "out of memory");
        l->v[l->n].stem = stem;
        l->v[l->n].t = t;
        l->v[l->n].size = (uint64_t)st.st_size;
        l->n++;
    }
}

/*
 * Steps 3 and 4 over the sorted list: rank each backup within its name,
 * decide, delete (unless dry_run) and report. Sets *any_deleted once a file
 * was removed, so the caller's directory fsync runs even after a failure.
 */
static int decide_and_delete(ls_ctx *ctx, DIR *d, const bk_list *l, const ls_prune_opts *opts,
                             int64_t now, ls_prune_result *res, int *any_deleted)
{
    char path[PATH_MAX * 2];
    int64_t rank = 0;
    for (size_t i = 0; i < l->n; i++, rank++) {
        const bk_entry *b = &l->v[i];
        if (i > 0 && (b->stem != b[-1].stem || memcmp(b->fname, b[-1].fname, b->stem)))
            rank = 0;
        int keep = rank == 0 || (opts->keep > 0 && rank < opts->keep) ||
                   (opts->keep_within_s >= 0 && now - b->t < opts->keep_within_s);
        snprintf(path, sizeof(path), "%s/%s", strcmp(res->dir, "/") ? res->dir : "", b->fname);
        if (!keep && !opts->dry_run) {
            if (unlinkat(dirfd(d), b->fname, 0) != 0) {
                if (errno == ENOENT) { /* removed by someone else meanwhile */
                    ls_log(ctx, LS_LOG_INFO, "prune vanished path=%s", path);
                    continue;
                }
                return ls_err_errno(ctx, errno, "delete %s", path);
            }
            *any_deleted = 1;
            ls_log(ctx, LS_LOG_INFO, "prune deleted path=%s bytes=%llu", path,
                   (unsigned long long)b->size);
        }
        if (keep) {
            res->kept++;
        } else {
            res->deleted++;
            res->bytes_freed += b->size;
        }
        if (opts->each)
            opts->each(opts->each_ud, path, b->t, !keep);
    }
    return 0;
}

/*
 * ls_prune, in steps:
 *   1. check the rules (at least one; `keep` 0 is allowed from the library and
 *      keeps only the newest) and open DIR (LS_ENOENT when missing);
 *   2. collect the regular files whose names match the pattern (collect);
 *   3. sort them by name and time, rank each within its name;
 *   4. decide and delete (unless dry_run), reporting each to opts->each;
 *      a file that vanished meanwhile is skipped, any other unlink failure
 *      stops the run (decide_and_delete);
 *   5. fsync the directory once when anything was deleted, even after a
 *      failure in step 4, so the deletions that happened are durable.
 * In a dry run, `deleted` and `bytes_freed` say what a real run would do.
 */
int ls_prune(ls_ctx *ctx, const char *dir, const ls_prune_opts *opts, ls_prune_result *res)
{
    DIR *d = NULL;
    bk_list l = {NULL, 0, 0};
    int rc = 0, any_deleted = 0;

    memset(res, 0, sizeof(*res));
    ls_err_clear(ctx);

    /* 1. Rules and directory. */
    if (!opts || (opts->keep < 0 && opts->keep_within_s < 0))
        return ls_err(ctx, LS_EUSAGE, "prune needs a retention rule (keep or keep-within)");
    const int64_t now = opts->now ? opts->now : ls_unix_now();
    if ((rc = ls_abspath_dup(ctx, dir, &res->dir)) != 0)
        return rc;
    d = opendir(res->dir);
    if (!d)
        return ls_err_errno(ctx, errno, "open directory %s", res->dir);

    /* 2. Collect. */
    if ((rc = collect(ctx, d, res->dir, &l)) != 0)
        goto cleanup;
    res->examined = l.n;

    /* 3. Sort; rank restarts at 0 with each name. 4. Decide, then delete. */
    if (l.n > 1)
        qsort(l.v, l.n, sizeof(*l.v), entry_cmp);
    rc = decide_and_delete(ctx, d, &l, opts, now, res, &any_deleted);

cleanup:
    /* 5. One directory fsync makes every unlink above durable. */
    if (any_deleted && fsync(dirfd(d)) != 0 && errno != EINVAL && errno != EROFS && !rc)
        rc = ls_err_errno(ctx, errno, "fsync directory %s", res->dir);
    bk_list_free(&l);
    closedir(d);
    return rc;
}

void ls_prune_result_free(ls_prune_result *res)
{
    if (!res)
        return;
    free(res->dir);
    res->dir = NULL;
}
