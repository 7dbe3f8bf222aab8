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

/* Products of a few rows (KV-cache decoding) read each weight once:
 * cpu_matvec.c. */
#define FEW_ROWS 8

void cpu_matmul_forward(gpt_backend *be, void *out_, void *pre_, const void *in, const void *w,
                        const void *bias_, int N, int IC, int OC, int gelu_on) {
    float *out = out_, *pre = pre_;
    const float *bias = bias_;
    GPT_ASSERT(gelu_on || !pre);
    /* y goes where the GELU reads it: pre when saved, else out itself. */
    float *y = pre ? pre : out;
    if (N <= FEW_ROWS) {
        cpu_matmul_few_rows(y, in, w, bias, N, IC, OC);
        if (gelu_on) cpu_gelu_forward(be, out, y, (size_t)N * OC);
        return;
    }
    if (bias)
        for (int i = 0; i < N; i++) memcpy(y + (size_t)i * OC, bias, (size_t)OC * sizeof(float));
    cpu_sgemm(ctx_mm(be), 0, 1, N, OC, IC, 1.0f, in, IC, w, IC, bias ? 1.0f : 0.0f, y, OC);
    if (gelu_on) cpu_gelu_forward(be, out, y, (size_t)N * OC);
}

typedef struct {
    float *y;
    const float *in;
    int N, OC;
} dbias_job;

/* Column sums over 64-column blocks, rows in order (fixed order). */
CPU_CLONES static void dbias_cols(void *ctx, size_t lo, size_t hi) {
    const dbias_job *j = ctx;
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
    const gemm_kernel *k = ctx_mm(be);
    int both = din != NULL;
#ifdef GPT_HAVE_CBLAS
    both = both && k && k->pairs; /* fp32 products go to the BLAS */
#endif
    if (both) {
        /* din = dout @ w and dw += dout^T @ in, in one pass over OC where
         * that pays (the LM head) */
        cpu_gemm_backward(k ? k : cpu_gemm_kernel(), N, IC, OC, dout, in, w, din, dw);
    } else {
        if (din) /* din (N,IC) = dout (N,OC) @ w (OC,IC) */
            cpu_sgemm(k, 0, 0, N, IC, OC, 1.0f, dout, OC, w, IC, 0.0f, din, IC);
        /* dw (OC,IC) += dout^T (OC,N) @ in (N,IC) */
        cpu_sgemm(k, 1, 0, OC, IC, N, 1.0f, dout, OC, in, IC, 1.0f, dw, IC);
    }
    if (din && gelu_pre) {
        ew_job j = {din, gelu_pre};
        cpu_parallel_range((size_t)N * IC, 4096, gelu_grad_range, &j);
    }
    if (dbias) {
        dbias_job j = {dbias, dout, N, OC};
        cpu_parallel_range(((size_t)OC + 63) / 64, 1, dbias_cols, &j);
    }
}
