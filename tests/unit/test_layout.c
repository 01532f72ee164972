/*
 * test_layout.c - replica keys: build/parse roundtrips, the exact-name rules
 * (everything Litestream's anchored regexes refuse is LS_KEY_OTHER),
 * generation names, prefixes and position strings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "layout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GEN "d4f874b2c77394b2"

static void test_snapshot_key_roundtrip(void **state)
{
    static const uint32_t idx[] = {0, 1, 0xabcdef, 0x7fffffff, 0xffffffff};
    char key[LS_LAYOUT_KEY_MAX];
    ls_key k;
    (void)state;
    for (size_t i = 0; i < sizeof(idx) / sizeof(idx[0]); i++) {
        ls_layout_snapshot_key(key, sizeof(key), GEN, idx[i]);
        assert_int_equal(ls_layout_parse(key, &k), LS_KEY_SNAPSHOT);
        assert_int_equal(k.kind, LS_KEY_SNAPSHOT);
        assert_string_equal(k.gen, GEN);
        assert_int_equal(k.index, idx[i]);
        assert_int_equal(k.offset, 0);
    }
    ls_layout_snapshot_key(key, sizeof(key), GEN, 0x1f);
    assert_string_equal(key, "generations/" GEN "/snapshots/0000001f.snapshot.lz4");
}

static void test_wal_key_roundtrip(void **state)
{
    static const uint32_t v[][2] = {{0, 0}, {0, 0x4080}, {5, 32}, {0x7fffffff, 0xffffffff}};
    char key[LS_LAYOUT_KEY_MAX];
    ls_key k;
    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        ls_layout_wal_key(key, sizeof(key), GEN, v[i][0], v[i][1]);
        assert_true(strlen(key) < LS_LAYOUT_KEY_MAX);
        assert_int_equal(ls_layout_parse(key, &k), LS_KEY_WAL);
        assert_string_equal(k.gen, GEN);
        assert_int_equal(k.index, v[i][0]);
        assert_int_equal(k.offset, v[i][1]);
    }
    /* The key Litestream 0.3.13 wrote in a real run (reference section 3). */
    assert_int_equal(ls_layout_parse("generations/" GEN "/wal/00000000_00004080.wal.lz4", &k),
                     LS_KEY_WAL);
    assert_int_equal(k.offset, 16512);
    ls_layout_wal_key(key, sizeof(key), GEN, 0, 16512);
    assert_string_equal(key, "generations/" GEN "/wal/00000000_00004080.wal.lz4");
    /* out may be NULL */
    assert_int_equal(ls_layout_parse(key, NULL), LS_KEY_WAL);
}

static void test_rejected_names(void **state)
{
    static const char *bad[] = {
        "",
        "generations",
        "generations/",
        "generations/" GEN,
        "generations/" GEN "/",
        "generations/" GEN "/snapshots/",
        "generations/" GEN "/wal/",
        /* uppercase hex, in the generation, the index, the offset */
        "generations/D4F874B2C77394B2/snapshots/00000000.snapshot.lz4",
        "generations/" GEN "/snapshots/0000000A.snapshot.lz4",
        "generations/" GEN "/wal/00000000_0000408A.wal.lz4",
        /* wrong lengths */
        "generations/d4f874b2c77394b/snapshots/00000000.snapshot.lz4",
        "generations/d4f874b2c77394b2a/snapshots/00000000.snapshot.lz4",
        "generations/" GEN "/snapshots/0000000.snapshot.lz4",
        "generations/" GEN "/snapshots/000000000.snapshot.lz4",
        "generations/" GEN "/wal/0000000_00000000.wal.lz4",
        "generations/" GEN "/wal/000000000_00000000.wal.lz4",
        "generations/" GEN "/wal/00000000_000000000.wal.lz4", /* 9-digit offset (>= 4 GiB) */
        "generations/" GEN "/wal/00000000_0000000.wal.lz4",
        /* non-hex characters, signs, spaces */
        "generations/" GEN "/snapshots/0000000g.snapshot.lz4",
        "generations/" GEN "/snapshots/+0000000.snapshot.lz4",
        "generations/" GEN "/wal/00000000_ 0000000.wal.lz4",
        "generations/d4f874b2c77394bz/wal/00000000_00000000.wal.lz4",
        /* extra suffixes, temp files, missing suffixes */
        "generations/" GEN "/snapshots/00000000.snapshot.lz4.tmp",
        "generations/" GEN "/wal/00000000_00000000.wal.lz4.tmp",
        "generations/" GEN "/wal/00000000_00000000.wal.lz4/x",
        "generations/" GEN "/wal/.00000000_00000000.wal.lz4.1234.abcd.tmp",
        "generations/" GEN "/snapshots/00000000.snapshot",
        "generations/" GEN "/wal/00000000_00000000.wal",
        "generations/" GEN "/wal/00000000.wal.lz4",
        "generations/" GEN "/wal/00000000-00000000.wal.lz4",
        /* the kinds swapped between directories */
        "generations/" GEN "/wal/00000000.snapshot.lz4",
        "generations/" GEN "/snapshots/00000000_00000000.wal.lz4",
        /* not relative to the root, or under another root */
        "/generations/" GEN "/snapshots/00000000.snapshot.lz4",
        "x/generations/" GEN "/snapshots/00000000.snapshot.lz4",
        "generations//" GEN "/snapshots/00000000.snapshot.lz4",
        "Generations/" GEN "/snapshots/00000000.snapshot.lz4",
        "generations/" GEN "/snapshot/00000000.snapshot.lz4",
        "generations/" GEN "/snapshots/sub/00000000.snapshot.lz4",
        "generations/" GEN "\\snapshots\\00000000.snapshot.lz4",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ls_key k;
        memset(&k, 0x55, sizeof(k));
        if (ls_layout_parse(bad[i], &k) != LS_KEY_OTHER)
            fail_msg("accepted: \"%s\"", bad[i]);
        assert_int_equal(k.kind, LS_KEY_OTHER);
        assert_string_equal(k.gen, "");
    }
    assert_int_equal(ls_layout_parse(NULL, NULL), LS_KEY_OTHER);
}

static void test_gen_new(void **state)
{
    enum { N = 2000 };
    char(*gens)[LS_GEN_LEN + 1] = calloc(N, sizeof(*gens));
    unsigned seen[16] = {0};
    (void)state;
    assert_non_null(gens);
    for (int i = 0; i < N; i++) {
        assert_int_equal(ls_layout_gen_new(gens[i]), 0);
        assert_int_equal(strlen(gens[i]), LS_GEN_LEN);
        assert_true(ls_layout_is_gen(gens[i]));
        for (int j = 0; j < LS_GEN_LEN; j++) {
            char c = gens[i][j];
            assert_true((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
            seen[c <= '9' ? c - '0' : c - 'a' + 10]++;
        }
    }
    /* All distinct: 64 random bits make a collision in 2000 draws ~1e-13. */
    for (int i = 0; i < N; i++) {
        for (int j = i + 1; j < N; j++)
            assert_string_not_equal(gens[i], gens[j]);
    }
    /* Every hex digit shows up about 2000 times (32000 / 16); far from 0 or all. */
    for (int d = 0; d < 16; d++)
        assert_true(seen[d] > 1500 && seen[d] < 2500);
    free(gens);
}

static void test_is_gen(void **state)
{
    (void)state;
    assert_true(ls_layout_is_gen(GEN));
    assert_true(ls_layout_is_gen("0000000000000000"));
    assert_false(ls_layout_is_gen("D4F874B2C77394B2"));
    assert_false(ls_layout_is_gen("d4f874b2c77394b"));
    assert_false(ls_layout_is_gen("d4f874b2c77394b2a"));
    assert_false(ls_layout_is_gen("d4f874b2c77394g2"));
    assert_false(ls_layout_is_gen(""));
    assert_false(ls_layout_is_gen(NULL));
}

static void test_prefixes_and_pos(void **state)
{
    char buf[LS_LAYOUT_KEY_MAX], pos[LS_LAYOUT_POS_MAX];
    (void)state;
    assert_string_equal(ls_layout_root_prefix(), "generations/");
    ls_layout_gen_prefix(buf, sizeof(buf), GEN);
    assert_string_equal(buf, "generations/" GEN "/");
    ls_layout_snapshots_prefix(buf, sizeof(buf), GEN);
    assert_string_equal(buf, "generations/" GEN "/snapshots/");
    ls_layout_wal_prefix(buf, sizeof(buf), GEN);
    assert_string_equal(buf, "generations/" GEN "/wal/");

    ls_layout_pos_str(pos, sizeof(pos), GEN, 0, 16512);
    assert_string_equal(pos, GEN "/00000000:16512");
    ls_layout_pos_str(pos, sizeof(pos), GEN, 0x1a, UINT64_MAX);
    assert_string_equal(pos, GEN "/0000001a:18446744073709551615");

    /* A built key always starts with its generation's prefixes. */
    char key[LS_LAYOUT_KEY_MAX];
    ls_layout_wal_key(key, sizeof(key), GEN, 3, 0);
    ls_layout_wal_prefix(buf, sizeof(buf), GEN);
    assert_memory_equal(key, buf, strlen(buf));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_key_roundtrip),
        cmocka_unit_test(test_wal_key_roundtrip),
        cmocka_unit_test(test_rejected_names),
        cmocka_unit_test(test_gen_new),
        cmocka_unit_test(test_is_gen),
        cmocka_unit_test(test_prefixes_and_pos),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
