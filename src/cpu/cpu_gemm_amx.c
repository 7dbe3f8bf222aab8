/*
 * cpu_gemm_amx.c - the bf16 micro-kernel on AMX tiles (Intel Sapphire
 * Rapids and later: AMX-TILE + AMX-BF16), and the same kernel's code on a
 * C emulation of the tile instructions.
 *
 * A tile is up to 16 rows of 64 bytes; TDPBF16PS C += A B takes C as 16 x
 * 16 fp32, A as 16 rows of 16 bf16 pairs (32 values of k) and B as 16 rows
 * of pairs (k/2) by 16 columns, each 32-bit word of B holding the pair
 * (B[2kk][j], B[2kk+1][j]): the VNNI pair layout the AVX512-BF16 kernel's B
 * panels already have (cpu_gemm.c packs b[kk*NR + j]). With NR = 32 a B
 * panel's row of pairs is 128 bytes, two tiles side by side. A tile's rows
 * must be contiguous along k, so the driver packs this kernel's A panels
 * row-major (a_rows: a[i*K + kk]) and pads K to whole tiles (kgran 16
 * pairs) with zeros.
 *
 * Blocking: the 8 tile registers hold a 32 x 32 block of C (tiles 0-3),
 * two A tiles (4, 5: rows 0-15 and 16-31) and two B tiles (6, 7: columns
 * 0-15 and 16-31); per 32 values of k, 4 loads feed 4 TDPBF16PS (16 x 16 x
 * 32 multiply-adds each). C is loaded into the accumulators when adding
 * to it, so the fp32 results are stored straight from the tiles.
 *
 * The kernel body is written once (AMX_KERNEL) over four tile operations
 * and instantiated twice: with the compiler's intrinsics (compiled for
 * amx-tile,amx-bf16 by a function attribute, so the file builds with the
 * baseline flags and runs only where cpu_gemm.c found AMX usable), and
 * with C functions that do what the SDM's pseudo-code says the
 * instructions do, under the same tile configuration. The emulated
 * instance runs in the tests on any CPU: every address, stride and shape
 * the hardware kernel uses is checked there, and only the four intrinsics
 * themselves need a machine with AMX.
 */
#include "cpu_gemm.h"

#include <stdint.h>
#include <string.h>

/* LDTILECFG's 64-byte operand, palette 1: per tile, its rows and bytes
 * per row. Every tile here is a full 16 x 64 bytes. A const object in
 * memory: gcc 12's _tile_loadconfig tells the compiler it reads only the
 * first 8 bytes, so a configuration built on the stack could lose stores. */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_tilecfg;

_Static_assert(sizeof(amx_tilecfg) == 64, "LDTILECFG reads 64 bytes");

static const amx_tilecfg amx_cfg __attribute__((aligned(64))) = {
    .palette = 1,
    .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
    .rows = {16, 16, 16, 16, 16, 16, 16, 16},
};

/* The kernel: c (32,32) = a b (+ c when acc), K steps (pairs of k, a
 * multiple of 16), a row-major pairs (row stride K words), b VNNI pairs
 * (row stride 32 words). ZERO/LOAD/DP/STORE take tile numbers as
 * literals (the intrinsics need constants). */
#define AMX_KERNEL(ZERO, LOAD, DP, STORE)                                          \
    const char *a = a_, *b = b_;                                                   \
    long as = (long)K * 4, cs = (long)ldc * 4; /* bytes between rows */            \
    float *c1 = c + 16 * ldc;                                                      \
    if (acc) {                                                                     \
        LOAD(0, c, cs);                                                            \
        LOAD(1, c + 16, cs);                                                       \
        LOAD(2, c1, cs);                                                           \
        LOAD(3, c1 + 16, cs);                                                      \
    } else {                                                                       \
        ZERO(0);                                                                   \
        ZERO(1);                                                                   \
        ZERO(2);                                                                   \
        ZERO(3);                                                                   \
    }                                                                              \
    for (int kk = 0; kk < K; kk += 16) {                                           \
        LOAD(4, a + (long)kk * 4, as);           /* rows 0-15, pairs kk..kk+15 */  \
        LOAD(5, a + 16 * as + (long)kk * 4, as); /* rows 16-31 */                  \
        LOAD(6, b + (long)kk * 128, 128);        /* pairs kk.., columns 0-15 */    \
        LOAD(7, b + (long)kk * 128 + 64, 128);   /* columns 16-31 */               \
        DP(0, 4, 6);                                                               \
        DP(1, 4, 7);                                                               \
        DP(2, 5, 6);                                                               \
        DP(3, 5, 7);                                                               \
    }                                                                              \
    STORE(0, c, cs);                                                               \
    STORE(1, c + 16, cs);                                                          \
    STORE(2, c1, cs);                                                              \
    STORE(3, c1 + 16, cs);

/* ---- emulation: the SDM's pseudo-code over an array of tiles ---- */

typedef struct {
    uint8_t b[16][64];
} emu_tile;

typedef struct {
    emu_tile t[8];
    int bad; /* a shape TDPBF16PS would fault on (#UD) */
} emu_state;

static float bf16_to_f32_daz(uint16_t h) {
    /* TDPBF16PS treats denormal inputs as zero */
    if (!(h & 0x7f80)) h &= 0x8000;
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static float ftz(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if (!(u & 0x7f800000u)) u &= 0x80000000u; /* denormal results flushed */
    memcpy(&x, &u, 4);
    return x;
}

static void emu_zero(emu_state *s, int t) { memset(&s->t[t], 0, sizeof s->t[t]); }

/* TILELOADD: rows x colsb bytes from base + r*stride; the rest zero. */
static void emu_load(emu_state *s, int t, const void *base, long stride) {
    emu_zero(s, t);
    for (int r = 0; r < amx_cfg.rows[t]; r++)
        memcpy(s->t[t].b[r], (const char *)base + r * stride, amx_cfg.colsb[t]);
}

static void emu_store(emu_state *s, int t, void *base, long stride) {
    for (int r = 0; r < amx_cfg.rows[t]; r++)
        memcpy((char *)base + r * stride, s->t[t].b[r], amx_cfg.colsb[t]);
}

/* TDPBF16PS dst += a b, in the SDM's order: for each row m, each pair k,
 * each column n, the even product then the odd one, rounded (nearest
 * even) after each add. */
static void emu_dpbf16ps(emu_state *s, int dst, int ta, int tb) {
    int M = amx_cfg.rows[dst], N = amx_cfg.colsb[dst] / 4, K = amx_cfg.colsb[ta] / 4;
    if (amx_cfg.rows[ta] != M || amx_cfg.rows[tb] != K || amx_cfg.colsb[tb] != N * 4 ||
        dst == ta || dst == tb || ta == tb)
        s->bad = 1;
    for (int m = 0; m < M; m++) {
        float acc[16];
        memcpy(acc, s->t[dst].b[m], sizeof acc);
        for (int k = 0; k < K; k++) {
            uint16_t a2[2], b2[2];
            memcpy(a2, &s->t[ta].b[m][4 * k], 4);
            for (int n = 0; n < N; n++) {
                memcpy(b2, &s->t[tb].b[k][4 * n], 4);
                acc[n] = ftz(acc[n] + bf16_to_f32_daz(a2[0]) * bf16_to_f32_daz(b2[0]));
                acc[n] = ftz(acc[n] + bf16_to_f32_daz(a2[1]) * bf16_to_f32_daz(b2[1]));
            }
        }
        memcpy(s->t[dst].b[m], acc, sizeof acc);
    }
}

#define E_ZERO(t) emu_zero(&st, t)
#define E_LOAD(t, p, s) emu_load(&st, t, p, s)
#define E_DP(d, x, y) emu_dpbf16ps(&st, d, x, y)
#define E_STORE(t, p, s) emu_store(&st, t, p, s)

static void ukernel_amx_emul(int K, const void *a_, const void *b_, float *c, ptrdiff_t ldc,
                             int acc) {
    static _Thread_local emu_state st; /* 8 KiB: not on a pool thread's stack */
    st.bad = 0;
    if (K % 16 == 0) { /* else a partial tile would read past the panels */
        AMX_KERNEL(E_ZERO, E_LOAD, E_DP, E_STORE)
    } else {
        st.bad = 1;
    }
    if (st.bad) /* what would fault on AMX poisons the result, so tests fail */
        for (int i = 0; i < 32; i++)
            for (int j = 0; j < 32; j++) c[i * ldc + j] = __builtin_nanf("");
}

/* The packing is the hardware kernel's (on x86-64 with AVX512-BF16, the
 * vector conversions; elsewhere the portable loops), so that the tests
 * check its layouts on machines without AMX. */
const gemm_kernel cpu_gemm_kernel_amx_emul = {
    .mr = 32, .nr = 32, .kern = ukernel_amx_emul, .name = "AMX bf16 32x32 (emulated)",
    .pairs = 1, .a_rows = 1, .kgran = 16,
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    .pack_bt_bf16 = cpu_pack_bt_bf16_avx512,
#endif
};

/* ---- the hardware kernel ---- */

#if defined(__x86_64__) && defined(__linux__) && \
    (defined(__clang__) ? __clang_major__ >= 12 : (defined(__GNUC__) && __GNUC__ >= 11))
#include <immintrin.h>

#define AMX __attribute__((target("amx-tile,amx-bf16")))

/* Once per task of a product on its thread: the configuration is the
 * thread's state, and releasing the tiles after the task returns them to
 * the init state, so an idle pool thread carries no 8 KiB of tile data
 * through context switches. */
AMX static void amx_begin(void) { _tile_loadconfig(&amx_cfg); }
AMX static void amx_end(void) { _tile_release(); }

AMX static void ukernel_amx(int K, const void *a_, const void *b_, float *c, ptrdiff_t ldc,
                            int acc) {
    /* The intrinsics are asm statements that do not all name the memory
     * they read: make the packed panels' stores visible first. */
    __asm__ volatile("" ::: "memory");
    AMX_KERNEL(_tile_zero, _tile_loadd, _tile_dpbf16ps, _tile_stored)
}

const gemm_kernel cpu_gemm_kernel_amx = {
    .mr = 32, .nr = 32, .kern = ukernel_amx, .name = "AMX bf16 32x32", .pairs = 1, .a_rows = 1,
    .kgran = 16, .begin = amx_begin, .end = amx_end, .pack_bt_bf16 = cpu_pack_bt_bf16_avx512};
#else
const gemm_kernel cpu_gemm_kernel_amx = {
    .mr = 32, .nr = 32, .kern = 0, .name = "AMX bf16 32x32", .pairs = 1, .a_rows = 1,
    .kgran = 16};
#endif
