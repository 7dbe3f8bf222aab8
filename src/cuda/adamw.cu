/*
 * adamw.cu - the optimizer step without a host wait:
 *   sumsq: partial sums of grad^2, one per block (a fixed grid, so the same
 *     gradient gives the same bits), then one block adds the partials in a
 *     fixed order and writes the sum;
 *   adamw: every block reads the squared norm the caller left in the step
 *     statistics (summed over ranks in data-parallel runs), so each knows
 *     the clip factor and whether to skip; then one pass updates moments,
 *     master and parameters and zeroes the gradient. Block 0 writes
 *     grad_norm and skipped.
 * Hyper-parameters are read from device memory, so a captured graph picks
 * up each step's learning rate and bias corrections.
 */
#include "cuda_common.cuh"

enum { AW_THREADS = 256, AW_PART_PER_SM = 4 };

static int norm_grid(const cudaDeviceProp *prop, size_t n) {
    size_t cap = (size_t)prop->multiProcessorCount * AW_PART_PER_SM;
    size_t need = (n + AW_THREADS * 4 - 1) / (AW_THREADS * 4);
    if (need < 1) need = 1;
    return (int)(need < cap ? need : cap);
}

extern "C" size_t cuda_adamw_scratch(const cudaDeviceProp *prop) {
    return (size_t)prop->multiProcessorCount * AW_PART_PER_SM;
}

__global__ void __launch_bounds__(AW_THREADS)
    sumsq_kernel(float *part, const float *g, size_t n, int vec) {
    __shared__ float shm[33];
    float s = 0.f;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t i0 = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (vec) {
        size_t n4 = n / 4;
        const float4 *g4 = reinterpret_cast<const float4 *>(g);
        for (size_t i = i0; i < n4; i += stride) {
            float4 v = g4[i];
            s += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
        }
        for (size_t i = n4 * 4 + i0; i < n; i += stride) s += g[i] * g[i];
    } else {
        for (size_t i = i0; i < n; i += stride) s += g[i] * g[i];
    }
    s = block_sum(s, shm);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

/* out[0] = the sum of the nparts partials, added in a fixed order. */
__global__ void __launch_bounds__(AW_THREADS) sumsq_final_kernel(float *out, const float *part, int nparts) {
    __shared__ float shm[33];
    float s = 0.f;
    for (int k = threadIdx.x; k < nparts; k += blockDim.x) s += part[k];
    s = block_sum(s, shm);
    if (threadIdx.x == 0) out[0] = s;
}

extern "C" void cuda_sumsq(gpt_backend *be, float *out, const void *grad, size_t n) {
    CUDA_SKIP_IF_FAILED(be);
    cuda_ctx *c = cuda_ctx_of(be);
    int G = norm_grid(&c->prop, n);
    if ((size_t)G > c->scratch_elems) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "cuda sumsq: call reserve() first");
        return;
    }
    const float *g = (const float *)grad;
    sumsq_kernel<<<G, AW_THREADS, 0, c->stream>>>(c->scratch, g, n, cuda_aligned16(g));
    if (CUDA_LAUNCHED(be, "sumsq")) return;
    sumsq_final_kernel<<<1, AW_THREADS, 0, c->stream>>>(out, c->scratch, G);
    CUDA_LAUNCHED(be, "sumsq_final");
}

template <typename T>
__device__ __forceinline__ void adamw_one(T *params, float *master, float *grad, float *m, float *v,
                                          size_t i, size_t n_decay, float scale,
                                          const gpt_adamw_hyper &h) {
    float g = grad[i] * scale;
    float mi = m[i] + (1.f - h.beta1) * (g - m[i]); /* PyTorch's lerp form */
    float vi = h.beta2 * v[i] + (1.f - h.beta2) * g * g;
    float p = master ? master[i] : to_f(params[i]);
    if (i < n_decay) p *= 1.f - h.lr * h.weight_decay;
    p -= (h.lr / h.bias_corr1) * mi / (sqrtf(vi) / sqrtf(h.bias_corr2) + h.eps);
    m[i] = mi;
    v[i] = vi;
    if (master) master[i] = p;
    params[i] = from_f<T>(p);
}

template <typename T>
__global__ void __launch_bounds__(AW_THREADS)
    adamw_kernel(T *params, float *master, float *grad, float *m, float *v, size_t n,
                 size_t n_decay, const gpt_adamw_hyper *hyper, gpt_step_stats *stats, int vec) {
    float norm = sqrtf(stats->grad_sumsq);
    int skip = !isfinite(norm) || !isfinite(stats->loss_sum);
    const gpt_adamw_hyper h = *hyper;
    float scale = 1.f;
    if (h.grad_clip > 0.f) scale = fminf(1.f, h.grad_clip / (norm + 1e-6f));
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        stats->grad_norm = norm;
        stats->skipped = skip ? 1.f : 0.f;
    }
    size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t i0 = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    size_t head = vec ? n / 4 * 4 : 0; /* [0, head) in float4 steps */
    if (skip) {
        for (size_t i = i0; i < head / 4; i += stride)
            reinterpret_cast<float4 *>(grad)[i] = make_float4(0.f, 0.f, 0.f, 0.f);
        for (size_t i = head + i0; i < n; i += stride) grad[i] = 0.f;
        return;
    }
    for (size_t i = i0; i < head / 4; i += stride) {
        /* four consecutive elements: 16-byte accesses on the fp32 arrays */
        float4 g4 = reinterpret_cast<float4 *>(grad)[i];
        float4 m4 = reinterpret_cast<float4 *>(m)[i];
        float4 v4 = reinterpret_cast<float4 *>(v)[i];
        float gs[4] = {g4.x, g4.y, g4.z, g4.w}, ms[4] = {m4.x, m4.y, m4.z, m4.w},
              vs[4] = {v4.x, v4.y, v4.z, v4.w}, ps[4];
        if (master) {
            float4 p4 = reinterpret_cast<float4 *>(master)[i];
            ps[0] = p4.x, ps[1] = p4.y, ps[2] = p4.z, ps[3] = p4.w;
        } else {
            load_f<4>(ps, params + 4 * i);
        }
        for (int k = 0; k < 4; k++) {
            float g = gs[k] * scale;
            ms[k] = ms[k] + (1.f - h.beta1) * (g - ms[k]);
            vs[k] = h.beta2 * vs[k] + (1.f - h.beta2) * g * g;
            if (4 * i + k < n_decay) ps[k] *= 1.f - h.lr * h.weight_decay;
            ps[k] -= (h.lr / h.bias_corr1) * ms[k] / (sqrtf(vs[k]) / sqrtf(h.bias_corr2) + h.eps);
        }
        reinterpret_cast<float4 *>(m)[i] = make_float4(ms[0], ms[1], ms[2], ms[3]);
        reinterpret_cast<float4 *>(v)[i] = make_float4(vs[0], vs[1], vs[2], vs[3]);
        if (master) reinterpret_cast<float4 *>(master)[i] = make_float4(ps[0], ps[1], ps[2], ps[3]);
        store_f<4>(params + 4 * i, ps);
        reinterpret_cast<float4 *>(grad)[i] = make_float4(0.f, 0.f, 0.f, 0.f);
    }
    for (size_t i = head + i0; i < n; i += stride) {
        adamw_one(params, master, grad, m, v, i, n_decay, scale, h);
        grad[i] = 0.f;
    }
}

template <typename T>
static void adamw_t(gpt_backend *be, T *params, float *master, float *grad, float *m, float *v,
                    size_t n, size_t n_decay, const gpt_adamw_hyper *hyper, gpt_step_stats *stats) {
    cuda_ctx *c = cuda_ctx_of(be);
    /* params hold 4 elements per step: 8 bytes for bf16, 16 for fp32 */
    int vec = cuda_aligned16(grad) && cuda_aligned16(m) && cuda_aligned16(v) &&
              (!master || cuda_aligned16(master)) && ((uintptr_t)params % (4 * sizeof(T))) == 0;
    size_t want = (n + AW_THREADS * 4 - 1) / (AW_THREADS * 4);
    size_t cap = (size_t)c->prop.multiProcessorCount * 8;
    unsigned grid = (unsigned)(want < 1 ? 1 : (want < cap ? want : cap));
    adamw_kernel<T><<<grid, AW_THREADS, 0, c->stream>>>(params, master, grad, m, v, n, n_decay,
                                                        hyper, stats, vec);
    CUDA_LAUNCHED(be, "adamw");
}

extern "C" void cuda_adamw(gpt_backend *be, void *params, float *master, void *grad, float *m,
                           float *v, size_t n, size_t n_decay, const gpt_adamw_hyper *hyper,
                           gpt_step_stats *stats) {
    CUDA_SKIP_IF_FAILED(be);
    if (!n) return;
    if (cuda_bf16(be))
        adamw_t(be, (bf16 *)params, master, (float *)grad, m, v, n, n_decay, hyper, stats);
    else
        adamw_t(be, (float *)params, master, (float *)grad, m, v, n, n_decay, hyper, stats);
}
