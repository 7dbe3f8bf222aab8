/*
 * cpu_ops.c - the CPU backend's elementwise and row-wise operations:
 * embeddings, layernorm (alone and fused with the residual add), the fused
 * softmax + cross-entropy + gradient, sums, add, and the AdamW update.
 * Each runs on the pool (cpu_pool.h) over independent rows or column
 * blocks; reductions across rows go through partials over a fixed number
 * of chunks, summed in chunk order, so results repeat bit for bit whatever
 * the thread count.
 */
#include <math.h>
#include <string.h>

#include "cpu.h"
#include "cpu_math.h"
#include "cpu_pool.h"

typedef struct {
    float *out, *out2; /* forward: out; backward: dwte, dwpe */
    const int *tok, *pos0;
    const float *wte, *wpe, *dout;
    int B, T, C, Vp, maxT;
} enc_job;

CPU_CLONES static void enc_fwd_rows(void *ctx, size_t lo, size_t hi) {
    const enc_job *j = ctx;
    for (size_t r = lo; r < hi; r++) {
        int b = (int)(r / j->T), t = (int)(r % j->T), C = j->C;
        float *o = j->out + r * C;
        int id = j->tok[r];
        long p = (long)(j->pos0 ? j->pos0[b] : 0) + t;
        if (id < 0 || id >= j->Vp || p < 0 || p >= j->maxT) {
            memset(o, 0, (size_t)C * sizeof(float));
            continue;
        }
        const float *e = j->wte + (size_t)id * C, *q = j->wpe + (size_t)p * C;
        for (int c = 0; c < C; c++) o[c] = e[c] + q[c];
    }
}

void cpu_encoder_forward(gpt_backend *be, void *out, const int *tok, const int *pos0,
                         const void *wte, const void *wpe, int B, int T, int C, int Vp,
                         int maxT) {
    enc_job j = {out, NULL, tok, pos0, wte, wpe, NULL, B, T, C, Vp, maxT};
    cpu_parallel_range((size_t)B * T, 4, enc_fwd_rows, &j);
}

/* Token rows can repeat, so the work is split by channel blocks of 32:
 * each task adds into its own columns, in (b, t) order. */
CPU_CLONES static void enc_bwd_cols(void *ctx, size_t lo, size_t hi) {
    const enc_job *j = ctx;
    int c0 = (int)lo * 32, c1 = (int)hi * 32 < j->C ? (int)hi * 32 : j->C;
    for (int r = 0; r < j->B * j->T; r++) {
        int id = j->tok[r];
        if (id < 0 || id >= j->Vp) continue;
        const float *d = j->dout + (size_t)r * j->C;
        float *e = j->out + (size_t)id * j->C;
        for (int c = c0; c < c1; c++) e[c] += d[c];
    }
}

CPU_CLONES static void enc_bwd_pos(void *ctx, size_t lo, size_t hi) {
    const enc_job *j = ctx;
    for (size_t t = lo; t < hi; t++) {
        float *p = j->out2 + t * j->C;
        for (int b = 0; b < j->B; b++) {
            const float *d = j->dout + ((size_t)b * j->T + t) * j->C;
            for (int c = 0; c < j->C; c++) p[c] += d[c];
        }
    }
}

void cpu_encoder_backward(gpt_backend *be, void *dwte, void *dwpe, const void *dout,
                          const int *tok, int B, int T, int C, int Vp) {
    enc_job j = {dwte, dwpe, tok, NULL, NULL, NULL, dout, B, T, C, Vp, 0};
    cpu_parallel_range(((size_t)C + 31) / 32, 1, enc_bwd_cols, &j);
    cpu_parallel_range((size_t)T, 1, enc_bwd_pos, &j);
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

typedef struct {
    float *out, *res, *mean, *rstd, *part;
    const float *x, *a, *b, *w, *bias, *dout;
    int N, C;
    float eps;
} ln_job;

CPU_CLONES static void ln_fwd_rows(void *ctx, size_t lo, size_t hi) {
    const ln_job *j = ctx;
    for (size_t i = lo; i < hi; i++)
        ln_row(j->out + i * j->C, j->mean ? j->mean + i : NULL, j->rstd ? j->rstd + i : NULL,
               j->x + i * j->C, j->w, j->bias, j->C, j->eps);
}

void cpu_layernorm_forward(gpt_backend *be, void *out, float *mean, float *rstd, const void *x,
                           const void *w, const void *b, int N, int C, float eps) {
    ln_job j = {.out = out, .mean = mean, .rstd = rstd, .x = x, .w = w, .bias = b, .N = N,
                .C = C, .eps = eps};
    cpu_parallel_range((size_t)N, 1, ln_fwd_rows, &j);
}

CPU_CLONES static void res_ln_rows(void *ctx, size_t lo, size_t hi) {
    const ln_job *j = ctx;
    int C = j->C;
    for (size_t i = lo; i < hi; i++) {
        float *r = j->res + i * C;
        const float *ra = j->a + i * C, *rb = j->b + i * C;
        for (int c = 0; c < C; c++) r[c] = ra[c] + rb[c];
        ln_row(j->out + i * C, j->mean ? j->mean + i : NULL, j->rstd ? j->rstd + i : NULL, r,
               j->w, j->bias, C, j->eps);
    }
}

void cpu_residual_layernorm_forward(gpt_backend *be, void *res, void *out, float *mean,
                                    float *rstd, const void *a, const void *b, const void *w,
                                    const void *bias, int N, int C, float eps) {
    ln_job j = {.out = out, .res = res, .mean = mean, .rstd = rstd, .a = a, .b = b, .w = w,
                .bias = bias, .N = N, .C = C, .eps = eps};
    cpu_parallel_range((size_t)N, 1, res_ln_rows, &j);
}

/* Rows [N*chunk/RED_CHUNKS, N*(chunk+1)/RED_CHUNKS): dx, and this chunk's
 * dw, db partials. */
CPU_CLONES static void ln_bwd_chunk(void *ctx, int chunk) {
    const ln_job *j = ctx;
    int C = j->C;
    float *part = j->part + (size_t)chunk * 2 * C; /* dw [0,C), db [C,2C) */
    memset(part, 0, 2 * (size_t)C * sizeof(float));
    size_t i0 = (size_t)j->N * chunk / RED_CHUNKS, i1 = (size_t)j->N * (chunk + 1) / RED_CHUNKS;
    for (size_t i = i0; i < i1; i++) {
        const float *d = j->dout + i * C, *xi = j->x + i * C, *w = j->w;
        float m = j->mean[i], s = j->rstd[i];
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
        float *o = j->out + i * C;
        for (int c = 0; c < C; c++) {
            float xhat = (xi[c] - m) * s;
            o[c] += s * (d[c] * w[c] - gm - xhat * gxm);
        }
    }
}

void cpu_layernorm_backward(gpt_backend *be, void *dx, void *dw_, void *db_, const void *dout,
                            const void *x, const void *w, const float *mean, const float *rstd,
                            int N, int C) {
    float *dw = dw_, *db = db_;
    cpu_ctx *cc = be->ctx;
    ln_job j = {.out = dx, .mean = (float *)mean, .rstd = (float *)rstd, .part = cc->partials,
                .x = x, .w = w, .dout = dout, .N = N, .C = C};
    cpu_parallel(RED_CHUNKS, ln_bwd_chunk, &j);
    for (int t = 0; t < RED_CHUNKS; t++) {
        const float *part = cc->partials + (size_t)t * 2 * C;
        for (int c = 0; c < C; c++) {
            dw[c] += part[c];
            db[c] += part[C + c];
        }
    }
}

typedef struct {
    float *losses, *logits;
    const int *tgt;
    int V, Vp, grad;
    float dloss;
} ce_job;

CPU_CLONES static void ce_rows(void *ctx, size_t lo, size_t hi) {
    const ce_job *j = ctx;
    int V = j->V, Vp = j->Vp;
    float dloss = j->dloss;
    for (size_t i = lo; i < hi; i++) {
        float *row = j->logits + i * Vp;
        int y = j->tgt[i];
        if (y < 0 || y >= V) {
            j->losses[i] = 0;
            if (j->grad) memset(row, 0, (size_t)Vp * sizeof(float));
            continue;
        }
        float maxv = cpu_maxf(row, V), sum = 0, ry = row[y];
        if (j->grad) {
            /* The exponentials kept in the row and scaled once the sum is
             * known: one exp per logit instead of a second pass of
             * dloss * exp(x - lse), whose x - lse also carried lse's
             * rounding (~1 ulp of |lse| ~ 10) into every probability. */
#pragma omp simd reduction(+ : sum)
            for (int k = 0; k < V; k++) {
                float e = cpu_expf(row[k] - maxv);
                row[k] = e;
                sum += e;
            }
            float sc = dloss / sum;
#pragma omp simd
            for (int k = 0; k < V; k++) row[k] *= sc;
            row[y] -= dloss;
            for (int k = V; k < Vp; k++) row[k] = 0;
        } else {
#pragma omp simd reduction(+ : sum)
            for (int k = 0; k < V; k++) sum += cpu_expf(row[k] - maxv);
        }
        j->losses[i] = maxv + logf(sum) - ry;
    }
}

void cpu_crossentropy(gpt_backend *be, float *losses, void *logits, const int *tgt, int N, int V,
                      int Vp, float dloss, int grad) {
    ce_job j = {losses, logits, tgt, V, Vp, grad, dloss};
    cpu_parallel_range((size_t)N, 1, ce_rows, &j);
}

void cpu_sum_f32(gpt_backend *be, float *out, const float *in, size_t n, int accumulate) {
    double acc = 0;
    for (size_t i = 0; i < n; i++) acc += in[i];
    out[0] = accumulate ? out[0] + (float)acc : (float)acc;
}

typedef struct {
    float *out;
    const float *a, *b;
} add_job;

CPU_CLONES static void add_range(void *ctx, size_t lo, size_t hi) {
    const add_job *j = ctx;
    for (size_t i = lo; i < hi; i++) j->out[i] = j->a[i] + j->b[i];
}

void cpu_add(gpt_backend *be, void *out, const void *a, const void *b, size_t n) {
    add_job j = {out, a, b};
    cpu_parallel_range(n, 16384, add_range, &j);
}

typedef struct {
    const float *x;
    size_t n;
    double sq[RED_CHUNKS];
} sumsq_job;

/* SUMSQ_LANES independent double accumulators, element i of the chunk into
 * lane i % SUMSQ_LANES, then the lanes summed in order: one dependent chain
 * of additions would hold the loop to the add latency; independent lanes
 * let it run at memory speed, and the pattern depends only on the
 * chunk bounds, so the result is the same for any thread count. */
#define SUMSQ_LANES 32
CPU_CLONES static void sumsq_chunk(void *ctx, int chunk) {
    sumsq_job *j = ctx;
    size_t i0 = j->n * chunk / RED_CHUNKS, i1 = j->n * (chunk + 1) / RED_CHUNKS;
    const float *x = j->x + i0;
    size_t n = i1 - i0, nb = n / SUMSQ_LANES * SUMSQ_LANES;
    double lane[SUMSQ_LANES] = {0};
    for (size_t i = 0; i < nb; i += SUMSQ_LANES)
        for (int l = 0; l < SUMSQ_LANES; l++) lane[l] += (double)x[i + l] * x[i + l];
    for (size_t i = nb; i < n; i++) lane[i - nb] += (double)x[i] * x[i];
    double acc = 0;
    for (int l = 0; l < SUMSQ_LANES; l++) acc += lane[l];
    j->sq[chunk] = acc;
}

/* Partials in double over fixed chunks, summed in order. */
void cpu_sumsq(gpt_backend *be, float *out, const void *grad, size_t n) {
    sumsq_job j = {.x = grad, .n = n};
    cpu_parallel(RED_CHUNKS, sumsq_chunk, &j);
    double sq = 0;
    for (int t = 0; t < RED_CHUNKS; t++) sq += j.sq[t];
    out[0] = (float)sq;
}

typedef struct {
    float *params, *master, *grad, *m, *v;
    size_t n, n_decay;
    float scale, b1, b2, eps, step_size, bc2_sqrt, decay;
} adamw_job;

/* One span of parameters with one decay factor (1 outside the decayed
 * range: an exact multiply). The arrays are distinct buffers; saying so
 * (restrict) and keeping the hyperparameters in locals lets the compiler
 * vectorise the loop (otherwise it stays scalar, with two divisions and a
 * square root per parameter). The operations and
 * their order are those of the scalar loop, so the results are bitwise
 * the same. With master weights the update reads and writes the fp32
 * master and stores the result into params as well. */
CPU_CLONES static void adamw_span(float *restrict params, float *restrict master,
                                  float *restrict grad, float *restrict m, float *restrict v,
                                  size_t n, float scale, float b1, float b2, float eps,
                                  float step_size, float bc2_sqrt, float decay) {
    float c1 = 1.0f - b1, c2 = 1.0f - b2;
    if (master) {
        for (size_t i = 0; i < n; i++) {
            float g = grad[i] * scale;
            float mi = m[i] + c1 * (g - m[i]); /* PyTorch's lerp form */
            float vi = v[i] * b2 + c2 * (g * g);
            m[i] = mi;
            v[i] = vi;
            float p = master[i] * decay - step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
            master[i] = p;
            params[i] = p;
            grad[i] = 0;
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] * scale;
        float mi = m[i] + c1 * (g - m[i]);
        float vi = v[i] * b2 + c2 * (g * g);
        m[i] = mi;
        v[i] = vi;
        params[i] = params[i] * decay - step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
        grad[i] = 0;
    }
}

static void adamw_update(void *ctx, size_t lo, size_t hi) {
    const adamw_job *j = ctx;
    size_t mid = hi < j->n_decay ? hi : lo > j->n_decay ? lo : j->n_decay;
    float *ms = j->master;
    if (mid > lo)
        adamw_span(j->params + lo, ms ? ms + lo : NULL, j->grad + lo, j->m + lo, j->v + lo,
                   mid - lo, j->scale, j->b1, j->b2, j->eps, j->step_size, j->bc2_sqrt, j->decay);
    if (hi > mid)
        adamw_span(j->params + mid, ms ? ms + mid : NULL, j->grad + mid, j->m + mid, j->v + mid,
                   hi - mid, j->scale, j->b1, j->b2, j->eps, j->step_size, j->bc2_sqrt, 1.0f);
}

void cpu_adamw(gpt_backend *be, void *params, float *master, void *grad, float *m, float *v,
               size_t n, size_t n_decay, const gpt_adamw_hyper *h, gpt_step_stats *stats) {
    adamw_job j = {.params = params, .master = master, .grad = grad, .m = m, .v = v, .n = n,
                   .n_decay = n_decay};
    float norm = sqrtf(stats->grad_sumsq);
    stats->grad_norm = norm;
    int skip = !isfinite(norm) || !isfinite(stats->loss_sum);
    stats->skipped = skip ? 1.0f : 0.0f;
    if (skip) {
        memset(grad, 0, n * sizeof(float));
        return;
    }
    j.scale = h->grad_clip > 0 ? fminf(1.0f, h->grad_clip / (norm + 1e-6f)) : 1.0f;
    j.b1 = h->beta1, j.b2 = h->beta2, j.eps = h->eps;
    j.step_size = h->lr / h->bias_corr1, j.bc2_sqrt = sqrtf(h->bias_corr2);
    j.decay = 1.0f - h->lr * h->weight_decay;
    cpu_parallel_range(n, 4096, adamw_update, &j);
}
