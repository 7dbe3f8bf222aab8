/*
 * ckpt.c - our checkpoint format: versioned, self-describing, checksummed,
 * written atomically.
 *
 * Layout (little-endian):
 *   "GPTCKPT\0"  u32 version (1, or 2 for an int8 model)
 *   u32 flags (1 optimizer, 2 trainer state, 4 tokenizer file, 8 int8 model)
 *   config: i32 V, Vp, maxT, L, NH, C, F; f32 ln_eps
 *   i64 step, i64 opt_step
 *   [flags & 2] trainer state: i32 B, T, grad_accum, max_steps, warmup, recompute, max_bad;
 *               f32 lr, min_lr, weight_decay, beta1, beta2, eps, grad_clip;
 *               u64 rng[4]; i64 tokens_seen; f32 best_val_loss
 *   tokenizer: u16 name length, name; [flags & 4] u64 length, tokenizer file bytes
 *   u32 ntensors; per tensor: u16 name length, name, u32 ndim, i64 shape[2], u64 numel,
 *               [version 2] u32 dtype (0 fp32, 1 int8 in quant.h's layout)
 *   data: every tensor in its dtype (fp32: numel floats; int8: gpt_q8_bytes of its
 *         shape), in table order; [flags & 1] then all of m, then all of v
 *   u32 CRC-32 of every byte before it; "GPTCKEND"
 *
 * Readers check every field against the model the configuration builds,
 * and the file size against what the table implies, before reading data;
 * the CRC is checked at the end, before the model is handed out.
 *
 * An int8 model (flag 8) is the fp32 format with a dtype per tensor: the
 * layers' matrices and wte are int8, every other tensor fp32, as model.c
 * lays out a quantised model; it carries no optimizer or trainer state.
 * fp32 models are still written as version 1, which older builds read.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpt_tokenizer.h"
#include "model.h"
#include "quant.h"
#include "util.h"

#define CKPT_MAGIC "GPTCKPT"
#define CKPT_END "GPTCKEND"
#define CKPT_VERSION 1u
#define CKPT_VERSION_DTYPES 2u /* adds a dtype to each tensor */
enum { F_OPT = 1, F_TRAIN = 2, F_TOKBLOB = 4, F_Q8 = 8 };
enum { DT_F32 = 0, DT_Q8 = 1 };

/* Bytes of tensor i's data in the file. */
static uint64_t tensor_bytes(const gpt_model *m, int i) {
    const gpt_tensor_info *t = &m->tinfo[i];
    if (m->qoff[i] != GPT_NO_OFFSET) return gpt_q8_bytes(t->shape[0], t->ndim == 2 ? t->shape[1] : 1);
    return (uint64_t)t->numel * 4;
}

/* Largest tensor_bytes of the int8 tensors (0 if none). */
static size_t max_q8_bytes(const gpt_model *m) {
    size_t n = 0;
    for (int i = 0; i < m->ntensors; i++)
        if (m->qoff[i] != GPT_NO_OFFSET && tensor_bytes(m, i) > n) n = (size_t)tensor_bytes(m, i);
    return n;
}

/* ------------------------------------------------------------- writing */

typedef struct {
    gpt_atomic_file af;
    gpt_error *err;
    int rc;
    int sink; /* a data-parallel rank other than 0: takes part, writes nothing */
} writer;

static void w_bytes(writer *w, const void *p, size_t n) {
    if (!w->rc && !w->sink) w->rc = gpt_atomic_write(&w->af, p, n, w->err);
}
static void w_u16(writer *w, uint16_t v) {
    unsigned char b[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    w_bytes(w, b, 2);
}
static void w_u32(writer *w, uint32_t v) {
    unsigned char b[4];
    for (int i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i));
    w_bytes(w, b, 4);
}
static void w_u64(writer *w, uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
    w_bytes(w, b, 8);
}
static void w_i32(writer *w, int32_t v) { w_u32(w, (uint32_t)v); }
static void w_f32(writer *w, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    w_u32(w, u);
}
static void w_str(writer *w, const char *s) {
    size_t n = strlen(s);
    w_u16(w, (uint16_t)n);
    w_bytes(w, s, n);
}
/* n floats from host memory, in little-endian order. */
static void w_floats(writer *w, const float *x, size_t n) {
    const uint16_t probe = 1;
    if (*(const unsigned char *)&probe == 1) {
        w_bytes(w, x, n * 4);
        return;
    }
    for (size_t i = 0; i < n; i++) w_f32(w, x[i]);
}

/* A checkpoint the reader would refuse is never written: parameters and
 * moments must be finite, the second moment not negative. An update with
 * finite inputs can still overflow (a squared gradient past 3.4e38 without
 * clipping); the previous checkpoint is then kept. */
static int check_values(const float *x, size_t n, int nonneg, const char *what,
                        const char *path, gpt_error *err) {
    for (size_t k = 0; k < n; k++)
        if (!isfinite(x[k]) || (nonneg && x[k] < 0))
            return gpt_fail(err, GPT_ERR_RUNTIME,
                            "not saving '%s': %s holds %g at element %zu (training diverged); the "
                            "previous checkpoint is kept",
                            path, what, (double)x[k], k);
    return GPT_OK;
}

int gpt_checkpoint_save(gpt_model *m, const char *path, int with_optimizer,
                        const gpt_train_state *state, gpt_error *err) {
    if (with_optimizer && !m->train_ready)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "cannot save optimizer state: the model has not been trained");
    /* Data-parallel ranks: rank 0 writes. The others hold the same values
     * and have nothing to do, except under ZeRO, where they send their
     * blocks of the optimizer state (gpt_train_get_moment). */
    int sink = dist_rank(m) != 0;
    if (sink && !dist_save_collective(m)) return GPT_OK;
    float *buf = malloc(gpt_model_max_tensor(m) * sizeof(float));
    void *qbuf = m->quant ? malloc(max_q8_bytes(m)) : NULL;
    if (!buf || (m->quant && !qbuf)) {
        free(buf);
        free(qbuf);
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory saving '%s'", path);
    }
    writer w = {.err = err, .sink = sink};
    if (!sink && (w.rc = gpt_atomic_open(&w.af, path, err))) {
        free(buf);
        free(qbuf);
        return w.rc;
    }
    const gpt_config *c = &m->cfg;
    /* an int8 model is for inference: no trainer state (with_optimizer needs training) */
    uint32_t flags = (with_optimizer ? F_OPT : 0) |
                     (state && state->has_train && !m->quant ? F_TRAIN : 0) |
                     (m->tok_blob ? F_TOKBLOB : 0) | (m->quant ? F_Q8 : 0);
    w_bytes(&w, CKPT_MAGIC, 8); /* 7 letters and the NUL */
    w_u32(&w, m->quant ? CKPT_VERSION_DTYPES : CKPT_VERSION);
    w_u32(&w, flags);
    w_i32(&w, c->vocab_size);
    w_i32(&w, c->padded_vocab);
    w_i32(&w, c->max_seq_len);
    w_i32(&w, c->n_layer);
    w_i32(&w, c->n_head);
    w_i32(&w, c->n_embd);
    w_i32(&w, c->mlp_hidden);
    w_f32(&w, c->ln_eps);
    w_u64(&w, (uint64_t)m->step);
    w_u64(&w, (uint64_t)m->opt_step);
    if (flags & F_TRAIN) {
        const gpt_train_opts *o = &state->opts;
        w_i32(&w, o->batch_size);
        w_i32(&w, o->seq_len);
        w_i32(&w, o->grad_accum);
        w_i32(&w, o->max_steps);
        w_i32(&w, o->warmup_steps);
        w_i32(&w, o->recompute);
        w_i32(&w, o->max_bad_steps);
        w_f32(&w, o->lr);
        w_f32(&w, o->min_lr);
        w_f32(&w, o->weight_decay);
        w_f32(&w, o->beta1);
        w_f32(&w, o->beta2);
        w_f32(&w, o->eps);
        w_f32(&w, o->grad_clip);
        for (int i = 0; i < 4; i++) w_u64(&w, state->rng[i]);
        w_u64(&w, (uint64_t)state->tokens_seen);
        w_f32(&w, state->best_val_loss);
    }
    w_str(&w, m->tokenizer);
    if (flags & F_TOKBLOB) {
        w_u64(&w, m->tok_blob_len);
        w_bytes(&w, m->tok_blob, m->tok_blob_len);
    }
    w_u32(&w, (uint32_t)m->ntensors);
    for (int i = 0; i < m->ntensors; i++) {
        const gpt_tensor_info *t = &m->tinfo[i];
        w_str(&w, t->name);
        w_u32(&w, (uint32_t)t->ndim);
        w_u64(&w, (uint64_t)t->shape[0]);
        w_u64(&w, (uint64_t)t->shape[1]);
        w_u64(&w, t->numel);
        if (m->quant) w_u32(&w, m->qoff[i] != GPT_NO_OFFSET ? DT_Q8 : DT_F32);
    }
    for (int i = 0; i < m->ntensors && !w.rc; i++) {
        if (m->qoff[i] != GPT_NO_OFFSET) { /* as stored: quant.h's layout is little-endian bytes */
            if (!(w.rc = gpt_model_get_tensor_q8(m, i, qbuf, err)))
                w_bytes(&w, qbuf, (size_t)tensor_bytes(m, i));
            continue;
        }
        if ((w.rc = gpt_model_get_tensor(m, i, buf, err)) ||
            (w.rc = check_values(buf, m->tinfo[i].numel, 0, m->tinfo[i].name, path, err)))
            break;
        w_floats(&w, buf, m->tinfo[i].numel);
    }
    for (int pass = 0; with_optimizer && pass < 2; pass++)
        for (int i = 0; i < m->ntensors && !w.rc; i++) {
            if ((w.rc = gpt_train_get_moment(m, pass, i, buf, err)) ||
                (w.rc = check_values(buf, m->tinfo[i].numel, pass == 1,
                                     pass == 0 ? "the first AdamW moment" : "the second AdamW moment",
                                     path, err)))
                break;
            w_floats(&w, buf, m->tinfo[i].numel);
        }
    free(buf);
    free(qbuf);
    if (sink) return w.rc;
    if (!w.rc) {
        w_u32(&w, w.af.crc);
        w_bytes(&w, CKPT_END, 8);
    }
    if (w.rc) {
        gpt_atomic_abort(&w.af);
        return w.rc;
    }
    return gpt_atomic_commit(&w.af, err);
}

/* ------------------------------------------------------------- reading */

typedef struct {
    FILE *f;
    const char *path;
    uint64_t remaining; /* bytes left in the file */
    uint32_t crc;
    gpt_error *err;
    int rc;
} reader;

static int r_fail(reader *r, const char *what) {
    if (!r->rc)
        r->rc = gpt_fail(r->err, GPT_ERR_INVALID, "'%s' is not a valid checkpoint: %s", r->path,
                         what);
    return r->rc;
}

static void r_bytes(reader *r, void *p, size_t n, const char *what) {
    if (r->rc) return;
    if (n > r->remaining || fread(p, 1, n, r->f) != n) {
        char msg[128];
        snprintf(msg, sizeof msg, "truncated while reading %s", what);
        r_fail(r, msg);
        return;
    }
    r->remaining -= n;
    r->crc = gpt_crc32(r->crc, p, n);
}
static uint64_t r_uint(reader *r, int bytes, const char *what) {
    unsigned char b[8] = {0};
    r_bytes(r, b, (size_t)bytes, what);
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = (v << 8) | b[i];
    return r->rc ? 0 : v;
}
static int32_t r_i32(reader *r, const char *what) { return (int32_t)(uint32_t)r_uint(r, 4, what); }
static float r_f32(reader *r, const char *what) {
    uint32_t u = (uint32_t)r_uint(r, 4, what);
    float f;
    memcpy(&f, &u, 4);
    return f;
}
/* Reads a u16-length string into buf (cap bytes with the NUL). */
static void r_str(reader *r, char *buf, size_t cap, const char *what) {
    size_t n = (size_t)r_uint(r, 2, what);
    if (r->rc) return;
    if (n >= cap) {
        r_fail(r, "a name is too long");
        return;
    }
    r_bytes(r, buf, n, what);
    buf[r->rc ? 0 : n] = 0;
    if (!r->rc && memchr(buf, 0, n)) r_fail(r, "a name holds a NUL byte");
}
static void r_floats(reader *r, float *x, size_t n, const char *what) {
    r_bytes(r, x, n * 4, what);
    const uint16_t probe = 1;
    if (r->rc || *(const unsigned char *)&probe == 1) return;
    for (size_t i = 0; i < n; i++) { /* big-endian hosts: swap */
        uint32_t u;
        memcpy(&u, x + i, 4);
        u = (u >> 24) | ((u >> 8) & 0xFF00) | ((u << 8) & 0xFF0000) | (u << 24);
        memcpy(x + i, &u, 4);
    }
}

typedef struct {
    uint32_t version;
    uint32_t flags;
    gpt_config cfg;
    int64_t step, opt_step;
    gpt_train_state state;
    char tokenizer[256];
    void *tok_blob;
    size_t tok_blob_len;
} ckpt_header;

static int open_reader(reader *r, const char *path, gpt_error *err) {
    memset(r, 0, sizeof *r);
    r->path = path;
    r->err = err;
    int fd;
    uint64_t size;
    gpt_error oerr = {0};
    int rc = gpt_open_regular(path, &fd, &size, &oerr);
    if (rc) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            return gpt_fail(err, GPT_ERR_INVALID,
                            "'%s' is a directory: give a checkpoint file, or a folder with "
                            "model.safetensors and config.json",
                            path);
        return gpt_fail(err, rc, "checkpoint: %s", oerr.msg);
    }
    if (!(r->f = fdopen(fd, "rb"))) {
        close(fd);
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory opening '%s'", path);
    }
    r->remaining = size;
    return GPT_OK;
}

/* quant.h's gpt_q8_bytes in 64 bits (a hostile configuration's shapes). */
static uint64_t q8_bytes(uint64_t rows, uint64_t cols) {
    uint64_t K = (cols + GPT_Q8_BLOCK - 1) / GPT_Q8_BLOCK * GPT_Q8_BLOCK;
    return rows * K + rows * (K / GPT_Q8_BLOCK) * 2;
}

/* The least the rest of the file can hold, from the configuration alone:
 * a tensor table entry of at least 33 bytes a tensor (u16 name length, a
 * name of 3 or more bytes, u32 ndim, two i64 dimensions, the u64 element
 * count; version 2 adds a u32 dtype) and the data (every parameter in fp32,
 * three times with the AdamW moments; an int8 model's matrices and wte in
 * quant.h's layout). Checked before anything is allocated for the model, so that a
 * small file cannot make the reader build a large one; the exact sizes are
 * checked against the model once it is built. */
static int check_implied_size(reader *r, const ckpt_header *h, uint32_t nt) {
    const gpt_config *c = &h->cfg;
    uint64_t want_nt = 4 + 12 * (uint64_t)c->n_layer;
    if (nt != want_nt) {
        char msg[128];
        snprintf(msg, sizeof msg, "it has %u tensors where the configuration needs %llu", nt,
                 (unsigned long long)want_nt);
        return r_fail(r, msg);
    }
    uint64_t data = (uint64_t)gpt_config_num_params(c) * 4 * ((h->flags & F_OPT) ? 3 : 1);
    if (h->flags & F_Q8) { /* the layers' matrices and wte in int8, the rest fp32 */
        uint64_t C = (uint64_t)c->n_embd, F = (uint64_t)c->mlp_hidden, L = (uint64_t)c->n_layer;
        uint64_t Vp = (uint64_t)c->padded_vocab;
        uint64_t q8 = L * (q8_bytes(3 * C, C) + q8_bytes(C, C) + q8_bytes(F, C) + q8_bytes(C, F)) +
                      q8_bytes(Vp, C);
        data -= (L * (4 * C * C + 2 * C * F) + Vp * C) * 4;
        data += q8;
    }
    uint64_t least = (h->version == CKPT_VERSION_DTYPES ? 37 : 33) * want_nt + data + 4 + 8;
    if (r->remaining < least) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "truncated: %llu bytes after the header where its configuration (%d layers, "
                 "%d channels) needs at least %llu",
                 (unsigned long long)r->remaining, c->n_layer, c->n_embd,
                 (unsigned long long)least);
        return r_fail(r, msg);
    }
    return GPT_OK;
}

/* Reads and checks everything up to the tensor data. Checks the tensor
 * table against a model built from the configuration when m != NULL. */
static int read_header(reader *r, ckpt_header *h, gpt_model *m_check) {
    memset(h, 0, sizeof *h);
    char magic[8];
    r_bytes(r, magic, 8, "the magic number");
    if (r->rc) return r->rc;
    if (memcmp(magic, CKPT_MAGIC, 8) != 0) return r_fail(r, "wrong magic number");
    uint32_t version = (uint32_t)r_uint(r, 4, "the version");
    if (!r->rc && version != CKPT_VERSION && version != CKPT_VERSION_DTYPES) {
        char msg[96];
        snprintf(msg, sizeof msg, "version %u is not supported (this build reads versions 1 and 2)",
                 version);
        return r_fail(r, msg);
    }
    h->version = version;
    h->flags = (uint32_t)r_uint(r, 4, "the flags");
    if (!r->rc && (h->flags & ~(uint32_t)(F_OPT | F_TRAIN | F_TOKBLOB | F_Q8))) return r_fail(r, "unknown flags");
    if (!r->rc && (h->flags & F_Q8) && version != CKPT_VERSION_DTYPES)
        return r_fail(r, "an int8 model in a version 1 file (int8 needs version 2)");
    if (!r->rc && (h->flags & F_Q8) && (h->flags & (F_OPT | F_TRAIN)))
        return r_fail(r, "an int8 model with optimizer or trainer state (int8 is for inference only)");
    gpt_config *c = &h->cfg;
    c->vocab_size = r_i32(r, "the configuration");
    c->padded_vocab = r_i32(r, "the configuration");
    c->max_seq_len = r_i32(r, "the configuration");
    c->n_layer = r_i32(r, "the configuration");
    c->n_head = r_i32(r, "the configuration");
    c->n_embd = r_i32(r, "the configuration");
    c->mlp_hidden = r_i32(r, "the configuration");
    c->ln_eps = r_f32(r, "the configuration");
    if (r->rc) return r->rc;
    gpt_error cerr;
    /* Stored configurations are resolved: 0 is not "default" here. */
    if (gpt_config_validate(c, &cerr)) {
        char msg[600];
        snprintf(msg, sizeof msg, "bad configuration (%.500s)", cerr.msg);
        return r_fail(r, msg);
    }
    h->step = (int64_t)r_uint(r, 8, "the step");
    h->opt_step = (int64_t)r_uint(r, 8, "the step");
    if (!r->rc && (h->step < 0 || h->step > INT32_MAX || h->opt_step < 0 || h->opt_step > h->step))
        return r_fail(r, "bad step counters");
    if (h->flags & F_TRAIN) {
        gpt_train_opts *o = &h->state.opts;
        h->state.has_train = 1;
        o->batch_size = r_i32(r, "the trainer state");
        o->seq_len = r_i32(r, "the trainer state");
        o->grad_accum = r_i32(r, "the trainer state");
        o->max_steps = r_i32(r, "the trainer state");
        o->warmup_steps = r_i32(r, "the trainer state");
        o->recompute = r_i32(r, "the trainer state");
        o->max_bad_steps = r_i32(r, "the trainer state");
        o->lr = r_f32(r, "the trainer state");
        o->min_lr = r_f32(r, "the trainer state");
        o->weight_decay = r_f32(r, "the trainer state");
        o->beta1 = r_f32(r, "the trainer state");
        o->beta2 = r_f32(r, "the trainer state");
        o->eps = r_f32(r, "the trainer state");
        o->grad_clip = r_f32(r, "the trainer state");
        for (int i = 0; i < 4; i++) h->state.rng[i] = r_uint(r, 8, "the trainer state");
        h->state.tokens_seen = (int64_t)r_uint(r, 8, "the trainer state");
        h->state.best_val_loss = r_f32(r, "the trainer state");
        if (r->rc) return r->rc;
        gpt_error oerr;
        if (gpt_train_opts_validate(o, c, &oerr)) {
            char msg[600];
            snprintf(msg, sizeof msg, "bad trainer state (%.500s)", oerr.msg);
            return r_fail(r, msg);
        }
    }
    r_str(r, h->tokenizer, sizeof h->tokenizer, "the tokenizer name");
    if (r->rc) return r->rc;
    if (!h->tokenizer[0]) return r_fail(r, "empty tokenizer name");
    if (h->flags & F_TOKBLOB) {
        uint64_t n = r_uint(r, 8, "the tokenizer");
        if (r->rc) return r->rc;
        if (n == 0 || n > r->remaining) return r_fail(r, "tokenizer length out of range");
        h->tok_blob = malloc((size_t)n);
        if (!h->tok_blob) return r->rc = gpt_fail(r->err, GPT_ERR_NOMEM, "out of memory");
        h->tok_blob_len = (size_t)n;
        r_bytes(r, h->tok_blob, (size_t)n, "the tokenizer");
    }
    if (r->rc) return r->rc;
    for (const char *q = h->tokenizer; *q; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7F)
            return r_fail(r, "the tokenizer name holds a control character");
    /* The name of a tokenizer file is only a label: a checkpoint never
     * makes the loader open a path (a FIFO would block, /dev/zero never
     * end). Trained vocabularies travel inside the checkpoint. */
    if (!h->tok_blob && !gpt_tokenizer_is_builtin(h->tokenizer)) {
        char msg[400];
        snprintf(msg, sizeof msg,
                 "it names the tokenizer '%.255s', which is not built in (gpt2, bytes), and "
                 "does not carry its tokenizer file",
                 h->tokenizer);
        return r_fail(r, msg);
    }
    uint32_t nt = (uint32_t)r_uint(r, 4, "the tensor count");
    if (r->rc) return r->rc;
    if (check_implied_size(r, h, nt)) return r->rc;
    if (m_check && nt != (uint32_t)m_check->ntensors) {
        char msg[128];
        snprintf(msg, sizeof msg, "it has %u tensors where the configuration needs %d", nt,
                 m_check->ntensors);
        return r_fail(r, msg);
    }
    uint64_t data = 0;
    for (uint32_t i = 0; i < nt && m_check; i++) {
        const gpt_tensor_info *t = &m_check->tinfo[i];
        char name[256];
        r_str(r, name, sizeof name, "the tensor table");
        uint32_t ndim = (uint32_t)r_uint(r, 4, "the tensor table");
        uint64_t s0 = r_uint(r, 8, "the tensor table"), s1 = r_uint(r, 8, "the tensor table");
        uint64_t numel = r_uint(r, 8, "the tensor table");
        uint32_t dtype = h->version == CKPT_VERSION_DTYPES ? (uint32_t)r_uint(r, 4, "the tensor table") : DT_F32;
        if (r->rc) return r->rc;
        uint32_t want = m_check->qoff[i] != GPT_NO_OFFSET ? DT_Q8 : DT_F32;
        if (dtype != want) {
            char msg[300];
            snprintf(msg, sizeof msg, "tensor %u (%s) has dtype %u where %s model needs %u (%s)", i,
                     t->name, dtype, m_check->quant ? "an int8" : "an fp32", want,
                     want == DT_Q8 ? "int8" : "fp32");
            return r_fail(r, msg);
        }
        if (strcmp(name, t->name) || ndim != (uint32_t)t->ndim || s0 != (uint64_t)t->shape[0] ||
            s1 != (uint64_t)t->shape[1] || numel != t->numel) {
            char msg[600];
            snprintf(msg, sizeof msg,
                     "tensor %u is '%s' (%llu x %llu) where the configuration needs '%s' (%d x %d)",
                     i, name, (unsigned long long)s0, (unsigned long long)s1, t->name, t->shape[0],
                     t->shape[1]);
            return r_fail(r, msg);
        }
        data += tensor_bytes(m_check, (int)i);
    }
    if (m_check) {
        uint64_t expect = data * ((h->flags & F_OPT) ? 3 : 1) + 4 + 8;
        if (r->remaining != expect) {
            char msg[160];
            snprintf(msg, sizeof msg, "%s: %llu bytes of data where the table needs %llu",
                     r->remaining < expect ? "truncated" : "trailing bytes",
                     (unsigned long long)r->remaining, (unsigned long long)expect);
            return r_fail(r, msg);
        }
    }
    return r->rc;
}

/* Reads the trailer and checks the CRC. */
static int read_trailer(reader *r) {
    uint32_t expect = r->crc;
    uint32_t got = (uint32_t)r_uint(r, 4, "the checksum");
    char end[8];
    r_bytes(r, end, 8, "the end marker");
    if (r->rc) return r->rc;
    if (got != expect) return r_fail(r, "checksum mismatch (the file is corrupt)");
    if (memcmp(end, CKPT_END, 8) != 0) return r_fail(r, "bad end marker");
    return GPT_OK;
}

/* Skips n floats (CRC still computed). */
static void r_skip_floats(reader *r, float *buf, size_t bufn, uint64_t n) {
    while (n && !r->rc) {
        size_t k = n < bufn ? (size_t)n : bufn;
        r_floats(r, buf, k, "the optimizer state");
        n -= k;
    }
}

/* The padded rows of wte (V..Vp) must be zero: in an int8 file, zero
 * quants with zero scales, as the quantiser writes them. */
static int q8_padding_zero(const gpt_model *m, const unsigned char *q) {
    size_t K = gpt_q8_cols(m->cfg.n_embd), nb = K / GPT_Q8_BLOCK, Vp = (size_t)m->cfg.padded_vocab;
    for (size_t r = (size_t)m->cfg.vocab_size; r < Vp; r++) {
        for (size_t k = 0; k < K; k++)
            if (q[r * K + k]) return 0;
        for (size_t b = 0; b < 2 * nb; b++)
            if (q[Vp * K + r * nb * 2 + b]) return 0;
    }
    return 1;
}

/* Reads the tensors' data into m, in table order (r after the header). */
static int read_tensors(reader *r, gpt_model *m, gpt_error *err) {
    float *buf = malloc(gpt_model_max_tensor(m) * sizeof(float));
    unsigned char *qbuf = m->quant ? malloc(max_q8_bytes(m)) : NULL;
    int rc = 0;
    if (!buf || (m->quant && !qbuf)) rc = gpt_fail(err, GPT_ERR_NOMEM, "out of memory loading '%s'", r->path);
    for (int i = 0; i < m->ntensors && !rc; i++) {
        int is_wte = !strcmp(m->tinfo[i].name, "wte");
        if (m->qoff[i] != GPT_NO_OFFSET) {
            const gpt_tensor_info *t = &m->tinfo[i];
            r_bytes(r, qbuf, (size_t)tensor_bytes(m, i), t->name);
            if ((rc = r->rc)) break;
            char why[160], msg[300];
            if (gpt_q8_check(qbuf, t->shape[0], t->shape[1], why, sizeof why)) {
                snprintf(msg, sizeof msg, "tensor %s: %s", t->name, why);
                rc = r_fail(r, msg);
                break;
            }
            if (is_wte && !q8_padding_zero(m, qbuf)) {
                rc = r_fail(r, "the padded rows of wte are not zero");
                break;
            }
            rc = gpt_model_set_tensor_q8(m, i, qbuf, err);
        } else {
            r_floats(r, buf, m->tinfo[i].numel, m->tinfo[i].name);
            if ((rc = r->rc)) break;
            if (is_wte) /* padding rows must stay zero */
                for (size_t k = (size_t)m->cfg.vocab_size * m->cfg.n_embd; k < m->tinfo[i].numel; k++)
                    if (buf[k] != 0) {
                        rc = r_fail(r, "the padded rows of wte are not zero");
                        break;
                    }
            if (!rc) rc = gpt_model_set_tensor(m, i, buf, err);
        }
        if (rc && rc != r->rc && err)
            snprintf(err->msg + strlen(err->msg), sizeof err->msg - strlen(err->msg), " in '%s'",
                     r->path);
    }
    free(buf);
    free(qbuf);
    return rc;
}

int gpt_checkpoint_load(gpt_model **out, const char *path, const gpt_runtime *rt,
                        gpt_error *err) {
    *out = NULL;
    /* First pass over the header: learn the configuration and the form. */
    reader r;
    ckpt_header h;
    int rc = open_reader(&r, path, err);
    if (rc) return rc;
    rc = read_header(&r, &h, NULL);
    fclose(r.f);
    free(h.tok_blob);
    if (rc) return rc;
    gpt_model *m = NULL;
    if ((rc = gpt_model_build_quant(&m, &h.cfg, rt, (h.flags & F_Q8) ? GPT_QUANT_INT8 : GPT_QUANT_NONE,
                                    err)))
        return rc;
    if ((rc = open_reader(&r, path, err))) {
        gpt_model_free(m);
        return rc;
    }
    rc = read_header(&r, &h, m);
    if (!rc) rc = read_tensors(&r, m, err);
    if (!rc && (h.flags & F_OPT)) {
        size_t maxn = gpt_model_max_tensor(m);
        float *buf = malloc(maxn * sizeof(float));
        if (!buf) rc = gpt_fail(err, GPT_ERR_NOMEM, "out of memory loading '%s'", path);
        for (int i = 0; i < m->ntensors && !rc; i++) r_skip_floats(&r, buf, maxn, 2 * m->tinfo[i].numel);
        free(buf);
    }
    if (!rc) rc = r.rc ? r.rc : read_trailer(&r);
    fclose(r.f);
    if (!rc) {
        rc = gpt_model_set_tokenizer(m, h.tokenizer, h.tok_blob, h.tok_blob_len, err);
        m->step = (int)h.step;
        m->opt_step = (int)h.opt_step;
    }
    free(h.tok_blob);
    if (rc) {
        gpt_model_free(m);
        return rc;
    }
    *out = m;
    return GPT_OK;
}

int gpt_checkpoint_read_state(const char *path, gpt_config *cfg, gpt_train_state *state,
                              gpt_error *err) {
    reader r;
    int rc = open_reader(&r, path, err);
    if (rc) return rc;
    ckpt_header h;
    rc = read_header(&r, &h, NULL);
    fclose(r.f);
    free(h.tok_blob);
    if (rc) return rc;
    if (cfg) *cfg = h.cfg;
    if (state) *state = h.state;
    return GPT_OK;
}

int gpt_train_resume(gpt_model *m, const char *path, gpt_error *err) {
    if (!m->train_ready)
        return gpt_fail(err, GPT_ERR_INVALID, "gpt_train_resume: call gpt_train_init first");
    reader r;
    int rc = open_reader(&r, path, err);
    if (rc) return rc;
    ckpt_header h;
    rc = read_header(&r, &h, m);
    free(h.tok_blob);
    if (!rc && !(h.flags & F_OPT)) rc = r_fail(&r, "it holds no optimizer state to resume from");
    float *buf = NULL;
    if (!rc) {
        size_t maxn = gpt_model_max_tensor(m);
        buf = malloc(maxn * sizeof(float));
        if (!buf) rc = gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
        for (int i = 0; i < m->ntensors && !rc; i++) r_skip_floats(&r, buf, maxn, m->tinfo[i].numel);
        for (int pass = 0; pass < 2 && !rc; pass++)
            for (int i = 0; i < m->ntensors && !rc; i++) {
                r_floats(&r, buf, m->tinfo[i].numel, "the optimizer state");
                if ((rc = r.rc)) break;
                for (size_t k = 0; k < m->tinfo[i].numel; k++)
                    if (!isfinite(buf[k]) || (pass == 1 && buf[k] < 0)) {
                        rc = r_fail(&r, "the optimizer state holds invalid values");
                        break;
                    }
                if (!rc) gpt_train_set_moment(m, pass, i, buf);
            }
        if (!rc) rc = read_trailer(&r);
    }
    free(buf);
    fclose(r.f);
    if (rc) {
        /* Moments may be half written: start them again from zero. */
        m->be->ops->memset0(m->be, m->m, m->opt_n * 4);
        m->be->ops->memset0(m->be, m->v, m->opt_n * 4);
        return rc;
    }
    m->step = (int)h.step;
    m->opt_step = (int)h.opt_step;
    return gpt_model_backend_error(m, err);
}
