/*
 * verify.h - the integrity check that `verify` and `restore` share.
 *
 * Invariant: checking a file never writes anything next to it unless the file
 * already has a -wal (then it is a live database and SQLite's own read-only
 * open is the only correct way to see its committed state; see verify.c).
 */
#ifndef LS_VERIFY_H
#define LS_VERIFY_H

#include "internal.h"

/*
 * Run PRAGMA integrity_check on the existing database `path` and fill these
 * fields of `res`: integrity_ok, integrity_message, page_size, page_count,
 * journal_mode (from the file header: "wal" or "delete"). A database SQLite
 * refuses as corrupt or "not a database" while opening or preparing the check
 * counts as a failed check (integrity_ok 0, SQLite's message), not an error.
 * The caller has probed the file (ls_db_probe): it exists and has a header.
 * Returns 0 when the check ran (whatever it found), or LS_EIO, LS_EBUSY,
 * LS_EPERM, LS_ENOMEM when it could not run. integrity_message is allocated
 * (only when the check ran): it must be NULL on entry (a zeroed struct), and
 * the caller releases it with ls_verify_result_free().
 */
int ls_integrity_check(ls_ctx *ctx, const char *path, ls_verify_result *res);

#endif
