/*
 * test_url.c - replica URL parsing: every form Litestream 0.3 accepts (file,
 * s3 with each provider host rule, gcs, abs, sftp), path cleaning, percent
 * decoding, the "is it a URL" test, and the malformed URLs that must be
 * refused with a clear message; Litestream 0.5's forms (gs://, the s3 query
 * parameters, the schemes litesafe refuses with a replacement). Then one URL
 * of each scheme followed from this parser through the configuration into
 * the backend it opens: backends take fields only and never see the URL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"
#include "engine.h"
#include "storage.h"
#include "url.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ls_ctx *ctx;

static int setup(void **state)
{
    (void)state;
    return ls_ctx_new(&ctx);
}

static int teardown(void **state)
{
    (void)state;
    ls_ctx_free(ctx);
    return 0;
}

/* assert_string_equal that also accepts NULL == NULL */
static void eq(const char *got, const char *want)
{
    if (!want) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    assert_string_equal(got, want);
}

static void parse_ok(const char *s, ls_url *u)
{
    int rc = ls_url_parse(ctx, s, u);
    if (rc != 0)
        fail_msg("%s: %s", s, ls_errmsg(ctx));
}

/* Parse must fail with LS_EUSAGE and a message containing `frag`. */
static void parse_bad(const char *s, const char *frag)
{
    ls_url u;
    ls_err_clear(ctx);
    int rc = ls_url_parse(ctx, s, &u);
    ls_url_free(&u);
    if (rc != LS_EUSAGE)
        fail_msg("%s: expected LS_EUSAGE, got %d", s, rc);
    if (!strstr(ls_errmsg(ctx), frag))
        fail_msg("%s: message \"%s\" lacks \"%s\"", s, ls_errmsg(ctx), frag);
}

static void test_is_url(void **state)
{
    (void)state;
    assert_true(ls_url_is_url("s3://bucket/x"));
    assert_true(ls_url_is_url("file:///x"));
    assert_true(ls_url_is_url("my_scheme1://x"));
    assert_false(ls_url_is_url("file:/x"));
    assert_false(ls_url_is_url("/var/lib/db"));
    assert_false(ls_url_is_url("://x"));
    assert_false(ls_url_is_url("s-3://x"));
    assert_false(ls_url_is_url(""));
    assert_false(ls_url_is_url(NULL));
}

static void test_file(void **state)
{
    (void)state;
    ls_url u;
    parse_ok("file:///var/lib/backups/db", &u);
    eq(u.scheme, "file");
    eq(u.path, "/var/lib/backups/db");
    eq(u.host, NULL);
    eq(u.bucket, NULL);
    assert_int_equal(u.port, 0);
    ls_url_free(&u);

    /* cleaned; query and fragment ignored; localhost allowed; %-decoded */
    parse_ok("file://localhost//a/./b/../c/?x=1#frag", &u);
    eq(u.path, "/a/c");
    ls_url_free(&u);
    parse_ok("file:///a%20b/c", &u);
    eq(u.path, "/a b/c");
    ls_url_free(&u);
    parse_ok("FILE:///x", &u);
    eq(u.scheme, "file");
    ls_url_free(&u);
    parse_ok("FILE://localhost/tmp/a%20b//?query#frag", &u);
    eq(u.path, "/tmp/a b");
    ls_url_free(&u);

    /* a bare path is a file replica, kept as given */
    parse_ok("backups/db", &u);
    eq(u.scheme, "file");
    eq(u.path, "backups/db");
    ls_url_free(&u);
    parse_ok("/abs/dir", &u);
    eq(u.path, "/abs/dir");
    ls_url_free(&u);
}

static void test_s3_aws(void **state)
{
    (void)state;
    ls_url u;
    parse_ok("s3://mybucket/db/path/", &u);
    eq(u.scheme, "s3");
    eq(u.bucket, "mybucket");
    eq(u.host, "mybucket");
    eq(u.path, "db/path");
    eq(u.region, NULL);
    eq(u.endpoint, NULL);
    assert_int_equal(u.force_path_style, 0);
    ls_url_free(&u);

    /* no path: the bucket root */
    parse_ok("s3://mybucket", &u);
    eq(u.path, "");
    ls_url_free(&u);
    parse_ok("s3://my.dotted.bucket/", &u);
    eq(u.bucket, "my.dotted.bucket");
    eq(u.path, "");
    ls_url_free(&u);
}

static void test_s3_providers(void **state)
{
    (void)state;
    static const struct {
        const char *url, *bucket, *region, *endpoint;
    } cases[] = {
        {"s3://mybkt.localhost:9000/p", "mybkt", "us-east-1", "http://localhost:9000"},
        {"s3://mybkt.localhost/p", "mybkt", "us-east-1", "http://localhost"},
        {"s3://mybkt.s3.us-west-000.backblazeb2.com/p", "mybkt", "us-west-000",
         "https://s3.us-west-000.backblazeb2.com"},
        {"s3://mybkt.s3.filebase.com/p", "mybkt", NULL, "https://s3.filebase.com"},
        {"s3://mybkt.nyc3.digitaloceanspaces.com/p", "mybkt", "nyc3",
         "https://nyc3.digitaloceanspaces.com"},
        {"s3://mybkt.s3.fr-par.scw.cloud/p", "mybkt", "fr-par", "https://s3.fr-par.scw.cloud"},
        {"s3://mybkt.us-east-1.linodeobjects.com/p", "mybkt", "us-east-1",
         "https://us-east-1.linodeobjects.com"},
        {"s3://a.b.nyc3.digitaloceanspaces.com:8443/p", "a.b", "nyc3",
         "https://nyc3.digitaloceanspaces.com:8443"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ls_url u;
        parse_ok(cases[i].url, &u);
        eq(u.bucket, cases[i].bucket);
        eq(u.region, cases[i].region);
        eq(u.endpoint, cases[i].endpoint);
        eq(u.path, "p");
        assert_int_equal(u.force_path_style, 1);
        ls_url_free(&u);
    }
    /* look-alikes are AWS bucket names */
    ls_url u;
    parse_ok("s3://notlocalhost/p", &u);
    eq(u.bucket, "notlocalhost");
    eq(u.endpoint, NULL);
    ls_url_free(&u);
    parse_ok("s3://x.s3.filebase.com.evil/p", &u);
    eq(u.bucket, "x.s3.filebase.com.evil");
    assert_int_equal(u.force_path_style, 0);
    ls_url_free(&u);
}

static void test_gcs_abs(void **state)
{
    (void)state;
    ls_url u;
    parse_ok("gcs://gbucket/some/prefix", &u);
    eq(u.scheme, "gcs");
    eq(u.bucket, "gbucket");
    eq(u.path, "some/prefix");
    ls_url_free(&u);

    parse_ok("abs://myaccount@mycontainer/db", &u);
    eq(u.scheme, "abs");
    eq(u.user, "myaccount");
    eq(u.bucket, "mycontainer");
    eq(u.path, "db");
    ls_url_free(&u);

    /* the account may come from the config instead */
    parse_ok("abs://mycontainer/db", &u);
    eq(u.user, NULL);
    eq(u.bucket, "mycontainer");
    ls_url_free(&u);
}

static void test_sftp(void **state)
{
    (void)state;
    ls_url u;
    parse_ok("sftp://alice:s%40cr%3Aet@backup.example.com:2222/home/alice/db", &u);
    eq(u.scheme, "sftp");
    eq(u.user, "alice");
    eq(u.password, "s@cr:et");
    eq(u.host, "backup.example.com");
    assert_int_equal(u.port, 2222);
    eq(u.path, "home/alice/db");
    ls_url_free(&u);

    parse_ok("sftp://bob@10.0.0.1/backups", &u);
    eq(u.user, "bob");
    eq(u.password, NULL);
    eq(u.host, "10.0.0.1");
    assert_int_equal(u.port, 0);
    ls_url_free(&u);

    /* IPv6 literal; the last '@' ends the user info */
    parse_ok("sftp://me@corp@[::1]:22/x", &u);
    eq(u.user, "me@corp");
    eq(u.host, "::1");
    assert_int_equal(u.port, 22);
    ls_url_free(&u);
}

static void test_path_clean(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"/", "/"},          {"//a//b/", "/a/b"}, {"/a/./b", "/a/b"}, {"/a/../..", "/"},
        {"/../a", "/a"},     {"a/b/../c", "a/c"}, {"a/..", ""},       {"../a", "../a"},
        {"a/../../b", "../b"}, {"", ""},          {"./", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[64];
        strcpy(buf, cases[i].in);
        ls_url_path_clean(buf);
        if (strcmp(buf, cases[i].out) != 0)
            fail_msg("clean(%s) = %s, want %s", cases[i].in, buf, cases[i].out);
    }
}

static void test_bad(void **state)
{
    (void)state;
    parse_bad("", "empty");
    parse_bad("http://example.com/x", "unknown scheme \"http\"");
    parse_bad("file:/x", "malformed");
    parse_bad("s3:bucket/x", "malformed");
    parse_bad("file://", "empty path");
    parse_bad("file:///", "empty path");
    parse_bad("file://host/x", "no host");
    parse_bad("file://rel", "no host");
    parse_bad("file:///x%zz", "bad %-escape in the path");
    parse_bad("ftp://h/p", "unknown scheme \"ftp\"");
    parse_bad("s3:///x", "");
    parse_bad("s3://localhost:9000/x", "empty bucket");
    parse_bad("s3://s3.filebase.com/x", "empty bucket");
    parse_bad("s3://bucket:9000/x", "port");
    parse_bad("s3://user@bucket/x", "no user info");
    parse_bad("s3://b.localhost:0/x", "bad port");
    parse_bad("s3://b.localhost:65536/x", "bad port");
    parse_bad("s3://b.localhost:99999999999/x", "bad port");
    parse_bad("s3://b.localhost:/x", "bad port");
    parse_bad("sftp://u@h:22a/x", "bad port");
    parse_bad("sftp://u@h:-1/x", "bad port");
    parse_bad("sftp://u@/x", "empty host");
    parse_bad("sftp://u@[::1/x", "']'");
    parse_bad("sftp://u@a:b:c/x", "IPv6");
    parse_bad("sftp://u%zz@h/x", "bad %-escape in the user");
    parse_bad("sftp://u:p%4@h/x", "bad %-escape in the password");
    parse_bad("sftp://u:p%00@h/x", "bad %-escape");
    parse_bad("gcs:///x", "empty bucket");
    parse_bad("gcs://b:80/x", "no port");
    parse_bad("abs://acct@/x", "empty container");
    parse_bad("abs://acct:key@c/x", "no password");

    /* messages never show a password */
    parse_bad("sftp://u:s3cret@h:99999/x", "replica URL sftp://u:xxxxx@h:99999/x: bad port");
    assert_null(strstr(ls_errmsg(ctx), "s3cret"));
    parse_bad("sftp://u:s3cret@h/x%zz", "sftp://u:xxxxx@h/x%zz: bad %-escape in the path");
}

/* Litestream 0.5's URL forms: gs://, the s3 query, the schemes litesafe refuses. */
static void test_litestream05(void **state)
{
    (void)state;
    ls_url u;
    parse_ok("gs://mybucket/a/b", &u);
    eq(u.scheme, "gcs");
    eq(u.bucket, "mybucket");
    eq(u.path, "a/b");
    ls_url_free(&u);

    /* endpoint without a scheme: https, or http for a local host; path style */
    parse_ok("s3://b/db?endpoint=fly.storage.tigris.dev&region=auto", &u);
    eq(u.bucket, "b");
    eq(u.path, "db");
    eq(u.endpoint, "https://fly.storage.tigris.dev");
    eq(u.region, "auto");
    assert_int_equal(u.force_path_style, 1);
    assert_int_equal(u.force_path_style_set, 0);
    assert_int_equal(u.skip_verify, -1);
    ls_url_free(&u);
    parse_ok("s3://b/db?endpoint=127.0.0.1:9000&forcePathStyle=false&skipVerify=true", &u);
    eq(u.endpoint, "http://127.0.0.1:9000");
    assert_int_equal(u.force_path_style, 0);
    assert_int_equal(u.force_path_style_set, 1);
    assert_int_equal(u.skip_verify, 1);
    ls_url_free(&u);
    parse_ok("s3://b/db?endpoint=http%3A%2F%2Fminio.local%3A9000", &u);
    eq(u.endpoint, "http://minio.local:9000");
    ls_url_free(&u);
    parse_ok("s3://b/db?endpoint=minio.local:9000", &u);
    eq(u.endpoint, "http://minio.local:9000");
    ls_url_free(&u);
    /* the query overrides what the provider host implied */
    parse_ok("s3://b.s3.us-west-004.backblazeb2.com/db?region=eu-central-003", &u);
    eq(u.region, "eu-central-003");
    eq(u.endpoint, "https://s3.us-west-004.backblazeb2.com");
    ls_url_free(&u);
    /* accepted because litesafe does it anyway; empty values are no values */
    parse_ok("s3://b/db?signPayload=true&require-content-md5=1&storageClass=STANDARD&region=", &u);
    eq(u.region, NULL);
    ls_url_free(&u);
    /* other schemes ignore a query, as before */
    parse_ok("sftp://u@h/p?x=1", &u);
    eq(u.path, "p");
    ls_url_free(&u);

    parse_bad("s3://b/db?bogus=1", "unknown query parameter \"bogus\"");
    parse_bad("s3://b/db?versionId=3", "unknown query parameter \"versionId\"");
    parse_bad("s3://b/db?partSize=5242880", "query parameter partSize: litesafe uploads");
    parse_bad("s3://b/db?concurrency=4", "query parameter concurrency");
    parse_bad("s3://b/db?signPayload=false", "signPayload=false: litesafe always signs");
    parse_bad("s3://b/db?requireContentMD5=false", "requireContentMD5=false");
    parse_bad("s3://b/db?storage-class=GLACIER", "storage-class: litesafe stores objects");
    parse_bad("s3://b/db?forcePathStyle=perhaps", "forcePathStyle: expected true or false");
    parse_bad("s3://b/db?endpoint=%zz", "bad %-escape in the query");
    parse_bad("webdavs://h/p", "scheme \"webdavs\": WebDAV replicas are not supported");
    parse_bad("nats://h:4222/b", "scheme \"nats\": NATS JetStream replicas");
    parse_bad("OSS://b/p", "litesafe has no oss type, but Alibaba Cloud OSS speaks S3");
    assert_non_null(ls_url_scheme_refusal("WebDAV"));
    assert_null(ls_url_scheme_refusal("s3"));
    assert_null(ls_url_scheme_refusal(NULL));
}

/*
 * Open `url` the way the command and the replicator do (the configuration
 * resolves it into fields, ls_replica_storage_open opens the backend from
 * them); the backend must be of `type` and describe itself as `desc`.
 * Nothing is contacted: backends connect on first use.
 */
static void url_opens(const char *url, const char *type, const char *desc)
{
    const char *urls[] = {url};
    ls_config *cfg = NULL;
    ls_storage *s = NULL;
    assert_int_equal(ls_config_from_urls(ctx, "/x.db", urls, 1, &cfg), 0);
    if (ls_config_apply_defaults(ctx, cfg) != 0)
        fail_msg("%s: %s", url, ls_errmsg(ctx));
    if (ls_replica_storage_open(ctx, &cfg->dbs[0].replicas[0], &s) != 0)
        fail_msg("%s: %s", url, ls_errmsg(ctx));
    if (strcmp(s->type, type) != 0 || strcmp(s->desc, desc) != 0)
        fail_msg("%s: opened %s \"%s\", want %s \"%s\"", url, s->type, s->desc, type, desc);
    ls_storage_close(s);
    ls_config_free(cfg);
}

static void test_url_to_backend(void **state)
{
    (void)state;
    char cwd[PATH_MAX], want[PATH_MAX + 16];
    setenv("LITESAFE_ACCESS_KEY_ID", "AKID", 1);
    setenv("LITESAFE_SECRET_ACCESS_KEY", "secret", 1);
    setenv("LITESAFE_AZURE_ACCOUNT_KEY", "a2V5", 1);

    url_opens("file://localhost/nonexistent-ls/a/../b%20c//?q#f", "file", "/nonexistent-ls/b c");
    url_opens("/nonexistent-ls/dir/", "file", "/nonexistent-ls/dir");
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    snprintf(want, sizeof(want), "%s/nonexistent-ls/rel", strcmp(cwd, "/") ? cwd : "");
    url_opens("nonexistent-ls/rel", "file", want); /* a bare path, made absolute */

    url_opens("s3://bkt/db", "s3", "s3://bkt/db (https://s3.us-east-1.amazonaws.com)");
    url_opens("s3://bkt.localhost:9000/db/", "s3", "s3://bkt/db (http://localhost:9000)");
    url_opens("s3://bkt/db?endpoint=127.0.0.1:9000&region=auto", "s3",
              "s3://bkt/db (http://127.0.0.1:9000)");
    url_opens("gcs://gb/pre/fix", "gcs", "gcs://gb/pre/fix (https://storage.googleapis.com)");
    url_opens("gs://gb/p", "gcs", "gcs://gb/p (https://storage.googleapis.com)");
    url_opens("abs://acct@cont/p", "abs", "abs://acct@cont/p (https://acct.blob.core.windows.net)");
    url_opens("sftp://bob:pw@h.example:2200/srv/x", "sftp", "sftp://bob@h.example:2200/~/srv/x");
    url_opens("sftp://bob@[::1]:2200/x", "sftp", "sftp://bob@[::1]:2200/~/x");
    url_opens("sftp://bob@h.example", "sftp", "sftp://bob@h.example:22/~");

    unsetenv("LITESAFE_ACCESS_KEY_ID");
    unsetenv("LITESAFE_SECRET_ACCESS_KEY");
    unsetenv("LITESAFE_AZURE_ACCOUNT_KEY");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_is_url),       cmocka_unit_test(test_file),
        cmocka_unit_test(test_s3_aws),       cmocka_unit_test(test_s3_providers),
        cmocka_unit_test(test_gcs_abs),      cmocka_unit_test(test_sftp),
        cmocka_unit_test(test_path_clean),   cmocka_unit_test(test_bad),
        cmocka_unit_test(test_litestream05), cmocka_unit_test(test_url_to_backend),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
