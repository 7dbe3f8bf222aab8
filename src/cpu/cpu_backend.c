/*
 * cpu_backend.c - the CPU backend's table: memory (plain host memory, so
 * upload/download are copies), per-thread scratch, the thread pool, timers
 * from the wall clock, no graphs, and the decoding ops. Every class is fp32
 * (I32 is int32).
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cpu.h"
#include "cpu_features.h"
#include "cpu_gemm.h"
#include "cpu_math.h"
#include "cpu_pool.h"
#include "cpu_q8.h"
#include "util.h"

#if defined(GPT_HAVE_CBLAS) && !defined(GPT_ACCELERATE)
void openblas_set_num_threads(int n);
#endif

static cpu_ctx *ctx_of(gpt_backend *be) { return (cpu_ctx *)be->ctx; }

float *cpu_scratch(gpt_backend *be) {
    cpu_ctx *c = ctx_of(be);
    int t = cpu_thread_index();
    GPT_ASSERT(c->scratch && t < c->nthreads);
    return c->scratch + (size_t)t * c->scratch_per_thread;
}

/* The frees below first wait for any pool thread still inside a task of a
 * job that returned (cpu_pool.h, private jobs): it may read this memory. */
static void cpu_destroy(gpt_backend *be) {
    cpu_ctx *c = ctx_of(be);
    cpu_pool_quiesce();
    free(c->scratch);
    free(c->fold);
    free(c->partials);
    free(c->kv_part);
    free(c->timers);
    free(c->q8_scratch);
    free(c);
    free(be);
    cpu_pool_release();
}

static const char *cpu_device_desc(gpt_backend *be) { return ctx_of(be)->desc; }

static int cpu_mem_info(gpt_backend *be, size_t *free_bytes, size_t *total_bytes) {
    *free_bytes = *total_bytes = 0;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) *total_bytes = (size_t)kb * 1024;
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) *free_bytes = (size_t)kb * 1024;
        }
        fclose(f);
    }
    if (!*total_bytes) {
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
        long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
        if (pages > 0 && psz > 0) *total_bytes = (size_t)pages * (size_t)psz;
#endif
        *free_bytes = *total_bytes;
    }
    return GPT_OK;
}

/* Per thread: two (T,T) score matrices (attention), a prefill block's
 * scores (CPU_KV_QBLOCK x maxT), a decoding chunk's scores (NH x
 * CPU_KV_CHUNK) or 2C layernorm partials, whichever is largest. */
static size_t scratch_floats(const gpt_shape *s) {
    size_t n = (size_t)CPU_KV_QBLOCK * s->maxT;
    if ((size_t)s->NH * CPU_KV_CHUNK > n) n = (size_t)s->NH * CPU_KV_CHUNK;
    if (2 * (size_t)s->T * (size_t)s->T > n) n = 2 * (size_t)s->T * (size_t)s->T;
    if ((size_t)2 * s->C > n) n = (size_t)2 * s->C;
    return (n + 15) / 16 * 16; /* keep each thread's slice on its own cache line */
}

/* Rows the folded decoding products stage through (one per batch row). */
static size_t fold_floats(const gpt_shape *s) { return (size_t)s->B * (size_t)s->C; }

/* The quantised activations of the widest int8 product: B*T rows of C
 * or F inputs. */
static size_t q8_scratch_bytes(const gpt_shape *s) {
    if (!s->q8) return 0;
    return cpu_q8_act_bytes(s->B * s->T, s->F > s->C ? s->F : s->C);
}

static size_t cpu_workspace_bytes(gpt_backend *be, const gpt_shape *s) {
    return (size_t)cpu_pool_threads() * scratch_floats(s) * sizeof(float) +
           fold_floats(s) * sizeof(float) + (size_t)RED_CHUNKS * 2 * s->C * sizeof(float) +
           cpu_kv_partials_floats(s->B, s->maxT, s->C, s->NH) * sizeof(float) +
           (size_t)s->n_timers * sizeof(double) + q8_scratch_bytes(s);
}

static void set_products(gpt_backend *be, int bf16);

/* *buf holds at least need floats (*have: how many it holds), its old
 * contents dropped; GPT_ERR_NOMEM (the backend failed) if memory is short. */
static int grow_floats(gpt_backend *be, float **buf, size_t *have, size_t need) {
    if (need <= *have) return GPT_OK;
    float *p = malloc(need * sizeof(float));
    if (!p) {
        gpt_backend_fail(be, GPT_ERR_NOMEM, "out of memory for CPU scratch");
        return GPT_ERR_NOMEM;
    }
    free(*buf);
    *buf = p;
    *have = need;
    return GPT_OK;
}

static int cpu_reserve(gpt_backend *be, const gpt_shape *s) {
    cpu_ctx *c = ctx_of(be);
    cpu_pool_quiesce();
    /* GPT_PREC_AUTO: bf16 products for training where the CPU has bf16
     * instructions (twice the multiply-adds per instruction); inference
     * stays fp32, since decoding is bound by reading the fp32 weights and
     * bf16 would only round. */
    if (c->prec_auto) set_products(be, s->train && cpu_has_bf16_kernel());
    size_t per = scratch_floats(s);
    int nt = cpu_pool_threads();
    if (per > c->scratch_per_thread || nt > c->nthreads) {
        float *ns = aligned_alloc(64, (size_t)nt * per * sizeof(float));
        if (!ns) {
            gpt_backend_fail(be, GPT_ERR_NOMEM, "out of memory for CPU scratch");
            return GPT_ERR_NOMEM;
        }
        free(c->scratch);
        c->scratch = ns;
        c->scratch_per_thread = per;
        c->nthreads = nt;
    }
    if (grow_floats(be, &c->fold, &c->fold_elems, fold_floats(s)) ||
        grow_floats(be, &c->partials, &c->partials_floats, (size_t)RED_CHUNKS * 2 * s->C) ||
        grow_floats(be, &c->kv_part, &c->kv_part_floats,
                    cpu_kv_partials_floats(s->B, s->maxT, s->C, s->NH)))
        return GPT_ERR_NOMEM;
    if (s->n_timers > c->n_timers) {
        double *nt2 = calloc((size_t)s->n_timers, sizeof(double));
        if (!nt2) {
            gpt_backend_fail(be, GPT_ERR_NOMEM, "out of memory for timers");
            return GPT_ERR_NOMEM;
        }
        free(c->timers);
        c->timers = nt2;
        c->n_timers = s->n_timers;
    }
    size_t qb = q8_scratch_bytes(s);
    if (qb > c->q8_scratch_bytes) {
        void *q = aligned_alloc(64, (qb + 63) / 64 * 64);
        if (!q) {
            gpt_backend_fail(be, GPT_ERR_NOMEM, "out of memory for int8 activations");
            return GPT_ERR_NOMEM;
        }
        free(c->q8_scratch);
        c->q8_scratch = q;
        c->q8_scratch_bytes = qb;
    }
    return GPT_OK;
}

/* Large buffers (weights, optimizer state, activations) are streamed
 * whole every step: on 2 MB pages they need 512x fewer TLB entries, which
 * Linux gives on request (transparent huge pages in "madvise" mode). */
#define HUGE_PAGE ((size_t)2 << 20)

static void *cpu_alloc(gpt_backend *be, size_t bytes) {
    size_t align = bytes >= 4 * HUGE_PAGE ? HUGE_PAGE : 256;
    size_t rounded = (bytes + align - 1) / align * align;
    void *p = rounded ? aligned_alloc(align, rounded) : NULL;
#ifdef MADV_HUGEPAGE
    if (p && align == HUGE_PAGE) madvise(p, rounded, MADV_HUGEPAGE); /* a hint: failure is fine */
#endif
    if (!p && bytes) {
        char b[32];
        snprintf(b, sizeof b, "%.2f GiB", (double)bytes / (1 << 30));
        gpt_backend_fail(be, GPT_ERR_NOMEM, "out of memory allocating %s on the CPU", b);
    }
    return p;
}

static void cpu_free(gpt_backend *be, void *p) {
    cpu_pool_quiesce();
    free(p);
}

static void cpu_memset0(gpt_backend *be, void *p, size_t bytes) { memset(p, 0, bytes); }

static void cpu_upload(gpt_backend *be, void *dst, const void *src, size_t n, int cls) {
    memcpy(dst, src, n * be->cls_size[cls]);
}

static void cpu_download(gpt_backend *be, void *dst, const void *src, size_t n, int cls) {
    be->syncs++;
    memcpy(dst, src, n * be->cls_size[cls]);
}

static int cpu_sync(gpt_backend *be) {
    be->syncs++;
    return be->err.code;
}

typedef struct {
    const float *x;
    size_t n;
    long bad[RED_CHUNKS];
} nf_job;

static void nonfinite_chunk(void *ctx, int chunk) {
    nf_job *j = ctx;
    size_t i0 = j->n * chunk / RED_CHUNKS, i1 = j->n * (chunk + 1) / RED_CHUNKS;
    long bad = 0;
    for (size_t i = i0; i < i1; i++) bad += !isfinite(j->x[i]);
    j->bad[chunk] = bad;
}

static long cpu_nonfinite_count(gpt_backend *be, const void *p, size_t n, int cls) {
    be->syncs++;
    if (cls == GPT_CLS_I32) return 0;
    nf_job j = {.x = p, .n = n};
    cpu_parallel(RED_CHUNKS, nonfinite_chunk, &j);
    long bad = 0;
    for (int t = 0; t < RED_CHUNKS; t++) bad += j.bad[t];
    return bad;
}

static void cpu_timer_record(gpt_backend *be, int slot) {
    cpu_ctx *c = ctx_of(be);
    if (slot >= 0 && slot < c->n_timers) c->timers[slot] = gpt_now();
}

static double cpu_timer_elapsed_ms(gpt_backend *be, int from, int to) {
    cpu_ctx *c = ctx_of(be);
    be->syncs++;
    if (from < 0 || to < 0 || from >= c->n_timers || to >= c->n_timers) return 0;
    return 1e3 * (c->timers[to] - c->timers[from]);
}

/* The index of the first largest of r[0..V), NaN never winning (0 if all
 * are NaN): the maximum (cpu_maxf, vectorised), then the first index
 * holding it. */
CPU_CLONES static int argmax_row(const float *r, int V) {
    float m = cpu_maxf(r, V);
    for (int j = 0; j < V; j++)
        if (r[j] == m) return j;
    return 0; /* all NaN */
}

static void cpu_argmax(gpt_backend *be, int *out, const void *logits_, int N, int V, int Vp,
                       int *pos, int *hist, int S) {
    const float *logits = logits_;
    for (int i = 0; i < N; i++) {
        int best = argmax_row(logits + (size_t)i * Vp, V);
        out[i] = best;
        if (pos) {
            if (hist && pos[i] >= 0 && pos[i] < S) hist[(size_t)i * S + pos[i]] = best;
            pos[i]++;
        }
    }
}

static void cpu_copy(gpt_backend *be, void *dst, const void *src, size_t bytes) {
    memmove(dst, src, bytes);
}

/* The folded decoding products as the separate ops they stand for, through
 * reserve()'s B rows (bitwise the separate ops' results). They give no
 * speed here; they make the CPU run the decoding step a GPU runs
 * (model_infer.c's decode_forward), so that the CPU tests and the
 * early-input checker of test builds cover it. */
static int cpu_matmul_ln_forward(gpt_backend *be, void *out, void *pre, const void *x,
                                 const void *lnw, const void *lnb, float eps, const void *w,
                                 const void *bias, int N, int IC, int OC, int gelu) {
    cpu_ctx *c = ctx_of(be);
    if (N < 1 || (size_t)N * IC > c->fold_elems) return 0;
    cpu_layernorm_forward(be, c->fold, NULL, NULL, x, lnw, lnb, N, IC, eps);
    cpu_matmul_forward(be, out, pre, c->fold, w, bias, N, IC, OC, gelu);
    return 1;
}

static int cpu_matmul_residual_forward(gpt_backend *be, void *x, const void *in, const void *w,
                                       const void *bias, int N, int IC, int OC) {
    cpu_ctx *c = ctx_of(be);
    if (N < 1 || (size_t)N * OC > c->fold_elems) return 0;
    cpu_matmul_forward(be, c->fold, NULL, in, w, bias, N, IC, OC, 0);
    cpu_add(be, x, x, c->fold, (size_t)N * OC);
    return 1;
}

static const char *cpu_q8_kernel_name(gpt_backend *be) { return ctx_of(be)->q8->name; }

static int cpu_graph_begin(gpt_backend *be, int id) { return 0; }
static void cpu_graph_end(gpt_backend *be, int id) {}

static const gpt_backend_ops cpu_ops = {
    .destroy = cpu_destroy,
    .device_desc = cpu_device_desc,
    .mem_info = cpu_mem_info,
    .workspace_bytes = cpu_workspace_bytes,
    .reserve = cpu_reserve,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .memset0 = cpu_memset0,
    .upload = cpu_upload,
    .download = cpu_download,
    .sync = cpu_sync,
    .encoder_forward = cpu_encoder_forward,
    .layernorm_forward = cpu_layernorm_forward,
    .residual_layernorm_forward = cpu_residual_layernorm_forward,
    .matmul_forward = cpu_matmul_forward,
    .gelu_forward = cpu_gelu_forward,
    .add = cpu_add,
    .attention_forward = cpu_attention_forward,
    .attention_kv_forward = cpu_attention_kv_forward,
    .crossentropy = cpu_crossentropy,
    .sum_f32 = cpu_sum_f32,
    .encoder_backward = cpu_encoder_backward,
    .layernorm_backward = cpu_layernorm_backward,
    .matmul_backward = cpu_matmul_backward,
    .attention_backward = cpu_attention_backward,
    .sumsq = cpu_sumsq,
    .adamw = cpu_adamw,
    .nonfinite_count = cpu_nonfinite_count,
    .timer_record = cpu_timer_record,
    .timer_elapsed_ms = cpu_timer_elapsed_ms,
    .graph_begin = cpu_graph_begin,
    .graph_end = cpu_graph_end,
    .argmax = cpu_argmax,
    .copy = cpu_copy,
    .matmul_ln_forward = cpu_matmul_ln_forward,
    .matmul_residual_forward = cpu_matmul_residual_forward,
    .matmul_q8_forward = cpu_matmul_q8_forward,
    .q8_kernel = cpu_q8_kernel_name,
};

static void cpu_model_name(char *buf, size_t n) {
    snprintf(buf, n, "CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "model name", 10)) {
            char *colon = strchr(line, ':');
            if (colon) {
                colon++;
                while (*colon == ' ') colon++;
                colon[strcspn(colon, "\n")] = 0;
                snprintf(buf, n, "%s", colon);
            }
            break;
        }
    }
    fclose(f);
}

/* The products' kernel and the precision the model reports: fp32, or bf16
 * products (inputs rounded to bf16, fp32 sums; parameters, gradients,
 * activations and AdamW state stay fp32, so the parameters are the fp32
 * master weights). */
static void set_products(gpt_backend *be, int bf16) {
    cpu_ctx *c = ctx_of(be);
    c->mm = bf16 ? cpu_gemm_kernel_bf16() : NULL;
    be->precision = bf16 ? GPT_PREC_BF16 : GPT_PREC_FP32;
    char model[96];
    cpu_model_name(model, sizeof model);
    snprintf(c->desc, sizeof c->desc, "%s, %d threads, %s", model, cpu_pool_threads(),
#ifdef GPT_HAVE_CBLAS
             bf16 ? c->mm->name : "CBLAS fp32"
#else
             bf16 ? c->mm->name : cpu_gemm_kernel()->name
#endif
    );
}

int gpt_cpu_backend_create(gpt_backend **out, const gpt_runtime *rt, gpt_error *err) {
    *out = NULL;
    if (rt && rt->precision == GPT_PREC_FP16)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "--precision fp16 is for Vulkan GPUs: the CPU backend computes in fp32 "
                        "or bf16");
    if (rt && rt->threads < 0)
        return gpt_fail(err, GPT_ERR_INVALID, "threads (%d) must be 0 (automatic) or more",
                        rt->threads);
    gpt_backend *be = calloc(1, sizeof *be);
    cpu_ctx *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    }
    /* Threads: as asked, else one per core this process may run on. */
    cpu_pool_acquire(rt && rt->threads > 0 ? rt->threads : 0);
#if defined(GPT_HAVE_CBLAS) && !defined(GPT_ACCELERATE)
    openblas_set_num_threads(cpu_pool_threads());
#endif
    c->q8 = cpu_q8_best();
    be->ops = &cpu_ops;
    be->ctx = c;
    be->name = "cpu";
    /* fp32 until reserve() says the model will train (GPT_PREC_AUTO). */
    c->prec_auto = !rt || rt->precision == GPT_PREC_AUTO;
    set_products(be, rt && rt->precision == GPT_PREC_BF16);
    for (int i = 0; i < GPT_CLS_COUNT; i++) be->cls_size[i] = 4;
    be->cls_size[GPT_CLS_Q8] = 1;
    *out = be;
    return GPT_OK;
}

const char *gpt_cpu_kernels(void) {
    static char line[320];
    const cpu_features *f = cpu_features_get();
    char model[96];
    cpu_model_name(model, sizeof model);
    const gemm_kernel *bf = cpu_gemm_kernel_bf16(); /* asks Linux for AMX first */
    snprintf(line, sizeof line,
             "%s (family %d model %d): %s, bf16 products %s%s, int8 products %s%s, %d cores "
             "usable%s",
             model, f->family, f->model, cpu_gemm_kernel()->name, bf->name,
             cpu_has_bf16_kernel() ? " (training default)" : " (emulated: --precision bf16 only)",
             cpu_q8_best()->name,
             f->amx_denied ? ", AMX present but Linux refused the tile state (arch_prctl)"
             : f->amx_off  ? ", AMX present (off: GPT_CPU_AMX=0)"
                           : "",
             cpu_available_cores(),
#ifdef GPT_HAVE_CBLAS
             ", fp32 products through CBLAS"
#else
             ""
#endif
    );
    return line;
}
