/*
 * bench_products.c - the matrix products of a training step on a device,
 * one at a time: the forward and backward of each of a layer's four
 * products and of the LM head, at a preset's shapes, so that a product
 * kernel (Vulkan's cooperative-matrix tile shapes, GPT_VULKAN_MM_TILE) can
 * be compared with another, and with CUDA's cuBLASLt on the same card.
 *
 *   build/bench/bench_products [--device vulkan] [--preset gpt2] [-B 8] [-T 1024]
 *       [--reps 10] [--fp16]
 *
 * (--fp16 asks for fp16 where the device's default is fp32: lavapipe.)
 * Inputs are random multiples of 1/256 in [-0.5, 0.5] (exact in fp16 and
 * bf16), never zeros. Each product runs --reps times back to back, in a
 * round that creates its pipelines and three timed ones; the best counts. Then each product is checked once: 256
 * outputs of the forward, the input gradient and the weight gradient
 * against float64 sums over the same inputs on the host (a wrong tile
 * shape, offset or edge shows as an error of the values' own size; the
 * bound is the 16-bit output's rounding and fp32 accumulation's, below).
 * Prints a table (ms, TFLOP/s, max error over the bound) and a JSON line
 * per product; exits 1 if a check fails.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "util.h"

typedef struct {
    const char *name;
    int IC, OC, gelu, bias;
} product;

static unsigned long long rng = 0x9e3779b97f4a7c15ull;
static float draw(void) { /* a multiple of 1/256 in [-0.5, 0.5] */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((int)(rng >> 40) % 257 - 128) / 128.0f * 0.5f;
}

static float *host_random(size_t n) {
    float *h = malloc(n * sizeof *h);
    if (h)
        for (size_t i = 0; i < n; i++) h[i] = draw();
    return h;
}

static float gelu_ref(double x) {
    return (float)(0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))));
}

/* Largest |got - want| / bound over 256 sampled entries of a rows x cols
 * result; want(r, c) from the host inputs. Bound: the 16-bit output's
 * rounding (2^-8 of the value: bf16's half ulp is 2^-9, fp16's 2^-11),
 * plus fp32 accumulation's over K terms of at most 0.25 each (a worst
 * case of 2^-24 = 6e-8 of 0.25 a term), plus 1e-3 for values near zero. */
typedef double (*ref_fn)(const void *ctx, int r, int c);
static double check(const float *got, int rows, int cols, int K, ref_fn want, const void *ctx) {
    double worst = 0;
    for (int s = 0; s < 256; s++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        int r = (int)((rng >> 33) % (unsigned long long)rows);
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        int c = (int)((rng >> 33) % (unsigned long long)cols);
        double w = want(ctx, r, c), g = got[(size_t)r * cols + c];
        double bound = fabs(w) / 256 + K * 0.25 * 6e-8 + 1e-3;
        double e = isfinite(g) ? fabs(g - w) / bound : 1e30;
        if (e > worst) worst = e;
    }
    return worst;
}

typedef struct {
    const float *in, *w, *bias, *dout;
    int N, IC, OC, gelu;
} ref_ctx;

static double ref_fwd(const void *p, int r, int c) { /* out = in w^T + b (gelu) */
    const ref_ctx *x = p;
    double s = x->bias ? x->bias[c] : 0;
    for (int k = 0; k < x->IC; k++) s += (double)x->in[(size_t)r * x->IC + k] * x->w[(size_t)c * x->IC + k];
    return x->gelu ? gelu_ref(s) : s;
}
static double ref_din(const void *p, int r, int c) { /* din = dout w */
    const ref_ctx *x = p;
    double s = 0;
    for (int k = 0; k < x->OC; k++) s += (double)x->dout[(size_t)r * x->OC + k] * x->w[(size_t)k * x->IC + c];
    return s;
}
static double ref_dw(const void *p, int r, int c) { /* dw = dout^T in */
    const ref_ctx *x = p;
    double s = 0;
    for (int k = 0; k < x->N; k++) s += (double)x->dout[(size_t)k * x->OC + r] * x->in[(size_t)k * x->IC + c];
    return s;
}

int main(int argc, char **argv) {
    const char *device = "vulkan", *preset = "gpt2";
    int B = 8, T = 1024, reps = 10, fp16 = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--device")) device = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--preset")) preset = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "-B")) B = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "-T")) T = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--reps")) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--fp16")) fp16 = 1;
        else {
            fprintf(stderr, "usage: bench_products [--device vulkan] [--preset gpt2] [-B 8] [-T 1024] "
                            "[--reps 10] [--fp16]\n");
            return 2;
        }
    }
    gpt_error err = {0};
    gpt_config cfg;
    if (gpt_config_preset(preset, &cfg, &err) || (gpt_config_resolve(&cfg), gpt_config_validate(&cfg, &err))) {
        fprintf(stderr, "bench_products: %s\n", err.msg);
        return 2;
    }
    if (B < 1 || T < 1 || (size_t)B * T > 65536 || reps < 1 || reps > 1000) {
        fprintf(stderr, "bench_products: B * T 1..65536, --reps 1..1000\n");
        return 2;
    }
    int N = B * T, C = cfg.n_embd, F = cfg.mlp_hidden, Vp = cfg.padded_vocab;
    product prods[] = {{"qkv", C, 3 * C, 0, 1}, {"proj", C, C, 0, 1}, {"fc", C, F, 1, 1},
                       {"fc2", F, C, 0, 1},     {"head", C, Vp, 0, 0}};
    int np = (int)(sizeof prods / sizeof *prods);
    gpt_runtime rt = {0};
    rt.device = device;
    if (fp16) rt.precision = GPT_PREC_FP16;
    /* Vulkan's fp16 weight gradients are divided by the loss scale: 1
     * here, so that they are the products themselves */
    setenv("GPT_VULKAN_LOSS_SCALE", "1", 1);
    gpt_backend *be;
    if (gpt_backend_create(&be, &rt, &err)) {
        fprintf(stderr, "bench_products: %s\n", err.msg);
        return 1;
    }
    /* (the buffers below hold 2 bytes an element of PARAM and ACT, 4 of GRAD:
     * the 16-bit modes; an fp32 backend would need twice) */
    if (be->cls_size[GPT_CLS_ACT] > 2 || be->cls_size[GPT_CLS_PARAM] > 2) {
        fprintf(stderr, "bench_products: times the 16-bit products (bf16/fp16 backends) only\n");
        gpt_backend_destroy(be);
        return 2;
    }
    gpt_shape s = {B, T, C, cfg.n_head, F, cfg.vocab_size, Vp, cfg.n_layer, cfg.max_seq_len, 1, 0, 0, 0};
    be->ops->reserve(be, &s);
    size_t max_in = (size_t)N * F, max_out = (size_t)N * Vp, max_w = (size_t)Vp * C;
    float *h_in = host_random(max_in), *h_w = host_random(max_w), *h_dout = host_random(max_out),
          *h_b = host_random((size_t)Vp), *h_got = malloc((max_out > max_w ? max_out : max_w) * sizeof(float));
    void *in = be->ops->alloc(be, max_in * 2), *pre = be->ops->alloc(be, max_in * 2);
    void *w = be->ops->alloc(be, max_w * 2), *bias = be->ops->alloc(be, (size_t)Vp * 2);
    void *out = be->ops->alloc(be, max_out * 2), *dout = be->ops->alloc(be, max_out * 2);
    void *din = be->ops->alloc(be, max_in * 2), *dw = be->ops->alloc(be, max_w * 4),
         *db = be->ops->alloc(be, (size_t)Vp * 4);
    if (!h_in || !h_w || !h_dout || !h_b || !h_got || be->err.code) {
        fprintf(stderr, "bench_products: %s\n", be->err.code ? be->err.msg : "out of host memory");
        gpt_backend_destroy(be);
        return 1;
    }
    be->ops->upload(be, in, h_in, max_in, GPT_CLS_ACT);
    be->ops->upload(be, pre, h_in, max_in, GPT_CLS_ACT);
    be->ops->upload(be, w, h_w, max_w, GPT_CLS_PARAM);
    be->ops->upload(be, bias, h_b, (size_t)Vp, GPT_CLS_PARAM);
    be->ops->upload(be, dout, h_dout, max_out, GPT_CLS_ACT);
    be->ops->memset0(be, dw, max_w * 4);
    be->ops->memset0(be, db, (size_t)Vp * 4);

    printf("device: %s\n%s B=%d T=%d (N = %d rows), %d products a round, best of 3 rounds\n",
           be->ops->device_desc(be), preset, B, T, N, reps);
    printf("%-6s %-18s %10s %10s %10s %10s %9s\n", "", "N x IC -> OC", "fwd ms", "TFLOP/s", "bwd ms",
           "TFLOP/s", "err/bound");
    int failed = 0;
    double tot_fwd = 0, tot_bwd = 0, fl_fwd = 0, fl_bwd = 0, step = 0;
    for (int k = 0; k < np; k++) {
        product *p = &prods[k];
        double t[2];
        for (int dir = 0; dir < 2; dir++) {
            double best = 1e30;
            for (int r = 0; r < 4; r++) { /* round 0 creates the pipelines */
                be->ops->sync(be);
                double t0 = gpt_now();
                for (int i = 0; i < reps; i++) {
                    if (dir == 0)
                        be->ops->matmul_forward(be, out, p->gelu ? pre : NULL, in, w, p->bias ? bias : NULL,
                                                N, p->IC, p->OC, p->gelu);
                    else /* fc2's input gradient goes through fc's GELU, as in the model */
                        be->ops->matmul_backward(be, din, dw, p->bias ? db : NULL, dout, in, w,
                                                 k == 3 ? pre : NULL, N, p->IC, p->OC);
                }
                be->ops->sync(be);
                double dt = (gpt_now() - t0) / reps;
                if (r > 0 && dt < best) best = dt;
            }
            t[dir] = best;
        }
        double flops = 2.0 * N * p->IC * p->OC;
        tot_fwd += t[0], tot_bwd += t[1], fl_fwd += flops, fl_bwd += 2 * flops;
        step += (t[0] + t[1]) * (strcmp(p->name, "head") ? cfg.n_layer : 1);
        /* the checks: one fresh call each */
        ref_ctx rc = {h_in, h_w, p->bias ? h_b : NULL, h_dout, N, p->IC, p->OC, p->gelu};
        be->ops->matmul_forward(be, out, p->gelu ? pre : NULL, in, w, p->bias ? bias : NULL, N, p->IC,
                                p->OC, p->gelu);
        be->ops->download(be, h_got, out, (size_t)N * p->OC, GPT_CLS_ACT);
        double e_fwd = check(h_got, N, p->OC, p->IC, ref_fwd, &rc);
        be->ops->memset0(be, dw, (size_t)p->OC * p->IC * 4);
        be->ops->matmul_backward(be, din, dw, NULL, dout, in, w, NULL, N, p->IC, p->OC);
        be->ops->download(be, h_got, din, (size_t)N * p->IC, GPT_CLS_ACT);
        double e_din = check(h_got, N, p->IC, p->OC, ref_din, &rc);
        be->ops->download(be, h_got, dw, (size_t)p->OC * p->IC, GPT_CLS_GRAD);
        double e_dw = check(h_got, p->OC, p->IC, N, ref_dw, &rc);
        double e = e_fwd > e_din ? e_fwd : e_din;
        if (e_dw > e) e = e_dw;
        if (be->err.code) {
            fprintf(stderr, "bench_products: %s: %s\n", p->name, be->err.msg);
            gpt_backend_destroy(be);
            return 1;
        }
        char shape[64];
        snprintf(shape, sizeof shape, "%d x %d -> %d", N, p->IC, p->OC);
        printf("%-6s %-18s %10.3f %10.1f %10.3f %10.1f %9.3f%s\n", p->name, shape, t[0] * 1e3,
               flops / t[0] / 1e12, t[1] * 1e3, 2 * flops / t[1] / 1e12, e, e > 1 ? "  FAILED" : "");
        printf("{\"bench\": \"products\", \"device\": \"%s\", \"tile\": \"%s\", \"product\": \"%s\", "
               "\"N\": %d, \"IC\": %d, \"OC\": %d, \"fwd_ms\": %.4f, \"bwd_ms\": %.4f, "
               "\"fwd_tflops\": %.2f, \"bwd_tflops\": %.2f, \"err\": %.4f}\n",
               device, getenv("GPT_VULKAN_MM_TILE") ? getenv("GPT_VULKAN_MM_TILE") : "", p->name, N,
               p->IC, p->OC, t[0] * 1e3, t[1] * 1e3, flops / t[0] / 1e12, 2 * flops / t[1] / 1e12, e);
        failed += e > 1;
    }
    /* a step's products: a layer's four in every layer, the head once */
    printf("all five: fwd %.3f ms (%.1f TFLOP/s), bwd %.3f ms (%.1f TFLOP/s); a step's products "
           "(%d layers): %.2f ms\n", tot_fwd * 1e3, fl_fwd / tot_fwd / 1e12, tot_bwd * 1e3,
           fl_bwd / tot_bwd / 1e12, cfg.n_layer, step * 1e3);
    gpt_backend_destroy(be);
    free(h_in), free(h_w), free(h_dout), free(h_b), free(h_got);
    return failed ? 1 : 0;
}
