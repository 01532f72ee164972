/* restore_file.c - placeholder: not written yet. */
#include "internal.h"

int ls_restore_file(ls_ctx *ctx, const char *backup, const char *out, int replace,
                    ls_restore_file_result *res) { return ls_err(ctx, LS_ERROR, "not implemented"); }
