/*
 * attention_mma.cu - causal flash attention on the tensor cores (bf16
 * operands, fp32 accumulation) for head sizes 64 and 128: the fast path of
 * attention.cu, which falls back on its generic kernels for anything else.
 *
 * Forward (Dao, "FlashAttention-2", 2023): a block of 8 warps owns 128
 * queries of one (batch, head), 16 per warp, and walks the key tiles up to
 * the diagonal, 64 keys at a time, double-buffered through cp.async. Each
 * warp computes S = Q K^T with mma.sync m16n8k16, keeps an online softmax
 * (running max and sum in registers), and accumulates O += P V with P taken
 * straight from the S accumulators (the C fragment of two n8 tiles is the A
 * fragment of one k16 step). Only O and the row log-sum-exp are written.
 *
 * Backward: a block of 8 warps owns 128 keys (16 per warp) and walks the
 * 64-query tiles from the diagonal down, recomputing
 * P^T = exp(K Q^T * scale - lse) and dP^T = V dO^T, then
 * dS^T = P^T (dP^T - D) with D = rowsum(dO * O); dV += P^T dO and
 * dK += dS^T Q stay in registers. dQ += dS K needs all 128 keys: dS^T goes
 * through shared memory and each warp adds its share of the query tile
 * into an fp32 accumulator with atomics (dq_acc, zeroed by the
 * preprocessing kernel), converted to bf16 afterwards.
 *
 * Fragment layouts (PTX ISA, mma.m16n8k16 .bf16): lane = 4 g + t;
 *   A (16x16): a0 = (g, 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..), a3 = (g+8, 2t+8..)
 *   B (16x8):  b0 = (k 2t..2t+1, n g), b1 = (k 2t+8.., n g)
 *   C (16x8):  c0,c1 = (g, 2t..2t+1), c2,c3 = (g+8, 2t..2t+1)
 * ldmatrix.x4 loads four 8x8 blocks (lanes 8i..8i+7 give block i's row
 * addresses); .trans delivers the transpose, which turns row-major V (keys x
 * d) into the B fragment of P V. Shared rows are padded by 8 elements (16
 * bytes) so that the 8 row addresses of each block fall in distinct banks.
 */
#include "cuda_common.cuh"

#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

enum { TILE = 64 }; /* keys per forward step, queries per backward step */

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_u32(smem)), "l"(gmem)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}
__device__ __forceinline__ void cp_async4(void *smem, const void *gmem) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(smem_u32(smem)), "l"(gmem)
                 : "memory");
}
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p))
                 : "memory");
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p))
                 : "memory");
}
/* cuda_common.cuh's mma16816 with the A fragment as an array */
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
    mma16816(c, a[0], a[1], a[2], a[3], b0, b1);
}
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

/* ROWS rows x D columns of a (rows, stride) bf16 matrix into shared memory
 * (row pitch D + 8) by NTH threads; rows at or past T are zero-filled. */
template <int D, int ROWS, int NTH>
__device__ __forceinline__ void load_tile(bf16 *dst, const bf16 *src, int row0, int T, size_t stride) {
    constexpr int CPR = D / 8, LDS = D + 8;
    for (int i = threadIdx.x; i < ROWS * CPR; i += NTH) {
        int r = i / CPR, cc = i % CPR;
        bf16 *d = dst + r * LDS + cc * 8;
        if (row0 + r < T)
            cp_async16(d, src + (size_t)(row0 + r) * stride + cc * 8);
        else
            *reinterpret_cast<int4 *>(d) = make_int4(0, 0, 0, 0);
    }
}

/* A fragments of a 16 x 16 block at (row0, col0) of a row-major tile. */
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const bf16 *tile, int lds, int row0,
                                       int col0) {
    int lane = threadIdx.x & 31;
    ldsm_x4(a, tile + (row0 + (lane & 7) + ((lane >> 3) & 1) * 8) * lds + col0 + (lane >> 4) * 8);
}
/* B fragments for n-tiles n0, n0+1 (rows n of the tile) at k offset col0:
 * the tile is stored (n, k) row-major, as K is for S = Q K^T. Returns
 * {b0, b1} of n0 in r[0], r[1] and of n0+1 in r[2], r[3]. */
__device__ __forceinline__ void load_b_nk(uint32_t (&r)[4], const bf16 *tile, int lds, int n0,
                                          int col0) {
    int lane = threadIdx.x & 31;
    ldsm_x4(r, tile + (n0 * 8 + (lane >> 4) * 8 + (lane & 7)) * lds + col0 + ((lane >> 3) & 1) * 8);
}
/* B fragments when the tile is stored (k, n) row-major, as V is for P V:
 * k-step rows k0..k0+15, n-tiles n0, n0+1. */
__device__ __forceinline__ void load_b_kn(uint32_t (&r)[4], const bf16 *tile, int lds, int k0,
                                          int n0) {
    int lane = threadIdx.x & 31;
    ldsm_x4_t(r, tile + (k0 + ((lane >> 3) & 1) * 8 + (lane & 7)) * lds + (n0 + (lane >> 4)) * 8);
}

/* acc (n-tiles 0..NN-1) += a @ the (n, k) row-major tile's rows n as B,
 * k offset k0 (S = Q K^T: K is stored keys x d). */
template <int NN>
__device__ __forceinline__ void mma_nk(float (&acc)[NN][4], const uint32_t (&a)[4], const bf16 *tile,
                                       int lds, int k0) {
#pragma unroll
    for (int nt = 0; nt < NN; nt += 2) {
        uint32_t r[4];
        load_b_nk(r, tile, lds, nt, k0);
        mma16816(acc[nt], a, r[0], r[1]);
        mma16816(acc[nt + 1], a, r[2], r[3]);
    }
}
/* acc (n-tiles 0..NN-1) += a @ rows k0..k0+15, columns from n-tile n0 on,
 * of a (k, n) row-major tile (O += P V: V is stored keys x d). */
template <int NN>
__device__ __forceinline__ void mma_kn(float (&acc)[NN][4], const uint32_t (&a)[4], const bf16 *tile,
                                       int lds, int k0, int n0) {
#pragma unroll
    for (int dt = 0; dt < NN; dt += 2) {
        uint32_t r[4];
        load_b_kn(r, tile, lds, k0, n0 + dt);
        mma16816(acc[dt], a, r[0], r[1]);
        mma16816(acc[dt + 1], a, r[2], r[3]);
    }
}
/* The fp32 C fragments of n-tiles 2k and 2k + 1 as the bf16 A fragment of
 * k-step k: a softmax's output (or a gradient) feeds the next product
 * without leaving registers. */
__device__ __forceinline__ void c_to_a(uint32_t (&a)[4], const float (&lo)[4], const float (&hi)[4]) {
    a[0] = pack_bf16(lo[0], lo[1]);
    a[1] = pack_bf16(lo[2], lo[3]);
    a[2] = pack_bf16(hi[0], hi[1]);
    a[3] = pack_bf16(hi[2], hi[3]);
}

/* ------------------------------------------------------------- forward */

/* NW warps, 16 query rows each: a block owns BR = 16 NW queries, so each K,
 * V tile read from memory serves BR rows (K and V traffic falls as BR
 * grows). Warps skip the key tiles wholly after their rows. */
template <int D, int NW>
__global__ void __launch_bounds__(NW * 32)
    attn_fwd_mma(bf16 *out, float *lse, const bf16 *qkv, int T, int C, int NH, float sl2) {
    constexpr int LDS = D + 8, ND = D / 8, NK = D / 16, NT = TILE / 8, BR = 16 * NW, NTH = NW * 32;
    extern __shared__ __align__(16) unsigned char smraw[];
    bf16 *Qs = reinterpret_cast<bf16 *>(smraw);
    bf16 *Ks = Qs + BR * LDS; /* two buffers */
    bf16 *Vs = Ks + 2 * TILE * LDS;
    int qt = gridDim.x - 1 - blockIdx.x; /* longest rows first */
    int bh = blockIdx.y, b = bh / NH, h = bh % NH;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
    size_t rs = (size_t)3 * C;
    const bf16 *qb = qkv + (size_t)b * T * rs + h * D, *kb = qb + C, *vb = qb + 2 * C;
    int nkt = min((qt * BR + BR - 1) / TILE + 1, (T + TILE - 1) / TILE);

    load_tile<D, BR, NTH>(Qs, qb, qt * BR, T, rs);
    load_tile<D, TILE, NTH>(Ks, kb, 0, T, rs);
    load_tile<D, TILE, NTH>(Vs, vb, 0, T, rs);
    cp_async_commit();

    float o[ND][4];
#pragma unroll
    for (int i = 0; i < ND; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
    float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};
    uint32_t qf[NK][4];
    int qw = qt * BR + warp * 16; /* the warp's first query */
    int q0 = qw + g;              /* this thread's rows: q0 and q0 + 8 */

    for (int j = 0; j < nkt; j++) {
        if (j + 1 < nkt) {
            load_tile<D, TILE, NTH>(Ks + ((j + 1) & 1) * TILE * LDS, kb, (j + 1) * TILE, T, rs);
            load_tile<D, TILE, NTH>(Vs + ((j + 1) & 1) * TILE * LDS, vb, (j + 1) * TILE, T, rs);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        if (j == 0) {
#pragma unroll
            for (int kk = 0; kk < NK; kk++) load_a(qf[kk], Qs, LDS, warp * 16, kk * 16);
        }
        if (j * TILE <= qw + 15) { /* some key of the tile is visible to the warp */
            const bf16 *Kc = Ks + (j & 1) * TILE * LDS, *Vc = Vs + (j & 1) * TILE * LDS;
            float s[NT][4];
#pragma unroll
            for (int i = 0; i < NT; i++) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < NK; kk++) mma_nk<NT>(s, qf[kk], Kc, LDS, kk * 16);
            if (j * TILE + TILE - 1 > qw) { /* the tile reaches past the warp's first row */
#pragma unroll
                for (int nt = 0; nt < NT; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        int key = j * TILE + nt * 8 + 2 * t4 + (e & 1);
                        if (key > q0 + (e >> 1) * 8) s[nt][e] = -INFINITY;
                    }
            }
            /* online softmax in the log2 domain; row r = e >> 1. Every row
             * saw key 0 in tile 0, so its running max is finite from then on. */
#pragma unroll
            for (int r = 0; r < 2; r++) {
                float mx = -INFINITY;
#pragma unroll
                for (int nt = 0; nt < NT; nt++) mx = fmaxf(mx, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                float mnew = fmaxf(mrow[r], mx * sl2);
                float alpha = exp2f(mrow[r] - mnew);
                mrow[r] = mnew;
                float sum = 0.f;
#pragma unroll
                for (int nt = 0; nt < NT; nt++) {
                    float p0 = exp2f(s[nt][2 * r] * sl2 - mnew), p1 = exp2f(s[nt][2 * r + 1] * sl2 - mnew);
                    s[nt][2 * r] = p0, s[nt][2 * r + 1] = p1;
                    sum += p0 + p1;
                }
                lrow[r] = lrow[r] * alpha + sum;
#pragma unroll
                for (int dt = 0; dt < ND; dt++) o[dt][2 * r] *= alpha, o[dt][2 * r + 1] *= alpha;
            }
            /* O += P V */
#pragma unroll
            for (int kk = 0; kk < TILE / 16; kk++) {
                uint32_t a[4];
                c_to_a(a, s[2 * kk], s[2 * kk + 1]);
                mma_kn<ND>(o, a, Vc, LDS, kk * 16, 0);
            }
        }
        __syncthreads(); /* the next iteration's loads overwrite this buffer's twin */
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float l = lrow[r];
        l += __shfl_xor_sync(0xffffffffu, l, 1);
        l += __shfl_xor_sync(0xffffffffu, l, 2);
        int q = q0 + r * 8;
        if (q >= T) continue;
        float inv = 1.f / l;
        bf16 *orow = out + ((size_t)b * T + q) * C + h * D;
#pragma unroll
        for (int dt = 0; dt < ND; dt++)
            *reinterpret_cast<uint32_t *>(orow + dt * 8 + 2 * t4) =
                pack_bf16(o[dt][2 * r] * inv, o[dt][2 * r + 1] * inv);
        if (lse && t4 == 0) lse[(size_t)bh * T + q] = (mrow[r] + log2f(l)) * LN2;
    }
}

/* ------------------------------------------------------------ backward */

/* dQ of query tile qi += dS K over the block's BC = 16 NW keys. dS^T (each
 * warp's dp: its 16 keys x the tile's queries) goes through shared memory;
 * then warp w computes query rows 16 (w % 4).. and columns
 * (w / 4) * D / (NW / 4).. of dS K and adds them into dq_acc with atomics.
 * The caller synchronises before dSs is written again. */
template <int D, int NW>
__device__ __forceinline__ void bwd_dq(float *dq_acc, bf16 *dSs, const bf16 *Ks,
                                       const float (&dp)[TILE / 8][4], int qi, int T, int C, int b,
                                       int h, float scale) {
    constexpr int LDS = D + 8, LDSS = TILE + 8, ND = D / 8, NT = TILE / 8;
    constexpr int BC = 16 * NW, NCG = NW / 4, NDC = ND / NCG;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
    int rg = warp & 3, cg = warp >> 2;
    /* zeros from warps whose keys all come after the tile */
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        int col = nt * 8 + 2 * t4;
        *reinterpret_cast<uint32_t *>(dSs + (warp * 16 + g) * LDSS + col) =
            pack_bf16(dp[nt][0], dp[nt][1]);
        *reinterpret_cast<uint32_t *>(dSs + (warp * 16 + g + 8) * LDSS + col) =
            pack_bf16(dp[nt][2], dp[nt][3]);
    }
    __syncthreads();
    /* A = dS (queries x keys), the transpose of dSs, so ldmatrix.trans with
     * the block order a0..a3 = (q lo, k lo), (q hi, k lo), (q lo, k hi),
     * (q hi, k hi). */
    float dq[NDC][4];
#pragma unroll
    for (int i = 0; i < NDC; i++) dq[i][0] = dq[i][1] = dq[i][2] = dq[i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < BC / 16; kk++) {
        uint32_t a[4];
        ldsm_x4_t(a, dSs + (kk * 16 + (lane >> 4) * 8 + (lane & 7)) * LDSS + rg * 16 +
                         ((lane >> 3) & 1) * 8);
        mma_kn<NDC>(dq, a, Ks, LDS, kk * 16, cg * NDC);
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int q = qi * TILE + rg * 16 + g + r * 8;
        if (q >= T) continue;
        float *dst = dq_acc + ((size_t)b * T + q) * C + h * D + cg * NDC * 8 + 2 * t4;
#pragma unroll
        for (int dt = 0; dt < NDC; dt++)
            atomicAdd(reinterpret_cast<float2 *>(dst + dt * 8),
                      make_float2(dq[dt][2 * r] * scale, dq[dt][2 * r + 1] * scale));
    }
}

/* NW warps, 16 keys each: a block owns BC = 16 NW keys and walks the
 * 64-query tiles from the one holding its first key (dQ: bwd_dq). */
template <int D, int NW>
__global__ void __launch_bounds__(NW * 32)
    attn_bwd_mma(bf16 *dqkv, float *dq_acc, const bf16 *dout, const bf16 *qkv, const float *lse,
                 const float *dd, int T, int C, int NH, float scale, float sl2) {
    constexpr int LDS = D + 8, LDSS = TILE + 8, ND = D / 8, NK = D / 16, NT = TILE / 8;
    constexpr int BC = 16 * NW, NTH = NW * 32;
    constexpr bool KV_REGS = D <= 64; /* at D = 128 registers run out: re-read K, V */
    extern __shared__ __align__(16) unsigned char smraw[];
    bf16 *Ks = reinterpret_cast<bf16 *>(smraw);
    bf16 *Vs = Ks + BC * LDS;
    bf16 *Qs = Vs + BC * LDS;        /* two buffers */
    bf16 *dOs = Qs + 2 * TILE * LDS; /* two buffers */
    bf16 *dSs = dOs + 2 * TILE * LDS;
    float *ls = reinterpret_cast<float *>(dSs + BC * LDSS); /* two buffers of lse */
    float *ds = ls + 2 * TILE;                               /* two buffers of D */
    int kt = blockIdx.x, nqt = (T + TILE - 1) / TILE, qfirst = kt * BC / TILE;
    int bh = blockIdx.y, b = bh / NH, h = bh % NH;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
    size_t rs = (size_t)3 * C;
    const bf16 *qb = qkv + (size_t)b * T * rs + h * D, *kb = qb + C, *vb = qb + 2 * C;
    const bf16 *ob = dout + (size_t)b * T * C + h * D;
    const float *lb = lse + (size_t)bh * T, *db = dd + (size_t)bh * T;

    auto load_q = [&](int qi, int buf) {
        load_tile<D, TILE, NTH>(Qs + buf * TILE * LDS, qb, qi * TILE, T, rs);
        load_tile<D, TILE, NTH>(dOs + buf * TILE * LDS, ob, qi * TILE, T, (size_t)C);
        /* lse and D through cp.async too: plain loads here would hold two
         * warps on a global round trip at the top of every iteration */
        for (int i = threadIdx.x; i < TILE; i += NTH) {
            int q = qi * TILE + i;
            if (q < T) {
                cp_async4(ls + buf * TILE + i, lb + q);
                cp_async4(ds + buf * TILE + i, db + q);
            } else {
                ls[buf * TILE + i] = INFINITY; /* padding rows: P = 0 */
                ds[buf * TILE + i] = 0.f;
            }
        }
    };
    load_tile<D, BC, NTH>(Ks, kb, kt * BC, T, rs);
    load_tile<D, BC, NTH>(Vs, vb, kt * BC, T, rs);
    load_q(qfirst, 0);
    cp_async_commit();

    float dk[ND][4], dv[ND][4];
#pragma unroll
    for (int i = 0; i < ND; i++)
#pragma unroll
        for (int e = 0; e < 4; e++) dk[i][e] = dv[i][e] = 0.f;
    uint32_t kf[KV_REGS ? NK : 1][4], vf[KV_REGS ? NK : 1][4];
    int kw = kt * BC + warp * 16; /* the warp's first key */
    int key0 = kw + g;            /* this thread's keys: key0, key0 + 8 */

    for (int qi = qfirst; qi < nqt; qi++) {
        int buf = (qi - qfirst) & 1;
        if (qi + 1 < nqt) {
            load_q(qi + 1, buf ^ 1);
            cp_async_commit();
            cp_async_wait<1>();
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();
        if constexpr (KV_REGS) {
            if (qi == qfirst) {
#pragma unroll
                for (int kk = 0; kk < NK; kk++) {
                    load_a(kf[kk], Ks, LDS, warp * 16, kk * 16);
                    load_a(vf[kk], Vs, LDS, warp * 16, kk * 16);
                }
            }
        }
        const bf16 *Qc = Qs + buf * TILE * LDS, *dOc = dOs + buf * TILE * LDS;
        const float *lc = ls + buf * TILE, *dc = ds + buf * TILE;
        /* S^T and dP^T hold the warp's 16 keys x 64 queries; dp becomes dS^T */
        float st[NT][4], dp[NT][4];
#pragma unroll
        for (int i = 0; i < NT; i++)
#pragma unroll
            for (int e = 0; e < 4; e++) st[i][e] = dp[i][e] = 0.f;
        if (kw <= qi * TILE + TILE - 1) { /* some query of the tile sees a key of the warp */
#pragma unroll
            for (int kk = 0; kk < NK; kk++) {
                uint32_t ka[4], va[4];
                if constexpr (KV_REGS) {
#pragma unroll
                    for (int e = 0; e < 4; e++) ka[e] = kf[kk][e], va[e] = vf[kk][e];
                } else {
                    load_a(ka, Ks, LDS, warp * 16, kk * 16);
                    load_a(va, Vs, LDS, warp * 16, kk * 16);
                }
                mma_nk<NT>(st, ka, Qc, LDS, kk * 16);
                mma_nk<NT>(dp, va, dOc, LDS, kk * 16);
            }
            /* P^T and dS^T = P^T (dP^T - D); keys after the query give 0 */
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int qc = nt * 8 + 2 * t4 + (e & 1);
                    float p = exp2f(st[nt][e] * sl2 - lc[qc] * LOG2E);
                    if (key0 + (e >> 1) * 8 > qi * TILE + qc) p = 0.f;
                    st[nt][e] = p;
                    dp[nt][e] = p * (dp[nt][e] - dc[qc]);
                }
            /* dV += P^T dO and dK += dS^T Q: k runs over the 64 queries */
#pragma unroll
            for (int kq = 0; kq < TILE / 16; kq++) {
                uint32_t pa[4], sa[4];
                c_to_a(pa, st[2 * kq], st[2 * kq + 1]);
                c_to_a(sa, dp[2 * kq], dp[2 * kq + 1]);
                mma_kn<ND>(dv, pa, dOc, LDS, kq * 16, 0);
                mma_kn<ND>(dk, sa, Qc, LDS, kq * 16, 0);
            }
        }
        bwd_dq<D, NW>(dq_acc, dSs, Ks, dp, qi, T, C, b, h, scale);
        __syncthreads(); /* dSs and this buffer are rewritten next iteration */
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int key = key0 + r * 8;
        if (key >= T) continue;
        bf16 *row = dqkv + ((size_t)b * T + key) * rs + h * D + 2 * t4;
#pragma unroll
        for (int dt = 0; dt < ND; dt++) {
            *reinterpret_cast<uint32_t *>(row + C + dt * 8) =
                pack_bf16(dk[dt][2 * r] * scale, dk[dt][2 * r + 1] * scale);
            *reinterpret_cast<uint32_t *>(row + 2 * C + dt * 8) =
                pack_bf16(dv[dt][2 * r], dv[dt][2 * r + 1]);
        }
    }
}

/* ----------------------------------------------------------- launchers */

enum { FWD_WARPS = 8, BWD_WARPS = 8 };

template <int D> static size_t fwd_smem() {
    return ((size_t)16 * FWD_WARPS + 4 * TILE) * (D + 8) * sizeof(bf16);
}
template <int D> static size_t bwd_smem() {
    size_t BC = 16 * BWD_WARPS;
    return (2 * BC + 4 * TILE) * (D + 8) * sizeof(bf16) + BC * (TILE + 8) * sizeof(bf16) +
           (size_t)4 * TILE * sizeof(float);
}

extern "C" int cuda_attn_mma_setup(gpt_backend *be) {
    if (CUDA_CHECK(be, cudaFuncSetAttribute(attn_fwd_mma<64, FWD_WARPS>,
                                            cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            (int)fwd_smem<64>())) ||
        CUDA_CHECK(be, cudaFuncSetAttribute(attn_fwd_mma<128, FWD_WARPS>,
                                            cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            (int)fwd_smem<128>())) ||
        CUDA_CHECK(be, cudaFuncSetAttribute(attn_bwd_mma<64, BWD_WARPS>,
                                            cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            (int)bwd_smem<64>())) ||
        CUDA_CHECK(be, cudaFuncSetAttribute(attn_bwd_mma<128, BWD_WARPS>,
                                            cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            (int)bwd_smem<128>())))
        return be->err.code;
    return 0;
}

extern "C" int cuda_attn_mma_ok(gpt_backend *be, int C, int NH, const void *a, const void *b,
                                const void *c) {
    int D = C / NH;
    return cuda_bf16(be) && !cuda_ctx_of(be)->no_fast_attn && (D == 64 || D == 128) && C % 8 == 0 &&
           cuda_aligned16(a) && cuda_aligned16(b) && (!c || cuda_aligned16(c));
}

extern "C" void cuda_attn_mma_forward(gpt_backend *be, void *out, float *lse, const void *qkv,
                                      int B, int T, int C, int NH) {
    cuda_ctx *c = cuda_ctx_of(be);
    int D = C / NH;
    float sl2 = LOG2E / sqrtf((float)D);
    dim3 grid(cuda_cdiv(T, 16 * FWD_WARPS), B * NH);
    if (D == 64)
        attn_fwd_mma<64, FWD_WARPS><<<grid, FWD_WARPS * 32, fwd_smem<64>(), c->stream>>>(
            (bf16 *)out, lse, (const bf16 *)qkv, T, C, NH, sl2);
    else
        attn_fwd_mma<128, FWD_WARPS><<<grid, FWD_WARPS * 32, fwd_smem<128>(), c->stream>>>(
            (bf16 *)out, lse, (const bf16 *)qkv, T, C, NH, sl2);
    CUDA_LAUNCHED(be, "attention_forward (mma)");
}

/* dd: rowsum(dout * out) (B,NH,T); dq_acc zeroed (B,T,C), by the caller. */
extern "C" void cuda_attn_mma_backward(gpt_backend *be, void *dqkv, float *dq_acc, const void *dout,
                                       const void *qkv, const float *lse, const float *dd, int B,
                                       int T, int C, int NH) {
    cuda_ctx *c = cuda_ctx_of(be);
    int D = C / NH;
    float scale = 1.f / sqrtf((float)D), sl2 = LOG2E * scale;
    dim3 grid(cuda_cdiv(T, 16 * BWD_WARPS), B * NH);
    if (D == 64)
        attn_bwd_mma<64, BWD_WARPS><<<grid, BWD_WARPS * 32, bwd_smem<64>(), c->stream>>>(
            (bf16 *)dqkv, dq_acc, (const bf16 *)dout, (const bf16 *)qkv, lse, dd, T, C, NH, scale,
            sl2);
    else
        attn_bwd_mma<128, BWD_WARPS><<<grid, BWD_WARPS * 32, bwd_smem<128>(), c->stream>>>(
            (bf16 *)dqkv, dq_acc, (const bf16 *)dout, (const bf16 *)qkv, lse, dd, T, C, NH, scale,
            sl2);
    CUDA_LAUNCHED(be, "attention_backward (mma)");
}
