/*
 * cpu_q8.c - int8 matrix products on the CPU: the backend's
 * matmul_q8_forward, the quantisation of its activations, the split of
 * output rows over threads, the portable C kernel (the reference the SIMD
 * kernels are tested against) and the choice of kernel at run time.
 *
 * Why the activations are quantised too: an int8 x int8 product with int32
 * sums is what the CPUs' dot-product instructions do (VNNI's vpdpbusd,
 * NEON's sdot), 4x the products per instruction of fp32 FMA. Each block of
 * 32 activations gets its own fp32 scale (the blocks of the weights'
 * layout), so one large activation costs precision only in its block.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "cpu_pool.h"
#include "cpu_math.h"
#include "cpu_q8.h"
#include "util.h"

size_t cpu_q8_act_bytes(int N, int IC) {
    size_t K = gpt_q8_cols(IC);
    /* quants, then block scales, then the block sums (64-byte aligned each) */
    return (size_t)N * K + (size_t)N * (K / GPT_Q8_BLOCK) * 4 + (size_t)N * CPU_Q8_XS(K) * 4 + 128;
}

/* Inlined into quant_rows' clones: fabsf, the maximum and rintf become
 * vector instructions there (fmaxf and rintf are library calls on
 * baseline x86-64; with decoding's products 4x cheaper in int8, this loop
 * showed in a token's profile). */
static inline void quantize_row(int8_t *q, float *d, int32_t *xs, const float *x, int IC, size_t K,
                                int u8) {
    /* the lane order of cpu_q8_act.xs within a group of 8 blocks */
    static const int xs_block[16] = CPU_Q8_XS_ORDER;
    size_t nb = K / GPT_Q8_BLOCK;
    int32_t sum[8] = {0};
    for (size_t b = 0; b < nb; b++) {
        size_t c0 = b * GPT_Q8_BLOCK, n = (size_t)IC - c0 < GPT_Q8_BLOCK ? (size_t)IC - c0 : GPT_Q8_BLOCK;
        float amax = 0;
        /* a NaN is passed over as fmaxf does (an Inf is kept) */
        for (size_t c = 0; c < n; c++) {
            float a = fabsf(x[c0 + c]);
            amax = a > amax ? a : amax;
        }
        float db = amax / 127.0f, inv = amax > 0 ? 127.0f / amax : 0.0f;
        d[b] = db;
        int32_t bs = 0;
        for (size_t c = 0; c < GPT_Q8_BLOCK; c++) {
            /* rintf: round half to even, as the weights' lrintf. Clamped as a
             * float: a non-finite row (amax Inf: inv 0, Inf * 0 NaN) must not
             * reach the int conversion; its scale db carries the Inf/NaN on */
            float f = c < n ? rintf(x[c0 + c] * inv) : 0.0f;
            int v = f > 127.0f ? 127 : f < -127.0f ? -127 : f == f ? (int)f : 0;
            bs += v;
            if (u8) ((uint8_t *)q)[c0 + c] = (uint8_t)(v + 128);
            else q[c0 + c] = (int8_t)v;
        }
        sum[b % 8] = bs;
        if (xs && (b % 8 == 7 || b + 1 == nb)) { /* a group done (padding blocks 0) */
            for (int l = 0; l < 16; l++) xs[b / 8 * 16 + l] = 64 * sum[xs_block[l]];
            memset(sum, 0, sizeof sum);
        }
    }
}

typedef struct {
    int8_t *q;
    float *d;
    int32_t *xs;
    const float *x;
    int IC;
    size_t K, nb;
    int u8;
    const cpu_q8_kernel *k;
} quant_job;

CPU_CLONES static void quant_rows(void *ctx, size_t lo, size_t hi) {
    const quant_job *j = ctx;
    for (size_t n = lo; n < hi; n++) {
        int8_t *q = j->q + n * j->K;
        float *d = j->d + n * j->nb;
        int32_t *xs = j->xs ? j->xs + n * CPU_Q8_XS(j->K) : NULL;
        if (j->k->quant_row) j->k->quant_row(q, d, xs, j->x + n * j->IC, j->IC, j->K);
        else quantize_row(q, d, xs, j->x + n * j->IC, j->IC, j->K, j->u8);
    }
}

void cpu_q8_quantize_act(cpu_q8_act *a, void *scratch, const float *x, int N, int IC,
                         const cpu_q8_kernel *k) {
    size_t K = gpt_q8_cols(IC), nb = K / GPT_Q8_BLOCK;
    char *p = scratch;
    int8_t *q = (int8_t *)p;
    float *d = (float *)(p + (((size_t)N * K + 63) & ~(size_t)63));
    int32_t *xs = (int32_t *)(p + (((size_t)N * K + 63) & ~(size_t)63) +
                              (((size_t)N * nb * 4 + 63) & ~(size_t)63));
    a->N = N;
    a->K = K;
    a->q = q;
    a->d = d;
    a->xs = k->xsum ? xs : NULL;
    quant_job j = {q, d, k->xsum ? xs : NULL, x, IC, K, nb, k->x_u8, k};
    cpu_parallel_range((size_t)N, (size_t)N * K >= 65536 ? 1 : (size_t)N, quant_rows, &j);
}

/* ------------------------------------------------------ portable kernel */

static void rows_c(float *y, size_t ldy, const cpu_q8_act *x, const int8_t *wq,
                   const uint16_t *wd, int o0, int o1) {
    size_t K = x->K, nb = K / GPT_Q8_BLOCK;
    for (int o = o0; o < o1; o++) {
        const int8_t *w = wq + (size_t)o * K;
        const uint16_t *dw = wd + (size_t)o * nb;
        for (int n = 0; n < x->N; n++) {
            const int8_t *xq = x->q + (size_t)n * K;
            const float *dx = x->d + (size_t)n * nb;
            float acc = 0;
            for (size_t b = 0; b < nb; b++) {
                int32_t s = 0;
                for (int c = 0; c < GPT_Q8_BLOCK; c++)
                    s += (int32_t)w[b * GPT_Q8_BLOCK + c] * xq[b * GPT_Q8_BLOCK + c];
                acc += gpt_f16_to_f32(dw[b]) * dx[b] * (float)s;
            }
            y[(size_t)n * ldy + o] = acc;
        }
    }
}

static const cpu_q8_kernel kernel_c = {"c", 0, 0, rows_c, NULL};

/* ------------------------------------------------------------- dispatch */

const cpu_q8_kernel *const *cpu_q8_kernels(int *n) {
    static const cpu_q8_kernel *list[8];
    static int count = -1;
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&mu);
    if (count < 0) {
        int k = 0;
        const cpu_q8_kernel *cands[] = {cpu_q8_kernel_avx512vnni(), cpu_q8_kernel_avx2(),
                                        cpu_q8_kernel_neon_dot(), cpu_q8_kernel_neon()};
        for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++)
            if (cands[i]) list[k++] = cands[i];
        list[k++] = &kernel_c;
        count = k;
    }
    pthread_mutex_unlock(&mu);
    *n = count;
    return list;
}

const cpu_q8_kernel *cpu_q8_best(void) {
    int n;
    return cpu_q8_kernels(&n)[0];
}

/* Weight bytes x activation rows a task: at one activation row (decoding)
 * 256 KB of weights, 336 rows of gpt2's 768 inputs. A thread's read of
 * the weights restarts at each task it takes (the hardware prefetchers
 * ramp up again), and 16-row tasks (12 KB there) kept two threads at 60%
 * of the read bandwidth of 128-256 KB ones (docs/CPU.md, "int8 decoding").
 * With more activation rows a byte of weights is more work, so a task
 * has fewer rows. Never fewer than 16 rows, nor fewer than 8 tasks where
 * the matrix has the rows, so that a thread slowed by a busy core leaves
 * its share to the others. The rows of a task are a multiple of 16 and
 * depend on the shape only: results do not depend on the thread count. */
#define TASK_WORK ((size_t)256 << 10)
#define MIN_ROWS 16

/* A private job (cpu_pool.h): the activations' description is copied in,
 * not pointed to (it lives on the caller's stack). */
typedef struct {
    const cpu_q8_kernel *k;
    float *y;
    cpu_q8_act x;
    const int8_t *q;
    const uint16_t *d;
    int OC;
    const float *bias;
    float *gelu_out;
    int rows; /* output rows a task */
} q8_job;

/* Task t's rows [o0, o1) of y (N, OC) and gelu_out; into priv: y's
 * (N, o1 - o0), then gelu_out's. */
CPU_CLONES static void q8_rows_task(const void *args, int t, float *priv) {
    const q8_job *j = args;
    int N = j->x.N, OC = j->OC, o0 = t * j->rows;
    int o1 = o0 + j->rows < OC ? o0 + j->rows : OC, R = o1 - o0;
    size_t K = j->x.K, nb = K / GPT_Q8_BLOCK;
    /* the kernel sees rows [0, R) of the task's own weights */
    float *y = priv ? priv : j->y + o0;
    float *g = !j->gelu_out ? NULL : priv ? priv + (size_t)N * R : j->gelu_out + o0;
    size_t ld = priv ? (size_t)R : (size_t)OC;
    j->k->rows(y, ld, &j->x, j->q + (size_t)o0 * K, j->d + (size_t)o0 * nb, 0, R);
    /* the epilogue while the task's outputs are in cache, one loop for the
     * bias and one for GELU: without branches inside, they vectorise */
    for (int n = 0; n < N; n++) {
        float *yr = y + (size_t)n * ld;
        if (j->bias) {
            const float *bo = j->bias + o0;
#pragma omp simd
            for (int o = 0; o < R; o++) yr[o] += bo[o];
        }
        if (g) {
            float *gr = g + (size_t)n * ld;
#pragma omp simd
            for (int o = 0; o < R; o++) gr[o] = cpu_gelu(yr[o]);
        }
    }
}

static void q8_rows_publish(const void *args, int t, const float *priv) {
    const q8_job *j = args;
    int N = j->x.N, OC = j->OC, o0 = t * j->rows;
    int R = (o0 + j->rows < OC ? o0 + j->rows : OC) - o0;
    for (int n = 0; n < N; n++) {
        memcpy(j->y + (size_t)n * OC + o0, priv + (size_t)n * R, (size_t)R * sizeof(float));
        if (j->gelu_out)
            memcpy(j->gelu_out + (size_t)n * OC + o0, priv + (size_t)(N + n) * R,
                   (size_t)R * sizeof(float));
    }
}

void cpu_q8_matmul(const cpu_q8_kernel *k, float *y, const cpu_q8_act *x, const void *wq, int OC,
                   const float *bias, float *gelu_out) {
    static const cpu_priv_ops ops = {q8_rows_task, q8_rows_publish};
    const int8_t *q = wq;
    const uint16_t *d = (const uint16_t *)((const char *)wq + (size_t)OC * x->K);
    size_t fit = TASK_WORK / (x->K * (size_t)x->N), most = (size_t)OC / 8;
    fit = (fit < most ? fit : most) / MIN_ROWS * MIN_ROWS;
    int rows = fit < MIN_ROWS ? MIN_ROWS : (int)fit;
    int tasks = (OC + rows - 1) / rows;
    q8_job j = {k, y, *x, q, d, OC, bias, gelu_out, rows};
    cpu_parallel_private(tasks, &ops, &j, sizeof j, (size_t)2 * x->N * rows);
}

/* ------------------------------------------------------------ backend op */

void cpu_matmul_q8_forward(gpt_backend *be, void *out_, void *pre_, const void *in, const void *wq,
                           const void *bias_, int N, int IC, int OC, int gelu_on) {
    cpu_ctx *c = be->ctx;
    float *out = out_, *pre = pre_;
    const float *bias = bias_;
    GPT_ASSERT(gelu_on || !pre);
    GPT_ASSERT(cpu_q8_act_bytes(N, IC) <= c->q8_scratch_bytes);
    const cpu_q8_kernel *k = c->q8;
    cpu_q8_act x;
    cpu_q8_quantize_act(&x, c->q8_scratch, in, N, IC, k);
    /* y goes where the GELU reads it: pre when saved, else out itself. */
    cpu_q8_matmul(k, pre ? pre : out, &x, wq, OC, bias, gelu_on ? out : NULL);
}
