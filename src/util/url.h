/*
 * url.h - replica URLs as Litestream 0.3 writes them, split into parts:
 *
 *   file:///ABS/PATH
 *   s3://BUCKET[.PROVIDER-HOST][:PORT]/PATH
 *   gcs://BUCKET/PATH                (also Litestream 0.5's gs://BUCKET/PATH)
 *   abs://[ACCOUNT@]CONTAINER/PATH
 *   sftp://[USER[:PASSWORD]@]HOST[:PORT]/PATH
 *
 * Invariants of a parsed ls_url (see url.c for the rules):
 *   - scheme is one of the five above, lowercase.
 *   - path is lexically clean ("a/./b//c/" -> "a/b/c"); for file it is
 *     absolute, for every other scheme it has no leading '/' ("" = the root).
 *   - user and password are percent-decoded; fragments are ignored, and so
 *     are query strings except s3's (Litestream 0.5's ?endpoint=, region,
 *     forcePathStyle, skipVerify; see url.c).
 *   - for s3, bucket/region/endpoint/force_path_style are derived from the
 *     host by Litestream's provider rules; for gcs and abs, bucket is the host.
 */
#ifndef LS_URL_H
#define LS_URL_H

#include "internal.h"

/* One parsed replica URL. Every string is malloc'd (NULL when absent). */
typedef struct ls_url {
    char *scheme;           /* "file", "s3", "gcs", "abs" or "sftp" */
    char *user;             /* userinfo user (sftp user, abs account), decoded */
    char *password;         /* userinfo password (sftp only), decoded */
    char *host;             /* host as written, without port or [brackets]; NULL for file */
    int port;               /* 1..65535, 0 when none was given */
    char *bucket;           /* s3: derived bucket; gcs: host; abs: container */
    char *path;             /* see the invariants above; never NULL after a parse */
    char *region;           /* s3: derived from a provider host, else NULL */
    char *endpoint;         /* s3: "https://HOST[:PORT]" of a provider, else NULL (AWS) */
    int force_path_style;   /* s3: 1 for provider hosts and ?endpoint=, 0 for AWS
                               virtual-host style; ?forcePathStyle= overrides */
    int force_path_style_set; /* s3: ?forcePathStyle= was given */
    int skip_verify;          /* s3: ?skipVerify= (0/1), -1 when not given */
} ls_url;

/*
 * 1 if s starts like a URL, "^\w+://" as Litestream tests it: so "file:/x"
 * and "C:\x" are not URLs (they are paths).
 */
int ls_url_is_url(const char *s);

/*
 * Parse `url` into *out (zeroed first; free with ls_url_free even on failure).
 * A string that is not a URL by ls_url_is_url() and has no "word:" prefix is
 * a bare path and parses as a file URL with that path, unchanged (the caller
 * makes it absolute). Returns 0, LS_EUSAGE (with a message naming the URL and
 * the problem: unknown scheme, empty bucket, bad port, bad %-escape, ...;
 * a password in the URL shows as "xxxxx") or LS_ENOMEM.
 */
int ls_url_parse(ls_ctx *ctx, const char *url, ls_url *out);

/*
 * Why Litestream 0.5's s3 upload options are refused (or accepted only with
 * one value), as config keys and as s3 URL query parameters.
 */
#define LS_WHY_SIGN_PAYLOAD                                                                        \
    "litesafe always signs the payload (x-amz-content-sha256 is the body's SHA-256): remove it "   \
    "or set it to true"
#define LS_WHY_CONTENT_MD5                                                                         \
    "litesafe checks every upload by its signed SHA-256 and sends Content-MD5 where S3 requires "  \
    "it (DeleteObjects), which it cannot leave out: remove it"
#define LS_WHY_STORAGE_CLASS                                                                       \
    "litesafe stores objects in the bucket's default storage class: remove it, and move objects "  \
    "to another class with a bucket lifecycle rule"
#define LS_WHY_PART_SIZE                                                                           \
    "litesafe uploads in parts of 8 MiB (doubling every 2500 parts), one after another: remove it"

/*
 * Why a Litestream 0.5 replica type or URL scheme litesafe does not have
 * (webdav, webdavs, nats, oss; any case) is refused, with what to use
 * instead; NULL for any other word.
 */
const char *ls_url_scheme_refusal(const char *word);

/*
 * Clean a slash-separated path in place, lexically (Go's path.Clean): runs of
 * '/' become one, "." elements go, ".." removes the element before it (and
 * is dropped at the root), no trailing '/'. A rooted path stays rooted ("/"
 * at least); a relative one may become "". Shared with config.c.
 */
void ls_url_path_clean(char *p);

/* Free the strings of a parsed URL and zero it; NULL is a no-op. */
void ls_url_free(ls_url *u);

#endif
