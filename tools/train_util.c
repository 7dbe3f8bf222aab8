/*
 * train_util.c - the sample gpt train prints at the end of a run, streamed
 * token by token through gpt_generate.
 */
#include "train_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/tools_internal.h"

static int print_token(void *user, int row, int token) {
    size_t len;
    const char *bytes = gpt_tokenizer_token((const gpt_tokenizer *)user, token, &len);
    if (bytes) fwrite(bytes, 1, len, stdout);
    fflush(stdout);
    return 0;
}

int train_print_sample(gpt_model *m, const gpt_tokenizer *tok, const char *prompt, int n,
                       uint64_t seed, gpt_error *err) {
    int *ids = NULL;
    size_t np = 0;
    int rc = gpt_tokenizer_encode(tok, prompt, strlen(prompt), 0, &ids, &np, err);
    if (rc) return rc;
    if (np == 0) {
        free(ids);
        return gpt_fail(err, GPT_ERR_INVALID, "the sample prompt encodes to no tokens");
    }
    int *out = malloc((size_t)n * sizeof(int));
    if (!out) {
        free(ids);
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    }
    gpt_generate_opts o;
    gpt_generate_opts_default(&o);
    o.max_new_tokens = n;
    o.sampler.temperature = 0.8f;
    o.sampler.top_k = 40;
    o.sampler.seed = seed;
    o.sliding_window = 1;
    o.on_token = print_token;
    o.user = (void *)tok;
    const int *prompts[1] = {ids};
    int len = (int)np, out_len = 0;
    printf("--- sample ---\n%s", prompt);
    rc = gpt_generate(m, prompts, &len, 1, &o, out, &out_len, NULL, err);
    printf("\n--- end of sample ---\n");
    free(ids);
    free(out);
    return rc;
}
