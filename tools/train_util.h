/*
 * train_util.h - what gpt train prints at the end: a sample of the model.
 */
#ifndef GPT_TRAIN_UTIL_H
#define GPT_TRAIN_UTIL_H

#include <stdint.h>
#include "gpt.h"
#include "gpt_tokenizer.h"

/* Prints prompt and n sampled tokens (temperature 0.8, top-k 40) to stdout,
 * as they are drawn. */
int train_print_sample(gpt_model *m, const gpt_tokenizer *tok, const char *prompt, int n,
                       uint64_t seed, gpt_error *err);

#endif
