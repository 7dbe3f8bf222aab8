/*
 * backend_check.c - test builds only (-DGPT_TEST_BUILD; production builds
 * compile nothing here): a table that wraps any backend's table and
 * enforces backend.h's early-input rule.
 *
 * It remembers the output ranges of the last op issued and fails an op
 * (gpt_backend_fail, naming the op, the argument and the op before) when
 * one of its early inputs overlaps one of them, so that a reordering of
 * the model's ops fails on the CPU instead of racing on a GPU. The memory
 * calls and the waits forget the last op (everything issued before them
 * has finished), and so does a graph replay (its ops were checked when
 * they were recorded). An op is checked before it runs, whether or not it
 * declines: the model's order must hold for backends that take the shapes.
 */
#ifdef GPT_TEST_BUILD

#include <stdint.h>
#include <stdlib.h>

#include "backend.h"
#include "util.h"

enum { MAX_OUTPUTS = 6 };

typedef struct {
    gpt_backend_ops ops; /* first member: be->ops points here */
    const gpt_backend_ops *base;
    const char *last; /* the last op issued, NULL after a memory call or a wait */
    struct {
        uintptr_t at;
        size_t bytes;
    } out[MAX_OUTPUTS];
    int n_out;
} check_table;

static check_table *tab(gpt_backend *be) { return (check_table *)(uintptr_t)be->ops; }

static void forget(gpt_backend *be) {
    tab(be)->last = NULL;
    tab(be)->n_out = 0;
}

/* Fails op `op` if `arg` (n elements of class cls at p), one of its early
 * inputs, overlaps an output of the last op issued. */
static void early(gpt_backend *be, const char *op, const char *arg, const void *p, size_t n,
                  int cls) {
    check_table *t = tab(be);
    if (!p || !n || !t->last) return;
    uintptr_t a = (uintptr_t)p, b = a + n * be->cls_size[cls];
    for (int i = 0; i < t->n_out; i++)
        if (a < t->out[i].at + t->out[i].bytes && t->out[i].at < b) {
            gpt_backend_fail(be, GPT_ERR_RUNTIME,
                             "early input: %s's %s is an output of %s, the op issued just before "
                             "it (backend.h: early inputs)",
                             op, arg, t->last);
            return;
        }
}

/* Op `name` was issued: its outputs replace the last op's. */
static void issued(gpt_backend *be, const char *name) {
    tab(be)->last = name;
    tab(be)->n_out = 0;
}
static void output(gpt_backend *be, const void *p, size_t n, int cls) {
    check_table *t = tab(be);
    GPT_ASSERT(t->n_out < MAX_OUTPUTS);
    if (!p || !n) return;
    t->out[t->n_out].at = (uintptr_t)p;
    t->out[t->n_out].bytes = n * be->cls_size[cls];
    t->n_out++;
}

#define BASE (tab(be)->base)
#define NC ((size_t)N * C)

/* ------------------------------------------------- memory calls, waits */

static void ck_destroy(gpt_backend *be) {
    check_table *t = tab(be);
    be->ops = t->base;
    free(t);
    be->ops->destroy(be);
}
static void ck_memset0(gpt_backend *be, void *p, size_t bytes) {
    forget(be);
    BASE->memset0(be, p, bytes);
}
static void ck_upload(gpt_backend *be, void *dst, const void *src, size_t n, int cls) {
    forget(be);
    BASE->upload(be, dst, src, n, cls);
}
static void ck_download(gpt_backend *be, void *dst, const void *src, size_t n, int cls) {
    forget(be);
    BASE->download(be, dst, src, n, cls);
}
static int ck_sync(gpt_backend *be) {
    forget(be);
    return BASE->sync(be);
}
static void ck_copy(gpt_backend *be, void *dst, const void *src, size_t bytes) {
    forget(be);
    BASE->copy(be, dst, src, bytes);
}
static long ck_nonfinite_count(gpt_backend *be, const void *p, size_t n, int cls) {
    forget(be);
    return BASE->nonfinite_count(be, p, n, cls);
}
static double ck_timer_elapsed_ms(gpt_backend *be, int from, int to) {
    forget(be);
    return BASE->timer_elapsed_ms(be, from, to);
}
static int ck_graph_begin(gpt_backend *be, int id) {
    int replayed = BASE->graph_begin(be, id);
    if (replayed) forget(be);
    return replayed;
}

/* ---------------------------------------------------------------- ops */

static void ck_encoder_forward(gpt_backend *be, void *out, const int *tok, const int *pos0,
                               const void *wte, const void *wpe, int B, int T, int C, int Vp,
                               int maxT) {
    BASE->encoder_forward(be, out, tok, pos0, wte, wpe, B, T, C, Vp, maxT);
    issued(be, "encoder_forward");
    output(be, out, (size_t)B * T * C, GPT_CLS_ACT);
}
static void ck_layernorm_forward(gpt_backend *be, void *out, float *mean, float *rstd,
                                 const void *x, const void *w, const void *b, int N, int C,
                                 float eps) {
    BASE->layernorm_forward(be, out, mean, rstd, x, w, b, N, C, eps);
    issued(be, "layernorm_forward");
    output(be, out, NC, GPT_CLS_ACT);
    output(be, mean, (size_t)N, GPT_CLS_F32);
    output(be, rstd, (size_t)N, GPT_CLS_F32);
}
static void ck_residual_layernorm_forward(gpt_backend *be, void *res, void *out, float *mean,
                                          float *rstd, const void *a, const void *b,
                                          const void *w, const void *bias, int N, int C,
                                          float eps) {
    const char *op = "residual_layernorm_forward";
    early(be, op, "a", a, NC, GPT_CLS_ACT);
    early(be, op, "w", w, (size_t)C, GPT_CLS_PARAM);
    early(be, op, "bias", bias, (size_t)C, GPT_CLS_PARAM);
    BASE->residual_layernorm_forward(be, res, out, mean, rstd, a, b, w, bias, N, C, eps);
    issued(be, op);
    output(be, res, NC, GPT_CLS_ACT);
    output(be, out, NC, GPT_CLS_ACT);
    output(be, mean, (size_t)N, GPT_CLS_F32);
    output(be, rstd, (size_t)N, GPT_CLS_F32);
}
static void ck_matmul_forward(gpt_backend *be, void *out, void *pre, const void *in, const void *w,
                              const void *bias, int N, int IC, int OC, int gelu) {
    early(be, "matmul_forward", "bias", bias, (size_t)OC, GPT_CLS_PARAM);
    BASE->matmul_forward(be, out, pre, in, w, bias, N, IC, OC, gelu);
    issued(be, "matmul_forward");
    output(be, out, (size_t)N * OC, GPT_CLS_ACT);
    output(be, gelu ? pre : NULL, (size_t)N * OC, GPT_CLS_ACT);
}
static void ck_gelu_forward(gpt_backend *be, void *out, const void *in, size_t n) {
    BASE->gelu_forward(be, out, in, n);
    issued(be, "gelu_forward");
    output(be, out, n, GPT_CLS_ACT);
}
static void ck_add(gpt_backend *be, void *out, const void *a, const void *b, size_t n) {
    BASE->add(be, out, a, b, n);
    issued(be, "add");
    output(be, out, n, GPT_CLS_ACT);
}
static void ck_attention_forward(gpt_backend *be, void *out, float *lse, const void *qkv, int B,
                                 int T, int C, int NH) {
    BASE->attention_forward(be, out, lse, qkv, B, T, C, NH);
    issued(be, "attention_forward");
    output(be, out, (size_t)B * T * C, GPT_CLS_ACT);
    output(be, lse, (size_t)B * NH * T, GPT_CLS_F32);
}
static void ck_attention_kv_forward(gpt_backend *be, void *out, const void *qkv, void *kcache,
                                    void *vcache, const int *pos0, int B, int Tq, int S, int C,
                                    int NH) {
    const char *op = "attention_kv_forward";
    size_t cache = (size_t)B * S * C;
    early(be, op, "pos0", pos0, (size_t)B, GPT_CLS_I32);
    early(be, op, "kcache", kcache, cache, GPT_CLS_ACT);
    early(be, op, "vcache", vcache, cache, GPT_CLS_ACT);
    BASE->attention_kv_forward(be, out, qkv, kcache, vcache, pos0, B, Tq, S, C, NH);
    issued(be, op);
    output(be, out, (size_t)B * Tq * C, GPT_CLS_ACT);
    output(be, kcache, cache, GPT_CLS_ACT);
    output(be, vcache, cache, GPT_CLS_ACT);
}
static void ck_crossentropy(gpt_backend *be, float *losses, void *logits, const int *tgt, int N,
                            int V, int Vp, float dloss, int grad) {
    BASE->crossentropy(be, losses, logits, tgt, N, V, Vp, dloss, grad);
    issued(be, "crossentropy");
    output(be, losses, (size_t)N, GPT_CLS_F32);
    output(be, grad ? logits : NULL, (size_t)N * Vp, GPT_CLS_ACT);
}
static void ck_sum_f32(gpt_backend *be, float *out, const float *in, size_t n, int accumulate) {
    BASE->sum_f32(be, out, in, n, accumulate);
    issued(be, "sum_f32");
    output(be, out, 1, GPT_CLS_F32);
}
static void ck_encoder_backward(gpt_backend *be, void *dwte, void *dwpe, const void *dout,
                                const int *tok, int B, int T, int C, int Vp) {
    BASE->encoder_backward(be, dwte, dwpe, dout, tok, B, T, C, Vp);
    issued(be, "encoder_backward");
    output(be, dwte, (size_t)Vp * C, GPT_CLS_GRAD);
    output(be, dwpe, (size_t)T * C, GPT_CLS_GRAD);
}
static void ck_layernorm_backward(gpt_backend *be, void *dx, void *dw, void *db, const void *dout,
                                  const void *x, const void *w, const float *mean,
                                  const float *rstd, int N, int C) {
    BASE->layernorm_backward(be, dx, dw, db, dout, x, w, mean, rstd, N, C);
    issued(be, "layernorm_backward");
    output(be, dx, NC, GPT_CLS_ACT);
    output(be, dw, (size_t)C, GPT_CLS_GRAD);
    output(be, db, (size_t)C, GPT_CLS_GRAD);
}
static void ck_matmul_backward(gpt_backend *be, void *din, void *dw, void *dbias, const void *dout,
                               const void *in, const void *w, const void *gelu_pre, int N, int IC,
                               int OC) {
    BASE->matmul_backward(be, din, dw, dbias, dout, in, w, gelu_pre, N, IC, OC);
    issued(be, "matmul_backward");
    output(be, din, (size_t)N * IC, GPT_CLS_ACT);
    output(be, dw, (size_t)OC * IC, GPT_CLS_GRAD);
    output(be, dbias, (size_t)OC, GPT_CLS_GRAD);
}
static void ck_attention_backward(gpt_backend *be, void *dqkv, const void *dout, const void *qkv,
                                  const void *out, const float *lse, int B, int T, int C, int NH) {
    BASE->attention_backward(be, dqkv, dout, qkv, out, lse, B, T, C, NH);
    issued(be, "attention_backward");
    output(be, dqkv, (size_t)B * T * 3 * C, GPT_CLS_ACT);
}
static void ck_sumsq(gpt_backend *be, float *out, const void *grad, size_t n) {
    BASE->sumsq(be, out, grad, n);
    issued(be, "sumsq");
    output(be, out, 1, GPT_CLS_F32);
}
static void ck_adamw(gpt_backend *be, void *params, float *master, void *grad, float *m, float *v,
                     size_t n, size_t n_decay, const gpt_adamw_hyper *hyper,
                     gpt_step_stats *stats) {
    BASE->adamw(be, params, master, grad, m, v, n, n_decay, hyper, stats);
    issued(be, "adamw");
    output(be, params, n, GPT_CLS_PARAM);
    output(be, master, n, GPT_CLS_F32);
    output(be, grad, n, GPT_CLS_GRAD);
    output(be, m, n, GPT_CLS_F32);
    output(be, v, n, GPT_CLS_F32);
    output(be, stats, sizeof *stats / 4, GPT_CLS_F32);
}
static void ck_argmax(gpt_backend *be, int *out, const void *logits, int N, int V, int Vp, int *pos,
                      int *hist, int S) {
    BASE->argmax(be, out, logits, N, V, Vp, pos, hist, S);
    issued(be, "argmax");
    output(be, out, (size_t)N, GPT_CLS_I32);
    output(be, pos, (size_t)N, GPT_CLS_I32);
    output(be, pos ? hist : NULL, (size_t)N * S, GPT_CLS_I32);
}
static int ck_matmul_ln_forward(gpt_backend *be, void *out, void *pre, const void *x,
                                const void *lnw, const void *lnb, float eps, const void *w,
                                const void *bias, int N, int IC, int OC, int gelu) {
    const char *op = "matmul_ln_forward";
    early(be, op, "lnw", lnw, (size_t)IC, GPT_CLS_PARAM);
    early(be, op, "lnb", lnb, (size_t)IC, GPT_CLS_PARAM);
    early(be, op, "bias", bias, (size_t)OC, GPT_CLS_PARAM);
    if (!BASE->matmul_ln_forward(be, out, pre, x, lnw, lnb, eps, w, bias, N, IC, OC, gelu))
        return 0;
    issued(be, op);
    output(be, out, (size_t)N * OC, GPT_CLS_ACT);
    output(be, gelu ? pre : NULL, (size_t)N * OC, GPT_CLS_ACT);
    return 1;
}
static int ck_matmul_residual_forward(gpt_backend *be, void *x, const void *in, const void *w,
                                      const void *bias, int N, int IC, int OC) {
    const char *op = "matmul_residual_forward";
    early(be, op, "x", x, (size_t)N * OC, GPT_CLS_ACT);
    early(be, op, "bias", bias, (size_t)OC, GPT_CLS_PARAM);
    if (!BASE->matmul_residual_forward(be, x, in, w, bias, N, IC, OC)) return 0;
    issued(be, op);
    output(be, x, (size_t)N * OC, GPT_CLS_ACT);
    return 1;
}

static int ck_attention_kv_residual_forward(gpt_backend *be, void *x, const void *qkv,
                                            void *kcache, void *vcache, const int *pos0, int B,
                                            int S, int C, int NH, const void *w, const void *bias) {
    const char *op = "attention_kv_residual_forward";
    size_t cache = (size_t)B * S * C;
    early(be, op, "pos0", pos0, (size_t)B, GPT_CLS_I32);
    early(be, op, "kcache", kcache, cache, GPT_CLS_ACT);
    early(be, op, "vcache", vcache, cache, GPT_CLS_ACT);
    early(be, op, "x", x, (size_t)B * C, GPT_CLS_ACT);
    early(be, op, "bias", bias, (size_t)C, GPT_CLS_PARAM);
    if (!BASE->attention_kv_residual_forward(be, x, qkv, kcache, vcache, pos0, B, S, C, NH, w, bias))
        return 0;
    issued(be, op);
    output(be, x, (size_t)B * C, GPT_CLS_ACT);
    output(be, kcache, cache, GPT_CLS_ACT);
    output(be, vcache, cache, GPT_CLS_ACT);
    return 1;
}

static void ck_matmul_q8_forward(gpt_backend *be, void *out, void *pre, const void *in,
                                 const void *wq, const void *bias, int N, int IC, int OC, int gelu) {
    early(be, "matmul_q8_forward", "bias", bias, (size_t)OC, GPT_CLS_PARAM);
    BASE->matmul_q8_forward(be, out, pre, in, wq, bias, N, IC, OC, gelu);
    issued(be, "matmul_q8_forward");
    output(be, out, (size_t)N * OC, GPT_CLS_ACT);
    output(be, gelu ? pre : NULL, (size_t)N * OC, GPT_CLS_ACT);
}

int gpt_backend_check_wrap(gpt_backend *be, gpt_error *err) {
    check_table *t = calloc(1, sizeof *t);
    if (!t) {
        gpt_backend_destroy(be);
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    }
    const gpt_backend_ops *b = be->ops;
    t->base = b;
    t->ops = *b;
    gpt_backend_ops *o = &t->ops;
    o->destroy = ck_destroy;
    o->memset0 = ck_memset0;
    o->upload = ck_upload;
    o->download = ck_download;
    o->sync = ck_sync;
    o->copy = ck_copy;
    o->nonfinite_count = ck_nonfinite_count;
    o->timer_elapsed_ms = ck_timer_elapsed_ms;
    o->graph_begin = ck_graph_begin;
    o->encoder_forward = ck_encoder_forward;
    o->layernorm_forward = ck_layernorm_forward;
    o->residual_layernorm_forward = ck_residual_layernorm_forward;
    o->matmul_forward = ck_matmul_forward;
    o->gelu_forward = ck_gelu_forward;
    o->add = ck_add;
    o->attention_forward = ck_attention_forward;
    o->attention_kv_forward = ck_attention_kv_forward;
    o->crossentropy = ck_crossentropy;
    o->sum_f32 = ck_sum_f32;
    o->encoder_backward = ck_encoder_backward;
    o->layernorm_backward = ck_layernorm_backward;
    o->matmul_backward = ck_matmul_backward;
    o->attention_backward = ck_attention_backward;
    o->sumsq = ck_sumsq;
    o->adamw = ck_adamw;
    o->argmax = ck_argmax;
    o->matmul_ln_forward = b->matmul_ln_forward ? ck_matmul_ln_forward : NULL;
    o->matmul_residual_forward = b->matmul_residual_forward ? ck_matmul_residual_forward : NULL;
    o->matmul_q8_forward = b->matmul_q8_forward ? ck_matmul_q8_forward : NULL;
    o->attention_kv_residual_forward =
        b->attention_kv_residual_forward ? ck_attention_kv_residual_forward : NULL;
    be->ops = o;
    return GPT_OK;
}

#endif
