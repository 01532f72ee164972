/*
 * tests/support/alloc_fail.c - the allocation hook of alloc_fail.h.
 *
 * Invariants: `target` is 0 while disarmed (nothing is counted then); while
 * armed, each allocation not exempted takes the next number of `seen` with
 * one atomic increment, so exactly one allocation gets number `target` and
 * fails, whichever thread makes it. `fired` is set before that allocation
 * returns NULL. Calls that allocate nothing of ours (realpath into a caller's
 * buffer, getline into a buffer large enough) are not counted.
 */
#define _GNU_SOURCE
#include "alloc_fail.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_uint_fast64_t target; /* the number that fails; 0: disarmed */
static atomic_uint_fast64_t seen;   /* allocations counted since arm */
static atomic_int fired;            /* the target was reached */
static _Thread_local int exempt;    /* this thread's exemption depth */
static _Atomic(void *) site;        /* the caller of the allocation that failed */

/* Also ends the calling thread's exemption (a test that failed inside one jumped out). */
void alloc_fail_arm(uint64_t n)
{
    exempt = 0;
    atomic_store(&target, 0);
    atomic_store(&seen, 0);
    atomic_store(&fired, 0);
    atomic_store(&target, n);
}

void alloc_fail_disarm(void)
{
    atomic_store(&target, 0);
}

uint64_t alloc_fail_seen(void)
{
    return atomic_load(&seen);
}

int alloc_fail_fired(void)
{
    return atomic_load(&fired);
}

void *alloc_fail_site(void)
{
    return atomic_load(&fired) ? atomic_load(&site) : NULL;
}

void alloc_fail_exempt(int on)
{
    exempt += on ? 1 : -1;
}

/* Count one allocation made from `ra`; 1 when it is the one that fails (errno is then ENOMEM). */
static int failing(void *ra)
{
    uint64_t t = atomic_load(&target);
    if (!t || exempt)
        return 0;
    if (atomic_fetch_add(&seen, 1) + 1 != t)
        return 0;
    atomic_store(&site, ra);
    atomic_store(&fired, 1);
    errno = ENOMEM;
    return 1;
}

/* In a wrapper: its caller is the allocation's site. */
#define FAILING() failing(__builtin_return_address(0))

void *__wrap_malloc(size_t n)
{
    return FAILING() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return FAILING() ? NULL : __real_calloc(n, size);
}

/* A failed realloc leaves the block as it was (the caller still owns it). */
void *__wrap_realloc(void *p, size_t n)
{
    return FAILING() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    return FAILING() ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
    return FAILING() ? NULL : __real_strndup(s, n);
}

/* Only realpath(path, NULL) allocates the result. */
char *__wrap_realpath(const char *path, char *resolved)
{
    return !resolved && FAILING() ? NULL : __real_realpath(path, resolved);
}

int __wrap_scandir(const char *dir, struct dirent ***list, int (*sel)(const struct dirent *),
                   int (*cmp)(const struct dirent **, const struct dirent **))
{
    return FAILING() ? -1 : __real_scandir(dir, list, sel, cmp);
}

/* getline allocates when it has no buffer yet (it may also grow one: not counted). */
ssize_t __wrap_getline(char **line, size_t *cap, FILE *f)
{
    return !*line && FAILING() ? -1 : __real_getline(line, cap, f);
}

/* fopen and the directory streams allocate their state (a FILE, a DIR). */
FILE *__wrap_fopen(const char *path, const char *mode)
{
    return FAILING() ? NULL : __real_fopen(path, mode);
}

DIR *__wrap_opendir(const char *path)
{
    return FAILING() ? NULL : __real_opendir(path);
}

DIR *__wrap_fdopendir(int fd)
{
    return FAILING() ? NULL : __real_fdopendir(fd);
}
