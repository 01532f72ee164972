/* s3.c - placeholder until the backend lands: refuses to open. */
#include "storage.h"

int ls_storage_s3_open(ls_ctx *ctx, const ls_storage_opts *opts, ls_storage **out)
{
    *out = NULL;
    return ls_err(ctx, LS_EUSAGE, "replica %s: s3 replicas are not supported yet",
                  opts->name ? opts->name : "s3");
}
