/*
 * train_util.c - the sample gpt train prints at the end of a run, streamed
 * through the KV cache.
 */
#include "train_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Temperature + top-k sampling from logits (V). */
static int sample_topk(const float *logits, int V, float temp, int k, gpt_rng *r, float *probs,
                       int *idx) {
    for (int i = 0; i < V; i++) idx[i] = i;
    if (k > V) k = V;
    /* Partial selection of the k largest. */
    for (int i = 0; i < k; i++) {
        int best = i;
        for (int j = i + 1; j < V; j++)
            if (logits[idx[j]] > logits[idx[best]]) best = j;
        int t = idx[i];
        idx[i] = idx[best];
        idx[best] = t;
    }
    float maxv = logits[idx[0]], sum = 0;
    for (int i = 0; i < k; i++) sum += probs[i] = expf((logits[idx[i]] - maxv) / temp);
    float u = gpt_rng_float(r) * sum;
    for (int i = 0; i < k; i++) {
        u -= probs[i];
        if (u <= 0) return idx[i];
    }
    return idx[k - 1];
}

int train_print_sample(gpt_model *m, const gpt_tokenizer *tok, const char *prompt, int n,
                       uint64_t seed, gpt_error *err) {
    const gpt_config *c = gpt_model_config(m);
    int *ids = NULL;
    size_t np = 0;
    int rc = gpt_tokenizer_encode(tok, prompt, strlen(prompt), 0, &ids, &np, err);
    if (rc) return rc;
    if (np == 0) {
        free(ids);
        return gpt_fail(err, GPT_ERR_INVALID, "the sample prompt encodes to no tokens");
    }
    int ctx = c->max_seq_len;
    if ((int)np >= ctx) {
        memmove(ids, ids + np - (size_t)(ctx / 2), (size_t)(ctx / 2) * sizeof(int));
        np = (size_t)(ctx / 2);
    }
    if (n > ctx - (int)np) n = ctx - (int)np;
    float *logits = malloc((size_t)c->vocab_size * sizeof(float) * 2);
    int *idx = malloc((size_t)c->vocab_size * sizeof(int));
    if (!logits || !idx) {
        free(ids);
        free(logits);
        free(idx);
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    }
    gpt_rng r;
    gpt_rng_seed(&r, seed);
    int len = (int)np;
    const int *prompts[1] = {ids};
    rc = gpt_kv_begin(m, 1, ctx, err);
    if (!rc) rc = gpt_kv_prefill(m, prompts, &len, logits, err);
    printf("--- sample ---\n%s", prompt);
    for (int i = 0; i < n && !rc; i++) {
        int next = sample_topk(logits, c->vocab_size, 0.8f, 40, &r, logits + c->vocab_size, idx);
        size_t tl;
        const char *bytes = gpt_tokenizer_token(tok, next, &tl);
        if (bytes) fwrite(bytes, 1, tl, stdout);
        fflush(stdout);
        if (i + 1 < n) rc = gpt_kv_decode(m, &next, logits, err);
    }
    printf("\n--- end of sample ---\n");
    free(ids);
    free(logits);
    free(idx);
    return rc;
}
