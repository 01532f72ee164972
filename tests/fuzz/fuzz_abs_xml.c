/*
 * fuzz_abs_xml.c - the Azure Blob backend's reply parsers on any bytes: the
 * input is a reply body (NUL-terminated, as ls_http_do hands it over) read
 * as a List Blobs page (both list prefixes the library uses) and as the body
 * of a reply at a few statuses, without and with an x-ms-error-code header
 * (its value the input's first line); its text also goes through the date
 * parser of Last-Modified.
 *
 * Seeds (corpus/fuzz_abs_xml): replies of the test Azure server (Azurite,
 * started by tests/servers/testservers.py) to SharedKey-signed requests made
 * by tests/fuzz/seeds_store.sh: List Blobs pages with several blobs, none,
 * and one with a NextMarker (maxresults=2); ContainerNotFound, BlobNotFound
 * and AuthorizationFailure errors; plus regress-* inputs of findings.
 */
#include "fuzz_store.h"
#include "replies.h"

#include <litesafe.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ls_ctx *ctx;
    static ls_storage *st;
    static const long statuses[] = {200, 400, 403, 404, 409, 416, 500, 503};
    static const ls_storage_opts o = {
        .type = "abs", .bucket = "litesafe-test", .path = "fz",
        .endpoint = "http://127.0.0.1:9/devstoreaccount1", .account_name = "devstoreaccount1",
        .account_key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
                       "KBHBeksoGMGw=="};
    if (!fuzz_store(&ctx, &st, &o))
        return 0;

    ls_http_resp resp = fuzz_reply(data, size);
    char *body = resp.body;
    if (!body)
        return 0;
    for (size_t i = 0; i < FUZZ_N_PREFIXES; i++) {
        ls_obj_list l = {0};
        char *next = NULL;
        if (ls_abs_reply_list(st, ctx, fuzz_prefixes[i], &resp, &l, &next) == 0 && next && !*next)
            abort();
        free(next);
        ls_obj_list_free(&l);
    }
    for (int hdr = 0; hdr < 2; hdr++) {
        char hname[] = "x-ms-error-code", hval[128];
        if (hdr) {
            size_t n = strcspn(body, "\r\n");
            n = n < sizeof(hval) - 1 ? n : sizeof(hval) - 1;
            memcpy(hval, body, n);
            hval[n] = '\0';
            resp.nhdr = 1;
            resp.hname[0] = hname;
            resp.hval[0] = hval;
        }
        for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
            resp.status = statuses[i];
            int rc = ls_abs_reply_error(st, ctx, "list", "generations/", &resp);
            if ((statuses[i] == 200) != (rc == 0))
                abort();
        }
    }
    ls_http_parse_rfc1123(body);

    ls_err_clear(ctx);
    free(body);
    return 0;
}
