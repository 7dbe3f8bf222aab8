/*
 * decode_step.cu - a whole greedy decoding step (bf16, batch <= 16) as one
 * persistent kernel: the backend's decode_step operation.
 *
 * Why. Issued op by op, a GPT-2 decoding step is ~87 small dependent
 * kernels; each one waits for its predecessor, loads its weights from
 * device memory, and ends, so the step costs the sum of ~87 launch and
 * memory latencies (~5 us each) while moving the weights once would take
 * ~75 us on an H100. Here one block per SM runs the whole step: stages
 * separated by grid-wide barriers, and every block streams the weight
 * tiles it will need into a ring of shared-memory slots ahead of time,
 * across the barriers, so the weight traffic overlaps everything else.
 *
 * Stages of layer l (G blocks, "tile" = 16 output features):
 *   A  x_n = LN1(x) in shared memory (every block, redundantly; layer 0
 *      first sums the embeddings), q k v = x_n Wqkv^T + b by tiles; k and
 *      v go straight into the cache at the row's position
 *   B  attention: items (row, head, key split), online softmax over the
 *      split's keys; partial (max, sum, o) to global memory
 *      (the last block of a (row, head), found with an arrival counter,
 *      merges its splits in split order into att (B, C))
 *   C  every block loads att into shared memory; x += att Wproj^T + b by
 *      tiles
 *   D  x_n = LN2(x); h = gelu(x_n Wfc^T + b) by tiles
 *   E  x += h Wfc2^T + b by tiles
 * then the head: x_n = LNf(x), logits = x_n wte^T by tiles with each
 * block's running argmax per row, and block 0 picks each row's argmax over
 * the blocks' candidates, stores it as the next token and advances pos.
 * A barrier follows every stage: 5 L + 1 per step. The barrier is split:
 * a block arrives, issues the next stage's weight loads, then waits.
 *
 * Tiles are dealt round-robin over the blocks with one counter running
 * across all stages, so that every block streams about the same bytes per
 * step. A tile's weights (16 rows x IC) arrive in chunks of up to DK_KC
 * columns, one ring slot each, as 16 row copies of the bulk-copy engine
 * completing on the slot's mbarrier, issued up to GPT_CUDA_DK_AHEAD
 * weighted stages ahead (default 2). The products are mma.sync m16n8k16
 * as in gemv.cu (same k permutation, same fragments), the weights from
 * the ring and the activations from shared memory (for E from global
 * memory, one chunk ahead): in one-chunk stages each warp multiplies a
 * whole tile and applies its epilogue; fc2's multi-chunk tiles are split
 * over the 8 warps by k and added through shared memory in a fixed order.
 * Shared rows have a pitch of 4 mod 8 16-byte units, which keeps the
 * fragment loads free of bank conflicts.
 *
 * Rounding follows the op-by-op path: each product + bias (+ GELU) is
 * rounded to bf16, residual sums and layernorm outputs too, so the two
 * paths agree to bf16 rounding (the sums are ordered differently).
 * Deterministic: no atomics on data (counters only), fixed reduction
 * orders. Data written
 * by other blocks during the kernel is read with ld.global.cg (L2), never
 * through L1, which is not coherent across SMs.
 *
 * The grid is one block per SM, launched cooperatively (the driver refuses
 * a grid that cannot be co-resident, so the barriers cannot deadlock); a
 * barrier that waits for seconds traps instead of hanging.
 *
 * Status: correct (the GPU tests compare it with the op-by-op step) but
 * opt-in (GPT_CUDA_FUSED_STEP=1), because on an H100 it is still slower:
 * 449 vs 359 us a token at batch 1, 612 vs 551 us a step at batch 16
 * (docs/CUDA_NOTES.md, v7). Its trace (GPT_CUDA_DK_TRACE=1) shows why: a
 * stage costs a barrier (2-5 us, most of it waiting for the slowest
 * block) plus one or two dependent global round trips of 1-3 us each
 * while the weight stream keeps the memory queues full, so 5 stages a
 * layer cost about what 7 kernels do.
 */
#include <stdio.h>
#include <string.h>

#include "cuda_common.cuh"

enum {
    DK_THREADS = 256,
    DK_WARPS = 8,
    DK_KC = 1024,                      /* columns of a weight chunk */
    DK_SP = DK_KC / 8 + 4,             /* slot row pitch, 16-byte units (= 4 mod 8) */
    DK_SLOT = 16 * DK_SP * 8,          /* bf16 elements of a slot */
    DK_MAXSLOTS = 8,
    DK_MAXC = 1024,                    /* C, so that a layernorm row fits 16 lanes' registers */
    DK_RED = DK_WARPS * 256,           /* floats of the cross-warp reduction */
    DK_NSPLIT_MAX = 16
};

struct dk_args {
    const bf16 *P; /* parameters */
    long long off[12], stride[12];
    long long lnf_w, lnf_b, wte, wpe;
    bf16 *kc, *vc;  /* (L, B, S, C) */
    int *tok, *pos; /* (B) */
    int *hist;      /* (B, S) or NULL */
    bf16 *logits;   /* (B, Vp) */
    bf16 *x, *q, *h; /* workspace: residual (B, C), queries (B, C), MLP hidden (B, F) */
    float *attp;     /* (B, NH, ns, D + 2): o, max, sum of each key split */
    bf16 *att;       /* (B, C) attention output */
    unsigned *cnt;   /* (B, NH) splits done per (row, head) */
    float *amv;      /* (G, 16) argmax candidates: value */
    int *ami;        /*                             index */
    unsigned long long *bar; /* barrier arrivals (grows by period per launch) */
    unsigned long long period;
    long long *trace; /* GPT_CUDA_DK_TRACE: phase stamps of block 0, or NULL */
    int B, C, NH, F, L, S, V, Vp, maxT, ns, slots, xp;
    int ahead; /* weights are issued up to this many weighted stages ahead */
    float eps, sl2;
};

/* ---------------------------------------------------------- primitives */

/* 16 bytes written by another block during this kernel: from L2. */
__device__ __forceinline__ uint4 dk_ldcg(const bf16 *p) {
    return __ldcg(reinterpret_cast<const uint4 *>(p));
}
__device__ __forceinline__ uint4 dk_lds(const bf16 *p) { return *reinterpret_cast<const uint4 *>(p); }
__device__ __forceinline__ float dk_round(float v) { return __bfloat162float(__float2bfloat16(v)); }

/* --------------------------------------------------------- weight ring */

/* Weighted stage s: 4 per layer (qkv, proj, fc, fc2), then the head. */
struct dk_stage {
    const bf16 *w;
    int OC, IC;
};
__device__ __forceinline__ dk_stage dk_stage_of(const dk_args &a, int s) {
    dk_stage r;
    if (s >= 4 * a.L) {
        r.w = a.P + a.wte, r.OC = a.Vp, r.IC = a.C;
        return r;
    }
    int l = s >> 2, k = s & 3;
    int kind = k == 0 ? 2 : k == 1 ? 4 : k == 2 ? 8 : 10;
    r.w = a.P + a.off[kind] + (long long)l * a.stride[kind];
    r.OC = k == 0 ? 3 * a.C : k == 2 ? a.F : a.C;
    r.IC = k == 3 ? a.F : a.C;
    return r;
}
__device__ __forceinline__ int dk_tiles(const dk_stage &st) { return (st.OC + 15) >> 4; }
__device__ __forceinline__ int dk_chunks(int IC) { return (IC + DK_KC - 1) / DK_KC; }
/* The first tile of a stage that falls to this block, given the stage's
 * offset in the round-robin deal. */
__device__ __forceinline__ int dk_first(int base) {
    int G = gridDim.x;
    return ((int)blockIdx.x - base % G + G) % G;
}

/* Position in this block's sequence of chunks. */
struct dk_iter {
    int s, base, tile, chunk;
};
__device__ __forceinline__ void dk_settle(const dk_args &a, dk_iter &it) {
    while (it.s <= 4 * a.L) {
        dk_stage st = dk_stage_of(a, it.s);
        if (it.tile < dk_tiles(st)) return;
        it.base = (it.base + dk_tiles(st)) % (int)gridDim.x;
        it.s++;
        it.tile = dk_first(it.base);
        it.chunk = 0;
    }
}
__device__ __forceinline__ void dk_advance(const dk_args &a, dk_iter &it) {
    dk_stage st = dk_stage_of(a, it.s);
    if (++it.chunk == dk_chunks(st.IC)) it.chunk = 0, it.tile += gridDim.x;
    dk_settle(a, it);
}

/* The ring's slots are filled by the bulk-copy (TMA) engine: one thread
 * issues a chunk as 16 row copies that complete on the slot's mbarrier
 * (expected bytes, phase per use). Unlike cp.async through the load
 * path, these do not queue ahead of the threads' own loads, so the
 * latency-bound loads of a stage (layernorm rows, attention keys, the
 * barrier's polling) do not wait behind the weight stream. Rows past OC
 * are not copied; their products are dropped. */
__device__ __forceinline__ void dk_mbar_init(unsigned long long *b) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(smem_u32(b)) : "memory");
}
__device__ __forceinline__ void dk_mbar_wait(unsigned long long *b, unsigned parity) {
    asm volatile(
        "{\n\t.reg .pred p;\n"
        "DK_WAIT_%=:\n\t"
        "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n\t"
        "@!p bra DK_WAIT_%=;\n}" ::"r"(smem_u32(b)),
        "r"(parity)
        : "memory");
}
__device__ __forceinline__ void dk_issue(const dk_args &a, bf16 *ring, unsigned long long *mbar, int slot,
                                         const dk_iter &it) {
    if (threadIdx.x != 0) return;
    dk_stage st = dk_stage_of(a, it.s);
    const int k0 = it.chunk * DK_KC, kc = min(DK_KC, st.IC - k0), o0 = it.tile * 16;
    const int rows = min(16, st.OC - o0);
    const unsigned bytes = (unsigned)kc * 2;
    unsigned long long *b = mbar + slot;
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(b)),
                 "r"(bytes * rows)
                 : "memory");
    bf16 *dst = ring + (size_t)slot * DK_SLOT;
    for (int r = 0; r < rows; r++)
        asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                         smem_u32(dst + r * DK_SP * 8)),
                     "l"(st.w + (size_t)(o0 + r) * st.IC + k0), "r"(bytes), "r"(smem_u32(b))
                     : "memory");
}

/* The ring's producer and consumer counts (the same in every thread). */
struct dk_ring {
    bf16 *mem;
    unsigned long long *mbar; /* one per slot */
    dk_iter next;             /* next chunk to issue */
    int issued, consumed, slots, done;
};
/* Issues chunks while slots are free, up to those of weighted stage `upto`. */
__device__ __forceinline__ void dk_fill(const dk_args &a, dk_ring &R, int upto) {
    while (!R.done && R.issued - R.consumed < R.slots && R.next.s <= upto) {
        dk_issue(a, R.mem, R.mbar, R.issued % R.slots, R.next);
        R.issued++;
        dk_advance(a, R.next);
        R.done = R.next.s > 4 * a.L;
    }
}
/* Waits until chunk q (counted from the kernel's start) has landed. */
__device__ __forceinline__ void dk_landed(const dk_ring &R, int q) {
    dk_mbar_wait(R.mbar + q % R.slots, (unsigned)(q / R.slots) & 1u);
}

/* ------------------------------------------------------------ layernorm */

/* xs rows n < B = bf16(layernorm(x_n) * w + b); rows B..15 zero. x_n is
 * the residual row, or for layer 0 the embedding sum (which block 0 also
 * stores as the residual). 16 lanes per row, all rows at once: one round
 * of loads, the parameters prefetched into L1 meanwhile. */
__device__ void dk_layernorm(const dk_args &a, bf16 *xs, const bf16 *w, const bf16 *bias, bool embed) {
    constexpr int U = DK_MAXC / 8 / 16;
    const int n = threadIdx.x >> 4, hl = threadIdx.x & 15, nu = a.C >> 3;
    const unsigned half = (threadIdx.x & 16) ? 0xffff0000u : 0x0000ffffu;
    const uint4 z = make_uint4(0u, 0u, 0u, 0u);
    bf16 *dst = xs + (size_t)n * a.xp * 8;
    if (n >= a.B) {
        for (int u = hl; u < nu; u += 16) *reinterpret_cast<uint4 *>(dst + u * 8) = z;
        return;
    }
    const bf16 *te = NULL, *pe = NULL;
    if (embed) {
        int t = a.tok[n], p = a.pos[n];
        te = t >= 0 && t < a.Vp ? a.P + a.wte + (size_t)t * a.C : NULL;
        pe = p >= 0 && p < a.maxT ? a.P + a.wpe + (size_t)p * a.C : NULL;
    }
    /* the row and the parameters, every load in flight at once */
    uint4 raw[U], gw[U], gb[U];
#pragma unroll
    for (int i = 0; i < U; i++) {
        int u = hl + 16 * i;
        raw[i] = gw[i] = gb[i] = z;
        if (u >= nu) continue;
        gw[i] = *reinterpret_cast<const uint4 *>(w + u * 8);
        gb[i] = *reinterpret_cast<const uint4 *>(bias + u * 8);
        if (!embed) {
            raw[i] = dk_ldcg(a.x + (size_t)n * a.C + u * 8);
        } else {
            float f[8], e2[8];
#pragma unroll
            for (int e = 0; e < 8; e++) f[e] = 0.f;
            if (te) unpack_f<bf16>(f, *reinterpret_cast<const uint4 *>(te + u * 8));
            if (pe) {
                unpack_f<bf16>(e2, *reinterpret_cast<const uint4 *>(pe + u * 8));
#pragma unroll
                for (int e = 0; e < 8; e++) f[e] += e2[e];
            }
            raw[i] = pack_f<bf16, uint4>(f);
            if (blockIdx.x == 0) *reinterpret_cast<uint4 *>(a.x + (size_t)n * a.C + u * 8) = raw[i];
        }
    }
    float sum = 0.f, f[8];
#pragma unroll
    for (int i = 0; i < U; i++) {
        if (hl + 16 * i >= nu) continue;
        unpack_f<bf16>(f, raw[i]);
#pragma unroll
        for (int e = 0; e < 8; e++) sum += f[e];
    }
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) sum += __shfl_xor_sync(half, sum, o);
    const float mean = sum / a.C;
    float s2 = 0.f;
#pragma unroll
    for (int i = 0; i < U; i++) {
        if (hl + 16 * i >= nu) continue;
        unpack_f<bf16>(f, raw[i]);
#pragma unroll
        for (int e = 0; e < 8; e++) s2 += (f[e] - mean) * (f[e] - mean);
    }
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) s2 += __shfl_xor_sync(half, s2, o);
    const float rs = rsqrtf(s2 / a.C + a.eps);
#pragma unroll
    for (int i = 0; i < U; i++) {
        int u = hl + 16 * i;
        if (u >= nu) continue;
        float g8[8], b8[8];
        unpack_f<bf16>(f, raw[i]);
        unpack_f<bf16>(g8, gw[i]);
        unpack_f<bf16>(b8, gb[i]);
#pragma unroll
        for (int e = 0; e < 8; e++) f[e] = (f[e] - mean) * rs * g8[e] + b8[e];
        *reinterpret_cast<uint4 *>(dst + u * 8) = pack_f<bf16, uint4>(f);
    }
}

/* xs rows n < B = src rows (B, C) written by other blocks; rows B..15
 * zero. Every load in flight at once. */
__device__ __forceinline__ void dk_load_rows(const dk_args &a, bf16 *xs, const bf16 *src, int C) {
    constexpr int UMAX = 16 * DK_MAXC / 8 / DK_THREADS;
    const int nu = C >> 3;
    uint4 v[UMAX];
#pragma unroll
    for (int i = 0; i < UMAX; i++) {
        int e = threadIdx.x + i * DK_THREADS, n = e / nu;
        v[i] = make_uint4(0u, 0u, 0u, 0u);
        if (n < a.B) v[i] = dk_ldcg(src + (size_t)e * 8);
    }
#pragma unroll
    for (int i = 0; i < UMAX; i++) {
        int e = threadIdx.x + i * DK_THREADS, n = e / nu;
        if (n < 16) *reinterpret_cast<uint4 *>(xs + ((size_t)n * a.xp + e % nu) * 8) = v[i];
    }
}

/* --------------------------------------------------------------- kernel */

/* One output element's epilogue: row o of the stage's product, batch
 * column n, fp32 sum y; bias, the residual xr and the position p were
 * loaded ahead. Rounds like the op-by-op path. */
__device__ __forceinline__ void dk_out(const dk_args &a, int kind, int l, int o, int n, float y,
                                       float bias, float xr, int p) {
    const int C = a.C;
    if (kind == 0) {
        bf16 v = __float2bfloat16(y + bias);
        if (o < C)
            a.q[(size_t)n * C + o] = v;
        else if (p >= 0 && p < a.S)
            (o < 2 * C ? a.kc : a.vc)[(((size_t)l * a.B + n) * a.S + p) * C + (o < 2 * C ? o - C : o - 2 * C)] = v;
    } else if (kind == 1 || kind == 3) {
        a.x[(size_t)n * C + o] = __float2bfloat16(xr + dk_round(y + bias));
    } else if (kind == 2) {
        a.h[(size_t)n * a.F + o] = __float2bfloat16(gelu_f(y + bias));
    } else {
        a.logits[(size_t)n * a.Vp + o] = __float2bfloat16(y);
    }
}

/* Keeps (v, i) if it beats (bv, bi): larger value, lower index on ties,
 * index -1 = nothing. */
__device__ __forceinline__ void dk_better(float &bv, int &bi, float v, int i) {
    if (i >= 0 && (bi < 0 || v > bv || (v == bv && i < bi))) bv = v, bi = i;
}

/* Split grid barrier over a 64-bit arrival counter that only grows: each
 * launch adds `period` (barriers x blocks), so a launch's base is the
 * multiple of period below the count its blocks see when they start (the
 * host clears the counter whenever period changes). Arrive, then do
 * something useful (issue weight loads), then wait. */
__device__ __forceinline__ unsigned long long dk_ld_acquire(const unsigned long long *p) {
    unsigned long long v;
    asm volatile("ld.acquire.gpu.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ void dk_arrive(unsigned long long *cnt) {
    __syncthreads();
    if (threadIdx.x == 0) {
        __threadfence();
        atomicAdd(cnt, 1ull);
    }
}
__device__ __forceinline__ void dk_wait_all(const unsigned long long *cnt, unsigned long long target) {
    if (threadIdx.x == 0) {
        long long spins = 0;
        while (dk_ld_acquire(cnt) < target)
            if (++spins > (1ll << 26)) __trap(); /* seconds: a block never came */
        __threadfence();
    }
    __syncthreads();
}

template <int NT, int LPK>
__global__ void __launch_bounds__(DK_THREADS, 1) dk_kernel(const __grid_constant__ dk_args a) {
    extern __shared__ __align__(16) unsigned char dk_raw[];
    __shared__ unsigned long long bar_base;
    __shared__ float wbv[DK_WARPS][16];
    __shared__ int wbi[DK_WARPS][16];
    bf16 *ring = reinterpret_cast<bf16 *>(dk_raw);
    bf16 *xs = ring + (size_t)a.slots * DK_SLOT;                      /* (16, xp * 8) */
    float *red = reinterpret_cast<float *>(xs + (size_t)16 * a.xp * 8); /* DK_RED */
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int G = gridDim.x, L = a.L, C = a.C;
    constexpr int D = LPK * 8;
    const uint4 z = make_uint4(0u, 0u, 0u, 0u);

    if (tid == 0) {
        unsigned long long v = dk_ld_acquire(a.bar);
        bar_base = v - v % a.period;
    }
    __shared__ __align__(8) unsigned long long mbar[DK_MAXSLOTS];
    if (tid == 0) {
        for (int j = 0; j < a.slots; j++) dk_mbar_init(mbar + j);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();
    dk_ring R;
    R.mem = ring;
    R.mbar = mbar;
    R.next.s = 0, R.next.base = 0, R.next.tile = dk_first(0), R.next.chunk = 0;
    dk_settle(a, R.next);
    R.issued = R.consumed = 0, R.slots = a.slots, R.done = R.next.s > 4 * L;
    dk_fill(a, R, a.ahead - 1);
    __syncthreads();
    unsigned long long target = bar_base;

    /* GPT_CUDA_DK_TRACE=1: block 0 stamps each phase (clock64) */
    int mk = 0;
#define DK_MARK()                                                                        \
    do {                                                                                 \
        if (a.trace && blockIdx.x == 0 && threadIdx.x == 0) a.trace[mk] = clock64();    \
        mk++;                                                                            \
    } while (0)
    DK_MARK();
    /* the head's running argmax of this lane's batch columns i * 8 + 2t + e */
    float run_v[NT][2];
    int run_i[NT][2];
#pragma unroll
    for (int i = 0; i < NT; i++) run_v[i][0] = run_v[i][1] = -INFINITY, run_i[i][0] = run_i[i][1] = -1;
    int base = 0; /* the current stage's offset in the deal */
    /* warps that take a tile each per round in the one-chunk stages; the
     * other slots stay in flight meanwhile */
    const int KW = max(1, min(DK_WARPS, a.slots - 2));

    for (int s = 0; s <= 4 * L; s++) {
        const int l = s >> 2, kind = s >= 4 * L ? 4 : (s & 3);
        const long long *off = a.off, *str = a.stride;
#define LW(k) (a.P + off[k] + (long long)l * str[k])
        /* ---- the stage's activations: xs (A, C, D, head) */
        if (kind == 0)
            dk_layernorm(a, xs, LW(0), LW(1), l == 0);
        else if (kind == 2)
            dk_layernorm(a, xs, LW(6), LW(7), false);
        else if (kind == 4)
            dk_layernorm(a, xs, a.P + a.lnf_w, a.P + a.lnf_b, false);
        else if (kind == 1)
            dk_load_rows(a, xs, a.att, C);
        __syncthreads();
        DK_MARK();

        /* ---- the stage's tiles */
        const dk_stage st = dk_stage_of(a, s);
        const int ntile = dk_tiles(st), nch = dk_chunks(st.IC), T0 = dk_first(base);
        const int nt = T0 < ntile ? (ntile - 1 - T0) / G + 1 : 0; /* this block's tiles */
        const bf16 *bias = kind == 0 ? LW(3) : kind == 1 ? LW(5) : kind == 2 ? LW(9) : kind == 3 ? LW(11) : NULL;
        if (nch == 1 && kind != 3) { /* (fc2's activations are not in xs) */
            /* one chunk per tile: each of kr warps multiplies a whole tile
             * and applies its epilogue itself */
            for (int j0 = 0; j0 < nt; j0 += KW) {
                const int kr = min(KW, nt - j0);
                const bool mine = warp < kr;
                const int tile = T0 + (j0 + warp) * G, olo = tile * 16 + g, ohi = olo + 8;
                /* epilogue inputs, loaded before waiting for the weights */
                float blo = 0.f, bhi = 0.f, xr[NT][4];
                int pp[NT][2];
#pragma unroll
                for (int i = 0; i < NT; i++) {
#pragma unroll
                    for (int e = 0; e < 4; e++) xr[i][e] = 0.f;
                    pp[i][0] = pp[i][1] = -1;
                }
                if (mine && bias) {
                    if (olo < st.OC) blo = __bfloat162float(bias[olo]);
                    if (ohi < st.OC) bhi = __bfloat162float(bias[ohi]);
#pragma unroll
                    for (int i = 0; i < NT; i++)
#pragma unroll
                        for (int e = 0; e < 2; e++) {
                            const int n = i * 8 + 2 * t + e;
                            if (n >= a.B) continue;
                            if (kind == 0) pp[i][e] = a.pos[n];
                            if (kind == 1 || kind == 3) {
                                if (olo < st.OC) xr[i][e] = __bfloat162float(__ldcg(a.x + (size_t)n * C + olo));
                                if (ohi < st.OC) xr[i][e + 2] = __bfloat162float(__ldcg(a.x + (size_t)n * C + ohi));
                            }
                        }
                }
                if (mine) {
                    dk_landed(R, R.consumed + warp);
                    const bf16 *ws = ring + (size_t)((R.consumed + warp) % R.slots) * DK_SLOT;
                    float acc[NT][4];
#pragma unroll
                    for (int i = 0; i < NT; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
                    const int kbn = st.IC >> 5;
                    for (int kb0 = 0; kb0 < kbn; kb0 += 4) {
                        uint4 wa[4], wb[4], xf[4][NT];
#pragma unroll
                        for (int u = 0; u < 4; u++) {
                            const int ku = (kb0 + u) * 4 + t;
                            wa[u] = wb[u] = z;
#pragma unroll
                            for (int i = 0; i < NT; i++) xf[u][i] = z;
                            if (kb0 + u >= kbn) continue;
                            wa[u] = dk_lds(ws + (g * DK_SP + ku) * 8);
                            wb[u] = dk_lds(ws + ((g + 8) * DK_SP + ku) * 8);
#pragma unroll
                            for (int i = 0; i < NT; i++) xf[u][i] = dk_lds(xs + ((size_t)(g + 8 * i) * a.xp + ku) * 8);
                        }
#pragma unroll
                        for (int u = 0; u < 4; u++)
#pragma unroll
                            for (int i = 0; i < NT; i++) {
                                mma16816(acc[i], wa[u].x, wb[u].x, wa[u].y, wb[u].y, xf[u][i].x, xf[u][i].y);
                                mma16816(acc[i], wa[u].z, wb[u].z, wa[u].w, wb[u].w, xf[u][i].z, xf[u][i].w);
                            }
                    }
                    /* acc[i][e]: row (e < 2 ? g : g + 8), batch column i * 8 + 2t + (e & 1) */
#pragma unroll
                    for (int i = 0; i < NT; i++)
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            const int n = i * 8 + 2 * t + (e & 1), o = e < 2 ? olo : ohi;
                            if (n < a.B && o < st.OC)
                                dk_out(a, kind, l, o, n, acc[i][e], e < 2 ? blo : bhi, xr[i][e], pp[i][e & 1]);
                        }
                    if (kind == 4) {
                        /* each batch column's best over the 16 rows: this lane's
                         * two rows, then the 8 lanes of the same t */
#pragma unroll
                        for (int i = 0; i < NT; i++)
#pragma unroll
                            for (int e = 0; e < 2; e++) {
                                const int n = i * 8 + 2 * t + e;
                                float bv = -INFINITY;
                                int bi = -1;
#pragma unroll
                                for (int h2 = 0; h2 < 2; h2++) {
                                    const int o = h2 ? ohi : olo;
                                    float v = dk_round(acc[i][e + 2 * h2]);
                                    if (n < a.B && o < a.V && v == v) dk_better(bv, bi, v, o);
                                }
#pragma unroll
                                for (int sh = 4; sh < 32; sh <<= 1) {
                                    float ov = __shfl_xor_sync(0xffffffffu, bv, sh);
                                    int oi = __shfl_xor_sync(0xffffffffu, bi, sh);
                                    dk_better(bv, bi, ov, oi);
                                }
                                dk_better(run_v[i][e], run_i[i][e], bv, bi);
                            }
                    }
                }
                __syncthreads(); /* the slots are free */
                R.consumed += kr;
                dk_fill(a, R, s);
            }
        } else {
            /* several chunks per tile (fc2 of a large MLP): the 8 warps split
             * each chunk's k and add through shared memory; the activations
             * (h) come from L2, each chunk's fragments loaded while the chunk
             * before it is multiplied */
            auto load_h = [&](uint4 (&xf)[4][NT], int ch) {
                const int kbn = min(DK_KC, st.IC - ch * DK_KC) >> 5;
#pragma unroll
                for (int u = 0; u < 4; u++) {
                    int kb = warp + u * DK_WARPS;
                    const bf16 *hp = a.h + (size_t)ch * DK_KC + (kb * 4 + t) * 8; /* only fc2: C <= DK_KC */
#pragma unroll
                    for (int i = 0; i < NT; i++) {
                        int n = g + 8 * i;
                        xf[u][i] = z;
                        if (kb < kbn && n < a.B) xf[u][i] = dk_ldcg(hp + (size_t)n * a.F);
                    }
                }
            };
            const int r = tid & 15, n = tid >> 4;
            for (int j = 0; j < nt; j++) {
                const int tile = T0 + j * G, o = tile * 16 + r;
                const bool live = n < a.B && o < st.OC;
                const float bo = live && bias ? __bfloat162float(bias[o]) : 0.f;
                const float xo = live && (kind == 1 || kind == 3) ? __bfloat162float(__ldcg(a.x + (size_t)n * C + o)) : 0.f;
                const int po = live && kind == 0 ? a.pos[n] : -1;
                float acc[NT][4];
#pragma unroll
                for (int i = 0; i < NT; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
                uint4 hx[4][NT];
                load_h(hx, 0);
                for (int ch = 0; ch < nch; ch++) {
                    dk_landed(R, R.consumed);
                    const bf16 *ws = ring + (size_t)(R.consumed % R.slots) * DK_SLOT;
                    const int kbn = min(DK_KC, st.IC - ch * DK_KC) >> 5; /* <= 4 per warp */
                    uint4 hn[4][NT];
                    if (ch + 1 < nch) load_h(hn, ch + 1);
#pragma unroll
                    for (int u = 0; u < 4; u++) {
                        const int kb = warp + u * DK_WARPS, ku = kb * 4 + t;
                        if (kb >= kbn) break;
                        uint4 wa = dk_lds(ws + (g * DK_SP + ku) * 8), wb = dk_lds(ws + ((g + 8) * DK_SP + ku) * 8);
#pragma unroll
                        for (int i = 0; i < NT; i++) {
                            mma16816(acc[i], wa.x, wb.x, wa.y, wb.y, hx[u][i].x, hx[u][i].y);
                            mma16816(acc[i], wa.z, wb.z, wa.w, wb.w, hx[u][i].z, hx[u][i].w);
                        }
                    }
                    if (ch + 1 < nch)
#pragma unroll
                        for (int u = 0; u < 4; u++)
#pragma unroll
                            for (int i = 0; i < NT; i++) hx[u][i] = hn[u][i];
                    if (ch + 1 == nch) {
                        /* accumulator (row, batch column) -> red[warp][column * 16 + row] */
#pragma unroll
                        for (int i = 0; i < NT; i++) {
                            int c = i * 8 + 2 * t;
                            red[warp * 256 + c * 16 + g] = acc[i][0];
                            red[warp * 256 + (c + 1) * 16 + g] = acc[i][1];
                            red[warp * 256 + c * 16 + g + 8] = acc[i][2];
                            red[warp * 256 + (c + 1) * 16 + g + 8] = acc[i][3];
                        }
                    }
                    __syncthreads(); /* the slot is free; on the last chunk, red is complete */
                    R.consumed++;
                    dk_fill(a, R, s);
                }
                float y = 0.f;
#pragma unroll
                for (int k = 0; k < DK_WARPS; k++) y += red[k * 256 + tid];
                if (live) dk_out(a, kind, l, o, n, y, bo, xo, po);
                /* red is next written after the next tile's first barrier */
            }
        }
        base = (base + ntile) % G;
        DK_MARK();

        if (kind == 4) break;
        dk_arrive(a.bar);
        target += G;
        dk_fill(a, R, s + a.ahead);
        dk_wait_all(a.bar, target);
        DK_MARK();

        /* ---- stage B after A: attention over the cache */
        if (kind == 0) {
            /* UK keys per group per round, all loads in flight (bf16, unpacked
             * as they are used): 256 keys a round for head size 64 */
            constexpr int GROUPS = DK_THREADS / LPK, UK = 8;
            const int grp = tid / LPK, sub = tid % LPK, NH = a.NH, ns = a.ns;
            float *wm = red, *wl = red + DK_WARPS, *wo = red + 2 * DK_WARPS; /* wo (DK_WARPS, D) */
            for (int item = blockIdx.x; item < a.B * NH * ns; item += G) {
                const int b = item / (NH * ns), hh = (item / ns) % NH, sp = item % ns;
                const int p = a.pos[b];
                const int nk = p >= 0 && p < a.S ? p + 1 : 0, per = (nk + ns - 1) / ns;
                const int k0 = min(nk, sp * per), k1 = min(nk, k0 + per);
                const uint4 qraw = dk_ldcg(a.q + (size_t)b * C + hh * D + sub * 8);
                const size_t cb = ((size_t)l * a.B + b) * a.S * C + (size_t)hh * D + sub * 8;
                float q[8], m = -INFINITY, lsum = 0.f, o[8];
#pragma unroll
                for (int e = 0; e < 8; e++) o[e] = 0.f;
                bool qready = false;
                const int nit = k1 > k0 ? (k1 - k0 + GROUPS * UK - 1) / (GROUPS * UK) : 0;
                for (int it = 0; it < nit; it++) {
                    const int kk = k0 + grp + it * GROUPS * UK;
                    uint4 kr[UK], vr[UK];
#pragma unroll
                    for (int u = 0; u < UK; u++) {
                        int j = kk + u * GROUPS;
                        kr[u] = vr[u] = make_uint4(0u, 0u, 0u, 0u);
                        if (j < k1) kr[u] = dk_ldcg(a.kc + cb + (size_t)j * C), vr[u] = dk_ldcg(a.vc + cb + (size_t)j * C);
                    }
                    if (!qready) {
                        unpack_f<bf16>(q, qraw);
#pragma unroll
                        for (int e = 0; e < 8; e++) q[e] *= a.sl2;
                        qready = true;
                    }
                    float sc[UK], mx = m;
#pragma unroll
                    for (int u = 0; u < UK; u++) {
                        float kf[8], d = 0.f;
                        unpack_f<bf16>(kf, kr[u]);
#pragma unroll
                        for (int e = 0; e < 8; e++) d += q[e] * kf[e];
#pragma unroll
                        for (int sh = LPK / 2; sh > 0; sh >>= 1) d += __shfl_xor_sync(0xffffffffu, d, sh);
                        sc[u] = kk + u * GROUPS < k1 ? d : -INFINITY;
                        mx = fmaxf(mx, sc[u]);
                    }
                    if (mx == -INFINITY) continue;
                    float al = exp2f(m - mx);
                    lsum *= al;
#pragma unroll
                    for (int e = 0; e < 8; e++) o[e] *= al;
#pragma unroll
                    for (int u = 0; u < UK; u++) {
                        float pu = exp2f(sc[u] - mx), vf[8];
                        unpack_f<bf16>(vf, vr[u]);
                        lsum += pu;
#pragma unroll
                        for (int e = 0; e < 8; e++) o[e] += pu * vf[e];
                    }
                    m = mx;
                }
                /* lanes with the same sub hold the same dimensions */
#pragma unroll
                for (int sh = LPK; sh < 32; sh <<= 1) {
                    float mo = __shfl_xor_sync(0xffffffffu, m, sh), lo = __shfl_xor_sync(0xffffffffu, lsum, sh);
                    float mxx = fmaxf(m, mo);
                    float ca = m == -INFINITY ? 0.f : exp2f(m - mxx), cb2 = mo == -INFINITY ? 0.f : exp2f(mo - mxx);
#pragma unroll
                    for (int e = 0; e < 8; e++) {
                        float oo = __shfl_xor_sync(0xffffffffu, o[e], sh);
                        o[e] = mxx == -INFINITY ? 0.f : o[e] * ca + oo * cb2;
                    }
                    lsum = mxx == -INFINITY ? 0.f : lsum * ca + lo * cb2;
                    m = mxx;
                }
                if (lane < LPK) {
                    if (lane == 0) wm[warp] = m, wl[warp] = lsum;
#pragma unroll
                    for (int e = 0; e < 8; e++) wo[warp * D + sub * 8 + e] = o[e];
                }
                __syncthreads();
                /* this block's share: (o, max, sum) over its keys */
                float so = 0.f, sl = 0.f, M = -INFINITY;
                if (tid < D) {
                    for (int k = 0; k < DK_WARPS; k++) M = fmaxf(M, wm[k]);
                    if (M != -INFINITY)
                        for (int k = 0; k < DK_WARPS; k++) {
                            if (wm[k] == -INFINITY) continue;
                            float wgt = exp2f(wm[k] - M);
                            sl += wl[k] * wgt, so += wo[k * D + tid] * wgt;
                        }
                }
                bf16 *arow = a.att + (size_t)b * C + hh * D;
                if (ns == 1) {
                    if (tid < D) arow[tid] = __float2bfloat16(sl > 0.f ? so / sl : 0.f);
                } else {
                    /* the block that completes the (row, head) merges its splits in
                     * split order: the same result whichever block that is */
                    float *dst = a.attp + (size_t)item * (D + 2);
                    if (tid < D) {
                        dst[tid] = so;
                        if (tid == 0) dst[D] = M, dst[D + 1] = sl;
                        __threadfence();
                    }
                    __syncthreads();
                    if (tid == 0) {
                        unsigned *cnt = a.cnt + (size_t)b * NH + hh;
                        int last = atomicAdd(cnt, 1u) == (unsigned)ns - 1;
                        if (last) atomicExch(cnt, 0u);
                        wm[0] = last ? 1.f : 0.f;
                    }
                    __syncthreads();
                    if (wm[0] != 0.f && tid < D) {
                        __threadfence();
                        const float *pp = a.attp + (size_t)(item - sp) * (D + 2);
                        float pm[DK_NSPLIT_MAX], pl[DK_NSPLIT_MAX], po[DK_NSPLIT_MAX];
#pragma unroll
                        for (int k = 0; k < DK_NSPLIT_MAX; k++) {
                            pm[k] = -INFINITY, pl[k] = po[k] = 0.f;
                            if (k < ns) {
                                pm[k] = __ldcg(pp + (size_t)k * (D + 2) + D);
                                pl[k] = __ldcg(pp + (size_t)k * (D + 2) + D + 1);
                                po[k] = __ldcg(pp + (size_t)k * (D + 2) + tid);
                            }
                        }
                        float MM = -INFINITY, tl = 0.f, to = 0.f;
#pragma unroll
                        for (int k = 0; k < DK_NSPLIT_MAX; k++) MM = fmaxf(MM, pm[k]);
                        if (MM != -INFINITY)
#pragma unroll
                            for (int k = 0; k < DK_NSPLIT_MAX; k++) {
                                if (pm[k] == -INFINITY) continue;
                                float wgt = exp2f(pm[k] - MM);
                                tl += pl[k] * wgt, to += po[k] * wgt;
                            }
                        arow[tid] = __float2bfloat16(tl > 0.f ? to / tl : 0.f);
                    }
                }
                __syncthreads();
            }
            DK_MARK();
            dk_arrive(a.bar);
            target += G;
            dk_fill(a, R, s + a.ahead);
            dk_wait_all(a.bar, target);
            DK_MARK();
        }
#undef LW
    }

    /* ---- the head's argmax: each warp's best per batch column, the
     * block's, then block 0 picks each row's over the blocks */
    if (g == 0)
#pragma unroll
        for (int i = 0; i < NT; i++)
#pragma unroll
            for (int e = 0; e < 2; e++) wbv[warp][i * 8 + 2 * t + e] = run_v[i][e], wbi[warp][i * 8 + 2 * t + e] = run_i[i][e];
    __syncthreads();
    if (tid < 16) {
        float bv = -INFINITY;
        int bi = -1;
        if (tid < 8 * NT)
            for (int k = 0; k < DK_WARPS; k++) dk_better(bv, bi, wbv[k][tid], wbi[k][tid]);
        a.amv[blockIdx.x * 16 + tid] = bv;
        a.ami[blockIdx.x * 16 + tid] = bi;
    }
    dk_arrive(a.bar);
    target += G;
    dk_wait_all(a.bar, target);
    if (tid == 0 && target - bar_base != a.period) __trap(); /* barrier count and period disagree */
    DK_MARK();
    if (blockIdx.x == 0) {
        for (int n = warp; n < a.B; n += DK_WARPS) {
            float bv = -INFINITY;
            int bi = -1;
            for (int k0 = 0; k0 < G; k0 += 4 * 32) {
                float v[4];
                int vi[4];
#pragma unroll
                for (int u = 0; u < 4; u++) {
                    int k = k0 + u * 32 + lane;
                    v[u] = k < G ? __ldcg(a.amv + k * 16 + n) : -INFINITY;
                    vi[u] = k < G ? __ldcg(a.ami + k * 16 + n) : -1;
                }
#pragma unroll
                for (int u = 0; u < 4; u++) dk_better(bv, bi, v[u], vi[u]);
            }
#pragma unroll
            for (int sh = 16; sh > 0; sh >>= 1) {
                float ov = __shfl_xor_sync(0xffffffffu, bv, sh);
                int oi = __shfl_xor_sync(0xffffffffu, bi, sh);
                dk_better(bv, bi, ov, oi);
            }
            if (lane == 0) {
                int id = bi < 0 ? 0 : bi, p = a.pos[n];
                a.tok[n] = id;
                if (a.hist && p >= 0 && p < a.S) a.hist[(size_t)n * a.S + p] = id;
                a.pos[n] = p + 1;
            }
        }
    }
    __syncthreads();
    DK_MARK();
#undef DK_MARK
}

/* ------------------------------------------------------------- launcher */

typedef void (*dk_fn)(const dk_args);

static dk_fn dk_pick(int NT, int LPK) {
    if (NT == 1) return LPK == 4 ? dk_kernel<1, 4> : LPK == 8 ? dk_kernel<1, 8> : dk_kernel<1, 16>;
    return LPK == 4 ? dk_kernel<2, 4> : LPK == 8 ? dk_kernel<2, 8> : dk_kernel<2, 16>;
}

static size_t dk_pitch(int C) { /* 16-byte units, = 4 mod 8 */
    size_t u = (size_t)C / 8;
    return u % 8 == 4 ? u : u + (u % 8 <= 4 ? 4 - u % 8 : 12 - u % 8);
}

static int dk_launch(gpt_backend *be, const gpt_decode_desc *d) {
    cuda_ctx *c = cuda_ctx_of(be);
    int D = d->NH > 0 && d->C % d->NH == 0 ? d->C / d->NH : 0, LPK = D / 8;
    if (!cuda_bf16(be) || !c->fused_step || d->B < 1 || d->B > 16 || d->C < 32 || d->C % 32 ||
        d->C > DK_MAXC || d->F < 32 || d->F % 32 || D % 8 || !(LPK == 4 || LPK == 8 || LPK == 16) ||
        d->L < 1 || d->S < 1 || d->V < 1 || d->Vp < d->V || !c->prop.cooperativeLaunch ||
        !cuda_aligned16(d->params) || !cuda_aligned16(d->kc) || !cuda_aligned16(d->vc) ||
        !cuda_aligned16(d->logits))
        return 0;
    for (int k = 0; k < 12; k++)
        if (d->off[k] % 8 || d->stride[k] % 8) return 0;
    if (d->lnf_w % 8 || d->lnf_b % 8 || d->wte % 8 || d->wpe % 8) return 0;

    const int G = c->prop.multiProcessorCount, NT = d->B <= 8 ? 1 : 2;
    size_t xp = dk_pitch(d->C);
    size_t fixed = (size_t)16 * xp * 16 + DK_RED * sizeof(float);
    size_t avail = c->prop.sharedMemPerBlockOptin - 2048; /* the kernel's static shared memory */
    if (avail < fixed) return 0;
    int slots = (int)((avail - fixed) / (DK_SLOT * sizeof(bf16)));
    if (slots > DK_MAXSLOTS) slots = DK_MAXSLOTS;
    if (slots < 2) return 0;
    size_t smem = fixed + (size_t)slots * DK_SLOT * sizeof(bf16);

    /* key splits: enough (row, head, split) items for every block */
    int ns = (int)cuda_cdiv((size_t)G, (size_t)d->B * d->NH);
    int by_len = (int)cuda_cdiv((size_t)d->S, 32);
    if (ns > by_len) ns = by_len;
    if (ns > DK_NSPLIT_MAX) ns = DK_NSPLIT_MAX;
    if (ns < 1) ns = 1;

    /* workspace sized for 16 rows, so that smaller batches reuse it */
    size_t attp = (size_t)16 * d->NH * DK_NSPLIT_MAX * (D + 2);
    size_t cnt = (size_t)16 * d->NH * 4;
    size_t ntrace = (size_t)14 * d->L + 8;
    size_t bytes = 256 + (size_t)G * 16 * 8 + attp * 4 + cnt + ((size_t)16 * (3 * d->C + d->F)) * 2 + ntrace * 8;
    if (bytes > c->dk_bytes) {
        if (c->capturing >= 0) return 0; /* no allocation while recording */
        cudaFree(c->dk_ws);
        c->dk_ws = NULL, c->dk_bytes = 0;
        if (CUDA_CHECK(be, cudaMalloc(&c->dk_ws, bytes)) ||
            CUDA_CHECK(be, cudaMemsetAsync(c->dk_ws, 0, bytes, c->stream)))
            return 1;
        c->dk_bytes = bytes;
    }
    dk_fn fn = dk_pick(NT, LPK);
    if (c->dk_smem_set[NT - 1][LPK >> 3] < smem) {
        if (c->capturing >= 0) return 0;
        if (CUDA_CHECK(be, cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem)))
            return 1;
        int per_sm = 0;
        if (CUDA_CHECK(be, cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fn, DK_THREADS, smem)))
            return 1;
        if (per_sm < 1) return 0;
        c->dk_smem_set[NT - 1][LPK >> 3] = smem;
    }

    dk_args a;
    memset(&a, 0, sizeof a);
    a.P = (const bf16 *)d->params;
    for (int k = 0; k < 12; k++) a.off[k] = (long long)d->off[k], a.stride[k] = (long long)d->stride[k];
    a.lnf_w = (long long)d->lnf_w, a.lnf_b = (long long)d->lnf_b;
    a.wte = (long long)d->wte, a.wpe = (long long)d->wpe;
    a.kc = (bf16 *)d->kc, a.vc = (bf16 *)d->vc;
    a.tok = d->tok, a.pos = d->pos, a.hist = d->hist, a.logits = (bf16 *)d->logits;
    char *w = (char *)c->dk_ws;
    a.bar = (unsigned long long *)w;
    a.period = (unsigned long long)(5 * d->L + 1) * G; /* barriers per step x blocks */
    if (c->dk_period != a.period) { /* the counter's multiples change: start it again */
        if (CUDA_CHECK(be, cudaMemsetAsync(w, 0, 8, c->stream))) return 1;
        c->dk_period = a.period;
    }
    a.amv = (float *)(w + 256);
    a.ami = (int *)(w + 256 + (size_t)G * 16 * 4);
    a.attp = (float *)(w + 256 + (size_t)G * 16 * 8);
    a.cnt = (unsigned *)(w + 256 + (size_t)G * 16 * 8 + attp * 4);
    a.x = (bf16 *)(w + 256 + (size_t)G * 16 * 8 + attp * 4 + cnt);
    a.q = a.x + (size_t)16 * d->C;
    a.att = a.q + (size_t)16 * d->C;
    a.h = a.att + (size_t)16 * d->C;
    if (c->dk_trace) {
        a.trace = (long long *)(a.h + (size_t)16 * d->F);
        c->dk_trace_n = (int)ntrace, c->dk_trace_L = d->L, c->dk_trace_at = a.trace;
    }
    a.B = d->B, a.C = d->C, a.NH = d->NH, a.F = d->F, a.L = d->L, a.S = d->S, a.V = d->V;
    a.Vp = d->Vp, a.maxT = d->maxT, a.ns = ns, a.slots = slots, a.xp = (int)xp;
    a.eps = d->eps;
    a.ahead = c->dk_ahead;
    a.sl2 = 1.4426950408889634f / sqrtf((float)D);

    cudaLaunchConfig_t cfg;
    cudaLaunchAttribute at[1];
    memset(&cfg, 0, sizeof cfg);
    memset(at, 0, sizeof at);
    cfg.gridDim = dim3((unsigned)G, 1, 1);
    cfg.blockDim = dim3(DK_THREADS, 1, 1);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = c->stream;
    at[0].id = cudaLaunchAttributeCooperative;
    at[0].val.cooperative = 1;
    cfg.attrs = at;
    cfg.numAttrs = 1;
    if (!CUDA_CHECK(be, cudaLaunchKernelEx(&cfg, fn, a))) CUDA_LAUNCHED(be, "decode_step (fused)");
    return 1;
}

extern "C" int cuda_decode_step(gpt_backend *be, const gpt_decode_desc *d) {
    if (be->err.code) return 1;
    if (dk_launch(be, d)) return 1;
    /* GPT_CUDA_REQUIRE_FUSED_STEP=1 (tests): declining is an error */
    if (cuda_ctx_of(be)->require_fused_step)
        gpt_backend_fail(be, GPT_ERR_RUNTIME, "the fused decoding step declined B=%d C=%d NH=%d F=%d",
                         d->B, d->C, d->NH, d->F);
    return be->err.code != 0;
}

/* GPT_CUDA_DK_TRACE=1: the phases of the last fused step, averaged over the
 * layers, on stderr (called when the backend is destroyed). */
extern "C" void cuda_decode_trace_report(gpt_backend *be) {
    cuda_ctx *c = cuda_ctx_of(be);
    if (!c->dk_trace || !c->dk_trace_at) return;
    long long t[1024];
    int n = c->dk_trace_n < 1024 ? c->dk_trace_n : 1024, L = c->dk_trace_L;
    if (cudaMemcpy(t, c->dk_trace_at, (size_t)n * 8, cudaMemcpyDeviceToHost) != cudaSuccess) return;
    static const char *name[14] = {"A ln1",  "A qkv",  "A barrier", "B attention", "B barrier",
                                   "C load", "C proj", "C barrier", "D ln2",       "D fc",
                                   "D barrier", "E -", "E fc2", "E barrier"};
    int khz = 0;
    if (cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, c->device) != cudaSuccess || khz <= 0) return;
    double us = 1e3 / khz; /* cycles -> us */
    fprintf(stderr, "fused decoding step, block 0 (cycles at %.0f MHz):\n", khz * 1e-3);
    double tot = 0;
    for (int k = 0; k < 14; k++) {
        double s = 0;
        for (int l = 0; l < L; l++) s += (double)(t[1 + 14 * l + k] - t[14 * l + k]);
        fprintf(stderr, "  %-12s %8.2f us/layer\n", name[k], s / L * us);
        tot += s;
    }
    static const char *hn[4] = {"head lnf", "head tiles", "argmax barrier", "argmax"};
    for (int k = 0; k < 4; k++) {
        double s = (double)(t[14 * L + 1 + k] - t[14 * L + k]);
        fprintf(stderr, "  %-12s %8.2f us\n", hn[k], s * us);
        tot += s;
    }
    fprintf(stderr, "  total        %8.2f us\n", tot * us);
}
