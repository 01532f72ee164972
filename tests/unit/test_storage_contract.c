/*
 * test_storage_contract.c - one suite of contract cases (storage.h) run
 * against every backend: the file backend in a temp directory, the
 * in-memory fake, the fault wrapper in pass-through mode (around a file
 * backend), and the remote backends against the real test servers on
 * 127.0.0.1 (S3: s3rver, SFTP: a private sshd, Azure: azurite). Then what
 * only one of them has: the fault wrapper's injections, the file backend's
 * temp files, directories, modes, root and messages, and the type table of
 * ls_storage_open.
 *
 * The servers' settings come from the KEY=VALUE file $LS_TEST_SERVERS,
 * written by tests/servers/testservers.py (a ctest fixture). Without it the
 * remote groups are not run and the summary says so; under ctest it is
 * always set, so a server that failed to start fails this test. Each remote
 * case works under a fresh key prefix of its own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "storage.h"
#include "storage_test.h"
#include "io.h"
#include "unit_files.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { KIND_FILE, KIND_MEM, KIND_FAULT, KIND_S3, KIND_SFTP, KIND_ABS };

typedef struct fixture {
    int kind;      /* KIND_*: the backend under test */
    char dir[64];  /* temp directory */
    char root[256]; /* file replica root: <dir>/replica (created by the first put);
                      remote: the case's key prefix or remote directory */
    ls_ctx *ctx;
    ls_storage *s; /* backend under test */
    ls_storage *fault; /* the fault wrapper inside s (retry tests), not owned */
} fixture;

static ls_storage *open_file(fixture *f)
{
    ls_storage *s = NULL;
    ls_storage_opts o = {0};
    o.path = f->root;
    o.name = "file";
    assert_int_equal(ls_storage_file_open(f->ctx, &o, &s), 0);
    return s;
}

/* ---- the remote servers' settings ---- */

/* A storage call that must succeed; on failure the context's message says why. */
#define OK(f, call)                                                                                \
    do {                                                                                           \
        int ok_rc_ = (call);                                                                       \
        if (ok_rc_ != 0)                                                                           \
            fail_msg("%s: %d: %s", #call, ok_rc_, ls_errmsg((f)->ctx));                            \
    } while (0)

static char *server_env[64][2]; /* KEY, VALUE from $LS_TEST_SERVERS */
static size_t server_nenv;

static void load_server_env(void)
{
    const char *path = getenv("LS_TEST_SERVERS");
    char line[2048];
    FILE *fp = path ? fopen(path, "r") : NULL;
    if (path && !fp) {
        fprintf(stderr, "LS_TEST_SERVERS=%s cannot be read: did servers.start fail?\n", path);
        exit(1);
    }
    while (fp && fgets(line, sizeof(line), fp) && server_nenv < 64) {
        line[strcspn(line, "\n")] = '\0';
        char *eq = strchr(line, '=');
        if (!eq || line[0] == '#')
            continue;
        *eq = '\0';
        server_env[server_nenv][0] = strdup(line);
        server_env[server_nenv][1] = strdup(eq + 1);
        server_nenv++;
    }
    if (fp)
        fclose(fp);
}

static const char *senv(const char *key)
{
    for (size_t i = 0; i < server_nenv; i++)
        if (strcmp(server_env[i][0], key) == 0)
            return server_env[i][1];
    fail_msg("%s is not in $LS_TEST_SERVERS", key);
    return NULL;
}

static ls_storage *open_remote(fixture *f)
{
    static unsigned seq;
    ls_storage_opts o = {0};
    ls_storage *s = NULL;
    int rc;

    o.timeout_ms = 20000;
    if (f->kind == KIND_S3) {
        snprintf(f->root, sizeof(f->root), "contract/%d-%u", (int)getpid(), seq++);
        o.name = "s3";
        o.bucket = senv("LS_TEST_S3_BUCKET");
        o.endpoint = senv("LS_TEST_S3_ENDPOINT");
        o.region = senv("LS_TEST_S3_REGION");
        o.force_path_style = 1;
        o.access_key_id = senv("LS_TEST_S3_ACCESS_KEY");
        o.secret_access_key = senv("LS_TEST_S3_SECRET_KEY");
        o.path = f->root;
        rc = ls_storage_s3_open(f->ctx, &o, &s);
    } else if (f->kind == KIND_SFTP) {
        snprintf(f->root, sizeof(f->root), "%s/contract/%d-%u", senv("LS_TEST_SFTP_ROOT"),
                 (int)getpid(), seq++);
        o.name = "sftp";
        o.host = senv("LS_TEST_SFTP_HOST");
        o.user = senv("LS_TEST_SFTP_USER");
        o.key_path = senv("LS_TEST_SFTP_KEY");
        o.known_hosts = senv("LS_TEST_SFTP_KNOWN_HOSTS");
        o.path = f->root;
        rc = ls_storage_sftp_open(f->ctx, &o, &s);
    } else {
        snprintf(f->root, sizeof(f->root), "contract/%d-%u", (int)getpid(), seq++);
        o.name = "abs";
        o.endpoint = senv("LS_TEST_ABS_ENDPOINT");
        o.account_name = senv("LS_TEST_ABS_ACCOUNT");
        o.account_key = senv("LS_TEST_ABS_KEY");
        o.bucket = senv("LS_TEST_ABS_CONTAINER");
        o.path = f->root;
        rc = ls_storage_abs_open(f->ctx, &o, &s);
    }
    if (rc != 0)
        fail_msg("open: %s", ls_errmsg(f->ctx));
    return s;
}

static int setup_kind(void **state, int kind)
{
    fixture *f = calloc(1, sizeof(*f));
    f->kind = kind;
    strcpy(f->dir, "/tmp/ls-unit-storage-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->root, sizeof(f->root), "%s/replica", f->dir);
    assert_int_equal(ls_ctx_new(&f->ctx), 0);
    if (kind == KIND_S3 || kind == KIND_SFTP || kind == KIND_ABS) {
        f->s = open_remote(f);
    } else if (kind == KIND_MEM) {
        assert_int_equal(ls_storage_mem_open(f->ctx, "mem", &f->s), 0);
    } else if (kind == KIND_FAULT) {
        assert_int_equal(ls_storage_fault_open(f->ctx, open_file(f), &f->s), 0);
    } else {
        f->s = open_file(f);
    }
    *state = f;
    return 0;
}

static int setup_file(void **state)
{
    return setup_kind(state, KIND_FILE);
}

static int setup_mem(void **state)
{
    return setup_kind(state, KIND_MEM);
}

static int setup_fault(void **state)
{
    return setup_kind(state, KIND_FAULT);
}

static int setup_s3(void **state)
{
    return setup_kind(state, KIND_S3);
}

static int setup_sftp(void **state)
{
    return setup_kind(state, KIND_SFTP);
}

static int setup_abs(void **state)
{
    return setup_kind(state, KIND_ABS);
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[128];
    ls_storage_close(f->s);
    ls_ctx_free(f->ctx);
    snprintf(cmd, sizeof(cmd), "chmod -R u+rwx %s; rm -rf %s", f->dir, f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* ---- helpers ---- */

/* A reader over memory returning odd-sized pieces, optionally failing at `fail_at`. */
typedef struct odd_src {
    const uint8_t *p;
    size_t n, pos, turn;
    size_t fail_at; /* fail with LS_EIO once this many bytes went out; SIZE_MAX: never */
} odd_src;

static int64_t odd_read(void *ud, uint8_t *buf, size_t n)
{
    static const size_t sizes[] = {1, 7, 4093, 65536, 3, 100000, 17, 65535};
    odd_src *s = ud;
    if (s->pos >= s->fail_at)
        return LS_EIO;
    size_t k = sizes[s->turn++ % (sizeof(sizes) / sizeof(sizes[0]))];
    if (k > n)
        k = n;
    if (k > s->n - s->pos)
        k = s->n - s->pos;
    if (k > s->fail_at - s->pos)
        k = s->fail_at - s->pos;
    memcpy(buf, s->p + s->pos, k);
    s->pos += k;
    return (int64_t)k;
}

/* A sink collecting into a buffer, recording the largest chunk. */
typedef struct sink {
    ls_buf b;
    size_t max_chunk;
} sink;

static int sink_write(void *ud, const uint8_t *p, size_t n)
{
    sink *k = ud;
    ls_writer w;
    if (n > k->max_chunk)
        k->max_chunk = n;
    ls_writer_buf(&w, &k->b);
    return w.write(w.ud, p, n);
}

static void put(fixture *f, const char *key, const void *p, size_t n)
{
    if (ls_storage_put_buf(f->s, f->ctx, key, p, n) != 0)
        fail_msg("put %s: %s", key, ls_errmsg(f->ctx));
}

static void put_str(fixture *f, const char *key, const char *s)
{
    put(f, key, s, strlen(s));
}

/* Get [off, off+len) into a sink; returns the code. */
static int get_range(fixture *f, const char *key, uint64_t off, int64_t len, sink *k)
{
    ls_writer w = {sink_write, k};
    return f->s->get(f->s, f->ctx, key, off, len, &w);
}

static void expect_content(fixture *f, const char *key, const void *p, size_t n)
{
    uint8_t *got = NULL;
    size_t gn = 0;
    if (ls_storage_get_buf(f->s, f->ctx, key, &got, &gn) != 0)
        fail_msg("get %s: %s", key, ls_errmsg(f->ctx));
    assert_int_equal(gn, n);
    if (n)
        assert_memory_equal(got, p, n);
    free(got);
}

static void expect_missing(fixture *f, const char *key)
{
    ls_obj o;
    uint8_t *got = NULL;
    size_t gn = 0;
    assert_int_equal(f->s->stat(f->s, f->ctx, key, &o), LS_ENOENT);
    assert_int_equal(ls_storage_get_buf(f->s, f->ctx, key, &got, &gn), LS_ENOENT);
    assert_null(got);
}

/* List prefix; the keys, sorted and joined with ',', into out. */
static void list_keys(fixture *f, const char *prefix, char *out, size_t outsz)
{
    ls_obj_list l = {0};
    if (f->s->list(f->s, f->ctx, prefix, &l) != 0)
        fail_msg("list \"%s\": %s", prefix, ls_errmsg(f->ctx));
    ls_obj_list_sort(&l);
    out[0] = '\0';
    for (size_t i = 0; i < l.n; i++) {
        strncat(out, l.v[i].key, outsz - strlen(out) - 1);
        if (i + 1 < l.n)
            strncat(out, ",", outsz - strlen(out) - 1);
    }
    ls_obj_list_free(&l);
}

static size_t list_count(fixture *f, const char *prefix)
{
    ls_obj_list l = {0};
    OK(f, f->s->list(f->s, f->ctx, prefix, &l));
    size_t n = l.n;
    ls_obj_list_free(&l);
    return n;
}

/* Count directory entries under path (recursively) whose name ends in ".tmp". */
static int count_tmp_files(const char *path)
{
    DIR *d = opendir(path);
    int n = 0;
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char sub[1024];
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        size_t len = strlen(e->d_name);
        if (len > 4 && !strcmp(e->d_name + len - 4, ".tmp"))
            n++;
        snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
        n += count_tmp_files(sub);
    }
    closedir(d);
    return n;
}

static int has_file_root(const fixture *f)
{
    /* the SFTP server is local: its remote directory can be looked at too */
    return f->kind == KIND_FILE || f->kind == KIND_FAULT || f->kind == KIND_SFTP;
}

/* ---- the retrying wrapper (fault wrapper inside, file backend at the bottom) ---- */

static int setup_retry(void **state)
{
    setup_kind(state, KIND_FAULT);
    fixture *f = *state;
    f->fault = f->s;
    assert_int_equal(ls_storage_retry_open(f->ctx, f->fault, 4, &f->s), 0);
    return 0;
}

static void t_retry_resumes_get(void **state)
{
    fixture *f = *state;
    uint8_t *data = noise_bytes(300000, 23);
    put(f, "g/obj", data, 300000);
    /* Two cuts mid-transfer: the third try delivers the rest, nothing twice. */
    ls_fault cut = {LS_FAULT_GET, 0, 2, LS_ENET, 70000, LS_FAULT_MODE_FAIL, 0};
    ls_storage_fault_set(f->fault, &cut);
    sink k = {0};
    assert_int_equal(get_range(f, "g/obj", 0, -1, &k), 0);
    assert_int_equal(k.b.n, 300000);
    assert_memory_equal(k.b.p, data, 300000);
    assert_int_equal(ls_storage_fault_calls(f->fault, LS_FAULT_GET), 3);
    ls_buf_free(&k.b);
    /* A range resumes within the range. */
    ls_storage_fault_set(f->fault, &cut);
    assert_int_equal(get_range(f, "g/obj", 1000, 150000, &k), 0);
    assert_int_equal(k.b.n, 150000);
    assert_memory_equal(k.b.p, data + 1000, 150000);
    ls_buf_free(&k.b);
    /* More failures than tries: the last failure comes back. */
    ls_fault down = {LS_FAULT_GET, 0, -1, LS_ENET, -1, LS_FAULT_MODE_FAIL, 0};
    ls_storage_fault_set(f->fault, &down);
    assert_int_equal(get_range(f, "g/obj", 0, -1, &k), LS_ENET);
    assert_int_equal(ls_storage_fault_calls(f->fault, LS_FAULT_GET), 4);
    ls_buf_free(&k.b);
    free(data);
}

static void t_retry_only_transient(void **state)
{
    fixture *f = *state;
    put_str(f, "a/b", "x");
    ls_fault perm = {LS_FAULT_ALL, 0, -1, LS_EPERM, -1, LS_FAULT_MODE_FAIL, 0};
    ls_storage_fault_set(f->fault, &perm);
    sink k = {0};
    ls_obj o;
    ls_obj_list l = {0};
    assert_int_equal(get_range(f, "a/b", 0, -1, &k), LS_EPERM);
    assert_int_equal(f->s->stat(f->s, f->ctx, "a/b", &o), LS_EPERM);
    assert_int_equal(f->s->list(f->s, f->ctx, "", &l), LS_EPERM);
    assert_int_equal(ls_storage_fault_calls(f->fault, LS_FAULT_ALL), 3);
    ls_obj_list_free(&l);
    ls_buf_free(&k.b);
    /* Transient list/stat/del failures are retried; a failed put is not. */
    ls_fault flaky = {LS_FAULT_LIST | LS_FAULT_STAT | LS_FAULT_DEL, 0, 1, LS_ENET, -1,
                      LS_FAULT_MODE_FAIL, 0};
    ls_storage_fault_set(f->fault, &flaky);
    OK(f, f->s->list(f->s, f->ctx, "", &l));
    assert_int_equal(l.n, 1);
    ls_obj_list_free(&l);
    ls_storage_fault_set(f->fault, &flaky);
    OK(f, f->s->stat(f->s, f->ctx, "a/b", &o));
    ls_storage_fault_set(f->fault, &flaky);
    const char *keys[] = {"a/b"};
    OK(f, f->s->del(f->s, f->ctx, keys, 1));
    expect_missing(f, "a/b");
    ls_fault put_fails = {LS_FAULT_PUT, 0, 1, LS_ENET, -1, LS_FAULT_MODE_FAIL, 0};
    ls_storage_fault_set(f->fault, &put_fails);
    assert_int_equal(ls_storage_put_buf(f->s, f->ctx, "a/c", "y", 1), LS_ENET);
    assert_int_equal(ls_storage_fault_calls(f->fault, LS_FAULT_PUT), 1);
}

/* Every try is counted, by operation and by failure class; a missing object is no failure. */
static void t_retry_counts(void **state)
{
    fixture *f = *state;
    ls_storage_counts c;
    ls_storage_counts_get(f->fault, &c); /* not a retrying wrapper: zeros */
    assert_int_equal(c.puts + c.gets + c.last_minute, 0);
    put_str(f, "a/b", "x");
    expect_missing(f, "a/none"); /* a stat and a get, both LS_ENOENT */
    ls_fault flaky = {LS_FAULT_LIST, 0, 2, LS_ENET, -1, LS_FAULT_MODE_FAIL, 0};
    ls_storage_fault_set(f->fault, &flaky);
    ls_obj_list l = {0};
    OK(f, f->s->list(f->s, f->ctx, "", &l)); /* two failed tries, then one that works */
    ls_obj_list_free(&l);
    ls_fault denied = {LS_FAULT_DEL, 0, -1, LS_EPERM, -1, LS_FAULT_MODE_FAIL, 0};
    ls_storage_fault_set(f->fault, &denied);
    const char *keys[] = {"a/b"};
    assert_int_equal(f->s->del(f->s, f->ctx, keys, 1), LS_EPERM);
    ls_storage_counts_get(f->s, &c);
    assert_int_equal(c.puts, 1);
    assert_int_equal(c.stats, 1);
    assert_int_equal(c.gets, 1);
    assert_int_equal(c.lists, 3);
    assert_int_equal(c.deletes, 1);
    assert_int_equal(c.errors_net, 2);
    assert_int_equal(c.errors_auth, 1);
    assert_int_equal(c.errors_other, 0);
    assert_int_equal(c.last_minute, 7);
}

/* ---- the contract, for every backend ---- */

static void c_roundtrip_small(void **state)
{
    fixture *f = *state;
    ls_obj o;
    put(f, "empty", "", 0);
    put(f, "one", "x", 1);
    expect_content(f, "empty", "", 0);
    expect_content(f, "one", "x", 1);
    OK(f, f->s->stat(f->s, f->ctx, "empty", &o));
    assert_int_equal(o.size, 0);
    OK(f, f->s->stat(f->s, f->ctx, "one", &o));
    assert_int_equal(o.size, 1);
    /* A NULL buffer of length 0 is an empty object too. */
    assert_int_equal(ls_storage_put_buf(f->s, f->ctx, "a/b/null", NULL, 0), 0);
    expect_content(f, "a/b/null", "", 0);
}

static void c_roundtrip_large_streamed(void **state)
{
    fixture *f = *state;
    size_t n = (1 << 20) + 1;
    uint8_t *data = noise_bytes(n, 42);
    for (int known = 0; known < 2; known++) {
        const char *key = known ? "generations/0123456789abcdef/snapshots/00000000.snapshot.lz4"
                                : "big/unknown-size";
        odd_src src = {data, n, 0, 0, SIZE_MAX};
        ls_reader r = {odd_read, &src, known ? (int64_t)n : -1};
        if (f->s->put(f->s, f->ctx, key, &r) != 0)
            fail_msg("put: %s", ls_errmsg(f->ctx));
        sink k = {0};
        assert_int_equal(get_range(f, key, 0, -1, &k), 0);
        assert_int_equal(k.b.n, n);
        assert_memory_equal(k.b.p, data, n);
        /* Streamed in bounded chunks, not as one buffer. */
        assert_true(k.max_chunk <= 64 * 1024);
        ls_buf_free(&k.b);
    }
    free(data);
}

static void c_put_replaces(void **state)
{
    fixture *f = *state;
    char keys[256];
    ls_obj o;
    uint8_t *big = noise_bytes(100000, 1);
    put(f, "dir/obj", big, 100000);
    put_str(f, "dir/obj", "short");
    expect_content(f, "dir/obj", "short", 5);
    OK(f, f->s->stat(f->s, f->ctx, "dir/obj", &o));
    assert_int_equal(o.size, 5);
    list_keys(f, "", keys, sizeof(keys));
    assert_string_equal(keys, "dir/obj");
    put(f, "dir/obj", big, 100000);
    expect_content(f, "dir/obj", big, 100000);
    free(big);
}

static void c_get_range(void **state)
{
    fixture *f = *state;
    static const struct {
        uint64_t off;
        int64_t len;
        size_t want_off, want_n;
    } cases[] = {
        {10, 20, 10, 20},    /* middle */
        {990, -1, 990, 10},  /* to the end */
        {990, 100, 990, 10}, /* length past the end: clamped */
        {0, -1, 0, 1000},    /* everything */
        {0, 0, 0, 0},        /* nothing */
        {999, 1, 999, 1},    /* last byte */
        {1000, 5, 0, 0},     /* starting at the end */
        {5000, -1, 0, 0},    /* starting past the end */
        {UINT64_MAX, INT64_MAX, 0, 0},
        {1, INT64_MAX, 1, 999},
    };
    uint8_t *data = noise_bytes(1000, 3);
    put(f, "r", data, 1000);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sink k = {0};
        int rc = get_range(f, "r", cases[i].off, cases[i].len, &k);
        if (rc)
            fail_msg("case %zu: %s", i, ls_errmsg(f->ctx));
        assert_int_equal(k.b.n, cases[i].want_n);
        if (k.b.n)
            assert_memory_equal(k.b.p, data + cases[i].want_off, cases[i].want_n);
        ls_buf_free(&k.b);
    }
    free(data);
}

static void c_get_missing(void **state)
{
    fixture *f = *state;
    sink k = {0};
    assert_int_equal(get_range(f, "generations/x/nothing", 0, -1, &k), LS_ENOENT);
    assert_non_null(strstr(ls_errmsg(f->ctx), "generations/x/nothing"));
    assert_non_null(strstr(ls_errmsg(f->ctx), "replica "));
    assert_int_equal(get_range(f, "nothing", 5, 10, &k), LS_ENOENT);
    assert_int_equal(k.b.n, 0);
    /* Below an object, or at a "directory" that only holds objects. */
    put_str(f, "file", "x");
    put_str(f, "dir/obj", "y");
    expect_missing(f, "file/below");
    expect_missing(f, "dir");
    ls_buf_free(&k.b);
}

static void c_stat(void **state)
{
    fixture *f = *state;
    ls_obj o;
    uint8_t *data = noise_bytes(12345, 5);
    int64_t now = (int64_t)time(NULL) * 1000;
    put(f, "s/a", data, 12345);
    OK(f, f->s->stat(f->s, f->ctx, "s/a", &o));
    assert_int_equal(o.size, 12345);
    assert_null(o.key);
    assert_true(o.mtime_ms > now - 120000 && o.mtime_ms < now + 120000);
    assert_int_equal(f->s->stat(f->s, f->ctx, "s/b", &o), LS_ENOENT);
    assert_non_null(strstr(ls_errmsg(f->ctx), "s/b"));
    free(data);
}

static void c_list_prefix(void **state)
{
    fixture *f = *state;
    static const char *keys[] = {
        "generations/aaaa/snapshots/00000000.snapshot.lz4",
        "generations/aaaa/wal/00000000_00000000.wal.lz4",
        "generations/aaab/wal/00000000_00000000.wal.lz4",
        "generations/aaaa0/x",
        "gen",
        "other/deep/er/key",
    };
    static const struct {
        const char *prefix;
        const char *want; /* sorted, comma-joined */
    } cases[] = {
        {"", "gen,generations/aaaa/snapshots/00000000.snapshot.lz4,"
             "generations/aaaa/wal/00000000_00000000.wal.lz4,generations/aaaa0/x,"
             "generations/aaab/wal/00000000_00000000.wal.lz4,other/deep/er/key"},
        {"generations/", "generations/aaaa/snapshots/00000000.snapshot.lz4,"
                         "generations/aaaa/wal/00000000_00000000.wal.lz4,generations/aaaa0/x,"
                         "generations/aaab/wal/00000000_00000000.wal.lz4"},
        {"generations/aaaa/", "generations/aaaa/snapshots/00000000.snapshot.lz4,"
                              "generations/aaaa/wal/00000000_00000000.wal.lz4"},
        {"generations/aaaa", "generations/aaaa/snapshots/00000000.snapshot.lz4,"
                             "generations/aaaa/wal/00000000_00000000.wal.lz4,generations/aaaa0/x"},
        {"generations/aaab", "generations/aaab/wal/00000000_00000000.wal.lz4"},
        {"generations/aaaa/wal/", "generations/aaaa/wal/00000000_00000000.wal.lz4"},
        {"generations/aaaa/wal/00000000_", "generations/aaaa/wal/00000000_00000000.wal.lz4"},
        {"gen", "gen,generations/aaaa/snapshots/00000000.snapshot.lz4,"
                "generations/aaaa/wal/00000000_00000000.wal.lz4,generations/aaaa0/x,"
                "generations/aaab/wal/00000000_00000000.wal.lz4"},
        {"other/deep/er/key", "other/deep/er/key"},
        {"other/deep/er/key/", ""},
        {"gen/", ""},
        {"nothing/", ""},
        {"generations/zzz", ""},
        {"generations/aaaa/snapshots/00000001", ""},
    };
    char got[1024];
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        uint8_t *data = noise_bytes(i + 1, (uint32_t)i);
        put(f, keys[i], data, i + 1);
        free(data);
    }
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        list_keys(f, cases[i].prefix, got, sizeof(got));
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("list \"%s\":\n got  %s\n want %s", cases[i].prefix, got, cases[i].want);
    }
    /* Sizes and times come with the keys. */
    ls_obj_list l = {0};
    OK(f, f->s->list(f->s, f->ctx, "", &l));
    for (size_t i = 0; i < l.n; i++) {
        size_t j = 0;
        while (strcmp(keys[j], l.v[i].key) != 0)
            j++;
        assert_int_equal(l.v[i].size, j + 1);
        assert_true(l.v[i].mtime_ms > 0);
    }
    /* list appends to what the list already holds. */
    OK(f, f->s->list(f->s, f->ctx, "gen", &l));
    assert_int_equal(l.n, 6 + 5);
    ls_obj_list_free(&l);
    assert_int_equal(l.n, 0);
}

static void c_list_empty_store(void **state)
{
    fixture *f = *state;
    assert_int_equal(list_count(f, ""), 0);
    assert_int_equal(list_count(f, "generations/"), 0);
    assert_int_equal(list_count(f, "generations/abc"), 0);
}

static void c_delete(void **state)
{
    fixture *f = *state;
    char got[512];
    put_str(f, "generations/g1/wal/a", "1");
    put_str(f, "generations/g1/wal/b", "2");
    put_str(f, "generations/g2/snapshots/c", "3");
    put_str(f, "keep", "4");

    const char *one[] = {"generations/g1/wal/a"};
    OK(f, f->s->del(f->s, f->ctx, one, 1));
    expect_missing(f, "generations/g1/wal/a");
    /* Deleting what is gone is fine. */
    OK(f, f->s->del(f->s, f->ctx, one, 1));

    const char *batch[] = {"generations/g1/wal/b", "generations/none/x",
                           "generations/g2/snapshots/c"};
    OK(f, f->s->del(f->s, f->ctx, batch, 3));
    list_keys(f, "", got, sizeof(got));
    assert_string_equal(got, "keep");
    OK(f, f->s->del(f->s, f->ctx, NULL, 0));

    /* The key space is usable again after its last object went. */
    put_str(f, "generations/g1/wal/a", "again");
    expect_content(f, "generations/g1/wal/a", "again", 5);
}

/*
 * Retention deletes whole generations in one batch: sibling subtrees that all
 * empty at once. (s3rver removed the emptied directories of one batch
 * concurrently and failed with HTTP 500 when two reached a shared parent.)
 */
static void c_delete_sibling_trees(void **state)
{
    fixture *f = *state;
    char keys[6][64], got[64];
    const char *batch[6];
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 6; i++) {
            snprintf(keys[i], sizeof(keys[i]), "generations/g%d/wal/%08x/seg", i, (unsigned)round);
            put_str(f, keys[i], "x");
            batch[i] = keys[i];
        }
        OK(f, f->s->del(f->s, f->ctx, batch, 6));
        list_keys(f, "", got, sizeof(got));
        assert_string_equal(got, "");
    }
}

static void c_invalid_keys(void **state)
{
    fixture *f = *state;
    static const char *bad[] = {
        "",      "/abs",    "a//b",           "a/",   "..",       "a/../b", "./a",
        "a/./b", ".hidden", "a/.b.123.x.tmp", "a\\b", "tab\tkey",
    };
    ls_obj o;
    sink k = {0};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ls_storage_put_buf(f->s, f->ctx, bad[i], "x", 1) != LS_EUSAGE)
            fail_msg("put accepted \"%s\"", bad[i]);
        assert_non_null(strstr(ls_errmsg(f->ctx), "invalid key"));
        assert_int_equal(get_range(f, bad[i], 0, -1, &k), LS_EUSAGE);
        assert_int_equal(f->s->stat(f->s, f->ctx, bad[i], &o), LS_EUSAGE);
        assert_int_equal(f->s->del(f->s, f->ctx, &bad[i], 1), LS_EUSAGE);
    }
    static const char *bad_prefix[] = {"/", "/generations/", "../", "a/../", "a//", ".x"};
    ls_obj_list l = {0};
    for (size_t i = 0; i < sizeof(bad_prefix) / sizeof(bad_prefix[0]); i++) {
        if (f->s->list(f->s, f->ctx, bad_prefix[i], &l) != LS_EUSAGE)
            fail_msg("list accepted \"%s\"", bad_prefix[i]);
    }
    assert_int_equal(l.n, 0);
    assert_int_equal(list_count(f, ""), 0);
}

/* All-or-nothing: a source failing midway leaves no object and no temp file. */
static void c_source_fails_midway(void **state)
{
    fixture *f = *state;
    size_t n = 300000;
    uint8_t *data = noise_bytes(n, 11);
    const char *key = "generations/0123456789abcdef/wal/00000000_00000000.wal.lz4";
    odd_src src = {data, n, 0, 0, 150000};
    ls_reader r = {odd_read, &src, (int64_t)n};

    assert_int_equal(f->s->put(f->s, f->ctx, key, &r), LS_EIO);
    assert_non_null(strstr(ls_errmsg(f->ctx), key));
    expect_missing(f, key);
    assert_int_equal(list_count(f, ""), 0);
    if (has_file_root(f))
        assert_int_equal(count_tmp_files(f->root), 0);

    /* Over an existing object: the old version stays whole. */
    put_str(f, key, "old version");
    odd_src src2 = {data, n, 0, 0, 70000};
    ls_reader r2 = {odd_read, &src2, -1};
    assert_int_equal(f->s->put(f->s, f->ctx, key, &r2), LS_EIO);
    expect_content(f, key, "old version", 11);
    assert_int_equal(list_count(f, ""), 1);
    if (has_file_root(f))
        assert_int_equal(count_tmp_files(f->root), 0);
    free(data);
}

/* ---- the fault wrapper ---- */

static void t_fault_injects(void **state)
{
    fixture *f = *state;
    ls_fault rule = {LS_FAULT_PUT, 1, 1, 0, -1, LS_FAULT_MODE_FAIL, 0};
    ls_storage_fault_set(f->s, &rule);
    put_str(f, "k1", "a");
    assert_int_equal(ls_storage_put_buf(f->s, f->ctx, "k2", "b", 1), LS_EIO);
    assert_non_null(strstr(ls_errmsg(f->ctx), "injected fault"));
    assert_non_null(strstr(ls_errmsg(f->ctx), "put k2"));
    put_str(f, "k3", "c");
    expect_missing(f, "k2");
    assert_int_equal(ls_storage_fault_calls(f->s, LS_FAULT_PUT), 3);
    assert_int_equal(ls_storage_fault_injected(f->s), 1);
    assert_true(ls_storage_fault_calls(f->s, LS_FAULT_GET | LS_FAULT_STAT) >= 2);

    /* Every list/stat/get/del fails, with the chosen code, until the rule changes. */
    ls_fault all = {LS_FAULT_ALL & ~LS_FAULT_PUT, 0, -1, LS_ENOSPC, -1, LS_FAULT_MODE_FAIL, 0};
    ls_storage_fault_set(f->s, &all);
    ls_obj_list l = {0};
    ls_obj o;
    sink k = {0};
    const char *keys[] = {"k1"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(f->s->list(f->s, f->ctx, "", &l), LS_ENOSPC);
        assert_int_equal(f->s->stat(f->s, f->ctx, "k1", &o), LS_ENOSPC);
        assert_int_equal(get_range(f, "k1", 0, -1, &k), LS_ENOSPC);
        assert_int_equal(f->s->del(f->s, f->ctx, keys, 1), LS_ENOSPC);
    }
    assert_int_equal(ls_storage_fault_injected(f->s), 12);
    ls_fault off = {0, 0, 0, 0, -1, LS_FAULT_MODE_FAIL, 0};
    ls_storage_fault_set(f->s, &off);
    expect_content(f, "k1", "a", 1);
    assert_int_equal(ls_storage_fault_injected(f->s), 0);
}

static void t_fault_partial_put(void **state)
{
    fixture *f = *state;
    size_t n = 200000;
    uint8_t *data = noise_bytes(n, 13);

    /* The source dies after 1000 bytes: nothing lands, no temp file stays. */
    ls_fault cut = {LS_FAULT_PUT, 0, 1, LS_EIO, 1000, LS_FAULT_MODE_FAIL, 0};
    ls_storage_fault_set(f->s, &cut);
    assert_int_equal(ls_storage_put_buf(f->s, f->ctx, "g/obj", data, n), LS_EIO);
    assert_non_null(strstr(ls_errmsg(f->ctx), "injected fault"));
    expect_missing(f, "g/obj");
    assert_int_equal(count_tmp_files(f->root), 0);

    /* A reply lost after the object was written: it exists, the caller saw a failure. */
    ls_fault lost = {LS_FAULT_PUT, 0, 1, LS_EIO, 1 << 30, LS_FAULT_MODE_FAIL, 0};
    ls_storage_fault_set(f->s, &lost);
    assert_int_equal(ls_storage_put_buf(f->s, f->ctx, "g/obj", data, n), LS_EIO);
    expect_content(f, "g/obj", data, n);
    assert_int_equal(ls_storage_fault_injected(f->s), 1);
    free(data);
}

static void t_fault_partial_get(void **state)
{
    fixture *f = *state;
    uint8_t *data = noise_bytes(200000, 17);
    put(f, "g/obj", data, 200000);
    ls_fault cut = {LS_FAULT_GET, 0, 1, 0, 70000, LS_FAULT_MODE_FAIL, 0};
    ls_storage_fault_set(f->s, &cut);
    sink k = {0};
    assert_int_equal(get_range(f, "g/obj", 0, -1, &k), LS_EIO);
    assert_int_equal(k.b.n, 70000);
    assert_memory_equal(k.b.p, data, 70000);
    assert_non_null(strstr(ls_errmsg(f->ctx), "get g/obj"));
    ls_buf_free(&k.b);
    /* Only one failure was asked for. */
    assert_int_equal(get_range(f, "g/obj", 0, -1, &k), 0);
    assert_int_equal(k.b.n, 200000);
    ls_buf_free(&k.b);
    free(data);
}

/* ---- the file backend ---- */

static void t_file_on_disk(void **state)
{
    fixture *f = *state;
    char path[256];
    struct stat st;
    put_str(f, "generations/g/wal/k", "data");
    snprintf(path, sizeof(path), "%s/generations/g/wal/k", f->root);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 4);

    /* Deleting the last object removes the directories it leaves empty, not the root. */
    const char *k[] = {"generations/g/wal/k"};
    OK(f, f->s->del(f->s, f->ctx, k, 1));
    snprintf(path, sizeof(path), "%s/generations", f->root);
    assert_int_not_equal(stat(path, &st), 0);
    assert_int_equal(stat(f->root, &st), 0);

    /* A missing root: empty list, missing objects. */
    assert_int_equal(rmdir(f->root), 0);
    assert_int_equal(list_count(f, ""), 0);
    expect_missing(f, "x");
}

static void t_file_stale_temp_files(void **state)
{
    fixture *f = *state;
    char path[256], cmd[512];
    put_str(f, "generations/g/wal/a", "a");
    /* Leftovers of a crashed put (ours or Litestream's "<name>.tmp"), and a dot file. */
    snprintf(cmd, sizeof(cmd),
             "echo junk > %s/generations/g/wal/.a.999999.0123456789abcdef.tmp && "
             "echo junk > %s/.b.1.ffffffffffffffff.tmp && mkdir -p %s/.hidden && "
             "echo x > %s/.hidden/y",
             f->root, f->root, f->root, f->root);
    assert_int_equal(system(cmd), 0);
    char got[256];
    list_keys(f, "", got, sizeof(got));
    assert_string_equal(got, "generations/g/wal/a");
    put_str(f, "generations/g/wal/a", "new");
    expect_content(f, "generations/g/wal/a", "new", 3);
    const char *k[] = {"generations/g/wal/a"};
    OK(f, f->s->del(f->s, f->ctx, k, 1));
    assert_int_equal(list_count(f, ""), 0);
    /* The directory holding a stale temp file stays; that is harmless. */
    snprintf(path, sizeof(path), "%s/generations/g/wal", f->root);
    assert_int_equal(access(path, F_OK), 0);
}

static void t_file_modes(void **state)
{
    fixture *f = *state;
    char path[256];
    struct stat st;
    mode_t old = umask(022);

    put_str(f, "a/b", "x");
    snprintf(path, sizeof(path), "%s/a", f->root);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0755);
    snprintf(path, sizeof(path), "%s/a/b", f->root);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);

    /* A private root keeps what is made inside it private. */
    assert_int_equal(chmod(f->root, 0700), 0);
    put_str(f, "c/d", "x");
    snprintf(path, sizeof(path), "%s/c", f->root);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/c/d", f->root);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    umask(old);
}

static void t_file_error_names_replica_and_key(void **state)
{
    fixture *f = *state;
    char want[256];
    put_str(f, "generations", "a file where a directory should be");
    int rc = ls_storage_put_buf(f->s, f->ctx, "generations/g/wal/k", "x", 1);
    assert_int_equal(rc, LS_ENOENT);
    snprintf(want, sizeof(want), "replica file (%s): put generations/g/wal/k: ", f->root);
    if (strncmp(ls_errmsg(f->ctx), want, strlen(want)) != 0)
        fail_msg("message: %s", ls_errmsg(f->ctx));
    assert_non_null(strstr(ls_errmsg(f->ctx), "Not a directory"));
    assert_int_equal(count_tmp_files(f->root), 0);
}

/* Open through ls_storage_open; returns the code, the root (desc) in desc. */
static int open_typed(fixture *f, const char *path, const char *type, char *desc)
{
    ls_storage_opts o = {0};
    ls_storage *s = NULL;
    o.path = path;
    o.type = type;
    o.name = "r1";
    int rc = ls_storage_open(f->ctx, &o, &s);
    if (rc == 0) {
        assert_string_equal(s->type, "file");
        assert_string_equal(s->name, "r1");
        assert_int_equal(s->version, LS_STORAGE_VERSION);
        strcpy(desc, s->desc);
        ls_storage_close(s);
    }
    return rc;
}

/*
 * The type table of ls_storage_open and the file backend's root: fields
 * only (URLs are parsed once, by url.c: test_url.c follows one from the
 * parser to the backend).
 */
static void t_open_by_type(void **state)
{
    fixture *f = *state;
    char want[256], desc[512], cwd[256], slashes[300];

    assert_int_equal(open_typed(f, f->root, NULL, desc), 0); /* file is the default */
    assert_string_equal(desc, f->root);
    assert_int_equal(open_typed(f, f->root, "file", desc), 0);
    assert_string_equal(desc, f->root);
    assert_int_equal(open_typed(f, f->root, "FILE", desc), 0);
    snprintf(slashes, sizeof(slashes), "%s//", f->root);
    assert_int_equal(open_typed(f, slashes, "", desc), 0);
    assert_string_equal(desc, f->root);
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(open_typed(f, "rel/dir/", NULL, desc), 0); /* made absolute */
    snprintf(want, sizeof(want), "%s/rel/dir", strcmp(cwd, "/") ? cwd : "");
    assert_string_equal(desc, want);

    /* Refused, with a reason. */
    assert_int_equal(open_typed(f, NULL, NULL, desc), LS_EUSAGE);
    assert_non_null(strstr(ls_errmsg(f->ctx), "replica r1: file replica: path required"));
    assert_int_equal(open_typed(f, "", "file", desc), LS_EUSAGE);
    assert_int_equal(open_typed(f, "/x", "nfs", desc), LS_EUSAGE);
    assert_non_null(strstr(ls_errmsg(f->ctx), "replica r1: unknown replica type \"nfs\""));
    assert_int_equal(open_typed(f, "/x", "ftp", desc), LS_EUSAGE);
    assert_non_null(strstr(ls_errmsg(f->ctx), "unknown replica type"));
}

/*
 * Many threads on one handle (restore downloads in parallel, replication and
 * validation share a handle): each thread puts, reads back, stats, lists
 * and deletes its own keys; every result must be its own.
 */
typedef struct worker {
    fixture *f;
    int id;
    int failures;
    char msg[512];
} worker;

static void *c_concurrent_main(void *arg)
{
    worker *w = arg;
    ls_storage *s = w->f->s;
    ls_ctx *ctx = NULL;
    if (ls_ctx_new(&ctx) != 0) {
        w->failures++;
        return NULL;
    }
    for (int round = 0; round < 4 && !w->failures; round++) {
        char key[64], prefix[32];
        size_t n = 1000 + (size_t)(w->id * 4099 + round * 131);
        uint8_t *data = noise_bytes(n, (uint32_t)(w->id * 100 + round));
        uint8_t *got = NULL;
        size_t gn = 0;
        ls_obj o;
        ls_obj_list l = {0};
        snprintf(prefix, sizeof(prefix), "c%02d/", w->id);
        snprintf(key, sizeof(key), "c%02d/r%d", w->id, round);
        if (ls_storage_put_buf(s, ctx, key, data, n) != 0 ||
            ls_storage_get_buf(s, ctx, key, &got, &gn) != 0 || gn != n ||
            memcmp(got, data, n) != 0 || s->stat(s, ctx, key, &o) != 0 || o.size != n ||
            s->list(s, ctx, prefix, &l) != 0 || l.n != (size_t)round + 1) {
            w->failures++;
            snprintf(w->msg, sizeof(w->msg), "worker %d round %d: %s (got %zu bytes, %zu keys)",
                     w->id, round, ls_errmsg(ctx), gn, l.n);
        }
        ls_obj_list_free(&l);
        free(got);
        free(data);
    }
    ls_ctx_free(ctx);
    return NULL;
}

static void c_concurrent(void **state)
{
    fixture *f = *state;
    enum { N = 8 };
    pthread_t th[N];
    worker w[N];
    for (int i = 0; i < N; i++) {
        w[i] = (worker){f, i, 0, ""};
        assert_int_equal(pthread_create(&th[i], NULL, c_concurrent_main, &w[i]), 0);
    }
    int failures = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        if (w[i].failures) {
            fprintf(stderr, "%s\n", w[i].msg);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
    assert_int_equal(list_count(f, ""), N * 4);
}

#define CONTRACT(setup)                                                                            \
    cmocka_unit_test_setup_teardown(c_roundtrip_small, setup, teardown),                           \
        cmocka_unit_test_setup_teardown(c_roundtrip_large_streamed, setup, teardown),              \
        cmocka_unit_test_setup_teardown(c_put_replaces, setup, teardown),                          \
        cmocka_unit_test_setup_teardown(c_get_range, setup, teardown),                             \
        cmocka_unit_test_setup_teardown(c_get_missing, setup, teardown),                           \
        cmocka_unit_test_setup_teardown(c_stat, setup, teardown),                                  \
        cmocka_unit_test_setup_teardown(c_list_prefix, setup, teardown),                           \
        cmocka_unit_test_setup_teardown(c_list_empty_store, setup, teardown),                      \
        cmocka_unit_test_setup_teardown(c_delete, setup, teardown),                                \
        cmocka_unit_test_setup_teardown(c_delete_sibling_trees, setup, teardown),                  \
        cmocka_unit_test_setup_teardown(c_invalid_keys, setup, teardown),                          \
        cmocka_unit_test_setup_teardown(c_source_fails_midway, setup, teardown),                   \
        cmocka_unit_test_setup_teardown(c_concurrent, setup, teardown)

int main(void)
{
    const struct CMUnitTest file_tests[] = {
        CONTRACT(setup_file),
        cmocka_unit_test_setup_teardown(t_file_on_disk, setup_file, teardown),
        cmocka_unit_test_setup_teardown(t_file_stale_temp_files, setup_file, teardown),
        cmocka_unit_test_setup_teardown(t_file_modes, setup_file, teardown),
        cmocka_unit_test_setup_teardown(t_file_error_names_replica_and_key, setup_file, teardown),
        cmocka_unit_test_setup_teardown(t_open_by_type, setup_file, teardown),
    };
    const struct CMUnitTest mem_tests[] = {
        CONTRACT(setup_mem),
    };
    const struct CMUnitTest fault_tests[] = {
        CONTRACT(setup_fault),
        cmocka_unit_test_setup_teardown(t_fault_injects, setup_fault, teardown),
        cmocka_unit_test_setup_teardown(t_fault_partial_put, setup_fault, teardown),
        cmocka_unit_test_setup_teardown(t_fault_partial_get, setup_fault, teardown),
    };
    const struct CMUnitTest retry_tests[] = {
        CONTRACT(setup_retry),
        cmocka_unit_test_setup_teardown(t_retry_resumes_get, setup_retry, teardown),
        cmocka_unit_test_setup_teardown(t_retry_only_transient, setup_retry, teardown),
        cmocka_unit_test_setup_teardown(t_retry_counts, setup_retry, teardown),
    };
    const struct CMUnitTest s3_tests[] = {
        CONTRACT(setup_s3),
    };
    const struct CMUnitTest sftp_tests[] = {
        CONTRACT(setup_sftp),
    };
    const struct CMUnitTest abs_tests[] = {
        CONTRACT(setup_abs),
    };
    int failed = 0;
    load_server_env();
    failed += cmocka_run_group_tests_name("file backend", file_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("mem backend", mem_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("fault wrapper (pass-through)", fault_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("retry wrapper", retry_tests, NULL, NULL);
    if (getenv("LS_TEST_SERVERS")) {
        failed += cmocka_run_group_tests_name("s3 backend (s3rver)", s3_tests, NULL, NULL);
        failed += cmocka_run_group_tests_name("sftp backend (sshd)", sftp_tests, NULL, NULL);
        failed += cmocka_run_group_tests_name("abs backend (azurite)", abs_tests, NULL, NULL);
    } else {
        fprintf(stderr, "LS_TEST_SERVERS is not set: the s3, sftp and abs groups did not run "
                        "(ctest sets it; by hand: tests/servers/testservers.py start DIR)\n");
    }
    for (size_t i = 0; i < server_nenv; i++) {
        free(server_env[i][0]);
        free(server_env[i][1]);
    }
    return failed;
}
