/*
 * replies.h - the parsers of the HTTP backends' replies (s3.c, abs.c),
 * reachable from tests and the fuzz targets (tests/fuzz/fuzz_s3_xml.c,
 * fuzz_abs_xml.c). Each does exactly what its backend does with a reply
 * that arrived: `s` is a store of that backend (its open makes no request)
 * and `resp` a reply as ls_http_do fills it (body NUL-terminated, or NULL).
 * Nothing here sends a request.
 */
#ifndef LS_REPLIES_H
#define LS_REPLIES_H

#include "http.h"
#include "storage.h"

/*
 * S3 ListObjectsV2 reply (status 200): its <Contents> under the store's
 * root and `prefix` added to out, *token the next continuation token or "".
 * Returns 0, LS_EIO (truncated without a token, token too long), LS_ENOMEM.
 */
int ls_s3_reply_list(ls_storage *s, ls_ctx *ctx, const char *prefix, const ls_http_resp *resp,
                     ls_obj_list *out, char *token, size_t tokensz);
/* S3 failed reply: the LS_E* code of its status and <Error>, recorded for op/key. */
int ls_s3_reply_error(ls_storage *s, ls_ctx *ctx, const char *op, const char *key,
                      const ls_http_resp *resp);
/* S3 DeleteObjects reply: 0, or the code of its first <Error> that is not NoSuchKey. */
int ls_s3_reply_delete(ls_storage *s, ls_ctx *ctx, const ls_http_resp *resp);

/*
 * Azure List Blobs page: its <Blob> entries under the store's root added to
 * out, *next the decoded NextMarker (malloc'd) or NULL. Returns 0, LS_EIO,
 * LS_ENOMEM.
 */
int ls_abs_reply_list(ls_storage *s, ls_ctx *ctx, const char *prefix, const ls_http_resp *resp,
                      ls_obj_list *out, char **next);
/* Azure reply: 0 for a 2xx, else the LS_E* code of its status and error, recorded for op/key. */
int ls_abs_reply_error(ls_storage *s, ls_ctx *ctx, const char *op, const char *key,
                       const ls_http_resp *resp);

#endif
