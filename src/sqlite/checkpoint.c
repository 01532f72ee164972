/*
 * checkpoint.c - WAL checkpoint control: copy the frames of the write-ahead
 * log back into the database file, in one of SQLite's four modes.
 *
 * THE MODES (sqlite3_wal_checkpoint_v2)
 *
 *   passive   copy what can be copied without waiting for anybody; frames
 *             newer than the oldest reader's snapshot stay in the WAL. Never
 *             calls the busy handler and never blocks the application.
 *   full      wait (busy handler) for the write lock and for every reader to
 *             be on the newest snapshot, then copy everything. Writers are
 *             held off while it waits.
 *   restart   full, then also wait until no reader uses the WAL at all, so
 *             the next writer starts the WAL from its beginning.
 *   truncate  restart, then truncate the -wal file to zero bytes.
 *
 * In full/restart/truncate the waiting is bounded by the busy timeout: when
 * the busy handler gives up, SQLite finishes the checkpoint as a passive one
 * and returns SQLITE_BUSY. That is a result here (res->busy), not an error.
 * Because the waiting checkpointer holds the write lock, the busy timeout is
 * also the longest time those modes can stall the application's writers.
 *
 * INVARIANTS
 *   - A missing database is never created (probe first; SQLite opened
 *     without SQLITE_OPEN_CREATE).
 *   - Our connection never checkpoints or deletes the WAL when it closes
 *     (ls_db_open), so the only change to the files is the checkpoint asked.
 *   - A database in rollback-journal mode is left untouched: wal_mode 0, and
 *     it is reported as sqlite-checkpoint reports it: nothing to checkpoint,
 *     0 of 0 pages, fully checkpointed. Its journal mode is only read, never
 *     set, so no -wal is ever created for it.
 *   - A zero-length file is, to SQLite, an empty database in rollback-journal
 *     mode: the same "nothing to checkpoint", without opening it at all
 *     (SQLite would write a header into it on the first write).
 */
#include "db.h"
#include "fsutil.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define DEFAULT_BUSY_MS 5000
#define CKPT_LOCK_RETRY_MS 10

static const struct {
    ls_ckpt_mode mode; /* the mode */
    const char *name;  /* its name, as SQLite spells it (PRAGMA wal_checkpoint(NAME)) */
    int sqlite_mode;   /* SQLITE_CHECKPOINT_* */
} MODES[] = {
    {LS_CKPT_PASSIVE, "PASSIVE", SQLITE_CHECKPOINT_PASSIVE},
    {LS_CKPT_FULL, "FULL", SQLITE_CHECKPOINT_FULL},
    {LS_CKPT_RESTART, "RESTART", SQLITE_CHECKPOINT_RESTART},
    {LS_CKPT_TRUNCATE, "TRUNCATE", SQLITE_CHECKPOINT_TRUNCATE},
};
#define NMODES (sizeof(MODES) / sizeof(MODES[0]))

int ls_ckpt_mode_parse(const char *s, ls_ckpt_mode *out)
{
    for (size_t i = 0; s && i < NMODES; i++) {
        if (strcasecmp(s, MODES[i].name) == 0) {
            *out = MODES[i].mode;
            return 0;
        }
    }
    return LS_EUSAGE;
}

const char *ls_ckpt_mode_name(ls_ckpt_mode mode)
{
    for (size_t i = 0; i < NMODES; i++)
        if (MODES[i].mode == mode)
            return MODES[i].name;
    return "unknown";
}

/*
 * Ask SQLite for the journal mode of `db`. Preparing the statement reads the
 * schema, which is what makes the connection notice a WAL database and open
 * its WAL; before that a checkpoint would be a silent no-op. Returns 0 with
 * *is_wal set, or an LS_E* code (LS_EBUSY when a writer held the database
 * past the busy timeout) with the message recorded.
 */
static int query_wal_mode(ls_ctx *ctx, sqlite3 *db, const char *path, int *is_wal)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(db, "PRAGMA main.journal_mode", -1, &st, NULL);
    if (src == SQLITE_OK) {
        src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            const char *m = (const char *)sqlite3_column_text(st, 0);
            *is_wal = m && strcasecmp(m, "wal") == 0;
            src = SQLITE_OK;
        }
    }
    int rc = 0;
    if (src != SQLITE_OK)
        rc = ls_err(ctx, ls_db_code(src), "%s: %s", path, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc;
}

/*
 * Run the checkpoint and fill the page counts of `res`. A second checkpointer
 * (the application's auto-checkpoint) holding the checkpoint lock makes SQLite
 * return SQLITE_BUSY at once without running anything (page counts -1) and
 * without calling the busy handler; that case is retried until `busy_ms`
 * has passed. Returns 0 (busy or not) or an LS_E* code.
 */
static int run_checkpoint(ls_ctx *ctx, sqlite3 *db, const char *path, int sqlite_mode, int busy_ms,
                          ls_checkpoint_result *res)
{
    uint64_t deadline = ls_now_ms() + (uint64_t)busy_ms;
    for (;;) {
        int nLog = -1, nCkpt = -1;
        int src = sqlite3_wal_checkpoint_v2(db, "main", sqlite_mode, &nLog, &nCkpt);
        if (src != SQLITE_OK && (src & 0xff) != SQLITE_BUSY)
            return ls_err(ctx, ls_db_code(src), "checkpoint %s: %s", path, sqlite3_errmsg(db));
        res->wal_pages = nLog;
        res->checkpointed_pages = nCkpt;
        res->busy = src != SQLITE_OK;
        if (!res->busy || nLog >= 0 || ls_now_ms() >= deadline || ls_cancelled(ctx))
            return 0;
        poll(NULL, 0, CKPT_LOCK_RETRY_MS);
    }
}

/*
 * 1 if `path` is a zero-length regular file with no -wal or -journal next to
 * it: an empty database, which SQLite would create its header in on the
 * first write. (With a -wal or -journal beside it, it is left to the probe.)
 */
static int is_empty_database(const char *path)
{
    char side[4096 + 16];
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != 0)
        return 0;
    snprintf(side, sizeof(side), "%s-wal", path);
    if (ls_path_exists(side))
        return 0;
    snprintf(side, sizeof(side), "%s-journal", path);
    return !ls_path_exists(side);
}

/*
 * THE CHECKPOINT PROCEDURE
 *   1. Probe the file: it exists and is an SQLite database (nothing created).
 *      A zero-length file is an empty database: nothing to checkpoint, and it
 *      is not opened.
 *   2. Open our connection (busy timeout set, no checkpoint on close) and ask
 *      SQLite whether the database is in WAL mode. Not in WAL mode: done,
 *      wal_mode 0, nothing to checkpoint (0 of 0 pages, fully checkpointed,
 *      as sqlite-checkpoint reports it). A writer holding the database past
 *      the busy timeout here is a busy result, with page counts -1 (unknown).
 *   3. sqlite3_wal_checkpoint_v2 in the requested mode (see run_checkpoint).
 *   4. busy: SQLite said SQLITE_BUSY, or a mode that promises a complete
 *      checkpoint left frames behind. fully_checkpointed: not busy, and every
 *      frame of the WAL is in the database file (0 of 0 after a truncate);
 *      sqlite-checkpoint's definition.
 * Locks: only those SQLite's checkpoint takes; none is held on return.
 */
int ls_checkpoint(ls_ctx *ctx, const char *db, ls_ckpt_mode mode, int busy_timeout_ms,
                  ls_checkpoint_result *res)
{
    sqlite3 *conn = NULL;
    ls_db_hdr hdr;
    uint64_t t0 = ls_now_ms();
    int busy_ms = busy_timeout_ms < 0 ? DEFAULT_BUSY_MS : busy_timeout_ms;
    int sqlite_mode = -1, rc;

    memset(res, 0, sizeof(*res));
    res->mode = mode;
    res->wal_pages = res->checkpointed_pages = -1;
    ls_err_clear(ctx);
    for (size_t i = 0; i < NMODES; i++)
        if (MODES[i].mode == mode)
            sqlite_mode = MODES[i].sqlite_mode;
    if (sqlite_mode < 0)
        return ls_err(ctx, LS_EUSAGE, "unknown checkpoint mode %d", (int)mode);

    /* 1. The file. */
    if ((rc = ls_abspath_dup(ctx, db, &res->database)) != 0)
        return rc;
    if (is_empty_database(res->database)) {
        res->wal_pages = res->checkpointed_pages = 0;
        res->fully_checkpointed = 1;
        goto cleanup;
    }
    if ((rc = ls_db_probe(ctx, res->database, &hdr)) != 0)
        return rc;

    /* 2. Our connection; is there a WAL at all? (busy_ms 0 would mean 5000 there.) */
    if ((rc = ls_db_open(ctx, res->database, 0, busy_ms > 0 ? busy_ms : 1, &conn)) != 0)
        goto cleanup;
    rc = query_wal_mode(ctx, conn, res->database, &res->wal_mode);
    if (rc == LS_EBUSY) {
        ls_log(ctx, LS_LOG_INFO, "checkpoint busy db=%s reason=\"%s\"", res->database,
               ls_errmsg(ctx));
        ls_err_clear(ctx);
        res->wal_mode = hdr.wal;
        res->busy = 1;
        rc = 0;
        goto cleanup;
    }
    if (rc)
        goto cleanup;
    if (!res->wal_mode) {
        res->wal_pages = res->checkpointed_pages = 0;
        res->fully_checkpointed = 1;
        goto cleanup;
    }

    /* 3. The checkpoint. */
    if ((rc = run_checkpoint(ctx, conn, res->database, sqlite_mode, busy_ms, res)) != 0)
        goto cleanup;

    /* 4. What it achieved. */
    int all = res->wal_pages >= 0 && res->wal_pages == res->checkpointed_pages;
    if (mode != LS_CKPT_PASSIVE && !all)
        res->busy = 1;
    res->fully_checkpointed = all && !res->busy;

cleanup:
    sqlite3_close(conn);
    res->elapsed_ms = ls_now_ms() - t0;
    if (rc == 0)
        ls_log(ctx, LS_LOG_INFO,
               "checkpoint done db=%s mode=%s wal=%d busy=%d log=%lld ckpt=%lld ms=%llu",
               res->database, ls_ckpt_mode_name(mode), res->wal_mode, res->busy,
               (long long)res->wal_pages, (long long)res->checkpointed_pages,
               (unsigned long long)res->elapsed_ms);
    return rc;
}

void ls_checkpoint_result_free(ls_checkpoint_result *res)
{
    if (!res)
        return;
    free(res->database);
    res->database = NULL;
}
