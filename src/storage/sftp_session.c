/*
 * storage/sftp_session.c - the SSH side of the SFTP backend: settings,
 * connecting, host-key verification, authentication, and the pool of
 * sessions the file operations (sftp.c) use (interface: sftp_session.h).
 *
 * Connections. libssh2 sessions must not be used by two threads at once, so
 * the store keeps a pool of at most SFTP_MAX_CONNS sessions, opened lazily:
 * a call takes an idle session (or opens one while under the limit, or waits
 * for one), uses it alone, and gives it back. A session that hit a socket,
 * timeout or channel error is marked broken and closed instead of returned,
 * so the next call reconnects; such errors are LS_ENET (core retries them).
 * Every blocking libssh2 call is bounded by libssh2_session_set_timeout
 * (opts->timeout_ms, default 30 s): a stalled transfer fails, a slow one
 * that keeps moving does not. The TCP connect has the same bound.
 *
 * Host key. Always verified, before any authentication (Litestream 0.3 skips
 * this, GHSA-qpgw-j75c-j585; 0.5 only with host-key set): against the pinned
 * host-key and/or the known_hosts file known-hosts; with neither set,
 * ~/.ssh/known_hosts, and if that does not exist the connection is refused.
 * host-key is either the key's SHA-256 fingerprint ("SHA256:<base64>", as
 * ssh-keygen -lf prints it) or, as Litestream 0.5 takes it, the key itself
 * as an authorized-keys line ("ssh-ed25519 AAAA... [comment]", what
 * ssh-keyscan and /etc/ssh/ssh_host_*.pub give; parse_key_line): the
 * server's raw key (libssh2_session_hostkey) must then be that key blob, of
 * that type, byte for byte. Entries "[host]:port" are used for ports other
 * than 22. A mismatch or an unknown host is LS_EPERM with the server's
 * SHA256 fingerprint in the message. libssh2 picks one host key type per
 * connection: a pinned key's type first, then the types known_hosts has for
 * the host, then ed25519, ECDSA, RSA.
 *
 * Authentication: the private key key-path first (no public key file needed;
 * password, if set, is its passphrase), then password (and keyboard-
 * interactive answered with the password). With neither key-path nor
 * password, the user's ~/.ssh/id_ed25519, id_ecdsa, id_rsa (unencrypted),
 * as ssh does, so a bare URL works. Refused: LS_EPERM. The password never
 * appears in desc or in a message.
 */
#define _GNU_SOURCE
#include "sftp_session.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SFTP_MAX_CONNS 4              /* sessions per store */
#define SFTP_DEFAULT_TIMEOUT_MS 30000 /* opts->timeout_ms == 0 */

/* ---------------------------------------------------------------------- */
/* Errors                                                                  */

static const char *const fx_names[] = {
    "SSH_FX_OK",
    "SSH_FX_EOF",
    "SSH_FX_NO_SUCH_FILE",
    "SSH_FX_PERMISSION_DENIED",
    "SSH_FX_FAILURE",
    "SSH_FX_BAD_MESSAGE",
    "SSH_FX_NO_CONNECTION",
    "SSH_FX_CONNECTION_LOST",
    "SSH_FX_OP_UNSUPPORTED",
    "SSH_FX_INVALID_HANDLE",
    "SSH_FX_NO_SUCH_PATH",
    "SSH_FX_FILE_ALREADY_EXISTS",
    "SSH_FX_WRITE_PROTECT",
    "SSH_FX_NO_MEDIA",
    "SSH_FX_NO_SPACE_ON_FILESYSTEM",
    "SSH_FX_QUOTA_EXCEEDED",
    "SSH_FX_UNKNOWN_PRINCIPAL",
    "SSH_FX_LOCK_CONFLICT",
    "SSH_FX_DIR_NOT_EMPTY",
    "SSH_FX_NOT_A_DIRECTORY",
    "SSH_FX_INVALID_FILENAME",
    "SSH_FX_LINK_LOOP",
};

/* The LS_E* code of an SFTP status. */
static int fx_code(unsigned long st)
{
    switch (st) {
    case LIBSSH2_FX_NO_SUCH_FILE:
    case LIBSSH2_FX_NO_SUCH_PATH:
        return LS_ENOENT;
    case LIBSSH2_FX_PERMISSION_DENIED:
    case LIBSSH2_FX_WRITE_PROTECT:
        return LS_EPERM;
    case LIBSSH2_FX_NO_CONNECTION:
    case LIBSSH2_FX_CONNECTION_LOST:
        return LS_ENET;
    default:
        return LS_EIO;
    }
}

/* Record SFTP status st of `step` (a remote path or action) for op on key. */
int ls_sftp_fx_err(ls_storage *s, ls_ctx *ctx, ls_sftp_conn *c, unsigned long st, const char *op,
                   const char *key, const char *step)
{
    int code = fx_code(st);
    if (code == LS_ENET)
        c->broken = 1;
    if (st < sizeof(fx_names) / sizeof(fx_names[0]))
        return ls_storage_err(s, ctx, code, op, key, "%s: %s", step, fx_names[st]);
    return ls_storage_err(s, ctx, code, op, key, "%s: SFTP status %lu", step, st);
}

/*
 * Record the failure lrc (a LIBSSH2_ERROR_*) of `step`: an SFTP status when
 * lrc is LIBSSH2_ERROR_SFTP_PROTOCOL, else a transport failure (LS_ENET, or
 * LS_ENOMEM) that breaks the session.
 */
int ls_sftp_conn_err(ls_storage *s, ls_ctx *ctx, ls_sftp_conn *c, int lrc, const char *op,
                     const char *key, const char *step)
{
    char *msg = NULL;
    if (lrc == LIBSSH2_ERROR_SFTP_PROTOCOL && c->sftp)
        return ls_sftp_fx_err(s, ctx, c, libssh2_sftp_last_error(c->sftp), op, key, step);
    c->broken = 1;
    libssh2_session_last_error(c->ssh, &msg, NULL, 0);
    return ls_storage_err(s, ctx, lrc == LIBSSH2_ERROR_ALLOC ? LS_ENOMEM : LS_ENET, op, key,
                          "%s: %s (libssh2 error %d)", step, msg && *msg ? msg : "failed", lrc);
}

/* The libssh2 error code of the last failed call that returned NULL. */
int ls_sftp_last_rc(ls_sftp_conn *c)
{
    int rc = libssh2_session_last_errno(c->ssh);
    return rc ? rc : LIBSSH2_ERROR_SOCKET_NONE;
}

/* ---------------------------------------------------------------------- */
/* Paths                                                                   */

/* "~/..." with the home directory in front (malloc'd), else a copy; NULL on no memory. */
static char *expand_home(const char *path)
{
    if (path[0] != '~' || (path[1] != '\0' && path[1] != '/'))
        return strdup(path);
    const char *home = getenv("HOME");
    struct passwd pw, *res = NULL;
    char buf[4096];
    if ((!home || !*home) && getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) == 0 && res)
        home = res->pw_dir;
    if (!home)
        home = "";
    size_t n = strlen(home) + strlen(path) + 1;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%s%s", home, path + 1);
    return out;
}

/* ---------------------------------------------------------------------- */
/* Connecting                                                              */

/* TCP connect to host:port within the timeout; returns 0 with *out, or LS_ENET. */
static int tcp_connect(ls_sftp_session *ss, ls_ctx *ctx, const char *op, const char *key, int *out)
{
    struct addrinfo hints, *res = NULL;
    char port[16];
    int e = 0;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%d", ss->port);
    int gai = getaddrinfo(ss->host, port, &hints, &res);
    if (gai != 0)
        return ls_storage_err(ss->owner, ctx, LS_ENET, op, key, "resolve %s: %s", ss->host,
                              gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        e = 0;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            e = errno;
            if (e == EINPROGRESS) {
                uint64_t end = ls_now_ms() + (uint64_t)ss->timeout_ms;
                struct pollfd p = {.fd = fd, .events = POLLOUT};
                int n;
                for (;;) {
                    uint64_t now = ls_now_ms();
                    n = now >= end ? 0 : poll(&p, 1, (int)(end - now));
                    if (n >= 0 || errno != EINTR)
                        break;
                }
                socklen_t sl = sizeof(e);
                if (n < 0)
                    e = errno;
                else if (n == 0)
                    e = ETIMEDOUT;
                else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) != 0)
                    e = errno;
            }
        }
        if (e == 0) {
            int one = 1;
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
            freeaddrinfo(res);
            *out = fd;
            return 0;
        }
        close(fd);
    }
    freeaddrinfo(res);
    return ls_storage_err(ss->owner, ctx, LS_ENET, op, key, "connect %s port %d: %s", ss->host,
                          ss->port, strerror(e ? e : ECONNREFUSED));
}

/* "SHA256:<base64 without padding>" of a 32-byte hash into out (64 bytes). */
static void fingerprint(const unsigned char *sha, char *out)
{
    unsigned char b64[48];
    EVP_EncodeBlock(b64, sha, 32);
    size_t n = strlen((char *)b64);
    while (n > 0 && b64[n - 1] == '=')
        b64[--n] = '\0';
    snprintf(out, 64, "SHA256:%s", (char *)b64);
}

static const char *hostkey_name(int type)
{
    switch (type) {
    case LIBSSH2_HOSTKEY_TYPE_RSA:
        return "ssh-rsa";
    case LIBSSH2_HOSTKEY_TYPE_DSS:
        return "ssh-dss";
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
        return "ecdsa-sha2-nistp256";
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
        return "ecdsa-sha2-nistp384";
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
        return "ecdsa-sha2-nistp521";
    case LIBSSH2_HOSTKEY_TYPE_ED25519:
        return "ssh-ed25519";
    default:
        return "unknown";
    }
}

static int knownhost_type(int type)
{
    switch (type) {
    case LIBSSH2_HOSTKEY_TYPE_RSA:
        return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
    case LIBSSH2_HOSTKEY_TYPE_DSS:
        return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
        return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
        return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
        return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
    case LIBSSH2_HOSTKEY_TYPE_ED25519:
        return LIBSSH2_KNOWNHOST_KEY_ED25519;
    default:
        return LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
    }
}

/*
 * Load a known_hosts file line by line (a line libssh2 cannot parse, such
 * as a key type it does not know or a @revoked marker, is skipped: it can
 * only make fewer hosts known). Returns 0, or -errno when the file cannot
 * be read.
 */
static int load_known_hosts(LIBSSH2_KNOWNHOSTS *kh, const char *path)
{
    FILE *f = fopen(path, "re");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    if (!f)
        return -errno;
    while ((n = getline(&line, &cap, f)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n > 0 && line[0] != '#')
            libssh2_knownhost_readline(kh, line, (size_t)n, LIBSSH2_KNOWNHOST_FILE_OPENSSH);
    }
    int e = ferror(f) ? EIO : 0;
    free(line);
    fclose(f);
    return -e;
}

/* Host key types a host-key line may name: the name in the line and libssh2's type. */
static const struct {
    const char *name;
    int type;
    size_t point; /* ECDSA: length of the public point (0x04 || X || Y) */
} line_types[] = {
    {"ssh-ed25519", LIBSSH2_HOSTKEY_TYPE_ED25519, 0},
    {"ecdsa-sha2-nistp256", LIBSSH2_HOSTKEY_TYPE_ECDSA_256, 65},
    {"ecdsa-sha2-nistp384", LIBSSH2_HOSTKEY_TYPE_ECDSA_384, 97},
    {"ecdsa-sha2-nistp521", LIBSSH2_HOSTKEY_TYPE_ECDSA_521, 133},
    {"ssh-rsa", LIBSSH2_HOSTKEY_TYPE_RSA, 0},
};
#define N_LINE_TYPES (sizeof(line_types) / sizeof(line_types[0]))

/* Value of a base64 character, -1 for anything else. */
static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/*
 * Strict, padded base64 (what OpenSSH writes and Go's StdEncoding reads):
 * s[0..n) into a new buffer *out of *outn bytes. Returns 0 or -1.
 */
static int b64_decode(const char *s, size_t n, unsigned char **out, size_t *outn)
{
    size_t w = 0;
    unsigned char *d;
    if (n == 0 || n % 4 != 0 || !(d = malloc(n / 4 * 3)))
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int j = 0; j < 4; j++) {
            int last = i + 4 == n;
            if (s[i + j] == '=' && last && j >= 2 && (j == 3 || s[i + 3] == '=')) {
                v[j] = 0;
                pad++;
            } else if ((v[j] = b64val((unsigned char)s[i + j])) < 0) {
                free(d);
                return -1;
            }
        }
        d[w++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
        if (pad < 2)
            d[w++] = (unsigned char)(v[1] << 4 | v[2] >> 2);
        if (pad < 1)
            d[w++] = (unsigned char)(v[2] << 6 | v[3]);
    }
    *out = d;
    *outn = w;
    return 0;
}

/* Read an SSH "string" (uint32 length, bytes) at *p of the blob [*p, end). */
static int ssh_string(const unsigned char **p, const unsigned char *end, const unsigned char **s,
                      size_t *n)
{
    if (end - *p < 4)
        return -1;
    uint32_t len = (uint32_t)(*p)[0] << 24 | (uint32_t)(*p)[1] << 16 | (uint32_t)(*p)[2] << 8 |
                   (uint32_t)(*p)[3];
    if ((size_t)(end - *p - 4) < len)
        return -1;
    *s = *p + 4;
    *n = len;
    *p += 4 + (size_t)len;
    return 0;
}

/*
 * 1 if blob[0..n) is a well-formed public key of line_types[t]: the type
 * name, then ed25519's 32-byte key, ECDSA's curve name and uncompressed
 * point, or RSA's exponent and modulus; nothing after.
 */
static int blob_ok(size_t t, const unsigned char *blob, size_t n)
{
    const unsigned char *p = blob, *end = blob + n, *f;
    size_t fn;
    const char *name = line_types[t].name;
    if (ssh_string(&p, end, &f, &fn) != 0 || fn != strlen(name) || memcmp(f, name, fn) != 0)
        return 0;
    switch (line_types[t].type) {
    case LIBSSH2_HOSTKEY_TYPE_ED25519:
        if (ssh_string(&p, end, &f, &fn) != 0 || fn != 32)
            return 0;
        break;
    case LIBSSH2_HOSTKEY_TYPE_RSA:
        for (int i = 0; i < 2; i++)
            if (ssh_string(&p, end, &f, &fn) != 0 || fn == 0)
                return 0;
        break;
    default: /* ECDSA: "nistpNNN", then the point */
        if (ssh_string(&p, end, &f, &fn) != 0 || fn != strlen(name) - 11 ||
            memcmp(f, name + 11, fn) != 0 || ssh_string(&p, end, &f, &fn) != 0 ||
            fn != line_types[t].point || f[0] != 0x04)
            return 0;
        break;
    }
    return p == end;
}

/* The line type named by s[0..n), or -1. */
static int line_type(const char *s, size_t n)
{
    for (size_t t = 0; t < N_LINE_TYPES; t++)
        if (strlen(line_types[t].name) == n && strncmp(line_types[t].name, s, n) == 0)
            return (int)t;
    return -1;
}

/* The end of the field at s: the next blank outside double quotes. */
static const char *field_end(const char *s)
{
    int quoted = 0;
    for (; *s; s++) {
        if (*s == '"')
            quoted = !quoted;
        else if (!quoted && (*s == ' ' || *s == '\t'))
            break;
    }
    return s;
}

/*
 * An authorized-keys line "[OPTIONS|HOST] TYPE BASE64 [COMMENT]" (Go's
 * ssh.ParseAuthorizedKey takes one leading field of options; ssh-keyscan
 * puts the host there) into the key's libssh2 type and blob (malloc'd).
 * Returns 0 or LS_EUSAGE with a "host-key: ..." message.
 */
static int parse_key_line(ls_ctx *ctx, const char *line, int *type, unsigned char **blob,
                          size_t *len)
{
    const char *p = line, *e;
    int t = -1;
    char types[160] = "";
    *blob = NULL;
    for (size_t i = 0; i < N_LINE_TYPES; i++)
        snprintf(types + strlen(types), sizeof(types) - strlen(types), "%s%s", i ? ", " : "",
                 line_types[i].name);
    for (int pass = 0; pass < 2 && t < 0; pass++) {
        p += strspn(p, " \t");
        e = field_end(p);
        if ((t = line_type(p, (size_t)(e - p))) >= 0 || !*e)
            break;
        p = e; /* options, or ssh-keyscan's host: the type follows */
    }
    if (t < 0) {
        p = line + strspn(line, " \t");
        return ls_err(ctx, LS_EUSAGE,
                      "host-key: \"%.*s\" is not a key type litesafe can check (%s)",
                      (int)(field_end(p) - p), p, types);
    }
    p = e + strspn(e, " \t");
    e = p + strcspn(p, " \t");
    if (e == p)
        return ls_err(ctx, LS_EUSAGE,
                      "host-key: \"%s\" has no key after its type: expected \"%s AAAA...\" as "
                      "ssh-keyscan or the server's /etc/ssh/ssh_host_*.pub shows it",
                      line, line_types[t].name);
    if (b64_decode(p, (size_t)(e - p), blob, len) != 0)
        return ls_err(ctx, LS_EUSAGE, "host-key: the %s key is not valid base64",
                      line_types[t].name);
    if (!blob_ok((size_t)t, *blob, *len)) {
        free(*blob);
        *blob = NULL;
        return ls_err(ctx, LS_EUSAGE,
                      "host-key: the key is not a well-formed %s public key (cut short, or of "
                      "another type)",
                      line_types[t].name);
    }
    *type = line_types[t].type;
    return 0;
}

/*
 * A fingerprint "SHA256:<base64>" (padding optional; the "SHA256:" prefix
 * too) as ssh-keygen -lf prints it, into *out (malloc'd, without padding)
 * when out is not NULL. Returns 0 or LS_EUSAGE.
 */
static int parse_fingerprint(ls_ctx *ctx, const char *fp, char **out)
{
    const char *b = strncmp(fp, "SHA256:", 7) == 0 ? fp + 7 : fp;
    size_t n = strlen(b);
    while (n > 0 && b[n - 1] == '=')
        n--;
    int ok = n == 43;
    for (size_t i = 0; ok && i < n; i++)
        ok = b64val((unsigned char)b[i]) >= 0;
    if (!ok)
        return ls_err(ctx, LS_EUSAGE,
                      "host-key: expected the server key's SHA-256 fingerprint \"SHA256:<43 "
                      "base64 characters>\" (ssh-keygen -lf) or the key itself \"ssh-ed25519 "
                      "AAAA...\" (ssh-keyscan), not \"%s\"",
                      fp);
    if (out && !(*out = strndup(b, n)))
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    return 0;
}

/* 1 if spec is an authorized-keys line rather than a fingerprint. */
static int is_key_line(const char *spec)
{
    spec += strspn(spec, " \t");
    return strncmp(spec, "SHA256:", 7) != 0 &&
           (strpbrk(spec, " \t") || line_type(spec, strlen(spec)) >= 0);
}

int ls_storage_sftp_check_host_key(ls_ctx *ctx, const char *spec)
{
    unsigned char *blob = NULL;
    size_t len = 0;
    int type = 0, rc;
    if (!spec || !*spec)
        return 0;
    if (!is_key_line(spec))
        return parse_fingerprint(ctx, spec, NULL);
    rc = parse_key_line(ctx, spec, &type, &blob, &len);
    free(blob);
    return rc;
}

/* What the host key is checked against, for one connection. */
typedef struct host_check {
    LIBSSH2_KNOWNHOSTS *kh; /* the loaded known_hosts, NULL when not used or missing */
    char *path;             /* its path (malloc'd), NULL when only the pin is used */
    int missing;            /* the default ~/.ssh/known_hosts does not exist */
} host_check;

static void host_check_free(host_check *hc)
{
    if (hc->kh)
        libssh2_knownhost_free(hc->kh);
    free(hc->path);
}

/*
 * Before the handshake: load the known_hosts file that applies (known-hosts,
 * or ~/.ssh/known_hosts when no host-key is pinned either). Returns 0,
 * LS_EUSAGE (a configured file that cannot be read) or LS_ENOMEM.
 */
static int host_check_load(ls_sftp_session *ss, ls_ctx *ctx, ls_sftp_conn *c, const char *op,
                           const char *key, host_check *hc)
{
    memset(hc, 0, sizeof(*hc));
    if ((ss->pin || ss->pin_key) && !ss->known_hosts)
        return 0;
    hc->path = ss->known_hosts ? strdup(ss->known_hosts) : expand_home("~/.ssh/known_hosts");
    if (!hc->path || !(hc->kh = libssh2_knownhost_init(c->ssh)))
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    int lr = load_known_hosts(hc->kh, hc->path);
    if (lr == -ENOENT && !ss->known_hosts) {
        hc->missing = 1;
        libssh2_knownhost_free(hc->kh);
        hc->kh = NULL;
        return 0;
    }
    if (lr < 0)
        return ls_storage_err(ss->owner, ctx, LS_EUSAGE, op, key, "known-hosts %s: %s", hc->path,
                              strerror(-lr));
    return 0;
}

/* The host key types we can use, best first, with their known_hosts type bits. */
static const struct {
    const char *name;
    int kh_type;
} hostkey_algs[] = {
    {"ssh-ed25519", LIBSSH2_KNOWNHOST_KEY_ED25519},
    {"ecdsa-sha2-nistp256", LIBSSH2_KNOWNHOST_KEY_ECDSA_256},
    {"ecdsa-sha2-nistp384", LIBSSH2_KNOWNHOST_KEY_ECDSA_384},
    {"ecdsa-sha2-nistp521", LIBSSH2_KNOWNHOST_KEY_ECDSA_521},
    {"rsa-sha2-512", LIBSSH2_KNOWNHOST_KEY_SSHRSA},
    {"rsa-sha2-256", LIBSSH2_KNOWNHOST_KEY_SSHRSA},
    {"ssh-rsa", LIBSSH2_KNOWNHOST_KEY_SSHRSA},
};

/* 1 if kh has an entry of key type kh_type for the host (any key). */
static int known_type(ls_sftp_session *ss, LIBSSH2_KNOWNHOSTS *kh, int kh_type)
{
    /* A one-byte key matches no entry: MISMATCH means "an entry of this type exists". */
    return libssh2_knownhost_checkp(kh, ss->host, ss->port == 22 ? -1 : ss->port, "?", 1,
                                    LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
                                        kh_type,
                                    NULL) == LIBSSH2_KNOWNHOST_CHECK_MISMATCH;
}

/*
 * Set the host key algorithms to offer, as OpenSSH does: a pinned key's type
 * first, then the types known_hosts has for this host, then the others, each
 * in the order of hostkey_algs, only those this libssh2 supports (libssh2
 * 1.10 mishandles unsupported names in the list).
 */
static void set_hostkey_pref(ls_sftp_session *ss, ls_sftp_conn *c, LIBSSH2_KNOWNHOSTS *kh)
{
    const char **sup = NULL;
    char pref[512] = "";
    int pinned = ss->pin_key ? knownhost_type(ss->pin_key_type) : -1;
    int nsup = libssh2_session_supported_algs(c->ssh, LIBSSH2_METHOD_HOSTKEY, &sup);
    if (nsup <= 0)
        return;
    for (int pass = 0; pass < 3; pass++) {
        for (size_t i = 0; i < sizeof(hostkey_algs) / sizeof(hostkey_algs[0]); i++) {
            int first = hostkey_algs[i].kh_type == pinned;
            int known = !first && kh && known_type(ss, kh, hostkey_algs[i].kh_type);
            if ((pass == 0) != first || (pass == 1 && !known) || (pass == 2 && known))
                continue;
            for (int j = 0; j < nsup; j++) {
                if (strcmp(sup[j], hostkey_algs[i].name) != 0)
                    continue;
                if (*pref)
                    strncat(pref, ",", sizeof(pref) - strlen(pref) - 1);
                strncat(pref, sup[j], sizeof(pref) - strlen(pref) - 1);
            }
        }
    }
    libssh2_free(c->ssh, sup);
    if (*pref)
        libssh2_session_method_pref(c->ssh, LIBSSH2_METHOD_HOSTKEY, pref);
}

/*
 * After the handshake: check the server's host key against the pin and/or
 * the known_hosts file (see the header comment). Returns 0 or LS_EPERM
 * with the server's fingerprint in the message.
 */
static int verify_host(ls_sftp_session *ss, ls_ctx *ctx, ls_sftp_conn *c, const host_check *hc,
                       const char *op, const char *key)
{
    size_t klen = 0;
    int ktype = 0;
    char fp[64], hostport[300];
    const char *hk = libssh2_session_hostkey(c->ssh, &klen, &ktype);
    const unsigned char *sha =
        (const unsigned char *)libssh2_hostkey_hash(c->ssh, LIBSSH2_HOSTKEY_HASH_SHA256);
    if (!hk || !sha)
        return ls_storage_err(ss->owner, ctx, LS_EPERM, op, key, "server sent no host key");
    fingerprint(sha, fp);
    snprintf(hostport, sizeof(hostport), strchr(ss->host, ':') ? "[%s]:%d" : "%s:%d", ss->host,
             ss->port);
    const char *tname = hostkey_name(ktype);

    if (ss->pin && strcmp(ss->pin, fp + 7) != 0)
        return ls_storage_err(ss->owner, ctx, LS_EPERM, op, key,
                              "host key verification failed: %s presented %s key %s, but "
                              "host-key pins SHA256:%s",
                              hostport, tname, fp, ss->pin);
    if (ss->pin_key && (ktype != ss->pin_key_type || klen != ss->pin_key_len ||
                        memcmp(hk, ss->pin_key, klen) != 0)) {
        unsigned char psha[32];
        char pfp[64];
        EVP_Digest(ss->pin_key, ss->pin_key_len, psha, NULL, EVP_sha256(), NULL);
        fingerprint(psha, pfp);
        return ls_storage_err(ss->owner, ctx, LS_EPERM, op, key,
                              "host key verification failed: %s presented %s key %s, but "
                              "host-key pins %s key %s",
                              hostport, tname, fp, hostkey_name(ss->pin_key_type), pfp);
    }
    if (!hc->path)
        return 0; /* the pin alone */
    if (hc->missing)
        return ls_storage_err(ss->owner, ctx, LS_EPERM, op, key,
                              "cannot verify the host key of %s (%s key %s): neither known-hosts "
                              "nor host-key is set and %s does not exist; check the fingerprint, "
                              "then set host-key: %s",
                              hostport, tname, fp, hc->path, fp);
    int check = libssh2_knownhost_checkp(
        hc->kh, ss->host, ss->port == 22 ? -1 : ss->port, hk, klen,
        LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | knownhost_type(ktype), NULL);
    switch (check) {
    case LIBSSH2_KNOWNHOST_CHECK_MATCH:
        return 0;
    case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
        return ls_storage_err(ss->owner, ctx, LS_EPERM, op, key,
                              "host key verification failed: %s presented %s key %s, which does "
                              "NOT match its entry in %s (the key changed, or someone is "
                              "intercepting the connection)",
                              hostport, tname, fp, hc->path);
    case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
        return ls_storage_err(ss->owner, ctx, LS_EPERM, op, key,
                              "host key verification failed: %s (%s key %s) is not in %s; check "
                              "the fingerprint, then add the host (ssh-keyscan) or set host-key: "
                              "%s",
                              hostport, tname, fp, hc->path, fp);
    default:
        return ls_storage_err(ss->owner, ctx, LS_EPERM, op, key,
                              "host key verification failed: cannot check %s against %s", hostport,
                              hc->path);
    }
}

/* keyboard-interactive: answer every prompt with the password. */
static void kbd_callback(const char *name, int name_len, const char *instruction,
                         int instruction_len, int num_prompts,
                         const LIBSSH2_USERAUTH_KBDINT_PROMPT *prompts,
                         LIBSSH2_USERAUTH_KBDINT_RESPONSE *responses, void **abstract)
{
    ls_sftp_conn *c = *abstract;
    (void)name, (void)name_len, (void)instruction, (void)instruction_len, (void)prompts;
    for (int i = 0; i < num_prompts; i++) {
        responses[i].text = c->password ? strdup(c->password) : NULL;
        responses[i].length = responses[i].text ? (unsigned int)strlen(responses[i].text) : 0;
    }
}

/* A transport failure during authentication, else 0. */
static int auth_net_err(int lrc)
{
    switch (lrc) {
    case LIBSSH2_ERROR_TIMEOUT:
    case LIBSSH2_ERROR_SOCKET_SEND:
    case LIBSSH2_ERROR_SOCKET_RECV:
    case LIBSSH2_ERROR_SOCKET_DISCONNECT:
    case LIBSSH2_ERROR_SOCKET_TIMEOUT:
    case LIBSSH2_ERROR_SOCKET_NONE:
    case LIBSSH2_ERROR_BAD_SOCKET:
    case LIBSSH2_ERROR_ALLOC:
        return 1;
    default:
        return 0;
    }
}

/*
 * Step 3 of connecting: the key (when set; else the default keys when no
 * password is set either), then the password (password, then keyboard-
 * interactive), each only if the server offers the method.
 * Returns 0, LS_EPERM (refused), LS_EUSAGE (key file unreadable), LS_ENET.
 */
static int authenticate(ls_sftp_session *ss, ls_ctx *ctx, ls_sftp_conn *c, const char *op,
                        const char *key)
{
    unsigned ulen = (unsigned)strlen(ss->user);
    char tried[256] = "";
    const char *methods = libssh2_userauth_list(c->ssh, ss->user, ulen);
    if (!methods) {
        if (libssh2_userauth_authenticated(c->ssh))
            return 0; /* "none" was accepted */
        return ls_sftp_conn_err(ss->owner, ctx, c, ls_sftp_last_rc(c), op, key, "authentication");
    }
    if (ss->key_path && strstr(methods, "publickey")) {
        if (access(ss->key_path, R_OK) != 0)
            return ls_storage_err(ss->owner, ctx, LS_EUSAGE, op, key, "key-path %s: %s",
                                  ss->key_path, strerror(errno));
        int lrc = libssh2_userauth_publickey_fromfile_ex(c->ssh, ss->user, ulen, NULL, ss->key_path,
                                                         ss->password);
        if (lrc == 0)
            return 0;
        if (auth_net_err(lrc))
            return ls_sftp_conn_err(ss->owner, ctx, c, lrc, op, key, "authentication");
        if (lrc == LIBSSH2_ERROR_FILE)
            return ls_storage_err(ss->owner, ctx, LS_EPERM, op, key,
                                  "cannot use the private key %s (wrong passphrase, or a key "
                                  "format libssh2 cannot read)",
                                  ss->key_path);
        ls_strlcpy(tried, "publickey", sizeof(tried));
    }
    if (!ss->key_path && !ss->password && strstr(methods, "publickey")) {
        /* neither is configured: the user's default keys, as ssh does */
        static const char *const defaults[] = {"~/.ssh/id_ed25519", "~/.ssh/id_ecdsa",
                                               "~/.ssh/id_rsa"};
        for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
            char *path = expand_home(defaults[i]);
            if (!path)
                return ls_err(ctx, LS_ENOMEM, "out of memory");
            int lrc = access(path, R_OK) == 0 ? libssh2_userauth_publickey_fromfile_ex(
                                                    c->ssh, ss->user, ulen, NULL, path, NULL)
                                              : 1;
            free(path);
            if (lrc == 0)
                return 0;
            if (auth_net_err(lrc))
                return ls_sftp_conn_err(ss->owner, ctx, c, lrc, op, key, "authentication");
            if (lrc < 0 && !strstr(tried, defaults[i])) {
                if (*tried)
                    strncat(tried, ", ", sizeof(tried) - strlen(tried) - 1);
                strncat(tried, defaults[i], sizeof(tried) - strlen(tried) - 1);
            }
        }
    }
    if (ss->password && strstr(methods, "password")) {
        int lrc = libssh2_userauth_password_ex(c->ssh, ss->user, ulen, ss->password,
                                               (unsigned)strlen(ss->password), NULL);
        if (lrc == 0)
            return 0;
        if (auth_net_err(lrc))
            return ls_sftp_conn_err(ss->owner, ctx, c, lrc, op, key, "authentication");
        strncat(tried, *tried ? ", password" : "password", sizeof(tried) - strlen(tried) - 1);
    }
    if (ss->password && strstr(methods, "keyboard-interactive")) {
        c->password = ss->password;
        int lrc = libssh2_userauth_keyboard_interactive_ex(c->ssh, ss->user, ulen, kbd_callback);
        c->password = NULL;
        if (lrc == 0)
            return 0;
        if (auth_net_err(lrc))
            return ls_sftp_conn_err(ss->owner, ctx, c, lrc, op, key, "authentication");
        strncat(tried, *tried ? ", keyboard-interactive" : "keyboard-interactive",
                sizeof(tried) - strlen(tried) - 1);
    }
    if (!*tried)
        return ls_storage_err(ss->owner, ctx, LS_EPERM, op, key,
                              "authentication refused for user %s: the server accepts only %s, "
                              "and the replica has %s",
                              ss->user, methods,
                              ss->key_path   ? "a key-path only"
                              : ss->password ? "a password only"
                                             : "neither key-path nor password");
    return ls_storage_err(ss->owner, ctx, LS_EPERM, op, key,
                          "authentication refused for user %s (tried %s; server offers %s)",
                          ss->user, tried, methods);
}

/* Close a session; a broken one without the polite goodbye (it could block). */
static void conn_close(ls_sftp_conn *c)
{
    if (!c)
        return;
    if (c->broken && c->sock >= 0)
        shutdown(c->sock, SHUT_RDWR);
    if (c->sftp)
        libssh2_sftp_shutdown(c->sftp);
    if (c->ssh) {
        if (!c->broken)
            libssh2_session_disconnect(c->ssh, "closing");
        libssh2_session_free(c->ssh);
    }
    if (c->sock >= 0)
        close(c->sock);
    free(c);
}

/* Open a session: 1. TCP; 2. SSH handshake + host key; 3. auth; 4. SFTP. */
static int conn_open(ls_sftp_session *ss, ls_ctx *ctx, const char *op, const char *key,
                     ls_sftp_conn **out)
{
    host_check hc = {0};
    int rc, lrc;
    ls_sftp_conn *c = calloc(1, sizeof(*c));
    *out = NULL;
    if (!c)
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    c->sock = -1;
    if ((rc = tcp_connect(ss, ctx, op, key, &c->sock)) != 0)
        goto fail;
    c->ssh = libssh2_session_init_ex(NULL, NULL, NULL, c);
    if (!c->ssh) {
        rc = ls_err(ctx, LS_ENOMEM, "out of memory");
        goto fail;
    }
    libssh2_session_set_blocking(c->ssh, 1);
    libssh2_session_set_timeout(c->ssh, ss->timeout_ms);
    if ((rc = host_check_load(ss, ctx, c, op, key, &hc)) != 0)
        goto fail;
    set_hostkey_pref(ss, c, hc.kh);
    if ((lrc = libssh2_session_handshake(c->ssh, c->sock)) != 0) {
        rc = ls_sftp_conn_err(ss->owner, ctx, c, lrc, op, key, "SSH handshake");
        goto fail;
    }
    if ((rc = verify_host(ss, ctx, c, &hc, op, key)) != 0 ||
        (rc = authenticate(ss, ctx, c, op, key)) != 0)
        goto fail;
    c->sftp = libssh2_sftp_init(c->ssh);
    if (!c->sftp) {
        rc = ls_sftp_conn_err(ss->owner, ctx, c, ls_sftp_last_rc(c), op, key,
                              "start the sftp subsystem");
        goto fail;
    }
    host_check_free(&hc);
    *out = c;
    return 0;
fail:
    host_check_free(&hc);
    c->broken = 1;
    conn_close(c);
    return rc;
}

/*
 * 1 if an idle session's socket shows the server has closed it (EOF or an
 * error waiting), so it is dropped rather than failing the next call.
 */
static int conn_dead(ls_sftp_conn *c)
{
    struct pollfd p = {.fd = c->sock, .events = POLLIN};
    char b;
    if (poll(&p, 1, 0) <= 0)
        return 0;
    if (p.revents & (POLLERR | POLLHUP | POLLNVAL))
        return 1;
    ssize_t n = recv(c->sock, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/*
 * Take a session: an idle one, else a new one while fewer than
 * SFTP_MAX_CONNS exist, else wait for one. Connecting happens outside the
 * lock. Returns 0 with *out, or the connect failure.
 */
int ls_sftp_conn_get(ls_sftp_session *ss, ls_ctx *ctx, const char *op, const char *key,
                     ls_sftp_conn **out)
{
    ls_sftp_conn *dead = NULL;
    pthread_mutex_lock(&ss->mu);
    for (;;) {
        if (ss->idle) {
            ls_sftp_conn *c = ss->idle;
            ss->idle = c->next;
            if (conn_dead(c)) {
                c->broken = 1;
                c->next = dead;
                dead = c;
                ss->nconn--;
                continue;
            }
            pthread_mutex_unlock(&ss->mu);
            while (dead) {
                ls_sftp_conn *d = dead;
                dead = d->next;
                conn_close(d);
            }
            c->next = NULL;
            *out = c;
            return 0;
        }
        if (ss->nconn < SFTP_MAX_CONNS)
            break;
        pthread_cond_wait(&ss->cv, &ss->mu);
    }
    ss->nconn++;
    pthread_mutex_unlock(&ss->mu);
    while (dead) {
        ls_sftp_conn *d = dead;
        dead = d->next;
        conn_close(d);
    }
    int rc = conn_open(ss, ctx, op, key, out);
    if (rc) {
        pthread_mutex_lock(&ss->mu);
        ss->nconn--;
        pthread_cond_signal(&ss->cv);
        pthread_mutex_unlock(&ss->mu);
    }
    return rc;
}

/* Give a session back (a broken one is closed). */
void ls_sftp_conn_release(ls_sftp_session *ss, ls_sftp_conn *c)
{
    if (c->broken) {
        conn_close(c);
        pthread_mutex_lock(&ss->mu);
        ss->nconn--;
    } else {
        pthread_mutex_lock(&ss->mu);
        c->next = ss->idle;
        ss->idle = c;
    }
    pthread_cond_signal(&ss->cv);
    pthread_mutex_unlock(&ss->mu);
}

/*
 * "HOST", "HOST:PORT", "[V6]", "[V6]:PORT" or a bare IPv6 address into
 * ss->host / ss->port (default 22). Returns 0, LS_EUSAGE or LS_ENOMEM.
 */
static int parse_host(ls_sftp_session *ss, ls_ctx *ctx, const char *name, const char *spec)
{
    const char *h = spec, *port = NULL;
    size_t hlen;
    if (spec[0] == '[') {
        const char *end = strchr(spec, ']');
        if (!end || (end[1] && end[1] != ':'))
            return ls_err(ctx, LS_EUSAGE, "replica %s: bad sftp host \"%s\"", name, spec);
        h = spec + 1;
        hlen = (size_t)(end - h);
        if (end[1] == ':')
            port = end + 2;
    } else {
        const char *colon = strchr(spec, ':');
        if (colon && strchr(colon + 1, ':'))
            colon = NULL; /* a bare IPv6 address */
        hlen = colon ? (size_t)(colon - spec) : strlen(spec);
        if (colon)
            port = colon + 1;
    }
    if (hlen == 0)
        return ls_err(ctx, LS_EUSAGE, "replica %s: empty sftp host", name);
    ss->port = 22;
    if (port) {
        char *end;
        errno = 0;
        long p = strtol(port, &end, 10);
        if (!*port || *end || errno || p < 1 || p > 65535)
            return ls_err(ctx, LS_EUSAGE, "replica %s: bad port in sftp host \"%s\"", name, spec);
        ss->port = (int)p;
    }
    if (!(ss->host = strndup(h, hlen)))
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    return 0;
}

/*
 * Pin host-key `spec` (a fingerprint or an authorized-keys line, see
 * ls_storage_sftp_check_host_key) into ss. Returns 0 or LS_EUSAGE with the
 * replica's name in front of the message.
 */
static int set_pin(ls_sftp_session *ss, ls_ctx *ctx, const char *name, const char *spec)
{
    if (is_key_line(spec)) {
        free(ss->pin_key);
        ss->pin_key = NULL;
    } else {
        free(ss->pin);
        ss->pin = NULL;
    }
    int rc = is_key_line(spec)
                 ? parse_key_line(ctx, spec, &ss->pin_key_type, &ss->pin_key, &ss->pin_key_len)
                 : parse_fingerprint(ctx, spec, &ss->pin);
    if (rc == LS_EUSAGE) {
        char msg[sizeof(ctx->msg)];
        ls_strlcpy(msg, ls_errmsg(ctx), sizeof(msg));
        rc = ls_err(ctx, LS_EUSAGE, "replica %s: %s", name, msg);
    }
    return rc;
}

/* The name of the user running us (for a missing user), malloc'd. */
static char *current_user(void)
{
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &res) == 0 && res)
        return strdup(res->pw_name);
    const char *u = getenv("USER");
    return strdup(u && *u ? u : "root");
}

static char *dup_or_null(const char *s, int *oom)
{
    char *d = s && *s ? strdup(s) : NULL;
    if (s && *s && !d)
        *oom = 1;
    return d;
}

/* ---------------------------------------------------------------------- */
/* Settings                                                                */

int ls_sftp_session_init(ls_sftp_session *ss, ls_storage *owner, ls_ctx *ctx, const char *name,
                         const ls_storage_opts *opts)
{
    int rc, oom = 0;

    pthread_mutex_init(&ss->mu, NULL);
    pthread_cond_init(&ss->cv, NULL);
    ss->owner = owner;
    if (!opts->host || !*opts->host)
        return ls_err(ctx, LS_EUSAGE, "replica %s: sftp replica: host required", name);
    if ((rc = parse_host(ss, ctx, name, opts->host)) != 0)
        return rc;
    if (opts->host_key_fingerprint && *opts->host_key_fingerprint &&
        (rc = set_pin(ss, ctx, name, opts->host_key_fingerprint)) != 0)
        return rc;
    if (opts->host_key && *opts->host_key && (rc = set_pin(ss, ctx, name, opts->host_key)) != 0)
        return rc;
    ss->user = opts->user && *opts->user ? strdup(opts->user) : current_user();
    ss->password = dup_or_null(opts->password, &oom);
    ss->key_path = opts->key_path && *opts->key_path ? expand_home(opts->key_path) : NULL;
    ss->known_hosts =
        opts->known_hosts && *opts->known_hosts ? expand_home(opts->known_hosts) : NULL;
    if (!ss->user || oom || (opts->key_path && *opts->key_path && !ss->key_path) ||
        (opts->known_hosts && *opts->known_hosts && !ss->known_hosts))
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    ss->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : SFTP_DEFAULT_TIMEOUT_MS;
    return 0;
}

void ls_sftp_session_free(ls_sftp_session *ss)
{
    while (ss->idle) {
        ls_sftp_conn *c = ss->idle;
        ss->idle = c->next;
        conn_close(c);
    }
    pthread_mutex_destroy(&ss->mu);
    pthread_cond_destroy(&ss->cv);
    free(ss->host);
    free(ss->user);
    free(ss->password);
    free(ss->key_path);
    free(ss->known_hosts);
    free(ss->pin);
    free(ss->pin_key);
}
