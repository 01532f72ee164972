/*
 * source.h - the source side of replication: follow a live database's WAL and
 * copy every committed transaction into the spool (spool.h), keep the WAL
 * bounded with short checkpoint cycles, and decide when continuity is lost
 * and a new generation must start. The procedures are described in source.c.
 */
#ifndef LS_SOURCE_H
#define LS_SOURCE_H

#include "db.h"
#include "spool.h"

#include <pthread.h>
#include <sqlite3.h>
#include <sys/types.h>

typedef struct ls_source_opts {
    const char *spool_dir;         /* config meta-path; NULL: ls_spool_default_dir() */
    int64_t min_ckpt_pages;        /* checkpoint cycle when the WAL index holds this many frames */
    int64_t max_ckpt_pages;        /* past this, retry the cycle at every sync */
    int64_t ckpt_interval_ms;      /* or when this long passed and there are frames */
    int busy_ms;                   /* how long a cycle may wait for the write lock */
    int64_t ckpt_gap_ms;           /* least time between two cycles below max_ckpt_pages
                                      (0: 200 ms); the replicas' longest sync-interval */
    int no_guard;                  /* never hold the checkpoint guard (source.c) */
} ls_source_opts;

typedef struct ls_source {
    ls_ctx *ctx;                   /* errors and logs of the source thread */
    char path[PATH_MAX];           /* database */
    char wal_path[PATH_MAX + 8];   /* its -wal */
    ls_source_opts o;              /* options, defaults filled */
    sqlite3 *rd[2];                /* readers, used hand over hand */
    sqlite3_stmt *q_begin[2];      /* "BEGIN" on each reader */
    sqlite3_stmt *q_read[2];       /* a read that starts the transaction */
    sqlite3_stmt *q_end[2];        /* "ROLLBACK" */
    int cur;                       /* which reader holds the read transaction (-1: none) */
    sqlite3 *w;                    /* takes the write lock in a checkpoint cycle */
    ls_fast_busy w_busy;           /* its busy handler's state */
    sqlite3 *ck;                   /* runs the checkpoints */
    int wal_fd;                    /* the -wal file (-1 while it does not exist) */
    int lock_fd;                   /* flock on the spool's lock file */
    int guard_fd;                  /* the -shm file, for the checkpoint guard (-1: none) */
    int guarded;                   /* the guard is held */
    int pending;                   /* the last sync saw a commit SQLite had not published yet */
    int after_cycle;               /* our read mark is where the last checkpoint cycle put it */
    uint32_t cycle_index;          /* spool index at that cycle */
    uint32_t page_size;            /* database page size */
    ls_spool spool;                 /* the spool; guarded by mu for readers in other threads */
    uint8_t *buf;                  /* frame copy buffer */
    size_t buf_cap;
    uint64_t last_ckpt_ms;         /* when the last checkpoint cycle ran */
    pthread_mutex_t mu;            /* guards spool's gen/index/size for replica threads */
    pthread_cond_t cv;             /* broadcast when the spool grows or changes generation */
    uint64_t seq;                  /* incremented at every such change */
    int stopping;                  /* set at shutdown, wakes waiters */
    int opened;                    /* attached: connections, lock and spool open */
    int replaced;                  /* s->path names another file now (or none): the WAL
                                    * is no longer looked up by path */
    int after_replace;             /* detached after a replacement: the next attach starts
                                    * a new generation */
    int flushing;                  /* a final flush was requested: replicas stop pacing */
    uint64_t hurry;                /* bumped by ls_source_hurry: a pacing wait ends */
    dev_t db_dev;                  /* identity of the database file at attach */
    ino_t db_ino;
    uint64_t commits_copied;       /* statistics */
    uint64_t bytes_copied;
    uint64_t checkpoints;
} ls_source;

/* A consistent view of the spool's end for a replica thread. */
typedef struct ls_spool_pos {
    char gen[LS_GEN_LEN + 1];
    uint32_t index;
    uint64_t size;                 /* committed bytes in the current index */
    uint32_t salt1, salt2;         /* its WAL header's salts (size >= 32) */
    uint64_t seq;                  /* ls_source.seq when read */
} ls_spool_pos;

/*
 * A source for database `db`, not attached yet: nothing is opened, and the
 * file need not exist. Replica threads may use it at once (they see no
 * generation until it attaches).
 */
int ls_source_new(ls_ctx *ctx, const char *db, const ls_source_opts *opts, ls_source **out);
/*
 * Attach to the database file (see ATTACHING in source.c): it must exist and be
 * in WAL mode (LS_ENOENT, LS_ENOTDB, LS_ENOTWAL otherwise; litesafe never
 * creates it or changes its journal mode). Recovers the spool and proves
 * continuity with the live WAL, or starts a new generation. 0 if attached.
 */
int ls_source_attach(ls_source *s);
/*
 * 1 when the database path no longer names the file attached to (deleted,
 * or replaced by another file): from then on the WAL is read only through
 * the descriptor already open, so a final sync copies the old file's last
 * commits and never mixes in the new file's WAL.
 */
int ls_source_replaced(ls_source *s);
/* Final spool sync, release every lock, close the connections; attach may follow. */
void ls_source_detach(ls_source *s);
/*
 * Copy newly committed frames into the spool and move the read lock forward.
 * *grew is set when the spool changed. Runs a checkpoint cycle when due.
 */
int ls_source_sync(ls_source *s, int *grew);
/* Run a checkpoint cycle now (see source.c); `busy` reports a cycle that could not run. */
int ls_source_checkpoint(ls_source *s, int *busy);
/* Remove spool indexes below keep_from (every replica has them). */
void ls_source_gc(ls_source *s, uint32_t keep_from);
/* Bytes the spool holds of its current generation from index `from` on (0: all of it;
 * thread-safe; only from > 0 looks at the files). */
uint64_t ls_source_spool_bytes(ls_source *s, uint32_t from);
/* Detach and free. NULL is a no-op. */
void ls_source_close(ls_source *s);

/* Snapshot of the spool position (thread-safe). */
void ls_source_pos(ls_source *s, ls_spool_pos *out);
/* Wait until seq changes, `ms` passes or the source stops (thread-safe). */
void ls_source_wait(ls_source *s, uint64_t seq, int64_t ms);
/* Sleep `ms`, returning early only when the source stops (thread-safe). */
void ls_source_sleep(ls_source *s, int64_t ms);
/* Sleep `ms` (sync-interval pacing), returning early when the source stops or a
 * flush is requested (thread-safe). */
void ls_source_pace(ls_source *s, int64_t ms);
/* Ask replicas to ship what they have at once, without pacing (shutdown). */
void ls_source_flush_request(ls_source *s);
/* End the replicas' current pacing waits once (a sync barrier is waiting). */
void ls_source_hurry(ls_source *s);
/*
 * The attached database file's identity; -1 when not attached or replaced
 * (thread-safe). A reader that opened the file by path checks it afterwards.
 */
int ls_source_identity(ls_source *s, dev_t *dev, ino_t *ino);
/* Wake every waiter and make them see `stopping`. */
void ls_source_stop(ls_source *s);

#endif
