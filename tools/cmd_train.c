/* cmd_train.c - gpt train (placeholder until its issue lands). */
#include "cli.h"
#include "commands.h"

int gpt_cmd_train(int argc, char **argv) {
    (void)argc;
    return cli_usage_error(argv[0], "not built yet");
}
