/*
 * embed.c - an application that keeps its own database safe with liblitesafe.
 *
 *   embed DIR
 *
 * In DIR it creates app.db (WAL mode), replicates it in-process to a file
 * replica (DIR/replica), commits a few transactions, waits on the durable
 * barrier until they are on the replica, prints the replica's status, and
 * restores itself from the replica into DIR/restored.db, as an application
 * would at boot on a new machine. Exit 0 when the restored copy holds every
 * row; `make check` builds and runs it.
 *
 * Only <litesafe.h> and <sqlite3.h> are needed.
 */
#include <litesafe.h>
#include <sqlite3.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROWS 1000

/*
 * SQLite calls this after each commit: tell the replicator to look now.
 * (A WAL hook replaces SQLite's automatic checkpoints, which is what a
 * replicated database wants: the replicator checkpoints once it has the
 * frames.)
 */
static int on_commit(void *replicator, sqlite3 *db, const char *name, int pages)
{
    (void)db, (void)name, (void)pages;
    ls_replicator_notify(replicator, NULL);
    return SQLITE_OK;
}

static int fail(ls_ctx *ctx, const char *what)
{
    fprintf(stderr, "embed: %s: %s\n", what, ctx ? ls_errmsg(ctx) : "");
    return 1;
}

static int sql(sqlite3 *db, const char *q)
{
    char *err = NULL;
    if (sqlite3_exec(db, q, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "embed: %s: %s\n", q, err);
        sqlite3_free(err);
        return 1;
    }
    return 0;
}

/* Write ROWS rows in transactions of 100, as an application would. */
static int commit_rows(sqlite3 *db)
{
    char q[128];
    if (sql(db, "CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, body TEXT)"))
        return 1;
    for (int i = 0; i < ROWS; i++) {
        if (i % 100 == 0 && sql(db, "BEGIN"))
            return 1;
        snprintf(q, sizeof(q), "INSERT INTO notes(body) VALUES ('note %d')", i);
        if (sql(db, q) || (i % 100 == 99 && sql(db, "COMMIT")))
            return 1;
    }
    return 0;
}

static long long count_rows(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long n = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT count(*) FROM notes", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void print_status(ls_replicator *r)
{
    ls_replica_status *st = NULL;
    size_t n = 0;
    if (ls_replicator_status(r, &st, &n) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        char pos[64];
        ls_position_format(pos, sizeof(pos), st[i].generation, st[i].index, st[i].offset);
        printf("replica %s (%s): position %s, lag %lldms, %llu segments, error: %s\n",
               st[i].name, st[i].type, pos, (long long)st[i].lag_ms,
               (unsigned long long)st[i].segments,
               st[i].last_error ? st[i].last_error_message : "none");
    }
    ls_replica_status_free(st);
}

int main(int argc, char **argv)
{
    char dir[4096], dbpath[4200], replica[4300], restored[4200];
    ls_ctx *ctx = NULL;
    ls_replicator *r = NULL;
    ls_target *t = NULL;
    sqlite3 *db = NULL;
    int rc = 1;

    if (argc != 2) {
        fprintf(stderr, "usage: embed DIR\n");
        return 2;
    }
    if (!realpath(argv[1], dir)) {
        perror(argv[1]);
        return 2;
    }
    snprintf(dbpath, sizeof(dbpath), "%s/app.db", dir);
    snprintf(replica, sizeof(replica), "file://%s/replica", dir);
    snprintf(restored, sizeof(restored), "%s/restored.db", dir);
    if (ls_library_init() != 0 || ls_ctx_new(&ctx) != 0)
        return fail(NULL, "cannot initialise liblitesafe");

    /* The application's database, in WAL mode (replication follows the WAL),
     * with a busy timeout: the replicator's checkpoint cycles hold the write
     * lock for a few milliseconds. */
    if (sqlite3_open(dbpath, &db) != SQLITE_OK || sql(db, "PRAGMA busy_timeout=5000") ||
        sql(db, "PRAGMA journal_mode=WAL"))
        goto cleanup;

    /* Replicate it to a file replica, in threads of the library's own. */
    ls_replica_options ro = LS_REPLICA_OPTIONS_INIT;
    ro.url = replica;
    if (ls_replicator_open(ctx, dbpath, NULL, &r) != 0 || ls_replicator_add_replica(r, &ro) != 0 ||
        ls_replicator_start(r) != 0 || ls_replicator_wait_started(r, 10000) != 0) {
        fail(ctx, "replicate");
        goto cleanup;
    }
    sqlite3_wal_hook(db, on_commit, r);

    /* Commit, then wait until the commits are safe on the replica. */
    if (commit_rows(db))
        goto cleanup;
    if (ls_replicator_sync(r, 30000) != 0) {
        fail(ctx, "sync");
        goto cleanup;
    }
    print_status(r);
    if (ls_replicator_stop(r, -1) != 0) {
        fail(ctx, "stop");
        goto cleanup;
    }

    /* Boot on a new machine: restore from the replica. */
    ls_restore_result res;
    if (ls_target_open(ctx, replica, NULL, &t) != 0 ||
        ls_restore(ctx, t, restored, NULL, &res) != 0) {
        fail(ctx, "restore");
        goto cleanup;
    }
    long long n = count_rows(restored);
    printf("restored %s: %lld rows, %llu pages, generation %s\n", restored, n,
           (unsigned long long)res.page_count, res.generation);
    rc = n == ROWS ? 0 : 1;
    if (rc)
        fprintf(stderr, "embed: the restored database has %lld rows, not %d\n", n, ROWS);

cleanup:
    ls_target_free(t);
    ls_replicator_close(r); /* before the database closes: its hook points at r */
    sqlite3_close(db);
    ls_ctx_free(ctx);
    ls_library_shutdown();
    return rc;
}
