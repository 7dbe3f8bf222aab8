/*
 * matmul.cu - matrix products through cuBLASLt, bf16 (or fp32) operands and
 * fp32 accumulation, with the bias, GELU, GELU-derivative and bias-gradient
 * work folded into cuBLASLt's epilogues where it offers them.
 *
 * Row-major tensors seen as cuBLAS's column-major matrices (X (r,c)
 * row-major is X^T column-major):
 *   forward   out (N,OC) = in (N,IC) @ w^T  ->  D (OC x N) = op_T(w) * in
 *   din       din (N,IC) = dout @ w         ->  D (IC x N) = w * dout
 *   dw        dw (OC,IC) += dout^T @ in     ->  D (IC x OC) += in * op_T(dout)
 * so bias (OC) lies along D's rows in the forward (EPILOGUE_BIAS), and the
 * bias gradient is the reduction of dout over N, B's k dimension in the dw
 * product (EPILOGUE_BGRADB).
 *
 * cuBLASLt picks kernels assuming 256-byte aligned pointers unless told
 * otherwise; every problem sets the MIN_ALIGNMENT preferences from the real
 * pointers, and the heuristic sees the real bias/aux pointers. Descriptors
 * and the chosen algorithm are cached per problem (sizes, types, epilogue,
 * alignments), so a step issues no descriptor work after its first pass.
 *
 * When cuBLASLt has no algorithm for a fused epilogue (or the epilogue's
 * rules fail: aux leading dimension not a multiple of 8, a bias not 16-byte
 * aligned), the plain product runs and misc.cu's kernels do the rest.
 * Forward products of at most GEMV_MAXN rows (decoding) take our own
 * weight-streaming kernels instead of cuBLASLt: gemv.cu's tensor-core
 * kernel in bf16 (K a multiple of 32, 16-byte aligned operands), else the
 * CUDA-core gemv_kernel below.
 */
#include <string.h>

#include "cuda_common.cuh"

typedef struct {
    cudaDataType ab_t, d_t, bias_t;
    int transa, transb;
    int m, n, k, lda, ldb, ldd;
    cublasLtEpilogue_t epi;
    const void *a, *b;
    void *d;
    const void *bias;
    const void *aux;
    int aux_ld;
    float beta;
} lt_problem;

static void lt_key(const lt_problem *p, int key[20]) {
    memset(key, 0, 20 * sizeof(int));
    key[0] = p->ab_t, key[1] = p->d_t, key[2] = p->bias_t, key[3] = p->transa, key[4] = p->transb;
    key[5] = p->m, key[6] = p->n, key[7] = p->k, key[8] = p->lda, key[9] = p->ldb, key[10] = p->ldd;
    key[11] = (int)p->epi, key[12] = p->aux_ld, key[13] = p->beta != 0.f;
    key[14] = (int)cuda_ptr_align(p->a), key[15] = (int)cuda_ptr_align(p->b);
    key[16] = (int)cuda_ptr_align(p->d);
    key[17] = p->bias ? (int)cuda_ptr_align(p->bias) : 0;
    key[18] = p->aux ? (int)cuda_ptr_align(p->aux) : 0;
    key[19] = 1; /* a used entry never has an all-zero key */
}

static void lt_entry_free(cuda_lt_entry *e) {
    if (!e->used) return;
    if (e->desc) cublasLtMatmulDescDestroy(e->desc);
    if (e->a) cublasLtMatrixLayoutDestroy(e->a);
    if (e->b) cublasLtMatrixLayoutDestroy(e->b);
    if (e->c) cublasLtMatrixLayoutDestroy(e->c);
    memset(e, 0, sizeof *e);
}

extern "C" void cuda_matmul_cache_free(cuda_ctx *c) {
    for (int i = 0; i < CUDA_LT_CACHE; i++) lt_entry_free(&c->lt_cache[i]);
}

extern "C" size_t cuda_matmul_scratch(int max_oc) {
    return (size_t)CUDA_BIAS_GRAD_CHUNKS * (size_t)(max_oc > 0 ? max_oc : 1);
}

#define LT_OK(be, call) lt_ok((be), (call), #call)
static int lt_ok(gpt_backend *be, cublasStatus_t st, const char *what) {
    if (st == CUBLAS_STATUS_SUCCESS) return 1;
    gpt_backend_fail(be, GPT_ERR_RUNTIME, "cuBLASLt %s: %s", what, cublasGetStatusString(st));
    return 0;
}

static int set_ptrs(gpt_backend *be, cublasLtMatmulDesc_t d, const lt_problem *p) {
    if (p->bias && !LT_OK(be, cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                              &p->bias, sizeof p->bias)))
        return 0;
    if (p->aux && !LT_OK(be, cublasLtMatmulDescSetAttribute(
                                 d, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &p->aux,
                                 sizeof p->aux)))
        return 0;
    return 1;
}

/* Builds descriptors and asks the heuristic for an algorithm; e->ok = 0 if
 * there is none. Returns 0 on an API failure (recorded in be->err). */
static int lt_build(gpt_backend *be, cuda_lt_entry *e, const lt_problem *p) {
    cuda_ctx *c = cuda_ctx_of(be);
    cublasOperation_t ta = p->transa ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t tb = p->transb ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasLtEpilogue_t epi = p->epi;
    if (!LT_OK(be, cublasLtMatmulDescCreate(&e->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F)) ||
        !LT_OK(be, cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta,
                                                  sizeof ta)) ||
        !LT_OK(be, cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb,
                                                  sizeof tb)) ||
        !LT_OK(be, cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi,
                                                  sizeof epi)))
        return 0;
    if (p->bias) {
        int32_t bt = p->bias_t;
        if (!LT_OK(be, cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                      &bt, sizeof bt)))
            return 0;
    }
    if (p->aux) {
        int64_t ld = p->aux_ld;
        if (!LT_OK(be, cublasLtMatmulDescSetAttribute(e->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD,
                                                      &ld, sizeof ld)))
            return 0;
    }
    if (!set_ptrs(be, e->desc, p)) return 0;
    uint64_t ar = p->transa ? p->k : p->m, ac = p->transa ? p->m : p->k;
    uint64_t br = p->transb ? p->n : p->k, bc = p->transb ? p->k : p->n;
    if (!LT_OK(be, cublasLtMatrixLayoutCreate(&e->a, p->ab_t, ar, ac, p->lda)) ||
        !LT_OK(be, cublasLtMatrixLayoutCreate(&e->b, p->ab_t, br, bc, p->ldb)) ||
        !LT_OK(be, cublasLtMatrixLayoutCreate(&e->c, p->d_t, p->m, p->n, p->ldd)))
        return 0;
    cublasLtMatmulPreference_t pref = NULL;
    if (!LT_OK(be, cublasLtMatmulPreferenceCreate(&pref))) return 0;
    uint32_t al_a = cuda_ptr_align(p->a), al_b = cuda_ptr_align(p->b), al_d = cuda_ptr_align(p->d);
    int ok = LT_OK(be, cublasLtMatmulPreferenceSetAttribute(
                           pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &c->lt_ws_bytes,
                           sizeof c->lt_ws_bytes)) &&
             LT_OK(be, cublasLtMatmulPreferenceSetAttribute(
                           pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a)) &&
             LT_OK(be, cublasLtMatmulPreferenceSetAttribute(
                           pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b)) &&
             LT_OK(be, cublasLtMatmulPreferenceSetAttribute(
                           pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof al_d)) &&
             LT_OK(be, cublasLtMatmulPreferenceSetAttribute(
                           pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof al_d));
    if (ok) {
        cublasLtMatmulHeuristicResult_t res;
        int found = 0;
        memset(&res, 0, sizeof res);
        cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(c->lt, e->desc, e->a, e->b, e->c, e->c,
                                                           pref, 1, &res, &found);
        /* NOT_SUPPORTED (or no result) means: no kernel for this epilogue,
         * type or alignment; the caller takes the unfused path. */
        e->ok = st == CUBLAS_STATUS_SUCCESS && found > 0 && res.state == CUBLAS_STATUS_SUCCESS;
        if (e->ok) e->algo = res.algo;
    }
    cublasLtMatmulPreferenceDestroy(pref);
    return ok;
}

/* Runs p; returns 1 if it ran, 0 if cuBLASLt has no algorithm for it (or
 * an error was recorded). */
static int lt_run(gpt_backend *be, const lt_problem *p) {
    cuda_ctx *c = cuda_ctx_of(be);
    if (be->err.code) return 0;
    int key[20];
    lt_key(p, key);
    cuda_lt_entry *e = NULL;
    for (int i = 0; i < CUDA_LT_CACHE && !e; i++)
        if (c->lt_cache[i].used && !memcmp(c->lt_cache[i].key, key, sizeof key)) e = &c->lt_cache[i];
    if (!e) {
        static unsigned victim;
        for (int i = 0; i < CUDA_LT_CACHE && !e; i++)
            if (!c->lt_cache[i].used) e = &c->lt_cache[i];
        if (!e) {
            e = &c->lt_cache[victim++ % CUDA_LT_CACHE];
            lt_entry_free(e);
        }
        e->used = 1;
        memcpy(e->key, key, sizeof key);
        if (!lt_build(be, e, p)) {
            lt_entry_free(e);
            return 0;
        }
    }
    if (!e->ok) return 0;
    if (!set_ptrs(be, e->desc, p)) return 0;
    float alpha = 1.f, beta = p->beta;
    return LT_OK(be, cublasLtMatmul(c->lt, e->desc, &alpha, p->a, e->a, p->b, e->b, &beta, p->d, e->c,
                                    p->d, e->c, &e->algo, c->lt_ws, c->lt_ws_bytes, c->stream));
}

static void no_algo(gpt_backend *be, const char *what, const lt_problem *p) {
    if (!be->err.code)
        gpt_backend_fail(be, GPT_ERR_RUNTIME, "cuBLASLt has no algorithm for %s (m=%d n=%d k=%d)",
                         what, p->m, p->n, p->k);
}

static int mm_shape_ok(gpt_backend *be, const char *op, int N, int IC, int OC) {
    if (N < 0 || IC < 1 || OC < 1) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "cuda %s: bad shape N=%d IC=%d OC=%d", op, N, IC, OC);
        return 0;
    }
    return N > 0;
}

/* ------------------------------------------------ small N (decoding) */

/* With few rows (decoding: N = batch) a product reads the whole weight once
 * to produce a handful of outputs. cuBLASLt tiles it into OC/128 blocks,
 * too few to pull the weights at the card's bandwidth; here one warp per
 * output column spreads the rows of w over every SM. Each lane keeps the
 * dot products of all N inputs with its slice of the row, then the warp
 * reduces them; bias and GELU are applied in fp32 before rounding, as in
 * cuBLASLt's epilogue. */
enum { GEMV_MAXN = 16, GEMV_WARPS = 8 };

template <typename T, int VEC>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
    gemv_kernel(T *out, T *pre, const T *in, const T *w, const T *bias, int N, int IC, int OC,
                int gelu) {
    pdl_wait_and_release();
    int o = blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (o >= OC) return;
    float acc[GEMV_MAXN];
#pragma unroll
    for (int n = 0; n < GEMV_MAXN; n++) acc[n] = 0.f;
    const T *wr = w + (size_t)o * IC;
    /* U chunks of the row per round: their loads are all in flight at once
     * (a row of 768 bf16 is one round) */
    constexpr int U = 4;
    for (int c0 = lane * VEC; c0 < IC; c0 += 32 * VEC * U) {
        float wv[U][VEC];
#pragma unroll
        for (int u = 0; u < U; u++) {
            int c = c0 + u * 32 * VEC;
            if (c < IC)
                load_f<VEC>(wv[u], wr + c);
            else
#pragma unroll
                for (int k = 0; k < VEC; k++) wv[u][k] = 0.f;
        }
#pragma unroll
        for (int n = 0; n < GEMV_MAXN; n++) {
            if (n >= N) break;
            float d = 0.f;
#pragma unroll
            for (int u = 0; u < U; u++) {
                int c = c0 + u * 32 * VEC;
                if (c < IC) {
                    float iv[VEC];
                    load_f<VEC>(iv, in + (size_t)n * IC + c);
#pragma unroll
                    for (int k = 0; k < VEC; k++) d += wv[u][k] * iv[k];
                }
            }
            acc[n] += d;
        }
    }
#pragma unroll
    for (int n = 0; n < GEMV_MAXN; n++) {
        if (n >= N) break;
        float y = warp_sum(acc[n]);
        if (lane == 0) {
            if (bias) y += to_f(bias[o]);
            size_t at = (size_t)n * OC + o;
            if (gelu) {
                if (pre) pre[at] = from_f<T>(y);
                out[at] = from_f<T>(gelu_f(y));
            } else {
                out[at] = from_f<T>(y);
            }
        }
    }
}

template <typename T>
static void gemv_t(gpt_backend *be, T *out, T *pre, const T *in, const T *w, const T *bias, int N,
                   int IC, int OC, int gelu) {
    constexpr int V = vec16<T>::n;
    cudaStream_t st = cuda_ctx_of(be)->stream;
    unsigned grid = cuda_cdiv(OC, GEMV_WARPS);
    cudaError_t e;
    if (IC % V == 0 && cuda_aligned16(in) && cuda_aligned16(w))
        e = launch_k(st, 1, gemv_kernel<T, V>, grid, GEMV_WARPS * 32, 0, out, pre, in, w, bias, N, IC,
                     OC, gelu);
    else
        e = launch_k(st, 1, gemv_kernel<T, 1>, grid, GEMV_WARPS * 32, 0, out, pre, in, w, bias, N, IC,
                     OC, gelu);
    if (!CUDA_CHECK(be, e)) CUDA_LAUNCHED(be, "matmul_forward (small N)");
}

extern "C" void cuda_matmul_forward(gpt_backend *be, void *out, void *pre, const void *in,
                                    const void *w, const void *bias, int N, int IC, int OC,
                                    int gelu) {
    CUDA_SKIP_IF_FAILED(be);
    cuda_ctx *c = cuda_ctx_of(be);
    if (!mm_shape_ok(be, "matmul_forward", N, IC, OC)) return;
    if (!gelu) pre = NULL;
    if (N <= GEMV_MAXN && cuda_sn_matmul(be, out, pre, in, w, bias, N, IC, OC, gelu)) return;
    if (N <= GEMV_MAXN) {
        if (cuda_bf16(be))
            gemv_t(be, (bf16 *)out, (bf16 *)pre, (const bf16 *)in, (const bf16 *)w,
                   (const bf16 *)bias, N, IC, OC, gelu);
        else
            gemv_t(be, (float *)out, (float *)pre, (const float *)in, (const float *)w,
                   (const float *)bias, N, IC, OC, gelu);
        return;
    }
    cudaDataType t = cuda_bf16(be) ? CUDA_R_16BF : CUDA_R_32F;
    lt_problem p;
    memset(&p, 0, sizeof p);
    p.ab_t = t, p.d_t = t, p.bias_t = t;
    p.transa = 1, p.transb = 0;
    p.m = OC, p.n = N, p.k = IC, p.lda = IC, p.ldb = IC, p.ldd = OC;
    p.a = w, p.b = in, p.d = out;
    p.beta = 0.f;
    int fuse = !c->no_epilogue && (!bias || cuda_aligned16(bias)) &&
               (!pre || (OC % 8 == 0 && cuda_aligned16(pre)));
    if (fuse) {
        p.bias = bias;
        if (gelu) {
            p.aux = pre, p.aux_ld = pre ? OC : 0;
            p.epi = pre ? (bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX)
                        : (bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU);
        } else {
            p.epi = bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
        }
        if (lt_run(be, &p) || be->err.code) return;
    }
    /* unfused: y = in @ w^T into pre (or out), then bias and GELU */
    p.epi = CUBLASLT_EPILOGUE_DEFAULT, p.bias = NULL, p.aux = NULL, p.aux_ld = 0;
    p.d = pre ? pre : out;
    if (!lt_run(be, &p)) {
        no_algo(be, "matmul_forward", &p);
        return;
    }
    if (bias || gelu) cuda_bias_act(be, out, pre, p.d, bias, N, OC, gelu);
}

extern "C" void cuda_matmul_backward(gpt_backend *be, void *din, void *dw, void *dbias,
                                     const void *dout, const void *in, const void *w,
                                     const void *gelu_pre, int N, int IC, int OC) {
    CUDA_SKIP_IF_FAILED(be);
    cuda_ctx *c = cuda_ctx_of(be);
    if (!mm_shape_ok(be, "matmul_backward", N, IC, OC)) return;
    cudaDataType t = cuda_bf16(be) ? CUDA_R_16BF : CUDA_R_32F;
    lt_problem p;
    if (din) {
        memset(&p, 0, sizeof p);
        p.ab_t = t, p.d_t = t;
        p.transa = 0, p.transb = 0;
        p.m = IC, p.n = N, p.k = OC, p.lda = IC, p.ldb = OC, p.ldd = IC;
        p.a = w, p.b = dout, p.d = din;
        int ran = 0;
        if (gelu_pre && !c->no_epilogue && IC % 8 == 0 && cuda_aligned16(gelu_pre)) {
            p.epi = CUBLASLT_EPILOGUE_DGELU, p.aux = gelu_pre, p.aux_ld = IC;
            ran = lt_run(be, &p);
            if (be->err.code) return;
        }
        if (!ran) {
            p.epi = CUBLASLT_EPILOGUE_DEFAULT, p.aux = NULL, p.aux_ld = 0;
            if (!lt_run(be, &p)) {
                no_algo(be, "matmul_backward (input gradient)", &p);
                return;
            }
            if (gelu_pre) cuda_dgelu_inplace(be, din, gelu_pre, (size_t)N * IC);
        }
    }
    int bias_done = !dbias;
    if (dw) {
        memset(&p, 0, sizeof p);
        p.ab_t = t, p.d_t = CUDA_R_32F, p.bias_t = CUDA_R_32F;
        p.transa = 0, p.transb = 1;
        p.m = IC, p.n = OC, p.k = N, p.lda = IC, p.ldb = OC, p.ldd = IC;
        p.a = in, p.b = dout, p.d = dw;
        p.beta = 1.f;
        int ran = 0;
        /* BGRADB overwrites its output: it goes to scratch, then dbias += it */
        if (dbias && !c->no_epilogue && (size_t)OC <= c->scratch_elems) {
            p.epi = CUBLASLT_EPILOGUE_BGRADB, p.bias = c->scratch;
            ran = lt_run(be, &p);
            if (be->err.code) return;
            if (ran) {
                cuda_add_f32(be, (float *)dbias, c->scratch, OC);
                bias_done = 1;
            }
        }
        if (!ran) {
            p.epi = CUBLASLT_EPILOGUE_DEFAULT, p.bias = NULL;
            if (!lt_run(be, &p)) {
                no_algo(be, "matmul_backward (weight gradient)", &p);
                return;
            }
        }
    }
    if (!bias_done) cuda_bias_grad(be, (float *)dbias, dout, N, OC);
}
