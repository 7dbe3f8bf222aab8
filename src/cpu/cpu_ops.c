/*
 * cpu_ops.c - the CPU backend's elementwise and row-wise operations:
 * embeddings, layernorm (alone and fused with the residual add), the fused
 * softmax + cross-entropy + gradient, sums, add, and the AdamW update.
 * Reductions across rows go through per-thread partials summed in thread
 * order, so results repeat bit for bit with the same thread count.
 */
#include <math.h>
#include "omp_shim.h"
#include <string.h>

#include "cpu.h"
#include "cpu_math.h"

/* Scratch of thread t (valid after reserve). */
static float *scratch_of(gpt_backend *be, int t) {
    cpu_ctx *c = be->ctx;
    return c->scratch + (size_t)t * c->scratch_per_thread;
}

void cpu_encoder_forward(gpt_backend *be, void *out_, const int *tok, const int *pos0,
                         const void *wte_, const void *wpe_, int B, int T, int C, int Vp,
                         int maxT) {
    float *out = out_;
    const float *wte = wte_, *wpe = wpe_;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *o = out + ((size_t)b * T + t) * C;
            int id = tok[(size_t)b * T + t];
            long p = (long)(pos0 ? pos0[b] : 0) + t;
            if (id < 0 || id >= Vp || p < 0 || p >= maxT) {
                memset(o, 0, (size_t)C * sizeof(float));
                continue;
            }
            const float *e = wte + (size_t)id * C, *q = wpe + (size_t)p * C;
            for (int c = 0; c < C; c++) o[c] = e[c] + q[c];
        }
}

void cpu_encoder_backward(gpt_backend *be, void *dwte_, void *dwpe_, const void *dout_,
                          const int *tok, int B, int T, int C, int Vp) {
    float *dwte = dwte_, *dwpe = dwpe_;
    const float *dout = dout_;
    /* Token rows can repeat, so split the work by channel blocks: each
     * thread adds into its own columns, in (b, t) order. */
    const int BLK = 32;
    int nblk = (C + BLK - 1) / BLK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * BLK, c1 = c0 + BLK < C ? c0 + BLK : C;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                int id = tok[(size_t)b * T + t];
                if (id < 0 || id >= Vp) continue;
                const float *d = dout + ((size_t)b * T + t) * C;
                float *e = dwte + (size_t)id * C;
                for (int c = c0; c < c1; c++) e[c] += d[c];
            }
    }
#pragma omp parallel for schedule(static)
    for (int t = 0; t < T; t++) {
        float *p = dwpe + (size_t)t * C;
        for (int b = 0; b < B; b++) {
            const float *d = dout + ((size_t)b * T + t) * C;
            for (int c = 0; c < C; c++) p[c] += d[c];
        }
    }
}

/* One row: mean and 1/std (biased variance, as PyTorch), then the affine. */
static inline void ln_row(float *o, float *mean, float *rstd, const float *x, const float *w,
                          const float *b, int C, float eps) {
    float m = 0;
    for (int c = 0; c < C; c++) m += x[c];
    m /= (float)C;
    float v = 0;
    for (int c = 0; c < C; c++) {
        float d = x[c] - m;
        v += d * d;
    }
    v /= (float)C;
    float s = 1.0f / sqrtf(v + eps);
    for (int c = 0; c < C; c++) o[c] = (x[c] - m) * s * w[c] + b[c];
    if (mean) *mean = m;
    if (rstd) *rstd = s;
}

void cpu_layernorm_forward(gpt_backend *be, void *out, float *mean, float *rstd, const void *x,
                           const void *w, const void *b, int N, int C, float eps) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++)
        ln_row((float *)out + (size_t)i * C, mean ? mean + i : NULL, rstd ? rstd + i : NULL,
               (const float *)x + (size_t)i * C, w, b, C, eps);
}

void cpu_residual_layernorm_forward(gpt_backend *be, void *res_, void *out, float *mean,
                                    float *rstd, const void *a_, const void *b_, const void *w,
                                    const void *bias, int N, int C, float eps) {
    float *res = res_;
    const float *a = a_, *b = b_;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        float *r = res + (size_t)i * C;
        const float *ra = a + (size_t)i * C, *rb = b + (size_t)i * C;
        for (int c = 0; c < C; c++) r[c] = ra[c] + rb[c];
        ln_row((float *)out + (size_t)i * C, mean ? mean + i : NULL, rstd ? rstd + i : NULL, r,
               w, bias, C, eps);
    }
}

void cpu_layernorm_backward(gpt_backend *be, void *dx_, void *dw_, void *db_, const void *dout_,
                            const void *x_, const void *w_, const float *mean, const float *rstd,
                            int N, int C) {
    float *dx = dx_, *dw = dw_, *db = db_;
    const float *dout = dout_, *x = x_, *w = w_;
    int nthr = 1;
#pragma omp parallel
    {
#pragma omp single
        nthr = omp_get_num_threads();
        float *part = cpu_scratch(be); /* dw partial [0,C), db partial [C,2C) */
        memset(part, 0, 2 * (size_t)C * sizeof(float));
#pragma omp for schedule(static)
        for (int i = 0; i < N; i++) {
            const float *d = dout + (size_t)i * C, *xi = x + (size_t)i * C;
            float m = mean[i], s = rstd[i];
            /* dx = s * (g - mean(g) - xhat * mean(g * xhat)), g = dout * w */
            float gm = 0, gxm = 0;
            for (int c = 0; c < C; c++) {
                float xhat = (xi[c] - m) * s, g = d[c] * w[c];
                gm += g;
                gxm += g * xhat;
                part[c] += d[c] * xhat;
                part[C + c] += d[c];
            }
            gm /= (float)C;
            gxm /= (float)C;
            float *o = dx + (size_t)i * C;
            for (int c = 0; c < C; c++) {
                float xhat = (xi[c] - m) * s;
                o[c] += s * (d[c] * w[c] - gm - xhat * gxm);
            }
        }
    }
    for (int t = 0; t < nthr; t++) {
        const float *part = scratch_of(be, t);
        for (int c = 0; c < C; c++) {
            dw[c] += part[c];
            db[c] += part[C + c];
        }
    }
}

void cpu_crossentropy(gpt_backend *be, float *losses, void *logits_, const int *tgt, int N, int V,
                      int Vp, float dloss, int grad) {
    float *logits = logits_;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        float *row = logits + (size_t)i * Vp;
        int y = tgt[i];
        if (y < 0 || y >= V) {
            losses[i] = 0;
            if (grad) memset(row, 0, (size_t)Vp * sizeof(float));
            continue;
        }
        float maxv = -INFINITY;
        for (int j = 0; j < V; j++)
            if (row[j] > maxv) maxv = row[j];
        float sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < V; j++) sum += cpu_expf(row[j] - maxv);
        float lse = maxv + logf(sum);
        losses[i] = lse - row[y];
        if (grad) {
#pragma omp simd
            for (int j = 0; j < V; j++) row[j] = dloss * cpu_expf(row[j] - lse);
            row[y] -= dloss;
            for (int j = V; j < Vp; j++) row[j] = 0;
        }
    }
}

void cpu_sum_f32(gpt_backend *be, float *out, const float *in, size_t n, int accumulate) {
    double acc = 0;
    for (size_t i = 0; i < n; i++) acc += in[i];
    out[0] = accumulate ? out[0] + (float)acc : (float)acc;
}

void cpu_add(gpt_backend *be, void *out_, const void *a_, const void *b_, size_t n) {
    float *out = out_;
    const float *a = a_, *b = b_;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void cpu_sumsq(gpt_backend *be, float *out, const void *grad_, size_t n) {
    const float *grad = grad_;
    /* Per-thread partials in double, summed in thread order. */
    int nthr = 1;
#pragma omp parallel
    {
#pragma omp single
        nthr = omp_get_num_threads();
        double acc = 0;
#pragma omp for schedule(static)
        for (size_t i = 0; i < n; i++) acc += (double)grad[i] * grad[i];
        *(double *)cpu_scratch(be) = acc;
    }
    double sq = 0;
    for (int t = 0; t < nthr; t++) sq += *(const double *)scratch_of(be, t);
    out[0] = (float)sq;
}

void cpu_adamw(gpt_backend *be, void *params_, float *master, void *grad_, float *m, float *v,
               size_t n, size_t n_decay, const gpt_adamw_hyper *h, gpt_step_stats *stats) {
    float *params = params_, *grad = grad_;
    float norm = sqrtf(stats->grad_sumsq);
    stats->grad_norm = norm;
    int skip = !isfinite(norm) || !isfinite(stats->loss_sum);
    stats->skipped = skip ? 1.0f : 0.0f;
    if (skip) {
        memset(grad, 0, n * sizeof(float));
        return;
    }
    float scale = h->grad_clip > 0 ? fminf(1.0f, h->grad_clip / (norm + 1e-6f)) : 1.0f;
    float b1 = h->beta1, b2 = h->beta2, lr = h->lr;
    float step_size = lr / h->bias_corr1, bc2_sqrt = sqrtf(h->bias_corr2);
    float decay = 1.0f - lr * h->weight_decay;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] * scale;
        float mi = m[i] + (1.0f - b1) * (g - m[i]); /* PyTorch's lerp form */
        float vi = v[i] * b2 + (1.0f - b2) * (g * g);
        m[i] = mi;
        v[i] = vi;
        float p = master ? master[i] : params[i];
        if (i < n_decay) p *= decay;
        p -= step_size * (mi / (sqrtf(vi) / bc2_sqrt + h->eps));
        if (master) master[i] = p;
        params[i] = p;
        grad[i] = 0;
    }
}
