/*
 * storage/library.c - the global state of libcurl and libssh2: the
 * reference-counted ls_library_init/ls_library_shutdown of the API, and the
 * lazy initialisation the backends fall back on (library.h).
 *
 * Invariants: `refs` counts the references of ls_library_init, `lazy` is 1
 * when a backend initialised the libraries without one; the libraries are up
 * exactly when refs + lazy > 0, and every transition happens under `mu`. The
 * last ls_library_shutdown clears both, so a program that called
 * ls_library_init ends with both libraries cleaned up.
 */
#include "library.h"

#include <curl/curl.h>
#include <libssh2.h>
#include <pthread.h>
#include <stdio.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int refs; /* references held through ls_library_init */
static int lazy; /* 1: initialised by a backend, no reference of ls_library_init */

/*
 * Initialise libcurl, then libssh2 (under mu, when neither is up). On failure
 * nothing stays initialised and *why says which one failed.
 */
static int libs_up(const char **why)
{
    static char msg[160]; /* reason of the last failure, under mu */
    CURLcode cc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (cc != CURLE_OK) {
        snprintf(msg, sizeof(msg), "libcurl initialisation failed: %s", curl_easy_strerror(cc));
        *why = msg;
        return LS_EIO;
    }
    int sc = libssh2_init(0);
    if (sc != 0) {
        curl_global_cleanup();
        snprintf(msg, sizeof(msg), "libssh2 initialisation failed (code %d)", sc);
        *why = msg;
        return LS_EIO;
    }
    return 0;
}

/* Clean up libssh2, then libcurl (under mu, when the last reference goes). */
static void libs_down(void)
{
    libssh2_exit();
    curl_global_cleanup();
}

int ls_library_init(void)
{
    const char *why = NULL;
    int rc = 0;
    pthread_mutex_lock(&mu);
    if (refs == 0 && !lazy)
        rc = libs_up(&why);
    if (rc == 0)
        refs++;
    pthread_mutex_unlock(&mu);
    return rc;
}

void ls_library_shutdown(void)
{
    pthread_mutex_lock(&mu);
    if (refs > 0 && --refs == 0) {
        libs_down();
        lazy = 0;
    }
    pthread_mutex_unlock(&mu);
}

int ls_library_lazy(const char **why)
{
    int rc = 0;
    pthread_mutex_lock(&mu);
    if (refs == 0 && !lazy && (rc = libs_up(why)) == 0)
        lazy = 1;
    pthread_mutex_unlock(&mu);
    return rc;
}

int ls_library_refs(void)
{
    pthread_mutex_lock(&mu);
    int n = refs;
    pthread_mutex_unlock(&mu);
    return n;
}

int ls_library_initialised(void)
{
    pthread_mutex_lock(&mu);
    int up = refs > 0 || lazy;
    pthread_mutex_unlock(&mu);
    return up;
}
