/*
 * replica.h - one replica of one database: ships the spool's committed WAL
 * as segments, takes snapshots, applies retention, and retries failures. Each
 * replica runs in its own thread so a slow or absent one never holds back the
 * others or the application.
 */
#ifndef LS_REPLICA_H
#define LS_REPLICA_H

#include "source.h"
#include "storage.h"

#include <pthread.h>

typedef struct ls_replica_opts {
    const char *name;               /* replica name, for logs */
    int64_t sync_interval_ms;       /* least time between two segment uploads (0: none) */
    int64_t snapshot_interval_ms;   /* new snapshot this often (0: only when needed) */
    int64_t retention_ms;           /* keep snapshots younger than this (<= 0: keep all) */
    int64_t retention_check_ms;     /* how often retention runs */
    int64_t validation_interval_ms; /* validate against the live database this often (0: off) */
    double request_price;           /* price of 1,000 requests (the status's cost estimate) */
    int64_t compact_after_ms;       /* merge a finished WAL index's segments once its newest
                                       is this old (compact.h; 0: never) */
    int64_t compact_interval_ms;    /* compaction passes at most this often (and the grace
                                       period before merged segments are deleted) */
    double snapshot_wal_ratio;      /* snapshot when the WAL shipped since the last one
                                       exceeds this times the database size (0: never) */
} ls_replica_opts;

typedef struct ls_replica {
    ls_ctx *ctx;                    /* this thread's errors and the shared log sink */
    ls_storage *st;                 /* the backend (owned) */
    ls_source *src;                 /* the database side (shared, not owned) */
    ls_replica_opts o;
    char name[64];
    /* Position: what the replica durably holds. */
    int have_pos;                   /* position known (else learn it from a listing) */
    char gen[LS_GEN_LEN + 1];
    uint32_t index;
    uint64_t offset;
    int have_snapshot;              /* the replica has a snapshot of `gen` */
    int64_t last_snapshot_ms;       /* unix ms of the newest snapshot in `gen` */
    uint32_t snap_index;            /* WAL index of the newest snapshot in `gen` (its key) */
    int snap_damaged;               /* that snapshot was found cut short at start: take it
                                       again (step 3); not restorable until then */
    int64_t last_retention_ms;      /* unix ms of the last retention pass */
    uint64_t last_put_ms;           /* monotonic ms of the last segment upload */
    int failures;                   /* consecutive failed steps (backoff, log once) */
    /* Published for the owner (guarded by mu). */
    pthread_mutex_t mu;
    uint32_t shipped_index;         /* every index below this is on the replica */
    char shipped_gen[LS_GEN_LEN + 1];
    uint64_t segments, bytes, snapshots; /* statistics */
    int64_t last_ok_ms;             /* unix ms of the last stored upload (0: none yet) */
    int64_t last_error_ms;          /* unix ms of the last failed step (0: none) */
    uint64_t shipped_offset;        /* ...and index shipped_index up to this byte */
    int shipped_snapshot;           /* shipped_gen has a snapshot here (restorable) */
    int last_rc;                    /* the last step's failure (0: it succeeded) */
    char last_err[512];             /* its message */
    char drop_gen[LS_GEN_LEN + 1];  /* its unshipped WAL of this generation was dropped from
                                       the spool (max-spool-size): it owes a fresh snapshot,
                                       and the spool keeps nothing for it ("": not dropped) */
    uint64_t spool_drops;           /* times that happened since start */
    /* The worker thread's own: the dropped marker goes once the fresh snapshot's index
     * holds a segment (until then a restart must not resume from the old position). */
    int unmark_pending;
    uint32_t resnap_index;          /* the fresh snapshot's index */
    pthread_t th;
    int started;
    /* Periodic validation runs in a thread of its own: it waits for this
     * replica to ship the position it pinned. */
    pthread_t vth;
    int vstarted;                   /* vth was started and not joined yet */
    volatile int vdone;             /* vth finished */
    int64_t last_validation_ms;     /* unix ms of the last validation start */
    uint64_t validations, validation_failures;
    /* Compaction (compact.c) and snapshot-wal-ratio: the worker thread's own. */
    int64_t last_compact_ms;        /* unix ms of the last pass (0: none yet) */
    uint64_t compact_seen;          /* `segments` at that pass */
    int compact_pending;            /* the last pass left work for a later one */
    struct ls_merged *merged;       /* merged indexes whose old segments are not deleted yet */
    size_t nmerged;
    uint64_t wal_since_snapshot;    /* WAL bytes shipped since the last snapshot */
} ls_replica;

/* Create a replica worker over an opened backend (ownership of st moves in). */
int ls_replica_new(ls_ctx *parent, ls_source *src, ls_storage *st, const ls_replica_opts *o,
                   ls_replica **out);
/* Start its thread. */
int ls_replica_start(ls_replica *r);
/*
 * 1 when the replica holds everything the spool held at `sp`, restorably
 * (with a snapshot of the generation; an empty generation counts as held). *last_rc and msg (if not NULL) receive the last
 * step's failure (0 and "" while it works). Thread-safe.
 */
int ls_replica_has(ls_replica *r, const ls_spool_pos *sp, int *last_rc, char *msg, size_t msgsz);
/* The position the replica holds, "<gen>/<index>:<offset>" (thread-safe). */
void ls_replica_shipped(ls_replica *r, char *out, size_t n);
/* Join the thread (after ls_source_stop) and free. NULL is a no-op. */
void ls_replica_free(ls_replica *r);
/* One pass of the worker loop: ship, snapshot if due, retention if due. */
int ls_replica_step(ls_replica *r);
/* Lowest index this replica still needs from the spool of generation `gen`: 0 while
 * its position in gen is unknown, UINT32_MAX once it was dropped from it. */
uint32_t ls_replica_needs_from(ls_replica *r, const char *gen);
/*
 * Drop the replica from the spool of generation `gen` (THE CAP, spool.h):
 * the spool stops keeping its unshipped WAL, it takes a fresh snapshot when
 * it can, and the drop is recorded in the spool (a marker) and counted.
 * Returns 1 when newly dropped, 2 when the marker says it was before a
 * restart (not counted again), 0 when it already was in this run. Called by
 * the source thread with its ctx; thread-safe.
 */
int ls_replica_drop(ls_replica *r, ls_ctx *ctx, const char *gen);
/* 1 while the replica owes a fresh snapshot in `gen` after a drop (thread-safe). */
int ls_replica_dropped(ls_replica *r, const char *gen);

#endif
