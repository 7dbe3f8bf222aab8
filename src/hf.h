/*
 * hf.h - Hugging Face GPT-2 checkpoints: model.safetensors + config.json.
 */
#ifndef GPT_HF_H
#define GPT_HF_H

#include "gpt.h"

/* 1 if path looks like a Hugging Face checkpoint: a folder holding
 * model.safetensors, or a file ending in .safetensors. */
int gpt_hf_is_checkpoint(const char *path);
/* Loads a GPT2LMHeadModel (F32, F16 or BF16 tensors) into a new model. */
int gpt_hf_load(gpt_model **out, const char *path, const gpt_runtime *rt, gpt_error *err);
/* Writes dir/model.safetensors and dir/config.json that transformers'
 * GPT2LMHeadModel.from_pretrained loads. */
int gpt_hf_save(gpt_model *m, const char *dir, gpt_error *err);

#endif
