/*
 * opts.h - option groups that several commands share, as cli_opt tables
 * to include in a command's table with a CLI_GROUP row:
 *
 *   {CLI_GROUP, .group = cli_model_opts, .off = offsetof(my_args, model)},
 *
 * cli_model_opts: the model and where it runs (-m/--model, --tokenizer,
 * --device, -t/--threads, --precision, --quant). cli_gen_opts: how text is
 * generated, with llama.cpp's spellings where it has them (-c/--ctx-size,
 * -n, --temp, --top-k, --top-p, -s/--seed, -r/--reverse-prompt for --stop). gpt generate uses both;
 * a server takes the same flags for its defaults.
 */
#ifndef GPT_OPTS_H
#define GPT_OPTS_H

#include "cli.h"
#include "gpt.h"
#include "gpt_tokenizer.h"

typedef struct {
    const char *path;      /* -m, --model: checkpoint or Hugging Face folder */
    const char *tokenizer; /* --tokenizer: NULL = the model's own */
    const char *device;    /* --device: NULL = auto */
    int threads;           /* -t, --threads: 0 = the cores this process may use */
    int precision;         /* --precision: a gpt_precision */
    const char *quant;     /* --quant int8|none: NULL = as the model is stored */
} cli_model_args;
extern const cli_opt cli_model_opts[];

typedef struct {
    int ctx;           /* -c, --ctx-size: positions a row may use; 0 = the model's */
    int n;             /* -n, --max-new-tokens */
    float temperature; /* --temperature, --temp: 0 = greedy */
    int top_k;         /* --top-k: 0 = all */
    float top_p;       /* --top-p: 1 = all */
    long long seed;    /* -s, --seed */
    cli_list stop;     /* -r, --stop, --reverse-prompt: repeatable */
} cli_gen_args;
extern const cli_opt cli_gen_opts[];

/* The runtime the model options ask for. */
gpt_runtime cli_model_runtime(const cli_model_args *a);
/* Loads a->path on the runtime the options ask for, quantised as --quant
 * asks. */
int cli_load_model(const cli_model_args *a, gpt_model **m, gpt_error *err);
/* Opens the named tokenizer, or (name NULL) the model's own: the one its
 * checkpoint carries, else the one it names, else gpt2. */
int cli_model_tokenizer(gpt_model *m, const char *name, gpt_tokenizer **tok, gpt_error *err);
/* Fills the sampling, length and stop fields of o from the options. The
 * context must already be checked against the model (cli_check_ctx). */
void cli_gen_apply(const cli_gen_args *a, gpt_generate_opts *o);
/* --ctx-size against the model's context: 0, or EXIT_USAGE after a line. */
int cli_check_ctx(const char *cmd, const cli_gen_args *a, const gpt_model *m);

#endif
