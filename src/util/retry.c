/*
 * retry.c - see retry.h.
 */
#include "retry.h"
#include "internal.h"

#include <sys/random.h>

int ls_retryable(int code)
{
    return code == LS_ENET;
}

int ls_permanent(int code)
{
    return code == LS_EPERM || code == LS_EUSAGE;
}

uint64_t ls_backoff_ms(unsigned attempt, uint64_t min_ms, uint64_t max_ms)
{
    uint64_t d = min_ms;
    for (unsigned i = 0; i < attempt && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    uint32_t x = 0;
    if (getrandom(&x, sizeof(x), GRND_NONBLOCK) != sizeof(x))
        x = (uint32_t)ls_now_ms();
    return d - d / 2 + x % (d / 2 + 1);
}
