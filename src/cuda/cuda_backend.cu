/*
 * cuda_backend.cu - the CUDA backend's table and everything that is not an
 * op family: the context (one device, one non-blocking stream, a cuBLASLt
 * handle), workspaces sized by reserve(), memory with fp32 <-> bf16
 * conversion on upload and download, host-wait counting, CUDA-event
 * timers, and CUDA-graph capture and replay behind graph_begin/graph_end.
 *
 * Host waits: only download, sync, nonfinite_count and timer_elapsed_ms
 * wait for the device, and each adds one to be->syncs. Uploads copy from
 * pageable host memory, which the driver stages before returning, so the
 * caller may reuse the source at once without a device wait.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_common.cuh"

/* ------------------------------------------------------------ checking */

int cuda_check(gpt_backend *be, cudaError_t e, const char *what, const char *file, int line) {
    if (e == cudaSuccess) return 0;
    gpt_backend_fail(be, GPT_ERR_RUNTIME, "CUDA error %s (%s) in %s at %s:%d", cudaGetErrorName(e),
                     cudaGetErrorString(e), what, file, line);
    return 1;
}

int cuda_check_launch(gpt_backend *be, const char *kernel) {
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) return 0;
    gpt_backend_fail(be, GPT_ERR_RUNTIME, "CUDA kernel %s failed to launch: %s (%s)", kernel,
                     cudaGetErrorName(e), cudaGetErrorString(e));
    return 1;
}

/* ------------------------------------------------------------ lifetime */

static void drop_graphs(cuda_ctx *c) {
    for (int i = 0; i < c->n_graphs; i++) cudaGraphExecDestroy(c->graphs[i].exec);
    c->n_graphs = 0;
}

static void free_workspaces(cuda_ctx *c) {
    cudaFree(c->scratch);
    cudaFree(c->attn_dq);
    cudaFree(c->attn_dd);
    cudaFree(c->enc_sort);
    cudaFree(c->enc_tmp);
    c->scratch = NULL, c->attn_dq = NULL, c->attn_dd = NULL, c->enc_sort = NULL, c->enc_tmp = NULL;
    c->scratch_elems = c->attn_dq_elems = c->attn_dd_elems = c->enc_n = c->enc_tmp_bytes = 0;
    for (int i = 0; i < c->n_timers; i++) cudaEventDestroy(c->timers[i]);
    free(c->timers);
    c->timers = NULL;
    c->n_timers = 0;
    c->reserved = 0;
}

extern "C" cudaError_t cuda_trace_set_gemv(void *p);
extern "C" cudaError_t cuda_trace_set_ln(void *p);
extern "C" cudaError_t cuda_trace_set_attn(void *p);
extern "C" cudaError_t cuda_trace_set_decode(void *p);

/* Points the traced kernels of every .cu file at p (NULL: off). */
static int trace_set_all(void *p) {
    return cuda_trace_set_gemv(p) == cudaSuccess && cuda_trace_set_ln(p) == cudaSuccess &&
           cuda_trace_set_attn(p) == cudaSuccess && cuda_trace_set_decode(p) == cudaSuccess;
}

/* Writes the decoding trace to $GPT_CUDA_TRACE and turns it off; a
 * diagnostic, so failures only lose the trace. */
static void trace_finish(cuda_ctx *c) {
    unsigned long long n = 0;
    if (cudaMemcpy(&n, c->trace_buf, 8, cudaMemcpyDeviceToHost) == cudaSuccess) {
        if (n > TRACE_CAP) n = TRACE_CAP;
        size_t words = 2 + 2 * (size_t)n;
        unsigned long long *h = (unsigned long long *)malloc(words * 8);
        const char *path = getenv("GPT_CUDA_TRACE");
        FILE *f = h && path ? fopen(path, "wb") : NULL;
        if (f && cudaMemcpy(h, c->trace_buf, words * 8, cudaMemcpyDeviceToHost) == cudaSuccess)
            fwrite(h, 8, words, f);
        if (f) fclose(f);
        free(h);
    }
    cudaGetLastError();
    trace_set_all(NULL);
    cudaFree(c->trace_buf);
    c->trace_buf = NULL;
}

static void cu_destroy(gpt_backend *be) {
    if (!be) return;
    cuda_ctx *c = cuda_ctx_of(be);
    if (c) {
        if (c->stream) cudaStreamSynchronize(c->stream);
        if (c->trace_buf) trace_finish(c);
        drop_graphs(c);
        free_workspaces(c);
        cuda_matmul_cache_free(c);
        cudaFree(c->lt_ws);
        cudaFree(c->counter);
        cudaFree(c->am_ws);
        if (c->lt) cublasLtDestroy(c->lt);
        if (c->stream) cudaStreamDestroy(c->stream);
        free(c->host_buf);
        if (c->pinned_buf) cudaFreeHost(c->pinned_buf);
        free(c);
    }
    free(be);
}

static const char *cu_device_desc(gpt_backend *be) { return cuda_ctx_of(be)->desc; }

static void *cu_stream(gpt_backend *be) { return (void *)cuda_ctx_of(be)->stream; }

static int cu_mem_info(gpt_backend *be, size_t *free_bytes, size_t *total_bytes) {
    size_t f = 0, t = 0;
    if (CUDA_CHECK(be, cudaMemGetInfo(&f, &t))) return be->err.code;
    if (free_bytes) *free_bytes = f;
    if (total_bytes) *total_bytes = t;
    return 0;
}

/* Workspace sizes for shape s, in one place so that workspace_bytes and
 * reserve agree. */
typedef struct {
    size_t scratch_elems, dq_elems, dd_elems, enc_n, enc_tmp_bytes;
} ws_plan;

static ws_plan plan_workspaces(const cuda_ctx *c, const gpt_shape *s) {
    ws_plan p;
    memset(&p, 0, sizeof p);
    size_t BT = (size_t)s->B * s->T;
    size_t sc = cuda_adamw_scratch(&c->prop);
    if (s->train) {
        int max_oc = s->C * 3;
        if (s->F > max_oc) max_oc = s->F;
        if (s->Vp > max_oc) max_oc = s->Vp;
        size_t ln = cuda_layernorm_scratch(&c->prop, s->C);
        size_t mm = cuda_matmul_scratch(max_oc);
        if (ln > sc) sc = ln;
        if (mm > sc) sc = mm;
        p.dq_elems = BT * s->C;
        p.dd_elems = BT * s->NH;
        p.enc_n = BT;
        p.enc_tmp_bytes = cuda_encoder_sort_bytes(BT, s->Vp);
    }
    p.scratch_elems = sc;
    return p;
}

static size_t cu_workspace_bytes(gpt_backend *be, const gpt_shape *s) {
    cuda_ctx *c = cuda_ctx_of(be);
    ws_plan p = plan_workspaces(c, s);
    return c->lt_ws_bytes + p.scratch_elems * 4 + p.dq_elems * 4 + p.dd_elems * 4 +
           p.enc_n * 4 * sizeof(int) + p.enc_tmp_bytes;
}

static int alloc_ws(gpt_backend *be, void **p, size_t bytes, const char *what) {
    if (!bytes) return 0;
    cudaError_t e = cudaMalloc(p, bytes);
    if (e != cudaSuccess) {
        cudaGetLastError();
        *p = NULL;
        gpt_backend_fail(be, GPT_ERR_NOMEM,
                         "CUDA out of memory: %s workspace of %zu bytes; try a smaller batch "
                         "or sequence length",
                         what, bytes);
        return 1;
    }
    /* Start from zeros: the contents never matter to the results, but
     * cuBLASLt's split-K reduction reads workspace its GEMM kernels wrote
     * with TMA stores, which compute-sanitizer's initcheck cannot see; a
     * cleared workspace keeps those false reports out of its output. */
    if (cudaMemset(*p, 0, bytes) != cudaSuccess) {
        cudaGetLastError();
        gpt_backend_fail(be, GPT_ERR_RUNTIME, "cannot clear the %s workspace", what);
        return 1;
    }
    return 0;
}

static int cu_reserve(gpt_backend *be, const gpt_shape *s) {
    cuda_ctx *c = cuda_ctx_of(be);
    if (be->err.code) return be->err.code;
    if (!s || s->B < 1 || s->T < 1 || s->C < 1 || s->NH < 1 || s->C % s->NH) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "cuda reserve: invalid shape");
        return be->err.code;
    }
    if (CUDA_CHECK(be, cudaStreamSynchronize(c->stream))) return be->err.code;
    be->syncs++;
    drop_graphs(c);
    free_workspaces(c);
    ws_plan p = plan_workspaces(c, s);
    if (alloc_ws(be, (void **)&c->scratch, p.scratch_elems * 4, "reduction") ||
        alloc_ws(be, (void **)&c->attn_dq, p.dq_elems * 4, "attention") ||
        alloc_ws(be, (void **)&c->attn_dd, p.dd_elems * 4, "attention") ||
        alloc_ws(be, (void **)&c->enc_sort, p.enc_n * 4 * sizeof(int), "encoder") ||
        alloc_ws(be, &c->enc_tmp, p.enc_tmp_bytes, "encoder")) {
        free_workspaces(c);
        return be->err.code;
    }
    c->scratch_elems = p.scratch_elems;
    c->attn_dq_elems = p.dq_elems;
    c->attn_dd_elems = p.dd_elems;
    c->enc_n = p.enc_n;
    c->enc_tmp_bytes = p.enc_tmp_bytes;
    /* The fast attention backward keeps its dq accumulator at zero between
     * calls (it clears what it used); start from zero. */
    if (c->attn_dq && CUDA_CHECK(be, cudaMemset(c->attn_dq, 0, p.dq_elems * 4))) return be->err.code;
    if (s->n_timers > 0) {
        c->timers = (cudaEvent_t *)calloc((size_t)s->n_timers, sizeof(cudaEvent_t));
        if (!c->timers) {
            gpt_backend_fail(be, GPT_ERR_NOMEM, "out of host memory for timers");
            return be->err.code;
        }
        for (int i = 0; i < s->n_timers; i++) {
            if (CUDA_CHECK(be, cudaEventCreate(&c->timers[i]))) return be->err.code;
            c->n_timers = i + 1;
        }
    }
    c->shape = *s;
    c->reserved = 1;
    return 0;
}

/* -------------------------------------------------------------- memory */

static void *cu_alloc(gpt_backend *be, size_t bytes) {
    void *p = NULL;
    if (be->err.code) return NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* an allocation failure is not sticky: clear it */
        size_t f = 0, t = 0;
        cudaMemGetInfo(&f, &t);
        gpt_backend_fail(be, GPT_ERR_NOMEM,
                         "CUDA out of memory allocating %zu bytes (%zu of %zu bytes free); try a "
                         "smaller batch, a shorter sequence or --recompute",
                         bytes, f, t);
        return NULL;
    }
    return p;
}

static void cu_free(gpt_backend *be, void *p) {
    if (p) CUDA_CHECK(be, cudaFree(p));
}

static void cu_memset0(gpt_backend *be, void *p, size_t bytes) {
    CUDA_SKIP_IF_FAILED(be);
    if (!bytes) return;
    CUDA_CHECK(be, cudaMemsetAsync(p, 0, bytes, cuda_ctx_of(be)->stream));
}

/* Host staging buffer for conversions, grown on demand. */
static void *host_staging(gpt_backend *be, size_t bytes) {
    cuda_ctx *c = cuda_ctx_of(be);
    if (c->host_bytes < bytes) {
        void *p = realloc(c->host_buf, bytes);
        if (!p) {
            gpt_backend_fail(be, GPT_ERR_NOMEM, "out of host memory (%zu bytes staging)", bytes);
            return NULL;
        }
        c->host_buf = p, c->host_bytes = bytes;
    }
    return c->host_buf;
}

/* Pinned staging for downloads, grown on demand: the copy then runs at
 * full speed straight into it (a download waits anyway, so one buffer is
 * never in use twice). Uploads stay on pageable memory, which the driver
 * stages before returning, so that their source can be reused at once. */
static void *pinned_staging(gpt_backend *be, size_t bytes) {
    cuda_ctx *c = cuda_ctx_of(be);
    if (c->pinned_bytes < bytes) {
        if (c->pinned_buf) cudaFreeHost(c->pinned_buf);
        c->pinned_buf = NULL, c->pinned_bytes = 0;
        if (cudaHostAlloc(&c->pinned_buf, bytes, cudaHostAllocDefault) != cudaSuccess) {
            cudaGetLastError();
            c->pinned_buf = NULL;
            return host_staging(be, bytes);
        }
        c->pinned_bytes = bytes;
    }
    return c->pinned_buf;
}

static int converts(gpt_backend *be, int cls) {
    return cuda_bf16(be) && (cls == GPT_CLS_PARAM || cls == GPT_CLS_ACT);
}

static void cu_upload(gpt_backend *be, void *dst, const void *src, size_t n, int cls) {
    cuda_ctx *c = cuda_ctx_of(be);
    CUDA_SKIP_IF_FAILED(be);
    if (!n) return;
    if (cls < 0 || cls >= GPT_CLS_COUNT) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "cuda upload: bad class %d", cls);
        return;
    }
    if (converts(be, cls)) {
        bf16 *h = (bf16 *)host_staging(be, n * sizeof(bf16));
        if (!h) return;
        const float *f = (const float *)src;
        for (size_t i = 0; i < n; i++) h[i] = __float2bfloat16(f[i]);
        CUDA_CHECK(be, cudaMemcpyAsync(dst, h, n * sizeof(bf16), cudaMemcpyHostToDevice, c->stream));
    } else {
        CUDA_CHECK(be, cudaMemcpyAsync(dst, src, n * 4, cudaMemcpyHostToDevice, c->stream));
    }
}

static void cu_download(gpt_backend *be, void *dst, const void *src, size_t n, int cls) {
    cuda_ctx *c = cuda_ctx_of(be);
    if (!n) return;
    if (be->err.code || cls < 0 || cls >= GPT_CLS_COUNT) {
        if (!be->err.code) gpt_backend_fail(be, GPT_ERR_INVALID, "cuda download: bad class %d", cls);
        memset(dst, 0, n * 4);
        return;
    }
    be->syncs++;
    if (converts(be, cls)) {
        bf16 *h = (bf16 *)pinned_staging(be, n * sizeof(bf16));
        if (!h) return;
        if (CUDA_CHECK(be, cudaMemcpyAsync(h, src, n * sizeof(bf16), cudaMemcpyDeviceToHost,
                                           c->stream)) ||
            CUDA_CHECK(be, cudaStreamSynchronize(c->stream))) {
            memset(dst, 0, n * 4);
            return;
        }
        /* bf16 is the top half of an fp32: a shift, which the compiler
         * vectorises (decoding converts B x Vp logits per token) */
        const uint16_t *hb = (const uint16_t *)h;
        uint32_t *f = (uint32_t *)dst;
        for (size_t i = 0; i < n; i++) f[i] = (uint32_t)hb[i] << 16;
    } else {
        if (CUDA_CHECK(be, cudaMemcpyAsync(dst, src, n * 4, cudaMemcpyDeviceToHost, c->stream)) ||
            CUDA_CHECK(be, cudaStreamSynchronize(c->stream)))
            memset(dst, 0, n * 4);
    }
}

static int cu_sync(gpt_backend *be) {
    cuda_ctx *c = cuda_ctx_of(be);
    be->syncs++;
    CUDA_CHECK(be, cudaStreamSynchronize(c->stream));
    /* Errors of kernels that ran asynchronously surface here. */
    CUDA_CHECK(be, cudaGetLastError());
    return be->err.code;
}

/* -------------------------------------------------------------- timers */

static void cu_timer_record(gpt_backend *be, int slot) {
    cuda_ctx *c = cuda_ctx_of(be);
    CUDA_SKIP_IF_FAILED(be);
    if (slot < 0 || slot >= c->n_timers) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "cuda timer slot %d outside [0, %d)", slot,
                         c->n_timers);
        return;
    }
    if (c->capturing >= 0)
        CUDA_CHECK(be, cudaEventRecordWithFlags(c->timers[slot], c->stream, cudaEventRecordExternal));
    else
        CUDA_CHECK(be, cudaEventRecord(c->timers[slot], c->stream));
}

static double cu_timer_elapsed_ms(gpt_backend *be, int from, int to) {
    cuda_ctx *c = cuda_ctx_of(be);
    if (be->err.code) return 0;
    if (from < 0 || to < 0 || from >= c->n_timers || to >= c->n_timers) {
        gpt_backend_fail(be, GPT_ERR_INVALID, "cuda timer slots %d, %d outside [0, %d)", from, to,
                         c->n_timers);
        return 0;
    }
    be->syncs++;
    float ms = 0;
    if (CUDA_CHECK(be, cudaEventSynchronize(c->timers[to])) ||
        CUDA_CHECK(be, cudaEventElapsedTime(&ms, c->timers[from], c->timers[to])))
        return 0;
    return ms;
}

/* -------------------------------------------------------------- graphs */

static int cu_graph_begin(gpt_backend *be, int id) {
    cuda_ctx *c = cuda_ctx_of(be);
    if (be->err.code) return 0;
    if (c->capturing >= 0) {
        gpt_backend_fail(be, GPT_ERR_RUNTIME, "graph %d begun while graph %d is recording", id,
                         c->capturing);
        return 0;
    }
    for (int i = 0; i < c->n_graphs; i++)
        if (c->graphs[i].id == id) {
            c->graphs[i].used = ++c->graph_clock;
            if (CUDA_CHECK(be, cudaGraphLaunch(c->graphs[i].exec, c->stream))) return 0;
            return 1;
        }
    if (c->n_graphs == CUDA_MAX_GRAPHS) {
        /* The model takes new ids when its buffers move: the least recently
         * launched graph is the one most likely to hold stale pointers. */
        int lru = 0;
        for (int i = 1; i < c->n_graphs; i++)
            if (c->graphs[i].used < c->graphs[lru].used) lru = i;
        if (CUDA_CHECK(be, cudaGraphExecDestroy(c->graphs[lru].exec))) return 0;
        c->graphs[lru] = c->graphs[--c->n_graphs];
    }
    if (CUDA_CHECK(be, cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal))) return 0;
    c->capturing = id;
    return 0;
}

static void cu_graph_end(gpt_backend *be, int id) {
    cuda_ctx *c = cuda_ctx_of(be);
    if (c->capturing < 0 || c->capturing != id) return; /* nothing recorded (eager run) */
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(c->stream, &g);
    c->capturing = -1;
    if (e != cudaSuccess || be->err.code || !g) {
        if (g) cudaGraphDestroy(g);
        cudaGetLastError();
        if (!be->err.code)
            gpt_backend_fail(be, GPT_ERR_RUNTIME, "recording graph %d failed: %s", id,
                             cudaGetErrorString(e));
        return;
    }
    cudaGraphExec_t exec = NULL;
    e = cudaGraphInstantiate(&exec, g, 0);
    cudaGraphDestroy(g);
    if (CUDA_CHECK(be, e)) return;
    c->graphs[c->n_graphs].id = id;
    c->graphs[c->n_graphs].used = ++c->graph_clock;
    c->graphs[c->n_graphs].exec = exec;
    c->n_graphs++;
    CUDA_CHECK(be, cudaGraphLaunch(exec, c->stream));
}

/* --------------------------------------------------------------- table */

static const gpt_backend_ops cuda_ops = {
    cu_destroy,
    cu_device_desc,
    cu_mem_info,
    cu_workspace_bytes,
    cu_reserve,
    cu_alloc,
    cu_free,
    cu_memset0,
    cu_upload,
    cu_download,
    cu_sync,
    cu_stream,
    cuda_encoder_forward,
    cuda_layernorm_forward,
    cuda_residual_layernorm_forward,
    cuda_matmul_forward,
    cuda_gelu_forward,
    cuda_add,
    cuda_attention_forward,
    cuda_attention_kv_forward,
    cuda_crossentropy,
    cuda_sum_f32,
    cuda_encoder_backward,
    cuda_layernorm_backward,
    cuda_matmul_backward,
    cuda_attention_backward,
    cuda_sumsq,
    cuda_adamw,
    cuda_nonfinite_count,
    cu_timer_record,
    cu_timer_elapsed_ms,
    cu_graph_begin,
    cu_graph_end,
    cuda_argmax,
    cuda_copy,
    cuda_matmul_ln_forward,
    cuda_matmul_residual_forward,
};

static int env_int(const char *name, int dflt) {
    const char *v = getenv(name);
    return v && *v ? atoi(v) : dflt;
}

static int env_flag(const char *name) {
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

extern "C" int gpt_cuda_backend_probe(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    if (n < 1) return 0;
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return p.major >= 9;
}

extern "C" int gpt_cuda_backend_create(gpt_backend **out, const gpt_runtime *rt, gpt_error *err) {
    *out = NULL;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n < 1) {
        cudaGetLastError();
        if (err) {
            err->code = GPT_ERR_INVALID;
            snprintf(err->msg, sizeof err->msg,
                     "no usable CUDA device (%s); use --device cpu",
                     e != cudaSuccess ? cudaGetErrorString(e) : "none found");
        }
        return GPT_ERR_INVALID;
    }
    gpt_backend *be = (gpt_backend *)calloc(1, sizeof *be);
    cuda_ctx *c = (cuda_ctx *)calloc(1, sizeof *c);
    if (!be || !c) {
        free(be), free(c);
        if (err) err->code = GPT_ERR_NOMEM, snprintf(err->msg, sizeof err->msg, "out of memory");
        return GPT_ERR_NOMEM;
    }
    be->ops = &cuda_ops;
    be->ctx = c;
    be->name = "cuda";
    c->capturing = -1;
    int prec = rt ? rt->precision : GPT_PREC_AUTO;
    if (prec == GPT_PREC_FP16) {
        if (err) {
            err->code = GPT_ERR_INVALID;
            snprintf(err->msg, sizeof err->msg,
                     "--precision fp16: the CUDA backend computes in bf16 or fp32");
        }
        free(be), free(c);
        return GPT_ERR_INVALID;
    }
    be->precision = prec == GPT_PREC_FP32 ? GPT_PREC_FP32 : GPT_PREC_BF16;
    size_t pa = be->precision == GPT_PREC_BF16 ? 2 : 4;
    be->cls_size[GPT_CLS_PARAM] = pa;
    be->cls_size[GPT_CLS_ACT] = pa;
    be->cls_size[GPT_CLS_GRAD] = 4;
    be->cls_size[GPT_CLS_F32] = 4;
    be->cls_size[GPT_CLS_I32] = 4;
    c->no_fast_attn = env_flag("GPT_CUDA_NO_FAST_ATTN");
    c->no_epilogue = env_flag("GPT_CUDA_NO_EPILOGUE");
    c->no_fold = env_flag("GPT_CUDA_NO_FOLD");
    c->kv_split = env_int("GPT_CUDA_KV_SPLIT", 0);

    c->device = rt ? rt->device_index : 0;
    if (c->device < 0 || c->device >= n)
        gpt_backend_fail(be, GPT_ERR_INVALID, "GPU %d asked for, but %d %s visible", c->device, n,
                         n == 1 ? "is" : "are");
    if (!be->err.code && !CUDA_CHECK(be, cudaSetDevice(c->device)) &&
        !CUDA_CHECK(be, cudaGetDeviceProperties(&c->prop, c->device))) {
        snprintf(c->desc, sizeof c->desc, "%s (sm_%d%d, %d SMs, %.1f GiB)", c->prop.name,
                 c->prop.major, c->prop.minor, c->prop.multiProcessorCount,
                 (double)c->prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
        if (c->prop.major < 9)
            gpt_backend_fail(be, GPT_ERR_INVALID,
                             "%s has compute capability %d.%d; this build targets sm_90 (Hopper) "
                             "and newer: use --device cpu",
                             c->prop.name, c->prop.major, c->prop.minor);
    }
    if (!be->err.code && !CUDA_CHECK(be, cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking))) {
        cublasStatus_t st = cublasLtCreate(&c->lt);
        if (st != CUBLAS_STATUS_SUCCESS) {
            c->lt = NULL;
            gpt_backend_fail(be, GPT_ERR_RUNTIME, "cublasLtCreate failed: %s",
                             cublasGetStatusString(st));
        }
    }
    c->lt_ws_bytes = (size_t)32 << 20; /* what cuBLAS recommends on Hopper */
    if (!be->err.code) alloc_ws(be, &c->lt_ws, c->lt_ws_bytes, "matmul");
    if (!be->err.code) CUDA_CHECK(be, cudaMalloc((void **)&c->counter, sizeof(unsigned long long)));
    if (!be->err.code) cuda_attention_setup(be);
    if (!be->err.code) cuda_crossentropy_setup(be);
    if (!be->err.code) cuda_argmax_setup(be);
    if (!be->err.code && getenv("GPT_CUDA_TRACE")) {
        size_t bytes = (2 + 2 * (size_t)TRACE_CAP) * 8;
        if (cudaMalloc(&c->trace_buf, bytes) != cudaSuccess ||
            cudaMemset(c->trace_buf, 0, bytes) != cudaSuccess || !trace_set_all(c->trace_buf)) {
            cudaGetLastError(); /* no trace, nothing else lost */
            trace_set_all(NULL);
            cudaFree(c->trace_buf);
            c->trace_buf = NULL;
        }
    }
    if (be->err.code) {
        int code = be->err.code;
        if (err) *err = be->err;
        cu_destroy(be);
        return code;
    }
    *out = be;
    return 0;
}
