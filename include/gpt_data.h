/*
 * gpt_data.h - training data: a text file (tokenised when opened) or token
 * shard files, split into training and validation tokens, with batches
 * drawn deterministically from a seeded generator. Same conventions as
 * gpt.h: 0 on success, else a gpt_status with *err filled.
 */
#ifndef GPT_DATA_H
#define GPT_DATA_H

#include <stddef.h>
#include <stdint.h>
#include "gpt.h"
#include "gpt_tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gpt_data gpt_data;

/* Opens training data. path is a text file (encoded with tok, which must
 * not be NULL) or a token shard file. val_path, if not NULL, is the
 * validation text or shard; otherwise the last val_fraction of the tokens
 * (in (0, 0.5]) are held out. */
int gpt_data_open(gpt_data **out, const char *path, const char *val_path,
                  const gpt_tokenizer *tok, double val_fraction, gpt_error *err);
void gpt_data_free(gpt_data *d);

size_t gpt_data_train_tokens(const gpt_data *d);
size_t gpt_data_val_tokens(const gpt_data *d);
/* Largest token id + 1 seen in the data (for checking against V). */
int gpt_data_max_id(const gpt_data *d);
/* Validation tokens per byte of validation text (1 for bytes; 0 if the
 * data came as shards without text). */
double gpt_data_val_tokens_per_byte(const gpt_data *d);
/* Validation tokens per character (UTF-8 code point) of validation text,
 * the same as per byte for ASCII; 0 for shards. Converts nats per token to
 * nats per character: loss_per_char = loss_per_token * tokens_per_char. */
double gpt_data_val_tokens_per_char(const gpt_data *d);

/* B rows of T+1 consecutive training tokens at offsets drawn from rng
 * (xoshiro256** state, 4 words, advanced). out: (B, T+1). */
int gpt_data_train_batch(const gpt_data *d, uint64_t rng[4], int B, int T, int *out,
                         gpt_error *err);
/* Rows [first, first + n) of the batch gpt_data_train_batch would draw
 * (rng advanced the same): each data-parallel rank reads its own rows of
 * the global batch, so R ranks see exactly the rows, in the same order,
 * that one process with the whole batch sees. out: (n, T+1). */
int gpt_data_train_batch_part(const gpt_data *d, uint64_t rng[4], int B, int first, int n, int T,
                              int *out, gpt_error *err);
/* Number of validation batches of (B, T+1) tokens: consecutive windows,
 * T tokens apart, so that every validation token is predicted once. */
size_t gpt_data_val_batches(const gpt_data *d, int B, int T);
int gpt_data_val_batch(const gpt_data *d, size_t i, int B, int T, int *out, gpt_error *err);

#ifdef __cplusplus
}
#endif
#endif
