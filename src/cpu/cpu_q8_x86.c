/*
 * cpu_q8_x86.c - int8 product kernels for x86-64 (cpu_q8.h's contract):
 * AVX512-VNNI and AVX2. Each function carries its instruction set as a
 * target attribute, so the build needs no -march and one binary runs on
 * any x86-64; cpu_q8.c calls a kernel only where cpu_features says the CPU
 * has it. Both kernels read each weight vector once and use it for up to four
 * activation rows (batch rows in decoding), then move on: decoding is
 * bound by reading the weights, so nothing is gained by keeping them.
 */
#include <string.h>

#include "cpu_features.h"
#include "cpu_q8.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,avx2,fma,f16c")))
#define T256 __attribute__((target("avx2,fma,f16c")))

/* ---------------------------------------------------------- AVX512-VNNI
 * vpdpbusd multiplies unsigned by signed bytes, four products into each
 * int32 lane. The weights are made unsigned (u = w + 128: one xor) and the
 * activations stay signed, so a block's sum is sum(w * x) + 128 * sum(x):
 * the excess depends on the activations alone and is subtracted once per
 * group of blocks (cpu_q8_act.xs, made with the quants).
 *
 * Decoding is bound by reading the weights only if the kernel spends few
 * instructions a weight byte: scaling each vector's 16 lanes by their
 * blocks' scales (a conversion, a multiply and an FMA a vector, plus
 * widening the scales) kept one core at about half its read bandwidth.
 * So four vectors (a group: 256 weights, 8 blocks) are folded first, in
 * int32 and exactly, into one vector of half-block sums (fold4), and one
 * conversion and one FMA scale the whole group, its 8 weight scales times
 * the 8 activation scales widened to the fold's lane order by one
 * permute. Rows are read one after the other, in memory order. */

/* Half-block sums of a group: s0..s3 are the int32 lane sums of its four
 * vectors (vector v: blocks 2v in 128-bit lanes 0-1, 2v+1 in lanes 2-3).
 * Each level adds lanes 2 apart, then 1 apart, of interleaved pairs: lane
 * 4L + j of the result is the sum of 128-bit lane L of vector [0,2,1,3][j],
 * i.e. half of block [0,4,2,6][j] + (L >= 2). */
T512 static inline __m512i fold4(__m512i s0, __m512i s1, __m512i s2, __m512i s3) {
    __m512i p = _mm512_add_epi32(_mm512_unpacklo_epi32(s0, s1), _mm512_unpackhi_epi32(s0, s1));
    __m512i q = _mm512_add_epi32(_mm512_unpacklo_epi32(s2, s3), _mm512_unpackhi_epi32(s2, s3));
    return _mm512_add_epi32(_mm512_unpacklo_epi32(p, q), _mm512_unpackhi_epi32(p, q));
}

/* What a call's groups share: the shape, the masks of a partial last
 * group, the constants. */
typedef struct {
    size_t K, nb, XS, G, rem; /* G full groups, then rem quants (< 256) */
    __mmask64 part8[4];       /* the last group's quants, vector by vector */
    __mmask8 part4;           /* its blocks */
} vnni_shape;

/* acc += one group of one activation row: u the group's unsigned weights,
 * xq its 256 quants, xs its 16 excess terms, dw8 its 8 weight scales, dx
 * the row's 8 activation scales (m4: the valid ones). */
T512 static inline __m512 vnni_group(__m512 acc, const __m512i u[4], const int8_t *xq,
                                     const __mmask64 m8[4], const int32_t *xs, __m256 dw8,
                                     const float *dx, __mmask8 m4) {
    /* fold4's block of each lane */
    const __m512i perm = _mm512_setr_epi32(0, 4, 2, 6, 0, 4, 2, 6, 1, 5, 3, 7, 1, 5, 3, 7);
    __m512i z = _mm512_setzero_si512();
    __m512i r = fold4(_mm512_dpbusd_epi32(z, u[0], _mm512_maskz_loadu_epi8(m8[0], xq)),
                      _mm512_dpbusd_epi32(z, u[1], _mm512_maskz_loadu_epi8(m8[1], xq + 64)),
                      _mm512_dpbusd_epi32(z, u[2], _mm512_maskz_loadu_epi8(m8[2], xq + 128)),
                      _mm512_dpbusd_epi32(z, u[3], _mm512_maskz_loadu_epi8(m8[3], xq + 192)));
    r = _mm512_sub_epi32(r, _mm512_loadu_si512(xs));
    __m256 s8 = _mm256_mul_ps(dw8, _mm256_maskz_loadu_ps(m4, dx));
    __m512 s16 = _mm512_permutexvar_ps(perm, _mm512_castps256_ps512(s8));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(r), s16, acc);
}

/* Group g of the weight row at w (scales dw) as unsigned bytes, and its
 * scales as fp32; m8, m4 as in vnni_group. */
T512 static inline void vnni_weights(__m512i u[4], __m256 *dw8, const int8_t *w, const uint16_t *dw,
                                     size_t g, const __mmask64 m8[4], __mmask8 m4) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (int i = 0; i < 4; i++)
        u[i] = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m8[i], w + g * 256 + 64 * i), flip);
    *dw8 = _mm256_cvtph_ps(_mm_maskz_loadu_epi16(m4, dw + g * 8));
}

/* The lane sums of weight row w (scales dw) times activation row n. */
T512 static inline __m512 vnni_row(const vnni_shape *sh, const int8_t *w, const uint16_t *dw,
                                   const cpu_q8_act *x, int n) {
    static const __mmask64 full8[4] = {~0ull, ~0ull, ~0ull, ~0ull};
    const int8_t *xq = x->q + (size_t)n * sh->K;
    const int32_t *xs = x->xs + (size_t)n * sh->XS;
    const float *xd = x->d + (size_t)n * sh->nb;
    __m512 acc = _mm512_setzero_ps();
    __m512i u[4];
    __m256 dw8;
    for (size_t g = 0; g < sh->G; g++) {
        vnni_weights(u, &dw8, w, dw, g, full8, 0xFF);
        acc = vnni_group(acc, u, xq + g * 256, full8, xs + g * 16, dw8, xd + g * 8, 0xFF);
    }
    if (sh->rem) {
        size_t g = sh->G;
        vnni_weights(u, &dw8, w, dw, g, sh->part8, sh->part4);
        acc = vnni_group(acc, u, xq + g * 256, sh->part8, xs + g * 16, dw8, xd + g * 8, sh->part4);
    }
    return acc;
}

/* The sums of the lanes of a0..a3, by the same steps as fold4. */
T512 static inline __m128 reduce4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
    __m512 p = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
    __m512 q = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
    __m512 r = _mm512_add_ps(_mm512_unpacklo_ps(p, q), _mm512_unpackhi_ps(p, q)); /* [a0 a2 a1 a3] x 4 */
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(r), _mm512_extractf32x8_ps(r, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    return _mm_shuffle_ps(s, s, _MM_SHUFFLE(3, 1, 2, 0));
}

/* Several activation rows (batched decoding, prefill): each group of
 * weights is loaded once for up to four of them, their accumulators in
 * named variables (an array of them was kept in memory). */
T512 static void vnni_rows_batch(const vnni_shape *sh, float *y, size_t ldy, const cpu_q8_act *x,
                                 const int8_t *w, const uint16_t *dw, int o) {
    static const __mmask64 full8[4] = {~0ull, ~0ull, ~0ull, ~0ull};
    for (int n0 = 0; n0 < x->N; n0 += 4) {
        int nn = x->N - n0 < 4 ? x->N - n0 : 4;
        __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
        for (size_t g = 0; g <= sh->G; g++) {
            if (g == sh->G && !sh->rem) break;
            const __mmask64 *m8 = g < sh->G ? full8 : sh->part8;
            __mmask8 m4 = g < sh->G ? 0xFF : sh->part4;
            __m512i u[4];
            __m256 dw8;
            vnni_weights(u, &dw8, w, dw, g, m8, m4);
            const int8_t *xq = x->q + (size_t)n0 * sh->K + g * 256;
            const int32_t *xs = x->xs + (size_t)n0 * sh->XS + g * 16;
            const float *xd = x->d + (size_t)n0 * sh->nb + g * 8;
#define VNNI_XROW(j)                                                                             \
    if (j < nn)                                                                                  \
        acc##j = vnni_group(acc##j, u, xq + j * sh->K, m8, xs + j * sh->XS, dw8, xd + j * sh->nb, m4);
            VNNI_XROW(0) VNNI_XROW(1) VNNI_XROW(2) VNNI_XROW(3)
#undef VNNI_XROW
        }
        __m512 acc[4] = {acc0, acc1, acc2, acc3};
        for (int j = 0; j < nn; j++) y[(size_t)(n0 + j) * ldy + o] = _mm512_reduce_add_ps(acc[j]);
    }
}

T512 static void rows_avx512vnni(float *y, size_t ldy, const cpu_q8_act *x, const int8_t *wq,
                                 const uint16_t *wd, int o0, int o1) {
    vnni_shape sh;
    sh.K = x->K, sh.nb = sh.K / GPT_Q8_BLOCK, sh.XS = CPU_Q8_XS(sh.K);
    sh.G = sh.K / 256, sh.rem = sh.K % 256;
    for (int i = 0; i < 4; i++) {
        size_t n = sh.rem > 64 * (size_t)i ? sh.rem - 64 * (size_t)i : 0;
        sh.part8[i] = n >= 64 ? ~0ull : (1ull << n) - 1;
    }
    sh.part4 = (__mmask8)((1u << (sh.rem / GPT_Q8_BLOCK)) - 1);
    int o = o0;
    /* One activation row (decoding): four weight rows, one after the
     * other, then their sums reduced together. */
    if (x->N == 1)
        for (; o + 4 <= o1; o += 4) {
            __m512 r[4];
            for (int i = 0; i < 4; i++)
                r[i] = vnni_row(&sh, wq + (size_t)(o + i) * sh.K, wd + (size_t)(o + i) * sh.nb, x, 0);
            _mm_storeu_ps(y + o, reduce4(r[0], r[1], r[2], r[3]));
        }
    for (; o < o1; o++) {
        const int8_t *w = wq + (size_t)o * sh.K;
        const uint16_t *dw = wd + (size_t)o * sh.nb;
        if (x->N == 1) y[o] = _mm512_reduce_add_ps(vnni_row(&sh, w, dw, x, 0));
        else vnni_rows_batch(&sh, y, ldy, x, w, dw, o);
    }
}

/* The portable quantisation (cpu_q8.c) a block at a time in two vectors:
 * at batch 1 each product quantises one row while the other threads wait,
 * and the portable loop (scalar there) was a few per cent of a token.
 * Same values: vmaxps returns its second operand when the first is a NaN
 * (a NaN passed over, as there), the rounding is to nearest even (rintf),
 * and NaN lanes (x NaN, or Inf x 0 in a row with an Inf) become 0 before
 * the clamp, as there. */
T512 static void quant_row_avx512(int8_t *q, float *d, int32_t *xs, const float *x, int IC,
                                  size_t K) {
    static const int xs_block[16] = CPU_Q8_XS_ORDER;
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
    const __m512 hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-127.0f);
    size_t nb = K / GPT_Q8_BLOCK;
    int32_t sum[8] = {0};
    for (size_t b = 0; b < nb; b++) {
        size_t c0 = b * GPT_Q8_BLOCK, n = (size_t)IC - c0 < GPT_Q8_BLOCK ? (size_t)IC - c0 : GPT_Q8_BLOCK;
        __mmask16 m0 = (__mmask16)(n >= 16 ? 0xFFFF : (1u << n) - 1);
        __mmask16 m1 = (__mmask16)(n >= 32 ? 0xFFFF : n > 16 ? (1u << (n - 16)) - 1 : 0);
        __m512 x0 = _mm512_maskz_loadu_ps(m0, x + c0), x1 = _mm512_maskz_loadu_ps(m1, x + c0 + 16);
        __m512 a = _mm512_max_ps(_mm512_and_ps(x0, absmask), _mm512_setzero_ps());
        a = _mm512_max_ps(_mm512_and_ps(x1, absmask), a);
        float amax = _mm512_reduce_max_ps(a);
        float db = amax / 127.0f, inv = amax > 0 ? 127.0f / amax : 0.0f;
        d[b] = db;
        __m512 vi = _mm512_set1_ps(inv);
        __m512i v[2];
        for (int h = 0; h < 2; h++) {
            __m512 f = _mm512_roundscale_ps(_mm512_mul_ps(h ? x1 : x0, vi),
                                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            f = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(f, f, _CMP_ORD_Q), f);
            v[h] = _mm512_cvtps_epi32(_mm512_max_ps(_mm512_min_ps(f, hi), lo));
            _mm_storeu_si128((__m128i *)(q + c0 + 16 * h), _mm512_cvtepi32_epi8(v[h]));
        }
        sum[b % 8] = _mm512_reduce_add_epi32(_mm512_add_epi32(v[0], v[1]));
        if (xs && (b % 8 == 7 || b + 1 == nb)) {
            for (int l = 0; l < 16; l++) xs[b / 8 * 16 + l] = 64 * sum[xs_block[l]];
            memset(sum, 0, sizeof sum);
        }
    }
}

static const cpu_q8_kernel kernel_avx512vnni = {"avx512-vnni", 0, 1, rows_avx512vnni,
                                                quant_row_avx512};

/* ----------------------------------------------------------------- AVX2
 * vpmaddubsw multiplies unsigned by signed bytes into int16 pairs, with
 * saturation: |w| (<= 127, never -128) times the activation with w's sign
 * moved onto it keeps each pair within 2 * 127 * 127 < 32767. One block
 * is one 32-byte vector, scaled by its two scales as one fp32 factor. */

T256 static void rows_avx2(float *y, size_t ldy, const cpu_q8_act *x, const int8_t *wq,
                           const uint16_t *wd, int o0, int o1) {
    size_t K = x->K, nb = K / GPT_Q8_BLOCK;
    const __m256i ones = _mm256_set1_epi16(1);
    for (int o = o0; o < o1; o++) {
        const int8_t *w = wq + (size_t)o * K;
        const uint16_t *dw = wd + (size_t)o * nb;
        for (int n0 = 0; n0 < x->N; n0 += 4) {
            int nn = x->N - n0 < 4 ? x->N - n0 : 4;
            const int8_t *xq = x->q + (size_t)n0 * K;
            const float *xd = x->d + (size_t)n0 * nb;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (size_t b = 0; b < nb; b++) {
                __m256i wv = _mm256_loadu_si256((const __m256i *)(w + b * GPT_Q8_BLOCK));
                __m256i aw = _mm256_abs_epi8(wv);
                float dwf = _cvtsh_ss(dw[b]);
#define ROW(j, acc)                                                                             \
    if (j < nn) {                                                                               \
        __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + j * K + b * GPT_Q8_BLOCK));      \
        __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv, wv)), ones); \
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dwf * xd[j * nb + b]), acc); \
    }
                ROW(0, a0) ROW(1, a1) ROW(2, a2) ROW(3, a3)
#undef ROW
            }
            __m256 acc[4] = {a0, a1, a2, a3};
            for (int j = 0; j < nn; j++) {
                __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc[j]), _mm256_extractf128_ps(acc[j], 1));
                s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                s = _mm_add_ss(s, _mm_movehdup_ps(s));
                y[(size_t)(n0 + j) * ldy + o] = _mm_cvtss_f32(s);
            }
        }
    }
}

static const cpu_q8_kernel kernel_avx2 = {"avx2", 0, 0, rows_avx2, NULL};

/* cpu_features' AVX2 level is x86-64-v3 (AVX2, FMA), whose CPUs all have
 * F16C too (vcvtph2ps, for the scales). */
const cpu_q8_kernel *cpu_q8_kernel_avx512vnni(void) {
    const cpu_features *f = cpu_features_get();
    return f->isa >= CPU_ISA_AVX512 && f->avx512_vnni ? &kernel_avx512vnni : NULL;
}
const cpu_q8_kernel *cpu_q8_kernel_avx2(void) {
    return cpu_features_get()->isa >= CPU_ISA_AVX2 ? &kernel_avx2 : NULL;
}

#else
const cpu_q8_kernel *cpu_q8_kernel_avx512vnni(void) { return NULL; }
const cpu_q8_kernel *cpu_q8_kernel_avx2(void) { return NULL; }
#endif
