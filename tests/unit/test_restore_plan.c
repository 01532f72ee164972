/*
 * test_restore_plan.c - restore from a replica the engine wrote (repl_fixture.h):
 * which generation, snapshot and segments a restore takes for the latest
 * state, a WAL index, an exact offset, a point in time and a named
 * generation, each compared page for page with the live database as it was
 * at that point; and how restore fails: an empty replica, no snapshot, a
 * download failing (with and without the retrying wrapper), damaged objects
 * and holes in the WAL segments. A failed restore leaves nothing behind.
 * Compaction (compact.c): the merged objects and the old segments side by
 * side, then without the old segments, restore every state; a restart in
 * between finds the merge done and only deletes.
 * Last, validate (restore at the live position, compare byte for byte).
 */
#define _GNU_SOURCE
#include "repl_fixture.h"
#include "validate.h"

/*
 * One generation's history, a state per point:
 *   0  first step: snapshot 0 and segment 0_0
 *   1  segment 0_a          2  segment 0_b
 *   3  index 1: segment 1_0 4  segment 1_x
 *   5  index 2: segment 2_0
 * img[i] and pos[i] are the database and the spool at point i.
 */
#define NPOINT 6

typedef struct hist {
    uint8_t *img[NPOINT];
    size_t n[NPOINT];
    ls_spool_pos pos[NPOINT];
    int64_t rows[NPOINT];
} hist;

static int64_t app_rows(fx *f)
{
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    assert_int_equal(sqlite3_prepare_v2(f->app, "SELECT count(*) FROM t", -1, &st, NULL),
                     SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void point(fx *f, hist *h, int i)
{
    h->img[i] = fx_image(f, &h->n[i]);
    ls_source_pos(f->src, &h->pos[i]);
    h->rows[i] = app_rows(f);
    assert_int_equal(fx_has(f), 1);
}

static void build(fx *f, hist *h)
{
    fx_insert(f, 1, 300);
    fx_sync(f);
    fx_step(f);
    point(f, h, 0);
    fx_commit_ship(f, 2);
    point(f, h, 1);
    fx_commit_ship(f, 3);
    point(f, h, 2);
    fx_next_index(f);
    fx_step(f);
    point(f, h, 3);
    fx_commit_ship(f, 20); /* a new page or more */
    point(f, h, 4);
    fx_next_index(f);
    fx_step(f);
    point(f, h, 5);
}

static void hist_free(hist *h)
{
    for (int i = 0; i < NPOINT; i++)
        free(h->img[i]);
}

/* Upload times: the snapshot and segment 0_0 at T0, then one second per point. */
static void set_times(fx *f, const hist *h)
{
    char key[LS_LAYOUT_KEY_MAX];
    fx_set_mtimes(f, "", FX_T0);
    for (int i = 1; i < NPOINT; i++) {
        const ls_spool_pos *prev = &h->pos[i - 1];
        uint32_t off = h->pos[i].index == prev->index ? (uint32_t)prev->size : 0;
        fx_wal_key(f, key, h->pos[i].index, off);
        assert_int_equal(ls_storage_mem_set_mtime(f->mem, key, FX_T0 + 1000 * i), 0);
    }
}

static void test_restore_latest(void **state)
{
    fx *f = *state;
    hist h;
    char out[256];
    build(f, &h);
    ls_restore_result res = fx_restore_check(f, NULL, h.img[5], h.n[5]);
    assert_string_equal(res.generation, h.pos[5].gen);
    assert_int_equal(res.snapshot_index, 0);
    assert_int_equal(res.index, 2);
    assert_int_equal(res.offset, h.pos[5].size);
    assert_int_equal(res.page_size, FX_PAGE);
    assert_int_equal(res.page_count, h.n[5] / FX_PAGE);
    assert_int_equal(res.segments, 6);
    assert_true(res.wal_pages > 0);
    assert_true(res.bytes_downloaded > 0);
    snprintf(out, sizeof(out), "%s/restored-%d.db", f->dir, f->nrestore); /* fx_restore_from's */
    assert_int_equal(fx_rows(out), h.rows[5]);
    fx_assert_no_leftovers(f);

    /* Never over an existing file. */
    ls_restore_plan o = fx_ropts();
    assert_int_equal(ls_restore_replica(f->ctx, f->mem, out, &o, &res), LS_EEXIST);
    hist_free(&h);
}

static void test_restore_by_index(void **state)
{
    fx *f = *state;
    hist h;
    build(f, &h);
    ls_restore_plan o = fx_ropts();
    o.index = 0;
    ls_restore_result res = fx_restore_check(f, &o, h.img[2], h.n[2]);
    assert_int_equal(res.index, 0);
    assert_int_equal(res.offset, h.pos[2].size);
    assert_int_equal(res.segments, 3);
    o.index = 1;
    res = fx_restore_check(f, &o, h.img[4], h.n[4]);
    assert_int_equal(res.index, 1);
    assert_int_equal(res.offset, h.pos[4].size);
    o.index = 9; /* past the end: the latest */
    res = fx_restore_check(f, &o, h.img[5], h.n[5]);
    assert_int_equal(res.index, 2);
    hist_free(&h);
}

static void test_restore_by_offset(void **state)
{
    fx *f = *state;
    hist h;
    char out[256];
    ls_restore_result res;
    build(f, &h);

    /* Index 1 up to the start of its second segment: the state at point 3. */
    ls_restore_plan o = fx_ropts();
    o.index = 1;
    o.offset = (int64_t)h.pos[3].size;
    res = fx_restore_check(f, &o, h.img[3], h.n[3]);
    assert_int_equal(res.index, 1);
    assert_int_equal(res.offset, h.pos[3].size);
    assert_int_equal(res.snapshot_index, 0);

    /* In the snapshot's own index, the snapshot may hold frames past the offset... */
    o.index = 0;
    o.offset = (int64_t)h.pos[1].size;
    assert_int_equal(fx_restore_from(f, f->mem, &o, out, sizeof(out), &res), LS_ENOENT);
    assert_false(fx_exists(out));
    /* ...unless it is known to be older than the position (validate's pin). */
    o.pinned_ms = (int64_t)time(NULL) * 1000 + 1000;
    res = fx_restore_check(f, &o, h.img[1], h.n[1]);
    assert_int_equal(res.index, 0);
    assert_int_equal(res.offset, h.pos[1].size);
    hist_free(&h);
}

static void test_restore_by_timestamp(void **state)
{
    fx *f = *state;
    hist h;
    char out[256];
    ls_restore_result res;
    build(f, &h);
    set_times(f, &h);

    ls_restore_plan o = fx_ropts();
    for (int i = 0; i < NPOINT; i++) {
        o.timestamp_ms = FX_T0 + 1000 * i; /* inclusive */
        res = fx_restore_check(f, &o, h.img[i], h.n[i]);
        assert_int_equal(res.index, h.pos[i].index);
        assert_int_equal(res.offset, h.pos[i].size);
        o.timestamp_ms = FX_T0 + 1000 * i + 999;
        fx_restore_check(f, &o, h.img[i], h.n[i]);
    }
    o.timestamp_ms = FX_T0 - 1; /* before the first snapshot */
    assert_int_equal(fx_restore_from(f, f->mem, &o, out, sizeof(out), &res), LS_ENOENT);
    assert_false(fx_exists(out));
    hist_free(&h);
}

static void test_restore_newest_snapshot_before_target(void **state)
{
    fx *f = *state;
    hist h;
    char key[LS_LAYOUT_KEY_MAX];
    build(f, &h);
    set_times(f, &h);
    /* A second snapshot, at index 2. */
    f->r->o.snapshot_interval_ms = 3600000;
    f->r->last_snapshot_ms = 0;
    fx_step(f);
    fx_snap_key(f, key, 2);
    assert_int_equal(ls_storage_mem_set_mtime(f->mem, key, FX_T0 + 6000), 0);

    ls_restore_result res = fx_restore_check(f, NULL, h.img[5], h.n[5]);
    assert_int_equal(res.snapshot_index, 2);
    assert_int_equal(res.segments, 1);
    ls_restore_plan o = fx_ropts();
    o.index = 1;
    res = fx_restore_check(f, &o, h.img[4], h.n[4]);
    assert_int_equal(res.snapshot_index, 0);
    o = fx_ropts();
    o.timestamp_ms = FX_T0 + 5500; /* before the second snapshot was uploaded */
    res = fx_restore_check(f, &o, h.img[5], h.n[5]);
    assert_int_equal(res.snapshot_index, 0);
    assert_int_equal(res.segments, 6);
    hist_free(&h);
}

static void test_restore_generation_choice(void **state)
{
    fx *f = *state;
    char a[LS_GEN_LEN + 1], prefix[LS_LAYOUT_KEY_MAX], key[LS_LAYOUT_KEY_MAX], out[256];
    size_t na = 0, nb = 0;
    ls_restore_result res;

    fx_commit_ship(f, 3);
    memcpy(a, f->r->gen, sizeof(a));
    uint8_t *ia = fx_image(f, &na);
    /* Generation b: the WAL was checkpointed away while nobody followed it. */
    ls_source_detach(f->src);
    fx_exec(f, "PRAGMA wal_checkpoint(TRUNCATE)");
    fx_insert(f, 5, 300);
    assert_int_equal(ls_source_attach(f->src), 0);
    fx_step(f);
    fx_commit_ship(f, 1);
    uint8_t *ib = fx_image(f, &nb);
    assert_string_not_equal(f->r->gen, a);
    assert_false(nb == na && memcmp(ia, ib, na) == 0);

    /* a's objects at T0; b's first segment at T0+9 s, its snapshot at T0+10 s, the rest later. */
    ls_layout_gen_prefix(prefix, sizeof(prefix), a);
    fx_set_mtimes(f, prefix, FX_T0);
    ls_layout_gen_prefix(prefix, sizeof(prefix), f->r->gen);
    fx_set_mtimes(f, prefix, FX_T0 + 11000);
    fx_wal_key(f, key, 0, 0);
    assert_int_equal(ls_storage_mem_set_mtime(f->mem, key, FX_T0 + 9000), 0);
    fx_snap_key(f, key, 0);
    assert_int_equal(ls_storage_mem_set_mtime(f->mem, key, FX_T0 + 10000), 0);

    res = fx_restore_check(f, NULL, ib, nb);
    assert_string_equal(res.generation, f->r->gen);
    ls_restore_plan o = fx_ropts();
    o.generation = a;
    res = fx_restore_check(f, &o, ia, na);
    assert_string_equal(res.generation, a);
    /* By time: before b's snapshot, a holds that moment (b's early segment does not count). */
    o = fx_ropts();
    o.timestamp_ms = FX_T0 + 9500;
    res = fx_restore_check(f, &o, ia, na);
    assert_string_equal(res.generation, a);
    o.timestamp_ms = FX_T0 + 20000;
    res = fx_restore_check(f, &o, ib, nb);
    assert_string_equal(res.generation, f->r->gen);
    /* A generation the replica does not have. */
    o = fx_ropts();
    o.generation = "0123456789abcdef";
    assert_int_equal(fx_restore_from(f, f->mem, &o, out, sizeof(out), &res), LS_ENOENT);
    assert_non_null(strstr(ls_errmsg(f->ctx), "0123456789abcdef"));
    assert_false(fx_exists(out));
    free(ia);
    free(ib);
}

/* ---- failures ---- */

static void assert_restore_fails(fx *f, ls_storage *st, const ls_restore_plan *o, int code,
                                 const char *msg)
{
    char out[256];
    ls_restore_result res;
    ls_restore_plan def = fx_ropts();
    int rc = fx_restore_from(f, st, o ? o : &def, out, sizeof(out), &res);
    if (rc != code)
        fail_msg("restore: %d (want %d) %s", rc, code, ls_errmsg(f->ctx));
    if (msg && !strstr(ls_errmsg(f->ctx), msg))
        fail_msg("restore: message \"%s\" lacks \"%s\"", ls_errmsg(f->ctx), msg);
    assert_false(fx_exists(out));
    fx_assert_no_leftovers(f);
}

static void test_restore_empty_replica(void **state)
{
    fx *f = *state;
    char key[LS_LAYOUT_KEY_MAX];
    assert_restore_fails(f, f->mem, NULL, LS_ENOENT, "no matching backup");
    /* Segments without a snapshot restore nothing either. */
    fx_step(f);
    fx_snap_key(f, key, 0);
    assert_int_equal(f->mem->del(f->mem, f->ctx, (const char *const[]){key}, 1), 0);
    assert_true(fx_count(f, "") > 0);
    assert_restore_fails(f, f->mem, NULL, LS_ENOENT, NULL);
}

/* A fault injector over the fixture's store, optionally behind the retrying wrapper. */
static ls_storage *faulty(fx *f, unsigned retries, ls_storage **fault)
{
    ls_storage *v = NULL, *fs = NULL, *rs = NULL;
    assert_int_equal(ls_storage_view_open(f->ctx, f->mem, &v), 0);
    assert_int_equal(ls_storage_fault_open(f->ctx, v, &fs), 0);
    *fault = fs;
    if (!retries)
        return fs;
    assert_int_equal(ls_storage_retry_open(f->ctx, fs, retries, &rs), 0);
    return rs;
}

static void test_restore_get_fails(void **state)
{
    fx *f = *state;
    hist h;
    ls_storage *fs = NULL;
    build(f, &h);

    /* Without retries a network failure ends the restore: the first segment, then the snapshot. */
    ls_storage *st = faulty(f, 0, &fs);
    ls_storage_fault_set(fs, &(ls_fault){.ops = LS_FAULT_GET, .times = 1, .code = LS_ENET,
                                         .partial = -1});
    assert_restore_fails(f, st, NULL, LS_ENET, "injected fault");
    ls_storage_fault_set(fs, &(ls_fault){.ops = LS_FAULT_GET, .skip = 6, .times = 1,
                                         .code = LS_ENET, .partial = -1});
    assert_restore_fails(f, st, NULL, LS_ENET, "snapshots/00000000.snapshot.lz4");
    assert_int_equal(ls_storage_fault_injected(fs), 1);
    ls_storage_close(st);
    hist_free(&h);
}

static void test_restore_get_retried(void **state)
{
    fx *f = *state;
    hist h;
    ls_storage *fs = NULL;
    char out[256];
    ls_restore_result res;
    ls_restore_plan o = fx_ropts();
    build(f, &h);

    ls_storage *st = faulty(f, 3, &fs);
    /* A failed get, then one cut after 100 bytes (resumed there), then the snapshot's. */
    static const ls_fault rules[] = {
        {.ops = LS_FAULT_GET, .times = 1, .code = LS_ENET, .partial = -1},
        {.ops = LS_FAULT_GET, .skip = 2, .times = 1, .code = LS_ENET, .partial = 100},
        {.ops = LS_FAULT_GET, .skip = 6, .times = 2, .code = LS_ENET, .partial = 5000},
    };
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        ls_storage_fault_set(fs, &rules[i]);
        int rc = fx_restore_from(f, st, &o, out, sizeof(out), &res);
        if (rc)
            fail_msg("rule %zu: %d %s", i, rc, ls_errmsg(f->ctx));
        assert_int_equal(ls_storage_fault_injected(fs), (uint64_t)rules[i].times);
        fx_assert_same(out, h.img[5], h.n[5]);
    }
    /* What no retry fixes is not retried. */
    ls_storage_fault_set(fs, &(ls_fault){.ops = LS_FAULT_GET, .times = 1, .code = LS_EPERM,
                                         .partial = -1});
    assert_restore_fails(f, st, &o, LS_EPERM, NULL);
    assert_int_equal(ls_storage_fault_calls(fs, LS_FAULT_GET), 1);
    /* Nor one that outlasts the tries. */
    ls_storage_fault_set(fs, &(ls_fault){.ops = LS_FAULT_GET, .times = -1, .code = LS_ENET,
                                         .partial = -1});
    assert_restore_fails(f, st, &o, LS_ENET, NULL);
    assert_int_equal(ls_storage_fault_calls(fs, LS_FAULT_GET), 3);
    ls_storage_close(st);
    hist_free(&h);
}

static void put_lz4(fx *f, const char *key, const void *buf, size_t n)
{
    uint8_t *z = NULL;
    size_t zn = 0;
    assert_int_equal(ls_lz4_compress_buf(f->ctx, buf, n, &z, &zn), 0);
    assert_int_equal(ls_storage_put_buf(f->mem, f->ctx, key, z, zn), 0);
    free(z);
}

/* Replace a stored object by `how`: 0 garbage bytes, 1 its first half, 2 a bit flipped. */
static void damage(fx *f, const char *key, int how)
{
    uint8_t *z = NULL, *raw = NULL;
    size_t zn = 0, n = 0;
    switch (how) {
    case 0:
        assert_int_equal(ls_storage_put_buf(f->mem, f->ctx, key, "not lz4 at all", 14), 0);
        break;
    case 1:
        assert_int_equal(ls_storage_get_buf(f->mem, f->ctx, key, &z, &zn), 0);
        assert_int_equal(ls_storage_put_buf(f->mem, f->ctx, key, z, zn / 2), 0);
        break;
    default: /* well-formed LZ4 of bytes that are not what was uploaded */
        raw = fx_object(f, key, &n);
        raw[n - 100] ^= 0x01;
        put_lz4(f, key, raw, n);
        break;
    }
    free(z);
    free(raw);
}

static void test_restore_corrupt_objects(void **state)
{
    fx *f = *state;
    hist h;
    char key[LS_LAYOUT_KEY_MAX];
    build(f, &h);

    for (int how = 0; how < 3; how++) {
        /* A segment (the last of index 1). */
        fx_wal_key(f, key, 1, (uint32_t)h.pos[3].size);
        uint8_t *z = NULL;
        size_t zn = 0;
        assert_int_equal(ls_storage_get_buf(f->mem, f->ctx, key, &z, &zn), 0);
        damage(f, key, how);
        static const char *const seg_msg[] = {"wal/00000001_", "truncated LZ4 frame",
                                              "WAL index 00000001 is damaged at offset"};
        assert_restore_fails(f, f->mem, NULL, LS_ECORRUPT, seg_msg[how]);
        /* A restore that stops before it does not read it. */
        ls_restore_plan o = fx_ropts();
        o.index = 0;
        fx_restore_check(f, &o, h.img[2], h.n[2]);
        assert_int_equal(ls_storage_put_buf(f->mem, f->ctx, key, z, zn), 0);
        free(z);

        /* The snapshot (a flipped bit in a page is beyond what restore can see:
         * snapshots carry no checksum of their own). */
        if (how == 2)
            continue;
        fx_snap_key(f, key, 0);
        assert_int_equal(ls_storage_get_buf(f->mem, f->ctx, key, &z, &zn), 0);
        damage(f, key, how);
        assert_restore_fails(f, f->mem, NULL, LS_ECORRUPT, NULL);
        assert_int_equal(ls_storage_put_buf(f->mem, f->ctx, key, z, zn), 0);
        free(z);
    }
    /* A snapshot that is well-formed LZ4 but no database. */
    fx_snap_key(f, key, 0);
    uint8_t junk[8192];
    memset(junk, 'x', sizeof(junk));
    put_lz4(f, key, junk, sizeof(junk));
    assert_restore_fails(f, f->mem, NULL, LS_ECORRUPT, "not an SQLite database");
    hist_free(&h);
}

/*
 * A stored object cut short fails the restore naming the object, as every
 * other failure of a get does (ls_storage_err), not only "truncated LZ4
 * frame (input ended after N bytes)".
 */
static void test_restore_truncated_object_is_named(void **state)
{
    fx *f = *state;
    hist h;
    char key[LS_LAYOUT_KEY_MAX];
    uint8_t *z = NULL;
    size_t zn = 0;
    build(f, &h);
    fx_wal_key(f, key, 1, (uint32_t)h.pos[3].size);
    assert_int_equal(ls_storage_get_buf(f->mem, f->ctx, key, &z, &zn), 0);
    damage(f, key, 1);
    assert_restore_fails(f, f->mem, NULL, LS_ECORRUPT, "wal/00000001_");
    assert_int_equal(ls_storage_put_buf(f->mem, f->ctx, key, z, zn), 0);
    free(z);
    /* The snapshot too. */
    fx_snap_key(f, key, 0);
    damage(f, key, 1);
    assert_restore_fails(f, f->mem, NULL, LS_ECORRUPT, "snapshots/00000000");
    hist_free(&h);
}

static void del_key(fx *f, const char *key)
{
    assert_true(fx_has_key(f, key));
    assert_int_equal(f->mem->del(f->mem, f->ctx, (const char *const[]){key}, 1), 0);
}

static void test_restore_wal_holes(void **state)
{
    fx *f = *state;
    hist h;
    char key[LS_LAYOUT_KEY_MAX];
    ls_restore_plan o = fx_ropts();
    build(f, &h);

    /* A segment missing inside index 0. */
    fx_wal_key(f, key, 0, (uint32_t)h.pos[0].size);
    uint8_t *z = NULL;
    size_t zn = 0;
    assert_int_equal(ls_storage_get_buf(f->mem, f->ctx, key, &z, &zn), 0);
    del_key(f, key);
    assert_restore_fails(f, f->mem, NULL, LS_ECORRUPT, "gap at offset");
    assert_int_equal(ls_storage_put_buf(f->mem, f->ctx, key, z, zn), 0);
    free(z);
    fx_restore_check(f, NULL, h.img[5], h.n[5]);

    /* The first segment of index 1 missing: it cannot start. */
    fx_wal_key(f, key, 1, 0);
    del_key(f, key);
    assert_restore_fails(f, f->mem, NULL, LS_ECORRUPT, "WAL index 00000001 has no initial");
    /* Index 1 missing altogether, index 2 present. */
    fx_wal_key(f, key, 1, (uint32_t)h.pos[3].size);
    del_key(f, key);
    assert_restore_fails(f, f->mem, NULL, LS_ECORRUPT, "WAL index 00000001 is missing");
    /* Up to the hole is still restorable. */
    o.index = 0;
    fx_restore_check(f, &o, h.img[2], h.n[2]);
    hist_free(&h);
}

/* A listing that misses one segment, as a directory read racing a new
 * object can: the first `hide_left` listings leave out `hide_key`. */
static int (*hide_orig)(ls_storage *, ls_ctx *, const char *, ls_obj_list *);
static char hide_key[LS_LAYOUT_KEY_MAX];
static int hide_left;

static int hiding_list(ls_storage *s, ls_ctx *ctx, const char *prefix, ls_obj_list *out)
{
    size_t n0 = out->n;
    int rc = hide_orig(s, ctx, prefix, out);
    for (size_t i = n0; !rc && hide_left > 0 && i < out->n; i++) {
        if (strcmp(out->v[i].key, hide_key) == 0) {
            free(out->v[i].key);
            out->v[i] = out->v[--out->n];
            hide_left--;
            break;
        }
    }
    return rc;
}

static void test_restore_lists_a_gap_again(void **state)
{
    fx *f = *state;
    hist h;
    build(f, &h);
    ls_storage *v = NULL;
    assert_int_equal(ls_storage_view_open(f->ctx, f->mem, &v), 0);
    hide_orig = v->list;
    v->list = hiding_list;
    fx_wal_key(f, hide_key, 0, (uint32_t)h.pos[0].size);

    /* Missed by the first listing (or two): listed again, restored whole. */
    for (int missed = 1; missed <= 2; missed++) {
        char out[256];
        ls_restore_result res;
        ls_restore_plan o = fx_ropts();
        hide_left = missed;
        int rc = fx_restore_from(f, v, &o, out, sizeof(out), &res);
        if (rc)
            fail_msg("restore: %d %s", rc, ls_errmsg(f->ctx));
        assert_int_equal(hide_left, 0);
        fx_assert_same(out, h.img[5], h.n[5]);
    }
    /* Missed every time: the gap is reported. */
    hide_left = 1000;
    assert_restore_fails(f, v, NULL, LS_ECORRUPT, "gap at offset");
    ls_storage_close(v);
    hist_free(&h);
}

/* ---- validate: restore at the live position and compare ---- */

/* Steps of a replica compacting at once (compact-after and -interval 1 ms). */
static void compact_steps(fx *f, int n)
{
    for (int i = 0; i < n; i++) {
        usleep(3000);
        fx_step(f);
    }
}

/* Every restorable state of the history, from the replica as it is now. */
static void restores_all(fx *f, const hist *h)
{
    ls_restore_plan o = fx_ropts();
    fx_restore_check(f, NULL, h->img[5], h->n[5]);
    o.index = 0; /* the end of a merged index */
    fx_restore_check(f, &o, h->img[2], h->n[2]);
    o.index = 1; /* an exact offset inside a merged index: cut there */
    o.offset = (int64_t)h->pos[3].size;
    ls_restore_result res = fx_restore_check(f, &o, h->img[3], h->n[3]);
    assert_int_equal(res.offset, h->pos[3].size);
}

static void test_restore_compacted(void **state)
{
    fx *f = *state;
    hist h;
    char key[LS_LAYOUT_KEY_MAX];
    ls_replica_opts ro = {.name = "mem", .compact_after_ms = 1, .compact_interval_ms = 1};
    build(f, &h);
    fx_set_mtimes(f, "", FX_T0); /* every index old enough */
    size_t before = fx_count(f, "generations/");
    assert_int_equal(before, 7); /* snapshot, 0_0 0_a 0_b, 1_0 1_x, 2_0 */

    /* Merge: 0_0 and 1_0 now hold their whole index; the old segments stay a grace period. */
    fx_replica_restart(f, &ro);
    fx_step(f);        /* learns the position; the first pass is an interval later */
    compact_steps(f, 1);
    assert_int_equal(fx_count(f, "generations/"), 7);
    size_t n0 = 0;
    fx_wal_key(f, key, 0, 0);
    free(fx_object(f, key, &n0));
    assert_int_equal(n0, h.pos[2].size);
    restores_all(f, &h); /* overlap: merged object and old segments */

    /* A restart before the deletes: the merge is found done, nothing is put again. */
    fx_replica_restart(f, &ro);
    fx_step(f);
    assert_int_equal(fx_has(f), 1);
    compact_steps(f, 3);
    assert_int_equal(fx_count(f, "generations/"), 4); /* snapshot, 0_0, 1_0, 2_0 */
    restores_all(f, &h);
    assert_int_equal(fx_has(f), 1);

    /* The position is still learnt right; shipping goes on in index 2. */
    fx_replica_restart(f, &ro);
    fx_commit_ship(f, 2);
    fx_assert_restores_live(f);
    hist_free(&h);
}

static void test_validate(void **state)
{
    fx *f = *state;
    ls_validate_result res;
    ls_spool_pos sp;
    char key[LS_LAYOUT_KEY_MAX];

    fx_commit_ship(f, 50);
    fx_next_index(f);
    /* A snapshot at index 1: the pages index 1 did not change come from it. */
    f->r->o.snapshot_interval_ms = 3600000;
    f->r->last_snapshot_ms = 0;
    fx_step(f);
    f->r->o.snapshot_interval_ms = 0;
    ls_source_pos(f->src, &sp);
    memset(&res, 0, sizeof(res));
    assert_int_equal(ls_validate(f->ctx, f->db, NULL, f->mem, 1000, &res), 0);
    assert_int_equal(res.ok, 1);
    assert_string_equal(res.generation, sp.gen);
    assert_int_equal(res.index, 1);
    assert_int_equal(res.offset, sp.size);
    assert_int_equal(res.first_diff_page, 0);
    assert_int_equal(res.live_pages, res.replica_pages);
    assert_true(res.live_pages >= 5);

    /* A commit the replica has not received: it cannot be compared. */
    fx_insert(f, 1, 300);
    fx_sync(f);
    assert_int_equal(ls_validate(f->ctx, f->db, NULL, f->mem, 0, &res), LS_EBUSY);
    fx_step(f);
    assert_int_equal(ls_validate(f->ctx, f->db, NULL, f->mem, 1000, &res), 0);
    assert_int_equal(res.ok, 1);

    /* A snapshot whose pages were changed (restore cannot see it: no checksum). */
    size_t n = 0;
    fx_snap_key(f, key, 1);
    uint8_t *snap = fx_object(f, key, &n);
    for (size_t off = 2000; off < n; off += FX_PAGE)
        snap[off] ^= 0x01;
    put_lz4(f, key, snap, n);
    free(snap);
    assert_int_equal(ls_validate(f->ctx, f->db, NULL, f->mem, 1000, &res), 0);
    assert_int_equal(res.ok, 0);
    assert_true(res.first_diff_page >= 1);
    fx_assert_no_leftovers(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_TEST(test_restore_latest),
        FX_TEST(test_restore_by_index),
        FX_TEST(test_restore_by_offset),
        FX_TEST(test_restore_by_timestamp),
        FX_TEST(test_restore_newest_snapshot_before_target),
        FX_TEST(test_restore_generation_choice),
        FX_TEST(test_restore_empty_replica),
        FX_TEST(test_restore_get_fails),
        FX_TEST(test_restore_get_retried),
        FX_TEST(test_restore_corrupt_objects),
        FX_TEST(test_restore_truncated_object_is_named),
        FX_TEST(test_restore_wal_holes),
        FX_TEST(test_restore_lists_a_gap_again),
        FX_TEST(test_restore_compacted),
        FX_TEST(test_validate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
