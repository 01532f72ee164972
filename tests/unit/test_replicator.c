/*
 * test_replicator.c - the public replicator (litesafe.h) in-process: built in
 * code on a real WAL database, to a file replica, the in-memory store and the
 * fault injector plugged in as an embedder's own backends. The barrier
 * (ls_replicator_sync) returns only once the replica holds the commits, times
 * out naming the replica when it cannot, and status shows position, lag and
 * the last error. Versions and the life cycle's misuse are refused. One
 * database of a configuration runs on its own (ls_replicator_open_config_db).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "litesafe.h"
#include "storage_test.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct fixture {
    char dir[256];
    char db[300];
    char replica[300];
    ls_ctx *ctx;
    sqlite3 *conn;
} fixture;

static int fx_setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/ls-replicator-XXXXXX");
    if (!f || !mkdtemp(f->dir))
        return -1;
    snprintf(f->db, sizeof(f->db), "%s/app.db", f->dir);
    snprintf(f->replica, sizeof(f->replica), "file://%s/replica", f->dir);
    if (ls_ctx_new(&f->ctx) != 0)
        return -1;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fixture *f = *state;
    char cmd[400];
    sqlite3_close(f->conn);
    ls_ctx_free(f->ctx);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static void exec_sql(sqlite3 *db, const char *q)
{
    char *err = NULL;
    int rc = sqlite3_exec(db, q, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        fail_msg("%s: %s", q, err);
}

/* Create the database in WAL mode with a table. */
static void make_db(fixture *f)
{
    assert_int_equal(sqlite3_open(f->db, &f->conn), SQLITE_OK);
    /* As every application next to a replicator must: its checkpoint cycles
     * take the write lock for a few milliseconds. */
    exec_sql(f->conn, "PRAGMA busy_timeout=5000");
    exec_sql(f->conn, "PRAGMA journal_mode=WAL");
    exec_sql(f->conn, "CREATE TABLE t(x)");
}

static void commit_rows(fixture *f, int n)
{
    exec_sql(f->conn, "BEGIN");
    for (int i = 0; i < n; i++)
        exec_sql(f->conn, "INSERT INTO t VALUES (randomblob(200))");
    exec_sql(f->conn, "COMMIT");
}

/* A started replicator of f->db with one replica. */
static ls_replicator *start_with(fixture *f, const ls_replica_options *ro)
{
    ls_replicator *r = NULL;
    ls_replicator_options o = LS_REPLICATOR_OPTIONS_INIT;
    o.shutdown_timeout_ms = 5000;
    assert_int_equal(ls_replicator_open(f->ctx, f->db, &o, &r), 0);
    assert_int_equal(ls_replicator_add_replica(r, ro), 0);
    assert_int_equal(ls_replicator_start(r), 0);
    assert_int_equal(ls_replicator_wait_started(r, 10000), 0);
    return r;
}

/* The one replica's status; its strings are copied (the array's die with its free). */
static ls_replica_status one_status(ls_replicator *r)
{
    static char msg[512];
    ls_replica_status *st = NULL, copy;
    size_t n = 0;
    assert_int_equal(ls_replicator_status(r, &st, &n), 0);
    assert_int_equal(n, 1);
    copy = st[0];
    snprintf(msg, sizeof(msg), "%s", st[0].last_error_message);
    copy.last_error_message = msg;
    ls_replica_status_free(st);
    return copy;
}

/* Commit, sync, and the replica holds it: status says so, the files are there. */
static void test_sync_file_replica(void **state)
{
    fixture *f = *state;
    make_db(f);
    ls_replica_options ro = LS_REPLICA_OPTIONS_INIT;
    ro.url = f->replica;
    ro.name = "disk";
    ls_replicator *r = start_with(f, &ro);
    assert_int_equal(ls_replicator_running(r), 1);
    commit_rows(f, 50);
    assert_int_equal(ls_replicator_sync(r, 20000), 0);

    ls_replica_status st = one_status(r);
    assert_string_equal(st.name, "disk");
    assert_string_equal(st.type, "file");
    assert_int_equal(strlen(st.generation), 16);
    assert_true(st.restorable);
    assert_true(st.attached);
    assert_int_equal(st.lag_ms, 0);
    assert_true(st.segments >= 1);
    assert_true(st.snapshots >= 1);
    assert_int_equal(st.last_error, 0);
    /* The operations fields: the database side, the cadence, the requests. */
    assert_string_equal(st.local_generation, st.generation);
    assert_int_equal(st.local_index, st.index);
    assert_int_equal(st.local_offset, st.offset);
    assert_int_equal(st.lag_bytes, 0);
    assert_true(st.db_size >= 4096);
    assert_true(st.spool_size >= st.local_offset);
    assert_true(st.wal_bytes > 0);
    assert_true(st.last_success_ms > 1700000000000LL);
    assert_int_equal(st.last_error_ms, 0);
    assert_true(st.puts >= 2); /* a snapshot and a segment */
    assert_true(st.requests_per_sec > 0);
    assert_int_equal(st.errors_net + st.errors_auth + st.errors_other, 0);
    uint64_t before = (uint64_t)st.index << 32 | st.offset;

    /* More commits: the barrier covers them too (the position moves on). */
    commit_rows(f, 50);
    assert_int_equal(ls_replicator_sync(r, 20000), 0);
    st = one_status(r);
    assert_true(((uint64_t)st.index << 32 | st.offset) > before);
    assert_int_equal(st.lag_ms, 0);

    char gens[400];
    struct stat sb;
    snprintf(gens, sizeof(gens), "%s/replica/generations/%s", f->dir, st.generation);
    assert_int_equal(stat(gens, &sb), 0);
    assert_int_equal(ls_replicator_stop(r, -1), 0);
    assert_int_equal(ls_replicator_running(r), 0);
    ls_replicator_close(r);
}

/* An embedder's own backend (the in-memory store) is taken over and used. */
static void test_own_storage(void **state)
{
    fixture *f = *state;
    make_db(f);
    ls_storage *mem = NULL;
    assert_int_equal(ls_storage_mem_open(f->ctx, "mine", &mem), 0);
    ls_replica_options ro = LS_REPLICA_OPTIONS_INIT;
    ro.storage = mem;
    ls_replicator *r = start_with(f, &ro);
    commit_rows(f, 10);
    assert_int_equal(ls_replicator_sync(r, 20000), 0);
    ls_replica_status st = one_status(r);
    assert_string_equal(st.name, "mine");
    assert_true(st.restorable);
    assert_int_equal(ls_replicator_stop(r, -1), 0);
    ls_replicator_close(r); /* closes mem: ASan/valgrind see a leak or a double close */
}

/* A replica that cannot store: sync times out naming it; status shows the error. */
static void test_sync_times_out(void **state)
{
    fixture *f = *state;
    make_db(f);
    ls_storage *mem = NULL, *bad = NULL;
    assert_int_equal(ls_storage_mem_open(f->ctx, "broken", &mem), 0);
    assert_int_equal(ls_storage_fault_open(f->ctx, mem, &bad), 0);
    ls_fault rule = {LS_FAULT_PUT, 0, -1, LS_EIO, -1, LS_FAULT_MODE_FAIL, 0};
    ls_storage_fault_set(bad, &rule);
    ls_replica_options ro = LS_REPLICA_OPTIONS_INIT;
    ro.storage = bad;
    ls_replicator *r = start_with(f, &ro);
    commit_rows(f, 10);
    assert_int_equal(ls_replicator_sync(r, 300), LS_EBUSY);
    assert_non_null(strstr(ls_errmsg(f->ctx), "replica broken"));
    ls_replica_status st = one_status(r);
    assert_false(st.restorable);
    assert_int_equal(st.last_error, LS_EIO);
    assert_non_null(strstr(st.last_error_message, "injected fault"));
    assert_true(st.lag_ms > 0);
    assert_true(st.lag_bytes > 0);
    assert_true(st.last_error_ms > 0);
    assert_int_equal(st.last_success_ms, 0);
    assert_true(st.errors_other > 0); /* LS_EIO */
    assert_int_equal(st.errors_net, 0);
    assert_true(st.puts >= st.errors_other);
    /* The stop cannot flush either: LS_EIO naming the replica, within its timeout. */
    assert_int_equal(ls_replicator_stop(r, 200), LS_EIO);
    assert_non_null(strstr(ls_errmsg(f->ctx), "broken"));
    ls_replicator_close(r);
}

/*
 * The barrier called at once after ls_replicator_start (no wait_started):
 * it waits for the threads to run instead of failing with LS_ECANCEL
 * "replication is not running" (which ls_replicator_sync documents for
 * after a stop only).
 */
static void test_sync_right_after_start(void **state)
{
    fixture *f = *state;
    make_db(f);
    ls_replica_options ro = LS_REPLICA_OPTIONS_INIT;
    ro.url = f->replica;
    for (int i = 0; i < 10; i++) {
        ls_replicator *r = NULL;
        commit_rows(f, 2);
        assert_int_equal(ls_replicator_open(f->ctx, f->db, NULL, &r), 0);
        assert_int_equal(ls_replicator_add_replica(r, &ro), 0);
        assert_int_equal(ls_replicator_start(r), 0);
        int rc = ls_replicator_sync(r, 20000);
        if (rc)
            fail_msg("run %d: sync: %d %s", i, rc, ls_errmsg(f->ctx));
        assert_int_equal(ls_replicator_stop(r, -1), 0);
        ls_replicator_close(r);
    }
}

/* A paced replica lags; the barrier hurries it past its sync-interval. */
static void test_lag_and_hurry(void **state)
{
    fixture *f = *state;
    make_db(f);
    ls_replica_options ro = LS_REPLICA_OPTIONS_INIT;
    ro.url = f->replica;
    ro.sync_interval_ms = 60000;
    ls_replicator *r = start_with(f, &ro);
    commit_rows(f, 5);
    assert_int_equal(ls_replicator_sync(r, 20000), 0);
    commit_rows(f, 5);
    /* Held back by the 60 s sync-interval: the lag grows (however slowly the
     * source thread notices the commits, e.g. under a sanitizer). Where the
     * hurried upload was slow enough to take these commits too (ThreadSanitizer),
     * nothing is pending: one more commit, now inside the interval. */
    ls_replica_status st = one_status(r);
    for (int i = 0; i < 200 && st.lag_ms < 250; i++) {
        if (i % 20 == 19 && st.lag_bytes == 0)
            commit_rows(f, 1);
        usleep(50 * 1000);
        st = one_status(r);
    }
    assert_true(st.lag_ms >= 250);
    assert_true(st.lag_bytes > 0 && st.lag_bytes < 100000);
    assert_true(st.local_offset > st.offset || st.local_index > st.index);
    assert_int_equal(ls_replicator_sync(r, 20000), 0); /* far less than 60 s */
    st = one_status(r);
    assert_int_equal(st.lag_ms, 0);
    assert_int_equal(ls_replicator_stop(r, -1), 0);
    ls_replicator_close(r);
}

/*
 * ls_replicator_sync_db: without LS_SYNC_HURRY the barrier rides the
 * replica's cadence (it times out under a 60 s sync-interval where the
 * hurried one succeeds); LS_SYNC_SPOOL returns once the spool has it; a
 * database not replicated here is LS_ENOENT; errors go to the caller's ctx.
 */
static void test_sync_db_flags(void **state)
{
    fixture *f = *state;
    ls_ctx *mine = NULL;
    assert_int_equal(ls_ctx_new(&mine), 0);
    make_db(f);
    ls_replica_options ro = LS_REPLICA_OPTIONS_INIT;
    ro.url = f->replica;
    ro.sync_interval_ms = 60000;
    ls_replicator *r = start_with(f, &ro);
    assert_int_equal(ls_replicator_sync(r, 20000), 0);
    commit_rows(f, 5);
    assert_int_equal(ls_replicator_sync_db(r, mine, f->db, LS_SYNC_SPOOL, 20000), 0);
    assert_true(one_status(r).lag_ms >= 0);
    assert_int_equal(ls_replicator_sync_db(r, mine, f->db, 0, 400), LS_EBUSY);
    assert_non_null(strstr(ls_errmsg(mine), "not flushed in time"));
    assert_string_equal(ls_errmsg(f->ctx), ""); /* nothing on the replicator's ctx */
    assert_int_equal(ls_replicator_sync_db(r, mine, f->db, LS_SYNC_HURRY, 20000), 0);
    assert_int_equal(one_status(r).lag_ms, 0);
    assert_int_equal(ls_replicator_sync_db(r, mine, "/no/such.db", 0, 1000), LS_ENOENT);
    assert_non_null(strstr(ls_errmsg(mine), "/no/such.db"));
    assert_int_equal(ls_replicator_sync_db(r, mine, NULL, 0x80, 1000), LS_EUSAGE);
    assert_int_equal(ls_replicator_stop(r, -1), 0);
    assert_int_equal(ls_replicator_sync_db(r, mine, NULL, 0, 1000), LS_ECANCEL);
    ls_replicator_close(r);
    ls_ctx_free(mine);
}

/* A database that does not exist: the replicator waits for it; sync says so. */
static void test_sync_missing_db(void **state)
{
    fixture *f = *state;
    ls_replica_options ro = LS_REPLICA_OPTIONS_INIT;
    ro.url = f->replica;
    ls_replicator *r = start_with(f, &ro);
    assert_int_equal(ls_replicator_sync(r, 5000), LS_ENOENT);
    assert_non_null(strstr(ls_errmsg(f->ctx), "app.db"));
    assert_int_equal(ls_replicator_running(r), 1); /* it stays up */
    ls_replica_status st = one_status(r);
    assert_false(st.attached);
    ls_replicator_notify(r, NULL);
    ls_replicator_notify(r, "/no/such/db");
    assert_int_equal(ls_replicator_stop(r, -1), 0);
    ls_replicator_close(r);
}

/* Write `text` to path. */
static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/*
 * ls_replicator_open_config_db: one database of a configuration, on a copy
 * of its settings (the configuration is freed before the start), the other
 * database left alone; a bad age key is refused when the configuration opens, an
 * encrypted replica opens; the index is checked.
 */
static void test_open_config_db(void **state)
{
    fixture *f = *state;
    char yml[320], text[1200], other_rep[320];
    ls_config *cfg = NULL;
    ls_replicator *r = NULL;
    make_db(f);
    snprintf(yml, sizeof(yml), "%s/ls.yml", f->dir);
    snprintf(other_rep, sizeof(other_rep), "%s/other-replica", f->dir);
    /* The third database's replica is encrypted to `rcpt`. */
    for (int pass = 0; pass < 2; pass++) {
        const char *rcpt = pass == 0 ? "age1xyz"
                                     : "age1wnd7v5exqna6uvstvxjw7urpesn3zf4zpnegrydl5spqlukevg4s6g54uz";
        snprintf(text, sizeof(text),
                 "shutdown-timeout: 5s\n"
                 "dbs:\n  - path: %s/other.db\n    replicas:\n      - path: %s\n"
                 "  - path: %s\n    replicas:\n      - name: disk\n        url: %s\n"
                 "  - path: %s/enc.db\n    replicas:\n      - path: %s/enc\n"
                 "        age:\n          recipients: [%s]\n",
                 f->dir, other_rep, f->db, f->replica, f->dir, f->dir, rcpt);
        write_file(yml, text);
        if (pass == 0) {
            /* a recipient that is not an age key: the configuration is refused */
            assert_int_equal(ls_config_open(f->ctx, yml, 0, &cfg), LS_EUSAGE);
            assert_non_null(strstr(ls_errmsg(f->ctx), "age recipients [0]"));
        }
    }
    assert_int_equal(ls_config_open(f->ctx, yml, 0, &cfg), 0);
    assert_int_equal(ls_config_db_count(cfg), 3);

    assert_int_equal(ls_replicator_open_config_db(f->ctx, cfg, 3, &r), LS_EUSAGE);
    assert_null(r);
    /* an encrypted replica opens (test_age.py replicates one) */
    assert_int_equal(ls_replicator_open_config_db(f->ctx, cfg, 2, &r), 0);
    ls_replicator_close(r);
    r = NULL;

    assert_int_equal(ls_replicator_open_config_db(f->ctx, cfg, 1, &r), 0);
    ls_config_free(cfg); /* the replicator keeps its own copy */
    assert_int_equal(ls_replicator_running(r), 0);
    assert_int_equal(ls_replicator_sync(r, 10), LS_ECANCEL); /* not started */
    assert_int_equal(ls_replicator_wait_started(r, 10), LS_EUSAGE);
    assert_int_equal(ls_replicator_start(r), 0);
    assert_int_equal(ls_replicator_start(r), LS_EUSAGE); /* twice */
    assert_int_equal(ls_replicator_wait_started(r, 10000), 0);
    commit_rows(f, 20);
    assert_int_equal(ls_replicator_sync(r, 20000), 0);
    ls_replica_status st = one_status(r); /* its database's replica only */
    assert_string_equal(st.name, "disk");
    assert_string_equal(st.database, f->db);
    assert_true(st.restorable);
    assert_int_equal(ls_replicator_sync_db(r, NULL, f->db, LS_SYNC_HURRY, 20000), 0);
    assert_int_equal(ls_replicator_stop(r, -1), 0);
    ls_replicator_close(r);
    struct stat sb;
    assert_int_equal(stat(other_rep, &sb), -1); /* the other database was not replicated */
}

/* Versions, and calls made out of order, are refused with LS_EUSAGE. */
static void test_misuse(void **state)
{
    fixture *f = *state;
    ls_replicator *r = NULL;
    ls_replicator_options o = LS_REPLICATOR_OPTIONS_INIT;
    ls_replica_options ro;

    assert_int_equal(ls_replica_options_init(&ro, 99), LS_EUSAGE);
    assert_int_equal(ls_replicator_options_init(&o, 99), LS_EUSAGE);
    assert_int_equal(ls_replica_options_init(&ro, LS_REPLICA_OPTIONS_VERSION), 0);
    assert_int_equal(ro.sync_interval_ms, -1);
    assert_int_equal(ls_replicator_options_init(&o, LS_REPLICATOR_OPTIONS_VERSION), 0);
    o.version = 99;
    assert_int_equal(ls_replicator_open(f->ctx, f->db, &o, &r), LS_EUSAGE);
    assert_null(r);
    assert_int_equal(ls_replicator_open(f->ctx, "", NULL, &r), LS_EUSAGE);

    assert_int_equal(ls_replicator_open(f->ctx, f->db, NULL, &r), 0);
    assert_int_equal(ls_replicator_sync(r, 10), LS_ECANCEL);  /* not started */
    assert_int_equal(ls_replicator_start(r), LS_EUSAGE);      /* no replica */
    ro.version = 99;
    assert_int_equal(ls_replicator_add_replica(r, &ro), LS_EUSAGE);
    ro.version = LS_REPLICA_OPTIONS_VERSION;
    ro.url = "nosuch://bucket/x";
    assert_int_equal(ls_replicator_add_replica(r, &ro), 0);
    assert_int_equal(ls_replicator_start(r), LS_EUSAGE);      /* the bad URL, named */
    assert_non_null(strstr(ls_errmsg(f->ctx), "nosuch"));
    assert_int_equal(ls_replicator_stop(r, -1), 0);           /* never started */
    ls_replicator_close(r);

    r = NULL;
    ro.url = f->replica;
    assert_int_equal(ls_replicator_open(f->ctx, f->db, NULL, &r), 0);
    assert_int_equal(ls_replicator_add_replica(r, &ro), 0);
    assert_int_equal(ls_replicator_start(r), 0);
    assert_int_equal(ls_replicator_add_replica(r, &ro), LS_EUSAGE); /* after start */
    assert_int_equal(ls_replicator_start(r), LS_EUSAGE);            /* twice */
    ls_replicator_interrupt(r);
    ls_replicator_close(r);
    ls_replicator_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sync_file_replica, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_own_storage, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_sync_times_out, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_sync_right_after_start, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_lag_and_hurry, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_sync_missing_db, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_sync_db_flags, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_misuse, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_open_config_db, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
