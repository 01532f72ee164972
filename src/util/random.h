/*
 * random.h - random bytes from the kernel (getrandom(2)), raw or as hex: for
 * generation names (layout.c), backends' temp-file names, and nonces.
 */
#ifndef LS_RANDOM_H
#define LS_RANDOM_H

#include <stddef.h>

/* Fill buf with n random bytes (blocking until the kernel's pool is ready). 0 or LS_EIO. */
int ls_random_bytes(void *buf, size_t n);
/*
 * n random bytes as 2n lowercase hex digits and a NUL into out (2n + 1
 * bytes). 0 or LS_EIO (out is then an empty string).
 */
int ls_random_hex(char *out, size_t n);

#endif
