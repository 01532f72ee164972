/*
 * fuzz_url.c - the replica URL parser on any string: the input, cut at its
 * first NUL, through ls_url_is_url, ls_url_scheme_refusal and ls_url_parse
 * (a parsed URL must keep the invariants url.h lists: a known scheme, a
 * path, a port in range, a lexically clean path when it was a URL), and
 * through ls_url_path_clean, which must be idempotent.
 *
 * Seeds (corpus/fuzz_url): every s3://, gs://, gcs://, abs://, sftp:// and
 * file:// URL written in README.md, docs/ and tests/ (unit and integration;
 * printf templates left out), one file each (url-NNN), plus a bare path, a
 * Windows path and a bracketed IPv6 sftp URL, and regress-* inputs of
 * findings. To remake the url-* seeds: grep -rhoE
 * "(s3|gs|gcs|abs|sftp|file)://[^\"' )\`<>,]*" README.md docs tests/integration
 * tests/unit, one line per file (tests/fuzz/seeds_store.sh).
 */
#include "fuzz_store.h"
#include "url.h"

#include <litesafe.h>

static const char *const schemes[] = {"file", "s3", "gcs", "abs", "sftp"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ls_ctx *ctx;
    if (!ctx && ls_ctx_new(&ctx) != 0)
        return 0;
    char *s = fuzz_text(data, size), *c = NULL, *cc = NULL;
    if (!s)
        return 0;

    int is_url = ls_url_is_url(s);
    ls_url_scheme_refusal(s);
    ls_url u;
    if (ls_url_parse(ctx, s, &u) == 0) {
        int known = 0;
        for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
            known |= u.scheme && strcmp(u.scheme, schemes[i]) == 0;
        if (!known || !u.path || u.port < 0 || u.port > 65535)
            abort();
        if (is_url && (c = strdup(u.path)) != NULL) {
            ls_url_path_clean(c);
            if (strcmp(c, u.path) != 0 && !(strcmp(u.scheme, "file") != 0 && *u.path == '\0'))
                abort();
            if (strcmp(u.scheme, "file") != 0 && u.path[0] == '/')
                abort();
        }
    }
    ls_url_free(&u);
    ls_err_clear(ctx);
    free(c);

    /* Cleaning is idempotent. */
    if ((c = strdup(s)) != NULL) {
        ls_url_path_clean(c);
        if ((cc = strdup(c)) != NULL) {
            ls_url_path_clean(cc);
            if (strcmp(c, cc) != 0)
                abort();
        }
    }
    free(cc);
    free(c);
    free(s);
    return 0;
}
