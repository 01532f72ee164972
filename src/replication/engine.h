/*
 * engine.h - the replication daemon: one source thread per database
 * (woken by inotify on its WAL, with a fallback poll) and one worker thread
 * per replica.
 */
#ifndef LS_ENGINE_H
#define LS_ENGINE_H

#include "age.h"
#include "config.h"
#include "replica.h"
#include "source.h"

#include <signal.h>

typedef struct ls_engine ls_engine;

/*
 * Check every database and replica of `cfg` (defaults applied) and open the
 * replicas' storage handles; nothing is contacted and no database is opened
 * yet, so an error here is a configuration error.
 */
int ls_engine_new(ls_ctx *ctx, const ls_config *cfg, ls_engine **out);
/* How long the stop waits for replicas to receive the last commits (default 30 s). */
void ls_engine_set_shutdown_timeout(ls_engine *e, int64_t ms);
/*
 * Run until *stop becomes non-zero (see STOPPING in engine.c): 1 asks for
 * a flush of everything committed to every replica within the shutdown
 * timeout, 2 or more stops at once. Returns 0 when every replica holds
 * everything committed before the stop, LS_EIO naming one that does not.
 * Problems of one database or replica never end it early: they are logged
 * and retried.
 */
int ls_engine_run(ls_engine *e, volatile sig_atomic_t *stop);
/*
 * Wait (from another thread, up to ms) until every database had its first
 * attach attempt, so a child started next finds replication running where
 * its database exists. 0, or -1 on timeout or stop.
 */
int ls_engine_wait_tried(ls_engine *e, int64_t ms);
void ls_engine_free(ls_engine *e);

/* For the public replicator (replicator.c; the contracts are in litesafe.h). */
/* Wake the source thread of `db` (absolute path; NULL: every database). Any thread. */
void ls_engine_notify(ls_engine *e, const char *db);
/*
 * The durable barrier of ls_replicator_sync_db (db NULL: every database;
 * flags LS_SYNC_*), while ls_engine_run runs; errors on ctx (NULL: the
 * engine's). Any thread.
 */
int ls_engine_sync(ls_engine *e, ls_ctx *ctx, const char *db, unsigned flags,
                   int64_t timeout_ms);
/* Every replica's state (*out malloc'd; strings borrowed from the engine). */
int ls_engine_status(ls_engine *e, ls_replica_status **out, size_t *n);

/*
 * Trim the spool of `s` to what its replicas still need, within max_spool
 * bytes (0: the automatic cap), dropping the replicas that hold too much
 * back (THE CAP in engine.c); logs on ctx. Returns how many were dropped.
 * Run by the source thread after each sync (and by tests).
 */
int ls_engine_trim_spool(ls_ctx *ctx, ls_source *s, ls_replica **reps, size_t nrep,
                         int64_t max_spool);

/*
 * Open the storage a replica config describes: the backend, retried, and
 * wrapped in age encryption when the replica has age keys (age.h).
 */
int ls_replica_storage_open(ls_ctx *ctx, const ls_replica_cfg *rc, ls_storage **out);
/*
 * The age keys of a replica config into *out (NULL when it has none);
 * messages name the replica, never a key. See ls_age_keys_load.
 */
int ls_replica_age_keys(ls_ctx *ctx, const ls_replica_cfg *rc, ls_age_keys **out);
/* Wrap *st (owned, also on failure) in age encryption when rc has age keys. */
int ls_replica_storage_age(ls_ctx *ctx, const ls_replica_cfg *rc, ls_storage **st);

#endif
