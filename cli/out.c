/*
 * out.c - result output. Commands describe a result once with out_* calls;
 * with --json it becomes one JSON object on stdout, otherwise "key: value"
 * lines. The commands sqlite-checkpoint also has (checkpoint, snapshot,
 * backup, info) print its text layout instead: out_head and out_line.
 * Also: errors, notes, the progress bar, the log sink (stderr and/or a log
 * file, reopened on SIGHUP).
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

/*
 * The log sink (cli_log). Where lines go and how they look change only
 * under the write lock (cli_log_configure, cli_log_reopen); cli_log takes
 * it for reading, so threads log at once, and each line reaches each
 * destination in one write(): lines never interleave, in a pipe (a line
 * is under PIPE_BUF) or in a file opened O_APPEND (even by two processes).
 * The level is checked here too: `replicate` lets every event through its
 * contexts (the replication threads' own contexts cannot be changed while
 * they run) so that a reload can change the level.
 */
static struct {
    pthread_rwlock_t lock;
    int json;                   /* one JSON object per line, else key=value text */
    int level;                  /* lines below this LS_LOG_* level are dropped */
    int fd;                     /* the log file, -1: none */
    int to_stderr;              /* also to stderr (always when there is no file) */
    char *path;                 /* the log file's path (for cli_log_reopen), NULL: none */
} sink = {PTHREAD_RWLOCK_INITIALIZER, 0, LS_LOG_DEBUG, -1, 1, NULL};

int cli_log_level_parse(const char *s)
{
    if (!s || !strcasecmp(s, "info"))
        return LS_LOG_INFO;
    if (!strcasecmp(s, "debug"))
        return LS_LOG_DEBUG;
    if (!strcasecmp(s, "warn") || !strcasecmp(s, "warning"))
        return LS_LOG_WARN;
    if (!strcasecmp(s, "error"))
        return LS_LOG_ERROR;
    return -1;
}

/* Open the log file for appending: a descriptor, or -1 with errno. */
static int open_log(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
}

int cli_log_configure(int level, int json, const char *file, int to_stderr)
{
    int fd = -1;
    char *path = NULL;
    if (file && ((fd = open_log(file)) < 0 || !(path = strdup(file)))) {
        int e = fd < 0 ? errno : ENOMEM;
        if (fd >= 0)
            close(fd);
        return e;
    }
    pthread_rwlock_wrlock(&sink.lock);
    int old = sink.fd;
    free(sink.path);
    sink.level = level;
    sink.json = json;
    sink.fd = fd;
    sink.path = path;
    sink.to_stderr = to_stderr || fd < 0;
    pthread_rwlock_unlock(&sink.lock);
    if (old >= 0)
        close(old);
    return 0;
}

int cli_log_reopen(void)
{
    pthread_rwlock_rdlock(&sink.lock);
    char *path = sink.path ? strdup(sink.path) : NULL;
    pthread_rwlock_unlock(&sink.lock);
    if (!path)
        return 0;
    int fd = open_log(path), e = errno;
    free(path);
    if (fd < 0)
        return e;
    pthread_rwlock_wrlock(&sink.lock);
    int old = sink.fd;
    sink.fd = fd;
    pthread_rwlock_unlock(&sink.lock);
    if (old >= 0)
        close(old);
    return 0;
}

int cli_log_from_config(const ls_config *cfg, const char *level_override, char *err, size_t n)
{
    const char *lv = level_override ? level_override : ls_config_log_level(cfg);
    const char *type = ls_config_log_type(cfg), *file = ls_config_log_file(cfg);
    int level = cli_log_level_parse(lv);
    if (level < 0) {
        snprintf(err, n, "invalid log level '%s'", lv);
        return LS_EUSAGE;
    }
    int e = cli_log_configure(level, type && !strcmp(type, "json"), file,
                              ls_config_log_stderr(cfg));
    if (e) {
        snprintf(err, n, "logging.file: open %s: %s", file, strerror(e));
        return LS_EIO;
    }
    return 0;
}

/* Write all of buf to fd (one write() unless the kernel takes less). */
static void write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        buf += w;
        n -= (size_t)w;
    }
}

/* Write "k=v k2=\"v 2\"" as JSON members (after an existing member). */
static void kv_to_json(FILE *f, const char *p)
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
        fputc(',', f);
        json_string(f, key);
        fputc(':', f);
        json_string(f, val);
    }
}

/* One log line of `msg` as text or JSON into f. */
static void format_line(FILE *f, int json, int level, const char *msg)
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
    if (json) {
        char m[512];
        snprintf(m, sizeof(m), "%.*s", (int)(kv - msg), msg);
        fprintf(f, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":", ts, names[level & 3]);
        json_string(f, m);
        kv_to_json(f, kv);
        fputs("}\n", f);
    } else {
        fprintf(f, "time=%s level=%s msg=\"%.*s\"%s\n", ts, names[level & 3],
                (int)(kv - msg), msg, kv);
    }
}

void cli_log(void *ud, int level, const char *msg)
{
    char *line = NULL;
    size_t n = 0;
    (void)ud;
    pthread_rwlock_rdlock(&sink.lock);
    FILE *f = level >= sink.level ? open_memstream(&line, &n) : NULL;
    if (f) {
        format_line(f, sink.json, level, msg);
        if (fclose(f) == 0) {
            if (sink.fd >= 0)
                write_all(sink.fd, line, n);
            if (sink.to_stderr)
                write_all(STDERR_FILENO, line, n);
        }
    }
    pthread_rwlock_unlock(&sink.lock);
    free(line);
}
