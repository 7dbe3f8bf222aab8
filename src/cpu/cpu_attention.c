/*
 * cpu_attention.c - causal multi-head self-attention on the CPU.
 *
 * Training and full forward passes work on one (batch row, head) per
 * OpenMP iteration with matrix products: S = Q K^T / sqrt(HS) in a (T,T)
 * per-thread scratch, a masked softmax in place, O = P V. Only each
 * query's log-sum-exp (lse) is kept; the backward recomputes P from it
 * (as flash attention does, Dao et al. 2022) and forms
 *   dP = dO V^T,  dS = P * (dP - rowsum(dO * O)),
 *   dQ = dS K / sqrt(HS),  dK = dS^T Q / sqrt(HS),  dV = P^T dO.
 * The products run single-threaded inside the parallel loop (BLAS and the
 * fallback both do so in a nested region).
 *
 * KV-cache decoding (a few queries against a long cache) uses plain loops.
 *
 * qkv (B,T,3C) holds [q | k | v]; head h uses columns [h*HS, (h+1)*HS).
 */
#include <math.h>
#include <string.h>

#include "cpu.h"
#include "cpu_math.h"

/* Softmax of row t of S over columns 0..t in place, zeroing the masked
 * columns; returns the row's log-sum-exp. */
static float causal_softmax_row(float *s, int t, int T) {
    float maxv = -INFINITY;
    for (int j = 0; j <= t; j++) maxv = s[j] > maxv ? s[j] : maxv;
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j <= t; j++) {
        s[j] = cpu_expf(s[j] - maxv);
        sum += s[j];
    }
    float inv = 1.0f / sum;
#pragma omp simd
    for (int j = 0; j <= t; j++) s[j] *= inv;
    for (int j = t + 1; j < T; j++) s[j] = 0;
    return maxv + logf(sum);
}

void cpu_attention_forward(gpt_backend *be, void *out_, float *lse, const void *qkv_, int B,
                           int T, int C, int NH) {
    float *out = out_;
    const float *qkv = qkv_;
    int HS = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            float *S = cpu_scratch(be); /* (T,T) */
            const float *q = qkv + (size_t)b * T * C3 + (size_t)h * HS;
            const float *k = q + C, *v = q + 2 * C;
            cpu_sgemm(0, 1, T, T, HS, scale, q, C3, k, C3, 0.0f, S, T);
            for (int t = 0; t < T; t++) {
                float l = causal_softmax_row(S + (size_t)t * T, t, T);
                if (lse) lse[((size_t)b * NH + h) * T + t] = l;
            }
            cpu_sgemm(0, 0, T, HS, T, 1.0f, S, T, v, C3, 0.0f,
                      out + (size_t)b * T * C + (size_t)h * HS, C);
        }
}

void cpu_attention_backward(gpt_backend *be, void *dqkv_, const void *dout_, const void *qkv_,
                            const void *out_, const float *lse, int B, int T, int C, int NH) {
    float *dqkv = dqkv_;
    const float *dout = dout_, *qkv = qkv_, *out = out_;
    int HS = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            float *P = cpu_scratch(be), *dS = P + (size_t)T * T; /* (T,T) each */
            size_t head = (size_t)b * T * C3 + (size_t)h * HS;
            const float *q = qkv + head, *k = q + C, *v = q + 2 * C;
            float *dq = dqkv + head, *dk = dq + C, *dv = dq + 2 * C;
            const float *dO = dout + (size_t)b * T * C + (size_t)h * HS;
            const float *O = out + (size_t)b * T * C + (size_t)h * HS;
            const float *l = lse + ((size_t)b * NH + h) * T;
            cpu_sgemm(0, 1, T, T, HS, scale, q, C3, k, C3, 0.0f, P, T);
            cpu_sgemm(0, 1, T, T, HS, 1.0f, dO, C, v, C3, 0.0f, dS, T);
            for (int t = 0; t < T; t++) {
                float *p = P + (size_t)t * T, *ds = dS + (size_t)t * T;
                const float *dot = dO + (size_t)t * C, *o = O + (size_t)t * C;
                float D = 0; /* = sum_j p_j dp_j */
                for (int d = 0; d < HS; d++) D += dot[d] * o[d];
                float lt = l[t];
#pragma omp simd
                for (int j = 0; j <= t; j++) {
                    p[j] = cpu_expf(p[j] - lt);
                    ds[j] = p[j] * (ds[j] - D) * scale;
                }
                for (int j = t + 1; j < T; j++) p[j] = ds[j] = 0;
            }
            cpu_sgemm(0, 0, T, HS, T, 1.0f, dS, T, k, C3, 0.0f, dq, C3);
            cpu_sgemm(1, 0, T, HS, T, 1.0f, dS, T, q, C3, 0.0f, dk, C3);
            cpu_sgemm(1, 0, T, HS, T, 1.0f, P, T, dO, C, 0.0f, dv, C3);
        }
}

/* out = softmax(q . keys[0..n) * scale) @ values, rows `stride` apart. */
static void attend(float *out, const float *q, const float *keys, const float *values,
                   size_t stride, int n, int HS, float scale, float *att) {
    float maxv = -INFINITY;
    for (int j = 0; j < n; j++) {
        const float *kj = keys + (size_t)j * stride;
        float s = 0;
#pragma omp simd reduction(+ : s)
        for (int d = 0; d < HS; d++) s += q[d] * kj[d];
        s *= scale;
        att[j] = s;
        maxv = s > maxv ? s : maxv;
    }
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < n; j++) {
        att[j] = cpu_expf(att[j] - maxv);
        sum += att[j];
    }
    float inv = 1.0f / sum;
    memset(out, 0, (size_t)HS * sizeof(float));
    for (int j = 0; j < n; j++) {
        const float *vj = values + (size_t)j * stride;
        float w = att[j] * inv;
#pragma omp simd
        for (int d = 0; d < HS; d++) out[d] += w * vj[d];
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
            long p = (long)(pos0 ? pos0[b] : 0) + t;
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
                long p = (long)(pos0 ? pos0[b] : 0) + t;
                if (p < 0 || p >= S) continue;
                size_t head = (size_t)h * HS;
                attend(out + ((size_t)b * Tq + t) * C + head, qkv + ((size_t)b * Tq + t) * C3 + head,
                       kcache + (size_t)b * S * C + head, vcache + (size_t)b * S * C + head,
                       (size_t)C, (int)p + 1, HS, scale, cpu_scratch(be));
            }
}
