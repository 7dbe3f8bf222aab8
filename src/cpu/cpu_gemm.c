/*
 * cpu_gemm.c - the driver of the fp32 matrix products (after Goto & van de
 * Geijn 2008, "Anatomy of high-performance matrix multiplication").
 *
 * C is cut into tiles of MT x NT; each tile is one pool task, computed over
 * the whole K in blocks of KC: the task packs its rows of A (MT x KC) and
 * columns of B (KC x NT) into MR-row and NR-column panels, then runs the
 * micro-kernel over every MR x NR block, with one NR panel of B (KC x NR,
 * 32 KiB at KC = 256, NR = 32) in L1 while the A panels stream from L2.
 * Packing makes every product shape (A or B transposed or not) the same
 * contiguous stream for the kernel, and zero-pads the edges.
 *
 * Tiles shrink until there are about four per thread, so that when one
 * core is shared with another process the others take its share.
 */
#include "cpu_gemm.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "cpu_features.h"
#include "cpu_pool.h"

#define KC 256
#define MT_MAX 256
#define NT_MAX 512

/* Portable micro-kernel, 4 x 16: the compiler vectorises the j loop for
 * whatever the baseline ISA is (SSE2 on x86-64). */
static void ukernel_c(int K, const void *a_, const void *b_, float *c, ptrdiff_t ldc, int acc) {
    const float *a = a_, *b = b_;
    float t[4][16];
    memset(t, 0, sizeof t);
    for (int k = 0; k < K; k++, a += 4, b += 16)
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 16; j++) t[i][j] += a[i] * b[j];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 16; j++) c[i * ldc + j] = acc ? c[i * ldc + j] + t[i][j] : t[i][j];
}

const gemm_kernel cpu_gemm_kernel_c = {4, 16, ukernel_c, "C fp32 4x16", 0};

static inline float bf16_lo(uint32_t w) {
    uint32_t u = w << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline float bf16_hi(uint32_t w) {
    uint32_t u = w & 0xffff0000u;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Portable bf16 micro-kernel, 4 x 16 on packed pairs: the odd k's product
 * is added first, then the even one's, as vdpbf16ps does. */
static void ukernel_bf16_c(int K, const void *a_, const void *b_, float *c, ptrdiff_t ldc,
                           int acc) {
    const uint32_t *a = a_, *b = b_;
    float t[4][16];
    memset(t, 0, sizeof t);
    for (int k = 0; k < K; k++, a += 4, b += 16)
        for (int i = 0; i < 4; i++) {
            float a0 = bf16_lo(a[i]), a1 = bf16_hi(a[i]);
            for (int j = 0; j < 16; j++) {
                t[i][j] += a1 * bf16_hi(b[j]);
                t[i][j] += a0 * bf16_lo(b[j]);
            }
        }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 16; j++) c[i * ldc + j] = acc ? c[i * ldc + j] + t[i][j] : t[i][j];
}

const gemm_kernel cpu_gemm_kernel_bf16_c = {4, 16, ukernel_bf16_c, "C bf16 4x16", 1};

int cpu_has_bf16_kernel(void) {
    return cpu_features_get()->avx512_bf16 && cpu_gemm_kernel_avx512_bf16.kern;
}

const gemm_kernel *cpu_gemm_kernel_bf16(void) {
    return cpu_has_bf16_kernel() ? &cpu_gemm_kernel_avx512_bf16 : &cpu_gemm_kernel_bf16_c;
}

/* fp32 -> bf16 bits, rounding to nearest even (NaN stays NaN). */
static inline uint32_t to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40;
    return (u + 0x7fffu + ((u >> 16) & 1)) >> 16;
}

const gemm_kernel *cpu_gemm_kernel(void) {
    switch (cpu_features_get()->isa) {
    case CPU_ISA_AVX512:
        if (cpu_gemm_kernel_avx512.kern) return &cpu_gemm_kernel_avx512;
        /* fall through */
    case CPU_ISA_AVX2:
        if (cpu_gemm_kernel_avx2.kern) return &cpu_gemm_kernel_avx2;
        break;
    case CPU_ISA_NEON:
        if (cpu_gemm_kernel_neon.kern) return &cpu_gemm_kernel_neon;
        break;
    }
    return &cpu_gemm_kernel_c;
}

typedef struct {
    const gemm_kernel *k;
    int M, N, K, MT, NT, tiles_n;
    float alpha;
    const float *A, *B;
    ptrdiff_t ars, acs, brs, bcs, ldc;
    float *C;
    int acc;
} gemm_job;

/* bf16 pairs: dst ceil(mb/MR) panels of ceil(kb/2) x MR words. */
CPU_CLONES static void pack_a_bf16(uint32_t *dst, const gemm_job *g, int i0, int mb, int k0,
                                   int kb) {
    int MR = g->k->mr, kp = (kb + 1) / 2;
    for (int p = 0; p < mb; p += MR) {
        int rows = mb - p < MR ? mb - p : MR;
        for (int r = 0; r < rows; r++) {
            const float *src = g->A + (ptrdiff_t)(i0 + p + r) * g->ars + (ptrdiff_t)k0 * g->acs;
            ptrdiff_t cs = g->acs;
            for (int k = 0; k < kb / 2; k++)
                dst[(ptrdiff_t)k * MR + r] = to_bf16(g->alpha * src[2 * k * cs]) |
                                             to_bf16(g->alpha * src[(2 * k + 1) * cs]) << 16;
            if (kb & 1) dst[(ptrdiff_t)(kp - 1) * MR + r] = to_bf16(g->alpha * src[(kb - 1) * cs]);
        }
        for (int r = rows; r < MR; r++)
            for (int k = 0; k < kp; k++) dst[(ptrdiff_t)k * MR + r] = 0;
        dst += (ptrdiff_t)kp * MR;
    }
}

CPU_CLONES static void pack_b_bf16(uint32_t *dst, const gemm_job *g, int j0, int nb, int k0,
                                   int kb) {
    int NR = g->k->nr, kp = (kb + 1) / 2;
    for (int p = 0; p < nb; p += NR) {
        int cols = nb - p < NR ? nb - p : NR;
        const float *src = g->B + (ptrdiff_t)k0 * g->brs + (ptrdiff_t)(j0 + p) * g->bcs;
        ptrdiff_t rs = g->brs, cs = g->bcs;
        for (int k = 0; k < kb / 2; k++) {
            const float *s0 = src + 2 * k * rs, *s1 = s0 + rs;
            uint32_t *d = dst + (ptrdiff_t)k * NR;
            for (int j = 0; j < cols; j++) d[j] = to_bf16(s0[j * cs]) | to_bf16(s1[j * cs]) << 16;
            for (int j = cols; j < NR; j++) d[j] = 0;
        }
        if (kb & 1) {
            const float *s0 = src + (ptrdiff_t)(kb - 1) * rs;
            uint32_t *d = dst + (ptrdiff_t)(kp - 1) * NR;
            for (int j = 0; j < cols; j++) d[j] = to_bf16(s0[j * cs]);
            for (int j = cols; j < NR; j++) d[j] = 0;
        }
        dst += (ptrdiff_t)kp * NR;
    }
}

/* dst: ceil(mb/MR) panels of kb x MR, rows past mb zero. */
CPU_CLONES static void pack_a(float *dst, const gemm_job *g, int i0, int mb, int k0, int kb) {
    int MR = g->k->mr;
    for (int p = 0; p < mb; p += MR) {
        int rows = mb - p < MR ? mb - p : MR;
        for (int r = 0; r < rows; r++) {
            const float *src = g->A + (ptrdiff_t)(i0 + p + r) * g->ars + (ptrdiff_t)k0 * g->acs;
            float *d = dst + r;
            if (g->acs == 1)
                for (int k = 0; k < kb; k++) d[(ptrdiff_t)k * MR] = g->alpha * src[k];
            else
                for (int k = 0; k < kb; k++) d[(ptrdiff_t)k * MR] = g->alpha * src[k * g->acs];
        }
        for (int r = rows; r < MR; r++)
            for (int k = 0; k < kb; k++) dst[(ptrdiff_t)k * MR + r] = 0;
        dst += (ptrdiff_t)kb * MR;
    }
}

/* dst: ceil(nb/NR) panels of kb x NR, columns past nb zero. */
CPU_CLONES static void pack_b(float *dst, const gemm_job *g, int j0, int nb, int k0, int kb) {
    int NR = g->k->nr;
    for (int p = 0; p < nb; p += NR) {
        int cols = nb - p < NR ? nb - p : NR;
        const float *src = g->B + (ptrdiff_t)k0 * g->brs + (ptrdiff_t)(j0 + p) * g->bcs;
        if (g->bcs == 1) {
            for (int k = 0; k < kb; k++) {
                const float *s = src + (ptrdiff_t)k * g->brs;
                float *d = dst + (ptrdiff_t)k * NR;
                memcpy(d, s, (size_t)cols * sizeof(float));
                for (int j = cols; j < NR; j++) d[j] = 0;
            }
        } else {
            for (int j = 0; j < cols; j++) {
                const float *s = src + (ptrdiff_t)j * g->bcs;
                for (int k = 0; k < kb; k++) dst[(ptrdiff_t)k * NR + j] = s[k * g->brs];
            }
            for (int j = cols; j < NR; j++)
                for (int k = 0; k < kb; k++) dst[(ptrdiff_t)k * NR + j] = 0;
        }
        dst += (ptrdiff_t)kb * NR;
    }
}

static void gemm_tile(void *ctx, int task) {
    const gemm_job *g = ctx;
    const gemm_kernel *k = g->k;
    int MR = k->mr, NR = k->nr;
    int i0 = (task / g->tiles_n) * g->MT, j0 = (task % g->tiles_n) * g->NT;
    int mb = g->M - i0 < g->MT ? g->M - i0 : g->MT;
    int nb = g->N - j0 < g->NT ? g->N - j0 : g->NT;
    int mp = (mb + MR - 1) / MR * MR, np = (nb + NR - 1) / NR * NR;
    size_t need = (size_t)KC * (mp + np);
    float *buf = cpu_pool_pack_buffer(need), *own = NULL;
    if (!buf) buf = own = malloc(need * sizeof(float));
    if (!buf) return; /* cannot happen short of a failed 1 MiB malloc */
    float *pa = buf, *pb = buf + (size_t)KC * mp;
    float edge[16 * 64]; /* MR x NR <= 1024 for every kernel */
    for (int k0 = 0; k0 < g->K || k0 == 0; k0 += KC) {
        int kb = g->K - k0 < KC ? g->K - k0 : KC;
        int acc = g->acc || k0 > 0;
        /* Steps of the kernel: k, or pairs of k for bf16 (a 32-bit word
         * each, so a panel's stride in 4-byte units is steps * MR). */
        int steps = k->pairs ? (kb + 1) / 2 : kb;
        if (k->pairs) {
            pack_a_bf16((uint32_t *)pa, g, i0, mb, k0, kb);
            pack_b_bf16((uint32_t *)pb, g, j0, nb, k0, kb);
        } else {
            pack_a(pa, g, i0, mb, k0, kb);
            pack_b(pb, g, j0, nb, k0, kb);
        }
        for (int jr = 0; jr < nb; jr += NR) {
            const float *bp = pb + (size_t)jr * steps;
            int cols = nb - jr < NR ? nb - jr : NR;
            for (int ir = 0; ir < mb; ir += MR) {
                const float *ap = pa + (size_t)ir * steps;
                int rows = mb - ir < MR ? mb - ir : MR;
                float *c = g->C + (ptrdiff_t)(i0 + ir) * g->ldc + j0 + jr;
                if (rows == MR && cols == NR) {
                    k->kern(steps, ap, bp, c, g->ldc, acc);
                    continue;
                }
                k->kern(steps, ap, bp, edge, NR, 0);
                for (int i = 0; i < rows; i++)
                    for (int j = 0; j < cols; j++)
                        c[(ptrdiff_t)i * g->ldc + j] =
                            acc ? c[(ptrdiff_t)i * g->ldc + j] + edge[i * NR + j] : edge[i * NR + j];
            }
        }
        if (g->K == 0) break;
    }
    free(own);
}

void cpu_gemm_with(const gemm_kernel *k, int M, int N, int K, float alpha, const float *A,
                   ptrdiff_t ars, ptrdiff_t acs, const float *B, ptrdiff_t brs, ptrdiff_t bcs,
                   float *C, ptrdiff_t ldc, int acc) {
    if (M <= 0 || N <= 0) return;
    gemm_job g = {k, M, N, K, 0, 0, 0, alpha, A, B, ars, acs, brs, bcs, ldc, C, acc};
    int MR = k->mr, NR = k->nr;
    int MT = (M + MR - 1) / MR * MR, NT = (N + NR - 1) / NR * NR;
    if (MT > MT_MAX) MT = MT_MAX / MR * MR;
    if (NT > NT_MAX) NT = NT_MAX / NR * NR;
    int want = 4 * cpu_pool_threads();
    for (;;) {
        int tiles = ((M + MT - 1) / MT) * ((N + NT - 1) / NT);
        if (tiles >= want) break;
        if (NT >= 4 * NR && NT >= MT) NT = (NT / 2 + NR - 1) / NR * NR;
        else if (MT >= 8 * MR) MT = (MT / 2 + MR - 1) / MR * MR;
        else if (NT >= 4 * NR) NT = (NT / 2 + NR - 1) / NR * NR;
        else break;
    }
    g.MT = MT, g.NT = NT, g.tiles_n = (N + NT - 1) / NT;
    cpu_parallel(((M + MT - 1) / MT) * g.tiles_n, gemm_tile, &g);
}

void cpu_gemm(int M, int N, int K, float alpha, const float *A, ptrdiff_t ars, ptrdiff_t acs,
              const float *B, ptrdiff_t brs, ptrdiff_t bcs, float *C, ptrdiff_t ldc, int acc) {
    cpu_gemm_with(cpu_gemm_kernel(), M, N, K, alpha, A, ars, acs, B, brs, bcs, C, ldc, acc);
}
