/*
 * fuzz_age.c - the age reader on any bytes: the input as an encrypted
 * object, decrypted by ls_age_writer (fed in odd chunk sizes) with the fixed
 * test identity below; the input as the text of identities and of
 * recipients (ls_age_keys_load, the parser of `age -i` / `age -R` texts);
 * and the input as plaintext, encrypted by ls_age_reader to that identity
 * and decrypted back, which must give the input again.
 *
 * Seeds (corpus/fuzz_age): objects encrypted by the `age` command (1.x) to
 * the recipient of FUZZ_IDENTITY (age-small, -empty, -two-chunks: 65540
 * bytes, -armored: refused, -two-recipients, -other-recipient: no matching
 * stanza, -ls-segment: a litesafe segment), objects written by `litesafe
 * replicate` with `age: identity-files:` of that identity (ls-encrypted-*),
 * the identity file from age-keygen and a recipients file (keys-*), plus
 * regress-* inputs of findings. tests/fuzz/seeds_store.sh remakes them
 * (with a new identity: paste its secret key here).
 */
#include "age.h"
#include "fuzz_store.h"

#include <litesafe.h>

/* Test material only: the identity the seeds are encrypted to (age-keygen). */
#define FUZZ_IDENTITY "AGE-SECRET-KEY-17EUMCUUGP58LFF3KYTJG74ULURZXW5P0HQ8F7KF52JDJAY023V9Q93DRW4"

/* Decrypt [data, size) with k in odd chunks into *out. Returns 0 or the LS_E* code. */
static int decrypt(ls_ctx *ctx, const ls_age_keys *k, const uint8_t *data, size_t size,
                   ls_buf *out)
{
    ls_writer sink = {fuzz_collect, out}, in;
    ls_age_writer *a = NULL;
    int rc = ls_age_writer_new(ctx, k, &sink, &a, &in);
    if (rc == 0)
        rc = fuzz_feed(&in, data, size);
    if (rc == 0)
        rc = ls_age_writer_finish(a);
    ls_age_writer_free(a);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ls_ctx *ctx;
    static ls_age_keys *keys;
    if (!ctx && ls_ctx_new(&ctx) != 0)
        return 0;
    if (!keys) {
        char *ids[] = {FUZZ_IDENTITY};
        ls_age_opts o = {.what = "fuzz", .identities = ids, .n_identities = 1};
        if (ls_age_keys_load(ctx, &o, &keys) != 0)
            return 0;
    }

    /* 1. The input as an encrypted object. */
    ls_buf plain = {0};
    decrypt(ctx, keys, data, size, &plain);
    ls_buf_free(&plain);
    ls_err_clear(ctx);

    /* 2. The input as key texts, identities then recipients. */
    char *text = fuzz_text(data, size);
    if (!text)
        return 0;
    for (int as_recipients = 0; as_recipients < 2; as_recipients++) {
        ls_age_opts o = {.what = "fuzz"};
        if (as_recipients) {
            o.recipients = &text;
            o.n_recipients = 1;
        } else {
            o.identities = &text;
            o.n_identities = 1;
        }
        ls_age_keys *k = NULL;
        if (ls_age_keys_load(ctx, &o, &k) == 0 && !k)
            abort(); /* a text that parses names at least one key */
        ls_age_keys_free(k);
        ls_err_clear(ctx);
    }
    free(text);

    /* 3. The input as plaintext: encrypted in odd reads, it decrypts to itself. */
    ls_mem_src ms;
    ls_reader src, enc;
    ls_reader_mem(&src, &ms, data, size);
    ls_age_reader *r = NULL;
    ls_buf obj = {0};
    if (ls_age_reader_new(ctx, keys, &src, &r, &enc) == 0) {
        if (fuzz_drain(&enc, &obj) != 0)
            abort();
        if (decrypt(ctx, keys, obj.p, obj.n, &plain) != 0 || plain.n != size ||
            (size && memcmp(plain.p, data, size) != 0))
            abort();
        ls_buf_free(&plain);
    }
    ls_age_reader_free(r);
    ls_buf_free(&obj);
    ls_err_clear(ctx);
    return 0;
}
