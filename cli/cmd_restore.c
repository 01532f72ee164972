/*
 * cmd_restore.c - `litesafe restore`: from a backup file, or from a replica.
 *
 *   restore BACKUP -o PATH        copy BACKUP to PATH (must not exist)
 *   restore BACKUP --replace DB   swap BACKUP in as DB (old one kept as
 *                                 DB.pre-restore, refused while DB is open)
 *   restore [-o PATH] [-config PATH] [-replica NAME] [-generation G]
 *           [-index N | -timestamp T] [-parallelism N] [-if-db-not-exists]
 *           [-if-replica-exists] DB|URL
 *                                 Litestream's replica restore (restore.c)
 *
 * Which one: a replica URL, a replica-only option, or a database listed in
 * the default configuration means a replica restore; --replace, or an
 * existing SQLite file otherwise, means a file restore.
 */
#include "cli.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* The synopsis for --help; USAGE (one line) for error messages. */
static const char USAGE[] = "restore BACKUP (-o PATH | --replace DB) | restore [options] DB|URL";
static const char SYNOPSIS[] = "restore BACKUP (-o PATH | --replace DB)\n"
                            "       litesafe restore [-o PATH] [-replica NAME] [-generation G] "
                            "[-index N | -timestamp RFC3339]\n"
                            "                        [-parallelism N] [-if-db-not-exists] "
                            "[-if-replica-exists] DB|URL";

/* Everything the command line can say. */
typedef struct restore_args {
    const char *source;      /* positional: backup file, database path or replica URL */
    const char *output;      /* -o: where to write */
    const char *replace;     /* --replace: database to swap the backup into */
    const char *replica;     /* -replica: replica name from the config */
    const char *generation;  /* -generation: 16 hex digits */
    const char *index;       /* -index: restore up to this WAL index */
    const char *timestamp;   /* -timestamp: restore to this point in time (RFC 3339) */
    const char *config;      /* -config: configuration file */
    long long parallelism;   /* -parallelism: concurrent downloads (0: default) */
    int if_db_not_exists;    /* -if-db-not-exists: succeed when the output exists */
    int if_replica_exists;   /* -if-replica-exists: succeed when there is no replica */
    int no_expand;           /* -no-expand-env */
} restore_args;

/* 1 if the default configuration exists and lists `a->source` as a database. */
static int configured_db(cli_env *env, const restore_args *a)
{
    ls_config *cfg = NULL;
    int found = 0;
    if (ls_config_open(env->ctx, ls_config_default_path(), a->no_expand, &cfg) == 0)
        found = ls_config_db_index(cfg, a->source) >= 0;
    ls_config_free(cfg);
    ls_err_clear(env->ctx);
    return found;
}

/* 1 if any replica-only option was given (returns its name in *name). */
static int replica_option_given(const restore_args *a, const char **name)
{
    *name = a->replica ? "-replica"
          : a->generation ? "-generation"
          : a->index ? "-index"
          : a->timestamp ? "-timestamp"
          : a->config ? "-config"
          : a->parallelism ? "-parallelism"
          : a->if_db_not_exists ? "-if-db-not-exists"
          : a->if_replica_exists ? "-if-replica-exists"
          : NULL;
    return *name != NULL;
}

/* restore BACKUP -o PATH | --replace DB */
static int restore_from_file(cli_env *env, const restore_args *a)
{
    const char *opt;
    if (replica_option_given(a, &opt))
        return cli_fail(env, LS_EUSAGE, "%s applies to a replica restore, not to a backup file",
                        opt);
    if (!a->output && !a->replace)
        return cli_fail(env, LS_EUSAGE,
                        "restoring a backup file needs -o PATH or --replace DB (see --help)");

    ls_restore_file_result res;
    int replace = a->replace != NULL;
    int rc = ls_restore_file(env->ctx, a->source, replace ? a->replace : a->output, replace, &res);
    if (rc != 0) {
        ls_restore_file_result_free(&res);
        return cli_fail_lib(env, rc);
    }
    const char *pre = res.pre_restore && *res.pre_restore ? res.pre_restore : NULL;
    out_begin(env);
    out_str(env, "command", "restore");
    out_str(env, "source", res.source);
    out_str(env, "destination", res.destination);
    out_bool(env, "replaced", replace);
    out_str(env, "pre_restore", pre);
    out_uint(env, "size_bytes", res.size_bytes);
    out_str(env, "sha256", res.sha256);
    out_uint(env, "page_count", res.page_count);
    out_uint(env, "elapsed_ms", res.elapsed_ms);
    out_end(env);
    if (pre)
        cli_note(env, "the previous database is kept as %s", pre);
    ls_restore_file_result_free(&res);
    return 0;
}

/* restore DB|URL from a replica (Litestream's restore). */
static int restore_from_replica(cli_env *env, const restore_args *a)
{
    ls_restore_options o = LS_RESTORE_OPTIONS_INIT;
    ls_restore_result res;
    ls_target *t = NULL;
    int rc;

    o.generation = a->generation;
    o.if_db_not_exists = a->if_db_not_exists;
    o.if_replica_exists = a->if_replica_exists;
    if (a->index && a->timestamp)
        return cli_fail(env, LS_EUSAGE, "cannot specify both -index and -timestamp");
    if (a->index) {
        char *end = NULL;
        unsigned long long v = strtoull(a->index, &end, 16);
        if (!*a->index || *end || v > 0x7fffffffULL)
            return cli_fail(env, LS_EUSAGE, "-index: '%s' is not a hex WAL index", a->index);
        o.index = (int64_t)v;
    }
    if (a->timestamp && cli_parse_rfc3339(a->timestamp, &o.timestamp_ms) != 0)
        return cli_fail(env, LS_EUSAGE, "-timestamp: '%s' is not an RFC 3339 time", a->timestamp);
    if (a->parallelism < 0 || a->parallelism > 64)
        return cli_fail(env, LS_EUSAGE, "-parallelism: must be between 1 and 64");
    o.parallelism = (int)a->parallelism;
    if ((rc = cli_target_open(env, a->config, a->no_expand, a->replica, a->source, &t)) >= 0)
        return rc;
    const char *out = a->output ? a->output : ls_target_database(t);
    rc = ls_restore(env->ctx, t, a->output, &o, &res);
    if (rc == 0 && !res.restored) {
        /* An if-* option made a failure a success; the library kept it as the reason. */
        if (ls_errcode(env->ctx) == LS_EEXIST)
            cli_note(env, "%s exists; nothing restored (-if-db-not-exists)", out);
        else
            cli_note(env, "%s; nothing restored (-if-replica-exists)", ls_errmsg(env->ctx));
        ls_target_free(t);
        return 0;
    }
    if (rc) {
        ls_target_free(t);
        return cli_fail_lib(env, rc);
    }
    char pos[64], dest[PATH_MAX];
    ls_position_format(pos, sizeof(pos), res.generation, res.index, res.offset);
    if (!realpath(out, dest)) /* it was just published: absolute, as restore prints paths */
        snprintf(dest, sizeof(dest), "%s", out);
    out_begin(env);
    out_str(env, "command", "restore");
    out_str(env, "replica", ls_target_replica_name(t, res.replica));
    out_str(env, "destination", dest);
    out_str(env, "generation", res.generation);
    out_uint(env, "snapshot_index", res.snapshot_index);
    out_str(env, "position", pos);
    out_uint(env, "page_size", res.page_size);
    out_uint(env, "page_count", res.page_count);
    out_uint(env, "wal_segments", res.segments);
    out_uint(env, "wal_pages", res.wal_pages);
    out_uint(env, "bytes_downloaded", res.bytes_downloaded);
    out_uint(env, "elapsed_ms", res.elapsed_ms);
    out_end(env);
    ls_target_free(t);
    return 0;
}

/*
 * Neither a URL, nor a replica option, nor a configured database: a backup
 * file if `source` has an SQLite header (its WAL need not be readable);
 * otherwise the error, naming `source` as given.
 */
static int restore_from_file_or_fail(cli_env *env, const restore_args *a)
{
    ls_info_result info;
    int rc = ls_info(env->ctx, a->source, &info);
    if (info.page_size && info.size_bytes) { /* the header was read and is SQLite's */
        rc = restore_from_file(env, a);
    } else if (rc == 0) { /* an empty file: an empty database to info, no backup here */
        rc = cli_fail(env, LS_ENOTDB, "%s: empty file, not a database", a->source);
    } else if (rc != LS_ENOTDB) {
        rc = cli_fail(env, LS_ENOENT, "%s: not a backup file, and not a database in %s",
                      a->source, ls_config_default_path());
    } else {
        /* A file, but no database: say so (SQLite's words), with the path as given. */
        const char *msg = ls_errmsg(env->ctx), *at = info.path ? strstr(msg, info.path) : NULL;
        rc = at ? cli_fail(env, rc, "%.*s%s%s", (int)(at - msg), msg, a->source,
                           at + strlen(info.path))
                : cli_fail_lib(env, rc);
    }
    ls_info_result_free(&info);
    return rc;
}

int cmd_restore(cli_env *env, int argc, char **argv)
{
    restore_args a;
    memset(&a, 0, sizeof(a));
    const cli_opt opts[] = {
        {"output", 'o', OPT_STR, &a.output, "PATH", "write the restored database here (must not exist)"},
        {"replace", 0, OPT_STR, &a.replace, "DB",
         "swap the backup in as DB; the old DB is kept as DB.pre-restore"},
        {"replica", 0, OPT_STR, &a.replica, "NAME", "replica to restore from (replica restore)"},
        {"generation", 0, OPT_STR, &a.generation, "G", "generation to restore (replica restore)"},
        {"index", 0, OPT_STR, &a.index, "N", "restore up to this WAL index (replica restore)"},
        {"timestamp", 0, OPT_STR, &a.timestamp, "RFC3339",
         "restore to this point in time (replica restore)"},
        {"parallelism", 0, OPT_INT, &a.parallelism, "N", "concurrent downloads (replica restore)"},
        {"if-db-not-exists", 0, OPT_FLAG, &a.if_db_not_exists, NULL,
         "succeed without restoring when the output exists (replica restore)"},
        {"if-replica-exists", 0, OPT_FLAG, &a.if_replica_exists, NULL,
         "succeed without restoring when there is no replica (replica restore)"},
        {"config", 0, OPT_STR, &a.config, "PATH", "configuration file (replica restore)"},
        {"no-expand-env", 0, OPT_FLAG, &a.no_expand, NULL, "do not expand $VAR in the config"},
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    char *pos[1];
    int npos, rc;
    if ((rc = cli_parse(env, SYNOPSIS,
                        "Restore a backup file to a new path, or swap it in place of a database "
                        "that no process has\nopen. The backup must pass an integrity check; "
                        "nothing is overwritten. A PATH-wal, PATH-shm or\nPATH-journal left at "
                        "the output (SQLite would replay it into the restored file) is refused,\n"
                        "from a backup or a replica alike; with --replace, DB's own are kept as "
                        "DB.pre-restore-wal\nand -journal, and its -shm removed.",
                        opts, argc, argv, pos, 1, &npos)) >= 0)
        return rc;
    if ((rc = cli_want_args(env, npos, 1, 1, USAGE)) >= 0)
        return rc;
    a.source = pos[0];
    if (a.output && a.replace)
        return cli_fail(env, LS_EUSAGE, "give -o PATH or --replace DB, not both");

    /*
     * File or replica? A URL, a replica-only option, or a database listed in
     * the configuration means a replica restore; --replace, or an existing
     * SQLite file otherwise, a file restore.
     */
    const char *opt;
    if (a.replace)
        return restore_from_file(env, &a);
    if (ls_is_url(a.source) || replica_option_given(&a, &opt))
        return restore_from_replica(env, &a);
    if (configured_db(env, &a))
        return restore_from_replica(env, &a);
    return restore_from_file_or_fail(env, &a);
}
