/*
 * config.c - model presets, defaults and validation of configurations and
 * training options. Everything a user can get wrong is refused here, before
 * anything is allocated, with a message that names the field and a fix.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gpt.h"
#include "model.h"
#include "util.h"

typedef struct {
    const char *name;
    gpt_config cfg;
} preset;

/* V, Vp, maxT, L, NH, C, F, eps */
static const preset presets[] = {
    {"gpt2", {50257, 0, 1024, 12, 12, 768, 0, 0}},
    {"gpt2-medium", {50257, 0, 1024, 24, 16, 1024, 0, 0}},
    {"gpt2-large", {50257, 0, 1024, 36, 20, 1280, 0, 0}},
    {"gpt2-xl", {50257, 0, 1024, 48, 25, 1600, 0, 0}},
    {"seed-small", {50257, 0, 512, 2, 8, 512, 2048, 0}},
    {"seed-medium", {50257, 0, 512, 3, 8, 512, 2048, 0}},
    {"seed-large", {50257, 0, 512, 6, 8, 512, 2048, 0}},
    /* The default run's model: small enough to train on two CPU cores in
     * minutes. Its vocabulary follows the tokenizer it is trained with. */
    {"tiny", {50257, 0, 256, 2, 4, 128, 512, 0}},
};
#define NPRESETS (sizeof presets / sizeof presets[0])

const char *const *gpt_config_preset_names(void) {
    static const char *names[NPRESETS + 1];
    for (size_t i = 0; i < NPRESETS; i++) names[i] = presets[i].name;
    names[NPRESETS] = NULL;
    return names;
}

int gpt_config_preset(const char *name, gpt_config *cfg, gpt_error *err) {
    for (size_t i = 0; i < NPRESETS; i++)
        if (!strcmp(name, presets[i].name)) {
            *cfg = presets[i].cfg;
            gpt_config_resolve(cfg);
            return GPT_OK;
        }
    char list[256] = "";
    for (size_t i = 0; i < NPRESETS; i++) {
        strncat(list, presets[i].name, sizeof list - strlen(list) - 1);
        if (i + 1 < NPRESETS) strncat(list, ", ", sizeof list - strlen(list) - 1);
    }
    return gpt_fail(err, GPT_ERR_INVALID, "preset '%s' is unknown: choose one of %s", name, list);
}

void gpt_config_resolve(gpt_config *cfg) {
    if (cfg->padded_vocab == 0 && cfg->vocab_size > 0 && cfg->vocab_size <= INT32_MAX - 127)
        cfg->padded_vocab = (cfg->vocab_size + 127) / 128 * 128;
    if (cfg->mlp_hidden == 0 && cfg->n_embd > 0 && cfg->n_embd <= INT32_MAX / 4)
        cfg->mlp_hidden = 4 * cfg->n_embd;
    if (cfg->ln_eps == 0) cfg->ln_eps = 1e-5f;
}

/* Largest elements a single tensor may hold: 2^40 (4 TiB in fp32) keeps
 * every size product far from overflowing 64-bit arithmetic. */
#define MAX_TENSOR_ELEMS ((size_t)1 << 40)
/* Layers: the parameter table has 12 tensors a layer, counted with int. */
#define MAX_LAYERS (1 << 24)

static int positive(const char *field, const char *flag, long long v, gpt_error *err) {
    if (v > 0) return GPT_OK;
    return gpt_fail(err, GPT_ERR_INVALID, "%s (%lld) must be a positive number: set %s to 1 or more",
                    field, v, flag);
}

/* Nearest head counts that divide C, for the error message. The search
 * is bounded (a hostile file may hold NH and C near INT32_MAX); 1 always
 * divides, hi is 0 when none is found. */
static void head_suggestions(int C, int NH, int *lo, int *hi) {
    const long long span = 100000;
    *lo = 1;
    *hi = 0;
    for (long long h = NH < C ? NH : C; h >= 1 && h > (long long)NH - span; h--)
        if (C % h == 0) {
            *lo = (int)h;
            break;
        }
    for (long long h = (long long)NH + 1; h <= C && h <= 4LL * NH + 64 && h <= NH + span; h++)
        if (C % h == 0) {
            *hi = (int)h;
            break;
        }
}

int gpt_config_validate(const gpt_config *c, gpt_error *err) {
    int rc;
    if ((rc = positive("vocab_size", "--vocab", c->vocab_size, err))) return rc;
    if ((rc = positive("max_seq_len", "--max-seq", c->max_seq_len, err))) return rc;
    if ((rc = positive("n_layer", "--layers", c->n_layer, err))) return rc;
    if ((rc = positive("n_head", "--heads", c->n_head, err))) return rc;
    if ((rc = positive("n_embd", "--channels", c->n_embd, err))) return rc;
    if ((rc = positive("mlp_hidden", "--mlp", c->mlp_hidden, err))) return rc;
    /* Padding rounds the vocabulary up to a multiple of 128, which must
     * stay an int (INT_MAX used to report "padded_vocab (0)"). */
    if (c->vocab_size > INT32_MAX - 127)
        return gpt_fail(err, GPT_ERR_INVALID, "vocab_size (%d) is too large: at most %d",
                        c->vocab_size, INT32_MAX - 127);
    if (c->n_layer > MAX_LAYERS)
        return gpt_fail(err, GPT_ERR_INVALID, "n_layer (%d) is too large: at most %d", c->n_layer,
                        MAX_LAYERS);
    if (c->padded_vocab < c->vocab_size)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "padded_vocab (%d) must be at least vocab_size (%d): use 0 to round up "
                        "to a multiple of 128",
                        c->padded_vocab, c->vocab_size);
    if (c->n_embd % c->n_head != 0) {
        int lo, hi;
        head_suggestions(c->n_embd, c->n_head, &lo, &hi);
        long long C2 = ((long long)c->n_embd + c->n_head - 1) / c->n_head * c->n_head;
        return gpt_fail(err, GPT_ERR_INVALID,
                        "n_head (%d) must divide n_embd (%d): try --heads %d%s%.0d or --channels %lld",
                        c->n_head, c->n_embd, lo, hi ? " or --heads " : "", hi, C2);
    }
    if (!(c->ln_eps > 0) || !isfinite(c->ln_eps) || c->ln_eps > 1)
        return gpt_fail(err, GPT_ERR_INVALID, "ln_eps (%g) must be in (0, 1]: the usual value is 1e-5",
                        (double)c->ln_eps);
    /* Each tensor's size, and the whole parameter count, must stay in range. */
    size_t C = (size_t)c->n_embd, F = (size_t)c->mlp_hidden;
    struct {
        const char *what;
        size_t a, b;
    } prods[] = {
        {"padded_vocab x n_embd (token embedding)", (size_t)c->padded_vocab, C},
        {"max_seq_len x n_embd (position embedding)", (size_t)c->max_seq_len, C},
        {"3 x n_embd x n_embd (attention weights)", 3 * C, C},
        {"mlp_hidden x n_embd (MLP weights)", F, C},
    };
    for (size_t i = 0; i < sizeof prods / sizeof prods[0]; i++) {
        size_t n;
        if (!gpt_mul_size(prods[i].a, prods[i].b, &n) || n > MAX_TENSOR_ELEMS)
            return gpt_fail(err, GPT_ERR_INVALID, "%s = %zu x %zu is too large", prods[i].what,
                            prods[i].a, prods[i].b);
    }
    size_t per_layer = 12 * C * C + 2 * F * C, total;
    if (!gpt_mul_size(per_layer, (size_t)c->n_layer, &total) || total > MAX_TENSOR_ELEMS)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "n_layer (%d) x per-layer parameters (%zu) is too large", c->n_layer,
                        per_layer);
    return GPT_OK;
}

int gpt_config_check_positions(const gpt_config *c, long long B, long long T, gpt_error *err) {
    /* Elements per position, an upper bound over the training and the
     * inference layouts: logits, then per layer (and the final one) the
     * residual stream, layernorm, qkv, attention and MLP buffers with their
     * gradients, and the float statistics. */
    double N = (double)B * (double)T;
    double W = (double)c->padded_vocab +
               ((double)c->n_layer + 1) * (8.0 * c->n_embd + 2.0 * c->mlp_hidden + c->n_head + 8);
    if (N <= INT32_MAX && N * W <= (double)((size_t)1 << 40)) return GPT_OK;
    return gpt_fail(err, GPT_ERR_INVALID,
                    "batch x sequence length (%lld x %lld) is too large for this model: its "
                    "activations would need %.3g values, more memory than any machine has: use a smaller "
                    "--batch or --seq",
                    B, T, N * W);
}

size_t gpt_config_num_params(const gpt_config *c) {
    size_t C = (size_t)c->n_embd, F = (size_t)c->mlp_hidden, L = (size_t)c->n_layer;
    size_t per_layer = 2 * C + 3 * C * C + 3 * C + C * C + C + 2 * C + F * C + F + C * F + C;
    return (size_t)c->padded_vocab * C + (size_t)c->max_seq_len * C + L * per_layer + 2 * C;
}

void gpt_train_opts_default(gpt_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->batch_size = 4;
    o->seq_len = 64;
    o->grad_accum = 1;
    o->max_steps = 1000;
    o->lr = 6e-4f;
    o->min_lr = 6e-5f;
    o->warmup_steps = 0;
    o->weight_decay = 0.1f;
    o->beta1 = 0.9f;
    o->beta2 = 0.95f;
    o->eps = 1e-8f;
    o->grad_clip = 1.0f;
    o->recompute = 0;
    o->max_bad_steps = 5;
}

static int finite_range(const char *field, const char *flag, float v, double lo, double hi,
                        int lo_open, gpt_error *err) {
    if (isfinite(v) && (lo_open ? v > lo : v >= lo) && v <= hi) return GPT_OK;
    return gpt_fail(err, GPT_ERR_INVALID, "%s (%g) must be in %s%g, %g]: set %s", field, (double)v,
                    lo_open ? "(" : "[", lo, hi, flag);
}

int gpt_train_opts_validate(const gpt_train_opts *o, const gpt_config *cfg, gpt_error *err) {
    int rc;
    if ((rc = positive("batch_size", "--batch", o->batch_size, err))) return rc;
    if ((rc = positive("seq_len", "--seq", o->seq_len, err))) return rc;
    if ((rc = positive("grad_accum", "--grad-accum", o->grad_accum, err))) return rc;
    if ((rc = positive("max_steps", "--steps", o->max_steps, err))) return rc;
    if ((rc = positive("max_bad_steps", "--max-bad-steps", o->max_bad_steps, err))) return rc;
    if (cfg && o->seq_len > cfg->max_seq_len)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "seq_len (%d) is above the model's max_seq_len (%d): use --seq %d or less",
                        o->seq_len, cfg->max_seq_len, cfg->max_seq_len);
    if (o->warmup_steps < 0)
        return gpt_fail(err, GPT_ERR_INVALID, "warmup_steps (%d) must be 0 or more: set --warmup",
                        o->warmup_steps);
    if ((rc = finite_range("lr", "--lr", o->lr, 0, 10, 1, err))) return rc;
    if ((rc = finite_range("min_lr", "--min-lr", o->min_lr, 0, o->lr, 0, err))) return rc;
    if ((rc = finite_range("weight_decay", "--weight-decay", o->weight_decay, 0, 10, 0, err)))
        return rc;
    if ((rc = finite_range("beta1", "--beta1", o->beta1, 0, 0.999999, 0, err))) return rc;
    if ((rc = finite_range("beta2", "--beta2", o->beta2, 0, 0.999999999, 0, err))) return rc;
    if ((rc = finite_range("eps", "--eps", o->eps, 0, 1, 1, err))) return rc;
    if ((rc = finite_range("grad_clip", "--grad-clip", o->grad_clip, 0, 1e30, 0, err))) return rc;
    size_t n;
    if (!gpt_mul_size((size_t)o->batch_size, (size_t)o->seq_len + 1, &n) ||
        !gpt_mul_size(n, (size_t)o->grad_accum, &n) || n > ((size_t)1 << 40))
        return gpt_fail(err, GPT_ERR_INVALID,
                        "batch_size x seq_len x grad_accum (%d x %d x %d) is too large",
                        o->batch_size, o->seq_len, o->grad_accum);
    if (cfg) return gpt_config_check_positions(cfg, o->batch_size, o->seq_len, err);
    return GPT_OK;
}

float gpt_lr_at(const gpt_train_opts *o, int s) {
    if (s < o->warmup_steps) return o->lr * (float)(s + 1) / (float)o->warmup_steps;
    int decay = o->max_steps - o->warmup_steps;
    if (decay <= 0) return o->lr;
    double r = (double)(s - o->warmup_steps) / (double)decay;
    if (r > 1) r = 1;
    double c = 0.5 * (1.0 + cos(3.14159265358979323846 * r));
    return (float)(o->min_lr + c * (o->lr - o->min_lr));
}
