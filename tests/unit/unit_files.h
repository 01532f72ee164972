/*
 * unit_files.h - small helpers the unit tests share: whole files written
 * and read back (failing the test on any error), and reproducible noise.
 * Static inline functions, so a test program may use any of them.
 */
#ifndef LS_UNIT_FILES_H
#define LS_UNIT_FILES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Write n bytes of p as the whole file at path. */
static inline void write_file(const char *path, const void *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(p, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

/* The whole file at path, malloc'd (never NULL); its size in *n. */
static inline uint8_t *read_file(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *p = malloc(len ? (size_t)len : 1);
    assert_int_equal(fread(p, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    *n = (size_t)len;
    return p;
}

/* n bytes of xorshift noise from seed (malloc'd, never NULL). */
static inline uint8_t *noise_bytes(size_t n, uint32_t seed)
{
    uint8_t *p = malloc(n ? n : 1);
    uint32_t x = seed | 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
    return p;
}

#endif
