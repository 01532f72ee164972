/*
 * url.c - replica URL parsing (the forms and the invariants of the result are
 * in url.h).
 *
 * The steps, in order:
 *   1. A URL starts with "word://" (ls_url_is_url). A string without that
 *      and without a "word:" prefix is a bare path: a file replica. "file:/x"
 *      is neither, and refused rather than guessed at.
 *   2. The fragment ("#...") and the query ("?...") are cut off. The query
 *      is ignored, except for s3 (step 6).
 *   3. The authority runs to the first '/': [USERINFO@]HOST[:PORT]. The
 *      userinfo ends at the last '@' and is USER[:PASSWORD], both
 *      percent-decoded; HOST may be an [IPv6] literal; PORT is 1..65535.
 *   4. The path is percent-decoded and cleaned lexically (Go's path.Clean).
 *      Every scheme but file drops the leading '/'.
 *   5. The scheme's row in `schemes` says which parts it may have, and its
 *      finishing function derives the rest (bucket, region, endpoint).
 *      Litestream 0.5's gs:// is gcs://; its webdav, nats and oss schemes
 *      are refused with what to use instead (ls_url_scheme_refusal).
 *   6. s3 only, Litestream 0.5's query parameters (s3_query): endpoint
 *      (a bare host gets http:// when local, https:// otherwise, and path
 *      style unless forcePathStyle=false), region, forcePathStyle,
 *      skipVerify override what the host implied; signPayload,
 *      requireContentMD5 and storageClass are accepted when they ask for
 *      what litesafe does (true, true, STANDARD); partSize, concurrency and
 *      any other parameter are refused: a URL is as strict as a config file.
 *
 * S3 hosts (Litestream's s3.ParseHost): "[BUCKET.]PATTERN[:PORT]" where '*'
 * in a pattern is one DNS label, the region. The first matching row of
 * `s3_providers` gives the endpoint (the pattern with '*' replaced by the
 * region), path-style addressing and the region. Any other host is an AWS
 * bucket name, addressed virtual-host style; a port makes no sense there and
 * is refused (Litestream drops it silently).
 */
#include "url.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Which optional parts a scheme accepts. */
enum { U_USER = 1, U_PASSWORD = 2, U_PORT = 4 };

typedef struct scheme_def {
    const char *name;                                     /* lowercase scheme */
    unsigned allow;                                       /* U_* parts it may have */
    int (*finish)(ls_ctx *ctx, const char *s, ls_url *u); /* checks and derived fields */
    const char *as;                                       /* the scheme it stands for, or NULL */
} scheme_def;

/* S3-compatible providers recognised from the host. */
typedef struct s3_provider {
    const char *pattern;    /* host after "BUCKET."; '*' is the region label */
    const char *scheme;     /* of the endpoint */
    const char *region;     /* fixed region when the pattern has no '*', or NULL */
} s3_provider;

static const s3_provider s3_providers[] = {
    {"localhost", "http", "us-east-1"},
    {"s3.*.backblazeb2.com", "https", NULL},
    {"s3.filebase.com", "https", NULL},
    {"*.digitaloceanspaces.com", "https", NULL},
    {"s3.*.scw.cloud", "https", NULL},
    {"*.linodeobjects.com", "https", NULL},
};

int ls_url_is_url(const char *s)
{
    size_t i = 0;
    if (!s)
        return 0;
    while (isalnum((unsigned char)s[i]) || s[i] == '_')
        i++;
    return i > 0 && strncmp(s + i, "://", 3) == 0;
}

void ls_url_free(ls_url *u)
{
    if (!u)
        return;
    free(u->scheme);
    free(u->user);
    free(u->password);
    free(u->host);
    free(u->bucket);
    free(u->path);
    free(u->region);
    free(u->endpoint);
    memset(u, 0, sizeof(*u));
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* Value of a hex digit, -1 for anything else. */
static int hexval(int c)
{
    return !isxdigit(c) ? -1 : isdigit(c) ? c - '0' : tolower(c) - 'a' + 10;
}

/*
 * Percent-decode s[0..n) into a new string at *out. Returns 0, LS_EUSAGE for
 * a malformed escape or an escaped NUL, LS_ENOMEM.
 */
static int pct_decode(ls_ctx *ctx, const char *url, const char *what, const char *s, size_t n,
                      char **out)
{
    char *d = malloc(n + 1);
    size_t w = 0;
    if (!d)
        return LS_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            d[w++] = s[i];
            continue;
        }
        int hi = i + 1 < n ? hexval((unsigned char)s[i + 1]) : -1;
        int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(d);
            return ls_err(ctx, LS_EUSAGE, "replica URL %s: bad %%-escape in the %s", url, what);
        }
        d[w++] = (char)(hi * 16 + lo);
        i += 2;
    }
    d[w] = '\0';
    *out = d;
    return 0;
}

/* Go's path.Clean, in place (see url.h). */
void ls_url_path_clean(char *p)
{
    size_t n = strlen(p), r = 0, w = 0, floor_w;
    int rooted = p[0] == '/';
    if (rooted)
        r = w = 1;
    floor_w = w; /* backtracking never goes below this */
    while (r < n) {
        if (p[r] == '/') {
            r++;
            continue;
        }
        size_t e = r;
        while (e < n && p[e] != '/')
            e++;
        size_t len = e - r;
        if (len == 1 && p[r] == '.') {
            /* nothing */
        } else if (len == 2 && p[r] == '.' && p[r + 1] == '.') {
            if (w > floor_w) {
                w--;
                while (w > floor_w && p[w] != '/')
                    w--;
            } else if (!rooted) {
                if (w > 0)
                    p[w++] = '/';
                p[w++] = '.';
                p[w++] = '.';
                floor_w = w;
            }
        } else {
            if (w > (size_t)rooted)
                p[w++] = '/';
            memmove(p + w, p + r, len);
            w += len;
        }
        r = e;
    }
    p[w] = '\0';
}

/* Replace *dst by a copy of src (NULL stays NULL). */
static int set_str(char **dst, const char *src)
{
    free(*dst);
    *dst = src ? strdup(src) : NULL;
    return (src && !*dst) ? LS_ENOMEM : 0;
}

/*
 * Match `host` against "[BUCKET.]PATTERN" where '*' in the pattern is one
 * non-empty label. On a match returns 1 and sets bucket (may be empty) and
 * the region span; else 0.
 */
static int host_match(const char *host, const char *pattern, size_t *bucket_len,
                      const char **region, size_t *region_len)
{
    size_t hn = strlen(host);
    const char *star = strchr(pattern, '*');
    size_t pre_n = star ? (size_t)(star - pattern) : strlen(pattern);
    const char *suf = star ? star + 1 : "";
    size_t suf_n = strlen(suf);
    size_t end; /* host[0..end) is what precedes the suffix */

    if (hn < suf_n || strcmp(host + hn - suf_n, suf) != 0)
        return 0;
    end = hn - suf_n;
    *region = NULL;
    *region_len = 0;
    if (star) {
        size_t rs = end;
        while (rs > 0 && host[rs - 1] != '.')
            rs--;
        if (rs == end)
            return 0; /* empty region label */
        *region = host + rs;
        *region_len = end - rs;
        end = rs;
    }
    /* host[0..end) must be "[BUCKET.]PREFIX" */
    if (end < pre_n || strncmp(host + end - pre_n, pattern, pre_n) != 0)
        return 0;
    end -= pre_n;
    if (end == 0) {
        *bucket_len = 0;
        return 1;
    }
    if (end < 2 || host[end - 1] != '.')
        return 0;
    *bucket_len = end - 1;
    return 1;
}

/* s3: bucket, region, endpoint and addressing style from the host. */
static int finish_s3(ls_ctx *ctx, const char *s, ls_url *u)
{
    const char *region = NULL;
    size_t blen = 0, rlen = 0;
    const s3_provider *pv = NULL;

    if (!*u->host)
        return ls_err(ctx, LS_EUSAGE, "replica URL %s: empty bucket (expected s3://BUCKET/PATH)",
                      s);
    for (size_t i = 0; i < sizeof(s3_providers) / sizeof(s3_providers[0]); i++) {
        if (host_match(u->host, s3_providers[i].pattern, &blen, &region, &rlen)) {
            pv = &s3_providers[i];
            break;
        }
    }
    if (!pv) {
        if (u->port)
            return ls_err(ctx, LS_EUSAGE,
                          "replica URL %s: a port needs a provider host (BUCKET.localhost:PORT) "
                          "or an endpoint setting; AWS bucket names take none",
                          s);
        u->force_path_style = 0;
        return set_str(&u->bucket, u->host);
    }
    if (blen == 0)
        return ls_err(ctx, LS_EUSAGE, "replica URL %s: empty bucket (expected s3://BUCKET.%s/...)",
                      s, pv->pattern);
    if (!(u->bucket = dup_n(u->host, blen)))
        return LS_ENOMEM;
    if (region)
        u->region = dup_n(region, rlen);
    else if (pv->region)
        u->region = strdup(pv->region);
    if ((region || pv->region) && !u->region)
        return LS_ENOMEM;

    /* endpoint: SCHEME://PATTERN with '*' replaced by the region, then :PORT */
    const char *star = strchr(pv->pattern, '*');
    int pre = star ? (int)(star - pv->pattern) : (int)strlen(pv->pattern);
    size_t cap = strlen(pv->scheme) + 3 + strlen(pv->pattern) + rlen + 8;
    if (!(u->endpoint = malloc(cap)))
        return LS_ENOMEM;
    int n = snprintf(u->endpoint, cap, "%s://%.*s%.*s%s", pv->scheme, pre, pv->pattern, (int)rlen,
                     region ? region : "", star ? star + 1 : "");
    if (u->port)
        snprintf(u->endpoint + n, cap - (size_t)n, ":%d", u->port);
    u->force_path_style = 1;
    return 0;
}

/* gcs and abs: the host is the bucket (container). */
static int finish_bucket(ls_ctx *ctx, const char *s, ls_url *u)
{
    if (!u->host || !*u->host)
        return ls_err(ctx, LS_EUSAGE, "replica URL %s: empty %s", s,
                      strcmp(u->scheme, "abs") == 0 ? "container" : "bucket");
    return set_str(&u->bucket, u->host);
}

/* file: no host (or "localhost"), an absolute path. */
static int finish_file(ls_ctx *ctx, const char *s, ls_url *u)
{
    if (u->host && *u->host && strcmp(u->host, "localhost") != 0)
        return ls_err(ctx, LS_EUSAGE,
                      "replica URL %s: a file URL has no host (expected file:///ABSOLUTE/PATH)", s);
    free(u->host);
    u->host = NULL;
    if (strcmp(u->path, "/") == 0 || !*u->path)
        return ls_err(ctx, LS_EUSAGE, "replica URL %s: empty path (expected file:///ABSOLUTE/PATH)",
                      s);
    return 0;
}

/* sftp: a host is required; user, password and port are optional. */
static int finish_sftp(ls_ctx *ctx, const char *s, ls_url *u)
{
    if (!u->host || !*u->host)
        return ls_err(ctx, LS_EUSAGE, "replica URL %s: empty host (expected sftp://USER@HOST/PATH)",
                      s);
    return 0;
}

static const scheme_def schemes[] = {
    {"file", 0, finish_file, NULL},
    {"s3", U_PORT, finish_s3, NULL},
    {"gcs", 0, finish_bucket, NULL},
    {"gs", 0, finish_bucket, "gcs"}, /* Litestream 0.5's name */
    {"abs", U_USER, finish_bucket, NULL},
    {"sftp", U_USER | U_PASSWORD | U_PORT, finish_sftp, NULL},
};

/* Litestream 0.5's replica types litesafe does not have, and what to use instead. */
static const struct {
    const char *name; /* type / URL scheme */
    const char *why;  /* the refusal */
} refused_schemes[] = {
    {"webdav", "WebDAV replicas are not supported by litesafe: use sftp, s3, abs, or a file "
               "replica on a mounted WebDAV share"},
    {"webdavs", "WebDAV replicas are not supported by litesafe: use sftp, s3, abs, or a file "
                "replica on a mounted WebDAV share"},
    {"nats", "NATS JetStream replicas are not supported by litesafe: use s3, gcs, abs, sftp or "
             "file"},
    {"oss", "litesafe has no oss type, but Alibaba Cloud OSS speaks S3: use type: s3 with "
            "endpoint: https://oss-REGION.aliyuncs.com (or an s3:// URL with "
            "?endpoint=oss-REGION.aliyuncs.com)"},
};

const char *ls_url_scheme_refusal(const char *word)
{
    for (size_t i = 0; word && i < sizeof(refused_schemes) / sizeof(refused_schemes[0]); i++)
        if (strcasecmp(word, refused_schemes[i].name) == 0)
            return refused_schemes[i].why;
    return NULL;
}

/* A query parameter's boolean (Go's strconv words): 0/1, -1 for anything else. */
static int query_bool(const char *v)
{
    static const char *const yes[] = {"true", "1", "t", "yes", NULL};
    static const char *const no[] = {"false", "0", "f", "no", NULL};
    for (int i = 0; yes[i]; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return 1;
        if (strcasecmp(v, no[i]) == 0)
            return 0;
    }
    return -1;
}

/* Litestream 0.5's IsLocalEndpoint: a host that gets http:// rather than https://. */
static int local_host(const char *h)
{
    size_t n = strcspn(h, ":/");
    static const char *const pre[] = {"192.168.", "10.",   "172.16.", "172.17.", "172.18.",
                                      "172.19.",  "172.2", "172.30.", "172.31.", NULL};
    if ((n == 9 && strncmp(h, "localhost", 9) == 0) || (n == 9 && strncmp(h, "127.0.0.1", 9) == 0))
        return 1;
    for (int i = 0; pre[i]; i++)
        if (strncmp(h, pre[i], strlen(pre[i])) == 0)
            return 1;
    return (n >= 6 && strncmp(h + n - 6, ".local", 6) == 0) ||
           (n >= 10 && strncmp(h + n - 10, ".localhost", 10) == 0);
}

/* Query words ("a+b" is "a b", as Go's ParseQuery reads it), then %-decoded. */
static int query_decode(ls_ctx *ctx, const char *s, const char *p, size_t n, char **out)
{
    int rc = pct_decode(ctx, s, "query", p, n, out);
    for (char *c = rc == 0 ? *out : NULL; c && *c; c++)
        if (*c == '+')
            *c = ' ';
    return rc;
}

/* Step 6: s3 query parameters q[0..n) into u (see the header comment). */
static int s3_query(ls_ctx *ctx, const char *s, const char *q, size_t n, ls_url *u)
{
    int rc = 0, endpoint = 0;
    char *k = NULL, *v = NULL;
    for (size_t i = 0; i < n && rc == 0;) {
        size_t e = i;
        while (e < n && q[e] != '&')
            e++;
        const char *eq = memchr(q + i, '=', e - i);
        size_t kn = eq ? (size_t)(eq - q - i) : e - i;
        if ((rc = query_decode(ctx, s, q + i, kn, &k)) != 0 ||
            (rc = query_decode(ctx, s, eq ? eq + 1 : q + e, eq ? (size_t)(q + e - eq - 1) : 0,
                               &v)) != 0)
            break;
        i = e + 1;
        if (!*k || !*v) {
            /* an empty value is no value, as in Litestream */
        } else if (strcmp(k, "endpoint") == 0) {
            int has_scheme = strncmp(v, "http://", 7) == 0 || strncmp(v, "https://", 8) == 0;
            size_t cap = strlen(v) + 9;
            free(u->endpoint);
            if (!(u->endpoint = malloc(cap)))
                rc = LS_ENOMEM;
            else
                snprintf(u->endpoint, cap, "%s%s",
                         has_scheme      ? ""
                         : local_host(v) ? "http://"
                                         : "https://",
                         v);
            endpoint = 1;
        } else if (strcmp(k, "region") == 0) {
            free(u->region);
            if (!(u->region = strdup(v)))
                rc = LS_ENOMEM;
        } else if (strcmp(k, "forcePathStyle") == 0 || strcmp(k, "skipVerify") == 0 ||
                   strcmp(k, "signPayload") == 0 || strcmp(k, "sign-payload") == 0 ||
                   strcmp(k, "requireContentMD5") == 0 || strcmp(k, "require-content-md5") == 0) {
            int b = query_bool(v);
            if (b < 0)
                rc = ls_err(ctx, LS_EUSAGE,
                            "replica URL %s: query parameter %s: expected true or false, got "
                            "\"%s\"",
                            s, k, v);
            else if (k[0] == 'f')
                u->force_path_style = b, u->force_path_style_set = 1;
            else if (k[0] == 's' && k[1] == 'k')
                u->skip_verify = b;
            else if (!b)
                rc = ls_err(ctx, LS_EUSAGE, "replica URL %s: query parameter %s=false: %s", s, k,
                            k[0] == 's' ? LS_WHY_SIGN_PAYLOAD : LS_WHY_CONTENT_MD5);
        } else if (strcmp(k, "storageClass") == 0 || strcmp(k, "storage-class") == 0) {
            if (strcasecmp(v, "STANDARD") != 0)
                rc = ls_err(ctx, LS_EUSAGE, "replica URL %s: query parameter %s: %s", s, k,
                            LS_WHY_STORAGE_CLASS);
        } else if (strcmp(k, "partSize") == 0 || strcmp(k, "part-size") == 0 ||
                   strcmp(k, "concurrency") == 0) {
            rc = ls_err(ctx, LS_EUSAGE, "replica URL %s: query parameter %s: %s", s, k,
                        LS_WHY_PART_SIZE);
        } else {
            rc = ls_err(ctx, LS_EUSAGE,
                        "replica URL %s: unknown query parameter \"%s\" (s3 URLs take endpoint, "
                        "region, forcePathStyle, skipVerify)",
                        s, k);
        }
        free(k);
        free(v);
        k = v = NULL;
    }
    free(k);
    free(v);
    if (rc == 0 && endpoint && !u->force_path_style_set)
        u->force_path_style = 1;
    return rc;
}

/* Parse "HOST[:PORT]" or "[V6]:PORT" in a[0..n) into u->host / u->port. */
static int parse_hostport(ls_ctx *ctx, const char *s, const char *a, size_t n, ls_url *u)
{
    const char *colon = NULL;
    size_t hs = 0, he = n;
    if (n > 0 && a[0] == '[') {
        const char *rb = memchr(a, ']', n);
        if (!rb)
            return ls_err(ctx, LS_EUSAGE, "replica URL %s: missing ']' in the host", s);
        hs = 1;
        he = (size_t)(rb - a);
        if (he + 1 < n) {
            if (a[he + 1] != ':')
                return ls_err(ctx, LS_EUSAGE, "replica URL %s: bad host", s);
            colon = rb + 1;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            if (a[i] == ':') {
                if (colon)
                    return ls_err(ctx, LS_EUSAGE,
                                  "replica URL %s: bad host (an IPv6 address needs [brackets])", s);
                colon = a + i;
            }
        }
        if (colon)
            he = (size_t)(colon - a);
    }
    if (colon) {
        const char *p = colon + 1, *end = a + n;
        long port = 0;
        if (p == end)
            return ls_err(ctx, LS_EUSAGE, "replica URL %s: bad port (empty)", s);
        for (; p < end; p++) {
            if (!isdigit((unsigned char)*p) || port > 65535)
                return ls_err(ctx, LS_EUSAGE, "replica URL %s: bad port \"%.*s\"", s,
                              (int)(end - colon - 1), colon + 1);
            port = port * 10 + (*p - '0');
        }
        if (port < 1 || port > 65535)
            return ls_err(ctx, LS_EUSAGE, "replica URL %s: bad port \"%.*s\" (1..65535)", s,
                          (int)(end - colon - 1), colon + 1);
        u->port = (int)port;
    }
    u->host = dup_n(a + hs, he - hs);
    return u->host ? 0 : LS_ENOMEM;
}

/*
 * The URL as messages show it: a password in the user info becomes "xxxxx"
 * (messages end up in logs). Truncated to fit `out`.
 */
static void redact(const char *s, char *out, size_t n)
{
    const char *auth = strstr(s, "://"), *end, *at = NULL, *colon;
    if (!auth) {
        ls_strlcpy(out, s, n);
        return;
    }
    auth += 3;
    end = auth + strcspn(auth, "/?#");
    for (const char *p = auth; p < end; p++)
        if (*p == '@')
            at = p;
    colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (!colon) {
        ls_strlcpy(out, s, n);
        return;
    }
    snprintf(out, n, "%.*sxxxxx%s", (int)(colon + 1 - s), s, at);
}

/*
 * Step 1: a bare path becomes a file URL (*sd stays NULL: nothing more to
 * do); a URL gets its row of `schemes` in *sd and out->scheme. s is the URL
 * for messages.
 */
static int parse_scheme(ls_ctx *ctx, const char *s, const char *url, ls_url *out,
                        const scheme_def **sd)
{
    size_t sn = 0;
    char word[16];
    const char *why = NULL;

    *sd = NULL;
    while (isalnum((unsigned char)url[sn]) || url[sn] == '_')
        sn++;
    if (!ls_url_is_url(url)) {
        if (sn > 0 && url[sn] == ':')
            return ls_err(ctx, LS_EUSAGE, "replica URL %s: malformed (expected SCHEME://...)", s);
        out->scheme = strdup("file");
        out->path = strdup(url);
        return (out->scheme && out->path) ? 0 : LS_ENOMEM;
    }
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        if (strlen(schemes[i].name) == sn && strncasecmp(url, schemes[i].name, sn) == 0) {
            *sd = &schemes[i];
            out->scheme = strdup(schemes[i].as ? schemes[i].as : schemes[i].name);
            return out->scheme ? 0 : LS_ENOMEM;
        }
    }
    if (sn < sizeof(word)) {
        memcpy(word, url, sn);
        word[sn] = '\0';
        why = ls_url_scheme_refusal(word);
    }
    if (why)
        return ls_err(ctx, LS_EUSAGE, "replica URL %s: scheme \"%.*s\": %s", s, (int)sn, url, why);
    return ls_err(ctx, LS_EUSAGE,
                  "replica URL %s: unknown scheme \"%.*s\" (expected file, s3, gcs, abs or sftp)",
                  s, (int)sn, url);
}

/*
 * Step 3: the authority a[0..n), "[USER[:PASSWORD]@]HOST[:PORT]", into out,
 * refusing the parts scheme sd does not take.
 */
static int parse_authority(ls_ctx *ctx, const char *s, const scheme_def *sd, const char *a,
                           size_t n, ls_url *out)
{
    const char *at = NULL;
    int rc;

    for (size_t i = 0; i < n; i++)
        if (a[i] == '@')
            at = a + i;
    if (at) {
        const char *colon = memchr(a, ':', (size_t)(at - a));
        if (!(sd->allow & U_USER))
            return ls_err(ctx, LS_EUSAGE,
                          "replica URL %s: a %s URL takes no user info (put credentials in the "
                          "config or the environment)",
                          s, sd->name);
        if (colon && !(sd->allow & U_PASSWORD))
            return ls_err(ctx, LS_EUSAGE,
                          "replica URL %s: a %s URL takes no password (put it in the config or "
                          "the environment)",
                          s, sd->name);
        if ((rc = pct_decode(ctx, s, "user", a, (size_t)((colon ? colon : at) - a), &out->user)) !=
            0)
            return rc;
        if (colon && (rc = pct_decode(ctx, s, "password", colon + 1, (size_t)(at - colon - 1),
                                      &out->password)) != 0)
            return rc;
        n -= (size_t)(at + 1 - a);
        a = at + 1;
    }
    if ((rc = parse_hostport(ctx, s, a, n, out)) != 0)
        return rc;
    if (out->port && !(sd->allow & U_PORT))
        return ls_err(ctx, LS_EUSAGE, "replica URL %s: a %s URL takes no port", s, sd->name);
    return 0;
}

/*
 * Parse a replica URL; see url.h. Steps as in the header comment of this
 * file. Messages show the URL with its password redacted. The helpers
 * return LS_ENOMEM without a message: ls_url_parse adds it.
 */
static int url_parse(ls_ctx *ctx, const char *url, ls_url *out)
{
    char s[512]; /* the URL for messages */
    int rc;
    const scheme_def *sd = NULL;
    const char *auth, *auth_end, *path_end, *query, *query_end;

    memset(out, 0, sizeof(*out));
    out->skip_verify = -1;
    if (!url || !*url)
        return ls_err(ctx, LS_EUSAGE, "replica URL: empty");
    redact(url, s, sizeof(s));

    /* 1. URL, or bare path */
    if ((rc = parse_scheme(ctx, s, url, out, &sd)) != 0 || !sd)
        return rc;

    /* 2. cut the fragment, then the query */
    auth = url + strlen(sd->name) + 3;
    path_end = auth + strcspn(auth, "#");
    query_end = path_end;
    if ((query = memchr(auth, '?', (size_t)(path_end - auth))) != NULL)
        path_end = query++;

    /* 3. authority: [userinfo@]host[:port] */
    if (!(auth_end = memchr(auth, '/', (size_t)(path_end - auth))))
        auth_end = path_end;
    if ((rc = parse_authority(ctx, s, sd, auth, (size_t)(auth_end - auth), out)) != 0)
        return rc;

    /* 4. path */
    if ((rc = pct_decode(ctx, s, "path", auth_end, (size_t)(path_end - auth_end), &out->path)) != 0)
        return rc;
    ls_url_path_clean(out->path);
    if (strcmp(sd->name, "file") != 0 && out->path[0] == '/')
        memmove(out->path, out->path + 1, strlen(out->path));

    /* 5. per scheme */
    if ((rc = sd->finish(ctx, s, out)) != 0)
        return rc;

    /* 6. s3's query */
    if (query && strcmp(out->scheme, "s3") == 0)
        rc = s3_query(ctx, s, query, (size_t)(query_end - query), out);
    return rc;
}

int ls_url_parse(ls_ctx *ctx, const char *url, ls_url *out)
{
    return ls_err_oom(ctx, url_parse(ctx, url, out));
}
