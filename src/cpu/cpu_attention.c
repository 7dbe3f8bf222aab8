/*
 * cpu_attention.c - causal multi-head self-attention on the CPU, flash
 * style: the forward keeps only each query's log-sum-exp (lse), and the
 * backward recomputes the probabilities from it (Dao et al. 2022), so the
 * (T,T) score matrix is never stored. One (batch row, head) per OpenMP
 * iteration; the only scratch is one row of T scores per thread.
 *
 * qkv (B,T,3C) holds [q | k | v]; head h uses columns [h*HS, (h+1)*HS).
 */
#include <math.h>
#include <string.h>

#include "cpu.h"

static inline float dot(const float *a, const float *b, int n) {
    float acc = 0;
    for (int i = 0; i < n; i++) acc += a[i] * b[i];
    return acc;
}

static inline void axpy(float *y, float a, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

/* out = softmax(q . keys[0..n) * scale) @ values; returns the lse.
 * keys/values rows are `stride` floats apart; att: n floats of scratch. */
static float attend(float *out, const float *q, const float *keys, const float *values,
                    size_t stride, int n, int HS, float scale, float *att) {
    float maxv = -INFINITY;
    for (int j = 0; j < n; j++) {
        float s = dot(q, keys + (size_t)j * stride, HS) * scale;
        att[j] = s;
        if (s > maxv) maxv = s;
    }
    float sum = 0;
    for (int j = 0; j < n; j++) {
        att[j] = expf(att[j] - maxv);
        sum += att[j];
    }
    float inv = 1.0f / sum;
    memset(out, 0, (size_t)HS * sizeof(float));
    for (int j = 0; j < n; j++) axpy(out, att[j] * inv, values + (size_t)j * stride, HS);
    return maxv + logf(sum);
}

void cpu_attention_forward(gpt_backend *be, void *out_, float *lse, const void *qkv_, int B,
                           int T, int C, int NH) {
    float *out = out_;
    const float *qkv = qkv_;
    int HS = C / NH;
    float scale = 1.0f / sqrtf((float)HS);
    size_t C3 = 3 * (size_t)C;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            float *att = cpu_scratch(be);
            const float *base = qkv + (size_t)b * T * C3 + (size_t)h * HS;
            for (int t = 0; t < T; t++) {
                float l = attend(out + ((size_t)b * T + t) * C + (size_t)h * HS,
                                 base + (size_t)t * C3, base + C, base + 2 * (size_t)C, C3, t + 1,
                                 HS, scale, att);
                if (lse) lse[((size_t)b * NH + h) * T + t] = l;
            }
        }
}

void cpu_attention_backward(gpt_backend *be, void *dqkv_, const void *dout_, const void *qkv_,
                            const void *out_, const float *lse, int B, int T, int C, int NH) {
    float *dqkv = dqkv_;
    const float *dout = dout_, *qkv = qkv_, *out = out_;
    int HS = C / NH;
    float scale = 1.0f / sqrtf((float)HS);
    size_t C3 = 3 * (size_t)C;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            float *p = cpu_scratch(be);
            const float *base = qkv + (size_t)b * T * C3 + (size_t)h * HS;
            float *dbase = dqkv + (size_t)b * T * C3 + (size_t)h * HS;
            for (int t = 0; t < T; t++)
                for (int k = 0; k < 3; k++)
                    memset(dbase + (size_t)t * C3 + (size_t)k * C, 0, (size_t)HS * sizeof(float));
            for (int t = 0; t < T; t++) {
                const float *q = base + (size_t)t * C3;
                const float *dO = dout + ((size_t)b * T + t) * C + (size_t)h * HS;
                const float *O = out + ((size_t)b * T + t) * C + (size_t)h * HS;
                float l = lse[((size_t)b * NH + h) * T + t];
                float D = dot(dO, O, HS); /* = sum_j p_j dp_j */
                float *dq = dbase + (size_t)t * C3;
                for (int j = 0; j <= t; j++)
                    p[j] = expf(dot(q, base + (size_t)j * C3 + C, HS) * scale - l);
                for (int j = 0; j <= t; j++) {
                    const float *kj = base + (size_t)j * C3 + C;
                    const float *vj = base + (size_t)j * C3 + 2 * (size_t)C;
                    float ds = p[j] * (dot(dO, vj, HS) - D) * scale;
                    axpy(dq, ds, kj, HS);
                    axpy(dbase + (size_t)j * C3 + C, ds, q, HS);
                    axpy(dbase + (size_t)j * C3 + 2 * (size_t)C, p[j], dO, HS);
                }
            }
        }
}

void cpu_attention_kv_forward(gpt_backend *be, void *out_, const void *qkv_, void *kcache_,
                              void *vcache_, const int *pos0, int B, int Tq, int S, int C,
                              int NH) {
    float *out = out_, *kcache = kcache_, *vcache = vcache_;
    const float *qkv = qkv_;
    int HS = C / NH;
    float scale = 1.0f / sqrtf((float)HS);
    size_t C3 = 3 * (size_t)C;
    /* Store this call's keys and values first: query t attends to them. */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < Tq; t++) {
            long p = (long)pos0[b] + t;
            if (p < 0 || p >= S) continue;
            const float *src = qkv + ((size_t)b * Tq + t) * C3;
            memcpy(kcache + ((size_t)b * S + (size_t)p) * C, src + C, (size_t)C * sizeof(float));
            memcpy(vcache + ((size_t)b * S + (size_t)p) * C, src + 2 * (size_t)C,
                   (size_t)C * sizeof(float));
        }
#pragma omp parallel for collapse(3) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < Tq; t++) {
                long p = (long)pos0[b] + t;
                if (p < 0 || p >= S) continue;
                float *att = cpu_scratch(be);
                size_t head = (size_t)h * HS;
                attend(out + ((size_t)b * Tq + t) * C + head, qkv + ((size_t)b * Tq + t) * C3 + head,
                       kcache + (size_t)b * S * C + head, vcache + (size_t)b * S * C + head,
                       (size_t)C, (int)p + 1, HS, scale, att);
            }
}
