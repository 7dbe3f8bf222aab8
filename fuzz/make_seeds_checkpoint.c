/*
 * make_seeds_checkpoint.c - writes the seed corpus of fuzz_checkpoint: tiny
 * checkpoints through the library's own writer, one for each part of the
 * format (plain weights; trainer state; optimizer moments; a tokenizer file
 * carried inside; two layers; an int8 model, version 2).
 *
 *   make && cc -std=c11 -Iinclude fuzz/make_seeds_checkpoint.c build/libgpt.a \
 *       -fopenmp -lm $(pkg-config --libs openblas) -o build/make_seeds_checkpoint
 *   build/make_seeds_checkpoint fuzz/corpus/fuzz_checkpoint
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt.h"
#include "gpt_tokenizer.h"

static void die(const char *what, const gpt_error *err) {
    fprintf(stderr, "make_seeds_checkpoint: %s: %s\n", what, err->msg);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds_checkpoint DIR\n");
        return 2;
    }
    char p[512];
    gpt_error err = {0};
    gpt_runtime rt = {.device = "cpu", .precision = GPT_PREC_FP32, .threads = 1};
    /* V=3 with no padding rows, maxT=2, C=2, F=2: a few dozen floats. */
    gpt_config one = {3, 3, 2, 1, 1, 2, 2, 0}, two = {5, 8, 3, 2, 2, 4, 3, 0};
    gpt_train_opts o;
    gpt_train_opts_default(&o);
    o.batch_size = 1;
    o.seq_len = 2;
    o.max_steps = 10;
    gpt_train_state st = {1, o, {1, 2, 3, 4}, 6, 1.5f};
    gpt_model *m;

    if (gpt_model_create(&m, &one, &rt, 1, &err)) die("create", &err);
    snprintf(p, sizeof p, "%s/weights_only", argv[1]);
    if (gpt_checkpoint_save(m, p, 0, NULL, &err)) die(p, &err);
    snprintf(p, sizeof p, "%s/trainer_state", argv[1]);
    if (gpt_checkpoint_save(m, p, 0, &st, &err)) die(p, &err);
    int tok[2 * 3] = {0, 1, 2, 2, 1, 0};
    gpt_step_info info;
    if (gpt_train_init(m, &o, &err) || gpt_train_step(m, tok, &info, &err)) die("train", &err);
    snprintf(p, sizeof p, "%s/optimizer", argv[1]);
    if (gpt_checkpoint_save(m, p, 1, &st, &err)) die(p, &err);
    snprintf(p, sizeof p, "%s/optimizer_no_state", argv[1]);
    if (gpt_checkpoint_save(m, p, 1, NULL, &err)) die(p, &err);
    gpt_model_free(m);

    /* A trained tokenizer travels inside the checkpoint (flag 4). */
    gpt_tokenizer *t;
    const char text[] = "abab abab abc";
    if (gpt_tokenizer_train(&t, text, sizeof text - 1, 259, NULL, NULL, &err)) die("tok", &err);
    void *blob;
    size_t blen;
    if (gpt_tokenizer_serialize(t, &blob, &blen, &err)) die("serialize", &err);
    gpt_tokenizer_free(t);
    if (gpt_model_create(&m, &two, &rt, 2, &err)) die("create", &err);
    if (gpt_model_set_tokenizer(m, "shk.tok", blob, blen, &err)) die("set_tokenizer", &err);
    free(blob);
    snprintf(p, sizeof p, "%s/two_layers_tokenizer", argv[1]);
    if (gpt_checkpoint_save(m, p, 0, &st, &err)) die(p, &err);
    /* int8: a dtype per tensor, the matrices and wte in quant.h's layout */
    if (gpt_model_quantize(m, GPT_QUANT_INT8, &err)) die("quantize", &err);
    snprintf(p, sizeof p, "%s/int8", argv[1]);
    if (gpt_checkpoint_save(m, p, 0, NULL, &err)) die(p, &err);
    gpt_model_free(m);
    return 0;
}
