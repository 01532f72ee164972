/*
 * fuzz_config.c - the YAML configuration on any bytes, as `litesafe
 * replicate -config` reads it: ls_config_parse with $VAR expansion (the text
 * is not NUL-terminated), then ls_config_apply_defaults (defaults, names and
 * types from URLs, validation), then the public accessors over the result.
 *
 * A directory entry (dir: + pattern:) is pointed at an empty directory of
 * this process before the defaults are applied, so that an input naming "/"
 * with recursive: true scans nothing; the scan itself still runs.
 */
#include "fuzz_files.h"

#include "config.h"

#include <limits.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int once;
    ls_ctx *ctx = fuzz_ctx();
    const char *dir = fuzz_dir("fuzz-config");
    if (!ctx || !dir)
        return 0;
    if (!once) {
        /* What $VAR and ${VAR} may expand to; credentials come from the environment too. */
        setenv("LS_FUZZ_DIR", dir, 1);
        setenv("HOME", dir, 1);
        once = 1;
    }

    ls_config *cfg = NULL;
    if (ls_config_parse(ctx, (const char *)data, size, "fuzz.yml", 1, &cfg) == 0) {
        for (size_t i = 0; i < cfg->n_dbs; i++) {
            if (cfg->dbs[i].dir) {
                free(cfg->dbs[i].dir);
                cfg->dbs[i].dir = strdup(dir);
            }
        }
        if (ls_config_apply_defaults(ctx, cfg) == 0) {
            char sock[PATH_MAX];
            for (size_t i = 0; i < ls_config_db_count(cfg); i++) {
                ls_config_db_index(cfg, ls_config_db_path(cfg, i));
                ls_config_db_equal(cfg, i, cfg, i);
                for (size_t r = 0; r < ls_config_replica_count(cfg, i); r++) {
                    ls_config_replica_name(cfg, i, r);
                    ls_config_replica_type(cfg, i, r);
                }
            }
            ls_config_socket(cfg, sock, sizeof(sock));
        }
    }
    ls_config_free(cfg);
    ls_err_clear(ctx);
    return 0;
}
