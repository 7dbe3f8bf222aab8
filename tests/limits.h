/*
 * limits.h - the sizes where the original design broke (layernorm kernels
 * limited to 1,024 channels, MLP to 2,048, sequences to 1,024), shared by
 * tests/test_limits.c (CPU) and tests/gpu/test_limits_cuda.c (CUDA, bf16
 * and fp32): C = 1,044 (not a power of two), 9 heads of 116, F = 4,176,
 * T = 1,100, the bytes vocabulary (V = 256).
 *
 * Each run trains a few steps on one fixed batch of Tiny Shakespeare (the
 * loss must stay finite and go down: the same batch again and again is
 * learned), then checks the KV cache beyond position 1,024: the logits of
 * the last position decoded one token at a time after a 1,099-token
 * prefill must match a full forward pass over the 1,100 tokens.
 */
#ifndef GPT_TEST_LIMITS_H
#define GPT_TEST_LIMITS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt.h"

enum { LIM_V = 256, LIM_T = 1100, LIM_C = 1044, LIM_NH = 9, LIM_F = 4176 };

static inline gpt_config limits_config(int layers) {
    gpt_config c = {LIM_V, 0, LIM_T, layers, LIM_NH, LIM_C, LIM_F, 0};
    return c;
}

/* LIM_T + 1 byte ids from the start of the Tiny Shakespeare text. */
static inline int limits_tokens(int *tok) {
    FILE *f = fopen("data/tinyshakespeare.txt", "rb");
    if (!f) return 0;
    int n = 0, ch;
    while (n < LIM_T + 1 && (ch = fgetc(f)) != EOF) tok[n++] = ch;
    fclose(f);
    return n == LIM_T + 1;
}

/* max |a - b| / rms(b): logits are C-term dot products whose rounding is
 * set by the terms, so errors are measured against the row's scale. */
static inline double limits_err_to_scale(const float *a, const float *b, size_t n) {
    double worst = 0, ss = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= worst)) worst = d; /* NaN propagates */
        ss += (double)b[i] * (double)b[i];
    }
    return worst / (sqrt(ss / (double)n) + 1e-30);
}

/* Trains `steps` steps (B = 1, T = LIM_T, AdamW at 3e-4, no warmup) on
 * the fixed batch; losses[s] gets each step's loss. */
static inline int limits_train(gpt_model *m, const int *tok, int steps, float *losses, gpt_error *err) {
    gpt_train_opts o;
    gpt_train_opts_default(&o);
    o.batch_size = 1;
    o.seq_len = LIM_T;
    o.max_steps = steps;
    o.lr = o.min_lr = 3e-4f;
    int rc = gpt_train_init(m, &o, err);
    for (int s = 0; !rc && s < steps; s++) {
        gpt_step_info info;
        rc = gpt_train_step(m, tok, &info, err);
        losses[s] = info.skipped ? NAN : info.loss;
    }
    return rc;
}

/* The KV-cache logits at position LIM_T - 1 (prefill of LIM_T - 1 tokens,
 * then one decode step) against a full forward pass: *err_out gets
 * metric(kv logits, full-pass logits, V). */
static inline int limits_kv_vs_full(gpt_model *m, const int *tok,
                                    double (*metric)(const float *, const float *, size_t),
                                    double *err_out, gpt_error *err) {
    float *full = malloc((size_t)LIM_T * LIM_V * sizeof *full);
    float *kv = malloc((size_t)LIM_V * sizeof *kv);
    int rc = full && kv ? GPT_OK : GPT_ERR_NOMEM;
    if (!rc) rc = gpt_forward_logits(m, tok, 1, LIM_T, full, err);
    const int *rows[1] = {tok};
    int len = LIM_T - 1;
    if (!rc) rc = gpt_kv_begin(m, 1, LIM_T, err);
    if (!rc) rc = gpt_kv_prefill(m, rows, &len, kv, err);
    if (!rc) rc = gpt_kv_decode(m, tok + LIM_T - 1, kv, err);
    if (!rc) *err_out = metric(kv, full + (size_t)(LIM_T - 1) * LIM_V, LIM_V);
    free(full);
    free(kv);
    return rc;
}

#endif
