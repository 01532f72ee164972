/*
 * retry.h - the one place that decides what is worth retrying and how long
 * to wait: every layer that retries a remote call (the retrying storage
 * wrapper, the replica worker, restore) asks here, so they all agree.
 *
 * Transient: LS_ENET only. Backends map connection refused or reset,
 * timeouts, HTTP 5xx and 429 and SFTP channel errors to it. Everything else
 * (LS_EPERM for refused credentials, LS_EUSAGE for a missing bucket,
 * LS_ENOENT, LS_ECORRUPT, LS_ENOSPC, ...) will not get better by asking again.
 */
#ifndef LS_RETRY_H
#define LS_RETRY_H

#include <stdint.h>

/* 1 if a failure with this code may pass on its own. */
int ls_retryable(int code);

/*
 * 1 if a failure with this code is a configuration problem no retry and no
 * waiting fixes (credentials refused, bucket missing, bad option): worth
 * stopping for at start-up.
 */
int ls_permanent(int code);

/*
 * The wait before retry number `attempt` (0 for the first retry): min_ms
 * doubled per attempt, capped at max_ms, then a uniform random point in its
 * upper half (jitter keeps many clients from retrying in step).
 */
uint64_t ls_backoff_ms(unsigned attempt, uint64_t min_ms, uint64_t max_ms);

#endif
