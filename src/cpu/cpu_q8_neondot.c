/*
 * cpu_q8_neondot.c - the int8 product kernel for arm64 cores with the dot
 * product (sdot): cpu_q8.h's contract, picked by cpu_q8_arm.c. The Makefile
 * builds this file alone with -march=armv8.2-a+dotprod (compilers gate the
 * intrinsic on the target), so nothing here may run before that check.
 */
#include "cpu_q8.h"

#if defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
#include <arm_neon.h>

static inline float scale_f32(const uint16_t *d) {
    __fp16 h;
    __builtin_memcpy(&h, d, 2);
    return (float)h;
}

/* sdot: four int8 x int8 products into each int32 lane; a block of 32 is
 * two 16-byte vectors, two sdots into one int32x4, scaled in fp32. */
void cpu_q8_rows_neon_dot(float *y, size_t ldy, const cpu_q8_act *x, const int8_t *wq,
                          const uint16_t *wd, int o0, int o1) {
    size_t K = x->K, nb = K / GPT_Q8_BLOCK;
    for (int o = o0; o < o1; o++) {
        const int8_t *w = wq + (size_t)o * K;
        const uint16_t *dw = wd + (size_t)o * nb;
        for (int n0 = 0; n0 < x->N; n0 += 4) {
            int nn = x->N - n0 < 4 ? x->N - n0 : 4;
            const int8_t *xq = x->q + (size_t)n0 * K;
            const float *xd = x->d + (size_t)n0 * nb;
            float32x4_t a0 = vdupq_n_f32(0), a1 = a0, a2 = a0, a3 = a0;
            for (size_t b = 0; b < nb; b++) {
                int8x16_t w0 = vld1q_s8(w + b * GPT_Q8_BLOCK), w1 = vld1q_s8(w + b * GPT_Q8_BLOCK + 16);
                float dwf = scale_f32(dw + b);
#define ROW(j, acc)                                                                           \
    if (j < nn) {                                                                             \
        const int8_t *xb = xq + j * K + b * GPT_Q8_BLOCK;                                     \
        int32x4_t s = vdotq_s32(vdotq_s32(vdupq_n_s32(0), w0, vld1q_s8(xb)), w1,              \
                                vld1q_s8(xb + 16));                                           \
        acc = vfmaq_n_f32(acc, vcvtq_f32_s32(s), dwf * xd[j * nb + b]);                       \
    }
                ROW(0, a0) ROW(1, a1) ROW(2, a2) ROW(3, a3)
#undef ROW
            }
            float32x4_t acc[4] = {a0, a1, a2, a3};
            for (int j = 0; j < nn; j++) y[(size_t)(n0 + j) * ldy + o] = vaddvq_f32(acc[j]);
        }
    }
}

#elif defined(__aarch64__)
#error "cpu_q8_neondot.c must be built with the dot product (-march=armv8.2-a+dotprod)"
#endif
