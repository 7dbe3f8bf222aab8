/*
 * model.h - the model's private layout, shared by the files that build,
 * train, run and save it (model.c, model_train.c, model_infer.c, ckpt.c,
 * hf.c). Everything here is device-independent: tensors are pointers the
 * backend allocated, and element offsets are turned into addresses with the
 * backend's element size of the tensor's class.
 */
#ifndef GPT_MODEL_H
#define GPT_MODEL_H

#include "backend.h"
#include "gpt.h"

/* Parameter offsets (in elements, into params/grads/m/v/master) of one layer. */
typedef struct {
    size_t ln1_w, ln1_b;   /* (C) */
    size_t qkv_w, qkv_b;   /* (3C, C), (3C) */
    size_t proj_w, proj_b; /* (C, C), (C) */
    size_t ln2_w, ln2_b;   /* (C) */
    size_t fc_w, fc_b;     /* (F, C), (F) */
    size_t fc2_w, fc2_b;   /* (C, F), (C) */
} layer_params;

/* Byte offsets into the model's int8 matrices (qw) of one layer's four. */
typedef struct {
    size_t qkv_w, proj_w, fc_w, fc2_w; /* Q8 (3C, C), (C, C), (F, C), (C, F) */
} layer_q8;

/* Activation offsets of one layer, in elements of their buffer. */
typedef struct {
    size_t ln1, qkv, atty, res2, ln2, fch, fch_gelu; /* ACT */
    size_t ln1_mean, ln1_rstd, ln2_mean, ln2_rstd;    /* F32 (N) */
    size_t lse;                                        /* F32 (B, NH, T) */
} layer_acts;

/* Training activations for (B, T): one ACT, one F32, one I32 allocation. */
typedef struct {
    int B, T;
    void *act;          /* ACT buffer */
    float *f32;         /* F32 buffer */
    int *i32;           /* I32 buffer: tokens (N), targets (N) */
    layer_acts *layers; /* (L) */
    size_t x;           /* ACT (L+1, N, C): residual stream entering each layer, then its end */
    size_t lnf;         /* ACT (N, C) */
    size_t logits;      /* ACT (N, Vp): logits, then their gradient in place */
    size_t scratch;     /* ACT (N, C): matmul outputs before the residual add; backward temp */
    size_t dres;        /* ACT (N, C): gradient of the residual stream */
    size_t dqkv;        /* ACT (N, 3C) */
    size_t dfch;        /* ACT (N, F) */
    size_t gelu_buf;    /* ACT (N, F): GELU output when it is recomputed */
    size_t lnf_mean, lnf_rstd, losses; /* F32 (N) */
    size_t hyper, stats;               /* F32: gpt_adamw_hyper, gpt_step_stats */
    size_t act_elems, f32_elems, i32_elems;
    int *host_i32;      /* host staging for one micro-batch: tokens, targets (2N) */
    int graph_ready;    /* a step ran eagerly: later steps may be captured */
} train_acts;

/* Inference activations for up to N = B*T positions (no per-layer storage). */
typedef struct {
    size_t cap_N;           /* positions the buffers hold */
    void *act;              /* ACT buffer */
    float *f32;             /* F32 buffer: losses (N) */
    int *i32;               /* I32: tokens (N), targets (N), pos0 (B) */
    size_t x, ln, qkv, atty, scratch, fch, logits; /* ACT offsets */
    size_t logits_rows;     /* rows of logits (N, or B for KV decoding) */
    int cap_B;              /* rows pos0 holds */
    size_t bytes;           /* device bytes of the three buffers */
    float *host_logits;     /* host staging (logits_rows, Vp) when Vp != V */
} infer_acts;

/* KV cache: (L, B, S, C) keys and values. */
typedef struct {
    int B, S;
    void *k, *v;  /* ACT */
    int *history; /* I32 (B, S): the id greedy decoding chose at each row position */
    int *len;     /* host (B): positions filled per row */
    int decode_ready; /* a decode step ran eagerly: later ones may be captured */
    /* Slots (gpt_slots_begin): a step runs rows [0, r) for r a power of
     * two (see slot_rows in model_infer.c), or always B when fixed. */
    int fixed;
    unsigned rows_ready; /* bit k: a step of 2^k < B rows ran eagerly */
} kv_cache;

typedef struct {
    const char *name; /* op name */
    int layer;        /* -1 outside layers */
} prof_slot;

typedef struct dist_state dist_state; /* model_dist.c */

struct gpt_model {
    gpt_config cfg;
    gpt_runtime rt;
    char device_name[16];
    gpt_backend *be;

    /* Parameter table: ntensors named tensors in one allocation. */
    int ntensors;
    gpt_tensor_info *tinfo; /* (ntensors) */
    size_t *toff;           /* (ntensors) offsets in elements */
    char *names;            /* storage of the names */
    size_t nparams;         /* elements, alignment padding included */
    size_t ndecay;          /* [0, ndecay) get weight decay */
    size_t wte, wpe, lnf_w, lnf_b;
    layer_params *lp; /* (L) */

    void *params;  /* PARAM (nparams) */
    float *master; /* F32 (nparams) when PARAM is not fp32, else NULL */

    /* int8 weights (gpt_model_quantize, quantised checkpoints): the layers'
     * matrices live only here (their toff is GPT_NO_OFFSET); the head has
     * its int8 copy here and the embedding keeps wte in params, as the
     * dequantised int8 values, so that both uses see the same weights. */
    int quant;        /* gpt_quant */
    void *qw;         /* Q8 (qw_bytes): the matrices in quant.h's layout */
    size_t qw_bytes;
    size_t *qoff;     /* (ntensors) byte offset in qw, GPT_NO_OFFSET if not quantised */
    layer_q8 *lq;     /* (L) */
    size_t q_wte;     /* the head's (Vp, C) */

    /* Training state (gpt_train_init). */
    int train_ready;
    gpt_train_opts topts;
    void *grads;      /* GRAD (nparams) */
    float *m, *v;     /* F32 (opt_n) */
    size_t opt_n;     /* nparams, or one rank's block under ZeRO (model_dist.c) */
    int step;         /* optimizer steps attempted */
    int opt_step;     /* updates applied (AdamW's t) */
    int bad_streak;
    int inject_nan;   /* test hook */
    train_acts ta;

    infer_acts ia;
    kv_cache kv;

    /* Tokenizer the model goes with. */
    char tokenizer[256];
    void *tok_blob;
    size_t tok_blob_len;

    /* Diagnostics. */
    prof_slot *prof;  /* (prof_cap) */
    int prof_cap, prof_n;
    char check_msg[256]; /* first non-finite output found by --check */
    int use_graphs;
    gpt_shape reserved; /* largest shapes the backend's workspaces cover */
    int graph_epoch; /* bumped whenever buffers move: graph ids = 64*epoch + kind */
    dist_state *dist; /* data parallelism; NULL when the model trains alone */
};

/* toff or qoff of a tensor that has no copy in params or qw. */
#define GPT_NO_OFFSET ((size_t)-1)

/* Graph ids: captured work is only valid for the buffers it was recorded
 * with, so ids change whenever those are reallocated. Decoding steps of
 * 2^k rows fewer than the cache's (slots) are kinds GRAPH_ROWS + 2k (one
 * step) and GRAPH_ROWS + 2k + 1 (a chunk), k < 27. */
enum { GRAPH_MICROSTEP = 1, GRAPH_ADAMW = 2, GRAPH_DECODE = 3, GRAPH_DECODE_CHUNK = 4,
       GRAPH_ROWS = 8 };
static inline int gpt_graph_id(const gpt_model *m, int kind) { return 64 * m->graph_epoch + kind; }

/* Layouts (parameters, activations) hand out element offsets: the next n
 * elements start at *off, which moves past them rounded up to
 * GPT_ALIGN_ELEMS, so that every tensor starts 256-byte aligned in fp32
 * (128 in bf16) for vector loads and BLAS. */
enum { GPT_ALIGN_ELEMS = 64 };
static inline size_t gpt_take(size_t *off, size_t n) {
    size_t at = *off;
    *off += (n + GPT_ALIGN_ELEMS - 1) / GPT_ALIGN_ELEMS * GPT_ALIGN_ELEMS;
    return at;
}

/* Address of element `off` of a buffer whose elements are of class cls. */
static inline void *gpt_at(const gpt_model *m, void *base, size_t off, int cls) {
    return (char *)base + off * m->be->cls_size[cls];
}

/* Refuses (GPT_ERR_INVALID) B x T positions whose activations no machine
 * could hold (over 2^40 values, a bound on every layout's elements per
 * position times B*T) or that pass INT_MAX (the backends count positions
 * with int), so that no size product of an activation layout wraps
 * around. config.c */
int gpt_config_check_positions(const gpt_config *c, long long B, long long T, gpt_error *err);
/* model.c */
/* Elements of the largest parameter tensor (host buffers for one tensor). */
size_t gpt_model_max_tensor(const gpt_model *m);
int gpt_model_build(gpt_model **out, const gpt_config *cfg, const gpt_runtime *rt,
                    gpt_error *err);
/* gpt_model_build with the layers' matrices and the head in int8 (quant
 * GPT_QUANT_INT8) or not (GPT_QUANT_NONE). model_quant.c */
int gpt_model_build_quant(gpt_model **out, const gpt_config *cfg, const gpt_runtime *rt, int quant,
                          gpt_error *err);
/* Sets tensor i of a quantised model from its int8 form (quant.h's layout,
 * gpt_q8_bytes of its shape), checked as a file's would be. model_quant.c */
int gpt_model_set_tensor_q8(gpt_model *m, int i, const void *q8, gpt_error *err);
/* Tensor i's int8 form (gpt_q8_bytes of its shape) from a quantised model. */
int gpt_model_get_tensor_q8(gpt_model *m, int i, void *q8, gpt_error *err);
/* gpt_model_get_tensor / set_tensor of a tensor that has an int8 copy:
 * dequantised from it / quantised into it (and, for wte, the dequantised
 * values into params too). model_quant.c */
int gpt_model_get_tensor_dequant(gpt_model *m, int i, float *dst, gpt_error *err);
int gpt_model_set_tensor_quant(gpt_model *m, int i, const float *src, gpt_error *err);
/* Backend error as a library error (code and message), or 0. */
int gpt_model_backend_error(gpt_model *m, gpt_error *err);
/* Grows the backend's workspaces to cover s as well as everything
 * reserved before (elementwise maximum). */
int gpt_model_reserve(gpt_model *m, gpt_shape s, gpt_error *err);
/* Memory check before an allocation of `bytes` more on the device. */
int gpt_model_check_memory(gpt_model *m, size_t bytes, const char *what, gpt_error *err);

/* Diagnostics around each op (model_train.c). */
void gpt_op_done(gpt_model *m, const char *name, int layer, const void *out, size_t n, int cls);

/* model_infer.c */
void gpt_infer_free(gpt_model *m);
void gpt_kv_free(gpt_model *m);

/* model_train.c */
void gpt_train_free(gpt_model *m);

/* model_dist.c: data parallelism. With m->dist NULL each does nothing or
 * answers for a model that trains alone (1 rank, the whole vector). */
void dist_free(gpt_model *m);
int dist_ranks(const gpt_model *m);
int dist_rank(const gpt_model *m);
/* Elements of m and v: nparams, or one rank's block under ZeRO. */
size_t dist_opt_elems(const gpt_model *m);
/* After the gradients and moments exist: ZeRO's shard of the master. */
int dist_train_alloc(gpt_model *m, gpt_error *err);
/* This rank's block [lo, lo + n) of the flat vector (the whole of it alone). */
void dist_block(const gpt_model *m, size_t *lo, size_t *n);
/* What this rank's adamw updates: [lo, lo + n) with that range's master. */
void dist_update_range(const gpt_model *m, size_t *lo, size_t *n, float **master);
/* The step, in order: dist_bucket for each range of gradients the backward
 * has finished (last micro-batch), dist_progress between ops,
 * dist_grads_done after the backward, dist_sum_stats after sumsq,
 * dist_update_done after adamw, then dist_wait before reading results. */
void dist_bucket(gpt_model *m, size_t off, size_t n);
void dist_progress(gpt_model *m);
void dist_grads_done(gpt_model *m);
void dist_sum_stats(gpt_model *m, gpt_step_stats *stats);
void dist_update_done(gpt_model *m);
int dist_wait(gpt_model *m, gpt_error *err);
/* Checkpoints: rank 0 writes; under ZeRO every rank takes part. */
int dist_save_collective(const gpt_model *m);
int dist_sharded_master(const gpt_model *m);
int dist_get_master(gpt_model *m, int i, float *dst, gpt_error *err);
void dist_set_master(gpt_model *m, int i, const float *src);
/* AdamW moment `which` (0: m, 1: v) of tensor i to or from host fp32;
 * get is collective under ZeRO. */
int gpt_train_get_moment(gpt_model *m, int which, int i, float *dst, gpt_error *err);
void gpt_train_set_moment(gpt_model *m, int which, int i, const float *src);
/* Forward + backward only (no update): leaves the gradients of tokens
 * (grad_accum, B, T+1) in m->grads and the mean loss in *loss. For tests. */
int gpt_train_grads(gpt_model *m, const int *tokens, float *loss, gpt_error *err);

#endif
