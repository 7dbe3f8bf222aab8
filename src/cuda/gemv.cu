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
 *   Work. A block of 4 warps takes one tile of 16 output rows; its warps
 *   take the tile's 32-wide k blocks in turn, U per round with all U loads
 *   in flight, and add their accumulators through shared memory. When
 *   there are fewer tiles than twice the SMs (OC = 768 gives 48), up to 8
 *   blocks split K between them as a thread-block cluster, and the first
 *   block of the cluster adds the others' partial tiles from their shared
 *   memory (distributed shared memory), in rank order: deterministic, no
 *   atomics, no global scratch.
 *
 *   Early weights. Decoding kernels are launched as programmatic dependents
 *   (cuda_common.cuh): a block may start while the kernel before it ends.
 *   Weights are not written by that kernel, so a block issues its first
 *   round of weight loads before griddepcontrol.wait and only the input
 *   waits. This needs the kernel before to be one that does not write
 *   parameters: the context's params_written flag is set by every op that
 *   may (adamw, upload, copy, memset0) and cleared by the encoder,
 *   layernorm and attention launchers, whose kernels wait for their own
 *   predecessor before releasing their successor - so when the flag is
 *   clear, whatever wrote parameters last has finished before our block
 *   can start.
 *
 * Modes: PLAIN out = in @ w^T + bias (GELU optional, pre-activation to
 * pre); LN in is x and each lane normalises its input vectors on the way
 * into the B fragment (x - mean) * rstd * lnw + lnb, rounded to bf16 as
 * the layernorm op would store them, after the block has computed the
 * rows' mean and rstd (two passes over x, from L1/L2); RES out += in @ w^T
 * + bias, read and written by the thread that owns the element.
 */
#include <cooperative_groups.h>
#include <stdio.h>
#include <string.h>

#include "cuda_common.cuh"

namespace cg = cooperative_groups;

enum { SN_WARPS = 4, SN_THREADS = SN_WARPS * 32, SN_MAXN = 16, SN_MAXSPLIT = 8 };

/* 16 bytes of weights, read once per step: not kept in L1. Volatile keeps
 * them in program order before griddepcontrol.wait. */
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

__device__ __forceinline__ uint32_t pack_bf16(float a, float b) {
    __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
    return *reinterpret_cast<uint32_t *>(&h);
}

/* (x - m) * rs * g + h over 8 bf16, rounded to bf16. */
__device__ __forceinline__ uint4 ln_apply(uint4 x, uint4 g, uint4 h, float m, float rs) {
    const bf16 *xe = reinterpret_cast<const bf16 *>(&x), *ge = reinterpret_cast<const bf16 *>(&g),
               *he = reinterpret_cast<const bf16 *>(&h);
    float y[8];
#pragma unroll
    for (int k = 0; k < 8; k++) y[k] = (to_f(xe[k]) - m) * rs * to_f(ge[k]) + to_f(he[k]);
    return make_uint4(pack_bf16(y[0], y[1]), pack_bf16(y[2], y[3]), pack_bf16(y[4], y[5]),
                      pack_bf16(y[6], y[7]));
}

__device__ __forceinline__ void mma16816(float c[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                         uint32_t a3, uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
                 "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* NT tiles of 8 batch rows (N <= 8 * NT), U k blocks per warp per round.
 * Grid (ceil(OC / 16), splits); a cluster of (1, splits, 1) when splits > 1. */
template <int NT, int U, int MODE>
__global__ void __launch_bounds__(SN_THREADS)
    sn_kernel(bf16 *out, bf16 *pre, const bf16 *in, const bf16 *w, const bf16 *bias,
              const bf16 *lnw, const bf16 *lnb, float eps, int N, int IC, int OC, int gelu,
              int prefetch) {
    constexpr int E = NT * 8 * 16; /* elements of the block's output tile */
    __shared__ float red[SN_WARPS][E];
    __shared__ float part[E];
    __shared__ float stat[2][SN_MAXN];
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
    if (!prefetch) pdl_wait();
#pragma unroll
    for (int u = 0; u < U; u++) {
        int k = kb + u * SN_WARPS;
        wa[u] = z, wb[u] = z;
        if (k < kb1) wa[u] = ld_weights(w0 + (size_t)k * 32), wb[u] = ld_weights(w1 + (size_t)k * 32);
    }
    if (prefetch) pdl_wait();
    pdl_release();

    if (MODE == CUDA_SN_LN) {
        /* mean and rstd of the N input rows, one warp per row, as the
         * layernorm kernels compute them */
        for (int n = warp; n < N; n += SN_WARPS) {
            const bf16 *xr = in + (size_t)n * IC;
            float s = 0.f;
            for (int c = lane * 8; c < IC; c += 256) {
                float v[8];
                load_f<8>(v, xr + c);
#pragma unroll
                for (int k = 0; k < 8; k++) s += v[k];
            }
            float m = warp_sum(s) / IC, v2 = 0.f;
            for (int c = lane * 8; c < IC; c += 256) {
                float v[8];
                load_f<8>(v, xr + c);
#pragma unroll
                for (int k = 0; k < 8; k++) v2 += (v[k] - m) * (v[k] - m);
            }
            float rs = rsqrtf(warp_sum(v2) / IC + eps);
            if (lane == 0) stat[0][n] = m, stat[1][n] = rs;
        }
        __syncthreads();
    }
    const bool h0 = g < N, h1 = NT == 2 && g + 8 < N; /* batch rows g, g+8 exist */
    const bf16 *x0 = in + (size_t)(h0 ? g : 0) * IC + 8 * t;
    const bf16 *x1 = in + (size_t)(h1 ? g + 8 : 0) * IC + 8 * t;
    float mu0 = 0.f, rs0 = 0.f, mu1 = 0.f, rs1 = 0.f;
    if (MODE == CUDA_SN_LN) {
        if (h0) mu0 = stat[0][g], rs0 = stat[1][g];
        if (h1) mu1 = stat[0][g + 8], rs1 = stat[1][g + 8];
    }
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
            if (MODE == CUDA_SN_LN && kin) {
                uint4 gw = ld_act(lnw + (size_t)k * 32 + 8 * t), gb = ld_act(lnb + (size_t)k * 32 + 8 * t);
                if (h0) xf[u][0] = ln_apply(xf[u][0], gw, gb, mu0, rs0);
                if (NT == 2 && h1) xf[u][NT - 1] = ln_apply(xf[u][NT - 1], gw, gb, mu1, rs1);
            }
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
                if (MODE == CUDA_SN_RES) y += to_f(out[at]);
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

template <int NT, int U>
static cudaError_t sn_launch_u(const cudaLaunchConfig_t *cfg, int mode, bf16 *out, bf16 *pre,
                               const bf16 *in, const bf16 *w, const bf16 *bias, const bf16 *lnw,
                               const bf16 *lnb, float eps, int N, int IC, int OC, int gelu,
                               int prefetch) {
    if (mode == CUDA_SN_LN)
        return cudaLaunchKernelEx(cfg, sn_kernel<NT, U, CUDA_SN_LN>, out, pre, in, w, bias, lnw, lnb,
                                  eps, N, IC, OC, gelu, prefetch);
    if (mode == CUDA_SN_RES)
        return cudaLaunchKernelEx(cfg, sn_kernel<NT, U, CUDA_SN_RES>, out, pre, in, w, bias, lnw,
                                  lnb, eps, N, IC, OC, gelu, prefetch);
    return cudaLaunchKernelEx(cfg, sn_kernel<NT, U, CUDA_SN_PLAIN>, out, pre, in, w, bias, lnw, lnb,
                              eps, N, IC, OC, gelu, prefetch);
}

extern "C" int cuda_sn_matmul(gpt_backend *be, void *out, void *pre, const void *in, const void *w,
                              const void *bias, const void *lnw, const void *lnb, float eps, int N,
                              int IC, int OC, int gelu, int mode) {
    cuda_ctx *c = cuda_ctx_of(be);
    if (!cuda_bf16(be) || c->no_sn || N < 1 || N > SN_MAXN || IC < 32 || IC % 32 || OC < 1 ||
        !cuda_aligned16(in) || !cuda_aligned16(w) ||
        (mode == CUDA_SN_LN && (!cuda_aligned16(lnw) || !cuda_aligned16(lnb))))
        return 0;
    if (be->err.code) return 1;
    int mt = (int)cuda_cdiv((size_t)OC, 16), KB = IC / 32, ns = 1;
    if (c->sn_max_split > 1) {
        /* enough blocks for two per SM, each warp with a k block at least */
        ns = (int)cuda_cdiv((size_t)2 * c->prop.multiProcessorCount, (size_t)mt);
        if (ns > c->sn_max_split) ns = c->sn_max_split;
        if (ns > SN_MAXSPLIT) ns = SN_MAXSPLIT;
        if (ns > KB / SN_WARPS) ns = KB / SN_WARPS;
        if (ns < 1) ns = 1;
    }
    int per = (KB + ns - 1) / ns;
    ns = (KB + per - 1) / per; /* no empty split */
    int rounds = (per + SN_WARPS - 1) / SN_WARPS;
    int prefetch = !c->no_prefetch && !c->params_written;
    c->params_written = 0;
    cudaLaunchConfig_t cfg;
    cudaLaunchAttribute at[2];
    memset(&cfg, 0, sizeof cfg);
    memset(at, 0, sizeof at);
    cfg.gridDim = dim3((unsigned)mt, (unsigned)ns, 1);
    cfg.blockDim = dim3(SN_THREADS, 1, 1);
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
    const bf16 *g = (const bf16 *)lnw, *h = (const bf16 *)lnb;
    cudaError_t e;
    if (N <= 8)
        e = rounds > 4 ? sn_launch_u<1, 8>(&cfg, mode, o, p, x, wt, bi, g, h, eps, N, IC, OC, gelu, prefetch)
                       : sn_launch_u<1, 4>(&cfg, mode, o, p, x, wt, bi, g, h, eps, N, IC, OC, gelu, prefetch);
    else
        e = rounds > 4 ? sn_launch_u<2, 8>(&cfg, mode, o, p, x, wt, bi, g, h, eps, N, IC, OC, gelu, prefetch)
                       : sn_launch_u<2, 4>(&cfg, mode, o, p, x, wt, bi, g, h, eps, N, IC, OC, gelu, prefetch);
    if (!CUDA_CHECK(be, e)) CUDA_LAUNCHED(be, "matmul (small N, tensor cores)");
    return 1;
}

/* Checks once, at creation, that this device and driver take a cluster
 * launch that is also a programmatic dependent (the small-N products and
 * the KV attention use both): if not, no clusters (one block per tile or
 * per head), noted in the device description. */
extern "C" void cuda_decode_probe(gpt_backend *be) {
    cuda_ctx *c = cuda_ctx_of(be);
    if (be->err.code || (c->sn_max_split <= 1 && c->kv_max_split <= 1)) return;
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
        cfg.blockDim = dim3(SN_THREADS, 1, 1);
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
        e = cudaLaunchKernelEx(&cfg, sn_kernel<1, 4, CUDA_SN_PLAIN>, out, (bf16 *)NULL,
                               (const bf16 *)in, (const bf16 *)w, (const bf16 *)NULL,
                               (const bf16 *)NULL, (const bf16 *)NULL, 0.f, 1, (int)IC, (int)OC, 0,
                               0);
        if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
    }
    if (e != cudaSuccess) {
        cudaGetLastError();
        c->sn_max_split = c->kv_max_split = 1;
        size_t l = strlen(c->desc);
        snprintf(c->desc + l, sizeof c->desc - l, " [no clusters: %s]", cudaGetErrorName(e));
    }
    if (buf) cudaFree(buf);
}
