/* cmd_info.c - gpt info (placeholder until its issue lands). */
#include "cli.h"
#include "commands.h"

int gpt_cmd_info(int argc, char **argv) {
    (void)argc;
    return cli_usage_error(argv[0], "not built yet");
}
