/*
 * interactive.h - gpt generate -i: a conversation that keeps the KV cache
 * between turns (tools/interactive.c says how).
 */
#ifndef GPT_INTERACTIVE_H
#define GPT_INTERACTIVE_H

#include "gpt.h"
#include "gpt_tokenizer.h"

typedef struct {
    int n;    /* tokens a reply may have at most */
    int ctx;  /* positions the conversation may use; 0 = the model's context */
    int keep; /* tokens of the first prompt kept when the context fills; -1 = all */
    gpt_sampler_opts sampler;
    const char *const *stop; /* a reply ends with the token that completes one */
    int n_stop;
    int ids; /* print each reply's ids as a JSON array line instead of its text */
} interactive_opts;

/* Runs the conversation on standard input and output: the prompt (may be
 * empty) first, then a reply to it and to every line read, until the end
 * of input or Ctrl-C at the prompt. Returns 0 or the library's error. */
int interactive_run(gpt_model *m, const gpt_tokenizer *tok, const int *prompt, int prompt_len,
                    const interactive_opts *o, gpt_error *err);

#endif
