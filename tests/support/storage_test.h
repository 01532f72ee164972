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

/*
 * A fault rule. Calls to the operations in `ops` are counted; after `skip`
 * of them went through, the next `times` calls fail (times < 0: all later
 * ones) with `code`, and the message "injected fault".
 * How a put or get fails depends on `partial`:
 *   < 0   the call fails before reaching the wrapped backend;
 *   >= 0  the wrapped backend runs, but the source (put) or the sink (get)
 *         fails after `partial` bytes went through; if the transfer is
 *         shorter than that, the call still completes below and the failure
 *         is reported afterwards (a lost reply: the object was written).
 * list, stat and del always fail before reaching the wrapped backend.
 */
typedef struct ls_fault {
    unsigned ops;    /* LS_FAULT_* bits; 0: the rule is off (pass-through) */
    uint64_t skip;   /* matching calls let through first */
    int64_t times;   /* matching calls failed after those; < 0: forever */
    int code;        /* returned code; 0 means LS_EIO */
    int64_t partial; /* bytes transferred before a put/get fails, -1: none */
} ls_fault;

/*
 * Wrap `inner` (owned once this succeeds: closed with the wrapper) in a fault
 * injector, initially pass-through. Its type, name and desc are the inner
 * backend's, so messages read the same. Not thread-safe.
 */
int ls_storage_fault_open(ls_ctx *ctx, ls_storage *inner, ls_storage **out);
/* Replace the rule and reset the counters. */
void ls_storage_fault_set(ls_storage *s, const ls_fault *rule);
/* Calls seen for the operations in `ops` since the last ls_storage_fault_set. */
uint64_t ls_storage_fault_calls(ls_storage *s, unsigned ops);
/* Failures injected since the last ls_storage_fault_set. */
uint64_t ls_storage_fault_injected(ls_storage *s);

/*
 * A handle on `shared` that does not own it (tests/support/view.c): calls go
 * through unchanged, closing it leaves `shared` open. For code that takes
 * ownership of the handle it is given (a replica worker) while the test
 * keeps using the store.
 */
int ls_storage_view_open(ls_ctx *ctx, ls_storage *shared, ls_storage **out);

#endif
