/*
 * http.h - the libcurl plumbing shared by the HTTP backends: s3.c (S3 and
 * GCS) and abs.c (Azure Blob). Nothing here knows a storage protocol; the
 * backends build URLs, headers and signatures and interpret replies.
 *
 * Design:
 *   - A pool (ls_http_pool) owns reusable CURL easy handles behind a mutex.
 *     ls_http_do takes a handle, runs one request and gives it back: a reused
 *     handle keeps its connections alive, and any number of threads can run
 *     requests on one pool at once (each on its own handle). The pool also
 *     holds the timeout and TLS options every request gets.
 *   - One request = one ls_http_req: method, URL (path and query already
 *     encoded by the caller), headers, a body (an ls_reader streamed with a
 *     known or unknown size, or a memory buffer), and where the reply body
 *     goes: an ls_writer (streamed, only for a 2xx reply) or a bounded memory
 *     buffer. Non-2xx bodies always go to memory (error XML).
 *   - ls_http_do returns 0 once a reply was received, whatever its status;
 *     transport failures return LS_ENET (transient) or LS_EIO; a reader or
 *     writer failure keeps the callback's own code and message.
 *     ls_http_status_code() then maps the HTTP status to an LS_E* code.
 *   - Timeouts: connecting, and a transfer stalled (< 1 byte/s) for the
 *     pool's timeout. Never a total time limit: a large upload that makes
 *     progress is never killed.
 *   - libcurl is initialised by ls_library_init(), or by the first pool made
 *     without it (library.h); signals are off (CURLOPT_NOSIGNAL) since
 *     requests run on many threads.
 *
 * Also here: hex/base64, SHA-256/HMAC-SHA256/MD5 (OpenSSL EVP), RFC 3986
 * percent-encoding, a minimal XML tag extractor with entity decoding, and
 * HTTP / ISO 8601 date parsing. Messages never contain request headers
 * (they carry signatures) or credentials.
 */
#ifndef LS_STORAGE_HTTP_H
#define LS_STORAGE_HTTP_H

#include "storage.h"
#include "io.h"

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

/* Default cap of a reply body kept in memory (XML replies, error bodies). */
#define LS_HTTP_MAX_MEM_BODY (1u << 20)

/* Options applied to every request of a pool. */
typedef struct ls_http_opts {
    int timeout_ms;        /* connect and stall timeout; 0: 30000 */
    int skip_verify;       /* 1: do not verify the server's TLS certificate */
    const char *ca_file;   /* CA bundle (CURLOPT_CAINFO), NULL: system default */
} ls_http_opts;

typedef struct ls_http_pool ls_http_pool;

/* A pool of easy handles (copies the options). Returns 0, LS_ENOMEM or LS_EIO. */
int ls_http_pool_new(ls_ctx *ctx, const ls_http_opts *opts, ls_http_pool **out);
/* Free the pool and its handles; NULL is a no-op. No request may be running. */
void ls_http_pool_free(ls_http_pool *p);

/* One request. Unused fields are 0/NULL. */
typedef struct ls_http_req {
    const char *method;         /* "GET", "HEAD", "PUT", "POST", "DELETE" */
    const char *url;            /* full URL; path and query already percent-encoded */
    struct curl_slist *headers; /* request headers (borrowed), NULL for none */
    const char *aws_sigv4;      /* CURLOPT_AWS_SIGV4 ("aws:amz:REGION:s3"), NULL: none */
    const char *username;       /* CURLOPT_USERNAME (access key id) with aws_sigv4 */
    const char *password;       /* CURLOPT_PASSWORD (secret key) with aws_sigv4 */
    ls_reader *body;            /* streamed body (size -1: chunked), or NULL */
    const void *body_buf;       /* memory body when body is NULL (may be NULL: none) */
    size_t body_len;            /* its length */
    int has_body;               /* 1: send a body (body or body_buf, even empty) */
    ls_writer *out;             /* 2xx reply body goes here; NULL: into resp->body */
    int ranged;                 /* a Range was asked for: a 200 reply (the server ignored
                                   it) fails before any of its body reaches out */
    size_t max_body;            /* cap of resp->body; 0: LS_HTTP_MAX_MEM_BODY */
} ls_http_req;

/* Response headers kept by ls_http_do (the rest are ignored). */
#define LS_HTTP_MAX_HEADERS 24

/* One reply. Free with ls_http_resp_free (also after a failed ls_http_do). */
typedef struct ls_http_resp {
    long status;                /* HTTP status, 0 if none was received */
    char *body;                 /* memory body, NUL-terminated (NULL if none) */
    size_t body_len;            /* its length */
    int truncated;              /* 1: the reply was longer than the cap */
    int64_t content_length;     /* Content-Length header, -1 if absent */
    size_t nhdr;                /* kept headers: ETag, Content-Length, Last-Modified, */
    char *hname[LS_HTTP_MAX_HEADERS]; /* x-ms-error-code (the ones the backends */
    char *hval[LS_HTTP_MAX_HEADERS];  /* read; names lowercase) */
} ls_http_resp;

/*
 * Run req on a handle of the pool and fill *resp (zeroed first). Returns 0
 * when a reply arrived (any status: check resp->status), else:
 *   LS_ENET  transient transport failure (connect/resolve, timeout, reset,
 *            send/receive error, empty reply, short body, TLS handshake);
 *   LS_EIO   other transport failures, or a 2xx memory body over the cap;
 *   LS_ENOMEM, LS_ECANCEL, or the ls_reader's / ls_writer's own code.
 * The message on ctx is "HTTP <METHOD> failed: <curl's explanation>" (no URL
 * and no headers), or the callback's own message. Thread-safe.
 */
int ls_http_do(ls_http_pool *p, ls_ctx *ctx, const ls_http_req *req, ls_http_resp *resp);
/* Free what ls_http_do allocated in resp and zero it. */
void ls_http_resp_free(ls_http_resp *resp);
/* A kept response header by name (any case), or NULL. */
const char *ls_http_header(const ls_http_resp *resp, const char *name);

/*
 * LS_E* code of an HTTP status: 0 for 2xx; LS_ENET for 5xx and 429 (and 408);
 * LS_EPERM for 401/403; LS_ENOENT for 404; LS_EIO otherwise. Callers refine
 * (a missing bucket is LS_EUSAGE, a 416 on a range GET is success, ...).
 */
int ls_http_status_code(long status);

/* Append a header line "Name: value" to *list. Returns 0 or LS_ENOMEM (ctx). */
int ls_http_header_add(ls_ctx *ctx, struct curl_slist **list, const char *name,
                       const char *value);

/* ---- Strings ---- */

/* Append a C string, keeping b NUL-terminated (ls_buf_add). Returns 0 or LS_ENOMEM. */
int ls_http_buf_str(ls_buf *b, const char *s);
/*
 * Append s percent-encoded per RFC 3986: every byte but A-Z a-z 0-9 - _ . ~
 * becomes %XX (uppercase); with keep_slash, '/' stays as is (URL paths).
 */
int ls_http_buf_pct(ls_buf *b, const char *s, int keep_slash);

/* ---- Crypto and encodings (OpenSSL) ---- */

/* Lowercase hex is ls_hex() in hash.h. */
/* Standard base64 with padding of n bytes into out (4*((n+2)/3)+1 bytes). */
void ls_http_base64(const uint8_t *in, size_t n, char *out);
/* Decode base64 (whitespace not allowed). Returns the length, or -1 if invalid or too long. */
int ls_http_base64_decode(const char *in, uint8_t *out, size_t outsz);
void ls_http_sha256(const void *data, size_t n, uint8_t out[32]);
void ls_http_md5(const void *data, size_t n, uint8_t out[16]);
void ls_http_hmac_sha256(const void *key, size_t keylen, const void *data, size_t n,
                         uint8_t out[32]);

/* ---- XML replies ---- */

/*
 * Find the next element <tag>...</tag> in [p, end). On success returns a
 * pointer just after the closing tag and sets *val and *vlen to the raw content
 * (entities not decoded; may contain nested elements). "<tag/>" is an empty
 * element. Returns NULL when there is none. No attributes, no CDATA: enough
 * for S3 and Azure replies.
 */
const char *ls_xml_next(const char *p, const char *end, const char *tag, const char **val,
                        size_t *vlen);
/*
 * Decode XML entities (&amp; &lt; &gt; &quot; &apos; &#N; &#xN;) of the n
 * bytes at v into a malloc'd NUL-terminated string. NULL on ENOMEM.
 */
char *ls_xml_decode(const char *v, size_t n);
/*
 * The first <tag> in [p, end), decoded into out (truncated to outsz).
 * Returns 1 if found, 0 if not.
 */
int ls_xml_get(const char *p, const char *end, const char *tag, char *out, size_t outsz);

/* ---- Dates ---- */

/* "Sun, 06 Nov 1994 08:49:37 GMT" -> unix ms; -1 if malformed. */
int64_t ls_http_parse_rfc1123(const char *s);
/* "2024-01-02T03:04:05[.123]Z" (or +hh:mm) -> unix ms; -1 if malformed. */
int64_t ls_http_parse_iso8601(const char *s);
/* The current time as "Sun, 06 Nov 1994 08:49:37 GMT" (out: 30+ bytes). */
void ls_http_date_now(char *out, size_t outsz);

#endif
