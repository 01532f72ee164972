/*
 * test_replies.c - the HTTP backends' reply parsers (replies.h) and the date
 * parsers they use, on replies as the test servers send them and on the
 * inputs the fuzz targets found (tests/fuzz/corpus/fuzz_*_xml/regress-*).
 * No request is made: the stores are only opened.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http.h"
#include "litesafe.h"
#include "replies.h"

#include <stdlib.h>
#include <string.h>

/* A reply with a copy of body (NUL-terminated, as ls_http_do leaves it). */
static ls_http_resp reply(long status, const char *body)
{
    ls_http_resp r = {.status = status, .content_length = -1};
    r.body = strdup(body);
    r.body_len = strlen(body);
    return r;
}

/* RFC 1123 dates: a real one; years past 9999 (which overflowed) and negative fields refused. */
static void test_rfc1123(void **state)
{
    (void)state;
    assert_int_equal(ls_http_parse_rfc1123("Sun, 06 Dec 2026 04:05:54 GMT"), 1796529954000LL);
    assert_int_equal(ls_http_parse_rfc1123("Sun, 06 Dec 999999999 04:05:54 GMT"), -1);
    assert_int_equal(ls_http_parse_rfc1123("Sun, 06 Dec 10000 04:05:54 GMT"), -1);
    assert_int_equal(ls_http_parse_rfc1123("Sun, 06 Dec 2026 -4:05:54 GMT"), -1);
    assert_int_equal(ls_http_parse_iso8601("2026-12-06T04:05:54.000Z"), 1796529954000LL);
}

/* An s3rver ListObjectsV2 page: keys under the root, the token of a truncated page. */
static void test_s3_list(void **state)
{
    (void)state;
    ls_ctx *ctx;
    ls_storage *st;
    ls_storage_opts o = {.type = "s3", .bucket = "b", .path = "fz", .endpoint = "http://127.0.0.1:9",
                         .access_key_id = "k", .secret_access_key = "s"};
    assert_int_equal(ls_ctx_new(&ctx), 0);
    assert_int_equal(ls_storage_open(ctx, &o, &st), 0);
    ls_http_resp r = reply(200, "<ListBucketResult><NextContinuationToken>t&amp;1</NextContinuationToken>"
                                "<IsTruncated>true</IsTruncated><Contents><Key>fz/generations/a</Key>"
                                "<LastModified>2026-12-06T04:05:54.000Z</LastModified><Size>160</Size>"
                                "</Contents><Contents><Key>other/x</Key><Size>1</Size></Contents>"
                                "</ListBucketResult>");
    ls_obj_list l = {0};
    char token[64];
    assert_int_equal(ls_s3_reply_list(st, ctx, "generations/", &r, &l, token, sizeof(token)), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.v[0].key, "generations/a");
    assert_int_equal(l.v[0].size, 160);
    assert_int_equal(l.v[0].mtime_ms, 1796529954000LL);
    assert_string_equal(token, "t&1");
    ls_obj_list_free(&l);
    ls_http_resp_free(&r);
    r = reply(404, "<Error><Code>NoSuchBucket</Code><Message>no</Message></Error>");
    assert_int_equal(ls_s3_reply_error(st, ctx, "list", "", &r), LS_EUSAGE);
    ls_http_resp_free(&r);
    ls_storage_close(st);
    ls_ctx_free(ctx);
}

/* An Azurite List Blobs page: entries, NextMarker; a date past 9999 is a malformed entry. */
static void test_abs_list(void **state)
{
    (void)state;
    ls_ctx *ctx;
    ls_storage *st;
    ls_storage_opts o = {.type = "abs", .bucket = "c", .path = "fz",
                         .endpoint = "http://127.0.0.1:9/devstoreaccount1",
                         .account_name = "devstoreaccount1", .account_key = "a2V5"};
    assert_int_equal(ls_ctx_new(&ctx), 0);
    assert_int_equal(ls_storage_open(ctx, &o, &st), 0);
    const char *page = "<EnumerationResults><Blobs><Blob><Name>fz/generations/a</Name><Properties>"
                       "<Last-Modified>Sun, 06 Dec %s 04:05:54 GMT</Last-Modified>"
                       "<Content-Length>157</Content-Length></Properties></Blob></Blobs>"
                       "<NextMarker>m2</NextMarker></EnumerationResults>";
    char body[512];
    snprintf(body, sizeof(body), page, "2026");
    ls_http_resp r = reply(200, body);
    ls_obj_list l = {0};
    char *next = NULL;
    assert_int_equal(ls_abs_reply_list(st, ctx, "", &r, &l, &next), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.v[0].key, "generations/a");
    assert_int_equal(l.v[0].mtime_ms, 1796529954000LL);
    assert_string_equal(next, "m2");
    free(next);
    next = NULL;
    ls_obj_list_free(&l);
    ls_http_resp_free(&r);
    snprintf(body, sizeof(body), page, "999999999");
    r = reply(200, body);
    assert_int_equal(ls_abs_reply_list(st, ctx, "", &r, &l, &next), LS_EIO);
    assert_null(next);
    ls_obj_list_free(&l);
    ls_http_resp_free(&r);
    /* A NextMarker of NUL bytes decoded to "" and asked for the first page again (fuzz_abs_xml). */
    static const char nul_marker[] = "<EnumerationResults><Blobs></Blobs><NextMarker>\0\0x"
                                     "</NextMarker></EnumerationResults>";
    r = reply(200, "");
    free(r.body);
    r.body = malloc(sizeof(nul_marker));
    memcpy(r.body, nul_marker, sizeof(nul_marker));
    r.body_len = sizeof(nul_marker) - 1;
    assert_int_equal(ls_abs_reply_list(st, ctx, "", &r, &l, &next), LS_EIO);
    assert_null(next);
    ls_obj_list_free(&l);
    ls_http_resp_free(&r);
    ls_storage_close(st);
    ls_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc1123),
        cmocka_unit_test(test_s3_list),
        cmocka_unit_test(test_abs_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
