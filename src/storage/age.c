/*
 * age.c - the age v1 format (see age.h): keys, the encrypting reader, the
 * decrypting writer, and the storage wrapper. The primitives are OpenSSL
 * libcrypto's (X25519, HKDF-SHA256, HMAC-SHA256, ChaCha20-Poly1305); this
 * file holds only the framing and the Bech32 key encoding.
 *
 * THE FORMAT (C2SP age.md), as written and read here
 *   header:
 *     "age-encryption.org/v1\n"
 *     one stanza per recipient:
 *       "-> X25519 " b64(E) "\n"       E = X25519(e, basepoint), e random
 *       b64(body) "\n"                 body = ChaCha20-Poly1305(wrap, nonce 0,
 *                                      file key), 32 bytes
 *         wrap = HKDF-SHA256(ikm X25519(e, R), salt E || R,
 *                            info "age-encryption.org/v1/X25519")
 *     "--- " b64(mac) "\n"             mac = HMAC-SHA256(HKDF(ikm file key,
 *                                      salt "", info "header"), every header
 *                                      byte up to and including "---")
 *   payload:
 *     nonce (16 random bytes), then the plaintext in 64 KiB chunks, each
 *     ChaCha20-Poly1305(key, 11-byte big-endian chunk counter || last flag,
 *     chunk) with key = HKDF(ikm file key, salt nonce, info "payload"). The
 *     last chunk has flag 1 and is shorter than 64 KiB or full; it is empty
 *     only when the whole plaintext is.
 *   b64 is standard base64 without padding, canonical; a stanza body is
 *   wrapped at 64 columns and ends with a line shorter than 64 (possibly
 *   empty). The file key is 16 random bytes per object. Stanzas of other
 *   types (other recipient kinds, the age tool's "grease") are skipped.
 * Keys: Bech32 (BIP 173 checksum), "age" + 32-byte public key for
 * recipients, "AGE-SECRET-KEY-" (upper case) + 32-byte scalar for
 * identities.
 */
#include "age.h"
#include "io.h"
#include "random.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>

#define CHUNK (64 * 1024)       /* plaintext bytes per payload chunk */
#define TAG 16                  /* Poly1305 tag */
#define FILE_KEY 16             /* bytes of a file key */
#define HEADER_MAX (1 << 20)    /* a longer header is refused */
#define KEYS_TEXT_MAX (1 << 24) /* a key file larger than this is refused */
#define X25519_INFO "age-encryption.org/v1/X25519"

struct ls_age_keys {
    uint8_t (*ids)[32];         /* identities: private scalars */
    uint8_t (*id_pubs)[32];     /* their public keys (the stanza salt needs them) */
    size_t nid;                 /* identities ... */
    size_t npub;                /* ... and public keys: the same count once loaded */
    uint8_t (*rcpts)[32];       /* recipients: public keys */
    size_t nrcpt;
};

/* ---- primitives (libcrypto) ---- */

/* HKDF-SHA256 into out[n]; 0 or -1. */
static int hkdf(const uint8_t *salt, size_t nsalt, const uint8_t *ikm, size_t nikm,
                const char *info, uint8_t *out, size_t n)
{
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    int ok = pc && EVP_PKEY_derive_init(pc) > 0 && EVP_PKEY_CTX_set_hkdf_md(pc, EVP_sha256()) > 0 &&
             (nsalt == 0 || EVP_PKEY_CTX_set1_hkdf_salt(pc, salt, (int)nsalt) > 0) &&
             EVP_PKEY_CTX_set1_hkdf_key(pc, ikm, (int)nikm) > 0 &&
             EVP_PKEY_CTX_add1_hkdf_info(pc, (const unsigned char *)info, (int)strlen(info)) > 0 &&
             EVP_PKEY_derive(pc, out, &n) > 0;
    EVP_PKEY_CTX_free(pc);
    return ok ? 0 : -1;
}

/* X25519(priv, pub) into out; -1 on failure (including an all-zero result). */
static int x25519(const uint8_t priv[32], const uint8_t pub[32], uint8_t out[32])
{
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
    EVP_PKEY *p = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, pub, 32);
    EVP_PKEY_CTX *pc = k ? EVP_PKEY_CTX_new(k, NULL) : NULL;
    size_t n = 32;
    int ok = p && pc && EVP_PKEY_derive_init(pc) > 0 && EVP_PKEY_derive_set_peer(pc, p) > 0 &&
             EVP_PKEY_derive(pc, out, &n) > 0 && n == 32;
    uint8_t acc = 0;
    for (size_t i = 0; ok && i < 32; i++)
        acc |= out[i];
    EVP_PKEY_CTX_free(pc);
    EVP_PKEY_free(p);
    EVP_PKEY_free(k);
    return ok && acc ? 0 : -1;
}

int ls_age_public_of(const uint8_t priv[32], uint8_t pub[32])
{
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
    size_t n = 32;
    int ok = k && EVP_PKEY_get_raw_public_key(k, pub, &n) > 0 && n == 32;
    EVP_PKEY_free(k);
    return ok ? 0 : LS_ERROR;
}

/*
 * ChaCha20-Poly1305 with empty associated data. Sealing: n plaintext bytes
 * into out[n + TAG]. Opening (seal 0): n >= TAG ciphertext bytes into
 * out[n - TAG]. 0, or -1 (a tag that does not verify).
 */
static int aead(EVP_CIPHER_CTX *c, int seal, const uint8_t key[32], const uint8_t nonce[12],
                const uint8_t *in, size_t n, uint8_t *out)
{
    int len = 0, fin = 0;
    size_t body = seal ? n : n - TAG;
    if (EVP_CipherInit_ex(c, EVP_chacha20_poly1305(), NULL, NULL, NULL, seal) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL) != 1 ||
        EVP_CipherInit_ex(c, NULL, NULL, key, nonce, seal) != 1)
        return -1;
    if (!seal && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, TAG, (void *)(in + body)) != 1)
        return -1;
    if (body && EVP_CipherUpdate(c, out, &len, in, (int)body) != 1)
        return -1;
    if (EVP_CipherFinal_ex(c, out + len, &fin) != 1)
        return -1;
    if (seal && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, TAG, out + body) != 1)
        return -1;
    return 0;
}

/* The header MAC of hdr[0..n) under file key fk. 0 or -1. */
static int header_mac(const uint8_t fk[FILE_KEY], const uint8_t *hdr, size_t n, uint8_t mac[32])
{
    uint8_t hk[32];
    unsigned len = 32;
    int rc = hkdf(NULL, 0, fk, FILE_KEY, "header", hk, sizeof(hk));
    if (!rc && !HMAC(EVP_sha256(), hk, sizeof(hk), hdr, n, mac, &len))
        rc = -1;
    OPENSSL_cleanse(hk, sizeof(hk));
    return rc;
}

/* ---- base64 (standard alphabet, no padding, canonical) ---- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Encode n bytes into out (NUL-terminated; needs 4n/3 + 2 bytes). */
static void b64_enc(const uint8_t *p, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = B64[v >> 18];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = B64[(v >> 6) & 63];
        out[o++] = B64[v & 63];
    }
    if (n - i == 1) {
        out[o++] = B64[p[i] >> 2];
        out[o++] = B64[(p[i] & 3) << 4];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 8 | p[i + 1];
        out[o++] = B64[v >> 10];
        out[o++] = B64[(v >> 4) & 63];
        out[o++] = B64[(v & 15) << 2];
    }
    out[o] = '\0';
}

/*
 * Decode s[0..n) into out (at most cap bytes); the count, or -1 when s is
 * not canonical unpadded base64 or does not fit.
 */
static long b64_dec(const char *s, size_t n, uint8_t *out, size_t cap)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;
    if (n % 4 == 1)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const char *q = s[i] ? strchr(B64, s[i]) : NULL;
        if (!q)
            return -1;
        acc = acc << 6 | (uint32_t)(q - B64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return -1;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    if (acc & ((1u << bits) - 1))
        return -1; /* non-zero unused bits: not canonical */
    return (long)o;
}

/* ---- Bech32 (BIP 173) ---- */

static const char BECH[] = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

static uint32_t bech_step(uint32_t chk, uint8_t v)
{
    static const uint32_t gen[5] = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3};
    uint8_t top = (uint8_t)(chk >> 25);
    chk = (chk & 0x1ffffff) << 5 ^ v;
    for (int i = 0; i < 5; i++)
        if ((top >> i) & 1)
            chk ^= gen[i];
    return chk;
}

/* The checksum state after the expanded (lower-case) human-readable part. */
static uint32_t bech_hrp(const char *hrp)
{
    uint32_t chk = 1;
    for (const char *p = hrp; *p; p++)
        chk = bech_step(chk, (uint8_t)(*p >> 5));
    chk = bech_step(chk, 0);
    for (const char *p = hrp; *p; p++)
        chk = bech_step(chk, (uint8_t)(*p & 31));
    return chk;
}

/* hrp "1" data checksum, lower case, for a 32-byte key. */
static void bech_encode(const char *hrp, const uint8_t key[32], char *out, size_t outsz)
{
    uint8_t d[64];
    size_t nd = 0;
    uint32_t acc = 0, chk = bech_hrp(hrp);
    unsigned bits = 0;
    for (int i = 0; i < 32; i++) {
        acc = acc << 8 | key[i];
        for (bits += 8; bits >= 5; bits -= 5)
            d[nd++] = (uint8_t)((acc >> (bits - 5)) & 31);
    }
    if (bits)
        d[nd++] = (uint8_t)((acc << (5 - bits)) & 31);
    for (size_t i = 0; i < nd; i++)
        chk = bech_step(chk, d[i]);
    for (int i = 0; i < 6; i++)
        chk = bech_step(chk, 0);
    chk ^= 1;
    char s[128];
    size_t o = (size_t)snprintf(s, sizeof(s), "%s1", hrp);
    for (size_t i = 0; i < nd; i++)
        s[o++] = BECH[d[i]];
    for (int i = 0; i < 6; i++)
        s[o++] = BECH[(chk >> (5 * (5 - i))) & 31];
    s[o] = '\0';
    ls_strlcpy(out, s, outsz);
}

/*
 * Decode a Bech32 string of human-readable part `hrp` (lower case) holding
 * a 32-byte key. Case-insensitive, but not mixed. 0, or -1 (wrong part,
 * bad character, checksum, or length).
 */
static int bech_decode(const char *s, size_t n, const char *hrp, uint8_t key[32])
{
    char low[128];
    int upper = 0, lower = 0;
    size_t nh = strlen(hrp);
    if (n >= sizeof(low) || n < nh + 1 + 6)
        return -1;
    for (size_t i = 0; i < n; i++) {
        upper |= isupper((unsigned char)s[i]) != 0;
        lower |= islower((unsigned char)s[i]) != 0;
        low[i] = (char)tolower((unsigned char)s[i]);
    }
    low[n] = '\0';
    if ((upper && lower) || strncmp(low, hrp, nh) != 0 || low[nh] != '1')
        return -1;
    uint32_t chk = bech_hrp(hrp), acc = 0;
    unsigned bits = 0;
    size_t o = 0, nd = n - nh - 1;
    for (size_t i = 0; i < nd; i++) {
        const char *q = low[nh + 1 + i] ? strchr(BECH, low[nh + 1 + i]) : NULL;
        if (!q)
            return -1;
        uint8_t v = (uint8_t)(q - BECH);
        chk = bech_step(chk, v);
        if (i >= nd - 6)
            continue;
        acc = acc << 5 | v;
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            if (o >= 32)
                return -1;
            key[o++] = (uint8_t)(acc >> bits);
        }
    }
    if (chk != 1 || o != 32 || bits >= 5 || (acc & ((1u << bits) - 1)))
        return -1;
    return 0;
}

void ls_age_recipient_str(const uint8_t pub[32], char *out, size_t outsz)
{
    bech_encode("age", pub, out, outsz);
}

void ls_age_identity_str(const uint8_t priv[32], char *out, size_t outsz)
{
    bech_encode("age-secret-key-", priv, out, outsz);
    for (char *p = out; *p; p++)
        *p = (char)toupper((unsigned char)*p);
}

/* ---- keys ---- */

/* Append a 32-byte key to a list of *n. 0 or LS_ENOMEM. */
static int key_add(uint8_t (**v)[32], size_t *n, const uint8_t key[32])
{
    uint8_t(*nv)[32] = malloc((*n + 1) * 32);
    if (!nv)
        return LS_ENOMEM;
    if (*n)
        memcpy(nv, *v, *n * 32);
    memcpy(nv[*n], key, 32);
    if (*v) {
        OPENSSL_cleanse(*v, *n * 32);
        free(*v);
    }
    *v = nv;
    (*n)++;
    return 0;
}

/*
 * Parse the keys in text (lines; '#' comments and blank lines skipped) into
 * k: identities when `ids`, else recipients. `list` and `entry` name the
 * source in messages. 0 or LS_EUSAGE / LS_ENOMEM.
 */
static int parse_text(ls_ctx *ctx, ls_age_keys *k, int ids, const char *text, const char *what,
                      const char *list, const char *entry)
{
    size_t line = 0, found = 0;
    uint8_t key[32];
    int rc = 0;
    for (const char *p = text; *p && !rc;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        const char *s = p;
        p += n + (e != NULL);
        line++;
        while (n && isspace((unsigned char)s[n - 1]))
            n--;
        while (n && isspace((unsigned char)*s))
            s++, n--;
        if (n == 0 || *s == '#')
            continue;
        if (bech_decode(s, n, ids ? "age-secret-key-" : "age", key) != 0) {
            rc = ls_err(ctx, LS_EUSAGE, "%s: age %s %s, line %zu: not an %s", what, list, entry,
                        line, ids ? "age X25519 identity (AGE-SECRET-KEY-1...)"
                                  : "age X25519 recipient (age1...)");
            break;
        }
        found++;
        if (!ids) {
            rc = key_add(&k->rcpts, &k->nrcpt, key);
        } else {
            uint8_t pub[32];
            if ((rc = ls_age_public_of(key, pub)) != 0)
                rc = ls_err(ctx, LS_ERROR, "%s: age %s %s: libcrypto failed", what, list, entry);
            if (!rc)
                rc = key_add(&k->id_pubs, &k->npub, pub);
            if (!rc)
                rc = key_add(&k->ids, &k->nid, key);
        }
        if (rc == LS_ENOMEM)
            rc = ls_err(ctx, LS_ENOMEM, "out of memory");
    }
    OPENSSL_cleanse(key, sizeof(key));
    if (!rc && !found)
        rc = ls_err(ctx, LS_EUSAGE, "%s: age %s %s: no %s found", what, list, entry,
                    ids ? "identity (AGE-SECRET-KEY-1...)" : "recipient (age1...)");
    return rc;
}

/* Read a key file (at most KEYS_TEXT_MAX bytes) into a malloc'd C string. */
static int read_text(ls_ctx *ctx, const char *what, const char *path, char **out)
{
    ls_buf b = {0};
    char tmp[4096];
    size_t n;
    int rc = 0;
    FILE *f = fopen(path, "re");
    *out = NULL;
    if (!f)
        return ls_err_errno(ctx, errno, "%s: age key file %s", what, path);
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0 && !rc) {
        if (b.n + n > KEYS_TEXT_MAX)
            rc = ls_err(ctx, LS_EUSAGE, "%s: age key file %s: larger than 16 MiB", what, path);
        else if (ls_buf_add(&b, tmp, n) != 0)
            rc = ls_err(ctx, LS_ENOMEM, "out of memory");
    }
    if (!rc && ferror(f))
        rc = ls_err_errno(ctx, errno, "%s: age key file %s", what, path);
    fclose(f);
    OPENSSL_cleanse(tmp, sizeof(tmp));
    if (!rc && !b.p && ls_buf_add(&b, "", 0) != 0)
        rc = ls_err(ctx, LS_ENOMEM, "out of memory");
    if (rc) {
        if (b.p)
            OPENSSL_cleanse(b.p, b.n);
        ls_buf_free(&b);
        return rc;
    }
    *out = (char *)b.p;
    return 0;
}

/* Parse one list of texts (files when `files`) into k. */
static int parse_list(ls_ctx *ctx, ls_age_keys *k, int ids, int files, char *const *v, size_t n,
                      const char *what)
{
    const char *list = ids ? (files ? "identity-files" : "identities")
                           : (files ? "recipient-files" : "recipients");
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        char entry[64], *text = NULL;
        if (!files) {
            snprintf(entry, sizeof(entry), "[%zu]", i);
            rc = parse_text(ctx, k, ids, v[i], what, list, entry);
            continue;
        }
        if ((rc = read_text(ctx, what, v[i], &text)) != 0)
            break;
        char fentry[1100];
        snprintf(fentry, sizeof(fentry), "file %s", v[i]);
        rc = parse_text(ctx, k, ids, text, what, list, fentry);
        OPENSSL_cleanse(text, strlen(text));
        free(text);
    }
    return rc;
}

int ls_age_keys_load(ls_ctx *ctx, const ls_age_opts *o, ls_age_keys **out)
{
    const char *what = o->what ? o->what : "replica";
    int rc;
    *out = NULL;
    if (!o->n_identities && !o->n_identity_files && !o->n_recipients && !o->n_recipient_files)
        return 0;
    ls_age_keys *k = calloc(1, sizeof(*k));
    if (!k)
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    if ((rc = parse_list(ctx, k, 1, 0, o->identities, o->n_identities, what)) != 0 ||
        (rc = parse_list(ctx, k, 1, 1, o->identity_files, o->n_identity_files, what)) != 0 ||
        (rc = parse_list(ctx, k, 0, 0, o->recipients, o->n_recipients, what)) != 0 ||
        (rc = parse_list(ctx, k, 0, 1, o->recipient_files, o->n_recipient_files, what)) != 0)
        goto fail;
    /* Identities alone: encrypt to themselves (what is written can be read back). */
    for (size_t i = 0; !o->n_recipients && !o->n_recipient_files && i < k->nid; i++)
        if (key_add(&k->rcpts, &k->nrcpt, k->id_pubs[i]) != 0) {
            rc = ls_err(ctx, LS_ENOMEM, "out of memory");
            goto fail;
        }
    *out = k;
    return 0;
fail:
    ls_age_keys_free(k);
    return rc;
}

void ls_age_keys_free(ls_age_keys *k)
{
    if (!k)
        return;
    if (k->ids)
        OPENSSL_cleanse(k->ids, k->nid * 32);
    free(k->ids);
    free(k->id_pubs);
    free(k->rcpts);
    free(k);
}

size_t ls_age_keys_identities(const ls_age_keys *k)
{
    return k ? k->nid : 0;
}

/* ---- payload keys and chunk nonces ---- */

/* The payload key of file key fk and the payload nonce. 0 or -1. */
static int payload_key(const uint8_t fk[FILE_KEY], const uint8_t nonce[16], uint8_t key[32])
{
    return hkdf(nonce, 16, fk, FILE_KEY, "payload", key, 32);
}

/* The nonce of chunk `counter`: 11-byte big-endian counter, then the last flag. */
static void chunk_nonce(uint64_t counter, int last, uint8_t nonce[12])
{
    memset(nonce, 0, 12);
    for (int i = 0; i < 8; i++)
        nonce[10 - i] = (uint8_t)(counter >> (8 * i));
    nonce[11] = last ? 1 : 0;
}

/* ---- the encrypting reader ---- */

struct ls_age_reader {
    ls_ctx *ctx;
    ls_reader *src;              /* the plaintext */
    EVP_CIPHER_CTX *c;
    uint8_t key[32];             /* payload key */
    uint8_t *pt;                 /* CHUNK + 1 bytes: a chunk and the byte that proves
                                    another follows */
    size_t npt;                  /* plaintext bytes held */
    uint8_t *out;                /* bytes ready to hand out: the header and nonce, then
                                    one sealed chunk at a time */
    size_t nout, pos;            /* held, handed out */
    size_t outcap;
    uint64_t counter;            /* the next chunk's number */
    int done;                    /* the last chunk is in out */
    int err;                     /* sticky failure */
};

/* One X25519 stanza wrapping fk for recipient pub, appended to h. 0 or -1 / LS_ENOMEM. */
static int stanza_write(ls_buf *h, const uint8_t fk[FILE_KEY], const uint8_t pub[32],
                        EVP_CIPHER_CTX *c)
{
    uint8_t e[32], E[32], shared[32], salt[64], wrap[32], body[FILE_KEY + TAG];
    static const uint8_t zero[12];
    char line[160], b1[64], b2[64];
    int rc = -1;
    if (ls_random_bytes(e, sizeof(e)) != 0 || ls_age_public_of(e, E) != 0 || x25519(e, pub, shared))
        goto cleanup;
    memcpy(salt, E, 32);
    memcpy(salt + 32, pub, 32);
    if (hkdf(salt, sizeof(salt), shared, 32, X25519_INFO, wrap, 32) ||
        aead(c, 1, wrap, zero, fk, FILE_KEY, body))
        goto cleanup;
    b64_enc(E, 32, b1);
    b64_enc(body, sizeof(body), b2);
    snprintf(line, sizeof(line), "-> X25519 %s\n%s\n", b1, b2);
    rc = ls_buf_add(h, line, strlen(line)) ? LS_ENOMEM : 0;
cleanup:
    OPENSSL_cleanse(e, sizeof(e));
    OPENSSL_cleanse(shared, sizeof(shared));
    OPENSSL_cleanse(wrap, sizeof(wrap));
    return rc;
}

/* The header and payload nonce of a new object into h; the payload key into key. */
static int header_write(ls_ctx *ctx, const ls_age_keys *k, EVP_CIPHER_CTX *c, ls_buf *h,
                        uint8_t key[32])
{
    uint8_t fk[FILE_KEY], mac[32], nonce[16];
    char b[64];
    int rc = ls_random_bytes(fk, sizeof(fk)) ? -1 : 0;
    if (!rc && ls_buf_add(h, LS_AGE_MAGIC, strlen(LS_AGE_MAGIC)))
        rc = LS_ENOMEM;
    for (size_t i = 0; !rc && i < k->nrcpt; i++)
        rc = stanza_write(h, fk, k->rcpts[i], c);
    if (!rc && ls_buf_add(h, "---", 3))
        rc = LS_ENOMEM;
    if (!rc && (header_mac(fk, h->p, h->n, mac) || ls_random_bytes(nonce, sizeof(nonce)) ||
                payload_key(fk, nonce, key)))
        rc = -1;
    if (!rc) {
        b64_enc(mac, sizeof(mac), b);
        if (ls_buf_add(h, " ", 1) || ls_buf_add(h, b, strlen(b)) || ls_buf_add(h, "\n", 1) ||
            ls_buf_add(h, nonce, sizeof(nonce)))
            rc = LS_ENOMEM;
    }
    OPENSSL_cleanse(fk, sizeof(fk));
    if (rc == LS_ENOMEM)
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    if (rc)
        return ls_err(ctx, LS_ERROR, "age: encryption failed (libcrypto)");
    return 0;
}

/* Seal the held plaintext's first n bytes as chunk `counter` into out. */
static int seal_chunk(ls_age_reader *a, size_t n, int last)
{
    uint8_t nonce[12];
    chunk_nonce(a->counter, last, nonce);
    if (aead(a->c, 1, a->key, nonce, a->pt, n, a->out))
        return a->err = ls_err(a->ctx, LS_ERROR, "age: encryption failed (libcrypto)");
    a->nout = n + TAG;
    a->pos = 0;
    a->counter++;
    a->done = last;
    memmove(a->pt, a->pt + n, a->npt - n);
    a->npt -= n;
    return 0;
}

/* Fill the plaintext buffer; seal a chunk once it is known whether it is the last. */
static int next_chunk(ls_age_reader *a)
{
    while (a->npt < CHUNK + 1) {
        int64_t got = a->src->read(a->src->ud, a->pt + a->npt, CHUNK + 1 - a->npt);
        if (got < 0)
            return a->err = (int)got;
        if (got == 0)
            return seal_chunk(a, a->npt, 1);
        a->npt += (size_t)got;
    }
    return seal_chunk(a, CHUNK, 0);
}

static int64_t age_read(void *ud, uint8_t *buf, size_t n)
{
    ls_age_reader *a = ud;
    while (!a->err && a->pos == a->nout && !a->done)
        next_chunk(a);
    if (a->err)
        return a->err;
    size_t m = a->nout - a->pos < n ? a->nout - a->pos : n;
    memcpy(buf, a->out + a->pos, m);
    a->pos += m;
    return (int64_t)m;
}

int ls_age_reader_new(ls_ctx *ctx, const ls_age_keys *k, ls_reader *src, ls_age_reader **out,
                      ls_reader *as_reader)
{
    ls_buf h = {0};
    int rc;
    *out = NULL;
    if (!k || !k->nrcpt)
        return ls_err(ctx, LS_EUSAGE, "age: no recipient to encrypt to");
    ls_age_reader *a = calloc(1, sizeof(*a));
    if (!a || !(a->c = EVP_CIPHER_CTX_new()) || !(a->pt = malloc(CHUNK + 1))) {
        ls_age_reader_free(a);
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    }
    a->ctx = ctx;
    a->src = src;
    if ((rc = header_write(ctx, k, a->c, &h, a->key)) != 0) {
        ls_buf_free(&h);
        ls_age_reader_free(a);
        return rc;
    }
    /* The header goes out first from its own buffer, grown to hold a sealed chunk. */
    a->outcap = h.n > CHUNK + TAG ? h.n : CHUNK + TAG;
    if (!(a->out = malloc(a->outcap))) {
        ls_buf_free(&h);
        ls_age_reader_free(a);
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    }
    memcpy(a->out, h.p, h.n);
    a->nout = h.n;
    ls_buf_free(&h);
    as_reader->read = age_read;
    as_reader->ud = a;
    as_reader->size = -1;
    *out = a;
    return 0;
}

void ls_age_reader_free(ls_age_reader *a)
{
    if (!a)
        return;
    OPENSSL_cleanse(a->key, sizeof(a->key));
    EVP_CIPHER_CTX_free(a->c);
    free(a->pt);
    free(a->out);
    free(a);
}

/* ---- the decrypting writer ---- */

enum { W_HEADER, W_NONCE, W_BODY };

struct ls_age_writer {
    ls_ctx *ctx;
    const ls_age_keys *k;
    ls_writer *dst;              /* the plaintext goes here */
    EVP_CIPHER_CTX *c;
    int state;                   /* W_* */
    ls_buf hdr;                  /* W_HEADER: the bytes so far */
    size_t scan;                 /* where the search for the MAC line resumes */
    uint8_t nonce[16];           /* W_NONCE: the payload nonce */
    size_t nnonce;
    uint8_t key[32];             /* payload key */
    uint8_t *ct;                 /* CHUNK + TAG: the chunk being received */
    size_t nct;
    uint8_t *pt;                 /* CHUNK: its plaintext */
    uint64_t counter;            /* the number of the chunk in ct */
    int err;                     /* sticky failure */
};

/* The stanza lines' grammar: "-> " then arguments of visible ASCII, one space apart. */
static int split_args(const char *s, size_t n, const char **arg, size_t *len, size_t max,
                      size_t *nargs)
{
    size_t i = 0;
    *nargs = 0;
    while (i < n) {
        size_t st = i;
        while (i < n && s[i] != ' ') {
            if (s[i] < 33 || s[i] > 126)
                return -1;
            i++;
        }
        if (i == st || *nargs == max)
            return -1;
        arg[*nargs] = s + st;
        len[(*nargs)++] = i - st;
        if (i < n && ++i == n)
            return -1; /* a trailing space */
    }
    return *nargs ? 0 : -1;
}

/* Try every identity on one X25519 stanza; 1 with the file key in fk when one fits. */
static int stanza_open(ls_age_writer *a, const uint8_t E[32], const uint8_t body[32],
                       uint8_t fk[FILE_KEY])
{
    static const uint8_t zero[12];
    uint8_t shared[32], salt[64], wrap[32];
    int found = 0;
    memcpy(salt, E, 32);
    for (size_t i = 0; !found && i < a->k->nid; i++) {
        memcpy(salt + 32, a->k->id_pubs[i], 32);
        if (x25519(a->k->ids[i], E, shared) == 0 &&
            hkdf(salt, sizeof(salt), shared, 32, X25519_INFO, wrap, 32) == 0 &&
            aead(a->c, 0, wrap, zero, body, 32, fk) == 0)
            found = 1;
    }
    OPENSSL_cleanse(shared, sizeof(shared));
    OPENSSL_cleanse(wrap, sizeof(wrap));
    return found;
}

/*
 * Read one stanza starting at *p (its "-> " line and body lines); unwrap fk
 * with an identity if it is X25519 and none did yet. 0 or -1 (malformed).
 */
static int stanza_read(ls_age_writer *a, const char **p, const char *end, uint8_t fk[FILE_KEY],
                       int *have, int *x25519_seen)
{
    const char *arg[8], *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t alen[8], nargs;
    uint8_t body[4096], E[32];
    size_t nbody = 0;
    if (!nl || split_args(*p + 3, (size_t)(nl - *p - 3), arg, alen, 8, &nargs) != 0)
        return -1;
    for (*p = nl + 1;;) { /* body lines: 64 columns each, the last one shorter */
        if (!(nl = memchr(*p, '\n', (size_t)(end - *p))) || nl - *p > 64)
            return -1;
        long m = b64_dec(*p, (size_t)(nl - *p), body + nbody, sizeof(body) - nbody);
        size_t cols = (size_t)(nl - *p);
        *p = nl + 1;
        if (m < 0)
            return -1;
        nbody += (size_t)m;
        if (cols < 64)
            break;
    }
    if (alen[0] != 6 || memcmp(arg[0], "X25519", 6) != 0)
        return 0; /* another kind of recipient, or grease */
    *x25519_seen = 1;
    if (nargs != 2 || nbody != 32 || alen[1] != 43 || b64_dec(arg[1], 43, E, 32) != 32)
        return -1;
    if (!*have && a->k && stanza_open(a, E, body, fk))
        *have = 1;
    return 0;
}

/* Parse and check the header h[0..n) (it ends with the MAC line); derive nothing yet. */
static int header_read(ls_age_writer *a, const char *h, size_t n, uint8_t fk[FILE_KEY])
{
    const char *p = h + strlen(LS_AGE_MAGIC), *end = h + n;
    int have = 0, seen = 0;
    uint8_t mac[32], want[32];
    while (end - p >= 3 && memcmp(p, "-> ", 3) == 0)
        if (stanza_read(a, &p, end, fk, &have, &seen) != 0)
            return ls_err(a->ctx, LS_ECORRUPT, "age: malformed header (bad stanza)");
    if (end - p != 4 + 43 + 1 || memcmp(p, "--- ", 4) != 0 ||
        b64_dec(p + 4, 43, mac, sizeof(mac)) != 32)
        return ls_err(a->ctx, LS_ECORRUPT, "age: malformed header");
    if (!seen)
        return ls_err(a->ctx, LS_EPERM, "age: the object has no X25519 recipient (encrypted "
                      "with a passphrase or another kind of key)");
    if (!ls_age_keys_identities(a->k))
        return ls_err(a->ctx, LS_EPERM, "age: the object is encrypted and no age identity is "
                      "configured (age: identities or identity-files)");
    if (!have)
        return ls_err(a->ctx, LS_EPERM, "age: no configured identity matches a recipient of "
                      "the object (wrong age identity)");
    if (header_mac(fk, (const uint8_t *)h, (size_t)(p + 3 - h), want) != 0)
        return ls_err(a->ctx, LS_ERROR, "age: decryption failed (libcrypto)");
    if (CRYPTO_memcmp(mac, want, 32) != 0)
        return ls_err(a->ctx, LS_ECORRUPT, "age: header MAC mismatch (the header was modified)");
    return 0;
}

/* The first bytes are not age's: say what they are. */
static int not_age(ls_age_writer *a)
{
    static const uint8_t lz4[4] = {0x04, 0x22, 0x4d, 0x18};
    const uint8_t *p = a->hdr.p;
    if (a->hdr.n >= 4 && memcmp(p, lz4, 4) == 0)
        return ls_err(a->ctx, LS_ECORRUPT, "age: the object is not encrypted (a plain LZ4 "
                      "frame) but the replica is configured with age keys");
    if (a->hdr.n >= 11 && memcmp(p, "-----BEGIN ", 11) == 0)
        return ls_err(a->ctx, LS_ECORRUPT, "age: ASCII-armored age objects are not supported");
    return ls_err(a->ctx, LS_ECORRUPT, "age: not an age-encrypted object (bad header)");
}

/* Take header bytes; at the end of the header, parse it and pass the rest on. */
static int take_header(ls_age_writer *a, const uint8_t *buf, size_t n, size_t *used)
{
    size_t ml = strlen(LS_AGE_MAGIC), old = a->hdr.n, end = 0;
    if (ls_buf_add(&a->hdr, buf, n) != 0)
        return ls_err(a->ctx, LS_ENOMEM, "out of memory");
    const char *h = (const char *)a->hdr.p;
    if (memcmp(h, LS_AGE_MAGIC, a->hdr.n < ml ? a->hdr.n : ml) != 0) {
        if (a->hdr.n < 4 && memcmp(h, "\x04\x22\x4d\x18", a->hdr.n) == 0) {
            *used = n; /* maybe LZ4's magic: wait for all of it to say so */
            return 0;
        }
        return not_age(a);
    }
    size_t i = a->scan;
    for (; i + 4 < a->hdr.n; i++) {
        if (memcmp(h + i, "\n--- ", 5) != 0)
            continue;
        const char *nl = memchr(h + i + 1, '\n', a->hdr.n - i - 1);
        if (nl)
            end = (size_t)(nl - h) + 1;
        break; /* without a newline, the MAC line is still arriving */
    }
    if (!end) {
        *used = n;
        a->scan = i; /* the MAC line's start, or where a "\n--- " may still begin */
        if (a->hdr.n > HEADER_MAX)
            return ls_err(a->ctx, LS_ECORRUPT, "age: malformed header (longer than 1 MiB)");
        return 0;
    }
    uint8_t fk[FILE_KEY];
    int rc = header_read(a, h, end, fk);
    if (!rc) {
        memcpy(a->key, fk, FILE_KEY); /* kept until the nonce arrives */
        a->state = W_NONCE;
    }
    OPENSSL_cleanse(fk, sizeof(fk));
    *used = end - old;
    ls_buf_free(&a->hdr);
    return rc;
}

/* Open chunk ct[0..nct) as number `counter` and pass its plaintext on. */
static int open_chunk(ls_age_writer *a, int last)
{
    uint8_t nonce[12];
    chunk_nonce(a->counter, last, nonce);
    if (a->nct < TAG || aead(a->c, 0, a->key, nonce, a->ct, a->nct, a->pt) != 0) {
        if (last)
            return ls_err(a->ctx, LS_ECORRUPT, "age: the last chunk (%llu) does not "
                          "authenticate: the object is truncated or was modified",
                          (unsigned long long)a->counter);
        return ls_err(a->ctx, LS_ECORRUPT, "age: chunk %llu does not authenticate: the object "
                      "was modified", (unsigned long long)a->counter);
    }
    size_t n = a->nct - TAG;
    if (last && n == 0 && a->counter > 0)
        return ls_err(a->ctx, LS_ECORRUPT, "age: malformed payload (an empty last chunk)");
    a->counter++;
    a->nct = 0;
    return n ? a->dst->write(a->dst->ud, a->pt, n) : 0;
}

static int age_write(void *ud, const uint8_t *buf, size_t n)
{
    ls_age_writer *a = ud;
    while (n && !a->err) {
        size_t m = 0;
        if (a->state == W_HEADER) {
            a->err = take_header(a, buf, n, &m);
        } else if (a->state == W_NONCE) {
            m = 16 - a->nnonce < n ? 16 - a->nnonce : n;
            memcpy(a->nonce + a->nnonce, buf, m);
            if ((a->nnonce += m) == 16) {
                uint8_t fk[FILE_KEY];
                memcpy(fk, a->key, FILE_KEY);
                if (payload_key(fk, a->nonce, a->key) != 0)
                    a->err = ls_err(a->ctx, LS_ERROR, "age: decryption failed (libcrypto)");
                OPENSSL_cleanse(fk, sizeof(fk));
                a->state = W_BODY;
            }
        } else if (a->nct == CHUNK + TAG) {
            a->err = open_chunk(a, 0); /* more follows: it was not the last */
        } else {
            m = CHUNK + TAG - a->nct < n ? CHUNK + TAG - a->nct : n;
            memcpy(a->ct + a->nct, buf, m);
            a->nct += m;
        }
        buf += m;
        n -= m;
    }
    return a->err;
}

int ls_age_writer_finish(ls_age_writer *a)
{
    if (a->err)
        return a->err;
    if (a->state == W_HEADER && a->hdr.n == 0)
        return a->err = ls_err(a->ctx, LS_ECORRUPT, "age: empty object (not age-encrypted)");
    if (a->state != W_BODY || a->nct < TAG)
        return a->err = ls_err(a->ctx, LS_ECORRUPT, "age: truncated object (it ends inside "
                               "the %s)", a->state == W_HEADER ? "header"
                               : a->state == W_NONCE ? "payload nonce" : "payload");
    return a->err = open_chunk(a, 1);
}

int ls_age_writer_new(ls_ctx *ctx, const ls_age_keys *k, ls_writer *dst, ls_age_writer **out,
                      ls_writer *as_writer)
{
    *out = NULL;
    ls_age_writer *a = calloc(1, sizeof(*a));
    if (!a || !(a->c = EVP_CIPHER_CTX_new()) || !(a->ct = malloc(CHUNK + TAG)) ||
        !(a->pt = malloc(CHUNK))) {
        ls_age_writer_free(a);
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    }
    a->ctx = ctx;
    a->k = k;
    a->dst = dst;
    as_writer->write = age_write;
    as_writer->ud = a;
    *out = a;
    return 0;
}

void ls_age_writer_free(ls_age_writer *a)
{
    if (!a)
        return;
    OPENSSL_cleanse(a->key, sizeof(a->key));
    EVP_CIPHER_CTX_free(a->c);
    ls_buf_free(&a->hdr);
    if (a->pt)
        OPENSSL_cleanse(a->pt, CHUNK);
    free(a->pt);
    free(a->ct);
    free(a);
}

/* ---- the storage wrapper ---- */

typedef struct age_storage {
    ls_storage base;
    ls_storage *inner;          /* the backend (the retrying wrapper, in the engine) */
    ls_age_keys *keys;          /* owned */
} age_storage;

static void a_close(ls_storage *s);

static int a_put(ls_storage *s, ls_ctx *ctx, const char *key, ls_reader *r)
{
    age_storage *as = (age_storage *)s;
    ls_age_reader *ar = NULL;
    ls_reader enc;
    int rc = ls_age_reader_new(ctx, as->keys, r, &ar, &enc);
    if (rc)
        return ls_storage_err(s, ctx, rc, "put", key, NULL);
    rc = as->inner->put(as->inner, ctx, key, &enc);
    ls_age_reader_free(ar);
    return rc;
}

/* A writer passing on only bytes [skip, skip + left) of what it takes (left < 0: all). */
typedef struct range_sink {
    ls_writer *w;
    uint64_t skip;
    int64_t left;
} range_sink;

static int range_write(void *ud, const uint8_t *buf, size_t n)
{
    range_sink *rs = ud;
    size_t drop = rs->skip < n ? (size_t)rs->skip : n;
    rs->skip -= drop;
    buf += drop;
    n -= drop;
    if (rs->left >= 0 && (uint64_t)rs->left < n)
        n = (size_t)rs->left;
    if (rs->left >= 0)
        rs->left -= (int64_t)n;
    return n ? rs->w->write(rs->w->ud, buf, n) : 0;
}

/* Objects are decrypted from their start; a range is cut from the plaintext. */
static int a_get(ls_storage *s, ls_ctx *ctx, const char *key, uint64_t off, int64_t len,
                 ls_writer *w)
{
    age_storage *as = (age_storage *)s;
    range_sink rs = {w, off, len};
    ls_writer rw = {range_write, &rs}, dw;
    ls_age_writer *aw = NULL;
    int rc = ls_age_writer_new(ctx, as->keys, off || len >= 0 ? &rw : w, &aw, &dw);
    if (!rc)
        rc = as->inner->get(as->inner, ctx, key, 0, -1, &dw);
    if (!rc && (rc = ls_age_writer_finish(aw)) != 0)
        rc = ls_storage_err(s, ctx, rc, "get", key, NULL);
    ls_age_writer_free(aw);
    return rc;
}

static int a_list(ls_storage *s, ls_ctx *ctx, const char *prefix, ls_obj_list *out)
{
    age_storage *as = (age_storage *)s;
    return as->inner->list(as->inner, ctx, prefix, out);
}

static int a_stat(ls_storage *s, ls_ctx *ctx, const char *key, ls_obj *out)
{
    age_storage *as = (age_storage *)s;
    return as->inner->stat(as->inner, ctx, key, out);
}

static int a_del(ls_storage *s, ls_ctx *ctx, const char *const *keys, size_t n)
{
    age_storage *as = (age_storage *)s;
    return as->inner->del(as->inner, ctx, keys, n);
}

static void a_close(ls_storage *s)
{
    age_storage *as = (age_storage *)s;
    ls_storage_close(as->inner);
    ls_age_keys_free(as->keys);
    free(as);
}

int ls_storage_age_open(ls_ctx *ctx, ls_storage *inner, ls_age_keys *keys, ls_storage **out)
{
    *out = NULL;
    age_storage *as = calloc(1, sizeof(*as));
    if (!as) {
        ls_storage_close(inner);
        ls_age_keys_free(keys);
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    }
    ls_storage_init(&as->base, inner->type, inner->name, inner->desc);
    as->inner = inner;
    as->keys = keys;
    as->base.put = a_put;
    as->base.get = a_get;
    as->base.list = a_list;
    as->base.stat = a_stat;
    as->base.del = a_del;
    as->base.close = a_close;
    /* A range is served by decrypting from the start: parallel ranges would
     * each decrypt what precedes them, so restore reads such an object whole. */
    as->base.caps = LS_STORAGE_CAP_WHOLE_GETS;
    *out = &as->base;
    return 0;
}

int ls_storage_age_readable(ls_storage *s)
{
    return !s || s->close != a_close || ls_age_keys_identities(((age_storage *)s)->keys) > 0;
}

ls_storage *ls_storage_age_inner(ls_storage *s)
{
    return s && s->close == a_close ? ((age_storage *)s)->inner : s;
}
