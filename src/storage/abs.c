/*
 * storage/abs.c - the Azure Blob Storage backend: a replica is a container
 * and a key is a block blob named "<prefix>/<key>" in it, reached over the
 * Blob REST API with Shared Key authorization (x-ms-version 2021-08-06).
 *
 * Options: account_name and account_key (base64) are required; bucket is
 * the container; path the name prefix ("" = the whole container).
 * endpoint is the URL of the account's blob service, everything that comes
 * before "/<container>": default "https://<account>.blob.core.windows.net";
 * for Azurite (path-style) "http://127.0.0.1:10000/devstoreaccount1", the
 * account being the first path component. So the URL of a blob is always
 * "<endpoint>/<container>/<name>" (as Litestream and the Azure SDKs treat
 * a service URL), and whatever path the endpoint has is part of the signed
 * resource: "/<account><endpoint path>/<container>/<name>", which for
 * Azurite is "/devstoreaccount1/devstoreaccount1/<container>/<name>".
 *
 * Shared Key (learn.microsoft.com, "Authorize with Shared Key"): every
 * request carries x-ms-date and x-ms-version, and
 *   Authorization: SharedKey <account>:base64(HMAC-SHA256(key, StringToSign))
 *   StringToSign = VERB \n Content-Encoding \n Content-Language \n
 *                  Content-Length ("" when 0) \n Content-MD5 \n Content-Type \n
 *                  Date \n If-Modified-Since \n If-Match \n If-None-Match \n
 *                  If-Unmodified-Since \n Range \n
 *                  CanonicalizedHeaders CanonicalizedResource
 *   CanonicalizedHeaders: each x-ms-* header as "name:value\n", names
 *                  lowercase, sorted (we send date, version, blob-type, range);
 *   CanonicalizedResource: "/<account>" + the URL path as sent (encoded),
 *                  then per query parameter, sorted by lowercase name,
 *                  "\n<name>:<value>" with the value decoded (several values
 *                  of one name would be sorted and comma-joined; we never send
 *                  a name twice).
 * We use the x-ms-range header rather than Range, and leave Date empty. A
 * request and its signature are built from one list of query parameters and
 * one list of headers (abs_send), so the two cannot disagree.
 *
 * Operations:
 *   put  a reader of known size <= PUT_STREAM_MAX: one streamed Put Blob.
 *        Otherwise the bytes are read into one BLOCK_SIZE buffer at a time:
 *        if everything fits in the first, one Put Blob from memory; else each
 *        buffer is a Put Block and a final Put Block List commits them. The
 *        blob appears (or is replaced) only at that commit, so a put is
 *        atomic either way; blocks of a failed put are never committed (Azure
 *        drops uncommitted blocks after a week). Block ids are base64 of 12
 *        bytes (8 random per put, then the 4-byte block number), so every id
 *        of a blob has the same length, as Azure requires, and two puts of
 *        one key cannot mix blocks. Memory: one block per running put.
 *   get  Get Blob with x-ms-range, streamed into the writer; 416 (a range
 *        at or past the end) is success with no bytes.
 *   list List Blobs (restype=container&comp=list&prefix=&marker=) page by
 *        page following NextMarker; each page is parsed from memory.
 *   stat Get Blob Properties (HEAD): Content-Length and Last-Modified.
 *   del  Delete Blob, one key at a time; 404 BlobNotFound is success.
 * Errors: transport failures come from http.c (LS_ENET when transient).
 * Replies: ContainerNotFound -> LS_EUSAGE "container X does not exist";
 * 401/403 (AuthenticationFailed...) -> LS_EPERM; 404 -> LS_ENOENT; 5xx/429 ->
 * LS_ENET; other statuses LS_EIO with the server's code and message.
 * The account key lives only in abs_store.key (decoded) and never reaches a
 * message, desc or log.
 *
 * Thread safety: the store is immutable after open; every request takes its
 * own curl handle from the http.c pool, so any number of threads may call
 * one store at once.
 */
#define _GNU_SOURCE
#include "http.h"
#include "random.h"
#include "replies.h"
#include "storage.h"
#include "url.h" /* ls_url_path_clean */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ABS_VERSION "2021-08-06"
/* A reader of known size up to this goes in one streamed Put Blob. */
#define PUT_STREAM_MAX ((int64_t)256 << 20)
/* Bytes per Put Block (and the largest Put Blob sent from memory). */
#define BLOCK_SIZE ((size_t)4 << 20)
/* Azure's limit of blocks per blob. */
#define MAX_BLOCKS 50000
/* Blobs asked per List Blobs page, and the reply size we accept for one. */
#define LIST_PAGE "1000"
#define LIST_MAX_BODY ((size_t)16 << 20)
/* Block id: 8 random bytes + 4-byte block number, base64 -> 16 chars. */
#define BLOCK_ID_RAW 12
#define BLOCK_ID_LEN 16

typedef struct abs_store {
    ls_storage base;     /* must be first: the vtable and names */
    ls_http_pool *pool;  /* curl handles, timeouts, TLS options */
    char *account;       /* account name */
    uint8_t key[128];    /* the decoded account key (secret) */
    size_t keylen;       /* its length */
    char *container;     /* container name */
    char *prefix;        /* "" or "<path>/": prepended to every key */
    char *endpoint;      /* blob service URL, no trailing '/' */
    const char *ep_path; /* the path part of endpoint ("" or "/..."), inside it */
} abs_store;

/* One query parameter or header: name and value. */
typedef struct abs_kv {
    const char *k; /* name (query names as sent; header names lowercase x-ms-*) */
    const char *v; /* value, not encoded */
} abs_kv;

/* One request to send: what abs_send builds the URL, headers and signature from. */
typedef struct abs_call {
    const char *op;     /* "put", "get", ... for messages */
    const char *key;    /* key for messages (NULL: container-level) */
    const char *method; /* HTTP method */
    const char *name;   /* full blob name (prefix + key), NULL: the container itself */
    abs_kv q[6];        /* query parameters */
    size_t nq;          /* their count */
    abs_kv h[4];        /* extra x-ms-* headers (besides date and version) */
    size_t nh;          /* their count */
    const char *ctype;  /* Content-Type, NULL: none */
    int64_t clen;       /* Content-Length of the body (http.c sends it), -1: no body */
    int range_416_ok;   /* 1: 416 (range not satisfiable) is success with no bytes */
} abs_call;

static int kv_cmp(const void *a, const void *b)
{
    return strcasecmp(((const abs_kv *)a)->k, ((const abs_kv *)b)->k);
}

/*
 * The encoded URL path of a call into b: "<endpoint path>/<container>[/<name>]".
 * Returns 0 or LS_ENOMEM.
 */
static int url_path(const abs_store *as, const abs_call *c, ls_buf *b)
{
    int rc = ls_http_buf_str(b, as->ep_path);
    if (!rc)
        rc = ls_http_buf_str(b, "/");
    if (!rc)
        rc = ls_http_buf_pct(b, as->container, 0);
    if (!rc && c->name) {
        rc = ls_http_buf_str(b, "/");
        if (!rc)
            rc = ls_http_buf_pct(b, c->name, 1);
    }
    return rc;
}

/*
 * The Authorization header value of a call (query and headers already
 * sorted; hdrs holds every x-ms-* header sent) into out. Returns 0 or
 * LS_ENOMEM.
 */
static int sign(const abs_store *as, const abs_call *c, const abs_kv *hdrs, size_t nhdrs,
                const char *path, char *out, size_t outsz)
{
    ls_buf sts = {0};
    char clen[24] = "";
    int rc;

    if (c->clen > 0)
        snprintf(clen, sizeof(clen), "%lld", (long long)c->clen);
    char head[256];
    snprintf(head, sizeof(head), "%s\n\n\n%s\n\n%s\n\n\n\n\n\n\n", c->method, clen,
             c->ctype ? c->ctype : "");
    rc = ls_http_buf_str(&sts, head);
    for (size_t i = 0; !rc && i < nhdrs; i++) {
        rc = ls_http_buf_str(&sts, hdrs[i].k);
        if (!rc)
            rc = ls_http_buf_str(&sts, ":");
        if (!rc)
            rc = ls_http_buf_str(&sts, hdrs[i].v);
        if (!rc)
            rc = ls_http_buf_str(&sts, "\n");
    }
    if (!rc)
        rc = ls_http_buf_str(&sts, "/");
    if (!rc)
        rc = ls_http_buf_str(&sts, as->account);
    if (!rc)
        rc = ls_http_buf_str(&sts, path);
    for (size_t i = 0; !rc && i < c->nq; i++) {
        rc = ls_http_buf_str(&sts, "\n");
        for (const char *k = c->q[i].k; !rc && *k; k++) {
            char lc = (char)(*k >= 'A' && *k <= 'Z' ? *k - 'A' + 'a' : *k);
            rc = ls_buf_add(&sts, &lc, 1);
        }
        if (!rc)
            rc = ls_http_buf_str(&sts, ":");
        if (!rc)
            rc = ls_http_buf_str(&sts, c->q[i].v);
    }
    if (!rc) {
        uint8_t mac[32];
        char b64[48];
        ls_http_hmac_sha256(as->key, as->keylen, sts.p, sts.n, mac);
        ls_http_base64(mac, sizeof(mac), b64);
        snprintf(out, outsz, "SharedKey %s:%s", as->account, b64);
    }
    ls_buf_free(&sts);
    return rc;
}

/*
 * Send call c with the body/output fields of hr (method, url and headers are
 * filled here) and fill *resp. Sorts c's query parameters and headers.
 * Returns ls_http_do's result (0 when a reply arrived, whatever its status),
 * with the message already worded for the object on failure.
 */
static int abs_send(abs_store *as, ls_ctx *ctx, abs_call *c, ls_http_req *hr, ls_http_resp *resp)
{
    ls_buf path = {0}, url = {0};
    struct curl_slist *hl = NULL;
    abs_kv hdrs[8];
    size_t nh = 0;
    char date[64], auth[256];
    int rc;

    memset(resp, 0, sizeof(*resp));
    ls_http_date_now(date, sizeof(date));
    hdrs[nh++] = (abs_kv){"x-ms-date", date};
    hdrs[nh++] = (abs_kv){"x-ms-version", ABS_VERSION};
    for (size_t i = 0; i < c->nh && nh < sizeof(hdrs) / sizeof(hdrs[0]); i++)
        hdrs[nh++] = c->h[i];
    qsort(hdrs, nh, sizeof(hdrs[0]), kv_cmp);
    qsort(c->q, c->nq, sizeof(c->q[0]), kv_cmp);

    rc = url_path(as, c, &path);
    /* url: endpoint (its path included) + "/container[/name]" + "?query" */
    if (!rc)
        rc = ls_http_buf_str(&url, as->endpoint);
    if (!rc)
        rc = ls_http_buf_str(&url, (const char *)path.p + strlen(as->ep_path));
    for (size_t i = 0; !rc && i < c->nq; i++) {
        rc = ls_http_buf_str(&url, i ? "&" : "?");
        if (!rc)
            rc = ls_http_buf_str(&url, c->q[i].k);
        if (!rc)
            rc = ls_http_buf_str(&url, "=");
        if (!rc)
            rc = ls_http_buf_pct(&url, c->q[i].v, 0);
    }
    if (!rc)
        rc = sign(as, c, hdrs, nh, (const char *)path.p, auth, sizeof(auth));
    if (rc) {
        rc = ls_storage_err(&as->base, ctx, LS_ENOMEM, c->op, c->key, "out of memory");
        goto cleanup;
    }
    for (size_t i = 0; !rc && i < nh; i++)
        rc = ls_http_header_add(ctx, &hl, hdrs[i].k, hdrs[i].v);
    if (!rc && c->ctype)
        rc = ls_http_header_add(ctx, &hl, "Content-Type", c->ctype);
    if (!rc)
        rc = ls_http_header_add(ctx, &hl, "Authorization", auth);
    if (rc) {
        rc = ls_storage_err(&as->base, ctx, rc, c->op, c->key, NULL);
        goto cleanup;
    }
    hr->method = c->method;
    hr->url = (const char *)url.p;
    hr->headers = hl;
    rc = ls_http_do(as->pool, ctx, hr, resp);
    if (rc)
        rc = ls_storage_err(&as->base, ctx, rc, c->op, c->key, NULL);

cleanup:
    curl_slist_free_all(hl);
    ls_buf_free(&path);
    ls_buf_free(&url);
    hr->url = NULL;
    hr->headers = NULL;
    return rc;
}

/*
 * The LS_E* code and message of a reply that is not 2xx (0 for a 2xx).
 * The error code comes from the x-ms-error-code header or the XML <Code>,
 * the explanation from the first line of <Message>.
 */
static int reply_err(abs_store *as, ls_ctx *ctx, const abs_call *c, const ls_http_resp *resp)
{
    char code[128] = "", msg[512] = "";
    int lsrc = ls_http_status_code(resp->status);

    if (lsrc == 0 || (c->range_416_ok && resp->status == 416))
        return 0;
    const char *hcode = ls_http_header(resp, "x-ms-error-code");
    if (hcode)
        ls_strlcpy(code, hcode, sizeof(code));
    if (resp->body) {
        const char *end = resp->body + resp->body_len;
        if (!*code)
            ls_xml_get(resp->body, end, "Code", code, sizeof(code));
        ls_xml_get(resp->body, end, "Message", msg, sizeof(msg));
        msg[strcspn(msg, "\r\n")] = '\0';
    }
    if (strcmp(code, "ContainerNotFound") == 0)
        return ls_storage_err(&as->base, ctx, LS_EUSAGE, c->op, c->key,
                              "container %s does not exist in account %s", as->container,
                              as->account);
    if (lsrc == LS_ENOENT)
        return ls_storage_err(&as->base, ctx, LS_ENOENT, c->op, c->key, "not found (%s)",
                              *code ? code : "HTTP 404");
    if (lsrc == LS_EPERM)
        return ls_storage_err(&as->base, ctx, LS_EPERM, c->op, c->key,
                              "access denied: HTTP %ld %s%s%s (check account-name and "
                              "account-key)",
                              resp->status, *code ? code : "", *msg ? ": " : "", msg);
    return ls_storage_err(&as->base, ctx, lsrc, c->op, c->key, "HTTP %ld%s%s%s%s", resp->status,
                          *code ? " " : "", code, *msg ? ": " : "", msg);
}

/* Send c and check its status: for calls whose reply carries nothing we need. */
static int abs_run(abs_store *as, ls_ctx *ctx, abs_call *c, ls_http_req *hr)
{
    ls_http_resp resp;
    int rc = abs_send(as, ctx, c, hr, &resp);
    if (!rc)
        rc = reply_err(as, ctx, c, &resp);
    ls_http_resp_free(&resp);
    return rc;
}

/* prefix + key into a malloc'd string; NULL on ENOMEM. */
static char *full_name(const abs_store *as, const char *key)
{
    size_t n = strlen(as->prefix) + strlen(key) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s", as->prefix, key);
    return s;
}

/* Check key (is_prefix: a list prefix) and set *name to its blob name (malloc'd). */
static int blob_name(abs_store *as, ls_ctx *ctx, const char *op, const char *key, int is_prefix,
                     char **name)
{
    int rc = ls_storage_check_key(&as->base, ctx, op, key, is_prefix);
    *name = NULL;
    if (rc)
        return rc;
    if (!(*name = full_name(as, key)))
        return ls_storage_err(&as->base, ctx, LS_ENOMEM, op, key, "out of memory");
    return 0;
}

/* ---- put ---- */

/* Fill buf with up to cap bytes from r; *got gets the count (short only at the end). */
static int read_full(abs_store *as, ls_ctx *ctx, const char *key, ls_reader *r, uint8_t *buf,
                     size_t cap, size_t *got)
{
    size_t n = 0;
    while (n < cap) {
        int64_t k = r->read(r->ud, buf + n, cap - n);
        if (k < 0)
            return ls_storage_err(&as->base, ctx, (int)k, "put", key, NULL);
        if (k == 0)
            break;
        n += (size_t)k;
    }
    *got = n;
    return 0;
}

/*
 * One Put Blob: the body is r streamed (when r is not NULL) or n bytes of
 * buf. Returns 0 or the failure.
 */
static int put_blob(abs_store *as, ls_ctx *ctx, const char *key, const char *name, ls_reader *r,
                    const uint8_t *buf, size_t n)
{
    abs_call c = {.op = "put",
                  .key = key,
                  .method = "PUT",
                  .name = name,
                  .ctype = "application/octet-stream"};
    ls_http_req hr = {.has_body = 1};

    c.h[c.nh++] = (abs_kv){"x-ms-blob-type", "BlockBlob"};
    if (r) {
        c.clen = r->size;
        hr.body = r;
    } else {
        c.clen = (int64_t)n;
        hr.body_buf = buf;
        hr.body_len = n;
    }
    return abs_run(as, ctx, &c, &hr);
}

/* Put Block number i (n bytes of buf) with the id made of nonce and i; id gets its base64. */
static int put_block(abs_store *as, ls_ctx *ctx, const char *key, const char *name,
                     const uint8_t nonce[8], uint32_t i, const uint8_t *buf, size_t n,
                     char id[BLOCK_ID_LEN + 1])
{
    uint8_t raw[BLOCK_ID_RAW];
    memcpy(raw, nonce, 8);
    raw[8] = (uint8_t)(i >> 24);
    raw[9] = (uint8_t)(i >> 16);
    raw[10] = (uint8_t)(i >> 8);
    raw[11] = (uint8_t)i;
    ls_http_base64(raw, sizeof(raw), id);

    abs_call c = {.op = "put",
                  .key = key,
                  .method = "PUT",
                  .name = name,
                  .ctype = "application/octet-stream",
                  .clen = (int64_t)n};
    c.q[c.nq++] = (abs_kv){"comp", "block"};
    c.q[c.nq++] = (abs_kv){"blockid", id};
    ls_http_req hr = {.has_body = 1, .body_buf = buf, .body_len = n};
    return abs_run(as, ctx, &c, &hr);
}

/* Put Block List: commit the blocks whose <Latest> elements are in xml. */
static int put_block_list(abs_store *as, ls_ctx *ctx, const char *key, const char *name,
                          const ls_buf *xml)
{
    abs_call c = {.op = "put",
                  .key = key,
                  .method = "PUT",
                  .name = name,
                  .ctype = "application/xml",
                  .clen = (int64_t)xml->n};
    c.q[c.nq++] = (abs_kv){"comp", "blocklist"};
    ls_http_req hr = {.has_body = 1, .body_buf = xml->p, .body_len = xml->n};
    return abs_run(as, ctx, &c, &hr);
}

/*
 * The buffered path of put (size unknown or large):
 *   1. read up to BLOCK_SIZE; if the reader ended within it, one Put Blob;
 *   2. else Put Block for it and for each following buffer, listing the ids;
 *   3. Put Block List commits them in order (the blob appears only now).
 */
static int put_blocks(abs_store *as, ls_ctx *ctx, const char *key, const char *name, ls_reader *r)
{
    uint8_t *buf = NULL, nonce[8];
    ls_buf xml = {0};
    size_t n = 0;
    uint32_t nblk = 0;
    int rc;

    if (!(buf = malloc(BLOCK_SIZE)))
        return ls_storage_err(&as->base, ctx, LS_ENOMEM, "put", key, "out of memory");
    /* 1 */
    if ((rc = read_full(as, ctx, key, r, buf, BLOCK_SIZE, &n)) != 0)
        goto cleanup;
    if (n < BLOCK_SIZE) {
        rc = put_blob(as, ctx, key, name, NULL, buf, n);
        goto cleanup;
    }
    /* 2 */
    if (ls_random_bytes(nonce, sizeof(nonce)) != 0) {
        rc = ls_storage_err(&as->base, ctx, LS_EIO, "put", key, "getrandom failed");
        goto cleanup;
    }
    if (ls_http_buf_str(&xml, "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>"))
        goto nomem;
    while (n > 0) {
        char id[BLOCK_ID_LEN + 1];
        if (ls_cancelled(ctx)) {
            rc = ls_storage_err(&as->base, ctx, LS_ECANCEL, "put", key, "cancelled");
            goto cleanup;
        }
        if (nblk >= MAX_BLOCKS) {
            rc =
                ls_storage_err(&as->base, ctx, LS_EUSAGE, "put", key,
                               "object larger than %d blocks of %zu bytes", MAX_BLOCKS, BLOCK_SIZE);
            goto cleanup;
        }
        if ((rc = put_block(as, ctx, key, name, nonce, nblk, buf, n, id)) != 0)
            goto cleanup;
        nblk++;
        if (ls_http_buf_str(&xml, "<Latest>") || ls_http_buf_str(&xml, id) ||
            ls_http_buf_str(&xml, "</Latest>"))
            goto nomem;
        if (n < BLOCK_SIZE)
            break;
        if ((rc = read_full(as, ctx, key, r, buf, BLOCK_SIZE, &n)) != 0)
            goto cleanup;
    }
    /* 3 */
    if (ls_http_buf_str(&xml, "</BlockList>"))
        goto nomem;
    rc = put_block_list(as, ctx, key, name, &xml);
    goto cleanup;
nomem:
    rc = ls_storage_err(&as->base, ctx, LS_ENOMEM, "put", key, "out of memory");
cleanup:
    free(buf);
    ls_buf_free(&xml);
    return rc;
}

static int abs_put(ls_storage *s, ls_ctx *ctx, const char *key, ls_reader *r)
{
    abs_store *as = (abs_store *)s;
    char *name = NULL;
    int rc = blob_name(as, ctx, "put", key, 0, &name);
    if (rc)
        return rc;
    if (r->size >= 0 && r->size <= PUT_STREAM_MAX)
        rc = put_blob(as, ctx, key, name, r, NULL, 0);
    else
        rc = put_blocks(as, ctx, key, name, r);
    free(name);
    return rc;
}

/* ---- get, stat, del ---- */

static int abs_get(ls_storage *s, ls_ctx *ctx, const char *key, uint64_t off, int64_t len,
                   ls_writer *w)
{
    abs_store *as = (abs_store *)s;
    char range[64];
    char *name = NULL;
    int rc = blob_name(as, ctx, "get", key, 0, &name);
    if (rc)
        return rc;
    abs_call c = {
        .op = "get", .key = key, .method = "GET", .name = name, .clen = -1, .range_416_ok = 1};
    if (len >= 0 || off > 0) {
        if (len == 0) /* nothing asked: still report a missing object */
            snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)off,
                     (unsigned long long)off);
        else if (len > 0 && (uint64_t)len - 1 <= UINT64_MAX - off)
            snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)off,
                     (unsigned long long)(off + (uint64_t)len - 1));
        else
            snprintf(range, sizeof(range), "bytes=%llu-", (unsigned long long)off);
        c.h[c.nh++] = (abs_kv){"x-ms-range", range};
    }
    /* len == 0: the probe's byte (if any) goes to a sink that drops it */
    ls_buf drop = {0};
    ls_writer dropw;
    ls_writer_buf(&dropw, &drop);
    ls_http_req hr = {.out = len == 0 ? &dropw : w, .ranged = c.nh > 0};
    rc = abs_run(as, ctx, &c, &hr);
    ls_buf_free(&drop);
    free(name);
    return rc;
}

static int abs_stat(ls_storage *s, ls_ctx *ctx, const char *key, ls_obj *out)
{
    abs_store *as = (abs_store *)s;
    memset(out, 0, sizeof(*out));
    char *name = NULL;
    int rc = blob_name(as, ctx, "stat", key, 0, &name);
    if (rc)
        return rc;
    abs_call c = {.op = "stat", .key = key, .method = "HEAD", .name = name, .clen = -1};
    ls_http_req hr = {0};
    ls_http_resp resp;
    rc = abs_send(as, ctx, &c, &hr, &resp);
    if (!rc)
        rc = reply_err(as, ctx, &c, &resp);
    if (!rc) {
        const char *lm = ls_http_header(&resp, "Last-Modified");
        int64_t ms = lm ? ls_http_parse_rfc1123(lm) : -1;
        if (resp.content_length < 0 || ms < 0)
            rc = ls_storage_err(s, ctx, LS_EIO, "stat", key,
                                "reply without Content-Length or Last-Modified");
        out->size = (uint64_t)(resp.content_length < 0 ? 0 : resp.content_length);
        out->mtime_ms = ms < 0 ? 0 : ms;
    }
    ls_http_resp_free(&resp);
    free(name);
    return rc;
}

static int abs_del(ls_storage *s, ls_ctx *ctx, const char *const *keys, size_t n)
{
    abs_store *as = (abs_store *)s;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        if ((rc = ls_storage_check_key(s, ctx, "delete", keys[i], 0)) != 0)
            return rc;
    for (size_t i = 0; i < n && !rc; i++) {
        char *name = NULL;
        if ((rc = blob_name(as, ctx, "delete", keys[i], 0, &name)) != 0)
            return rc;
        abs_call c = {.op = "delete", .key = keys[i], .method = "DELETE", .name = name, .clen = -1};
        ls_http_req hr = {0};
        rc = abs_run(as, ctx, &c, &hr);
        if (rc == LS_ENOENT) /* already gone */
            rc = 0;
        free(name);
    }
    return rc;
}

/* ---- list ---- */

/*
 * Add the <Blob> entries of one List Blobs page to out (names without the
 * root prefix); *next gets the decoded NextMarker (malloc'd; NULL when the
 * listing is complete). Returns 0, LS_EIO (malformed) or LS_ENOMEM.
 */
static int parse_page(abs_store *as, ls_ctx *ctx, const char *prefix, const ls_http_resp *resp,
                      ls_obj_list *out, char **next)
{
    const char *p = resp->body ? resp->body : "", *end = p + (resp->body ? resp->body_len : 0);
    const char *v;
    size_t vl;
    size_t plen = strlen(as->prefix);
    int rc = 0;

    *next = NULL;
    if (resp->truncated)
        return ls_storage_err(&as->base, ctx, LS_EIO, "list", prefix, "reply too large");
    if (!strstr(p, "<EnumerationResults"))
        return ls_storage_err(&as->base, ctx, LS_EIO, "list", prefix, "reply is not a blob list");
    while (!rc && (p = ls_xml_next(p, end, "Blob", &v, &vl)) != NULL) {
        char size[32] = "", mtime[64] = "";
        const char *nv;
        size_t nl;
        if (!ls_xml_next(v, v + vl, "Name", &nv, &nl) ||
            !ls_xml_get(v, v + vl, "Content-Length", size, sizeof(size)) ||
            !ls_xml_get(v, v + vl, "Last-Modified", mtime, sizeof(mtime)))
            return ls_storage_err(&as->base, ctx, LS_EIO, "list", prefix,
                                  "blob entry without Name, Content-Length or Last-Modified");
        char *name = ls_xml_decode(nv, nl);
        if (!name)
            return ls_storage_err(&as->base, ctx, LS_ENOMEM, "list", prefix, "out of memory");
        char *e;
        errno = 0;
        unsigned long long sz = strtoull(size, &e, 10);
        int64_t ms = ls_http_parse_rfc1123(mtime);
        if (errno || e == size || *e || ms < 0)
            rc = ls_storage_err(&as->base, ctx, LS_EIO, "list", prefix,
                                "bad Content-Length or Last-Modified of %s", name);
        else if (strncmp(name, as->prefix, plen) == 0 && name[plen])
            rc = ls_obj_list_add(out, name + plen, sz, ms);
        if (rc == LS_ENOMEM)
            rc = ls_storage_err(&as->base, ctx, LS_ENOMEM, "list", prefix, "out of memory");
        free(name);
    }
    if (!rc && ls_xml_next(resp->body ? resp->body : "", end, "NextMarker", &v, &vl) && vl > 0 &&
        !(*next = ls_xml_decode(v, vl)))
        rc = ls_storage_err(&as->base, ctx, LS_ENOMEM, "list", prefix, "out of memory");
    /* A marker that decodes to nothing (NUL bytes) would ask for the first page again, forever. */
    if (!rc && *next && (!**next || memchr(v, '\0', vl))) {
        free(*next);
        *next = NULL;
        rc = ls_storage_err(&as->base, ctx, LS_EIO, "list", prefix, "malformed NextMarker");
    }
    return rc;
}

static int abs_list(ls_storage *s, ls_ctx *ctx, const char *prefix, ls_obj_list *out)
{
    abs_store *as = (abs_store *)s;
    char *full = NULL, *marker = NULL;
    int rc = blob_name(as, ctx, "list", prefix, 1, &full);
    if (rc)
        return rc;
    do {
        abs_call c = {.op = "list", .key = prefix, .method = "GET", .clen = -1};
        c.q[c.nq++] = (abs_kv){"restype", "container"};
        c.q[c.nq++] = (abs_kv){"comp", "list"};
        c.q[c.nq++] = (abs_kv){"maxresults", LIST_PAGE};
        if (*full)
            c.q[c.nq++] = (abs_kv){"prefix", full};
        if (marker)
            c.q[c.nq++] = (abs_kv){"marker", marker};
        ls_http_req hr = {.max_body = LIST_MAX_BODY};
        ls_http_resp resp;
        rc = abs_send(as, ctx, &c, &hr, &resp);
        if (!rc)
            rc = reply_err(as, ctx, &c, &resp);
        free(marker);
        marker = NULL;
        if (!rc)
            rc = parse_page(as, ctx, prefix, &resp, out, &marker);
        ls_http_resp_free(&resp);
    } while (!rc && marker);
    free(marker);
    free(full);
    return rc;
}

/* ---- open, close ---- */

static void abs_close(ls_storage *s)
{
    abs_store *as = (abs_store *)s;
    if (!as)
        return;
    ls_http_pool_free(as->pool);
    free(as->account);
    free(as->container);
    free(as->prefix);
    free(as->endpoint);
    explicit_bzero(as->key, sizeof(as->key)); /* the secret does not outlive the handle */
    free(as);
}

/* A malloc'd copy of s, NULL when s is unset or empty. */
static char *dup_set(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

/*
 * Fill as from opts: account, key, container, prefix, endpoint. Returns 0,
 * LS_EUSAGE with a message (never quoting the key), or LS_ENOMEM.
 */
static int abs_config(abs_store *as, ls_ctx *ctx, const ls_storage_opts *opts, const char *rn)
{
    int rc = 0;

    as->account = dup_set(opts->account_name);
    as->container = dup_set(opts->bucket);
    char *path = strdup(opts->path ? opts->path : "");
    if (!path)
        goto nomem;
    ls_url_path_clean(path);
    const char *p = path;
    while (*p == '/')
        p++;
    if (!(as->prefix = malloc(strlen(p) + 2))) {
        free(path);
        goto nomem;
    }
    snprintf(as->prefix, strlen(p) + 2, "%s%s", p, *p ? "/" : "");
    free(path);

    if (!as->account) {
        rc = ls_err(ctx, LS_EUSAGE, "replica %s: abs replica: account-name required", rn);
        goto cleanup;
    }
    if (strpbrk(as->account, "/:@?#") || strlen(as->account) > 64) {
        rc = ls_err(ctx, LS_EUSAGE, "replica %s: bad abs account name \"%s\"", rn, as->account);
        goto cleanup;
    }
    if (!as->container || strchr(as->container, '/')) {
        rc = ls_err(ctx, LS_EUSAGE, "replica %s: abs replica: %s", rn,
                    as->container ? "container name contains '/'"
                                  : "bucket (the container) required");
        goto cleanup;
    }
    if (!opts->account_key || !*opts->account_key) {
        rc = ls_err(ctx, LS_EUSAGE,
                    "replica %s: abs replica: account-key required (or LITESAFE_AZURE_ACCOUNT_KEY)",
                    rn);
        goto cleanup;
    }
    int kl = ls_http_base64_decode(opts->account_key, as->key, sizeof(as->key));
    if (kl <= 0) {
        rc = ls_err(ctx, LS_EUSAGE, "replica %s: abs replica: account-key is not valid base64", rn);
        goto cleanup;
    }
    as->keylen = (size_t)kl;

    if (opts->endpoint && *opts->endpoint) {
        if (strncasecmp(opts->endpoint, "http://", 7) != 0 &&
            strncasecmp(opts->endpoint, "https://", 8) != 0) {
            rc = ls_err(ctx, LS_EUSAGE,
                        "replica %s: abs endpoint must start with http:// or https://: %s", rn,
                        opts->endpoint);
            goto cleanup;
        }
        if (!(as->endpoint = strdup(opts->endpoint)))
            goto nomem;
    } else {
        size_t n = strlen(as->account) + 40;
        if (!(as->endpoint = malloc(n)))
            goto nomem;
        snprintf(as->endpoint, n, "https://%s.blob.core.windows.net", as->account);
    }
    size_t el = strlen(as->endpoint);
    while (el > 0 && as->endpoint[el - 1] == '/')
        as->endpoint[--el] = '\0';
    if (strpbrk(as->endpoint, "?#")) {
        rc = ls_err(ctx, LS_EUSAGE, "replica %s: abs endpoint has a query or fragment: %s", rn,
                    as->endpoint);
        goto cleanup;
    }
    const char *host = strstr(as->endpoint, "://") + 3;
    as->ep_path = host + strcspn(host, "/");
    goto cleanup;
nomem:
    rc = ls_err(ctx, LS_ENOMEM, "out of memory");
cleanup:
    return rc;
}

int ls_storage_abs_open(ls_ctx *ctx, const ls_storage_opts *opts, ls_storage **out)
{
    const char *rn = opts->name && *opts->name ? opts->name : "abs";
    abs_store *as = NULL;
    char desc[512];
    int rc;

    *out = NULL;
    if (!(as = calloc(1, sizeof(*as))))
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    if ((rc = abs_config(as, ctx, opts, rn)) != 0)
        goto fail;
    ls_http_opts ho = {
        .timeout_ms = opts->timeout_ms, .skip_verify = opts->skip_verify, .ca_file = opts->ca_file};
    if ((rc = ls_http_pool_new(ctx, &ho, &as->pool)) != 0)
        goto fail;
    size_t pl = strlen(as->prefix);
    snprintf(desc, sizeof(desc), "abs://%s@%s/%.*s (%s)", as->account, as->container,
             (int)(pl ? pl - 1 : 0), as->prefix, as->endpoint);
    ls_storage_init(&as->base, "abs", rn, desc);
    as->base.put = abs_put;
    as->base.get = abs_get;
    as->base.list = abs_list;
    as->base.stat = abs_stat;
    as->base.del = abs_del;
    as->base.close = abs_close;
    *out = &as->base;
    return 0;
fail:
    abs_close(&as->base);
    return rc;
}

/* ---- Reply parsers, for tests (replies.h) ---- */

int ls_abs_reply_list(ls_storage *s, ls_ctx *ctx, const char *prefix, const ls_http_resp *resp,
                      ls_obj_list *out, char **next)
{
    return parse_page((abs_store *)s, ctx, prefix, resp, out, next);
}

int ls_abs_reply_error(ls_storage *s, ls_ctx *ctx, const char *op, const char *key,
                       const ls_http_resp *resp)
{
    abs_call c = {.op = op, .key = key};
    return reply_err((abs_store *)s, ctx, &c, resp);
}
