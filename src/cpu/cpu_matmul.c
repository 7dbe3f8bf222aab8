/*
 * cpu_matmul.c - the model's matrix products (cpu_gemm.h's packed kernels,
 * or CBLAS where built with BLAS=openblas|accelerate), the fused bias/GELU
 * epilogues and their backward, on the CPU.
 */
#include <math.h>
#include <string.h>

#include "cpu.h"
#include "cpu_gemm.h"
#include "cpu_math.h"
#include "cpu_pool.h"
#include "util.h"

#ifdef GPT_HAVE_CBLAS
#ifdef GPT_ACCELERATE
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
#endif
#endif

void cpu_sgemm(const gemm_kernel *k, int transA, int transB, int M, int N, int K, float alpha,
               const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    GPT_ASSERT(beta == 0 || beta == 1);
#ifdef GPT_HAVE_CBLAS
    if (!k || !k->pairs) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C,
                    ldc);
        return;
    }
#endif
    cpu_gemm_with(k ? k : cpu_gemm_kernel(), M, N, K, alpha, A, transA ? 1 : lda,
                  transA ? lda : 1, B, transB ? 1 : ldb, transB ? ldb : 1, C, ldc, beta != 0);
}

static const gemm_kernel *ctx_mm(gpt_backend *be) { return ((cpu_ctx *)be->ctx)->mm; }

typedef struct {
    float *out;
    const float *in;
} ew_job;

CPU_CLONES static void gelu_range(void *ctx, size_t lo, size_t hi) {
    const ew_job *j = ctx;
    for (size_t i = lo; i < hi; i++) j->out[i] = cpu_gelu(j->in[i]);
}

/* out *= gelu'(in) */
CPU_CLONES static void gelu_grad_range(void *ctx, size_t lo, size_t hi) {
    const ew_job *j = ctx;
    for (size_t i = lo; i < hi; i++) j->out[i] *= cpu_gelu_grad(j->in[i]);
}

void cpu_gelu_forward(gpt_backend *be, void *out, const void *in, size_t n) {
    ew_job j = {out, in};
    cpu_parallel_range(n, 4096, gelu_range, &j);
}

/* Products of a few rows (KV-cache decoding: N = batch rows) are bound by
 * reading the weights once, but sgemm packs the whole weight matrix for
 * them first: for gpt2 at N = 1 that made a decode step 30x slower than
 * the memory-bandwidth bound. Here each group of 8 weight rows is read
 * from memory once and dotted with every input row while it sits in L1;
 * threads split the output features, so results do not depend on the
 * thread count. */
#define FEW_ROWS 8

/* ISO C mode (-std=c11) does not fuse a*b+c by itself; the few-rows loop
 * asks for contraction, which the x86-64 v3/v4 clones turn into FMA (one
 * instruction a weight; elsewhere fmaf would be a slow library call). */
#define FEW_MADD(a, b, c) ((a) * (b) + (c))
#if defined(__GNUC__) && !defined(__clang__)
#define FEW_CONTRACT __attribute__((optimize("fp-contract=fast")))
#else
#define FEW_CONTRACT
#endif

/* out[j] = dot(x, w_j) for G weight rows: G independent FMA chains, G
 * memory streams in flight. */
#define GROUP 8
FEW_CONTRACT static inline void dot_group(const float *x, const float *const *w, int n, float *out) {
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

typedef struct {
    float *y;
    const float *in, *w, *bias;
    int N, IC, OC;
} few_job;

FEW_CONTRACT CPU_CLONES static void few_rows_groups(void *ctx, size_t lo, size_t hi) {
    const few_job *job = ctx;
    float *y = job->y;
    const float *in = job->in, *w = job->w, *bias = job->bias;
    int N = job->N, IC = job->IC, OC = job->OC;
    for (size_t g = lo; g < hi; g++) {
        int o0 = GROUP * (int)g;
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

/* y (N,OC) = in (N,IC) @ w (OC,IC)^T + bias, for N <= FEW_ROWS. */
static void matmul_few_rows(float *y, const float *in, const float *w, const float *bias, int N,
                            int IC, int OC) {
    few_job j = {y, in, w, bias, N, IC, OC};
    cpu_parallel_range(((size_t)OC + GROUP - 1) / GROUP, 4, few_rows_groups, &j);
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
    if (bias)
        for (int i = 0; i < N; i++) memcpy(y + (size_t)i * OC, bias, (size_t)OC * sizeof(float));
    cpu_sgemm(ctx_mm(be), 0, 1, N, OC, IC, 1.0f, in, IC, w, IC, bias ? 1.0f : 0.0f, y, OC);
    if (gelu_on) cpu_gelu_forward(be, out, y, (size_t)N * OC);
}

/* Column sums over 64-column blocks, rows in order (fixed order). */
CPU_CLONES static void dbias_cols(void *ctx, size_t lo, size_t hi) {
    const few_job *j = ctx;
    for (size_t blk = lo; blk < hi; blk++) {
        int j0 = (int)blk * 64, j1 = j0 + 64 < j->OC ? j0 + 64 : j->OC;
        float acc[64] = {0};
        for (int i = 0; i < j->N; i++) {
            const float *row = j->in + (size_t)i * j->OC;
            for (int c = j0; c < j1; c++) acc[c - j0] += row[c];
        }
        for (int c = j0; c < j1; c++) j->y[c] += acc[c - j0];
    }
}

void cpu_matmul_backward(gpt_backend *be, void *din_, void *dw, void *dbias_, const void *dout_,
                         const void *in, const void *w, const void *gelu_pre_, int N, int IC,
                         int OC) {
    float *din = din_, *dbias = dbias_;
    const float *dout = dout_, *gelu_pre = gelu_pre_;
    if (din) {
        /* din (N,IC) = dout (N,OC) @ w (OC,IC) */
        cpu_sgemm(ctx_mm(be), 0, 0, N, IC, OC, 1.0f, dout, OC, w, IC, 0.0f, din, IC);
        if (gelu_pre) {
            ew_job j = {din, gelu_pre};
            cpu_parallel_range((size_t)N * IC, 4096, gelu_grad_range, &j);
        }
    }
    /* dw (OC,IC) += dout^T (OC,N) @ in (N,IC) */
    cpu_sgemm(ctx_mm(be), 1, 0, OC, IC, N, 1.0f, dout, OC, in, IC, 1.0f, dw, IC);
    if (dbias) {
        few_job j = {dbias, dout, NULL, NULL, N, 0, OC};
        cpu_parallel_range(((size_t)OC + 63) / 64, 1, dbias_cols, &j);
    }
}
