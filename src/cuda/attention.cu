/*
 * attention.cu - causal self-attention: forward (saves the row
 * log-sum-exp), backward, and KV-cache attention for generation.
 *
 * bf16 with head size 64 or 128 runs on the tensor cores
 * (attention_mma.cu). Everything else - fp32 mode, any other head size
 * (e.g. 116), odd C - runs the generic kernels here: the same flash
 * algorithm in fp32 arithmetic through shared memory, with square tiles of
 * BT queries x BT keys, BT chosen (32, 16, 8 or 4) so that the tiles fit
 * the block's shared memory. Neither path writes a T x T matrix.
 *
 * KV-cache attention (generation): one query per row (decoding) with head
 * sizes of 4 to 32 16-byte vectors takes attn_kv_decode (16-byte loads,
 * keys split across a cluster when the rows and heads are few); prompts
 * (several queries per row) and other head sizes take a fast kernel for
 * even head sizes up to 256 and a generic one for the rest.
 *
 * The generic backward is deterministic and uses no atomics: one kernel
 * walks the query tiles below each key tile (dK, dV), another walks the key
 * tiles left of each query tile (dQ), both recomputing P and dS.
 */
#include <cooperative_groups.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cuda_common.cuh"

namespace cg = cooperative_groups;

extern "C" {
int cuda_attn_mma_setup(gpt_backend *be);
int cuda_attn_mma_ok(gpt_backend *be, int C, int NH, const void *a, const void *b, const void *c);
void cuda_attn_mma_forward(gpt_backend *be, void *out, float *lse, const void *qkv, int B, int T,
                           int C, int NH);
void cuda_attn_mma_backward(gpt_backend *be, void *dqkv, float *dq_acc, const void *dout,
                            const void *qkv, const float *lse, const float *dd, int B, int T, int C,
                            int NH);
}

enum { GEN_THREADS = 128, KV_THREADS = 256, KV_CHUNK_MAX = 128 };

/* Shared-memory floats of each generic kernel for tile BT and head size D. */
static size_t smem_fwd(int BT, int D) {
    return (size_t)2 * BT * (D + 1) + (size_t)2 * BT * D + (size_t)BT * (BT + 1) + 3 * BT;
}
static size_t smem_dkv(int BT, int D) {
    return (size_t)4 * BT * (D + 1) + (size_t)2 * BT * D + (size_t)2 * BT * (BT + 1) + 2 * BT;
}
static size_t smem_dq(int BT, int D) {
    return (size_t)4 * BT * (D + 1) + (size_t)BT * D + (size_t)BT * (BT + 1) + 2 * BT;
}
static size_t smem_kv(int CH, int D) {
    int nsub = KV_THREADS / D > 1 ? KV_THREADS / D : 1;
    return (size_t)2 * D + (size_t)CH * (2 * D + 1) + CH + (size_t)nsub * D + 64;
}

/* Largest tile whose shared memory fits; 0 if even BT = 4 does not. */
static int pick_tile(gpt_backend *be, size_t (*smem)(int, int), int D) {
    size_t limit = cuda_ctx_of(be)->prop.sharedMemPerBlockOptin;
    for (int BT = 32; BT >= 4; BT /= 2)
        if (smem(BT, D) * sizeof(float) <= limit) return BT;
    return 0;
}

/* ------------------------------------------------------ generic forward */

template <typename T>
__global__ void __launch_bounds__(GEN_THREADS)
    attn_fwd_generic(T *out, float *lse, const T *qkv, int T_, int C, int NH, int BT, float scale) {
    extern __shared__ float sh[];
    int D = C / NH, DP = D + 1, SP = BT + 1;
    float *Qs = sh, *Ks = Qs + BT * DP, *Vs = Ks + BT * DP, *Os = Vs + BT * D, *Ss = Os + BT * D;
    float *mr = Ss + BT * SP, *lr = mr + BT, *ar = lr + BT;
    int qt = gridDim.x - 1 - blockIdx.x, bh = blockIdx.y, b = bh / NH, h = bh % NH;
    int tid = threadIdx.x;
    size_t rs = (size_t)3 * C;
    const T *base = qkv + (size_t)b * T_ * rs + (size_t)h * D;
    int q0 = qt * BT;
    for (int i = tid; i < BT * D; i += GEN_THREADS) {
        int r = i / D, d = i % D, q = q0 + r;
        Qs[r * DP + d] = q < T_ ? to_f(base[(size_t)q * rs + d]) * scale : 0.f;
        Os[i] = 0.f;
    }
    for (int r = tid; r < BT; r += GEN_THREADS) mr[r] = -INFINITY, lr[r] = 0.f;
    for (int kt = 0; kt <= qt; kt++) {
        int k0 = kt * BT;
        __syncthreads();
        for (int i = tid; i < BT * D; i += GEN_THREADS) {
            int r = i / D, d = i % D, k = k0 + r;
            Ks[r * DP + d] = k < T_ ? to_f(base[(size_t)k * rs + C + d]) : 0.f;
            Vs[i] = k < T_ ? to_f(base[(size_t)k * rs + 2 * C + d]) : 0.f;
        }
        __syncthreads();
        for (int i = tid; i < BT * BT; i += GEN_THREADS) {
            int r = i / BT, c = i % BT, q = q0 + r, k = k0 + c;
            float s = -INFINITY;
            if (k <= q && k < T_) {
                s = 0.f;
                for (int d = 0; d < D; d++) s += Qs[r * DP + d] * Ks[c * DP + d];
            }
            Ss[r * SP + c] = s;
        }
        __syncthreads();
        /* every row has a visible key in every tile it reaches (key k0 <= q) */
        for (int r = tid; r < BT; r += GEN_THREADS) {
            float mx = -INFINITY;
            for (int c = 0; c < BT; c++) mx = fmaxf(mx, Ss[r * SP + c]);
            float mo = mr[r], mn = fmaxf(mo, mx);
            float a = mo == -INFINITY ? 0.f : expf(mo - mn), sum = 0.f;
            for (int c = 0; c < BT; c++) {
                float p = expf(Ss[r * SP + c] - mn);
                Ss[r * SP + c] = p;
                sum += p;
            }
            lr[r] = lr[r] * a + sum;
            mr[r] = mn;
            ar[r] = a;
        }
        __syncthreads();
        for (int i = tid; i < BT * D; i += GEN_THREADS) {
            int r = i / D, d = i % D;
            float o = Os[i] * ar[r];
            for (int c = 0; c < BT; c++) o += Ss[r * SP + c] * Vs[c * D + d];
            Os[i] = o;
        }
    }
    __syncthreads();
    for (int i = tid; i < BT * D; i += GEN_THREADS) {
        int r = i / D, d = i % D, q = q0 + r;
        if (q < T_) out[((size_t)b * T_ + q) * C + (size_t)h * D + d] = from_f<T>(Os[i] / lr[r]);
    }
    if (lse)
        for (int r = tid; r < BT; r += GEN_THREADS)
            if (q0 + r < T_) lse[(size_t)bh * T_ + q0 + r] = mr[r] + logf(lr[r]);
}

/* ----------------------------------------------------- generic backward */

/* dd[b,h,t] = sum over d of dout * out; zeroes dq_acc's (b,t,h) slice if
 * given (the fast backward accumulates into it). One warp per (b,t,h). */
template <typename T>
__global__ void attn_bwd_pre(float *dd, float *dq_acc, const T *dout, const T *out, int B, int T_,
                             int C, int NH) {
    size_t w = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (w >= (size_t)B * T_ * NH) return;
    int h = (int)(w % NH);
    size_t bt = w / NH;
    int D = C / NH;
    size_t off = bt * C + (size_t)h * D;
    float s = 0.f;
    for (int d = lane; d < D; d += 32) {
        s += to_f(dout[off + d]) * to_f(out[off + d]);
        if (dq_acc) dq_acc[off + d] = 0.f;
    }
    s = warp_sum(s);
    int b = (int)(bt / T_), t = (int)(bt % T_);
    if (lane == 0) dd[((size_t)b * NH + h) * T_ + t] = s;
}

/* Loads a BT x D tile of one head (column offset col within rows of
 * `stride` elements) into shared memory with row pitch pitch; rows at or
 * past T read as zero. */
template <typename T>
__device__ __forceinline__ void gen_load(float *dst, int pitch, const T *base, size_t stride,
                                         int col, int row0, int BT, int D, int T_) {
    for (int i = threadIdx.x; i < BT * D; i += GEN_THREADS) {
        int r = i / D, d = i % D, row = row0 + r;
        dst[r * pitch + d] = row < T_ ? to_f(base[(size_t)row * stride + col + d]) : 0.f;
    }
}

/* P and dS of a (query tile, key tile) pair: P = exp(scale q.k - lse_q),
 * dS = P (dO_q . v_k - dd_q); zero where masked or out of range. */
__device__ __forceinline__ void gen_pds(float *Ps, float *dSs, const float *Qs, const float *Ks,
                                        const float *Vs, const float *dOs, const float *ls,
                                        const float *dsv, int q0, int k0, int BT, int D, int T_,
                                        float scale) {
    int DP = D + 1, SP = BT + 1;
    for (int i = threadIdx.x; i < BT * BT; i += GEN_THREADS) {
        int r = i / BT, c = i % BT, q = q0 + r, k = k0 + c;
        float p = 0.f, ds = 0.f;
        if (k <= q && q < T_) {
            float s = 0.f, dp = 0.f;
            for (int d = 0; d < D; d++) {
                s += Qs[r * DP + d] * Ks[c * DP + d];
                dp += dOs[r * DP + d] * Vs[c * DP + d];
            }
            p = expf(s * scale - ls[r]);
            ds = p * (dp - dsv[r]);
        }
        if (Ps) Ps[r * SP + c] = p;
        dSs[r * SP + c] = ds;
    }
}

template <typename T>
__global__ void __launch_bounds__(GEN_THREADS)
    attn_bwd_dkv_generic(T *dqkv, const T *dout, const T *qkv, const float *lse, const float *dd,
                         int T_, int C, int NH, int BT, float scale) {
    extern __shared__ float sh[];
    int D = C / NH, DP = D + 1, SP = BT + 1;
    float *Ks = sh, *Vs = Ks + BT * DP, *Qs = Vs + BT * DP, *dOs = Qs + BT * DP;
    float *dKs = dOs + BT * DP, *dVs = dKs + BT * D, *Ps = dVs + BT * D, *dSs = Ps + BT * SP;
    float *ls = dSs + BT * SP, *dsv = ls + BT;
    int kt = blockIdx.x, nqt = gridDim.x, bh = blockIdx.y, b = bh / NH, h = bh % NH;
    size_t rs = (size_t)3 * C;
    const T *qb = qkv + (size_t)b * T_ * rs;
    const T *ob = dout + (size_t)b * T_ * C;
    int k0 = kt * BT;
    gen_load(Ks, DP, qb, rs, C + h * D, k0, BT, D, T_);
    gen_load(Vs, DP, qb, rs, 2 * C + h * D, k0, BT, D, T_);
    for (int i = threadIdx.x; i < BT * D; i += GEN_THREADS) dKs[i] = dVs[i] = 0.f;
    for (int qt = kt; qt < nqt; qt++) {
        int q0 = qt * BT;
        __syncthreads();
        gen_load(Qs, DP, qb, rs, h * D, q0, BT, D, T_);
        gen_load(dOs, DP, ob, (size_t)C, h * D, q0, BT, D, T_);
        for (int r = threadIdx.x; r < BT; r += GEN_THREADS) {
            int q = q0 + r;
            ls[r] = q < T_ ? lse[(size_t)bh * T_ + q] : 0.f;
            dsv[r] = q < T_ ? dd[(size_t)bh * T_ + q] : 0.f;
        }
        __syncthreads();
        gen_pds(Ps, dSs, Qs, Ks, Vs, dOs, ls, dsv, q0, k0, BT, D, T_, scale);
        __syncthreads();
        for (int i = threadIdx.x; i < BT * D; i += GEN_THREADS) {
            int c = i / D, d = i % D;
            float dv = 0.f, dk = 0.f;
            for (int r = 0; r < BT; r++) {
                dv += Ps[r * SP + c] * dOs[r * DP + d];
                dk += dSs[r * SP + c] * Qs[r * DP + d];
            }
            dVs[i] += dv;
            dKs[i] += dk * scale;
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < BT * D; i += GEN_THREADS) {
        int c = i / D, d = i % D, k = k0 + c;
        if (k >= T_) continue;
        T *row = dqkv + ((size_t)b * T_ + k) * rs + (size_t)h * D + d;
        row[C] = from_f<T>(dKs[i]);
        row[2 * C] = from_f<T>(dVs[i]);
    }
}

template <typename T>
__global__ void __launch_bounds__(GEN_THREADS)
    attn_bwd_dq_generic(T *dqkv, const T *dout, const T *qkv, const float *lse, const float *dd,
                        int T_, int C, int NH, int BT, float scale) {
    extern __shared__ float sh[];
    int D = C / NH, DP = D + 1, SP = BT + 1;
    float *Ks = sh, *Vs = Ks + BT * DP, *Qs = Vs + BT * DP, *dOs = Qs + BT * DP;
    float *dQs = dOs + BT * DP, *dSs = dQs + BT * D, *ls = dSs + BT * SP, *dsv = ls + BT;
    int qt = gridDim.x - 1 - blockIdx.x, bh = blockIdx.y, b = bh / NH, h = bh % NH;
    size_t rs = (size_t)3 * C;
    const T *qb = qkv + (size_t)b * T_ * rs;
    const T *ob = dout + (size_t)b * T_ * C;
    int q0 = qt * BT;
    gen_load(Qs, DP, qb, rs, h * D, q0, BT, D, T_);
    gen_load(dOs, DP, ob, (size_t)C, h * D, q0, BT, D, T_);
    for (int r = threadIdx.x; r < BT; r += GEN_THREADS) {
        int q = q0 + r;
        ls[r] = q < T_ ? lse[(size_t)bh * T_ + q] : 0.f;
        dsv[r] = q < T_ ? dd[(size_t)bh * T_ + q] : 0.f;
    }
    for (int i = threadIdx.x; i < BT * D; i += GEN_THREADS) dQs[i] = 0.f;
    for (int kt = 0; kt <= qt; kt++) {
        int k0 = kt * BT;
        __syncthreads();
        gen_load(Ks, DP, qb, rs, C + h * D, k0, BT, D, T_);
        gen_load(Vs, DP, qb, rs, 2 * C + h * D, k0, BT, D, T_);
        __syncthreads();
        gen_pds(NULL, dSs, Qs, Ks, Vs, dOs, ls, dsv, q0, k0, BT, D, T_, scale);
        __syncthreads();
        for (int i = threadIdx.x; i < BT * D; i += GEN_THREADS) {
            int r = i / D, d = i % D;
            float s = 0.f;
            for (int c = 0; c < BT; c++) s += dSs[r * SP + c] * Ks[c * DP + d];
            dQs[i] += s * scale;
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < BT * D; i += GEN_THREADS) {
        int r = i / D, d = i % D, q = q0 + r;
        if (q < T_) dqkv[((size_t)b * T_ + q) * rs + (size_t)h * D + d] = from_f<T>(dQs[i]);
    }
}

/* dqkv[:, :, 0:C] = dq_acc (the fast backward's fp32 accumulator). */
__global__ void dq_convert(bf16 *dqkv, const float *dq, size_t rows, int C) {
    size_t n = rows * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dqkv[(i / C) * 3 * C + i % C] = __float2bfloat16(dq[i]);
}

/* ------------------------------------------------------------ KV cache */

template <typename T>
__global__ void kv_store(T *kc, T *vc, const T *qkv, const int *pos0, int B, int Tq, int S, int C) {
    size_t n = (size_t)B * Tq * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t row = i / C;
        int c = (int)(i % C), b = (int)(row / Tq), t = (int)(row % Tq);
        long long p = (long long)(pos0 ? pos0[b] : 0) + t;
        if (p < 0 || p >= S) continue;
        size_t dst = ((size_t)b * S + p) * C + c;
        kc[dst] = qkv[row * 3 * C + C + c];
        vc[dst] = qkv[row * 3 * C + 2 * C + c];
    }
}

/* The start of the one-block-per-query KV kernels (block (row, head), row
 * = b * Tq + t): the query's position p = pos0[b] + t, or false when it is
 * outside the cache (the same for the whole block: nothing to do); with
 * store (Tq == 1), the block's k, v slice written into the caches; the
 * query, scaled, in qs and zeros in acc (D floats each). After it the
 * block's threads see all of that. */
template <typename T, int NTHREADS>
__device__ __forceinline__ bool kv_query_begin(int &p, size_t &cbase, float *qs, float *acc,
                                               const T *qkv, T *kc, T *vc, const int *pos0,
                                               int Tq, int S, int C, int D, int store,
                                               float scale) {
    int row = blockIdx.x, h = blockIdx.y, b = row / Tq, t = row % Tq;
    long long pl = (long long)(pos0 ? pos0[b] : 0) + t;
    if (pl < 0 || pl >= S) return false;
    p = (int)pl;
    const T *qrow = qkv + (size_t)row * 3 * C + (size_t)h * D;
    cbase = (size_t)b * S * C + (size_t)h * D;
    for (int d = threadIdx.x; d < D; d += NTHREADS) {
        if (store) {
            kc[cbase + (size_t)p * C + d] = qrow[C + d];
            vc[cbase + (size_t)p * C + d] = qrow[2 * C + d];
        }
        qs[d] = to_f(qrow[d]) * scale;
        acc[d] = 0.f;
    }
    __syncthreads(); /* the stored slice is now visible to the block */
    return true;
}

/* The end of a chunk of keys: acc[d] = acc[d] * a + the nparts partial
 * sums part[i * D + d], in order; the block's threads see acc afterwards
 * and part may be rewritten. */
template <int NTHREADS>
__device__ __forceinline__ void kv_fold_parts(float *acc, const float *part, int nparts, int D,
                                              float a) {
    __syncthreads();
    for (int d = threadIdx.x; d < D; d += NTHREADS) {
        float v = acc[d] * a;
        for (int i = 0; i < nparts; i++) v += part[i * D + d];
        acc[d] = v;
    }
    __syncthreads();
}

/* The query's output row: acc / l (block (row, head)). */
template <typename T, int NTHREADS>
__device__ __forceinline__ void kv_query_end(T *out, const float *acc, float l, int C, int D) {
    T *o = out + (size_t)blockIdx.x * C + (size_t)blockIdx.y * D;
    for (int d = threadIdx.x; d < D; d += NTHREADS) o[d] = from_f<T>(acc[d] / l);
}

/* One block per (b, t, head): the query at p = pos0[b] + t attends over
 * cache positions 0..p, CH keys at a time through shared memory with an
 * online softmax. With store set (Tq == 1) the block first writes its own
 * k, v slice into the caches. */
template <typename T>
__global__ void __launch_bounds__(KV_THREADS)
    attn_kv_kernel(T *out, const T *qkv, T *kc, T *vc, const int *pos0, int Tq, int S, int C,
                   int NH, int CH, int store, float scale) {
    extern __shared__ float sh[];
    int tid = threadIdx.x;
    int D = C / NH, DP = D + 1;
    int nsub = KV_THREADS / D > 1 ? KV_THREADS / D : 1;
    float *qs = sh, *acc = qs + D, *Kc = acc + D, *Vc = Kc + CH * DP, *sc = Vc + CH * D,
          *red = sc + CH, *red_shm = red + nsub * D; /* 33 floats for block_max/sum */
    int p;
    size_t cbase;
    if (!kv_query_begin<T, KV_THREADS>(p, cbase, qs, acc, qkv, kc, vc, pos0, Tq, S, C, D, store,
                                       scale))
        return;
    float m = -INFINITY, l = 0.f;
    for (int k0 = 0; k0 <= p; k0 += CH) {
        int n = min(CH, p + 1 - k0);
        for (int i = tid; i < n * D; i += KV_THREADS) {
            int kk = i / D, d = i % D;
            size_t off = cbase + (size_t)(k0 + kk) * C + d;
            Kc[kk * DP + d] = to_f(kc[off]);
            Vc[kk * D + d] = to_f(vc[off]);
        }
        __syncthreads();
        float s = -INFINITY;
        if (tid < n) {
            s = 0.f;
            for (int d = 0; d < D; d++) s += qs[d] * Kc[tid * DP + d];
        }
        float mn = fmaxf(m, block_max(s, red_shm));
        float a = m == -INFINITY ? 0.f : expf(m - mn);
        float pe = tid < n ? expf(s - mn) : 0.f;
        if (tid < CH) sc[tid] = pe;
        l = l * a + block_sum(pe, red_shm);
        m = mn;
        for (int i = tid; i < nsub * D; i += KV_THREADS) {
            int sub = i / D, d = i % D;
            float part = 0.f;
            for (int kk = sub; kk < n; kk += nsub) part += sc[kk] * Vc[kk * D + d];
            red[i] = part;
        }
        kv_fold_parts<KV_THREADS>(acc, red, nsub, D, a);
    }
    kv_query_end<T, KV_THREADS>(out, acc, l, C, D);
}

/* The decoding kernel for even head sizes up to 256 (every model here):
 * one block of 16 warps per (b, t, head), no staging of the cache in
 * shared memory. Scores: one thread per key, the key row read with 16-byte
 * loads (KV elements at a time), all in flight together. Values: each warp
 * takes every 16th key and each lane two adjacent dimensions per 64, so a
 * warp reads a whole value row per key and the 16 warps' partial sums are
 * added at the end of the chunk. Keys come KVF_CHUNK at a time with an
 * online softmax across chunks. */
enum { KVF_THREADS = 512, KVF_WARPS = KVF_THREADS / 32, KVF_CHUNK = 1024, KVF_MAXP = 4 };

__device__ __forceinline__ void load2(float &x, float &y, const bf16 *p) {
    __nv_bfloat162 v = *reinterpret_cast<const __nv_bfloat162 *>(p);
    x = __low2float(v), y = __high2float(v);
}
__device__ __forceinline__ void load2(float &x, float &y, const float *p) {
    float2 v = *reinterpret_cast<const float2 *>(p);
    x = v.x, y = v.y;
}

static size_t smem_kvf(int D) {
    return (size_t)D * (KVF_WARPS + 2) + KVF_CHUNK + 33;
}

template <typename T, int KV>
__global__ void __launch_bounds__(KVF_THREADS)
    attn_kv_fast(T *out, const T *qkv, T *kc, T *vc, const int *pos0, int Tq, int S, int C, int NH,
                 int store, float scale) {
    extern __shared__ float sh[];
    pdl_wait_and_release();
    int tid = threadIdx.x;
    int warp = tid >> 5, lane = tid & 31;
    int D = C / NH;
    float *qs = sh, *o = qs + D, *part = o + D, *sc = part + KVF_WARPS * D, *red = sc + KVF_CHUNK;
    int p;
    size_t cbase;
    if (!kv_query_begin<T, KVF_THREADS>(p, cbase, qs, o, qkv, kc, vc, pos0, Tq, S, C, D, store,
                                        scale))
        return;
    float m = -INFINITY, l = 0.f;
    for (int k0 = 0; k0 <= p; k0 += KVF_CHUNK) {
        int n = min(KVF_CHUNK, p + 1 - k0);
        float smax = -INFINITY;
        for (int kk = tid; kk < n; kk += KVF_THREADS) {
            const T *kr = kc + cbase + (size_t)(k0 + kk) * C;
            float s = 0.f;
            for (int d = 0; d < D; d += KV) {
                float kv[KV];
                load_f<KV>(kv, kr + d);
#pragma unroll
                for (int e = 0; e < KV; e++) s += qs[d + e] * kv[e];
            }
            sc[kk] = s;
            smax = fmaxf(smax, s);
        }
        float mn = fmaxf(m, block_max(smax, red));
        float a = m == -INFINITY ? 0.f : expf(m - mn), psum = 0.f;
        for (int kk = tid; kk < n; kk += KVF_THREADS) { /* this thread's own scores */
            float e = expf(sc[kk] - mn);
            sc[kk] = e;
            psum += e;
        }
        l = l * a + block_sum(psum, red); /* its barriers publish sc */
        m = mn;
        float acc[KVF_MAXP][2];
#pragma unroll
        for (int i = 0; i < KVF_MAXP; i++) acc[i][0] = acc[i][1] = 0.f;
#pragma unroll 4
        for (int kk = warp; kk < n; kk += KVF_WARPS) {
            float pk = sc[kk];
            const T *vr = vc + cbase + (size_t)(k0 + kk) * C;
#pragma unroll
            for (int i = 0; i < KVF_MAXP; i++) {
                int d = 2 * (lane + 32 * i);
                if (d < D) {
                    float x, y;
                    load2(x, y, vr + d);
                    acc[i][0] += pk * x, acc[i][1] += pk * y;
                }
            }
        }
#pragma unroll
        for (int i = 0; i < KVF_MAXP; i++) {
            int d = 2 * (lane + 32 * i);
            if (d < D) part[warp * D + d] = acc[i][0], part[warp * D + d + 1] = acc[i][1];
        }
        kv_fold_parts<KVF_THREADS>(o, part, KVF_WARPS, D, a);
    }
    kv_query_end<T, KVF_THREADS>(out, o, l, C, D);
}

/* The decoding kernel (Tq == 1) for head sizes of LPK 16-byte vectors
 * (D = 32..256 in bf16, 16..128 in fp32): every load of the cache is a
 * 16-byte vector and all of a thread's loads are issued together.
 *
 * A key is taken by a group of LPK lanes, one vector of the head each:
 * the group loads the key's K and V vectors, adds its partial dot product
 * across its lanes with shuffles, and keeps its own online softmax (m, l
 * and its vector of o). KVD_UK = 8 keys per group per round are loaded
 * before any is used, so that caches of up to 256 positions are read in one
 * round, and they stay raw 16-byte vectors (4 registers each) until used:
 * held as floats they cost enough registers to halve the blocks an SM
 * holds. At the end the groups of a warp merge through shuffles, the warps
 * through shared memory. Long caches with few (row, head) pairs (batch 1 at
 * 1024 positions) split the keys, about KVD_KEYS per block, over up to 8
 * blocks of a thread-block cluster (flash-decoding), and the first block
 * merges their results from their shared memory, in rank order; short ones
 * do not, since the cluster's barriers cost more than a second round of
 * loads.
 *
 * The key and value of the query's own position p are read from qkv, not
 * the cache, so no block depends on another's store; block 0 of each head
 * stores them in the cache. Scores are in base 2 (q is scaled by
 * log2(e) / sqrt(D)). */
enum { KVD_THREADS = 256, KVD_WARPS = KVD_THREADS / 32, KVD_MAXSPLIT = 8, KVD_KEYS = 512, KVD_UK = 8 };

/* One round of a group's keys kk, kk + GROUPS, ... (UK of them) from the
 * cache as raw vectors; zeros past k1 and at the new position p, whose
 * key and value the caller takes from qkv. */
template <int UK, int GROUPS>
__device__ __forceinline__ void kvd_load(uint4 *kr, uint4 *vr, int kk, int k1, int p,
                                         const void *kc, const void *vc, size_t row_bytes) {
#pragma unroll
    for (int u = 0; u < UK; u++) {
        int j = kk + u * GROUPS;
        kr[u] = vr[u] = make_uint4(0u, 0u, 0u, 0u);
        if (j < k1 && j != p) {
            kr[u] = *reinterpret_cast<const uint4 *>((const char *)kc + (size_t)j * row_bytes);
            vr[u] = *reinterpret_cast<const uint4 *>((const char *)vc + (size_t)j * row_bytes);
        }
    }
}

/* Merges softmax state (mo, lo, oo) into (m, l, o); -inf means empty. */
template <int VEC>
__device__ __forceinline__ void kvd_merge(float &m, float &l, float *o, float mo, float lo,
                                          const float *oo) {
    float mx = fmaxf(m, mo);
    float a = m == -INFINITY ? 0.f : exp2f(m - mx), b = mo == -INFINITY ? 0.f : exp2f(mo - mx);
    l = l * a + lo * b;
#pragma unroll
    for (int e = 0; e < VEC; e++) o[e] = o[e] * a + oo[e] * b;
    m = mx;
}

template <typename T, int LPK>
__global__ void __launch_bounds__(KVD_THREADS, 2)
    attn_kv_decode(T *out, const T *qkv, T *kc, T *vc, const int *pos0, int S, int C,
                   float scale_log2) {
    constexpr int VEC = vec16<T>::n, D = LPK * VEC, GROUPS = KVD_THREADS / LPK, UK = KVD_UK;
    __shared__ float wm[KVD_WARPS], wl[KVD_WARPS], wo[KVD_WARPS][D];
    __shared__ float fin[D + 2]; /* this block's o, m, l (cluster merge) */
    const int b = blockIdx.z, h = blockIdx.y, ns = gridDim.x;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, grp = tid / LPK, sub = tid % LPK;
    /* Before waiting for the kernel this one follows (the qkv product):
     * pos0 and the cache are early inputs (backend.h), written by kernels
     * that had completed before that one started, so the first round of
     * cache loads overlaps its work. Only q and the new key and value
     * (from qkv) need the wait. */
    TRACE(TR_ATTN, 0, 0);
    long long pl = pos0[b];
    if (pl < 0 || pl >= S) { /* the same for every block of a cluster */
        /* still wait: were every row out of range, the kernel could
         * otherwise end before the one it follows, and the kernels after
         * it would no longer be ordered after that one */
        pdl_wait_and_release();
        return;
    }
    const int p = (int)pl, nk = p + 1, per = (nk + ns - 1) / ns;
    const int k0 = blockIdx.x * per, k1 = min(nk, k0 + per);
    const T *qrow = qkv + (size_t)b * 3 * C + (size_t)h * D + sub * VEC;
    const size_t cb = (size_t)b * S * C + (size_t)h * D + sub * VEC;
    /* raw 16-byte vectors (4 registers each), converted where used */
    uint4 kr[UK], vr[UK];
    kvd_load<UK, GROUPS>(kr, vr, k0 + grp, k1, p, kc + cb, vc + cb, (size_t)C * sizeof(T));
    pdl_wait_and_release();
    TRACE(TR_ATTN, 1, p);
    float q[VEC];
    load_f<VEC>(q, qrow);
#pragma unroll
    for (int e = 0; e < VEC; e++) q[e] *= scale_log2;
    if (blockIdx.x == 0 && grp == 0) {
        *reinterpret_cast<int4 *>(kc + cb + (size_t)p * C) = *reinterpret_cast<const int4 *>(qrow + C);
        *reinterpret_cast<int4 *>(vc + cb + (size_t)p * C) =
            *reinterpret_cast<const int4 *>(qrow + 2 * C);
    }
    float m = -INFINITY, l = 0.f, o[VEC];
#pragma unroll
    for (int e = 0; e < VEC; e++) o[e] = 0.f;
    /* the same number of rounds for every thread: the shuffles need whole warps */
    const int nit = k1 > k0 ? (k1 - k0 + GROUPS * UK - 1) / (GROUPS * UK) : 0;
    for (int it = 0; it < nit; it++) {
        const int kk = k0 + grp + it * GROUPS * UK;
        if (it > 0) kvd_load<UK, GROUPS>(kr, vr, kk, k1, p, kc + cb, vc + cb, (size_t)C * sizeof(T));
#pragma unroll
        for (int u = 0; u < UK; u++)
            if (kk + u * GROUPS == p) { /* p < k1 here */
                kr[u] = *reinterpret_cast<const uint4 *>(qrow + C);
                vr[u] = *reinterpret_cast<const uint4 *>(qrow + 2 * C);
            }
        float s[UK], mx = m;
#pragma unroll
        for (int u = 0; u < UK; u++) {
            float kf[VEC], d = 0.f;
            unpack_f<T>(kf, kr[u]);
#pragma unroll
            for (int e = 0; e < VEC; e++) d += q[e] * kf[e];
#pragma unroll
            for (int off = LPK / 2; off > 0; off >>= 1) d += __shfl_xor_sync(0xffffffffu, d, off);
            s[u] = kk + u * GROUPS < k1 ? d : -INFINITY;
            mx = fmaxf(mx, s[u]);
        }
        if (mx == -INFINITY) continue; /* no key for this group this round */
        float a = exp2f(m - mx); /* 0 when m is -inf */
        l *= a;
#pragma unroll
        for (int e = 0; e < VEC; e++) o[e] *= a;
#pragma unroll
        for (int u = 0; u < UK; u++) {
            float pu = exp2f(s[u] - mx), vf[VEC];
            unpack_f<T>(vf, vr[u]);
            l += pu;
#pragma unroll
            for (int e = 0; e < VEC; e++) o[e] += pu * vf[e];
        }
        m = mx;
    }
    /* groups of a warp: lanes with the same sub hold the same dimensions */
#pragma unroll
    for (int off = LPK; off < 32; off <<= 1) {
        float mo = __shfl_xor_sync(0xffffffffu, m, off), lo = __shfl_xor_sync(0xffffffffu, l, off);
        float oo[VEC];
#pragma unroll
        for (int e = 0; e < VEC; e++) oo[e] = __shfl_xor_sync(0xffffffffu, o[e], off);
        kvd_merge<VEC>(m, l, o, mo, lo, oo);
    }
    if (lane < LPK) {
        if (lane == 0) wm[warp] = m, wl[warp] = l;
#pragma unroll
        for (int e = 0; e < VEC; e++) wo[warp][sub * VEC + e] = o[e];
    }
    __syncthreads();
    float bo = 0.f, bm = -INFINITY, bl = 0.f;
    if (tid < D) {
        for (int k = 0; k < KVD_WARPS; k++) kvd_merge<1>(bm, bl, &bo, wm[k], wl[k], &wo[k][tid]);
    }
    cg::cluster_group cl = cg::this_cluster();
    bool mine = true;
    if (ns > 1) {
        if (tid < D) fin[tid] = bo;
        if (tid == 0) fin[D] = bm, fin[D + 1] = bl;
        cl.sync();
        mine = cl.block_rank() == 0;
        if (mine && tid < D) {
            for (int r = 1; r < ns; r++) {
                const float *f = cl.map_shared_rank(fin, r);
                kvd_merge<1>(bm, bl, &bo, f[D], f[D + 1], &f[tid]);
            }
        }
    }
    if (mine && tid < D) out[(size_t)b * C + (size_t)h * D + tid] = from_f<T>(bo / bl);
    if (ns > 1) cl.sync(); /* the other blocks' shared memory stays until it is read */
}

TRACE_SETTER(cuda_trace_set_attn)

/* ----------------------------------------------------------- launchers */

static int kv_chunk(gpt_backend *be, int D) {
    size_t limit = cuda_ctx_of(be)->prop.sharedMemPerBlockOptin;
    for (int CH = KV_CHUNK_MAX; CH >= 8; CH /= 2)
        if (smem_kv(CH, D) * sizeof(float) <= limit) return CH;
    return 0;
}

/* Lets kernel k take all the shared memory a block may opt in to, less
 * what it declares statically. */
template <typename K> static int optin_smem(gpt_backend *be, K *k) {
    cudaFuncAttributes a;
    if (CUDA_CHECK(be, cudaFuncGetAttributes(&a, k))) return 1;
    int n = (int)(cuda_ctx_of(be)->prop.sharedMemPerBlockOptin - a.sharedSizeBytes);
    return CUDA_CHECK(be, cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, n));
}

/* A cluster of two blocks launched as a programmatic dependent: what the
 * decoding KV attention's key splits need from the device and driver. */
__global__ void cluster_probe_kernel() {
    pdl_wait_and_release();
    cg::this_cluster().sync();
}

/* Where the launch fails, no key splits (one block per row and head),
 * noted in the device description. */
static void cluster_probe(gpt_backend *be) {
    cuda_ctx *c = cuda_ctx_of(be);
    if (c->kv_split == 1) return;
    cudaLaunchConfig_t cfg;
    cudaLaunchAttribute at[2];
    pdl_cluster_config(&cfg, at, dim3(2), dim3(32), c->stream, dim3(2, 1, 1));
    cudaError_t e = cudaLaunchKernelEx(&cfg, cluster_probe_kernel);
    if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
    if (e != cudaSuccess) {
        cudaGetLastError();
        c->kv_split = 1;
        size_t l = strlen(c->desc);
        snprintf(c->desc + l, sizeof c->desc - l, " [no clusters: %s]", cudaGetErrorName(e));
    }
}

extern "C" int cuda_attention_setup(gpt_backend *be) {
#define OPTIN(k) optin_smem(be, k)
    if (OPTIN(attn_fwd_generic<float>) || OPTIN(attn_fwd_generic<bf16>) ||
        OPTIN(attn_bwd_dkv_generic<float>) || OPTIN(attn_bwd_dkv_generic<bf16>) ||
        OPTIN(attn_bwd_dq_generic<float>) || OPTIN(attn_bwd_dq_generic<bf16>) ||
        OPTIN(attn_kv_kernel<float>) || OPTIN(attn_kv_kernel<bf16>))
        return be->err.code;
#undef OPTIN
    cluster_probe(be);
    return cuda_attn_mma_setup(be);
}

static int attn_shape_ok(gpt_backend *be, const char *op, int B, int T, int C, int NH) {
    if (B < 0 || T < 0 || C < 1 || NH < 1 || C % NH) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "cuda %s: bad shape B=%d T=%d C=%d NH=%d", op, B, T, C,
                         NH);
        return 0;
    }
    if ((size_t)B * NH > 65535) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "cuda %s: B*NH=%lld exceeds the grid limit 65535", op,
                         (long long)B * NH);
        return 0;
    }
    return B > 0 && T > 0;
}

static int tile_or_fail(gpt_backend *be, const char *op, size_t (*smem)(int, int), int D) {
    int BT = pick_tile(be, smem, D);
    if (!BT)
        gpt_backend_fail(be, GPT_ERR_INVALID,
                         "cuda %s: head size %d needs more shared memory than the device has", op, D);
    return BT;
}

template <typename T>
static void fwd_generic(gpt_backend *be, T *out, float *lse, const T *qkv, int B, int T_, int C,
                        int NH) {
    int D = C / NH, BT = tile_or_fail(be, "attention_forward", smem_fwd, D);
    if (!BT) return;
    dim3 grid(cuda_cdiv(T_, BT), B * NH);
    attn_fwd_generic<T><<<grid, GEN_THREADS, smem_fwd(BT, D) * sizeof(float), cuda_ctx_of(be)->stream>>>(
        out, lse, qkv, T_, C, NH, BT, 1.f / sqrtf((float)D));
    CUDA_LAUNCHED(be, "attention_forward");
}

extern "C" void cuda_attention_forward(gpt_backend *be, void *out, float *lse, const void *qkv,
                                       int B, int T, int C, int NH) {
    CUDA_SKIP_IF_FAILED(be);
    if (!attn_shape_ok(be, "attention_forward", B, T, C, NH)) return;
    if (cuda_attn_mma_ok(be, C, NH, out, qkv, NULL))
        cuda_attn_mma_forward(be, out, lse, qkv, B, T, C, NH);
    else if (cuda_bf16(be))
        fwd_generic(be, (bf16 *)out, lse, (const bf16 *)qkv, B, T, C, NH);
    else
        fwd_generic(be, (float *)out, lse, (const float *)qkv, B, T, C, NH);
}

template <typename T>
static void bwd_generic(gpt_backend *be, T *dqkv, const T *dout, const T *qkv, const T *out,
                        const float *lse, int B, int T_, int C, int NH) {
    cuda_ctx *c = cuda_ctx_of(be);
    int D = C / NH;
    int BT1 = tile_or_fail(be, "attention_backward", smem_dkv, D);
    int BT2 = tile_or_fail(be, "attention_backward", smem_dq, D);
    if (!BT1 || !BT2) return;
    float scale = 1.f / sqrtf((float)D);
    size_t warps = (size_t)B * T_ * NH;
    attn_bwd_pre<T><<<cuda_cdiv(warps * 32, 256), 256, 0, c->stream>>>(c->attn_dd, NULL, dout, out, B,
                                                                        T_, C, NH);
    if (CUDA_LAUNCHED(be, "attention_backward (dd)")) return;
    dim3 g1(cuda_cdiv(T_, BT1), B * NH), g2(cuda_cdiv(T_, BT2), B * NH);
    attn_bwd_dkv_generic<T><<<g1, GEN_THREADS, smem_dkv(BT1, D) * sizeof(float), c->stream>>>(
        dqkv, dout, qkv, lse, c->attn_dd, T_, C, NH, BT1, scale);
    if (CUDA_LAUNCHED(be, "attention_backward (dk, dv)")) return;
    attn_bwd_dq_generic<T><<<g2, GEN_THREADS, smem_dq(BT2, D) * sizeof(float), c->stream>>>(
        dqkv, dout, qkv, lse, c->attn_dd, T_, C, NH, BT2, scale);
    CUDA_LAUNCHED(be, "attention_backward (dq)");
}

extern "C" void cuda_attention_backward(gpt_backend *be, void *dqkv, const void *dout,
                                        const void *qkv, const void *out, const float *lse, int B,
                                        int T, int C, int NH) {
    CUDA_SKIP_IF_FAILED(be);
    cuda_ctx *c = cuda_ctx_of(be);
    if (!attn_shape_ok(be, "attention_backward", B, T, C, NH)) return;
    if (!lse) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "cuda attention_backward: needs the forward's lse");
        return;
    }
    size_t BT = (size_t)B * T;
    if (BT * NH > c->attn_dd_elems || BT * C > c->attn_dq_elems) {
        gpt_backend_fail(be, GPT_ERR_INVALID,
                         "cuda attention_backward: B*T=%zu C=%d exceed what reserve() sized; call "
                         "reserve with train=1 and these shapes first",
                         BT, C);
        return;
    }
    if (cuda_attn_mma_ok(be, C, NH, dqkv, qkv, dout) && cuda_aligned16(out)) {
        attn_bwd_pre<bf16><<<cuda_cdiv(BT * NH * 32, 256), 256, 0, c->stream>>>(
            c->attn_dd, c->attn_dq, (const bf16 *)dout, (const bf16 *)out, B, T, C, NH);
        if (CUDA_LAUNCHED(be, "attention_backward (dd)")) return;
        cuda_attn_mma_backward(be, dqkv, c->attn_dq, dout, qkv, lse, c->attn_dd, B, T, C, NH);
        if (be->err.code) return;
        size_t n = BT * C;
        unsigned grid = (unsigned)((n + 255) / 256);
        unsigned cap = (unsigned)c->prop.multiProcessorCount * 16;
        dq_convert<<<grid < cap ? grid : cap, 256, 0, c->stream>>>((bf16 *)dqkv, c->attn_dq, BT, C);
        CUDA_LAUNCHED(be, "attention_backward (dq convert)");
    } else if (cuda_bf16(be)) {
        bwd_generic(be, (bf16 *)dqkv, (const bf16 *)dout, (const bf16 *)qkv, (const bf16 *)out, lse,
                    B, T, C, NH);
    } else {
        bwd_generic(be, (float *)dqkv, (const float *)dout, (const float *)qkv, (const float *)out,
                    lse, B, T, C, NH);
    }
}

template <typename T>
static void kv_forward(gpt_backend *be, T *out, const T *qkv, T *kc, T *vc, const int *pos0, int B,
                       int Tq, int S, int C, int NH) {
    cuda_ctx *c = cuda_ctx_of(be);
    int D = C / NH, CH = kv_chunk(be, D);
    if (!CH) {
        gpt_backend_fail(be, GPT_ERR_INVALID,
                         "cuda attention_kv_forward: head size %d needs more shared memory than "
                         "the device has",
                         D);
        return;
    }
    if (Tq > 1) {
        size_t n = (size_t)B * Tq * C;
        unsigned grid = (unsigned)((n + 255) / 256);
        unsigned cap = (unsigned)c->prop.multiProcessorCount * 16;
        kv_store<T><<<grid < cap ? grid : cap, 256, 0, c->stream>>>(kc, vc, qkv, pos0, B, Tq, S, C);
        if (CUDA_LAUNCHED(be, "attention_kv_forward (store)")) return;
        /* A prefill from position 0 (pos0 NULL) is causal attention over
         * qkv itself: the flash kernels, instead of one block per query
         * reading the cache back (gpt2 at 16 x 64 positions: 12,288 blocks a
         * layer). */
        if (!pos0 && Tq <= S) {
            cuda_attention_forward(be, out, NULL, qkv, B, Tq, C, NH);
            return;
        }
    }
    dim3 grid(B * Tq, NH);
    float scale = 1.f / sqrtf((float)D);
    constexpr int V = vec16<T>::n;
    /* even head sizes up to 256, rows aligned for pairs: the fast kernel */
    int pairs = D % 2 == 0 && C % 2 == 0 && D <= 64 * KVF_MAXP &&
                (uintptr_t)kc % (2 * sizeof(T)) == 0 && (uintptr_t)vc % (2 * sizeof(T)) == 0;
    int wide = D % V == 0 && C % V == 0 && cuda_aligned16(kc);
    size_t shm = smem_kvf(D) * sizeof(float);
    int pdl = Tq == 1; /* decoding: the kernel follows the qkv product directly */
    cudaError_t e = cudaSuccess;
    int lpk = D / V;
    if (Tq == 1 && pos0 && D % V == 0 && C % V == 0 && (lpk == 4 || lpk == 8 || lpk == 16 ||
        lpk == 32) && B <= 65535 && cuda_aligned16(qkv) && cuda_aligned16(kc) && cuda_aligned16(vc)) {
        /* split long caches when the (row, head) blocks are fewer than two
         * per SM; GPT_CUDA_KV_SPLIT=k forces k (tests) */
        size_t pairs2 = (size_t)B * NH, sms2 = 2 * (size_t)c->prop.multiProcessorCount;
        int ns = c->kv_split > 0 ? c->kv_split : (int)cuda_cdiv((size_t)S, KVD_KEYS);
        if (c->kv_split <= 0 && (size_t)ns > cuda_cdiv(sms2, pairs2)) ns = (int)cuda_cdiv(sms2, pairs2);
        if (ns > KVD_MAXSPLIT) ns = KVD_MAXSPLIT;
        if (ns > S) ns = S;
        if (ns < 1) ns = 1;
        cudaLaunchConfig_t cfg;
        cudaLaunchAttribute at[2];
        pdl_cluster_config(&cfg, at, dim3((unsigned)ns, (unsigned)NH, (unsigned)B), dim3(KVD_THREADS),
                           c->stream, dim3((unsigned)ns, 1, 1));
        float sl2 = scale * 1.4426950408889634f;
#define KVD(L) cudaLaunchKernelEx(&cfg, attn_kv_decode<T, L>, out, qkv, kc, vc, pos0, S, C, sl2)
        switch (lpk) {
        case 4: e = KVD(4); break;
        case 8: e = KVD(8); break;
        case 16: e = KVD(16); break;
        default: e = KVD(32); break;
        }
#undef KVD
    } else if (pairs && wide)
        e = launch_k(c->stream, pdl, attn_kv_fast<T, V>, grid, KVF_THREADS, shm, out, qkv, kc, vc,
                     pos0, Tq, S, C, NH, Tq == 1, scale);
    else if (pairs)
        e = launch_k(c->stream, pdl, attn_kv_fast<T, 2>, grid, KVF_THREADS, shm, out, qkv, kc, vc,
                     pos0, Tq, S, C, NH, Tq == 1, scale);
    else
        attn_kv_kernel<T><<<grid, KV_THREADS, smem_kv(CH, D) * sizeof(float), c->stream>>>(
            out, qkv, kc, vc, pos0, Tq, S, C, NH, CH, Tq == 1, scale);
    if (!CUDA_CHECK(be, e)) CUDA_LAUNCHED(be, "attention_kv_forward");
}

extern "C" void cuda_attention_kv_forward(gpt_backend *be, void *out, const void *qkv, void *kcache,
                                          void *vcache, const int *pos0, int B, int Tq, int S,
                                          int C, int NH) {
    CUDA_SKIP_IF_FAILED(be);
    if (B < 0 || Tq < 0 || S < 0 || C < 1 || NH < 1 || C % NH || NH > 65535 ||
        (size_t)B * Tq > 0x7fffffff) {
        gpt_backend_fail(be, GPT_ERR_INVALID,
                         "cuda attention_kv_forward: bad shape B=%d Tq=%d S=%d C=%d NH=%d", B, Tq, S,
                         C, NH);
        return;
    }
    if (!B || !Tq || !S) return;
    if (cuda_bf16(be))
        kv_forward(be, (bf16 *)out, (const bf16 *)qkv, (bf16 *)kcache, (bf16 *)vcache, pos0, B, Tq,
                   S, C, NH);
    else
        kv_forward(be, (float *)out, (const float *)qkv, (float *)kcache, (float *)vcache, pos0, B,
                   Tq, S, C, NH);
}
