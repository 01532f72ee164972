/* info.c - placeholder: not written yet. */
#include "internal.h"

int ls_info(ls_ctx *ctx, const char *db, ls_info_result *res) { return ls_err(ctx, LS_ERROR, "not implemented"); }
