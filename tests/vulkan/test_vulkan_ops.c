/*
 * test_vulkan_ops.c - every backend operation on Vulkan against the CPU
 * backend (cases and tolerances: tests/gpu/ops_cases.h), on the odd
 * shapes (T=37, C=100, 5 heads of 20, V=1000 in Vp=1024, head sizes 21, 64
 * and 128, Tq > S), kept small so that lavapipe on two cores runs them in
 * CI. Configurations:
 *   vulkan-fp32        fp32 everywhere;
 *   vulkan-fp16        fp16 PARAM/ACT, fp32 math, the tiled products
 *                      (GPT_VULKAN_NO_COOP=1);
 *   vulkan-fp16-coop   the same with cooperative-matrix products where
 *                      the device has them, on VK_KHR_cooperative_matrix
 *                      wherever the device offers it (a failure otherwise):
 *                      skipped on devices without, unless
 *                      GPT_TEST_REQUIRE_COOP=1 makes that a failure
 *                      (bench/gpu_vulkan.sh sets it on the GPU machine);
 *   vulkan-fp16-coop-nv  the same on VK_NV_cooperative_matrix
 *                      (GPT_VULKAN_COOP=nv), the fallback for drivers
 *                      without KHR: skipped where NV is not offered;
 *   vulkan-fp16-coop-attn  vulkan-fp16-coop with the attention forward on
 *                      cooperative matrices too (GPT_VULKAN_COOP_ATTN=1;
 *                      the other configs set it to 0, so that the scalar
 *                      kernel is tested there whatever the default): head
 *                      sizes 16 to 64.
 * The ops are compared as backend.h defines them, so the fp16 backend
 * runs with loss scale 1 (GPT_VULKAN_LOSS_SCALE=1); t_loss_scale checks the
 * scaled path: the gradient ops at scale 1024 and AdamW's overflow rule.
 * With GPT_VULKAN_VALIDATE=1 the Khronos validation layer runs under every
 * case, and any message it prints fails the case (the backend turns it
 * into an error that sync returns).
 */
#include "../gpu/ops_cases.h"

/* fp16 loss scaling (vk_ops.c): crossentropy's gradient carries S, and the
 * GRAD-accumulating ops divide by S; AdamW quarters S on an overflow. */
static void t_loss_scale(void) {
    test_begin("%s: loss scale: gradients carry S = 1024, parameter gradients do not; an "
               "overflow skips and quarters S",
               K->name);
    setenv("GPT_VULKAN_LOSS_SCALE", "1024", 1);
    gpt_runtime rt = {0};
    rt.device = K->device;
    rt.precision = K->precision;
    gpt_backend *be = NULL;
    gpt_error e;
    int rc = gpt_backend_create(&be, &rt, &e);
    setenv("GPT_VULKAN_LOSS_SCALE", "1", 1);
    EXPECT(rc == 0, "create: %s", e.msg);
    gpt_shape s = {1, 8, 64, 1, 256, 100, 100, 1, 8, 1, 1000, 0, 0};
    if (!rc) EXPECT(be->ops->reserve(be, &s) == 0, "reserve: %s", be->err.msg);
    if (rc || test_case_failed_) {
        if (!rc) gpt_backend_destroy(be);
        test_end();
        return;
    }
    int N = 5, V = 100, C = 64;
    size_t n = (size_t)N * V;
    float *logits = rnd(n, 1.f, GPT_CLS_ACT), *w = rnd((size_t)V * C, 0.1f, GPT_CLS_PARAM);
    int tgt[5] = {1, 7, 99, 0, 42};
    void *dl = put(be, logits, n, GPT_CLS_ACT), *dt = put(be, tgt, 5, GPT_CLS_I32);
    void *loss = put(be, logits, (size_t)N, GPT_CLS_F32), *dw = put(be, w, (size_t)V * C, GPT_CLS_PARAM);
    void *cl = put(ref, logits, n, GPT_CLS_ACT), *ct = put(ref, tgt, 5, GPT_CLS_I32);
    void *closs = put(ref, logits, (size_t)N, GPT_CLS_F32);
    be->ops->crossentropy(be, loss, dl, dt, N, V, V, 0.5f, 1);
    ref->ops->crossentropy(ref, closs, cl, ct, N, V, V, 0.5f * 1024, 1);
    float *a = get(be, dl, n, GPT_CLS_ACT), *b = get(ref, cl, n, GPT_CLS_ACT);
    EXPECT(test_rel_l2(a, b, n) <= 2e-3, "dlogits at S = 1024: rel L2 %.3g", test_rel_l2(a, b, n));
    /* the weight gradient of a product whose incoming gradient carries S */
    float *zero = filled((size_t)N * C, 0.f), *in = rnd((size_t)N * C, 1.f, GPT_CLS_ACT);
    void *din = put(be, zero, (size_t)N * C, GPT_CLS_ACT), *dx = put(be, in, (size_t)N * C, GPT_CLS_ACT);
    float *gz = filled((size_t)V * C, 0.f);
    void *gw = put(be, gz, (size_t)V * C, GPT_CLS_GRAD);
    be->ops->matmul_backward(be, din, gw, NULL, dl, dx, dw, NULL, N, C, V);
    void *cdin = put(ref, zero, (size_t)N * C, GPT_CLS_ACT), *cdx = put(ref, in, (size_t)N * C, GPT_CLS_ACT);
    void *cgw = put(ref, gz, (size_t)V * C, GPT_CLS_GRAD), *cw = put(ref, w, (size_t)V * C, GPT_CLS_PARAM);
    ref->ops->upload(ref, cl, logits, n, GPT_CLS_ACT);
    ref->ops->crossentropy(ref, closs, cl, ct, N, V, V, 0.5f, 1);
    ref->ops->matmul_backward(ref, cdin, cgw, NULL, cl, cdx, cw, NULL, N, C, V);
    float *ga = get(be, gw, (size_t)V * C, GPT_CLS_GRAD), *gb = get(ref, cgw, (size_t)V * C, GPT_CLS_GRAD);
    EXPECT(test_rel_l2(ga, gb, (size_t)V * C) <= 2e-3, "dw (unscaled): rel L2 %.3g",
           test_rel_l2(ga, gb, (size_t)V * C));
    /* AdamW: an Inf gradient with a finite loss is an overflow */
    size_t np = 1000;
    float *p = rnd(np, 1.f, GPT_CLS_PARAM), *g = rnd(np, 0.01f, GPT_CLS_GRAD), *z = filled(np, 0.f);
    g[17] = INFINITY;
    gpt_adamw_hyper h = {1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.f, 0.1f, 0.05f};
    gpt_step_stats st = {1.f, 0, 0, 0};
    void *dp = put(be, p, np, GPT_CLS_PARAM), *dg = put(be, g, np, GPT_CLS_GRAD);
    void *dm = put(be, z, np, GPT_CLS_F32), *dv = put(be, z, np, GPT_CLS_F32);
    void *dh = put(be, &h, 8, GPT_CLS_F32), *ds = put(be, &st, 4, GPT_CLS_F32);
    be->ops->sumsq(be, (float *)ds + 3, dg, np);
    be->ops->adamw(be, dp, NULL, dg, dm, dv, np, np, dh, ds);
    float sv[4];
    be->ops->download(be, sv, ds, 4, GPT_CLS_F32);
    EXPECT(sv[2] == 1.f, "overflow step not skipped (skipped = %g)", sv[2]);
    be->ops->upload(be, dl, logits, n, GPT_CLS_ACT);
    be->ops->crossentropy(be, loss, dl, dt, N, V, V, 0.5f, 1);
    ref->ops->upload(ref, cl, logits, n, GPT_CLS_ACT);
    ref->ops->crossentropy(ref, closs, cl, ct, N, V, V, 0.5f * 256, 1);
    free(a), free(b);
    a = get(be, dl, n, GPT_CLS_ACT), b = get(ref, cl, n, GPT_CLS_ACT);
    EXPECT(test_rel_l2(a, b, n) <= 2e-3, "after the overflow S is not 256: rel L2 %.3g vs S = 256",
           test_rel_l2(a, b, n));
    EXPECT(be->ops->sync(be) == 0, "%s", be->err.msg);
    free(a), free(b), free(ga), free(gb), free(logits), free(w), free(zero), free(in), free(gz);
    free(p), free(g), free(z);
    gpt_backend_destroy(be);
    drop(ref, cl), drop(ref, ct), drop(ref, closs), drop(ref, cdin), drop(ref, cdx), drop(ref, cgw), drop(ref, cw);
    test_end();
}

/* Transfers alone, compared bit for bit: uploads of several sizes queued
 * back to back (one staging batch), downloads of alternating sizes through
 * the one readback buffer, memset0 and copy between them, a device op
 * reading what the uploads wrote, over rounds that rewrite every buffer.
 * On a GPU a missing transfer dependency or a stale readback shows here
 * without any arithmetic to blame; lavapipe, where every command runs in
 * order, checks the bookkeeping (staging offsets, readback regrowth). */
static void t_transfers(void) {
    test_begin("%s: uploads, downloads, memset0 and copy, bit for bit, over rounds", K->name);
    enum { NB = 6 };
    static const size_t sz[NB] = {1, 37, 1000, 40000, 102400, 300000};
    void *d[NB];
    float *h[NB], *back = malloc(sz[NB - 1] * sizeof(float));
    for (int i = 0; i < NB; i++) {
        d[i] = K->be->ops->alloc(K->be, sz[i] * sizeof(float));
        h[i] = malloc(sz[i] * sizeof(float));
    }
    int bad = -1, round_bad = -1;
    size_t at = 0;
    float got = 0, want = 0;
    for (int r = 0; r < 4 && bad < 0; r++) {
        for (int i = 0; i < NB; i++) {
            for (size_t k = 0; k < sz[i]; k++) h[i][k] = (float)(r * 1000003 + i * 7919) + (float)k * 0.5f;
            K->be->ops->upload(K->be, d[i], h[i], sz[i], GPT_CLS_GRAD);
        }
        /* buffer 3 := 0 in its middle third, then the head of buffer 4 over its head */
        size_t third = sz[3] / 3;
        K->be->ops->memset0(K->be, (float *)d[3] + third, third * sizeof(float));
        K->be->ops->copy(K->be, d[3], d[4], third / 2 * sizeof(float));
        for (size_t k = third; k < 2 * third; k++) h[3][k] = 0;
        for (size_t k = 0; k < third / 2; k++) h[3][k] = h[4][k];
        /* a device op over what the uploads wrote: buffer 0 += sum of buffer 2 */
        K->be->ops->sum_f32(K->be, d[0], d[2], sz[2], 1);
        double s2 = 0;
        for (size_t k = 0; k < sz[2]; k++) s2 += h[2][k];
        float want0 = h[0][0] + (float)s2;
        /* downloads, largest and smallest alternating, each twice */
        static const int order[] = {5, 0, 4, 1, 3, 2, 2, 3, 1, 4, 0, 5};
        for (size_t o = 0; o < sizeof order / sizeof order[0] && bad < 0; o++) {
            int i = order[o];
            K->be->ops->download(K->be, back, d[i], sz[i], GPT_CLS_GRAD);
            for (size_t k = 0; k < sz[i]; k++) {
                float w = i == 0 ? want0 : h[i][k];
                /* the sum is one fp32 reduction: within 1e-6 relative; the rest exact */
                int ok = i == 0 ? fabsf(back[k] - w) <= 1e-6f * fabsf(w) : back[k] == w;
                if (!ok) {
                    bad = i, round_bad = r, at = k, got = back[k], want = w;
                    break;
                }
            }
        }
    }
    EXPECT(bad < 0, "buffer %d (%zu floats), round %d, element %zu: %.9g, expected %.9g", bad,
           bad >= 0 ? sz[bad] : 0, round_bad, at, got, want);
    EXPECT(K->be->ops->sync(K->be) == 0, "%s", K->be->err.msg);
    for (int i = 0; i < NB; i++) drop(K->be, d[i]), free(h[i]);
    free(back);
    test_end();
}

/* Vulkan takes the folds for N <= 8 rows (the matvec shader), with the
 * layernorm while N * IC <= 4096 (its shared memory). */
static int fold_takes(int ln, int N, int IC) { return N <= 8 && (!ln || N * IC <= 4096); }

/* The decoding attention folded with its projection and residual add
 * (attention_kv_residual_forward) against the CPU's separate ops:
 * attention_kv_forward, matmul_forward, add. Positions as t_attention_kv's
 * (the last of several rows past the cache: its x must stay as it was);
 * the caches are compared too. Vulkan takes it while the B rows fit the
 * matvec's shared memory (B * C <= 4096) and the chunks reserve()'s room;
 * declined, nothing may be written. */
static void t_attention_fold(int B, int S, int C, int NH, int want) {
    test_begin("%s: attention_kv_residual_forward B=%d S=%d C=%d NH=%d%s", K->name, B, S, C, NH,
               want ? "" : " (declined)");
    const gpt_backend_ops *o = K->be->ops;
    EXPECT(o->attention_kv_residual_forward, "the backend has the op");
    if (test_case_failed_) {
        test_end();
        return;
    }
    size_t n3 = (size_t)B * 3 * C, n = (size_t)B * C, nc = (size_t)B * S * C;
    int pos[8];
    for (int b = 0; b < B; b++) pos[b] = B > 1 && b == B - 1 ? S : (S - 1) - (b * 7) % (S - 1);
    float *qkv = rnd(n3, 1.f, GPT_CLS_ACT), *kc = rnd(nc, 1.f, GPT_CLS_ACT), *vc = rnd(nc, 1.f, GPT_CLS_ACT);
    float *x = rnd(n, 1.f, GPT_CLS_ACT), *w = rnd((size_t)C * C, 1.f / sqrtf((float)C), GPT_CLS_PARAM);
    float *bias = rnd((size_t)C, 1.f, GPT_CLS_PARAM);
    BUF(dqkv); BUF(dk); BUF(dv); BUF(dpos); BUF(dx); BUF(dw); BUF(db); BUF(atty); BUF(tmp);
    PUT(dqkv, qkv, n3, GPT_CLS_ACT);
    PUT(dk, kc, nc, GPT_CLS_ACT);
    PUT(dv, vc, nc, GPT_CLS_ACT);
    PUT(dpos, pos, (size_t)B, GPT_CLS_I32);
    PUT(dx, x, n, GPT_CLS_ACT);
    PUT(dw, w, (size_t)C * C, GPT_CLS_PARAM);
    PUT(db, bias, (size_t)C, GPT_CLS_PARAM);
    PUT(atty, x, n, GPT_CLS_ACT);
    PUT(tmp, x, n, GPT_CLS_ACT);
    int took = o->attention_kv_residual_forward(K->be, dx[0], dqkv[0], dk[0], dv[0], dpos[0], B, S,
                                                C, NH, dw[0], db[0]);
    /* the reference: the rows past the cache keep x (the separate ops
     * would add the projection of an untouched attention output) */
    ref->ops->attention_kv_forward(ref, atty[1], dqkv[1], dk[1], dv[1], dpos[1], B, 1, S, C, NH);
    ref->ops->matmul_forward(ref, tmp[1], NULL, atty[1], dw[1], db[1], B, C, C, 0);
    ref->ops->add(ref, tmp[1], tmp[1], dx[1], n);
    expect_ok();
    EXPECT(took == want, "took the shape: %d, want %d", took, want);
    float *got = get(K->be, dx[0], n, GPT_CLS_ACT), *exp = get(ref, tmp[1], n, GPT_CLS_ACT);
    if (took) {
        for (int b = 0; b < B; b++)
            if (pos[b] >= S) memcpy(exp + (size_t)b * C, x + (size_t)b * C, (size_t)C * sizeof(float));
        double e = test_rel_l2(got, exp, n);
        EXPECT(e <= tol(), "x: rel L2 %.3g > %.3g", e, tol());
        for (int b = 0; b < B; b++)
            if (pos[b] >= S)
                EXPECT(!memcmp(got + (size_t)b * C, x + (size_t)b * C, (size_t)C * sizeof(float)),
                       "row %d (position %d, past the cache) was written", b, pos[b]);
        expect_same("kcache", dk[0], dk[1], nc, GPT_CLS_ACT, tol());
        expect_same("vcache", dv[0], dv[1], nc, GPT_CLS_ACT, tol());
    } else {
        EXPECT(!memcmp(got, x, n * sizeof(float)), "declined, but x was written");
        float *k = get(K->be, dk[0], nc, GPT_CLS_ACT);
        EXPECT(!memcmp(k, kc, nc * sizeof(float)), "declined, but the cache was written");
        free(k);
    }
    free(got), free(exp);
    FREE(dqkv); FREE(dk); FREE(dv); FREE(dpos); FREE(dx); FREE(dw); FREE(db); FREE(atty); FREE(tmp);
    free(qkv), free(kc), free(vc), free(x), free(w), free(bias);
    test_end();
}

static void run_all(void) {
    t_transfers();
    t_nonfinite();
    t_graph();
    t_errors();
    t_encoder(3, 37, 100, 1024, 64, 0);
    t_encoder(3, 37, 100, 1024, 64, 1);
    t_layernorm(37, 100, 0, 0);
    t_layernorm(37, 100, 1, 0);
    t_layernorm(37, 100, 1, 1);
    t_layernorm(5, 768, 1, 0);
    /* N, IC, OC, bias, gelu, pre, dgelu */
    t_matmul(37, 100, 300, 1, 0, 0, 0);
    t_matmul(37, 100, 400, 1, 1, 1, 0);
    t_matmul(37, 400, 100, 1, 0, 0, 1);
    t_matmul(37, 100, 1024, 0, 0, 0, 0); /* the tied head: C=100, Vp=1024 */
    t_matmul(37, 101, 203, 1, 1, 1, 1);  /* nothing aligned */
    t_matmul(1, 768, 2304, 1, 0, 0, 0);  /* decoding: one pass over the weights, 16-byte loads */
    t_matmul(5, 100, 400, 1, 1, 1, 0);
    t_matmul(3, 101, 203, 0, 0, 0, 0);   /* decoding, scalar loads */
    t_matmul(128, 256, 512, 1, 0, 0, 0); /* whole tiles (the cooperative-matrix path on GPUs) */
    t_matmul(200, 320, 264, 1, 1, 1, 1); /* partial tiles in every dimension */
    /* a long K under few tiles: the weight gradient split over K on GPUs
     * (4 splits of 256; 2 of 384 and 316) */
    t_matmul(1024, 96, 160, 1, 0, 0, 0);
    t_matmul(700, 100, 300, 1, 1, 1, 1);
    /* ... and the same in an input gradient (the LM head's at a small
     * batch), with GELU's gradient and without (dev/vulkan's split of K
     * for input gradients would take these as 3 and 8 parts) */
    t_matmul(100, 96, 1000, 0, 0, 0, 1);
    t_matmul(64, 128, 2048, 0, 0, 0, 0);
    t_argmax(5, 1000, 1024, 0);
    t_argmax(4, 1001, 1001, 0);
    t_argmax(6, 1000, 1024, 1);
    t_argmax(5, 1001, 1001, 1);
    t_copy(1000);
    /* ln, N, IC, OC, gelu: the decoding folds */
    t_fold(1, 1, 768, 2304, 0);
    t_fold(1, 3, 100, 400, 1);  /* IC not a multiple of the 16-byte loads; GELU and pre */
    t_fold(1, 8, 512, 300, 0);
    t_fold(0, 1, 768, 768, 0);
    t_fold(0, 5, 101, 203, 0);
    t_fold(0, 2, 3072, 300, 0); /* long rows: a column over several subgroups */
    t_fold(0, 8, 3072, 100, 0);
    t_fold(1, 1, 4096, 70, 1);
    t_fold(1, 2, 4096, 64, 0);  /* declined: 8192 normalized values */
    t_fold(1, 9, 100, 64, 0);   /* declined: N > 8 */
    t_fold(0, 9, 100, 64, 0);
    t_gelu(1001);
    t_add(1001);
    /* B, T, C, NH */
    t_attention(2, 37, 100, 5);  /* head size 20 */
    t_attention(1, 20, 105, 5);  /* head size 21 */
    t_attention(2, 37, 128, 2);  /* head size 64 */
    t_attention(1, 70, 256, 2);  /* head size 128, two query blocks */
    /* the cooperative-matrix forward's shapes (head sizes 16..64, 64 queries
     * and 64 keys a round): three query blocks and key rounds, the last
     * partial; head size 32 */
    t_attention(1, 150, 128, 2); /* head size 64 */
    t_attention(2, 70, 64, 2);   /* head size 32 */
    t_attention(1, 70, 96, 2);   /* head size 48 */
    t_attention(1, 65, 64, 4);   /* head size 16, a second query block of one */
    t_attention_kv(3, 1, 40, 100, 5);
    t_attention_kv(3, 5, 40, 100, 5);
    t_attention_kv(2, 1, 100, 128, 2);
    t_attention_kv(1, 1, 300, 128, 2);  /* decoding split over 5 chunks of keys, all used */
    t_attention_kv(2, 40, 300, 512, 4); /* partials past reserve()'s room: one workgroup a query */
    /* head size 48: in fp16, 6 lanes a value row, 10 rows at once (4 lanes
     * idle); 200 positions: three full chunks and a partial one */
    t_attention_kv(2, 1, 200, 96, 2);
    /* B, S, C, NH, taken: folded with the projection */
    t_attention_fold(1, 300, 128, 2, 1);   /* 5 chunks of keys */
    t_attention_fold(3, 100, 768, 12, 1);  /* gpt2's heads; the last row past the cache */
    t_attention_fold(5, 40, 100, 5, 1);    /* head size 20: scalar loads */
    t_attention_fold(6, 40, 768, 12, 0);   /* declined: 4608 inputs */
    t_attention_kv_at(3, 37, 40, 100, 5, 1); /* prefill: causal attention over qkv */
    t_attention_kv_at(2, 12, 8, 100, 5, 1);  /* Tq > S: rows past S untouched */
    t_attention_kv_at(2, 70, 80, 128, 2, 1); /* prefill, head size 64 (no lse) */
    t_crossentropy(37, 1000, 1024, 1);
    t_crossentropy(37, 1000, 1024, 0);
    t_crossentropy(5, 1001, 1001, 1);
    t_sum(1001, 0);
    t_sum(100000, 1);
    t_sumsq(10007);
    t_sumsq(3000001);
    t_adamw(10007, 5000, 1.f, 0);
    t_adamw(10007, 5000, 0.f, 0);
    t_adamw(4096, 4096, 1e-6f, 0); /* the clip binds */
    t_adamw(1001, 10, 1.f, 1);
    if (K->precision == GPT_PREC_FP16) t_loss_scale();
}

int main(void) {
    gpt_error err;
    gpt_runtime rt = {0};
    rt.device = "cpu";
    rt.precision = GPT_PREC_FP32; /* the fp32 reference (AUTO trains in bf16 where the CPU can) */
    gpt_rng_seed(&rng, 1234);
    if (!gpt_backend_available("vulkan")) {
        const char *req = getenv("GPT_REQUIRE_VULKAN");
        test_begin("a usable Vulkan device exists");
        EXPECT(!(req && atoi(req)), "GPT_REQUIRE_VULKAN=1 but no usable Vulkan device (install mesa-vulkan-drivers)");
        if (!(req && atoi(req))) printf("no usable Vulkan device: nothing to test\n");
        else test_end();
        return test_summary();
    }
    if (gpt_backend_create(&ref, &rt, &err)) {
        printf("cpu backend: %s\n", err.msg);
        return 1;
    }
    gpt_shape s = {4, 256, 2048, 16, 8192, 1001, 1024, 1, 1100, 1, 200000, 8, 0};
    static dev_cfg cfgs[] = {{"vulkan-fp32", "vulkan", GPT_PREC_FP32, 0, NULL},
                             {"vulkan-fp16", "vulkan", GPT_PREC_FP16, 1, NULL},
                             {"vulkan-fp16-coop", "vulkan", GPT_PREC_FP16, 0, NULL},
                             {"vulkan-fp16-coop-nv", "vulkan", GPT_PREC_FP16, 0, NULL},
                             {"vulkan-fp16-coop-attn", "vulkan", GPT_PREC_FP16, 0, NULL}};
    if (ref->ops->reserve(ref, &s)) {
        printf("cpu reserve: %s\n", ref->err.msg);
        return 1;
    }
    setenv("GPT_VULKAN_LOSS_SCALE", "1", 1);
    /* New allocations full of NaN bytes (vk_backend.c): an op that reads
     * memory nobody wrote fails here as on a GPU that recycles memory, not
     * only there (lavapipe's fresh memory is zero). */
    setenv("GPT_VULKAN_POISON", "1", 0);
    const char *only = getenv("GPT_TEST_CONFIGS"), *req = getenv("GPT_TEST_REQUIRE_COOP");
    int require_coop = req && atoi(req);
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        dev_cfg *c = &cfgs[i];
        if (only && *only) {
            const char *f = strstr(only, c->name);
            size_t l = strlen(c->name);
            if (!f || (f[l] && f[l] != ',')) continue;
        }
        setenv("GPT_VULKAN_NO_COOP", c->unfused ? "1" : "0", 1);
        int nv_only = strstr(c->name, "-nv") != NULL;
        if (nv_only) setenv("GPT_VULKAN_COOP", "nv", 1);
        else unsetenv("GPT_VULKAN_COOP");
        int want_attn = strstr(c->name, "-attn") != NULL;
        setenv("GPT_VULKAN_COOP_ATTN", want_attn ? "1" : "0", 1);
        rt.device = c->device;
        rt.precision = c->precision;
        test_begin("%s: create and reserve", c->name);
        int rc = gpt_backend_create(&c->be, &rt, &err);
        if (rc == GPT_ERR_INVALID && c->precision == GPT_PREC_FP16 && strstr(err.msg, "16-bit")) {
            printf("     %s: %s (skipped)\n", c->name, err.msg);
            test_end();
            continue;
        }
        EXPECT(rc == 0, "create: %s", err.msg);
        /* The description says which extension the products run on and
         * which the device offers with a usable shape (vk_device.c). */
        const char *desc = rc ? "" : c->be->ops->device_desc(c->be);
        int khr = strstr(desc, "(VK_KHR_cooperative_matrix") != NULL;
        int nv = strstr(desc, "(VK_NV_cooperative_matrix") != NULL, coop = khr || nv;
        int khr_offered = strstr(desc, "offered: KHR") != NULL;
        int nv_offered = strstr(desc, "offered: NV") || strstr(desc, "offered: KHR NV");
        int attn = strstr(desc, "products and attention (") != NULL;
        if (!rc) {
            EXPECT(c->be->ops->reserve(c->be, &s) == 0, "reserve: %s", c->be->err.msg);
            printf("     device: %s\n", desc);
            if (!c->unfused && c->precision == GPT_PREC_FP16) {
                printf("     %s: products%s on %s\n", c->name, attn ? " and attention" : "",
                       khr ? "VK_KHR_cooperative_matrix" : nv ? "VK_NV_cooperative_matrix" : "the tiled kernel");
                EXPECT(attn == (want_attn && coop), "cooperative-matrix attention %s",
                       attn ? "on with GPT_VULKAN_COOP_ATTN=0" : "off though asked for and the products run on cooperative matrices");
                if (nv_only) EXPECT(nv || !nv_offered, "GPT_VULKAN_COOP=nv but NV, offered, did not run");
                else {
                    EXPECT(coop || !require_coop, "GPT_TEST_REQUIRE_COOP=1 but no cooperative-matrix path");
                    EXPECT(khr || !khr_offered, "the device offers VK_KHR_cooperative_matrix but it did not run");
                }
            }
            if (c->unfused) EXPECT(!coop, "GPT_VULKAN_NO_COOP=1 but the cooperative-matrix path is on");
        }
        test_end();
        if (rc) continue;
        if (!c->unfused && c->precision == GPT_PREC_FP16 && !coop) {
            printf("     %s: the device has no %scooperative matrices: the tiled path was tested above\n",
                   c->name, nv_only ? "NV " : "");
            gpt_backend_destroy(c->be);
            continue;
        }
        K = c;
        run_all();
        gpt_backend_destroy(c->be);
    }
    gpt_backend_destroy(ref);
    return test_summary();
}
