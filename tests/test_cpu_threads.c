/*
 * test_cpu_threads.c - the CPU backend gives bitwise the same training run
 * whatever its thread count. Its pool hands out independent tasks (each
 * writes its own outputs) and reduces across rows over a fixed number of
 * chunks, so neither which thread runs a task nor how many threads there
 * are may change a bit; a reduction whose order followed the threads, or a
 * race between tasks, shows up here. Three AdamW steps and the logits
 * after them, in fp32 and bf16, with 1, 2, 3 and 5 threads (more threads
 * than cores is fine: the tasks are the same). Then KV-cache decoding
 * (the few-rows products, attention over the cache, int8 weights too):
 * the logits of a prefill and several decode steps, batch 1 and 3.
 */
#include <stdlib.h>
#include <string.h>

#include "gpt.h"
#include "test.h"
#include "util.h"

enum { B = 4, T = 32, V = 300, STEPS = 3 };

static char g_desc[256]; /* the last model's device line: names the products' kernel */

/* The test's model on the CPU backend with this many threads. */
static gpt_model *make_model(int threads, int precision, uint64_t seed, gpt_error *err) {
    gpt_config cfg = {V, 0, T, 2, 4, 64, 0, 0};
    gpt_runtime rt = {0};
    rt.device = "cpu";
    rt.threads = threads;
    rt.precision = precision;
    gpt_model *m;
    return gpt_model_create(&m, &cfg, &rt, seed, err) ? NULL : m;
}

/* Trains STEPS steps from seed 5 and returns every parameter, then the
 * logits of the first batch, in one malloc'd array (*n floats). */
static float *run(int threads, int precision, size_t *n, gpt_error *err) {
    gpt_model *m = make_model(threads, precision, 5, err);
    if (!m) return NULL;
    snprintf(g_desc, sizeof g_desc, "%s", gpt_model_device_desc(m));
    gpt_train_opts o;
    gpt_train_opts_default(&o);
    o.batch_size = B;
    o.seq_len = T;
    o.warmup_steps = 1;
    float *out = NULL;
    int *tok = malloc((size_t)STEPS * B * (T + 1) * sizeof(int));
    gpt_rng r;
    gpt_rng_seed(&r, 11);
    for (int i = 0; i < STEPS * B * (T + 1); i++) tok[i] = (int)gpt_rng_below(&r, V);
    int rc = gpt_train_init(m, &o, err);
    for (int s = 0; !rc && s < STEPS; s++) {
        gpt_step_info info;
        rc = gpt_train_step(m, tok + (size_t)s * B * (T + 1), &info, err);
    }
    size_t np = 0;
    for (int i = 0; i < gpt_model_num_tensors(m); i++) np += gpt_model_tensor(m, i)->numel;
    *n = np + (size_t)B * T * V;
    out = rc ? NULL : malloc(*n * sizeof(float));
    size_t at = 0;
    for (int i = 0; out && !rc && i < gpt_model_num_tensors(m); i++) {
        rc = gpt_model_get_tensor(m, i, out + at, err);
        at += gpt_model_tensor(m, i)->numel;
    }
    int *in = malloc((size_t)B * T * sizeof(int));
    for (int b = 0; b < B; b++) memcpy(in + b * T, tok + b * (T + 1), T * sizeof(int));
    if (out && !rc) rc = gpt_forward_logits(m, in, B, T, out + at, err);
    free(in);
    free(tok);
    gpt_model_free(m);
    if (rc) {
        free(out);
        return NULL;
    }
    return out;
}

/* Logits (DSTEPS + 1, rows, V) of a prefill and DSTEPS decode steps, from
 * seed 7's weights (int8 when quant), in one malloc'd array. */
static float *decode_run(int threads, int rows, int quant, size_t *n, gpt_error *err) {
    enum { DSTEPS = 4 };
    gpt_model *m = make_model(threads, GPT_PREC_FP32, 7, err);
    if (!m) return NULL;
    *n = (size_t)(DSTEPS + 1) * rows * V;
    float *out = malloc(*n * sizeof(float));
    int rc = !out || (quant && gpt_model_quantize(m, GPT_QUANT_INT8, err));
    int prompts[3][9], lens[3] = {9, 2, 5}, tok[3];
    const int *pp[3] = {prompts[0], prompts[1], prompts[2]};
    for (int b = 0; b < 3; b++)
        for (int t = 0; t < 9; t++) prompts[b][t] = (t * 37 + b * 101 + 3) % V;
    rc = rc || gpt_kv_begin(m, rows, T, err) || gpt_kv_prefill(m, pp, lens, out, err);
    for (int s = 0; !rc && s < DSTEPS; s++) {
        for (int b = 0; b < rows; b++) tok[b] = (s * 53 + b * 7 + 1) % V;
        rc = gpt_kv_decode(m, tok, out + (size_t)(s + 1) * rows * V, err);
    }
    gpt_model_free(m);
    if (rc) {
        free(out);
        return NULL;
    }
    return out;
}

static void decode_threads(void) {
    gpt_error err = {0};
    for (int quant = 0; quant < 2; quant++)
        for (int rows = 1; rows <= 3; rows += 2) {
            size_t n1 = 0;
            float *ref = decode_run(1, rows, quant, &n1, &err);
            int counts[2] = {2, 3};
            for (int c = 0; c < 2; c++) {
                test_begin("KV decoding, %s weights, batch %d: %d threads bitwise as 1",
                           quant ? "int8" : "fp32", rows, counts[c]);
                size_t n = 0;
                float *got = ref ? decode_run(counts[c], rows, quant, &n, &err) : NULL;
                EXPECT(ref && got, "%s", err.msg);
                size_t diff = 0;
                for (size_t i = 0; got && i < n; i++) diff += memcmp(got + i, ref + i, 4) != 0;
                EXPECT(got && n == n1 && diff == 0, "%zu of %zu logits differ", diff, n);
                test_end();
                free(got);
            }
            free(ref);
        }
}

int main(void) {
    gpt_error err = {0};
    int precs[2] = {GPT_PREC_FP32, GPT_PREC_BF16};
    for (int p = 0; p < 2; p++) {
        size_t n1 = 0;
        float *ref = run(1, precs[p], &n1, &err);
        test_begin("%s, 1 thread: three training steps", p ? "bf16" : "fp32");
        EXPECT(ref != NULL, "%s", err.msg);
        test_end();
        printf("# %s: %s\n", p ? "bf16" : "fp32", g_desc);
        if (p) test_require_amx("test_cpu_threads' bf16 runs", g_desc);
        int counts[3] = {2, 3, 5};
        for (int c = 0; ref && c < 3; c++) {
            size_t n = 0;
            test_begin("%s, %d threads: parameters and logits bitwise as with 1 thread",
                       p ? "bf16" : "fp32", counts[c]);
            float *got = run(counts[c], precs[p], &n, &err);
            EXPECT(got != NULL, "%s", err.msg);
            size_t diff = 0, first = 0;
            for (size_t i = 0; got && i < n; i++)
                if (memcmp(got + i, ref + i, 4) && !diff++) first = i;
            EXPECT(got && n == n1 && diff == 0, "%zu of %zu values differ (first at %zu)", diff, n,
                   first);
            test_end();
            free(got);
        }
        free(ref);
    }
    decode_threads();
    return test_summary();
}
