/*
 * age.h - encryption at rest in the age v1 format (age-encryption.org/v1,
 * X25519 recipients only), the format Litestream 0.3 wraps its objects in:
 * a replica object is age(LZ4 frame). Three layers:
 *   - keys: X25519 identities (AGE-SECRET-KEY-1...) and recipients
 *     (age1...), parsed from texts as `age -i` / `age -R` files hold them
 *     (one per line, '#' comments and empty lines skipped), or from files;
 *   - the streams: an encrypting ls_reader and a decrypting ls_writer, in
 *     bounded memory (one 64 KiB chunk each way);
 *   - a storage wrapper that encrypts every put and decrypts every get of
 *     the backend it wraps (it sits outside the retrying wrapper, so a
 *     resumed get continues the ciphertext where it stopped).
 * Secrets (identities, file keys) are wiped when freed and never appear in
 * a message or a log line; a message may name a recipient (public).
 */
#ifndef LS_AGE_H
#define LS_AGE_H

#include "storage.h"

/* The first line of every age v1 object. */
#define LS_AGE_MAGIC "age-encryption.org/v1\n"

/* Where keys come from; every list may be empty. */
typedef struct ls_age_opts {
    const char *what;                   /* names the owner in messages ("replica s3") */
    char *const *identities;            /* texts holding AGE-SECRET-KEY-1... lines */
    size_t n_identities;
    char *const *identity_files;        /* files holding such lines (age -i) */
    size_t n_identity_files;
    char *const *recipients;            /* texts holding age1... lines */
    size_t n_recipients;
    char *const *recipient_files;       /* files holding such lines (age -R) */
    size_t n_recipient_files;
} ls_age_opts;

/* A set of parsed keys (opaque). */
typedef struct ls_age_keys ls_age_keys;

/*
 * Parse every key o names into *out. With identities but no recipients,
 * objects are encrypted to the identities' own public keys. A text or file
 * with no key, or a line that is not an X25519 key, is LS_EUSAGE naming
 * the list, the entry and the line (never the line's text); an unreadable
 * file is the errno's code naming the file. *out is NULL when o names no
 * key at all (no encryption).
 */
int ls_age_keys_load(ls_ctx *ctx, const ls_age_opts *o, ls_age_keys **out);
/* Wipe and free; NULL is a no-op. */
void ls_age_keys_free(ls_age_keys *k);
/* How many identities (0: objects can be written but not read back). */
size_t ls_age_keys_identities(const ls_age_keys *k);

/*
 * Bech32 forms of a 32-byte key: "age1..." for a public key and
 * "AGE-SECRET-KEY-1..." for a private one (out: at least 96 bytes).
 * ls_age_public_of computes the public key of a private one. For key
 * generation in tests and tools. Return 0, or LS_ERROR when libcrypto fails.
 */
void ls_age_recipient_str(const uint8_t pub[32], char *out, size_t outsz);
void ls_age_identity_str(const uint8_t priv[32], char *out, size_t outsz);
int ls_age_public_of(const uint8_t priv[32], uint8_t pub[32]);

typedef struct ls_age_reader ls_age_reader;
/*
 * A reader that yields the age encryption of everything `src` yields, to
 * every recipient of k (a new random file key per object). Size -1. A
 * failure of `src` is passed on with its code; the first failure is sticky.
 */
int ls_age_reader_new(ls_ctx *ctx, const ls_age_keys *k, ls_reader *src, ls_age_reader **out,
                      ls_reader *as_reader);
void ls_age_reader_free(ls_age_reader *a);

typedef struct ls_age_writer ls_age_writer;
/*
 * A writer that takes an age object in chunks of any size and passes the
 * plaintext to `dst`, one authenticated chunk at a time (nothing is passed
 * on before its chunk verifies). Failures (sticky): LS_EPERM when k has no
 * identity or none matches a recipient of the object; LS_ECORRUPT for an
 * object that is not age (a plain LZ4 frame says so), a malformed header,
 * a header MAC or chunk that does not authenticate. ls_age_writer_finish()
 * fails with LS_ECORRUPT when the object ended early (truncated).
 */
int ls_age_writer_new(ls_ctx *ctx, const ls_age_keys *k, ls_writer *dst, ls_age_writer **out,
                      ls_writer *as_writer);
int ls_age_writer_finish(ls_age_writer *a);
void ls_age_writer_free(ls_age_writer *a);

/*
 * Wrap `inner` (owned from now on, also on failure) so that every object
 * put is encrypted to the recipients of `keys` and every get decrypts with
 * its identities (`keys` is owned too). A ranged get decrypts from the
 * start and skips to the range. list/stat report stored (encrypted) sizes.
 * Type, name and desc are the inner backend's.
 */
int ls_storage_age_open(ls_ctx *ctx, ls_storage *inner, ls_age_keys *keys, ls_storage **out);
/* 1 if gets of s can be decrypted (not an age wrapper, or one with an identity). */
int ls_storage_age_readable(ls_storage *s);
/* The backend an age wrapper wraps; s itself for any other backend. */
ls_storage *ls_storage_age_inner(ls_storage *s);

#endif
