/*
 * cpu_q8_arm.c - int8 product kernels for arm64 (cpu_q8.h's contract):
 * NEON with the dot-product instructions (sdot, Armv8.2's optional
 * feature, on every Apple M-series and Neoverse core) and plain NEON for
 * the cores without them. The dot-product kernel lives in its own file,
 * built for Armv8.2+dotprod, and runs only where cpu_features finds the
 * feature (the kernel's HWCAP_ASIMDDP).
 */
#include "cpu_features.h"
#include "cpu_q8.h"

#if defined(__aarch64__)
#include <arm_neon.h>

/* One block's scale as fp32 (the hardware converts fp16). */
static inline float scale_f32(const uint16_t *d) {
    __fp16 h;
    __builtin_memcpy(&h, d, 2);
    return (float)h;
}

/* The dot-product kernel (cpu_q8_neondot.c, compiled for Armv8.2 with
 * the dot product: compilers gate the sdot intrinsic on the target, and
 * not all of them take that per function). */
void cpu_q8_rows_neon_dot(float *y, size_t ldy, const cpu_q8_act *x, const int8_t *wq,
                          const uint16_t *wd, int o0, int o1);

/* Without sdot: int8 x int8 into int16 (|product| <= 127 * 128, no
 * overflow) with smull, pairwise-added into int32 lanes with sadalp. */
static void rows_neon(float *y, size_t ldy, const cpu_q8_act *x, const int8_t *wq,
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
#define ROW(j, acc)                                                                          \
    if (j < nn) {                                                                            \
        const int8_t *xb = xq + j * K + b * GPT_Q8_BLOCK;                                    \
        int8x16_t x0 = vld1q_s8(xb), x1 = vld1q_s8(xb + 16);                                 \
        int32x4_t s = vpaddlq_s16(vmull_s8(vget_low_s8(w0), vget_low_s8(x0)));               \
        s = vpadalq_s16(s, vmull_high_s8(w0, x0));                                           \
        s = vpadalq_s16(s, vmull_s8(vget_low_s8(w1), vget_low_s8(x1)));                      \
        s = vpadalq_s16(s, vmull_high_s8(w1, x1));                                           \
        acc = vfmaq_n_f32(acc, vcvtq_f32_s32(s), dwf * xd[j * nb + b]);                      \
    }
                ROW(0, a0) ROW(1, a1) ROW(2, a2) ROW(3, a3)
#undef ROW
            }
            float32x4_t acc[4] = {a0, a1, a2, a3};
            for (int j = 0; j < nn; j++) y[(size_t)(n0 + j) * ldy + o] = vaddvq_f32(acc[j]);
        }
    }
}

static const cpu_q8_kernel kernel_neon_dot = {"neon-dotprod", 0, 0, cpu_q8_rows_neon_dot, NULL};
static const cpu_q8_kernel kernel_neon = {"neon", 0, 0, rows_neon, NULL};

const cpu_q8_kernel *cpu_q8_kernel_neon_dot(void) {
    const cpu_features *f = cpu_features_get();
    return f->isa >= CPU_ISA_NEON && f->neon_dot ? &kernel_neon_dot : NULL;
}
const cpu_q8_kernel *cpu_q8_kernel_neon(void) {
    return cpu_features_get()->isa >= CPU_ISA_NEON ? &kernel_neon : NULL;
}

#else
const cpu_q8_kernel *cpu_q8_kernel_neon_dot(void) { return NULL; }
const cpu_q8_kernel *cpu_q8_kernel_neon(void) { return NULL; }
#endif
