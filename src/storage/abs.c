/* abs.c - placeholder until the backend lands: refuses to open. */
#include "storage.h"

int ls_storage_abs_open(ls_ctx *ctx, const ls_storage_opts *opts, ls_storage **out)
{
    *out = NULL;
    return ls_err(ctx, LS_EUSAGE, "replica %s: abs replicas are not supported yet",
                  opts->name ? opts->name : "abs");
}
