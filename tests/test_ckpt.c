/*
 * test_ckpt.c - checkpoints: save -> load is bitwise; training 2N steps
 * equals training N, saving, resuming and training N more, bit for bit;
 * damaged files are refused with a message; a failing save leaves the
 * previous checkpoint intact.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpt.h"
#include "test.h"
#include "util.h"

static const gpt_config CFG = {61, 0, 24, 2, 3, 24, 0, 0}; /* V=61 -> Vp=128, F=96 */
static const int B = 3, T = 11;

static gpt_runtime cpu_rt(void) {
    gpt_runtime rt = {0};
    rt.device = "cpu";
    return rt;
}

static gpt_train_opts opts(void) {
    gpt_train_opts o;
    gpt_train_opts_default(&o);
    o.batch_size = B;
    o.seq_len = T;
    o.grad_accum = 2;
    o.max_steps = 20;
    o.warmup_steps = 3;
    o.lr = 3e-3f;
    o.min_lr = 3e-4f;
    return o;
}

/* The batch of step s, derived from s alone (as a data loader would). */
static void batch_for(int s, int *tok) {
    gpt_rng r;
    gpt_rng_seed(&r, 1000 + (uint64_t)s);
    for (int i = 0; i < 2 * B * (T + 1); i++) tok[i] = (int)gpt_rng_below(&r, (uint64_t)CFG.vocab_size);
}

static int train_steps(gpt_model *m, int from, int to, gpt_error *err) {
    int tok[2 * 3 * 12];
    for (int s = from; s < to; s++) {
        batch_for(s, tok);
        gpt_step_info info;
        int rc = gpt_train_step(m, tok, &info, err);
        if (rc) return rc;
    }
    return 0;
}

/* 1 if every parameter tensor of a and b is bitwise equal. */
static int same_params(gpt_model *a, gpt_model *b) {
    gpt_error err;
    for (int i = 0; i < gpt_model_num_tensors(a); i++) {
        size_t n = gpt_model_tensor(a, i)->numel;
        float *x = malloc(n * 4), *y = malloc(n * 4);
        gpt_model_get_tensor(a, i, x, &err);
        gpt_model_get_tensor(b, i, y, &err);
        int same = !memcmp(x, y, n * 4);
        free(x), free(y);
        if (!same) return 0;
    }
    return 1;
}

static int same_file(const char *a, const char *b) {
    char *x, *y;
    size_t nx, ny;
    gpt_error err;
    if (gpt_read_file(a, 0, &x, &nx, &err)) return 0;
    if (gpt_read_file(b, 0, &y, &ny, &err)) {
        free(x);
        return 0;
    }
    int same = nx == ny && !memcmp(x, y, nx);
    free(x), free(y);
    return same;
}

static void write_bytes(const char *path, const char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

int main(void) {
    char dir[] = "/tmp/gpt_test_ckpt_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char p_full[256], p_half[256], p_resumed[256], p_bad[256], p_save[256];
    snprintf(p_full, sizeof p_full, "%s/full.ckpt", dir);
    snprintf(p_half, sizeof p_half, "%s/half.ckpt", dir);
    snprintf(p_resumed, sizeof p_resumed, "%s/resumed.ckpt", dir);
    snprintf(p_bad, sizeof p_bad, "%s/bad.ckpt", dir);
    snprintf(p_save, sizeof p_save, "%s/save.ckpt", dir);
    gpt_error err = {0};
    gpt_runtime rt = cpu_rt();
    gpt_train_opts o = opts();
    gpt_train_state st = {0};
    st.has_train = 1;
    st.opts = o;
    st.rng[0] = 7, st.rng[3] = 9;
    st.tokens_seen = 1234;

    /* --- save -> load is bitwise ------------------------------------ */
    test_begin("save then load gives bitwise identical parameters and state");
    gpt_model *a = NULL, *b = NULL;
    EXPECT(gpt_model_create(&a, &CFG, &rt, 5, &err) == 0, "%s", err.msg);
    EXPECT(gpt_train_init(a, &o, &err) == 0, "%s", err.msg);
    EXPECT(train_steps(a, 0, 3, &err) == 0, "%s", err.msg);
    EXPECT(gpt_checkpoint_save(a, p_half, 1, &st, &err) == 0, "%s", err.msg);
    EXPECT(gpt_model_load(&b, p_half, &rt, &err) == 0, "%s", err.msg);
    EXPECT(b && same_params(a, b), "parameters differ after load");
    EXPECT(b && gpt_model_step(b) == 3, "step %d", b ? gpt_model_step(b) : -1);
    gpt_train_state st2;
    gpt_config cfg2;
    EXPECT(gpt_checkpoint_read_state(p_half, &cfg2, &st2, &err) == 0, "%s", err.msg);
    EXPECT(st2.has_train && st2.rng[0] == 7 && st2.rng[3] == 9 && st2.tokens_seen == 1234 &&
               st2.opts.grad_accum == 2 && st2.opts.lr == o.lr,
           "trainer state differs");
    EXPECT(cfg2.n_embd == 24 && cfg2.padded_vocab == 128 && cfg2.mlp_hidden == 96, "config differs");
    /* Saving the loaded, resumed model again gives the same bytes. */
    EXPECT(b && gpt_train_init(b, &o, &err) == 0 && gpt_train_resume(b, p_half, &err) == 0, "%s",
           err.msg);
    EXPECT(b && gpt_checkpoint_save(b, p_resumed, 1, &st, &err) == 0, "%s", err.msg);
    EXPECT(same_file(p_half, p_resumed), "re-saved checkpoint differs from the original");
    test_end();
    gpt_model_free(b);
    b = NULL;

    /* --- exact resume ------------------------------------------------ */
    test_begin("train 2N steps == train N, save, resume, train N (bitwise)");
    gpt_model *full = NULL, *half = NULL, *res = NULL;
    const int N = 4;
    EXPECT(gpt_model_create(&full, &CFG, &rt, 11, &err) == 0, "%s", err.msg);
    EXPECT(gpt_train_init(full, &o, &err) == 0, "%s", err.msg);
    EXPECT(train_steps(full, 0, 2 * N, &err) == 0, "%s", err.msg);
    EXPECT(gpt_model_create(&half, &CFG, &rt, 11, &err) == 0, "%s", err.msg);
    EXPECT(gpt_train_init(half, &o, &err) == 0, "%s", err.msg);
    EXPECT(train_steps(half, 0, N, &err) == 0, "%s", err.msg);
    EXPECT(gpt_checkpoint_save(half, p_half, 1, &st, &err) == 0, "%s", err.msg);
    gpt_model_free(half);
    EXPECT(gpt_model_load(&res, p_half, &rt, &err) == 0, "%s", err.msg);
    EXPECT(res && gpt_train_init(res, &o, &err) == 0, "%s", err.msg);
    EXPECT(res && gpt_train_resume(res, p_half, &err) == 0, "%s", err.msg);
    EXPECT(res && gpt_model_step(res) == N, "resumed at step %d", res ? gpt_model_step(res) : -1);
    EXPECT(res && train_steps(res, N, 2 * N, &err) == 0, "%s", err.msg);
    EXPECT(res && same_params(full, res), "resumed training diverged from uninterrupted training");
    EXPECT(gpt_checkpoint_save(full, p_full, 1, &st, &err) == 0 &&
               gpt_checkpoint_save(res, p_resumed, 1, &st, &err) == 0,
           "%s", err.msg);
    EXPECT(same_file(p_full, p_resumed), "checkpoints (with optimizer state) differ");
    test_end();
    gpt_model_free(res);

    /* Without the optimizer moments, training diverges: the test above can fail. */
    test_begin("resuming without the optimizer state is detectably different");
    gpt_model *nores = NULL;
    EXPECT(gpt_model_load(&nores, p_half, &rt, &err) == 0, "%s", err.msg);
    EXPECT(nores && gpt_train_init(nores, &o, &err) == 0, "%s", err.msg);
    EXPECT(nores && train_steps(nores, N, 2 * N, &err) == 0, "%s", err.msg);
    EXPECT(nores && !same_params(full, nores), "expected a difference");
    test_end();
    gpt_model_free(nores);

    /* --- damaged files ------------------------------------------------ */
    char *good;
    size_t glen;
    gpt_read_file(p_full, 0, &good, &glen, &err);
    struct {
        const char *what;
        size_t cut;     /* truncate to this length (0 = keep) */
        long flip;      /* xor a byte at this offset (-1 = none) */
        int x;          /* with this value */
        const char *in; /* expected in the message */
    } bad[] = {
        /* header: magic 0-7, version 8, flags 12, V 16, Vp 20, maxT 24,
         * L 28, NH 32, C 36, F 40, eps 44 */
        {"empty file", 1, -1, 0, "truncated"},
        {"truncated magic", 5, -1, 0, "truncated"},
        {"wrong magic", 0, 0, 1, "magic"},
        {"unsupported version", 0, 8, 1, "version"},
        {"unknown flags", 0, 13, 1, "flags"},
        {"heads not dividing channels", 0, 32, 4, "n_head"},
        {"negative layers", 0, 31, 0x80, "n_layer"},
        {"padded vocabulary below the vocabulary", 0, 20, 0x80, "padded_vocab"},
        {"truncated header", 60, -1, 0, "truncated"},
        {"truncated data", glen / 2, -1, 0, "truncated"},
        {"truncated trailer", glen - 3, -1, 0, "truncated"},
        {"flipped data byte", 0, (long)glen / 2, 1, "checksum"},
        {"bad end marker", 0, (long)glen - 1, 1, "end marker"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        test_begin("damaged checkpoint refused: %s", bad[i].what);
        char *copy = malloc(glen);
        memcpy(copy, good, glen);
        size_t len = bad[i].cut ? bad[i].cut - (bad[i].cut == 1) : glen;
        if (bad[i].flip >= 0) copy[bad[i].flip] ^= (char)bad[i].x;
        write_bytes(p_bad, copy, len);
        gpt_model *m = NULL;
        gpt_error e = {0};
        int rc = gpt_model_load(&m, p_bad, &rt, &e);
        EXPECT(rc == GPT_ERR_INVALID && !m, "rc %d", rc);
        EXPECT(strstr(e.msg, bad[i].in) != NULL, "message '%s' should mention '%s'", e.msg, bad[i].in);
        gpt_model_free(m);
        free(copy);
        test_end();
    }
    test_begin("missing checkpoint and a directory are refused");
    gpt_model *m = NULL;
    EXPECT(gpt_model_load(&m, "/nonexistent/x.ckpt", &rt, &err) == GPT_ERR_INVALID && !m, "missing");
    EXPECT(gpt_model_load(&m, dir, &rt, &err) == GPT_ERR_INVALID && !m, "directory");
    EXPECT(strstr(err.msg, "directory") != NULL, "message: %s", err.msg);
    test_end();

    /* --- a failing save keeps the old file ------------------------------ */
    test_begin("a save that fails part-way (disk full) leaves the previous checkpoint intact");
    EXPECT(gpt_checkpoint_save(a, p_save, 1, &st, &err) == 0, "%s", err.msg);
    char *before;
    size_t blen;
    gpt_read_file(p_save, 0, &before, &blen, &err);
    train_steps(a, 3, 4, &err);
    gpt_test_fail_write_after = 1000; /* the write fails after 1000 bytes */
    gpt_error e = {0};
    int rc = gpt_checkpoint_save(a, p_save, 1, &st, &e);
    gpt_test_fail_write_after = -1;
    EXPECT(rc == GPT_ERR_IO, "rc %d", rc);
    EXPECT(strstr(e.msg, "space") != NULL, "message: %s", e.msg);
    char *after;
    size_t alen;
    gpt_read_file(p_save, 0, &after, &alen, &err);
    EXPECT(alen == blen && !memcmp(before, after, blen), "the previous checkpoint changed");
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", p_save, (long)getpid());
    EXPECT(access(tmp, F_OK) != 0, "temporary file left behind");
    gpt_model *chk = NULL;
    EXPECT(gpt_model_load(&chk, p_save, &rt, &err) == 0, "previous checkpoint no longer loads: %s",
           err.msg);
    gpt_model_free(chk);
    free(before), free(after);
    test_end();

    gpt_model_free(a);
    gpt_model_free(full);
    free(good);
    unlink(p_full), unlink(p_half), unlink(p_resumed), unlink(p_bad), unlink(p_save);
    rmdir(dir);
    return test_summary();
}
