/* util/version.c - the library's version at run time (see litesafe.h). */
#include "litesafe.h"

const char *ls_version(void)
{
    return LS_VERSION;
}
