/*
 * test_ops_grad.c - every CPU backend operation against an independent
 * double-precision reference written here: forward outputs, and backward
 * passes against central finite differences of the reference in double.
 *
 * Each backward is checked as a vector-Jacobian product: with a random
 * upstream gradient R, the op's backward must give the gradient of
 * L = sum(out * R) with respect to each input. Finite differences of the
 * double reference (h = 1e-6, error O(h^2) ~ 1e-12) are exact for our
 * purpose, so the error measured is the fp32 op's own.
 *
 * Tolerances: fp32 has a unit roundoff of 6e-8; the ops here sum at most a
 * few hundred terms, so forward outputs carry relative errors around 1e-6
 * and we allow 1e-5 (scaled by the tensor's largest value, since elements
 * near zero have no meaningful relative error). Backward outputs chain two
 * or three such sums: we allow 1e-4. A wrong index or a missing term gives
 * errors of 1e-2 or more.
 *
 * Shapes are odd on purpose (T=7, C=12, NH=3, V=37, ...): nothing is a
 * multiple of a vector width or block size.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cpu/cpu.h"
#include "cpu/cpu_features.h"
#include "cpu/cpu_gemm.h"
#include "cpu/cpu_pool.h"
#include "test.h"
#include "util.h"

static gpt_backend *be;
static gpt_rng rng;

/* ------------------------------------------------------------- helpers */

static float *frand(size_t n, float scale) {
    float *x = malloc(n * sizeof(float) + 4);
    for (size_t i = 0; i < n; i++) x[i] = scale * (2 * gpt_rng_float(&rng) - 1);
    return x;
}
static float *fzeros(size_t n) { return calloc(n + 1, sizeof(float)); }
static float *fpoison(size_t n) {
    float *x = malloc(n * sizeof(float) + 4);
    for (size_t i = 0; i < n; i++) x[i] = NAN; /* every output element must be written */
    return x;
}
static double *to_d(const float *x, size_t n) {
    double *d = malloc(n * sizeof(double) + 8);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}
static double dmax_abs(const double *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}
/* max |got - ref| / max|ref| (NaN if any got is not finite). */
static double scaled_err(const float *got, const double *ref, size_t n) {
    double worst = 0, scale = dmax_abs(ref, n);
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= worst)) worst = d;
    }
    return worst / (scale > 0 ? scale : 1);
}

/* Reference function: f(inputs) -> out, all double. */
typedef void (*ref_fn)(void *ctx, double *const *in, double *out);

/* Gradient of L = sum(f(in) * R) w.r.t. in[which] by central differences. */
static void fd_grad(ref_fn f, void *ctx, double **in, int which, size_t n_in, size_t n_out,
                    const double *R, double *grad) {
    const double h = 1e-6;
    double *out = malloc(n_out * sizeof(double));
    for (size_t i = 0; i < n_in; i++) {
        double keep = in[which][i];
        double lp = 0, lm = 0;
        in[which][i] = keep + h;
        f(ctx, in, out);
        for (size_t k = 0; k < n_out; k++) lp += out[k] * R[k];
        in[which][i] = keep - h;
        f(ctx, in, out);
        for (size_t k = 0; k < n_out; k++) lm += out[k] * R[k];
        in[which][i] = keep;
        grad[i] = (lp - lm) / (2 * h);
    }
    free(out);
}

static void check_grad(const char *what, ref_fn f, void *ctx, double **in, int which, size_t n_in,
                       size_t n_out, const double *R, const float *got) {
    double *g = malloc(n_in * sizeof(double));
    fd_grad(f, ctx, in, which, n_in, n_out, R, g);
    double e = scaled_err(got, g, n_in);
    EXPECT(e <= 1e-4, "%s: scaled error %.3g vs finite differences", what, e);
    free(g);
}

static void check_fwd(const char *what, const float *got, const double *ref, size_t n) {
    double e = scaled_err(got, ref, n);
    EXPECT(e <= 1e-5, "%s: scaled error %.3g vs the double reference", what, e);
}

static double gelu_d(double x) {
    return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}

/* ----------------------------------------------------------- layernorm */

typedef struct {
    int N, C;
} ln_ctx;

static void ln_ref(void *vc, double *const *in, double *out) { /* in: x, w, b */
    ln_ctx *c = vc;
    for (int i = 0; i < c->N; i++) {
        const double *x = in[0] + (size_t)i * c->C;
        double m = 0, v = 0;
        for (int k = 0; k < c->C; k++) m += x[k];
        m /= c->C;
        for (int k = 0; k < c->C; k++) v += (x[k] - m) * (x[k] - m);
        v /= c->C;
        double s = 1 / sqrt(v + 1e-5);
        for (int k = 0; k < c->C; k++) out[(size_t)i * c->C + k] = (x[k] - m) * s * in[1][k] + in[2][k];
    }
}

static void test_layernorm(int N, int C) {
    test_begin("layernorm forward/backward N=%d C=%d", N, C);
    ln_ctx c = {N, C};
    size_t NC = (size_t)N * C;
    float *x = frand(NC, 2), *w = frand(C, 1), *b = frand(C, 1), *R = frand(NC, 1);
    for (int k = 0; k < C; k++) w[k] += 1.0f;
    float *out = fpoison(NC), *mean = fpoison(N), *rstd = fpoison(N);
    be->ops->layernorm_forward(be, out, mean, rstd, x, w, b, N, C, 1e-5f);
    double *in[3] = {to_d(x, NC), to_d(w, C), to_d(b, C)}, *ref = malloc(NC * sizeof(double));
    ln_ref(&c, in, ref);
    check_fwd("layernorm out", out, ref, NC);
    /* Backward accumulates: start dx, dw, db from known values. */
    float *dx = frand(NC, 1), *dw = frand(C, 1), *db = frand(C, 1);
    float *dx0 = malloc(NC * 4), *dw0 = malloc(C * 4), *db0 = malloc(C * 4);
    memcpy(dx0, dx, NC * 4), memcpy(dw0, dw, C * 4), memcpy(db0, db, C * 4);
    be->ops->layernorm_backward(be, dx, dw, db, R, x, w, mean, rstd, N, C);
    for (size_t i = 0; i < NC; i++) dx[i] -= dx0[i];
    for (int i = 0; i < C; i++) dw[i] -= dw0[i], db[i] -= db0[i];
    double *Rd = to_d(R, NC);
    check_grad("layernorm dx", ln_ref, &c, in, 0, NC, NC, Rd, dx);
    check_grad("layernorm dw", ln_ref, &c, in, 1, C, NC, Rd, dw);
    check_grad("layernorm db", ln_ref, &c, in, 2, C, NC, Rd, db);
    /* The fused residual version: res = a + b2, out = LN(res). */
    float *a = frand(NC, 1), *b2 = frand(NC, 1), *res = fpoison(NC), *out2 = fpoison(NC);
    be->ops->residual_layernorm_forward(be, res, out2, NULL, NULL, a, b2, w, b, N, C, 1e-5f);
    double *sum = malloc(NC * sizeof(double));
    for (size_t i = 0; i < NC; i++) sum[i] = (double)a[i] + b2[i];
    check_fwd("residual", res, sum, NC);
    double *in2[3] = {sum, in[1], in[2]};
    ln_ref(&c, in2, ref);
    check_fwd("residual + layernorm out", out2, ref, NC);
    /* In place (res == a) gives the same. */
    be->ops->residual_layernorm_forward(be, a, out, NULL, NULL, a, b2, w, b, N, C, 1e-5f);
    check_fwd("residual in place", a, sum, NC);
    test_end();
    free(x), free(w), free(b), free(R), free(out), free(mean), free(rstd), free(dx), free(dw);
    free(db), free(dx0), free(dw0), free(db0), free(a), free(b2), free(res), free(out2);
    free(sum), free(ref), free(Rd);
    for (int i = 0; i < 3; i++) free(in[i]);
}

/* ------------------------------------------------------------- matmul */

typedef struct {
    int N, IC, OC, gelu_in; /* gelu_in: the input is gelu(P) */
} mm_ctx;

static void mm_ref(void *vc, double *const *in, double *out) { /* in: x (N,IC), w, bias */
    mm_ctx *c = vc;
    for (int i = 0; i < c->N; i++)
        for (int o = 0; o < c->OC; o++) {
            double acc = in[2] ? in[2][o] : 0;
            for (int k = 0; k < c->IC; k++) {
                double x = in[0][(size_t)i * c->IC + k];
                acc += (c->gelu_in ? gelu_d(x) : x) * in[1][(size_t)o * c->IC + k];
            }
            out[(size_t)i * c->OC + o] = acc;
        }
}

static void test_matmul(int N, int IC, int OC, int with_bias, int gelu) {
    test_begin("matmul forward/backward N=%d IC=%d OC=%d bias=%d gelu_in=%d", N, IC, OC, with_bias,
               gelu);
    size_t nx = (size_t)N * IC, nw = (size_t)OC * IC, no = (size_t)N * OC;
    float *x = frand(nx, 1), *w = frand(nw, 0.5), *bias = with_bias ? frand(OC, 1) : NULL;
    float *R = frand(no, 1), *out = fpoison(no);
    float *in_used = x;
    float *gx = NULL;
    if (gelu) { /* the op's input is gelu(x), made with the backend's GELU */
        gx = fpoison(nx);
        be->ops->gelu_forward(be, gx, x, nx);
        double *xd = to_d(x, nx), *gref = malloc(nx * sizeof(double));
        for (size_t i = 0; i < nx; i++) gref[i] = gelu_d(xd[i]);
        check_fwd("gelu_forward", gx, gref, nx);
        free(xd), free(gref);
        in_used = gx;
    }
    be->ops->matmul_forward(be, out, NULL, in_used, w, bias, N, IC, OC, 0);
    mm_ctx c = {N, IC, OC, gelu};
    double *in[3] = {to_d(x, nx), to_d(w, nw), bias ? to_d(bias, OC) : NULL};
    double *ref = malloc(no * sizeof(double));
    mm_ref(&c, in, ref);
    check_fwd("matmul out", out, ref, no);
    float *din = fpoison(nx), *dw = frand(nw, 1), *db = with_bias ? frand(OC, 1) : NULL;
    float *dw0 = malloc(nw * 4), *db0 = malloc(OC * 4);
    memcpy(dw0, dw, nw * 4);
    if (db) memcpy(db0, db, OC * 4);
    be->ops->matmul_backward(be, din, dw, db, R, in_used, w, gelu ? x : NULL, N, IC, OC);
    for (size_t i = 0; i < nw; i++) dw[i] -= dw0[i];
    for (int i = 0; db && i < OC; i++) db[i] -= db0[i];
    double *Rd = to_d(R, no);
    check_grad(gelu ? "matmul din (through GELU)" : "matmul din", mm_ref, &c, in, 0, nx, no, Rd, din);
    check_grad("matmul dw", mm_ref, &c, in, 1, nw, no, Rd, dw);
    if (db) check_grad("matmul dbias", mm_ref, &c, in, 2, OC, no, Rd, db);
    /* Fused GELU forward: out = gelu(x w^T + b), pre = x w^T + b. */
    float *pre = fpoison(no);
    be->ops->matmul_forward(be, out, pre, x, w, bias, N, IC, OC, 1);
    c.gelu_in = 0;
    mm_ref(&c, in, ref);
    check_fwd("matmul pre-activation", pre, ref, no);
    for (size_t i = 0; i < no; i++) ref[i] = gelu_d(ref[i]);
    check_fwd("matmul + GELU out", out, ref, no);
    test_end();
    free(x), free(w), free(bias), free(R), free(out), free(gx), free(din), free(dw), free(db);
    free(dw0), free(db0), free(ref), free(Rd), free(pre);
    for (int i = 0; i < 3; i++) free(in[i]);
}

/* ---------------------------------------------------------- attention */

typedef struct {
    int B, T, C, NH;
} att_ctx;

static void att_ref(void *vc, double *const *in, double *out) { /* in: qkv (B,T,3C) */
    att_ctx *c = vc;
    int HS = c->C / c->NH;
    double *s = malloc((size_t)c->T * sizeof(double));
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->NH; h++)
            for (int t = 0; t < c->T; t++) {
                const double *q = in[0] + ((size_t)b * c->T + t) * 3 * c->C + h * HS;
                double mx = -1e300, sum = 0;
                for (int j = 0; j <= t; j++) {
                    const double *k = in[0] + ((size_t)b * c->T + j) * 3 * c->C + c->C + h * HS;
                    double d = 0;
                    for (int e = 0; e < HS; e++) d += q[e] * k[e];
                    s[j] = d / sqrt((double)HS);
                    mx = fmax(mx, s[j]);
                }
                for (int j = 0; j <= t; j++) sum += s[j] = exp(s[j] - mx);
                double *o = out + ((size_t)b * c->T + t) * c->C + h * HS;
                for (int e = 0; e < HS; e++) {
                    double acc = 0;
                    for (int j = 0; j <= t; j++)
                        acc += s[j] / sum * in[0][((size_t)b * c->T + j) * 3 * c->C + 2 * c->C + h * HS + e];
                    o[e] = acc;
                }
            }
    free(s);
}

/* KV cache: prefill everything at once, then one position at a time, must
 * both give the full forward's outputs (ref: att_ref's). */
static void kv_checks(const float *qkv, const double *ref, int B, int T, int C, int NH) {
    size_t no = (size_t)B * T * C;
    int S = T + 3; /* cache longer than used */
    size_t ncache = (size_t)B * S * C;
    float *kc = fzeros(ncache), *vc = fzeros(ncache), *o2 = fpoison(no);
    int *pos0 = calloc((size_t)B, sizeof(int));
    be->ops->attention_kv_forward(be, o2, qkv, kc, vc, pos0, B, T, S, C, NH);
    check_fwd("KV prefill out", o2, ref, no);
    /* in two parts: the second's queries start at position T1 and see
     * the first's keys from the cache */
    int T1 = T / 3, T2 = T - T1;
    if (T1 > 0) {
        memset(kc, 0, ncache * 4), memset(vc, 0, ncache * 4);
        float *qa = malloc((size_t)B * T1 * 3 * C * 4), *qb = malloc((size_t)B * T2 * 3 * C * 4);
        float *oa = fpoison((size_t)B * T1 * C), *ob = fpoison((size_t)B * T2 * C);
        for (int b = 0; b < B; b++) {
            memcpy(qa + (size_t)b * T1 * 3 * C, qkv + (size_t)b * T * 3 * C, (size_t)T1 * 3 * C * 4);
            memcpy(qb + (size_t)b * T2 * 3 * C, qkv + ((size_t)b * T + T1) * 3 * C, (size_t)T2 * 3 * C * 4);
            pos0[b] = 0;
        }
        be->ops->attention_kv_forward(be, oa, qa, kc, vc, pos0, B, T1, S, C, NH);
        for (int b = 0; b < B; b++) pos0[b] = T1;
        be->ops->attention_kv_forward(be, ob, qb, kc, vc, pos0, B, T2, S, C, NH);
        for (int b = 0; b < B; b++) {
            memcpy(o2 + (size_t)b * T * C, oa + (size_t)b * T1 * C, (size_t)T1 * C * 4);
            memcpy(o2 + ((size_t)b * T + T1) * C, ob + (size_t)b * T2 * C, (size_t)T2 * C * 4);
        }
        check_fwd("KV prefill in two parts out", o2, ref, no);
        free(qa), free(qb), free(oa), free(ob);
    }
    memset(kc, 0, ncache * 4), memset(vc, 0, ncache * 4);
    float *step_qkv = malloc((size_t)B * 3 * C * 4), *step_out = fpoison((size_t)B * C);
    float *o3 = fpoison(no);
    for (int t = 0; t < T; t++) {
        for (int b = 0; b < B; b++) {
            memcpy(step_qkv + (size_t)b * 3 * C, qkv + ((size_t)b * T + t) * 3 * C, (size_t)3 * C * 4);
            pos0[b] = t;
        }
        be->ops->attention_kv_forward(be, step_out, step_qkv, kc, vc, pos0, B, 1, S, C, NH);
        for (int b = 0; b < B; b++)
            memcpy(o3 + ((size_t)b * T + t) * C, step_out + (size_t)b * C, (size_t)C * 4);
    }
    check_fwd("KV decode out", o3, ref, no);
    free(kc), free(vc), free(o2), free(pos0), free(step_qkv), free(step_out), free(o3);
}

static void test_attention(int B, int T, int C, int NH) {
    test_begin("attention forward/backward B=%d T=%d C=%d NH=%d", B, T, C, NH);
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C;
    float *qkv = frand(nq, 1.5), *out = fpoison(no), *lse = fpoison((size_t)B * NH * T);
    be->ops->attention_forward(be, out, lse, qkv, B, T, C, NH);
    att_ctx c = {B, T, C, NH};
    double *in[1] = {to_d(qkv, nq)}, *ref = malloc(no * sizeof(double));
    att_ref(&c, in, ref);
    check_fwd("attention out", out, ref, no);
    float *R = frand(no, 1), *dqkv = fpoison(nq);
    be->ops->attention_backward(be, dqkv, R, qkv, out, lse, B, T, C, NH);
    double *Rd = to_d(R, no);
    check_grad("attention dqkv", att_ref, &c, in, 0, nq, no, Rd, dqkv);

    kv_checks(qkv, ref, B, T, C, NH);
    test_end();
    free(qkv), free(out), free(lse), free(ref), free(R), free(dqkv), free(Rd), free(in[0]);
}

/* Longer caches than the training attention's scratch allows (T <= 40 in
 * this test's reserve()): the KV paths alone. */
static void test_attention_kv(int B, int T, int C, int NH) {
    test_begin("attention KV cache B=%d T=%d C=%d NH=%d", B, T, C, NH);
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C;
    float *qkv = frand(nq, 1.5);
    att_ctx c = {B, T, C, NH};
    double *in[1] = {to_d(qkv, nq)}, *ref = malloc(no * sizeof(double));
    att_ref(&c, in, ref);
    kv_checks(qkv, ref, B, T, C, NH);
    test_end();
    free(qkv), free(in[0]), free(ref);
}

/* -------------------------------------------------------- cross-entropy */

typedef struct {
    int N, V, Vp;
    const int *tgt;
} ce_ctx;

static void ce_ref(void *vc, double *const *in, double *out) { /* in: logits (N,Vp) -> losses (N) */
    ce_ctx *c = vc;
    for (int i = 0; i < c->N; i++) {
        const double *r = in[0] + (size_t)i * c->Vp;
        if (c->tgt[i] < 0 || c->tgt[i] >= c->V) {
            out[i] = 0;
            continue;
        }
        double mx = -1e300, s = 0;
        for (int j = 0; j < c->V; j++) mx = fmax(mx, r[j]);
        for (int j = 0; j < c->V; j++) s += exp(r[j] - mx);
        out[i] = mx + log(s) - r[c->tgt[i]];
    }
}

/* argmax: the first largest, NaN never winning (0 for a row of NaN),
 * padding past V ignored; with pos, hist[row, pos] = the id and pos += 1. */
static void test_argmax(int N, int V, int Vp) {
    test_begin("argmax N=%d V=%d Vp=%d", N, V, Vp);
    enum { S = 5 };
    float *l = frand((size_t)N * Vp, 3);
    for (int r = 0; r < N; r++) {
        float *row = l + (size_t)r * Vp;
        for (int j = V; j < Vp; j++) row[j] = 1e30f;
        if (r % 5 == 1) row[V / 3] = row[V - 1] = row[2 * V / 3] = 100.f; /* a tie */
        if (r % 5 == 2) row[0] = NAN, row[V / 2] = NAN, row[V - 1] = 50.f;
        if (r % 5 == 3)
            for (int j = 0; j < V; j++) row[j] = j % 3 ? -INFINITY : NAN; /* first -inf wins */
        if (r % 5 == 4)
            for (int j = 0; j < V; j++) row[j] = NAN;
    }
    int *got = malloc((size_t)N * sizeof(int)), *pos = malloc((size_t)N * sizeof(int));
    int *hist = malloc((size_t)N * S * sizeof(int));
    for (int r = 0; r < N; r++) pos[r] = r % 3 == 0 ? S : r % S; /* some outside the history */
    for (int i = 0; i < N * S; i++) hist[i] = -3;
    be->ops->argmax(be, got, l, N, V, Vp, pos, hist, S);
    for (int r = 0; r < N; r++) {
        const float *row = l + (size_t)r * Vp;
        int want = -1;
        for (int j = 0; j < V; j++)
            if (!isnan(row[j]) && (want < 0 || row[j] > row[want])) want = j;
        if (want < 0) want = 0;
        int p0 = r % 3 == 0 ? S : r % S;
        EXPECT(got[r] == want, "row %d: argmax %d, want %d", r, got[r], want);
        EXPECT(pos[r] == p0 + 1, "row %d: position %d, want %d", r, pos[r], p0 + 1);
        for (int p = 0; p < S; p++) {
            int w = p == p0 ? want : -3;
            EXPECT(hist[(size_t)r * S + p] == w, "row %d: history at %d is %d, want %d", r, p,
                   hist[(size_t)r * S + p], w);
        }
    }
    test_end();
    free(l), free(got), free(pos), free(hist);
}

static void test_crossentropy(int N, int V, int Vp) {
    test_begin("crossentropy forward/backward N=%d V=%d Vp=%d", N, V, Vp);
    int *tgt = malloc((size_t)N * sizeof(int));
    for (int i = 0; i < N; i++) tgt[i] = (int)gpt_rng_below(&rng, (uint64_t)V);
    tgt[N / 2] = -1; /* an ignored position */
    size_t nl = (size_t)N * Vp;
    float *logits = frand(nl, 4), *losses = fpoison(N);
    for (size_t i = 0; i < (size_t)N; i++)
        for (int j = V; j < Vp; j++) logits[i * Vp + j] = 1e3f; /* padding must not count */
    double *in[1] = {to_d(logits, nl)}, *ref = malloc((size_t)N * sizeof(double));
    ce_ctx c = {N, V, Vp, tgt};
    ce_ref(&c, in, ref);
    float dloss = 0.37f;
    be->ops->crossentropy(be, losses, logits, tgt, N, V, Vp, dloss, 1);
    check_fwd("losses", losses, ref, (size_t)N);
    double *R = malloc((size_t)N * sizeof(double));
    for (int i = 0; i < N; i++) R[i] = dloss;
    check_grad("dlogits", ce_ref, &c, in, 0, nl, (size_t)N, R, logits);
    int pad_zero = 1;
    for (int i = 0; i < N; i++)
        for (int j = V; j < Vp; j++) pad_zero &= logits[(size_t)i * Vp + j] == 0;
    EXPECT(pad_zero, "padding columns of the gradient must be zero");
    test_end();
    free(tgt), free(logits), free(losses), free(in[0]), free(ref), free(R);
}

/* ------------------------------------------------------------ encoder */

typedef struct {
    int B, T, C, Vp, maxT;
    const int *tok;
} enc_ctx;

static void enc_ref(void *vc, double *const *in, double *out) { /* in: wte, wpe */
    enc_ctx *c = vc;
    for (int b = 0; b < c->B; b++)
        for (int t = 0; t < c->T; t++)
            for (int k = 0; k < c->C; k++)
                out[((size_t)b * c->T + t) * c->C + k] =
                    in[0][(size_t)c->tok[b * c->T + t] * c->C + k] + in[1][(size_t)t * c->C + k];
}

static void test_encoder(int B, int T, int C, int Vp) {
    test_begin("encoder forward/backward B=%d T=%d C=%d Vp=%d", B, T, C, Vp);
    int maxT = T + 2;
    int *tok = malloc((size_t)B * T * sizeof(int));
    for (int i = 0; i < B * T; i++) tok[i] = (int)gpt_rng_below(&rng, 4); /* repeats on purpose */
    size_t nw = (size_t)Vp * C, np = (size_t)maxT * C, no = (size_t)B * T * C;
    float *wte = frand(nw, 1), *wpe = frand(np, 1), *out = fpoison(no);
    be->ops->encoder_forward(be, out, tok, NULL, wte, wpe, B, T, C, Vp, maxT);
    enc_ctx c = {B, T, C, Vp, maxT, tok};
    double *in[2] = {to_d(wte, nw), to_d(wpe, np)}, *ref = malloc(no * sizeof(double));
    enc_ref(&c, in, ref);
    check_fwd("encoder out", out, ref, no);
    float *R = frand(no, 1), *dwte = fzeros(nw), *dwpe = fzeros(np);
    be->ops->encoder_backward(be, dwte, dwpe, R, tok, B, T, C, Vp);
    double *Rd = to_d(R, no);
    check_grad("encoder dwte", enc_ref, &c, in, 0, nw, no, Rd, dwte);
    check_grad("encoder dwpe", enc_ref, &c, in, 1, np, no, Rd, dwpe);
    /* Out-of-range ids and positions give zero rows, not a crash. */
    int bad[2] = {-3, Vp + 5}, pos[1] = {maxT - 1};
    float *o2 = fpoison(2 * (size_t)C);
    be->ops->encoder_forward(be, o2, bad, NULL, wte, wpe, 1, 2, C, Vp, maxT);
    int zero = 1;
    for (int k = 0; k < 2 * C; k++) zero &= o2[k] == 0;
    EXPECT(zero, "out-of-range ids must give zero rows");
    be->ops->encoder_forward(be, o2, tok, pos, wte, wpe, 1, 2, C, Vp, maxT);
    zero = 1;
    for (int k = C; k < 2 * C; k++) zero &= o2[k] == 0; /* position maxT is out of range */
    EXPECT(zero, "positions past maxT must give zero rows");
    test_end();
    free(tok), free(wte), free(wpe), free(out), free(in[0]), free(in[1]), free(ref), free(R);
    free(dwte), free(dwpe), free(Rd), free(o2);
}

/* --------------------------------------------------------- AdamW, sums */

static void test_adamw(size_t n, size_t n_decay) {
    test_begin("adamw n=%zu n_decay=%zu (PyTorch's update, clipping, skip on NaN)", n, n_decay);
    float *p = frand(n, 1), *g = frand(n, 3), *m = frand(n, 0.1), *v = frand(n, 0.1);
    for (size_t i = 0; i < n; i++) v[i] = fabsf(v[i]);
    double *pd = to_d(p, n), *gd = to_d(g, n), *md = to_d(m, n), *vd = to_d(v, n);
    gpt_adamw_hyper h = {1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 1 - 0.9f * 0.9f, 1 - 0.95f * 0.95f};
    gpt_step_stats st = {1.0f, 0, 0, 0};
    be->ops->sumsq(be, &st.grad_sumsq, g, n);
    be->ops->adamw(be, p, NULL, g, m, v, n, n_decay, &h, &st);
    double norm = 0;
    for (size_t i = 0; i < n; i++) norm += gd[i] * gd[i];
    norm = sqrt(norm);
    double s = fmin(1.0, h.grad_clip / (norm + 1e-6));
    for (size_t i = 0; i < n; i++) {
        double gi = gd[i] * s;
        md[i] = 0.9 * md[i] + 0.1 * gi;
        vd[i] = 0.95 * vd[i] + 0.05 * gi * gi;
        if (i < n_decay) pd[i] *= 1 - (double)h.lr * h.weight_decay;
        pd[i] -= h.lr / h.bias_corr1 * md[i] / (sqrt(vd[i]) / sqrt((double)h.bias_corr2) + h.eps);
    }
    EXPECT(fabs(st.grad_norm - norm) <= 1e-6 * norm, "norm %.8g vs %.8g", st.grad_norm, norm);
    EXPECT(st.skipped == 0, "skipped %g", st.skipped);
    check_fwd("params", p, pd, n);
    check_fwd("m", m, md, n);
    check_fwd("v", v, vd, n);
    int zero = 1;
    for (size_t i = 0; i < n; i++) zero &= g[i] == 0;
    EXPECT(zero, "gradients must be zeroed");
    /* A non-finite loss skips the update and still zeroes the gradients. */
    float *p2 = malloc(n * 4), *m2 = malloc(n * 4), *v2 = malloc(n * 4);
    memcpy(p2, p, n * 4), memcpy(m2, m, n * 4), memcpy(v2, v, n * 4);
    for (size_t i = 0; i < n; i++) g[i] = 1;
    st.loss_sum = NAN;
    be->ops->sumsq(be, &st.grad_sumsq, g, n);
    be->ops->adamw(be, p, NULL, g, m, v, n, n_decay, &h, &st);
    EXPECT(st.skipped == 1, "a NaN loss must skip the update");
    EXPECT(!memcmp(p, p2, n * 4) && !memcmp(m, m2, n * 4) && !memcmp(v, v2, n * 4),
           "a skipped update must leave parameters and moments untouched");
    /* A non-finite gradient does too. */
    st.loss_sum = 1;
    g[n / 2] = INFINITY;
    be->ops->sumsq(be, &st.grad_sumsq, g, n);
    be->ops->adamw(be, p, NULL, g, m, v, n, n_decay, &h, &st);
    EXPECT(st.skipped == 1 && !memcmp(p, p2, n * 4), "an infinite gradient must skip the update");
    test_end();
    free(p), free(g), free(m), free(v), free(pd), free(gd), free(md), free(vd), free(p2), free(m2);
    free(v2);
}

static void test_sumsq(size_t n) {
    test_begin("sumsq n=%zu", n);
    float *x = frand(n, 1), out[2] = {5, 5};
    double ref = 0;
    for (size_t i = 0; i < n; i++) ref += (double)x[i] * x[i];
    be->ops->sumsq(be, out, x, n);
    be->ops->sumsq(be, out + 1, x, n);
    /* accumulated in double: only the final rounding to fp32 */
    EXPECT(fabs(out[0] - ref) <= 1e-7 * ref, "sumsq %.9g vs %.9g", out[0], ref);
    EXPECT(out[0] == out[1], "two calls gave %.9g and %.9g", out[0], out[1]);
    test_end();
    free(x);
}

static void test_sum(size_t n) {
    test_begin("sum_f32 n=%zu", n);
    float *x = frand(n, 1), out[2] = {5, 0};
    double ref = 0;
    for (size_t i = 0; i < n; i++) ref += x[i];
    be->ops->sum_f32(be, out, x, n, 0);
    EXPECT(fabs(out[0] - ref) <= 1e-5 * (fabs(ref) + 1), "sum %.8g vs %.8g", out[0], ref);
    be->ops->sum_f32(be, out, x, n, 1);
    EXPECT(fabs(out[0] - 2 * ref) <= 1e-5 * (fabs(ref) + 1), "accumulated %.8g", out[0]);
    long bad = be->ops->nonfinite_count(be, x, n, GPT_CLS_F32);
    x[n - 1] = NAN;
    x[0] = -INFINITY;
    EXPECT(bad == 0 && be->ops->nonfinite_count(be, x, n, GPT_CLS_F32) == 2, "nonfinite_count");
    test_end();
    free(x);
}

/* add against fp32 sums (exact: one rounding either way), in place too;
 * the folded decoding products against the separate ops they stand for
 * (bitwise: the CPU runs exactly those ops). */
static void test_add_and_folds(int N, int IC, int OC) {
    test_begin("add, matmul_ln_forward, matmul_residual_forward N=%d IC=%d OC=%d", N, IC, OC);
    size_t no = (size_t)N * OC, nx = (size_t)N * IC;
    float *a = frand(no, 3), *b = frand(no, 3), *out = fpoison(no);
    be->ops->add(be, out, a, b, no);
    int same = 1;
    for (size_t i = 0; i < no; i++) same &= out[i] == a[i] + b[i];
    be->ops->add(be, a, a, b, no);
    EXPECT(same && !memcmp(a, out, no * 4), "add differs from a + b");
    const gpt_backend_ops *o = be->ops;
    EXPECT(o->matmul_ln_forward && o->matmul_residual_forward, "the CPU backend has both folds");
    float *x = frand(nx, 2), *lnw = frand(IC, 1), *lnb = frand(IC, 1), *w = frand((size_t)OC * IC, 0.5);
    float *bias = frand(OC, 1), *ln = fpoison(nx), *want = fpoison(no), *wpre = fpoison(no);
    float *got = fpoison(no), *pre = fpoison(no);
    for (int gelu = 0; gelu < 2 && o->matmul_ln_forward; gelu++) {
        o->layernorm_forward(be, ln, NULL, NULL, x, lnw, lnb, N, IC, 1e-5f);
        o->matmul_forward(be, want, gelu ? wpre : NULL, ln, w, bias, N, IC, OC, gelu);
        EXPECT(o->matmul_ln_forward(be, got, gelu ? pre : NULL, x, lnw, lnb, 1e-5f, w, bias, N, IC,
                                    OC, gelu) == 1, "matmul_ln_forward declined");
        EXPECT(!memcmp(got, want, no * 4) && (!gelu || !memcmp(pre, wpre, no * 4)),
               "matmul_ln_forward (gelu %d) differs from layernorm + matmul", gelu);
    }
    if (o->matmul_residual_forward) {
        float *res = frand(no, 2), *y = fpoison(no);
        float *in = frand(nx, 1);
        memcpy(want, res, no * 4);
        o->matmul_forward(be, y, NULL, in, w, bias, N, IC, OC, 0);
        o->add(be, want, want, y, no);
        EXPECT(o->matmul_residual_forward(be, res, in, w, bias, N, IC, OC) == 1,
               "matmul_residual_forward declined");
        EXPECT(!memcmp(res, want, no * 4), "matmul_residual_forward differs from matmul + add");
        free(res), free(y), free(in);
    }
    test_end();
    free(a), free(b), free(out), free(x), free(lnw), free(lnb), free(w), free(bias), free(ln);
    free(want), free(wpre), free(got), free(pre);
}

/* bf16 rounding to nearest even, as the bf16 kernels pack their inputs. */
static double rbf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1)) & 0xffff0000u;
    memcpy(&x, &u, 4);
    return x;
}

/* C (M, N) = A (M, K) B (K, N) in float64, k in order, A and B stored
 * transposed where ta, tb say; with bf the inputs rounded to bf16 first,
 * as the bf16 kernels see them. */
static void ref_gemm(double *C, const float *A, const float *Bm, int M, int N, int K, int ta, int tb,
                     int bf) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                float a = ta ? A[(size_t)k * M + i] : A[(size_t)i * K + k];
                float b = tb ? Bm[(size_t)j * K + k] : Bm[(size_t)k * N + j];
                s += bf ? rbf16(a) * rbf16(b) : (double)a * b;
            }
            C[(size_t)i * N + j] = s;
        }
}

/* Every matrix-product kernel this machine can run (the portable C ones
 * always; AVX2, AVX-512, AVX512-BF16 or NEON where the CPU has them), in
 * the four transpose cases, with alpha and accumulation, against a float64
 * loop. Shapes cover edge tiles, odd K (bf16 pairs), several K blocks
 * (KC = 256) and several tiles (tasks on the pool). fp32 kernels: 1e-5
 * scaled error as every fp32 op. bf16 kernels round A and B to bf16 and
 * multiply exactly in fp32, so against a float64 reference on the same
 * rounded inputs they get the same fp32 bound; against the unrounded
 * inputs, each product is off by up to 2 * 2^-9 relative (two roundings),
 * random in sign, so a sum's scaled error stays under ~2^-8 = 4e-3. */
static int g_amx_ran; /* the AMX kernel itself (not its emulation) ran */

static void test_gemm_kernels(int M, int N, int K) {
    const gemm_kernel *ks[] = {&cpu_gemm_kernel_c,       &cpu_gemm_kernel_avx2,
                               &cpu_gemm_kernel_avx512,  &cpu_gemm_kernel_neon,
                               &cpu_gemm_kernel_bf16_c,  &cpu_gemm_kernel_avx512_bf16,
                               &cpu_gemm_kernel_amx_emul, &cpu_gemm_kernel_amx};
    const cpu_features *f = cpu_features_get();
    /* AMX only where the dispatch chose it (CPUID and Linux's permission);
     * its emulation everywhere: the packing and the kernel's addressing. */
    int runs[] = {1, f->isa >= CPU_ISA_AVX2 && f->isa != CPU_ISA_NEON, f->isa == CPU_ISA_AVX512,
                  f->isa == CPU_ISA_NEON, 1, f->avx512_bf16, 1,
                  cpu_gemm_kernel_bf16() == &cpu_gemm_kernel_amx};
    for (int ki = 0; ki < 8; ki++) {
        if (!runs[ki] || !ks[ki]->kern) continue;
        int bf = ks[ki]->pairs;
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int acc = ta ^ tb;
                test_begin("gemm %s M=%d N=%d K=%d transA=%d transB=%d acc=%d", ks[ki]->name, M,
                           N, K, ta, tb, acc);
                float *A = frand((size_t)M * K, 1), *Bm = frand((size_t)K * N, 1);
                float *Cm = frand((size_t)M * N, 1);
                float *C0 = malloc((size_t)M * N * sizeof(float));
                memcpy(C0, Cm, (size_t)M * N * sizeof(float));
                double *ref = malloc((size_t)M * N * sizeof(double));
                double *exact = malloc((size_t)M * N * sizeof(double));
                double scale = 0; /* the largest |0.5 sum a b| or |0.5 a b| of an output */
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) {
                        double s = 0, e = 0;
                        for (int k = 0; k < K; k++) {
                            float a = ta ? A[(size_t)k * M + i] : A[(size_t)i * K + k];
                            float b = tb ? Bm[(size_t)j * K + k] : Bm[(size_t)k * N + j];
                            s += bf ? rbf16(a) * rbf16(b) : (double)a * b;
                            e += (double)a * b;
                            if (fabs(0.5 * a * b) > scale) scale = fabs(0.5 * a * b);
                        }
                        double c0 = acc ? Cm[(size_t)i * N + j] : 0;
                        ref[(size_t)i * N + j] = 0.5 * s + c0;
                        exact[(size_t)i * N + j] = 0.5 * e + c0;
                        if (fabs(0.5 * e) > scale) scale = fabs(0.5 * e);
                    }
                cpu_gemm_with(ks[ki], M, N, K, 0.5f, A, ta ? 1 : K, ta ? M : 1, Bm, tb ? 1 : N,
                              tb ? K : 1, Cm, N, acc);
                check_fwd("C", Cm, ref, (size_t)M * N);
                if (bf) {
                    /* bf16 keeps 8 significant bits: rounding an input to
                     * nearest moves it by up to u = 2^-8 relative, so one
                     * product (K = 1) may be off by 2u + u^2 = 7.8e-3 of its
                     * size; longer sums average the roundings out. The
                     * error is the products' alone (C is added exactly,
                     * then rounded to fp32: the 1e-6 term), so it is scaled
                     * by the products' sums, or the largest product, not by
                     * the outputs, which an accumulated C can cancel. */
                    double d = 0, refmax = dmax_abs(exact, (size_t)M * N);
                    for (size_t i = 0; i < (size_t)M * N; i++)
                        if (fabs(Cm[i] - exact[i]) > d) d = fabs(Cm[i] - exact[i]);
                    EXPECT(d <= 8e-3 * scale + 1e-6 * refmax,
                           "bf16 against unrounded inputs: error %.3g, bound %.3g", d,
                           8e-3 * scale + 1e-6 * refmax);
                }
                if (ks[ki] == &cpu_gemm_kernel_amx) {
                    /* For the record (both are bounded above): how far the
                     * tiles' sums are from the emulation's SDM order. */
                    g_amx_ran = 1;
                    cpu_gemm_with(&cpu_gemm_kernel_amx_emul, M, N, K, 0.5f, A, ta ? 1 : K,
                                  ta ? M : 1, Bm, tb ? 1 : N, tb ? K : 1, C0, N, acc);
                    size_t diff = 0;
                    for (size_t i = 0; i < (size_t)M * N; i++) diff += memcmp(C0 + i, Cm + i, 4) != 0;
                    printf("     AMX against its emulation: %zu of %zu values differ in some bit\n",
                           diff, (size_t)M * N);
                }
                free(C0);
                test_end();
                free(A), free(Bm), free(Cm), free(ref), free(exact);
            }
    }
}

/* A long K with both operands repeated across tiles and too large to
 * share, and a C too large for a K split's partials: both operands are
 * packed once per pass over K. With the limits lowered, a small product
 * takes that path; it must give the float64 result and the same bits as
 * the product packed one operand at a time (the same K blocks added in the
 * same order). */
static void test_gemm_passes(int M, int N, int K, size_t limit) {
    const gemm_kernel *ks[] = {&cpu_gemm_kernel_c, cpu_gemm_kernel(), cpu_gemm_kernel_bf16(),
                               &cpu_gemm_kernel_amx_emul};
    for (int ki = 0; ki < 4; ki++) {
        test_begin("gemm in K passes %s M=%d N=%d K=%d limit=%zu", ks[ki]->name, M, N, K, limit);
        float *A = frand((size_t)M * K, 1), *Bm = frand((size_t)K * N, 1);
        float *C1 = calloc((size_t)M * N, sizeof(float)), *C2 = calloc((size_t)M * N, sizeof(float));
        double *ref = malloc((size_t)M * N * sizeof(double));
        ref_gemm(ref, A, Bm, M, N, K, 0, 0, ks[ki]->pairs);
        cpu_gemm_with(ks[ki], M, N, K, 1.0f, A, K, 1, Bm, N, 1, C1, N, 0);
        cpu_gemm_shared_limit(limit, 1); /* no K split */
        cpu_gemm_with(ks[ki], M, N, K, 1.0f, A, K, 1, Bm, N, 1, C2, N, 0);
        cpu_gemm_shared_limit(0, 0);
        check_fwd("C", C2, ref, (size_t)M * N);
        size_t diff = 0;
        for (size_t i = 0; i < (size_t)M * N; i++) diff += memcmp(C1 + i, C2 + i, 4) != 0;
        EXPECT(diff == 0, "%zu of %d values differ from one shared operand", diff, M * N);
        test_end();
        free(A), free(Bm), free(C1), free(C2), free(ref);
    }
}

/* The same shape of problem with a small C (the LM head's input gradient):
 * K cut into chunks summed separately, then added in chunk order. With the
 * shared limit lowered a small product takes that path, in every
 * transpose case (each packs another way), with C added to or not; it
 * must give the float64 result and the same bits on 1, 2 and 3 threads
 * (the chunks follow from the shape, not from the threads). */
static void test_gemm_ksplit(int M, int N, int K, size_t limit, size_t parts) {
    const gemm_kernel *ks[] = {&cpu_gemm_kernel_c, cpu_gemm_kernel(), cpu_gemm_kernel_bf16(),
                               &cpu_gemm_kernel_amx_emul};
    for (int ki = 0; ki < 4; ki++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int acc = ta ^ tb, bf = ks[ki]->pairs;
                test_begin("gemm split over K %s M=%d N=%d K=%d limits %zu %zu transA=%d "
                           "transB=%d acc=%d", ks[ki]->name, M, N, K, limit, parts, ta, tb, acc);
                float *A = frand((size_t)M * K, 1), *Bm = frand((size_t)K * N, 1);
                float *C0 = frand((size_t)M * N, 1), *C[3];
                double *ref = malloc((size_t)M * N * sizeof(double));
                ref_gemm(ref, A, Bm, M, N, K, ta, tb, bf);
                for (size_t i = 0; i < (size_t)M * N; i++) ref[i] = 0.5 * ref[i] + (acc ? C0[i] : 0);
                cpu_gemm_shared_limit(limit, parts);
                for (int t = 0; t < 3; t++) {
                    C[t] = malloc((size_t)M * N * sizeof(float));
                    memcpy(C[t], C0, (size_t)M * N * sizeof(float));
                    cpu_pool_acquire(t + 1);
                    cpu_gemm_with(ks[ki], M, N, K, 0.5f, A, ta ? 1 : K, ta ? M : 1, Bm,
                                  tb ? 1 : N, tb ? K : 1, C[t], N, acc);
                    cpu_pool_release();
                }
                cpu_gemm_shared_limit(0, 0);
                cpu_pool_acquire(2), cpu_pool_release(); /* back to the backend's two */
                check_fwd("C", C[1], ref, (size_t)M * N);
                for (int t = 0; t < 3; t += 2) {
                    size_t diff = 0;
                    for (size_t i = 0; i < (size_t)M * N; i++) diff += memcmp(C[1] + i, C[t] + i, 4) != 0;
                    EXPECT(diff == 0, "%zu of %d values differ between 2 and %d threads", diff,
                           M * N, t + 1);
                }
                test_end();
                free(A), free(Bm), free(C0), free(C[0]), free(C[1]), free(C[2]), free(ref);
            }
}

/* A linear layer's backward pair in one pass over a long OC (the LM
 * head): the same bits as din and dw computed apart (din split over K in
 * the same chunks, each dw value summed over the same blocks), with dw
 * added to, on 1 and 3 threads as on 2. */
static void test_gemm_backward_pair(int N, int IC, int OC, size_t limit) {
    const gemm_kernel *ks[] = {&cpu_gemm_kernel_c, cpu_gemm_kernel(), cpu_gemm_kernel_bf16(),
                               &cpu_gemm_kernel_amx_emul};
    for (int ki = 0; ki < 4; ki++) {
        test_begin("backward pair %s N=%d IC=%d OC=%d limit=%zu", ks[ki]->name, N, IC, OC, limit);
        float *dout = frand((size_t)N * OC, 1), *in = frand((size_t)N * IC, 1);
        float *w = frand((size_t)OC * IC, 1), *dw0 = frand((size_t)OC * IC, 1);
        size_t nw = (size_t)OC * IC * sizeof(float), nd = (size_t)N * IC * sizeof(float);
        float *din1 = malloc(nd), *dw1 = malloc(nw), *din2 = malloc(nd), *dw2 = malloc(nw);
        memcpy(dw1, dw0, nw);
        cpu_gemm_shared_limit(limit, 0);
        cpu_gemm_with(ks[ki], N, IC, OC, 1.0f, dout, OC, 1, w, IC, 1, din1, IC, 0);
        cpu_gemm_with(ks[ki], OC, IC, N, 1.0f, dout, 1, OC, in, IC, 1, dw1, IC, 1);
        for (int t = 1; t <= 3; t++) {
            memcpy(dw2, dw0, nw);
            cpu_pool_acquire(t);
            cpu_gemm_backward(ks[ki], N, IC, OC, dout, in, w, din2, dw2);
            cpu_pool_release();
            size_t dd = 0, dwd = 0;
            for (size_t i = 0; i < (size_t)N * IC; i++) dd += memcmp(din1 + i, din2 + i, 4) != 0;
            for (size_t i = 0; i < (size_t)OC * IC; i++) dwd += memcmp(dw1 + i, dw2 + i, 4) != 0;
            EXPECT(dd == 0 && dwd == 0, "%d threads: %zu din and %zu dw values differ", t, dd, dwd);
        }
        cpu_gemm_shared_limit(0, 0);
        cpu_pool_acquire(2), cpu_pool_release();
        /* and the pair is right: din against float64 */
        double *ref = malloc((size_t)N * IC * sizeof(double));
        ref_gemm(ref, dout, w, N, IC, OC, 0, 0, ks[ki]->pairs);
        check_fwd("din", din2, ref, (size_t)N * IC);
        test_end();
        free(dout), free(in), free(w), free(dw0), free(din1), free(dw1), free(din2), free(dw2);
        free(ref);
    }
}

int main(void) {
    gpt_error err;
    gpt_runtime rt = {0};
    rt.device = "cpu";
    rt.threads = 2; /* the pool's tasks run on two threads even on one core */
    rt.precision = GPT_PREC_FP32; /* the fp32 reference (bf16 products: test_gemm_kernels) */
    if (gpt_backend_create(&be, &rt, &err)) {
        printf("FAIL create CPU backend: %s\n0 passed, 1 failed\n", err.msg);
        return 1;
    }
    /* maxT 128: prefill's blocks of 64 queries over up to 128 positions
     * fit the scratch (the KV cases below reach 99) */
    gpt_shape s = {4, 40, 100, 5, 400, 1000, 1024, 2, 128, 1, 0, 0, 0};
    be->ops->reserve(be, &s);
    gpt_rng_seed(&rng, 42);
    struct {
        int N, C;
    } ln[] = {{7, 12}, {1, 1}, {13, 37}, {3, 100}};
    for (size_t i = 0; i < sizeof ln / sizeof ln[0]; i++) test_layernorm(ln[i].N, ln[i].C);
    struct {
        int N, IC, OC, bias, gelu;
    } mm[] = {{7, 12, 36, 1, 0}, {7, 12, 36, 1, 1}, {5, 48, 12, 1, 1}, {3, 12, 37, 0, 0},
              {1, 5, 3, 1, 0},   {9, 17, 11, 0, 1}};
    for (size_t i = 0; i < sizeof mm / sizeof mm[0]; i++)
        test_matmul(mm[i].N, mm[i].IC, mm[i].OC, mm[i].bias, mm[i].gelu);
    struct {
        int B, T, C, NH;
    } at[] = {{2, 7, 12, 3}, {1, 1, 4, 2}, {3, 5, 10, 5}, {1, 13, 9, 1}, {2, 37, 20, 5}};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) test_attention(at[i].B, at[i].T, at[i].C, at[i].NH);
    /* decoding reads the cache in chunks of CPU_KV_CHUNK (32) positions:
     * two full chunks and one of a single position; three full chunks at
     * HS = 16 (dot16's vector loop alone). Prefill takes blocks of
     * CPU_KV_QBLOCK (64) queries: 64 + 1 and 64 + 32 here, and in two
     * parts 21 + 44 and 32 + 64 */
    test_attention_kv(1, 65, 12, 3);
    test_attention_kv(2, 96, 32, 2);
    test_argmax(10, 1000, 1024); /* V a multiple of the lanes (32) */
    test_argmax(10, 1001, 1001); /* and not */
    test_argmax(5, 7, 8);        /* shorter than the lanes */
    test_crossentropy(7, 37, 40);
    test_crossentropy(3, 5, 5);
    test_crossentropy(4, 64, 128);
    test_encoder(2, 7, 12, 37);
    test_encoder(1, 3, 5, 4);
    test_sumsq(100003);
    test_adamw(1000, 600);
    test_adamw(37, 0);
    test_sum(12345);
    test_add_and_folds(3, 100, 37); /* N * IC within reserve()'s B x C fold rows */
    test_add_and_folds(1, 12, 100);
    test_gemm_kernels(7, 13, 5);
    test_gemm_kernels(33, 9, 70);
    test_gemm_kernels(1, 1, 1);
    test_gemm_kernels(5, 3, 0);
    test_gemm_kernels(300, 70, 600);
    test_gemm_kernels(20, 40, 257);
    test_gemm_kernels(40, 700, 300); /* A packed once for all tiles */
    test_gemm_kernels(64, 64, 64);   /* whole AMX blocks, no edges, no K padding */
    test_gemm_kernels(600, 40, 520); /* B packed once for all tiles; K tail of 8 */
    /* Neither operand's K blocks fit 90,000 floats whole, both of one K
     * block do: passes of one K block (and a tail of 220). */
    test_gemm_passes(64, 256, 1500, 90000);
    test_gemm_passes(64, 256, 2700, 170000); /* passes of 2 K blocks, a tail of 140 */
    test_gemm_ksplit(40, 72, 1301, 30000, 0); /* 6 K blocks, 6 chunks, an odd tail */
    test_gemm_ksplit(40, 72, 1301, 30000, 20000); /* 2 or 3 blocks a chunk, 4-10 tiles */
    test_gemm_backward_pair(40, 72, 1301, 30000); /* N, IC with edges, 6 blocks of OC */
    test_gemm_backward_pair(300, 40, 900, 60000); /* N over one K block of dw */
    printf("# bf16 products on this machine: %s\n", cpu_gemm_kernel_bf16()->name);
    test_require_amx("test_ops_grad's products",
                     g_amx_ran ? cpu_gemm_kernel_amx.name : cpu_gemm_kernel_bf16()->name);
    gpt_backend_destroy(be);
    return test_summary();
}
