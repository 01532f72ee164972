/*
 * fuzz_s3_xml.c - the S3 backend's reply parsers on any bytes: the input is
 * a reply body (NUL-terminated, as ls_http_do hands it over) read as a
 * ListObjectsV2 page (both list prefixes the library uses), as the body of a
 * failed request at a few statuses, as a DeleteObjects result, as the
 * CreateMultipartUpload reply (its UploadId); its text also goes through the
 * two date parsers the backends use (LastModified, Last-Modified).
 *
 * Seeds (corpus/fuzz_s3_xml): replies of the test S3 server (s3rver, started
 * by tests/servers/testservers.py) captured with curl --aws-sigv4 by
 * tests/fuzz/seeds_store.sh: listings with several keys, none, and a
 * truncated one with a continuation token; NoSuchBucket, NoSuchKey,
 * SignatureDoesNotMatch and InvalidAccessKeyId errors; a DeleteObjects result
 * and a CreateMultipartUpload reply; plus regress-* inputs of findings.
 */
#include "fuzz_store.h"
#include "replies.h"

#include <litesafe.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ls_ctx *ctx;
    static ls_storage *st;
    static const long statuses[] = {400, 403, 404, 500};
    static const ls_storage_opts o = {.type = "s3", .bucket = "litesafe-test", .path = "fz",
                                      .endpoint = "http://127.0.0.1:9", .force_path_style = 1,
                                      .access_key_id = "S3RVER", .secret_access_key = "S3RVER"};
    if (!fuzz_store(&ctx, &st, &o))
        return 0;

    ls_http_resp resp = fuzz_reply(data, size);
    char *body = resp.body;
    if (!body)
        return 0;
    for (size_t i = 0; i < FUZZ_N_PREFIXES; i++) {
        ls_obj_list l = {0};
        char token[8192];
        if (ls_s3_reply_list(st, ctx, fuzz_prefixes[i], &resp, &l, token, sizeof(token)) == 0 &&
            strlen(token) >= sizeof(token) - 1)
            abort();
        for (size_t k = 0; k < l.n; k++)
            if (!*l.v[k].key || strncmp(l.v[k].key, fuzz_prefixes[i], strlen(fuzz_prefixes[i])) != 0)
                abort();
        ls_obj_list_free(&l);
    }
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        resp.status = statuses[i];
        if (ls_s3_reply_error(st, ctx, "get", "generations/x", &resp) >= 0)
            abort();
    }
    resp.status = 200;
    ls_s3_reply_delete(st, ctx, &resp);
    char id[1024];
    ls_xml_get(body, body + size, "UploadId", id, sizeof(id));
    ls_http_parse_iso8601(body);
    ls_http_parse_rfc1123(body);

    ls_err_clear(ctx);
    free(body);
    return 0;
}
