/*
 * alloc_fail.h - an allocation hook for tests: the Nth allocation from now
 * fails, as if the machine ran out of memory, and every other one succeeds.
 *
 * How it hooks in: tests/support/alloc_fail.c defines __wrap_malloc and the
 * other __wrap_* functions below. A test executable linked with
 * -Wl,--wrap=malloc,--wrap=calloc,... (tests/CMakeLists.txt: the functions
 * declared at the end of this file)
 * has every call to those functions from its statically linked objects (the
 * library, the test doubles, the test itself) sent to the wrappers, which
 * count and pass on to the real function (__real_*). Shared libraries
 * (SQLite, libcurl, libyaml, OpenSSL, liblz4, libc itself) keep calling the
 * real allocator: the hook fails only allocations made by litesafe's code.
 * Executables linked without the flags never pull alloc_fail.o in.
 *
 * One-shot: only the Nth allocation fails, the (N+1)th succeeds again (as
 * SQLite's own one-shot malloc failure tests). So each N tests one error
 * path on its own, and the code that unwinds and the caller's next attempt
 * run with memory, as they would after a transient shortage. Running N = 1,
 * 2, 3, ... until an armed run sees fewer than N allocations reaches every
 * allocation the scenario makes.
 *
 * Thread-safe: the counter and the target are atomics, so allocations in any
 * thread count (which thread's allocation is the Nth then depends on timing).
 * A thread can exempt itself (a test's own bookkeeping between library calls).
 */
#ifndef LS_ALLOC_FAIL_H
#define LS_ALLOC_FAIL_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* Count allocations from now on; the nth (n >= 1) fails with ENOMEM. Ends the
 * calling thread's exemption (a test that failed inside one jumped out of it). */
void alloc_fail_arm(uint64_t n);
/* Stop counting and failing. */
void alloc_fail_disarm(void);
/* Allocations counted since the last arm (the failed one included). */
uint64_t alloc_fail_seen(void);
/* 1 when the armed failure happened since the last arm. */
int alloc_fail_fired(void);
/* The return address of the call that failed (NULL: none failed): where it was made. */
void *alloc_fail_site(void);
/* on != 0: the calling thread's allocations are neither counted nor failed (nests). */
void alloc_fail_exempt(int on);

/* The wrappers (called through --wrap only) and the real functions they call. */
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
char *__wrap_realpath(const char *path, char *resolved);
int __wrap_scandir(const char *dir, struct dirent ***list, int (*sel)(const struct dirent *),
                   int (*cmp)(const struct dirent **, const struct dirent **));
ssize_t __wrap_getline(char **line, size_t *cap, FILE *f);
FILE *__wrap_fopen(const char *path, const char *mode);
DIR *__wrap_opendir(const char *path);
DIR *__wrap_fdopendir(int fd);

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
char *__real_realpath(const char *path, char *resolved);
int __real_scandir(const char *dir, struct dirent ***list, int (*sel)(const struct dirent *),
                   int (*cmp)(const struct dirent **, const struct dirent **));
ssize_t __real_getline(char **line, size_t *cap, FILE *f);
FILE *__real_fopen(const char *path, const char *mode);
DIR *__real_opendir(const char *path);
DIR *__real_fdopendir(int fd);

#endif
