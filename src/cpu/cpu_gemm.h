/*
 * cpu_gemm.h - fp32 matrix products on packed panels with register-blocked
 * micro-kernels, one per instruction set, chosen at run time
 * (cpu_features.h). See cpu_gemm.c for the blocking.
 */
#ifndef GPT_CPU_GEMM_H
#define GPT_CPU_GEMM_H

#include <stddef.h>
#include <stdint.h>

/* A micro-kernel: c (MR,NR) = a (K,MR) b (K,NR) (+ c when acc), where a
 * and b are packed k-major (a[k*MR + i], b[k*NR + j]) and c is row-major
 * with row stride ldc. A bf16 kernel (pairs = 1) takes K/2 steps of 32-bit
 * words that each hold two bf16 values of consecutive k (the even k in the
 * low half): a[kk*MR + i] = (A[i][2kk], A[i][2kk+1]), and b likewise, the
 * layout of AVX512-BF16's vdpbf16ps; its products are exact in fp32 and
 * the sums fp32. */
typedef void (*gemm_ukernel)(int K, const void *a, const void *b, float *c, ptrdiff_t ldc,
                             int acc);

typedef struct gemm_kernel_s {
    int mr, nr;
    gemm_ukernel kern;
    const char *name; /* "AVX-512 fp32 8x32" */
    int pairs;        /* 1: operands rounded to bf16, packed in pairs */
    /* Layout variants for tile kernels (AMX; 0 for the vector kernels):
     * a_rows: A panels are row-major, a[i*K + kk] (each row's pairs
     * contiguous, as a tile row is loaded), instead of a[kk*MR + i];
     * kgran: K (in steps) is padded with zero pairs to a multiple of this
     * (a tile's depth), so the kernel never sees a partial tile. */
    int a_rows, kgran;
    /* Called by each task of a product before and after its first and
     * last micro-kernel call on that thread (AMX: load the tile
     * configuration, release the tiles), or NULL. */
    void (*begin)(void), (*end)(void);
    /* Packs one whole NR-column panel of a transposed B (fp32),
     * dst[k*NR + j] = src[j*ld + k] for k < kb, faster than the generic
     * loop; next: the following panel's src (to prefetch), or NULL. NULL
     * where the kernel has none. */
    void (*pack_bt)(float *dst, const float *src, ptrdiff_t ld, int kb, const float *next);
    /* The same for a bf16 kernel with NR = 32: dst[kk*32 + j] holds the
     * pair (src[j*ld + 2kk], src[j*ld + 2kk+1]) for kk < steps, zero past
     * kb. NULL where the kernel has none; used only where the CPU has
     * AVX512-BF16 (cpu_gemm.c checks). */
    void (*pack_bt_bf16)(uint32_t *dst, const float *src, ptrdiff_t ld, int kb, int steps,
                         const float *next);
} gemm_kernel;

/* The kernels compiled into this build for each ISA (NULL kern where the
 * ISA is not of this architecture). */
extern const gemm_kernel cpu_gemm_kernel_c;
extern const gemm_kernel cpu_gemm_kernel_avx2;
extern const gemm_kernel cpu_gemm_kernel_avx512;
extern const gemm_kernel cpu_gemm_kernel_neon;
extern const gemm_kernel cpu_gemm_kernel_bf16_c;      /* portable, any CPU */
extern const gemm_kernel cpu_gemm_kernel_avx512_bf16; /* vdpbf16ps */
extern const gemm_kernel cpu_gemm_kernel_amx;         /* AMX tiles, tdpbf16ps */
/* The AMX kernel's code run on a C emulation of the tile instructions
 * (LDTILECFG's shapes, TILELOADD, TDPBF16PS, TILESTORED), over the same
 * packing: any CPU runs it, so the layout and the kernel's addressing are
 * tested where AMX is absent. Slow; for tests. */
extern const gemm_kernel cpu_gemm_kernel_amx_emul;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* The AVX512-BF16 kernel's pack_bt_bf16, which the AMX kernel shares (its
 * B panels are the same). */
void cpu_pack_bt_bf16_avx512(uint32_t *dst, const float *src, ptrdiff_t ld, int kb, int steps,
                             const float *next);
/* Packing pieces with the same rounding, for the kernels that have
 * pack_bt_bf16 where the CPU has AVX512-BF16: pairs from two rows
 * (d[j] = (al s0[j], al s1[j]), j < n; s1 NULL: zero halves) and along one
 * row (d[kk] = (al s[2kk], al s[2kk+1]), kk < nw, zero past kb). */
void cpu_bf16_interleave(uint32_t *d, const float *s0, const float *s1, int n, float al);
void cpu_bf16_pairs(uint32_t *d, const float *s, int kb, int nw, float al);
#endif

/* The fp32 kernel the current ISA level selects. */
const gemm_kernel *cpu_gemm_kernel(void);
/* The fastest bf16 kernel this CPU has (AMX where CPUID has AMX-BF16 and
 * AMX-TILE and Linux grants the tile state, else AVX512-BF16), and
 * whether it has one in hardware (else the portable one, which gives the
 * same rounding). */
const gemm_kernel *cpu_gemm_kernel_bf16(void);
int cpu_has_bf16_kernel(void);

/* C (M,N) = alpha A (M,K) B (K,N) (+ C when acc). Element (i,k) of A is
 * A[i*ars + k*acs], (k,j) of B is B[k*brs + j*bcs]; C is row-major with row
 * stride ldc. Runs on the pool (serially when called from a pool task).
 * Each C tile is computed by one task over the whole K in a fixed order,
 * so the result does not depend on the thread count. */
void cpu_gemm(int M, int N, int K, float alpha, const float *A, ptrdiff_t ars, ptrdiff_t acs,
              const float *B, ptrdiff_t brs, ptrdiff_t bcs, float *C, ptrdiff_t ldc, int acc);

/* The same with a given micro-kernel (tests run every kernel the machine
 * can). */
void cpu_gemm_with(const gemm_kernel *k, int M, int N, int K, float alpha, const float *A,
                   ptrdiff_t ars, ptrdiff_t acs, const float *B, ptrdiff_t brs, ptrdiff_t bcs,
                   float *C, ptrdiff_t ldc, int acc);

/* A linear layer's backward pair: din (N,IC) = dout (N,OC) w (OC,IC) and
 * dw (OC,IC) += dout^T in (N,IC). Where din's K (OC) is long and din small
 * (the LM head: OC = the vocabulary), one pass over OC computes both, each
 * block of dout used by both products while it is in L2; the same bits as
 * the two products computed apart. */
void cpu_gemm_backward(const gemm_kernel *k, int N, int IC, int OC, const float *dout,
                       const float *in, const float *w, float *din, float *dw);

#ifdef GPT_TEST_BUILD
/* Test builds only: the largest shared packed operand and the largest
 * set of a K split's partial products, in floats (0: the default, 16 MiB
 * each), so that small products take the paths that only large ones take
 * otherwise (K split, or both operands packed once in K passes). */
void cpu_gemm_shared_limit(size_t floats, size_t parts);
#endif

#endif
