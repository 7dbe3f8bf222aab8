/*
 * decode.cu - the small ops that let greedy decoding run step after step
 * on the device: argmax over a logits row, advancing positions, and a
 * device-to-device copy (the chosen ids into a history buffer).
 */
#include "cuda_common.cuh"

/* One block per row: each thread scans a strided share, then the block
 * reduces (value, index) pairs, keeping the lowest index on ties. */
template <typename T> __global__ void argmax_kernel(int *out, const T *logits, int V, int Vp) {
    const T *row = logits + (size_t)blockIdx.x * Vp;
    float bv = -INFINITY;
    int bi = -1;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float v = to_f(row[j]);
        if (v > bv || (bi < 0 && v == bv)) bv = v, bi = j; /* NaN never wins */
    }
    __shared__ float sv[32];
    __shared__ int si[32];
    for (int off = 16; off > 0; off >>= 1) {
        float ov = __shfl_down_sync(0xffffffffu, bv, off);
        int oi = __shfl_down_sync(0xffffffffu, bi, off);
        if (oi >= 0 && (bi < 0 || ov > bv || (ov == bv && oi < bi))) bv = ov, bi = oi;
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    if (lane == 0) sv[warp] = bv, si[warp] = bi;
    __syncthreads();
    if (warp == 0) {
        bv = lane < nw ? sv[lane] : -INFINITY;
        bi = lane < nw ? si[lane] : -1;
        for (int off = 16; off > 0; off >>= 1) {
            float ov = __shfl_down_sync(0xffffffffu, bv, off);
            int oi = __shfl_down_sync(0xffffffffu, bi, off);
            if (oi >= 0 && (bi < 0 || ov > bv || (ov == bv && oi < bi))) bv = ov, bi = oi;
        }
        if (lane == 0) out[blockIdx.x] = bi < 0 ? 0 : bi;
    }
}

extern "C" void cuda_argmax(gpt_backend *be, int *out, const void *logits, int N, int V, int Vp) {
    CUDA_SKIP_IF_FAILED(be);
    if (N <= 0 || V <= 0 || V > Vp) {
        if (N > 0) gpt_backend_fail(be, GPT_ERR_RUNTIME, "argmax: bad shape N=%d V=%d Vp=%d", N, V, Vp);
        return;
    }
    cudaStream_t s = cuda_ctx_of(be)->stream;
    if (cuda_bf16(be))
        argmax_kernel<<<N, 1024, 0, s>>>(out, (const bf16 *)logits, V, Vp);
    else
        argmax_kernel<<<N, 1024, 0, s>>>(out, (const float *)logits, V, Vp);
    CUDA_LAUNCHED(be, "argmax");
}

__global__ void add_i32_kernel(int *p, int n, int delta) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) p[i] += delta;
}

extern "C" void cuda_add_i32(gpt_backend *be, int *p, int n, int delta) {
    CUDA_SKIP_IF_FAILED(be);
    if (n <= 0) return;
    add_i32_kernel<<<(n + 255) / 256, 256, 0, cuda_ctx_of(be)->stream>>>(p, n, delta);
    CUDA_LAUNCHED(be, "add_i32");
}

extern "C" void cuda_copy(gpt_backend *be, void *dst, const void *src, size_t bytes) {
    CUDA_SKIP_IF_FAILED(be);
    if (!bytes) return;
    CUDA_CHECK(be, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice,
                                   cuda_ctx_of(be)->stream));
}
