/*
 * metrics.c - replicate's metrics and health listener (addr: in the
 * config), served by libmicrohttpd from one thread of its own.
 *
 * Address. "HOST:PORT", "[IPV6]:PORT", or ":PORT", which binds 127.0.0.1:
 * loopback unless a host is given (Litestream binds every interface for
 * ":PORT"; litesafe's metrics name every database path, so listening
 * everywhere is asked for by name, "0.0.0.0:PORT" or "[::]:PORT"). A host
 * name is resolved and its first address bound. The socket is bound before
 * replication starts: an address in use ends `replicate` at once (exit 1),
 * an address that does not parse is a config error (exit 2).
 *
 * Requests. GET and HEAD of /metrics and /healthz; any other method is 405
 * (with Allow), any other path 404. One polling thread serves every
 * connection, at most MAX_CONNS at a time, each closed after IDLE_SEC
 * without progress: a slow or stuck client holds a connection slot, never a
 * replication thread (the status call copies the state under the engine's
 * short locks).
 *
 * /metrics: Prometheus text format 0.0.4. Litestream 0.3.13's names where
 * litesafe has the quantity, with its labels (db; db and name; replica_type
 * and operation), so dashboards made for it keep working:
 *   litestream_db_size, litestream_wal_size            gauge   {db}
 *   litestream_total_wal_bytes                         counter {db}
 *   litestream_shadow_wal_index, _shadow_wal_size      gauge   {db} (the spool's end)
 *   litestream_replica_wal_bytes                       counter {db,name}
 *   litestream_replica_wal_index, _wal_offset          gauge   {db,name}
 *   litestream_replica_operation_total                 counter {replica_type,operation}
 * then litesafe's own (the table `families` below), and per process
 * litesafe_build_info{version}, process_start_time_seconds (when replication
 * started) and process_resident_memory_bytes.
 *
 * /healthz: 200 "ok" while every replica's lag (age of its oldest commit not
 * yet stored) is at most health-max-lag, and every database is attached;
 * otherwise 503 and one line per failing replica. A database that is not
 * attached (missing, not in WAL mode) only fails once the daemon has run for
 * health-max-lag, so that an application may create its database after
 * replicate started.
 */
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 16 /* connections served at once; more wait in the backlog */
#define IDLE_SEC 10  /* a connection without progress for this long is closed */
#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct cli_metrics {
    cli_env *env;           /* for a failure at start */
    char *addr;             /* as configured, for messages */
    char where[80];         /* the address bound, numeric ("127.0.0.1:9090", "[::1]:9090") */
    int fd;                 /* the bound listening socket (-1 once MHD owns it) */
    struct MHD_Daemon *mhd; /* the listener, once serving */
    cli_daemon *d;          /* what it reports on */
    int64_t max_lag_ms;     /* health-max-lag */
    ls_ctx *ctx;            /* the listener thread's context (logs, status errors) */
};

/* ---------------------------------------------------------------------- */
/* Binding                                                                  */

/*
 * Split addr into host and port (host "" for ":PORT"; brackets removed).
 * 0, or -1 when it is not one of the accepted forms.
 */
static int addr_split(const char *addr, char *host, size_t hsz, char *port, size_t psz)
{
    const char *colon, *h = addr, *hend;
    if (addr[0] == '[') {
        h = addr + 1;
        if (!(hend = strchr(h, ']')) || hend[1] != ':')
            return -1;
        colon = hend + 1;
    } else {
        if (!(colon = strrchr(addr, ':')) || memchr(addr, ':', (size_t)(colon - addr)))
            return -1; /* an IPv6 address needs its brackets */
        hend = colon;
    }
    const char *p = colon + 1;
    size_t plen = strlen(p);
    if (plen == 0 || plen >= psz || strspn(p, "0123456789") != plen || atol(p) > 65535 ||
        (size_t)(hend - h) >= hsz)
        return -1;
    memcpy(host, h, (size_t)(hend - h));
    host[hend - h] = '\0';
    memcpy(port, p, plen + 1);
    return 0;
}

/* A listening socket on host:port: the fd, or -1 with errno (or *gai) set. */
static int bind_listen(const char *host, const char *port, int *gai)
{
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if ((*gai = getaddrinfo(host, port, &hints, &ai)) != 0)
        return -1;
    int one = 1, fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
                    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0)) {
        int e = errno;
        close(fd);
        fd = -1;
        errno = e;
    }
    freeaddrinfo(ai);
    return fd;
}

/* The numeric address fd is bound to, "HOST:PORT" ("[HOST]:PORT" for IPv6). */
static void bound_name(int fd, char *out, size_t size)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    char host[64] = "?", port[8] = "?";
    if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        getnameinfo((struct sockaddr *)&sa, len, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(out, size, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
}

int cli_metrics_open(cli_env *env, const char *addr, cli_metrics **out)
{
    char host[256], port[8];
    int gai = 0;
    *out = NULL;
    if (addr_split(addr, host, sizeof(host), port, sizeof(port)) != 0)
        return cli_fail(env, LS_EUSAGE,
                        "invalid addr '%s': want HOST:PORT, :PORT (127.0.0.1) or [IPV6]:PORT",
                        addr);
    int fd = bind_listen(*host ? host : "127.0.0.1", port, &gai);
    if (fd < 0)
        return cli_fail(env, LS_ERROR, "metrics: listen on %s: %s", addr,
                        gai ? gai_strerror(gai) : strerror(errno));
    cli_metrics *m = calloc(1, sizeof(*m));
    if (!m || !(m->addr = strdup(addr)) || ls_ctx_new(&m->ctx) != 0) {
        close(fd);
        if (m)
            free(m->addr);
        free(m);
        return cli_fail(env, LS_ENOMEM, "out of memory");
    }
    m->env = env;
    m->fd = fd;
    bound_name(fd, m->where, sizeof(m->where));
    *out = m;
    return -1;
}

/* ---------------------------------------------------------------------- */
/* The state, copied out of the status call                                 */

/* One replica's status with its strings owned. */
typedef struct row {
    ls_replica_status st; /* its string members point into the fields below */
    char *db, *name, *type, *err;
} row;

typedef struct snap {
    row *rows;
    size_t n, cap;
    int oom;
} snap;

static void snap_add(void *ud, const ls_replica_status *st, size_t n)
{
    snap *s = ud;
    for (size_t i = 0; i < n && !s->oom; i++) {
        if (s->n == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 8;
            row *r = realloc(s->rows, cap * sizeof(*r));
            if (!r) {
                s->oom = 1;
                return;
            }
            s->rows = r;
            s->cap = cap;
        }
        row *r = &s->rows[s->n];
        r->st = st[i];
        r->db = strdup(st[i].database ? st[i].database : "");
        r->name = strdup(st[i].name ? st[i].name : "");
        r->type = strdup(st[i].type ? st[i].type : "");
        r->err = strdup(st[i].last_error_message ? st[i].last_error_message : "");
        s->n++;
        if (!r->db || !r->name || !r->type || !r->err)
            s->oom = 1;
        r->st.database = r->db;
        r->st.name = r->name;
        r->st.type = r->type;
        r->st.last_error_message = r->err;
    }
}

static void snap_free(snap *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->rows[i].db);
        free(s->rows[i].name);
        free(s->rows[i].type);
        free(s->rows[i].err);
    }
    free(s->rows);
}

/* ---------------------------------------------------------------------- */
/* Response text                                                            */

typedef struct buf {
    char *p;
    size_t len, cap;
    int oom; /* sticky: a failed append; the text is then incomplete */
} buf;

static void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(buf *b, const char *fmt, ...)
{
    for (int tries = 0; tries < 2 && !b->oom; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
        } else if (b->p && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        } else {
            size_t cap = b->cap ? b->cap : 4096;
            while (cap - b->len <= (size_t)n)
                cap *= 2;
            char *p = realloc(b->p, cap);
            if (!p)
                b->oom = 1;
            b->p = p ? p : b->p;
            b->cap = p ? cap : b->cap;
        }
    }
}

/* A label value, escaped as the text format wants (\\, \", \n). */
static void buf_label(buf *b, const char *key, const char *v)
{
    buf_printf(b, "%s=\"", key);
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            buf_printf(b, "\\%c", *v);
        else if (*v == '\n')
            buf_printf(b, "\\n");
        else
            buf_printf(b, "%c", *v);
    }
    buf_printf(b, "\"");
}

/* ---------------------------------------------------------------------- */
/* /metrics                                                                 */

enum { V_U64, V_U32, V_BOOL, V_MS, V_DBL };

/* One family's samples, from one field of every status row. */
typedef struct metric {
    const char *name;  /* family; consecutive rows of one family share HELP/TYPE */
    const char *type;  /* gauge | counter */
    int per_db;        /* 1: one sample per database (its first replica's row), label db */
    int kind;          /* V_*: the field's C type (V_BOOL an int, V_MS int64 ms as seconds) */
    size_t off;        /* offsetof(ls_replica_status, field) */
    const char *label; /* one more label, written as is, or NULL */
    const char *help;
} metric;

#define F(f) offsetof(ls_replica_status, f)
static const metric families[] = {
    /* Litestream 0.3.13's */
    {"litestream_db_size", "gauge", 1, V_U64, F(db_size), NULL, "Size of the database file."},
    {"litestream_wal_size", "gauge", 1, V_U64, F(wal_size), NULL, "Size of the -wal file."},
    {"litestream_total_wal_bytes", "counter", 1, V_U64, F(wal_bytes), NULL,
     "WAL bytes copied to the spool (Litestream's shadow WAL) since start."},
    {"litestream_shadow_wal_index", "gauge", 1, V_U32, F(local_index), NULL,
     "WAL index of the spool's end."},
    {"litestream_shadow_wal_size", "gauge", 1, V_U64, F(local_offset), NULL,
     "Committed bytes in the spool's last WAL index."},
    {"litestream_replica_wal_bytes", "counter", 0, V_U64, F(bytes), NULL,
     "WAL bytes stored on the replica since start."},
    {"litestream_replica_wal_index", "gauge", 0, V_U32, F(index), NULL,
     "WAL index of the replica's position."},
    {"litestream_replica_wal_offset", "gauge", 0, V_U64, F(offset), NULL,
     "Byte offset of the replica's position in its WAL index."},
    /* litesafe's, per database */
    {"litesafe_db_attached", "gauge", 1, V_BOOL, F(attached), NULL,
     "1 while the database is replicated (it exists, in WAL mode)."},
    {"litesafe_spool_bytes", "gauge", 1, V_U64, F(spool_size), NULL,
     "Bytes in the database's spool (every generation kept locally)."},
    /* litesafe's, per replica */
    {"litesafe_replica_lag_seconds", "gauge", 0, V_MS, F(lag_ms), NULL,
     "Age of the oldest commit not yet stored on the replica (0 when current)."},
    {"litesafe_replica_lag_bytes", "gauge", 0, V_U64, F(lag_bytes), NULL,
     "Spool bytes not yet stored on the replica."},
    {"litesafe_replica_last_sync_timestamp_seconds", "gauge", 0, V_MS, F(last_success_ms), NULL,
     "Unix time of the replica's last stored upload (0: none since start)."},
    {"litesafe_replica_last_error_timestamp_seconds", "gauge", 0, V_MS, F(last_error_ms), NULL,
     "Unix time of the replica's last failure (0: none since start)."},
    {"litesafe_replica_failing", "gauge", 0, V_BOOL, F(last_error), NULL,
     "1 while the replica's newest request failed, or its last step did (a step retries)."},
    {"litesafe_replica_restorable", "gauge", 0, V_BOOL, F(restorable), NULL,
     "1 when the replica holds a snapshot of its generation."},
    {"litesafe_replica_upload_bytes_total", "counter", 0, V_U64, F(bytes), NULL,
     "WAL bytes uploaded to the replica in segments since start (before compression)."},
    {"litesafe_replica_uploads_total", "counter", 0, V_U64, F(segments), "kind=\"segment\"",
     "Objects stored on the replica since start, by kind."},
    {"litesafe_replica_uploads_total", "counter", 0, V_U64, F(snapshots), "kind=\"snapshot\"",
     NULL},
    {"litesafe_replica_requests_total", "counter", 0, V_U64, F(puts), "op=\"put\"",
     "Requests to the replica's storage since start, by operation (every try counts)."},
    {"litesafe_replica_requests_total", "counter", 0, V_U64, F(gets), "op=\"get\"", NULL},
    {"litesafe_replica_requests_total", "counter", 0, V_U64, F(lists), "op=\"list\"", NULL},
    {"litesafe_replica_requests_total", "counter", 0, V_U64, F(stats), "op=\"stat\"", NULL},
    {"litesafe_replica_requests_total", "counter", 0, V_U64, F(deletes), "op=\"delete\"", NULL},
    {"litesafe_replica_request_errors_total", "counter", 0, V_U64, F(errors_net), "class=\"net\"",
     "Failed requests to the replica's storage since start, by class (net: server away, "
     "5xx, timeout; auth: credentials refused; other)."},
    {"litesafe_replica_request_errors_total", "counter", 0, V_U64, F(errors_auth), "class=\"auth\"",
     NULL},
    {"litesafe_replica_request_errors_total", "counter", 0, V_U64, F(errors_other),
     "class=\"other\"", NULL},
    {"litesafe_replica_requests_per_second", "gauge", 0, V_DBL, F(requests_per_sec), NULL,
     "Requests to the replica's storage per second, mean over the last minute."},
    {"litesafe_replica_request_cost_monthly", "gauge", 0, V_DBL, F(monthly_request_cost), NULL,
     "The request rate of the last minute over a 30-day month, at the replica's request-price "
     "(per 1,000 requests)."},
    {"litesafe_replica_next_snapshot_timestamp_seconds", "gauge", 0, V_MS, F(next_snapshot_ms),
     NULL, "Unix time the next scheduled snapshot is due (0: none)."},
    {"litesafe_replica_next_retention_timestamp_seconds", "gauge", 0, V_MS, F(next_retention_ms),
     NULL, "Unix time the next retention pass is due (0: never)."},
    {"litesafe_replica_spool_drops_total", "counter", 0, V_U64, F(spool_drops), NULL,
     "Times the replica's unshipped WAL was dropped from the spool (max-spool-size) since "
     "start; it then takes a fresh snapshot."},
};
#undef F

/* The value of field m of st, as the text format writes it. */
static void put_value(buf *b, const metric *m, const ls_replica_status *st)
{
    const char *f = (const char *)st + m->off;
    if (m->kind == V_U64)
        buf_printf(b, "%llu\n", (unsigned long long)*(const uint64_t *)(const void *)f);
    else if (m->kind == V_U32)
        buf_printf(b, "%lu\n", (unsigned long)*(const uint32_t *)(const void *)f);
    else if (m->kind == V_BOOL)
        buf_printf(b, "%d\n", *(const int *)(const void *)f != 0);
    else if (m->kind == V_MS)
        buf_printf(b, "%.3f\n", (double)*(const int64_t *)(const void *)f / 1000.0);
    else
        buf_printf(b, "%.6g\n", *(const double *)(const void *)f);
}

/* 1 when row i is the first of its database (databases' rows are adjacent). */
static int first_of_db(const snap *s, size_t i)
{
    return i == 0 || strcmp(s->rows[i].db, s->rows[i - 1].db) != 0;
}

static void put_family(buf *b, const metric *m, const snap *s)
{
    if (m->help)
        buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, m->type);
    for (size_t i = 0; i < s->n; i++) {
        if (m->per_db && !first_of_db(s, i))
            continue;
        buf_printf(b, "%s{", m->name);
        buf_label(b, "db", s->rows[i].db);
        if (!m->per_db) {
            buf_printf(b, ",");
            buf_label(b, "name", s->rows[i].name);
        }
        if (m->label)
            buf_printf(b, ",%s", m->label);
        buf_printf(b, "} ");
        put_value(b, m, &s->rows[i].st);
    }
}

/*
 * litestream_replica_operation_total{replica_type,operation}: requests
 * summed over the replicas of each type (Litestream counts per backend
 * type, and has no STAT).
 */
static void put_operations(buf *b, const snap *s)
{
    static const struct {
        const char *op;
        size_t off;
    } ops[] = {{"PUT", offsetof(ls_replica_status, puts)},
               {"GET", offsetof(ls_replica_status, gets)},
               {"LIST", offsetof(ls_replica_status, lists)},
               {"DELETE", offsetof(ls_replica_status, deletes)}};
    buf_printf(b, "# HELP litestream_replica_operation_total Requests to replica storage since "
                  "start, by backend type and operation.\n"
                  "# TYPE litestream_replica_operation_total counter\n");
    for (size_t i = 0; i < s->n; i++) {
        size_t j = 0;
        while (j < i && strcmp(s->rows[j].type, s->rows[i].type) != 0)
            j++;
        if (j < i)
            continue; /* that type was written with the first replica of it */
        for (size_t o = 0; o < sizeof(ops) / sizeof(ops[0]); o++) {
            uint64_t sum = 0;
            for (j = i; j < s->n; j++)
                if (strcmp(s->rows[j].type, s->rows[i].type) == 0)
                    sum += *(const uint64_t *)(const void *)((const char *)&s->rows[j].st +
                                                             ops[o].off);
            buf_printf(b, "litestream_replica_operation_total{");
            buf_label(b, "replica_type", s->rows[i].type);
            buf_printf(b, ",operation=\"%s\"} %llu\n", ops[o].op, (unsigned long long)sum);
        }
    }
}

/* The resident set size in bytes, from /proc/self/statm (0 if unreadable). */
static unsigned long long rss_bytes(void)
{
    unsigned long long size = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (f) {
        if (fscanf(f, "%llu %llu", &size, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * (unsigned long long)sysconf(_SC_PAGESIZE);
}

static void put_process(buf *b, const cli_metrics *m)
{
    buf_printf(b, "# HELP litesafe_build_info The running litesafe's version.\n"
                  "# TYPE litesafe_build_info gauge\nlitesafe_build_info{");
    buf_label(b, "version", ls_version());
    buf_printf(b,
               "} 1\n"
               "# HELP process_start_time_seconds Unix time replication started.\n"
               "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.3f\n",
               (double)cli_daemon_started_ms(m->d) / 1000.0);
    buf_printf(b,
               "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
               "# TYPE process_resident_memory_bytes gauge\n"
               "process_resident_memory_bytes %llu\n",
               rss_bytes());
}

static void render_metrics(buf *b, const cli_metrics *m, const snap *s)
{
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        put_family(b, &families[i], s);
        if (!strcmp(families[i].name, "litestream_replica_wal_offset"))
            put_operations(b, s); /* the Litestream families stay together */
    }
    put_process(b, m);
}

/* ---------------------------------------------------------------------- */
/* /healthz                                                                 */

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The health text of s; returns the HTTP status (200 or 503). */
static unsigned render_health(buf *b, const cli_metrics *m, const snap *s)
{
    int64_t up_ms = unix_ms() - cli_daemon_started_ms(m->d);
    unsigned code = MHD_HTTP_OK;
    for (size_t i = 0; i < s->n; i++) {
        const ls_replica_status *st = &s->rows[i].st;
        int detached = !st->attached && up_ms > m->max_lag_ms;
        if (!detached && st->lag_ms <= m->max_lag_ms)
            continue;
        code = MHD_HTTP_SERVICE_UNAVAILABLE;
        buf_printf(b, "db=%s replica=%s ", st->database, st->name);
        if (detached)
            buf_printf(b, "not attached");
        else
            buf_printf(b, "lag=%.1fs lag_bytes=%llu", (double)st->lag_ms / 1000.0,
                       (unsigned long long)st->lag_bytes);
        buf_printf(b, " max=%.1fs", (double)m->max_lag_ms / 1000.0);
        if (st->last_error)
            buf_printf(b, " last_error=\"%s\"",
                       *st->last_error_message ? st->last_error_message
                                               : ls_strerror(st->last_error));
        buf_printf(b, "\n");
    }
    if (code == MHD_HTTP_OK)
        buf_printf(b, "ok\n");
    return code;
}

/* ---------------------------------------------------------------------- */
/* Serving                                                                  */

/* Queue `b` (taken over) as the response, with status `code`. */
static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, buf *b, const char *ctype)
{
    if (b->oom || !b->p) {
        free(b->p);
        *b = (buf){0};
        code = MHD_HTTP_INTERNAL_SERVER_ERROR;
        buf_printf(b, "out of memory\n");
        if (!b->p)
            return MHD_NO;
        ctype = "text/plain; charset=utf-8";
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(b->len, b->p, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(b->p);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

/* One request: GET or HEAD of /metrics or /healthz. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **req)
{
    cli_metrics *m = cls;
    buf b = {0};
    snap s = {0};
    unsigned code;
    (void)version, (void)upload_data, (void)upload_size, (void)req;
    int metrics = !strcmp(url, "/metrics"), health = !strcmp(url, "/healthz");
    if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD)) {
        code = MHD_HTTP_METHOD_NOT_ALLOWED;
        buf_printf(&b, "method not allowed: only GET and HEAD\n");
    } else if (!metrics && !health) {
        code = MHD_HTTP_NOT_FOUND;
        buf_printf(&b, "not found: /metrics and /healthz are served\n");
    } else if (cli_daemon_status(m->d, m->ctx, snap_add, &s) != 0) {
        code = MHD_HTTP_SERVICE_UNAVAILABLE;
        buf_printf(&b, "status: %s\n", ls_errmsg(m->ctx));
    } else if (s.oom) {
        b.oom = 1;
        code = MHD_HTTP_INTERNAL_SERVER_ERROR;
    } else if (metrics) {
        code = MHD_HTTP_OK;
        render_metrics(&b, m, &s);
    } else {
        code = render_health(&b, m, &s);
    }
    snap_free(&s);
    ls_ctx_log(m->ctx, LS_LOG_DEBUG, "metrics request method=%s path=%s status=%u", method, url,
               code);
    return reply(c, code, &b,
                 metrics && code == MHD_HTTP_OK ? CONTENT_TYPE : "text/plain; charset=utf-8");
}

/* libmicrohttpd's own messages (a failed accept, a connection dropped). */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    cli_metrics *m = cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    ls_ctx_log(m->ctx, LS_LOG_DEBUG, "metrics listener: %s", msg);
}

int cli_metrics_serve(cli_metrics *m, cli_daemon *d, int64_t max_lag_ms, int level)
{
    m->d = d;
    m->max_lag_ms = max_lag_ms;
    ls_ctx_set_log(m->ctx, cli_log, NULL, level);
    m->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG, 0,
                              NULL, NULL, on_request, m, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, m,
                              MHD_OPTION_LISTEN_SOCKET, m->fd, MHD_OPTION_CONNECTION_LIMIT,
                              (unsigned)MAX_CONNS, MHD_OPTION_CONNECTION_TIMEOUT,
                              (unsigned)IDLE_SEC, MHD_OPTION_END);
    if (!m->mhd)
        return cli_fail(m->env, LS_ERROR, "metrics: cannot serve on %s", m->addr);
    m->fd = -1; /* MHD closes it */
    ls_ctx_log(m->ctx, LS_LOG_INFO, "serving metrics url=http://%s/metrics addr=%s", m->where,
               m->addr);
    return -1;
}

void cli_metrics_close(cli_metrics *m)
{
    if (!m)
        return;
    if (m->mhd)
        MHD_stop_daemon(m->mhd);
    if (m->fd >= 0)
        close(m->fd);
    ls_ctx_free(m->ctx);
    free(m->addr);
    free(m);
}
