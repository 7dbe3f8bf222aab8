/*
 * gpt.h - public C API of the gpt library: a GPT-2 style decoder-only
 * transformer that trains and generates on the CPU or on an NVIDIA GPU.
 *
 * Contracts, for every function below unless it says otherwise:
 *  - functions that can fail return 0 (GPT_OK) on success, or a gpt_status
 *    code and fill *err (when err is not NULL) with the code and a message
 *    that says what went wrong and, where it can, what to do about it;
 *  - the library never calls exit() and never aborts on bad input: bad
 *    configurations, flags and files come back as GPT_ERR_INVALID;
 *  - sizes use the letters B (batch), T (time), C (channels), NH (heads),
 *    HS (head size), L (layers), V (vocabulary), Vp (padded vocabulary),
 *    F (MLP hidden size).
 */
#ifndef GPT_H
#define GPT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ----------------------------------------------------------------- version
 * The shared library's soname carries the major number (libgpt.so.0): a
 * program built against one major version runs with any library of it. */
#define GPT_VERSION_MAJOR 0
#define GPT_VERSION_MINOR 1
#define GPT_VERSION_PATCH 0
#define GPT_VERSION_STR_(x) #x
#define GPT_VERSION_STR(x) GPT_VERSION_STR_(x)
/* "0.1.0", from the three numbers */
#define GPT_VERSION                                                                       \
    GPT_VERSION_STR(GPT_VERSION_MAJOR) "." GPT_VERSION_STR(GPT_VERSION_MINOR) "."         \
        GPT_VERSION_STR(GPT_VERSION_PATCH)
/* One number for #if comparisons: 10000 * major + 100 * minor + patch. */
#define GPT_VERSION_NUMBER (GPT_VERSION_MAJOR * 10000 + GPT_VERSION_MINOR * 100 + GPT_VERSION_PATCH)

/* The version of the library the program runs with (GPT_VERSION is the
 * version of the headers it was compiled with). */
const char *gpt_version(void);

/* Frees memory that the library allocated and handed over (the ids of
 * gpt_tokenizer_encode, the text of gpt_tokenizer_decode, the bytes of
 * gpt_tokenizer_serialize): for callers whose free() may not be the
 * library's (other languages, other C runtimes). free() does the same in C. */
void gpt_free(void *p);

/* ------------------------------------------------------------------ errors */

typedef enum {
    GPT_OK = 0,
    GPT_ERR_RUNTIME = 1, /* a failure while running: device error, bad numbers */
    GPT_ERR_INVALID = 2, /* invalid configuration, argument or input file */
    GPT_ERR_IO = 3,      /* reading or writing the file system failed */
    GPT_ERR_NOMEM = 4,   /* an allocation failed */
} gpt_status;

typedef struct {
    int code;       /* a gpt_status */
    char msg[1024]; /* one line, no trailing newline */
} gpt_error;

/* The exit code a command-line program should use for a status:
 * 0 for GPT_OK, 2 for GPT_ERR_INVALID, 1 for everything else. */
int gpt_status_exit_code(int status);

/* ----------------------------------------------------------- configuration */

typedef struct {
    int vocab_size;   /* V: real vocabulary size (tokens the model can emit) */
    int padded_vocab; /* Vp >= V: embedding rows; 0 = V rounded up to 128 */
    int max_seq_len;  /* maxT: rows of the position embedding */
    int n_layer;      /* L */
    int n_head;       /* NH; must divide C */
    int n_embd;       /* C */
    int mlp_hidden;   /* F; 0 = 4*C */
    float ln_eps;     /* layernorm epsilon; 0 = 1e-5 */
} gpt_config;

/* Fills cfg with a named preset: gpt2, gpt2-medium, gpt2-large, gpt2-xl,
 * seed-small, seed-medium, seed-large, tiny. */
int gpt_config_preset(const char *name, gpt_config *cfg, gpt_error *err);
/* NULL-terminated list of preset names. */
const char *const *gpt_config_preset_names(void);
/* Replaces the 0 "default" fields by their values (Vp, F, ln_eps). */
void gpt_config_resolve(gpt_config *cfg);
/* Checks a resolved configuration: every field positive, heads dividing
 * channels, no size product overflowing. The message names the field. */
int gpt_config_validate(const gpt_config *cfg, gpt_error *err);
/* Parameters of the model (padded vocabulary rows included). */
size_t gpt_config_num_params(const gpt_config *cfg);

/* ----------------------------------------------------------------- runtime */

typedef enum {
    GPT_PREC_AUTO = 0, /* bf16 on CUDA, fp16 on a Vulkan GPU, bf16 for training on a CPU with
                          bf16 instructions (AVX512-BF16); fp32 elsewhere */
    GPT_PREC_FP32 = 1,
    GPT_PREC_BF16 = 2, /* bf16 PARAM/ACT, fp32 master weights (CUDA) */
    GPT_PREC_FP16 = 3, /* fp16 PARAM/ACT, fp32 master weights, loss scaling (Vulkan) */
} gpt_precision;

typedef struct {
    const char *device;   /* "cpu", "cuda", "vulkan", "vulkan:N" or "auto"/NULL (a GPU if there is one) */
    int precision;        /* gpt_precision */
    int threads;          /* CPU threads; 0 = the cores this process may use (affinity) */
    int profile;          /* time every operation (see gpt_profile_report) */
    int check;            /* scan every operation's output for NaN/Inf */
    size_t memory_limit;  /* bytes the run may use; 0 = what the device has */
    int device_index;     /* which GPU (0 = the first); each data-parallel rank
                             on a machine takes its local rank (gpt_dist.h) */
} gpt_runtime;

/* 1 if dev is a device string the library knows: "cpu", "cuda", "vulkan",
 * "vulkan:N" (N = the Vulkan device's index) or "auto" (compiled in or not:
 * creating the backend says what is missing). */
int gpt_device_name_valid(const char *dev);
/* Writes one line describing the device a runtime would use (device,
 * driver, precision and the paths its kernels take) into buf. */
int gpt_device_describe(const gpt_runtime *rt, char *buf, size_t len, gpt_error *err);

/* Names of the backends compiled into this build, NULL-terminated. */
const char *const *gpt_backend_names(void);
/* 1 if the named backend is compiled in and finds a device. */
int gpt_backend_available(const char *name);
/* One line on the CPU backend's kernels for this machine, e.g.
 * "AMD EPYC 9R14 (family 25 model 17): AVX-512 fp32 8x32, bf16 products
 * AVX512-BF16 bf16 8x32 (training default), 2 cores usable". */
const char *gpt_cpu_kernels(void);

/* ------------------------------------------------------------------- model */

typedef struct gpt_model gpt_model;

/* Allocates a model's parameters on the runtime's device and initialises
 * them GPT-2 style from seed: N(0, 0.02) for matrices and embeddings,
 * N(0, 0.02/sqrt(2L)) for the two residual projections, zero biases,
 * unit layernorm gains. Padded vocabulary rows are zero. */
int gpt_model_create(gpt_model **out, const gpt_config *cfg, const gpt_runtime *rt,
                     uint64_t seed, gpt_error *err);
/* Loads a model: one of our checkpoints, a Hugging Face GPT-2 folder or a
 * model.safetensors file beside its config.json. */
int gpt_model_load(gpt_model **out, const char *path, const gpt_runtime *rt, gpt_error *err);
void gpt_model_free(gpt_model *m);

const gpt_config *gpt_model_config(const gpt_model *m);
size_t gpt_model_num_params(const gpt_model *m);
const char *gpt_model_device(const gpt_model *m);     /* "cpu" or "cuda" */
const char *gpt_model_precision(const gpt_model *m);  /* "fp32" or "bf16" */
/* One line describing the device ("CPU ..., 2 threads, CBLAS"). */
const char *gpt_model_device_desc(const gpt_model *m);

/* The tokenizer the model goes with: its name ("gpt2", "bytes", a file
 * path) and, for vocabularies trained with `gpt tokenizer train`, the
 * tokenizer file's bytes, which checkpoints carry along. */
int gpt_model_set_tokenizer(gpt_model *m, const char *name, const void *blob, size_t len,
                            gpt_error *err);
const char *gpt_model_tokenizer(const gpt_model *m, const void **blob, size_t *len);

/* Weight-only quantisation for inference. GPT_QUANT_INT8 ("Q8_0"): every
 * layer's four matrices and the output head become int8, in blocks of 32
 * weights sharing one fp16 scale (8.5 bits a weight), and the products
 * multiply int8 by int8 (activations are quantised the same way on the
 * fly) with the CPU's dot-product instructions. Layernorms, biases, the
 * embeddings' lookup and attention stay fp32. */
typedef enum {
    GPT_QUANT_NONE = 0,
    GPT_QUANT_INT8 = 1,
} gpt_quant;

/* Converts a model in place to the given quantisation: int8 from fp32
 * (each weight within half its block's scale), or back to fp32 (the
 * dequantised values). Training state, activations and the KV cache are
 * dropped; a quantised model is for inference only (gpt_train_init refuses
 * it) and gpt_checkpoint_save writes it quantised. Refused (GPT_ERR_INVALID)
 * on a device without int8 products (the CPU has them) and for weights
 * beyond an fp16 block scale (|w| > 8.3e6). */
int gpt_model_quantize(gpt_model *m, gpt_quant q, gpt_error *err);
/* "none" or "int8". */
const char *gpt_model_quant(const gpt_model *m);
/* The int8 product kernel the device runs ("avx512-vnni", "avx2",
 * "neon-dotprod", "neon", "c"), or NULL where it has none. */
const char *gpt_model_quant_kernel(const gpt_model *m);

/* Named parameter table (in the checkpoint's order). */
typedef struct {
    const char *name; /* "wte", "h.3.attn.qkv.w", ... */
    int ndim;
    int shape[2];
    size_t numel;
    int decay; /* 1 for matrices and embeddings (AdamW weight decay) */
} gpt_tensor_info;
int gpt_model_num_tensors(const gpt_model *m);
const gpt_tensor_info *gpt_model_tensor(const gpt_model *m, int i);
/* Copies parameter tensor i to or from host fp32 (numel floats). */
int gpt_model_get_tensor(gpt_model *m, int i, float *dst, gpt_error *err);
int gpt_model_set_tensor(gpt_model *m, int i, const float *src, gpt_error *err);

/* ---------------------------------------------------------------- memory */

typedef struct {
    size_t params;      /* parameters in the device's compute precision */
    size_t grads;       /* parameter gradients */
    size_t optimizer;   /* AdamW moments (fp32) and fp32 master weights */
    size_t activations; /* activations and their gradients for (B, T) */
    size_t total;
} gpt_memory_plan;

/* What training (train != 0) or inference with (B, T) will allocate on the
 * given runtime's device, before anything is allocated. */
int gpt_memory_estimate(const gpt_config *cfg, const gpt_runtime *rt, int B, int T, int train,
                        int recompute, gpt_memory_plan *plan, gpt_error *err);

/* Refuses (GPT_ERR_INVALID, with the figures and a fix) a plan larger than
 * the memory the runtime's device has free, or than rt->memory_limit. */
int gpt_memory_check(const gpt_memory_plan *plan, const gpt_runtime *rt, gpt_error *err);

/* ---------------------------------------------------------------- training */

typedef struct {
    int batch_size;    /* B */
    int seq_len;       /* T <= maxT */
    int grad_accum;    /* micro-batches per optimizer step (>= 1) */
    int max_steps;     /* steps of the schedule */
    float lr;          /* peak learning rate */
    float min_lr;      /* cosine floor */
    int warmup_steps;  /* linear warmup from 0 */
    float weight_decay;
    float beta1, beta2, eps;
    float grad_clip;   /* clip the global gradient norm to this; 0 = off */
    int recompute;     /* recompute GELU in the backward pass */
    int max_bad_steps; /* stop after this many consecutive non-finite steps */
} gpt_train_opts;

/* Defaults in the spirit of GPT-2/nanoGPT training. */
void gpt_train_opts_default(gpt_train_opts *o);
int gpt_train_opts_validate(const gpt_train_opts *o, const gpt_config *cfg, gpt_error *err);

/* Allocates gradients, optimizer state and activations for training; nothing
 * is allocated by gpt_train_step afterwards. Optimizer state (step count,
 * moments) survives a second call with the same shapes. */
int gpt_train_init(gpt_model *m, const gpt_train_opts *o, gpt_error *err);

typedef struct {
    int step;         /* optimizer steps taken, this one included */
    float loss;       /* mean cross-entropy over the step's tokens */
    float grad_norm;  /* global gradient norm before clipping */
    float lr;         /* learning rate used */
    int skipped;      /* 1 if the update was skipped (non-finite loss or norm) */
    int bad_streak;   /* consecutive skipped steps */
} gpt_step_info;

/* One optimizer step over grad_accum micro-batches.
 * tokens: (grad_accum, B, T+1) ids; inputs are [.., :T], targets [.., 1:].
 * A non-finite loss or gradient norm skips the update, leaves parameters
 * and optimizer state untouched, and sets info->skipped. After
 * max_bad_steps consecutive skips it returns GPT_ERR_RUNTIME. */
int gpt_train_step(gpt_model *m, const int *tokens, gpt_step_info *info, gpt_error *err);

/* Learning rate of the schedule at step s (0-based). */
float gpt_lr_at(const gpt_train_opts *o, int s);

/* Optimizer steps taken so far. */
int gpt_model_step(const gpt_model *m);
/* Sets the step counters back to 0 (fine-tuning a loaded model starts a
 * new schedule); call before gpt_train_init. */
void gpt_model_reset_training(gpt_model *m);

/* Test hook: the next train step sees a NaN in its loss (reliability tests). */
void gpt_debug_inject_nan(gpt_model *m);

/* ---------------------------------------------------------------- inference */

/* Mean next-token cross-entropy (nats) of tokens (B, T+1). */
int gpt_eval_loss(gpt_model *m, const int *tokens, int B, int T, double *loss, gpt_error *err);
/* Logits (B, T, V) of tokens (B, T) with a full forward pass. */
int gpt_forward_logits(gpt_model *m, const int *tokens, int B, int T, float *logits,
                       gpt_error *err);

/* KV-cache generation: gpt_kv_begin allocates caches for B rows of up to
 * ctx positions; prefill runs prompts (row b has lens[b] tokens, prompts[b])
 * in one pass and returns the last position's logits (B, V); decode appends
 * one token per row and returns the logits (B, V) of the new position. */
int gpt_kv_begin(gpt_model *m, int B, int ctx, gpt_error *err);
int gpt_kv_prefill(gpt_model *m, const int *const *prompts, const int *lens, float *logits,
                   gpt_error *err);
int gpt_kv_decode(gpt_model *m, const int *tokens, float *logits, gpt_error *err);
/* gpt_kv_prefill for greedy decoding: instead of the logits, ids (B)
 * receives each row's most likely next token, chosen on the device as in
 * gpt_kv_decode_greedy (lowest id on ties). */
int gpt_kv_prefill_greedy(gpt_model *m, const int *const *prompts, const int *lens, int *ids,
                          gpt_error *err);
/* Greedy decoding of n steps with the choice made on the device: step 0
 * appends tokens (B), each later step appends the previous step's most
 * likely token (lowest id on ties). ids (n, B) receives the n chosen ids of
 * each row (ids[k*B + b]); the host waits once, at the end. */
int gpt_kv_decode_greedy(gpt_model *m, const int *tokens, int n, int *ids, gpt_error *err);
/* Positions used in row b of the cache. */
int gpt_kv_length(const gpt_model *m, int b);

/* ------------------------------------------------ continuous batching
 * Slots for a server: the KV cache holds n_slots rows of ctx positions and
 * each slot holds one sequence. A sequence joins with gpt_slot_prefill (its
 * row starts over; the other slots keep their state), each decoding call
 * appends one token to every slot it lists, and gpt_slot_clear empties a
 * slot for the next sequence. A step computes slots 0 to r - 1, r the
 * smallest power of two above every listed slot (fill slots from 0 up: a
 * few sequences then cost what a small batch costs), or all n_slots with
 * GPT_SLOTS_FIXED_SHAPE. A slot's results never depend on the other slots'
 * contents; they depend on r only where the backend's products round
 * differently at different batch sizes (the CPU's do above 8 rows, in the
 * last bits): with GPT_SLOTS_FIXED_SHAPE a sequence decodes exactly the
 * same alone or beside n_slots - 1 others. Outputs are indexed by slot.
 * The slots share the cache with gpt_kv_*: gpt_kv_begin ends them. Each
 * call below waits for the device once. */

enum { GPT_SLOTS_FIXED_SHAPE = 1 };

/* Allocates the cache for n_slots slots of ctx positions (ctx <= maxT) and
 * the activations for one prompt of up to ctx tokens or one step; every
 * slot empty. flags: 0 or GPT_SLOTS_FIXED_SHAPE. */
int gpt_slots_begin(gpt_model *m, int n_slots, int ctx, int flags, gpt_error *err);
/* Slots of the current gpt_slots_begin (0 before). */
int gpt_slots_count(const gpt_model *m);
/* Fills slot `slot` with a prompt of n (1..ctx) tokens in one pass, as a
 * one-row gpt_kv_prefill does. logits (V) receives the last position's
 * logits and id the most likely next token (chosen on the device, lowest
 * id on ties); either may be NULL. */
int gpt_slot_prefill(gpt_model *m, int slot, const int *tokens, int n, float *logits, int *id,
                     gpt_error *err);
/* One decoding step: slots[i] (n distinct, non-empty slots) appends
 * tokens[i]. logits (n_slots, V): row slots[i] receives that slot's logits
 * of the new position; rows of slots not listed are left unspecified. */
int gpt_slots_decode(gpt_model *m, int n, const int *slots, const int *tokens, float *logits,
                     gpt_error *err);
/* Greedy decoding of `steps` steps over the listed slots with the choice
 * made on the device, as in gpt_kv_decode_greedy: step 0 appends tokens[i],
 * each later step the slot's previous choice. ids (steps, n_slots):
 * ids[k * n_slots + slots[i]] receives the k-th choice of slots[i]. */
int gpt_slots_decode_greedy(gpt_model *m, int n, const int *slots, const int *tokens, int steps,
                            int *ids, gpt_error *err);
/* Empties a slot (its positions become free for the next prefill). */
void gpt_slot_clear(gpt_model *m, int slot);

/* ------------------------------------------------ sampling and generation
 * (src/sample.c, src/generate.c) */

/* How the next token is drawn from a row of logits. HF-style order:
 * temperature, then top-k, then top-p over what top-k kept. */
typedef struct {
    float temperature; /* 0 = greedy: the most likely token (lowest id on ties) */
    int top_k;         /* keep the k most likely tokens; 0 = no limit */
    float top_p;       /* keep the smallest set of most likely tokens whose
                          probability reaches top_p; 1 = no limit */
    uint64_t seed;     /* same seed and logits give the same tokens */
} gpt_sampler_opts;

/* temperature 1, top_k 0, top_p 1, seed 0. */
void gpt_sampler_opts_default(gpt_sampler_opts *o);
/* temperature >= 0 and finite, top_k >= 0, 0 < top_p <= 1. */
int gpt_sampler_opts_validate(const gpt_sampler_opts *o, gpt_error *err);

typedef struct gpt_sampler gpt_sampler;
/* A sampler for rows of n_vocab logits with its own random stream. */
int gpt_sampler_create(gpt_sampler **out, const gpt_sampler_opts *o, int n_vocab,
                       gpt_error *err);
void gpt_sampler_free(gpt_sampler *s);
/* Restarts the random stream as if created with this seed. */
void gpt_sampler_reseed(gpt_sampler *s, uint64_t seed);
/* The distribution gpt_sample draws from: probs (n_vocab) is zero outside
 * the kept tokens and sums to 1 over them. Returns how many tokens are
 * kept, 0 if no logit is finite (NaN counts as -inf). Draws nothing. */
int gpt_sampler_probs(gpt_sampler *s, const float *logits, float *probs);
/* Draws the next token from logits (n_vocab); -1 if no logit is finite. */
int gpt_sample(gpt_sampler *s, const float *logits);

/* Generation from a batch of prompts with the KV cache. */
typedef struct {
    int max_new_tokens;       /* N >= 1: at most this many new tokens a row */
    gpt_sampler_opts sampler; /* row b draws from its own stream (seed and b) */
    int eot;                  /* token that ends a row (kept as its last); -1 = none */
    const char *const *stop;  /* n_stop strings; a row ends with the token that
                                 completes one in its generated text */
    int n_stop;
    /* Bytes of token id (needed for stop strings); NULL for an unknown id. */
    const char *(*token_bytes)(void *user, int id, size_t *len);
    /* 0: prompt + N beyond the model's context is an error. 1: when a row
     * fills the context, every row is prefilled again with the last half
     * of the context (the window slides by maxT/2 at a time). */
    int sliding_window;
    /* Positions a row may use (prompt and new tokens, and the window that
     * slides): 0 = the model's max_seq_len; more than it is an error. */
    int ctx;
    /* Streaming: called for every new token as it is drawn (may be NULL);
     * a nonzero return stops the whole generation (not an error). */
    int (*on_token)(void *user, int row, int token);
    void *user; /* passed to token_bytes and on_token */
} gpt_generate_opts;

/* max_new_tokens 16, default sampler, no eot, no stop strings. */
void gpt_generate_opts_default(gpt_generate_opts *o);

typedef struct {
    double prefill_s;         /* wall time of the prefill passes (re-prefills included) */
    double decode_s;          /* wall time of the decode steps and their sampling */
    long long prefill_tokens; /* prompt tokens run through prefill */
    long long decode_tokens;  /* new tokens that came out of decode steps */
    long long new_tokens;     /* tokens generated over all rows */
    int reprefills;           /* sliding-window prefills after the first */
} gpt_generate_stats;

/* Generates up to N tokens after each of B prompts (row b: lens[b] >= 1
 * ids in prompts[b]). out (B, N) receives row b's tokens in out[b*N ..],
 * out_lens (B) how many; stats may be NULL. */
int gpt_generate(gpt_model *m, const int *const *prompts, const int *lens, int B,
                 const gpt_generate_opts *o, int *out, int *out_lens,
                 gpt_generate_stats *stats, gpt_error *err);

/* ---------------------------------------------------------- checkpoints */

/* Trainer state that a checkpoint carries for exact resume. */
typedef struct {
    int has_train;          /* 1 when the fields below are meaningful */
    gpt_train_opts opts;    /* schedule and optimizer settings */
    uint64_t rng[4];        /* data sampler state */
    int64_t tokens_seen;    /* training tokens consumed */
    float best_val_loss;    /* best validation loss so far (0 = none yet) */
} gpt_train_state;

/* Writes a checkpoint atomically (temporary file, fsync, rename): on any
 * failure the previous file at path is intact. with_optimizer adds the AdamW
 * moments and step count; state (may be NULL) adds the trainer's state.
 * A model holding a non-finite parameter or moment is not saved
 * (GPT_ERR_RUNTIME): the reader would refuse the file. */
int gpt_checkpoint_save(gpt_model *m, const char *path, int with_optimizer,
                        const gpt_train_state *state, gpt_error *err);
/* Writes the model as a Hugging Face GPT-2 folder that transformers'
 * GPT2LMHeadModel.from_pretrained(dir) loads: dir/model.safetensors (F32)
 * and dir/config.json, and, when the model's tokenizer is one the folder
 * can carry (built in, or the vocabulary its checkpoint holds, no larger
 * than the model's), the files AutoTokenizer.from_pretrained(dir) reads
 * (vocab.json, merges.txt, tokenizer_config.json) and
 * generation_config.json; tokenizer files of an earlier export are removed
 * otherwise. dir is created if its parent exists; files already there are
 * replaced atomically, one by one. The head stays tied to the token
 * embedding; padded vocabulary rows are dropped. */
int gpt_model_save_hf(gpt_model *m, const char *dir, gpt_error *err);
/* Reads only the configuration and trainer state of a checkpoint (no model
 * is created). state->has_train is 0 if the file carries none. */
int gpt_checkpoint_read_state(const char *path, gpt_config *cfg, gpt_train_state *state,
                              gpt_error *err);
/* After gpt_train_init: restores the AdamW moments and step counters saved
 * in the checkpoint the model was loaded from, for an exact resume. */
int gpt_train_resume(gpt_model *m, const char *path, gpt_error *err);

/* ------------------------------------------------------------- profiling */

/* With rt.profile set, the last step's time per operation as a table. */
int gpt_profile_report(const gpt_model *m, char *buf, size_t len);
/* Device memory the model holds now: parameters, gradients, optimizer
 * state, activations, KV cache and the backend's workspaces. */
size_t gpt_model_device_bytes(const gpt_model *m);
/* Free and total memory of the model's device, in bytes. */
int gpt_model_mem_info(const gpt_model *m, size_t *free_bytes, size_t *total_bytes);
/* Host-device synchronisations the backend has made so far. */
long gpt_backend_sync_count(const gpt_model *m);

#ifdef __cplusplus
}
#endif
#endif
