/*
 * train_args.h - the options of gpt train and their parsing, kept apart
 * from the command so that the parser can be fuzzed on its own
 * (fuzz/fuzz_train_args.c).
 */
#ifndef GPT_TRAIN_ARGS_H
#define GPT_TRAIN_ARGS_H

#include "cli.h"
#include "gpt.h"

typedef struct {
    const char *data, *val, *tokenizer, *preset, *out, *init, *resume, *prompt;
    double val_fraction, time_limit;
    long long seed;
    int eval_every, eval_batches, save_every, sample, stop_after;
    int resume_flag, eval_batches_given;
    gpt_config cfg;
    int cfg_set[8]; /* which config fields were given: L NH C F maxT V */
    gpt_train_opts opts;
    int opts_B, opts_T;
    gpt_runtime rt;
    int gpus, zero;      /* --gpus N (0: not given), --zero 0|1 */
    double dist_timeout; /* --dist-timeout S (0: the library's default) */
    int precision;  /* --precision, copied into rt */
    cli_seen seen;  /* which options were given */
} train_args;

/* gpt train's options (train_args fields), for its --help. */
extern const cli_opt train_opts[];

/* Returned by train_args_parse when --help was asked for. */
#define TRAIN_ARGS_HELP CLI_HELP

/* Fills *a from argv (argv[0] is "train"): EXIT_OK, EXIT_USAGE after
 * printing the problem on stderr, or TRAIN_ARGS_HELP. No other side
 * effects; strings in *a point into argv. */
int train_args_parse(int argc, char **argv, train_args *a);

/* 1 if the option with this long name was on the command line. */
int train_args_given(const train_args *a, const char *name);

/* The model configuration the flags ask for, unresolved: the preset, then
 * each override given. The vocabulary stays the preset's unless --vocab
 * was given (gpt train then takes the tokenizer's). GPT_ERR_INVALID for an
 * unknown preset. */
int train_args_config(const train_args *a, gpt_config *cfg, gpt_error *err);

#endif
