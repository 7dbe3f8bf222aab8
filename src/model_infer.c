/*
 * model_infer.c - forward passes without training state: evaluation loss,
 * full logits, and KV-cache generation (prefill the prompts in one pass,
 * then one position per row per call). One set of activations for up to
 * cap_N positions serves all of them; nothing is stored per layer except
 * the KV cache (L, B, S, C).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "util.h"

/* Layout for N positions, B rows, `rows` logits rows. */
static size_t layout_infer(const gpt_config *c, size_t N, int B, size_t rows, infer_acts *ia,
                           size_t *f32, size_t *i32) {
    size_t C = (size_t)c->n_embd, F = (size_t)c->mlp_hidden, Vp = (size_t)c->padded_vocab;
    size_t a = 0;
    ia->x = gpt_take(&a, N * C);
    ia->ln = gpt_take(&a, N * C);
    ia->qkv = gpt_take(&a, N * 3 * C);
    ia->atty = gpt_take(&a, N * C);
    ia->scratch = gpt_take(&a, N * C);
    ia->fch = gpt_take(&a, N * F);
    ia->logits = gpt_take(&a, rows * Vp);
    *f32 = N + 16;          /* losses (N), loss sum */
    *i32 = 2 * N + (size_t)B; /* tokens (N), targets (N), pos0 (B) */
    return a;
}

size_t gpt_infer_act_elems(const gpt_config *c, size_t N, int B, size_t *f32, size_t *i32) {
    infer_acts ia;
    return layout_infer(c, N, B, N, &ia, f32, i32);
}

void gpt_infer_free(gpt_model *m) {
    if (!m->be) return;
    if (m->ia.act) m->be->ops->free(m->be, m->ia.act); /* f32 and i32 live in it too */
    free(m->ia.host_logits);
    memset(&m->ia, 0, sizeof m->ia);
}

void gpt_kv_free(gpt_model *m) {
    if (!m->be) return;
    if (m->kv.k) m->be->ops->free(m->be, m->kv.k); /* v lives in the same allocation */
    free(m->kv.len);
    memset(&m->kv, 0, sizeof m->kv);
}

/* Makes room for N positions in B rows with `rows` logits rows. */
static int infer_reserve(gpt_model *m, size_t N, int B, size_t rows, gpt_error *err) {
    infer_acts *ia = &m->ia;
    if (ia->act && N <= ia->cap_N && B <= ia->cap_B && rows <= ia->logits_rows) return GPT_OK;
    if (N < ia->cap_N) N = ia->cap_N;
    if (B < ia->cap_B) B = ia->cap_B;
    if (rows < ia->logits_rows) rows = ia->logits_rows;
    gpt_infer_free(m);
    gpt_backend *be = m->be;
    const gpt_config *c = &m->cfg;
    infer_acts n;
    memset(&n, 0, sizeof n);
    size_t f32, i32, a = layout_infer(c, N, B, rows, &n, &f32, &i32);
    int T = (int)((N + (size_t)B - 1) / (size_t)B);
    gpt_shape s = {B, T, c->n_embd, c->n_head, c->mlp_hidden, c->vocab_size, c->padded_vocab,
                   c->n_layer, c->max_seq_len, 0, m->nparams, 0, m->quant != 0};
    size_t bytes = a * be->cls_size[GPT_CLS_ACT] + (f32 + i32) * 4 + be->ops->workspace_bytes(be, &s);
    int rc = gpt_model_check_memory(m, bytes, "inference", err);
    if (rc) return rc;
    /* One allocation: ACT, then F32, then I32. */
    size_t a_bytes = (a * be->cls_size[GPT_CLS_ACT] + 255) / 256 * 256, f_bytes = (f32 * 4 + 255) / 256 * 256;
    n.act = be->ops->alloc(be, a_bytes + f_bytes + i32 * 4);
    n.f32 = n.act ? (float *)((char *)n.act + a_bytes) : NULL;
    n.i32 = n.act ? (int *)((char *)n.act + a_bytes + f_bytes) : NULL;
    n.cap_N = N;
    n.cap_B = B;
    n.logits_rows = rows;
    if (n.act && c->padded_vocab != c->vocab_size) {
        n.host_logits = malloc(rows * (size_t)c->padded_vocab * sizeof(float));
        if (!n.host_logits) {
            be->ops->free(be, n.act);
            n.act = NULL;
        }
    }
    m->ia = n;
    m->kv.decode_ready = 0;
    m->kv.rows_ready = 0;
    m->graph_epoch++; /* graphs captured old pointers */
    if (!n.act) {
        rc = gpt_model_backend_error(m, err);
        gpt_infer_free(m);
        return rc ? rc : gpt_fail(err, GPT_ERR_NOMEM, "out of memory for inference");
    }
    n.bytes = a_bytes + f_bytes + i32 * 4;
    m->ia.bytes = n.bytes;
    if (m->kv.S > s.T) s.T = m->kv.S;
    if ((rc = gpt_model_reserve(m, s, err))) {
        gpt_infer_free(m);
        return rc;
    }
    return GPT_OK;
}

static int check_tokens(const gpt_model *m, const int *t, size_t n, gpt_error *err) {
    for (size_t i = 0; i < n; i++)
        if (t[i] < 0 || t[i] >= m->cfg.vocab_size)
            return gpt_fail(err, GPT_ERR_INVALID,
                            "token id %d at position %zu is outside the vocabulary [0, %d)", t[i],
                            i, m->cfg.vocab_size);
    return GPT_OK;
}

/* out = in @ W^T + bias (GELU as matmul_forward) for one of the model's
 * matrices: its int8 copy (byte qoff of qw) in a quantised model, else its
 * PARAM values (element off of params). The only place inference cares
 * which form the weights have. */
static void infer_matmul(gpt_model *m, void *out, void *pre, const void *in, size_t off,
                         size_t qoff, const void *bias, int N, int IC, int OC, int gelu) {
    gpt_backend *be = m->be;
    if (m->quant)
        be->ops->matmul_q8_forward(be, out, pre, in, (char *)m->qw + qoff, bias, N, IC, OC, gelu);
    else
        be->ops->matmul_forward(be, out, pre, in, gpt_at(m, m->params, off, GPT_CLS_PARAM), bias,
                                N, IC, OC, gelu);
}

/* How infer_layers uses the KV cache. */
enum { KV_NONE = 0, KV_AT_POS = 1, KV_PREFILL = 2 };

/* Forward over the B x Tq tokens in ia.i32. With KV_AT_POS, attention
 * reads and extends the cache at the row positions in pos0 (ia.i32 +
 * 2*cap_N); with KV_PREFILL it fills the cache from position 0 (the
 * backend may then run plain causal attention). The B rows are cache rows
 * row0.. (a slot's prefill runs one row). The final layernorm output is
 * left in ia.ln; no logits. encoded: the embeddings are in ia.x already. */
static void infer_layers(gpt_model *m, int B, int Tq, int kv, int encoded, int row0) {
    gpt_backend *be = m->be;
    const gpt_backend_ops *o = be->ops;
    const gpt_config *c = &m->cfg;
    infer_acts *ia = &m->ia;
    int C = c->n_embd, F = c->mlp_hidden, NH = c->n_head, L = c->n_layer;
    int n = B * Tq;
    size_t NC = (size_t)n * C;
    float eps = c->ln_eps;
#define P(off) gpt_at(m, m->params, (off), GPT_CLS_PARAM)
#define A(off) gpt_at(m, ia->act, (off), GPT_CLS_ACT)
    const int *tokens = ia->i32, *pos0 = kv == KV_AT_POS ? ia->i32 + 2 * ia->cap_N : NULL;
    size_t kv_layer = (size_t)m->kv.B * m->kv.S * C, kv_row = (size_t)row0 * m->kv.S * C;
    if (!encoded) /* (decode_forward issues it itself) */
        o->encoder_forward(be, A(ia->x), tokens, pos0, P(m->wte), P(m->wpe), B, Tq, C,
                           c->padded_vocab, c->max_seq_len);
    gpt_op_done(m, "encoder_forward", -1, A(ia->x), NC, GPT_CLS_ACT);
    o->layernorm_forward(be, A(ia->ln), NULL, NULL, A(ia->x), P(m->lp[0].ln1_w), P(m->lp[0].ln1_b),
                         n, C, eps);
    for (int l = 0; l < L; l++) {
        const layer_params *p = &m->lp[l];
        const layer_q8 *q = &m->lq[l];
        infer_matmul(m, A(ia->qkv), NULL, A(ia->ln), p->qkv_w, q->qkv_w, P(p->qkv_b), n, C, 3 * C,
                     0);
        if (kv)
            o->attention_kv_forward(be, A(ia->atty), A(ia->qkv),
                                    gpt_at(m, m->kv.k, l * kv_layer + kv_row, GPT_CLS_ACT),
                                    gpt_at(m, m->kv.v, l * kv_layer + kv_row, GPT_CLS_ACT), pos0,
                                    B, Tq, m->kv.S, C, NH);
        else
            o->attention_forward(be, A(ia->atty), NULL, A(ia->qkv), B, Tq, C, NH);
        gpt_op_done(m, "attention", l, A(ia->atty), NC, GPT_CLS_ACT);
        infer_matmul(m, A(ia->scratch), NULL, A(ia->atty), p->proj_w, q->proj_w, P(p->proj_b), n,
                     C, C, 0);
        o->residual_layernorm_forward(be, A(ia->x), A(ia->ln), NULL, NULL, A(ia->x),
                                      A(ia->scratch), P(p->ln2_w), P(p->ln2_b), n, C, eps);
        infer_matmul(m, A(ia->fch), NULL, A(ia->ln), p->fc_w, q->fc_w, P(p->fc_b), n, C, F, 1);
        infer_matmul(m, A(ia->scratch), NULL, A(ia->fch), p->fc2_w, q->fc2_w, P(p->fc2_b), n, F,
                     C, 0);
        int last = l + 1 == L;
        o->residual_layernorm_forward(be, A(ia->x), A(ia->ln), NULL, NULL, A(ia->x),
                                      A(ia->scratch), P(last ? m->lnf_w : m->lp[l + 1].ln1_w),
                                      P(last ? m->lnf_b : m->lp[l + 1].ln1_b), n, C, eps);
        gpt_op_done(m, "block", l, A(ia->x), NC, GPT_CLS_ACT);
    }
#undef A
#undef P
}

/* logits rows [row0, row0+rows) of ia.logits = ia.ln rows [src, src+rows) @ wte^T. */
static void infer_head(gpt_model *m, size_t src, size_t row0, int rows) {
    const gpt_config *c = &m->cfg;
    infer_matmul(m, gpt_at(m, m->ia.act, m->ia.logits + row0 * c->padded_vocab, GPT_CLS_ACT), NULL,
                 gpt_at(m, m->ia.act, m->ia.ln + src * c->n_embd, GPT_CLS_ACT), m->wte, m->q_wte,
                 NULL, rows, c->n_embd, c->padded_vocab, 0);
}

/* out (N,OC) = layernorm(x) @ w^T + bias (GELU if gelu): the backend's
 * folded product where it takes these shapes, else a layernorm into ia.ln
 * and the product. x = ia.x. */
static void ln_matmul(gpt_model *m, void *out, size_t lnw, size_t lnb, const void *w,
                      const void *bias, int N, int IC, int OC, int gelu) {
    gpt_backend *be = m->be;
    const gpt_backend_ops *o = be->ops;
    void *x = gpt_at(m, m->ia.act, m->ia.x, GPT_CLS_ACT), *ln = gpt_at(m, m->ia.act, m->ia.ln, GPT_CLS_ACT);
    const void *gw = gpt_at(m, m->params, lnw, GPT_CLS_PARAM), *gb = gpt_at(m, m->params, lnb, GPT_CLS_PARAM);
    float eps = m->cfg.ln_eps;
    if (o->matmul_ln_forward(be, out, NULL, x, gw, gb, eps, w, bias, N, IC, OC, gelu)) return;
    o->layernorm_forward(be, ln, NULL, NULL, x, gw, gb, N, IC, eps);
    o->matmul_forward(be, out, NULL, ln, w, bias, N, IC, OC, gelu);
}

/* x (N,OC) += in @ w^T + bias: the backend's folded product where it takes
 * these shapes, else the product into ia.scratch and an add. x = ia.x. */
static void matmul_add(gpt_model *m, const void *in, const void *w, const void *bias, int N,
                       int IC, int OC) {
    gpt_backend *be = m->be;
    const gpt_backend_ops *o = be->ops;
    void *x = gpt_at(m, m->ia.act, m->ia.x, GPT_CLS_ACT);
    void *y = gpt_at(m, m->ia.act, m->ia.scratch, GPT_CLS_ACT);
    if (o->matmul_residual_forward(be, x, in, w, bias, N, IC, OC)) return;
    o->matmul_forward(be, y, NULL, in, w, bias, N, IC, OC, 0);
    o->add(be, x, x, y, (size_t)N * OC);
}

/* A decoding step's forward (one position a row, positions in pos0): the
 * logits of the B rows in ia.logits. Where the backend folds the
 * layernorms into the products after them and the residual adds into the
 * products before them, a layer is five operations: qkv (ln1 folded),
 * attention, proj (+= x), fc (ln2 folded), fc2 (+= x); four where the
 * attention and proj fold too; the head may fold the final layernorm. An
 * op the backend declines is issued as the separate ops. A backend
 * without the folded ops, one that declines the first (CUDA in fp32), and
 * --check (which scans every op's output) run infer_layers' step instead. */
static void decode_forward(gpt_model *m, int B) {
    gpt_backend *be = m->be;
    const gpt_backend_ops *o = be->ops;
    const gpt_config *c = &m->cfg;
    infer_acts *ia = &m->ia;
    int C = c->n_embd, F = c->mlp_hidden, L = c->n_layer;
#define P(off) gpt_at(m, m->params, (off), GPT_CLS_PARAM)
#define A(off) gpt_at(m, ia->act, (off), GPT_CLS_ACT)
    const int *pos0 = ia->i32 + 2 * ia->cap_N;
    const layer_params *p0 = &m->lp[0];
    o->encoder_forward(be, A(ia->x), ia->i32, pos0, P(m->wte), P(m->wpe), B, 1, C, c->padded_vocab,
                       c->max_seq_len);
    /* the folded ops take fp32/bf16 weights: an int8 model runs the plain ones */
    if (!o->matmul_ln_forward || !o->matmul_residual_forward || m->rt.check || m->quant ||
        !o->matmul_ln_forward(be, A(ia->qkv), NULL, A(ia->x), P(p0->ln1_w), P(p0->ln1_b),
                              c->ln_eps, P(p0->qkv_w), P(p0->qkv_b), B, C, 3 * C, 0)) {
        infer_layers(m, B, 1, KV_AT_POS, 1, 0);
        infer_head(m, 0, 0, B);
        return;
    }
    size_t kv_layer = (size_t)m->kv.B * m->kv.S * C;
    for (int l = 0; l < L; l++) {
        const layer_params *p = &m->lp[l];
        if (l > 0) /* x (B,C) -> ln1 -> qkv (B,3C); layer 0's was issued above */
            ln_matmul(m, A(ia->qkv), p->ln1_w, p->ln1_b, P(p->qkv_w), P(p->qkv_b), B, C, 3 * C, 0);
        void *kl = gpt_at(m, m->kv.k, (size_t)l * kv_layer, GPT_CLS_ACT),
             *vl = gpt_at(m, m->kv.v, (size_t)l * kv_layer, GPT_CLS_ACT);
        /* x += attention @ proj, in one op where the backend folds them */
        if (!o->attention_kv_residual_forward ||
            !o->attention_kv_residual_forward(be, A(ia->x), A(ia->qkv), kl, vl, pos0, B, m->kv.S,
                                              C, c->n_head, P(p->proj_w), P(p->proj_b))) {
            o->attention_kv_forward(be, A(ia->atty), A(ia->qkv), kl, vl, pos0, B, 1, m->kv.S, C,
                                    c->n_head);
            matmul_add(m, A(ia->atty), P(p->proj_w), P(p->proj_b), B, C, C);
        }
        ln_matmul(m, A(ia->fch), p->ln2_w, p->ln2_b, P(p->fc_w), P(p->fc_b), B, C, F, 1); /* gelu(fc) (B,F) */
        matmul_add(m, A(ia->fch), P(p->fc2_w), P(p->fc2_b), B, F, C);                /* x += fch @ fc2 */
    }
    /* x -> lnf -> logits (B,Vp), the tied head */
    ln_matmul(m, A(ia->logits), m->lnf_w, m->lnf_b, P(m->wte), NULL, B, C, c->padded_vocab, 0);
#undef A
#undef P
}

/* Downloads `rows` logits rows and keeps the first V columns of each. */
static int download_logits(gpt_model *m, int rows, float *out, gpt_error *err) {
    const gpt_config *c = &m->cfg;
    size_t Vp = (size_t)c->padded_vocab, V = (size_t)c->vocab_size;
    if (Vp == V) {
        m->be->ops->download(m->be, out, gpt_at(m, m->ia.act, m->ia.logits, GPT_CLS_ACT),
                             (size_t)rows * Vp, GPT_CLS_ACT);
        return gpt_model_backend_error(m, err);
    }
    float *tmp = m->ia.host_logits; /* (logits_rows, Vp), allocated with the activations */
    GPT_ASSERT(tmp && (size_t)rows <= m->ia.logits_rows);
    m->be->ops->download(m->be, tmp, gpt_at(m, m->ia.act, m->ia.logits, GPT_CLS_ACT),
                         (size_t)rows * Vp, GPT_CLS_ACT);
    for (int r = 0; r < rows; r++)
        memcpy(out + (size_t)r * V, tmp + (size_t)r * Vp, V * sizeof(float));
    return gpt_model_backend_error(m, err);
}

static int check_bt(const gpt_model *m, int B, int T, gpt_error *err) {
    if (B <= 0) return gpt_fail(err, GPT_ERR_INVALID, "batch (%d) must be positive", B);
    if (T <= 0 || T > m->cfg.max_seq_len)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "sequence length (%d) must be between 1 and the model's max_seq_len (%d)",
                        T, m->cfg.max_seq_len);
    return gpt_config_check_positions(&m->cfg, B, T, err);
}

int gpt_forward_logits(gpt_model *m, const int *tokens, int B, int T, float *logits,
                       gpt_error *err) {
    int rc = check_bt(m, B, T, err);
    size_t N = (size_t)B * T;
    if (rc || (rc = check_tokens(m, tokens, N, err)) || (rc = infer_reserve(m, N, B, N, err)))
        return rc;
    m->check_msg[0] = 0;
    m->be->ops->upload(m->be, m->ia.i32, tokens, N, GPT_CLS_I32);
    infer_layers(m, B, T, KV_NONE, 0, 0);
    infer_head(m, 0, 0, (int)N);
    rc = download_logits(m, (int)N, logits, err);
    if (!rc && m->check_msg[0]) rc = gpt_fail(err, GPT_ERR_RUNTIME, "%s", m->check_msg);
    return rc;
}

int gpt_eval_loss(gpt_model *m, const int *tokens, int B, int T, double *loss, gpt_error *err) {
    int rc = check_bt(m, B, T, err);
    size_t N = (size_t)B * T;
    if (rc || (rc = check_tokens(m, tokens, (size_t)B * (T + 1), err)) ||
        (rc = infer_reserve(m, N, B, N, err)))
        return rc;
    gpt_backend *be = m->be;
    const gpt_config *c = &m->cfg;
    int *host = malloc(2 * N * sizeof(int));
    if (!host) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    for (int b = 0; b < B; b++) {
        memcpy(host + (size_t)b * T, tokens + (size_t)b * (T + 1), (size_t)T * sizeof(int));
        memcpy(host + N + (size_t)b * T, tokens + (size_t)b * (T + 1) + 1, (size_t)T * sizeof(int));
    }
    be->ops->upload(be, m->ia.i32, host, 2 * N, GPT_CLS_I32);
    free(host);
    m->check_msg[0] = 0;
    infer_layers(m, B, T, KV_NONE, 0, 0);
    infer_head(m, 0, 0, (int)N);
    float *losses = m->ia.f32, *sum = m->ia.f32 + m->ia.cap_N;
    be->ops->crossentropy(be, losses, gpt_at(m, m->ia.act, m->ia.logits, GPT_CLS_ACT),
                          m->ia.i32 + N, (int)N, c->vocab_size, c->padded_vocab, 0, 0);
    be->ops->sum_f32(be, sum, losses, N, 0);
    float s;
    be->ops->download(be, &s, sum, 1, GPT_CLS_F32);
    if ((rc = gpt_model_backend_error(m, err))) return rc;
    if (m->check_msg[0]) return gpt_fail(err, GPT_ERR_RUNTIME, "%s", m->check_msg);
    *loss = (double)s / (double)N;
    return GPT_OK;
}

/* ------------------------------------------------------------- KV cache */

/* Caches for B rows of ctx positions (kept if the shape is unchanged),
 * every row empty. */
static int kv_alloc(gpt_model *m, int B, int ctx, gpt_error *err) {
    int rc = check_bt(m, B, ctx, err);
    if (rc) return rc;
    gpt_backend *be = m->be;
    const gpt_config *c = &m->cfg;
    if (!(m->kv.k && m->kv.B == B && m->kv.S == ctx)) {
        gpt_kv_free(m);
        size_t n;
        if (!gpt_mul_size((size_t)c->n_layer * B, (size_t)ctx * c->n_embd, &n))
            return gpt_fail(err, GPT_ERR_INVALID, "KV cache size overflows");
        size_t bytes = 2 * n * be->cls_size[GPT_CLS_ACT];
        if ((rc = gpt_model_check_memory(m, bytes, "the KV cache", err))) return rc;
        m->kv.len = calloc((size_t)B, sizeof(int));
        /* Keys, values and the greedy history: one allocation. */
        size_t kv_bytes = (2 * n * be->cls_size[GPT_CLS_ACT] + 255) / 256 * 256;
        m->kv.k = m->kv.len ? be->ops->alloc(be, kv_bytes + (size_t)ctx * B * sizeof(int)) : NULL;
        m->kv.v = m->kv.k ? gpt_at(m, m->kv.k, n, GPT_CLS_ACT) : NULL;
        m->kv.history = m->kv.k ? (int *)((char *)m->kv.k + kv_bytes) : NULL;
        if (!m->kv.v) {
            rc = gpt_model_backend_error(m, err);
            gpt_kv_free(m);
            return rc ? rc : gpt_fail(err, GPT_ERR_NOMEM, "out of memory for the KV cache");
        }
        m->kv.B = B;
        m->kv.S = ctx;
        m->kv.rows_ready = 0;
        m->graph_epoch++;
    }
    memset(m->kv.len, 0, (size_t)B * sizeof(int));
    return GPT_OK;
}

int gpt_kv_begin(gpt_model *m, int B, int ctx, gpt_error *err) {
    int rc = kv_alloc(m, B, ctx, err);
    if (rc) return rc;
    /* Prefill needs up to B*ctx positions; decoding keeps B logits rows.
     * Without them the cache is of no use: a later prefill must refuse. */
    if ((rc = infer_reserve(m, (size_t)B * ctx, B, (size_t)B, err))) gpt_kv_free(m);
    return rc;
}

int gpt_kv_length(const gpt_model *m, int b) {
    return m->kv.len && b >= 0 && b < m->kv.B ? m->kv.len[b] : 0;
}

/* The prompts through the layers into the cache (from position 0), and
 * the logits of each row's last prompt position into ia.logits rows 0..B-1. */
static int prefill(gpt_model *m, const int *const *prompts, const int *lens, gpt_error *err) {
    if (!m->kv.k || !m->ia.act) /* (a failed reserve after gpt_kv_begin freed ia) */
        return gpt_fail(err, GPT_ERR_INVALID, "gpt_kv_prefill: call gpt_kv_begin first");
    gpt_backend *be = m->be;
    const gpt_config *c = &m->cfg;
    int B = m->kv.B, Tq = 0, rc;
    for (int b = 0; b < B; b++) {
        if (lens[b] < 1 || lens[b] > m->kv.S)
            return gpt_fail(err, GPT_ERR_INVALID,
                            "prompt %d has %d tokens: it needs 1 to %d (the context)", b, lens[b],
                            m->kv.S);
        if ((rc = check_tokens(m, prompts[b], (size_t)lens[b], err))) return rc;
        if (lens[b] > Tq) Tq = lens[b];
    }
    size_t N = (size_t)B * Tq, C = (size_t)c->n_embd;
    int *host = calloc(N, sizeof(int));
    if (!host) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    /* Shorter prompts are padded with id 0 on the right: causal attention
     * keeps the padding out of the real positions, and decoding overwrites
     * its cache entries before any query can see them. */
    for (int b = 0; b < B; b++) memcpy(host + (size_t)b * Tq, prompts[b], (size_t)lens[b] * sizeof(int));
    be->ops->upload(be, m->ia.i32, host, N, GPT_CLS_I32);
    free(host);
    m->check_msg[0] = 0;
    infer_layers(m, B, Tq, KV_PREFILL, 0, 0);
    /* Each row's last position gathered into scratch rows 0..B-1, then one
     * head product for all of them (not B products of one row: each reads
     * the whole embedding matrix). */
    for (int b = 0; b < B; b++)
        be->ops->copy(be, gpt_at(m, m->ia.act, m->ia.scratch + (size_t)b * C, GPT_CLS_ACT),
                      gpt_at(m, m->ia.act, m->ia.ln + ((size_t)b * Tq + (size_t)(lens[b] - 1)) * C,
                             GPT_CLS_ACT),
                      C * be->cls_size[GPT_CLS_ACT]);
    infer_matmul(m, gpt_at(m, m->ia.act, m->ia.logits, GPT_CLS_ACT), NULL,
                 gpt_at(m, m->ia.act, m->ia.scratch, GPT_CLS_ACT), m->wte, m->q_wte, NULL, B,
                 c->n_embd, c->padded_vocab, 0);
    return GPT_OK;
}

static int prefill_done(gpt_model *m, const int *lens, gpt_error *err) {
    for (int b = 0; b < m->kv.B; b++) m->kv.len[b] = lens[b];
    if (m->check_msg[0]) return gpt_fail(err, GPT_ERR_RUNTIME, "%s", m->check_msg);
    return GPT_OK;
}

int gpt_kv_prefill(gpt_model *m, const int *const *prompts, const int *lens, float *logits,
                   gpt_error *err) {
    int rc = prefill(m, prompts, lens, err);
    if (rc || (rc = download_logits(m, m->kv.B, logits, err))) return rc;
    return prefill_done(m, lens, err);
}

int gpt_kv_prefill_greedy(gpt_model *m, const int *const *prompts, const int *lens, int *ids,
                          gpt_error *err) {
    int rc = prefill(m, prompts, lens, err);
    if (rc) return rc;
    gpt_backend *be = m->be;
    /* the argmax into the decoding step's token slots, B ids downloaded */
    be->ops->argmax(be, m->ia.i32, gpt_at(m, m->ia.act, m->ia.logits, GPT_CLS_ACT), m->kv.B,
                    m->cfg.vocab_size, m->cfg.padded_vocab, NULL, NULL, 0);
    be->ops->download(be, ids, m->ia.i32, (size_t)m->kv.B, GPT_CLS_I32);
    if ((rc = gpt_model_backend_error(m, err))) return rc;
    return prefill_done(m, lens, err);
}

/* G decoding steps over the tokens and positions already on the device
 * (ia tokens (B), pos0 (B)): logits of the new positions, their argmax
 * written back as the next step's tokens and into the history at each
 * row's position (kv.history (B, S)), positions advanced by one. A step's
 * shape never changes and it reads nothing from the host: a backend with
 * graphs records G steps once and replays them (one step, or a chunk of
 * DECODE_CHUNK whose steps follow each other without a graph boundary). */
enum { DECODE_CHUNK = 8 };

static void decode_steps(gpt_model *m, int G, int B) {
    gpt_backend *be = m->be;
    int full = B == m->kv.B, k = 0;
    while (!full && (1 << k) < B) k++;
    int id = gpt_graph_id(m, full ? (G > 1 ? GRAPH_DECODE_CHUNK : GRAPH_DECODE)
                                  : GRAPH_ROWS + 2 * k + (G > 1));
    int ready = full ? m->kv.decode_ready : (int)(m->kv.rows_ready >> k) & 1;
    int graphs = m->use_graphs && ready;
    if (!graphs || !be->ops->graph_begin(be, id)) {
        for (int g = 0; g < G; g++) {
            decode_forward(m, B);
            be->ops->argmax(be, m->ia.i32, gpt_at(m, m->ia.act, m->ia.logits, GPT_CLS_ACT), B,
                            m->cfg.vocab_size, m->cfg.padded_vocab, m->ia.i32 + 2 * m->ia.cap_N,
                            m->kv.history, m->kv.S);
        }
        if (graphs) be->ops->graph_end(be, id);
    }
    if (full) m->kv.decode_ready = 1;
    else m->kv.rows_ready |= 1u << k;
}

/* Checks that every row has room for n more positions and uploads the
 * step's tokens and positions. */
static int decode_begin(gpt_model *m, const int *tokens, int n, gpt_error *err) {
    if (!m->kv.k || !m->ia.act)
        return gpt_fail(err, GPT_ERR_INVALID, "decoding: call gpt_kv_begin first");
    int B = m->kv.B, rc;
    if (n < 1) return gpt_fail(err, GPT_ERR_INVALID, "decoding: %d steps asked for", n);
    for (int b = 0; b < B; b++)
        if (m->kv.len[b] + n > m->kv.S)
            return gpt_fail(err, GPT_ERR_INVALID,
                            "row %d has %d of its %d context positions filled, too few for %d "
                            "more: start again with a shorter prompt, or slide the window",
                            b, m->kv.len[b], m->kv.S, n);
    if ((rc = check_tokens(m, tokens, (size_t)B, err))) return rc;
    m->be->ops->upload(m->be, m->ia.i32, tokens, (size_t)B, GPT_CLS_I32);
    m->be->ops->upload(m->be, m->ia.i32 + 2 * m->ia.cap_N, m->kv.len, (size_t)B, GPT_CLS_I32);
    m->check_msg[0] = 0;
    return GPT_OK;
}

int gpt_kv_decode(gpt_model *m, const int *tokens, float *logits, gpt_error *err) {
    int rc = decode_begin(m, tokens, 1, err);
    if (rc) return rc;
    decode_steps(m, 1, m->kv.B);
    if ((rc = download_logits(m, m->kv.B, logits, err))) return rc;
    for (int b = 0; b < m->kv.B; b++) m->kv.len[b]++;
    if (m->check_msg[0]) return gpt_fail(err, GPT_ERR_RUNTIME, "%s", m->check_msg);
    return GPT_OK;
}

int gpt_kv_decode_greedy(gpt_model *m, const int *tokens, int n, int *ids, gpt_error *err) {
    int rc = decode_begin(m, tokens, n, err);
    if (rc) return rc;
    int B = m->kv.B, S = m->kv.S;
    int *hist = malloc((size_t)B * S * sizeof(int));
    if (!hist) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    /* Each step reads the previous step's argmax from the device and
     * records it at the row's position in the history: the host waits once,
     * for the history. */
    int k = 0;
    for (; n - k >= DECODE_CHUNK; k += DECODE_CHUNK) decode_steps(m, DECODE_CHUNK, B);
    for (; k < n; k++) decode_steps(m, 1, B);
    m->be->ops->download(m->be, hist, m->kv.history, (size_t)B * S, GPT_CLS_I32);
    if ((rc = gpt_model_backend_error(m, err))) {
        free(hist);
        return rc;
    }
    for (int j = 0; j < n; j++)
        for (int b = 0; b < B; b++) ids[(size_t)j * B + b] = hist[(size_t)b * S + m->kv.len[b] + j];
    free(hist);
    for (int b = 0; b < B; b++) m->kv.len[b] += n;
    if (m->check_msg[0]) return gpt_fail(err, GPT_ERR_RUNTIME, "%s", m->check_msg);
    return GPT_OK;
}

/* ------------------------------------------------ slots (continuous batching)
 *
 * The cache's rows are slots that sequences join and leave while the
 * others keep their state. A slot's prefill runs its prompt alone (B = 1,
 * the cache pointers moved to its row), exactly as a one-row
 * gpt_kv_prefill does. A decoding step runs the first r rows of the
 * cache, r a power of two covering every listed slot (all of them with
 * GPT_SLOTS_FIXED_SHAPE), so that a backend with graphs replays one
 * recorded step per r whatever joins or leaves: rows not in the step get
 * the position S, where attention_kv_forward leaves them untouched, and
 * whatever the products compute for them is never read. No row's results
 * depend on another row's contents, only on r where a backend's products
 * round differently at different batch sizes. */

int gpt_slots_begin(gpt_model *m, int n_slots, int ctx, int flags, gpt_error *err) {
    if (flags & ~GPT_SLOTS_FIXED_SHAPE)
        return gpt_fail(err, GPT_ERR_INVALID, "gpt_slots_begin: unknown flags 0x%x", flags);
    int rc = kv_alloc(m, n_slots, ctx, err);
    if (rc) return rc;
    m->kv.fixed = flags & GPT_SLOTS_FIXED_SHAPE;
    /* One prompt of up to ctx positions, or one step of n_slots rows; the
     * slots are of no use without them. */
    size_t N = (size_t)(ctx > n_slots ? ctx : n_slots);
    if ((rc = infer_reserve(m, N, n_slots, (size_t)n_slots, err))) {
        gpt_kv_free(m);
        return rc;
    }
    /* Rows a step leaves untouched keep what the buffers held before; from
     * zeros, that is always finite, so --check's scans see no garbage. */
    m->be->ops->memset0(m->be, m->ia.act, m->ia.bytes);
    return gpt_model_backend_error(m, err);
}

int gpt_slots_count(const gpt_model *m) { return m->kv.k ? m->kv.B : 0; }

void gpt_slot_clear(gpt_model *m, int slot) {
    if (m->kv.len && slot >= 0 && slot < m->kv.B) m->kv.len[slot] = 0;
}

static int check_slot(const gpt_model *m, int slot, gpt_error *err) {
    if (!m->kv.k) return gpt_fail(err, GPT_ERR_INVALID, "slots: call gpt_slots_begin first");
    if (slot < 0 || slot >= m->kv.B)
        return gpt_fail(err, GPT_ERR_INVALID, "slot %d does not exist (there are %d)", slot,
                        m->kv.B);
    return GPT_OK;
}

int gpt_slot_prefill(gpt_model *m, int slot, const int *tokens, int n, float *logits, int *id,
                     gpt_error *err) {
    int rc = check_slot(m, slot, err);
    if (rc) return rc;
    if (n < 1 || n > m->kv.S)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "a prompt of %d tokens does not fit a slot: it needs 1 to %d (the context)",
                        n, m->kv.S);
    if ((rc = check_tokens(m, tokens, (size_t)n, err))) return rc;
    gpt_backend *be = m->be;
    const gpt_config *c = &m->cfg;
    size_t C = (size_t)c->n_embd;
    m->kv.len[slot] = 0; /* until its cache is filled */
    m->check_msg[0] = 0;
    be->ops->upload(be, m->ia.i32, tokens, (size_t)n, GPT_CLS_I32);
    infer_layers(m, 1, n, KV_PREFILL, 0, slot);
    /* The head on the last position, as prefill() issues it for one row. */
    be->ops->copy(be, gpt_at(m, m->ia.act, m->ia.scratch, GPT_CLS_ACT),
                  gpt_at(m, m->ia.act, m->ia.ln + (size_t)(n - 1) * C, GPT_CLS_ACT),
                  C * be->cls_size[GPT_CLS_ACT]);
    infer_matmul(m, gpt_at(m, m->ia.act, m->ia.logits, GPT_CLS_ACT), NULL,
                 gpt_at(m, m->ia.act, m->ia.scratch, GPT_CLS_ACT), m->wte, m->q_wte, NULL, 1,
                 c->n_embd, c->padded_vocab, 0);
    if (id) {
        be->ops->argmax(be, m->ia.i32, gpt_at(m, m->ia.act, m->ia.logits, GPT_CLS_ACT), 1,
                        c->vocab_size, c->padded_vocab, NULL, NULL, 0);
        be->ops->download(be, id, m->ia.i32, 1, GPT_CLS_I32);
    }
    if (logits) rc = download_logits(m, 1, logits, err);
    else if (!id) be->ops->sync(be);
    if (rc || (rc = gpt_model_backend_error(m, err))) return rc;
    if (m->check_msg[0]) return gpt_fail(err, GPT_ERR_RUNTIME, "%s", m->check_msg);
    m->kv.len[slot] = n;
    return GPT_OK;
}

/* The rows a step over these slots runs: the smallest power of two that
 * covers the highest listed slot (a few sequences cost what a small batch
 * costs, and a backend with graphs records one step per power of two), or
 * all of them with GPT_SLOTS_FIXED_SHAPE. */
static int slot_rows(const gpt_model *m, int n, const int *slots) {
    int hi = 0, r = 1;
    for (int i = 0; i < n; i++)
        if (slots[i] + 1 > hi) hi = slots[i] + 1;
    while (r < hi && r < (1 << 26)) r *= 2;
    return m->kv.fixed || r >= m->kv.B ? m->kv.B : r;
}

/* Checks a step over n listed slots with room for `steps` positions each,
 * and uploads every row's token and position (S for rows not listed). */
static int slots_stage(gpt_model *m, int n, const int *slots, const int *tokens, int steps,
                       gpt_error *err) {
    if (!m->kv.k) return gpt_fail(err, GPT_ERR_INVALID, "slots: call gpt_slots_begin first");
    int B = m->kv.B, S = m->kv.S, rc;
    if (n < 1 || n > B)
        return gpt_fail(err, GPT_ERR_INVALID, "a step takes 1 to %d slots, got %d", B, n);
    if (steps < 1) return gpt_fail(err, GPT_ERR_INVALID, "decoding: %d steps asked for", steps);
    int *tok = malloc(2 * (size_t)B * sizeof(int)), *pos = tok ? tok + B : NULL;
    if (!tok) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    for (int b = 0; b < B; b++) tok[b] = 0, pos[b] = S;
    rc = check_tokens(m, tokens, (size_t)n, err);
    for (int i = 0; i < n && !rc; i++) {
        int s = slots[i];
        if ((rc = check_slot(m, s, err))) break;
        if (pos[s] != S)
            rc = gpt_fail(err, GPT_ERR_INVALID, "slot %d is listed twice in one step", s);
        else if (m->kv.len[s] == 0)
            rc = gpt_fail(err, GPT_ERR_INVALID, "slot %d is empty: prefill it first", s);
        else if (m->kv.len[s] + steps > S)
            rc = gpt_fail(err, GPT_ERR_INVALID,
                          "slot %d has %d of its %d context positions filled, too few for %d more",
                          s, m->kv.len[s], S, steps);
        tok[s] = tokens[i];
        pos[s] = m->kv.len[s];
    }
    if (!rc) {
        m->be->ops->upload(m->be, m->ia.i32, tok, (size_t)B, GPT_CLS_I32);
        m->be->ops->upload(m->be, m->ia.i32 + 2 * m->ia.cap_N, pos, (size_t)B, GPT_CLS_I32);
        m->check_msg[0] = 0;
    }
    free(tok);
    return rc;
}

static int slots_done(gpt_model *m, int n, const int *slots, int steps, gpt_error *err) {
    for (int i = 0; i < n; i++) m->kv.len[slots[i]] += steps;
    if (m->check_msg[0]) return gpt_fail(err, GPT_ERR_RUNTIME, "%s", m->check_msg);
    return GPT_OK;
}

int gpt_slots_decode(gpt_model *m, int n, const int *slots, const int *tokens, float *logits,
                     gpt_error *err) {
    int rc = slots_stage(m, n, slots, tokens, 1, err);
    if (rc) return rc;
    decode_steps(m, 1, slot_rows(m, n, slots));
    int rows = 0; /* rows up to the last listed slot: one download */
    for (int i = 0; i < n; i++)
        if (slots[i] + 1 > rows) rows = slots[i] + 1;
    if ((rc = download_logits(m, rows, logits, err))) return rc;
    return slots_done(m, n, slots, 1, err);
}

int gpt_slots_decode_greedy(gpt_model *m, int n, const int *slots, const int *tokens, int steps,
                            int *ids, gpt_error *err) {
    int rc = slots_stage(m, n, slots, tokens, steps, err);
    if (rc) return rc;
    int B = m->kv.B, S = m->kv.S, k = 0, rows = slot_rows(m, n, slots);
    for (; steps - k >= DECODE_CHUNK; k += DECODE_CHUNK) decode_steps(m, DECODE_CHUNK, rows);
    for (; k < steps; k++) decode_steps(m, 1, rows);
    if (steps == 1) {
        /* the argmax replaced each row's token */
        m->be->ops->download(m->be, ids, m->ia.i32, (size_t)B, GPT_CLS_I32);
    } else {
        int *hist = malloc((size_t)B * S * sizeof(int));
        if (!hist) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
        m->be->ops->download(m->be, hist, m->kv.history, (size_t)B * S, GPT_CLS_I32);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < steps; j++)
                ids[(size_t)j * B + slots[i]] = hist[(size_t)slots[i] * S + m->kv.len[slots[i]] + j];
        free(hist);
    }
    if ((rc = gpt_model_backend_error(m, err))) return rc;
    return slots_done(m, n, slots, steps, err);
}
