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
#define SHARED_MAX_DEFAULT ((size_t)4 << 20) /* floats of a shared packed operand */
#ifdef GPT_TEST_BUILD
static size_t shared_max = SHARED_MAX_DEFAULT, parts_max = SHARED_MAX_DEFAULT;
#define SHARED_MAX shared_max
#define PARTS_MAX parts_max
void cpu_gemm_shared_limit(size_t floats, size_t parts) {
    shared_max = floats ? floats : SHARED_MAX_DEFAULT;
    parts_max = parts ? parts : SHARED_MAX_DEFAULT;
}
#else
#define SHARED_MAX SHARED_MAX_DEFAULT
#define PARTS_MAX SHARED_MAX_DEFAULT /* floats of a K split's partial Cs */
#endif

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

const gemm_kernel cpu_gemm_kernel_c = {.mr = 4, .nr = 16, .kern = ukernel_c, .name = "C fp32 4x16"};

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

const gemm_kernel cpu_gemm_kernel_bf16_c = {
    .mr = 4, .nr = 16, .kern = ukernel_bf16_c, .name = "C bf16 4x16", .pairs = 1};

/* AMX only where the kernel is compiled in, CPUID says AMX-BF16 and
 * AMX-TILE (with the OS saving the tile state in XCR0), and Linux granted
 * this process the tile data (cpu_amx_enable, asked once): a tile
 * instruction without that permission kills the process. */
static int amx_usable(void) {
    return cpu_gemm_kernel_amx.kern && cpu_features_get()->amx_bf16 && cpu_amx_enable();
}

int cpu_has_bf16_kernel(void) {
    return amx_usable() || (cpu_features_get()->avx512_bf16 && cpu_gemm_kernel_avx512_bf16.kern);
}

const gemm_kernel *cpu_gemm_kernel_bf16(void) {
    if (cpu_features_get()->amx_emulate) return &cpu_gemm_kernel_amx_emul;
    if (amx_usable()) return &cpu_gemm_kernel_amx;
    if (cpu_features_get()->avx512_bf16 && cpu_gemm_kernel_avx512_bf16.kern)
        return &cpu_gemm_kernel_avx512_bf16;
    return &cpu_gemm_kernel_bf16_c;
}

/* fp32 -> bf16 bits, rounding to nearest even (NaN stays NaN). */
static inline uint32_t to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    uint32_t r = (u + 0x7fffu + ((u >> 16) & 1)) >> 16, q = (u >> 16) | 0x40;
    return (u & 0x7fffffffu) > 0x7f800000u ? q : r; /* a select, so loops vectorise */
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
    /* One operand may be packed once for all tiles (the smaller: the
     * activations of a forward product, the input rows of a weight
     * gradient), or both, else each tile packs both: sa/sb hold every K
     * block of [k_lo, k_hi) of A (M rounded up to MR rows) or B (N
     * rounded up to NR columns). The job runs over K in passes
     * [k_lo, k_hi) when both are shared and do not fit at once. */
    float *sa, *sb;
    int Mp, Np, k_lo, k_hi;
} gemm_job;

/* Steps of the micro-kernel over kb values of K: k, or pairs of k for
 * bf16 (a 32-bit word each), padded with zeros to the kernel's granule
 * (a tile's depth for AMX). A panel's size in 4-byte units is steps * MR. */
static int ksteps(const gemm_kernel *k, int kb) {
    int s = k->pairs ? (kb + 1) / 2 : kb, gr = k->kgran > 1 ? k->kgran : 1;
    return (s + gr - 1) / gr * gr;
}

/* 4-byte units before K block k0 in a shared packed operand of `width`
 * (rounded) rows or columns: every earlier block is a full KC. */
static size_t kblock_offset(const gemm_kernel *k, int k0, int width) {
    return (size_t)(k0 / KC) * (size_t)ksteps(k, KC) * (size_t)width;
}

/* Whether the packing may use the AVX512-BF16 conversions (the kernels
 * with pack_bt_bf16, on a CPU with the instructions): the portable and
 * emulated kernels keep to_bf16's rounding of denormals. */
static int vec_cvt(const gemm_kernel *k) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    return k->pack_bt_bf16 && cpu_features_get()->avx512_bf16;
#else
    (void)k;
    return 0;
#endif
}

/* bf16 pairs: dst ceil(mb/MR) panels of steps x MR words, word (r, kk) at
 * r*rstr + kk*kstr: k-major (vector kernels: one word per row and step)
 * or row-major (tile kernels, a_rows: a row's pairs contiguous). Rows past
 * mb and pairs past kb are zero. The loop order follows the source's
 * contiguous direction (reads vectorise, the strided writes stay within
 * one panel in L1). */
CPU_CLONES static void pack_a_bf16(uint32_t *dst, const gemm_job *g, int i0, int mb, int k0,
                                   int kb) {
    int MR = g->k->mr, kp = (kb + 1) / 2, kh = kb / 2, steps = ksteps(g->k, kb);
    ptrdiff_t rs = g->ars, cs = g->acs;
    ptrdiff_t rstr = g->k->a_rows ? steps : 1, kstr = g->k->a_rows ? 1 : MR;
    float al = g->alpha;
    for (int p = 0; p < mb; p += MR) {
        int rows = mb - p < MR ? mb - p : MR;
        const float *src = g->A + (ptrdiff_t)(i0 + p) * rs + (ptrdiff_t)k0 * cs;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
        if (cs == 1 && g->k->a_rows && vec_cvt(g->k)) { /* AMX: each row's pairs contiguous */
            for (int r = 0; r < rows; r++) cpu_bf16_pairs(dst + r * rstr, src + r * rs, kb, steps, al);
            for (int r = rows; r < MR; r++)
                for (int k = 0; k < steps; k++) dst[r * rstr + k] = 0;
            dst += (ptrdiff_t)steps * MR;
            continue;
        }
#endif
        if (cs == 1) {
            for (int r = 0; r < rows; r++) {
                const float *s0 = src + r * rs;
                uint32_t *d = dst + r * rstr;
                for (int k = 0; k < kh; k++)
                    d[k * kstr] = to_bf16(al * s0[2 * k]) | to_bf16(al * s0[2 * k + 1]) << 16;
                if (kb & 1) d[(kp - 1) * kstr] = to_bf16(al * s0[kb - 1]);
            }
        } else {
            for (int k = 0; k < kp; k++) {
                const float *s0 = src + 2 * k * cs, *s1 = s0 + cs;
                uint32_t *d = dst + k * kstr;
                int two = 2 * k + 1 < kb;
                for (int r = 0; r < rows; r++)
                    d[r * rstr] =
                        to_bf16(al * s0[r * rs]) | (two ? to_bf16(al * s1[r * rs]) << 16 : 0);
            }
        }
        for (int r = 0; r < MR; r++)
            for (int k = r < rows ? kp : 0; k < steps; k++) dst[r * rstr + k * kstr] = 0;
        dst += (ptrdiff_t)steps * MR;
    }
}

CPU_CLONES static void pack_b_bf16(uint32_t *dst, const gemm_job *g, int j0, int nb, int k0,
                                   int kb) {
    int NR = g->k->nr, kp = (kb + 1) / 2, kh = kb / 2, steps = ksteps(g->k, kb);
    ptrdiff_t rs = g->brs, cs = g->bcs;
    for (int p = 0; p < nb; p += NR) {
        int cols = nb - p < NR ? nb - p : NR;
        const float *src = g->B + (ptrdiff_t)k0 * rs + (ptrdiff_t)(j0 + p) * cs;
        if (rs == 1 && cols == NR && vec_cvt(g->k)) {
            const float *next = nb - p > 2 * NR - 1 ? src + NR * cs : NULL;
            g->k->pack_bt_bf16(dst, src, cs, kb, steps, next);
            dst += (ptrdiff_t)steps * NR;
            continue;
        }
        if (rs == 1) {
            for (int j = 0; j < cols; j++) {
                const float *s0 = src + j * cs;
                uint32_t *d = dst + j;
                for (int k = 0; k < kh; k++)
                    d[(ptrdiff_t)k * NR] = to_bf16(s0[2 * k]) | to_bf16(s0[2 * k + 1]) << 16;
                if (kb & 1) d[(ptrdiff_t)(kp - 1) * NR] = to_bf16(s0[kb - 1]);
            }
        } else if (cs == 1 && vec_cvt(g->k)) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
            for (int k = 0; k < kp; k++) {
                const float *s0 = src + 2 * k * rs;
                cpu_bf16_interleave(dst + (ptrdiff_t)k * NR, s0, 2 * k + 1 < kb ? s0 + rs : NULL,
                                    cols, 1.0f);
            }
#endif
        } else {
            for (int k = 0; k < kp; k++) {
                const float *s0 = src + 2 * k * rs, *s1 = s0 + rs;
                uint32_t *d = dst + (ptrdiff_t)k * NR;
                int two = 2 * k + 1 < kb;
                for (int j = 0; j < cols; j++)
                    d[j] = to_bf16(s0[j * cs]) | (two ? to_bf16(s1[j * cs]) << 16 : 0);
            }
        }
        for (int j = cols; j < NR; j++)
            for (int k = 0; k < kp; k++) dst[(ptrdiff_t)k * NR + j] = 0;
        for (int k = kp; k < steps; k++)
            for (int j = 0; j < NR; j++) dst[(ptrdiff_t)k * NR + j] = 0;
        dst += (ptrdiff_t)steps * NR;
    }
}

/* dst: ceil(mb/MR) panels of kb x MR, rows past mb zero. */
CPU_CLONES static void pack_a(float *dst, const gemm_job *g, int i0, int mb, int k0, int kb) {
    int MR = g->k->mr;
    for (int p = 0; p < mb; p += MR) {
        int rows = mb - p < MR ? mb - p : MR;
        if (g->ars == 1 && rows == MR) {
            /* A transposed (a weight gradient's dout^T): at each k the
             * panel's MR rows are contiguous, so copy them as one vector;
             * row by row each value was a load from another cache line. */
            const float *src = g->A + (i0 + p) + (ptrdiff_t)k0 * g->acs;
            for (int k = 0; k < kb; k++)
                for (int r = 0; r < MR; r++)
                    dst[(ptrdiff_t)k * MR + r] = g->alpha * src[(ptrdiff_t)k * g->acs + r];
            dst += (ptrdiff_t)kb * MR;
            continue;
        }
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

#define PF_ROWS 8
#define PF_COLS 4
#if defined(__GNUC__) || defined(__clang__)
#define PREFETCH(p) __builtin_prefetch((p), 0, 3)
#else
#define PREFETCH(p) ((void)0)
#endif

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
                /* B is a weight read from memory once per product: ask
                 * for rows ahead (the packing otherwise waits on each) */
                if (k + PF_ROWS < kb) {
                    PREFETCH(s + PF_ROWS * g->brs);
                    PREFETCH(s + PF_ROWS * g->brs + cols - 1);
                }
                /* a loop, not memcpy: a library call per 128 bytes */
                for (int j = 0; j < cols; j++) d[j] = s[j];
                for (int j = cols; j < NR; j++) d[j] = 0;
            }
        } else if (g->brs == 1 && cols == NR && g->k->pack_bt) {
            const float *next = nb - p > 2 * NR - 1 ? src + NR * g->bcs : NULL;
            g->k->pack_bt(dst, src, g->bcs, kb, next);
        } else {
            ptrdiff_t brs = g->brs, bcs = g->bcs;
            for (int j = 0; j < cols; j++) {
                const float *s = src + (ptrdiff_t)j * bcs;
                /* the column PF_COLS ahead (a forward product's weight
                 * row: kb contiguous floats) */
                if (brs == 1 && j + PF_COLS < cols)
                    for (int k = 0; k < kb; k += 16) PREFETCH(s + PF_COLS * bcs + k);
                for (int k = 0; k < kb; k++) dst[(ptrdiff_t)k * NR + j] = s[k * brs];
            }
            for (int j = cols; j < NR; j++)
                for (int k = 0; k < kb; k++) dst[(ptrdiff_t)k * NR + j] = 0;
        }
        dst += (ptrdiff_t)kb * NR;
    }
}

static void pack_a_any(float *dst, const gemm_job *g, int i0, int mb, int k0, int kb) {
    if (g->k->pairs) pack_a_bf16((uint32_t *)dst, g, i0, mb, k0, kb);
    else pack_a(dst, g, i0, mb, k0, kb);
}

static void pack_b_any(float *dst, const gemm_job *g, int j0, int nb, int k0, int kb) {
    if (g->k->pairs) pack_b_bf16((uint32_t *)dst, g, j0, nb, k0, kb);
    else pack_b(dst, g, j0, nb, k0, kb);
}

#define PREPACK_PANELS 8 /* panels of the shared operand per packing task */

static int kblocks(int K) { return K > 0 ? (K + KC - 1) / KC : 1; }

/* Task: PREPACK_PANELS panels of one K block of the shared operand. */
static void prepack(void *ctx, int task) {
    const gemm_job *g = ctx;
    int nkb = kblocks(g->k_hi - g->k_lo), kbi = task % nkb, chunk = task / nkb;
    int k0 = g->k_lo + kbi * KC, kb = g->k_hi - k0 < KC ? g->k_hi - k0 : KC;
    if (kb < 0) kb = 0;
    int steps = ksteps(g->k, kb);
    int chunks_a = g->sa ? (g->Mp / g->k->mr + PREPACK_PANELS - 1) / PREPACK_PANELS : 0;
    int is_a = chunk < chunks_a;
    if (!is_a) chunk -= chunks_a;
    k0 -= g->k_lo; /* offsets are within this pass's buffers */
    if (is_a) {
        int MR = g->k->mr, i0 = chunk * PREPACK_PANELS * MR;
        int mb = g->M - i0 < PREPACK_PANELS * MR ? g->M - i0 : PREPACK_PANELS * MR;
        pack_a_any(g->sa + kblock_offset(g->k, k0, g->Mp) + (size_t)i0 * steps, g, i0, mb,
                   g->k_lo + k0, kb);
    } else {
        int NR = g->k->nr, j0 = chunk * PREPACK_PANELS * NR;
        int nb = g->N - j0 < PREPACK_PANELS * NR ? g->N - j0 : PREPACK_PANELS * NR;
        pack_b_any(g->sb + kblock_offset(g->k, k0, g->Np) + (size_t)j0 * steps, g, j0, nb,
                   g->k_lo + k0, kb);
    }
}

/* While a tile computes one K block, the B values of its next K block
 * (a weight: read from memory once per product) are asked for a slice at
 * a time, so that packing them finds them in cache instead of stalling
 * the tile between blocks. pf: lines (16 floats) of that region, in
 * order; each call asks for lines [t0, t1). */
typedef struct {
    const float *base;
    ptrdiff_t stride; /* between the region's contiguous runs */
    int lpr, runs;    /* lines per run, runs */
} pf_region;

static void pf_lines(const pf_region *r, long t0, long t1) {
    for (long t = t0; t < t1; t++) PREFETCH(r->base + (t / r->lpr) * r->stride + (t % r->lpr) * 16);
}

/* The lines of an operand's region rows [r0, r0+nr) x k [k0, k0+kn)
 * (element (r, k) at base[r*rs + k*ks]), where one of the strides is 1;
 * else no lines. */
static pf_region operand_region(const float *base, ptrdiff_t rs, ptrdiff_t ks, int r0, int nr,
                                int k0, int kn) {
    if (kn <= 0) return (pf_region){0};
    const float *o = base + (ptrdiff_t)r0 * rs + (ptrdiff_t)k0 * ks;
    if (ks == 1) return (pf_region){o, rs, (kn + 15) / 16, nr};
    if (rs == 1) return (pf_region){o, ks, (nr + 15) / 16, kn};
    return (pf_region){0};
}

static void gemm_tile(void *ctx, int task) {
    const gemm_job *g = ctx;
    const gemm_kernel *k = g->k;
    int MR = k->mr, NR = k->nr;
    int i0 = (task / g->tiles_n) * g->MT, j0 = (task % g->tiles_n) * g->NT;
    int mb = g->M - i0 < g->MT ? g->M - i0 : g->MT;
    int nb = g->N - j0 < g->NT ? g->N - j0 : g->NT;
    int mp = (mb + MR - 1) / MR * MR, np = (nb + NR - 1) / NR * NR;
    size_t need = (size_t)KC * ((g->sa ? 0 : mp) + (g->sb ? 0 : np));
    float *buf = need ? cpu_pool_pack_buffer(need) : g->sa, *own = NULL;
    if (!buf) buf = own = malloc(need * sizeof(float));
    if (!buf) return; /* cannot happen short of a failed 1 MiB malloc */
    float *pa = buf, *pb = buf + (g->sa ? 0 : (size_t)KC * mp);
    float edge[16 * 64]; /* MR x NR <= 1024 for every kernel */
    if (k->begin) k->begin();
    for (int k0 = g->k_lo; k0 < g->k_hi || k0 == 0; k0 += KC) {
        int kb = g->k_hi - k0 < KC ? g->k_hi - k0 : KC;
        int acc = g->acc || k0 > 0;
        int steps = ksteps(k, kb);
        if (g->sa) pa = g->sa + kblock_offset(k, k0 - g->k_lo, g->Mp) + (size_t)i0 * steps;
        else pack_a_any(pa, g, i0, mb, k0, kb);
        if (g->sb) pb = g->sb + kblock_offset(k, k0 - g->k_lo, g->Np) + (size_t)j0 * steps;
        else pack_b_any(pb, g, j0, nb, k0, kb);
        pf_region pf = {0};
        long pf_n = 0, pf_per = 0, pf_t = 0;
        int k1 = k0 + KC, kbn = g->k_hi - k1 < KC ? g->k_hi - k1 : KC;
        if (!g->sb && kbn > 0 && (g->brs == 1 || g->bcs == 1)) {
            if (g->brs == 1) /* transposed: a run of kbn floats per column */
                pf = (pf_region){g->B + (ptrdiff_t)j0 * g->bcs + k1, g->bcs, (kbn + 15) / 16, nb};
            else /* a run of nb floats per row */
                pf = (pf_region){g->B + (ptrdiff_t)k1 * g->brs + j0, g->brs, (nb + 15) / 16, kbn};
            pf_n = (long)pf.lpr * pf.runs;
            long calls = (long)((mb + MR - 1) / MR) * ((nb + NR - 1) / NR);
            pf_per = (pf_n + calls - 1) / calls;
        }
        /* Rows outer: one A panel (MR x KC, 8 KiB) stays in L1 while the
         * B panels stream from L2; the other order kept a 32 KiB B panel,
         * all of Zen 4's L1, and the A panels streaming through evicted it. */
        for (int ir = 0; ir < mb; ir += MR) {
            const float *ap = pa + (size_t)ir * steps;
            int rows = mb - ir < MR ? mb - ir : MR;
            for (int jr = 0; jr < nb; jr += NR) {
                const float *bp = pb + (size_t)jr * steps;
                int cols = nb - jr < NR ? nb - jr : NR;
                float *c = g->C + (ptrdiff_t)(i0 + ir) * g->ldc + j0 + jr;
                if (pf_t < pf_n) {
                    long t1 = pf_t + pf_per < pf_n ? pf_t + pf_per : pf_n;
                    pf_lines(&pf, pf_t, t1);
                    pf_t = t1;
                }
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
    if (k->end) k->end();
    free(own);
}

/* A long K with a small C (the LM head's input gradient: K = the
 * vocabulary, C = tokens x channels), neither operand fitting a shared
 * buffer: K is cut into chunks, and each task sums one chunk's K blocks
 * for one tile of C into a partial C of its own, packing its A and B
 * blocks into its own buffer, where the kernel finds them in L2, while it
 * prefetches the next block's. Then a second job adds the partials into
 * C in chunk order. The passes below (both operands packed once per pass
 * into a shared buffer, then read back by every tile) moved each packed
 * value through L3 several times and ended each pass at a barrier. The
 * chunks and tiles follow from the shape alone, so the sums do not
 * depend on the thread count. */
#define KSPLIT_CHUNKS 24              /* whole shares for 2, 3, 4, 6, 8 or 12 threads */
#define KSPLIT_TILE (PARTS_MAX / 32) /* floats of C per task at most (512 KiB) */
#define KSPLIT_ROWS 8                 /* rows of C per adding task */

typedef struct {
    gemm_job g;
    int nkb, chunks, tm, tn, TM, TN; /* K blocks, chunks, tiles of TM x TN */
    float *part;                    /* chunks partial Cs of Mp x Np (row stride Np) */
    /* With a backward pair (cpu_gemm_backward): the weight gradient, whose
     * tile b (rows = K block b of g) the chunk's first tile computes right
     * after that block, while its dout values are in L2; else NULL. */
    const gemm_job *dw;
} ksplit_job;

/* Task: one chunk of K for one tile. */
static void ksplit_tile(void *ctx, int task) {
    const ksplit_job *s = ctx;
    const gemm_job *g = &s->g;
    const gemm_kernel *k = g->k;
    int MR = k->mr, NR = k->nr, tiles = s->tm * s->tn;
    int c = task / tiles, t = task % tiles;
    int i0 = (t / s->tn) * s->TM, j0 = (t % s->tn) * s->TN;
    int mb = g->M - i0 < s->TM ? g->M - i0 : s->TM, nb = g->N - j0 < s->TN ? g->N - j0 : s->TN;
    int mp = (mb + MR - 1) / MR * MR, np = (nb + NR - 1) / NR * NR;
    size_t need = (size_t)KC * (mp + np), need_dw = (size_t)KC * (KC + s->g.k->mr);
    /* as large as the weight gradient's tiles need, so that their call for
     * the buffer returns this one, not a new one */
    float *pa = cpu_pool_pack_buffer(need > need_dw ? need : need_dw), *own = NULL;
    if (!pa) pa = own = malloc(need * sizeof(float));
    if (!pa) return; /* cannot happen short of a failed 1 MiB malloc */
    float *pb = pa + (size_t)KC * mp;
    /* The partial has the padded rows and columns, so every block is a
     * whole MR x NR (no edge copies). */
    float *P = s->part + (size_t)c * g->Mp * g->Np + (size_t)i0 * g->Np + j0;
    int b0 = (int)((long)c * s->nkb / s->chunks), b1 = (int)((long)(c + 1) * s->nkb / s->chunks);
    long calls = (long)(mp / MR) * (np / NR);
    if (k->begin) k->begin();
    for (int b = b0; b < b1; b++) {
        int k0 = b * KC, kb = g->K - k0 < KC ? g->K - k0 : KC, steps = ksteps(k, kb);
        pack_a_any(pa, g, i0, mb, k0, kb);
        pack_b_any(pb, g, j0, nb, k0, kb);
        /* both operands come from memory: ask for the next block's lines
         * a slice per kernel call, so that packing it does not wait */
        int k1 = k0 + KC, kbn = b + 1 < b1 ? (g->K - k1 < KC ? g->K - k1 : KC) : 0;
        pf_region ra = operand_region(g->A, g->ars, g->acs, i0, mb, k1, kbn);
        pf_region rb = operand_region(g->B, g->bcs, g->brs, j0, nb, k1, kbn);
        long na = (long)ra.lpr * ra.runs, nbn = (long)rb.lpr * rb.runs, ta = 0, tb = 0;
        long pera = (na + calls - 1) / calls, perb = (nbn + calls - 1) / calls;
        for (int ir = 0; ir < mp; ir += MR)
            for (int jr = 0; jr < np; jr += NR) {
                long t1 = ta + pera < na ? ta + pera : na;
                pf_lines(&ra, ta, t1), ta = t1;
                t1 = tb + perb < nbn ? tb + perb : nbn;
                pf_lines(&rb, tb, t1), tb = t1;
                k->kern(steps, pa + (size_t)ir * steps, pb + (size_t)jr * steps,
                        P + (size_t)ir * g->Np + jr, g->Np, b > b0);
            }
        if (s->dw && t == 0 && !own) {
            if (k->end) k->end();
            gemm_tile((void *)s->dw, b); /* packs into this thread's buffer */
            if (k->begin) k->begin();
        }
    }
    if (k->end) k->end();
    free(own);
    if (s->dw && t == 0 && own) /* no pool buffer: this tile's packing was malloc'd */
        for (int b = b0; b < b1; b++) gemm_tile((void *)s->dw, b);
}

/* Task: KSPLIT_ROWS rows of C (+)= the partials, in chunk order. */
CPU_CLONES static void ksplit_add(void *ctx, int task) {
    const ksplit_job *s = ctx;
    const gemm_job *g = &s->g;
    int r0 = task * KSPLIT_ROWS, r1 = r0 + KSPLIT_ROWS < g->M ? r0 + KSPLIT_ROWS : g->M;
    for (int i = r0; i < r1; i++) {
        float *c = g->C + (ptrdiff_t)i * g->ldc;
        const float *p = s->part + (size_t)i * g->Np;
        for (int j = 0; j < g->N; j++) c[j] = g->acc ? c[j] + p[j] : p[j];
        for (int ch = 1; ch < s->chunks; ch++) {
            p += (size_t)g->Mp * g->Np;
            for (int j = 0; j < g->N; j++) c[j] += p[j];
        }
    }
}

/* Runs g split over K (returns 1) where the partials of at least two
 * chunks fit PARTS_MAX; with dw (tiles of KC rows, B shared: sb set
 * here), the weight gradient in the same tasks. */
static int ksplit(const gemm_job *g, gemm_job *dw) {
    const gemm_kernel *k = g->k;
    int nkb = kblocks(g->K);
    size_t whole = (size_t)g->Mp * g->Np;
    size_t chunks = PARTS_MAX / whole;
    if (chunks > KSPLIT_CHUNKS) chunks = KSPLIT_CHUNKS;
    if (chunks > (size_t)nkb) chunks = (size_t)nkb;
    if (chunks < 2) return 0;
    ksplit_job s = {.g = *g, .nkb = nkb, .chunks = (int)chunks, .TM = g->Mp, .TN = g->Np};
    while ((size_t)s.TM * s.TN > KSPLIT_TILE) { /* halve the longer side */
        if (s.TN >= s.TM && s.TN >= 2 * k->nr) s.TN = (s.TN / 2 + k->nr - 1) / k->nr * k->nr;
        else if (s.TM >= 2 * k->mr) s.TM = (s.TM / 2 + k->mr - 1) / k->mr * k->mr;
        else break;
    }
    s.tm = (g->Mp + s.TM - 1) / s.TM, s.tn = (g->Np + s.TN - 1) / s.TN;
    size_t sb = dw ? (size_t)dw->Np * kblocks(dw->K) * KC : 0;
    s.part = cpu_pool_shared_buffer(chunks * whole + sb);
    if (!s.part) return 0;
    if (dw) {
        dw->sb = s.part + chunks * whole;
        int chunks_b = (dw->Np / dw->k->nr + PREPACK_PANELS - 1) / PREPACK_PANELS;
        cpu_parallel(chunks_b * kblocks(dw->K), prepack, dw);
        s.dw = dw;
    }
    cpu_parallel(s.chunks * s.tm * s.tn, ksplit_tile, &s);
    cpu_parallel((g->M + KSPLIT_ROWS - 1) / KSPLIT_ROWS, ksplit_add, &s);
    return 1;
}

/* How many tiles `panels` panels make when cut into n tiles of equal
 * whole panels (n clamped to [1, panels]): ceil(panels / per-tile). */
static int even_count(int panels, int n) {
    if (n < 1) n = 1;
    if (n > panels) n = panels;
    int per = (panels + n - 1) / n;
    return (panels + per - 1) / per;
}

void cpu_gemm_with(const gemm_kernel *k, int M, int N, int K, float alpha, const float *A,
                   ptrdiff_t ars, ptrdiff_t acs, const float *B, ptrdiff_t brs, ptrdiff_t bcs,
                   float *C, ptrdiff_t ldc, int acc) {
    if (M <= 0 || N <= 0) return;
    gemm_job g = {.k = k, .M = M, .N = N, .K = K, .alpha = alpha, .A = A, .B = B, .ars = ars,
                  .acs = acs, .brs = brs, .bcs = bcs, .ldc = ldc, .C = C, .acc = acc};
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
    /* Tiles of equal size, in a number the threads divide where a
     * nearby count of tile columns gives one: 9 tiles on 2 threads (the
     * gpt2 qkv product) kept one thread busy a ninth of the product
     * alone, and a 768-wide product cut 512 + 256 gave unequal tasks.
     * Tile shapes change no result: each C value is summed over the same
     * K blocks by the same kernel wherever its tile is. Not where the
     * last round's idle share is under 1/16 of the product: more tile
     * columns repack A once more each (the LM head's weight gradient,
     * 197 tiles on 2 threads, would be cut into 2 columns and convert its
     * 51 MB of dlogits twice, for a 0.5% imbalance). */
    int th = cpu_pool_threads(), pm = (M + MR - 1) / MR, pn = (N + NR - 1) / NR;
    int tm = (M + MT - 1) / MT, tn = (N + NT - 1) / NT, floor_ = tm * tn < want ? tm * tn : want;
    for (int d = 1; d <= 2 * th && (th - (tm * tn) % th) % th * 16 > tm * tn; d++) {
        int lo = even_count(pn, tn - d), hi = even_count(pn, tn + d);
        if ((tm * lo) % th == 0 && tm * lo >= floor_) tn = lo;
        else if ((tm * hi) % th == 0) tn = hi;
    }
    MT = (pm + tm - 1) / tm * MR, NT = (pn + tn - 1) / tn * NR;
    g.MT = MT, g.NT = NT, g.tiles_n = (N + NT - 1) / NT;
    int tiles_m = (M + MT - 1) / MT;
    g.Mp = (M + MR - 1) / MR * MR, g.Np = (N + NR - 1) / NR * NR;
    /* Pack once the operand that the other dimension's tiles would each
     * pack again, when there are such repeats and it fits 16 MiB. */
    size_t kfull = (size_t)kblocks(K) * KC;
    g.k_lo = 0, g.k_hi = K;
    if ((size_t)g.Mp * kfull > SHARED_MAX && (size_t)g.Np * kfull > SHARED_MAX && ksplit(&g, NULL))
        return;
    if (g.tiles_n > 1 && (size_t)g.Mp * kfull <= SHARED_MAX && (M <= N || tiles_m == 1))
        g.sa = cpu_pool_shared_buffer((size_t)g.Mp * kfull);
    else if (tiles_m > 1 && (size_t)g.Np * kfull <= SHARED_MAX)
        g.sb = cpu_pool_shared_buffer((size_t)g.Np * kfull);
    else if (tiles_m > 1 && g.tiles_n > 1 && (size_t)(g.Mp + g.Np) * KC <= SHARED_MAX) {
        /* Both repeat, neither fits whole, nor does C's partials for a
         * K split (a long K and a large C): pack both once per pass over
         * as many K blocks as fit, rather than each tile packing its own
         * A and B (every value of A tiles_n times, of B tiles_m times).
         * The passes add into C in K order, as the blocks of one pass do. */
        int pass = (int)(SHARED_MAX / ((size_t)(g.Mp + g.Np) * KC)) * KC;
        float *sh = cpu_pool_shared_buffer((size_t)(g.Mp + g.Np) * pass);
        if (sh) {
            for (int k0 = 0; k0 < K; k0 += pass) {
                g.sa = sh, g.sb = sh + (size_t)g.Mp * pass;
                g.k_lo = k0, g.k_hi = K - k0 < pass ? K : k0 + pass;
                int nkb = kblocks(g.k_hi - g.k_lo);
                int chunks = (g.Mp / MR + PREPACK_PANELS - 1) / PREPACK_PANELS +
                             (g.Np / NR + PREPACK_PANELS - 1) / PREPACK_PANELS;
                cpu_parallel(chunks * nkb, prepack, &g);
                cpu_parallel(tiles_m * g.tiles_n, gemm_tile, &g);
            }
            return;
        }
    }
    if (g.sa || g.sb) {
        int panels = g.sa ? g.Mp / MR : g.Np / NR;
        int chunks = (panels + PREPACK_PANELS - 1) / PREPACK_PANELS;
        cpu_parallel(chunks * kblocks(K), prepack, &g);
    }
    cpu_parallel(tiles_m * g.tiles_n, gemm_tile, &g);
}

void cpu_gemm_backward(const gemm_kernel *k, int N, int IC, int OC, const float *dout,
                       const float *in, const float *w, float *din, float *dw) {
    if (N <= 0 || IC <= 0) return;
    int MR = k->mr, NR = k->nr;
    /* din (N,IC) = dout (N,OC) w (OC,IC): K = OC */
    gemm_job g = {.k = k, .M = N, .N = IC, .K = OC, .alpha = 1, .A = dout, .B = w, .ars = OC,
                  .acs = 1, .brs = IC, .bcs = 1, .ldc = IC, .C = din, .acc = 0,
                  .Mp = (N + MR - 1) / MR * MR, .Np = (IC + NR - 1) / NR * NR, .k_hi = OC};
    /* dw (OC,IC) += dout^T (OC,N) in (N,IC): tiles of KC rows (g's K
     * blocks) by all IC columns */
    gemm_job d = {.k = k, .M = OC, .N = IC, .K = N, .alpha = 1, .A = dout, .B = in, .ars = 1,
                  .acs = OC, .brs = IC, .bcs = 1, .ldc = IC, .C = dw, .acc = 1,
                  .MT = KC, .NT = (IC + NR - 1) / NR * NR, .tiles_n = 1,
                  .Mp = (OC + MR - 1) / MR * MR, .Np = (IC + NR - 1) / NR * NR, .k_hi = N};
    size_t kfull = (size_t)kblocks(OC) * KC;
    if (KC % MR == 0 && (size_t)g.Mp * kfull > SHARED_MAX && (size_t)g.Np * kfull > SHARED_MAX &&
        ksplit(&g, &d))
        return;
    cpu_gemm_with(k, N, IC, OC, 1.0f, dout, OC, 1, w, IC, 1, din, IC, 0);
    cpu_gemm_with(k, OC, IC, N, 1.0f, dout, 1, OC, in, IC, 1, dw, IC, 1);
}

void cpu_gemm(int M, int N, int K, float alpha, const float *A, ptrdiff_t ars, ptrdiff_t acs,
              const float *B, ptrdiff_t brs, ptrdiff_t bcs, float *C, ptrdiff_t ldc, int acc) {
    cpu_gemm_with(cpu_gemm_kernel(), M, N, K, alpha, A, ars, acs, B, brs, bcs, C, ldc, acc);
}
