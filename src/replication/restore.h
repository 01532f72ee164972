/*
 * restore.h - rebuild a database from a replica, as of its latest state, a
 * WAL index, a timestamp, or an exact position; each page written once.
 */
#ifndef LS_RESTORE_H
#define LS_RESTORE_H

#include "catalog.h"

typedef struct ls_restore_opts {
    const char *generation;     /* restore this generation (NULL: choose) */
    int64_t index;              /* restore through the end of this WAL index (-1: latest) */
    int64_t timestamp_ms;       /* restore as of this time, unix ms (-1: latest) */
    int64_t offset;             /* with index: stop at this byte offset of it (-1: its end) */
    int64_t pinned_ms;          /* with offset: a snapshot of that same index may be used if
                                   uploaded before this time (its state is then at or before
                                   the offset); 0: never */
    int parallelism;            /* concurrent downloads (0: 16) */
    int skip_integrity;         /* do not run integrity_check (validate compares bytes) */
} ls_restore_opts;

typedef struct ls_replica_restore_result {
    char destination[4096];
    char generation[LS_GEN_LEN + 1];
    uint32_t snapshot_index;    /* snapshot restored from */
    uint32_t index;             /* last WAL index applied */
    uint64_t offset;            /* ... through this byte offset */
    uint32_t page_size;
    uint64_t page_count;
    uint64_t segments;          /* WAL segments applied */
    uint64_t wal_pages;         /* pages taken from the WAL instead of the snapshot */
    uint64_t bytes_downloaded;
    uint64_t elapsed_ms;
} ls_replica_restore_result;

/*
 * Restore to `out`, which must not exist (LS_EEXIST). LS_ENOENT when the
 * replica holds nothing that matches; LS_ECORRUPT when an object is damaged
 * or the WAL has a hole. Nothing is left at `out` on failure.
 */
int ls_restore_replica(ls_ctx *ctx, ls_storage *st, const char *out, const ls_restore_opts *o,
                       ls_replica_restore_result *res);

#endif
