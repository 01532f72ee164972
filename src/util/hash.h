/*
 * hash.h - SHA-256 (OpenSSL EVP) for files and streams, as lowercase hex.
 */
#ifndef LS_HASH_H
#define LS_HASH_H

#include "internal.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ls_sha256 ls_sha256;

ls_sha256 *ls_sha256_new(void);
void ls_sha256_update(ls_sha256 *h, const void *data, size_t n);
/* Finish into 65 bytes of lowercase hex and free the state. */
void ls_sha256_final(ls_sha256 *h, char hex[65]);
void ls_sha256_free(ls_sha256 *h);
/* Lowercase hex of n bytes into out (2n+1 bytes). */
void ls_hex(const uint8_t *in, size_t n, char *out);
/* 1 if s is exactly 64 hex digits (either case). */
int ls_sha256_hex_valid(const char *s);

#endif
