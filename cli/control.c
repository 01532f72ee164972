/*
 * control.c - the control socket (see control.h for the protocol): the
 * listener thread of `replicate`, one thread per connection, the methods,
 * and the client side used by `status` and `sync`.
 */
#define _GNU_SOURCE
#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_REQUEST (64 * 1024)
#define MAX_CONNS 16
#define IDLE_MS 10000
#define DEFAULT_SYNC_MS 30000

struct cli_control {
    cli_daemon *d;
    ls_ctx *log;                /* the daemon's: log lines only (thread-safe sink) */
    char path[PATH_MAX];
    int fd;                     /* listening socket */
    int wake[2];                /* a pipe: the listener's poll ends when written */
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* signalled when a connection ends */
    int nconn;                  /* connections being served */
    int conns[MAX_CONNS];       /* their descriptors (-1: free slot) */
    int stopping;               /* set by cli_control_stop, read by the threads (atomic) */
    dev_t dev;                  /* the socket file we made, to remove only ours */
    ino_t ino;
};

/* ---- addresses ---- */

/*
 * Fill a Unix address for path. A path longer than sun_path is reached
 * through its directory's descriptor (*dirfd, closed by the caller): Linux
 * resolves "/proc/self/fd/N/name" like the path itself.
 */
static int unix_addr(const char *path, struct sockaddr_un *sa, int *dirfd)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    *dirfd = -1;
    if (strlen(path) < sizeof(sa->sun_path)) {
        memcpy(sa->sun_path, path, strlen(path) + 1);
        return 0;
    }
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    if (!slash || (size_t)(slash - path) >= sizeof(dir))
        return -1;
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = '\0';
    *dirfd = open(dir[0] ? dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (*dirfd < 0)
        return -1;
    int n = snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", *dirfd,
                     slash + 1);
    return n > 0 && (size_t)n < sizeof(sa->sun_path) ? 0 : -1;
}

/* Connect to path: the descriptor, or -1 with errno. */
static int unix_connect(const char *path)
{
    struct sockaddr_un sa;
    int dirfd, fd = -1, err = ENAMETOOLONG;
    if (unix_addr(path, &sa, &dirfd) == 0) {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    if (dirfd >= 0)
        close(dirfd);
    if (fd < 0)
        errno = err;
    return fd;
}

/* mkdir -p of path's parent directories (0755). */
static void make_parents(const char *path)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        mkdir(buf, 0755);
        *p = '/';
    }
}

/* ---- I/O ---- */

static int write_all(int fd, const char *buf, size_t n)
{
    while (n) {
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One line buffer per connection. */
typedef struct linebuf {
    char *p;
    size_t n, cap;
} linebuf;

/*
 * Read the next line (without its newline, NUL-terminated, in *line, valid
 * until the next call; *len bytes, which may hold a NUL of the client's)
 * waiting at most ms for each piece. 1 for a line, 0 at the end, -1 on
 * error, timeout or an over-long line.
 */
static int read_line(int fd, linebuf *b, int64_t ms, char **line, size_t *len)
{
    static const size_t cap = MAX_REQUEST + 1;
    for (;;) {
        char *nl = b->n ? memchr(b->p, '\n', b->n) : NULL;
        if (nl) {
            *nl = '\0';
            *line = b->p;
            *len = (size_t)(nl - b->p);
            return 1;
        }
        if (b->n >= MAX_REQUEST)
            return -1;
        if (!b->p && !(b->p = malloc(cap)))
            return -1;
        b->cap = cap;
        struct pollfd pf = {fd, POLLIN, 0};
        int pr = poll(&pf, 1, (int)ms);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return -1;
        ssize_t r = recv(fd, b->p + b->n, b->cap - 1 - b->n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return b->n ? -1 : 0; /* a last line without its newline is not a request */
        b->n += (size_t)r;
    }
}

/* Drop the line read last (len bytes and its newline) from the buffer. */
static void consume_line(linebuf *b, size_t len)
{
    size_t used = len + 1;
    memmove(b->p, b->p + used, b->n - used);
    b->n -= used;
}

/* ---- the methods ---- */

static void rfc3339(int64_t ms, char *buf, size_t n)
{
    cli_rfc3339(ms, buf, n);
}

/* A unix-ms time as an RFC 3339 string, or null for 0. */
static json_t *time_or_null(int64_t ms)
{
    char buf[40];
    if (ms <= 0)
        return json_null();
    rfc3339(ms, buf, sizeof(buf));
    return json_string(buf);
}

static json_t *replica_json(const ls_replica_status *s)
{
    json_t *err = json_null();
    if (s->last_error)
        err = json_pack("{s:i, s:s, s:o}", "code", s->last_error, "message",
                        s->last_error_message, "time", time_or_null(s->last_error_ms));
    return json_pack(
        "{s:s, s:s, s:s, s:i, s:I, s:b, s:b, s:f, s:I, s:o, s:o, s:o, s:o, s:I, s:I, s:I,"
        " s:{s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I}, s:f, s:f, s:I}",
        "name", s->name, "type", s->type, "generation", s->generation, "index", (int)s->index,
        "offset", (json_int_t)s->offset, "restorable", s->restorable, "attached", s->attached,
        "lag_seconds", (double)s->lag_ms / 1000.0, "lag_bytes", (json_int_t)s->lag_bytes,
        "last_upload", time_or_null(s->last_success_ms), "last_error", err, "next_snapshot",
        time_or_null(s->next_snapshot_ms), "next_retention", time_or_null(s->next_retention_ms),
        "segments", (json_int_t)s->segments, "snapshots", (json_int_t)s->snapshots,
        "bytes", (json_int_t)s->bytes, "requests", "put", (json_int_t)s->puts, "get",
        (json_int_t)s->gets, "list", (json_int_t)s->lists, "stat", (json_int_t)s->stats,
        "delete", (json_int_t)s->deletes, "errors", "net", (json_int_t)s->errors_net, "auth",
        (json_int_t)s->errors_auth, "other", (json_int_t)s->errors_other,
        "requests_per_second", s->requests_per_sec, "monthly_request_cost",
        s->monthly_request_cost, "spool_drops", (json_int_t)s->spool_drops);
}

static json_t *database_json(const ls_replica_status *s)
{
    return json_pack("{s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:[]}", "path", s->database,
                     "generation", s->local_generation, "index", (int)s->local_index, "offset",
                     (json_int_t)s->local_offset, "db_size", (json_int_t)s->db_size, "wal_size",
                     (json_int_t)s->wal_size, "spool_size", (json_int_t)s->spool_size,
                     "wal_bytes", (json_int_t)s->wal_bytes, "replicas");
}

typedef struct status_acc {
    json_t *dbs;                /* the databases array */
    const char *only;           /* a database path, or NULL */
    int full;                   /* status (1) or list (0) */
} status_acc;

static void on_status(void *ud, const ls_replica_status *st, size_t n)
{
    status_acc *a = ud;
    for (size_t i = 0; i < n; i++) {
        if (a->only && strcmp(a->only, st[i].database) != 0)
            continue;
        json_t *db = NULL;
        size_t k;
        json_t *v;
        json_array_foreach(a->dbs, k, v) {
            if (strcmp(json_string_value(json_object_get(v, "path")), st[i].database) == 0)
                db = v;
        }
        if (!db) {
            db = a->full ? database_json(&st[i])
                         : json_pack("{s:s, s:[]}", "path", st[i].database, "replicas");
            json_array_append_new(a->dbs, db);
        }
        json_array_append_new(json_object_get(db, "replicas"),
                              a->full ? replica_json(&st[i])
                                      : json_pack("{s:s, s:s}", "name", st[i].name, "type",
                                                  st[i].type));
    }
}

/* An error answer's pieces. */
typedef struct rpc_err {
    int code;                   /* JSON-RPC code */
    int ls_code;                /* LS_E*, 0 for protocol errors */
    char msg[1024];
} rpc_err;

static json_t *fail(rpc_err *e, int code, int ls_code, const char *msg)
{
    e->code = code;
    e->ls_code = ls_code;
    snprintf(e->msg, sizeof(e->msg), "%s", msg);
    return NULL;
}

static json_t *m_status(cli_control *c, ls_ctx *ctx, json_t *params, int full, rpc_err *e)
{
    json_t *db = json_object_get(params, "db");
    if (db && !json_is_string(db))
        return fail(e, -32602, LS_EUSAGE, "params.db must be a string");
    status_acc a = {json_array(), db ? json_string_value(db) : NULL, full};
    int rc = cli_daemon_status(c->d, ctx, on_status, &a);
    if (rc) {
        json_decref(a.dbs);
        return fail(e, -32000, rc, ls_errmsg(ctx));
    }
    if (a.only && json_array_size(a.dbs) == 0) {
        json_decref(a.dbs);
        char m[PATH_MAX + 64];
        snprintf(m, sizeof(m), "%s is not a database of this replicate", a.only);
        return fail(e, -32000, LS_ENOENT, m);
    }
    return json_pack("{s:o}", "databases", a.dbs);
}

static json_t *m_sync(cli_control *c, ls_ctx *ctx, json_t *params, rpc_err *e)
{
    json_t *db = json_object_get(params, "db"), *t = json_object_get(params, "timeout_ms");
    json_t *wait = json_object_get(params, "wait"), *hurry = json_object_get(params, "hurry");
    if ((db && !json_is_string(db)) || (t && !json_is_integer(t)) ||
        (wait && !json_is_boolean(wait)) || (hurry && !json_is_boolean(hurry)))
        return fail(e, -32602, LS_EUSAGE, "params: db is a string, timeout_ms an integer, "
                                          "wait and hurry booleans");
    int64_t ms = t ? (int64_t)json_integer_value(t) : DEFAULT_SYNC_MS;
    unsigned flags = (wait && json_is_false(wait) ? LS_SYNC_SPOOL : 0) |
                     (hurry && json_is_true(hurry) ? LS_SYNC_HURRY : 0);
    int rc = cli_daemon_sync(c->d, ctx, db ? json_string_value(db) : NULL, flags, ms);
    if (rc)
        return fail(e, -32000, rc, ls_errmsg(ctx));
    /* What the replicas hold now: at or past what the barrier waited for. */
    return m_status(c, ctx, params, 1, e);
}

static json_t *m_info(cli_control *c)
{
    char started[40];
    rfc3339(cli_daemon_started_ms(c->d), started, sizeof(started));
    return json_pack("{s:s, s:i, s:s, s:s, s:s}", "version", LS_VERSION, "pid", (int)getpid(),
                     "config_path", cli_daemon_config_path(c->d), "socket_path", c->path,
                     "started_at", started);
}

/* Answer one request line: the answer line (malloc'd, with its newline). */
static char *answer(cli_control *c, ls_ctx *ctx, const char *line)
{
    rpc_err e = {0, 0, ""};
    json_error_t jerr;
    json_t *req = json_loads(line, JSON_REJECT_DUPLICATES, &jerr), *result = NULL;
    json_t *id = json_null();
    if (!req || !json_is_object(req)) {
        fail(&e, -32700, 0, "parse error: a request is one line of JSON (an object)");
    } else {
        json_t *m = json_object_get(req, "method"), *params = json_object_get(req, "params");
        if (json_object_get(req, "id"))
            id = json_incref(json_object_get(req, "id"));
        const char *method = json_string_value(m);
        ls_err_clear(ctx);
        if (!method || (params && !json_is_object(params)))
            fail(&e, -32600, 0, "invalid request: method (a string) and params (an object)");
        else if (strcmp(method, "status") == 0)
            result = m_status(c, ctx, params, 1, &e);
        else if (strcmp(method, "list") == 0 || strcmp(method, "databases") == 0)
            result = m_status(c, ctx, params, 0, &e);
        else if (strcmp(method, "sync") == 0)
            result = m_sync(c, ctx, params, &e);
        else if (strcmp(method, "info") == 0)
            result = m_info(c);
        else
            fail(&e, -32601, 0, "method not found (info, list, status, sync)");
    }
    json_t *resp = result ? json_pack("{s:s, s:o, s:o}", "jsonrpc", "2.0", "id", id, "result",
                                      result)
                          : json_pack("{s:s, s:o, s:{s:i, s:s, s:{s:i}}}", "jsonrpc", "2.0",
                                      "id", id, "error", "code", e.code, "message", e.msg,
                                      "data", "ls_code", e.ls_code);
    json_decref(req);
    char *text = resp ? json_dumps(resp, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(resp);
    char *out = NULL;
    if (text && asprintf(&out, "%s\n", text) < 0)
        out = NULL;
    free(text);
    return out;
}

char *cli_control_answer(cli_daemon *d, ls_ctx *ctx, const char *path, const char *line)
{
    cli_control c;
    memset(&c, 0, sizeof(c));
    c.d = d;
    snprintf(c.path, sizeof(c.path), "%s", path);
    return answer(&c, ctx, line);
}

/* ---- the server ---- */

typedef struct conn {
    cli_control *c;
    int fd;
    int slot;
} conn;

static void *conn_main(void *p)
{
    conn *k = p;
    cli_control *c = k->c;
    ls_ctx *ctx = NULL;
    linebuf b = {0};
    char *line;
    size_t len;
    if (ls_ctx_new(&ctx) == 0) {
        while (!__atomic_load_n(&c->stopping, __ATOMIC_ACQUIRE) &&
               read_line(k->fd, &b, IDLE_MS, &line, &len) == 1) {
            /* A NUL inside the line: one request all the same, and not JSON. */
            char *out = answer(c, ctx, strlen(line) == len ? line : "");
            consume_line(&b, len);
            int bad = !out || write_all(k->fd, out, strlen(out)) != 0;
            free(out);
            if (bad)
                break;
        }
    }
    free(b.p);
    ls_ctx_free(ctx);
    pthread_mutex_lock(&c->mu);
    c->conns[k->slot] = -1;
    close(k->fd);
    c->nconn--;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    free(k);
    return NULL;
}

/* Serve a new connection in a thread of its own, if a slot is free. */
static void serve(cli_control *c, int fd)
{
    conn *k = malloc(sizeof(*k));
    pthread_attr_t attr;
    pthread_t th;
    pthread_mutex_lock(&c->mu);
    int slot = -1;
    for (int i = 0; i < MAX_CONNS && slot < 0; i++)
        if (c->conns[i] < 0)
            slot = i;
    if (!k || slot < 0) {
        pthread_mutex_unlock(&c->mu);
        static const char busy[] = "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32000,"
                                   "\"message\":\"too many connections\",\"data\":{\"ls_code\":-6}}}\n";
        write_all(fd, busy, sizeof(busy) - 1);
        close(fd);
        free(k);
        return;
    }
    c->conns[slot] = fd;
    c->nconn++;
    pthread_mutex_unlock(&c->mu);
    *k = (conn){c, fd, slot};
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &attr, conn_main, k) != 0) {
        pthread_mutex_lock(&c->mu);
        c->conns[slot] = -1;
        c->nconn--;
        pthread_mutex_unlock(&c->mu);
        close(fd);
        free(k);
    }
    pthread_attr_destroy(&attr);
}

static void *listen_main(void *p)
{
    cli_control *c = p;
    while (!__atomic_load_n(&c->stopping, __ATOMIC_ACQUIRE)) {
        struct pollfd pf[2] = {{c->fd, POLLIN, 0}, {c->wake[0], POLLIN, 0}};
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pf[1].revents || __atomic_load_n(&c->stopping, __ATOMIC_ACQUIRE))
            break;
        int fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            serve(c, fd);
        else if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
            usleep(10000); /* EMFILE and the like: do not spin */
    }
    return NULL;
}

/*
 * Bind c->fd to c->path with mode. A socket file nobody answers on is
 * stale (a killed daemon's) and replaced; 0, or -1 with the reason logged.
 */
static int bind_socket(cli_control *c, int mode)
{
    struct sockaddr_un sa;
    struct stat sb;
    int dirfd = -1, rc = -1;
    const char *why = NULL;
    make_parents(c->path);
    if (lstat(c->path, &sb) == 0) {
        int other = S_ISSOCK(sb.st_mode) ? unix_connect(c->path) : -1;
        if (!S_ISSOCK(sb.st_mode)) {
            why = "the path exists and is not a socket";
            goto done;
        }
        if (other >= 0) {
            close(other);
            why = "another process answers on it (a second replicate of this configuration?)";
            goto done;
        }
        unlink(c->path);
    }
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (c->fd < 0 || unix_addr(c->path, &sa, &dirfd) != 0 ||
        bind(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || chmod(c->path, (mode_t)mode) != 0 ||
        listen(c->fd, 64) != 0 || stat(c->path, &sb) != 0) {
        why = strerror(errno);
        goto done;
    }
    c->dev = sb.st_dev;
    c->ino = sb.st_ino;
    rc = 0;
done:
    if (dirfd >= 0)
        close(dirfd);
    if (rc)
        ls_ctx_log(c->log, LS_LOG_WARN, "control socket not available path=%s error=\"%s\" "
                   "(status and sync cannot reach this replicate; replication goes on)",
                   c->path, why);
    return rc;
}

void cli_control_start(cli_daemon *d, ls_ctx *ctx, const char *path, int mode,
                       cli_control **out)
{
    cli_control *c = calloc(1, sizeof(*c));
    *out = NULL;
    if (!c)
        return;
    c->d = d;
    c->log = ctx;
    c->fd = -1;
    c->wake[0] = c->wake[1] = -1;
    snprintf(c->path, sizeof(c->path), "%s", path);
    for (int i = 0; i < MAX_CONNS; i++)
        c->conns[i] = -1;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (bind_socket(c, mode) != 0 || pipe2(c->wake, O_CLOEXEC) != 0 ||
        pthread_create(&c->th, NULL, listen_main, c) != 0) {
        if (c->fd >= 0) {
            close(c->fd);
            unlink(c->path);
        }
        if (c->wake[0] >= 0) {
            close(c->wake[0]);
            close(c->wake[1]);
        }
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        free(c);
        return;
    }
    ls_ctx_log(ctx, LS_LOG_INFO, "control socket listening path=%s mode=%04o", c->path, mode);
    *out = c;
}

void cli_control_stop(cli_control *c)
{
    if (!c)
        return;
    __atomic_store_n(&c->stopping, 1, __ATOMIC_RELEASE);
    if (write(c->wake[1], "x", 1) < 0) {
        /* the listener also sees c->stopping at its next wake */
    }
    pthread_join(c->th, NULL);
    close(c->fd);
    /* Remove the socket file only if it is still ours. */
    struct stat sb;
    if (stat(c->path, &sb) == 0 && sb.st_dev == c->dev && sb.st_ino == c->ino)
        unlink(c->path);
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < MAX_CONNS; i++)
        if (c->conns[i] >= 0)
            shutdown(c->conns[i], SHUT_RDWR);
    while (c->nconn > 0)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    close(c->wake[0]);
    close(c->wake[1]);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

/* ---- the client ---- */

/* The result of an answer line, or the daemon's error on ctx. */
int cli_control_parse_answer(ls_ctx *ctx, const char *path, const char *line, json_t **result)
{
    json_error_t jerr;
    json_t *resp = json_loads(line, 0, &jerr);
    json_t *res = resp ? json_object_get(resp, "result") : NULL;
    json_t *err = resp ? json_object_get(resp, "error") : NULL;
    int rc;
    if (res) {
        *result = json_incref(res);
        rc = 0;
    } else if (json_is_object(err)) {
        json_t *lc = json_object_get(json_object_get(err, "data"), "ls_code");
        const char *m = json_string_value(json_object_get(err, "message"));
        int code = json_is_integer(lc) && json_integer_value(lc) < 0
                       ? (int)json_integer_value(lc) : LS_ERROR;
        rc = ls_ctx_set_error(ctx, code, "%s", m ? m : "error without a message");
    } else {
        rc = ls_ctx_set_error(ctx, LS_EIO, "%s: not an answer of litesafe replicate: %.200s", path, line);
    }
    json_decref(resp);
    return rc;
}

int cli_control_call(ls_ctx *ctx, const char *path, const char *method, json_t *params,
                     int64_t timeout_ms, json_t **result)
{
    json_t *req = json_pack("{s:s, s:i, s:s, s:o}", "jsonrpc", "2.0", "id", 1, "method", method,
                            "params", params ? json_incref(params) : json_object());
    char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    linebuf b = {0};
    char *line;
    int rc;
    *result = NULL;
    if (!text)
        return ls_ctx_set_error(ctx, LS_ENOMEM, "out of memory");
    int fd = unix_connect(path);
    if (fd < 0) {
        int e = errno;
        free(text);
        if (e == ENOENT || e == ECONNREFUSED || e == ENOTDIR)
            return ls_ctx_set_error(ctx, LS_ENOENT, "no litesafe replicate listens on %s (%s)", path,
                          strerror(e));
        return ls_ctx_set_error(ctx, e == EACCES ? LS_EPERM : LS_EIO, "connect %s: %s", path, strerror(e));
    }
    if (write_all(fd, text, strlen(text)) != 0 || write_all(fd, "\n", 1) != 0) {
        rc = ls_ctx_set_error(ctx, LS_EIO, "send to %s: %s", path, strerror(errno));
    } else {
        size_t len;
        int r = read_line(fd, &b, timeout_ms < 0 ? 3600000 : timeout_ms, &line, &len);
        rc = r == 1 ? cli_control_parse_answer(ctx, path, line, result)
                    : ls_ctx_set_error(ctx, LS_EIO, "%s: no answer (%s)", path,
                             r == 0 ? "the daemon closed the connection" : "timed out");
    }
    free(text);
    free(b.p);
    close(fd);
    return rc;
}

int cli_control_path(cli_env *env, const char *sock, const char *config, int no_expand,
                     const char *db, char *path, size_t n, ls_config **cfg)
{
    const char *cpath = config ? config : ls_config_default_path();
    struct stat sb;
    int rc;
    *cfg = NULL;
    if (sock) {
        snprintf(path, n, "%s", sock);
        return -1;
    }
    if (config || stat(cpath, &sb) == 0) {
        if ((rc = ls_config_open(env->ctx, cpath, no_expand, cfg)) != 0)
            return cli_fail_lib(env, rc);
        if (config || !db || ls_config_db_index(*cfg, db) >= 0) {
            if ((rc = ls_config_socket(*cfg, path, n)) == LS_ENOENT)
                return cli_fail(env, LS_EUSAGE, "%s: socket.enabled is false: no control socket",
                                cpath);
            if (rc)
                return cli_fail(env, rc, "socket path too long");
            return -1;
        }
        ls_config_free(*cfg);
        *cfg = NULL;
    }
    if (db) {
        /* Where `replicate DB URL` listens: the URL configuration of db. */
        const char *urls[] = {"file:///unused"}; /* only the meta directory matters */
        ls_config *one = NULL;
        if ((rc = ls_config_open_urls(env->ctx, db, urls, 1, &one)) != 0)
            return cli_fail_lib(env, rc);
        rc = ls_config_socket(one, path, n);
        ls_config_free(one);
        return rc ? cli_fail(env, rc, "socket path too long") : -1;
    }
    return cli_fail(env, LS_EUSAGE, "no configuration at %s: give -config, -socket or a database",
                    cpath);
}
