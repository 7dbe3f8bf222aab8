/*
 * test_quant.c - int8 models end to end, on a small byte-level GPT trained
 * in PyTorch (tests/data/quant_model.bin, tests/ref/make_quant_model.py):
 *
 *  - the fp32 model reproduces PyTorch's held-out loss (weights loaded as
 *    trained);
 *  - the int8 model's logits stay within a bound derived from the
 *    quantisation step, and its greedy choices agree with fp32's on a
 *    fixed prompt set, teacher-forced and free-running (minimums below);
 *  - KV-cache decoding of the int8 model agrees with its full forward;
 *  - int8 checkpoints: save -> load gives the same logits bit for bit and
 *    the same file again; quantising back gives the dequantised weights;
 *    an int8 model refuses to train;
 *  - damaged int8 checkpoints are refused with a message naming the fault,
 *    field by field (with the checksum fixed up, so that the field checks,
 *    not the checksum, must catch it), and before allocating for a size
 *    the file cannot hold.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "gpt.h"
#include "test.h"
#include "util.h"

static gpt_runtime cpu_rt(void) {
    gpt_runtime rt = {0};
    rt.device = "cpu";
    rt.precision = GPT_PREC_FP32;
    return rt;
}

/* The fixture's model in fp32, or NULL. */
static gpt_model *load_fixture_model(const fixture *fx, gpt_error *err) {
    gpt_config c = {(int)fixture_cfg(fx, "V", 0), (int)fixture_cfg(fx, "Vp", 0),
                    (int)fixture_cfg(fx, "maxT", 0), (int)fixture_cfg(fx, "L", 0),
                    (int)fixture_cfg(fx, "NH", 0), (int)fixture_cfg(fx, "C", 0),
                    (int)fixture_cfg(fx, "F", 0), 1e-5f};
    gpt_runtime rt = cpu_rt();
    gpt_model *m;
    if (gpt_model_create(&m, &c, &rt, 1, err)) return NULL;
    for (int i = 0; i < gpt_model_num_tensors(m); i++) {
        const gpt_tensor_info *t = gpt_model_tensor(m, i);
        size_t n;
        const float *v = fixture_get(fx, t->name, &n);
        if (!v || n != t->numel || gpt_model_set_tensor(m, i, v, err)) {
            gpt_fail(err, GPT_ERR_INVALID, "fixture tensor %s missing or wrong", t->name);
            gpt_model_free(m);
            return NULL;
        }
    }
    return m;
}

/* Logits (n, V) of the fixture's prompts (P rows of S ids) with a full forward pass. */
static float *prompt_logits(gpt_model *m, const int *prompts, int P, int S, gpt_error *err) {
    int V = gpt_model_config(m)->vocab_size;
    float *l = malloc((size_t)P * S * V * sizeof(float));
    if (l && gpt_forward_logits(m, prompts, P, S, l, err)) {
        free(l);
        return NULL;
    }
    return l;
}

static int argmax(const float *x, int V) {
    int best = 0;
    for (int j = 1; j < V; j++)
        if (x[j] > x[best]) best = j;
    return best;
}

/* Greedy continuations (P, n) of each prompt, decoded one row at a time. */
static int greedy(gpt_model *m, const int *prompts, int P, int S, int n, int *out, gpt_error *err) {
    for (int p = 0; p < P; p++) {
        const int *row = prompts + (size_t)p * S;
        int first, rc;
        if ((rc = gpt_kv_begin(m, 1, S + n, err)) || (rc = gpt_kv_prefill_greedy(m, &row, &S, &first, err)))
            return rc;
        out[(size_t)p * n] = first;
        if (n > 1 && (rc = gpt_kv_decode_greedy(m, &first, n - 1, out + (size_t)p * n + 1, err)))
            return rc;
    }
    return GPT_OK;
}

/* Top-2 margin of a row of logits: how far the greedy choice leads. */
static double margin(const float *x, int V) {
    int best = argmax(x, V);
    double second = -INFINITY;
    for (int j = 0; j < V; j++)
        if (j != best) second = fmax(second, x[j]);
    return x[best] - second;
}

/* Logits (P, S + n - 1, V) of each prompt followed by the first n - 1
 * tokens of its continuation: row S - 1 + k predicts continuation token k. */
static float *continued_logits(gpt_model *m, const int *prompts, int P, int S, const int *cont,
                               int n, gpt_error *err) {
    int T = S + n - 1, *seq = malloc((size_t)P * T * sizeof(int));
    for (int p = 0; p < P; p++) {
        memcpy(seq + (size_t)p * T, prompts + (size_t)p * S, (size_t)S * sizeof(int));
        memcpy(seq + (size_t)p * T + S, cont + (size_t)p * n, (size_t)(n - 1) * sizeof(int));
    }
    float *l = prompt_logits(m, seq, P, T, err);
    free(seq);
    return l;
}

/* The quality of the int8 model against fp32 on the fixture's prompts.
 *
 * Logits. A product whose two operands are rounded to blocks of 32 with
 * scale d = max|v| / 127 has rounding errors uniform in +-d/2, so each
 * operand carries a relative RMS error of (max|v| / rms v) / (127 sqrt 12):
 * 0.6% for Gaussian-like blocks (max/rms ~2.5), up to ~1.1% for the
 * heavier tails of activations (~5); the product's output, both together,
 * 0.8-1.6%. The logits see the head's product and, through the residual
 * stream (layernorms rescale it, so relative errors pass with gain ~1),
 * the 4L layers' products: 9 independent errors of <= 1% add in quadrature
 * to ~3%. We bound the relative RMS error of the logits (each row centred:
 * a common shift does not change a softmax) by 3%. A wrong scale, a lost
 * block or a misplaced row gives errors of tens of percent.
 *
 * Greedy agreement. Int8 can change the greedy choice only where fp32's
 * top-2 margin is within reach of the error of a difference of two
 * logits: at 1% of the logits' spread (sigma ~5 nats here) that is
 * ~0.07 nats, and 5-10% of this fixture's positions have margins that
 * small (printed below). A flip needs the error to beat the margin, about
 * half of such positions or fewer, so we require >= 97% agreement, and
 * every flip at a margin below TAU = 0.25 nats (3.5x that typical error:
 * a confident position that flips means an error far beyond the bound).
 * Free-running, both greedy continuations must then agree up to their
 * first divergence, and diverge only at a step whose fp32 margin < TAU. */
#define TAU 0.25

static void test_quality(gpt_model *fp, gpt_model *q8, const int *prompts, int P, int S) {
    const int V = gpt_model_config(fp)->vocab_size, n = gpt_model_config(fp)->max_seq_len - S;
    gpt_error err = {0};
    float *lf = prompt_logits(fp, prompts, P, S, &err), *lq = prompt_logits(q8, prompts, P, S, &err);
    test_begin("int8 logits within 3%% (relative RMS) of fp32 on %d prompts x %d positions", P, S);
    EXPECT(lf && lq, "%s", err.msg);
    size_t rows = (size_t)P * S;
    double num = 0, den = 0;
    int agree = 0, near = 0, confident_flips = 0;
    for (size_t r = 0; lf && lq && r < rows; r++) {
        const float *a = lf + r * V, *b = lq + r * V;
        double ma = 0, md = 0;
        for (int j = 0; j < V; j++) ma += a[j], md += b[j] - a[j];
        ma /= V, md /= V;
        for (int j = 0; j < V; j++) {
            double e = (b[j] - a[j]) - md, c = a[j] - ma;
            num += e * e, den += c * c;
        }
        int same = argmax(a, V) == argmax(b, V);
        agree += same;
        near += margin(a, V) < 0.07;
        confident_flips += !same && margin(a, V) >= TAU;
    }
    double rel = sqrt(num / den);
    EXPECT(rel <= 0.03, "relative RMS error %.4f", rel);
    printf("     relative RMS error %.4f; logits' spread %.2f nats; int8 kernel %s\n", rel,
           sqrt(den / rows / V), gpt_model_quant_kernel(q8));
    test_end();

    test_begin("greedy choice (teacher-forced) agrees on >= 97%% of positions, flips only where "
               "fp32's margin < %.2f", TAU);
    EXPECT(agree >= 0.97 * rows, "%d of %zu agree", agree, rows);
    EXPECT(confident_flips == 0, "%d positions with margins >= %.2f flipped", confident_flips, TAU);
    printf("     %d of %zu agree; %d positions have fp32 margins below 0.07 nats\n", agree, rows, near);
    test_end();

    test_begin("greedy continuations (%d tokens, KV cache) agree up to a step fp32 was unsure of", n);
    int *gf = malloc((size_t)P * n * sizeof(int)), *gq = malloc((size_t)P * n * sizeof(int));
    EXPECT(greedy(fp, prompts, P, S, n, gf, &err) == 0 && greedy(q8, prompts, P, S, n, gq, &err) == 0,
           "%s", err.msg);
    float *cf = continued_logits(fp, prompts, P, S, gf, n, &err);
    EXPECT(cf != NULL, "%s", err.msg);
    int identical = 0, same_tokens = 0;
    for (int p = 0; cf && p < P; p++) {
        int d = 0;
        while (d < n && gf[p * n + d] == gq[p * n + d]) d++;
        identical += d == n;
        same_tokens += d;
        if (d < n) {
            double mg = margin(cf + ((size_t)p * (S + n - 1) + S - 1 + d) * V, V);
            EXPECT(mg < TAU, "prompt %d diverges at step %d where fp32's margin is %.3f", p, d, mg);
        }
    }
    printf("     %d of %d continuations identical; %d of %d tokens before the first divergence\n",
           identical, P, same_tokens, P * n);
    test_end();

    /* The decoding path (one row a step, int8 products of one activation
     * row) against the full forward of the same model: the two differ only
     * by fp32 rounding in attention (~1e-5 nats), so every step whose
     * margin is above 1e-3 must pick the same token. */
    test_begin("int8 KV-cache decoding picks what the int8 full forward picks");
    float *cq = continued_logits(q8, prompts, P, S, gq, n, &err);
    EXPECT(cq != NULL, "%s", err.msg);
    int bad = 0;
    for (int p = 0; cq && p < P; p++)
        for (int k = 0; k < n; k++) {
            const float *row = cq + ((size_t)p * (S + n - 1) + S - 1 + k) * V;
            if (margin(row, V) > 1e-3 && argmax(row, V) != gq[p * n + k]) bad++;
        }
    EXPECT(bad == 0, "%d steps differ", bad);
    test_end();
    free(lf), free(lq), free(gf), free(gq), free(cf), free(cq);
}

/* ----------------------------------------------------- int8 checkpoints */

static int write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(p, 1, n, f);
    return fclose(f) || w != n ? -1 : 0;
}

static int same_logits(gpt_model *a, gpt_model *b, const int *prompts, int P, int S) {
    gpt_error err;
    int V = gpt_model_config(a)->vocab_size;
    float *x = prompt_logits(a, prompts, P, S, &err), *y = prompt_logits(b, prompts, P, S, &err);
    int same = x && y && !memcmp(x, y, (size_t)P * S * V * sizeof(float));
    free(x), free(y);
    return same;
}

static void test_roundtrip(gpt_model *fp, gpt_model *q8, const int *prompts, int P, int S,
                           const char *dir) {
    char p_fp[300], p_q8[300], p_q8b[300];
    snprintf(p_fp, sizeof p_fp, "%s/fp32.ckpt", dir);
    snprintf(p_q8, sizeof p_q8, "%s/int8.ckpt", dir);
    snprintf(p_q8b, sizeof p_q8b, "%s/int8-again.ckpt", dir);
    gpt_error err = {0};
    gpt_runtime rt = cpu_rt();

    test_begin("int8 checkpoint: save -> load gives the same logits bit for bit, and the same file");
    EXPECT(gpt_checkpoint_save(fp, p_fp, 0, NULL, &err) == 0, "%s", err.msg);
    EXPECT(gpt_checkpoint_save(q8, p_q8, 0, NULL, &err) == 0, "%s", err.msg);
    gpt_model *back = NULL;
    EXPECT(gpt_model_load(&back, p_q8, &rt, &err) == 0, "%s", err.msg);
    if (back) {
        EXPECT(!strcmp(gpt_model_quant(back), "int8"), "loaded as %s", gpt_model_quant(back));
        EXPECT(same_logits(q8, back, prompts, P, S), "logits differ");
        EXPECT(gpt_checkpoint_save(back, p_q8b, 0, NULL, &err) == 0, "%s", err.msg);
        char *x = NULL, *y = NULL;
        size_t nx = 0, ny = 0;
        gpt_read_file(p_q8, 0, &x, &nx, &err);
        gpt_read_file(p_q8b, 0, &y, &ny, &err);
        EXPECT(x && y && nx == ny && !memcmp(x, y, nx), "the second save differs");
        free(x), free(y);
    }
    test_end();

    test_begin("int8 checkpoint is under 40%% of the fp32 one (8.5 bits a weight, rows padded 80 -> 96)");
    char *x = NULL, *y = NULL;
    size_t nf = 0, nq = 0;
    gpt_read_file(p_fp, 0, &x, &nf, &err);
    gpt_read_file(p_q8, 0, &y, &nq, &err);
    EXPECT(nq > 0 && nq < 0.4 * nf, "%zu bytes against %zu", nq, nf);
    free(x), free(y);
    test_end();

    test_begin("quantising back to fp32 gives exactly the dequantised weights");
    EXPECT(back && gpt_model_quantize(back, GPT_QUANT_NONE, &err) == 0, "%s", err.msg);
    int same = back != NULL;
    for (int i = 0; same && i < gpt_model_num_tensors(q8); i++) {
        size_t n = gpt_model_tensor(q8, i)->numel;
        float *a = malloc(n * 4), *b = malloc(n * 4);
        same = !gpt_model_get_tensor(q8, i, a, &err) && !gpt_model_get_tensor(back, i, b, &err) &&
               !memcmp(a, b, n * 4);
        free(a), free(b);
    }
    EXPECT(same, "a tensor differs");
    EXPECT(back && !strcmp(gpt_model_quant(back), "none"), "still quantised");
    test_end();
    gpt_model_free(back);

    test_begin("an int8 model refuses to train");
    gpt_train_opts o;
    gpt_train_opts_default(&o);
    o.batch_size = 2, o.seq_len = 8;
    gpt_error e = {0};
    EXPECT(gpt_train_init(q8, &o, &e) == GPT_ERR_INVALID && strstr(e.msg, "inference"), "%s", e.msg);
    test_end();
}

/* Offsets in an int8 checkpoint (ckpt.c's layout), found by walking it. */
typedef struct {
    size_t version, flags, dtype[64], data[64];
    int n;
} ckpt_map;

static uint64_t le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static void map_ckpt(const unsigned char *f, gpt_model *m, ckpt_map *mp) {
    mp->version = 8, mp->flags = 12;
    size_t at = 64; /* magic, version, flags, config (32), steps (16) */
    at += 2 + le(f + at, 2); /* tokenizer name */
    mp->n = (int)le(f + at, 4);
    at += 4;
    for (int i = 0; i < mp->n; i++) {
        at += 2 + le(f + at, 2) + 4 + 24;
        mp->dtype[i] = at;
        at += 4;
    }
    for (int i = 0; i < mp->n; i++) {
        const gpt_tensor_info *t = gpt_model_tensor(m, i);
        mp->data[i] = at;
        at += le(f + mp->dtype[i], 4) ? ((size_t)t->shape[1] + 31) / 32 * 32 * t->shape[0] +
                                            ((size_t)t->shape[1] + 31) / 32 * 2 * t->shape[0]
                                      : t->numel * 4;
    }
}

static int tensor_index(gpt_model *m, const char *name) {
    for (int i = 0; i < gpt_model_num_tensors(m); i++)
        if (!strcmp(gpt_model_tensor(m, i)->name, name)) return i;
    return -1;
}

/* A damaged int8 checkpoint must be refused with a message. Most damage
 * is made with the checksum recomputed, so that the field checks must
 * catch it (the checksum would catch any of it otherwise). */
static void test_damaged(const char *dir) {
    /* V = 97 < Vp = 128 (padded rows), C = 40 (rows padded to 64 quants) */
    gpt_config c = {97, 0, 16, 1, 2, 40, 0, 0};
    gpt_runtime rt = cpu_rt();
    gpt_error err = {0};
    gpt_model *m = NULL;
    char good_path[300], bad_path[300];
    snprintf(good_path, sizeof good_path, "%s/small-int8.ckpt", dir);
    snprintf(bad_path, sizeof bad_path, "%s/damaged.ckpt", dir);
    if (gpt_model_create(&m, &c, &rt, 5, &err) || gpt_model_quantize(m, GPT_QUANT_INT8, &err) ||
        gpt_checkpoint_save(m, good_path, 0, NULL, &err)) {
        test_begin("damaged int8 checkpoints");
        EXPECT(0, "%s", err.msg);
        test_end();
        gpt_model_free(m);
        return;
    }
    unsigned char *good;
    size_t len;
    gpt_read_file(good_path, 0, (char **)&good, &len, &err);
    ckpt_map mp;
    map_ckpt(good, m, &mp);
    int qkv = tensor_index(m, "h.0.attn.qkv.w"), fc = tensor_index(m, "h.0.mlp.fc.w");
    int proj = tensor_index(m, "h.0.attn.proj.w"), lnf = tensor_index(m, "lnf.w");
    int wte = tensor_index(m, "wte");
    size_t K = 64, qkv_scales = mp.data[qkv] + 120 * K, wte_scales = mp.data[wte] + 128 * K;
    struct {
        const char *what;
        size_t at;       /* byte to set */
        unsigned v, n;   /* to the n-byte little-endian value v */
        int fix_crc;     /* recompute the checksum */
        long cut;        /* > 0: truncate to len - cut; < 0: append -cut bytes */
        const char *in;  /* expected in the message */
    } bad[] = {
        {"int8 flag in a version 1 file", mp.version, 1, 4, 1, 0, "version 2"},
        {"int8 with optimizer state", mp.flags, 8 | 1, 4, 1, 0, "inference only"},
        {"int8 with trainer state", mp.flags, 8 | 2, 4, 1, 0, "inference only"},
        {"a quantised matrix stored as fp32", mp.dtype[qkv], 0, 4, 1, 0, "dtype"},
        {"a layernorm stored as int8", mp.dtype[lnf], 1, 4, 1, 0, "dtype"},
        {"an unknown dtype", mp.dtype[fc], 7, 4, 1, 0, "dtype"},
        {"a quant of -128", mp.data[fc] + 3 * K + 5, 0x80, 1, 1, 0, "[-127, 127]"},
        {"a non-zero padding quant", mp.data[qkv] + 7 * K + 50, 3, 1, 1, 0, "padding"},
        {"an infinite scale", mp.data[proj] + 40 * K + 2, 0x7C00, 2, 1, 0, "scale"},
        {"a NaN scale", qkv_scales + 10, 0x7E01, 2, 1, 0, "scale"},
        {"a negative scale", qkv_scales + 4, 0x8001, 2, 1, 0, "scale"},
        {"a quant in a padded row of wte", mp.data[wte] + 100 * K + 1, 1, 1, 1, 0, "padded rows"},
        {"a scale in a padded row of wte", wte_scales + 120 * 4, 0x3C00, 2, 1, 0, "padded rows"},
        {"a flipped scale bit (checksum not fixed)", qkv_scales, 0, 0, 0, 0, "checksum"},
        {"truncated int8 data", 0, 0, 0, 0, 100, "truncated"},
        {"trailing bytes", 0, 0, 0, 0, -8, "trailing"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        test_begin("damaged int8 checkpoint refused: %s", bad[i].what);
        size_t n = bad[i].cut > 0 ? len - (size_t)bad[i].cut : len + (size_t)(bad[i].cut < 0 ? -bad[i].cut : 0);
        unsigned char *copy = calloc(n + 8, 1);
        memcpy(copy, good, n < len ? n : len);
        if (bad[i].n)
            for (unsigned k = 0; k < bad[i].n; k++) copy[bad[i].at + k] = (unsigned char)(bad[i].v >> (8 * k));
        else if (!bad[i].cut)
            copy[bad[i].at] ^= 1;
        if (bad[i].fix_crc) {
            uint32_t crc = gpt_crc32(0, copy, len - 12);
            for (int k = 0; k < 4; k++) copy[len - 12 + k] = (unsigned char)(crc >> (8 * k));
        }
        write_bytes(bad_path, copy, n);
        gpt_model *d = NULL;
        gpt_error e = {0};
        int rc = gpt_model_load(&d, bad_path, &rt, &e);
        EXPECT(rc == GPT_ERR_INVALID && !d, "rc %d", rc);
        EXPECT(strstr(e.msg, bad[i].in) != NULL, "message '%s' should mention '%s'", e.msg, bad[i].in);
        gpt_model_free(d);
        free(copy);
        test_end();
    }
    test_begin("the undamaged file loads (the damage table starts from a good file)");
    gpt_model *ok = NULL;
    EXPECT(gpt_model_load(&ok, good_path, &rt, &err) == 0, "%s", err.msg);
    gpt_model_free(ok);
    test_end();
    free(good);
    gpt_model_free(m);
    remove(good_path);
    remove(bad_path);
}

int main(void) {
    fixture fx;
    gpt_error err = {0};
    if (fixture_load(&fx, "tests/data/quant_model.bin", &err)) {
        printf("FAIL fixture: %s\n0 passed, 1 failed\n", err.msg);
        return 1;
    }
    gpt_model *fp = load_fixture_model(&fx, &err), *q8 = load_fixture_model(&fx, &err);
    if (!fp || !q8) {
        printf("FAIL model: %s\n0 passed, 1 failed\n", err.msg);
        return 1;
    }
    char dir[] = "/tmp/gpt_test_quant_XXXXXX";
    if (!mkdtemp(dir)) {
        printf("FAIL mkdtemp\n0 passed, 1 failed\n");
        return 1;
    }

    test_begin("the fp32 model reproduces PyTorch's held-out loss (weights loaded as trained)");
    size_t ne;
    const float *ev = fixture_get(&fx, "eval_tokens", &ne);
    int *etok = malloc(ne * sizeof(int));
    for (size_t i = 0; i < ne; i++) etok[i] = (int)ev[i];
    double loss = 0, ref = fixture_cfg(&fx, "eval_loss", 0);
    EXPECT(gpt_eval_loss(fp, etok, 8, (int)(ne / 8) - 1, &loss, &err) == 0, "%s", err.msg);
    /* fp32 against PyTorch's fp32: summation orders differ (~1e-6 relative) */
    EXPECT(fabs(loss - ref) <= 1e-4 * ref, "loss %.6f, PyTorch %.6f", loss, ref);
    test_end();

    test_begin("quantise to int8: the layers' matrices and the head");
    EXPECT(gpt_model_quantize(q8, GPT_QUANT_INT8, &err) == 0, "%s", err.msg);
    EXPECT(!strcmp(gpt_model_quant(q8), "int8") && !strcmp(gpt_model_quant(fp), "none"), "%s",
           gpt_model_quant(q8));
    double qloss = 0;
    EXPECT(gpt_eval_loss(q8, etok, 8, (int)(ne / 8) - 1, &qloss, &err) == 0, "%s", err.msg);
    printf("     held-out loss: fp32 %.5f, int8 %.5f nats/byte\n", loss, qloss);
    test_end();

    size_t np;
    const float *pv = fixture_get(&fx, "prompts", &np);
    const int P = (int)fixture_cfg(&fx, "prompts", 16), S = (int)(np / (size_t)P);
    int *prompts = malloc(np * sizeof(int));
    for (size_t i = 0; i < np; i++) prompts[i] = (int)pv[i];
    test_quality(fp, q8, prompts, P, S);
    test_roundtrip(fp, q8, prompts, P, S, dir);
    test_damaged(dir);

    char p[300];
    const char *files[] = {"fp32.ckpt", "int8.ckpt", "int8-again.ckpt"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        remove(p);
    }
    rmdir(dir);
    free(etok);
    free(prompts);
    gpt_model_free(fp);
    gpt_model_free(q8);
    fixture_free(&fx);
    return test_summary();
}
