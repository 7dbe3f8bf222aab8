/*
 * test_sample.c - token sampling: greedy, temperature, top-k, top-p and the
 * seed, on distributions whose answer is known.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpt.h"
#include "test.h"

static gpt_sampler *make(float temperature, int top_k, float top_p, uint64_t seed, int V) {
    gpt_sampler_opts o = {temperature, top_k, top_p, seed};
    gpt_sampler *s = NULL;
    gpt_error err = {0};
    if (gpt_sampler_create(&s, &o, V, &err)) printf("     sampler: %s\n", err.msg);
    return s;
}

/* Deterministic pseudo-random logits in [-4, 4). */
static void fill_logits(float *x, int n, uint32_t seed) {
    uint32_t st = seed * 2654435761u + 1;
    for (int i = 0; i < n; i++) {
        st = st * 1664525u + 1013904223u;
        x[i] = (float)((st >> 8) * (1.0 / 16777216.0)) * 8.0f - 4.0f;
    }
}

static int argmax_first(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* A known distribution, shuffled over ids: probs 0.4 0.3 0.15 0.1 0.05. */
enum { KV = 5 };
static const int known_id[KV] = {3, 0, 4, 1, 2}; /* id of the i-th most likely */
static const double known_p[KV] = {0.4, 0.3, 0.15, 0.1, 0.05};

static void known_logits(float *x) {
    for (int i = 0; i < KV; i++) x[known_id[i]] = (float)log(known_p[i]) + 1.5f;
}

static void test_greedy(void) {
    test_begin("temperature 0 is argmax, lowest id on ties, NaN never wins");
    float x[7] = {0.5f, 2.0f, NAN, 2.0f, -INFINITY, 1.0f, 1.5f};
    gpt_sampler *s = make(0, 0, 1, 1, 7);
    EXPECT(s != NULL, "sampler");
    if (s) {
        for (int r = 0; r < 3; r++) EXPECT(gpt_sample(s, x) == 1, "got %d", gpt_sample(s, x));
        float pr[7];
        EXPECT(gpt_sampler_probs(s, x, pr) == 1, "one token kept");
        EXPECT(pr[1] == 1 && pr[3] == 0, "one-hot at 1");
        float all_nan[3] = {NAN, -INFINITY, NAN};
        gpt_sampler_free(s);
        s = make(0, 0, 1, 1, 3);
        EXPECT(gpt_sample(s, all_nan) == -1, "no finite logit gives -1");
        gpt_sampler_free(s);
        s = make(1.0f, 0, 0.9f, 1, 3);
        EXPECT(gpt_sample(s, all_nan) == -1, "no finite logit gives -1 when sampling");
        gpt_sampler_free(s);
    }
    test_end();
}

static void test_topk1_is_greedy(void) {
    test_begin("top-k 1 equals greedy on 200 random rows (V=1000, T=1.3, several p)");
    enum { V = 1000 };
    float *x = malloc(V * sizeof *x);
    gpt_sampler *g = make(0, 0, 1, 0, V), *k1 = make(1.3f, 1, 1, 7, V),
                *k1p = make(1.3f, 1, 0.5f, 9, V);
    int bad = 0;
    for (int r = 0; r < 200 && x && g && k1 && k1p; r++) {
        fill_logits(x, V, (uint32_t)r);
        if (r % 7 == 0) x[(r * 31) % V] = x[argmax_first(x, V)]; /* a tie */
        int a = gpt_sample(g, x), b = gpt_sample(k1, x), c = gpt_sample(k1p, x);
        if (a != b || a != c || a != argmax_first(x, V)) bad++;
    }
    EXPECT(bad == 0, "%d rows differ", bad);
    gpt_sampler_free(g);
    gpt_sampler_free(k1);
    gpt_sampler_free(k1p);
    free(x);
    test_end();
}

static void test_seed(void) {
    test_begin("a fixed seed repeats exactly; reseed restarts; other seeds differ");
    enum { V = 500, N = 300 };
    float *x = malloc(V * sizeof *x);
    int *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b), *c = malloc(N * sizeof *c);
    gpt_sampler *s1 = make(0.9f, 40, 0.95f, 1234, V), *s2 = make(0.9f, 40, 0.95f, 1234, V),
                *s3 = make(0.9f, 40, 0.95f, 1235, V);
    if (x && a && b && c && s1 && s2 && s3) {
        for (int i = 0; i < N; i++) {
            fill_logits(x, V, (uint32_t)i / 10);
            a[i] = gpt_sample(s1, x);
            b[i] = gpt_sample(s2, x);
            c[i] = gpt_sample(s3, x);
        }
        EXPECT(!memcmp(a, b, N * sizeof *a), "same seed, different tokens");
        int diff = 0;
        for (int i = 0; i < N; i++) diff += a[i] != c[i];
        EXPECT(diff > N / 4, "seed 1235 gave %d of %d tokens different", diff, N);
        gpt_sampler_reseed(s1, 1234);
        int same = 1;
        for (int i = 0; i < N; i++) {
            fill_logits(x, V, (uint32_t)i / 10);
            same &= gpt_sample(s1, x) == a[i];
        }
        EXPECT(same, "reseed did not restart the stream");
    } else {
        EXPECT(0, "setup");
    }
    gpt_sampler_free(s1);
    gpt_sampler_free(s2);
    gpt_sampler_free(s3);
    free(x);
    free(a);
    free(b);
    free(c);
    test_end();
}

/* top-p must keep exactly the smallest prefix reaching p. */
static void test_top_p_known(void) {
    struct {
        float p;
        int top_k;
        int kept;
    } rows[] = {
        {0.39f, 0, 1}, {0.41f, 0, 2}, {0.69f, 0, 2}, {0.71f, 0, 3}, {0.84f, 0, 3},
        {0.86f, 0, 4}, {0.94f, 0, 4}, {0.96f, 0, 5}, {1.0f, 0, 5},
        /* after top-3 the mass is 0.85: 0.4/0.85 = 0.47, 0.7/0.85 = 0.82 */
        {0.46f, 3, 1}, {0.48f, 3, 2}, {0.8f, 3, 2}, {0.83f, 3, 3}, {1.0f, 3, 3},
        {0.99f, 2, 2},
    };
    float x[KV], pr[KV];
    known_logits(x);
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        test_begin("top-p %.2f top-k %d on {.4 .3 .15 .1 .05} keeps %d", rows[r].p,
                   rows[r].top_k, rows[r].kept);
        gpt_sampler *s = make(1.0f, rows[r].top_k, rows[r].p, 5, KV);
        EXPECT(s != NULL, "sampler");
        if (!s) continue;
        int kept = gpt_sampler_probs(s, x, pr);
        EXPECT(kept == rows[r].kept, "kept %d", kept);
        double mass = 0;
        for (int i = 0; i < rows[r].kept; i++) mass += known_p[i];
        for (int i = 0; i < KV; i++) {
            double want = i < rows[r].kept ? known_p[i] / mass : 0;
            EXPECT(fabs(pr[known_id[i]] - want) < 1e-6, "p(rank %d) = %g, want %g", i,
                   (double)pr[known_id[i]], want);
        }
        /* Draws stay inside the kept set. */
        int outside = 0;
        for (int d = 0; d < 2000; d++) {
            int t = gpt_sample(s, x), rank = -1;
            for (int i = 0; i < KV; i++)
                if (known_id[i] == t) rank = i;
            outside += rank < 0 || rank >= rows[r].kept;
        }
        EXPECT(outside == 0, "%d draws outside the kept set", outside);
        gpt_sampler_free(s);
        test_end();
    }
}

/* Reference nucleus by sorting the whole vocabulary. */
static int cmp_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x > y ? -1 : x < y;
}

static void test_top_p_large(void) {
    test_begin("top-p on V=50257 matches a full sort (p = 0.1 .. 0.99, T = 0.7, 1, 1.5)");
    enum { V = 50257 };
    float *x = malloc(V * sizeof *x), *pr = malloc(V * sizeof *pr);
    double *sorted = malloc(V * sizeof *sorted);
    const float ps[] = {0.1f, 0.5f, 0.9f, 0.99f}, ts[] = {0.7f, 1.0f, 1.5f};
    int bad = 0;
    for (size_t a = 0; a < 4 && x && pr && sorted; a++)
        for (size_t b = 0; b < 3; b++) {
            fill_logits(x, V, (uint32_t)(a * 3 + b + 100));
            gpt_sampler *s = make(ts[b], 0, ps[a], 3, V);
            if (!s) {
                bad++;
                continue;
            }
            int kept = gpt_sampler_probs(s, x, pr);
            float mx = x[argmax_first(x, V)];
            double tot = 0;
            for (int i = 0; i < V; i++) tot += sorted[i] = exp((double)(x[i] - mx) / ts[b]);
            qsort(sorted, V, sizeof *sorted, cmp_desc);
            double cum = 0;
            int want = V;
            for (int i = 0; i < V; i++)
                if ((cum += sorted[i]) >= ps[a] * tot) {
                    want = i + 1;
                    break;
                }
            /* float exp vs double exp may move a boundary token by one. */
            if (abs(kept - want) > 1) {
                bad++;
                printf("     p=%g T=%g kept %d want %d\n", (double)ps[a], (double)ts[b], kept,
                       want);
            }
            double sum = 0;
            for (int i = 0; i < V; i++) sum += pr[i];
            if (fabs(sum - 1) > 1e-4) bad++;
            gpt_sampler_free(s);
        }
    EXPECT(bad == 0, "%d cases wrong", bad);
    free(x);
    free(pr);
    free(sorted);
    test_end();
}

static void test_frequencies(void) {
    test_begin("draws follow softmax(logits / T) (T = 2, 40000 draws)");
    float x[KV], pr[KV];
    known_logits(x);
    gpt_sampler *s = make(2.0f, 0, 1.0f, 77, KV);
    if (s) {
        double want[KV], z = 0;
        for (int i = 0; i < KV; i++) z += want[i] = sqrt(known_p[i]); /* p^(1/T) */
        gpt_sampler_probs(s, x, pr);
        float got_f[KV], want_f[KV];
        for (int i = 0; i < KV; i++) {
            want[i] /= z;
            want_f[i] = (float)want[i];
            got_f[i] = pr[known_id[i]];
        }
        double e = test_max_rel_err(got_f, want_f, KV, 1e-6), l2 = test_rel_l2(got_f, want_f, KV);
        EXPECT(e < 1e-5 && l2 < 1e-5, "probabilities off by %g (relative L2 %g)", e, l2);
        int count[KV] = {0};
        enum { N = 40000 };
        for (int d = 0; d < N; d++) {
            int t = gpt_sample(s, x);
            for (int i = 0; i < KV; i++) count[i] += known_id[i] == t;
        }
        for (int i = 0; i < KV; i++) {
            /* 5 standard deviations of a binomial count. */
            double sd = sqrt(N * want[i] * (1 - want[i]));
            EXPECT(fabs(count[i] - N * want[i]) < 5 * sd, "rank %d drawn %d times, want %.0f", i,
                   count[i], N * want[i]);
        }
        gpt_sampler_free(s);
    } else {
        EXPECT(0, "sampler");
    }
    test_end();
}

static void test_validate(void) {
    test_begin("bad options are refused with a message");
    gpt_sampler_opts bad[] = {{-1, 0, 1, 0}, {NAN, 0, 1, 0}, {1, -3, 1, 0}, {1, 0, 0, 0},
                              {1, 0, 1.5f, 0}, {INFINITY, 0, 1, 0}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gpt_error err = {0};
        gpt_sampler *s = NULL;
        int rc = gpt_sampler_create(&s, &bad[i], 10, &err);
        EXPECT(rc == GPT_ERR_INVALID && s == NULL && err.msg[0], "case %zu rc %d", i, rc);
    }
    gpt_sampler_opts ok;
    gpt_sampler_opts_default(&ok);
    gpt_error err = {0};
    gpt_sampler *s = NULL;
    EXPECT(gpt_sampler_create(&s, &ok, 0, &err) == GPT_ERR_INVALID, "empty vocabulary");
    test_end();
}

int main(void) {
    test_greedy();
    test_topk1_is_greedy();
    test_seed();
    test_top_p_known();
    test_top_p_large();
    test_frequencies();
    test_validate();
    return test_summary();
}
