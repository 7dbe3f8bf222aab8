/*
 * test_early_inputs.c - backend.h's early-input rule as the test build
 * enforces it (src/backend_check.c wraps every backend gpt_backend_create
 * makes): an op whose early input is an output of the op issued just
 * before fails with a message naming both ops and the argument; the
 * model's own orders pass; an output of two ops back, or one followed by a
 * memory call, is no hazard. Then the whole model under the checker on the
 * CPU: training steps, evaluation, a prefill, and the decoding step
 * (model_infer.c's decode_forward, which the CPU runs through its folded
 * products) one step at a time and greedy on the device.
 */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "gpt.h"
#include "test.h"

#ifndef GPT_TEST_BUILD
#error "test_early_inputs needs the test build (-DGPT_TEST_BUILD, libgpt_test.a)"
#endif

enum { N = 3, C = 8, S = 6 };

static gpt_backend *be;

/* A zeroed device buffer of n floats. */
static float *buf(size_t n) {
    float *p = be->ops->alloc(be, n * sizeof(float));
    be->ops->memset0(be, p, n * sizeof(float));
    return p;
}

/* A fresh backend's error state after the ops of a case. */
static void reset(void) {
    be->ops->sync(be);
    memset(&be->err, 0, sizeof be->err);
}

/* The case passed when sync's message names all of want (NULL-terminated),
 * or is empty when want is NULL. */
static void expect_error(const char *const *want) {
    int rc = be->ops->sync(be);
    if (!want) {
        EXPECT(rc == 0, "unexpected error: %s", be->err.msg);
    } else {
        EXPECT(rc == GPT_ERR_RUNTIME, "no error (rc %d)", rc);
        for (int i = 0; want[i]; i++)
            EXPECT(strstr(be->err.msg, want[i]), "message '%s' lacks '%s'", be->err.msg, want[i]);
    }
    reset();
}

static void op_cases(void) {
    const gpt_backend_ops *o = be->ops;
    float *x = buf(N * C), *y = buf(N * C), *ln = buf(N * C), *h = buf(N * 4 * C);
    float *w = buf(C * C), *w4 = buf(4 * C * C), *bias = buf(4 * C), *g = buf(C);
    float *qkv = buf(N * 3 * C), *kc = buf(N * S * C), *vc = buf(N * S * C), *logits = buf(N * C);
    int *pos = (int *)buf(N), *tok = (int *)buf(N);
    for (int i = 0; i < C; i++) be->ops->upload(be, g + i, &(float){1.f}, 1, GPT_CLS_PARAM);

    test_begin("the model's order: product into scratch, then residual + layernorm of x");
    o->matmul_forward(be, y, NULL, x, w, bias, N, C, C, 0);
    o->residual_layernorm_forward(be, x, ln, NULL, NULL, x, y, g, bias, N, C, 1e-5f);
    expect_error(NULL);
    test_end();

    test_begin("residual + layernorm whose a was written by the op just before fails");
    o->matmul_forward(be, x, NULL, ln, w, bias, N, C, C, 0);
    o->residual_layernorm_forward(be, x, ln, NULL, NULL, x, y, g, bias, N, C, 1e-5f);
    expect_error((const char *const[]){"early input", "residual_layernorm_forward's a",
                                        "matmul_forward", NULL});
    test_end();

    test_begin("a partial overlap fails too (the layernorm's w inside the product's output)");
    o->matmul_forward(be, y, NULL, x, w, bias, N, C, C, 0);
    o->residual_layernorm_forward(be, x, ln, NULL, NULL, x, y, y + 2, bias, N, C, 1e-5f);
    expect_error((const char *const[]){"residual_layernorm_forward's w", NULL});
    test_end();

    test_begin("an output of two ops back is no hazard");
    o->matmul_forward(be, y, NULL, x, w, bias, N, C, C, 0);
    o->gelu_forward(be, h, ln, N * C);
    o->residual_layernorm_forward(be, x, ln, NULL, NULL, y, h, g, bias, N, C, 1e-5f);
    expect_error(NULL);
    test_end();

    test_begin("a memory call in between is no hazard");
    o->matmul_forward(be, y, NULL, x, w, bias, N, C, C, 0);
    o->copy(be, h, ln, sizeof(float));
    o->residual_layernorm_forward(be, x, ln, NULL, NULL, y, x, g, bias, N, C, 1e-5f);
    expect_error(NULL);
    test_end();

    test_begin("KV attention after the argmax that advanced its positions fails");
    o->argmax(be, tok, logits, N, C, C, pos, NULL, 0);
    o->attention_kv_forward(be, ln, qkv, kc, vc, pos, N, 1, S, C, 2);
    expect_error((const char *const[]){"attention_kv_forward's pos0", "argmax", NULL});
    test_end();

    test_begin("KV attention after the qkv product (the model's order) passes");
    o->matmul_forward(be, qkv, NULL, ln, w, NULL, N, C, C, 0);
    o->matmul_forward(be, qkv, NULL, ln, w, NULL, N, C, C, 0);
    o->attention_kv_forward(be, ln, qkv, kc, vc, pos, N, 1, S, C, 2);
    expect_error(NULL);
    test_end();

    test_begin("KV attention reading the cache the op before wrote fails");
    o->attention_kv_forward(be, ln, qkv, kc, vc, pos, N, 1, S, C, 2);
    o->attention_kv_forward(be, ln, qkv, kc, vc, pos, N, 1, S, C, 2);
    expect_error((const char *const[]){"attention_kv_forward's kcache", NULL});
    test_end();

    test_begin("the folded residual product whose x was just written fails");
    EXPECT(o->matmul_residual_forward, "the CPU backend has the folded products");
    if (o->matmul_residual_forward) {
        o->add(be, x, x, y, N * C);
        o->matmul_residual_forward(be, x, h, w4, bias, N, 4 * C, C);
        expect_error((const char *const[]){"matmul_residual_forward's x", "add", NULL});
    }
    test_end();

    test_begin("a product whose bias the AdamW update just wrote fails");
    float *m = buf(4 * C), *v = buf(4 * C), *gr = buf(4 * C), *hp = buf(8), *st = buf(4);
    o->adamw(be, bias, NULL, gr, m, v, 4 * C, 0, (const gpt_adamw_hyper *)hp, (gpt_step_stats *)st);
    o->matmul_forward(be, y, NULL, x, w, bias, N, C, C, 0);
    expect_error((const char *const[]){"matmul_forward's bias", "adamw", NULL});
    test_end();

    test_begin("the folded layernorm product whose gains were just written fails");
    if (o->matmul_ln_forward) {
        o->matmul_forward(be, bias, NULL, x, w, NULL, 1, C, C, 0);
        o->matmul_ln_forward(be, h, NULL, x, bias, g, 1e-5f, w4, NULL, N, C, 4 * C, 0);
        expect_error((const char *const[]){"matmul_ln_forward's lnw", NULL});
    }
    test_end();

    float *all[] = {x, y, ln, h, w, w4, bias, g, qkv, kc, vc, logits, (float *)pos, (float *)tok,
                    m, v, gr, hp, st};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) be->ops->free(be, all[i]);
}

/* Training, evaluation, prefill and decoding of a small model, every op
 * under the checker. */
static void model_case(void) {
    test_begin("the whole model (train, eval, prefill, decode) keeps the rule on the CPU");
    gpt_config cfg = {97, 0, 32, 2, 4, 32, 0, 0};
    gpt_runtime rt = {0};
    rt.device = "cpu";
    gpt_error err = {0};
    gpt_model *mdl = NULL;
    enum { B = 2, T = 12, CTX = 24 };
    int tok[B * (T + 1)];
    for (int i = 0; i < B * (T + 1); i++) tok[i] = (i * 37 + 11) % 97;
    gpt_train_opts opt;
    gpt_train_opts_default(&opt);
    opt.batch_size = B, opt.seq_len = T, opt.max_steps = 3, opt.warmup_steps = 1;
    gpt_step_info info;
    int rc = gpt_model_create(&mdl, &cfg, &rt, 5, &err);
    if (!rc) rc = gpt_train_init(mdl, &opt, &err);
    for (int s = 0; !rc && s < 3; s++) rc = gpt_train_step(mdl, tok, &info, &err);
    EXPECT(rc == 0, "training: %s", err.msg);
    double loss;
    const int *prompts[B] = {tok, tok + T + 1};
    int lens[B] = {5, 9}, ids[B * 6], first[B];
    float *logits = malloc((size_t)B * cfg.vocab_size * sizeof(float));
    if (!rc && (rc = gpt_eval_loss(mdl, tok, B, T, &loss, &err))) EXPECT(0, "eval: %s", err.msg);
    if (!rc && ((rc = gpt_kv_begin(mdl, B, CTX, &err)) ||
                (rc = gpt_kv_prefill(mdl, prompts, lens, logits, &err)) ||
                (rc = gpt_kv_decode(mdl, lens, logits, &err))))
        EXPECT(0, "prefill and decode: %s", err.msg);
    if (!rc && ((rc = gpt_kv_begin(mdl, B, CTX, &err)) ||
                (rc = gpt_kv_prefill_greedy(mdl, prompts, lens, first, &err)) ||
                (rc = gpt_kv_decode_greedy(mdl, first, 6, ids, &err))))
        EXPECT(0, "greedy prefill and decode: %s", err.msg);
    free(logits);
    gpt_model_free(mdl);
    test_end();
}

int main(void) {
    gpt_runtime rt = {0};
    rt.device = "cpu";
    gpt_error err;
    if (gpt_backend_create(&be, &rt, &err)) {
        printf("cpu backend: %s\n0 passed, 1 failed\n", err.msg);
        return 1;
    }
    gpt_shape s = {N, S, 4 * C, 2, 4 * C, C, C, 1, S, 0, 0, 0, 0};
    be->ops->reserve(be, &s);
    op_cases();
    gpt_backend_destroy(be);
    model_case();
    return test_summary();
}
