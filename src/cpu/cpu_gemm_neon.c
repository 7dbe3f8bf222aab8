/*
 * cpu_gemm_neon.c - the arm64 Advanced SIMD fp32 micro-kernel, 8 x 12:
 * 24 accumulators of 4 floats, three B vectors and two A vectors in the 32
 * q registers; each A value is taken by lane (fmla by element), so A needs
 * no broadcast.
 */
#include "cpu_gemm.h"

#if defined(__aarch64__)
#include <arm_neon.h>

static void ukernel_neon(int K, const void *a_, const void *b_, float *c, ptrdiff_t ldc,
                         int acc) {
    const float *a = a_, *b = b_;
    float32x4_t t[8][3];
    for (int i = 0; i < 8; i++) t[i][0] = t[i][1] = t[i][2] = vdupq_n_f32(0);
    for (int k = 0; k < K; k++, a += 8, b += 12) {
        float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8);
        float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
#define ROW(i, av, lane)                                  \
    t[i][0] = vfmaq_laneq_f32(t[i][0], b0, av, lane);     \
    t[i][1] = vfmaq_laneq_f32(t[i][1], b1, av, lane);     \
    t[i][2] = vfmaq_laneq_f32(t[i][2], b2, av, lane)
        ROW(0, a0, 0);
        ROW(1, a0, 1);
        ROW(2, a0, 2);
        ROW(3, a0, 3);
        ROW(4, a1, 0);
        ROW(5, a1, 1);
        ROW(6, a1, 2);
        ROW(7, a1, 3);
#undef ROW
    }
    for (int i = 0; i < 8; i++) {
        float *r = c + i * ldc;
        for (int j = 0; j < 3; j++) {
            float32x4_t v = t[i][j];
            if (acc) v = vaddq_f32(v, vld1q_f32(r + 4 * j));
            vst1q_f32(r + 4 * j, v);
        }
    }
}

const gemm_kernel cpu_gemm_kernel_neon = {
    .mr = 8, .nr = 12, .kern = ukernel_neon, .name = "NEON fp32 8x12"};
#else
const gemm_kernel cpu_gemm_kernel_neon = {.mr = 8, .nr = 12, .kern = 0, .name = "NEON fp32 8x12"};
#endif
