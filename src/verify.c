/* verify.c - placeholder: not written yet. */
#include "internal.h"

int ls_verify(ls_ctx *ctx, const char *file, const char *expect_sha256, ls_verify_result *res) { return ls_err(ctx, LS_ERROR, "not implemented"); }
