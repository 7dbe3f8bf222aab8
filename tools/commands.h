/*
 * commands.h - the gpt command's subcommands. Each takes the arguments
 * after its name (argv[0] is the subcommand) and returns the exit code.
 */
#ifndef GPT_COMMANDS_H
#define GPT_COMMANDS_H

int gpt_cmd_train(int argc, char **argv);     /* tools/cmd_train.c */
int gpt_cmd_generate(int argc, char **argv);  /* tools/cmd_generate.c */
int gpt_cmd_eval(int argc, char **argv);      /* tools/cmd_eval.c */
int gpt_cmd_info(int argc, char **argv);      /* tools/cmd_info.c */
int gpt_cmd_bench(int argc, char **argv);     /* tools/cmd_bench.c */
int gpt_cmd_convert(int argc, char **argv);   /* tools/cmd_convert.c */
int gpt_cmd_quantize(int argc, char **argv);  /* tools/cmd_quantize.c */
int gpt_cmd_tokenize(int argc, char **argv);  /* tools/cmd_tokenize.c */
int gpt_cmd_tokenizer(int argc, char **argv); /* tools/cmd_tokenize.c */
int gpt_cmd_serve(int argc, char **argv);     /* tools/cmd_serve.c */

#endif
