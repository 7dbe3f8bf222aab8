/*
 * model.c - building a model: the named parameter table (one allocation,
 * matrices first so that AdamW decays one contiguous range), GPT-2
 * initialisation, parameter access by name, the memory plan, and loading
 * from our checkpoints or Hugging Face folders.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf.h"
#include "gpt_tokenizer.h"
#include "gpt_dist.h"
#include "model.h"
#include "quant.h"
#include "util.h"

int gpt_model_backend_error(gpt_model *m, gpt_error *err) {
    if (!m->be->err.code) return GPT_OK;
    return gpt_fail(err, m->be->err.code, "%s", m->be->err.msg);
}

typedef struct {
    gpt_model *m;
    size_t off;
    size_t name_used;
    int idx;
    size_t qoff; /* bytes of int8 matrices laid out so far */
} layout_builder;

/* Where a tensor's values live. */
enum { IN_PARAMS = 1, IN_Q8 = 2, IN_BOTH = 3 };

/* Adds a tensor; returns its offset in params (GPT_NO_OFFSET if it has no
 * copy there). An int8 copy gets a byte offset in qw (m->qoff). */
static size_t add_tensor_in(layout_builder *lb, const char *name, int rows, int cols, int decay,
                            int where) {
    gpt_model *m = lb->m;
    int i = lb->idx++;
    gpt_tensor_info *t = &m->tinfo[i];
    size_t nl = strlen(name) + 1;
    memcpy(m->names + lb->name_used, name, nl);
    t->name = m->names + lb->name_used;
    lb->name_used += nl;
    t->ndim = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->numel = (size_t)rows * (size_t)(cols ? cols : 1);
    t->decay = decay;
    m->qoff[i] = GPT_NO_OFFSET;
    if (where & IN_Q8) {
        m->qoff[i] = lb->qoff;
        lb->qoff += (gpt_q8_bytes(rows, cols) + 255) / 256 * 256; /* aligned rows for vector loads */
    }
    if (!(where & IN_PARAMS)) return m->toff[i] = GPT_NO_OFFSET;
    m->toff[i] = gpt_take(&lb->off, t->numel);
    return m->toff[i];
}

static size_t add_tensor(layout_builder *lb, const char *name, int rows, int cols, int decay) {
    return add_tensor_in(lb, name, rows, cols, decay, IN_PARAMS);
}

/* Lays out the parameter table; no device memory yet. With quant, the
 * layers' matrices are int8 only and wte is both (module comment of
 * model.h's qw). */
static int layout_params(gpt_model *m, int quant, gpt_error *err) {
    const gpt_config *c = &m->cfg;
    int L = c->n_layer, C = c->n_embd, F = c->mlp_hidden;
    m->ntensors = 2 + 12 * L + 2;
    m->tinfo = calloc((size_t)m->ntensors, sizeof *m->tinfo);
    m->toff = calloc((size_t)m->ntensors, sizeof *m->toff);
    m->qoff = calloc((size_t)m->ntensors, sizeof *m->qoff);
    m->lp = calloc((size_t)L, sizeof *m->lp);
    m->lq = calloc((size_t)L, sizeof *m->lq);
    /* Longest name "h.<L>.attn.proj.w" plus NUL: 32 bytes is ample per name. */
    m->names = malloc((size_t)m->ntensors * 32);
    if (!m->tinfo || !m->toff || !m->qoff || !m->lp || !m->lq || !m->names)
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory for the parameter table");
    layout_builder lb = {m, 0, 0, 0, 0};
    char name[32];
    int mat = quant ? IN_Q8 : IN_PARAMS;
    m->wte = add_tensor_in(&lb, "wte", c->padded_vocab, C, 1, quant ? IN_BOTH : IN_PARAMS);
    m->q_wte = m->qoff[lb.idx - 1];
    m->wpe = add_tensor(&lb, "wpe", c->max_seq_len, C, 1);
    for (int l = 0; l < L; l++) {
        layer_params *p = &m->lp[l];
        layer_q8 *q = &m->lq[l];
        snprintf(name, sizeof name, "h.%d.attn.qkv.w", l);
        p->qkv_w = add_tensor_in(&lb, name, 3 * C, C, 1, mat);
        q->qkv_w = m->qoff[lb.idx - 1];
        snprintf(name, sizeof name, "h.%d.attn.proj.w", l);
        p->proj_w = add_tensor_in(&lb, name, C, C, 1, mat);
        q->proj_w = m->qoff[lb.idx - 1];
        snprintf(name, sizeof name, "h.%d.mlp.fc.w", l);
        p->fc_w = add_tensor_in(&lb, name, F, C, 1, mat);
        q->fc_w = m->qoff[lb.idx - 1];
        snprintf(name, sizeof name, "h.%d.mlp.proj.w", l);
        p->fc2_w = add_tensor_in(&lb, name, C, F, 1, mat);
        q->fc2_w = m->qoff[lb.idx - 1];
    }
    m->ndecay = lb.off;
    for (int l = 0; l < L; l++) {
        layer_params *p = &m->lp[l];
        snprintf(name, sizeof name, "h.%d.ln1.w", l);
        p->ln1_w = add_tensor(&lb, name, C, 0, 0);
        snprintf(name, sizeof name, "h.%d.ln1.b", l);
        p->ln1_b = add_tensor(&lb, name, C, 0, 0);
        snprintf(name, sizeof name, "h.%d.attn.qkv.b", l);
        p->qkv_b = add_tensor(&lb, name, 3 * C, 0, 0);
        snprintf(name, sizeof name, "h.%d.attn.proj.b", l);
        p->proj_b = add_tensor(&lb, name, C, 0, 0);
        snprintf(name, sizeof name, "h.%d.ln2.w", l);
        p->ln2_w = add_tensor(&lb, name, C, 0, 0);
        snprintf(name, sizeof name, "h.%d.ln2.b", l);
        p->ln2_b = add_tensor(&lb, name, C, 0, 0);
        snprintf(name, sizeof name, "h.%d.mlp.fc.b", l);
        p->fc_b = add_tensor(&lb, name, F, 0, 0);
        snprintf(name, sizeof name, "h.%d.mlp.proj.b", l);
        p->fc2_b = add_tensor(&lb, name, C, 0, 0);
    }
    m->lnf_w = add_tensor(&lb, "lnf.w", C, 0, 0);
    m->lnf_b = add_tensor(&lb, "lnf.b", C, 0, 0);
    GPT_ASSERT(lb.idx == m->ntensors);
    m->nparams = lb.off;
    m->quant = quant;
    m->qw_bytes = lb.qoff;
    return GPT_OK;
}

int gpt_model_check_memory(gpt_model *m, size_t bytes, const char *what, gpt_error *err) {
    size_t free_b = 0, total_b = 0;
    m->be->ops->mem_info(m->be, &free_b, &total_b);
    size_t limit = free_b;
    if (m->rt.memory_limit && m->rt.memory_limit < limit) limit = m->rt.memory_limit;
    if (limit && bytes > limit)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "%s needs %.2f GiB but only %.2f GiB of %s memory is available: use a "
                        "smaller model, batch or sequence length",
                        what, (double)bytes / (1 << 30), (double)limit / (1 << 30),
                        m->device_name);
    return GPT_OK;
}

int gpt_model_reserve(gpt_model *m, gpt_shape s, gpt_error *err) {
    gpt_shape *r = &m->reserved;
    int grew = !r->C;
#define GROW(f)                                                                            \
    if (s.f > r->f) r->f = s.f, grew = 1;
    GROW(B) GROW(T) GROW(C) GROW(NH) GROW(F) GROW(V) GROW(Vp) GROW(L) GROW(maxT) GROW(train)
    GROW(n_params) GROW(n_timers) GROW(q8)
#undef GROW
    if (!grew) return GPT_OK;
    if (m->be->ops->reserve(m->be, r) || m->be->err.code) return gpt_model_backend_error(m, err);
    m->graph_epoch++; /* reserve drops captured graphs */
    return GPT_OK;
}

size_t gpt_model_device_bytes(const gpt_model *m) {
    const gpt_backend *be = m->be;
    size_t n = m->nparams * be->cls_size[GPT_CLS_PARAM] + m->qw_bytes;
    if (m->grads) n += m->nparams * be->cls_size[GPT_CLS_GRAD];
    /* master weights, and the moments when training (ZeRO: this rank's block) */
    n += m->m ? gpt_model_optimizer_bytes(m) : (m->master ? m->nparams * 4 : 0);
    if (m->ta.act)
        n += m->ta.act_elems * be->cls_size[GPT_CLS_ACT] + (m->ta.f32_elems + m->ta.i32_elems) * 4;
    n += m->ia.bytes;
    if (m->kv.k)
        n += 2 * (size_t)m->cfg.n_layer * m->kv.B * m->kv.S * m->cfg.n_embd *
             be->cls_size[GPT_CLS_ACT];
    if (m->reserved.C) n += be->ops->workspace_bytes(m->be, &m->reserved);
    return n;
}

size_t gpt_model_max_tensor(const gpt_model *m) {
    size_t maxn = 0;
    for (int i = 0; i < m->ntensors; i++)
        if (m->tinfo[i].numel > maxn) maxn = m->tinfo[i].numel;
    return maxn;
}

int gpt_model_mem_info(const gpt_model *m, size_t *free_bytes, size_t *total_bytes) {
    return m->be->ops->mem_info(m->be, free_bytes, total_bytes);
}

int gpt_model_build(gpt_model **out, const gpt_config *cfg, const gpt_runtime *rt,
                    gpt_error *err) {
    return gpt_model_build_quant(out, cfg, rt, GPT_QUANT_NONE, err);
}

int gpt_model_build_quant(gpt_model **out, const gpt_config *cfg_in, const gpt_runtime *rt,
                          int quant, gpt_error *err) {
    *out = NULL;
    gpt_config cfg = *cfg_in;
    gpt_config_resolve(&cfg);
    int rc = gpt_config_validate(&cfg, err);
    if (rc) return rc;
    gpt_model *m = calloc(1, sizeof *m);
    if (!m) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    m->cfg = cfg;
    if (rt) m->rt = *rt;
    m->rt.device = NULL; /* the caller's string may not outlive us */
    snprintf(m->tokenizer, sizeof m->tokenizer, "gpt2");
    if ((rc = gpt_backend_create(&m->be, rt, err))) {
        gpt_model_free(m);
        return rc;
    }
    snprintf(m->device_name, sizeof m->device_name, "%s", m->be->name);
    if (quant && !m->be->ops->matmul_q8_forward) {
        gpt_model_free(m);
        return gpt_fail(err, GPT_ERR_INVALID,
                        "the %s backend has no int8 products: run int8 models with --device cpu",
                        m->device_name);
    }
    /* The memory check comes before the parameter table is laid out: the
     * table (about 100 host bytes a tensor) is smaller than the padding
     * alone of the parameters it describes, so a configuration too large
     * for the memory never allocates either (a hostile checkpoint may ask
     * for millions of layers). The size is the layout's, padding included. */
    size_t ntensors = 4 + 12 * (size_t)cfg.n_layer;
    size_t nparams = gpt_config_num_params(&cfg) + ntensors * GPT_ALIGN_ELEMS;
    size_t bytes = nparams * m->be->cls_size[GPT_CLS_PARAM];
    int need_master = m->be->cls_size[GPT_CLS_PARAM] != 4;
    if (need_master) bytes += nparams * 4;
    if (quant) { /* the layers' matrices move to int8; wte gains an int8 copy */
        size_t C = (size_t)cfg.n_embd, F = (size_t)cfg.mlp_hidden, L = (size_t)cfg.n_layer;
        size_t per_layer = gpt_q8_bytes(3 * cfg.n_embd, cfg.n_embd) + gpt_q8_bytes(cfg.n_embd, cfg.n_embd) +
                          gpt_q8_bytes(cfg.mlp_hidden, cfg.n_embd) + gpt_q8_bytes(cfg.n_embd, cfg.mlp_hidden) + 4 * 256;
        bytes -= L * (4 * C * C + 2 * C * F) * m->be->cls_size[GPT_CLS_PARAM];
        bytes += L * per_layer + gpt_q8_bytes(cfg.padded_vocab, cfg.n_embd) + 256;
    }
    if ((rc = gpt_model_check_memory(m, bytes, "the parameters", err)) ||
        (rc = layout_params(m, quant, err))) {
        gpt_model_free(m);
        return rc;
    }
    GPT_ASSERT(m->nparams <= nparams);
    m->params = m->be->ops->alloc(m->be, m->nparams * m->be->cls_size[GPT_CLS_PARAM]);
    if (m->params && need_master) m->master = m->be->ops->alloc(m->be, m->nparams * 4);
    if (m->params && quant) m->qw = m->be->ops->alloc(m->be, m->qw_bytes);
    if (!m->params || (need_master && !m->master) || (quant && !m->qw)) {
        rc = gpt_model_backend_error(m, err);
        gpt_model_free(m);
        return rc ? rc : GPT_ERR_NOMEM;
    }
    /* Alignment padding between tensors stays zero forever. */
    m->be->ops->memset0(m->be, m->params, m->nparams * m->be->cls_size[GPT_CLS_PARAM]);
    if (m->master) m->be->ops->memset0(m->be, m->master, m->nparams * 4);
    if (m->qw) m->be->ops->memset0(m->be, m->qw, m->qw_bytes);
    m->use_graphs = !m->rt.profile && !m->rt.check;
    *out = m;
    return GPT_OK;
}

int gpt_model_create(gpt_model **out, const gpt_config *cfg, const gpt_runtime *rt,
                     uint64_t seed, gpt_error *err) {
    int rc = gpt_model_build(out, cfg, rt, err);
    if (rc) return rc;
    gpt_model *m = *out;
    const gpt_config *c = &m->cfg;
    gpt_rng rng;
    gpt_rng_seed(&rng, seed);
    float *buf = malloc(gpt_model_max_tensor(m) * sizeof(float));
    if (!buf) {
        gpt_model_free(m);
        *out = NULL;
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory initialising parameters");
    }
    float resid_std = 0.02f / sqrtf(2.0f * (float)c->n_layer);
    for (int i = 0; i < m->ntensors && !rc; i++) {
        const gpt_tensor_info *t = &m->tinfo[i];
        const char *n = t->name;
        size_t len = strlen(n);
        if (t->ndim == 2) {
            /* Residual projections get the GPT-2 1/sqrt(2L) scaling. */
            int resid = len > 7 && !strcmp(n + len - 7, ".proj.w");
            float std = resid ? resid_std : 0.02f;
            for (size_t k = 0; k < t->numel; k++) buf[k] = std * gpt_rng_normal(&rng);
            if (!strcmp(n, "wte")) /* rows past the real vocabulary stay zero */
                memset(buf + (size_t)c->vocab_size * c->n_embd, 0,
                       (size_t)(c->padded_vocab - c->vocab_size) * c->n_embd * sizeof(float));
        } else {
            float v = (len > 2 && !strcmp(n + len - 2, ".w")) ? 1.0f : 0.0f; /* ln gains */
            for (size_t k = 0; k < t->numel; k++) buf[k] = v;
        }
        rc = gpt_model_set_tensor(m, i, buf, err);
    }
    free(buf);
    if (rc) {
        gpt_model_free(m);
        *out = NULL;
    }
    return rc;
}

void gpt_model_free(gpt_model *m) {
    if (!m) return;
    gpt_train_free(m);
    gpt_infer_free(m);
    gpt_kv_free(m);
    dist_free(m); /* its communicator uses the backend's stream */
    if (m->be) {
        if (m->params) m->be->ops->free(m->be, m->params);
        if (m->master) m->be->ops->free(m->be, m->master);
        if (m->qw) m->be->ops->free(m->be, m->qw);
        gpt_backend_destroy(m->be);
    }
    free(m->tinfo);
    free(m->toff);
    free(m->qoff);
    free(m->lq);
    free(m->names);
    free(m->lp);
    free(m->tok_blob);
    free(m->prof);
    free(m);
}

const gpt_config *gpt_model_config(const gpt_model *m) { return &m->cfg; }
size_t gpt_model_num_params(const gpt_model *m) { return gpt_config_num_params(&m->cfg); }
const char *gpt_model_device(const gpt_model *m) { return m->be->name; }
const char *gpt_model_precision(const gpt_model *m) {
    return m->be->precision == GPT_PREC_BF16 ? "bf16" : m->be->precision == GPT_PREC_FP16 ? "fp16" : "fp32";
}
const char *gpt_model_device_desc(const gpt_model *m) {
    return m->be->ops->device_desc(m->be);
}
int gpt_model_num_tensors(const gpt_model *m) { return m->ntensors; }
const gpt_tensor_info *gpt_model_tensor(const gpt_model *m, int i) {
    return i >= 0 && i < m->ntensors ? &m->tinfo[i] : NULL;
}
int gpt_model_step(const gpt_model *m) { return m->step; }
void gpt_model_reset_training(gpt_model *m) {
    m->step = m->opt_step = m->bad_streak = 0;
}
long gpt_backend_sync_count(const gpt_model *m) { return m->be->syncs; }
void gpt_debug_inject_nan(gpt_model *m) { m->inject_nan = 1; }

int gpt_model_get_tensor(gpt_model *m, int i, float *dst, gpt_error *err) {
    if (i < 0 || i >= m->ntensors)
        return gpt_fail(err, GPT_ERR_INVALID, "tensor index %d out of range", i);
    if (m->toff[i] == GPT_NO_OFFSET) return gpt_model_get_tensor_dequant(m, i, dst, err);
    if (m->master)
        m->be->ops->download(m->be, dst, m->master + m->toff[i], m->tinfo[i].numel, GPT_CLS_F32);
    else if (dist_sharded_master(m))
        return dist_get_master(m, i, dst, err);
    else
        m->be->ops->download(m->be, dst, gpt_at(m, m->params, m->toff[i], GPT_CLS_PARAM),
                             m->tinfo[i].numel, GPT_CLS_PARAM);
    return gpt_model_backend_error(m, err);
}

int gpt_model_set_tensor(gpt_model *m, int i, const float *src, gpt_error *err) {
    if (i < 0 || i >= m->ntensors)
        return gpt_fail(err, GPT_ERR_INVALID, "tensor index %d out of range", i);
    size_t n = m->tinfo[i].numel;
    for (size_t k = 0; k < n; k++)
        if (!isfinite(src[k]))
            return gpt_fail(err, GPT_ERR_INVALID, "tensor %s has a non-finite value at %zu",
                            m->tinfo[i].name, k);
    if (m->qoff[i] != GPT_NO_OFFSET) return gpt_model_set_tensor_quant(m, i, src, err);
    m->be->ops->upload(m->be, gpt_at(m, m->params, m->toff[i], GPT_CLS_PARAM), src, n,
                       GPT_CLS_PARAM);
    if (m->master) m->be->ops->upload(m->be, m->master + m->toff[i], src, n, GPT_CLS_F32);
    if (dist_sharded_master(m)) dist_set_master(m, i, src);
    return gpt_model_backend_error(m, err);
}

int gpt_model_set_tokenizer(gpt_model *m, const char *name, const void *blob, size_t len,
                            gpt_error *err) {
    if (!name || !*name || strlen(name) >= sizeof m->tokenizer)
        return gpt_fail(err, GPT_ERR_INVALID, "tokenizer name must have 1 to %zu characters",
                        sizeof m->tokenizer - 1);
    for (const char *c = name; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7F)
            return gpt_fail(err, GPT_ERR_INVALID, "the tokenizer name holds a control character");
    /* Checkpoints never name a file to open: a vocabulary that is not built
     * in comes with its bytes. */
    if (!(blob && len) && !gpt_tokenizer_is_builtin(name))
        return gpt_fail(err, GPT_ERR_INVALID,
                        "tokenizer '%s' is not built in (gpt2, bytes): give its file's bytes "
                        "(gpt_tokenizer_serialize)",
                        name);
    void *copy = NULL;
    if (blob && len) {
        copy = malloc(len);
        if (!copy) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
        memcpy(copy, blob, len);
    }
    free(m->tok_blob);
    m->tok_blob = copy;
    m->tok_blob_len = copy ? len : 0;
    snprintf(m->tokenizer, sizeof m->tokenizer, "%s", name);
    return GPT_OK;
}

const char *gpt_model_tokenizer(const gpt_model *m, const void **blob, size_t *len) {
    if (blob) *blob = m->tok_blob;
    if (len) *len = m->tok_blob_len;
    return m->tokenizer;
}

/* ------------------------------------------------------------ memory plan */

/* Element sizes a runtime's backend will use, without creating it. */
static void class_sizes(const gpt_runtime *rt, size_t sz[GPT_CLS_COUNT], int *is_gpu) {
    const char *dev = rt && rt->device ? rt->device : "auto";
    int vk = !strncmp(dev, "vulkan", 6) ||
             (!strcmp(dev, "auto") && !gpt_cuda_backend_probe() && gpt_vulkan_backend_probe_gpu());
    int gpu = vk || !strcmp(dev, "cuda") || (!strcmp(dev, "auto") && gpt_cuda_backend_probe());
    /* half precision is the GPU default (a CPU-type Vulkan device such as
     * lavapipe defaults to fp32: an estimate on the high side there) */
    int bf16 = gpu && (!rt || rt->precision != GPT_PREC_FP32);
    for (int i = 0; i < GPT_CLS_COUNT; i++) sz[i] = 4;
    if (bf16) sz[GPT_CLS_PARAM] = sz[GPT_CLS_ACT] = 2;
    *is_gpu = gpu;
}

/* Element counts of the training / inference activations (model_train.c,
 * model_infer.c lay them out with the same formulas). */
size_t gpt_train_act_elems(const gpt_config *c, int B, int T, int recompute, size_t *f32,
                           size_t *i32);
size_t gpt_infer_act_elems(const gpt_config *c, size_t N, int B, size_t *f32, size_t *i32);

int gpt_memory_estimate(const gpt_config *cfg_in, const gpt_runtime *rt, int B, int T, int train,
                        int recompute, gpt_memory_plan *plan, gpt_error *err) {
    memset(plan, 0, sizeof *plan);
    gpt_config cfg = *cfg_in;
    gpt_config_resolve(&cfg);
    int rc = gpt_config_validate(&cfg, err);
    if (rc) return rc;
    if (B <= 0 || T <= 0)
        return gpt_fail(err, GPT_ERR_INVALID, "batch (%d) and sequence length (%d) must be positive",
                        B, T);
    if ((rc = gpt_config_check_positions(&cfg, B, T, err))) return rc;
    size_t sz[GPT_CLS_COUNT];
    int gpu;
    class_sizes(rt, sz, &gpu);
    /* Same layout as the model, padding included. */
    size_t C = (size_t)cfg.n_embd, F = (size_t)cfg.mlp_hidden, L = (size_t)cfg.n_layer;
    size_t n = gpt_config_num_params(&cfg) + (2 + 12 * L + 2) * GPT_ALIGN_ELEMS;
    (void)C;
    (void)F;
    plan->params = n * sz[GPT_CLS_PARAM];
    if (sz[GPT_CLS_PARAM] != 4) plan->optimizer += n * 4; /* fp32 master */
    size_t f32 = 0, i32 = 0, act;
    if (train) {
        plan->grads = n * sz[GPT_CLS_GRAD];
        plan->optimizer += 2 * n * 4;
        act = gpt_train_act_elems(&cfg, B, T, recompute, &f32, &i32);
    } else {
        act = gpt_infer_act_elems(&cfg, (size_t)B * T, B, &f32, &i32);
    }
    plan->activations = act * sz[GPT_CLS_ACT] + f32 * 4 + i32 * 4;
    plan->total = plan->params + plan->grads + plan->optimizer + plan->activations;
    return GPT_OK;
}

int gpt_memory_check(const gpt_memory_plan *plan, const gpt_runtime *rt, gpt_error *err) {
    gpt_backend *be;
    int rc = gpt_backend_create(&be, rt, err);
    if (rc) return rc;
    size_t free_b = 0, total_b = 0;
    be->ops->mem_info(be, &free_b, &total_b);
    char dev[16];
    snprintf(dev, sizeof dev, "%s", be->name);
    gpt_backend_destroy(be);
    size_t limit = free_b;
    if (rt && rt->memory_limit && rt->memory_limit < limit) limit = rt->memory_limit;
    if (limit && plan->total > limit)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "this run needs %.2f GiB of memory but the %s has %.2f GiB available: use a "
                        "smaller --batch, --seq or model (or --recompute)",
                        (double)plan->total / (1 << 30), dev, (double)limit / (1 << 30));
    return GPT_OK;
}

/* ------------------------------------------------------------------ load */

int gpt_checkpoint_load(gpt_model **out, const char *path, const gpt_runtime *rt,
                        gpt_error *err); /* ckpt.c */

int gpt_model_load(gpt_model **out, const char *path, const gpt_runtime *rt, gpt_error *err) {
    *out = NULL;
    if (gpt_hf_is_checkpoint(path)) return gpt_hf_load(out, path, rt, err);
    return gpt_checkpoint_load(out, path, rt, err);
}
