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
 * int32 lane. Activations come as u = q + 128 (cpu_q8_act.q, x_u8), so
 * sum(u * w) = sum(q * w) + 128 * sum(w): the second term is the same
 * vpdpbusd with u = 128, computed once per weight vector and shared by
 * the activation rows, and the row's sums start from its negation. A
 * 64-byte vector is two blocks: int32 lanes 0-7 sum block 2j, lanes 8-15
 * block 2j+1; they are scaled in fp32 by (weight scale) x (activation
 * scale) lane by lane and summed across lanes once, at the end. */

/* [d0 x 8, d1 x 8] as fp32 from the fp16 scale pair (d0 low, d1 high). */
T512 static inline __m512 scales_pair(uint32_t pair) {
    const __m256i spread = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, /* lane 0: d0 */
                                            2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3); /* lane 1: d1 */
    return _mm512_cvtph_ps(_mm256_shuffle_epi8(_mm256_set1_epi32((int)pair), spread));
}

/* One 64-byte vector of weights WV (two blocks, scales DWV; the second
 * block all zero in the tail of a K that is 32 mod 64) against up to four
 * activation rows at XQ (quants) and XD (expanded scales). */
#define VNNI_STEP(WV, DWV, XQ, XD, M8, M16)                                                      \
    do {                                                                                         \
        __m512i neg_ = _mm512_sub_epi32(_mm512_setzero_si512(),                                  \
                                        _mm512_dpbusd_epi32(_mm512_setzero_si512(), u128, WV));  \
        VNNI_ROW(0, a0, WV, DWV, XQ, XD, M8, M16)                                                \
        VNNI_ROW(1, a1, WV, DWV, XQ, XD, M8, M16)                                                \
        VNNI_ROW(2, a2, WV, DWV, XQ, XD, M8, M16)                                                \
        VNNI_ROW(3, a3, WV, DWV, XQ, XD, M8, M16)                                                \
    } while (0)
#define VNNI_ROW(j, acc, WV, DWV, XQ, XD, M8, M16)                                               \
    if (j < nn) {                                                                                \
        __m512i s_ = _mm512_dpbusd_epi32(neg_, _mm512_maskz_loadu_epi8(M8, (XQ) + j * K), WV);   \
        __m512 f_ = _mm512_mul_ps(_mm512_cvtepi32_ps(s_),                                        \
                                  _mm512_maskz_loadu_ps(M16, (XD) + j * (K / 4)));               \
        acc = _mm512_fmadd_ps(f_, DWV, acc);                                                     \
    }

T512 static void rows_avx512vnni(float *y, size_t ldy, const cpu_q8_act *x, const int8_t *wq,
                                 const uint16_t *wd, int o0, int o1) {
    size_t K = x->K, nb = K / GPT_Q8_BLOCK, K64 = K / 64 * 64;
    const __m512i u128 = _mm512_set1_epi8((char)0x80);
    const __mmask64 all8 = ~(__mmask64)0, half8 = 0xFFFFFFFFull;
    const __mmask16 all16 = 0xFFFF, half16 = 0x00FF;
    for (int o = o0; o < o1; o++) {
        const int8_t *w = wq + (size_t)o * K;
        const uint16_t *dw = wd + (size_t)o * nb;
        for (int n0 = 0; n0 < x->N; n0 += 4) {
            int nn = x->N - n0 < 4 ? x->N - n0 : 4;
            const int8_t *xq = x->q + (size_t)n0 * K;
            const float *xd = x->dexp + (size_t)n0 * (K / 4);
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (size_t k = 0; k < K64; k += 64) {
                __m512i wv = _mm512_loadu_si512(w + k);
                uint32_t pair;
                memcpy(&pair, dw + k / GPT_Q8_BLOCK, 4);
                __m512 dwv = scales_pair(pair);
                VNNI_STEP(wv, dwv, xq + k, xd + k / 4, all8, all16);
            }
            if (K64 < K) { /* one block left */
                __m512i wv = _mm512_maskz_loadu_epi8(half8, w + K64);
                __m512 dwv = scales_pair(dw[K64 / GPT_Q8_BLOCK]);
                VNNI_STEP(wv, dwv, xq + K64, xd + K64 / 4, half8, half16);
            }
            __m512 acc[4] = {a0, a1, a2, a3};
            for (int j = 0; j < nn; j++) y[(size_t)(n0 + j) * ldy + o] = _mm512_reduce_add_ps(acc[j]);
        }
    }
}
#undef VNNI_ROW
#undef VNNI_STEP

static const cpu_q8_kernel kernel_avx512vnni = {"avx512-vnni", 1, 1, rows_avx512vnni};

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

static const cpu_q8_kernel kernel_avx2 = {"avx2", 0, 0, rows_avx2};

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
