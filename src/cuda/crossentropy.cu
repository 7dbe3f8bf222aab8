/*
 * crossentropy.cu - softmax + cross-entropy + its gradient, in place.
 *
 * One block per row. Pass 1 reads the row once with an online max/sum
 * (Milakov & Gimelshein, "Online normalizer calculation for softmax",
 * 2018) and, when the row fits (Vp * sizeof(T) <= CE_SMEM_MAX: a bf16 row
 * of GPT-2's 50304 logits is 98 KiB), keeps it in shared memory; pass 2
 * reads it from there (else from device memory again) and overwrites it
 * with the gradient. So each logit is read from device memory once and
 * written once; the probabilities are never stored. Columns V..Vp-1
 * (padding) take no part and get a zero gradient. bf16 rows of up to
 * 53,248 logits take crossentropy_reg instead, which keeps the row in
 * registers (below).
 */
#include "cuda_common.cuh"

enum { CE_THREADS = 512, CE_SMEM_MAX = 112 * 1024 };

/* Merges (m, s) pairs: s is a sum of exp(x - m). */
__device__ __forceinline__ void lse_merge(float &m, float &s, float m2, float s2) {
    float mx = fmaxf(m, m2);
    if (mx == -INFINITY) return; /* both empty */
    s = (m == -INFINITY ? 0.f : s * __expf(m - mx)) + (m2 == -INFINITY ? 0.f : s2 * __expf(m2 - mx));
    m = mx;
}

template <typename T, int VEC, bool SMEM>
__global__ void __launch_bounds__(CE_THREADS)
    crossentropy_kernel(float *losses, T *logits, const int *tgt, int V, int Vp, float dloss,
                        int grad) {
    __shared__ float sm[32], ss[32], sx;
    extern __shared__ int4 row_smem[];
    T *xs = reinterpret_cast<T *>(row_smem); /* the row, when SMEM */
    int row = blockIdx.x;
    T *x = logits + (size_t)row * Vp;
    int t = tgt[row];
    int valid = t >= 0 && t < V;
    if (threadIdx.x == 0) sx = valid ? to_f(x[t]) : 0.f; /* before pass 2 overwrites it */

    float m = -INFINITY, s = 0.f;
    const int lim = SMEM && grad ? Vp : V; /* staging takes the padding too */
    /* U vectors per thread per round, loaded before any is used, so that
     * enough bytes are in flight to run at the memory's bandwidth */
    constexpr int U = 4;
    for (int j0 = threadIdx.x * VEC; j0 < lim; j0 += CE_THREADS * VEC * U) {
        float u[U][VEC];
#pragma unroll
        for (int q = 0; q < U; q++) {
            int j = j0 + q * CE_THREADS * VEC;
            if (j < lim) load_f<VEC>(u[q], x + j);
        }
#pragma unroll
        for (int q = 0; q < U; q++) {
            int j = j0 + q * CE_THREADS * VEC;
            if (j >= lim) break;
            if constexpr (SMEM) store_f<VEC>(xs + j, u[q]); /* exact: the values came from T */
#pragma unroll
            for (int k = 0; k < VEC; k++) {
                if (j + k >= V) break;
                float v = u[q][k];
                if (v > m) {
                    s = (m == -INFINITY ? 0.f : s * __expf(m - v)) + 1.f;
                    m = v;
                } else {
                    s += __expf(v - m);
                }
            }
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
        lse_merge(m, s, m2, s2);
    }
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    if (lane == 0) sm[w] = m, ss[w] = s;
    __syncthreads();
    m = -INFINITY, s = 0.f;
    for (int k = 0; k < CE_THREADS / 32; k++) lse_merge(m, s, sm[k], ss[k]);
    /* every thread now holds the row's max m and sum s, in the same order */
    float lse = m + logf(s);
    if (threadIdx.x == 0) losses[row] = valid ? lse - sx : 0.f;
    if (!grad) return;
    float inv = 1.f / s;
    for (int j = threadIdx.x * VEC; j < Vp; j += CE_THREADS * VEC) {
        float u[VEC];
        load_f<VEC>(u, SMEM ? xs + j : x + j); /* the same thread staged xs[j..] */
        for (int k = 0; k < VEC; k++) {
            int col = j + k;
            float g = 0.f;
            if (valid && col < V) g = dloss * (__expf(u[k] - m) * inv - (col == t ? 1.f : 0.f));
            u[k] = g;
        }
        store_f<VEC>(x + j, u);
    }
}

/* The row in registers (bf16, Vp <= 8 * NV * CE_THREADS): every 16-byte
 * load of the row in flight at once, then three passes over registers -
 * the max, the sum of exp(x - max), and the gradient - instead of an
 * online max/sum per element (a rescale and a branch each) and a second
 * pass through shared memory. Reads each logit once, writes it once.
 * Two blocks per SM (64 registers, GPT-2's NV = 13 spills a few): one
 * block an SM, without spills, was slower (docs/CUDA_NOTES.md, v7). */
template <int NV>
__global__ void __launch_bounds__(CE_THREADS, 2)
    crossentropy_reg(float *losses, bf16 *logits, const int *tgt, int V, int Vp, float dloss, int grad) {
    __shared__ float red[32];
    int row = blockIdx.x;
    bf16 *x = logits + (size_t)row * Vp;
    int t = tgt[row];
    int valid = t >= 0 && t < V;
    uint4 raw[NV];
#pragma unroll
    for (int i = 0; i < NV; i++) {
        int j = (threadIdx.x + i * CE_THREADS) * 8;
        raw[i] = j < Vp ? *reinterpret_cast<const uint4 *>(x + j) : make_uint4(0u, 0u, 0u, 0u);
    }
    float xt = valid ? to_f(x[t]) : 0.f;
    /* f(logit) for each of this thread's logits of the first V columns */
    auto each = [&](auto f) {
#pragma unroll
        for (int i = 0; i < NV; i++) {
            int j = (threadIdx.x + i * CE_THREADS) * 8;
            const bf16 *e = reinterpret_cast<const bf16 *>(&raw[i]);
#pragma unroll
            for (int k = 0; k < 8; k++)
                if (j + k < V) f(__bfloat162float(e[k]));
        }
    };
    float m = -INFINITY, s = 0.f;
    each([&](float v) { m = fmaxf(m, v); });
    m = block_max(m, red);
    each([&](float v) { s += __expf(v - m); });
    s = block_sum(s, red);
    if (threadIdx.x == 0) losses[row] = valid ? m + logf(s) - xt : 0.f;
    if (!grad) return;
    float inv = 1.f / s;
#pragma unroll
    for (int i = 0; i < NV; i++) {
        int j = (threadIdx.x + i * CE_THREADS) * 8;
        if (j >= Vp) continue;
        const bf16 *e = reinterpret_cast<const bf16 *>(&raw[i]);
        uint4 o;
        bf16 *oe = reinterpret_cast<bf16 *>(&o);
#pragma unroll
        for (int k = 0; k < 8; k++) {
            int col = j + k;
            float g = 0.f;
            if (valid && col < V) g = dloss * (__expf(__bfloat162float(e[k]) - m) * inv - (col == t ? 1.f : 0.f));
            oe[k] = __float2bfloat16(g);
        }
        *reinterpret_cast<uint4 *>(x + j) = o;
    }
}

template <typename T>
static void crossentropy_t(gpt_backend *be, float *losses, T *logits, const int *tgt, int N, int V,
                           int Vp, float dloss, int grad) {
    cuda_ctx *c = cuda_ctx_of(be);
    constexpr int VV = vec16<T>::n;
    size_t row = (size_t)Vp * sizeof(T);
    if (Vp % VV == 0 && cuda_aligned16(logits)) {
        if constexpr (sizeof(T) == 2) {
            /* the row in registers, two rows per SM: up to 13 vectors a
             * thread (GPT-2's 50304 logits) */
            size_t per = (size_t)8 * CE_THREADS;
            if ((size_t)Vp <= 4 * per) {
                crossentropy_reg<4><<<N, CE_THREADS, 0, c->stream>>>(losses, logits, tgt, V, Vp, dloss, grad);
                CUDA_LAUNCHED(be, "crossentropy");
                return;
            }
            if ((size_t)Vp <= 13 * per) {
                crossentropy_reg<13><<<N, CE_THREADS, 0, c->stream>>>(losses, logits, tgt, V, Vp, dloss, grad);
                CUDA_LAUNCHED(be, "crossentropy");
                return;
            }
        }
        if (grad && row <= CE_SMEM_MAX)
            crossentropy_kernel<T, VV, true>
                <<<N, CE_THREADS, row, c->stream>>>(losses, logits, tgt, V, Vp, dloss, grad);
        else
            crossentropy_kernel<T, VV, false>
                <<<N, CE_THREADS, 0, c->stream>>>(losses, logits, tgt, V, Vp, dloss, grad);
    } else {
        crossentropy_kernel<T, 1, false>
            <<<N, CE_THREADS, 0, c->stream>>>(losses, logits, tgt, V, Vp, dloss, grad);
    }
    CUDA_LAUNCHED(be, "crossentropy");
}

extern "C" int cuda_crossentropy_setup(gpt_backend *be) {
    if (CUDA_CHECK(be, cudaFuncSetAttribute(crossentropy_kernel<bf16, 8, true>,
                                            cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            CE_SMEM_MAX)) ||
        CUDA_CHECK(be, cudaFuncSetAttribute(crossentropy_kernel<float, 4, true>,
                                            cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            CE_SMEM_MAX)))
        return be->err.code;
    return 0;
}

extern "C" void cuda_crossentropy(gpt_backend *be, float *losses, void *logits, const int *tgt,
                                  int N, int V, int Vp, float dloss, int grad) {
    CUDA_SKIP_IF_FAILED(be);
    if (N < 0 || V < 1 || Vp < V) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "cuda crossentropy: bad shape N=%d V=%d Vp=%d", N,
                         V, Vp);
        return;
    }
    if (!N) return;
    if (cuda_bf16(be))
        crossentropy_t(be, losses, (bf16 *)logits, tgt, N, V, Vp, dloss, grad);
    else
        crossentropy_t(be, losses, (float *)logits, tgt, N, V, Vp, dloss, grad);
}
