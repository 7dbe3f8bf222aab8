/*
 * cpu.h - the CPU backend's operations (C11, fp32, on its own thread pool,
 * cpu_pool.h). This is the readable reference every other backend is
 * tested against: plain loops over independent rows or heads, packed
 * matrix products (cpu_gemm.h), reductions over a fixed number of chunks
 * in a fixed order, so that results are bitwise repeatable whatever the
 * thread count.
 */
#ifndef GPT_CPU_H
#define GPT_CPU_H

#include "backend.h"

/* The loops outside the matrix products (layernorm, softmax, GELU, AdamW,
 * attention, decoding's dot products) are compiled three times, for
 * x86-64-v4 (AVX-512), v3 (AVX2 + FMA) and the baseline, and the loader
 * picks the one this CPU runs (function multi-versioning through an
 * ifunc): the default build runs them at the CPU's width without
 * -march=native. Results may differ in the last bits between CPUs of
 * different widths (vector reductions), never between runs on one. */
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(GPT_NO_CLONES)
#define CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CPU_CLONES
#endif

/* Chunks of a reduction across rows (fixed, so the sum's order is). */
#define RED_CHUNKS 16

/* Private state: per-thread scratch and the folded products' rows, sized
 * by reserve(). */
typedef struct {
    int nthreads;
    float *scratch;        /* nthreads * scratch_per_thread floats */
    size_t scratch_per_thread;
    float *fold;           /* fold_elems floats: B x C rows (cpu_backend.c) */
    size_t fold_elems;
    float *partials;       /* RED_CHUNKS * 2C floats: layernorm dw, db partials */
    size_t partials_floats;
    const struct gemm_kernel_s *mm; /* the model products' kernel (fp32 or bf16) */
    int prec_auto;         /* GPT_PREC_AUTO asked: bf16 for training where the CPU has it */
    double *timers;        /* n_timers wall-clock stamps */
    int n_timers;
    const struct cpu_q8_kernel_s *q8; /* the int8 kernel products use (cpu_q8.h) */
    float *kv_part;        /* decoding attention's chunk partials (cpu_attention.c) */
    size_t kv_part_floats;
    void *q8_scratch;      /* quantised activations of one int8 product */
    size_t q8_scratch_bytes;
    char desc[160];
} cpu_ctx;

/* Scratch for the calling pool thread (at least scratch_per_thread). */
float *cpu_scratch(gpt_backend *be);

/* cpu_matmul.c */
void cpu_matmul_forward(gpt_backend *be, void *out, void *pre, const void *in, const void *w,
                        const void *bias, int N, int IC, int OC, int gelu);
void cpu_matmul_backward(gpt_backend *be, void *din, void *dw, void *dbias, const void *dout,
                         const void *in, const void *w, const void *gelu_pre, int N, int IC,
                         int OC);
void cpu_gelu_forward(gpt_backend *be, void *out, const void *in, size_t n);
/* cpu_matvec.c: y (N,OC) = in (N,IC) @ w (OC,IC)^T + bias (or none), for
 * the few rows of decoding (N <= 8 or so) */
void cpu_matmul_few_rows(float *y, const float *in, const float *w, const float *bias, int N,
                         int IC, int OC);
/* C(M,N) = alpha * op(A) op(B) + beta * C, row-major, beta 0 or 1, with
 * kernel k (cpu_gemm.h; NULL: the fp32 kernel of this CPU, or CBLAS where
 * built with BLAS=...). */
void cpu_sgemm(const struct gemm_kernel_s *k, int transA, int transB, int M, int N, int K,
               float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C,
               int ldc);

/* cpu_q8.c */
void cpu_matmul_q8_forward(gpt_backend *be, void *out, void *pre, const void *in, const void *wq,
                           const void *bias, int N, int IC, int OC, int gelu);

/* cpu_attention.c */
void cpu_attention_forward(gpt_backend *be, void *out, float *lse, const void *qkv, int B, int T,
                           int C, int NH);
void cpu_attention_backward(gpt_backend *be, void *dqkv, const void *dout, const void *qkv,
                            const void *out, const float *lse, int B, int T, int C, int NH);
void cpu_attention_kv_forward(gpt_backend *be, void *out, const void *qkv, void *kcache,
                              void *vcache, const int *pos0, int B, int Tq, int S, int C, int NH);
/* Cache positions a task of decoding attention covers, and the partials
 * its chunks of B rows of an S-long cache need (floats). */
#define CPU_KV_CHUNK 32
/* Queries a task of prefill attention takes (its scores: CPU_KV_QBLOCK x
 * the positions it sees, in the thread's scratch). */
#define CPU_KV_QBLOCK 64
size_t cpu_kv_partials_floats(int B, int S, int C, int NH);

/* cpu_ops.c */
void cpu_encoder_forward(gpt_backend *be, void *out, const int *tok, const int *pos0,
                         const void *wte, const void *wpe, int B, int T, int C, int Vp, int maxT);
void cpu_encoder_backward(gpt_backend *be, void *dwte, void *dwpe, const void *dout,
                          const int *tok, int B, int T, int C, int Vp);
void cpu_layernorm_forward(gpt_backend *be, void *out, float *mean, float *rstd, const void *x,
                           const void *w, const void *b, int N, int C, float eps);
void cpu_residual_layernorm_forward(gpt_backend *be, void *res, void *out, float *mean,
                                    float *rstd, const void *a, const void *b, const void *w,
                                    const void *bias, int N, int C, float eps);
void cpu_layernorm_backward(gpt_backend *be, void *dx, void *dw, void *db, const void *dout,
                            const void *x, const void *w, const float *mean, const float *rstd,
                            int N, int C);
void cpu_crossentropy(gpt_backend *be, float *losses, void *logits, const int *tgt, int N, int V,
                      int Vp, float dloss, int grad);
void cpu_sum_f32(gpt_backend *be, float *out, const float *in, size_t n, int accumulate);
void cpu_add(gpt_backend *be, void *out, const void *a, const void *b, size_t n);
void cpu_sumsq(gpt_backend *be, float *out, const void *grad, size_t n);
void cpu_adamw(gpt_backend *be, void *params, float *master, void *grad, float *m, float *v,
               size_t n, size_t n_decay, const gpt_adamw_hyper *hyper, gpt_step_stats *stats);

#endif
