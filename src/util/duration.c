/*
 * duration.c - durations as users write them: Go's syntax ("1h30m", "250ms",
 * "1.5h"), plus "d" (24h) and "w" (7d) which retention wants; a bare number
 * means seconds.
 */
#include "internal.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *unit;
    double ms;
} units[] = {
    {"ms", 1.0},       {"s", 1000.0},         {"m", 60000.0},      {"h", 3600000.0},
    {"d", 86400000.0}, {"w", 604800000.0},    {NULL, 0},
};

int ls_duration_parse(const char *s, int64_t *out_ms)
{
    if (!s || !*s)
        return LS_EUSAGE;
    char *end = NULL;
    double v = strtod(s, &end);
    if (end != s && *end == '\0') { /* bare number: seconds */
        if (!(v >= 0) || v > 9.2e15)
            return LS_EUSAGE;
        *out_ms = (int64_t)llround(v * 1000.0);
        return 0;
    }
    double total = 0;
    const char *p = s;
    while (*p) {
        if (!isdigit((unsigned char)*p) && *p != '.')
            return LS_EUSAGE;
        v = strtod(p, &end);
        if (end == p || !(v >= 0))
            return LS_EUSAGE;
        p = end;
        size_t ulen = 0;
        while (isalpha((unsigned char)p[ulen]))
            ulen++;
        int found = 0;
        for (int i = 0; units[i].unit; i++) {
            if (strlen(units[i].unit) == ulen && strncmp(p, units[i].unit, ulen) == 0) {
                total += v * units[i].ms;
                found = 1;
                break;
            }
        }
        if (!found)
            return LS_EUSAGE;
        p += ulen;
    }
    if (total > 9.2e18)
        return LS_EUSAGE;
    *out_ms = (int64_t)llround(total);
    return 0;
}
