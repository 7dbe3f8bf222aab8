/* cmd_eval.c - gpt eval (placeholder until its issue lands). */
#include "cli.h"
#include "commands.h"

int gpt_cmd_eval(int argc, char **argv) {
    (void)argc;
    return cli_usage_error(argv[0], "not built yet");
}
