/*
 * model_train.c - the training step, written once over the backend table:
 * forward (embeddings, pre-LN blocks with fused residual+layernorm, tied
 * head, fused cross-entropy), backward in reverse order, and one AdamW
 * call. The host waits for the device once per step, to read the loss,
 * the gradient norm and whether the update was skipped. In data-parallel
 * runs the backward hands each layer's gradients to the communicator as
 * it finishes them (model_dist.c), so that they travel while the layers
 * below are still computed.
 *
 * Notation: N = B*T positions; X(l) the residual stream entering layer l
 * (X(L) leaves the last one).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "util.h"

/* Lays out the training activations for (B, T); layers may be NULL when
 * only the sizes are wanted. Returns ACT elements. */
static size_t layout_train(const gpt_config *c, int B, int T, int recompute, train_acts *ta,
                           layer_acts *layers) {
    size_t N = (size_t)B * T, C = (size_t)c->n_embd, F = (size_t)c->mlp_hidden;
    size_t L = (size_t)c->n_layer, NH = (size_t)c->n_head, Vp = (size_t)c->padded_vocab;
    size_t a = 0, f = 0, i = 0;
    memset(ta, 0, sizeof *ta);
    ta->B = B;
    ta->T = T;
    ta->x = gpt_take(&a, (L + 1) * N * C);
    for (size_t l = 0; l < L; l++) {
        layer_acts la;
        la.ln1 = gpt_take(&a, N * C);
        la.qkv = gpt_take(&a, N * 3 * C);
        la.atty = gpt_take(&a, N * C);
        la.res2 = gpt_take(&a, N * C);
        la.ln2 = gpt_take(&a, N * C);
        la.fch = gpt_take(&a, N * F);
        la.fch_gelu = recompute ? 0 : gpt_take(&a, N * F);
        la.ln1_mean = gpt_take(&f, N);
        la.ln1_rstd = gpt_take(&f, N);
        la.ln2_mean = gpt_take(&f, N);
        la.ln2_rstd = gpt_take(&f, N);
        la.lse = gpt_take(&f, NH * N);
        if (layers) layers[l] = la;
    }
    ta->lnf = gpt_take(&a, N * C);
    ta->logits = gpt_take(&a, N * Vp);
    ta->scratch = gpt_take(&a, N * C);
    ta->dres = gpt_take(&a, N * C);
    ta->dqkv = gpt_take(&a, N * 3 * C);
    ta->dfch = gpt_take(&a, N * F);
    ta->gelu_buf = recompute ? gpt_take(&a, N * F) : 0;
    ta->lnf_mean = gpt_take(&f, N);
    ta->lnf_rstd = gpt_take(&f, N);
    ta->losses = gpt_take(&f, N);
    ta->hyper = gpt_take(&f, sizeof(gpt_adamw_hyper) / 4);
    ta->stats = gpt_take(&f, sizeof(gpt_step_stats) / 4);
    gpt_take(&i, 2 * N); /* tokens (N), targets (N) */
    ta->act_elems = a;
    ta->f32_elems = f;
    ta->i32_elems = i;
    return a;
}

size_t gpt_train_act_elems(const gpt_config *c, int B, int T, int recompute, size_t *f32,
                           size_t *i32) {
    train_acts ta;
    size_t a = layout_train(c, B, T, recompute, &ta, NULL);
    *f32 = ta.f32_elems;
    *i32 = ta.i32_elems;
    return a;
}

void gpt_train_free(gpt_model *m) {
    gpt_backend *be = m->be;
    if (!be) return;
    if (m->grads) be->ops->free(be, m->grads);
    if (m->m) be->ops->free(be, m->m); /* m and v share one allocation */
    if (m->ta.act) be->ops->free(be, m->ta.act); /* and so do the activations */
    free(m->ta.layers);
    free(m->ta.host_i32);
    m->grads = NULL;
    m->m = m->v = NULL;
    m->opt_n = 0;
    memset(&m->ta, 0, sizeof m->ta);
    m->train_ready = 0;
}

/* ---------------------------------------------------------- diagnostics */

static void prof_mark(gpt_model *m, const char *name, int layer) {
    if (!m->rt.profile || m->prof_n >= m->prof_cap) return;
    m->prof[m->prof_n].name = name;
    m->prof[m->prof_n].layer = layer;
    m->be->ops->timer_record(m->be, m->prof_n);
    m->prof_n++;
}

void gpt_op_done(gpt_model *m, const char *name, int layer, const void *out, size_t n, int cls) {
    if (!m->rt.check || m->check_msg[0]) return;
    long bad = m->be->ops->nonfinite_count(m->be, out, n, cls);
    if (bad > 0) {
        if (layer >= 0)
            snprintf(m->check_msg, sizeof m->check_msg,
                     "--check: %s in layer %d produced %ld non-finite values (first bad op)", name,
                     layer, bad);
        else
            snprintf(m->check_msg, sizeof m->check_msg,
                     "--check: %s produced %ld non-finite values (first bad op)", name, bad);
    }
}

/* Runs op `call`, timing it under --profile and scanning `out` (n elements
 * of class cls) under --check. */
#define OP(name, layer, out, n, cls, call)                                                  \
    do {                                                                                  \
        prof_mark(m, name, layer);                                                        \
        call;                                                                             \
        gpt_op_done(m, name, layer, out, n, cls);                                         \
        dist_progress(m);                                                                 \
    } while (0)

int gpt_profile_report(const gpt_model *m, char *buf, size_t len) {
    if (!m->rt.profile || m->prof_n < 2) return snprintf(buf, len, "(no profile recorded)\n");
    /* Aggregate consecutive-slot intervals by op name, in first-seen order. */
    int n = m->prof_n - 1;
    const char **names = calloc((size_t)n, sizeof *names);
    double *ms = calloc((size_t)n, sizeof *ms);
    int *count = calloc((size_t)n, sizeof *count);
    if (!names || !ms || !count) {
        free(names);
        free(ms);
        free(count);
        return snprintf(buf, len, "(out of memory)\n");
    }
    int k = 0;
    double total = 0;
    for (int i = 0; i < n; i++) {
        double t = m->be->ops->timer_elapsed_ms(m->be, i, i + 1);
        total += t;
        int j = 0;
        while (j < k && strcmp(names[j], m->prof[i].name)) j++;
        if (j == k) names[k++] = m->prof[i].name;
        ms[j] += t;
        count[j]++;
    }
    /* Sort by time, largest first. */
    for (int a = 0; a < k; a++)
        for (int b = a + 1; b < k; b++)
            if (ms[b] > ms[a]) {
                double tm = ms[a];
                ms[a] = ms[b];
                ms[b] = tm;
                const char *tn = names[a];
                names[a] = names[b];
                names[b] = tn;
                int tc = count[a];
                count[a] = count[b];
                count[b] = tc;
            }
    size_t used = 0;
    int w = snprintf(buf, len, "%-28s %6s %10s %7s\n", "operation", "calls", "ms", "share");
    used += w > 0 ? (size_t)w : 0;
    for (int i = 0; i < k && used < len; i++) {
        w = snprintf(buf + used, len - used, "%-28s %6d %10.3f %6.1f%%\n", names[i], count[i],
                     ms[i], total > 0 ? 100 * ms[i] / total : 0);
        used += w > 0 ? (size_t)w : 0;
    }
    if (used < len) snprintf(buf + used, len - used, "%-28s %6s %10.3f\n", "total", "", total);
    free(names);
    free(ms);
    free(count);
    return 0;
}

/* ---------------------------------------------------------------- init */

int gpt_train_init(gpt_model *m, const gpt_train_opts *o, gpt_error *err) {
    if (m->quant)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "this model is quantised (int8), which is for inference only: train the "
                        "fp32 model it came from");
    int rc = gpt_train_opts_validate(o, &m->cfg, err);
    if (rc) return rc;
    gpt_backend *be = m->be;
    const gpt_config *c = &m->cfg;
    int same = m->train_ready && m->ta.B == o->batch_size && m->ta.T == o->seq_len &&
               m->topts.recompute == o->recompute;
    if (same) {
        m->topts = *o;
        return GPT_OK;
    }
    /* Activations are re-laid out; gradients and moments survive. */
    if (m->ta.act) be->ops->free(be, m->ta.act);
    free(m->ta.layers);
    free(m->ta.host_i32);
    memset(&m->ta, 0, sizeof m->ta);
    m->train_ready = 0;
    m->graph_epoch++;

    /* Sizes first, and the memory check before any allocation, host
     * buffers included: a checkpoint's trainer state may ask for a batch
     * that does not fit. */
    train_acts ta;
    layout_train(c, o->batch_size, o->seq_len, o->recompute, &ta, NULL);
    size_t host_bytes = 2 * (size_t)o->batch_size * o->seq_len * sizeof(int);
    gpt_shape s = {o->batch_size, o->seq_len, c->n_embd, c->n_head, c->mlp_hidden,
                   c->vocab_size, c->padded_vocab, c->n_layer, c->max_seq_len, 1, m->nparams,
                   0, 0};
    int prof_cap = m->rt.profile ? o->grad_accum * (24 * c->n_layer + 24) + 8 : 0;
    s.n_timers = prof_cap;
    size_t bytes = ta.act_elems * be->cls_size[GPT_CLS_ACT] + ta.f32_elems * 4 +
                   ta.i32_elems * 4 + be->ops->workspace_bytes(be, &s) + host_bytes;
    size_t opt_n = dist_opt_elems(m);
    if (!m->grads) bytes += m->nparams * be->cls_size[GPT_CLS_GRAD] + opt_n * 8;
    if ((rc = gpt_model_check_memory(m, bytes, "training", err))) return rc;
    layer_acts *layers = calloc((size_t)c->n_layer, sizeof *layers);
    if (!layers) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    layout_train(c, o->batch_size, o->seq_len, o->recompute, &ta, layers);
    ta.layers = layers;
    ta.host_i32 = malloc(host_bytes);
    if (!ta.host_i32) {
        free(layers);
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    }
    if (!m->grads) {
        m->grads = be->ops->alloc(be, m->nparams * be->cls_size[GPT_CLS_GRAD]);
        /* The optimizer state is one lifetime: m then v in one buffer. */
        m->m = m->grads ? be->ops->alloc(be, 2 * opt_n * 4) : NULL;
        m->v = m->m ? m->m + opt_n : NULL;
        m->opt_n = m->v ? opt_n : 0;
        if (m->v) {
            be->ops->memset0(be, m->grads, m->nparams * be->cls_size[GPT_CLS_GRAD]);
            be->ops->memset0(be, m->m, 2 * opt_n * 4);
        }
        if (m->v && (rc = dist_train_alloc(m, err))) {
            gpt_train_free(m);
            return rc;
        }
    }
    if (m->v) {
        /* One allocation for the activations: ACT, then F32, then I32. */
        size_t a_bytes = (ta.act_elems * be->cls_size[GPT_CLS_ACT] + 255) / 256 * 256;
        size_t f_bytes = (ta.f32_elems * 4 + 255) / 256 * 256;
        ta.act = be->ops->alloc(be, a_bytes + f_bytes + ta.i32_elems * 4);
        ta.f32 = ta.act ? (float *)((char *)ta.act + a_bytes) : NULL;
        ta.i32 = ta.act ? (int *)((char *)ta.act + a_bytes + f_bytes) : NULL;
    }
    m->ta = ta;
    if (!m->v || !ta.act) {
        rc = gpt_model_backend_error(m, err);
        gpt_train_free(m);
        return rc ? rc : gpt_fail(err, GPT_ERR_NOMEM, "out of memory for training");
    }
    if (prof_cap > m->prof_cap) {
        prof_slot *np = realloc(m->prof, (size_t)prof_cap * sizeof *np);
        if (!np) {
            gpt_train_free(m);
            return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
        }
        m->prof = np;
        m->prof_cap = prof_cap;
    }
    if ((rc = gpt_model_reserve(m, s, err))) {
        gpt_train_free(m);
        return rc;
    }
    m->topts = *o;
    m->train_ready = 1;
    return GPT_OK;
}

/* ------------------------------------------------------------- forward */

/* One micro-batch. reduce: the last of the step, whose backward hands the
 * finished gradients to the communicator. */
static void forward_backward(gpt_model *m, float dloss, int reduce) {
    gpt_backend *be = m->be;
    const gpt_backend_ops *o = be->ops;
    const gpt_config *c = &m->cfg;
    train_acts *ta = &m->ta;
    int B = ta->B, T = ta->T, C = c->n_embd, F = c->mlp_hidden, NH = c->n_head;
    int L = c->n_layer, V = c->vocab_size, Vp = c->padded_vocab;
    size_t N = (size_t)B * T, NC = N * C;
    float eps = c->ln_eps;
#define P(off) gpt_at(m, m->params, (off), GPT_CLS_PARAM)
#define G(off) gpt_at(m, m->grads, (off), GPT_CLS_GRAD)
#define A(off) gpt_at(m, ta->act, (off), GPT_CLS_ACT)
#define X(l) A(ta->x + (size_t)(l) * NC)
#define F32(off) (ta->f32 + (off))
    const int *tokens = ta->i32, *targets = ta->i32 + N;
    int n = (int)N;

    OP("encoder_forward", -1, X(0), NC, GPT_CLS_ACT,
       o->encoder_forward(be, X(0), tokens, NULL, P(m->wte), P(m->wpe), B, T, C, Vp,
                          c->max_seq_len));
    OP("layernorm_forward", 0, A(ta->layers[0].ln1), NC, GPT_CLS_ACT,
       o->layernorm_forward(be, A(ta->layers[0].ln1), F32(ta->layers[0].ln1_mean),
                            F32(ta->layers[0].ln1_rstd), X(0), P(m->lp[0].ln1_w),
                            P(m->lp[0].ln1_b), n, C, eps));
    for (int l = 0; l < L; l++) {
        const layer_params *p = &m->lp[l];
        const layer_acts *la = &ta->layers[l];
        void *gelu_out = ta->gelu_buf ? A(ta->gelu_buf) : A(la->fch_gelu);
        OP("matmul_forward qkv", l, A(la->qkv), N * 3 * C, GPT_CLS_ACT,
           o->matmul_forward(be, A(la->qkv), NULL, A(la->ln1), P(p->qkv_w), P(p->qkv_b), n, C,
                             3 * C, 0));
        OP("attention_forward", l, A(la->atty), NC, GPT_CLS_ACT,
           o->attention_forward(be, A(la->atty), F32(la->lse), A(la->qkv), B, T, C, NH));
        OP("matmul_forward attn.proj", l, A(ta->scratch), NC, GPT_CLS_ACT,
           o->matmul_forward(be, A(ta->scratch), NULL, A(la->atty), P(p->proj_w), P(p->proj_b),
                             n, C, C, 0));
        OP("residual_layernorm_forward", l, A(la->ln2), NC, GPT_CLS_ACT,
           o->residual_layernorm_forward(be, A(la->res2), A(la->ln2), F32(la->ln2_mean),
                                         F32(la->ln2_rstd), X(l), A(ta->scratch), P(p->ln2_w),
                                         P(p->ln2_b), n, C, eps));
        OP("matmul_forward fc+gelu", l, gelu_out, N * F, GPT_CLS_ACT,
           o->matmul_forward(be, gelu_out, A(la->fch), A(la->ln2), P(p->fc_w), P(p->fc_b), n, C,
                             F, 1));
        OP("matmul_forward mlp.proj", l, A(ta->scratch), NC, GPT_CLS_ACT,
           o->matmul_forward(be, A(ta->scratch), NULL, gelu_out, P(p->fc2_w), P(p->fc2_b), n, F,
                             C, 0));
        if (l + 1 < L) {
            const layer_acts *nx = &ta->layers[l + 1];
            OP("residual_layernorm_forward", l + 1, A(nx->ln1), NC, GPT_CLS_ACT,
               o->residual_layernorm_forward(be, X(l + 1), A(nx->ln1), F32(nx->ln1_mean),
                                             F32(nx->ln1_rstd), A(la->res2), A(ta->scratch),
                                             P(m->lp[l + 1].ln1_w), P(m->lp[l + 1].ln1_b), n, C,
                                             eps));
        } else {
            OP("residual_layernorm_forward", -1, A(ta->lnf), NC, GPT_CLS_ACT,
               o->residual_layernorm_forward(be, X(L), A(ta->lnf), F32(ta->lnf_mean),
                                             F32(ta->lnf_rstd), A(la->res2), A(ta->scratch),
                                             P(m->lnf_w), P(m->lnf_b), n, C, eps));
        }
    }
    OP("matmul_forward lm_head", -1, A(ta->logits), N * Vp, GPT_CLS_ACT,
       o->matmul_forward(be, A(ta->logits), NULL, A(ta->lnf), P(m->wte), NULL, n, C, Vp, 0));
    OP("crossentropy", -1, F32(ta->losses), N, GPT_CLS_F32,
       o->crossentropy(be, F32(ta->losses), A(ta->logits), targets, n, V, Vp, dloss, 1));
    OP("sum_f32", -1, F32(ta->stats), 1, GPT_CLS_F32,
       o->sum_f32(be, F32(ta->stats), F32(ta->losses), N, 1));

    /* ------------------------------------------------------ backward */
    OP("memset0", -1, A(ta->dres), NC, GPT_CLS_ACT,
       o->memset0(be, A(ta->dres), NC * be->cls_size[GPT_CLS_ACT]));
    OP("matmul_backward lm_head", -1, A(ta->scratch), NC, GPT_CLS_ACT,
       o->matmul_backward(be, A(ta->scratch), G(m->wte), NULL, A(ta->logits), A(ta->lnf),
                          P(m->wte), NULL, n, C, Vp));
    OP("layernorm_backward", -1, A(ta->dres), NC, GPT_CLS_ACT,
       o->layernorm_backward(be, A(ta->dres), G(m->lnf_w), G(m->lnf_b), A(ta->scratch), X(L),
                             P(m->lnf_w), F32(ta->lnf_mean), F32(ta->lnf_rstd), n, C));
    for (int l = L - 1; l >= 0; l--) {
        const layer_params *p = &m->lp[l];
        const layer_acts *la = &ta->layers[l];
        void *gelu_out = A(la->fch_gelu);
        if (ta->gelu_buf) {
            gelu_out = A(ta->gelu_buf);
            OP("gelu_forward (recompute)", l, gelu_out, N * F, GPT_CLS_ACT,
               o->gelu_forward(be, gelu_out, A(la->fch), N * F));
        }
        OP("matmul_backward mlp.proj", l, A(ta->dfch), N * F, GPT_CLS_ACT,
           o->matmul_backward(be, A(ta->dfch), G(p->fc2_w), G(p->fc2_b), A(ta->dres), gelu_out,
                              P(p->fc2_w), A(la->fch), n, F, C));
        OP("matmul_backward fc", l, A(ta->scratch), NC, GPT_CLS_ACT,
           o->matmul_backward(be, A(ta->scratch), G(p->fc_w), G(p->fc_b), A(ta->dfch),
                              A(la->ln2), P(p->fc_w), NULL, n, C, F));
        OP("layernorm_backward", l, A(ta->dres), NC, GPT_CLS_ACT,
           o->layernorm_backward(be, A(ta->dres), G(p->ln2_w), G(p->ln2_b), A(ta->scratch),
                                 A(la->res2), P(p->ln2_w), F32(la->ln2_mean), F32(la->ln2_rstd),
                                 n, C));
        OP("matmul_backward attn.proj", l, A(ta->scratch), NC, GPT_CLS_ACT,
           o->matmul_backward(be, A(ta->scratch), G(p->proj_w), G(p->proj_b), A(ta->dres),
                              A(la->atty), P(p->proj_w), NULL, n, C, C));
        OP("attention_backward", l, A(ta->dqkv), N * 3 * C, GPT_CLS_ACT,
           o->attention_backward(be, A(ta->dqkv), A(ta->scratch), A(la->qkv), A(la->atty),
                                 F32(la->lse), B, T, C, NH));
        OP("matmul_backward qkv", l, A(ta->scratch), NC, GPT_CLS_ACT,
           o->matmul_backward(be, A(ta->scratch), G(p->qkv_w), G(p->qkv_b), A(ta->dqkv),
                              A(la->ln1), P(p->qkv_w), NULL, n, C, 3 * C));
        OP("layernorm_backward", l, A(ta->dres), NC, GPT_CLS_ACT,
           o->layernorm_backward(be, A(ta->dres), G(p->ln1_w), G(p->ln1_b), A(ta->scratch), X(l),
                                 P(p->ln1_w), F32(la->ln1_mean), F32(la->ln1_rstd), n, C));
        /* Layer l's matrices (qkv, proj, fc, fc2: together in the flat
         * vector, before layer l+1's) are final; its biases and gains go
         * with every layer's in the last bucket. */
        size_t end = l + 1 < L ? m->lp[l + 1].qkv_w : m->ndecay;
        if (reduce) dist_bucket(m, p->qkv_w, end - p->qkv_w);
    }
    OP("encoder_backward", -1, G(m->wte), (size_t)Vp * C, GPT_CLS_GRAD,
       o->encoder_backward(be, G(m->wte), G(m->wpe), A(ta->dres), tokens, B, T, C, Vp));
    if (reduce) { /* wte (the head's and the embedding's) and wpe; every vector */
        dist_bucket(m, 0, m->lp[0].qkv_w);
        dist_bucket(m, m->ndecay, m->nparams - m->ndecay);
    }
#undef P
#undef G
#undef A
#undef X
#undef F32
}

/* ---------------------------------------------------------------- step */

/* Checks the ids, then runs forward + backward over the grad_accum
 * micro-batches of tokens (grad_accum, B, T+1), accumulating gradients and
 * the loss sum in the step statistics. */
static int run_microsteps(gpt_model *m, const int *tokens, gpt_error *err) {
    gpt_backend *be = m->be;
    const gpt_backend_ops *o = be->ops;
    const gpt_train_opts *opt = &m->topts;
    train_acts *ta = &m->ta;
    int B = ta->B, T = ta->T, V = m->cfg.vocab_size;
    size_t N = (size_t)B * T, row = (size_t)T + 1;
    /* Inputs are checked on the host: a bad id is the caller's error. */
    size_t total = (size_t)opt->grad_accum * B * row;
    for (size_t i = 0; i < total; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return gpt_fail(err, GPT_ERR_INVALID,
                            "token id %d at position %zu is outside the vocabulary [0, %d)",
                            tokens[i], i, V);
    int *host = ta->host_i32;
    m->prof_n = 0;
    m->check_msg[0] = 0;
    o->memset0(be, ta->f32 + ta->stats, sizeof(gpt_step_stats));
    /* The mean over every rank's tokens: ranks add their gradients. */
    float dloss = 1.0f / ((float)N * (float)opt->grad_accum * (float)dist_ranks(m));
    /* The first step runs eagerly (libraries initialise lazily); later
     * steps replay what the backend recorded, where it records. */
    int graphs = m->use_graphs && ta->graph_ready;
    for (int a = 0; a < opt->grad_accum; a++) {
        const int *chunk = tokens + (size_t)a * B * row;
        for (int b = 0; b < B; b++) {
            memcpy(host + (size_t)b * T, chunk + (size_t)b * row, (size_t)T * sizeof(int));
            memcpy(host + N + (size_t)b * T, chunk + (size_t)b * row + 1, (size_t)T * sizeof(int));
        }
        o->upload(be, ta->i32, host, 2 * N, GPT_CLS_I32);
        if (!graphs || !o->graph_begin(be, gpt_graph_id(m, GRAPH_MICROSTEP))) {
            forward_backward(m, dloss, a + 1 == opt->grad_accum);
            if (graphs) o->graph_end(be, gpt_graph_id(m, GRAPH_MICROSTEP));
        }
    }
    return GPT_OK;
}

int gpt_train_grads(gpt_model *m, const int *tokens, float *loss, gpt_error *err) {
    if (!m->train_ready)
        return gpt_fail(err, GPT_ERR_INVALID, "gpt_train_grads: call gpt_train_init first");
    if (m->dist)
        return gpt_fail(err, GPT_ERR_INVALID, "gpt_train_grads: single-process models only");
    m->be->ops->memset0(m->be, m->grads, m->nparams * m->be->cls_size[GPT_CLS_GRAD]);
    int rc = run_microsteps(m, tokens, err);
    if (rc) return rc;
    float sv[4];
    m->be->ops->download(m->be, sv, m->ta.f32 + m->ta.stats, 4, GPT_CLS_F32);
    if ((rc = gpt_model_backend_error(m, err))) return rc;
    *loss = sv[0] / ((float)m->ta.B * m->ta.T * m->topts.grad_accum);
    return GPT_OK;
}

int gpt_train_step(gpt_model *m, const int *tokens, gpt_step_info *info, gpt_error *err) {
    if (!m->train_ready)
        return gpt_fail(err, GPT_ERR_INVALID, "gpt_train_step: call gpt_train_init first");
    gpt_backend *be = m->be;
    const gpt_backend_ops *o = be->ops;
    const gpt_train_opts *opt = &m->topts;
    train_acts *ta = &m->ta;
    size_t N = (size_t)ta->B * ta->T * dist_ranks(m); /* positions of the step, every rank's */
    gpt_step_stats *stats = (gpt_step_stats *)(ta->f32 + ta->stats);
    gpt_adamw_hyper *hyper = (gpt_adamw_hyper *)(ta->f32 + ta->hyper);
    int graphs = m->use_graphs && ta->graph_ready;
    int rc = run_microsteps(m, tokens, err);
    if (rc) return rc;
    dist_grads_done(m);
    float lr = gpt_lr_at(opt, m->step);
    int t = m->opt_step + 1;
    float hv[8] = {lr,
                   opt->beta1,
                   opt->beta2,
                   opt->eps,
                   opt->weight_decay,
                   opt->grad_clip,
                   (float)(1.0 - pow((double)opt->beta1, t)),
                   (float)(1.0 - pow((double)opt->beta2, t))};
    o->upload(be, hyper, hv, 8, GPT_CLS_F32);
    if (m->inject_nan) {
        float nan = NAN;
        o->upload(be, &stats->loss_sum, &nan, 1, GPT_CLS_F32);
        m->inject_nan = 0;
    }
    if (!graphs || !o->graph_begin(be, gpt_graph_id(m, GRAPH_ADAMW))) {
        /* Each rank squares its block; the sum over ranks is the norm of
         * the whole gradient, the same on every rank, so that every rank
         * clips and skips alike. */
        size_t lo, n;
        float *master;
        dist_block(m, &lo, &n);
        OP("sumsq", -1, &stats->grad_sumsq, 1, GPT_CLS_F32,
           o->sumsq(be, &stats->grad_sumsq, gpt_at(m, m->grads, lo, GPT_CLS_GRAD), n));
        dist_sum_stats(m, stats);
        dist_update_range(m, &lo, &n, &master);
        size_t n_decay = m->ndecay > lo ? (m->ndecay - lo < n ? m->ndecay - lo : n) : 0;
        OP("adamw", -1, gpt_at(m, m->params, lo, GPT_CLS_PARAM), n, GPT_CLS_PARAM,
           o->adamw(be, gpt_at(m, m->params, lo, GPT_CLS_PARAM), master,
                    gpt_at(m, m->grads, lo, GPT_CLS_GRAD), m->m, m->v, n, n_decay, hyper, stats));
        dist_update_done(m);
        if (graphs) o->graph_end(be, gpt_graph_id(m, GRAPH_ADAMW));
    }
    ta->graph_ready = 1;
    prof_mark(m, "end", -1);
    if ((rc = dist_wait(m, err))) return rc;
    float sv[4];
    o->download(be, sv, stats, 4, GPT_CLS_F32);
    if ((rc = gpt_model_backend_error(m, err))) return rc;
    m->step++;
    int skipped = sv[2] != 0;
    if (skipped) m->bad_streak++;
    else {
        m->opt_step++;
        m->bad_streak = 0;
    }
    if (info) {
        info->step = m->step;
        info->loss = sv[0] / ((float)N * (float)opt->grad_accum);
        info->grad_norm = sv[1];
        info->lr = lr;
        info->skipped = skipped;
        info->bad_streak = m->bad_streak;
    }
    if (m->check_msg[0]) return gpt_fail(err, GPT_ERR_RUNTIME, "%s", m->check_msg);
    if (m->bad_streak >= opt->max_bad_steps)
        return gpt_fail(err, GPT_ERR_RUNTIME,
                        "%d consecutive steps had a non-finite loss or gradient norm (last loss "
                        "%g, norm %g): stopping; lower --lr or check the data",
                        m->bad_streak, (double)(sv[0] / ((float)N * opt->grad_accum)),
                        (double)sv[1]);
    return GPT_OK;
}
