/*
 * time.c - times as the replica commands print and read them: RFC 3339 in
 * UTC (generations, snapshots, wal print them; restore -timestamp reads one).
 */
#define _GNU_SOURCE
#include "cli.h"

#include <string.h>
#include <time.h>

void cli_rfc3339(int64_t ms, char *buf, size_t n)
{
    time_t tt = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* 1 if s starts with n decimal digits, their value in *v. */
static int take_digits(const char *s, int n, long *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        *v = *v * 10 + (s[i] - '0');
    }
    return 1;
}

int cli_parse_rfc3339(const char *s, int64_t *ms)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return LS_EUSAGE;
    /* Fractional seconds: one or more digits, milliseconds kept. */
    long frac = 0, d;
    if (*p == '.') {
        int n = 0;
        for (p++; take_digits(p, 1, &d); p++, n++)
            frac = n < 3 ? frac * 10 + d : frac;
        if (n == 0)
            return LS_EUSAGE;
        for (; n < 3; n++)
            frac *= 10;
    }
    long off = 0, hh, mm;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        if (!take_digits(p + 1, 2, &hh) || p[3] != ':' || !take_digits(p + 4, 2, &mm))
            return LS_EUSAGE;
        off = (hh * 3600L + mm * 60L) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return LS_EUSAGE;
    }
    if (*p)
        return LS_EUSAGE;
    time_t t = timegm(&tm);
    *ms = ((int64_t)t - off) * 1000 + frac;
    return 0;
}
