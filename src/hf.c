/*
 * hf.c - Hugging Face GPT-2 checkpoints (GPT2LMHeadModel): config.json and
 * model.safetensors in, and out again.
 *
 * Name and layout mapping, ours <- theirs ("transformer." prefix optional):
 *   wte (Vp, C)            <- wte.weight (V, C), rows V..Vp-1 zero
 *   wpe (maxT, C)          <- wpe.weight (n_positions, C)
 *   h.N.ln1.{w,b} (C)      <- h.N.ln_1.{weight,bias}
 *   h.N.attn.qkv.w (3C, C) <- h.N.attn.c_attn.weight (C, 3C), transposed
 *   h.N.attn.qkv.b (3C)    <- h.N.attn.c_attn.bias
 *   h.N.attn.proj.w (C, C) <- h.N.attn.c_proj.weight (C, C), transposed
 *   h.N.attn.proj.b (C)    <- h.N.attn.c_proj.bias
 *   h.N.ln2.{w,b} (C)      <- h.N.ln_2.{weight,bias}
 *   h.N.mlp.fc.w (F, C)    <- h.N.mlp.c_fc.weight (C, F), transposed
 *   h.N.mlp.fc.b (F)       <- h.N.mlp.c_fc.bias
 *   h.N.mlp.proj.w (C, F)  <- h.N.mlp.c_proj.weight (F, C), transposed
 *   h.N.mlp.proj.b (C)     <- h.N.mlp.c_proj.bias
 *   lnf.{w,b} (C)          <- ln_f.{weight,bias}
 * GPT-2's Conv1D stores its weight as (in, out), the transpose of a Linear;
 * ours are (out, in) row-major. lm_head.weight is tied to wte: absent, or
 * equal to it. The old causal-mask buffers h.N.attn.bias and
 * h.N.attn.masked_bias are ignored.
 */
#define _POSIX_C_SOURCE 200809L
#include "hf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "model.h"
#include "safetensors.h"
#include "util.h"

/* ------------------------------------------------------------ the mapping */

enum { D_NONE, D_C, D_3C, D_F, D_V, D_T }; /* symbolic dimensions */
static const char *const dim_name[] = {"",        "n_embd",     "3*n_embd",
                                       "n_inner", "vocab_size", "n_positions"};

typedef struct {
    const char *ours, *theirs;
    int d0, d1;    /* their shape; d1 = D_NONE for vectors */
    int transpose; /* Conv1D weight: ours is (d1, d0) */
} hf_map;

static const hf_map map_layer[12] = {
    {"ln1.w", "ln_1.weight", D_C, D_NONE, 0},
    {"ln1.b", "ln_1.bias", D_C, D_NONE, 0},
    {"attn.qkv.w", "attn.c_attn.weight", D_C, D_3C, 1},
    {"attn.qkv.b", "attn.c_attn.bias", D_3C, D_NONE, 0},
    {"attn.proj.w", "attn.c_proj.weight", D_C, D_C, 1},
    {"attn.proj.b", "attn.c_proj.bias", D_C, D_NONE, 0},
    {"ln2.w", "ln_2.weight", D_C, D_NONE, 0},
    {"ln2.b", "ln_2.bias", D_C, D_NONE, 0},
    {"mlp.fc.w", "mlp.c_fc.weight", D_C, D_F, 1},
    {"mlp.fc.b", "mlp.c_fc.bias", D_F, D_NONE, 0},
    {"mlp.proj.w", "mlp.c_proj.weight", D_F, D_C, 1},
    {"mlp.proj.b", "mlp.c_proj.bias", D_C, D_NONE, 0},
};
static const hf_map map_head[2] = {
    {"wte", "wte.weight", D_V, D_C, 0},
    {"wpe", "wpe.weight", D_T, D_C, 0},
};
static const hf_map map_tail[2] = {
    {"lnf.w", "ln_f.weight", D_C, D_NONE, 0},
    {"lnf.b", "ln_f.bias", D_C, D_NONE, 0},
};

/* One of our tensors and where it comes from / goes to. */
typedef struct {
    char ours[64], theirs[80]; /* names (bounded: a layer number and a fixed suffix) */
    size_t hf_shape[2];        /* their shape */
    int ndim;
    int transpose;
    gpt_tensor_info info; /* our name (points at ours), shape, numel */
    const st_tensor *src; /* when reading */
} hf_slot;

static size_t dim_value(const gpt_config *c, int d) {
    switch (d) {
    case D_C: return (size_t)c->n_embd;
    case D_3C: return 3 * (size_t)c->n_embd;
    case D_F: return (size_t)c->mlp_hidden;
    case D_V: return (size_t)c->vocab_size;
    case D_T: return (size_t)c->max_seq_len;
    default: return 0;
    }
}

static int num_slots(const gpt_config *c) { return 4 + 12 * c->n_layer; }

/* Slot k of a resolved, validated configuration (k < num_slots). */
static void slot_at(const gpt_config *c, int k, hf_slot *s) {
    const hf_map *m;
    int layer = -1;
    if (k < 2) m = &map_head[k];
    else if (k >= 2 + 12 * c->n_layer) m = &map_tail[k - 2 - 12 * c->n_layer];
    else layer = (k - 2) / 12, m = &map_layer[(k - 2) % 12];
    memset(s, 0, sizeof *s);
    if (layer >= 0) {
        snprintf(s->ours, sizeof s->ours, "h.%d.%s", layer, m->ours);
        snprintf(s->theirs, sizeof s->theirs, "h.%d.%s", layer, m->theirs);
    } else {
        snprintf(s->ours, sizeof s->ours, "%s", m->ours);
        snprintf(s->theirs, sizeof s->theirs, "%s", m->theirs);
    }
    s->ndim = m->d1 == D_NONE ? 1 : 2;
    s->hf_shape[0] = dim_value(c, m->d0);
    s->hf_shape[1] = dim_value(c, m->d1);
    s->transpose = m->transpose;
    s->info.name = s->ours;
    s->info.ndim = s->ndim;
    s->info.decay = s->ndim == 2;
    if (s->ndim == 1) {
        s->info.shape[0] = (int)s->hf_shape[0];
        s->info.numel = s->hf_shape[0];
    } else {
        size_t r = s->transpose ? s->hf_shape[1] : s->hf_shape[0];
        size_t cols = s->transpose ? s->hf_shape[0] : s->hf_shape[1];
        if (k == 0) r = (size_t)c->padded_vocab; /* wte keeps Vp rows */
        s->info.shape[0] = (int)r;
        s->info.shape[1] = (int)cols;
        s->info.numel = r * cols;
    }
}

/* "[64, 192]" or "[n_embd=64, 3*n_embd=192]" into buf. */
static void fmt_shape(char *buf, size_t n, const size_t *shape, int ndim, const int *dims) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (int i = 0; i < ndim && o < n; i++) {
        if (dims)
            o += (size_t)snprintf(buf + o, n - o, "%s%s=%zu", i ? ", " : "", dim_name[dims[i]],
                                  shape[i]);
        else o += (size_t)snprintf(buf + o, n - o, "%s%zu", i ? ", " : "", shape[i]);
    }
    if (o < n) snprintf(buf + o, n - o, "]");
}

/* ----------------------------------------------------------- config.json */

/* Reads config.json's GPT-2 fields into a resolved, validated cfg. */
static int parse_config(const char *text, size_t n, const char *fname, gpt_config *cfg, int *tied,
                        gpt_error *err) {
    json_value *root;
    gpt_error jerr = {0};
    if (json_parse(text, n, &root, &jerr))
        return gpt_fail(err, jerr.code, "%s: %s", fname, jerr.msg);
    int rc = GPT_OK;
    memset(cfg, 0, sizeof *cfg);
    *tied = 1;
    if (root->type != JSON_OBJECT) {
        rc = gpt_fail(err, GPT_ERR_INVALID, "%s: not a JSON object", fname);
        goto done;
    }
    const json_value *mt = json_get(root, "model_type");
    if (mt && (mt->type != JSON_STRING || strcmp(mt->str, "gpt2"))) {
        rc = gpt_fail(err, GPT_ERR_INVALID, "%s: model_type is '%.40s', only 'gpt2' can be loaded",
                      fname, mt->type == JSON_STRING ? mt->str : "?");
        goto done;
    }
    struct {
        const char *key, *alt;
        int *dst;
    } ints[] = {
        {"vocab_size", NULL, &cfg->vocab_size}, {"n_positions", "n_ctx", &cfg->max_seq_len},
        {"n_embd", NULL, &cfg->n_embd},         {"n_layer", NULL, &cfg->n_layer},
        {"n_head", NULL, &cfg->n_head},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        const json_value *v = json_get(root, ints[i].key);
        if (!v && ints[i].alt) v = json_get(root, ints[i].alt);
        long long x;
        if (!v) {
            rc = gpt_fail(err, GPT_ERR_INVALID, "%s: no \"%s\"", fname, ints[i].key);
            goto done;
        }
        if (!json_get_int(v, 1, INT_MAX, &x)) {
            rc = gpt_fail(err, GPT_ERR_INVALID, "%s: \"%s\" must be a positive integer", fname,
                          ints[i].key);
            goto done;
        }
        *ints[i].dst = (int)x;
    }
    const json_value *v = json_get(root, "n_inner");
    if (v && v->type != JSON_NULL) {
        long long x;
        if (!json_get_int(v, 1, INT_MAX, &x)) {
            rc = gpt_fail(err, GPT_ERR_INVALID,
                          "%s: \"n_inner\" must be null or a positive integer", fname);
            goto done;
        }
        cfg->mlp_hidden = (int)x;
    }
    v = json_get(root, "layer_norm_epsilon");
    cfg->ln_eps = 1e-5f;
    if (v) {
        if (v->type != JSON_NUMBER || !(v->number > 0 && v->number < 1)) {
            rc = gpt_fail(err, GPT_ERR_INVALID, "%s: \"layer_norm_epsilon\" must be in (0, 1)",
                          fname);
            goto done;
        }
        cfg->ln_eps = (float)v->number;
    }
    /* Our model computes GELU with the tanh approximation, scales the
     * attention scores by 1/sqrt(HS) only, and has no cross-attention. */
    v = json_get(root, "activation_function");
    if (v && (v->type != JSON_STRING ||
              (strcmp(v->str, "gelu_new") && strcmp(v->str, "gelu_pytorch_tanh") &&
               strcmp(v->str, "gelu_fast")))) {
        rc = gpt_fail(err, GPT_ERR_INVALID,
                      "%s: activation_function '%.40s' is not supported (only the tanh GELU: "
                      "gelu_new)",
                      fname, v->type == JSON_STRING ? v->str : "?");
        goto done;
    }
    struct {
        const char *key;
        int want;
    } flags[] = {{"scale_attn_weights", 1},
                 {"scale_attn_by_inverse_layer_idx", 0},
                 {"add_cross_attention", 0}};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        v = json_get(root, flags[i].key);
        if (v && (v->type != JSON_BOOL || v->boolean != flags[i].want)) {
            rc = gpt_fail(err, GPT_ERR_INVALID, "%s: %s must be %s for this model", fname,
                          flags[i].key, flags[i].want ? "true" : "false");
            goto done;
        }
    }
    v = json_get(root, "tie_word_embeddings");
    if (v && v->type == JSON_BOOL) *tied = v->boolean;
    gpt_config_resolve(cfg);
    gpt_error verr = {0};
    if (gpt_config_validate(cfg, &verr)) rc = gpt_fail(err, verr.code, "%s: %s", fname, verr.msg);
done:
    json_free(root);
    return rc;
}

/* ------------------------------------------------------------- reading */

struct gpt_hf_file {
    gpt_config cfg;
    st_file st;
    hf_slot *slot; /* (n) */
    int n;
    void *map; /* memory map of the safetensors file, or NULL */
    size_t map_len;
};

/* The tensor named name, with or without the "transformer." prefix. */
static const st_tensor *find_either(const st_file *st, const char *name, int *twice) {
    char full[96];
    snprintf(full, sizeof full, "transformer.%s", name);
    const st_tensor *a = st_find(st, full), *b = st_find(st, name);
    *twice = a && b;
    return a ? a : b;
}

static int ignorable(const char *name) {
    size_t n = strlen(name);
    const char *tails[] = {".attn.bias", ".attn.masked_bias"};
    if (strncmp(name, "h.", 2) && strncmp(name, "transformer.h.", 14)) return 0;
    for (size_t i = 0; i < 2; i++) {
        size_t t = strlen(tails[i]);
        if (n > t && !strcmp(name + n - t, tails[i])) return 1;
    }
    return 0;
}

/* lm_head.weight must be wte (same shape, same values after conversion). */
static int check_lm_head(const gpt_hf_file *f, const st_tensor *lm, const char *sname,
                         gpt_error *err) {
    const st_tensor *wte = f->slot[0].src;
    if (lm->dtype == ST_OTHER)
        return gpt_fail(err, GPT_ERR_INVALID, "%s: tensor 'lm_head.weight' has dtype %s", sname,
                        lm->dtype_name);
    if (lm->ndim != 2 || lm->shape[0] != wte->shape[0] || lm->shape[1] != wte->shape[1])
        return gpt_fail(err, GPT_ERR_INVALID,
                        "%s: tensor 'lm_head.weight' does not have wte's shape: only a tied output "
                        "head is supported",
                        sname);
    float a[1024], b[1024];
    for (size_t i = 0; i < lm->numel; i += 1024) {
        size_t c = lm->numel - i < 1024 ? lm->numel - i : 1024;
        st_read_f32(&f->st, lm, i, c, a);
        st_read_f32(&f->st, wte, i, c, b);
        for (size_t j = 0; j < c; j++)
            if (a[j] != b[j] && !(isnan(a[j]) && isnan(b[j])))
                return gpt_fail(err, GPT_ERR_INVALID,
                                "%s: tensor 'lm_head.weight' differs from wte (element %zu): "
                                "only a tied output head is supported",
                                sname, i + j);
    }
    return GPT_OK;
}

static int parse(gpt_hf_file **out, const char *config, size_t config_len, const void *stbuf,
                 size_t st_len, const char *cname, const char *sname, gpt_error *err) {
    *out = NULL;
    gpt_hf_file *f = calloc(1, sizeof *f);
    if (!f) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    int tied = 1, rc = parse_config(config, config_len, cname, &f->cfg, &tied, err);
    if (rc) goto fail;
    gpt_error serr = {0};
    if ((rc = st_parse(&f->st, stbuf, st_len, &serr))) {
        gpt_fail(err, rc, "%s: %s", sname, serr.msg);
        goto fail;
    }
    char *used = calloc(f->st.n ? f->st.n : 1, 1);
    if (!used) {
        rc = gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
        goto fail;
    }
    /* Slots are added only while their tensors are found, so a config that
     * claims more layers than the file holds costs nothing to refuse. */
    int total = num_slots(&f->cfg), cap = 0;
    for (int k = 0; k < total && !rc; k++) {
        hf_slot s;
        slot_at(&f->cfg, k, &s);
        int twice;
        const st_tensor *t = find_either(&f->st, s.theirs, &twice);
        char want[160], got[160];
        if (!t) {
            rc = gpt_fail(err, GPT_ERR_INVALID,
                          "%s: missing tensor '%s' (config.json: n_layer %d, n_embd %d)", sname,
                          s.theirs, f->cfg.n_layer, f->cfg.n_embd);
        } else if (twice) {
            rc = gpt_fail(err, GPT_ERR_INVALID,
                          "%s: tensor '%s' appears both with and without 'transformer.'", sname,
                          s.theirs);
        } else if (t->ndim != s.ndim || t->shape[0] != s.hf_shape[0] ||
                   (s.ndim == 2 && t->shape[1] != s.hf_shape[1])) {
            const hf_map *m = k < 2            ? &map_head[k]
                              : k >= total - 2 ? &map_tail[k - (total - 2)]
                                               : &map_layer[(k - 2) % 12];
            int dims[2] = {m->d0, m->d1};
            fmt_shape(want, sizeof want, s.hf_shape, s.ndim, dims);
            fmt_shape(got, sizeof got, t->shape, t->ndim, NULL);
            rc = gpt_fail(err, GPT_ERR_INVALID,
                          "%s: tensor '%s' has shape %s, expected %s from config.json", sname,
                          t->name, got, want);
        } else if (t->dtype == ST_OTHER) {
            rc = gpt_fail(err, GPT_ERR_INVALID,
                          "%s: tensor '%s' has dtype %s; only F32, F16 and BF16 can be loaded",
                          sname, t->name, t->dtype_name);
        }
        if (rc) break;
        if (f->n == cap) {
            int nc = cap ? 2 * cap : 64;
            hf_slot *ns = realloc(f->slot, (size_t)nc * sizeof *ns);
            if (!ns) {
                rc = gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
                break;
            }
            f->slot = ns;
            cap = nc;
        }
        s.src = t;
        f->slot[f->n++] = s;
        used[t - f->st.t] = 1;
    }
    /* info.name points into the slot itself: fix after the moves. */
    for (int i = 0; i < f->n; i++)
        f->slot[i].info.name = f->slot[i].ours;
    for (size_t i = 0; i < f->st.n && !rc; i++) {
        const char *name = f->st.t[i].name;
        if (used[i] || ignorable(name)) continue;
        if (!strcmp(name, "lm_head.weight")) {
            rc = check_lm_head(f, &f->st.t[i], sname, err);
            tied = 1;
        } else {
            rc = gpt_fail(err, GPT_ERR_INVALID,
                          "%s: unexpected tensor '%s' (not part of a GPT2LMHeadModel with %d "
                          "layers)",
                          sname, name, f->cfg.n_layer);
        }
    }
    free(used);
    if (!rc && !tied)
        rc = gpt_fail(err, GPT_ERR_INVALID,
                      "%s: tie_word_embeddings is false but there is no lm_head.weight", cname);
    if (rc) goto fail;
    *out = f;
    return GPT_OK;
fail:
    gpt_hf_close(f);
    return rc;
}

int gpt_hf_parse_memory(gpt_hf_file **out, const char *config, size_t config_len, const void *st,
                        size_t st_len, gpt_error *err) {
    return parse(out, config, config_len, st, st_len, "config.json", "model.safetensors", err);
}

void gpt_hf_close(gpt_hf_file *f) {
    if (!f) return;
    st_free(&f->st);
    free(f->slot);
    if (f->map) munmap(f->map, f->map_len);
    free(f);
}

const gpt_config *gpt_hf_config(const gpt_hf_file *f) { return &f->cfg; }
int gpt_hf_num_tensors(const gpt_hf_file *f) { return f->n; }
const gpt_tensor_info *gpt_hf_tensor(const gpt_hf_file *f, int i) {
    return i >= 0 && i < f->n ? &f->slot[i].info : NULL;
}

int gpt_hf_find(const gpt_hf_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->slot[i].ours, name)) return i;
    return -1;
}

void gpt_hf_read(const gpt_hf_file *f, int i, float *dst) {
    const hf_slot *s = &f->slot[i];
    if (!s->transpose) {
        st_read_f32(&f->st, s->src, 0, s->src->numel, dst);
        /* wte: zero the padded rows */
        memset(dst + s->src->numel, 0, (s->info.numel - s->src->numel) * sizeof *dst);
        return;
    }
    /* Theirs (IN, OUT) -> ours (OUT, IN), in tiles so both sides stay in
     * cache. */
    const size_t IN = s->hf_shape[0], OUT = s->hf_shape[1], TB = 64;
    float row[64];
    for (size_t i0 = 0; i0 < IN; i0 += TB)
        for (size_t o0 = 0; o0 < OUT; o0 += TB) {
            size_t ni = IN - i0 < TB ? IN - i0 : TB, no = OUT - o0 < TB ? OUT - o0 : TB;
            for (size_t a = 0; a < ni; a++) {
                st_read_f32(&f->st, s->src, (i0 + a) * OUT + o0, no, row);
                for (size_t b = 0; b < no; b++)
                    dst[(o0 + b) * IN + i0 + a] = row[b];
            }
        }
}

/* ----------------------------------------------------------------- files */

static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int exists(const char *p) {
    struct stat st;
    return lstat(p, &st) == 0;
}

static int ends_with(const char *s, const char *t) {
    size_t n = strlen(s), m = strlen(t);
    return n >= m && !strcmp(s + n - m, t);
}

int gpt_hf_is_checkpoint(const char *path) {
    if (!path) return 0;
    if (is_dir(path)) {
        /* A folder with any of these is meant as a Hugging Face checkpoint:
         * gpt_hf_open then says what is missing (or that it is sharded). */
        static const char *const names[] = {"model.safetensors", "config.json",
                                            "model.safetensors.index.json"};
        int ok = 0;
        for (int i = 0; i < 3 && !ok; i++) {
            char *p = path_join(path, names[i]);
            ok = p && is_file(p);
            free(p);
        }
        return ok;
    }
    return ends_with(path, ".safetensors");
}

/* The safetensors and config paths of a checkpoint path (malloc'd). */
static int hf_paths(const char *path, char **st_path, char **cfg_path, gpt_error *err) {
    *st_path = *cfg_path = NULL;
    if (is_dir(path)) {
        *st_path = path_join(path, "model.safetensors");
        *cfg_path = path_join(path, "config.json");
        if (*st_path && !exists(*st_path)) {
            char *idx = path_join(path, "model.safetensors.index.json");
            int sharded = idx && is_file(idx);
            free(idx);
            free(*st_path);
            free(*cfg_path);
            *st_path = *cfg_path = NULL;
            return gpt_fail(err, GPT_ERR_INVALID,
                            sharded ? "'%s' holds a sharded checkpoint (model.safetensors.index."
                                      "json), which is not supported: merge it into one "
                                      "model.safetensors"
                                    : "'%s' has no model.safetensors",
                            path);
        }
    } else {
        *st_path = strdup(path);
        const char *slash = strrchr(path, '/');
        if (slash) {
            char *dir = strndup(path, (size_t)(slash - path) + (slash == path));
            *cfg_path = dir ? path_join(dir, "config.json") : NULL;
            free(dir);
        } else {
            *cfg_path = strdup("config.json");
        }
    }
    if (!*st_path || !*cfg_path) {
        free(*st_path);
        free(*cfg_path);
        *st_path = *cfg_path = NULL;
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    }
    return GPT_OK;
}

int gpt_hf_open(gpt_hf_file **out, const char *path, gpt_error *err) {
    *out = NULL;
    char *st_path, *cfg_path, *cfg = NULL;
    size_t cfg_len;
    int rc = hf_paths(path, &st_path, &cfg_path, err);
    if (rc) return rc;
    void *map = NULL;
    size_t map_len = 0;
    int fd = -1;
    if (!exists(cfg_path)) {
        rc = gpt_fail(err, GPT_ERR_INVALID,
                      "no config.json beside '%s': a Hugging Face checkpoint needs both "
                      "('%s' is missing)",
                      st_path, cfg_path);
        goto done;
    }
    if ((rc = gpt_read_file(cfg_path, (size_t)16 << 20, &cfg, &cfg_len, err))) goto done;
    uint64_t st_size;
    if ((rc = gpt_open_regular(st_path, &fd, &st_size, err))) goto done;
    if (st_size < 8 || st_size > SIZE_MAX) {
        rc = gpt_fail(err, GPT_ERR_INVALID,
                      "%s: %llu bytes is %s for a safetensors file", st_path,
                      (unsigned long long)st_size, st_size < 8 ? "too short (8-byte header length)" : "too large");
        goto done;
    }
    map_len = (size_t)st_size;
    map = mmap(NULL, map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        map = NULL;
        rc = gpt_fail(err, GPT_ERR_IO, "cannot map '%s': %s", st_path, strerror(errno));
        goto done;
    }
    rc = parse(out, cfg, cfg_len, map, map_len, cfg_path, st_path, err);
    if (!rc) {
        (*out)->map = map;
        (*out)->map_len = map_len;
        map = NULL;
    }
done:
    if (map) munmap(map, map_len);
    if (fd >= 0) close(fd);
    free(cfg);
    free(st_path);
    free(cfg_path);
    return rc;
}

/* ----------------------------------------------------------- with a model */

int gpt_hf_load(gpt_model **out, const char *path, const gpt_runtime *rt, gpt_error *err) {
    *out = NULL;
    gpt_hf_file *f;
    int rc = gpt_hf_open(&f, path, err);
    if (rc) return rc;
    gpt_model *m = NULL;
    float *buf = NULL;
    /* Built without initialisation: every parameter is read below. */
    if ((rc = gpt_model_build(&m, &f->cfg, rt, err))) goto done;
    int n = gpt_model_num_tensors(m);
    size_t max = 0;
    for (int i = 0; i < f->n; i++)
        if (f->slot[i].info.numel > max) max = f->slot[i].info.numel;
    if (!(buf = malloc(max * sizeof *buf))) {
        rc = gpt_fail(err, GPT_ERR_NOMEM, "out of memory loading '%s'", path);
        goto done;
    }
    if (n != f->n) {
        rc = gpt_fail(err, GPT_ERR_RUNTIME,
                      "internal: the model has %d tensors, the GPT-2 mapping %d", n, f->n);
        goto done;
    }
    for (int i = 0; i < n && !rc; i++) {
        const gpt_tensor_info *t = gpt_model_tensor(m, i);
        int j = gpt_hf_find(f, t->name);
        const gpt_tensor_info *h = j >= 0 ? &f->slot[j].info : NULL;
        if (!h || h->ndim != t->ndim || h->numel != t->numel || h->shape[0] != t->shape[0] ||
            (t->ndim == 2 && h->shape[1] != t->shape[1])) {
            rc = gpt_fail(err, GPT_ERR_RUNTIME,
                          "internal: model tensor '%s' has no counterpart of its shape in the "
                          "GPT-2 mapping",
                          t->name);
            break;
        }
        gpt_hf_read(f, j, buf);
        rc = gpt_model_set_tensor(m, i, buf, err);
    }
done:
    free(buf);
    gpt_hf_close(f);
    if (rc) gpt_model_free(m);
    else *out = m;
    return rc;
}

/* A growable string for the header JSON. */
typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if (b->s && b->len + (size_t)k < b->cap) {
            b->len += (size_t)k;
            return;
        }
        size_t nc = b->cap ? b->cap * 2 : 4096;
        while (nc < b->len + (size_t)k + 1)
            nc *= 2;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns;
        b->cap = nc;
    }
}

/* Our tensor (numel floats) into their layout as little-endian F32 bytes
 * in out (hf numel * 4 bytes). */
static void to_hf(const hf_slot *s, const float *src, unsigned char *out) {
    size_t rows = s->hf_shape[0], cols = s->ndim == 2 ? s->hf_shape[1] : 1;
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++) {
            /* transposed: theirs [i][j] = ours [j][i] (ours is (cols, rows)) */
            float v = s->transpose ? src[j * rows + i] : src[i * cols + j];
            uint32_t u;
            memcpy(&u, &v, 4);
            unsigned char *p = out + 4 * (i * cols + j);
            p[0] = (unsigned char)u;
            p[1] = (unsigned char)(u >> 8);
            p[2] = (unsigned char)(u >> 16);
            p[3] = (unsigned char)(u >> 24);
        }
}

/* The safetensors image of m into af (opened by the caller). */
static int write_safetensors(gpt_model *m, gpt_atomic_file *af, gpt_error *err) {
    const char *path = af->path;
    const gpt_config *c = gpt_model_config(m);
    int n = num_slots(c), rc = GPT_OK;
    hf_slot *slots = calloc((size_t)n, sizeof *slots);
    int *model_idx = calloc((size_t)n, sizeof *model_idx);
    sbuf h = {0};
    float *buf = NULL;
    unsigned char *bytes = NULL;
    if (!slots || !model_idx) {
        rc = gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t max = 0, off = 0;
    sb_printf(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int k = 0; k < n; k++) {
        hf_slot *s = &slots[k];
        slot_at(c, k, s);
        model_idx[k] = -1;
        for (int i = 0; i < gpt_model_num_tensors(m); i++)
            if (!strcmp(gpt_model_tensor(m, i)->name, s->ours)) model_idx[k] = i;
        if (model_idx[k] < 0 || gpt_model_tensor(m, model_idx[k])->numel != s->info.numel) {
            rc = gpt_fail(err, GPT_ERR_RUNTIME,
                          "internal: model tensor '%s' is missing or not of the GPT-2 shape",
                          s->ours);
            goto done;
        }
        size_t numel = s->hf_shape[0] * (s->ndim == 2 ? s->hf_shape[1] : 1);
        if (s->info.numel > max) max = s->info.numel;
        sb_printf(&h, ",\"transformer.%s\":{\"dtype\":\"F32\",\"shape\":[%zu", s->theirs,
                  s->hf_shape[0]);
        if (s->ndim == 2) sb_printf(&h, ",%zu", s->hf_shape[1]);
        sb_printf(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + 4 * numel);
        off += 4 * numel;
    }
    sb_printf(&h, "}");
    while (!h.oom && h.len % 8)
        sb_printf(&h, " "); /* data starts 8-byte aligned */
    buf = malloc(max * sizeof *buf);
    bytes = malloc(max * 4);
    if (h.oom || !buf || !bytes) {
        rc = gpt_fail(err, GPT_ERR_NOMEM, "out of memory writing '%s'", path);
        goto done;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    rc = gpt_atomic_write(af, len8, 8, err);
    if (!rc) rc = gpt_atomic_write(af, h.s, h.len, err);
    for (int k = 0; k < n && !rc; k++) {
        const hf_slot *s = &slots[k];
        if ((rc = gpt_model_get_tensor(m, model_idx[k], buf, err))) break;
        to_hf(s, buf, bytes); /* wte: only the first V rows are theirs */
        rc = gpt_atomic_write(af, bytes, 4 * s->hf_shape[0] * (s->ndim == 2 ? s->hf_shape[1] : 1),
                              err);
    }
done:
    free(slots);
    free(model_idx);
    free(h.s);
    free(buf);
    free(bytes);
    return rc;
}

/* The shortest decimal that reads back as the same float ("1e-05", not
 * "9.99999975e-06"). */
static void fmt_float(char *buf, size_t n, float v) {
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, n, "%.*g", digits, (double)v);
        if (strtof(buf, NULL) == v) return;
    }
}

/* config.json for a model whose <|endoftext|> is id eot (-1: none). */
static int config_json(const gpt_config *c, int eot, hf_file *f, gpt_error *err) {
    sbuf b = {0};
    char eps[32];
    fmt_float(eps, sizeof eps, c->ln_eps);
    sb_printf(&b,
              "{\n"
              "  \"architectures\": [\"GPT2LMHeadModel\"],\n"
              "  \"model_type\": \"gpt2\",\n"
              "  \"activation_function\": \"gelu_new\",\n"
              "  \"vocab_size\": %d,\n"
              "  \"n_positions\": %d,\n"
              "  \"n_ctx\": %d,\n"
              "  \"n_embd\": %d,\n"
              "  \"n_layer\": %d,\n"
              "  \"n_head\": %d,\n"
              "  \"n_inner\": %d,\n"
              "  \"layer_norm_epsilon\": %s,\n"
              "  \"initializer_range\": 0.02,\n"
              "  \"scale_attn_weights\": true,\n"
              "  \"scale_attn_by_inverse_layer_idx\": false,\n"
              "  \"reorder_and_upcast_attn\": false,\n"
              "  \"tie_word_embeddings\": true,\n"
              "  \"use_cache\": true,\n",
              c->vocab_size, c->max_seq_len, c->max_seq_len, c->n_embd, c->n_layer, c->n_head,
              c->mlp_hidden, eps);
    /* Named only when the vocabulary has it: transformers would otherwise
     * default them to 50256, outside a smaller vocabulary. */
    if (eot >= 0 && eot < c->vocab_size)
        sb_printf(&b, "  \"bos_token_id\": %d,\n  \"eos_token_id\": %d,\n", eot, eot);
    else
        sb_printf(&b, "  \"bos_token_id\": null,\n  \"eos_token_id\": null,\n");
    sb_printf(&b, "  \"dtype\": \"float32\"\n}\n");
    if (b.oom) {
        free(b.s);
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    }
    *f = (hf_file){"config.json", b.s, b.len};
    return GPT_OK;
}

/* The model's tokenizer when the folder can carry it: the vocabulary its
 * checkpoint holds, or a built-in one it names. NULL without an error for
 * any other name (a checkpoint's name is never opened as a file) and for
 * a vocabulary larger than the model's (ids it could not embed). */
static int model_tokenizer(gpt_model *m, gpt_tokenizer **tok, gpt_error *err) {
    const void *blob = NULL;
    size_t len = 0;
    const char *name = gpt_model_tokenizer(m, &blob, &len);
    int rc = GPT_OK;
    *tok = NULL;
    if (blob) rc = gpt_tokenizer_load_memory(tok, blob, len, err);
    else if (name && (!strcmp(name, "gpt2") || !strcmp(name, "bytes")))
        rc = gpt_tokenizer_open(tok, name, err);
    if (!rc && *tok && gpt_tokenizer_vocab_size(*tok) > gpt_model_config(m)->vocab_size) {
        gpt_tokenizer_free(*tok);
        *tok = NULL;
    }
    return rc;
}

int gpt_model_save_hf(gpt_model *m, const char *dir, gpt_error *err) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return gpt_fail(err, errno == ENOENT ? GPT_ERR_INVALID : GPT_ERR_IO,
                        "cannot create the folder '%s': %s", dir, strerror(errno));
    if (!is_dir(dir)) return gpt_fail(err, GPT_ERR_INVALID, "'%s' exists and is not a folder", dir);
    const gpt_config *c = gpt_model_config(m);
    /* Every small file is made in memory first: a tokenizer that cannot be
     * written is refused before anything is replaced. */
    hf_file files[1 + HF_TOKENIZER_FILES] = {{0}};
    int nfiles = 1, eot = c->vocab_size > 50256 ? 50256 : -1; /* a GPT-2 sized vocabulary */
    gpt_tokenizer *tok = NULL;
    int rc = model_tokenizer(m, &tok, err);
    if (!rc && tok) {
        eot = gpt_tokenizer_eot(tok);
        if (!(rc = hf_tokenizer_files(tok, c->max_seq_len, files + 1, err))) nfiles += HF_TOKENIZER_FILES;
    }
    if (!rc) rc = config_json(c, eot, &files[0], err);
    /* One commit for the folder's files: every one is written and synced
     * under a temporary name before any replaces its old version, so a
     * failure (disk full) leaves the old set whole. The weights are renamed
     * first, the files that describe them after. */
    gpt_atomic_file af[2 + HF_TOKENIZER_FILES];
    int naf = 0;
    memset(af, 0, sizeof af);
    for (int i = 0; i < 1 + nfiles && !rc; i++, naf++) {
        char *p = path_join(dir, i == 0 ? "model.safetensors" : files[i - 1].name);
        rc = p ? gpt_atomic_open(&af[i], p, err) : gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
        free(p);
    }
    if (!rc) rc = write_safetensors(m, &af[0], err);
    for (int i = 0; i < nfiles && !rc; i++) rc = gpt_atomic_write(&af[i + 1], files[i].data, files[i].len, err);
    if (!rc) rc = gpt_atomic_commit_all(af, naf, err);
    else
        for (int i = 0; i < naf; i++) gpt_atomic_abort(&af[i]);
    /* A folder that held another model's tokenizer files must not keep them. */
    static const char *const tok_names[] = {"vocab.json", "merges.txt", "tokenizer_config.json",
                                            "generation_config.json", "tokenizer.json",
                                            "special_tokens_map.json"};
    for (size_t i = nfiles > 1 ? 4 : 0; !rc && i < sizeof tok_names / sizeof *tok_names; i++) {
        char *p = path_join(dir, tok_names[i]);
        if (p && unlink(p) != 0 && errno != ENOENT)
            rc = gpt_fail(err, GPT_ERR_IO, "cannot remove the old '%s': %s", p, strerror(errno));
        free(p);
    }
    for (int i = 0; i < nfiles; i++) free(files[i].data);
    gpt_tokenizer_free(tok);
    return rc;
}
