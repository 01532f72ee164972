/*
 * hash.c - SHA-256 through OpenSSL's EVP interface.
 */
#include "hash.h"

#include "fsutil.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

struct ls_sha256 {
    EVP_MD_CTX *md; /* OpenSSL digest state */
};

ls_sha256 *ls_sha256_new(void)
{
    ls_sha256 *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->md = EVP_MD_CTX_new();
    if (!h->md || EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1) {
        ls_sha256_free(h);
        return NULL;
    }
    return h;
}

void ls_sha256_update(ls_sha256 *h, const void *data, size_t n)
{
    EVP_DigestUpdate(h->md, data, n);
}

void ls_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void ls_sha256_final(ls_sha256 *h, char hex[65])
{
    uint8_t md[32];
    unsigned int n = 0;
    EVP_DigestFinal_ex(h->md, md, &n);
    ls_hex(md, 32, hex);
    ls_sha256_free(h);
}

void ls_sha256_free(ls_sha256 *h)
{
    if (!h)
        return;
    EVP_MD_CTX_free(h->md);
    free(h);
}

int ls_sha256_hex_valid(const char *s)
{
    size_t i;
    for (i = 0; s[i]; i++)
        if (!isxdigit((unsigned char)s[i]))
            return 0;
    return i == 64;
}

int ls_sha256_file(ls_ctx *ctx, const char *path, char hex[65])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ls_err_errno(ctx, errno, "open %s", path);
    size_t cap = 1 << 20;
    uint8_t *buf = malloc(cap);
    ls_sha256 *h = ls_sha256_new();
    int rc = 0;
    if (!buf || !h) {
        rc = ls_err(ctx, LS_ENOMEM, "out of memory");
        goto cleanup;
    }
    for (;;) {
        ssize_t r = read(fd, buf, cap);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = ls_err_errno(ctx, errno, "read %s", path);
            goto cleanup;
        }
        if (r == 0)
            break;
        ls_sha256_update(h, buf, (size_t)r);
    }
    ls_sha256_final(h, hex);
    h = NULL;
cleanup:
    ls_sha256_free(h);
    free(buf);
    close(fd);
    return rc;
}
