/*
 * validate.h - restore a replica at the live database's current position and
 * compare the two byte for byte (Litestream 0.2's `validate`, which 0.3
 * dropped). The procedure is described in validate.c.
 */
#ifndef LS_VALIDATE_H
#define LS_VALIDATE_H

#include "layout.h"
#include "storage.h"

/* ls_validate_result: see litesafe.h. */

/*
 * Compare replica `st` with the live database `db` (its spool
 * `spool_dir`, or the default next to it). Returns 0 when the comparison ran
 * (res->ok says whether they match); LS_EBUSY when the replica did not reach
 * the live position within timeout_ms; other codes when it could not run.
 */
int ls_validate(ls_ctx *ctx, const char *db, const char *spool_dir, ls_storage *st, int timeout_ms,
                ls_validate_result *res);

#endif
