/*
 * test_alloc_fail.c - the library out of memory: for each scenario below,
 * the Nth allocation the library makes fails (tests/support/alloc_fail.h,
 * one-shot), for N = 1, 2, 3, ... until a run makes fewer than N
 * allocations, so every allocation the scenario reaches fails once.
 *
 * For every N:
 *   1. The armed run returns 0 (the failure was absorbed) or a negative code
 *      with a message on the context that reported it; it never crashes or
 *      hangs. Which codes came back is counted and printed per scenario (a
 *      failure that is not LS_ENOMEM must still say what failed).
 *   2. Disarmed, the scenario's check finds nothing torn: no published file
 *      that is incomplete, no temp file left, a replica that restores to a
 *      state the database had, a store whose objects are whole or absent.
 *   3. The same work run again without failures succeeds and its result is
 *      right (the same fingerprint as a clean run, a restore equal to the
 *      live database).
 *   4. Nothing leaks: file descriptors are counted around each N, and the
 *      ASan build (make asan) reports leaked memory and bad accesses on the
 *      error paths.
 *
 * Scenarios: replica URLs, a YAML configuration (with a directory entry),
 * object names, a WAL scan, one-shot backup/verify/info/restore, a source
 * attaching and a replica's first step, a replication cycle (commit, sync,
 * ship, checkpoint, snapshot), the catalog, a restore from a replica, the
 * public target API on a file replica (list, restore), compaction, and the
 * file backend's put/get/list/stat/delete. Only the library's own
 * allocations fail: SQLite, libyaml, liblz4 and libc allocate as usual.
 *
 * ALLOC_FAIL_VERBOSE=1 prints every failure reported that is not LS_ENOMEM.
 */
#define _GNU_SOURCE
#include "repl_fixture.h"

#include "alloc_fail.h"
#include "catalog.h"
#include "compact.h"
#include "config.h"
#include "fsutil.h"
#include "unit_files.h"
#include "url.h"
#include "wal.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>

/* Where the scenarios write (tmpfs when there is one: thousands of fsyncs). */
static const char *base_dir(void)
{
    struct stat st;
    return stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
}

static int verbose(void)
{
    const char *v = getenv("ALLOC_FAIL_VERBOSE");
    return v && *v && strcmp(v, "0") != 0;
}

static void rm_rf(const char *path)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fail_msg("%s failed", cmd);
}

/* Open file descriptors of this process. */
static int fd_count(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the DIR's own */
}

/* Names in dir (not . and ..) that do not start with one of the allowed prefixes. */
static void assert_only(const char *dir, const char *const *allowed, size_t n)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    if (!d)
        return; /* not created: nothing in it */
    while ((e = readdir(d)) != NULL) {
        int ok = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
        for (size_t i = 0; i < n && !ok; i++)
            ok = !strncmp(e->d_name, allowed[i], strlen(allowed[i]));
        if (!ok)
            fail_msg("left in %s: %s", dir, e->d_name);
    }
    closedir(d);
}

/* Where the failed allocation was made: the executable and an offset for addr2line -f -e. */
static void print_site(const char *name, uint64_t n)
{
    Dl_info di;
    void *ra = alloc_fail_site();
    if (ra && dladdr(ra, &di) && di.dli_fname)
        print_message("%s N=%" PRIu64 ": absorbed, allocation at %s+%#lx\n", name, n, di.dli_fname,
                      (unsigned long)((char *)ra - (char *)di.dli_fbase) - 1);
}

/* ---- the driver ---- */

/*
 * A scenario. `init` builds what every N shares (once, clean); `setup` and
 * `teardown` the per-N state; `run` is the armed part (library calls only,
 * or test code made exempt), returning 0 or an LS_E* code and the context
 * holding the message in *ectx; `check` runs disarmed after the armed run:
 * it checks the state left (nothing torn), runs the work again cleanly and
 * checks its result. A NULL check runs `run` again and compares fingerprints
 * with the first clean run's.
 */
typedef struct scen {
    const char *name;
    void (*init)(void **sh);
    void (*fini)(void *sh);
    void (*setup)(void *sh);
    void (*teardown)(void *sh);
    int (*run)(void *sh, ls_ctx **ectx, char *fp, size_t fpn);
    void (*check)(void *sh, int rc);
} scen;

static void run_scenario(const scen *sc)
{
    void *sh = NULL;
    ls_ctx *ectx = NULL;
    char fp0[4096] = "", fp[4096];
    uint64_t n, enomem = 0, other = 0, absorbed = 0, most = 0, nomsg = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    if (sc->init)
        sc->init(&sh);
    /* A clean run first: the baseline fingerprint, and what any lazy state costs. */
    if (sc->setup)
        sc->setup(sh);
    int rc = sc->run(sh, &ectx, fp0, sizeof(fp0));
    if (rc)
        fail_msg("%s: clean run: %d %s", sc->name, rc, ls_errmsg(ectx));
    if (sc->teardown)
        sc->teardown(sh);

    for (n = 1;; n++) {
        int fds = fd_count();
        if (sc->setup)
            sc->setup(sh);
        ectx = NULL;
        fp[0] = '\0';
        alloc_fail_arm(n);
        rc = sc->run(sh, &ectx, fp, sizeof(fp));
        int fired = alloc_fail_fired();
        uint64_t seen = alloc_fail_seen();
        alloc_fail_disarm();
        most = seen > most ? seen : most;

        /* 1. A clean error or success, never a failure without a message. */
        if (!fired && rc)
            fail_msg("%s N=%" PRIu64 ": failed without the injected failure: %d %s", sc->name, n,
                     rc, ectx ? ls_errmsg(ectx) : "?");
        if (fired && rc) {
            if (rc > 0 || !ectx || !ls_errmsg(ectx)[0]) {
                nomsg++;
                print_message("%s N=%" PRIu64 ": failed (%d) with no message\n", sc->name, n, rc);
            } else if (rc == LS_ENOMEM) {
                enomem++;
            } else {
                other++;
                if (verbose())
                    print_message("%s N=%" PRIu64 ": %s (%d): %s\n", sc->name, n, ls_strerror(rc),
                                  rc, ls_errmsg(ectx));
            }
        } else if (fired) {
            absorbed++;
            if (verbose())
                print_site(sc->name, n);
        }
        /* 2. and 3. Nothing torn; the work again, cleanly, and its result. */
        if (sc->check) {
            sc->check(sh, rc);
        } else {
            if (!rc && strcmp(fp, fp0) != 0)
                fail_msg("%s N=%" PRIu64 ": success with another result:\n%s\nnot\n%s", sc->name, n,
                         fp, fp0);
            fp[0] = '\0';
            rc = sc->run(sh, &ectx, fp, sizeof(fp));
            if (rc)
                fail_msg("%s N=%" PRIu64 ": clean run after: %d %s", sc->name, n, rc,
                         ls_errmsg(ectx));
            if (strcmp(fp, fp0) != 0)
                fail_msg("%s N=%" PRIu64 ": clean run after gives:\n%s\nnot\n%s", sc->name, n, fp,
                         fp0);
        }
        if (sc->teardown)
            sc->teardown(sh);
        /* 4. No descriptor left open by the failed run (or its check). */
        int fds_after = fd_count();
        if (fds_after != fds)
            fail_msg("%s N=%" PRIu64 ": %d file descriptors open, %d before", sc->name, n,
                     fds_after, fds);
        if (!fired)
            break;
    }
    if (sc->fini)
        sc->fini(sh);
    if (nomsg)
        fail_msg("%s: %" PRIu64 " failures without a message", sc->name, nomsg);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    print_message("%-10s N=1..%-5" PRIu64 " allocations<=%-5" PRIu64 " LS_ENOMEM %-5" PRIu64
                  " other %-4" PRIu64 " absorbed %-4" PRIu64 " %5.2fs\n",
                  sc->name, n, most, enomem, other, absorbed,
                  (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
}

/* Append to a fingerprint (never past fpn). */
static void fp_add(char *fp, size_t fpn, const char *fmt, ...) LS_PRINTF(3, 4);
static void fp_add(char *fp, size_t fpn, const char *fmt, ...)
{
    size_t len = strlen(fp);
    va_list ap;
    va_start(ap, fmt);
    if (len < fpn)
        vsnprintf(fp + len, fpn - len, fmt, ap);
    va_end(ap);
}

#define S(x) ((x) ? (x) : "-")

/* A scratch directory and a context, for the scenarios that need no more. */
typedef struct plain {
    char dir[PATH_MAX];
    ls_ctx *ctx;
} plain;

static void plain_init(void **sh)
{
    plain *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    snprintf(p->dir, sizeof(p->dir), "%s/ls-allocfail-XXXXXX", base_dir());
    assert_non_null(mkdtemp(p->dir));
    assert_int_equal(ls_ctx_new(&p->ctx), 0);
    *sh = p;
}

static void plain_fini(void *sh)
{
    plain *p = sh;
    rm_rf(p->dir);
    ls_ctx_free(p->ctx);
    free(p);
}

/* ---- replica URLs ---- */

static const char *const urls[] = {
    "s3://mybkt.localhost:9000/app/db?forcePathStyle=true&skipVerify=1",
    "s3://bucket/a/b?endpoint=https://s3.example.com&region=eu-west-1",
    "gcs://bkt/path/x",
    "abs://account@container/path/to",
    "sftp://alice:p%40ss@backup.example.com:2222/srv/app",
    "file:///var/backups/./app/../app2",
    "/plain/path",
};

static int run_url(void *sh, ls_ctx **ectx, char *fp, size_t fpn)
{
    plain *p = sh;
    int rc = 0;
    *ectx = p->ctx;
    ls_err_clear(p->ctx);
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]) && !rc; i++) {
        ls_url u;
        rc = ls_url_parse(p->ctx, urls[i], &u);
        if (!rc)
            fp_add(fp, fpn, "%s|%s|%s|%s|%d|%s|%s|%s|%s|%d\n", S(u.scheme), S(u.user),
                   S(u.password), S(u.host), u.port, S(u.bucket), S(u.path), S(u.region),
                   S(u.endpoint), u.force_path_style);
        ls_url_free(&u);
    }
    return rc;
}

/* ---- a configuration ---- */

static void config_init(void **sh)
{
    plain_init(sh);
    plain *p = *sh;
    char path[PATH_MAX + 16];
    const char *names[] = {"data/a.db", "data/b.db", "data/sub/c.db", "data/notes.txt"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "mkdir -p '%s/%s'", p->dir, names[i]);
        *strrchr(path, '/') = '\0';
        strcat(path, "'");
        assert_int_equal(system(path), 0);
        snprintf(path, sizeof(path), "%s/%s", p->dir, names[i]);
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        fwrite("SQLite format 3\0 and more", 1, 26, f);
        fclose(f);
    }
}

static int run_config(void *sh, ls_ctx **ectx, char *fp, size_t fpn)
{
    plain *p = sh;
    char text[4096];
    ls_config *cfg = NULL;
    *ectx = p->ctx;
    ls_err_clear(p->ctx);
    snprintf(text, sizeof(text),
             "access-key-id: GLOBALKEY\n"
             "secret-access-key: GLOBALSECRET\n"
             "addr: \":9090\"\n"
             "exec: myapp serve --port 8080\n"
             "logging:\n  level: DEBUG\n  type: json\n  stderr: yes\n"
             "snapshot:\n  interval: 12h\n  retention: 72h\n"
             "dbs:\n"
             "  - path: %s/app.db\n"
             "    monitor-interval: 500ms\n"
             "    checkpoint-interval: 2m\n"
             "    replicas:\n"
             "      - url: s3://mybkt.localhost:9000/app\n"
             "        name: minio\n"
             "        retention: 72h\n"
             "        sync-interval: 10s\n"
             "        age:\n"
             "          recipients:\n"
             "            - age1x2chckmd9syx7zk7ky09kt0twnvel7x4za0988mup8tmqwvewvvs8yug4d\n"
             "      - type: sftp\n"
             "        host: backup.example.com:2222\n"
             "        user: alice\n"
             "        key-path: ~/.ssh/id_ed25519\n"
             "        path: /srv/backups/app\n"
             "      - type: abs\n"
             "        account-name: acct\n"
             "        bucket: cont\n"
             "        path: x/y\n"
             "  - dir: %s/data\n"
             "    pattern: \"*.db\"\n"
             "    recursive: true\n"
             "    meta-dir: %s/meta\n"
             "    replicas:\n"
             "      - url: s3://bkt/prefix\n"
             "      - path: %s/rep\n"
             "  - path: %s/sub/../other.db\n"
             "    replica:\n"
             "      url: file://%s/replica\n",
             p->dir, p->dir, p->dir, p->dir, p->dir, p->dir);
    int rc = ls_config_parse(p->ctx, text, strlen(text), "alloc.yml", 1, &cfg);
    if (!rc)
        rc = ls_config_apply_defaults(p->ctx, cfg);
    if (!rc) {
        fp_add(fp, fpn, "%s %s %s %s\n", S(cfg->addr), S(cfg->exec), S(cfg->log_level),
               S(cfg->log_type));
        for (size_t i = 0; i < cfg->n_dbs; i++) {
            const ls_db_cfg *d = &cfg->dbs[i];
            fp_add(fp, fpn, "db %s %s %s\n", S(d->path), S(d->rel_path), S(d->meta_path));
            for (size_t j = 0; j < d->n_replicas; j++) {
                const ls_replica_cfg *r = &d->replicas[j];
                fp_add(fp, fpn, "  %s %s %s %s %s %s %" PRId64 " %zu\n", S(r->name), S(r->type),
                       S(r->path), S(r->bucket), S(r->host), S(r->user), r->retention_ms,
                       r->n_age_recipients);
            }
        }
    }
    ls_config_free(cfg);
    if (!rc) {
        /* The command line's form: a database and replica URLs. */
        const char *u[] = {"s3://bkt/x", "sftp://bob@h/y"};
        char db[PATH_MAX];
        snprintf(db, sizeof(db), "%s/cli.db", p->dir);
        cfg = NULL;
        rc = ls_config_open_urls(p->ctx, db, u, 2, &cfg);
        if (!rc)
            fp_add(fp, fpn, "urls %zu %s\n", ls_config_replica_count(cfg, 0),
                   ls_config_replica_type(cfg, 0, 1));
        ls_config_free(cfg);
    }
    return rc;
}

/* ---- object names ---- */

static int run_names(void *sh, ls_ctx **ectx, char *fp, size_t fpn)
{
    plain *p = sh;
    char key[LS_LAYOUT_KEY_MAX], gen[LS_GEN_LEN + 1] = "0123456789abcdef";
    ls_key k;
    int64_t ms = 0;
    *ectx = p->ctx;
    ls_err_clear(p->ctx);
    ls_layout_snapshot_key(key, sizeof(key), gen, 7);
    fp_add(fp, fpn, "%s %d\n", key, ls_layout_parse(key, &k));
    ls_layout_wal_key(key, sizeof(key), gen, 7, 4152);
    fp_add(fp, fpn, "%s %d %u %u\n", key, ls_layout_parse(key, &k), k.index, k.offset);
    ls_layout_pos_str(key, sizeof(key), gen, 7, 4152);
    fp_add(fp, fpn, "%s %d\n", key, ls_layout_parse("generations/x/wal/1.wal", NULL));
    fp_add(fp, fpn, "%d %" PRId64 "\n", ls_duration_parse("1h30m", &ms), ms);
    return 0;
}

/* ---- a WAL scan ---- */

typedef struct walsh {
    plain p;
    char wal[PATH_MAX + 8];
    sqlite3 *db; /* keeps the WAL from being checkpointed away */
} walsh;

static void exec_sql(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", sql, err ? err : "?");
    sqlite3_free(err);
}

static void wal_init(void **sh)
{
    walsh *w = calloc(1, sizeof(*w));
    char db[PATH_MAX];
    plain *p = NULL;
    assert_non_null(w);
    plain_init((void **)&p);
    w->p = *p;
    free(p);
    snprintf(db, sizeof(db), "%s/w.db", w->p.dir);
    snprintf(w->wal, sizeof(w->wal), "%s-wal", db);
    assert_int_equal(sqlite3_open(db, &w->db), SQLITE_OK);
    exec_sql(w->db, "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;"
                    "CREATE TABLE t(v BLOB)");
    for (int i = 0; i < 20; i++)
        exec_sql(w->db, "INSERT INTO t VALUES (randomblob(3000))");
    *sh = w;
}

static void wal_fini(void *sh)
{
    walsh *w = sh;
    sqlite3_close(w->db);
    rm_rf(w->p.dir);
    ls_ctx_free(w->p.ctx);
    free(w);
}

static int run_wal(void *sh, ls_ctx **ectx, char *fp, size_t fpn)
{
    walsh *w = sh;
    ls_wal_scan s;
    int fd = open(w->wal, O_RDONLY | O_CLOEXEC);
    *ectx = w->p.ctx;
    ls_err_clear(w->p.ctx);
    assert_true(fd >= 0);
    ls_wal_scan_init(&s, 1);
    int rc = ls_wal_scan_fd(w->p.ctx, &s, fd, w->wal);
    if (!rc) {
        const ls_wal_page *pg = ls_wal_scan_lookup(&s, 2);
        fp_add(fp, fpn, "%" PRIu64 " %" PRIu64 " %u %zu %d\n", s.commit_frame, s.commits,
               s.commit_dbsize, s.map_len, pg != NULL);
    }
    ls_wal_scan_free(&s);
    close(fd);
    return rc;
}

/* ---- one-shot backup, verify, info, restore ---- */

typedef struct oneshot {
    plain p;
    char db[PATH_MAX];
    char out[PATH_MAX]; /* this N's output directory */
    sqlite3 *app;
} oneshot;

static void oneshot_init(void **sh)
{
    oneshot *o = calloc(1, sizeof(*o));
    plain *p = NULL;
    assert_non_null(o);
    plain_init((void **)&p);
    o->p = *p;
    free(p);
    snprintf(o->db, sizeof(o->db), "%s/src.db", o->p.dir);
    snprintf(o->out, sizeof(o->out), "%s/out", o->p.dir);
    assert_int_equal(sqlite3_open(o->db, &o->app), SQLITE_OK);
    exec_sql(o->app, "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;"
                     "CREATE TABLE t(v BLOB)");
    for (int i = 0; i < 10; i++)
        exec_sql(o->app, "INSERT INTO t VALUES (randomblob(2000))");
    *sh = o;
}

static void oneshot_fini(void *sh)
{
    oneshot *o = sh;
    sqlite3_close(o->app);
    rm_rf(o->p.dir);
    ls_ctx_free(o->p.ctx);
    free(o);
}

static void oneshot_setup(void *sh)
{
    oneshot *o = sh;
    rm_rf(o->out);
    assert_int_equal(mkdir(o->out, 0700), 0);
}

static int run_oneshot(void *sh, ls_ctx **ectx, char *fp, size_t fpn)
{
    oneshot *o = sh;
    char dest[PATH_MAX + 16], rest[PATH_MAX + 16];
    ls_backup_result br = {0};
    ls_verify_result vr = {0};
    ls_info_result ir = {0};
    ls_restore_file_result rr = {0};
    *ectx = o->p.ctx;
    ls_err_clear(o->p.ctx);
    snprintf(dest, sizeof(dest), "%s/b.db", o->out);
    snprintf(rest, sizeof(rest), "%s/r.db", o->out);
    int rc = ls_backup(o->p.ctx, o->db, dest, NULL, &br);
    if (!rc)
        rc = ls_verify(o->p.ctx, dest, br.sha256, &vr);
    if (!rc)
        rc = ls_info(o->p.ctx, o->db, &ir);
    if (!rc)
        rc = ls_restore_file(o->p.ctx, dest, rest, 0, &rr);
    if (!rc)
        fp_add(fp, fpn, "%" PRIu64 " %u %d %d %s %" PRIu64 "\n", br.page_count, br.page_size,
               vr.sha256_match, vr.integrity_ok, ir.journal_mode, rr.size_bytes);
    ls_backup_result_free(&br);
    ls_verify_result_free(&vr);
    ls_info_result_free(&ir);
    ls_restore_file_result_free(&rr);
    return rc;
}

/* A published file is whole: it passes verify. Then the work again, in a fresh directory. */
static void check_oneshot(void *sh, int rc)
{
    oneshot *o = sh;
    const char *allowed[] = {"b.db", "r.db"};
    char path[PATH_MAX + 16], fp[1024] = "";
    ls_ctx *ectx = NULL;
    assert_only(o->out, allowed, 2);
    for (size_t i = 0; i < 2; i++) {
        ls_verify_result vr = {0};
        snprintf(path, sizeof(path), "%s/%s", o->out, allowed[i]);
        if (!fx_exists(path))
            continue;
        if (ls_verify(o->p.ctx, path, NULL, &vr) != 0 || !vr.integrity_ok)
            fail_msg("%s published but not whole: %s", path, ls_errmsg(o->p.ctx));
        ls_verify_result_free(&vr);
    }
    oneshot_setup(sh);
    if ((rc = run_oneshot(sh, &ectx, fp, sizeof(fp))) != 0)
        fail_msg("oneshot again: %d %s", rc, ls_errmsg(ectx));
}

/* ---- replication on the in-memory store (repl_fixture.h) ---- */

/* The fixture's fx_setup, in the scenarios' base directory and without the replica worker. */
static fx *af_fx_new(void)
{
    fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "%s/ls-allocfail-XXXXXX", base_dir());
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof(f->db), "%s/db", f->dir);
    assert_int_equal(ls_ctx_new(&f->ctx), 0);
    fx_app_open(f);
    fx_exec(f, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    fx_insert(f, 20, 300);
    assert_int_equal(ls_storage_mem_open(f->ctx, "mem", &f->mem), 0);
    return f;
}

static void af_fx_free(fx *f)
{
    if (!f)
        return;
    ls_replica_free(f->r);
    ls_source_close(f->src);
    sqlite3_close(f->app);
    ls_storage_close(f->mem);
    ls_ctx_free(f->ctx);
    rm_rf(f->dir);
    free(f);
}

/* The fixture attached, with a replica worker that shipped the database. */
static fx *af_fx_shipped(const ls_replica_opts *ro)
{
    ls_source_opts so = {.ckpt_interval_ms = 0};
    fx *f = af_fx_new();
    assert_int_equal(fx_source_open(f->ctx, f->db, &so, &f->src), 0);
    f->r = fx_replica_new(f, ro, &f->fault);
    fx_step(f);
    return f;
}

/* Restore the latest state from the store into a new file; 0 or the failure. */
static int af_restore(fx *f, char *out, size_t n)
{
    ls_restore_result res;
    ls_restore_plan o = fx_ropts();
    o.parallelism = 4;
    return fx_restore_from(f, f->mem, &o, out, n, &res);
}

/* Sync and step cleanly until the replica holds everything the spool has. */
static void af_catch_up(fx *f)
{
    int grew = 0, rc = 0;
    for (int i = 0; i < 5; i++) {
        if ((rc = ls_source_sync(f->src, &grew)) != 0)
            continue;
        if ((rc = ls_replica_step(f->r)) == 0 && fx_has(f))
            return;
    }
    fail_msg("no catching up after the failure: %d %s / %s", rc, ls_errmsg(f->ctx),
             ls_errmsg(f->r->ctx));
}

/* ---- a source attaching, a replica's first step ---- */

typedef struct attach {
    fx *f;
} attach;

static void attach_init(void **sh)
{
    *sh = calloc(1, sizeof(attach));
    assert_non_null(*sh);
}

static void attach_fini(void *sh)
{
    free(sh);
}

static void attach_setup(void *sh)
{
    ((attach *)sh)->f = af_fx_new();
}

static void attach_teardown(void *sh)
{
    attach *a = sh;
    af_fx_free(a->f);
    a->f = NULL;
}

static int run_attach(void *sh, ls_ctx **ectx, char *fp, size_t fpn)
{
    fx *f = ((attach *)sh)->f;
    ls_source_opts so = {.ckpt_interval_ms = 0};
    ls_storage *v = NULL;
    ls_replica_opts ro = {.name = "mem"};
    *ectx = f->ctx;
    ls_err_clear(f->ctx);
    int rc = fx_source_open(f->ctx, f->db, &so, &f->src);
    if (!rc && (rc = ls_storage_view_open(f->ctx, f->mem, &v)) == 0)
        rc = ls_replica_new(f->ctx, f->src, v, &ro, &f->r); /* owns v, even on failure */
    if (!rc) {
        *ectx = f->r->ctx;
        rc = ls_replica_step(f->r);
    }
    return rc;
}

/* Whatever the failed run left, a source and a replica opened now ship the database whole. */
static void check_attach(void *sh, int rc)
{
    fx *f = ((attach *)sh)->f;
    ls_source_opts so = {.ckpt_interval_ms = 0};
    char out[256];
    if (!f->src)
        assert_int_equal(fx_source_open(f->ctx, f->db, &so, &f->src), 0);
    if (!f->r)
        f->r = fx_replica_new(f, NULL, &f->fault);
    af_catch_up(f);
    fx_assert_restores_live(f);
    /* And after a restart of both (what the failed attach left in the spool is read back). */
    ls_replica_free(f->r);
    ls_source_close(f->src);
    f->r = NULL;
    f->src = NULL;
    assert_int_equal(fx_source_open(f->ctx, f->db, &so, &f->src), 0);
    f->r = fx_replica_new(f, NULL, &f->fault);
    fx_insert(f, 3, 300);
    af_catch_up(f);
    assert_int_equal(af_restore(f, out, sizeof(out)), 0);
    fx_assert_restores_live(f);
}

/* ---- a restart: the source and a replica attach to a spool that has a generation ---- */

typedef struct reattach {
    fx *f;
    char gen[LS_GEN_LEN + 1]; /* the spool's generation before the restart */
} reattach;

static void reattach_setup(void *sh)
{
    reattach *a = sh;
    a->f = af_fx_shipped(NULL);
    ls_strlcpy(a->gen, a->f->src->spool.gen, sizeof(a->gen));
    ls_replica_free(a->f->r);
    ls_source_close(a->f->src);
    a->f->r = NULL;
    a->f->src = NULL;
    fx_insert(a->f, 2, 300); /* the application went on while it was down */
}

static int run_reattach(void *sh, ls_ctx **ectx, char *fp, size_t fpn)
{
    reattach *a = sh;
    int rc = run_attach(sh, ectx, fp, fpn);
    if (a->f->src)
        fp_add(fp, fpn, "gen %s\n", a->f->src->spool.gen);
    return rc;
}

/* A restart in want of memory fails or goes on with the spool's generation: a new
 * generation would drop what the spool held for the replicas. */
static void check_reattach(void *sh, int rc)
{
    reattach *a = sh;
    (void)rc;
    if (a->f->src && strcmp(a->f->src->spool.gen, a->gen) != 0)
        fail_msg("reattach: the source started generation %s, the spool had %s",
                 a->f->src->spool.gen, a->gen);
    check_attach(sh, rc);
    if (strcmp(a->f->src->spool.gen, a->gen) != 0)
        fail_msg("reattach: generation %s after the failed restart, the spool had %s",
                 a->f->src->spool.gen, a->gen);
}

/* ---- a replication cycle: commit, sync, ship, checkpoint, snapshot ---- */

typedef struct cycle {
    fx *f;
    uint8_t *img[3]; /* the database before the run and after each commit */
    size_t nimg[3];
} cycle;

static void reattach_init(void **sh)
{
    *sh = calloc(1, sizeof(reattach));
    assert_non_null(*sh);
}

static void cycle_init(void **sh)
{
    *sh = calloc(1, sizeof(cycle));
    assert_non_null(*sh);
}

static void cycle_setup(void *sh)
{
    cycle *c = sh;
    c->f = af_fx_shipped(NULL);
    c->img[0] = fx_image(c->f, &c->nimg[0]);
}

static void cycle_teardown(void *sh)
{
    cycle *c = sh;
    af_fx_free(c->f);
    for (int i = 0; i < 3; i++) {
        free(c->img[i]);
        c->img[i] = NULL;
    }
}

/* The live image, taken by the test itself (not counted). */
static uint8_t *exempt_image(fx *f, size_t *n)
{
    alloc_fail_exempt(1);
    uint8_t *img = fx_image(f, n);
    alloc_fail_exempt(0);
    return img;
}

static int run_cycle(void *sh, ls_ctx **ectx, char *fp, size_t fpn)
{
    cycle *c = sh;
    fx *f = c->f;
    int grew = 0, busy = 0, rc;
    *ectx = f->ctx;
    ls_err_clear(f->ctx);
    ls_err_clear(f->r->ctx);
    fx_insert(f, 5, 300);
    c->img[1] = exempt_image(f, &c->nimg[1]);
    if ((rc = ls_source_sync(f->src, &grew)) != 0)
        return rc;
    *ectx = f->r->ctx;
    if ((rc = ls_replica_step(f->r)) != 0)
        return rc;
    *ectx = f->ctx;
    if ((rc = ls_source_checkpoint(f->src, &busy)) != 0)
        return rc;
    fx_insert(f, 5, 300);
    c->img[2] = exempt_image(f, &c->nimg[2]);
    if ((rc = ls_source_sync(f->src, &grew)) != 0)
        return rc;
    /* A snapshot due: the step ships the new index, then snapshots it. */
    f->r->o.snapshot_interval_ms = 1;
    f->r->last_snapshot_ms = 0;
    *ectx = f->r->ctx;
    rc = ls_replica_step(f->r);
    f->r->o.snapshot_interval_ms = 0;
    if (!rc)
        fp_add(fp, fpn, "%d\n", fx_has(f));
    return rc;
}

/*
 * The replica restores to a state the database had (before the run, or after
 * one of its commits); after a clean cycle, to the live database.
 */
static void check_cycle(void *sh, int rc)
{
    cycle *c = sh;
    fx *f = c->f;
    char out[256];
    size_t n = 0;
    int rrc = af_restore(f, out, sizeof(out));
    if (rrc)
        fail_msg("cycle: restore after the failure: %d %s", rrc, ls_errmsg(f->ctx));
    uint8_t *got = fx_file(out, &n);
    int same = 0;
    for (int i = 0; i < 3 && !same; i++)
        same = c->img[i] && c->nimg[i] == n && memcmp(c->img[i], got, n) == 0;
    free(got);
    if (!same)
        fail_msg("cycle: the replica restores to a state the database never had (rc %d)", rc);
    fx_insert(f, 2, 300);
    af_catch_up(f);
    fx_assert_restores_live(f);
}

/* ---- the catalog, a restore from the store ---- */

typedef struct store {
    fx *f;
    uint8_t *img[2]; /* the end of index 0, the latest state */
    size_t nimg[2];
    char out[PATH_MAX]; /* the file replica (target scenario; "other*" is no
                           leftover to fx_assert_no_leftovers) */
} store;

/* A replica with two indexes of several segments each, a snapshot in each. */
static void store_init(void **sh)
{
    store *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    fx *f = s->f = af_fx_shipped(NULL);
    fx_commit_ship(f, 3);
    fx_commit_ship(f, 4);
    s->img[0] = fx_image(f, &s->nimg[0]);
    fx_next_index(f);
    fx_step(f);
    fx_commit_ship(f, 5);
    f->r->o.snapshot_interval_ms = 1;
    f->r->last_snapshot_ms = 0;
    fx_commit_ship(f, 2);
    f->r->o.snapshot_interval_ms = 0;
    fx_commit_ship(f, 1);
    s->img[1] = fx_image(f, &s->nimg[1]);
    *sh = s;
}

static void store_fini(void *sh)
{
    store *s = sh;
    af_fx_free(s->f);
    free(s->img[0]);
    free(s->img[1]);
    free(s);
}

static int run_catalog(void *sh, ls_ctx **ectx, char *fp, size_t fpn)
{
    store *s = sh;
    ls_catalog cat;
    *ectx = s->f->ctx;
    ls_err_clear(s->f->ctx);
    int rc = ls_catalog_load(s->f->ctx, s->f->mem, NULL, &cat);
    if (!rc) {
        for (size_t i = 0; i < cat.n; i++) {
            const ls_cat_gen *g = &cat.gens[i];
            fp_add(fp, fpn, "%s %zu %zu:", g->name, g->nsnap, g->nseg);
            for (size_t j = 0; j < g->nseg; j++)
                fp_add(fp, fpn, " %u/%u", g->segs[j].index, g->segs[j].offset);
            fp_add(fp, fpn, "\n");
        }
        ls_catalog_free(&cat);
    }
    return rc;
}

/* The latest state and the end of index 0, four downloads at a time. */
static int run_restore(void *sh, ls_ctx **ectx, char *fp, size_t fpn)
{
    store *s = sh;
    fx *f = s->f;
    char out[2][256];
    ls_restore_result res;
    ls_restore_plan o = fx_ropts();
    *ectx = f->ctx;
    ls_err_clear(f->ctx);
    o.parallelism = 4;
    int rc = fx_restore_from(f, f->mem, &o, out[0], sizeof(out[0]), &res);
    o.index = 0;
    if (!rc)
        rc = fx_restore_from(f, f->mem, &o, out[1], sizeof(out[1]), &res);
    for (int i = 0; i < 2 && !rc; i++) {
        alloc_fail_exempt(1);
        fx_assert_same(out[i], s->img[1 - i], s->nimg[1 - i]);
        alloc_fail_exempt(0);
    }
    if (!rc)
        fp_add(fp, fpn, "ok\n");
    return rc;
}

/* A failed restore leaves nothing at its output (fx_assert_no_leftovers: no temp files). */
static void check_restore(void *sh, int rc)
{
    store *s = sh;
    fx *f = s->f;
    char out[256], fp[64] = "";
    ls_ctx *ectx = NULL;
    fx_assert_no_leftovers(f);
    if (rc) {
        snprintf(out, sizeof(out), "%s/restored-%d.db", f->dir, f->nrestore);
        assert_false(fx_exists(out));
    }
    if ((rc = run_restore(sh, &ectx, fp, sizeof(fp))) != 0)
        fail_msg("restore again: %d %s", rc, ls_errmsg(ectx));
    /* The outputs go: thousands of N would fill the directory. */
    for (int i = 1; i <= f->nrestore; i++) {
        snprintf(out, sizeof(out), "%s/restored-%d.db", f->dir, i);
        unlink(out);
    }
}

/* ---- the public target API on a file replica ---- */

static void target_init(void **sh)
{
    store_init(sh);
    store *s = *sh;
    ls_storage *file = NULL;
    ls_storage_opts so = {0};
    ls_obj_list l = fx_list(s->f, "");
    snprintf(s->out, sizeof(s->out), "%s/other-replica", s->f->dir);
    so.path = s->out;
    so.name = "file";
    assert_int_equal(ls_storage_file_open(s->f->ctx, &so, &file), 0);
    for (size_t i = 0; i < l.n; i++) {
        uint8_t *b = NULL;
        size_t n = 0;
        assert_int_equal(ls_storage_get_buf(s->f->mem, s->f->ctx, l.v[i].key, &b, &n), 0);
        assert_int_equal(ls_storage_put_buf(file, s->f->ctx, l.v[i].key, b, n), 0);
        free(b);
    }
    ls_obj_list_free(&l);
    ls_storage_close(file);
}

static int run_target(void *sh, ls_ctx **ectx, char *fp, size_t fpn)
{
    store *s = sh;
    fx *f = s->f;
    char url[PATH_MAX + 16], out[256];
    ls_target *t = NULL;
    ls_replica_listing *l = NULL;
    ls_restore_result res;
    ls_restore_options o = LS_RESTORE_OPTIONS_INIT;
    *ectx = f->ctx;
    ls_err_clear(f->ctx);
    snprintf(url, sizeof(url), "file://%s", s->out);
    snprintf(out, sizeof(out), "%s/restored-%d.db", f->dir, ++f->nrestore);
    o.parallelism = 2;
    int rc = ls_target_open(f->ctx, url, NULL, &t);
    if (!rc)
        rc = ls_target_list(f->ctx, t, 0, NULL, &l);
    if (!rc)
        rc = ls_restore(f->ctx, t, out, &o, &res);
    if (!rc) {
        alloc_fail_exempt(1);
        fx_assert_same(out, s->img[1], s->nimg[1]);
        alloc_fail_exempt(0);
        fp_add(fp, fpn, "%zu %zu %zu\n", l->n, l->generations[0].nsnapshots,
               l->generations[0].nsegments);
    }
    ls_replica_listing_free(l);
    ls_target_free(t);
    return rc;
}

static void check_target(void *sh, int rc)
{
    store *s = sh;
    fx *f = s->f;
    char out[256], fp[256] = "";
    ls_ctx *ectx = NULL;
    const char *allowed[] = {"generations"};
    fx_assert_no_leftovers(f);
    assert_only(s->out, allowed, 1);
    if (rc) {
        snprintf(out, sizeof(out), "%s/restored-%d.db", f->dir, f->nrestore);
        assert_false(fx_exists(out));
    }
    if ((rc = run_target(sh, &ectx, fp, sizeof(fp))) != 0)
        fail_msg("target again: %d %s", rc, ls_errmsg(ectx));
    for (int i = 1; i <= f->nrestore; i++) {
        snprintf(out, sizeof(out), "%s/restored-%d.db", f->dir, i);
        unlink(out);
    }
}

/* ---- compaction ---- */

typedef struct compact {
    fx *f;
    uint8_t *img[2]; /* the end of index 0, of index 1 */
    size_t nimg[2];
    int64_t now; /* the pass's clock */
} compact;

static const ls_replica_opts compact_ro = {
    .name = "mem", .compact_after_ms = 1000, .compact_interval_ms = 1000};

static void compact_init(void **sh)
{
    *sh = calloc(1, sizeof(compact));
    assert_non_null(*sh);
}

/* Indexes 0 and 1 finished with three segments each, uploaded long ago; 2 is current. */
static void compact_setup(void *sh)
{
    compact *c = sh;
    fx *f = c->f = af_fx_shipped(&compact_ro);
    fx_commit_ship(f, 3);
    fx_commit_ship(f, 4);
    c->img[0] = fx_image(f, &c->nimg[0]);
    fx_next_index(f);
    fx_step(f);
    fx_commit_ship(f, 5);
    fx_commit_ship(f, 6);
    c->img[1] = fx_image(f, &c->nimg[1]);
    fx_next_index(f);
    fx_step(f);
    fx_set_mtimes(f, "", FX_T0);
    c->now = ls_unix_now_ms();
    f->r->last_compact_ms = c->now - 2000; /* a pass is due */
    f->r->compact_pending = 1;
}

static void compact_teardown(void *sh)
{
    compact *c = sh;
    af_fx_free(c->f);
    free(c->img[0]);
    free(c->img[1]);
    c->img[0] = c->img[1] = NULL;
}

/* A merging pass, then the deleting pass a grace period later. */
static int run_compact(void *sh, ls_ctx **ectx, char *fp, size_t fpn)
{
    compact *c = sh;
    fx *f = c->f;
    *ectx = f->r->ctx;
    ls_err_clear(f->r->ctx);
    int rc = ls_compact_step(f->r, c->now);
    if (!rc)
        rc = ls_compact_step(f->r, c->now + 2000);
    if (!rc)
        fp_add(fp, fpn, "%zu\n", f->r->nmerged);
    return rc;
}

/* Both indexes restore at every moment; passes run cleanly finish the work. */
static void check_compact(void *sh, int rc)
{
    compact *c = sh;
    fx *f = c->f;
    ls_restore_plan o = fx_ropts();
    for (int64_t i = 0; i < 2; i++) {
        o.index = i;
        fx_restore_check(f, &o, c->img[i], c->nimg[i]);
    }
    fx_assert_restores_live(f);
    for (int i = 2; i < 8 && fx_count(f, "generations/") > 4; i++) {
        int prc = ls_compact_step(f->r, c->now + i * 2000);
        if (prc)
            fail_msg("compact again: %d %s", prc, ls_errmsg(f->r->ctx));
    }
    /* the snapshot, 0_0 and 1_0 (merged), 2_0 (fx_next_index's commit) */
    assert_int_equal(fx_count(f, "generations/"), 4);
    for (int64_t i = 0; i < 2; i++) {
        o.index = i;
        fx_restore_check(f, &o, c->img[i], c->nimg[i]);
    }
    fx_assert_restores_live(f);
}

/* ---- the file backend ---- */

static const char payload1[] = "the first object's bytes";

static int run_file(void *sh, ls_ctx **ectx, char *fp, size_t fpn)
{
    plain *p = sh;
    char root[PATH_MAX + 16];
    ls_storage *s = NULL;
    ls_storage_opts o = {0};
    ls_obj_list l = {0};
    ls_obj st;
    uint8_t *big = NULL, *got = NULL;
    size_t n = 0, nbig = 200000;
    const char *dels[] = {"a/one"};
    *ectx = p->ctx;
    ls_err_clear(p->ctx);
    snprintf(root, sizeof(root), "%s/root", p->dir);
    o.path = root;
    o.name = "file";
    alloc_fail_exempt(1);
    big = noise_bytes(nbig, 7);
    alloc_fail_exempt(0);
    int rc = ls_storage_file_open(p->ctx, &o, &s);
    if (!rc)
        rc = ls_storage_put_buf(s, p->ctx, "a/one", payload1, sizeof(payload1));
    if (!rc)
        rc = ls_storage_put_buf(s, p->ctx, "a/b/two", big, nbig);
    if (!rc)
        rc = ls_storage_put_buf(s, p->ctx, "a/b/two", big, nbig / 2); /* replaced */
    if (!rc)
        rc = ls_storage_get_buf(s, p->ctx, "a/b/two", &got, &n);
    if (!rc && (n != nbig / 2 || memcmp(got, big, n) != 0))
        rc = ls_err(p->ctx, LS_ECORRUPT, "a/b/two reads back wrong");
    if (!rc)
        rc = s->list(s, p->ctx, "a/", &l);
    if (!rc)
        rc = s->stat(s, p->ctx, "a/one", &st);
    if (!rc)
        rc = s->del(s, p->ctx, dels, 1);
    if (!rc) {
        ls_obj_list_sort(&l);
        fp_add(fp, fpn, "%zu %s %s %" PRIu64 "\n", l.n, l.n ? l.v[0].key : "-",
               l.n > 1 ? l.v[1].key : "-", st.size);
    }
    ls_obj_list_free(&l);
    ls_storage_close(s);
    free(got);
    free(big);
    return rc;
}

/* Each object is whole or absent, no temp file anywhere; then the work again from empty. */
static void check_file(void *sh, int rc)
{
    plain *p = sh;
    char root[PATH_MAX + 16], path[PATH_MAX + 32], fp[512] = "";
    const char *top[] = {"a"}, *a[] = {"one", "b"}, *b[] = {"two"};
    ls_ctx *ectx = NULL;
    snprintf(root, sizeof(root), "%s/root", p->dir);
    assert_only(root, top, 1);
    snprintf(path, sizeof(path), "%s/a", root);
    assert_only(path, a, 2);
    snprintf(path, sizeof(path), "%s/a/b", root);
    assert_only(path, b, 1);
    snprintf(path, sizeof(path), "%s/a/one", root);
    if (fx_exists(path)) {
        size_t n = 0;
        uint8_t *got = fx_file(path, &n);
        assert_int_equal(n, sizeof(payload1));
        assert_memory_equal(got, payload1, n);
        free(got);
    }
    snprintf(path, sizeof(path), "%s/a/b/two", root);
    if (fx_exists(path)) {
        size_t n = 0;
        uint8_t *got = fx_file(path, &n), *big = noise_bytes(200000, 7);
        assert_true(n == 200000 || n == 100000);
        assert_memory_equal(got, big, n);
        free(got);
        free(big);
    }
    rm_rf(root);
    if ((rc = run_file(sh, &ectx, fp, sizeof(fp))) != 0)
        fail_msg("file again: %d %s", rc, ls_errmsg(ectx));
    rm_rf(root);
}

/* ---- the tests ---- */

static const scen scenarios[] = {
    {"url", plain_init, plain_fini, NULL, NULL, run_url, NULL},
    {"config", config_init, plain_fini, NULL, NULL, run_config, NULL},
    {"names", plain_init, plain_fini, NULL, NULL, run_names, NULL},
    {"wal", wal_init, wal_fini, NULL, NULL, run_wal, NULL},
    {"oneshot", oneshot_init, oneshot_fini, oneshot_setup, NULL, run_oneshot, check_oneshot},
    {"file", plain_init, plain_fini, NULL, NULL, run_file, check_file},
    {"catalog", store_init, store_fini, NULL, NULL, run_catalog, NULL},
    {"restore", store_init, store_fini, NULL, NULL, run_restore, check_restore},
    {"target", target_init, store_fini, NULL, NULL, run_target, check_target},
    {"attach", attach_init, attach_fini, attach_setup, attach_teardown, run_attach, check_attach},
    {"reattach", reattach_init, attach_fini, reattach_setup, attach_teardown, run_reattach,
     check_reattach},
    {"cycle", cycle_init, attach_fini, cycle_setup, cycle_teardown, run_cycle, check_cycle},
    {"compact", compact_init, attach_fini, compact_setup, compact_teardown, run_compact,
     check_compact},
};

static const scen *find_scen(const char *name)
{
    for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
        if (!strcmp(scenarios[i].name, name))
            return &scenarios[i];
    return NULL;
}

#define SCEN_TEST(nm)                                                                              \
    static void test_##nm(void **state)                                                            \
    {                                                                                              \
        (void)state;                                                                               \
        run_scenario(find_scen(#nm));                                                              \
    }

SCEN_TEST(url)
SCEN_TEST(config)
SCEN_TEST(names)
SCEN_TEST(wal)
SCEN_TEST(oneshot)
SCEN_TEST(file)
SCEN_TEST(catalog)
SCEN_TEST(restore)
SCEN_TEST(target)
SCEN_TEST(attach)
SCEN_TEST(reattach)
SCEN_TEST(cycle)
SCEN_TEST(compact)

/* The hook itself: the Nth allocation fails once, exempt threads are not counted. */
static void test_hook(void **state)
{
    (void)state;
    alloc_fail_arm(2);
    void *a = malloc(8), *b = malloc(8), *c = strdup("x");
    assert_non_null(a);
    assert_null(b);
    assert_int_equal(errno, ENOMEM);
    assert_non_null(c);
    assert_true(alloc_fail_fired());
    assert_int_equal(alloc_fail_seen(), 3);
    alloc_fail_arm(1);
    alloc_fail_exempt(1);
    void *d = calloc(1, 8);
    alloc_fail_exempt(0);
    assert_non_null(d);
    assert_false(alloc_fail_fired());
    assert_null(realpath(".", NULL));
    alloc_fail_disarm();
    free(a);
    free(c);
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hook),    cmocka_unit_test(test_url),
        cmocka_unit_test(test_config),  cmocka_unit_test(test_names),
        cmocka_unit_test(test_wal),     cmocka_unit_test(test_oneshot),
        cmocka_unit_test(test_file),    cmocka_unit_test(test_catalog),
        cmocka_unit_test(test_restore), cmocka_unit_test(test_target),
        cmocka_unit_test(test_attach),  cmocka_unit_test(test_reattach),
        cmocka_unit_test(test_cycle),
        cmocka_unit_test(test_compact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
