/*
 * time.c - times as the replica commands print and read them: RFC 3339 in
 * UTC (generations, snapshots, wal print them; restore -timestamp reads one).
 */
#define _GNU_SOURCE
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void cli_rfc3339(int64_t ms, char *buf, size_t n)
{
    time_t tt = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int cli_parse_rfc3339(const char *s, int64_t *ms)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return LS_EUSAGE;
    double frac = 0;
    if (*p == '.') {
        char *end;
        frac = strtod(p, &end);
        p = end;
    }
    long off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh, mm;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2)
            return LS_EUSAGE;
        off = (hh * 3600L + mm * 60L) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return LS_EUSAGE;
    }
    if (*p)
        return LS_EUSAGE;
    time_t t = timegm(&tm);
    *ms = ((int64_t)t - off) * 1000 + (int64_t)(frac * 1000.0);
    return 0;
}
