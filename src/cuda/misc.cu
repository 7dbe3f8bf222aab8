/*
 * misc.cu - small elementwise ops and reductions: GELU (for recompute), add,
 * the deterministic loss sum, the NaN/Inf scan, and the unfused matmul
 * epilogues (bias + GELU, GELU derivative, bias gradient) that matmul.cu
 * falls back on when cuBLASLt offers no fused epilogue for a problem.
 */
#include "cuda_common.cuh"

/* ---------------------------------------------------------------- GELU */

template <typename T> __global__ void gelu_kernel(T *out, const T *in, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = from_f<T>(gelu_f(to_f(in[i])));
}

/* A grid that covers n threads' work without exceeding what stays resident. */
static unsigned grid_for(gpt_backend *be, size_t n, int threads) {
    size_t want = (n + threads - 1) / threads;
    size_t cap = (size_t)cuda_ctx_of(be)->prop.multiProcessorCount * 16;
    if (want > cap) want = cap;
    return want ? (unsigned)want : 1;
}

extern "C" void cuda_gelu_forward(gpt_backend *be, void *out, const void *in, size_t n) {
    CUDA_SKIP_IF_FAILED(be);
    if (!n) return;
    cudaStream_t s = cuda_ctx_of(be)->stream;
    if (cuda_bf16(be))
        gelu_kernel<<<grid_for(be, n, 256), 256, 0, s>>>((bf16 *)out, (const bf16 *)in, n);
    else
        gelu_kernel<<<grid_for(be, n, 256), 256, 0, s>>>((float *)out, (const float *)in, n);
    CUDA_LAUNCHED(be, "gelu");
}

/* ----------------------------------------------------------------- add */

/* out = a + b. Decoding issues it between dependent kernels when a
 * residual add is not folded into the product before it: it waits for its
 * predecessor first, so it has no early inputs. */
template <typename T> __global__ void add_kernel(T *out, const T *a, const T *b, size_t n) {
    pdl_wait_and_release();
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = from_f<T>(to_f(a[i]) + to_f(b[i]));
}

extern "C" void cuda_add(gpt_backend *be, void *out, const void *a, const void *b, size_t n) {
    CUDA_SKIP_IF_FAILED(be);
    if (!n) return;
    cudaStream_t s = cuda_ctx_of(be)->stream;
    int pdl = n <= (size_t)CUDA_PDL_MAX_ROWS * 8192; /* decoding-sized */
    cudaError_t e =
        cuda_bf16(be) ? launch_k(s, pdl, add_kernel<bf16>, grid_for(be, n, 256), 256, 0, (bf16 *)out,
                                 (const bf16 *)a, (const bf16 *)b, n)
                      : launch_k(s, pdl, add_kernel<float>, grid_for(be, n, 256), 256, 0,
                                 (float *)out, (const float *)a, (const float *)b, n);
    if (!CUDA_CHECK(be, e)) CUDA_LAUNCHED(be, "add");
}

/* -------------------------------------------------------------- sum_f32 */

/* One block, fixed stride per thread and a fixed tree: the same inputs give
 * the same bits every time. n is the token count of a step, so one block
 * is enough. */
__global__ void sum_f32_kernel(float *out, const float *in, size_t n, int accumulate) {
    __shared__ float shm[33];
    float s = 0.f;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x) s += in[i];
    s = block_sum(s, shm);
    if (threadIdx.x == 0) out[0] = accumulate ? out[0] + s : s;
}

extern "C" void cuda_sum_f32(gpt_backend *be, float *out, const float *in, size_t n,
                             int accumulate) {
    CUDA_SKIP_IF_FAILED(be);
    sum_f32_kernel<<<1, 1024, 0, cuda_ctx_of(be)->stream>>>(out, in, n, accumulate);
    CUDA_LAUNCHED(be, "sum_f32");
}

/* ----------------------------------------------------- nonfinite count */

template <typename T>
__global__ void nonfinite_kernel(unsigned long long *count, const T *p, size_t n) {
    __shared__ float shm[33];
    float c = 0.f;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        c += isfinite(to_f(p[i])) ? 0.f : 1.f;
    c = block_sum(c, shm); /* exact: counts stay far below 2^24 per block */
    if (threadIdx.x == 0 && c > 0.f) atomicAdd(count, (unsigned long long)c);
}

extern "C" long cuda_nonfinite_count(gpt_backend *be, const void *p, size_t n, int cls) {
    cuda_ctx *c = cuda_ctx_of(be);
    if (be->err.code) return 0;
    if (cls == GPT_CLS_I32 || !n) return 0;
    if (CUDA_CHECK(be, cudaMemsetAsync(c->counter, 0, sizeof *c->counter, c->stream))) return 0;
    /* Per block the count is a float sum: keep blocks' shares below 2^24. */
    unsigned grid = grid_for(be, n, 256);
    int half = (cls == GPT_CLS_PARAM || cls == GPT_CLS_ACT) && cuda_bf16(be);
    if (half)
        nonfinite_kernel<<<grid, 256, 0, c->stream>>>(c->counter, (const bf16 *)p, n);
    else
        nonfinite_kernel<<<grid, 256, 0, c->stream>>>(c->counter, (const float *)p, n);
    if (CUDA_LAUNCHED(be, "nonfinite_count")) return 0;
    unsigned long long h = 0;
    be->syncs++;
    if (CUDA_CHECK(be, cudaMemcpyAsync(&h, c->counter, sizeof h, cudaMemcpyDeviceToHost, c->stream)) ||
        CUDA_CHECK(be, cudaStreamSynchronize(c->stream)))
        return 0;
    return (long)h;
}

/* ------------------------------------------------ unfused epilogues */

/* out = act(y + bias); pre = y + bias when gelu and pre != NULL. y may be
 * the same buffer as out or pre. (N, OC) row-major. */
template <typename T>
__global__ void bias_act_kernel(T *out, T *pre, const T *y, const T *bias, size_t n, int OC,
                                int gelu) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float v = to_f(y[i]);
        if (bias) v += to_f(bias[i % OC]);
        if (gelu) {
            if (pre) pre[i] = from_f<T>(v);
            out[i] = from_f<T>(gelu_f(v));
        } else {
            out[i] = from_f<T>(v);
        }
    }
}

extern "C" void cuda_bias_act(gpt_backend *be, void *out, void *pre, const void *y,
                              const void *bias, int N, int OC, int gelu) {
    CUDA_SKIP_IF_FAILED(be);
    size_t n = (size_t)N * OC;
    if (!n) return;
    cudaStream_t s = cuda_ctx_of(be)->stream;
    unsigned g = grid_for(be, n, 256);
    if (cuda_bf16(be))
        bias_act_kernel<<<g, 256, 0, s>>>((bf16 *)out, (bf16 *)pre, (const bf16 *)y,
                                          (const bf16 *)bias, n, OC, gelu);
    else
        bias_act_kernel<<<g, 256, 0, s>>>((float *)out, (float *)pre, (const float *)y,
                                          (const float *)bias, n, OC, gelu);
    CUDA_LAUNCHED(be, "bias_act");
}

template <typename T> __global__ void dgelu_kernel(T *din, const T *pre, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        din[i] = from_f<T>(to_f(din[i]) * gelu_grad_f(to_f(pre[i])));
}

extern "C" void cuda_dgelu_inplace(gpt_backend *be, void *din, const void *pre, size_t n) {
    CUDA_SKIP_IF_FAILED(be);
    if (!n) return;
    cudaStream_t s = cuda_ctx_of(be)->stream;
    if (cuda_bf16(be))
        dgelu_kernel<<<grid_for(be, n, 256), 256, 0, s>>>((bf16 *)din, (const bf16 *)pre, n);
    else
        dgelu_kernel<<<grid_for(be, n, 256), 256, 0, s>>>((float *)din, (const float *)pre, n);
    CUDA_LAUNCHED(be, "dgelu");
}

/* dbias[c] += sum over rows of dout[r, c], in two deterministic stages:
 * row chunk y of column c -> part[y, c]; then a fixed-order sum over y. */
enum { BG_THREADS = 128, BG_MAX_CHUNKS = CUDA_BIAS_GRAD_CHUNKS };

template <typename T>
__global__ void bias_grad_part_kernel(float *part, const T *dout, int N, int OC, int rows_per) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= OC) return;
    int r0 = blockIdx.y * rows_per, r1 = min(N, r0 + rows_per);
    float s = 0.f;
    for (int r = r0; r < r1; r++) s += to_f(dout[(size_t)r * OC + c]);
    part[(size_t)blockIdx.y * OC + c] = s;
}

__global__ void bias_grad_sum_kernel(float *dbias, const float *part, int chunks, int OC) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= OC) return;
    float s = 0.f;
    for (int y = 0; y < chunks; y++) s += part[(size_t)y * OC + c];
    dbias[c] += s;
}

extern "C" void cuda_bias_grad(gpt_backend *be, float *dbias, const void *dout, int N, int OC) {
    CUDA_SKIP_IF_FAILED(be);
    cuda_ctx *c = cuda_ctx_of(be);
    if (N <= 0 || OC <= 0) return;
    int chunks = (N + 31) / 32;
    if (chunks > BG_MAX_CHUNKS) chunks = BG_MAX_CHUNKS;
    int rows_per = (N + chunks - 1) / chunks;
    chunks = (N + rows_per - 1) / rows_per;
    if ((size_t)chunks * OC > c->scratch_elems) {
        gpt_backend_fail(be, GPT_ERR_INVALID,
                         "cuda bias gradient: OC=%d exceeds what reserve() sized; call reserve "
                         "with the model's shapes first",
                         OC);
        return;
    }
    dim3 grid(cuda_cdiv(OC, BG_THREADS), chunks);
    if (cuda_bf16(be))
        bias_grad_part_kernel<<<grid, BG_THREADS, 0, c->stream>>>(c->scratch, (const bf16 *)dout,
                                                                  N, OC, rows_per);
    else
        bias_grad_part_kernel<<<grid, BG_THREADS, 0, c->stream>>>(c->scratch, (const float *)dout,
                                                                  N, OC, rows_per);
    if (CUDA_LAUNCHED(be, "bias_grad_part")) return;
    bias_grad_sum_kernel<<<cuda_cdiv(OC, 256), 256, 0, c->stream>>>(dbias, c->scratch, chunks, OC);
    CUDA_LAUNCHED(be, "bias_grad_sum");
}

__global__ void add_f32_kernel(float *dst, const float *src, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] += src[i];
}

extern "C" void cuda_add_f32(gpt_backend *be, float *dst, const float *src, int n) {
    CUDA_SKIP_IF_FAILED(be);
    if (n <= 0) return;
    add_f32_kernel<<<cuda_cdiv(n, 256), 256, 0, cuda_ctx_of(be)->stream>>>(dst, src, n);
    CUDA_LAUNCHED(be, "add_f32");
}
