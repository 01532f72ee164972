/* stubs_todo.c - entry points not written yet; each moves to its own file. */
#include "internal.h"

int ls_ckpt_mode_parse(const char *s, ls_ckpt_mode *out) { return LS_EUSAGE; }
const char *ls_ckpt_mode_name(ls_ckpt_mode mode) { return "?"; }
int ls_checkpoint(ls_ctx *ctx, const char *db, ls_ckpt_mode mode, int busy_timeout_ms,
                  ls_checkpoint_result *res) { return ls_err(ctx, LS_ERROR, "not implemented"); }
int ls_info(ls_ctx *ctx, const char *db, ls_info_result *res) { return ls_err(ctx, LS_ERROR, "not implemented"); }
int ls_verify(ls_ctx *ctx, const char *file, const char *expect_sha256, ls_verify_result *res) { return ls_err(ctx, LS_ERROR, "not implemented"); }
int ls_prune(ls_ctx *ctx, const char *dir, const ls_prune_opts *opts, ls_prune_result *res) { return ls_err(ctx, LS_ERROR, "not implemented"); }
int ls_restore_file(ls_ctx *ctx, const char *backup, const char *out, int replace,
                    ls_restore_file_result *res) { return ls_err(ctx, LS_ERROR, "not implemented"); }
