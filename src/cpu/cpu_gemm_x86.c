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

#include <stdint.h>

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

/* A 16 x 16 transpose of 32-bit values in registers: row i of the result
 * (column i of r) is stored at d + i*ds, for i < n. */
AVX512 static inline void transpose16_store(const __m512 r[16], float *d, ptrdiff_t ds, int n) {
    __m512 t[16], u[16], o[16];
    /* per 128-bit lane L: t[2m] = r[2m], r[2m+1] at columns 4L, 4L+1
     * interleaved; t[2m+1] at 4L+2, 4L+3 */
#pragma GCC unroll 8
    for (int m = 0; m < 8; m++) {
        t[2 * m] = _mm512_unpacklo_ps(r[2 * m], r[2 * m + 1]);
        t[2 * m + 1] = _mm512_unpackhi_ps(r[2 * m], r[2 * m + 1]);
    }
    /* u[4g + q], lane L: rows 4g..4g+3 at column 4L + q */
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        u[4 * g] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
        u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
        u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
        u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
    }
    /* a 4 x 4 transpose of lanes: column 4L + q, lane g = u[4g + q] lane L */
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
        __m512 x0 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0x44);
        __m512 x1 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0xEE);
        __m512 x2 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0x44);
        __m512 x3 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0xEE);
        o[0 + q] = _mm512_shuffle_f32x4(x0, x2, 0x88);
        o[4 + q] = _mm512_shuffle_f32x4(x0, x2, 0xDD);
        o[8 + q] = _mm512_shuffle_f32x4(x1, x3, 0x88);
        o[12 + q] = _mm512_shuffle_f32x4(x1, x3, 0xDD);
    }
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++)
        if (i < n) _mm512_storeu_ps(d + i * ds, o[i]);
}

/* Row r of a panel being packed, 64 floats past column k0 (4 lines
 * ahead), or, near the panel's end (kb), the next panel's row at the same
 * distance. */
AVX512 static inline void prefetch_ahead(const float *src, const float *next, ptrdiff_t ld, int kb,
                                         int k0, int r) {
    if (k0 + 64 < kb) _mm_prefetch((const char *)(src + r * ld + k0 + 64), _MM_HINT_T0);
    else if (next) _mm_prefetch((const char *)(next + r * ld + k0 + 64 - kb), _MM_HINT_T0);
}

/* One 32-column panel of a transposed B, dst[k*32 + j] = src[j*ld + k]
 * (a forward product's weight: each output feature's row is contiguous
 * along k): 16 x 16 blocks transposed in registers. Stored one value at a
 * time, the panel's 32 strided stores per k held the packing to about one
 * value a cycle. Each row is prefetched 4 lines ahead, and the next
 * panel's rows before this one ends (32 streams are more than the
 * hardware prefetcher follows). */
AVX512 static void pack_bt_avx512(float *dst, const float *src, ptrdiff_t ld, int kb,
                                  const float *next) {
    int k0 = 0;
    for (; k0 + 16 <= kb; k0 += 16) {
        for (int h = 0; h < 2; h++) {
            const float *s = src + (ptrdiff_t)16 * h * ld + k0;
            __m512 r[16];
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++) {
                prefetch_ahead(src, next, ld, kb, k0, 16 * h + i);
                r[i] = _mm512_loadu_ps(s + i * ld);
            }
            transpose16_store(r, dst + (ptrdiff_t)k0 * 32 + 16 * h, 32, 16);
        }
    }
    for (; k0 < kb; k0++)
        for (int j = 0; j < 32; j++) dst[(ptrdiff_t)k0 * 32 + j] = src[(ptrdiff_t)j * ld + k0];
}

/* The same panel in bf16 pairs for the AVX512-BF16 and AMX kernels:
 * dst[kk*32 + j] = (src[j*ld + 2kk], src[j*ld + 2kk+1]) for kk < steps,
 * zero past kb. VCVTNE2PS2BF16 turns 32 consecutive k of a row into its 16
 * pairs in order, then 16 x 16 transposes store them (not a store a
 * pair). The conversion rounds to nearest even as to_bf16 does, but
 * takes an fp32 denormal input for zero
 * (to_bf16 may round the largest ones up to the smallest normal bf16),
 * which both kernels' multiply-adds do with denormal bf16 inputs anyway:
 * the products differ only where an input is within 2^-133 of 2^-126. */
AVX512BF16 void cpu_pack_bt_bf16_avx512(uint32_t *dst, const float *src, ptrdiff_t ld, int kb,
                                        int steps, const float *next) {
    for (int kw = 0; kw < steps; kw += 16) {
        int k0 = 2 * kw, nf = kb - k0 < 0 ? 0 : kb - k0 > 32 ? 32 : kb - k0;
        __mmask16 m0 = (__mmask16)((1u << (nf < 16 ? nf : 16)) - 1);
        __mmask16 m1 = (__mmask16)((1u << (nf > 16 ? nf - 16 : 0)) - 1);
        for (int h = 0; h < 2; h++) {
            const float *s = src + (ptrdiff_t)16 * h * ld + k0;
            __m512 r[16];
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++) {
                prefetch_ahead(src, next, ld, kb, k0, 16 * h + i);
                __m512 lo = _mm512_maskz_loadu_ps(m0, s + i * ld);
                __m512 hi = _mm512_maskz_loadu_ps(m1, s + i * ld + 16);
                r[i] = (__m512)_mm512_cvtne2ps_pbh(hi, lo);
            }
            int n = steps - kw < 16 ? steps - kw : 16;
            transpose16_store(r, (float *)dst + (ptrdiff_t)kw * 32 + 16 * h, 32, n);
        }
    }
}

/* bf16 pairs from two rows: d[j] = (s0[j], s1[j]) times al for j < n
 * (s1 NULL: zero high halves); the rounding of pack_bt_bf16. */
AVX512BF16 void cpu_bf16_interleave(uint32_t *d, const float *s0, const float *s1, int n,
                                    float al) {
    /* 16-bit lane 2j takes lane j (s0's), 2j+1 lane 16 + j (s1's) */
    static const uint16_t order[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                       8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    __m512i idx = _mm512_loadu_si512(order);
    __m512 va = _mm512_set1_ps(al);
    for (int j = 0; j < n; j += 16) {
        __mmask16 m = n - j >= 16 ? 0xFFFF : (__mmask16)((1u << (n - j)) - 1);
        __m512 a = _mm512_mul_ps(va, _mm512_maskz_loadu_ps(m, s0 + j));
        __m512 b = s1 ? _mm512_mul_ps(va, _mm512_maskz_loadu_ps(m, s1 + j)) : _mm512_setzero_ps();
        __m512i c = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(b, a));
        _mm512_mask_storeu_epi32(d + j, m, c);
    }
}

/* bf16 pairs along one row: d[kk] = (s[2kk], s[2kk+1]) times al for kk <
 * nw, zero past kb values. */
AVX512BF16 void cpu_bf16_pairs(uint32_t *d, const float *s, int kb, int nw, float al) {
    __m512 va = _mm512_set1_ps(al);
    for (int kw = 0; kw < nw; kw += 16) {
        int k0 = 2 * kw, nf = kb - k0 < 0 ? 0 : kb - k0 > 32 ? 32 : kb - k0;
        __mmask16 m0 = (__mmask16)((1u << (nf < 16 ? nf : 16)) - 1);
        __mmask16 m1 = (__mmask16)((1u << (nf > 16 ? nf - 16 : 0)) - 1);
        __m512 lo = _mm512_mul_ps(va, _mm512_maskz_loadu_ps(m0, s + k0));
        __m512 hi = _mm512_mul_ps(va, _mm512_maskz_loadu_ps(m1, s + k0 + 16));
        int n = nw - kw < 16 ? nw - kw : 16;
        _mm512_mask_storeu_epi32(d + kw, (__mmask16)((1u << n) - 1),
                                 (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
}

const gemm_kernel cpu_gemm_kernel_avx512 = {.mr = 8, .nr = 32, .kern = ukernel_avx512,
                                            .name = "AVX-512 fp32 8x32", .pack_bt = pack_bt_avx512};
const gemm_kernel cpu_gemm_kernel_avx2 = {
    .mr = 6, .nr = 16, .kern = ukernel_avx2, .name = "AVX2 fp32 6x16"};
const gemm_kernel cpu_gemm_kernel_avx512_bf16 = {
    .mr = 8, .nr = 32, .kern = ukernel_avx512_bf16, .name = "AVX512-BF16 bf16 8x32", .pairs = 1,
    .pack_bt_bf16 = cpu_pack_bt_bf16_avx512};
#else
const gemm_kernel cpu_gemm_kernel_avx512 = {
    .mr = 8, .nr = 32, .kern = 0, .name = "AVX-512 fp32 8x32"};
const gemm_kernel cpu_gemm_kernel_avx2 = {.mr = 6, .nr = 16, .kern = 0, .name = "AVX2 fp32 6x16"};
const gemm_kernel cpu_gemm_kernel_avx512_bf16 = {
    .mr = 8, .nr = 32, .kern = 0, .name = "AVX512-BF16 bf16 8x32", .pairs = 1};
#endif
