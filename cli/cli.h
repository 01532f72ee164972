/*
 * cli.h - what the command files share: the option table that drives both
 * parsing and --help, the output writer (text or JSON from the same calls),
 * and error reporting.
 *
 * Each cmd_<name>.c defines `int cmd_<name>(cli_env *env, int argc, char **argv)`
 * with a static cli_opt table, parses with cli_parse(), calls the library and
 * prints with the out_* calls. Exit codes: 0 success, 1 runtime failure,
 * 2 usage or configuration error.
 */
#ifndef LS_CLI_H
#define LS_CLI_H

#include "litesafe.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

enum { OPT_FLAG, OPT_STR, OPT_INT };

/* One option: `--name`/`-name`, optional short `-c`, and where its value goes. */
typedef struct cli_opt {
    const char *name;   /* long name, used with one or two dashes */
    char short_name;    /* one-letter alias, 0 if none */
    int kind;           /* OPT_FLAG (int* set to 1), OPT_STR (const char**), OPT_INT (long long*) */
    void *dst;          /* where the value is stored */
    const char *arg;    /* placeholder shown in help for valued options */
    const char *help;   /* one line of help */
} cli_opt;

/* State every command gets. */
typedef struct cli_env {
    ls_ctx *ctx;        /* library context (errors, logging) */
    int json;           /* --json given before or after the subcommand */
    int quiet;          /* --quiet: no progress or notes on stderr */
    const char *cmd;    /* name of the running command, for messages */
    /* output writer state */
    int depth;          /* nesting of objects */
    int first[16];      /* no member written yet at this depth (JSON) */
} cli_env;

/*
 * Parse argv (argv[0] is the command name) against `opts`. Positional
 * arguments are gathered into pos[] (at most maxpos) and counted in *npos.
 * `usage` is the synopsis line for --help. Returns -1 to go on, or an exit
 * code: 0 after printing help, EXIT_USAGE after an error message.
 */
int cli_parse(cli_env *env, const char *usage, const char *about, const cli_opt *opts, int argc,
              char **argv, char **pos, int maxpos, int *npos);
/*
 * Set only by the option fuzzer (tests/fuzz/fuzz_cli_opts.c): cli_parse
 * returns 0 where it would return -1, so a command stops once its options
 * are parsed, before it does anything.
 */
extern int cli_parse_only;

/* Check the positional count; prints the error and returns EXIT_USAGE, else -1. */
int cli_want_args(cli_env *env, int npos, int min, int max, const char *usage);

/* Report a failure: "litesafe: <cmd>: <msg>" on stderr, and a JSON error object
 * with --json. `code` is an LS_E* code; returns the exit code to use. */
int cli_fail(cli_env *env, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* cli_fail with the library's message from env->ctx. */
int cli_fail_lib(cli_env *env, int code);
/* A note for the user on stderr (not in JSON output, suppressed by --quiet). */
void cli_note(cli_env *env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Output: one object per result. In text mode, "key: value" lines; nested
 * objects become indented sections. */
void out_begin(cli_env *env);
void out_end(cli_env *env);
void out_obj_begin(cli_env *env, const char *key);
void out_obj_end(cli_env *env);
void out_str(cli_env *env, const char *key, const char *val); /* NULL prints null */
void out_int(cli_env *env, const char *key, long long val);
void out_uint(cli_env *env, const char *key, unsigned long long val);
void out_bool(cli_env *env, const char *key, int val);
void out_hex32(cli_env *env, const char *key, uint32_t val); /* "0x%08x" */
/*
 * sqlite-checkpoint's text layout, which checkpoint, snapshot, backup and info
 * keep so that scripts written for it still parse litesafe's output: a
 * headline ("checkpoint PASSIVE [ok]"), then one "  label:   value" line per
 * field, the label and its colon padded to 20 columns. Both print nothing
 * with --json, where the out_* calls above give the keys.
 */
void out_head(cli_env *env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void out_line(cli_env *env, const char *label, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* `n` with a comma every three digits ("16,384"), written to buf; returns buf. */
const char *out_commas(char *buf, size_t size, unsigned long long n);
/* Arrays of objects: out_arr_begin, then out_item_begin/out_item_end per item. */
void out_arr_begin(cli_env *env, const char *key);
void out_arr_end(cli_env *env);
void out_item_begin(cli_env *env);
void out_item_end(cli_env *env);

/* Progress bar on stderr when it is a terminal and the work takes a while. */
typedef struct cli_progress {
    cli_env *env;
    const char *label;
    uint64_t t0;        /* start, ms */
    int shown;          /* bar drawn at least once */
    int last_pct;       /* last percentage drawn */
} cli_progress;
void cli_progress_init(cli_progress *p, cli_env *env, const char *label);
int cli_progress_cb(void *ud, uint64_t done, uint64_t total);
void cli_progress_done(cli_progress *p);

/* Log sink for the library: one line per event (key=value text, or JSON) on stderr, or in
 * a log file (and stderr when asked), each line one write(). Thread-safe. */
void cli_log(void *ud, int level, const char *msg);
/* "debug", "info" (and NULL), "warn"/"warning", "error": LS_LOG_*, or -1. */
int cli_log_level_parse(const char *s);
/*
 * Where and how log lines go from now on: lines below `level` dropped; JSON
 * or text; appended to `file` (opened O_APPEND, created 0640) when not NULL,
 * and to stderr when there is no file or `to_stderr`. 0, or an errno (the
 * file could not be opened) with nothing changed.
 */
int cli_log_configure(int level, int json, const char *file, int to_stderr);
/* Open the log file again at its path (logrotate renamed it): 0, or an errno with the old
 * file kept. No file: 0. */
int cli_log_reopen(void);
/*
 * cli_log_configure from a configuration's logging: (level_override, the
 * -log-level option, wins over logging.level). 0, or LS_EUSAGE / LS_EIO
 * with the reason in err (nothing changed).
 */
int cli_log_from_config(const ls_config *cfg, const char *level_override, char *err, size_t n);

/* Commands. */
int cmd_backup(cli_env *env, int argc, char **argv);
int cmd_checkpoint(cli_env *env, int argc, char **argv);
int cmd_snapshot(cli_env *env, int argc, char **argv);
int cmd_info(cli_env *env, int argc, char **argv);
int cmd_verify(cli_env *env, int argc, char **argv);
int cmd_prune(cli_env *env, int argc, char **argv);
int cmd_restore(cli_env *env, int argc, char **argv);
int cmd_version(cli_env *env, int argc, char **argv);
int cmd_replicate(cli_env *env, int argc, char **argv);
int cmd_generations(cli_env *env, int argc, char **argv);
int cmd_snapshots(cli_env *env, int argc, char **argv);
int cmd_wal(cli_env *env, int argc, char **argv);
int cmd_databases(cli_env *env, int argc, char **argv);
int cmd_validate(cli_env *env, int argc, char **argv);
int cmd_status(cli_env *env, int argc, char **argv);
int cmd_sync(cli_env *env, int argc, char **argv);

/* Check --mode and --busy-timeout of checkpoint and snapshot: -1 to go on, or the exit code. */
int cli_ckpt_args(cli_env *env, const char *mode_s, long long busy, ls_ckpt_mode *mode);

/* Shared printers, so backup and snapshot print a backup result alike: the
 * JSON members of a result, for --json (snapshot nests them in objects). */
void print_backup_result(cli_env *env, const ls_backup_result *r);
void print_checkpoint_result(cli_env *env, const ls_checkpoint_result *r);
/* The checkpoint's state in sqlite-checkpoint's words: "busy", "ok" (fully
 * checkpointed) or "partial". */
const char *cli_ckpt_status(const ls_checkpoint_result *r);

/* Set by SIGINT/SIGTERM (main.c); long-running commands stop when they see it. */
extern volatile sig_atomic_t cli_stop;
/* SIGHUPs received since cli_catch_hup (main.c); `replicate` reloads on each. */
extern volatile sig_atomic_t cli_hup;
/* Count SIGHUP in cli_hup instead of dying of it (only `replicate` asks). */
void cli_catch_hup(void);

/* Milliseconds on a monotonic clock. */
uint64_t cli_now_ms(void);

/* RFC 3339 UTC time of unix milliseconds into buf (at least 32 bytes) (time.c). */
void cli_rfc3339(int64_t ms, char *buf, size_t n);
/* Parse RFC 3339 ("2026-01-02T03:04:05Z", fractional seconds and offsets allowed). */
int cli_parse_rfc3339(const char *s, int64_t *ms);
/*
 * Open the target of a replica command (ls_target_open: a replica URL, or a
 * database of the configuration, -replica narrowing it). Returns -1 with
 * *t set to go on, or the exit code after printing the error (opts.c).
 */
int cli_target_open(cli_env *env, const char *config, int no_expand, const char *replica,
                    const char *arg, ls_target **t);

#endif
