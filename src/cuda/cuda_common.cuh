/*
 * cuda_common.cuh - what the CUDA backend's files share: the private
 * context behind be->ctx, error checking that records the first failure in
 * be->err, element-type helpers (PARAM and ACT are bf16 in mixed precision
 * and fp32 in GPT_PREC_FP32 mode; GRAD and F32 are always fp32), 16-byte
 * vector loads, warp and block reductions, and the ops each file provides.
 *
 * Kernels are templated on the PARAM/ACT element type T (float or
 * __nv_bfloat16); every launcher dispatches on be->precision. Arithmetic is
 * fp32 everywhere.
 */
#ifndef GPT_CUDA_COMMON_CUH
#define GPT_CUDA_COMMON_CUH

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

extern "C" {
#include "backend.h"
}

typedef __nv_bfloat16 bf16;

/* ------------------------------------------------------------- context */

enum { CUDA_MAX_GRAPHS = 64, CUDA_LT_CACHE = 96 };
/* Row chunks of the unfused bias gradient (misc.cu): its scratch is
 * CUDA_BIAS_GRAD_CHUNKS x OC floats. */
enum { CUDA_BIAS_GRAD_CHUNKS = 128 };

/* One cached cuBLASLt problem: descriptors and the algorithm the heuristic
 * chose for these sizes, types, epilogue and pointer alignments. */
typedef struct {
    int used;
    int key[20];
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
    int ok; /* 0: no algorithm for this problem (use the unfused path) */
} cuda_lt_entry;

typedef struct {
    int device;
    cudaDeviceProp prop;
    cudaStream_t stream;
    cublasLtHandle_t lt;
    char desc[320];

    gpt_shape shape; /* what reserve() sized the workspaces for */
    int reserved;

    void *lt_ws; /* cuBLASLt workspace */
    size_t lt_ws_bytes;
    float *scratch; /* reductions: layernorm/bias partials, AdamW norm */
    size_t scratch_elems;
    float *attn_dq; /* (B,T,C) fp32 dq accumulator of the fast backward */
    float *attn_dd; /* (B,NH,T) rowsum(dout * out) */
    size_t attn_dq_elems, attn_dd_elems;
    int *enc_sort;      /* 4 x (B*T): keys in/out, values in/out */
    size_t enc_n;       /* B*T the sort buffers hold */
    void *enc_tmp;      /* radix-sort temporary storage */
    size_t enc_tmp_bytes;
    unsigned long long *counter; /* nonfinite_count's device counter */
    /* argmax of decoding-sized batches split over AM_PARTS blocks a row
     * (decode.cu): partial maxima and indices, and per-row arrival
     * counters (zero between launches) */
    void *am_ws;

    cudaEvent_t *timers;
    int n_timers;

    struct {
        int id;
        unsigned long long used; /* clock of the last launch (LRU eviction) */
        cudaGraphExec_t exec;
    } graphs[CUDA_MAX_GRAPHS];
    int n_graphs;
    unsigned long long graph_clock;
    int capturing; /* graph id being recorded, or -1 */

    void *host_buf; /* pageable staging for uploads that convert to bf16 */
    size_t host_bytes;
    void *pinned_buf; /* pinned staging for downloads that convert from bf16 */
    size_t pinned_bytes;

    cuda_lt_entry lt_cache[CUDA_LT_CACHE];

    /* Switches the tests use to reach the fallback paths (the table in
     * docs/CUDA_NOTES.md says which test sets each): */
    int no_fast_attn; /* GPT_CUDA_NO_FAST_ATTN=1: generic attention kernels */
    int no_epilogue;  /* GPT_CUDA_NO_EPILOGUE=1: unfused matmul epilogues */
    int no_fold;      /* GPT_CUDA_NO_FOLD=1: matmul_ln/residual_forward decline */
    int kv_split;     /* GPT_CUDA_KV_SPLIT=k: k blocks share a decoding query's
                         keys (0: chosen from the cache length) */
    void *trace_buf;  /* GPT_CUDA_TRACE=file: the decoding trace (TRACE below) */
} cuda_ctx;

static inline cuda_ctx *cuda_ctx_of(gpt_backend *be) { return (cuda_ctx *)be->ctx; }
static inline int cuda_bf16(const gpt_backend *be) { return be->precision == GPT_PREC_BF16; }

/* ---------------------------------------------------------- error checks */

/* Records a failed CUDA call; returns 1 if it failed. */
int cuda_check(gpt_backend *be, cudaError_t e, const char *what, const char *file, int line);
/* After a launch: records cudaGetLastError() if any; returns 1 if failed. */
int cuda_check_launch(gpt_backend *be, const char *kernel);
#define CUDA_CHECK(be, call) cuda_check((be), (call), #call, __FILE__, __LINE__)
#define CUDA_LAUNCHED(be, name) cuda_check_launch((be), (name))
/* A launcher refuses work once an error is recorded (the stream may be dead
 * and the first message is the one worth reading). */
#define CUDA_SKIP_IF_FAILED(be) \
    do {                         \
        if ((be)->err.code) return; \
    } while (0)

/* Largest power of two (<= 256) dividing the address. */
static inline unsigned cuda_ptr_align(const void *p) {
    uintptr_t a = (uintptr_t)p;
    unsigned r = 256;
    while (r > 1 && (a % r)) r >>= 1;
    return r;
}
static inline int cuda_aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }
static inline unsigned cuda_cdiv(size_t a, size_t b) { return (unsigned)((a + b - 1) / b); }

/* ------------------------------------------------------- element types */

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(bf16 x) { return __bfloat162float(x); }
template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 from_f<bf16>(float x) { return __float2bfloat16(x); }

/* N elements starting at p (N * sizeof(T) == 16 means one 16-byte access;
 * the caller guarantees the alignment). */
template <int N, typename T> __device__ __forceinline__ void load_f(float *f, const T *p) {
    if constexpr (N * sizeof(T) == 16) {
        int4 raw = *reinterpret_cast<const int4 *>(p);
        const T *e = reinterpret_cast<const T *>(&raw);
#pragma unroll
        for (int i = 0; i < N; i++) f[i] = to_f(e[i]);
    } else {
#pragma unroll
        for (int i = 0; i < N; i++) f[i] = to_f(p[i]);
    }
}
template <int N, typename T> __device__ __forceinline__ void store_f(T *p, const float *f) {
    if constexpr (N * sizeof(T) == 16) {
        int4 raw;
        T *e = reinterpret_cast<T *>(&raw);
#pragma unroll
        for (int i = 0; i < N; i++) e[i] = from_f<T>(f[i]);
        *reinterpret_cast<int4 *>(p) = raw;
    } else {
#pragma unroll
        for (int i = 0; i < N; i++) p[i] = from_f<T>(f[i]);
    }
}
/* Elements of T in one 16-byte vector. */
template <typename T> struct vec16 {
    static constexpr int n = 16 / sizeof(T);
};

/* The 16 bytes of a vector (any 16-byte type R: int4, uint4) as
 * 16 / sizeof(T) floats, and back. */
template <typename T, typename R> __device__ __forceinline__ void unpack_f(float *f, R raw) {
    static_assert(sizeof(R) == 16, "a 16-byte vector");
    const T *e = reinterpret_cast<const T *>(&raw);
#pragma unroll
    for (int i = 0; i < vec16<T>::n; i++) f[i] = to_f(e[i]);
}
template <typename T, typename R = int4> __device__ __forceinline__ R pack_f(const float *f) {
    static_assert(sizeof(R) == 16, "a 16-byte vector");
    R raw;
    T *e = reinterpret_cast<T *>(&raw);
#pragma unroll
    for (int i = 0; i < vec16<T>::n; i++) e[i] = from_f<T>(f[i]);
    return raw;
}

/* ------------------------------------------------- tensor-core helpers */

/* Shared-memory address of a generic pointer, for PTX operands. */
__device__ __forceinline__ uint32_t smem_u32(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}
/* c += a b, mma.sync m16n8k16 with bf16 operands and fp32 accumulators
 * (fragment layouts: attention_mma.cu's header). */
__device__ __forceinline__ void mma16816(float c[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                         uint32_t a3, uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
                 "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* ---------------------------------------------------------- reductions */

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
/* Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread
 * gets the result. Deterministic: fixed tree. Uses 33 floats of shm. */
__device__ __forceinline__ float block_sum(float v, float *shm) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* shm may still be read by a previous call */
    if (lane == 0) shm[w] = v;
    __syncthreads();
    v = lane < nw ? shm[lane] : 0.f;
    v = warp_sum(v);
    return v;
}
__device__ __forceinline__ float block_max(float v, float *shm) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) shm[w] = v;
    __syncthreads();
    v = lane < nw ? shm[lane] : -INFINITY;
    v = warp_max(v);
    return v;
}

/* --------------------------------------- programmatic dependent launch */

/* Decoding runs ~90 small kernels per token back to back, and a kernel's
 * launch (block scheduling, setup) then costs as much as its work. Hopper
 * lets a kernel launched with the programmatic-serialization attribute
 * start while its predecessor still runs: each such kernel first waits
 * for the predecessor's completion and memory (griddepcontrol.wait, a
 * no-op when launched normally) and then allows its own successor to be
 * scheduled (launch_dependents). Stream order is kept for everything a
 * kernel reads after its wait; what it reads before are backend.h's early
 * inputs, which the op just before never writes. */
__device__ __forceinline__ void pdl_wait_and_release() {
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
}

/* Launches kernel on the stream, programmatically dependent on the previous
 * kernel when pdl is set. */
template <typename... KArgs, typename... Args>
static inline cudaError_t launch_k(cudaStream_t st, int pdl, void (*kernel)(KArgs...), dim3 grid,
                                   dim3 block, size_t shm, Args... args) {
    cudaLaunchConfig_t cfg;
    cudaLaunchAttribute at[1];
    cfg.gridDim = grid, cfg.blockDim = block, cfg.dynamicSmemBytes = shm, cfg.stream = st;
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at;
    cfg.numAttrs = pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, kernel, static_cast<KArgs>(args)...);
}

/* The configuration of a launch that is a programmatic dependent of the
 * kernel before it and, when cluster has more than one block, a
 * thread-block cluster of that shape (the KV attention's key splits).
 * cfg points into at, which must live until the launch. */
static inline void pdl_cluster_config(cudaLaunchConfig_t *cfg, cudaLaunchAttribute at[2], dim3 grid,
                                      dim3 block, cudaStream_t st, dim3 cluster) {
    memset(cfg, 0, sizeof *cfg);
    memset(at, 0, 2 * sizeof *at);
    cfg->gridDim = grid, cfg->blockDim = block, cfg->stream = st;
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg->numAttrs = 1;
    if (cluster.x * cluster.y * cluster.z > 1) {
        at[1].id = cudaLaunchAttributeClusterDimension;
        at[1].val.clusterDim.x = cluster.x;
        at[1].val.clusterDim.y = cluster.y;
        at[1].val.clusterDim.z = cluster.z;
        cfg->numAttrs = 2;
    }
    cfg->attrs = at;
}

/* Work small enough to be latency-bound (decoding) takes the dependent launch. */
enum { CUDA_PDL_MAX_ROWS = 64 };

/* Decoding trace (GPT_CUDA_TRACE=file): block 0 of each traced kernel
 * stamps the global timer when it starts and when its wait for the
 * kernel before returns, as (time, tag | phase << 8 | extra << 16) pairs
 * after a count; bench/decode_trace.py turns them into each kernel's share
 * of the step. Each .cu file has its own copy of g_trace, set through its
 * TRACE_SETTER function by the backend (cuda_backend.cu); null = off. */
enum { TRACE_CAP = 1 << 20 };
enum { TR_SN = 1, TR_LN = 2, TR_ATTN = 3, TR_ARGMAX = 4 };
static __device__ unsigned long long *g_trace = nullptr;
#define TRACE(tag, phase, extra)                                                                  \
    do {                                                                                          \
        if (blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0 && threadIdx.x == 0 && g_trace) { \
            unsigned long long t_;                                                                \
            asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t_));                                \
            unsigned long long i_ = atomicAdd(g_trace, 1ull);                                     \
            if (i_ < TRACE_CAP) {                                                                 \
                g_trace[2 + 2 * i_] = t_;                                                         \
                g_trace[3 + 2 * i_] = (unsigned long long)(tag) | ((unsigned long long)(phase) << 8) | \
                                      ((unsigned long long)(extra) << 16);                        \
            }                                                                                     \
        }                                                                                         \
    } while (0)
#define TRACE_SETTER(name) \
    extern "C" cudaError_t name(void *p) { return cudaMemcpyToSymbol(g_trace, &p, sizeof p); }

/* GELU, tanh approximation (GPT-2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
__device__ __forceinline__ float gelu_f(float x) {
    const float k = 0.7978845608028654f;
    return 0.5f * x * (1.f + tanhf(k * (x + 0.044715f * x * x * x)));
}
__device__ __forceinline__ float gelu_grad_f(float x) {
    const float k = 0.7978845608028654f;
    float u = k * (x + 0.044715f * x * x * x);
    float th = tanhf(u);
    float sech2 = 1.f - th * th;
    return 0.5f * (1.f + th) + 0.5f * x * sech2 * k * (1.f + 3.f * 0.044715f * x * x);
}

/* --------------------------------------------------- ops of each file */

extern "C" {
/* decode.cu */
void cuda_argmax(gpt_backend *be, int *out, const void *logits, int N, int V, int Vp, int *pos,
                 int *hist, int S);
/* At creation: argmax's split-row workspace (zeroed). */
void cuda_argmax_setup(gpt_backend *be);
void cuda_copy(gpt_backend *be, void *dst, const void *src, size_t bytes);

/* misc.cu */
void cuda_gelu_forward(gpt_backend *be, void *out, const void *in, size_t n);
void cuda_add(gpt_backend *be, void *out, const void *a, const void *b, size_t n);
void cuda_sum_f32(gpt_backend *be, float *out, const float *in, size_t n, int accumulate);
long cuda_nonfinite_count(gpt_backend *be, const void *p, size_t n, int cls);
/* Unfused matmul epilogues (matmul.cu's fallback path). */
void cuda_bias_act(gpt_backend *be, void *out, void *pre, const void *y, const void *bias, int N,
                   int OC, int gelu);
void cuda_dgelu_inplace(gpt_backend *be, void *din, const void *pre, size_t n);
void cuda_bias_grad(gpt_backend *be, float *dbias, const void *dout, int N, int OC);
void cuda_add_f32(gpt_backend *be, float *dst, const float *src, int n);

/* encoder.cu */
void cuda_encoder_forward(gpt_backend *be, void *out, const int *tok, const int *pos0,
                          const void *wte, const void *wpe, int B, int T, int C, int Vp, int maxT);
void cuda_encoder_backward(gpt_backend *be, void *dwte, void *dwpe, const void *dout,
                           const int *tok, int B, int T, int C, int Vp);
size_t cuda_encoder_sort_bytes(size_t n, int Vp);

/* layernorm.cu */
void cuda_layernorm_forward(gpt_backend *be, void *out, float *mean, float *rstd, const void *x,
                            const void *w, const void *b, int N, int C, float eps);
void cuda_residual_layernorm_forward(gpt_backend *be, void *res, void *out, float *mean,
                                     float *rstd, const void *a, const void *b, const void *w,
                                     const void *bias, int N, int C, float eps);
void cuda_layernorm_backward(gpt_backend *be, void *dx, void *dw, void *db, const void *dout,
                             const void *x, const void *w, const float *mean, const float *rstd,
                             int N, int C);
size_t cuda_layernorm_scratch(const cudaDeviceProp *prop, int C);

/* gemv.cu: forward products of N <= 16 rows on the tensor cores. Returns 0
 * when the shape, precision or alignment is not one it takes (nothing
 * launched), else 1. */
int cuda_sn_matmul(gpt_backend *be, void *out, void *pre, const void *in, const void *w,
                   const void *bias, int N, int IC, int OC, int gelu);
/* backend.h's optional folded decoding products (same return rule). */
int cuda_matmul_ln_forward(gpt_backend *be, void *out, void *pre, const void *x, const void *lnw,
                           const void *lnb, float eps, const void *w, const void *bias, int N,
                           int IC, int OC, int gelu);
int cuda_matmul_residual_forward(gpt_backend *be, void *x, const void *in, const void *w,
                                 const void *bias, int N, int IC, int OC);

/* matmul.cu */
void cuda_matmul_forward(gpt_backend *be, void *out, void *pre, const void *in, const void *w,
                         const void *bias, int N, int IC, int OC, int gelu);
void cuda_matmul_backward(gpt_backend *be, void *din, void *dw, void *dbias, const void *dout,
                          const void *in, const void *w, const void *gelu_pre, int N, int IC,
                          int OC);
size_t cuda_matmul_scratch(int max_oc);
void cuda_matmul_cache_free(cuda_ctx *c);

/* attention.cu */
void cuda_attention_forward(gpt_backend *be, void *out, float *lse, const void *qkv, int B, int T,
                            int C, int NH);
void cuda_attention_backward(gpt_backend *be, void *dqkv, const void *dout, const void *qkv,
                             const void *out, const float *lse, int B, int T, int C, int NH);
void cuda_attention_kv_forward(gpt_backend *be, void *out, const void *qkv, void *kcache,
                               void *vcache, const int *pos0, int B, int Tq, int S, int C, int NH);
/* At creation: shared-memory limits; no key splits (clusters) where the
 * device refuses a cluster launched as a programmatic dependent. */
int cuda_attention_setup(gpt_backend *be);

/* crossentropy.cu */
void cuda_crossentropy(gpt_backend *be, float *losses, void *logits, const int *tgt, int N, int V,
                       int Vp, float dloss, int grad);
int cuda_crossentropy_setup(gpt_backend *be);

/* adamw.cu */
void cuda_sumsq(gpt_backend *be, float *out, const void *grad, size_t n);
void cuda_adamw(gpt_backend *be, void *params, float *master, void *grad, float *m, float *v,
                size_t n, size_t n_decay, const gpt_adamw_hyper *hyper, gpt_step_stats *stats);
size_t cuda_adamw_scratch(const cudaDeviceProp *prop);
}

#endif
