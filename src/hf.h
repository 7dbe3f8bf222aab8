/*
 * hf.h - Hugging Face GPT-2 checkpoints: model.safetensors + config.json, and
 * the tokenizer files beside them.
 */
#ifndef GPT_HF_H
#define GPT_HF_H

#include "gpt.h"
#include "gpt_tokenizer.h"

/* 1 if path looks like a Hugging Face checkpoint: a folder holding
 * model.safetensors or config.json (or a sharded index, which loading
 * refuses by name), or a file ending in .safetensors. */
int gpt_hf_is_checkpoint(const char *path);
/* Loads a GPT2LMHeadModel (F32, F16 or BF16 tensors) into a new model. */
int gpt_hf_load(gpt_model **out, const char *path, const gpt_runtime *rt, gpt_error *err);
/* Writing: gpt_model_save_hf (gpt.h). */

/* A file of a Hugging Face folder, made in memory before it is written. */
typedef struct {
    const char *name; /* "vocab.json" */
    char *data;       /* malloc'd */
    size_t len;
} hf_file;

/* The tokenizer files of a Hugging Face GPT-2 folder, in GPT2Tokenizer's
 * format, for tokenizer t and a model of max_len positions
 * (src/tokenizer/tok_hf.c): vocab.json (token text -> id, bytes written
 * through GPT-2's byte-to-character map, special tokens as they are),
 * merges.txt (the merges in rank order), tokenizer_config.json (the class,
 * the context, <|endoftext|> as bos/eos/unk when there is one) and
 * generation_config.json. Our ids are kept: byte b is the id
 * byte_id[b], merge r is 256 + r. GPT_ERR_INVALID when two tokens have the
 * same bytes (vocab.json could not tell them apart). */
enum { HF_TOKENIZER_FILES = 4 };
int hf_tokenizer_files(const gpt_tokenizer *t, int max_len, hf_file files[HF_TOKENIZER_FILES],
                       gpt_error *err);

/* ------------------------------------------------ reading without a model
 * A parsed checkpoint: the configuration from config.json and, for each of
 * our parameter tensors (names and layouts as in gpt_model_tensor), where
 * its Hugging Face counterpart lies in model.safetensors. Parsing checks
 * everything that loading will rely on: the container (safetensors.h), the
 * config fields, every expected tensor present with the right shape and a
 * readable dtype (F32, F16, BF16), no unexpected tensor, and lm_head.weight
 * absent or equal to wte. Messages name the file and the tensor. */
typedef struct gpt_hf_file gpt_hf_file;

/* Parses config.json text and a model.safetensors image in memory. st must
 * stay valid until gpt_hf_close (tensor bytes are read in place). */
int gpt_hf_parse_memory(gpt_hf_file **out, const char *config, size_t config_len,
                        const void *st, size_t st_len, gpt_error *err);
/* Opens a checkpoint folder (or a .safetensors file beside its
 * config.json); the safetensors file is memory-mapped read-only. */
int gpt_hf_open(gpt_hf_file **out, const char *path, gpt_error *err);
void gpt_hf_close(gpt_hf_file *f);

/* The resolved configuration (padded vocabulary as gpt_config_resolve). */
const gpt_config *gpt_hf_config(const gpt_hf_file *f);
/* Our tensors, in GPT-2's parameter order; index by name or -1. */
int gpt_hf_num_tensors(const gpt_hf_file *f);
const gpt_tensor_info *gpt_hf_tensor(const gpt_hf_file *f, int i);
int gpt_hf_find(const gpt_hf_file *f, const char *name);
/* Tensor i as fp32 in our layout (numel floats): Conv1D weights (in, out)
 * transposed to (out, in), wte padded with zero rows to Vp. */
void gpt_hf_read(const gpt_hf_file *f, int i, float *dst);

#endif
