/*
 * cpu_matmul.c - matrix products (CBLAS sgemm where the platform has it,
 * else a blocked C fallback), the fused bias/GELU epilogues and their
 * backward, on the CPU.
 */
#include <math.h>
#include "omp_shim.h"
#include <string.h>

#include "cpu.h"
#include "cpu_math.h"
#include "util.h"

#ifdef GPT_HAVE_CBLAS
#ifdef GPT_ACCELERATE
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
#endif
#endif

/* Blocked fallback, row-major. Each thread owns a block of C's rows, so
 * the result does not depend on the thread count. */
void cpu_sgemm_fallback(int transA, int transB, int M, int N, int K, float alpha,
                           const float *A, int lda, const float *B, int ldb, float beta, float *C,
                           int ldc) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0) memset(c, 0, (size_t)N * sizeof(float));
        else if (beta != 1)
            for (int j = 0; j < N; j++) c[j] *= beta;
        if (transB) { /* c[j] += alpha * dot(A row i, B row j) */
            for (int j = 0; j < N; j++) {
                const float *b = B + (size_t)j * ldb;
                float acc = 0;
                if (!transA) {
                    const float *a = A + (size_t)i * lda;
                    for (int k = 0; k < K; k++) acc += a[k] * b[k];
                } else {
                    for (int k = 0; k < K; k++) acc += A[(size_t)k * lda + i] * b[k];
                }
                c[j] += alpha * acc;
            }
        } else { /* c[:] += alpha * A(i,k) * B row k */
            for (int k0 = 0; k0 < K; k0 += 256) {
                int k1 = k0 + 256 < K ? k0 + 256 : K;
                for (int k = k0; k < k1; k++) {
                    float a = alpha * (transA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]);
                    const float *b = B + (size_t)k * ldb;
                    for (int j = 0; j < N; j++) c[j] += a * b[j];
                }
            }
        }
    }
}

void cpu_sgemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
#ifdef GPT_HAVE_CBLAS
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                transB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
    cpu_sgemm_fallback(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

void cpu_gelu_forward(gpt_backend *be, void *out_, const void *in_, size_t n) {
    float *out = out_;
    const float *in = in_;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = cpu_gelu(in[i]);
}

/* Products of a few rows (KV-cache decoding: N = batch rows) are bound by
 * reading the weights once, but sgemm packs the whole weight matrix for
 * them first: for gpt2 at N = 1 that made a decode step 30x slower than
 * the memory-bandwidth bound. Here each group of 4 weight rows is read
 * from memory once and dotted with every input row while it sits in L1;
 * threads split the output features, so results do not depend on the
 * thread count. */
#define FEW_ROWS 8

/* ISO C mode (-std=c11) does not fuse a*b+c by itself; ask for it where
 * the CPU has FMA (elsewhere fmaf would be a slow library call). */
#ifdef __FMA__
#define FEW_MADD(a, b, c) fmaf(a, b, c)
#else
#define FEW_MADD(a, b, c) ((a) * (b) + (c))
#endif

/* out[j] = dot(x, w_j) for G weight rows: G independent FMA chains, G
 * memory streams in flight. */
#define GROUP 8
static inline void dot_group(const float *x, const float *const *w, int n, float *out) {
    float a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
    const float *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3];
    const float *w4 = w[4], *w5 = w[5], *w6 = w[6], *w7 = w[7];
#pragma omp simd reduction(+ : a0, a1, a2, a3, a4, a5, a6, a7)
    for (int k = 0; k < n; k++) {
        float xv = x[k];
        a0 = FEW_MADD(w0[k], xv, a0);
        a1 = FEW_MADD(w1[k], xv, a1);
        a2 = FEW_MADD(w2[k], xv, a2);
        a3 = FEW_MADD(w3[k], xv, a3);
        a4 = FEW_MADD(w4[k], xv, a4);
        a5 = FEW_MADD(w5[k], xv, a5);
        a6 = FEW_MADD(w6[k], xv, a6);
        a7 = FEW_MADD(w7[k], xv, a7);
    }
    out[0] = a0, out[1] = a1, out[2] = a2, out[3] = a3;
    out[4] = a4, out[5] = a5, out[6] = a6, out[7] = a7;
}

/* y (N,OC) = in (N,IC) @ w (OC,IC)^T + bias, for N <= FEW_ROWS. */
static void matmul_few_rows(float *y, const float *in, const float *w, const float *bias, int N,
                            int IC, int OC) {
    int groups = (OC + GROUP - 1) / GROUP;
#pragma omp parallel for schedule(static)
    for (int g = 0; g < groups; g++) {
        int o0 = GROUP * g;
        /* The last group of an OC that is not a multiple of GROUP repeats
         * its last row and drops the extra results. */
        const float *wr[GROUP];
        for (int j = 0; j < GROUP; j++)
            wr[j] = w + (size_t)(o0 + j < OC ? o0 + j : OC - 1) * IC;
        for (int i = 0; i < N; i++) {
            float acc[GROUP];
            dot_group(in + (size_t)i * IC, wr, IC, acc);
            for (int j = 0; j < GROUP && o0 + j < OC; j++)
                y[(size_t)i * OC + o0 + j] = acc[j] + (bias ? bias[o0 + j] : 0.0f);
        }
    }
}

void cpu_matmul_forward(gpt_backend *be, void *out_, void *pre_, const void *in, const void *w,
                        const void *bias_, int N, int IC, int OC, int gelu_on) {
    float *out = out_, *pre = pre_;
    const float *bias = bias_;
    GPT_ASSERT(gelu_on || !pre);
    /* y goes where the GELU reads it: pre when saved, else out itself. */
    float *y = pre ? pre : out;
    if (N <= FEW_ROWS) {
        matmul_few_rows(y, in, w, bias, N, IC, OC);
        if (gelu_on) cpu_gelu_forward(be, out, y, (size_t)N * OC);
        return;
    }
    if (bias) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < N; i++) memcpy(y + (size_t)i * OC, bias, (size_t)OC * sizeof(float));
    }
    cpu_sgemm(0, 1, N, OC, IC, 1.0f, in, IC, w, IC, bias ? 1.0f : 0.0f, y, OC);
    if (gelu_on) cpu_gelu_forward(be, out, y, (size_t)N * OC);
}

void cpu_matmul_backward(gpt_backend *be, void *din_, void *dw, void *dbias_, const void *dout_,
                         const void *in, const void *w, const void *gelu_pre_, int N, int IC,
                         int OC) {
    float *din = din_, *dbias = dbias_;
    const float *dout = dout_, *gelu_pre = gelu_pre_;
    if (din) {
        /* din (N,IC) = dout (N,OC) @ w (OC,IC) */
        cpu_sgemm(0, 0, N, IC, OC, 1.0f, dout, OC, w, IC, 0.0f, din, IC);
        if (gelu_pre) {
            size_t n = (size_t)N * IC;
#pragma omp parallel for schedule(static)
            for (size_t i = 0; i < n; i++) din[i] *= cpu_gelu_grad(gelu_pre[i]);
        }
    }
    /* dw (OC,IC) += dout^T (OC,N) @ in (N,IC) */
    cpu_sgemm(1, 0, OC, IC, N, 1.0f, dout, OC, in, IC, 1.0f, dw, IC);
    if (dbias) {
        /* Column sums, each column block owned by one thread (fixed order). */
        const int BLK = 64;
        int nblk = (OC + BLK - 1) / BLK;
#pragma omp parallel for schedule(static)
        for (int blk = 0; blk < nblk; blk++) {
            int j0 = blk * BLK, j1 = j0 + BLK < OC ? j0 + BLK : OC;
            float acc[64] = {0};
            for (int i = 0; i < N; i++) {
                const float *row = dout + (size_t)i * OC;
                for (int j = j0; j < j1; j++) acc[j - j0] += row[j];
            }
            for (int j = j0; j < j1; j++) dbias[j] += acc[j - j0];
        }
    }
}
