/* hf.c - Hugging Face GPT-2 checkpoints (placeholder until issue 4 lands). */
#include <string.h>

#include "hf.h"
#include "util.h"

int gpt_hf_is_checkpoint(const char *path) {
    size_t n = strlen(path);
    return n > 12 && !strcmp(path + n - 12, ".safetensors");
}

int gpt_hf_load(gpt_model **out, const char *path, const gpt_runtime *rt, gpt_error *err) {
    *out = NULL;
    return gpt_fail(err, GPT_ERR_INVALID, "'%s': Hugging Face checkpoints are not supported yet",
                    path);
}

int gpt_hf_save(gpt_model *m, const char *dir, gpt_error *err) {
    return gpt_fail(err, GPT_ERR_INVALID, "Hugging Face export is not supported yet");
}
