/* checkpoint.c - placeholder: not written yet. */
#include "internal.h"

int ls_ckpt_mode_parse(const char *s, ls_ckpt_mode *out) { return LS_EUSAGE; }
const char *ls_ckpt_mode_name(ls_ckpt_mode mode) { return "?"; }

int ls_checkpoint(ls_ctx *ctx, const char *db, ls_ckpt_mode mode, int busy_timeout_ms,
                  ls_checkpoint_result *res) { return ls_err(ctx, LS_ERROR, "not implemented"); }
