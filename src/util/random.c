/*
 * random.c - random bytes and random hex names (random.h).
 */
#define _GNU_SOURCE
#include "random.h"
#include "hash.h"
#include "internal.h"

#include <errno.h>
#include <stdint.h>
#include <sys/random.h>

int ls_random_bytes(void *buf, size_t n)
{
    uint8_t *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(p + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return LS_EIO;
        }
        got += (size_t)r;
    }
    return 0;
}

int ls_random_hex(char *out, size_t n)
{
    uint8_t raw[64];
    char *start = out;
    *start = '\0';
    while (n > 0) {
        size_t k = n < sizeof(raw) ? n : sizeof(raw);
        if (ls_random_bytes(raw, k) != 0) {
            *start = '\0';
            return LS_EIO;
        }
        ls_hex(raw, k, out);
        out += 2 * k;
        n -= k;
    }
    return 0;
}
