/*
 * test_decode_greedy.c - greedy decoding with the choice made on the device
 * (gpt_kv_decode_greedy: argmax, position advance and feedback without the
 * host) gives the same ids as decoding one step at a time and taking the
 * argmax of the logits on the host, for a batch of unequal prompts; and it
 * refuses to run past the context. gpt_kv_prefill_greedy's ids are the host
 * argmax of gpt_kv_prefill's logits, and decoding continues from its cache
 * exactly as from gpt_kv_prefill's.
 */
#include <stdlib.h>
#include <string.h>

#include "gpt.h"
#include "test.h"
#include "util.h"

static int host_argmax(const float *x, int V) {
    int best = 0;
    for (int j = 1; j < V; j++)
        if (x[j] > x[best]) best = j;
    return best;
}

int main(void) {
    gpt_config cfg = {97, 0, 40, 2, 4, 32, 0, 0};
    gpt_runtime rt = {0};
    rt.device = "cpu";
    gpt_error err = {0};
    gpt_model *m;
    if (gpt_model_create(&m, &cfg, &rt, 3, &err)) {
        printf("FAIL create: %s\n0 passed, 1 failed\n", err.msg);
        return 1;
    }
    const int B = 3, V = 97, steps = 12;
    int lens[3] = {5, 1, 9};
    int p0[9], p1[1], p2[9];
    gpt_rng r;
    gpt_rng_seed(&r, 9);
    for (int i = 0; i < 9; i++) p0[i] = (int)gpt_rng_below(&r, V), p2[i] = (int)gpt_rng_below(&r, V);
    p1[0] = 7;
    const int *prompts[3] = {p0, p1, p2};
    float *logits = malloc((size_t)B * V * sizeof(float));
    int ref[12 * 3], got[12 * 3], first[3];

    test_begin("reference: step-by-step decoding with the argmax on the host");
    EXPECT(gpt_kv_begin(m, B, 32, &err) == 0, "%s", err.msg);
    EXPECT(gpt_kv_prefill(m, prompts, lens, logits, &err) == 0, "%s", err.msg);
    for (int b = 0; b < B; b++) first[b] = host_argmax(logits + (size_t)b * V, V);
    int cur[3];
    memcpy(cur, first, sizeof cur);
    for (int k = 0; k < steps; k++) {
        EXPECT(gpt_kv_decode(m, cur, logits, &err) == 0, "%s", err.msg);
        for (int b = 0; b < B; b++) ref[k * B + b] = cur[b] = host_argmax(logits + (size_t)b * V, V);
    }
    test_end();

    test_begin("gpt_kv_decode_greedy gives the same ids, in one or several calls");
    EXPECT(gpt_kv_begin(m, B, 32, &err) == 0, "%s", err.msg);
    EXPECT(gpt_kv_prefill(m, prompts, lens, logits, &err) == 0, "%s", err.msg);
    EXPECT(gpt_kv_decode_greedy(m, first, 5, got, &err) == 0, "%s", err.msg);
    EXPECT(gpt_kv_decode_greedy(m, got + 4 * B, steps - 5, got + 5 * B, &err) == 0, "%s", err.msg);
    EXPECT(!memcmp(got, ref, sizeof ref), "ids differ from step-by-step decoding");
    for (int b = 0; b < B; b++)
        EXPECT(gpt_kv_length(m, b) == lens[b] + steps, "row %d length %d", b, gpt_kv_length(m, b));
    test_end();

    test_begin("gpt_kv_prefill_greedy: the first ids on the device, then the same decoding");
    int pfirst[3] = {-1, -1, -1};
    EXPECT(gpt_kv_begin(m, B, 32, &err) == 0, "%s", err.msg);
    EXPECT(gpt_kv_prefill_greedy(m, prompts, lens, pfirst, &err) == 0, "%s", err.msg);
    EXPECT(!memcmp(pfirst, first, sizeof first), "prefill ids %d %d %d, want %d %d %d", pfirst[0],
           pfirst[1], pfirst[2], first[0], first[1], first[2]);
    for (int b = 0; b < B; b++)
        EXPECT(gpt_kv_length(m, b) == lens[b], "row %d length %d", b, gpt_kv_length(m, b));
    memset(got, 0, sizeof got);
    EXPECT(gpt_kv_decode_greedy(m, pfirst, steps, got, &err) == 0, "%s", err.msg);
    EXPECT(!memcmp(got, ref, sizeof ref), "ids differ from step-by-step decoding");
    test_end();

    test_begin("gpt_kv_decode_greedy refuses to run past the context");
    int room = 32 - (lens[2] + steps);
    int *buf = malloc((size_t)(room + 1) * B * sizeof(int));
    EXPECT(gpt_kv_decode_greedy(m, got, room + 1, buf, &err) == GPT_ERR_INVALID, "rc");
    EXPECT(strstr(err.msg, "context") != NULL, "message: %s", err.msg);
    EXPECT(gpt_kv_decode_greedy(m, got, 0, buf, &err) == GPT_ERR_INVALID, "zero steps");
    test_end();
    free(buf);
    free(logits);
    gpt_model_free(m);
    return test_summary();
}
