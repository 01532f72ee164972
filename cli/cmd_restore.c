/*
 * cmd_restore.c - `litesafe restore`: from a backup file now, from a replica
 * later.
 *
 *   restore BACKUP -o PATH        copy BACKUP to PATH (must not exist)
 *   restore BACKUP --replace DB   swap BACKUP in as DB (old one kept as
 *                                 DB.pre-restore, refused while DB is open)
 *   restore [-o PATH] [-replica NAME] [-generation G] [-index N | -timestamp T]
 *           [-parallelism N] [-if-db-not-exists] [-if-replica-exists] DB|URL
 *                                 Litestream's replica restore (not yet)
 *
 * Which one: --replace, or a positional argument that is an existing SQLite
 * file, means a file restore; anything else is a replica restore. The option
 * table already holds Litestream's flags, so its command lines parse; they
 * are gathered in restore_args for the replica path to use.
 */
#include "cli.h"

#include "db.h"

#include <string.h>

/* The synopsis for --help; USAGE (one line) for error messages. */
static const char USAGE[] = "restore BACKUP (-o PATH | --replace DB) | restore [options] DB|URL";
static const char SYNOPSIS[] = "restore BACKUP (-o PATH | --replace DB)\n"
                            "       litesafe restore [-o PATH] [-replica NAME] [-generation G] "
                            "[-index N | -timestamp RFC3339]\n"
                            "                        [-parallelism N] [-if-db-not-exists] "
                            "[-if-replica-exists] DB|URL";

/* Everything the command line can say; the replica fields are unused so far. */
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
} restore_args;

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
    if (rc != 0)
        return cli_fail_lib(env, rc);
    out_begin(env);
    out_str(env, "command", "restore");
    out_str(env, "source", res.source);
    out_str(env, "destination", res.destination);
    out_bool(env, "replaced", replace);
    out_str(env, "pre_restore", res.pre_restore[0] ? res.pre_restore : NULL);
    out_uint(env, "size_bytes", res.size_bytes);
    out_str(env, "sha256", res.sha256);
    out_uint(env, "page_count", res.page_count);
    out_uint(env, "elapsed_ms", res.elapsed_ms);
    out_end(env);
    if (res.pre_restore[0])
        cli_note(env, "the previous database is kept as %s", res.pre_restore);
    return 0;
}

/* restore DB|URL from a replica: the place where replication will plug in. */
static int restore_from_replica(cli_env *env, const restore_args *a, const char *why)
{
    if (why && *why)
        return cli_fail(env, LS_ERROR,
                        "%s; as a replica restore: no replica support yet", why);
    return cli_fail(env, LS_ERROR, "%s: no replica support yet", a->source);
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
        {NULL, 0, 0, NULL, NULL, NULL},
    };
    char *pos[1];
    int npos, rc;
    if ((rc = cli_parse(env, SYNOPSIS,
                        "Restore a backup file to a new path, or swap it in place of a database "
                        "that no process has\nopen. The backup must pass an integrity check; "
                        "nothing is overwritten.",
                        opts, argc, argv, pos, 1, &npos)) >= 0)
        return rc;
    if ((rc = cli_want_args(env, npos, 1, 1, USAGE)) >= 0)
        return rc;
    a.source = pos[0];
    if (a.output && a.replace)
        return cli_fail(env, LS_EUSAGE, "give -o PATH or --replace DB, not both");

    /* File or replica? --replace, or an existing SQLite file, means a file. */
    if (a.replace)
        return restore_from_file(env, &a);
    if (!strstr(a.source, "://")) {
        ls_db_hdr hdr;
        if (ls_db_probe(env->ctx, a.source, &hdr) == 0)
            return restore_from_file(env, &a);
        return restore_from_replica(env, &a, ls_errmsg(env->ctx));
    }
    return restore_from_replica(env, &a, NULL);
}
