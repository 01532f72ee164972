/*
 * storage/http.c - libcurl plumbing shared by s3.c and abs.c (see http.h).
 *
 * Thread safety: the pool's free list is the only shared state, guarded by
 * its mutex, held only to pop or push a handle (never during a transfer).
 * A handle belongs to one request at a time; curl_easy_reset() on return
 * clears its options but keeps its connection cache, so the next request to
 * the same host reuses a live connection.
 *
 * A request's reply body is routed when its first byte arrives: to the
 * caller's ls_writer if the final status is 2xx and a writer was given,
 * otherwise into resp->body (bounded). The status is taken from the last
 * "HTTP/..." header line, so an interim "100 Continue" never counts.
 */
#define _GNU_SOURCE
#include "http.h"
#include "hash.h"
#include "library.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DEFAULT_TIMEOUT_MS 30000

struct ls_http_pool {
    pthread_mutex_t mu;  /* guards free/nfree/cap */
    CURL **free;         /* idle handles, most recently used last */
    size_t nfree;        /* count */
    size_t cap;          /* allocated */
    int timeout_ms;      /* connect and stall timeout */
    int skip_verify;     /* no TLS verification */
    char *ca_file;       /* CURLOPT_CAINFO or NULL */
};

/* State of one transfer, shared by the curl callbacks. */
typedef struct xfer {
    const ls_http_req *req; /* the request */
    ls_http_resp *resp;     /* the reply being filled */
    ls_ctx *ctx;            /* for the cancel flag */
    size_t mem_pos;         /* next byte of req->body_buf to send */
    size_t cap;             /* cap of resp->body */
    int cb_rc;              /* reader/writer failure code, 0 if none */
    int over_cap;           /* a 2xx memory body exceeded the cap */
    int range_ignored;      /* a ranged request got a 200 with a body */
    int nomem;              /* allocation failed in a callback */
} xfer;

int ls_http_pool_new(ls_ctx *ctx, const ls_http_opts *opts, ls_http_pool **out)
{
    *out = NULL;
    const char *why = NULL;
    if (ls_library_lazy(&why) != 0) /* no-op after ls_library_init */
        return ls_err(ctx, LS_EIO, "%s", why);
    ls_http_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    if (opts->ca_file && *opts->ca_file && !(p->ca_file = strdup(opts->ca_file))) {
        free(p);
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&p->mu, NULL);
    p->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
    p->skip_verify = opts->skip_verify;
    *out = p;
    return 0;
}

void ls_http_pool_free(ls_http_pool *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nfree; i++)
        curl_easy_cleanup(p->free[i]);
    free(p->free);
    free(p->ca_file);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* An idle handle, or a new one; NULL on ENOMEM. */
static CURL *pool_take(ls_http_pool *p)
{
    CURL *h = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->nfree > 0)
        h = p->free[--p->nfree];
    pthread_mutex_unlock(&p->mu);
    return h ? h : curl_easy_init();
}

/* Reset h and keep it for reuse (its connections stay open). */
static void pool_give(ls_http_pool *p, CURL *h)
{
    curl_easy_reset(h);
    pthread_mutex_lock(&p->mu);
    if (p->nfree == p->cap) {
        size_t ncap = p->cap ? p->cap * 2 : 8;
        CURL **v = realloc(p->free, ncap * sizeof(*v));
        if (!v) {
            pthread_mutex_unlock(&p->mu);
            curl_easy_cleanup(h);
            return;
        }
        p->free = v;
        p->cap = ncap;
    }
    p->free[p->nfree++] = h;
    pthread_mutex_unlock(&p->mu);
}

/* ---- Callbacks ---- */

static void resp_clear_headers(ls_http_resp *r)
{
    for (size_t i = 0; i < r->nhdr; i++) {
        free(r->hname[i]);
        free(r->hval[i]);
    }
    r->nhdr = 0;
    r->content_length = -1;
}

/* 1 if a response header of this (lowercase) name is kept. */
static int header_kept(const char *name)
{
    /* Only what a backend reads: a reply full of x-amz-meta-* headers must not
     * crowd Content-Length out of the LS_HTTP_MAX_HEADERS slots. */
    static const char *const kept[] = {"etag", "content-length", "last-modified",
                                       "x-ms-error-code"};
    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
        if (strcmp(name, kept[i]) == 0)
            return 1;
    return 0;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud)
{
    xfer *x = ud;
    ls_http_resp *r = x->resp;
    size_t n = size * nitems, len = n;
    while (len > 0 && (buf[len - 1] == '\r' || buf[len - 1] == '\n'))
        len--;
    if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        /* A new reply (after "100 Continue" or a redirect): forget the previous one. */
        const char *sp = memchr(buf, ' ', len);
        r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        resp_clear_headers(r);
        return n;
    }
    const char *colon = memchr(buf, ':', len);
    if (!colon || colon == buf || r->nhdr >= LS_HTTP_MAX_HEADERS)
        return n;
    size_t nlen = (size_t)(colon - buf);
    char name[64];
    if (nlen >= sizeof(name))
        return n;
    for (size_t i = 0; i < nlen; i++)
        name[i] = (char)tolower((unsigned char)buf[i]);
    name[nlen] = '\0';
    if (!header_kept(name))
        return n;
    const char *v = colon + 1, *end = buf + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    char *hn = strdup(name), *hv = strndup(v, (size_t)(end - v));
    if (!hn || !hv) {
        free(hn);
        free(hv);
        x->nomem = 1;
        return 0;
    }
    if (strcmp(name, "content-length") == 0)
        r->content_length = strtoll(hv, NULL, 10);
    r->hname[r->nhdr] = hn;
    r->hval[r->nhdr++] = hv;
    return n;
}

static size_t on_body(char *buf, size_t size, size_t nmemb, void *ud)
{
    xfer *x = ud;
    ls_http_resp *r = x->resp;
    size_t n = size * nmemb;
    int ok = r->status >= 200 && r->status < 300;

    if (ok && x->req->ranged && r->status == 200) {
        x->range_ignored = 1; /* the whole object, not the range: not one byte of it */
        return 0;
    }
    if (ok && x->req->out) {
        int rc = x->req->out->write(x->req->out->ud, (const uint8_t *)buf, n);
        if (rc) {
            x->cb_rc = rc;
            return 0;
        }
        return n;
    }
    size_t room = x->cap > r->body_len ? x->cap - r->body_len : 0;
    size_t take = n < room ? n : room;
    if (take < n) {
        r->truncated = 1;
        if (ok) {
            x->over_cap = 1;
            return 0;
        }
    }
    if (take == 0)
        return n; /* an error body past the cap: drain it, keep the connection */
    char *nb = realloc(r->body, r->body_len + take + 1);
    if (!nb) {
        x->nomem = 1;
        return 0;
    }
    memcpy(nb + r->body_len, buf, take);
    r->body = nb;
    r->body_len += take;
    r->body[r->body_len] = '\0';
    return n;
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *ud)
{
    xfer *x = ud;
    size_t n = size * nitems;
    const ls_http_req *q = x->req;
    if (q->body) {
        int64_t got = q->body->read(q->body->ud, (uint8_t *)buf, n);
        if (got < 0) {
            x->cb_rc = (int)got;
            return CURL_READFUNC_ABORT;
        }
        return (size_t)got;
    }
    size_t left = q->body_len - x->mem_pos;
    size_t take = n < left ? n : left;
    if (take)
        memcpy(buf, (const uint8_t *)q->body_buf + x->mem_pos, take);
    x->mem_pos += take;
    return take;
}

/* A memory body can be sent again (curl rewinds after some failures); a stream cannot. */
static int on_seek(void *ud, curl_off_t off, int origin)
{
    xfer *x = ud;
    if (x->req->body || origin != SEEK_SET || off < 0 || (size_t)off > x->req->body_len)
        return CURL_SEEKFUNC_CANTSEEK;
    x->mem_pos = (size_t)off;
    return CURL_SEEKFUNC_OK;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    xfer *x = ud;
    return ls_cancelled(x->ctx) ? 1 : 0;
}

/* ---- The request ---- */

/* 1 if curl failed in a way a retry may fix. */
static int curl_transient(CURLcode c)
{
    switch (c) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0;
    }
}

/* Set the options of one request on h. Returns a CURLcode (CURLE_OK). */
static CURLcode setup(ls_http_pool *p, CURL *h, const ls_http_req *q, xfer *x, char *errbuf)
{
    CURLcode c = CURLE_OK;
    long stall_s = (p->timeout_ms + 999) / 1000;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (c == CURLE_OK)                                                                         \
            c = curl_easy_setopt(h, opt, val);                                                     \
    } while (0)
    SET(CURLOPT_URL, q->url);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_ERRORBUFFER, errbuf);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)p->timeout_ms);
    SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
    SET(CURLOPT_LOW_SPEED_TIME, stall_s > 0 ? stall_s : 1L);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    if (p->skip_verify) {
        SET(CURLOPT_SSL_VERIFYPEER, 0L);
        SET(CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (p->ca_file)
        SET(CURLOPT_CAINFO, p->ca_file);
    if (q->headers)
        SET(CURLOPT_HTTPHEADER, q->headers);
    if (q->aws_sigv4) {
        SET(CURLOPT_AWS_SIGV4, q->aws_sigv4);
        SET(CURLOPT_USERNAME, q->username ? q->username : "");
        SET(CURLOPT_PASSWORD, q->password ? q->password : "");
    }
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, x);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, x);
    SET(CURLOPT_NOPROGRESS, 0L);
    SET(CURLOPT_XFERINFOFUNCTION, on_progress);
    SET(CURLOPT_XFERINFODATA, x);
    if (strcmp(q->method, "HEAD") == 0) {
        SET(CURLOPT_NOBODY, 1L);
    } else if (q->has_body) {
        curl_off_t size = q->body ? (curl_off_t)q->body->size : (curl_off_t)q->body_len;
        SET(CURLOPT_UPLOAD, 1L);
        SET(CURLOPT_READFUNCTION, on_read);
        SET(CURLOPT_READDATA, x);
        SET(CURLOPT_SEEKFUNCTION, on_seek);
        SET(CURLOPT_SEEKDATA, x);
        SET(CURLOPT_INFILESIZE_LARGE, size >= 0 ? size : (curl_off_t)-1);
        if (strcmp(q->method, "PUT") != 0)
            SET(CURLOPT_CUSTOMREQUEST, q->method);
    } else if (strcmp(q->method, "GET") != 0) {
        SET(CURLOPT_CUSTOMREQUEST, q->method);
    }
#undef SET
    return c;
}

int ls_http_do(ls_http_pool *p, ls_ctx *ctx, const ls_http_req *req, ls_http_resp *resp)
{
    char errbuf[CURL_ERROR_SIZE];
    xfer x;
    int rc = 0;

    memset(resp, 0, sizeof(*resp));
    resp->content_length = -1;
    memset(&x, 0, sizeof(x));
    x.req = req;
    x.resp = resp;
    x.ctx = ctx;
    x.cap = req->max_body ? req->max_body : LS_HTTP_MAX_MEM_BODY;
    errbuf[0] = '\0';

    CURL *h = pool_take(p);
    if (!h)
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    CURLcode c = setup(p, h, req, &x, errbuf);
    if (c == CURLE_OK)
        c = curl_easy_perform(h);

    if (c == CURLE_OK) {
        long code = 0;
        if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code)
            resp->status = code;
    } else if (x.cb_rc) {
        rc = x.cb_rc;
        if (ctx && (ctx->code != rc || !ctx->msg[0]))
            ls_err(ctx, rc, "HTTP %s failed: %s", req->method,
                   req->out && !req->body ? "writing the reply failed" : "reading the body failed");
    } else if (x.nomem || c == CURLE_OUT_OF_MEMORY) {
        rc = ls_err(ctx, LS_ENOMEM, "out of memory");
    } else if (ls_cancelled(ctx) && c == CURLE_ABORTED_BY_CALLBACK) {
        rc = ls_err(ctx, LS_ECANCEL, "cancelled");
    } else if (x.range_ignored) {
        rc = ls_err(ctx, LS_EIO, "HTTP %s failed: the server ignored the Range header "
                    "(it answered 200 with the whole object)", req->method);
    } else if (x.over_cap) {
        rc = ls_err(ctx, LS_EIO, "HTTP %s failed: reply longer than %zu bytes", req->method,
                    x.cap);
    } else {
        size_t elen = strlen(errbuf);
        while (elen > 0 && (errbuf[elen - 1] == '\n' || errbuf[elen - 1] == '\r'))
            errbuf[--elen] = '\0';
        rc = ls_err(ctx, curl_transient(c) ? LS_ENET : LS_EIO, "HTTP %s failed: %s%s%s%s",
                    req->method, curl_easy_strerror(c), elen ? " (" : "", errbuf,
                    elen ? ")" : "");
    }
    pool_give(p, h);
    return rc;
}

void ls_http_resp_free(ls_http_resp *resp)
{
    resp_clear_headers(resp);
    free(resp->body);
    memset(resp, 0, sizeof(*resp));
    resp->content_length = -1;
}

const char *ls_http_header(const ls_http_resp *resp, const char *name)
{
    for (size_t i = 0; i < resp->nhdr; i++)
        if (strcasecmp(resp->hname[i], name) == 0)
            return resp->hval[i];
    return NULL;
}

int ls_http_status_code(long status)
{
    if (status >= 200 && status < 300)
        return 0;
    if (status >= 500 || status == 429 || status == 408 || status == 0)
        return LS_ENET;
    if (status == 401 || status == 403)
        return LS_EPERM;
    if (status == 404)
        return LS_ENOENT;
    return LS_EIO;
}

int ls_http_header_add(ls_ctx *ctx, struct curl_slist **list, const char *name,
                       const char *value)
{
    size_t n = strlen(name) + strlen(value) + 3;
    char *line = malloc(n);
    if (!line)
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    snprintf(line, n, "%s: %s", name, value);
    struct curl_slist *l = curl_slist_append(*list, line);
    free(line);
    if (!l)
        return ls_err(ctx, LS_ENOMEM, "out of memory");
    *list = l;
    return 0;
}

/* ---- Strings ---- */

int ls_http_buf_str(ls_buf *b, const char *s)
{
    return ls_buf_add(b, s, strlen(s));
}

int ls_http_buf_pct(ls_buf *b, const char *s, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char e[3];
        int plain = isalnum(*c) || *c == '-' || *c == '_' || *c == '.' || *c == '~' ||
                    (keep_slash && *c == '/');
        if (plain && *c < 0x80) {
            e[0] = (char)*c;
            if (ls_buf_add(b, e, 1))
                return LS_ENOMEM;
            continue;
        }
        e[0] = '%';
        e[1] = hex[*c >> 4];
        e[2] = hex[*c & 15];
        if (ls_buf_add(b, e, 3))
            return LS_ENOMEM;
    }
    return 0;
}

/* ---- Crypto and encodings ---- */

void ls_http_base64(const uint8_t *in, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

int ls_http_base64_decode(const char *in, uint8_t *out, size_t outsz)
{
    size_t n = strlen(in);
    if (n % 4 != 0 || n / 4 * 3 > outsz)
        return -1;
    if (n == 0)
        return 0;
    int len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
    if (len < 0)
        return -1;
    if (in[n - 1] == '=')
        len--;
    if (in[n - 2] == '=')
        len--;
    return len;
}

void ls_http_sha256(const void *data, size_t n, uint8_t out[32])
{
    EVP_Digest(data, n, out, NULL, EVP_sha256(), NULL);
}

void ls_http_md5(const void *data, size_t n, uint8_t out[16])
{
    EVP_Digest(data, n, out, NULL, EVP_md5(), NULL);
}

void ls_http_hmac_sha256(const void *key, size_t keylen, const void *data, size_t n,
                         uint8_t out[32])
{
    unsigned int len = 32;
    HMAC(EVP_sha256(), key, (int)keylen, data, n, out, &len);
}

/* ---- XML ---- */

const char *ls_xml_next(const char *p, const char *end, const char *tag, const char **val,
                        size_t *vlen)
{
    size_t tlen = strlen(tag);
    while (p && p < end) {
        const char *lt = memchr(p, '<', (size_t)(end - p));
        if (!lt)
            return NULL;
        const char *name = lt + 1;
        if ((size_t)(end - name) < tlen + 1 || memcmp(name, tag, tlen) != 0) {
            p = name;
            continue;
        }
        const char *after = name + tlen;
        if (*after == '/' && after + 1 < end && after[1] == '>') {
            *val = after;
            *vlen = 0;
            return after + 2;
        }
        if (*after != '>') {
            p = name;
            continue;
        }
        const char *content = after + 1, *q = content;
        for (;;) {
            const char *close = q < end ? memchr(q, '<', (size_t)(end - q)) : NULL;
            if (!close)
                return NULL;
            if ((size_t)(end - close) >= tlen + 3 && close[1] == '/' &&
                memcmp(close + 2, tag, tlen) == 0 && close[2 + tlen] == '>') {
                *val = content;
                *vlen = (size_t)(close - content);
                return close + tlen + 3;
            }
            q = close + 1;
        }
    }
    return NULL;
}

/* Append the UTF-8 encoding of code point cp at *w. */
static void put_utf8(char **w, unsigned long cp)
{
    char *o = *w;
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xc0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xe0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *o++ = (char)(0xf0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    }
    *w = o;
}

char *ls_xml_decode(const char *v, size_t n)
{
    static const struct {
        const char *name;
        char c;
    } ents[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
    char *out = malloc(n + 1), *w = out; /* decoding never grows the text */
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (v[i] != '&') {
            *w++ = v[i];
            continue;
        }
        const char *semi = memchr(v + i, ';', n - i);
        size_t elen = semi ? (size_t)(semi - (v + i)) + 1 : 0; /* "&...;" */
        int done = 0;
        for (size_t k = 0; semi && k < sizeof(ents) / sizeof(ents[0]) && !done; k++) {
            if (elen - 1 == strlen(ents[k].name) && memcmp(v + i + 1, ents[k].name, elen - 1) == 0) {
                *w++ = ents[k].c;
                done = 1;
            }
        }
        if (!done && semi && elen >= 4 && elen <= 12 && v[i + 1] == '#') {
            char num[16];
            memcpy(num, v + i + 2, elen - 3);
            num[elen - 3] = '\0';
            char *e = NULL;
            int is_hex = num[0] == 'x' || num[0] == 'X';
            unsigned long cp = strtoul(num + is_hex, &e, is_hex ? 16 : 10);
            if (e && *e == '\0' && e != num + is_hex && cp > 0 && cp <= 0x10ffff) {
                /* &#N; is at least 4 bytes, its UTF-8 at most 4: the text cannot grow. */
                put_utf8(&w, cp);
                done = 1;
            }
        }
        if (done)
            i += elen - 1;
        else
            *w++ = '&';
    }
    *w = '\0';
    return out;
}

int ls_xml_get(const char *p, const char *end, const char *tag, char *out, size_t outsz)
{
    const char *v;
    size_t n;
    if (!ls_xml_next(p, end, tag, &v, &n))
        return 0;
    char *d = ls_xml_decode(v, n);
    ls_strlcpy(out, d ? d : "", outsz);
    free(d);
    return 1;
}

/* ---- Dates ---- */

static int month_index(const char *m)
{
    static const char *const names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (int i = 0; i < 12; i++)
        if (strncasecmp(m, names[i], 3) == 0)
            return i;
    return -1;
}

int64_t ls_http_parse_rfc1123(const char *s)
{
    char mon[4];
    int d, y, hh, mm, ss;
    struct tm tm;
    if (!s || sscanf(s, "%*[^,], %d %3s %d %d:%d:%d", &d, mon, &y, &hh, &mm, &ss) != 6)
        return -1;
    memset(&tm, 0, sizeof(tm));
    tm.tm_mon = month_index(mon);
    /* four-digit years only: a larger one would overflow the milliseconds */
    if (tm.tm_mon < 0 || d < 1 || d > 31 || y < 1970 || y > 9999 || hh < 0 || hh > 23 || mm < 0 ||
        mm > 59 || ss < 0 || ss > 60)
        return -1;
    tm.tm_mday = d;
    tm.tm_year = y - 1900;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    return (int64_t)timegm(&tm) * 1000;
}

int64_t ls_http_parse_iso8601(const char *s)
{
    int y, mo, d, hh, mm, ss, n = 0;
    struct tm tm;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &hh, &mm, &ss, &n) != 6 || !n)
        return -1;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60)
        return -1;
    const char *p = s + n;
    int64_t ms = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; isdigit((unsigned char)*p); p++, digits++)
            if (digits < 3)
                ms = ms * 10 + (*p - '0');
        for (; digits < 3; digits++)
            ms *= 10;
    }
    int64_t off_s = 0;
    if (*p == '+' || *p == '-') {
        int oh = 0, om = 0;
        if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2)
            return -1;
        off_s = (int64_t)(oh * 3600 + om * 60) * (*p == '+' ? 1 : -1);
    } else if (*p != 'Z' && *p != 'z' && *p != '\0') {
        return -1;
    }
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    return ((int64_t)timegm(&tm) - off_s) * 1000 + ms;
}

void ls_http_date_now(char *out, size_t outsz)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, outsz, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}
