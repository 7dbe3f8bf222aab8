/*
 * test_bad_numbers.c - non-finite steps: a step whose loss is NaN (injected
 * with gpt_debug_inject_nan) is skipped and reported, leaves the parameters
 * and the AdamW moments bitwise untouched, and training goes on normally
 * after it; max_bad_steps consecutive skips stop training with
 * GPT_ERR_RUNTIME and a message, and the checkpoint saved then still loads
 * and resumes. A huge weight that makes the loss overflow naturally is
 * skipped the same way. A model whose optimizer state overflowed is not
 * saved over the last good checkpoint.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpt.h"
#include "model.h" /* white box: to put an overflowed moment in place */
#include "test.h"
#include "util.h"

static const gpt_config CFG = {37, 0, 16, 2, 2, 16, 0, 0};
enum { B = 2, T = 8 };

/* Offsets in a checkpoint (src/ckpt.c): the step counter, then the
 * optimizer step counter; the file ends with the CRC and an 8-byte marker. */
enum { OFF_STEP = 48, OFF_OPT_STEP = 56, TRAILER = 12 };

static gpt_train_opts opts(int max_bad) {
    gpt_train_opts o;
    gpt_train_opts_default(&o);
    o.batch_size = B;
    o.seq_len = T;
    o.max_steps = 100;
    o.lr = 1e-2f;
    o.min_lr = 1e-2f;
    o.max_bad_steps = max_bad;
    return o;
}

/* One fixed batch: training on it again and again must lower its loss. */
static void fixed_batch(int *tok) {
    gpt_rng r;
    gpt_rng_seed(&r, 42);
    for (int i = 0; i < B * (T + 1); i++) tok[i] = (int)gpt_rng_below(&r, (uint64_t)CFG.vocab_size);
}

/* All parameters, concatenated (malloc'd). */
static float *snapshot(gpt_model *m, size_t *n_out) {
    size_t n = 0;
    for (int i = 0; i < gpt_model_num_tensors(m); i++) n += gpt_model_tensor(m, i)->numel;
    float *all = malloc(n * sizeof *all), *p = all;
    gpt_error err;
    for (int i = 0; i < gpt_model_num_tensors(m); i++) {
        gpt_model_get_tensor(m, i, p, &err);
        p += gpt_model_tensor(m, i)->numel;
    }
    *n_out = n;
    return all;
}

static char *slurp(const char *path, size_t *n) {
    char *d = NULL;
    gpt_error err;
    if (gpt_read_file(path, 0, &d, n, &err)) *n = 0;
    return d;
}

/* 1 if two checkpoints differ at most in the step counter and the CRC:
 * configuration, optimizer step, parameters and both moments equal. */
static int same_but_step(const char *a, const char *b) {
    size_t na, nb;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    int same = x && y && na == nb && na > OFF_OPT_STEP + TRAILER &&
               !memcmp(x, y, OFF_STEP) &&
               !memcmp(x + OFF_OPT_STEP, y + OFF_OPT_STEP, na - OFF_OPT_STEP - TRAILER) &&
               !memcmp(x + na - 8, y + nb - 8, 8);
    free(x), free(y);
    return same;
}

static int64_t file_i64(const char *path, size_t off) {
    size_t n;
    char *x = slurp(path, &n);
    int64_t v = -1;
    if (x && n >= off + 8) {
        uint64_t u = 0;
        for (int i = 7; i >= 0; i--) u = (u << 8) | (unsigned char)x[off + (size_t)i];
        v = (int64_t)u;
    }
    free(x);
    return v;
}

int main(void) {
    char dir[] = "/tmp/gpt_test_bad_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char before[300], after[300], stopped[300];
    snprintf(before, sizeof before, "%s/before.ckpt", dir);
    snprintf(after, sizeof after, "%s/after.ckpt", dir);
    snprintf(stopped, sizeof stopped, "%s/stopped.ckpt", dir);
    gpt_runtime rt = {.device = "cpu", .precision = GPT_PREC_FP32};
    gpt_error err = {0};
    int tok[B * (T + 1)];
    fixed_batch(tok);
    gpt_model *m = NULL;
    gpt_train_opts o = opts(3);
    gpt_step_info info = {0};
    int rc = gpt_model_create(&m, &CFG, &rt, 3, &err);
    if (!rc) rc = gpt_train_init(m, &o, &err);
    for (int s = 0; !rc && s < 3; s++) rc = gpt_train_step(m, tok, &info, &err);
    if (rc) {
        printf("setup failed: %s\n", err.msg);
        return 1;
    }
    float loss_before = info.loss;

    test_begin("an injected NaN skips the step and reports it");
    size_t n;
    float *p0 = snapshot(m, &n);
    EXPECT(gpt_checkpoint_save(m, before, 1, NULL, &err) == 0, "%s", err.msg);
    gpt_debug_inject_nan(m);
    rc = gpt_train_step(m, tok, &info, &err);
    EXPECT(rc == 0, "rc %d: %s", rc, err.msg);
    EXPECT(info.skipped == 1 && info.bad_streak == 1, "skipped %d, streak %d", info.skipped,
           info.bad_streak);
    EXPECT(isnan(info.loss), "loss %g", info.loss);
    EXPECT(info.step == 4 && gpt_model_step(m) == 4, "step %d", info.step);
    test_end();

    test_begin("the skipped step leaves parameters bitwise untouched");
    size_t n1;
    float *p1 = snapshot(m, &n1);
    EXPECT(n1 == n && !memcmp(p0, p1, n * sizeof *p0), "parameters changed");
    free(p1);
    test_end();

    test_begin("the skipped step leaves the AdamW moments and optimizer step untouched");
    EXPECT(gpt_checkpoint_save(m, after, 1, NULL, &err) == 0, "%s", err.msg);
    EXPECT(same_but_step(before, after), "checkpoints differ beyond the step counter");
    EXPECT(file_i64(before, OFF_STEP) == 3 && file_i64(after, OFF_STEP) == 4,
           "step counters %lld %lld", (long long)file_i64(before, OFF_STEP),
           (long long)file_i64(after, OFF_STEP));
    EXPECT(file_i64(after, OFF_OPT_STEP) == 3, "optimizer step %lld",
           (long long)file_i64(after, OFF_OPT_STEP));
    test_end();

    test_begin("training continues normally after a skipped step");
    int ok = 1;
    for (int s = 0; s < 5 && ok; s++) {
        rc = gpt_train_step(m, tok, &info, &err);
        ok = rc == 0 && !info.skipped && info.bad_streak == 0 && isfinite(info.loss);
    }
    EXPECT(ok, "rc %d, skipped %d, loss %g: %s", rc, info.skipped, info.loss, err.msg);
    EXPECT(info.loss < loss_before, "loss %g did not go below %g", info.loss, loss_before);
    float *p2 = snapshot(m, &n1);
    EXPECT(memcmp(p0, p2, n * sizeof *p0) != 0, "parameters never changed");
    free(p2);
    test_end();

    test_begin("a good step resets the streak of bad ones");
    gpt_debug_inject_nan(m);
    rc = gpt_train_step(m, tok, &info, &err);
    EXPECT(rc == 0 && info.skipped && info.bad_streak == 1, "rc %d streak %d", rc, info.bad_streak);
    rc = gpt_train_step(m, tok, &info, &err);
    EXPECT(rc == 0 && !info.skipped && info.bad_streak == 0, "rc %d streak %d", rc, info.bad_streak);
    gpt_debug_inject_nan(m);
    rc = gpt_train_step(m, tok, &info, &err);
    EXPECT(rc == 0 && info.skipped && info.bad_streak == 1, "rc %d streak %d", rc, info.bad_streak);
    rc = gpt_train_step(m, tok, &info, &err);
    EXPECT(rc == 0 && !info.skipped, "rc %d", rc);
    test_end();

    test_begin("max_bad_steps consecutive bad steps stop with GPT_ERR_RUNTIME and a message");
    free(p0);
    p0 = snapshot(m, &n);
    EXPECT(gpt_checkpoint_save(m, before, 1, NULL, &err) == 0, "%s", err.msg);
    int rcs[3];
    for (int k = 0; k < 3; k++) {
        gpt_debug_inject_nan(m);
        memset(&err, 0, sizeof err);
        rcs[k] = gpt_train_step(m, tok, &info, &err);
    }
    EXPECT(rcs[0] == 0 && rcs[1] == 0, "the first two bad steps returned %d %d", rcs[0], rcs[1]);
    EXPECT(rcs[2] == GPT_ERR_RUNTIME, "the third returned %d", rcs[2]);
    EXPECT(info.skipped && info.bad_streak == 3, "streak %d", info.bad_streak);
    EXPECT(strstr(err.msg, "3 consecutive steps") && strstr(err.msg, "non-finite") &&
               strstr(err.msg, "--lr"),
           "message: %s", err.msg);
    p1 = snapshot(m, &n1);
    EXPECT(!memcmp(p0, p1, n * sizeof *p0), "parameters changed during the bad streak");
    free(p1);
    EXPECT(gpt_checkpoint_save(m, stopped, 1, NULL, &err) == 0, "%s", err.msg);
    EXPECT(same_but_step(before, stopped), "moments changed during the bad streak");
    test_end();

    test_begin("the checkpoint saved after the stop loads and resumes training");
    gpt_model *r = NULL;
    EXPECT(gpt_model_load(&r, stopped, &rt, &err) == 0, "%s", err.msg);
    if (r) {
        EXPECT(gpt_train_init(r, &o, &err) == 0 && gpt_train_resume(r, stopped, &err) == 0, "%s",
               err.msg);
        rc = gpt_train_step(r, tok, &info, &err);
        EXPECT(rc == 0 && !info.skipped && isfinite(info.loss), "rc %d loss %g: %s", rc, info.loss,
               err.msg);
        gpt_model_free(r);
    }
    test_end();

    test_begin("a weight so large the loss overflows is skipped like an injected NaN");
    /* wte at +-3e38 (near FLT_MAX): layernorm undoes the scale on the way
     * in, but the tied output head's dot products overflow to inf. */
    rc = gpt_train_step(m, tok, &info, &err); /* a good step ends the earlier streak */
    EXPECT(rc == 0 && !info.skipped, "rc %d: %s", rc, err.msg);
    const gpt_tensor_info *wte = gpt_model_tensor(m, 0);
    float *w = malloc(wte->numel * sizeof *w);
    gpt_model_get_tensor(m, 0, w, &err);
    for (size_t k = 0; k < wte->numel; k++) w[k] = w[k] ? copysignf(3e38f, w[k]) : 0;
    EXPECT(gpt_model_set_tensor(m, 0, w, &err) == 0, "%s", err.msg);
    free(p0);
    p0 = snapshot(m, &n);
    rc = gpt_train_step(m, tok, &info, &err);
    EXPECT(rc == 0 && info.skipped == 1, "rc %d skipped %d loss %g norm %g", rc, info.skipped,
           info.loss, info.grad_norm);
    EXPECT(!isfinite(info.loss) || !isfinite(info.grad_norm), "loss %g norm %g", info.loss,
           info.grad_norm);
    p1 = snapshot(m, &n1);
    EXPECT(!memcmp(p0, p1, n * sizeof *p0), "parameters changed");
    free(p1);
    free(w);
    test_end();

    test_begin("an overflowed moment is not saved: the last good checkpoint stays");
    {
        size_t n0, n2;
        char *good = slurp(stopped, &n0);
        /* What an update past 3.4e38 would leave in v (no clipping). */
        float inf = INFINITY;
        m->be->ops->upload(m->be, m->v + 5, &inf, 1, GPT_CLS_F32);
        memset(&err, 0, sizeof err);
        rc = gpt_checkpoint_save(m, stopped, 1, NULL, &err);
        EXPECT(rc == GPT_ERR_RUNTIME, "rc %d", rc);
        EXPECT(strstr(err.msg, "second AdamW moment") && strstr(err.msg, "previous checkpoint"),
               "message: %s", err.msg);
        char *now = slurp(stopped, &n2);
        EXPECT(good && now && n0 == n2 && !memcmp(good, now, n0), "the checkpoint changed");
        free(good), free(now);
    }
    test_end();

    free(p0);
    gpt_model_free(m);
    unlink(before), unlink(after), unlink(stopped);
    rmdir(dir);
    return test_summary();
}
