/*
 * test_replication.c - the replication engine in process, on real SQLite
 * databases and the in-memory store (repl_fixture.h): the source following
 * the WAL into its spool (commits, checkpoint cycles and WAL restarts, a
 * database replaced under it, re-attaching), the replica worker's steps
 * (segments and snapshots under the layout's keys, what ls_replica_has
 * reports, a restarted worker resuming from the store), retention, and the
 * failures of the store (transient and permanent put failures, lost replies,
 * a damaged newest segment), and the spool's cap (a replica that is away
 * dropped from the spool, and its fresh snapshot when it is back). Restore
 * planning and restore failures are in test_restore_plan.c.
 */
#define _GNU_SOURCE
#include "repl_fixture.h"

#include "engine.h"

/* ---- the source ---- */

/* The stored snapshot at `index` is the live database, page for page. */
static void assert_snapshot_is_live(fx *f, uint32_t index)
{
    char key[LS_LAYOUT_KEY_MAX];
    size_t n = 0, in = 0;
    fx_snap_key(f, key, index);
    uint8_t *snap = fx_object(f, key, &n);
    uint8_t *img = fx_image(f, &in);
    assert_int_equal(n, in);
    assert_memory_equal(snap, img, n);
    free(snap);
    free(img);
}

/* Bytes [0, n) of the spool file of `index` equal the live WAL's bytes [0, n). */
static void assert_spool_is_wal_prefix(fx *f, uint32_t index, uint64_t n)
{
    char spool[PATH_MAX], wal[256];
    size_t sn = 0, wn = 0;
    ls_spool_file(f->src->spool.dir, f->src->spool.gen, index, spool, sizeof(spool));
    snprintf(wal, sizeof(wal), "%s-wal", f->db);
    uint8_t *s = fx_file(spool, &sn), *w = fx_file(wal, &wn);
    assert_int_equal(sn, n);
    assert_true(wn >= n);
    assert_memory_equal(s, w, n);
    free(s);
    free(w);
}

static uint64_t wal_size(fx *f)
{
    char wal[256];
    struct stat st;
    snprintf(wal, sizeof(wal), "%s-wal", f->db);
    assert_int_equal(stat(wal, &st), 0);
    return (uint64_t)st.st_size;
}

static void test_source_sync_copies_commits(void **state)
{
    fx *f = *state;
    ls_spool_pos p0, p1, p2;

    ls_source_pos(f->src, &p0);
    assert_true(ls_layout_is_gen(p0.gen));
    assert_int_equal(p0.index, 0);
    /* The CREATE TABLE is already in the WAL: the spool starts with it. */
    assert_true(p0.size > LS_WAL_HDRSIZE);
    assert_int_equal((p0.size - LS_WAL_HDRSIZE) % FX_FRAME, 0);
    assert_int_equal(p0.size, wal_size(f));
    uint64_t commits = f->src->commits_copied;

    fx_insert(f, 5, 300);
    assert_int_equal(fx_sync(f), 1);
    ls_source_pos(f->src, &p1);
    assert_string_equal(p1.gen, p0.gen);
    assert_int_equal(p1.index, 0);
    assert_true(p1.size > p0.size);
    assert_int_equal((p1.size - p0.size) % FX_FRAME, 0);
    assert_int_equal(p1.size, wal_size(f));
    assert_true(p1.seq > p0.seq);
    assert_spool_is_wal_prefix(f, 0, p1.size);

    /* Nothing new: nothing grows, nobody is woken. */
    assert_int_equal(fx_sync(f), 0);
    ls_source_pos(f->src, &p2);
    assert_int_equal(p2.size, p1.size);
    assert_int_equal(p2.seq, p1.seq);
    assert_int_equal(f->src->commits_copied, commits + 1);
}

static void test_source_skips_uncommitted_frames(void **state)
{
    fx *f = *state;
    ls_spool_pos p0, p1, p2;

    ls_source_pos(f->src, &p0);
    /* A tiny cache makes SQLite spill a transaction's pages into the WAL before it commits. */
    fx_exec(f, "PRAGMA cache_size=2; BEGIN");
    fx_exec(f, "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<200) "
               "INSERT INTO t(v) SELECT randomblob(1000) FROM c");
    assert_true(wal_size(f) > p0.size); /* frames without a commit are in the WAL */
    fx_sync(f);
    ls_source_pos(f->src, &p1);
    assert_int_equal(p1.size, p0.size);
    assert_spool_is_wal_prefix(f, 0, p1.size);

    fx_exec(f, "COMMIT");
    assert_int_equal(fx_sync(f), 1);
    ls_source_pos(f->src, &p2);
    assert_int_equal(p2.size, wal_size(f));
    assert_spool_is_wal_prefix(f, 0, p2.size);
}

static void test_source_wal_restart_next_index(void **state)
{
    fx *f = *state;
    ls_spool_pos p0, p1;
    int busy = -1;
    char spool0[PATH_MAX];

    fx_insert(f, 3, 300);
    fx_sync(f);
    ls_source_pos(f->src, &p0);
    assert_int_equal(ls_source_checkpoint(f->src, &busy), 0);
    assert_int_equal(busy, 0);
    assert_int_equal(f->src->checkpoints, 1);
    /* The cycle restarts nothing by itself: the next writer does. */
    fx_sync(f);
    ls_source_pos(f->src, &p1);
    assert_int_equal(p1.index, 0);
    assert_int_equal(p1.size, p0.size);

    fx_insert(f, 1, 300);
    assert_int_equal(fx_sync(f), 1);
    ls_source_pos(f->src, &p1);
    assert_string_equal(p1.gen, p0.gen);
    assert_int_equal(p1.index, 1);
    assert_int_equal(p1.salt1, p0.salt1 + 1);
    assert_true(p1.size > LS_WAL_HDRSIZE);
    /* One commit in the restarted WAL (SQLite writes over the old frames in place). */
    assert_int_equal(p1.size, LS_WAL_HDRSIZE + FX_FRAME);
    assert_true(wal_size(f) > p1.size);
    assert_spool_is_wal_prefix(f, 1, p1.size);
    /* The finished index keeps its bytes until gc. */
    ls_spool_file(f->src->spool.dir, p0.gen, 0, spool0, sizeof(spool0));
    struct stat st;
    assert_int_equal(stat(spool0, &st), 0);
    assert_int_equal((uint64_t)st.st_size, p0.size);
    ls_source_gc(f->src, 1);
    assert_false(fx_exists(spool0));
    /* gc never removes the current index. */
    ls_source_gc(f->src, 7);
    assert_int_equal(fx_sync(f), 0);
    assert_spool_is_wal_prefix(f, 1, p1.size);
}

static void test_source_detects_replaced_database(void **state)
{
    fx *f = *state;
    char other[256], path[300];
    sqlite3 *db = NULL;
    ls_spool_pos p0, p1;
    dev_t dev;
    ino_t ino;

    ls_source_pos(f->src, &p0);
    assert_int_equal(ls_source_replaced(f->src), 0);
    assert_int_equal(ls_source_identity(f->src, &dev, &ino), 0);

    snprintf(other, sizeof(other), "%s/other.db", f->dir);
    assert_int_equal(sqlite3_open(other, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER "
                                  "PRIMARY KEY, v BLOB); INSERT INTO t(v) VALUES (1)",
                                  NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    sqlite3_close(f->app);
    f->app = NULL;
    assert_int_equal(rename(other, f->db), 0);

    assert_int_equal(ls_source_replaced(f->src), 1);
    assert_int_equal(ls_source_identity(f->src, &dev, &ino), -1);
    /* The final sync still reads the old file's WAL, through the descriptor it has. */
    fx_sync(f);
    ls_source_detach(f->src);
    /* What replaced it brings no WAL of its own (the old one is not its). */
    snprintf(path, sizeof(path), "%s-wal", f->db);
    unlink(path);
    snprintf(path, sizeof(path), "%s-shm", f->db);
    unlink(path);
    assert_int_equal(ls_source_attach(f->src), 0);
    ls_source_pos(f->src, &p1);
    assert_true(ls_layout_is_gen(p1.gen));
    assert_string_not_equal(p1.gen, p0.gen);
    assert_int_equal(p1.index, 0);
    assert_int_equal(ls_source_replaced(f->src), 0);

    /* The replica starts the new generation with a snapshot of the new file. */
    fx_app_open(f);
    fx_step(f);
    ls_restore_result res = fx_assert_restores_live(f);
    assert_string_equal(res.generation, p1.gen);
}

static void test_source_reattach_continues(void **state)
{
    fx *f = *state;
    ls_spool_pos p0, p1;

    fx_insert(f, 2, 300);
    fx_sync(f);
    ls_source_pos(f->src, &p0);
    ls_source_detach(f->src);
    ls_source_pos(f->src, &p1);
    assert_string_equal(p1.gen, ""); /* replicas see no generation while detached */

    /* Commits while detached stay in the WAL (no checkpoint): the spool continues. */
    fx_insert(f, 2, 300);
    assert_int_equal(ls_source_attach(f->src), 0);
    ls_source_pos(f->src, &p1);
    assert_string_equal(p1.gen, p0.gen);
    assert_int_equal(p1.index, p0.index);
    assert_true(p1.size > p0.size);
    assert_int_equal(p1.size, wal_size(f));
    assert_spool_is_wal_prefix(f, 0, p1.size);
}

static void test_source_reattach_after_checkpoint_new_generation(void **state)
{
    fx *f = *state;
    ls_spool_pos p0, p1;

    fx_commit_ship(f, 2);
    ls_source_pos(f->src, &p0);
    ls_source_detach(f->src);
    /* The application checkpoints the WAL away while nobody follows it. */
    fx_insert(f, 2, 300);
    fx_exec(f, "PRAGMA wal_checkpoint(TRUNCATE)");
    fx_insert(f, 1, 300);
    assert_int_equal(ls_source_attach(f->src), 0);
    ls_source_pos(f->src, &p1);
    assert_true(ls_layout_is_gen(p1.gen));
    assert_string_not_equal(p1.gen, p0.gen);
    assert_int_equal(p1.index, 0);

    /* The replica notices the generation change and starts it with a snapshot. */
    assert_int_equal(fx_has(f), 0);
    fx_step(f);
    assert_string_equal(f->r->gen, p1.gen);
    assert_int_equal(fx_has(f), 1);
    char key[LS_LAYOUT_KEY_MAX];
    ls_layout_snapshot_key(key, sizeof(key), p1.gen, 0);
    assert_true(fx_has_key(f, key));
    ls_layout_snapshot_key(key, sizeof(key), p0.gen, 0);
    assert_true(fx_has_key(f, key)); /* the old generation stays until retention */
}

static void test_source_refusals(void **state)
{
    fx *f = *state;
    ls_source *s2 = NULL;
    char path[256];
    sqlite3 *db = NULL;

    /* One replicator per database. */
    assert_int_equal(fx_source_open(f->ctx, f->db, NULL, &s2), LS_EBUSY);
    assert_null(s2);
    snprintf(path, sizeof(path), "%s/missing.db", f->dir);
    assert_int_equal(fx_source_open(f->ctx, path, NULL, &s2), LS_ENOENT);
    assert_false(fx_exists(path));
    /* litesafe never changes the journal mode. */
    snprintf(path, sizeof(path), "%s/other-rollback.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE x(a)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(fx_source_open(f->ctx, path, NULL, &s2), LS_ENOTWAL);
    assert_null(s2);
}

/* ---- the replica worker ---- */

static void test_replica_first_step(void **state)
{
    fx *f = *state;
    ls_spool_pos sp;
    char key[LS_LAYOUT_KEY_MAX], shipped[LS_LAYOUT_POS_MAX], want[LS_LAYOUT_POS_MAX];
    int last_rc = -1;
    char msg[64] = "x";

    ls_source_pos(f->src, &sp);
    assert_int_equal(ls_replica_has(f->r, &sp, &last_rc, msg, sizeof(msg)), 0);
    ls_replica_shipped(f->r, shipped, sizeof(shipped));
    assert_string_equal(shipped, "nothing-restorable");
    assert_int_equal(ls_replica_needs_from(f->r, sp.gen), 0);

    fx_step(f);
    /* Exactly one segment from offset 0 and one snapshot, under the layout's keys. */
    ls_obj_list l = fx_list(f, "");
    assert_int_equal(l.n, 2);
    ls_key k;
    assert_int_equal(ls_layout_parse(l.v[0].key, &k), LS_KEY_SNAPSHOT);
    assert_string_equal(k.gen, sp.gen);
    assert_int_equal(k.index, 0);
    assert_int_equal(ls_layout_parse(l.v[1].key, &k), LS_KEY_WAL);
    assert_int_equal(k.index, 0);
    assert_int_equal(k.offset, 0);
    ls_obj_list_free(&l);

    /* The segment is the spool; the snapshot is the database. */
    size_t n = 0, in = 0;
    fx_wal_key(f, key, 0, 0);
    uint8_t *seg = fx_object(f, key, &n);
    assert_int_equal(n, sp.size);
    char spool[PATH_MAX];
    ls_spool_file(f->src->spool.dir, sp.gen, 0, spool, sizeof(spool));
    uint8_t *sb = fx_file(spool, &in);
    assert_memory_equal(seg, sb, n);
    free(seg);
    free(sb);
    assert_snapshot_is_live(f, 0);

    assert_int_equal(ls_replica_has(f->r, &sp, &last_rc, msg, sizeof(msg)), 1);
    assert_int_equal(last_rc, 0);
    assert_string_equal(msg, "");
    ls_replica_shipped(f->r, shipped, sizeof(shipped));
    ls_layout_pos_str(want, sizeof(want), sp.gen, 0, sp.size);
    assert_string_equal(shipped, want);
    assert_int_equal(f->r->snapshots, 1);
    assert_int_equal(f->r->segments, 1);
    assert_int_equal(ls_replica_needs_from(f->r, "0123456789abcdef"), 0);
}

static void test_replica_ships_increments(void **state)
{
    fx *f = *state;
    ls_spool_pos p0, p1;
    char key[LS_LAYOUT_KEY_MAX];

    fx_step(f);
    ls_source_pos(f->src, &p0);
    fx_insert(f, 4, 300);
    fx_sync(f);
    ls_source_pos(f->src, &p1);
    assert_int_equal(fx_has(f), 0); /* the spool moved past what the replica holds */

    ls_storage_fault_set(f->fault, &(ls_fault){0});
    fx_step(f);
    assert_int_equal(ls_storage_fault_calls(f->fault, LS_FAULT_PUT), 1); /* no new snapshot */
    assert_int_equal(fx_has(f), 1);
    fx_wal_key(f, key, 0, (uint32_t)p0.size);
    size_t n = 0, sn = 0;
    uint8_t *seg = fx_object(f, key, &n);
    assert_int_equal(n, p1.size - p0.size);
    char spool[PATH_MAX];
    ls_spool_file(f->src->spool.dir, p1.gen, 0, spool, sizeof(spool));
    uint8_t *sb = fx_file(spool, &sn);
    assert_memory_equal(seg, sb + p0.size, n);
    free(seg);
    free(sb);

    /* Nothing new: a step uploads nothing. */
    ls_storage_fault_set(f->fault, &(ls_fault){0});
    fx_step(f);
    assert_int_equal(ls_storage_fault_calls(f->fault, LS_FAULT_PUT), 0);
    assert_int_equal(fx_count(f, ""), 3);
}

static void test_replica_follows_next_index(void **state)
{
    fx *f = *state;
    char key[LS_LAYOUT_KEY_MAX];
    ls_spool_pos sp;

    fx_commit_ship(f, 2);
    fx_next_index(f);
    fx_next_index(f);
    assert_int_equal(fx_has(f), 0);
    fx_step(f);
    assert_int_equal(fx_has(f), 1);
    ls_source_pos(f->src, &sp);
    assert_int_equal(sp.index, 2);
    /* Each new index starts with a segment at offset 0 holding its header. */
    for (uint32_t i = 1; i <= 2; i++) {
        size_t n = 0;
        fx_wal_key(f, key, i, 0);
        uint8_t *seg = fx_object(f, key, &n);
        ls_wal_hdr h;
        assert_true(n > LS_WAL_HDRSIZE);
        assert_int_equal(ls_wal_hdr_decode(seg, &h), 0);
        free(seg);
    }
    assert_int_equal(ls_replica_needs_from(f->r, sp.gen), 2);
    /* Still one snapshot: at index 0. */
    ls_obj_list l = fx_list(f, "");
    size_t snaps = 0;
    for (size_t i = 0; i < l.n; i++)
        snaps += ls_layout_parse(l.v[i].key, NULL) == LS_KEY_SNAPSHOT;
    ls_obj_list_free(&l);
    assert_int_equal(snaps, 1);

    ls_restore_result res = fx_assert_restores_live(f);
    assert_int_equal(res.snapshot_index, 0);
    assert_int_equal(res.index, 2);
    assert_int_equal(res.offset, sp.size);
}

static void test_replica_restart_resumes(void **state)
{
    fx *f = *state;
    ls_spool_pos p0, p1;
    char key[LS_LAYOUT_KEY_MAX];

    fx_commit_ship(f, 3);
    ls_source_pos(f->src, &p0);
    size_t before = fx_count(f, "");

    fx_replica_restart(f, NULL);
    ls_storage_fault_set(f->fault, &(ls_fault){0});
    assert_int_equal(fx_has(f), 0); /* nothing known before the first step */
    fx_step(f);
    /* The position came from the store: nothing uploaded again, no new snapshot. */
    assert_int_equal(ls_storage_fault_calls(f->fault, LS_FAULT_PUT), 0);
    assert_int_equal(ls_storage_fault_calls(f->fault, LS_FAULT_LIST), 1);
    assert_int_equal(f->r->index, 0);
    assert_int_equal(f->r->offset, p0.size);
    assert_int_equal(f->r->have_snapshot, 1);
    assert_int_equal(fx_has(f), 1);
    assert_int_equal(fx_count(f, ""), before);

    fx_insert(f, 1, 300);
    fx_sync(f);
    ls_source_pos(f->src, &p1);
    ls_storage_fault_set(f->fault, &(ls_fault){0});
    fx_step(f);
    assert_int_equal(ls_storage_fault_calls(f->fault, LS_FAULT_PUT), 1);
    fx_wal_key(f, key, 0, (uint32_t)p0.size);
    assert_true(fx_has_key(f, key));
    assert_int_equal(fx_count(f, ""), before + 1);

    fx_assert_restores_live(f);
}

/*
 * A replica that stopped while the spool went on to later indexes: a restart
 * ships the rest of its index, then the later ones.
 */
static void test_replica_restart_catches_up_indexes(void **state)
{
    fx *f = *state;
    ls_spool_pos sp;

    fx_commit_ship(f, 1);
    fx_insert(f, 1, 300); /* index 0 grows after the replica's last step */
    fx_sync(f);
    fx_next_index(f);
    fx_next_index(f);
    fx_replica_restart(f, NULL);
    fx_step(f);
    ls_source_pos(f->src, &sp);
    assert_int_equal(f->r->index, sp.index);
    assert_int_equal(f->r->offset, sp.size);
    assert_int_equal(fx_has(f), 1);
    fx_assert_restores_live(f);
}

static void test_replica_snapshot_interval(void **state)
{
    fx *f = *state;
    ls_replica_opts o = {.name = "mem", .snapshot_interval_ms = 3600000};
    char key[LS_LAYOUT_KEY_MAX];

    fx_replica_restart(f, &o);
    fx_commit_ship(f, 1);
    fx_next_index(f);
    fx_step(f);
    fx_snap_key(f, key, 1);
    assert_false(fx_has_key(f, key)); /* not due yet */
    f->r->last_snapshot_ms = 0;       /* the interval has passed */
    fx_step(f);
    assert_true(fx_has_key(f, key));
    assert_int_equal(f->r->snapshots, 2);
    assert_snapshot_is_live(f, 1);
}

/* ---- retention ---- */

/* Three snapshots (indexes 0, 1, 2) with their segments, in one generation. */
static void three_snapshots(fx *f)
{
    char key[LS_LAYOUT_KEY_MAX];
    fx_commit_ship(f, 1);
    for (int i = 1; i <= 2; i++) {
        fx_next_index(f);
        f->r->last_snapshot_ms = 0;
        f->r->o.snapshot_interval_ms = 3600000;
        fx_step(f);
        fx_snap_key(f, key, (uint32_t)i);
        assert_true(fx_has_key(f, key));
    }
    f->r->o.snapshot_interval_ms = 0;
}

static void test_retention_removes_older_snapshots(void **state)
{
    fx *f = *state;
    ls_replica_opts o = {.name = "mem", .retention_ms = 3600000};
    char key[LS_LAYOUT_KEY_MAX], prefix[LS_LAYOUT_KEY_MAX];
    int64_t now = (int64_t)time(NULL) * 1000;

    fx_replica_restart(f, &o);
    three_snapshots(f);
    fx_snap_key(f, key, 0);
    assert_int_equal(ls_storage_mem_set_mtime(f->mem, key, now - 3 * 3600000), 0);
    fx_snap_key(f, key, 1);
    assert_int_equal(ls_storage_mem_set_mtime(f->mem, key, now - 2 * 3600000), 0);
    /* Segments are judged by their index, not their age. */
    fx_set_mtimes(f, "generations/", now - 4 * 3600000);
    fx_snap_key(f, key, 2);
    assert_int_equal(ls_storage_mem_set_mtime(f->mem, key, now - 60000), 0);
    size_t before = fx_count(f, "");

    f->r->last_retention_ms = 1; /* a retention pass is due */
    fx_step(f);
    ls_obj_list l = fx_list(f, "");
    assert_true(l.n > 0 && l.n < before);
    for (size_t i = 0; i < l.n; i++) {
        ls_key k;
        assert_int_not_equal(ls_layout_parse(l.v[i].key, &k), LS_KEY_OTHER);
        assert_int_equal(k.index, 2); /* only the retained snapshot's index and later */
    }
    ls_obj_list_free(&l);
    fx_snap_key(f, key, 2);
    assert_true(fx_has_key(f, key));
    fx_wal_key(f, key, 2, 0);
    assert_true(fx_has_key(f, key));
    assert_true(f->r->last_retention_ms > 1);

    ls_restore_result res = fx_assert_restores_live(f);
    assert_int_equal(res.snapshot_index, 2);
    ls_layout_gen_prefix(prefix, sizeof(prefix), f->r->gen);
    assert_int_equal(fx_count(f, prefix), fx_count(f, ""));
}

static void test_retention_keeps_newest_when_all_expired(void **state)
{
    fx *f = *state;
    ls_replica_opts o = {.name = "mem", .retention_ms = 3600000};
    char key[LS_LAYOUT_KEY_MAX];
    int64_t now = (int64_t)time(NULL) * 1000;

    fx_replica_restart(f, &o);
    three_snapshots(f);
    fx_insert(f, 1, 300);
    fx_sync(f);
    fx_set_mtimes(f, "", now - 5 * 3600000);

    f->r->last_retention_ms = 1;
    fx_step(f);
    /* A new snapshot was taken first (index 2, replacing the old one's key), so
     * the replica stays restorable; everything before it went. */
    fx_snap_key(f, key, 2);
    ls_obj o2;
    assert_int_equal(f->mem->stat(f->mem, f->ctx, key, &o2), 0);
    assert_true(o2.mtime_ms >= now - 60000);
    ls_obj_list l = fx_list(f, "");
    for (size_t i = 0; i < l.n; i++) {
        ls_key k;
        ls_layout_parse(l.v[i].key, &k);
        assert_int_equal(k.index, 2);
    }
    ls_obj_list_free(&l);
    fx_assert_restores_live(f);
}

static void test_retention_removes_old_generation(void **state)
{
    fx *f = *state;
    ls_replica_opts o = {.name = "mem", .retention_ms = 3600000};
    char old[LS_GEN_LEN + 1], prefix[LS_LAYOUT_KEY_MAX];
    int64_t now = (int64_t)time(NULL) * 1000;

    fx_replica_restart(f, &o);
    fx_commit_ship(f, 1);
    memcpy(old, f->r->gen, sizeof(old));
    /* A new generation (the WAL was checkpointed while detached). */
    ls_source_detach(f->src);
    fx_exec(f, "PRAGMA wal_checkpoint(TRUNCATE)");
    fx_insert(f, 1, 300);
    assert_int_equal(ls_source_attach(f->src), 0);
    fx_step(f);
    assert_string_not_equal(f->r->gen, old);
    ls_layout_gen_prefix(prefix, sizeof(prefix), old);
    assert_int_equal(fx_count(f, prefix), 2);

    /* Within retention the old generation stays... */
    f->r->last_retention_ms = 1;
    fx_step(f);
    assert_int_equal(fx_count(f, prefix), 2);
    /* ...past it, it goes whole; the current one is untouched. */
    size_t cur = fx_count(f, "") - 2;
    fx_set_mtimes(f, prefix, now - 2 * 3600000);
    f->r->last_retention_ms = 1;
    fx_step(f);
    assert_int_equal(fx_count(f, prefix), 0);
    assert_int_equal(fx_count(f, ""), cur);
}

/* ---- failures of the store ---- */

/*
 * The replica holds everything at *p0; then a commit is spooled that it does
 * not have yet. Returns the number of objects on the store.
 */
static size_t shipped_then_pending(fx *f, ls_spool_pos *p0)
{
    fx_step(f);
    ls_source_pos(f->src, p0);
    fx_insert(f, 3, 300);
    assert_int_equal(fx_sync(f), 1);
    assert_int_equal(fx_has(f), 0);
    return fx_count(f, "");
}

static void test_put_fails_transient_then_retried(void **state)
{
    fx *f = *state;
    ls_spool_pos p0, p1;
    char key[LS_LAYOUT_KEY_MAX];
    int last_rc = 0;

    size_t before = shipped_then_pending(f, &p0);
    ls_source_pos(f->src, &p1);

    ls_storage_fault_set(f->fault, &(ls_fault){.ops = LS_FAULT_PUT, .times = 1,
                                               .code = LS_ENET, .partial = -1});
    assert_int_equal(ls_replica_step(f->r), LS_ENET);
    assert_non_null(strstr(ls_errmsg(f->r->ctx), "injected fault"));
    assert_int_equal(ls_storage_fault_calls(f->fault, LS_FAULT_PUT), 1); /* no retry inside */
    assert_int_equal(fx_count(f, ""), before);
    assert_int_equal(fx_has(f), 0);
    assert_int_equal(f->r->offset, p0.size); /* the position did not move */

    /* The next step ships from the position it knows: the same segment. */
    fx_step(f);
    assert_int_equal(ls_storage_fault_injected(f->fault), 1);
    assert_int_equal(ls_storage_fault_calls(f->fault, LS_FAULT_PUT), 2);
    assert_int_equal(fx_count(f, ""), before + 1);
    fx_wal_key(f, key, 0, (uint32_t)p0.size);
    assert_true(fx_has_key(f, key));
    ls_source_pos(f->src, &p1);
    assert_int_equal(ls_replica_has(f->r, &p1, &last_rc, NULL, 0), 1);

    fx_assert_restores_live(f);
}

/* The worker loop forgets the position after a failure: it is learnt again from the store. */
static void test_put_fails_cut_short_relearn(void **state)
{
    fx *f = *state;
    ls_spool_pos p0;

    size_t before = shipped_then_pending(f, &p0);
    /* The upload breaks after 10 bytes: the store keeps nothing of it. */
    ls_storage_fault_set(f->fault, &(ls_fault){.ops = LS_FAULT_PUT, .times = 1,
                                               .code = LS_ENET, .partial = 10});
    assert_int_equal(ls_replica_step(f->r), LS_ENET);
    assert_int_equal(fx_count(f, ""), before);
    f->r->have_pos = 0;
    fx_step(f);
    ls_spool_pos p1;
    ls_source_pos(f->src, &p1);
    assert_int_equal(f->r->offset, p1.size);
    assert_int_equal(fx_count(f, ""), before + 1);
    assert_int_equal(fx_has(f), 1);
    fx_assert_restores_live(f);
}

/* The object was stored but the reply was lost: the same key is written again, once. */
static void test_put_lost_reply(void **state)
{
    fx *f = *state;
    ls_spool_pos p0;
    char key[LS_LAYOUT_KEY_MAX];

    size_t before = shipped_then_pending(f, &p0);
    ls_storage_fault_set(f->fault, &(ls_fault){.ops = LS_FAULT_PUT, .times = 1,
                                               .code = LS_ENET, .partial = 1 << 30});
    assert_int_equal(ls_replica_step(f->r), LS_ENET);
    assert_int_equal(fx_count(f, ""), before + 1); /* it is there */
    assert_int_equal(fx_has(f), 0);                 /* but not known to be */
    f->r->have_pos = 0;
    fx_step(f);
    /* Learnt from the store: the segment is whole, nothing is uploaded again. */
    assert_int_equal(ls_storage_fault_calls(f->fault, LS_FAULT_PUT), 1);
    assert_int_equal(fx_count(f, ""), before + 1);
    assert_int_equal(fx_has(f), 1);

    /* Without relearning, the step puts the same key again: still one object. */
    ls_spool_pos p1;
    ls_source_pos(f->src, &p1);
    fx_insert(f, 1, 300);
    fx_sync(f);
    ls_storage_fault_set(f->fault, &(ls_fault){.ops = LS_FAULT_PUT, .times = 1,
                                               .code = LS_ENET, .partial = 1 << 30});
    assert_int_equal(ls_replica_step(f->r), LS_ENET);
    fx_step(f);
    assert_int_equal(ls_storage_fault_calls(f->fault, LS_FAULT_PUT), 2);
    assert_int_equal(fx_count(f, ""), before + 2);
    fx_wal_key(f, key, 0, (uint32_t)p0.size);
    assert_true(fx_has_key(f, key));
    fx_wal_key(f, key, 0, (uint32_t)p1.size);
    assert_true(fx_has_key(f, key));
    fx_assert_restores_live(f);
}

static void test_put_fails_permanent(void **state)
{
    fx *f = *state;
    int last_rc = 0;
    char msg[512];
    ls_spool_pos sp;

    ls_storage_fault_set(f->fault, &(ls_fault){.ops = LS_FAULT_PUT, .times = -1,
                                               .code = LS_EPERM, .partial = -1});
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ls_replica_step(f->r), LS_EPERM);
        assert_non_null(strstr(ls_errmsg(f->r->ctx), "put generations/"));
        f->r->have_pos = 0;
    }
    assert_int_equal(ls_storage_fault_calls(f->fault, LS_FAULT_PUT), 3);
    assert_int_equal(fx_count(f, ""), 0);
    ls_source_pos(f->src, &sp);
    assert_int_equal(ls_replica_has(f->r, &sp, &last_rc, msg, sizeof(msg)), 0);

    /* Once the store accepts puts again, nothing committed meanwhile is missing. */
    fx_insert(f, 2, 300);
    fx_sync(f);
    ls_storage_fault_set(f->fault, &(ls_fault){0});
    fx_step(f);
    assert_int_equal(fx_has(f), 1);
    fx_assert_restores_live(f);
}

/* The first snapshot's upload fails after its segment went: nothing is restorable until it is. */
static void test_snapshot_put_fails(void **state)
{
    fx *f = *state;
    char key[LS_LAYOUT_KEY_MAX];
    ls_storage_fault_set(f->fault, &(ls_fault){.ops = LS_FAULT_PUT, .skip = 1, .times = 1,
                                               .code = LS_ENET, .partial = -1});
    assert_int_equal(ls_replica_step(f->r), LS_ENET);
    assert_int_equal(fx_count(f, ""), 1);
    fx_wal_key(f, key, 0, 0);
    assert_true(fx_has_key(f, key));
    assert_int_equal(fx_has(f), 0);
    char shipped[LS_LAYOUT_POS_MAX];
    ls_replica_shipped(f->r, shipped, sizeof(shipped));
    assert_string_equal(shipped, "nothing-restorable");

    char out[256];
    ls_restore_result res;
    ls_restore_plan ro = fx_ropts();
    assert_int_equal(fx_restore_from(f, f->mem, &ro, out, sizeof(out), &res), LS_ENOENT);

    fx_step(f);
    fx_snap_key(f, key, 0);
    assert_true(fx_has_key(f, key));
    assert_int_equal(fx_has(f), 1);
}

/* The newest segment on the store does not decode (a server kept a broken upload). */
static void test_damaged_newest_segment_uploaded_again(void **state)
{
    fx *f = *state;
    ls_spool_pos p0;
    char key[LS_LAYOUT_KEY_MAX];

    fx_step(f);
    ls_source_pos(f->src, &p0);
    fx_commit_ship(f, 2);
    fx_wal_key(f, key, 0, (uint32_t)p0.size);
    assert_int_equal(ls_storage_put_buf(f->mem, f->ctx, key, "garbage", 7), 0);

    fx_replica_restart(f, NULL);
    ls_storage_fault_set(f->fault, &(ls_fault){0});
    fx_step(f);
    assert_int_equal(ls_storage_fault_calls(f->fault, LS_FAULT_PUT), 1);
    size_t n = 0;
    uint8_t *seg = fx_object(f, key, &n); /* decodes again */
    ls_spool_pos p1;
    ls_source_pos(f->src, &p1);
    assert_int_equal(n, p1.size - p0.size);
    free(seg);
    fx_assert_restores_live(f);
}

/* A store holding more of this generation than the spool: another writer; refused. */
static void test_replica_beyond_spool_refused(void **state)
{
    fx *f = *state;
    ls_spool_pos sp;
    char key[LS_LAYOUT_KEY_MAX];
    uint8_t *z = NULL, junk[64] = {0};
    size_t zn = 0;

    fx_step(f);
    ls_source_pos(f->src, &sp);
    assert_int_equal(ls_lz4_compress_buf(f->ctx, junk, sizeof(junk), &z, &zn), 0);
    fx_wal_key(f, key, 0, (uint32_t)sp.size);
    assert_int_equal(ls_storage_put_buf(f->mem, f->ctx, key, z, zn), 0);
    free(z);
    fx_replica_restart(f, NULL);
    assert_int_equal(ls_replica_step(f->r), LS_ECORRUPT);
    assert_non_null(strstr(ls_errmsg(f->r->ctx), "beyond the local spool"));
}

/* ---- the spool's cap (engine.c, THE CAP) ---- */

/* A second replica that keeps up, over a store of its own (freed with the replica). */
static ls_replica *keeper_new(fx *f)
{
    ls_storage *m = NULL;
    ls_replica *r = NULL;
    ls_replica_opts o = {.name = "keeper"};
    assert_int_equal(ls_storage_mem_open(f->ctx, "keeper", &m), 0);
    assert_int_equal(ls_replica_new(f->ctx, f->src, m, &o, &r), 0);
    return r;
}

static void keeper_step(ls_replica *k)
{
    int rc = ls_replica_step(k);
    if (rc)
        fail_msg("keeper step: %d %s", rc, ls_errmsg(k->ctx));
}

/* The replica's store refuses everything (a server that is away), or works again. */
static void set_away(fx *f, int away)
{
    ls_fault off = {0}, on = {.ops = LS_FAULT_ALL, .times = -1, .code = LS_ENET, .partial = -1};
    ls_storage_fault_set(f->fault, away ? &on : &off);
}

/* Shipped by both, then `n` more WAL indexes of ~100 KB the away replica misses. */
static void away_for_indexes(fx *f, ls_replica *keeper, int n)
{
    fx_commit_ship(f, 2);
    keeper_step(keeper);
    set_away(f, 1);
    for (int i = 0; i < n; i++) {
        fx_insert(f, 25, 4000);
        fx_sync(f);
        fx_next_index(f);
        keeper_step(keeper);
        assert_int_not_equal(ls_replica_step(f->r), 0);
        ls_err_clear(f->r->ctx);
    }
}

static size_t snapshot_count(fx *f)
{
    ls_obj_list l = fx_list(f, "");
    size_t n = 0;
    for (size_t i = 0; i < l.n; i++)
        n += ls_layout_parse(l.v[i].key, NULL) == LS_KEY_SNAPSHOT;
    ls_obj_list_free(&l);
    return n;
}

/*
 * Past the cap, the replica that is away is dropped from the spool (once,
 * counted, marked) and the one that keeps up is not; the spool shrinks to
 * the current index. Back, the dropped replica takes a fresh snapshot of
 * the same generation and restores to the live database; the marker goes.
 */
static void test_spool_cap_drops_away_replica(void **state)
{
    fx *f = *state;
    ls_replica *keeper = keeper_new(f);
    ls_replica *reps[2] = {f->r, keeper};
    ls_spool_pos sp;
    char path[PATH_MAX];

    away_for_indexes(f, keeper, 4);
    ls_source_pos(f->src, &sp);
    uint64_t before = ls_source_spool_bytes(f->src, 0);
    assert_true(before > 300000);
    /* Under the cap nothing happens; the automatic cap (1 GiB) is far away too. */
    assert_int_equal(ls_engine_trim_spool(f->ctx, f->src, reps, 2, (int64_t)before), 0);
    assert_int_equal(ls_engine_trim_spool(f->ctx, f->src, reps, 2, 0), 0);
    assert_int_equal(ls_replica_dropped(f->r, sp.gen), 0);
    ls_spool_file(f->src->spool.dir, sp.gen, 0, path, sizeof(path));
    assert_true(fx_exists(path));

    /* Past it: the away replica goes, the keeper stays; only the current index is kept. */
    assert_int_equal(ls_engine_trim_spool(f->ctx, f->src, reps, 2, 100000), 1);
    assert_int_equal(ls_replica_dropped(f->r, sp.gen), 1);
    assert_int_equal(ls_replica_dropped(keeper, sp.gen), 0);
    assert_int_equal(f->r->spool_drops, 1);
    assert_int_equal(keeper->spool_drops, 0);
    assert_true(ls_spool_is_dropped(f->src->spool.dir, sp.gen, "mem"));
    assert_false(ls_spool_is_dropped(f->src->spool.dir, sp.gen, "keeper"));
    for (uint32_t i = 0; i < sp.index; i++) {
        ls_spool_file(f->src->spool.dir, sp.gen, i, path, sizeof(path));
        assert_false(fx_exists(path));
    }
    assert_int_equal(ls_source_spool_bytes(f->src, 0), sp.size);
    assert_int_equal(ls_replica_needs_from(f->r, sp.gen), UINT32_MAX);
    /* Once per episode. */
    assert_int_equal(ls_engine_trim_spool(f->ctx, f->src, reps, 2, 100000), 0);
    assert_int_equal(f->r->spool_drops, 1);

    /* Back: a fresh snapshot at the current index, and everything from there. */
    size_t snaps = snapshot_count(f);
    fx_insert(f, 3, 300);
    fx_sync(f);
    set_away(f, 0);
    fx_step(f);
    assert_int_equal(snapshot_count(f), snaps + 1);
    assert_int_equal(ls_replica_dropped(f->r, sp.gen), 0);
    assert_int_equal(fx_has(f), 1);
    ls_source_pos(f->src, &sp);
    assert_int_equal(ls_replica_needs_from(f->r, sp.gen), sp.index);
    assert_false(ls_spool_is_dropped(f->src->spool.dir, sp.gen, "mem"));
    ls_restore_result res = fx_assert_restores_live(f);
    assert_int_equal(res.snapshot_index, sp.index);
    /* And it keeps shipping normally. */
    fx_commit_ship(f, 2);
    assert_int_equal(fx_has(f), 1);
    fx_assert_restores_live(f);
    ls_replica_free(keeper);
}

/*
 * A replicator restarted while a dropped replica is away: the marker, not
 * the in-memory state, tells the new worker that the indexes missing from
 * the spool were dropped, not shipped; it takes a fresh snapshot instead of
 * resuming after a gap.
 */
static void test_spool_cap_drop_survives_restart(void **state)
{
    fx *f = *state;
    ls_replica *keeper = keeper_new(f);
    ls_replica *reps[2] = {f->r, keeper};
    ls_spool_pos sp;

    away_for_indexes(f, keeper, 3);
    assert_int_equal(ls_engine_trim_spool(f->ctx, f->src, reps, 2, 50000), 1);
    ls_source_pos(f->src, &sp);
    size_t snaps = snapshot_count(f);

    fx_replica_restart(f, NULL); /* a new worker: nothing in memory, the store works */
    assert_int_equal(ls_replica_dropped(f->r, sp.gen), 0);
    reps[0] = f->r;
    fx_step(f);
    assert_int_equal(snapshot_count(f), snaps + 1);
    assert_int_equal(fx_has(f), 1);
    ls_restore_result res = fx_assert_restores_live(f);
    assert_int_equal(res.snapshot_index, sp.index);
    /* A restart counted no new drop; the marker is gone now. */
    assert_int_equal(f->r->spool_drops, 0);
    assert_false(ls_spool_is_dropped(f->src->spool.dir, sp.gen, "mem"));
    ls_replica_free(keeper);
}

/* A replica name that is no plain file name still gets its own marker. */
static void test_spool_drop_marker_names(void **state)
{
    fx *f = *state;
    const char *dir = f->src->spool.dir, *gen = f->src->spool.gen;
    assert_int_equal(ls_spool_mark_dropped(f->ctx, dir, gen, "../a/b"), 0);
    assert_true(ls_spool_is_dropped(dir, gen, "../a/b"));
    assert_false(ls_spool_is_dropped(dir, gen, "..%2Fa%2Fb"));
    assert_false(ls_spool_is_dropped(dir, gen, "b"));
    ls_spool_clear_dropped(dir, gen, "../a/b");
    assert_false(ls_spool_is_dropped(dir, gen, "../a/b"));
}

/*
 * Files in the spool's wal directory that are not spool files, though %x
 * reads a number in each ("-1" is ffffffff), are not taken for the newest
 * index (found by fuzz_spool_state: ls_spool_open created ffffffff.wal).
 */
static void test_spool_stray_names_ignored(void **state)
{
    fx *f = *state;
    static const char *const stray[] = {"-0000001.wal", "0x00000a.wal", "0000000A.wal",
                                        " 000000b.wal", "0000000c.walx", "0000000d.wa"};
    char path[PATH_MAX + 32], gen[LS_GEN_LEN + 1];
    int64_t newest = -1;

    fx_commit_ship(f, 2);
    for (size_t i = 0; i < sizeof(stray) / sizeof(stray[0]); i++) {
        snprintf(path, sizeof(path), "%s/generations/%s/wal/%s", f->src->spool.dir,
                 f->src->spool.gen, stray[i]);
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        fclose(fp);
    }
    assert_int_equal(ls_spool_peek(f->ctx, f->src->spool.dir, gen, &newest), 0);
    assert_string_equal(gen, f->src->spool.gen);
    assert_int_equal(newest, (int64_t)f->src->spool.index);
}

/*
 * The next index's spool file cannot be created (its directory gone, as a
 * stand-in for a full disk or no descriptors left): the sync fails, and the
 * next one creates it and goes on; nothing is lost.
 */
static void test_spool_index_created_again(void **state)
{
    fx *f = *state;
    char wal[PATH_MAX], moved[PATH_MAX + 8];
    int busy = -1;

    fx_commit_ship(f, 2);
    snprintf(wal, sizeof(wal), "%s/generations/%s/wal", f->src->spool.dir, f->src->spool.gen);
    snprintf(moved, sizeof(moved), "%s.away", wal);
    assert_int_equal(ls_source_checkpoint(f->src, &busy), 0);
    assert_int_equal(rename(wal, moved), 0);
    fx_insert(f, 2, 300); /* the WAL restarts: index 1 */
    int grew = 0;
    assert_int_not_equal(ls_source_sync(f->src, &grew), 0);
    ls_err_clear(f->ctx);
    assert_int_equal(fx_sync(f), 1);
    ls_spool_pos sp;
    ls_source_pos(f->src, &sp);
    assert_int_equal(sp.index, 1);
    assert_true(sp.size > LS_WAL_HDRSIZE);
    fx_step(f);
    assert_int_equal(fx_has(f), 1);
    fx_assert_restores_live(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FX_TEST(test_source_sync_copies_commits),
        FX_TEST(test_source_skips_uncommitted_frames),
        FX_TEST(test_source_wal_restart_next_index),
        FX_TEST(test_source_detects_replaced_database),
        FX_TEST(test_source_reattach_continues),
        FX_TEST(test_source_reattach_after_checkpoint_new_generation),
        FX_TEST(test_source_refusals),
        FX_TEST(test_replica_first_step),
        FX_TEST(test_replica_ships_increments),
        FX_TEST(test_replica_follows_next_index),
        FX_TEST(test_replica_restart_resumes),
        FX_TEST(test_replica_restart_catches_up_indexes),
        FX_TEST(test_replica_snapshot_interval),
        FX_TEST(test_retention_removes_older_snapshots),
        FX_TEST(test_retention_keeps_newest_when_all_expired),
        FX_TEST(test_retention_removes_old_generation),
        FX_TEST(test_put_fails_transient_then_retried),
        FX_TEST(test_put_fails_cut_short_relearn),
        FX_TEST(test_put_lost_reply),
        FX_TEST(test_put_fails_permanent),
        FX_TEST(test_snapshot_put_fails),
        FX_TEST(test_damaged_newest_segment_uploaded_again),
        FX_TEST(test_replica_beyond_spool_refused),
        FX_TEST(test_spool_cap_drops_away_replica),
        FX_TEST(test_spool_cap_drop_survives_restart),
        FX_TEST(test_spool_drop_marker_names),
        FX_TEST(test_spool_stray_names_ignored),
        FX_TEST(test_spool_index_created_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
