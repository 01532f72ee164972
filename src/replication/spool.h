/*
 * spool.h - the spool: the local directory of a database's committed WAL
 * frames, written by the source side (source.h), read by the replica workers.
 *
 * Where: the config key `meta-path`, by default "<db dir>/.<db name>-litesafe/".
 * Both names stay as they are for Litestream compatibility (its key, and the
 * ".<db>-litestream" directory it keeps in the same place); everywhere else
 * this directory is "the spool".
 *
 * Layout of the spool:
 *   generation                          current generation name + "\n"
 *   generations/<gen>/wal/<index>.wal   one file per WAL index (%08x)
 *   generations/<gen>/dropped/<replica> the replica's unshipped WAL was dropped
 *                                       (max-spool-size): it owes a fresh snapshot
 *
 * A spool file is a byte-exact prefix of one incarnation of the database's
 * -wal file: its 32-byte header, then committed frames only, so a byte offset
 * in the spool is the same offset in the real WAL and in the replica's
 * segment names. It ends on a commit frame once recovered (a torn tail from a
 * crash is cut back by ls_spool_open). The spool is what replicas ship from:
 * frames stay here until every replica has them, so a slow or absent replica
 * never holds the application's WAL.
 *
 * THE CAP (max-spool-size; the policy is in engine.c, spool_trim)
 * A replica that stays away would make the spool grow without end. Past the
 * cap, the away replica is dropped: the spool no longer keeps indexes for it,
 * a `dropped/<replica>` marker records that it owes a fresh snapshot (so a
 * restart does not take the missing indexes for shipped ones), and when it
 * returns it snapshots the database at the spool's current index and ships
 * from there. `bytes` counts what the spool holds of the current generation.
 */
#ifndef LS_SPOOL_H
#define LS_SPOOL_H

#include "layout.h"
#include "wal.h"

#include <limits.h>
#include <stdint.h>

typedef struct ls_spool {
    char dir[PATH_MAX];        /* the spool directory */
    char gen[LS_GEN_LEN + 1];  /* current generation, "" if none */
    uint32_t index;            /* current WAL index */
    int fd;                    /* spool file of the current index (-1: none yet) */
    uint64_t size;             /* bytes in it: header + committed frames (0: no header yet) */
    ls_wal_hdr hdr;            /* its header, valid when size >= 32 */
    uint32_t ck[2];            /* running checksum after its last frame */
    uint32_t dbsize;           /* database size in pages after its last commit (0: none) */
    uint64_t frames;           /* frames in it */
    int dirty;                 /* appended since the last fsync */
    uint64_t older;            /* bytes of this generation's older indexes still kept */
} ls_spool;

/*
 * Open the spool directory (created if missing, mode of the db's directory).
 * Recovers the current generation and index if present: the newest spool file
 * is scanned and cut back to its last commit frame. sp->gen is "" when there
 * is no usable generation.
 */
int ls_spool_open(ls_ctx *ctx, const char *dir, ls_spool *sp);
void ls_spool_close(ls_spool *sp);
/*
 * Read-only look at a spool directory another process may be writing: the
 * current generation ("" if none) and its newest spool index (-1 if none).
 * Never creates, truncates or locks anything. A generation file or spool
 * directory that exists but cannot be read is an error (LS_ENOMEM, LS_EIO...).
 */
int ls_spool_peek(ls_ctx *ctx, const char *dir, char gen[LS_GEN_LEN + 1], int64_t *newest);
/*
 * Take the spool's lock (flock on "<dir>/lock", which does not
 * interact with SQLite's POSIX locks): one replicator per database. Returns
 * the descriptor, or LS_EBUSY naming the holder when another process has it.
 */
int ls_spool_lock(ls_ctx *ctx, const char *dir, int *fd);

/* Start a new generation at index 0 with an empty spool; older generations are removed. */
int ls_spool_new_gen(ls_ctx *ctx, ls_spool *sp);
/* Close the current index and start index+1 (spool empty until a header is appended). */
int ls_spool_next_index(ls_ctx *ctx, ls_spool *sp);
/* Write the header of the current (empty) index. */
int ls_spool_put_hdr(ls_ctx *ctx, ls_spool *sp, const uint8_t hdr[LS_WAL_HDRSIZE]);
/*
 * Write verified frames at byte `off` of the current index (off >= size).
 * They are not part of the spool until ls_spool_commit() moves its end past
 * them; until then they may be overwritten (a transaction still in progress).
 */
int ls_spool_write(ls_ctx *ctx, ls_spool *sp, uint64_t off, const uint8_t *buf, size_t n);
/* Move the end of the spool to `size` (a commit boundary); `ck` is the running
 * checksum there and `dbsize` the commit's database size. */
void ls_spool_commit(ls_spool *sp, uint64_t size, const uint32_t ck[2], uint32_t dbsize);
/* fsync the current spool file if anything was appended. */
int ls_spool_sync(ls_ctx *ctx, ls_spool *sp);
/* Path of the spool file of `index` in the current generation. */
void ls_spool_path(const ls_spool *sp, uint32_t index, char *out, size_t n);
/* Path of the spool file of `index` of generation `gen` in spool directory `dir`. */
void ls_spool_file(const char *dir, const char *gen, uint32_t index, char *out, size_t n);
/* The default spool directory of database `db`: "<db dir>/.<db name>-litesafe". */
void ls_spool_default_dir(const char *db, char *out, size_t n);
/* Remove spool files of the current generation with an index below `keep_from`. */
void ls_spool_gc(ls_spool *sp, uint32_t keep_from);
/* Bytes the spool holds of its current generation from index `from` on (stat of the
 * older files; the current index's committed size). */
uint64_t ls_spool_bytes_from(const ls_spool *sp, uint32_t from);

/*
 * Dropped-replica markers (see THE CAP), in generation `gen` of spool `dir`.
 * `replica` is the replica's name (any bytes; encoded into a file name).
 * mark: 0 or an LS_E* code on ctx (the caller keeps its in-memory state
 * anyway); dropped: 1 when the marker exists; clear: best effort.
 */
int ls_spool_mark_dropped(ls_ctx *ctx, const char *dir, const char *gen, const char *replica);
int ls_spool_is_dropped(const char *dir, const char *gen, const char *replica);
void ls_spool_clear_dropped(const char *dir, const char *gen, const char *replica);

#endif
