/*
 * test_generate.c - KV-cache generation against full recompute, and the
 * generation loop: batches of unequal prompts, stop tokens and strings,
 * streaming, the context limit, the sliding window, seeds.
 *
 * Models: the transformers fixture (tests/data/hf_tiny/fp32: weights with
 * O(1) effects, so a wrong cache entry shows) and a freshly initialised
 * model with sizes that are not multiples of anything (C=48, NH=3, V=333).
 */
#include <stdlib.h>
#include <string.h>

#include "gpt.h"
#include "hf.h"
#include "test.h"

static const gpt_runtime RT = {.device = "cpu", .precision = GPT_PREC_FP32};

/* KV decoding and the full forward pass compute the same fp32 math in a
 * different order (the cache attention sums over positions one query at a
 * time; the full pass runs a (T, T) causal block, and BLAS blocks N = 1
 * and N = T rows differently). Errors are measured against the row's
 * logit scale (RMS): a logit is a C-term dot product whose rounding error
 * is set by the terms, not by the (possibly tiny) result. Measured: at
 * most 2.2e-6 of the scale. 1e-5 keeps a 4x margin; one stale or
 * misplaced cache row moves logits by 1-10% of the scale. */
#define KV_TOL 1e-5

/* max |a - b| / rms(b) over n elements. */
static double err_to_scale(const float *a, const float *b, size_t n) {
    double worst = 0, ss = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= worst)) worst = d; /* NaN propagates */
        ss += (double)b[i] * (double)b[i];
    }
    return worst / (sqrt(ss / (double)n) + 1e-30);
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* Last-position logits of each row's sequence by a full forward pass. */
static int full_last(gpt_model *m, const int *seq, int T, float *out) {
    const int V = gpt_model_config(m)->vocab_size;
    float *all = malloc((size_t)T * V * sizeof *all);
    gpt_error err = {0};
    int rc = all ? gpt_forward_logits(m, seq, 1, T, all, &err) : GPT_ERR_NOMEM;
    if (rc) printf("     forward: %s\n", err.msg);
    else memcpy(out, all + (size_t)(T - 1) * V, (size_t)V * sizeof *out);
    free(all);
    return rc;
}

static void prompt_tokens(int *p, int n, int V, int salt) {
    for (int i = 0; i < n; i++)
        p[i] = (int)((i * 7919u + (unsigned)salt * 104729u + 13u) % (unsigned)V);
}

/* Prefill B rows of lengths lens, then decode `steps` greedy tokens; at
 * every step each row's logits must equal a full forward of that row. */
static void check_kv(gpt_model *m, const char *label, const int *lens, int B, int steps) {
    const gpt_config *c = gpt_model_config(m);
    const int V = c->vocab_size;
    char desc[128];
    int o = snprintf(desc, sizeof desc, "%s: KV cache = full recompute, prompts", label);
    for (int b = 0; b < B && o < (int)sizeof desc; b++)
        o += snprintf(desc + o, sizeof desc - (size_t)o, " %d", lens[b]);
    test_begin("%s, %d steps", desc, steps);
    int maxlen = 0;
    for (int b = 0; b < B; b++)
        if (lens[b] + steps > maxlen) maxlen = lens[b] + steps;
    int **seq = calloc((size_t)B, sizeof *seq), *len = calloc((size_t)B, sizeof *len);
    int *next = malloc((size_t)B * sizeof *next);
    float *kv = malloc((size_t)B * V * sizeof *kv), *full = malloc((size_t)V * sizeof *full);
    gpt_error err = {0};
    double worst = 0;
    int rc = gpt_kv_begin(m, B, maxlen, &err);
    EXPECT(rc == 0, "kv_begin: %s", err.msg);
    for (int b = 0; b < B; b++) {
        seq[b] = malloc((size_t)(maxlen + 1) * sizeof **seq); /* + the last drawn token */
        prompt_tokens(seq[b], lens[b], V, b + lens[b]);
        len[b] = lens[b];
    }
    if (!rc) rc = gpt_kv_prefill(m, (const int *const *)seq, lens, kv, &err);
    EXPECT(rc == 0, "prefill: %s", err.msg);
    for (int s = 0; !rc && s <= steps; s++) {
        for (int b = 0; b < B && !rc; b++) {
            EXPECT(gpt_kv_length(m, b) == len[b], "step %d row %d: cache length %d, want %d", s, b,
                   gpt_kv_length(m, b), len[b]);
            if ((rc = full_last(m, seq[b], len[b], full))) break;
            double e = err_to_scale(kv + (size_t)b * V, full, (size_t)V);
            if (!(e <= worst)) worst = e;
            if (!(e < KV_TOL)) {
                EXPECT(e < KV_TOL, "step %d row %d (length %d): error %g", s, b, len[b], e);
                rc = 1;
            }
            /* Feed the greedy token (some rows a fixed other one, so rows
             * differ in what they see). */
            next[b] = b % 2 ? argmax(kv + (size_t)b * V, V) : (s * 31 + b) % V;
            seq[b][len[b]++] = next[b];
        }
        if (!rc && s < steps) rc = gpt_kv_decode(m, next, kv, &err);
        EXPECT(rc == 0 || rc == 1, "decode: %s", err.msg);
    }
    printf("     worst error %.2g of the logit scale\n", worst);
    for (int b = 0; b < B; b++)
        free(seq[b]);
    free(seq);
    free(len);
    free(next);
    free(kv);
    free(full);
    test_end();
}

/* ------------------------------------------------------ the loop itself */

typedef struct {
    int n, cap;
    int *row, *tok;
    int stop_after; /* return 1 after this many calls (0 = never) */
} stream_log;

static int on_token(void *user, int row, int tok) {
    stream_log *l = user;
    if (l->n < l->cap) {
        l->row[l->n] = row;
        l->tok[l->n] = tok;
    }
    l->n++;
    return l->stop_after && l->n >= l->stop_after;
}

/* Token text for stop strings: id 17 is "<17>". */
static const char *token_text(void *user, int id, size_t *len) {
    static char buf[4][16];
    static int k;
    (void)user;
    char *b = buf[k++ & 3];
    *len = (size_t)snprintf(b, 16, "<%d>", id);
    return b;
}

/* Greedy reference by full recompute: n tokens after prompt. */
static int greedy_ref(gpt_model *m, const int *prompt, int len, int n, int *out) {
    const int V = gpt_model_config(m)->vocab_size;
    int *seq = malloc((size_t)(len + n) * sizeof *seq);
    float *l = malloc((size_t)V * sizeof *l);
    memcpy(seq, prompt, (size_t)len * sizeof *seq);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        rc = full_last(m, seq, len + i, l);
        seq[len + i] = out[i] = argmax(l, V);
    }
    free(seq);
    free(l);
    return rc;
}

static void test_loop(gpt_model *m) {
    const gpt_config *c = gpt_model_config(m);
    const int V = c->vocab_size, maxT = c->max_seq_len;
    int p0[12], p1[3], p2[7];
    prompt_tokens(p0, 12, V, 1);
    prompt_tokens(p1, 3, V, 2);
    prompt_tokens(p2, 7, V, 3);
    const int *prompts[3] = {p0, p1, p2};
    int lens[3] = {12, 3, 7};
    enum { N = 20 };
    int out[3 * N], out_lens[3], want[3][N];
    gpt_error err = {0};
    gpt_generate_opts o;
    gpt_generate_opts_default(&o);
    o.sampler.temperature = 0;
    o.max_new_tokens = N;
    gpt_generate_stats st;

    test_begin("greedy batch of 3 unequal prompts = greedy by full recompute, row by row");
    int rc = 0;
    for (int b = 0; b < 3 && !rc; b++)
        rc = greedy_ref(m, prompts[b], lens[b], N, want[b]);
    rc = rc ? rc : gpt_generate(m, prompts, lens, 3, &o, out, out_lens, &st, &err);
    EXPECT(rc == 0, "%s", err.msg);
    for (int b = 0; b < 3 && !rc; b++)
        EXPECT(out_lens[b] == N && !memcmp(out + b * N, want[b], sizeof want[b]), "row %d", b);
    EXPECT(st.prefill_tokens == 22 && st.new_tokens == 3 * N && st.decode_tokens == 3 * (N - 1) &&
               st.reprefills == 0 && st.prefill_s > 0 && st.decode_s > 0,
           "stats: prefill %lld new %lld decode %lld", st.prefill_tokens, st.new_tokens,
           st.decode_tokens);
    test_end();

    test_begin("stop token ends its row (kept as the last token); the others go on");
    o.eot = want[1][4]; /* row 1's fifth token */
    int first = -1;     /* where each row first produces it */
    rc = gpt_generate(m, prompts, lens, 3, &o, out, out_lens, &st, &err);
    EXPECT(rc == 0, "%s", err.msg);
    /* Each row's first token comes from the prefill, the rest from decode
     * steps, however early a row ends. */
    EXPECT(st.new_tokens == out_lens[0] + out_lens[1] + out_lens[2] &&
               st.decode_tokens == st.new_tokens - 3,
           "stats: new %lld decode %lld", st.new_tokens, st.decode_tokens);
    for (int b = 0; b < 3 && !rc; b++) {
        first = N;
        for (int i = 0; i < N; i++)
            if (want[b][i] == o.eot) {
                first = i + 1;
                break;
            }
        EXPECT(out_lens[b] == first && !memcmp(out + b * N, want[b], (size_t)first * sizeof(int)),
               "row %d: %d tokens, want %d", b, out_lens[b], first);
    }
    o.eot = -1;
    test_end();

    test_begin("stop strings end a row with the token that completes them, across tokens");
    char s1[64], s2[64], text[N * 16] = "";
    /* Row 0: the end of its 3rd token and the start of its 4th; the row
     * ends at the first token whose text completes it. */
    snprintf(s1, sizeof s1, "%d><%d", want[0][2], want[0][3]);
    snprintf(s2, sizeof s2, "no such text");
    int stop_at = 0;
    for (int i = 0; i < N && !stop_at; i++) {
        size_t tl;
        strcat(text, token_text(NULL, want[0][i], &tl));
        if (strstr(text, s1)) stop_at = i + 1;
    }
    const char *stops[2] = {s2, s1};
    o.stop = stops;
    o.n_stop = 2;
    o.token_bytes = token_text;
    rc = gpt_generate(m, prompts, lens, 1, &o, out, out_lens, NULL, &err);
    EXPECT(rc == 0 && stop_at <= 4 && out_lens[0] == stop_at &&
               !memcmp(out, want[0], (size_t)stop_at * sizeof(int)),
           "got %d tokens, want %d (%s)", out_lens[0], stop_at, err.msg);
    o.n_stop = 0;
    test_end();

    test_begin("streaming callback sees every token in order; nonzero stops the run");
    stream_log lg = {0, 3 * N, malloc(3 * N * sizeof(int)), malloc(3 * N * sizeof(int)), 0};
    o.on_token = on_token;
    o.user = &lg;
    rc = gpt_generate(m, prompts, lens, 3, &o, out, out_lens, NULL, &err);
    int pos[3] = {0, 0, 0}, bad = 0;
    for (int i = 0; i < lg.n && i < lg.cap; i++) {
        int b = lg.row[i];
        bad += b < 0 || b > 2 || lg.tok[i] != out[b * N + pos[b]++];
    }
    EXPECT(rc == 0 && lg.n == 3 * N && bad == 0, "%d calls, %d wrong", lg.n, bad);
    lg.n = 0;
    lg.stop_after = 7;
    rc = gpt_generate(m, prompts, lens, 3, &o, out, out_lens, NULL, &err);
    EXPECT(rc == 0 && lg.n == 7 && out_lens[0] + out_lens[1] + out_lens[2] == 7,
           "stopped after %d calls, rows %d %d %d", lg.n, out_lens[0], out_lens[1], out_lens[2]);
    o.on_token = NULL;
    free(lg.row);
    free(lg.tok);
    test_end();

    test_begin("a context longer than the model's is a clear error without the sliding window");
    int *longp = malloc((size_t)(maxT + 10) * sizeof *longp);
    prompt_tokens(longp, maxT + 10, V, 9);
    int ll = maxT - 5;
    o.max_new_tokens = 10;
    memset(&err, 0, sizeof err);
    rc = gpt_generate(m, (const int *const *)&longp, &ll, 1, &o, out, out_lens, NULL, &err);
    EXPECT(rc == GPT_ERR_INVALID && strstr(err.msg, "context") && strstr(err.msg, "sliding"),
           "rc %d: %s", rc, err.msg);
    test_end();

    /* Sliding window: every token must be the greedy token of the window
     * the loop holds: full context until it fills, then the last maxT/2
     * tokens, then growing again until full. */
    const int lens_s[2] = {maxT - 5, maxT + 10}, keep = maxT / 2;
    for (int k = 0; k < 2; k++) {
        enum { NS = 40 };
        test_begin("sliding window, prompt %d, %d new tokens: tokens follow the window", lens_s[k],
                   NS);
        int *sout = malloc(NS * sizeof *sout), slen;
        o.max_new_tokens = NS;
        o.sliding_window = 1;
        rc = gpt_generate(m, (const int *const *)&longp, &lens_s[k], 1, &o, sout, &slen, &st, &err);
        EXPECT(rc == 0 && slen == NS, "%s", err.msg);
        int *ctx = malloc((size_t)(lens_s[k] + NS) * sizeof *ctx), n = lens_s[k], start = 0;
        memcpy(ctx, longp, (size_t)n * sizeof *ctx);
        if (n > maxT) start = n - keep;
        float *l = malloc((size_t)V * sizeof *l);
        int mism = 0, slides = 0;
        for (int i = 0; i < NS && !rc; i++) {
            if (n - start > maxT) {
                start = n - keep;
                slides++;
            }
            if (full_last(m, ctx + start, n - start, l)) break;
            mism += argmax(l, V) != sout[i];
            ctx[n++] = sout[i];
        }
        EXPECT(mism == 0, "%d tokens differ from the window's greedy token", mism);
        EXPECT(st.reprefills == slides, "%d re-prefills, want %d", st.reprefills, slides);
        free(ctx);
        free(l);
        free(sout);
        o.sliding_window = 0;
        test_end();
    }
    free(longp);

    test_begin("bad arguments: empty prompt, id out of range, N < 1, empty stop string");
    int bad_tok[2] = {1, V}, one = 1, zero = 0, two = 2;
    const int *bp = bad_tok;
    o.max_new_tokens = 4;
    EXPECT(gpt_generate(m, &bp, &zero, 1, &o, out, out_lens, NULL, &err) == GPT_ERR_INVALID,
           "empty prompt");
    EXPECT(gpt_generate(m, &bp, &two, 1, &o, out, out_lens, NULL, &err) == GPT_ERR_INVALID &&
               strstr(err.msg, "vocabulary"),
           "id out of range: %s", err.msg);
    o.max_new_tokens = 0;
    EXPECT(gpt_generate(m, &bp, &one, 1, &o, out, out_lens, NULL, &err) == GPT_ERR_INVALID,
           "N = 0");
    o.max_new_tokens = 4;
    const char *empty[1] = {""};
    o.stop = empty;
    o.n_stop = 1;
    o.token_bytes = token_text;
    EXPECT(gpt_generate(m, &bp, &one, 1, &o, out, out_lens, NULL, &err) == GPT_ERR_INVALID,
           "empty stop string");
    o.n_stop = 0;
    o.sampler.top_p = 0;
    EXPECT(gpt_generate(m, &bp, &one, 1, &o, out, out_lens, NULL, &err) == GPT_ERR_INVALID,
           "top-p 0");
    test_end();
}

static void test_seeded(gpt_model *m) {
    const int V = gpt_model_config(m)->vocab_size;
    int p0[5], p1[9];
    prompt_tokens(p0, 5, V, 4);
    prompt_tokens(p1, 9, V, 5);
    const int *prompts[2] = {p0, p1};
    int lens[2] = {5, 9};
    enum { N = 25 };
    int a[2 * N], b[2 * N], cc[2 * N], la[2], lb[2], lc[2];
    gpt_error err = {0};
    gpt_generate_opts o;
    gpt_generate_opts_default(&o);
    o.max_new_tokens = N;
    o.sampler = (gpt_sampler_opts){0.9f, 50, 0.95f, 777};
    test_begin("sampling with a fixed seed repeats exactly; another seed differs");
    int rc = gpt_generate(m, prompts, lens, 2, &o, a, la, NULL, &err);
    rc = rc ? rc : gpt_generate(m, prompts, lens, 2, &o, b, lb, NULL, &err);
    o.sampler.seed = 778;
    rc = rc ? rc : gpt_generate(m, prompts, lens, 2, &o, cc, lc, NULL, &err);
    EXPECT(rc == 0, "%s", err.msg);
    EXPECT(!memcmp(a, b, sizeof a) && !memcmp(la, lb, sizeof la), "same seed differs");
    EXPECT(memcmp(a, cc, sizeof a) != 0, "seeds 777 and 778 gave the same tokens");
    test_end();

    test_begin("top-k 1 sampling equals greedy");
    o.sampler = (gpt_sampler_opts){1.5f, 1, 1.0f, 5};
    rc = gpt_generate(m, prompts, lens, 2, &o, a, la, NULL, &err);
    o.sampler = (gpt_sampler_opts){0, 0, 1.0f, 0};
    rc = rc ? rc : gpt_generate(m, prompts, lens, 2, &o, b, lb, NULL, &err);
    EXPECT(rc == 0 && !memcmp(a, b, sizeof a), "differs (%s)", err.msg);
    test_end();
}

int main(void) {
    (void)test_max_rel_err; /* test.h helpers this program does not use */
    (void)test_rel_l2;
    gpt_model *hf = NULL, *odd = NULL;
    gpt_error err = {0};
    test_begin("load the fixture and create an odd-sized model");
    int rc = gpt_hf_load(&hf, "tests/data/hf_tiny/fp32", &RT, &err);
    EXPECT(rc == 0, "%s", err.msg);
    gpt_config cfg = {0};
    cfg.vocab_size = 333;
    cfg.max_seq_len = 40;
    cfg.n_layer = 2;
    cfg.n_head = 3;
    cfg.n_embd = 48;
    int rc2 = gpt_model_create(&odd, &cfg, &RT, 3, &err);
    EXPECT(rc2 == 0, "%s", err.msg);
    test_end();
    if (rc || rc2) return test_summary();

    const int one[][1] = {{1}, {2}, {7}, {16}, {33}, {63}};
    for (size_t i = 0; i < sizeof one / sizeof one[0]; i++)
        check_kv(hf, "fixture", one[i], 1, one[i][0] >= 63 ? 1 : 12);
    const int batch[] = {3, 10, 1, 25};
    check_kv(hf, "fixture", batch, 4, 15);
    check_kv(odd, "C=48 NH=3 V=333", one[2], 1, 20);
    check_kv(odd, "C=48 NH=3 V=333", batch, 4, 10);

    test_loop(hf);
    test_seeded(hf);
    test_seeded(odd);
    gpt_model_free(hf);
    gpt_model_free(odd);
    return test_summary();
}
