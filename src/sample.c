/*
 * sample.c - drawing the next token from a row of logits: greedy,
 * temperature, top-k and top-p (nucleus), seeded and repeatable.
 *
 * Order as in Hugging Face transformers: divide the logits by the
 * temperature, softmax, keep the k most likely tokens, then keep the
 * smallest prefix of those (by descending probability, ties to the lower
 * id) whose renormalised mass reaches p, renormalise and draw.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpt.h"
#include "util.h"

typedef struct {
    float p; /* unnormalised probability exp((logit - max) / temperature) */
    int id;
} cand;

struct gpt_sampler {
    gpt_sampler_opts o;
    int V;
    gpt_rng rng;
    float *p;    /* (V) unnormalised probabilities of the current row */
    cand *cand;  /* (V) candidates, sorted by descending probability */
    int n_cand;  /* candidates in cand; 0 = every token, unsorted, in p */
    int n_kept;  /* the kept set: cand[0, n_kept) or, if n_cand == 0, all V */
    double mass; /* sum of the kept unnormalised probabilities */
};

void gpt_sampler_opts_default(gpt_sampler_opts *o) {
    o->temperature = 1.0f;
    o->top_k = 0;
    o->top_p = 1.0f;
    o->seed = 0;
}

int gpt_sampler_opts_validate(const gpt_sampler_opts *o, gpt_error *err) {
    if (!(o->temperature >= 0) || !isfinite(o->temperature))
        return gpt_fail(err, GPT_ERR_INVALID, "temperature must be 0 (greedy) or positive, got %g",
                        (double)o->temperature);
    if (o->top_k < 0)
        return gpt_fail(err, GPT_ERR_INVALID, "top-k must be 0 (off) or positive, got %d",
                        o->top_k);
    if (!(o->top_p > 0 && o->top_p <= 1))
        return gpt_fail(err, GPT_ERR_INVALID, "top-p must be in (0, 1], got %g",
                        (double)o->top_p);
    return GPT_OK;
}

int gpt_sampler_create(gpt_sampler **out, const gpt_sampler_opts *o, int n_vocab,
                       gpt_error *err) {
    *out = NULL;
    int rc = gpt_sampler_opts_validate(o, err);
    if (rc) return rc;
    if (n_vocab < 1)
        return gpt_fail(err, GPT_ERR_INVALID, "sampler needs a vocabulary, got %d tokens",
                        n_vocab);
    gpt_sampler *s = calloc(1, sizeof *s);
    if (!s) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory creating a sampler");
    s->o = *o;
    s->V = n_vocab;
    s->p = malloc((size_t)n_vocab * sizeof *s->p);
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    if (!s->p || !s->cand) {
        gpt_sampler_free(s);
        return gpt_fail(err, GPT_ERR_NOMEM, "out of memory creating a sampler (%d tokens)",
                        n_vocab);
    }
    gpt_rng_seed(&s->rng, o->seed);
    *out = s;
    return GPT_OK;
}

void gpt_sampler_free(gpt_sampler *s) {
    if (!s) return;
    free(s->p);
    free(s->cand);
    free(s);
}

void gpt_sampler_reseed(gpt_sampler *s, uint64_t seed) {
    s->o.seed = seed;
    gpt_rng_seed(&s->rng, seed);
}

/* a before b: higher probability first, then the lower id. */
static int cand_before(const cand *a, const cand *b) {
    return a->p > b->p || (a->p == b->p && a->id < b->id);
}

static int cand_cmp(const void *x, const void *y) {
    const cand *a = x, *b = y;
    return cand_before(a, b) ? -1 : cand_before(b, a) ? 1 : 0;
}

/* Min-heap (by cand_before: the root is the candidate that comes last). */
static void heap_down(cand *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && cand_before(&h[m], &h[l])) m = l;
        if (r < n && cand_before(&h[m], &h[r])) m = r;
        if (m == i) return;
        cand t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Greedy: the first maximum; NaN never wins. -1 if none is finite or +inf. */
static int argmax(const float *x, int n) {
    int best = -1;
    for (int i = 0; i < n; i++)
        if (x[i] > -INFINITY && (best < 0 || x[i] > x[best])) best = i;
    return best;
}

/* Fills s->p, s->cand, s->n_cand, s->n_kept and s->mass for a row. Returns
 * the number of kept tokens (0: no finite logit). */
static int build(gpt_sampler *s, const float *logits) {
    const int V = s->V;
    int best = argmax(logits, V);
    if (best < 0) return 0;
    const float inv_t = s->o.temperature > 0 ? 1.0f / s->o.temperature : INFINITY;
    if (!isfinite(inv_t) || s->o.top_k == 1 || !isfinite(logits[best])) {
        /* One token left: greedy (or a temperature so small that 1/T
         * overflows), top-1, or an infinite logit dominating. */
        s->cand[0].p = 1;
        s->cand[0].id = best;
        s->n_cand = s->n_kept = 1;
        s->mass = 1;
        return 1;
    }
    const float mx = logits[best];
    double total = 0;
    for (int i = 0; i < V; i++) {
        /* NaN logits get probability 0, like -inf. */
        float e = logits[i] > -INFINITY ? expf((logits[i] - mx) * inv_t) : 0.0f;
        s->p[i] = e;
        total += e;
    }
    const int k = s->o.top_k > 0 && s->o.top_k < V ? s->o.top_k : V;
    const double top_p = s->o.top_p;
    int n = 0;
    if (k < V) {
        /* The k best through a min-heap of size k: O(V log k). */
        for (int i = 0; i < V; i++) {
            cand c = {s->p[i], i};
            if (n < k) {
                s->cand[n++] = c;
                if (n == k)
                    for (int j = k / 2 - 1; j >= 0; j--) heap_down(s->cand, k, j);
            } else if (cand_before(&c, &s->cand[0])) {
                s->cand[0] = c;
                heap_down(s->cand, k, 0);
            }
        }
    } else if (top_p < 1) {
        /* A token below (1-p)/(V-1) of the mass cannot be in the nucleus:
         * all such tokens together hold less than 1-p, so the tokens at or
         * above the cut already reach p, and the nucleus is a prefix of
         * them in sorted order. Sorting only these is much cheaper. */
        double cut = V > 1 ? (1.0 - top_p) * total / (double)(V - 1) : 0;
        for (int i = 0; i < V; i++)
            if (s->p[i] >= cut) s->cand[n++] = (cand){s->p[i], i};
    } else {
        s->n_cand = 0;
        s->n_kept = V;
        s->mass = total;
        return V;
    }
    qsort(s->cand, (size_t)n, sizeof *s->cand, cand_cmp);
    double mass = 0;
    for (int i = 0; i < n; i++) mass += s->cand[i].p;
    int kept = n;
    if (top_p < 1) {
        /* The smallest prefix whose mass reaches p of the distribution top-k
         * left (all tokens, when the candidates come from the cut). */
        double target = top_p * (k < V ? mass : total), cum = 0;
        for (int i = 0; i < n; i++) {
            cum += s->cand[i].p;
            if (cum >= target) {
                kept = i + 1;
                break;
            }
        }
        mass = 0;
        for (int i = 0; i < kept; i++) mass += s->cand[i].p;
    }
    s->n_cand = n;
    s->n_kept = kept;
    s->mass = mass;
    return kept;
}

int gpt_sampler_probs(gpt_sampler *s, const float *logits, float *probs) {
    memset(probs, 0, (size_t)s->V * sizeof *probs);
    int kept = build(s, logits);
    if (!kept) return 0;
    if (s->n_cand == 0) {
        for (int i = 0; i < s->V; i++) probs[i] = (float)(s->p[i] / s->mass);
    } else {
        for (int i = 0; i < kept; i++)
            probs[s->cand[i].id] = (float)(s->cand[i].p / s->mass);
    }
    return kept;
}

int gpt_sample(gpt_sampler *s, const float *logits) {
    int kept = build(s, logits);
    if (!kept) return -1;
    if (kept == 1 && s->n_cand) return s->cand[0].id; /* no draw: the stream is unchanged */
    /* One uniform draw per sampled token: the stream depends only on the
     * seed and the number of draws, so runs repeat exactly. */
    double u = (double)gpt_rng_float(&s->rng) * s->mass, cum = 0;
    if (s->n_cand == 0) {
        int last = -1;
        for (int i = 0; i < s->V; i++) {
            if (s->p[i] <= 0) continue;
            cum += s->p[i];
            last = i;
            if (u < cum) return i;
        }
        return last; /* rounding left u at the very top */
    }
    for (int i = 0; i < kept; i++) {
        cum += s->cand[i].p;
        if (u < cum) return s->cand[i].id;
    }
    return s->cand[kept - 1].id;
}
