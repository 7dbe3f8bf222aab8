/*
 * commands.h - the gpt command's subcommands. Each takes the arguments
 * after its name (argv[0] is the subcommand) and returns the exit code;
 * each has a cli_cmd describing its options (cli.h), from which its --help
 * and the manual page are printed. A new command is a file with both and
 * a line in gpt.c's list.
 */
#ifndef GPT_COMMANDS_H
#define GPT_COMMANDS_H

#include "cli.h"

int gpt_cmd_train(int argc, char **argv);     /* tools/cmd_train.c */
int gpt_cmd_generate(int argc, char **argv);  /* tools/cmd_generate.c */
int gpt_cmd_eval(int argc, char **argv);      /* tools/cmd_eval.c */
int gpt_cmd_info(int argc, char **argv);      /* tools/cmd_info.c */
int gpt_cmd_convert(int argc, char **argv);   /* tools/cmd_convert.c */
int gpt_cmd_quantize(int argc, char **argv);  /* tools/cmd_quantize.c */
int gpt_cmd_tokenize(int argc, char **argv);  /* tools/cmd_tokenize.c */

int gpt_cmd_serve(int argc, char **argv);     /* tools/cmd_serve.c */

extern const cli_cmd gpt_train_cmd, gpt_generate_cmd, gpt_eval_cmd, gpt_info_cmd, gpt_bench_cmd,
    gpt_convert_cmd, gpt_quantize_cmd, gpt_tokenize_cmd, gpt_tokenizer_cmd, gpt_serve_cmd;

#endif
