/*
 * test_faults.c - the store attacked harder than production (issue 11): the
 * fault injector (tests/support/fault.c) slows, hangs, cuts short and fails
 * every operation of replication and restore, and every path must end in
 * a clear error or a retry: no crash, no hang, no torn object, no lost
 * transaction, no leak (ASan), nothing a restore publishes that the source
 * never held.
 *
 *   - slow answers on every operation: replication and a parallel restore
 *     give exactly the source;
 *   - a hang on put or list under the public replicator: the stop and the
 *     interrupt return within their bound, no thread is left, and once the
 *     hang is lifted the next run ships everything;
 *   - a hang on get during a restore (segments, a small snapshot, a large
 *     one fetched in parallel parts): cancelling the caller's ctx ends it
 *     at once with LS_ECANCEL, leaving no output and no temp file;
 *   - short reads: every get of a restore, at several lengths: an exact
 *     result or LS_ECORRUPT naming the object, never a wrong database; a
 *     short read of the newest segment when the replica learns its position;
 *   - listings that end early: the replica learning its position ships
 *     again and stays exact; a restore fails or gives a state the source had;
 *   - short puts (a store that kept a body cut short): of a segment and of
 *     a snapshot, with and without a restart of the replica;
 *   - a failure of every operation at every call of a replication cycle
 *     (ship, snapshot, retention): the next cycle recovers and the restore
 *     is the source.
 * The fixture (repl_fixture.h) steps one replica in the test thread; the
 * replicator tests run the engine's threads over the same database.
 */
#define _GNU_SOURCE
#include "repl_fixture.h"

#include "litesafe.h"

#include <pthread.h>

/* A fault injector over a view of the fixture's store (closing it leaves mem open). */
static ls_storage *faulty(fx *f)
{
    ls_storage *v = NULL, *fs = NULL;
    assert_int_equal(ls_storage_view_open(f->ctx, f->mem, &v), 0);
    assert_int_equal(ls_storage_fault_open(f->ctx, v, &fs), 0);
    return fs;
}

/* Threads of this process (/proc/self/task): a stop must leave none of its own. */
static int thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Wait (up to 5 s) until `n` calls hang in fs. */
static void wait_hanging(ls_storage *fs, uint64_t n)
{
    for (int i = 0; i < 2500 && ls_storage_fault_hanging(fs) < n; i++)
        usleep(2000);
    assert_true(ls_storage_fault_hanging(fs) >= n);
}

/* A history over two WAL indexes: segments in both, the snapshot of index 0. */
static void build(fx *f)
{
    fx_insert(f, 1, 300);
    fx_sync(f);
    fx_step(f);
    fx_commit_ship(f, 3);
    fx_commit_ship(f, 20);
    fx_next_index(f);
    fx_step(f);
    fx_commit_ship(f, 5);
}

/* Restore through `st` with `parallelism` downloads into a new file; its path in out. */
static int restore_via(fx *f, ls_ctx *ctx, ls_storage *st, int parallelism, char *out, size_t n)
{
    ls_restore_result res;
    ls_restore_plan o = fx_ropts();
    o.parallelism = parallelism;
    snprintf(out, n, "%s/restored-%d.db", f->dir, ++f->nrestore);
    return ls_restore_replica(ctx, st, out, &o, &res);
}

/* A failed restore: code, a message naming `what` (if not NULL), nothing left behind. */
static void assert_failed_cleanly(fx *f, ls_ctx *ctx, int rc, int code, const char *what,
                                  const char *out)
{
    if (rc != code)
        fail_msg("restore: %d, expected %d: %s", rc, code, ls_errmsg(ctx));
    if (what && !strstr(ls_errmsg(ctx), what))
        fail_msg("restore message does not name %s: %s", what, ls_errmsg(ctx));
    assert_false(fx_exists(out));
    fx_assert_no_leftovers(f);
}

/* ---- slow answers ---- */

static void test_slow_everything(void **state)
{
    fx *f = *state;
    char out[256];
    size_t n = 0;
    ls_fault slow = {.ops = LS_FAULT_ALL, .times = -1, .mode = LS_FAULT_MODE_SLOW,
                     .delay_ms = 3};
    ls_storage_fault_set(f->fault, &slow);
    build(f);
    fx_commit_ship(f, 50);
    assert_int_equal(fx_has(f), 1);
    assert_true(ls_storage_fault_injected(f->fault) >= 5);

    /* A restore whose every get, list and stat is slow, four downloads at once. */
    ls_storage *fs = faulty(f);
    ls_storage_fault_set(fs, &slow);
    uint8_t *img = fx_image(f, &n);
    int rc = restore_via(f, f->ctx, fs, 4, out, sizeof(out));
    if (rc)
        fail_msg("restore: %d %s", rc, ls_errmsg(f->ctx));
    assert_true(ls_storage_fault_injected(fs) >= 5);
    fx_assert_same(out, img, n);
    free(img);
    ls_storage_close(fs);
}

/* ---- hangs ---- */

/* Replicate f->db with the public replicator over `st` (owned by it from here). */
static ls_replicator *replicator_over(fx *f, ls_storage *st)
{
    ls_replicator *r = NULL;
    ls_replicator_options o = LS_REPLICATOR_OPTIONS_INIT;
    ls_replica_options ro = LS_REPLICA_OPTIONS_INIT;
    o.shutdown_timeout_ms = 5000;
    ro.storage = st;
    assert_int_equal(ls_replicator_open(f->ctx, f->db, &o, &r), 0);
    assert_int_equal(ls_replicator_add_replica(r, &ro), 0);
    assert_int_equal(ls_replicator_start(r), 0);
    return r;
}

/* The fixture's own source and worker go: the replicator attaches to the database. */
static void detach_fixture(fx *f)
{
    ls_replica_free(f->r);
    f->r = NULL;
    ls_source_close(f->src);
    f->src = NULL;
    fx_exec(f, "PRAGMA busy_timeout=5000");
}

/*
 * One run of the replicator whose store hangs on `ops`, stopped by `how`
 * (0: ls_replicator_stop with a 300 ms timeout, 1: ls_replicator_interrupt
 * then stop): the stop returns within about its bound, not flushed, and
 * leaves no thread.
 */
static void hung_run(fx *f, unsigned ops, int how)
{
    int threads = thread_count();
    ls_storage *fs = faulty(f);
    ls_storage_fault_set(fs, &(ls_fault){.ops = ops, .times = -1, .code = LS_ENET,
                                         .partial = -1, .mode = LS_FAULT_MODE_HANG});
    ls_replicator *r = replicator_over(f, fs);
    fx_insert(f, 10, 300);
    wait_hanging(fs, 1);
    uint64_t t0 = ls_now_ms();
    ls_err_clear(f->ctx);
    if (how == 1)
        ls_replicator_interrupt(r);
    int rc = ls_replicator_stop(r, 300);
    uint64_t ms = ls_now_ms() - t0;
    if (ms > 2000)
        fail_msg("stop took %llu ms with a hung %s", (unsigned long long)ms,
                 ops == LS_FAULT_PUT ? "put" : "list");
    if (rc != LS_EIO || !strstr(ls_errmsg(f->ctx), "holds nothing-restorable")) /* named */
        fail_msg("ops %u how %d: stop %d: %s", ops, how, rc, ls_errmsg(f->ctx));
    assert_int_equal(ls_storage_fault_hanging(fs), 0);
    ls_replicator_close(r);
    assert_int_equal(thread_count(), threads);
}

static void test_hang_put_and_list_then_stop(void **state)
{
    fx *f = *state;
    detach_fixture(f);
    for (int how = 0; how < 2; how++) {
        hung_run(f, LS_FAULT_PUT, how);
        hung_run(f, LS_FAULT_LIST, how);
    }
    /* The hang lifted: the next run ships everything that was committed meanwhile. */
    fx_insert(f, 5, 300);
    ls_storage *fs = faulty(f);
    ls_replicator *r = replicator_over(f, fs);
    int rc = ls_replicator_wait_started(r, 10000);
    if (rc)
        fail_msg("start: %d %s", rc, ls_errmsg(f->ctx));
    rc = ls_replicator_sync(r, 20000);
    if (rc)
        fail_msg("sync: %d %s", rc, ls_errmsg(f->ctx));
    assert_int_equal(ls_replicator_stop(r, -1), 0);
    ls_replicator_close(r);
    fx_assert_restores_live(f);
}

/* Cancels ctx once a call hangs in fs. */
typedef struct canceller {
    ls_ctx *ctx;
    ls_storage *fs;
    pthread_t th;
} canceller;

static void *cancel_main(void *arg)
{
    canceller *c = arg;
    for (int i = 0; i < 2500 && ls_storage_fault_hanging(c->fs) == 0; i++)
        usleep(2000);
    ls_ctx_cancel(c->ctx);
    return NULL;
}

/*
 * A restore whose gets hang (bounded at 4 s by the rule), with
 * `parallelism` downloads: from the first segment on, or (snapshot set) from
 * the snapshot's first get on, after every segment came. Cancelling its ctx
 * ends it at once with LS_ECANCEL, leaving nothing.
 */
static void hung_restore(fx *f, int snapshot, int parallelism)
{
    char out[256];
    ls_ctx *ctx = NULL;
    ls_storage *fs = faulty(f);
    canceller c = {NULL, fs, 0};
    ls_restore_result res;
    ls_restore_plan o = fx_ropts();
    assert_int_equal(ls_ctx_new(&ctx), 0);
    c.ctx = ctx;
    /* The segments a restore gets before the snapshot (one get each). */
    assert_int_equal(fx_restore_from(f, fs, &o, out, sizeof(out), &res), 0);
    uint64_t skip = snapshot ? res.segments : 0;
    ls_storage_fault_set(fs, &(ls_fault){.ops = LS_FAULT_GET, .skip = skip, .times = -1,
                                         .partial = -1, .mode = LS_FAULT_MODE_HANG,
                                         .delay_ms = 4000});
    assert_int_equal(pthread_create(&c.th, NULL, cancel_main, &c), 0);
    uint64_t t0 = ls_now_ms();
    int rc = restore_via(f, ctx, fs, parallelism, out, sizeof(out));
    uint64_t ms = ls_now_ms() - t0;
    pthread_join(c.th, NULL);
    if (ms > 2000)
        fail_msg("restore (%s hung, parallelism %d) took %llu ms after the cancel: %s",
                 snapshot ? "snapshot" : "segments", parallelism, (unsigned long long)ms,
                 ls_errmsg(ctx));
    assert_failed_cleanly(f, ctx, rc, LS_ECANCEL, "cancel", out);
    assert_true(ls_storage_fault_injected(fs) >= 1);
    ls_ctx_free(ctx);
    ls_storage_close(fs);
}

static void test_hang_get_restore_cancel(void **state)
{
    fx *f = *state;
    build(f);
    hung_restore(f, 0, 1); /* a segment, by the one download thread */
    hung_restore(f, 0, 4); /* the segments, by the download threads */
    hung_restore(f, 1, 4); /* the snapshot, by the calling thread */
    /*
     * A snapshot larger than a part (8 MiB) is fetched in parallel parts
     * by threads of its own (pget.c).
     */
    fx_insert(f, 90, 100000);
    fx_sync(f);
    fx_next_index(f);
    f->r->last_snapshot_ms = 0;
    f->r->o.snapshot_interval_ms = 1;
    fx_step(f);
    f->r->o.snapshot_interval_ms = 0;
    hung_restore(f, 1, 4);
    fx_assert_restores_live(f);
}

/* ---- short reads ---- */

/*
 * Every get of a restore in turn hands over only `partial` bytes and
 * reports success: the restore fails with LS_ECORRUPT naming the object,
 * leaving nothing, or (a cut past the end) gives exactly the source.
 */
static void test_short_reads_restore(void **state)
{
    fx *f = *state;
    char out[256];
    size_t n = 0;
    build(f);
    uint8_t *img = fx_image(f, &n);
    size_t nobj = fx_count(f, "");
    static const int64_t lens[] = {0, 1, 4, 7, 11, 100, 1000, 4000};
    ls_storage *fs = faulty(f);
    for (size_t k = 0; k < nobj; k++) {
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
            ls_storage_fault_set(fs, &(ls_fault){.ops = LS_FAULT_GET, .skip = k, .times = 1,
                                                 .partial = lens[i],
                                                 .mode = LS_FAULT_MODE_SHORT});
            int rc = restore_via(f, f->ctx, fs, 1, out, sizeof(out));
            if (rc == 0) {
                fx_assert_same(out, img, n); /* the object was no longer than that */
                continue;
            }
            if (rc != LS_ECORRUPT || !strstr(ls_errmsg(f->ctx), "generations/"))
                fail_msg("get %zu cut at %lld: %d %s", k, (long long)lens[i], rc,
                         ls_errmsg(f->ctx));
            assert_false(fx_exists(out));
            fx_assert_no_leftovers(f);
        }
    }
    free(img);
    ls_storage_close(fs);
}

/*
 * A commit, then a restarted replica learns its position while its first
 * call of `op` (a get: the newest segment read back; a list) answers short,
 * with `keep` bytes or keys: it ships again what it cannot see and the
 * restore is still exactly the source.
 */
static void relearn_short(fx *f, unsigned op, int64_t keep)
{
    fx_insert(f, 2, 300);
    fx_sync(f);
    fx_replica_restart(f, NULL);
    ls_storage_fault_set(f->fault, &(ls_fault){.ops = op, .times = 1, .partial = keep,
                                               .mode = LS_FAULT_MODE_SHORT});
    fx_step(f);
    assert_int_equal(ls_storage_fault_injected(f->fault), 1);
    assert_int_equal(fx_has(f), 1);
    fx_assert_restores_live(f);
}

/* The newest segment reads back short (a segment looks damaged: uploaded again). */
static void test_short_read_learning_position(void **state)
{
    fx *f = *state;
    build(f);
    for (int64_t cut = 0; cut < 40; cut += 13)
        relearn_short(f, LS_FAULT_GET, cut);
}

/*
 * A listing that ends early (a store breaking the contract): the replica
 * ships again from an earlier point (overlapping segments replace or repeat
 * what is there) or takes a snapshot.
 */
static void test_short_listing_learning_position(void **state)
{
    fx *f = *state;
    build(f);
    size_t nobj = fx_count(f, "");
    for (int64_t keep = 0; keep <= (int64_t)nobj; keep++)
        relearn_short(f, LS_FAULT_LIST, keep);
}

/*
 * A restore whose listing ends early cannot know what it misses: it must
 * fail, or restore a state the source really had (never a mix).
 */
static void test_short_listing_restore(void **state)
{
    fx *f = *state;
    enum { NSTATE = 7 };
    uint8_t *img[NSTATE];
    size_t n[NSTATE];
    char out[256];
    /* The states at the ends of the segments: each a point a prefix of the listing may give. */
    fx_insert(f, 1, 300);
    fx_sync(f);
    fx_step(f);
    img[0] = fx_image(f, &n[0]);
    for (int i = 1; i < NSTATE; i++) {
        if (i == 4)
            fx_next_index(f);
        fx_commit_ship(f, 3 + 5 * i);
        img[i] = fx_image(f, &n[i]);
    }
    size_t nobj = fx_count(f, "");
    ls_storage *fs = faulty(f);
    int restored = 0;
    for (int64_t keep = 0; keep <= (int64_t)nobj; keep++) {
        ls_storage_fault_set(fs, &(ls_fault){.ops = LS_FAULT_LIST, .times = -1, .partial = keep,
                                             .mode = LS_FAULT_MODE_SHORT});
        int rc = restore_via(f, f->ctx, fs, 2, out, sizeof(out));
        if (rc) {
            assert_true(rc == LS_ENOENT || rc == LS_ECORRUPT);
            assert_false(fx_exists(out));
            fx_assert_no_leftovers(f);
            continue;
        }
        size_t got = 0;
        uint8_t *buf = fx_file(out, &got);
        int match = 0;
        for (int i = 0; i < NSTATE && !match; i++)
            match = got == n[i] && memcmp(buf, img[i], got) == 0;
        free(buf);
        if (!match)
            fail_msg("a listing of %lld keys restored a state the source never had",
                     (long long)keep);
        restored++;
    }
    assert_true(restored >= 1); /* the whole listing, at least */
    for (int i = 0; i < NSTATE; i++)
        free(img[i]);
    ls_storage_close(fs);
}

/* ---- short puts: a store that kept a body cut short ---- */

/* A put of the `skip`th upload from now on keeps `keep` bytes and reports success. */
static void cut_put(fx *f, uint64_t skip, int64_t keep)
{
    ls_storage_fault_set(f->fault, &(ls_fault){.ops = LS_FAULT_PUT, .skip = skip, .times = 1,
                                               .partial = keep,
                                               .mode = LS_FAULT_MODE_SHORT});
}

/*
 * A restore of the latest state fails with LS_ECORRUPT naming `key` and when
 * it was uploaded (a restore to a time before it may succeed: restore never
 * falls back to an older state on its own), leaving nothing.
 */
static void assert_latest_names(fx *f, const char *key)
{
    char out[256];
    ls_restore_result res;
    ls_restore_plan o = fx_ropts();
    int rc = fx_restore_from(f, f->mem, &o, out, sizeof(out), &res);
    assert_failed_cleanly(f, f->ctx, rc, LS_ECORRUPT, key, out);
    if (!strstr(ls_errmsg(f->ctx), "a restore to a time before it"))
        fail_msg("no hint: %s", ls_errmsg(f->ctx));
}

/*
 * A segment cut short. The sender killed (the worker restarted): the
 * restarted replica finds its newest segment damaged and uploads it again.
 * A store that reports success for it (the worker goes on): later segments
 * follow, and a restore of any state from the cut on fails naming it (never
 * a wrong database) while earlier states restore, until the next snapshot
 * covers it.
 */
static void test_short_put_segment(void **state)
{
    fx *f = *state;
    char key[LS_LAYOUT_KEY_MAX];
    ls_spool_pos p0;
    build(f);
    for (int64_t keep = 0; keep < 30; keep += 9) {
        ls_source_pos(f->src, &p0);
        cut_put(f, 0, keep);
        fx_commit_ship(f, 4);
        fx_wal_key(f, key, p0.index, (uint32_t)p0.size);
        assert_latest_names(f, key);
        fx_replica_restart(f, NULL); /* killed */
        fx_step(f);
        assert_int_equal(ls_storage_fault_calls(f->fault, LS_FAULT_PUT), 1);
        fx_assert_restores_live(f);
    }

    /* The worker goes on: the cut one is no longer the newest. */
    size_t n = 0;
    uint8_t *before = fx_image(f, &n);
    ls_source_pos(f->src, &p0);
    cut_put(f, 0, 20);
    fx_commit_ship(f, 4);
    fx_commit_ship(f, 4);
    fx_wal_key(f, key, p0.index, (uint32_t)p0.size);
    assert_latest_names(f, key);
    ls_restore_plan o = fx_ropts();
    o.index = p0.index;
    o.offset = (int64_t)p0.size;
    fx_restore_check(f, &o, before, n); /* up to the cut */
    free(before);
    fx_next_index(f);
    f->r->last_snapshot_ms = 0;
    f->r->o.snapshot_interval_ms = 1;
    fx_step(f);
    fx_assert_restores_live(f);
}

/*
 * A snapshot cut short (the sender killed mid-upload on a store that keeps
 * what arrived): the restarted replica must not take it for a whole one.
 */
static void test_short_put_snapshot(void **state)
{
    fx *f = *state;
    char key[LS_LAYOUT_KEY_MAX];
    static const int64_t keeps[] = {0, 5, 300};
    for (size_t i = 0; i < sizeof(keeps) / sizeof(keeps[0]); i++) {
        /* The first step of a generation: its segment, then its snapshot. */
        fx_insert(f, 30, 300);
        fx_sync(f);
        if (i > 0) { /* later: shipped first, then a due snapshot is the step's one put */
            fx_next_index(f);
            fx_step(f);
            f->r->last_snapshot_ms = 0;
            f->r->o.snapshot_interval_ms = 1;
        }
        ls_spool_pos sp;
        ls_source_pos(f->src, &sp);
        cut_put(f, i == 0 ? 1 : 0, keeps[i]);
        fx_step(f);
        assert_int_equal(ls_storage_fault_injected(f->fault), 1);
        assert_int_equal(ls_storage_fault_calls(f->fault, LS_FAULT_PUT), i == 0 ? 2 : 1);
        fx_snap_key(f, key, sp.index);
        assert_true(fx_has_key(f, key));
        assert_latest_names(f, key);
        fx_replica_restart(f, NULL); /* killed */
        fx_step(f);
        fx_assert_restores_live(f);
    }
}

/* ---- failures of every operation at every call of a cycle ---- */

/* One replication cycle: commits, a new WAL index, a due snapshot, retention. */
static int cycle(fx *f)
{
    int rc;
    fx_insert(f, 3, 300);
    fx_sync(f);
    if ((rc = ls_replica_step(f->r)) != 0)
        return rc;
    fx_next_index(f);
    f->r->last_snapshot_ms = 0;
    f->r->last_retention_ms = 1;
    return ls_replica_step(f->r);
}

static void test_fail_every_call_of_a_cycle(void **state)
{
    fx *f = *state;
    static const unsigned ops[] = {LS_FAULT_PUT, LS_FAULT_GET, LS_FAULT_LIST, LS_FAULT_STAT,
                                   LS_FAULT_DEL};
    static const int64_t partials[] = {-1, 10};
    ls_replica_opts o = {.name = "mem", .snapshot_interval_ms = 1, .retention_ms = 3600000,
                         .retention_check_ms = 1};
    fx_replica_restart(f, &o);
    fx_step(f);
    int fired = 0;
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        for (size_t p = 0; p < 2; p++) {
            for (uint64_t k = 0; k < 30; k++) {
                ls_fault rule = {.ops = ops[i], .skip = k, .times = 1, .code = LS_ENET,
                                 .partial = partials[p]};
                /* Retention deletes nothing an hour young: make the snapshots old. */
                fx_set_mtimes(f, "", ls_unix_now_ms() - 2 * 3600000);
                ls_storage_fault_set(f->fault, &rule);
                int rc = cycle(f);
                uint64_t hit = ls_storage_fault_injected(f->fault);
                if (rc) {
                    /* The worker loop's recovery: forget the position, step again. */
                    assert_int_equal(hit, 1);
                    assert_non_null(strstr(ls_errmsg(f->r->ctx), "injected fault"));
                    ls_err_clear(f->r->ctx);
                    f->r->have_pos = 0;
                    fx_step(f);
                    fired++;
                }
                assert_int_equal(fx_has(f), 1);
                fx_assert_restores_live(f);
                if (!hit)
                    break; /* past the last call of the cycle */
            }
        }
    }
    assert_true(fired >= 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_TEST(test_slow_everything),
        FX_TEST(test_hang_put_and_list_then_stop),
        FX_TEST(test_hang_get_restore_cancel),
        FX_TEST(test_short_reads_restore),
        FX_TEST(test_short_read_learning_position),
        FX_TEST(test_short_listing_learning_position),
        FX_TEST(test_short_listing_restore),
        FX_TEST(test_short_put_segment),
        FX_TEST(test_short_put_snapshot),
        FX_TEST(test_fail_every_call_of_a_cycle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
