/*
 * out.c - result output. Commands describe a result once with out_* calls;
 * with --json it becomes one JSON object on stdout, otherwise "key: value"
 * lines. The commands sqlite-checkpoint also has (checkpoint, snapshot,
 * backup, info) print its text layout instead: out_head and out_line.
 * Also: errors, notes, the progress bar, the log sink.
 */
#include "cli.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

/* Start a member: comma, key. In text mode: indentation and "key: ". */
static void member(cli_env *env, const char *key)
{
    if (env->json) {
        if (!env->first[env->depth])
            fputc(',', stdout);
        env->first[env->depth] = 0;
        if (key) {
            json_string(stdout, key);
            fputc(':', stdout);
        }
    } else if (key) {
        printf("%*s%s: ", (env->depth - 1) * 2, "", key);
    }
}

void out_begin(cli_env *env)
{
    env->depth = 1;
    env->first[1] = 1;
    if (env->json)
        fputc('{', stdout);
}

void out_end(cli_env *env)
{
    if (env->json)
        fputs("}\n", stdout);
    env->depth = 0;
    fflush(stdout);
}

void out_obj_begin(cli_env *env, const char *key)
{
    if (env->json) {
        member(env, key);
        fputc('{', stdout);
    } else {
        printf("%*s%s:\n", (env->depth - 1) * 2, "", key);
    }
    env->depth++;
    env->first[env->depth] = 1;
}

void out_obj_end(cli_env *env)
{
    env->depth--;
    if (env->json)
        fputc('}', stdout);
}

void out_arr_begin(cli_env *env, const char *key)
{
    if (env->json) {
        member(env, key);
        fputc('[', stdout);
    } else {
        printf("%*s%s:\n", (env->depth - 1) * 2, "", key);
    }
    env->depth++;
    env->first[env->depth] = 1;
}

void out_arr_end(cli_env *env)
{
    env->depth--;
    if (env->json)
        fputc(']', stdout);
}

void out_item_begin(cli_env *env)
{
    if (env->json) {
        member(env, NULL);
        fputc('{', stdout);
    } else {
        printf("%*s-\n", (env->depth - 1) * 2, "");
    }
    env->depth++;
    env->first[env->depth] = 1;
}

void out_item_end(cli_env *env)
{
    out_obj_end(env);
}

void out_str(cli_env *env, const char *key, const char *val)
{
    member(env, key);
    if (env->json) {
        if (val)
            json_string(stdout, val);
        else
            fputs("null", stdout);
    } else {
        printf("%s\n", val ? val : "-");
    }
}

void out_int(cli_env *env, const char *key, long long val)
{
    member(env, key);
    printf(env->json ? "%lld" : "%lld\n", val);
}

void out_uint(cli_env *env, const char *key, unsigned long long val)
{
    member(env, key);
    printf(env->json ? "%llu" : "%llu\n", val);
}

void out_bool(cli_env *env, const char *key, int val)
{
    member(env, key);
    if (env->json)
        fputs(val ? "true" : "false", stdout);
    else
        puts(val ? "yes" : "no");
}

void out_hex32(cli_env *env, const char *key, uint32_t val)
{
    char buf[16];
    snprintf(buf, sizeof(buf), "0x%08x", val);
    out_str(env, key, buf);
}

/* Width of "label:" in a text field line; a longer label gets one space. */
#define LABEL_WIDTH 20

void out_head(cli_env *env, const char *fmt, ...)
{
    if (env->json)
        return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

void out_line(cli_env *env, const char *label, const char *fmt, ...)
{
    if (env->json)
        return;
    int n = (int)strlen(label) + 1;
    printf("  %s:%*s", label, n < LABEL_WIDTH ? LABEL_WIDTH - n : 1, "");
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

const char *out_commas(char *buf, size_t size, unsigned long long n)
{
    char digits[32];
    int len = snprintf(digits, sizeof(digits), "%llu", n);
    size_t o = 0;
    for (int i = 0; i < len && o + 1 < size; i++) {
        if (i > 0 && (len - i) % 3 == 0 && o + 2 < size)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    if (size > 0)
        buf[o < size ? o : size - 1] = '\0';
    return buf;
}

static int exit_for(int code)
{
    return code == LS_EUSAGE ? EXIT_USAGE : EXIT_RUNTIME;
}

static int fail_msg(cli_env *env, int code, const char *msg)
{
    fprintf(stderr, "litesafe: %s%s%s\n", env->cmd ? env->cmd : "", env->cmd ? ": " : "", msg);
    if (env->json) {
        if (env->depth > 0) { /* abandon a result that was being printed */
            while (env->depth-- > 1)
                fputc('}', stdout);
            fputs("}\n", stdout);
            env->depth = 0;
        }
        fputs("{\"command\":", stdout);
        json_string(stdout, env->cmd ? env->cmd : "");
        fputs(",\"error\":", stdout);
        json_string(stdout, msg);
        fputs(",\"code\":", stdout);
        json_string(stdout, ls_strerror(code));
        printf(",\"exit_code\":%d}\n", exit_for(code));
        fflush(stdout);
    }
    return exit_for(code);
}

int cli_fail(cli_env *env, int code, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return fail_msg(env, code, msg);
}

int cli_fail_lib(cli_env *env, int code)
{
    const char *m = ls_errmsg(env->ctx);
    return fail_msg(env, code, m && *m ? m : ls_strerror(code));
}

void cli_note(cli_env *env, const char *fmt, ...)
{
    if (env->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("litesafe: note: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void cli_progress_init(cli_progress *p, cli_env *env, const char *label)
{
    memset(p, 0, sizeof(*p));
    p->env = env;
    p->label = label;
    p->t0 = cli_now_ms();
    p->last_pct = -1;
}

int cli_progress_cb(void *ud, uint64_t done, uint64_t total)
{
    cli_progress *p = ud;
    if (p->env->quiet || !isatty(STDERR_FILENO) || total == 0)
        return 0;
    uint64_t el = cli_now_ms() - p->t0;
    if (el < 500 && !p->shown) /* only when the copy takes more than a moment */
        return 0;
    int pct = (int)(done * 100 / total);
    if (pct == p->last_pct)
        return 0;
    p->last_pct = pct;
    p->shown = 1;
    int width = 30, fill = pct * width / 100;
    fprintf(stderr, "\r%s [%.*s%*s] %3d%% %llu/%llu pages", p->label, fill,
            "##############################", width - fill, "", pct, (unsigned long long)done,
            (unsigned long long)total);
    fflush(stderr);
    return 0;
}

void cli_progress_done(cli_progress *p)
{
    if (p->shown) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
}

/* Log sink state: text (default) or one JSON object per line. */
static int log_json;

void cli_log_set_json(int on)
{
    log_json = on;
}

/* Write "k=v k2=\"v 2\"" as JSON members (after an existing member). */
static void kv_to_json(const char *p)
{
    while (*p) {
        while (*p == ' ')
            p++;
        const char *eq = strchr(p, '=');
        if (!*p || !eq)
            break;
        char key[64], val[1024];
        snprintf(key, sizeof(key), "%.*s", (int)(eq - p), p);
        p = eq + 1;
        size_t n = 0;
        if (*p == '"') {
            for (p++; *p && *p != '"' && n < sizeof(val) - 1; p++) {
                if (*p == '\\' && p[1])
                    p++;
                val[n++] = *p;
            }
            if (*p == '"')
                p++;
        } else {
            while (*p && *p != ' ' && n < sizeof(val) - 1)
                val[n++] = *p++;
        }
        val[n] = '\0';
        fputc(',', stderr);
        json_string(stderr, key);
        fputc(':', stderr);
        json_string(stderr, val);
    }
}

void cli_log(void *ud, int level, const char *msg)
{
    static const char *names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    char ts[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    /* "event text key=value ..." becomes msg="event text" key=value ... */
    const char *kv = NULL;
    for (const char *p = msg; *p && !kv; p++) {
        if (*p != ' ')
            continue;
        const char *q = p + 1;
        while (*q == '_' || (*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9'))
            q++;
        if (q > p + 1 && *q == '=')
            kv = p;
    }
    if (!kv) /* no key=value part */
        kv = msg + strlen(msg);
    /* One line per call even when threads log at once (stdio's lock is recursive). */
    flockfile(stderr);
    if (log_json) {
        char m[512];
        snprintf(m, sizeof(m), "%.*s", (int)(kv - msg), msg);
        fprintf(stderr, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":", ts, names[level & 3]);
        json_string(stderr, m);
        kv_to_json(kv);
        fputs("}\n", stderr);
    } else {
        fprintf(stderr, "time=%s level=%s msg=\"%.*s\"%s\n", ts, names[level & 3],
                (int)(kv - msg), msg, kv);
    }
    funlockfile(stderr);
}
