/*
 * test_wal.c - the WAL parser against WAL files written by SQLite itself:
 * header decoding, the checksum chain, the committed-frame boundary, the page
 * map, restarts, torn and corrupt tails, and the wal-index header.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "wal.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct fixture {
    char dir[64];      /* temp directory */
    char db[128];      /* database path */
    char wal[140];     /* its -wal */
    char shm[140];     /* its -shm */
    sqlite3 *conn;     /* open writer connection (keeps the WAL alive) */
    ls_ctx *ctx;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/ls-unit-wal-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof(f->db), "%s/t.db", f->dir);
    snprintf(f->wal, sizeof(f->wal), "%s-wal", f->db);
    snprintf(f->shm, sizeof(f->shm), "%s-shm", f->db);
    assert_int_equal(sqlite3_open(f->db, &f->conn), SQLITE_OK);
    assert_int_equal(sqlite3_exec(f->conn,
                                  "PRAGMA journal_mode=wal; PRAGMA wal_autocheckpoint=0;"
                                  "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(ls_ctx_new(&f->ctx), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    sqlite3_close(f->conn);
    ls_ctx_free(f->ctx);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void exec(fixture *f, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(f->conn, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        fail_msg("%s: %s", sql, err);
}

/* SQLite's own idea of the WAL's committed frames (passive checkpoint's nLog). */
static int sqlite_wal_frames(fixture *f)
{
    int nLog = -1, nCkpt = -1;
    assert_int_equal(sqlite3_wal_checkpoint_v2(f->conn, NULL, SQLITE_CHECKPOINT_PASSIVE, &nLog,
                                               &nCkpt),
                     SQLITE_OK);
    return nLog;
}

/* Frames in the WAL file by its size (valid while nothing restarted or rolled back). */
static int wal_size_frames(fixture *f)
{
    struct stat st;
    assert_int_equal(stat(f->wal, &st), 0);
    return (int)((st.st_size - LS_WAL_HDRSIZE) / (LS_WAL_FRAME_HDRSIZE + 4096));
}

static void scan_file(fixture *f, ls_wal_scan *s)
{
    int fd = open(f->wal, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(ls_wal_scan_fd(f->ctx, s, fd, f->wal), 0);
    close(fd);
}

static void insert_rows(fixture *f, int txns, int rows_per_txn)
{
    for (int t = 0; t < txns; t++) {
        exec(f, "BEGIN");
        for (int r = 0; r < rows_per_txn; r++)
            exec(f, "INSERT INTO t(v) VALUES(randomblob(700))");
        exec(f, "COMMIT");
    }
}

static void test_hdr_roundtrip(void **state)
{
    (void)state;
    ls_wal_hdr h = {.magic = LS_WAL_MAGIC_LE, .version = LS_WAL_VERSION, .page_size = 4096,
                    .ckpt_seq = 7, .salt1 = 0x11223344, .salt2 = 0x55667788};
    uint8_t buf[LS_WAL_HDRSIZE];
    ls_wal_hdr_encode(&h, buf);
    ls_wal_hdr d;
    assert_int_equal(ls_wal_hdr_decode(buf, &d), 0);
    assert_int_equal(d.salt1, 0x11223344);
    assert_int_equal(d.ckpt_seq, 7);
    assert_int_equal(d.bigend, 0);
    buf[9] ^= 1; /* any bit of the first 24 bytes breaks the checksum */
    assert_int_equal(ls_wal_hdr_decode(buf, &d), LS_ECORRUPT);
    h.magic = LS_WAL_MAGIC_BE;
    ls_wal_hdr_encode(&h, buf);
    assert_int_equal(ls_wal_hdr_decode(buf, &d), 0);
    assert_int_equal(d.bigend, 1);
    h.page_size = 1000; /* not a power of two */
    ls_wal_hdr_encode(&h, buf);
    assert_int_equal(ls_wal_hdr_decode(buf, &d), LS_ECORRUPT);
}

static void test_checksum_pairs(void **state)
{
    (void)state;
    /* s0 += x0 + s1; s1 += x1 + s0 over little-endian words */
    uint8_t data[16] = {1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0};
    uint32_t s[2] = {0, 0};
    ls_wal_checksum(0, data, 16, s);
    /* pair 1: s0 = 1, s1 = 2 + 1 = 3; pair 2: s0 = 1 + 3 + 3 = 7, s1 = 3 + 4 + 7 = 14 */
    assert_int_equal(s[0], 7);
    assert_int_equal(s[1], 14);
    uint32_t b[2] = {0, 0};
    uint8_t be[8] = {0, 0, 0, 1, 0, 0, 0, 2};
    ls_wal_checksum(1, be, 8, b);
    assert_int_equal(b[0], 1);
    assert_int_equal(b[1], 3);
}

/* The scanner agrees with SQLite on the committed frames, transaction after transaction. */
static void test_scan_matches_sqlite(void **state)
{
    fixture *f = *state;
    ls_wal_scan s;
    ls_wal_scan_init(&s, 1);
    for (int round = 0; round < 5; round++) {
        insert_rows(f, 3, 4 + round * 10);
        scan_file(f, &s);
        assert_int_equal(s.restarted, 0);
        assert_true(s.have_hdr);
        assert_int_equal(s.hdr.page_size, 4096);
        assert_int_equal((int)s.commit_frame, wal_size_frames(f));
    }
    assert_int_equal((int)s.commit_frame, sqlite_wal_frames(f));
    /* The commit size is the database size in pages. */
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(f->conn, "PRAGMA page_count", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal((int)s.commit_dbsize, sqlite3_column_int(st, 0));
    sqlite3_finalize(st);
    /* Page 1 is rewritten by every transaction that grows the file. */
    const ls_wal_page *p1 = ls_wal_scan_lookup(&s, 1);
    assert_non_null(p1);
    assert_int_equal(p1->frame, s.page1_frame);
    assert_null(ls_wal_scan_lookup(&s, 999999));
    ls_wal_scan_free(&s);
}

/* Every page the map points at holds that page, and its frame re-verifies. */
static void test_page_map_frames_verify(void **state)
{
    fixture *f = *state;
    insert_rows(f, 10, 20);
    ls_wal_scan s;
    ls_wal_scan_init(&s, 1);
    scan_file(f, &s);
    int fd = open(f->wal, O_RDONLY);
    uint8_t *frame = malloc(LS_WAL_FRAME_HDRSIZE + 4096);
    size_t checked = 0;
    for (size_t i = 0; i < s.map_cap; i++) {
        const ls_wal_page *p = &s.map[i];
        if (!p->pgno)
            continue;
        off_t off = (off_t)ls_wal_frame_offset(4096, p->frame);
        assert_int_equal(pread(fd, frame, LS_WAL_FRAME_HDRSIZE + 4096, off),
                         LS_WAL_FRAME_HDRSIZE + 4096);
        assert_int_equal(ls_get32be(frame), p->pgno);
        uint32_t ck[2] = {p->prev_ck[0], p->prev_ck[1]};
        assert_int_equal(ls_wal_frame_check(&s.hdr, frame, ck), 1);
        checked++;
    }
    assert_int_equal(checked, s.map_len);
    assert_true(checked > 10);
    free(frame);
    close(fd);
    ls_wal_scan_free(&s);
}

/* A corrupt frame ends the valid WAL at the last commit before it. */
static void test_corrupt_frame_stops_scan(void **state)
{
    fixture *f = *state;
    insert_rows(f, 1, 30);
    int first = wal_size_frames(f);
    insert_rows(f, 1, 30);
    int second = wal_size_frames(f);
    assert_true(second > first + 1);
    /* Flip a byte in the page of a frame of the second transaction. */
    int fd = open(f->wal, O_RDWR);
    off_t off = (off_t)ls_wal_frame_offset(4096, (uint64_t)first + 2) + LS_WAL_FRAME_HDRSIZE + 100;
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= 0xff;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
    ls_wal_scan s;
    ls_wal_scan_init(&s, 0);
    scan_file(f, &s);
    assert_int_equal((int)s.commit_frame, first);
    ls_wal_scan_free(&s);
}

/* Frames after the last commit (an open transaction spilling, or garbage) do not count. */
static void test_uncommitted_tail_ignored(void **state)
{
    fixture *f = *state;
    insert_rows(f, 2, 5);
    int committed = wal_size_frames(f);
    int fd = open(f->wal, O_WRONLY | O_APPEND);
    uint8_t junk[5000];
    memset(junk, 0xab, sizeof(junk));
    assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    close(fd);
    ls_wal_scan s;
    ls_wal_scan_init(&s, 0);
    scan_file(f, &s);
    assert_int_equal((int)s.commit_frame, committed);
    /* The limit stops a scan early (used to stop at SQLite's mxFrame). */
    ls_wal_scan_reset(&s);
    s.limit = 1;
    scan_file(f, &s);
    assert_true(s.commit_frame <= 1);
    ls_wal_scan_free(&s);
}

/* A WAL restart (after a full checkpoint) is seen as a new header and resets the scan. */
static void test_restart_detected(void **state)
{
    fixture *f = *state;
    insert_rows(f, 3, 10);
    ls_wal_scan s;
    ls_wal_scan_init(&s, 1);
    scan_file(f, &s);
    uint32_t salt1 = s.hdr.salt1;
    assert_true(s.commit_frame > 0);
    int nLog, nCkpt;
    assert_int_equal(sqlite3_wal_checkpoint_v2(f->conn, NULL, SQLITE_CHECKPOINT_RESTART, &nLog,
                                               &nCkpt),
                     SQLITE_OK);
    insert_rows(f, 1, 1);
    scan_file(f, &s);
    assert_int_equal(s.restarted, 1);
    assert_int_equal(s.hdr.salt1, salt1 + 1);
    assert_int_equal((int)s.commit_frame, sqlite_wal_frames(f));
    ls_wal_scan_free(&s);
}

/* The wal-index header says what SQLite considers committed. */
static void test_shm_header(void **state)
{
    fixture *f = *state;
    insert_rows(f, 4, 3);
    int fd = open(f->shm, O_RDONLY);
    assert_true(fd >= 0);
    ls_shm_info si;
    assert_int_equal(ls_shm_read(f->ctx, fd, &si), 0);
    close(fd);
    ls_wal_scan s;
    ls_wal_scan_init(&s, 0);
    scan_file(f, &s);
    assert_int_equal(si.mx_frame, (uint32_t)s.commit_frame);
    assert_int_equal(si.n_page, s.commit_dbsize);
    assert_int_equal(si.page_size, 4096);
    uint8_t salts[8];
    ls_put32be(salts, s.hdr.salt1);
    ls_put32be(salts + 4, s.hdr.salt2);
    assert_memory_equal(si.salt, salts, 8);
    ls_wal_scan_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hdr_roundtrip),
        cmocka_unit_test(test_checksum_pairs),
        cmocka_unit_test_setup_teardown(test_scan_matches_sqlite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_page_map_frames_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_frame_stops_scan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uncommitted_tail_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shm_header, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
