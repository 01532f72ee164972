/*
 * paced_writer.c - an application's writer, for bench/writer_cost.py.
 *
 * Commits single-row transactions (INSERT of 100 random bytes) into t(id, v)
 * of an existing WAL database, either as fast as it can (RATE 0) or paced at
 * RATE commits per second (each commit starts at its slot; a late commit does
 * not make the next ones hurry). Measures each commit, BEGIN to COMMIT
 * returned, with CLOCK_MONOTONIC.
 *
 * usage: paced_writer DB SECONDS RATE [SYNCHRONOUS] [AUTOCHECKPOINT]
 * prints one JSON line: commits, seconds, per_s, p50_us, p99_us, p999_us, max_us.
 */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int must(sqlite3 *db, int rc, const char *what)
{
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "paced_writer: %s: %s\n", what, sqlite3_errmsg(db));
        exit(1);
    }
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: paced_writer DB SECONDS RATE [SYNCHRONOUS] [AUTOCHECKPOINT]\n");
        return 2;
    }
    double seconds = atof(argv[2]), rate = atof(argv[3]);
    const char *sync = argc > 4 ? argv[4] : "NORMAL";
    sqlite3 *db;
    if (sqlite3_open(argv[1], &db) != SQLITE_OK) {
        fprintf(stderr, "paced_writer: %s: %s\n", argv[1], sqlite3_errmsg(db));
        return 1;
    }
    char sql[128];
    snprintf(sql, sizeof(sql), "PRAGMA synchronous=%s", sync);
    must(db, sqlite3_exec(db, sql, NULL, NULL, NULL), sql);
    must(db, sqlite3_exec(db, "PRAGMA busy_timeout=5000", NULL, NULL, NULL), "busy_timeout");
    if (argc > 5) {
        snprintf(sql, sizeof(sql), "PRAGMA wal_autocheckpoint=%d", atoi(argv[5]));
        must(db, sqlite3_exec(db, sql, NULL, NULL, NULL), sql);
    }
    sqlite3_stmt *begin, *ins, *commit;
    must(db, sqlite3_prepare_v2(db, "BEGIN", -1, &begin, NULL), "prepare");
    must(db, sqlite3_prepare_v2(db, "INSERT INTO t(v) VALUES(randomblob(100))", -1, &ins, NULL),
         "prepare");
    must(db, sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL), "prepare");

    size_t cap = rate > 0 ? (size_t)(rate * seconds) + 16 : 1u << 24, n = 0;
    uint32_t *lat = malloc(cap * sizeof(*lat));
    if (!lat)
        return 1;
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9);
    uint64_t step = rate > 0 ? (uint64_t)(1e9 / rate) : 0;
    for (uint64_t slot = t0; n < cap; slot += step) {
        uint64_t t = now_ns();
        if (t >= end)
            break;
        if (step && t < slot) {
            struct timespec ts = {(time_t)((slot - t) / 1000000000u),
                                  (long)((slot - t) % 1000000000u)};
            nanosleep(&ts, NULL);
        }
        uint64_t a = now_ns();
        must(db, sqlite3_step(begin), "BEGIN");
        must(db, sqlite3_step(ins), "INSERT");
        must(db, sqlite3_step(commit), "COMMIT");
        sqlite3_reset(begin);
        sqlite3_reset(ins);
        sqlite3_reset(commit);
        uint64_t d = (now_ns() - a) / 1000u;
        lat[n++] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
    }
    double took = (double)(now_ns() - t0) / 1e9;
    sqlite3_finalize(begin);
    sqlite3_finalize(ins);
    sqlite3_finalize(commit);
    sqlite3_close(db);
    if (!n)
        return 1;
    qsort(lat, n, sizeof(*lat), cmp_u32);
    printf("{\"commits\": %zu, \"seconds\": %.3f, \"per_s\": %.1f, \"p50_us\": %u, "
           "\"p99_us\": %u, \"p999_us\": %u, \"max_us\": %u}\n", n, took, (double)n / took,
           lat[n / 2], lat[(size_t)((double)n * 0.99)], lat[(size_t)((double)n * 0.999)],
           lat[n - 1]);
    free(lat);
    return 0;
}
