/*
 * cpu_q8.h - the CPU's int8 matrix products (weights in quant.h's layout,
 * activations quantised on the fly, blocks of 32 each with their own
 * scale, int32 sums within a block, fp32 across blocks), and the kernels
 * that compute them: one per instruction set, chosen at run time.
 */
#ifndef GPT_CPU_Q8_H
#define GPT_CPU_Q8_H

#include <stddef.h>
#include <stdint.h>

#include "quant.h"

/* Activations quantised for one product: N rows of K quants (K = IC
 * rounded up to 32, padding 0) and K/32 block scales, x ~= d * q. */
typedef struct {
    int N;
    size_t K;
    const int8_t *q;    /* (N, K); as unsigned q + 128 for kernels with x_u8 */
    const float *d;     /* (N, K/32) */
    const int32_t *xs;  /* (N, CPU_Q8_XS(K)), for kernels with xsum: see below */
} cpu_q8_act;

/* cpu_q8_act.xs: for each group of 8 blocks (K rounded up to 256, padding
 * blocks 0), 16 int32 that are 64 x the sum of a block's quants, block
 * CPU_Q8_XS_ORDER[lane] of the group: the lane order
 * in which the AVX512-VNNI kernel folds a group's products (cpu_q8_x86.c),
 * which subtracts them there (two lanes a block: 2 x 64 = 128). */
#define CPU_Q8_XS(K) (((K) + 255) / 256 * 16)
#define CPU_Q8_XS_ORDER {0, 4, 2, 6, 0, 4, 2, 6, 1, 5, 3, 7, 1, 5, 3, 7}

/* One kernel: y[n*ldy + o] = sum over k of w[o,k] * x[n,k] for output
 * rows o in [o0, o1) and every activation row n, where w (OC, K) is a
 * quantised matrix: wq its quants (row o at wq + o*K), wd its fp16 scales
 * (row o at wd + o*K/32). Each y is summed in a fixed order (blocks in
 * order), so results do not depend on how rows are split over threads. */
typedef struct cpu_q8_kernel_s {
    const char *name;     /* "avx512-vnni", "avx2", "neon-dotprod", "neon", "c" */
    int x_u8;             /* wants activations as q + 128 (unsigned x signed products) */
    int xsum;             /* wants cpu_q8_act.xs */
    void (*rows)(float *y, size_t ldy, const cpu_q8_act *x, const int8_t *wq, const uint16_t *wd,
                 int o0, int o1);
    /* Optional: quantises one activation row x (IC) into q (K), d (K/32)
     * and, with xsum, xs (CPU_Q8_XS(K)), the same values as the portable
     * code (cpu_q8.c) in fewer instructions; NULL: the portable code. */
    void (*quant_row)(int8_t *q, float *d, int32_t *xs, const float *x, int IC, size_t K);
} cpu_q8_kernel;

/* The kernels this build has that this CPU can run, best first (the
 * portable "c" one is always last); *n receives how many. */
const cpu_q8_kernel *const *cpu_q8_kernels(int *n);
/* The kernel products use: the first of cpu_q8_kernels. */
const cpu_q8_kernel *cpu_q8_best(void);

/* Bytes of scratch quantised activations take for N rows of IC inputs. */
size_t cpu_q8_act_bytes(int N, int IC);
/* Quantises x (N, IC) fp32 into scratch (cpu_q8_act_bytes) in the form
 * kernel k wants; fills *a. */
void cpu_q8_quantize_act(cpu_q8_act *a, void *scratch, const float *x, int N, int IC,
                         const cpu_q8_kernel *k);
/* y (N, OC) = x @ w^T (+ bias (OC) if not NULL) through kernel k, output
 * rows split over threads; with gelu_out (N, OC): also gelu_out = gelu(y)
 * (it may be y itself). */
void cpu_q8_matmul(const cpu_q8_kernel *k, float *y, const cpu_q8_act *x, const void *wq, int OC,
                   const float *bias, float *gelu_out);

/* Kernels by instruction set (cpu_q8_x86.c, cpu_q8_arm.c); NULL where
 * the build or the CPU lacks it. */
const cpu_q8_kernel *cpu_q8_kernel_avx512vnni(void);
const cpu_q8_kernel *cpu_q8_kernel_avx2(void);
const cpu_q8_kernel *cpu_q8_kernel_neon_dot(void);
const cpu_q8_kernel *cpu_q8_kernel_neon(void);

#endif
