/*
 * decode.cu - the small ops that let greedy decoding run step after step
 * on the device: argmax over a logits row (which also records the id in
 * the history and advances the row's position), and a device-to-device
 * copy.
 */
#include "cuda_common.cuh"

/* Folds (value, index) pairs across a warp, keeping the larger value and,
 * on ties, the lower index; index -1 marks "nothing seen". */
__device__ __forceinline__ void warp_argmax(float &bv, int &bi) {
    for (int off = 16; off > 0; off >>= 1) {
        float ov = __shfl_down_sync(0xffffffffu, bv, off);
        int oi = __shfl_down_sync(0xffffffffu, bi, off);
        if (oi >= 0 && (bi < 0 || ov > bv || (ov == bv && oi < bi))) bv = ov, bi = oi;
    }
}

/* Where argmax puts its answers (backend.h): out, and with pos the history
 * slot at the row's position and the position advanced. */
struct argmax_dst {
    int *out, *pos, *hist;
    int S;
};

/* Row r's answer (0 when nothing was seen, e.g. a row of NaN) to where
 * d says. */
__device__ __forceinline__ void argmax_store(const argmax_dst &d, int r, int bi) {
    int id = bi < 0 ? 0 : bi;
    d.out[r] = id;
    if (d.pos) {
        int p = d.pos[r];
        if (d.hist && p >= 0 && p < d.S) d.hist[(size_t)r * d.S + p] = id;
        d.pos[r] = p + 1;
    }
}

/* Block-wide argmax of each thread's (bv, bi): the block's is in thread 0's
 * afterwards. */
__device__ __forceinline__ void block_argmax(float &bv, int &bi) {
    __shared__ float sv[32];
    __shared__ int si[32];
    warp_argmax(bv, bi);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    if (lane == 0) sv[warp] = bv, si[warp] = bi;
    __syncthreads();
    if (warp == 0) {
        bv = lane < nw ? sv[lane] : -INFINITY;
        bi = lane < nw ? si[lane] : -1;
        warp_argmax(bv, bi);
    }
}

/* The block's argmax stored as row blockIdx.x's answer. */
__device__ __forceinline__ void block_argmax_store(const argmax_dst &d, float bv, int bi) {
    block_argmax(bv, bi);
    if (threadIdx.x == 0) argmax_store(d, blockIdx.x, bi);
}

/* One block per row: each thread scans a strided share, then the block
 * reduces (value, index) pairs, keeping the lowest index on ties. */
template <typename T> __global__ void argmax_kernel(argmax_dst out, const T *logits, int V, int Vp) {
    const T *row = logits + (size_t)blockIdx.x * Vp;
    float bv = -INFINITY;
    int bi = -1;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float v = to_f(row[j]);
        if (v > bv || (bi < 0 && v == bv)) bv = v, bi = j; /* NaN never wins */
    }
    block_argmax_store(out, bv, bi);
}

/* The same with 16-byte loads (Vp a multiple of VEC, rows aligned): R
 * vectors per thread in flight at once, so that a 50K-entry row costs two
 * rounds of loads instead of 50 dependent ones. */
template <typename T, int VEC>
__global__ void __launch_bounds__(1024) argmax_vec(argmax_dst out, const T *logits, int V, int Vp) {
    constexpr int R = 4;
    TRACE(TR_ARGMAX, 0, 0);
    pdl_wait_and_release();
    TRACE(TR_ARGMAX, 1, 0);
    const T *row = logits + (size_t)blockIdx.x * Vp;
    const int nvec = (V + VEC - 1) / VEC; /* nvec * VEC <= Vp */
    float bv = -INFINITY;
    int bi = -1;
    for (int i0 = threadIdx.x; i0 < nvec; i0 += R * 1024) {
        float v[R][VEC];
#pragma unroll
        for (int r = 0; r < R; r++)
            if (i0 + r * 1024 < nvec) load_f<VEC>(v[r], row + (size_t)(i0 + r * 1024) * VEC);
#pragma unroll
        for (int r = 0; r < R; r++) {
            int i = i0 + r * 1024;
            if (i >= nvec) break;
#pragma unroll
            for (int e = 0; e < VEC; e++) { /* this thread's indices increase */
                int j = i * VEC + e;
                if (j < V && (v[r][e] > bv || (bi < 0 && v[r][e] == bv))) bv = v[r][e], bi = j;
            }
        }
    }
    block_argmax_store(out, bv, bi);
}

TRACE_SETTER(cuda_trace_set_decode)

/* Decoding batches (a few rows of ~50K logits): one 1024-thread block a
 * row leaves most SMs idle and moves a row through one SM (~100 KB). Here
 * each row is split over AM_PARTS blocks; each writes its part's (max,
 * index), and the last of a row's blocks to arrive (a counter, reset by
 * that block for the next launch) folds the parts in index order and
 * stores the row's answer: the same choice, ties to the lowest index. */
enum { AM_PARTS = 8, AM_THREADS = 256, AM_MAXROWS = 64 };

template <typename T, int VEC>
__global__ void __launch_bounds__(AM_THREADS)
    argmax_split(argmax_dst d, const T *logits, int V, int Vp, float *pv, int *pi, unsigned *cnt) {
    constexpr int R = 4;
    TRACE(TR_ARGMAX, 0, 0);
    pdl_wait_and_release();
    TRACE(TR_ARGMAX, 1, 0);
    const int r = blockIdx.x, part = blockIdx.y;
    const T *row = logits + (size_t)r * Vp;
    const int nvec = (V + VEC - 1) / VEC, per = (nvec + AM_PARTS - 1) / AM_PARTS;
    const int v0 = part * per, v1 = min(nvec, v0 + per);
    float bv = -INFINITY;
    int bi = -1;
    for (int i0 = v0 + threadIdx.x; i0 < v1; i0 += R * AM_THREADS) {
        float v[R][VEC];
#pragma unroll
        for (int q = 0; q < R; q++)
            if (i0 + q * AM_THREADS < v1) load_f<VEC>(v[q], row + (size_t)(i0 + q * AM_THREADS) * VEC);
#pragma unroll
        for (int q = 0; q < R; q++) {
            int i = i0 + q * AM_THREADS;
            if (i >= v1) break;
#pragma unroll
            for (int e = 0; e < VEC; e++) { /* this thread's indices increase */
                int j = i * VEC + e;
                if (j < V && (v[q][e] > bv || (bi < 0 && v[q][e] == bv))) bv = v[q][e], bi = j;
            }
        }
    }
    __shared__ bool last;
    block_argmax(bv, bi);
    if (threadIdx.x == 0) {
        pv[r * AM_PARTS + part] = bv, pi[r * AM_PARTS + part] = bi;
        __threadfence(); /* the part is visible before the arrival counts */
        last = atomicAdd(&cnt[r], 1u) == AM_PARTS - 1;
    }
    __syncthreads();
    if (!last || threadIdx.x >= 32) return;
    __threadfence();
    /* the row's parts, in index order (lanes 0..AM_PARTS-1) */
    const int lane = threadIdx.x;
    bv = lane < AM_PARTS ? __ldcg(pv + r * AM_PARTS + lane) : -INFINITY;
    bi = lane < AM_PARTS ? __ldcg(pi + r * AM_PARTS + lane) : -1;
    warp_argmax(bv, bi);
    if (lane == 0) {
        cnt[r] = 0;
        argmax_store(d, r, bi);
    }
}

extern "C" void cuda_argmax_setup(gpt_backend *be) {
    cuda_ctx *c = cuda_ctx_of(be);
    size_t bytes = (size_t)AM_MAXROWS * AM_PARTS * 8 + AM_MAXROWS * 4;
    if (CUDA_CHECK(be, cudaMalloc(&c->am_ws, bytes))) return;
    CUDA_CHECK(be, cudaMemsetAsync(c->am_ws, 0, bytes, c->stream)); /* before any argmax on it */
}

extern "C" void cuda_argmax(gpt_backend *be, int *out_, const void *logits, int N, int V, int Vp,
                            int *pos, int *hist, int S) {
    CUDA_SKIP_IF_FAILED(be);
    if (N <= 0 || V <= 0 || V > Vp || (hist && S < 1)) {
        if (N > 0)
            gpt_backend_fail(be, GPT_ERR_RUNTIME, "argmax: bad shape N=%d V=%d Vp=%d S=%d", N, V, Vp, S);
        return;
    }
    argmax_dst out = {out_, pos, hist, S};
    cudaStream_t s = cuda_ctx_of(be)->stream;
    cudaError_t e = cudaSuccess;
    int pdl = N <= CUDA_PDL_MAX_ROWS; /* decoding: follows the head's product */
    cuda_ctx *c = cuda_ctx_of(be);
    float *pv = (float *)c->am_ws;
    int *pi = (int *)(pv + AM_MAXROWS * AM_PARTS);
    unsigned *cnt = (unsigned *)(pi + AM_MAXROWS * AM_PARTS);
    int split = N <= AM_MAXROWS && V >= 64 * AM_PARTS && cuda_aligned16(logits);
    if (split && cuda_bf16(be) && Vp % 8 == 0)
        e = launch_k(s, pdl, argmax_split<bf16, 8>, dim3(N, AM_PARTS), dim3(AM_THREADS), 0, out,
                     (const bf16 *)logits, V, Vp, pv, pi, cnt);
    else if (split && !cuda_bf16(be) && Vp % 4 == 0)
        e = launch_k(s, pdl, argmax_split<float, 4>, dim3(N, AM_PARTS), dim3(AM_THREADS), 0, out,
                     (const float *)logits, V, Vp, pv, pi, cnt);
    else if (cuda_bf16(be) && Vp % 8 == 0 && cuda_aligned16(logits))
        e = launch_k(s, pdl, argmax_vec<bf16, 8>, dim3(N), dim3(1024), 0, out, (const bf16 *)logits, V, Vp);
    else if (!cuda_bf16(be) && Vp % 4 == 0 && cuda_aligned16(logits))
        e = launch_k(s, pdl, argmax_vec<float, 4>, dim3(N), dim3(1024), 0, out, (const float *)logits, V, Vp);
    else if (cuda_bf16(be))
        argmax_kernel<<<N, 1024, 0, s>>>(out, (const bf16 *)logits, V, Vp);
    else
        argmax_kernel<<<N, 1024, 0, s>>>(out, (const float *)logits, V, Vp);
    if (!CUDA_CHECK(be, e)) CUDA_LAUNCHED(be, "argmax");
}

extern "C" void cuda_copy(gpt_backend *be, void *dst, const void *src, size_t bytes) {
    CUDA_SKIP_IF_FAILED(be);
    if (!bytes) return;
    CUDA_CHECK(be, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice,
                                   cuda_ctx_of(be)->stream));
}
