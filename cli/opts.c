/*
 * opts.c - table-driven option parsing and --help; the replica commands'
 * target from their options (cli_target_open).
 *
 * Long options take one or two dashes (`-config` and `--config`), so command
 * lines written for Litestream keep working. Values follow as the next word
 * or after `=`. `--` ends the options. `--json` and `--quiet` are accepted by
 * every command, anywhere on the line.
 */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int cli_parse_only;

static void print_help(const char *usage, const char *about, const cli_opt *opts)
{
    printf("usage: litesafe %s\n", usage);
    if (about)
        printf("\n%s\n", about);
    printf("\noptions:\n");
    for (const cli_opt *o = opts; o && o->name; o++) {
        char left[64];
        if (o->short_name)
            snprintf(left, sizeof(left), "-%c, --%s%s%s", o->short_name, o->name,
                     o->arg ? " " : "", o->arg ? o->arg : "");
        else
            snprintf(left, sizeof(left), "    --%s%s%s", o->name, o->arg ? " " : "",
                     o->arg ? o->arg : "");
        printf("  %-30s %s\n", left, o->help);
    }
    printf("  %-30s %s\n", "    --json", "print the result as one JSON object");
    printf("  %-30s %s\n", "-q, --quiet", "no progress bar or notes on stderr");
    printf("  %-30s %s\n", "-h, --help", "show this help");
}

static const cli_opt *find_opt(const cli_opt *opts, const char *name, size_t len, int is_short)
{
    for (const cli_opt *o = opts; o && o->name; o++) {
        if (is_short && len == 1 && o->short_name == name[0])
            return o;
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    }
    return NULL;
}

int cli_parse(cli_env *env, const char *usage, const char *about, const cli_opt *opts, int argc,
              char **argv, char **pos, int maxpos, int *npos)
{
    int only_pos = 0;
    *npos = 0;
    /* --json and --quiet first, so that an error about anything else honours them. */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json") || !strcmp(a, "-json"))
            env->json = 1;
        else if (!strcmp(a, "--quiet") || !strcmp(a, "-quiet") || !strcmp(a, "-q"))
            env->quiet = 1;
    }
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') {
            if (*npos >= maxpos)
                return cli_fail(env, LS_EUSAGE, "unexpected argument '%s' (see --help)", a);
            pos[(*npos)++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        const char *name = a + 1;
        int dashes = 1;
        if (*name == '-') {
            name++;
            dashes = 2;
        }
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        if ((len == 4 && strncmp(name, "json", 4) == 0) && !eq) {
            env->json = 1;
            continue;
        }
        if (((len == 5 && strncmp(name, "quiet", 5) == 0) || (len == 1 && *name == 'q')) && !eq) {
            env->quiet = 1;
            continue;
        }
        if (((len == 4 && strncmp(name, "help", 4) == 0) || (len == 1 && *name == 'h')) && !eq) {
            print_help(usage, about, opts);
            return 0;
        }
        const cli_opt *o = find_opt(opts, name, len, dashes == 1);
        if (!o)
            return cli_fail(env, LS_EUSAGE, "unknown option '%s' (see --help)", a);
        if (o->kind == OPT_FLAG) {
            if (eq)
                return cli_fail(env, LS_EUSAGE, "option '--%s' takes no value", o->name);
            *(int *)o->dst = 1;
            continue;
        }
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (i + 1 >= argc)
                return cli_fail(env, LS_EUSAGE, "option '--%s' needs a value (%s)", o->name,
                                o->arg ? o->arg : "VALUE");
            val = argv[++i];
        }
        if (o->kind == OPT_STR) {
            *(const char **)o->dst = val;
        } else {
            char *end = NULL;
            errno = 0;
            long long v = strtoll(val, &end, 10);
            if (errno || end == val || *end)
                return cli_fail(env, LS_EUSAGE, "option '--%s': '%s' is not a number", o->name,
                                val);
            *(long long *)o->dst = v;
        }
    }
    return cli_parse_only ? 0 : -1;
}

int cli_want_args(cli_env *env, int npos, int min, int max, const char *usage)
{
    if (npos < min)
        return cli_fail(env, LS_EUSAGE, "missing argument (usage: litesafe %s)", usage);
    if (npos > max)
        return cli_fail(env, LS_EUSAGE, "too many arguments (usage: litesafe %s)", usage);
    return -1;
}

int cli_target_open(cli_env *env, const char *config, int no_expand, const char *replica,
                    const char *arg, ls_target **t)
{
    ls_target_options o = LS_TARGET_OPTIONS_INIT;
    o.config_path = config;
    o.no_expand_env = no_expand;
    o.replica = replica;
    int rc = ls_target_open(env->ctx, arg, &o, t);
    return rc ? cli_fail_lib(env, rc) : -1;
}
