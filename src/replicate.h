/*
 * replicate.h - the replication daemon: one source thread per database
 * (woken by inotify on its WAL, with a fallback poll) and one worker thread
 * per replica.
 */
#ifndef LS_REPLICATE_H
#define LS_REPLICATE_H

#include "config.h"
#include "replica.h"
#include "ship.h"

#include <signal.h>

typedef struct ls_engine ls_engine;

/* Open every database and replica of `cfg` (defaults applied). Nothing runs yet. */
int ls_engine_new(ls_ctx *ctx, const ls_config *cfg, ls_engine **out);
/*
 * Run until *stop becomes non-zero; then sync what is committed to every
 * replica and return 0 (or the first shutdown error).
 */
int ls_engine_run(ls_engine *e, volatile sig_atomic_t *stop);
void ls_engine_free(ls_engine *e);

/* Open the storage a replica config describes. */
int ls_replica_storage_open(ls_ctx *ctx, const ls_replica_cfg *rc, ls_storage **out);

#endif
