/*
 * library.h - the global state of libcurl and libssh2 (ls_library_init and
 * ls_library_shutdown in litesafe.h), and the lazy path the backends take
 * for callers that never called ls_library_init.
 *
 * One mutex guards every call the library makes to curl_global_init/cleanup
 * and libssh2_init/exit. The libraries are up while ls_library_init holds a
 * reference or the lazy path took one; the last ls_library_shutdown releases
 * both.
 */
#ifndef LS_LIBRARY_H
#define LS_LIBRARY_H

#include "internal.h"

/*
 * Make sure libcurl and libssh2 are initialised (for the backends, before
 * their first use). If they are not, initialise them now and keep them until
 * the last ls_library_shutdown() (or exit). Returns 0, or LS_EIO with *why set
 * to a static message ("libcurl initialisation failed: ...").
 */
int ls_library_lazy(const char **why);

/* For tests: references held through ls_library_init. */
int ls_library_refs(void);
/* For tests: 1 if libcurl and libssh2 are initialised by the library, else 0. */
int ls_library_initialised(void);

#endif
