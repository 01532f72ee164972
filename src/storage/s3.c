/*
 * storage/s3.c - the S3 backend (AWS S3 and S3-compatible servers), also
 * used for gcs:// through Google Cloud Storage's S3-compatible XML API.
 * HTTP, the handle pool and the helpers are in http.c (shared with abs.c).
 *
 * Endpoints (the `endpoint` option; path style is the default whenever an
 * endpoint is set, as in Litestream; a bare host gets https://):
 *   AWS S3         none: https://s3.<region>.amazonaws.com, virtual-host style
 *                  (BUCKET.s3.<region>.amazonaws.com); region default us-east-1
 *   MinIO          http(s)://HOST:9000, force-path-style (default with an endpoint)
 *   Cloudflare R2  https://<ACCOUNT_ID>.r2.cloudflarestorage.com, region auto
 *   Backblaze B2   https://s3.<region>.backblazeb2.com (e.g. us-west-004), or the
 *                  URL s3://BUCKET.s3.<region>.backblazeb2.com/PATH
 *   GCS            type gcs (gcs://BUCKET/PATH): https://storage.googleapis.com,
 *                  path style, HMAC interoperability keys as access-key-id /
 *                  secret-access-key (Cloud Storage > Settings > Interoperability)
 *
 * Requests are signed by libcurl (CURLOPT_AWS_SIGV4 "aws:amz:REGION:s3").
 * libcurl 7.88's signer leaves several things to us, so every request here:
 *   - sends x-amz-content-sha256 (hex SHA-256 of the body, of "" for none);
 *   - has its query string already canonical: keys sorted, values RFC 3986
 *     encoded, valueless keys written "uploads=" / "delete=";
 *   - has its path percent-encoded (keys keep their '/');
 *   - never sets an empty Expect header (curl would sign it, not send it);
 *   - sends a session token as x-amz-security-token.
 *
 * put: the source is read into one part buffer (grown as needed up to
 * PART_SIZE): if it ends before the buffer fills, the buffer is one PUT;
 * otherwise a multipart upload sends part after part from the buffer and
 * completes. Bytes go out only once read, so a source failing midway never
 * leaves a partial object (s3rver would keep a short streamed PUT), and
 * every body carries its real SHA-256 (AWS verifies it). The object becomes
 * visible only when the PUT or the completion succeeds (atomic); a failed
 * multipart upload is aborted (best effort: s3rver answers 405).
 * PART_SIZE is 8 MiB: above S3's 5 MiB minimum for all parts but the last,
 * small enough that one buffer per concurrent put stays cheap (small
 * objects get a buffer of their own size), large enough that WAL segments
 * and small snapshots go in one request. Parts grow (x2 every 2500 parts)
 * so the 10000-part limit allows objects of ~300 GiB.
 *
 * get: GET with a Range header, streamed to the writer; a range at or past
 * the end (416) is success with no bytes. list: ListObjectsV2 under the
 * root prefix, following continuation tokens. stat: HEAD. del: DeleteObjects
 * in batches of 1000 (GCS has no DeleteObjects: one DELETE per key).
 *
 * Errors: NoSuchBucket is LS_EUSAGE (configuration), refused credentials
 * LS_EPERM with the server's code, 5xx/429/SlowDown/RequestTimeout LS_ENET,
 * other failures LS_EIO with the server's code and message. The secret
 * never appears in desc or messages (curl gets it as CURLOPT_PASSWORD).
 *
 * Thread safety: after open the store is read-only; requests run on the
 * pool's handles, so any number of threads may use one store.
 */
#include "hash.h"
#include "http.h"
#include "replies.h"
#include "storage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PART_SIZE ((size_t)8 << 20)     /* first multipart part size (see above) */
#define PART_GROW_EVERY 2500            /* parts after which the part size doubles */
#define MAX_PARTS 10000                 /* S3's limit */
#define DELETE_BATCH 1000               /* S3's DeleteObjects limit */
#define LIST_MAX_BODY ((size_t)16 << 20) /* cap of one ListObjectsV2 reply */
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

typedef struct s3_store {
    ls_storage base;     /* must be first */
    ls_http_pool *pool;  /* curl handles */
    int is_gcs;          /* no DeleteObjects: delete one by one */
    char *bucket;        /* bucket name */
    char *obj_base;      /* URL an encoded "/key" is appended to */
    char *bucket_url;    /* URL a "?query" is appended to for bucket requests */
    char *prefix;        /* key prefix: "" or "path/" */
    char *sigv4;         /* "aws:amz:REGION:s3" */
    char *key_id;        /* access key id */
    char *secret;        /* secret access key (never printed) */
    char *token;         /* session token or NULL */
} s3_store;

/* ---- Requests and errors ---- */

/*
 * Run q with the S3 headers added to *hdrs (x-amz-content-sha256 = sha,
 * the session token) and the signing options. The caller frees *hdrs.
 */
static int s3_do(s3_store *st, ls_ctx *ctx, ls_http_req *q, struct curl_slist **hdrs,
                 const char *sha, ls_http_resp *resp)
{
    int rc = ls_http_header_add(ctx, hdrs, "x-amz-content-sha256", sha);
    if (!rc && st->token)
        rc = ls_http_header_add(ctx, hdrs, "x-amz-security-token", st->token);
    if (rc) {
        memset(resp, 0, sizeof(*resp));
        return rc;
    }
    q->headers = *hdrs;
    q->aws_sigv4 = st->sigv4;
    q->username = st->key_id;
    q->password = st->secret;
    return ls_http_do(st->pool, ctx, q, resp);
}

/* S3 error codes that may pass on their own. */
static const char *const transient_codes[] = {"SlowDown", "InternalError", "ServiceUnavailable",
                                              "RequestTimeout", NULL};

/* 1 if code is one of the names in the NULL-terminated list. */
static int code_in(const char *code, const char *const *names)
{
    for (; *names; names++)
        if (strcmp(code, *names) == 0)
            return 1;
    return 0;
}

/*
 * Classify an S3 error code and message (from an <Error> reply or an entry
 * of a DeleteObjects reply) with HTTP status `status` (0: unknown), and
 * record it for op/key. Returns the LS_E* code.
 */
static int s3_err_code(s3_store *st, ls_ctx *ctx, const char *op, const char *key, long status,
                       const char *code, const char *msg)
{
    static const char *const denied[] = {"SignatureDoesNotMatch", "InvalidAccessKeyId",
                                         "AccessDenied", "ExpiredToken", "InvalidToken",
                                         "TokenRefreshRequired", "AllAccessDisabled",
                                         "InvalidSecurity", NULL};
    char hs[24] = "";
    if (status)
        snprintf(hs, sizeof(hs), "HTTP %ld ", status);
    if (strcmp(code, "NoSuchBucket") == 0)
        return ls_storage_err(&st->base, ctx, LS_EUSAGE, op, key, "bucket %s does not exist",
                              st->bucket);
    if (strcmp(code, "NoSuchKey") == 0)
        return ls_storage_err(&st->base, ctx, LS_ENOENT, op, key, "no such object");
    if (code_in(code, denied) || (!*code && (status == 401 || status == 403)))
        return ls_storage_err(&st->base, ctx, LS_EPERM, op, key,
                              "the server refused the credentials or signature (%s%s%s%s): "
                              "check access-key-id and secret-access-key",
                              hs, *code ? code : "no error code", *msg ? ": " : "", msg);
    /* status 0 (a DeleteObjects entry has none) is not "no reply": the code decides */
    int rc = code_in(code, transient_codes) ? LS_ENET : status ? ls_http_status_code(status) : 0;
    if (rc == 0)
        rc = LS_EIO;
    if (rc == LS_ENOENT)
        return ls_storage_err(&st->base, ctx, rc, op, key, "no such object (%s%s)", hs,
                              *code ? code : "not found");
    return ls_storage_err(&st->base, ctx, rc, op, key, "%s%s%s%s", hs, code, *msg ? ": " : "",
                          msg);
}

/*
 * The failure of a request: rc from ls_http_do (a transport failure, its
 * message already on ctx), or a reply whose status is not the expected one.
 */
static int s3_fail(s3_store *st, ls_ctx *ctx, const char *op, const char *key, int rc,
                   const ls_http_resp *resp)
{
    char code[128] = "", msg[384] = "";
    if (rc)
        return ls_storage_err(&st->base, ctx, rc, op, key, NULL);
    if (resp->body) {
        const char *end = resp->body + resp->body_len;
        ls_xml_get(resp->body, end, "Code", code, sizeof(code));
        ls_xml_get(resp->body, end, "Message", msg, sizeof(msg));
    }
    return s3_err_code(st, ctx, op, key, resp->status, code, msg);
}

/* ---- URLs ---- */

/* The object URL of key (relative to the root) into b (emptied first). */
static int obj_url(s3_store *st, const char *key, ls_buf *b)
{
    b->n = 0;
    if (ls_http_buf_str(b, st->obj_base) || ls_buf_add(b, "/", 1) ||
        ls_http_buf_pct(b, st->prefix, 1) || ls_http_buf_pct(b, key, 1))
        return LS_ENOMEM;
    return 0;
}

/* Append "?" or "&", name, "=" and the encoded value. */
static int add_query(ls_buf *b, int first, const char *name, const char *value)
{
    if (ls_buf_add(b, first ? "?" : "&", 1) || ls_http_buf_str(b, name) ||
        ls_buf_add(b, "=", 1) || ls_http_buf_pct(b, value, 0))
        return LS_ENOMEM;
    return 0;
}

static int oom(ls_ctx *ctx)
{
    return ls_err(ctx, LS_ENOMEM, "out of memory");
}

/* ---- put ---- */

/*
 * Read from r until the buffer holds `limit` bytes or r ends; *bufp grows
 * (doubling from 64 KiB, or from r's known size) up to limit, *cap is its
 * size. Returns 0 (count in *n) or r's code (LS_ENOMEM: ctx unset).
 */
static int fill(ls_reader *r, uint8_t **bufp, size_t *cap, size_t limit, size_t *n)
{
    *n = 0;
    while (*n < limit) {
        if (*n == *cap) {
            size_t want = *cap ? *cap * 2
                               : (r->size >= 0 && (uint64_t)r->size < limit ? (size_t)r->size + 1
                                                                          : 65536);
            if (want > limit)
                want = limit;
            if (want < 1024)
                want = 1024;
            uint8_t *nb = realloc(*bufp, want);
            if (!nb)
                return LS_ENOMEM;
            *bufp = nb;
            *cap = want;
        }
        size_t room = (*cap < limit ? *cap : limit) - *n;
        int64_t got = r->read(r->ud, *bufp + *n, room);
        if (got < 0)
            return (int)got;
        if (got == 0)
            break;
        *n += (size_t)got;
    }
    return 0;
}

/* hex SHA-256 of n bytes into out[65]. */
static void sha_hex(const void *p, size_t n, char *out)
{
    uint8_t d[32];
    ls_http_sha256(p, n, d);
    ls_hex(d, sizeof(d), out);
}

/* Size of multipart part number `part` (1-based). */
static size_t part_size(int part)
{
    int doublings = (part - 1) / PART_GROW_EVERY;
    return PART_SIZE << doublings;
}

/* One PUT of the object from memory. Returns 0 or the failure (recorded). */
static int put_single(s3_store *st, ls_ctx *ctx, const char *key, const char *url,
                      const uint8_t *buf, size_t n)
{
    struct curl_slist *hdrs = NULL;
    ls_http_resp resp;
    ls_http_req q = {0};
    char sha[65];
    sha_hex(buf, n, sha);
    q.method = "PUT";
    q.url = url;
    q.has_body = 1;
    q.body_buf = buf;
    q.body_len = n;
    int rc = s3_do(st, ctx, &q, &hdrs, sha, &resp);
    if (rc || resp.status != 200)
        rc = s3_fail(st, ctx, "put", key, rc, &resp);
    ls_http_resp_free(&resp);
    curl_slist_free_all(hdrs);
    return rc;
}

/* A request with an XML or empty body whose reply (2xx) is kept in *resp. */
static int xml_request(s3_store *st, ls_ctx *ctx, const char *method, const char *url,
                       const char *body, size_t n, struct curl_slist **hdrs, size_t max_body,
                       ls_http_resp *resp)
{
    char sha[65];
    ls_http_req q = {0};
    q.method = method;
    q.url = url;
    q.has_body = strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0;
    q.body_buf = body;
    q.body_len = n;
    q.max_body = max_body;
    if (n)
        sha_hex(body, n, sha);
    else
        ls_strlcpy(sha, EMPTY_SHA256, sizeof(sha));
    return s3_do(st, ctx, &q, hdrs, sha, resp);
}

/* Abort a multipart upload, ignoring the outcome (s3rver answers 405). */
static void mp_abort(s3_store *st, const char *url, const char *upload_id)
{
    ls_ctx scratch = {0};
    ls_buf u = {0};
    struct curl_slist *hdrs = NULL;
    ls_http_resp resp = {0};
    if (ls_http_buf_str(&u, url) == 0 && add_query(&u, 1, "uploadId", upload_id) == 0)
        xml_request(st, &scratch, "DELETE", (const char *)u.p, NULL, 0, &hdrs, 0, &resp);
    ls_http_resp_free(&resp);
    curl_slist_free_all(hdrs);
    ls_buf_free(&u);
}

/* Start a multipart upload; the id goes into id (idsz bytes). */
static int mp_create(s3_store *st, ls_ctx *ctx, const char *key, const char *url, char *id,
                     size_t idsz)
{
    ls_buf u = {0};
    struct curl_slist *hdrs = NULL;
    ls_http_resp resp = {0};
    int rc = ls_http_buf_str(&u, url) || add_query(&u, 1, "uploads", "") ? oom(ctx) : 0;
    if (!rc)
        rc = xml_request(st, ctx, "POST", (const char *)u.p, NULL, 0, &hdrs, 0, &resp);
    if (rc || resp.status != 200) {
        rc = s3_fail(st, ctx, "put", key, rc, &resp);
    } else if (!resp.body ||
               !ls_xml_get(resp.body, resp.body + resp.body_len, "UploadId", id, idsz) || !*id) {
        rc = ls_storage_err(&st->base, ctx, LS_EIO, "put", key,
                            "no UploadId in the reply to CreateMultipartUpload");
    }
    ls_http_resp_free(&resp);
    curl_slist_free_all(hdrs);
    ls_buf_free(&u);
    return rc;
}

/* Upload part `part` from buf and append its <Part> element to parts. */
static int mp_part(s3_store *st, ls_ctx *ctx, const char *key, const char *url, const char *id,
                   int part, const uint8_t *buf, size_t n, ls_buf *parts)
{
    char num[16], sha[65];
    ls_buf u = {0};
    struct curl_slist *hdrs = NULL;
    ls_http_resp resp = {0};
    ls_http_req q = {0};
    int rc = 0;

    snprintf(num, sizeof(num), "%d", part);
    sha_hex(buf, n, sha);
    if (ls_http_buf_str(&u, url) || add_query(&u, 1, "partNumber", num) ||
        add_query(&u, 0, "uploadId", id)) {
        rc = oom(ctx);
        goto cleanup;
    }
    q.method = "PUT";
    q.url = (const char *)u.p;
    q.has_body = 1;
    q.body_buf = buf;
    q.body_len = n;
    rc = s3_do(st, ctx, &q, &hdrs, sha, &resp);
    if (rc || resp.status != 200) {
        rc = s3_fail(st, ctx, "put", key, rc, &resp);
        goto cleanup;
    }
    const char *etag = ls_http_header(&resp, "etag");
    if (!etag || !*etag) {
        rc = ls_storage_err(&st->base, ctx, LS_EIO, "put", key, "no ETag for part %d", part);
        goto cleanup;
    }
    if (ls_http_buf_str(parts, "<Part><PartNumber>") || ls_http_buf_str(parts, num) ||
        ls_http_buf_str(parts, "</PartNumber><ETag>") || ls_http_buf_str(parts, etag) ||
        ls_http_buf_str(parts, "</ETag></Part>"))
        rc = oom(ctx);

cleanup:
    ls_http_resp_free(&resp);
    curl_slist_free_all(hdrs);
    ls_buf_free(&u);
    return rc;
}

/* Complete the upload with the <Part> list; a 200 reply may still carry an <Error>. */
static int mp_complete(s3_store *st, ls_ctx *ctx, const char *key, const char *url,
                       const char *id, const ls_buf *parts)
{
    ls_buf u = {0}, body = {0};
    struct curl_slist *hdrs = NULL;
    ls_http_resp resp = {0};
    int rc = 0;
    if (ls_http_buf_str(&u, url) || add_query(&u, 1, "uploadId", id) ||
        ls_http_buf_str(&body, "<CompleteMultipartUpload>") ||
        ls_buf_add(&body, (const char *)parts->p, parts->n) ||
        ls_http_buf_str(&body, "</CompleteMultipartUpload>")) {
        rc = oom(ctx);
        goto cleanup;
    }
    rc = xml_request(st, ctx, "POST", (const char *)u.p, (const char *)body.p, body.n, &hdrs, 0,
                     &resp);
    if (rc || resp.status != 200 || (resp.body && strstr(resp.body, "<Error>")))
        rc = s3_fail(st, ctx, "put", key, rc, &resp);

cleanup:
    ls_http_resp_free(&resp);
    curl_slist_free_all(hdrs);
    ls_buf_free(&u);
    ls_buf_free(&body);
    return rc;
}

/*
 * Multipart upload: *bufp (*cap bytes) already holds the first n bytes
 * (= part_size(1)). Steps: 1. create; 2. upload the buffered part, refill,
 * repeat until the reader ends; 3. check the length against r->size when
 * known; 4. complete. Any failure aborts the upload (best effort).
 */
static int put_multipart(s3_store *st, ls_ctx *ctx, const char *key, const char *url,
                         ls_reader *r, uint8_t **bufp, size_t *cap, size_t n)
{
    char id[1024];
    ls_buf parts = {0};
    uint64_t total = 0;
    int rc = mp_create(st, ctx, key, url, id, sizeof(id));
    if (rc)
        return rc;
    for (int part = 1;; part++) {
        if (part > MAX_PARTS) {
            rc = ls_storage_err(&st->base, ctx, LS_EIO, "put", key,
                                "object too large (more than %d parts)", MAX_PARTS);
            break;
        }
        if ((rc = mp_part(st, ctx, key, url, id, part, *bufp, n, &parts)) != 0)
            break;
        total += n;
        if ((rc = fill(r, bufp, cap, part_size(part + 1), &n)) != 0) {
            rc = rc == LS_ENOMEM ? oom(ctx) : ls_storage_err(&st->base, ctx, rc, "put", key, NULL);
            break;
        }
        if (n == 0)
            break;
    }
    if (!rc && r->size >= 0 && total != (uint64_t)r->size)
        rc = ls_storage_err(&st->base, ctx, LS_EIO, "put", key,
                            "source gave %llu bytes, expected %lld", (unsigned long long)total,
                            (long long)r->size);
    if (!rc)
        rc = mp_complete(st, ctx, key, url, id, &parts);
    if (rc)
        mp_abort(st, url, id);
    ls_buf_free(&parts);
    return rc;
}

/*
 * put: read up to PART_SIZE into memory; an object that ends there is one
 * PUT, a longer one a multipart upload. Nothing reaches the server before
 * the bytes it carries were read, so a failing source never leaves a
 * partial object, even on servers that would keep a short PUT.
 */
static int s3_put(ls_storage *s, ls_ctx *ctx, const char *key, ls_reader *r)
{
    s3_store *st = (s3_store *)s;
    ls_buf url = {0};
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    int rc = ls_storage_check_key(s, ctx, "put", key, 0);
    if (rc)
        return rc;
    if (obj_url(st, key, &url)) {
        rc = oom(ctx);
        goto cleanup;
    }
    if ((rc = fill(r, &buf, &cap, part_size(1), &n)) != 0) {
        rc = rc == LS_ENOMEM ? oom(ctx) : ls_storage_err(s, ctx, rc, "put", key, NULL);
        goto cleanup;
    }
    if (n < part_size(1) || (r->size >= 0 && (uint64_t)r->size == n)) {
        if (r->size >= 0 && (uint64_t)r->size != n)
            rc = ls_storage_err(s, ctx, LS_EIO, "put", key, "source gave %zu bytes, expected %lld",
                                n, (long long)r->size);
        else
            rc = put_single(st, ctx, key, (const char *)url.p, buf, n);
    } else {
        rc = put_multipart(st, ctx, key, (const char *)url.p, r, &buf, &cap, n);
    }

cleanup:
    free(buf);
    ls_buf_free(&url);
    return rc;
}

/* ---- get, stat ---- */

/* stat through HEAD. */
static int s3_stat(ls_storage *s, ls_ctx *ctx, const char *key, ls_obj *out)
{
    s3_store *st = (s3_store *)s;
    ls_buf url = {0};
    struct curl_slist *hdrs = NULL;
    ls_http_resp resp = {0};
    int rc = ls_storage_check_key(s, ctx, "stat", key, 0);
    if (rc)
        return rc;
    if (obj_url(st, key, &url)) {
        rc = oom(ctx);
        goto cleanup;
    }
    rc = xml_request(st, ctx, "HEAD", (const char *)url.p, NULL, 0, &hdrs, 0, &resp);
    if (rc || resp.status != 200) {
        rc = s3_fail(st, ctx, "stat", key, rc, &resp);
        goto cleanup;
    }
    if (resp.content_length < 0) {
        rc = ls_storage_err(s, ctx, LS_EIO, "stat", key, "HEAD reply without Content-Length");
        goto cleanup;
    }
    const char *lm = ls_http_header(&resp, "last-modified");
    int64_t ms = lm ? ls_http_parse_rfc1123(lm) : -1;
    out->key = NULL;
    out->size = (uint64_t)resp.content_length;
    out->mtime_ms = ms > 0 ? ms : 0;

cleanup:
    ls_http_resp_free(&resp);
    curl_slist_free_all(hdrs);
    ls_buf_free(&url);
    return rc;
}

static int s3_get(ls_storage *s, ls_ctx *ctx, const char *key, uint64_t off, int64_t len,
                  ls_writer *w)
{
    s3_store *st = (s3_store *)s;
    ls_buf url = {0};
    struct curl_slist *hdrs = NULL;
    ls_http_resp resp = {0};
    ls_http_req q = {0};
    char range[64];
    int rc = ls_storage_check_key(s, ctx, "get", key, 0);
    if (rc)
        return rc;
    if (len == 0) { /* nothing to read, but a missing object is still LS_ENOENT */
        ls_obj o;
        rc = s3_stat(s, ctx, key, &o);
        return rc == 0 ? 0 : ls_storage_err(s, ctx, rc, "get", key, NULL);
    }
    if (obj_url(st, key, &url)) {
        rc = oom(ctx);
        goto cleanup;
    }
    if (off > 0 || len > 0) {
        if (len > 0)
            snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)off,
                     (unsigned long long)(off + (uint64_t)len - 1));
        else
            snprintf(range, sizeof(range), "bytes=%llu-", (unsigned long long)off);
        if ((rc = ls_http_header_add(ctx, &hdrs, "Range", range)) != 0)
            goto cleanup;
    }
    q.method = "GET";
    q.url = (const char *)url.p;
    q.out = w;
    q.ranged = hdrs != NULL;
    rc = s3_do(st, ctx, &q, &hdrs, EMPTY_SHA256, &resp);
    if (rc || (resp.status != 200 && resp.status != 206 && resp.status != 416))
        rc = s3_fail(st, ctx, "get", key, rc, &resp);

cleanup:
    ls_http_resp_free(&resp);
    curl_slist_free_all(hdrs);
    ls_buf_free(&url);
    return rc;
}

/* ---- list ---- */

/* Add the <Contents> of one ListObjectsV2 reply to out; *token gets the next token or "". */
static int list_parse(s3_store *st, ls_ctx *ctx, const char *prefix, const ls_http_resp *resp,
                      ls_obj_list *out, char *token, size_t tokensz)
{
    const char *p = resp->body, *end = resp->body + resp->body_len, *v;
    size_t vlen, plen = strlen(st->prefix);
    char trunc[16] = "";
    token[0] = '\0';
    while ((p = ls_xml_next(p, end, "Contents", &v, &vlen)) != NULL) {
        const char *kv;
        size_t klen;
        char size[32] = "", lm[64] = "";
        if (!ls_xml_next(v, v + vlen, "Key", &kv, &klen))
            continue;
        char *k = ls_xml_decode(kv, klen);
        if (!k)
            return oom(ctx);
        ls_xml_get(v, v + vlen, "Size", size, sizeof(size));
        ls_xml_get(v, v + vlen, "LastModified", lm, sizeof(lm));
        /* Directory markers ("x/") and keys outside the root are not objects. */
        int keep = strncmp(k, st->prefix, plen) == 0;
        const char *rel = keep ? k + plen : k;
        size_t rlen = strlen(rel);
        keep = keep && rlen > 0 && rel[rlen - 1] != '/' &&
               strncmp(rel, prefix, strlen(prefix)) == 0;
        int64_t ms = ls_http_parse_iso8601(lm);
        int rc = keep ? ls_obj_list_add(out, rel, strtoull(size, NULL, 10), ms > 0 ? ms : 0) : 0;
        free(k);
        if (rc)
            return oom(ctx);
    }
    ls_xml_get(resp->body, end, "IsTruncated", trunc, sizeof(trunc));
    if (strcmp(trunc, "true") == 0 &&
        (!ls_xml_get(resp->body, end, "NextContinuationToken", token, tokensz) || !*token))
        return ls_storage_err(&st->base, ctx, LS_EIO, "list", prefix,
                              "truncated listing without a continuation token");
    if (strlen(token) + 1 >= tokensz) /* cut by ls_xml_get: it would list the wrong page */
        return ls_storage_err(&st->base, ctx, LS_EIO, "list", prefix,
                              "continuation token longer than %zu bytes", tokensz - 1);
    return 0;
}

static int s3_list(ls_storage *s, ls_ctx *ctx, const char *prefix, ls_obj_list *out)
{
    s3_store *st = (s3_store *)s;
    char token[8192] = "";
    ls_buf url = {0}, full = {0};
    int rc = ls_storage_check_key(s, ctx, "list", prefix, 1);
    if (rc)
        return rc;
    if (ls_http_buf_str(&full, st->prefix) || ls_http_buf_str(&full, prefix))
        return oom(ctx);
    do {
        struct curl_slist *hdrs = NULL;
        ls_http_resp resp = {0};
        url.n = 0;
        /* canonical order: continuation-token, list-type, prefix */
        if (ls_http_buf_str(&url, st->bucket_url) ||
            (token[0] && add_query(&url, 1, "continuation-token", token)) ||
            add_query(&url, !token[0], "list-type", "2") ||
            add_query(&url, 0, "prefix", (const char *)full.p)) {
            rc = oom(ctx);
            break;
        }
        rc = xml_request(st, ctx, "GET", (const char *)url.p, NULL, 0, &hdrs, LIST_MAX_BODY,
                         &resp);
        if (rc || resp.status != 200)
            rc = s3_fail(st, ctx, "list", prefix, rc, &resp);
        else if (resp.body)
            rc = list_parse(st, ctx, prefix, &resp, out, token, sizeof(token));
        else
            token[0] = '\0';
        ls_http_resp_free(&resp);
        curl_slist_free_all(hdrs);
    } while (!rc && token[0]);
    ls_buf_free(&url);
    ls_buf_free(&full);
    return rc;
}

/* ---- del ---- */

/* Append s with the XML special characters escaped. */
static int xml_escape(ls_buf *b, const char *s)
{
    for (; *s; s++) {
        const char *e = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;"
                      : *s == '"' ? "&quot;" : *s == '\'' ? "&apos;" : NULL;
        if (e ? ls_http_buf_str(b, e) : ls_buf_add(b, s, 1))
            return LS_ENOMEM;
    }
    return 0;
}

/* The first <Error> of a DeleteObjects reply that is not NoSuchKey, recorded. */
static int delete_errors(s3_store *st, ls_ctx *ctx, const ls_http_resp *resp)
{
    const char *p = resp->body, *end = resp->body + resp->body_len, *v;
    size_t vlen;
    while (p && (p = ls_xml_next(p, end, "Error", &v, &vlen)) != NULL) {
        char key[1100] = "", code[128] = "", msg[384] = "";
        ls_xml_get(v, v + vlen, "Key", key, sizeof(key));
        ls_xml_get(v, v + vlen, "Code", code, sizeof(code));
        ls_xml_get(v, v + vlen, "Message", msg, sizeof(msg));
        if (strcmp(code, "NoSuchKey") == 0)
            continue;
        size_t plen = strlen(st->prefix);
        const char *rel = strncmp(key, st->prefix, plen) == 0 ? key + plen : key;
        return s3_err_code(st, ctx, "delete", rel, 0, code, msg);
    }
    return 0;
}

/* DeleteObjects of keys[0, n) (n <= DELETE_BATCH, keys checked). */
static int delete_batch(s3_store *st, ls_ctx *ctx, const char *const *keys, size_t n)
{
    ls_buf url = {0}, body = {0};
    struct curl_slist *hdrs = NULL;
    ls_http_resp resp = {0};
    uint8_t md5[16];
    char md5b64[32];
    int rc = 0;

    if (ls_http_buf_str(&url, st->bucket_url) || add_query(&url, 1, "delete", "") ||
        ls_http_buf_str(&body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                               "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                               "<Quiet>true</Quiet>")) {
        rc = oom(ctx);
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        if (ls_http_buf_str(&body, "<Object><Key>") || xml_escape(&body, st->prefix) ||
            xml_escape(&body, keys[i]) || ls_http_buf_str(&body, "</Key></Object>")) {
            rc = oom(ctx);
            goto cleanup;
        }
    }
    if (ls_http_buf_str(&body, "</Delete>")) {
        rc = oom(ctx);
        goto cleanup;
    }
    ls_http_md5(body.p, body.n, md5);
    ls_http_base64(md5, sizeof(md5), md5b64);
    if ((rc = ls_http_header_add(ctx, &hdrs, "Content-MD5", md5b64)) != 0 ||
        (rc = ls_http_header_add(ctx, &hdrs, "Content-Type", "application/xml")) != 0)
        goto cleanup;
    rc = xml_request(st, ctx, "POST", (const char *)url.p, (const char *)body.p, body.n, &hdrs,
                     LIST_MAX_BODY, &resp);
    if (rc || resp.status != 200)
        rc = s3_fail(st, ctx, "delete", n == 1 ? keys[0] : NULL, rc, &resp);
    else if (resp.body)
        rc = delete_errors(st, ctx, &resp);

cleanup:
    ls_http_resp_free(&resp);
    curl_slist_free_all(hdrs);
    ls_buf_free(&url);
    ls_buf_free(&body);
    return rc;
}

/* One DELETE (GCS); a missing object is fine. */
static int delete_one(s3_store *st, ls_ctx *ctx, const char *key)
{
    ls_buf url = {0};
    struct curl_slist *hdrs = NULL;
    ls_http_resp resp = {0};
    int rc = obj_url(st, key, &url) ? oom(ctx) : 0;
    if (!rc)
        rc = xml_request(st, ctx, "DELETE", (const char *)url.p, NULL, 0, &hdrs, 0, &resp);
    if (!rc && resp.status != 200 && resp.status != 204) {
        char code[128] = "";
        if (resp.body)
            ls_xml_get(resp.body, resp.body + resp.body_len, "Code", code, sizeof(code));
        if (resp.status != 404 || strcmp(code, "NoSuchBucket") == 0)
            rc = s3_fail(st, ctx, "delete", key, 0, &resp);
    } else if (rc) {
        rc = s3_fail(st, ctx, "delete", key, rc, &resp);
    }
    ls_http_resp_free(&resp);
    curl_slist_free_all(hdrs);
    ls_buf_free(&url);
    return rc;
}

static int s3_del(ls_storage *s, ls_ctx *ctx, const char *const *keys, size_t n)
{
    s3_store *st = (s3_store *)s;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        rc = ls_storage_check_key(s, ctx, "delete", keys[i], 0);
    for (size_t i = 0; i < n && !rc; i += DELETE_BATCH) {
        size_t k = n - i < DELETE_BATCH ? n - i : DELETE_BATCH;
        if (st->is_gcs) {
            for (size_t j = 0; j < k && !rc; j++)
                rc = delete_one(st, ctx, keys[i + j]);
        } else {
            rc = delete_batch(st, ctx, keys + i, k);
        }
    }
    return rc;
}

/* ---- open, close ---- */

static void s3_close(ls_storage *s)
{
    s3_store *st = (s3_store *)s;
    if (!st)
        return;
    ls_http_pool_free(st->pool);
    free(st->bucket);
    free(st->obj_base);
    free(st->bucket_url);
    free(st->prefix);
    free(st->sigv4);
    free(st->key_id);
    /* the secrets do not outlive the handle */
    if (st->secret)
        explicit_bzero(st->secret, strlen(st->secret));
    if (st->token)
        explicit_bzero(st->token, strlen(st->token));
    free(st->secret);
    free(st->token);
    free(st);
}

/* A malloc'd printf. */
static char *fmt_dup(const char *fmt, ...) LS_PRINTF(1, 2);
static char *fmt_dup(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/*
 * Build the URL bases from the endpoint (scheme added, trailing '/'
 * dropped): path style "ENDPOINT/BUCKET" for both; virtual-host style
 * "SCHEME://BUCKET.HOST..." for objects and the same with "/" for buckets.
 */
static int make_urls(s3_store *st, const char *endpoint, int path_style)
{
    const char *sep = strstr(endpoint, "://");
    char *ep = sep ? strdup(endpoint) : fmt_dup("https://%s", endpoint);
    if (!ep)
        return LS_ENOMEM;
    size_t n = strlen(ep);
    while (n > 0 && ep[n - 1] == '/')
        ep[--n] = '\0';
    ls_buf b = {0};
    if (ls_http_buf_pct(&b, st->bucket, 0)) {
        free(ep);
        return LS_ENOMEM;
    }
    const char *bk = (const char *)b.p;
    if (path_style) {
        st->obj_base = fmt_dup("%s/%s", ep, bk);
        st->bucket_url = fmt_dup("%s/%s", ep, bk);
    } else {
        char *host = strstr(ep, "://") + 3;
        st->obj_base = fmt_dup("%.*s%s.%s", (int)(host - ep), ep, bk, host);
        st->bucket_url = fmt_dup("%.*s%s.%s/", (int)(host - ep), ep, bk, host);
    }
    free(ep);
    ls_buf_free(&b);
    return st->obj_base && st->bucket_url ? 0 : LS_ENOMEM;
}

/* "path" without leading or trailing '/', plus "/" unless empty. */
static char *make_prefix(const char *path)
{
    while (*path == '/')
        path++;
    size_t n = strlen(path);
    while (n > 0 && path[n - 1] == '/')
        n--;
    return n ? fmt_dup("%.*s/", (int)n, path) : strdup("");
}

int ls_storage_s3_open(ls_ctx *ctx, const ls_storage_opts *opts, ls_storage **out)
{
    s3_store *st = NULL;
    char desc[512];
    int rc = 0;

    *out = NULL;
    int is_gcs = opts->type && strcasecmp(opts->type, "gcs") == 0;
    const char *type = is_gcs ? "gcs" : "s3";
    const char *name = opts->name && *opts->name ? opts->name : type;
    const char *bucket = opts->bucket;
    const char *path = opts->path ? opts->path : "";
    const char *endpoint = opts->endpoint && *opts->endpoint ? opts->endpoint : NULL;
    const char *region = opts->region && *opts->region ? opts->region : NULL;
    int path_style = opts->force_path_style;
    if (!region)
        region = is_gcs ? "auto" : "us-east-1";
    if (is_gcs) {
        path_style = 1;
        if (!endpoint)
            endpoint = "https://storage.googleapis.com";
    }
    if (!bucket || !*bucket || strchr(bucket, '/')) {
        rc = ls_err(ctx, LS_EUSAGE, "replica %s: %s replica: %s", name, type,
                    bucket && *bucket ? "bucket name contains '/'" : "bucket required");
        goto cleanup;
    }
    if (!opts->access_key_id || !*opts->access_key_id || !opts->secret_access_key ||
        !*opts->secret_access_key) {
        rc = ls_err(ctx, LS_EUSAGE,
                    "replica %s: %s replica: no credentials: set access-key-id and "
                    "secret-access-key in the configuration, or LITESAFE_ACCESS_KEY_ID and "
                    "LITESAFE_SECRET_ACCESS_KEY (also LITESTREAM_* or AWS_*) in the environment",
                    name, type);
        goto cleanup;
    }
    if (!(st = calloc(1, sizeof(*st)))) {
        rc = oom(ctx);
        goto cleanup;
    }
    st->is_gcs = is_gcs;
    char *aws_ep = endpoint ? NULL : fmt_dup("https://s3.%s.amazonaws.com", region);
    if (!endpoint)
        endpoint = aws_ep;
    if (!endpoint || !(st->bucket = strdup(bucket)) || !(st->prefix = make_prefix(path)) ||
        !(st->sigv4 = fmt_dup("aws:amz:%s:s3", region)) ||
        !(st->key_id = strdup(opts->access_key_id)) ||
        !(st->secret = strdup(opts->secret_access_key)) ||
        (opts->session_token && *opts->session_token &&
         !(st->token = strdup(opts->session_token))) ||
        make_urls(st, endpoint, path_style)) {
        free(aws_ep);
        rc = oom(ctx);
        goto cleanup;
    }
    size_t plen = strlen(st->prefix);
    snprintf(desc, sizeof(desc), "%s://%s%s%.*s (%s)", type, bucket, plen ? "/" : "",
             plen ? (int)plen - 1 : 0, st->prefix, endpoint);
    free(aws_ep);
    ls_http_opts ho = {opts->timeout_ms, opts->skip_verify, opts->ca_file};
    if ((rc = ls_http_pool_new(ctx, &ho, &st->pool)) != 0)
        goto cleanup;
    ls_storage_init(&st->base, is_gcs ? "gcs" : "s3", name, desc);
    st->base.put = s3_put;
    st->base.get = s3_get;
    st->base.list = s3_list;
    st->base.stat = s3_stat;
    st->base.del = s3_del;
    st->base.close = s3_close;
    *out = &st->base;
    st = NULL;

cleanup:
    if (st)
        s3_close(&st->base);
    return rc;
}

/* ---- Reply parsers, for tests (replies.h) ---- */

int ls_s3_reply_list(ls_storage *s, ls_ctx *ctx, const char *prefix, const ls_http_resp *resp,
                     ls_obj_list *out, char *token, size_t tokensz)
{
    return list_parse((s3_store *)s, ctx, prefix, resp, out, token, tokensz);
}

int ls_s3_reply_error(ls_storage *s, ls_ctx *ctx, const char *op, const char *key,
                      const ls_http_resp *resp)
{
    return s3_fail((s3_store *)s, ctx, op, key, 0, resp);
}

int ls_s3_reply_delete(ls_storage *s, ls_ctx *ctx, const ls_http_resp *resp)
{
    return delete_errors((s3_store *)s, ctx, resp);
}
