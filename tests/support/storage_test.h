/*
 * storage_test.h - storage backends for tests: an in-memory store with the
 * same contract as the real backends, and a wrapper that injects failures
 * into any backend (to test retries and all-or-nothing behaviour).
 *
 * Both live outside the shipped library, in the static library
 * litesafe_testsupport (tests/support/mem.c, tests/support/fault.c) that only
 * the unit tests link, so unit tests of every layer above storage can use
 * them; no URL scheme leads to them and nothing in src/ or cli/ refers to them.
 */
#ifndef LS_STORAGE_TEST_H
#define LS_STORAGE_TEST_H

#include "storage.h"

/*
 * An empty in-memory store (type "mem", desc "memory"). Objects get the
 * current time as mtime on put. Safe to share between threads. Close with
 * ls_storage_close().
 */
int ls_storage_mem_open(ls_ctx *ctx, const char *name, ls_storage **out);
/* Set the stored mtime of an object (point-in-time tests). 0 or LS_ENOENT. */
int ls_storage_mem_set_mtime(ls_storage *s, const char *key, int64_t mtime_ms);

/* Operations a fault rule can target (bit set). */
enum {
    LS_FAULT_PUT = 1 << 0,
    LS_FAULT_GET = 1 << 1,
    LS_FAULT_LIST = 1 << 2,
    LS_FAULT_STAT = 1 << 3,
    LS_FAULT_DEL = 1 << 4,
    LS_FAULT_ALL = (1 << 5) - 1
};

/* What a rule does to the calls it selects (ls_fault.mode). */
enum {
    LS_FAULT_MODE_FAIL = 0, /* fail (before the call, or after `partial` bytes) */
    LS_FAULT_MODE_SHORT,    /* succeed with less than there was: see below */
    LS_FAULT_MODE_SLOW,     /* wait `delay_ms`, then go through unchanged */
    LS_FAULT_MODE_HANG      /* block until released, then fail: see below */
};

/*
 * A fault rule. Calls to the operations in `ops` are counted; after `skip`
 * of them went through, the next `times` calls (times < 0: all later ones)
 * are the rule's, and `mode` says what happens to them:
 *
 * LS_FAULT_MODE_FAIL: the call fails with `code` and the message "injected
 *   fault". How a put or get fails depends on `partial`:
 *     < 0   the call fails before reaching the wrapped backend;
 *     >= 0  the wrapped backend runs, but the source (put) or the sink (get)
 *           fails after `partial` bytes went through; if the transfer is
 *           shorter than that, the call still completes below and the
 *           failure is reported afterwards (a lost reply: the object was
 *           written).
 *   list, stat and del always fail before reaching the wrapped backend.
 * LS_FAULT_MODE_SHORT: the call succeeds with less than there was, as a
 *   store that breaks the contract would: a get hands the sink only its
 *   first `partial` bytes (< 0: none) and drops the rest silently (a short
 *   read); a put stores only the first `partial` bytes of its source and
 *   returns success (a server that kept a body cut short: s3rver does so
 *   when the sender is killed mid-PUT); a list keeps the `partial` first
 *   keys in byte order (a listing that ends early); stat and del go through.
 * LS_FAULT_MODE_SLOW: the call waits `delay_ms` (less if the caller's ctx
 *   is cancelled meanwhile) and then goes to the wrapped backend unchanged.
 * LS_FAULT_MODE_HANG: the call blocks (before the wrapped backend when
 *   partial < 0, else once `partial` bytes of a put/get went through, or
 *   after a shorter transfer completed) until the caller's ctx is cancelled
 *   (ls_ctx_cancel, polled every 2 ms), the rule is replaced
 *   (ls_storage_fault_set, which releases every call hanging), or
 *   `delay_ms` elapsed when > 0. It then fails: LS_ECANCEL "cancelled" when
 *   cancelled, else `code` with "injected fault (hung)".
 *
 * Fields are appended at the end only, so the first five keep their
 * positions and a rule that leaves mode and delay_ms zero behaves as before
 * they existed (-Wextra wants a positional initialiser to name all seven;
 * designated ones may leave them out).
 */
typedef struct ls_fault {
    unsigned ops;     /* LS_FAULT_* bits; 0: the rule is off (pass-through) */
    uint64_t skip;    /* matching calls let through first */
    int64_t times;    /* matching calls the rule takes after those; < 0: forever */
    int code;         /* returned code; 0 means LS_EIO */
    int64_t partial;  /* bytes (list: keys) through before the fault; -1: none */
    int mode;         /* LS_FAULT_MODE_*; 0: FAIL */
    int64_t delay_ms; /* SLOW: the wait; HANG: the longest hang (<= 0: no bound) */
} ls_fault;

/*
 * Wrap `inner` (owned once this succeeds: closed with the wrapper) in a fault
 * injector, initially pass-through. Its type, name and desc are the inner
 * backend's, so messages read the same. Safe for concurrent calls from
 * several threads, as the contract requires (one mutex guards the rule and
 * the counters; no call holds it while it waits or reaches the inner backend).
 */
int ls_storage_fault_open(ls_ctx *ctx, ls_storage *inner, ls_storage **out);
/* Replace the rule, reset the counters and release every call hanging under the old rule. */
void ls_storage_fault_set(ls_storage *s, const ls_fault *rule);
/* Calls seen for the operations in `ops` since the last ls_storage_fault_set. */
uint64_t ls_storage_fault_calls(ls_storage *s, unsigned ops);
/* Calls the rule acted on (failed, cut, slowed, hung) since the last ls_storage_fault_set. */
uint64_t ls_storage_fault_injected(ls_storage *s);
/* Calls hanging right now (LS_FAULT_MODE_HANG): a test waits for the hang to begin. */
uint64_t ls_storage_fault_hanging(ls_storage *s);

/*
 * A handle on `shared` that does not own it (tests/support/view.c): calls go
 * through unchanged, closing it leaves `shared` open. For code that takes
 * ownership of the handle it is given (a replica worker) while the test
 * keeps using the store.
 */
int ls_storage_view_open(ls_ctx *ctx, ls_storage *shared, ls_storage **out);

#endif
