/*
 * test_model_ref.c - the whole C model against PyTorch (float64) on the
 * fixture written by tests/ref/make_reference.py: logits, loss, every
 * parameter gradient, and ten steps of clipping + AdamW (losses, gradient
 * norms, final parameters).
 *
 * Tolerances: our CPU backend computes in fp32 (unit roundoff 6e-8). The
 * model has sums of at most Vp=64 terms per dot product and two layers, so
 * the accumulated relative error of any output is a few 1e-7; 1e-5 relative
 * (L2 over a tensor) leaves a margin of ~10x while still catching any real
 * mistake, which shows up at 1e-2 or more. Individual elements are compared
 * with |a-b| <= 1e-5 * max|ref| + 1e-7 (a tensor-wide scale, because an
 * element near zero has no meaningful relative error). After ten AdamW
 * steps the parameters get that bound plus the gradient error that AdamW's
 * per-element normalisation carries into each step (expect_adamw_close).
 */
#include "fixture.h"
#include "gpt.h"
#include "model.h"
#include "test.h"

static const char *FIX = "tests/data/ref_model.bin";
static int g_prec = GPT_PREC_FP32; /* the precision load_model asks for */

static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(x[i]) > m) m = fabs(x[i]);
    return m;
}

/* Compares a tensor: relative L2 and scaled elementwise error. */
static void expect_close(const char *what, const float *got, const float *ref, size_t n,
                         double tol) {
    double l2 = test_rel_l2(got, ref, n), scale = max_abs(ref, n), worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= worst)) worst = d;
    }
    EXPECT(l2 <= tol && worst <= tol * scale + 1e-7, "%s: rel L2 %.3g, max abs err %.3g (scale %.3g)",
           what, l2, worst, scale);
}

/* Parameters after `steps` AdamW updates. An update moves element i by
 * lr * m_i / (sqrt(v_i) + eps): AdamW divides out the gradient's size, so an
 * absolute error d in a gradient (summation order; the gradient comparison
 * above allows d = 1e-5 * max|grad| + 1e-7 per tensor) becomes an error of
 * up to lr * d / (sqrt(v_i) + eps) in the step, whatever the element's own
 * scale. Far above the noise that is tiny; at the noise floor (a token seen
 * once, the key bias, whose exact gradient is 0) the step's sign is noise
 * and the element moves by up to ~lr either way. The first gradient g0
 * (the fixture's) bounds v from below at every later step s:
 * v_s >= (1 - b2) b2^s g0^2 / (1 - b2^(s+1)) with bias correction. So
 * element i may differ by the fp32 bound every other tensor gets plus the
 * propagated gradient error, each step's capped at 2 lr (a full step the
 * other way):
 *   1e-5 * max|ref| + 1e-7 + lr * sum_s min(2, d / (sqrt(v_s) + eps)).
 * A wrong update (sign, decay, bias correction) moves elements with real
 * gradients by ~1e-3 or more and fails; the rel L2 over elements whose
 * gradient is far above the noise (|g0| > 100 d) keeps the 1e-5 bound. */
static void expect_adamw_close(const char *what, const float *got, const float *ref,
                               const float *g0, size_t n, int steps, double lr, double b2,
                               double eps) {
    double scale = max_abs(ref, n), d = 1e-5 * max_abs(g0, n) + 1e-7;
    double worst = 0, worst_allow = 1, num = 0, den = 0;
    size_t bad = 0, at = 0;
    for (size_t i = 0; i < n; i++) {
        double allow = 1e-5 * scale + 1e-7, e = fabs((double)got[i] - ref[i]);
        for (int s = 0; s < steps; s++) {
            double v = (1 - b2) * pow(b2, s) * (double)g0[i] * g0[i] / (1 - pow(b2, s + 1));
            double r = d / (sqrt(v) + eps);
            allow += lr * (r < 2 ? r : 2);
        }
        if (!(e <= allow)) bad++;
        if (!(e * worst_allow <= worst * allow)) worst = e, worst_allow = allow, at = i;
        if (fabs(g0[i]) > 100 * d) {
            num += e * e;
            den += (double)ref[i] * ref[i];
        }
    }
    double l2 = sqrt(num / (den > 0 ? den : 1));
    EXPECT(bad == 0 && l2 <= 1e-5,
           "%s: %zu elements out of bounds, worst [%zu] err %.3g allowed %.3g (g0 %.3g); "
           "rel L2 %.3g where the gradient is determined",
           what, bad, at, worst, worst_allow, (double)g0[at], l2);
}

static gpt_model *load_model(const fixture *fx, gpt_error *err) {
    gpt_config cfg = {(int)fixture_cfg(fx, "V", 0), (int)fixture_cfg(fx, "Vp", 0),
                      (int)fixture_cfg(fx, "maxT", 0), (int)fixture_cfg(fx, "L", 0),
                      (int)fixture_cfg(fx, "NH", 0), (int)fixture_cfg(fx, "C", 0),
                      (int)fixture_cfg(fx, "F", 0), 1e-5f};
    gpt_runtime rt = {0};
    rt.device = "cpu";
    rt.precision = g_prec;
    gpt_model *m;
    if (gpt_model_create(&m, &cfg, &rt, 1, err)) return NULL;
    for (int i = 0; i < gpt_model_num_tensors(m); i++) {
        const gpt_tensor_info *t = gpt_model_tensor(m, i);
        size_t n;
        const float *src = fixture_get(fx, t->name, &n);
        if (!src || n != t->numel || gpt_model_set_tensor(m, i, src, err)) {
            gpt_model_free(m);
            return NULL;
        }
    }
    return m;
}

int main(void) {
    fixture fx;
    gpt_error err = {0};
    test_begin("load fixture %s", FIX);
    EXPECT(fixture_load(&fx, FIX, &err) == 0, "%s", err.msg);
    if (test_case_failed_) return test_summary();
    test_end();

    int B = (int)fixture_cfg(&fx, "B", 0), T = (int)fixture_cfg(&fx, "T", 0);
    int V = (int)fixture_cfg(&fx, "V", 0), steps = (int)fixture_cfg(&fx, "steps", 0);
    size_t nb;
    const float *batches_f = fixture_get(&fx, "batches", &nb);
    int *batches = malloc(nb * sizeof(int));
    for (size_t i = 0; i < nb; i++) batches[i] = (int)batches_f[i];
    size_t per = (size_t)B * (T + 1);

    /* fp32: the tight bounds above. bf16 (products on bf16 inputs, fp32
     * sums, parameters and optimizer state): the bounds of the CUDA bf16
     * tests (tests/gpu/test_cuda_model.c): each product rounds both inputs
     * to bf16 (relative 2^-9), the forward and backward chain about a dozen
     * products, so logits and losses carry ~1e-3 and gradients, sums of
     * products of two such factors, ~1e-2: 1e-2 for logits and losses,
     * 3e-2 (rel L2) for gradients and norms. AdamW's parameters after ten
     * steps are checked in fp32 only (in bf16 their error is the
     * gradients' error times lr, which the norms already bound). */
    for (int pi = 0; pi < 2; pi++) {
        int prec = pi ? GPT_PREC_BF16 : GPT_PREC_FP32;
        const char *pn = pi ? "bf16" : "fp32";
        double tol_f = pi ? 1e-2 : 1e-5, tol_g = pi ? 3e-2 : 1e-5;
        g_prec = prec;
        gpt_model *m = load_model(&fx, &err);
        test_begin("%s: build the model from the fixture's weights", pn);
        EXPECT(m != NULL, "%s", err.msg);
        test_end();
        if (!m) break;
        printf("# %s: %s\n", pn, gpt_model_device_desc(m)); /* names the products' kernel */
        if (pi) test_require_amx("test_model_ref's bf16 model", gpt_model_device_desc(m));

        /* Logits of the first batch's inputs. */
        test_begin("%s: logits match PyTorch", pn);
        int *inputs = malloc((size_t)B * T * sizeof(int));
        for (int b = 0; b < B; b++)
            memcpy(inputs + (size_t)b * T, batches + (size_t)b * (T + 1), (size_t)T * sizeof(int));
        float *logits = malloc((size_t)B * T * V * sizeof(float));
        EXPECT(gpt_forward_logits(m, inputs, B, T, logits, &err) == 0, "%s", err.msg);
        size_t n;
        const float *ref = fixture_get(&fx, "logits", &n);
        EXPECT(n == (size_t)B * T * V, "logits size %zu", n);
        expect_close("logits", logits, ref, n, tol_f);
        test_end();

        test_begin("%s: evaluation loss matches PyTorch", pn);
        double eloss;
        EXPECT(gpt_eval_loss(m, batches, B, T, &eloss, &err) == 0, "%s", err.msg);
        float lref = fixture_get(&fx, "loss", NULL)[0];
        EXPECT(fabs(eloss - lref) <= tol_f * fabs(lref), "loss %.8f vs %.8f", eloss, lref);
        test_end();

        /* Gradients: forward + backward without the update. */
        gpt_train_opts o;
        gpt_train_opts_default(&o);
        o.batch_size = B;
        o.seq_len = T;
        o.max_steps = 1000;
        o.lr = (float)fixture_cfg(&fx, "lr", 0);
        o.min_lr = o.lr; /* constant rate, as the reference */
        o.warmup_steps = 0;
        o.beta1 = (float)fixture_cfg(&fx, "beta1", 0);
        o.beta2 = (float)fixture_cfg(&fx, "beta2", 0);
        o.eps = (float)fixture_cfg(&fx, "eps", 0);
        o.weight_decay = (float)fixture_cfg(&fx, "weight_decay", 0);
        o.grad_clip = (float)fixture_cfg(&fx, "grad_clip", 0);
        test_begin("%s: train init", pn);
        EXPECT(gpt_train_init(m, &o, &err) == 0, "%s", err.msg);
        test_end();
        float loss = 0;
        test_begin("%s: training loss matches PyTorch", pn);
        EXPECT(gpt_train_grads(m, batches, &loss, &err) == 0, "%s", err.msg);
        EXPECT(fabs(loss - lref) <= tol_f * fabs(lref), "loss %.8f vs %.8f", loss, lref);
        test_end();
        float *buf = malloc(gpt_model_tensor(m, 0)->numel * sizeof(float) * 4 + 1024 * sizeof(float));
        for (int i = 0; i < gpt_model_num_tensors(m); i++) {
            const gpt_tensor_info *t = gpt_model_tensor(m, i);
            char name[300];
            snprintf(name, sizeof name, "grad.%s", t->name);
            test_begin("%s: gradient %s matches PyTorch", pn, t->name);
            const float *g = fixture_get(&fx, name, &n);
            EXPECT(g && n == t->numel, "missing %s", name);
            m->be->ops->download(m->be, buf, gpt_at(m, m->grads, m->toff[i], GPT_CLS_GRAD), t->numel,
                                 GPT_CLS_GRAD);
            if (g && pi) { /* bf16: relative L2, as the CUDA bf16 tests */
                double l2 = test_rel_l2(buf, g, n);
                EXPECT(l2 <= tol_g, "%s: rel L2 %.3g > %.3g", name, l2, tol_g);
            } else if (g)
                expect_close(name, buf, g, n, tol_g);
            test_end();
        }
        gpt_model_free(m);

        /* Ten AdamW steps from the same weights. */
        m = load_model(&fx, &err);
        test_begin("%s: ten AdamW steps: losses and gradient norms match PyTorch", pn);
        EXPECT(m && gpt_train_init(m, &o, &err) == 0, "%s", err.msg);
        const float *lossv = fixture_get(&fx, "step_losses", NULL);
        const float *normv = fixture_get(&fx, "step_norms", NULL);
        for (int s = 0; m && s < steps; s++) {
            gpt_step_info info;
            EXPECT(gpt_train_step(m, batches + s * per, &info, &err) == 0, "%s", err.msg);
            EXPECT(fabs(info.loss - lossv[s]) <= tol_f * fabs(lossv[s]), "step %d loss %.8f vs %.8f",
                   s, info.loss, lossv[s]);
            EXPECT(fabs(info.grad_norm - normv[s]) <= tol_g * fabs(normv[s]),
                   "step %d norm %.8f vs %.8f", s, info.grad_norm, normv[s]);
        }
        test_end();
        for (int i = 0; m && prec == GPT_PREC_FP32 && i < gpt_model_num_tensors(m); i++) {
            const gpt_tensor_info *t = gpt_model_tensor(m, i);
            char name[300], gname[300];
            snprintf(name, sizeof name, "final.%s", t->name);
            snprintf(gname, sizeof gname, "grad.%s", t->name);
            test_begin("parameters after ten steps: %s", t->name);
            const float *p = fixture_get(&fx, name, &n);
            const float *g0 = fixture_get(&fx, gname, NULL);
            EXPECT(p && g0 && n == t->numel, "missing %s or %s", name, gname);
            EXPECT(gpt_model_get_tensor(m, i, buf, &err) == 0, "%s", err.msg);
            if (p && g0) expect_adamw_close(name, buf, p, g0, n, steps, o.lr, o.beta2, o.eps);
            test_end();
        }
        gpt_model_free(m);
        free(buf);
        free(inputs);
        free(logits);
    }
    free(batches);
    fixture_free(&fx);
    return test_summary();
}
