/*
 * test_config.c - the config file: a full Litestream-style config parsed into
 * the right fields, defaults, $VAR expansion, the strictness Litestream lacks
 * (unknown keys with positions and suggestions, wrong types, duplicates),
 * replica validation (url+path, names, required keys) and the precedence of
 * credentials from the config and the environment; Litestream 0.5's keys
 * (replica:, top-level settings, snapshot:, the refused ones and the values
 * they accept), shutdown-timeout, directory entries, $PID and sftp host-key
 * lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct fixture {
    char dir[64];           /* temp directory (as created) */
    char *real;             /* its realpath */
    ls_ctx *ctx;
} fixture;

static fixture *F;

/* Every variable the config reads, cleared before each test. */
static const char *const env_vars[] = {
    "LITESAFE_ACCESS_KEY_ID",   "LITESAFE_SECRET_ACCESS_KEY",   "LITESAFE_SESSION_TOKEN",
    "LITESTREAM_ACCESS_KEY_ID", "LITESTREAM_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",    "AWS_SESSION_TOKEN",            "LITESAFE_AZURE_ACCOUNT_KEY",
    "LITESTREAM_AZURE_ACCOUNT_KEY", "LITESAFE_CONFIG",          NULL,
};

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/ls-unit-cfg-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->real = realpath(f->dir, NULL);
    assert_non_null(f->real);
    assert_int_equal(ls_ctx_new(&f->ctx), 0);
    for (int i = 0; env_vars[i]; i++)
        unsetenv(env_vars[i]);
    setenv("LS_TEST_DIR", f->dir, 1);
    F = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    ls_ctx_free(f->ctx);
    free(f->real);
    free(f);
    return 0;
}

static ls_config *parse(const char *text)
{
    ls_config *cfg = NULL;
    int rc = ls_config_parse(F->ctx, text, strlen(text), "test.yml", 1, &cfg);
    if (rc != 0)
        fail_msg("parse: %d %s", rc, ls_errmsg(F->ctx));
    return cfg;
}

static ls_config *parse_defaults(const char *text)
{
    ls_config *cfg = parse(text);
    int rc = ls_config_apply_defaults(F->ctx, cfg);
    if (rc != 0)
        fail_msg("defaults: %d %s", rc, ls_errmsg(F->ctx));
    return cfg;
}

static void has(const char *msg, const char *frag)
{
    if (!strstr(msg, frag))
        fail_msg("message \"%s\" lacks \"%s\"", msg, frag);
}

/* Parsing must fail with LS_EUSAGE and a message containing `frag`. */
static void parse_err(const char *text, const char *frag)
{
    ls_config *cfg = NULL;
    ls_err_clear(F->ctx);
    int rc = ls_config_parse(F->ctx, text, strlen(text), "test.yml", 1, &cfg);
    if (rc != LS_EUSAGE)
        fail_msg("expected LS_EUSAGE, got %d for:\n%s", rc, text);
    assert_null(cfg);
    has(ls_errmsg(F->ctx), frag);
}

/* Parsing succeeds, defaults fail with LS_EUSAGE and `frag`. */
static void defaults_err(const char *text, const char *frag)
{
    ls_config *cfg = parse(text);
    ls_err_clear(F->ctx);
    int rc = ls_config_apply_defaults(F->ctx, cfg);
    ls_config_free(cfg);
    if (rc != LS_EUSAGE)
        fail_msg("expected LS_EUSAGE, got %d for:\n%s", rc, text);
    has(ls_errmsg(F->ctx), frag);
}

static void eq(const char *got, const char *want)
{
    if (!want) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    assert_string_equal(got, want);
}

/* F->real + suffix */
static const char *in_dir(const char *suffix)
{
    static char buf[4][PATH_MAX];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, PATH_MAX, "%s%s", F->real, suffix);
    return b;
}

static const char full_config[] =
    "# A Litestream 0.3 style config\n"
    "access-key-id: GLOBALKEY\n"
    "secret-access-key: GLOBALSECRET\n"
    "addr: \":9090\"\n"
    "exec: myapp serve --port 8080\n"
    "logging:\n"
    "  level: DEBUG\n"
    "  type: json\n"
    "  stderr: yes\n"
    "dbs:\n"
    "  - path: ${LS_TEST_DIR}/app.db\n"
    "    monitor-interval: 500ms\n"
    "    checkpoint-interval: 2m\n"
    "    min-checkpoint-page-count: 500\n"
    "    max-checkpoint-page-count: 0\n"
    "    replicas:\n"
    "      - url: s3://mybkt.localhost:9000/app\n"
    "        name: minio\n"
    "        retention: 72h\n"
    "        retention-check-interval: 30m\n"
    "        sync-interval: 10s\n"
    "        snapshot-interval: 1h30m\n"
    "        validation-interval: 1d\n"
    "        skip-verify: on\n"
    "        age:\n"
    "          identities: [AGE-SECRET-KEY-17N6HUH7NEW2FCPN008544S7CTX7HHCZNN235F8AKL778TGKVENEQEMYNMF]\n"
    "          recipients:\n"
    "            - age1x2chckmd9syx7zk7ky09kt0twnvel7x4za0988mup8tmqwvewvvs8yug4d\n"
    "            - age1hay3cl0aj3hmq7cqzxf2aw5nqj6uz35zq8qky9ndkat7w326x33qw487vl\n"
    "      - type: sftp\n"
    "        host: backup.example.com:2222\n"
    "        user: alice\n"
    "        key-path: ~/.ssh/id_ed25519\n"
    "        path: /srv/backups/app\n"
    "        known-hosts: /etc/ssh/ssh_known_hosts\n"
    "        access-key-id: OWNKEY\n"
    "  - path: $LS_TEST_DIR/sub/../other.db\n"
    "    meta-path: ${LS_TEST_DIR}/meta\n"
    "    replicas:\n"
    "      - path: ${LS_TEST_DIR}/replica\n"
    "        retention: 1h\n"
    "        retention-check-interval: 2h\n";

static void test_full_parse(void **state)
{
    (void)state;
    ls_config *cfg = parse(full_config);
    eq(cfg->source, "test.yml");
    eq(cfg->defaults.access_key_id, "GLOBALKEY");
    eq(cfg->defaults.secret_access_key, "GLOBALSECRET");
    eq(cfg->addr, ":9090");
    eq(cfg->exec, "myapp serve --port 8080");
    eq(cfg->log_level, "debug");
    eq(cfg->log_type, "json");
    assert_int_equal(cfg->log_stderr, 1);
    assert_int_equal(cfg->n_dbs, 2);

    ls_db_cfg *d = &cfg->dbs[0];
    char want[PATH_MAX];
    snprintf(want, sizeof(want), "%s/app.db", F->dir);
    eq(d->path, want);
    assert_int_equal(d->line, 11);
    assert_int_equal(d->col, 5);
    assert_int_equal(d->monitor_interval_ms, 500);
    assert_int_equal(d->checkpoint_interval_ms, 120000);
    assert_int_equal(d->min_checkpoint_page_count, 500);
    assert_int_equal(d->max_checkpoint_page_count, 0);
    eq(d->meta_path, NULL);
    assert_int_equal(d->n_replicas, 2);

    ls_replica_cfg *r = &d->replicas[0];
    eq(r->url, "s3://mybkt.localhost:9000/app");
    eq(r->name, "minio");
    eq(r->type, NULL);
    assert_int_equal(r->line, 17);
    assert_int_equal(r->retention_ms, 72 * 3600000LL);
    assert_int_equal(r->retention_check_interval_ms, 30 * 60000);
    assert_int_equal(r->sync_interval_ms, 10000);
    assert_int_equal(r->snapshot_interval_ms, 5400000);
    assert_int_equal(r->validation_interval_ms, 86400000);
    assert_int_equal(r->skip_verify, 1);
    assert_int_equal(r->force_path_style, -1);
    assert_int_equal(r->n_age_identities, 1);
    eq(r->age_identities[0], "AGE-SECRET-KEY-17N6HUH7NEW2FCPN008544S7CTX7HHCZNN235F8AKL778TGKVENEQEMYNMF");
    assert_int_equal(r->n_age_recipients, 2);
    eq(r->age_recipients[0], "age1x2chckmd9syx7zk7ky09kt0twnvel7x4za0988mup8tmqwvewvvs8yug4d");
    eq(r->age_recipients[1], "age1hay3cl0aj3hmq7cqzxf2aw5nqj6uz35zq8qky9ndkat7w326x33qw487vl");

    r = &d->replicas[1];
    eq(r->type, "sftp");
    eq(r->host, "backup.example.com:2222");
    eq(r->user, "alice");
    eq(r->key_path, "~/.ssh/id_ed25519");
    eq(r->path, "/srv/backups/app");
    eq(r->known_hosts, "/etc/ssh/ssh_known_hosts");
    eq(r->access_key_id, "OWNKEY");
    assert_int_equal(r->retention_ms, -1);
    assert_int_equal(r->sync_interval_ms, -1);

    d = &cfg->dbs[1];
    assert_int_equal(d->monitor_interval_ms, -1);
    assert_int_equal(d->min_checkpoint_page_count, -1);
    assert_int_equal(d->checkpoint_guard, -1); /* unset: on */
    assert_int_equal(d->n_replicas, 1);
    ls_config_free(cfg);
}

static void test_full_defaults(void **state)
{
    (void)state;
    ls_config *cfg = parse_defaults(full_config);

    ls_db_cfg *d = &cfg->dbs[0];
    eq(d->path, in_dir("/app.db"));
    eq(d->meta_path, in_dir("/.app.db-litesafe"));
    assert_int_equal(d->max_checkpoint_page_count, 0); /* 0 kept: disabled */

    ls_replica_cfg *r = &d->replicas[0];
    eq(r->type, "s3");
    eq(r->name, "minio");
    eq(r->bucket, "mybkt");
    eq(r->path, "app");
    eq(r->region, "us-east-1");
    eq(r->endpoint, "http://localhost:9000");
    assert_int_equal(r->force_path_style, 1);
    eq(r->access_key_id, "GLOBALKEY");
    eq(r->secret_access_key, "GLOBALSECRET");
    eq(r->session_token, NULL);
    eq(r->url, "s3://mybkt.localhost:9000/app"); /* kept as written */

    r = &d->replicas[1];
    eq(r->name, "sftp");
    eq(r->access_key_id, "OWNKEY");          /* own key wins */
    eq(r->secret_access_key, "GLOBALSECRET"); /* global fills the rest */
    assert_int_equal(r->retention_ms, 24 * 3600000LL);
    assert_int_equal(r->retention_check_interval_ms, 3600000);
    assert_int_equal(r->snapshot_interval_ms, 0);
    assert_int_equal(r->sync_interval_ms, 1000); /* remote: Litestream's request rate */
    assert_int_equal(r->validation_interval_ms, 0);
    assert_int_equal(r->force_path_style, 0);
    assert_int_equal(r->skip_verify, 0);

    d = &cfg->dbs[1];
    eq(d->path, in_dir("/other.db"));
    eq(d->meta_path, in_dir("/meta"));
    assert_int_equal(d->monitor_interval_ms, 1000);
    assert_int_equal(d->checkpoint_interval_ms, 60000);
    assert_int_equal(d->min_checkpoint_page_count, 1000);
    assert_int_equal(d->max_checkpoint_page_count, 10000);
    r = &d->replicas[0];
    eq(r->type, "file");
    eq(r->name, "file");
    eq(r->path, in_dir("/replica"));
    assert_int_equal(r->retention_ms, 3600000);
    assert_int_equal(r->retention_check_interval_ms, 3600000); /* capped at retention */

    /* lookups */
    char rel[PATH_MAX];
    snprintf(rel, sizeof(rel), "%s/./x/../app.db", F->dir);
    assert_ptr_equal(ls_config_find_db(cfg, rel), &cfg->dbs[0]);
    assert_null(ls_config_find_db(cfg, "/nonexistent/app.db"));
    assert_ptr_equal(ls_db_cfg_find_replica(&cfg->dbs[0], "sftp"), &cfg->dbs[0].replicas[1]);
    assert_null(ls_db_cfg_find_replica(&cfg->dbs[0], "s3"));

    /* runs once */
    assert_int_equal(ls_config_apply_defaults(F->ctx, cfg), 0);
    eq(cfg->dbs[0].replicas[0].bucket, "mybkt");
    ls_config_free(cfg);
}

static void test_logging_defaults(void **state)
{
    (void)state;
    ls_config *cfg = parse_defaults("dbs:\n  - path: /tmp/x.db\n");
    eq(cfg->log_level, "info");
    eq(cfg->log_type, "text");
    assert_int_equal(cfg->log_stderr, 0);
    ls_config_free(cfg);
    cfg = parse_defaults("logging:\n  level: Warning\ndbs:\n  - path: /tmp/x.db\n");
    eq(cfg->log_level, "warn");
    ls_config_free(cfg);
    /* logging.file: made absolute (a reload from elsewhere names the same file) */
    cfg = parse_defaults("dbs:\n  - path: /tmp/x.db\n");
    assert_null(ls_config_log_file(cfg));
    assert_int_equal(ls_config_log_stderr(cfg), 0);
    ls_config_free(cfg);
    char text[256], want[512];
    snprintf(text, sizeof(text), "logging:\n  file: %s/sub/../ls.log\n  stderr: true\n"
             "dbs:\n  - path: /tmp/x.db\n", F->dir);
    cfg = parse_defaults(text);
    snprintf(want, sizeof(want), "%s/ls.log", F->real);
    eq(ls_config_log_file(cfg), want);
    assert_int_equal(ls_config_log_stderr(cfg), 1);
    ls_config_free(cfg);
    parse_err("logging:\n  file: [a, b]\n", "logging.file");
    parse_err("logging:\n  level: loud\n",
              "test.yml:2:3: logging.level: \"loud\" is not one of debug");
    parse_err("logging:\n  type: xml\n", "not one of text, json");
}

static void expand_is(const char *in, const char *want)
{
    char *out = NULL;
    assert_int_equal(ls_config_expand_env(in, &out), 0);
    if (strcmp(out, want) != 0)
        fail_msg("expand(%s) = \"%s\", want \"%s\"", in, out, want);
    free(out);
}

static void test_env_expand(void **state)
{
    (void)state;
    setenv("LS_T_A", "alpha", 1);
    setenv("LS_T_EMPTY", "", 1);
    unsetenv("LS_T_UNSET");
    expand_is("", "");
    expand_is("no vars", "no vars");
    expand_is("$LS_T_A", "alpha");
    expand_is("x${LS_T_A}y", "xalphay");
    expand_is("$LS_T_A.db", "alpha.db");
    expand_is("$LS_T_Ax", "");            /* the name is LS_T_Ax, unset */
    expand_is("[$LS_T_UNSET]", "[]");
    expand_is("[${LS_T_UNSET}]", "[]");
    expand_is("[$LS_T_EMPTY]", "[]");
    expand_is("pa$$word", "paword");      /* no escape: $$ is the variable "$" */
    expand_is("cost $5", "cost ");        /* $5 is a special variable */
    expand_is("a $ b", "a $ b");          /* no name: the '$' stays */
    expand_is("a$/b", "a$/b");
    expand_is("end$", "end$");
    expand_is("x${}y", "xy");             /* bad syntax is eaten */
    expand_is("x${LS_T_A", "xLS_T_A");    /* unclosed: "${" eaten */
    expand_is("${LS_T_A}${LS_T_A}", "alphaalpha");

    /* in a config: expanded by default, not with expand_env = 0 */
    setenv("LS_T_BUCKET", "envbucket", 1);
    const char *text = "dbs:\n  - path: /tmp/$LS_T_A.db\n    replicas:\n"
                       "      - url: s3://${LS_T_BUCKET}/p\n        name: n$LS_T_UNSET\n";
    ls_config *cfg = parse(text);
    eq(cfg->dbs[0].path, "/tmp/alpha.db");
    eq(cfg->dbs[0].replicas[0].url, "s3://envbucket/p");
    eq(cfg->dbs[0].replicas[0].name, "n");
    ls_config_free(cfg);
    assert_int_equal(ls_config_parse(F->ctx, text, strlen(text), "t", 0, &cfg), 0);
    eq(cfg->dbs[0].path, "/tmp/$LS_T_A.db");
    eq(cfg->dbs[0].replicas[0].url, "s3://${LS_T_BUCKET}/p");
    ls_config_free(cfg);
}

static void test_unknown_keys(void **state)
{
    (void)state;
    parse_err("dbs:\n  - path: /tmp/x.db\n    monitor-intervall: 1s\n",
              "test.yml:3:5: unknown key \"monitor-intervall\" in db (did you mean "
              "\"monitor-interval\"?)");
    parse_err("dbs:\n"
              "  - path: /tmp/x.db\n"
              "    replicas:\n"
              "      - url: s3://b/x\n"
              "        snapshot-intervl: 1h\n",
              "test.yml:5:9: unknown key \"snapshot-intervl\" in replica (did you mean "
              "\"snapshot-interval\"?)");
    /* too far from any key: no suggestion */
    parse_err("dbs:\n  - path: /x.db\n    replicas:\n      - url: s3://b/x\n"
              "        retention-interval: 1h\n",
              "test.yml:5:9: unknown key \"retention-interval\" in replica");
    ls_config *cfg = NULL;
    const char *t = "dbs:\n  - path: /x.db\n    replicas:\n      - retention-interval: 1h\n";
    assert_int_equal(ls_config_parse(F->ctx, t, strlen(t), "t", 0, &cfg), LS_EUSAGE);
    assert_null(strstr(ls_errmsg(F->ctx), "did you mean"));
    /* a key of another level */
    parse_err("dbs:\n  - path: /x.db\n    retention: 24h\n",
              "test.yml:3:5: unknown key \"retention\" in db: it is a replica key");
    parse_err("level: debug\n", "test.yml:1:1: unknown key \"level\" in the top level: it is a "
                                "logging key");
    parse_err("db:\n  - path: /x.db\n", "unknown key \"db\" in the top level (did you mean "
                                        "\"dbs\"?)");
    parse_err(
        "dbs:\n  - path: /x.db\n    replicas:\n      - age:\n          recipient: [k]\n",
        "test.yml:5:11: unknown key \"age.recipient\" in age (did you mean \"age.recipients\"?)");
    /* merge keys are not supported */
    parse_err("dbs:\n  - <<: {path: /x.db}\n", "unknown key \"<<\"");
    /* duplicate keys */
    parse_err("dbs:\n  - path: /x.db\n    path: /y.db\n", "test.yml:3:5: duplicate key \"path\"");
}

static void test_wrong_types(void **state)
{
    (void)state;
    const char *pre = "dbs:\n  - path: /x.db\n    replicas:\n      - url: s3://b/x\n        ";
    static const struct {
        const char *line, *frag;
    } cases[] = {
        {"sync-interval: abc", "test.yml:5:9: sync-interval: expected a duration"},
        {"sync-interval: 10", "got \"10\""},
        {"sync-interval: -1s", "expected a duration"},
        {"sync-interval: [1s]", "sync-interval: expected a duration, got a list"},
        {"skip-verify: maybe", "skip-verify: expected a boolean"},
        {"skip-verify: 1", "expected a boolean"},
        {"force-path-style: {a: b}", "expected a boolean, got a mapping"},
        {"name: [a, b]", "name: expected a string, got a list"},
        {"type: ftp", "type: \"ftp\" is not one of file, s3, gcs, abs, sftp"},
        {"age: [x]", "age: expected a mapping, got a list"},
        {"age: {identities: k}", "identities: expected a list, got a scalar"},
        {"age: {identities: [[k]]}", "identities: item 1: expected a string, got a list"},
        {"age: {recipients: [a, ~]}", "recipients: item 2: expected a string, got nothing"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text), "%s%s\n", pre, cases[i].line);
        parse_err(text, cases[i].frag);
    }
    parse_err("dbs:\n  - path: /x.db\n    min-checkpoint-page-count: 0\n",
              "test.yml:3:5: min-checkpoint-page-count must be > 0, got 0");
    parse_err("dbs:\n  - path: /x.db\n    max-checkpoint-page-count: -5\n",
              "max-checkpoint-page-count must be >= 0, got -5");
    parse_err("dbs:\n  - path: /x.db\n    min-checkpoint-page-count: 12abc\n",
              "expected a number, got \"12abc\"");
    parse_err("dbs:\n  - path: /x.db\n    min-checkpoint-page-count: 99999999999999999999\n",
              "expected a number");
    parse_err("dbs:\n  path: /x.db\n", "test.yml:1:1: dbs: expected a list, got a mapping");
    parse_err("dbs:\n  - /x.db\n",
              "test.yml:2:5: dbs: item 1: expected a mapping (a db), got a scalar");
    parse_err("dbs:\n  - path: /x.db\n    replicas:\n      -\n",
              "replicas: item 1: expected a mapping (a replica), got nothing");
    parse_err("- a\n- b\n", "test.yml:1:1: the top level must be a mapping, got a list");
    parse_err("logging: debug\n", "logging: expected a mapping, got a scalar");
    parse_err("[a]: 1\n", "a key must be a word, got a list");
    parse_err("addr: \"a\\0b\"\n", "NUL byte");
}

static void test_values(void **state)
{
    (void)state;
    /* booleans in any case, durations in Go syntax plus d/w, nulls mean unset */
    ls_config *cfg = parse("logging:\n  stderr: OFF\n"
                           "dbs:\n"
                           "  - path: /x.db\n"
                           "    monitor-interval: 0\n"
                           "    checkpoint-interval: 1h30m\n"
                           "    replicas:\n"
                           "      - url: s3://b/x\n"
                           "        force-path-style: True\n"
                           "        skip-verify: No\n"
                           "        retention: 2w\n"
                           "        sync-interval: 1.5s\n"
                           "        snapshot-interval: \"0s\"\n"
                           "        validation-interval: ~\n"
                           "        region:\n"
                           "        endpoint: ''\n"
                           "        name: null\n"
                           "        password: 12345\n"
                           "        age:\n");
    assert_int_equal(cfg->log_stderr, 0);
    assert_int_equal(cfg->dbs[0].monitor_interval_ms, 0);
    assert_int_equal(cfg->dbs[0].checkpoint_interval_ms, 5400000);
    ls_replica_cfg *r = &cfg->dbs[0].replicas[0];
    assert_int_equal(r->force_path_style, 1);
    assert_int_equal(r->skip_verify, 0);
    assert_int_equal(r->retention_ms, 14 * 86400000LL);
    assert_int_equal(r->sync_interval_ms, 1500);
    assert_int_equal(r->snapshot_interval_ms, 0);
    assert_int_equal(r->validation_interval_ms, -1);
    eq(r->region, NULL);
    eq(r->endpoint, NULL);
    eq(r->name, NULL);
    eq(r->password, "12345");
    assert_int_equal(r->n_age_identities, 0);
    ls_config_free(cfg);

    /* anchors and aliases work (they are plain YAML) */
    cfg = parse("dbs:\n"
                "  - path: /a.db\n"
                "    replicas: &r\n"
                "      - url: s3://b/x\n"
                "        retention: 1h\n"
                "  - path: /b.db\n"
                "    replicas: *r\n");
    assert_int_equal(cfg->dbs[1].n_replicas, 1);
    eq(cfg->dbs[1].replicas[0].url, "s3://b/x");
    ls_config_free(cfg);
}

/* max-spool-size: plain bytes or a size with a unit; 0 after defaults means automatic. */
/* checkpoint-guard: a boolean per database, on unless set false. */
static void test_checkpoint_guard(void **state)
{
    (void)state;
    static const struct {
        const char *v;
        int want;
    } ok[] = {{"false", 0}, {"no", 0}, {"true", 1}, {"yes", 1}};
    char text[256];
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(text, sizeof(text), "dbs:\n  - path: /x.db\n    checkpoint-guard: %s\n"
                 "    replicas:\n      - url: s3://b/x\n", ok[i].v);
        ls_config *cfg = parse_defaults(text);
        assert_int_equal(cfg->dbs[0].checkpoint_guard, ok[i].want);
        ls_config_free(cfg);
    }
    parse_err("dbs:\n  - path: /x.db\n    checkpoint-guard: maybe\n", "checkpoint-guard");
    parse_err("checkpoint-guard: false\n", "a db key");
}

static void test_max_spool_size(void **state)
{
    (void)state;
    static const struct {
        const char *v;
        int64_t want;
    } ok[] = {{"1048576", 1048576},  {"1GiB", 1LL << 30},    {"512MB", 512000000},
              {"512 mib", 512 << 20}, {"1.5GiB", 3LL << 29}, {"64k", 65536},
              {"2gb", 2000000000},   {"7B", 7},              {"1TiB", 1LL << 40}};
    char text[256];
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(text, sizeof(text), "dbs:\n  - path: /x.db\n    max-spool-size: %s\n"
                 "    replicas:\n      - url: s3://b/x\n", ok[i].v);
        ls_config *cfg = parse_defaults(text);
        assert_int_equal(cfg->dbs[0].max_spool_size, ok[i].want);
        ls_config_free(cfg);
    }
    static const char *const bad[] = {"1.5", "12XB", "GiB", "-1MB", "0x10", "1e9", "[1]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "dbs:\n  - path: /x.db\n    max-spool-size: %s\n", bad[i]);
        parse_err(text, "max-spool-size");
    }
    parse_err("dbs:\n  - path: /x.db\n    max-spool-size: 0\n", "must be > 0");
    parse_err("max-spool-size: 1GiB\n", "a db key");
    ls_config *cfg = parse_defaults("dbs:\n  - path: /x.db\n    replicas:\n      - url: s3://b/x\n");
    assert_int_equal(cfg->dbs[0].max_spool_size, 0);
    ls_config_free(cfg);
}

static void test_empty_and_syntax(void **state)
{
    (void)state;
    static const char *const empties[] = {"", "\n\n", "# only a comment\n", "---\n", "~\n",
                                          "dbs:\n", "dbs: []\n"};
    for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
        ls_config *cfg = parse(empties[i]);
        assert_int_equal(cfg->n_dbs, 0);
        ls_err_clear(F->ctx);
        assert_int_equal(ls_config_apply_defaults(F->ctx, cfg), LS_EUSAGE);
        has(ls_errmsg(F->ctx), "test.yml: no databases configured");
        ls_config_free(cfg);
    }
    parse_err("dbs:\n  - path: /x.db\n   bad: [\n", "test.yml:3:");
    parse_err("dbs:\n  - path: [unclosed\n", "test.yml:3:");
    parse_err("dbs:\n\t- path: /x.db\n", "test.yml:2:1: found character that cannot start");
    parse_err("dbs: []\n---\nb: 2\n", "test.yml:2:1: a second YAML document");
    parse_err("dbs: *nope\n", "test.yml:1:6: found undefined alias");
    parse_err("dbs:\n  - path: /a\xc3\x28" "b\n", "test.yml:2:14: invalid trailing UTF-8 octet");
}

static void test_replica_validation(void **state)
{
    (void)state;
    const char *pre = "dbs:\n  - path: /x.db\n    replicas:\n";
    static const struct {
        const char *body, *frag;
    } cases[] = {
        {"      - url: s3://b/x\n        path: y\n", "test.yml:4:9: replica: url and path cannot"},
        {"      - url: s3://b/x\n        bucket: y\n", "url and bucket cannot both be set"},
        {"      - url: sftp://u@h/x\n        host: h2\n", "url and host cannot both be set"},
        {"      - path: s3://b/x\n", "replica path \"s3://b/x\" is a URL: use the url key"},
        {"      - url: http://b/x\n", "test.yml:4:9: replica URL http://b/x: unknown scheme"},
        {"      - url: s3://b:99/x\n", "test.yml:4:9: replica URL s3://b:99/x: a port needs"},
        {"      - url: s3://b/x\n        type: sftp\n",
         "type \"sftp\" does not match the url scheme \"s3\""},
        {"      - type: s3\n        path: x\n", "s3 replica: bucket required"},
        {"      - type: gcs\n", "gcs replica: bucket required"},
        {"      - type: sftp\n        host: h\n", "sftp replica: user required"},
        {"      - type: sftp\n        user: u\n", "sftp replica: host required"},
        {"      - name: x\n", "test.yml:4:9: file replica: path required"},
        {"      - url: s3://b/x\n      - url: s3://c/y\n",
         "test.yml:5:9: duplicate replica name \"s3\" (also at line 4)"},
        {"      - {url: s3://b/x, name: a}\n      - {path: /r, name: a}\n",
         "duplicate replica name \"a\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text), "%s%s", pre, cases[i].body);
        defaults_err(text, cases[i].frag);
    }
    defaults_err("dbs:\n  - replicas: []\n", "test.yml:2:5: db: path required");
    defaults_err("dbs:\n  - path: /x.db\nsocket:\n  permissions: 0999\n",
                 "socket.permissions: '0999' is not an octal file mode");
    defaults_err("dbs:\n  - path: /x.db\nsocket:\n  path: rel/x.sock\n",
                 "socket.path: 'rel/x.sock' must be an absolute path");
    defaults_err("dbs:\n  - path: /x.db\n  - path: /y/../x.db\n",
                 "test.yml:3:5: db /x.db is configured twice (also at line 2)");
    defaults_err("dbs:\n  - path: /x.db\n    min-checkpoint-page-count: 20000\n",
                 "max-checkpoint-page-count (10000) is below min-checkpoint-page-count (20000)");

    /* the url may be combined with region/endpoint, which then win */
    ls_config *cfg = parse_defaults("dbs:\n  - path: /x.db\n    replicas:\n"
                                    "      - url: s3://b.s3.us-west-000.backblazeb2.com/p\n"
                                    "        region: eu-central-003\n"
                                    "      - url: s3://plain/q\n"
                                    "        name: aws\n"
                                    "        endpoint: http://127.0.0.1:9000\n"
                                    "      - url: s3://plain/q\n"
                                    "        name: aws2\n"
                                    "        endpoint: http://127.0.0.1:9000\n"
                                    "        force-path-style: false\n");
    ls_replica_cfg *r = cfg->dbs[0].replicas;
    eq(r[0].bucket, "b");
    eq(r[0].region, "eu-central-003");
    eq(r[0].endpoint, "https://s3.us-west-000.backblazeb2.com");
    assert_int_equal(r[0].force_path_style, 1);
    eq(r[1].bucket, "plain");
    eq(r[1].endpoint, "http://127.0.0.1:9000");
    assert_int_equal(r[1].force_path_style, 1); /* endpoint set: path style */
    assert_int_equal(r[2].force_path_style, 0); /* unless said otherwise */
    ls_config_free(cfg);
}

static void test_url_forms_in_config(void **state)
{
    (void)state;
    ls_config *cfg = parse_defaults("dbs:\n  - path: /x.db\n    replicas:\n"
                                    "      - url: file:///var/backups/x\n"
                                    "      - url: gcs://gb/pre/fix\n"
                                    "      - url: abs://acct@cont/p\n"
                                    "      - url: sftp://bob:pw%21@h.example:2200/srv/x\n"
                                    "      - url: sftp://h2.example/y\n"
                                    "        name: sftp2\n"
                                    "        user: carol\n"
                                    "        password: own\n"
                                    "      - url: relative/dir\n"
                                    "        name: bare\n"
                                    "      - type: abs\n"
                                    "        name: abs2\n"
                                    "        account-name: acct2\n"
                                    "        bucket: cont2\n");
    ls_replica_cfg *r = cfg->dbs[0].replicas;
    eq(r[0].type, "file");
    eq(r[0].path, "/var/backups/x");
    eq(r[1].type, "gcs");
    eq(r[1].bucket, "gb");
    eq(r[1].path, "pre/fix");
    eq(r[2].type, "abs");
    eq(r[2].account_name, "acct");
    eq(r[2].bucket, "cont");
    eq(r[2].path, "p");
    eq(r[3].type, "sftp");
    eq(r[3].host, "h.example:2200");
    eq(r[3].user, "bob");
    eq(r[3].password, "pw!");
    eq(r[3].path, "srv/x");
    eq(r[4].host, "h2.example");
    eq(r[4].user, "carol");
    eq(r[4].password, "own");
    char cwd[PATH_MAX], want[PATH_MAX + 16];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    char *rcwd = realpath(cwd, NULL);
    snprintf(want, sizeof(want), "%s/relative/dir", rcwd);
    free(rcwd);
    eq(r[5].type, "file");
    eq(r[5].path, want);
    eq(r[6].name, "abs2");
    eq(r[6].account_name, "acct2");
    eq(r[6].bucket, "cont2");
    eq(r[6].path, "");
    ls_config_free(cfg);
}

static void test_db_paths(void **state)
{
    (void)state;
    char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    char sub[PATH_MAX];
    snprintf(sub, sizeof(sub), "%s/d", F->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(sub, sizeof(sub), "%s/link", F->dir);
    assert_int_equal(symlink("d", sub), 0);

    setenv("HOME", F->dir, 1);
    ls_config *cfg = parse_defaults("dbs:\n  - path: ~/link/a.db\n  - path: ~/missing/b.db\n"
                                    "    meta-path: ~/m\n");
    eq(cfg->dbs[0].path, in_dir("/d/a.db"));        /* directory through realpath */
    eq(cfg->dbs[0].meta_path, in_dir("/d/.a.db-litesafe"));
    char want[PATH_MAX];
    snprintf(want, sizeof(want), "%s/missing/b.db", F->dir); /* no such dir: lexical */
    eq(cfg->dbs[1].path, want);
    snprintf(want, sizeof(want), "%s/m", F->real);
    eq(cfg->dbs[1].meta_path, want);
    ls_config_free(cfg);
    defaults_err("dbs:\n  - path: /\n", "test.yml:2:5: db path: /: not a file path");
    unsetenv("HOME");
    setenv("HOME", "", 1);
    /* without $HOME the password database gives the home directory */
    cfg = parse_defaults("dbs:\n  - path: ~/x.db\n");
    assert_int_equal(cfg->dbs[0].path[0], '/');
    ls_config_free(cfg);
    if (home) {
        setenv("HOME", home, 1);
        free(home);
    } else {
        unsetenv("HOME");
    }
}

/* The s3 replica's credentials after defaults, for a config with `extra` keys. */
static void creds(const char *global, const char *own, const char *want_key,
                  const char *want_secret, const char *want_token)
{
    char text[512];
    snprintf(text, sizeof(text), "%sdbs:\n  - path: /x.db\n    replicas:\n"
                                 "      - url: s3://b/x\n%s",
             global, own);
    ls_config *cfg = parse_defaults(text);
    ls_replica_cfg *r = &cfg->dbs[0].replicas[0];
    eq(r->access_key_id, want_key);
    eq(r->secret_access_key, want_secret);
    eq(r->session_token, want_token);
    ls_config_free(cfg);
}

static void test_credentials(void **state)
{
    (void)state;
    creds("", "", NULL, NULL, NULL);

    setenv("AWS_ACCESS_KEY_ID", "AWSKEY", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "AWSSECRET", 1);
    setenv("AWS_SESSION_TOKEN", "AWSTOKEN", 1);
    creds("", "", "AWSKEY", "AWSSECRET", "AWSTOKEN");

    setenv("LITESTREAM_ACCESS_KEY_ID", "LSKEY", 1);
    setenv("LITESTREAM_SECRET_ACCESS_KEY", "LSSECRET", 1);
    creds("", "", "LSKEY", "LSSECRET", "AWSTOKEN"); /* Litestream copies into AWS_* */

    setenv("LITESAFE_ACCESS_KEY_ID", "SAFEKEY", 1);
    setenv("LITESAFE_SECRET_ACCESS_KEY", "SAFESECRET", 1);
    creds("", "", "SAFEKEY", "SAFESECRET", NULL); /* AWS token belongs to another key */
    setenv("LITESAFE_SESSION_TOKEN", "SAFETOKEN", 1);
    creds("", "", "SAFEKEY", "SAFESECRET", "SAFETOKEN");

    /* the config wins over the environment; the replica over the top level */
    creds("access-key-id: G\nsecret-access-key: GS\n", "", "G", "GS", NULL);
    creds("access-key-id: G\nsecret-access-key: GS\n",
          "        access-key-id: R\n        session-token: RT\n", "R", "GS", "RT");
    /* a key in the file, the secret from the environment */
    creds("access-key-id: G\n", "", "G", "SAFESECRET", NULL);
    /* a key id from the environment brings its own family's secret and token;
     * empty variables count as unset */
    setenv("LITESAFE_ACCESS_KEY_ID", "", 1);
    creds("", "", "LSKEY", "LSSECRET", "AWSTOKEN");
    unsetenv("LITESTREAM_SECRET_ACCESS_KEY");
    creds("", "", "LSKEY", NULL, "AWSTOKEN"); /* never a secret of another family */

    /* the environment is for s3 only; top-level keys go everywhere (Litestream) */
    ls_config *cfg = parse_defaults("access-key-id: G\ndbs:\n  - path: /x.db\n    replicas:\n"
                                    "      - path: /r\n");
    eq(cfg->dbs[0].replicas[0].access_key_id, "G");
    eq(cfg->dbs[0].replicas[0].secret_access_key, NULL);
    ls_config_free(cfg);

    /* abs account key */
    const char *abs = "dbs:\n  - path: /x.db\n    replicas:\n      - url: abs://a@c/p\n";
    cfg = parse_defaults(abs);
    eq(cfg->dbs[0].replicas[0].account_key, NULL);
    eq(cfg->dbs[0].replicas[0].access_key_id, NULL);
    ls_config_free(cfg);
    setenv("LITESTREAM_AZURE_ACCOUNT_KEY", "LSAZ", 1);
    cfg = parse_defaults(abs);
    eq(cfg->dbs[0].replicas[0].account_key, "LSAZ");
    ls_config_free(cfg);
    setenv("LITESAFE_AZURE_ACCOUNT_KEY", "SAFEAZ", 1);
    cfg = parse_defaults(abs);
    eq(cfg->dbs[0].replicas[0].account_key, "SAFEAZ");
    ls_config_free(cfg);
    cfg = parse_defaults("dbs:\n  - path: /x.db\n    replicas:\n      - url: abs://a@c/p\n"
                         "        account-key: OWN\n");
    eq(cfg->dbs[0].replicas[0].account_key, "OWN");
    ls_config_free(cfg);

    for (int i = 0; env_vars[i]; i++)
        unsetenv(env_vars[i]);
}

static void test_load_and_paths(void **state)
{
    (void)state;
    char path[PATH_MAX];
    ls_config *cfg = NULL;

    unsetenv("LITESAFE_CONFIG");
    assert_string_equal(ls_config_default_path(), "/etc/litesafe.yml");
    setenv("LITESAFE_CONFIG", "/srv/l.yml", 1);
    assert_string_equal(ls_config_default_path(), "/srv/l.yml");
    setenv("LITESAFE_CONFIG", "", 1);
    assert_string_equal(ls_config_default_path(), "/etc/litesafe.yml");
    unsetenv("LITESAFE_CONFIG");

    snprintf(path, sizeof(path), "%s/litesafe.yml", F->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("dbs:\n  - path: /x.db\n    replicas:\n      - url: s3://$LS_T_LOAD/p\n"
          "        bogus: 1\n",
          f);
    fclose(f);
    setenv("LS_T_LOAD", "loaded", 1);
    assert_int_equal(ls_config_load(F->ctx, path, 1, &cfg), LS_EUSAGE);
    assert_null(cfg);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof(want), "%s:5:9: unknown key \"bogus\"", path);
    has(ls_errmsg(F->ctx), want);

    f = fopen(path, "w");
    fputs("dbs:\n  - path: /x.db\n    replicas:\n      - url: s3://$LS_T_LOAD/p\n", f);
    fclose(f);
    assert_int_equal(ls_config_load(F->ctx, path, 1, &cfg), 0);
    eq(cfg->source, path);
    eq(cfg->dbs[0].replicas[0].url, "s3://loaded/p");
    ls_config_free(cfg);

    snprintf(path, sizeof(path), "%s/missing.yml", F->dir);
    assert_int_equal(ls_config_load(F->ctx, path, 1, &cfg), LS_ENOENT);
    assert_null(cfg);
    has(ls_errmsg(F->ctx), "open ");
    assert_int_equal(ls_config_load(F->ctx, F->dir, 1, &cfg), LS_EIO); /* a directory */
    ls_config_free(NULL);
}

static void test_from_urls(void **state)
{
    (void)state;
    const char *urls[] = {"s3://b/p", "file:///var/r", "sftp://u@h/x"};
    ls_config *cfg = NULL;
    assert_int_equal(ls_config_from_urls(F->ctx, "/x.db", urls, 0, &cfg), LS_EUSAGE);
    has(ls_errmsg(F->ctx), "at least one replica URL");
    assert_int_equal(ls_config_from_urls(F->ctx, "/x.db", urls, 3, &cfg), 0);
    assert_int_equal(ls_config_apply_defaults(F->ctx, cfg), 0);
    eq(cfg->source, "<args>");
    assert_int_equal(cfg->dbs[0].n_replicas, 3);
    eq(cfg->dbs[0].replicas[0].name, "s3");
    eq(cfg->dbs[0].replicas[1].name, "file");
    eq(cfg->dbs[0].replicas[2].name, "sftp");
    assert_int_equal(cfg->dbs[0].replicas[0].sync_interval_ms, 1000); /* s3 */
    assert_int_equal(cfg->dbs[0].replicas[1].sync_interval_ms, 0);    /* file */
    assert_int_equal(cfg->dbs[0].replicas[2].sync_interval_ms, 1000); /* sftp */
    ls_config_free(cfg);

    const char *bad[] = {"s3://b/p", "gopher://x/y"};
    assert_int_equal(ls_config_from_urls(F->ctx, "/x.db", bad, 2, &cfg), 0);
    assert_int_equal(ls_config_apply_defaults(F->ctx, cfg), LS_EUSAGE);
    has(ls_errmsg(F->ctx), "<args>: replica URL gopher://x/y: unknown scheme");
    ls_config_free(cfg);
}

/* ---- Litestream 0.5 ---------------------------------------------------- */

static void test_05_replica_mapping(void **state)
{
    (void)state;
    ls_config *cfg = parse_defaults("dbs:\n"
                                    "  - path: /tmp/x.db\n"
                                    "    replica:\n"
                                    "      url: s3://b/app\n"
                                    "      sync-interval: 5s\n");
    assert_int_equal(cfg->dbs[0].n_replicas, 1);
    ls_replica_cfg *r = &cfg->dbs[0].replicas[0];
    eq(r->type, "s3");
    eq(r->name, "s3");
    eq(r->bucket, "b");
    assert_int_equal(r->sync_interval_ms, 5000);
    assert_int_equal(r->line, 4);
    assert_int_equal(r->col, 7);
    ls_config_free(cfg);
    /* a null replica: with a list is fine (nothing given twice) */
    cfg = parse("dbs:\n  - path: /x.db\n    replica:\n    replicas:\n      - url: s3://b/x\n");
    assert_int_equal(cfg->dbs[0].n_replicas, 1);
    ls_config_free(cfg);
    parse_err("dbs:\n  - path: /x.db\n    replica:\n      url: s3://b/x\n"
              "    replicas:\n      - url: s3://c/x\n",
              "test.yml:5:5: replicas: replica and replicas cannot both be set");
    parse_err("dbs:\n  - path: /x.db\n    replicas:\n      - url: s3://c/x\n"
              "    replica:\n      url: s3://b/x\n",
              "test.yml:5:5: replica: replica and replicas cannot both be set");
    parse_err("dbs:\n  - path: /x.db\n    replica:\n      - url: s3://b/x\n",
              "replica: expected a mapping (one replica; replicas: takes a list), got a list");
    parse_err("dbs:\n  - path: /x.db\n    replica:\n      bogus: 1\n",
              "test.yml:4:7: unknown key \"bogus\" in replica");
}

static void test_05_settings_inherited(void **state)
{
    (void)state;
    ls_config *cfg = parse_defaults("sync-interval: 10s\n"
                                    "region: eu-west-1\n"
                                    "endpoint: https://s3.example.com\n"
                                    "bucket: topbucket\n"
                                    "access-key-id: TOPKEY\n"
                                    "secret-access-key: TOPSECRET\n"
                                    "host-key: SHA256:ejdfwXoY1W1s6NBG5r+cNuC5y6JFh/Zq4ULwz+PGElw\n"
                                    "age:\n  recipients: [age1wnd7v5exqna6uvstvxjw7urpesn3zf4zpnegrydl5spqlukevg4s6g54uz]\n"
                                    "snapshot:\n  interval: 12h\n  retention: 72h\n"
                                    "validation:\n  interval: 6h\n"
                                    "dbs:\n"
                                    "  - path: /tmp/a.db\n"
                                    "    sync-interval: 2s\n"
                                    "    snapshot:\n      interval: 1h\n"
                                    "    replicas:\n"
                                    "      - type: s3\n        path: a\n"
                                    "      - type: s3\n        name: own\n        path: a2\n"
                                    "        sync-interval: 1s\n        bucket: ownbucket\n"
                                    "        retention: 1h\n        force-path-style: false\n"
                                    "      - url: s3://urlbucket.localhost:9000/u\n"
                                    "        name: url\n"
                                    "  - path: /tmp/b.db\n"
                                    "    replica:\n"
                                    "      type: sftp\n      host: h\n      user: u\n");
    ls_replica_cfg *r = &cfg->dbs[0].replicas[0];
    assert_int_equal(r->sync_interval_ms, 2000);        /* the db's */
    assert_int_equal(r->snapshot_interval_ms, 3600000); /* the db's snapshot: */
    assert_int_equal(r->retention_ms, 72 * 3600000LL);  /* the top's snapshot: */
    assert_int_equal(r->validation_interval_ms, 6 * 3600000LL);
    eq(r->bucket, "topbucket");
    eq(r->region, "eu-west-1");
    eq(r->endpoint, "https://s3.example.com");
    assert_int_equal(r->force_path_style, 1); /* an endpoint means path style */
    eq(r->access_key_id, "TOPKEY");
    eq(r->secret_access_key, "TOPSECRET");
    assert_int_equal(r->n_age_recipients, 1);
    eq(r->age_recipients[0], "age1wnd7v5exqna6uvstvxjw7urpesn3zf4zpnegrydl5spqlukevg4s6g54uz");
    r = &cfg->dbs[0].replicas[1];
    assert_int_equal(r->sync_interval_ms, 1000); /* its own wins */
    eq(r->bucket, "ownbucket");
    assert_int_equal(r->retention_ms, 3600000);
    assert_int_equal(r->force_path_style, 0);
    r = &cfg->dbs[0].replicas[2];
    eq(r->bucket, "urlbucket"); /* the URL's parts beat the defaults */
    eq(r->endpoint, "http://localhost:9000");
    eq(r->region, "us-east-1");
    r = &cfg->dbs[1].replicas[0];
    assert_int_equal(r->sync_interval_ms, 10000); /* the top's */
    assert_int_equal(r->snapshot_interval_ms, 12 * 3600000LL);
    eq(r->host_key, "SHA256:ejdfwXoY1W1s6NBG5r+cNuC5y6JFh/Zq4ULwz+PGElw");
    assert_int_equal(cfg->shutdown_timeout_ms, 30000);
    ls_config_free(cfg);

    /* retention.enabled: false keeps everything, unless a replica says otherwise */
    cfg = parse_defaults("retention:\n  enabled: false\n"
                         "dbs:\n  - path: /tmp/a.db\n    replicas:\n"
                         "      - path: /tmp/r1\n      - path: /tmp/r2\n        name: two\n"
                         "        retention: 2h\n");
    assert_int_equal(cfg->retention_enabled, 0);
    assert_int_equal(cfg->dbs[0].replicas[0].retention_ms, 0);
    assert_int_equal(cfg->dbs[0].replicas[1].retention_ms, 7200000);
    ls_config_free(cfg);
    cfg = parse_defaults("retention:\n  enabled: true\ndbs:\n  - path: /tmp/a.db\n"
                         "    replica:\n      path: /tmp/r1\n");
    assert_int_equal(cfg->dbs[0].replicas[0].retention_ms, 24 * 3600000LL);
    ls_config_free(cfg);
    defaults_err("retention:\n  enabled: false\nsnapshot:\n  retention: 1h\n"
                 "dbs:\n  - path: /tmp/a.db\n",
                 "retention.enabled: false (keep everything) contradicts snapshot.retention");
    parse_err("validation-interval: 1h\nvalidation:\n  interval: 2h\n",
              "test.yml:3:3: validation.interval: the same setting as validation-interval");
    parse_err("snapshot:\n  intervall: 1h\n",
              "unknown key \"snapshot.intervall\" in snapshot (did you mean \"snapshot.interval\"");
    parse_err("type: s3\n", "unknown key \"type\" in the top level: it is a replica key");
}

static void test_05_compat_keys(void **state)
{
    (void)state;
    /* accepted: empty, or the value litesafe honours anyway */
    ls_config *cfg = parse("levels: []\nl0-retention:\nmcp-addr: \"\"\nheartbeat-url: ''\n"
                           "verify-compaction: false\n"
                           "socket:\n  enabled: no\n  path: /run/x.sock\n  permissions: 0600\n"
                           "logging:\n  source: false\n"
                           "concurrent-writes: false\nsign-payload: true\n"
                           "require-content-md5: yes\nauto-recover: true\n"
                           "max-sync-ltx-files: 0\nstorage-class: standard\n"
                           "dbs:\n  - path: /x.db\n    watch: false\n    max-sync-wal-bytes: 0\n"
                           "    restore-if-db-not-exists: false\n"
                           "    replica:\n      url: s3://b/x\n      concurrent-writes: true\n"
                           "      sse-customer-key:\n      jwt: ''\n");
    ls_config_free(cfg);
    static const struct {
        const char *text, *frag;
    } bad[] = {
        {"levels:\n  - interval: 5m\n", "test.yml:1:1: levels: Litestream 0.5's compaction levels"},
        {"l0-retention: 5m\n", "l0-retention: litesafe has no L0 files"},
        {"verify-compaction: true\n", "verify-compaction: litesafe does not compact"},
        {"verify-compaction: maybe\n", "verify-compaction: expected a boolean"},
        {"logging:\n  source: on\n", "logging.source: litesafe's log lines"},
        {"mcp-addr: :3001\n", "mcp-addr: litesafe has no MCP server"},
        {"shutdown-sync-interval: 1s\n", "shutdown-sync-interval: litesafe retries"},
        {"heartbeat-interval: 1m\n", "heartbeat-interval: litesafe sends no heartbeats"},
        {"sign-payload: false\n", "sign-payload: litesafe always signs"},
        {"max-sync-ltx-files: 5\n", "max-sync-ltx-files: litesafe uploads everything"},
        {"max-sync-ltx-files: many\n", "max-sync-ltx-files: expected a number"},
        {"storage-class: GLACIER\n", "storage-class: litesafe stores objects"},
        {"dbs:\n  - path: /x.db\n    watch: true\n", "test.yml:3:5: watch: litesafe scans dir"},
        {"dbs:\n  - path: /x.db\n    restore-if-db-not-exists: true\n",
         "restore-if-db-not-exists: replicate does not restore"},
        {"dbs:\n  - path: /x.db\n    replica:\n      part-size: 5MB\n",
         "test.yml:4:7: part-size: litesafe uploads in parts"},
        {"dbs:\n  - path: /x.db\n    replica:\n      root-cas: [a]\n", "root-cas: a NATS replica"},
        {"dbs:\n  - path: /x.db\n    replica:\n      webdav-url: http://x\n",
         "webdav-url: WebDAV replicas are not supported"},
        {"dbs:\n  - path: /x.db\n    replica:\n      sse-kms-key-id: k\n",
         "sse-kms-key-id: litesafe sends no server-side encryption"},
        {"dbs:\n  - path: /x.db\n    replica:\n      type: nats\n",
         "test.yml:4:7: type: \"nats\": NATS JetStream replicas are not supported"},
        {"dbs:\n  - path: /x.db\n    replica:\n      type: OSS\n",
         "type: \"OSS\": litesafe has no oss"},
        {"dbs:\n  - path: /x.db\n    replica:\n      type: ftp\n",
         "type: \"ftp\" is not one of file, s3, gcs, abs, sftp, gs"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        parse_err(bad[i].text, bad[i].frag);
}

static void test_05_db_keys(void **state)
{
    (void)state;
    ls_config *cfg = parse_defaults("dbs:\n"
                                    "  - path: /tmp/a.db\n    truncate-page-n: 50000\n"
                                    "    busy-timeout: 2s\n"
                                    "  - path: /tmp/b.db\n    truncate-page-n: 0\n"
                                    "    busy-timeout: 0\n"
                                    "  - path: /tmp/c.db\n"
                                    "  - path: /tmp/d.db\n    replica:\n      type: gs\n"
                                    "      bucket: gb\n"
                                    "  - path: /tmp/e.db\n    replica:\n      url: gs://gb2/p\n");
    assert_int_equal(cfg->dbs[0].max_checkpoint_page_count, 50000);
    assert_int_equal(cfg->dbs[0].busy_timeout_ms, 2000);
    assert_int_equal(cfg->dbs[1].max_checkpoint_page_count, 10000); /* 0: 0.5's default */
    assert_int_equal(cfg->dbs[1].busy_timeout_ms, 1);               /* "do not wait" */
    assert_int_equal(cfg->dbs[2].busy_timeout_ms, 0);               /* the engine's own */
    eq(cfg->dbs[3].replicas[0].type, "gcs");
    eq(cfg->dbs[3].replicas[0].name, "gcs");
    eq(cfg->dbs[4].replicas[0].type, "gcs");
    eq(cfg->dbs[4].replicas[0].bucket, "gb2");
    ls_config_free(cfg);
    parse_err("dbs:\n  - path: /x.db\n    max-checkpoint-page-count: 5000\n"
              "    truncate-page-n: 6000\n",
              "test.yml:4:5: truncate-page-n: the same setting as max-checkpoint-page-count");
    parse_err("dbs:\n  - path: /x.db\n    truncate-page-n: -1\n", "truncate-page-n must be >= 0");
    defaults_err("dbs:\n  - path: /x.db\n    busy-timeout: 2m\n", "busy-timeout is at most 1m");
    defaults_err("dbs:\n  - path: /x.db\n    replica:\n      type: gs\n",
                 "gcs replica: bucket required");
}

static void test_shutdown_timeout(void **state)
{
    (void)state;
    const char *dbs = "dbs:\n  - path: /tmp/a.db\n";
    char text[256];
    static const struct {
        const char *line;
        int64_t want;
    } ok[] = {
        {"", 30000},
        {"shutdown-timeout: 0\n", 0},
        {"shutdown-timeout: 1m30s\n", 90000},
        {"shutdown-sync-timeout: 5s\n", 5000},
        {"shutdown-timeout:\nshutdown-sync-timeout: 7s\n", 7000},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        snprintf(text, sizeof(text), "%s%s", ok[i].line, dbs);
        ls_config *cfg = parse(text);
        assert_int_equal(cfg->shutdown_timeout_ms, *ok[i].line ? ok[i].want : -1);
        assert_int_equal(ls_config_apply_defaults(F->ctx, cfg), 0);
        assert_int_equal(cfg->shutdown_timeout_ms, ok[i].want);
        ls_config_free(cfg);
    }
    parse_err("shutdown-timeout: -1s\n", "test.yml:1:1: shutdown-timeout: expected a duration");
    parse_err("shutdown-timeout: 30\n", "shutdown-timeout: expected a duration with a unit");
    parse_err("shutdown-timeout: [1s]\n", "expected a duration, got a list");
    parse_err("shutdown-timeout: 1s\nshutdown-sync-timeout: 1s\n",
              "test.yml:2:1: shutdown-sync-timeout: the same setting as shutdown-timeout, which "
              "is set too");
    parse_err("shutdown-timeout: 1s\nshutdown-timeout: 2s\n", "duplicate key \"shutdown-timeout\"");
}

/* health-max-lag: a duration, 1 min by default, read through the public accessor. */
static void test_health_max_lag(void **state)
{
    (void)state;
    ls_config *cfg = parse_defaults("dbs:\n  - path: /tmp/a.db\n");
    assert_int_equal(ls_config_health_max_lag_ms(cfg), 60000);
    assert_null(ls_config_addr(cfg));
    ls_config_free(cfg);
    cfg = parse_defaults("addr: \":9090\"\nhealth-max-lag: 15s\ndbs:\n  - path: /tmp/a.db\n");
    assert_int_equal(ls_config_health_max_lag_ms(cfg), 15000);
    assert_string_equal(ls_config_addr(cfg), ":9090");
    ls_config_free(cfg);
    parse_err("health-max-lag: 60\n", "health-max-lag: expected a duration with a unit");
    parse_err("health-max-lag: soon\n", "test.yml:1:1: health-max-lag: expected a duration");
}

/* sync-interval and request-price defaults follow the replica's type; the price inherits. */
static void test_remote_defaults(void **state)
{
    (void)state;
    ls_config *cfg = parse_defaults("dbs:\n  - path: /tmp/a.db\n    replicas:\n"
                                    "      - url: s3://b/p\n      - url: file:///tmp/r\n"
                                    "      - url: sftp://u@h/x\n      - url: abs://acct@c/p\n");
    ls_replica_cfg *r = cfg->dbs[0].replicas;
    assert_int_equal(r[0].sync_interval_ms, 1000);
    assert_int_equal(r[1].sync_interval_ms, 0);
    assert_int_equal(r[2].sync_interval_ms, 1000);
    assert_int_equal(r[3].sync_interval_ms, 1000);
    assert_true(r[0].price_per_1k == 0.005 && r[3].price_per_1k == 0.005);
    assert_true(r[1].price_per_1k == 0 && r[2].price_per_1k == 0);
    ls_config_free(cfg);
    cfg = parse_defaults("request-price: 0.0045\nsync-interval: 0s\ndbs:\n  - path: /tmp/a.db\n"
                         "    replicas:\n      - url: s3://b/p\n"
                         "      - url: s3://b/q\n        name: q\n        request-price: 0\n");
    r = cfg->dbs[0].replicas;
    assert_int_equal(r[0].sync_interval_ms, 0); /* set: kept */
    assert_true(r[0].price_per_1k == 0.0045 && r[1].price_per_1k == 0);
    ls_config_free(cfg);
    defaults_err("request-price: cheap\ndbs:\n  - path: /x.db\n    replicas:\n"
                 "      - url: s3://b/p\n", "bad request-price \"cheap\"");
    defaults_err("dbs:\n  - path: /x.db\n    replicas:\n      - url: s3://b/p\n"
                 "        request-price: -1\n", "bad request-price \"-1\"");
}

/* A file under F->dir: a SQLite header (sqlite) or some text. */
static void put_file(const char *rel, int sqlite)
{
    char path[PATH_MAX], cmd[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/%s", F->dir, rel);
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", path);
    *strrchr(cmd, '/') = '\0';
    strcat(cmd, "'");
    assert_int_equal(system(cmd), 0);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (sqlite)
        fwrite("SQLite format 3\0 and more", 1, 26, f);
    else
        fputs("not a database", f);
    fclose(f);
}

static void test_dir_entries(void **state)
{
    (void)state;
    put_file("data/b.db", 1);
    put_file("data/a.db", 1);
    put_file("data/notes.db", 0);
    put_file("data/c.sqlite", 1);
    put_file("data/sub/d.db", 1);
    put_file("data/.a.db-litesafe/x.db", 1); /* a meta directory is never scanned */
    char text[1024];
    snprintf(text, sizeof(text),
             "dbs:\n"
             "  - path: %s/first.db\n"
             "  - dir: %s/data\n"
             "    pattern: \"*.db\"\n"
             "    recursive: true\n"
             "    meta-dir: %s/meta\n"
             "    sync-interval: 3s\n"
             "    replicas:\n"
             "      - url: s3://bkt/prefix\n"
             "      - path: %s/rep\n"
             "  - path: %s/last.db\n",
             F->dir, F->dir, F->dir, F->dir, F->dir);
    ls_config *cfg = parse_defaults(text);
    assert_int_equal(cfg->n_dbs, 5);
    eq(cfg->dbs[0].path, in_dir("/first.db"));
    eq(cfg->dbs[1].path, in_dir("/data/a.db"));
    eq(cfg->dbs[1].rel_path, "a.db");
    eq(cfg->dbs[1].meta_path, in_dir("/meta/.a.db-litesafe"));
    eq(cfg->dbs[1].replicas[0].path, "prefix/a.db");
    eq(cfg->dbs[1].replicas[1].path, in_dir("/rep/a.db"));
    assert_int_equal(cfg->dbs[1].replicas[0].sync_interval_ms, 3000);
    eq(cfg->dbs[2].path, in_dir("/data/b.db"));
    eq(cfg->dbs[3].path, in_dir("/data/sub/d.db"));
    eq(cfg->dbs[3].meta_path, in_dir("/meta/sub/.d.db-litesafe"));
    eq(cfg->dbs[3].replicas[0].path, "prefix/sub/d.db");
    eq(cfg->dbs[3].replicas[1].path, in_dir("/rep/sub/d.db"));
    eq(cfg->dbs[3].dir, NULL);
    eq(cfg->dbs[4].path, in_dir("/last.db"));
    eq(cfg->dbs[4].rel_path, NULL);
    assert_ptr_equal(ls_config_find_db(cfg, in_dir("/data/sub/d.db")), &cfg->dbs[3]);
    ls_config_free(cfg);

    /* not recursive, default meta paths next to each database */
    snprintf(text, sizeof(text),
             "dbs:\n  - dir: %s/data\n    pattern: \"[ab].db\"\n    replica:\n"
             "      path: %s/rep\n",
             F->dir, F->dir);
    cfg = parse_defaults(text);
    assert_int_equal(cfg->n_dbs, 2);
    eq(cfg->dbs[0].meta_path, in_dir("/data/.a.db-litesafe"));
    eq(cfg->dbs[1].path, in_dir("/data/b.db"));
    ls_config_free(cfg);

    snprintf(text, sizeof(text), "dbs:\n  - dir: %s/data\n    pattern: \"*.none\"\n", F->dir);
    defaults_err(text, "test.yml:2:5: db: no SQLite database in");
    snprintf(text, sizeof(text), "dbs:\n  - dir: %s/missing\n    pattern: \"*.db\"\n", F->dir);
    defaults_err(text, "cannot read it");
    defaults_err("dbs:\n  - dir: /tmp\n", "db: dir needs a pattern");
    defaults_err("dbs:\n  - dir: /tmp\n    path: /tmp/x.db\n    pattern: x\n",
                 "db: path and dir cannot both be set");
    defaults_err("dbs:\n  - path: /tmp/x.db\n    pattern: \"*.db\"\n",
                 "db: pattern only applies with dir");
    defaults_err("dbs:\n  - path: /tmp/x.db\n    meta-dir: /tmp/m\n",
                 "db: meta-dir only applies with dir");
    defaults_err("dbs:\n  - dir: /tmp\n    pattern: x\n    meta-dir: /a\n    meta-path: /b\n",
                 "meta-path and meta-dir cannot both be set");
    /* a database both listed and found */
    snprintf(text, sizeof(text),
             "dbs:\n  - path: %s/data/a.db\n  - dir: %s/data\n    pattern: a.db\n", F->dir, F->dir);
    defaults_err(text, "is configured twice");
}

static void test_pid_expand(void **state)
{
    (void)state;
    char want[64];
    setenv("PID", "not-this", 1);
    snprintf(want, sizeof(want), "/tmp/%ld/x-%ld", (long)getpid(), (long)getpid());
    expand_is("/tmp/$PID/x-${PID}", want);
    unsetenv("PID");
    expand_is("/tmp/$PID/x-${PID}", want);
}

/* The sftp replica with host-key `hk` must pass (want NULL) or fail with `want`. */
static void host_key_case(const char *hk, const char *want)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "dbs:\n  - path: /tmp/x.db\n    replica:\n      type: sftp\n      host: h\n"
             "      user: u\n      host-key: '%s'\n",
             hk);
    if (!want) {
        ls_config_free(parse_defaults(text));
        return;
    }
    defaults_err(text, want);
    has(ls_errmsg(F->ctx), "test.yml:4:7: sftp replica: host-key: ");
}

#define ED_KEY "AAAAC3NzaC1lZDI1NTE5AAAAIEb/DErStyjlWdRnZS4P7NJGfbeprvvjGp7ozV2uynFM"
#define ECDSA256_KEY                                                                               \
    "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEvIvbIvhLmhKyFmsuyLPPUK8/h6fzLNTleQN0JS" \
    "uHt4Z8nRohuJQkzCN36gdh1l8W+up4ZZThx+4D5TfwvtuX8="
#define ECDSA384_KEY                                                                               \
    "AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBJw4KSLvudIWyUHBlaaxSx9p7PLVwv9f8exz0giX" \
    "r/68a58J3SItob1m2n+1xyajflviRZXt5AhV73jw/eEpBB+XPyno1WDjE/tJoV+gUsUNtDZAgAkHggo7dBYSZNYk6Q=="
#define RSA_KEY                                                                                    \
    "AAAAB3NzaC1yc2EAAAADAQABAAAAgQDKtIT4Z7CVsG4pmjIJpPEALBxEOXJylSI/b3C8zFvcelbGQHp/i2VS4lcIif+K" \
    "O1xBCVHuHAsvIrBfRbz/UGE6hhHK/NWm0b1eelzE2SbBY5Hk3AvSKZ31Ld7v+coFdGegfLAF9qs27/sKR1Ll3m75SGIh" \
    "NCN1o6eVeihKUeKvWw=="

static void test_host_key_lines(void **state)
{
    (void)state;
    /* good: fingerprints, authorized-keys lines of every type, ssh-keyscan's form */
    host_key_case("SHA256:ejdfwXoY1W1s6NBG5r+cNuC5y6JFh/Zq4ULwz+PGElw", NULL);
    host_key_case("ejdfwXoY1W1s6NBG5r+cNuC5y6JFh/Zq4ULwz+PGElw=", NULL);
    host_key_case("ssh-ed25519 " ED_KEY, NULL);
    host_key_case("ssh-ed25519 " ED_KEY " root@backup host key", NULL);
    host_key_case("  ssh-ed25519\t" ED_KEY "  ", NULL);
    host_key_case("ecdsa-sha2-nistp256 " ECDSA256_KEY, NULL);
    host_key_case("ecdsa-sha2-nistp384 " ECDSA384_KEY " c", NULL);
    host_key_case("ssh-rsa " RSA_KEY, NULL);
    host_key_case("[backup.example.com]:2222 ssh-ed25519 " ED_KEY, NULL);
    host_key_case("from=\"10.0.0.1, 10.0.0.2\" ssh-ed25519 " ED_KEY, NULL);
    /* bad */
    host_key_case("SHA256:tooshort", "expected the server key's SHA-256 fingerprint");
    host_key_case("ssh-ed25519", "has no key after its type");
    host_key_case("ssh-ed25519 ", "has no key after its type");
    host_key_case("ssh-ed25519 not*base64", "the ssh-ed25519 key is not valid base64");
    host_key_case("ssh-ed25519 " ED_KEY "x", "not valid base64");
    host_key_case("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEb/DErStyjlWdRnZS4P7NJGfbeprvvjGp7ozV2u",
                  "not a well-formed ssh-ed25519 public key");
    host_key_case("ecdsa-sha2-nistp256 " ED_KEY, "not a well-formed ecdsa-sha2-nistp256");
    host_key_case("ecdsa-sha2-nistp384 " ECDSA256_KEY, "not a well-formed ecdsa-sha2-nistp384");
    host_key_case("ssh-rsa " ED_KEY, "not a well-formed ssh-rsa");
    host_key_case("ssh-foo " ED_KEY, "\"ssh-foo\" is not a key type litesafe can check");
    host_key_case("ssh-dss AAAAB3NzaC1kc3M=", "\"ssh-dss\" is not a key type");
    host_key_case("a b ssh-ed25519 " ED_KEY, "\"a\" is not a key type");
    /* only sftp replicas check it (a top-level default may meet other types) */
    ls_config_free(parse_defaults("host-key: garbage\ndbs:\n  - path: /tmp/x.db\n"
                                  "    replica:\n      path: /tmp/r\n"));
}

/* Where the control socket is: socket.path, a URL configuration's meta dir, or the run dir. */
static void test_socket_path(void **state)
{
    (void)state;
    char out[256];
    ls_config *cfg = parse_defaults("dbs:\n  - path: /d/x.db\nsocket:\n  path: /s/c.sock\n"
                                    "  permissions: \"0660\"\n");
    assert_int_equal(ls_config_socket(cfg, out, sizeof(out)), 0);
    assert_string_equal(out, "/s/c.sock");
    assert_int_equal(ls_config_socket_mode(cfg), 0660);
    assert_int_equal(ls_config_socket(cfg, out, 5), LS_EUSAGE);
    ls_config_free(cfg);

    cfg = parse_defaults("dbs:\n  - path: /d/x.db\nsocket:\n  enabled: false\n");
    assert_int_equal(ls_config_socket(cfg, out, sizeof(out)), LS_ENOENT);
    ls_config_free(cfg);

    setenv("XDG_RUNTIME_DIR", "/run/user/7", 1);
    cfg = parse_defaults("dbs:\n  - path: /d/x.db\n");
    assert_int_equal(ls_config_socket(cfg, out, sizeof(out)), 0);
    assert_string_equal(out, "/run/user/7/litesafe.sock");
    assert_int_equal(ls_config_socket_mode(cfg), 0600);
    ls_config_free(cfg);
    unsetenv("XDG_RUNTIME_DIR");

    const char *urls[] = {"file:///r"};
    assert_int_equal(ls_config_open_urls(F->ctx, "/d/x.db", urls, 1, &cfg), 0);
    assert_int_equal(ls_config_socket(cfg, out, sizeof(out)), 0);
    assert_string_equal(out, "/d/.x.db-litesafe/control.sock");
    ls_config_free(cfg);
}

/* ls_config_db_equal: the same settings, wherever they come from, or not. */
static void test_db_equal(void **state)
{
    (void)state;
    static const char base[] =
        "sync-interval: 1s\n"
        "dbs:\n  - path: /tmp/a.db\n    replicas:\n      - url: file:///tmp/ra\n"
        "  - path: /tmp/b.db\n    replica:\n      path: /tmp/rb\n";
    ls_config *a = parse_defaults(base), *b = parse_defaults(base);
    assert_int_equal(ls_config_db_equal(a, 0, b, 0), 1);
    assert_int_equal(ls_config_db_equal(a, 1, b, 1), 1);
    assert_int_equal(ls_config_db_equal(a, 0, b, 1), 0);
    assert_int_equal(ls_config_db_equal(a, 2, b, 2), 0); /* out of range */
    ls_config_free(b);
    static const char *const changed[] = {
        /* a top-level setting its replicas inherit */
        "sync-interval: 2s\n"
        "dbs:\n  - path: /tmp/a.db\n    replicas:\n      - url: file:///tmp/ra\n",
        /* a second replica */
        "sync-interval: 1s\n"
        "dbs:\n  - path: /tmp/a.db\n    replicas:\n      - url: file:///tmp/ra\n"
        "      - name: second\n        url: file:///tmp/ra2\n",
        /* a db key */
        "sync-interval: 1s\n"
        "dbs:\n  - path: /tmp/a.db\n    monitor-interval: 5s\n"
        "    replicas:\n      - url: file:///tmp/ra\n",
        /* a replica key */
        "sync-interval: 1s\n"
        "dbs:\n  - path: /tmp/a.db\n    replicas:\n      - url: file:///tmp/ra\n"
        "        retention: 1h\n",
    };
    for (size_t i = 0; i < sizeof(changed) / sizeof(changed[0]); i++) {
        b = parse_defaults(changed[i]);
        if (ls_config_db_equal(a, 0, b, 0))
            fail_msg("seen as unchanged:\n%s", changed[i]);
        ls_config_free(b);
    }
    /* Other databases and top-level keys no replica inherits do not count. */
    b = parse_defaults("sync-interval: 1s\nshutdown-timeout: 5s\nlogging:\n  level: debug\n"
                       "dbs:\n  - path: /tmp/a.db\n    replicas:\n      - url: file:///tmp/ra\n");
    assert_int_equal(ls_config_db_equal(a, 0, b, 0), 1);
    ls_config_free(b);
    ls_config_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_parse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_guard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_spool_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logging_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_expand, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_and_syntax, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replica_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_url_forms_in_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_and_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_from_urls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_05_replica_mapping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_05_settings_inherited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_05_compat_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_05_db_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_max_lag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remote_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pid_expand, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_key_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_db_equal, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
