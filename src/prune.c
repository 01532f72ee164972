/* prune.c - placeholder: not written yet. */
#include "internal.h"

int ls_prune(ls_ctx *ctx, const char *dir, const ls_prune_opts *opts, ls_prune_result *res) { return ls_err(ctx, LS_ERROR, "not implemented"); }
