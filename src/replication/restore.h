/*
 * restore.h - rebuild a database from a replica, as of its latest state, a
 * WAL index, a timestamp, or an exact position; each page written once.
 * The public entry (target.c, ls_restore) picks the replica and applies the
 * if-* options; this is the procedure on one opened replica.
 */
#ifndef LS_RESTORE_H
#define LS_RESTORE_H

#include "catalog.h"

/* What to restore from one replica: the target state and how. */
typedef struct ls_restore_plan {
    const char *generation;     /* restore this generation (NULL: choose) */
    int64_t index;              /* restore through the end of this WAL index (-1: latest) */
    int64_t timestamp_ms;       /* restore as of this time, unix ms (-1: latest) */
    int64_t offset;             /* with index: stop at this byte offset of it (-1: its end) */
    int64_t pinned_ms;          /* with offset: a snapshot of that same index may be used if
                                   uploaded before this time (its state is then at or before
                                   the offset); 0: never */
    int parallelism;            /* concurrent downloads (0: 16) */
    int skip_integrity;         /* do not run integrity_check (validate compares bytes) */
} ls_restore_plan;

/* A plan for the latest state, every check on (what a NULL plan means). */
#define LS_RESTORE_PLAN_LATEST {NULL, -1, -1, -1, 0, 0, 0}

/*
 * Restore replica `st` to `out`, which must not exist (LS_EEXIST). Fills
 * every field of `res` but `restored` and `replica` (the caller's). LS_ENOENT
 * when the replica holds nothing that matches; LS_ECORRUPT when an object is
 * damaged or the WAL has a hole. Nothing is left at `out` on failure.
 */
int ls_restore_replica(ls_ctx *ctx, ls_storage *st, const char *out, const ls_restore_plan *plan,
                       ls_restore_result *res);

#endif
