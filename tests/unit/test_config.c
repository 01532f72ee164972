/*
 * test_config.c - the config file: a full Litestream-style config parsed into
 * the right fields, defaults, $VAR expansion, the strictness Litestream lacks
 * (unknown keys with positions and suggestions, wrong types, duplicates),
 * replica validation (url+path, names, required keys) and the precedence of
 * credentials from the config and the environment.
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
    "          identities: [AGE-SECRET-KEY-1XYZ]\n"
    "          recipients:\n"
    "            - age1aaa\n"
    "            - age1bbb\n"
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
    eq(cfg->access_key_id, "GLOBALKEY");
    eq(cfg->secret_access_key, "GLOBALSECRET");
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
    eq(r->age_identities[0], "AGE-SECRET-KEY-1XYZ");
    assert_int_equal(r->n_age_recipients, 2);
    eq(r->age_recipients[0], "age1aaa");
    eq(r->age_recipients[1], "age1bbb");

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
    assert_int_equal(r->sync_interval_ms, 0);
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
    parse_err("logging:\n  level: loud\n", "test.yml:2:3: level: \"loud\" is not one of debug");
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
    parse_err("dbs:\n  - path: /x.db\n    replicas:\n      - age:\n          recipient: [k]\n",
              "test.yml:5:11: unknown key \"recipient\" in age (did you mean \"recipients\"?)");
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
    assert_int_equal(cfg->dbs[0].replicas[0].sync_interval_ms, 0);
    ls_config_free(cfg);

    const char *bad[] = {"s3://b/p", "gopher://x/y"};
    assert_int_equal(ls_config_from_urls(F->ctx, "/x.db", bad, 2, &cfg), 0);
    assert_int_equal(ls_config_apply_defaults(F->ctx, cfg), LS_EUSAGE);
    has(ls_errmsg(F->ctx), "<args>: replica URL gopher://x/y: unknown scheme");
    ls_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_parse, setup, teardown),
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
