/*
 * cpu_gemm_x86.c - the AVX2+FMA and AVX-512 fp32 micro-kernels. Each is
 * compiled for its own ISA (function target attributes), so the file
 * builds with the baseline flags and the kernels run only where
 * cpu_features says the CPU and OS support them.
 *
 * Register budget: AVX-512 8 x 32 keeps 16 accumulators of 16 floats, two
 * B vectors and one broadcast in 32 zmm registers, 16 FMAs per 10 loads;
 * AVX2 6 x 16 keeps 12 accumulators, two B vectors and one broadcast in the
 * 16 ymm registers.
 */
#include "cpu_gemm.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")))
#define AVX2 __attribute__((target("avx2,fma")))
#define AVX512BF16 \
    __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx512bf16,avx2,fma")))

AVX512 static void ukernel_avx512(int K, const void *a_, const void *b_, float *c, ptrdiff_t ldc,
                                  int acc) {
    const float *a = a_, *b = b_;
    __m512 c0[8], c1[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) c0[i] = c1[i] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++, a += 8, b += 32) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        float *r = c + i * ldc;
        if (acc) {
            c0[i] = _mm512_add_ps(c0[i], _mm512_loadu_ps(r));
            c1[i] = _mm512_add_ps(c1[i], _mm512_loadu_ps(r + 16));
        }
        _mm512_storeu_ps(r, c0[i]);
        _mm512_storeu_ps(r + 16, c1[i]);
    }
}

AVX2 static void ukernel_avx2(int K, const void *a_, const void *b_, float *c, ptrdiff_t ldc,
                              int acc) {
    const float *a = a_, *b = b_;
    __m256 c0[6], c1[6];
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) c0[i] = c1[i] = _mm256_setzero_ps();
    for (int k = 0; k < K; k++, a += 6, b += 16) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
        for (int i = 0; i < 6; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i);
            c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
            c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) {
        float *r = c + i * ldc;
        if (acc) {
            c0[i] = _mm256_add_ps(c0[i], _mm256_loadu_ps(r));
            c1[i] = _mm256_add_ps(c1[i], _mm256_loadu_ps(r + 8));
        }
        _mm256_storeu_ps(r, c0[i]);
        _mm256_storeu_ps(r + 8, c1[i]);
    }
}

/* bf16 pairs, 8 x 32: per step one 32-bit word (two bf16 of consecutive
 * k) of each A row broadcast, two vectors of 16 B words, and vdpbf16ps
 * adds both products into each fp32 accumulator: twice the multiply-adds
 * of an fp32 FMA per instruction. */
AVX512BF16 static void ukernel_avx512_bf16(int K, const void *a_, const void *b_, float *c,
                                           ptrdiff_t ldc, int acc) {
    const int *a = a_;
    const __m512i *b = b_;
    __m512 c0[8], c1[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) c0[i] = c1[i] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++, a += 8, b += 2) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(b), b1 = (__m512bh)_mm512_loadu_si512(b + 1);
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            __m512bh ai = (__m512bh)_mm512_set1_epi32(a[i]);
            c0[i] = _mm512_dpbf16_ps(c0[i], ai, b0);
            c1[i] = _mm512_dpbf16_ps(c1[i], ai, b1);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        float *r = c + i * ldc;
        if (acc) {
            c0[i] = _mm512_add_ps(c0[i], _mm512_loadu_ps(r));
            c1[i] = _mm512_add_ps(c1[i], _mm512_loadu_ps(r + 16));
        }
        _mm512_storeu_ps(r, c0[i]);
        _mm512_storeu_ps(r + 16, c1[i]);
    }
}

const gemm_kernel cpu_gemm_kernel_avx512 = {
    .mr = 8, .nr = 32, .kern = ukernel_avx512, .name = "AVX-512 fp32 8x32"};
const gemm_kernel cpu_gemm_kernel_avx2 = {
    .mr = 6, .nr = 16, .kern = ukernel_avx2, .name = "AVX2 fp32 6x16"};
const gemm_kernel cpu_gemm_kernel_avx512_bf16 = {
    .mr = 8, .nr = 32, .kern = ukernel_avx512_bf16, .name = "AVX512-BF16 bf16 8x32", .pairs = 1};
#else
const gemm_kernel cpu_gemm_kernel_avx512 = {
    .mr = 8, .nr = 32, .kern = 0, .name = "AVX-512 fp32 8x32"};
const gemm_kernel cpu_gemm_kernel_avx2 = {.mr = 6, .nr = 16, .kern = 0, .name = "AVX2 fp32 6x16"};
const gemm_kernel cpu_gemm_kernel_avx512_bf16 = {
    .mr = 8, .nr = 32, .kern = 0, .name = "AVX512-BF16 bf16 8x32", .pairs = 1};
#endif
