/*
 * config_int.h - what the two halves of the replication config share, and
 * nothing else includes: config_yaml.c reads the YAML into the ls_config
 * structs through its key tables; config_defaults.c fills the defaults and
 * validates (ls_config_apply_defaults). The key tables stay private to
 * config_yaml.c: the defaults half reaches them only through the calls below.
 */
#ifndef LS_CONFIG_INT_H
#define LS_CONFIG_INT_H

#include "config.h"

#include <stddef.h>

#define NROWS(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Record `code` with "<name>:<line>:<col>: " in front of the message and
 * return it; line 0 leaves the position out, col 0 the column. A NULL name
 * reads "<config>".
 */
int ls_cfg_pos_err(ls_ctx *ctx, int code, const char *name, size_t line, size_t col,
                   const char *fmt, ...) LS_PRINTF(6, 7);

/*
 * Give replica `r` every replica setting (the settings table, snapshot:
 * included) it lacks and `defaults` (a db's or the top level's) has.
 * Returns 0 or LS_ENOMEM.
 */
int ls_cfg_inherit_replica(ls_replica_cfg *r, const ls_replica_cfg *defaults);

/*
 * Make `db`, a byte copy of another db entry, own its fields (every string,
 * list and replica is copied). On LS_ENOMEM what was not copied is NULL, so
 * `db` can still be freed with ls_cfg_db_free().
 */
int ls_cfg_db_copy(ls_db_cfg *db);

/* Free every field of a db entry the key tables describe (not rel_path, not db itself). */
void ls_cfg_db_free(ls_db_cfg *db);

#endif
