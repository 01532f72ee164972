/* cmd_checkpoint.c - placeholder until the command lands. */
#include "cli.h"

int cmd_checkpoint(cli_env *env, int argc, char **argv)
{
    return cli_fail(env, LS_EUSAGE, "not implemented yet");
}
