/*
 * example.c - a program built against an installed gpt (tests/test_install.sh
 * compiles it with `pkg-config --cflags --libs gpt`, and gpt-static): the
 * version macros against gpt_version(), the built-in tokenizer, a small
 * model trained for a few steps on fixed tokens, and greedy generation.
 * What it prints depends only on the library, so the shared and the static
 * build must print the same.
 */
#include <stdio.h>
#include <string.h>

#include <gpt.h>
#include <gpt_tokenizer.h>

#if !defined(GPT_VERSION_MAJOR) || !defined(GPT_VERSION_MINOR) || !defined(GPT_VERSION_PATCH)
#error "gpt.h lacks the version macros"
#endif

static int fail(const char *what, const gpt_error *err) {
    fprintf(stderr, "example: %s: %s\n", what, err->msg);
    return 1;
}

int main(void) {
    gpt_error err = {0};
    if (strcmp(gpt_version(), GPT_VERSION) != 0) {
        fprintf(stderr, "example: header %s, library %s\n", GPT_VERSION, gpt_version());
        return 1;
    }
    printf("version %d.%d.%d\n", GPT_VERSION_MAJOR, GPT_VERSION_MINOR, GPT_VERSION_PATCH);

    gpt_tokenizer *tok;
    int *ids;
    size_t n;
    if (gpt_tokenizer_open(&tok, "gpt2", &err) ||
        gpt_tokenizer_encode(tok, "Hello world", 11, 0, &ids, &n, &err))
        return fail("tokenizer", &err);
    printf("tokens");
    for (size_t i = 0; i < n; i++) printf(" %d", ids[i]);
    printf("\n");
    gpt_free(ids);
    gpt_tokenizer_free(tok);

    gpt_config cfg = {.vocab_size = 64, .max_seq_len = 16, .n_layer = 2, .n_head = 2, .n_embd = 32};
    gpt_runtime rt = {.device = "cpu", .threads = 1};
    gpt_model *m;
    if (gpt_model_create(&m, &cfg, &rt, 7, &err)) return fail("create", &err);
    gpt_train_opts o;
    gpt_train_opts_default(&o);
    o.batch_size = 2, o.seq_len = 8, o.max_steps = 20, o.lr = 1e-2f;
    if (gpt_train_init(m, &o, &err)) return fail("train_init", &err);
    int batch[2 * 9];
    for (int i = 0; i < 18; i++) batch[i] = (i * 5) % 11; /* a pattern to learn */
    gpt_step_info info = {0};
    float first = 0;
    for (int s = 0; s < 20; s++) {
        if (gpt_train_step(m, batch, &info, &err)) return fail("train_step", &err);
        if (s == 0) first = info.loss;
    }
    printf("loss %.4f -> %.4f\n", first, info.loss);
    if (!(info.loss < first)) return fprintf(stderr, "example: the loss did not go down\n"), 1;

    gpt_generate_opts g;
    gpt_generate_opts_default(&g);
    g.max_new_tokens = 6;
    g.sampler.temperature = 0;
    const int prompt[] = {0, 5, 10};
    const int *rows[] = {prompt};
    int lens[] = {3}, out[6], out_len;
    if (gpt_generate(m, rows, lens, 1, &g, out, &out_len, NULL, &err)) return fail("generate", &err);
    printf("greedy");
    for (int i = 0; i < out_len; i++) printf(" %d", out[i]);
    printf("\n");
    gpt_model_free(m);
    return 0;
}
