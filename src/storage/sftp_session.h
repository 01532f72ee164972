/*
 * storage/sftp_session.h - the SSH side of the SFTP backend (sftp_session.c):
 * where and how to connect (host, port, user, credentials, host-key checks)
 * and a pool of authenticated SSH sessions with their SFTP channel, which
 * the file operations (sftp.c) take and give back. Internal to the two files.
 */
#ifndef LS_SFTP_SESSION_H
#define LS_SFTP_SESSION_H

#include "storage.h"

#include <libssh2.h>
#include <libssh2_sftp.h>
#include <pthread.h>

/* One SSH connection with its SFTP channel, used by one thread at a time. */
typedef struct ls_sftp_conn {
    int sock;                  /* TCP socket */
    LIBSSH2_SESSION *ssh;      /* the SSH session */
    LIBSSH2_SFTP *sftp;        /* the SFTP subsystem */
    int broken;                /* transport failed: close instead of reuse */
    const char *password;      /* for the keyboard-interactive callback (borrowed) */
    struct ls_sftp_conn *next; /* idle list link */
} ls_sftp_conn;

/* Where to connect, how to check and log in, and the pool of sessions. */
typedef struct ls_sftp_session {
    ls_storage *owner;  /* the store, for messages (ls_storage_err) */
    char *host;         /* host name or address, without [brackets] */
    int port;           /* TCP port */
    char *user;         /* login name */
    char *password;     /* password / key passphrase, or NULL (secret) */
    char *key_path;     /* private key file, or NULL */
    char *known_hosts;  /* known_hosts file set by the user, or NULL */
    char *pin;          /* pinned SHA-256 fingerprint, base64 without padding, or NULL */
    unsigned char *pin_key; /* pinned key blob (from an authorized-keys line), or NULL */
    size_t pin_key_len;     /* its length */
    int pin_key_type;       /* its LIBSSH2_HOSTKEY_TYPE_* */
    long timeout_ms;    /* per blocking call and for connecting */
    pthread_mutex_t mu; /* guards idle, nconn */
    pthread_cond_t cv;  /* signalled when a session is returned or a slot frees */
    ls_sftp_conn *idle; /* idle sessions */
    int nconn;          /* sessions open or being opened (idle + in use) */
} ls_sftp_session;

/*
 * Set up ss (zeroed by the caller) for store `owner` from opts: host
 * ("HOST[:PORT]", required), user (default: the current user), password,
 * key_path and known_hosts ("~/" expanded), the host_key_fingerprint and
 * host_key pins, timeout_ms. Nothing is contacted: sessions open on first
 * use. Messages name the replica `name`. Returns 0, LS_EUSAGE or LS_ENOMEM;
 * release with ls_sftp_session_free, on failure too.
 */
int ls_sftp_session_init(ls_sftp_session *ss, ls_storage *owner, ls_ctx *ctx, const char *name,
                         const ls_storage_opts *opts);
/* Close the idle sessions and free the settings (none may be in use). */
void ls_sftp_session_free(ls_sftp_session *ss);

/*
 * Take a session for op on key: an idle one, else a new one (TCP, SSH
 * handshake, host key, authentication, SFTP) while fewer than the pool's
 * limit exist, else wait for one. Returns 0 with *out, or the connect
 * failure (LS_ENET, LS_EPERM for a host key or login refused, LS_EUSAGE).
 */
int ls_sftp_conn_get(ls_sftp_session *ss, ls_ctx *ctx, const char *op, const char *key,
                     ls_sftp_conn **out);
/* Give a session back (a broken one is closed). */
void ls_sftp_conn_release(ls_sftp_session *ss, ls_sftp_conn *c);

/*
 * Errors of a session's calls, worded by ls_storage_err on store s:
 * ls_sftp_fx_err records SFTP status st of `step` (LS_ENOENT, LS_EPERM,
 * LS_ENET or LS_EIO with the status name); ls_sftp_conn_err records the
 * failure lrc (a LIBSSH2_ERROR_*): an SFTP status for
 * LIBSSH2_ERROR_SFTP_PROTOCOL, else a transport failure (LS_ENET, or
 * LS_ENOMEM) that marks the session broken. Both return the code.
 */
int ls_sftp_fx_err(ls_storage *s, ls_ctx *ctx, ls_sftp_conn *c, unsigned long st, const char *op,
                   const char *key, const char *step);
int ls_sftp_conn_err(ls_storage *s, ls_ctx *ctx, ls_sftp_conn *c, int lrc, const char *op,
                     const char *key, const char *step);
/* The libssh2 error code of the last failed call of c that returned NULL. */
int ls_sftp_last_rc(ls_sftp_conn *c);

#endif
