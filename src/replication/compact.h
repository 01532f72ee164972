/*
 * compact.h - compaction of a replica's finished WAL indexes: the many
 * small segments of each index become one object, so a restore reads
 * O(indexes) objects, not O(commits). Runs in the replica's thread (see
 * compact.c for the protocol that keeps the replica restorable by litesafe
 * and by Litestream 0.3 at every moment).
 */
#ifndef LS_COMPACT_H
#define LS_COMPACT_H

#include "replica.h"

/*
 * One compaction pass when due (compact-interval since the last one, and
 * something was shipped since, or work is pending): at most a bounded amount
 * of merging, and the deletes whose grace period ended. Makes no request
 * when nothing is due. `now` is unix ms. Returns 0 or a negative LS_E*.
 */
int ls_compact_step(ls_replica *r, int64_t now);
/* Free what compaction remembers (merged indexes awaiting their deletes). */
void ls_compact_free(ls_replica *r);

#endif
