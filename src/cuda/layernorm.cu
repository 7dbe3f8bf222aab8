/*
 * layernorm.cu - layernorm forward, residual add + layernorm forward, and
 * the layernorm backward.
 *
 * One warp per row. Rows of up to 32 x 8 vectors (2048 bf16, 1024 fp32
 * values) stay in registers between the passes; longer or unaligned rows
 * are read once from device memory and re-read from L1/L2 for the
 * variance and the normalisation. Lanes take 16-byte vectors when C and
 * the pointers allow, else single elements.
 *
 * The backward's weight and bias gradients are sums over rows. Each warp
 * accumulates its rows into a private slice (registers in the register
 * backward, where a lane owns the same columns in every row; else shared
 * memory, or global scratch when C is too large for it), each block adds
 * its warps' slices in order, and a second kernel adds the blocks' partials
 * in a fixed order: no atomics, the same bits every run.
 */
#include "cuda_common.cuh"

enum { LN_THREADS = 256, LN_BWD_WARPS = 4, LN_BWD_SMEM_MAX = 48 * 1024 };

/* ------------------------------------------------------------- forward */

template <typename T, int VEC, bool RES>
__global__ void __launch_bounds__(LN_THREADS)
    layernorm_forward_kernel(T *res, T *out, float *mean, float *rstd, const T *a, const T *b,
                             const T *w, const T *bias, int N, int C, float eps) {
    pdl_wait_and_release();
    int row = blockIdx.x * (LN_THREADS / 32) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= N) return;
    size_t off = (size_t)row * C;
    const T *x = a + off;
    float s = 0.f;
    if (RES) {
        /* res = a + b, rounded to T; the statistics are of the rounded sum so
         * that the backward, which reads res, sees the same numbers. */
        for (int c = lane * VEC; c < C; c += 32 * VEC) {
            float u[VEC], v[VEC];
            load_f<VEC>(u, a + off + c);
            load_f<VEC>(v, b + off + c);
            for (int k = 0; k < VEC; k++) u[k] = to_f(from_f<T>(u[k] + v[k]));
            store_f<VEC>(res + off + c, u);
            for (int k = 0; k < VEC; k++) s += u[k];
        }
        x = res + off;
    } else {
        for (int c = lane * VEC; c < C; c += 32 * VEC) {
            float u[VEC];
            load_f<VEC>(u, x + c);
            for (int k = 0; k < VEC; k++) s += u[k];
        }
    }
    float m = warp_sum(s) / C;
    float v2 = 0.f;
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float u[VEC];
        load_f<VEC>(u, x + c);
        for (int k = 0; k < VEC; k++) v2 += (u[k] - m) * (u[k] - m);
    }
    float rs = rsqrtf(warp_sum(v2) / C + eps);
    for (int c = lane * VEC; c < C; c += 32 * VEC) {
        float u[VEC], g[VEC], h[VEC];
        load_f<VEC>(u, x + c);
        load_f<VEC>(g, w + c);
        load_f<VEC>(h, bias + c);
        for (int k = 0; k < VEC; k++) u[k] = (u[k] - m) * rs * g[k] + h[k];
        store_f<VEC>(out + off + c, u);
    }
    if (lane == 0) {
        if (mean) mean[row] = m;
        if (rstd) rstd[row] = rs;
    }
}

/* The same with the row held in registers: NV vectors of VEC elements per
 * lane (C <= 32 * VEC * NV), so every element is read from device memory
 * once and all of a lane's loads are in flight together - one memory
 * latency per row instead of three, which is what a single-row decoding
 * step waits on. */
template <typename T, int VEC, int NV, bool RES, bool EARLY, bool PRE = false>
__global__ void __launch_bounds__(LN_THREADS)
    layernorm_forward_reg(T *res, T *out, float *mean, float *rstd, const T *a, const T *b,
                          const T *w, const T *bias, int N, int C, float eps) {
    TRACE(TR_LN, 0, RES);
    int row = blockIdx.x * (LN_THREADS / 32) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= N) return;
    size_t off = (size_t)row * C;
    float x[NV][VEC];
    /* PRE (decoding, RES): the residual a, the weight and the bias are
     * early inputs (backend.h), so they are loaded before waiting for the
     * kernel this follows, while it runs; only b, its output, after. */
    if (PRE) {
#pragma unroll
        for (int j = 0; j < NV; j++) {
            int c = (lane + 32 * j) * VEC;
            if (c < C) load_f<VEC>(x[j], a + off + c);
        }
    }
    if (!PRE) {
        pdl_wait_and_release();
        TRACE(TR_LN, 1, RES);
    }
    /* EARLY (a few short rows: decoding, gpt2 NV = 3): the weight and bias
     * are loaded with the row, so that their latency overlaps the row's
     * instead of following the reductions. Not for long rows (registers)
     * nor for many rows (training: the extra registers cost occupancy). */
    constexpr bool HOIST = EARLY && NV <= 4;
    float g[HOIST ? NV : 1][VEC], h[HOIST ? NV : 1][VEC];
    if (HOIST) {
#pragma unroll
        for (int j = 0; j < NV; j++) {
            int c = (lane + 32 * j) * VEC;
            if (c < C) {
                load_f<VEC>(g[HOIST ? j : 0], w + c);
                load_f<VEC>(h[HOIST ? j : 0], bias + c);
            }
        }
    }
    if (PRE) {
        pdl_wait_and_release();
        TRACE(TR_LN, 1, RES);
    }
    float s = 0.f;
#pragma unroll
    for (int j = 0; j < NV; j++) {
        int c = (lane + 32 * j) * VEC;
        if (c < C) {
            if (!PRE) load_f<VEC>(x[j], a + off + c);
            if (RES) {
                float y[VEC];
                load_f<VEC>(y, b + off + c);
#pragma unroll
                for (int k = 0; k < VEC; k++) x[j][k] = to_f(from_f<T>(x[j][k] + y[k]));
                store_f<VEC>(res + off + c, x[j]);
            }
#pragma unroll
            for (int k = 0; k < VEC; k++) s += x[j][k];
        }
    }
    float m = warp_sum(s) / C, v2 = 0.f;
#pragma unroll
    for (int j = 0; j < NV; j++)
        if ((lane + 32 * j) * VEC < C)
#pragma unroll
            for (int k = 0; k < VEC; k++) v2 += (x[j][k] - m) * (x[j][k] - m);
    float rs = rsqrtf(warp_sum(v2) / C + eps);
#pragma unroll
    for (int j = 0; j < NV; j++) {
        int c = (lane + 32 * j) * VEC;
        if (c < C) {
            const int jj = HOIST ? j : 0;
            if (!HOIST) {
                load_f<VEC>(g[jj], w + c);
                load_f<VEC>(h[jj], bias + c);
            }
#pragma unroll
            for (int k = 0; k < VEC; k++) x[j][k] = (x[j][k] - m) * rs * g[jj][k] + h[jj][k];
            store_f<VEC>(out + off + c, x[j]);
        }
    }
    if (lane == 0) {
        if (mean) mean[row] = m;
        if (rstd) rstd[row] = rs;
    }
}

TRACE_SETTER(cuda_trace_set_ln)

template <typename T, bool RES>
static void layernorm_forward_t(gpt_backend *be, T *res, T *out, float *mean, float *rstd,
                                const T *a, const T *b, const T *w, const T *bias, int N, int C,
                                float eps) {
    cuda_ctx *c = cuda_ctx_of(be);
    constexpr int V = vec16<T>::n;
    int vec = C % V == 0 && cuda_aligned16(out) && cuda_aligned16(a) && cuda_aligned16(w) &&
              cuda_aligned16(bias) && (!RES || (cuda_aligned16(res) && cuda_aligned16(b)));
    unsigned grid = cuda_cdiv(N, LN_THREADS / 32);
    int nv = (C + 32 * V - 1) / (32 * V), pdl = N <= CUDA_PDL_MAX_ROWS;
    cudaError_t e = cudaSuccess;
#define LN_LAUNCH(kernel) \
    e = launch_k(c->stream, pdl, kernel, grid, LN_THREADS, 0, res, out, mean, rstd, a, b, w, bias, N, C, eps)
#define LN_REG(NV)                                                   \
    case NV:                                                         \
        if (pdl && NV <= 4 && RES)                                   \
            LN_LAUNCH((layernorm_forward_reg<T, V, NV, RES, NV <= 4, RES>)); \
        else if (pdl && NV <= 4)                                     \
            LN_LAUNCH((layernorm_forward_reg<T, V, NV, RES, NV <= 4>)); \
        else                                                         \
            LN_LAUNCH((layernorm_forward_reg<T, V, NV, RES, false>)); \
        break;
    if (vec && nv <= 8) {
        switch (nv) {
            LN_REG(1) LN_REG(2) LN_REG(3) LN_REG(4) LN_REG(5) LN_REG(6) LN_REG(7) LN_REG(8)
        }
    } else if (vec) {
        LN_LAUNCH((layernorm_forward_kernel<T, V, RES>));
    } else {
        LN_LAUNCH((layernorm_forward_kernel<T, 1, RES>));
    }
#undef LN_REG
#undef LN_LAUNCH
    if (!CUDA_CHECK(be, e)) CUDA_LAUNCHED(be, RES ? "residual_layernorm_forward" : "layernorm_forward");
}

static int ln_shape_ok(gpt_backend *be, const char *op, int N, int C) {
    if (N < 0 || C < 1) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "cuda %s: bad shape N=%d C=%d", op, N, C);
        return 0;
    }
    return N > 0;
}

extern "C" void cuda_layernorm_forward(gpt_backend *be, void *out, float *mean, float *rstd,
                                       const void *x, const void *w, const void *b, int N, int C,
                                       float eps) {
    CUDA_SKIP_IF_FAILED(be);
    if (!ln_shape_ok(be, "layernorm_forward", N, C)) return;
    if (cuda_bf16(be))
        layernorm_forward_t<bf16, false>(be, NULL, (bf16 *)out, mean, rstd, (const bf16 *)x, NULL,
                                         (const bf16 *)w, (const bf16 *)b, N, C, eps);
    else
        layernorm_forward_t<float, false>(be, NULL, (float *)out, mean, rstd, (const float *)x,
                                          NULL, (const float *)w, (const float *)b, N, C, eps);
}

extern "C" void cuda_residual_layernorm_forward(gpt_backend *be, void *res, void *out, float *mean,
                                                float *rstd, const void *a, const void *b,
                                                const void *w, const void *bias, int N, int C,
                                                float eps) {
    CUDA_SKIP_IF_FAILED(be);
    if (!ln_shape_ok(be, "residual_layernorm_forward", N, C)) return;
    if (cuda_bf16(be))
        layernorm_forward_t<bf16, true>(be, (bf16 *)res, (bf16 *)out, mean, rstd, (const bf16 *)a,
                                        (const bf16 *)b, (const bf16 *)w, (const bf16 *)bias, N, C,
                                        eps);
    else
        layernorm_forward_t<float, true>(be, (float *)res, (float *)out, mean, rstd,
                                         (const float *)a, (const float *)b, (const float *)w,
                                         (const float *)bias, N, C, eps);
}

/* ------------------------------------------------------------ backward */

/* Grid of the backward for blocks of `warps` warps, at most `per_sm`
 * (<= 2) blocks per SM: a fixed function of N and the device, so that the
 * partial sums (and the result's bits) do not depend on timing. */
static int ln_bwd_grid(const cudaDeviceProp *prop, int N, int warps, int per_sm) {
    int g = prop->multiProcessorCount * per_sm;
    int need = (N + warps - 1) / warps;
    return need < g ? (need > 0 ? need : 1) : g;
}

static int ln_bwd_in_smem(int C) {
    return (size_t)LN_BWD_WARPS * 2 * C * sizeof(float) <= LN_BWD_SMEM_MAX;
}

/* Both kernels use at most 2 blocks per SM (ln_bwd_grid), hence at most
 * that many per-block partials; only the generic kernel needs per-warp
 * slices. */
extern "C" size_t cuda_layernorm_scratch(const cudaDeviceProp *prop, int C) {
    size_t g = (size_t)prop->multiProcessorCount * 2;
    size_t n = g * 2 * (size_t)C; /* per-block partials */
    if (!ln_bwd_in_smem(C)) n += g * LN_BWD_WARPS * 2 * (size_t)C; /* per-warp slices */
    return n;
}

/* acc[0..N) += v; float4 accesses when N allows (a lane's 8 consecutive
 * floats as single words would put 8 lanes on one shared-memory bank). */
template <int N> __device__ __forceinline__ void acc_add(float *acc, const float *v) {
    if constexpr (N % 4 == 0) {
#pragma unroll
        for (int k = 0; k < N; k += 4) {
            float4 a = *reinterpret_cast<float4 *>(acc + k);
            a.x += v[k], a.y += v[k + 1], a.z += v[k + 2], a.w += v[k + 3];
            *reinterpret_cast<float4 *>(acc + k) = a;
        }
    } else {
#pragma unroll
        for (int k = 0; k < N; k++) acc[k] += v[k];
    }
}

/* Generic backward (any C, any alignment):
 * dx += (dnorm - mean(dnorm) - xhat * mean(dnorm * xhat)) * rstd with
 * dnorm = dout * w, xhat = (x - mean) * rstd; partial dw, db per block.
 * acc: this warp's slice, [0,C) for dw and [C,2C) for db. */
template <typename T, int VEC>
__global__ void __launch_bounds__(LN_BWD_WARPS * 32)
    layernorm_backward_kernel(T *dx, float *part, float *wscratch, const T *dout, const T *x,
                              const T *w, const float *mean, const float *rstd, int N, int C) {
    extern __shared__ float shm[];
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float *acc = wscratch ? wscratch + ((size_t)blockIdx.x * LN_BWD_WARPS + warp) * 2 * C
                          : shm + (size_t)warp * 2 * C;
    for (int c = lane * VEC; c < C; c += 32 * VEC)
        for (int k = 0; k < VEC; k++) acc[c + k] = 0.f, acc[C + c + k] = 0.f;
    for (int row = blockIdx.x * LN_BWD_WARPS + warp; row < N; row += gridDim.x * LN_BWD_WARPS) {
        size_t off = (size_t)row * C;
        float m = mean[row], rs = rstd[row];
        float s1 = 0.f, s2 = 0.f;
        for (int c = lane * VEC; c < C; c += 32 * VEC) {
            float d[VEC], u[VEC], g[VEC];
            load_f<VEC>(d, dout + off + c);
            load_f<VEC>(u, x + off + c);
            load_f<VEC>(g, w + c);
            float pw[VEC];
            for (int k = 0; k < VEC; k++) {
                float xh = (u[k] - m) * rs, dn = d[k] * g[k];
                s1 += dn;
                s2 += dn * xh;
                pw[k] = d[k] * xh;
            }
            acc_add<VEC>(acc + c, pw);
            acc_add<VEC>(acc + C + c, d);
        }
        s1 = warp_sum(s1) / C;
        s2 = warp_sum(s2) / C;
        for (int c = lane * VEC; c < C; c += 32 * VEC) {
            float d[VEC], u[VEC], g[VEC], o[VEC];
            load_f<VEC>(d, dout + off + c);
            load_f<VEC>(u, x + off + c);
            load_f<VEC>(g, w + c);
            load_f<VEC>(o, dx + off + c);
            for (int k = 0; k < VEC; k++) {
                float xh = (u[k] - m) * rs;
                o[k] += (d[k] * g[k] - s1 - xh * s2) * rs;
            }
            store_f<VEC>(dx + off + c, o);
        }
    }
    __syncthreads();
    float *base = wscratch ? wscratch + (size_t)blockIdx.x * LN_BWD_WARPS * 2 * C : shm;
    for (int c = threadIdx.x; c < 2 * C; c += blockDim.x) {
        float s = 0.f;
        for (int k = 0; k < LN_BWD_WARPS; k++) s += base[(size_t)k * 2 * C + c];
        part[(size_t)blockIdx.x * 2 * C + c] = s;
    }
}

/* Register backward, the training path (gpt2: C = 768 bf16, ITERS = 3),
 * for 16-byte aligned rows of C <= 32 * VEC * ITERS, C % VEC == 0. Lane l
 * owns the vectors j = 0..ITERS-1 at columns (l + 32 j) * VEC, the same in
 * every row, so:
 *  - w is loaded once, kept packed (16-byte vectors) in registers;
 *  - each row issues all of its loads (dout, x and the dx accumulated into)
 *    before using any, takes both sums from registers (one warp_sum each)
 *    and writes dx once: one memory latency per row, each byte read once;
 *  - the dw, db partials of the warp's rows stay in registers (lane-owned
 *    columns) and meet the other warps' only at the end, through shared
 *    memory in warp order, into the block's partial part[blockIdx.x][2C].
 * 8 warps per block, <= 128 registers per thread: 2 blocks (16 warps) per
 * SM, each lane with 3 x ITERS 16-byte loads in flight per row (gpt2:
 * 144 bytes a lane, ~72 KB an SM). bf16 with ITERS = 4 (C up to 1024)
 * needs ~180 registers and gets 1 block (8 warps, 192 bytes a lane) per SM.
 * Dynamic shared memory: LN_BWD_REG_WARPS x C floats (dw, then db). */
enum { LN_BWD_REG_WARPS = 8 };
/* Blocks per SM the register kernel is built for (__launch_bounds__) and
 * launched with (ln_bwd_grid). */
__host__ __device__ constexpr int ln_bwd_reg_blocks(int elem_bytes, int iters) {
    return elem_bytes == 2 && iters == 4 ? 1 : 2;
}
template <typename T, int ITERS>
__global__ void __launch_bounds__(LN_BWD_REG_WARPS * 32, ln_bwd_reg_blocks(sizeof(T), ITERS))
    layernorm_backward_reg(T *dx, float *part, const T *dout, const T *x, const T *w,
                           const float *mean, const float *rstd, int N, int C) {
    constexpr int VEC = vec16<T>::n;
    extern __shared__ float shm[];
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int4 wv[ITERS];
    float aw[ITERS][VEC], ab[ITERS][VEC]; /* dw, db partials of columns (lane + 32 j) * VEC + k */
#pragma unroll
    for (int j = 0; j < ITERS; j++) {
        int c = (lane + 32 * j) * VEC;
        wv[j] = c < C ? *reinterpret_cast<const int4 *>(w + c) : make_int4(0, 0, 0, 0);
#pragma unroll
        for (int k = 0; k < VEC; k++) aw[j][k] = 0.f, ab[j][k] = 0.f;
    }
    for (int row = blockIdx.x * LN_BWD_REG_WARPS + warp; row < N;
         row += gridDim.x * LN_BWD_REG_WARPS) {
        size_t off = (size_t)row * C;
        int4 dv[ITERS], xv[ITERS], ov[ITERS];
#pragma unroll
        for (int j = 0; j < ITERS; j++) {
            int c = (lane + 32 * j) * VEC;
            if (c < C) {
                dv[j] = *reinterpret_cast<const int4 *>(dout + off + c);
                xv[j] = *reinterpret_cast<const int4 *>(x + off + c);
                ov[j] = *reinterpret_cast<const int4 *>(dx + off + c);
            }
        }
        float m = mean[row], rs = rstd[row];
        float s1 = 0.f, s2 = 0.f;
#pragma unroll
        for (int j = 0; j < ITERS; j++) {
            if ((lane + 32 * j) * VEC < C) {
                float d[VEC], u[VEC], g[VEC];
                unpack_f<T>(d, dv[j]);
                unpack_f<T>(u, xv[j]);
                unpack_f<T>(g, wv[j]);
#pragma unroll
                for (int k = 0; k < VEC; k++) {
                    float xh = (u[k] - m) * rs, dn = d[k] * g[k];
                    s1 += dn;
                    s2 += dn * xh;
                    aw[j][k] += d[k] * xh;
                    ab[j][k] += d[k];
                }
            }
        }
        s1 = warp_sum(s1) / C;
        s2 = warp_sum(s2) / C;
#pragma unroll
        for (int j = 0; j < ITERS; j++) {
            int c = (lane + 32 * j) * VEC;
            if (c < C) {
                float d[VEC], u[VEC], g[VEC], o[VEC];
                unpack_f<T>(d, dv[j]);
                unpack_f<T>(u, xv[j]);
                unpack_f<T>(g, wv[j]);
                unpack_f<T>(o, ov[j]);
#pragma unroll
                for (int k = 0; k < VEC; k++) {
                    float xh = (u[k] - m) * rs;
                    o[k] += (d[k] * g[k] - s1 - xh * s2) * rs;
                }
                *reinterpret_cast<int4 *>(dx + off + c) = pack_f<T>(o);
            }
        }
    }
    /* Block partial: shm[warp][c] for dw, summed over warps 0..7 in order
     * into part[blockIdx.x][c]; then the same for db into [C + c]. */
#pragma unroll
    for (int h = 0; h < 2; h++) {
        if (h) __syncthreads(); /* the dw round's reads are done */
#pragma unroll
        for (int j = 0; j < ITERS; j++) {
            int c = (lane + 32 * j) * VEC;
            if (c < C) {
                const float *a = h ? ab[j] : aw[j];
#pragma unroll
                for (int k = 0; k < VEC; k += 4)
                    *reinterpret_cast<float4 *>(shm + (size_t)warp * C + c + k) =
                        make_float4(a[k], a[k + 1], a[k + 2], a[k + 3]);
            }
        }
        __syncthreads();
        for (int c = threadIdx.x; c < C; c += blockDim.x) {
            float s = 0.f;
#pragma unroll
            for (int k = 0; k < LN_BWD_REG_WARPS; k++) s += shm[(size_t)k * C + c];
            part[(size_t)blockIdx.x * 2 * C + h * C + c] = s;
        }
    }
}

/* dw[c] += sum over g of part[g][c], db[c] += sum over g of part[g][C + c].
 * Block (32, LN_RED_SLICES): x is one of 32 consecutive columns i of [0,2C)
 * (coalesced), y a slice g = y, y + LN_RED_SLICES, ... of the G partials,
 * summed in order; the slices are then added in order 0..LN_RED_SLICES-1.
 * A fixed order: the same bits every run. */
enum { LN_RED_SLICES = 8 };
__global__ void __launch_bounds__(32 * LN_RED_SLICES)
    layernorm_backward_reduce(float *dw, float *db, const float *part, int G, int C) {
    __shared__ float shm[LN_RED_SLICES][33];
    int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
    int i = blockIdx.x * 32 + tx;
    float s = 0.f;
    if (i < 2 * C) {
#pragma unroll 4
        for (int g = ty; g < G; g += LN_RED_SLICES) s += part[(size_t)g * 2 * C + i];
    }
    shm[ty][tx] = s;
    __syncthreads();
    if (ty || i >= 2 * C) return;
    s = 0.f;
#pragma unroll
    for (int k = 0; k < LN_RED_SLICES; k++) s += shm[k][tx];
    if (i < C) {
        if (dw) dw[i] += s;
    } else if (db) {
        db[i - C] += s;
    }
}

template <typename T>
static void layernorm_backward_t(gpt_backend *be, T *dx, float *dw, float *db, const T *dout,
                                 const T *x, const T *w, const float *mean, const float *rstd,
                                 int N, int C) {
    cuda_ctx *c = cuda_ctx_of(be);
    constexpr int V = vec16<T>::n;
    int vec = C % V == 0 && cuda_aligned16(dx) && cuda_aligned16(dout) && cuda_aligned16(x) &&
              cuda_aligned16(w);
    int iters = (C + 32 * V - 1) / (32 * V);
    int reg = vec && iters <= 4;
    int G = reg ? ln_bwd_grid(&c->prop, N, LN_BWD_REG_WARPS, ln_bwd_reg_blocks(sizeof(T), iters))
                : ln_bwd_grid(&c->prop, N, LN_BWD_WARPS, 2);
    int smem = reg || ln_bwd_in_smem(C);
    size_t need = (size_t)G * 2 * C + (smem ? 0 : (size_t)G * LN_BWD_WARPS * 2 * C);
    if (need > c->scratch_elems) {
        gpt_backend_fail(be, GPT_ERR_INVALID,
                         "cuda layernorm_backward: C=%d exceeds what reserve() sized; call "
                         "reserve with train=1 and the model's shapes first",
                         C);
        return;
    }
    float *part = c->scratch;
    if (reg) {
        size_t shm = (size_t)LN_BWD_REG_WARPS * C * sizeof(float);
#define LN_BWD_REG(I)                                                                          \
    case I:                                                                                    \
        layernorm_backward_reg<T, I><<<G, LN_BWD_REG_WARPS * 32, shm, c->stream>>>(          \
            dx, part, dout, x, w, mean, rstd, N, C);                                           \
        break;
        switch (iters) { LN_BWD_REG(1) LN_BWD_REG(2) LN_BWD_REG(3) LN_BWD_REG(4) }
#undef LN_BWD_REG
    } else {
        float *wscratch = smem ? NULL : c->scratch + (size_t)G * 2 * C;
        size_t shm = smem ? (size_t)LN_BWD_WARPS * 2 * C * sizeof(float) : 0;
        if (vec)
            layernorm_backward_kernel<T, V><<<G, LN_BWD_WARPS * 32, shm, c->stream>>>(
                dx, part, wscratch, dout, x, w, mean, rstd, N, C);
        else
            layernorm_backward_kernel<T, 1><<<G, LN_BWD_WARPS * 32, shm, c->stream>>>(
                dx, part, wscratch, dout, x, w, mean, rstd, N, C);
    }
    if (CUDA_LAUNCHED(be, "layernorm_backward")) return;
    layernorm_backward_reduce<<<cuda_cdiv(2 * C, 32), 32 * LN_RED_SLICES, 0, c->stream>>>(
        dw, db, part, G, C);
    CUDA_LAUNCHED(be, "layernorm_backward_reduce");
}

extern "C" void cuda_layernorm_backward(gpt_backend *be, void *dx, void *dw, void *db,
                                        const void *dout, const void *x, const void *w,
                                        const float *mean, const float *rstd, int N, int C) {
    CUDA_SKIP_IF_FAILED(be);
    if (!ln_shape_ok(be, "layernorm_backward", N, C)) return;
    if (cuda_bf16(be))
        layernorm_backward_t(be, (bf16 *)dx, (float *)dw, (float *)db, (const bf16 *)dout,
                             (const bf16 *)x, (const bf16 *)w, mean, rstd, N, C);
    else
        layernorm_backward_t(be, (float *)dx, (float *)dw, (float *)db, (const float *)dout,
                             (const float *)x, (const float *)w, mean, rstd, N, C);
}
