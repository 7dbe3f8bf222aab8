/*
 * gemv.cu - forward products of a few rows (decoding: N = batch <= 16) on
 * the tensor cores.
 *
 * A decoding step reads every weight once to produce N rows: the work is
 * moving the weights, and at batch 1 it is mostly waiting for them. Here
 * out^T (OC x N) = w (OC x IC) @ in^T is tiled into 16 output rows x 8 or
 * 16 batch rows per warp with mma.sync m16n8k16 (bf16 in, fp32
 * accumulators), the weights going straight from device memory into the A
 * fragments with 16-byte loads:
 *
 *   K order. The sum over k does not care about the order of its terms, so
 *   A and B may use any permutation of k as long as it is the same one.
 *   Lane (g, t) (g = lane / 4, t = lane % 4) owns k = 2t, 2t+1, 2t+8, 2t+9
 *   of an m16n8k16 step; mapping those to the 4 consecutive elements
 *   4t..4t+3, and two steps to 8 elements, a lane reads one 16-byte vector
 *   of its weight rows g and g+8 and one of its input row g per 32 values
 *   of k: elements 0-3 feed the first mma, 4-7 the second.
 *
 *   Work. A block of W warps takes one tile of 16 output rows; its warps
 *   take the tile's 32-wide k blocks in turn, U per round with all U loads
 *   in flight, and add their accumulators through shared memory. W grows
 *   with K (4, 8 or 16 warps) so that a warp's k blocks fit one round of
 *   loads: at 4 warps gpt2's fc2 (K = 3072, 48 tiles) took three rounds of
 *   dependent loads, 6.3 us a call against ~3 for the other products
 *   (GPT_CUDA_TRACE); 16 warps cut a gpt2 token from 309 to 290 us (H100). With
 *   GPT_CUDA_SN_SPLIT=k (k > 1; the default is 1 since an H100 ran the
 *   gpt2 decoding step 7-11% faster without clusters) and fewer tiles than
 *   twice the SMs (OC = 768 gives 48), up to k blocks split K between them
 *   as a thread-block cluster, and the first
 *   block of the cluster adds the others' partial tiles from their shared
 *   memory (distributed shared memory), in rank order: deterministic, no
 *   atomics, no global scratch.
 *
 * The bias and GELU are applied in fp32 before rounding, as in cuBLASLt's
 * epilogue. Kernels are programmatic dependents (cuda_common.cuh): they
 * wait for the kernel before them, then let the next one be scheduled.
 */
#include <cooperative_groups.h>
#include <stdio.h>
#include <string.h>

#include "cuda_common.cuh"

namespace cg = cooperative_groups;

enum { SN_MAXN = 16, SN_MAXSPLIT = 8 };

/* 16 bytes of weights, read once per step: not kept in L1. */
__device__ __forceinline__ uint4 ld_weights(const bf16 *p) {
    uint4 r;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p));
    return r;
}

/* 16 bytes of activations written by an earlier kernel: an ordinary load,
 * after griddepcontrol.wait. */
__device__ __forceinline__ uint4 ld_act(const bf16 *p) { return *reinterpret_cast<const uint4 *>(p); }

/* NT tiles of 8 batch rows (N <= 8 * NT), U k blocks per warp per round,
 * SN_WARPS warps. Grid (ceil(OC / 16), splits); a cluster of (1, splits, 1)
 * when splits > 1. */
template <int NT, int U, int SN_WARPS>
__global__ void __launch_bounds__(SN_WARPS * 32)
    sn_kernel(bf16 *out, bf16 *pre, const bf16 *in, const bf16 *w, const bf16 *bias, int N, int IC,
              int OC, int gelu) {
    constexpr int SN_THREADS = SN_WARPS * 32;
    constexpr int E = NT * 8 * 16; /* elements of the block's output tile */
    __shared__ float red[SN_WARPS][E];
    __shared__ float part[E];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int m0 = blockIdx.x * 16, ns = gridDim.y;
    const int KB = IC >> 5, per = (KB + ns - 1) / ns;
    const int kb0 = blockIdx.y * per, kb1 = min(KB, kb0 + per);
    /* rows past OC read row OC-1 (valid memory); their results are dropped */
    const bf16 *w0 = w + (size_t)min(m0 + g, OC - 1) * IC + 8 * t;
    const bf16 *w1 = w + (size_t)min(m0 + g + 8, OC - 1) * IC + 8 * t;
    const uint4 z = make_uint4(0u, 0u, 0u, 0u);
    uint4 wa[U], wb[U];
    int kb = kb0 + warp;
    TRACE(TR_SN, 0, OC);
    pdl_wait_and_release();
    TRACE(TR_SN, 1, OC);
#pragma unroll
    for (int u = 0; u < U; u++) {
        int k = kb + u * SN_WARPS;
        wa[u] = z, wb[u] = z;
        if (k < kb1) wa[u] = ld_weights(w0 + (size_t)k * 32), wb[u] = ld_weights(w1 + (size_t)k * 32);
    }
    const bool h0 = g < N, h1 = NT == 2 && g + 8 < N; /* batch rows g, g+8 exist */
    const bf16 *x0 = in + (size_t)(h0 ? g : 0) * IC + 8 * t;
    const bf16 *x1 = in + (size_t)(h1 ? g + 8 : 0) * IC + 8 * t;
    float acc[NT][4];
#pragma unroll
    for (int i = 0; i < NT; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
    for (;;) {
        uint4 xf[U][NT];
#pragma unroll
        for (int u = 0; u < U; u++) {
            int k = kb + u * SN_WARPS;
            bool kin = k < kb1;
            xf[u][0] = kin && h0 ? ld_act(x0 + (size_t)k * 32) : z;
            if (NT == 2) xf[u][NT - 1] = kin && h1 ? ld_act(x1 + (size_t)k * 32) : z;
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            if (kb + u * SN_WARPS < kb1) {
#pragma unroll
                for (int i = 0; i < NT; i++) {
                    mma16816(acc[i], wa[u].x, wb[u].x, wa[u].y, wb[u].y, xf[u][i].x, xf[u][i].y);
                    mma16816(acc[i], wa[u].z, wb[u].z, wa[u].w, wb[u].w, xf[u][i].z, xf[u][i].w);
                }
            }
        }
        kb += SN_WARPS * U;
        if (kb >= kb1) break;
#pragma unroll
        for (int u = 0; u < U; u++) {
            int k = kb + u * SN_WARPS;
            wa[u] = z, wb[u] = z;
            if (k < kb1) wa[u] = ld_weights(w0 + (size_t)k * 32), wb[u] = ld_weights(w1 + (size_t)k * 32);
        }
    }
    /* accumulator (row r, batch column n) -> red[warp][n * 16 + r] */
#pragma unroll
    for (int i = 0; i < NT; i++) {
        int c = i * 8 + 2 * t;
        red[warp][c * 16 + g] = acc[i][0];
        red[warp][(c + 1) * 16 + g] = acc[i][1];
        red[warp][c * 16 + g + 8] = acc[i][2];
        red[warp][(c + 1) * 16 + g + 8] = acc[i][3];
    }
    __syncthreads();
    for (int e = threadIdx.x; e < E; e += SN_THREADS) {
        float s = 0.f;
#pragma unroll
        for (int k = 0; k < SN_WARPS; k++) s += red[k][e];
        part[e] = s;
    }
    bool mine = true; /* this block writes the tile */
    cg::cluster_group cl = cg::this_cluster();
    if (ns > 1) {
        cl.sync(); /* every block's partial tile is in its shared memory */
        mine = cl.block_rank() == 0;
    } else {
        __syncthreads();
    }
    if (mine) {
        for (int e = threadIdx.x; e < E; e += SN_THREADS) {
            float s = part[e];
            for (int r = 1; r < ns; r++) s += cl.map_shared_rank(part, r)[e];
            int n = e >> 4, o = m0 + (e & 15);
            if (n < N && o < OC) {
                float y = s + (bias ? to_f(bias[o]) : 0.f);
                size_t at = (size_t)n * OC + o;
                if (gelu) {
                    if (pre) pre[at] = __float2bfloat16(y);
                    out[at] = __float2bfloat16(gelu_f(y));
                } else {
                    out[at] = __float2bfloat16(y);
                }
            }
        }
    }
    if (ns > 1) cl.sync(); /* the other blocks' shared memory stays until it is read */
}

TRACE_SETTER(cuda_trace_set_gemv)

template <int NT, int U, int W>
static cudaError_t sn_launch_u(const cudaLaunchConfig_t *cfg, bf16 *out, bf16 *pre, const bf16 *in,
                               const bf16 *w, const bf16 *bias, int N, int IC, int OC, int gelu) {
    return cudaLaunchKernelEx(cfg, sn_kernel<NT, U, W>, out, pre, in, w, bias, N, IC, OC, gelu);
}

extern "C" int cuda_sn_matmul(gpt_backend *be, void *out, void *pre, const void *in, const void *w,
                              const void *bias, int N, int IC, int OC, int gelu) {
    cuda_ctx *c = cuda_ctx_of(be);
    if (!cuda_bf16(be) || c->no_sn || N < 1 || N > SN_MAXN || IC < 32 || IC % 32 || OC < 1 ||
        !cuda_aligned16(in) || !cuda_aligned16(w))
        return 0;
    if (be->err.code) return 1;
    int mt = (int)cuda_cdiv((size_t)OC, 16), KB = IC / 32, ns = 1;
    if (c->sn_max_split > 1) {
        /* enough blocks for two per SM, each warp with a k block at least */
        ns = (int)cuda_cdiv((size_t)2 * c->prop.multiProcessorCount, (size_t)mt);
        if (ns > c->sn_max_split) ns = c->sn_max_split;
        if (ns > SN_MAXSPLIT) ns = SN_MAXSPLIT;
        if (ns > KB / 4) ns = KB / 4;
        if (ns < 1) ns = 1;
    }
    int per = (KB + ns - 1) / ns;
    ns = (KB + per - 1) / per; /* no empty split */
    /* warps per block: enough that each warp's k blocks fit one round of
     * loads (8 blocks of 32) where K is long (fc2: 96 blocks, 16 warps).
     * Splitting only the few-tile products (fc2, proj: 48 tiles) over a
     * cluster of 2-4 as well was slower (H100: 375 -> 379-400 us a batch-16
     * step). */
    int W = per > 64 ? 16 : per > 32 ? 8 : 4;
    int rounds = (per + W - 1) / W;
    cudaLaunchConfig_t cfg;
    cudaLaunchAttribute at[2];
    memset(&cfg, 0, sizeof cfg);
    memset(at, 0, sizeof at);
    cfg.gridDim = dim3((unsigned)mt, (unsigned)ns, 1);
    cfg.blockDim = dim3((unsigned)W * 32, 1, 1);
    cfg.stream = c->stream;
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.numAttrs = 1;
    if (ns > 1) {
        at[1].id = cudaLaunchAttributeClusterDimension;
        at[1].val.clusterDim.x = 1;
        at[1].val.clusterDim.y = (unsigned)ns;
        at[1].val.clusterDim.z = 1;
        cfg.numAttrs = 2;
    }
    cfg.attrs = at;
    bf16 *o = (bf16 *)out, *p = gelu ? (bf16 *)pre : NULL;
    const bf16 *x = (const bf16 *)in, *wt = (const bf16 *)w, *bi = (const bf16 *)bias;
    cudaError_t e;
#define SN_W(NT, U)                                                                         \
    (W == 16   ? sn_launch_u<NT, U, 16>(&cfg, o, p, x, wt, bi, N, IC, OC, gelu)               \
     : W == 8 ? sn_launch_u<NT, U, 8>(&cfg, o, p, x, wt, bi, N, IC, OC, gelu)                \
              : sn_launch_u<NT, U, 4>(&cfg, o, p, x, wt, bi, N, IC, OC, gelu))
    if (N <= 8)
        e = rounds > 4 ? SN_W(1, 8) : SN_W(1, 4);
    else
        e = rounds > 4 ? SN_W(2, 8) : SN_W(2, 4);
#undef SN_W
    if (!CUDA_CHECK(be, e)) CUDA_LAUNCHED(be, "matmul (small N, tensor cores)");
    return 1;
}

/* Checks once, at creation, that this device and driver take a cluster
 * launch that is also a programmatic dependent (the small-N products and
 * the KV attention use both): if not, no clusters (one block per tile or
 * per head), noted in the device description. */
extern "C" void cuda_decode_probe(gpt_backend *be) {
    cuda_ctx *c = cuda_ctx_of(be);
    if (be->err.code || (c->sn_max_split <= 1 && c->kv_split == 1)) return;
    enum { IC = 256, OC = 16 };
    bf16 *buf = NULL;
    size_t n = (size_t)OC * IC + IC + OC;
    cudaError_t e = cudaMalloc((void **)&buf, n * sizeof(bf16));
    if (e == cudaSuccess) e = cudaMemsetAsync(buf, 0, n * sizeof(bf16), c->stream);
    if (e == cudaSuccess) {
        cudaLaunchConfig_t cfg;
        cudaLaunchAttribute at[2];
        memset(&cfg, 0, sizeof cfg);
        memset(at, 0, sizeof at);
        cfg.gridDim = dim3(1, 2, 1);
        cfg.blockDim = dim3(4 * 32, 1, 1);
        cfg.stream = c->stream;
        at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        at[0].val.programmaticStreamSerializationAllowed = 1;
        at[1].id = cudaLaunchAttributeClusterDimension;
        at[1].val.clusterDim.x = 1;
        at[1].val.clusterDim.y = 2;
        at[1].val.clusterDim.z = 1;
        cfg.attrs = at;
        cfg.numAttrs = 2;
        bf16 *w = buf, *in = buf + (size_t)OC * IC, *out = in + IC;
        e = cudaLaunchKernelEx(&cfg, sn_kernel<1, 4, 4>, out, (bf16 *)NULL, (const bf16 *)in,
                               (const bf16 *)w, (const bf16 *)NULL, 1, (int)IC, (int)OC, 0);
        if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
    }
    if (e != cudaSuccess) {
        cudaGetLastError();
        c->sn_max_split = c->kv_split = 1;
        size_t l = strlen(c->desc);
        snprintf(c->desc + l, sizeof c->desc - l, " [no clusters: %s]", cudaGetErrorName(e));
    }
    if (buf) cudaFree(buf);
}
