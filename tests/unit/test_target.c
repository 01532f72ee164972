/*
 * test_target.c - the public calls on replicas (litesafe.h, "Replicas:
 * restore, listing, validation") over file replicas in a temp directory,
 * whose objects are written in-process with the internal layout, LZ4 and
 * storage calls: URL and configuration targets (-replica narrowing and the
 * not-found errors, a copy of the caller's configuration), the choice of the
 * best replica (an unreachable one skipped), the listing, restore with
 * if_db_not_exists / if_replica_exists, and unknown option versions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "layout.h"
#include "storage.h"
#include "stream.h"

#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char dir[PATH_MAX];   /* the temp directory (real path) */
static ls_ctx *ctx;

/* DIR/suffix in one of a few static buffers. */
static const char *at(const char *suffix)
{
    static char buf[8][PATH_MAX];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, PATH_MAX, "%s/%s", dir, suffix);
    return b;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void has(const char *msg, const char *frag)
{
    if (!strstr(msg, frag))
        fail_msg("\"%s\" not in \"%s\"", frag, msg);
}

/* A database at `path` with one table t holding the row `v`. */
static void make_db(const char *path, const char *v)
{
    sqlite3 *db = NULL;
    char sql[256];
    unlink(path);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    snprintf(sql, sizeof(sql), "CREATE TABLE t(v TEXT); INSERT INTO t VALUES('%s');", v);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* The row of table t in the database at `path` ("" if it cannot be read). */
static void read_row(const char *path, char *out, size_t n)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    out[0] = '\0';
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    if (sqlite3_prepare_v2(db, "SELECT v FROM t", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/*
 * Store object `key` in the file replica at `root` (the bytes `p`, LZ4
 * framed), dated `mtime` (unix seconds). Returns its stored size.
 */
static size_t put_object(const char *root, const char *key, const void *p, size_t n, time_t mtime)
{
    ls_storage_opts so;
    ls_storage *st = NULL;
    uint8_t *z = NULL;
    size_t zn = 0;
    memset(&so, 0, sizeof(so));
    so.type = "file";
    so.path = root;
    assert_int_equal(ls_storage_open(ctx, &so, &st), 0);
    assert_int_equal(ls_lz4_compress_buf(ctx, p, n, &z, &zn), 0);
    assert_int_equal(ls_storage_put_buf(st, ctx, key, z, zn), 0);
    ls_storage_close(st);
    free(z);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", root, key);
    struct timespec ts[2] = {{mtime, 0}, {mtime, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
    return zn;
}

/* A snapshot (index `index` of generation `gen`) of a database holding row `v`. */
static size_t put_snapshot(const char *root, const char *gen, uint32_t index, const char *v,
                           time_t mtime)
{
    char key[LS_LAYOUT_KEY_MAX];
    const char *tmp = at("snap.db");
    make_db(tmp, v);
    FILE *f = fopen(tmp, "rb");
    assert_non_null(f);
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    unlink(tmp);
    ls_layout_snapshot_key(key, sizeof(key), gen, index);
    return put_object(root, key, buf, n, mtime);
}

static int setup(void **state)
{
    char tmpl[] = "/tmp/ls-unit-target-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    assert_non_null(realpath(tmpl, dir));
    assert_int_equal(ls_ctx_new(&ctx), 0);
    unsetenv("LITESAFE_CONFIG");
    return 0;
}

static int teardown(void **state)
{
    char cmd[PATH_MAX + 16];
    ls_ctx_free(ctx);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static const char GEN_A[] = "00000000000000aa", GEN_B[] = "00000000000000bb";

/* Unknown versions of the option structs are LS_EUSAGE; NULL options are the defaults. */
static void test_option_versions(void **state)
{
    ls_target_options to;
    ls_restore_options ro;
    ls_restore_result res;
    ls_target *t = NULL;

    assert_int_equal(ls_target_options_init(&to, LS_TARGET_OPTIONS_VERSION + 1), LS_EUSAGE);
    assert_int_equal(ls_restore_options_init(&ro, 0), LS_EUSAGE);
    assert_int_equal(ls_target_options_init(&to, LS_TARGET_OPTIONS_VERSION), 0);
    assert_int_equal(to.version, LS_TARGET_OPTIONS_VERSION);
    assert_null(to.config_path);
    assert_int_equal(ls_restore_options_init(&ro, LS_RESTORE_OPTIONS_VERSION), 0);
    assert_int_equal(ro.index, -1);
    assert_int_equal(ro.timestamp_ms, -1);

    to.version = 99;
    assert_int_equal(ls_target_open(ctx, at("r"), &to, &t), LS_EUSAGE);
    assert_null(t);
    has(ls_errmsg(ctx), "version");

    put_snapshot(at("r"), GEN_A, 0, "x", time(NULL));
    assert_int_equal(ls_target_open(ctx, "file:///nonexistent-root", NULL, &t), 0);
    ro.version = 99;
    assert_int_equal(ls_restore(ctx, t, at("out.db"), &ro, &res), LS_EUSAGE);
    ls_target_free(t);
    assert_int_equal(access(at("out.db"), F_OK), -1);

    /* Values a restore cannot take. */
    char url[PATH_MAX + 8];
    snprintf(url, sizeof(url), "file://%s", at("r"));
    assert_int_equal(ls_target_open(ctx, url, NULL, &t), 0);
    ls_restore_options_init(&ro, LS_RESTORE_OPTIONS_VERSION);
    ro.index = 1;
    ro.timestamp_ms = 1000;
    assert_int_equal(ls_restore(ctx, t, at("out.db"), &ro, &res), LS_EUSAGE);
    has(ls_errmsg(ctx), "cannot specify both -index and -timestamp");
    ls_restore_options_init(&ro, LS_RESTORE_OPTIONS_VERSION);
    ro.parallelism = 65;
    assert_int_equal(ls_restore(ctx, t, at("out.db"), &ro, &res), LS_EUSAGE);
    /* NULL options: the latest state. */
    assert_int_equal(ls_restore(ctx, t, at("out.db"), NULL, &res), 0);
    assert_int_equal(res.restored, 1);
    ls_target_free(t);
    ls_target_free(NULL);
}

/* A replica URL: one replica named after its type, no database, -o required. */
static void test_url_target(void **state)
{
    ls_target_options to = LS_TARGET_OPTIONS_INIT;
    ls_restore_result res;
    ls_target *t = NULL;
    char url[PATH_MAX + 8], row[16], pos[64];

    snprintf(url, sizeof(url), "file://%s", at("ra"));
    assert_int_equal(ls_is_url(url), 1);
    assert_int_equal(ls_is_url(at("ra")), 0);
    assert_int_equal(ls_is_url("s3://bucket/db"), 1);
    assert_int_equal(ls_is_url("db.sqlite"), 0);
    put_snapshot(at("ra"), GEN_A, 3, "url", time(NULL));

    to.replica = "file";
    assert_int_equal(ls_target_open(ctx, url, &to, &t), LS_EUSAGE);
    has(ls_errmsg(ctx), "cannot specify -replica with a replica URL");
    assert_int_equal(ls_target_open(ctx, url, NULL, &t), 0);
    assert_null(ls_target_database(t));
    assert_null(ls_target_meta_path(t));
    assert_int_equal(ls_target_replica_count(t), 1);
    assert_string_equal(ls_target_replica_name(t, 0), "file");
    assert_null(ls_target_replica_name(t, 1));

    assert_int_equal(ls_restore(ctx, t, NULL, NULL, &res), LS_EUSAGE);
    has(ls_errmsg(ctx), "-o PATH is required when restoring from a URL");
    assert_int_equal(ls_restore(ctx, t, at("url.db"), NULL, &res), 0);
    assert_int_equal(res.restored, 1);
    assert_int_equal(res.replica, 0);
    assert_string_equal(res.generation, GEN_A);
    assert_int_equal(res.snapshot_index, 3);
    assert_int_equal(res.index, 3);
    assert_int_equal(res.segments, 0);
    assert_true(res.page_count >= 2);
    assert_int_equal(res.page_size, 4096);
    assert_true(res.bytes_downloaded > 0);
    read_row(at("url.db"), row, sizeof(row));
    assert_string_equal(row, "url");

    ls_position_format(pos, sizeof(pos), res.generation, res.index, res.offset);
    assert_string_equal(pos, "00000000000000aa/00000003:0");

    /* A validation needs the live database's path with a URL target. */
    ls_validate_result vr;
    assert_int_equal(ls_target_validate(ctx, t, 0, NULL, 1000, &vr), LS_EUSAGE);
    assert_int_equal(ls_target_validate(ctx, t, 1, at("url.db"), 1000, &vr), LS_EUSAGE);
    ls_target_free(t);
}

/* A configuration with db.db (replicas a and b), lone.db (none). */
static const char *write_config(void)
{
    char text[4 * PATH_MAX];
    snprintf(text, sizeof(text),
             "dbs:\n"
             "  - path: %s\n"
             "    replicas:\n"
             "      - name: a\n"
             "        url: file://%s\n"
             "      - name: b\n"
             "        path: %s\n"
             "  - path: %s\n",
             at("db.db"), at("ra"), at("rb"), at("lone.db"));
    write_text(at("litesafe.yml"), text);
    return at("litesafe.yml");
}

/* A database of the configuration, -replica narrowing it, and the not-found errors. */
static void test_config_target(void **state)
{
    ls_target_options to = LS_TARGET_OPTIONS_INIT;
    ls_target *t = NULL;

    to.config_path = write_config();
    assert_int_equal(ls_target_open(ctx, at("db.db"), &to, &t), 0);
    assert_string_equal(ls_target_database(t), at("db.db"));
    assert_non_null(ls_target_meta_path(t));
    assert_int_equal(ls_target_replica_count(t), 2);
    assert_string_equal(ls_target_replica_name(t, 0), "a");
    assert_string_equal(ls_target_replica_name(t, 1), "b");
    ls_target_free(t);

    to.replica = "b";
    assert_int_equal(ls_target_open(ctx, at("db.db"), &to, &t), 0);
    assert_int_equal(ls_target_replica_count(t), 1);
    assert_string_equal(ls_target_replica_name(t, 0), "b");
    ls_target_free(t);

    to.replica = "zz";
    t = (ls_target *)&to; /* must be reset on failure */
    assert_int_equal(ls_target_open(ctx, at("db.db"), &to, &t), LS_ENOENT);
    assert_null(t);
    assert_string_equal(ls_errmsg(ctx), "replica not found: zz");
    to.replica = NULL;
    assert_int_equal(ls_target_open(ctx, at("other.db"), &to, &t), LS_ENOENT);
    has(ls_errmsg(ctx), "database not found in config: ");
    has(ls_errmsg(ctx), "other.db");
    assert_int_equal(ls_target_open(ctx, at("lone.db"), &to, &t), LS_ENOENT);
    has(ls_errmsg(ctx), "no replicas configured for ");
    to.config_path = at("missing.yml");
    assert_int_equal(ls_target_open(ctx, at("db.db"), &to, &t), LS_ENOENT);

    /* The default path: $LITESAFE_CONFIG. */
    setenv("LITESAFE_CONFIG", at("litesafe.yml"), 1);
    assert_int_equal(ls_target_open(ctx, at("db.db"), NULL, &t), 0);
    assert_int_equal(ls_target_replica_count(t), 2);
    ls_target_free(t);
    unsetenv("LITESAFE_CONFIG");

    /* From an opened configuration: a copy, usable once it is freed. */
    ls_config *cfg = NULL;
    assert_int_equal(ls_config_open(ctx, at("litesafe.yml"), 0, &cfg), 0);
    assert_int_equal(ls_config_db_index(cfg, at("lone.db")), 1);
    assert_int_equal(ls_config_db_index(cfg, at("other.db")), -1);
    assert_int_equal(ls_target_open_config(ctx, cfg, at("db.db"), "zz", &t), LS_ENOENT);
    assert_int_equal(ls_target_open_config(ctx, cfg, at("nope.db"), NULL, &t), LS_ENOENT);
    assert_int_equal(ls_target_open_config(ctx, cfg, at("db.db"), "a", &t), 0);
    ls_config_free(cfg);
    assert_string_equal(ls_target_database(t), at("db.db"));
    assert_int_equal(ls_target_replica_count(t), 1);
    assert_string_equal(ls_target_replica_name(t, 0), "a");
    ls_target_free(t);
}

/*
 * Two replicas with one generation each: the one whose generation is newest
 * is chosen and restored from, whichever comes first; an unreachable replica
 * is skipped.
 */
static void test_best_replica(void **state)
{
    ls_target_options to = LS_TARGET_OPTIONS_INIT;
    ls_restore_result res;
    ls_target *t = NULL;
    size_t pick = 99;
    char row[16];
    time_t now = time(NULL);

    to.config_path = write_config();
    put_snapshot(at("ra"), GEN_A, 0, "old", now - 3600);
    put_snapshot(at("rb"), GEN_B, 0, "new", now - 60);
    assert_int_equal(ls_target_open(ctx, at("db.db"), &to, &t), 0);
    assert_int_equal(ls_target_best_replica(ctx, t, &pick), 0);
    assert_int_equal(pick, 1);
    assert_int_equal(ls_restore(ctx, t, NULL, NULL, &res), 0);
    assert_int_equal(res.restored, 1);
    assert_int_equal(res.replica, 1);
    assert_string_equal(res.generation, GEN_B);
    read_row(at("db.db"), row, sizeof(row));
    assert_string_equal(row, "new");
    unlink(at("db.db"));

    /* Now a is the newest. */
    put_snapshot(at("ra"), GEN_A, 1, "newer", now);
    assert_int_equal(ls_target_best_replica(ctx, t, &pick), 0);
    assert_int_equal(pick, 0);
    ls_target_free(t);

    /* A replica that cannot be listed (a symlink loop in it) is skipped. */
    char text[4 * PATH_MAX];
    assert_int_equal(mkdir(at("broken"), 0700), 0);
    assert_int_equal(symlink("generations", at("broken/generations")), 0);
    snprintf(text, sizeof(text),
             "dbs:\n"
             "  - path: %s\n"
             "    replicas:\n"
             "      - {name: broken, path: %s}\n"
             "      - {name: b, path: %s}\n",
             at("db.db"), at("broken"), at("rb"));
    write_text(at("broken.yml"), text);
    to.config_path = at("broken.yml");
    assert_int_equal(ls_target_open(ctx, at("db.db"), &to, &t), 0);
    assert_int_equal(ls_target_best_replica(ctx, t, &pick), 0);
    assert_int_equal(pick, 1);
    ls_replica_listing *l = NULL;
    assert_int_not_equal(ls_target_list(ctx, t, 0, NULL, &l), 0);
    assert_null(l);
    ls_target_free(t);
}

/* The listing: generations sorted, their snapshots and WAL segments, sizes and times. */
static void test_listing(void **state)
{
    ls_target *t = NULL;
    ls_replica_listing *l = NULL;
    char key[LS_LAYOUT_KEY_MAX];
    time_t now = time(NULL);
    const uint8_t junk[] = "segment bytes, never restored here";

    size_t s1 = put_snapshot(at("rl"), GEN_B, 0, "b0", now - 100);
    size_t s2 = put_snapshot(at("rl"), GEN_B, 2, "b2", now - 50);
    put_snapshot(at("rl"), GEN_A, 0, "a0", now - 1000);
    ls_layout_wal_key(key, sizeof(key), GEN_B, 2, 4096);
    size_t w2 = put_object(at("rl"), key, junk, sizeof(junk), now - 40);
    ls_layout_wal_key(key, sizeof(key), GEN_B, 2, 0);
    put_object(at("rl"), key, junk, sizeof(junk), now - 45);
    write_text(at("rl/generations/not-a-layout-key"), "ignored\n");

    assert_int_equal(ls_target_open(ctx, at("rl"), NULL, &t), LS_ENOENT); /* a path: config */
    char url[PATH_MAX + 8];
    snprintf(url, sizeof(url), "file://%s", at("rl"));
    assert_int_equal(ls_target_open(ctx, url, NULL, &t), 0);
    assert_int_equal(ls_target_list(ctx, t, 0, NULL, &l), 0);
    assert_int_equal(l->n, 2);
    assert_string_equal(l->generations[0].name, GEN_A);
    assert_string_equal(l->generations[1].name, GEN_B);
    const ls_generation_info *g = &l->generations[1];
    assert_int_equal(g->nsnapshots, 2);
    assert_int_equal(g->snapshots[0].index, 0);
    assert_int_equal(g->snapshots[0].size, s1);
    assert_int_equal(g->snapshots[1].index, 2);
    assert_int_equal(g->snapshots[1].size, s2);
    assert_int_equal(g->snapshots[1].created_ms, (int64_t)(now - 50) * 1000);
    assert_int_equal(g->nsegments, 2);
    assert_int_equal(g->segments[0].offset, 0);
    assert_int_equal(g->segments[1].index, 2);
    assert_int_equal(g->segments[1].offset, 4096);
    assert_int_equal(g->segments[1].size, w2);
    assert_int_equal(g->start_ms, (int64_t)(now - 100) * 1000);
    assert_int_equal(g->end_ms, (int64_t)(now - 40) * 1000);
    assert_int_equal(l->generations[0].nsegments, 0);
    assert_null(l->generations[0].segments);
    ls_replica_listing_free(l);

    assert_int_equal(ls_target_list(ctx, t, 0, GEN_A, &l), 0);
    assert_int_equal(l->n, 1);
    assert_string_equal(l->generations[0].name, GEN_A);
    ls_replica_listing_free(l);
    ls_replica_listing_free(NULL);

    assert_int_equal(ls_target_list(ctx, t, 1, NULL, &l), LS_EUSAGE);
    ls_target_free(t);
}

/* A restore into `out` that an if-* option makes a success without restoring (`why` on ctx). */
static void skipped(ls_target *t, const char *out, const ls_restore_options *ro, int why)
{
    ls_restore_result res;
    ls_err_clear(ctx);
    assert_int_equal(ls_restore(ctx, t, out, ro, &res), 0);
    assert_int_equal(res.restored, 0);
    assert_int_equal(ls_errcode(ctx), why);
}

/* if_db_not_exists and if_replica_exists: success, nothing restored, the reason on ctx. */
static void test_restore_if_options(void **state)
{
    ls_restore_options ro = LS_RESTORE_OPTIONS_INIT;
    ls_restore_result res;
    ls_target *t = NULL;
    char url[PATH_MAX + 8], row[16];

    put_snapshot(at("ra"), GEN_A, 0, "data", time(NULL));
    snprintf(url, sizeof(url), "file://%s", at("ra"));
    assert_int_equal(ls_target_open(ctx, url, NULL, &t), 0);

    /* The output exists. */
    make_db(at("there.db"), "mine");
    assert_int_equal(ls_restore(ctx, t, at("there.db"), &ro, &res), LS_EEXIST);
    has(ls_errmsg(ctx), "there.db: output exists (restore never overwrites)");
    ro.if_db_not_exists = 1;
    skipped(t, at("there.db"), &ro, LS_EEXIST);
    read_row(at("there.db"), row, sizeof(row));
    assert_string_equal(row, "mine");

    /* A stranger's -wal at the output: refused before the replica is read. */
    write_text(at("side.db-wal"), "x");
    assert_int_equal(ls_restore(ctx, t, at("side.db"), &ro, &res), LS_EEXIST);
    has(ls_errmsg(ctx), "side.db-wal");
    assert_int_equal(access(at("side.db"), F_OK), -1);
    ls_target_free(t);

    /* The replica holds nothing. */
    snprintf(url, sizeof(url), "file://%s", at("empty"));
    assert_int_equal(ls_target_open(ctx, url, NULL, &t), 0);
    ro.if_db_not_exists = 0;
    assert_int_equal(ls_restore(ctx, t, at("none.db"), &ro, &res), LS_ENOENT);
    has(ls_errmsg(ctx), "no matching backup found on the replica");
    ro.if_replica_exists = 1;
    skipped(t, at("none.db"), &ro, LS_ENOENT);
    assert_int_equal(access(at("none.db"), F_OK), -1);
    /* A generation that is not there counts as nothing too. */
    ro.generation = GEN_B;
    assert_int_equal(ls_restore(ctx, t, at("none.db"), &ro, &res), 0);
    assert_int_equal(res.restored, 0);
    has(ls_errmsg(ctx), "not found on the replica");
    ls_target_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_option_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_url_target, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_target, setup, teardown),
        cmocka_unit_test_setup_teardown(test_best_replica, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_if_options, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
