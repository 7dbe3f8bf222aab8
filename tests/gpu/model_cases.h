/*
 * model_cases.h - the whole model on a GPU backend against the CPU, through
 * the public API, shared by tests/gpu/test_cuda_model.c and
 * tests/vulkan/test_vulkan_model.c (each sets GPU to its device string and
 * runs the checks in main): one training step's loss and every parameter
 * gradient, ten AdamW steps (losses, gradient norms, final parameters), at
 * most one host wait per training step, KV-cache decoding against a full
 * forward pass on the GPU, and greedy decoding on the device against
 * greedy decoding with the host's argmax (the CPU backend in fp32, the
 * same GPU model step by step in half precision).
 *
 * Tolerances (relative L2 over a tensor, or relative for a scalar):
 *   fp32 1e-4: the device computes in fp32 like the CPU, in a different
 *     summation order; across two layers forward and backward that moves
 *     results by ~1e-6..1e-5.
 *   bf16: activations are rounded to bf16 after every op (~12 roundings per
 *     layer on the backward path, each ~2^-9 relative RMS, roughly
 *     independent): sqrt(24) * 2^-9 ~ 1e-2 for gradients of two layers, so
 *     3e-2; logits and losses pass through half as many roundings, 1e-2.
 *     Parameters after ten steps are compared by how far they moved: the
 *     difference between the two runs relative to the CPU run's change
 *     ||p_gpu - p_cpu|| / ||p_cpu - p_start||. AdamW divides each
 *     gradient by its own running RMS, so a ~1e-2 relative gradient error
 *     becomes a ~1e-2 error of the step for elements whose gradient stands
 *     above the rounding noise, and an O(1) error for the few whose
 *     gradient is of the order of that noise (biases that start at zero
 *     and get tiny gradients); over whole tensors this was measured at up
 *     to 0.06 (zero-initialised layernorm and attention biases, H100), so
 *     0.15. In fp32 the parameters themselves agree to 1e-4.
 *   fp16: the same count of roundings at fp16's 2^-12 relative RMS, 8x
 *     finer than bf16: sqrt(24) * 2^-12 ~ 1.2e-3 for gradients, so 5e-3;
 *     logits and losses 2e-3. The fp16 backward runs loss-scaled (the
 *     Vulkan backend's scale starts at 65536), so gradients that bf16 keeps
 *     by range fp16 keeps by scaling; the parameters after ten steps are
 *     held to the bf16 bound (0.15 of the change): the noise-level
 *     elements behave the same way.
 */
#ifndef GPT_TEST_MODEL_CASES_H
#define GPT_TEST_MODEL_CASES_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../test.h"
#include "gpt.h"
#include "model.h"

/* The device under test: "cuda", "vulkan", ... (set by main). */
static const char *GPU = "cuda";

static const char *prec_name(int precision) {
    return precision == GPT_PREC_FP32 ? "fp32" : precision == GPT_PREC_FP16 ? "fp16" : "bf16";
}

#include "model.h"

typedef struct {
    const char *name;
    int V, maxT, L, NH, C;
} shape;

static gpt_model *make(const shape *s, const char *device, int precision, gpt_error *err) {
    gpt_config cfg = {s->V, 0, s->maxT, s->L, s->NH, s->C, 0, 0};
    gpt_runtime rt = {0};
    rt.device = device;
    rt.precision = precision;
    gpt_model *m = NULL;
    if (gpt_model_create(&m, &cfg, &rt, 42, err)) return NULL;
    return m;
}

/* Copies every parameter of a into b (the CPU model's are the reference). */
static int copy_params(gpt_model *a, gpt_model *b, gpt_error *err) {
    for (int i = 0; i < gpt_model_num_tensors(a); i++) {
        const gpt_tensor_info *t = gpt_model_tensor(a, i);
        float *buf = malloc(t->numel * sizeof(float));
        int rc = gpt_model_get_tensor(a, i, buf, err) || gpt_model_set_tensor(b, i, buf, err);
        free(buf);
        if (rc) return 1;
    }
    return 0;
}

static float *grad_of(gpt_model *m, int i) {
    const gpt_tensor_info *t = gpt_model_tensor(m, i);
    float *h = malloc(t->numel * sizeof(float));
    m->be->ops->download(m->be, h, gpt_at(m, m->grads, m->toff[i], GPT_CLS_GRAD), t->numel,
                         GPT_CLS_GRAD);
    return h;
}

static void opts_for(gpt_train_opts *o, int B, int T) {
    gpt_train_opts_default(o);
    o->batch_size = B;
    o->seq_len = T;
    o->max_steps = 1000;
    o->lr = 1e-3f;
    o->min_lr = 1e-3f;
    o->warmup_steps = 0;
    o->grad_clip = 1.0f;
}

static int *random_tokens(size_t n, int V, uint64_t seed) {
    int *t = malloc(n * sizeof(int));
    uint64_t x = seed;
    for (size_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        t[i] = (int)((x >> 33) % (uint64_t)V);
    }
    return t;
}

static void check_training(const shape *s, int precision) {
    const char *pn = prec_name(precision);
    double tol_g = precision == GPT_PREC_FP32 ? 1e-4 : precision == GPT_PREC_FP16 ? 5e-3 : 3e-2;
    double tol_l = precision == GPT_PREC_FP32 ? 1e-4 : precision == GPT_PREC_FP16 ? 2e-3 : 1e-2;
    gpt_error err;
    int B = 2, T = 37, accum = 2;
    gpt_model *cpu = make(s, "cpu", GPT_PREC_FP32, &err), *gpu = NULL;
    test_begin("%s %s: build the model on cpu and %s", s->name, pn, GPU);
    EXPECT(cpu != NULL, "cpu: %s", err.msg);
    if (cpu) gpu = make(s, GPU, precision, &err);
    EXPECT(gpu != NULL, "%s: %s", GPU, err.msg);
    if (gpu) {
        EXPECT(copy_params(cpu, gpu, &err) == 0, "%s", err.msg);
        EXPECT(!strcmp(gpt_model_precision(gpu), pn), "precision %s", gpt_model_precision(gpu));
    }
    test_end();
    if (!cpu || !gpu) {
        gpt_model_free(cpu);
        gpt_model_free(gpu);
        return;
    }
    gpt_train_opts o;
    opts_for(&o, B, T);
    o.grad_accum = accum;
    size_t per = (size_t)accum * B * (T + 1);
    int *tok = random_tokens(per * 10, s->V, 7);

    test_begin("%s %s: forward + backward: loss and every gradient", s->name, pn);
    float lc = 0, lg = 0;
    EXPECT(gpt_train_init(cpu, &o, &err) == 0, "cpu init: %s", err.msg);
    EXPECT(gpt_train_init(gpu, &o, &err) == 0, "%s init: %s", GPU, err.msg);
    EXPECT(gpt_train_grads(cpu, tok, &lc, &err) == 0, "cpu: %s", err.msg);
    EXPECT(gpt_train_grads(gpu, tok, &lg, &err) == 0, "%s: %s", GPU, err.msg);
    EXPECT(fabsf(lg - lc) <= tol_l * fabsf(lc), "loss %.7f vs cpu %.7f", lg, lc);
    int ntens = gpt_model_num_tensors(cpu);
    float **g0 = calloc((size_t)ntens + 1, sizeof *g0); /* the CPU's first gradients */
    for (int i = 0; i < ntens; i++) {
        const gpt_tensor_info *t = gpt_model_tensor(cpu, i);
        float *a = grad_of(gpu, i), *b = grad_of(cpu, i);
        g0[i] = malloc(t->numel * sizeof(float));
        memcpy(g0[i], b, t->numel * sizeof(float));
        double e = test_rel_l2(a, b, t->numel);
        /* the key bias's true gradient is 0: what both compute is rounding noise */
        size_t len = strlen(t->name);
        if (len > 10 && !strcmp(t->name + len - 10, "attn.qkv.b")) {
            size_t C = t->numel / 3;
            e = test_rel_l2(a, b, C);
            double e2 = test_rel_l2(a + 2 * C, b + 2 * C, C);
            if (e2 > e) e = e2;
        }
        EXPECT(e <= tol_g, "gradient %s: rel L2 %.3g > %.3g", t->name, e, tol_g);
        free(a), free(b);
    }
    test_end();

    test_begin("%s %s: ten AdamW steps (graph replay after the first), one host wait each",
               s->name, pn);
    gpt_model_free(cpu);
    gpt_model_free(gpu);
    cpu = make(s, "cpu", GPT_PREC_FP32, &err);
    gpu = cpu ? make(s, GPU, precision, &err) : NULL;
    int ok = cpu && gpu && !copy_params(cpu, gpu, &err) && !gpt_train_init(cpu, &o, &err) &&
             !gpt_train_init(gpu, &o, &err);
    EXPECT(ok, "%s", err.msg);
    int nt = ok ? gpt_model_num_tensors(cpu) : 0;
    float **start = calloc((size_t)nt + 1, sizeof *start);
    for (int i = 0; i < nt; i++) {
        start[i] = malloc(gpt_model_tensor(cpu, i)->numel * sizeof(float));
        gpt_model_get_tensor(cpu, i, start[i], &err);
    }
    double clip0 = 1; /* step 0's clip factor: AdamW saw g0 scaled by it */
    for (int st = 0; ok && st < 10; st++) {
        gpt_step_info ic, ig;
        long s0 = gpt_backend_sync_count(gpu);
        EXPECT(gpt_train_step(gpu, tok + st * per, &ig, &err) == 0, "%s step %d: %s", GPU, st, err.msg);
        long waits = gpt_backend_sync_count(gpu) - s0;
        EXPECT(waits <= 1, "step %d made %ld host waits", st, waits);
        EXPECT(gpt_train_step(cpu, tok + st * per, &ic, &err) == 0, "cpu step %d: %s", st, err.msg);
        if (st == 0 && o.grad_clip > 0 && ic.grad_norm > o.grad_clip)
            clip0 = o.grad_clip / (ic.grad_norm + 1e-6);
        EXPECT(fabsf(ig.loss - ic.loss) <= tol_l * fabsf(ic.loss), "step %d loss %.7f vs %.7f", st,
               ig.loss, ic.loss);
        EXPECT(fabsf(ig.grad_norm - ic.grad_norm) <= tol_g * ic.grad_norm,
               "step %d norm %.7f vs %.7f", st, ig.grad_norm, ic.grad_norm);
        EXPECT(!ig.skipped, "step %d skipped", st);
    }
    for (int i = 0; ok && i < gpt_model_num_tensors(cpu); i++) {
        const gpt_tensor_info *t = gpt_model_tensor(cpu, i);
        float *a = malloc(t->numel * sizeof(float)), *b = malloc(t->numel * sizeof(float));
        gpt_model_get_tensor(gpu, i, a, &err);
        gpt_model_get_tensor(cpu, i, b, &err);
        size_t len = strlen(t->name), n = t->numel;
        /* the key bias (see above) is left out: its steps are noise on both sides */
        size_t lo = 0, hi = n;
        int kb = len > 10 && !strcmp(t->name + len - 10, "attn.qkv.b");
        double num = 0, den = 0, ref = 0;
        for (size_t j = lo; j < hi; j++) {
            if (kb && j >= n / 3 && j < 2 * (n / 3)) continue;
            double d = (double)a[j] - b[j], u = (double)b[j] - start[i][j];
            num += d * d, den += u * u, ref += (double)b[j] * b[j];
        }
        if (precision == GPT_PREC_FP32) {
            /* AdamW divides each element's step by its own gradient RMS, so
             * a gradient error d (the check above allows about tol_g of the
             * tensor's largest gradient) moves an element by up to
             * lr * d / (sqrt(v_s) + eps) a step, whatever its scale: where
             * the gradient is near the noise (the biases start at 0; a
             * token seen once) the step's sign is noise on both sides and
             * the element may differ by up to 2 lr a step. v_s >= (1 - b2)
             * b2^s g0^2 / (1 - b2^(s+1)) (g0 as AdamW saw it, clipped).
             * Each element: 1e-4 of the tensor's scale plus that sum; the
             * rel L2 over elements whose gradient is far above the noise
             * (|g0| > 100 d) keeps the 1e-4 bound (tests/test_model_ref.c
             * bounds the CPU against PyTorch the same way). */
            double gmax = 0, scale = 0;
            for (size_t j = 0; j < n; j++) {
                double g = fabs(g0[i][j] * clip0), r = fabs((double)b[j]);
                if (g > gmax) gmax = g;
                if (r > scale) scale = r;
            }
            double d = tol_g * gmax + 1e-7, n2 = 0, d2 = 0;
            size_t bad = 0, at = 0;
            double worst = 0, worst_allow = 1;
            for (size_t j = 0; j < n; j++) {
                if (kb && j >= n / 3 && j < 2 * (n / 3)) continue;
                double g = g0[i][j] * clip0, allow = 1e-4 * scale + 1e-7;
                double e = fabs((double)a[j] - b[j]);
                for (int st = 0; st < 10; st++) {
                    double v = (1 - o.beta2) * pow(o.beta2, st) * g * g / (1 - pow(o.beta2, st + 1));
                    double q = d / (sqrt(v) + o.eps);
                    allow += o.lr * (q < 2 ? q : 2);
                }
                if (!(e <= allow)) bad++;
                if (!(e * worst_allow <= worst * allow)) worst = e, worst_allow = allow, at = j;
                if (fabs(g) > 100 * d) n2 += e * e, d2 += (double)b[j] * b[j];
            }
            double l2 = sqrt(n2 / (d2 > 0 ? d2 : 1));
            EXPECT(bad == 0 && l2 <= 1e-4,
                   "%s after ten steps: %zu elements out of bounds, worst [%zu] err %.3g allowed "
                   "%.3g; rel L2 %.3g where the gradient is determined",
                   t->name, bad, at, worst, worst_allow, l2);
            (void)ref;
        } else {
            double e = den > 0 ? sqrt(num / den) : sqrt(num);
            EXPECT(e <= 0.15, "%s after ten steps: difference %.3g of the change", t->name, e);
        }
        free(a), free(b);
    }
    test_end();
    for (int i = 0; i < nt; i++) free(start[i]);
    free(start);
    for (int i = 0; i < ntens; i++) free(g0[i]);
    free(g0);
    free(tok);
    gpt_model_free(cpu);
    gpt_model_free(gpu);
}

/* Greedy decoding with the KV cache (graph replay from the second decode
 * step) against one full forward pass over each final sequence, on the GPU:
 * the logits of every generated position must match. */
static void check_kv(const shape *s, int precision) {
    const char *pn = prec_name(precision);
    double tol = precision == GPT_PREC_FP32 ? 1e-4 : precision == GPT_PREC_FP16 ? 2e-3 : 1e-2;
    gpt_error err;
    test_begin("%s %s: KV-cache prefill + 12 decode steps match full recompute", s->name, pn);
    gpt_model *m = make(s, GPU, precision, &err);
    EXPECT(m != NULL, "%s", err.msg);
    if (!m) {
        test_end();
        return;
    }
    enum { B = 2, CTX = 40, STEPS = 12 };
    int lens[B] = {5, 9}, V = s->V;
    int *seq = random_tokens((size_t)B * CTX, V, 11);
    const int *prompts[B] = {seq, seq + CTX};
    float *kvl = malloc((size_t)(STEPS + 1) * B * V * sizeof(float)); /* (step, b, V) */
    float *full = malloc((size_t)CTX * V * sizeof(float));
    EXPECT(gpt_kv_begin(m, B, CTX, &err) == 0, "%s", err.msg);
    EXPECT(gpt_kv_prefill(m, prompts, lens, kvl, &err) == 0, "%s", err.msg);
    for (int st = 0; st < STEPS && !test_case_failed_; st++) {
        int next[B];
        for (int b = 0; b < B; b++) {
            const float *got = kvl + ((size_t)st * B + b) * V;
            int best = 0;
            for (int j = 1; j < V; j++)
                if (got[j] > got[best]) best = j;
            next[b] = best;
            seq[(size_t)b * CTX + lens[b] + st] = best;
        }
        EXPECT(gpt_kv_decode(m, next, kvl + (size_t)(st + 1) * B * V, &err) == 0, "decode: %s",
               err.msg);
    }
    for (int b = 0; b < B && !test_case_failed_; b++) {
        int n = lens[b] + STEPS;
        EXPECT(gpt_forward_logits(m, seq + (size_t)b * CTX, 1, n, full, &err) == 0, "%s", err.msg);
        for (int st = 0; st <= STEPS; st++) {
            const float *want = full + (size_t)(lens[b] - 1 + st) * V;
            double e = test_rel_l2(kvl + ((size_t)st * B + b) * V, want, (size_t)V);
            EXPECT(e <= tol, "row %d step %d: rel L2 %.3g", b, st, e);
        }
    }
    test_end();
    free(seq), free(kvl), free(full);
    gpt_model_free(m);
}

static int host_argmax(const float *x, int V) {
    int best = 0;
    for (int j = 1; j < V; j++)
        if (x[j] > x[best]) best = j;
    return best;
}

/* Greedy decoding one step at a time with the argmax on the host: begins
 * and prefills m, then writes each row's first id to first (B) and the
 * next steps' ids to ids (steps x B). logits: B x V floats of scratch. */
static void host_greedy(gpt_model *m, int B, int ctx, const int *const *prompts, const int *lens,
                        int V, int steps, float *logits, int *first, int *ids) {
    gpt_error err;
    int *cur = malloc((size_t)B * sizeof(int));
    EXPECT(gpt_kv_begin(m, B, ctx, &err) == 0, "%s", err.msg);
    EXPECT(gpt_kv_prefill(m, prompts, lens, logits, &err) == 0, "%s", err.msg);
    for (int b = 0; b < B; b++) first[b] = cur[b] = host_argmax(logits + (size_t)b * V, V);
    for (int k = 0; k < steps && !test_case_failed_; k++) {
        EXPECT(gpt_kv_decode(m, cur, logits, &err) == 0, "%s", err.msg);
        for (int b = 0; b < B; b++) ids[k * B + b] = cur[b] = host_argmax(logits + (size_t)b * V, V);
    }
    free(cur);
}

/* Greedy decoding on the device (gpt_kv_decode_greedy: argmax, position
 * advance and feedback without the host, in two calls) against greedy
 * decoding with the argmax taken on the host from each step's logits: on
 * the CPU backend (fp32: the ids must be the same), and on the same GPU
 * model step by step (bf16: the same logits bits, so the same ids). Rows
 * have unequal prompts. The first ids also through gpt_kv_prefill_greedy
 * (the device argmax of the prefill). */
static void check_greedy(const shape *s, int precision) {
    const char *pn = prec_name(precision);
    gpt_error err;
    test_begin("%s %s: gpt_kv_decode_greedy on the GPU gives the ids of host-side greedy decoding",
               s->name, pn);
    enum { B = 3, CTX = 48, STEPS = 20 };
    gpt_model *gpu = make(s, GPU, precision, &err), *ref = NULL;
    EXPECT(gpu != NULL, "%s", err.msg);
    if (gpu && precision == GPT_PREC_FP32) {
        ref = make(s, "cpu", GPT_PREC_FP32, &err);
        EXPECT(ref && copy_params(ref, gpu, &err) == 0, "%s", err.msg);
    } else {
        ref = gpu;
    }
    if (!gpu || !ref || test_case_failed_) {
        if (ref != gpu) gpt_model_free(ref);
        gpt_model_free(gpu);
        test_end();
        return;
    }
    int V = s->V, lens[B] = {7, 1, 12};
    int *seq = random_tokens((size_t)B * CTX, V, 21);
    const int *prompts[B] = {seq, seq + CTX, seq + 2 * CTX};
    float *logits = malloc((size_t)B * V * sizeof(float));
    int want[STEPS * B], got[STEPS * B], first[B];
    /* reference: one step at a time, argmax on the host */
    host_greedy(ref, B, CTX, prompts, lens, V, STEPS, logits, first, want);
    /* the device loop, in two calls */
    EXPECT(gpt_kv_begin(gpu, B, CTX, &err) == 0, "%s", err.msg);
    EXPECT(gpt_kv_prefill(gpu, prompts, lens, logits, &err) == 0, "%s", err.msg);
    int dfirst[B], gfirst[B];
    for (int b = 0; b < B; b++) dfirst[b] = host_argmax(logits + (size_t)b * V, V);
    EXPECT(!memcmp(dfirst, first, sizeof first), "prefill choices differ");
    /* the prefill's own device argmax (gpt_kv_prefill_greedy) picks the same */
    EXPECT(gpt_kv_begin(gpu, B, CTX, &err) == 0, "%s", err.msg);
    EXPECT(gpt_kv_prefill_greedy(gpu, prompts, lens, gfirst, &err) == 0, "%s", err.msg);
    EXPECT(!memcmp(gfirst, first, sizeof first), "gpt_kv_prefill_greedy: %d %d %d, want %d %d %d",
           gfirst[0], gfirst[1], gfirst[2], first[0], first[1], first[2]);
    EXPECT(gpt_kv_decode_greedy(gpu, first, 7, got, &err) == 0, "%s", err.msg);
    EXPECT(gpt_kv_decode_greedy(gpu, got + 6 * B, STEPS - 7, got + 7 * B, &err) == 0, "%s", err.msg);
    int same = 0;
    while (same < STEPS * B && got[same] == want[same]) same++;
    EXPECT(same == STEPS * B, "ids differ from step %d (row %d): %d vs %d", same / B, same % B,
           same < STEPS * B ? got[same] : 0, same < STEPS * B ? want[same] : 0);
    for (int b = 0; b < B; b++)
        EXPECT(gpt_kv_length(gpu, b) == lens[b] + STEPS, "row %d length %d", b, gpt_kv_length(gpu, b));
    test_end();
    free(seq), free(logits);
    if (ref != gpu) gpt_model_free(ref);
    gpt_model_free(gpu);
}


#endif
