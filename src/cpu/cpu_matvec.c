/*
 * cpu_matvec.c - products of a few rows (KV-cache decoding: N = batch
 * rows <= FEW_ROWS): y (N,OC) = in (N,IC) @ w (OC,IC)^T + bias.
 *
 * They are bound by reading the weights once (sgemm would pack the whole
 * weight matrix first: 30x slower than the memory-bandwidth bound for gpt2
 * at N = 1). So the weights are read once, in memory order, and every
 * input row is dotted with each weight row while that row is in L1:
 *
 * - Rows one after the other, not 8 rows side by side: 8 interleaved
 *   streams (a 512-byte row each for C = 128) kept one thread far below
 *   its read bandwidth, while one sequential stream is what the hardware
 *   prefetchers follow best (docs/CPU.md, "Decoding"; software
 *   prefetching on top of it measured slower).
 * - Each row's partial sums stay in 8-lane vectors across the whole row
 *   (two chains, so that a long row is not bound by the FMA latency); a
 *   group of 8 rows is reduced at once by a transposed tree (3 levels of
 *   shuffles and adds for all 8), not by 8 horizontal sums.
 * - With several input rows (batched decoding) the products are bound by
 *   loads rather than memory: there the 8 rows of a group go side by side,
 *   one load of an input's 8 values feeding 8 FMAs, the group read from
 *   L1/L2 once per input row.
 *
 * Threads split the groups of 8 output features and every output's sum is
 * made by one task in a fixed order, so results do not depend on the
 * thread count. The tasks run as a private job (cpu_pool.h): a thread
 * switched out by another process does not hold up the token. The
 * vectors are GNU C vector extensions of 32 bytes: one
 * register on the AVX-512 and AVX2 clones (on Zen 4 a 64-byte vector runs
 * as two halves anyway, and 64-byte vectors split in two on AVX2 ran far
 * slower there), two on the baseline x86 clone and on arm64's NEON.
 */
#include <string.h>

#include "cpu.h"
#include "cpu_pool.h"

/* ISO C mode (-std=c11) does not fuse a*b+c by itself; the loop asks for
 * contraction, which the x86-64 v3/v4 clones turn into FMA (one
 * instruction a weight vector; elsewhere fmaf would be a slow call). */
#if defined(__GNUC__) && !defined(__clang__)
#define FEW_CONTRACT __attribute__((optimize("fp-contract=fast")))
#else
#define FEW_CONTRACT
#endif
#define FEW_INLINE FEW_CONTRACT static inline __attribute__((always_inline))

#define GROUP 8  /* output features reduced together */
#define FEW_VL 8  /* fp32 lanes of a vector */

typedef float few_vec __attribute__((vector_size(FEW_VL * sizeof(float))));
/* Loads through a type that may sit at any float's address and alias
 * floats (as intrinsics' unaligned loads do). */
typedef float few_uvec __attribute__((vector_size(FEW_VL * sizeof(float)), aligned(4), may_alias));
#define FEW_LOAD(p) (*(const few_uvec *)(p))

/* The last n < FEW_VL values of a row, zero-padded. */
FEW_INLINE void few_load_part(few_vec *v, const float *p, int n) {
    float t[FEW_VL] = {0};
    memcpy(t, p, (size_t)n * sizeof(float));
    memcpy(v, t, sizeof t);
}

/* out[j] = the sum of a[j]'s 8 lanes, for 8 vectors at once: each level
 * adds the upper half of every lane block to its lower half (lane l +=
 * lane l + 4, then + 2, then + 1), two rows' blocks per vector. */
FEW_INLINE void few_reduce8(const few_vec a[GROUP], float out[GROUP]) {
#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define FEW_SHUFFLES 1
#endif
#endif
#ifdef FEW_SHUFFLES
#define LEVEL1(x, y)                                                                              \
    (__builtin_shufflevector(x, y, 0, 1, 2, 3, 8, 9, 10, 11) +                                    \
     __builtin_shufflevector(x, y, 4, 5, 6, 7, 12, 13, 14, 15))
#define LEVEL2(x, y)                                                                              \
    (__builtin_shufflevector(x, y, 0, 1, 8, 9, 4, 5, 12, 13) +                                    \
     __builtin_shufflevector(x, y, 2, 3, 10, 11, 6, 7, 14, 15))
#define LEVEL3(x, y)                                                                              \
    (__builtin_shufflevector(x, y, 0, 8, 2, 10, 4, 12, 6, 14) +                                   \
     __builtin_shufflevector(x, y, 1, 9, 3, 11, 5, 13, 7, 15))
    /* LEVEL1(a0, a1) = [row 0: 4 | row 1: 4], LEVEL2 of two such =
     * [0 0 2 2 1 1 3 3], LEVEL3 of two such = [0 4 2 6 1 5 3 7] */
    few_vec v = LEVEL3(LEVEL2(LEVEL1(a[0], a[1]), LEVEL1(a[2], a[3])),
                       LEVEL2(LEVEL1(a[4], a[5]), LEVEL1(a[6], a[7])));
    few_vec r = __builtin_shufflevector(v, v, 0, 4, 2, 6, 1, 5, 3, 7);
    memcpy(out, &r, sizeof r);
#undef LEVEL1
#undef LEVEL2
#undef LEVEL3
#else
    /* the same sums in the same order, lane by lane */
    for (int j = 0; j < GROUP; j++) {
        float s[FEW_VL];
        memcpy(s, &a[j], sizeof s);
        for (int h = FEW_VL / 2; h >= 1; h /= 2)
            for (int l = 0; l < h; l++) s[l] += s[l + h];
        out[j] = s[0];
    }
#endif
}

/* acc[j] = lane sums of dot(x, w_j), the rows wr[j] one after the other. */
FEW_INLINE void few_group_seq(const float *const wr[GROUP], const float *x, int IC,
                              few_vec acc[GROUP]) {
    int kb = IC & ~(FEW_VL - 1);
    for (int j = 0; j < GROUP; j++) {
        const float *w = wr[j];
        few_vec s0 = {0}, s1 = {0};
        int k = 0;
        for (; k + 2 * FEW_VL <= kb; k += 2 * FEW_VL) {
            s0 += FEW_LOAD(w + k) * FEW_LOAD(x + k);
            s1 += FEW_LOAD(w + k + FEW_VL) * FEW_LOAD(x + k + FEW_VL);
        }
        if (k < kb) s0 += FEW_LOAD(w + k) * FEW_LOAD(x + k), k += FEW_VL;
        if (k < IC) {
            few_vec wv, xv;
            few_load_part(&wv, w + k, IC - k);
            few_load_part(&xv, x + k, IC - k);
            s0 += wv * xv;
        }
        acc[j] = s0 + s1;
    }
}

/* The same sums with the 8 rows side by side (one chain a row). */
FEW_INLINE void few_group_side(const float *const wr[GROUP], const float *x, int IC,
                               few_vec acc[GROUP]) {
    int kb = IC & ~(FEW_VL - 1);
    few_vec a[GROUP] = {0};
    for (int k = 0; k < kb; k += FEW_VL) {
        few_vec xv = FEW_LOAD(x + k);
        for (int j = 0; j < GROUP; j++) a[j] += FEW_LOAD(wr[j] + k) * xv;
    }
    if (kb < IC) {
        few_vec xv, wv;
        few_load_part(&xv, x + kb, IC - kb);
        for (int j = 0; j < GROUP; j++) {
            few_load_part(&wv, wr[j] + kb, IC - kb);
            a[j] += wv * xv;
        }
    }
    memcpy(acc, a, sizeof a);
}

typedef struct {
    float *y;
    const float *in, *w, *bias;
    int N, IC, OC;
    size_t chunk; /* groups a task */
} few_job;

/* Groups [lo, hi): output o of input row i goes to y[i * ldy + o - col0]. */
FEW_CONTRACT CPU_CLONES static void few_rows_groups(const few_job *job, size_t lo, size_t hi,
                                                    float *y, size_t ldy, int col0) {
    const float *in = job->in, *bias = job->bias;
    int N = job->N, IC = job->IC, OC = job->OC;
    for (size_t g = lo; g < hi; g++) {
        int o0 = GROUP * (int)g;
        /* The last group of an OC that is not a multiple of GROUP repeats
         * its last row and drops the extra results. */
        const float *wr[GROUP];
        for (int j = 0; j < GROUP; j++)
            wr[j] = job->w + (size_t)(o0 + j < OC ? o0 + j : OC - 1) * IC;
        for (int i = 0; i < N; i++) {
            few_vec acc[GROUP];
            if (N == 1) few_group_seq(wr, in, IC, acc);
            else few_group_side(wr, in + (size_t)i * IC, IC, acc);
            float r[GROUP];
            few_reduce8(acc, r);
            float *yr = y + (size_t)i * ldy;
            for (int j = 0; j < GROUP && o0 + j < OC; j++)
                yr[o0 + j - col0] = r[j] + (bias ? bias[o0 + j] : 0.0f);
        }
    }
}

/* Task t: the outputs [c0, c1) of every input row. */
static void few_cols(const few_job *j, int t, int *c0, int *c1) {
    size_t lo = (size_t)t * j->chunk, hi = lo + j->chunk;
    *c0 = GROUP * (int)lo;
    *c1 = GROUP * hi < (size_t)j->OC ? GROUP * (int)hi : j->OC;
}

static void few_task(const void *args, int t, float *priv) {
    const few_job *j = args;
    int c0, c1;
    few_cols(j, t, &c0, &c1);
    size_t lo = (size_t)c0 / GROUP, hi = ((size_t)c1 + GROUP - 1) / GROUP;
    if (priv) few_rows_groups(j, lo, hi, priv, (size_t)(c1 - c0), c0);
    else few_rows_groups(j, lo, hi, j->y, (size_t)j->OC, 0);
}

static void few_publish(const void *args, int t, const float *priv) {
    const few_job *j = args;
    int c0, c1;
    few_cols(j, t, &c0, &c1);
    for (int i = 0; i < j->N; i++)
        memcpy(j->y + (size_t)i * j->OC + c0, priv + (size_t)i * (c1 - c0),
               (size_t)(c1 - c0) * sizeof(float));
}

void cpu_matmul_few_rows(float *y, const float *in, const float *w, const float *bias, int N,
                         int IC, int OC) {
    static const cpu_priv_ops ops = {few_task, few_publish};
    size_t groups = ((size_t)OC + GROUP - 1) / GROUP, chunk = cpu_private_chunk(groups, 4);
    few_job j = {y, in, w, bias, N, IC, OC, chunk};
    cpu_parallel_private((int)((groups + chunk - 1) / chunk), &ops, &j, sizeof j,
                         (size_t)N * chunk * GROUP);
}
