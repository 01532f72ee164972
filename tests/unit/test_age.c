/*
 * test_age.c - the age v1 framing (src/storage/age.c): round trips at the
 * chunk boundaries (0, 1, 65535, 65536, 65537 bytes and more) with odd
 * piece sizes on both sides, several recipients, and every failure: wrong
 * identity, no identity, a tampered chunk, header or MAC, truncation at
 * each part, a plain LZ4 frame; key parsing (comments, files, bad lines,
 * no key in messages); interop with Debian's age and age-keygen in both
 * directions; the storage wrapper over the file backend (ranges, stored
 * objects are age) and over the retrying wrapper (a get cut short resumes
 * the ciphertext; the counts are the backend's).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "age.h"
#include "io.h"
#include "random.h"
#include "storage_test.h"
#include "stream.h"
#include "unit_files.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AGE_CLI "/usr/bin/age"
#define KEYGEN_CLI "/usr/bin/age-keygen"

typedef struct fixture {
    char dir[64];        /* temp directory for files shared with the age tool */
    ls_ctx *ctx;
    char id[2][128];     /* two identities (AGE-SECRET-KEY-1...) */
    char rc[2][128];     /* and their recipients (age1...) */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/ls-unit-age-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(ls_ctx_new(&f->ctx), 0);
    for (int i = 0; i < 2; i++) {
        uint8_t priv[32], pub[32];
        assert_int_equal(ls_random_bytes(priv, 32), 0);
        assert_int_equal(ls_age_public_of(priv, pub), 0);
        ls_age_identity_str(priv, f->id[i], sizeof(f->id[i]));
        ls_age_recipient_str(pub, f->rc[i], sizeof(f->rc[i]));
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    ls_ctx_free(f->ctx);
    free(f);
    return 0;
}

/* ---- helpers ---- */

static const size_t odd_sizes[] = {1, 7, 4093, 65536, 3, 100000, 65535, 17};
#define N_ODD (sizeof(odd_sizes) / sizeof(odd_sizes[0]))

/* Keys from texts: identities and recipients (either list may be NULL). */
static ls_age_keys *keys_of(fixture *f, const char *id, const char *r1, const char *r2)
{
    char *ids[1] = {(char *)id}, *rs[2] = {(char *)r1, (char *)r2};
    ls_age_opts o = {.what = "test", .identities = ids, .n_identities = id ? 1 : 0,
                     .recipients = rs, .n_recipients = r2 ? 2 : r1 ? 1 : 0};
    ls_age_keys *k = NULL;
    assert_int_equal(ls_age_keys_load(f->ctx, &o, &k), 0);
    return k;
}

/* Encrypt p[0..n) to k's recipients, reading the result in odd pieces. */
static void encrypt(fixture *f, const ls_age_keys *k, const uint8_t *p, size_t n, ls_buf *out)
{
    ls_mem_src ms;
    ls_reader src, enc;
    ls_age_reader *a = NULL;
    ls_reader_mem(&src, &ms, p, n);
    assert_int_equal(ls_age_reader_new(f->ctx, k, &src, &a, &enc), 0);
    uint8_t *buf = malloc(100000);
    for (size_t turn = 0;; turn++) {
        int64_t got = enc.read(enc.ud, buf, odd_sizes[turn % N_ODD]);
        assert_true(got >= 0);
        if (got == 0)
            break;
        assert_int_equal(ls_buf_add(out, buf, (size_t)got), 0);
    }
    free(buf);
    ls_age_reader_free(a);
}

/* Decrypt c[0..n) in odd pieces into out; the first failure's code. */
static int decrypt(fixture *f, const ls_age_keys *k, const uint8_t *c, size_t n, ls_buf *out)
{
    ls_writer dst, dec;
    ls_age_writer *a = NULL;
    ls_writer_buf(&dst, out);
    assert_int_equal(ls_age_writer_new(f->ctx, k, &dst, &a, &dec), 0);
    int rc = 0;
    for (size_t pos = 0, turn = 0; pos < n && !rc; turn++) {
        size_t m = odd_sizes[turn % N_ODD] < n - pos ? odd_sizes[turn % N_ODD] : n - pos;
        rc = dec.write(dec.ud, c + pos, m);
        pos += m;
    }
    if (!rc)
        rc = ls_age_writer_finish(a);
    ls_age_writer_free(a);
    return rc;
}

/* ---- round trips ---- */

static void test_roundtrip_sizes(void **state)
{
    fixture *f = *state;
    static const size_t sizes[] = {0, 1, 65535, 65536, 65537, 2 * 65536, 300001};
    ls_age_keys *k = keys_of(f, f->id[0], NULL, NULL); /* encrypts to itself */
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint8_t *p = noise_bytes(sizes[i], (uint32_t)i + 1);
        ls_buf c = {0}, d = {0};
        encrypt(f, k, p, sizes[i], &c);
        /* header, nonce, then ceil(n / 64 KiB) chunks (one when empty), 16-byte tags */
        size_t chunks = sizes[i] ? (sizes[i] + 65535) / 65536 : 1;
        const char *mac = strstr((const char *)c.p, "\n--- ");
        assert_non_null(mac);
        size_t hdr = (size_t)(mac - (const char *)c.p) + 5 + 43 + 1;
        assert_int_equal(c.n, hdr + 16 + sizes[i] + 16 * chunks);
        assert_memory_equal(c.p, LS_AGE_MAGIC, strlen(LS_AGE_MAGIC));
        assert_int_equal(decrypt(f, k, c.p, c.n, &d), 0);
        assert_int_equal(d.n, sizes[i]);
        if (sizes[i])
            assert_memory_equal(d.p, p, sizes[i]);
        ls_buf_free(&c);
        ls_buf_free(&d);
        free(p);
    }
    ls_age_keys_free(k);
}

static void test_two_recipients(void **state)
{
    fixture *f = *state;
    ls_age_keys *enc = keys_of(f, NULL, f->rc[0], f->rc[1]);
    assert_int_equal(ls_age_keys_identities(enc), 0);
    uint8_t *p = noise_bytes(70000, 9);
    ls_buf c = {0};
    encrypt(f, enc, p, 70000, &c);
    for (int i = 0; i < 2; i++) {
        ls_age_keys *dec = keys_of(f, f->id[i], NULL, NULL);
        ls_buf d = {0};
        assert_int_equal(decrypt(f, dec, c.p, c.n, &d), 0);
        assert_int_equal(d.n, 70000);
        assert_memory_equal(d.p, p, 70000);
        ls_buf_free(&d);
        ls_age_keys_free(dec);
    }
    /* No identity: refused, saying so. */
    ls_buf d = {0};
    assert_int_equal(decrypt(f, enc, c.p, c.n, &d), LS_EPERM);
    assert_non_null(strstr(ls_errmsg(f->ctx), "no age identity is configured"));
    assert_int_equal(d.n, 0);
    ls_buf_free(&d);
    ls_buf_free(&c);
    ls_age_keys_free(enc);
    free(p);
}

/* ---- failures ---- */

static void test_wrong_identity(void **state)
{
    fixture *f = *state;
    ls_age_keys *k0 = keys_of(f, f->id[0], NULL, NULL), *k1 = keys_of(f, f->id[1], NULL, NULL);
    uint8_t *p = noise_bytes(1000, 3);
    ls_buf c = {0}, d = {0};
    encrypt(f, k0, p, 1000, &c);
    assert_int_equal(decrypt(f, k1, c.p, c.n, &d), LS_EPERM);
    assert_non_null(strstr(ls_errmsg(f->ctx), "wrong age identity"));
    assert_null(strstr(ls_errmsg(f->ctx), "AGE-SECRET-KEY"));
    assert_int_equal(d.n, 0);
    ls_buf_free(&c);
    ls_buf_free(&d);
    ls_age_keys_free(k0);
    ls_age_keys_free(k1);
    free(p);
}

static void test_tamper_and_truncate(void **state)
{
    fixture *f = *state;
    ls_age_keys *k = keys_of(f, f->id[0], NULL, NULL);
    size_t n = 65537 + 65536;
    uint8_t *p = noise_bytes(n, 5);
    ls_buf c = {0};
    encrypt(f, k, p, n, &c);
    size_t hdr = (size_t)(strstr((const char *)c.p, "\n--- ") - (const char *)c.p) + 5 + 43 + 1;
    struct {
        size_t at;       /* byte to flip (or length to cut at) */
        int cut;         /* 1: truncate there, 0: flip a bit */
        int code;
        const char *msg;
    } cases[] = {
        {hdr + 16 + 10, 0, LS_ECORRUPT, "chunk 0 does not authenticate"},
        {hdr + 16 + 65552 + 5, 0, LS_ECORRUPT, "chunk 1 does not authenticate"},
        {c.n - 1, 0, LS_ECORRUPT, "last chunk (2) does not authenticate"},
        /* the MAC is base64: a flipped bit may leave no base64 character there
         * ("malformed header") or another MAC ("header MAC mismatch") */
        {hdr - 3, 0, LS_ECORRUPT, "header"},
        {3, 0, LS_ECORRUPT, "not an age-encrypted object"},
        {hdr + 5, 0, LS_ECORRUPT, "does not authenticate"}, /* the payload nonce */
        {10, 1, LS_ECORRUPT, "truncated object (it ends inside the header)"},
        {hdr + 8, 1, LS_ECORRUPT, "ends inside the payload nonce"},
        {hdr + 16 + 65552, 1, LS_ECORRUPT, "last chunk (0) does not authenticate"},
        {hdr + 16 + 2 * 65552, 1, LS_ECORRUPT, "last chunk (1) does not authenticate"},
        {c.n - 1, 1, LS_ECORRUPT, "last chunk (2) does not authenticate"},
        {0, 1, LS_ECORRUPT, "empty object"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t *m = malloc(c.n);
        memcpy(m, c.p, c.n);
        size_t len = c.n;
        if (cases[i].cut)
            len = cases[i].at;
        else
            m[cases[i].at] ^= 0x01;
        ls_buf d = {0};
        int rc = decrypt(f, k, m, len, &d);
        if (rc != cases[i].code || !strstr(ls_errmsg(f->ctx), cases[i].msg))
            fail_msg("case %zu: rc %d, message \"%s\"", i, rc, ls_errmsg(f->ctx));
        /* nothing unauthenticated was passed on: at most the chunks before the damage */
        assert_true(d.n % 65536 == 0);
        ls_buf_free(&d);
        free(m);
    }
    ls_buf_free(&c);
    ls_age_keys_free(k);
    free(p);
}

static void test_plain_lz4_refused(void **state)
{
    fixture *f = *state;
    ls_age_keys *k = keys_of(f, f->id[0], NULL, NULL);
    uint8_t *z = NULL;
    size_t zn = 0;
    assert_int_equal(ls_lz4_compress_buf(f->ctx, "hello", 5, &z, &zn), 0);
    ls_buf d = {0};
    assert_int_equal(decrypt(f, k, z, zn, &d), LS_ECORRUPT);
    assert_non_null(strstr(ls_errmsg(f->ctx), "not encrypted (a plain LZ4 frame)"));
    /* and the other way: an age object handed to the LZ4 reader says it is encrypted */
    ls_buf c = {0};
    encrypt(f, k, (const uint8_t *)"hello", 5, &c);
    uint8_t *out = NULL;
    size_t on = 0;
    assert_int_equal(ls_lz4_decompress_buf(f->ctx, c.p, c.n, &out, &on), LS_ECORRUPT);
    assert_non_null(strstr(ls_errmsg(f->ctx), "age-encrypted"));
    free(out);
    ls_buf_free(&c);
    ls_buf_free(&d);
    free(z);
    ls_age_keys_free(k);
}

/* ---- keys ---- */

static void test_key_parsing(void **state)
{
    fixture *f = *state;
    char text[512], path[128];
    snprintf(text, sizeof(text), "# created: today\r\n# public key: %s\n\n  %s  \n%s\n", f->rc[0],
             f->id[0], f->id[1]);
    snprintf(path, sizeof(path), "%s/ids.txt", f->dir);
    write_file(path, text, strlen(text));
    char *files[1] = {path}, *texts[1] = {text};
    ls_age_keys *k = NULL;
    ls_age_opts o = {.what = "replica r", .identity_files = files, .n_identity_files = 1};
    assert_int_equal(ls_age_keys_load(f->ctx, &o, &k), 0);
    assert_int_equal(ls_age_keys_identities(k), 2);
    ls_age_keys_free(k);
    ls_age_opts o2 = {.what = "replica r", .identities = texts, .n_identities = 1};
    assert_int_equal(ls_age_keys_load(f->ctx, &o2, &k), 0);
    assert_int_equal(ls_age_keys_identities(k), 2);
    ls_age_keys_free(k);
    /* lower case is accepted too (Bech32 is case-insensitive, not mixed) */
    char low[128];
    for (size_t i = 0; i <= strlen(f->id[0]); i++)
        low[i] = (char)(f->id[0][i] >= 'A' && f->id[0][i] <= 'Z' ? f->id[0][i] + 32 : f->id[0][i]);
    char *lows[1] = {low};
    ls_age_opts o3 = {.what = "r", .identities = lows, .n_identities = 1};
    assert_int_equal(ls_age_keys_load(f->ctx, &o3, &k), 0);
    ls_age_keys_free(k);
    /* a damaged identity: named by list, entry and line, its text never shown */
    char bad[512];
    snprintf(bad, sizeof(bad), "# x\n%s", f->id[0]);
    bad[strlen(bad) - 3] ^= 1;
    char *bads[1] = {bad};
    ls_age_opts o4 = {.what = "replica r", .identities = bads, .n_identities = 1};
    assert_int_equal(ls_age_keys_load(f->ctx, &o4, &k), LS_EUSAGE);
    assert_string_equal(ls_errmsg(f->ctx), "replica r: age identities [0], line 2: not an age "
                                           "X25519 identity (AGE-SECRET-KEY-1...)");
    /* a recipient where an identity belongs, and the other way */
    char *rcs[1] = {f->rc[0]}, *ids[1] = {f->id[0]};
    ls_age_opts o5 = {.what = "r", .identities = rcs, .n_identities = 1};
    assert_int_equal(ls_age_keys_load(f->ctx, &o5, &k), LS_EUSAGE);
    ls_age_opts o6 = {.what = "r", .recipients = ids, .n_recipients = 1};
    assert_int_equal(ls_age_keys_load(f->ctx, &o6, &k), LS_EUSAGE);
    assert_null(strstr(ls_errmsg(f->ctx), "AGE-SECRET"));
    /* an ssh recipient: not supported, said clearly */
    char *ssh[1] = {"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHs x@y"};
    ls_age_opts o7 = {.what = "r", .recipients = ssh, .n_recipients = 1};
    assert_int_equal(ls_age_keys_load(f->ctx, &o7, &k), LS_EUSAGE);
    assert_non_null(strstr(ls_errmsg(f->ctx), "not an age X25519 recipient"));
    /* only comments; a missing file */
    char *none[1] = {"# nothing\n"};
    ls_age_opts o8 = {.what = "r", .recipients = none, .n_recipients = 1};
    assert_int_equal(ls_age_keys_load(f->ctx, &o8, &k), LS_EUSAGE);
    assert_non_null(strstr(ls_errmsg(f->ctx), "no recipient (age1...) found"));
    char *missing[1] = {"/nonexistent/keys.txt"};
    ls_age_opts o9 = {.what = "r", .recipient_files = missing, .n_recipient_files = 1};
    assert_int_equal(ls_age_keys_load(f->ctx, &o9, &k), LS_ENOENT);
    assert_non_null(strstr(ls_errmsg(f->ctx), "/nonexistent/keys.txt"));
    ls_age_opts o10 = {.what = "r"};
    assert_int_equal(ls_age_keys_load(f->ctx, &o10, &k), 0);
    assert_null(k);
}

/* ---- interop with Debian's age ---- */

static void test_age_cli_both_ways(void **state)
{
    fixture *f = *state;
    char cmd[1024], idf[128], plain[128], enc[128], dec[128];
    snprintf(idf, sizeof(idf), "%s/key.txt", f->dir);
    snprintf(plain, sizeof(plain), "%s/plain", f->dir);
    snprintf(enc, sizeof(enc), "%s/enc.age", f->dir);
    snprintf(dec, sizeof(dec), "%s/dec", f->dir);
    snprintf(cmd, sizeof(cmd), "%s -o %s 2>/dev/null", KEYGEN_CLI, idf);
    assert_int_equal(system(cmd), 0);
    char *files[1] = {idf};
    ls_age_keys *k = NULL;
    ls_age_opts o = {.what = "r", .identity_files = files, .n_identity_files = 1};
    assert_int_equal(ls_age_keys_load(f->ctx, &o, &k), 0);
    /* our public key of the identity is age-keygen -y's */
    char rcpt[128] = "";
    snprintf(cmd, sizeof(cmd), "%s -y %s", KEYGEN_CLI, idf);
    FILE *pp = popen(cmd, "r");
    assert_non_null(fgets(rcpt, sizeof(rcpt), pp));
    pclose(pp);
    rcpt[strcspn(rcpt, "\n")] = '\0';
    static const size_t sizes[] = {0, 65536, 65537, 200000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint8_t *p = noise_bytes(sizes[i], 77 + (uint32_t)i);
        /* ours -> age -d */
        ls_buf c = {0};
        encrypt(f, k, p, sizes[i], &c);
        write_file(enc, c.p, c.n);
        snprintf(cmd, sizeof(cmd), "%s -d -i %s %s > %s", AGE_CLI, idf, enc, dec);
        assert_int_equal(system(cmd), 0);
        size_t dn;
        uint8_t *d = read_file(dec, &dn);
        assert_int_equal(dn, sizes[i]);
        if (dn)
            assert_memory_equal(d, p, dn);
        free(d);
        ls_buf_free(&c);
        /* age -r (with its grease stanza) -> ours */
        write_file(plain, p, sizes[i]);
        snprintf(cmd, sizeof(cmd), "%s -r %s -r %s %s > %s", AGE_CLI, f->rc[1], rcpt, plain, enc);
        assert_int_equal(system(cmd), 0);
        uint8_t *e = read_file(enc, &dn);
        ls_buf out = {0};
        assert_int_equal(decrypt(f, k, e, dn, &out), 0);
        assert_int_equal(out.n, sizes[i]);
        if (out.n)
            assert_memory_equal(out.p, p, out.n);
        ls_buf_free(&out);
        free(e);
        free(p);
    }
    ls_age_keys_free(k);
}

/* ---- the storage wrapper ---- */

static void test_storage_wrapper(void **state)
{
    fixture *f = *state;
    char root[128];
    snprintf(root, sizeof(root), "%s/replica", f->dir);
    ls_storage_opts so = {.name = "enc", .type = "file", .path = root};
    ls_storage *inner = NULL, *s = NULL;
    assert_int_equal(ls_storage_open(f->ctx, &so, &inner), 0);
    assert_int_equal(ls_storage_age_open(f->ctx, inner, keys_of(f, f->id[0], NULL, NULL), &s), 0);
    assert_true(ls_storage_age_readable(s));
    assert_ptr_equal(ls_storage_age_inner(s), inner);
    uint8_t *p = noise_bytes(150000, 11);
    assert_int_equal(ls_storage_put_buf(s, f->ctx, "a/b", p, 150000), 0);
    /* stored as age, read back plain, whole and by range */
    uint8_t *raw = NULL, *got = NULL;
    size_t rn = 0, gn = 0;
    assert_int_equal(ls_storage_get_buf(inner, f->ctx, "a/b", &raw, &rn), 0);
    assert_memory_equal(raw, LS_AGE_MAGIC, strlen(LS_AGE_MAGIC));
    assert_int_equal(ls_storage_get_buf(s, f->ctx, "a/b", &got, &gn), 0);
    assert_int_equal(gn, 150000);
    assert_memory_equal(got, p, gn);
    free(got);
    ls_buf part = {0};
    ls_writer w;
    ls_writer_buf(&w, &part);
    assert_int_equal(s->get(s, f->ctx, "a/b", 70000, 1000, &w), 0);
    assert_int_equal(part.n, 1000);
    assert_memory_equal(part.p, p + 70000, 1000);
    ls_buf_free(&part);
    /* a damaged stored object: the message names the replica and the key */
    raw[rn - 2] ^= 1;
    assert_int_equal(ls_storage_put_buf(inner, f->ctx, "a/b", raw, rn), 0);
    assert_int_equal(ls_storage_get_buf(s, f->ctx, "a/b", &got, &gn), LS_ECORRUPT);
    assert_non_null(strstr(ls_errmsg(f->ctx), "replica enc ("));
    assert_non_null(strstr(ls_errmsg(f->ctx), "get a/b: age: the last chunk"));
    free(got);
    free(raw);
    free(p);
    ls_storage_close(s);
    /* recipients only: writes, cannot read back */
    assert_int_equal(ls_storage_open(f->ctx, &so, &inner), 0);
    assert_int_equal(ls_storage_age_open(f->ctx, inner, keys_of(f, NULL, f->rc[0], NULL), &s), 0);
    assert_false(ls_storage_age_readable(s));
    ls_storage_close(s);
}

/* age(retry(fault(mem))), the engine's order: a get cut twice mid-object resumes. */
static void test_wrapper_over_retry(void **state)
{
    fixture *f = *state;
    ls_storage *mem = NULL, *fault = NULL, *retry = NULL, *s = NULL;
    assert_int_equal(ls_storage_mem_open(f->ctx, "enc", &mem), 0);
    assert_int_equal(ls_storage_fault_open(f->ctx, mem, &fault), 0);
    assert_int_equal(ls_storage_retry_open(f->ctx, fault, 8, &retry), 0);
    assert_int_equal(ls_storage_age_open(f->ctx, retry, keys_of(f, f->id[0], NULL, NULL), &s), 0);
    uint8_t *p = noise_bytes(300000, 21), *got = NULL;
    size_t gn = 0;
    assert_int_equal(ls_storage_put_buf(s, f->ctx, "g/x", p, 300000), 0);
    ls_fault rule = {.ops = LS_FAULT_GET, .times = 2, .code = LS_ENET, .partial = 70001};
    ls_storage_fault_set(fault, &rule);
    assert_int_equal(ls_storage_get_buf(s, f->ctx, "g/x", &got, &gn), 0);
    assert_int_equal(ls_storage_fault_injected(fault), 2);
    assert_int_equal(gn, 300000);
    assert_memory_equal(got, p, gn);
    ls_storage_counts c;
    ls_storage_counts_get(s, &c); /* through the age wrapper: the retrying one's */
    assert_int_equal(c.gets, 3);
    assert_int_equal(c.errors_net, 2);
    free(got);
    free(p);
    ls_storage_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_recipients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_and_truncate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_lz4_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_parsing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_age_cli_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(test_storage_wrapper, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrapper_over_retry, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
