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
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <litesafe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[64];

static void remove_dir(void)
{
    rmdir(g_dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ls_ctx *ctx;
    if (!ctx) {
        if (ls_ctx_new(&ctx) != 0)
            return 0;
        snprintf(g_dir, sizeof(g_dir), "/dev/shm/litesafe-fuzz-config.%d", (int)getpid());
        if (mkdir(g_dir, 0700) != 0 && errno != EEXIST)
            return 0;
        atexit(remove_dir);
        /* What $VAR and ${VAR} may expand to; credentials come from the environment too. */
        setenv("LS_FUZZ_DIR", g_dir, 1);
        setenv("HOME", g_dir, 1);
    }

    ls_config *cfg = NULL;
    if (ls_config_parse(ctx, (const char *)data, size, "fuzz.yml", 1, &cfg) == 0) {
        for (size_t i = 0; i < cfg->n_dbs; i++) {
            if (cfg->dbs[i].dir) {
                free(cfg->dbs[i].dir);
                cfg->dbs[i].dir = strdup(g_dir);
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
