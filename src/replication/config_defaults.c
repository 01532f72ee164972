/*
 * config_defaults.c - the replication config, second half: what
 * ls_config_apply_defaults() does to a parsed ls_config (directory entries
 * expanded into one db each, each replica's settings inherited and
 * defaulted, replica URLs resolved into the fields, credentials from the
 * environment, validation; the steps are listed above that function), and
 * the path helpers and lookups (ls_config_abs_path, ls_config_find_db).
 * The first half, reading the YAML, is config_yaml.c.
 */
#include "config_int.h"

#include "engine.h"
#include "storage.h"
#include "url.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------------- */
/* Paths                                                                   */

/* "~" or "~/..." with $HOME (or the password database) in front, else a copy. */
static int expand_home(ls_ctx *ctx, const char *path, char **out)
{
    const char *home;
    *out = NULL;
    if (path[0] != '~' || (path[1] != '\0' && path[1] != '/'))
        return (*out = strdup(path)) ? 0 : LS_ENOMEM;
    home = getenv("HOME");
    if (!home || !*home) {
        struct passwd *pw = getpwuid(getuid());
        home = pw ? pw->pw_dir : NULL;
    }
    if (!home || !*home)
        return ls_err(ctx, LS_EUSAGE, "cannot expand %s: no home directory", path);
    size_t n = strlen(home) + strlen(path) + 1;
    if (!(*out = malloc(n)))
        return LS_ENOMEM;
    snprintf(*out, n, "%s%s", home, path + 1);
    return 0;
}

int ls_config_abs_path(ls_ctx *ctx, const char *path, char **out)
{
    char *p = NULL, *abs = NULL, *real = NULL;
    int rc = 0;

    *out = NULL;
    if (!path || !*path)
        return ls_err(ctx, LS_EUSAGE, "empty path");
    if ((rc = expand_home(ctx, path, &p)) != 0)
        goto cleanup;

    /* 1. absolute against the working directory, cleaned */
    if (p[0] != '/') {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof(cwd))) {
            rc = ls_err_errno(ctx, errno, "getcwd");
            goto cleanup;
        }
        size_t n = strlen(cwd) + strlen(p) + 2;
        if (!(abs = malloc(n))) {
            rc = LS_ENOMEM;
            goto cleanup;
        }
        snprintf(abs, n, "%s/%s", cwd, p);
    } else if (!(abs = strdup(p))) {
        rc = LS_ENOMEM;
        goto cleanup;
    }
    ls_url_path_clean(abs);
    if (strcmp(abs, "/") == 0) {
        rc = ls_err(ctx, LS_EUSAGE, "%s: not a file path", path);
        goto cleanup;
    }

    /* 2. the directory through realpath() when it exists */
    char *slash = strrchr(abs, '/');
    *slash = '\0';
    real = realpath(slash == abs ? "/" : abs, NULL);
    *slash = '/';
    if (!real && errno == ENOMEM) {
        /* Not "the directory does not exist": the lexical path could name the same
         * database differently (through a symlink) than the resolved one. */
        rc = LS_ENOMEM;
        goto cleanup;
    }
    if (real) {
        size_t n = strlen(real) + strlen(slash) + 1;
        char *joined = malloc(n);
        if (!joined) {
            rc = LS_ENOMEM;
            goto cleanup;
        }
        snprintf(joined, n, "%s%s", strcmp(real, "/") == 0 ? "" : real, slash);
        free(abs);
        abs = joined;
    }
    *out = abs;
    abs = NULL;
cleanup:
    free(p);
    free(abs);
    free(real);
    return rc;
}

ls_db_cfg *ls_config_find_db(const ls_config *cfg, const char *path)
{
    char *abs = NULL;
    ls_db_cfg *found = NULL;
    if (!cfg || ls_config_abs_path(NULL, path, &abs) != 0)
        return NULL;
    for (size_t i = 0; i < cfg->n_dbs && !found; i++)
        if (cfg->dbs[i].path && strcmp(cfg->dbs[i].path, abs) == 0)
            found = &cfg->dbs[i];
    free(abs);
    return found;
}

ls_replica_cfg *ls_db_cfg_find_replica(const ls_db_cfg *db, const char *name)
{
    for (size_t i = 0; db && name && i < db->n_replicas; i++)
        if (db->replicas[i].name && strcmp(db->replicas[i].name, name) == 0)
            return &db->replicas[i];
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* Defaults and validation                                                 */

/* Litestream 0.3's defaults, except sync-interval (see apply_defaults). */
#define DEF_MONITOR_MS 1000
#define DEF_CHECKPOINT_MS 60000
#define DEF_MIN_CKPT_PAGES 1000
#define DEF_MAX_CKPT_PAGES 10000
#define DEF_RETENTION_MS (24 * 3600 * 1000LL)
#define DEF_RETENTION_CHECK_MS (3600 * 1000LL)
#define DEF_SNAPSHOT_MS 0
#define DEF_SYNC_MS 0           /* file replicas and an embedder's own storage */
#define DEF_REMOTE_SYNC_MS 1000 /* s3, gcs, abs, sftp: Litestream's request rate */
#define DEF_VALIDATION_MS 0
#define DEF_REQUEST_PRICE 0.005 /* per 1,000 requests: S3 Standard PUT/LIST, GCS class A */
#define DEF_COMPACT_AFTER_MS (10 * 60 * 1000LL)  /* litesafe: see compact.c */
#define DEF_COMPACT_INTERVAL_MS (5 * 60 * 1000LL)
#define DEF_SNAPSHOT_WAL_RATIO 4.0 /* snapshot uploads <= 1/4 of the WAL's; restore reads <= 4x */
#define DEF_SHUTDOWN_MS 30000 /* Litestream 0.5's shutdown-sync-timeout default */
#define DEF_HEALTH_MAX_LAG_MS 60000 /* litesafe: /healthz's replica lag limit */
#define DEF_MAX_BUSY_MS                                                                            \
    60000 /* busy-timeout's limit: a cycle that waits longer than this                             \
             for the write lock is better retried at the next sync */

/* Environment credentials for s3, in precedence order. */
static const struct {
    const char *key_id, *secret;    /* variables for access-key-id, secret-access-key */
    const char *token;              /* session token that goes with a key id from here */
} cred_env[] = {
    {"LITESAFE_ACCESS_KEY_ID", "LITESAFE_SECRET_ACCESS_KEY", "LITESAFE_SESSION_TOKEN"},
    {"LITESTREAM_ACCESS_KEY_ID", "LITESTREAM_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"},
    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"},
};
static const char *const abs_key_env[] = {"LITESAFE_AZURE_ACCOUNT_KEY",
                                          "LITESTREAM_AZURE_ACCOUNT_KEY"};

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return (v && *v) ? v : NULL;
}

/* *dst = copy of src when *dst is unset and src is given. */
static int fill(char **dst, const char *src)
{
    if (*dst || !src)
        return 0;
    return (*dst = strdup(src)) ? 0 : LS_ENOMEM;
}

/* Take *src into *dst (freeing what was there). */
static void take(char **dst, char **src)
{
    free(*dst);
    *dst = *src;
    *src = NULL;
}

/* An error about replica `r` of `db`, at its position. */
#define RERR(ctx, cfg, r, ...)                                                                     \
    ls_cfg_pos_err(ctx, LS_EUSAGE, (cfg)->source, (size_t)(r)->line, (size_t)(r)->col, __VA_ARGS__)

/*
 * Put "<source>:<line>:<col>: [<what>: ]" in front of the message a callee
 * recorded with code rc, and return rc.
 */
static int prefix_pos(ls_ctx *ctx, int rc, const char *source, int line, int col,
                      const char *what)
{
    char msg[sizeof(ctx->msg)];
    ls_strlcpy(msg, ls_errmsg(ctx), sizeof(msg));
    return ls_cfg_pos_err(ctx, rc, source, (size_t)line, (size_t)col, "%s%s%s", what ? what : "",
                   what ? ": " : "", msg);
}

/*
 * Fill the replica fields its URL implies, where the config leaves them
 * unset (Litestream: "only apply URL parts to fields not overridden"); the
 * URL may not be combined with path, bucket or host. Runs before the
 * replica inherits its db's and the top level's defaults, so the URL's
 * parts win over those.
 */
static int replica_from_url(ls_ctx *ctx, const ls_config *cfg, ls_replica_cfg *r)
{
    ls_url u;
    int rc = 0;

    if (r->path)
        return RERR(ctx, cfg, r, "replica: url and path cannot both be set");
    if (r->bucket)
        return RERR(ctx, cfg, r, "replica: url and bucket cannot both be set");
    if (r->host)
        return RERR(ctx, cfg, r, "replica: url and host cannot both be set");
    if ((rc = ls_url_parse(ctx, r->url, &u)) != 0) {
        if (rc == LS_EUSAGE)
            rc = prefix_pos(ctx, rc, cfg->source, r->line, r->col, NULL);
        goto cleanup;
    }
    if (r->type && strcmp(r->type, u.scheme) != 0) {
        rc = RERR(ctx, cfg, r, "replica: type \"%s\" does not match the url scheme \"%s\"", r->type,
                  u.scheme);
        goto cleanup;
    }
    take(&r->type, &u.scheme);
    take(&r->path, &u.path);
    if (strcmp(r->type, "s3") == 0) {
        /* path style: a provider host or ?forcePathStyle= says; else the endpoint
           decides (replica_defaults step 7), as in Litestream */
        if (r->force_path_style < 0 && (u.force_path_style_set || u.force_path_style))
            r->force_path_style = u.force_path_style;
        if (r->skip_verify < 0 && u.skip_verify >= 0)
            r->skip_verify = u.skip_verify;
        take(&r->bucket, &u.bucket);
        if (!r->region)
            take(&r->region, &u.region);
        if (!r->endpoint)
            take(&r->endpoint, &u.endpoint);
    } else if (strcmp(r->type, "gcs") == 0 || strcmp(r->type, "abs") == 0) {
        take(&r->bucket, &u.bucket);
        if (!r->account_name && strcmp(r->type, "abs") == 0)
            take(&r->account_name, &u.user);
    } else if (strcmp(r->type, "sftp") == 0) {
        if (u.port) {
            size_t n = strlen(u.host) + 16;
            if (!(r->host = malloc(n))) {
                rc = LS_ENOMEM;
                goto cleanup;
            }
            snprintf(r->host, n, strchr(u.host, ':') ? "[%s]:%d" : "%s:%d", u.host, u.port);
        } else {
            take(&r->host, &u.host);
        }
        if (!r->user)
            take(&r->user, &u.user);
        if (!r->password)
            take(&r->password, &u.password);
    }
cleanup:
    ls_url_free(&u);
    return rc;
}

/*
 * Credentials, first found wins:
 *   1. the replica's own access-key-id / secret-access-key / session-token;
 *   2. its db's and then the top level's (the top-level replica settings,
 *      which include 0.3's access-key-id / secret-access-key), each field on
 *      its own: copied by replica_defaults step 3 before this runs;
 *   3. s3 and gcs only, the environment, by family in this order: LITESAFE_*,
 *      LITESTREAM_*, AWS_*. Without an access key id so far, the first family
 *      with one gives the key id, and the secret and session token of the
 *      same family (LITESAFE_SESSION_TOKEN; AWS_SESSION_TOKEN for LITESTREAM_
 *      and AWS_, as Litestream copies its variables into AWS_*): a key, its
 *      secret and its token belong together. With a key id from the file and
 *      no secret, the secret is the first family's SECRET_ACCESS_KEY.
 *   account-key (abs): the replica's key, LITESAFE_AZURE_ACCOUNT_KEY,
 *   LITESTREAM_AZURE_ACCOUNT_KEY.
 * Empty variables count as unset.
 */
static int replica_credentials(ls_replica_cfg *r)
{
    int rc;
    if (strcmp(r->type, "s3") == 0 || strcmp(r->type, "gcs") == 0) {
        for (size_t i = 0; i < NROWS(cred_env); i++) {
            const char *key = env_nonempty(cred_env[i].key_id);
            if (!r->access_key_id && key) {
                if ((rc = fill(&r->access_key_id, key)) != 0 ||
                    (rc = fill(&r->secret_access_key, env_nonempty(cred_env[i].secret))) != 0 ||
                    (rc = fill(&r->session_token, env_nonempty(cred_env[i].token))) != 0)
                    return rc;
                break;
            }
            if (r->access_key_id &&
                (rc = fill(&r->secret_access_key, env_nonempty(cred_env[i].secret))) != 0)
                return rc;
        }
    }
    if (strcmp(r->type, "abs") == 0)
        for (size_t i = 0; i < NROWS(abs_key_env); i++)
            if ((rc = fill(&r->account_key, env_nonempty(abs_key_env[i]))) != 0)
                return rc;
    return 0;
}

/* "a/b" (cleaned), or b when a is empty; malloc'd or NULL. */
static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (!p)
        return NULL;
    snprintf(p, n, "%s%s%s", a, *a ? "/" : "", b);
    ls_url_path_clean(p);
    return p;
}

/*
 * One replica: 1. path must not be a URL; 0.5's type gs is gcs; 2. the URL's
 * parts; 3. what its db and then the top level give (settings, snapshot:);
 * 4. the type (file without URL or type); 5. what the type requires (sftp:
 * a well-formed host-key); a db found by a dir scan stores below its
 * relative path; 6. the name and its uniqueness in the db; 7. credentials
 * from the environment; 8. timings and flags.
 */
/* request-price: a decimal >= 0 (the price of 1,000 requests), for the cost estimate. */
static int request_price(ls_ctx *ctx, const ls_config *cfg, ls_replica_cfg *r)
{
    if (!r->request_price) {
        int object_store = !r->storage && r->type &&
                           (!strcmp(r->type, "s3") || !strcmp(r->type, "gcs") ||
                            !strcmp(r->type, "abs"));
        r->price_per_1k = object_store ? DEF_REQUEST_PRICE : 0;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    double v = strtod(r->request_price, &end);
    if (end == r->request_price || *end || errno || !(v >= 0) || v > 1e6)
        return RERR(ctx, cfg, r, "bad request-price \"%s\": the price of 1,000 requests, a "
                    "number such as 0.005", r->request_price);
    r->price_per_1k = v;
    return 0;
}

/* compact-after, compact-interval, snapshot-wal-ratio (a decimal >= 0). */
static int compaction(ls_ctx *ctx, const ls_config *cfg, ls_replica_cfg *r)
{
    if (r->compact_after_ms < 0)
        r->compact_after_ms = DEF_COMPACT_AFTER_MS;
    if (r->compact_interval_ms < 0)
        r->compact_interval_ms = DEF_COMPACT_INTERVAL_MS;
    r->wal_ratio = DEF_SNAPSHOT_WAL_RATIO;
    if (!r->snapshot_wal_ratio)
        return 0;
    char *end = NULL;
    errno = 0;
    double v = strtod(r->snapshot_wal_ratio, &end);
    if (end == r->snapshot_wal_ratio || *end || errno || !(v >= 0) || v > 1e6)
        return RERR(ctx, cfg, r, "bad snapshot-wal-ratio \"%s\": a number such as 4 (a "
                    "snapshot when the WAL shipped since the last is 4 times the database), "
                    "or 0", r->snapshot_wal_ratio);
    r->wal_ratio = v;
    return 0;
}

static int replica_defaults(ls_ctx *ctx, const ls_config *cfg, ls_db_cfg *db, size_t idx)
{
    ls_replica_cfg *r = &db->replicas[idx];
    int rc;

    /* 1 */
    if (r->path && ls_url_is_url(r->path))
        return RERR(ctx, cfg, r, "replica path \"%s\" is a URL: use the url key instead", r->path);
    if (r->type && strcmp(r->type, "gs") == 0) {
        free(r->type);
        if (!(r->type = strdup("gcs")))
            return LS_ENOMEM;
    }
    /* 2 */
    if (r->url && (rc = replica_from_url(ctx, cfg, r)) != 0)
        return rc;
    /* 3 */
    if ((rc = ls_cfg_inherit_replica(r, &db->defaults)) != 0 ||
        (rc = ls_cfg_inherit_replica(r, &cfg->defaults)) != 0)
        return rc;
    /* 4 */
    if (!r->type && !(r->type = strdup(r->storage ? r->storage->type : "file")))
        return LS_ENOMEM;
    /* 5 */
    if (r->storage) {
        /* an embedder's own backend: nothing here to check */
    } else if (strcmp(r->type, "file") == 0) {
        char *abs = NULL;
        if (!r->path)
            return RERR(ctx, cfg, r, "file replica: path required");
        if ((rc = ls_config_abs_path(ctx, r->path, &abs)) != 0)
            return rc == LS_EUSAGE ? prefix_pos(ctx, rc, cfg->source, r->line, r->col,
                                                "file replica path")
                                   : rc;
        take(&r->path, &abs);
    } else if (strcmp(r->type, "sftp") == 0) {
        if (!r->host)
            return RERR(ctx, cfg, r, "sftp replica: host required");
        if (!r->user)
            return RERR(ctx, cfg, r, "sftp replica: user required");
        if (r->host_key && (rc = ls_storage_sftp_check_host_key(ctx, r->host_key)) != 0)
            return rc == LS_EUSAGE
                       ? prefix_pos(ctx, rc, cfg->source, r->line, r->col, "sftp replica")
                       : rc;
    } else if (!r->bucket) {
        return RERR(ctx, cfg, r, "%s replica: bucket required", r->type);
    }
    /* 6: age keys parse, and their files exist (the engine loads them again) */
    ls_age_keys *keys = NULL;
    if ((rc = ls_replica_age_keys(ctx, r, &keys)) != 0)
        return rc == LS_EUSAGE ? prefix_pos(ctx, rc, cfg->source, r->line, r->col, NULL) : rc;
    ls_age_keys_free(keys);
    if (!r->path && !(r->path = strdup("")))
        return LS_ENOMEM;
    if (db->rel_path) {
        char *joined = path_join(r->path, db->rel_path);
        if (!joined)
            return LS_ENOMEM;
        take(&r->path, &joined);
    }
    /* 6 */
    if (!r->name && !(r->name = strdup(r->type)))
        return LS_ENOMEM;
    if (r->line == 0) {
        /* From the command line (several URLs of one type): name them apart. */
        for (size_t i = 0; i < idx; i++) {
            if (strcmp(db->replicas[i].name, r->name) != 0)
                continue;
            char alt[64];
            snprintf(alt, sizeof(alt), "%s%zu", r->type, idx + 1);
            free(r->name);
            if (!(r->name = strdup(alt)))
                return LS_ENOMEM;
            break;
        }
    }
    for (size_t i = 0; i < idx; i++)
        if (strcmp(db->replicas[i].name, r->name) == 0)
            return RERR(ctx, cfg, r, "duplicate replica name \"%s\" (also at line %d)", r->name,
                        db->replicas[i].line);
    /* 7 */
    if ((rc = replica_credentials(r)) != 0)
        return rc;
    /* 8 */
    if (r->force_path_style < 0)
        r->force_path_style = r->endpoint ? 1 : 0;
    if (r->skip_verify < 0)
        r->skip_verify = 0;
    if (r->retention_ms < 0)
        r->retention_ms = DEF_RETENTION_MS;
    if (r->retention_check_interval_ms < 0)
        r->retention_check_interval_ms = DEF_RETENTION_CHECK_MS;
    if (r->retention_ms > 0 && r->retention_check_interval_ms > r->retention_ms)
        r->retention_check_interval_ms = r->retention_ms;
    if (r->snapshot_interval_ms < 0)
        r->snapshot_interval_ms = DEF_SNAPSHOT_MS;
    if (r->sync_interval_ms < 0) /* remote: the first commit at once, then one a second */
        r->sync_interval_ms =
            (r->storage || !r->type || strcmp(r->type, "file") == 0) ? DEF_SYNC_MS
                                                                     : DEF_REMOTE_SYNC_MS;
    if (r->validation_interval_ms < 0)
        r->validation_interval_ms = DEF_VALIDATION_MS;
    if ((rc = compaction(ctx, cfg, r)) != 0)
        return rc;
    return request_price(ctx, cfg, r);
}

/* meta-path (the spool) default: "<dir>/.<base>-litesafe" next to the database. */
static int default_meta_path(const char *db_path, char **out)
{
    const char *slash = strrchr(db_path, '/');
    size_t n = strlen(db_path) + sizeof("/.-litesafe");
    if (!(*out = malloc(n)))
        return LS_ENOMEM;
    snprintf(*out, n, "%.*s/.%s-litesafe", (int)(slash - db_path), db_path, slash + 1);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Directory entries (Litestream 0.5's dir + pattern)                      */

/* The databases a dir scan found, in the order found. */
typedef struct found_list {
    char **path;   /* absolute paths */
    char **rel;    /* the same, relative to the dir */
    size_t n, cap; /* used, allocated */
} found_list;

static void found_free(found_list *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->path[i]);
        free(f->rel[i]);
    }
    free(f->path);
    free(f->rel);
}

/* 1 if the file starts with the SQLite header (as Litestream's IsSQLiteDatabase). */
static int is_sqlite_file(const char *path)
{
    static const char magic[16] = "SQLite format 3"; /* with its NUL: 16 bytes */
    char hdr[16];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, hdr, sizeof(hdr));
    close(fd);
    return n == (ssize_t)sizeof(hdr) && memcmp(hdr, magic, sizeof(hdr)) == 0;
}

/* A spool (".<db>-litesafe", Litestream's ".<db>-litestream"): never scanned. */
static int is_spool_dir(const char *name)
{
    size_t n = strlen(name);
    return name[0] == '.' && ((n > 9 && strcmp(name + n - 9, "-litesafe") == 0) ||
                              (n > 11 && strcmp(name + n - 11, "-litestream") == 0));
}

/* Names in byte order, as Go's filepath.Walk visits them. */
static int name_cmp(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/*
 * Add to `out` every regular file below root/rel (rel "" = root itself)
 * whose name matches `pattern` and that starts with the SQLite header;
 * subdirectories too when `recursive` (not spools, not symbolic
 * links). Returns 0, LS_EUSAGE (a directory that cannot be read) or LS_ENOMEM.
 */
static int scan_dir(ls_ctx *ctx, const char *root, const char *rel, const char *pattern,
                    int recursive, found_list *out)
{
    struct dirent **ents = NULL;
    char *dir = path_join(root, rel);
    int n = -1, rc = 0;

    if (!dir)
        return LS_ENOMEM;
    if ((n = scandir(dir, &ents, NULL, name_cmp)) < 0) {
        /* Out of memory is no configuration error (a reload would refuse the file). */
        rc = ls_err(ctx, errno == ENOMEM ? LS_ENOMEM : LS_EUSAGE, "dir %s: cannot read it: %s",
                    dir, strerror(errno));
        goto cleanup;
    }
    for (int i = 0; i < n && rc == 0; i++) {
        const char *nm = ents[i]->d_name;
        char *full = NULL, *r2 = NULL;
        struct stat st;
        if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0)
            continue;
        if (!(full = path_join(dir, nm)) || !(r2 = path_join(rel, nm))) {
            rc = LS_ENOMEM;
        } else if (lstat(full, &st) != 0) {
            /* gone since the listing: skip it */
        } else if (S_ISDIR(st.st_mode)) {
            if (recursive && !is_spool_dir(nm))
                rc = scan_dir(ctx, root, r2, pattern, recursive, out);
        } else if (S_ISREG(st.st_mode) && fnmatch(pattern, nm, 0) == 0 && is_sqlite_file(full)) {
            if (out->n == out->cap) {
                size_t cap = out->cap ? out->cap * 2 : 8;
                char **p = realloc(out->path, cap * sizeof(char *));
                if (p)
                    out->path = p;
                char **q = p ? realloc(out->rel, cap * sizeof(char *)) : NULL;
                if (q)
                    out->rel = q;
                if (!p || !q)
                    rc = LS_ENOMEM;
                else
                    out->cap = cap;
            }
            if (rc == 0) {
                out->path[out->n] = full;
                out->rel[out->n++] = r2;
                full = r2 = NULL;
            }
        }
        free(full);
        free(r2);
    }
cleanup:
    for (int i = 0; i < n; i++)
        free(ents[i]);
    free(ents);
    free(dir);
    return rc;
}

/*
 * The spool of a database found at `rel` below a dir entry whose
 * meta-path or meta-dir is `base`: "<base>/<rel's dir>/.<file>-litesafe".
 */
static char *found_meta_path(const char *base, const char *rel)
{
    const char *slash = strrchr(rel, '/');
    const char *file = slash ? slash + 1 : rel;
    size_t n = strlen(base) + strlen(rel) + sizeof("//.-litesafe");
    char *p = malloc(n);
    if (!p)
        return NULL;
    snprintf(p, n, "%s/%.*s/.%s-litesafe", base, slash ? (int)(slash - rel) : 0, rel, file);
    ls_url_path_clean(p);
    return p;
}

/* An error about db `d` at its position. */
#define DERR(ctx, cfg, d, ...)                                                                     \
    ls_cfg_pos_err(ctx, LS_EUSAGE, (cfg)->source, (size_t)(d)->line, (size_t)(d)->col, __VA_ARGS__)

/*
 * Replace every directory entry (dir + pattern) of cfg->dbs by one db per
 * SQLite database the scan finds, in Litestream 0.5's order (names sorted,
 * depth first): each a copy of the entry with path set, rel_path its path
 * below the dir (its replicas store under it, as in 0.5), and its spool
 * under meta-path or meta-dir when one is given (else next to
 * it, the default). The scan runs here, each time a configuration is
 * opened: databases created later are seen at the next reload (replicate's
 * SIGHUP; watch: true is refused). An entry that finds nothing is an
 * error, as in Litestream. On failure cfg->dbs is unchanged.
 */
static int expand_dirs(ls_ctx *ctx, ls_config *cfg)
{
    int rc = 0;
    for (size_t i = 0; i < cfg->n_dbs; i++) {
        ls_db_cfg *db = &cfg->dbs[i], *nd = NULL;
        found_list f = {0};
        char *root = NULL;
        size_t made = 0, nn;

        if (!db->dir) {
            if (db->pattern || db->recursive >= 0 || db->meta_dir)
                return DERR(ctx, cfg, db, "db: %s only applies with dir",
                            db->pattern    ? "pattern"
                            : db->meta_dir ? "meta-dir"
                                           : "recursive");
            continue;
        }
        if (db->path)
            return DERR(ctx, cfg, db,
                        "db: path and dir cannot both be set (path names one database, dir a "
                        "directory of them)");
        if (!db->pattern)
            return DERR(ctx, cfg, db, "db: dir needs a pattern (e.g. pattern: \"*.db\")");
        if (db->meta_path && db->meta_dir)
            return DERR(ctx, cfg, db, "db: meta-path and meta-dir cannot both be set");
        if ((rc = ls_config_abs_path(ctx, db->dir, &root)) != 0)
            return rc == LS_EUSAGE ? prefix_pos(ctx, rc, cfg->source, db->line, db->col, "dir")
                                   : rc;
        if ((rc = scan_dir(ctx, root, "", db->pattern, db->recursive > 0, &f)) != 0) {
            if (rc == LS_EUSAGE)
                rc = prefix_pos(ctx, rc, cfg->source, db->line, db->col, "db");
            goto next;
        }
        if (f.n == 0) {
            rc = DERR(ctx, cfg, db, "db: no SQLite database in %s matches \"%s\"%s", root,
                      db->pattern, db->recursive > 0 ? " (recursively)" : "");
            goto next;
        }
        nn = cfg->n_dbs - 1 + f.n;
        if (!(nd = calloc(nn, sizeof(*nd)))) {
            rc = LS_ENOMEM;
            goto next;
        }
        memcpy(nd, cfg->dbs, i * sizeof(*nd));
        for (; made < f.n; made++) {
            ls_db_cfg *d = &nd[i + made];
            const char *base = db->meta_dir ? db->meta_dir : db->meta_path;
            *d = *db;
            rc = ls_cfg_db_copy(d);
            free(d->dir);
            free(d->pattern);
            free(d->meta_dir);
            d->dir = d->pattern = d->meta_dir = NULL;
            d->recursive = -1;
            take(&d->path, &f.path[made]);
            take(&d->rel_path, &f.rel[made]);
            if (base) {
                free(d->meta_path);
                if (!(d->meta_path = found_meta_path(base, d->rel_path)))
                    rc = LS_ENOMEM;
            }
            if (rc) {
                made++;
                break;
            }
        }
        if (rc) {
            for (size_t j = 0; j < made; j++) {
                free(nd[i + j].rel_path);
                ls_cfg_db_free(&nd[i + j]);
            }
            goto next;
        }
        memcpy(nd + i + f.n, cfg->dbs + i + 1, (cfg->n_dbs - i - 1) * sizeof(*nd));
        ls_cfg_db_free(db);
        free(cfg->dbs);
        cfg->dbs = nd;
        cfg->n_dbs = nn;
        nd = NULL;
        i += f.n - 1;
    next:
        free(nd);
        free(root);
        found_free(&f);
        if (rc)
            return rc;
    }
    return 0;
}

/* socket: permissions octal 0-0777 (default 0600); a path given is absolute. */
static int socket_defaults(ls_ctx *ctx, ls_config *cfg)
{
    cfg->socket_mode = 0600;
    if (cfg->socket_permissions) {
        char *end = NULL;
        long m = strtol(cfg->socket_permissions, &end, 8);
        if (!*cfg->socket_permissions || *end || m < 0 || m > 0777)
            return ls_cfg_pos_err(ctx, LS_EUSAGE, cfg->source, 0, 0,
                                  "socket.permissions: '%s' is not an octal file mode "
                                  "such as 0600", cfg->socket_permissions);
        cfg->socket_mode = (int)m;
    }
    if (cfg->socket_path && cfg->socket_path[0] != '/')
        return ls_cfg_pos_err(ctx, LS_EUSAGE, cfg->source, 0, 0,
                              "socket.path: '%s' must be an absolute path", cfg->socket_path);
    return 0;
}

/*
 * Fill defaults and validate, in this order:
 *   1. At least one db (Litestream logs an error and keeps running with
 *      nothing to do; a replicator that replicates nothing is a mistake we
 *      stop for).
 *   2. logging: level info ("warning" means warn), type text, stderr off,
 *      file made absolute; socket.permissions octal (default 0600),
 *      socket.path absolute;
 *      shutdown-timeout 30 s (Litestream 0.5's shutdown-sync-timeout
 *      default); health-max-lag 1 min; 0.5's retention.enabled: false is
 *      retention 0 (keep everything) for every replica without one of its
 *      own, and cannot go with snapshot.retention at the top level.
 *   3. Directory entries expand into one db per database found
 *      (expand_dirs).
 *   4. Each db: path required, "~" expanded and made absolute
 *      (ls_config_abs_path); no two dbs with the same path; meta-path
 *      default "<dir>/.<base>-litesafe" (made absolute when given);
 *      monitor-interval 1s, checkpoint-interval 1m, min-checkpoint-page-count
 *      1000, max-checkpoint-page-count 10000 (0 disables it; otherwise it may
 *      not be below the minimum); busy-timeout (at most 1m) unset is 0 (the
 *      engine's own, short wait), and 0 given ("do not wait") is 1 ms, the
 *      least the engine takes.
 *   5. Each replica (replica_defaults): its db's, then the top level's
 *      settings where it has none; then retention 24h,
 *      retention-check-interval 1h capped at retention, snapshot-interval 0,
 *      validation-interval 0, and sync-interval 0 where Litestream has 1s:
 *      litesafe ships each commit as soon as it is seen, so a crash loses at
 *      most the transaction in flight; set sync-interval to batch uploads.
 */
/* ls_config_apply_defaults; its helpers return LS_ENOMEM without a message (the wrapper adds it). */
static int apply_defaults(ls_ctx *ctx, ls_config *cfg)
{
    int rc = 0;

    if (cfg->defaults_applied)
        return 0;
    /* 1 */
    if (cfg->n_dbs == 0)
        return ls_cfg_pos_err(ctx, LS_EUSAGE, cfg->source, 0, 0,
                       "no databases configured (dbs is empty or missing)");
    /* 2 */
    if (cfg->log_level && strcmp(cfg->log_level, "warning") == 0) {
        free(cfg->log_level);
        cfg->log_level = NULL;
        if (!(cfg->log_level = strdup("warn")))
            return LS_ENOMEM;
    }
    if ((rc = fill(&cfg->log_level, "info")) != 0 || (rc = fill(&cfg->log_type, "text")) != 0)
        return rc;
    if (cfg->log_stderr < 0)
        cfg->log_stderr = 0;
    if (cfg->log_file) { /* absolute: a reload in another directory names the same file */
        char *abs = NULL;
        if ((rc = ls_config_abs_path(ctx, cfg->log_file, &abs)) != 0)
            return rc == LS_EUSAGE ? prefix_pos(ctx, rc, cfg->source, 0, 0, "logging.file")
                                   : rc;
        take(&cfg->log_file, &abs);
    }
    if (cfg->shutdown_timeout_ms < 0)
        cfg->shutdown_timeout_ms = DEF_SHUTDOWN_MS;
    if (cfg->health_max_lag_ms < 0)
        cfg->health_max_lag_ms = DEF_HEALTH_MAX_LAG_MS;
    if ((rc = socket_defaults(ctx, cfg)) != 0)
        return rc;
    if (cfg->retention_enabled == 0) {
        if (cfg->defaults.retention_ms >= 0)
            return ls_cfg_pos_err(ctx, LS_EUSAGE, cfg->source, 0, 0,
                           "retention.enabled: false (keep everything) contradicts "
                           "snapshot.retention: set only one");
        cfg->defaults.retention_ms = 0;
    }

    /* 3 */
    if ((rc = expand_dirs(ctx, cfg)) != 0)
        return rc;

    /* 4 */
    for (size_t i = 0; i < cfg->n_dbs; i++) {
        ls_db_cfg *db = &cfg->dbs[i];
        char *abs = NULL;
        if (!db->path)
            return ls_cfg_pos_err(ctx, LS_EUSAGE, cfg->source, (size_t)db->line, (size_t)db->col,
                           "db: path required (or dir and pattern)");
        if ((rc = ls_config_abs_path(ctx, db->path, &abs)) != 0)
            return rc == LS_EUSAGE ? prefix_pos(ctx, rc, cfg->source, db->line, db->col, "db path")
                                   : rc;
        take(&db->path, &abs);
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->dbs[j].path, db->path) == 0)
                return ls_cfg_pos_err(
                    ctx, LS_EUSAGE, cfg->source, (size_t)db->line, (size_t)db->col,
                    "db %s is configured twice (also at line %d)", db->path, cfg->dbs[j].line);
        if (db->meta_path) {
            if ((rc = ls_config_abs_path(ctx, db->meta_path, &abs)) != 0)
                return rc == LS_EUSAGE
                           ? prefix_pos(ctx, rc, cfg->source, db->line, db->col, "meta-path")
                           : rc;
            take(&db->meta_path, &abs);
        } else if ((rc = default_meta_path(db->path, &db->meta_path)) != 0) {
            return rc;
        }
        if (db->monitor_interval_ms < 0)
            db->monitor_interval_ms = DEF_MONITOR_MS;
        if (db->checkpoint_interval_ms < 0)
            db->checkpoint_interval_ms = DEF_CHECKPOINT_MS;
        if (db->min_checkpoint_page_count < 0)
            db->min_checkpoint_page_count = DEF_MIN_CKPT_PAGES;
        if (db->max_checkpoint_page_count < 0)
            db->max_checkpoint_page_count = DEF_MAX_CKPT_PAGES;
        if (db->max_checkpoint_page_count > 0 &&
            db->max_checkpoint_page_count < db->min_checkpoint_page_count)
            return ls_cfg_pos_err(ctx, LS_EUSAGE, cfg->source, (size_t)db->line, (size_t)db->col,
                           "db %s: max-checkpoint-page-count (%lld) is below "
                           "min-checkpoint-page-count (%lld)",
                           db->path, (long long)db->max_checkpoint_page_count,
                           (long long)db->min_checkpoint_page_count);
        if (db->busy_timeout_ms > DEF_MAX_BUSY_MS)
            return ls_cfg_pos_err(ctx, LS_EUSAGE, cfg->source, (size_t)db->line, (size_t)db->col,
                           "db %s: busy-timeout is at most 1m (the checkpoint cycle retries at "
                           "the next sync)",
                           db->path);
        if (db->max_spool_size < 0)
            db->max_spool_size = 0;
        if (db->busy_timeout_ms < 0)
            db->busy_timeout_ms = 0;
        else if (db->busy_timeout_ms == 0)
            db->busy_timeout_ms = 1;
        /* 5 */
        for (size_t j = 0; j < db->n_replicas; j++)
            if ((rc = replica_defaults(ctx, cfg, db, j)) != 0)
                return rc;
    }
    cfg->defaults_applied = 1;
    return 0;
}

int ls_config_apply_defaults(ls_ctx *ctx, ls_config *cfg)
{
    return ls_err_oom(ctx, apply_defaults(ctx, cfg));
}
