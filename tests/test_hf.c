/*
 * test_hf.c - Hugging Face GPT-2 checkpoints: the transformers fixture in
 * tests/data/hf_tiny (made by tests/ref/make_hf_fixture.py) loads with the
 * same logits, loss and greedy continuation as transformers computed;
 * malformed files are refused with a message naming the tensor; our
 * checkpoint -> HF -> back gives identical logits; and, when the reference
 * Python is here, transformers loads what we write.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpt.h"
#include "hf.h"
#include "json.h"
#include "safetensors.h"
#include "test.h"
#include "util.h"

#define FIX "tests/data/hf_tiny"

static const gpt_runtime RT = {.device = "cpu", .precision = GPT_PREC_FP32};

/* ------------------------------------------------------------ fixture */

static json_value *ref;   /* ref.json */
static float *ref_logits; /* logits_fp32.bin */
static size_t ref_logits_n;
static char *st_img, *cfg_txt; /* fp32/model.safetensors, fp32/config.json */
static size_t st_len, cfg_len;

static int load_fixture(void) {
    char *txt;
    size_t n;
    gpt_error err = {0};
    if (gpt_read_file(FIX "/ref.json", 0, &txt, &n, &err) || json_parse(txt, n, &ref, &err)) {
        printf("cannot read the fixture: %s\n", err.msg);
        return 0;
    }
    free(txt);
    char *raw;
    if (gpt_read_file(FIX "/logits_fp32.bin", 0, &raw, &n, &err)) return 0;
    ref_logits = (float *)raw; /* malloc'd: aligned for float; little-endian host */
    ref_logits_n = n / 4;
    return !gpt_read_file(FIX "/fp32/model.safetensors", 0, &st_img, &st_len, &err) &&
           !gpt_read_file(FIX "/fp32/config.json", 0, &cfg_txt, &cfg_len, &err);
}

/* The ids of a JSON array (malloc'd). */
static int *json_ids(const json_value *a, int *n) {
    *n = (int)a->len;
    int *v = malloc((a->len ? a->len : 1) * sizeof *v);
    for (size_t i = 0; v && i < a->len; i++)
        v[i] = (int)a->items[i].number;
    return v;
}

/* ---------------------------------------------- building broken images */

/* The safetensors image with header h (NUL-terminated) and the fixture's
 * data, plus extra bytes appended to the data. */
static char *image(const char *h, const void *extra, size_t n_extra, size_t *n) {
    uint64_t old_h = 0;
    for (int i = 7; i >= 0; i--)
        old_h = (old_h << 8) | (unsigned char)st_img[i];
    size_t data = st_len - 8 - (size_t)old_h, hl = strlen(h);
    *n = 8 + hl + data + n_extra;
    char *img = malloc(*n);
    for (int i = 0; i < 8; i++)
        img[i] = (char)((uint64_t)hl >> (8 * i));
    memcpy(img + 8, h, hl);
    memcpy(img + 8 + hl, st_img + 8 + old_h, data);
    if (n_extra) memcpy(img + 8 + hl + data, extra, n_extra);
    return img;
}

/* The fixture's header text (malloc'd). */
static char *header(void) {
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = (hl << 8) | (unsigned char)st_img[i];
    char *h = malloc(hl + 1);
    memcpy(h, st_img + 8, hl);
    h[hl] = 0;
    return h;
}

/* s with the first `old` replaced by `new` (malloc'd); NULL if absent. */
static char *replace(const char *s, const char *old, const char *new_) {
    const char *p = strstr(s, old);
    if (!p) return NULL;
    size_t a = (size_t)(p - s), lo = strlen(old), ln = strlen(new_), n = strlen(s);
    char *r = malloc(n - lo + ln + 1);
    memcpy(r, s, a);
    memcpy(r + a, new_, ln);
    memcpy(r + a + ln, p + lo, n - a - lo + 1);
    return r;
}

/* Header with tensor's field ("dtype", "shape", "data_offsets") set to
 * the JSON text value. */
static char *set_field(const char *h, const char *tensor, const char *field, const char *value) {
    char key[256];
    snprintf(key, sizeof key, "\"%s\":{", tensor);
    const char *t = strstr(h, key);
    if (!t) return NULL;
    snprintf(key, sizeof key, "\"%s\":", field);
    const char *f = strstr(t, key);
    if (!f) return NULL;
    const char *v = f + strlen(key), *e = v[0] == '"' ? strchr(v + 1, '"') + 1 : strchr(v, ']') + 1;
    size_t a = (size_t)(v - h), ln = strlen(value), n = strlen(h);
    char *r = malloc(n + ln + 1);
    memcpy(r, h, a);
    memcpy(r + a, value, ln);
    memcpy(r + a + ln, e, n - (size_t)(e - h) + 1);
    return r;
}

/* The data_offsets of a tensor in header h. */
static void offsets(const char *h, const char *tensor, long long *b, long long *e) {
    char key[256];
    snprintf(key, sizeof key, "\"%s\":{", tensor);
    const char *t = strstr(h, key);
    const char *f = t ? strstr(t, "\"data_offsets\":[") : NULL;
    *b = *e = -1;
    if (f) sscanf(f + 16, "%lld,%lld", b, e);
}

/* Parses (config, image); returns rc and fills msg. */
static int try_parse(const char *cfg, const char *img, size_t n, char *msg, size_t msg_n) {
    gpt_hf_file *f = NULL;
    gpt_error err = {0};
    int rc = gpt_hf_parse_memory(&f, cfg, strlen(cfg), img, n, &err);
    snprintf(msg, msg_n, "%s", rc ? err.msg : "");
    if (!rc) {
        /* Reading every tensor must stay inside the image (ASan checks). */
        for (int i = 0; i < gpt_hf_num_tensors(f); i++) {
            float *buf = malloc(gpt_hf_tensor(f, i)->numel * sizeof *buf);
            gpt_hf_read(f, i, buf);
            free(buf);
        }
    }
    gpt_hf_close(f);
    return rc;
}

/* One broken-file case: the parse must fail with GPT_ERR_INVALID and a
 * message holding every one of want[] (tensor names, field names). */
static void expect_refused(const char *what, const char *cfg, char *img, size_t n,
                           const char *want1, const char *want2) {
    test_begin("refused: %s", what);
    char msg[1024];
    if (!img || !cfg) {
        EXPECT(0, "test setup: could not build the broken file");
    } else {
        int rc = try_parse(cfg, img, n, msg, sizeof msg);
        EXPECT(rc == GPT_ERR_INVALID, "rc %d (%s)", rc, msg);
        EXPECT(!want1 || strstr(msg, want1), "message '%s' lacks '%s'", msg, want1);
        EXPECT(!want2 || strstr(msg, want2), "message '%s' lacks '%s'", msg, want2);
    }
    free(img);
    test_end();
}

static void expect_accepted(const char *what, const char *cfg, char *img, size_t n) {
    test_begin("accepted: %s", what);
    char msg[1024];
    EXPECT(img && cfg, "test setup");
    if (img && cfg) {
        int rc = try_parse(cfg, img, n, msg, sizeof msg);
        EXPECT(rc == 0, "rc %d: %s", rc, msg);
    }
    free(img);
    test_end();
}

/* A case on the fixture's data under header h (taken and freed). */
static void refused_h(const char *what, const char *cfg, char *h, const char *want1,
                      const char *want2) {
    size_t n = 0;
    char *img = h ? image(h, NULL, 0, &n) : NULL;
    free(h);
    expect_refused(what, cfg, img, n, want1, want2);
}

static char *dup_bytes(const char *s, size_t n) {
    char *r = malloc(n ? n : 1);
    memcpy(r, s, n);
    return r;
}

static void test_malformed_safetensors(void) {
    char *h = header();
    size_t n;
    const char *cfg = cfg_txt;
    const char *T = "transformer.h.1.mlp.c_fc.weight";

    expect_accepted("the fixture as it is", cfg, dup_bytes(st_img, st_len), st_len);
    expect_refused("empty file", cfg, dup_bytes(st_img, 0), 0, "too short", NULL);
    expect_refused("7 bytes", cfg, dup_bytes(st_img, 7), 7, "too short", NULL);
    expect_refused("only the header length", cfg, dup_bytes(st_img, 8), 8, "header length", NULL);

    /* Truncated inside the data: the tensor with the last bytes is named. */
    long long last_end = -1;
    const char *last = NULL;
    static const char *names[] = {"transformer.wte.weight",
                                  "transformer.wpe.weight",
                                  "transformer.ln_f.weight",
                                  "transformer.ln_f.bias",
                                  "transformer.h.1.mlp.c_proj.weight",
                                  "transformer.h.1.mlp.c_proj.bias",
                                  "transformer.h.1.ln_2.weight"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        long long b, e;
        offsets(h, names[i], &b, &e);
        if (e > last_end) last_end = e, last = names[i];
    }
    expect_refused("truncated by 100 bytes", cfg, dup_bytes(st_img, st_len - 100), st_len - 100,
                   last, "outside");
    expect_refused("truncated inside the header", cfg, dup_bytes(st_img, 200), 200, "header length",
                   NULL);

    char *img = dup_bytes(st_img, st_len);
    for (int i = 0; i < 8; i++)
        img[i] = (char)0xff;
    expect_refused("header length 2^64-1", cfg, img, st_len, "header length", NULL);
    img = dup_bytes(st_img, st_len);
    memset(img, 0, 8);
    img[0] = 1;
    expect_refused("header length 1", cfg, img, st_len, "header", NULL);
    img = dup_bytes(st_img, st_len);
    uint64_t big = (uint64_t)st_len - 7;
    for (int i = 0; i < 8; i++)
        img[i] = (char)(big >> (8 * i));
    expect_refused("header length one past the file", cfg, img, st_len, "header length", NULL);
    img = dup_bytes(st_img, st_len);
    big = (uint64_t)200 << 20;
    for (int i = 0; i < 8; i++)
        img[i] = (char)(big >> (8 * i));
    expect_refused("header length 200 MiB", cfg, img, st_len, "header length", NULL);

    refused_h("unknown dtype", cfg, set_field(h, T, "dtype", "\"Q4_K\""), T, "unknown dtype");
    refused_h("dtype I32 (known, not loadable)", cfg, set_field(h, T, "dtype", "\"I32\""), T,
              "I32");
    refused_h("dtype F64 (byte count no longer matches)", cfg, set_field(h, T, "dtype", "\"F64\""),
              T, "bytes");
    refused_h("dtype not a string", cfg, set_field(h, T, "dtype", "[1]"), T, "dtype");
    refused_h("offsets past the data", cfg, set_field(h, T, "data_offsets", "[0,999999999]"), T,
              "outside");
    refused_h("offsets running backwards", cfg, set_field(h, T, "data_offsets", "[768,0]"), T,
              "backwards");
    refused_h("offsets beyond 2^53", cfg,
              set_field(h, T, "data_offsets", "[0,18446744073709551615]"), T, "data_offsets");
    refused_h("negative offset", cfg, set_field(h, T, "data_offsets", "[-4,0]"), T, "data_offsets");
    refused_h("one offset", cfg, set_field(h, T, "data_offsets", "[4]"), T, "data_offsets");

    /* Overlap: ln_2.bias moved onto ln_2.weight's bytes (same size). */
    long long b, e;
    char val[64];
    offsets(h, "transformer.h.0.ln_2.weight", &b, &e);
    snprintf(val, sizeof val, "[%lld,%lld]", b, e);
    refused_h("two tensors on the same bytes", cfg,
              set_field(h, "transformer.h.0.ln_2.bias", "data_offsets", val), "h.0.ln_2.bias",
              "overlaps");
    /* Overlap by half a tensor. */
    snprintf(val, sizeof val, "[%lld,%lld]", b + 128, e + 128);
    refused_h("two tensors overlapping by half", cfg,
              set_field(h, "transformer.h.0.ln_2.weight", "data_offsets", val), "h.0.ln_2",
              "overlaps");

    refused_h("missing tensor", cfg,
              replace(h, "\"transformer.h.1.ln_2.bias\"", "\"transformer.h.1.ln_2.bogus\""),
              "h.1.ln_2.bias", "missing");
    refused_h("wrong shape, same bytes", cfg,
              set_field(h, "transformer.h.0.attn.c_attn.weight", "shape", "[192,64]"),
              "transformer.h.0.attn.c_attn.weight", "3*n_embd=192");
    refused_h("shape and byte count disagree", cfg, set_field(h, T, "shape", "[64,191]"), T,
              "bytes");
    refused_h("shape with a fractional entry", cfg, set_field(h, T, "shape", "[64,1.5]"), T,
              "shape");
    refused_h("shape overflowing", cfg,
              set_field(h, T, "shape", "[4294967296,4294967296,4294967296]"), T, "shape");
    refused_h("3-D shape", cfg, set_field(h, T, "shape", "[64,192,1]"), T, "shape");
    refused_h("unexpected tensor", cfg,
              replace(h, "{\"__metadata__\"",
                      "{\"transformer.h.0.extra\":{\"dtype\":\"F32\",\"shape\":[0],"
                      "\"data_offsets\":[0,0]},\"__metadata__\""),
              "transformer.h.0.extra", "unexpected");
    refused_h("a tensor twice", cfg,
              replace(h, "{\"__metadata__\"",
                      "{\"transformer.ln_f.bias\":{\"dtype\":\"F32\",\"shape\":[0],"
                      "\"data_offsets\":[0,0]},\"__metadata__\""),
              "transformer.ln_f.bias", "twice");
    refused_h("header not an object", cfg, replace(h, "{", "["), "header", NULL);
    char *cut = dup_bytes(h, strlen(h) + 1);
    *strrchr(cut, '}') = 0;
    refused_h("header JSON cut short", cfg, cut, "header", NULL);
    refused_h("entry not an object", cfg,
              replace(h, "{\"__metadata__\"", "{\"transformer.h.0.extra\":[1],\"__metadata__\""),
              "transformer.h.0.extra", NULL);

    /* Accepted variants. */
    char *np = dup_bytes(h, strlen(h) + 1), *t;
    while ((t = replace(np, "transformer.", ""))) {
        free(np);
        np = t;
    }
    img = image(np, NULL, 0, &n);
    free(np);
    expect_accepted("names without 'transformer.'", cfg, img, n);
    {
        /* The old causal-mask buffer, with bytes of its own. */
        unsigned char mask[64 * 64];
        memset(mask, 1, sizeof mask);
        long long end = (long long)(st_len - 8 - strlen(h));
        char ent[256];
        snprintf(ent, sizeof ent,
                 "{\"transformer.h.0.attn.bias\":{\"dtype\":\"BOOL\",\"shape\":[1,1,64,64],"
                 "\"data_offsets\":[%lld,%lld]},\"__metadata__\"",
                 end, end + 4096);
        char *hh = replace(h, "{\"__metadata__\"", ent);
        img = hh ? image(hh, mask, sizeof mask, &n) : NULL;
        free(hh);
        expect_accepted("the old attn.bias buffer is ignored", cfg, img, n);
    }
    {
        /* lm_head.weight: a copy of wte is accepted, a different one not. */
        long long wb, we;
        offsets(h, "transformer.wte.weight", &wb, &we);
        uint64_t hl = strlen(h);
        const char *wte = st_img + 8 + hl + wb;
        long long end = (long long)(st_len - 8 - hl);
        char ent[256];
        snprintf(ent, sizeof ent,
                 "{\"lm_head.weight\":{\"dtype\":\"F32\",\"shape\":[1000,64],"
                 "\"data_offsets\":[%lld,%lld]},\"__metadata__\"",
                 end, end + (we - wb));
        char *hh = replace(h, "{\"__metadata__\"", ent);
        char *copy = dup_bytes(wte, (size_t)(we - wb));
        img = hh ? image(hh, copy, (size_t)(we - wb), &n) : NULL;
        expect_accepted("lm_head.weight equal to wte", cfg, img, n);
        copy[4 * 777 + 1] ^= 0x40;
        img = hh ? image(hh, copy, (size_t)(we - wb), &n) : NULL;
        expect_refused("lm_head.weight differing from wte", cfg, img, n, "lm_head.weight", "tied");
        char *untied =
            replace(cfg, "\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false");
        copy[4 * 777 + 1] ^= 0x40;
        img = hh ? image(hh, copy, (size_t)(we - wb), &n) : NULL;
        expect_accepted("untied config with lm_head.weight equal to wte", untied, img, n);
        expect_refused("untied config without lm_head.weight", untied, dup_bytes(st_img, st_len),
                       st_len, "tie_word_embeddings", NULL);
        free(untied);
        free(copy);
        free(hh);
    }
    free(h);
}

static void test_malformed_config(void) {
    struct {
        const char *what, *old, *new_, *want1, *want2;
    } rows[] = {
        {"n_layer 3 (more layers than the file)", "\"n_layer\": 2", "\"n_layer\": 3", "h.2.",
         "missing"},
        {"n_layer 1 (fewer layers than the file)", "\"n_layer\": 2", "\"n_layer\": 1",
         "transformer.h.1.", "unexpected"},
        {"n_layer 2000000000", "\"n_layer\": 2", "\"n_layer\": 2000000000", "config.json", NULL},
        {"vocab_size 999", "\"vocab_size\": 1000", "\"vocab_size\": 999", "transformer.wte.weight",
         "vocab_size=999"},
        {"n_inner 100", "\"n_inner\": 192", "\"n_inner\": 100", "transformer.h.0.mlp.c_fc.weight",
         "n_inner=100"},
        {"n_positions 32", "\"n_positions\": 64", "\"n_positions\": 32", "transformer.wpe.weight",
         "n_positions=32"},
        {"n_head 5 does not divide 64", "\"n_head\": 4", "\"n_head\": 5", "config.json", NULL},
        {"n_embd missing", "\"n_embd\": 64", "\"n_embdx\": 64", "n_embd", NULL},
        {"n_embd negative", "\"n_embd\": 64", "\"n_embd\": -64", "n_embd", NULL},
        {"n_embd fractional", "\"n_embd\": 64", "\"n_embd\": 64.5", "n_embd", NULL},
        {"n_embd a string", "\"n_embd\": 64", "\"n_embd\": \"64\"", "n_embd", NULL},
        {"layer_norm_epsilon 0", "\"layer_norm_epsilon\": 1e-05", "\"layer_norm_epsilon\": 0",
         "layer_norm_epsilon", NULL},
        {"activation relu", "\"gelu_new\"", "\"relu\"", "activation_function", NULL},
        {"model_type bert", "\"model_type\": \"gpt2\"", "\"model_type\": \"bert\"", "model_type",
         NULL},
        {"scale_attn_by_inverse_layer_idx", "\"scale_attn_by_inverse_layer_idx\": false",
         "\"scale_attn_by_inverse_layer_idx\": true", "scale_attn_by_inverse_layer_idx", NULL},
        {"not JSON", "{", "", "config.json", NULL},
        {"an array", "{", "[{", "config.json", NULL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char *cfg = replace(cfg_txt, rows[i].old, rows[i].new_);
        if (cfg && !strcmp(rows[i].what, "an array")) {
            char *c2 = malloc(strlen(cfg) + 2);
            sprintf(c2, "%s]", cfg);
            free(cfg);
            cfg = c2;
        }
        char what[128];
        snprintf(what, sizeof what, "config %s", rows[i].what);
        expect_refused(what, cfg, dup_bytes(st_img, st_len), st_len, rows[i].want1, rows[i].want2);
        free(cfg);
    }
    char *cfg = replace(cfg_txt, "\"n_positions\": 64", "\"n_ctx\": 64");
    expect_accepted("config with n_ctx instead of n_positions", cfg, dup_bytes(st_img, st_len),
                    st_len);
    free(cfg);
}

/* ------------------------------------------------- reading, no model */

static void test_read_layout(void) {
    test_begin("Conv1D weights are transposed, wte padded with zero rows, F16/BF16 decoded");
    gpt_hf_file *f = NULL, *f16 = NULL, *bf16 = NULL;
    gpt_error err = {0};
    int rc = gpt_hf_open(&f, FIX "/fp32", &err);
    EXPECT(rc == 0, "%s", err.msg);
    rc = gpt_hf_open(&f16, FIX "/f16/model.safetensors", &err);
    EXPECT(rc == 0, "%s", err.msg);
    rc = gpt_hf_open(&bf16, FIX "/bf16", &err);
    EXPECT(rc == 0, "%s", err.msg);
    if (f && f16 && bf16) {
        const gpt_config *c = gpt_hf_config(f);
        EXPECT(c->vocab_size == 1000 && c->n_embd == 64 && c->n_layer == 2 && c->n_head == 4 &&
                   c->mlp_hidden == 192 && c->max_seq_len == 64 && c->padded_vocab >= 1000 &&
                   fabsf(c->ln_eps - 1e-5f) < 1e-12f,
               "config V %d C %d L %d NH %d F %d T %d", c->vocab_size, c->n_embd, c->n_layer,
               c->n_head, c->mlp_hidden, c->max_seq_len);
        EXPECT(gpt_hf_num_tensors(f) == 4 + 12 * 2, "%d tensors", gpt_hf_num_tensors(f));
        /* h.1.mlp.fc.w: ours (F, C) = theirs (C, F) transposed. */
        int i = gpt_hf_find(f, "h.1.mlp.fc.w");
        const gpt_tensor_info *t = gpt_hf_tensor(f, i);
        EXPECT(t && t->ndim == 2 && t->shape[0] == 192 && t->shape[1] == 64, "fc.w shape");
        char *h = header();
        long long b, e;
        offsets(h, "transformer.h.1.mlp.c_fc.weight", &b, &e);
        const float *raw = (const float *)(st_img + 8 + strlen(h) + b); /* (C, F) */
        float *buf = malloc(192 * 64 * sizeof *buf), *b16 = malloc(192 * 64 * sizeof *buf);
        gpt_hf_read(f, i, buf);
        int bad = 0;
        for (int o = 0; o < 192; o++)
            for (int k = 0; k < 64; k++) {
                float want;
                memcpy(&want, (const char *)raw + 4 * ((size_t)k * 192 + o), 4);
                bad += buf[o * 64 + k] != want;
            }
        EXPECT(bad == 0, "%d elements of h.1.mlp.fc.w misplaced", bad);
        gpt_hf_read(f16, gpt_hf_find(f16, "h.1.mlp.fc.w"), b16);
        double e16 = test_max_rel_err(b16, buf, 192 * 64, 1e-3);
        gpt_hf_read(bf16, gpt_hf_find(bf16, "h.1.mlp.fc.w"), b16);
        double ebf = test_max_rel_err(b16, buf, 192 * 64, 1e-3);
        /* Rounding to nearest: half an ulp, 2^-11 (F16) and 2^-8 (BF16). */
        EXPECT(e16 <= 1.0 / 2048 && ebf <= 1.0 / 256, "F16 error %g, BF16 error %g", e16, ebf);
        free(buf);
        free(b16);
        free(h);
        i = gpt_hf_find(f, "wte");
        t = gpt_hf_tensor(f, i);
        buf = malloc(t->numel * sizeof *buf);
        gpt_hf_read(f, i, buf);
        int nonzero = 0;
        for (size_t k = (size_t)1000 * 64; k < t->numel; k++)
            nonzero += buf[k] != 0;
        EXPECT(t->shape[0] == c->padded_vocab && nonzero == 0, "wte rows %d, %d pad values set",
               t->shape[0], nonzero);
        free(buf);
        EXPECT(gpt_hf_find(f, "h.2.ln1.w") == -1, "no layer 2");
    }
    gpt_hf_close(f);
    gpt_hf_close(f16);
    gpt_hf_close(bf16);
    test_end();

    test_begin("half and bfloat16 conversion, special values included");
    struct {
        uint16_t h;
        float want;
    } hv[] = {{0x3c00, 1.0f},          {0xc000, -2.0f},         {0x7bff, 65504.0f},
              {0x0001, 5.9604645e-8f}, {0x03ff, 6.0975552e-5f}, {0x0400, 6.1035156e-5f},
              {0x8000, -0.0f},         {0x7c00, INFINITY},      {0xfc00, -INFINITY},
              {0x3555, 0.33325195f}};
    for (size_t k = 0; k < sizeof hv / sizeof hv[0]; k++)
        EXPECT(st_f16_to_f32(hv[k].h) == hv[k].want, "f16 %04x -> %g, want %g", hv[k].h,
               (double)st_f16_to_f32(hv[k].h), (double)hv[k].want);
    EXPECT(isnan(st_f16_to_f32(0x7e00)), "f16 NaN");
    EXPECT(signbit(st_f16_to_f32(0x8000)), "f16 -0");
    EXPECT(st_bf16_to_f32(0x3f80) == 1.0f && st_bf16_to_f32(0xc2f7) == -123.5f &&
               isinf(st_bf16_to_f32(0x7f80)) && isnan(st_bf16_to_f32(0x7fc0)),
           "bf16 values");
    test_end();

    test_begin("missing files are refused with the path");
    const char *bad[] = {"tests/data/no_such_dir", FIX "/no_such.safetensors", FIX};
    for (size_t k = 0; k < 3; k++) {
        gpt_hf_file *g = NULL;
        memset(&err, 0, sizeof err);
        rc = gpt_hf_open(&g, bad[k], &err);
        EXPECT(rc == GPT_ERR_INVALID && g == NULL && err.msg[0], "%s: rc %d", bad[k], rc);
        gpt_hf_close(g);
    }
    EXPECT(gpt_hf_is_checkpoint(FIX "/fp32") && gpt_hf_is_checkpoint("x/model.safetensors") &&
               !gpt_hf_is_checkpoint(FIX) && !gpt_hf_is_checkpoint("model.ckpt") &&
               !gpt_hf_is_checkpoint("tests"),
           "gpt_hf_is_checkpoint");
    test_end();
}

/* ------------------------------------------------------- with the model */

/* The fixture's logits are fp32 from PyTorch; ours are fp32 too, but sum
 * in a different order (BLAS blocking, our attention's online softmax,
 * expf/tanhf from libm). Each op rounds at ~1e-7 relative; two layers,
 * five layernorms and attention over up to 64 positions grow that to the
 * measured 1.4e-5 worst element (relative to |logit| + 0.1: the floor
 * keeps logits near zero from turning absolute noise into huge ratios) and
 * 5e-7 relative L2. 1e-4 leaves a 7x margin and still catches any
 * misplaced or mistransposed weight, which moves logits by O(1). */
#define LOGIT_TOL 1e-4

static void check_logits(gpt_model *m, const char *label, const json_value *seq, const float *want,
                         double want_loss) {
    int T;
    int *tok = json_ids(json_get(seq, "tokens"), &T);
    const int V = 1000;
    float *got = malloc((size_t)T * V * sizeof *got);
    gpt_error err = {0};
    test_begin("%s: logits of a %d-token sequence match transformers", label, T);
    int rc = gpt_forward_logits(m, tok, 1, T, got, &err);
    EXPECT(rc == 0, "%s", err.msg);
    if (!rc) {
        double e = test_max_rel_err(got, want, (size_t)T * V, 0.1),
               l2 = test_rel_l2(got, want, (size_t)T * V);
        EXPECT(e < LOGIT_TOL && l2 < LOGIT_TOL, "max relative error %g, relative L2 %g", e, l2);
        printf("     max relative error %.2g, relative L2 %.2g\n", e, l2);
    }
    test_end();
    if (T >= 2) {
        test_begin("%s: loss of a %d-token sequence matches transformers", label, T);
        double loss;
        rc = gpt_eval_loss(m, tok, 1, T - 1, &loss, &err);
        EXPECT(rc == 0 && fabs(loss - want_loss) < 1e-5 * want_loss, "loss %.7f want %.7f (%s)",
               loss, want_loss, rc ? err.msg : "");
        test_end();
    }
    free(tok);
    free(got);
}

static void test_model_logits(void) {
    gpt_model *m = NULL;
    gpt_error err = {0};
    test_begin("load the fp32 fixture folder");
    int rc = gpt_hf_load(&m, FIX "/fp32", &RT, &err);
    EXPECT(rc == 0, "%s", err.msg);
    test_end();
    if (rc) return;
    const json_value *seqs = json_get(ref, "sequences");
    for (size_t i = 0; i < seqs->len; i++) {
        long long off = (long long)json_get(&seqs->items[i], "logits_offset")->number;
        check_logits(m, "fp32", &seqs->items[i], ref_logits + off,
                     json_get(&seqs->items[i], "loss")->number);
    }

    /* Greedy continuations, one prompt at a time and as one batch. */
    const json_value *gr = json_get(ref, "greedy");
    int B = (int)gr->len, *lens = calloc((size_t)B, sizeof *lens), maxN = 0;
    int **prompts = calloc((size_t)B, sizeof *prompts), **want = calloc((size_t)B, sizeof *want);
    int *wn = calloc((size_t)B, sizeof *wn);
    for (int b = 0; b < B; b++) {
        prompts[b] = json_ids(json_get(&gr->items[b], "prompt"), &lens[b]);
        want[b] = json_ids(json_get(&gr->items[b], "tokens"), &wn[b]);
        if (wn[b] > maxN) maxN = wn[b];
    }
    gpt_generate_opts o;
    gpt_generate_opts_default(&o);
    o.sampler.temperature = 0;
    int *out = malloc((size_t)B * maxN * sizeof *out),
        *out_lens = malloc((size_t)B * sizeof *out_lens);
    for (int b = 0; b < B; b++) {
        test_begin("greedy continuation %d (prompt %d, %d new) matches transformers exactly", b,
                   lens[b], wn[b]);
        o.max_new_tokens = wn[b];
        rc = gpt_generate(m, (const int *const *)&prompts[b], &lens[b], 1, &o, out, out_lens, NULL,
                          &err);
        EXPECT(rc == 0, "%s", err.msg);
        EXPECT(!rc && out_lens[0] == wn[b] && !memcmp(out, want[b], (size_t)wn[b] * sizeof *out),
               "continuation differs");
        test_end();
    }
    test_begin("greedy continuations as one batch of %d unequal prompts match exactly", B);
    o.max_new_tokens = maxN;
    rc = gpt_generate(m, (const int *const *)prompts, lens, B, &o, out, out_lens, NULL, &err);
    EXPECT(rc == 0, "%s", err.msg);
    for (int b = 0; b < B && !rc; b++)
        EXPECT(out_lens[b] == maxN &&
                   !memcmp(out + (size_t)b * maxN, want[b], (size_t)wn[b] * sizeof *out),
               "row %d differs", b);
    test_end();
    for (int b = 0; b < B; b++) {
        free(prompts[b]);
        free(want[b]);
    }
    free(prompts);
    free(want);
    free(wn);
    free(lens);
    free(out);
    free(out_lens);
    gpt_model_free(m);

    /* The reduced-precision copies against their own references. */
    const char *copies[] = {"f16", "bf16"};
    for (int k = 0; k < 2; k++) {
        char path[256], lpath[256];
        snprintf(path, sizeof path, FIX "/%s", copies[k]);
        snprintf(lpath, sizeof lpath, FIX "/logits_%s.bin", copies[k]);
        test_begin("load the %s fixture", copies[k]);
        rc = gpt_hf_load(&m, path, &RT, &err);
        EXPECT(rc == 0, "%s", err.msg);
        test_end();
        if (rc) continue;
        char *raw;
        size_t n;
        const json_value *cp = json_get(json_get(ref, "copies"), copies[k]);
        const json_value *seq = &seqs->items[(int)json_get(cp, "sequence")->number];
        if (!gpt_read_file(lpath, 0, &raw, &n, &err)) {
            check_logits(m, copies[k], seq, (const float *)raw, json_get(cp, "loss")->number);
            free(raw);
        }
        gpt_model_free(m);
    }
}

static int logits_of(gpt_model *m, const int *tok, int T, float **out) {
    const gpt_config *c = gpt_model_config(m);
    gpt_error err = {0};
    *out = malloc((size_t)T * c->vocab_size * sizeof **out);
    int rc = gpt_forward_logits(m, tok, 1, T, *out, &err);
    if (rc) printf("     forward: %s\n", err.msg);
    return rc;
}

static const char *tmpdir(void) {
    static char dir[256];
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/gpt_test_hf.%ld", t && *t ? t : "/tmp", (long)getpid());
        mkdir(dir, 0777);
    }
    return dir;
}

static void rm_tree(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("     could not remove %s\n", dir);
}

static void test_round_trip(void) {
    /* A config with F != 4C, an unpadded V and an odd layer count. */
    gpt_config cfg = {0};
    cfg.vocab_size = 333;
    cfg.max_seq_len = 40;
    cfg.n_layer = 3;
    cfg.n_head = 3;
    cfg.n_embd = 48;
    cfg.mlp_hidden = 100;
    cfg.ln_eps = 1e-6f;
    gpt_model *m = NULL, *m2 = NULL, *m3 = NULL;
    gpt_error err = {0};
    char ckpt[300], hfdir[300], hfdir2[300];
    snprintf(ckpt, sizeof ckpt, "%s/model.ckpt", tmpdir());
    snprintf(hfdir, sizeof hfdir, "%s/hf", tmpdir());
    snprintf(hfdir2, sizeof hfdir2, "%s/hf2", tmpdir());
    int tok[17];
    for (int i = 0; i < 17; i++)
        tok[i] = (i * 37 + 5) % 333;
    float *l1 = NULL, *l2 = NULL, *l3 = NULL;

    test_begin("round trip: checkpoint -> gpt_model_save_hf -> gpt_hf_load gives identical logits");
    int rc = gpt_model_create(&m, &cfg, &RT, 42, &err);
    if (!rc) rc = gpt_checkpoint_save(m, ckpt, 0, NULL, &err);
    if (!rc) rc = gpt_model_load(&m2, ckpt, &RT, &err);
    if (!rc) rc = gpt_model_save_hf(m2, hfdir, &err);
    if (!rc) rc = gpt_model_load(&m3, hfdir, &RT, &err); /* through gpt_model_load's dispatch */
    EXPECT(rc == 0, "%s", err.msg);
    if (!rc && !logits_of(m, tok, 17, &l1) && !logits_of(m3, tok, 17, &l3)) {
        EXPECT(!memcmp(l1, l3, (size_t)17 * 333 * sizeof *l1), "logits differ");
        const gpt_config *c3 = gpt_model_config(m3);
        EXPECT(c3->vocab_size == 333 && c3->mlp_hidden == 100 && c3->n_layer == 3 &&
                   c3->max_seq_len == 40 && c3->ln_eps == 1e-6f,
               "config changed on the way");
    }
    test_end();

    test_begin("round trip: every parameter tensor is bit-identical");
    int bad = 0;
    for (int i = 0; m && m3 && i < gpt_model_num_tensors(m); i++) {
        const gpt_tensor_info *t = gpt_model_tensor(m, i);
        float *a = malloc(t->numel * sizeof *a), *b = malloc(t->numel * sizeof *b);
        int j = -1;
        for (int k = 0; k < gpt_model_num_tensors(m3); k++)
            if (!strcmp(gpt_model_tensor(m3, k)->name, t->name)) j = k;
        if (j < 0 || gpt_model_get_tensor(m, i, a, &err) || gpt_model_get_tensor(m3, j, b, &err) ||
            memcmp(a, b, t->numel * sizeof *a)) {
            bad++;
            printf("     %s differs\n", t->name);
        }
        free(a);
        free(b);
    }
    EXPECT(m && m3 && bad == 0, "%d tensors differ", bad);
    test_end();

    test_begin("saving the loaded HF model again gives identical files");
    if (m3 && !gpt_model_save_hf(m3, hfdir2, &err)) {
        char *a, *b;
        size_t na, nb;
        char pa[400], pb[400];
        snprintf(pa, sizeof pa, "%s/model.safetensors", hfdir);
        snprintf(pb, sizeof pb, "%s/model.safetensors", hfdir2);
        if (!gpt_read_file(pa, 0, &a, &na, &err) && !gpt_read_file(pb, 0, &b, &nb, &err)) {
            EXPECT(na == nb && !memcmp(a, b, na), "model.safetensors differs");
            free(a);
            free(b);
        }
    } else {
        EXPECT(0, "%s", err.msg);
    }
    test_end();

    /* That transformers loads what gpt_model_save_hf writes is checked by
     * tests/ref/check_convert.sh where torch and transformers are installed
     * (not on CI); see docs/RELIABILITY.md for the last run. */
    free(l1);
    free(l2);
    free(l3);
    gpt_model_free(m);
    gpt_model_free(m2);
    gpt_model_free(m3);

    test_begin("gpt_model_save_hf refuses a path that is a file or has no parent");
    memset(&err, 0, sizeof err);
    gpt_model *t = NULL;
    rc = gpt_model_create(&t, &cfg, &RT, 1, &err);
    if (!rc) {
        EXPECT(gpt_model_save_hf(t, ckpt, &err) != 0 && err.msg[0], "a file path was accepted");
        char deep[400];
        snprintf(deep, sizeof deep, "%s/no/such/dir", tmpdir());
        EXPECT(gpt_model_save_hf(t, deep, &err) == GPT_ERR_INVALID, "a missing parent was accepted");
    }
    gpt_model_free(t);
    test_end();
    rm_tree(tmpdir());
}

int main(void) {
    if (!load_fixture()) {
        test_begin("fixture " FIX);
        EXPECT(0, "cannot read the fixture (run from the repository root)");
        return test_summary();
    }
    test_malformed_safetensors();
    test_malformed_config();
    test_read_layout();
    test_model_logits();
    test_round_trip();
    json_free(ref);
    free(ref_logits);
    free(st_img);
    free(cfg_txt);
    return test_summary();
}
