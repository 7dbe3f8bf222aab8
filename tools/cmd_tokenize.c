/* cmd_tokenize.c - gpt tokenize (placeholder until its issue lands). */
#include "cli.h"
#include "commands.h"

int gpt_cmd_tokenize(int argc, char **argv) {
    (void)argc;
    return cli_usage_error(argv[0], "not built yet");
}
int gpt_cmd_tokenizer(int argc, char **argv) {
    (void)argc;
    return cli_usage_error(argv[0], "not built yet");
}
