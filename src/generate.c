/*
 * generate.c - the generation loop: prefill a batch of prompts into the KV
 * cache in one pass, then draw and decode one token a row at a time, with
 * stop tokens, stop strings, streaming, a sliding window, and separate
 * prefill and decode timing. Greedy decoding (temperature 0) runs chunks
 * of steps on the device (gpt_kv_decode_greedy) and the host reads the
 * chosen ids once a chunk. Written against the model's KV-cache calls
 * only, so every backend that implements them generates the same way.
 */
#include <stdlib.h>
#include <string.h>

#include "gpt.h"
#include "util.h"

void gpt_generate_opts_default(gpt_generate_opts *o) {
    memset(o, 0, sizeof *o);
    o->max_new_tokens = 16;
    gpt_sampler_opts_default(&o->sampler);
    o->eot = -1;
}

/* Per-row state. */
typedef struct {
    int *ctx;       /* (len + N) prompt then generated tokens */
    int len;        /* tokens in ctx */
    int start;      /* the cache holds ctx[start, start + fed) */
    int fed;        /* positions in the cache */
    int n_new;      /* generated tokens */
    int done;
    char *text;     /* generated text, for stop strings */
    size_t text_len, text_cap;
    gpt_sampler *s;
} gen_row;

/* Appends the token's bytes to the row's text; 1 if a stop string now
 * ends inside the new bytes. */
static int stop_hit(gen_row *r, const gpt_generate_opts *o, int tok, int *oom) {
    size_t n = 0;
    const char *p = o->token_bytes(o->user, tok, &n);
    if (!p) n = 0;
    if (r->text_len + n + 1 > r->text_cap) {
        size_t cap = r->text_cap ? r->text_cap : 256;
        while (cap < r->text_len + n + 1) cap *= 2;
        char *t = realloc(r->text, cap);
        if (!t) {
            *oom = 1;
            return 0;
        }
        r->text = t;
        r->text_cap = cap;
    }
    size_t old = r->text_len;
    if (n) memcpy(r->text + old, p, n);
    r->text_len += n;
    for (int i = 0; i < o->n_stop; i++) {
        size_t ls = strlen(o->stop[i]);
        if (ls > r->text_len) continue;
        /* A new match ends after `old`: it starts at or after old - ls + 1. */
        size_t from = old + 1 > ls ? old + 1 - ls : 0;
        for (size_t a = from; a + ls <= r->text_len; a++)
            if (!memcmp(r->text + a, o->stop[i], ls)) return 1;
    }
    return 0;
}

/* Appends the drawn token to row b: output, streaming, end conditions. */
static int take_token(gen_row *r, int b, int tok, const gpt_generate_opts *o, int *out,
                      int *out_lens, int N, gpt_generate_stats *st, int *stop_all,
                      gpt_error *err) {
    int oom = 0;
    r->ctx[r->len++] = tok;
    out[(size_t)b * N + r->n_new++] = tok;
    out_lens[b] = r->n_new;
    st->new_tokens++;
    if (o->on_token && o->on_token(o->user, b, tok)) *stop_all = 1;
    if (tok == o->eot || r->n_new == N) r->done = 1;
    else if (o->n_stop && stop_hit(r, o, tok, &oom)) r->done = 1;
    if (oom) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory for stop strings");
    return GPT_OK;
}

/* The context a row may use: o->ctx, or the model's whole context. */
static int gen_ctx(const gpt_model *m, const gpt_generate_opts *o) {
    int maxT = gpt_model_config(m)->max_seq_len;
    return o->ctx > 0 && o->ctx < maxT ? o->ctx : maxT;
}

static int check_args(gpt_model *m, const int *const *prompts, const int *lens, int B,
                      const gpt_generate_opts *o, gpt_error *err) {
    const gpt_config *c = gpt_model_config(m);
    const int ctx = gen_ctx(m, o);
    if (o->ctx < 0 || o->ctx > c->max_seq_len)
        return gpt_fail(err, GPT_ERR_INVALID,
                        "a context of %d positions was asked for: the model has 1 to %d", o->ctx,
                        c->max_seq_len);
    if (B < 1) return gpt_fail(err, GPT_ERR_INVALID, "generation needs at least one prompt");
    if (o->max_new_tokens < 1)
        return gpt_fail(err, GPT_ERR_INVALID, "the number of new tokens must be at least 1, got %d",
                        o->max_new_tokens);
    int rc = gpt_sampler_opts_validate(&o->sampler, err);
    if (rc) return rc;
    if (o->n_stop < 0 || (o->n_stop > 0 && (!o->stop || !o->token_bytes)))
        return gpt_fail(err, GPT_ERR_INVALID,
                        "stop strings need the strings and a token_bytes function");
    for (int i = 0; i < o->n_stop; i++)
        if (!o->stop[i] || !o->stop[i][0])
            return gpt_fail(err, GPT_ERR_INVALID, "stop string %d is empty", i + 1);
    for (int b = 0; b < B; b++) {
        const char *row = B > 1 ? "prompt " : "the prompt";
        if (lens[b] < 1)
            return gpt_fail(err, GPT_ERR_INVALID,
                            "%s%.0d is empty: generation needs at least one token to start from "
                            "(e.g. <|endoftext|>)",
                            row, B > 1 ? b + 1 : 0);
        for (int t = 0; t < lens[b]; t++)
            if (prompts[b][t] < 0 || prompts[b][t] >= c->vocab_size)
                return gpt_fail(err, GPT_ERR_INVALID,
                                "token %d at position %d of %s%.0d is outside the model's "
                                "vocabulary [0, %d)",
                                prompts[b][t], t, row, B > 1 ? b + 1 : 0, c->vocab_size);
        long long need = (long long)lens[b] + o->max_new_tokens;
        if (!o->sliding_window && need > ctx)
            return gpt_fail(err, GPT_ERR_INVALID,
                            "%s%.0d has %d tokens; with %d new ones that is %lld positions, more "
                            "than the %scontext of %d: shorten the prompt, generate fewer "
                            "tokens, or use the sliding window",
                            row, B > 1 ? b + 1 : 0, lens[b], o->max_new_tokens, need,
                            ctx < c->max_seq_len ? "" : "model's ", ctx);
    }
    return GPT_OK;
}

int gpt_generate(gpt_model *m, const int *const *prompts, const int *lens, int B,
                 const gpt_generate_opts *o, int *out, int *out_lens,
                 gpt_generate_stats *stats, gpt_error *err) {
    gpt_generate_stats st = {0};
    if (stats) *stats = st;
    int rc = check_args(m, prompts, lens, B, o, err);
    if (rc) return rc;
    const gpt_config *c = gpt_model_config(m);
    const int V = c->vocab_size, maxT = gen_ctx(m, o), N = o->max_new_tokens;
    const int keep = maxT / 2 > 0 ? maxT / 2 : 1; /* window after a slide */
    gen_row *rows = calloc((size_t)B, sizeof *rows);
    float *logits = malloc((size_t)B * (size_t)V * sizeof *logits);
    const int **ptrs = malloc((size_t)B * sizeof *ptrs);
    int *plen = malloc((size_t)B * sizeof *plen), *next = malloc((size_t)B * sizeof *next);
    int *ids = malloc((size_t)B * 64 * sizeof *ids); /* a greedy chunk's ids (<= 64, B) */
    if (!rows || !logits || !ptrs || !plen || !next || !ids) {
        rc = gpt_fail(err, GPT_ERR_NOMEM, "out of memory for generation (batch %d)", B);
        goto done;
    }
    int kv_ctx = 0;
    for (int b = 0; b < B; b++) {
        gen_row *r = &rows[b];
        out_lens[b] = 0;
        r->ctx = malloc(((size_t)lens[b] + (size_t)N) * sizeof *r->ctx);
        gpt_sampler_opts so = o->sampler;
        /* Row b's own stream: rows do not depend on each other's draws, and
         * row 0 draws what a single prompt with this seed draws. */
        so.seed = o->sampler.seed ^ ((uint64_t)b * 0x9E3779B97F4A7C15ull);
        if (!r->ctx) {
            rc = gpt_fail(err, GPT_ERR_NOMEM, "out of memory for generation");
            goto done;
        }
        if ((rc = gpt_sampler_create(&r->s, &so, V, err))) goto done;
        memcpy(r->ctx, prompts[b], (size_t)lens[b] * sizeof *r->ctx);
        r->len = lens[b];
        /* A prompt longer than the context (sliding window only) starts
         * from its last `keep` tokens. */
        r->start = r->len > maxT ? r->len - keep : 0;
        /* Positions used: the prompt and every generated token but the last. */
        int need = r->len - r->start + N - 1;
        if (need > kv_ctx) kv_ctx = need;
    }
    if (kv_ctx > maxT) kv_ctx = maxT;
    if ((rc = gpt_kv_begin(m, B, kv_ctx, err))) goto done;

    /* Greedy chunks: shorter when tokens stream, so text appears steadily. */
    const int greedy = o->sampler.temperature == 0, chunk = o->on_token ? 8 : 64;
    int from_prefill = 1, stop_all = 0, K = 0; /* K: ids rows of a greedy chunk to draw from */
    double t0 = gpt_now();
    for (int b = 0; b < B; b++) {
        ptrs[b] = rows[b].ctx + rows[b].start;
        plen[b] = rows[b].fed = rows[b].len - rows[b].start;
        st.prefill_tokens += plen[b];
    }
    /* Greedy: the first ids come from the device's argmax, like the chunks
     * after them (no B x V logits to download and scan). */
    if ((rc = greedy ? gpt_kv_prefill_greedy(m, ptrs, plen, ids, err)
                     : gpt_kv_prefill(m, ptrs, plen, logits, err)))
        goto done;
    K = greedy;
    for (;;) {
        /* Draw the next token of every row still generating: from the
         * logits, or from each step of a greedy chunk in turn. */
        int active = 0;
        for (int k = 0; k < (K ? K : 1) && !stop_all; k++) {
            active = 0;
            for (int b = 0; b < B && !stop_all; b++) {
                gen_row *r = &rows[b];
                if (r->done) continue;
                int tok = K ? ids[(size_t)k * B + b] : gpt_sample(r->s, logits + (size_t)b * V);
                if (tok < 0) {
                    rc = gpt_fail(err, GPT_ERR_RUNTIME,
                                  "the model produced no finite logit (NaN or infinite weights?)");
                    goto done;
                }
                if ((rc = take_token(r, b, tok, o, out, out_lens, N, &st, &stop_all, err)))
                    goto done;
                st.decode_tokens += !from_prefill; /* drawn from a decode step's output */
                active += !r->done;
            }
            if (!active) break;
        }
        double t1 = gpt_now();
        if (from_prefill) st.prefill_s += t1 - t0;
        else st.decode_s += t1 - t0;
        t0 = t1;
        if (stop_all || !active) break;

        /* Every row takes one more position; a full cache slides (or, with
         * the up-front check, cannot happen). */
        int full = 0;
        for (int b = 0; b < B; b++) full |= rows[b].fed >= kv_ctx;
        if (full) {
            if (!o->sliding_window) {
                rc = gpt_fail(err, GPT_ERR_RUNTIME, "internal: KV cache full without a slide");
                goto done;
            }
            for (int b = 0; b < B; b++) {
                gen_row *r = &rows[b];
                /* Rows that still fit keep their window (same results as
                 * without the slide); a finished row keeps one token. */
                if (r->done) r->start = r->len - 1;
                else if (r->len - r->start > kv_ctx - 1) r->start = r->len - keep;
                ptrs[b] = r->ctx + r->start;
                plen[b] = r->fed = r->len - r->start;
                st.prefill_tokens += plen[b];
            }
            st.reprefills++;
            if ((rc = greedy ? gpt_kv_prefill_greedy(m, ptrs, plen, ids, err)
                             : gpt_kv_prefill(m, ptrs, plen, logits, err)))
                goto done;
            from_prefill = 1;
            K = greedy;
            continue;
        }
        for (int b = 0; b < B; b++) next[b] = rows[b].ctx[rows[b].len - 1];
        from_prefill = 0;
        if (greedy) {
            /* As many steps as every row has room for and some active row
             * still wants. Rows do not see each other, so a row that ends
             * inside a chunk changes nothing for the rest. */
            int room = kv_ctx, want = 0;
            for (int b = 0; b < B; b++) {
                if (kv_ctx - rows[b].fed < room) room = kv_ctx - rows[b].fed;
                if (!rows[b].done && N - rows[b].n_new > want) want = N - rows[b].n_new;
            }
            K = room < want ? room : want;
            if (K > chunk) K = chunk;
            if ((rc = gpt_kv_decode_greedy(m, next, K, ids, err))) goto done;
            for (int b = 0; b < B; b++) rows[b].fed += K;
        } else {
            for (int b = 0; b < B; b++) rows[b].fed++;
            if ((rc = gpt_kv_decode(m, next, logits, err))) goto done;
        }
    }
done:
    if (rows)
        for (int b = 0; b < B; b++) {
            free(rows[b].ctx);
            free(rows[b].text);
            gpt_sampler_free(rows[b].s);
        }
    free(rows);
    free(logits);
    free(ptrs);
    free(plen);
    free(next);
    free(ids);
    if (stats) *stats = st;
    return rc;
}
