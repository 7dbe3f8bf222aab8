/*
 * test_q8_ops.c - int8 weight-only quantisation (src/quant.c) and the
 * CPU's int8 products (src/cpu/cpu_q8*.c), every kernel this CPU can run:
 *
 *  - fp16 scales: every one of the 65,536 fp16 values converts exactly,
 *    and rounding up lands on the next value, never below;
 *  - quantising: every weight within half its block's scale, padding zero,
 *    the checks that guard files refusing each kind of damage;
 *  - each kernel against the exact sum (double) of the same int8 values:
 *    only fp32 rounding may differ (bound below);
 *  - a kernel's own quantisation of activations against the portable one:
 *    the same quants and scales, bit for bit, and its block sums;
 *  - the backend op (activations quantised too, bias, GELU) against the
 *    fp32 product, within the worst case that the two quantisations allow.
 *
 * Shapes include inputs that are not a multiple of 32 (padded blocks), of
 * 64 (a half vector for AVX-512), and batch rows that are not a multiple of
 * the kernels' four.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cpu/cpu_q8.h"
#include "quant.h"
#include "test.h"
#include "util.h"

static gpt_rng rng;

/* Weights or activations with heavy tails: mostly N(0, s), one in 50 ten
 * times larger (as trained matrices and layernorm outputs have), and some
 * exact zeros, so that blocks have very different scales. */
static float *heavy(size_t n, float s) {
    float *x = malloc(n * sizeof(float) + 4);
    for (size_t i = 0; i < n; i++) {
        float u = gpt_rng_float(&rng);
        x[i] = u < 0.02f ? 10 * s * gpt_rng_normal(&rng) : u < 0.05f ? 0.0f : s * gpt_rng_normal(&rng);
    }
    return x;
}

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static void test_f16(void) {
    test_begin("fp16 scales: all 65,536 values exact; rounding up lands on the next value");
    int bad = 0;
    for (uint32_t h = 0; h < 0x7C00 && bad < 5; h++) {
        float f = gpt_f16_to_f32((uint16_t)h);
        /* the value itself maps to itself */
        if (gpt_f32_to_f16_up(f) != (h ? h : 0)) {
            EXPECT(0, "0x%04x -> %g -> 0x%04x", h, (double)f, gpt_f32_to_f16_up(f));
            bad++;
        }
        /* anything strictly between h and h+1 rounds up to h+1 */
        float next = gpt_f16_to_f32((uint16_t)(h + 1));
        float mid = f + (next - f) * 0.25f;
        if (mid > f && mid < next && gpt_f32_to_f16_up(mid) != h + 1) {
            EXPECT(0, "%g (between 0x%04x and 0x%04x) -> 0x%04x", (double)mid, h, h + 1,
                   gpt_f32_to_f16_up(mid));
            bad++;
        }
        if (gpt_f16_to_f32((uint16_t)(h | 0x8000)) != -f) bad++;
    }
    EXPECT(gpt_f16_to_f32(0x3C00) == 1.0f && gpt_f16_to_f32(0x7BFF) == 65504.0f &&
               gpt_f16_to_f32(0x0001) == ldexpf(1, -24) && gpt_f16_to_f32(0x0400) == ldexpf(1, -14),
           "known values");
    EXPECT(isinf(gpt_f16_to_f32(0x7C00)) && isnan(gpt_f16_to_f32(0x7E00)), "inf, NaN");
    EXPECT(gpt_f32_to_f16_up(65504.5f) == 0x7C00 && gpt_f32_to_f16_up(1e-30f) == 0x0001,
           "beyond the largest: inf; below the smallest: the smallest");
    test_end();
}

static void test_quantize(int rows, int cols) {
    test_begin("quantise (%d, %d): |w - d q| <= d/2, padding 0, check accepts", rows, cols);
    float *w = heavy((size_t)rows * cols, 0.05f);
    size_t K = gpt_q8_cols(cols), nb = K / 32, bytes = gpt_q8_bytes(rows, cols);
    unsigned char *q = malloc(bytes);
    float *back = malloc((size_t)rows * cols * sizeof(float));
    gpt_error err = {0};
    EXPECT(gpt_q8_quantize(q, w, rows, cols, "w", &err) == 0, "%s", err.msg);
    gpt_q8_dequantize(back, q, rows, cols);
    double worst = 0; /* |w - d q| / d, which must stay <= 1/2 */
    int pad_ok = 1, scale_ok = 1;
    for (int r = 0; r < rows; r++) {
        for (size_t b = 0; b < nb; b++) {
            float d = gpt_f16_to_f32(rd16(q + (size_t)rows * K + ((size_t)r * nb + b) * 2));
            float amax = 0;
            for (size_t c = b * 32; c < b * 32 + 32 && c < (size_t)cols; c++) {
                amax = fmaxf(amax, fabsf(w[(size_t)r * cols + c]));
                double e = fabs((double)w[(size_t)r * cols + c] - back[(size_t)r * cols + c]);
                double rel = d > 0 ? e / d : e != 0 ? INFINITY : 0;
                if (rel > worst) worst = rel;
            }
            /* the smallest fp16 at or above amax / 127 */
            if (d < amax / 127 || (d > 0 && gpt_f16_to_f32(rd16(q + (size_t)rows * K + ((size_t)r * nb + b) * 2) - 1) >= amax / 127))
                scale_ok = 0;
        }
        for (size_t c = (size_t)cols; c < K; c++)
            if (q[(size_t)r * K + c]) pad_ok = 0;
    }
    /* d q and w / d are each rounded once in fp32 (relative 6e-8 of |w| <= 127 d) */
    EXPECT(worst <= 0.5 + 127 * 2.4e-7, "worst |w - d q| / d = %.9f", worst);
    EXPECT(pad_ok, "padding quants are 0");
    EXPECT(scale_ok, "each scale is the smallest fp16 >= max|w| / 127");
    char why[200];
    EXPECT(gpt_q8_check(q, rows, cols, why, sizeof why) == 0, "%s", why);
    free(w);
    free(q);
    free(back);
    test_end();
}

static void test_check_refuses(void) {
    test_begin("check refuses -128, non-zero padding, negative, infinite and NaN scales");
    int rows = 3, cols = 40; /* K = 64: 24 padding quants a row */
    float *w = heavy((size_t)rows * cols, 1);
    size_t K = gpt_q8_cols(cols), bytes = gpt_q8_bytes(rows, cols);
    unsigned char *q = malloc(bytes), *bad = malloc(bytes);
    gpt_error err = {0};
    gpt_q8_quantize(q, w, rows, cols, "w", &err);
    char why[200];
    struct {
        size_t at;
        unsigned char v0, v1;
        const char *what;
    } cases[] = {
        {K + 5, 0x80, 0, "a quant of -128"},
        {2 * K + 50, 1, 0, "a non-zero padding quant"},
        {(size_t)rows * K + 2 * 2 + 1, 0xBC, 0, "a negative scale"},
        {(size_t)rows * K + 0 + 1, 0x7C, 0, "an infinite scale"},
        {(size_t)rows * K + 3 * 2, 0x01, 0x7E, "a NaN scale"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(bad, q, bytes);
        bad[cases[i].at] = cases[i].v0;
        if (cases[i].v1) bad[cases[i].at + 1] = cases[i].v1;
        EXPECT(gpt_q8_check(bad, rows, cols, why, sizeof why) != 0, "%s accepted", cases[i].what);
    }
    float big[32] = {3e7f};
    EXPECT(gpt_q8_quantize(q, big, 1, 32, "w", &err) == GPT_ERR_INVALID && strstr(err.msg, "fp16"),
           "a weight beyond fp16 scales is refused: %s", err.msg);
    float nan_w[32] = {NAN};
    EXPECT(gpt_q8_quantize(q, nan_w, 1, 32, "w", &err) == GPT_ERR_INVALID, "NaN refused");
    free(w);
    free(q);
    free(bad);
    test_end();
}

/* One kernel against the exact sum of the same integers: y = sum over
 * blocks of dw * dx * s (s an exact int32). A kernel may split a block's
 * sum over vector lanes and scale each lane in fp32; it adds at most
 * nb + 16 fp32 terms (blocks, and the lanes at the end) and rounds each
 * scale product once, so with u = 2^-24 its error is at most about
 * (nb + 18) u times sum |dw dx qw qx| (lane sums are bounded by the sum
 * of their products' magnitudes); we allow (nb + 32) u. A wrong block
 * scale or a lost block is off by a whole term. */
static void test_kernel(const cpu_q8_kernel *k, int N, int IC, int OC) {
    test_begin("kernel %-12s N=%-2d IC=%-4d OC=%-3d against the exact sum", k->name, N, IC, OC);
    float *w = heavy((size_t)OC * IC, 0.05f), *x = heavy((size_t)N * IC, 1);
    void *wq = malloc(gpt_q8_bytes(OC, IC));
    gpt_error err = {0};
    gpt_q8_quantize(wq, w, OC, IC, "w", &err);
    void *scratch = malloc(cpu_q8_act_bytes(N, IC));
    cpu_q8_act a;
    cpu_q8_quantize_act(&a, scratch, x, N, IC, k);
    float *y = malloc((size_t)N * OC * sizeof(float));
    for (size_t i = 0; i < (size_t)N * OC; i++) y[i] = NAN;
    cpu_q8_matmul(k, y, &a, wq, OC, NULL, NULL);
    size_t K = a.K, nb = K / 32;
    const int8_t *qw = wq;
    const unsigned char *dw = (const unsigned char *)wq + (size_t)OC * K;
    double worst = 0;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double exact = 0, mag = 0;
            for (size_t b = 0; b < nb; b++) {
                long s = 0, sa = 0;
                for (size_t c = b * 32; c < b * 32 + 32; c++) {
                    int xv = k->x_u8 ? (int)(uint8_t)a.q[(size_t)n * K + c] - 128 : a.q[(size_t)n * K + c];
                    s += (long)qw[(size_t)o * K + c] * xv;
                    sa += labs((long)qw[(size_t)o * K + c] * xv);
                }
                double sc = (double)gpt_f16_to_f32(rd16(dw + ((size_t)o * nb + b) * 2)) * a.d[(size_t)n * nb + b];
                exact += sc * (double)s;
                mag += fabs(sc) * (double)sa;
            }
            double e = fabs(y[(size_t)n * OC + o] - exact) / ((nb + 32) * ldexp(1, -24) * mag + 1e-30);
            if (!(e <= worst)) worst = e;
        }
    EXPECT(worst <= 1, "error / bound = %g", worst);
    free(w);
    free(x);
    free(wq);
    free(scratch);
    free(y);
    test_end();
}

/* A kernel's own quantisation of activations (quant_row) against the
 * portable one (the "c" kernel's): the same quants and scales bit for bit,
 * and xs the 64 x block sums of those quants in CPU_Q8_XS_ORDER. The rows
 * hold what the portable code defines: a NaN (passed over by the maximum,
 * quantised to 0), an Inf (its row's other quants 0), an all-zero block,
 * ties (x / d = k + 1/2, rounded to even) and a partial last block. */
static void test_quant_row(const cpu_q8_kernel *k, const cpu_q8_kernel *c, int IC) {
    test_begin("kernel %-12s quantises %d activations as the portable code does", k->name, IC);
    int N = 3;
    float *x = heavy((size_t)N * IC, 1);
    x[5] = NAN;                                  /* row 0, block 0 */
    if (IC > 64) x[IC + 40] = INFINITY;          /* row 1, block 1 */
    for (int i = 0; i < 32 && 64 + i < IC; i++) x[2 * IC + 32 + i] = 0; /* row 2, block 1: zeros */
    x[2 * IC + 0] = 127, x[2 * IC + 1] = 2.5f, x[2 * IC + 2] = 3.5f, x[2 * IC + 3] = -2.5f;
    size_t K = gpt_q8_cols(IC), nb = K / 32, XS = CPU_Q8_XS(K);
    void *sk = malloc(cpu_q8_act_bytes(N, IC)), *sc = malloc(cpu_q8_act_bytes(N, IC));
    cpu_q8_act ak, ac;
    cpu_q8_quantize_act(&ak, sk, x, N, IC, k);
    cpu_q8_quantize_act(&ac, sc, x, N, IC, c);
    EXPECT(memcmp(ak.q, ac.q, (size_t)N * K) == 0, "quants differ");
    EXPECT(memcmp(ak.d, ac.d, (size_t)N * nb * sizeof(float)) == 0, "scales differ");
    EXPECT(ac.q[2 * K + 1] == 2 && ac.q[2 * K + 2] == 4 && ac.q[2 * K + 3] == -2,
           "ties to even: %d %d %d", ac.q[2 * K + 1], ac.q[2 * K + 2], ac.q[2 * K + 3]);
    if (k->xsum) {
        static const int order[16] = CPU_Q8_XS_ORDER;
        int bad = 0;
        for (int n = 0; n < N; n++)
            for (size_t l = 0; l < XS; l++) {
                size_t b = l / 16 * 8 + (size_t)order[l % 16];
                long sum = 0;
                for (size_t i = 0; b < nb && i < 32; i++) sum += ak.q[(size_t)n * K + b * 32 + i];
                bad += ak.xs[(size_t)n * XS + l] != 64 * sum;
            }
        EXPECT(bad == 0, "%d block sums wrong", bad);
    }
    free(x), free(sk), free(sc);
    test_end();
}

/* The backend's product against the fp32 one. With w = d_w q_w + e_w and
 * x = d_x q_x + e_x, |e_w| <= d_w / 2 and |e_x| <= d_x / 2 (each block's
 * scales), the difference of the two products is sum(e_w x + w e_x -
 * e_w e_x) over the inputs, so for each output
 *   |y_q - y| <= sum over blocks of d_w/2 sum|x| + d_x/2 sum|w| + 32 d_w d_x / 4,
 * plus fp32 rounding (1e-5 of sum |w x|). The test computes this bound
 * from the data for every output; GELU is 1.13-Lipschitz, so after it the
 * bound grows by that factor. */
static void test_backend_op(gpt_backend *be, int N, int IC, int OC, int gelu) {
    test_begin("matmul_q8_forward N=%d IC=%d OC=%d%s against fp32, within the quantisation bound",
               N, IC, OC, gelu ? " +GELU" : "");
    float *w = heavy((size_t)OC * IC, 0.05f), *x = heavy((size_t)N * IC, 1), *bias = heavy(OC, 0.1f);
    size_t bytes = gpt_q8_bytes(OC, IC), K = gpt_q8_cols(IC), nb = K / 32;
    unsigned char *wq = malloc(bytes);
    gpt_error err = {0};
    gpt_q8_quantize(wq, w, OC, IC, "w", &err);
    void *dwq = be->ops->alloc(be, bytes);
    float *din = be->ops->alloc(be, (size_t)N * IC * 4), *dout = be->ops->alloc(be, (size_t)N * OC * 4);
    float *dpre = be->ops->alloc(be, (size_t)N * OC * 4), *dbias = be->ops->alloc(be, (size_t)OC * 4);
    be->ops->upload(be, dwq, wq, bytes, GPT_CLS_Q8);
    be->ops->upload(be, din, x, (size_t)N * IC, GPT_CLS_ACT);
    be->ops->upload(be, dbias, bias, OC, GPT_CLS_PARAM);
    be->ops->matmul_q8_forward(be, dout, gelu ? dpre : NULL, din, dwq, dbias, N, IC, OC, gelu);
    float *out = malloc((size_t)N * OC * 4), *pre = malloc((size_t)N * OC * 4);
    be->ops->download(be, out, dout, (size_t)N * OC, GPT_CLS_ACT);
    be->ops->download(be, pre, dpre, (size_t)N * OC, GPT_CLS_ACT);
    double worst = 0, worst_pre = 0;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double y = bias[o], bound = 0, mag = 0;
            for (size_t b = 0; b < nb; b++) {
                double sx = 0, sw = 0, ax = 0;
                for (size_t c = b * 32; c < b * 32 + 32 && c < (size_t)IC; c++) {
                    double wv = w[(size_t)o * IC + c], xv = x[(size_t)n * IC + c];
                    y += wv * xv;
                    mag += fabs(wv * xv);
                    sx += fabs(xv), sw += fabs(wv), ax = fmax(ax, fabs(xv));
                }
                double dw = gpt_f16_to_f32(rd16(wq + (size_t)OC * K + ((size_t)o * nb + b) * 2));
                double dx = ax / 127 * (1 + 1e-6); /* the activation scale, rounded in fp32 */
                bound += dw / 2 * sx + dx / 2 * sw + 32 * dw * dx / 4;
            }
            bound = bound * (1 + 1e-4) + 1e-5 * (mag + fabs(bias[o]));
            double ref = gelu ? 0.5 * y * (1 + tanh(0.7978845608028654 * (y + 0.044715 * y * y * y))) : y;
            double e = fabs(out[(size_t)n * OC + o] - ref) / (bound * (gelu ? 1.13 : 1) + 1e-6);
            if (!(e <= worst)) worst = e;
            if (gelu) {
                double ep = fabs(pre[(size_t)n * OC + o] - y) / bound;
                if (!(ep <= worst_pre)) worst_pre = ep;
            }
        }
    EXPECT(worst <= 1, "error / bound = %g", worst);
    if (gelu) EXPECT(worst_pre <= 1, "pre: error / bound = %g", worst_pre);
    be->ops->free(be, dwq);
    be->ops->free(be, din);
    be->ops->free(be, dout);
    be->ops->free(be, dpre);
    be->ops->free(be, dbias);
    free(w), free(x), free(bias), free(wq), free(out), free(pre);
    test_end();
}

int main(void) {
    gpt_rng_seed(&rng, 17);
    test_f16();
    test_quantize(5, 64);
    test_quantize(7, 100);
    test_quantize(3, 768);
    test_check_refuses();

    int nk;
    const cpu_q8_kernel *const *ks = cpu_q8_kernels(&nk);
    printf("int8 kernels this CPU runs (the first is used): ");
    for (int i = 0; i < nk; i++) printf("%s%s", ks[i]->name, i + 1 < nk ? ", " : "\n");
    const int shapes[][3] = {{1, 32, 1}, {1, 768, 33}, {1, 96, 9}, {3, 96, 16}, {4, 100, 7},
                             {5, 64, 20}, {8, 768, 17}, {17, 160, 9}, {1, 544, 70}};
    for (int i = 0; i < nk; i++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            test_kernel(ks[i], shapes[s][0], shapes[s][1], shapes[s][2]);
    for (int i = 0; i < nk; i++)
        if (ks[i]->quant_row)
            for (int ic = 20; ic <= 800; ic += 260) test_quant_row(ks[i], ks[nk - 1], ic);

    gpt_runtime rt = {0};
    rt.device = "cpu";
    gpt_backend *be;
    gpt_error err = {0};
    if (gpt_backend_create(&be, &rt, &err)) {
        printf("FAIL cpu backend: %s\n", err.msg);
        return test_summary() | 1;
    }
    gpt_shape s = {0};
    s.B = 17, s.T = 1, s.C = 160, s.F = 768, s.q8 = 1;
    be->ops->reserve(be, &s);
    printf("backend kernel: %s\n", be->ops->q8_kernel(be));
    test_backend_op(be, 1, 768, 40, 0);
    test_backend_op(be, 8, 100, 33, 1);
    test_backend_op(be, 17, 160, 64, 0);
    gpt_backend_destroy(be);
    return test_summary();
}
