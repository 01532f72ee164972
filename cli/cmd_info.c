/*
 * cmd_info.c - `litesafe info DB`: what a database and its WAL look like.
 *
 * Strictly read-only (see src/sqlite/info.c): safe on a live database, never
 * creates, checkpoints or removes a -wal or -shm file. Every key is printed
 * for every database, so scripts see one shape; a database not in WAL mode
 * has its WAL fields false/zero and a note on stderr.
 *
 * The output is sqlite-checkpoint's, plus litesafe's extra keys:
 *   JSON  {"command": "info", "path", "size_bytes", "journal_mode",
 *          "wal_file_exists", "wal_size_bytes", "page_size", "page_count",
 *          "freelist_count", then litesafe's WAL and neighbour keys}
 *   text  database info
 *           path:               /srv/app.db
 *           size:               16,384 bytes
 *           journal mode:       wal
 *           WAL file:           yes
 *           WAL size:           86,552 bytes     (only when there is one)
 *           page size:          4,096
 *           page count:         4
 *           freelist pages:     0
 *         then litesafe's fields in the same layout.
 */
#include "cli.h"

#include <string.h>

static const char USAGE[] = "info DB";

/* PRAGMA encoding's names for header offset 56. */
static const char *encoding_name(uint32_t enc)
{
    switch (enc) {
    case 1:
        return "UTF-8";
    case 2:
        return "UTF-16le";
    case 3:
        return "UTF-16be";
    default:
        return "unknown";
    }
}

/* The text form: sqlite-checkpoint's lines, then litesafe's. */
static void print_info_text(cli_env *env, const ls_info_result *r)
{
    char n[32];
    out_head(env, "database info");
    out_line(env, "path", "%s", r->path);
    out_line(env, "size", "%s bytes", out_commas(n, sizeof(n), r->size_bytes));
    out_line(env, "journal mode", "%s", r->journal_mode);
    out_line(env, "WAL file", "%s", r->wal_file_exists ? "yes" : "no");
    if (r->wal_file_exists)
        out_line(env, "WAL size", "%s bytes", out_commas(n, sizeof(n), r->wal_size_bytes));
    out_line(env, "page size", "%s", out_commas(n, sizeof(n), r->page_size));
    out_line(env, "page count", "%s", out_commas(n, sizeof(n), r->page_count));
    out_line(env, "freelist pages", "%s", out_commas(n, sizeof(n), r->freelist_count));
    out_line(env, "WAL header valid", "%s", r->wal_header_valid ? "yes" : "no");
    out_line(env, "WAL frames", "%llu", (unsigned long long)r->wal_frames);
    out_line(env, "WAL frames total", "%llu", (unsigned long long)r->wal_frames_total);
    out_line(env, "WAL salts", "0x%08x 0x%08x", r->wal_salt1, r->wal_salt2);
    out_line(env, "WAL checkpoint seq", "%u", r->wal_checkpoint_seq);
    out_line(env, "WAL last commit", "%llu", (unsigned long long)r->wal_last_commit_frame);
    out_line(env, "WAL commits", "%llu", (unsigned long long)r->wal_commits);
    out_line(env, "-shm file", "%s", r->shm_file_exists ? "yes" : "no");
    out_line(env, "-journal file", "%s", r->journal_file_exists ? "yes" : "no");
    out_line(env, "meta dir", "%s", r->meta_dir);
    out_line(env, "meta dir exists", "%s", r->meta_dir_exists ? "yes" : "no");
    out_line(env, "Litestream meta dir", "%s", r->litestream_meta_dir_exists ? "yes" : "no");
    out_line(env, "schema cookie", "%u", r->schema_cookie);
    out_line(env, "text encoding", "%s", encoding_name(r->text_encoding));
}

static void print_info(cli_env *env, const ls_info_result *r)
{
    out_str(env, "command", "info");
    out_str(env, "path", r->path);
    out_uint(env, "size_bytes", r->size_bytes);
    out_str(env, "journal_mode", r->journal_mode);
    out_bool(env, "wal_file_exists", r->wal_file_exists);
    out_uint(env, "wal_size_bytes", r->wal_size_bytes);
    out_uint(env, "page_size", r->page_size);
    out_uint(env, "page_count", r->page_count);
    out_uint(env, "freelist_count", r->freelist_count);
    out_bool(env, "wal_header_valid", r->wal_header_valid);
    out_uint(env, "wal_frames", r->wal_frames);
    out_uint(env, "wal_frames_total", r->wal_frames_total);
    out_hex32(env, "wal_salt1", r->wal_salt1);
    out_hex32(env, "wal_salt2", r->wal_salt2);
    out_uint(env, "wal_checkpoint_seq", r->wal_checkpoint_seq);
    out_uint(env, "wal_last_commit_frame", r->wal_last_commit_frame);
    out_uint(env, "wal_commits", r->wal_commits);
    out_bool(env, "shm_file_exists", r->shm_file_exists);
    out_bool(env, "journal_file_exists", r->journal_file_exists);
    out_str(env, "meta_dir", r->meta_dir);
    out_bool(env, "meta_dir_exists", r->meta_dir_exists);
    out_bool(env, "litestream_meta_dir_exists", r->litestream_meta_dir_exists);
    out_uint(env, "schema_cookie", r->schema_cookie);
    out_str(env, "text_encoding", encoding_name(r->text_encoding));
}

int cmd_info(cli_env *env, int argc, char **argv)
{
    const cli_opt opts[] = {{NULL, 0, 0, NULL, NULL, NULL}};
    char *pos[1];
    int npos, rc;
    if ((rc = cli_parse(env, USAGE,
                        "Show the journal mode, page size and count, free pages, the WAL's state "
                        "(frames,\nsalts, last commit) and the files next to the database. "
                        "Strictly read-only: the\ndatabase is never opened through SQLite.",
                        opts, argc, argv, pos, 1, &npos)) >= 0)
        return rc;
    if ((rc = cli_want_args(env, npos, 1, 1, USAGE)) >= 0)
        return rc;

    ls_info_result res;
    if ((rc = ls_info(env->ctx, pos[0], &res)) != 0) {
        ls_info_result_free(&res);
        return cli_fail_lib(env, rc);
    }
    if (res.wal_size_bytes > 0 && !res.wal_header_valid)
        cli_note(env, "%s-wal: invalid WAL header; its frames are ignored", res.path);
    if (res.size_bytes == 0) {
        cli_note(env, "%s: empty file: an empty database (no pages yet)", res.path);
    } else if (strcmp(res.journal_mode, "wal") != 0) {
        cli_note(env, "%s: not in WAL mode", res.path);
        if (res.wal_file_exists)
            cli_note(env, "%s-wal exists although the database is not in WAL mode", res.path);
    }
    out_begin(env);
    if (env->json)
        print_info(env, &res);
    else
        print_info_text(env, &res);
    out_end(env);
    ls_info_result_free(&res);
    return 0;
}
