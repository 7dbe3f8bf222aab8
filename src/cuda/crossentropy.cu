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
 * (padding) take no part and get a zero gradient.
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

template <typename T>
static void crossentropy_t(gpt_backend *be, float *losses, T *logits, const int *tgt, int N, int V,
                           int Vp, float dloss, int grad) {
    cuda_ctx *c = cuda_ctx_of(be);
    constexpr int VV = vec16<T>::n;
    size_t row = (size_t)Vp * sizeof(T);
    if (Vp % VV == 0 && cuda_aligned16(logits)) {
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
