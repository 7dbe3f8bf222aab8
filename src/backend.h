/*
 * backend.h - the table of operations a device provides, and the rules
 * every backend keeps (docs/ARCHITECTURE.md is the longer map, with how
 * to add a backend).
 *
 * The model is written once against this table: src/model.c builds it,
 * model_train.c trains it, model_infer.c evaluates and decodes. Each
 * backend (src/cpu/, src/cuda/, ...) fills the table in and adds one line
 * to the registry in src/backend.c. Operations are cut where a GPU wants to
 * fuse: residual + layernorm, matmul + bias (+ GELU, with the GELU
 * derivative folded into the backward product), softmax + cross-entropy +
 * gradient in place, a flash-style attention that keeps only the row
 * log-sum-exp, and the whole AdamW update (global norm, clipping, moments,
 * weight decay, master copy, zeroing the gradient) as one call.
 *
 * Pointers and precision. Every tensor pointer is device memory from
 * alloc. What a pointer holds is given by its class (GPT_CLS_*): the
 * backend chooses the element type of PARAM, GRAD and ACT (fp32 on the
 * CPU; bf16 PARAM/ACT and fp32 GRAD in CUDA's mixed precision); F32 is
 * always fp32, I32 int32. Arithmetic is fp32 whatever the storage. Shapes
 * are in comments, row-major, last index fastest. Products such as N*Vp
 * (N = B*T) can exceed 2^31 (gpt2 at B=64, T=1024): index with 64-bit
 * offsets wherever a product of dimensions is formed.
 *
 * Bounds. Kernels never read or write outside the buffers they were
 * given, whatever the ids and positions they are handed (each op says what
 * an id or position out of range gives).
 *
 * Errors. Operations return nothing. A backend records the first failure
 * (a failed launch, a shape it refuses) with gpt_backend_fail in be->err
 * and may skip later work; sync() returns it. A backend never prints and
 * never exits.
 *
 * Asynchrony. Operations may run asynchronously, in issue order. Only
 * download, sync, nonfinite_count and timer_elapsed_ms wait for the
 * device, and each of those adds one to be->syncs (the tests count them:
 * one wait per training step).
 *
 * Early inputs. An argument marked "early" below may be read before the
 * op issued just before this one has finished (CUDA launches decoding
 * kernels as dependents of the kernel before them and loads residuals,
 * parameters and the KV cache while it still runs). So an early input
 * must not be an output of the last operation issued; everything issued
 * before that one has finished. The memory calls (upload, memset0, copy)
 * and the waits finish before anything after them starts, so after one
 * of them nothing counts as just issued. Only the ops of the forward,
 * backward, optimizer and decoding sections count. The model keeps this
 * rule; in test builds (-DGPT_TEST_BUILD) every backend's table is wrapped
 * by a checker (src/backend_check.c) that fails the op, naming it and the
 * argument, so that a reordering fails on the CPU instead of racing on a
 * GPU.
 *
 * Optional operations (NULL where a backend has none) return 1 when they
 * issued the work and 0 when they decline these shapes (nothing issued);
 * the model then issues the required operations instead.
 */
#ifndef GPT_BACKEND_H
#define GPT_BACKEND_H

#include <stddef.h>
#include "gpt.h"

enum {
    GPT_CLS_PARAM = 0, /* parameters in compute precision */
    GPT_CLS_GRAD = 1,  /* parameter gradients */
    GPT_CLS_ACT = 2,   /* activations and activation gradients */
    GPT_CLS_F32 = 3,   /* always fp32: statistics, losses, optimizer state */
    GPT_CLS_I32 = 4,   /* token ids, positions */
    GPT_CLS_Q8 = 5,    /* int8 weight matrices in quant.h's layout, as bytes
                          (only backends with matmul_q8_forward see it) */
    GPT_CLS_COUNT = 6
};

/* Largest shapes the model will use until the next reserve(); backends size
 * their private workspaces (matmul workspace, attention and reduction
 * scratch, timers) from it. */
typedef struct {
    int B, T;        /* batch rows and time steps of one forward pass */
    int C, NH, F;    /* channels, heads, MLP hidden */
    int V, Vp, L;    /* vocabulary, padded vocabulary, layers */
    int maxT;        /* position-embedding rows (KV cache length bound) */
    int train;       /* backward and optimizer will be called */
    size_t n_params; /* elements in the parameter range given to adamw */
    int n_timers;    /* timer slots for profiling (0 = none) */
    int q8;          /* matmul_q8_forward will be called (B*T rows, C or F inputs) */
} gpt_shape;

/* Step hyper-parameters, kept in device memory (F32 class, 8 floats) so that
 * a captured graph reads the current values each replay. */
typedef struct {
    float lr;
    float beta1, beta2, eps;
    float weight_decay; /* applied to params [0, n_decay) only */
    float grad_clip;    /* max global norm; <= 0 disables clipping */
    float bias_corr1;   /* 1 - beta1^t for this update's t */
    float bias_corr2;   /* 1 - beta2^t */
} gpt_adamw_hyper;

/* Step statistics, in device memory (F32 class, 4 floats). */
typedef struct {
    float loss_sum;   /* sum of token losses over the step (sum_f32 writes it) */
    float grad_norm;  /* adamw writes the global L2 norm before clipping */
    float skipped;    /* adamw writes 1 if it skipped the update, else 0 */
    float grad_sumsq; /* sum of squared gradients over the whole model, every
                         rank's share included: sumsq writes it, the model
                         sums it over ranks, adamw reads it */
} gpt_step_stats;

typedef struct gpt_backend gpt_backend;

typedef struct {
    /* ---------------------------------------------------------- lifetime */
    void (*destroy)(gpt_backend *be);
    /* Human-readable device, e.g. "NVIDIA H100 80GB HBM3 (sm_90)". */
    const char *(*device_desc)(gpt_backend *be);
    /* Free and total bytes of device memory. */
    int (*mem_info)(gpt_backend *be, size_t *free_bytes, size_t *total_bytes);
    /* Bytes of private workspace reserve(s) will take. */
    size_t (*workspace_bytes)(gpt_backend *be, const gpt_shape *s);
    /* Allocates private workspaces for shapes up to s. Called outside any
     * step; may be called again with other shapes (drops captured graphs). */
    int (*reserve)(gpt_backend *be, const gpt_shape *s);

    /* ------------------------------------------------------------ memory */
    /* Device memory, 256-byte aligned; NULL (and be->err set) on failure. */
    void *(*alloc)(gpt_backend *be, size_t bytes);
    void (*free)(gpt_backend *be, void *p);
    void (*memset0)(gpt_backend *be, void *p, size_t bytes);
    /* Host -> device, n elements. src is fp32 for PARAM/GRAD/ACT/F32,
     * int32 for I32 and bytes for Q8 (copied unchanged); converted to the
     * class's type. src may be reused as soon as upload returns. */
    void (*upload)(gpt_backend *be, void *dst, const void *src, size_t n, int cls);
    /* Device -> host, n elements, converted to fp32 (int32 for I32, bytes
     * unchanged for Q8). Waits for all issued work. */
    void (*download)(gpt_backend *be, void *dst, const void *src, size_t n, int cls);
    /* Waits for all issued work; returns be->err.code. */
    int (*sync)(gpt_backend *be);
    /* Optional (NULL where absent): the native queue the backend issues its
     * work on (a cudaStream_t for CUDA), for a communicator (NCCL, src/dist/)
     * that must start its collectives after the work issued before them and
     * make later work wait for them, without a host wait. (The CPU backend
     * needs none: its ops finish before they return and its tensors are in
     * host memory, where MPI reads them.) */
    void *(*stream)(gpt_backend *be);

    /* ---------------------------------------------------------- forward */
    /* out[b,t,:] = wte[tok[b,t],:] + wpe[p,:], p = (pos0 ? pos0[b] : 0) + t.
     * out ACT (B,T,C); tok I32 (B,T); pos0 I32 (B) or NULL;
     * wte PARAM (Vp,C); wpe PARAM (maxT,C). Ids outside [0,Vp) or positions
     * outside [0,maxT) give zero rows, never an out-of-bounds read. */
    void (*encoder_forward)(gpt_backend *be, void *out, const int *tok, const int *pos0,
                            const void *wte, const void *wpe, int B, int T, int C, int Vp,
                            int maxT);
    /* out = layernorm(x) * w + b, over C. out ACT (N,C); mean, rstd F32 (N)
     * or NULL (inference); x ACT (N,C); w, b PARAM (C). */
    void (*layernorm_forward)(gpt_backend *be, void *out, float *mean, float *rstd,
                              const void *x, const void *w, const void *b, int N, int C,
                              float eps);
    /* res = a + b, then out = layernorm(res) as above. res ACT (N,C) may be
     * the same buffer as a. Early inputs: a, w and bias (b may be the
     * output of the op just before: it is the one read after the wait). */
    void (*residual_layernorm_forward)(gpt_backend *be, void *res, void *out, float *mean,
                                       float *rstd, const void *a, const void *b,
                                       const void *w, const void *bias, int N, int C,
                                       float eps);
    /* y = in @ w^T + bias; if gelu: pre = y (when pre != NULL), out =
     * gelu_tanh(y); else out = y and pre is NULL.
     * out, pre ACT (N,OC); in ACT (N,IC); w PARAM (OC,IC); bias PARAM (OC)
     * or NULL. Early input: bias. */
    void (*matmul_forward)(gpt_backend *be, void *out, void *pre, const void *in, const void *w,
                           const void *bias, int N, int IC, int OC, int gelu);
    /* out = gelu_tanh(in), n elements, ACT. (Recompute in the backward.) */
    void (*gelu_forward)(gpt_backend *be, void *out, const void *in, size_t n);
    /* out = a + b, n elements, ACT; out may be a or b. */
    void (*add)(gpt_backend *be, void *out, const void *a, const void *b, size_t n);
    /* Causal self-attention, flash style: the (T,T) scores never reach
     * memory. out ACT (B,T,C); lse F32 (B,NH,T) or NULL: log-sum-exp of
     * each query's scaled scores; qkv ACT (B,T,3C) = [q | k | v], head h in
     * columns [h*HS, (h+1)*HS) of each; scale 1/sqrt(HS). */
    void (*attention_forward)(gpt_backend *be, void *out, float *lse, const void *qkv, int B,
                              int T, int C, int NH);
    /* KV-cache attention. For row b and t < Tq, with p = pos0[b] + t: the
     * k and v of qkv[b,t] are stored in kcache[b,p] and vcache[b,p], then
     * out[b,t] attends over cache positions 0..p. Rows with p >= S are left
     * untouched. out ACT (B,Tq,C); qkv ACT (B,Tq,3C); kcache, vcache ACT
     * (B,S,C); pos0 I32 (B), or NULL for a prefill: every row from
     * position 0. Early inputs: pos0, kcache and vcache (qkv may be the
     * output of the op just before). */
    void (*attention_kv_forward)(gpt_backend *be, void *out, const void *qkv, void *kcache,
                                 void *vcache, const int *pos0, int B, int Tq, int S, int C,
                                 int NH);
    /* Softmax + cross-entropy over the first V of Vp columns, in place.
     * losses[i] = logsumexp(logits[i,:V]) - logits[i,tgt[i]]; a target < 0
     * (or >= V) gives loss 0 and a zero gradient row. If grad: logits[i,j]
     * becomes dloss * (softmax_j - [j == tgt[i]]) for j < V and 0 for
     * V <= j < Vp. losses F32 (N); logits ACT (N,Vp); tgt I32 (N). */
    void (*crossentropy)(gpt_backend *be, float *losses, void *logits, const int *tgt, int N,
                         int V, int Vp, float dloss, int grad);
    /* out[0] = sum(in) (accumulate: out[0] += sum(in)), deterministic.
     * out F32 (1); in F32 (n). */
    void (*sum_f32)(gpt_backend *be, float *out, const float *in, size_t n, int accumulate);

    /* --------------------------------------------------------- backward */
    /* dwte[tok[b,t],:] += dout[b,t,:]; dwpe[t,:] += dout[b,t,:] (positions
     * start at 0). dwte GRAD (Vp,C); dwpe GRAD (maxT,C); dout ACT (B,T,C);
     * tok I32 (B,T). Ids outside [0,Vp) are ignored. */
    void (*encoder_backward)(gpt_backend *be, void *dwte, void *dwpe, const void *dout,
                             const int *tok, int B, int T, int C, int Vp);
    /* dx += d/dx, dw += d/dw, db += d/db of layernorm_forward.
     * dx ACT (N,C); dw, db GRAD (C); dout, x ACT (N,C); w PARAM (C);
     * mean, rstd F32 (N) as saved by the forward. */
    void (*layernorm_backward)(gpt_backend *be, void *dx, void *dw, void *db, const void *dout,
                               const void *x, const void *w, const float *mean,
                               const float *rstd, int N, int C);
    /* Backward of matmul_forward without GELU:
     * din = dout @ w (overwritten; skipped if NULL), then if gelu_pre:
     * din *= gelu_tanh'(gelu_pre), which is the backward of the previous
     * matmul's GELU; dw += dout^T @ in; dbias += sum over N of dout (if not
     * NULL). din ACT (N,IC); dw GRAD (OC,IC); dbias GRAD (OC); dout ACT
     * (N,OC); in ACT (N,IC); w PARAM (OC,IC); gelu_pre ACT (N,IC) or NULL. */
    void (*matmul_backward)(gpt_backend *be, void *din, void *dw, void *dbias,
                            const void *dout, const void *in, const void *w,
                            const void *gelu_pre, int N, int IC, int OC);
    /* Backward of attention_forward. dqkv ACT (B,T,3C) overwritten; dout,
     * out ACT (B,T,C); qkv ACT (B,T,3C); lse F32 (B,NH,T). */
    void (*attention_backward)(gpt_backend *be, void *dqkv, const void *dout, const void *qkv,
                               const void *out, const float *lse, int B, int T, int C, int NH);

    /* -------------------------------------------------------- optimizer */
    /* out[0] = sum of grad[i]^2 over n elements, deterministic (the same
     * bits for the same input). out F32 (1); grad GRAD (n). */
    void (*sumsq)(gpt_backend *be, float *out, const void *grad, size_t n);
    /* One AdamW update over the n parameters as one range, following
     * PyTorch's AdamW and clip_grad_norm_. The norm is not computed here:
     * the range may be one rank's shard of a larger model, so the caller
     * puts the squared norm of the whole gradient in stats->grad_sumsq
     * (sumsq, summed over ranks) and every rank clips and skips alike.
     *   norm = sqrt(stats->grad_sumsq) -> stats->grad_norm
     *   skip = !finite(norm) || !finite(stats->loss_sum) -> stats->skipped
     *   if !skip: s = clip > 0 ? min(1, clip / (norm + 1e-6)) : 1
     *     for each i: g = s * grad[i]
     *       m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
     *       p = master ? master[i] : params[i]
     *       if i < n_decay: p *= 1 - lr * wd
     *       p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)
     *       master[i] = p (if master); params[i] = p (rounded to PARAM type)
     *   grad[i] = 0 for every i, skipped or not.
     * params PARAM (n); master F32 (n) or NULL; grad GRAD (n); m, v F32 (n);
     * hyper F32 device struct; stats F32 device struct. */
    void (*adamw)(gpt_backend *be, void *params, float *master, void *grad, float *m, float *v,
                  size_t n, size_t n_decay, const gpt_adamw_hyper *hyper, gpt_step_stats *stats);

    /* ------------------------------------------------------ diagnostics */
    /* Number of NaN/Inf among n elements of class cls (waits). */
    long (*nonfinite_count)(gpt_backend *be, const void *p, size_t n, int cls);
    /* Records the time at slot (0 <= slot < n_timers) in issue order. */
    void (*timer_record)(gpt_backend *be, int slot);
    /* Milliseconds between two recorded slots (waits). */
    double (*timer_elapsed_ms)(gpt_backend *be, int from, int to);

    /* ----------------------------------------------------------- graphs */
    /* Replays work recorded under id, or records it. Returns 1 if a graph
     * for id exists and was launched: the caller skips issuing the ops.
     * Returns 0 otherwise: the caller issues the ops (which the backend
     * may capture) and then calls graph_end(id), which launches them.
     * Nothing issued between begin and end may upload, download or sync.
     * Ids are arbitrary non-negative ints; the model takes a new id
     * whenever the buffers it passes change, so a backend may keep a small
     * table and drop its least recently used graphs.
     * Backends without graphs return 0 and make graph_end a no-op. */
    int (*graph_begin)(gpt_backend *be, int id);
    void (*graph_end)(gpt_backend *be, int id);

    /* --------------------------------------------------------- decoding */
    /* Greedy choice on the device, so that decoding steps can feed each
     * other without the host: out[i] = index of the largest of logits[i,
     * 0..V) (the lowest index on ties; NaN never wins; 0 if every value is
     * NaN). out I32 (N); logits ACT (N, Vp). With pos I32 (N) (the end of
     * a decoding step): also hist[i*S + pos[i]] = out[i] where 0 <= pos[i]
     * < S (hist I32 (N, S), or NULL), then pos[i] += 1, so that a step
     * needs no separate position advance nor history copy. */
    void (*argmax)(gpt_backend *be, int *out, const void *logits, int N, int V, int Vp, int *pos,
                   int *hist, int S);
    /* Device-to-device copy of bytes, in issue order (may run between
     * graph replays). */
    void (*copy)(gpt_backend *be, void *dst, const void *src, size_t bytes);
    /* Optional: a decoding step's products with the layernorm before them
     * or the residual add after them folded in, so that a layer is five
     * operations instead of seven (return values: the header).
     * matmul_ln_forward: out = matmul_forward(layernorm(x) * lnw + lnb)
     *   with matmul_forward's w, bias, gelu and pre; x ACT (N,IC); lnw, lnb
     *   PARAM (IC). Early inputs: lnw, lnb and bias.
     * matmul_residual_forward: x += in @ w^T + bias, rounded once; x ACT
     *   (N,OC), in ACT (N,IC), w PARAM (OC,IC), bias PARAM (OC) or NULL.
     *   Early inputs: x and bias (in may be the output of the op just
     *   before). */
    int (*matmul_ln_forward)(gpt_backend *be, void *out, void *pre, const void *x,
                             const void *lnw, const void *lnb, float eps, const void *w,
                             const void *bias, int N, int IC, int OC, int gelu);
    int (*matmul_residual_forward)(gpt_backend *be, void *x, const void *in, const void *w,
                                   const void *bias, int N, int IC, int OC);

    /* ------------------------------------------------ int8 weights */
    /* Optional (NULL where a backend has none; the model then refuses to
     * quantise): matmul_forward with an int8 weight matrix, for inference.
     * wq Q8 (OC, IC) in quant.h's layout; out, pre, in, bias, N, gelu as
     * matmul_forward. The backend may quantise `in` as well (blocks of 32
     * with their own scale), and needs reserve() with q8 set first.
     * Early input: bias. */
    void (*matmul_q8_forward)(gpt_backend *be, void *out, void *pre, const void *in,
                              const void *wq, const void *bias, int N, int IC, int OC, int gelu);
    /* Optional: the name of the int8 kernel in use ("avx512-vnni"), for
     * gpt info and benchmarks. */
    const char *(*q8_kernel)(gpt_backend *be);

    /* --------------------------------------------------- decoding, more */
    /* Optional: a decoding step's attention with the projection and the
     * residual add after it, one query a row (Tq = 1):
     * x += attention_kv_forward(qkv, kcache, vcache, pos0) @ w^T + bias,
     * rounded once, the attention's output kept inside the op (a
     * dispatch fewer a layer where each dispatch costs microseconds).
     * Returns 1, or 0 where it declines (nothing issued: the model issues
     * the two ops). Rows with p = pos0[b] outside [0, S) leave x as it was.
     * x ACT (B,C); w PARAM (C,C); bias PARAM (C) or NULL; the rest as
     * attention_kv_forward's. Early inputs: pos0, kcache, vcache, x, bias. */
    int (*attention_kv_residual_forward)(gpt_backend *be, void *x, const void *qkv, void *kcache,
                                         void *vcache, const int *pos0, int B, int S, int C,
                                         int NH, const void *w, const void *bias);
} gpt_backend_ops;

struct gpt_backend {
    const gpt_backend_ops *ops;
    void *ctx;                      /* the backend's private state */
    const char *name;               /* "cpu", "cuda" */
    int precision;                  /* GPT_PREC_FP32, _BF16 or _FP16 */
    size_t cls_size[GPT_CLS_COUNT]; /* bytes per element of each class */
    long syncs;                     /* host waits so far */
    gpt_error err;                  /* first failure (err.code != 0) */
};

/* Creates the backend the runtime asks for ("auto": cuda if compiled in and
 * a device is found, else a Vulkan GPU, else cpu). */
int gpt_backend_create(gpt_backend **out, const gpt_runtime *rt, gpt_error *err);
void gpt_backend_destroy(gpt_backend *be);

#ifdef GPT_TEST_BUILD
/* Test builds: wraps be's table in the early-input checker (backend_check.c);
 * gpt_backend_create does it for every backend. On failure be is destroyed. */
int gpt_backend_check_wrap(gpt_backend *be, gpt_error *err);
#endif

/* Records an error in be->err unless one is there already. */
void gpt_backend_fail(gpt_backend *be, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Constructors of the compiled-in backends (NULL-terminated registry in
 * src/backend.c). Each fills a new gpt_backend or returns an error. */
int gpt_cpu_backend_create(gpt_backend **out, const gpt_runtime *rt, gpt_error *err);
int gpt_cuda_backend_create(gpt_backend **out, const gpt_runtime *rt, gpt_error *err);
/* 1 if a CUDA device can be used (0 when CUDA is not compiled in). */
int gpt_cuda_backend_probe(void);
/* "vulkan" or "vulkan:N" (src/vulkan/); probe: any usable Vulkan device
 * (lavapipe included); probe_gpu: a discrete or Apple GPU, which "auto"
 * takes after CUDA. Both 0 when Vulkan is not compiled in. */
int gpt_vulkan_backend_create(gpt_backend **out, const gpt_runtime *rt, gpt_error *err);
int gpt_vulkan_backend_probe(void);
int gpt_vulkan_backend_probe_gpu(void);


#endif
