/*
 * ops_cases.h - the table-of-cases op tests every GPU backend runs against
 * the CPU backend (the fp32 reference): one function per operation, each
 * drawing fresh random inputs on shapes that are not multiples of any
 * block size, forward and backward. Included by one test program per
 * backend (tests/gpu/test_cuda_ops.c, tests/vulkan/test_vulkan_ops.c),
 * which defines the configurations (dev_cfg), the list of cases and main.
 *
 * Every case fills outputs that an op overwrites with NaN first (an
 * unwritten element then fails the comparison), and starts outputs that an
 * op accumulates into (+=) from the same random values on both sides.
 *
 * Tolerances, as relative L2 error ||dev - ref|| / ||ref|| (METHOD.md):
 *   fp32: 1e-5. Both sides round every operation to fp32 (unit roundoff
 *     6e-8); they differ only in summation order, which over sums of up to
 *     a few thousand terms moves results by ~1e-6 relative.
 *   bf16: 1e-2. Inputs are rounded to bf16 on the host for BOTH sides, so
 *     what is measured is the device's own rounding: bf16 outputs (relative
 *     spacing 2^-8, RMS error ~2^-9/sqrt(3) ~ 1e-3) and bf16 intermediates
 *     (attention probabilities and dS, matmul results before the bias and
 *     GELU on the unfused path), a handful of roundings in a row: a few 1e-3.
 *     1e-2 is about 3x that; a wrong index or a missing term gives 1e-1 or
 *     more. fp32 results of bf16 mode (gradients of parameters, losses,
 *     AdamW's master weights) are held to 1e-2 too, since they are sums of
 *     products of bf16 values that were themselves rounded.
 *   fp16: 2e-3. The same reasoning with fp16's 11-bit significand:
 *     relative spacing 2^-11, RMS rounding error ~2^-12/sqrt(3) ~ 1.4e-4;
 *     the Vulkan backend computes in fp32 from fp16 inputs and rounds each
 *     output once (the residual of residual_layernorm once more), so a
 *     couple of roundings: ~3e-4. 2e-3 leaves a factor ~6 for the
 *     elements that fall below fp16's normal range (6e-5: small softmax
 *     gradients), and a wrong index or missing term is still ~1e-1.
 */
#ifndef GPT_TEST_OPS_CASES_H
#define GPT_TEST_OPS_CASES_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "../test.h"
#include "util.h"

typedef struct {
    const char *name;
    const char *device; /* the runtime's device string, e.g. "cuda", "vulkan" */
    int precision;
    int unfused;        /* CUDA: GPT_CUDA_NO_EPILOGUE and _NO_FAST_ATTN; Vulkan: no cooperative matrices */
    gpt_backend *be;
} dev_cfg;

static gpt_backend *ref;  /* CPU */
static const dev_cfg *K;  /* the configuration under test */
static gpt_rng rng;

static double tol(void) {
    return K->precision == GPT_PREC_FP32 ? 1e-5 : K->precision == GPT_PREC_FP16 ? 2e-3 : 1e-2;
}
static int bf16(void) { return K->precision == GPT_PREC_BF16; }
static int half(void) { return K->precision == GPT_PREC_BF16 || K->precision == GPT_PREC_FP16; }

/* Round to bf16 (nearest even), as the device does on upload. */
static float round_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0x7f800000u) return x;
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&x, &u, 4);
    return x;
}

/* Round to fp16 (nearest even; overflow to inf, subnormals kept), as the
 * device does on upload. */
static float round_f16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    uint32_t mag = u & 0x7fffffffu;
    if (mag >= 0x7f800000u) return x;
    if (mag >= 0x477ff000u) return x < 0 ? -INFINITY : INFINITY;
    /* the spacing of halves at this magnitude, 2^(e-10), or 2^-24 below 2^-14 */
    int e = (int)(mag >> 23) - 127;
    float q = ldexpf(1.0f, (e < -14 ? -14 : e) - 10);
    return rintf(x / q) * q; /* x / q is exact: q is a power of two */
}

/* PARAM/ACT values as the device holds them. */
static float round_half(float x) { return bf16() ? round_bf16(x) : round_f16(x); }

/* Fresh random host data; PARAM/ACT data is rounded to the half type in
 * bf16 and fp16 modes so that both sides see the same inputs. */
static float *rnd(size_t n, float scale, int cls) {
    float *h = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        h[i] = scale * gpt_rng_normal(&rng);
        if (half() && (cls == GPT_CLS_PARAM || cls == GPT_CLS_ACT)) h[i] = round_half(h[i]);
    }
    return h;
}
static float *filled(size_t n, float v) {
    float *h = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) h[i] = v;
    return h;
}

/* Device buffer of n elements of cls holding h (n floats or ints). */
static void *put(gpt_backend *be, const void *h, size_t n, int cls) {
    void *d = be->ops->alloc(be, (n ? n : 1) * be->cls_size[cls]);
    if (d && n) be->ops->upload(be, d, h, n, cls);
    return d;
}
static float *get(gpt_backend *be, const void *d, size_t n, int cls) {
    float *h = malloc((n ? n : 1) * sizeof(float));
    be->ops->download(be, h, d, n, cls);
    return h;
}
static void drop(gpt_backend *be, void *d) { be->ops->free(be, d); }

/* Compares n elements of a device tensor on both sides. */
static void expect_same(const char *what, const void *dev_p, const void *ref_p, size_t n, int cls,
                        double t) {
    float *a = get(K->be, dev_p, n, cls), *b = get(ref, ref_p, n, cls);
    double e = test_rel_l2(a, b, n);
    EXPECT(e <= t, "%s: rel L2 %.3g > %.3g (first: dev %g ref %g)", what, e, t, n ? a[0] : 0.,
           n ? b[0] : 0.);
    free(a);
    free(b);
}

static void expect_ok(void) {
    int e1 = K->be->ops->sync(K->be), e2 = ref->ops->sync(ref);
    EXPECT(e1 == 0, "device error: %s", K->be->err.msg);
    EXPECT(e2 == 0, "cpu error: %s", ref->err.msg);
}

/* Runs a statement once per side with `be` bound to the side's backend and
 * `X(name)` naming that side's copy of a buffer declared with BUF. */
#define BUF(name) void *name[2]
#define BOTH(stmt)                                    \
    for (int side = 0; side < 2; side++) {           \
        gpt_backend *be = side ? ref : K->be;         \
        (void)be;                                     \
        stmt;                                         \
    }
#define X(name) name[side]
#define PUT(name, h, n, cls) BOTH(X(name) = put(be, h, n, cls))
#define FREE(name) BOTH(drop(be, X(name)))

/* ------------------------------------------------------------- encoder */

static void t_encoder(int B, int T, int C, int Vp, int maxT, int with_pos) {
    test_begin("%s: encoder forward+backward B=%d T=%d C=%d Vp=%d pos0=%d", K->name, B, T, C, Vp,
               with_pos);
    size_t N = (size_t)B * T;
    int *tok = malloc(N * sizeof(int)), pos[8];
    for (size_t i = 0; i < N; i++) tok[i] = (int)gpt_rng_below(&rng, (uint64_t)Vp / 8); /* repeats */
    tok[0] = -1, tok[N / 2] = Vp + 5, tok[N - 1] = Vp - 1; /* invalid ids read as zero rows */
    for (int b = 0; b < B; b++) pos[b] = b == 1 ? maxT - T / 2 : b * 3; /* row 1 runs past maxT */
    float *wte = rnd((size_t)Vp * C, 0.5f, GPT_CLS_PARAM), *wpe = rnd((size_t)maxT * C, 0.5f, GPT_CLS_PARAM);
    float *nan = filled(N * C, NAN), *dout = rnd(N * C, 1.f, GPT_CLS_ACT);
    float *dwte0 = rnd((size_t)Vp * C, 1.f, GPT_CLS_GRAD), *dwpe0 = rnd((size_t)maxT * C, 1.f, GPT_CLS_GRAD);
    BUF(dtok); BUF(dpos); BUF(dwte); BUF(dwpe); BUF(out); BUF(ddout); BUF(gwte); BUF(gwpe);
    PUT(dtok, tok, N, GPT_CLS_I32);
    PUT(dpos, pos, (size_t)B, GPT_CLS_I32);
    PUT(dwte, wte, (size_t)Vp * C, GPT_CLS_PARAM);
    PUT(dwpe, wpe, (size_t)maxT * C, GPT_CLS_PARAM);
    PUT(out, nan, N * C, GPT_CLS_ACT);
    PUT(ddout, dout, N * C, GPT_CLS_ACT);
    PUT(gwte, dwte0, (size_t)Vp * C, GPT_CLS_GRAD);
    PUT(gwpe, dwpe0, (size_t)maxT * C, GPT_CLS_GRAD);
    BOTH(be->ops->encoder_forward(be, X(out), X(dtok), with_pos ? X(dpos) : NULL, X(dwte), X(dwpe),
                                  B, T, C, Vp, maxT));
    BOTH(be->ops->encoder_backward(be, X(gwte), X(gwpe), X(ddout), X(dtok), B, T, C, Vp));
    expect_ok();
    expect_same("out", out[0], out[1], N * C, GPT_CLS_ACT, tol());
    expect_same("dwte", gwte[0], gwte[1], (size_t)Vp * C, GPT_CLS_GRAD, tol());
    expect_same("dwpe", gwpe[0], gwpe[1], (size_t)maxT * C, GPT_CLS_GRAD, tol());
    FREE(dtok); FREE(dpos); FREE(dwte); FREE(dwpe); FREE(out); FREE(ddout); FREE(gwte); FREE(gwpe);
    free(tok), free(wte), free(wpe), free(nan), free(dout), free(dwte0), free(dwpe0);
    test_end();
}

/* ----------------------------------------------------------- layernorm */

static void t_layernorm(int N, int C, int residual, int inplace) {
    test_begin("%s: %slayernorm forward+backward N=%d C=%d%s", K->name, residual ? "residual " : "",
               N, C, inplace ? " (res == a)" : "");
    size_t n = (size_t)N * C;
    float *a = rnd(n, 1.f, GPT_CLS_ACT), *b = rnd(n, 1.f, GPT_CLS_ACT);
    float *w = rnd((size_t)C, 1.f, GPT_CLS_PARAM), *bias = rnd((size_t)C, 1.f, GPT_CLS_PARAM);
    float *nan = filled(n, NAN), *nanN = filled((size_t)N, NAN);
    float *dout = rnd(n, 1.f, GPT_CLS_ACT), *dx0 = rnd(n, 1.f, GPT_CLS_ACT);
    float *dw0 = rnd((size_t)C, 1.f, GPT_CLS_GRAD), *db0 = rnd((size_t)C, 1.f, GPT_CLS_GRAD);
    for (size_t i = 0; i < n; i += 7) a[i] += 3.f; /* an offset mean: the variance must be centred */
    BUF(da); BUF(db); BUF(dw); BUF(dbias); BUF(res); BUF(out); BUF(mean); BUF(rstd);
    BUF(ddout); BUF(dx); BUF(gw); BUF(gb);
    PUT(da, a, n, GPT_CLS_ACT);
    PUT(db, b, n, GPT_CLS_ACT);
    PUT(dw, w, (size_t)C, GPT_CLS_PARAM);
    PUT(dbias, bias, (size_t)C, GPT_CLS_PARAM);
    PUT(res, nan, n, GPT_CLS_ACT);
    PUT(out, nan, n, GPT_CLS_ACT);
    PUT(mean, nanN, (size_t)N, GPT_CLS_F32);
    PUT(rstd, nanN, (size_t)N, GPT_CLS_F32);
    PUT(ddout, dout, n, GPT_CLS_ACT);
    PUT(dx, dx0, n, GPT_CLS_ACT);
    PUT(gw, dw0, (size_t)C, GPT_CLS_GRAD);
    PUT(gb, db0, (size_t)C, GPT_CLS_GRAD);
    if (residual) {
        BOTH(be->ops->residual_layernorm_forward(be, inplace ? X(da) : X(res), X(out), X(mean),
                                                 X(rstd), X(da), X(db), X(dw), X(dbias), N, C,
                                                 1e-5f));
    } else {
        BOTH(be->ops->layernorm_forward(be, X(out), X(mean), X(rstd), X(da), X(dw), X(dbias), N, C,
                                        1e-5f));
    }
    expect_ok();
    expect_same("out", out[0], out[1], n, GPT_CLS_ACT, tol());
    expect_same("mean", mean[0], mean[1], (size_t)N, GPT_CLS_F32, tol());
    expect_same("rstd", rstd[0], rstd[1], (size_t)N, GPT_CLS_F32, tol());
    if (residual) expect_same("res", inplace ? da[0] : res[0], inplace ? da[1] : res[1], n, GPT_CLS_ACT, tol());
    /* backward from the CPU's x, mean and rstd on both sides */
    void *x_ref = residual ? (inplace ? da[1] : res[1]) : da[1];
    float *x = get(ref, x_ref, n, GPT_CLS_ACT), *mh = get(ref, mean[1], (size_t)N, GPT_CLS_F32),
          *rh = get(ref, rstd[1], (size_t)N, GPT_CLS_F32);
    if (half())
        for (size_t i = 0; i < n; i++) x[i] = round_half(x[i]);
    BUF(dxin); BUF(dm); BUF(dr);
    PUT(dxin, x, n, GPT_CLS_ACT);
    PUT(dm, mh, (size_t)N, GPT_CLS_F32);
    PUT(dr, rh, (size_t)N, GPT_CLS_F32);
    BOTH(be->ops->layernorm_backward(be, X(dx), X(gw), X(gb), X(ddout), X(dxin), X(dw), X(dm),
                                     X(dr), N, C));
    expect_ok();
    expect_same("dx", dx[0], dx[1], n, GPT_CLS_ACT, tol());
    expect_same("dw", gw[0], gw[1], (size_t)C, GPT_CLS_GRAD, tol());
    expect_same("db", gb[0], gb[1], (size_t)C, GPT_CLS_GRAD, tol());
    FREE(da); FREE(db); FREE(dw); FREE(dbias); FREE(res); FREE(out); FREE(mean); FREE(rstd);
    FREE(ddout); FREE(dx); FREE(gw); FREE(gb); FREE(dxin); FREE(dm); FREE(dr);
    free(a), free(b), free(w), free(bias), free(nan), free(nanN), free(dout), free(dx0);
    free(dw0), free(db0), free(x), free(mh), free(rh);
    test_end();
}

/* -------------------------------------------------------------- matmul */

static void t_matmul(int N, int IC, int OC, int has_bias, int gelu, int with_pre, int din_gelu) {
    test_begin("%s: matmul N=%d IC=%d OC=%d bias=%d gelu=%d pre=%d dgelu=%d", K->name, N, IC, OC,
               has_bias, gelu, with_pre, din_gelu);
    float s = 1.f / sqrtf((float)IC);
    float *in = rnd((size_t)N * IC, 1.f, GPT_CLS_ACT), *w = rnd((size_t)OC * IC, s, GPT_CLS_PARAM);
    float *bias = rnd((size_t)OC, 1.f, GPT_CLS_PARAM), *nan = filled((size_t)N * (OC > IC ? OC : IC), NAN);
    float *dout = rnd((size_t)N * OC, 1.f, GPT_CLS_ACT), *pre_in = rnd((size_t)N * IC, 1.f, GPT_CLS_ACT);
    float *dw0 = rnd((size_t)OC * IC, 1.f, GPT_CLS_GRAD), *db0 = rnd((size_t)OC, 1.f, GPT_CLS_GRAD);
    BUF(din_); BUF(dw_); BUF(bias_); BUF(out); BUF(pre); BUF(ddout); BUF(dpre); BUF(din); BUF(gw); BUF(gb);
    PUT(din_, in, (size_t)N * IC, GPT_CLS_ACT);
    PUT(dw_, w, (size_t)OC * IC, GPT_CLS_PARAM);
    PUT(bias_, bias, (size_t)OC, GPT_CLS_PARAM);
    PUT(out, nan, (size_t)N * OC, GPT_CLS_ACT);
    PUT(pre, nan, (size_t)N * OC, GPT_CLS_ACT);
    PUT(ddout, dout, (size_t)N * OC, GPT_CLS_ACT);
    PUT(dpre, pre_in, (size_t)N * IC, GPT_CLS_ACT);
    PUT(din, nan, (size_t)N * IC, GPT_CLS_ACT);
    PUT(gw, dw0, (size_t)OC * IC, GPT_CLS_GRAD);
    PUT(gb, db0, (size_t)OC, GPT_CLS_GRAD);
    BOTH(be->ops->matmul_forward(be, X(out), gelu && with_pre ? X(pre) : NULL, X(din_), X(dw_),
                                 has_bias ? X(bias_) : NULL, N, IC, OC, gelu));
    expect_ok();
    expect_same("out", out[0], out[1], (size_t)N * OC, GPT_CLS_ACT, tol());
    if (gelu && with_pre) expect_same("pre", pre[0], pre[1], (size_t)N * OC, GPT_CLS_ACT, tol());
    BOTH(be->ops->matmul_backward(be, X(din), X(gw), has_bias ? X(gb) : NULL, X(ddout), X(din_),
                                  X(dw_), din_gelu ? X(dpre) : NULL, N, IC, OC));
    expect_ok();
    expect_same("din", din[0], din[1], (size_t)N * IC, GPT_CLS_ACT, tol());
    expect_same("dw", gw[0], gw[1], (size_t)OC * IC, GPT_CLS_GRAD, tol());
    if (has_bias) expect_same("dbias", gb[0], gb[1], (size_t)OC, GPT_CLS_GRAD, tol());
    /* din = NULL: only the weight (and bias) gradients */
    BOTH(be->ops->matmul_backward(be, NULL, X(gw), has_bias ? X(gb) : NULL, X(ddout), X(din_),
                                  X(dw_), NULL, N, IC, OC));
    expect_ok();
    expect_same("dw (second, din NULL)", gw[0], gw[1], (size_t)OC * IC, GPT_CLS_GRAD, tol());
    FREE(din_); FREE(dw_); FREE(bias_); FREE(out); FREE(pre); FREE(ddout); FREE(dpre); FREE(din);
    FREE(gw); FREE(gb);
    free(in), free(w), free(bias), free(nan), free(dout), free(pre_in), free(dw0), free(db0);
    test_end();
}

/* argmax over the first V of Vp columns: the device's answer against the
 * host's on the same (device-rounded) logits, with planted ties (lowest
 * index wins), NaNs (never win), an all-NaN row (0) and an all -inf row
 * (0, the first of equals). With steps: as the end of a decoding step, the
 * ids also go into the history (N, S) at each row's position, positions
 * outside [0, S) write nothing, and every position advances by one. */
static void t_argmax(int N, int V, int Vp, int step) {
    test_begin("%s: argmax N=%d V=%d Vp=%d%s", K->name, N, V, Vp, step ? " (decoding step)" : "");
    enum { S = 9 };
    size_t n = (size_t)N * Vp;
    float *l = rnd(n, 3.f, GPT_CLS_ACT);
    for (int r = 0; r < N; r++) {
        float *row = l + (size_t)r * Vp;
        for (int j = V; j < Vp; j++) row[j] = 1e30f; /* padding never counts */
        if (r % 4 == 1) row[V / 3] = row[V - 1] = row[2 * V / 3] = 100.f; /* a tie */
        if (r % 4 == 2) {
            row[0] = NAN, row[V / 2] = NAN, row[V - 1] = 50.f;
        }
        if (r % 4 == 3) {
            for (int j = 0; j < V; j++) row[j] = r == 3 ? NAN : -INFINITY;
        }
    }
    int *want = malloc((size_t)N * sizeof(int)), *got = malloc((size_t)N * sizeof(int));
    void *dl = put(K->be, l, n, GPT_CLS_ACT);
    float *back = get(K->be, dl, n, GPT_CLS_ACT);
    for (int r = 0; r < N; r++) {
        const float *row = back + (size_t)r * Vp;
        int best = -1;
        for (int j = 0; j < V; j++)
            if (!isnan(row[j]) && (best < 0 || row[j] > row[best])) best = j;
        want[r] = best < 0 ? 0 : best;
        got[r] = -7;
    }
    void *dout = put(K->be, got, (size_t)N, GPT_CLS_I32);
    int *pos = malloc((size_t)N * sizeof(int)), *hist = malloc((size_t)N * S * sizeof(int));
    for (int r = 0; r < N; r++) pos[r] = r == 0 ? -1 : r == 1 ? S : (r * 5) % S; /* two outside */
    for (int i = 0; i < N * S; i++) hist[i] = -3;
    void *dpos = put(K->be, pos, (size_t)N, GPT_CLS_I32), *dhist = put(K->be, hist, (size_t)N * S, GPT_CLS_I32);
    K->be->ops->argmax(K->be, dout, dl, N, V, Vp, step ? dpos : NULL, step ? dhist : NULL, S);
    expect_ok();
    K->be->ops->download(K->be, got, dout, (size_t)N, GPT_CLS_I32);
    for (int r = 0; r < N; r++) EXPECT(got[r] == want[r], "row %d: argmax %d, want %d", r, got[r], want[r]);
    int *pos2 = malloc((size_t)N * sizeof(int)), *hist2 = malloc((size_t)N * S * sizeof(int));
    K->be->ops->download(K->be, pos2, dpos, (size_t)N, GPT_CLS_I32);
    K->be->ops->download(K->be, hist2, dhist, (size_t)N * S, GPT_CLS_I32);
    for (int r = 0; r < N; r++) {
        EXPECT(pos2[r] == pos[r] + step, "row %d: position %d, want %d", r, pos2[r], pos[r] + step);
        for (int p = 0; p < S; p++) {
            int w = step && p == pos[r] ? want[r] : -3;
            EXPECT(hist2[(size_t)r * S + p] == w, "row %d: history at %d is %d, want %d", r, p,
                   hist2[(size_t)r * S + p], w);
        }
    }
    drop(K->be, dl), drop(K->be, dout), drop(K->be, dpos), drop(K->be, dhist);
    free(pos), free(hist), free(pos2), free(hist2);
    free(l), free(back), free(want), free(got);
    test_end();
}

static void t_copy(int n) {
    test_begin("%s: copy n=%d", K->name, n);
    int *h = malloc((size_t)n * sizeof(int)), *back = malloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) h[i] = (int)gpt_rng_below(&rng, 1000) - 500;
    void *a = put(K->be, h, (size_t)n, GPT_CLS_I32), *b = put(K->be, h, (size_t)n, GPT_CLS_I32);
    K->be->ops->memset0(K->be, b, (size_t)n * sizeof(int));
    K->be->ops->copy(K->be, (int *)b + 1, (int *)a + 1, (size_t)(n - 1) * sizeof(int));
    expect_ok();
    K->be->ops->download(K->be, back, b, (size_t)n, GPT_CLS_I32);
    int ok = back[0] == 0;
    for (int i = 1; i < n; i++) ok &= back[i] == h[i];
    EXPECT(ok, "copy gave wrong values");
    drop(K->be, a), drop(K->be, b);
    free(h), free(back);
    test_end();
}

/* out = a + b, and in place (a += b). */
static void t_add(size_t n) {
    test_begin("%s: add n=%zu", K->name, n);
    float *a = rnd(n, 2.f, GPT_CLS_ACT), *b = rnd(n, 2.f, GPT_CLS_ACT), *nan = filled(n, NAN);
    BUF(da); BUF(db); BUF(out);
    PUT(da, a, n, GPT_CLS_ACT);
    PUT(db, b, n, GPT_CLS_ACT);
    PUT(out, nan, n, GPT_CLS_ACT);
    BOTH(be->ops->add(be, X(out), X(da), X(db), n));
    expect_ok();
    expect_same("out", out[0], out[1], n, GPT_CLS_ACT, tol());
    BOTH(be->ops->add(be, X(da), X(da), X(db), n));
    expect_ok();
    expect_same("a += b", da[0], da[1], n, GPT_CLS_ACT, tol());
    FREE(da); FREE(db); FREE(out);
    free(a), free(b), free(nan);
    test_end();
}

static void t_gelu(size_t n) {
    test_begin("%s: gelu_forward n=%zu", K->name, n);
    float *in = rnd(n, 2.f, GPT_CLS_ACT), *nan = filled(n, NAN);
    BUF(din); BUF(out);
    PUT(din, in, n, GPT_CLS_ACT);
    PUT(out, nan, n, GPT_CLS_ACT);
    BOTH(be->ops->gelu_forward(be, X(out), X(din), n));
    expect_ok();
    expect_same("out", out[0], out[1], n, GPT_CLS_ACT, tol());
    FREE(din); FREE(out);
    free(in), free(nan);
    test_end();
}

/* ----------------------------------------------------------- attention */

static void t_attention(int B, int T, int C, int NH) {
    test_begin("%s: attention forward+backward B=%d T=%d C=%d NH=%d (head size %d)", K->name, B,
               T, C, NH, C / NH);
    size_t n3 = (size_t)B * T * 3 * C, n = (size_t)B * T * C, nl = (size_t)B * NH * T;
    float *qkv = rnd(n3, 1.f, GPT_CLS_ACT), *dout = rnd(n, 1.f, GPT_CLS_ACT);
    float *nan = filled(n3, NAN);
    BUF(dqkv_in); BUF(out); BUF(lse); BUF(ddout); BUF(dqkv);
    PUT(dqkv_in, qkv, n3, GPT_CLS_ACT);
    PUT(out, nan, n, GPT_CLS_ACT);
    PUT(lse, nan, nl, GPT_CLS_F32);
    PUT(ddout, dout, n, GPT_CLS_ACT);
    PUT(dqkv, nan, n3, GPT_CLS_ACT);
    BOTH(be->ops->attention_forward(be, X(out), X(lse), X(dqkv_in), B, T, C, NH));
    expect_ok();
    expect_same("out", out[0], out[1], n, GPT_CLS_ACT, tol());
    expect_same("lse", lse[0], lse[1], nl, GPT_CLS_F32, tol());
    BOTH(be->ops->attention_backward(be, X(dqkv), X(ddout), X(dqkv_in), X(out), X(lse), B, T, C, NH));
    expect_ok();
    float *a = get(K->be, dqkv[0], n3, GPT_CLS_ACT), *b = get(ref, dqkv[1], n3, GPT_CLS_ACT);
    /* q, k and v gradients separately: each has its own scale and path.
     * With T == 1 the softmax has one key, so dq and dk are exactly 0 in
     * exact arithmetic and both sides hold rounding noise (dp - D over two
     * summation orders): there they are compared against dv's size. */
    const char *part[3] = {"dq", "dk", "dv"};
    double dv_norm = 0;
    for (size_t r = 0; r < (size_t)B * T; r++)
        for (int c = 0; c < C; c++) dv_norm += (double)b[r * 3 * C + 2 * C + c] * b[r * 3 * C + 2 * C + c];
    dv_norm = sqrt(dv_norm);
    for (int p = 0; p < 3; p++) {
        float *pa = malloc(n * sizeof(float)), *pb = malloc(n * sizeof(float));
        for (size_t r = 0; r < (size_t)B * T; r++) {
            memcpy(pa + r * C, a + r * 3 * C + (size_t)p * C, (size_t)C * sizeof(float));
            memcpy(pb + r * C, b + r * 3 * C + (size_t)p * C, (size_t)C * sizeof(float));
        }
        if (T == 1 && p < 2) {
            double na = 0, nb = 0;
            for (size_t i = 0; i < n; i++) na += (double)pa[i] * pa[i], nb += (double)pb[i] * pb[i];
            na = sqrt(na), nb = sqrt(nb);
            EXPECT(na <= tol() * dv_norm && nb <= tol() * dv_norm,
                   "%s (exactly 0 at T=1): |dev| %.3g, |ref| %.3g > %.3g |dv|", part[p], na, nb,
                   tol());
        } else {
            double e = test_rel_l2(pa, pb, n);
            EXPECT(e <= tol(), "%s: rel L2 %.3g > %.3g", part[p], e, tol());
        }
        free(pa), free(pb);
    }
    free(a), free(b);
    FREE(dqkv_in); FREE(out); FREE(lse); FREE(ddout); FREE(dqkv);
    free(qkv), free(dout), free(nan);
    test_end();
}

/* KV-cache attention: one call with Tq positions per row at pos0[b]; rows
 * whose positions run past S keep their poison; caches compared too. */
/* fresh: pos0 NULL, a prefill of every row from position 0 (the CUDA
 * backend then runs the causal flash kernels over qkv). */
static void t_attention_kv_at(int B, int Tq, int S, int C, int NH, int fresh) {
    test_begin("%s: attention_kv_forward B=%d Tq=%d S=%d C=%d NH=%d%s", K->name, B, Tq, S, C, NH,
               fresh ? " (prefill, pos0 NULL)" : "");
    size_t n3 = (size_t)B * Tq * 3 * C, n = (size_t)B * Tq * C, nc = (size_t)B * S * C;
    int pos[8];
    /* the first row fills the cache; the last (of several) runs past it */
    for (int b = 0; b < B; b++)
        pos[b] = fresh ? 0 : B > 1 && b == B - 1 ? S - Tq / 2 : (S - Tq) - (b * 7) % (S - Tq);
    float *qkv = rnd(n3, 1.f, GPT_CLS_ACT), *kc = rnd(nc, 1.f, GPT_CLS_ACT), *vc = rnd(nc, 1.f, GPT_CLS_ACT);
    float *poison = filled(n, 1024.f); /* exact in bf16 */
    BUF(dqkv); BUF(dk); BUF(dv); BUF(dpos); BUF(out);
    PUT(dqkv, qkv, n3, GPT_CLS_ACT);
    PUT(dk, kc, nc, GPT_CLS_ACT);
    PUT(dv, vc, nc, GPT_CLS_ACT);
    PUT(dpos, pos, (size_t)B, GPT_CLS_I32);
    PUT(out, poison, n, GPT_CLS_ACT);
    BOTH(be->ops->attention_kv_forward(be, X(out), X(dqkv), X(dk), X(dv), fresh ? NULL : X(dpos), B,
                                       Tq, S, C, NH));
    expect_ok();
    expect_same("out", out[0], out[1], n, GPT_CLS_ACT, tol());
    expect_same("kcache", dk[0], dk[1], nc, GPT_CLS_ACT, tol());
    expect_same("vcache", dv[0], dv[1], nc, GPT_CLS_ACT, tol());
    float *o = get(K->be, out[0], n, GPT_CLS_ACT);
    int untouched = 1, written = 1;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < Tq; t++) {
            float v = o[((size_t)b * Tq + t) * C];
            if (pos[b] + t >= S) untouched &= v == 1024.f;
            else written &= v != 1024.f;
        }
    EXPECT(untouched, "rows past the cache were written");
    EXPECT(written, "rows inside the cache were not written");
    free(o);
    FREE(dqkv); FREE(dk); FREE(dv); FREE(dpos); FREE(out);
    free(qkv), free(kc), free(vc), free(poison);
    test_end();
}

static void t_attention_kv(int B, int Tq, int S, int C, int NH) { t_attention_kv_at(B, Tq, S, C, NH, 0); }

/* ------------------------------------------------------- cross-entropy */

static void t_crossentropy(int N, int V, int Vp, int grad) {
    test_begin("%s: crossentropy N=%d V=%d Vp=%d grad=%d", K->name, N, V, Vp, grad);
    size_t n = (size_t)N * Vp;
    float *logits = rnd(n, 3.f, GPT_CLS_ACT), *nanN = filled((size_t)N, NAN);
    int *tgt = malloc((size_t)N * sizeof(int));
    for (int i = 0; i < N; i++) tgt[i] = (int)gpt_rng_below(&rng, (uint64_t)V);
    tgt[1] = -1, tgt[N - 2] = V; /* ignored rows: loss 0, zero gradient */
    BUF(dl); BUF(dt); BUF(loss);
    PUT(dl, logits, n, GPT_CLS_ACT);
    PUT(dt, tgt, (size_t)N, GPT_CLS_I32);
    PUT(loss, nanN, (size_t)N, GPT_CLS_F32);
    BOTH(be->ops->crossentropy(be, X(loss), X(dl), X(dt), N, V, Vp, 1.f / N, grad));
    expect_ok();
    /* fp32 over GPT-2's vocabulary: every probability is divided by one
     * fp32 sum of 50,257 exponentials, which the CPU adds in SIMD lanes of
     * ~6,000 terms and the device in 512 threads of ~100 plus a tree: the
     * two orders alone differ by ~1e-5 relative (1.02e-5 seen on an H100),
     * past the 1e-5 that sums of a few thousand terms stay within. 1e-4
     * there; a wrong target index or an unscaled row still gives ~1e-1 or more. */
    double t = !bf16() && V > 10000 ? 1e-4 : tol();
    expect_same("losses", loss[0], loss[1], (size_t)N, GPT_CLS_F32, t);
    expect_same(grad ? "dlogits" : "logits (unchanged)", dl[0], dl[1], n, GPT_CLS_ACT, t);
    FREE(dl); FREE(dt); FREE(loss);
    free(logits), free(nanN), free(tgt);
    test_end();
}

static void t_sum(size_t n, int accumulate) {
    test_begin("%s: sum_f32 n=%zu accumulate=%d", K->name, n, accumulate);
    float *in = rnd(n, 1.f, GPT_CLS_F32), start = 2.5f;
    /* Non-negative inputs: a sum of +-1 values cancels (100000 of them gave
     * 5.56 from a sum of |x| near 50000), and then two fp32 summation orders
     * legitimately differ by more than 1e-5 relative; without cancellation
     * both are within ~log2(n) roundings of the true sum, far inside 1e-5. */
    for (size_t i = 0; i < n; i++) in[i] = fabsf(in[i]);
    BUF(din); BUF(out);
    PUT(din, in, n, GPT_CLS_F32);
    PUT(out, &start, 1, GPT_CLS_F32);
    BOTH(be->ops->sum_f32(be, X(out), X(din), n, accumulate));
    expect_ok();
    expect_same("sum", out[0], out[1], 1, GPT_CLS_F32, 1e-5);
    /* deterministic: the same inputs give the same bits */
    float first, again;
    K->be->ops->download(K->be, &first, out[0], 1, GPT_CLS_F32);
    K->be->ops->sum_f32(K->be, out[0], din[0], n, 0);
    K->be->ops->download(K->be, &again, out[0], 1, GPT_CLS_F32);
    if (!accumulate) EXPECT(first == again, "sum changed between runs: %.9g vs %.9g", first, again);
    FREE(din); FREE(out);
    free(in);
    test_end();
}

/* --------------------------------------------------------------- AdamW */

static void t_sumsq(size_t n) {
    test_begin("%s: sumsq n=%zu (against a double sum, the same bits twice)", K->name, n);
    float *g = rnd(n, 0.01f, GPT_CLS_GRAD);
    double ref_sum = 0;
    for (size_t i = 0; i < n; i++) ref_sum += (double)g[i] * g[i];
    void *dg = put(K->be, g, n, GPT_CLS_GRAD), *out = put(K->be, g, 2, GPT_CLS_F32);
    K->be->ops->sumsq(K->be, out, dg, n);
    K->be->ops->sumsq(K->be, (float *)out + 1, dg, n);
    expect_ok();
    float r[2];
    K->be->ops->download(K->be, r, out, 2, GPT_CLS_F32);
    /* fp32 partial sums of n positive terms: relative error below n^0.5 * 2^-24 */
    EXPECT(fabs(r[0] - ref_sum) <= 1e-5 * ref_sum, "sumsq %.9g vs %.9g", r[0], ref_sum);
    EXPECT(r[0] == r[1], "two calls gave %.9g and %.9g", r[0], r[1]);
    drop(K->be, dg);
    drop(K->be, out);
    free(g);
    test_end();
}

static void t_adamw(size_t n, size_t n_decay, float clip, int poison_loss) {
    test_begin("%s: adamw n=%zu n_decay=%zu clip=%g%s", K->name, n, n_decay, clip,
               poison_loss ? " (non-finite loss: skipped)" : "");
    float *p = rnd(n, 1.f, GPT_CLS_PARAM), *g = rnd(n, 0.01f, GPT_CLS_GRAD);
    float *m0 = rnd(n, 0.001f, GPT_CLS_F32), *v0 = rnd(n, 0.001f, GPT_CLS_F32);
    for (size_t i = 0; i < n; i++) v0[i] = fabsf(v0[i]) * 1e-3f;
    gpt_adamw_hyper h = {1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, clip, 1.f - powf(0.9f, 3), 1.f - powf(0.95f, 3)};
    gpt_step_stats st = {poison_loss ? NAN : 1.f, NAN, NAN, 0};
    BUF(dp); BUF(dg); BUF(dm); BUF(dv); BUF(dh); BUF(ds); BUF(master);
    PUT(dp, p, n, GPT_CLS_PARAM);
    PUT(dg, g, n, GPT_CLS_GRAD);
    PUT(dm, m0, n, GPT_CLS_F32);
    PUT(dv, v0, n, GPT_CLS_F32);
    PUT(dh, &h, 8, GPT_CLS_F32);
    PUT(ds, &st, 4, GPT_CLS_F32);
    /* half-precision modes keep an fp32 master copy; the CPU (fp32 params) has none */
    master[0] = half() ? put(K->be, p, n, GPT_CLS_F32) : NULL;
    master[1] = NULL;
    /* the squared norm goes in stats->grad_sumsq (the fourth float) */
    BOTH(be->ops->sumsq(be, (float *)X(ds) + 3, X(dg), n));
    BOTH(be->ops->adamw(be, X(dp), X(master), X(dg), X(dm), X(dv), n, n_decay,
                        (const gpt_adamw_hyper *)X(dh), (gpt_step_stats *)X(ds)));
    expect_ok();
    float t = half() ? tol() : 1e-5;
    expect_same("params", dp[0], dp[1], n, GPT_CLS_PARAM, t);
    if (master[0]) expect_same("master", master[0], dp[1], n, GPT_CLS_F32, 1e-5);
    expect_same("m", dm[0], dm[1], n, GPT_CLS_F32, 1e-5);
    expect_same("v", dv[0], dv[1], n, GPT_CLS_F32, 1e-5);
    float sa[4], sb[4];
    K->be->ops->download(K->be, sa, ds[0], 4, GPT_CLS_F32);
    ref->ops->download(ref, sb, ds[1], 4, GPT_CLS_F32);
    EXPECT(fabsf(sa[1] - sb[1]) <= 1e-5f * sb[1], "grad_norm %g vs %g", sa[1], sb[1]);
    EXPECT(sa[2] == sb[2] && sa[2] == (poison_loss ? 1.f : 0.f), "skipped %g vs %g", sa[2], sb[2]);
    float *gz = get(K->be, dg[0], n, GPT_CLS_GRAD);
    int zero = 1;
    for (size_t i = 0; i < n; i++) zero &= gz[i] == 0.f;
    EXPECT(zero, "gradient not zeroed");
    if (poison_loss) {
        float *pp = get(K->be, dp[0], n, GPT_CLS_PARAM);
        EXPECT(!memcmp(pp, p, n * sizeof(float)), "a skipped update changed the parameters");
        free(pp);
    }
    free(gz);
    FREE(dp); FREE(dg); FREE(dm); FREE(dv); FREE(dh); FREE(ds);
    if (master[0]) drop(K->be, master[0]);
    free(p), free(g), free(m0), free(v0);
    test_end();
}

/* ------------------------------------------------- diagnostics, graphs */

static void t_nonfinite(void) {
    test_begin("%s: nonfinite_count, upload/download, sync counting", K->name);
    gpt_backend *be = K->be;
    size_t n = 100003;
    float *h = rnd(n, 1.f, GPT_CLS_ACT);
    h[5] = NAN, h[n - 1] = INFINITY, h[777] = -INFINITY;
    void *d = put(be, h, n, GPT_CLS_ACT);
    long s0 = be->syncs;
    long bad = be->ops->nonfinite_count(be, d, n, GPT_CLS_ACT);
    EXPECT(bad == 3, "counted %ld non-finite values, planted 3", bad);
    EXPECT(be->syncs == s0 + 1, "nonfinite_count made %ld host waits", be->syncs - s0);
    float *back = get(be, d, n, GPT_CLS_ACT);
    EXPECT(be->syncs == s0 + 2, "download made %ld host waits", be->syncs - s0 - 1);
    int same = 1;
    for (size_t i = 0; i < n; i++)
        if (isfinite(h[i])) same &= back[i] == h[i];
    EXPECT(same, "upload/download round trip changed values");
    be->ops->memset0(be, d, n * be->cls_size[GPT_CLS_ACT]);
    EXPECT(be->ops->nonfinite_count(be, d, n, GPT_CLS_ACT) == 0, "memset0 left non-finite values");
    drop(be, d);
    free(h), free(back);
    expect_ok();
    test_end();
}

/* A captured layernorm + matmul replays on new inputs exactly as an eager run. */
static void t_graph(void) {
    test_begin("%s: graph capture and replay, timers", K->name);
    gpt_backend *be = K->be;
    int N = 37, C = 100, OC = 300;
    float *x1 = rnd((size_t)N * C, 1.f, GPT_CLS_ACT), *x2 = rnd((size_t)N * C, 1.f, GPT_CLS_ACT);
    float *w = rnd((size_t)OC * C, 0.1f, GPT_CLS_PARAM), *g = filled((size_t)C, 1.f), *z = filled((size_t)C, 0.f);
    void *dx = put(be, x1, (size_t)N * C, GPT_CLS_ACT), *dw = put(be, w, (size_t)OC * C, GPT_CLS_PARAM);
    void *dg = put(be, g, (size_t)C, GPT_CLS_PARAM), *dz = put(be, z, (size_t)C, GPT_CLS_PARAM);
    void *ln = put(be, x1, (size_t)N * C, GPT_CLS_ACT), *out = be->ops->alloc(be, (size_t)N * OC * be->cls_size[GPT_CLS_ACT]);
    float *eager[2], *graph[2];
    for (int k = 0; k < 2; k++) { /* eager on x1, x2 */
        be->ops->upload(be, dx, k ? x2 : x1, (size_t)N * C, GPT_CLS_ACT);
        be->ops->layernorm_forward(be, ln, NULL, NULL, dx, dg, dz, N, C, 1e-5f);
        be->ops->matmul_forward(be, out, NULL, ln, dw, NULL, N, C, OC, 0);
        eager[k] = get(be, out, (size_t)N * OC, GPT_CLS_ACT);
    }
    int replayed[2];
    for (int k = 0; k < 2; k++) { /* recorded on x1, replayed on x2 */
        be->ops->upload(be, dx, k ? x2 : x1, (size_t)N * C, GPT_CLS_ACT);
        replayed[k] = be->ops->graph_begin(be, 7);
        if (!replayed[k]) {
            be->ops->timer_record(be, 0);
            be->ops->layernorm_forward(be, ln, NULL, NULL, dx, dg, dz, N, C, 1e-5f);
            be->ops->matmul_forward(be, out, NULL, ln, dw, NULL, N, C, OC, 0);
            be->ops->timer_record(be, 1);
            be->ops->graph_end(be, 7);
        }
        graph[k] = get(be, out, (size_t)N * OC, GPT_CLS_ACT);
    }
    EXPECT(!replayed[0] && replayed[1], "graph_begin returned %d then %d", replayed[0], replayed[1]);
    for (int k = 0; k < 2; k++)
        EXPECT(!memcmp(eager[k], graph[k], (size_t)N * OC * sizeof(float)),
               "graph run %d differs from the eager run", k);
    double ms = be->ops->timer_elapsed_ms(be, 0, 1);
    EXPECT(ms >= 0 && ms < 1000, "timer gave %g ms", ms);
    expect_ok();
    for (int k = 0; k < 2; k++) free(eager[k]), free(graph[k]);
    drop(be, dx), drop(be, dw), drop(be, dg), drop(be, dz), drop(be, ln), drop(be, out);
    free(x1), free(x2), free(w), free(g), free(z);
    test_end();
}

/* Shape refusals are recorded errors, never crashes. */
static void t_errors(void) {
    test_begin("%s: bad shapes are refused with an error", K->name);
    gpt_error e;
    gpt_runtime rt = {0};
    rt.device = K->device;
    rt.precision = K->precision;
    gpt_backend *be;
    int rc = gpt_backend_create(&be, &rt, &e);
    EXPECT(rc == 0, "create: %s", e.msg);
    if (!rc) {
        be->ops->layernorm_forward(be, NULL, NULL, NULL, NULL, NULL, NULL, 5, 0, 1e-5f);
        EXPECT(be->err.code == GPT_ERR_INVALID, "C=0 accepted");
        EXPECT(be->ops->sync(be) == GPT_ERR_INVALID, "sync did not return the error");
        gpt_backend_destroy(be);
    }
    test_end();
}

/* ------------------------------------------------------------ decoding */

/* The folded decoding products (backend.h's matmul_ln_forward and
 * matmul_residual_forward) against the CPU's separate ops: layernorm then
 * matmul, or matmul then the residual add. fold_takes (defined by the
 * including test) says which shapes the backend takes; where it declines it
 * must issue nothing: the output keeps its contents.
 * ln = 1: out = matmul(layernorm(x)); 0: out += matmul(x). */
static int fold_takes(int ln, int N, int IC);

static void t_fold(int ln, int N, int IC, int OC, int gelu) {
    test_begin("%s: matmul_%s_forward N=%d IC=%d OC=%d gelu=%d", K->name, ln ? "ln" : "residual", N,
               IC, OC, gelu);
    const gpt_backend_ops *o = K->be->ops;
    EXPECT(o->matmul_ln_forward && o->matmul_residual_forward, "the backend has both ops");
    if (test_case_failed_) {
        test_end();
        return;
    }
    int want = fold_takes(ln, N, IC);
    int CM = IC > OC ? IC : OC;
    float *x = rnd((size_t)N * IC, 1.f, GPT_CLS_ACT);
    for (size_t i = 0; i < (size_t)N * IC; i += 7) x[i] += 3.f; /* an offset mean */
    for (int k = 0; k < IC; k++) x[k] = round_bf16(x[k] + 8.f); /* row 0: mean ~8 std (one pass) */
    float *lnw = rnd((size_t)CM, 1.f, GPT_CLS_PARAM), *lnb = rnd((size_t)CM, 1.f, GPT_CLS_PARAM);
    float *w = rnd((size_t)OC * IC, 1.f / sqrtf((float)IC), GPT_CLS_PARAM);
    float *bias = rnd((size_t)OC, 1.f, GPT_CLS_PARAM), *res = rnd((size_t)N * OC, 1.f, GPT_CLS_ACT);
    float *nan = filled((size_t)N * CM, NAN);
    BUF(dx); BUF(dlnw); BUF(dlnb); BUF(dw); BUF(dbias); BUF(out); BUF(pre); BUF(tmp);
    PUT(dx, x, (size_t)N * IC, GPT_CLS_ACT);
    PUT(dlnw, lnw, (size_t)CM, GPT_CLS_PARAM);
    PUT(dlnb, lnb, (size_t)CM, GPT_CLS_PARAM);
    PUT(dw, w, (size_t)OC * IC, GPT_CLS_PARAM);
    PUT(dbias, bias, (size_t)OC, GPT_CLS_PARAM);
    PUT(out, ln ? nan : res, (size_t)N * OC, GPT_CLS_ACT);
    PUT(pre, nan, (size_t)N * OC, GPT_CLS_ACT);
    PUT(tmp, nan, (size_t)N * CM, GPT_CLS_ACT);
    int took;
    if (ln) {
        took = o->matmul_ln_forward(K->be, out[0], gelu ? pre[0] : NULL, dx[0], dlnw[0], dlnb[0],
                                    1e-5f, dw[0], dbias[0], N, IC, OC, gelu);
        ref->ops->layernorm_forward(ref, tmp[1], NULL, NULL, dx[1], dlnw[1], dlnb[1], N, IC, 1e-5f);
        ref->ops->matmul_forward(ref, out[1], gelu ? pre[1] : NULL, tmp[1], dw[1], dbias[1], N, IC,
                                 OC, gelu);
    } else {
        took = o->matmul_residual_forward(K->be, out[0], dx[0], dw[0], dbias[0], N, IC, OC);
        ref->ops->matmul_forward(ref, tmp[1], NULL, dx[1], dw[1], dbias[1], N, IC, OC, 0);
        ref->ops->add(ref, out[1], out[1], tmp[1], (size_t)N * OC);
    }
    expect_ok();
    EXPECT(took == want, "took the shape: %d, want %d", took, want);
    if (took) {
        expect_same("out", out[0], out[1], (size_t)N * OC, GPT_CLS_ACT, tol());
        if (ln && gelu) expect_same("pre", pre[0], pre[1], (size_t)N * OC, GPT_CLS_ACT, tol());
    } else {
        /* declined: out as it was uploaded */
        float *got = get(K->be, out[0], (size_t)N * OC, GPT_CLS_ACT);
        size_t i = 0;
        while (i < (size_t)N * OC && (ln ? isnan(got[i]) : got[i] == res[i])) i++;
        EXPECT(i == (size_t)N * OC, "declined, but element %zu was written", i);
        free(got);
    }
    FREE(dx); FREE(dlnw); FREE(dlnb); FREE(dw); FREE(dbias); FREE(out); FREE(pre); FREE(tmp);
    free(x), free(lnw), free(lnb), free(w), free(bias), free(res), free(nan);
    test_end();
}

#endif
