/*
 * test_cuda_model.c - the whole model on CUDA against the CPU (the shared
 * checks and their tolerances: model_cases.h), in fp32 and bf16, on two
 * shapes: odd sizes that take the generic attention (C=100, 5 heads of 20,
 * V=1000) and head size 64 (the tensor-core attention), T=37 in both; the
 * decoding checks also on C=256 (4 heads of 64, the tensor-core small-N
 * products); and CUDA's decoding-step variants.
 */
#include "model_cases.h"

/* A variant of the bf16 decoding step against the default one, on two
 * models with the same parameters: logits of the prefill and of every
 * decoding step, and the greedy ids the variant feeds back. The variant is
 * chosen by setting the environment variables in env (NULL-terminated) to
 * 1 while its model is made: the step without the folded products
 * (GPT_CUDA_NO_FOLD: a separate layernorm before qkv, fc and the head, a
 * separate residual add after proj and fc2). Both paths round every op's
 * output to bf16 but sum in different orders, so an activation may differ
 * by one bf16 step (2^-8 relative) here and there; through L layers that
 * stays well under the 1e-2 relative L2 used for bf16 logits elsewhere in
 * this file. */
static void check_variant(const shape *s, int B, const char *what, const char *const *env) {
    gpt_error err;
    test_begin("%s, batch %d: %s matches the default bf16 decoding step", s->name, B, what);
    enum { CTX = 40, STEPS = 9 };
    gpt_model *ops = make(s, "cuda", GPT_PREC_BF16, &err);
    EXPECT(ops != NULL, "%s", err.msg);
    for (int i = 0; env[i]; i++) setenv(env[i], "1", 1);
    gpt_model *var = ops ? make(s, "cuda", GPT_PREC_BF16, &err) : NULL;
    for (int i = 0; env[i]; i++) unsetenv(env[i]);
    EXPECT(var != NULL, "%s", err.msg);
    if (!ops || !var) {
        gpt_model_free(ops), gpt_model_free(var);
        test_end();
        return;
    }
    int V = s->V, *lens = malloc((size_t)B * sizeof(int));
    int *seq = random_tokens((size_t)B * CTX, V, 31);
    const int **prompts = malloc((size_t)B * sizeof(int *));
    for (int b = 0; b < B; b++) lens[b] = 1 + (b * 7) % 13, prompts[b] = seq + (size_t)b * CTX;
    float *la = malloc((size_t)B * V * sizeof(float)), *lb = malloc((size_t)B * V * sizeof(float));
    int *cur = malloc((size_t)B * sizeof(int)), *ids = malloc((size_t)B * STEPS * sizeof(int));
    EXPECT(gpt_kv_begin(ops, B, CTX, &err) == 0 && gpt_kv_begin(var, B, CTX, &err) == 0, "%s", err.msg);
    EXPECT(gpt_kv_prefill(ops, prompts, lens, la, &err) == 0, "%s", err.msg);
    EXPECT(gpt_kv_prefill(var, prompts, lens, lb, &err) == 0, "%s", err.msg);
    for (int b = 0; b < B; b++) cur[b] = host_argmax(la + (size_t)b * V, V);
    /* the same tokens into both, each step's logits compared */
    for (int k = 0; k < STEPS && !test_case_failed_; k++) {
        EXPECT(gpt_kv_decode(ops, cur, la, &err) == 0, "%s", err.msg);
        EXPECT(gpt_kv_decode(var, cur, lb, &err) == 0, "%s: %s", what, err.msg);
        double e = test_rel_l2(lb, la, (size_t)B * V);
        EXPECT(e <= 1e-2, "step %d: logits rel L2 %.3g", k, e);
        for (int b = 0; b < B; b++) cur[b] = host_argmax(la + (size_t)b * V, V);
    }
    /* greedy on the device through the variant: the ids are the host
     * argmax of the logits the same step produces */
    if (!test_case_failed_) {
        int *first = malloc((size_t)B * sizeof(int));
        host_greedy(var, B, CTX, prompts, lens, V, STEPS, lb, first, ids);
        int *got = malloc((size_t)B * STEPS * sizeof(int));
        EXPECT(gpt_kv_begin(var, B, CTX, &err) == 0, "%s", err.msg);
        EXPECT(gpt_kv_prefill(var, prompts, lens, lb, &err) == 0, "%s", err.msg);
        EXPECT(gpt_kv_decode_greedy(var, first, STEPS, got, &err) == 0, "%s", err.msg);
        int same = 0;
        while (same < B * STEPS && got[same] == ids[same]) same++;
        EXPECT(same == B * STEPS, "device greedy ids differ from step %d (row %d)", same / B, same % B);
        free(got), free(first);
    }
    test_end();
    free(lens), free(seq), free(prompts), free(la), free(lb), free(cur), free(ids);
    gpt_model_free(ops), gpt_model_free(var);
}

int main(void) {
    gpt_error err;
    if (!gpt_backend_available("cuda")) {
        printf("no CUDA device: nothing to test\n");
        return test_summary();
    }
    (void)err;
    static const shape shapes[] = {{"odd (C=100, 5 heads, V=1000)", 1000, 64, 2, 5, 100},
                                   {"head size 64 (C=128, 2 heads, V=1000)", 1000, 64, 2, 2, 128},
                                   {"decoding (C=256, 4 heads, V=1000)", 1000, 64, 2, 4, 256}};
    /* GPT_TEST_DECODE_ONLY=1: the decoding checks alone (the sanitizer runs) */
    const char *d = getenv("GPT_TEST_DECODE_ONLY");
    int decode_only = d && atoi(d);
    for (int i = 0; i < 3; i++)
        for (int p = 0; p < 2; p++) {
            int prec = p ? GPT_PREC_BF16 : GPT_PREC_FP32;
            if (i < 2 && !decode_only) check_training(&shapes[i], prec);
            check_kv(&shapes[i], prec);
            check_greedy(&shapes[i], prec);
        }
    /* the folded products (the default) against the separate ops: head
     * sizes 32, 64 and 128, one and two 8-row batch tiles, three layers,
     * odd vocabularies, C = 96 (3 k blocks, fewer than the 4 warps), 320
     * and 256 */
    static const shape vshapes[] = {{"decoding (C=96, 3 heads of 32, V=1000)", 1000, 64, 3, 3, 96},
                                    {"decoding (C=320, 5 heads of 64, V=1003)", 1003, 64, 3, 5, 320},
                                    {"decoding (C=256, 2 heads of 128, V=1000)", 1000, 64, 2, 2, 256}};
    static const char *const nofold_env[] = {"GPT_CUDA_NO_FOLD", NULL};
    for (int i = 0; i < 3; i++) {
        check_variant(&vshapes[i], 1, "the unfolded step", nofold_env);
        check_variant(&vshapes[i], 3, "the unfolded step", nofold_env);
        check_variant(&vshapes[i], 16, "the unfolded step", nofold_env);
    }
    return test_summary();
}

